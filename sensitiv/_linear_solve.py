"""Linear solves for implicit differentiation: named methods, preconditioners, null spaces, info.

Every solve works on the flattened system `A x = b`, where `A` is given only as a
matrix-vector product and `b` may be any pytree. What sets this module apart from
`jax.scipy.sparse.linalg` is that every solve *reports* how well it did
(`SolveInfo`), as arrays that survive `jit` and `vmap`, and that singular systems with
known zero modes have one defined answer: the minimum-norm solution.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import jax.scipy.sparse.linalg as jssl
from jax.flatten_util import ravel_pytree

from .errors import ImplicitDiffError

__all__ = [
    "SolveInfo",
    "LinearSolver",
    "linear_solve",
    "as_linear_solver",
    "jacobi_preconditioner",
    "METHODS",
]

METHODS = ("auto", "cg", "gmres", "bicgstab", "normal_cg", "cholesky", "lu", "lstsq")
_DENSE_METHODS = ("cholesky", "lu", "lstsq")


class SolveInfo(NamedTuple):
    """What a linear solve reports; every field is an array, so it survives `jit` and `vmap`.

    **Arguments:**

    - `relative_residual`: `‖A x − b‖ / ‖b‖`, measured after the solve with one extra
      matrix-vector product (on the system with the known null space projected out);
      `‖A x‖` itself when `b = 0`. For least-squares solves (`"lstsq"`, `"normal_cg"`,
      and `"auto"` when it fell back to the pseudo-inverse) it is the normal-equations
      residual `‖Aᵀ(A x − b)‖ / ‖Aᵀ b‖`, which vanishes at the minimum-norm least-squares
      answer even when `b` is not in the range of a singular `A`.
    - `iterations`: Krylov iterations taken; `0` for dense methods; `-1` where the
      underlying `jax.scipy` routine (GMRES, BiCGSTAB) does not report it.
    - `converged`: `relative_residual <= tol` (or the absolute residual `<= atol`).

    **Example:**

    ```python
    x, info = sensitiv.linear_solve(lambda v: A @ v, b, "cg")
    if not info.converged:
        print(f"residual {info.relative_residual:.1e} after {info.iterations} iterations")
    ```
    """

    relative_residual: jax.Array
    iterations: jax.Array
    converged: jax.Array


def jacobi_preconditioner(diagonal: jax.Array, floor: float | None = None) -> Callable:
    """Return `v ↦ v / diag(A)`, a Jacobi preconditioner from a known diagonal.

    **Arguments:**

    - `diagonal`: the diagonal of `A` as a flat array.
    - `floor`: entries with `|diag| <= floor` are left unscaled (null directions);
      defaults to `sqrt(eps) * max|diag|`.

    **Returns:** a callable on flat vectors.

    **Example:**

    ```python
    precond = sensitiv.jacobi_preconditioner(jnp.diag(A))
    x, info = sensitiv.linear_solve(lambda v: A @ v, b, "cg", precond=precond)
    ```
    """
    diagonal = jnp.asarray(diagonal)
    if floor is None:
        floor = jnp.sqrt(jnp.finfo(diagonal.dtype).eps) * jnp.max(jnp.abs(diagonal))
    safe = jnp.where(jnp.abs(diagonal) > floor, diagonal, 1.0)
    return lambda v: v / safe


def _default_tol(dtype) -> float:
    # eps^(3/4): 1.8e-12 in float64, 6.4e-6 in float32; leaves room for round-off in
    # the matrix-vector products while keeping the Jacobian accurate to ~1e-10 relative.
    return float(jnp.finfo(dtype).eps) ** 0.75


@dataclasses.dataclass(frozen=True)
class LinearSolver:
    """A linear solve `A x = b` configured once and used by name or as a callable.

    Instances are jaxopt-compatible solve callables, `solver(matvec, b) -> x`, and
    also give the diagnostics with `solver.solve(matvec, b) -> (x, SolveInfo)`.

    **Arguments:**

    - `method`: one of
        - `"auto"` (default): a dense LU solve for systems up to `dense_threshold`
          unknowns, falling back to the minimum-norm `"lstsq"` when LU leaves a residual
          above `tol` (singular systems); CG (if `symmetric`) or GMRES beyond that size;
        - `"cg"`: preconditioned conjugate gradients (symmetric positive semi-definite `A`);
        - `"gmres"`, `"bicgstab"`: `jax.scipy.sparse.linalg` solvers for general `A`;
        - `"normal_cg"`: CG on the normal equations `AᵀA x = Aᵀb` (any `A`, also
          rectangular — then `init` gives the solution's shape; from a zero initial guess
          it converges to the minimum-norm least-squares solution);
        - `"cholesky"`, `"lu"`: dense factorizations of the materialized matrix;
        - `"lstsq"`: dense minimum-norm least squares (SVD pseudo-inverse), exact on
          singular consistent systems.
    - `tol`: relative residual tolerance; default `eps**0.75` of the dtype.
    - `atol`: absolute residual tolerance (default 0).
    - `maxiter`: Krylov iteration limit; default `10 * d` (GMRES: restarts, `d // restart + 10`).
    - `precond`: `None`, `"jacobi"` (diagonal of `A`, probed with `d` matrix-vector
      products in one batch — for large systems pass a callable built with
      `jacobi_preconditioner` from a known diagonal), or a callable `M(v) ≈ A⁻¹v` on flat vectors.
    - `ridge`: solve `(A + ridge·I) x = b` instead; for `"normal_cg"`, the regularized
      normal equations `(AᵀA + ridge·I) x = Aᵀb` (Tikhonov, as jaxopt's `solve_normal_cg`).
    - `init`: initial guess for Krylov methods (pytree like `b`, or flat; for
      `"normal_cg"` on a rectangular `A`, a pytree shaped like the solution, required).
    - `null_space`: `(k, d)` array of orthonormal rows spanning known zero modes of `A`
      (and of `Aᵀ`; true for the symmetric Jacobians of stationarity conditions), e.g.
      rigid translations. They are projected out of `b` and `x`, so the answer is the
      minimum-norm solution and forward and reverse mode agree.
    - `symmetric`: whether `A` is known symmetric; lets `"auto"` pick CG for large systems.
    - `restart`: GMRES restart length.
    - `dense_threshold`: the size up to which `"auto"` solves densely.
    - `warn`: inside `custom_root`-decorated solvers, where the info cannot be returned,
      emit a `RuntimeWarning` (through `jax.debug.callback`, so also under `jit`) when a
      solve does not converge.

    **Example:**

    ```python
    solver = sensitiv.LinearSolver("cg", tol=1e-12, null_space=translations)
    x, info = solver.solve(hvp, b)
    ```
    """

    method: str = "auto"
    tol: float | None = None
    atol: float = 0.0
    maxiter: int | None = None
    precond: Any = None
    ridge: float = 0.0
    init: Any = None
    null_space: Any = None
    symmetric: bool | None = None
    restart: int = 20
    dense_threshold: int = 1024
    warn: bool = True

    def __post_init__(self):
        if self.method not in METHODS:
            raise ImplicitDiffError(
                f"unknown linear solve method {self.method!r}; choose one of {', '.join(METHODS)}"
            )
        if not (self.precond is None or self.precond == "jacobi" or callable(self.precond)):
            raise ImplicitDiffError(
                f"precond must be None, 'jacobi' or a callable, got {self.precond!r}"
            )

    def __call__(self, matvec: Callable, b: Any) -> Any:
        return self.solve(matvec, b)[0]

    def solve(self, matvec: Callable, b: Any) -> tuple[Any, SolveInfo]:
        """Solve `A x = b` with `A` given by `matvec`; returns `(x, SolveInfo)`."""
        if self.method == "normal_cg":
            return self._normal_cg(matvec, b)
        b_flat, unravel = ravel_pytree(b)
        dtype = b_flat.dtype
        d = b_flat.shape[0]

        def mv(v):
            out, _ = ravel_pytree(matvec(unravel(v)))
            return out

        project = _projector(self.null_space, d, dtype)
        ridge = self.ridge

        def op(v):
            out = project(mv(project(v)))
            return out + ridge * v if ridge else out

        rhs = project(b_flat)
        tol = self.tol if self.tol is not None else _default_tol(dtype)
        method = self.method
        least_squares = method == "lstsq"
        iterations = jnp.array(0, jnp.int32)
        residual_op = op
        if method == "auto":
            if d <= self.dense_threshold:
                matrix = _materialize(op, d, dtype)
                x, least_squares = self._dense_auto(matrix, rhs, dtype)
                # The residual check reuses the matrix: a product with it is far cheaper
                # than another pass through F.
                residual_op = lambda v: matrix @ v
            else:
                method = "cg" if self.symmetric else "gmres"
        if method in _DENSE_METHODS:
            matrix = _materialize(op, d, dtype)
            x = _dense_solve(method, matrix, rhs, self.null_space, dtype)
            residual_op = lambda v: matrix @ v
        elif method != "auto":
            x, iterations = self._krylov(method, op, rhs, d, dtype, tol)
        x = project(x)
        info = _info(residual_op, x, rhs, tol, self.atol, iterations, least_squares)
        return unravel(x), info

    # -- pieces -----------------------------------------------------------------------

    def _dense_auto(self, matrix, rhs, dtype):
        lu, pivots = jsl.lu_factor(_deflate(matrix, self.null_space, dtype))
        pivot_sizes = jnp.abs(jnp.diag(lu))
        # Decided from the matrix alone, never from the right-hand side: under vmap over
        # columns the predicate then stays unbatched and `cond` runs one branch only.
        well_posed = jnp.all(jnp.isfinite(pivot_sizes)) & (
            jnp.min(pivot_sizes) > jnp.sqrt(jnp.finfo(dtype).eps) * jnp.max(pivot_sizes)
        )
        # A singular system (a zero mode nobody declared) leaves LU with an arbitrary
        # null-space component or with inf/NaN; the pseudo-inverse then gives the one
        # defined answer, the minimum-norm (least-squares) solution.
        x = jax.lax.cond(
            well_posed,
            lambda: jsl.lu_solve((lu, pivots), rhs),
            lambda: _dense_solve("lstsq", matrix, rhs, None, dtype),
        )
        return x, ~well_posed

    def _krylov(self, method, op, rhs, d, dtype, tol):
        x0 = jnp.zeros(d, dtype)
        if self.init is not None:
            x0 = ravel_pytree(self.init)[0].astype(dtype)
        precond = self._preconditioner(op, d, dtype)
        if method == "cg":
            maxiter = self.maxiter if self.maxiter is not None else 10 * d
            return _cg(op, rhs, x0, precond, tol, self.atol, maxiter)
        if method == "gmres":
            maxiter = self.maxiter if self.maxiter is not None else d // self.restart + 10
            x, _ = jssl.gmres(
                op, rhs, x0, tol=tol, atol=self.atol, restart=min(self.restart, d),
                maxiter=maxiter, M=precond, solve_method="batched",
            )
            return x, jnp.array(-1, jnp.int32)
        if method == "bicgstab":
            maxiter = self.maxiter if self.maxiter is not None else 10 * d
            x, _ = jssl.bicgstab(op, rhs, x0, tol=tol, atol=self.atol, maxiter=maxiter, M=precond)
            return x, jnp.array(-1, jnp.int32)
        raise AssertionError(method)

    def _normal_cg(self, matvec, b):
        """CG on `(AᵀA + ridge·I) x = Aᵀb`; `A` may map a space other than `b`'s."""
        b_flat, _ = ravel_pytree(b)
        dtype = b_flat.dtype
        if self.init is not None:
            x0, unravel_x = ravel_pytree(self.init)
            x0 = x0.astype(dtype)
        else:
            _check_square(matvec, b)
            x0, unravel_x = ravel_pytree(jax.tree_util.tree_map(jnp.zeros_like, b))
        d = x0.shape[0]
        square = d == b_flat.shape[0]
        project = _projector(self.null_space, d, dtype)
        # Known zero modes live in the solution's space; for a square A they are also
        # those of Aᵀ (symmetric Jacobians), and are removed from b as in the other methods.
        project_b = project if square else (lambda v: v)

        def op(v):
            out, _ = ravel_pytree(matvec(unravel_x(project(v))))
            return project_b(out.astype(dtype))

        rhs = project_b(b_flat)
        rop = jax.linear_transpose(op, x0)
        ridge = self.ridge
        normal = lambda v: rop(op(v))[0] + ridge * v
        normal_rhs = rop(rhs)[0]
        tol = self.tol if self.tol is not None else _default_tol(dtype)
        maxiter = self.maxiter if self.maxiter is not None else 10 * d
        # The preconditioner of A does not precondition AᵀA; run plain CG. The normal
        # equations square the condition number: ask them for a tighter residual;
        # SolveInfo reports the residual of the normal equations actually solved.
        x, iterations = _cg(normal, normal_rhs, x0, lambda v: v, tol * 1e-2, self.atol, maxiter)
        x = project(x)
        info = _info(normal, x, normal_rhs, tol, self.atol, iterations)
        return unravel_x(x), info

    def _preconditioner(self, op, d, dtype):
        if self.precond is None:
            return lambda v: v
        if self.precond == "jacobi":
            eye = jnp.eye(d, dtype=dtype)
            diagonal = jax.vmap(lambda e: jnp.vdot(e, op(e)))(eye)
            return jacobi_preconditioner(diagonal)
        return self.precond


def _projector(null_space, d, dtype):
    if null_space is None:
        return lambda v: v
    basis = jnp.asarray(null_space, dtype)
    if basis.ndim == 1:
        basis = basis[None, :]
    if basis.shape[-1] != d:
        raise ImplicitDiffError(
            f"null_space has shape {basis.shape}; expected (k, {d}) rows on the flattened solution"
        )
    return lambda v: v - basis.T @ (basis @ v)


def _check_square(matvec, b):
    message = (
        "normal_cg: the operator does not map b's shape to itself, so the solution's shape "
        "is unknown; pass init= shaped like the solution, e.g. LinearSolver('normal_cg', "
        "init=jnp.zeros(n))"
    )
    try:
        out = jax.eval_shape(matvec, b)
    except (TypeError, ValueError) as err:
        raise ImplicitDiffError(f"{message} ({err})") from None
    same = jax.tree_util.tree_structure(out) == jax.tree_util.tree_structure(b) and all(
        o.shape == jnp.shape(v) for o, v in zip(jax.tree_util.tree_leaves(out), jax.tree_util.tree_leaves(b))
    )
    if not same:
        raise ImplicitDiffError(message)


def _materialize(op, d, dtype):
    eye = jnp.eye(d, dtype=dtype)
    return jax.vmap(op, out_axes=1)(eye)


def _deflate(matrix, null_space, dtype):
    if null_space is None:
        return matrix
    # On the projected system P A P the known zero modes are exactly zero; adding NᵀN
    # makes the matrix invertible without changing the answer on range(P).
    basis = jnp.asarray(null_space, dtype).reshape(-1, matrix.shape[0])
    return matrix + basis.T @ basis


def _dense_solve(method, matrix, rhs, null_space, dtype):
    if method == "lstsq":
        x, *_ = jnp.linalg.lstsq(matrix, rhs)
        return x
    matrix = _deflate(matrix, null_space, dtype)
    if method == "cholesky":
        factor = jsl.cho_factor(matrix)
        return jsl.cho_solve(factor, rhs)
    factor = jsl.lu_factor(matrix)
    return jsl.lu_solve(factor, rhs)


def _cg(op, b, x0, precond, tol, atol, maxiter):
    bnorm = jnp.linalg.norm(b)
    threshold = jnp.maximum(tol * bnorm, atol) ** 2
    r0 = b - op(x0)
    z0 = precond(r0)
    state0 = (x0, r0, z0, jnp.vdot(r0, z0), jnp.zeros((), jnp.int32))

    def cond(state):
        _, r, _, rz, k = state
        rr = jnp.vdot(r, r)
        return (rr > threshold) & (k < maxiter) & jnp.isfinite(rr) & (rz != 0)

    def body(state):
        x, r, p, rz, k = state
        ap = op(p)
        pap = jnp.vdot(p, ap)
        alpha = rz / pap
        x = x + alpha * p
        r = r - alpha * ap
        z = precond(r)
        rz_new = jnp.vdot(r, z)
        p = z + (rz_new / rz) * p
        return x, r, p, rz_new, k + 1

    x, _, _, _, k = jax.lax.while_loop(cond, body, state0)
    return x, k


def _info(op, x, rhs, tol, atol, iterations, least_squares=False):
    residual_vector = op(x) - rhs
    residual = jnp.linalg.norm(residual_vector)
    bnorm = jnp.linalg.norm(rhs)
    relative = jnp.where(bnorm > 0, residual / jnp.where(bnorm > 0, bnorm, 1.0), residual)
    if least_squares is not False:
        # A least-squares answer need not make A x - b vanish (b may leave the range of a
        # singular A, as reverse-mode cotangents do); what must vanish is Aᵀ(A x - b).
        transpose = jax.linear_transpose(op, rhs)
        normal = jnp.linalg.norm(transpose(residual_vector)[0])
        scale = jnp.linalg.norm(transpose(rhs)[0])
        normal_relative = jnp.where(scale > 0, normal / jnp.where(scale > 0, scale, 1.0), normal)
        relative = jnp.where(least_squares, normal_relative, relative)
        residual = jnp.where(least_squares, normal, residual)
    converged = jnp.isfinite(relative) & ((relative <= tol) | (residual <= atol))
    return SolveInfo(relative, jnp.asarray(iterations, jnp.int32), converged)


def as_linear_solver(solve: Any) -> LinearSolver | Callable:
    """Normalize a `solve=` argument: `None`, a method name, a `LinearSolver` or a callable."""
    if solve is None:
        return LinearSolver()
    if isinstance(solve, str):
        return LinearSolver(solve)
    if isinstance(solve, LinearSolver) or callable(solve):
        return solve
    raise ImplicitDiffError(
        f"solve must be None, a method name ({', '.join(METHODS)}), a LinearSolver or a "
        f"callable solve(matvec, b) -> x; got {solve!r}"
    )


def solve_with_info(solve: Any, matvec: Callable, b: Any) -> tuple[Any, SolveInfo]:
    """Run any accepted `solve=` value and return `(x, SolveInfo)`.

    A user callable reports no diagnostics of its own; its residual is measured here
    with one extra matrix-vector product, its iteration count reported as `-1`.
    """
    solver = as_linear_solver(solve)
    if isinstance(solver, LinearSolver):
        return solver.solve(matvec, b)
    x = solver(matvec, b)
    b_flat, _ = ravel_pytree(b)
    x_flat, unravel = ravel_pytree(x)
    op = lambda v: ravel_pytree(matvec(unravel(v)))[0]
    tol = _default_tol(b_flat.dtype)
    return x, _info(op, x_flat, b_flat, tol, 0.0, jnp.array(-1, jnp.int32))


def _warn_unconverged(relative_residual, converged, method):
    import numpy as np

    converged = np.asarray(converged)
    if not converged.all():
        worst = float(np.max(np.asarray(relative_residual)))
        warnings.warn(
            f"sensitiv: the implicit-differentiation linear solve ({method}) did not converge: "
            f"relative residual {worst:.3e}; derivatives may be inaccurate. Use a dense method "
            "('lu', 'lstsq'), a preconditioner, a larger maxiter, or the *_with_info functions "
            "to inspect the solve.",
            RuntimeWarning,
            stacklevel=2,
        )


def solve_reporting(solve: Any) -> Callable:
    """A solve callable for `lax.custom_linear_solve` that warns when it does not converge."""

    def run(matvec, b):
        x, info = solve_with_info(solve, matvec, b)
        solver = as_linear_solver(solve)
        if isinstance(solver, LinearSolver) and solver.warn:
            jax.debug.callback(
                _warn_unconverged, info.relative_residual, info.converged, solver.method
            )
        return x

    return run


def linear_solve(matvec: Callable, b: Any, solve: Any = "auto", **options) -> tuple[Any, SolveInfo]:
    """Solve `A x = b` with `A` given as a matrix-vector product, and report how well.

    **Arguments:**

    - `matvec`: `v ↦ A v` on pytrees shaped like `b`.
    - `b`: the right-hand side, any pytree.
    - `solve`: a method name (see `LinearSolver`), a `LinearSolver`, or a callable
      `solve(matvec, b) -> x`.
    - `**options`: `LinearSolver` fields (with a method name), e.g. `tol=1e-12`,
      `null_space=...`, `precond="jacobi"`.

    **Returns:** `(x, SolveInfo)`.

    **Example:**

    ```python
    x, info = sensitiv.linear_solve(lambda v: A @ v, b, "cg", tol=1e-12)
    assert info.converged
    ```
    """
    if options:
        if not isinstance(solve, str):
            raise ImplicitDiffError("linear_solve options are only accepted with a method name")
        solve = LinearSolver(solve, **options)
    return solve_with_info(solve, matvec, b)
