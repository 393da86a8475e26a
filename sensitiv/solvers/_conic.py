"""A small dense conic solver: ADMM on the homogeneous self-dual embedding (SCS-style)
followed by semismooth Newton polishing of the residual map."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from ..errors import InputError
from ..optimality import ConicPoint, Cones, conic_residual, conic_solution, projection_dual_cone
from ._base import OptStep, jit_run, iterate, with_implicit_diff

__all__ = ["ConicSolver"]


@dataclasses.dataclass(frozen=True)
class ConicSolver:
    r"""`min cᵀx s.t. Ax + s = b, s ∈ K` (and its dual), differentiated through
    `conic_residual(cones)`.

    Each round runs `inner` iterations of ADMM on the homogeneous self-dual embedding
    (O'Donoghue et al. 2016, the method of SCS; one dense LU factorization of `I + Q`),
    then up to `newton_steps` semismooth Newton steps on the residual map
    `F((x, w), A, b, c)` from the current estimate; the point with the smallest residual
    so far is kept. `SolverState.error` is `‖F‖∞` there, `iterations` counts ADMM
    iterations. Infeasible or unbounded programs have no root: the error stays large
    and `converged` is `False`.

    **Arguments:**

    - `cones`: the `Cones` describing the rows of `A`.
    - `tol`: tolerance on `‖F‖∞`.
    - `maxiter`: maximum number of rounds.
    - `inner`: ADMM iterations per round.
    - `newton_steps`: Newton steps per round (0 disables polishing).
    - `alpha`: ADMM over-relaxation.
    - `implicit_diff`: `True` (default) differentiates through `conic_residual`; `False`
      differentiates the iterations by autodiff.
    - `solve`: the linear solve of implicit differentiation (default `"auto"`: dense LU).
    - `jit`: compile `run` with `jax.jit`, once per solver configuration (default `True`).

    **Returns of `run`:** `OptStep(ConicSolution(x, y, s), state)`.

    **Example:**

    ```python
    cones = Cones(zero=1, nonnegative=3)
    sol, state = ConicSolver(cones).run(A, b, c)
    dx_db = jax.jacobian(lambda b: ConicSolver(cones).run(A, b, c).params.x)(b)
    ```
    """

    cones: Cones
    tol: float = 1e-10
    maxiter: int = 200
    inner: int = 50
    newton_steps: int = 5
    alpha: float = 1.5
    implicit_diff: bool = True
    solve: Any = None
    jit: bool = True

    def optimality_fun(self):
        """The residual map `F(point, A, b, c)`."""
        return conic_residual(self.cones)

    @jit_run
    def run(self, A: jax.Array, b: jax.Array, c: jax.Array, init_params: ConicPoint | None = None) -> OptStep:
        """Solve the conic program with data `(A, b, c)`; `init_params` is an optional
        `ConicPoint` warm start for the Newton polishing."""
        cones = self.cones
        m, n = jnp.shape(A)
        if m != cones.dim or jnp.shape(b) != (m,) or jnp.shape(c) != (n,):
            raise InputError(
                f"ConicSolver.run: A {jnp.shape(A)}, b {jnp.shape(b)}, c {jnp.shape(c)} do not match "
                f"{cones.dim} cone rows"
            )
        residual = conic_residual(cones)

        def solve(init_params, A, b, c):
            dtype = jnp.result_type(A, b, c)
            size = n + m + 1
            Q = jnp.zeros((size, size), dtype)
            Q = Q.at[:n, n : n + m].set(A.T).at[:n, -1].set(c)
            Q = Q.at[n : n + m, :n].set(-A).at[n : n + m, -1].set(b)
            Q = Q.at[-1, :n].set(-c).at[-1, n : n + m].set(-b)
            factor = jax.scipy.linalg.lu_factor(jnp.eye(size, dtype=dtype) + Q)

            def project(u):
                return jnp.concatenate(
                    [u[:n], projection_dual_cone(u[n : n + m], cones), jnp.maximum(u[-1:], 0)]
                )

            def admm_step(_, state):
                u, v = state
                u_tilde = jax.scipy.linalg.lu_solve(factor, u + v)
                relaxed = self.alpha * u_tilde + (1 - self.alpha) * u
                u_new = project(relaxed - v)
                v = v - relaxed + u_new
                return u_new, v

            flat0, unravel = ravel_pytree(ConicPoint(jnp.zeros(n, dtype), jnp.zeros(m, dtype)))

            def flat_residual(z):
                return ravel_pytree(residual(unravel(z), A, b, c))[0]

            def error_of(r):
                e = jnp.max(jnp.abs(r))
                return jnp.where(jnp.isfinite(e), e, jnp.inf)

            def error(z):
                return error_of(flat_residual(z))

            def newton(z, e):
                eye = jnp.eye(z.shape[0], dtype=dtype)

                def body(_, carry):
                    z, e = carry
                    r, linear = jax.linearize(flat_residual, z)
                    jac = jax.vmap(linear, out_axes=1)(eye)
                    trial = z - jax.scipy.linalg.lu_solve(jax.scipy.linalg.lu_factor(jac), r)
                    e_trial = error(trial)
                    # Keep the step only if it lowers the residual (the Newton model is
                    # only trusted once the active set is identified).
                    better = e_trial < e
                    return jnp.where(better, trial, z), jnp.where(better, e_trial, e)

                return jax.lax.fori_loop(0, self.newton_steps, body, (z, e))

            def to_point(u, v):
                tau = jnp.maximum(u[-1], jnp.finfo(dtype).tiny)
                x, y, s = u[:n] / tau, u[n : n + m] / tau, v[n : n + m] / tau
                return jnp.concatenate([x, y - s])

            def step(carry):
                state, best, best_error = carry
                state = jax.lax.fori_loop(0, self.inner, admm_step, state)
                candidate = to_point(*state)
                cand_error = error(candidate)
                better = cand_error < best_error
                best = jnp.where(better, candidate, best)
                best_error = jnp.where(better, cand_error, best_error)
                if self.newton_steps:
                    best, best_error = newton(best, best_error)
                return (state, best, best_error), best_error

            u0 = jnp.zeros(size, dtype).at[-1].set(1.0)
            if init_params is None:
                best0, best_error0 = flat0, jnp.asarray(jnp.inf, dtype)
            else:
                best0 = ravel_pytree(init_params)[0].astype(dtype)
                best_error0 = error(best0)
            carry, state = iterate(
                step, ((u0, u0), best0, best_error0), maxiter=self.maxiter, tol=self.tol,
                unroll=not self.implicit_diff,
            )
            return unravel(carry[1]), state._replace(iterations=state.iterations * self.inner)

        run = with_implicit_diff(
            solve, residual, fixed_point=False, implicit_diff=self.implicit_diff, solve=self.solve, by_name=True
        )
        point, state = run(init_params, A, b, c)
        return OptStep(conic_solution(point, cones), state)
