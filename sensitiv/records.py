"""The named records that plugin hooks return.

Every hook in `sensitiv.hookspecs` returns a list of these frozen records. They are the
whole contract between the host and a plugin: a plugin never needs anything else of
sensitiv to contribute an energy model, an equilibrium solver, an optimality condition
or a structure reader.

Conventions every plugin follows:

- Positions are Cartesian, shape `(n_atoms, n_spatial)`, in the structure's length units.
- A periodic cell is a `(n_spatial, n_spatial)` array whose **rows** are the lattice
  vectors (ASE's convention).
- Parameter values are JAX arrays (or scalars) in a flat `dict[str, Array]` keyed by
  `Parameter.name`; a homogeneous strain, where a model supports it, is the parameter
  named `"strain"` (a symmetric `(n_spatial, n_spatial)` tensor, zero by default).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "Parameter",
    "Structure",
    "System",
    "EnergyModel",
    "EquilibriumSolver",
    "EquilibriumResult",
    "OptimalityCondition",
    "StructureReader",
    "SHAPE_SYMBOLS",
    "ATOM_MASK",
]

#: The symbolic dimensions a `Parameter.shape` may contain (see `Parameter`).
SHAPE_SYMBOLS = ("species", "atoms", "spatial")

#: The `System.params` key under which a model that honors `Structure.phantoms` puts its
#: atom mask: `(n_atoms,)` floats, 1 for a real atom, 0 for a phantom. It travels with the
#: parameters (traced, not baked into compiled programs), so that structures of different
#: sizes padded to one atom count share every program; it is never differentiated.
ATOM_MASK = "atom_mask"


@dataclasses.dataclass(frozen=True)
class Parameter:
    """A physical parameter an energy model exposes.

    **Arguments:**

    - `name`: the key of the parameter in the parameter dictionary, e.g. `"sigma"`.
    - `shape`: its shape as a tuple of ints and symbols (`SHAPE_SYMBOLS`): `"species"`
      stands for the number of species of the structure (so `("species", "species")` is
      a per-pair matrix), `"atoms"` for its number of atoms (per-atom values), `"spatial"`
      for its number of spatial dimensions. `()` is a scalar. In `System.parameters`
      the symbols are resolved to ints.
    - `units`: a UDUNITS-style string (`"angstrom"`, `"eV"`, `"1"` for dimensionless).
    - `default`: the value used when the config gives none (broadcast to `shape`).
    - `differentiable`: whether sensitivities with respect to it are meaningful.
    - `description`: one line for `sensitiv plugins` and the docs.

    **Example:**

    ```python
    Parameter("stiffness", shape=("species", "species"), units="eV/angstrom^2",
              default=1.0, description="spring constant per species pair")
    ```
    """

    name: str
    shape: tuple[int | str, ...] = ()
    units: str = "1"
    default: Any = None
    differentiable: bool = True
    description: str = ""


@dataclasses.dataclass(frozen=True)
class Structure:
    """An atomistic structure as read from a simulation output.

    **Arguments:**

    - `positions`: Cartesian coordinates, shape `(n_atoms, n_spatial)`.
    - `species`: integer species index per atom, shape `(n_atoms,)`, indexing `species_names`.
    - `species_names`: the name of each species (element symbols, or `"A"`, `"B"`, ...).
    - `cell`: lattice vectors as rows, shape `(n_spatial, n_spatial)`, or `None` when no
      direction is periodic.
    - `pbc`: periodicity per direction.
    - `length_units`: the units of `positions` and `cell`.
    - `source`: where the structure came from (a path, or the generator's name).
    - `frame`: the frame index within `source`.
    - `info`: anything else the reader knows (energy, time step, ...), plain Python values.
    - `atom_ids`: the identifier of each atom in the file (LAMMPS atom IDs), shape
      `(n_atoms,)` integers; `None` when the format has none (the pipeline then numbers
      the atoms 1, 2, … in file order).
    - `species_types`: for each species, the file's own type number it was read from
      (LAMMPS type `k + 1` for species `k`), or `None` for formats without types.
    - `origin`: the corner of the periodic cell (LAMMPS `xlo ylo zlo`), shape
      `(n_spatial,)`; `None` means the origin. Positions are wrapped into the cell from here.
    - `image`: integer periodic images, shape `(n_atoms, n_spatial)`, such that the
      unwrapped position of atom `i` is `positions[i] + image[i] @ cell` (LAMMPS image
      flags); `None` when the positions are as unwrapped as the file knows. The pipeline
      wraps positions into the cell and adds the lattice translations it removed here.
    - `readings`: how the reader read what the file leaves open — where the species names
      came from, the units assumed, whether coordinates were unwrapped — one sentence
      each. The dry run, the closing summary and the output state them, so that no
      interpretation is silent.
    - `fixed`: `(n_atoms,)` booleans, `True` for atoms the file marks as held fixed (ASE
      `FixAtoms`, extended XYZ `move_mask`), or `None` when the file says nothing.
    - `phantoms`: `None` (not padded), or how many of the last atoms are padding the
      pipeline appended (masked atoms: no energy, no force, no output;
      `jacobian.pad_atoms`), possibly 0 for a structure whose size is a bucket already. A
      model that honors them puts `ATOM_MASK` into its `System.params`; the pipeline
      refuses one that does not.

    **Example:**

    ```python
    Structure(positions=np.array([[0.0, 0.0], [1.0, 0.0]]), species=np.array([0, 0]),
              species_names=("A",), cell=np.eye(2) * 4.0, pbc=(True, True),
              source="dimer.xyz")
    ```
    """

    positions: np.ndarray
    species: np.ndarray
    species_names: tuple[str, ...]
    cell: np.ndarray | None = None
    pbc: tuple[bool, ...] = ()
    length_units: str = "angstrom"
    source: str = ""
    frame: int = 0
    info: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    atom_ids: Any = None
    species_types: tuple[int, ...] | None = None
    origin: Any = None
    image: Any = None
    readings: tuple[str, ...] = ()
    fixed: np.ndarray | None = None
    phantoms: int | None = None

    @property
    def n_atoms(self) -> int:
        return int(self.positions.shape[0])

    @property
    def n_spatial(self) -> int:
        return int(self.positions.shape[1])


@dataclasses.dataclass(frozen=True)
class System:
    """An energy model bound to one structure: what the pipeline differentiates.

    **Arguments:**

    - `energy`: `energy(positions, params) -> scalar`, pure JAX, differentiable in both
      (forward mode at least; see `reverse_mode_safe`).
    - `params`: the resolved parameter values, `dict[str, Array]`.
    - `parameters`: the `Parameter` records, with shapes resolved to ints.
    - `positions`: the initial positions, `(n_atoms, n_spatial)`.
    - `null_space`: `null_space(positions) -> Array` of shape `(k, n_atoms * n_spatial)`,
      orthonormal rows spanning the known zero modes of the Hessian (rigid translations
      in a periodic box; translations and rotations in free space).
    - `interactions`: optional `interactions(positions, params) -> Array[int]` of shape
      `(n_pairs, 2)` listing the atom pairs (or, for many-body models, the atom pairs
      within the interaction range) that couple in the Hessian; the Jacobian engine
      uses it to recover a sparse Hessian with few JVPs. `None` means unknown (dense).
    - `observables`: named `g(positions, params) -> Array` the model offers (energy,
      stress, ...), for the pipeline's observable section.
    - `reverse_mode_safe`: `False` when reverse-mode parameter derivatives of `energy`
      are known to produce NaN (jax-md issue #258); consumers then use forward mode.
    - `length_units`, `energy_units`: units of positions and of the energy.
    - `metadata`: anything else (species names, cell, cutoff convention), plain values.

    **Example** (what an `EnergyModel.factory` returns):

    ```python
    def factory(structure, options):
        k = jnp.asarray(options.get("parameters", {}).get("stiffness", 1.0))
        x0 = jnp.asarray(structure.positions)
        def energy(x, params):
            return 0.5 * params["stiffness"] * jnp.sum((x - x0) ** 2)
        return System(energy=energy, params={"stiffness": k},
                      parameters=(Parameter("stiffness", units="eV/angstrom^2"),),
                      positions=x0)
    ```
    """

    energy: Callable[..., Any]
    params: Mapping[str, Any]
    parameters: tuple[Parameter, ...]
    positions: Any
    null_space: Callable[[Any], Any] | None = None
    interactions: Callable[..., Any] | None = None
    observables: Mapping[str, Callable[..., Any]] = dataclasses.field(default_factory=dict)
    reverse_mode_safe: bool = True
    length_units: str = "angstrom"
    energy_units: str = "eV"
    metadata: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class EnergyModel:
    """An energy model a plugin contributes.

    **Arguments:**

    - `name`: unique across all plugins, e.g. `"soft_sphere"`.
    - `factory`: `factory(structure: Structure, options: dict) -> System`; `options`
      holds the validated model options from the config (cutoffs, neighbor-list use,
      parameter values overriding defaults).
    - `description`: one line.
    - `parameters`: the parameters the model exposes (`Parameter` records).
    - `options_schema`: a JSON Schema fragment (an `object` schema) for the model's
      options, merged into the config schema by the host.
    - `check_options`: optional `check_options(options) -> list[str]`: the cross-field
      rules the options schema cannot express (`r_onset` below `r_cutoff`). It receives the
      options with the schema's top-level defaults filled in and returns one message per
      broken rule, naming the keys (`"r_onset (3.0) must be below r_cutoff (2.5)"`), empty
      when they hold. `validate`, `--dry-run` and `analyze` call it before any work, so it
      must be cheap and import nothing heavy.

    **Example:**

    ```python
    @hookimpl
    def sensitiv_energy_models():
        return [EnergyModel(name="harmonic_springs", factory=spring_network,
                            description="harmonic springs between atoms closer than a cutoff",
                            parameters=PARAMETERS, options_schema=OPTIONS_SCHEMA)]
    ```
    """

    name: str
    factory: Callable[..., System]
    description: str = ""
    parameters: tuple[Parameter, ...] = ()
    options_schema: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    check_options: Callable[[Mapping[str, Any]], Sequence[str]] | None = None


@dataclasses.dataclass(frozen=True)
class EquilibriumResult:
    """What an equilibrium solver returns (a pytree-free record; arrays may be JAX).

    **Arguments:**

    - `positions`: the equilibrium positions.
    - `converged`: whether the stopping criterion was met.
    - `iterations`: steps taken.
    - `residual`: the final stopping quantity (max |force| for FIRE).
    - `info`: anything else, plain values.

    **Example** (the end of a solver's `solve`):

    ```python
    force_max = jnp.max(jnp.abs(jax.grad(system.energy)(x, params)))
    return EquilibriumResult(positions=x, converged=force_max <= ftol,
                             iterations=steps, residual=force_max)
    ```
    """

    positions: Any
    converged: Any
    iterations: Any
    residual: Any
    info: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class EquilibriumSolver:
    """An equilibrium (minimization) solver a plugin contributes.

    **Arguments:**

    - `name`: unique across all plugins, e.g. `"fire"`.
    - `factory`: `factory(options: dict) -> solve` with
      `solve(system: System, positions, params) -> EquilibriumResult`.
    - `description`: one line.
    - `options_schema`: JSON Schema fragment for the solver's options (tolerances, steps).
    - `check_options`: optional `check_options(options) -> list[str]`: cross-field rules
      the options schema cannot express, as for `EnergyModel.check_options`.

    **Example:**

    ```python
    @hookimpl
    def sensitiv_equilibrium_solvers():
        return [EquilibriumSolver(name="steepest_descent", factory=make_steepest_descent,
                                  description="fixed-step steepest descent",
                                  options_schema={"type": "object", "properties": {
                                      "ftol": {"type": "number", "exclusiveMinimum": 0}}})]
    ```
    """

    name: str
    factory: Callable[..., Callable[..., EquilibriumResult]]
    description: str = ""
    options_schema: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    check_options: Callable[[Mapping[str, Any]], Sequence[str]] | None = None


@dataclasses.dataclass(frozen=True)
class OptimalityCondition:
    """An optimality condition a plugin contributes.

    **Arguments:**

    - `name`: unique across all plugins, e.g. `"stationary"`.
    - `factory`: `factory(system: System, options: dict) -> F` where
      `F(positions, params) -> Array` has the shape of `positions` and vanishes at
      equilibrium.
    - `description`: one line.
    - `options_schema`: JSON Schema fragment for its options.
    - `check_options`: optional `check_options(options) -> list[str]`: cross-field rules
      the options schema cannot express, as for `EnergyModel.check_options`.

    **Example:**

    ```python
    @hookimpl
    def sensitiv_optimality_conditions():
        gradient = lambda system, options: jax.grad(system.energy)
        return [OptimalityCondition(name="stationary", factory=gradient,
                                    description="F = ∇ₓE, zero at equilibrium")]
    ```
    """

    name: str
    factory: Callable[..., Callable[..., Any]]
    description: str = ""
    options_schema: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    check_options: Callable[[Mapping[str, Any]], Sequence[str]] | None = None


@dataclasses.dataclass(frozen=True)
class StructureReader:
    """A reader of simulation outputs a plugin contributes.

    **Arguments:**

    - `name`: the format name used in configs, unique across plugins, e.g. `"extxyz"`.
    - `read`: `read(path: str, options: dict) -> Sequence[Structure]`, one per frame;
      raises `sensitiv.errors.InputError` naming the path on bad input.
    - `extensions`: file-name endings it claims for format auto-detection (`(".xyz",)`).
    - `description`: one line.
    - `options_schema`: JSON Schema fragment for its options (frame selection, units).
    - `check_options`: optional `check_options(options) -> list[str]`: cross-field rules
      the options schema cannot express, as for `EnergyModel.check_options`.

    **Example:**

    ```python
    @hookimpl
    def sensitiv_structure_readers():
        return [StructureReader(name="extxyz", read=read_extxyz, extensions=(".extxyz", ".xyz"),
                                description="extended XYZ")]
    ```
    """

    name: str
    read: Callable[..., Sequence[Structure]]
    extensions: tuple[str, ...] = ()
    description: str = ""
    options_schema: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    check_options: Callable[[Mapping[str, Any]], Sequence[str]] | None = None
