"""Structures for the pipeline: read through reader plugins, or generated.

Every structure the pipeline analyzes passes `check_structure`: finite coordinates, a
non-degenerate cell, and no two atoms closer than `min_distance` (minimum image).

Generators (all return `sensitiv.records.Structure`):

- `bidisperse_packing`: a random 2-D or 3-D packing of small (species `A`) and large
  (species `B`) particles in a periodic square/cubic box at a given packing fraction, as
  in the soft-sphere experiment of Blondel et al. (reduced units).
- `lattice("fcc" | "bcc" | "diamond" | "triangular", ...)`: periodic crystals, optionally
  rattled.

**Example:**

```python
from sensitiv.pipeline import structure
s = structure.bidisperse_packing(n_atoms=64, packing_fraction=0.9, seed=0)
s.positions.shape, s.species_names     # (64, 2), ('A', 'B')
```
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy.spatial import cKDTree

from ..errors import InputError, PluginError
from ..plugins import Registry, get_registry
from ..records import Structure
from .config import FixedAtoms, Region, StructureSettings

__all__ = [
    "bidisperse_packing",
    "lattice",
    "generate",
    "select_frames",
    "check_structure",
    "canonical",
    "read_structures",
    "fixed_atoms",
    "atom_bucket",
    "pad_structure",
]


# -- generators --------------------------------------------------------------------------


def bidisperse_packing(
    n_atoms: int = 128,
    dimension: int = 2,
    packing_fraction: float = 0.9,
    diameters: Sequence[float] = (1.0, 1.4),
    fraction_small: float = 0.5,
    seed: int = 0,
) -> Structure:
    """A random bidisperse packing in a periodic box (reduced units: lengths in `sigma`, diameters as given).

    **Arguments:**

    - `n_atoms`: number of particles.
    - `dimension`: 2 or 3.
    - `packing_fraction`: φ = (volume of the particles) / (box volume).
    - `diameters`: `(small, large)` diameters; species `A` is small, `B` large.
    - `fraction_small`: share of small particles.
    - `seed`: random seed of the positions.

    **Returns:** a `Structure` with species `("A", "B")`, a cubic cell and
    `info["diameters"]`, the per-species diameters.
    """
    if dimension not in (2, 3):
        raise InputError(f"bidisperse_packing: dimension must be 2 or 3, got {dimension}")
    if n_atoms < 2:
        raise InputError(f"bidisperse_packing: n_atoms must be at least 2, got {n_atoms}")
    n_small = int(round(n_atoms * fraction_small))
    species = np.array([0] * n_small + [1] * (n_atoms - n_small), dtype=np.int64)
    d = np.asarray(diameters, dtype=np.float64)[species]
    if dimension == 2:
        particle_volume = math.pi / 4.0 * float(np.sum(d**2))
    else:
        particle_volume = math.pi / 6.0 * float(np.sum(d**3))
    side = (particle_volume / packing_fraction) ** (1.0 / dimension)
    rng = np.random.default_rng(seed)
    positions = rng.uniform(0.0, side, size=(n_atoms, dimension))
    return Structure(
        positions=positions,
        species=species,
        species_names=("A", "B"),
        cell=np.eye(dimension) * side,
        pbc=(True,) * dimension,
        length_units="sigma",  # reduced units (sensitiv.units.REDUCED_LENGTH)
        source=f"generator:bidisperse_packing(n_atoms={n_atoms}, dimension={dimension}, "
        f"packing_fraction={packing_fraction}, seed={seed})",
        frame=0,
        info={
            "diameters": [float(x) for x in diameters],
            "packing_fraction": float(packing_fraction),
            "box_side": float(side),
        },
    )


_BASES = {
    "fcc": [(0, 0, 0), (0, 0.5, 0.5), (0.5, 0, 0.5), (0.5, 0.5, 0)],
    "bcc": [(0, 0, 0), (0.5, 0.5, 0.5)],
    "diamond": [
        (0, 0, 0), (0, 0.5, 0.5), (0.5, 0, 0.5), (0.5, 0.5, 0),
        (0.25, 0.25, 0.25), (0.25, 0.75, 0.75), (0.75, 0.25, 0.75), (0.75, 0.75, 0.25),
    ],
}


def lattice(
    name: str,
    lattice_constant: float,
    repeat: Sequence[int] | None = None,
    species: str = "X",
    length_units: str = "angstrom",
    rattle: float = 0.0,
    seed: int = 0,
) -> Structure:
    """A periodic crystal: `"fcc"`, `"bcc"`, `"diamond"` (cubic cells) or `"triangular"` (2-D).

    **Arguments:**

    - `name`: the lattice.
    - `lattice_constant`: the cubic cell edge; for `"triangular"`, the nearest-neighbour distance.
    - `repeat`: unit cells along each axis (default 2 per axis; the 2-D triangular cell
      is rectangular with 2 atoms, so `repeat=(4, 2)` is nearly square).
    - `species`: the element or species name of every atom.
    - `length_units`: units of `lattice_constant`.
    - `rattle`: standard deviation of Gaussian displacements added to every atom.
    - `seed`: random seed of the rattle.
    """
    if name == "triangular":
        dim = 2
        a = float(lattice_constant)
        unit_cell = np.diag([a, a * math.sqrt(3.0)])
        basis = np.array([(0.0, 0.0), (0.5, 0.5)])
    elif name in _BASES:
        dim = 3
        unit_cell = np.eye(3) * float(lattice_constant)
        basis = np.array(_BASES[name], dtype=np.float64)
    else:
        raise InputError(f"unknown lattice {name!r}; choose one of fcc, bcc, diamond, triangular")
    repeat = tuple(repeat) if repeat is not None else (2,) * dim
    if len(repeat) != dim:
        raise InputError(f"lattice {name!r} is {dim}-D: repeat needs {dim} entries, got {list(repeat)}")
    grids = np.stack(np.meshgrid(*[np.arange(n) for n in repeat], indexing="ij"), axis=-1)
    cells = grids.reshape(-1, dim).astype(np.float64)
    fractional = (cells[:, None, :] + basis[None, :, :]).reshape(-1, dim) / np.asarray(repeat)
    cell = unit_cell * np.asarray(repeat, dtype=np.float64)[:, None]
    positions = fractional @ cell
    if rattle > 0:
        positions = positions + np.random.default_rng(seed).normal(0.0, rattle, positions.shape)
    n = positions.shape[0]
    return Structure(
        positions=positions,
        species=np.zeros(n, dtype=np.int64),
        species_names=(species,),
        cell=cell,
        pbc=(True,) * dim,
        length_units=length_units,
        source=f"generator:{name}(lattice_constant={lattice_constant}, repeat={list(repeat)}, "
        f"rattle={rattle}, seed={seed})",
        frame=0,
        info={"lattice": name, "lattice_constant": float(lattice_constant)},
    )


def generate(options: Mapping[str, Any]) -> Structure:
    """Build the structure a config's `structure.generator` section describes."""
    options = dict(options)
    name = options.pop("name")
    if name == "bidisperse_packing":
        return bidisperse_packing(**options)
    return lattice(name, **options)


# -- frames and checks -------------------------------------------------------------------


def select_frames(n_frames: int, spec: Any, where: str = "structure.frames") -> list[int]:
    """Indices of the frames a `frames` spec selects among `n_frames`.

    **Arguments:**

    - `n_frames`: how many frames the file holds.
    - `spec`: an int (negative from the end), a list of ints, `"all"`, `"first"`,
      `"last"` or a slice string `"start:stop:step"`.
    - `where`: named in errors.
    """
    if n_frames == 0:
        raise InputError(f"{where}: the file holds no frames")
    if spec in (None, "last"):
        return [n_frames - 1]
    if spec == "first":
        return [0]
    if spec == "all":
        return list(range(n_frames))
    if isinstance(spec, str):
        match = re.fullmatch(r"(-?\d*):(-?\d*)(?::(-?\d*))?", spec)
        if match is None:
            raise InputError(f"{where}: invalid frame selection {spec!r}")
        parts = [int(p) if p not in (None, "") else None for p in match.groups()]
        if parts[2] == 0:
            raise InputError(f"{where}: slice step cannot be zero in {spec!r}")
        chosen = list(range(n_frames))[slice(*parts)]
        if not chosen:
            raise InputError(f"{where}: {spec!r} selects no frame of {n_frames}")
        return chosen
    indices = [spec] if isinstance(spec, int) else list(spec)
    out = []
    for i in indices:
        if not -n_frames <= i < n_frames:
            raise InputError(f"{where}: frame {i} out of range; the file holds {n_frames} frame(s)")
        out.append(i % n_frames)
    return out


def _pairs_closer_than(positions: np.ndarray, cell: np.ndarray | None, pbc, cutoff: float):
    """Pairs `(i, j, distance)` closer than `cutoff` under the minimum-image convention."""
    n, dim = positions.shape
    shifts = [np.zeros(dim)]
    if cell is not None and any(pbc):
        ranges = [(-1, 0, 1) if p else (0,) for p in pbc]
        grid = np.stack(np.meshgrid(*ranges, indexing="ij"), -1).reshape(-1, dim)
        shifts = [g @ cell for g in grid]
        # Wrap into the cell so that one image shell finds every minimum-image neighbour
        # (valid while the cutoff is shorter than the cell's smallest height, always
        # the case for the tiny `min_distance` this check uses).
        frac = np.linalg.solve(cell.T, positions.T).T
        frac = np.where(np.asarray(pbc)[None, :], frac - np.floor(frac), frac)
        positions = frac @ cell
    tree = cKDTree(positions)
    found = []
    for shift in shifts:
        zero = not np.any(shift)
        hits = tree.query_ball_point(positions + shift, cutoff)
        for i, js in enumerate(hits):
            for j in js:
                if zero and j <= i:
                    continue
                dist = float(np.linalg.norm(positions[i] + shift - positions[j]))
                found.append((min(i, j), max(i, j), dist))
                if len(found) >= 3:
                    return found
    return found


def check_structure(structure: Structure, min_distance: float = 1e-3, where: str = "") -> Structure:
    """Reject structures no energy model can use; return the structure unchanged.

    **Raises:** `InputError` naming `where` (default: the structure's source) for non-finite
    coordinates or cell, a singular cell, mismatched shapes, or atoms closer than
    `min_distance` (overlapping atoms).
    """
    where = where or structure.source or "structure"
    if structure.frame:
        where = f"{where} (frame {structure.frame})"
    pos = np.asarray(structure.positions)
    if pos.ndim != 2 or pos.shape[1] not in (1, 2, 3) or pos.shape[0] == 0:
        raise InputError(f"{where}: positions must have shape (n_atoms, 2 or 3), got {pos.shape}")
    bad = ~np.isfinite(pos).all(axis=1)
    if bad.any():
        atoms = np.flatnonzero(bad)
        raise InputError(
            f"{where}: non-finite (NaN or infinite) coordinates for {atoms.size} atom(s), "
            f"first atom {int(atoms[0])}: {pos[atoms[0]].tolist()}"
        )
    if structure.fixed is not None and np.asarray(structure.fixed).shape != (pos.shape[0],):
        raise InputError(f"{where}: {np.asarray(structure.fixed).shape} fixed-atom flags for {pos.shape[0]} atoms")
    if np.asarray(structure.species).shape != (pos.shape[0],):
        raise InputError(f"{where}: {np.asarray(structure.species).shape} species for {pos.shape[0]} atoms")
    cell = None if structure.cell is None else np.asarray(structure.cell, dtype=np.float64)
    if cell is not None:
        if cell.shape != (pos.shape[1],) * 2:
            raise InputError(f"{where}: cell has shape {cell.shape}, expected {(pos.shape[1],) * 2}")
        if not np.isfinite(cell).all():
            raise InputError(f"{where}: non-finite cell {cell.tolist()}")
        periodic = [i for i, p in enumerate(structure.pbc) if p]
        if periodic and abs(np.linalg.det(cell)) < 1e-12 * max(1.0, np.abs(cell).max()) ** pos.shape[1]:
            raise InputError(f"{where}: the periodic cell is singular (zero volume): {cell.tolist()}")
    _check_labels(structure, where)
    pairs = _pairs_closer_than(pos, cell, structure.pbc, float(min_distance))
    if pairs:
        i, j, dist = pairs[0]
        raise InputError(
            f"{where}: overlapping atoms {i} and {j} at distance {dist:.3g} "
            f"(< structure.min_distance = {min_distance:g} {structure.length_units})"
        )
    return structure


def _check_labels(structure: Structure, where: str) -> None:
    """The identifiers a reader attaches: atom IDs, species table, origin, images."""
    n, d = structure.positions.shape
    species = np.asarray(structure.species)
    names = tuple(structure.species_names)
    if species.size and (species.dtype.kind not in "iu" or species.min() < 0 or species.max() >= len(names)):
        raise InputError(f"{where}: species indices must be integers in 0..{len(names) - 1} "
                         f"(the species table {list(names)})")
    if len(set(names)) != len(names):
        raise InputError(f"{where}: the species table {list(names)} names a species twice")
    if structure.atom_ids is not None:
        ids = np.asarray(structure.atom_ids)
        if ids.shape != (n,) or ids.dtype.kind not in "iu":
            raise InputError(f"{where}: atom_ids must be {n} integers, got shape {ids.shape} of {ids.dtype}")
        if np.unique(ids).size != n:
            raise InputError(f"{where}: atom IDs are not unique")
    if structure.species_types is not None and len(structure.species_types) != len(names):
        raise InputError(f"{where}: {len(structure.species_types)} species types for {len(names)} species")
    if structure.origin is not None and np.shape(structure.origin) != (d,):
        raise InputError(f"{where}: the cell origin must have {d} components, got {np.shape(structure.origin)}")
    if structure.image is not None and np.shape(structure.image) != (n, d):
        raise InputError(f"{where}: image must have shape {(n, d)}, got {np.shape(structure.image)}")


#: Fractional coordinates within this of 1 wrap to (just below) 0, so that round-off in
#: one format or another never puts an atom at opposite faces of the cell.
WRAP_TOLERANCE = 1e-9


def canonical(structure: Structure) -> Structure:
    """The structure with canonical coordinates: wrapped into the periodic cell.

    Along periodic directions every atom is moved by lattice vectors into the cell spanned
    from its origin (fractional coordinates in [0, 1), up to `WRAP_TOLERANCE`); the
    translations go into `image`, so that `positions + image @ cell` is unchanged. So a
    data file (unwrapped by its image flags) and a dump (wrapped) of one simulation give
    the same coordinates. Atom IDs default to 1, 2, … in file order. A sentence saying what
    was done joins `readings`.

    **Arguments:**

    - `structure`: a checked structure.

    **Returns:** the canonical `Structure`.
    """
    pos = np.asarray(structure.positions, dtype=np.float64)
    n, d = pos.shape
    ids = np.arange(1, n + 1) if structure.atom_ids is None else np.asarray(structure.atom_ids, np.int64)
    readings = list(structure.readings)
    if structure.atom_ids is None:
        readings.append("atom IDs: 1, 2, ... in file order (the format has none)")
    image = np.zeros((n, d), np.int64) if structure.image is None else np.asarray(structure.image, np.int64)
    periodic = np.asarray(structure.pbc, dtype=bool) if len(structure.pbc) == d else np.zeros(d, bool)
    if structure.cell is None or not periodic.any():
        readings.append("coordinates as read (no periodic direction)")
        return dataclasses.replace(structure, positions=pos, atom_ids=ids, image=image, readings=tuple(readings))
    cell = np.asarray(structure.cell, dtype=np.float64)
    origin = np.zeros(d) if structure.origin is None else np.asarray(structure.origin, np.float64)
    frac = np.linalg.solve(cell.T, (pos - origin).T).T
    shift = np.where(periodic[None, :], np.floor(frac + WRAP_TOLERANCE), 0.0).astype(np.int64)
    wrapped = origin + (frac - shift) @ cell
    moved = int(np.count_nonzero(shift.any(axis=1)))
    directions = "".join("xyz"[k] for k in range(d) if periodic[k])
    readings.append(
        f"coordinates wrapped into the cell from its origin along {directions} "
        f"({moved} of {n} atoms moved by a lattice vector; cell_image keeps the images)"
    )
    return dataclasses.replace(structure, positions=wrapped, atom_ids=ids, origin=origin,
                               image=image + shift, readings=tuple(readings))


# -- reading -----------------------------------------------------------------------------


def _read_file(path: str, fmt: str, options: Mapping, registry: Registry) -> Sequence[Structure]:
    reader = registry.get_structure_reader(fmt)
    if not os.path.exists(path):
        raise InputError(f"{path}: structure file not found")
    if not os.path.isfile(path):
        raise InputError(f"{path}: not a file")
    if not os.access(path, os.R_OK):
        raise InputError(f"{path}: cannot read structure file (permission denied)")
    try:
        frames = reader.read(path, dict(options))
    except InputError:
        raise
    except KeyboardInterrupt:
        raise
    except Exception as err:  # a reader that let an error through: its bug, say whose
        text = str(err).splitlines()[0] if str(err) else ""
        try:
            owner = registry.plugin_info(registry.owner("structure_reader", fmt)).describe()
        except PluginError:
            owner = "an unknown plugin"
        raise PluginError(
            f"{path}: reader {fmt!r} of plugin {owner} failed: {type(err).__name__}{': ' + text if text else ''} "
            f"(a bug in the reader, or a file it does not expect: report it to its authors, or set "
            f"structure.format to another reader)"
        ) from err
    frames = list(frames)
    if not frames:
        raise InputError(f"{path}: no structure found in the file (read as {fmt!r})")
    return frames


def read_structures(settings: StructureSettings, registry: Registry | None = None) -> list[Structure]:
    """The checked structures a config's `structure` section selects.

    **Arguments:**

    - `settings`: the resolved `structure` section (`cfg.structure`): files with the reader
      chosen for each when the config was loaded, or a generator; frames, reader options,
      `min_distance`.
    - `registry`: the plugin registry (default: `sensitiv.plugins.get_registry()`).

    **Returns:** a list of `Structure`s, one per selected frame of every file.
    """
    if settings.generator is not None:
        generated = generate(settings.generator)
        return [canonical(check_structure(generated, settings.min_distance, "structure.generator"))]
    registry = registry if registry is not None else get_registry()
    out = []
    for file in settings.files:
        path = file.path
        frames = _read_file(path, file.format, settings.options, registry)
        for index in select_frames(len(frames), settings.frames, f"{path}: structure.frames"):
            s = frames[index]
            if not isinstance(s, Structure):
                raise PluginError(f"{path}: reader {file.format!r} returned a {type(s).__name__}, not a "
                                  f"sensitiv.records.Structure (a bug in the reader: report it to its authors)")
            if s.frame != index or not s.source:
                s = dataclasses.replace(s, frame=index, source=s.source or path)
            out.append(canonical(check_structure(s, settings.min_distance, path)))
    return out


# -- fixed atoms ---------------------------------------------------------------------------

_AXES = {"x": 0, "y": 1, "z": 2}


def _in_region(positions: np.ndarray, region: Region, where: str) -> np.ndarray:
    """Which atoms a region selects (inside, or outside with `side: out`)."""
    d = positions.shape[1]

    def vector(values, key):
        if values is None:
            raise InputError(f"{where}.region: shape {region.shape!r} needs {key}")
        if len(values) != d:
            raise InputError(f"{where}.region.{key}: {len(values)} values for {d}-D positions")
        return values

    if region.shape == "block":
        lo = np.array([-np.inf if v is None else v for v in vector(region.lo, "lo")], dtype=np.float64)
        hi = np.array([np.inf if v is None else v for v in vector(region.hi, "hi")], dtype=np.float64)
        inside = ((positions >= lo) & (positions <= hi)).all(axis=1)
    else:
        if region.radius is None:
            raise InputError(f"{where}.region: shape {region.shape!r} needs radius")
        offset = positions - np.asarray(vector(region.center, "center"), dtype=np.float64)
        if region.shape == "cylinder":
            axis = _AXES[region.axis]
            if axis >= d:
                raise InputError(f"{where}.region.axis: {region.axis!r} does not exist in {d}-D")
            offset[:, axis] = 0.0
        inside = np.linalg.norm(offset, axis=1) <= region.radius
    return inside if region.side == "in" else ~inside


#: Buckets per doubling of the atom count (`atom_bucket`): padding adds at most 1/8.
BUCKETS_PER_OCTAVE = 8


def atom_bucket(n_atoms: int) -> int:
    """The atom count `n_atoms` is padded to: the next multiple of `2^(⌊log₂ n⌋ − 3)`
    (8 buckets per doubling: 100 → 104, 107 → 112, 129 → 144), so padding adds at most
    12.5 % of atoms while every count in a bucket shares the compiled programs.

    **Arguments:**

    - `n_atoms`: the structure's atom count (≥ 1).

    **Returns:** the bucket, `≥ n_atoms`.

    **Example:**

    ```python
    atom_bucket(107)   # 112
    ```
    """
    n = max(int(n_atoms), 1)
    step = 1 << max(0, n.bit_length() - 1 - int(math.log2(BUCKETS_PER_OCTAVE)))
    return -(-n // step) * step


def pad_structure(structure: Structure, n_atoms: int) -> Structure:
    """`structure` with phantom atoms appended up to `n_atoms` (`Structure.phantoms` set,
    even to 0): copies of the first atom, which a model that honors them masks out.

    **Arguments:**

    - `structure`: the structure (not padded yet).
    - `n_atoms`: the padded count, `≥ structure.n_atoms`.

    **Returns:** the padded `Structure` (its atom identifiers dropped: phantoms have none).

    **Example:**

    ```python
    padded = pad_structure(s, atom_bucket(s.n_atoms))
    ```
    """
    n = structure.n_atoms
    extra = int(n_atoms) - n
    if extra < 0 or structure.phantoms is not None:
        raise ValueError(f"pad_structure: cannot pad {n} atoms to {n_atoms}")

    def repeat_first(array):
        array = np.asarray(array)
        return np.concatenate([array, np.repeat(array[:1], extra, axis=0)])

    image = None if structure.image is None else np.concatenate(
        [np.asarray(structure.image), np.zeros((extra, structure.n_spatial), np.asarray(structure.image).dtype)])
    return dataclasses.replace(structure, positions=repeat_first(structure.positions),
                               species=repeat_first(structure.species), atom_ids=None, image=image,
                               fixed=None, phantoms=extra)


def fixed_atoms(structure: Structure, settings: FixedAtoms, where: str = "structure.fixed") -> np.ndarray | None:
    """The atoms held fixed: the union of the file's flags (with `from_file`), indices,
    atom ids (the file's, `Structure.atom_ids`, as LAMMPS groups name them; 1, 2, … in
    file order for formats without ids), species and a region; `None` when no atom is fixed.

    **Arguments:**

    - `structure`: the checked structure (its input positions select region members).
    - `settings`: `cfg.structure.fixed`.
    - `where`: the config key messages name.

    **Returns:** `(n_atoms,)` booleans, or `None`.

    **Raises:** `InputError` naming the key for an index or id beyond the structure, a
    species it does not have, or a region that does not fit its dimension.
    """
    n = structure.n_atoms
    source = structure.source or "the structure"
    mask = np.zeros(n, dtype=bool)
    if settings.from_file and structure.fixed is not None:
        mask |= np.asarray(structure.fixed, dtype=bool)
    if settings.indices is not None:
        index = np.asarray(settings.indices, dtype=np.int64)
        if index.size and index.max() >= n:
            raise InputError(f"{where}.indices: {int(index.max())} is beyond the {n} atoms of {source}")
        mask[index] = True
    if settings.ids is not None:
        # The file's own atom ids (LAMMPS) where it has them, else 1, 2, … in file order.
        ids = np.arange(1, n + 1) if structure.atom_ids is None else np.asarray(structure.atom_ids, np.int64)
        wanted = np.asarray(settings.ids, dtype=np.int64)
        missing = np.setdiff1d(wanted, ids)
        if missing.size:
            raise InputError(f"{where}.ids: atom id {int(missing[0])} is not in {source} "
                             f"(its ids run {int(ids.min())}..{int(ids.max())})")
        mask |= np.isin(ids, wanted)
    if settings.species is not None:
        names = list(structure.species_names)
        for name in settings.species:
            if name not in names:
                raise InputError(f"{where}.species: {name!r} is not a species of {source} "
                                 f"(it has {', '.join(names)})")
            mask |= np.asarray(structure.species) == names.index(name)
    if settings.region is not None:
        mask |= _in_region(np.asarray(structure.positions, dtype=np.float64), settings.region, where)
    if mask.all():
        raise InputError(f"{where}: every atom of {source} is fixed; nothing is left to relax")
    return mask if mask.any() else None
