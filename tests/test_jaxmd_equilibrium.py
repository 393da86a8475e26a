"""Acceptance tests of the jax-md plugin: implicit ∂x*/∂θ against finite differences of
re-minimization (soft-sphere packing, Stillinger–Weber silicon under shear), solvers,
the stationary condition and the plugin hooks."""

import importlib.metadata

import jax
import jax.numpy as jnp
import jsonschema
import numpy as np
import pytest

import sensitiv
import sensitiv_jaxmd as sj
from sensitiv.errors import ConfigError
from sensitiv.records import EnergyModel, EquilibriumSolver, OptimalityCondition, Structure

DIAMOND_BASIS = np.array([
    (0, 0, 0), (0, 0.5, 0.5), (0.5, 0, 0.5), (0.5, 0.5, 0),
    (0.25, 0.25, 0.25), (0.25, 0.75, 0.75), (0.75, 0.25, 0.75), (0.75, 0.75, 0.25),
])


def bidisperse_packing(n, packing_fraction=0.9, seed=0):
    """Half diameter 1.0 (species A), half 1.4 (species B), square periodic box."""
    small = np.arange(n) < n // 2
    diameters = np.where(small, 1.0, 1.4)
    side = np.sqrt(np.pi / 4 * np.sum(diameters**2) / packing_fraction)
    rng = np.random.default_rng(seed)
    return Structure(
        positions=rng.uniform(0.0, side, (n, 2)),
        species=(~small).astype(int),
        species_names=("A", "B"),
        cell=np.eye(2) * side,
        pbc=(True, True),
        length_units="1",
        source="test:bidisperse",
        info={"diameters": [1.0, 1.4]},
    )


def diamond(a=5.431, repeat=2):
    cells = [(i, j, k) for i in range(repeat) for j in range(repeat) for k in range(repeat)]
    positions = np.array([(b + np.array(c)) * a for c in cells for b in DIAMOND_BASIS])
    return Structure(
        positions=positions,
        species=np.zeros(len(positions), int),
        species_names=("Si",),
        cell=np.eye(3) * a * repeat,
        pbc=(True, True, True),
        source="test:diamond",
    )


def zeros_like_params(params):
    return {k: jnp.zeros_like(v) for k, v in params.items()}


def implicit_jvp(F, method):
    """`root_jvp_with_info` of the condition `F`, compiled once (eager dispatch is slow)."""

    @jax.jit
    def run(x, params, tangent, null):
        solve = sensitiv.LinearSolver(method, null_space=null)
        return sensitiv.root_jvp_with_info(F, x, (params,), (tangent,), solve=solve)

    return run


def project_out(null_space, v):
    v = jnp.ravel(v)
    return v - null_space.T @ (null_space @ v)


# -- the paper's soft-sphere experiment ----------------------------------------------------


@pytest.fixture(scope="module")
def packing():
    system = sj.MODELS["soft_sphere_additive"].record().factory(bidisperse_packing(32), {})
    solve = sj.fire({"ftol": 1e-14})
    result = solve(system, system.positions, system.params)
    return system, solve, result


def test_packing_minimized_to_tolerance(packing):
    system, _, result = packing
    assert result.converged, result.info
    assert result.residual <= 1e-14
    grad = jax.jit(sj.stationary(system))(result.positions, system.params)
    assert float(jnp.max(jnp.linalg.norm(grad, axis=-1))) <= 1e-14
    assert result.info["neighbor_reallocations"] == 0


def test_packing_small_diameter_sensitivity_matches_finite_differences(packing):
    system, solve, result = packing
    x, params = result.positions, system.params
    small = np.asarray(system.metadata["species_names"])[bidisperse_packing(32).species] == "A"
    tangent = zeros_like_params(params)
    tangent["diameter"] = jnp.asarray(small, float)  # θ = the small particles' diameter
    F = sj.stationary(system)
    null = system.null_space(x)
    assert null.shape == (2, x.size)

    implicit = {}
    for method in ("lstsq", "cg"):
        dx, info = implicit_jvp(F, method)(x, params, tangent, null)
        assert bool(info.converged), (method, info)
        implicit[method] = project_out(null, dx)
    scale = float(jnp.linalg.norm(implicit["lstsq"]))
    assert scale > 1.0  # a real response, not a vanishing one
    np.testing.assert_allclose(implicit["cg"], implicit["lstsq"], rtol=0, atol=1e-9 * scale)

    h = 1e-6  # small enough that no contact opens or closes
    moved = []
    for sign in (1.0, -1.0):
        shifted = dict(params, diameter=params["diameter"] + sign * h * tangent["diameter"])
        res = solve(system, x, shifted)
        assert res.converged and res.residual <= 1e-14
        moved.append(res.positions)
    finite_difference = project_out(null, (moved[0] - moved[1]) / (2 * h))
    error = float(jnp.linalg.norm(finite_difference - implicit["lstsq"])) / scale
    assert error < 1e-5, error

    # Reverse mode through the same condition agrees: vᵀ(J u) = (Jᵀ v)ᵀ u.
    v = project_out(null, jax.random.normal(jax.random.PRNGKey(0), (x.size,))).reshape(x.shape)
    vjp = jax.jit(lambda v: sensitiv.root_vjp(
        F, x, (params,), v, solve=sensitiv.LinearSolver("lstsq", null_space=null)))
    (cotangent,) = vjp(v)
    lhs = float(jnp.vdot(v, implicit["lstsq"]))
    rhs = float(jnp.vdot(cotangent["diameter"], tangent["diameter"]))
    assert abs(lhs - rhs) <= 1e-9 * abs(lhs)


# -- silicon internal relaxation ---------------------------------------------------------------


@pytest.fixture(scope="module")
def sheared_silicon():
    system = sj.MODELS["stillinger_weber"].record().factory(diamond(), {})
    params = dict(system.params)
    params["strain"] = jnp.array([[0.0, 0.01, 0.0], [0.01, 0.0, 0.0], [0.0, 0.0, 0.0]])
    solve = sj.fire({"ftol": 1e-13, "dt_max": 0.1})
    result = solve(system, system.positions, params)
    return system, params, solve, result


def test_silicon_lattice_energy():
    system = sj.MODELS["stillinger_weber"].record().factory(diamond(), {})
    per_atom = float(system.energy(system.positions, system.params)) / 64
    assert abs(per_atom - (-4.3366)) < 5e-5, per_atom


def test_silicon_internal_relaxation_matches_finite_differences(sheared_silicon):
    system, params, solve, result = sheared_silicon
    assert result.converged, result.info
    x = result.positions
    F = sj.stationary(system)
    null = system.null_space(x)
    tangent = zeros_like_params(params)
    tangent["strain"] = jnp.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    dx, info = implicit_jvp(F, "lstsq")(x, params, tangent, null)
    assert bool(info.converged)
    implicit = project_out(null, dx)

    h = 1e-6
    moved = []
    for sign in (1.0, -1.0):
        res = solve(system, x, dict(params, strain=params["strain"] + sign * h * tangent["strain"]))
        assert res.converged
        moved.append(res.positions)
    finite_difference = project_out(null, (moved[0] - moved[1]) / (2 * h))
    scale = float(jnp.linalg.norm(implicit))
    assert float(jnp.linalg.norm(finite_difference - implicit)) < 1e-6 * scale

    # Kleinman internal strain: under ε_xy the two fcc sublattices move apart along z,
    # nothing moves in x or y.
    field = np.asarray(implicit).reshape(-1, 3)
    assert np.abs(field[:, :2]).max() < 1e-9 * scale
    first = np.isin(np.arange(64) % 8, [0, 1, 2, 3])
    assert np.ptp(field[first, 2]) < 1e-9 * scale and np.ptp(field[~first, 2]) < 1e-9 * scale
    assert field[first, 2].mean() == pytest.approx(-field[~first, 2].mean(), rel=1e-9)
    assert abs(field[first, 2].mean()) > 0.5


# -- solvers -------------------------------------------------------------------------------------


def test_fire_reports_non_convergence():
    system = sj.MODELS["soft_sphere_additive"].record().factory(bidisperse_packing(16), {})
    result = sj.fire({"max_steps": 5, "ftol": 1e-12})(system, system.positions, system.params)
    assert result.converged is False
    assert result.iterations == 5
    assert result.residual > 1e-12
    assert "max_steps" in result.info["message"]


def test_gradient_descent_reaches_the_fire_minimum(sheared_silicon):
    system, params, _, fire_result = sheared_silicon
    start = system.positions
    result = sj.gradient_descent({"step_size": 0.02, "ftol": 1e-10, "max_steps": 20000})(system, start, params)
    assert result.converged, result.info
    null = system.null_space(result.positions)
    gap = project_out(null, result.positions - fire_result.positions)
    assert float(jnp.max(jnp.abs(gap))) < 1e-8


def test_solver_options_are_validated():
    with pytest.raises(ConfigError, match="ftol"):
        sj.fire({"ftol": -1.0})
    with pytest.raises(ConfigError, match="dt_strat"):
        sj.fire({"dt_strat": 0.1})
    with pytest.raises(ConfigError, match="stationary"):
        sj.stationary(None, {"mode": "x"})


# -- the plugin as the host sees it ---------------------------------------------------------------


def test_hooks_return_records_with_valid_schemas():
    from sensitiv_jaxmd import plugin

    models = plugin.sensitiv_energy_models()
    solvers = plugin.sensitiv_equilibrium_solvers()
    conditions = ()
    assert not hasattr(plugin, "sensitiv_optimality_conditions")  # the host's builtin offers stationary
    assert {m.name for m in models} >= {
        "soft_sphere", "soft_sphere_additive", "lennard_jones", "morse", "stillinger_weber", "gupta",
        "eam", "eam_alloy", "eam_fs", "tersoff", "sw",
    }
    assert {s.name for s in solvers} == {"fire", "gradient_descent", "polish"}
    for record in (*models, *solvers, *conditions):
        assert isinstance(record, (EnergyModel, EquilibriumSolver, OptimalityCondition))
        jsonschema.Draft202012Validator.check_schema(record.options_schema)
        assert record.options_schema["type"] == "object"
        assert record.description
    for model in models:
        assert all(p.description for p in model.parameters)
        # Only discrete choices of LAMMPS files are not θ: Tersoff's exponent m (1 or 3)
        # and SW's cutoff tolerance.
        fixed = {(model.name, p.name) for p in model.parameters if not p.differentiable}
        assert fixed <= {("tersoff", "m"), ("sw", "tol")}
        if model.name in ("eam", "eam_alloy", "eam_fs", "tersoff", "sw"):
            assert model.options_schema["required"] == ["potential_file"]


def test_entry_point_loads_the_plugin():
    points = [ep for ep in importlib.metadata.entry_points(group="sensitiv") if ep.name == "jaxmd"]
    assert len(points) == 1
    module = points[0].load()
    assert module.__name__ == "sensitiv_jaxmd.plugin"
