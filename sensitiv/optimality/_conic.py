"""Conic programs in standard form and the residual map of their optimality conditions.

Primal and dual (the form used by SCS, diffcp and cvxpylayers):

```
minimize    cᵀx                      maximize   −bᵀy
subject to  A x + s = b,  s ∈ K      subject to Aᵀy + c = 0,  y ∈ K*
```

`K` is a product, in this order, of the zero cone `{0}` (equality rows), the
non-negative orthant, second-order cones and positive semi-definite cones (each stored
as the `svec` of a symmetric matrix). All four are self-dual except the zero cone, whose
dual is the whole space.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ..errors import InputError
from .._projections import projection_psd_cone, projection_second_order_cone

__all__ = [
    "Cones",
    "ConicPoint",
    "ConicSolution",
    "conic_residual",
    "conic_solution",
    "conic_point",
    "projection_cone",
    "projection_dual_cone",
    "svec",
    "smat",
]


@dataclasses.dataclass(frozen=True)
class Cones:
    """The cone `K` of a conic program: row counts of each block, in row order.

    **Arguments:**

    - `zero`: rows of the zero cone `{0}` (equality constraints `A x = b` on those rows).
    - `nonnegative`: rows of the non-negative orthant (`A x ≤ b` on those rows).
    - `second_order`: sizes of second-order cones `{(t, v) : ‖v‖ ≤ t}`, each `1 + dim v` rows.
    - `psd`: matrix orders `n` of PSD cones, each `n(n+1)/2` rows holding `svec(S)`.

    **Example:**

    ```python
    Cones(zero=1, nonnegative=3, second_order=(3,))   # 7 rows
    ```
    """

    zero: int = 0
    nonnegative: int = 0
    second_order: tuple[int, ...] = ()
    psd: tuple[int, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "second_order", tuple(int(q) for q in self.second_order))
        object.__setattr__(self, "psd", tuple(int(n) for n in self.psd))
        if self.zero < 0 or self.nonnegative < 0 or any(q < 1 for q in self.second_order) or any(
            n < 1 for n in self.psd
        ):
            raise InputError(f"Cones: sizes must be positive, got {self}")

    @property
    def dim(self) -> int:
        """Total number of rows `m`."""
        return (
            self.zero
            + self.nonnegative
            + sum(self.second_order)
            + sum(n * (n + 1) // 2 for n in self.psd)
        )

    def blocks(self):
        """`(kind, start, size, order)` for every block, in row order."""
        start = 0
        out = []
        for kind, size, order in (
            [("zero", self.zero, 0), ("nonnegative", self.nonnegative, 0)]
            + [("second_order", q, 0) for q in self.second_order]
            + [("psd", n * (n + 1) // 2, n) for n in self.psd]
        ):
            if size:
                out.append((kind, start, size, order))
            start += size
        return out


def _triu_indices(n):
    return jnp.triu_indices(n)


def svec(matrix: jax.Array) -> jax.Array:
    r"""The isometric vectorization of a symmetric matrix: its upper triangle, row by row,
    off-diagonal entries multiplied by `√2`, so that `⟨svec S, svec T⟩ = tr(S T)`.

    This is how a PSD cone block of a `Cones` stores its matrix.

    **Arguments:**

    - `matrix`: a symmetric `(n, n)` array (only its upper triangle is read).

    **Returns:** a vector of `n(n+1)/2` entries.

    **Example:**

    ```python
    svec(jnp.array([[1.0, 2.0], [2.0, 3.0]]))   # [1., 2√2, 3.]
    ```
    """
    n = matrix.shape[0]
    i, j = _triu_indices(n)
    scale = jnp.where(i == j, 1.0, math.sqrt(2.0)).astype(matrix.dtype)
    return matrix[i, j] * scale


def smat(vector: jax.Array) -> jax.Array:
    """The inverse of `svec`: a symmetric matrix from its scaled upper triangle.

    **Arguments:**

    - `vector`: `n(n+1)/2` entries, as `svec` writes them; any other length raises
      `InputError`.

    **Returns:** the symmetric `(n, n)` matrix.

    **Example:**

    ```python
    S = jnp.array([[1.0, 2.0], [2.0, 3.0]])
    smat(svec(S))                                # S again
    ```
    """
    size = vector.shape[0]
    n = int(round((math.sqrt(8 * size + 1) - 1) / 2))
    if n * (n + 1) // 2 != size:
        raise InputError(f"smat: {size} entries are not the svec of a symmetric matrix")
    i, j = _triu_indices(n)
    scale = jnp.where(i == j, 1.0, 1 / math.sqrt(2.0)).astype(vector.dtype)
    upper = jnp.zeros((n, n), vector.dtype).at[i, j].set(vector * scale)
    return upper + jnp.triu(upper, 1).T


def _project(w: jax.Array, cones: Cones, dual: bool) -> jax.Array:
    if w.shape != (cones.dim,):
        raise InputError(f"conic projection: expected a vector of {cones.dim} rows, got shape {w.shape}")
    parts = []
    for kind, start, size, order in cones.blocks():
        block = w[start : start + size]
        if kind == "zero":
            parts.append(block if dual else jnp.zeros_like(block))
        elif kind == "nonnegative":
            parts.append(jnp.maximum(block, 0))
        elif kind == "second_order":
            parts.append(projection_second_order_cone(block))
        else:
            parts.append(svec(projection_psd_cone(smat(block))))
    return jnp.concatenate(parts) if parts else w


def projection_cone(w: jax.Array, cones: Cones) -> jax.Array:
    """Euclidean projection onto `K` (the zero cone projects to 0).

    Block by block: zero rows to 0, non-negative rows clipped at 0, second-order cones
    and PSD cones (eigenvalues clipped at 0, through `smat`/`svec`) by their closed forms.
    Differentiable almost everywhere.

    **Arguments:**

    - `w`: a vector of `cones.dim` rows.
    - `cones`: the `Cones` describing the rows.

    **Returns:** `Π_K(w)`, shaped like `w`.

    **Example:**

    ```python
    projection_cone(jnp.array([3.0, -1.0]), Cones(zero=1, nonnegative=1))   # [0., 0.]
    ```
    """
    return _project(w, cones, dual=False)


def projection_dual_cone(w: jax.Array, cones: Cones) -> jax.Array:
    """Euclidean projection onto the dual cone `K*` (the zero cone's dual is everything).

    Identical to `projection_cone` on the self-dual blocks; zero-cone rows pass unchanged.
    By Moreau's decomposition `w = Π_{K*}(w) − Π_K(−w)`.

    **Arguments:**

    - `w`: a vector of `cones.dim` rows.
    - `cones`: the `Cones` describing the rows.

    **Returns:** `Π_{K*}(w)`, shaped like `w`.

    **Example:**

    ```python
    projection_dual_cone(jnp.array([3.0, -1.0]), Cones(zero=1, nonnegative=1))   # [3., 0.]
    ```
    """
    return _project(w, cones, dual=True)


class ConicPoint(NamedTuple):
    """The root variable of `conic_residual`: the primal `x` and `w = y − s`.

    By Moreau's decomposition the dual variable and slack are recovered as
    `y = Π_{K*}(w)` and `s = Π_{K*}(w) − w = Π_K(−w)` (see `conic_solution`).

    **Arguments:**

    - `x`: the primal variable, shape `(n,)`.
    - `w`: `y − s`, shape `(m,)` with `m = cones.dim`.

    **Example:**

    ```python
    F = conic_residual(cones)
    F(conic_point(sol), A, b, c)       # ConicPoint of zeros at a solution
    ```
    """

    x: jax.Array
    w: jax.Array


class ConicSolution(NamedTuple):
    """A primal–dual solution `(x, y, s)` of a conic program.

    **Arguments:**

    - `x`: the primal variable, shape `(n,)`.
    - `y`: the dual variable, in `K*`, shape `(m,)`.
    - `s`: the primal slack `b − A x`, in `K`, shape `(m,)`; `yᵀs = 0` at a solution.

    **Example:**

    ```python
    sol, state = sensitiv.solvers.ConicSolver(cones).run(A, b, c)
    sol.x, sol.y, sol.s                # primal, dual, slack
    ```
    """

    x: jax.Array
    y: jax.Array
    s: jax.Array


def conic_solution(point: ConicPoint, cones: Cones) -> ConicSolution:
    """`(x, y, s)` from the root variable `(x, w)`: `y = Π_{K*}(w)`, `s = y − w`.

    Differentiable: chaining it after an implicitly differentiated `ConicPoint` gives the
    derivatives of the dual variable and of the slack.

    **Arguments:**

    - `point`: a `ConicPoint` `(x, w)`.
    - `cones`: the `Cones` of the program's rows.

    **Returns:** the `ConicSolution` `(x, y, s)`.

    **Example:**

    ```python
    conic_solution(conic_point(sol), cones)    # back to ConicSolution(x, y, s)
    ```
    """
    y = projection_dual_cone(point.w, cones)
    return ConicSolution(point.x, y, y - point.w)


def conic_point(solution: ConicSolution) -> ConicPoint:
    """The root variable `(x, y − s)` of a primal–dual solution.

    The inverse of `conic_solution` on solutions (`y ∈ K*`, `s ∈ K`, `yᵀs = 0`).

    **Arguments:**

    - `solution`: a `ConicSolution` `(x, y, s)`.

    **Returns:** the `ConicPoint` `(x, y − s)`.

    **Example:**

    ```python
    point = conic_point(sol)           # ConicPoint(x, w = y − s), the root of conic_residual
    ```
    """
    return ConicPoint(solution.x, solution.y - solution.s)


def conic_residual(cones: Cones) -> Callable:
    r"""The residual map of a conic program's optimality conditions (its root is the solution).

    With `y = Π_{K*}(w)` and `s = Π_K(−w) = y − w`,

    ```
    F((x, w), A, b, c) = ( Aᵀ y + c,           dual feasibility
                           A x + s − b )        primal feasibility
    ```

    `y ∈ K*`, `s ∈ K` and `yᵀs = 0` hold for *every* `w` by Moreau's decomposition, so
    `F = 0` is exactly the primal–dual optimality (KKT) system. This is the residual map
    of the homogeneous self-dual embedding (Busseti, Moursi & Boyd 2019; used by diffcp
    and in Blondel et al. 2022) with the homogenizing variable fixed at `τ = 1`, i.e. the
    KKT conditions of the conic program written through the projection onto
    `ℝⁿ × K*`. Its Jacobian `[[0, AᵀD], [A, D − I]]` with `D = DΠ_{K*}(w)` is invertible
    when the solution is unique and strictly complementary; it is not symmetric (use LU
    or GMRES, the default `"auto"` does). Infeasible or unbounded programs have no root.

    Needs the **primal and dual** solution (through `w = y − s`). Oracles: `A`, `b`, `c`
    (dense) and the projection onto `K*` (`projection_dual_cone`).

    **Arguments:**

    - `cones`: the `Cones` of the rows of `A`.

    **Returns:** `F(point, A, b, c)` with `point` a `ConicPoint`; returns a `ConicPoint` of
    residuals.

    **Example:**

    ```python
    cones = Cones(nonnegative=3)                 # LP:  min cᵀx  s.t.  A x ≤ b
    F = sensitiv.optimality.conic_residual(cones)
    F(ConicPoint(x, y - s), A, b, c)             # ≈ 0 at the solution
    ```
    """

    def conic_optimality(point: Any, A, b, c):
        x, w = point
        y = projection_dual_cone(w, cones)
        s = y - w
        return ConicPoint(A.T @ y + c, A @ x + s - b)

    return conic_optimality
