"""The `ase` plugin: contributes one structure reader per format of `readers.READERS`."""

from __future__ import annotations

import functools

from sensitiv.hookspecs import hookimpl
from sensitiv.records import StructureReader

from .readers import READERS, read_with_ase


@hookimpl
def sensitiv_structure_readers() -> list[StructureReader]:
    records = []
    for name, (_, extensions, description, properties) in READERS.items():
        records.append(
            StructureReader(
                name=name,
                read=functools.partial(_read, name=name),
                extensions=extensions,
                description=f"{description} (through ase.io)",
                options_schema={
                    "type": "object",
                    "additionalProperties": False,
                    "properties": properties,
                },
            )
        )
    return records


def _read(path, options=None, *, name):
    return read_with_ase(path, name, options)
