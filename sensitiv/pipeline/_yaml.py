"""YAML loading that remembers where every value came from.

`load_yaml_with_marks` returns the plain data (dicts, lists, scalars, as `yaml.safe_load`
gives them) and a map from each value's key path to its `(line, column)` in the file, so
that validation errors can point at `config.yaml:LINE:COL`. Duplicate keys, which YAML
parsers silently collapse, are reported as errors.
"""

from __future__ import annotations

from typing import Any

import yaml

from ..errors import ConfigError

__all__ = ["Marks", "load_yaml_with_marks", "parse_yaml_text"]

Path = tuple  # a key path: ("model", "parameters", "sigma") or ("observables", 0)


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
        self.values[tuple(path)] = where
        self.keys.setdefault(tuple(path), where)


def _mark(node) -> tuple[int, int]:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


def _construct(loader, node, path, marks: Marks, duplicates: list):
    marks.values[path] = _mark(node)
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)  # resolves `<<: *anchor` merge keys
        out: dict = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, float, bool)) or key is None:
                raise ConfigError(
                    f"{marks.filename}:{_mark(key_node)[0]}:{_mark(key_node)[1]}: "
                    f"mapping keys must be plain scalars, got {key!r}"
                )
            child = path + (key,)
            if key in out:
                duplicates.append((child, _mark(key_node)))
            marks.keys[child] = _mark(key_node)
            out[key] = _construct(loader, value_node, child, marks, duplicates)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [
            _construct(loader, item, path + (i,), marks, duplicates)
            for i, item in enumerate(node.value)
        ]
    return loader.construct_object(node, deep=True)


def parse_yaml_text(text: str, filename: str) -> tuple[Any, Marks, list]:
    """Parse YAML `text`; return `(data, marks, duplicate_keys)`.

    Raises `ConfigError` with `file:line:col` for malformed YAML.
    """
    marks = Marks(filename)
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, marks, []
        duplicates: list = []
        data = _construct(loader, node, (), marks, duplicates)
        return data, marks, duplicates
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{filename}:{mark.line + 1}:{mark.column + 1}" if mark else f"{filename}:1:1"
        problem = err.problem or err.context or "cannot parse"
        raise ConfigError(f"{where}: malformed YAML: {problem}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{filename}: malformed YAML: {err}") from None
    finally:
        loader.dispose()


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
