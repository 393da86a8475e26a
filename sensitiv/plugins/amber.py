"""Reader of AMBER-convention NetCDF trajectories (ambermd.org/netcdf/nctraj.xhtml) via xarray.

Reads `coordinates([frame,] atom, spatial)` with its `units`, the cell from
`cell_lengths`/`cell_angles` (the AMBER way: `a` along x, `b` in the xy plane), or from a
full `cell([frame,] cell_vector, spatial)` matrix when present (as in sensitiv's own
output, so a result can be read back as a structure), species from a string `species`
variable, `atom_names`/`element` character arrays, or atomic numbers in
`atom_types`/`type`/`Z` (ASE's NetCDF trajectories), and periodicity from a `pbc`
variable or from non-zero cell lengths (ASE writes zero lengths for open directions).

A non-standard triclinic cell stored only as lengths and angles loses its orientation:
the reconstructed cell is the standard one, which is what every AMBER reader does.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import InputError
from ..records import Structure, StructureReader

__all__ = ["read_amber_netcdf", "amber_reader", "cell_from_lengths_angles", "ELEMENTS"]

# The names this reader reads: the AMBER convention's dimensions and variables, and the
# `species`, `cell` and `pbc` variables of sensitiv's own results (whose contract,
# `sensitiv.pipeline.dataset`, takes every one of these names from here).
ATOM, SPATIAL, FRAME = "atom", "spatial", "frame"
COORDINATES, CELL_LENGTHS, CELL_ANGLES = "coordinates", "cell_lengths", "cell_angles"
SPECIES, CELL, PBC = "species", "cell", "pbc"

ELEMENTS = (
    "X H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn Ga Ge "
    "As Se Br Kr Rb Sr Y Zr Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe Cs Ba La Ce Pr Nd Pm Sm "
    "Eu Gd Tb Dy Ho Er Tm Yb Lu Hf Ta W Re Os Ir Pt Au Hg Tl Pb Bi Po At Rn Fr Ra Ac Th Pa U "
    "Np Pu Am Cm Bk Cf Es Fm Md No Lr Rf Db Sg Bh Hs Mt Ds Rg Cn Nh Fl Mc Lv Ts Og"
).split()

_UNIT_NAMES = {"angstrom": "angstrom", "angstroms": "angstrom", "a": "angstrom", "å": "angstrom",
               "nm": "nm", "nanometer": "nm", "nanometers": "nm", "bohr": "bohr", "1": "1"}


def cell_from_lengths_angles(lengths: Sequence[float], angles_deg: Sequence[float]) -> np.ndarray:
    """Lattice vectors as rows from `(a, b, c)` and `(α, β, γ)` in degrees (a ∥ x, b in xy)."""
    a, b, c = (float(x) for x in lengths)
    alpha, beta, gamma = (math.radians(float(x)) for x in angles_deg)
    cos_a, cos_b, cos_g = math.cos(alpha), math.cos(beta), math.cos(gamma)
    sin_g = math.sin(gamma)
    # Snap round-off of right angles so that orthorhombic cells come back exactly diagonal.
    cos_a, cos_b, cos_g = (0.0 if abs(x) < 1e-12 else x for x in (cos_a, cos_b, cos_g))
    sin_g = 1.0 if cos_g == 0.0 else sin_g
    cx = c * cos_b
    cy = c * (cos_a - cos_b * cos_g) / sin_g
    cz = math.sqrt(max(c * c - cx * cx - cy * cy, 0.0))
    return np.array([[a, 0.0, 0.0], [b * cos_g, b * sin_g, 0.0], [cx, cy, cz]])


def _text(values) -> list[str]:
    arr = np.asarray(values)
    if arr.dtype.kind == "S" and arr.ndim == 2:  # char array (atom, label)
        return [b"".join(row).decode("utf-8", "replace").strip() for row in arr]
    if arr.dtype.kind in "SO":
        return [(v.decode() if isinstance(v, bytes) else str(v)).strip() for v in arr]
    return [str(v).strip() for v in arr]


def _species(ds, n_atoms: int, path: str) -> tuple[np.ndarray, tuple[str, ...]]:
    names: list[str] | None = None
    for var in (SPECIES, "atom_names", "element", "elements"):
        if var in ds.variables and ATOM in ds[var].dims:
            arr = ds[var]
            if FRAME in arr.dims:
                arr = arr.isel(frame=0)
            names = _text(arr.values)
            break
    if names is None:
        for var in ("atom_types", "type", "Z"):
            if var in ds.variables and ATOM in ds[var].dims:
                arr = ds[var]
                if FRAME in arr.dims:
                    arr = arr.isel(frame=0)
                numbers = np.asarray(arr.values).astype(np.int64)
                if np.all((numbers >= 1) & (numbers < len(ELEMENTS))):
                    names = [ELEMENTS[z] for z in numbers]
                else:
                    names = [f"type{z}" for z in numbers]
                break
    if names is None:
        names = ["X"] * n_atoms
    if len(names) != n_atoms:
        raise InputError(f"{path}: {len(names)} species for {n_atoms} atoms")
    unique = tuple(dict.fromkeys(names))
    index = {name: i for i, name in enumerate(unique)}
    return np.array([index[n] for n in names], dtype=np.int64), unique


_EAGER_BYTES = 64 * 2**20


class _Frames(Sequence):
    """Frames of one file, each read from disk only when asked for."""

    def __init__(self, path: str, n_frames: int, has_frame_dim: bool, common: Mapping[str, Any]):
        self._path = path
        self._n = n_frames
        self._has_frame = has_frame_dim
        self._common = common

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._n))]
        if not -self._n <= index < self._n:
            raise IndexError(index)
        index %= self._n
        import xarray as xr  # lazy: every command loads the built-in plugin; only reading needs xarray

        with xr.open_dataset(self._path, decode_times=False) as ds:
            frame = ds.isel(frame=index) if self._has_frame else ds
            positions = np.asarray(frame[COORDINATES].values, dtype=np.float64)
            dim = positions.shape[1]
            cell = None
            pbc = self._common[PBC]
            if CELL in frame.variables and frame[CELL].ndim == 2:
                cell = np.asarray(frame[CELL].values, dtype=np.float64)
            elif CELL_LENGTHS in frame.variables:
                lengths = np.asarray(frame[CELL_LENGTHS].values, dtype=np.float64)
                angles = (
                    np.asarray(frame[CELL_ANGLES].values, dtype=np.float64)
                    if CELL_ANGLES in frame.variables
                    else np.full(3, 90.0)
                )
                if pbc is None:
                    pbc = tuple(bool(x > 0) for x in lengths)
                if np.any(lengths > 0):
                    # Open directions (zero length) get a unit placeholder vector so that
                    # the cell stays invertible; `pbc` marks them non-periodic.
                    cell = cell_from_lengths_angles(np.where(lengths > 0, lengths, 1.0), angles)
            info: dict[str, Any] = {}
            if "time" in frame.variables and frame["time"].ndim == 0:
                info["time"] = float(frame["time"].values)
                if "units" in frame["time"].attrs:
                    info["time_units"] = str(frame["time"].attrs["units"])
        if pbc is None:
            pbc = (cell is not None,) * dim
        if cell is not None and cell.shape != (dim, dim):
            if dim == 2 and cell.shape == (3, 3):
                cell = cell[:2, :2]
            else:
                raise InputError(f"{self._path}: cell of shape {cell.shape} for {dim}-D coordinates")
        if cell is None:
            pbc = (False,) * dim
        return Structure(
            positions=positions,
            species=self._common[SPECIES],
            species_names=self._common["species_names"],
            cell=cell,
            pbc=tuple(pbc)[:dim],
            length_units=self._common["units"],
            source=self._path,
            frame=index,
            info=info,
        )


def read_amber_netcdf(path: str, options: Mapping[str, Any] | None = None) -> Sequence[Structure]:
    """Read an AMBER-convention NetCDF trajectory (or a sensitiv result) as structures.

    **Arguments:**

    - `path`: the `.nc` file.
    - `options`: `{"length_units": "angstrom"}` overrides the units attribute.

    **Returns:** a sequence of `Structure`s, one per frame, each read when indexed.

    **Raises:** `InputError` naming the path when the file is not NetCDF or lacks
    `coordinates`.
    """
    import xarray as xr  # lazy: every command loads the built-in plugin; only reading needs xarray

    options = dict(options or {})
    try:
        ds = xr.open_dataset(path, decode_times=False)
    except FileNotFoundError:
        raise InputError(f"{path}: structure file not found") from None
    except Exception as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InputError(f"{path}: not a readable NetCDF file ({first})") from None
    with ds:
        if COORDINATES not in ds.variables:
            raise InputError(
                f"{path}: no 'coordinates' variable; not an AMBER-convention trajectory "
                f"(variables: {', '.join(map(str, ds.variables))})"
            )
        coords = ds[COORDINATES]
        has_frame = FRAME in coords.dims
        expected = (FRAME, ATOM, SPATIAL) if has_frame else (ATOM, SPATIAL)
        if tuple(coords.dims) != expected:
            raise InputError(f"{path}: coordinates has dimensions {coords.dims}, expected {expected}")
        n_atoms = int(ds.sizes[ATOM])
        coords_bytes = int(coords.size) * 8
        n_frames = int(ds.sizes[FRAME]) if has_frame else 1
        species, names = _species(ds, n_atoms, path)
        units = options.get("length_units") or coords.attrs.get("units", "angstrom")
        units = _UNIT_NAMES.get(str(units).strip().lower(), str(units).strip())
        pbc = None
        if PBC in ds.variables:
            pbc = tuple(bool(x) for x in np.asarray(ds[PBC].values).ravel())
        common = {
            SPECIES: species,
            "species_names": names,
            "units": units,
            PBC: pbc,
            "variables": set(map(str, ds.variables)),
        }
    frames = _Frames(os.fspath(path), n_frames, has_frame, common)
    if coords_bytes <= _EAGER_BYTES:
        # Small files are read at once, so no file handle outlives this call (HDF5 can
        # crash when one file is opened again while another handle to it is open).
        return [frames[i] for i in range(n_frames)]
    return frames


def amber_reader() -> StructureReader:
    """The built-in `amber-netcdf` reader record."""
    return StructureReader(
        name="amber-netcdf",
        read=read_amber_netcdf,
        extensions=(".nc", ".ncdf", ".netcdf"),
        description="AMBER-convention NetCDF trajectories (and sensitiv results) through xarray",
        options_schema={
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "length_units": {
                    "type": "string",
                    "description": "Units of the coordinates, overriding the file's `units` attribute.",
                }
            },
        },
    )
