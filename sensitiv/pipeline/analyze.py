"""One structure: bind the model → relax → differentiate the equilibrium → observables.

`analyze_structure` returns numbers (a `StructureAnalysis`), not a Dataset: the labeled
NetCDF variables are `sensitiv.pipeline.dataset`'s business.

**Observables.** Besides the model's own (`System.observables`), the pipeline offers
`energy`; `stress` = (1/V) ∂E/∂ε when the model has a `strain` parameter; and
`elastic_constants`, the relaxed-ion elastic tensor in Voigt notation = the total
derivative dσ/dε (its clamped-ion part ∂σ/∂ε is kept too), which needs every strain
component in θ. Total derivatives dg/dθ = ∂g/∂θ + ∂g/∂x · dx*/dθ reuse the Jacobian just
computed: no further linear system is solved.

**Example:**

```python
from sensitiv.pipeline import analyze, config, structure
cfg = config.load("examples/softspheres/config.yaml", overrides=["structure.generator.n_atoms=32"])
[s] = structure.read_structures(cfg.structure)
result = analyze.analyze_structure(s, cfg)
result.dx_dtheta.shape, result.engine.verdict        # (32, 2, 3), 'minimum'
```
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .. import constraints
from ..elasticity import voigt_pairs
from ..engine import KrylovOptions
from ..engine import jacobian as engine_jacobian
from ..errors import ConfigError, ConvergenceError, PluginError, SensitivError
from ..plugins import Registry, get_registry
from ..records import ATOM_MASK, Structure, System
from ._progress import Progress
from .analysis import (
    ELASTIC_CONSTANTS,
    ENERGY,
    STRESS,
    VERDICT_OK,
    ElasticConstants,
    EngineReport,
    ObservableResult,
    SolverReport,
    StructureAnalysis,
)
from .config import (
    CellSettings,
    ConditionSettings,
    Config,
    JacobianSettings,
    ModelSettings,
    ObservableSettings,
    SolverSettings,
)
from ._uncertainty_stage import analyze_uncertainty
from .structure import fixed_atoms, pad_structure
from .theta import STRAIN, ThetaComponent, bind_model, theta_components
from .uncertainty import theta_covariance

__all__ = ["analyze_structure", "voigt_pairs"]

# -- stages --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Problem:
    """The bound model and θ: what the later stages differentiate."""

    system: System
    components: tuple[ThetaComponent, ...]
    embed: Callable[[Any], dict]
    theta0: Any


def _x64() -> bool:
    return bool(jax.config.jax_enable_x64)


def _dtype(precision: str):
    if precision == "float64":
        if not _x64():
            jax.config.update("jax_enable_x64", True)
        return jnp.float64
    return jnp.float32


def _embed(base: Mapping[str, Any], components: Sequence[ThetaComponent], theta) -> dict:
    """`base` with θ's entries placed into it (pure JAX)."""
    out = dict(base)
    by_name: dict[str, list[tuple[int, ThetaComponent]]] = {}
    for k, comp in enumerate(components):
        by_name.setdefault(comp.name, []).append((k, comp))
    for name, items in by_name.items():
        value = out[name].astype(theta.dtype)
        for k, comp in items:
            value = value.at[comp.index].set(theta[k]) if comp.index else theta[k] + 0 * value
            if comp.tied is not None:
                value = value.at[comp.tied].set(theta[k])
        out[name] = value
    return out


@jax.tree_util.register_pytree_node_class
class _ThetaFunction:
    """`fun(x, embed(θ))`: a function of the parameters called with θ embedded into them.

    A pytree: the base parameter values are its leaves and `fun` with the components its
    static part, so that compiled programs taking it as an argument (the engine's, the
    observables') trace the values instead of baking them in, and are reused by every
    frame, file and parameter sample whose functions are the same objects.
    """

    def __init__(self, fun: Callable, components: tuple[ThetaComponent, ...], base: dict):
        self.fun, self.components, self.base = fun, components, base

    def __call__(self, x, theta):
        return self.fun(x, _embed(self.base, self.components, theta))

    def tree_flatten(self):
        return (self.base,), (self.fun, self.components)

    @classmethod
    def tree_unflatten(cls, static, leaves):
        return cls(static[0], static[1], leaves[0])


def _embedder(params: Mapping[str, Any], components: Sequence[ThetaComponent], dtype):
    """`(embed, θ₀)`: `embed(θ) -> params` places θ's entries into a copy of `params` (pure JAX)."""
    base = {k: jnp.asarray(v) for k, v in params.items()}
    components = tuple(components)

    def embed(theta):
        return _embed(base, components, theta)

    theta0 = jnp.asarray(
        [np.asarray(params[c.name])[c.index] if c.index else np.asarray(params[c.name]) for c in components],
        dtype=jnp.float64 if _x64() else jnp.float32,
    ).reshape(-1)
    return embed, theta0.astype(dtype)


def _constrain(system: System, structure: Structure, fixed, cell: CellSettings) -> System:
    """The system over the equilibrium's unknowns: fixed atoms out, the cell's strain in."""
    if fixed is not None:
        system = constraints.fix_atoms(system, fixed)
    if cell.relaxes:
        if structure.cell is None or not any(structure.pbc):
            raise ConfigError(f"cell.relax: {structure.source or 'the structure'} has no periodic cell")
        system = constraints.relax_cell(system, structure.cell, cell.relax, cell.pressure, cell.stress)
    return system


@contextlib.contextmanager
def _blame(who: str, where: str, doing: str):
    """Turn an unexpected exception of a plugin's code into a one-line `PluginError` that
    names the plugin (sensitiv's own errors pass unchanged)."""
    try:
        yield
    except SensitivError:
        raise
    except Exception as err:
        text = str(err).splitlines()[0] if str(err) else ""
        raise PluginError(
            f"{where}: {who} failed while {doing}: {type(err).__name__}{': ' + text if text else ''} "
            f"(a bug in that plugin: report it to its authors; --traceback shows where)"
        ) from err


def _bind(structure: Structure, model: ModelSettings, registry: Registry,
          parameter_values: Mapping[str, Any] | None, dtype, fixed=None,
          cell: CellSettings | None = None) -> _Problem:
    record = registry.get_energy_model(model.name)
    values = {**model.parameters, **(parameter_values or {})}
    who = _plugin(registry, "energy_model", model.name)
    with _blame(who, structure.source or "structure", "building the model"):
        system = bind_model(structure, record, values, model.options, owner=who)
    if not isinstance(system, System):
        raise PluginError(f"{structure.source}: {who}: its factory returned {type(system).__name__}, not a System")
    system = dataclasses.replace(system, positions=jnp.asarray(system.positions, dtype),
                                 params={k: jnp.asarray(v, dtype) for k, v in system.params.items()})
    if fixed is not None or (cell is not None and cell.relaxes):
        system = _constrain(system, structure, fixed, cell or CellSettings("none", 0.0))
    components = theta_components(system, structure, model.differentiate, record.parameters)
    params = {k: jnp.asarray(v, dtype) for k, v in system.params.items()}
    embed, theta0 = _embedder(params, components, dtype)
    system = dataclasses.replace(system, params=params, positions=jnp.asarray(system.positions, dtype))
    return _Problem(system, tuple(components), embed, theta0)


def _bind_padded(structure: Structure, cfg: Config, registry: Registry, parameter_values, dtype, fixed,
                 pad_to: int | None) -> _Problem:
    """`_bind`, to `structure` padded with phantom atoms up to `pad_to` atoms when given
    (`ensemble.padding` decided it: no fixed atoms, a held cell). A model that does not
    honor phantoms (no `ATOM_MASK` in its parameters) is refused with `pad_atoms: true`,
    bound without padding with `auto`."""
    if pad_to is None:
        return _bind(structure, cfg.model, registry, parameter_values, dtype, fixed, cfg.cell)
    problem = _bind(pad_structure(structure, pad_to), cfg.model, registry, parameter_values, dtype)
    if ATOM_MASK in problem.system.params:
        return problem
    if cfg.jacobian.pad_atoms is True:
        raise ConfigError(f"jacobian.pad_atoms: {_plugin(registry, 'energy_model', cfg.model.name)} does not "
                          f"mask phantom atoms (no {ATOM_MASK!r} in its parameters); set jacobian.pad_atoms: auto "
                          f"or false")
    return _bind(structure, cfg.model, registry, parameter_values, dtype, fixed, cfg.cell)


def _plugin(registry: Registry, kind: str, name: str) -> str:
    """`solver 'lbfgs' of plugin chains (sensitiv-chains 0.1.0)`, for messages blaming a plugin."""
    label = {"energy_model": "model", "equilibrium_solver": "solver",
             "optimality_condition": "condition"}.get(kind, kind)
    try:
        owner = registry.plugin_info(registry.owner(kind, name)).describe()
    except PluginError:
        owner = "an unknown plugin"
    return f"{label} {name!r} of plugin {owner}"


def _non_finite_rows(array: np.ndarray) -> np.ndarray:
    return np.flatnonzero(~np.isfinite(array.reshape(array.shape[0], -1)).all(axis=1))


def _relax(system: System, solver: SolverSettings, registry: Registry, where: str):
    """`(x*, SolverReport)`; raises `ConvergenceError` when the solver does not converge and
    `PluginError` when it returns what no solver may (non-finite or misshapen positions)."""
    if not solver.relaxes:
        return jnp.asarray(system.positions), SolverReport(solver.name, True, 0, float("nan"))
    who = _plugin(registry, "equilibrium_solver", solver.name)
    with _blame(who, where, "relaxing the structure"):
        solve = registry.get_equilibrium_solver(solver.name).factory(dict(solver.options))
        result = solve(system, jnp.asarray(system.positions), system.params)
    try:
        converged = bool(np.asarray(result.converged))
        residual = float(np.asarray(result.residual))
        iterations = int(np.asarray(result.iterations))
        positions = np.asarray(result.positions, dtype=np.float64)
    except (AttributeError, TypeError, ValueError) as err:
        raise PluginError(f"{where}: {who} returned {type(result).__name__}, not an EquilibriumResult of "
                          f"positions, converged, iterations and residual ({err})") from None
    expected = np.shape(system.positions)
    if positions.shape != expected:
        raise PluginError(f"{where}: {who} returned positions of shape {positions.shape} for a structure of "
                          f"shape {expected}; the solver is broken (report it to its authors)")
    info = getattr(result, "info", None) or {}
    said = f"; the solver says: {info['message']}" if isinstance(info, Mapping) and info.get("message") else ""
    bad = _non_finite_rows(positions)
    if bad.size:
        raise PluginError(
            f"{where}: {who} returned non-finite positions for {bad.size} atom(s), first atom {int(bad[0])}"
            f"{said}; nothing was written (the solver diverged or is broken: try another solver.name)"
        )
    if not converged or not np.isfinite(residual):
        raise ConvergenceError(
            f"{where}: solver {solver.name!r} did not converge after {iterations} steps "
            f"(residual reached {residual:.3e}){said}; raise solver.options limits or check the structure"
        )
    x_star = jax.block_until_ready(jnp.asarray(positions, dtype=jnp.asarray(system.positions).dtype))
    return x_star, SolverReport(solver.name, converged, iterations, residual)


def _check_finite(system: System, F, x_star, problem: "_Problem", registry: Registry, model: str,
                  condition: str, where: str, at: str) -> np.ndarray:
    """The energy and F at `x_star` (described as `at`), refused when not finite (a NaN
    energy with a finite gradient would otherwise pass as a saddle). Returns F(x_star)."""
    with _blame(_plugin(registry, "energy_model", model), where, "evaluating the energy"):
        energy = np.asarray(system.energy(x_star, system.params), dtype=np.float64)
    if energy.shape != () or not np.isfinite(energy):
        what = f"a non-scalar energy of shape {energy.shape}" if energy.shape != () else f"the energy {float(energy)}"
        raise PluginError(f"{where}: {_plugin(registry, 'energy_model', model)} gives {what} at {at}; "
                          f"nothing was written (check the structure and the model's parameters)")
    with _blame(_plugin(registry, "optimality_condition", condition), where, "evaluating F(x*, θ)"):
        residual = np.asarray(F(x_star, problem.theta0), dtype=np.float64)
    if residual.shape != np.shape(x_star):
        raise PluginError(f"{where}: {_plugin(registry, 'optimality_condition', condition)} returns an array of "
                          f"shape {residual.shape} for positions of shape {np.shape(x_star)}")
    bad = _non_finite_rows(residual)
    if bad.size:
        raise PluginError(
            f"{where}: the gradient of {_plugin(registry, 'energy_model', model)} (condition {condition!r}) is "
            f"non-finite for {bad.size} atom(s) at {at}, first atom {int(bad[0])}; nothing was written"
        )
    return residual


#: A declared zero mode v passes when ‖∂₁F·v‖ ≤ NULL_RTOL·|λ_max| plus what a residual
#: F(x̂) ≠ 0 allows for rotations (‖∂₁F·v‖ ≤ ‖F‖/‖Av‖ for a rotation generator A).
NULL_RTOL = 1e-6


def _zero_modes(F, x_star, problem: "_Problem", f_star: np.ndarray, registry: Registry, model: str,
                where: str) -> np.ndarray | None:
    """The model's declared zero modes at x*, verified (`None` when it declares none)."""
    if problem.system.null_space is None:
        return None
    with _blame(_plugin(registry, "energy_model", model), where, "listing its zero modes"):
        modes = np.asarray(problem.system.null_space(x_star), dtype=np.float64)
    _verify_null_space(F, x_star, problem, modes, f_star, registry, model, where)
    return modes


def _verify_null_space(F, x_star, problem: "_Problem", modes, f_star: np.ndarray,
                       registry: Registry, model: str, where: str) -> None:
    """Declared zero modes must be orthonormal rows and zero modes of ∂₁F at x*: a wrong one
    would silently remove a real direction from dx*/dθ. Checked before the Jacobian is
    computed, against |λ_max| of ∂₁F estimated by power iteration."""
    who = _plugin(registry, "energy_model", model)
    x = np.asarray(x_star)
    d = x.size
    V = np.asarray(modes, dtype=np.float64)
    if V.ndim != 2 or V.shape[1] != d or V.shape[0] > d:
        raise PluginError(f"{where}: {who}: System.null_space returned shape {V.shape}; expected (k, {d}) "
                          f"rows, k <= {d}")
    if not np.isfinite(V).all():
        raise PluginError(f"{where}: {who}: System.null_space returned non-finite modes")
    gram = V @ V.T
    if V.shape[0] and np.abs(gram - np.eye(V.shape[0])).max() > 1e-6:
        raise PluginError(f"{where}: {who}: the rows of System.null_space are not orthonormal "
                          f"(max |V Vᵀ − I| = {np.abs(gram - np.eye(V.shape[0])).max():.2g}); orthonormalize them")
    if not V.shape[0]:
        return
    theta = problem.theta0
    dtype = jnp.asarray(x_star).dtype
    tangents = jnp.asarray(V.reshape((V.shape[0],) + x.shape), dtype)
    hvp = functools.partial(_hvp_program, F, x_star, theta)
    hv = hvp(tangents)
    norms = np.linalg.norm(np.asarray(hv, np.float64).reshape(V.shape[0], -1), axis=1)
    # |λ_max| by a few power steps (a lower bound, so the test errs on the strict side).
    probe = np.random.default_rng(0).normal(size=(1,) + x.shape)
    scale = 0.0
    for _ in range(30):
        probe = probe / (np.linalg.norm(probe) or 1.0)
        image = np.asarray(hvp(jnp.asarray(probe, dtype)), np.float64)
        scale = float(np.linalg.norm(image))
        if not np.isfinite(scale) or scale == 0.0:
            break
        probe = image
    scale = scale if np.isfinite(scale) and scale > 0 else float(np.max(norms, initial=0.0)) or 1.0
    spread = float(np.sqrt(np.sum((x - x.mean(axis=0)) ** 2))) or 1.0
    tolerance = NULL_RTOL * scale + 10.0 * float(np.linalg.norm(f_star)) / spread
    bad = np.flatnonzero(~(norms <= tolerance))
    if bad.size:
        k = int(bad[0])
        raise PluginError(
            f"{where}: {who} declares {V.shape[0]} zero mode(s) (System.null_space) but mode {k} is not one: "
            f"‖∂₁F·v‖ = {norms[k]:.3g}, {norms[k] / scale:.2g} of the largest eigenvalue {scale:.3g} "
            f"(allowed {tolerance:.2g}); fix the model's null_space, or return None to let the engine "
            f"detect zero modes"
        )


@jax.jit
def _hvp_program(F, x, theta, tangents):
    """`∂₁F(x, θ)·v` for a batch of tangents (`F` a `_ThetaFunction`)."""
    return jax.vmap(lambda v: jax.jvp(lambda y: F(y, theta), (x,), (v,))[1])(tangents)


def _condition(problem: _Problem, condition: ConditionSettings, registry: Registry):
    """`F(x, θ)` of the optimality condition, with θ embedded into the parameters."""
    who = _plugin(registry, "optimality_condition", condition.name)
    with _blame(who, "condition", "building the optimality condition"):
        F_params = registry.get_optimality_condition(condition.name).factory(
            problem.system, dict(condition.options)
        )

    return _ThetaFunction(F_params, problem.components, dict(problem.system.params))


def _available_observables(system: System, structure: Structure) -> dict[str, tuple[Callable, str]]:
    """name → (g(x, params), units): the model's observables, and `energy` for every model."""
    units = {
        ENERGY: system.energy_units,
        STRESS: f"{system.energy_units} {system.length_units}-{structure.n_spatial}",
    }
    out = {ENERGY: (system.energy, system.energy_units)}
    for name, fun in system.observables.items():
        out[name] = (fun, units.get(name, ""))
    return out


def _choose_observables(
    system: System, structure: Structure, wanted: Sequence[ObservableSettings], model: str
) -> tuple[dict[str, tuple[str, Callable, str]], str | None]:
    """`({label: (name, g, units)}, elastic-constants label or None)`; the stress is added
    when elastic constants are asked for."""
    available = _available_observables(system, structure)
    chosen: dict[str, tuple[str, Callable, str]] = {}
    elastic = None
    for obs in wanted:
        if obs.name == ELASTIC_CONSTANTS:
            elastic = obs.label
            if STRESS not in available:
                raise ConfigError(
                    "observables: 'elastic_constants' needs a model with a 'strain' parameter "
                    "and a periodic cell"
                )
            chosen.setdefault(STRESS, (STRESS, *available[STRESS]))
            continue
        if obs.name not in available:
            close = difflib.get_close_matches(obs.name, list(available) + [ELASTIC_CONSTANTS], n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(
                f"observables: unknown observable {obs.name!r} for model {model!r}; "
                f"available: {', '.join(sorted(available))}, {ELASTIC_CONSTANTS}{hint}"
            )
        chosen[obs.label] = (obs.name, *available[obs.name])
    return chosen, elastic


def _engine_options(x_star, problem: _Problem, settings: JacobianSettings, dtype, modes=None) -> dict:
    """The engine's options for this structure (also those of the uncertainty stage's
    second-order solve, which must use the same operator); `modes`: the model's verified
    zero modes, or `None` to take the model's own."""
    system = problem.system
    if modes is None and system.null_space is not None:
        modes = system.null_space(x_star)  # callers that verified none (`sensitiv check`)
    null_space = None if modes is None else jnp.asarray(modes, dtype)
    sparsity = None
    if system.interactions is not None and settings.use_interactions:
        sparsity = np.asarray(system.interactions(x_star, system.params))
    mask = system.params.get(ATOM_MASK)
    return dict(
        active=None if mask is None else np.asarray(mask) > 0.5,  # phantom atoms (padding) excluded
        method=settings.strategy,
        null_space=null_space,
        sparsity=sparsity,
        krylov=KrylovOptions(
            tol=settings.tol,
            maxiter=settings.maxiter,
            precond="auto" if settings.preconditioner == "auto" else None,
            lanczos_steps=settings.lanczos_steps,
        ),
        memory_budget=settings.memory_budget,
        trust_rtol=settings.trust_rtol,
        parameter_derivatives=settings.parameter_derivatives if system.reverse_mode_safe else "forward",
    )


def _differentiate(F, x_star, problem: _Problem, options: Mapping[str, Any]):
    """`(dx*/dθ as a NumPy array (n·d, p)-shaped like the engine returns, JacobianInfo)`."""
    result = engine_jacobian(F, x_star, problem.theta0, **options)
    return np.asarray(jax.block_until_ready(result.jacobian)), result.info


def _observable_derivative(g, x_star, theta0, j_cols):
    """`(g, ∂g/∂θ, ∂g/∂x·J)` at `x*`, trailing axis over θ, by forward-mode products."""

    value, partial, through_x = _observable_program(g, x_star, theta0, j_cols)
    return (np.asarray(value, np.float64), np.asarray(partial, np.float64),
            np.asarray(through_x, np.float64))


@jax.jit
def _observable_program(g, x, theta, cols):
    """`_observable_derivative`'s compiled part; `g` is a `_ThetaFunction` (a pytree: its
    function and components are the static part of the cache key, its values traced)."""
    value = g(x, theta)
    eye = jnp.eye(theta.shape[0], dtype=theta.dtype)
    partial = jax.vmap(lambda u: jax.jvp(lambda t: g(x, t), (theta,), (u,))[1])(eye)
    through_x = jax.vmap(lambda v: jax.jvp(lambda y: g(y, theta), (x,), (v,))[1])(cols)
    return value, jnp.moveaxis(partial, 0, -1), jnp.moveaxis(through_x, 0, -1)


def _observable_function(fun, problem: _Problem):
    """`g(x, θ)` of an observable `fun(x, params)`, θ embedded into the parameters."""
    return _ThetaFunction(fun, problem.components, dict(problem.system.params))


def _observe(chosen, x_star, problem: _Problem, jac: np.ndarray, dtype) -> tuple[ObservableResult, ...]:
    """dg/dθ = ∂g/∂θ + ∂g/∂x · J for each chosen observable."""
    j_cols = jnp.moveaxis(jnp.asarray(jac.reshape(x_star.shape + (-1,)), dtype), -1, 0)  # (p, n, d)
    out = []
    for label, (name, fun, units) in chosen.items():
        g = _observable_function(fun, problem)
        value, partial, through_x = _observable_derivative(g, x_star, problem.theta0, j_cols)
        p = partial.shape[-1]
        out.append(ObservableResult(label, name, units, value,
                                    (partial + through_x).reshape(value.shape + (p,)),
                                    partial.reshape(value.shape + (p,))))
    return tuple(out)


def _elastic_constants(label: str, components: Sequence[ThetaComponent], d: int,
                       observables: Sequence[ObservableResult]) -> ElasticConstants:
    strain_columns = {c.index: k for k, c in enumerate(components) if c.name == STRAIN}
    pairs = voigt_pairs(d)
    missing = [f"strain[{i},{j}]" for i, j in pairs if (i, j) not in strain_columns]
    if missing:
        raise ConfigError(
            f"observables: 'elastic_constants' needs every strain component in model.differentiate; "
            f"missing {', '.join(missing)}"
        )
    stress = next(o for o in observables if o.label == STRESS)
    cols = [strain_columns[pair] for pair in pairs]
    # The shear components of θ are engineering shears γ_kl (sensitiv.pipeline.theta), the
    # strains of Voigt notation: C_ab = dσ_a/dθ_b, no factor.

    def voigt(tensor):
        return np.array([[tensor[i, j, c] for c in cols] for i, j in pairs])

    return ElasticConstants(
        label=label,
        voigt=tuple(f"{'xyz'[i]}{'xyz'[j]}" for i, j in pairs),
        relaxed=voigt(stress.derivative),
        clamped=voigt(stress.partial.reshape(d, d, -1)),
        units=stress.units,
    )


def _full_coordinates(problem: _Problem, x_star, jac: np.ndarray, dtype):
    """`(positions, dx/dθ, cell, dcell/dθ)` of every atom from the equilibrium's unknowns:
    fixed atoms put back (zero derivative), positions and cell of a relaxing cell in the
    relaxed frame (`cell` and `dcell/dθ` are `None` when the cell is held)."""
    energy = problem.system.energy
    p = int(problem.theta0.shape[0])
    if not isinstance(energy, constraints.ConstrainedEnergy):
        x = np.asarray(x_star, np.float64)
        return x, jac.reshape(x.shape + (p,)), None, None
    j_cols = jnp.moveaxis(jnp.asarray(jac.reshape(x_star.shape + (-1,)), dtype), -1, 0)
    parts = {"positions": energy.positions}
    if energy.cell is not None:
        parts["cell"] = energy.cell
    out = {}
    for name, fun in parts.items():
        value, partial, through_x = _observable_derivative(_observable_function(fun, problem), x_star,
                                                           problem.theta0, j_cols)
        out[name] = (value, (partial + through_x).reshape(value.shape + (p,)))
    cell, dcell = out.get("cell", (None, None))
    return (*out["positions"], cell, dcell)


def _engine_report(info) -> EngineReport:
    return EngineReport(
        strategy=str(info.strategy),
        mode=str(info.mode),
        reason=str(info.reason),
        verdict=str(info.verdict),
        column_residual=np.asarray(info.column_residual, np.float64).reshape(-1),
        column_converged=np.asarray(info.column_converged).astype(bool).reshape(-1),
        column_iterations=np.asarray(info.column_iterations).reshape(-1),
        stationarity_residual_norm=float(np.asarray(info.stationarity_residual)),
        smallest_eigenvalue=float(np.asarray(info.lambda_min)),
        largest_eigenvalue=float(np.asarray(info.lambda_max)),
        null_space_dimension=int(np.asarray(info.null_space_dim)),
        detected_null_space_dimension=int(np.asarray(info.detected_null_dim)),
        jacobian_error_estimate=float(np.asarray(info.jacobian_error_estimate)),
        solution_error_estimate=float(np.asarray(info.solution_error_estimate)),
        trustworthy=bool(np.asarray(info.trustworthy)),
        warnings=tuple(info.warnings),
        trust_rtol=float(info.trust_rtol),
        notes=tuple(info.notes),
    )


def _problems(engine: EngineReport, jac: np.ndarray) -> list[str]:
    """Why the result is not trustworthy: the engine's warnings, a non-minimum, NaN entries."""
    problems = list(engine.warnings)
    verdict = engine.verdict
    if verdict not in (VERDICT_OK, "regular", "undetermined") and not any(verdict in w for w in problems):
        problems.append(
            f"the equilibrium is a {verdict} point (smallest eigenvalue {engine.smallest_eigenvalue:.3e})"
        )
    if not np.isfinite(jac).all() and not any("NaN" in w for w in problems):
        problems.append("the Jacobian has non-finite entries")
    return problems


# -- one structure -------------------------------------------------------------------------


def analyze_structure(
    structure: Structure,
    cfg: Config,
    registry: Registry | None = None,
    progress: Progress | None = None,
    parameter_values: Mapping[str, Any] | None = None,
    sample: int | None = None,
    pad_to: int | None = None,
) -> StructureAnalysis:
    """Relax one structure, differentiate its equilibrium, evaluate the observables.

    **Arguments:**

    - `structure`: a checked `Structure`.
    - `cfg`: the resolved `Config` (its model, solver, condition, observables and jacobian).
    - `registry`: the plugin registry (default: `sensitiv.plugins.get_registry()`).
    - `progress`: stage timer / display.
    - `parameter_values`: values overriding `model.parameters` (one parameter sample).
    - `sample`: the index of that sample, recorded in the result.
    - `pad_to`: analyze the structure padded with phantom atoms to this many
      (`sensitiv.pipeline.ensemble.padding`), so that sizes of one bucket share compiled
      programs; the result is the structure's own (phantoms left out), as without padding.

    **Returns:** a `StructureAnalysis` (numbers; `sensitiv.pipeline.dataset` labels them).

    **Raises:** `ConvergenceError` when the equilibrium solver does not converge,
    `ConfigError` for parameters and observables the model does not have.
    """
    registry = registry if registry is not None else get_registry()
    progress = progress or Progress(enabled=False, verbosity=0)
    where = structure.source + (f" (frame {structure.frame})" if structure.frame else "")
    dtype = _dtype(cfg.jacobian.precision)
    fixed = fixed_atoms(structure, cfg.structure.fixed)
    with progress.stage("model"):
        problem = _bind_padded(structure, cfg, registry, parameter_values, dtype, fixed, pad_to)
    sigma = None
    if cfg.uncertainty is not None and (fixed is not None or cfg.cell.relaxes):
        raise ConfigError("uncertainty: not available yet with fixed atoms or a relaxing cell (structure.fixed, "
                          "cell.relax): its per-atom fields and `sensitiv check` work on all atoms in a held cell; "
                          "analyze without the uncertainty section")
    if cfg.uncertainty is not None:  # labels checked against θ before any expensive work
        sigma, _ = theta_covariance(cfg.uncertainty, problem.components, np.asarray(problem.theta0),
                                    where=cfg.locate("uncertainty"))
    F = _condition(problem, cfg.condition, registry)
    x0 = jnp.asarray(problem.system.positions)
    # Finite energy and F before the solver runs (or in its place), and again at x*.
    f_star = _check_finite(problem.system, F, x0, problem, registry, cfg.model.name, cfg.condition.name,
                           where, "the input positions")
    with progress.stage("minimization"):
        x_star, solver = _relax(problem.system, cfg.solver, registry, where)
    if cfg.solver.relaxes:
        f_star = _check_finite(problem.system, F, x_star, problem, registry, cfg.model.name,
                               cfg.condition.name, where, "the relaxed positions")
    chosen, elastic_label = _choose_observables(problem.system, structure, cfg.observables, cfg.model.name)
    with progress.stage("jacobian"):
        modes = _zero_modes(F, x_star, problem, f_star, registry, cfg.model.name, where)
        options = _engine_options(x_star, problem, cfg.jacobian, dtype, modes)
        jac, info = _differentiate(F, x_star, problem, options)
    observables: tuple[ObservableResult, ...] = ()
    if chosen:
        with progress.stage("observables"):
            observables = _observe(chosen, x_star, problem, jac, dtype)
    positions, dx_dtheta, cell, dcell = _full_coordinates(problem, x_star, jac, dtype)
    positions, dx_dtheta = positions[:structure.n_atoms], dx_dtheta[:structure.n_atoms]  # no phantoms
    d = structure.n_spatial
    elastic = None
    if elastic_label is not None:
        elastic = _elastic_constants(elastic_label, problem.components, d, observables)
    system = problem.system
    uncertainty = None
    if sigma is not None:
        with progress.stage("uncertainty"):
            functions = {label: _observable_function(fun, problem) for label, (_, fun, _) in chosen.items()}
            uncertainty = analyze_uncertainty(
                cfg.uncertainty, sigma, F, x_star, problem.theta0, problem.components, jac, observables,
                functions, elastic, voigt_pairs(d), options, system.length_units or structure.length_units,
            )
    engine = _engine_report(info)
    if ATOM_MASK in system.params and len(system.positions) > structure.n_atoms:
        engine = dataclasses.replace(engine, notes=engine.notes + (
            f"analyzed padded to {len(system.positions)} atoms (jacobian.pad_atoms: masked phantoms, left out of "
            f"every result) to share compiled programs with other sizes",))
    problems = _problems(engine, jac)
    return StructureAnalysis(
        structure=structure,
        model=cfg.model.name,
        components=problem.components,
        theta=np.asarray(problem.theta0, dtype=np.float64),
        positions=positions,
        dx_dtheta=dx_dtheta,
        length_units=system.length_units or structure.length_units,
        energy_units=system.energy_units,
        solver=solver,
        engine=engine,
        stationarity_residual=float(np.max(np.abs(np.asarray(f_star)))),
        observables=observables,
        elastic_constants=elastic,
        problems=tuple(problems),
        trustworthy=engine.trustworthy and not problems,
        sample=sample,
        model_metadata=_plain_metadata(system.metadata),
        uncertainty=uncertainty,
        fixed=fixed,
        cell=cell,
        dcell_dtheta=dcell,
    )


def _plain_metadata(metadata) -> dict:
    """The plain values (text, numbers, flags, and lists or mappings of them) of a
    `System.metadata`; anything else (objects a plugin keeps there) is left out."""

    def plain(value) -> bool:
        if isinstance(value, (str, bool, int, float, np.integer, np.floating)) or value is None:
            return True
        if isinstance(value, (list, tuple)):
            return all(plain(v) for v in value)
        if isinstance(value, Mapping):
            return all(isinstance(k, str) and plain(v) for k, v in value.items())
        return False

    return {str(k): v for k, v in (metadata or {}).items() if plain(v) and v is not None}
