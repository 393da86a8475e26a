"""The energy models this plugin contributes, by name."""

from __future__ import annotations

from ._eam import EAM, EAM_ALLOY, EAM_FS
from ._manybody import GUPTA, STILLINGER_WEBER
from ._model import Model
from ._pair import LENNARD_JONES, MORSE, SOFT_SPHERE, SOFT_SPHERE_ADDITIVE
from ._sw import SW
from ._tersoff import TERSOFF

__all__ = ["MODELS"]

#: name -> `Model`; `MODELS[name].record()` is the `EnergyModel` the hook returns.
MODELS: dict[str, Model] = {
    m.name: m
    for m in (SOFT_SPHERE, SOFT_SPHERE_ADDITIVE, LENNARD_JONES, MORSE, STILLINGER_WEBER, GUPTA,
              EAM, EAM_ALLOY, EAM_FS, TERSOFF, SW)
}
