"""The uncertainty stage of one structure (needs jax; `sensitiv.pipeline.uncertainty` does not).

After the Jacobian and the observables: linear propagation of Σ (per-atom covariance of
x*, covariance and correlations of the observables), importance by parameter and group,
and — with `second_order` — one more engine call for the second-order derivatives along
every uncertain parameter axis, every principal direction of Σ and, when the relaxed-ion
elastic constants are asked for, along `strain_b ± θ_k` (polarization gives the mixed
derivatives d²σ/dε_b dθ_k, i.e. dC/dθ): validity ranges, the second-order mean shift and
the uncertainty of C.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence

import jax.numpy as jnp
import numpy as np

from ..uncertainty import (
    ParameterCovariance,
    directional_derivatives,
    importance,
    natural_steps,
    observable_covariance,
    per_atom_covariance,
    validity_range,
)
from .analysis import (
    STRESS,
    ElasticConstants,
    ObservableResult,
    ObservableUncertainty,
    UncertaintyAnalysis,
    ValidityRanges,
)
from .theta import STRAIN, ThetaComponent
from .uncertainty import UncertaintySpec

__all__ = ["analyze_uncertainty"]


#: A range beyond this many standard deviations is round-off over a vanishing second order:
#: the output is linear in that direction (reported as inf).
EXACT_SIGMAS = 1e6


def _ranges(vr, p: int, columns: Sequence[int] | None = None, sigmas: np.ndarray | None = None) -> ValidityRanges:
    """A `ValidityRange` along `columns` of θ scattered into `p` columns (NaN elsewhere);
    `sigmas`: one standard deviation along each direction, in the ranges' units."""
    scale = np.ones(np.shape(vr.estimate)[-1]) if sigmas is None else np.asarray(sigmas, float)
    exact = np.asarray(vr.estimate) > EXACT_SIGMAS * scale
    if np.any(exact):
        est, lo, up, res = (np.array(a) for a in (vr.estimate, vr.lower, vr.upper, vr.resolved))
        for a in (est, lo, up):
            a[exact] = np.inf
        res[exact] = True
        vr = ValidityRanges(est, lo, up, res)
    if columns is None:
        return ValidityRanges(vr.estimate, vr.lower, vr.upper, vr.resolved)

    def scatter(a, fill):
        out = np.full(a.shape[:-1] + (p,), fill, dtype=a.dtype if a.dtype != bool else bool)
        out[..., list(columns)] = a
        return out

    return ValidityRanges(scatter(vr.estimate, np.nan), scatter(vr.lower, np.nan),
                          scatter(vr.upper, np.nan), scatter(vr.resolved, False))


def _voigt(tensor_cols: np.ndarray, pairs, cols, factor) -> np.ndarray:
    """`(d, d, …)` stress derivatives along strain columns `cols` → Voigt `(v, v, …)`."""
    return np.array([[tensor_cols[i, j, b] * factor[b] for b in range(len(cols))] for i, j in pairs])


@dataclasses.dataclass(frozen=True)
class _Directions:
    """The directions of the second-order engine call, in the order of its last axis:
    each uncertain parameter axis, each principal direction of Σ, then `strain_b ± θ_i`
    for each `(b, i)` of `mixed`."""

    uncertain: list[int]
    principal_count: int
    mixed: list[tuple[int, int]]
    strain_cols: list[int]

    @property
    def axes(self) -> slice:
        return slice(0, len(self.uncertain))

    @property
    def principal(self) -> slice:
        return slice(len(self.uncertain), len(self.uncertain) + self.principal_count)

    @property
    def polarized(self) -> slice:
        return slice(len(self.uncertain) + self.principal_count, None)


def analyze_uncertainty(
    spec: UncertaintySpec,
    sigma: np.ndarray,
    F: Callable,
    x_star,
    theta0,
    components: Sequence[ThetaComponent],
    jac: np.ndarray,
    observables: Sequence[ObservableResult],
    functions: Mapping[str, Callable],
    elastic: ElasticConstants | None,
    voigt_pairs: Sequence[tuple[int, int]],
    engine_options: Mapping,
    length_units: str,
) -> UncertaintyAnalysis:
    """Propagate Σ through one analyzed structure.

    **Arguments:**

    - `spec`: the `uncertainty` section; `sigma`: Σ over θ (`theta_covariance`).
    - `F`, `x_star`, `theta0`, `components`: the condition `F(x, θ)`, the root, θ and its components.
    - `jac`: dx*/dθ, `(n·d, p)` or `(n, d, p)`.
    - `observables`: the analysis's `ObservableResult`s (values and dg/dθ);
      `functions`: label → `g(x, θ)` for each, for the second order.
    - `elastic`: the relaxed-ion constants when asked for; `voigt_pairs`: their Voigt order.
    - `engine_options`: the options of the first-order Jacobian (null space, strategy, ...).
    - `length_units`: of the positions.

    **Returns:** an `UncertaintyAnalysis`.
    """
    labels = tuple(c.label for c in components)
    theta = np.asarray(theta0, np.float64)
    x_star = jnp.asarray(x_star)
    n, d = x_star.shape
    jac3 = np.asarray(jac, np.float64).reshape(n, d, len(labels))
    cov = ParameterCovariance.from_matrix(sigma, theta, labels=labels)
    groups = None
    if spec.groups:
        groups = [[lab for g_label in g for lab in _expand(g_label, components)] for g in spec.groups]

    field = per_atom_covariance(jac3, cov, units=length_units)
    imp_x = importance(jac3, cov, groups=groups, rule=spec.rule)
    derivs = {o.label: o.derivative for o in observables}
    oc = observable_covariance(derivs, cov) if derivs else None

    lam, steps = cov.principal_directions()
    dirs = _directions(sigma, components, elastic, voigt_pairs, steps.shape[0])
    dd = None
    if spec.second_order and dirs.uncertain:
        dd = directional_derivatives(F, x_star, jnp.asarray(theta0), jacobian=jac3,
                                     directions=_direction_matrix(dirs, len(labels), steps),
                                     observables=dict(functions), third_order=spec.third_order,
                                     **dict(engine_options))
    positions_validity, positions_validity_p, positions_shift = _positions_validity(spec, sigma, theta, dd, dirs)
    obs_out = [_observable_uncertainty(o, spec, sigma, theta, cov, groups, oc, dd, dirs) for o in observables]
    elastic_out, relax_std, relax_derivative = _elastic_uncertainty(
        spec, sigma, cov, groups, elastic, voigt_pairs, dd, dirs, (n, d))

    return UncertaintyAnalysis(
        source=spec.source, rule=imp_x.rule, rtol=float(spec.rtol), covariance=np.asarray(sigma),
        groups=imp_x.groups, principal_variance=lam, principal_direction=steps,
        positions_std=np.asarray(field.std), positions_covariance=np.asarray(field.covariance),
        positions_variance_by_parameter=np.asarray(imp_x.contribution),
        positions_variance_by_group=np.asarray(imp_x.group_contribution),
        positions_validity=positions_validity, positions_validity_principal=positions_validity_p,
        positions_mean_shift=positions_shift,
        observables=tuple(obs_out), elastic_constants=elastic_out,
        internal_relaxation_std=relax_std, internal_relaxation_derivative=relax_derivative,
        observable_labels=tuple(oc.labels) if oc is not None else (),
        observable_covariance=np.asarray(oc.covariance) if oc is not None else np.zeros((0, 0)),
        observable_correlation=np.asarray(oc.correlation) if oc is not None else np.zeros((0, 0)),
        second_order_trustworthy=bool(np.asarray(dd.info.trustworthy)) if dd is not None else True,
        second_order_warnings=tuple(dd.info.warnings) if dd is not None else (),
    )


def _directions(sigma: np.ndarray, components: Sequence[ThetaComponent], elastic: ElasticConstants | None,
                voigt_pairs: Sequence[tuple[int, int]], principal_count: int) -> _Directions:
    """Which directions the second order needs: the uncertain axes, Σ's principal
    directions and, with elastic constants, every (strain column, uncertain axis) pair."""
    uncertain = [i for i in range(len(components)) if sigma[i, i] > 0]
    mixed: list[tuple[int, int]] = []
    strain_cols: list[int] = []
    if elastic is not None:
        by_index = {c.index: i for i, c in enumerate(components) if c.name == STRAIN}
        strain_cols = [by_index[pair] for pair in voigt_pairs]
        mixed = [(b, i) for b in strain_cols for i in uncertain]
    return _Directions(uncertain, principal_count, mixed, strain_cols)


def _direction_matrix(dirs: _Directions, p: int, steps: np.ndarray) -> np.ndarray:
    """`(m, p)`: the directions of `dirs` as rows (polarization pairs `e_b ± e_i` last)."""
    eye = np.eye(p)
    rows = [eye[i] for i in dirs.uncertain] + list(steps)
    for b, i in dirs.mixed:
        rows += [eye[b] + eye[i], eye[b] - eye[i]]
    return np.array(rows)


def _positions_validity(spec: UncertaintySpec, sigma: np.ndarray, theta: np.ndarray, dd, dirs: _Directions):
    """`(validity along each axis, along each principal direction, second-order mean shift)`
    of x*; `None`s without the second order."""
    if dd is None:
        return None, None, None
    p = sigma.shape[0]
    uncertain, n_ax, k = dirs.uncertain, len(dirs.uncertain), dirs.principal_count

    def field_ranges(sl, cols):
        width = sl.stop - sl.start
        first = np.asarray(dd.first)[..., sl].reshape(-1, width)
        third = None if dd.third is None else np.asarray(dd.third)[..., sl].reshape(-1, width)
        sigmas = None if cols is None else np.sqrt(sigma[cols, cols])
        # a direction x* does not depend on (a perfect crystal under its potential's
        # parameters) gets an infinite range: the orders are compared with what the root resolves
        return _ranges(validity_range(
            first, np.asarray(dd.second)[..., sl].reshape(-1, width), third,
            third_bound=None if dd.third is not None else np.asarray(dd.third_bound)[sl], rtol=spec.rtol,
            scale=_natural(dd, sl, theta, sigma), noise=dd.resolution), p, cols, sigmas)

    validity = field_ranges(dirs.axes, uncertain)
    validity_p = field_ranges(dirs.principal, None)
    shift = 0.5 * np.sum(np.asarray(dd.second)[..., dirs.principal], axis=-1)
    return validity, validity_p, shift


def _natural(dd, sl: slice, theta: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """`natural_steps` of the directions `sl` of the second-order call."""
    return natural_steps(np.asarray(dd.directions)[sl], theta, np.sqrt(np.clip(np.diag(sigma), 0.0, None)))


def _observable_uncertainty(o: ObservableResult, spec: UncertaintySpec, sigma: np.ndarray, theta: np.ndarray, cov,
                            groups, oc, dd, dirs: _Directions) -> ObservableUncertainty:
    """σ, importance and (with the second order) validity ranges and mean shift of one observable."""
    imp = importance(o.derivative, cov, groups=groups, rule=spec.rule)
    validity = validity_p = shift = None
    if dd is not None:
        p = sigma.shape[0]

        def component_ranges(sl, cols):
            first = np.asarray(dd.observables_first[o.label])[..., sl]
            second = np.asarray(dd.observables_second[o.label])[..., sl]
            third = None if dd.observables_third is None else np.asarray(dd.observables_third[o.label])[..., sl]
            bound = np.asarray(dd.observables_third_bound[o.label])[..., sl]
            sigmas = None if cols is None else np.sqrt(sigma[cols, cols])
            return _ranges(validity_range(first, second, third, third_bound=bound, rtol=spec.rtol,
                                          reduce="component", scale=_natural(dd, sl, theta, sigma),
                                          noise=dd.observables_resolution[o.label]), p, cols, sigmas)

        validity = component_ranges(dirs.axes, dirs.uncertain)
        validity_p = component_ranges(dirs.principal, None)
        shift = 0.5 * np.sum(np.asarray(dd.observables_second[o.label])[..., dirs.principal], axis=-1)
    return ObservableUncertainty(
        o.label, o.units, np.asarray(oc.std[o.label]), np.asarray(imp.contribution),
        np.asarray(imp.group_contribution), validity, validity_p, shift, o.derivative)


def _polarized(second: np.ndarray, dirs: _Directions, p: int) -> np.ndarray:
    """Mixed derivatives `(…, strain column, p)` from the second derivatives along
    `e_b ± e_i`: ¼ (D²(e_b + e_i) − D²(e_b − e_i)) = ∂²/∂ε_b ∂θ_i."""
    out = np.zeros(second.shape[:-1] + (len(dirs.strain_cols), p))
    for m, (b, i) in enumerate(dirs.mixed):
        out[..., dirs.strain_cols.index(b), i] = 0.25 * (second[..., 2 * m] - second[..., 2 * m + 1])
    return out


def _elastic_uncertainty(spec: UncertaintySpec, sigma: np.ndarray, cov, groups, elastic: ElasticConstants | None,
                         voigt_pairs: Sequence[tuple[int, int]], dd, dirs: _Directions, shape: tuple[int, int]):
    """`(σ and importance of the relaxed-ion C, σ of dx*/dε, d²x*/dε dθ)`: `None`s without
    elastic constants or the second order."""
    if elastic is None or dd is None or not dirs.mixed:
        return None, None, None
    p = sigma.shape[0]
    # the internal-relaxation field dx*/dε_b and its derivative by θ_k (mixed, polarized)
    relax_derivative = _polarized(np.asarray(dd.second)[..., dirs.polarized], dirs, p)  # (n, d, b, p)
    relax_std = np.sqrt(np.clip(np.einsum("nvbp,pq,nvbq->nvb", relax_derivative, sigma, relax_derivative),
                                0.0, None))
    mixed_sd = _polarized(np.asarray(dd.observables_second[STRESS])[..., dirs.polarized], dirs, p)  # (d, d, b, p)
    factor = np.ones(len(voigt_pairs))  # θ's shear strains are engineering shears: C = dσ/dθ
    dC = _voigt(mixed_sd, voigt_pairs, dirs.strain_cols, factor)  # (v, v, p)
    ec = observable_covariance(dC, cov)
    imp_c = importance(dC, cov, groups=groups, rule=spec.rule)
    elastic_out = ObservableUncertainty(
        elastic.label, elastic.units, np.asarray(ec.std), np.asarray(imp_c.contribution),
        np.asarray(imp_c.group_contribution), None, None, None, dC)
    return elastic_out, relax_std, relax_derivative


def _expand(label: str, components: Sequence[ThetaComponent]) -> list[str]:
    """A group entry: a component label, or every component of a parameter name."""
    exact = [c.label for c in components if c.label == label]
    return exact or [c.label for c in components if c.name == label]
