"""examples/md_sensitivity: the paper's soft-sphere experiment through `sensitiv analyze`,
checked against finite differences of re-minimization."""

import json

import numpy as np
import pytest
import xarray as xr

from example_loader import load_example


md = load_example("md_sensitivity")


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    out = tmp_path_factory.mktemp("md")
    path = md.analyze(out, n_atoms=16)
    from sensitiv import io

    with io.open_result(path) as ds:
        return ds.isel(frame=0).load()


def test_analyze_reports_a_trustworthy_minimum(result):
    assert str(result["verdict"].values) == "minimum"
    assert int(result["trustworthy"].values) == 1
    assert int(result["null_space_dimension"].values) == 2  # the two translations
    assert float(result["smallest_eigenvalue"].values) > 1e-3


def test_small_diameter_field_matches_finite_differences(result):
    field = md.small_diameter_field(result)
    np.testing.assert_allclose(field.sum(axis=0), 0.0, atol=1e-10)  # minimum norm: no net translation
    fd = md.finite_differences(result)
    error = np.max(np.abs(fd - field)) / np.max(np.abs(field))
    assert error < 1e-6, error


@pytest.mark.slow
def test_script_writes_figures(tmp_path):
    summary = md.main(["--small", "--out", str(tmp_path)])
    assert summary["trustworthy"] == 1 and summary["null_space_dimension"] == 2
    for name in ("md_sensitivity.png", "sensitiv_plot.png"):
        assert (tmp_path / name).stat().st_size > 10_000
    with xr.open_dataset(tmp_path / "md_dA.nc") as derived:
        assert list(derived["parameter_label"].values) == ["sigma[0,0]", "sigma[0,1]", "d_A"]
        columns = derived["dx_dtheta"].set_xindex("parameter_label")
        combined = columns.sel(parameter_label="sigma[0,0]") + 0.5 * columns.sel(parameter_label="sigma[0,1]")
        np.testing.assert_allclose(columns.sel(parameter_label="d_A"), combined, rtol=1e-14)
    assert json.loads((tmp_path / "md_sensitivity.json").read_text())["n_atoms"] == 32
