"""Ensembles: many frames, files or parameter samples in one run, serially or with Dask.

Every (structure, parameter sample) pair is one independent task returning an
`xarray.Dataset`; the results are combined along a `frame` dimension (or into one NetCDF
group per structure when atom counts differ, see `output.combine`).

**Going past one machine.** With `--scheduler tcp://HOST:8786` (or
`ensemble.scheduler`) the tasks go to a running Dask cluster — started by hand
(`dask scheduler` + `dask worker` on each machine), by dask-jobqueue on Slurm/PBS, or by
dask-cuda with one GPU per worker. `--scheduler local` starts a local cluster of
`ensemble.workers` processes. Workers are *spawned*, never forked (JAX and `fork` do not
mix), and `XLA_PYTHON_CLIENT_PREALLOCATE=false` lets several workers share a GPU. Dask is
the optional extra `sensitiv[dask]`.

**Example:**

```python
from sensitiv.pipeline import config, ensemble
cfg = config.load("traj.yaml")                  # structure.frames: all
result, analyses = ensemble.run_ensemble(cfg, scheduler="local")
result.sizes["frame"]
```
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..records import Structure
from ._progress import Progress
from .config import Config

__all__ = ["parameter_samples", "run_ensemble", "analyze_task"]


def parameter_samples(cfg_data: Mapping[str, Any], structure: Structure, catalog) -> list[dict | None]:
    """The parameter values of each sample (`[None]` when the config has no samples).

    **Arguments:**

    - `cfg_data`: the resolved config.
    - `structure`: for parameters shaped by the number of species.
    - `catalog`: installed plugins.

    **Returns:** a list of `{name: value}` overrides, one per sample.
    """
    spec = cfg_data.get("ensemble", {}).get("parameter_samples")
    if not spec:
        return [None]
    n = int(spec["n"])
    model = catalog.energy_models[cfg_data["model"]["name"]]
    records = {p.name: p for p in model.parameters}
    n_species = len(structure.species_names)
    rng = np.random.default_rng(int(spec.get("seed", 0)))
    samples: list[dict] = [{} for _ in range(n)]
    for name, bounds in sorted(spec.get("bounds", {}).items()):
        if name not in records:
            raise ConfigError(
                f"ensemble.parameter_samples.bounds.{name}: model {model.name!r} has no parameter "
                f"{name!r}; it has {', '.join(records)}"
            )
        low, high = bounds
        if not low < high:
            raise ConfigError(f"ensemble.parameter_samples.bounds.{name}: need low < high, got {bounds}")
        from .analyze import _resolve_shape

        shape = _resolve_shape(records[name].shape, structure)
        draws = rng.uniform(low, high, size=(n,) + shape)
        if len(shape) == 2 and shape[0] == shape[1] and all(s == "species" for s in records[name].shape):
            # Per-pair matrices stay symmetric.
            draws = 0.5 * (draws + np.swapaxes(draws, -1, -2))
        for k in range(n):
            samples[k][name] = draws[k].tolist()
    for name, values in sorted(spec.get("values", {}).items()):
        if name not in records:
            raise ConfigError(
                f"ensemble.parameter_samples.values.{name}: model {model.name!r} has no parameter "
                f"{name!r}; it has {', '.join(records)}"
            )
        if len(values) != n:
            raise ConfigError(
                f"ensemble.parameter_samples.values.{name}: {len(values)} values for n = {n} samples"
            )
        for k in range(n):
            samples[k][name] = values[k]
    return samples


def analyze_task(cfg_data: Mapping[str, Any], structure: Structure, sample: Mapping | None):
    """One ensemble task (runs in a Dask worker): analyze one structure with one sample."""
    from .analyze import analyze_structure

    return analyze_structure(structure, dict(cfg_data), parameter_values=sample)


def _label(analysis, structure: Structure, sample_index: int | None):
    ds = analysis.dataset
    ds["frame_source"] = ((), structure.source, {"long_name": "file (or generator) of the structure"})
    ds["frame_index"] = ((), int(structure.frame), {"long_name": "frame index within frame_source"})
    if sample_index is not None:
        ds["sample"] = ((), int(sample_index), {"long_name": "parameter sample index"})
    return analysis


def _dask_client(scheduler: str, workers: int | None):
    try:
        import dask
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise ConfigError(
            f"--scheduler {scheduler}: Dask is not installed; pip install 'sensitiv[dask]'"
        ) from None
    # JAX is not fork-safe: workers must be fresh interpreters.
    dask.config.set({"distributed.worker.multiprocessing-method": "spawn"})
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    if scheduler == "local":
        cluster = LocalCluster(
            n_workers=workers or max(1, (os.cpu_count() or 2) // 2),
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
        )
        return Client(cluster), cluster
    try:
        return Client(scheduler, timeout="30s"), None
    except OSError as err:
        raise ConfigError(f"--scheduler {scheduler}: cannot reach the Dask scheduler ({err})") from None


def run_ensemble(
    cfg: Config | Mapping[str, Any],
    catalog=None,
    progress: Progress | None = None,
    scheduler: str | None = None,
):
    """Analyze every structure and parameter sample a config selects.

    **Arguments:**

    - `cfg`: the resolved `Config` (or its `data`).
    - `catalog`: installed plugins (default: discovered).
    - `progress`: the stage display (serial runs).
    - `scheduler`: `None` (the config's `ensemble.scheduler`, else serial), `"serial"`,
      `"local"`, or a Dask scheduler address.

    **Returns:** `(result, analyses)`: the combined `Dataset`/`DataTree` and the
    per-task `Analysis` records, in task order.
    """
    from . import output
    from ._registry import catalog as installed
    from .analyze import analyze_structure
    from .structure import read_structures

    data = cfg.data if isinstance(cfg, Config) else dict(cfg)
    catalog = catalog or installed()
    progress = progress or Progress(enabled=False, verbosity=0)
    with progress.stage("read"):
        structures = read_structures(data["structure"], catalog)
    tasks: list[tuple[Structure, dict | None, int | None]] = []
    for s in structures:
        samples = parameter_samples(data, s, catalog)
        for k, sample in enumerate(samples):
            tasks.append((s, sample, k if sample is not None else None))

    scheduler = scheduler or data.get("ensemble", {}).get("scheduler") or "serial"
    analyses = []
    if scheduler == "serial" or len(tasks) == 1:
        for i, (s, sample, k) in enumerate(tasks):
            progress.prefix = f"[{i + 1}/{len(tasks)}] " if len(tasks) > 1 else ""
            analysis = analyze_structure(s, data, catalog, progress, parameter_values=sample)
            analyses.append(_label(analysis, s, k))
        progress.prefix = ""
    else:
        client, cluster = _dask_client(scheduler, data.get("ensemble", {}).get("workers"))
        try:
            with progress.stage(f"ensemble of {len(tasks)} on dask"):
                futures = client.map(
                    analyze_task,
                    [data] * len(tasks),
                    [t[0] for t in tasks],
                    [t[1] for t in tasks],
                    pure=False,
                )
                results = client.gather(futures)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
        analyses = [_label(a, s, k) for a, (s, _, k) in zip(results, tasks)]
    result = output.combine([a.dataset for a in analyses])
    return result, analyses
