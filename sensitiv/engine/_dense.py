"""Dense strategy: materialize `K = ∂₁F` once, factorize once, solve every column against it.

The known null space `Z` (orthonormal rows) is deflated: `M = P K P + s ZᵀZ` with
`P = I − ZᵀZ` is invertible when `Z` spans all zero modes, and `M⁻¹` agrees with the
pseudo-inverse of `K` on `range(P)` — so the answer is the minimum-norm one.

`solve_all` is the strategy's whole solve path inside the compiled program. Which factorization:

- symmetric: Cholesky of `sign · M` (`sign = +1` when `F = ∇E`, so a minimum is positive
  definite). When it fails (indefinite: a saddle), or inverse iteration on it reveals a
  numerically zero eigenvalue (an unexpected zero mode: a rattler, a mechanism), the
  symmetric eigendecomposition takes over: pseudo-inverse and exact spectrum;
- nonsymmetric: LU, falling back to the SVD pseudo-inverse when it reveals a singular matrix.

The fallback decomposition runs only when needed (`lax.cond`); the factor is a pytree,
and `solve` dispatches on it, so later solves (the error estimate) reuse it.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from . import _linalg as la
from ._assembly import Assembly, Solved, Systems
from ._diagnostics import VERDICT_MINIMUM, VERDICT_REGULAR, VERDICT_SADDLE, VERDICT_SINGULAR, Spectrum
from ._sharding import map_rows

__all__ = ["DenseFactor", "factorize", "solve", "solve_all"]

class DenseFactor(NamedTuple):
    """A factorization of `sign · P K P` (+ deflation), whichever branch produced it.

    `fallback` selects the decomposition `(left, values, right)` — eigen (`V, w`, `right`
    None: `Vᵀ`) or singular (`U, s, Vᵀ`) with zero modes inverted to zero — over `primary`
    (the Cholesky factor `L`, or `L⁻¹` where matrix products beat triangular solves; or the
    LU factor and permutation).
    """

    fallback: jax.Array
    primary: tuple
    left: jax.Array
    inv_values: jax.Array
    right: jax.Array | None


def _prefer_inverse() -> bool:
    """Whether solves go through `L⁻¹` (matrix products) instead of triangular solves.

    GPUs run triangular solves with many right-hand sides far below matrix-product speed;
    on CPUs they cost about as much as the products and building `L⁻¹` is pure overhead
    (measured at d = 256: Cholesky 0.7 ms, triangular solves for 129 columns 0.9 ms,
    `L⁻¹` alone 1.3 ms)."""
    return jax.default_backend() != "cpu"


def _orthonormal_columns(v):
    q, _ = jnp.linalg.qr(v)
    return q


def _ritz(apply, v):
    """Rayleigh–Ritz of the symmetric `apply` on the orthonormal columns of `v` `(d, k)`:
    Ritz values (ascending), Ritz vectors, and the residual norm of each."""
    av = apply(v)
    h = v.T @ av
    theta, y = jnp.linalg.eigh(0.5 * (h + h.T))
    vecs = v @ y
    res = jnp.linalg.norm(av @ y - vecs * theta[None, :], axis=0)
    return theta, vecs, res


def lowest_eigenvalue(apply, apply_inverse, v0, project, tau, rtol: float = 1e-3, max_steps: int = 60):
    """Smallest eigenvalue of a symmetric positive definite operator on `range(project)`, by
    block inverse (subspace) iteration with Rayleigh–Ritz; returns `(λ, ‖residual‖)`.

    A block of `k` vectors converges at the rate `λ₁/λₖ₊₁` per step instead of `λ₁/λ₂`,
    which matters in the dense low spectra of jammed packings; each step costs two
    triangular solves with `k` right-hand sides. It stops when the residual of the lowest
    Ritz pair is below `rtol · λ` (the Ritz value is then accurate to about `rtol²·λ²/gap`),
    or at once when `λ ≤ tau` (a zero mode: the caller falls back to a full decomposition).
    """

    def step(state):
        v, _, _, i = state
        v = _orthonormal_columns(project(apply_inverse(v)))
        theta, vecs, res = _ritz(apply, v)
        return vecs, theta[0], res[0], i + 1

    def unconverged(state):
        _, lam, res, i = state
        return (i < max_steps) & (res > rtol * lam) & (lam > tau)

    v0 = _orthonormal_columns(project(v0))
    theta, vecs, res = _ritz(apply, v0)
    _, lam, res, _ = jax.lax.while_loop(unconverged, step, step((vecs, theta[0], res[0], 0)))
    return lam, res


def largest_eigenvalue(apply, v0, project, steps: int = 4):
    """Largest eigenvalue of a symmetric PSD operator on `range(project)` (block power
    iteration with Rayleigh–Ritz: a lower bound, typically within a few percent; it only
    sets the scale of the zero-mode threshold)."""
    v = _orthonormal_columns(project(v0))
    for _ in range(steps):
        v = _orthonormal_columns(project(apply(v)))
    theta, _, _ = _ritz(apply, v)
    return theta[-1]


def factorize(k, proj: la.NullProjector, symmetric: bool, sign: int, singular_rtol: float, rhs,
              seed: int = 0, block: int = 8):
    """Factorize `K` once; return `(DenseFactor, Spectrum)`.

    `proj` projects out the known zero modes and the vanishing rows; `rhs` `(d, m)` (the
    right-hand sides to come) is checked against any further zero modes detected. The
    spectral diagnostics use a block of `block` vectors (see `lowest_eigenvalue`).
    """
    d, dtype = k.shape[0], k.dtype
    # Deflation: sign · P K P + s (I − P) is invertible when P removes every zero mode, and its
    # inverse agrees with the pseudo-inverse of K on range(P). `s` only needs K's scale, taken
    # from K's diagonal so that `M` is one pass over d × d (`P K P` is rebuilt from `M` in
    # the fallback, the only place that needs it). Not symmetrized: Cholesky reads one
    # triangle, `eigh` symmetrizes, and an asymmetry beyond rounding is reported by the
    # caller's symmetry probe.
    scale = jnp.maximum(jnp.max(jnp.abs(jnp.diag(k)) * proj.keep), jnp.finfo(dtype).tiny)
    complement = proj.complement()
    m = sign * proj.sandwich(k, symmetric) + scale * complement
    k_p = lambda: m - scale * complement
    width = max(1, min(block, (d - proj.n_known) // 2))
    v0 = la.probe_vectors(seed, width, d, dtype).T

    def consistency(null_vectors, mask):
        if rhs is None:
            return jnp.zeros((), dtype)
        r = proj.cols(rhs)
        rn = jnp.linalg.norm(r, axis=0)
        inside = jnp.linalg.norm(jnp.where(mask[:, None], null_vectors.T @ r, 0.0), axis=0)
        frac = jnp.where(rn > 0, inside / jnp.where(rn > 0, rn, 1.0), 0.0)
        return jnp.max(frac, initial=0.0)

    if proj.n_known >= d:  # every mode is a known zero mode: M = s I, nothing to analyse
        if symmetric:
            chol = la.cholesky(m)
            primary = (la.lower_inverse(chol),) if _prefer_inverse() else (chol,)
        else:
            primary = la.lu_factor(m)
        zeros = jnp.zeros((d, d), dtype)
        factor = DenseFactor(jnp.asarray(False), primary, zeros, jnp.ones(d, dtype), None if symmetric else zeros)
        return factor, Spectrum.without_free_modes(dtype)
    if symmetric:
        return _factorize_symmetric(m, k_p, proj, singular_rtol, v0, consistency)
    return _factorize_general(m, k_p, proj, singular_rtol, v0, consistency)


def _factorize_symmetric(m, k_p, proj, singular_rtol, v0, consistency, rtol: float = 1e-3):
    """Cholesky of `M`; its spectrum by block inverse iteration, or by `eigh` of `P K P` when
    Cholesky fails (a saddle), finds a numerically zero eigenvalue (a zero mode) or does
    not resolve `λ_min` to `rtol` (clustered low spectra): exact then."""
    d, dtype, project = m.shape[0], m.dtype, proj.cols
    n_masked = proj.masked_beyond_known()
    chol = la.cholesky(m)
    # a failed factorization is NaN throughout; the fallback then replaces every use of it
    chol_ok = jnp.all(jnp.isfinite(jnp.diag(chol)))
    if _prefer_inverse():
        l_inv = la.lower_inverse(chol)
        l_inv = jnp.where(jnp.all(jnp.isfinite(l_inv)), l_inv, 0.0)
        primary = (l_inv,)
        inv_apply = lambda v: l_inv.T @ (l_inv @ v)
    else:
        primary = (chol,)
        inv_apply = lambda v: la.cho_solve(chol, v)
    lam_max_est = largest_eigenvalue(lambda v: m @ v, v0, project)
    tau_est = singular_rtol * lam_max_est
    # λ_min of P M P by block inverse iteration: a numerically zero eigenvalue dominates at once.
    lam_chol, res_chol = lowest_eigenvalue(lambda v: m @ v, inv_apply, v0, project, tau_est, rtol)
    resolved = res_chol <= rtol * lam_chol
    use_fallback = ~chol_ok | ~(lam_chol > tau_est) | ~jnp.isfinite(lam_chol) | ~resolved

    def eig(_):
        w, v = jnp.linalg.eigh(k_p())
        lam_max = jnp.max(jnp.abs(w))
        tau = singular_rtol * lam_max
        null = jnp.abs(w) <= tau
        inv = jnp.where(null, 0.0, 1.0 / jnp.where(null, 1.0, w))
        # the projected-out modes are zero eigenvalues of P K P too
        detected = (jnp.sum(null) - proj.excluded).astype(jnp.int32) - proj.n_known
        negative = jnp.sum(w < -tau).astype(jnp.int32)
        verdict = jnp.where(negative > 0, VERDICT_SADDLE, jnp.where(detected > 0, VERDICT_SINGULAR, VERDICT_MINIMUM))
        found = (jnp.min(jnp.where(null, jnp.inf, w)), lam_max, jnp.zeros((), dtype), detected,
                 negative, consistency(v, null), verdict.astype(jnp.int32))
        return found, v, inv

    def cholesky_spectrum(_):
        # Right-hand sides are projected off the known modes and the vanishing rows
        # (where they vanish too when consistent: checked by the column residuals), so
        # only further zero modes could hold any of them, and there are none.
        verdict = jnp.where(n_masked > 0, VERDICT_SINGULAR, VERDICT_MINIMUM).astype(jnp.int32)
        found = (lam_chol, lam_max_est, res_chol, n_masked, jnp.zeros((), jnp.int32),
                 jnp.zeros((), dtype), verdict)
        return found, jnp.zeros((d, d), dtype), jnp.ones(d, dtype)

    found, v, inv = jax.lax.cond(use_fallback, eig, cholesky_spectrum, None)
    return DenseFactor(use_fallback, primary, v, inv, None), Spectrum(*found)


def _factorize_general(m, k_p, proj, singular_rtol, v0, consistency, rtol: float = 1e-3):
    """LU of `M`; the smallest singular value by block inverse iteration on `MᵀM`, or the
    SVD of `P K P` when LU fails, finds a numerically zero singular value or does not
    resolve it to `rtol`."""
    d, dtype, project = m.shape[0], m.dtype, proj.cols
    tiny = jnp.finfo(dtype).tiny
    lu, perm = la.lu_factor(m)
    lu_ok = jnp.all(jnp.isfinite(lu)) & jnp.all(jnp.abs(jnp.diag(lu)) > 0)
    lu = jnp.where(lu_ok, lu, jnp.eye(d, dtype=dtype))
    primary = (lu, perm)
    # σ² are the eigenvalues of MᵀM: the smallest by block inverse iteration with the LU factors.
    gram = lambda v: m.T @ (m @ v)
    inv_apply = lambda v: la.lu_solve(primary, la.lu_solve(primary, v, transpose=True))
    sig_max_est = jnp.sqrt(jnp.abs(largest_eigenvalue(gram, v0, project)))
    tau_est = singular_rtol * sig_max_est
    lam, lam_res = lowest_eigenvalue(gram, inv_apply, v0, project, tau_est**2, rtol)
    sig_min_lu = jnp.sqrt(jnp.maximum(lam, 0.0))
    sig_min_res = 0.5 * lam_res / jnp.maximum(sig_min_lu, tiny)
    resolved = lam_res <= rtol * lam
    use_fallback = ~lu_ok | ~(sig_min_lu > tau_est) | ~jnp.isfinite(sig_min_lu) | ~resolved

    def svd(_):
        return tuple(jnp.linalg.svd(k_p()))

    def skip(_):
        return jnp.zeros((d, d), dtype), jnp.ones(d, dtype), jnp.zeros((d, d), dtype)

    u, s, vt = jax.lax.cond(use_fallback, svd, skip, None)
    tau = singular_rtol * jnp.max(s)
    null = s <= tau
    inv = jnp.where(null, 0.0, 1.0 / jnp.where(null, 1.0, s))
    detected_s = (jnp.sum(null) - proj.excluded).astype(jnp.int32) - proj.n_known
    f = use_fallback
    spectrum = Spectrum(
        lambda_min=jnp.where(f, jnp.min(jnp.where(null, jnp.inf, s)), sig_min_lu),
        lambda_max=jnp.where(f, jnp.max(s), sig_max_est),
        lambda_min_residual=jnp.where(f, 0.0, sig_min_res),
        detected_null=jnp.where(f, detected_s, 0).astype(jnp.int32),
        negative=jnp.zeros((), jnp.int32),
        inconsistency=jnp.where(f, consistency(u, null), 0.0),
        verdict=jnp.where(f & (detected_s > 0), VERDICT_SINGULAR, VERDICT_REGULAR).astype(jnp.int32),
    )
    # K X = R with K = U S Vᵀ: X = V S⁺ Uᵀ R  -> left = Vᵀ.T, right = Uᵀ
    return DenseFactor(f, primary, vt.T, inv, u.T), spectrum


def solve(factor: DenseFactor, proj: la.NullProjector, sign: int, symmetric: bool, rhs, transpose: bool = False):
    """Minimum-norm solution of `K X = R` (`Kᵀ X = R` with `transpose`) for `R` `(d, m)`."""
    project = proj.cols
    r = project(sign * rhs)

    def by_fallback(r):
        if factor.right is None:  # symmetric: K = V diag(w) Vᵀ
            return factor.left @ (factor.inv_values[:, None] * (factor.left.T @ r))
        if transpose:
            # Kᵀ = right.T · diag(inv)⁻¹ · left.T
            return factor.right.T @ (factor.inv_values[:, None] * (factor.left.T @ r))
        return factor.left @ (factor.inv_values[:, None] * (factor.right @ r))

    def by_primary(r):
        if symmetric and _prefer_inverse():
            l_inv = factor.primary[0]
            return l_inv.T @ (l_inv @ r)
        if symmetric:
            return la.cho_solve(factor.primary[0], r)
        return la.lu_solve(factor.primary, r, transpose)

    return project(jax.lax.cond(factor.fallback, by_fallback, by_primary, r))


def solve_all(plan, asm: Assembly, proj: la.NullProjector, n_masked, sys: Systems) -> Solved:
    """The dense strategy: factorize `K` once, solve every column (sharded over
    `plan.mesh`) and the Newton step against it, residuals against `K` as assembled."""
    k, sign, symmetric = asm.k_dense, plan.sign, plan.symmetric
    transposed = plan.mode == "reverse"
    factor, spectrum = factorize(
        k, proj, symmetric, sign, plan.singular_rtol, sys.consistency_rhs, plan.seed + 3
    )

    def sharded(transpose):
        single = lambda r: solve(factor, proj, sign, symmetric, r, transpose)
        if plan.mesh is None:
            return single
        return lambda r: map_rows(lambda rows: single(rows.T).T, r.T, plan.mesh).T

    rhs, newton = sys.rhs, None
    if sys.newton_rhs is not None and not transposed:
        both = sharded(False)(jnp.concatenate([rhs, sys.newton_rhs[:, None]], axis=1))
        x_cols, newton = both[:, :-1], both[:, -1]
    else:
        x_cols = sharded(transposed)(rhs)
        if sys.newton_rhs is not None:
            newton = solve(factor, proj, sign, symmetric, sys.newton_rhs[:, None])[:, 0]
    # per-column residuals against K as assembled (from the sparse recovery, whose
    # agreement with exact JVPs is `sparsity_error`): one dense product, cheaper on CPUs
    # than the gathers and scatters of the sparse blocks even at d = 1024 (measured 35 vs
    # 50 ms); untransposed, as XLA's CPU emitter runs transposed operands several times slower
    applied = (k.T @ x_cols) if transposed else (k @ x_cols)
    target = proj.cols(rhs)
    target_norm = jnp.linalg.norm(target, axis=0)
    col_res = jnp.linalg.norm(proj.cols(applied) - target, axis=0) / jnp.where(
        target_norm > 0, target_norm, 1.0
    )
    eps = float(jnp.finfo(k.dtype).eps)
    col_conv = col_res <= max(plan.trust_rtol * 1e-2, 1e3 * eps)
    spectrum = spectrum._replace(inconsistency=jnp.maximum(spectrum.inconsistency, sys.masked_inconsistency))
    return Solved(
        x_cols, newton, sharded(False), col_res, jnp.zeros(rhs.shape[1], jnp.int32), col_conv,
        spectrum, jnp.asarray(False),
    )
