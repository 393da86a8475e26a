"""The full-Jacobian engine: `∂x*/∂θ` of a root, all columns at once, with diagnostics.

Its public names are re-exported on the package face (`sensitiv.jacobian`,
`sensitiv.total_derivative`, `sensitiv.Sparsity`, ...); this module is where they live.

- `jacobian(F, sol, params, *args, method=...)`: the Jacobian of the solution map.
- `total_derivative(g, F, sol, params, *args)`: `dg/dθ` of an observable at the root.

`_api.jacobian_then(then, then_args, F, sol, params, *args)` (for `sensitiv.uncertainty`):
the Jacobian, then further solves with its factorization in the same compiled program.
- `KrylovOptions`: the matrix-free strategy's settings.
- `Sparsity`: a structure hint (interacting atom pairs) recovered with few JVPs by coloring.
- `translation_modes`, `rigid_body_modes`: known zero modes for `null_space=`.
- `JacobianResult`, `JacobianInfo`: what comes back.

Inside: `_plan` (host side: checks, symmetry probe, strategy choice → a hashable plan),
`_program` (the compiled program), `_assembly` (∂₁F, ∂₂F, zero modes, the systems),
`_dense` and `_krylov` (each strategy's solve path), `_block_krylov` (multi-right-hand-side
CG/MINRES, Lanczos), `_diagnostics` (`JacobianInfo`, flags), `_operators`, `_structure`,
`_linalg`, `_nullspace`, `_sharding`.
"""

from ._api import JacobianResult, jacobian, total_derivative
from ._diagnostics import JacobianInfo
from ._nullspace import rigid_body_modes, translation_modes
from ._options import KrylovOptions
from ._structure import Sparsity, distance2_coloring

__all__ = [
    "jacobian",
    "total_derivative",
    "KrylovOptions",
    "JacobianResult",
    "JacobianInfo",
    "Sparsity",
    "distance2_coloring",
    "translation_modes",
    "rigid_body_modes",
]

# `sensitiv.jacobian.total_derivative(...)` and the like, from when `sensitiv.jacobian` was
# this package: deprecated attributes of the function for one release (see sensitiv._moved)
from .. import _moved  # noqa: E402

_moved.attach_to_function(jacobian, globals())
