"""Projections onto convex sets, differentiable in the point and in the set.

Every projection has the signature `projection(x, hyperparams)` (the second argument
describes the set and may have a default; `None` stands for that default), so any of them
can be handed to `sensitiv.optimality.projected_gradient_fixed_point`,
`sensitiv.solvers.ProjectedGradient` or `sensitiv.prox.make_prox_from_projection`. Each one
is differentiable with respect to both `x` and `hyperparams` by `jax.jvp`, `jax.grad`,
`jax.jacfwd`, ...:

- closed-form, piecewise-smooth projections are differentiated by autodiff of the formula,
  with the few divisions by a norm guarded so that no `NaN` leaks out of an unused branch;
- where autodiff of the algorithm would be wrong or wasteful (the sorting-based simplex
  projection, the eigendecomposition of the PSD projection) a closed-form custom JVP is
  given;
- projections computed by an iterative solver (polyhedron, transport and Birkhoff
  polytopes) are differentiated implicitly through `sensitiv.custom_root`.

Every Euclidean projection leaves the points of its set unchanged. At points where a
projection is not differentiable (a kink of a piecewise formula) the derivative returned
is one of the one-sided derivatives; these points have measure zero.

The closed-form projections live in `sensitiv._projections` (which the solvers import);
this module re-exports them next to the solver-backed ones.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ._implicit import custom_root
from ._linear_solve import LinearSolver
from ._projections import (
    _simplex,
    kl_projection_simplex,
    projection_affine_set,
    projection_box,
    projection_box_section,
    projection_halfspace,
    projection_hypercube,
    projection_hyperplane,
    projection_l1_ball,
    projection_l1_sphere,
    projection_l2_ball,
    projection_l2_sphere,
    projection_linf_ball,
    projection_non_negative,
    projection_psd_cone,
    projection_second_order_cone,
    projection_simplex,
    projection_sparse_simplex,
)
from .errors import ConvergenceError, InputError
from .solvers import QP

__all__ = [
    "projection_non_negative",
    "projection_box",
    "projection_hypercube",
    "projection_simplex",
    "projection_sparse_simplex",
    "projection_l1_sphere",
    "projection_l1_ball",
    "projection_l2_ball",
    "projection_linf_ball",
    "projection_l2_sphere",
    "projection_hyperplane",
    "projection_halfspace",
    "projection_affine_set",
    "projection_box_section",
    "projection_polyhedron",
    "projection_second_order_cone",
    "projection_psd_cone",
    "projection_transport",
    "projection_birkhoff",
    "kl_projection_simplex",
    "kl_projection_transport",
    "kl_projection_birkhoff",
]


# --- polyhedron (a QP solve) ------------------------------------------------------------------


def projection_polyhedron(
    x: jax.Array,
    hyperparams: tuple[Any, Any, Any, Any],
    *,
    tol: float | None = None,
    maxiter: int = 5000,
    check: bool | None = None,
) -> jax.Array:
    r"""Projection onto the polyhedron `{y : A y = b, G y ≤ h}` by a QP solve.

    Solves `min_y ½‖y − x‖² s.t. A y = b, G y ≤ h` with `sensitiv.solvers.QP`; derivatives
    with respect to `x`, `A`, `b`, `G`, `h` are implicit, through the QP's KKT conditions
    (exact when strict complementarity holds at the solution).

    **Arguments:**

    - `x`: a 1-D array of size `n`.
    - `hyperparams`: `(A, b, G, h)`; `A`, `b` may be `None` (no equality), as may `G`, `h`.
    - `tol`, `maxiter`: passed to the QP solver; the default tolerance is `1e-12` in
      float64 and `10 · eps^¾` (6e-5) in float32, where `1e-12` is below round-off.
    - `check`: raise `ConvergenceError` when the QP did not converge (an empty
      polyhedron, or too few iterations). The default `None` checks whenever the inputs
      are concrete (outside `jit`, `vmap` and differentiation), like jaxopt's
      `check_feasible=True`; under transformations there is no Python-side check: use
      `sensitiv.solvers.QP` directly to get its state.

    **Returns:** a 1-D array like `x`.

    **Example:**

    ```python
    G = jnp.array([[1.0, 1.0]]); h = jnp.array([1.0])
    projection_polyhedron(jnp.array([1.0, 1.0]), (None, None, G, h))  # [0.5, 0.5]
    ```
    """
    A, b, G, h = hyperparams
    n = x.shape[0]
    if tol is None:
        eps = float(jnp.finfo(x.dtype).eps)
        tol = 1e-12 if eps < 1e-10 else 10 * eps**0.75
    solver = QP(tol=tol, maxiter=maxiter)
    eye = jnp.eye(n, dtype=x.dtype)
    params_eq = None if A is None else (A, b)
    params_ineq = None if G is None else (G, h)
    sol, state = solver.run(None, (eye, -x), params_eq, params_ineq)
    if check is None:
        check = not any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves((x, hyperparams)))
    if check and not bool(state.converged):
        raise ConvergenceError(
            f"projection_polyhedron: the QP did not converge (KKT residual {float(state.error):.3e} after "
            f"{int(state.iterations)} iterations): the polyhedron may be empty; otherwise raise maxiter="
        )
    return sol.primal


# --- transport and Birkhoff polytopes, Euclidean projections --------------------------------


def _column_plan(alpha, x, b):
    """Column `j` of the plan for row prices `alpha`: `proj_{Δ(b_j)}(x[:, j] + alpha)`."""
    return jax.vmap(_simplex, in_axes=(1, 0), out_axes=1)(x + alpha[:, None], b)


def _transport_row_residual(alpha, x, a, b):
    # The gradient of the (negated, concave) semi-dual of min ½‖P − X‖² over U(a, b)
    # (Blondel, Seguy, Rolet 2018, eq. 10): the columns of P meet their marginals b
    # exactly by construction, the rows meet a where this vanishes. Its Jacobian in
    # alpha, Σⱼ (diag(sⱼ) − sⱼsⱼᵀ/|Sⱼ|) with sⱼ the support of column j, is symmetric
    # positive semi-definite and annihilates the constant vector (prices are defined up
    # to a common shift).
    return jnp.sum(_column_plan(alpha, x, b), axis=1) - a


def _semi_dual(alpha, x, a, b):
    # −(semi-dual objective), convex in alpha: Σⱼ max_{p ∈ Δ(bⱼ)} ⟨alpha, p⟩ − ½‖p − Xⱼ‖² − ⟨alpha, a⟩.
    plan = _column_plan(alpha, x, b)
    return jnp.sum(alpha[:, None] * plan - 0.5 * (plan - x) ** 2) - jnp.vdot(alpha, a)


def _transport_newton(x, a, b, tol, maxiter, alpha0):
    """Prices `alpha` with `P(alpha) 1 = a`, by a regularized semismooth Newton method.

    The residual is piecewise linear in alpha: once the supports of the columns are
    right, one Newton step is exact. A Levenberg–Marquardt shift `μ = ‖r‖` keeps the
    step defined where the Jacobian is singular beyond the constant vector (plans whose
    support graph is disconnected, e.g. permutation matrices), and a backtracking search
    on the convex semi-dual makes the method converge from any start. It stops when the
    row residual is within `tol · Σa`, or when no step improves the semi-dual or the
    residual any more (round-off).
    """
    m = x.shape[0]
    dtype = x.dtype
    scale = jnp.sum(a)

    def residual_and_jacobian(alpha):
        plan = _column_plan(alpha, x, b)
        support = (plan > 0).astype(dtype)
        counts = jnp.maximum(jnp.sum(support, axis=0), 1.0)
        jac = jnp.diag(jnp.sum(support, axis=1)) - (support / counts) @ support.T
        return jnp.sum(plan, axis=1) - a, jac

    def cond(state):
        _, r, _, k, stalled = state
        return (k < maxiter) & (jnp.sum(jnp.abs(r)) > tol * scale) & ~stalled

    def body(state):
        alpha, r, jac, k, _ = state
        rnorm = jnp.linalg.norm(r)
        step = jnp.linalg.solve(jac + rnorm * jnp.eye(m, dtype=dtype), r)
        value = _semi_dual(alpha, x, a, b)
        slope = jnp.vdot(r, step)

        def search_cond(s):
            _, accepted, halvings = s
            return ~accepted & (halvings < 40)

        def search_body(s):
            t, _, halvings = s
            t = jnp.where(halvings == 0, t, t / 2)
            trial = alpha - t * step
            decrease = _semi_dual(trial, x, a, b) <= value - 1e-4 * t * slope
            smaller = jnp.linalg.norm(_transport_row_residual(trial, x, a, b)) <= 0.5 * rnorm
            return t, decrease | smaller, halvings + 1

        t, accepted, _ = jax.lax.while_loop(search_cond, search_body, (jnp.ones((), dtype), False, 0))
        alpha_new = jnp.where(accepted, alpha - t * step, alpha)
        r_new, jac_new = residual_and_jacobian(alpha_new)
        better = jnp.linalg.norm(r_new) <= rnorm
        # Round-off: a failed search, or accepted steps that no longer shrink the
        # residual, end the run.
        stalled = ~accepted | (~better & (k > 0))
        return (
            jnp.where(better, alpha_new, alpha),
            jnp.where(better, r_new, r),
            jnp.where(better, jac_new, jac),
            k + 1,
            stalled,
        )

    r0, jac0 = residual_and_jacobian(alpha0)
    alpha, r, _, k, _ = jax.lax.while_loop(cond, body, (alpha0, r0, jac0, 0, False))
    return alpha, r, k


def _transport_prices(x, a, b, tol, maxiter):
    """Prices for `x`, through a continuation in the scale of `x` when its entries spread
    over much more than the marginals.

    The plan of `λX` is dense for small `λ` and tends to a vertex (an optimal transport
    plan of the linear program) as `λ` grows; prices grow like `λ`. Newton's method from
    zero prices needs one step per support change, so entries of size 1e9 would take
    steps of size 1 towards prices of size 1e9. Solving for `λₖX`, `λₖ = 10^(k−K)`, each
    from the previous prices times ten, keeps every stage a few Newton steps long;
    `K = 0` (a single stage) when the spread of `x` is within ten times the marginals'.
    """
    spread = (jnp.max(x) - jnp.min(x)) / jnp.maximum(jnp.max(a), jnp.max(b))
    stages = jnp.maximum(jnp.ceil(jnp.log10(jnp.maximum(spread, 1.0))) - 1, 0).astype(jnp.int32)

    def stage(carry):
        alpha, k = carry
        factor = jnp.asarray(10.0, x.dtype) ** (k - stages).astype(x.dtype)
        alpha, _, _ = _transport_newton(factor * x, a, b, tol, maxiter, alpha)
        return alpha * 10, k + 1

    alpha, _ = jax.lax.while_loop(lambda c: c[1] < stages, stage, (jnp.zeros(x.shape[0], x.dtype), 0))
    alpha, _, _ = _transport_newton(x, a, b, tol, maxiter, alpha)
    return alpha


def _check_marginals(x, a, b, where):
    if x.ndim != 2 or a.shape != (x.shape[0],) or b.shape != (x.shape[1],):
        raise InputError(
            f"{where}: x must be a matrix (m, n) and the marginals (a, b) of shapes (m,), (n,); "
            f"got x {x.shape}, a {a.shape}, b {b.shape}"
        )


def projection_transport(
    x: jax.Array,
    marginals: tuple[jax.Array, jax.Array],
    *,
    tol: float | None = None,
    maxiter: int = 100,
) -> jax.Array:
    r"""Euclidean projection onto the transport polytope `U(a, b) = {P ≥ 0 : P1 = a, Pᵀ1 = b}`.

    `P = argmin_{P ∈ U(a, b)} ½‖P − X‖²`, jaxopt's `projection_transport` (the optimal
    transport plan with quadratic regularization, Blondel, Seguy, Rolet 2018). Computed on
    the semi-dual: each column is a simplex projection `Pⱼ = proj_{Δ(bⱼ)}(Xⱼ + α)`, with
    row prices `α` found by a semismooth Newton method (exact once the supports are
    right, usually a handful of steps). Plans are sparse. Derivatives with respect to `X`,
    `a` and `b` are implicit, through the prices' optimality condition `P(α)1 = a` (the
    minimum-norm solution where the plan's support graph is disconnected, which gives
    the derivative of `P`: prices are not unique there, the plan is). A matrix already in
    `U(a, b)` is returned unchanged. For the entropic (KL) projection see
    `kl_projection_transport`.

    **Arguments:**

    - `x`: the matrix `X`, shape `(m, n)`.
    - `marginals`: `(a, b)`, positive arrays of shapes `(m,)`, `(n,)` with equal sums.
      Derivatives in `a` and `b` are meaningful along directions keeping `Σa = Σb`.
    - `tol`: stop when `‖P1 − a‖₁ ≤ tol · Σa` (default `10 · eps` of the dtype); the
      columns meet `b` to round-off whatever `tol`.
    - `maxiter`: maximum number of Newton steps.

    **Returns:** the plan `P`, shape `(m, n)`.

    **Example:**

    ```python
    a = jnp.full(3, 1 / 3); b = jnp.full(2, 1 / 2)
    P = projection_transport(scores, (a, b))   # rows sum to a, columns to b
    ```
    """
    x = jnp.asarray(x)
    a, b = (jnp.asarray(v, x.dtype) for v in marginals)
    _check_marginals(x, a, b, "projection_transport")
    if tol is None:
        tol = 10 * float(jnp.finfo(x.dtype).eps)
    return _projection_transport(x, a, b, tol=float(tol), maxiter=int(maxiter))


@functools.partial(jax.jit, static_argnames=("tol", "maxiter"))
def _projection_transport(x, a, b, *, tol, maxiter):
    # One null direction is known (a common shift of the prices); any other (a plan whose
    # support graph splits) leaves LU ill-conditioned and "auto" takes the minimum-norm
    # answer, whose plan derivative is the right one.
    m = x.shape[0]
    shift = np.full((1, m), 1 / np.sqrt(m), dtype=x.dtype)  # a constant, not a traced array
    solve = LinearSolver("auto", null_space=shift, symmetric=True)

    @custom_root(_transport_row_residual, solve=solve)
    def prices(x, a, b):
        return _transport_prices(x, a, b, tol, maxiter)

    return _column_plan(prices(x, a, b), x, b)


def projection_birkhoff(
    x: jax.Array, hyperparams: Any = None, *, tol: float | None = None, maxiter: int = 100
) -> jax.Array:
    r"""Euclidean projection onto the Birkhoff polytope of doubly stochastic matrices.

    `projection_transport(x, (1, 1))` for a square `x`: the closest matrix (in Frobenius
    norm) with non-negative entries whose rows and columns sum to one. A doubly
    stochastic `x` is returned unchanged. jaxopt's `projection_birkhoff`; for the
    entropic (KL) projection see `kl_projection_birkhoff`.

    **Arguments:**

    - `x`: a square matrix `(n, n)`.
    - `hyperparams`: ignored.
    - `tol`, `maxiter`: see `projection_transport`.

    **Returns:** a doubly stochastic matrix `(n, n)`.

    **Example:**

    ```python
    projection_birkhoff(jnp.array([[0.6, 0.4], [0.4, 0.6]]))  # unchanged
    projection_birkhoff(jnp.array([[2.0, 0.0], [0.0, 1.0]]))  # [[1., 0.], [0., 1.]]
    ```
    """
    del hyperparams
    x = jnp.asarray(x)
    if x.ndim != 2 or x.shape[0] != x.shape[1]:
        raise InputError(f"projection_birkhoff: x must be a square matrix, got shape {x.shape}")
    ones = jnp.ones(x.shape[0], x.dtype)
    return projection_transport(x, (ones, ones), tol=tol, maxiter=maxiter)


# --- transport and Birkhoff polytopes, entropic (KL) projections ---------------------------


def _transport_plan(potentials, scores, regularization):
    f, g_head = potentials
    g = jnp.concatenate([g_head, jnp.zeros((1,), g_head.dtype)])
    return jnp.exp((scores + f[:, None] + g[None, :]) / regularization)


def _transport_optimality(potentials, scores, marginals, regularization):
    # Gradient of the concave dual  <f, a> + <g, b> − ε Σ exp((X + f ⊕ g)/ε), with the
    # gauge g_last = 0 removing its one-dimensional null space (f + c, g − c). The
    # negative Jacobian is then symmetric positive definite: conjugate gradients apply.
    a, b = marginals
    plan = _transport_plan(potentials, scores, regularization)
    return a - jnp.sum(plan, axis=1), b[:-1] - jnp.sum(plan, axis=0)[:-1]


def _sinkhorn(scores, marginals, regularization, tol, maxiter):
    a, b = marginals
    log_a, log_b = jnp.log(a), jnp.log(b)
    eps = regularization
    lse = jax.scipy.special.logsumexp

    def update(f, g):
        f = eps * (log_a - lse((scores + g[None, :]) / eps, axis=1))
        g = eps * (log_b - lse((scores + f[:, None]) / eps, axis=0))
        return f, g

    def error(f, g):
        plan = jnp.exp((scores + f[:, None] + g[None, :]) / eps)
        return jnp.sum(jnp.abs(jnp.sum(plan, axis=1) - a))

    def cond(carry):
        _, _, err, k = carry
        return (err > tol) & (k < maxiter)

    def body(carry):
        f, g, _, k = carry
        f, g = update(f, g)
        return f, g, error(f, g), k + 1

    f0 = jnp.zeros_like(a)
    g0 = jnp.zeros_like(b)
    f, g, err, k = jax.lax.while_loop(cond, body, (f0, g0, jnp.asarray(jnp.inf, a.dtype), 0))
    # Fix the gauge: shift so that g_last = 0 (the plan is unchanged).
    shift = g[-1]
    return (f + shift, g[:-1] - shift), (err, k)


def kl_projection_transport(
    x: jax.Array,
    marginals: tuple[jax.Array, jax.Array],
    *,
    regularization: float = 1.0,
    tol: float = 1e-12,
    maxiter: int = 10000,
) -> jax.Array:
    r"""Entropic (KL) projection onto the transport polytope `U(a, b) = {P ≥ 0 : P1 = a, Pᵀ1 = b}`.

    Returns the KL projection of the Gibbs kernel `exp(X/ε)` onto `U(a, b)`, jaxopt's
    `kl_projection_transport` for `ε = 1`:

    `P = argmax_{P ∈ U(a, b)} ⟨P, X⟩ − ε Σᵢⱼ Pᵢⱼ (log Pᵢⱼ − 1)`,

    computed by log-domain Sinkhorn iterations and differentiated implicitly (through
    `sensitiv.custom_root` on the dual optimality conditions, with a gauge fixed so that the
    linear system is symmetric positive definite) with respect to `X`, `a`, `b` and `ε`.
    As `ε → 0` it tends to a solution of the linear program `max ⟨P, X⟩ over U(a, b)`.

    **Arguments:**

    - `x`: the score matrix `X`, shape `(m, n)`.
    - `marginals`: `(a, b)`, positive arrays of shapes `(m,)`, `(n,)` with equal sums.
    - `regularization`: the entropic regularization `ε > 0`.
    - `tol`, `maxiter`: Sinkhorn stops when `‖P1 − a‖₁ ≤ tol` or after `maxiter` sweeps.

    **Returns:** the plan `P`, shape `(m, n)`.

    **Example:**

    ```python
    a = jnp.full(3, 1 / 3); b = jnp.full(2, 1 / 2)
    P = kl_projection_transport(scores, (a, b), regularization=0.1)
    ```
    """
    a, b = marginals
    return _kl_projection_transport(x, a, b, jnp.asarray(regularization, x.dtype), tol=tol, maxiter=maxiter)


@functools.partial(jax.jit, static_argnames=("tol", "maxiter"))
def _kl_projection_transport(x, a, b, regularization, *, tol, maxiter):
    # Jitted once per (shapes, tol, maxiter): repeated projections reuse the compiled loop.
    @custom_root(_transport_optimality, solve="cg")
    def solve(scores, marginals, regularization):
        potentials, _ = _sinkhorn(scores, marginals, regularization, tol, maxiter)
        return potentials

    potentials = solve(x, (a, b), regularization)
    return _transport_plan(potentials, x, regularization)


def kl_projection_birkhoff(
    x: jax.Array, hyperparams: Any = None, *, regularization: float = 1.0, tol: float = 1e-12, maxiter: int = 10000
) -> jax.Array:
    r"""Entropic projection onto the Birkhoff polytope of doubly stochastic matrices.

    `kl_projection_transport(x, (1, 1), regularization=ε)` for a square `x`: rows and
    columns of the result sum to one. Not a Euclidean projection (a doubly stochastic `x`
    is moved towards the Gibbs kernel's plan); `projection_birkhoff` is.

    **Arguments:**

    - `x`: a square score matrix `(n, n)`.
    - `hyperparams`: ignored.
    - `regularization`, `tol`, `maxiter`: see `kl_projection_transport`.

    **Returns:** a doubly stochastic matrix `(n, n)`.

    **Example:**

    ```python
    P = kl_projection_birkhoff(scores, regularization=0.05)  # ≈ a permutation matrix
    ```
    """
    del hyperparams
    n = x.shape[0]
    ones = jnp.ones(n, x.dtype)
    return kl_projection_transport(x, (ones, ones), regularization=regularization, tol=tol, maxiter=maxiter)
