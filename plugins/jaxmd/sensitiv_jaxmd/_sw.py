"""Stillinger–Weber from LAMMPS `*.sw` files (multi-element), every parameter a θ.

LAMMPS' form (`pair_style sw`), with its parameter names:

`E = Σ_i Σ_{j>i} φ₂(r_ij) + Σ_i Σ_{j≠i} Σ_{k>j} φ₃(r_ij, r_ik, θ_jik)`,
`φ₂ = A ε (B (σ/r)^p − (σ/r)^q) exp(σ / (r − aσ))` (entry `(i, j, j)`),
`φ₃ = λ_ijk ε_ijk (cos θ_jik − cos θ₀_ijk)² exp(γ_ij σ_ij / (r_ij − a_ij σ_ij))
      exp(γ_ik σ_ik / (r_ik − a_ik σ_ik))` (`ij` = entry `(i, j, j)`, `ik` = `(i, k, k)`).

Pairs interact below `a σ`, or below LAMMPS' shortened cutoff `aσ + σ'/ln(tol)` when the
entry's `tol` is positive (`σ' = γσ` if `γ < 1`, else σ; `tol` capped at 0.01), as
LAMMPS does. LAMMPS sums each three-body term once with the entry `(i, j, k)` of the
first neighbour in its list order and each mixed pair once with the entry of one atom;
here they are the averages `½ (φ₃^{ijk} + φ₃^{ikj})` and `½ (φ₂^{ijj} + φ₂^{jii})`,
identical for files whose entries respect those symmetries (every file LAMMPS ships).

θ: each of the 10 real-valued fields is a parameter of shape `(species, species, species)`
indexed like the file's entries (`tol` is a numerical choice, not differentiable). The
built-in model `stillinger_weber` (scalar parameters, silicon 1985) remains.
"""

from __future__ import annotations

import jax.numpy as jnp

from . import _declarations as declarations
from ._file_model import TripletFileModel
from ._potential_files import SW_FIELDS

__all__ = ["SW"]


def interaction_cutoff(params, index):
    """`a σ`, shortened by LAMMPS' `tol` rule, for the entries at `index`."""
    a, sigma, gamma, tol = (params[k][index] for k in ("a", "sigma", "gamma", "tol"))
    cut = a * sigma
    tol = jnp.minimum(tol, 0.01)
    scale = jnp.where(gamma < 1.0, gamma * sigma, sigma)
    log_tol = jnp.log(jnp.where(tol > 0, tol, 0.5))
    return jnp.where(tol > 0, cut + scale / log_tol, cut)


class _StillingerWeberFile(TripletFileModel):
    pair_style = "sw"
    fields = SW_FIELDS

    def cutoff_convention(self, options) -> str:
        return ("a*sigma of entry (i, j, j) for the pair i-j (shortened by sigma/ln(tol) when tol > 0, "
                "as LAMMPS does), evaluated at call time")

    def pair_cutoff(self, params, ctx, si, sj, i, j):
        return interaction_cutoff(params, (si, sj, sj))

    def max_cutoff(self, params, ctx):
        return jnp.max(interaction_cutoff(params, ...))

    def energy(self, params, ctx, nb):
        si, sj = nb.si, nb.sj
        m_slots = nb.r.shape[1]

        def pair(name):
            return params[name][si, sj, sj]

        sigma, a = pair("sigma"), pair("a")
        cut = a * sigma
        # Safe distances: masked entries sit strictly inside the cutoff, away from 0.
        safe = jnp.where(cut > 0, 0.5 * cut, 1.0)
        r = jnp.where(nb.inside, nb.r, safe)
        gap = jnp.where(nb.inside, r - cut, -1.0)
        ratio = sigma / r
        two = pair("A") * pair("epsilon") * (pair("B") * ratio ** pair("p") - ratio ** pair("q"))
        two = two * jnp.exp(sigma / gap)
        e2 = 0.5 * jnp.sum(jnp.where(nb.inside, two, 0.0))

        radial = jnp.where(nb.inside, jnp.exp(pair("gamma") * sigma / gap), 0.0)
        unit = nb.dR / nb.r[..., None]
        cosine = jnp.einsum("nmd,nkd->nmk", unit, unit)
        si3, sj3, sk3 = si[:, :, None], sj[:, :, None], sj[:, None, :]
        lam, eps, cos0 = (params[k][si3, sj3, sk3] for k in ("lambda", "epsilon", "costheta0"))
        both = nb.inside[:, :, None] & nb.inside[:, None, :] & ~jnp.eye(m_slots, dtype=bool)[None]
        angular = lam * eps * (cosine - cos0) ** 2 * radial[:, :, None] * radial[:, None, :]
        e3 = 0.5 * jnp.sum(jnp.where(both, angular, 0.0))
        return e2 + e3


SW = _StillingerWeberFile.declared(declarations.SW)
