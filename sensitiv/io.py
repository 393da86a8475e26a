"""Results in the user's tools: open a result, turn it into `ase.Atoms`, export it for
OVITO, ASE, VMD and LAMMPS users.

- `open_result(path)`: the result as an `xarray.Dataset` (or `DataTree` with groups),
  with indexes on its label coordinates: `ds.sel(parameter_label="sigma[0,1]")`.
- `to_atoms(ds, frame=..., parameter=...)`: one frame as `ase.Atoms` — the relaxed
  positions, species, cell and periodicity, and per-atom arrays `dx_dtheta:<label>`
  (vectors) and `dx_dtheta_norm:<label>` (their lengths) for each parameter.
- `export(result, path, format=...)`: extended XYZ (`.extxyz`, per-atom sensitivity
  vectors as properties, every frame), a LAMMPS text dump (`.dump`, `.lammpstrj`), or an
  AMBER NetCDF-3 trajectory (`.nc`, `Conventions = "AMBER"`: what OVITO's and VMD's
  AMBER readers require), each readable by ASE. `sensitiv export` on the command line.

Property names. extxyz and dump columns cannot hold `[`, `,` or `]`; a parameter label
`sigma[0,1]` becomes `sigma_0_1` there (`property_name`), and every per-parameter
property is named `dx_dtheta_<label>` (a vector, columns `_x`, `_y`, `_z` in a dump),
`dx_dtheta_norm_<label>` (its length, what OVITO colours by) and, with log-sensitivities,
`dx_dlogtheta_<label>`. Lengths are in ångström when the result's length units are
physical (ASE's and OVITO's convention), unchanged (and so stated) in reduced units.
2-D results get z = 0, a zero third cell vector and no periodicity along z.

**Example:**

```python
from sensitiv import io
ds = io.open_result("argon_vacancy.nc")
atoms = io.to_atoms(ds)                              # the relaxed structure
atoms.arrays["dx_dtheta_sigma_0_0"]                  # (n_atoms, 3) in Å per Å
io.export(ds, "argon_vacancy.extxyz")                # OVITO: colour by dx_dtheta_norm_sigma_0_0
```
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import units as _units
from .errors import InputError
from .pipeline.dataset import (
    ATOMIC_NUMBER,
    CELL,
    CELL_IMAGE,
    COORDINATES,
    DX_DLOGTHETA,
    DX_DTHETA,
    FRAME,
    INITIAL_COORDINATES,
    PARAMETER,
    PARAMETER_LABEL,
    PARAMETER_UNITS,
    PARAMETER_VALUE,
    PBC,
    SPECIES,
    TRUSTWORTHY,
    VERDICT,
    ATTR_LENGTH_UNITS,
    ATTR_TITLE,
    index_labels,
)

__all__ = ["open_result", "to_atoms", "export", "property_name", "EXPORT_FORMATS"]

#: Export formats and the file endings that select them.
EXPORT_FORMATS = {
    "extxyz": (".extxyz", ".xyz"),
    "lammps-dump": (".dump", ".lammpstrj", ".lammps-dump"),
    "amber": (".nc", ".ncdf", ".netcdf"),
}


def open_result(path: str):
    """Open a result written by `sensitiv analyze`.

    **Arguments:**

    - `path`: the NetCDF file.

    **Returns:** an `xarray.Dataset` with indexes on its label coordinates
    (`ds.sel(parameter_label="sigma[0,1]")`), or an `xarray.DataTree` when the result
    holds one group per structure.

    **Raises:** `InputError` naming the path when it is missing or not a result.
    """
    from .pipeline.output import open_result as _open

    return _open(os.fspath(path))


def property_name(label: str) -> str:
    """The column-safe form of a parameter label: `"sigma[0,1]"` → `"sigma_0_1"`."""
    return re.sub(r"_+", "_", re.sub(r"[^A-Za-z0-9_]", "_", str(label))).strip("_")


def _labels(ds) -> list[str]:
    coord = PARAMETER_LABEL if PARAMETER_LABEL in ds.coords else PARAMETER
    return [str(v) for v in ds[coord].values]


def _select_frame(ds, frame: int):
    if FRAME not in ds.dims:
        return ds
    n = ds.sizes[FRAME]
    if not -n <= frame < n:
        raise InputError(f"frame {frame}: the result holds {n} frame(s) (0 to {n - 1})")
    return ds.isel({FRAME: frame})


def _length_factor(ds) -> tuple[float, str]:
    """(factor to ångström, the units the exported lengths are in)."""
    units = str(ds[COORDINATES].attrs.get("units", ds.attrs.get(ATTR_LENGTH_UNITS, "angstrom")))
    if _units.is_physical(units):
        try:
            return float(_units.convert(1.0, units, "angstrom")), "angstrom"
        except _units.UnitsError:
            pass
    return 1.0, units


def _pad3(values: np.ndarray) -> np.ndarray:
    if values.shape[-1] == 3:
        return values
    pad = [(0, 0)] * (values.ndim - 1) + [(0, 3 - values.shape[-1])]
    return np.pad(values, pad)


def _symbols(ds) -> tuple[list[str], list[str]]:
    """(ASE chemical symbols, the result's species names)."""
    from ase.data import chemical_symbols

    names = [str(s) for s in ds[SPECIES].values] if SPECIES in ds else ["X"] * ds.sizes["atom"]
    if ATOMIC_NUMBER in ds:
        numbers = np.asarray(ds[ATOMIC_NUMBER].values, dtype=int)
    else:
        numbers = np.array([chemical_symbols.index(n) if n in chemical_symbols else 0 for n in names])
    return [chemical_symbols[z] for z in numbers], names


def to_atoms(ds, frame: int = 0, parameter: str | Sequence[str] | None = None, positions: str = "relaxed"):
    """One frame of a result as an `ase.Atoms`.

    **Arguments:**

    - `ds`: a result (`open_result`, `sensitiv.analyze`), or one group of a result with groups.
    - `frame`: which frame (negative counts from the end).
    - `parameter`: the parameter label(s) whose sensitivities are attached (default: all).
    - `positions`: `"relaxed"` (x*, default; atoms inside the periodic cell, as stored)
      or `"initial"` (the structure as read: atoms the analysis wrapped into the cell are
      moved back by `cell_image`).

    **Returns:** `ase.Atoms` with the positions, chemical symbols (species that are not
    elements become `X`; the names are in `arrays["species"]`), cell and periodicity;
    per-atom arrays `dx_dtheta_<label>` (n, 3), `dx_dtheta_norm_<label>` (n,) and
    `dx_dlogtheta_<label>` for each parameter; `info` with the parameter values and
    units, `trustworthy`, `verdict`, `length_units` and the frame.

    **Raises:** `InputError` for a frame or parameter the result does not hold.
    """
    from ase import Atoms

    if hasattr(ds, "subtree") and not getattr(ds, "has_data", True):
        raise InputError("this result holds one group per structure: pass one group, e.g. tree['structure_000']")
    if hasattr(ds, "to_dataset"):
        ds = ds.to_dataset()
    labels = _labels(ds)
    if parameter is None:
        chosen = labels
    else:
        chosen = [parameter] if isinstance(parameter, str) else list(parameter)
        for label in chosen:
            if label not in labels:
                import difflib

                close = difflib.get_close_matches(label, labels, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise InputError(f"parameter {label!r} is not in the result{hint}; parameters: {', '.join(labels)}")
    if positions not in ("relaxed", "initial"):
        raise InputError(f"positions={positions!r}: use 'relaxed' or 'initial'")
    one = _select_frame(ds, frame)
    factor, length_units = _length_factor(one)
    name = COORDINATES if positions == "relaxed" else INITIAL_COORDINATES
    xyz = np.asarray(one[name].values, dtype=np.float64)
    if positions == "initial" and CELL_IMAGE in one and CELL in one:  # as read: the analysis wrapped them
        xyz = xyz + np.asarray(one[CELL_IMAGE].values, dtype=np.float64) @ np.asarray(one[CELL].values, np.float64)
    xyz = _pad3(xyz) * factor
    d = one[COORDINATES].shape[-1]
    pbc = np.zeros(3, dtype=bool)
    if PBC in one:
        pbc[:d] = np.asarray(one[PBC].values, dtype=bool)
    cell = np.zeros((3, 3))
    if CELL in one:
        cell[:d, :d] = np.asarray(one[CELL].values, dtype=np.float64) * factor
    symbols, names = _symbols(one)
    atoms = Atoms(symbols=symbols, positions=xyz, cell=cell, pbc=pbc)
    atoms.set_array("species", np.array(names, dtype="U"))
    k_of = {label: k for k, label in enumerate(labels)}
    for label in chosen:
        k = k_of[label]
        vectors = _pad3(np.asarray(one[DX_DTHETA].isel({PARAMETER: k}).values, dtype=np.float64)) * factor
        atoms.set_array(f"dx_dtheta_{property_name(label)}", vectors)
        atoms.set_array(f"dx_dtheta_norm_{property_name(label)}", np.linalg.norm(vectors, axis=1))
        if DX_DLOGTHETA in one:
            log = _pad3(np.asarray(one[DX_DLOGTHETA].isel({PARAMETER: k}).values, dtype=np.float64)) * factor
            atoms.set_array(f"dx_dlogtheta_{property_name(label)}", log)
    values = np.atleast_1d(np.asarray(one[PARAMETER_VALUE].values, dtype=np.float64))
    units = [str(u) for u in one[PARAMETER_UNITS].values] if PARAMETER_UNITS in one else [""] * len(labels)
    for label in chosen:
        atoms.info[f"theta_{property_name(label)}"] = float(values[k_of[label]])
        atoms.info[f"theta_units_{property_name(label)}"] = units[k_of[label]]
    atoms.info["length_units"] = length_units
    atoms.info["frame"] = int(frame if frame >= 0 else (ds.sizes.get(FRAME, 1) + frame))
    if TRUSTWORTHY in one:
        atoms.info["trustworthy"] = bool(int(one[TRUSTWORTHY].values))
    if VERDICT in one:
        atoms.info["verdict"] = str(one[VERDICT].values)
    return atoms


def _format_of(path: str, format: str | None) -> str:
    if format is not None:
        if format not in EXPORT_FORMATS:
            raise InputError(f"--format {format!r}: choose one of {', '.join(EXPORT_FORMATS)}")
        return format
    lower = os.fspath(path).lower()
    for name, endings in EXPORT_FORMATS.items():
        if lower.endswith(endings):
            return name
    endings = ", ".join(e for es in EXPORT_FORMATS.values() for e in es)
    raise InputError(f"{path}: cannot tell the export format from the ending; use one of {endings} or --format")


def _frames(ds, frame: int | None) -> list[int]:
    n = ds.sizes.get(FRAME, 1)
    if frame is None:
        return list(range(n))
    _select_frame(ds, frame)  # range check
    return [frame % n]


def export(result, path: str, format: str | None = None, *, frame: int | None = None,
           parameter: str | Sequence[str] | None = None, overwrite: bool = False) -> str:
    """Write a result for other tools.

    **Arguments:**

    - `result`: a result (`open_result`) or one group of it.
    - `path`: the file to write; its ending chooses the format unless `format` is given.
    - `format`: `"extxyz"`, `"lammps-dump"` or `"amber"` (NetCDF-3, `Conventions = "AMBER"`).
    - `frame`: one frame (default: every frame, one after the other).
    - `parameter`: the parameter label(s) whose sensitivities are written (default: all).
    - `overwrite`: replace an existing file.

    **Returns:** the path written (written to a temporary file and moved into place).

    **Raises:** `InputError` naming the path or argument at fault.
    """
    import tempfile

    from .pipeline.output import check_output_path

    fmt = _format_of(path, format)
    path = check_output_path(path, overwrite)
    if hasattr(result, "subtree") and not getattr(result, "has_data", True):
        raise InputError("this result holds one group per structure: export one group, e.g. tree['structure_000']")
    ds = result.to_dataset() if hasattr(result, "to_dataset") else result
    images = [to_atoms(ds, frame=i, parameter=parameter) for i in _frames(ds, frame)]
    folder, base = os.path.split(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        if fmt == "extxyz":
            _write_extxyz(tmp, images, ds)
        elif fmt == "lammps-dump":
            _write_lammps_dump(tmp, images)
        else:
            _write_amber(tmp, images, ds)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def _write_extxyz(path: str, images, ds) -> None:
    """Extended XYZ in ASE's layout (`species`, `pos`, then every per-atom array), every
    number written as its shortest exact decimal (`repr`): ASE's own writer rounds
    columns to 8 decimals (`%16.8f`, no option), which loses a sensitivity of 1e-9 Å
    per unit entirely. The comment line's key=value pairs use ASE's encoder."""
    from ase.io.extxyz import key_val_dict_to_str

    kinds = {"f": "R", "i": "I", "u": "I", "b": "L", "U": "S", "S": "S", "O": "S"}
    with open(path, "w", encoding="utf-8") as f:
        for atoms in images:
            info = dict(atoms.info, title=str(ds.attrs.get(ATTR_TITLE, "sensitiv result")))
            info["pbc"] = atoms.get_pbc()
            columns = [("species", np.array(atoms.get_chemical_symbols())), ("pos", atoms.positions)]
            columns += _per_parameter_arrays(atoms)
            properties = ":".join(f"{name}:{kinds[v.dtype.kind]}:{1 if v.ndim == 1 else v.shape[1]}"
                                  for name, v in columns)
            header = f"Properties={properties} {key_val_dict_to_str(info)}"
            if atoms.cell.any():  # the lattice vectors one after the other, as ASE writes them
                header = 'Lattice="' + " ".join(map(_exact, atoms.cell.array.ravel())) + '" ' + header
            f.write(f"{len(atoms)}\n{header}\n")
            cells = [v.reshape(len(atoms), -1) for _, v in columns]
            for i in range(len(atoms)):
                f.write(" ".join(_exact(x) for c in cells for x in c[i]) + "\n")


def _exact(value: Any) -> str:
    """A number as its shortest decimal that reads back exactly (a bool as T/F)."""
    value = _plain(value)
    if isinstance(value, (bool, np.bool_)):
        return "T" if value else "F"
    return repr(value) if isinstance(value, float) else str(value)


def _per_parameter_arrays(atoms) -> list[tuple[str, np.ndarray]]:
    skip = {"numbers", "positions", "species"}
    return [(k, v) for k, v in atoms.arrays.items() if k not in skip]


def _write_lammps_dump(path: str, images) -> None:
    """A LAMMPS text dump (`dump custom` layout), box in LAMMPS' restricted triclinic form
    (ASE's `Prism` rotates the cell, positions and vectors into it)."""
    from ase.calculators.lammps import Prism

    with open(path, "w", encoding="utf-8") as f:
        for step, atoms in enumerate(images):
            names = list(dict.fromkeys(atoms.arrays["species"]))
            types = [names.index(s) + 1 for s in atoms.arrays["species"]]
            cell = atoms.cell.array.copy()
            x = atoms.positions
            # LAMMPS needs a box along open directions too: one around the atoms there.
            for i in np.flatnonzero(~atoms.pbc):
                if np.linalg.norm(cell[i]) == 0:
                    cell[i] = np.eye(3)[i]
            prism = Prism(cell, pbc=atoms.pbc)
            xhi, yhi, zhi, xy, xz, yz = prism.get_lammps_prism()
            xyz = prism.vector_to_lammps(x, wrap=False)
            lo = np.zeros(3)
            hi = np.array([xhi, yhi, zhi])
            for i in np.flatnonzero(~atoms.pbc):
                lo[i], hi[i] = xyz[:, i].min() - 1.0, xyz[:, i].max() + 1.0
            columns = ["id", "type", "element", "x", "y", "z"]
            data = [np.arange(1, len(atoms) + 1), np.array(types), np.array(atoms.get_chemical_symbols()),
                    *xyz.T]
            for name, values in _per_parameter_arrays(atoms):
                if values.ndim == 2 and values.shape[1] == 3:
                    rotated = prism.vector_to_lammps(values, wrap=False)
                    columns += [f"{name}_x", f"{name}_y", f"{name}_z"]
                    data += list(rotated.T)
                else:
                    columns.append(name)
                    data.append(values)
            bounds = "".join("pp " if p else "ff " for p in atoms.pbc).strip()
            xlo_b = lo[0] + min(0.0, xy, xz, xy + xz)
            xhi_b = hi[0] + max(0.0, xy, xz, xy + xz)
            ylo_b, yhi_b = lo[1] + min(0.0, yz), hi[1] + max(0.0, yz)
            f.write(f"ITEM: TIMESTEP\n{step}\nITEM: NUMBER OF ATOMS\n{len(atoms)}\n")
            f.write(f"ITEM: BOX BOUNDS xy xz yz {bounds}\n")
            box = [[xlo_b, xhi_b, xy], [ylo_b, yhi_b, xz], [lo[2], hi[2], yz]]
            f.write("".join(" ".join(map(_exact, line)) + "\n" for line in box))
            f.write("ITEM: ATOMS " + " ".join(columns) + "\n")
            for row in zip(*data):
                f.write(" ".join(map(_exact, row)) + "\n")


def _plain(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.str_):
        return str(value)
    return value


def _write_amber(path: str, images, ds) -> None:
    """An AMBER NetCDF trajectory (ambermd.org/netcdf/nctraj.xhtml) in the classic 64-bit
    offset format: `Conventions = "AMBER"`, `frame` unlimited, `spatial` = "xyz",
    `coordinates` in ångström (float32), the box as `cell_lengths`/`cell_angles` (cell in
    the standard orientation, positions and vectors rotated with it), `atom_types` (atomic
    numbers, as ASE reads them), and every per-atom array as a variable of its own."""
    import netCDF4
    from ase.geometry import cell_to_cellpar, cellpar_to_cell

    first = images[0]
    n = len(first)
    with netCDF4.Dataset(path, "w", format="NETCDF3_64BIT_OFFSET") as nc:
        nc.Conventions = "AMBER"
        nc.ConventionVersion = "1.0"
        nc.program = "sensitiv"
        from . import __version__

        nc.programVersion = __version__
        nc.title = str(ds.attrs.get(ATTR_TITLE, "sensitiv result"))
        nc.createDimension("frame", None)
        nc.createDimension("spatial", 3)
        nc.createDimension("atom", n)
        nc.createDimension("cell_spatial", 3)
        nc.createDimension("cell_angular", 3)
        nc.createDimension("label", 5)
        spatial = nc.createVariable("spatial", "S1", ("spatial",))
        spatial[:] = np.array(list("xyz"), dtype="S1")
        cell_spatial = nc.createVariable("cell_spatial", "S1", ("cell_spatial",))
        cell_spatial[:] = np.array(list("abc"), dtype="S1")
        cell_angular = nc.createVariable("cell_angular", "S1", ("cell_angular", "label"))
        cell_angular[:] = np.array([list(w.ljust(5)) for w in ("alpha", "beta", "gamma")], dtype="S1")
        time = nc.createVariable("time", "f4", ("frame",))
        time.units = "picosecond"
        coords = nc.createVariable("coordinates", "f4", ("frame", "atom", "spatial"))
        coords.units = "angstrom"
        lengths = nc.createVariable("cell_lengths", "f8", ("frame", "cell_spatial"))
        lengths.units = "angstrom"
        angles = nc.createVariable("cell_angles", "f8", ("frame", "cell_angular"))
        angles.units = "degree"
        types = nc.createVariable("atom_types", "i4", ("atom",))
        types[:] = first.numbers
        extra: dict[str, Any] = {}
        for name, values in _per_parameter_arrays(first):
            dims = ("frame", "atom", "spatial") if values.ndim == 2 else ("frame", "atom")
            extra[name] = nc.createVariable(name, "f8", dims)
        for i, atoms in enumerate(images):
            cell = atoms.cell.array
            rotation = np.eye(3)
            if atoms.pbc.all() and abs(np.linalg.det(cell)) > 0:
                par = cell_to_cellpar(cell)
                standard = cellpar_to_cell(par)
                rotation = np.linalg.solve(cell, standard)  # cell @ R = standard
                lengths[i] = par[:3]
                angles[i] = par[3:]
            else:
                lengths[i] = np.where(atoms.pbc, atoms.cell.lengths(), 0.0)
                angles[i] = np.where(atoms.cell.angles() > 0, atoms.cell.angles(), 90.0)
            time[i] = float(i)
            coords[i] = atoms.positions @ rotation
            for name, values in _per_parameter_arrays(atoms):
                extra[name][i] = values @ rotation if values.ndim == 2 else values


def _register_accessor() -> None:
    import xarray as xr

    if hasattr(xr.Dataset, "sensitiv"):
        return

    @xr.register_dataset_accessor("sensitiv")
    class SensitivAccessor:
        """`ds.sensitiv`: a result's summary — `str(ds.sensitiv)` as text, rendered as HTML
        in Jupyter (`_repr_html_`), `ds.sensitiv.trustworthy`, `ds.sensitiv.to_atoms()`."""

        def __init__(self, ds):
            self._ds = ds

        @property
        def trustworthy(self) -> bool:
            """Whether every frame of the result is trustworthy."""
            if TRUSTWORTHY not in self._ds:
                return bool(int(self._ds.attrs.get(TRUSTWORTHY, 0)))
            return bool(np.all(np.asarray(self._ds[TRUSTWORTHY].values) == 1))

        def to_atoms(self, frame: int = 0, parameter=None):
            """`sensitiv.io.to_atoms` of this result."""
            return to_atoms(self._ds, frame=frame, parameter=parameter)

        def plot(self, path=None, **options):
            """`sensitiv.plot` of this result: the figure of `sensitiv plot` (options: `parameter`,
            `frame`, `centre`, `scale`); written to `path` when given."""
            from .pipeline.plot import plot  # lazy: the figure code is read only when a figure is asked for

            return plot(self._ds, path, **options)

        def record(self) -> dict:
            """The summary as data (what `sensitiv inspect --json` gives for a file)."""
            from .pipeline.report import inspect_record

            return inspect_record(self._ds)

        def __repr__(self) -> str:
            from .pipeline.report import inspect_text

            return inspect_text(self._ds, "result")

        def _repr_html_(self) -> str:
            import html

            record = self.record()
            group = record["groups"][0]
            ok = self.trustworthy
            badge = ("<span style='color:#1a7f37;font-weight:bold'>trustworthy</span>" if ok else
                     "<span style='color:#cf222e;font-weight:bold'>NOT trustworthy</span>")
            from . import units as u

            rows = "".join(
                f"<tr><td><code>{html.escape(p['label'])}</code></td>"
                f"<td>{p['value']:.6g} {html.escape(u.describe(p['units']))}</td>"
                f"<td>{p['dx_dtheta_norm']:.4g}</td><td>{p.get('dx_dlogtheta_norm', float('nan')):.4g}</td></tr>"
                for p in sorted(group["parameters"], key=lambda p: -p.get("dx_dlogtheta_norm", p["dx_dtheta_norm"]))
            )
            diagnostics = "".join(
                f"<li>{html.escape(name)}: {html.escape(', '.join(map(str, d['values'][:4])))}"
                f"{' ' + html.escape(u.describe(d['units'])) if d['units'] else ''}</li>"
                for name, d in group["diagnostics"].items() if name != TRUSTWORTHY)
            problems = "".join(f"<li style='color:#cf222e'>{html.escape(p)}</li>" for p in group.get("problems", []))
            return (
                f"<div><b>{html.escape(record['title'])}</b> — {badge}<br>"
                f"{group['atoms']} atoms × {group['spatial']} dims × {group['frames']} frame(s), "
                f"{len(group['parameters'])} parameters<br>"
                "<table><tr><th>θ</th><th>value</th><th>‖dx*/dθ‖</th><th>‖θ·dx*/dθ‖</th></tr>"
                f"{rows}</table><ul>{diagnostics}{problems}</ul></div>"
            )

    del SensitivAccessor


_register_accessor()
