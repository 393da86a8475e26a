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
- `propagate`: all of it at one root, in one engine program (the higher orders reuse the
  Jacobian's factorization).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

#: public name -> private module: imported on first use, so that the config loader can use
#: the numpy-only checks (`_psd`) without importing jax.
_SOURCES = {
    "ParameterCovariance": "._covariance",
    "parameter_labels": "._covariance",
    "per_atom_covariance": "._linear",
    "observable_covariance": "._linear",
    "FieldCovariance": "._linear",
    "ObservableCovariance": "._linear",
    "log_sensitivity": "._linear",
    "importance": "._linear",
    "Importance": "._linear",
    "directional_derivatives": "._higher",
    "DirectionalDerivatives": "._higher",
    "validity_range": "._higher",
    "natural_steps": "._higher",
    "resolution": "._higher",
    "ValidityRange": "._higher",
    "observable_derivatives": "._propagate",
    "propagate": "._propagate",
    "UncertaintyResult": "._propagate",
}

if TYPE_CHECKING:
    from ._covariance import ParameterCovariance, parameter_labels
    from ._higher import (
        DirectionalDerivatives,
        ValidityRange,
        directional_derivatives,
        natural_steps,
        resolution,
        validity_range,
    )
    from ._linear import (
        FieldCovariance,
        Importance,
        ObservableCovariance,
        importance,
        log_sensitivity,
        observable_covariance,
        per_atom_covariance,
    )
    from ._propagate import UncertaintyResult, observable_derivatives, propagate

__all__ = list(_SOURCES)


def __getattr__(name: str):
    try:
        module = _SOURCES[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
