"""End to end: every example config through `sensitiv analyze` (in-process, reduced sizes),
the NetCDF contract checked with xarray, and the numbers checked against the Python API
(`sensitiv.jacobian` on the same system) and finite differences of re-solving."""

from __future__ import annotations

import os
import pathlib
import shutil

import jax
import jax.numpy as jnp
import netCDF4
import numpy as np
import pytest
import xarray as xr
import yaml

from sensitiv.cli import ExitCode, main

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def softspheres(tmp_path_factory):
    """The soft-sphere example at 16 particles, run once through the CLI."""
    folder = tmp_path_factory.mktemp("softspheres")
    out = folder / "ss.nc"
    code = main([
        "analyze", str(EXAMPLES / "softspheres" / "config.yaml"), "-o", str(out),
        "--set", "structure.generator.n_atoms=16",
    ])
    return code, out


def test_softspheres_contract(softspheres):
    code, out = softspheres
    assert code == ExitCode.OK
    ds = xr.open_dataset(out)
    try:
        assert dict(ds.sizes) == {"frame": 1, "atom": 16, "spatial": 2, "parameter": 3, "cell_vector": 2,
                                  "problem": 1, "species_index": 2, "reading": 2}
        # CF: numeric coordinate variables, labels as auxiliary coordinates
        assert ds["spatial"].values.tolist() == [0, 1] and ds["parameter"].values.tolist() == [0, 1, 2]
        assert list(ds["spatial_label"].values) == ["x", "y"]
        assert list(ds["parameter_label"].values) == ["sigma[0,0]", "sigma[0,1]", "sigma[1,1]"]
        assert ds["coordinates"].dims == ("frame", "atom", "spatial")
        assert ds["dx_dtheta"].dims == ("frame", "atom", "spatial", "parameter")
        np.testing.assert_allclose(ds["parameter_value"].values, [[1.0, 1.2, 1.4]])
        # reduced units named as such, not "1"
        assert list(ds["parameter_units"].values) == ["sigma", "sigma", "sigma"]
        assert ds["coordinates"].attrs["units"] == "sigma"
        assert ds["energy"].attrs["units"] == "epsilon"
        assert ds["smallest_eigenvalue"].attrs["units"] == "epsilon sigma2-1" or \
            ds["smallest_eigenvalue"].attrs["units"] == "epsilon (sigma2)-1"
        assert list(ds["parameter_symmetric"].values) == [0, 1, 0]
        assert set(ds["species"].values) == {"A", "B"}
        assert ds["Z"].values.tolist() == [0] * 16  # "A", "B" are labels, not elements
        assert ds["cell"].dims == ("frame", "cell_vector", "spatial")
        for name in ("stationarity_residual", "linear_residual", "linear_converged", "smallest_eigenvalue",
                     "verdict", "null_space_dimension", "jacobian_error_estimate", "jacobian_strategy",
                     "energy", "denergy_dtheta", "dx_dlogtheta", "trustworthy", "problems"):
            assert name in ds.variables, name
        for name in ("stationarity_residual", "solver_residual", "smallest_eigenvalue", "largest_eigenvalue",
                     "solution_error_estimate", "coordinates", "dx_dtheta", "dx_dlogtheta", "energy",
                     "parameter_value", "cell"):
            assert "units" in ds[name].attrs, name
        assert ds["linear_residual"].dims == ("frame", "parameter")
        assert str(ds["verdict"].values[0]) == "minimum"
        assert int(ds["null_space_dimension"][0]) == 2  # the two translations
        assert ds["trustworthy"].dtype == np.int8 and int(ds["trustworthy"][0]) == 1
        assert ds["problems"].dims == ("frame", "problem") and ds["problems"].values.tolist() == [[""]]
        assert ds["linear_converged"].dtype == np.int8
        assert ds.attrs["Conventions"] == "CF-1.11"
        assert "sensitiv 0.1.0" in ds.attrs["source"] and "jaxmd" in ds.attrs["source"]
        assert "analyze" in ds.attrs["history"]
        assert "long_name" in ds["dx_dtheta"].attrs
        from sensitiv.pipeline._yaml import parse_yaml_text

        resolved = parse_yaml_text(ds.attrs["sensitiv_config"], "stored")[0]
        assert resolved["structure"]["generator"]["n_atoms"] == 16
        assert resolved["output"]["path"] == "ss.nc"
        for value in ds.attrs.values():
            assert not isinstance(value, (dict, bool)) and value is not None
        # no absolute path anywhere in the file's attributes or strings
        import re

        for value in list(ds.attrs.values()) + [str(v) for v in ds["frame_source"].values]:
            assert not re.search(r"(^|[\s=:])/", str(value)), value
        # selecting by label: after opening through sensitiv (or ds.set_xindex("parameter_label"))
        labelled = ds.set_xindex("parameter_label")
        assert labelled["dx_dtheta"].sel(parameter_label="sigma[0,1]").dims == ("frame", "atom", "spatial")
    finally:
        ds.close()
    with netCDF4.Dataset(out) as nc:
        assert nc.file_format == "NETCDF4"
        assert nc.dimensions["frame"].isunlimited()
        filters = nc.variables["dx_dtheta"].filters()
        assert filters["zlib"] and filters["shuffle"] and filters["complevel"] == 4
    # No temporary file left beside the output.
    assert [p.name for p in out.parent.iterdir()] == [out.name]


def test_softspheres_numbers_match_python_api_and_finite_differences(softspheres):
    """The CLI's dx*/dθ equals `sensitiv.jacobian` on the same system, and central
    differences of re-solving (the paper's experiment)."""
    from sensitiv.engine import jacobian
    from sensitiv.pipeline import structure as st
    from sensitiv.plugins import get_registry

    code, out = softspheres
    with xr.open_dataset(out) as ds:
        x_cli = ds["coordinates"].values[0]
        j_cli = ds["dx_dtheta"].values[0]
    registry = get_registry()
    s = st.bidisperse_packing(n_atoms=16, packing_fraction=0.9, seed=0)
    sigma = jnp.array([[1.0, 1.2], [1.2, 1.4]])
    system = registry.get_energy_model("soft_sphere").factory(s, {"parameters": {"sigma": sigma.tolist(), "epsilon": 1.0, "alpha": 2.0}})
    solve = registry.get_equilibrium_solver("fire").factory({"ftol": 1e-12, "max_steps": 200000})
    params = dict(system.params)
    result = solve(system, jnp.asarray(system.positions), params)
    x = jnp.asarray(result.positions)
    np.testing.assert_allclose(x, x_cli, atol=1e-8)
    F = registry.get_optimality_condition("stationary").factory(system, {})
    api = jacobian(lambda x, sig: F(x, {**params, "sigma": sig}), x, sigma,
                            null_space=system.null_space(x))
    j_api = np.asarray(api.jacobian)  # (16, 2, 2, 2)
    tied = j_api[..., 0, 1] + j_api[..., 1, 0]
    expected = np.stack([j_api[..., 0, 0], tied, j_api[..., 1, 1]], axis=-1)
    np.testing.assert_allclose(j_cli, expected, rtol=1e-6, atol=1e-7 * np.abs(expected).max())

    # Central differences of re-solving for σ_AA, from x* (step 1e-5: contacts must not change).
    h = 1e-5

    def resolved(delta):
        p = {**params, "sigma": sigma.at[0, 0].add(delta)}
        r = solve(system, x, p)
        assert bool(r.converged)
        y = np.asarray(r.positions)
        y = y - y.mean(0) + np.asarray(x).mean(0)  # remove the free translation
        return y

    fd = (resolved(h) - resolved(-h)) / (2 * h)
    rel = np.linalg.norm(fd - j_cli[..., 0]) / np.linalg.norm(j_cli[..., 0])
    assert rel < 1e-5, rel


def test_silicon_sw_relaxed_ion_elastic_constants(tmp_path, capsys):
    out = tmp_path / "si.nc"
    code, stdout, err = _run(capsys, "analyze", EXAMPLES / "silicon_sw" / "config.yaml", "-o", out)
    assert code == ExitCode.OK, err
    # The closing summary is the command's output (stdout); stderr has only progress.
    assert "result: trustworthy" in stdout and "jacobian:" in stdout and "timings:" in stdout
    assert "result:" not in err
    with xr.open_dataset(out) as ds:
        gpa = 160.2176634
        c = ds["elastic_constants"].values[0] * gpa
        # the GPa copies, converted by sensitiv.units (eV/Å³ = 160.2176634 GPa)
        assert ds["elastic_constants_gpa"].attrs["units"] == "GPa"
        np.testing.assert_allclose(ds["elastic_constants_gpa"].values[0], c, rtol=1e-12)
        np.testing.assert_allclose(ds["stress_gpa"].values, ds["stress"].values * gpa, rtol=1e-12, atol=1e-14)
        # Stillinger & Weber (1985) silicon: C11 151.4, C12 76.4, C44 56.4 GPa (relaxed ion).
        np.testing.assert_allclose(c[0, 0], 151.4, atol=0.2)
        np.testing.assert_allclose(c[0, 1], 76.4, atol=0.2)
        np.testing.assert_allclose(c[3, 3], 56.4, atol=0.2)
        np.testing.assert_allclose(c, c.T, atol=1e-8)
        clamped = ds["elastic_constants_clamped"].values[0] * gpa
        assert clamped[3, 3] > 1.9 * c[3, 3]  # internal relaxation softens shear a lot
        np.testing.assert_allclose(clamped[:3, :3], c[:3, :3], atol=1e-6)  # no relaxation under pure dilation
        assert list(ds["parameter_label"].values) == [
            "strain[0,0]", "strain[0,1]", "strain[0,2]", "strain[1,1]", "strain[1,2]", "strain[2,2]"]
        assert list(ds["voigt_i_label"].values) == ["xx", "yy", "zz", "yz", "xz", "xy"]
        # Internal strain: only shear moves the atoms inside the cell.
        norms = np.sqrt((ds["dx_dtheta"] ** 2).sum(("atom", "spatial"))).values[0]
        assert norms[[0, 3, 5]].max() < 1e-6 * norms[[1, 2, 4]].min()
        assert ds["dstress_dtheta"].dims == ("frame", "stress_i", "stress_j", "parameter")
        assert ds["cell_lengths"].dims == ("frame", "cell_spatial")
        np.testing.assert_allclose(ds["cell_angles"].values, 90.0)


def test_lj_crystal_from_extxyz(tmp_path, capsys):
    out = tmp_path / "lj.nc"
    code, _, err = _run(
        capsys, "analyze", EXAMPLES / "lj_crystal" / "config.yaml", "-o", out,
        "--set", "structure.file=argon_vacancy_small.extxyz",
        "--set", "model.options.r_cutoff=1.5", "--set", "model.options.r_onset=1.3",
    )
    assert code == ExitCode.OK, err
    with xr.open_dataset(out) as ds:
        assert ds.sizes["atom"] == 31 and ds.sizes["spatial"] == 3
        # Per-species-pair matrices, one species: one component each.
        assert list(ds["parameter_label"].values) == ["sigma[0,0]", "epsilon[0,0]"]
        assert set(ds["species"].values) == {"Ar"} and set(ds["Z"].values) == {18}
        assert ds["coordinates"].attrs["units"] == "angstrom"
        # σ takes the structure's length units, ε the model's energy units.
        assert list(ds["parameter_units"].values) == ["angstrom", "eV"]
        np.testing.assert_allclose(ds["cell"].values[0], np.eye(3) * 10.52)
        ds = ds.set_xindex("parameter_label")
        assert "ase" in ds.attrs["source"]
        # Equal-σ scaling: the LJ minimum scales with σ at fixed ε, so dx*/dσ is bounded by
        # the cell size, and ε (an overall energy scale) does not move the minimum at all.
        eps_norm = float(np.abs(ds["dx_dtheta"].sel(parameter_label="epsilon[0,0]")).max())
        sig_norm = float(np.abs(ds["dx_dtheta"].sel(parameter_label="sigma[0,0]")).max())
        assert eps_norm < 1e-6 * sig_norm
        assert ds["dstress_dtheta"].sizes["parameter"] == 2


@pytest.mark.slow
def test_lj_crystal_full_size(tmp_path, capsys):
    code, _, err = _run(capsys, "analyze", EXAMPLES / "lj_crystal" / "config.yaml", "-o", tmp_path / "lj.nc")
    assert code == ExitCode.OK, err


@pytest.mark.slow
def test_softspheres_full_size(tmp_path, capsys):
    code, _, err = _run(capsys, "analyze", EXAMPLES / "softspheres" / "config.yaml", "-o", tmp_path / "ss.nc")
    assert code == ExitCode.OK, err


def test_inspect_and_plot(softspheres, tmp_path, capsys):
    _, out = softspheres
    code, text, _ = _run(capsys, "inspect", out)
    assert code == ExitCode.OK
    assert "16 atoms × 2 dims, 3 parameters" in text and "sigma[0,1]" in text and "verdict: minimum" in text
    assert "θ sigma[0,1] = 1.2 σ (reduced)" in text
    pytest.importorskip("matplotlib")
    fig = tmp_path / "fig.png"
    code, _, err = _run(capsys, "plot", out, "-o", fig, "--parameter", "sigma[0,0]")
    assert code == ExitCode.OK, err
    assert fig.stat().st_size > 10_000 and fig.read_bytes()[:4] == b"\x89PNG"
    code, _, err = _run(capsys, "plot", out, "-o", fig, "--parameter", "sigma[0,2]")
    assert code == ExitCode.USAGE_ERROR and "did you mean" in err
    code, _, err = _run(capsys, "inspect", tmp_path / "nothing.nc")
    assert code == ExitCode.USAGE_ERROR and "nothing.nc" in err


def test_read_result_back_as_structure(softspheres):
    """A result is an AMBER-style file: the built-in reader reads x* back."""
    from sensitiv.plugins.amber import read_amber_netcdf

    _, out = softspheres
    with xr.open_dataset(out) as ds:
        positions, cell = ds["coordinates"].values[0], ds["cell"].values[0]
    frames = read_amber_netcdf(str(out), {})
    np.testing.assert_array_equal(frames[0].positions, positions)
    np.testing.assert_array_equal(frames[0].cell, cell)
    assert frames[0].pbc == (True, True) and frames[0].species_names == ("A", "B")
