"""The shape every energy model of this plugin has, and helpers they share.

A `Model` knows the physics only: its parameters, its cutoffs, and its energy given the
displacements to each atom's neighbors. `_system.build_system` binds it to a structure
(space, strain, neighbor list, observables, null space, interactions); `_system` does not
import this module, so the dependency runs one way.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp

from sensitiv.errors import ConfigError
from sensitiv.records import EnergyModel

from ._context import Context
from ._declarations import COMMON_OPTIONS, ModelDeclaration
from ._system import build_system

__all__ = ["Model", "Context", "pair_lookup", "present_max", "smooth_switch", "COMMON_OPTIONS"]


def pair_lookup(matrix, si, sj):
    """`matrix[si, sj]` for a per-species matrix; scalars pass through."""
    matrix = jnp.asarray(matrix)
    if matrix.ndim == 0:
        return matrix
    return matrix[si, sj]


def present_max(matrix, ctx: Context):
    """Largest entry of a per-species matrix over species pairs present in the structure."""
    matrix = jnp.asarray(matrix)
    if matrix.ndim == 0:
        return matrix
    return jnp.max(jnp.where(jnp.asarray(ctx.present), matrix, -jnp.inf))


def smooth_switch(r, r_onset, r_cutoff):
    """jax-md's C¹ switch (HOOMD-blue's XPLOR form), with traced onset and cutoff.

    `S = 1` for `r < r_onset`, `S = 0` for `r ≥ r_cutoff`, in between
    `(rc² − r²)² (rc² + 2r² − 3ro²) / (rc² − ro²)³`.
    """
    r2, rc2, ro2 = r**2, r_cutoff**2, r_onset**2
    inner = (rc2 - r2) ** 2 * (rc2 + 2 * r2 - 3 * ro2) / (rc2 - ro2) ** 3
    return jnp.where(r < r_onset, 1.0, jnp.where(r < r_cutoff, inner, 0.0))


class Model(ModelDeclaration):
    """An energy model: parameters, cutoffs and energy from neighbor displacements.

    Its declaration (name, parameters, options) is a `ModelDeclaration` from
    `_declarations`, so that the host can list it without importing jax-md; build an
    instance with `Model.declared(declaration)`.

    Pair models implement `pair_energy(r, params, ctx, si, sj, i, j)` (energies of the
    `(n, m)` pairs, evaluated on safe distances) and `pair_cutoff`; many-body models
    implement `energy(params, ctx, neighbors)` (a `Neighbors` record) and `pair_cutoff`.
    All implement `max_cutoff(params, ctx)` (traceable; the neighbor-list radius at θ)
    and `cutoff_convention(options)` (one line for the output's metadata).

    Phantom atoms (padding, `Structure.phantoms`) are nobody's neighbors and have none, so
    pair models and sums over neighbors leave them out by construction; a many-body model
    sets `masks_phantoms = True` once every per-atom term it has vanishes for them (EAM
    masks its embedding F(0) with `Neighbors.active`). Padding is refused for the others.
    """

    #: Whether the energy leaves phantom atoms out (see above); pair models always do.
    masks_phantoms = False

    @classmethod
    def declared(cls, declaration: ModelDeclaration) -> "Model":
        """The model of this class with the fields of `declaration`."""
        fields = dataclasses.fields(ModelDeclaration)
        return cls(**{f.name: getattr(declaration, f.name) for f in fields})

    def config_error(self, message: str):
        raise ConfigError(f"model {self.name!r}: {message}")

    def check_options(self, options: Mapping[str, Any]) -> None:
        """Cross-field checks JSON Schema cannot express."""

    def prepare(self, structure, options):
        """Static data the energy needs for this structure (`Context.data`): potential
        tables, element maps. Called once per binding, before `defaults`."""
        return None

    def defaults(self, structure, options) -> dict:
        """Structure-dependent default parameter values (override `Parameter.default`)."""
        return {}

    def cutoff_convention(self, options) -> str:
        """One line stating how the cutoff is defined (recorded in `System.metadata`)."""
        return "model-specific"

    def describe(self, options, ctx) -> dict:
        """Extra plain-valued metadata about the bound model (potential file, elements)."""
        return {}

    def record(self) -> EnergyModel:
        def factory(structure, options=None):
            return build_system(self, structure, options)

        factory.__doc__ = (
            f"Bind the {self.name!r} model to a `Structure`; see `sensitiv_jaxmd.build_system`."
        )
        return super().record(factory)
