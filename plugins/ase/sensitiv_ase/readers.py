"""Structure readers built on `ase.io.read`.

Every reader returns `sensitiv.records.Structure`s in ångström (ASE converts LAMMPS
`units`), with species named by element symbol (or by the `species` option for LAMMPS
types), the cell as rows and the periodicity flags.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sensitiv.errors import InputError
from sensitiv.records import Structure

__all__ = ["atoms_to_structure", "read_with_ase", "READERS"]

_SPECIES_OPTION = {
    "type": "array",
    "items": {"type": "string", "minLength": 1},
    "minItems": 1,
    "description": "Element of each LAMMPS atom type, in type order (type 1 first); "
    "without it ASE takes type n for the element with atomic number n.",
}
_UNITS_OPTION = {
    "enum": ["metal", "real", "si", "cgs", "electron", "micro", "nano"],
    "default": "metal",
    "description": "LAMMPS units style of the file; coordinates are converted to angstrom.",
}

# name -> (ase format, file-name endings, description, options schema properties)
READERS: dict[str, tuple[str, tuple[str, ...], str, dict]] = {
    "extxyz": (
        "extxyz",
        (".extxyz", ".xyz"),
        "extended XYZ (cell, pbc and per-atom properties in the comment line)",
        {},
    ),
    "lammps-data": (
        "lammps-data",
        (".data", ".lmp", ".lammps-data"),
        "LAMMPS data file",
        {
            "atom_style": {
                "enum": ["atomic", "charge", "full", "molecular", "bond", "angle"],
                "description": "LAMMPS atom_style of the Atoms section (read from its comment when omitted).",
            },
            "species": _SPECIES_OPTION,
            "units": _UNITS_OPTION,
        },
    ),
    "lammps-dump": (
        "lammps-dump-text",
        (".dump", ".lammpstrj", ".lammps-dump"),
        "LAMMPS text dump (trajectory)",
        {"species": _SPECIES_OPTION, "units": _UNITS_OPTION},
    ),
    "vasp": (
        "vasp",
        ("poscar", "contcar", ".poscar", ".vasp"),
        "VASP POSCAR/CONTCAR",
        {},
    ),
    "cif": ("cif", (".cif",), "Crystallographic Information File", {}),
}


def _plain(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray) and value.size <= 64:
        return value.tolist()
    return None


def fixed_atoms(atoms, source: str = "") -> np.ndarray | None:
    """The atoms ASE's constraints hold fixed, `(n,)` booleans, or `None` without any.

    `FixAtoms` (ASE trajectories) fixes whole atoms; `FixCartesian` (what extended XYZ
    `move_mask` reads back as) counts where it fixes every direction of an atom. Other
    constraints (partial `FixCartesian`, `FixBondLength`, filters) are refused: the
    equilibrium would not be the one the file describes.

    **Raises:** `InputError` naming the source and the constraint.
    """
    if not atoms.constraints:
        return None
    mask = np.zeros(len(atoms), dtype=bool)
    for constraint in atoms.constraints:
        kind = type(constraint).__name__
        if kind == "FixAtoms":
            mask[np.asarray(constraint.get_indices(), dtype=np.int64)] = True
        elif kind == "FixCartesian":
            index = np.atleast_1d(np.asarray(constraint.index, dtype=np.int64))
            directions = np.broadcast_to(np.asarray(constraint.mask, dtype=bool).reshape(-1, 3), (index.size, 3))
            if (directions.any(axis=1) & ~directions.all(axis=1)).any():
                raise InputError(f"{source or 'ase.Atoms'}: FixCartesian fixing some directions of an atom is "
                                 "not supported (only whole atoms can be fixed); fix all three or none")
            mask[index[directions.all(axis=1)]] = True
        else:
            raise InputError(f"{source or 'ase.Atoms'}: ASE constraint {kind} is not supported (only whole "
                             "atoms can be fixed: FixAtoms); remove it or use structure.fixed")
    return mask


def atoms_to_structure(atoms, source: str = "", frame: int = 0) -> Structure:
    """Convert an `ase.Atoms` to a `Structure` (species in order of first appearance).

    **Arguments:**

    - `atoms`: the ASE atoms.
    - `source`: the path it came from; `frame`: its index there.
    """
    symbols = atoms.get_chemical_symbols()
    names = tuple(dict.fromkeys(symbols))
    index = {name: i for i, name in enumerate(names)}
    pbc = tuple(bool(p) for p in atoms.pbc)
    cell = np.asarray(atoms.cell.array, dtype=np.float64)
    if not any(pbc):
        cell = None
    info = {}
    for key, value in atoms.info.items():
        plain = _plain(value)
        if plain is not None:
            info[str(key)] = plain
    return Structure(
        fixed=fixed_atoms(atoms, source),
        positions=np.asarray(atoms.get_positions(), dtype=np.float64),
        species=np.array([index[s] for s in symbols], dtype=np.int64),
        species_names=names,
        cell=cell,
        pbc=pbc,
        length_units="angstrom",
        source=source,
        frame=frame,
        info=info,
    )


def read_with_ase(path: str, name: str, options: Mapping[str, Any] | None = None) -> list[Structure]:
    """Read every frame of `path` with the reader `name` of `READERS`.

    **Raises:** `InputError` naming the path and format when ASE cannot parse the file.
    """
    import ase.data
    import ase.io

    options = dict(options or {})
    ase_format = READERS[name][0]
    kwargs: dict[str, Any] = {}
    species = options.get("species")
    if name == "lammps-data":
        if species:
            unknown = [s for s in species if s not in ase.data.atomic_numbers]
            if unknown:
                raise InputError(f"{path}: unknown element(s) {unknown} in structure.options.species")
            kwargs["Z_of_type"] = {i + 1: ase.data.atomic_numbers[s] for i, s in enumerate(species)}
        if "atom_style" in options:
            kwargs["atom_style"] = options["atom_style"]
        kwargs["units"] = options.get("units", "metal")
    elif name == "lammps-dump":
        if species:
            kwargs["specorder"] = list(species)
        kwargs["units"] = options.get("units", "metal")
    try:
        frames = ase.io.read(path, index=":", format=ase_format, **kwargs)
    except FileNotFoundError:
        raise InputError(f"{path}: structure file not found") from None
    except PermissionError:
        raise InputError(f"{path}: cannot read structure file (permission denied)") from None
    except Exception as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InputError(f"{path}: cannot read as {name!r} ({type(err).__name__}: {first})") from None
    if not isinstance(frames, list):
        frames = [frames]
    if not frames:
        raise InputError(f"{path}: no structure found in the file (read as {name!r})")
    if name.startswith("lammps") and species:
        n_types = len(species)
        for atoms in frames:
            used = set(atoms.get_chemical_symbols())
            if not used <= set(species):
                raise InputError(
                    f"{path}: the file has more atom types than structure.options.species ({n_types})"
                )
    return [atoms_to_structure(atoms, source=path, frame=i) for i, atoms in enumerate(frames)]
