"""The module the `springs` entry point names: one `@hookimpl` per hook it implements."""

from __future__ import annotations

from sensitiv.hookspecs import hookimpl
from sensitiv.records import EnergyModel

from .model import ENERGY_MODEL


@hookimpl
def sensitiv_energy_models() -> list[EnergyModel]:
    return [ENERGY_MODEL]
