"""Hook implementations: what the `jaxmd` entry point contributes to sensitiv.

Importing this module imports neither jax nor jax-md: the records are built from
`_declarations`, and each factory imports its implementation on first call. So
`sensitiv plugins`, `validate` and `schema` stay fast, and jax-md loads only when a model
is bound, a solver runs or the condition is built.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from sensitiv.hookspecs import hookimpl
from sensitiv.records import EnergyModel, EquilibriumSolver

from . import _declarations as declarations


def _implementation(module: str, attribute: str) -> Any:
    return getattr(importlib.import_module(module, __package__), attribute)


def _lazy(module: str, attribute: str, doc: str) -> Callable[..., Any]:
    """A function that imports `module.attribute` on first call and calls it."""

    def call(*args, **kwargs):
        return _implementation(module, attribute)(*args, **kwargs)

    call.__name__ = attribute
    call.__qualname__ = attribute
    call.__doc__ = doc
    return call


def _model_factory(name: str) -> Callable[..., Any]:
    def factory(structure, options=None):
        return _implementation("._energies", "MODELS")[name].record().factory(structure, options)

    factory.__name__ = factory.__qualname__ = f"build_{name}"
    factory.__doc__ = f"Bind the {name!r} model to a `Structure`; see `sensitiv_jaxmd.build_system`."
    return factory


@hookimpl
def sensitiv_energy_models() -> list[EnergyModel]:
    """Soft spheres (pair matrices, per-atom diameters), Lennard-Jones, Morse,
    Stillinger-Weber and Gupta, and the LAMMPS potential-file models EAM (funcfl, setfl,
    Finnis-Sinclair), Tersoff and Stillinger-Weber; every physical parameter differentiable."""
    return [model.record(_model_factory(name)) for name, model in declarations.MODELS.items()]


@hookimpl
def sensitiv_equilibrium_solvers() -> list[EquilibriumSolver]:
    """FIRE and gradient descent with force tolerance and step limit, and the Newton polish
    of nearly relaxed structures (FIRE far from a minimum)."""
    schemas = {"fire": declarations.FIRE_SCHEMA, "gradient_descent": declarations.GRADIENT_DESCENT_SCHEMA,
               "polish": declarations.POLISH_SCHEMA}
    modules = {"fire": "._minimize", "gradient_descent": "._minimize", "polish": "._polish"}
    return [
        EquilibriumSolver(
            name=name,
            factory=_lazy(modules[name], name, f"`sensitiv_jaxmd.{name}`: options -> solve."),
            description=declarations.SOLVER_DESCRIPTIONS[name],
            options_schema=schema,
        )
        for name, schema in schemas.items()
    ]


# The stationary condition F = ∇ₓE is the host's (sensitiv's builtin plugin): generic, so a
# model plugin needs no jax-md to be analyzed. `sensitiv_jaxmd.stationary` stays as a function.
