"""Deprecated location of the built-in plugin; it moved to `sensitiv.plugins.builtin`.

Kept for one release so that an environment installed before the move, whose entry point
still names `sensitiv.builtin`, keeps working; reinstalling sensitiv (`pip install -e .`)
points the entry point at the new module.
"""

from __future__ import annotations

import warnings

from .plugins.builtin import sensitiv_structure_readers

__all__ = ["sensitiv_structure_readers"]

warnings.warn(
    "sensitiv.builtin moved to sensitiv.plugins.builtin; reinstall sensitiv "
    "(pip install -e .) to update its entry point",
    DeprecationWarning,
    stacklevel=2,
)
