"""Exceptions sensitiv raises outside `jit`, each naming what to fix.

Inside `jit` nothing is raised: diagnostics are returned (see `SolveInfo`).
"""

from __future__ import annotations

__all__ = [
    "SensitivError",
    "ImplicitDiffError",
    "ConfigError",
    "InputError",
    "PluginError",
    "ConvergenceError",
]


class SensitivError(Exception):
    """Base class of every error sensitiv raises on purpose."""


class ImplicitDiffError(SensitivError, ValueError):
    """A decorated solver or optimality function is used in a way that cannot be differentiated."""


class ConfigError(SensitivError, ValueError):
    """A configuration file or option is invalid; the message names the file, line and key."""


class InputError(SensitivError, ValueError):
    """An input file (structure, trajectory) is missing, unreadable or malformed; names the path."""


class PluginError(SensitivError):
    """A plugin is broken (duplicate name, unknown hook) or a name is unknown; names the plugin."""


class ConvergenceError(SensitivError, RuntimeError):
    """A solver did not converge; carries the residual reached."""
