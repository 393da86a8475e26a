"""The full-Jacobian engine: `∂x*/∂θ` of a root, all columns at once, with diagnostics.

The package is itself callable: `sensitiv.jacobian(F, sol, params)` is
`sensitiv.jacobian.jacobian(F, sol, params)`.

- `jacobian(F, sol, params, *args, method=...)`: the Jacobian of the solution map.
- `total_derivative(g, F, sol, params, *args)`: `dg/dθ` of an observable at the root.
- `Sparsity`: a structure hint (interacting atom pairs) recovered with few JVPs by coloring.
- `translation_modes`, `rigid_body_modes`: known zero modes for `null_space=`.
- `JacobianResult`, `JacobianInfo`: what comes back.
"""

import sys as _sys
import types as _types

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


class _CallableModule(_types.ModuleType):
    """`sensitiv.jacobian` is both this package and, called, the function `jacobian`."""

    def __call__(self, *args, **kwargs):
        # looked up at call time, so that patching `sensitiv.jacobian.jacobian` takes effect
        return self.jacobian(*args, **kwargs)


_sys.modules[__name__].__class__ = _CallableModule
