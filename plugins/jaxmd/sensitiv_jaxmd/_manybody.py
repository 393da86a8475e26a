"""Many-body potentials written in JAX so that every parameter is a differentiable θ.

jax-md's `energy.stillinger_weber` closes its parameters over as Python floats (and fixes
`p = 4`, `q = 0` and an *absolute* cutoff of 3.77118 Å), and its `gupta_potential`
likewise; neither can be differentiated with respect to its parameters. They are
re-expressed here on the neighbor displacements the system builder supplies. The
functional forms are identical to jax-md's (checked against them in the tests).
"""

from __future__ import annotations

import jax.numpy as jnp

from . import _declarations as declarations
from ._model import Model, smooth_switch

__all__ = ["STILLINGER_WEBER", "GUPTA"]


class _StillingerWeber(Model):
    """Stillinger–Weber, single species.

    `E = Σ_{i<j} ε A (B (σ/r)^p − (σ/r)^q) exp(σ/(r − aσ))
       + Σ_i Σ_{j<k} ε λ exp(γσ/(r_ij − aσ) + γσ/(r_ik − aσ)) (cos θ_jik + 1/3)²`,
    every term zero beyond the cutoff `aσ`. Convention: the cutoff is `a·σ` (reduced `a`),
    so differentiating with respect to σ moves the cutoff; both `a` and `σ` are θ.
    """

    masks_phantoms = True  # every term is a sum over neighbors

    def pair_cutoff(self, params, ctx, si, sj, i, j):
        return params["a"] * params["sigma"]

    def max_cutoff(self, params, ctx):
        return params["a"] * params["sigma"]

    def cutoff_convention(self, options) -> str:
        return "cutoff a*sigma (both parameters), evaluated at call time"

    def energy(self, params, ctx, nb):
        dR, r, inside = nb.dR, nb.r, nb.inside
        eps, sigma, a = params["epsilon"], params["sigma"], params["a"]
        cutoff = a * sigma
        # Safe distances: masked entries sit strictly inside the cutoff, away from 0.
        r = jnp.where(inside, r, 0.5 * cutoff)
        gap = r - cutoff  # < 0 where it matters
        ratio = sigma / r
        two = params["A"] * (params["B"] * ratio ** params["p"] - ratio ** params["q"])
        two = two * jnp.exp(sigma / gap)
        e2 = 0.5 * jnp.sum(jnp.where(inside, two, 0.0))
        radial = jnp.where(inside, jnp.exp(params["gamma"] * sigma / gap), 0.0)
        unit = dR / r[..., None]
        cosine = jnp.einsum("nmd,nkd->nmk", unit, unit)
        m = r.shape[1]
        pairs = inside[:, :, None] & inside[:, None, :] & ~jnp.eye(m, dtype=bool)[None]
        angular = radial[:, :, None] * radial[:, None, :] * (cosine + 1.0 / 3.0) ** 2
        e3 = 0.5 * params["lambda"] * jnp.sum(jnp.where(pairs, angular, 0.0))
        return eps * (e2 + e3)


class _Gupta(Model):
    """Gupta (second-moment tight binding), jax-md's form:

    `E = U_n / 2 · Σ_i [A Σ_j exp(−p (r_ij/r_0 − 1)) − sqrt(Σ_j exp(−2q (r_ij/r_0 − 1)))]`,
    terms with `r_ij ≥ cutoff` dropped. `cutoff` is absolute (Å); `r_onset` (optional)
    multiplies every term by the C¹ switch so that the energy is continuous at the cutoff
    (jax-md truncates sharply; the default keeps jax-md's sharp cutoff).
    """

    masks_phantoms = True  # every term is a sum over neighbors

    def pair_cutoff(self, params, ctx, si, sj, i, j):
        return jnp.asarray(ctx.options["cutoff"], dtype=float)

    def max_cutoff(self, params, ctx):
        return jnp.asarray(ctx.options["cutoff"], dtype=float)

    def check_options(self, options):
        onset = options.get("r_onset")
        if onset is not None and onset >= options["cutoff"]:
            self.config_error(f"r_onset ({onset}) must be below cutoff ({options['cutoff']})")

    def cutoff_convention(self, options) -> str:
        return "absolute cutoff option" + (" with C1 switch from r_onset" if options.get("r_onset") else "")

    def energy(self, params, ctx, nb):
        r, inside = nb.r, nb.inside
        cutoff = ctx.options["cutoff"]
        r = jnp.where(inside, r, 0.5 * cutoff)
        reduced = r / params["r_0"] - 1.0
        weight = jnp.where(inside, 1.0, 0.0)
        onset = ctx.options.get("r_onset")
        if onset is not None:
            weight = weight * smooth_switch(r, onset, cutoff)
        repulsive = params["A"] * jnp.sum(weight * jnp.exp(-params["p"] * reduced), axis=1)
        density = jnp.sum(weight * jnp.exp(-2.0 * params["q"] * reduced), axis=1)
        has = density > 0
        bonding = jnp.where(has, jnp.sqrt(jnp.where(has, density, 1.0)), 0.0)
        return 0.5 * params["U_n"] * jnp.sum(repulsive - bonding)


STILLINGER_WEBER = _StillingerWeber.declared(declarations.STILLINGER_WEBER)
GUPTA = _Gupta.declared(declarations.GUPTA)
