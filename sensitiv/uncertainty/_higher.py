"""Second- and third-order directional derivatives of a root, and how far first order holds.

Along a direction `v` in parameter space the root moves as
`x*(θ̂ + t v) = x̂ + t a₁ + t²/2 a₂ + t³/6 a₃ + …`. Differentiating `F(x*(θ̂ + t v), θ̂ + t v) = 0`
`k` times at `t = 0` gives `K a_k = −r_k`, with `K = ∂₁F` (the operator of the first-order
solve) and `r_k = d^k/dt^k F(x̂ + t a₁ + … + t^{k−1}/(k−1)! a_{k−1}, θ̂ + t v)` at `t = 0`:
a `k`-th order forward derivative of `F` along a path built from the lower orders (the
`a_k` term of `K` is exactly what the truncated path leaves out). So every order costs one
higher-order JVP of `F` per direction and one linear solve with the same `K` as the
Jacobian — never finite differences. The Jacobian and every order run in one compiled
engine program (`sensitiv.engine._api.jacobian_then`): the higher-order right-hand sides are
solved with the Jacobian's own factorization of `K` (or its Krylov solver and
preconditioner), with the same null space and diagnostics.

An observable `g(x, θ)` follows the same path: `g_k = d^k/dt^k g(x̂ + … + t^k/k! a_k, θ̂ + t v)`.

**Validity of the first-order prediction.** Its error along `v` is
`e(t) = t²/2 a₂ + t³/6 a₃ + O(t⁴)`. The range is the step `|t|` at which `‖e(t)‖` reaches
`rtol · ‖t a₁‖ + atol` (relative to the predicted change, plus an absolute floor). Without
the third order (`third_order="bound"`, no further solve) `‖a₃‖` is bounded from `r₃`:
`‖K a₃‖ = ‖r₃‖` (on the complement of the known null space), hence
`‖a₃‖ ≤ ‖r₃‖ / λ_min` with `λ_min` the engine's smallest curvature; with it
(`third_order="solve"`, one more solve) `a₃` is exact. Both give a bracket from the
triangle inequality, `t²/2 ‖a₂‖ − t³/6 h ≤ ‖e(t)‖ ≤ t²/2 ‖a₂‖ + t³/6 h` with `h` the bound
of `‖a₃‖` (or `2‖a₃‖` when `a₃` is exact, which also covers a fourth-order term up to
`‖t a₄‖/4 ≤ ‖a₃‖`): below `lower` the first-order error is within tolerance, by `upper` it
certainly exceeds it, and the estimate (second order, or the exact cubic model) lies between.
`resolved` is false where the third-order term is more than half the second-order one at
the estimate: there the Taylor series does not settle the range and re-solving is needed.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from ..errors import InputError
from ..engine._api import jacobian_then
from ._linear import _structure, jacobian_columns

__all__ = [
    "DirectionalDerivatives", "ValidityRange", "directional_derivatives", "natural_steps", "resolution",
    "validity_range",
]

THIRD_ORDER = ("bound", "solve", "none")


class DirectionalDerivatives(NamedTuple):
    """Derivatives of the root (and of observables) along directions in parameter space.

    Every array has a trailing direction axis `k`; `x`-fields are shaped like the solution
    (`sol.shape + (k,)`), observables like each observable (`g.shape + (k,)`).

    **Arguments:**

    - `directions`: `(k, n)` the directions `v` in flattened θ.
    - `first`, `second`, `third`: `a₁ = J v`, `a₂`, `a₃` of the solution (`third` is `None`
      unless `third_order="solve"`).
    - `third_bound`: an upper bound of `‖a₃‖₂` over the whole solution, per direction `(k,)`
      (exact norm when `third` is solved).
    - `observables_first`, `observables_second`, `observables_third`: dicts name → arrays
      (`observables_third` is `None` unless solved).
    - `observables_third_bound`: dict name → componentwise upper bounds of `|g₃|`.
    - `info`: the engine's `JacobianInfo` of the program that solved every order (the
      Jacobian's factorization serves the higher orders).
    - `jacobian`: the engine's `JacobianResult` from that program (`∂x*/∂θ`).
    - `resolution`: the smallest change of the solution the root resolves (`resolution`);
      `observables_resolution`: dict name → per component, `‖∇ₓgᵢ‖` times the root's
      estimated error `‖K⁺F‖` (what the unresolved root leaves uncertain in each).

    **Example:**

    ```python
    dd = directional_derivatives(F, x_star, params, jacobian=J)
    dd.second.shape                 # x_star.shape + (n_params,)
    ```
    """

    directions: np.ndarray
    first: Any
    second: Any
    third: Any
    third_bound: jax.Array
    observables_first: dict
    observables_second: dict
    observables_third: dict | None
    observables_third_bound: dict
    info: Any
    jacobian: Any = None
    resolution: float = 0.0
    observables_resolution: dict | None = None


# -- the higher orders inside the Jacobian's compiled program ---------------------------------


@dataclasses.dataclass(frozen=True)
class _HigherOrders:
    """The `then` step of `sensitiv.engine.jacobian_then`: `a₂` (and `a₃`, or `‖P r₃‖` for
    its bound) along the rows of `v`, solved with the Jacobian's own factorization.
    Hashable by value: one compiled program per strategy and third-order mode."""

    third_order: str

    def __call__(self, solves, args):
        v, a1 = args
        v = v.astype(solves.x.dtype)
        a1 = (solves.jacobian @ v.T).T if a1 is None else a1  # (k, d)

        def coefficient(order, coeffs):
            return jax.vmap(lambda c, vv: _taylor_coefficient(solves.flat, order, solves.x, solves.theta, c, vv))(
                coeffs, v)

        a2 = -solves.solve(coefficient(2, (a1,)).T).T
        out = {"first": a1, "second": a2}
        if self.third_order != "none":
            r3 = coefficient(3, (a1, a2))
            if self.third_order == "solve":
                out["third"] = -solves.solve(r3.T).T
            else:  # ‖K a₃‖ = ‖r₃‖ on the complement of the zero modes
                out["r3_norm"] = jnp.linalg.norm(solves.project(r3.T), axis=0)
        return out


def _taylor_coefficient(f, order, x, theta, coeffs, v):
    """`d^order/dt^order f(x + Σ_j t^j/j! coeffs[j-1], θ + t v)` at `t = 0` (nested forward mode)."""

    def path(t):
        xt = x
        fact = 1.0
        for j, c in enumerate(coeffs, start=1):
            fact *= j
            xt = xt + (t**j / fact) * c
        return f(xt, theta + t * v)

    g = path
    for _ in range(order):
        g = (lambda h: (lambda t: jax.jvp(h, (t,), (jnp.ones_like(t),))[1]))(g)
    return g(jnp.zeros((), theta.dtype))


def _flat(fun, sol, params, args):
    x, unravel_x = ravel_pytree(sol)
    theta, unravel_theta = ravel_pytree(params)
    theta = theta.astype(x.dtype)

    def f(xx, tt):
        return ravel_pytree(fun(unravel_x(xx), unravel_theta(tt), *args))[0]

    return f, x, theta


@jax.jit(static_argnums=(0, 1))
def _observable_orders(fun, third, sol, params, args, coeffs, v):
    """One program per observable: its first, second and (`third`) third Taylor coefficients
    along every direction (rows of `v`; the third along the path of `coeffs`, cubic when
    `a₃` is in it) and `‖∇ₓ gᵢ‖₂` of every component (one VJP each, in batches)."""
    f, x, theta = _flat(fun, sol, params, args)

    def along(order, cs):
        return jax.vmap(lambda c, vv: _taylor_coefficient(f, order, x, theta, c, vv))(cs, v)

    out = {"g1": along(1, coeffs[:1]), "g2": along(2, coeffs[:2])}
    if third:
        out["g3"] = along(3, coeffs)
    g0, vjp = jax.vjp(lambda xx: f(xx, theta), x)
    rows = jnp.eye(g0.shape[0], dtype=g0.dtype)
    out["grad_norm"] = jax.lax.map(lambda e: jnp.linalg.norm(vjp(e)[0]), rows, batch_size=64)
    return out


def directional_derivatives(
    optimality_fun,
    sol: Any,
    params: Any,
    *args: Any,
    jacobian: Any = None,
    directions: Any = None,
    observables: dict | None = None,
    third_order: str = "bound",
    lambda_min: float | None = None,
    **options: Any,
) -> DirectionalDerivatives:
    """Second- (and third-) order derivatives of `x*(θ)` along directions, by implicit differentiation.

    Each order is one higher-order JVP of `F` per direction and one linear solve with the
    operator `∂₁F` of the first order. One engine program does everything: the Jacobian,
    then the higher-order right-hand sides solved with its factorization (dense) or its
    solver (Krylov), with the Jacobian's diagnostics; see the module notes.

    **Arguments:**

    - `optimality_fun`, `sol`, `params`, `*args`: as in `sensitiv.jacobian` (`F(x, θ, *args)`
      zero at `sol`).
    - `jacobian`: `∂x*/∂θ` at `(sol, params)` as `sensitiv.jacobian` returns it (`.jacobian`),
      for the first order `a₁ = J v`; default: the one the program computes (`.jacobian`
      of the result).
    - `directions`: `(k, n)` directions in θ flattened in `jax.tree` order; default: every
      parameter axis (the identity).
    - `observables`: dict name → `g(x, θ, *args)`; their derivatives along the same paths.
    - `third_order`: `"bound"` (default: an upper bound of `‖a₃‖` from `‖r₃‖ / λ_min`, no
      further solve), `"solve"` (exact `a₃`: one more solve with the same factorization), `"none"`.
    - `lambda_min`: the smallest curvature of `∂₁F` for the bound; default the engine's
      `info.lambda_min`.
    - `**options`: options of `sensitiv.jacobian` (`null_space`, `method`, `sparsity`, ...),
      the same as for the first-order Jacobian.

    **Returns:** a `DirectionalDerivatives`.

    **Example:**

    ```python
    F = jax.grad(energy)
    dd = directional_derivatives(F, x_star, params, null_space=modes)
    dd.second.shape                 # x_star.shape + (n_params,)
    dd.jacobian.jacobian            # ∂x*/∂θ from the same program
    ```
    """
    if third_order not in THIRD_ORDER:
        raise InputError(f"third_order: expected one of {', '.join(THIRD_ORDER)}, got {third_order!r}")
    observables = dict(observables or {})
    # host glue in numpy (one transfer per array); every derivative is a compiled program
    sol_leaves = [np.asarray(leaf) for leaf in jax.tree.leaves(sol)]
    dtype = np.result_type(*sol_leaves)
    d = sum(leaf.size for leaf in sol_leaves)
    n = sum(int(np.size(leaf)) for leaf in jax.tree.leaves(params))
    j_flat = None
    if jacobian is not None:
        _, cols = jacobian_columns(jacobian, _structure(params))
        j_flat = np.concatenate([np.reshape(np.asarray(c), (-1, n)) for c in cols], axis=0).astype(dtype)
        if j_flat.shape[0] != d:
            raise InputError(f"jacobian: has {j_flat.shape[0]} rows for a solution of {d} entries")
    v = np.eye(n, dtype=dtype) if directions is None else np.atleast_2d(np.asarray(directions, dtype))
    if v.ndim != 2 or v.shape[1] != n:
        raise InputError(f"directions: expected (k, {n}) rows in flattened θ, got shape {tuple(v.shape)}")
    k = v.shape[0]

    args = tuple(args)
    # the Jacobian, then a₂ (a₃) with its factorization, in one compiled program
    a1_given = None if j_flat is None else jnp.asarray(v @ j_flat.T)
    jres, out = jacobian_then(_HigherOrders(third_order), (jnp.asarray(v), a1_given), optimality_fun, sol,
                              params, *args, **options)
    a1, a2 = np.asarray(out["first"]), np.asarray(out["second"])
    info = jres.info
    a3 = None
    if third_order == "solve":
        a3 = np.asarray(out["third"])
        third_bound = np.linalg.norm(a3, axis=1)
    elif third_order == "bound":
        lam = abs(float(np.asarray(info.lambda_min if lambda_min is None else lambda_min)))
        third_bound = np.asarray(out["r3_norm"]) / lam
    else:
        third_bound = np.full((k,), np.nan, dtype)

    def rows_to(rows, like):
        """`(k, size)` rows → a pytree shaped like `like` with a trailing direction axis."""
        if rows is None:
            return None
        leaves, treedef = jax.tree.flatten(like)
        out, offset = [], 0
        for leaf in leaves:
            shape = tuple(np.shape(leaf))
            size = int(np.prod(shape))
            out.append(np.moveaxis(rows[:, offset:offset + size].reshape((k,) + shape), 0, -1))
            offset += size
        return jax.tree.unflatten(treedef, out)

    x_resolution = resolution(sol, info)
    newton = float(np.nan_to_num(np.asarray(info.solution_error_estimate)))
    obs_first, obs_second, obs_third, obs_bound = {}, {}, ({} if a3 is not None else None), {}
    obs_resolution = {}
    coeffs = tuple(c for c in (a1, a2, a3) if c is not None)
    for name, g in observables.items():
        like = jax.eval_shape(g, sol, params, *args)
        orders = jax.tree.map(np.asarray, _observable_orders(g, third_order != "none", sol, params, args, coeffs, v))
        g1, g2, grad_norm = orders["g1"], orders["g2"], orders["grad_norm"]
        obs_first[name], obs_second[name] = rows_to(g1, like), rows_to(g2, like)
        # |∂₁gᵢ (x* − x̂)| ≤ ‖∇ₓgᵢ‖ ‖K⁺F‖: how far the unresolved root moves each component
        per_direction = rows_to(np.broadcast_to(grad_norm * newton, (k, grad_norm.size)), like)
        obs_resolution[name] = jax.tree.map(lambda a: a[..., 0], per_direction)
        if a3 is not None:
            obs_third[name] = rows_to(orders["g3"], like)
            obs_bound[name] = rows_to(np.abs(orders["g3"]), like)
        elif third_order == "bound":
            # g₃ = (what the quadratic path gives) + ∂₁g a₃, and |∂₁gᵢ a₃| ≤ ‖∇ₓgᵢ‖ ‖a₃‖
            obs_bound[name] = rows_to(np.abs(orders["g3"]) + grad_norm[None, :] * third_bound[:, None], like)
        else:
            obs_bound[name] = rows_to(np.full_like(g2, np.nan), like)

    return DirectionalDerivatives(
        v, rows_to(a1, sol), rows_to(a2, sol), rows_to(a3, sol), third_bound,
        obs_first, obs_second, obs_third, obs_bound, info, jres, x_resolution, obs_resolution,
    )


def resolution(sol: Any, info: Any) -> float:
    """The smallest change of the solution that the root resolves: twice the estimated
    distance to the exact root `‖K⁺F(x̂)‖` (the engine's Newton step, a first-order
    estimate) plus `1e-10` of the solution's extent (the largest spread of its entries along
    the leading axis: for positions, the size of the structure). A derivative that moves
    the solution by less than this over a step that changes the parameters by their own
    size (`natural_steps`) is indistinguishable from zero: a root off by `δ` makes the
    derivatives of a parameter-independent solution of order `δ / |θ|` per order.

    **Arguments:**

    - `sol`: the root (any pytree of arrays).
    - `info`: the engine's `JacobianInfo` at it (for `solution_error_estimate`).

    **Returns:** a float, in the solution's units.

    **Example:**

    ```python
    floor = resolution(x_star, sensitiv.jacobian(F, x_star, params).info)
    ```
    """
    spread = size = 0.0
    for leaf in jax.tree.leaves(sol):
        leaf = np.asarray(leaf)
        if leaf.size:
            spread = max(spread, float(np.max(np.ptp(leaf, axis=0) if leaf.ndim >= 2 else np.ptp(leaf))))
            size = max(size, float(np.max(np.abs(leaf))))
    extent = spread or size  # a constant solution: its magnitude
    newton = float(np.asarray(info.solution_error_estimate))
    return 2.0 * (newton if np.isfinite(newton) else 0.0) + 1e-10 * extent


def natural_steps(directions: Any, theta: Any, sigma: Any) -> np.ndarray:
    """Per direction `v`, the step `t` at which `θ + t v` first changes a parameter by its own
    size: `minᵢ mᵢ / |vᵢ|` with `mᵢ = |θᵢ|`, or `σᵢ` for a parameter whose value is 0 (a
    reference strain); `inf` where no entry sets a size. The scale of `validity_range`'s test.

    **Arguments:**

    - `directions`: `(k, n)` directions in flattened θ.
    - `theta`, `sigma`: `(n,)` the parameters and their standard deviations.

    **Returns:** `(k,)` steps in the directions' units.

    **Example:**

    ```python
    steps = natural_steps(np.eye(2), np.array([1.0, 0.0]), np.array([0.1, 0.01]))  # [1.0, 0.01]
    ```
    """
    v = np.abs(np.atleast_2d(np.asarray(directions, float)))
    theta, sigma = np.abs(np.ravel(np.asarray(theta, float))), np.ravel(np.asarray(sigma, float))
    size = np.where(theta > 0, theta, sigma)
    with np.errstate(divide="ignore", invalid="ignore"):
        per_entry = np.where((v > 0) & (size > 0), size[None, :] / v, np.inf)
    return np.min(per_entry, axis=1, initial=np.inf)


# -- validity ranges ----------------------------------------------------------------------------


class ValidityRange(NamedTuple):
    """How far along each direction the first-order prediction stays within tolerance.

    Steps are in units of the direction (a parameter's own units along a parameter axis;
    standard deviations along a principal direction scaled to one σ).

    **Arguments:**

    - `estimate`: the step `|t|` at which the first-order error reaches
      `rtol · ‖t a₁‖ + atol` (second-order model, or the cubic model when `a₃` is exact).
    - `lower`: below it the error is within tolerance (up to fourth-order terms).
    - `upper`: by it the error certainly exceeds the tolerance (`inf`: not bounded at this order).
    - `resolved`: the third-order term at `estimate` is at most half the second-order one.
    - `rtol`, `atol`: the tolerance.

    **Example:**

    ```python
    vr = validity_range(dd.first, dd.second, third_bound=dd.third_bound, rtol=0.01)
    vr.estimate                      # (k,): one range per direction
    ```
    """

    estimate: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    resolved: np.ndarray
    rtol: float
    atol: float


def _smallest_positive_root(coeffs) -> float:
    """Smallest positive real root of a polynomial (highest power first), else inf."""
    c = np.trim_zeros(np.asarray(coeffs, float), "f")
    if c.size <= 1:
        return np.inf
    roots = np.roots(c)
    real = roots[(np.abs(roots.imag) <= 1e-9 * np.maximum(np.abs(roots.real), 1e-300)) & (roots.real > 0)].real
    return float(real.min()) if real.size else np.inf


def _ranges(l, q, h, dot, h_exact, rtol, atol):
    """Scalars: ‖a₁‖, ‖a₂‖, bound of ‖a₃‖, a₂·a₃ (exact model) -> (estimate, lower, upper, resolved)."""
    rl = rtol * l
    if q == 0 and h == 0:
        return np.inf, np.inf, np.inf, True
    if rl == 0 and atol == 0:
        return 0.0, 0.0, 0.0, True  # no predicted change, but a nonlinear one: any step errs
    # The bracket neglects the fourth order. With an exact a₃ the bracket takes 2‖a₃‖: it
    # then also covers a fourth-order term up to the size of the third at the range
    # (‖t a₄‖/4 ≤ ‖a₃‖); the bound ‖r₃‖/λ_min is already conservative.
    hb = 2.0 * h if h_exact else h
    lower = _smallest_positive_root([hb / 6, q / 2, -rl, -atol])
    upper = _smallest_positive_root([-hb / 6, q / 2, -rl, -atol])
    if h_exact:
        # ‖t²/2 a₂ ± t³/6 a₃‖² = (rl t + atol)², for both signs of t
        est = min(
            _smallest_positive_root([h * h / 36, s * dot / 6, q * q / 4, 0.0, -rl * rl, -2 * rl * atol, -atol * atol])
            for s in (1.0, -1.0)
        )
    else:
        est = _smallest_positive_root([q / 2, -rl, -atol])
    est = min(max(est, lower), upper)
    resolved = bool(not np.isfinite(est) or h * est <= 1.5 * q)
    return est, lower, upper, resolved


def _unresolved_to_zero(l, q, h, dot, scale, noise, k, reduce, h_exact):
    """Zero the orders whose term over one natural step is within `noise` (see `validity_range`).
    A third-order *bound* (`‖r₃‖/λ_min`, loose by up to the condition number) brackets a
    resolved second order; where neither the first nor the second is resolved it has
    nothing to bracket and is dropped too."""
    s = np.broadcast_to(np.asarray(scale, float), (k,))
    tested = np.isfinite(s) & (s > 0)
    s = np.where(tested, s, 0.0)
    floor = np.asarray(noise, float)
    if reduce == "component":
        # per component, plus 1e-10 of its largest first-order change over a step
        floor = np.broadcast_to(floor, np.shape(l)[:-1])[..., None] \
            + 1e-10 * np.max(l * s, axis=-1, keepdims=True, initial=0.0)
    l = np.where(tested & (l * s <= floor), 0.0, l)
    q = np.where(tested & (q * s**2 / 2 <= floor), 0.0, q)
    h_zero = tested & (np.asarray(h) * s**3 / 6 <= floor)
    if not h_exact:
        h_zero = h_zero | ((l == 0) & (q == 0))
    return l, q, np.where(h_zero, 0.0, h), np.where(h_zero | (q == 0), 0.0, dot)


def validity_range(first: Any, second: Any, third: Any = None, *, third_bound: Any = None,
                   rtol: float = 0.01, atol: float = 0.0, reduce: str = "norm", scale: Any = None,
                   noise: Any = None) -> ValidityRange:
    """The step along each direction within which the first-order prediction errs by less than a tolerance.

    See the module notes for the model and the bracket. With `reduce="norm"` the error of
    the whole array (e.g. the displacement field) is measured in the 2-norm; with
    `"component"` every component gets its own range (observables such as `C11`), and
    components that are zero at every order (by symmetry) get `inf`.

    **Arguments:**

    - `first`, `second`: arrays with a trailing direction axis `k` (`DirectionalDerivatives`
      fields, or one observable's).
    - `third`: the exact third order (same shape), or `None`.
    - `third_bound`: without `third`, an upper bound of `‖a₃‖` (`(k,)` for `"norm"`, shaped
      like `first` for `"component"`); `None` ignores the third order.
    - `rtol`: tolerance relative to the predicted change `‖t a₁‖` (default 1 %).
    - `atol`: absolute tolerance in the array's units (default 0).
    - `reduce`: `"norm"` or `"component"`.
    - `scale`, `noise`: what the derivatives resolve. `scale` `(k,)`: a natural step along
      each direction, one over which the parameters change by their own size
      (`natural_steps`; entries ≤ 0 or non-finite: no test); `noise`:
      the smallest change of the output that is not round-off or the root's own error (a
      scalar for `"norm"`, else broadcastable to `first.shape[:-1]`; see `resolution`).
      An order whose term over one step (`‖a₁‖ s`, `‖a₂‖ s²/2`, `h s³/6`) is at most
      `noise` counts as zero: a direction the output does not depend on gets `inf`
      (resolved), not the ratio of two round-off numbers. With `"component"` each
      component's `noise` is raised by `1e-10` of its largest first-order change over a step.

    **Returns:** a `ValidityRange` (shape `(k,)`, or `first.shape` for `"component"`).

    **Example:**

    ```python
    dd = directional_derivatives(F, x_star, params, jacobian=J)
    vr = validity_range(dd.first, dd.second, third_bound=dd.third_bound)
    ```
    """
    if reduce not in ("norm", "component"):
        raise InputError(f"reduce: expected 'norm' or 'component', got {reduce!r}")
    if not (rtol >= 0 and atol >= 0 and rtol + atol > 0):
        raise InputError(f"rtol, atol: need rtol ≥ 0, atol ≥ 0, not both zero; got {rtol}, {atol}")
    a1 = np.asarray(first, float)
    a2 = np.asarray(second, float)
    a3 = None if third is None else np.asarray(third, float)
    k = a1.shape[-1]
    if reduce == "norm":
        a1r, a2r = a1.reshape(-1, k), a2.reshape(-1, k)
        l = np.linalg.norm(a1r, axis=0)
        q = np.linalg.norm(a2r, axis=0)
        if a3 is not None:
            a3r = a3.reshape(-1, k)
            h = np.linalg.norm(a3r, axis=0)
            dot = np.sum(a2r * a3r, axis=0)
        else:
            h = np.zeros(k) if third_bound is None else np.broadcast_to(np.asarray(third_bound, float), (k,))
            dot = np.zeros(k)
        shape = (k,)
        entries = zip(l, q, h, dot)
    else:
        l, q = np.abs(a1), np.abs(a2)
        if a3 is not None:
            h, dot = np.abs(a3), a2 * a3
        else:
            h = np.zeros_like(a1) if third_bound is None else np.broadcast_to(np.abs(np.asarray(third_bound, float)), a1.shape)
            dot = np.zeros_like(a1)
        # components zero at every order (by symmetry) are exact: round-off is not a range
        # (the third order is not asked: its bound is conservative, not small, where the
        # exact term vanishes by symmetry)
        floor = 1e-10 * np.max(np.abs(np.stack([l, q])).reshape(2, -1, k), axis=1)
        zero = (l <= floor[0]) & (q <= floor[1])
        q = np.where(zero, 0.0, q)
        h = np.where(zero, 0.0, h)
        shape = a1.shape
        entries = zip(l.ravel(), q.ravel(), np.asarray(h).ravel(), np.asarray(dot).ravel())
    h_exact = a3 is not None
    if noise is not None and scale is not None:
        l, q, h, dot = _unresolved_to_zero(l, q, h, dot, scale, noise, k, reduce, h_exact)
        entries = zip(*(np.ravel(np.broadcast_to(a, shape)) for a in (l, q, h, dot)))
    entries = list(entries)
    unknown = np.array([not np.isfinite(e[2]) for e in entries], bool).reshape(shape)
    entries = [(e[0], e[1], 0.0 if not np.isfinite(e[2]) else e[2], e[3]) for e in entries]
    out = np.array([_ranges(*e, h_exact, rtol, atol) for e in entries], dtype=float).reshape(*shape, 4) \
        if np.prod(shape) else np.zeros(shape + (4,))
    resolved = out[..., 3].astype(bool) & ~unknown
    return ValidityRange(out[..., 0], out[..., 1], out[..., 2], resolved, float(rtol), float(atol))
