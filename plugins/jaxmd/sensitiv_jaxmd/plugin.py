"""Hook implementations: what the `jaxmd` entry point contributes to sensitiv."""

from __future__ import annotations

from sensitiv.hookspecs import hookimpl

from ._condition import STATIONARY
from ._energies import MODELS
from ._minimize import FIRE, GRADIENT_DESCENT


@hookimpl
def sensitiv_energy_models():
    """Soft spheres (pair matrices, per-atom diameters), Lennard-Jones, Morse,
    Stillinger-Weber and Gupta, every physical parameter differentiable."""
    return [model.record() for model in MODELS.values()]


@hookimpl
def sensitiv_equilibrium_solvers():
    """FIRE and gradient descent with force tolerance and step limit."""
    return [FIRE, GRADIENT_DESCENT]


@hookimpl
def sensitiv_optimality_conditions():
    """The stationary-gradient condition F = grad_x E."""
    return [STATIONARY]
