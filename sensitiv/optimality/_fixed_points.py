"""Fixed-point mappings of first-order methods: x* = T(x*, θ).

Hand each `T` to `sensitiv.custom_fixed_point` (which differentiates `T(x, θ) − x`), or
use the paired solver in `sensitiv.solvers`, which does so by default. The fixed points
of these maps do not depend on the step size `η > 0`; `η` only changes the conditioning
of the linear system of implicit differentiation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from ..errors import ImplicitDiffError
from ._oracles import adopt_signature, gradient_oracle, require_callable

__all__ = [
    "proximal_gradient_fixed_point",
    "projected_gradient_fixed_point",
    "mirror_descent_fixed_point",
    "block_proximal_gradient_fixed_point",
]


def _gradient_step(x, g, stepsize):
    return jax.tree_util.tree_map(lambda v, d: v - stepsize * d, x, g)


def proximal_gradient_fixed_point(
    fun: Callable | None = None,
    prox: Callable | None = None,
    *,
    grad: Callable | None = None,
    stepsize: float = 1.0,
) -> Callable:
    r"""The proximal gradient fixed point of `min_x f(x, θ) + g(x, λ)`.

    `T(x, λ, θ) = prox_{ηg}(x − η ∇₁f(x, θ), λ)`.

    Needs the **primal** solution. Oracles: `∇₁f` and `prox_{ηg}`.

    **Arguments:**

    - `fun`: the smooth part `f(x, *args, **kwargs)`; or `grad=`: its gradient.
    - `prox`: `prox(x, hyperparams_prox, scaling)`, e.g. from `sensitiv.prox`.
    - `stepsize`: `η > 0`.

    **Returns:** `T(x, hyperparams_prox, *args, **kwargs)`, shaped like `x`.

    **Example:**

    ```python
    f = lambda w, X, y: 0.5 * jnp.sum((X @ w - y) ** 2)
    T = sensitiv.optimality.proximal_gradient_fixed_point(f, sensitiv.prox.prox_lasso)
    T(w, l1reg, X, y)  # == w at the lasso solution
    ```
    """
    gradient = gradient_oracle(fun, grad, "proximal_gradient_fixed_point")
    require_callable(prox, "prox", "proximal_gradient_fixed_point")

    def proximal_gradient_map(x, hyperparams_prox, *args, **kwargs):
        y = _gradient_step(x, gradient(x, *args, **kwargs), stepsize)
        return prox(y, hyperparams_prox, stepsize)

    return adopt_signature(proximal_gradient_map, fun if fun is not None else grad, ("hyperparams_prox",))


def projected_gradient_fixed_point(
    fun: Callable | None = None,
    projection: Callable | None = None,
    *,
    grad: Callable | None = None,
    stepsize: float = 1.0,
) -> Callable:
    r"""The projected gradient fixed point of `min_{x ∈ C(λ)} f(x, θ)`.

    `T(x, λ, θ) = proj_{C(λ)}(x − η ∇₁f(x, θ))`.

    Needs the **primal** solution. Oracles: `∇₁f` and `proj_C`.

    **Arguments:**

    - `fun`: the objective `f(x, *args, **kwargs)`; or `grad=`: its gradient.
    - `projection`: `projection(x, hyperparams_proj)`, e.g. from `sensitiv.projections`.
    - `stepsize`: `η > 0`.

    **Returns:** `T(x, hyperparams_proj, *args, **kwargs)`, shaped like `x`.

    **Example:**

    ```python
    f = lambda x, Q, c: 0.5 * x @ Q @ x + c @ x
    T = sensitiv.optimality.projected_gradient_fixed_point(f, projection_simplex)
    T(x, 1.0, Q, c)  # == x at the minimizer over the simplex
    ```
    """
    gradient = gradient_oracle(fun, grad, "projected_gradient_fixed_point")
    require_callable(projection, "projection", "projected_gradient_fixed_point")

    def projected_gradient_map(x, hyperparams_proj, *args, **kwargs):
        y = _gradient_step(x, gradient(x, *args, **kwargs), stepsize)
        return projection(y, hyperparams_proj)

    return adopt_signature(projected_gradient_map, fun if fun is not None else grad, ("hyperparams_proj",))


def _boundary_safe(mirror_map: Callable) -> Callable:
    """`∇φ` whose tangent is zero where `∇φ(x)` is infinite, i.e. on the boundary of dom φ.

    With the entropy, `∇φ(x) = log x` is `−∞` at an exact zero of `x` and its derivative
    `1/x` is infinite there; the Bregman projection multiplies it by the zero weight of
    that coordinate, and autodiff returns `0 · ∞ = NaN` in every entry of the Jacobian.
    A coordinate at the boundary stays there under mirror descent (multiplicative
    updates keep zeros), so its tangent is zero; masking it before and after the JVP of
    `∇φ` keeps NaNs out of both forward and transposed products (for separable mirror
    maps, whose JVP acts coordinate by coordinate).
    """

    @jax.custom_jvp
    def safe_mirror_map(x):
        return mirror_map(x)

    @safe_mirror_map.defjvp
    def safe_mirror_map_jvp(primals, tangents):
        (x,), (dx,) = primals, tangents
        y = mirror_map(x)
        finite = jax.tree_util.tree_map(jnp.isfinite, y)
        if jax.tree_util.tree_structure(y) == jax.tree_util.tree_structure(x) and all(
            jnp.shape(u) == jnp.shape(v) for u, v in zip(jax.tree_util.tree_leaves(y), jax.tree_util.tree_leaves(x))
        ):
            dx = jax.tree_util.tree_map(lambda f, t: jnp.where(f, t, jnp.zeros_like(t)), finite, dx)
        _, dy = jax.jvp(mirror_map, (x,), (dx,))
        dy = jax.tree_util.tree_map(lambda f, t: jnp.where(f, t, jnp.zeros_like(t)), finite, dy)
        return y, dy

    return safe_mirror_map


def mirror_descent_fixed_point(
    fun: Callable | None = None,
    mirror_map: Callable | None = None,
    mirror_projection: Callable | None = None,
    *,
    grad: Callable | None = None,
    stepsize: float = 1.0,
) -> Callable:
    r"""The mirror descent fixed point of `min_{x ∈ C(λ)} f(x, θ)` with mirror map `∇φ`.

    `T(x, λ, θ) = proj^φ_{C(λ)}(∇φ*(∇φ(x) − η ∇₁f(x, θ)))`,

    where `proj^φ_C(u) = argmin_{y ∈ C} D_φ(y, u)` is the Bregman projection. The oracle
    `mirror_projection(y, λ)` takes the point `y` of the *mirror* (dual) space and returns
    `proj^φ_C(∇φ*(y))`, which usually has a closed form: for the entropy `φ = Σ xᵢ log xᵢ`
    on the simplex it is `softmax(y)` (`sensitiv.projections.kl_projection_simplex`).

    Needs the **primal** solution. Oracles: `∇₁f`, `∇φ` and `proj^φ_C ∘ ∇φ*`.

    Solutions on the boundary of the domain of `φ` (exact zeros with the entropy, where
    `log 0 = −∞`) are supported: the tangent of `∇φ` is taken as zero wherever `∇φ(x)` is
    infinite, so those coordinates keep a zero derivative. When the constraint is
    strictly active there (the gradient of `f` on that coordinate exceeds the support's),
    the zero stays a zero under small perturbations and this is the derivative (both
    one-sided limits); derivatives stay finite instead of `NaN` in every case.

    **Arguments:**

    - `fun`: the objective `f(x, *args, **kwargs)`; or `grad=`: its gradient.
    - `mirror_map`: `∇φ(x)`, e.g. `jnp.log` (the `+1` of the entropy cancels in softmax);
      separable (coordinate by coordinate) for the boundary rule above.
    - `mirror_projection`: `(y, hyperparams_proj) ↦ proj^φ_C(∇φ*(y))`.
    - `stepsize`: `η > 0`.

    **Returns:** `T(x, hyperparams_proj, *args, **kwargs)`, shaped like `x`.

    **Example:**

    ```python
    T = sensitiv.optimality.mirror_descent_fixed_point(
        f, jnp.log, sensitiv.projections.kl_projection_simplex
    )
    T(x, 1.0, theta)  # == x at the minimizer over the simplex
    ```
    """
    gradient = gradient_oracle(fun, grad, "mirror_descent_fixed_point")
    require_callable(mirror_map, "mirror_map", "mirror_descent_fixed_point")
    require_callable(mirror_projection, "mirror_projection", "mirror_descent_fixed_point")
    mirror_map = _boundary_safe(mirror_map)

    def mirror_descent_map(x, hyperparams_proj, *args, **kwargs):
        y = _gradient_step(mirror_map(x), gradient(x, *args, **kwargs), stepsize)
        return mirror_projection(y, hyperparams_proj)

    return adopt_signature(mirror_descent_map, fun if fun is not None else grad, ("hyperparams_proj",))


def _as_sequence(value, n, name, where):
    if isinstance(value, (tuple, list)):
        if len(value) != n:
            raise ImplicitDiffError(f"{where}: {name} has {len(value)} entries for {n} blocks")
        return list(value)
    return [value] * n


def block_proximal_gradient_fixed_point(
    fun: Callable | None = None,
    block_prox: Callable | Sequence[Callable] | None = None,
    *,
    grad: Callable | None = None,
    stepsize: Any = 1.0,
) -> Callable:
    r"""The block proximal gradient fixed point of `min_x f(x, θ) + Σⱼ gⱼ(xⱼ, λ)`.

    `T(x, λ, θ)ⱼ = [prox_{ηⱼ gⱼ}]((xⱼ − ηⱼ [∇₁f(x, θ)]ⱼ), λ)` for every block `j`.

    This is the map whose fixed points are those of block coordinate descent (which
    applies the block updates one after the other); evaluated here for all blocks at once.
    Needs the **primal** solution. Oracles: the block gradients `[∇₁f]ⱼ` (blocks of
    `∇₁f`) and the block proximal operators `[prox_{ηg}]ⱼ`.

    Blocks are

    - the rows (leading axis) of `x` when `x` is an array: `block_prox` is one operator
      applied to every row with the same `hyperparams_prox`, and `stepsize` a scalar or a
      vector with one step per row (e.g. `1/Lⱼ`);
    - the entries of `x` when `x` is a tuple or list of pytrees: `block_prox`, `stepsize`
      and `hyperparams_prox` may then be sequences with one entry per block.

    **Arguments:**

    - `fun`: the smooth part `f(x, *args, **kwargs)`; or `grad=`: its gradient.
    - `block_prox`: `prox(x_j, hyperparams, scaling)`, or a sequence of them.
    - `stepsize`: `ηⱼ > 0` (scalar, per-row vector, or per-block sequence).

    **Returns:** `T(x, hyperparams_prox, *args, **kwargs)`, shaped like `x`.

    **Example:**

    ```python
    # Dual of a multiclass SVM: each row of beta lies on a simplex.
    T = sensitiv.optimality.block_proximal_gradient_fixed_point(
        dual_objective, sensitiv.prox.make_prox_from_projection(projection_simplex),
        stepsize=1 / row_lipschitz,
    )
    T(beta, 1.0, X, Y, lam)
    ```
    """
    where = "block_proximal_gradient_fixed_point"
    gradient = gradient_oracle(fun, grad, where)
    if block_prox is None:
        raise ImplicitDiffError(f"{where}: block_prox is required")

    def block_proximal_gradient_map(x, hyperparams_prox, *args, **kwargs):
        g = gradient(x, *args, **kwargs)
        if isinstance(x, (tuple, list)):
            n = len(x)
            proxes = _as_sequence(block_prox, n, "block_prox", where)
            steps = _as_sequence(stepsize, n, "stepsize", where)
            hypers = (
                list(hyperparams_prox)
                if isinstance(hyperparams_prox, (tuple, list)) and len(hyperparams_prox) == n
                else [hyperparams_prox] * n
            )
            out = [
                p(_gradient_step(xj, gj, s), h, s)
                for p, xj, gj, s, h in zip(proxes, x, g, steps, hypers)
            ]
            return type(x)(out)
        require_callable(block_prox, "block_prox", where)
        steps = jnp.broadcast_to(jnp.asarray(stepsize, x.dtype), x.shape[:1])
        y = x - steps.reshape((-1,) + (1,) * (x.ndim - 1)) * g
        return jax.vmap(block_prox, in_axes=(0, None, 0))(y, hyperparams_prox, steps)

    return adopt_signature(block_proximal_gradient_map, fun if fun is not None else grad, ("hyperparams_prox",))
