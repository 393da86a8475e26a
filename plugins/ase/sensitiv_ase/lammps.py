"""LAMMPS data files and text dumps, read so that nothing is silently reinterpreted.

**Species are the file's own atom types**: species index `k` is LAMMPS type `k + 1`,
whatever the order of the atoms, so per-species parameters written in type order (as
`pair_coeff i j` writes them) mean what they say. Every species keeps its LAMMPS type
(`Structure.species_types`), every atom its LAMMPS ID (`Structure.atom_ids`); atoms are
sorted by ID, so a data file and a dump of one simulation list them alike.

**Species names** come, in this order, from the `species` option (type 1 first), the
file's own names (the `Atom Type Labels` section, or a dump's `element` column), the
masses (a data file's `Masses` section, or a dump's `mass` column) when each matches one
element within 0.1 u and no two types share it, and otherwise `type1`, `type2`, ... —
never atomic number = type. A `species` option that contradicts the file (its type 1 has
the mass of the element it calls type 2) is refused. `Structure.readings` says which rule
named each species, and which units and periodicity were assumed.

**Coordinates** are unwrapped where the file says how (image flags of a data file, a
dump's `ix iy iz` or `xu yu zu` columns); the pipeline then wraps them into the cell from
the box origin (`Structure.origin` = `xlo ylo zlo`) and records the image of each atom.

**Units**: `units` (a LAMMPS unit style) converts lengths to ångström; `lj` keeps reduced
units (length units `"1"`). A dump's own `ITEM: UNITS` line is used when the option is
absent and must agree with it when present; otherwise `metal` is assumed, and said.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sensitiv.errors import InputError
from sensitiv.records import Structure

__all__ = ["read_lammps_data", "read_lammps_dump", "UNIT_STYLES", "DEFAULT_UNITS"]

#: The LAMMPS unit styles the readers convert (and `lj`, kept reduced).
UNIT_STYLES = ("metal", "real", "si", "cgs", "electron", "micro", "nano", "lj")
DEFAULT_UNITS = "metal"
#: A mass names an element when it is this close to the element's standard mass (u).
MASS_TOLERANCE = 0.1


# -- units and names ---------------------------------------------------------------------


def _length_scale(units: str) -> tuple[float, str]:
    """(factor to the output length units, those units) of a LAMMPS unit style."""
    if units == "lj":
        return 1.0, "1"
    from ase.calculators.lammps import convert

    return float(convert(1.0, "distance", units, "ASE")), "angstrom"


def _mass_in_u(mass: float, units: str) -> float:
    from ase.calculators.lammps import convert

    return float(convert(mass, "mass", units, "ASE"))


def _element_of_mass(mass_u: float) -> str | None:
    """The element whose standard atomic mass is within `MASS_TOLERANCE` of `mass_u`."""
    from ase.data import atomic_masses, chemical_symbols

    distance = np.abs(np.asarray(atomic_masses[1:]) - mass_u)
    z = int(np.argmin(distance)) + 1
    return chemical_symbols[z] if distance[z - 1] <= MASS_TOLERANCE else None


def _standard_mass(symbol: str) -> float | None:
    from ase.data import atomic_masses, atomic_numbers

    z = atomic_numbers.get(symbol)
    return None if z is None or z == 0 else float(atomic_masses[z])


def _units(path: str, options: Mapping[str, Any], file_units: str | None) -> tuple[str, str]:
    """The unit style and the sentence saying where it came from."""
    given = options.get("units")
    if file_units is not None and given is not None and given != file_units:
        raise InputError(
            f"{path}: structure.options.units is {given!r} but the dump says 'ITEM: UNITS {file_units}'; "
            f"remove the option or make it {file_units!r}"
        )
    if file_units is not None:
        if file_units not in UNIT_STYLES:
            raise InputError(f"{path}: unknown LAMMPS units {file_units!r} in 'ITEM: UNITS'")
        units, how = file_units, "from the dump's ITEM: UNITS line"
    elif given is not None:
        units, how = given, "from structure.options.units"
    else:
        units, how = DEFAULT_UNITS, "assumed: the file does not say; set structure.options.units"
    _, length = _length_scale(units)
    where = "reduced lengths (units '1')" if units == "lj" else "lengths converted to angstrom"
    return units, f"LAMMPS units {units!r} ({how}); {where}"


def _species_table(
    path: str,
    n_types: int,
    options: Mapping[str, Any],
    *,
    labels: Mapping[int, str],
    masses: Mapping[int, float],
    units: str,
    labels_from: str,
    masses_from: str,
) -> tuple[tuple[str, ...], str]:
    """Names of species 0..n-1 (LAMMPS types 1..n) and the sentence saying how they were named."""
    option = options.get("species")
    elements_of_mass: dict[int, str | None] = {}
    if units != "lj":
        elements_of_mass = {t: _element_of_mass(_mass_in_u(m, units)) for t, m in masses.items()}
    if option:
        option = [str(s) for s in option]
        if len(option) < n_types:
            raise InputError(
                f"{path}: the file has {n_types} atom types but structure.options.species names "
                f"{len(option)} ({', '.join(option)}); give one name per LAMMPS type, type 1 first"
            )
        for t in range(1, n_types + 1):
            said = option[t - 1]
            own = labels.get(t) or elements_of_mass.get(t)
            if own is not None and own != said and own in option:
                source = labels_from if t in labels else f"{masses_from} (mass {masses[t]:g})"
                raise InputError(
                    f"{path}: structure.options.species calls LAMMPS type {t} {said!r}, but the "
                    f"file's {source} makes it {own!r}, which the option gives to type "
                    f"{option.index(own) + 1}; list the names in type order, type 1 first"
                )
        names = tuple(option)
        how = "names from structure.options.species"
    elif labels and all(t in labels for t in range(1, n_types + 1)):
        names = tuple(labels[t] for t in range(1, n_types + 1))
        how = f"names from the file's {labels_from}"
    elif (
        elements_of_mass
        and all(elements_of_mass.get(t) for t in range(1, n_types + 1))
        and len({elements_of_mass[t] for t in range(1, n_types + 1)}) == n_types
    ):
        names = tuple(elements_of_mass[t] for t in range(1, n_types + 1))
        how = "names: the element of each type's mass (" + ", ".join(
            f"{_mass_in_u(masses[t], units):.6g}" for t in range(1, n_types + 1)) + f" u, {masses_from})"
    else:
        names = tuple(f"type{t}" for t in range(1, n_types + 1))
        if units == "lj" and masses:
            why = "masses in lj units name no element"
        elif masses:
            why = "the masses do not name one distinct element per type"
        else:
            why = f"the file has no {masses_from} or {labels_from}"
        how = f"names: type numbers ({why}; set structure.options.species to name them)"
    if len(set(names)) != len(names):
        raise InputError(f"{path}: species names must differ, got {list(names)}")
    return names, f"species k = LAMMPS type k + 1, {how}"


def _check_types(path: str, types: np.ndarray, n_types: int, what: str) -> None:
    if types.size and (types.min() < 1 or types.max() > n_types):
        bad = int(types.max() if types.max() > n_types else types.min())
        raise InputError(f"{path}: atom type {bad} outside 1..{n_types} ({what})")


def _sorted_by_id(path: str, ids: np.ndarray, where: str) -> np.ndarray:
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    if sorted_ids.size > 1 and np.any(sorted_ids[1:] == sorted_ids[:-1]):
        dup = int(sorted_ids[1:][sorted_ids[1:] == sorted_ids[:-1]][0])
        raise InputError(f"{path}: atom ID {dup} appears twice{where}")
    return order


# -- data files ---------------------------------------------------------------------------

_SECTIONS = (
    "Atoms", "Velocities", "Masses", "Ellipsoids", "Lines", "Triangles", "Bodies", "Bonds", "Angles",
    "Dihedrals", "Impropers", "Pair Coeffs", "PairIJ Coeffs", "Bond Coeffs", "Angle Coeffs",
    "Dihedral Coeffs", "Improper Coeffs", "BondBond Coeffs", "BondAngle Coeffs",
    "MiddleBondTorsion Coeffs", "EndBondTorsion Coeffs", "AngleTorsion Coeffs",
    "AngleAngleTorsion Coeffs", "BondBond13 Coeffs", "AngleAngle Coeffs", "Atom Type Labels",
    "Bond Type Labels", "Angle Type Labels", "Dihedral Type Labels", "Improper Type Labels",
)
_SECTION = re.compile(r"^(" + "|".join(s.replace(" ", r"\s+") for s in _SECTIONS) + r")\b")


def _scan_data(path: str) -> dict[str, Any]:
    """Header counts, masses, type labels and the Atoms section's row count of a data file."""
    try:
        with open(path, encoding="utf-8", errors="strict") as f:
            lines = f.read().splitlines()
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a LAMMPS data file (binary content); check structure.format") from None
    found: dict[str, Any] = {"atoms": None, "types": None, "masses": {}, "labels": {}, "rows": 0,
                             "has_atoms": False}
    section = None
    for number, raw in enumerate(lines[1:], start=2):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = _SECTION.match(line)
        if match:
            section = " ".join(match.group(1).split())
            found["has_atoms"] |= section == "Atoms"
            continue
        fields = line.split()
        try:
            if section is None:
                if line.endswith("atom types"):
                    found["types"] = int(fields[0])
                elif len(fields) == 2 and fields[1] == "atoms":
                    found["atoms"] = int(fields[0])
            elif section == "Masses":
                found["masses"][int(fields[0])] = float(fields[1])
            elif section == "Atom Type Labels":
                found["labels"][int(fields[0])] = fields[1]
            elif section == "Atoms":
                found["rows"] += 1
        except (ValueError, IndexError):
            where = f"the {section} section" if section else "the header"
            raise InputError(
                f"{path}:{number}: cannot read {where}: {raw.strip()[:60]!r}; not a LAMMPS data file?"
            ) from None
    if found["atoms"] is None or not found["has_atoms"]:
        raise InputError(
            f"{path}: not a LAMMPS data file (no 'N atoms' header line or no Atoms section); "
            f"check structure.format"
        )
    if found["rows"] != found["atoms"]:
        raise InputError(
            f"{path}: the Atoms section has {found['rows']} rows but the header announces "
            f"{found['atoms']} atoms (truncated or edited file?)"
        )
    return found


class _TypeIsNumber(dict):
    """`Z_of_type` for ASE that keeps each LAMMPS type as the atoms' number, so that neither
    ASE's mass guess nor its type = atomic number rule applies."""

    def __missing__(self, key):
        return int(key)


def read_lammps_data(path: str, options: Mapping[str, Any] | None = None) -> list[Structure]:
    """Read a LAMMPS data file: species by type, atoms by ID, unwrapped by image flags.

    **Arguments:**

    - `path`: the data file.
    - `options`: `species` (names of types 1, 2, …), `units` (LAMMPS style, default
      `metal`), `atom_style` (read from the `Atoms` comment when omitted), `pbc`
      (periodicity per direction; a data file does not record LAMMPS' `boundary`,
      default periodic everywhere).

    **Returns:** one `Structure`.

    **Raises:** `InputError` naming the path and the problem.
    """
    from ase.io.lammpsdata import read_lammps_data as ase_read

    options = dict(options or {})
    scan = _scan_data(path)
    units, units_reading = _units(path, options, None)
    scale, length_units = _length_scale(units)
    try:
        with open(path, encoding="utf-8") as f:
            atoms = ase_read(f, Z_of_type=_TypeIsNumber({1: 1}), sort_by_id=True, read_image_flags=True,
                             units="metal", atom_style=options.get("atom_style"))
    except KeyError as err:
        key = err.args[0] if err.args else None
        if isinstance(key, (int, np.integer)):
            raise InputError(
                f"{path}: atom type {int(key)} has no entry in the Masses section (the header declares "
                f"{scan['types']} atom types)"
            ) from None
        raise InputError(f"{path}: cannot read as 'lammps-data' (KeyError: {key!r})") from None
    except Exception as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        hint = "; set structure.options.atom_style" if "style" in first.lower() else ""
        raise InputError(f"{path}: cannot read as 'lammps-data' ({type(err).__name__}: {first}){hint}") from None
    types = np.asarray(atoms.numbers, dtype=np.int64)
    n_types = scan["types"] if scan["types"] is not None else int(types.max(initial=0))
    _check_types(path, types, n_types, f"the header declares {n_types} atom types")
    ids = np.asarray(atoms.arrays["id"], dtype=np.int64)
    _sorted_by_id(path, ids, "")
    names, species_reading = _species_table(
        path, n_types, options, labels=scan["labels"], masses=scan["masses"], units=units,
        labels_from="Atom Type Labels section", masses_from="Masses section",
    )
    option_pbc = options.get("pbc")
    pbc = tuple(bool(p) for p in option_pbc) if option_pbc is not None else (True, True, True)
    pbc_reading = (
        "periodicity from structure.options.pbc" if option_pbc is not None
        else "periodic in x, y and z (assumed: a data file does not record LAMMPS' boundary; "
        "set structure.options.pbc)"
    )
    return [
        Structure(
            positions=np.asarray(atoms.positions, dtype=np.float64) * scale,
            species=types - 1,
            species_names=names,
            cell=np.asarray(atoms.cell.array, dtype=np.float64) * scale,
            pbc=pbc,
            length_units=length_units,
            source=path,
            frame=0,
            info={"lammps_units": units},
            atom_ids=ids,
            species_types=tuple(range(1, len(names) + 1)),
            origin=np.asarray(atoms.get_celldisp(), dtype=np.float64).reshape(3) * scale,
            readings=(species_reading, units_reading, pbc_reading),
        )
    ]


# -- text dumps ---------------------------------------------------------------------------


def _box(path: str, number: int, header: str, rows: Sequence[str]) -> tuple[np.ndarray, np.ndarray, tuple]:
    """(cell rows, origin, pbc) of an `ITEM: BOX BOUNDS` block."""
    words = header.split()[3:]
    try:
        values = np.array([[float(x) for x in row.split()] for row in rows])
    except ValueError:
        raise InputError(f"{path}:{number}: cannot read the box bounds {list(rows)}") from None
    if values.shape[0] != 3 or values.shape[1] not in (2, 3, 4):
        raise InputError(f"{path}:{number}: expected 3 box-bound lines of 2 to 4 numbers, got {list(rows)}")
    flags = words[-3:] if len(words) >= 3 else ["pp", "pp", "pp"]
    pbc = tuple(flag.lower() == "pp" for flag in flags)
    if words[:1] == ["abc"]:  # general triclinic: rows a, b, c and the origin
        return values[:, :3].copy(), values[:, 3].copy(), pbc
    if values.shape[1] == 3:
        lo_b, hi_b, tilt = values[:, 0], values[:, 1], values[:, 2]
        named = [w for w in words if w in ("xy", "xz", "yz")]
        if len(named) == 3:
            tilt = tilt[[named.index(n) for n in ("xy", "xz", "yz")]]
        xy, xz, yz = tilt
    else:
        lo_b, hi_b = values[:, 0], values[:, 1]
        xy = xz = yz = 0.0
    # A triclinic dump gives the bounding box; the box itself is smaller by the tilts.
    xlo = lo_b[0] - min(0.0, xy, xz, xy + xz)
    xhi = hi_b[0] - max(0.0, xy, xz, xy + xz)
    ylo = lo_b[1] - min(0.0, yz)
    yhi = hi_b[1] - max(0.0, yz)
    zlo, zhi = lo_b[2], hi_b[2]
    cell = np.array([[xhi - xlo, 0.0, 0.0], [xy, yhi - ylo, 0.0], [xz, yz, zhi - zlo]])
    return cell, np.array([xlo, ylo, zlo]), pbc


def _columns(path: str, number: int, names: list[str], rows: list[str]) -> dict[str, np.ndarray]:
    table = [row.split() for row in rows]
    for k, fields in enumerate(table):
        if len(fields) != len(names):
            raise InputError(
                f"{path}:{number + k + 1}: {len(fields)} values where 'ITEM: ATOMS' names {len(names)} "
                f"columns ({' '.join(names)}); truncated or garbled dump"
            )
    text = np.array(table, dtype=object).reshape(len(table), len(names))
    out: dict[str, np.ndarray] = {}
    for j, name in enumerate(names):
        if name == "element":
            out[name] = text[:, j].astype(str)
            continue
        kind = np.int64 if name in ("id", "type", "ix", "iy", "iz") else np.float64
        try:
            out[name] = text[:, j].astype(np.float64)
            if kind is np.int64:
                if not np.all(out[name] == np.round(out[name])):
                    raise ValueError
                out[name] = out[name].astype(np.int64)
        except ValueError:
            bad = next(k for k, v in enumerate(text[:, j]) if not _is_number(v, kind is np.int64))
            raise InputError(
                f"{path}:{number + bad + 1}: column {name!r} holds {text[bad, j]!r}, not a number"
            ) from None
    return out


def _is_number(text: str, integer: bool) -> bool:
    try:
        value = float(text)
    except ValueError:
        return False
    return not integer or value == round(value)


def _positions(path: str, cols: Mapping[str, np.ndarray], cell: np.ndarray, origin: np.ndarray):
    """Cartesian positions, unwrapped where the dump says how, and the columns used."""
    def have(*names):
        return all(n in cols for n in names)

    image = np.stack([cols[k] for k in ("ix", "iy", "iz")], axis=1) if have("ix", "iy", "iz") else None
    if have("xu", "yu", "zu"):
        return np.stack([cols["xu"], cols["yu"], cols["zu"]], axis=1), "xu yu zu (unwrapped)"
    if have("xsu", "ysu", "zsu"):
        frac = np.stack([cols["xsu"], cols["ysu"], cols["zsu"]], axis=1)
        return origin + frac @ cell, "xsu ysu zsu (scaled, unwrapped)"
    if have("x", "y", "z"):
        x = np.stack([cols["x"], cols["y"], cols["z"]], axis=1)
        if image is not None:
            return x + image @ cell, "x y z unwrapped by ix iy iz"
        return x, "x y z"
    if have("xs", "ys", "zs"):
        frac = np.stack([cols["xs"], cols["ys"], cols["zs"]], axis=1)
        if image is not None:
            frac = frac + image
        return origin + frac @ cell, "xs ys zs (scaled)" + (" unwrapped by ix iy iz" if image is not None else "")
    raise InputError(
        f"{path}: the dump has no coordinates (columns {' '.join(cols)}); dump x y z, xs ys zs, "
        f"xu yu zu or xsu ysu zsu"
    )


def _dump_frames(path: str) -> tuple[list[dict[str, Any]], str | None]:
    """The raw frames of a text dump (and its ITEM: UNITS, if any)."""
    try:
        with open(path, encoding="utf-8", errors="strict") as f:
            lines = f.read().splitlines()
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a LAMMPS text dump (binary content); check structure.format") from None
    frames: list[dict[str, Any]] = []
    units = None
    i, n_lines = 0, len(lines)

    def value_line(k: int, what: str) -> str:
        if k >= n_lines:
            raise InputError(f"{path}: the file ends inside {what} (truncated dump)")
        return lines[k]

    while i < n_lines:
        line = lines[i].strip()
        if not line:
            i += 1
            continue
        if not line.startswith("ITEM: TIMESTEP"):
            raise InputError(
                f"{path}:{i + 1}: expected 'ITEM: TIMESTEP', found {line[:50]!r}; not a LAMMPS text dump "
                f"(check structure.format)"
            )
        frame: dict[str, Any] = {"line": i + 1}
        try:
            frame["timestep"] = int(value_line(i + 1, "ITEM: TIMESTEP").split()[0])
        except (ValueError, IndexError):
            raise InputError(f"{path}:{i + 2}: cannot read the time step {lines[i + 1][:40]!r}") from None
        i += 2
        while i < n_lines and not lines[i].startswith("ITEM: ATOMS"):
            item = lines[i].strip()
            if item.startswith("ITEM: NUMBER OF ATOMS"):
                try:
                    frame["n"] = int(value_line(i + 1, item).split()[0])
                except (ValueError, IndexError):
                    raise InputError(f"{path}:{i + 2}: cannot read the number of atoms") from None
                i += 2
            elif item.startswith("ITEM: BOX BOUNDS"):
                rows = [value_line(i + k, item) for k in (1, 2, 3)]
                frame["box"] = _box(path, i + 1, item, rows)
                i += 4
            elif item.startswith("ITEM: UNITS"):
                units = value_line(i + 1, item).strip()
                i += 2
            elif item.startswith("ITEM: TIME"):
                i += 2
            elif item.startswith("ITEM: TIMESTEP"):
                break
            elif not item:
                i += 1
            else:
                raise InputError(f"{path}:{i + 1}: unexpected line {item[:50]!r} in a dump frame header")
        if i >= n_lines or not lines[i].startswith("ITEM: ATOMS"):
            raise InputError(
                f"{path}: the frame starting at line {frame['line']} has no 'ITEM: ATOMS' section "
                f"(truncated dump)"
            )
        if "n" not in frame or "box" not in frame:
            raise InputError(
                f"{path}:{i + 1}: the frame starting at line {frame['line']} lacks "
                f"{'ITEM: NUMBER OF ATOMS' if 'n' not in frame else 'ITEM: BOX BOUNDS'}"
            )
        names = lines[i].split()[2:]
        n = frame["n"]
        rows = lines[i + 1: i + 1 + n]
        if len(rows) < n or any(r.startswith("ITEM:") for r in rows):
            got = next((k for k, r in enumerate(rows) if r.startswith("ITEM:")), len(rows))
            raise InputError(
                f"{path}: frame {len(frames)} (time step {frame['timestep']}) announces {n} atoms but "
                f"has {got} (truncated dump)"
            )
        frame["columns"] = _columns(path, i + 1, names, rows)
        frames.append(frame)
        i += 1 + n
    if not frames:
        raise InputError(f"{path}: empty file: no dump frame found")
    return frames, units


def read_lammps_dump(path: str, options: Mapping[str, Any] | None = None) -> list[Structure]:
    """Read every frame of a LAMMPS text dump: species by type, atoms by ID.

    **Arguments:**

    - `path`: the dump (`dump ... custom` or `atom` style, text).
    - `options`: `species` (names of types 1, 2, …) and `units` (LAMMPS style; default:
      the dump's `ITEM: UNITS`, else `metal`).

    **Returns:** one `Structure` per frame.

    **Raises:** `InputError` naming the path, the line and the problem.
    """
    options = dict(options or {})
    raw, file_units = _dump_frames(path)
    units, units_reading = _units(path, options, file_units)
    scale, length_units = _length_scale(units)
    max_type = max(int(f["columns"]["type"].max(initial=1)) if "type" in f["columns"] else 1 for f in raw)
    option = options.get("species") or ()
    n_types = max(max_type, len(option))
    # Per-type names and masses the dump itself carries (element / mass columns).
    labels: dict[int, str] = {}
    masses: dict[int, float] = {}
    for frame in raw:
        cols = frame["columns"]
        types = cols["type"] if "type" in cols else np.ones(frame["n"], dtype=np.int64)
        for key, table in (("element", labels), ("mass", masses)):
            if key not in cols:
                continue
            for t, value in zip(types.tolist(), cols[key].tolist()):
                if table.setdefault(t, value) != value:
                    raise InputError(
                        f"{path}: LAMMPS type {t} has {key} {table[t]!r} and {value!r} (time step "
                        f"{frame['timestep']}); species follow the types, so each type needs one {key}"
                    )
    names, species_reading = _species_table(
        path, n_types, options, labels=labels, masses=masses, units=units,
        labels_from="element column", masses_from="mass column",
    )
    out = []
    for index, frame in enumerate(raw):
        cols = frame["columns"]
        cell, origin, pbc = frame["box"]
        positions, used = _positions(path, cols, cell, origin)
        types = cols["type"] if "type" in cols else np.ones(frame["n"], dtype=np.int64)
        _check_types(path, types, n_types, f"time step {frame['timestep']}")
        ids = cols["id"] if "id" in cols else np.arange(1, frame["n"] + 1)
        order = _sorted_by_id(path, ids, f" (time step {frame['timestep']})")
        readings = [species_reading, units_reading, f"coordinates from the columns {used}"]
        if "type" not in cols:
            readings.append("no type column: every atom is type 1")
        if "id" not in cols:
            readings.append("no id column: atoms numbered 1, 2, ... in file order")
        out.append(
            Structure(
                positions=positions[order] * scale,
                species=types[order] - 1,
                species_names=names,
                cell=cell * scale,
                pbc=pbc,
                length_units=length_units,
                source=path,
                frame=index,
                info={"timestep": int(frame["timestep"]), "lammps_units": units},
                atom_ids=ids[order],
                species_types=tuple(range(1, len(names) + 1)),
                origin=origin * scale,
                readings=tuple(readings),
            )
        )
    return out
