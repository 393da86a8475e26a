"""Shared checks for the oracles the mappings are built from."""

from __future__ import annotations

import inspect
from collections.abc import Callable

import jax

from ..errors import ImplicitDiffError


def gradient_oracle(fun: Callable | None, grad: Callable | None, where: str) -> Callable:
    """`∇₁f(x, *args, **kwargs)` from either the objective `fun` or a given `grad`."""
    if (fun is None) == (grad is None):
        raise ImplicitDiffError(
            f"{where}: pass exactly one of fun= (the objective f(x, *args), differentiated "
            "with jax.grad) or grad= (the gradient ∇₁f(x, *args) itself)"
        )
    if grad is not None:
        if not callable(grad):
            raise ImplicitDiffError(f"{where}: grad must be callable, got {grad!r}")
        return grad
    if not callable(fun):
        raise ImplicitDiffError(f"{where}: fun must be callable, got {fun!r}")
    return jax.grad(fun)


def require_callable(value, name: str, where: str) -> Callable:
    if not callable(value):
        raise ImplicitDiffError(f"{where}: {name} must be callable, got {value!r}")
    return value


def adopt_signature(mapping: Callable, oracle: Callable | None, leading: tuple[str, ...] = ()) -> Callable:
    """Give `mapping(x, *args, **kwargs)` the signature `(x, *leading, <oracle's arguments
    after its first>)`, so that `custom_root` can match a solver's arguments to it by name.

    Left unchanged (generic `*args`) when the oracle's signature cannot be read or merged.
    """
    if oracle is None:
        return mapping
    try:
        params = list(inspect.signature(oracle).parameters.values())
    except (TypeError, ValueError):
        return mapping
    if not params or params[0].kind not in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD):
        return mapping
    rest = []
    for p in params[1:]:
        if p.kind == inspect.Parameter.POSITIONAL_ONLY:
            p = p.replace(kind=inspect.Parameter.POSITIONAL_OR_KEYWORD)
        rest.append(p)
    if any(p.name in leading for p in rest):
        return mapping
    first = inspect.Parameter(params[0].name, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    lead = [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD) for name in leading]
    try:
        mapping.__signature__ = inspect.Signature([first, *lead, *rest])
    except ValueError:  # e.g. a default before a non-default
        return mapping
    return mapping
