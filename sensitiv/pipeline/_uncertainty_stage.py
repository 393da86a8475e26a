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

from collections.abc import Callable, Mapping, Sequence

import numpy as np

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


def _ranges(vr, p: int, columns: Sequence[int] | None = None) -> ValidityRanges:
    """A `ValidityRange` along `columns` of θ scattered into `p` columns (NaN elsewhere)."""
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
    import jax.numpy as jnp

    from ..uncertainty import (
        ParameterCovariance,
        directional_derivatives,
        importance,
        observable_covariance,
        per_atom_covariance,
        validity_range,
    )

    labels = tuple(c.label for c in components)
    p = len(labels)
    theta = np.asarray(theta0, np.float64)
    x_star = jnp.asarray(x_star)
    n, d = x_star.shape
    jac3 = np.asarray(jac, np.float64).reshape(n, d, p)
    cov = ParameterCovariance.from_matrix(sigma, theta, labels=labels)
    groups = None
    if spec.groups:
        groups = [[lab for g_label in g for lab in _expand(g_label, components)] for g in spec.groups]

    field = per_atom_covariance(jac3, cov, units=length_units)
    imp_x = importance(jac3, cov, groups=groups, rule=spec.rule)
    group_labels = imp_x.groups
    derivs = {o.label: o.derivative for o in observables}
    oc = observable_covariance(derivs, cov) if derivs else None
    imp_obs = {label: importance(dg, cov, groups=groups, rule=spec.rule) for label, dg in derivs.items()}

    lam, steps = cov.principal_directions()
    k = lam.shape[0]
    uncertain = [i for i in range(p) if sigma[i, i] > 0]
    dd = None
    mixed: list[tuple[int, int]] = []
    strain_cols: list[int] = []
    if spec.second_order and uncertain:
        directions = [np.eye(p)[i] for i in uncertain] + list(steps)
        if elastic is not None:
            by_index = {c.index: i for i, c in enumerate(components) if c.name == STRAIN}
            strain_cols = [by_index[pair] for pair in voigt_pairs]
            for b in strain_cols:
                for i in uncertain:
                    mixed.append((b, i))
                    directions += [np.eye(p)[b] + np.eye(p)[i], np.eye(p)[b] - np.eye(p)[i]]
        g_functions = dict(functions)
        dd = directional_derivatives(F, x_star, jnp.asarray(theta0), jacobian=jac3, directions=np.array(directions),
                                     observables=g_functions, third_order=spec.third_order,
                                     **dict(engine_options))

    n_ax = len(uncertain)
    axes, principal = slice(0, n_ax), slice(n_ax, n_ax + k)

    def field_ranges(sl, cols):
        third = None if dd.third is None else np.asarray(dd.third)[..., sl].reshape(-1, sl.stop - sl.start)
        return _ranges(validity_range(
            np.asarray(dd.first)[..., sl].reshape(-1, sl.stop - sl.start),
            np.asarray(dd.second)[..., sl].reshape(-1, sl.stop - sl.start), third,
            third_bound=None if dd.third is not None else np.asarray(dd.third_bound)[sl], rtol=spec.rtol), p, cols)

    def component_ranges(label, sl, cols):
        first = np.asarray(dd.observables_first[label])[..., sl]
        second = np.asarray(dd.observables_second[label])[..., sl]
        third = None if dd.observables_third is None else np.asarray(dd.observables_third[label])[..., sl]
        bound = np.asarray(dd.observables_third_bound[label])[..., sl]
        return _ranges(validity_range(first, second, third, third_bound=bound, rtol=spec.rtol,
                                      reduce="component"), p, cols)

    positions_validity = positions_validity_p = positions_shift = None
    if dd is not None:
        positions_validity = field_ranges(axes, uncertain)
        positions_validity_p = field_ranges(principal, None)
        positions_shift = 0.5 * np.sum(np.asarray(dd.second)[..., principal], axis=-1)
        # Where x* does not move (a perfect crystal under its potential's parameters), the
        # derivatives are round-off and their ratio no range: a field that moves by less
        # than 1e-10 of the structure's extent per standard deviation is exact.
        extent = float(np.max(np.ptp(np.asarray(x_star), axis=0))) or 1.0
        per_sigma = np.concatenate([
            np.linalg.norm(np.asarray(dd.first)[..., axes].reshape(-1, n_ax), axis=0) * np.sqrt(sigma[uncertain, uncertain]),
            np.linalg.norm(np.asarray(dd.first)[..., principal].reshape(-1, k), axis=0),
        ])
        still = per_sigma <= 1e-10 * extent
        if np.any(still):
            positions_validity = _exact(positions_validity, uncertain, still[:n_ax])
            positions_validity_p = _exact(positions_validity_p, list(range(k)), still[n_ax:])

    obs_out = []
    for o in observables:
        imp = imp_obs[o.label]
        validity = validity_p = shift = None
        if dd is not None:
            validity = component_ranges(o.label, axes, uncertain)
            validity_p = component_ranges(o.label, principal, None)
            shift = 0.5 * np.sum(np.asarray(dd.observables_second[o.label])[..., principal], axis=-1)
        obs_out.append(ObservableUncertainty(
            o.label, o.units, np.asarray(oc.std[o.label]), np.asarray(imp.contribution),
            np.asarray(imp.group_contribution), validity, validity_p, shift, o.derivative))

    elastic_out = relax_std = relax_derivative = None
    if elastic is not None and dd is not None and mixed:
        # the internal-relaxation field dx*/dε_b and its derivative by θ_k (mixed, polarized)
        x2 = np.asarray(dd.second)[..., n_ax + k:]  # (n, d, 2·len(mixed))
        relax_derivative = np.zeros((n, d, len(strain_cols), p))
        for m, (b, i) in enumerate(mixed):
            relax_derivative[:, :, strain_cols.index(b), i] = 0.25 * (x2[..., 2 * m] - x2[..., 2 * m + 1])
        relax_std = np.sqrt(np.clip(np.einsum("nvbp,pq,nvbq->nvb", relax_derivative, sigma, relax_derivative),
                                    0.0, None))
        d2 = np.asarray(dd.observables_second[STRESS])[..., n_ax + k:]  # (d, d, 2·len(mixed))
        factor = np.array([1.0 if i == j else 0.5 for i, j in voigt_pairs])
        mixed_sd = np.zeros((d, d, len(strain_cols), p))
        for m, (b, i) in enumerate(mixed):
            mixed_sd[:, :, strain_cols.index(b), i] = 0.25 * (d2[..., 2 * m] - d2[..., 2 * m + 1])
        dC = _voigt(mixed_sd, voigt_pairs, strain_cols, factor)  # (v, v, p)
        ec = observable_covariance(dC, cov)
        imp_c = importance(dC, cov, groups=groups, rule=spec.rule)
        elastic_out = ObservableUncertainty(
            elastic.label, elastic.units, np.asarray(ec.std), np.asarray(imp_c.contribution),
            np.asarray(imp_c.group_contribution), None, None, None, dC)

    return UncertaintyAnalysis(
        source=spec.source, rule=imp_x.rule, rtol=float(spec.rtol), covariance=np.asarray(sigma),
        groups=group_labels, principal_variance=lam, principal_direction=steps,
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


def _exact(ranges: ValidityRanges, columns: Sequence[int], still: np.ndarray) -> ValidityRanges:
    """Ranges with the `still` directions (among `columns`) set to infinite and resolved."""
    cols = [c for c, s in zip(columns, still) if s]
    est, lo, up, res = (np.array(a) for a in (ranges.estimate, ranges.lower, ranges.upper, ranges.resolved))
    for a in (est, lo, up):
        a[..., cols] = np.inf
    res[..., cols] = True
    return ValidityRanges(est, lo, up, res)


def _expand(label: str, components: Sequence[ThetaComponent]) -> list[str]:
    """A group entry: a component label, or every component of a parameter name."""
    exact = [c.label for c in components if c.label == label]
    return exact or [c.label for c in components if c.name == label]
