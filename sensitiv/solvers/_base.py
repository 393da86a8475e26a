"""What every solver returns, the two loops (implicit and unrolled), and the wiring to
`sensitiv.custom_root` / `custom_fixed_point`."""

from __future__ import annotations

import collections
import functools
import inspect
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from .._implicit import custom_root
from ..errors import ImplicitDiffError

__all__ = ["SolverState", "OptStep"]


class SolverState(NamedTuple):
    """Convergence information of a solver run; every field is an array (jit/vmap safe).

    **Arguments:**

    - `iterations`: iterations taken (epochs for block coordinate descent).
    - `error`: the solver's optimality measure at the end (each solver documents which:
      gradient norm, scaled fixed-point residual or KKT residual).
    - `converged`: `error <= tol` (and finite).

    **Example:**

    ```python
    params, state = sensitiv.solvers.GradientDescent(f, stepsize=0.1).run(x0, theta)
    assert state.converged, f"gradient norm {state.error:.1e} after {state.iterations} iterations"
    ```
    """

    iterations: jax.Array
    error: jax.Array
    converged: jax.Array


class OptStep(NamedTuple):
    """`(params, state)`: the solution and its `SolverState`. Unpacks as a tuple.

    **Arguments:**

    - `params`: the solution (a pytree shaped like the solver's initial guess; a
      `ConicSolution` for `ConicSolver`, a `KKTSolution` for `EqualityQP` and `QP`, the
      primal `x` alone for `BoxQP`).
    - `state`: the `SolverState` (iterations, error, converged) of the run.

    **Example:**

    ```python
    step = GradientDescent(f, stepsize=0.1).run(x0, theta)
    x, state = step                    # or step.params, step.state
    ```
    """

    params: Any
    state: SolverState


def tree_norm(tree) -> jax.Array:
    flat, _ = ravel_pytree(tree)
    return jnp.linalg.norm(flat)


def tree_sub(a, b):
    return jax.tree_util.tree_map(jnp.subtract, a, b)


def tree_where(condition, a, b):
    return jax.tree_util.tree_map(lambda u, v: jnp.where(condition, u, v), a, b)


def iterate(step: Callable, carry: Any, *, maxiter: int, tol: float, unroll: bool):
    """Run `carry, error = step(carry)` until `error <= tol` or `maxiter` steps.

    Implicit mode (`unroll=False`) uses `lax.while_loop`: it stops as soon as it converges
    and is not differentiated (the implicit rule differentiates the solution).
    Unrolled mode uses `lax.scan` over exactly `maxiter` steps, so that reverse-mode
    autodiff can go through the iterations; once converged, further steps leave the
    carry unchanged (`jnp.where`), so both modes return the same iterate.

    **Returns:** `(carry, SolverState)`.
    """
    if not isinstance(maxiter, int) or maxiter < 1:
        raise ImplicitDiffError(f"maxiter must be a positive int, got {maxiter!r}")
    flat, _ = ravel_pytree(carry)
    dtype = flat.dtype if jnp.issubdtype(flat.dtype, jnp.floating) else jnp.float32
    inf = jnp.asarray(jnp.inf, dtype)
    zero = jnp.zeros((), jnp.int32)

    if not unroll:

        def cond(state):
            _, error, k = state
            return (k < maxiter) & ~(error <= tol)

        def body(state):
            c, _, k = state
            c, error = step(c)
            return c, jnp.asarray(error, dtype), k + 1

        carry, error, k = jax.lax.while_loop(cond, body, (carry, inf, zero))
    else:

        def scan_body(state, _):
            c, error, k = state
            done = error <= tol
            new_c, new_error = step(c)
            c = tree_where(done, c, new_c)
            error = jnp.where(done, error, jnp.asarray(new_error, dtype))
            return (c, error, jnp.where(done, k, k + 1)), None

        (carry, error, k), _ = jax.lax.scan(scan_body, (carry, inf, zero), None, length=maxiter)
    converged = jnp.isfinite(error) & (error <= tol)
    return carry, SolverState(k, error, converged)


def with_implicit_diff(
    run: Callable, mapping: Callable, *, fixed_point: bool, implicit_diff: bool, solve: Any, by_name: bool = False
):
    """Wrap `run(init_params, *params, **kwargs) -> (params, state)` with the implicit rule
    of `mapping` (a fixed-point map `T` or a root map `F`), or leave it to autodiff.

    `by_name=True`: `run` names its arguments exactly like `mapping` (matched by name);
    otherwise `run` takes `(init_params, *params, **kwargs)`, passed on positionally."""
    if not implicit_diff:
        return run
    if fixed_point:
        fixed_point_map = mapping

        def mapping(x, *args, **kwargs):
            return jax.tree_util.tree_map(jnp.subtract, fixed_point_map(x, *args, **kwargs), x)

        mapping.__wrapped__ = fixed_point_map
    # The solvers call `run(init_params, *params, **kwargs)`: a generic reference signature
    # makes custom_root drop the initial guess and pass the rest positionally, whatever
    # the names of the user's objective arguments.
    return custom_root(
        mapping,
        has_aux=True,
        solve=solve,
        reference_signature=None if by_name else _GENERIC_SIGNATURE,
    )(run)


def _generic(x, *args, **kwargs):
    pass


_GENERIC_SIGNATURE = inspect.signature(_generic)


def backtracking(candidate: Callable, fun_value: Callable, y, fy, grad_y, stepsize, *, shrink=0.5, max_halvings=40):
    """The largest `η = stepsize · shrinkᵏ` with the sufficient decrease
    `f(c) ≤ f(y) + ⟨∇f(y), c − y⟩ + ‖c − y‖² / (2η)`, `c = candidate(η)`.

    Runs on `stop_gradient`-ed values: the step size is a discrete choice, not a
    differentiable quantity, so unrolled differentiation treats it as a constant.
    """
    y, fy, grad_y, stepsize = jax.lax.stop_gradient((y, fy, grad_y, stepsize))
    grad_flat, _ = ravel_pytree(grad_y)
    y_flat, _ = ravel_pytree(y)

    def sufficient(eta):
        c = candidate(eta)
        c_flat, _ = ravel_pytree(c)
        diff = c_flat - y_flat
        bound = fy + jnp.vdot(grad_flat, diff) + jnp.vdot(diff, diff) / (2 * eta)
        value = fun_value(c)
        # A tiny relative slack absorbs round-off once the iterates have converged.
        return value <= bound + 1e-14 * jnp.abs(fy)

    def cond(state):
        eta, k = state
        return (k < max_halvings) & ~sufficient(eta)

    def body(state):
        eta, k = state
        return eta * shrink, k + 1

    eta, _ = jax.lax.while_loop(cond, body, (stepsize, 0))
    return eta


_COMPILED: collections.OrderedDict = collections.OrderedDict()
_COMPILED_MAX = 256


def jit_run(method: Callable) -> Callable:
    """Run a solver's `run` under `jax.jit`, one compiled function per solver configuration.

    Solvers are frozen dataclasses: equal configurations (same callables, same options)
    share one jitted function, so re-solving with new data of the same shapes (finite
    differences, hyperparameter sweeps) reuses the compiled loop instead of tracing and
    compiling it again. A solver with an unhashable field (e.g. an array of step sizes) is
    still jitted, without the cache. `jit=False` on the solver turns this off.
    """

    @functools.wraps(method)
    def run(self, *args, **kwargs):
        if not getattr(self, "jit", True):
            return method(self, *args, **kwargs)
        try:
            compiled = _COMPILED.get(self)
        except TypeError:  # unhashable configuration
            return jax.jit(functools.partial(method, self))(*args, **kwargs)
        if compiled is None:
            compiled = jax.jit(functools.partial(method, self))
            _COMPILED[self] = compiled
            if len(_COMPILED) > _COMPILED_MAX:
                _COMPILED.popitem(last=False)
        else:
            _COMPILED.move_to_end(self)
        return compiled(*args, **kwargs)

    return run
