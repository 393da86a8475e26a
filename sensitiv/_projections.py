"""Euclidean projections onto convex sets, differentiable in the point and in the set.

Every projection has the signature `projection(x, hyperparams)` (the second argument
describes the set and may have a default), so any of them can be handed to
`sensitiv.optimality.projected_gradient_fixed_point`, `sensitiv.solvers.ProjectedGradient`
or `sensitiv.prox.make_prox_from_projection`. Each one is differentiable with
respect to both `x` and `hyperparams` by `jax.jvp`, `jax.grad`, `jax.jacfwd`, ...:

- closed-form, piecewise-smooth projections are differentiated by autodiff of the formula,
  with the few divisions by a norm guarded so that no `NaN` leaks out of an unused branch;
- where autodiff of the algorithm would be wrong or wasteful (the sorting-based simplex
  projection, the eigendecomposition of the PSD projection) a closed-form custom JVP is
  given;
- projections computed by an iterative solver (polyhedron, transport polytope) are
  differentiated implicitly through `sensitiv.custom_root`.

At points where a projection is not differentiable (a kink of a piecewise formula) the
derivative returned is one of the one-sided derivatives; these points have measure zero.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

__all__ = [
    "projection_non_negative",
    "projection_box",
    "projection_simplex",
    "projection_l1_ball",
    "projection_l2_ball",
    "projection_linf_ball",
    "projection_l2_sphere",
    "projection_hyperplane",
    "projection_halfspace",
    "projection_affine_set",
    "projection_polyhedron",
    "projection_second_order_cone",
    "projection_psd_cone",
    "projection_transport",
    "projection_birkhoff",
    "kl_projection_simplex",
]


# --- small pytree helpers (kept private; the projections accept pytrees where natural) -----


def _tree_vdot(a, b):
    leaves = jax.tree_util.tree_leaves(jax.tree_util.tree_map(lambda u, v: jnp.vdot(u, v), a, b))
    return sum(leaves)


def _tree_sq_norm(a):
    return sum(jnp.vdot(u, u).real for u in jax.tree_util.tree_leaves(a))


def _safe_norm(sq):
    """`sqrt(sq)` whose derivative is 0 (not NaN) at `sq = 0`."""
    positive = sq > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), 0.0)


def _broadcast_tree(value, like):
    """`value` as a pytree shaped like `like`: a scalar is repeated over the leaves."""
    if jax.tree_util.tree_structure(value) == jax.tree_util.tree_structure(like):
        return value
    return jax.tree_util.tree_map(lambda _: value, like)


# --- orthant, box, balls, sphere --------------------------------------------------------------


def projection_non_negative(x: Any, hyperparams: Any = None) -> Any:
    r"""Projection onto the non-negative orthant, `max(x, 0)` elementwise.

    **Arguments:**

    - `x`: a pytree of arrays.
    - `hyperparams`: ignored (present so that every projection has the same signature).

    **Returns:** a pytree like `x`.

    **Example:**

    ```python
    projection_non_negative(jnp.array([-1.0, 2.0]))  # [0., 2.]
    ```
    """
    del hyperparams
    return jax.tree_util.tree_map(lambda v: jnp.maximum(v, 0), x)


def projection_box(x: Any, hyperparams: tuple[Any, Any]) -> Any:
    r"""Projection onto the box `{y : lower ≤ y ≤ upper}`, i.e. `clip(x, lower, upper)`.

    **Arguments:**

    - `x`: a pytree of arrays.
    - `hyperparams`: `(lower, upper)`, each a scalar or a pytree shaped like `x`
      (`±jnp.inf` for a missing bound).

    **Returns:** a pytree like `x`. The derivative with respect to `lower` (`upper`) is
    one exactly where the lower (upper) bound is active.

    **Example:**

    ```python
    projection_box(jnp.array([-2.0, 0.5, 3.0]), (0.0, 1.0))  # [0., 0.5, 1.]
    ```
    """
    lower, upper = hyperparams
    lower = _broadcast_tree(lower, x)
    upper = _broadcast_tree(upper, x)
    return jax.tree_util.tree_map(lambda v, lo, hi: jnp.minimum(jnp.maximum(v, lo), hi), x, lower, upper)


def projection_l2_ball(x: Any, radius: Any = 1.0) -> Any:
    r"""Projection onto the Euclidean ball `{y : ‖y‖₂ ≤ radius}`: `x · min(1, radius/‖x‖₂)`.

    The norm is taken over the whole pytree.

    **Arguments:**

    - `x`: a pytree of arrays.
    - `radius`: the radius (scalar, differentiable).

    **Returns:** a pytree like `x`.

    **Example:**

    ```python
    projection_l2_ball(jnp.array([3.0, 4.0]), 1.0)  # [0.6, 0.8]
    ```
    """
    norm = _safe_norm(_tree_sq_norm(x))
    outside = norm > radius
    scale = jnp.where(outside, radius / jnp.where(outside, norm, 1.0), 1.0)
    return jax.tree_util.tree_map(lambda v: scale * v, x)


def projection_linf_ball(x: Any, radius: Any = 1.0) -> Any:
    r"""Projection onto the ℓ∞ ball `{y : max|yᵢ| ≤ radius}`, i.e. `clip(x, −radius, radius)`.

    **Arguments:**

    - `x`: a pytree of arrays.
    - `radius`: the radius (scalar, or pytree shaped like `x`).

    **Returns:** a pytree like `x`.

    **Example:**

    ```python
    projection_linf_ball(jnp.array([-2.0, 0.5]), 1.0)  # [-1., 0.5]
    ```
    """
    radius = _broadcast_tree(radius, x)
    return jax.tree_util.tree_map(lambda v, r: jnp.minimum(jnp.maximum(v, -r), r), x, radius)


def projection_l2_sphere(x: Any, radius: Any = 1.0) -> Any:
    r"""Projection onto the sphere `{y : ‖y‖₂ = radius}`: `radius · x / ‖x‖₂`.

    The sphere is not convex; the projection is unique except at `x = 0`, where every
    point of the sphere is a projection. There this function returns `radius · e₁`
    (first entry of the first leaf) with a zero derivative.

    **Arguments:**

    - `x`: a pytree of arrays.
    - `radius`: the radius (scalar, differentiable).

    **Returns:** a pytree like `x`.

    **Example:**

    ```python
    projection_l2_sphere(jnp.array([3.0, 4.0]), 10.0)  # [6., 8.]
    ```
    """
    norm = _safe_norm(_tree_sq_norm(x))
    nonzero = norm > 0
    scale = radius / jnp.where(nonzero, norm, 1.0)
    flat, unravel = ravel_pytree(x)
    e1 = jnp.zeros_like(flat).at[0].set(1.0)
    return unravel(jnp.where(nonzero, scale * flat, radius * e1))


# --- simplex and l1 ball ---------------------------------------------------------------------


@jax.custom_jvp
def _simplex(x, value):
    # Sorting-based algorithm (Held, Wolfe, Crowder 1974; Duchi et al. 2008): find the
    # threshold tau with sum(max(x - tau, 0)) = value.
    n = x.shape[0]
    u = jnp.sort(x)[::-1]
    cumulative = jnp.cumsum(u) - value
    index = jnp.arange(1, n + 1, dtype=x.dtype)
    support_size = jnp.sum(u - cumulative / index > 0)
    tau = cumulative[support_size - 1] / support_size.astype(x.dtype)
    return jnp.maximum(x - tau, 0)


@_simplex.defjvp
def _simplex_jvp(primals, tangents):
    # On the support S, y_S = x_S - tau with sum(y_S) = value, so
    # dy_S = dx_S - (sum(dx_S) - dvalue) / |S|, and dy = 0 off the support.
    # Autodiff of the sort would give the same numbers through a gather of
    # sorted indices; this is exact, O(n), and free of sort derivatives.
    x, value = primals
    dx, dvalue = tangents
    y = _simplex(x, value)
    support = (y > 0).astype(x.dtype)
    size = jnp.sum(support)
    dtau = (jnp.vdot(support, dx) - dvalue) / size
    return y, support * (dx - dtau)


def projection_simplex(x: jax.Array, value: Any = 1.0) -> jax.Array:
    r"""Projection onto the simplex `{y ≥ 0 : Σᵢ yᵢ = value}` of a 1-D array.

    Sorting-based, `O(n log n)`, with a closed-form JVP: on the support `S` of the
    result, `J = I_S − 1_S 1_Sᵀ / |S|` with respect to `x` and `∂y/∂value = 1_S / |S|`.

    **Arguments:**

    - `x`: a 1-D array. For the rows of a matrix, use `jax.vmap(projection_simplex)`.
    - `value`: the sum of the simplex (scalar > 0, differentiable).

    **Returns:** a 1-D array like `x`.

    **Example:**

    ```python
    projection_simplex(jnp.array([0.5, 2.0, -1.0]))  # [0., 1., 0.]
    jax.vmap(projection_simplex)(scores)             # one simplex per row
    ```
    """
    x = jnp.asarray(x)
    if x.ndim != 1:
        from .errors import InputError

        raise InputError(
            f"projection_simplex: x must be 1-D, got shape {x.shape}; use jax.vmap for rows"
        )
    return _simplex(x, jnp.asarray(value, x.dtype))


def projection_l1_ball(x: Any, radius: Any = 1.0) -> Any:
    r"""Projection onto the ℓ1 ball `{y : ‖y‖₁ ≤ radius}`.

    Inside the ball this is the identity; outside, `sign(x) · proj_simplex(|x|, radius)`
    (Duchi et al. 2008). Derivatives go through the simplex projection's closed-form JVP.
    The ℓ1 norm is taken over the whole pytree.

    **Arguments:**

    - `x`: a pytree of arrays.
    - `radius`: the radius (scalar, differentiable).

    **Returns:** a pytree like `x`.

    **Example:**

    ```python
    projection_l1_ball(jnp.array([2.0, -1.0]), 1.0)  # [1., 0.]
    ```
    """
    flat, unravel = ravel_pytree(x)
    radius = jnp.asarray(radius, flat.dtype)
    inside = jnp.sum(jnp.abs(flat)) <= radius
    projected = jnp.sign(flat) * _simplex(jnp.abs(flat), radius)
    return unravel(jnp.where(inside, flat, projected))


def kl_projection_simplex(y: jax.Array, value: Any = 1.0) -> jax.Array:
    r"""Bregman (KL) projection onto the simplex of the point `∇φ*(y)` of the mirror space.

    With the entropy mirror map `φ(x) = Σ xᵢ log xᵢ`, `∇φ(x) = 1 + log x`, the KL projection
    of `exp(y − 1)` onto `{x ≥ 0 : Σ xᵢ = value}` is `value · softmax(y)`. This is the
    `mirror_projection` oracle of `sensitiv.optimality.mirror_descent_fixed_point` for the
    exponentiated-gradient (entropic mirror descent) method on the simplex.

    **Arguments:**

    - `y`: a 1-D array, a point of the mirror (dual) space.
    - `value`: the sum of the simplex.

    **Returns:** a 1-D array on the simplex.

    **Example:**

    ```python
    kl_projection_simplex(jnp.log(jnp.array([1.0, 3.0])))  # [0.25, 0.75]
    ```
    """
    return value * jax.nn.softmax(y)


# --- hyperplane, halfspace, affine set -------------------------------------------------------


def projection_hyperplane(x: Any, hyperparams: tuple[Any, Any]) -> Any:
    r"""Projection onto the hyperplane `{y : ⟨a, y⟩ = b}`: `x − (⟨a, x⟩ − b) / ‖a‖² · a`.

    **Arguments:**

    - `x`: a pytree of arrays.
    - `hyperparams`: `(a, b)`: `a` a non-zero pytree shaped like `x`, `b` a scalar.

    **Returns:** a pytree like `x`.

    **Example:**

    ```python
    projection_hyperplane(jnp.zeros(2), (jnp.array([1.0, 1.0]), 2.0))  # [1., 1.]
    ```
    """
    a, b = hyperparams
    step = (_tree_vdot(a, x) - b) / _tree_sq_norm(a)
    return jax.tree_util.tree_map(lambda v, w: v - step * w, x, a)


def projection_halfspace(x: Any, hyperparams: tuple[Any, Any]) -> Any:
    r"""Projection onto the halfspace `{y : ⟨a, y⟩ ≤ b}`: `x − max(⟨a, x⟩ − b, 0) / ‖a‖² · a`.

    **Arguments:**

    - `x`: a pytree of arrays.
    - `hyperparams`: `(a, b)`: `a` a non-zero pytree shaped like `x`, `b` a scalar.

    **Returns:** a pytree like `x`.

    **Example:**

    ```python
    projection_halfspace(jnp.array([2.0, 2.0]), (jnp.array([1.0, 1.0]), 2.0))  # [1., 1.]
    ```
    """
    a, b = hyperparams
    step = jnp.maximum(_tree_vdot(a, x) - b, 0) / _tree_sq_norm(a)
    return jax.tree_util.tree_map(lambda v, w: v - step * w, x, a)


def projection_affine_set(x: jax.Array, hyperparams: tuple[jax.Array, jax.Array]) -> jax.Array:
    r"""Projection onto the affine set `{y : A y = b}`: `x − Aᵀ (A Aᵀ)⁻¹ (A x − b)`.

    **Arguments:**

    - `x`: a 1-D array of size `n`.
    - `hyperparams`: `(A, b)` with `A` of shape `(m, n)`, full row rank (`m ≤ n`), and `b`
      of shape `(m,)`.

    **Returns:** a 1-D array like `x`. Differentiable in `x`, `A` and `b` (autodiff of a
    Cholesky solve of the Gram matrix).

    **Example:**

    ```python
    A = jnp.array([[1.0, 1.0, 0.0]]); b = jnp.array([1.0])
    projection_affine_set(jnp.zeros(3), (A, b))  # [0.5, 0.5, 0.]
    ```
    """
    A, b = hyperparams
    gram = A @ A.T
    factor = jax.scipy.linalg.cho_factor(gram)
    return x - A.T @ jax.scipy.linalg.cho_solve(factor, A @ x - b)


def projection_polyhedron(
    x: jax.Array,
    hyperparams: tuple[Any, Any, Any, Any],
    *,
    tol: float = 1e-12,
    maxiter: int = 5000,
    check: bool = False,
) -> jax.Array:
    r"""Projection onto the polyhedron `{y : A y = b, G y ≤ h}` by a QP solve.

    Solves `min_y ½‖y − x‖² s.t. A y = b, G y ≤ h` with `sensitiv.solvers.QP`; derivatives
    with respect to `x`, `A`, `b`, `G`, `h` are implicit, through the QP's KKT conditions
    (exact when strict complementarity holds at the solution).

    **Arguments:**

    - `x`: a 1-D array of size `n`.
    - `hyperparams`: `(A, b, G, h)`; `A`, `b` may be `None` (no equality), as may `G`, `h`.
    - `tol`, `maxiter`: passed to the QP solver.
    - `check`: if `True` (outside `jit` only), raise `ConvergenceError` when the QP did not
      converge. Under `jit` use `sensitiv.solvers.QP` directly to get its state.

    **Returns:** a 1-D array like `x`.

    **Example:**

    ```python
    G = jnp.array([[1.0, 1.0]]); h = jnp.array([1.0])
    projection_polyhedron(jnp.array([1.0, 1.0]), (None, None, G, h))  # [0.5, 0.5]
    ```
    """
    from .solvers import QP  # the solvers build on projections, not the other way round

    A, b, G, h = hyperparams
    n = x.shape[0]
    solver = QP(tol=tol, maxiter=maxiter)
    eye = jnp.eye(n, dtype=x.dtype)
    params_eq = None if A is None else (A, b)
    params_ineq = None if G is None else (G, h)
    sol, state = solver.run(None, (eye, -x), params_eq, params_ineq)
    if check:
        from .errors import ConvergenceError

        if not bool(state.converged):
            raise ConvergenceError(
                f"projection_polyhedron: QP did not converge (KKT residual {float(state.error):.3e})"
            )
    return sol.primal


# --- cones -----------------------------------------------------------------------------------


def projection_second_order_cone(x: jax.Array, hyperparams: Any = None) -> jax.Array:
    r"""Projection onto the second-order (Lorentz) cone `{(t, v) : ‖v‖₂ ≤ t}`.

    `x = (t, v)` is one 1-D array whose first entry is `t`. The projection is `x` inside the
    cone, `0` inside the polar cone (`‖v‖ ≤ −t`), and `(t + ‖v‖)/2 · (1, v/‖v‖)` otherwise.

    **Arguments:**

    - `x`: a 1-D array of size `≥ 1`.
    - `hyperparams`: ignored.

    **Returns:** a 1-D array like `x`.

    **Example:**

    ```python
    projection_second_order_cone(jnp.array([0.0, 2.0]))  # [1., 1.]
    ```
    """
    del hyperparams
    t, v = x[0], x[1:]
    norm = _safe_norm(jnp.vdot(v, v))
    in_cone = norm <= t
    in_polar = norm <= -t
    scale = (t + norm) / 2
    unit = v / jnp.where(norm > 0, norm, 1.0)
    boundary = jnp.concatenate([scale[None], scale * unit])
    return jnp.where(in_cone, x, jnp.where(in_polar, jnp.zeros_like(x), boundary))


@jax.custom_jvp
def _psd(matrix):
    eigenvalues, vectors = jnp.linalg.eigh(matrix)
    return (vectors * jnp.maximum(eigenvalues, 0)) @ vectors.T


@_psd.defjvp
def _psd_jvp(primals, tangents):
    # Daleckii–Krein: for f applied to the spectrum of a symmetric X = V diag(λ) Vᵀ,
    # df(X)[dX] = V (Γ ∘ (Vᵀ dX V)) Vᵀ with Γᵢⱼ = (f(λᵢ) − f(λⱼ)) / (λᵢ − λⱼ), and f'(λᵢ)
    # on (near-)ties. Autodiff of eigh divides by λᵢ − λⱼ and is NaN on repeated
    # eigenvalues (e.g. several zero eigenvalues); this formula is finite everywhere.
    (matrix,) = primals
    (dmatrix,) = tangents
    eigenvalues, vectors = jnp.linalg.eigh(matrix)
    clipped = jnp.maximum(eigenvalues, 0)
    out = (vectors * clipped) @ vectors.T
    diff = eigenvalues[:, None] - eigenvalues[None, :]
    scale = jnp.max(jnp.abs(eigenvalues)) + 1.0
    tie = jnp.abs(diff) <= 1e-12 * scale
    slope = (eigenvalues > 0).astype(matrix.dtype)
    divided = (clipped[:, None] - clipped[None, :]) / jnp.where(tie, 1.0, diff)
    # On ties use the average slope of the two eigenvalues (they agree except at 0).
    gamma = jnp.where(tie, (slope[:, None] + slope[None, :]) / 2, divided)
    rotated = vectors.T @ dmatrix @ vectors
    return out, vectors @ (gamma * rotated) @ vectors.T


def projection_psd_cone(x: jax.Array, hyperparams: Any = None) -> jax.Array:
    r"""Projection onto the cone of symmetric positive semi-definite matrices.

    `V max(Λ, 0) Vᵀ` from the eigendecomposition of the symmetric part `(X + Xᵀ)/2`, with
    a closed-form (Daleckii–Krein) JVP that stays finite on repeated eigenvalues.

    **Arguments:**

    - `x`: a square matrix `(n, n)`.
    - `hyperparams`: ignored.

    **Returns:** a symmetric PSD matrix `(n, n)`.

    **Example:**

    ```python
    projection_psd_cone(jnp.diag(jnp.array([1.0, -2.0])))  # diag(1, 0)
    ```
    """
    del hyperparams
    x = jnp.asarray(x)
    if x.ndim != 2 or x.shape[0] != x.shape[1]:
        from .errors import InputError

        raise InputError(f"projection_psd_cone: x must be a square matrix, got shape {x.shape}")
    return _psd((x + x.T) / 2)


# --- transport polytope / Birkhoff polytope (entropic) -------------------------------------


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


def projection_transport(
    x: jax.Array,
    marginals: tuple[jax.Array, jax.Array],
    *,
    regularization: float = 1.0,
    tol: float = 1e-12,
    maxiter: int = 10000,
) -> jax.Array:
    r"""Entropic projection onto the transport polytope `U(a, b) = {P ≥ 0 : P1 = a, Pᵀ1 = b}`.

    Returns the KL projection of the Gibbs kernel `exp(X/ε)` onto `U(a, b)`:

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
    P = projection_transport(scores, (a, b), regularization=0.1)
    ```
    """
    a, b = marginals
    return _projection_transport(x, a, b, jnp.asarray(regularization, x.dtype), tol=tol, maxiter=maxiter)


@functools.partial(jax.jit, static_argnames=("tol", "maxiter"))
def _projection_transport(x, a, b, regularization, *, tol, maxiter):
    # Jitted once per (shapes, tol, maxiter): repeated projections reuse the compiled loop.
    from . import custom_root

    @custom_root(_transport_optimality, solve="cg")
    def solve(scores, marginals, regularization):
        potentials, _ = _sinkhorn(scores, marginals, regularization, tol, maxiter)
        return potentials

    potentials = solve(x, (a, b), regularization)
    return _transport_plan(potentials, x, regularization)


def projection_birkhoff(x: jax.Array, hyperparams: Any = None, *, regularization: float = 1.0, **kwargs) -> jax.Array:
    r"""Entropic projection onto the Birkhoff polytope of doubly stochastic matrices.

    `projection_transport(x, (1, 1), regularization=ε)` for a square `x`: rows and columns
    of the result sum to one.

    **Arguments:**

    - `x`: a square score matrix `(n, n)`.
    - `hyperparams`: ignored.
    - `regularization`, `**kwargs`: see `projection_transport`.

    **Returns:** a doubly stochastic matrix `(n, n)`.

    **Example:**

    ```python
    P = projection_birkhoff(scores, regularization=0.05)  # ≈ a permutation matrix
    ```
    """
    del hyperparams
    n = x.shape[0]
    ones = jnp.ones(n, x.dtype)
    return projection_transport(x, (ones, ones), regularization=regularization, **kwargs)
