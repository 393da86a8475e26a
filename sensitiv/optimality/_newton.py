"""The Newton fixed point T(x, θ) = x − [∇²₁f(x, θ)]⁻¹ ∇₁f(x, θ)."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from ..errors import ImplicitDiffError
from ._oracles import adopt_signature, gradient_oracle

__all__ = ["newton_fixed_point", "newton_direction"]


def newton_direction(gradient: Callable, x, args, kwargs, hessian_solve: str = "dense"):
    """`[∇²₁f]⁻¹ ∇₁f` at `x` (a pytree), by a dense solve or by CG on Hessian-vector products."""
    flat, unravel = ravel_pytree(x)
    flat_grad = lambda v: ravel_pytree(gradient(unravel(v), *args, **kwargs))[0]
    g = flat_grad(flat)
    if hessian_solve == "dense":
        hessian = jax.jacfwd(flat_grad)(flat)
        direction = jnp.linalg.solve(hessian, g)
    elif hessian_solve == "cg":
        hvp = lambda v: jax.jvp(flat_grad, (flat,), (v,))[1]
        # jax.scipy's CG is built on lax.custom_linear_solve, so it is differentiable
        # (the Newton map's own derivative needs it).
        direction, _ = jax.scipy.sparse.linalg.cg(hvp, g, tol=1e-14, maxiter=10 * flat.size)
    else:
        raise ImplicitDiffError(
            f"newton_fixed_point: hessian_solve must be 'dense' or 'cg', got {hessian_solve!r}"
        )
    return unravel(direction), unravel(g)


def newton_fixed_point(
    fun: Callable | None = None, *, grad: Callable | None = None, hessian_solve: str = "dense"
) -> Callable:
    r"""The Newton fixed point `T(x, θ) = x − [∇²₁f(x, θ)]⁻¹ ∇₁f(x, θ)` of `min_x f(x, θ)`.

    Needs the **primal** solution. Oracles: `∇₁f` and (the inverse of) `∇²₁f`, obtained
    by differentiating `∇₁f`. At a solution `∂₁T = 0` (the term with the derivative of
    the inverse Hessian multiplies `∇₁f = 0`), so the linear system of implicit
    differentiation is `−I · J = −∂₂T`: all of its work is in `∂₂T = −[∇²₁f]⁻¹ ∂₂∇₁f`,
    which differentiates through the Hessian solve (third derivatives of `f`).

    **Arguments:**

    - `fun`: the objective `f(x, *args, **kwargs)`; or `grad=`: its gradient.
    - `hessian_solve`: `"dense"` (materialize the Hessian of the flattened `x`, LU solve)
      or `"cg"` (conjugate gradients on Hessian-vector products; `f` strictly convex).

    **Returns:** `T(x, *args, **kwargs)`, shaped like `x`.

    **Example:**

    ```python
    f = lambda x, theta: jnp.sum(jnp.exp(x)) - theta @ x
    T = sensitiv.optimality.newton_fixed_point(f)
    T(jnp.log(theta), theta)  # == jnp.log(theta)
    ```
    """
    gradient = gradient_oracle(fun, grad, "newton_fixed_point")
    if hessian_solve not in ("dense", "cg"):
        raise ImplicitDiffError(
            f"newton_fixed_point: hessian_solve must be 'dense' or 'cg', got {hessian_solve!r}"
        )

    def newton_map(x, *args, **kwargs):
        direction, _ = newton_direction(gradient, x, args, kwargs, hessian_solve)
        return jax.tree_util.tree_map(jnp.subtract, x, direction)

    return adopt_signature(newton_map, fun if fun is not None else grad)
