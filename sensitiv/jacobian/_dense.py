"""Dense strategy: materialize `K = ∂₁F` once, factorize once, solve every column against it.

The known null space `Z` (orthonormal rows) is deflated: `M = P K P + s ZᵀZ` with
`P = I − ZᵀZ` is invertible when `Z` spans all zero modes, and `M⁻¹` agrees with the
pseudo-inverse of `K` on `range(P)` — so the answer is the minimum-norm one.

Which factorization:

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

__all__ = ["Spectrum", "DenseFactor", "factorize", "solve", "vanishing_rows"]

VERDICT_MINIMUM, VERDICT_SADDLE, VERDICT_SINGULAR, VERDICT_REGULAR = 0, 1, 2, 3


class Spectrum(NamedTuple):
    """What the factorization says about `sign · K` on the complement of the known null space.

    - `lambda_min`: smallest eigenvalue (symmetric) or smallest singular value
      (nonsymmetric), zero modes excluded; `lambda_max`: the largest in magnitude.
    - `lambda_min_residual`: how far `lambda_min` may be from the true value (0 when exact).
    - `detected_null`: zero modes found beyond the known ones.
    - `negative`: number of negative eigenvalues (a saddle when positive).
    - `inconsistency`: largest fraction of a right-hand side inside the detected null space.
    - `verdict`: 0 minimum, 1 saddle, 2 singular, 3 regular (nonsymmetric, nonsingular).
    - `factorization`: 0 Cholesky, 1 eigendecomposition, 2 LU, 3 SVD.
    """

    lambda_min: jax.Array
    lambda_max: jax.Array
    lambda_min_residual: jax.Array
    detected_null: jax.Array
    negative: jax.Array
    inconsistency: jax.Array
    verdict: jax.Array
    factorization: jax.Array


class DenseFactor(NamedTuple):
    """A factorization of `sign · P K P` (+ deflation), whichever branch produced it.

    `fallback` selects the decomposition `(left, values, right)` — eigen (`V, w, V`) or
    singular (`U, s, Vᵀ`) with zero modes inverted to zero — over `primary` (the inverse
    Cholesky factor `L⁻¹`, or LU factor and permutation).
    """

    fallback: jax.Array
    primary: tuple
    left: jax.Array
    inv_values: jax.Array
    right: jax.Array


def _power(apply, v0, steps, project):
    """Largest eigenvalue of a symmetric PSD operator by power iteration (Rayleigh quotient), and its residual."""

    def body(_, state):
        v, _, _ = state
        w = project(apply(v))
        lam = jnp.vdot(v, w)
        res = jnp.linalg.norm(w - lam * v)
        norm = jnp.linalg.norm(w)
        return jnp.where(norm > 0, w / jnp.where(norm > 0, norm, 1.0), v), lam, res

    v0 = project(v0)
    v0 = v0 / jnp.linalg.norm(v0)
    zero = jnp.zeros((), v0.dtype)
    _, lam, res = jax.lax.fori_loop(0, steps, body, (v0, zero, zero))
    return lam, res


def vanishing_rows(k, singular_rtol):
    """Mask (1 = keep) of the coordinates whose row of `k` vanishes: isolated zero modes."""
    row = jnp.max(jnp.abs(k), axis=1)
    return (row > singular_rtol * jnp.max(row)).astype(k.dtype)


def factorize(k, proj: la.NullProjector, symmetric: bool, sign: int, singular_rtol: float, rhs,
              seed: int = 0, steps: int = 30):
    """Factorize `K` once; return `(DenseFactor, Spectrum)`.

    `proj` projects out the known zero modes and the vanishing rows; `rhs` `(d, m)` (the
    right-hand sides to come) is checked against any further zero modes detected.
    """
    d = k.shape[0]
    dtype = k.dtype
    project = proj.cols
    n_masked = jnp.sum(1.0 - proj.keep).astype(jnp.int32)
    n_known = proj.n_known
    k_p = sign * project(project(k).T).T  # sign · P K P
    if symmetric:
        k_p = 0.5 * (k_p + k_p.T)
    scale = jnp.maximum(jnp.max(jnp.abs(jnp.diag(k_p))), jnp.finfo(dtype).tiny)
    # Deflation: P K P + s (I − P) is invertible when P removes every zero mode, and its
    # inverse agrees with the pseudo-inverse of K on range(P).
    m = k_p + scale * proj.complement()
    v0 = la.probe_vectors(seed, 1, d, dtype)[0]
    tiny = jnp.finfo(dtype).tiny

    def consistency(null_vectors, mask):
        if rhs is None:
            return jnp.zeros((), dtype)
        r = project(rhs)
        rn = jnp.linalg.norm(r, axis=0)
        inside = jnp.linalg.norm(jnp.where(mask[:, None], null_vectors.T @ r, 0.0), axis=0)
        frac = jnp.where(rn > 0, inside / jnp.where(rn > 0, rn, 1.0), 0.0)
        return jnp.max(frac, initial=0.0)

    if symmetric:
        chol = la.cholesky(m)
        chol_ok = jnp.all(jnp.isfinite(chol))
        chol = jnp.where(chol_ok, chol, jnp.eye(d, dtype=dtype))
        l_inv = la.lower_inverse(chol)
        l_inv = jnp.where(jnp.all(jnp.isfinite(l_inv)), l_inv, 0.0)
        primary = (l_inv,)
        inv_apply = lambda v: l_inv.T @ (l_inv @ v)
        # λ_min of P M P: inverse iteration (a numerically zero eigenvalue dominates at once).
        theta, theta_res = _power(inv_apply, v0, steps, project)
        lam_min_chol = 1.0 / jnp.maximum(theta, tiny)
        lam_min_res = theta_res / jnp.maximum(theta, tiny) ** 2
        lam_max_est, _ = _power(lambda v: m @ v, v0, steps, project)
        use_fallback = ~chol_ok | ~(lam_min_chol > singular_rtol * lam_max_est) | ~jnp.isfinite(lam_min_chol)

        def eig(_):
            w, v = jnp.linalg.eigh(k_p)
            return w, v

        def skip(_):
            return jnp.ones(d, dtype), jnp.zeros((d, d), dtype)

        w, v = jax.lax.cond(use_fallback, eig, skip, None)
        lam_max_e = jnp.max(jnp.abs(w))
        tau = singular_rtol * lam_max_e
        null = jnp.abs(w) <= tau
        inv = jnp.where(null, 0.0, 1.0 / jnp.where(null, 1.0, w))
        # the projected-out modes are zero eigenvalues of P K P too
        detected_e = jnp.sum(null).astype(jnp.int32) - n_known
        negative_e = jnp.sum(w < -tau).astype(jnp.int32)
        verdict_e = jnp.where(negative_e > 0, VERDICT_SADDLE, jnp.where(detected_e > 0, VERDICT_SINGULAR, VERDICT_MINIMUM))
        verdict_c = jnp.where(n_masked > 0, VERDICT_SINGULAR, VERDICT_MINIMUM)
        f = use_fallback
        spectrum = Spectrum(
            lambda_min=jnp.where(f, jnp.min(jnp.where(null, jnp.inf, w)), lam_min_chol),
            lambda_max=jnp.where(f, lam_max_e, lam_max_est),
            lambda_min_residual=jnp.where(f, 0.0, lam_min_res),
            detected_null=jnp.where(f, detected_e, n_masked).astype(jnp.int32),
            negative=jnp.where(f, negative_e, 0).astype(jnp.int32),
            # Right-hand sides are projected off the known modes and the vanishing rows
            # (where they vanish too when consistent: checked by the column residuals), so
            # only further zero modes can hold any of them.
            inconsistency=jnp.where(f, consistency(v, null), 0.0),
            verdict=jnp.where(f, verdict_e, verdict_c).astype(jnp.int32),
            factorization=jnp.where(f, 1, 0).astype(jnp.int32),
        )
        factor = DenseFactor(f, primary, v, inv, v.T)
        return factor, spectrum

    lu, perm = la.lu_factor(m)
    lu_ok = jnp.all(jnp.isfinite(lu)) & jnp.all(jnp.abs(jnp.diag(lu)) > 0)
    lu = jnp.where(lu_ok, lu, jnp.eye(d, dtype=dtype))
    primary = (lu, perm)
    # σ_min² is the smallest eigenvalue of MᵀM: the largest of (MᵀM)⁻¹ by inverse iteration.
    inv_apply = lambda v: la.lu_solve(primary, la.lu_solve(primary, v, transpose=True))
    theta, theta_res = _power(inv_apply, v0, steps, project)
    sig_min_lu = 1.0 / jnp.sqrt(jnp.maximum(theta, tiny))
    sig_min_res = 0.5 * theta_res / jnp.maximum(theta, tiny) ** 1.5
    sig_max_est = jnp.sqrt(jnp.abs(_power(lambda v: m.T @ (m @ v), v0, steps, project)[0]))
    use_fallback = ~lu_ok | ~(sig_min_lu > singular_rtol * sig_max_est) | ~jnp.isfinite(sig_min_lu)

    def svd(_):
        return tuple(jnp.linalg.svd(k_p))

    def skip(_):
        return jnp.zeros((d, d), dtype), jnp.ones(d, dtype), jnp.zeros((d, d), dtype)

    u, s, vt = jax.lax.cond(use_fallback, svd, skip, None)
    tau = singular_rtol * jnp.max(s)
    null = s <= tau
    inv = jnp.where(null, 0.0, 1.0 / jnp.where(null, 1.0, s))
    detected_s = jnp.sum(null).astype(jnp.int32) - n_known
    f = use_fallback
    spectrum = Spectrum(
        lambda_min=jnp.where(f, jnp.min(jnp.where(null, jnp.inf, s)), sig_min_lu),
        lambda_max=jnp.where(f, jnp.max(s), sig_max_est),
        lambda_min_residual=jnp.where(f, 0.0, sig_min_res),
        detected_null=jnp.where(f, detected_s, 0).astype(jnp.int32),
        negative=jnp.zeros((), jnp.int32),
        inconsistency=jnp.where(f, consistency(u, null), 0.0),
        verdict=jnp.where(f & (detected_s > 0), VERDICT_SINGULAR, VERDICT_REGULAR).astype(jnp.int32),
        factorization=jnp.where(f, 3, 2).astype(jnp.int32),
    )
    # K X = R with K = U S Vᵀ: X = V S⁺ Uᵀ R  -> left = Vᵀ.T, right = Uᵀ
    factor = DenseFactor(f, primary, vt.T, inv, u.T)
    return factor, spectrum


def solve(factor: DenseFactor, proj: la.NullProjector, sign: int, symmetric: bool, rhs, transpose: bool = False):
    """Minimum-norm solution of `K X = R` (`Kᵀ X = R` with `transpose`) for `R` `(d, m)`."""
    project = proj.cols
    r = project(sign * rhs)

    def by_fallback(r):
        if transpose:
            # Kᵀ = right.T · diag(inv)⁻¹ · left.T
            return factor.right.T @ (factor.inv_values[:, None] * (factor.left.T @ r))
        return factor.left @ (factor.inv_values[:, None] * (factor.right @ r))

    def by_primary(r):
        if symmetric:
            l_inv = factor.primary[0]
            return l_inv.T @ (l_inv @ r)
        return la.lu_solve(factor.primary, r, transpose)

    return project(jax.lax.cond(factor.fallback, by_fallback, by_primary, r))
