"""The `polish` equilibrium solver (issue 14.3): Newton from a nearly relaxed structure.

References: LAMMPS' own minimization (CG to ftol 1e-6, what a user's relaxed input looks
like) and FIRE's minimum from the same point; a double well whose saddle Newton would
converge to, where the polish must notice the negative curvature and let FIRE go downhill.
Timings are in benchmarks/latency.py, never here.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sensitiv_jaxmd as sj
from sensitiv.errors import ConfigError
from sensitiv.pipeline import config
from sensitiv.records import Parameter, System

import lammps_reference as lmp_ref
from test_jaxmd_lammps import FCC, MASSES, crystal, lammps_pair, structure


def _without_translation(d):
    d = np.asarray(d).reshape(-1, 3)
    return d - d.mean(axis=0)


@pytest.fixture(scope="module")
def lammps_relaxed(tmp_path_factory):
    """EAM copper with a vacancy, relaxed by LAMMPS (CG) to ftol 1e-6, as a sensitiv System."""
    folder = tmp_path_factory.mktemp("polish")
    positions, cell = crystal(FCC, 3.615, 2, vacancy=0, rattle=0.05, seed=3)
    data = os.path.join(folder, "start.data")
    lmp_ref.write_data(data, positions, cell, [1] * len(positions), [MASSES["Cu"]])
    with lmp_ref.Lammps(data, lammps_pair("eam", None, None, [(1, "Cu_u3.eam")])) as lmp:
        minimum = lmp.minimize(ftol=1e-6)
    relaxed = structure(minimum["positions"], cell, [1] * len(positions), ("Cu",))
    start = structure(positions, cell, [1] * len(positions), ("Cu",))
    options = {"potential_file": lmp_ref.potential("Cu_u3.eam")}
    build = sj.MODELS["eam"].record().factory
    return build(relaxed, options), build(start, options), minimum


def test_polish_from_a_lammps_minimum_takes_few_newton_steps(lammps_relaxed):
    system, _, minimum = lammps_relaxed
    start_force = np.linalg.norm(minimum["forces"], axis=1).max()
    assert 1e-9 < start_force < 1e-5  # relaxed, but not to the Jacobian's needs
    result = sj.polish({"ftol": 1e-10})(system, system.positions, system.params)
    assert result.converged, result.info
    assert result.residual <= 1e-10
    assert result.info["path"] == "newton" and result.info["fire_steps"] == 0
    assert 1 <= result.info["newton_steps"] <= 4
    reference = sj.fire({"ftol": 1e-11})(system, system.positions, system.params)
    assert reference.converged
    assert reference.iterations > 10 * result.iterations
    assert np.abs(_without_translation(np.asarray(result.positions) - np.asarray(reference.positions))).max() < 1e-9


def test_dense_newton_agrees_and_reports_the_smallest_eigenvalue(lammps_relaxed):
    system, _, _ = lammps_relaxed
    cg = sj.polish({"ftol": 1e-11})(system, system.positions, system.params)
    dense = sj.polish({"ftol": 1e-11, "linear_solver": "dense"})(system, system.positions, system.params)
    assert cg.converged and dense.converged and dense.info["path"] == "newton"
    # translations are the zero modes; nothing negative beyond round-off at a minimum
    assert abs(dense.info["smallest_eigenvalue"]) < 1e-8
    assert np.abs(_without_translation(np.asarray(cg.positions) - np.asarray(dense.positions))).max() < 1e-10


def test_far_from_a_minimum_fire_takes_over_and_newton_finishes(lammps_relaxed):
    _, system, _ = lammps_relaxed  # the rattled, unrelaxed crystal
    result = sj.polish({"ftol": 1e-10, "max_displacement": 0.05, "switch_ftol": 1e-3})(
        system, system.positions, system.params)
    assert result.converged, result.info
    reference = sj.fire({"ftol": 1e-11})(system, system.positions, system.params)
    assert np.abs(_without_translation(np.asarray(result.positions) - np.asarray(reference.positions))).max() < 1e-8
    if result.info["path"] != "newton":  # FIRE helped: its steps are counted apart
        assert result.info["fire_steps"] > 0
        assert result.info["path"].startswith("newton+fire")


def _double_well(x0):
    """One particle in 2-D, E = (x² − 1)² + y²: minima at (±1, 0), a saddle at (0, 0)."""

    def energy(x, params):
        return params["a"] * (x[0, 0] ** 2 - 1.0) ** 2 + x[0, 1] ** 2

    return System(energy=energy, params={"a": jnp.asarray(1.0)},
                  parameters=(Parameter("a", "well depth"),), positions=jnp.asarray([x0]))


def test_newton_never_climbs_to_a_saddle():
    system = _double_well([0.05, 0.3])  # Newton's basin of the saddle: H has curvature -4 + 12x²
    result = sj.polish({"ftol": 1e-10})(system, system.positions, system.params)
    assert result.converged, result.info
    assert "fire" in result.info["path"]
    np.testing.assert_allclose(np.abs(np.asarray(result.positions)[0]), [1.0, 0.0], atol=1e-9)
    dense = sj.polish({"ftol": 1e-10, "linear_solver": "dense"})(system, system.positions, system.params)
    assert dense.converged and "fire" in dense.info["path"]
    np.testing.assert_allclose(np.abs(np.asarray(dense.positions)[0]), [1.0, 0.0], atol=1e-9)


def test_a_zero_mode_at_round_off_is_flat_not_a_saddle():
    """A ring of springs is invariant under translation (an exact zero mode). Near its
    minimum the gradient carries round-off along that mode; CG then meets curvature ±0
    along it, which is no saddle (it sent the polish to FIRE at random), while a true
    negative curvature is still one."""
    from sensitiv_jaxmd._polish import _krylov_direction

    n = 12
    rest = jnp.linspace(0.0, 1.0, n, endpoint=False)

    def ring(x, params):
        d = jnp.roll(x[:, 0], -1) - x[:, 0]
        d = d.at[-1].add(1.0)  # periodic image
        return 0.5 * jnp.sum((d - 1.0 / n) ** 2) + params["tilt"] * jnp.sum(x[:, 0])

    x = (rest + 1e-7 * jnp.sin(7.0 * jnp.arange(n)))[:, None]
    for tilt in (0.0, 1e-15, -1e-15):  # the translation component of the gradient: 0, ±round-off
        dx, negative, _ = _krylov_direction(ring, 1e-12, 100)(x, {"tilt": jnp.asarray(tilt)})
        assert not bool(negative), tilt
        assert float(jnp.max(jnp.abs(jax.grad(ring)(x + dx, {"tilt": jnp.asarray(0.0)})))) < 1e-13

    def hill(x, params):  # curvature -1 along x0: a saddle
        return ring(x, params) - 0.5 * (1.0 + 1.0 / n) * x[0, 0] ** 2

    _, negative, _ = _krylov_direction(hill, 1e-12, 100)(x, {"tilt": jnp.asarray(0.0)})
    assert bool(negative)


def test_non_convergence_is_reported_not_raised():
    system = _double_well([0.05, 0.3])
    result = sj.polish({"ftol": 1e-10, "fire": {"max_steps": 3}})(system, system.positions, system.params)
    assert not result.converged
    assert result.residual > 1e-10 and result.info["message"] != "converged"


def test_options_are_validated():
    with pytest.raises(ConfigError, match="linear_solver"):
        sj.polish({"linear_solver": "lu"})
    with pytest.raises(ConfigError, match="dt_start"):
        sj.polish({"fire": {"dt_start": -1}})


@pytest.mark.parametrize("structure_section, expected", [
    ({"file": "argon_vacancy.extxyz"}, "polish"),
    ({"generator": {"name": "bidisperse_packing", "n_atoms": 8}}, "fire"),
])
def test_polish_is_the_default_for_structures_from_files(structure_section, expected):
    root = os.path.join(os.path.dirname(__file__), "..", "examples", "lj_crystal")
    data = {"structure": structure_section,
            "model": {"name": "lennard_jones" if expected == "polish" else "soft_sphere"},
            "solver": {"options": {"ftol": 1e-9}}}
    cfg = config.load_data(data, base_dir=root)
    assert cfg.solver.name == expected
    named = config.load_data({**data, "solver": {"name": "fire"}}, base_dir=root)
    assert named.solver.name == "fire"
