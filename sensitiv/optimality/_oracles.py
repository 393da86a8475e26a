"""Shared checks for the oracles the mappings are built from."""

from __future__ import annotations

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
