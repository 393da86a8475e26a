"""Small solvers paired with the mappings of `sensitiv.optimality`.

Every solver is a frozen dataclass configured once; `solver.run(init_params, ...)`
returns `OptStep(params, state)` with `state` a `SolverState(iterations, error,
converged)` of arrays (so it works under `jit` and `vmap`). The solution is
differentiable with respect to every array argument of `run` except `init_params`:

- `implicit_diff=True` (default): the loop is a `lax.while_loop` that stops at
  convergence and is never differentiated; derivatives come from `sensitiv.custom_root`
  / `custom_fixed_point` applied to the paired mapping (`solver.optimality_fun()`);
- `implicit_diff=False`: the loop is a `lax.scan` over exactly `maxiter` steps (frozen
  once converged) and derivatives come from autodiff through the iterations — the
  unrolled baseline to compare with.

| solver | problem | mapping |
|---|---|---|
| `GradientDescent` | `min f` | `stationary` |
| `ProximalGradient` | `min f + g` | `proximal_gradient_fixed_point` |
| `ProjectedGradient` | `min_{x∈C} f` | `projected_gradient_fixed_point` |
| `MirrorDescent` | `min_{x∈C} f` | `mirror_descent_fixed_point` |
| `BlockCoordinateDescent` | `min f + Σ gⱼ` | `block_proximal_gradient_fixed_point` |
| `Newton` | `min f` | `newton_fixed_point` |
| `EqualityQP` | QP, `Ax = b` | `kkt` |
| `QP` | QP, `Ax = b, Gx ≤ h` | `kkt` |
| `BoxQP` | QP, `l ≤ x ≤ u` | `projected_gradient_fixed_point` (box) |
| `ConicSolver` | conic program | `conic_residual` |
| `ScipyMinimize` | `min f` (scipy) | `stationary` |
| `ScipyBoundedMinimize` | `min_{l≤x≤u} f` (scipy) | `projected_gradient_fixed_point` (box) |
"""

from ._base import OptStep, SolverState
from ._conic import ConicSolver
from ._first_order import (
    BlockCoordinateDescent,
    GradientDescent,
    MirrorDescent,
    Newton,
    ProjectedGradient,
    ProximalGradient,
)
from ._qp import QP, BoxQP, EqualityQP
from ._scipy import ScipyBoundedMinimize, ScipyMinimize

__all__ = [
    "OptStep",
    "SolverState",
    "GradientDescent",
    "ProximalGradient",
    "ProjectedGradient",
    "MirrorDescent",
    "BlockCoordinateDescent",
    "Newton",
    "EqualityQP",
    "QP",
    "BoxQP",
    "ConicSolver",
    "ScipyMinimize",
    "ScipyBoundedMinimize",
]
