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

from ._condition import STATIONARY, stationary
from ._energies import MODELS
from ._minimize import FIRE, GRADIENT_DESCENT, fire, gradient_descent
from ._model import Model
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
