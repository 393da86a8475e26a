"""Fixed atoms and the variable cell without LAMMPS: rigid modes, exact laws, selections,
files and errors. (Agreement with LAMMPS' `fix setforce` and `fix box/relax`
re-minimizations: tests/test_constraints_lammps.py.)"""

from __future__ import annotations

import numpy as np
import pytest

import sensitiv
import sensitiv.constraints as sc
import sensitiv_jaxmd as sj
from sensitiv.errors import ConfigError, InputError
from sensitiv.pipeline.config import FixedAtoms, Region
from sensitiv.pipeline.structure import fixed_atoms
from sensitiv.records import Structure

FCC = np.array([(0, 0, 0), (0, 0.5, 0.5), (0.5, 0, 0.5), (0.5, 0.5, 0)])
LJ = dict(model="lennard_jones", parameters={"sigma": 3.405, "epsilon": 0.0104},
          model_options={"r_cutoff": 2.2, "r_onset": 1.9, "energy_units": "eV"},
          solver_options={"ftol": 1e-11, "max_steps": 100000})


def _fcc(a=5.26, repeat=1, vacancy=None):
    cells = [np.array(c) for c in np.ndindex(repeat, repeat, repeat)]
    positions = np.array([(b + c) * a for c in cells for b in FCC])
    if vacancy is not None:
        positions = np.delete(positions, vacancy, axis=0)
    return Structure(positions=positions, species=np.zeros(len(positions), np.int64), species_names=("Ar",),
                     cell=np.eye(3) * a * repeat, pbc=(True, True, True), source="fcc")


def _cluster():
    rng = np.random.default_rng(0)
    positions = np.array([(0, 0, 0), (1.1, 0, 0), (0, 1.1, 0), (0, 0, 1.1), (1.1, 1.1, 0.1)]) + rng.normal(0, 0.01, (5, 3))
    return Structure(positions=positions, species=np.zeros(5, np.int64), species_names=("A",), source="cluster")


@pytest.mark.parametrize("fixed, expected", [([], 6), ([0], 3), ([0, 1], 1), ([0, 1, 2], 0)])
def test_fixed_atoms_pin_exactly_the_rigid_modes_they_touch(fixed, expected):
    """Free space: 3 translations + 3 rotations; one fixed atom leaves the rotations about
    it, two the rotation about their axis, three (not collinear) none. The modes left are
    orthonormal, and the energy is invariant along them."""
    import jax

    system = sj.MODELS["lennard_jones"].record().factory(_cluster(), {"space": "free"})
    mask = np.isin(np.arange(5), fixed)
    constrained = sc.fix_atoms(system, mask)
    z = constrained.positions
    assert z.shape == (5 - len(fixed), 3)
    modes = None if constrained.null_space is None else np.asarray(constrained.null_space(z))
    assert (0 if modes is None else modes.shape[0]) == expected
    if modes is not None:
        np.testing.assert_allclose(modes @ modes.T, np.eye(expected), atol=1e-12)
        # the energy is invariant along them (to first order: the gradient is orthogonal),
        # and the modes move no fixed atom by construction
        gradient = np.asarray(jax.grad(constrained.energy)(z, constrained.params)).reshape(-1)
        assert np.abs(gradient).max() > 1e-3  # not at equilibrium: a real test of invariance
        assert np.abs(modes @ gradient).max() < 1e-12 * np.abs(gradient).max()
    if not fixed:
        assert constrained is system  # nothing fixed: the system itself
        return
    # The full positions come back with the fixed atoms where they were.
    np.testing.assert_array_equal(np.asarray(constrained.energy.positions(z, constrained.params)),
                                  np.asarray(system.positions))


@pytest.mark.slow  # ~100 s of compilation on 2 cores; CI covers the variable cell against LAMMPS
def test_variable_cell_scaling_law_and_bulk_modulus_from_two_routes():
    """LJ at zero pressure: a₀ ∝ σ exactly, so da/dσ = a/σ; and the bulk modulus from the
    cell's response to pressure, B = −V dP/dV, equals (C11 + 2 C12)/3 from the relaxed-ion
    elastic constants of a fixed-cell analysis at the relaxed cell."""
    ds = sensitiv.analyze(_fcc(), differentiate=["sigma", "epsilon", "pressure"], cell={"relax": "aniso"},
                          observables=["stress"], **LJ)
    assert bool(ds.trustworthy.values.all()), ds.sensitiv
    cell = ds.cell.values[0]
    a = cell[0, 0]
    dcell = ds.dcell_dtheta.values[0]
    assert dcell[0, 0, 0] == pytest.approx(a / 3.405, rel=1e-9)  # da/dσ = a/σ
    assert abs(dcell[0, 0, 1]) < 1e-9 * a / 0.0104  # the energy scale does not move the zero-pressure cell
    np.testing.assert_allclose(cell, np.eye(3) * a, atol=1e-12)  # cubic stays cubic
    np.testing.assert_allclose(ds.dx_dtheta.values[0, :, :, 0], ds.coordinates.values[0] / 3.405, atol=1e-9)
    bulk_from_pressure = -a / (3 * dcell[0, 0, 2])  # V = a³: B = −V dP/dV = −a / (3 da/dP)

    relaxed = Structure(positions=ds.coordinates.values[0], species=np.zeros(4, np.int64), species_names=("Ar",),
                        cell=cell, pbc=(True,) * 3, source="relaxed")
    elastic = sensitiv.analyze(relaxed, differentiate=["strain"], observables=["elastic_constants"],
                               solver="none", **{k: v for k, v in LJ.items() if k != "solver_options"})
    c = elastic.elastic_constants.values[0]
    assert bulk_from_pressure == pytest.approx((c[0, 0] + 2 * c[0, 1]) / 3, rel=1e-8)


def test_selections_add_up_and_regions_follow_lammps():
    s = _fcc(repeat=2)
    x = np.asarray(s.positions)
    block = Region("block", "z", "in", lo=(None, None, -0.1), hi=(None, None, 0.1))
    mask = fixed_atoms(s, FixedAtoms(from_file=True, region=block))
    assert mask.tolist() == (np.abs(x[:, 2]) < 0.1).tolist()
    sphere = Region("sphere", "z", "out", center=(5.26, 5.26, 5.26), radius=4.0)
    assert fixed_atoms(s, FixedAtoms(True, region=sphere)).tolist() == (np.linalg.norm(x - 5.26, axis=1) > 4.0).tolist()
    cylinder = Region("cylinder", "x", "in", center=(0.0, 5.26, 5.26), radius=2.0)
    inside = np.linalg.norm(x[:, 1:] - 5.26, axis=1) <= 2.0
    assert fixed_atoms(s, FixedAtoms(True, region=cylinder)).tolist() == inside.tolist()
    union = fixed_atoms(s, FixedAtoms(True, indices=(0,), ids=(3,), region=cylinder))
    assert union.tolist() == (inside | np.isin(np.arange(len(x)), [0, 2])).tolist()
    assert fixed_atoms(s, FixedAtoms(True)) is None
    flagged = Structure(**{**s.__dict__, "fixed": np.arange(len(x)) == 5})
    assert fixed_atoms(flagged, FixedAtoms(True)).nonzero()[0].tolist() == [5]
    assert fixed_atoms(flagged, FixedAtoms(False)) is None
    with pytest.raises(InputError, match=r"structure.fixed.ids: atom id 33 is not in fcc \(its ids run 1..32\)"):
        fixed_atoms(s, FixedAtoms(True, ids=(33,)))
    with pytest.raises(InputError, match=r"structure.fixed.species: 'Cu' is not a species"):
        fixed_atoms(s, FixedAtoms(True, species=("Cu",)))
    with pytest.raises(InputError, match="every atom .* is fixed"):
        fixed_atoms(s, FixedAtoms(True, species=("Ar",)))
    with pytest.raises(InputError, match=r"region.center: 2 values for 3-D"):
        fixed_atoms(s, FixedAtoms(True, region=Region("sphere", "z", "in", center=(0.0, 0.0), radius=1.0)))


def test_extxyz_fixatoms_through_the_cli(tmp_path):
    """ASE FixAtoms written to extended XYZ (`move_mask`) are fixed by `sensitiv analyze`;
    their rows of dx_dtheta are exactly zero; a partial FixCartesian is refused."""
    import ase.io
    import xarray as xr
    from ase.build import bulk
    from ase.constraints import FixAtoms, FixCartesian

    from sensitiv.cli import ExitCode, main

    atoms = bulk("Ar", "fcc", a=5.26, cubic=True)
    atoms.rattle(0.05, seed=3)
    atoms.set_constraint(FixAtoms([0, 2]))
    ase.io.write(tmp_path / "fixed.extxyz", atoms)
    (tmp_path / "config.yaml").write_text(
        "structure: {file: fixed.extxyz}\n"
        "model: {name: lennard_jones, parameters: {sigma: 3.405, epsilon: 0.0104}, differentiate: [sigma],\n"
        "        options: {r_cutoff: 2.2, r_onset: 1.9, energy_units: eV}}\n"
        "solver: {options: {ftol: 1.0e-10}}\n")
    assert main(["analyze", str(tmp_path / "config.yaml"), "-q"]) == ExitCode.OK
    with xr.open_dataset(tmp_path / "config.nc") as ds:
        assert ds.fixed.values.tolist() == [1, 0, 1, 0]
        dx = ds.dx_dtheta.values[0]
        assert np.all(dx[[0, 2]] == 0.0) and np.abs(dx[[1, 3]]).max() > 1e-3
        np.testing.assert_array_equal(ds.coordinates.values[0][[0, 2]], ds.initial_coordinates.values[0][[0, 2]])
    atoms.set_constraint(FixCartesian([1], mask=(True, False, False)))
    ase.io.write(tmp_path / "fixed.extxyz", atoms)
    assert main(["analyze", str(tmp_path / "config.yaml"), "-q", "--force"]) == ExitCode.USAGE_ERROR


def test_config_errors_name_the_key(tmp_path, capsys):
    from sensitiv.cli import ExitCode, main

    config = tmp_path / "config.yaml"
    head = "structure: {generator: {name: fcc, lattice_constant: 1.55}}\n"
    config.write_text(head + "model: {name: lennard_jones, differentiate: ['strain[0,0]']}\ncell: {relax: aniso}\n")
    assert main(["validate", str(config)]) == ExitCode.USAGE_ERROR
    assert "differentiate 'pressure'" in capsys.readouterr().err
    config.write_text(head + "model: {name: lennard_jones}\ncell: {relax: iso}\n")
    assert main(["validate", str(config)]) == ExitCode.USAGE_ERROR
    assert "cell.relax" in capsys.readouterr().err
    config.write_text(head + "model: {name: lennard_jones}\ncell: {relax: aniso}\n"
                      "uncertainty: {relative_std: {sigma: 0.01}}\n")
    assert main(["validate", str(config)]) == ExitCode.USAGE_ERROR
    assert "not available yet with a relaxing cell" in capsys.readouterr().err
    config.write_text(head + "model: {name: lennard_jones}\nstructure_fixed: 1\n")
    assert main(["validate", str(config)]) == ExitCode.USAGE_ERROR
    with pytest.raises(ConfigError, match="'tri' needs a 3-D cell"):
        s = Structure(positions=np.array([[0.0, 0.0], [0.5, 0.5]]), species=np.zeros(2, np.int64),
                      species_names=("A",), cell=np.eye(2), pbc=(True, True))
        sc.relax_cell(sj.MODELS["lennard_jones"].record().factory(s, {}), s.cell, "tri")
