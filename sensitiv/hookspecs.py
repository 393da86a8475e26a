"""The plugin contract: every hook a sensitiv plugin may implement.

A plugin is a module (or any object) with functions named after the hooks below and
marked with `hookimpl`. It is found through the entry-point group `sensitiv` of its
distribution's metadata:

```toml
# pyproject.toml of the plugin's distribution
[project.entry-points.sensitiv]
springs = "sensitiv_springs.plugin"
```

Every hook takes no argument and returns a list of named records from
`sensitiv.records`. The host (`sensitiv.plugins`) calls each hook once per plugin,
checks the records (types, callables, unique names, valid option schemas) and files
them by name; a name contributed by two plugins is an error that names both.

Hooks are collected, not chained: there is no "first result"; every plugin's records
count. A plugin implements only the hooks it needs. A function whose name starts with
`sensitiv_` but matches no hook below (a misspelling) makes the host refuse the plugin
with a `PluginError` naming it.

**Example** (a whole plugin module):

```python
from sensitiv.hookspecs import hookimpl
from sensitiv.records import EnergyModel, Parameter

@hookimpl
def sensitiv_energy_models():
    return [EnergyModel(name="springs", factory=build_springs,
                        description="harmonic spring network",
                        parameters=(Parameter("stiffness", units="eV/angstrom^2", default=1.0),))]
```
"""

from __future__ import annotations

import pluggy

from .records import EnergyModel, EquilibriumSolver, OptimalityCondition, StructureReader

__all__ = [
    "PROJECT_NAME",
    "ENTRY_POINT_GROUP",
    "hookspec",
    "hookimpl",
    "sensitiv_energy_models",
    "sensitiv_equilibrium_solvers",
    "sensitiv_optimality_conditions",
    "sensitiv_structure_readers",
]

#: The pluggy project name: markers are `sensitiv_spec` / `sensitiv_impl` attributes.
PROJECT_NAME = "sensitiv"

#: The entry-point group plugins are discovered in (built-in ones included).
ENTRY_POINT_GROUP = "sensitiv"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)

#: Marks a plugin's hook implementation: `@hookimpl` above `def sensitiv_energy_models():`.
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def sensitiv_energy_models() -> list[EnergyModel]:
    """Return the energy models this plugin contributes.

    An energy model turns a `Structure` and the model options of the config into a
    `System`: a pure-JAX energy `E(positions, params)` with its parameters, known zero
    modes and interaction pairs, which the pipeline minimizes and differentiates.

    **Arguments:** none.

    **Returns:** a list of `sensitiv.records.EnergyModel`, each with

    - `name`: unique across all installed plugins (the config's `model.name`);
    - `factory(structure, options) -> System`: `options` holds the config's
      `model.options` and, under the key `"parameters"`, the parameter values the
      config overrides (`dict[str, value]`); the factory raises
      `sensitiv.errors.ConfigError` naming the option on bad options;
    - `description`: one line, shown by `sensitiv plugins`;
    - `parameters`: one `Parameter` per physical parameter: `name`, `shape` (ints, or
      `"species"` for the number of species), `units`, `default`, `differentiable`;
    - `options_schema`: a JSON Schema `object` fragment validating `model.options`.

    **Example:**

    ```python
    @hookimpl
    def sensitiv_energy_models():
        return [
            EnergyModel(
                name="harmonic_springs",
                factory=build_spring_system,
                description="harmonic springs between atoms closer than a cutoff",
                parameters=(
                    Parameter("stiffness", ("species", "species"), "eV/angstrom^2", 1.0),
                    Parameter("rest_length_scale", ("species", "species"), "1", 1.0),
                ),
                options_schema={"type": "object",
                                "properties": {"cutoff": {"type": "number"}}},
            )
        ]
    ```
    """


@hookspec
def sensitiv_equilibrium_solvers() -> list[EquilibriumSolver]:
    """Return the equilibrium (energy minimization) solvers this plugin contributes.

    A solver finds the positions where a `System`'s forces vanish, starting from the
    structure's positions; the pipeline then differentiates that equilibrium
    implicitly, so the solver itself is never differentiated through.

    **Arguments:** none.

    **Returns:** a list of `sensitiv.records.EquilibriumSolver`, each with

    - `name`: unique across all installed plugins (the config's `solver.name`);
    - `factory(options) -> solve`, with `solve(system, positions, params) ->
      EquilibriumResult` (positions, converged, iterations, residual, info); a solver
      that stops without meeting its criterion returns `converged=False`, never
      pretends;
    - `description`: one line;
    - `options_schema`: a JSON Schema `object` fragment validating `solver.options`.

    **Example:**

    ```python
    @hookimpl
    def sensitiv_equilibrium_solvers():
        return [
            EquilibriumSolver(
                name="gradient_descent",
                factory=lambda options: make_descent(options.get("step", 1e-2)),
                description="fixed-step gradient descent",
                options_schema={"type": "object",
                                "properties": {"step": {"type": "number"}}},
            )
        ]
    ```
    """


@hookspec
def sensitiv_optimality_conditions() -> list[OptimalityCondition]:
    """Return the optimality conditions this plugin contributes.

    An optimality condition is the map `F(positions, params)` that vanishes at the
    equilibrium; its Jacobians give the sensitivities (`∂x*/∂θ = −(∂₁F)⁻¹ ∂₂F`).

    **Arguments:** none.

    **Returns:** a list of `sensitiv.records.OptimalityCondition`, each with

    - `name`: unique across all installed plugins (the config's `condition.name`);
    - `factory(system, options) -> F`, `F(positions, params)` returning an array shaped
      like `positions`, pure JAX (it is differentiated in both arguments);
    - `description`: one line;
    - `options_schema`: a JSON Schema `object` fragment validating `condition.options`.

    **Example:**

    ```python
    @hookimpl
    def sensitiv_optimality_conditions():
        return [
            OptimalityCondition(
                name="scaled_stationary",
                factory=lambda system, options: (
                    lambda x, p: options.get("scale", 1.0) * jax.grad(system.energy)(x, p)
                ),
                description="gradient of the energy times a constant",
            )
        ]
    ```
    """


@hookspec
def sensitiv_structure_readers() -> list[StructureReader]:
    """Return the structure (trajectory) readers this plugin contributes.

    A reader turns a file into `Structure`s, one per frame. The pipeline picks it by
    the config's `structure.format`, or by the longest file-name ending it claims.

    **Arguments:** none.

    **Returns:** a list of `sensitiv.records.StructureReader`, each with

    - `name`: unique across all installed plugins (the config's `structure.format`);
    - `read(path, options) -> Sequence[Structure]`, raising
      `sensitiv.errors.InputError` naming the path on a missing or malformed file;
    - `extensions`: file-name endings it claims (`(".xyz",)`, or whole names such as
      `("POSCAR",)`), matched case-insensitively;
    - `description`: one line;
    - `options_schema`: a JSON Schema `object` fragment validating `structure.options`.

    **Example:**

    ```python
    @hookimpl
    def sensitiv_structure_readers():
        return [
            StructureReader(
                name="xyz-plain",
                read=read_plain_xyz,
                extensions=(".xyz",),
                description="plain XYZ without a cell",
            )
        ]
    ```
    """
