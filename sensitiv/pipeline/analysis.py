"""What the analysis of one structure found, as numbers: the record `analyze_structure`
returns and `dataset.structure_dataset` labels.

Plain NumPy and Python values only (no JAX, no xarray): the records pickle to and from
Dask workers, and the modules that only read them stay light.

**Example:**

```python
result = analyze.analyze_structure(structure, cfg)
result.dx_dtheta[:, :, result.labels.index("sigma[0,1]")]
result.engine.verdict, result.trustworthy, result.problems
```
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..records import Structure
from .theta import ThetaComponent

__all__ = [
    "ROUND_OFF",
    "is_round_off",
    "ENERGY",
    "STRESS",
    "ELASTIC_CONSTANTS",
    "VERDICT_OK",
    "SolverReport",
    "EngineReport",
    "ObservableResult",
    "ElasticConstants",
    "ValidityRanges",
    "ObservableUncertainty",
    "UncertaintyAnalysis",
    "StructureAnalysis",
]


#: A change below this fraction of its natural scale is round-off: the per-atom σ of x* of
#: a perfect crystal (which does not move with its potential's parameters), its re-relaxed
#: samples' spread, an observable's σ against the change θ's own size makes.
ROUND_OFF = 1e-9


def is_round_off(lengths, positions) -> bool:
    """Whether every per-atom length in `lengths` (σ of x*, sampled displacements: any
    shape) is round-off at the scale of the structure `positions` `(n_atoms, n_spatial)`,
    its extent: the one rule by which the summary and `sensitiv check` say x* does not move.
    """
    positions = np.asarray(positions)
    extent = float(np.max(np.ptp(positions, axis=0))) if positions.size else 0.0
    return float(np.max(np.asarray(lengths), initial=0.0)) <= ROUND_OFF * max(extent, 1e-300)

#: The observables the pipeline offers for every model (`energy`), for models with a strain
#: parameter (`stress`), and from the stress's derivatives (`elastic_constants`).
ENERGY, STRESS, ELASTIC_CONSTANTS = "energy", "stress", "elastic_constants"

#: The verdict of a stable equilibrium.
VERDICT_OK = "minimum"


@dataclasses.dataclass(frozen=True)
class SolverReport:
    """What the equilibrium solver reported.

    **Arguments:**

    - `name`: the solver (`"none"` when the structure was taken as relaxed).
    - `converged`, `iterations`: its stopping state.
    - `residual`: its final stopping quantity (max |force| for FIRE); NaN without a solver.
    """

    name: str
    converged: bool
    iterations: int
    residual: float


@dataclasses.dataclass(frozen=True)
class EngineReport:
    """The Jacobian engine's diagnostics, as plain numbers.

    **Arguments:**

    - `strategy`, `mode`, `reason`: how dx*/dθ was computed (`"krylov"`, `"forward"`) and why.
    - `verdict`: the nature of x*: `"minimum"`, `"saddle"`, `"singular"`, `"regular"` or
      `"undetermined"` (x̂ not converged enough to tell a minimum from a saddle).
    - `column_residual`, `column_converged`, `column_iterations`: per linear solve (one per
      parameter in forward mode, one per coordinate in reverse mode).
    - `stationarity_residual_norm`: ‖F(x*, θ)‖₂.
    - `smallest_eigenvalue`, `largest_eigenvalue`: of ∂₁F outside the null space.
    - `null_space_dimension`, `detected_null_space_dimension`: known plus detected zero
      modes, and those beyond the model's own.
    - `jacobian_error_estimate`, `solution_error_estimate`: Theorem 1's estimates.
    - `trustworthy`: the engine's own verdict; `warnings`: its messages.
    - `trust_rtol`: the tolerance `jacobian_error_estimate` was held to (`jacobian.trust_rtol`).
    - `notes`: the engine's remarks that do not affect trust (a `λ_min` known as an interval).
    """

    strategy: str
    mode: str
    reason: str
    verdict: str
    column_residual: np.ndarray
    column_converged: np.ndarray
    column_iterations: np.ndarray
    stationarity_residual_norm: float
    smallest_eigenvalue: float
    largest_eigenvalue: float
    null_space_dimension: int
    detected_null_space_dimension: int
    jacobian_error_estimate: float
    solution_error_estimate: float
    trustworthy: bool
    warnings: tuple[str, ...]
    trust_rtol: float = float("nan")
    notes: tuple[str, ...] = ()

    @property
    def description(self) -> str:
        """`"krylov (forward mode)"`."""
        return f"{self.strategy} ({self.mode} mode)"


@dataclasses.dataclass(frozen=True)
class ObservableResult:
    """An observable g(x*, θ) and its derivatives.

    **Arguments:**

    - `label`: its output name; `name`: the observable; `units`: its units.
    - `value`: g at x*.
    - `derivative`: the total derivative dg/dθ, shape `value.shape + (p,)`.
    - `partial`: the explicit part ∂g/∂θ (same shape).
    """

    label: str
    name: str
    units: str
    value: np.ndarray
    derivative: np.ndarray
    partial: np.ndarray


@dataclasses.dataclass(frozen=True)
class ElasticConstants:
    """Elastic constants in Voigt notation from the stress's derivatives by the strain.

    **Arguments:**

    - `label`: the output name.
    - `voigt`: the Voigt component labels (`"xx"`, `"yy"`, ..., `"xy"`).
    - `relaxed`: the relaxed-ion constants dσ/dε (internal relaxation included).
    - `clamped`: the clamped-ion constants ∂σ/∂ε.
    - `units`: the stress's units.
    """

    label: str
    voigt: tuple[str, ...]
    relaxed: np.ndarray
    clamped: np.ndarray
    units: str


@dataclasses.dataclass(frozen=True)
class ValidityRanges:
    """How far the first-order prediction holds along each direction (see
    `sensitiv.uncertainty.validity_range`): the step at which it errs by `rtol` of the
    predicted change, a bracket `[lower, upper]`, and whether the Taylor series settles it.

    **Arguments:**

    - `estimate`, `lower`, `upper`: steps (NaN along exact parameters); trailing axis: the
      directions (parameters or principal directions).
    - `resolved`: the third-order term is at most half the second-order one at `estimate`.
    """

    estimate: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    resolved: np.ndarray


@dataclasses.dataclass(frozen=True)
class ObservableUncertainty:
    """The propagated uncertainty of one observable (or of the elastic constants).

    **Arguments:**

    - `label`: the observable's output name; `units`: its units.
    - `std`: standard deviation of every component (shape of the observable).
    - `variance_by_parameter`, `variance_by_group`: the variance decomposed (trailing axis:
      parameters, groups); each adds up to `std²`.
    - `validity`: along each parameter axis, in the parameter's units (NaN for exact
      parameters), or `None` without second order; `validity_principal`: along the
      principal directions, in standard deviations.
    - `mean_shift`: second-order shift of the mean, or `None`.
    - `derivative`: dg/dθ used (for the elastic constants: dC/dθ from second-order
      implicit derivatives of the stress), shape + `(p,)`.
    """

    label: str
    units: str
    std: np.ndarray
    variance_by_parameter: np.ndarray
    variance_by_group: np.ndarray
    validity: ValidityRanges | None
    validity_principal: ValidityRanges | None
    mean_shift: np.ndarray | None
    derivative: np.ndarray


@dataclasses.dataclass(frozen=True)
class UncertaintyAnalysis:
    """What the `uncertainty` section asked for, at one structure.

    **Arguments:**

    - `source`, `rule`, `rtol`: where the covariance came from, the importance rule, the
      validity tolerance.
    - `covariance`: Σ over θ, `(p, p)` (exact components: zero rows); `groups`: the groups
      of labels whose variance is reported together.
    - `principal_variance`, `principal_direction`: Σ's eigenpairs, `(k,)`, `(k, p)` rows
      scaled to one σ.
    - `positions_std`, `positions_covariance`: `(n, d)`, `(n, d, d)` per atom.
    - `positions_variance_by_parameter`, `positions_variance_by_group`: `(n, d, p)`, `(n, d, G)`.
    - `positions_validity`, `positions_validity_principal`: ranges of the whole displacement
      field (2-norm), `(p,)` and `(k,)`; `None` without second order.
    - `positions_mean_shift`: `(n, d)` or `None`.
    - `observables`: one `ObservableUncertainty` per observable; `elastic_constants`: that
      of the relaxed-ion constants (needs second order), or `None`.
    - `internal_relaxation_std`, `internal_relaxation_derivative`: with the elastic
      constants, σ of the internal-relaxation field dx*/dε (per Voigt strain column, as
      `dx_dtheta`'s strain columns: `(n, d, v)`) and its derivative d²x*/dε dθ
      (`(n, d, v, p)`, mixed second-order implicit derivatives); else `None`.
    - `observable_labels`, `observable_covariance`, `observable_correlation`: every
      observable component together, `(m,)`, `(m, m)`.
    - `second_order_trustworthy`, `second_order_warnings`: the engine's diagnostics of the
      second-order solve.
    """

    source: str
    rule: str
    rtol: float
    covariance: np.ndarray
    groups: tuple[tuple[str, ...], ...]
    principal_variance: np.ndarray
    principal_direction: np.ndarray
    positions_std: np.ndarray
    positions_covariance: np.ndarray
    positions_variance_by_parameter: np.ndarray
    positions_variance_by_group: np.ndarray
    positions_validity: ValidityRanges | None
    positions_validity_principal: ValidityRanges | None
    positions_mean_shift: np.ndarray | None
    observables: tuple[ObservableUncertainty, ...]
    elastic_constants: ObservableUncertainty | None
    internal_relaxation_std: np.ndarray | None
    internal_relaxation_derivative: np.ndarray | None
    observable_labels: tuple[str, ...]
    observable_covariance: np.ndarray
    observable_correlation: np.ndarray
    second_order_trustworthy: bool
    second_order_warnings: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class StructureAnalysis:
    """Everything `analyze_structure` found for one structure, as numbers.

    **Arguments:**

    - `structure`: the analyzed structure (positions before relaxation, species, cell).
    - `model`: the energy model's name.
    - `components`: θ's scalar components (`ThetaComponent`), in output order.
    - `theta`: their values, shape `(p,)`.
    - `positions`: the equilibrium x*, shape `(n_atoms, n_spatial)`.
    - `dx_dtheta`: the Jacobian dx*/dθ, shape `(n_atoms, n_spatial, p)`.
    - `length_units`, `energy_units`: of positions and energy.
    - `solver`: the equilibrium solver's report; `engine`: the Jacobian engine's.
    - `stationarity_residual`: max |F(x*, θ)|.
    - `observables`: the requested observables (`ObservableResult`).
    - `elastic_constants`: when requested, else `None`.
    - `problems`: why the result is not trustworthy (empty when it is).
    - `trustworthy`: no diagnostic found a problem.
    - `sample`: the parameter-sample index in an ensemble that samples parameters, else `None`.
    - `model_metadata`: what the bound model says about itself (`System.metadata`, plain
      values only: its cutoff and cutoff convention, potential file, ...).
    - `uncertainty`: the propagated parameter uncertainty (`uncertainty` section), or `None`.
    - `fixed`: `(n_atoms,)` booleans of the atoms held fixed (`structure.fixed`), or `None`.
    - `cell`: the relaxed cell (rows) when the cell relaxed (`cell.relax`), else `None`;
      `positions` then lie in it. `dcell_dtheta`: its derivative, `(d, d, p)`.
    """

    structure: Structure
    model: str
    components: tuple[ThetaComponent, ...]
    theta: np.ndarray
    positions: np.ndarray
    dx_dtheta: np.ndarray
    length_units: str
    energy_units: str
    solver: SolverReport
    engine: EngineReport
    stationarity_residual: float
    observables: tuple[ObservableResult, ...]
    elastic_constants: ElasticConstants | None
    problems: tuple[str, ...]
    trustworthy: bool
    sample: int | None = None
    model_metadata: dict = dataclasses.field(default_factory=dict)
    uncertainty: UncertaintyAnalysis | None = None
    fixed: np.ndarray | None = None
    cell: np.ndarray | None = None
    dcell_dtheta: np.ndarray | None = None

    @property
    def labels(self) -> list[str]:
        """θ's labels (`"sigma[0,1]"`)."""
        return [c.label for c in self.components]

    @property
    def where(self) -> str:
        """The structure's source and frame, for messages."""
        s = self.structure
        return s.source + (f" (frame {s.frame})" if s.frame else "")
