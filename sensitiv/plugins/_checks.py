"""Checks of the records a plugin's hooks return, before the host files them.

Each failure is a one-line `PluginError` naming the hook, the record and the field.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import jsonschema

from ..errors import PluginError
from ..records import SHAPE_SYMBOLS, Parameter
from ._kinds import Kind

__all__ = ["check_record", "one_line"]


def one_line(text: Any) -> str:
    """`text` with its whitespace (newlines included) collapsed to single spaces."""
    return " ".join(str(text).split())


def check_record(where: str, kind: Kind, record: Any) -> None:
    if not isinstance(record, kind.record_type):
        raise PluginError(
            f"{where} returned a {type(record).__name__}; expected "
            f"{kind.record_type.__module__}.{kind.record_type.__name__} records"
        )
    name = record.name
    if not isinstance(name, str) or not name or name != name.strip():
        raise PluginError(f"{where} returned a {kind.label} with an invalid name {name!r}")
    what = f"{where}: {kind.label} {name!r}"
    if not callable(getattr(record, kind.callable_field)):
        raise PluginError(f"{what}: `{kind.callable_field}` is not callable")
    if not isinstance(record.description, str):
        raise PluginError(f"{what}: `description` must be a string")
    _validate_schema(what, record.options_schema)
    if kind.kind == "energy_model":
        _validate_parameters(what, record.parameters)
    if kind.kind == "structure_reader":
        ext = record.extensions
        if isinstance(ext, str) or not all(isinstance(e, str) and e for e in ext):
            raise PluginError(f"{what}: `extensions` must be a tuple of non-empty strings")


def _validate_schema(what: str, schema: Any) -> None:
    if not isinstance(schema, Mapping):
        raise PluginError(f"{what}: `options_schema` must be a mapping (a JSON Schema object)")
    if not schema:
        return
    if schema.get("type", "object") != "object":
        raise PluginError(f"{what}: `options_schema` must describe an object, not {schema['type']!r}")
    try:
        jsonschema.Draft202012Validator.check_schema(dict(schema))
    except jsonschema.SchemaError as err:
        path = "/".join(str(p) for p in err.absolute_path)
        raise PluginError(
            f"{what}: invalid `options_schema`{f' at {path}' if path else ''}: {one_line(err.message)}"
        ) from None


def _validate_parameters(what: str, parameters: Any) -> None:
    if isinstance(parameters, (str, Mapping)) or not isinstance(parameters, Iterable):
        raise PluginError(f"{what}: `parameters` must be a tuple of Parameter records")
    seen: set[str] = set()
    for param in parameters:
        if not isinstance(param, Parameter):
            raise PluginError(f"{what}: `parameters` holds a {type(param).__name__}, not a Parameter")
        if not isinstance(param.name, str) or not param.name:
            raise PluginError(f"{what}: a parameter has an invalid name {param.name!r}")
        if param.name in seen:
            raise PluginError(f"{what}: parameter {param.name!r} is declared twice")
        seen.add(param.name)
        shape = param.shape
        if not isinstance(shape, (tuple, list)) or not all(
            (isinstance(s, int) and not isinstance(s, bool) and s >= 0) or s in SHAPE_SYMBOLS
            for s in shape
        ):
            raise PluginError(
                f"{what}: parameter {param.name!r} has shape {shape!r}; expected a tuple of "
                f"non-negative ints and the symbols {', '.join(map(repr, SHAPE_SYMBOLS))}"
            )
        if not isinstance(param.units, str):
            raise PluginError(f"{what}: parameter {param.name!r} has non-string units")
