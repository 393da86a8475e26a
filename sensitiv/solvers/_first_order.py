"""First-order and Newton solvers, each paired with its fixed-point or root mapping."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from ..errors import ImplicitDiffError
from ..optimality import (
    block_proximal_gradient_fixed_point,
    mirror_descent_fixed_point,
    newton_fixed_point,
    projected_gradient_fixed_point,
    proximal_gradient_fixed_point,
    stationary,
)
from ..optimality._newton import newton_direction
from ..prox import make_prox_from_projection, prox_none
from ._base import OptStep, jit_run, backtracking, iterate, tree_norm, tree_sub, with_implicit_diff

__all__ = [
    "GradientDescent",
    "ProximalGradient",
    "ProjectedGradient",
    "MirrorDescent",
    "BlockCoordinateDescent",
    "Newton",
]


def _check_common(name, fun, maxiter, tol):
    if not callable(fun):
        raise ImplicitDiffError(f"{name}: fun must be callable, got {fun!r}")
    if not isinstance(maxiter, int) or maxiter < 1:
        raise ImplicitDiffError(f"{name}: maxiter must be a positive int, got {maxiter!r}")
    if not tol >= 0:
        raise ImplicitDiffError(f"{name}: tol must be >= 0, got {tol!r}")


def _check_stepsize(name, stepsize, allow_none):
    if stepsize is None and allow_none:
        return
    if isinstance(stepsize, (int, float)) and stepsize > 0:
        return
    if isinstance(stepsize, (jax.Array,)) or hasattr(stepsize, "shape"):
        return
    if isinstance(stepsize, (tuple, list)):
        return
    extra = " or None for a backtracking line search" if allow_none else ""
    raise ImplicitDiffError(f"{name}: stepsize must be a positive number{extra}, got {stepsize!r}")


def _axpy(a, x, y):
    return jax.tree_util.tree_map(lambda u, v: a * u + v, x, y)


def _run_with_implicit_diff(solver, solve, mapping, fixed_point, init_params, *args, **kwargs) -> OptStep:
    """Run `solve(init_params, *args, **kwargs)` with `solver`'s implicit (or unrolled) rule."""
    run = with_implicit_diff(
        solve, mapping, fixed_point=fixed_point, implicit_diff=solver.implicit_diff, solve=solver.solve
    )
    return OptStep(*run(init_params, *args, **kwargs))


def _run_proximal(solver, prox, init_params, hyperparams, *args, **kwargs) -> OptStep:
    """ProximalGradient and ProjectedGradient: one loop, one fixed-point map."""
    solve = _proximal_gradient_solve(
        solver.fun, prox, solver.stepsize, solver.accelerated, solver.maxiter, solver.tol, not solver.implicit_diff
    )
    return _run_with_implicit_diff(solver, solve, solver.optimality_fun(), True, init_params, hyperparams, *args, **kwargs)


@dataclasses.dataclass(frozen=True)
class GradientDescent:
    r"""Gradient descent on `min_x f(x, θ)`, differentiated through `stationary(f)`.

    `x ← x − η ∇₁f(x, θ)` with a fixed step `η`, or with a backtracking (Armijo) line
    search when `stepsize=None` (starting from 1, never increasing).
    `SolverState.error` is `‖∇₁f(x, θ)‖₂` at the returned `x`.

    **Arguments:**

    - `fun`: the objective `f(x, *args, **kwargs)` (scalar; `x` any pytree).
    - `stepsize`: `η > 0`, or `None` for the line search.
    - `maxiter`, `tol`: stop when `error <= tol` or after `maxiter` iterations.
    - `implicit_diff`: `True` (default) differentiates the solution implicitly through
      `sensitiv.optimality.stationary(fun)`; `False` unrolls the iterations (`lax.scan`
      over `maxiter` steps) for reverse-mode autodiff.
    - `solve`: the linear solve of implicit differentiation (method name, `LinearSolver`
      or callable; default `"auto"`). The Hessian is symmetric: `"cg"` applies.
    - `jit`: compile `run` with `jax.jit`, once per solver configuration (default `True`).
      Data to differentiate must be passed to `run`, not closed over by `fun`.

    **Example:**

    ```python
    solver = GradientDescent(lambda w, lam: loss(w) + lam * jnp.sum(w**2), stepsize=0.1)
    w, state = solver.run(jnp.zeros(5), lam)
    jax.grad(lambda lam: validation(solver.run(jnp.zeros(5), lam).params))(lam)
    ```
    """

    fun: Callable
    stepsize: float | None = None
    maxiter: int = 1000
    tol: float = 1e-10
    implicit_diff: bool = True
    solve: Any = None
    jit: bool = True

    def __post_init__(self):
        _check_common("GradientDescent", self.fun, self.maxiter, self.tol)
        _check_stepsize("GradientDescent", self.stepsize, allow_none=True)

    def optimality_fun(self):
        """The mapping used for implicit differentiation: `F = ∇₁f`."""
        return stationary(self.fun)

    @jit_run
    def run(self, init_params: Any, *args, **kwargs) -> OptStep:
        """Minimize from `init_params`; `*args, **kwargs` are `θ`. Returns `OptStep(params, state)`."""
        value_and_grad = jax.value_and_grad(self.fun)

        def solve(init_params, *params, **kwargs):
            args = params
            fun_value = lambda x: self.fun(x, *args, **kwargs)
            f0, g0 = value_and_grad(init_params, *args, **kwargs)
            eta0 = jnp.asarray(1.0 if self.stepsize is None else self.stepsize, f0.dtype)

            def step(carry):
                x, fx, g, eta = carry
                if self.stepsize is None:
                    candidate = lambda e: _axpy(-e, g, x)
                    eta = backtracking(candidate, fun_value, x, fx, g, eta)
                x = _axpy(-eta, g, x)
                fx, g = value_and_grad(x, *args, **kwargs)
                return (x, fx, g, eta), tree_norm(g)

            carry, state = iterate(
                step, (init_params, f0, g0, eta0), maxiter=self.maxiter, tol=self.tol,
                unroll=not self.implicit_diff,
            )
            return carry[0], state

        return _run_with_implicit_diff(self, solve, self.optimality_fun(), False, init_params, *args, **kwargs)


def _proximal_gradient_solve(fun, prox, stepsize, accelerated, maxiter, tol, unroll):
    """The (accelerated) proximal gradient loop shared by ProximalGradient and ProjectedGradient."""
    value_and_grad = jax.value_and_grad(fun)

    # The hyperparameters travel in *params so that no argument name collides with the
    # mapping's (custom_root matches by name first, then by position); `params` also
    # sorts after `init_params`, so a key-sorted rebuild keeps the positional order.
    def solve(init_params, *params, **kwargs):
        hyperparams, args = params[0], params[1:]
        fun_value = lambda x: fun(x, *args, **kwargs)
        dtype = ravel_pytree(init_params)[0].dtype
        eta0 = jnp.asarray(1.0 if stepsize is None else stepsize, dtype)
        one = jnp.asarray(1.0, dtype)

        def step(carry):
            x, y, t, eta = carry
            fy, g = value_and_grad(y, *args, **kwargs)
            candidate = lambda e: prox(_axpy(-e, g, y), hyperparams, e)
            if stepsize is None:
                eta = backtracking(candidate, fun_value, y, fy, g, eta)
            x_new = candidate(eta)
            # ‖T(x_new) − x_new‖ ≤ ‖x_new − y‖ because T is non-expansive for η ≤ 2/L:
            # this bounds the scaled fixed-point residual at the returned iterate.
            error = tree_norm(tree_sub(x_new, y)) / eta
            if accelerated:
                t_new = (1 + jnp.sqrt(1 + 4 * t**2)) / 2
                momentum = (t - 1) / t_new
                y_new = _axpy(momentum, tree_sub(x_new, x), x_new)
                # Adaptive restart (O'Donoghue & Candès 2015): drop the momentum when it
                # points uphill; restores linear convergence on strongly convex problems.
                uphill = jax.lax.stop_gradient(
                    jnp.vdot(ravel_pytree(tree_sub(y, x_new))[0], ravel_pytree(tree_sub(x_new, x))[0]) > 0
                )
                y_new = jax.tree_util.tree_map(lambda a, b: jnp.where(uphill, a, b), x_new, y_new)
                t_new = jnp.where(uphill, one, t_new)
            else:
                y_new, t_new = x_new, t
            return (x_new, y_new, t_new, eta), error

        carry, state = iterate(step, (init_params, init_params, one, eta0), maxiter=maxiter, tol=tol, unroll=unroll)
        return carry[0], state

    return solve


@dataclasses.dataclass(frozen=True)
class ProximalGradient:
    r"""(Accelerated) proximal gradient on `min_x f(x, θ) + g(x, λ)`, differentiated through
    `proximal_gradient_fixed_point(f, prox)`.

    `x ← prox_{ηg}(y − η∇₁f(y, θ), λ)`, with FISTA momentum and adaptive restart when
    `accelerated=True`, and a backtracking line search when `stepsize=None`.
    `SolverState.error` is `‖x_{k+1} − y_k‖ / η`, which bounds the scaled fixed-point
    residual `‖T(x) − x‖ / η` at the returned `x`.

    **Arguments:**

    - `fun`: the smooth part `f(x, *args, **kwargs)`.
    - `prox`: `prox(x, hyperparams_prox, scaling)` (see `sensitiv.prox`); default: none.
    - `stepsize`: `η > 0` (at most `1/L` for an `L`-smooth `f`), or `None` for the line search.
    - `accelerated`: FISTA momentum (default `True`).
    - `maxiter`, `tol`, `implicit_diff`, `solve`, `jit`: as in `GradientDescent`. The implicit
      mapping uses `η = stepsize` (1 with the line search); its fixed points do not
      depend on `η`.

    **Example:**

    ```python
    lasso = ProximalGradient(lambda w, X, y: 0.5 * jnp.sum((X @ w - y) ** 2),
                             sensitiv.prox.prox_lasso, stepsize=1 / L)
    w, state = lasso.run(jnp.zeros(d), l1reg, X, y)
    dw_dl1reg = jax.jacobian(lambda lam: lasso.run(jnp.zeros(d), lam, X, y).params)(l1reg)
    ```
    """

    fun: Callable
    prox: Callable = prox_none
    stepsize: float | None = None
    accelerated: bool = True
    maxiter: int = 1000
    tol: float = 1e-10
    implicit_diff: bool = True
    solve: Any = None
    jit: bool = True

    def __post_init__(self):
        _check_common("ProximalGradient", self.fun, self.maxiter, self.tol)
        _check_stepsize("ProximalGradient", self.stepsize, allow_none=True)
        if not callable(self.prox):
            raise ImplicitDiffError(f"ProximalGradient: prox must be callable, got {self.prox!r}")

    def optimality_fun(self):
        """The fixed-point map `T(x, hyperparams_prox, *args)` used for implicit differentiation."""
        return proximal_gradient_fixed_point(self.fun, self.prox, stepsize=self.stepsize or 1.0)

    @jit_run
    def run(self, init_params: Any, hyperparams_prox: Any = None, *args, **kwargs) -> OptStep:
        """Solve from `init_params`; `hyperparams_prox` is `λ`, `*args, **kwargs` are `θ`."""
        return _run_proximal(self, self.prox, init_params, hyperparams_prox, *args, **kwargs)


@dataclasses.dataclass(frozen=True)
class ProjectedGradient:
    r"""(Accelerated) projected gradient on `min_{x ∈ C(λ)} f(x, θ)`, differentiated through
    `projected_gradient_fixed_point(f, projection)`.

    `x ← proj_{C(λ)}(y − η∇₁f(y, θ))`; otherwise exactly `ProximalGradient` with
    `prox = make_prox_from_projection(projection)` (same `error`, line search, momentum).

    **Arguments:**

    - `fun`: the objective `f(x, *args, **kwargs)`.
    - `projection`: `projection(x, hyperparams_proj)`, e.g. from `sensitiv.projections`.
    - `stepsize`, `accelerated`, `maxiter`, `tol`, `implicit_diff`, `solve`, `jit`: as in
      `ProximalGradient`.

    **Example:**

    ```python
    solver = ProjectedGradient(lambda x, Q, c: 0.5 * x @ Q @ x + c @ x,
                               sensitiv.projections.projection_simplex, stepsize=1 / L)
    x, state = solver.run(jnp.ones(n) / n, 1.0, Q, c)
    ```
    """

    fun: Callable
    projection: Callable
    stepsize: float | None = None
    accelerated: bool = True
    maxiter: int = 1000
    tol: float = 1e-10
    implicit_diff: bool = True
    solve: Any = None
    jit: bool = True

    def __post_init__(self):
        _check_common("ProjectedGradient", self.fun, self.maxiter, self.tol)
        _check_stepsize("ProjectedGradient", self.stepsize, allow_none=True)
        if not callable(self.projection):
            raise ImplicitDiffError(f"ProjectedGradient: projection must be callable, got {self.projection!r}")

    def optimality_fun(self):
        """The fixed-point map `T(x, hyperparams_proj, *args)` used for implicit differentiation."""
        return projected_gradient_fixed_point(self.fun, self.projection, stepsize=self.stepsize or 1.0)

    @jit_run
    def run(self, init_params: Any, hyperparams_proj: Any = None, *args, **kwargs) -> OptStep:
        """Solve from `init_params`; `hyperparams_proj` describes `C`, `*args, **kwargs` are `θ`."""
        prox = make_prox_from_projection(self.projection)
        return _run_proximal(self, prox, init_params, hyperparams_proj, *args, **kwargs)


@dataclasses.dataclass(frozen=True)
class MirrorDescent:
    r"""Mirror descent on `min_{x ∈ C(λ)} f(x, θ)`, differentiated through
    `mirror_descent_fixed_point(f, mirror_map, mirror_projection)`.

    `x ← proj^φ_{C(λ)}(∇φ*(∇φ(x) − η∇₁f(x, θ)))` with a fixed step. With
    `mirror_map=jnp.log` and `mirror_projection=kl_projection_simplex` this is the
    exponentiated gradient method on the simplex. `SolverState.error` is
    `‖x_{k+1} − x_k‖ / η` (the scaled fixed-point residual at the previous iterate).

    **Arguments:**

    - `fun`: the objective `f(x, *args, **kwargs)`.
    - `mirror_map`: `∇φ`.
    - `mirror_projection`: `(y, hyperparams_proj) ↦ proj^φ_C(∇φ*(y))`.
    - `stepsize`: `η > 0` (fixed).
    - `maxiter`, `tol`, `implicit_diff`, `solve`, `jit`: as in `GradientDescent`.

    **Example:**

    ```python
    solver = MirrorDescent(f, jnp.log, sensitiv.projections.kl_projection_simplex, stepsize=0.5)
    x, state = solver.run(jnp.ones(n) / n, 1.0, theta)
    ```
    """

    fun: Callable
    mirror_map: Callable
    mirror_projection: Callable
    stepsize: float = 1.0
    maxiter: int = 1000
    tol: float = 1e-10
    implicit_diff: bool = True
    solve: Any = None
    jit: bool = True

    def __post_init__(self):
        _check_common("MirrorDescent", self.fun, self.maxiter, self.tol)
        _check_stepsize("MirrorDescent", self.stepsize, allow_none=False)

    def optimality_fun(self):
        """The fixed-point map `T(x, hyperparams_proj, *args)` used for implicit differentiation."""
        return mirror_descent_fixed_point(self.fun, self.mirror_map, self.mirror_projection, stepsize=self.stepsize)

    @jit_run
    def run(self, init_params: Any, hyperparams_proj: Any = None, *args, **kwargs) -> OptStep:
        """Solve from `init_params` (inside the domain of `φ`, e.g. strictly positive)."""
        T = self.optimality_fun()

        def solve(init_params, *params, **kwargs):
            hyperparams_proj, args = params[0], params[1:]

            def step(x):
                x_new = T(x, hyperparams_proj, *args, **kwargs)
                return x_new, tree_norm(tree_sub(x_new, x)) / self.stepsize

            return iterate(step, init_params, maxiter=self.maxiter, tol=self.tol, unroll=not self.implicit_diff)

        return _run_with_implicit_diff(self, solve, T, True, init_params, hyperparams_proj, *args, **kwargs)


@dataclasses.dataclass(frozen=True)
class BlockCoordinateDescent:
    r"""Cyclic block coordinate (proximal) descent on `min_x f(x, θ) + Σⱼ gⱼ(xⱼ, λ)`,
    differentiated through `block_proximal_gradient_fixed_point(f, block_prox)`.

    One iteration (epoch) updates every block in turn with the latest values of the others:
    `xⱼ ← prox_{ηⱼ g}(xⱼ − ηⱼ [∇₁f(x, θ)]ⱼ, λ)`. Blocks are the rows of an array `x`, or
    the entries of a tuple/list `x` (see `block_proximal_gradient_fixed_point`). Each block
    update evaluates the full gradient `∇₁f` and keeps its block: simple and exact,
    efficient when `f` is cheap (small problems, as in the paper's SVM experiment).
    `SolverState.error` is `‖x_epoch − x_previous epoch‖ / max ηⱼ`.

    **Arguments:**

    - `fun`: the smooth part `f(x, *args, **kwargs)`.
    - `block_prox`: `prox(x_j, hyperparams, scaling)` for every block, or a sequence of
      them (tuple `x`); default none.
    - `stepsize`: `ηⱼ > 0`: a scalar, one per row (array `x`) or one per block (tuple `x`);
      typically `1 / Lⱼ` with `Lⱼ` the block Lipschitz constants.
    - `maxiter`, `tol`, `implicit_diff`, `solve`, `jit`: as in `GradientDescent` (`maxiter` counts epochs).

    **Example:**

    ```python
    # Multiclass SVM dual: rows of beta on the simplex.
    bcd = BlockCoordinateDescent(dual_objective,
                                 make_prox_from_projection(projection_simplex),
                                 stepsize=1 / row_lipschitz)
    beta, state = bcd.run(beta0, 1.0, X, Y, lam)
    ```
    """

    fun: Callable
    block_prox: Any = prox_none
    stepsize: Any = 1.0
    maxiter: int = 500
    tol: float = 1e-10
    implicit_diff: bool = True
    solve: Any = None
    jit: bool = True

    def __post_init__(self):
        _check_common("BlockCoordinateDescent", self.fun, self.maxiter, self.tol)
        _check_stepsize("BlockCoordinateDescent", self.stepsize, allow_none=False)
        if hasattr(self.stepsize, "shape") and not isinstance(self.stepsize, jax.core.Tracer):
            # A concrete vector of per-row steps is stored as a tuple: hashable, so the
            # compiled `run` is cached for this configuration.
            object.__setattr__(self, "stepsize", tuple(float(v) for v in np.ravel(np.asarray(self.stepsize))))

    def optimality_fun(self):
        """The fixed-point map `T(x, hyperparams_prox, *args)` used for implicit differentiation."""
        return block_proximal_gradient_fixed_point(self.fun, self.block_prox, stepsize=self.stepsize)

    @jit_run
    def run(self, init_params: Any, hyperparams_prox: Any = None, *args, **kwargs) -> OptStep:
        """Solve from `init_params`; `hyperparams_prox` is `λ`, `*args, **kwargs` are `θ`."""
        grad = jax.grad(self.fun)

        def solve(init_params, *params, **kwargs):
            hyperparams_prox, args = params[0], params[1:]
            if isinstance(init_params, (tuple, list)):
                epoch, max_step = self._tuple_epoch(grad, init_params, hyperparams_prox, args, kwargs)
            else:
                epoch, max_step = self._array_epoch(grad, init_params, hyperparams_prox, args, kwargs)

            def step(x):
                x_new = epoch(x)
                return x_new, tree_norm(tree_sub(x_new, x)) / max_step

            return iterate(step, init_params, maxiter=self.maxiter, tol=self.tol, unroll=not self.implicit_diff)

        return _run_with_implicit_diff(self, solve, self.optimality_fun(), True, init_params, hyperparams_prox, *args, **kwargs)

    def _array_epoch(self, grad, x0, hyperparams, args, kwargs):
        if not callable(self.block_prox):
            raise ImplicitDiffError("BlockCoordinateDescent: with an array x, block_prox must be one callable")
        n = x0.shape[0]
        steps = jnp.broadcast_to(jnp.asarray(self.stepsize, x0.dtype), (n,))

        def epoch(x):
            def update(j, x):
                g = grad(x, *args, **kwargs)[j]
                return x.at[j].set(self.block_prox(x[j] - steps[j] * g, hyperparams, steps[j]))

            # Static bounds: fori_loop lowers to scan, so the unrolled mode differentiates it.
            return jax.lax.fori_loop(0, n, update, x)

        return epoch, jnp.max(steps)

    def _tuple_epoch(self, grad, x0, hyperparams, args, kwargs):
        n = len(x0)
        proxes = list(self.block_prox) if isinstance(self.block_prox, (tuple, list)) else [self.block_prox] * n
        steps = list(self.stepsize) if isinstance(self.stepsize, (tuple, list)) else [self.stepsize] * n
        hypers = (
            list(hyperparams)
            if isinstance(hyperparams, (tuple, list)) and len(hyperparams) == n
            else [hyperparams] * n
        )
        if len(proxes) != n or len(steps) != n:
            raise ImplicitDiffError(
                f"BlockCoordinateDescent: {n} blocks but {len(proxes)} block_prox and {len(steps)} stepsizes"
            )

        def epoch(x):
            x = list(x)
            for j in range(n):
                g = grad(type(x0)(x), *args, **kwargs)[j]
                x[j] = proxes[j](_axpy(-steps[j], g, x[j]), hypers[j], steps[j])
            return type(x0)(x)

        return epoch, max(float(np.max(np.asarray(s))) for s in steps)


@dataclasses.dataclass(frozen=True)
class Newton:
    r"""Damped Newton's method on `min_x f(x, θ)`, differentiated through `newton_fixed_point(f)`.

    `x ← x − α [∇²₁f]⁻¹∇₁f` with `α` from an Armijo backtracking line search (`α = 1`
    near the solution: quadratic convergence). `SolverState.error` is `‖∇₁f(x, θ)‖₂` at
    the returned `x`. For strictly convex `f` (the Newton direction must be a descent
    direction).

    **Arguments:**

    - `fun`: the objective `f(x, *args, **kwargs)`.
    - `hessian_solve`: `"dense"` (default) or `"cg"`, see `newton_fixed_point`.
    - `linesearch`: damp the step (default `True`); `False` takes full steps.
    - `maxiter`, `tol`, `implicit_diff`, `solve`, `jit`: as in `GradientDescent`.

    **Example:**

    ```python
    solver = Newton(lambda w, X, y, lam: logistic_loss(w, X, y) + lam * jnp.sum(w**2))
    w, state = solver.run(jnp.zeros(d), X, y, lam)
    ```
    """

    fun: Callable
    hessian_solve: str = "dense"
    linesearch: bool = True
    maxiter: int = 50
    tol: float = 1e-10
    implicit_diff: bool = True
    solve: Any = None
    jit: bool = True

    def __post_init__(self):
        _check_common("Newton", self.fun, self.maxiter, self.tol)
        if self.hessian_solve not in ("dense", "cg"):
            raise ImplicitDiffError(f"Newton: hessian_solve must be 'dense' or 'cg', got {self.hessian_solve!r}")

    def optimality_fun(self):
        """The fixed-point map `T(x, *args)` used for implicit differentiation."""
        return newton_fixed_point(self.fun, hessian_solve=self.hessian_solve)

    @jit_run
    def run(self, init_params: Any, *args, **kwargs) -> OptStep:
        """Minimize from `init_params`; `*args, **kwargs` are `θ`."""
        grad = jax.grad(self.fun)

        def solve(init_params, *params, **kwargs):
            args = params
            fun_value = lambda x: self.fun(x, *args, **kwargs)

            def step(x):
                direction, g = newton_direction(grad, x, args, kwargs, self.hessian_solve)
                if self.linesearch:
                    alpha = _armijo(fun_value, x, g, direction)
                else:
                    alpha = 1.0
                x = _axpy(-alpha, direction, x)
                return x, tree_norm(grad(x, *args, **kwargs))

            return iterate(step, init_params, maxiter=self.maxiter, tol=self.tol, unroll=not self.implicit_diff)

        return _run_with_implicit_diff(self, solve, self.optimality_fun(), True, init_params, *args, **kwargs)


def _armijo(fun_value, x, g, direction, c=1e-4, shrink=0.5, max_halvings=40):
    """Largest `α = shrinkᵏ` with `f(x − α d) ≤ f(x) − c α ⟨∇f, d⟩` (on stop-gradient values)."""
    x, g, direction = jax.lax.stop_gradient((x, g, direction))
    fx = fun_value(x)
    slope = jnp.vdot(ravel_pytree(g)[0], ravel_pytree(direction)[0])

    def cond(state):
        alpha, k = state
        trial = fun_value(_axpy(-alpha, direction, x))
        return (k < max_halvings) & ~(trial <= fx - c * alpha * slope + 1e-14 * jnp.abs(fx))

    alpha, _ = jax.lax.while_loop(cond, lambda s: (s[0] * shrink, s[1] + 1), (jnp.asarray(1.0, fx.dtype), 0))
    return alpha
