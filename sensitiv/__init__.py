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
# The Jacobian engine lives in sensitiv.engine; its names are on this face.
from . import engine  # noqa: E402
from .engine import (  # noqa: E402
    JacobianInfo,
    JacobianResult,
    KrylovOptions,
    Sparsity,
    distance2_coloring,
    jacobian,
    rigid_body_modes,
    total_derivative,
    translation_modes,
)

# the module path of earlier releases (`from sensitiv.jacobian import Sparsity`), deprecated
import sys as _sys  # noqa: E402

from . import _moved  # noqa: E402

_sys.modules.setdefault(__name__ + ".jacobian", _moved.jacobian_module())

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
    *engine.__all__,
    "engine",
    "optimality",
    "projections",
    "prox",
    "solvers",
    "errors",
    "records",
    "__version__",
]
