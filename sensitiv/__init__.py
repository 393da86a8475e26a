"""sensitiv: exact sensitivities of equilibrium and optimization problems.

The public API is re-exported here; modules starting with an underscore are private.
"""

from . import errors, records
from ._implicit import (
    custom_fixed_point,
    custom_root,
    root_jvp,
    root_jvp_with_info,
    root_vjp,
    root_vjp_with_info,
)
from ._linear_solve import LinearSolver, SolveInfo, jacobi_preconditioner, linear_solve
from . import optimality, projections, prox, solvers  # noqa: E402  (need the core above)
# The Jacobian engine's package is callable: sensitiv.jacobian(F, sol, params); its other
# names (total_derivative, JacobianResult, Sparsity, ...) live under sensitiv.jacobian.
from . import jacobian  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "custom_root",
    "custom_fixed_point",
    "root_jvp",
    "root_vjp",
    "root_jvp_with_info",
    "root_vjp_with_info",
    "LinearSolver",
    "SolveInfo",
    "linear_solve",
    "jacobi_preconditioner",
    "jacobian",
    "optimality",
    "projections",
    "prox",
    "solvers",
    "errors",
    "records",
    "__version__",
]
