"""sensitiv: exact sensitivities of equilibrium and optimization problems.

The public API is re-exported here; modules starting with an underscore are private.

The face is lazy (PEP 562): `import sensitiv` imports neither jax nor the numerical core;
each name below is imported on first use (`sensitiv.custom_root`, `from sensitiv import
jacobian`). So the plugin host and the commands that only need it (`sensitiv plugins`,
`validate`, `schema`, `inspect`) start in a fraction of a second.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import TYPE_CHECKING

from . import _moved

__version__ = "0.1.0"

# XLA's C++ logger writes an E-level line for every program loaded from the persistent
# compilation cache on CPU (a false alarm about LLVM tuning flags, jax-ml/jax#38445): one
# warm run would print hundreds. The level is read once, when jaxlib loads, so it is set
# here, before any jax import, unless the user chose one. `sensitiv.cache` turns the cache
# on by default only where this took effect.
_XLA_LOGS_QUIET = "jaxlib" not in sys.modules and os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3") == "3"

#: public name -> (module relative to this package, attribute or None for the module).
_SOURCES: dict[str, tuple[str, str | None]] = {
    "custom_root": ("._implicit", "custom_root"),
    "custom_fixed_point": ("._implicit", "custom_fixed_point"),
    "root_jvp": ("._implicit", "root_jvp"),
    "root_vjp": ("._implicit", "root_vjp"),
    "root_jvp_with_info": ("._implicit", "root_jvp_with_info"),
    "root_vjp_with_info": ("._implicit", "root_vjp_with_info"),
    "LinearSolver": ("._linear_solve", "LinearSolver"),
    "SolveInfo": ("._linear_solve", "SolveInfo"),
    "linear_solve": ("._linear_solve", "linear_solve"),
    "jacobi_preconditioner": ("._linear_solve", "jacobi_preconditioner"),
    # the Jacobian engine (sensitiv.engine): sensitiv.jacobian is its function (a literal
    # table, read by tests/test_architecture.py; sensitiv._moved.ENGINE_NAMES lists the same)
    "jacobian": (".engine", "jacobian"),
    "total_derivative": (".engine", "total_derivative"),
    "KrylovOptions": (".engine", "KrylovOptions"),
    "JacobianResult": (".engine", "JacobianResult"),
    "JacobianInfo": (".engine", "JacobianInfo"),
    "Sparsity": (".engine", "Sparsity"),
    "distance2_coloring": (".engine", "distance2_coloring"),
    "translation_modes": (".engine", "translation_modes"),
    "rigid_body_modes": (".engine", "rigid_body_modes"),
    "engine": (".engine", None),
    "optimality": (".optimality", None),
    "projections": (".projections", None),
    "prox": (".prox", None),
    "solvers": (".solvers", None),
    "errors": (".errors", None),
    "records": (".records", None),
    # uncertainty propagation, importance and validity ranges on top of the engine
    "uncertainty": (".uncertainty", None),
    # the command line's analysis in Python, and results in the user's tools
    "analyze": (".pipeline.api", "analyze"),
    "plot": (".pipeline.plot", "plot"),
    "io": (".io", None),
    "units": (".units", None),
    # the persistent compilation cache (on by default in the command line)
    "cache": (".cache", None),
    # materials: fixed atoms and a variable cell; elastic constants (Voigt, engineering shears)
    "constraints": (".constraints", None),
    "elasticity": (".elasticity", None),
    "elastic_constants": (".elasticity", "elastic_constants"),
}

if TYPE_CHECKING:  # the names as static analysis (type checkers, mkdocstrings) sees them
    from . import (cache, constraints, elasticity, engine, errors, io, optimality, projections, prox, records,
                   solvers, uncertainty, units)
    from ._implicit import (
        custom_fixed_point,
        custom_root,
        root_jvp,
        root_jvp_with_info,
        root_vjp,
        root_vjp_with_info,
    )
    from ._linear_solve import LinearSolver, SolveInfo, jacobi_preconditioner, linear_solve
    from .elasticity import elastic_constants
    from .engine import (
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
    from .pipeline.api import analyze
    from .pipeline.plot import plot

# the module path of earlier releases (`from sensitiv.jacobian import Sparsity`), deprecated:
# a plain module object forwarding to sensitiv.engine (no jax imported here)
sys.modules.setdefault(__name__ + ".jacobian", _moved.jacobian_module())

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
    *_moved.ENGINE_NAMES,
    "engine",
    "optimality",
    "projections",
    "prox",
    "solvers",
    "errors",
    "records",
    "uncertainty",
    "analyze",
    "plot",
    "io",
    "units",
    "cache",
    "constraints",
    "elasticity",
    "elastic_constants",
    "__version__",
]


def __getattr__(name: str):
    try:
        module_name, attribute = _SOURCES[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    module = importlib.import_module(module_name, __name__)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
