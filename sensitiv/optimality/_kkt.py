"""Karush–Kuhn–Tucker conditions of an equality- and inequality-constrained problem."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ._oracles import gradient_oracle, require_callable

__all__ = ["KKTSolution", "kkt"]


class KKTSolution(NamedTuple):
    """A primal–dual point `x = (z, ν, λ)` of a constrained problem (a pytree).

    **Arguments:**

    - `primal`: `z`, any pytree.
    - `eq_dual`: `ν`, shaped like the output of the equality constraint `H` (or `None`).
    - `ineq_dual`: `λ ≥ 0`, shaped like the output of the inequality constraint `G` (or `None`).

    **Example:**

    ```python
    sol = sensitiv.solvers.EqualityQP().run(None, (Q, c), (A, b)).params  # a KKTSolution
    z, nu = sol.primal, sol.eq_dual
    ```
    """

    primal: Any
    eq_dual: Any = None
    ineq_dual: Any = None


def _add(a, b):
    return jax.tree_util.tree_map(jnp.add, a, b)


def kkt(
    fun: Callable | None = None,
    eq_fun: Callable | None = None,
    ineq_fun: Callable | None = None,
    *,
    grad: Callable | None = None,
) -> Callable:
    r"""The KKT mapping of `min_z f(z, θ_f) s.t. H(z, θ_H) = 0, G(z, θ_G) ≤ 0`.

    With the Lagrangian `L = f + ⟨ν, H⟩ + ⟨λ, G⟩` and `x = (z, ν, λ)`,

    ```
    F(x, θ) = ( ∇_z f(z, θ_f) + ∂_z H(z, θ_H)ᵀ ν + ∂_z G(z, θ_G)ᵀ λ,   stationarity
                H(z, θ_H),                                          primal feasibility
                λ ∘ G(z, θ_G) )                                     complementary slackness
    ```

    Needs the **primal and dual** solution (`KKTSolution`). Oracles: `∇₁f`, `H`, `G` and
    their vector–Jacobian products (by autodiff). `∂₁F` is invertible at a solution
    satisfying the linear independence constraint qualification, strict complementarity
    and second-order sufficiency; it is neither symmetric nor definite, so use an LU or
    GMRES-type solve (the default `"auto"` is dense LU for small problems).

    `z`, `ν` and `λ` may be any pytrees; `ν` (`λ`) must be shaped like the output of `H`
    (`G`). Omit `eq_fun` (`ineq_fun`) when there are no equality (inequality) constraints
    and pass `None` as the corresponding dual.

    **Arguments:**

    - `fun`: the objective `f(z, params_fun)`; or `grad=`: its gradient `∇_z f(z, params_fun)`.
    - `eq_fun`: `H(z, params_eq)`, or `None`.
    - `ineq_fun`: `G(z, params_ineq)`, or `None`.

    **Returns:** `F(x, params_fun, params_eq=None, params_ineq=None)` with `x` a
    `KKTSolution`; the output is a `KKTSolution` of residuals.

    **Example:**

    ```python
    f = lambda z, p: 0.5 * z @ p[0] @ z + p[1] @ z        # QP objective, p = (Q, c)
    H = lambda z, p: p[0] @ z - p[1]                      # A z = b, p = (A, b)
    F = sensitiv.optimality.kkt(f, H)
    residual = F(KKTSolution(z, nu, None), (Q, c), (A, b))
    ```
    """
    gradient = gradient_oracle(fun, grad, "kkt")
    if eq_fun is not None:
        require_callable(eq_fun, "eq_fun", "kkt")
    if ineq_fun is not None:
        require_callable(ineq_fun, "ineq_fun", "kkt")

    def kkt_optimality(x, params_fun, params_eq=None, params_ineq=None):
        z, nu, lam = x
        stationarity = gradient(z, params_fun)
        eq_residual = None
        ineq_residual = None
        if eq_fun is not None:
            h_value, h_vjp = jax.vjp(lambda zz: eq_fun(zz, params_eq), z)
            stationarity = _add(stationarity, h_vjp(nu)[0])
            eq_residual = h_value
        if ineq_fun is not None:
            g_value, g_vjp = jax.vjp(lambda zz: ineq_fun(zz, params_ineq), z)
            stationarity = _add(stationarity, g_vjp(lam)[0])
            ineq_residual = jax.tree_util.tree_map(jnp.multiply, lam, g_value)
        return KKTSolution(stationarity, eq_residual, ineq_residual)

    return kkt_optimality
