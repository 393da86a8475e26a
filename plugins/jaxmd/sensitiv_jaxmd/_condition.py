"""The stationary-gradient optimality condition `F(x, θ) = ∇ₓE(x, θ)`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sensitiv.optimality import stationary as stationary_mapping
from sensitiv.records import OptimalityCondition, System

from ._declarations import STATIONARY_DESCRIPTION, STATIONARY_SCHEMA
from ._options import validate_options

__all__ = ["STATIONARY", "stationary"]



def stationary(system: System, options: Mapping[str, Any] | None = None):
    """`F(x, θ) = ∇ₓE(x, θ)`: zero at every equilibrium (minimum, or saddle) of the energy.

    Its Jacobian in `x` is the Hessian, singular along `system.null_space(x)` (rigid
    translations, and rotations in free space); `∂F/∂θ` is orthogonal to those modes, so
    the linear system of implicit differentiation is consistent: solve it with the null
    space projected out, e.g. `sensitiv.LinearSolver("cg", null_space=system.null_space(x))`.

    **Arguments:**

    - `system`: a `System` (any plugin's).
    - `options`: none are defined (`{}`).

    **Returns:** `F(positions, params)`, shaped like `positions`.

    **Example:**

    ```python
    F = sensitiv_jaxmd.stationary(system)
    dx = sensitiv.root_jvp(F, x_star, (params,), (tangent,),
                           solve=sensitiv.LinearSolver("lstsq", null_space=system.null_space(x_star)))
    ```
    """
    validate_options("condition", "stationary", STATIONARY_SCHEMA, options)
    # The core's mapping: F(x, θ) = ∇₁E(x, θ) by reverse mode in x only (safe: the
    # parameter derivatives of F are then forward-over-reverse or reverse-over-reverse,
    # both finite for this plugin's energies).
    return stationary_mapping(system.energy)


STATIONARY = OptimalityCondition(
    name="stationary",
    factory=stationary,
    description=STATIONARY_DESCRIPTION,
    options_schema=STATIONARY_SCHEMA,
)
