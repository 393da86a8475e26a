"""First order: linear propagation of a parameter covariance, log-sensitivities, importance.

With `y = y(θ)` linearized at `θ̂`, `δy ≈ A δθ` where `A = dy/dθ` (the implicit Jacobian
`∂x*/∂θ`, or the total derivative of an observable), and `Cov(y) ≈ A Σ Aᵀ`. For the
positions of `N` atoms only the `spatial × spatial` block of each atom is formed
(`O(N s² n)`), never the dense `d × d` covariance.

**Importance.** The variance `aᵀΣa` of one output is split into one share per parameter
(and per group). With independent parameters every reasonable rule gives `aⱼ²σⱼ²`. With
correlated ones the default rule is the Shapley effect of each parameter for the linear
prediction (Owen & Prieur 2017; Iooss & Prieur 2019; for a linear model it is the LMG
decomposition of Lindeman, Merenda & Gold 1980, see Grömping 2007): the value of a set `u`
of parameters is the variance of the output explained by knowing them,
`c(u) = Var(y) − Var(y | θ_u)` (Gaussian conditioning, or equivalently best linear
prediction), and each parameter gets its average marginal contribution over all orders in
which parameters can be revealed. Its properties: shares are ≥ 0, add up to `Var(y)`
exactly, reduce to `aⱼ²σⱼ²` without correlation, treat exchangeable parameters equally,
and a parameter that does not enter `y` but is correlated with one that does receives part
of the variance (it carries information about `y`). Because `c(u)` is a quadratic form in
`a`, each parameter's Shapley effect is `aᵀ Wⱼ a` for a matrix `Wⱼ` that depends on `Σ`
only (`Σⱼ Wⱼ = Σ`): the `2^g` conditionings of a correlated group of `g` parameters are
computed once, and every output costs one quadratic form per parameter. Groups of mutually
correlated parameters (connected components of the correlation graph) are uncorrelated
with each other, so a group's share is exactly `a_Gᵀ Σ_GG a_G` and the Shapley effects
decompose group by group. The alternative `rule="covariance"` gives `aⱼ (Σa)ⱼ` (each
parameter's variance plus half of its covariances): also additive and exact, cheaper, but
shares can be negative.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import InputError
from ._covariance import ParameterCovariance, connected_components, parameter_labels

__all__ = [
    "FieldCovariance",
    "ObservableCovariance",
    "Importance",
    "per_atom_covariance",
    "observable_covariance",
    "log_sensitivity",
    "importance",
]

#: Largest number of correlated players whose 2^g conditionings are enumerated exactly.
MAX_SHAPLEY_GROUP = 14

# -- reading Jacobians shaped like jax.jacobian's --------------------------------------------


def _backend(*trees):
    """numpy for concrete inputs (host algebra, no per-operation dispatch), jax.numpy when
    traced (under `jit`/`vmap`): the same code serves both."""
    traced = any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(trees))
    return jnp if traced else np


def _host(tree):
    """Concrete jax arrays as numpy (one transfer each); tracers unchanged."""
    return jax.tree.map(lambda x: x if isinstance(x, jax.core.Tracer) else np.asarray(x), tree)


def _structure(covariance_or_params):
    if isinstance(covariance_or_params, ParameterCovariance):
        return covariance_or_params.treedef, covariance_or_params.shapes
    leaves = jax.tree.leaves(covariance_or_params)
    return jax.tree.structure(covariance_or_params), tuple(tuple(np.shape(x)) for x in leaves)


def jacobian_columns(jacobian: Any, structure) -> tuple[Any, list[jax.Array]]:
    """`(output treedef, [(*out_shape, n) arrays])` from a Jacobian structured like
    `jax.jacobian`'s (output structure outside, parameter structure inside)."""
    treedef, shapes = structure
    n_leaves = len(shapes)

    def is_inner(t):
        try:
            st = jax.tree.structure(t)
        except Exception:  # noqa: BLE001 - anything that is not a pytree
            return False
        if st != treedef:
            return False
        leaves = jax.tree.leaves(t)
        return len(leaves) == n_leaves and all(
            np.ndim(x) >= len(s) and tuple(np.shape(x)[np.ndim(x) - len(s):]) == s for x, s in zip(leaves, shapes)
        )

    xp = _backend(jacobian)
    inners, out_def = jax.tree.flatten(_host(jacobian), is_leaf=is_inner)
    cols = []
    for inner in inners:
        if not is_inner(inner):
            raise InputError(
                "jacobian: its inner structure must be the parameters' (leaf shapes ending in "
                f"{list(shapes)}), as sensitiv.jacobian and jax.jacobian return it; got a leaf of "
                f"shape {np.shape(inner)}"
            )
        leaves = jax.tree.leaves(inner)
        out_shape = tuple(np.shape(leaves[0])[: np.ndim(leaves[0]) - len(shapes[0])])
        cols.append(xp.concatenate([xp.reshape(x, out_shape + (-1,)) for x in leaves], axis=-1))
    return out_def, cols


# -- propagation ----------------------------------------------------------------------------


class FieldCovariance(NamedTuple):
    """The linearly propagated uncertainty of a per-atom field (positions, displacements).

    **Arguments:**

    - `std`: standard deviation of every coordinate, shaped like the field `(N, s)`.
    - `covariance`: `(N, s, s)`: the `spatial × spatial` covariance of each atom.
    - `units`: the field's units (`std`'s; `covariance` is in their square), or `None`.

    **Example:**

    ```python
    fc = per_atom_covariance(dx_dtheta, cov, units="angstrom")
    fc.std.shape, fc.covariance.shape          # (N, 3), (N, 3, 3)
    ```
    """

    std: jax.Array
    covariance: jax.Array
    units: str | None = None

    @property
    def rms(self) -> jax.Array:
        """Root-mean-square displacement of each atom, `sqrt(trace covariance)` (`N`,)."""
        xp = _backend(self.covariance)
        return xp.sqrt(xp.clip(xp.trace(self.covariance, axis1=-2, axis2=-1), 0.0, None))


class ObservableCovariance(NamedTuple):
    """The linearly propagated uncertainty of observables (every component of every leaf).

    **Arguments:**

    - `std`: standard deviations, shaped like the observables (a pytree).
    - `covariance`: `(m, m)` covariance of all `m` observable components, flattened in
      `jax.tree` order.
    - `correlation`: `(m, m)` correlation matrix (zero rows for components without variance).
    - `labels`: the `m` component labels.
    - `units`: per leaf (pytree of strings like the observables), or `None`.

    **Example:**

    ```python
    oc = observable_covariance(dC_dtheta, cov)
    oc.std, oc.correlation
    ```
    """

    std: Any
    covariance: jax.Array
    correlation: jax.Array
    labels: tuple[str, ...]
    units: Any = None


def _matrix(covariance: ParameterCovariance, dtype, xp=jnp) -> jax.Array:
    if not isinstance(covariance, ParameterCovariance):
        raise InputError(
            "covariance: expected a sensitiv.uncertainty.ParameterCovariance (from_std, "
            f"from_matrix, from_correlation or from_samples), got {type(covariance).__name__}"
        )
    return xp.asarray(covariance.matrix, dtype=dtype)


def per_atom_covariance(dx_dtheta: Any, covariance: ParameterCovariance, *, units: str | None = None
                        ) -> FieldCovariance:
    """Per-atom covariance of a field linearized in θ: `Cov(xᵢ) = Jᵢ Σ Jᵢᵀ` for each atom `i`.

    Only the `spatial × spatial` block of each atom is formed (`O(N s² n)` work and
    `N s²` memory), never the `d × d` covariance of the whole field.

    **Arguments:**

    - `dx_dtheta`: the field's Jacobian, structured like `jax.jacobian`'s: one output leaf
      of shape `(N, s)` (or `(..., s)`), the parameters' structure inside (e.g. the
      `.jacobian` of `sensitiv.jacobian(F, positions, params)`).
    - `covariance`: a `ParameterCovariance` over the same θ.
    - `units`: the field's units (carried to the result).

    **Returns:** a `FieldCovariance` (`std (N, s)`, `covariance (N, s, s)`).

    **Example:**

    ```python
    J = sensitiv.jacobian(jax.grad(energy), x_star, params).jacobian
    fc = per_atom_covariance(J, ParameterCovariance.from_std({"epsilon": 0.02, "sigma": 0.01}))
    ```
    """
    _, cols = jacobian_columns(dx_dtheta, _structure(covariance))
    if len(cols) != 1:
        raise InputError(f"dx_dtheta: expected one field (one output leaf), got {len(cols)}; call per leaf")
    a = cols[0]
    if a.ndim < 2:
        raise InputError(f"dx_dtheta: a per-atom field needs shape (N, s) outside the parameters, got {a.shape[:-1]}")
    xp = _backend(a)
    sigma = _matrix(covariance, a.dtype, xp)
    cov = xp.einsum("...in,nm,...jm->...ij", a, sigma, a)
    std = xp.sqrt(xp.clip(xp.diagonal(cov, axis1=-2, axis2=-1), 0.0, None))
    return FieldCovariance(std, cov, units)


def _component_labels(out_def, cols, names=None) -> tuple[str, ...]:
    shapes = [jax.ShapeDtypeStruct(c.shape[:-1], c.dtype) for c in cols]
    return parameter_labels(jax.tree.unflatten(out_def, shapes)) if names is None else tuple(names)


def observable_covariance(dg_dtheta: Any, covariance: ParameterCovariance, *, labels=None, units: Any = None
                          ) -> ObservableCovariance:
    """Covariance, standard deviations and correlations of observables linearized in θ.

    **Arguments:**

    - `dg_dtheta`: total derivatives structured like `jax.jacobian`'s (observables'
      structure outside, the parameters' inside), e.g. `sensitiv.total_derivative(...).jacobian`
      or a dict of them.
    - `covariance`: a `ParameterCovariance` over the same θ.
    - `labels`: component labels (default: `parameter_labels` of the observables' shapes).
    - `units`: the observables' units, carried to the result.

    **Returns:** an `ObservableCovariance`.

    **Example:**

    ```python
    dC = sensitiv.total_derivative(elastic_constants, F, x_star, params).jacobian
    oc = observable_covariance({"C": dC}, cov)
    oc.std["C"]
    ```
    """
    out_def, cols = jacobian_columns(dg_dtheta, _structure(covariance))
    n = covariance.size
    xp = _backend(cols)
    flat = xp.concatenate([xp.reshape(c, (-1, n)) for c in cols], axis=0) if cols else xp.zeros((0, n))
    sigma = _matrix(covariance, flat.dtype, xp)
    cov = flat @ sigma @ flat.T
    cov = 0.5 * (cov + cov.T)
    var = xp.clip(xp.diagonal(cov), 0.0, None)
    std_flat = xp.sqrt(var)
    safe = xp.where(std_flat > 0, std_flat, 1.0)
    corr = xp.where(std_flat[:, None] * std_flat[None, :] > 0, cov / safe[:, None] / safe[None, :], 0.0)
    eye = xp.eye(corr.shape[0], dtype=bool)
    corr = xp.where(eye, xp.where(std_flat > 0, 1.0, 0.0)[:, None], corr)
    pieces, offset = [], 0
    for c in cols:
        size = math.prod(c.shape[:-1])
        pieces.append(xp.reshape(std_flat[offset : offset + size], c.shape[:-1]))
        offset += size
    labs = _component_labels(out_def, cols, labels)
    if len(labs) != flat.shape[0]:
        raise InputError(f"labels: {len(labs)} labels for {flat.shape[0]} observable components")
    return ObservableCovariance(jax.tree.unflatten(out_def, pieces), cov, corr, labs, units)


# -- log-sensitivities ------------------------------------------------------------------------


def log_sensitivity(jacobian: Any, params: Any) -> Any:
    """Log-sensitivities `dy/d log θ = θ · dy/dθ`: the change of `y` per relative change of θ.

    They carry the units of `y` for every parameter, so parameters of different units can
    be ranked against each other: ranking by `|dy/d log θⱼ|` is ranking by variance share
    when every parameter is independently uncertain by the same relative amount. Where a
    parameter is zero (a reference strain) its log-sensitivity is zero and ranks nothing;
    give such parameters a standard deviation instead.

    **Arguments:**

    - `jacobian`: `dy/dθ` structured like `jax.jacobian`'s.
    - `params`: θ (the pytree the Jacobian was taken in).

    **Returns:** a pytree structured like `jacobian`.

    **Example:**

    ```python
    J = sensitiv.jacobian(F, x_star, params).jacobian
    L = log_sensitivity(J, params)           # Å per unit relative change of each parameter
    ```
    """
    treedef, shapes = _structure(params)
    theta = jax.tree.leaves(params)
    out_def, _ = jacobian_columns(jacobian, (treedef, shapes))

    xp = _backend(jacobian, params)

    def scale(inner):
        return jax.tree.unflatten(
            treedef, [x * xp.asarray(t, dtype=x.dtype) for x, t in zip(jax.tree.leaves(inner), theta)]
        )

    def is_inner(t):
        try:
            return jax.tree.structure(t) == treedef and len(jax.tree.leaves(t)) == len(shapes)
        except Exception:  # noqa: BLE001
            return False

    inners = jax.tree.flatten(_host(jacobian), is_leaf=is_inner)[0]
    return jax.tree.unflatten(out_def, [scale(inner) for inner in inners])


# -- importance --------------------------------------------------------------------------------


def _player_blocks(sigma: np.ndarray, players: list[tuple[int, ...]]) -> list[list[int]]:
    """Components of the player graph: players linked by any nonzero cross-covariance."""
    p = len(players)
    scale = float(np.max(np.abs(sigma))) if sigma.size else 0.0
    link = np.zeros((p, p), bool)
    for a in range(p):
        for b in range(p):
            link[a, b] = a == b or np.any(np.abs(sigma[np.ix_(players[a], players[b])]) > 1e-14 * scale)
    return [list(c) for c in connected_components(link)]


def _explained(sigma: np.ndarray, idx: list[int]) -> np.ndarray:
    """`Σ[:, u] Σ_uu⁺ Σ[u, :]`: the covariance explained by knowing θ_u (Gaussian conditioning)."""
    if not idx:
        return np.zeros_like(sigma)
    s_uu = sigma[np.ix_(idx, idx)]
    return sigma[:, idx] @ np.linalg.pinv(s_uu, rcond=1e-12, hermitian=True) @ sigma[idx, :]


def shapley_matrices(sigma: np.ndarray, players: list[tuple[int, ...]], rule: str = "shapley") -> np.ndarray:
    """`W (P, n, n)` with player `p`'s variance share of an output `aᵀ W_p a`; `Σ_p W_p = Σ`."""
    n = sigma.shape[0]
    out = np.zeros((len(players), n, n))
    if rule == "covariance":
        for p, idx in enumerate(players):
            mask = np.zeros(n)
            mask[list(idx)] = 1.0
            out[p] = 0.5 * (mask[:, None] * sigma + sigma * mask[None, :])
        return out
    for block in _player_blocks(sigma, players):
        g = len(block)
        if g > MAX_SHAPLEY_GROUP:
            names = ", ".join(str(players[b]) for b in block[:4])
            raise InputError(
                f"importance: {g} mutually correlated parameters (or groups: {names}, ...) need 2^{g} "
                f"conditionings for exact Shapley effects (limit {MAX_SHAPLEY_GROUP}): pass groups= to "
                "rank correlated parameters together, or rule='covariance'"
            )
        explained = {}
        for mask in range(1 << g):
            idx = [i for k in range(g) if mask >> k & 1 for i in players[block[k]]]
            explained[mask] = _explained(sigma, idx)
        weight = [math.factorial(s) * math.factorial(g - s - 1) / math.factorial(g) for s in range(g)]
        for k in range(g):
            acc = np.zeros((n, n))
            for mask in range(1 << g):
                if mask >> k & 1:
                    continue
                acc += weight[bin(mask).count("1")] * (explained[mask | (1 << k)] - explained[mask])
            out[block[k]] = 0.5 * (acc + acc.T)
    return out


class Importance(NamedTuple):
    """The variance of outputs decomposed by parameter and by group of parameters.

    **Arguments:**

    - `variance`: the linearly propagated variance of every output component (pytree
      shaped like the outputs; units: the outputs' squared).
    - `contribution`: per output component and parameter (leaf shapes `out + (n,)`); they
      add up to `variance` exactly.
    - `group_contribution`: per output component and group (`out + (G,)`), also adding up.
    - `parameters`: the `n` parameter labels.
    - `groups`: the `G` groups, each a tuple of parameter labels.
    - `rule`: `"shapley"`, `"covariance"` or `"log-sensitivity"` (no covariance given:
      every parameter independently uncertain by 100 % of its value).

    **Example:**

    ```python
    imp = importance(J, cov)
    imp.ranking()                 # [('sigma', 0.81), ('epsilon', 0.19)]: shares of Σ variance
    ```
    """

    variance: Any
    contribution: Any
    group_contribution: Any
    parameters: tuple[str, ...]
    groups: tuple[tuple[str, ...], ...]
    rule: str

    def totals(self) -> tuple[np.ndarray, np.ndarray, float]:
        """`(per parameter (n,), per group (G,), total variance)` summed over every output
        component (for a displacement field: the decomposition of `trace Cov`)."""
        per_param = sum(np.sum(np.reshape(np.asarray(c), (-1, len(self.parameters))), axis=0)
                        for c in jax.tree.leaves(self.contribution))
        per_group = sum(np.sum(np.reshape(np.asarray(c), (-1, len(self.groups))), axis=0)
                        for c in jax.tree.leaves(self.group_contribution))
        total = float(sum(np.sum(np.asarray(v)) for v in jax.tree.leaves(self.variance)))
        return np.asarray(per_param), np.asarray(per_group), total

    def ranking(self, by: str = "parameter") -> list[tuple[str, float]]:
        """Parameters (or groups, `by="group"`) sorted by their share of the summed variance.

        **Arguments:**

        - `by`: `"parameter"` or `"group"`.

        **Returns:** `[(label, share)]`, largest share first; shares add up to 1 (0 when
        the outputs do not vary).
        """
        per_param, per_group, total = self.totals()
        values, names = (per_param, self.parameters) if by == "parameter" else (
            per_group, tuple("+".join(g) for g in self.groups))
        shares = values / total if total > 0 else np.zeros_like(values)
        order = np.argsort(-shares, kind="stable")
        return [(names[i], float(shares[i])) for i in order]


def importance(jacobian: Any, covariance: ParameterCovariance | None = None, *, params: Any = None,
               groups: Any = None, rule: str = "shapley") -> Importance:
    """Decompose the linearly propagated variance of every output by parameter and by group.

    See the module notes for the rule: by default Shapley effects of the linear prediction
    (non-negative, exactly additive, `aⱼ²σⱼ²` without correlations); `rule="covariance"`
    gives `aⱼ(Σa)ⱼ` (additive, may be negative). Without a covariance the ranking is by
    log-sensitivities: every parameter independently uncertain by 100 % of its value, so
    shares are free of units.

    **Arguments:**

    - `jacobian`: `dy/dθ` structured like `jax.jacobian`'s (a displacement field, observables, ...).
    - `covariance`: a `ParameterCovariance`; `None` ranks by log-sensitivity (needs `params`).
    - `params`: θ, needed without `covariance`.
    - `groups`: groups of parameters, each a list of labels; default: the groups of mutually
      correlated parameters (`ParameterCovariance.groups`). Parameters in no group form
      their own group.
    - `rule`: `"shapley"` (default) or `"covariance"`.

    **Returns:** an `Importance`.

    **Example:**

    ```python
    imp = importance(J, ParameterCovariance.from_std(std))
    for label, share in imp.ranking():
        print(f"{label:10s} {share:6.1%}")
    ```
    """
    if rule not in ("shapley", "covariance"):
        raise InputError(f"rule: expected 'shapley' or 'covariance', got {rule!r}")
    if covariance is None:
        if params is None:
            raise InputError("importance: give a covariance, or params to rank by log-sensitivity")
        covariance = ParameterCovariance.from_std(jax.tree.map(lambda t: np.abs(np.asarray(t, float)), params))
        rule_name = "log-sensitivity"
    else:
        rule_name = rule
    labels = covariance.labels
    sigma = np.asarray(covariance.matrix, float)
    if groups is None:
        group_idx = list(covariance.groups())
    else:
        index = {lab: i for i, lab in enumerate(labels)}
        group_idx, used = [], set()
        for g in groups:
            g = [g] if isinstance(g, str) else list(g)
            missing = [lab for lab in g if lab not in index]
            if missing:
                raise InputError(f"groups: unknown parameter label(s) {missing}; known: {', '.join(labels)}")
            idx = tuple(index[lab] for lab in g)
            if used & set(idx):
                raise InputError(f"groups: parameter(s) {sorted(labels[i] for i in used & set(idx))} in two groups")
            used |= set(idx)
            group_idx.append(idx)
        group_idx += [(i,) for i in range(len(labels)) if i not in used]
    w_param = shapley_matrices(sigma, [(i,) for i in range(len(labels))], rule)
    w_group = shapley_matrices(sigma, group_idx, rule)

    out_def, cols = jacobian_columns(jacobian, _structure(covariance))
    variances, per_param, per_group = [], [], []
    xp = _backend(cols)
    for a in cols:
        dtype = a.dtype
        variances.append(xp.einsum("...n,nm,...m->...", a, xp.asarray(sigma, dtype=dtype), a))
        per_param.append(xp.einsum("...n,pnm,...m->...p", a, xp.asarray(w_param, dtype=dtype), a))
        per_group.append(xp.einsum("...n,pnm,...m->...p", a, xp.asarray(w_group, dtype=dtype), a))
    return Importance(
        jax.tree.unflatten(out_def, variances),
        jax.tree.unflatten(out_def, per_param),
        jax.tree.unflatten(out_def, per_group),
        labels,
        tuple(tuple(labels[i] for i in g) for g in group_idx),
        rule_name,
    )
