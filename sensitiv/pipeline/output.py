"""NetCDF output of `sensitiv analyze`: combine per-structure datasets, write one
self-describing file atomically, open it again.

The variables themselves are `sensitiv.pipeline.dataset`'s (the contract, documented in
`docs/output.md`); this module decides how datasets are combined and stored:

- dimensions `frame` (always; unlimited in the file), `atom`, `spatial`, `parameter`
  (numeric coordinates with label coordinates `spatial_label`, `parameter_label`, e.g.
  `sigma[0,1]`); structures of equal size are stacked along `frame`, several structures
  of different sizes go to one NetCDF-4 group per structure instead;
- compression on (zlib, shuffle); booleans stored as `int8`; attributes never `None`,
  dicts or booleans;
- written to a temporary file in the target's folder and `os.replace`d into place only
  when complete; an existing file is replaced only with `overwrite=True` (`--force`).
"""

from __future__ import annotations

import contextlib
import datetime
import os
import sys
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import InputError
from ._yaml import dump_yaml
from .dataset import (
    ATOM,
    DX_DTHETA,
    FRAME,
    PARAMETER,
    PARAMETER_LABEL,
    SPATIAL,
    STATIC_VARIABLES,
    combine_frames,
    index_labels,
)

__all__ = [
    "STATIC_VARIABLES",
    "sanitize_attrs",
    "combine",
    "check_output_path",
    "write_netcdf",
    "open_result",
    "reading_result",
    "history_line",
]

def _relative_argument(arg: str, base_dir: str) -> str:
    key, eq, value = arg.partition("=") if "=" in arg and not os.path.isabs(arg) else ("", "", arg)
    if not eq:
        key, value = "", arg
    if os.path.isabs(value):
        value = os.path.relpath(value, base_dir)
    return f"{key}{eq}{value}"


def history_line(argv: Sequence[str] | None = None, base_dir: str | None = None) -> str:
    """`2026-01-01T12:00:00Z sensitiv analyze config.yaml` for the `history` attribute;
    absolute paths in the command line are written relative to `base_dir` (the config's
    folder; default: the working folder), as every path a result stores."""
    base_dir = base_dir or os.getcwd()
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    argv = list(sys.argv if argv is None else argv)
    if argv:
        argv[0] = os.path.basename(argv[0])
    return f"{now} {' '.join(_relative_argument(a, base_dir) for a in argv)}".strip()


def _plain_attr(value: Any) -> Any:
    if isinstance(value, (bool, np.bool_)):
        return np.int8(value)
    if isinstance(value, (str, bytes, int, float, np.integer, np.floating)):
        return value
    if isinstance(value, Mapping):
        return dump_yaml(value, inline_mappings=True).strip()  # dump_yaml makes the data plain
    if isinstance(value, np.ndarray):
        return value.astype(np.int8) if value.dtype == bool else value
    if isinstance(value, (list, tuple)):
        items = [_plain_attr(v) for v in value]
        if all(isinstance(v, str) for v in items):
            return ", ".join(items)
        if all(isinstance(v, (int, float, np.integer, np.floating)) for v in items):
            return np.asarray(items)
        return str(list(value))
    return str(value)


def sanitize_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """Attributes NetCDF accepts: drop `None`, booleans → int8, dicts → YAML text."""
    return {str(k): _plain_attr(v) for k, v in attrs.items() if v is not None}


def _sanitize_dataset(ds):
    ds = ds.copy()
    ds.attrs = sanitize_attrs(ds.attrs)
    for name in list(ds.variables):
        var = ds[name]
        if var.dtype == bool:
            attrs = dict(var.attrs)
            attrs.setdefault("flag_values", np.array([0, 1], dtype=np.int8))
            attrs.setdefault("flag_meanings", "false true")
            ds[name] = var.astype(np.int8).assign_attrs(attrs)
        ds[name].attrs = sanitize_attrs(ds[name].attrs)
    return ds


def combine(datasets: Sequence, attrs: Mapping[str, Any] | None = None):
    """Combine per-structure datasets into one result.

    **Arguments:**

    - `datasets`: one `xarray.Dataset` per analyzed structure, each with a `frame`
      dimension of length 1 (`dataset.structure_dataset`).
    - `attrs`: global attributes of the result.

    **Returns:** the single dataset when there is one; the datasets stacked along
    `frame` when all have the same atoms, spatial dimensions and parameters; otherwise
    an `xarray.DataTree` with one group `structure_NNN` per structure.
    """
    import xarray as xr  # lazy: ~0.5 s that the refusals and checks of this module do not need

    attrs = dict(attrs or {})
    if len(datasets) == 1:
        ds = datasets[0].copy()
        ds.attrs = {**ds.attrs, **attrs}
        return ds
    first = datasets[0]
    labels = PARAMETER_LABEL if PARAMETER_LABEL in first.coords else PARAMETER
    same_shape = all(
        d.sizes.get(ATOM) == first.sizes.get(ATOM)
        and d.sizes.get(SPATIAL) == first.sizes.get(SPATIAL)
        and list(d[labels].values) == list(first[labels].values)
        and set(d.data_vars) == set(first.data_vars)
        and all(_same_values(d, first, v) for v in STATIC_VARIABLES)
        for d in datasets
    )
    if same_shape:
        if FRAME not in first.dims:  # datasets made without a frame dimension
            datasets = [d.expand_dims(FRAME) for d in datasets]
        combined = combine_frames(datasets)
        combined.attrs = {**_common_attrs(datasets), **attrs}
        return combined
    children = {}
    for i, d in enumerate(datasets):
        children[f"structure_{i:03d}"] = d
    tree = xr.DataTree.from_dict(children)
    tree.attrs = {**_common_attrs(datasets), **attrs}
    return tree


def _same_values(d, first, name: str) -> bool:
    """Whether a static variable (species, atom IDs, the species table...) agrees, so that
    frames may share it; results that differ go to one group per structure."""
    if (name in d.variables) != (name in first.variables):
        return False
    if name not in d.variables:
        return True
    a, b = d[name].values, first[name].values
    return a.shape == b.shape and bool((a == b).all())


def _common_attrs(datasets) -> dict:
    first = datasets[0].attrs
    return {k: v for k, v in first.items() if all(k in d.attrs and d.attrs[k] == v for d in datasets)}


def check_output_path(path: str, overwrite: bool, inputs: Sequence[str] = ()) -> str:
    """Fail early when the output cannot be written; return the absolute path.

    **Arguments:**

    - `path`: the output path.
    - `overwrite`: whether an existing file may be replaced (`--force`).
    - `inputs`: the run's input files (config, structures): never overwritten, not even
      with `--force`.

    **Raises:** `InputError` naming the path when it is one of `inputs`, exists (and
    `overwrite` is false), is a directory, or its folder is missing or not writable.
    """
    path = os.path.abspath(os.fspath(path))
    folder = os.path.dirname(path)
    real = os.path.realpath(path)
    for given in inputs:
        if given and os.path.realpath(os.fspath(given)) == real:
            raise InputError(f"{path}: the output path is an input of this run ({given}); "
                             f"choose another output path (-o)")
    if os.path.isdir(path):
        raise InputError(f"{path}: output path is a directory")
    if os.path.lexists(path) and not overwrite:
        raise InputError(f"{path}: output exists; pass --force (or output.overwrite: true) to replace it")
    if not os.path.isdir(folder):
        raise InputError(f"{path}: output folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"{path}: cannot write to the output folder {folder} (permission denied)")
    # A read-only file system (or a pseudo one, /proc) passes os.access even for root: try.
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".probe", dir=folder)
    except OSError as err:
        raise InputError(f"{path}: cannot write to the output folder {folder} ({err.strerror or err})") from None
    os.close(fd)
    os.remove(probe)
    return path


def _encoding(ds, compression: int) -> dict:
    encoding = {}
    for name, var in ds.variables.items():
        if var.dtype.kind in "fiu" and compression > 0 and var.ndim > 0:
            encoding[name] = {"zlib": True, "complevel": int(compression), "shuffle": True}
    return encoding


def write_netcdf(result, path: str, *, compression: int = 4, overwrite: bool = False) -> str:
    """Write a result (`Dataset` or `DataTree`) to NetCDF-4, atomically.

    **Arguments:**

    - `result`: from `combine` (or one per-structure dataset).
    - `path`: the target path.
    - `compression`: zlib level 0–9 (0: uncompressed).
    - `overwrite`: replace an existing file.

    **Returns:** the absolute path written.

    **Raises:** `InputError` naming the path when it cannot be written. On any failure
    (including `KeyboardInterrupt`) the temporary file is removed and an existing output
    is left untouched.
    """
    import xarray as xr  # lazy: ~0.5 s that the refusals and checks of this module do not need

    path = check_output_path(path, overwrite)
    folder, base = os.path.split(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        if isinstance(result, xr.DataTree):
            tree = result.copy()
            tree.attrs = sanitize_attrs(tree.attrs)
            encoding = {}
            for node in tree.subtree:
                if node.has_data:
                    clean = _sanitize_dataset(node.to_dataset())
                    node.dataset = clean
                    encoding[node.path if node.path != "/" else "/"] = _encoding(clean, compression)
            tree.to_netcdf(tmp, mode="w", engine="netcdf4", encoding=encoding)
        else:
            clean = _sanitize_dataset(result)
            clean.to_netcdf(tmp, mode="w", engine="netcdf4", format="NETCDF4",
                            encoding=_encoding(clean, compression),
                            unlimited_dims=[FRAME] if FRAME in clean.dims else None)
        # mkstemp creates 0600 files; give the result the permissions a new file gets.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        if os.path.lexists(path) and not overwrite:
            raise InputError(f"{path}: output appeared while writing; not replaced (use --force)")
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        if isinstance(err, OSError):
            raise InputError(f"{path}: cannot write output: {err.strerror or err}") from err
        raise
    return path


def open_result(path: str):
    """Open a sensitiv result: a `Dataset`, or a `DataTree` when it holds groups.

    **Raises:** `InputError` naming the path when it is missing or not a sensitiv result.
    """
    import xarray as xr  # lazy: ~0.5 s that the refusals and checks of this module do not need

    if not os.path.exists(path):
        raise InputError(f"{path}: no such file")
    try:
        tree = xr.open_datatree(path)
    except Exception as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        first = first.split(". ")[0].split(" Consider")[0]
        raise InputError(f"{path}: not a readable NetCDF file ({first}); is it a complete sensitiv result?") from None
    nodes = [node for node in tree.subtree if node.has_data and DX_DTHETA in node.dataset.variables]
    if not nodes:
        tree.close()
        raise InputError(f"{path}: not a sensitiv result (no dx_dtheta variable)")
    for node in nodes:
        problem = _contract_problem(node.dataset)
        if problem:
            tree.close()
            where = f" (group {node.path})" if node.path != "/" else ""
            raise InputError(f"{path}: not a sensitiv result{where}: {problem}")
    if tree.has_data and DX_DTHETA in tree.dataset.variables:
        tree.close()
        return index_labels(xr.open_dataset(path))
    return tree


@contextlib.contextmanager
def reading_result(path: str):
    """Turn a failure to read a result's data (a truncated or damaged file: HDF5 errors
    surface only when values are read) into a one-line `InputError` naming the file."""
    try:
        yield
    except (OSError, RuntimeError) as err:
        if isinstance(err, RuntimeError) and not any(w in str(err) for w in ("NetCDF", "HDF")):
            raise
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InputError(f"{path}: cannot read the result's data ({first}); the file is truncated or "
                         f"damaged: write it again") from None


def _contract_problem(ds) -> str:
    """What a dataset lacks of the result contract that `inspect` and `plot` read, or `""`."""
    dims = tuple(d for d in ds[DX_DTHETA].dims if d != FRAME)
    if dims != (ATOM, SPATIAL, PARAMETER):
        return f"dx_dtheta has dimensions {dims}, expected ({ATOM}, {SPATIAL}, {PARAMETER})"
    missing = [v for v in (PARAMETER,) if v not in ds.variables]
    if missing:
        return f"no {', '.join(missing)} variable"
    return ""
