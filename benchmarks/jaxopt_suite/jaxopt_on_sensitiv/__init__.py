"""jaxopt's public names mapped to sensitiv's, as docs/migrating.md's table says.

Only renames and the documented conversions; names sensitiv does not provide are absent,
so a test that needs them fails at import/attribute time and is counted as "not provided".
Fixtures that are not under test (objective functions, tree utilities) come from jaxopt.
"""
from sensitiv.solvers import (  # same names
    BlockCoordinateDescent,
    GradientDescent,
    MirrorDescent,
    ProjectedGradient,
    ProximalGradient,
    ScipyBoundedMinimize,
    ScipyMinimize,
)
from sensitiv.solvers import EqualityQP as EqualityConstrainedQP  # renamed
from sensitiv.solvers import QP as OSQP  # renamed
from sensitiv.solvers import BoxQP as BoxCDQP  # renamed (params_ineq -> params_box)
from sensitiv.solvers import OptStep  # same
from sensitiv.optimality import KKTSolution  # jaxopt.base.KKTSolution

from . import implicit_diff, linear_solve, projection, prox  # noqa: E402
from jaxopt import objective, tree_util, loss  # fixtures, not under test  # noqa: E402


def __getattr__(name):
    """A jaxopt name sensitiv does not provide: a class that says so when constructed
    (so one missing solver fails its own tests, not the whole file's import)."""
    if not name[:1].isupper():
        raise AttributeError(name)

    class NotProvided:
        def __init__(self, *args, **kwargs):
            raise NotImplementedError(f"jaxopt.{name} is not provided by sensitiv (docs/migrating.md)")

    NotProvided.__name__ = name
    return NotProvided
