"""Bind a `Model` to a `Structure`: the `System` record the pipeline differentiates."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse

from sensitiv.errors import ConfigError, InputError
from sensitiv.records import Parameter, System

from ._model import Context, Model
from ._neighbors import OK, REALLOCATABLE, NeighborList, explain_status
from ._options import resolve_parameters, validate_options
from ._spaces import deformation, describe_min_image, space_from_structure

__all__ = ["build_system", "Diagnosis", "diagnose", "ensure_neighbors"]

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
    overflows or the cutoff exceeds half the cell height; this says which. The plugin's
    solvers call it and reallocate the list where that helps.

    **Example:**

    ```python
    d = sensitiv_jaxmd.diagnose(system, x, params)
    assert d.ok, d.message
    ```
    """
    return system.metadata["diagnose"](positions, params)


def ensure_neighbors(system: System, positions, params) -> bool:
    """Reallocate the system's neighbor list if it cannot hold the pairs at
    `(positions, params)` (outside `jit`); returns whether it did.

    Call it before tracing functions of the energy at parameters far from those the
    system was built with (a larger σ, a compressive strain): traced energies cannot
    reallocate and return NaN instead. Functions traced before a reallocation must be
    re-traced. A cutoff beyond half the cell height cannot be fixed this way; `diagnose`
    reports it.
    """
    return system.metadata["ensure_neighbors"](positions, params)


def _concrete(*trees) -> bool:
    return not any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(trees))


def _use_list(choice, model: Model, n: int) -> bool:
    if choice == "auto":
        return n > (_AUTO_LIST_MANY_BODY if model.many_body else _AUTO_LIST_PAIR)
    return bool(choice)


def build_system(model: Model, structure, options: Mapping[str, Any] | None = None) -> System:
    """Bind an energy model of this plugin to a structure.

    **Arguments:**

    - `model`: a `Model` of this plugin (`sensitiv_jaxmd.MODELS[name]`).
    - `structure`: a `sensitiv.records.Structure` (Cartesian positions, cell rows,
      integer species).
    - `options`: the model's options (see its `options_schema`: `space`,
      `neighbor_list`, `neighbor_skin`, `neighbor_capacity_multiplier`, `energy_units`,
      and model-specific cutoffs), plus optionally `"parameters"`: a mapping of parameter
      name to value (number or nested list) overriding the defaults.

    **Returns:** a `System` whose `energy(x, params)` takes `x` Cartesian in the reference
    cell; with a periodic cell it has the parameter `"strain"` and the observable
    `"stress"`. `metadata["diagnose"](x, params)` returns a `Diagnosis`,
    `metadata["neighbor_list"]` the `NeighborList` (or `None`).

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

    declared = model.parameters + ((STRAIN,) if space.periodic else ())
    params, records = resolve_parameters(
        model.name, declared, model.defaults(structure, options), overrides, n_species, n, dim,
        length_units=structure.length_units,
        energy_units=options.get("energy_units") or model.energy_units,
    )
    ctx = Context(jnp.asarray(species, jnp.int32), n_species, present, options, dim)
    use_list = _use_list(options["neighbor_list"], model, n)
    nlist = NeighborList(space, use_list, options["neighbor_skin"],
                         options["neighbor_capacity_multiplier"])

    def deform(p):
        return deformation(p.get("strain"), dim) if space.periodic else jnp.eye(dim)

    cutoff0 = float(model.max_cutoff(params, ctx))
    problem = describe_min_image(space, cutoff0, deform(params))
    if problem:
        raise InputError(f"model {model.name!r} on {structure.source or 'the structure'}: {problem}")
    nlist.allocate(positions, cutoff0, deform(params))

    def neighbors(x, p, F):
        cutoff = jax.lax.stop_gradient(model.max_cutoff(p, ctx))
        idx, status = nlist.build(x, cutoff, F)
        return idx, status, cutoff

    def energy_with(x, p, F):
        idx, status, _ = neighbors(x, p, F)
        valid = idx < n
        safe_idx = jnp.where(valid, idx, 0)
        dR = space.displacement(x[:, None, :], x[safe_idx], F)
        r2 = jnp.sum(dR**2, axis=-1)
        nonzero = valid & (r2 > 0)
        r = jnp.sqrt(jnp.where(nonzero, r2, 1.0))
        si = ctx.species[:, None]
        sj = ctx.species[safe_idx]
        i = jnp.arange(n)[:, None]
        if model.many_body:
            inside = nonzero & (r < model.pair_cutoff(p, ctx, si, sj, i, safe_idx))
            e = model.energy(p, ctx, dR, r, inside)
        else:
            cutoff = model.pair_cutoff(p, ctx, si, sj, i, safe_idx)
            inside = nonzero & (r < cutoff)
            r_safe = jnp.where(inside, r, 0.5 * cutoff)
            pair = model.pair_energy(r_safe, p, ctx, si, sj, i, safe_idx)
            e = 0.5 * jnp.sum(jnp.where(inside, pair, 0.0))
        # An overflowing list or an invalid minimum image gives NaN, never a truncated sum.
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

    def energy(positions, params):
        """Potential energy at Cartesian `positions` (reference cell) and parameters `params`.

        NaN when the neighbor list cannot hold the pairs at these arguments (see
        `sensitiv_jaxmd.diagnose`); called outside any trace, it then reallocates the list
        and evaluates again, so only traced calls (`jit`, `grad`) can see that NaN.
        """
        value = jitted("energy", energy_raw)(positions, params)
        if nlist.enabled and _concrete(positions, params) and not np.isfinite(float(value)):
            if ensure_fn(positions, params):
                value = jitted("energy", energy_raw)(positions, params)
        return value

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

    def diagnose_fn(x, p) -> Diagnosis:
        build = jitted("build", lambda x, p: neighbors(x, p, deform(p)))
        _, status, cutoff = build(jnp.asarray(x), p)
        status = int(status)
        message = explain_status(status)
        if status != OK:
            message += f" (cutoff {float(cutoff):.6g}, {n} atoms)"
        return Diagnosis(status, message, float(cutoff), nlist.max_neighbors if nlist.enabled else None)

    def ensure_fn(x, p) -> bool:
        diagnosis = diagnose_fn(x, p)
        if nlist.enabled and diagnosis.status & REALLOCATABLE:
            nlist.allocate(jnp.asarray(x), diagnosis.cutoff, deform(p))
            return True
        return False

    def within_cutoff(x, p):
        F = deform(p)
        idx, status, _ = neighbors(x, p, F)
        valid = idx < n
        safe_idx = jnp.where(valid, idx, 0)
        dR = space.displacement(x[:, None, :], x[safe_idx], F)
        r = jnp.sqrt(jnp.sum(dR**2, axis=-1))
        cut = model.pair_cutoff(p, ctx, ctx.species[:, None], ctx.species[safe_idx],
                                jnp.arange(n)[:, None], safe_idx)
        return valid & (r < cut), safe_idx, status

    def interactions(x, p):
        """Atom pairs `(i < j)` coupled in the Hessian at `(x, θ)`, `(n_pairs, 2)` int32.

        Pair models: pairs within their cutoff. Many-body models: those, plus pairs sharing
        a neighbor (the three-body / embedding terms couple them).
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

    metadata = {
        "model": model.name,
        "space": space.kind,
        "pbc": space.pbc,
        "cell": None if space.cell is None else space.cell.tolist(),
        "species_names": names,
        "coordinates": "Cartesian, reference (unstrained) cell; strain F = I + sym(eps) is applied "
        "inside the energy to displacements and cell",
        "cutoff": cutoff0,
        "cutoff_convention": _cutoff_convention(model, options),
        "neighbor_list": nlist if nlist.enabled else None,
        "diagnose": diagnose_fn,
        "ensure_neighbors": ensure_fn,
        "options": {k: v for k, v in options.items()},
    }
    return System(
        energy=energy,
        params=params,
        parameters=records,
        positions=positions,
        null_space=space.null_space,
        interactions=interactions,
        observables=observables,
        reverse_mode_safe=True,
        length_units=structure.length_units,
        energy_units=options.get("energy_units") or model.energy_units,
        metadata=metadata,
    )


def _cutoff_convention(model: Model, options) -> str:
    if model.name in ("lennard_jones", "morse"):
        if options["cutoff_units"] == "sigma":
            return "r_cutoff and r_onset in units of each pair's sigma, evaluated at call time"
        return "r_cutoff and r_onset absolute lengths"
    if model.name == "stillinger_weber":
        return "cutoff a*sigma (both parameters), evaluated at call time"
    if model.name == "gupta":
        return "absolute cutoff option" + (" with C1 switch from r_onset" if options.get("r_onset") else "")
    return "cutoff at contact sigma_ij, evaluated at call time"
