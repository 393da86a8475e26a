"""`sensitiv.analyze`: the command line's analysis as one Python call, for notebooks.

The arguments are the config's sections; they are validated by the same schema and the
same checks as a YAML config (every problem listed, with the key, the closest valid name
and the fix), then the same run happens. The result is the Dataset `sensitiv analyze`
would write (`docs/output.md`); nothing is written unless `output=` names a file.

**Example:**

```python
import sensitiv
from ase.build import bulk

atoms = bulk("Ar", "fcc", a=5.26, cubic=True).repeat(2)
del atoms[0]
ds = sensitiv.analyze(atoms, model="lennard_jones",
                      parameters={"sigma": 3.405, "epsilon": 0.0104},
                      model_options={"r_cutoff": 1.5, "r_onset": 1.3, "energy_units": "eV"},
                      differentiate=["sigma"], solver_options={"ftol": 1e-10})
ds.dx_dtheta.sel(parameter_label="sigma[0,0]")
ds.sensitiv            # in Jupyter: the summary (verdict, trust, largest sensitivities)
```
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping, Sequence
from typing import Any

import jax

from .. import cache
from ..errors import ConfigError, InputError
from ..records import Structure
from . import config as config_module
from . import output as output_module
from .run import analyze_config
from .structure import check_structure

__all__ = ["analyze", "KEYWORDS"]

#: Keyword → the config key it sets (`section.key`); `**options` accepts exactly these.
KEYWORDS: dict[str, str] = {
    "parameters": "model.parameters",
    "model_options": "model.options",
    "solver_options": "solver.options",
    "condition": "condition.name",
    "condition_options": "condition.options",
    "format": "structure.format",
    "frames": "structure.frames",
    "structure_options": "structure.options",
    "min_distance": "structure.min_distance",
    "fixed": "structure.fixed",
    "cell": "cell",
    "jacobian": "jacobian",
    "ensemble": "ensemble",
    "log_sensitivity": "output.log_sensitivity",
    "compression": "output.compression",
    "title": "title",
}

_SOURCE = "sensitiv.analyze()"


def _in_memory(structure) -> list[Structure] | None:
    """Structures given as objects (`ase.Atoms`, `Structure`, or a list of them), else `None`."""
    items = structure if isinstance(structure, (list, tuple)) else [structure]
    if not items or isinstance(structure, (str, os.PathLike)):
        return None
    out = []
    for i, item in enumerate(items):
        if isinstance(item, Structure):
            out.append(item)
        elif type(item).__name__ == "Atoms" and hasattr(item, "get_positions"):
            # Lazy: the ASE plugin is optional; only ase.Atoms inputs need its converter.
            from sensitiv_ase.readers import atoms_to_structure

            out.append(atoms_to_structure(item, source="python:ase.Atoms", frame=i))
        elif isinstance(item, (str, os.PathLike)):
            return None
        else:
            raise InputError(f"{_SOURCE}: structure must be a file path, an ase.Atoms, a sensitiv Structure "
                             f"or a list of them, got {type(item).__name__}")
    return out


def _set(data: dict, dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    node = data
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


def _config_data(structure, model, differentiate, solver, observables, options, files) -> dict:
    unknown = [k for k in options if k not in KEYWORDS]
    if unknown:
        k = unknown[0]
        close = difflib.get_close_matches(k, KEYWORDS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"{_SOURCE}: unknown keyword {k!r}{hint}; keywords: "
                          f"structure, model, differentiate, solver, observables, output, {', '.join(KEYWORDS)}")
    data: dict[str, Any] = {"model": {"name": model}}
    if differentiate is not None:
        data["model"]["differentiate"] = differentiate if isinstance(differentiate, str) else list(differentiate)
    if solver is not None:
        data["solver"] = {"name": solver}
    if observables is not None:
        data["observables"] = [observables] if isinstance(observables, str) else list(observables)
    if files is not None:
        data["structure"] = {"file": os.fspath(files)} if not isinstance(files, list) else {"files": files}
    elif isinstance(structure, Mapping):
        data["structure"] = {"generator": dict(structure)}
    for key, value in options.items():
        if value is not None:
            _set(data, KEYWORDS[key], value)
    return data


def analyze(
    structure,
    *,
    model: str,
    differentiate: str | Sequence[str] | None = None,
    solver: str | None = None,
    observables: str | Sequence[str] | None = None,
    output: str | os.PathLike | None = None,
    overwrite: bool = False,
    **options: Any,
):
    """Relax structures and compute their sensitivities dx*/dθ: `sensitiv analyze` in Python.

    **Arguments:**

    - `structure`: a file path (any format a reader plugin reads; `format=` to choose),
      a list of paths, an `ase.Atoms`, a `sensitiv.records.Structure`, a list of those
      (frames of equal size are stacked along `frame`), or a generator's settings as a
      dict (`{"name": "bidisperse_packing", "n_atoms": 64}`).
    - `model`: the energy model (`sensitiv plugins` lists them).
    - `differentiate`: `"all"` or the parameter names / labels that make θ.
    - `solver`: the equilibrium solver (default `"polish"` for files — Newton steps from
      a nearly relaxed input, FIRE far from a minimum — `"fire"` otherwise), or `"none"`
      for an input taken as relaxed.
    - `observables`: e.g. `["energy", "stress", "elastic_constants"]`.
    - `output`: also write the result to this NetCDF file (`overwrite` to replace one).
    - `**options`: the other config keys, by keyword: `parameters` (model parameter
      values), `model_options`, `solver_options`, `condition`, `condition_options`,
      `format`, `frames`, `structure_options`, `min_distance`, `fixed` (dict: the atoms
      held fixed, `structure.fixed`), `cell` (dict: `{"relax": "aniso", "pressure": 0.0}`
      relaxes the cell too; `{"relax": "tri", "stress": [sxx, syy, szz, syz, sxz, sxy]}`
      to a target stress tensor), `jacobian` (dict),
      `ensemble` (dict), `log_sensitivity`, `compression`, `title` (`KEYWORDS`).

    **Returns:** the result as an `xarray.Dataset` (an `xarray.DataTree` for structures of
    different sizes), laid out as the file `sensitiv analyze` writes, with indexes on the
    label coordinates (`ds.sel(parameter_label="sigma[0,0]")`); `ds.sensitiv` shows the
    summary (and renders it in Jupyter), `ds.sensitiv.trustworthy` says whether to trust it.

    The persistent compilation cache (`sensitiv.cache`) is turned on unless JAX already has
    a cache folder, `SENSITIV_NO_CACHE=1`, or jax was imported before sensitiv.

    **Raises:** `ConfigError` listing every problem of the arguments, one per line, as the
    config path does (`sensitiv.analyze(): $.model.name: unknown name 'lenard_jones'; ...
    (did you mean 'lennard_jones'?)`); `InputError` for unreadable structures;
    `ConvergenceError` when the equilibrium solver does not converge.

    **Example:**

    ```python
    import ase.io, sensitiv
    ds = sensitiv.analyze(ase.io.read("argon_vacancy.extxyz"), model="lennard_jones",
                          parameters={"sigma": 3.405, "epsilon": 0.0104},
                          model_options={"r_cutoff": 2.2, "r_onset": 1.9, "energy_units": "eV"},
                          differentiate=["sigma"])
    ds.dx_dtheta.sel(parameter_label="sigma[0,0]"), ds.sensitiv.trustworthy
    ```
    """
    in_memory = None if isinstance(structure, Mapping) else _in_memory(structure)
    files = None
    if in_memory is None and not isinstance(structure, Mapping):
        files = ([os.fspath(p) for p in structure] if isinstance(structure, (list, tuple))
                 else os.fspath(structure))
    data = _config_data(structure, model, differentiate, solver, observables, options, files)
    if output is not None:
        _set(data, "output.path", os.fspath(output))
    if in_memory is not None:
        # Validated with a stand-in structure section (the structures are already here).
        data["structure"] = {**{k: v for k, v in data.get("structure", {}).items()
                                if k in ("min_distance", "fixed")}, "generator": {"name": "bidisperse_packing"}}
    cfg = config_module.load_data(data, source=_SOURCE)
    structures = None
    if in_memory is not None:
        structures = [check_structure(s, cfg.structure.min_distance, f"{_SOURCE}: structure") for s in in_memory]
        sizes = {(s.n_atoms, s.n_spatial) for s in structures}
        del sizes
    if output is not None:
        output_module.check_output_path(cfg.output.path, overwrite)
    if jax.config.jax_compilation_cache_dir is None and cache.enabled_by_environment() and cache.quiet_loads():
        cache.enable()  # as the command line does, unless the caller chose a cache of their own
    outcome = analyze_config(cfg, structures=structures, argv=["sensitiv.analyze"])
    if output is not None:
        output_module.write_netcdf(outcome.result, cfg.output.path, compression=cfg.output.compression,
                                   overwrite=overwrite)
    from .. import io  # registers the `.sensitiv` accessor

    del io
    return outcome.result
