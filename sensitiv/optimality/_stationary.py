"""Stationarity of an unconstrained objective: F(x, θ) = ∇₁f(x, θ)."""

from __future__ import annotations

from collections.abc import Callable

from ._oracles import adopt_signature, gradient_oracle

__all__ = ["stationary"]


def stationary(fun: Callable | None = None, *, grad: Callable | None = None) -> Callable:
    r"""The stationarity mapping `F(x, θ) = ∇₁f(x, θ)` of `min_x f(x, θ)`.

    Needs the **primal** solution only. Oracle: `∇₁f` (given, or by `jax.grad` of `f`).
    At a minimum `∂₁F = ∇²₁f` is symmetric positive (semi-)definite: conjugate gradients
    (`solve="cg"`) apply.

    **Arguments:**

    - `fun`: the objective `f(x, *args, **kwargs)` returning a scalar; or
    - `grad`: its gradient `∇₁f(x, *args, **kwargs)`, shaped like `x` (exactly one of the two).

    **Returns:** `F(x, *args, **kwargs)`, shaped like `x`.

    **Example:**

    ```python
    f = lambda w, lam: jnp.sum((X @ w - y) ** 2) + lam * jnp.sum(w**2)
    F = sensitiv.optimality.stationary(f)

    @sensitiv.custom_root(F, solve="cg")
    def ridge(w0, lam):
        return jnp.linalg.solve(X.T @ X + lam * jnp.eye(X.shape[1]), X.T @ y)
    ```
    """
    gradient = gradient_oracle(fun, grad, "stationary")

    def stationary_optimality(x, *args, **kwargs):
        return gradient(x, *args, **kwargs)

    return adopt_signature(stationary_optimality, fun if fun is not None else grad)
