"""The kinds of contribution a plugin makes: one per hook, each with its record type."""

from __future__ import annotations

import dataclasses

from ..errors import PluginError
from ..records import EnergyModel, EquilibriumSolver, OptimalityCondition, StructureReader

__all__ = ["Kind", "KINDS", "kind_of"]


@dataclasses.dataclass(frozen=True)
class Kind:
    """One kind of contribution: the hook that yields it and how it is named.

    **Arguments:**

    - `kind`: the key used by `Registry.records`, e.g. `"energy_model"`.
    - `hook`: the hook's name, e.g. `"sensitiv_energy_models"`.
    - `record_type`: the record class the hook returns.
    - `label`, `plural`: words for messages (`"energy model"`, `"energy models"`).
    - `attribute`: the `Registry` mapping attribute (`"energy_models"`).
    - `callable_field`: the record field that must be callable (`"factory"`, `"read"`).

    **Example:**

    ```python
    for kind in sensitiv.plugins.KINDS:
        print(kind.hook, "->", sorted(getattr(registry, kind.attribute)))
    ```
    """

    kind: str
    hook: str
    record_type: type
    label: str
    plural: str
    attribute: str
    callable_field: str


#: Every kind of contribution, in the order `sensitiv plugins` shows them.
KINDS: tuple[Kind, ...] = (
    Kind("energy_model", "sensitiv_energy_models", EnergyModel,
         "energy model", "energy models", "energy_models", "factory"),
    Kind("equilibrium_solver", "sensitiv_equilibrium_solvers", EquilibriumSolver,
         "equilibrium solver", "equilibrium solvers", "equilibrium_solvers", "factory"),
    Kind("optimality_condition", "sensitiv_optimality_conditions", OptimalityCondition,
         "optimality condition", "optimality conditions", "optimality_conditions", "factory"),
    Kind("structure_reader", "sensitiv_structure_readers", StructureReader,
         "structure reader", "structure readers", "structure_readers", "read"),
)
_KIND_BY_KEY = {key: k for k in KINDS for key in (k.kind, k.hook, k.attribute)}



def kind_of(key: str) -> Kind:
    """The `Kind` named by `key` (its kind, hook or attribute name); `PluginError` otherwise."""
    try:
        return _KIND_BY_KEY[key]
    except KeyError:
        known = ", ".join(k.kind for k in KINDS)
        raise PluginError(f"unknown contribution kind {key!r}; known kinds: {known}") from None
