"""The NetCDF contract of `sensitiv analyze` (documented in `docs/output.md`): the one
module that spells output variable, dimension and attribute names.

`structure_dataset` turns one `StructureAnalysis` into a labeled `xarray.Dataset`;
`global_attributes` gives a result its CF-style global attributes. Everything else that
reads or writes results (`output`, `report`, the AMBER reader's round trip) imports the
names from here. The names shared with the AMBER trajectory convention (`coordinates`,
`cell_lengths`, `cell_angles`, `spatial`, `atom`, `frame`), and `species`, `cell`, `pbc`
which that reader also reads back, are defined by the built-in AMBER reader and re-exported
here: a result opens as an AMBER-style trajectory and reads back as a structure.

**Example:**

```python
from sensitiv.pipeline import dataset
ds = dataset.structure_dataset(analysis, log_sensitivity=True)
ds[dataset.DX_DTHETA].sel({dataset.PARAMETER: "sigma[0,1]"})
```
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import __version__
from .._amber import ATOM, CELL, CELL_ANGLES, CELL_LENGTHS, COORDINATES, FRAME, PBC, SPATIAL, SPECIES
from ..plugins import Registry
from .analysis import STRESS, StructureAnalysis
from .config import Config

__all__ = [
    "ATOM", "SPATIAL", "PARAMETER", "FRAME", "CELL_VECTOR", "CELL_SPATIAL", "CELL_ANGULAR",
    "STRESS_I", "STRESS_J", "VOIGT", "VOIGT_", "LINEAR_SOLVE",
    "COORDINATES", "INITIAL_COORDINATES", "DX_DTHETA", "DX_DLOGTHETA", "PARAMETER_VALUE",
    "PARAMETER_UNITS", "PARAMETER_NAME", "PARAMETER_SYMMETRIC", "SPECIES", "PBC", "CELL",
    "CELL_LENGTHS", "CELL_ANGLES", "STATIONARITY_RESIDUAL", "STATIONARITY_RESIDUAL_NORM",
    "SOLVER_CONVERGED", "SOLVER_ITERATIONS", "SOLVER_RESIDUAL", "LINEAR_RESIDUAL",
    "LINEAR_CONVERGED", "LINEAR_ITERATIONS", "SMALLEST_EIGENVALUE", "LARGEST_EIGENVALUE",
    "VERDICT", "NULL_SPACE_DIMENSION", "DETECTED_NULL_SPACE_DIMENSION", "JACOBIAN_ERROR_ESTIMATE",
    "SOLUTION_ERROR_ESTIMATE", "JACOBIAN_STRATEGY", "TRUSTWORTHY", "PROBLEMS", "FRAME_SOURCE",
    "FRAME_INDEX", "SAMPLE", "STATIC_VARIABLES", "SPECIES_INDEX", "SPECIES_NAME", "SPECIES_TYPE",
    "ATOM_ID", "ATOM_SPECIES", "CELL_IMAGE", "CELL_ORIGIN", "READINGS", "ATTR_COORDINATES",
    "COORDINATES_WRAPPED", "COORDINATES_FREE", "DIAGNOSTICS", "PROBLEM_SEPARATOR",
    "ATTR_MODEL", "ATTR_STRUCTURE_SOURCE", "ATTR_STRUCTURE_FRAME", "ATTR_LENGTH_UNITS",
    "ATTR_ENERGY_UNITS", "ATTR_TITLE", "ATTR_SOURCE", "ATTR_HISTORY", "ATTR_CONFIG",
    "derivative_name", "derivative_names", "structure_dataset", "global_attributes",
]

# -- dimensions ----------------------------------------------------------------------------
PARAMETER = "parameter"
CELL_VECTOR = "cell_vector"
CELL_SPATIAL = "cell_spatial"
CELL_ANGULAR = "cell_angular"
STRESS_I, STRESS_J = "stress_i", "stress_j"
VOIGT, VOIGT_ = "voigt", "voigt_"
LINEAR_SOLVE = "linear_solve"
#: The species table's dimension (and coordinate): index k of per-species parameters.
SPECIES_INDEX = "species_index"

# -- variables -----------------------------------------------------------------------------
INITIAL_COORDINATES = "initial_coordinates"
DX_DTHETA = "dx_dtheta"
DX_DLOGTHETA = "dx_dlogtheta"
PARAMETER_VALUE = "parameter_value"
PARAMETER_UNITS = "parameter_units"
PARAMETER_NAME = "parameter_name"
PARAMETER_SYMMETRIC = "parameter_symmetric"
STATIONARITY_RESIDUAL = "stationarity_residual"
STATIONARITY_RESIDUAL_NORM = "stationarity_residual_norm"
SOLVER_CONVERGED = "solver_converged"
SOLVER_ITERATIONS = "solver_iterations"
SOLVER_RESIDUAL = "solver_residual"
LINEAR_RESIDUAL = "linear_residual"
LINEAR_CONVERGED = "linear_converged"
LINEAR_ITERATIONS = "linear_iterations"
SMALLEST_EIGENVALUE = "smallest_eigenvalue"
LARGEST_EIGENVALUE = "largest_eigenvalue"
VERDICT = "verdict"
NULL_SPACE_DIMENSION = "null_space_dimension"
DETECTED_NULL_SPACE_DIMENSION = "detected_null_space_dimension"
JACOBIAN_ERROR_ESTIMATE = "jacobian_error_estimate"
SOLUTION_ERROR_ESTIMATE = "solution_error_estimate"
JACOBIAN_STRATEGY = "jacobian_strategy"
TRUSTWORTHY = "trustworthy"
PROBLEMS = "problems"
FRAME_SOURCE = "frame_source"
FRAME_INDEX = "frame_index"
SAMPLE = "sample"
SPECIES_NAME = "species_name"
SPECIES_TYPE = "species_type"
ATOM_ID = "atom_id"
ATOM_SPECIES = "atom_species"
CELL_IMAGE = "cell_image"
CELL_ORIGIN = "cell_origin"
READINGS = "readings"
#: Attribute of `initial_coordinates` (and `coordinates`) stating their convention.
ATTR_COORDINATES = "coordinate_convention"
COORDINATES_WRAPPED = ("wrapped into the periodic cell from cell_origin (fractional coordinates in [0, 1) "
                       "along periodic directions); unwrapped = initial_coordinates + cell_image . cell")
COORDINATES_FREE = "as read (no periodic direction)"

#: Variables that describe the structure or parameters, not one analysis: they stay
#: without a `frame` dimension when frames are combined.
STATIC_VARIABLES = (SPECIES, PBC, PARAMETER_UNITS, PARAMETER_NAME, PARAMETER_SYMMETRIC,
                    SPECIES_NAME, SPECIES_TYPE, ATOM_ID, ATOM_SPECIES)

#: The diagnostics `sensitiv inspect` lists, in order.
DIAGNOSTICS = (VERDICT, SMALLEST_EIGENVALUE, STATIONARITY_RESIDUAL, JACOBIAN_ERROR_ESTIMATE,
               NULL_SPACE_DIMENSION, JACOBIAN_STRATEGY, TRUSTWORTHY)

#: Per-structure attributes (`structure_dataset`) and global ones (`global_attributes`).
ATTR_MODEL, ATTR_STRUCTURE_SOURCE, ATTR_STRUCTURE_FRAME = "model", "structure_source", "structure_frame"
ATTR_LENGTH_UNITS, ATTR_ENERGY_UNITS = "length_units", "energy_units"
ATTR_TITLE, ATTR_SOURCE, ATTR_HISTORY, ATTR_CONFIG = "title", "source", "history", "sensitiv_config"

PROBLEM_SEPARATOR = "; "


def derivative_name(label: str) -> str:
    """The variable holding an observable's total derivative: `energy` → `denergy_dtheta`."""
    return f"d{label}_dtheta"


def derivative_names(variables: Sequence[str]) -> list[str]:
    """The observable-derivative variables among `variables` (not `dx_dtheta`)."""
    return [v for v in variables if v.startswith("d") and v.endswith("_dtheta") and v != DX_DTHETA]


def _ratio_units(numerator: str, denominator: str) -> str:
    if denominator in ("1", ""):
        return numerator
    if numerator in ("1", ""):
        return f"({denominator})-1"
    return f"{numerator} ({denominator})-1"


def _common_units(analysis: StructureAnalysis) -> str | None:
    """The units of every θ component when they agree, else `None`."""
    units = {c.units for c in analysis.components}
    return units.pop() if len(units) == 1 else None


def _observable_dims(label: str, name: str, shape: tuple[int, ...], n_atoms: int, n_spatial: int):
    if name == STRESS and len(shape) == 2:
        return (STRESS_I, STRESS_J)
    if shape == (n_atoms, n_spatial):
        return (ATOM, SPATIAL)
    if shape == (n_atoms,):
        return (ATOM,)
    return tuple(f"{label}_{i}" for i in range(len(shape)))


def _cell_angles(cell: np.ndarray) -> np.ndarray:
    def angle(u, v):
        cosine = np.dot(u, v) / (np.linalg.norm(u) * np.linalg.norm(v))
        return math.degrees(math.acos(np.clip(cosine, -1, 1)))

    a, b, c = cell
    return np.array([angle(b, c), angle(a, c), angle(a, b)])


def _periodic(s) -> bool:
    return s.cell is not None and any(s.pbc)


def _positions_and_theta(ds, analysis: StructureAnalysis, log_sensitivity: bool) -> None:
    units = analysis.length_units
    jac = analysis.dx_dtheta
    periodic = _periodic(analysis.structure)
    ds[COORDINATES] = ((ATOM, SPATIAL), analysis.positions, {
        "units": units, "long_name": "equilibrium positions x*",
        ATTR_COORDINATES: ("relaxed from initial_coordinates, not wrapped again" if periodic
                           else COORDINATES_FREE)})
    ds[INITIAL_COORDINATES] = ((ATOM, SPATIAL), np.asarray(analysis.structure.positions, np.float64),
                               {"units": units, "long_name": "positions before relaxation",
                                ATTR_COORDINATES: COORDINATES_WRAPPED if periodic else COORDINATES_FREE})
    dx_attrs = {"long_name": "sensitivity of the equilibrium positions dx*/dθ"}
    theta_units = _common_units(analysis)
    if theta_units is not None:
        dx_attrs["units"] = _ratio_units(units, theta_units)
    else:
        dx_attrs["comment"] = (
            f"units: {units} per unit of each parameter (see parameter_units); "
            "dx_dlogtheta has the units of x for every parameter"
        )
    ds[DX_DTHETA] = ((ATOM, SPATIAL, PARAMETER), jac, dx_attrs)
    if log_sensitivity:
        ds[DX_DLOGTHETA] = ((ATOM, SPATIAL, PARAMETER), jac * analysis.theta[None, None, :],
                            {"units": units, "long_name": "log-sensitivity θ·dx*/dθ"})
    components = analysis.components
    ds[PARAMETER_VALUE] = ((PARAMETER,), analysis.theta, {"long_name": "value of θ_k"})
    ds[PARAMETER_UNITS] = ((PARAMETER,), np.array([c.units for c in components], dtype=object),
                           {"long_name": "units of θ_k (UDUNITS)"})
    ds[PARAMETER_NAME] = ((PARAMETER,), np.array([c.name for c in components], dtype=object),
                          {"long_name": "model parameter θ_k belongs to"})
    ds[PARAMETER_SYMMETRIC] = ((PARAMETER,), np.array([c.tied is not None for c in components]),
                               {"long_name": "θ_k moves both [i,j] and [j,i] of a symmetric parameter"})


def _structure_variables(ds, analysis: StructureAnalysis) -> None:
    s = analysis.structure
    d, units = s.n_spatial, analysis.length_units
    ds[SPECIES] = ((ATOM,), np.array([s.species_names[k] for k in s.species], dtype=object),
                   {"long_name": "species of each atom"})
    ds[PBC] = ((SPATIAL,), np.array(list(s.pbc) or [False] * d, dtype=bool),
               {"long_name": "periodic along each direction"})
    ds.coords[SPECIES_INDEX] = (SPECIES_INDEX, np.arange(len(s.species_names)),
                                {"long_name": "species index k: the k of per-species parameters (sigma[k,l])"})
    ds[SPECIES_NAME] = ((SPECIES_INDEX,), np.array(list(s.species_names), dtype=object),
                        {"long_name": "name of species k"})
    if s.species_types is not None:
        ds[SPECIES_TYPE] = ((SPECIES_INDEX,), np.asarray(s.species_types, np.int64),
                            {"long_name": "the file's own type number of species k (LAMMPS atom type)"})
    ds[ATOM_SPECIES] = ((ATOM,), np.asarray(s.species, np.int64),
                        {"long_name": "species index of each atom (into species_name)"})
    ids = np.arange(1, s.n_atoms + 1) if s.atom_ids is None else np.asarray(s.atom_ids, np.int64)
    ds[ATOM_ID] = ((ATOM,), ids, {"long_name": "identifier of each atom in the source file (LAMMPS atom "
                                                "ID; 1, 2, ... in file order for formats without IDs)"})
    ds[READINGS] = ((), PROBLEM_SEPARATOR.join(s.readings),
                    {"long_name": "how the input was read where it leaves room (species, units, coordinates)"})
    if not _periodic(s):
        return
    if s.image is not None:
        ds[CELL_IMAGE] = ((ATOM, SPATIAL), np.asarray(s.image, np.int64),
                          {"long_name": "periodic image of each atom: unwrapped = initial_coordinates + "
                                        "cell_image . cell (LAMMPS image flags)"})
    origin = np.zeros(d) if s.origin is None else np.asarray(s.origin, np.float64)
    ds[CELL_ORIGIN] = ((SPATIAL,), origin, {"units": units, "long_name": "corner of the cell (LAMMPS xlo ylo zlo)"})
    cell = np.asarray(s.cell, np.float64)
    ds[CELL] = ((CELL_VECTOR, SPATIAL), cell, {"units": units, "long_name": "lattice vectors (rows)"})
    if d == 3:
        ds[CELL_LENGTHS] = ((CELL_SPATIAL,), np.linalg.norm(cell, axis=1),
                            {"units": units, "long_name": "cell lengths a, b, c"})
        ds[CELL_ANGLES] = ((CELL_ANGULAR,), _cell_angles(cell),
                           {"units": "degree", "long_name": "cell angles alpha, beta, gamma"})


def _observable_variables(ds, analysis: StructureAnalysis) -> None:
    n, d = analysis.structure.n_atoms, analysis.structure.n_spatial
    theta_units = _common_units(analysis)
    for obs in analysis.observables:
        dims = _observable_dims(obs.label, obs.name, obs.value.shape, n, d)
        ds[obs.label] = (dims, obs.value, {"units": obs.units, "long_name": f"observable {obs.name} at x*"})
        attrs = {"long_name": f"total derivative d{obs.name}/dθ = ∂g/∂θ + ∂g/∂x·dx*/dθ"}
        if theta_units is not None:
            attrs["units"] = _ratio_units(obs.units, theta_units)
        ds[derivative_name(obs.label)] = (dims + (PARAMETER,), obs.derivative, attrs)
    elastic = analysis.elastic_constants
    if elastic is not None:
        ds.coords[VOIGT] = (VOIGT, list(elastic.voigt))
        ds.coords[VOIGT_] = (VOIGT_, list(elastic.voigt))
        ds[elastic.label] = ((VOIGT, VOIGT_), elastic.relaxed, {
            "units": elastic.units,
            "long_name": "relaxed-ion elastic constants C (Voigt), dσ/dε with internal relaxation"})
        ds[f"{elastic.label}_clamped"] = ((VOIGT, VOIGT_), elastic.clamped, {
            "units": elastic.units, "long_name": "clamped-ion elastic constants ∂σ/∂ε (no relaxation)"})


def _diagnostic_variables(ds, analysis: StructureAnalysis) -> None:
    engine, solver, p = analysis.engine, analysis.solver, len(analysis.components)
    ds[STATIONARITY_RESIDUAL] = ((), analysis.stationarity_residual,
                                 {"long_name": "max |F(x*, θ)| at the relaxed positions"})
    ds[STATIONARITY_RESIDUAL_NORM] = ((), engine.stationarity_residual_norm, {"long_name": "‖F(x*, θ)‖₂"})
    ds[SOLVER_CONVERGED] = ((), solver.converged, {"long_name": "equilibrium solver converged"})
    ds[SOLVER_ITERATIONS] = ((), solver.iterations, {"long_name": "equilibrium solver steps"})
    ds[SOLVER_RESIDUAL] = ((), solver.residual, {"long_name": "equilibrium solver's final stopping quantity"})
    if engine.mode == "forward" and engine.column_residual.size >= p:
        ds[LINEAR_RESIDUAL] = ((PARAMETER,), engine.column_residual[:p],
                               {"long_name": "relative residual of the linear solve for dx*/dθ_k"})
        ds[LINEAR_CONVERGED] = ((PARAMETER,), engine.column_converged[:p],
                                {"long_name": "linear solve for dx*/dθ_k converged"})
        ds[LINEAR_ITERATIONS] = ((PARAMETER,), engine.column_iterations[:p],
                                 {"long_name": "Krylov iterations for dx*/dθ_k (0: dense)"})
    else:
        # Reverse mode solves one adjoint system per coordinate, not per parameter.
        ds[LINEAR_RESIDUAL] = ((LINEAR_SOLVE,), engine.column_residual,
                               {"long_name": "relative residual of each (adjoint) linear solve"})
        ds[LINEAR_CONVERGED] = ((LINEAR_SOLVE,), engine.column_converged,
                                {"long_name": "linear solve converged"})
    ds[SMALLEST_EIGENVALUE] = ((), engine.smallest_eigenvalue,
                               {"long_name": "smallest Hessian eigenvalue outside the null space"})
    ds[LARGEST_EIGENVALUE] = ((), engine.largest_eigenvalue, {"long_name": "largest Hessian eigenvalue magnitude"})
    ds[VERDICT] = ((), engine.verdict, {"long_name": "nature of x*: minimum, saddle, singular or regular"})
    ds[NULL_SPACE_DIMENSION] = ((), engine.null_space_dimension,
                                {"long_name": "known plus detected zero modes of the Hessian"})
    ds[DETECTED_NULL_SPACE_DIMENSION] = ((), engine.detected_null_space_dimension,
                                         {"long_name": "zero modes beyond the model's known null space"})
    ds[JACOBIAN_ERROR_ESTIMATE] = ((), engine.jacobian_error_estimate,
                                   {"long_name": "estimated relative error of dx*/dθ from x̂ ≠ x* (Theorem 1)"})
    ds[SOLUTION_ERROR_ESTIMATE] = ((), engine.solution_error_estimate,
                                   {"units": analysis.length_units, "long_name": "estimated ‖x̂ − x*‖ (Newton step)"})
    ds[JACOBIAN_STRATEGY] = ((), engine.description,
                             {"long_name": "strategy used for the Jacobian", "comment": engine.reason})
    ds[TRUSTWORTHY] = ((), analysis.trustworthy,
                       {"long_name": "the diagnostics found no problem (minimum, solves converged, finite)"})
    ds[PROBLEMS] = ((), PROBLEM_SEPARATOR.join(analysis.problems), {"long_name": "why the result is not trustworthy"})


def structure_dataset(analysis: StructureAnalysis, *, log_sensitivity: bool = True):
    """The labeled `xarray.Dataset` of one analyzed structure (no `frame` dimension).

    **Arguments:**

    - `analysis`: from `sensitiv.pipeline.analyze.analyze_structure`.
    - `log_sensitivity`: also write `dx_dlogtheta` = θ·dx*/dθ (`output.log_sensitivity`).

    **Returns:** the Dataset: coordinates and dx*/dθ with their labels, the parameters,
    the structure (species, periodicity, cell), observables and their total derivatives,
    elastic constants, diagnostics, and which structure (and parameter sample) it is.
    """
    import xarray as xr  # deliberately lazy: xarray costs ~0.5 s and only results need it

    s = analysis.structure
    ds = xr.Dataset(coords={SPATIAL: (SPATIAL, ["x", "y", "z"][: s.n_spatial]),
                            PARAMETER: (PARAMETER, analysis.labels)})
    ds[SPATIAL].attrs = {"long_name": "Cartesian direction"}
    ds[PARAMETER].attrs = {"long_name": "scalar parameter component θ_k"}
    _positions_and_theta(ds, analysis, log_sensitivity)
    _structure_variables(ds, analysis)
    _observable_variables(ds, analysis)
    _diagnostic_variables(ds, analysis)
    ds.attrs = {
        ATTR_MODEL: analysis.model,
        ATTR_STRUCTURE_SOURCE: s.source,
        ATTR_STRUCTURE_FRAME: int(s.frame),
        ATTR_LENGTH_UNITS: analysis.length_units,
        ATTR_ENERGY_UNITS: analysis.energy_units,
        # What the model says about itself (cutoff convention, potential file, ...).
        **{f"{ATTR_MODEL}_{key}": value for key, value in analysis.model_metadata.items()
           if key != "model"},
    }
    ds[FRAME_SOURCE] = ((), s.source, {"long_name": "file (or generator) of the structure"})
    ds[FRAME_INDEX] = ((), int(s.frame), {"long_name": "frame index within frame_source"})
    if analysis.sample is not None:
        ds[SAMPLE] = ((), int(analysis.sample), {"long_name": "parameter sample index"})
    return ds


def _source_string(cfg: Config, registry: Registry) -> str:
    """`sensitiv X.Y.Z; plugins: jaxmd (sensitiv-jaxmd 0.1.0), ...`: the plugins this run used."""
    used = {
        registry.owner(kind, name)
        for kind, name in (
            ("energy_model", cfg.model.name),
            ("equilibrium_solver", cfg.solver.name if cfg.solver.relaxes else None),
            ("optimality_condition", cfg.condition.name),
            *(("structure_reader", f.format) for f in cfg.structure.files),
        )
        if name is not None
    }
    parts = [registry.plugin_info(name).describe() for name in sorted(used)]
    return f"sensitiv {__version__}" + (f"; plugins: {', '.join(parts)}" if parts else "")


def global_attributes(
    cfg: Config, analyses: Sequence[StructureAnalysis], registry: Registry, history: str
) -> dict[str, Any]:
    """CF-style global attributes of a result.

    **Arguments:**

    - `cfg`: the resolved config (stored as YAML in `sensitiv_config`).
    - `analyses`: every analyzed structure (the result is `trustworthy` when all are).
    - `registry`: the plugin registry, for the versions of the plugins used (`source`).
    - `history`: the `history` line (`sensitiv.pipeline.output.history_line`).

    **Returns:** `Conventions`, `title`, `history`, `source`, `references`,
    `sensitiv_config` and `trustworthy`.
    """
    return {
        "Conventions": "CF-1.11",
        ATTR_TITLE: cfg.title or f"sensitiv analysis of {cfg.model.name}",
        ATTR_HISTORY: history,
        ATTR_SOURCE: _source_string(cfg, registry),
        "references": "Blondel et al., Efficient and Modular Implicit Differentiation, arXiv:2105.15183",
        ATTR_CONFIG: cfg.to_yaml(),
        TRUSTWORTHY: all(a.trustworthy for a in analyses),
    }
