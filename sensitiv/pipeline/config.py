"""Configuration of `sensitiv analyze`: load YAML, validate every error, resolve defaults.

The schema is JSON Schema Draft 2020-12. Its base part is the packaged file
`sensitiv/config.schema.json` (identical to `schemas/config.schema.json` in the source
tree); every installed plugin adds the schema of its own options and the names it
contributes (`full_schema`). Validation reports **every** error, each as one line

    config.yaml:12:5: $.model.parameters.sigmaa: model 'soft_sphere' has no parameter 'sigmaa' (did you mean 'sigma'?)

**Example:**

```python
from sensitiv.pipeline import config
cfg = config.load("examples/softspheres/config.yaml")   # ConfigError listing every problem
cfg.data["model"]["name"]
```
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from typing import Any

import jsonschema
import yaml

from ..errors import ConfigError
from ._yaml import Marks, load_yaml_with_marks, parse_yaml_text

__all__ = [
    "Config",
    "ConfigIssue",
    "base_schema",
    "full_schema",
    "load",
    "validate",
    "parse_override",
    "parse_memory",
    "parse_parameter_label",
    "SOLVER_NONE",
]

#: Solver name that takes the structure as already relaxed (no minimization).
SOLVER_NONE = "none"

#: The conventional name of a homogeneous strain parameter (see `sensitiv.records`); models
#: add it to their `System` when the structure is periodic, so it is accepted for every model.
STRAIN = "strain"


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


@dataclasses.dataclass(frozen=True)
class Config:
    """A validated configuration with defaults filled in and paths made absolute.

    **Arguments:**

    - `data`: the resolved configuration (plain dicts and lists).
    - `path`: the config file (`"<string>"` when parsed from text).
    - `marks`: where each value came from, for later error messages.
    - `raw`: the configuration as written, before defaults.
    """

    data: dict
    path: str
    marks: Marks
    raw: dict

    def locate(self, *keys) -> str:
        """`file:line:col` of the value at `keys`, e.g. `cfg.locate("structure", "file")`."""
        return self.marks.locate(tuple(keys))

    def to_yaml(self) -> str:
        """The resolved configuration as YAML text (stored in the output)."""
        return yaml.safe_dump(self.data, sort_keys=False, default_flow_style=None)


# -- schema --------------------------------------------------------------------------


def base_schema() -> dict:
    """The packaged base schema (without plugin parts); a fresh copy on every call."""
    text = resources.files("sensitiv").joinpath("config.schema.json").read_text("utf-8")
    return json.loads(text)


def _object_schema(fragment: Mapping | None) -> dict:
    schema = dict(fragment or {})
    schema.setdefault("type", "object")
    return schema


def _parameter_value_schema(param) -> dict:
    return {
        "description": f"{param.description} [{param.units}]".strip(),
        "anyOf": [{"type": "number"}, {"type": "array"}],
    }


def _cases(field: str, records: Mapping, body) -> list:
    return [
        {
            "if": {"properties": {"name": {"const": name}}, "required": ["name"]},
            "then": {"properties": body(rec)},
        }
        for name, rec in sorted(records.items())
    ]


def full_schema(catalog=None) -> dict:
    """The base schema with every installed plugin's names and option schemas merged in.

    **Arguments:**

    - `catalog`: a `sensitiv.pipeline._registry.Catalog`; the installed plugins by default.

    **Returns:** a JSON Schema (dict), what `sensitiv schema` prints.
    """
    if catalog is None:
        from ._registry import catalog as installed

        catalog = installed()
    schema = base_schema()
    defs = schema["$defs"]

    models = catalog.energy_models
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
                "properties": {
                    **{p.name: _parameter_value_schema(p) for p in rec.parameters},
                    STRAIN: {
                        "description": "homogeneous strain ε of the periodic cell (models that support it)",
                        "anyOf": [{"type": "number"}, {"type": "array"}],
                    },
                },
                "default": {},
            },
        },
    )

    solvers = dict(catalog.solvers)
    defs["solver"]["properties"]["name"] = {
        "enum": sorted(solvers) + [SOLVER_NONE],
        "default": "fire" if "fire" in solvers else SOLVER_NONE,
        "description": f"Equilibrium solver; {SOLVER_NONE!r} takes the structure as relaxed.",
    }
    defs["solver"]["allOf"] = _cases(
        "solver", solvers, lambda rec: {"options": _object_schema(rec.options_schema)}
    )

    conditions = catalog.conditions
    defs["condition"]["properties"]["name"] = {
        "enum": sorted(conditions),
        "default": "stationary" if "stationary" in conditions else None,
    }
    if defs["condition"]["properties"]["name"]["default"] is None:
        del defs["condition"]["properties"]["name"]["default"]
    defs["condition"]["allOf"] = _cases(
        "condition", conditions, lambda rec: {"options": _object_schema(rec.options_schema)}
    )

    readers = catalog.readers
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


# -- validation -----------------------------------------------------------------------


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
        return [ConfigIssue(where, jpath, f"missing required key {key!r}")]
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
    if validator == "pattern":
        return [ConfigIssue(where, jpath, f"invalid value {err.instance!r} (must match {err.validator_value})")]
    return [ConfigIssue(where, jpath, err.message)]


def _schema_issues(data, marks: Marks, schema) -> list[ConfigIssue]:
    validator = jsonschema.Draft202012Validator(schema)
    issues: list[ConfigIssue] = []
    for err in validator.iter_errors(data):
        issues.extend(_issues_from_error(err, marks))
    return issues


_LABEL = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(\[(?P<index>[0-9]+(,[0-9]+)*)\])?$")


def parse_parameter_label(label: str) -> tuple[str, tuple[int, ...] | None]:
    """Split `"sigma[0,1]"` into `("sigma", (0, 1))` and `"sigma"` into `("sigma", None)`."""
    match = _LABEL.match(label)
    if match is None:
        raise ConfigError(f"invalid parameter label {label!r}; write 'name' or 'name[i,j]'")
    index = match.group("index")
    return match.group("name"), (tuple(int(i) for i in index.split(",")) if index else None)


def _semantic_issues(data: Mapping, marks: Marks, catalog, base_dir: str, check_files: bool):
    """Checks JSON Schema cannot express: θ names against the model, files, observables."""
    issues: list[ConfigIssue] = []
    model_cfg = data.get("model") if isinstance(data.get("model"), Mapping) else {}
    model = catalog.energy_models.get(model_cfg.get("name")) if catalog else None

    if model is not None:
        params = {p.name: p for p in model.parameters}
        params.setdefault(STRAIN, None)
        differentiable = [p.name for p in model.parameters if p.differentiable] + [STRAIN]
        wanted = model_cfg.get("differentiate", "all")
        if isinstance(wanted, list):
            for i, label in enumerate(wanted):
                if not isinstance(label, str) or not _LABEL.match(label):
                    continue  # the schema reports it
                name, index = parse_parameter_label(label)
                path = ("model", "differentiate", i)
                if name not in params:
                    issues.append(
                        ConfigIssue(
                            marks.locate(path),
                            _json_path(path),
                            f"model {model.name!r} has no parameter {name!r}; it has {', '.join(params)}",
                            _closest(name, params),
                        )
                    )
                elif params[name] is None:
                    continue  # strain: its shape is known only with the structure
                elif not params[name].differentiable:
                    issues.append(
                        ConfigIssue(
                            marks.locate(path),
                            _json_path(path),
                            f"parameter {name!r} of model {model.name!r} is not differentiable; "
                            f"differentiable: {', '.join(differentiable)}",
                        )
                    )
                elif index is not None:
                    shape = params[name].shape
                    if len(index) != len(shape):
                        issues.append(
                            ConfigIssue(
                                marks.locate(path),
                                _json_path(path),
                                f"{label!r}: parameter {name!r} has {len(shape)} "
                                f"dimension(s) {tuple(shape)}, the label gives {len(index)} indices",
                            )
                        )
                    else:
                        for i_dim, (idx, size) in enumerate(zip(index, shape)):  # "species": later
                            if isinstance(size, int) and idx >= size:
                                issues.append(
                                    ConfigIssue(
                                        marks.locate(path),
                                        _json_path(path),
                                        f"{label!r}: index {idx} out of range for dimension {i_dim} of size {size}",
                                    )
                                )

    structure = data.get("structure") if isinstance(data.get("structure"), Mapping) else {}
    if check_files:
        files: list[tuple[tuple, Any]] = []
        if isinstance(structure.get("file"), str):
            files.append((("structure", "file"), structure["file"]))
        if isinstance(structure.get("files"), list):
            files += [(("structure", "files", i), f) for i, f in enumerate(structure["files"])]
        for path, name in files:
            if not isinstance(name, str):
                continue
            full = os.path.join(base_dir, os.path.expanduser(name))
            if not os.path.exists(full):
                issues.append(
                    ConfigIssue(marks.locate(path), _json_path(path), f"structure file not found: {full}")
                )
            elif not os.path.isfile(full):
                issues.append(ConfigIssue(marks.locate(path), _json_path(path), f"not a file: {full}"))
            elif not os.access(full, os.R_OK):
                issues.append(ConfigIssue(marks.locate(path), _json_path(path), f"cannot read {full}"))
        if catalog is not None and files and "format" not in structure:
            for path, name in files:
                if isinstance(name, str) and detect_format(name, catalog) is None:
                    exts = sorted({e for r in catalog.readers.values() for e in r.extensions})
                    issues.append(
                        ConfigIssue(
                            marks.locate(path),
                            _json_path(path),
                            f"cannot tell the format of {name!r} from its extension "
                            f"(known: {', '.join(exts)}); set structure.format",
                        )
                    )
    return issues


def detect_format(path: str, catalog) -> str | None:
    """The reader claiming the longest matching file-name ending of `path`, or `None`."""
    lower = os.path.basename(path).lower()
    best, best_len = None, -1
    for name, reader in sorted(catalog.readers.items()):
        for ext in reader.extensions:
            ext = ext.lower()
            if (lower.endswith(ext) or lower == ext.lstrip(".")) and len(ext) > best_len:
                best, best_len = name, len(ext)
    return best


def validate(
    data: Any,
    marks: Marks,
    catalog=None,
    base_dir: str = ".",
    check_files: bool = True,
    duplicates: Sequence = (),
) -> list[ConfigIssue]:
    """Every problem of a parsed config, in file order.

    **Arguments:**

    - `data`, `marks`: from `sensitiv.pipeline._yaml.load_yaml_with_marks`.
    - `catalog`: installed plugins (default: discovered).
    - `base_dir`: the folder relative paths in the config refer to.
    - `check_files`: also check that structure files exist and their format is known.
    - `duplicates`: duplicate keys found while parsing.

    **Returns:** a list of `ConfigIssue` (empty when valid).
    """
    if catalog is None:
        from ._registry import catalog as installed

        catalog = installed()
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
    issues += _schema_issues(data, marks, full_schema(catalog))
    issues += _semantic_issues(data, marks, catalog, base_dir, check_files)

    def order(issue: ConfigIssue):
        parts = issue.location.rsplit(":", 2)
        try:
            return (int(parts[1]), int(parts[2]))
        except (IndexError, ValueError):
            return (0, 0)

    unique = list(dict.fromkeys(issues))
    return sorted(unique, key=order)


# -- defaults and resolution ------------------------------------------------------------


def _fill_defaults(value: Any, schema: Mapping, defs: Mapping) -> Any:
    """Fill `default`s of `properties` (following `$ref` and matching `if/then` cases)."""
    if "$ref" in schema:
        ref = schema["$ref"].rsplit("/", 1)[-1]
        schema = {**defs[ref], **{k: v for k, v in schema.items() if k != "$ref"}}
    if not isinstance(value, dict):
        return value
    properties: dict = dict(schema.get("properties", {}))
    for case in schema.get("allOf", ()):
        cond, then = case.get("if"), case.get("then")
        if cond is None or then is None:
            continue
        if jsonschema.Draft202012Validator(cond).is_valid(value):
            for key, sub in then.get("properties", {}).items():
                if isinstance(sub, Mapping):
                    properties[key] = {**properties.get(key, {}), **sub} if isinstance(properties.get(key), Mapping) else sub
    for key, sub in properties.items():
        if not isinstance(sub, Mapping):
            continue
        if key not in value:
            target = sub
            if "$ref" in sub:
                target = defs[sub["$ref"].rsplit("/", 1)[-1]]
            if "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            elif "default" in target:
                value[key] = copy.deepcopy(target["default"])
            else:
                continue
        value[key] = _fill_defaults(value[key], sub, defs)
    return value


def _resolve(data: dict, schema: Mapping, path: str, base_dir: str) -> dict:
    data = _fill_defaults(copy.deepcopy(data), schema, schema["$defs"])
    structure = data["structure"]
    if "file" in structure:
        structure["file"] = os.path.normpath(os.path.join(base_dir, os.path.expanduser(structure["file"])))
    if "files" in structure:
        structure["files"] = [
            os.path.normpath(os.path.join(base_dir, os.path.expanduser(f))) for f in structure["files"]
        ]
    output = data.setdefault("output", {})
    if "path" not in output:
        stem = os.path.splitext(os.path.basename(path))[0] if path != "<string>" else "sensitiv"
        output["path"] = os.path.join(base_dir, stem + ".nc")
    else:
        output["path"] = os.path.normpath(os.path.join(base_dir, os.path.expanduser(output["path"])))
    data["observables"] = [
        {"name": o, "label": o} if isinstance(o, str) else {"label": o["name"], **o}
        for o in data.get("observables", [])
    ]
    return data


def parse_override(text: str) -> tuple[tuple, Any]:
    """Parse a `--set key.path=value` override (value as YAML): `(("a", "b"), value)`."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: write KEY.PATH=VALUE, e.g. structure.generator.n_atoms=32")
    key, _, raw = text.partition("=")
    parts: list = []
    for part in key.strip().split("."):
        if not part:
            raise ConfigError(f"--set {text!r}: empty key in {key!r}")
        parts.append(int(part) if part.isdigit() else part)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as err:
        raise ConfigError(f"--set {text!r}: malformed YAML value: {err}") from None
    return tuple(parts), value


def _apply_override(data: dict, marks: Marks, path: tuple, value: Any, text: str) -> None:
    node = data
    for i, part in enumerate(path[:-1]):
        if isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
            continue
        if not isinstance(node, dict):
            raise ConfigError(f"--set {text}: {_json_path(path[: i + 1])} is not a mapping")
        node = node.setdefault(part, {})
    last = path[-1]
    if isinstance(node, list) and isinstance(last, int) and last < len(node):
        node[last] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise ConfigError(f"--set {text}: {_json_path(path[:-1])} is not a mapping")
    marks.values[path] = (0, 0)
    marks.keys[path] = (0, 0)


def load(
    path: str | None = None,
    *,
    text: str | None = None,
    overrides: Sequence[str] = (),
    catalog=None,
    check_files: bool = True,
) -> Config:
    """Load, validate and resolve a configuration.

    **Arguments:**

    - `path`: the YAML file.
    - `text`: YAML text instead of a file (relative paths then refer to the working folder).
    - `overrides`: `KEY.PATH=VALUE` strings applied before validation (`--set`).
    - `catalog`: installed plugins (default: discovered).
    - `check_files`: check that structure files exist.

    **Returns:** a `Config`.

    **Raises:** `ConfigError` whose message lists every problem, one per line
    (`err.issues` holds them as `ConfigIssue`s).
    """
    if catalog is None:
        from ._registry import catalog as installed

        catalog = installed()
    if text is not None:
        data, marks, duplicates = parse_yaml_text(text, path or "<string>")
        base_dir = os.getcwd() if path is None else os.path.dirname(os.path.abspath(path))
        path = path or "<string>"
    else:
        data, marks, duplicates = load_yaml_with_marks(path)
        base_dir = os.path.dirname(os.path.abspath(path))
    for text_override in overrides:
        key, value = parse_override(text_override)
        if not isinstance(data, dict):
            break
        _apply_override(data, marks, key, value, text_override)
    marks_for = _OverrideMarks(marks)
    issues = validate(data, marks_for, catalog, base_dir, check_files, duplicates)
    if issues:
        err = ConfigError("\n".join(str(i) for i in issues))
        err.issues = issues
        raise err
    schema = full_schema(catalog)
    resolved = _resolve(data, schema, path, base_dir)
    return Config(data=resolved, path=path, marks=marks, raw=copy.deepcopy(data))


class _OverrideMarks(Marks):
    """Marks that name `--set` for values given on the command line."""

    def __init__(self, marks: Marks):
        super().__init__(marks.filename, marks.values, marks.keys)

    def locate(self, path, key=False):
        path = tuple(path)
        for n in range(len(path), 0, -1):
            table = self.keys if key and n == len(path) else self.values
            if table.get(path[:n]) == (0, 0):
                return "--set"
        return super().locate(path, key)


_UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


def parse_memory(value: int | str) -> int:
    """Bytes of a memory budget: `2147483648`, `"2 GiB"`, `"500MB"`."""
    if isinstance(value, int):
        return value
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT]i?B|B)?\s*", value, flags=re.IGNORECASE)
    if match is None:
        raise ConfigError(f"invalid memory budget {value!r}; write e.g. '2 GiB' or '500 MB'")
    number, unit = match.groups()
    return int(float(number) * _UNITS[(unit or "B").upper()])
