"""Bind a `Model` to a `Structure`: the `System` record the pipeline differentiates.

This module does not import `_model` (models are duck-typed here): `_model` imports it.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import json
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse

from sensitiv.constraints import unwrapped_energy
from sensitiv.errors import ConfigError, InputError
from sensitiv.records import ATOM_MASK, Parameter, System

from ._context import Context, Neighbors
from ._neighbors import OK, REALLOCATABLE, NeighborList, explain_status
from ._options import resolve_parameters, validate_options
from ._spaces import deformation, space_from_structure

__all__ = ["build_system", "Diagnosis", "diagnose", "ensure_neighbors", "neighbor_list", "binding_of"]

STRAIN = Parameter(
    "strain",
    ("spatial", "spatial"),
    "1",
    0.0,
    True,
    "Homogeneous strain eps of the cell (symmetric part acts, F = I + eps); positions stay "
    "Cartesian in the reference cell.",
)

#: Above these sizes `neighbor_list: auto` switches the neighbor list on.
_AUTO_LIST_PAIR = 1024
_AUTO_LIST_MANY_BODY = 32
_AUTO_LIST_CANDIDATES = 4_000_000


@dataclasses.dataclass(frozen=True)
class Diagnosis:
    """Why an energy is (not) valid at `(positions, params)`.

    **Arguments:**

    - `status`: the neighbor-list status bitmask (0 = valid).
    - `message`: one line (`"ok"` when valid).
    - `cutoff`: the largest interaction cutoff at these parameters.
    - `max_neighbors`: the per-atom capacity of the neighbor list (`None` without one).
    """

    status: int
    message: str
    cutoff: float
    max_neighbors: int | None

    @property
    def ok(self) -> bool:
        return self.status == OK


def diagnose(system: System, positions, params) -> Diagnosis:
    """Explain whether `system.energy(positions, params)` is valid (outside `jit`).

    Energies of this plugin are NaN, never silently wrong, when the neighbor list
    overflows or the cell got thinner than the periodic images allocated; this says which.
    The plugin's solvers call it and reallocate the list where that helps.

    **Arguments:**

    - `system`: a `System` built by this plugin.
    - `positions`, `params`: where to look.

    **Returns:** a `Diagnosis`.

    **Example:**

    ```python
    d = sensitiv_jaxmd.diagnose(system, x, params)
    assert d.ok, d.message
    ```
    """
    return _binding(system).diagnose(positions, params)


def ensure_neighbors(system: System, positions, params) -> bool:
    """Reallocate the system's neighbor list if it cannot hold the pairs at
    `(positions, params)` (outside `jit`); returns whether it did.

    Call it before tracing functions of the energy at parameters far from those the
    system was built with (a larger σ, a compressive strain): traced energies cannot
    reallocate and return NaN instead. Functions traced before a reallocation must be
    re-traced.

    **Arguments:**

    - `system`: a `System` built by this plugin.
    - `positions`, `params`: the configuration the list must hold.

    **Returns:** whether the list was reallocated.

    **Example:**

    ```python
    sensitiv_jaxmd.ensure_neighbors(system, x, dict(params, sigma=1.3 * params["sigma"]))
    ```
    """
    return _binding(system).ensure(positions, params)


def neighbor_list(system: System) -> NeighborList:
    """The `NeighborList` of a system built by this plugin (its static shapes).

    **Arguments:**

    - `system`: a `System` built by this plugin.

    **Returns:** the `NeighborList`; `enabled` is false when every pair is a candidate.

    **Example:**

    ```python
    nlist = sensitiv_jaxmd.neighbor_list(system)
    print(nlist.grid, nlist.images, nlist.max_neighbors)
    ```
    """
    return _binding(system).nlist


def binding_of(system: System) -> _Binding | None:
    """The plugin's handle on `system` when this plugin built it (also through
    `sensitiv.constraints`: fixed atoms, a variable cell), else `None`."""
    energy = getattr(system, "energy", None)
    inner, unwrap = unwrapped_energy(energy)
    if not isinstance(inner, _Energy):
        return None
    if inner is energy:
        return inner.binding
    binding = inner.binding
    # The constrained coordinates map to the model's own before the list looks at them.
    return _Binding(binding.nlist, lambda x, p: binding.diagnose(*unwrap(jnp.asarray(x), p)),
                    lambda x, p: binding.ensure(*unwrap(jnp.asarray(x), p)))


def _binding(system: System) -> _Binding:
    binding = binding_of(system)
    if binding is None:
        raise TypeError("this System was not built by sensitiv_jaxmd (its energy is not one of "
                        "the plugin's); diagnose/ensure_neighbors/neighbor_list need one that is")
    return binding


@dataclasses.dataclass(frozen=True, eq=False)
class _Binding:
    """What the plugin keeps about a bound system besides the `System` record: its
    neighbor list and the host-side checks on it."""

    nlist: NeighborList
    diagnose: Callable[..., Diagnosis]
    ensure: Callable[..., bool]


class _Energy:
    """`System.energy` of this plugin: `energy(positions, params)`, a callable object that
    also carries the binding (so `diagnose`, `ensure_neighbors` and the solvers reach the
    neighbor list without callables in `System.metadata`)."""

    def __init__(self, evaluate: Callable[..., Any], binding: _Binding):
        self._evaluate = evaluate
        self.binding = binding
        self.__doc__ = evaluate.__doc__

    def __call__(self, positions, params):
        return self._evaluate(positions, params)


def _concrete(*trees) -> bool:
    return not any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(trees))


def _active(p):
    """The atom mask of parameters `p` as booleans (`False`: a phantom), `None` without one."""
    mask = p.get(ATOM_MASK) if isinstance(p, Mapping) else None
    return None if mask is None else jnp.asarray(mask) > 0.5


def _atom_mask(model, structure, n: int, declared) -> np.ndarray | None:
    """`ATOM_MASK`'s value for a structure with `Structure.phantoms` (`None` without), or a
    `ConfigError` for a model that cannot keep phantoms out of its energy."""
    phantoms = getattr(structure, "phantoms", None)
    if phantoms is None:
        return None
    per_atom = [p.name for p in declared if "atoms" in tuple(p.shape)]
    if per_atom:
        model.config_error(f"has per-atom parameters ({', '.join(per_atom)}), which padding would extend to "
                           f"phantom atoms; set jacobian.pad_atoms: false")
    if model.many_body and not model.masks_phantoms:
        model.config_error("does not declare that its per-atom terms vanish for phantom atoms (Model.masks_phantoms);"
                           " set jacobian.pad_atoms: false")
    if not 0 <= phantoms < n:
        raise InputError(f"structure {structure.source!r}: {phantoms} phantom atoms of {n}; at least one atom must "
                         f"be real")
    return (np.arange(n) < n - phantoms).astype(np.float64)


def _use_list(choice, model, n: int, images: int = 1) -> bool:
    if choice == "auto":
        # All pairs over every periodic image is n² · images candidates: past a few
        # million the cell list is cheaper even for pair models.
        return n > (_AUTO_LIST_MANY_BODY if model.many_body else _AUTO_LIST_PAIR) or n * n * images > _AUTO_LIST_CANDIDATES
    return bool(choice)


def build_system(model, structure, options: Mapping[str, Any] | None = None) -> System:
    """Bind an energy model of this plugin to a structure.

    **Arguments:**

    - `model`: a `Model` of this plugin (`sensitiv_jaxmd.MODELS[name]`).
    - `structure`: a `sensitiv.records.Structure` (Cartesian positions, cell rows,
      integer species).
    - `options`: the model's options (see its `options_schema`: `space`,
      `neighbor_list`, `neighbor_skin`, `neighbor_capacity_multiplier`, `energy_units`,
      and model-specific cutoffs or potential files), plus optionally `"parameters"`: a
      mapping of parameter name to value (number or nested list) overriding the defaults.

    **Returns:** a `System` whose `energy(x, params)` takes `x` Cartesian in the reference
    cell; with a periodic cell it has the parameter `"strain"` and the observable
    `"stress"`. Cells of any size are handled (periodic images beyond the minimum image
    are enumerated). `sensitiv_jaxmd.diagnose(system, x, params)` explains an invalid
    energy, `sensitiv_jaxmd.neighbor_list(system)` gives the neighbor list; `metadata`
    holds plain values only (cutoff, its convention, the options).

    **Example:**

    ```python
    system = sensitiv_jaxmd.build_system(sensitiv_jaxmd.MODELS["lennard_jones"], structure,
                                         {"r_cutoff": 3.0, "parameters": {"sigma": 1.1}})
    e = system.energy(system.positions, system.params)
    ```
    """
    options = dict(options or {})
    overrides = options.pop("parameters", None) or {}
    if not isinstance(overrides, Mapping):
        raise ConfigError(f"model {model.name!r}: 'parameters' must be a mapping name -> value")
    options = validate_options("model", model.name, model.full_options_schema(), options)
    model.check_options(options)

    space = space_from_structure(structure, options["space"])
    positions = jnp.asarray(np.asarray(structure.positions, dtype=np.float64))
    n, dim = positions.shape
    species = np.asarray(structure.species, dtype=np.int64).reshape(-1)
    names = tuple(structure.species_names) or ("X",)
    if species.shape != (n,) or (n and (species.min() < 0 or species.max() >= len(names))):
        raise InputError(
            f"structure {structure.source!r}: species must be {n} indices into {list(names)}"
        )
    n_species = len(names)
    present = np.zeros((n_species, n_species), dtype=bool)
    used = np.unique(species)
    present[np.ix_(used, used)] = True

    data = model.prepare(structure, options)
    declared = model.parameters + ((STRAIN,) if space.periodic else ())
    params, records = resolve_parameters(
        model.name, declared, model.defaults(structure, options), overrides, n_species, n, dim,
        length_units=structure.length_units,
        energy_units=options.get("energy_units") or model.energy_units,
    )
    mask = _atom_mask(model, structure, n, declared)
    if mask is not None:
        params[ATOM_MASK] = jnp.asarray(mask)
    ctx = Context(jnp.asarray(species, jnp.int32), n_species, present, options, dim, names, data)
    def deform(p):
        return deformation(p.get("strain"), dim) if space.periodic else jnp.eye(dim)

    cutoff0 = float(model.max_cutoff(params, ctx))
    images = np.prod(2 * np.asarray(space.image_counts(cutoff0, deform(params))) + 1)
    use_list = _use_list(options["neighbor_list"], model, n, int(images))
    key = _binding_key(model, options, space, species, names, use_list, n)
    bound = _BOUND.get(key)
    if bound is not None:
        # A structure equal to an earlier one in everything but positions and parameters
        # (the frames of a trajectory, parameter samples, repeated runs): its energy,
        # observables and neighbor list are reused, so every program compiled for them is
        # too. The list grows only if this frame needs more capacity.
        _BOUND.move_to_end(key)
        energy, observables, interactions = bound
        energy.binding.ensure(positions, params)  # with this structure's own atom mask, if any
        return _system(energy, params, records, positions, space, interactions, observables,
                       structure, options, model, names, cutoff0, energy.binding.nlist, ctx)
    nlist = NeighborList(space, use_list, options["neighbor_skin"],
                         options["neighbor_capacity_multiplier"])
    nlist.allocate(positions, cutoff0, deform(params), _active(params))

    def neighbors(x, p, F):
        cutoff = jax.lax.stop_gradient(model.max_cutoff(p, ctx))
        idx, shift, status = nlist.build(x, cutoff, F, _active(p))
        return idx, shift, status, cutoff

    def gather(x, p, F):
        """The `Neighbors` record at `(x, θ, F)` and the list's status."""
        idx, shift, status, _ = neighbors(x, p, F)
        valid = idx < n
        safe_idx = jnp.where(valid, idx, 0)
        active = _active(p)
        if active is not None:  # phantom atoms (padding): nobody's neighbors, none of their own
            valid = valid & active[:, None] & active[safe_idx]
        dR = space.displacement(x[:, None, :], x[safe_idx], F, shift)
        r2 = jnp.sum(dR**2, axis=-1)
        nonzero = valid & (r2 > 0)
        r = jnp.sqrt(jnp.where(nonzero, r2, 1.0))
        si = ctx.species[:, None]
        sj = ctx.species[safe_idx]
        cutoff = model.pair_cutoff(p, ctx, si, sj, jnp.arange(n)[:, None], safe_idx)
        inside = nonzero & (r < cutoff)
        return Neighbors(dR, r, inside, nonzero, safe_idx, si, sj, active), cutoff, status

    def energy_with(x, p, F):
        nb, cutoff, status = gather(x, p, F)
        if model.many_body:
            e = model.energy(p, ctx, nb)
        else:
            r_safe = jnp.where(nb.inside, nb.r, 0.5 * cutoff)
            pair = model.pair_energy(r_safe, p, ctx, nb.si, nb.sj, jnp.arange(n)[:, None], nb.j)
            e = 0.5 * jnp.sum(jnp.where(nb.inside, pair, 0.0))
        # An overflowing list or missing periodic images give NaN, never a truncated sum.
        # Multiplying (rather than `where`) makes every derivative NaN too: a `where`
        # would give zero forces, and a minimizer would stop there, "converged".
        return e * jnp.where(status == OK, 1.0, jnp.nan)

    compiled: dict = {}

    def jitted(name, fn):
        # The neighbor list's static shapes are read at trace time: key the cache on them,
        # so that calls after a reallocation re-trace. One compiled function per key also
        # spares eager callers the op-by-op dispatch.
        key = (name, nlist.key())
        if key not in compiled:
            # A fresh function object per key: jax's trace cache is keyed on the function,
            # so re-wrapping the same one would return the stale trace.
            compiled[key] = jax.jit(lambda *args: fn(*args))
        return compiled[key]

    def energy_raw(x, p):
        return energy_with(x, p, deform(p))

    def diagnose_fn(x, p) -> Diagnosis:
        build = jitted("build", lambda x, p: neighbors(x, p, deform(p)))
        _, _, status, cutoff = build(jnp.asarray(x), p)
        status = int(status)
        message = explain_status(status)
        if status != OK:
            message += f" (cutoff {float(cutoff):.6g}, {n} atoms)"
        return Diagnosis(status, message, float(cutoff), nlist.max_neighbors if nlist.compacted else None)

    def ensure_fn(x, p) -> bool:
        diagnosis = diagnose_fn(x, p)
        if diagnosis.status & REALLOCATABLE:
            nlist.allocate(jnp.asarray(x), diagnosis.cutoff, deform(p), _active(p))
            return True
        return False

    def evaluate(positions, params):
        """Potential energy at Cartesian `positions` (reference cell) and parameters `params`.

        NaN when the neighbor list cannot hold the pairs at these arguments (see
        `sensitiv_jaxmd.diagnose`); called outside any trace, it then reallocates the list
        and evaluates again, so only traced calls (`jit`, `grad`) can see that NaN.
        """
        value = jitted("energy", energy_raw)(positions, params)
        if _concrete(positions, params) and not np.isfinite(float(value)):
            if ensure_fn(positions, params):
                value = jitted("energy", energy_raw)(positions, params)
        return value

    energy = _Energy(evaluate, _Binding(nlist, diagnose_fn, ensure_fn))

    observables = {"energy": energy}
    if space.periodic:

        def stress_raw(x, p):
            F = deform(p)
            eye = jnp.eye(dim, dtype=F.dtype)
            # Cauchy (virial) stress: derivative with respect to an extra infinitesimal
            # strain applied on top of the current deformation, per deformed volume.
            g = jax.grad(lambda d: energy_with(x, p, (eye + d) @ F))(jnp.zeros_like(F))
            return 0.5 * (g + g.T) / space.volume(F)

        def stress(positions, params):
            """Virial (Cauchy) stress `(1/V) ∂E/∂ε` of the deformed cell, `(dim, dim)`."""
            return jitted("stress", stress_raw)(positions, params)

        observables["stress"] = stress

    def within_cutoff(x, p):
        nb, _, status = gather(x, p, deform(p))
        return nb.inside, nb.j, status

    def interactions(x, p):
        """Atom pairs `(i < j)` coupled in the Hessian at `(x, θ)`, `(n_pairs, 2)` int32.

        Pair models: pairs within their cutoff (through any periodic image). Many-body
        models: those, plus pairs sharing a neighbor (the three-body / embedding terms
        couple them).
        """
        x = jnp.asarray(x)
        within, safe_idx, status = jitted("within", within_cutoff)(x, p)
        if int(status) != OK and ensure_fn(x, p):
            within, safe_idx, status = jitted("within", within_cutoff)(x, p)
        if int(status) != OK:
            raise InputError(f"model {model.name!r}: cannot list interactions: {explain_status(int(status))}")
        within = np.asarray(within)
        rows = np.broadcast_to(np.arange(n)[:, None], within.shape)[within]
        cols = np.asarray(safe_idx)[within]
        adjacency = scipy.sparse.coo_matrix((np.ones(rows.size), (rows, cols)), shape=(n, n)).tocsr()
        adjacency = ((adjacency + adjacency.T) > 0).astype(np.float64)
        if model.many_body:
            adjacency = ((adjacency + adjacency @ adjacency) > 0).astype(np.float64)
        upper = scipy.sparse.triu(adjacency, k=1).tocoo()
        pairs = np.stack([upper.row, upper.col], axis=1).astype(np.int32)
        order = np.lexsort((pairs[:, 1], pairs[:, 0])) if len(pairs) else np.arange(0)
        return jnp.asarray(pairs[order].reshape(-1, 2))

    _BOUND[key] = (energy, observables, interactions)
    while len(_BOUND) > _BOUND_SIZE:
        _BOUND.popitem(last=False)
    return _system(energy, params, records, positions, space, interactions, observables,
                   structure, options, model, names, cutoff0, nlist, ctx)


#: Bound energies kept for reuse, keyed by everything their traces depend on but the
#: positions and the parameters (`_binding_key`).
_BOUND: collections.OrderedDict = collections.OrderedDict()
_BOUND_SIZE = 8


def _binding_key(model, options, space, species, names, use_list, n) -> tuple:
    """Everything a bound energy's closures read besides positions and parameters: the
    model, its options, the cell and its periodicity, the species of every atom."""
    cell = None if space.cell is None else np.asarray(space.cell, np.float64).tobytes()
    return (type(model), model.name, json.dumps(_plain(options), sort_keys=True, default=repr),
            space.dim, space.pbc, cell, n, np.asarray(species, np.int64).tobytes(), tuple(names),
            bool(use_list))


def _system(energy, params, records, positions, space, interactions, observables, structure, options,
            model, names, cutoff0, nlist, ctx) -> System:
    metadata = {
        "model": model.name,
        "space": space.kind,
        "pbc": space.pbc,
        "cell": None if space.cell is None else space.cell.tolist(),
        "species_names": names,
        "coordinates": "Cartesian, reference (unstrained) cell; strain F = I + sym(eps) is applied "
        "inside the energy to displacements and cell",
        "cutoff": cutoff0,
        "cutoff_convention": model.cutoff_convention(options),
        "periodic_images": list(nlist.images),
        "options": _plain(options),
        **model.describe(options, ctx),
    }
    return System(
        energy=energy,
        params=params,
        parameters=records,
        positions=positions,
        null_space=_real_null_space(space, params.get(ATOM_MASK)),
        interactions=interactions,
        observables=observables,
        reverse_mode_safe=True,
        length_units=structure.length_units,
        energy_units=options.get("energy_units") or model.energy_units,
        metadata=metadata,
    )


def _real_null_space(space, mask):
    """`space.null_space`, or with phantom atoms (`mask` 0) the rigid modes of the real atoms
    alone, zero on the phantoms: a solver or the engine projecting them out never moves a
    phantom, and rotations turn about the real atoms' centroid."""
    if mask is None:
        return space.null_space
    return functools.partial(space.null_space, real=np.asarray(mask) > 0.5)


def _plain(value):
    """Options as plain JSON-like values (lists, not tuples or arrays)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value
