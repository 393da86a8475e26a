"""Optimality conditions: the mappings `F` (roots) and `T` (fixed points) of the paper.

Each mapping is a plain function of user oracles that returns `F(x, *args)` — zero at the
solution — or `T(x, *args)` — equal to `x` at the solution. Pass `F` to
`sensitiv.custom_root` and `T` to `sensitiv.custom_fixed_point`, or use the paired
solvers of `sensitiv.solvers`, which do so by default.

| mapping | solution needed | oracles |
|---|---|---|
| `stationary` | primal | `∇₁f` |
| `kkt` | primal and dual | `∇₁f`, `H`, `G` (and their VJPs) |
| `proximal_gradient_fixed_point` | primal | `∇₁f`, `prox_ηg` |
| `projected_gradient_fixed_point` | primal | `∇₁f`, `proj_C` |
| `mirror_descent_fixed_point` | primal | `∇₁f`, `∇φ`, `proj^φ_C ∘ ∇φ*` |
| `newton_fixed_point` | primal | `∇₁f`, `[∇²₁f]⁻¹` |
| `block_proximal_gradient_fixed_point` | primal | `[∇₁f]ⱼ`, `[prox_ηg]ⱼ` |
| `conic_residual` | primal and dual | `A`, `b`, `c`, `Π_{K*}` |
"""

from ._conic import (
    ConicPoint,
    Cones,
    ConicSolution,
    conic_point,
    conic_residual,
    conic_solution,
    projection_cone,
    projection_dual_cone,
    smat,
    svec,
)
from ._fixed_points import (
    block_proximal_gradient_fixed_point,
    mirror_descent_fixed_point,
    projected_gradient_fixed_point,
    proximal_gradient_fixed_point,
)
from ._kkt import KKTSolution, kkt
from ._newton import newton_fixed_point
from ._stationary import stationary

__all__ = [
    "stationary",
    "kkt",
    "KKTSolution",
    "proximal_gradient_fixed_point",
    "projected_gradient_fixed_point",
    "mirror_descent_fixed_point",
    "block_proximal_gradient_fixed_point",
    "newton_fixed_point",
    "conic_residual",
    "Cones",
    "ConicPoint",
    "ConicSolution",
    "conic_solution",
    "conic_point",
    "projection_cone",
    "projection_dual_cone",
    "svec",
    "smat",
]
