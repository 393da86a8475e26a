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


def _triangular_2d(rattle=0.03, shear=0.05):
    """A 2-D triangular LJ crystal (σ = 1) in a sheared cell of 4 atoms, rattled."""
    a = 2 ** (1 / 6)
    cell = np.array([[2 * a, 0.0], [shear, np.sqrt(3) * a]])
    fractions = np.array([(0, 0), (0.5, 0), (0.25, 0.5), (0.75, 0.5)])
    positions = fractions @ cell + np.random.default_rng(1).normal(0, rattle, (4, 2))
    return Structure(positions=positions, species=np.zeros(4, np.int64), species_names=("A",), cell=cell,
                     pbc=(True, True), source="triangular")


def test_target_stress_force_is_exact_and_its_derivatives_consistent():
    """The strain's generalized force of a stress target is not an energy's gradient; its
    derivatives (∂F/∂z: the engine's operator, not symmetric; ∂F/∂θ) are those of the force
    itself: checked against central differences of F, in 2-D `tri` (3 strain variables, one
    padded entry declared a zero mode)."""
    import jax

    s = _triangular_2d()
    system = sj.MODELS["lennard_jones"].record().factory(s, {})
    relaxed = sc.relax_cell(system, s.cell, "tri", stress=[0.05, -0.08, 0.03])
    F = jax.jit(jax.grad(relaxed.energy))
    z = np.asarray(relaxed.positions).copy()
    z[4] = [0.02, -0.015]  # strain variables away from zero (rotation and F⁻¹ matter)
    z[5, 0] = 0.01
    params = relaxed.params
    jac = np.asarray(jax.jacfwd(F)(z, params)).reshape(z.size, z.size)
    h = 1e-6
    fd = np.zeros_like(jac)
    for k in range(z.size):
        dz = np.zeros(z.size)
        dz[k] = h
        fd[:, k] = (np.asarray(F(z + dz.reshape(z.shape), params)) - np.asarray(F(z - dz.reshape(z.shape), params))
                    ).reshape(-1) / (2 * h)
    assert np.abs(jac - fd).max() < 1e-7 * np.abs(jac).max()
    assert np.abs(jac - jac.T).max() > 1e-4 * np.abs(jac).max()  # a real non-conservative load
    assert np.all(jac[:, -1] == 0) and np.all(jac[-1] == 0)  # the padded entry: a declared zero mode
    assert np.asarray(relaxed.null_space(z))[-1].tolist() == [0.0] * (z.size - 1) + [1.0]
    tangent = {key: np.zeros_like(v) for key, v in params.items()}
    tangent["target_stress"] = np.array([[0.0, 1.0], [1.0, 0.0]])
    mixed = np.asarray(jax.jvp(lambda p: F(z, p), (params,), (tangent,))[1])
    shifted = [{**params, "target_stress": params["target_stress"] + sign * h * tangent["target_stress"]}
               for sign in (1, -1)]
    fd = (np.asarray(F(z, shifted[0])) - np.asarray(F(z, shifted[1]))) / (2 * h)
    assert np.abs(mixed - fd).max() < 1e-7 * np.abs(mixed).max()


@pytest.mark.slow  # ~3 min of compilation cold; CI checks re-relaxation against LAMMPS (tri, 3-D)
@pytest.mark.parametrize("mode", ["tri", "iso"])
def test_target_stress_in_2d_reached_and_differentiated_like_rerelaxation(mode):
    """2-D: the relaxed stress is the target (every component with `tri`, the mean with `iso`),
    and dcell/dθ of a target component equals central differences of re-relaxation."""
    s = _triangular_2d()
    target = [0.05, -0.08, 0.03] if mode == "tri" else None
    kwargs = dict(model="lennard_jones", parameters={"sigma": 1.0, "epsilon": 1.0},
                  solver_options={"ftol": 1e-12, "max_steps": 200000}, observables=["stress"])

    def run(value, **extra):
        cell = {"relax": mode, "stress": value} if mode == "tri" else {"relax": mode, "pressure": value}
        return sensitiv.analyze(s, cell=cell, **kwargs, **extra)

    label = "target_stress[0,1]" if mode == "tri" else "pressure"
    value = target if mode == "tri" else 0.05
    ds = run(value, differentiate=[label])
    assert bool(ds.trustworthy.values.all()), ds.sensitiv
    stress = ds.stress.values[0]
    if mode == "tri":
        np.testing.assert_allclose(stress, [[0.05, 0.03], [0.03, -0.08]], rtol=0, atol=1e-11)
        assert abs(ds.cell.values[0][0, 1]) < 1e-15  # the first vector keeps its direction (x)
    else:
        assert np.trace(stress) / 2 == pytest.approx(-0.05, abs=1e-11)
    h = 1e-5
    moved = [(np.add(value, [0, 0, sign * h]).tolist() if mode == "tri" else value + sign * h) for sign in (1, -1)]
    cells = [run(v, differentiate=[label]).cell.values[0] for v in moved]
    fd = (cells[0] - cells[1]) / (2 * h)
    dcell = ds.dcell_dtheta.values[0, :, :, 0]
    assert np.abs(fd).max() > 1e-2
    np.testing.assert_allclose(dcell, fd, rtol=0, atol=1e-6 * np.abs(fd).max())


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
    config.write_text(head + "model: {name: lennard_jones}\ncell: {relax: isotropic}\n")
    assert main(["validate", str(config)]) == ExitCode.USAGE_ERROR
    assert "cell.relax" in capsys.readouterr().err
    for cell, message in [
        ("{relax: iso, stress: [1, 1, 1, 0, 0, 0]}", "relax 'iso' keeps the shape"),
        ("{relax: aniso, stress: [1, 2, 3, 0, 0, 0.1]}", "shear components need relax 'tri'"),
        ("{relax: aniso, stress: [1, 2, 0.1]}", "shear components need relax 'tri'"),  # 2-D: sxy
        ("{relax: tri, pressure: 0, stress: [1, 2, 3, 0, 0, 0]}", "either cell.pressure or cell.stress"),
        ("{relax: none, stress: [1, 2, 3, 0, 0, 0]}", "set cell.relax to aniso or tri"),
        ("{relax: tri, stress: [1, 2, 3, 4]}", "give 6 in Voigt order"),
    ]:
        config.write_text(head + f"model: {{name: lennard_jones}}\ncell: {cell}\n")
        assert main(["validate", str(config)]) == ExitCode.USAGE_ERROR
        err = capsys.readouterr().err
        assert message in err and "cell" in err, (cell, err)
    config.write_text(head + "model: {name: lennard_jones, differentiate: [pressure]}\n"
                      "cell: {relax: tri, stress: [1, 2, 3, 0, 0, 0]}\n")
    assert main(["validate", str(config)]) == ExitCode.USAGE_ERROR
    assert "no parameter 'pressure'" in capsys.readouterr().err
    config.write_text(head + "model: {name: lennard_jones}\ncell: {relax: aniso}\n"
                      "uncertainty: {relative_std: {sigma: 0.01}}\n")
    assert main(["validate", str(config)]) == ExitCode.USAGE_ERROR
    assert "not available yet with a relaxing cell" in capsys.readouterr().err
    config.write_text(head + "model: {name: lennard_jones}\nstructure_fixed: 1\n")
    assert main(["validate", str(config)]) == ExitCode.USAGE_ERROR
    s = Structure(positions=np.array([[0.0, 0.0], [0.5, 0.5]]), species=np.zeros(2, np.int64),
                  species_names=("A",), cell=np.eye(2), pbc=(True, True))
    with pytest.raises(ConfigError, match="cell.stress: 6 components for a 2-D cell; give 3"):
        sc.relax_cell(sj.MODELS["lennard_jones"].record().factory(s, {}), s.cell, "tri", stress=[0.0] * 6)
