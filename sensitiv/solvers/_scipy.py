"""Reusing an existing solver: `scipy.optimize.minimize` behind `jax.pure_callback`, with
implicit derivatives."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from ..errors import ImplicitDiffError
from ..optimality import projected_gradient_fixed_point, stationary
from .._projections import projection_box
from ._base import OptStep, jit_run, SolverState, tree_norm, tree_sub, with_implicit_diff

__all__ = ["ScipyMinimize", "ScipyBoundedMinimize"]


def _host_minimize(fun, method, bounded, tol, maxiter, options, x0, unravel_args, bounds_flat, args_flat):
    """Runs on the host inside `pure_callback`: scipy with a compiled JAX value-and-grad."""
    from scipy.optimize import minimize

    value_and_grad = _compiled_value_and_grad(fun, unravel_args)

    def objective(z):
        value, grad = value_and_grad(z, args_flat)
        return float(value), np.asarray(grad, dtype=np.float64)

    opts = {"maxiter": maxiter}
    if method.upper() == "L-BFGS-B":
        opts.update({"gtol": tol, "ftol": 0.0, "maxcor": 20})
    elif method.upper() in ("BFGS", "CG"):
        opts.update({"gtol": tol})
    opts.update(options or {})
    bounds = None
    if bounded:
        lower, upper = bounds_flat
        bounds = list(zip(np.asarray(lower, np.float64), np.asarray(upper, np.float64)))
    result = minimize(objective, np.asarray(x0, np.float64), jac=True, method=method, bounds=bounds, options=opts)
    return np.asarray(result.x, dtype=np.asarray(x0).dtype), np.asarray(result.get("nit", -1), np.int32)


_CACHE: dict = {}


def _compiled_value_and_grad(fun, unravel_args):
    key = (fun, unravel_args)
    if key not in _CACHE:
        if len(_CACHE) > 64:
            _CACHE.clear()

        @jax.jit
        def value_and_grad(z, args_flat):
            args, kwargs = unravel_args(args_flat)
            return jax.value_and_grad(fun)(z, *args, **kwargs)

        _CACHE[key] = value_and_grad
    return _CACHE[key]


def _minimize_via_callback(fun, method, bounded, tol, maxiter, options, x0, bounds, args, kwargs):
    flat0, unravel = ravel_pytree(x0)
    args_flat, unravel_args = ravel_pytree((args, kwargs))
    flat_fun = lambda z, *a, **k: fun(unravel(z), *a, **k)
    bounds_flat = None
    if bounded:
        lower, upper = bounds
        lower = jax.tree_util.tree_map(lambda l, x: jnp.broadcast_to(jnp.asarray(l, x.dtype), x.shape), lower, x0) if jnp.ndim(lower) == 0 else lower
        upper = jax.tree_util.tree_map(lambda u, x: jnp.broadcast_to(jnp.asarray(u, x.dtype), x.shape), upper, x0) if jnp.ndim(upper) == 0 else upper
        bounds_flat = (ravel_pytree(lower)[0], ravel_pytree(upper)[0])

    def callback(z0, b_flat, a_flat):
        return _host_minimize(flat_fun, method, bounded, tol, maxiter, options, z0, unravel_args, b_flat, a_flat)

    shapes = (jax.ShapeDtypeStruct(flat0.shape, flat0.dtype), jax.ShapeDtypeStruct((), jnp.int32))
    x_flat, nit = jax.pure_callback(callback, shapes, flat0, bounds_flat, args_flat, vmap_method="sequential")
    return unravel(x_flat), nit


@dataclasses.dataclass(frozen=True)
class ScipyMinimize:
    r"""`scipy.optimize.minimize` on `min_x f(x, θ)`, run through `jax.pure_callback`,
    differentiated implicitly through `stationary(f)`.

    The objective and its gradient are evaluated by a compiled JAX function on the host;
    the result comes back into the traced computation, so the solver works under `jit`
    and `vmap` (one scipy run per batch element) and its solution is differentiable in
    `θ` in forward and reverse mode. `SolverState.error` is `‖∇₁f(x, θ)‖₂`, recomputed
    in JAX at scipy's answer (not scipy's own claim); `iterations` is scipy's `nit`.

    **Arguments:**

    - `fun`: the objective `f(x, *args, **kwargs)` written in JAX (`x` any pytree of floats).
    - `method`: a gradient-based `scipy.optimize.minimize` method (default `"L-BFGS-B"`).
    - `tol`: the gradient tolerance given to scipy (`gtol`) and used for `converged`.
    - `maxiter`: scipy's iteration limit.
    - `options`: extra scipy options (override the defaults; the iteration limit is
      `maxiter=`, and `options['maxiter']` is refused).
    - `solve`: the linear solve of implicit differentiation (the Hessian is symmetric).
    - `jit`: compile `run` with `jax.jit`, once per solver configuration (default `True`).

    **Example:**

    ```python
    solver = ScipyMinimize(lambda w, lam: loss(w) + lam * jnp.sum(w**2))
    w, state = solver.run(jnp.zeros(5), lam)
    jax.grad(lambda lam: validation(solver.run(jnp.zeros(5), lam).params))(lam)
    ```
    """

    fun: Callable
    method: str = "L-BFGS-B"
    tol: float = 1e-10
    maxiter: int = 10000
    options: Any = None
    solve: Any = None
    jit: bool = True

    def __post_init__(self):
        if not callable(self.fun):
            raise ImplicitDiffError(f"{type(self).__name__}: fun must be callable, got {self.fun!r}")
        if self.options and "maxiter" in self.options:
            # Two limits for one run: one of them would be silently ignored.
            raise ImplicitDiffError(
                f"{type(self).__name__}: options['maxiter'] = {self.options['maxiter']!r} contradicts "
                f"maxiter = {self.maxiter!r}; pass the iteration limit as maxiter= only"
            )

    def optimality_fun(self):
        """`F = ∇₁f`."""
        return stationary(self.fun)

    @jit_run
    def run(self, init_params: Any, *args, **kwargs) -> OptStep:
        """Minimize from `init_params`; `*args, **kwargs` are `θ` (arrays)."""
        grad = jax.grad(self.fun)

        def solve(init_params, *params, **kwargs):
            args = params
            x, nit = _minimize_via_callback(
                self.fun, self.method, False, self.tol, self.maxiter, self.options, init_params, None, args, kwargs
            )
            error = tree_norm(grad(x, *args, **kwargs))
            return x, SolverState(nit, error, jnp.isfinite(error) & (error <= self.tol))

        run = with_implicit_diff(solve, self.optimality_fun(), fixed_point=False, implicit_diff=True, solve=self.solve)
        return OptStep(*run(init_params, *args, **kwargs))


@dataclasses.dataclass(frozen=True)
class ScipyBoundedMinimize(ScipyMinimize):
    r"""`scipy.optimize.minimize` with bounds on `min_{lower ≤ x ≤ upper} f(x, θ)`,
    differentiated implicitly through `projected_gradient_fixed_point(f, projection_box)`,
    so also with respect to the bounds.

    `SolverState.error` is `‖x − clip(x − ∇₁f(x, θ), lower, upper)‖₂`, recomputed in JAX.

    **Arguments:**

    - `fun`: the objective `f(x, *args, **kwargs)` in JAX.
    - `method`: a bound-constrained scipy method (default `"L-BFGS-B"`).
    - `tol`, `maxiter`, `options`, `solve`, `jit`: as in `ScipyMinimize`.

    **Example:**

    ```python
    solver = ScipyBoundedMinimize(f)
    x, state = solver.run(x0, (lower, upper), theta)
    ```
    """

    # Same fields as ScipyMinimize; only the mapping and the scipy call differ.

    def optimality_fun(self):
        """`T(x, bounds, *args) = clip(x − ∇₁f(x, θ), lower, upper)`."""
        return projected_gradient_fixed_point(self.fun, projection_box)

    @jit_run
    def run(self, init_params: Any, bounds: Any, *args, **kwargs) -> OptStep:
        """Minimize from `init_params` over the box `bounds = (lower, upper)` (scalars or
        pytrees shaped like `init_params`)."""
        T = self.optimality_fun()

        def solve(init_params, *params, **kwargs):
            bounds, args = params[0], params[1:]
            x, nit = _minimize_via_callback(
                self.fun, self.method, True, self.tol, self.maxiter, self.options, init_params, bounds, args, kwargs
            )
            error = tree_norm(tree_sub(T(x, bounds, *args, **kwargs), x))
            return x, SolverState(nit, error, jnp.isfinite(error) & (error <= self.tol))

        run = with_implicit_diff(solve, T, fixed_point=True, implicit_diff=True, solve=self.solve)
        return OptStep(*run(init_params, bounds, *args, **kwargs))
