"""Pair potentials from jax-md with every physical parameter a differentiable θ.

The pair functions themselves are jax-md's (`jax_md.energy.soft_sphere`,
`lennard_jones`, `morse`); this module supplies what jax-md fixes at build time:

- per-pair parameters are looked up at *call* time from `(species, species)` matrices
  (or per-atom diameters, `σᵢⱼ = (dᵢ + dⱼ)/2`), so they are ordinary JAX inputs;
- the truncation at the cutoff is a choice (`truncation`): `"switch"` (default) multiplies
  by jax-md's C¹ switch between `r_onset` and `r_cutoff`; `"cut"` truncates plainly, as
  LAMMPS `pair_style lj/cut` / `morse` do (the energy jumps at the cutoff); `"shift"`
  subtracts the pair energy at the cutoff, as LAMMPS `pair_modify shift yes` does (the
  energy is continuous, the force jumps);
- the cutoffs are evaluated at call time too. Convention (`cutoff_units`):
  `"sigma"` (default) — `r_cutoff` and `r_onset` are in units of the pair's `σᵢⱼ`, so
  the cutoff moves with σ when differentiating (reduced-unit models stay the same model);
  `"absolute"` — lengths, independent of σ (what jax-md does after building: its
  `lennard_jones_pair` multiplies them by the largest σ *once*, when the function is
  built, and its `morse_pair` takes them as absolute);
- distances are masked *before* the pair function is evaluated (the double-`where`),
  so padded and self pairs contribute exact zeros to values and to derivatives of every
  order. jax-md's own `lennard_jones` passes `r = 0` self pairs through `nan_to_num`, which
  makes reverse-mode `∂F/∂σ` NaN (jax-md issue #258); here reverse mode is safe.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax_md import energy as jmd_energy

from . import _declarations as declarations
from ._model import Model, pair_lookup, present_max, smooth_switch

__all__ = ["SOFT_SPHERE", "SOFT_SPHERE_ADDITIVE", "LENNARD_JONES", "MORSE"]


class _SwitchedPair(Model):
    """A pair function ended at `r_cutoff` by jax-md's C¹ switch from `r_onset`, by plain
    truncation, or shifted to zero there (option `truncation`)."""

    many_body = False

    def check_options(self, options):
        if options["truncation"] == "switch" and options["r_onset"] >= options["r_cutoff"]:
            self.config_error(f"r_onset ({options['r_onset']}) must be below r_cutoff ({options['r_cutoff']}); "
                              "or choose truncation: cut / shift, which use no r_onset")

    def cutoff_convention(self, options) -> str:
        where = ("r_cutoff and r_onset in units of each pair's sigma, evaluated at call time"
                 if options["cutoff_units"] == "sigma" else "r_cutoff and r_onset absolute lengths")
        how = {
            "switch": "C1 switch from r_onset to r_cutoff (jax-md)",
            "cut": "plain truncation at r_cutoff (LAMMPS lj/cut, morse; pair_modify shift no)",
            "shift": "truncated at r_cutoff and shifted by the pair energy there (LAMMPS pair_modify shift yes)",
        }[options["truncation"]]
        return f"{how}; {where}"

    def _scale(self, params, ctx, si, sj):
        if ctx.options["cutoff_units"] == "sigma":
            return pair_lookup(params["sigma"], si, sj)
        return 1.0

    def pair_cutoff(self, params, ctx, si, sj, i, j):
        return ctx.options["r_cutoff"] * self._scale(params, ctx, si, sj)

    def max_cutoff(self, params, ctx):
        if ctx.options["cutoff_units"] == "sigma":
            return ctx.options["r_cutoff"] * present_max(params["sigma"], ctx)
        return jnp.asarray(ctx.options["r_cutoff"], dtype=float)

    def pair_energy(self, r, params, ctx, si, sj, i, j):
        scale = self._scale(params, ctx, si, sj)
        r_cutoff = ctx.options["r_cutoff"] * scale
        truncation = ctx.options["truncation"]
        if truncation == "cut":
            return self.bare(r, params, si, sj)
        if truncation == "shift":
            return self.bare(r, params, si, sj) - self.bare(r_cutoff + 0 * r, params, si, sj)
        switch = smooth_switch(r, ctx.options["r_onset"] * scale, r_cutoff)
        return switch * self.bare(r, params, si, sj)


class _LennardJones(_SwitchedPair):
    def bare(self, r, params, si, sj):
        return jmd_energy.lennard_jones(
            r, pair_lookup(params["sigma"], si, sj), pair_lookup(params["epsilon"], si, sj)
        )


class _Morse(_SwitchedPair):
    def bare(self, r, params, si, sj):
        return jmd_energy.morse(
            r,
            pair_lookup(params["sigma"], si, sj),
            pair_lookup(params["epsilon"], si, sj),
            pair_lookup(params["alpha"], si, sj),
        )


class _SoftSphere(Model):
    """`ε/α (1 − r/σᵢⱼ)^α` for `r < σᵢⱼ`; the cutoff is σᵢⱼ itself (contact)."""

    many_body = False

    def sigma(self, params, si, sj, i, j):
        return pair_lookup(params["sigma"], si, sj)

    def epsilon(self, params, si, sj):
        return pair_lookup(params["epsilon"], si, sj)

    def pair_cutoff(self, params, ctx, si, sj, i, j):
        return self.sigma(params, si, sj, i, j)

    def max_cutoff(self, params, ctx):
        return present_max(params["sigma"], ctx)

    def cutoff_convention(self, options) -> str:
        return "cutoff at contact sigma_ij, evaluated at call time"

    def pair_energy(self, r, params, ctx, si, sj, i, j):
        sigma = self.sigma(params, si, sj, i, j)
        return jmd_energy.soft_sphere(r, sigma, self.epsilon(params, si, sj), params["alpha"])

    def defaults(self, structure, options):
        # A generator's per-species diameters (info["diameters"]) give additive σ by default.
        diameters = structure.info.get("diameters") if structure.info else None
        if diameters is not None and len(diameters) == len(structure.species_names):
            d = jnp.asarray(diameters, dtype=float)
            return {"sigma": 0.5 * (d[:, None] + d[None, :])}
        return {}


class _SoftSphereAdditive(_SoftSphere):
    """Per-atom diameters: `σᵢⱼ = (dᵢ + dⱼ)/2`."""

    def sigma(self, params, si, sj, i, j):
        d = params["diameter"]
        return 0.5 * (d[i] + d[j])

    def epsilon(self, params, si, sj):
        return params["epsilon"]

    def max_cutoff(self, params, ctx):
        return jnp.max(params["diameter"])

    def cutoff_convention(self, options) -> str:
        return "cutoff at contact (d_i + d_j)/2, evaluated at call time"

    def defaults(self, structure, options):
        per_species = options.get("diameters")
        source = "option diameters"
        if per_species is None and structure.info:
            per_species, source = structure.info.get("diameters"), "structure info['diameters']"
        if per_species is None:
            return {}
        names = structure.species_names
        if isinstance(per_species, dict):
            missing = [n for n in names if n not in per_species]
            if missing:
                self.config_error(f"{source} has no diameter for species {missing[0]!r}")
            values = [float(per_species[n]) for n in names]
        else:
            values = [float(v) for v in per_species]
            if len(values) != len(names):
                self.config_error(
                    f"{source} gives {len(values)} diameters for {len(names)} species {list(names)}"
                )
        return {"diameter": jnp.asarray(values)[jnp.asarray(structure.species)]}


SOFT_SPHERE = _SoftSphere.declared(declarations.SOFT_SPHERE)
SOFT_SPHERE_ADDITIVE = _SoftSphereAdditive.declared(declarations.SOFT_SPHERE_ADDITIVE)
LENNARD_JONES = _LennardJones.declared(declarations.LENNARD_JONES)
MORSE = _Morse.declared(declarations.MORSE)
