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
    "TARGET_STRESS",
    "ThetaComponent",
    "parse_parameter_label",
    "resolve_shape",
    "bind_model",
    "theta_components",
    "parameter_problems",
    "check_parameters",
]

#: The conventional name of a homogeneous strain parameter (see `sensitiv.records`); models
#: add it to their `System` when the structure is periodic, so it is accepted for every model.
STRAIN = "strain"
#: The target pressure a relaxing cell adds to the parameters (`sensitiv.constraints.PRESSURE`,
#: spelt here too so that validating a config loads no JAX).
PRESSURE = "pressure"
#: The target stress tensor of a relaxing cell given `cell.stress` (`sensitiv.constraints.TARGET_STRESS`).
TARGET_STRESS = "target_stress"

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
    """Strain, a relaxing cell's target stress, and per-species-pair matrices (as the model
    record declares their shape)."""
    return param.name in (STRAIN, TARGET_STRESS) or is_species_matrix(declared.get(param.name, param))


def _species_axes(param: Parameter) -> list[int]:
    return [k for k, s in enumerate(param.shape) if s == "species"]


def _permutation_invariant(array: np.ndarray, axes: Sequence[int], n_species: int) -> bool:
    """Whether relabelling the species leaves `array` unchanged (checked on the adjacent
    transpositions, which generate every permutation)."""
    for k in range(n_species - 1):
        perm = np.arange(n_species)
        perm[[k, k + 1]] = perm[[k + 1, k]]
        swapped = array
        for axis in axes:
            swapped = np.take(swapped, perm, axis=axis)
        if not np.array_equal(swapped, array):
            return False
    return True


def _species_legend(structure: Structure) -> str:
    return ", ".join(f"{k} = {name}" for k, name in enumerate(structure.species_names))


def value_problems(
    declared: Sequence[Parameter],
    values: Mapping[str, Any],
    sizes: Mapping[str, int | None],
    *,
    where: str = "model.parameters",
    context: str = "",
) -> list[tuple[str, str]]:
    """Parameter values that cannot mean what their parameter declares, as
    `(name, message)` pairs: not numeric or ragged, non-finite, of the wrong rank or size
    (a value is a number, the same for every component, or a nested list of exactly the
    parameter's shape), a per-species-pair matrix that is not symmetric.

    **Arguments:**

    - `declared`: the model's `Parameter` records (symbolic shapes).
    - `values`: name → value as written.
    - `sizes`: `"species"`, `"spatial"`, `"atoms"` → size, or `None` where not yet known
      (`validate` knows the species count only from a generator or the `species` option).
    - `where`: the config key named in messages; `context`: appended to size messages.
    """
    records = {p.name: p for p in declared}
    problems: list[tuple[str, str]] = []
    for name, value in values.items():
        param = records.get(name)
        if param is None:
            continue  # the schema (and the model) report unknown names
        key = f"{where}.{name}"
        try:
            array = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            problems.append((name, f"{key}: not a number or a rectangular nested list of numbers"))
            continue
        if not np.all(np.isfinite(array)):
            problems.append((name, f"{key}: non-finite value (NaN or infinity); give finite numbers"))
            continue
        if array.ndim == 0:
            continue
        symbolic = "(" + ", ".join(map(str, param.shape)) + ")"
        if array.ndim != len(param.shape):
            problems.append((name, f"{key}: a nested list of {array.ndim} dimension(s) for a parameter of shape "
                                   f"{symbolic}; give a number or a nested list of that shape{context}"))
            continue
        expected = [sizes.get(s) if isinstance(s, str) else int(s) for s in param.shape]
        species_sizes = {n for n, s in zip(array.shape, param.shape) if s == "species"}
        wrong = any(e is not None and n != e for n, e in zip(array.shape, expected)) or len(species_sizes) > 1
        if len(species_sizes) > 1:
            problems.append((name, f"{key}: a {symbolic} value must have equal species dimensions, got shape "
                                   f"{array.shape}{context}"))
            continue
        if wrong:
            shape = tuple(e if e is not None else s for e, s in zip(expected, param.shape))
            problems.append((name, f"{key}: shape {array.shape} does not match {symbolic} = {shape}{context}; "
                                   f"give a number or a nested list of that shape"))
            continue
        if is_species_matrix(param) and not np.allclose(array, array.T, rtol=1e-12, atol=0):
            i, j = np.argwhere(~np.isclose(array, array.T, rtol=1e-12, atol=0))[0]
            problems.append((name, f"{key}: a per-species-pair matrix must be symmetric, but [{i}][{j}] = "
                                   f"{array[i, j]:g} and [{j}][{i}] = {array[j, i]:g}; give one value per pair"))
    return problems


def parameter_problems(
    structure: Structure,
    declared: Sequence[Parameter],
    values: Mapping[str, Any],
    *,
    order_declared: bool,
    where: str = "model.parameters",
) -> list[str]:
    """What is wrong with parameter values for one structure, before any model is built.

    Everything `value_problems` checks, with the sizes of `structure`; `strain` only for a
    periodic structure; and a per-species value that depends on which species is which
    needs a species order the input declares (the file's own types, a generator, or
    `structure.options.species`) — the order of first appearance is not one.

    **Arguments:**

    - `structure`: the structure (its species table gives `"species"` dimensions).
    - `declared`: the model's `Parameter` records (symbolic shapes).
    - `values`: name → value as written in the config (or a parameter sample).
    - `order_declared`: whether species indices are defined by the input (see above).
    - `where`: the config key named in messages.

    **Returns:** one-line messages, each naming the key and the fix; empty when fine.
    """
    legend = _species_legend(structure)
    sizes = {"species": len(structure.species_names), "spatial": structure.n_spatial,
             "atoms": structure.n_atoms, "atom": structure.n_atoms}
    source = structure.source or "the structure"
    problems = [message for _, message in value_problems(
        declared, values, sizes, where=where, context=f" for {source} (species {legend})")]
    bad = {name for name, _ in value_problems(declared, values, sizes, where=where)}
    records = {p.name: p for p in declared}
    periodic = structure.cell is not None and any(structure.pbc)
    for name, value in values.items():
        if name == STRAIN and not periodic:
            problems.append(f"{where}.{STRAIN}: {source} has no periodic direction, so no strain; "
                            f"remove it")
        param = records.get(name)
        if param is None or name in bad:
            continue
        array = np.asarray(value, dtype=np.float64)
        axes = _species_axes(param)
        n_species = len(structure.species_names)
        if array.ndim and axes and n_species > 1 and not order_declared \
                and not _permutation_invariant(array, axes, n_species):
            problems.append(
                f"{where}.{name}: per-species values for {source}, whose species are numbered by first "
                f"appearance ({legend}); set structure.options.species to declare the order the values are "
                f"written in"
            )
    return problems


def check_parameters(structures: Sequence[Structure], cfg, registry) -> None:
    """Refuse parameter values that do not fit the structures read (`parameter_problems`),
    for `model.parameters` and every `ensemble.parameter_samples.values` entry, before any
    model is built: what `analyze` and `--dry-run` both run after reading.

    **Arguments:**

    - `structures`: the structures read (`sensitiv.pipeline.structure.read_structures`).
    - `cfg`: the resolved `sensitiv.pipeline.config.Config`.
    - `registry`: the plugin registry.

    **Raises:** `ConfigError`, one line per problem.
    """
    declared = registry.get_energy_model(cfg.model.name).parameters
    order_given = cfg.structure.generator is not None or "species" in cfg.structure.options
    samples = cfg.ensemble.parameter_samples
    problems: dict[str, None] = {}
    for structure in structures:
        order = order_given or structure.species_types is not None
        for problem in parameter_problems(structure, declared, cfg.model.parameters, order_declared=order):
            problems[problem] = None
        if samples is not None:
            for name, values in samples.values.items():
                for k, value in enumerate(values):
                    for problem in parameter_problems(
                        structure, declared, {name: value}, order_declared=order,
                        where=f"ensemble.parameter_samples.values[{k}]",
                    ):
                        problems[problem] = None
    if problems:
        raise ConfigError("\n".join(problems))


def bind_model(
    structure: Structure, model: EnergyModel, parameters: Mapping[str, Any], options: Mapping[str, Any],
    owner: str = "",
) -> System:
    """Build the model's `System` for `structure`, with the config's parameter values.

    **Arguments:**

    - `structure`: the checked structure.
    - `model`: the `EnergyModel` record.
    - `parameters`: values overriding the model's defaults (`model.parameters` of the config,
      merged with a parameter sample).
    - `options`: the model's options.
    - `owner`: how to name the model and its plugin in errors (default: the model's name).

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
        who = owner or f"model {model.name!r}"
        raise PluginError(
            f"{structure.source or 'structure'}: {who} failed while building the model: {type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''} (a bug in that plugin: report it to its authors)"
        ) from err
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
        if array.ndim and array.shape != shape:  # a scalar is broadcast; nothing else is
            raise ConfigError(
                f"model.parameters.{key}: value of shape {array.shape} does not fit the "
                f"parameter's shape {shape}; give a number or a nested list of shape {shape}"
            )
        params[key] = np.broadcast_to(array, shape)
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
