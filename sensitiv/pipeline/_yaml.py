"""YAML 1.2 loading (ruamel.yaml) that remembers where every value came from.

`load_yaml_with_marks` returns the plain data (dicts, lists, scalars) and a map from each
value's key path to its `(line, column)` in the file, so that validation errors can point
at `config.yaml:LINE:COL`. Duplicate keys, which YAML parsers silently collapse (or reject
one at a time), are all collected and reported as errors by the validation.

YAML 1.2's core schema, not 1.1's: `1e-9` is a number (YAML 1.1 reads it as the string
`"1e-9"`), `yes`/`no`/`on`/`off` are strings, `017` is the integer 17. `--set` values
(`parse_scalar`) and the YAML text stored in results (`dump_yaml`) use the same rules.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import numpy as np
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, SequenceNode

from ..errors import ConfigError

__all__ = ["Marks", "load_yaml_with_marks", "parse_yaml_text", "parse_scalar", "dump_yaml"]

Path = tuple  # a key path: ("model", "parameters", "sigma") or ("observables", 0)


def _yaml(typ: str = "safe"):
    yaml = YAML(typ=typ, pure=True)
    yaml.version = (1, 2)
    return yaml


class Marks:
    """Where each value (and each mapping key) of a YAML document sits in its file.

    **Arguments:**

    - `filename`: the file name used in messages.
    - `values`: key path → `(line, column)` of the value (1-based).
    - `keys`: key path → `(line, column)` of the key naming it (1-based).
    """

    def __init__(self, filename: str, values: dict | None = None, keys: dict | None = None):
        self.filename = filename
        self.values: dict[Path, tuple[int, int]] = values or {}
        self.keys: dict[Path, tuple[int, int]] = keys or {}

    def locate(self, path: Path, key: bool = False) -> str:
        """Return `file:line:col` of `path` (of its key when `key`), or of its nearest parent."""
        path = tuple(path)
        table = self.keys if key else self.values
        while True:
            if path in table:
                line, col = table[path]
                return f"{self.filename}:{line}:{col}"
            if not key and path in self.keys:
                line, col = self.keys[path]
                return f"{self.filename}:{line}:{col}"
            if not path:
                return f"{self.filename}:1:1"
            path = path[:-1]
            table = self.values

    def set(self, path: Path, where: tuple[int, int]) -> None:
        """Record that the value at `path` (and its key) sits at `where`."""
        self.values[tuple(path)] = where
        self.keys.setdefault(tuple(path), where)


def _mark(node) -> tuple[int, int]:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


#: The tags a config may carry: YAML 1.2's core schema (and merge keys). Anything else —
#: `!!python/object`, application tags — is refused, never constructed.
_ALLOWED_TAGS = {f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "map", "seq", "merge")}

#: More values than this (counting every use of an alias) is not a config but an alias
#: bomb ("billion laughs"): refused before it is expanded.
MAX_VALUES = 100_000


def _construct(constructor, node, path, marks: Marks, duplicates: list, budget: list | None = None):
    budget = budget if budget is not None else [MAX_VALUES]
    budget[0] -= 1
    if budget[0] < 0:
        raise ConfigError(
            f"{marks.filename}: the YAML expands to more than {MAX_VALUES} values (through anchors and "
            f"aliases); a config is small: write the values out"
        )
    if node.tag not in _ALLOWED_TAGS:
        line, col = _mark(node)
        raise ConfigError(
            f"{marks.filename}:{line}:{col}: YAML tag {node.tag!r} is not allowed in a config "
            f"(only mappings, lists, strings, numbers, booleans and null); remove it"
        )
    marks.values[path] = _mark(node)
    if isinstance(node, MappingNode):
        constructor.flatten_mapping(node)  # resolves `<<: *anchor` merge keys
        out: dict = {}
        for key_node, value_node in node.value:
            key = constructor.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, float, bool)) or key is None:
                raise ConfigError(
                    f"{marks.filename}:{_mark(key_node)[0]}:{_mark(key_node)[1]}: "
                    f"mapping keys must be plain scalars, got {key!r}"
                )
            child = path + (key,)
            if key in out:
                duplicates.append((child, _mark(key_node)))
            marks.keys[child] = _mark(key_node)
            out[key] = _construct(constructor, value_node, child, marks, duplicates, budget)
        return out
    if isinstance(node, SequenceNode):
        return [
            _construct(constructor, item, path + (i,), marks, duplicates, budget)
            for i, item in enumerate(node.value)
        ]
    return constructor.construct_object(node, deep=True)


def parse_yaml_text(text: str, filename: str) -> tuple[Any, Marks, list]:
    """Parse YAML 1.2 `text`; return `(data, marks, duplicate_keys)`.

    Raises `ConfigError` with `file:line:col` for malformed YAML.
    """
    marks = Marks(filename)
    yaml = _yaml()
    constructor, parser = yaml.get_constructor_parser(text)
    try:
        node = constructor.composer.get_single_node()
        if node is None:
            return None, marks, []
        duplicates: list = []
        data = _construct(constructor, node, (), marks, duplicates)
        return data, marks, duplicates
    except MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{filename}:{mark.line + 1}:{mark.column + 1}" if mark else f"{filename}:1:1"
        problem = err.problem or err.context or "cannot parse"
        raise ConfigError(f"{where}: malformed YAML: {problem}") from None
    except YAMLError as err:
        raise ConfigError(f"{filename}: malformed YAML: {err}") from None
    finally:
        parser.dispose()


def load_yaml_with_marks(path: str) -> tuple[Any, Marks, list]:
    """Read and parse a YAML file; `ConfigError` naming the file when it cannot be read."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a config file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot read config file: {err}") from None
    return parse_yaml_text(text, path)


def parse_scalar(text: str, what: str) -> Any:
    """A YAML 1.2 value given on the command line (`--set KEY=VALUE`): `1e-9` → 1e-09.

    **Raises:** `ConfigError` starting with `what` when `text` is not valid YAML.
    """
    if not text.strip():
        return ""
    try:
        data, _, _ = parse_yaml_text(text, what)
    except ConfigError as err:
        raise ConfigError(f"{what}: malformed YAML value: {str(err).split('malformed YAML: ')[-1]}") from None
    except YAMLError as err:  # pragma: no cover - parse_yaml_text translates these
        raise ConfigError(f"{what}: malformed YAML value: {err}") from None
    return data


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


#: Strings a YAML 1.1 reader (PyYAML) would take for booleans or nulls: quoted on output.
_YAML11_WORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null", "~", ""}


def _represent_float(representer, value: float):
    # `1.0e-10`, not `1e-10`: YAML 1.1 readers (PyYAML) read floats only with a dot.
    text = repr(float(value))
    if text in ("inf", "-inf", "nan"):
        text = {"inf": ".inf", "-inf": "-.inf", "nan": ".nan"}[text]
    elif "e" in text and "." not in text.split("e")[0]:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}.0e{exponent}"
    return representer.represent_scalar("tag:yaml.org,2002:float", text)


def _represent_str(representer, value: str):
    style = "'" if value.lower() in _YAML11_WORDS else None
    return representer.represent_scalar("tag:yaml.org,2002:str", value, style=style)


def _flow_scalar_lists(value: Any) -> Any:
    """Lists of scalars marked for flow style (`[1.0, 1.2]`), everything else in block
    style: a mapping of options stays one key per line instead of a wrapped `{...}`."""
    if isinstance(value, dict):
        return {k: _flow_scalar_lists(v) for k, v in value.items()}
    if isinstance(value, list):
        if any(isinstance(v, (dict, list)) for v in value):
            return [_flow_scalar_lists(v) for v in value]
        return _FlowList(value)
    return value


class _FlowList(list):
    """A list of scalars, written inline."""


def _represent_flow_list(representer, value: _FlowList):
    return representer.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=True)


def dump_yaml(data: Any, *, inline_mappings: bool = False) -> str:
    """YAML text of plain data (mappings in their order, one key per line; lists of
    scalars inline) that YAML 1.2 (`parse_yaml_text`) and YAML 1.1 readers (PyYAML) read
    back alike. `inline_mappings`: mappings of scalars inline too (`{a: 1, b: 2}`: the
    short one-line form of a NetCDF attribute)."""
    yaml = _yaml()
    yaml.default_flow_style = None if inline_mappings else False
    yaml.sort_base_mapping_type_on_output = False
    yaml.representer.add_representer(float, _represent_float)
    yaml.representer.add_representer(str, _represent_str)
    yaml.representer.add_representer(_FlowList, _represent_flow_list)
    stream = io.StringIO()
    yaml.dump(_plain(data) if inline_mappings else _flow_scalar_lists(_plain(data)), stream)
    text = stream.getvalue()
    # The `%YAML 1.2` directive ruamel writes for an explicit version is noise in a config.
    if text.startswith("%YAML"):
        # `--- {a: 1}` when the whole document fits on one line in flow style.
        text = text.split("\n", 1)[1].removeprefix("---").lstrip(" \n")
    return text
