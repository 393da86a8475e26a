"""The module the `springs` entry point names: one `@hookimpl` per hook it implements."""

from __future__ import annotations

from sensitiv.hookspecs import hookimpl
from sensitiv.records import EnergyModel

from .model import OPTIONS_SCHEMA, PARAMETERS, spring_network


@hookimpl
def sensitiv_energy_models() -> list[EnergyModel]:
    return [
        EnergyModel(
            name="harmonic_springs",
            factory=spring_network,
            description="harmonic springs between atoms closer than a cutoff (or given bonds)",
            parameters=PARAMETERS,  # stiffness, rest_length_scale: species x species
            options_schema=OPTIONS_SCHEMA,  # cutoff | bonds
        )
    ]
