"""Proximal operators, differentiable in the point and in the regularization strengths.

Every operator has the signature `prox(x, hyperparams, scaling=1.0)` and returns

`prox_{scaling·g}(x) = argmin_y ½‖y − x‖² + scaling · g(y, hyperparams)`,

so that any of them can be handed to `sensitiv.optimality.proximal_gradient_fixed_point`
or `sensitiv.solvers.ProximalGradient` (which pass the step size as `scaling`). `x` may be
any pytree of arrays; `hyperparams` is a scalar or a pytree shaped like `x` (one strength
per entry) unless stated otherwise. All operators are piecewise linear or piecewise smooth
closed forms; autodiff of the formula gives their exact derivatives with respect to both
`x` and `hyperparams` (one-sided at kinks, a set of measure zero), with divisions by norms
guarded so that no `NaN` appears at `x = 0`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

__all__ = [
    "prox_none",
    "prox_lasso",
    "prox_non_negative_lasso",
    "prox_elastic_net",
    "prox_elastic_net_jaxopt",
    "prox_group_lasso",
    "prox_ridge",
    "prox_non_negative_ridge",
    "make_prox_from_projection",
]


def _or_default(value, default=1.0):
    # `None` is the default strength, as in jaxopt (and as the solvers pass it when no
    # hyperparameters are given).
    return default if value is None else value


def _broadcast_tree(value, like):
    if jax.tree_util.tree_structure(value) == jax.tree_util.tree_structure(like):
        return value
    return jax.tree_util.tree_map(lambda _: value, like)


def prox_none(x: Any, hyperparams: Any = None, scaling: Any = 1.0) -> Any:
    r"""The proximal operator of `g = 0`: the identity.

    **Arguments:**

    - `x`: a pytree of arrays.
    - `hyperparams`, `scaling`: ignored.

    **Returns:** `x`.

    **Example:**

    ```python
    prox_none(jnp.array([1.0, -2.0]))  # unchanged
    ```
    """
    del hyperparams, scaling
    return x


def prox_lasso(x: Any, l1reg: Any = 1.0, scaling: Any = 1.0) -> Any:
    r"""Soft thresholding, the proximal operator of `g(y) = l1reg · ‖y‖₁`.

    `prox(x)ᵢ = sign(xᵢ) · max(|xᵢ| − scaling · l1reg, 0)`.

    **Arguments:**

    - `x`: a pytree of arrays.
    - `l1reg`: the ℓ1 strength `λ ≥ 0`, a scalar or a pytree shaped like `x` (`None` means 1).
    - `scaling`: the step size `η`.

    **Returns:** a pytree like `x`. `∂/∂x = 1` on the support, `∂/∂λ = −η · sign(x)` there.

    **Example:**

    ```python
    prox_lasso(jnp.array([3.0, -0.5]), 1.0)  # [2., 0.]
    ```
    """
    l1reg = _broadcast_tree(_or_default(l1reg), x)
    return jax.tree_util.tree_map(
        lambda v, lam: jnp.sign(v) * jnp.maximum(jnp.abs(v) - scaling * lam, 0), x, l1reg
    )


def prox_non_negative_lasso(x: Any, l1reg: Any = 1.0, scaling: Any = 1.0) -> Any:
    r"""The proximal operator of `g(y) = l1reg · ‖y‖₁ + ι(y ≥ 0)`: `max(x − scaling · l1reg, 0)`.

    **Arguments:**

    - `x`: a pytree of arrays.
    - `l1reg`: the ℓ1 strength `λ ≥ 0`, a scalar or a pytree shaped like `x` (`None` means 1).
    - `scaling`: the step size `η`.

    **Returns:** a pytree like `x`.

    **Example:**

    ```python
    prox_non_negative_lasso(jnp.array([3.0, -2.0]), 1.0)  # [2., 0.]
    ```
    """
    l1reg = _broadcast_tree(_or_default(l1reg), x)
    return jax.tree_util.tree_map(lambda v, lam: jnp.maximum(v - scaling * lam, 0), x, l1reg)


def prox_elastic_net(x: Any, hyperparams: tuple[Any, Any] | None = (1.0, 1.0), scaling: Any = 1.0) -> Any:
    r"""The proximal operator of the elastic net `g(y) = λ₁ ‖y‖₁ + ½ λ₂ ‖y‖₂²`.

    `prox(x) = soft_threshold(x, scaling · λ₁) / (1 + scaling · λ₂)`.

    Two independent strengths, as in glmnet's penalty written out: each can be
    differentiated and tuned on its own. **jaxopt's `prox_elastic_net` takes the same
    arguments with another meaning**: its `(λ, γ)` is `g(y) = λ ‖y‖₁ + ½ λγ ‖y‖₂²`.
    Convert with `(λ₁, λ₂) = (λ, λ·γ)`, or call `prox_elastic_net_jaxopt`, which keeps
    jaxopt's convention.

    **Arguments:**

    - `x`: a pytree of arrays.
    - `hyperparams`: `(λ₁, λ₂)`, each a scalar or a pytree shaped like `x` (`None` means
      `(1, 1)`).
    - `scaling`: the step size `η`.

    **Returns:** a pytree like `x`.

    **Example:**

    ```python
    prox_elastic_net(jnp.array([3.0, -0.5]), (1.0, 1.0))  # [1., 0.]
    prox_elastic_net(jnp.array([2.0]), (0.5, 0.1))        # [1.3636...] = 1.5 / 1.1
    ```
    """
    l1reg, l2reg = (1.0, 1.0) if hyperparams is None else hyperparams
    l1reg = _broadcast_tree(l1reg, x)
    l2reg = _broadcast_tree(l2reg, x)
    return jax.tree_util.tree_map(
        lambda v, lam1, lam2: jnp.sign(v) * jnp.maximum(jnp.abs(v) - scaling * lam1, 0) / (1 + scaling * lam2),
        x,
        l1reg,
        l2reg,
    )


def prox_elastic_net_jaxopt(x: Any, hyperparams: tuple[Any, Any] | None = None, scaling: Any = 1.0) -> Any:
    r"""The elastic net's proximal operator in jaxopt's convention: `g(y) = λ (‖y‖₁ + ½ γ ‖y‖₂²)`.

    `prox(x) = soft_threshold(x, scaling · λ) / (1 + scaling · λ · γ)`, exactly jaxopt's
    `prox_elastic_net(x, (λ, γ), scaling)`: a drop-in replacement when porting jaxopt
    code. Equal to `prox_elastic_net(x, (λ, λ·γ), scaling)`.

    **Arguments:**

    - `x`: a pytree of arrays.
    - `hyperparams`: `(λ, γ)`, each a scalar or a pytree shaped like `x` (`None` means
      `(1, 1)`, as in jaxopt).
    - `scaling`: the step size `η`.

    **Returns:** a pytree like `x`.

    **Example:**

    ```python
    prox_elastic_net_jaxopt(jnp.array([2.0]), (0.5, 0.1))  # [1.4286...] = 1.5 / 1.05
    ```
    """
    lam, gamma = (1.0, 1.0) if hyperparams is None else hyperparams
    lam = _broadcast_tree(lam, x)
    gamma = _broadcast_tree(gamma, x)
    l2reg = jax.tree_util.tree_map(lambda u, v: u * v, lam, gamma)
    return prox_elastic_net(x, (lam, l2reg), scaling)


def prox_group_lasso(x: Any, l2reg: Any = 1.0, scaling: Any = 1.0) -> Any:
    r"""Block soft thresholding, the proximal operator of `g(y) = l2reg · ‖y‖₂`.

    `prox(x) = max(1 − scaling · l2reg / ‖x‖₂, 0) · x`, with the norm taken over the whole
    pytree (one group). For several groups stored as rows of a matrix, use
    `jax.vmap(prox_group_lasso, in_axes=(0, None, None))`.

    **Arguments:**

    - `x`: a pytree of arrays (one group).
    - `l2reg`: the group strength `λ ≥ 0` (scalar; `None` means 1).
    - `scaling`: the step size `η`.

    **Returns:** a pytree like `x`; exactly zero when `‖x‖₂ ≤ η λ`.

    **Example:**

    ```python
    prox_group_lasso(jnp.array([3.0, 4.0]), 1.0)  # [2.4, 3.2]
    ```
    """
    l2reg = _or_default(l2reg)
    sq = sum(jnp.vdot(v, v) for v in jax.tree_util.tree_leaves(x))
    positive = sq > 0
    norm = jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), 0.0)
    shrink = jnp.maximum(1 - scaling * l2reg / jnp.where(positive, norm, 1.0), 0)
    return jax.tree_util.tree_map(lambda v: shrink * v, x)


def prox_ridge(x: Any, l2reg: Any = 1.0, scaling: Any = 1.0) -> Any:
    r"""The proximal operator of `g(y) = ½ l2reg · ‖y‖₂²`: `x / (1 + scaling · l2reg)`.

    **Arguments:**

    - `x`: a pytree of arrays.
    - `l2reg`: the ridge strength `λ ≥ 0`, a scalar or a pytree shaped like `x` (`None` means 1).
    - `scaling`: the step size `η`.

    **Returns:** a pytree like `x`.

    **Example:**

    ```python
    prox_ridge(jnp.array([2.0]), 1.0)  # [1.]
    ```
    """
    l2reg = _broadcast_tree(_or_default(l2reg), x)
    return jax.tree_util.tree_map(lambda v, lam: v / (1 + scaling * lam), x, l2reg)


def prox_non_negative_ridge(x: Any, l2reg: Any = 1.0, scaling: Any = 1.0) -> Any:
    r"""The proximal operator of `g(y) = ½ l2reg · ‖y‖₂² + ι(y ≥ 0)`: `max(x, 0) / (1 + scaling · l2reg)`.

    **Arguments:**

    - `x`: a pytree of arrays.
    - `l2reg`: the ridge strength `λ ≥ 0`, a scalar or a pytree shaped like `x` (`None` means 1).
    - `scaling`: the step size `η`.

    **Returns:** a pytree like `x`.

    **Example:**

    ```python
    prox_non_negative_ridge(jnp.array([2.0, -1.0]), 1.0)  # [1., 0.]
    ```
    """
    l2reg = _broadcast_tree(_or_default(l2reg), x)
    return jax.tree_util.tree_map(lambda v, lam: jnp.maximum(v, 0) / (1 + scaling * lam), x, l2reg)


def make_prox_from_projection(projection: Callable) -> Callable:
    r"""The proximal operator of the indicator of a convex set, from its projection.

    `prox_{η ι_C}(x) = proj_C(x)` for every `η > 0`.

    **Arguments:**

    - `projection`: a function `projection(x, hyperparams)`, e.g. from `sensitiv.projections`.

    **Returns:** a function `prox(x, hyperparams=None, scaling=1.0)`. With `hyperparams`
    left at `None` the projection is called as `projection(x)`, so that its own default
    set applies (the unit simplex for `projection_simplex`); a projection without a
    default then says which argument is missing.

    **Example:**

    ```python
    prox = make_prox_from_projection(sensitiv.projections.projection_box)
    prox(x, (0.0, 1.0), 0.1)  # == projection_box(x, (0.0, 1.0))
    make_prox_from_projection(sensitiv.projections.projection_simplex)(x)  # unit simplex
    ```
    """

    def prox(x, hyperparams=None, scaling=1.0):
        del scaling
        if hyperparams is None:
            return projection(x)
        return projection(x, hyperparams)

    prox.__name__ = f"prox_from_{getattr(projection, '__name__', 'projection')}"
    prox.__doc__ = f"Proximal operator of the indicator of the set of `{prox.__name__[10:]}`."
    return prox
