"""`sensitiv.elastic_constants` and the Voigt strain convention.

- the Cauchy tangent (`definition="stress"`) equals matscipy's born + non-affine + stress
  contribution, and the Green–Lagrange energy Hessian (`"energy"`) its born + non-affine,
  on a rattled LJ vacancy cell under residual stress, where the two definitions differ;
- both equal LAMMPS' own finite differences (ELASTIC example style: `change_box` ±h,
  atoms re-minimized, virial stress read) on an EAM copper vacancy at zero stress;
- the pipeline's `elastic_constants` and `dx_dtheta` along `strain[i,j]` are the helper's
  numbers: one convention (Voigt, engineering shear) in the CLI and the Python API.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sensitiv
import sensitiv_jaxmd as sj
from sensitiv.elasticity import strain_tensor, voigt_labels
from sensitiv.errors import ConfigError
from sensitiv.records import Structure

import lammps_reference as lmp_ref

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

FCC = np.array([(0, 0, 0), (0, 0.5, 0.5), (0.5, 0, 0.5), (0.5, 0.5, 0)])
LJ_OPTIONS = {"r_cutoff": 8.5, "cutoff_units": "absolute", "truncation": "shift", "energy_units": "eV",
              "parameters": {"sigma": 3.405, "epsilon": 0.0104}}


def _vacancy(a, rattle, seed=0, species="Ar"):
    positions = np.array([(b + np.array(c)) * a for c in np.ndindex(2, 2, 2) for b in FCC])[1:]
    positions = positions + np.random.default_rng(seed).normal(0.0, rattle, positions.shape)
    return Structure(positions=positions, species=np.zeros(len(positions), np.int64), species_names=(species,),
                     cell=np.eye(3) * 2 * a, pbc=(True,) * 3, source="vacancy")


@pytest.fixture(scope="module")
def stressed_lj():
    """A rattled LJ argon vacancy cell relaxed at fixed cell: residual stress ≈ −3.8 MPa·10."""
    system = sj.MODELS["lennard_jones"].record().factory(_vacancy(5.26, 0.05), LJ_OPTIONS)
    result = sj.fire({"ftol": 1e-12})(system)
    assert result.converged
    return system, result.positions


def test_voigt_strain_uses_engineering_shears():
    e = jnp.array([0.01, 0.02, 0.03, 0.04, 0.05, 0.06])
    eps = np.asarray(strain_tensor(e, 3))
    np.testing.assert_allclose(eps, [[0.01, 0.03, 0.025], [0.03, 0.02, 0.02], [0.025, 0.02, 0.03]])
    assert voigt_labels(3) == ("xx", "yy", "zz", "yz", "xz", "xy") and voigt_labels(2) == ("xx", "yy", "xy")


def test_both_definitions_match_matscipy_under_residual_stress(stressed_lj):
    matscipy = pytest.importorskip("matscipy")
    from ase import Atoms
    from matscipy.calculators.pair_potential import LennardJonesCut, PairPotential
    from matscipy.elasticity import full_3x3x3x3_to_Voigt_6x6

    del matscipy
    system, x = stressed_lj
    stress = np.asarray(system.observables["stress"](x, system.params))
    assert np.abs(stress).max() > 1e-4  # eV/Å³: a stressed cell, where the definitions differ
    cauchy = sensitiv.elastic_constants(system, x)
    energy = sensitiv.elastic_constants(system, x, definition="energy")
    assert cauchy.definition == "stress" and cauchy.units == "eV angstrom-3"
    assert np.abs(cauchy.relaxed - energy.relaxed).max() > 0.1 * np.abs(stress).max()

    atoms = Atoms(f"Ar{len(x)}", positions=np.asarray(x), cell=np.asarray(system.metadata["cell"]), pbc=True)
    calc = PairPotential({(18, 18): LennardJonesCut(0.0104, 3.405, 8.5)})
    atoms.calc = calc
    tight = {"x0": None, "rtol": 1e-13, "maxiter": None, "M": None, "callback": None, "atol": 1e-16}

    def voigt(c):
        c = np.asarray(c)
        return full_3x3x3x3_to_Voigt_6x6(c) if c.ndim == 4 else c

    born = voigt(calc.get_born_elastic_constants(atoms))
    non_affine = voigt(calc.get_non_affine_contribution_to_elastic_constants(atoms, cg_parameters=tight))
    full = voigt(calc.get_elastic_constants(atoms, cg_parameters=tight))
    assert lmp_ref.relative_error(energy.clamped, born) < 1e-10
    assert lmp_ref.relative_error(energy.relaxed, born + non_affine) < 1e-8
    assert lmp_ref.relative_error(cauchy.relaxed, full) < 1e-8
    # the Cauchy tangent's clamped part: the stress's partial derivative by the strain
    np.testing.assert_allclose(energy.relaxed, energy.relaxed.T, atol=1e-14)


def test_pipeline_and_python_api_share_the_convention(stressed_lj, tmp_path):
    """`strain[0,1]` in `sensitiv analyze` is the engineering shear γ_xy: its dx_dtheta
    column is the helper's internal relaxation along Voigt xy, which is the derivative by
    the strain tensor's entry [0,1] moved alone (the Python API's number)."""
    system, x = stressed_lj
    structure = Structure(positions=np.asarray(x), species=np.zeros(len(x), np.int64), species_names=("Ar",),
                          cell=np.asarray(system.metadata["cell"]), pbc=(True,) * 3, source="relaxed")
    options = {k: v for k, v in LJ_OPTIONS.items() if k != "parameters"}
    ds = sensitiv.analyze(structure, model="lennard_jones", parameters=LJ_OPTIONS["parameters"], model_options=options,
                          differentiate=["strain"], observables=["elastic_constants"], solver="none")
    assert list(ds.parameter_label.values) == ["strain[0,0]", "strain[0,1]", "strain[0,2]", "strain[1,1]",
                                               "strain[1,2]", "strain[2,2]"]
    assert not ds.parameter_symmetric.values.any()  # each moves one entry of the strain tensor
    helper = sensitiv.elastic_constants(system, x)
    np.testing.assert_allclose(ds.elastic_constants.values[0], helper.relaxed, rtol=1e-10, atol=1e-14)
    # dx/dγ_xy three ways: the pipeline's column, the helper's Voigt xy, root_jvp on entry [0,1]
    column = ds.dx_dtheta.values[0][:, :, 1]
    tangent = {k: jnp.zeros_like(v) for k, v in system.params.items()}
    tangent["strain"] = tangent["strain"].at[0, 1].set(1.0)
    solve = sensitiv.LinearSolver("lstsq", null_space=system.null_space(x))
    dx = sensitiv.root_jvp(sj.stationary(system), x, (system.params,), (tangent,), solve=solve)
    dx = np.asarray(dx) - np.asarray(dx).mean(axis=0)
    np.testing.assert_allclose(column - column.mean(axis=0), dx, rtol=0, atol=1e-9 * np.abs(dx).max())
    xy = helper.internal_relaxation[:, :, 5]
    np.testing.assert_allclose(xy - xy.mean(axis=0), dx, rtol=0, atol=1e-9 * np.abs(dx).max())


def test_errors_name_what_to_fix(stressed_lj):
    system, x = stressed_lj
    with pytest.raises(ConfigError, match="definition must be one of stress, energy"):
        sensitiv.elastic_constants(system, x, definition="cauchy")
    strained = {**system.params, "strain": jnp.eye(3) * 1e-3}
    with pytest.raises(ConfigError, match="zero reference 'strain'"):
        sensitiv.elastic_constants(system, x, strained, definition="energy")
    free = sj.MODELS["lennard_jones"].record().factory(_vacancy(5.26, 0.0), {"space": "free"})
    with pytest.raises(ConfigError, match="no 'strain' parameter"):
        sensitiv.elastic_constants(free)


@pytest.mark.slow  # CI checks the helper against matscipy; LAMMPS' finite differences here
def test_matches_lammps_elastic_finite_differences(tmp_path):
    """EAM copper vacancy relaxed with its cell by LAMMPS (zero stress): C11, C12, C44 from
    LAMMPS' central differences (change_box ±1e-5 with remap, atoms re-minimized; virial
    stress) against the helper, both definitions (equal at zero stress)."""
    from test_jaxmd_lammps import MASSES

    structure = _vacancy(3.615, 0.02, seed=1, species="Cu")
    data = str(tmp_path / "start.data")
    lmp_ref.write_data(data, structure.positions, structure.cell, [1] * structure.n_atoms, [MASSES["Cu"]])
    pair = ["pair_style eam", f"pair_coeff 1 1 {lmp_ref.potential('Cu_u3.eam')}"]
    relaxed = str(tmp_path / "relaxed.data")
    with lmp_ref.Lammps(data, pair) as lmp:
        lmp.lmp.command("fix relax all box/relax aniso 0.0 vmax 0.001 nreset 1")
        for _ in range(4):
            lmp.minimize(ftol=1e-13)
        lmp.lmp.command("unfix relax")
        lmp.write(data=relaxed)
    h = 1e-5
    measured = {}
    deformations = {"C11": ("x scale {s}", (0, 0)), "C12": ("x scale {s}", (1, 1)), "C44": ("xy final {t}", (0, 1))}
    for name, (change, (i, j)) in deformations.items():
        stresses = []
        for sign in (1.0, -1.0):
            with lmp_ref.Lammps(relaxed, pair) as lmp:
                ly = lmp.lmp.extract_box()[1][1] - lmp.lmp.extract_box()[0][1]
                lmp.lmp.command("change_box all " + change.format(s=1 + sign * h, t=sign * h * ly) + " remap units box")
                stresses.append(lmp.minimize(ftol=1e-13)["stress"][i, j])
        measured[name] = (stresses[0] - stresses[1]) / (2 * h)

    from sensitiv_ase.readers import read_with_ase

    structure = read_with_ase(relaxed, "lammps-data", {"species": ["Cu"]})[-1]
    system = sj.MODELS["eam"].record().factory(structure, {"potential_file": "Cu_u3.eam"})
    x = sj.fire({"ftol": 1e-12})(system).positions  # a polish: LAMMPS' minimum to 1e-13
    assert np.abs(np.asarray(system.observables["stress"](x, system.params))).max() < 1e-9
    for definition in ("stress", "energy"):
        c = sensitiv.elastic_constants(system, x, definition=definition).relaxed
        ours = {"C11": c[0, 0], "C12": c[1, 0], "C44": c[5, 5]}
        for name in ours:
            assert ours[name] == pytest.approx(measured[name], rel=1e-6), (definition, name, ours, measured)
