"""Structure readers: LAMMPS data files and dumps (`sensitiv_ase.lammps`), and the
element-named formats through `ase.io.read`.

Every reader returns `sensitiv.records.Structure`s in ångström (LAMMPS `lj` units stay
reduced), with the cell as rows, the periodicity flags and `readings` — how it read what
the file leaves open. LAMMPS species are the file's atom types in type order; the
element-named formats (extended XYZ, POSCAR, CIF) number species in the order of the
`species` option, or else in order of first appearance in the file (and say so).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from sensitiv.errors import InputError
from sensitiv.records import Structure

from .lammps import UNIT_STYLES, read_lammps_data, read_lammps_dump

__all__ = ["atoms_to_structure", "read_with_ase", "READERS"]


def _species_option(description: str) -> dict:
    """Schema of a `species` reader option: distinct names, one description per reader."""
    return {
        "type": "array",
        "items": {"type": "string", "minLength": 1},
        "minItems": 1,
        "uniqueItems": True,
        "description": description,
    }


_TYPE_SPECIES_OPTION = _species_option(
    "Name of each LAMMPS atom type, in type order (type 1 first): species k is "
    "LAMMPS type k + 1. Without it names come from the file (type labels, element or mass "
    "column, Masses section) or are type1, type2, ...; never atomic number = type."
)
_ELEMENT_SPECIES_OPTION = _species_option(
    "The species table in index order: species k is the k-th name (every element "
    "of the file must be listed). Without it species are numbered in order of first appearance."
)
_UNITS_OPTION = {
    "enum": list(UNIT_STYLES),
    "description": "LAMMPS units style of the file; lengths are converted to angstrom ('lj' stays "
    "reduced). Default: a dump's 'ITEM: UNITS' line, else 'metal' (said in the readings).",
}
_PBC_OPTION = {
    "type": "array",
    "items": {"type": "boolean"},
    "minItems": 3,
    "maxItems": 3,
    "description": "Periodicity along x, y, z (LAMMPS' boundary command, which a data file does "
    "not record). Default: periodic in every direction.",
}

# name -> (ase format or None for sensitiv_ase.lammps, file-name endings, description, options)
READERS: dict[str, tuple[str | None, tuple[str, ...], str, dict]] = {
    "extxyz": (
        "extxyz",
        (".extxyz", ".xyz"),
        "extended XYZ (cell, pbc and per-atom properties in the comment line)",
        {"species": _ELEMENT_SPECIES_OPTION},
    ),
    "lammps-data": (
        None,
        (".data", ".lmp", ".lammps-data"),
        "LAMMPS data file (species by atom type, atoms by ID, image flags applied)",
        {
            "atom_style": {
                "enum": ["atomic", "charge", "full", "molecular", "bond", "angle"],
                "description": "LAMMPS atom_style of the Atoms section (read from its comment when omitted).",
            },
            "species": _TYPE_SPECIES_OPTION,
            "units": _UNITS_OPTION,
            "pbc": _PBC_OPTION,
        },
    ),
    "lammps-dump": (
        None,
        (".dump", ".lammpstrj", ".lammps-dump"),
        "LAMMPS text dump (trajectory; species by atom type, atoms by ID)",
        {"species": _TYPE_SPECIES_OPTION, "units": _UNITS_OPTION},
    ),
    "vasp": (
        "vasp",
        ("poscar", "contcar", ".poscar", ".vasp"),
        "VASP POSCAR/CONTCAR",
        {"species": _ELEMENT_SPECIES_OPTION},
    ),
    "cif": ("cif", (".cif",), "Crystallographic Information File", {"species": _ELEMENT_SPECIES_OPTION}),
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


def atoms_to_structure(atoms, source: str = "", frame: int = 0, species: list[str] | None = None) -> Structure:
    """Convert an `ase.Atoms` to a `Structure`.

    **Arguments:**

    - `atoms`: the ASE atoms.
    - `source`: the path it came from; `frame`: its index there.
    - `species`: the species table in index order; default: order of first appearance.

    **Raises:** `InputError` when `species` misses an element of `atoms`.
    """
    symbols = atoms.get_chemical_symbols()
    if species:
        names = tuple(species)
        missing = sorted(set(symbols) - set(names))
        if missing:
            raise InputError(
                f"{source}: element(s) {', '.join(missing)} of the file are not in structure.options.species "
                f"({', '.join(names)}); list every species"
            )
        how = "species in the order of structure.options.species"
    else:
        names = tuple(dict.fromkeys(symbols))
        how = ("species in order of first appearance in the file"
               + ("" if len(names) == 1 else "; set structure.options.species to fix the order"))
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
    table = ", ".join(f"{k} = {name}" for k, name in enumerate(names))
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
        readings=(f"{how} ({table})",),
    )


def read_with_ase(path: str, name: str, options: Mapping[str, Any] | None = None) -> list[Structure]:
    """Read every frame of `path` with the reader `name` of `READERS`.

    **Raises:** `InputError` naming the path and format when the file cannot be parsed.
    """
    options = dict(options or {})
    if name == "lammps-data":
        return read_lammps_data(path, options)
    if name == "lammps-dump":
        return read_lammps_dump(path, options)
    import ase.io

    ase_format = READERS[name][0]
    try:
        frames = ase.io.read(path, index=":", format=ase_format)
    except FileNotFoundError:
        raise InputError(f"{path}: structure file not found") from None
    except PermissionError:
        raise InputError(f"{path}: cannot read structure file (permission denied)") from None
    except Exception as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InputError(
            f"{path}: cannot read as {name!r} ({type(err).__name__}: {first}); check the file or structure.format"
        ) from None
    if not isinstance(frames, list):
        frames = [frames]
    if not frames:
        raise InputError(f"{path}: no structure found in the file (read as {name!r})")
    species = options.get("species")
    if not species:
        # One table for every frame: the order of first appearance over the whole file.
        species = list(dict.fromkeys(s for atoms in frames for s in atoms.get_chemical_symbols()))
        structures = [atoms_to_structure(atoms, source=path, frame=i, species=species) for i, atoms in enumerate(frames)]
        table = ", ".join(f"{k} = {s}" for k, s in enumerate(species))
        note = "species in order of first appearance in the file" + (
            "" if len(species) == 1 else "; set structure.options.species to fix the order")
        import dataclasses

        return [dataclasses.replace(s, readings=(f"{note} ({table})",)) for s in structures]
    return [atoms_to_structure(atoms, source=path, frame=i, species=species) for i, atoms in enumerate(frames)]
