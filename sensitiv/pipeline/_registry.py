"""The pipeline's view of the plugin host: records by kind and name, and plugin versions.

A thin adapter over `sensitiv.plugins`, so that the rest of the pipeline depends on four
dictionaries and one version table only.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from typing import Any

__all__ = ["Catalog", "catalog"]


@dataclasses.dataclass(frozen=True)
class Catalog:
    """Every record the installed plugins contribute, by kind and name.

    **Arguments:**

    - `energy_models`, `solvers`, `conditions`, `readers`: name → record.
    - `owners`: `(kind, name)` → the plugin contributing it.
    - `versions`: plugin name → `"name (distribution version)"`.
    """

    energy_models: Mapping[str, Any]
    solvers: Mapping[str, Any]
    conditions: Mapping[str, Any]
    readers: Mapping[str, Any]
    owners: Mapping[tuple[str, str], str]
    versions: Mapping[str, str]

    def source_string(self, used: set[str] | None = None) -> str:
        """`sensitiv X.Y.Z; plugins: jaxmd (sensitiv-jaxmd 0.1.0), ...` for `source` attributes."""
        from .. import __version__

        names = sorted(self.versions if used is None else used)
        parts = [self.versions.get(name, f"{name} (unknown version)") for name in names]
        return f"sensitiv {__version__}" + (f"; plugins: {', '.join(parts)}" if parts else "")


_KINDS = {
    "energy_models": "energy_model",
    "solvers": "equilibrium_solver",
    "conditions": "optimality_condition",
    "readers": "structure_reader",
}


def _from_host() -> Catalog:
    from .. import plugins as host

    reg = host.get_registry()
    tables: dict[str, dict] = {}
    owners: dict = {}
    for field, kind in _KINDS.items():
        tables[field] = dict(reg.records(kind))
        for name in tables[field]:
            owners[(field, name)] = reg.owner(kind, name)
    versions = {info.name: info.describe() for info in reg.plugins}
    return Catalog(owners=owners, versions=versions, **tables)


@functools.lru_cache(maxsize=1)
def catalog() -> Catalog:
    """Return the `Catalog` of the installed plugins (cached; `catalog.cache_clear()` resets)."""
    return _from_host()
