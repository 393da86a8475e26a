"""Results in the user's tools: ASE reads the result and every export with the right
species, cell and positions; `to_atoms` gives back the analyzed structure; OVITO (its wheel
is in the test extra) opens the exports, and its AMBER reader's acceptance rules are checked;
the IOOS CF checker runs on a result without exceptions and finds no error in a result in
physical units; units convert by known factors."""

from __future__ import annotations

import os
import pathlib
import re

import netCDF4
import numpy as np
import pytest
import xarray as xr

from sensitiv import io, units
from sensitiv.cli import ExitCode, main
from sensitiv.errors import InputError

ROOT = pathlib.Path(__file__).resolve().parents[1]
LJ = ROOT / "examples" / "lj_crystal"

ase_io = pytest.importorskip("ase.io")


@pytest.fixture(scope="module")
def argon(tmp_path_factory):
    """The LJ vacancy example at 31 atoms (Å, eV), through the CLI."""
    folder = tmp_path_factory.mktemp("argon")
    out = folder / "argon.nc"
    code = main(["analyze", str(LJ / "config.yaml"), "-o", str(out), "-q",
                 "--set", "structure.file=argon_vacancy_small.extxyz",
                 "--set", "model.options.r_cutoff=1.5", "--set", "model.options.r_onset=1.3"])
    assert code == ExitCode.OK
    return out


def test_ase_reads_the_result_as_an_amber_trajectory(argon):
    """The result itself: `frame` dimension, `Z`, cell lengths/angles — ASE's reader."""
    source = ase_io.read(LJ / "argon_vacancy_small.extxyz")
    atoms = ase_io.read(argon, format="netcdftrajectory")
    assert atoms.get_chemical_symbols() == ["Ar"] * 31
    np.testing.assert_allclose(atoms.cell.array, source.cell.array, atol=1e-12)
    assert atoms.pbc.all()
    with xr.open_dataset(argon) as ds:
        np.testing.assert_allclose(atoms.positions, ds["coordinates"].values[0], atol=1e-12)
        assert ds["Z"].values.tolist() == [18] * 31
    # the per-atom arrays come along (frame-first variables with an atom dimension)
    assert atoms.arrays["dx_dtheta"].shape == (31, 3, 2)


def test_to_atoms_is_the_analyzed_structure(argon):
    source = ase_io.read(LJ / "argon_vacancy_small.extxyz")
    ds = io.open_result(argon)
    try:
        initial = io.to_atoms(ds, positions="initial")
        relaxed = io.to_atoms(ds, frame=-1)
        np.testing.assert_allclose(initial.positions, source.positions, atol=1e-12)
        assert initial.get_chemical_symbols() == source.get_chemical_symbols()
        np.testing.assert_allclose(initial.cell.array, source.cell.array, atol=1e-12)
        assert list(initial.pbc) == list(source.pbc)
        np.testing.assert_allclose(relaxed.positions, ds["coordinates"].values[0])
        # the analysis wrapped atoms into the cell; "initial" moves them back (as read)
        assert ds["cell_image"].values.any()  # the case exercises the unwrapping
        unwrapped = ds["coordinates"].values[0] + ds["cell_image"].values[0] @ ds["cell"].values[0]
        assert np.abs(unwrapped - initial.positions).max() < 0.1  # a relaxation, no jumps
        vectors = relaxed.arrays["dx_dtheta_sigma_0_0"]
        np.testing.assert_allclose(vectors, ds["dx_dtheta"].sel(parameter_label="sigma[0,0]").values[0])
        np.testing.assert_allclose(relaxed.arrays["dx_dtheta_norm_sigma_0_0"], np.linalg.norm(vectors, axis=1))
        assert relaxed.info["trustworthy"] is True and relaxed.info["theta_units_sigma_0_0"] == "angstrom"
        only = io.to_atoms(ds, parameter="epsilon[0,0]")
        assert "dx_dtheta_epsilon_0_0" in only.arrays and "dx_dtheta_sigma_0_0" not in only.arrays
        with pytest.raises(InputError, match="did you mean 'sigma\\[0,0\\]'"):
            io.to_atoms(ds, parameter="sigma[0,1]")
        with pytest.raises(InputError, match="holds 1 frame"):
            io.to_atoms(ds, frame=3)
    finally:
        ds.close()


@pytest.mark.parametrize("name", ["out.extxyz", "out.dump", "out.nc"])
def test_exports_read_back_with_ase(argon, tmp_path, capsys, name):
    target = tmp_path / name
    code = main(["export", str(argon), "-o", str(target)])
    out, err = capsys.readouterr()
    assert code == ExitCode.OK, err
    assert "wrote" in out
    fmt = {"out.extxyz": "extxyz", "out.dump": "lammps-dump-text", "out.nc": "netcdftrajectory"}[name]
    back = ase_io.read(target, format=fmt)
    with xr.open_dataset(argon) as ds:
        x = ds["coordinates"].values[0]
        cell = ds["cell"].values[0]
        field = ds["dx_dtheta"].values[0, :, :, 0]
    assert back.get_chemical_symbols() == ["Ar"] * 31
    np.testing.assert_allclose(back.cell.array, cell, atol=1e-6)
    # extxyz and the dump write every float64 exactly (the dump's positions pass through
    # LAMMPS' restricted-triclinic rotation: round-off); AMBER coordinates are float32
    if name == "out.extxyz":
        np.testing.assert_allclose(back.cell.array, cell, rtol=1e-15, atol=0)
        np.testing.assert_allclose(back.positions, x, rtol=1e-15, atol=0)
        np.testing.assert_allclose(back.arrays["dx_dtheta_sigma_0_0"], field, rtol=1e-15, atol=0)
        assert back.info["trustworthy"] is True and back.info["theta_units_sigma_0_0"] == "angstrom"
    elif name == "out.nc":
        np.testing.assert_allclose(back.positions, x, atol=1e-5)
        np.testing.assert_allclose(back.arrays["dx_dtheta_sigma_0_0"], field, atol=1e-7)
    else:  # ASE's dump reader keeps only the standard columns
        np.testing.assert_allclose(back.positions, x, atol=1e-12)
        header = target.read_text().splitlines()[8]
        assert "dx_dtheta_sigma_0_0_x" in header and "dx_dtheta_norm_epsilon_0_0" in header
    # an existing export is not replaced without --force
    code = main(["export", str(argon), "-o", str(target)])
    assert code == ExitCode.USAGE_ERROR and "output exists" in capsys.readouterr().err


def test_amber_export_meets_ovitos_acceptance_rules(argon, tmp_path):
    """OVITO's NetCDF reader (ovito.org/docs, "NetCDF file reader") takes a file as an AMBER
    trajectory when its global `Conventions` is exactly "AMBER"; it reads `coordinates`
    (frame, atom, spatial), `cell_lengths`/`cell_angles`, and every other per-atom
    variable as a particle property. NetCDF-3 readers need no NetCDF-4 strings."""
    target = io.export(io.open_result(argon), tmp_path / "t.nc")
    with netCDF4.Dataset(target) as nc:
        assert nc.Conventions == "AMBER" and nc.ConventionVersion == "1.0"
        assert nc.file_format == "NETCDF3_64BIT_OFFSET"
        assert nc.dimensions["frame"].isunlimited() and len(nc.dimensions["spatial"]) == 3
        assert nc.variables["coordinates"].dimensions == ("frame", "atom", "spatial")
        assert nc.variables["coordinates"].units == "angstrom"
        assert nc.variables["cell_lengths"].dimensions == ("frame", "cell_spatial")
        assert nc.variables["cell_angles"].dimensions == ("frame", "cell_angular")
        assert b"".join(nc.variables["spatial"][:].data) == b"xyz"
        assert nc.variables["dx_dtheta_sigma_0_0"].dimensions == ("frame", "atom", "spatial")


def test_ovito_opens_the_exports(argon, tmp_path):
    """OVITO's own readers (the `ovito` wheel of the test extra, headless): the AMBER file
    and the extxyz export open with the species (AMBER: type ids = atomic numbers, the
    AMBER convention, as OVITO's reader takes no type names; extxyz: named types), the
    cell, the positions (AMBER float32; extxyz exact up to OVITO's decimal parser) and
    the per-atom sensitivity vectors as particle properties."""
    ovito_io = pytest.importorskip("ovito.io", reason="the ovito wheel is not installed (pip install ovito)")
    ds = io.open_result(argon)
    try:
        x = ds["coordinates"].values[0]
        field = ds["dx_dtheta"].values[0, :, :, 0]
        for name, atol in (("o.nc", 1e-5), ("o.extxyz", 1e-14)):
            data = ovito_io.import_file(str(io.export(ds, tmp_path / name))).compute()
            assert data.particles.count == 31
            types = data.particles.particle_types
            if name == "o.nc":
                assert [t.id for t in types.types] == [18] and np.asarray(types).tolist() == [18] * 31
            else:
                assert [t.name for t in types.types] == ["Ar"]
                assert [types.type_by_id(i).name for i in np.asarray(types)] == ["Ar"] * 31
            np.testing.assert_allclose(np.asarray(data.cell[:, :3]), ds["cell"].values[0], atol=atol)
            assert tuple(data.cell.pbc) == (True, True, True)
            np.testing.assert_allclose(np.asarray(data.particles.positions), x, atol=atol)
            np.testing.assert_allclose(np.asarray(data.particles["dx_dtheta_sigma_0_0"]), field, atol=atol)
            np.testing.assert_allclose(np.asarray(data.particles["dx_dtheta_norm_sigma_0_0"]),
                                       np.linalg.norm(field, axis=1), atol=atol)
    finally:
        ds.close()


def test_export_refuses_unknown_endings_and_missing_groups(argon, tmp_path, capsys):
    code = main(["export", str(argon), "-o", str(tmp_path / "x.pdb")])
    assert code == ExitCode.USAGE_ERROR and "cannot tell the export format" in capsys.readouterr().err
    code = main(["export", str(argon), "-o", str(tmp_path / "x.xyz"), "--structure", "2"])
    assert code == ExitCode.USAGE_ERROR and "holds 1 structure" in capsys.readouterr().err


def _checker_errors(path) -> tuple[list[str], str]:
    from compliance_checker.runner import CheckSuite, ComplianceChecker

    CheckSuite.load_all_available_checkers()
    report = path.parent / "cf.json"
    passed, errors = ComplianceChecker.run_checker(str(path), ["cf:1.11"], verbose=0, criteria="normal",
                                                   output_filename=str(report), output_format="json")
    assert not errors, "the CF checker raised an exception"
    import json

    results = json.loads(report.read_text())["cf:1.11"]
    assert not results.get("errors"), results.get("errors")
    high = [m for item in results["all_priorities"] if item["weight"] == 3 and item["value"][0] < item["value"][1]
            for m in item["msgs"]]
    return high, report.read_text()


def test_cf_checker(argon, tmp_path):
    """The IOOS compliance checker (cf:1.11) runs without exceptions and finds no error in
    a result in physical units; in reduced units it objects only to the units σ and ε,
    which UDUNITS does not have (documented in docs/output.md)."""
    pytest.importorskip("compliance_checker")
    copy = tmp_path / "argon.nc"
    copy.write_bytes(argon.read_bytes())
    high, _ = _checker_errors(copy)
    assert high == [], high


def test_units_convert_by_known_factors():
    assert units.convert(1.0, "eV angstrom-3", "GPa") == pytest.approx(160.21766, rel=1e-7)
    assert units.to_gpa(1.0, "eV angstrom-3") == pytest.approx(160.2176634, rel=1e-12)
    assert units.to_gpa(1.0, "epsilon sigma-3") is None
    assert units.convert(1.0, "kcal/mol", "eV") == pytest.approx(0.0433641, rel=1e-6)  # per particle
    assert units.convert(1.0, "bar", "GPa") == pytest.approx(1e-4)
    assert units.convert([1.0, 2.0], "nm", "angstrom").tolist() == [10.0, 20.0]
    assert units.lammps_style("metal") == {"length": "angstrom", "energy": "eV", "pressure": "bar",
                                           "mass": "g/mol", "time": "ps"}
    assert units.lammps_style("lj")["energy"] == "epsilon"
    assert units.convert(1.0, units.lammps_style("real")["pressure"], "bar") == pytest.approx(1.01325)
    assert units.check("real", "energy") == "kcal/mol"
    with pytest.raises(units.UnitsError, match="not a unit"):
        units.check("electron-volts per atom", "energy")
    with pytest.raises(units.UnitsError, match="not a unit of energy"):
        units.check("angstrom", "energy")
    with pytest.raises(units.UnitsError, match="dimensionless.*'epsilon'"):
        units.check("1", "energy")
    with pytest.raises(units.UnitsError, match="different dimensions"):
        units.convert(1.0, "sigma", "angstrom")
    assert units.ratio("angstrom", "eV") == "angstrom eV-1" and units.ratio("sigma", "sigma") == "1"
    assert units.describe("eV angstrom-3") == "eV/Å³" and units.describe("epsilon sigma-3") == "ε/σ³ (reduced)"


def test_written_units_are_udunits_when_physical(argon):
    """Every `units` attribute of a result in Å/eV is a UDUNITS-2 unit (cf-units parses it)."""
    cf_units = pytest.importorskip("cf_units")
    with xr.open_dataset(argon) as ds:
        found = {name: var.attrs["units"] for name, var in ds.variables.items() if "units" in var.attrs}
    assert {"coordinates", "dx_dlogtheta", "energy", "stress", "stress_gpa", "smallest_eigenvalue",
            "stationarity_residual", "cell_angles", "solution_error_estimate"} <= set(found)
    for name, text in found.items():
        cf_units.Unit(text)  # raises for a string UDUNITS does not read
        assert not re.search(r"sigma|epsilon", text), (name, text)


def test_config_units_are_checked(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("structure: {generator: {name: bidisperse_packing, n_atoms: 8}}\n"
                      "model: {name: soft_sphere, options: {energy_units: electron-volts per atom}}\n")
    assert main(["validate", str(config)]) == ExitCode.USAGE_ERROR
    err = capsys.readouterr().err
    assert "c.yaml:2:52: $.model.options.energy_units: 'electron-volts per atom' is not a unit" in err
    config.write_text(config.read_text().replace("electron-volts per atom", "real"))
    from sensitiv.pipeline import config as config_module

    assert config_module.load(str(config)).model.options["energy_units"] == "kcal/mol"


def test_stored_paths_name_no_machine_layout(tmp_path):
    """A potential file found in an installed package is stored as `site-packages/...`,
    never as a climb from the config's folder into this machine's Python environment; other
    paths are relative to the config's folder."""
    import sysconfig

    from sensitiv.pipeline.dataset import relative_path

    package_file = os.path.join(sysconfig.get_paths()["purelib"], "lammps", "potentials", "Cu_u3.eam")
    assert relative_path(package_file, str(tmp_path)) == "site-packages/lammps/potentials/Cu_u3.eam"
    assert relative_path(str(tmp_path / "data" / "v.data"), str(tmp_path)) == "data/v.data"
    assert relative_path(str(tmp_path.parent / "x.xyz"), str(tmp_path)) == "../x.xyz"
    assert relative_path("generator:diamond(repeat=[1, 1, 1])", str(tmp_path)).startswith("generator:")
