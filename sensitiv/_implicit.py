"""Implicit differentiation of roots and fixed points.

With `F(x*(θ), θ) = 0`, `A = −∂₁F` and `B = ∂₂F` at `(x*, θ)`, the Jacobian `J = ∂x*/∂θ`
solves `A J = B`. A JVP solves `A (J u) = B u`; a VJP solves `Aᵀ w = v` and returns
`wᵀ B`. Only products with `∂₁F`, `∂₂F` and their transposes are needed.

`custom_root` attaches this rule to any solver with `jax.custom_jvp`, and expresses the
tangent's linear solve with `jax.lax.custom_linear_solve`, which JAX knows how to
transpose: forward mode, reverse mode and every composition of them come from one rule.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from ._linear_solve import SolveInfo, as_linear_solver, solve_reporting, solve_with_info
from .errors import ImplicitDiffError

__all__ = [
    "custom_root",
    "custom_fixed_point",
    "root_jvp",
    "root_vjp",
    "root_jvp_with_info",
    "root_vjp_with_info",
]

_P = inspect.Parameter
_NAMED = (_P.POSITIONAL_ONLY, _P.POSITIONAL_OR_KEYWORD, _P.KEYWORD_ONLY)


# -- the linear algebra --------------------------------------------------------------


def _negate(tree):
    return jax.tree.map(jnp.negative, tree)


def _check_structure(optimality_fun, sol, args, kwargs):
    out = jax.eval_shape(lambda x: optimality_fun(x, *args, **kwargs), sol)
    sol_struct = jax.tree.structure(sol)
    out_struct = jax.tree.structure(out)
    shapes_sol = [jnp.shape(leaf) for leaf in jax.tree.leaves(sol)]
    shapes_out = [leaf.shape for leaf in jax.tree.leaves(out)]
    if sol_struct != out_struct or shapes_sol != shapes_out:
        name = getattr(optimality_fun, "__name__", repr(optimality_fun))
        raise ImplicitDiffError(
            f"optimality function {name!r} must return a pytree with the structure and shapes "
            f"of the solution: solution is {sol_struct} with shapes {shapes_sol}, the function "
            f"returned {out_struct} with shapes {shapes_out}. Return F(x, θ) shaped like x "
            "(for a fixed point T, use custom_fixed_point or return T(x, θ) - x)."
        )


def _check_like(what: str, value, reference, reference_name: str) -> None:
    """`value` (tangents, a cotangent) must have the pytree structure and shapes of
    `reference` (the arguments, the solution): JAX's own message names neither."""
    ref_struct, struct = jax.tree.structure(reference), jax.tree.structure(value)
    ref_shapes = [jnp.shape(leaf) for leaf in jax.tree.leaves(reference)]
    shapes = [jnp.shape(leaf) for leaf in jax.tree.leaves(value)]
    if ref_struct != struct or ref_shapes != shapes:
        raise ImplicitDiffError(
            f"{what} must have the structure and shapes of {reference_name}: {reference_name} is "
            f"{ref_struct} with shapes {ref_shapes}, {what} is {struct} with shapes {shapes}"
        )


def _tangent_solve(optimality_fun, sol, args, kwargs, rhs, solve, has_aux):
    """Solve ∂₁F · t = rhs with a transposable linear solve."""
    _, matvec = jax.linearize(lambda x: optimality_fun(x, *args, **kwargs), sol)
    if has_aux:
        run = lambda mv, b: solve_with_info(solve, mv, b)
        return _transposable_solve(matvec, rhs, run, has_aux=True)
    return _transposable_solve(matvec, rhs, solve_reporting(solve))


def _transposable_solve(matvec, rhs, run, has_aux=False):
    """`jax.lax.custom_linear_solve` on the flattened system, `run` still seeing pytrees.

    JAX transposes `custom_linear_solve` leaf by leaf and fails when some leaf of the
    right-hand side is a symbolic zero (a block of F that does not depend on the
    differentiated argument, such as the stationarity block of a KKT system with respect
    to the equality right-hand side). One flat leaf has no such blocks.
    """
    rhs_flat, unravel = ravel_pytree(rhs)
    flatten = lambda tree: ravel_pytree(tree)[0]

    def flat_matvec(v):
        return flatten(matvec(unravel(v)))

    def flat_run(mv, b):
        out = run(lambda t: unravel(mv(flatten(t))), unravel(b))
        if has_aux:
            return flatten(out[0]), out[1]
        return flatten(out)

    out = jax.lax.custom_linear_solve(
        flat_matvec, rhs_flat, flat_run, transpose_solve=flat_run, has_aux=has_aux
    )
    if has_aux:
        return unravel(out[0]), out[1]
    return unravel(out)


def root_jvp_with_info(
    optimality_fun: Callable, sol: Any, args: tuple, tangents: tuple, solve: Any = None
) -> tuple[Any, SolveInfo]:
    """Like `root_jvp`, also returning the linear solve's `SolveInfo`.

    Use it where a derivative must not be trusted blindly: the info says how well the
    linear system `∂₁F · (J u) = −∂₂F · u` was solved (residual, iterations, converged),
    as arrays that survive `jit` and `vmap`.

    **Arguments:**

    - `optimality_fun`: `F(x, *args)`, returning a pytree shaped like `x`.
    - `sol`: the root `x*` (any pytree).
    - `args`: the tuple `θ` of the remaining arguments of `F`.
    - `tangents`: a tuple shaped like `args`: the direction `u`.
    - `solve`: method name, `LinearSolver` or callable (default `LinearSolver("auto")`).

    **Returns:** `(J u, SolveInfo)`.

    **Example:**

    ```python
    dx, info = sensitiv.root_jvp_with_info(F, x_star, (lam,), (1.0,), solve="cg")
    assert info.converged, info.relative_residual
    ```
    """
    args, tangents = tuple(args), tuple(tangents)
    _check_structure(optimality_fun, sol, args, {})
    _check_like("tangents", tangents, args, "args")
    _, b_u = jax.jvp(lambda *a: optimality_fun(sol, *a), args, tangents)
    return _tangent_solve(optimality_fun, sol, args, {}, _negate(b_u), solve, has_aux=True)


def root_jvp(
    optimality_fun: Callable, sol: Any, args: tuple, tangents: tuple, solve: Any = None
) -> Any:
    """Jacobian-vector product `∂x*/∂θ · u` of a root `F(x*(θ), θ) = 0`.

    **Arguments:**

    - `optimality_fun`: `F(x, *args)`, returning a pytree shaped like `x`.
    - `sol`: the root `x*` (any pytree).
    - `args`: the tuple `θ` of the remaining arguments of `F`.
    - `tangents`: a tuple shaped like `args`: the direction `u`.
    - `solve`: how to solve with `∂₁F`: a method name, a `LinearSolver`, or a callable
      `solve(matvec, b) -> x` (default `LinearSolver("auto")`).

    **Returns:** `J u`, shaped like `sol`.

    **Example:**

    ```python
    F = jax.grad(lambda x, lam: ((X @ x - y) ** 2).sum() + lam * (x**2).sum())
    dx = sensitiv.root_jvp(F, x_star, (lam,), (1.0,))
    ```
    """
    return root_jvp_with_info(optimality_fun, sol, args, tangents, solve)[0]


def root_vjp_with_info(
    optimality_fun: Callable, sol: Any, args: tuple, cotangent: Any, solve: Any = None
) -> tuple[tuple, SolveInfo]:
    """Like `root_vjp`, also returning the linear solve's `SolveInfo`.

    The info describes the transposed solve `(∂₁F)ᵀ w = v`.

    **Arguments:**

    - `optimality_fun`: `F(x, *args)`, returning a pytree shaped like `x`.
    - `sol`: the root `x*`.
    - `args`: the tuple `θ` of the remaining arguments of `F`.
    - `cotangent`: `v`, shaped like `sol`.
    - `solve`: method name, `LinearSolver` or callable (default `LinearSolver("auto")`).

    **Returns:** `(vᵀ J per argument, SolveInfo)`.

    **Example:**

    ```python
    (dlam,), info = sensitiv.root_vjp_with_info(F, x_star, (lam,), jnp.ones_like(x_star))
    ```
    """
    args = tuple(args)
    _check_structure(optimality_fun, sol, args, {})
    _check_like("cotangent", cotangent, sol, "the solution")
    _, vjp_x = jax.vjp(lambda x: optimality_fun(x, *args), sol)
    transpose_matvec = lambda w: vjp_x(w)[0]
    w, info = solve_with_info(solve, transpose_matvec, cotangent)
    _, vjp_args = jax.vjp(lambda *a: optimality_fun(sol, *a), *args)
    return vjp_args(_negate(w)), info


def root_vjp(
    optimality_fun: Callable, sol: Any, args: tuple, cotangent: Any, solve: Any = None
) -> tuple:
    """Vector-Jacobian product `vᵀ ∂x*/∂θ` of a root `F(x*(θ), θ) = 0`.

    **Arguments:**

    - `optimality_fun`: `F(x, *args)`, returning a pytree shaped like `x`.
    - `sol`: the root `x*`.
    - `args`: the tuple `θ` of the remaining arguments of `F`.
    - `cotangent`: `v`, shaped like `sol`.
    - `solve`: as in `root_jvp`; it is applied to the transposed system `(∂₁F)ᵀ w = v`.

    **Returns:** a tuple with one cotangent per element of `args`.

    **Example:**

    ```python
    (dlam,) = sensitiv.root_vjp(F, x_star, (lam,), jnp.ones_like(x_star))
    ```
    """
    return root_vjp_with_info(optimality_fun, sol, args, cotangent, solve)[0]


# -- binding a solver's arguments to the optimality function's ---------------------------


def _is_dynamic(leaf) -> bool:
    # Arrays (and tracers) are differentiable inputs; Python scalars, strings, callables
    # stay static so that solvers may use them in Python control flow.
    return isinstance(leaf, (jax.Array, np.ndarray, np.generic))


class _ArgumentMap:
    """How the solver's bound arguments become the optimality function's arguments."""

    def __init__(self, solver_sig: inspect.Signature, optimality_sig: inspect.Signature, where: str):
        params = list(optimality_sig.parameters.values())
        if not params or params[0].kind not in (_P.POSITIONAL_ONLY, _P.POSITIONAL_OR_KEYWORD):
            raise ImplicitDiffError(
                f"{where}: the optimality function must take the solution as its first "
                "positional argument, F(x, *args, **kwargs)"
            )
        self.f_params = params[1:]
        self.f_names = [p.name for p in self.f_params if p.kind in _NAMED]
        self.f_positional = [
            p for p in self.f_params if p.kind in (_P.POSITIONAL_ONLY, _P.POSITIONAL_OR_KEYWORD)
        ]
        self.f_varpos = any(p.kind == _P.VAR_POSITIONAL for p in self.f_params)
        self.f_varkw = any(p.kind == _P.VAR_KEYWORD for p in self.f_params)
        self.optimality_sig = optimality_sig
        self.solver_sig = solver_sig
        self.where = where

    def _positional(self, args: list, kwargs: dict) -> tuple[list, dict]:
        """Pass by position every argument the optimality signature lets through by position.

        The signature read from F may not be the one its code accepts: `functools.wraps`
        copies a wrapped function's signature onto a `F(x, *args)` wrapper, and
        `reference_signature=` describes an `*args` function by design. Such an F takes
        its arguments by position only (as in jaxopt), so names are resolved here against
        the signature and only keyword-only or catch-all arguments stay keywords.
        """
        if not kwargs:
            return args, kwargs
        try:
            bound = self.optimality_sig.bind(_SOLUTION, *args, **kwargs)
        except TypeError:
            return args, kwargs
        return list(bound.args[1:]), dict(bound.kwargs)

    def select(self, arguments: dict) -> tuple[list, dict]:
        """Split the solver's arguments into the optimality function's `(args, kwargs)`."""
        sig = self.solver_sig.parameters
        named = {}
        positional = []
        extra_kw = {}
        # In the solver's own order: `arguments` comes back from jax.tree.unflatten,
        # whose dict keys are sorted, which would scramble positional matching.
        for name, param in sig.items():
            value = arguments[name]  # every name is bound: the caller applied the defaults
            kind = param.kind
            if kind == _P.VAR_POSITIONAL:
                positional.extend(value)
            elif kind == _P.VAR_KEYWORD:
                extra_kw.update(value)
            else:
                named[name] = value
                if kind in (_P.POSITIONAL_ONLY, _P.POSITIONAL_OR_KEYWORD):
                    positional.append(value)

        # Names first: the solver's named parameters and the keywords it received through
        # `**kwargs` (jaxopt's `solver(init_params, **kw)` style) that F also names.
        matched = [n for n in named if n in self.f_names]
        matched += [k for k in extra_kw if k in self.f_names and k not in named]
        if matched or not positional or (not self.f_positional and not self.f_varpos):
            kwargs = {n: named[n] for n in matched if n in named}
            missing = []
            for p in self.f_params:
                if p.kind in _NAMED and p.name not in kwargs:
                    if p.name in extra_kw:
                        kwargs[p.name] = extra_kw[p.name]
                    elif p.default is _P.empty:
                        missing.append(p.name)
            if missing:
                fallback = self._by_position(named, positional, extra_kw)
                if fallback is not None:
                    # The names cover only part of F's arguments (a solver naming them
                    # differently): jaxopt's positional convention decides.
                    return fallback
                raise ImplicitDiffError(
                    f"{self.where}: the optimality function needs argument {missing[0]!r}, "
                    f"which the solver does not take (solver arguments: "
                    f"{', '.join(sig)}). Give both functions the same argument names."
                )
            if self.f_varkw:
                for key, value in extra_kw.items():
                    kwargs.setdefault(key, value)
            return self._positional([], kwargs)

        fallback = self._by_position(named, positional, extra_kw)
        if fallback is not None:
            return fallback
        raise ImplicitDiffError(
            f"{self.where}: cannot match the solver's arguments ({', '.join(sig)}) to the "
            f"optimality function's ({', '.join(p.name for p in self.f_params)}). Use the same "
            "argument names in both, or give the solver either the same positional arguments "
            "or an initial guess followed by them; or pass reference_signature=."
        )

    def _by_position(self, named: dict, positional: list, extra_kw: dict) -> tuple[list, dict] | None:
        """jaxopt's convention: the solver's positional arguments are F's, after an
        optional initial guess; `None` when the counts do not fit."""
        sig = self.solver_sig.parameters

        # A solver with one positional argument more than F's parameters takes an initial
        # guess first (jaxopt's convention).
        extra = {k: v for k, v in extra_kw.items() if self.f_varkw or k in self.f_names}
        n_f = len(self.f_positional)
        if self.f_varpos:
            # F(x, *args) does not say how many arguments it takes: pass them all, except
            # a first one named as an initial guess.
            first = next(iter(sig), "")
            if first in named and _names_initial_guess(first):
                return self._positional(positional[1:], extra)
            return self._positional(positional, extra)
        if len(positional) == n_f + 1:
            return self._positional(positional[1:], extra)
        if len(positional) == n_f:
            return self._positional(positional, extra)
        return None


_SOLUTION = object()  # stands for the solution when binding F's signature

_INITIAL_GUESS_NAMES = {"x0", "x_init", "guess", "initial_guess", "params0", "sol0"}


def _names_initial_guess(name: str) -> bool:
    lowered = name.lower()
    return lowered.startswith("init") or lowered in _INITIAL_GUESS_NAMES


def _check_no_closed_over_tracers(fun, role, where):
    cells = getattr(fun, "__closure__", None) or ()
    for cell in cells:
        try:
            value = cell.cell_contents
        except ValueError:  # empty cell
            continue
        if any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(value)):
            raise ImplicitDiffError(_closure_message(role, where))


def _closure_message(role, where):
    return (
        f"{where}: the {role} closes over a value that is being differentiated or traced; "
        "implicit differentiation only sees explicit arguments. Pass that value as an "
        "argument of both the solver and the optimality function."
    )


def _float0_like(leaf):
    dtype = jnp.result_type(leaf)
    if jnp.issubdtype(dtype, jnp.inexact):
        return jnp.zeros_like(leaf)
    return np.zeros(np.shape(leaf), dtype=jax.dtypes.float0)


def custom_root(
    optimality_fun: Callable,
    has_aux: bool = False,
    solve: Any = None,
    reference_signature: Callable | inspect.Signature | None = None,
) -> Callable[[Callable], Callable]:
    """Decorator giving a solver of `F(x, θ) = 0` implicit derivatives.

    The decorated solver is differentiable in every argument that `optimality_fun` also
    takes, in any composition of `jax.jvp`, `jax.grad`, `jax.jacfwd`, `jax.jacrev`,
    `jax.hessian`, `jax.vmap` and `jax.jit`. Its iterations are never differentiated.

    **Arguments:**

    - `optimality_fun`: `F(x, *args, **kwargs)`, zero at the solution, shaped like `x`.
    - `has_aux`: the solver returns `(solution, aux)`; `aux` is passed through undifferentiated.
    - `solve`: how to solve with `∂₁F` (method name, `LinearSolver` or callable); default
      `LinearSolver("auto")`.
    - `reference_signature`: a function (or `inspect.Signature`) whose signature stands
      for `optimality_fun`'s when that one hides it (e.g. `*args` wrappers).

    The solver's arguments (its `**kwargs` entries included) are matched to `F`'s by
    name; if no names match, or the names cover only part of `F`'s required arguments,
    by position, where a solver with one positional argument more than `F`'s parameters
    takes an initial guess first (jaxopt's convention). Matched arguments are passed to
    `F` by position wherever its (read or reference) signature allows, so an `F(x, *args)`
    carrying another signature through `functools.wraps` receives them as in jaxopt. When `F` takes `*args`, every positional
    solver argument is passed on, except a first one named as an initial guess (`init…`,
    `x0`, `x_init`, `guess`, `initial_guess`, `params0`, `sol0`); pass
    `reference_signature=` to say otherwise. Solver
    arguments `F` does not take (initial guesses, tolerances) are not differentiated.

    **Returns:** a decorator.

    **Example:**

    ```python
    def f(x, theta):
        return ((X @ x - y) ** 2).sum() + theta * (x**2).sum()

    @sensitiv.custom_root(jax.grad(f))
    def ridge_solver(theta):
        return jnp.linalg.solve(X.T @ X + theta * jnp.eye(X.shape[1]), X.T @ y)

    J = jax.jacobian(ridge_solver)(10.0)
    ```
    """
    linear_solve = as_linear_solver(solve)
    if reference_signature is None:
        optimality_sig = inspect.signature(optimality_fun)
    elif isinstance(reference_signature, inspect.Signature):
        optimality_sig = reference_signature
    else:
        optimality_sig = inspect.signature(reference_signature)

    def decorator(solver_fun: Callable) -> Callable:
        solver_sig = inspect.signature(solver_fun)
        where = f"custom_root({getattr(solver_fun, '__name__', 'solver')})"
        argmap = _ArgumentMap(solver_sig, optimality_sig, where)

        @functools.wraps(solver_fun)
        def wrapped(*args, **kwargs):
            _check_no_closed_over_tracers(solver_fun, "solver", where)
            _check_no_closed_over_tracers(optimality_fun, "optimality function", where)
            try:
                bound = solver_sig.bind(*args, **kwargs)
            except TypeError as err:
                raise ImplicitDiffError(f"{where}: {err}") from None
            bound.apply_defaults()
            leaves, treedef = jax.tree.flatten(dict(bound.arguments))
            dynamic = [i for i, leaf in enumerate(leaves) if _is_dynamic(leaf)]

            def rebuild(dyn):
                full = list(leaves)
                for i, value in zip(dynamic, dyn):
                    full[i] = value
                arguments = jax.tree.unflatten(treedef, full)
                return arguments

            def call_solver(dyn):
                arguments = rebuild(dyn)
                ba = inspect.BoundArguments(solver_sig, arguments)
                return solver_fun(*ba.args, **ba.kwargs)

            def call_optimality(x, dyn):
                f_args, f_kwargs = argmap.select(rebuild(dyn))
                return optimality_fun(x, *f_args, **f_kwargs)

            @jax.custom_jvp
            def solution(dyn):
                return call_solver(dyn)

            @solution.defjvp
            def solution_jvp(primals, tangents):
                (dyn,), (dyn_dot,) = primals, tangents
                # The primal goes through `solution` itself, not the raw solver, so that a
                # derivative of this rule (second order) again uses the implicit rule
                # instead of differentiating the solver's iterations.
                out = solution(dyn)
                sol = out[0] if has_aux else out
                fun = lambda x: call_optimality(x, dyn)
                _check_structure(fun, sol, (), {})
                _, b_u = jax.jvp(lambda d: call_optimality(sol, d), (dyn,), (dyn_dot,))
                sol_dot = _tangent_solve(fun, sol, (), {}, _negate(b_u), linear_solve, has_aux=False)
                if has_aux:
                    aux_dot = jax.tree.map(_float0_like, out[1])
                    return out, (sol_dot, aux_dot)
                return out, sol_dot

            dyn = [leaves[i] for i in dynamic]
            try:
                return solution(dyn)
            except jax.errors.UnexpectedTracerError as err:
                raise ImplicitDiffError(_closure_message("solver or optimality function", where)) from err

        return wrapped

    return decorator


def custom_fixed_point(
    fixed_point_fun: Callable,
    has_aux: bool = False,
    solve: Any = None,
    reference_signature: Callable | inspect.Signature | None = None,
) -> Callable[[Callable], Callable]:
    """Decorator giving a solver of `x = T(x, θ)` implicit derivatives.

    Equivalent to `custom_root` with `F(x, θ) = T(x, θ) − x`; see `custom_root` for the
    argument matching and transformations supported.

    **Arguments:**

    - `fixed_point_fun`: `T(x, *args, **kwargs)`, shaped like `x`.
    - `has_aux`, `solve`, `reference_signature`: as in `custom_root` (the reference
      signature defaults to `T`'s).

    **Returns:** a decorator.

    **Example:**

    ```python
    T = lambda x, theta: jnp.tanh(theta * x) + 1.0

    @sensitiv.custom_fixed_point(T)
    def fixed_point(x0, theta):
        return jax.lax.fori_loop(0, 100, lambda _, x: T(x, theta), x0)
    ```
    """

    def optimality_fun(x, *args, **kwargs):
        return jax.tree.map(jnp.subtract, fixed_point_fun(x, *args, **kwargs), x)

    return custom_root(
        optimality_fun,
        has_aux=has_aux,
        solve=solve,
        reference_signature=reference_signature or fixed_point_fun,
    )
