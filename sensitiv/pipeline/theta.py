"""The parameters θ: labels, scalar components, and binding a model's values to a structure.

The config names parameters (`sigma`) or single components (`sigma[0,1]`); every selected
scalar component is one entry of θ and one label of the output's `parameter` dimension.
A square per-species parameter (shape `("species", "species")`) whose value is symmetric
is differentiated *symmetrically*: the component `[i,j]` (`i < j`) moves both `[i,j]` and
`[j,i]`, so `sigma[0,1]` is the A–B interaction diameter. The `strain` (which acts through
its symmetric part, `F = I + (ε + εᵀ)/2`) has six components in 3-D, its upper triangle,
in Voigt's convention: `strain[i,i]` is the normal strain ε_ii and `strain[i,j]` (`i < j`)
the **engineering shear** γ_ij = 2 ε_ij, the number the Python API moves when it changes
the entry `[i,j]` of the strain tensor. So the relaxed-ion elastic constants are
C_ab = dσ_a/dθ_b with no factor.

Indices along a `"species"` dimension may also be written as species names:
`A[Si,Si,C]` is `A[0,0,1]` when the structure's species are `(Si, C)`. Models that say so
(`System.metadata["index_labels"] == "species"`, e.g. the LAMMPS potential-file models of
sensitiv-jaxmd, whose parameters belong to element pairs and triplets as the file names
them) are labelled that way in the output too.

This module holds no JAX: the config validates labels with it without loading the
numerical core.

**Example:**

```python
from sensitiv.pipeline import theta
theta.parse_parameter_label("sigma[0,1]")     # ('sigma', (0, 1))
```
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import ConfigError, InputError, PluginError
from ..records import EnergyModel, Parameter, Structure, System

__all__ = [
    "STRAIN",
    "PRESSURE",
    "ThetaComponent",
    "parse_parameter_label",
    "resolve_shape",
    "bind_model",
    "theta_components",
]

#: The conventional name of a homogeneous strain parameter (see `sensitiv.records`); models
#: add it to their `System` when the structure is periodic, so it is accepted for every model.
STRAIN = "strain"
#: The target pressure a relaxing cell adds to the parameters (`sensitiv.constraints.PRESSURE`,
#: spelt here too so that validating a config loads no JAX).
PRESSURE = "pressure"

#: `name` or `name[i,j,...]`; an index is a number or, along a species dimension, a species name.
LABEL = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(\[(?P<index>[A-Za-z0-9_]+(,[A-Za-z0-9_]+)*)\])?$")


@dataclasses.dataclass(frozen=True)
class ThetaComponent:
    """One scalar entry of θ.

    **Arguments:**

    - `label`: the output label, `"sigma[0,1]"` or `"epsilon"`.
    - `name`: the parameter name.
    - `index`: the component index (`()` for scalars).
    - `tied`: the transposed index moved together with `index` (symmetric parameters), or `None`.
    - `units`: the parameter's units.
    """

    label: str
    name: str
    index: tuple[int, ...]
    tied: tuple[int, ...] | None
    units: str


def parse_parameter_label(label: str) -> tuple[str, tuple[int | str, ...] | None]:
    """Split `"sigma[0,1]"` into `("sigma", (0, 1))`, `"A[Si,Si,C]"` into
    `("A", ("Si", "Si", "C"))` and `"sigma"` into `("sigma", None)`.

    **Raises:** `ConfigError` for a label that is neither `name` nor `name[i,j,...]`.
    """
    match = LABEL.match(label)
    if match is None:
        raise ConfigError(f"invalid parameter label {label!r}; write 'name' or 'name[i,j]'")
    index = match.group("index")
    if not index:
        return match.group("name"), None
    return match.group("name"), tuple(int(i) if i.isdigit() else i for i in index.split(","))


def _species_positions(param: Parameter, declared: Mapping[str, Parameter]) -> list[bool]:
    """Which dimensions of a parameter are species dimensions (as declared)."""
    shape = declared.get(param.name, param).shape
    return [s == "species" for s in shape]


def _numeric_index(label: str, index, param: Parameter, declared, structure: Structure) -> tuple[int, ...]:
    """`index` with species names replaced by their position in `structure.species_names`."""
    species_dims = _species_positions(param, declared)
    names = list(structure.species_names)
    out = []
    for k, idx in enumerate(index):
        if isinstance(idx, int):
            out.append(idx)
            continue
        if k >= len(species_dims) or not species_dims[k]:
            raise ConfigError(f"model.differentiate: {label!r}: index {idx!r} is a name, but dimension {k} "
                              f"of {param.name!r} is not a species dimension; give a number")
        if idx not in names:
            raise ConfigError(f"model.differentiate: {label!r}: {idx!r} is not a species of "
                              f"{structure.source or 'the structure'} (it has {', '.join(names)})")
        out.append(names.index(idx))
    return tuple(out)


def _label(param: Parameter, idx: tuple[int, ...], by_name: bool, declared, structure: Structure) -> str:
    if not idx:
        return param.name
    species_dims = _species_positions(param, declared) if by_name else []
    names = structure.species_names
    parts = [names[i] if k < len(species_dims) and species_dims[k] else str(i) for k, i in enumerate(idx)]
    return f"{param.name}[{','.join(parts)}]"


def resolve_shape(shape: Sequence[int | str], structure: Structure) -> tuple[int, ...]:
    """A declared `Parameter.shape` with its symbols (`"species"`, `"atoms"`, `"spatial"`)
    replaced by the sizes of `structure`."""
    sizes = {"species": len(structure.species_names), "spatial": structure.n_spatial,
             "atom": structure.n_atoms, "atoms": structure.n_atoms}
    return tuple(sizes[s] if isinstance(s, str) else int(s) for s in shape)


def is_species_matrix(param: Parameter) -> bool:
    """Whether a declared parameter is a per-species-pair matrix (`("species", "species")`)."""
    return len(param.shape) == 2 and all(s == "species" for s in param.shape)


def _symmetric_kind(param: Parameter, declared: Mapping[str, Parameter]) -> bool:
    """Strain, and per-species-pair matrices (as the model record declares their shape)."""
    return param.name == STRAIN or is_species_matrix(declared.get(param.name, param))


def bind_model(
    structure: Structure, model: EnergyModel, parameters: Mapping[str, Any], options: Mapping[str, Any]
) -> System:
    """Build the model's `System` for `structure`, with the config's parameter values.

    **Arguments:**

    - `structure`: the checked structure.
    - `model`: the `EnergyModel` record.
    - `parameters`: values overriding the model's defaults (`model.parameters` of the config,
      merged with a parameter sample).
    - `options`: the model's options.

    **Returns:** the `System`, its `params` holding the given values (as float64 NumPy arrays)
    broadcast to each parameter's shape.

    **Raises:** `ConfigError` naming `model.parameters.NAME` for a value of the wrong
    shape; `PluginError` when the plugin's factory fails.
    """
    values = dict(parameters)
    try:
        system = model.factory(structure, {**options, "parameters": values})
    except (ConfigError, InputError, PluginError):
        raise
    except Exception as err:
        raise PluginError(f"model {model.name!r} failed to build for {structure.source}: {err}") from err
    params = dict(system.params)
    records = {p.name: p for p in system.parameters}
    for key, value in values.items():
        record = records.get(key)
        if record is None:
            why = " (strain needs a periodic cell)" if key == STRAIN else ""
            raise ConfigError(
                f"model.parameters.{key}: model {model.name!r} has no parameter {key!r} for "
                f"{structure.source or 'this structure'}{why}; it has {', '.join(records)}"
            )
        shape = resolve_shape(record.shape, structure)
        array = np.asarray(value, dtype=np.float64)
        try:
            params[key] = np.broadcast_to(array, shape)
        except ValueError:
            raise ConfigError(
                f"model.parameters.{key}: value of shape {array.shape} does not fit the "
                f"parameter's shape {shape}"
            ) from None
    return dataclasses.replace(system, params=params)


def theta_components(
    system: System, structure: Structure, differentiate: str | Sequence[str],
    declared: Sequence[Parameter] = (),
) -> list[ThetaComponent]:
    """The scalar components θ consists of, in output order.

    **Arguments:**

    - `system`: the bound model.
    - `structure`: for `"species"` dimensions.
    - `differentiate`: `"all"` or a list of names / component labels.
    - `declared`: the parameters as the `EnergyModel` record declares them (symbolic
      shapes such as `("species", "species")`, which mark symmetric pair matrices).

    **Returns:** the `ThetaComponent`s, one per scalar entry of θ.
    """
    records = {p.name: p for p in system.parameters}
    declared_by_name = {p.name: p for p in declared}
    by_name = (system.metadata or {}).get("index_labels") == "species"
    chosen: list[tuple[Parameter, tuple[int, ...] | None]] = []
    if differentiate == "all":
        chosen = [(p, None) for p in system.parameters if p.differentiable]
        if not chosen:
            raise ConfigError("model.differentiate: the model has no differentiable parameter")
    else:
        for label in differentiate:
            name, index = parse_parameter_label(label)
            if name not in records:
                why = " (strain needs a periodic cell)" if name == STRAIN else ""
                if name == STRAIN and (system.metadata or {}).get("cell_relax"):
                    why = (" (with cell.relax the cell's strain is an unknown of the equilibrium; "
                           "differentiate 'pressure' instead)")
                raise ConfigError(
                    f"model.differentiate: model has no parameter {name!r} for "
                    f"{structure.source or 'this structure'}{why}; it has {', '.join(records)}"
                )
            if index is not None:
                index = _numeric_index(label, index, records[name], declared_by_name, structure)
            chosen.append((records[name], index))
    out: list[ThetaComponent] = []
    seen: set[str] = set()
    for param, index in chosen:
        value = np.asarray(system.params[param.name])
        shape = value.shape
        # The strain acts through its symmetric part (F = I + sym ε): only its upper
        # triangle is θ, and a shear entry [i,j] moves alone, so that it is the engineering
        # shear γ_ij = 2 ε_ij of Voigt notation (the same number the Python API moves).
        is_strain = param.name == STRAIN and len(shape) == 2
        symmetric = is_strain or (
            _symmetric_kind(param, declared_by_name)
            and len(shape) == 2
            and shape[0] == shape[1]
            and np.allclose(value, value.T, rtol=0, atol=0)
        )
        if index is None:
            indices = list(itertools.product(*[range(s) for s in shape]))
            if symmetric:
                indices = [i for i in indices if i[0] <= i[1]]
        else:
            if len(index) != len(shape) or any(i >= s for i, s in zip(index, shape)):
                raise ConfigError(
                    f"model.differentiate: {param.name}{list(index)} is out of range for "
                    f"parameter {param.name!r} of shape {shape}"
                )
            indices = [index]
            if symmetric and index[0] > index[1]:
                indices = [(index[1], index[0])]
        for idx in indices:
            label = _label(param, tuple(idx), by_name, declared_by_name, structure)
            if label in seen:
                continue
            seen.add(label)
            tied = (idx[1], idx[0]) if symmetric and not is_strain and idx[0] != idx[1] else None
            out.append(ThetaComponent(label, param.name, tuple(idx), tied, param.units))
    return out
