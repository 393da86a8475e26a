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
    """Base class of every error sensitiv raises on purpose.

    **Example:**

    ```python
    try:
        sensitiv.pipeline.config.load("config.yaml")
    except sensitiv.errors.SensitivError as error:
        print(error)            # one line naming the file, key or argument to fix
    ```
    """


class ImplicitDiffError(SensitivError, ValueError):
    """A decorated solver or optimality function is used in a way that cannot be differentiated.

    **Example:**

    ```python
    F = lambda x, theta: jnp.sum(x - theta)          # a scalar, not shaped like x
    sensitiv.root_jvp(F, jnp.zeros(3), (1.0,), (1.0,))
    # ImplicitDiffError: optimality function '<lambda>' must return a pytree with the
    # structure and shapes of the solution: ...
    ```
    """


class ConfigError(SensitivError, ValueError):
    """A configuration file or option is invalid; the message names the file, line and key.

    **Arguments:**

    - `message`: one line per problem.
    - `issues`: the problems as records (`sensitiv.pipeline.config.ConfigIssue`, with
      `location`, `path`, `message` and `suggestion`) when validation found them; `()`
      for a single error raised elsewhere.

    **Example:**

    ```python
    sensitiv.pipeline.config.load("bad.yaml")
    # ConfigError: bad.yaml:4:3: $.model.nmae: unknown key 'nmae'; allowed keys: name,
    # parameters, differentiate, options (did you mean 'name'?)
    ```
    """

    def __init__(self, message: str, *, issues: tuple = ()) -> None:
        super().__init__(message)
        #: The individual problems (see **Arguments**), in file order.
        self.issues: tuple = tuple(issues)


class InputError(SensitivError, ValueError):
    """An input file (structure, trajectory) is missing, unreadable or malformed; names the path.

    Also raised for bad array arguments outside `jit`, naming the argument.

    **Example:**

    ```python
    sensitiv.jacobian(F, x_star, jnp.arange(3))
    # InputError: params: every leaf must be a floating-point array, got dtype int32
    ```
    """


class PluginError(SensitivError):
    """A plugin is broken (duplicate name, unknown hook) or a name is unknown; names the plugin.

    **Example:**

    ```python
    sensitiv.plugins.get_registry().get_energy_model("lenard_jones")
    # PluginError: unknown energy model 'lenard_jones' (did you mean 'lennard_jones'?);
    # known energy models: gupta, lennard_jones, morse, ...
    ```
    """


class ConvergenceError(SensitivError, RuntimeError):
    """A solver did not converge; carries the residual reached.

    **Example:**

    ```python
    try:
        outcome = sensitiv.pipeline.run.run_config(cfg)
    except sensitiv.errors.ConvergenceError as error:
        print(error)   # "...: solver 'fire' did not converge after N steps (residual reached ...)"
    ```
    """
