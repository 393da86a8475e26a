"""Small dense linear-algebra kernels on `lax.linalg` primitives, and cheap probe vectors.

`jnp.linalg.cholesky`, `jax.scipy.linalg.cho_solve` and `jax.random` add checks and
conversions that cost several times more XLA compile time than the primitives they wrap;
the Jacobian engine compiles one program per problem, so it uses the primitives directly.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = [
    "probe_vectors", "cholesky", "cho_solve", "lower_inverse", "lu_factor", "lu_solve",
    "orthonormal_rows", "NullProjector",
]


def probe_vectors(seed: int, count: int, size: int, dtype) -> jax.Array:
    """`(count, size)` deterministic pseudo-random directions in `[-½, ½)` (an integer hash).

    Probes only need to be generic (no structural zeros, no alignment with special
    directions), not statistically random. Integer arithmetic makes them bit-identical
    wherever XLA chooses to recompute them (a floating-point hash would not be).
    """
    # Entry (c, i) hashes `i + c · 0x632BE5AB`, not its flat index: the first entries of a
    # longer vector are those of a shorter one, so padding a problem (phantom coordinates
    # appended, `jacobian(active=…)`) leaves the probes of its real coordinates unchanged.
    index = (jnp.arange(size, dtype=jnp.uint32)[None, :]
             + jnp.arange(count, dtype=jnp.uint32)[:, None] * jnp.uint32(0x632BE5AB))
    h = index.reshape(-1) + jnp.uint32((seed * 0x9E3779B9 + 0x7F4A7C15) & 0xFFFFFFFF)
    for shift, mult in ((16, 0x85EBCA6B), (13, 0xC2B2AE35), (16, 0x27D4EB2F)):
        h = (h ^ (h >> shift)) * jnp.uint32(mult)
    u = (h >> 8).astype(dtype) / (1 << 24)
    return (u - 0.5).reshape(count, size).astype(dtype)


def cholesky(m):
    """Lower Cholesky factor (NaN where `m` is not positive definite)."""
    return jax.lax.linalg.cholesky(m, symmetrize_input=False)


def cho_solve(chol, r):
    """Solve `L Lᵀ x = r` for `r` of shape `(d,)` or `(d, m)`."""
    vec = r.ndim == 1
    r = r[:, None] if vec else r
    y = jax.lax.linalg.triangular_solve(chol, r, left_side=True, lower=True)
    x = jax.lax.linalg.triangular_solve(chol, y, left_side=True, lower=True, transpose_a=True)
    return x[:, 0] if vec else x


def lower_inverse(chol, block: int = 128):
    """`L⁻¹` of a lower-triangular matrix by recursive 2×2 blocks: all but the small
    diagonal blocks are matrix products, which run at BLAS speed on CPUs and GPUs where
    triangular solves with many right-hand sides do not."""
    n = chol.shape[0]
    if n <= block:
        eye = jnp.eye(n, dtype=chol.dtype)
        return jax.lax.linalg.triangular_solve(chol, eye, left_side=True, lower=True)
    h = n // 2
    a_inv = lower_inverse(chol[:h, :h], block)
    d_inv = lower_inverse(chol[h:, h:], block)
    lower_left = -(d_inv @ (chol[h:, :h] @ a_inv))
    top = jnp.concatenate([a_inv, jnp.zeros((h, n - h), chol.dtype)], axis=1)
    return jnp.concatenate([top, jnp.concatenate([lower_left, d_inv], axis=1)], axis=0)


def lu_factor(m):
    """`(lu, perm)` with `m[perm] = L U` (unit lower `L`)."""
    lu, _, perm = jax.lax.linalg.lu(m)
    return lu, perm


def lu_solve(factor, r, transpose: bool = False):
    """Solve `M x = r` (or `Mᵀ x = r`) from `lu_factor(M)`."""
    lu, perm = factor
    vec = r.ndim == 1
    r = r[:, None] if vec else r
    solve = jax.lax.linalg.triangular_solve
    if not transpose:
        y = solve(lu, r[perm], left_side=True, lower=True, unit_diagonal=True)
        x = solve(lu, y, left_side=True, lower=False)
    else:
        y = solve(lu, r, left_side=True, lower=False, transpose_a=True)
        z = solve(lu, y, left_side=True, lower=True, transpose_a=True, unit_diagonal=True)
        x = jnp.zeros_like(z).at[perm].set(z)
    return x[:, 0] if vec else x


def orthonormal_rows(z, reference=None):
    """Orthonormalize the rows of `z` `(k, d)` (modified Gram–Schmidt, twice for stability);
    a row that is (numerically) in the span of the previous ones becomes zero. "Numerically"
    is relative to the norm of the same row of `reference` (default `z`): a known mode
    restricted to some coordinates is dropped when the restriction left only round-off of
    it (a rotation of a planar molecule restricted to the plane), not normalized into a
    spurious direction."""
    reference = z if reference is None else reference
    rows = []
    for i in range(z.shape[0]):
        v = z[i]
        scale = jnp.linalg.norm(reference[i])
        for _ in range(2):
            for q in rows:
                v = v - jnp.vdot(q, v) * q
        norm = jnp.linalg.norm(v)
        ok = norm > 1e-8 * scale
        rows.append(jnp.where(ok, v / jnp.where(ok, norm, 1.0), 0.0))
    return jnp.stack(rows) if rows else z


class NullProjector:
    """Projector onto the complement of the zero modes: the known ones (rows `z`) and the
    coordinates whose row of `∂₁F` vanishes (an atom without any interaction: a rattler).

    `P v = keep ⊙ v − zₖᵀ zₖ (keep ⊙ v)`, with `zₖ` the known modes restricted to the kept
    coordinates and re-orthonormalized. Works on `(…, d)` rows (`rows`) and `(d, m)`
    columns (`cols`). The number of vanishing coordinates is data-dependent; a mask keeps
    the shapes static.

    `excluded` (traced count) of the masked coordinates are no coordinates of the problem
    at all (padding: phantom atoms, see `jacobian(active=…)`): masked like the others, they
    count as no zero mode.
    """

    def __init__(self, z, keep, excluded=0):
        self.keep = keep
        self.excluded = excluded
        self.z = orthonormal_rows(z * keep[None, :], z) if z is not None and z.shape[0] else None

    @property
    def n_known(self) -> int:
        """Rows of the known modes (static): an upper bound of their rank on the kept coordinates."""
        return 0 if self.z is None else self.z.shape[0]

    def masked_beyond_known(self):
        """Zero modes the vanishing rows add beyond the known ones (dynamic):
        `dim span(known ∪ masked) − dim span(known)`; a masked coordinate that a known mode
        already covers (a planar dimer's out-of-plane coordinates) is no new mode."""
        n_masked = (jnp.sum(1.0 - self.keep) - self.excluded).astype(jnp.int32)
        if self.z is None:
            return n_masked
        kept_rank = jnp.sum(jnp.linalg.norm(self.z, axis=1) > 0.5).astype(jnp.int32)
        return n_masked + kept_rank - self.n_known

    def rows(self, v):
        v = v * self.keep
        return v if self.z is None else v - (v @ self.z.T) @ self.z

    def cols(self, v):
        v = v * (self.keep[:, None] if v.ndim == 2 else self.keep)
        return v if self.z is None else v - self.z.T @ (self.z @ v)

    def sandwich(self, k, symmetric: bool = False):
        """`P K P` of a dense `(d, d)` matrix: the masked `K` plus rank-`q` corrections
        (`P = D − zᵀz` with `D` the mask, `z` supported on the kept coordinates), cheaper
        than projecting the columns and then the rows of `K`."""
        k = k * self.keep[:, None] * self.keep[None, :]
        if self.z is None:
            return k
        z = self.z
        kz = k @ z.T  # (d, q)
        zk = kz.T if symmetric else z @ k  # (q, d)
        zkz = z @ kz  # (q, q)
        # P K P = K − (K zᵀ) z − zᵀ (z K) + zᵀ (z K zᵀ) z, the outer products as broadcasts
        return k - _outer(kz, z) - _outer(z.T, zk) + _outer(z.T, zkz @ z)

    def complement(self):
        """`I − P` as a dense matrix."""
        out = jnp.diag(1.0 - self.keep)
        return out if self.z is None else out + _outer(self.z.T, self.z)


def _outer(a, b):
    """`a @ b` for `a` `(d, q)`, `b` `(q, d)` with small `q`, as a sum of broadcast products:
    one elementwise pass XLA fuses with its neighbours, where a dot with a contraction of
    length 2 runs several times slower on CPUs than writing its `d²` output."""
    if a.shape[1] > 8:
        return a @ b
    return sum(a[:, r, None] * b[None, r, :] for r in range(a.shape[1]))
