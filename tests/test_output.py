"""The NetCDF writer: atomic replacement, attribute rules, frames and groups, compression."""

from __future__ import annotations

import os

import netCDF4
import numpy as np
import pytest
import xarray as xr

from sensitiv.errors import InputError
from sensitiv.pipeline import output


def _result(n_atoms=4, value=1.0, source="s", problems=("",)):
    """A per-structure dataset of the contract's shape: frame of length 1, numeric
    coordinates with label coordinates."""
    from sensitiv.pipeline.dataset import index_labels

    rng = np.random.default_rng(n_atoms)
    ds = xr.Dataset(
        {
            "coordinates": (("frame", "atom", "spatial"), rng.random((1, n_atoms, 2)), {"units": "sigma"}),
            "dx_dtheta": (("frame", "atom", "spatial", "parameter"), rng.random((1, n_atoms, 2, 2))),
            "parameter_value": (("frame", "parameter"), np.array([[value, 2.0]])),
            "parameter_units": (("parameter",), np.array(["sigma", "eV"], dtype=object)),
            "species": (("atom",), np.array(["A"] * n_atoms, dtype=object)),
            "converged": (("frame",), [True]),
            "frame_source": (("frame",), [source]),
            "problems": (("frame", "problem"), np.array([list(problems)], dtype=object)),
        },
        coords={"frame": [0], "spatial": [0, 1], "spatial_label": ("spatial", ["x", "y"]),
                "parameter": [0, 1], "parameter_label": ("parameter", ["sigma", "epsilon"])},
        attrs={"structure_source": source, "model": "m"},
    )
    return index_labels(ds)


def test_sanitize_attrs():
    clean = output.sanitize_attrs({"a": None, "b": True, "c": {"k": [1, 2]}, "d": [1, 2.5], "e": ["x", "y"], "f": 3})
    assert "a" not in clean
    assert clean["b"] == 1 and isinstance(clean["b"], np.int8)
    assert clean["c"] == "k: [1, 2]"  # YAML text (sensitiv.pipeline._yaml.dump_yaml), read back alike
    # A flat mapping dumps on one line; no YAML directive or document marker in front of it.
    assert output.sanitize_attrs({"m": {"space": "auto", "skin": 0.25}})["m"] == "{space: auto, skin: 0.25}"
    np.testing.assert_array_equal(clean["d"], [1, 2.5])
    assert clean["e"] == "x, y" and clean["f"] == 3


def test_write_is_atomic_and_refuses_to_clobber(tmp_path):
    path = tmp_path / "r.nc"
    output.write_netcdf(_result(), path, compression=2)
    with xr.open_dataset(path) as ds:
        assert ds["converged"].dtype == np.int8 and int(ds["converged"][0]) == 1
        assert ds["converged"].attrs["flag_meanings"] == "false true"
    with netCDF4.Dataset(path) as nc:
        assert nc.variables["dx_dtheta"].filters()["complevel"] == 2
    before = path.read_bytes()
    with pytest.raises(InputError, match="output exists"):
        output.write_netcdf(_result(value=9.0), path)
    assert path.read_bytes() == before
    output.write_netcdf(_result(value=9.0), path, overwrite=True)
    with xr.open_dataset(path) as ds:
        assert float(ds["parameter_value"][0, 0]) == 9.0
    assert sorted(os.listdir(tmp_path)) == ["r.nc"]
    mode = os.stat(path).st_mode & 0o777
    assert mode & 0o044 == 0o044 & ~_umask()


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    path = tmp_path / "r.nc"
    path.write_bytes(b"old")

    def boom(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(xr.Dataset, "to_netcdf", boom)
    with pytest.raises(InputError, match="No space left on device"):
        output.write_netcdf(_result(), path, overwrite=True)
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["r.nc"]


def test_uncompressed(tmp_path):
    path = tmp_path / "r.nc"
    output.write_netcdf(_result(), path, compression=0)
    with netCDF4.Dataset(path) as nc:
        assert not nc.variables["dx_dtheta"].filters()["zlib"]


def test_combine_frames(tmp_path):
    combined = output.combine([_result(value=1.0, source="a"), _result(value=3.0, source="b", problems=("p", "q"))],
                              {"title": "t"})
    assert combined.sizes["frame"] == 2
    assert combined["dx_dtheta"].dims == ("frame", "atom", "spatial", "parameter")
    assert combined["parameter_value"].dims == ("frame", "parameter")
    assert combined["species"].dims == ("atom",)  # static: no frame dimension
    assert combined["parameter_units"].dims == ("parameter",)
    assert list(combined["frame_source"].values) == ["a", "b"]
    assert "structure_source" not in combined.attrs and combined.attrs["model"] == "m"
    # Problems: one sentence per element, padded with empty strings to the longest list.
    assert combined["problems"].dims == ("frame", "problem")
    assert combined["problems"].values.tolist() == [["", ""], ["p", "q"]]
    assert float(combined["parameter_value"].sel(parameter_label="epsilon")[1]) == 2.0
    path = tmp_path / "f.nc"
    output.write_netcdf(combined, path)
    with netCDF4.Dataset(path) as nc:
        assert nc.dimensions["frame"].isunlimited()
    opened = output.open_result(str(path))
    try:
        np.testing.assert_array_equal(opened["parameter_value"].values[:, 0], [1.0, 3.0])
        # label coordinates come back with an index: select by label
        assert float(opened["parameter_value"].sel(parameter_label="sigma")[1]) == 3.0
        assert opened["dx_dtheta"].sel(spatial_label="y").dims == ("frame", "atom", "parameter")
    finally:
        opened.close()


def test_combine_groups_when_atom_counts_differ(tmp_path):
    tree = output.combine([_result(4), _result(6)], {"title": "t"})
    assert isinstance(tree, xr.DataTree)
    path = tmp_path / "g.nc"
    output.write_netcdf(tree, path)
    opened = output.open_result(str(path))
    try:
        assert isinstance(opened, xr.DataTree)
        assert opened["structure_000"].sizes["atom"] == 4
        assert opened["structure_001"].sizes["atom"] == 6
        assert opened.attrs["title"] == "t"
    finally:
        opened.close()
    with netCDF4.Dataset(path) as nc:
        assert set(nc.groups) == {"structure_000", "structure_001"}
        assert nc.groups["structure_001"].variables["dx_dtheta"].filters()["zlib"]


def test_history_has_no_absolute_paths(tmp_path):
    line = output.history_line(["/usr/bin/sensitiv", "analyze", str(tmp_path / "c.yaml"),
                                "--set", f"structure.file={tmp_path / 'x.extxyz'}"], base_dir=str(tmp_path))
    assert str(tmp_path) not in line and line.endswith("sensitiv analyze c.yaml --set structure.file=x.extxyz")


def test_open_result_rejects_other_files(tmp_path):
    other = tmp_path / "o.nc"
    xr.Dataset({"t": ("x", [1.0])}).to_netcdf(other)
    with pytest.raises(InputError, match="not a sensitiv result"):
        output.open_result(str(other))
    text = tmp_path / "t.nc"
    text.write_text("x")
    with pytest.raises(InputError, match="not a readable NetCDF"):
        output.open_result(str(text))


def test_check_output_path(tmp_path):
    assert output.check_output_path(tmp_path / "new.nc", False) == str(tmp_path / "new.nc")
    with pytest.raises(InputError, match="does not exist"):
        output.check_output_path(tmp_path / "x" / "new.nc", False)
    with pytest.raises(InputError, match="is a directory"):
        output.check_output_path(tmp_path, True)
