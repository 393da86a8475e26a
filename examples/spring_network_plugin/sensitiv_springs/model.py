"""A harmonic spring network bound to a structure.

Springs join the atom pairs closer than `cutoff` in the input structure (minimum image
in periodic directions), or the pairs listed in `bonds`. Spring `b` between atoms `i`
and `j` of species `a` and `b` has the energy

    E_b = ½ k_ab (|x_j − x_i| − s_ab d_b)²

where `d_b` is the pair's distance in the input structure, `k = stiffness` and
`s = rest_length_scale` are per-species-pair matrices (symmetrized: `(K + Kᵀ)/2`).
With `s = 1` everywhere the input structure is a stress-free equilibrium; scaling the
rest lengths of some species pairs differently frustrates the network, and its
equilibrium then depends on both parameters.

Zero modes of the Hessian: rigid translations, plus rigid rotations when no direction
is periodic (free space).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from sensitiv.errors import ConfigError, InputError
from sensitiv.records import Parameter, Structure, System

__all__ = ["spring_network", "PARAMETERS", "OPTIONS_SCHEMA"]

OPTIONS_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "cutoff": {
            "type": "number",
            "exclusiveMinimum": 0,
            "description": "Springs join atoms closer than this in the input structure "
            "(its length units).",
        },
        "bonds": {
            "type": "array",
            "items": {
                "type": "array",
                "items": {"type": "integer", "minimum": 0},
                "minItems": 2,
                "maxItems": 2,
            },
            "minItems": 1,
            "description": "Explicit springs as pairs of atom indices (instead of `cutoff`).",
        },
    },
}

PARAMETERS = (
    Parameter(
        name="stiffness",
        shape=("species", "species"),
        units="eV/angstrom^2",
        default=1.0,
        differentiable=True,
        description="spring constant per species pair",
    ),
    Parameter(
        name="rest_length_scale",
        shape=("species", "species"),
        units="1",
        default=1.0,
        differentiable=True,
        description="rest length over the input-structure distance, per species pair",
    ),
)


def _periodic(structure: Structure) -> tuple[bool, ...]:
    dim = structure.n_spatial
    pbc = tuple(bool(p) for p in structure.pbc) or (False,) * dim
    if len(pbc) != dim:
        raise InputError(f"{structure.source}: pbc has {len(pbc)} entries for {dim} dimensions")
    if any(pbc) and structure.cell is None:
        raise InputError(f"{structure.source}: periodic directions but no cell")
    return pbc


def _minimum_image(delta, cell, inverse, pbc, xp):
    """Displacements mapped to their nearest periodic image (rows of `cell` are lattice vectors)."""
    if cell is None or not any(pbc):
        return delta
    frac = delta @ inverse
    wrap = xp.asarray(pbc)
    frac = frac - xp.where(wrap, xp.round(frac), 0.0)
    return frac @ cell


def _find_bonds(positions, cell, inverse, pbc, cutoff, source) -> np.ndarray:
    if cell is not None and any(pbc):
        # Minimum image is only right for cutoffs below half of each periodic width.
        widths = 1.0 / np.linalg.norm(inverse, axis=0)
        half = 0.5 * min(w for w, p in zip(widths, pbc) if p)
        if cutoff >= half:
            raise ConfigError(
                f"model.options.cutoff: {cutoff} is not below half the periodic width "
                f"({half:.6g}) of {source}; minimum-image springs would be wrong"
            )
    delta = positions[None, :, :] - positions[:, None, :]
    delta = _minimum_image(delta, cell, inverse, pbc, np)
    distance = np.linalg.norm(delta, axis=-1)
    i, j = np.nonzero(np.triu(distance < cutoff, k=1))
    return np.stack([i, j], axis=1)


def _checked_bonds(bonds, n_atoms: int) -> np.ndarray:
    pairs = np.asarray(bonds, dtype=np.int64).reshape(-1, 2)
    if pairs.size and (pairs.min() < 0 or pairs.max() >= n_atoms):
        raise ConfigError(f"model.options.bonds: atom index out of range 0..{n_atoms - 1}")
    if np.any(pairs[:, 0] == pairs[:, 1]):
        raise ConfigError("model.options.bonds: a bond joins an atom to itself")
    canonical = {tuple(sorted(map(int, p))) for p in pairs}
    if len(canonical) != len(pairs):
        raise ConfigError("model.options.bonds: a pair of atoms is listed twice")
    return pairs


def _species_matrix(name: str, value: Any, n_species: int) -> jax.Array:
    array = np.asarray(value, dtype=np.float64)
    try:
        array = np.broadcast_to(array, (n_species, n_species))
    except ValueError:
        raise ConfigError(
            f"model.parameters.{name}: shape {array.shape} does not fit "
            f"({n_species}, {n_species}) (species × species)"
        ) from None
    return jnp.asarray(array)


def _rigid_modes(positions: jax.Array, free: bool) -> jax.Array:
    """Orthonormal rows spanning rigid translations (and rotations in free space)."""
    n, dim = positions.shape
    modes = [jnp.zeros((n, dim)).at[:, a].set(1.0) for a in range(dim)]
    if free:
        centred = positions - positions.mean(axis=0)
        if dim == 2:
            modes.append(jnp.stack([-centred[:, 1], centred[:, 0]], axis=1))
        elif dim == 3:
            for axis in jnp.eye(3):
                modes.append(jnp.cross(axis, centred))
    basis = jnp.stack([m.reshape(-1) for m in modes], axis=1)
    q, _ = jnp.linalg.qr(basis)
    return q.T


def spring_network(structure: Structure, options: Mapping[str, Any] | None = None) -> System:
    """Build the spring-network `System` of `structure`.

    **Arguments:**

    - `structure`: the input structure; its distances are the reference lengths `d_b`.
    - `options`: `cutoff` or `bonds` (see `OPTIONS_SCHEMA`), and under `"parameters"`
      values of `stiffness` / `rest_length_scale` (a number or a species × species matrix).

    **Returns:** a `System` whose `interactions` are the springs.

    **Example:**

    ```python
    system = spring_network(structure, {"cutoff": 1.2, "parameters": {"stiffness": 2.0}})
    energy = system.energy(system.positions, system.params)
    ```
    """
    options = dict(options or {})
    values = dict(options.pop("parameters", None) or {})
    unknown = sorted(set(options) - set(OPTIONS_SCHEMA["properties"]))
    if unknown:
        raise ConfigError(f"model.options.{unknown[0]}: unknown option; known: cutoff, bonds")
    unknown = sorted(set(values) - {p.name for p in PARAMETERS})
    if unknown:
        raise ConfigError(
            f"model.parameters.{unknown[0]}: unknown parameter; known: stiffness, rest_length_scale"
        )
    if ("cutoff" in options) == ("bonds" in options):
        raise ConfigError("model.options: give exactly one of 'cutoff' and 'bonds'")

    positions0 = np.asarray(structure.positions, dtype=np.float64)
    n_atoms, dim = positions0.shape
    pbc = _periodic(structure)
    cell = None if structure.cell is None else np.asarray(structure.cell, dtype=np.float64)
    inverse = None if cell is None else np.linalg.inv(cell)
    if "bonds" in options:
        bonds = _checked_bonds(options["bonds"], n_atoms)
    else:
        bonds = _find_bonds(positions0, cell, inverse, pbc, float(options["cutoff"]), structure.source)
        if len(bonds) == 0:
            raise ConfigError(
                f"model.options.cutoff: no two atoms of {structure.source or 'the structure'} "
                f"are closer than {options['cutoff']}"
            )
    delta0 = _minimum_image(positions0[bonds[:, 1]] - positions0[bonds[:, 0]], cell, inverse, pbc, np)
    reference = np.linalg.norm(delta0, axis=-1)
    if np.any(reference == 0.0):
        raise InputError(f"{structure.source}: two bonded atoms sit at the same position")

    free = not any(pbc)
    if free and dim >= 2:
        # Collinear atoms in 3-D (coincident ones in 2-D) have fewer rotational zero
        # modes; the rigid-mode basis would then hold a direction that is no zero mode.
        centred = positions0 - positions0.mean(axis=0)
        rank = np.linalg.matrix_rank(centred, tol=1e-8 * max(1.0, float(np.abs(centred).max())))
        if rank < dim - 1:
            raise InputError(
                f"{structure.source or 'structure'}: the atoms are collinear in free space, "
                "so rotations about their line are no zero mode; use a periodic cell or "
                "a non-collinear structure"
            )

    species = np.asarray(structure.species, dtype=np.int64)
    n_species = len(structure.species_names)
    pair_a = jnp.asarray(species[bonds[:, 0]])
    pair_b = jnp.asarray(species[bonds[:, 1]])
    first, second = jnp.asarray(bonds[:, 0]), jnp.asarray(bonds[:, 1])
    reference_j = jnp.asarray(reference)
    cell_j = None if cell is None else jnp.asarray(cell)
    inverse_j = None if inverse is None else jnp.asarray(inverse)
    bonds_j = jnp.asarray(bonds)

    def bond_lengths(positions):
        delta = _minimum_image(positions[second] - positions[first], cell_j, inverse_j, pbc, jnp)
        return jnp.sqrt(jnp.sum(delta**2, axis=-1))

    def energy(positions, params):
        k = 0.5 * (params["stiffness"] + params["stiffness"].T)
        s = 0.5 * (params["rest_length_scale"] + params["rest_length_scale"].T)
        stretch = bond_lengths(positions) - s[pair_a, pair_b] * reference_j
        return 0.5 * jnp.sum(k[pair_a, pair_b] * stretch**2)

    params = {
        p.name: _species_matrix(p.name, values.get(p.name, p.default), n_species) for p in PARAMETERS
    }
    units = structure.length_units
    resolved = tuple(
        Parameter(
            name=p.name,
            shape=(n_species, n_species),
            units=f"eV/{units}^2" if p.name == "stiffness" else p.units,
            default=p.default,
            differentiable=p.differentiable,
            description=p.description,
        )
        for p in PARAMETERS
    )
    return System(
        energy=energy,
        params=params,
        parameters=resolved,
        positions=jnp.asarray(positions0),
        null_space=jax.jit(functools.partial(_rigid_modes, free=free)),
        interactions=lambda positions, params: bonds_j,
        observables={"energy": energy},
        reverse_mode_safe=True,
        length_units=units,
        energy_units="eV",
        metadata={
            "n_springs": int(len(bonds)),
            "species_names": list(structure.species_names),
            "rigid_modes": "translations+rotations" if free else "translations",
        },
    )

