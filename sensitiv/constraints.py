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

import jax
import jax.numpy as jnp
import numpy as np

from .errors import ConfigError, InputError

# No import of `sensitiv.records` (the host layer, above this core module): systems are
# transformed with `dataclasses.replace`, and the pressure's `Parameter` record is made
# from the strain's own.

__all__ = ["ConstrainedEnergy", "fix_atoms", "relax_cell", "unwrapped_energy", "CELL_MODES", "PRESSURE", "STRAIN",
           "TARGET_STRESS"]

#: The conventional name of a model's homogeneous strain parameter (`sensitiv.records`).
STRAIN = "strain"
#: The observable a model with a strain offers for the Cauchy stress (rotated with a `tri` cell).
STRESS_OBSERVABLE = "stress"
#: The parameter `relax_cell` adds for a hydrostatic target: the pressure.
PRESSURE = "pressure"
#: The parameter `relax_cell` adds for a full target: the Cauchy stress tensor `(d, d)`.
TARGET_STRESS = "target_stress"
#: Cell degrees of freedom `relax_cell` offers: `iso` (one scale factor: the shape is kept,
#: the mean normal stress reaches the target), `aniso` (the diagonal strains: lengths of an
#: orthogonal cell change independently, angles stay) and `tri` (every strain component).
CELL_MODES = ("iso", "aniso", "tri")


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


def _cell_variables(mode: str, d: int) -> int:
    """How many strain variables a cell mode relaxes."""
    return {"iso": 1, "aniso": d, "tri": d * (d + 1) // 2}[mode]


def _strain_tensor(values, mode: str, d: int):
    """The symmetric strain tensor ε (`F = I + ε`) of the cell variables (tensor components)."""
    if mode == "iso":
        return values[0] * jnp.eye(d, dtype=values.dtype)
    if mode == "aniso":
        return jnp.diag(values)
    i, j = np.triu_indices(d)
    return jnp.zeros((d, d), values.dtype).at[i, j].set(values).at[j, i].set(values)


def _frame(cell):
    """Rows: the right-handed orthonormal frame of a cell whose first axis is along its
    first vector and whose second lies in the plane of its first two (LAMMPS' orientation)."""
    e1 = cell[0] / jnp.linalg.norm(cell[0])
    b = cell[1] - jnp.dot(cell[1], e1) * e1
    e2 = b / jnp.linalg.norm(b)
    if cell.shape[0] == 2:
        return jnp.stack([e1, e2])
    return jnp.stack([e1, e2, jnp.cross(e1, e2)])


def _orientation(cell0, mode: str):
    """`rotation(eps) -> Q`: the rotation (acting on rows) that turns the rotation-free
    deformed cell `cell0 (I + ε)` back to the orientation of `cell0` as LAMMPS keeps a
    triclinic box: its first vector along the first vector of `cell0`, its second in the
    plane of the first two. The identity for `iso` and `aniso`, which do not rotate."""
    if mode != "tri":
        return lambda eps: jnp.eye(eps.shape[0], dtype=eps.dtype)
    frame0 = _frame(jnp.asarray(cell0))

    def rotation(eps):
        deformed = jnp.asarray(cell0, eps.dtype) @ (jnp.eye(eps.shape[0], dtype=eps.dtype) + eps)
        return _frame(deformed).T @ frame0.astype(eps.dtype)

    return rotation


def _deviatoric_load(volume0: float, rotation: Callable) -> Callable:
    """`load(eps, s)`: the work term of a deviatoric Cauchy stress target `s` held in the
    output frame.

    A non-hydrostatic Cauchy stress target is not conservative: no enthalpy has
    `σ(x, ε) = σ_target` as its stationary point (the work it does depends on the path).
    The generalized force on the strain is nonetheless exact: with `F = I + ε` the model's
    energy changes by `V tr(F⁻¹ σ dε)`, so stationarity of `E + load` in every symmetric
    `dε` is `sym(F⁻¹ V (σ − s')) = 0`, which (F positive definite) is `σ = s'` with
    `s' = Q s Qᵀ` the target seen from the rotation-free cell. The derivative of `load` is
    that force (a `custom_jvp`, itself differentiable: ∂F/∂x and ∂F/∂θ come from it, and
    ∂F/∂x is then not symmetric); its value is the linearized work `−V₀ tr(s ε)`, which
    only a solver's line search would read."""

    @jax.custom_jvp
    def load(eps, s):
        return -volume0 * jnp.sum(s * eps)

    @load.defjvp
    def load_jvp(primals, tangents):
        eps, s = primals
        deps, ds = tangents
        d = eps.shape[0]
        deformation = jnp.eye(d, dtype=eps.dtype) + eps
        q = rotation(eps)
        s_seen = q @ s @ q.T
        volume = volume0 * jnp.linalg.det(deformation)
        force = -volume * jnp.trace(jnp.linalg.solve(deformation, s_seen @ deps))
        return load(eps, s), force - volume0 * jnp.sum(ds * eps)

    return load


def _target(pressure, stress, d: int, mode: str):
    """`(name, value)` of the target parameter, checked against the cell mode."""
    if stress is None:
        return PRESSURE, np.asarray(float(pressure))
    values = np.asarray(stress, dtype=np.float64).reshape(-1)
    voigt = [(i, i) for i in range(d)] + ([(1, 2), (0, 2), (0, 1)] if d == 3 else [(0, 1)])
    if values.size != len(voigt):
        order = "sxx, syy, szz, syz, sxz, sxy" if d == 3 else "sxx, syy, sxy"
        raise ConfigError(f"cell.stress: {values.size} components for a {d}-D cell; give {len(voigt)} "
                          f"in Voigt order [{order}]")
    if mode == "iso":
        raise ConfigError("cell.stress: relax 'iso' keeps the shape and reaches a hydrostatic pressure only; "
                          "give cell.pressure, or relax 'aniso'/'tri' for a stress tensor")
    if mode == "aniso" and np.any(values[d:] != 0):
        raise ConfigError("cell.stress: shear components need relax 'tri' ('aniso' keeps the angles); "
                          "set them to 0 or use cell.relax: tri")
    tensor = np.zeros((d, d))
    for value, (i, j) in zip(values, voigt):
        tensor[i, j] = tensor[j, i] = value
    return TARGET_STRESS, tensor


def relax_cell(system: "System", cell, mode: str = "aniso", pressure: float = 0.0, stress=None) -> "System":
    """The `System` whose coordinates are the positions and the cell's strain, at a target
    pressure or Cauchy stress tensor (LAMMPS `fix box/relax`, ASE `FrechetCellFilter`).

    The cell deforms by `F = I + ε` (ε symmetric) through the model's `"strain"`
    parameter; positions stay Cartesian in the reference cell inside, as the model expects
    (so atoms fixed by `fix_atoms` first follow the cell's deformation, as LAMMPS `fix
    box/relax` dilates every atom). With `tri` the output (positions, cell, stress) is
    rotated back to the reference cell's orientation as LAMMPS keeps a triclinic box: the
    first lattice vector keeps its direction, the second stays in the plane of the first
    two. The strain variables are stored as extra rows of the coordinates, scaled by
    `√n·(V₀/n)^(1/d)` so that their stiffness is that of an atom (a force-based stopping
    rule then bounds the stress by `ftol / ((V₀/n)^((d−1)/d)·√n)`); unused entries of the
    last row are declared zero modes.

    A pressure `P` is the enthalpy `E + P·(V − V₀)`. A stress tensor `σ_t` is its mean
    pressure `P = −tr σ_t / d` that way, plus the deviatoric rest as an exact generalized
    force on the strain (not an energy: see `_deviatoric_load`), so that the equilibrium is
    `∇ₓE = 0` and `σ(x, h) = σ_t` (every component with `tri`, the diagonal with `aniso`,
    the mean with `iso`).

    **Arguments:**

    - `system`: a `System` with a `"strain"` parameter (periodic), zero-valued; possibly
      already constrained by `fix_atoms`.
    - `cell`: the reference cell (rows), `(d, d)`.
    - `mode`: `"iso"` (one scale factor), `"aniso"` (the `d` normal strains) or `"tri"`
      (all `d(d+1)/2` components).
    - `pressure`: the target pressure, in energy / length^d of the system (positive
      compresses); it becomes the differentiable parameter `"pressure"`.
    - `stress`: instead of `pressure`, the target Cauchy stress in Voigt order (`[sxx, syy,
      szz, syz, sxz, sxy]`, or `[sxx, syy, sxy]` in 2-D), the sign of the `"stress"`
      observable (tension positive: LAMMPS' `x P` is `sxx = −P`); it becomes the symmetric
      parameter `"target_stress"`, `(d, d)`.

    **Returns:** the `System`: coordinates `(n + rows, d)`; parameters those of `system`
    without `"strain"`, plus `"pressure"` or `"target_stress"`; observables those of
    `system` at the strained cell (so `"stress"` is the Cauchy stress of the relaxed cell,
    in the output orientation) with `"energy"` the model's energy `E` (not the enthalpy);
    `energy.positions` the Cartesian positions in the relaxed cell, `energy.cell` its
    lattice vectors.

    **Raises:** `ConfigError` for a system without strain, a non-zero strain value, an
    unknown mode, a stress tensor with `iso`, shear targets with `aniso`, or a stress of
    the wrong length.

    **Example:**

    ```python
    relaxed = sensitiv.constraints.relax_cell(system, structure.cell, "tri",
                                              stress=[0.0, 0.0, -0.01, 0.0, 0.0, 0.002])
    ```
    """
    if mode not in CELL_MODES:
        raise ConfigError(f"cell.relax: unknown mode {mode!r}; use one of {', '.join(CELL_MODES)}")
    params0 = dict(system.params)
    if STRAIN not in params0:
        raise ConfigError("cell.relax: the model has no 'strain' parameter for this structure "
                          "(a variable cell needs a periodic cell)")
    strain0 = np.asarray(params0.pop(STRAIN))
    if np.any(strain0 != 0):
        raise ConfigError("cell.relax: model.parameters.strain must be zero with a variable cell "
                          "(the cell's strain is an unknown of the equilibrium)")
    x0 = jnp.asarray(system.positions)
    n, d = x0.shape
    target, target_value = _target(pressure, stress, d, mode)
    if target in params0:
        raise ConfigError(f"cell.relax: the model already has a parameter named {target!r}")
    cell0 = np.asarray(cell, dtype=np.float64)
    if cell0.shape != (d, d):
        raise InputError(f"cell.relax: the reference cell must be ({d}, {d}), got {cell0.shape}")
    volume0 = abs(float(np.linalg.det(cell0)))
    k = _cell_variables(mode, d)
    rows = math.ceil(k / d)
    n_atoms = int(np.asarray(_base_positions(system.energy, x0, system.params)).shape[0])
    scale = math.sqrt(n_atoms) * (volume0 / n_atoms) ** (1.0 / d)
    base = system.energy
    eye = np.eye(d)
    rotation = _orientation(cell0, mode)
    load = _deviatoric_load(volume0, rotation) if target == TARGET_STRESS else None

    def split(z, params):
        eps = _strain_tensor(z[n:].reshape(-1)[:k] / scale, mode, d)
        base_params = {key: value for key, value in params.items() if key != target}
        base_params[STRAIN] = eps
        return z[:n], base_params, eps

    def unwrap(z, params):
        x, base_params, _ = split(z, params)
        return x, base_params

    def evaluate(z, params):
        x, base_params, eps = split(z, params)
        volume = volume0 * jnp.linalg.det(jnp.asarray(eye, eps.dtype) + eps)
        if load is None:
            return base(x, base_params) + params[PRESSURE] * (volume - volume0)
        sigma = 0.5 * (params[TARGET_STRESS] + params[TARGET_STRESS].T)
        mean = jnp.trace(sigma) / d
        deviator = sigma - mean * jnp.asarray(eye, sigma.dtype)
        return base(x, base_params) - mean * (volume - volume0) + load(eps, deviator)

    def positions(z, params):
        x, base_params, eps = split(z, params)
        deformation = (jnp.asarray(eye, eps.dtype) + eps).T @ rotation(eps)
        return _base_positions(base, x, base_params) @ deformation

    def relaxed_cell(z, params):
        _, _, eps = split(z, params)
        return jnp.asarray(cell0, eps.dtype) @ (jnp.asarray(eye, eps.dtype) + eps).T @ rotation(eps)

    energy = ConstrainedEnergy(evaluate, base, unwrap, positions, relaxed_cell)

    def lifted(name, g):
        def observable(z, params):
            x, base_params, eps = split(z, params)
            value = g(x, base_params)
            if name == STRESS_OBSERVABLE and mode == "tri":  # seen from the output orientation
                q = rotation(eps)
                value = q.T @ value @ q
            return value

        observable.__doc__ = g.__doc__
        return observable

    observables = {name: lifted(name, g) for name, g in system.observables.items()}
    observables.setdefault("energy", lifted("energy", base))
    unused = rows * d - k  # entries of the last row no strain variable uses: zero modes
    padding = np.zeros((unused, (n + rows) * d))
    padding[:, n * d + k:] = np.eye(unused)
    null_space = None
    if system.null_space is not None or unused:

        def null_space(z):
            z = jnp.asarray(z)
            parts = [jnp.asarray(padding, z.dtype)]
            if system.null_space is not None:
                modes = jnp.asarray(system.null_space(z[:n]), z.dtype)
                parts.insert(0, jnp.concatenate([modes, jnp.zeros((modes.shape[0], rows * d), z.dtype)], axis=1))
            return jnp.concatenate(parts, axis=0)

    dtype = x0.dtype
    params = {**params0, target: jnp.asarray(target_value, dtype)}
    units = f"{system.energy_units} {system.length_units}-{d}"
    strain_record = next((p for p in system.parameters if p.name == STRAIN), None)
    if strain_record is None:
        raise ConfigError("cell.relax: the model's parameter records lack 'strain'")
    if target == PRESSURE:
        description = ("target hydrostatic pressure of the variable cell (positive compresses); "
                       "the energy minimized is the enthalpy E + P (V - V0)")
        target_record = dataclasses.replace(strain_record, name=PRESSURE, shape=(), units=units,
                                            default=float(pressure), differentiable=True,
                                            description=description)
    else:
        description = ("target Cauchy stress of the variable cell (tension positive, as the stress "
                       "observable; LAMMPS box/relax pressure components are its negatives)")
        target_record = dataclasses.replace(strain_record, name=TARGET_STRESS, shape=(d, d), units=units,
                                            default=target_value.tolist(), differentiable=True,
                                            description=description)
    parameters = tuple(p for p in system.parameters if p.name != STRAIN) + (target_record,)
    metadata = {**dict(system.metadata or {}), "cell_relax": mode, "cell_dof_scale": scale,
                "reference_volume": volume0, "cell_target": target}
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

