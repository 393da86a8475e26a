"""The config schema: assembly from the packaged base and the installed plugins, validation
with every error translated to one line, and the checks JSON Schema cannot express.

The schema is JSON Schema Draft 2020-12. Its base part is the packaged file
`sensitiv/config.schema.json` (identical to `schemas/config.schema.json` in the source
tree); every installed plugin adds the schema of its own options and the names it
contributes (`full_schema`). Validation reports **every** error, each as one line

    config.yaml:12:5: $.model.parameters.sigmaa: model 'soft_sphere' has no parameter 'sigmaa' (did you mean 'sigma'?)

The schema is also the only source of defaults (`config.load` fills them in).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from typing import Any

import jsonschema

from ..errors import PluginError
from ..plugins import Registry, get_registry
from ._yaml import Marks
from .theta import LABEL, PRESSURE, STRAIN, TARGET_STRESS, parse_parameter_label, value_problems
from .uncertainty import SpecIssue, parse_spec

__all__ = ["ConfigIssue", "SOLVER_NONE", "base_schema", "full_schema", "validate"]

#: Solver name that takes the structure as already relaxed (no minimization).
SOLVER_NONE = "none"


@dataclasses.dataclass(frozen=True)
class ConfigIssue:
    """One validation problem: where, which key, what, and a suggestion.

    **Arguments:**

    - `location`: `file:line:col`.
    - `path`: the key path as `$.a.b[0]`.
    - `message`: what is wrong.
    - `suggestion`: a close match for a misspelled key or name, or `""`.
    """

    location: str
    path: str
    message: str
    suggestion: str = ""

    def __str__(self) -> str:
        hint = f" (did you mean {self.suggestion!r}?)" if self.suggestion else ""
        return f"{self.location}: {self.path}: {self.message}{hint}"



# -- schema --------------------------------------------------------------------------


def base_schema() -> dict:
    """The packaged base schema (without plugin parts); a fresh copy on every call."""
    text = resources.files("sensitiv").joinpath("config.schema.json").read_text("utf-8")
    return json.loads(text)


def _object_schema(fragment: Mapping | None) -> dict:
    """A plugin's options schema as the config uses it: an object whose keys are the ones
    it declares — a key no plugin knows is an error, unless the plugin says otherwise
    (`additionalProperties`, `patternProperties` or `unevaluatedProperties`)."""
    schema = dict(fragment or {})
    schema.setdefault("type", "object")
    if not any(k in schema for k in ("additionalProperties", "patternProperties", "unevaluatedProperties")):
        schema["additionalProperties"] = False
    return schema


def _parameter_value_schema(param) -> dict:
    return {
        "description": f"{param.description} [{param.units}]".strip(),
        "anyOf": [{"type": "number"}, {"type": "array"}],
    }


def _cases(field: str, records: Mapping, body, default: str | None = None) -> list:
    """One `if name == X then ...` case per record; the default name's case also applies
    when the name is left out, so its options are checked all the same."""
    return [
        {
            "if": {"properties": {"name": {"const": name}}, **({} if name == default else {"required": ["name"]})},
            "then": _then(body(rec)),
        }
        for name, rec in sorted(records.items())
    ]


def _then(properties: Mapping) -> dict:
    """A record's case: its properties, and `options` required when its options schema
    requires a key (a potential file, say) — an absent `options` would skip that check."""
    then: dict = {"properties": dict(properties)}
    if (properties.get("options") or {}).get("required"):
        then["required"] = ["options"]
    return then


def full_schema(registry: Registry | None = None) -> dict:
    """The base schema with every installed plugin's names and option schemas merged in.

    **Arguments:**

    - `registry`: the plugin registry (default: `sensitiv.plugins.get_registry()`).

    **Returns:** a JSON Schema (dict), what `sensitiv schema` prints.
    """
    registry = registry if registry is not None else get_registry()
    schema = base_schema()
    defs = schema["$defs"]

    models = registry.energy_models
    defs["model"]["properties"]["name"] = {
        "enum": sorted(models),
        "description": "Energy model name (see `sensitiv plugins`).",
    }
    defs["model"]["allOf"] = _cases(
        "model",
        models,
        lambda rec: {
            "options": _object_schema(rec.options_schema),
            "parameters": {
                "type": "object",
                "additionalProperties": False,
                "properties": {p.name: _parameter_value_schema(p) for p in rec.parameters},
                "default": {},
            },
        },
    )

    solvers = dict(registry.equilibrium_solvers)
    solver_default = "fire" if "fire" in solvers else SOLVER_NONE
    defs["solver"]["properties"]["name"] = {
        "enum": sorted(solvers) + [SOLVER_NONE],
        "default": solver_default,
        "description": f"Equilibrium solver; {SOLVER_NONE!r} takes the structure as relaxed. Default: "
        "'polish' (Newton from a nearly relaxed structure, FIRE far from a minimum) when the structures "
        "come from files, 'fire' for generated ones.",
    }
    defs["solver"]["allOf"] = _cases(
        "solver", solvers, lambda rec: {"options": _object_schema(rec.options_schema)}, solver_default
    ) + [{"if": {"properties": {"name": {"const": SOLVER_NONE}}, "required": ["name"]},
          "then": {"properties": {"options": {"type": "object", "maxProperties": 0,
                                              "description": "'none' has no options"}}}}]

    conditions = registry.optimality_conditions
    defs["condition"]["properties"]["name"] = {"enum": sorted(conditions)}
    if "stationary" in conditions:
        defs["condition"]["properties"]["name"]["default"] = "stationary"
    else:  # no default to fall back on: the config must name its condition
        defs["condition"]["required"] = ["name"]
        schema["required"] = [*schema["required"], "condition"]
    defs["condition"]["allOf"] = _cases(
        "condition", conditions, lambda rec: {"options": _object_schema(rec.options_schema)},
        defs["condition"]["properties"]["name"].get("default"),
    )

    readers = registry.structure_readers
    structure = defs["structure"]
    structure["properties"]["format"] = {
        "enum": sorted(readers),
        "description": "Reader name (see `sensitiv plugins`); detected from the file extension when omitted.",
    }
    structure["allOf"] = [
        {
            "if": {"properties": {"format": {"const": name}}, "required": ["format"]},
            "then": {"properties": {"options": _object_schema(rec.options_schema)}},
        }
        for name, rec in sorted(readers.items())
    ]
    return schema


# -- validation ---------------------------------------------------------------------


def _json_path(path: Iterable) -> str:
    out = "$"
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _closest(word: Any, choices: Iterable) -> str:
    choices = [str(c) for c in choices if c is not None]
    match = difflib.get_close_matches(str(word), choices, n=1, cutoff=0.6)
    return match[0] if match else ""


def _described(schema: Mapping) -> str:
    return schema.get("description", "")


def _issues_from_error(err, marks: Marks) -> list[ConfigIssue]:
    path = tuple(err.absolute_path)
    jpath = _json_path(path)
    validator = err.validator

    if validator == "additionalProperties":
        allowed = list(err.schema.get("properties", {}))
        extras = [k for k in err.instance if k not in allowed]
        issues = []
        for key in extras:
            if path == ("model", "parameters"):
                message = f"the model has no parameter {key!r}"
                if allowed:
                    message += f"; it has {', '.join(allowed)}"
            else:
                message = f"unknown key {key!r}"
                if allowed:
                    message += f"; allowed keys: {', '.join(allowed)}"
                elif path and path[-1] == "options":
                    message += "; no options are defined here"
            issues.append(
                ConfigIssue(
                    marks.locate(path + (key,), key=True),
                    _json_path(path + (key,)),
                    message,
                    _closest(key, allowed),
                )
            )
        return issues

    where = marks.locate(path)
    if validator in ("enum", "const"):
        choices = err.validator_value if validator == "enum" else [err.validator_value]
        what = "name" if path and path[-1] in ("name", "format") else "value"
        return [
            ConfigIssue(
                where,
                jpath,
                f"unknown {what} {err.instance!r}; choose one of {', '.join(map(str, choices))}",
                _closest(err.instance, choices),
            )
        ]
    if validator == "required":
        missing = re.findall(r"'([^']+)' is a required property", err.message)
        key = missing[0] if missing else "?"
        needs = ((err.schema.get("properties") or {}).get(key) or {}).get("required") or []
        inner = f" (with {', '.join(repr(k) for k in needs)})" if needs else ""
        return [ConfigIssue(where, jpath, f"missing required key {key!r}{inner}")]
    if validator == "type":
        expected = err.validator_value
        expected = " or ".join(expected) if isinstance(expected, list) else expected
        return [
            ConfigIssue(
                where, jpath, f"expected {expected}, got {type(err.instance).__name__} {err.instance!r}"
            )
        ]
    if validator in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        bound = {
            "minimum": ">=",
            "maximum": "<=",
            "exclusiveMinimum": ">",
            "exclusiveMaximum": "<",
        }[validator]
        return [
            ConfigIssue(
                where, jpath, f"value {err.instance!r} out of range: must be {bound} {err.validator_value}"
            )
        ]
    if validator == "oneOf" and path == ("structure",):
        given = [k for k in ("file", "files", "generator") if k in err.instance]
        if not given:
            message = "give one of 'file', 'files' or 'generator'"
        elif len(given) > 1:
            message = f"give only one of 'file', 'files' or 'generator' (got {', '.join(given)})"
        else:
            message = "'format' goes with 'file' or 'files', not with 'generator'"
        return [ConfigIssue(where, jpath, message)]
    if validator in ("oneOf", "anyOf"):
        # An observable given as an unknown mapping, a frame spec that matches no form...:
        # say what the value should be rather than listing every failed alternative.
        description = _described(err.schema)
        message = f"invalid value {err.instance!r}"
        if description:
            message += f": {description}"
        else:
            best = jsonschema.exceptions.best_match(err.context)
            if best is not None:
                message += f": {best.message}"
        return [ConfigIssue(where, jpath, message)]
    if validator == "maxProperties" and err.validator_value == 0:
        what = err.schema.get("description") or "no keys are allowed here"
        return [ConfigIssue(where, jpath, f"{what}; remove {', '.join(map(repr, err.instance))}")]
    if validator == "pattern":
        return [ConfigIssue(where, jpath, f"invalid value {err.instance!r} (must match {err.validator_value})")]
    return [ConfigIssue(where, jpath, err.message)]


def _schema_issues(data, marks: Marks, schema) -> list[ConfigIssue]:
    validator = jsonschema.Draft202012Validator(schema)
    issues: list[ConfigIssue] = []
    for err in validator.iter_errors(data):
        issues.extend(_issues_from_error(err, marks))
    return issues



def _cell_issues(data: Mapping, marks: Marks) -> list[ConfigIssue]:
    """The cell section's cross-field rules: a stress tensor fits the mode it relaxes."""
    cell = data.get("cell")
    if not isinstance(cell, Mapping) or not isinstance(cell.get("stress"), list):
        return []
    relax, stress = cell.get("relax", "none"), cell["stress"]
    problems = []
    if "pressure" in cell:
        problems.append(("pressure", "give either cell.pressure or cell.stress, not both "
                                     "(a hydrostatic stress is [-P, -P, -P, 0, 0, 0])"))
    if relax == "none":
        problems.append(("stress", "cell.stress is the target of a relaxing cell; set cell.relax to aniso or tri"))
    elif relax == "iso":
        problems.append(("stress", "relax 'iso' keeps the shape and reaches a hydrostatic pressure only; "
                                   "give cell.pressure, or relax 'aniso'/'tri' for a stress tensor"))
    if len(stress) not in (3, 6):
        problems.append(("stress", f"{len(stress)} components; give 6 in Voigt order [sxx, syy, szz, syz, sxz, sxy] "
                                   "(3-D) or 3 [sxx, syy, sxy] (2-D)"))
    elif relax == "aniso" and any(v != 0 for v in stress[3 if len(stress) == 6 else 2:]):
        problems.append(("stress", "shear components need relax 'tri' ('aniso' keeps the angles); "
                                   "set them to 0 or use cell.relax: tri"))
    return [ConfigIssue(marks.locate(("cell", key)), _json_path(("cell", key)), message)
            for key, message in problems]


def _differentiate_issues(data: Mapping, marks: Marks, registry: Registry) -> list[ConfigIssue]:
    """The labels of `model.differentiate` against the model's parameters."""
    model_cfg = data.get("model") if isinstance(data.get("model"), Mapping) else {}
    model = registry.energy_models.get(model_cfg.get("name"))
    wanted = model_cfg.get("differentiate", "all")
    if model is None or not isinstance(wanted, list):
        return []
    params = {p.name: p for p in model.parameters}
    cell = data.get("cell") if isinstance(data.get("cell"), Mapping) else {}
    relaxes = cell.get("relax", "none") != "none"
    differentiable = [p.name for p in model.parameters if p.differentiable]
    target = TARGET_STRESS if cell.get("stress") is not None else PRESSURE
    if relaxes:  # the strain is then an unknown of the equilibrium, the target pressure (stress) a parameter
        params[target] = None
        differentiable = [n for n in differentiable if n != STRAIN] + [target]
    issues: list[ConfigIssue] = []
    for i, label in enumerate(wanted):
        if not isinstance(label, str) or not LABEL.match(label):
            continue  # the schema reports it
        name, index = parse_parameter_label(label)
        path = ("model", "differentiate", i)

        def issue(message: str, suggestion: str = "") -> None:
            issues.append(ConfigIssue(marks.locate(path), _json_path(path), message, suggestion))

        if name == STRAIN and relaxes:
            issue("with cell.relax the cell's strain is an unknown of the equilibrium, not a parameter; "
                  f"differentiate {target!r} (or hold the cell: cell.relax: none)")
        elif name not in params:
            issue(f"model {model.name!r} has no parameter {name!r}; it has {', '.join(params)}",
                  _closest(name, params))
        elif params[name] is None:
            continue  # pressure, target_stress: the relaxing cell's target
        elif not params[name].differentiable:
            issue(f"parameter {name!r} of model {model.name!r} is not differentiable; "
                  f"differentiable: {', '.join(differentiable)}")
        elif index is not None:
            shape = params[name].shape
            if len(index) != len(shape):
                issue(f"{label!r}: parameter {name!r} has {len(shape)} dimension(s) {tuple(shape)}, "
                      f"the label gives {len(index)} indices")
                continue
            for i_dim, (idx, size) in enumerate(zip(index, shape)):  # "species": later
                if isinstance(idx, str):
                    if size != "species":
                        issue(f"{label!r}: index {idx!r} is a name, but dimension {i_dim} of {name!r} "
                              f"is not a species dimension; give a number")
                    continue  # a species name: checked against the structure
                if isinstance(size, int) and idx >= size:
                    issue(f"{label!r}: index {idx} out of range for dimension {i_dim} of size {size}")
    return issues


def _section(data: Mapping, key: str) -> Mapping:
    value = data.get(key)
    return value if isinstance(value, Mapping) else {}


def _chosen_records(data: Mapping, registry: Registry, schema: Mapping) -> list[tuple[str, str, Any]]:
    """`(section, kind label, record)` of every plugin the config uses — named, taken by
    default (`solver`, `condition`) or chosen from the file ending (`structure`)."""
    defs = schema["$defs"]
    chosen: list[tuple[str, str, Any]] = []
    for section, table, label in (("model", registry.energy_models, "model"),
                                  ("solver", registry.equilibrium_solvers, "solver"),
                                  ("condition", registry.optimality_conditions, "condition")):
        if section not in data and section == "model":
            continue
        name = _section(data, section).get("name", defs[section]["properties"]["name"].get("default"))
        if isinstance(name, str) and name in table:
            chosen.append((section, label, table[name]))
    structure = _section(data, "structure")
    if isinstance(structure.get("format"), str):
        reader = registry.structure_readers.get(structure["format"])
        if reader is not None:
            chosen.append(("structure", "reader", reader))
    else:
        seen = set()
        for _, name in _structure_files(structure):
            try:
                reader = registry.find_structure_reader(name)
            except PluginError:
                continue  # `_file_issues` reports it
            if reader.name not in seen:
                seen.add(reader.name)
                chosen.append(("structure", "reader", reader))
    return chosen


def _with_defaults(options: Mapping, schema: Mapping) -> dict:
    out = {k: v["default"] for k, v in (schema.get("properties") or {}).items()
           if isinstance(v, Mapping) and "default" in v}
    out.update(options)
    return out


def _option_issues(data: Mapping, marks: Marks, registry: Registry, schema: Mapping) -> list[ConfigIssue]:
    """Every option of every plugin the config uses, against the plugin's schema and its
    cross-field rules (`check_options`), whether or not the config names the plugin."""
    issues: list[ConfigIssue] = []
    for section, label, record in _chosen_records(data, registry, schema):
        options = _section(data, section).get("options", {})
        if not isinstance(options, Mapping):
            continue  # the schema reports it
        options_schema = _object_schema(record.options_schema)
        wrapper = {"type": "object", "properties": {section: {"type": "object", **_then({
            "options": options_schema})}}}
        errors = list(jsonschema.Draft202012Validator(wrapper).iter_errors(data))
        for err in errors:
            issues.extend(_issues_from_error(err, marks))
        check = getattr(record, "check_options", None)
        if errors or check is None:
            continue
        path = (section, "options")
        try:
            messages = list(check(_with_defaults(options, options_schema)))
        except Exception as err:  # a plugin's own rule failed: say whose
            owner = _owner(registry, record)
            messages = [f"{label} {record.name!r}: its check_options failed ({type(err).__name__}: {err}); "
                        f"report it to the authors of plugin {owner}"]
        for message in messages:
            issues.append(ConfigIssue(marks.locate(path), _json_path(path), f"{label} {record.name!r}: {message}"))
    return issues


def _owner(registry: Registry, record) -> str:
    for kind in ("energy_model", "equilibrium_solver", "optimality_condition", "structure_reader"):
        try:
            if registry.get(kind, record.name) is record:
                return registry.plugin_info(registry.owner(kind, record.name)).describe()
        except PluginError:
            continue
    return "?"


def _known_sizes(data: Mapping) -> dict[str, int | None]:
    """The sizes `validate` knows without reading a file: species and dimensions of a
    generator, the species count of a `structure.options.species` table."""
    structure = _section(data, "structure")
    generator = _section(structure, "generator")
    name = generator.get("name")
    sizes: dict[str, int | None] = {"species": None, "spatial": None, "atoms": None}
    if name == "bidisperse_packing":
        sizes.update(species=2, spatial=generator.get("dimension", 2), atoms=generator.get("n_atoms", 128))
    elif isinstance(name, str):
        sizes.update(species=1, spatial=2 if name == "triangular" else 3)
    species = _section(structure, "options").get("species")
    if isinstance(species, list) and species:
        sizes["species"] = len(species)
    return sizes


def _parameter_value_issues(data: Mapping, marks: Marks, registry: Registry) -> list[ConfigIssue]:
    """Parameter values against the model's declared shapes, as far as known before reading
    (rank, fixed sizes, square symmetric pair matrices; the species count of a generator or
    of `structure.options.species`)."""
    model_cfg = _section(data, "model")
    model = registry.energy_models.get(model_cfg.get("name"))
    values = model_cfg.get("parameters")
    if model is None or not isinstance(values, Mapping):
        return []
    sizes = _known_sizes(data)
    context = f" with {sizes['species']} species" if sizes["species"] is not None else ""
    issues = []
    for name, message in value_problems(model.parameters, values, sizes, context=context):
        if "non-finite" in message:
            continue  # `_non_finite_issues` says so, at the number
        path = ("model", "parameters", name)
        issues.append(ConfigIssue(marks.locate(path), _json_path(path), message.split(": ", 1)[1]))
    samples = _section(_section(data, "ensemble"), "parameter_samples")
    sampled = samples.get("values") if isinstance(samples.get("values"), Mapping) else {}
    for name, series in sampled.items():
        if not isinstance(series, list):
            continue
        for k, value in enumerate(series):
            for _, message in value_problems(model.parameters, {name: value}, sizes, context=context):
                if "non-finite" in message:
                    continue
                path = ("ensemble", "parameter_samples", "values", name, k)
                issues.append(ConfigIssue(marks.locate(path), _json_path(path), message.split(": ", 1)[1]))
    return issues


def _non_finite_issues(data: Any, marks: Marks, path: tuple = ()) -> list[ConfigIssue]:
    """NaN and infinities anywhere: no option or parameter means anything with them."""
    if isinstance(data, float) and not math.isfinite(data):
        return [ConfigIssue(marks.locate(path), _json_path(path), f"non-finite number {data!r}; give a finite value")]
    if isinstance(data, Mapping):
        return [i for k, v in data.items() for i in _non_finite_issues(v, marks, path + (k,))]
    if isinstance(data, list):
        return [i for k, v in enumerate(data) for i in _non_finite_issues(v, marks, path + (k,))]
    return []


#: Bytes per atom a run needs at least (positions, forces, neighbor lists, Jacobian columns).
BYTES_PER_ATOM = 4096


def _memory_bytes() -> int | None:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def _size_issues(data: Mapping, marks: Marks) -> list[ConfigIssue]:
    """A generator asked for more atoms than this machine can hold: refused before any
    array is allocated."""
    generator = _section(_section(data, "structure"), "generator")
    name = generator.get("name")
    if name == "bidisperse_packing":
        n = generator.get("n_atoms", 128)
    elif name in ("fcc", "bcc", "diamond", "triangular"):
        per_cell = {"fcc": 4, "bcc": 2, "diamond": 8, "triangular": 2}[name]
        repeat = generator.get("repeat")
        if not (isinstance(repeat, list) and all(isinstance(r, int) for r in repeat)):
            return []
        n = per_cell * math.prod(repeat)
    else:
        return []
    memory = _memory_bytes()
    if not isinstance(n, int) or memory is None or n * BYTES_PER_ATOM <= memory:
        return []
    path = ("structure", "generator")
    return [ConfigIssue(marks.locate(path), _json_path(path),
                        f"{n:,} atoms need at least {n * BYTES_PER_ATOM / 2**30:,.0f} GiB, more than this "
                        f"machine's {memory / 2**30:,.0f} GiB; generate fewer atoms")]


def _uncertainty_issues(data: Mapping, marks: Marks, registry: Registry, base_dir: str) -> list[ConfigIssue]:
    """The `uncertainty` section: one source, matrices of the right size, positive
    semi-definite, readable files, and labels that name differentiated model parameters."""
    section = data.get("uncertainty")
    if not isinstance(section, Mapping):
        return []
    base = ("uncertainty",)
    try:
        spec = parse_spec(section, base_dir)
    except SpecIssue as issue:
        path = base + issue.path
        return [ConfigIssue(marks.locate(path), _json_path(path), issue.message)]
    model_cfg = data.get("model") if isinstance(data.get("model"), Mapping) else {}
    model = registry.energy_models.get(model_cfg.get("name"))
    if model is None:
        return []
    names = {p.name for p in model.parameters} | {STRAIN}
    wanted = model_cfg.get("differentiate", "all")
    issues = []
    for i, label in enumerate(spec.labels):
        name, index = parse_parameter_label(label)
        if "parameters" in section:
            path = base + ("parameters", i)
        elif label in section.get("std", {}):
            path = base + ("std", label)
        else:
            path = base + ("relative_std", label)
        if name not in names:
            issues.append(ConfigIssue(marks.locate(path), _json_path(path),
                                      f"model {model.name!r} has no parameter {name!r}; it has {', '.join(sorted(names))}",
                                      _closest(name, names)))
        elif isinstance(wanted, list) and label not in wanted and name not in wanted:
            issues.append(ConfigIssue(marks.locate(path), _json_path(path),
                                      f"{label!r} is not differentiated: add it to model.differentiate "
                                      f"({', '.join(map(str, wanted))})"))
    return issues


#: Option keys holding units, checked by `sensitiv.units` (kind of unit each must be).
UNITS_OPTIONS = {"energy_units": "energy", "length_units": "length"}


def _units_issues(data: Mapping, marks: Marks) -> list[ConfigIssue]:
    """Units given in the model's and the structure's options: readable units of the right
    kind, LAMMPS unit styles (`metal`, `real`, `lj`) or reduced units (`epsilon`, `sigma`)."""
    issues: list[ConfigIssue] = []
    for section in ("model", "structure"):
        part = data.get(section)
        options = part.get("options") if isinstance(part, Mapping) else None
        if not isinstance(options, Mapping):
            continue
        for key, kind in UNITS_OPTIONS.items():
            value = options.get(key)
            if not isinstance(value, str):
                continue  # absent, or the schema reports its type
            from .. import units

            try:
                units.check(value, kind)
            except units.UnitsError as err:
                path = (section, "options", key)
                issues.append(ConfigIssue(marks.locate(path), _json_path(path), str(err)))
    return issues


def _structure_files(structure: Mapping) -> list[tuple[tuple, Any]]:
    files: list[tuple[tuple, Any]] = []
    if isinstance(structure.get("file"), str):
        files.append((("structure", "file"), structure["file"]))
    if isinstance(structure.get("files"), list):
        files += [(("structure", "files", i), f) for i, f in enumerate(structure["files"])]
    return [(path, name) for path, name in files if isinstance(name, str)]


def _file_issues(
    data: Mapping, marks: Marks, registry: Registry, base_dir: str, check_files: bool
) -> list[ConfigIssue]:
    """Structure files that are missing or unreadable, and formats no reader (or two) claims."""
    structure = data.get("structure") if isinstance(data.get("structure"), Mapping) else {}
    issues: list[ConfigIssue] = []
    for path, name in _structure_files(structure):
        where = (marks.locate(path), _json_path(path))
        if check_files:
            full = os.path.join(base_dir, os.path.expanduser(name))
            if not os.path.exists(full):
                issues.append(ConfigIssue(*where, f"structure file not found: {full}"))
            elif not os.path.isfile(full):
                issues.append(ConfigIssue(*where, f"not a file: {full}"))
            elif not os.access(full, os.R_OK):
                issues.append(ConfigIssue(*where, f"cannot read {full}"))
        if "format" not in structure:
            try:
                registry.find_structure_reader(name)
            except PluginError as err:
                issues.append(ConfigIssue(*where, str(err)))
    return issues


def validate(
    data: Any,
    marks: Marks,
    registry: Registry | None = None,
    base_dir: str = ".",
    check_files: bool = True,
    duplicates: Sequence = (),
) -> list[ConfigIssue]:
    """Every problem of a parsed config, in file order.

    **Arguments:**

    - `data`, `marks`: from `sensitiv.pipeline._yaml.load_yaml_with_marks`.
    - `registry`: the plugin registry (default: `sensitiv.plugins.get_registry()`).
    - `base_dir`: the folder relative paths in the config refer to.
    - `check_files`: also check that structure files exist and are readable.
    - `duplicates`: duplicate keys found while parsing.

    **Returns:** a list of `ConfigIssue` (empty when valid).
    """
    registry = registry if registry is not None else get_registry()
    issues = [
        ConfigIssue(
            f"{marks.filename}:{where[0]}:{where[1]}",
            _json_path(path),
            f"duplicate key {path[-1]!r} (YAML keeps only the last)",
        )
        for path, where in duplicates
    ]
    if not isinstance(data, Mapping):
        kind = "empty" if data is None else type(data).__name__
        return issues + [
            ConfigIssue(f"{marks.filename}:1:1", "$", f"the config must be a mapping of sections, got {kind}")
        ]
    schema = full_schema(registry)
    issues += _schema_issues(data, marks, schema)
    issues += _non_finite_issues(data, marks)
    issues += _size_issues(data, marks)
    issues += _option_issues(data, marks, registry, schema)
    issues += _parameter_value_issues(data, marks, registry)
    issues += _differentiate_issues(data, marks, registry)
    issues += _units_issues(data, marks)
    issues += _file_issues(data, marks, registry, base_dir, check_files)
    if not any(i.path.startswith("$.uncertainty") for i in issues):
        issues += _uncertainty_issues(data, marks, registry, base_dir)
    issues += _cell_issues(data, marks)
    cell = data.get("cell")
    if isinstance(data.get("uncertainty"), Mapping) and isinstance(cell, Mapping) and cell.get("relax", "none") != "none":
        path = ("cell", "relax")
        issues.append(ConfigIssue(marks.locate(path), _json_path(path), "the uncertainty section is not available "
                                  "yet with a relaxing cell; remove one of them"))

    def order(issue: ConfigIssue):
        parts = issue.location.rsplit(":", 2)
        try:
            return (int(parts[1]), int(parts[2]))
        except (IndexError, ValueError):
            return (0, 0)

    unique = list(dict.fromkeys(issues))
    return sorted(unique, key=order)
