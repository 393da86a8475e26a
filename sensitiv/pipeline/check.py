"""`sensitiv check`: the linear propagation against brute force.

For every structure of a config with an `uncertainty` section: sample θ ~ N(θ̂, Σ), re-relax
each sample from the structure as read and analyze it (`analyze_structure` with the
sample's parameter values — equilibrium, Jacobian, observables, elastic constants), then
compare

- the sampled covariance of x* (per atom) and the sampled standard deviations of every
  observable with the linear propagation, within the sampling error;
- the sampled mean with x̂ plus the second-order mean shift;
- each sample's first-order error `‖Δx − J δθ‖ / ‖J δθ‖` with the one the second-order
  model predicts along that sample's own direction (its validity range along `δθ`: one
  more implicit solve for all samples together), so that the check says where the
  linearization breaks and whether the validity ranges saw it coming.

**Example:**

```python
from sensitiv.pipeline import check, config
report = check.check_config(config.load("examples/silicon_sw/uncertainty.yaml"), samples=32)
report.agrees, report.structures[0]["positions"]["rms_std_ratio"]
```
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import ConfigError, ConvergenceError
from ..engine import jacobian as engine_jacobian
from ..plugins import Registry, get_registry
from ..uncertainty import directional_derivatives, validity_range
from ._progress import Progress
from .analysis import ROUND_OFF, ObservableResult, StructureAnalysis, is_round_off
from .analyze import (
    _bind,
    _choose_observables,
    _condition,
    _dtype,
    _elastic_constants,
    _engine_options,
    _observable_function,
    voigt_pairs,
)
from .config import Config
from .run import analyze_config

__all__ = ["CheckReport", "check_config", "check_text"]


@dataclasses.dataclass(frozen=True)
class CheckReport:
    """What `check_config` found.

    **Arguments:**

    - `samples`, `seed`, `rtol`: the sampling and the validity tolerance.
    - `structures`: one record per structure (plain data; see `check_text` for the fields).
    - `agrees`: every comparison agreed: the linear statistics within the sampling error
      (plus the largest first-order error the second-order model predicts), and each
      sample's first-order error on the side of `rtol` that its validity range predicted
      (or within a factor 2 of the prediction).
    """

    samples: int
    seed: int
    rtol: float
    structures: tuple[dict, ...]
    agrees: bool


def _draw(sigma: np.ndarray, samples: int, seed: int) -> np.ndarray:
    """`(samples, p)` draws of N(0, Σ) (Σ positive semi-definite)."""
    lam, vec = np.linalg.eigh(0.5 * (sigma + sigma.T))
    root = vec * np.sqrt(np.clip(lam, 0, None))
    return np.random.default_rng(seed).standard_normal((samples, sigma.shape[0])) @ root.T


def _ratio(a: float, b: float) -> float | None:
    return float(a / b) if b > 0 else None


def _sampler(a: StructureAnalysis, cfg: Config, registry: Registry):
    """`(problem, F, run)`: the model bound once, and `run(θ) -> (x*, {label: g}, C, dx*/dε)`
    (the last two `None` without elastic constants),
    re-relaxing from the structure as read. Everything is compiled once for all samples
    (the solver's runner, the condition, the engine program and the observables)."""
    dtype = _dtype(cfg.jacobian.precision)
    problem = _bind(a.structure, cfg.model, registry, None, dtype)
    F = _condition(problem, cfg.condition, registry)
    chosen, elastic_label = _choose_observables(problem.system, a.structure, cfg.observables, cfg.model.name)
    functions = {label: _observable_function(fun, problem) for label, (_, fun, _) in chosen.items()}
    values = jax.jit(lambda x, th: {label: g(x, th) for label, g in functions.items()})
    solve = (registry.get_equilibrium_solver(cfg.solver.name).factory(dict(cfg.solver.options))
             if cfg.solver.relaxes else None)
    x0 = jnp.asarray(problem.system.positions)
    d = a.structure.n_spatial
    strain_cols = []
    if elastic_label is not None:
        by_index = {c.index: i for i, c in enumerate(problem.components) if c.name == "strain"}
        strain_cols = [by_index[pair] for pair in voigt_pairs(d)]

    @jax.jit
    def stress_derivative(x, th, cols):
        g = functions["stress"]
        eye = jnp.eye(th.shape[0], dtype=th.dtype)
        partial = jax.vmap(lambda e: jax.jvp(lambda t: g(x, t), (th,), (e,))[1])(eye)
        through = jax.vmap(lambda v: jax.jvp(lambda y: g(y, th), (x,), (v,))[1])(cols)
        return jnp.moveaxis(partial, 0, -1), jnp.moveaxis(partial + through, 0, -1)

    def run(theta):
        th = jnp.asarray(theta, dtype)
        if solve is None:
            x = x0
        else:
            result = solve(problem.system, x0, problem.embed(th))
            if not bool(np.asarray(result.converged)):
                raise ConvergenceError(f"{a.where}: a θ sample did not relax ({result.info.get('message', '')}); "
                                       "the uncertainty may reach beyond where the structure is stable")
            x = jnp.asarray(result.positions)
        obs = {k: np.asarray(v) for k, v in values(x, th).items()}
        elastic = None
        if elastic_label is not None:
            options = _engine_options(x, problem, cfg.jacobian, dtype)
            jac = np.asarray(engine_jacobian(F, x, th, **options).jacobian)
            cols = jnp.moveaxis(jnp.asarray(jac.reshape(x.shape + (-1,)), dtype), -1, 0)
            partial, total = (np.asarray(t) for t in stress_derivative(x, th, cols))
            stress = ObservableResult("stress", "stress", "", obs["stress"], total, partial)
            elastic = _elastic_constants(elastic_label, problem.components, d, [stress]).relaxed
            field = jac.reshape(x.shape + (-1,))[..., strain_cols]
        return np.asarray(x), obs, elastic, (field if elastic_label is not None else None)

    return problem, F, run


def _check_structure(a: StructureAnalysis, cfg: Config, registry: Registry, samples: int, seed: int,
                     progress: Progress) -> dict:
    u = a.uncertainty
    rtol = float(cfg.uncertainty.rtol)
    sigma = np.asarray(u.covariance)
    deltas = _draw(sigma, samples, seed)
    problem, F, run = _sampler(a, cfg, registry)
    dtype = _dtype(cfg.jacobian.precision)

    x_hat = np.asarray(a.positions)
    n, d = x_hat.shape
    jac = np.asarray(a.dx_dtheta).reshape(n * d, -1)
    moved, obs_values, elastic, fields, errors = [], {o.label: [] for o in a.observables}, [], [], []
    periodic = a.structure.cell is not None and any(a.structure.pbc)
    with progress.stage(f"check: {samples} samples"):
        for delta in deltas:
            x_s, values, c_s, field_s = run(np.asarray(a.theta) + delta)
            dx = x_s - x_hat
            if periodic:  # the minimum-norm derivatives carry no rigid translation
                dx = dx - dx.mean(axis=0)
            moved.append(dx)
            for label in obs_values:
                obs_values[label].append(values[label])
            if c_s is not None:
                elastic.append(c_s)
                fields.append(field_s)
            linear = (jac @ delta).reshape(n, d)
            scale = float(np.linalg.norm(linear))
            errors.append(float(np.linalg.norm(dx - linear) / scale) if scale > 0 else float("nan"))
    moved = np.asarray(moved)
    # x* of a perfect crystal does not move with the potential's parameters: the linear σ
    # and the re-relaxed samples' spread are both round-off (the summary's rule), and
    # ratios of round-off are no verdict
    static = (is_round_off(np.sqrt(np.sum(np.asarray(u.positions_std)**2, axis=-1)), x_hat)
              and is_round_off(np.linalg.norm(moved, axis=-1), x_hat))

    # second order along each sample's own direction: one implicit solve for all samples
    options = _engine_options(jnp.asarray(x_hat, dtype), problem, cfg.jacobian, dtype)
    dd = directional_derivatives(F, jnp.asarray(x_hat, dtype), problem.theta0, jacobian=np.asarray(a.dx_dtheta),
                                 directions=deltas, third_order=cfg.uncertainty.third_order, **options)
    a1 = np.asarray(dd.first).reshape(n * d, -1)
    a2 = np.asarray(dd.second).reshape(n * d, -1)
    vr = validity_range(a1, a2, None if dd.third is None else np.asarray(dd.third).reshape(n * d, -1),
                        third_bound=dd.third_bound, rtol=rtol)
    first, second = np.linalg.norm(a1, axis=0), np.linalg.norm(a2, axis=0)
    predicted = np.where(first > 0, 0.5 * second / np.where(first > 0, first, 1.0), 0.0)  # at t = 1
    errors = np.asarray(errors)
    estimate = np.asarray(vr.estimate)
    if static:  # nothing moved: no first-order error to measure or predict
        errors, predicted, estimate = np.zeros_like(errors), np.zeros_like(predicted), np.full_like(estimate, np.inf)
    agree_each = [
        (e <= rtol) == (r >= 1.0) or (max(e, p) <= 2 * min(e, p) if min(e, p) > 0 else max(e, p) <= rtol)
        for e, p, r in zip(errors, predicted, estimate)
    ]
    # the sampled mean against the second-order model of the same samples (no sampling error)
    quadratic = (a1 + 0.5 * a2).T.reshape(samples, n, d)
    sampled_mean = moved.mean(axis=0)
    model_mean = quadratic.mean(axis=0)

    se = math.sqrt(2.0 / (samples - 1))  # relative standard error of a sample variance
    # Three standard errors of a sampled standard deviation (se/2): the linear σ agrees with
    # sampling when the difference is sampling noise. Nonlinearity is no excuse: where the
    # validity ranges foresee it, the statistics disagree *and* the report says it was foreseen.
    allowance = 1.5 * se
    centered = moved - sampled_mean
    sampled_cov = np.einsum("sai,saj->aij", centered, centered) / (samples - 1)
    lin_total = float(np.sum(u.positions_std**2))
    sampled_total = float(np.trace(sampled_cov, axis1=1, axis2=2).sum())
    var_ratio = _ratio(sampled_total, lin_total)
    positions = {
        "rms_std_linear": math.sqrt(lin_total / n),
        "rms_std_sampled": math.sqrt(sampled_total / n),
        "rms_std_ratio": math.sqrt(var_ratio) if var_ratio is not None else None,
        "mean_shift_second_order": float(np.linalg.norm(u.positions_mean_shift)) if u.positions_mean_shift is not None else None,
        "mean_sampled": float(np.linalg.norm(sampled_mean)),
        "mean_sampling_error": math.sqrt(sampled_total / samples),
        "mean_model_residual": float(np.linalg.norm(sampled_mean - model_mean)),
    }
    agrees_stats = static or var_ratio is None or abs(math.sqrt(var_ratio) - 1) <= allowance
    positions["static"] = bool(static)
    positions["agrees"] = bool(agrees_stats)
    observables, ok = _compare_observables(u, obs_values, np.asarray(a.theta), sigma, allowance)
    agrees_stats &= ok
    elastic_rec, relaxation_rec, ok = _compare_elastic(u, elastic, fields, allowance)
    agrees_stats &= ok
    return {
        "source": a.structure.source,
        "frame": int(a.structure.frame),
        "samples": samples,
        "sampling_rel_se_of_std": se / 2,
        "allowance": allowance,
        "positions": positions,
        "observables": observables,
        "elastic_constants": elastic_rec,
        "internal_relaxation": relaxation_rec,
        "first_order_error": {
            "measured_median": float(np.nanmedian(errors)), "measured_max": float(np.nanmax(errors)),
            "predicted_median": float(np.median(predicted)), "predicted_max": float(np.max(predicted)),
            "samples_beyond_rtol_measured": int(np.sum(errors > rtol)),
            "samples_beyond_rtol_predicted": int(np.sum(estimate < 1.0)),
            "disagreements": int(len(agree_each) - sum(agree_each)),
        },
        "statistics_agree": bool(agrees_stats),
        # the validity ranges put the first order beyond rtol within the sampled spread
        "nonlinearity_foreseen": bool(np.sum(estimate < 1.0) > 0),
        "validity_agrees": bool(all(agree_each)),
        "second_order_warnings": list(dd.info.warnings),
    }


def _compare_observables(u, obs_values: dict, theta: np.ndarray, sigma: np.ndarray,
                         allowance: float) -> tuple[list, bool]:
    """Sampled against linear σ of each observable, component by component: `(records, agree)`."""
    steps = np.where(np.diag(sigma) > 0, np.where(theta != 0, np.abs(theta), np.sqrt(np.diag(sigma))), 0.0)
    observables, agrees = [], True
    for o in u.observables:
        vals = np.asarray(obs_values[o.label])
        sampled = vals.std(axis=0, ddof=1)
        lin = np.asarray(o.std)
        # round-off: below ROUND_OFF of the change the parameters' own size would make
        natural = np.abs(np.asarray(o.derivative)) @ steps
        noise = ROUND_OFF * max(float(np.max(natural, initial=0.0)), float(np.max(np.abs(vals), initial=0.0)))
        # compared where either side is resolved: a linear σ of exactly 0 against a sampled
        # spread (second order only) is a ratio of inf, a disagreement
        big = (lin > max(noise, 1e-8 * float(np.max(lin, initial=0.0)))) | (sampled > noise)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(big, sampled / np.where(big, lin, 1.0), np.nan)
        ok = bool(np.all(np.abs(ratio[big] - 1) <= allowance)) if np.any(big) else True
        agrees &= ok
        observables.append({"label": o.label, "std_ratio_min": _nan_none(np.nanmin(ratio)) if np.any(big) else None,
                            "std_ratio_max": _nan_none(np.nanmax(ratio)) if np.any(big) else None,
                            "std_linear_max": float(np.max(lin, initial=0.0)),
                            "std_sampled_max": float(np.max(sampled, initial=0.0)), "agrees": ok})
    return observables, agrees


def _compare_elastic(u, elastic: list, fields: list, allowance: float) -> tuple[dict | None, dict | None, bool]:
    """Sampled against linear σ of C11, C12, C44 and of the internal-relaxation field:
    `(records of C, record of the field, whether all agree within the allowance)`."""
    agrees_stats = True
    elastic_rec = None
    if elastic and u.elastic_constants is not None:
        ce = np.asarray(elastic)
        sampled = ce.std(axis=0, ddof=1)
        lin = np.asarray(u.elastic_constants.std)
        elastic_rec = {}
        for name, (i, j) in (("C11", (0, 0)), ("C12", (0, 1)), ("C44", (3, 3))):
            if i < lin.shape[0]:
                ok = lin[i, j] <= 0 or abs(sampled[i, j] / lin[i, j] - 1) <= allowance
                agrees_stats &= bool(ok)
                elastic_rec[name] = {"std_linear": float(lin[i, j]), "std_sampled": float(sampled[i, j]),
                                     "mean_sampled": float(ce[:, i, j].mean()), "agrees": bool(ok)}
    relaxation_rec = None
    if fields and u.internal_relaxation_std is not None:
        sampled = np.asarray(fields).std(axis=0, ddof=1)
        lin = np.asarray(u.internal_relaxation_std)
        lin_rms, sampled_rms = float(np.sqrt(np.mean(lin**2))), float(np.sqrt(np.mean(sampled**2)))
        ok = lin_rms <= 0 or abs(sampled_rms / lin_rms - 1) <= allowance
        agrees_stats &= bool(ok)
        relaxation_rec = {"rms_std_linear": lin_rms, "rms_std_sampled": sampled_rms, "agrees": bool(ok)}
    return elastic_rec, relaxation_rec, agrees_stats


def _nan_none(x) -> float | None:
    return float(x) if np.isfinite(x) else None


def check_config(cfg: Config, *, samples: int = 32, seed: int = 0, registry: Registry | None = None,
                 progress: Progress | None = None, analyses: Sequence[StructureAnalysis] | None = None
                 ) -> CheckReport:
    """Sample θ from the config's `uncertainty`, re-relax and compare with the linear propagation.

    **Arguments:**

    - `cfg`: a resolved `Config` with an `uncertainty` section.
    - `samples`: θ draws per structure (≥ 3).
    - `seed`: the random seed.
    - `registry`, `progress`: as for `sensitiv.pipeline.run.analyze_config`.
    - `analyses`: the config's analyses when already computed (`RunOutcome.analyses`).

    **Returns:** a `CheckReport`.

    **Raises:** `ConfigError` without an `uncertainty` section, with `ensemble.parameter_samples`
    (the check samples θ itself), with a solver that does not relax (`none`), or for fewer
    than 3 samples.
    """

    if cfg.uncertainty is None:
        raise ConfigError(f"{cfg.path}: check needs an 'uncertainty' section (what to sample)")
    if cfg.ensemble.parameter_samples is not None:
        raise ConfigError(f"{cfg.locate('ensemble', 'parameter_samples')}: check samples θ from the "
                          "'uncertainty' section itself; remove ensemble.parameter_samples")
    if samples < 3:
        raise ConfigError(f"--samples {samples}: need at least 3 samples")
    if not cfg.solver.relaxes:
        # without a solver every sample would keep x̂: a comparison that cannot fail
        raise ConfigError(f"{cfg.locate('solver', 'name')}: check re-relaxes every θ sample and solver "
                          f"{cfg.solver.name!r} relaxes nothing; choose one (e.g. --set solver.name=fire)")
    registry = registry if registry is not None else get_registry()
    progress = progress or Progress(enabled=False, verbosity=0)
    if analyses is None:
        analyses = analyze_config(cfg, registry=registry, progress=progress, scheduler="serial").analyses
    records = [_check_structure(a, cfg, registry, samples, seed + i, progress) for i, a in enumerate(analyses)]
    agrees = all(r["statistics_agree"] and r["validity_agrees"] for r in records)
    return CheckReport(samples, seed, float(cfg.uncertainty.rtol), tuple(records), agrees)


def _f(x: Any, fmt: str = ".3g") -> str:
    return "nan" if x is None else format(x, fmt)


def check_text(report: CheckReport) -> str:
    """The report `sensitiv check` prints, one line per comparison."""
    lines = []
    for r in report.structures:
        p, e = r["positions"], r["first_order_error"]
        lines.append(f"{r['source']}" + (f" (frame {r['frame']})" if r["frame"] else "")
                     + f": {r['samples']} samples re-relaxed (σ of a sampled std: ±{r['sampling_rel_se_of_std']:.0%})")
        if p.get("static"):
            lines.append(f"  x*: does not move (rms σ per atom linear {_f(p['rms_std_linear'])}, sampled "
                         f"{_f(p['rms_std_sampled'])}: round-off)")
        else:
            lines.append(f"  x*: rms σ per atom linear {_f(p['rms_std_linear'])}, sampled {_f(p['rms_std_sampled'])} "
                         f"(ratio {_f(p['rms_std_ratio'])}, allowed ±{r['allowance']:.0%})"
                         + ("" if p["agrees"] else "  DISAGREES"))
            lines.append(f"  mean of x* − x̂: sampled ‖·‖ {_f(p['mean_sampled'])} (sampling error "
                         f"{_f(p['mean_sampling_error'])}); the same samples' second-order model misses it by "
                         f"{_f(p['mean_model_residual'])}; ½ tr(Σ ∂²x*/∂θ²) = {_f(p['mean_shift_second_order'])}")
        for o in r["observables"]:
            ratios = ("sampled/linear σ: linear 0, sampled beyond round-off (second order or higher)"
                      if o["std_ratio_max"] is None and not o["agrees"] else
                      f"sampled/linear σ in [{_f(o['std_ratio_min'])}, {_f(o['std_ratio_max'])}]")
            lines.append(f"  {o['label']}: {ratios} (largest σ linear {_f(o.get('std_linear_max'))}, "
                         f"sampled {_f(o.get('std_sampled_max'))})" + ("" if o["agrees"] else "  DISAGREES"))
        for name, c in (r["elastic_constants"] or {}).items():
            lines.append(f"  {name}: σ linear {_f(c['std_linear'])}, sampled {_f(c['std_sampled'])}"
                         + ("" if c["agrees"] else "  DISAGREES"))
        if r["internal_relaxation"]:
            ir = r["internal_relaxation"]
            lines.append(f"  internal relaxation dx*/dε: rms σ linear {_f(ir['rms_std_linear'])}, sampled "
                         f"{_f(ir['rms_std_sampled'])}" + ("" if ir["agrees"] else "  DISAGREES"))
        lines.append(f"  first-order error per sample: measured median {e['measured_median']:.2%}, max "
                     f"{e['measured_max']:.2%}; second-order prediction median {e['predicted_median']:.2%}, max "
                     f"{e['predicted_max']:.2%}")
        lines.append(f"  beyond {report.rtol:.0%}: {e['samples_beyond_rtol_measured']} measured, "
                     f"{e['samples_beyond_rtol_predicted']} predicted by the validity ranges; "
                     f"{e['disagreements']} disagreement(s)")
        for w in r["second_order_warnings"]:
            lines.append(f"  WARNING (second-order solve): {w}")
        if not r["statistics_agree"] and r["nonlinearity_foreseen"] and r["validity_agrees"]:
            lines.append("  the statistics differ beyond sampling error where the validity ranges said the first "
                         "order breaks: a narrower covariance, or sampling, is the answer here")
    lines.append("result: the linear propagation agrees with sampling" if report.agrees
                 else "result: DISAGREES with sampling (see above)")
    return "\n".join(lines)
