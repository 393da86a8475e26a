"""Quadratic programs: equality-constrained (one KKT solve), general (ADMM + polish), box."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from ..errors import ImplicitDiffError, InputError
from ..optimality import KKTSolution, kkt, projected_gradient_fixed_point
from .._projections import projection_box
from ._base import OptStep, jit_run, SolverState, iterate, with_implicit_diff

__all__ = ["EqualityQP", "QP", "BoxQP"]


def _quadratic(x, params_obj):
    Q, c = params_obj
    return 0.5 * jnp.vdot(x, Q @ x) + jnp.vdot(c, x)


def _linear_residual(x, params):
    M, v = params
    return M @ x - v


def _check_obj(params_obj, where):
    if not (isinstance(params_obj, (tuple, list)) and len(params_obj) == 2):
        raise InputError(f"{where}: params_obj must be (Q, c), got {type(params_obj).__name__}")
    Q, c = params_obj
    if jnp.ndim(Q) != 2 or jnp.ndim(c) != 1 or jnp.shape(Q) != (jnp.shape(c)[0],) * 2:
        raise InputError(f"{where}: params_obj=(Q, c) needs Q of shape (n, n) and c of shape (n,), got {jnp.shape(Q)}, {jnp.shape(c)}")
    return jnp.shape(c)[0]


def _check_pair(params, n, name, where):
    if params is None:
        return 0
    if not (isinstance(params, (tuple, list)) and len(params) == 2):
        raise InputError(f"{where}: {name} must be a pair (matrix, vector) or None")
    M, v = params
    if jnp.ndim(M) != 2 or jnp.shape(M)[1] != n or jnp.shape(v) != (jnp.shape(M)[0],):
        raise InputError(f"{where}: {name}=(M, v) needs M of shape (m, {n}) and v of shape (m,), got {jnp.shape(M)}, {jnp.shape(v)}")
    return jnp.shape(M)[0]


def qp_kkt_error(sol: KKTSolution, params_obj, params_eq, params_ineq) -> jax.Array:
    """Max-norm of the KKT violations of a QP: stationarity, primal feasibility, dual sign
    and complementary slackness."""
    Q, c = params_obj
    x = sol.primal
    grad = Q @ x + c
    parts = []
    if params_eq is not None:
        A, b = params_eq
        grad = grad + A.T @ sol.eq_dual
        parts.append(jnp.abs(A @ x - b))
    if params_ineq is not None:
        G, h = params_ineq
        lam = sol.ineq_dual
        slack = G @ x - h
        grad = grad + G.T @ lam
        parts += [jnp.maximum(slack, 0), jnp.maximum(-lam, 0), jnp.abs(lam * slack)]
    parts.append(jnp.abs(grad))
    return jnp.max(jnp.concatenate([jnp.ravel(p) for p in parts]))


@dataclasses.dataclass(frozen=True)
class EqualityQP:
    r"""`min_x ½xᵀQx + cᵀx s.t. Ax = b` by one dense solve of the KKT system, differentiated
    through the `kkt` mapping.

    ```
    [Q  Aᵀ] [x]   [−c]
    [A  0 ] [ν] = [ b]
    ```

    `SolverState`: `iterations = 1`, `error` = max-norm KKT residual, `converged` =
    `error <= tol · (1 + ‖c‖∞ + ‖b‖∞)`. A singular KKT matrix (dependent rows of `A`, `Q`
    not positive definite on the null space of `A`) gives a non-finite error, reported as
    not converged.

    **Arguments:**

    - `tol`: relative tolerance of the reported convergence flag.
    - `implicit_diff`: `True` (default) differentiates through the KKT conditions; `False`
      differentiates the dense solve by autodiff (the "unrolled" counterpart).
    - `solve`: the linear solve of implicit differentiation (default `"auto"`: dense LU).
    - `jit`: compile `run` with `jax.jit`, once per solver configuration (default `True`).

    **Example:**

    ```python
    sol, state = EqualityQP().run(None, (Q, c), (A, b))
    sol.primal, sol.eq_dual
    ```
    """

    tol: float = 1e-10
    implicit_diff: bool = True
    solve: Any = None
    jit: bool = True

    def optimality_fun(self, with_eq: bool = True):
        """The `kkt` mapping `F(KKTSolution, params_obj, params_eq)`."""
        return kkt(_quadratic, _linear_residual if with_eq else None)

    @jit_run
    def run(self, init_params: Any = None, params_obj: Any = None, params_eq: Any = None) -> OptStep:
        """Solve; `init_params` is ignored (direct method). Returns `OptStep(KKTSolution, state)`."""
        where = "EqualityQP.run"
        n = _check_obj(params_obj, where)
        m = _check_pair(params_eq, n, "params_eq", where)
        del m

        # Argument names are the kkt mapping's, so custom_root matches them by name.
        def solve(init_params, params_fun, params_eq=None):
            params_obj = params_fun
            Q, c = params_obj
            if params_eq is None:
                x = jnp.linalg.solve(Q, -c)
                sol = KKTSolution(x, None, None)
                scale = jnp.max(jnp.abs(c))
            else:
                A, b = params_eq
                k = A.shape[0]
                matrix = jnp.block([[Q, A.T], [A, jnp.zeros((k, k), Q.dtype)]])
                z = jnp.linalg.solve(matrix, jnp.concatenate([-c, b]))
                sol = KKTSolution(z[:n], z[n:], None)
                scale = jnp.maximum(jnp.max(jnp.abs(c)), jnp.max(jnp.abs(b)))
            error = qp_kkt_error(sol, params_obj, params_eq, None)
            converged = jnp.isfinite(error) & (error <= self.tol * (1 + scale))
            return sol, SolverState(jnp.asarray(1, jnp.int32), error, converged)

        mapping = self.optimality_fun(params_eq is not None)
        run = with_implicit_diff(
            solve, mapping, fixed_point=False, implicit_diff=self.implicit_diff, solve=self.solve, by_name=True
        )
        if params_eq is None:
            return OptStep(*run(init_params, params_obj))
        return OptStep(*run(init_params, params_obj, params_eq))


# --- ADMM (OSQP-style) for l ≤ C x ≤ u, with active-set polishing ------------------------


def _admm_polish_solve(Q, c, C, lower, upper, x0, y0, *, rho, sigma, alpha, inner, maxiter, tol, unroll, error_fun):
    """Minimize ½xᵀQx + cᵀx s.t. lower ≤ Cx ≤ upper. Returns `(x, y, SolverState)` with
    the multiplier `y` (> 0 on active upper bounds, < 0 on active lower bounds)."""
    n, m = Q.shape[0], C.shape[0]
    dtype = Q.dtype
    # Equality rows get a much larger penalty (as in OSQP): they are always active.
    is_eq = lower == upper
    rho_vec = jnp.where(is_eq, 1e3 * rho, rho).astype(dtype)
    matrix = Q + sigma * jnp.eye(n, dtype=dtype) + C.T @ (rho_vec[:, None] * C)
    factor = jax.scipy.linalg.cho_factor(matrix)

    def admm_step(_, state):
        x, z, y = state
        rhs = sigma * x - c + C.T @ (rho_vec * z - y)
        x_tilde = jax.scipy.linalg.cho_solve(factor, rhs)
        z_tilde = C @ x_tilde
        x = alpha * x_tilde + (1 - alpha) * x
        z_relaxed = alpha * z_tilde + (1 - alpha) * z
        z_new = jnp.clip(z_relaxed + y / rho_vec, lower, upper)
        y = y + rho_vec * (z_relaxed - z_new)
        return x, z_new, y

    def polish(x, z, y):
        # Guess the active set from the ADMM iterate (OSQP's rule), then solve the
        # equality-constrained QP on it exactly; inactive multipliers are set to zero.
        active_lower = (z - lower < -y) | is_eq
        active_upper = (upper - z < y) & ~is_eq
        active = active_lower | active_upper
        bound = jnp.where(active_upper, upper, jnp.where(active_lower, lower, 0.0))
        act = active.astype(dtype)
        kkt_matrix = jnp.block([[Q, C.T * act[None, :]], [act[:, None] * C, jnp.diag(1 - act)]])
        # lu_factor/lu_solve: same LAPACK solve as jnp.linalg.solve, half the compile time.
        sol = jax.scipy.linalg.lu_solve(jax.scipy.linalg.lu_factor(kkt_matrix), jnp.concatenate([-c, act * bound]))
        return sol[:n], sol[n:]

    def step(carry):
        state, best_x, best_y, best_error = carry
        state = jax.lax.fori_loop(0, inner, admm_step, state)
        x, z, y = state
        px, py = polish(x, z, y)
        admm_error = error_fun(x, y)
        polish_error = error_fun(px, py)
        use_polish = polish_error < admm_error  # False when NaN (singular reduced system)
        cand_x = jnp.where(use_polish, px, x)
        cand_y = jnp.where(use_polish, py, y)
        cand_error = jnp.where(use_polish, polish_error, admm_error)
        better = cand_error < best_error
        best_x = jnp.where(better, cand_x, best_x)
        best_y = jnp.where(better, cand_y, best_y)
        best_error = jnp.where(better, cand_error, best_error)
        return (state, best_x, best_y, best_error), best_error

    z0 = jnp.clip(C @ x0, lower, upper)
    init = ((x0, z0, y0), x0, y0, jnp.asarray(jnp.inf, dtype))
    carry, state = iterate(step, init, maxiter=maxiter, tol=tol, unroll=unroll)
    _, x, y, _ = carry
    return x, y, state._replace(iterations=state.iterations * inner)


@dataclasses.dataclass(frozen=True)
class QP:
    r"""`min_x ½xᵀQx + cᵀx s.t. Ax = b, Gx ≤ h` by ADMM (OSQP-style splitting) with
    active-set polishing, differentiated through the `kkt` mapping.

    Every `inner` ADMM iterations the active set is guessed and the equality-constrained
    QP on it is solved exactly ("polishing"); the best point so far is kept. On
    non-degenerate problems polishing reaches the solution to round-off as soon as the
    active set is right. `Q` must be positive semi-definite (positive definite on the
    feasible directions for a unique solution and an invertible KKT Jacobian).
    `SolverState.error` is the max-norm of the KKT violations (stationarity, primal
    feasibility, `λ ≥ 0`, `λ ∘ (Gx − h)`); `iterations` counts ADMM iterations.

    **Arguments:**

    - `tol`: KKT tolerance.
    - `maxiter`: maximum number of polishing rounds (`maxiter · inner` ADMM iterations).
    - `inner`: ADMM iterations between polishing attempts.
    - `rho`, `sigma`, `alpha`: ADMM penalty, proximal regularization, over-relaxation.
    - `implicit_diff`: `True` (default) differentiates through the KKT conditions; `False`
      differentiates the ADMM iterations and the final polishing solve by autodiff.
    - `solve`: the linear solve of implicit differentiation (default `"auto"`: dense LU).
    - `jit`: compile `run` with `jax.jit`, once per solver configuration (default `True`).

    **Example:**

    ```python
    sol, state = QP().run(None, (Q, c), (A, b), (G, h))
    x, nu, lam = sol
    jax.jacobian(lambda h: QP().run(None, (Q, c), (A, b), (G, h)).params.primal)(h)
    ```
    """

    tol: float = 1e-10
    maxiter: int = 200
    inner: int = 25
    rho: float = 0.1
    sigma: float = 1e-6
    alpha: float = 1.6
    implicit_diff: bool = True
    solve: Any = None
    jit: bool = True

    def optimality_fun(self, with_eq: bool = True, with_ineq: bool = True):
        """The `kkt` mapping `F(KKTSolution, params_obj, params_eq, params_ineq)`."""
        return kkt(_quadratic, _linear_residual if with_eq else None, _linear_residual if with_ineq else None)

    @jit_run
    def run(self, init_params: Any = None, params_obj: Any = None, params_eq: Any = None, params_ineq: Any = None) -> OptStep:
        """Solve from `init_params` (a `KKTSolution` warm start, or `None`).

        **Returns:** `OptStep(KKTSolution(x, ν, λ), SolverState)`; `ν` (`λ`) is `None`
        when `params_eq` (`params_ineq`) is `None`.
        """
        where = "QP.run"
        n = _check_obj(params_obj, where)
        m_eq = _check_pair(params_eq, n, "params_eq", where)
        m_in = _check_pair(params_ineq, n, "params_ineq", where)
        if init_params is not None and not isinstance(init_params, KKTSolution):
            raise InputError(f"{where}: init_params must be a KKTSolution or None")

        def solve(init_params, params_fun, params_eq=None, params_ineq=None):
            params_obj = params_fun
            Q, c = params_obj
            dtype = jnp.result_type(Q, c)
            rows, lower, upper = [], [], []
            if params_eq is not None:
                A, b = params_eq
                rows.append(A), lower.append(b), upper.append(b)
            if params_ineq is not None:
                G, h = params_ineq
                rows.append(G), lower.append(jnp.full_like(h, -jnp.inf)), upper.append(h)
            C = jnp.concatenate(rows) if rows else jnp.zeros((0, n), dtype)
            lo = jnp.concatenate(lower) if rows else jnp.zeros((0,), dtype)
            up = jnp.concatenate(upper) if rows else jnp.zeros((0,), dtype)
            if init_params is None:
                x0, y0 = jnp.zeros(n, dtype), jnp.zeros(m_eq + m_in, dtype)
            else:
                x0 = init_params.primal
                duals = [d for d in (init_params.eq_dual, init_params.ineq_dual) if d is not None]
                y0 = jnp.concatenate(duals) if duals else jnp.zeros((0,), dtype)

            def to_solution(x, y):
                return KKTSolution(
                    x,
                    y[:m_eq] if params_eq is not None else None,
                    y[m_eq:] if params_ineq is not None else None,
                )

            def error_fun(x, y):
                return qp_kkt_error(to_solution(x, y), params_obj, params_eq, params_ineq)

            x, y, state = _admm_polish_solve(
                Q, c, C, lo, up, x0, y0, rho=self.rho, sigma=self.sigma, alpha=self.alpha,
                inner=self.inner, maxiter=self.maxiter, tol=self.tol, unroll=not self.implicit_diff,
                error_fun=error_fun,
            )
            return to_solution(x, y), state

        mapping = self.optimality_fun(params_eq is not None, params_ineq is not None)
        run = with_implicit_diff(
            solve, mapping, fixed_point=False, implicit_diff=self.implicit_diff, solve=self.solve, by_name=True
        )
        return OptStep(*run(init_params, params_obj, params_eq, params_ineq))


@dataclasses.dataclass(frozen=True)
class BoxQP:
    r"""`min_x ½xᵀQx + cᵀx s.t. lower ≤ x ≤ upper` by ADMM with active-set polishing,
    differentiated through `projected_gradient_fixed_point(f, projection_box)`.

    Returns the primal solution only (the box multipliers are not needed: the projected
    gradient mapping `T(x) = clip(x − η(Qx + c), lower, upper)` characterizes the
    solution). Derivatives with respect to `Q`, `c`, `lower` and `upper`.
    `SolverState.error` is `‖x − clip(x − (Qx + c), lower, upper)‖∞`.

    **Arguments:**

    - `stepsize`: `η` of the implicit mapping (any `η > 0` has the same fixed points;
      `1/‖Q‖` makes the linear system best conditioned). Default 1.
    - `tol`, `maxiter`, `inner`, `rho`, `sigma`, `alpha`, `implicit_diff`, `solve`, `jit`: as in `QP`.

    **Example:**

    ```python
    x, state = BoxQP().run(None, (Q, c), (0.0 * c, jnp.ones_like(c)))
    ```
    """

    stepsize: float = 1.0
    tol: float = 1e-10
    maxiter: int = 200
    inner: int = 25
    rho: float = 0.1
    sigma: float = 1e-6
    alpha: float = 1.6
    implicit_diff: bool = True
    solve: Any = None
    jit: bool = True

    def optimality_fun(self):
        """The fixed-point map `T(x, params_box, params_obj)`."""
        return projected_gradient_fixed_point(_quadratic, projection_box, stepsize=self.stepsize)

    @jit_run
    def run(self, init_params: Any = None, params_obj: Any = None, params_box: Any = None) -> OptStep:
        """Solve from `init_params` (array or `None`); `params_box = (lower, upper)`, arrays
        of shape `(n,)` or scalars."""
        where = "BoxQP.run"
        n = _check_obj(params_obj, where)
        if not (isinstance(params_box, (tuple, list)) and len(params_box) == 2):
            raise InputError(f"{where}: params_box must be (lower, upper)")

        def solve(init_params, *params):
            params_box, params_obj = params
            Q, c = params_obj
            dtype = jnp.result_type(Q, c)
            lower = jnp.broadcast_to(jnp.asarray(params_box[0], dtype), (n,))
            upper = jnp.broadcast_to(jnp.asarray(params_box[1], dtype), (n,))
            x0 = jnp.zeros(n, dtype) if init_params is None else init_params
            x0 = jnp.clip(x0, lower, upper)

            def error_fun(x, y):
                del y
                return jnp.max(jnp.abs(x - jnp.clip(x - (Q @ x + c), lower, upper)))

            x, _, state = _admm_polish_solve(
                Q, c, jnp.eye(n, dtype=dtype), lower, upper, x0, jnp.zeros(n, dtype), rho=self.rho,
                sigma=self.sigma, alpha=self.alpha, inner=self.inner, maxiter=self.maxiter, tol=self.tol,
                unroll=not self.implicit_diff, error_fun=error_fun,
            )
            return x, state

        if not self.stepsize > 0:
            raise ImplicitDiffError(f"BoxQP: stepsize must be > 0, got {self.stepsize!r}")
        run = with_implicit_diff(solve, self.optimality_fun(), fixed_point=True, implicit_diff=self.implicit_diff, solve=self.solve)
        return OptStep(*run(init_params, params_box, params_obj))
