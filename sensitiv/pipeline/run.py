"""A whole run, top to bottom: structures → tasks → analyze → dataset → combine → write.

`run_config` is what `sensitiv analyze` does after loading the config; `analyze_config`
stops before writing. Each stage is called once, in this order, and reads only the typed
config (`sensitiv.pipeline.config.Config`):

1. `structure.read_structures` — the structures the config selects (files through the
   readers chosen when the config was loaded, or a generator);
2. `ensemble.make_tasks` — every structure × parameter sample;
3. `analyze.analyze_structure` — one task → numbers (`StructureAnalysis`), serially here
   or on Dask (`ensemble.analyze_on_dask`);
4. `dataset.structure_dataset` — numbers → the labeled Dataset of the NetCDF contract;
5. `output.combine` — one Dataset, frames along `frame`, or one group per structure;
6. `output.write_netcdf` — the file, written atomically.

**Example:**

```python
from sensitiv.pipeline import config, run
cfg = config.load("examples/softspheres/config.yaml")
outcome = run.run_config(cfg, output_path="softspheres.nc", force=True)
outcome.path, outcome.trustworthy, outcome.timings["jacobian"]
```
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import ConvergenceError
from ..plugins import Registry, get_registry
from . import dataset, ensemble, output
from ._progress import Progress
from .analysis import StructureAnalysis
from .analyze import analyze_structure
from .config import Config
from .structure import read_structures
from .theta import check_parameters

__all__ = ["RunOutcome", "TaskFailure", "analyze_config", "run_config"]


@dataclasses.dataclass(frozen=True)
class TaskFailure:
    """A task of a run whose equilibrium did not converge; the run went on with the others.

    **Arguments:**

    - `index`: the task's place in the run (structures × parameter samples, in order).
    - `where`: the structure (file, frame) and sample it analyzed.
    - `message`: the one-line error.

    **Example:** `[f.where for f in outcome.failures]` — the frames missing from the output.
    """

    index: int
    where: str
    message: str


@dataclasses.dataclass(frozen=True)
class RunOutcome:
    """What a run produced.

    **Arguments:**

    - `result`: the combined `xarray.Dataset` (or `DataTree` with one group per structure).
    - `analyses`: one `StructureAnalysis` per task, in output order.
    - `path`: the file written (`None` from `analyze_config`, which writes nothing).
    - `timings`: seconds per stage (`read`, `model`, `minimization`, `jacobian`,
      `observables`, `write`, `total`), summed over tasks.
    - `failures`: the tasks that did not converge (`TaskFailure`); the result holds the
      others, and says which are missing in its `failed_tasks` attribute.
    """

    result: Any
    analyses: tuple[StructureAnalysis, ...]
    path: str | None
    timings: Mapping[str, float]
    failures: tuple[TaskFailure, ...] = ()

    @property
    def trustworthy(self) -> bool:
        """Whether every task finished and every analyzed structure is trustworthy."""
        return not self.failures and all(a.trustworthy for a in self.analyses)


def _where(task: ensemble.Task) -> str:
    s = task.structure
    return s.source + (f" (frame {s.frame})" if s.frame else "") + (
        f" (sample {task.sample})" if task.sample is not None else "")


def _analyze_tasks(tasks: Sequence[ensemble.Task], cfg: Config, registry: Registry, progress: Progress,
                   scheduler: str) -> tuple[list[StructureAnalysis], list[TaskFailure]]:
    """Every task analyzed; of several, one that does not converge is reported and the
    others go on (their work is kept). A lone task's error, or every task failing, raises."""
    if scheduler != "serial" and len(tasks) > 1:
        with progress.stage(f"ensemble of {len(tasks)} on dask"):
            outcomes = ensemble.analyze_on_dask(tasks, cfg, scheduler)
    else:
        outcomes = []
        for i, task in enumerate(tasks):
            progress.prefix = f"[{i + 1}/{len(tasks)}] " if len(tasks) > 1 else ""
            try:
                outcomes.append(analyze_structure(task.structure, cfg, registry, progress,
                                                  parameter_values=task.values, sample=task.sample))
            except ConvergenceError as err:
                if len(tasks) == 1:
                    raise
                outcomes.append(err)
                progress.warn(f"{err} — going on with the other {len(tasks) - i - 1} task(s)")
        progress.prefix = ""
    failures = [TaskFailure(i, _where(t), str(o)) for i, (t, o) in enumerate(zip(tasks, outcomes))
                if isinstance(o, ConvergenceError)]
    if failures and len(failures) == len(tasks):
        raise ConvergenceError(f"none of the {len(tasks)} tasks converged; nothing written. "
                               f"First: {failures[0].message}")
    return [o for o in outcomes if not isinstance(o, ConvergenceError)], failures


def analyze_config(
    cfg: Config,
    *,
    registry: Registry | None = None,
    progress: Progress | None = None,
    scheduler: str | None = None,
    argv: Sequence[str] | None = None,
    structures: Sequence | None = None,
) -> RunOutcome:
    """Analyze every structure and parameter sample a config selects; write nothing.

    **Arguments:**

    - `cfg`: the resolved `Config`.
    - `registry`: the plugin registry (default: `sensitiv.plugins.get_registry()`).
    - `progress`: the stage display.
    - `scheduler`: `"serial"`, `"local"` or a Dask scheduler address; default: the config's
      `ensemble.scheduler`.
    - `argv`: the command line recorded in the `history` attribute.
    - `structures`: checked structures to analyze instead of those `cfg.structure` selects
      (`sensitiv.analyze` with in-memory atoms).

    **Returns:** a `RunOutcome` with `path=None`; tasks that did not converge are in its
    `failures`, the others in its result.

    **Raises:** `ConvergenceError` when a lone task, or every task, does not converge.
    """
    registry = registry if registry is not None else get_registry()
    progress = progress or Progress(enabled=False, verbosity=0)
    if structures is None:
        with progress.stage("read"):
            structures = read_structures(cfg.structure, registry)
    check_parameters(structures, cfg, registry)
    tasks = ensemble.make_tasks(structures, cfg, registry)
    analyses, failures = _analyze_tasks(tasks, cfg, registry, progress, scheduler or cfg.ensemble.scheduler)
    datasets = [dataset.structure_dataset(a, log_sensitivity=cfg.output.log_sensitivity, base_dir=cfg.base_dir)
                for a in analyses]
    attrs = dataset.global_attributes(cfg, analyses, registry, output.history_line(argv, cfg.base_dir or None),
                                      failed=[f"{f.index}: {f.message}" for f in failures])
    result = output.combine(datasets, attrs)
    return RunOutcome(result, tuple(analyses), None, dict(progress.timings), tuple(failures))


def run_config(
    cfg: Config,
    *,
    output_path: str | None = None,
    force: bool = False,
    registry: Registry | None = None,
    progress: Progress | None = None,
    argv: Sequence[str] | None = None,
    scheduler: str | None = None,
) -> RunOutcome:
    """Analyze a configuration and write its NetCDF result atomically.

    **Arguments:**

    - `cfg`: the resolved `Config`.
    - `output_path`: overrides `output.path`.
    - `force`: replace an existing output (also `output.overwrite`).
    - `registry`, `progress`, `scheduler`, `argv`: as for `analyze_config`.

    **Returns:** the `RunOutcome`, with the path written.

    **Raises:** `InputError` before any work when the output cannot be written (it exists
    without `force`, its folder is missing or read-only).
    """
    overwrite = force or cfg.output.overwrite
    path = output.check_output_path(output_path or cfg.output.path, overwrite, cfg.input_files)
    progress = progress or Progress(enabled=False, verbosity=0)
    start = time.perf_counter()
    outcome = analyze_config(cfg, registry=registry, progress=progress, scheduler=scheduler, argv=argv)
    with progress.stage("write"):
        output.write_netcdf(outcome.result, path, compression=cfg.output.compression, overwrite=overwrite)
    progress.timings["total"] = time.perf_counter() - start
    return dataclasses.replace(outcome, path=path, timings=dict(progress.timings))
