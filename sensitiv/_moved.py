"""Names that moved, kept working for one release with a `DeprecationWarning` on use.

Until 0.1 the Jacobian engine was the package `sensitiv.jacobian`, made callable by
swapping its module class. Now `sensitiv.jacobian` is the function, the engine lives in
`sensitiv.engine`, and its names are on the package face. What still works, warning:

- `from sensitiv.jacobian import Sparsity` (any public engine name): a plain module object
  registered as `sys.modules["sensitiv.jacobian"]` (the import system finds it there and
  never loads a file, so the parent's attribute stays the function) whose lookups forward
  to `sensitiv.engine`;
- `sensitiv.jacobian.total_derivative(...)`, `sensitiv.jacobian.Sparsity.from_pairs(...)`:
  the engine's names as attributes of the `jacobian` function, each a forwarding proxy.

Remove this module, and its two uses, in the next release.
"""

from __future__ import annotations

import importlib
import types
import warnings

__all__ = ["ENGINE_NAMES", "jacobian_module", "attach_to_function"]

# the public names of sensitiv.engine (kept here so that no jax is imported to list them)
ENGINE_NAMES = (
    "jacobian", "total_derivative", "KrylovOptions", "JacobianResult", "JacobianInfo",
    "Sparsity", "distance2_coloring", "translation_modes", "rigid_body_modes",
)


def _warn(old: str, name: str, stacklevel: int = 3) -> None:
    warnings.warn(
        f"{old} moved: use sensitiv.{name} (also sensitiv.engine.{name}); the old path will be "
        "removed in the next release",
        DeprecationWarning,
        stacklevel=stacklevel,
    )


def jacobian_module() -> types.ModuleType:
    """The old module path `sensitiv.jacobian`, forwarding to `sensitiv.engine` with a warning."""
    module = types.ModuleType("sensitiv.jacobian", "Deprecated: the engine moved to sensitiv.engine.")

    def __getattr__(name: str):
        if name not in ENGINE_NAMES:
            raise AttributeError(f"module 'sensitiv.jacobian' has no attribute {name!r} (the engine moved to sensitiv.engine)")
        _warn(f"sensitiv.jacobian.{name} (the module path)", name)
        return getattr(importlib.import_module("sensitiv.engine"), name)

    module.__getattr__ = __getattr__
    module.__all__ = list(ENGINE_NAMES)
    return module


class _Moved:
    """A name reached as `sensitiv.jacobian.<name>`: calls and attribute lookups forward
    to the object, with a warning."""

    def __init__(self, obj, name: str):
        self._obj, self._name = obj, name
        self.__doc__ = getattr(obj, "__doc__", None)

    def __call__(self, *args, **kwargs):
        _warn(f"sensitiv.jacobian.{self._name}", self._name)
        return self._obj(*args, **kwargs)

    def __getattr__(self, attr: str):
        _warn(f"sensitiv.jacobian.{self._name}", self._name)
        return getattr(self._obj, attr)

    def __repr__(self) -> str:
        return f"<deprecated alias of sensitiv.{self._name}>"


def attach_to_function(function, namespace) -> None:
    """Give the `jacobian` function the engine's names as (deprecated) attributes."""
    for name in ENGINE_NAMES:
        setattr(function, name, _Moved(namespace[name], name))
