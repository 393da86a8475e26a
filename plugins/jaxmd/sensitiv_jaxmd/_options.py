"""Options and parameter values: validation against the JSON Schema fragments, and
resolution of symbolic parameter shapes (`"species"`, `"atoms"`, `"spatial"`)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp
import jsonschema
import numpy as np

from sensitiv.errors import ConfigError
from sensitiv.records import Parameter

__all__ = ["validate_options", "resolve_parameters", "with_defaults"]

#: Symbolic dimensions a `Parameter.shape` may use in this plugin. `"species"` is the
#: contract's; `"atoms"` (one value per atom) and `"spatial"` (the number of spatial
#: dimensions) are this plugin's additions, resolved to ints in `System.parameters`.
SYMBOLS = ("species", "atoms", "spatial")


def with_defaults(schema: Mapping, options: Mapping) -> dict:
    """`options` completed with the schema's top-level `default`s."""
    out = {k: copy.deepcopy(v["default"]) for k, v in schema.get("properties", {}).items()
           if isinstance(v, Mapping) and "default" in v}
    out.update(options)
    return out


def validate_options(kind: str, name: str, schema: Mapping, options: Mapping | None) -> dict:
    """Validate `options` against `schema`; return them completed with defaults.

    Raises `ConfigError` naming the kind (`model`, `solver`, `condition`), the name and the
    offending key.
    """
    options = dict(options or {})
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(options), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        where = ".".join(str(p) for p in err.absolute_path) or "options"
        raise ConfigError(f"{kind} {name!r}: option {where}: {err.message}")
    return with_defaults(schema, options)


def resolve_shape(shape, n_species: int, n_atoms: int, dim: int) -> tuple[int, ...]:
    sizes = {"species": n_species, "atoms": n_atoms, "spatial": dim}
    return tuple(sizes[s] if isinstance(s, str) else int(s) for s in shape)


def resolve_units(units: str, length_units: str, energy_units: str) -> str:
    """UDUNITS text for a declared unit: `"length"`, `"energy"`, `"1/length"` or literal."""
    return {"length": length_units, "energy": energy_units, "1/length": f"{length_units}-1"}.get(units, units)


def resolve_parameters(
    model: str,
    declared: tuple[Parameter, ...],
    defaults: Mapping[str, Any],
    overrides: Mapping[str, Any] | None,
    n_species: int,
    n_atoms: int,
    dim: int,
    length_units: str = "1",
    energy_units: str = "1",
) -> tuple[dict, tuple[Parameter, ...]]:
    """Bind parameter values: overrides (from the config) over `defaults`, broadcast to the
    resolved shapes.

    Pair models are unit-agnostic: they declare units as `"length"`, `"energy"` or
    `"1/length"`, bound here to the structure's length units and the model's energy units.

    **Returns:** `(params, parameters)`: a dict of float arrays and the `Parameter` records
    with integer shapes and the bound defaults.
    """
    overrides = dict(overrides or {})
    known = {p.name for p in declared}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(
            f"model {model!r}: unknown parameter {unknown[0]!r}; it has {', '.join(sorted(known))}"
        )
    params, records = {}, []
    for p in declared:
        shape = resolve_shape(p.shape, n_species, n_atoms, dim)
        value = overrides.get(p.name, defaults.get(p.name, p.default))
        try:
            array = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"model {model!r}: parameter {p.name!r} is not numeric: {exc}") from None
        try:
            array = np.broadcast_to(array, shape).copy()
        except ValueError:
            raise ConfigError(
                f"model {model!r}: parameter {p.name!r} must have shape {shape} "
                f"(declared {p.shape}), got {array.shape}"
            ) from None
        if not np.all(np.isfinite(array)):
            raise ConfigError(f"model {model!r}: parameter {p.name!r} has non-finite values")
        params[p.name] = jnp.asarray(array)
        units = resolve_units(p.units, length_units, energy_units)
        records.append(Parameter(p.name, shape, units, array, p.differentiable, p.description))
    return params, tuple(records)
