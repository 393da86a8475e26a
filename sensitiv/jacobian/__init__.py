"""The full-Jacobian engine: `∂x*/∂θ` of a root, all columns at once, with diagnostics.

- `jacobian(F, sol, params, *args, method=...)`: the Jacobian of the solution map.
- `total_derivative(g, F, sol, params, *args)`: `dg/dθ` of an observable at the root.
- `Sparsity`: a structure hint (interacting atom pairs) recovered with few JVPs by coloring.
- `translation_modes`, `rigid_body_modes`: known zero modes for `null_space=`.
- `JacobianResult`, `JacobianInfo`: what comes back.
"""

from ._api import JacobianResult, jacobian, total_derivative
from ._diagnostics import JacobianInfo
from ._nullspace import rigid_body_modes, translation_modes
from ._structure import Sparsity, distance2_coloring

__all__ = [
    "jacobian",
    "total_derivative",
    "JacobianResult",
    "JacobianInfo",
    "Sparsity",
    "distance2_coloring",
    "translation_modes",
    "rigid_body_modes",
]
