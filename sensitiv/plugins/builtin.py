"""The built-in plugin: what sensitiv itself contributes.

It is registered through the entry-point group `sensitiv` (`builtin =
"sensitiv.plugins.builtin"` in sensitiv's `pyproject.toml`), exactly like a third-party
plugin, so `SENSITIV_DISABLE_PLUGIN_AUTOLOAD` and `SENSITIV_PLUGINS` apply to it too. Each
hook is a plain `@hookimpl` function. Importing it is cheap: the AMBER reader imports
xarray only when it reads a file.
"""

from __future__ import annotations

from ..hookspecs import hookimpl
from ..records import StructureReader
from .amber import amber_reader


@hookimpl
def sensitiv_structure_readers() -> list[StructureReader]:
    """The AMBER-convention NetCDF reader (which also reads sensitiv's own results)."""
    return [amber_reader()]
