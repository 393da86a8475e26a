"""The built-in plugin: what sensitiv itself contributes.

It is registered through the entry-point group `sensitiv` (`builtin = "sensitiv.builtin"`
in sensitiv's `pyproject.toml`), exactly like a third-party plugin, so
`SENSITIV_DISABLE_PLUGIN_AUTOLOAD` and `SENSITIV_PLUGINS` apply to it too. Each hook is a
plain `@hookimpl` function; imports happen inside them so that listing plugins stays cheap.
"""

from __future__ import annotations

from .hookspecs import hookimpl
from .records import StructureReader


@hookimpl
def sensitiv_structure_readers() -> list[StructureReader]:
    from ._amber import amber_reader

    return [amber_reader()]
