"""`sensitiv.analyze`: the config path's validation and messages, in-memory structures,
the same numbers as the command line, and the `.sensitiv` summary."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import sensitiv
from sensitiv.cli import ExitCode, main
from sensitiv.errors import ConfigError

PACKING = {"name": "bidisperse_packing", "n_atoms": 8, "packing_fraction": 0.9}


def test_arguments_are_validated_like_a_config():
    with pytest.raises(ConfigError, match=r"unknown keyword 'solver_optionz' \(did you mean 'solver_options'\?\)"):
        sensitiv.analyze(PACKING, model="soft_sphere", solver_optionz={})
    with pytest.raises(ConfigError) as err:
        sensitiv.analyze(PACKING, model="soft_spere", model_options={"energy_units": "electron-volts per atom"})
    text = str(err.value)
    assert text.startswith("sensitiv.analyze(): $.model.name: unknown name 'soft_spere'")
    assert "did you mean 'soft_sphere'" in text
    with pytest.raises(ConfigError, match=r"\$.model.options.energy_units: 'electron-volts per atom' is not a unit"):
        sensitiv.analyze(PACKING, model="soft_sphere", model_options={"energy_units": "electron-volts per atom"})
    with pytest.raises(ConfigError, match="structure file not found"):
        sensitiv.analyze("no_such_file.extxyz", model="soft_sphere")


def test_same_result_as_the_command_line(tmp_path, capsys):
    ds = sensitiv.analyze(PACKING, model="soft_sphere", differentiate=["sigma"],
                          solver_options={"ftol": 1e-10}, output=tmp_path / "api.nc")
    config = tmp_path / "c.yaml"
    config.write_text("structure: {generator: {name: bidisperse_packing, n_atoms: 8, packing_fraction: 0.9}}\n"
                      "model: {name: soft_sphere, differentiate: [sigma]}\n"
                      "solver: {name: fire, options: {ftol: 1e-10}}\n")
    assert main(["analyze", str(config), "-o", str(tmp_path / "cli.nc"), "-q"]) == ExitCode.OK
    with xr.open_dataset(tmp_path / "cli.nc") as cli, xr.open_dataset(tmp_path / "api.nc") as written:
        np.testing.assert_allclose(ds["dx_dtheta"].values, cli["dx_dtheta"].values, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(written["dx_dtheta"].values, cli["dx_dtheta"].values, rtol=1e-10, atol=1e-12)
    assert ds["dx_dtheta"].sel(parameter_label="sigma[0,1]").dims == ("frame", "atom", "spatial")
    assert ds.sensitiv.trustworthy
    html = ds.sensitiv._repr_html_()
    assert "trustworthy" in html and "sigma[0,1]" in html and "<table>" in html
    assert "θ sigma[0,0] = 1 σ (reduced)" in repr(ds.sensitiv)
    # in-memory structures: a sensitiv Structure (ase.Atoms go the same way)
    from sensitiv.pipeline.structure import bidisperse_packing

    again = sensitiv.analyze(bidisperse_packing(n_atoms=8, packing_fraction=0.9), model="soft_sphere",
                             differentiate=["sigma"], solver_options={"ftol": 1e-10})
    np.testing.assert_allclose(again["dx_dtheta"].values, ds["dx_dtheta"].values, rtol=1e-10, atol=1e-12)
