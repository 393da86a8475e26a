"""sensitiv-jaxmd: the first-party physics plugin of sensitiv.

Energy models built on jax-md with every physical parameter a differentiable θ, spaces
with the homogeneous strain as a parameter, neighbor lists that are never silently wrong,
FIRE and gradient-descent solvers, and the stationary-gradient optimality condition.
sensitiv discovers it through the entry point `jaxmd = "sensitiv_jaxmd.plugin"`.

Conventions: positions are Cartesian in the reference (unstrained) cell, cells have the
lattice vectors as rows, and the parameter `"strain"` deforms displacements and cell
inside the energy (`F = I + sym(ε)`), so `∂x*/∂ε` is the internal-relaxation field.

**Example:**

```python
import sensitiv, sensitiv_jaxmd
system = sensitiv_jaxmd.MODELS["stillinger_weber"].record().factory(structure, {})
result = sensitiv_jaxmd.fire({"ftol": 1e-12})(system, system.positions, system.params)
F = sensitiv_jaxmd.stationary(system)
```
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

# Names load on first use (PEP 562): sensitiv imports this package to reach the entry
# point `sensitiv_jaxmd.plugin`, which must stay free of jax and jax-md so that listing
# plugins and validating configs is fast.
_SOURCES = {
    "STATIONARY": "._condition", "stationary": "._condition",
    "MODELS": "._energies",
    "FIRE": "._minimize", "GRADIENT_DESCENT": "._minimize", "fire": "._minimize",
    "gradient_descent": "._minimize", "polish": "._polish",
    "Model": "._model",
    "NeighborList": "._neighbors", "explain_status": "._neighbors",
    "Space": "._spaces", "deformation": "._spaces", "space_from_structure": "._spaces",
    "Diagnosis": "._system", "build_system": "._system", "diagnose": "._system",
    "ensure_neighbors": "._system", "neighbor_list": "._system",
}

if TYPE_CHECKING:  # what the lazy names are, for type checkers and documentation tools
    from ._condition import STATIONARY, stationary
    from ._energies import MODELS
    from ._minimize import FIRE, GRADIENT_DESCENT, fire, gradient_descent
    from ._model import Model
    from ._polish import polish
    from ._neighbors import NeighborList, explain_status
    from ._spaces import Space, deformation, space_from_structure
    from ._system import Diagnosis, build_system, diagnose, ensure_neighbors, neighbor_list

__all__ = [
    "MODELS",
    "Model",
    "build_system",
    "diagnose",
    "ensure_neighbors",
    "neighbor_list",
    "Diagnosis",
    "fire",
    "gradient_descent",
    "polish",
    "stationary",
    "FIRE",
    "GRADIENT_DESCENT",
    "STATIONARY",
    "NeighborList",
    "explain_status",
    "Space",
    "space_from_structure",
    "deformation",
]


def __getattr__(name: str):
    source = _SOURCES.get(name)
    if source is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(source, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
