"""The plugin contract: every hook a sensitiv plugin may implement.

(Skeleton: the plugin-host work documents each hook fully and adds examples.)
"""

from __future__ import annotations

import pluggy

from .records import EnergyModel, EquilibriumSolver, OptimalityCondition, StructureReader

PROJECT_NAME = "sensitiv"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def sensitiv_energy_models() -> list[EnergyModel]:
    """Return the energy models this plugin contributes."""


@hookspec
def sensitiv_equilibrium_solvers() -> list[EquilibriumSolver]:
    """Return the equilibrium solvers this plugin contributes."""


@hookspec
def sensitiv_optimality_conditions() -> list[OptimalityCondition]:
    """Return the optimality conditions this plugin contributes."""


@hookspec
def sensitiv_structure_readers() -> list[StructureReader]:
    """Return the structure readers this plugin contributes."""
