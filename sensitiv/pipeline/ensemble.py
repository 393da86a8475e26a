"""Ensembles: the tasks of a run (every structure × parameter sample) and the Dask client.

Every (structure, parameter sample) pair is one independent `Task`; `sensitiv.pipeline.run`
analyzes them one after the other, or hands them to Dask here (`analyze_on_dask`).

**Going past one machine.** With `--scheduler tcp://HOST:8786` (or
`ensemble.scheduler`) the tasks go to a running Dask cluster — started by hand
(`dask scheduler` + `dask worker` on each machine), by dask-jobqueue on Slurm/PBS, or by
dask-cuda with one GPU per worker. `--scheduler local` starts a local cluster of
`ensemble.workers` processes. Workers are *spawned*, never forked (JAX and `fork` do not
mix), and `XLA_PYTHON_CLIENT_PREALLOCATE=false` lets several workers share a GPU. Dask is
the optional extra `sensitiv[dask]`.

**Example:**

```python
from sensitiv.pipeline import config, ensemble, structure
cfg = config.load("traj.yaml")                  # structure.frames: all
tasks = ensemble.make_tasks(structure.read_structures(cfg.structure), cfg)
len(tasks)
```
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np

from .. import cache
from ..errors import ConfigError, SensitivError
from ..plugins import Registry, get_registry
from ..records import EnergyModel, Structure
from .analyze import analyze_structure
from .config import Config, ParameterSamples
from .structure import atom_bucket, fixed_atoms
from .theta import is_species_matrix, resolve_shape

__all__ = ["Task", "parameter_samples", "padding", "make_tasks", "analyze_task", "analyze_on_dask"]


@dataclasses.dataclass(frozen=True)
class Task:
    """One analysis of a run: a structure, with one parameter sample or none.

    **Arguments:**

    - `structure`: the structure.
    - `values`: parameter values overriding `model.parameters`, or `None`.
    - `sample`: the sample's index, or `None` when the config samples no parameters.
    - `pad_to`: the atom count the structure is padded to with phantom atoms (`padding`),
      or `None`.
    """

    structure: Structure
    values: Mapping[str, Any] | None = None
    sample: int | None = None
    pad_to: int | None = None


def parameter_samples(spec: ParameterSamples | None, structure: Structure, model: EnergyModel) -> list[dict | None]:
    """The parameter values of each sample (`[None]` when the config has no samples).

    **Arguments:**

    - `spec`: the config's `ensemble.parameter_samples`.
    - `structure`: for parameters shaped by the number of species.
    - `model`: the energy model's record (its declared parameters).

    **Returns:** a list of `{name: value}` overrides, one per sample.
    """
    if spec is None:
        return [None]
    records = {p.name: p for p in model.parameters}

    def record(section: str, name: str):
        if name not in records:
            raise ConfigError(
                f"ensemble.parameter_samples.{section}.{name}: model {model.name!r} has no parameter "
                f"{name!r}; it has {', '.join(records)}"
            )
        return records[name]

    rng = np.random.default_rng(spec.seed)
    samples: list[dict] = [{} for _ in range(spec.n)]
    for name, bounds in sorted(spec.bounds.items()):
        param = record("bounds", name)
        low, high = bounds
        if not low < high:
            raise ConfigError(f"ensemble.parameter_samples.bounds.{name}: need low < high, got {list(bounds)}")
        shape = resolve_shape(param.shape, structure)
        draws = rng.uniform(low, high, size=(spec.n,) + shape)
        if is_species_matrix(param):  # per-pair matrices stay symmetric
            draws = 0.5 * (draws + np.swapaxes(draws, -1, -2))
        for k in range(spec.n):
            samples[k][name] = draws[k].tolist()
    for name, values in sorted(spec.values.items()):
        record("values", name)
        if len(values) != spec.n:
            raise ConfigError(
                f"ensemble.parameter_samples.values.{name}: {len(values)} values for n = {spec.n} samples"
            )
        for k in range(spec.n):
            samples[k][name] = values[k]
    return samples


def padding(structures: Sequence[Structure], cfg: Config, model: EnergyModel) -> list[int | None]:
    """The atom count each structure is padded to (`jacobian.pad_atoms`), `None` for none.

    `auto` pads when the structures' atom counts differ and nothing stands in the way;
    `true` pads always and refuses what stands in the way: fixed atoms, a relaxing cell, the
    uncertainty section (they work on the structure's own atoms) and per-atom parameters.

    **Arguments:**

    - `structures`: the structures of the run.
    - `cfg`: the resolved config.
    - `model`: the energy model's record.

    **Returns:** one entry per structure, or `None`: the bucket (`atom_bucket`) of the
    largest size, for every size within 7/8 of it; the same for the sizes left.

    **Example:**

    ```python
    padding(structures, cfg, registry.get_energy_model(cfg.model.name))   # [112, 112, 104] for 108, 105, 100 atoms
    ```
    """
    mode = cfg.jacobian.pad_atoms
    if mode is False or (mode == "auto" and len({s.n_atoms for s in structures}) < 2):
        return [None] * len(structures)
    per_atom = [p.name for p in model.parameters if "atoms" in tuple(p.shape)]
    obstacles = [
        what for what, present in (
            ("fixed atoms (structure.fixed)", any(fixed_atoms(s, cfg.structure.fixed) is not None for s in structures)),
            ("a relaxing cell (cell.relax)", cfg.cell.relaxes),
            ("the uncertainty section", cfg.uncertainty is not None),
            (f"per-atom parameters of model {cfg.model.name!r} ({', '.join(per_atom)})", bool(per_atom)),
        ) if present
    ]
    if obstacles and mode is True:
        raise ConfigError(f"jacobian.pad_atoms: true cannot pad with {obstacles[0]}; set jacobian.pad_atoms: auto "
                          f"or false")
    if obstacles:
        return [None] * len(structures)
    # From the largest size down: its bucket takes every size within 7/8 of it, so that
    # sizes the ladder would split (29 → 30, 31 → 32) still share one count, at most 1/7 more atoms.
    target: dict[int, int] = {}
    sizes = sorted({s.n_atoms for s in structures}, reverse=True)
    for n in sizes:
        if n not in target:
            bucket = atom_bucket(n)
            target.update({m: bucket for m in sizes if m not in target and 8 * m >= 7 * bucket})
    return [target[s.n_atoms] for s in structures]


def make_tasks(structures: Sequence[Structure], cfg: Config, registry: Registry | None = None) -> list[Task]:
    """Every (structure, parameter sample) pair of a run, in output order.

    **Arguments:**

    - `structures`: the structures read (`sensitiv.pipeline.structure.read_structures`).
    - `cfg`: the resolved config (its model and `ensemble.parameter_samples`).
    - `registry`: the plugin registry (default: `sensitiv.plugins.get_registry()`).

    **Returns:** the `Task`s.
    """
    registry = registry if registry is not None else get_registry()
    model = registry.get_energy_model(cfg.model.name)
    tasks = []
    for structure, pad_to in zip(structures, padding(structures, cfg, model)):
        samples = parameter_samples(cfg.ensemble.parameter_samples, structure, model)
        for k, values in enumerate(samples):
            tasks.append(Task(structure, values, k if values is not None else None, pad_to))
    return tasks


def analyze_task(cfg: Config, task: Task):
    """One task in a Dask worker: `analyze_structure` with the worker's own plugin registry.

    **Arguments:**

    - `cfg`: the resolved config.
    - `task`: the structure and sample.

    **Returns:** the `StructureAnalysis`.
    """
    if jax.config.jax_compilation_cache_dir is None and cache.enabled_by_environment():
        # a worker is a fresh interpreter: share the programs the other workers compiled
        cache.enable()
    return analyze_structure(task.structure, cfg, parameter_values=task.values, sample=task.sample,
                             pad_to=task.pad_to)


def _dask_client(scheduler: str, workers: int | None):
    try:  # lazy: Dask is the optional extra sensitiv[dask]
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


def analyze_on_dask(tasks: Sequence[Task], cfg: Config, scheduler: str, indices: Sequence[int] | None = None):
    """Analyze `tasks` on a Dask cluster, yielding each result as it arrives.

    **Arguments:**

    - `tasks`: from `make_tasks`.
    - `cfg`: the resolved config (its `ensemble.workers` sizes a local cluster).
    - `scheduler`: `"local"` or a Dask scheduler address.
    - `indices`: the tasks to run (default: all).

    **Yields:** `(index, StructureAnalysis)` for a task done, `(index, SensitivError)` for
    a task that failed (the others go on), in the order they finish.

    **Raises:** `ConfigError` when Dask is missing or the scheduler cannot be reached.
    """
    indices = list(range(len(tasks)) if indices is None else indices)
    client, cluster = _dask_client(scheduler, cfg.ensemble.workers)
    try:
        from dask.distributed import as_completed  # lazy: Dask is the optional extra sensitiv[dask]

        futures = {client.submit(analyze_task, cfg, tasks[i], pure=False): i for i in indices}
        for future in as_completed(futures):
            index = futures[future]
            try:
                yield index, future.result()
            except SensitivError as err:
                yield index, err
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
