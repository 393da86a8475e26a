"""The built-in plugin: what sensitiv itself contributes.

It is registered through the entry-point group `sensitiv` (`builtin =
"sensitiv.plugins.builtin"` in sensitiv's `pyproject.toml`), exactly like a third-party
plugin, so `SENSITIV_DISABLE_PLUGIN_AUTOLOAD` and `SENSITIV_PLUGINS` apply to it too. Each
hook is a plain `@hookimpl` function. Importing it is cheap: the AMBER reader imports
xarray only when it reads a file, the `stationary` condition JAX only when it is built.

The generic optimality condition `stationary` (F = ∇ₓE of any plugin's `System`) lives
here, in the host, so that a model plugin needs no other plugin to be analyzed. A plugin
with a condition of its own gives it its own name (`condition: {name: my_condition}` in a
config); a second `stationary` would clash and be left out.
"""

from __future__ import annotations

import collections

from ..hookspecs import hookimpl
from ..records import OptimalityCondition, StructureReader, System
from .amber import amber_reader

#: Options of `stationary`: none.
STATIONARY_SCHEMA = {"type": "object", "additionalProperties": False, "properties": {}}


@hookimpl
def sensitiv_structure_readers() -> list[StructureReader]:
    """The AMBER-convention NetCDF reader (which also reads sensitiv's own results)."""
    return [amber_reader()]


def stationary_condition(system: System, options=None):
    """`F(x, θ) = ∇ₓE(x, θ)` of any plugin's `System`: zero at every equilibrium.

    **Arguments:**

    - `system`: the bound `System` (its `energy(positions, params)`).
    - `options`: none are defined (`{}`; the host checked them against the schema).

    **Returns:** `F(positions, params)`, shaped like `positions`.

    **Example:** `F = stationary_condition(system); F(system.positions, system.params)`
    """
    from ..optimality import stationary  # lazy: JAX loads when a condition is built, not at discovery

    energy = system.energy
    hit = _MAPPINGS.get(id(energy))
    if hit is not None and hit[0] is energy:
        return hit[1]  # one F per energy: programs compiled for it serve every frame bound to it
    F = stationary(energy)
    _MAPPINGS[id(energy)] = (energy, F)
    while len(_MAPPINGS) > 8:
        _MAPPINGS.popitem(last=False)
    return F


#: id(energy) -> (energy, F); the energy is kept so that its id is not reused meanwhile.
_MAPPINGS: collections.OrderedDict = collections.OrderedDict()


@hookimpl
def sensitiv_optimality_conditions() -> list[OptimalityCondition]:
    """The generic stationary-gradient condition F = ∇ₓE (any plugin's energy model)."""
    return [OptimalityCondition(
        name="stationary", factory=stationary_condition, options_schema=STATIONARY_SCHEMA,
        description="Stationary gradient F(x, theta) = grad_x E(x, theta) (zero at equilibrium).",
    )]
