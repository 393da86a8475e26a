"""Closed-form Euclidean projections: the ones `solvers/` and `optimality/` build on.

This module imports no solver, so the solvers can use these projections without an import
circle; `sensitiv.projections` is the public face that re-exports them next to the
projections computed by a solver (polyhedron, transport and Birkhoff polytopes). See that
module for the conventions shared by all of them.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from .errors import InputError

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
    "projection_second_order_cone",
    "projection_psd_cone",
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


def _or_default(value, default):
    """`None` stands for a projection's default set (as in jaxopt, and as
    `make_prox_from_projection` and the solvers pass it when no hyperparameters are given)."""
    return default if value is None else value


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


def projection_hypercube(x: Any, unit: Any = 1.0) -> Any:
    r"""Projection onto the hypercube `{y : 0 ≤ y ≤ unit}`: `projection_box(x, (0, unit))`.

    **Arguments:**

    - `x`: a pytree of arrays.
    - `unit`: the side length (scalar or pytree shaped like `x`, differentiable; `None`
      means 1).

    **Returns:** a pytree like `x`.

    **Example:**

    ```python
    projection_hypercube(jnp.array([-1.0, 2.0, 0.5]))  # [0., 1., 0.5]
    ```
    """
    return projection_box(x, (0.0, _or_default(unit, 1.0)))


def projection_l2_ball(x: Any, radius: Any = 1.0) -> Any:
    r"""Projection onto the Euclidean ball `{y : ‖y‖₂ ≤ radius}`: `x · min(1, radius/‖x‖₂)`.

    The norm is taken over the whole pytree.

    **Arguments:**

    - `x`: a pytree of arrays.
    - `radius`: the radius (scalar, differentiable; `None` means 1).

    **Returns:** a pytree like `x`.

    **Example:**

    ```python
    projection_l2_ball(jnp.array([3.0, 4.0]), 1.0)  # [0.6, 0.8]
    ```
    """
    radius = _or_default(radius, 1.0)
    norm = _safe_norm(_tree_sq_norm(x))
    outside = norm > radius
    scale = jnp.where(outside, radius / jnp.where(outside, norm, 1.0), 1.0)
    return jax.tree_util.tree_map(lambda v: scale * v, x)


def projection_linf_ball(x: Any, radius: Any = 1.0) -> Any:
    r"""Projection onto the ℓ∞ ball `{y : max|yᵢ| ≤ radius}`, i.e. `clip(x, −radius, radius)`.

    **Arguments:**

    - `x`: a pytree of arrays.
    - `radius`: the radius (scalar, or pytree shaped like `x`; `None` means 1).

    **Returns:** a pytree like `x`.

    **Example:**

    ```python
    projection_linf_ball(jnp.array([-2.0, 0.5]), 1.0)  # [-1., 0.5]
    ```
    """
    radius = _broadcast_tree(_or_default(radius, 1.0), x)
    return jax.tree_util.tree_map(lambda v, r: jnp.minimum(jnp.maximum(v, -r), r), x, radius)


def projection_l2_sphere(x: Any, radius: Any = 1.0) -> Any:
    r"""Projection onto the sphere `{y : ‖y‖₂ = radius}`: `radius · x / ‖x‖₂`.

    The sphere is not convex; the projection is unique except at `x = 0`, where every
    point of the sphere is a projection. There this function returns `radius · e₁`
    (first entry of the first leaf) with a zero derivative.

    **Arguments:**

    - `x`: a pytree of arrays.
    - `radius`: the radius (scalar, differentiable; `None` means 1).

    **Returns:** a pytree like `x`.

    **Example:**

    ```python
    projection_l2_sphere(jnp.array([3.0, 4.0]), 10.0)  # [6., 8.]
    ```
    """
    radius = _or_default(radius, 1.0)
    norm = _safe_norm(_tree_sq_norm(x))
    nonzero = norm > 0
    scale = radius / jnp.where(nonzero, norm, 1.0)
    flat, unravel = ravel_pytree(x)
    e1 = jnp.zeros_like(flat).at[0].set(1.0)
    return unravel(jnp.where(nonzero, scale * flat, radius * e1))


# --- simplex and l1 ball ---------------------------------------------------------------------


def _as_vector(x, where):
    x = jnp.asarray(x)
    if x.ndim != 1:
        raise InputError(f"{where}: x must be 1-D, got shape {x.shape}; use jax.vmap for rows")
    return x


@jax.custom_jvp
def _simplex(x, value):
    # Sorting-based algorithm (Held, Wolfe, Crowder 1974; Duchi et al. 2008): find the
    # threshold tau with sum(max(x - tau, 0)) = value. The projection commutes with
    # shifts, so x is shifted to max(x) = 0 first: the largest entry is then exactly 0,
    # the first candidate support (the largest entry alone) is always accepted
    # (0 - (0 - value)/1 = value > 0), and the cancellation x - tau happens between
    # numbers of the size of the spread of x, not of its magnitude: [1e9, 0] in float32
    # projects to [1, 0] instead of losing the 1 in 1e9 + 1.
    n = x.shape[0]
    shifted = x - jnp.max(x)
    u = jnp.sort(shifted)[::-1]
    cumulative = jnp.cumsum(u) - value
    index = jnp.arange(1, n + 1, dtype=x.dtype)
    support_size = jnp.maximum(jnp.sum(u - cumulative / index > 0), 1)
    tau = cumulative[support_size - 1] / support_size.astype(x.dtype)
    return jnp.maximum(shifted - tau, 0)


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
    - `value`: the sum of the simplex (scalar > 0, differentiable; `None` means 1).

    **Returns:** a 1-D array like `x`.

    **Example:**

    ```python
    projection_simplex(jnp.array([0.5, 2.0, -1.0]))  # [0., 1., 0.]
    jax.vmap(projection_simplex)(scores)             # one simplex per row
    ```
    """
    x = _as_vector(x, "projection_simplex")
    return _simplex(x, jnp.asarray(_or_default(value, 1.0), x.dtype))


def projection_sparse_simplex(
    x: jax.Array, max_nz: int, use_approx_max_nz: bool = False, value: Any = 1.0
) -> jax.Array:
    r"""Projection onto the sparse simplex `{y ≥ 0 : Σᵢ yᵢ = value, ‖y‖₀ ≤ max_nz}`.

    The set is not convex, but the projection has a closed form (Kyrillidis et al.,
    ICML 2013): project the `max_nz` largest entries onto the simplex, zero the rest.
    Differentiable through the gather of the top entries and the simplex projection's
    closed-form JVP.

    **Arguments:**

    - `x`: a 1-D array.
    - `max_nz`: the largest number of non-zero entries (a Python int).
    - `use_approx_max_nz`: find the top entries with `jax.lax.approx_max_k` (faster on
      TPU, approximate) instead of `jax.lax.top_k`.
    - `value`: the sum (scalar > 0; `None` means 1).

    **Returns:** a 1-D array like `x` with at most `max_nz` non-zero entries.

    **Example:**

    ```python
    projection_sparse_simplex(jnp.array([0.5, 2.0, 1.8, -1.0]), 1)  # [0., 1., 0., 0.]
    ```
    """
    x = _as_vector(x, "projection_sparse_simplex")
    value = jnp.asarray(_or_default(value, 1.0), x.dtype)
    if use_approx_max_nz:
        top, index = jax.lax.approx_max_k(x, max_nz)
    else:
        top, index = jax.lax.top_k(x, max_nz)
    return jnp.zeros_like(x).at[index].set(_simplex(top, value))


def projection_l1_sphere(x: Any, value: Any = 1.0) -> Any:
    r"""Projection onto the ℓ1 sphere `{y : ‖y‖₁ = value}`: `s · proj_simplex(|x|, value)`.

    `s` is the sign of `x`, taken as `+1` at zeros (the sphere is not convex: where
    several points are closest, this one is returned; jaxopt's `jnp.sign` leaves zero
    entries at zero, off the sphere when `x` is inside the ball). The norm is taken over
    the whole pytree.

    **Arguments:**

    - `x`: a pytree of arrays.
    - `value`: the radius (scalar, differentiable; `None` means 1).

    **Returns:** a pytree like `x`.

    **Example:**

    ```python
    projection_l1_sphere(jnp.array([0.2, -0.1]))  # [0.55, -0.45]
    ```
    """
    flat, unravel = ravel_pytree(x)
    value = jnp.asarray(_or_default(value, 1.0), flat.dtype)
    sign = jnp.where(flat >= 0, 1.0, -1.0).astype(flat.dtype)
    return unravel(sign * _simplex(jnp.abs(flat), value))


def projection_l1_ball(x: Any, radius: Any = 1.0) -> Any:
    r"""Projection onto the ℓ1 ball `{y : ‖y‖₁ ≤ radius}`.

    Inside the ball this is the identity; outside, `sign(x) · proj_simplex(|x|, radius)`
    (Duchi et al. 2008). Derivatives go through the simplex projection's closed-form JVP.
    The ℓ1 norm is taken over the whole pytree.

    **Arguments:**

    - `x`: a pytree of arrays.
    - `radius`: the radius (scalar, differentiable; `None` means 1).

    **Returns:** a pytree like `x`.

    **Example:**

    ```python
    projection_l1_ball(jnp.array([2.0, -1.0]), 1.0)  # [1., 0.]
    ```
    """
    flat, unravel = ravel_pytree(x)
    radius = jnp.asarray(_or_default(radius, 1.0), flat.dtype)
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
    - `value`: the sum of the simplex (`None` means 1).

    **Returns:** a 1-D array on the simplex.

    **Example:**

    ```python
    kl_projection_simplex(jnp.log(jnp.array([1.0, 3.0])))  # [0.25, 0.75]
    ```
    """
    return _or_default(value, 1.0) * jax.nn.softmax(y)


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


def projection_box_section(x: jax.Array, hyperparams: tuple[Any, Any, Any, Any], check_feasible: bool = False) -> jax.Array:
    r"""Projection onto a box section `{y : α ≤ y ≤ β, ⟨w, y⟩ = c}` (`w > 0`).

    The solution is `yᵢ = clip(xᵢ + wᵢ τ, αᵢ, βᵢ)` with `τ` the root of the non-decreasing,
    piecewise-linear `φ(τ) = ⟨w, clip(x + w τ, α, β)⟩ − c`, found by bisection to round-off.
    On the coordinates strictly inside their bounds (the free set `F`) `φ` is linear, so
    `τ = (c − Σ_{lower} wα − Σ_{upper} wβ − Σ_F w x) / Σ_F w²` exactly; this formula is
    what autodiff differentiates, giving the exact derivatives in `x`, `α`, `β`, `w`, `c`
    (one-sided where a coordinate sits exactly on a bound).

    **Arguments:**

    - `x`: a 1-D array.
    - `hyperparams`: `(α, β, w, c)`: `α`, `β`, `w` shaped like `x` (or scalars), `w > 0`,
      `c` a scalar; feasible when `⟨w, α⟩ ≤ c ≤ ⟨w, β⟩`.
    - `check_feasible`: raise `InputError` when the set is empty (outside `jit` only).

    **Returns:** a 1-D array like `x`.

    **Example:**

    ```python
    w = jnp.ones(3)
    projection_box_section(jnp.array([0.5, 2.0, -1.0]), (0.0, 1.0, w, 1.0))  # [0., 1., 0.]
    ```
    """
    x = _as_vector(x, "projection_box_section")
    alpha, beta, w, c = _box_section_params(x, hyperparams)
    if check_feasible:
        low, high = float(jnp.vdot(w, alpha)), float(jnp.vdot(w, beta))
        if not low <= float(c) <= high:
            raise InputError(
                f"projection_box_section: the set is empty: c = {float(c):g} must lie in "
                f"[<w, alpha>, <w, beta>] = [{low:g}, {high:g}]"
            )

    def phi(tau):
        return jnp.vdot(w, jnp.clip(x + w * tau, alpha, beta)) - c

    # Bisection on the bracket of all breakpoints: φ(lower) = ⟨w, α⟩ − c ≤ 0 ≤ φ(upper).
    lower = jax.lax.stop_gradient(jnp.min((alpha - x) / w))
    upper = jax.lax.stop_gradient(jnp.max((beta - x) / w))
    steps = 2 * jnp.finfo(x.dtype).nmant + 8

    def bisect(_, bracket):
        lo, hi = bracket
        mid = (lo + hi) / 2
        below = jax.lax.stop_gradient(phi(mid)) < 0
        return jnp.where(below, mid, lo), jnp.where(below, hi, mid)

    lo, hi = jax.lax.fori_loop(0, steps, bisect, (lower, upper))
    tau0 = jax.lax.stop_gradient((lo + hi) / 2)
    z = jax.lax.stop_gradient(x + w * tau0)
    at_lower, at_upper = z <= alpha, z >= beta
    free = ~(at_lower | at_upper)
    curvature = jnp.sum(jnp.where(free, w * w, 0.0))
    fixed = jnp.sum(jnp.where(at_lower, w * alpha, 0.0)) + jnp.sum(jnp.where(at_upper, w * beta, 0.0))
    exact = (c - fixed - jnp.sum(jnp.where(free, w * x, 0.0))) / jnp.where(curvature > 0, curvature, 1.0)
    tau = jnp.where(curvature > 0, exact, tau0)
    return jnp.clip(x + w * tau, alpha, beta)


def _box_section_params(x, hyperparams):
    alpha, beta, w, c = hyperparams
    alpha, beta, w = (jnp.broadcast_to(jnp.asarray(v, x.dtype), x.shape) for v in (alpha, beta, w))
    return alpha, beta, w, jnp.asarray(c, x.dtype)


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
        raise InputError(f"projection_psd_cone: x must be a square matrix, got shape {x.shape}")
    return _psd((x + x.T) / 2)


