"""Multi-right-hand-side Krylov solvers sharing one operator, one preconditioner and one deflation space.

`sensitiv.LinearSolver` solves one right-hand side and reports on it; vmapping it over
columns works but shares nothing and runs every column until the slowest converges.
Here the right-hand sides are the rows of one `(m, d)` array and the solvers share:

- the operator (a stored linearization, or the block-sparse matrix recovered once),
- the preconditioner (block-Jacobi from the recovered diagonal blocks, built once),
- a deflation space: Ritz vectors of the smallest eigenvalues, found once by Lanczos
  (which also gives the spectral diagnostics), removed from every column's Krylov space
  (Saad, Yeung, Erhel & Guyomarc'h, SIAM J. Sci. Comput. 21, 2000) and used as the
  warm start of every column,

and each column stops on its own (its update is masked once converged), with its own
iteration count and residual. Without deflation, the columns of a chunk also share their
Krylov space (`block_cg`): each iteration searches along every column's preconditioned
residual at once, which with many columns cuts the iteration count from hundreds to a few.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

__all__ = ["lanczos", "Ritz", "Deflation", "block_pcg", "block_cg", "block_minres", "KrylovReport"]


def _dot(a, b):
    return jnp.sum(a * b, axis=-1)


class Ritz(NamedTuple):
    """Extreme eigen-information from Lanczos: Ritz values (ascending), their residual
    bounds `|β_k s_k|` (each Ritz value is that close to an eigenvalue), and Ritz vectors (rows)."""

    values: jax.Array
    residuals: jax.Array
    vectors: jax.Array


def lanczos(matvec: Callable, v0: jax.Array, steps: int, project: Callable = lambda v: v) -> Ritz:
    """`steps` Lanczos steps with full reorthogonalization on a symmetric operator.

    Breakdown (an invariant subspace, e.g. `steps` close to `d`) is handled by padding the
    tridiagonal matrix with copies of its first diagonal entry: a Rayleigh quotient, which
    lies inside the spectrum and so never changes the extreme Ritz values; the padded Ritz
    vectors are zero and report an infinite residual.
    """
    d = v0.shape[0]
    dtype = v0.dtype
    eps = jnp.finfo(dtype).eps
    v0 = project(v0)
    v0 = v0 / jnp.linalg.norm(v0)
    basis = jnp.zeros((steps + 1, d), dtype).at[0].set(v0)

    def body(j, state):
        basis, alphas, betas, alive, scale = state
        v = basis[j]
        w = project(matvec(v))
        alpha = jnp.vdot(v, w)
        # Full reorthogonalization (twice is enough) keeps the Ritz values free of ghosts;
        # projecting again after it keeps the basis out of the projected-out (zero) modes:
        # the rounding-level part of them left by the subtraction would otherwise grow by
        # 1/β every step once the low end has converged, and Lanczos, which finds extreme
        # eigenvalues from the faintest components, reports spurious Ritz values between 0
        # and λ_min (measured: 0.059 below λ_min = 1.71 for vacancy silicon after 64 steps).
        for _ in range(2):
            w = project(w - basis.T @ (basis @ w))
        beta = jnp.linalg.norm(w)
        scale = jnp.maximum(scale, jnp.abs(alpha) + beta)
        alive_next = alive & (beta > 100 * eps * scale)
        alpha = jnp.where(alive, alpha, alphas[0])
        beta = jnp.where(alive_next, beta, 0.0)
        v_next = jnp.where(alive_next, w / jnp.where(alive_next, beta, 1.0), 0.0)
        return (
            basis.at[j + 1].set(v_next),
            alphas.at[j].set(alpha),
            betas.at[j].set(beta),
            alive_next,
            scale,
        )

    alphas = jnp.zeros(steps, dtype)
    betas = jnp.zeros(steps, dtype)
    # alphas[0] (the padding value) is set at j = 0, where the recurrence is always alive.
    state = (basis, alphas, betas, jnp.array(True), jnp.zeros((), dtype))
    basis, alphas, betas, _, _ = jax.lax.fori_loop(0, steps, body, state)
    tri = jnp.diag(alphas) + jnp.diag(betas[:-1], 1) + jnp.diag(betas[:-1], -1)
    values, s = jnp.linalg.eigh(tri)
    vectors = s.T @ basis[:steps]
    norms = jnp.linalg.norm(vectors, axis=1)
    residuals = jnp.abs(betas[-1] * s[-1, :])
    residuals = jnp.where(norms > 0.5, residuals, jnp.inf)
    return Ritz(values, residuals, vectors)


class Deflation(NamedTuple):
    """A deflation space `W` (rows, orthonormal), `AW = A W`, and `E⁻¹ = (W A Wᵀ)⁻¹`."""

    basis: jax.Array
    a_basis: jax.Array
    e_inv: jax.Array

    @classmethod
    def from_ritz(cls, ritz: Ritz, matvec_batch: Callable, count: int, floor: jax.Array):
        """The `count` smallest Ritz pairs whose value exceeds `floor` (zero modes are not deflated)."""
        usable = (ritz.values > floor) & jnp.isfinite(ritz.residuals)
        # Smallest usable first: push unusable ones to the end of the order.
        order = jnp.argsort(jnp.where(usable, ritz.values, jnp.inf))[:count]
        keep = usable[order]
        basis = jnp.where(keep[:, None], ritz.vectors[order], 0.0)
        a_basis = jnp.where(keep[:, None], matvec_batch(basis), 0.0)
        e = basis @ a_basis.T
        e = 0.5 * (e + e.T) + jnp.diag(jnp.where(keep, 0.0, 1.0))
        return cls(basis, a_basis, jnp.linalg.inv(e))

    def coarse(self, r):
        """`Wᵀ E⁻¹ W r` for rows `r`: the Galerkin solution in the deflation space."""
        return ((r @ self.basis.T) @ self.e_inv.T) @ self.basis

    def remove(self, z):
        """`z − Wᵀ E⁻¹ (A W) z`: makes search directions A-orthogonal to `W`."""
        return z - ((z @ self.a_basis.T) @ self.e_inv.T) @ self.basis


class KrylovReport(NamedTuple):
    """Per column: relative residual (recurrence), iterations, converged, negative curvature met."""

    residual: jax.Array
    iterations: jax.Array
    converged: jax.Array
    negative_curvature: jax.Array


def _start(rhs, project, maxiter, row_maxiter):
    """What every solver here starts from: per-row iteration caps, the projected right-hand
    sides and their norms."""
    m = rhs.shape[0]
    cap = jnp.full(m, maxiter, jnp.int32) if row_maxiter is None else jnp.minimum(row_maxiter, maxiter)
    b = project(rhs)
    return cap, b, jnp.linalg.norm(b, axis=-1)


def _relative(r, bnorm):
    """Per-row relative residual (0-norm rows count as solved by zero)."""
    return jnp.linalg.norm(r, axis=-1) / jnp.where(bnorm > 0, bnorm, 1.0)


def block_pcg(
    matvec_batch: Callable,
    rhs: jax.Array,
    precond: Callable,
    tol: float,
    maxiter: int,
    project: Callable = lambda v: v,
    deflation: Deflation | None = None,
    row_maxiter: jax.Array | None = None,
) -> tuple[jax.Array, KrylovReport]:
    """Preconditioned (deflated) CG on the rows of `rhs` `(m, d)`; each row stops on its own.

    `tol` (relative residual) may be one number or one per row; `row_maxiter` caps
    iterations per row. A row whose curvature `pᵀAp` is not positive (a saddle point)
    stops there and is reported; the caller then switches to MINRES.
    """
    dtype = rhs.dtype
    m = rhs.shape[0]
    tiny = jnp.finfo(dtype).tiny
    cap, b, bnorm = _start(rhs, project, maxiter, row_maxiter)
    threshold = tol * bnorm
    if deflation is not None:
        x = project(deflation.coarse(b))
        r = project(b - matvec_batch(x))
    else:
        x = jnp.zeros_like(b)
        r = b
    z = project(precond(r))
    p = deflation.remove(z) if deflation is not None else z
    rz = _dot(r, z)
    rnorm = jnp.linalg.norm(r, axis=-1)
    active = (rnorm > threshold) & jnp.isfinite(rnorm)
    state = (x, r, p, rz, active, jnp.zeros(m, jnp.int32), jnp.zeros(m, bool), jnp.zeros((), jnp.int32))

    def cond(state):
        *_, active, _, _, k = state
        return jnp.any(active) & (k < maxiter)

    def body(state):
        x, r, p, rz, active, its, negative, k = state
        ap = project(matvec_batch(p))
        pap = _dot(p, ap)
        curved = pap > tiny
        negative = negative | (active & ~curved)
        step = active & curved
        alpha = jnp.where(step, rz / jnp.where(step, pap, 1.0), 0.0)
        x = x + alpha[:, None] * p
        r = r - alpha[:, None] * ap
        z = project(precond(r))
        rz_new = _dot(r, z)
        beta = jnp.where(step, rz_new / jnp.where(rz != 0, rz, 1.0), 0.0)
        p_new = z + beta[:, None] * p
        if deflation is not None:
            p_new = deflation.remove(p_new)
        p = jnp.where(step[:, None], p_new, p)
        rz = jnp.where(step, rz_new, rz)
        rnorm = jnp.linalg.norm(r, axis=-1)
        its = its + step.astype(jnp.int32)
        active = step & (rnorm > threshold) & jnp.isfinite(rnorm) & (its < cap)
        return x, r, p, rz, active, its, negative, k + 1

    x, r, _, _, _, its, negative, _ = jax.lax.while_loop(cond, body, state)
    rel = _relative(r, bnorm)
    return x, KrylovReport(rel, its, rel <= tol, negative)


def _orthonormal_rows(w):
    """Orthonormal rows spanning the rows of `w` `(m, d)`, by the eigendecomposition of the
    Gram matrix; directions that are (numerically) dependent become zero rows, so the
    shape stays static when the block loses rank."""
    g = w @ w.T
    lam, v = jnp.linalg.eigh(0.5 * (g + g.T))
    keep = lam > jnp.finfo(w.dtype).eps * w.shape[0] * jnp.max(lam, initial=0.0)
    scale = jnp.where(keep, 1.0 / jnp.sqrt(jnp.where(keep, lam, 1.0)), 0.0)
    return (v * scale[None, :]).T @ w


def block_cg(
    matvec_batch: Callable,
    rhs: jax.Array,
    precond: Callable,
    tol: float,
    maxiter: int,
    project: Callable = lambda v: v,
    row_maxiter: jax.Array | None = None,
) -> tuple[jax.Array, KrylovReport]:
    """Block preconditioned CG on the rows of `rhs` `(m, d)`: one Krylov space for all rows.

    Each iteration extends the shared search space by up to `m` directions (the
    preconditioned residuals of every row), so a row is solved in the space built by all of
    them: with many right-hand sides the iteration count drops far below single-vector CG's
    (jammed packing, d = 1024: 3 iterations for 512 rows instead of ~330 each). Rank loss
    of the block — rows that converge or whose residuals become dependent — is handled as in
    breakdown-free block CG (Ji & Li, Comput. Math. Appl. 74, 2017): the new block is
    orthonormalized and dependent directions dropped, and `Pᵀ A P` is inverted on its
    range only. Rows stop on their own (converged, or past their cap in `row_maxiter`);
    negative curvature in `Pᵀ A P` (a saddle point) stops the active rows and is reported,
    as in `block_pcg`. Costs `O(d m²)` per iteration besides the products.
    """
    dtype = rhs.dtype
    m = rhs.shape[0]
    cap, b, bnorm = _start(rhs, project, maxiter, row_maxiter)
    threshold = tol * bnorm
    active = (bnorm > threshold) & jnp.isfinite(bnorm) & (cap > 0)
    p = _orthonormal_rows(project(precond(b)) * active[:, None])
    zeros_i = jnp.zeros(m, jnp.int32)
    state = (jnp.zeros_like(b), b, p, active, zeros_i, jnp.zeros(m, bool), jnp.zeros((), jnp.int32))

    def cond(state):
        *_, active, _, _, k = state
        return jnp.any(active) & (k < maxiter)

    def body(state):
        x, r, p, active, its, negative, k = state
        q = project(matvec_batch(p))
        ptq = p @ q.T
        lam, v = jnp.linalg.eigh(0.5 * (ptq + ptq.T))
        top = jnp.max(jnp.abs(lam), initial=0.0)
        curved = lam > 1e2 * jnp.finfo(dtype).eps * top
        bent = jnp.any(lam < -1e2 * jnp.finfo(dtype).eps * top)
        inv = (v * jnp.where(curved, 1.0 / jnp.where(curved, lam, 1.0), 0.0)[None, :]) @ v.T
        negative = negative | (active & bent)
        step = active & ~bent
        alpha = ((r @ p.T) @ inv) * step[:, None]  # (rows, directions)
        x = x + alpha @ p
        r = r - alpha @ q
        rnorm = jnp.linalg.norm(r, axis=-1)
        its = its + step.astype(jnp.int32)
        active = step & (rnorm > threshold) & jnp.isfinite(rnorm) & (its < cap)
        z = project(precond(r)) * active[:, None]
        beta = -(z @ q.T) @ inv
        return x, r, _orthonormal_rows(z + beta @ p), active, its, negative, k + 1

    x, r, _, _, its, negative, _ = jax.lax.while_loop(cond, body, state)
    rel = _relative(r, bnorm)
    return x, KrylovReport(rel, its, rel <= tol, negative)


def block_minres(
    matvec_batch: Callable,
    rhs: jax.Array,
    precond: Callable,
    tol: float,
    maxiter: int,
    project: Callable = lambda v: v,
    row_maxiter: jax.Array | None = None,
) -> tuple[jax.Array, KrylovReport]:
    """Preconditioned MINRES (Paige & Saunders) on the rows of `rhs`, for symmetric
    indefinite or singular operators; the preconditioner must be symmetric positive
    definite. From a zero start on a consistent singular system it converges to the
    minimum-norm solution."""
    dtype = rhs.dtype
    m = rhs.shape[0]
    eps = jnp.finfo(dtype).eps
    cap, b, bnorm = _start(rhs, project, maxiter, row_maxiter)
    y = project(precond(b))
    beta1 = jnp.sqrt(jnp.maximum(_dot(b, y), 0.0))
    zeros = jnp.zeros_like(b)
    scal = jnp.zeros(m, dtype)
    active = (beta1 > 0) & jnp.isfinite(beta1)
    state = dict(
        x=zeros, r1=b, r2=b, y=y, w=zeros, w2=zeros,
        beta=beta1, oldb=scal, dbar=scal, epsln=scal, phibar=beta1,
        cs=-jnp.ones(m, dtype), sn=scal, active=active,
        its=jnp.zeros(m, jnp.int32), k=jnp.zeros((), jnp.int32),
    )
    safe = lambda v: jnp.where(v != 0, v, 1.0)

    def cond(s):
        return jnp.any(s["active"]) & (s["k"] < maxiter)

    def body(s):
        act = s["active"]
        beta, oldb = s["beta"], s["oldb"]
        v = s["y"] / safe(beta)[:, None]
        y = project(matvec_batch(v))
        y = jnp.where((s["k"] >= 1), y - (beta / safe(oldb))[:, None] * s["r1"], y)
        alfa = _dot(v, y)
        y = y - (alfa / safe(beta))[:, None] * s["r2"]
        r1, r2 = s["r2"], y
        y = project(precond(r2))
        oldb = beta
        beta = jnp.sqrt(jnp.maximum(_dot(r2, y), 0.0))
        oldeps = s["epsln"]
        delta = s["cs"] * s["dbar"] + s["sn"] * alfa
        gbar = s["sn"] * s["dbar"] - s["cs"] * alfa
        epsln = s["sn"] * beta
        dbar = -s["cs"] * beta
        gamma = jnp.maximum(jnp.sqrt(gbar**2 + beta**2), eps)
        cs, sn = gbar / gamma, beta / gamma
        phi = cs * s["phibar"]
        phibar = sn * s["phibar"]
        w1, w2 = s["w2"], s["w"]
        w = (v - oldeps[:, None] * w1 - delta[:, None] * w2) / gamma[:, None]
        x = s["x"] + jnp.where(act, phi, 0.0)[:, None] * w
        keep = lambda new, old: jnp.where(act.reshape((-1,) + (1,) * (new.ndim - 1)), new, old)
        new = dict(
            x=x, r1=keep(r1, s["r1"]), r2=keep(r2, s["r2"]), y=keep(y, s["y"]),
            w=keep(w, s["w"]), w2=keep(w2, s["w2"]), beta=keep(beta, s["beta"]),
            oldb=keep(oldb, s["oldb"]), dbar=keep(dbar, s["dbar"]), epsln=keep(epsln, s["epsln"]),
            phibar=keep(phibar, s["phibar"]), cs=keep(cs, s["cs"]), sn=keep(sn, s["sn"]),
        )
        its = s["its"] + act.astype(jnp.int32)
        # phibar is the preconditioned residual norm; beta = 0 is exact convergence.
        active = act & (phibar > tol * beta1) & (beta > 0) & jnp.isfinite(phibar) & (its < cap)
        new.update(active=active, its=its, k=s["k"] + 1)
        return new

    s = jax.lax.while_loop(cond, body, state)
    x = project(s["x"])
    true_r = b - project(matvec_batch(x))
    rel = _relative(true_r, bnorm)
    return x, KrylovReport(rel, s["its"], rel <= 10 * tol, jnp.zeros(m, bool))


def in_chunks(solve: Callable, rows, chunk: int):
    """Apply `solve(rows) -> (x, report)` in chunks of `chunk` rows with `lax.map`.

    `rows` is a pytree of arrays sharing their leading (row) axis; padding rows are zeros.
    """
    m = jax.tree.leaves(rows)[0].shape[0]
    if chunk >= m:
        return solve(rows)
    n_chunks = -(-m // chunk)
    pad = lambda a: jnp.zeros((n_chunks * chunk,) + a.shape[1:], a.dtype).at[:m].set(a)
    chunks = jax.tree.map(lambda a: pad(a).reshape((n_chunks, chunk) + a.shape[1:]), rows)
    xs, reports = jax.lax.map(solve, chunks)
    unchunk = lambda a: a.reshape((n_chunks * chunk,) + a.shape[2:])[:m]
    return unchunk(xs), jax.tree.map(unchunk, reports)
