"""Constraints on an equilibrium as `System` transformations: fixed atoms and a variable cell.

Both return a new `System` whose coordinates are the *free* variables of the equilibrium,
so every solver, optimality condition and the Jacobian engine work on them unchanged:

- `fix_atoms(system, fixed)`: the coordinates are the free atoms' positions only. Fixed
  atoms stay where they are (LAMMPS `fix setforce 0 0 0` on a minimization, ASE
  `FixAtoms`); they are not unknowns of `F(x, θ) = 0`, so their rows of `dx*/dθ` are
  exactly zero and they add no zero mode. Rigid modes they pin leave the null space (in
  a periodic cell one fixed atom pins the translations).
- `relax_cell(system, cell, mode, pressure)`: the coordinates are the positions plus the
  cell's strain, and the energy is the enthalpy `H = E(x, ε) + P (V(ε) − V₀)`; its
  stationarity is `∇ₓE = 0` and `σ = −P·I` together (LAMMPS `fix box/relax`, ASE
  `FrechetCellFilter` with `scalar_pressure`). `∂(x, cell)/∂θ` then includes the cell's
  response, and `pressure` is a parameter like any other (`∂cell/∂P`: compressibility).

The transformed system's energy is a `ConstrainedEnergy`: it keeps the energy it wraps
(`base`) and maps coordinates back (`unwrap`), so a plugin's solver can still reach its
own energy (neighbor-list reallocation), and `positions(z, params)` / `cell(z, params)`
give the full Cartesian positions and the (relaxed) cell as differentiable functions of
the coordinates, which the pipeline uses to write `dx_dtheta` and `dcell_dtheta`.

**Example:**

```python
import sensitiv.constraints as sc
free = sc.fix_atoms(system, fixed=structure.positions[:, 2] < 2.0)   # a frozen slab bottom
relaxed = sc.relax_cell(free, structure.cell, mode="aniso", pressure=0.0)
z = fire(relaxed, relaxed.positions, relaxed.params).positions
x, cell = relaxed.energy.positions(z, relaxed.params), relaxed.energy.cell(z, relaxed.params)
```
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

import jax.numpy as jnp
import numpy as np

from .errors import ConfigError, InputError

# No import of `sensitiv.records` (the host layer, above this core module): systems are
# transformed with `dataclasses.replace`, and the pressure's `Parameter` record is made
# from the strain's own.

__all__ = ["ConstrainedEnergy", "fix_atoms", "relax_cell", "unwrapped_energy", "CELL_MODES", "PRESSURE", "STRAIN"]

#: The conventional name of a model's homogeneous strain parameter (`sensitiv.records`).
STRAIN = "strain"
#: The parameter `relax_cell` adds: the target hydrostatic pressure.
PRESSURE = "pressure"
#: Cell degrees of freedom `relax_cell` offers: `aniso` (the diagonal strains: lengths of an
#: orthogonal cell change independently, angles stay) and `tri` (all six strain components).
CELL_MODES = ("aniso", "tri")


class ConstrainedEnergy:
    """The energy of a constrained `System`: `energy(z, params)`.

    **Arguments:**

    - `evaluate`: `evaluate(z, params) -> scalar`.
    - `base`: the energy of the system it constrains (callable `(x, params)`).
    - `unwrap`: `unwrap(z, params) -> (x, base_params)`, the coordinates and parameters
      of the constrained system (traceable).
    - `positions`: `positions(z, params) -> (n_atoms, d)` Cartesian positions of every
      atom (fixed ones included; in the relaxed cell when the cell varies).
    - `cell`: `cell(z, params) -> (d, d)` lattice vectors (rows) of the relaxed cell, or
      `None` when the cell is held.

    **Example:**

    ```python
    free = sensitiv.constraints.fix_atoms(system, fixed)
    x_full = free.energy.positions(free.positions, free.params)
    ```
    """

    def __init__(self, evaluate, base, unwrap, positions, cell=None):
        self._evaluate = evaluate
        self.base = base
        self.unwrap = unwrap
        self.positions = positions
        self.cell = cell
        self.__doc__ = getattr(evaluate, "__doc__", None)

    def __call__(self, z, params):
        return self._evaluate(z, params)


def _base_positions(energy, x, params):
    """Full Cartesian positions of a (possibly constrained) system's coordinates."""
    return energy.positions(x, params) if isinstance(energy, ConstrainedEnergy) else x


def _base_cell(energy, x, params):
    if isinstance(energy, ConstrainedEnergy) and energy.cell is not None:
        return energy.cell(x, params)
    return None


def _left_null_space(matrix: np.ndarray, tol: float = 1e-10) -> np.ndarray:
    """Orthonormal rows `c` with `c @ matrix = 0` (`matrix`: `(k, m)`)."""
    if matrix.shape[1] == 0:
        return np.eye(matrix.shape[0])
    u, s, _ = np.linalg.svd(matrix, full_matrices=True)
    rank = int(np.sum(s > tol * max(1.0, s.max() if s.size else 0.0)))
    return u[:, rank:].T


def fix_atoms(system: "System", fixed) -> "System":
    """The `System` whose coordinates are the free atoms' positions; fixed atoms stay put.

    **Arguments:**

    - `system`: any `System` (any plugin's).
    - `fixed`: `(n_atoms,)` booleans, `True` for a fixed atom.

    **Returns:** a `System` over `(n_free, d)` coordinates (the same object when no atom is
    fixed). Its `null_space` spans the rigid modes that move no fixed atom (`None` when
    the fixed atoms pin them all, as one fixed atom does in a periodic cell);
    `interactions` lists pairs of free atoms by their free index; observables take the
    free coordinates. `energy.positions(z, params)` puts the fixed atoms back.

    **Raises:** `InputError` when the mask has the wrong length or fixes every atom.

    **Example:**

    ```python
    free = sensitiv.constraints.fix_atoms(system, np.arange(n) < 4)
    result = solve(free, free.positions, free.params)
    ```
    """
    x0 = jnp.asarray(system.positions)
    n, d = x0.shape
    fixed = np.asarray(fixed, dtype=bool).reshape(-1)
    if fixed.shape != (n,):
        raise InputError(f"fixed atoms: a mask of {fixed.size} entries for {n} atoms")
    if not fixed.any():
        return system
    free = np.flatnonzero(~fixed)
    if free.size == 0:
        raise InputError(f"fixed atoms: all {n} atoms are fixed; nothing is left to relax")
    free_index = jnp.asarray(free)
    base = system.energy

    def expand(z):
        return x0.astype(z.dtype).at[free_index].set(z)

    def unwrap(z, params):
        return expand(z), params

    def evaluate(z, params):
        return base(expand(z), params)

    def positions(z, params):
        return _base_positions(base, expand(z), params)

    def cell(z, params):
        return _base_cell(base, expand(z), params)

    has_cell = isinstance(base, ConstrainedEnergy) and base.cell is not None
    energy = ConstrainedEnergy(evaluate, base, unwrap, positions, cell if has_cell else None)

    def free_modes(x):
        """Rigid modes of the full system that move no fixed atom, on the free atoms."""
        modes = np.asarray(system.null_space(x), dtype=np.float64)
        k = modes.shape[0]
        modes = modes.reshape(k, n, d)
        combos = _left_null_space(modes[:, fixed, :].reshape(k, -1))
        kept = (combos @ modes[:, free, :].reshape(k, -1)) if combos.shape[0] else np.zeros((0, free.size * d))
        return kept  # orthonormal: the combinations vanish on the fixed atoms

    null_space = None
    if system.null_space is not None and free_modes(np.asarray(x0)).shape[0]:

        def null_space(z):
            return jnp.asarray(free_modes(np.asarray(expand(jnp.asarray(z)))), jnp.asarray(z).dtype)

    interactions = None
    if system.interactions is not None:
        new_index = np.full(n, -1, dtype=np.int64)
        new_index[free] = np.arange(free.size)

        def interactions(z, params):
            pairs = np.asarray(system.interactions(expand(jnp.asarray(z)), params)).reshape(-1, 2)
            mapped = new_index[pairs]
            return jnp.asarray(mapped[(mapped >= 0).all(axis=1)].astype(np.int32).reshape(-1, 2))

    observables = {name: _composed(g, expand) for name, g in system.observables.items()}
    metadata = {**dict(system.metadata or {}), "fixed_atoms": int(fixed.sum())}
    return dataclasses.replace(system, energy=energy, positions=x0[free_index], null_space=null_space,
                               interactions=interactions, observables=observables, metadata=metadata)


def _composed(g: Callable, expand: Callable) -> Callable:
    def observable(z, params):
        return g(expand(z), params)

    observable.__doc__ = g.__doc__
    return observable


def _voigt_tensor(values, mode: str, d: int):
    """The symmetric strain tensor of the cell variables (tensor shear components)."""
    if mode == "aniso":
        return jnp.diag(values)
    i, j = np.triu_indices(d)
    eps = jnp.zeros((d, d), values.dtype).at[i, j].set(values).at[j, i].set(values)
    return eps


def relax_cell(system: "System", cell, mode: str = "aniso", pressure: float = 0.0) -> "System":
    """The `System` whose coordinates are the positions and the cell's strain, at a target
    hydrostatic pressure: its energy is the enthalpy `E(x, ε) + P·(V(ε) − V₀)`.

    The cell deforms by `F = I + ε` (ε symmetric, no rotation) through the model's
    `"strain"` parameter; positions stay Cartesian in the reference cell inside, as the
    model expects (so atoms fixed by `fix_atoms` first follow the cell's deformation, as
    LAMMPS `fix box/relax` dilates every atom). The strain variables are stored as extra rows of the coordinates,
    scaled by `√n·(V₀/n)^(1/d)` so that their stiffness is that of an atom: a force-based
    stopping rule then bounds the stress by `ftol / ((V₀/n)^((d−1)/d)·√n)`.

    **Arguments:**

    - `system`: a `System` with a `"strain"` parameter (periodic), zero-valued; possibly
      already constrained by `fix_atoms`.
    - `cell`: the reference cell (rows), `(d, d)`.
    - `mode`: `"aniso"` (the `d` normal strains) or `"tri"` (all six components; 3-D).
    - `pressure`: the target pressure, in energy / length^d of the system (positive
      compresses); it becomes the differentiable parameter `"pressure"`.

    **Returns:** the `System`: coordinates `(n + rows, d)`; parameters those of `system`
    without `"strain"`, plus `"pressure"`; observables those of `system` at the strained
    cell (so `"stress"` is the Cauchy stress of the relaxed cell) with `"energy"` the
    model's energy `E` (not the enthalpy); `energy.positions` the Cartesian positions in
    the relaxed cell, `energy.cell` its lattice vectors.

    **Raises:** `ConfigError` for a system without strain, a non-zero strain value, an
    unknown mode, or `"tri"` outside 3-D.

    **Example:**

    ```python
    relaxed = sensitiv.constraints.relax_cell(system, structure.cell, "aniso", pressure=0.0)
    ```
    """
    if mode not in CELL_MODES:
        raise ConfigError(f"cell.relax: unknown mode {mode!r}; use one of {', '.join(CELL_MODES)}")
    params0 = dict(system.params)
    if STRAIN not in params0:
        raise ConfigError("cell.relax: the model has no 'strain' parameter for this structure "
                          "(a variable cell needs a periodic cell)")
    if PRESSURE in params0:
        raise ConfigError("cell.relax: the model already has a parameter named 'pressure'")
    strain0 = np.asarray(params0.pop(STRAIN))
    if np.any(strain0 != 0):
        raise ConfigError("cell.relax: model.parameters.strain must be zero with a variable cell "
                          "(the cell's strain is an unknown of the equilibrium)")
    x0 = jnp.asarray(system.positions)
    n, d = x0.shape
    if mode == "tri" and d != 3:
        raise ConfigError(f"cell.relax: 'tri' needs a 3-D cell (this one is {d}-D); use 'aniso'")
    cell0 = np.asarray(cell, dtype=np.float64)
    if cell0.shape != (d, d):
        raise InputError(f"cell.relax: the reference cell must be ({d}, {d}), got {cell0.shape}")
    volume0 = abs(float(np.linalg.det(cell0)))
    k = d if mode == "aniso" else d * (d + 1) // 2
    rows = math.ceil(k / d)
    if rows * d != k:
        raise ConfigError(f"cell.relax: mode {mode!r} does not fit {d}-D coordinates")
    n_atoms = int(np.asarray(_base_positions(system.energy, x0, system.params)).shape[0])
    scale = math.sqrt(n_atoms) * (volume0 / n_atoms) ** (1.0 / d)
    base = system.energy
    eye = np.eye(d)

    def split(z, params):
        eps = _voigt_tensor(z[n:].reshape(-1)[:k] / scale, mode, d)
        base_params = {key: value for key, value in params.items() if key != PRESSURE}
        base_params[STRAIN] = eps
        return z[:n], base_params, eps

    def unwrap(z, params):
        x, base_params, _ = split(z, params)
        return x, base_params

    def evaluate(z, params):
        x, base_params, eps = split(z, params)
        volume = volume0 * jnp.linalg.det(jnp.asarray(eye, eps.dtype) + eps)
        return base(x, base_params) + params[PRESSURE] * (volume - volume0)

    def positions(z, params):
        x, base_params, eps = split(z, params)
        return _base_positions(base, x, base_params) @ (jnp.asarray(eye, eps.dtype) + eps).T

    def relaxed_cell(z, params):
        _, _, eps = split(z, params)
        return jnp.asarray(cell0, eps.dtype) @ (jnp.asarray(eye, eps.dtype) + eps).T

    energy = ConstrainedEnergy(evaluate, base, unwrap, positions, relaxed_cell)

    def lifted(g):
        def observable(z, params):
            x, base_params, _ = split(z, params)
            return g(x, base_params)

        observable.__doc__ = g.__doc__
        return observable

    observables = {name: lifted(g) for name, g in system.observables.items()}
    observables.setdefault("energy", lifted(base))
    null_space = None
    if system.null_space is not None:

        def null_space(z):
            modes = jnp.asarray(system.null_space(jnp.asarray(z)[:n]))
            return jnp.concatenate([modes, jnp.zeros((modes.shape[0], rows * d), modes.dtype)], axis=1)

    dtype = x0.dtype
    params = {**params0, PRESSURE: jnp.asarray(pressure, dtype)}
    units = f"{system.energy_units} {system.length_units}-{d}"
    description = ("target hydrostatic pressure of the variable cell (positive compresses); "
                   "the energy minimized is the enthalpy E + P (V - V0)")
    strain_record = next((p for p in system.parameters if p.name == STRAIN), None)
    if strain_record is None:
        raise ConfigError("cell.relax: the model's parameter records lack 'strain'")
    pressure_record = dataclasses.replace(strain_record, name=PRESSURE, shape=(), units=units,
                                          default=float(pressure), differentiable=True, description=description)
    parameters = tuple(p for p in system.parameters if p.name != STRAIN) + (pressure_record,)
    metadata = {**dict(system.metadata or {}), "cell_relax": mode, "cell_dof_scale": scale,
                "reference_volume": volume0}
    z0 = jnp.concatenate([x0, jnp.zeros((rows, d), dtype)], axis=0)
    return dataclasses.replace(system, energy=energy, params=params, parameters=parameters, positions=z0,
                               null_space=null_space, interactions=None, observables=observables,
                               metadata=metadata)


def unwrapped_energy(energy) -> tuple[Any, Callable[[Any, Mapping], tuple[Any, Mapping]]]:
    """`(innermost energy, unwrap)`: the energy a chain of constraints wraps and the map
    from the outer coordinates and parameters to its own (identity for a plain energy).

    **Arguments:**

    - `energy`: a `System.energy`, constrained or not.

    **Returns:** the pair; plugins use it to reach their own energy object (its neighbor
    list) from a constrained system.

    **Example:**

    ```python
    inner, unwrap = sensitiv.constraints.unwrapped_energy(system.energy)
    x, params = unwrap(z, system.params)
    ```
    """
    maps = []
    while isinstance(energy, ConstrainedEnergy):
        maps.append(energy.unwrap)
        energy = energy.base

    def unwrap(z, params):
        for step in maps:
            z, params = step(z, params)
        return z, params

    return energy, unwrap

