"""Uncertainty propagation, parameter importance and the validity of the linear prediction.

From the implicit Jacobian `∂x*/∂θ` of a root (and the total derivatives of observables):

- `ParameterCovariance`: what is known about θ (standard deviations, a covariance or
  correlation matrix, samples), checked symmetric positive semi-definite.
- `per_atom_covariance`, `observable_covariance`: linear propagation, `Cov(y) = A Σ Aᵀ`
  (per atom `spatial × spatial`, never the dense `d × d`).
- `importance`, `log_sensitivity`: the variance of each output decomposed by parameter and
  by group (Shapley effects of the linear prediction), unit-free log-sensitivities.
- `directional_derivatives`, `validity_range`: second- and third-order derivatives of the
  root along directions by implicit differentiation (one higher-order JVP of `F` and one
  solve with the first order's operator), and the range of θ within which the first-order
  prediction errs by less than a tolerance.
- `propagate`: all of it at one root, in two engine calls.
"""

from ._covariance import ParameterCovariance, parameter_labels
from ._higher import DirectionalDerivatives, ValidityRange, directional_derivatives, validity_range
from ._linear import (
    FieldCovariance,
    Importance,
    ObservableCovariance,
    importance,
    log_sensitivity,
    observable_covariance,
    per_atom_covariance,
    power_units,
)
from ._propagate import UncertaintyResult, observable_derivatives, propagate

__all__ = [
    "ParameterCovariance",
    "parameter_labels",
    "per_atom_covariance",
    "observable_covariance",
    "FieldCovariance",
    "ObservableCovariance",
    "log_sensitivity",
    "importance",
    "Importance",
    "directional_derivatives",
    "DirectionalDerivatives",
    "validity_range",
    "ValidityRange",
    "observable_derivatives",
    "propagate",
    "UncertaintyResult",
    "power_units",
]
