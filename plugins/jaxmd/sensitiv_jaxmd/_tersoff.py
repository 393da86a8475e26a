"""Tersoff from LAMMPS `*.tersoff` files (multi-element), every parameter a θ.

LAMMPS' form (`pair_style tersoff`), with its parameter names:

`E = ½ Σ_i Σ_{j≠i} f_C(r_ij) [f_R(r_ij) + b_ij f_A(r_ij)]`,
`f_R = A exp(−λ₁ r)`, `f_A = −B exp(−λ₂ r)`,
`f_C = 1` below `R − D`, `½ − ½ sin(π/2 (r − R)/D)` up to `R + D`, 0 beyond,
`b_ij = (1 + βⁿ ζ_ijⁿ)^(−1/2n)`,
`ζ_ij = Σ_{k≠i,j} f_C(r_ik) g(θ_ijk) exp[(λ₃ (r_ij − r_ik))^m]` (`m` = 3 or 1),
`g(θ) = γ (1 + c²/d² − c² / (d² + (cos θ₀ − cos θ)²))` (`costheta0` = LAMMPS' `h`).

Which entry: the two-body terms and `b_ij` (`n, beta, lambda2, B, lambda1, A`, and `R, D`
of `f_C(r_ij)`) use entry `(i, j, j)`; the three-body terms (`m, gamma, lambda3, c, d,
costheta0`, and `R, D` of `f_C(r_ik)`) use entry `(i, j, k)`, as LAMMPS does. `b_ij` uses
LAMMPS' asymptotic branches (`βζ` beyond `(2n·10⁻¹⁶)^(−1/n)` etc.), and the exponential
is capped at `|arg| > 69.0776` like LAMMPS'. LAMMPS evaluates the repulsive term of a
mixed pair with the entry of one of the two atoms (chosen by atom ids); here it is
`½ (f_R^{(ijj)} + f_R^{(jii)})`, identical for files whose `ijj` and `jii` two-body
parameters agree (every file LAMMPS ships).

θ: each of the 13 real-valued fields is a parameter of shape `(species, species,
species)`, indexed `[i, j, k]` like the file's entries (`m` is an integer choice, not
differentiable). jax-md's `tersoff_from_lammps_parameters` takes one element and closes the
values over; this module reads any number of elements and keeps them as inputs.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from sensitiv.errors import InputError

from . import _declarations as declarations
from ._file_model import TripletFileModel
from ._potential_files import TERSOFF_FIELDS

__all__ = ["TERSOFF"]


def cutoff_function(r, R, D):
    """LAMMPS' Tersoff `f_C`."""
    inner = 0.5 * (1.0 - jnp.sin(0.5 * math.pi * (r - R) / D))
    return jnp.where(r < R - D, 1.0, jnp.where(r > R + D, 0.0, inner))


def bond_order(zeta, beta, n):
    """LAMMPS' `ters_bij` with its asymptotic branches (safe for ζ = 0 and its gradient)."""
    tmp = beta * zeta
    n_safe = jnp.where(n > 0, n, 1.0)
    c1 = jax.lax.stop_gradient(jnp.where(n > 0, (2.0 * n_safe * 1e-16) ** (-1.0 / n_safe), 0.0))
    c2 = jax.lax.stop_gradient(jnp.where(n > 0, (2.0 * n_safe * 1e-8) ** (-1.0 / n_safe), 0.0))
    c3 = jnp.where(c2 > 0, 1.0 / jnp.where(c2 > 0, c2, 1.0), 0.0)
    c4 = jnp.where(c1 > 0, 1.0 / jnp.where(c1 > 0, c1, 1.0), 0.0)
    positive = tmp > 0
    t = jnp.where(positive, tmp, 1.0)  # safe base for the powers; ζ = 0 takes the constant branch
    large = t ** -0.5
    large_corrected = (1.0 - t ** (-n_safe) / (2.0 * n_safe)) * t ** -0.5
    small = 1.0 - t**n_safe / (2.0 * n_safe)
    full = (1.0 + t**n_safe) ** (-1.0 / (2.0 * n_safe))
    return jnp.where(
        tmp > c1, large,
        jnp.where(tmp > c2, large_corrected,
                  jnp.where(tmp < c4, 1.0, jnp.where(tmp < c3, small, full))))


class _Tersoff(TripletFileModel):
    pair_style = "tersoff"
    fields = TERSOFF_FIELDS

    def defaults(self, structure, options) -> dict:
        values = super().defaults(structure, options)
        bad = np.argwhere((values["m"] != 1.0) & (values["m"] != 3.0))
        if len(bad):
            names = [structure.species_names[k] for k in bad[0]]
            raise InputError(f"{options['potential_file']}: entry {' '.join(names)} has m = "
                             f"{values['m'][tuple(bad[0])]:g}; LAMMPS' Tersoff allows m = 1 or 3")
        return values

    def cutoff_convention(self, options) -> str:
        return ("R + D of entry (i, j, j) for the pair i-j and of entry (i, j, k) for r_ik in the "
                "three-body term (LAMMPS), evaluated at call time")

    def pair_cutoff(self, params, ctx, si, sj, i, j):
        return params["R"][si, sj, sj] + params["D"][si, sj, sj]

    def max_cutoff(self, params, ctx):
        return jnp.max(params["R"] + params["D"])

    def energy(self, params, ctx, nb):
        si, sj = nb.si, nb.sj
        n_atoms, m_slots = nb.r.shape

        def pair(name):
            return params[name][si, sj, sj]

        si3, sj3, sk3 = si[:, :, None], sj[:, :, None], sj[:, None, :]

        def triple(name):
            return params[name][si3, sj3, sk3]

        R2, D2 = pair("R"), pair("D")
        r = jnp.where(nb.inside, nb.r, R2)  # safe: masked entries sit at R, inside the range
        fc = cutoff_function(r, R2, D2)
        repulsive = fc * pair("A") * jnp.exp(-pair("lambda1") * r)
        attractive = -pair("B") * jnp.exp(-pair("lambda2") * r) * fc

        # Three-body: k ranges over the other slots of atom i within R + D of entry (i, j, k).
        R3, D3 = triple("R"), triple("D")
        r_ij, r_ik = r[:, :, None], nb.r[:, None, :]
        distinct = ~jnp.eye(m_slots, dtype=bool)[None]
        use = nb.inside[:, :, None] & nb.valid[:, None, :] & distinct & (r_ik < R3 + D3)
        r_ik = jnp.where(use, r_ik, R3)
        unit = nb.dR / nb.r[..., None]
        cosine = jnp.einsum("nmd,nkd->nmk", unit, unit)
        c, d = triple("c"), triple("d")
        gamma = triple("gamma") * (1.0 + c**2 / d**2 - c**2 / (d**2 + (triple("costheta0") - cosine) ** 2))
        lam3, delta = triple("lambda3"), r_ij - r_ik
        arg = jnp.where(triple("m") == 3.0, (lam3 * delta) ** 3, lam3 * delta)
        arg = jnp.where(use, arg, 0.0)
        exponential = jnp.where(arg > 69.0776, 1e30, jnp.where(arg < -69.0776, 0.0,
                                                               jnp.exp(jnp.clip(arg, -69.0776, 69.0776))))
        zeta = jnp.sum(jnp.where(use, cutoff_function(r_ik, R3, D3) * gamma * exponential, 0.0), axis=2)
        b = bond_order(zeta, pair("beta"), pair("n"))
        e = 0.5 * (repulsive + b * attractive)
        return jnp.sum(jnp.where(nb.inside, e, 0.0))


TERSOFF = _Tersoff.declared(declarations.TERSOFF)
