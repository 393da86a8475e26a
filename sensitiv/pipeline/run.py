"""A whole run, top to bottom: structures → tasks → analyze → dataset → combine → write.

`run_config` is what `sensitiv analyze` does after loading the config; `analyze_config`
stops before writing. Each stage is called once, in this order, and reads only the typed
config (`sensitiv.pipeline.config.Config`):

1. `structure.read_structures` — the structures the config selects (files through the
   readers chosen when the config was loaded, or a generator);
2. `ensemble.make_tasks` — every structure × parameter sample;
3. `analyze.analyze_structure` — one task → numbers (`StructureAnalysis`), serially here
   or on Dask (`ensemble.analyze_on_dask`); each kept on disk as soon as it is done
   (`checkpoint`), a failing task of an ensemble recorded while the others go on;
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

from ..errors import SensitivError
from ..plugins import Registry, get_registry
from . import dataset, ensemble, output
from ._progress import Progress
from .analysis import StructureAnalysis
from .analyze import analyze_structure
from .checkpoint import Checkpoint, resumable
from .config import Config
from .structure import read_structures
from .theta import check_parameters

__all__ = ["RunOutcome", "TaskFailure", "analyze_config", "run_config"]


@dataclasses.dataclass(frozen=True)
class TaskFailure:
    """A task of an ensemble that produced no result, and why.

    **Arguments:**

    - `index`: the task's position in the run (structures × parameter samples).
    - `where`: the structure (file and frame) and sample, as messages name it.
    - `message`: the error, one line.
    """

    index: int
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclasses.dataclass(frozen=True)
class RunOutcome:
    """What a run produced.

    **Arguments:**

    - `result`: the combined `xarray.Dataset` (or `DataTree` with one group per structure).
    - `analyses`: one `StructureAnalysis` per task that succeeded, in output order.
    - `path`: the file written (`None` from `analyze_config`, which writes nothing).
    - `timings`: seconds per stage (`read`, `model`, `minimization`, `jacobian`,
      `observables`, `write`, `total`), summed over tasks.
    - `failures`: the tasks of an ensemble that failed (`TaskFailure`); the result holds
      the others.
    - `resumed`: how many tasks were taken from a previous run's parts (`--resume`).
    """

    result: Any
    analyses: tuple[StructureAnalysis, ...]
    path: str | None
    timings: Mapping[str, float]
    failures: tuple[TaskFailure, ...] = ()
    resumed: int = 0

    @property
    def trustworthy(self) -> bool:
        """Whether every analyzed structure is trustworthy."""
        return all(a.trustworthy for a in self.analyses)

    @property
    def partial(self) -> bool:
        """Whether some tasks failed (the result holds the others)."""
        return bool(self.failures)


def _where(task: ensemble.Task) -> str:
    s = task.structure
    text = s.source + (f" (frame {s.frame})" if s.frame is not None else "")
    return text + (f" sample {task.sample}" if task.sample is not None else "")


def _results(tasks: Sequence[ensemble.Task], cfg: Config, registry: Registry, progress: Progress,
             scheduler: str, skip: Mapping[int, StructureAnalysis]):
    """`(index, StructureAnalysis or SensitivError)` for every task not in `skip`, as each is done."""
    todo = [i for i in range(len(tasks)) if i not in skip]
    if scheduler != "serial" and len(todo) > 1:
        yield from ensemble.analyze_on_dask(tasks, cfg, scheduler, indices=todo)
        return
    for i in todo:
        progress.prefix = f"[{i + 1}/{len(tasks)}] " if len(tasks) > 1 else ""
        try:
            yield i, analyze_structure(tasks[i].structure, cfg, registry, progress,
                                       parameter_values=tasks[i].values, sample=tasks[i].sample,
                                       pad_to=tasks[i].pad_to)
        except SensitivError as err:
            if len(tasks) == 1:
                raise
            yield i, err
    progress.prefix = ""


def _analyze_tasks(tasks: Sequence[ensemble.Task], cfg: Config, registry: Registry, progress: Progress,
                   scheduler: str, parts: Checkpoint | None):
    """`(analyses in task order, failures, number resumed)`. A failing task of an ensemble is
    recorded and the others go on; each finished task is kept in `parts` at once."""
    done = dict(parts.finished()) if parts is not None else {}
    done = {i: a for i, a in done.items() if i < len(tasks)}
    resumed = len(done)
    if resumed:
        progress.note(f"resuming: {resumed} of {len(tasks)} tasks kept from the previous run")
    failures: list[TaskFailure] = []
    first_error: SensitivError | None = None
    counter = progress.counter(len(tasks), done=resumed)
    for i, outcome in _results(tasks, cfg, registry, progress, scheduler, done):
        if isinstance(outcome, SensitivError):
            first_error = first_error or outcome
            message, source = str(outcome), tasks[i].structure.source
            if message.startswith(source):  # the error names the structure too: say it once
                message = message[len(source):].split(": ", 1)[-1]
            failures.append(TaskFailure(i, _where(tasks[i]), message))
            counter.failed(failures[-1])
            continue
        done[i] = outcome
        if parts is not None and len(tasks) > 1:
            parts.save(i, outcome)
        counter.finished(_where(tasks[i]))
    if not done and first_error is not None:
        raise first_error
    failures.sort(key=lambda f: f.index)
    return [done[i] for i in sorted(done)], tuple(failures), resumed


def analyze_config(
    cfg: Config,
    *,
    registry: Registry | None = None,
    progress: Progress | None = None,
    scheduler: str | None = None,
    argv: Sequence[str] | None = None,
    structures: Sequence | None = None,
    parts: Checkpoint | None = None,
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
    - `parts`: where finished tasks are kept (and found again when resuming).

    **Returns:** a `RunOutcome` with `path=None`; `failures` lists the tasks of an
    ensemble that failed (the result holds the others).

    **Raises:** the first task's error when no task produced a result.
    """
    registry = registry if registry is not None else get_registry()
    progress = progress or Progress(enabled=False, verbosity=0)
    if structures is None:
        with progress.stage("read"):
            structures = read_structures(cfg.structure, registry)
    check_parameters(structures, cfg, registry)
    tasks = ensemble.make_tasks(structures, cfg, registry)
    analyses, failures, resumed = _analyze_tasks(tasks, cfg, registry, progress,
                                                 scheduler or cfg.ensemble.scheduler, parts)
    datasets = [dataset.structure_dataset(a, log_sensitivity=cfg.output.log_sensitivity, base_dir=cfg.base_dir)
                for a in analyses]
    attrs = dataset.global_attributes(cfg, analyses, registry, output.history_line(argv, cfg.base_dir or None))
    if failures:  # what the file lacks, and why, travels with it
        attrs["failed_tasks"] = "; ".join(str(f) for f in failures)
    result = output.combine(datasets, attrs)
    return RunOutcome(result, tuple(analyses), None, dict(progress.timings), failures, resumed)


def run_config(
    cfg: Config,
    *,
    output_path: str | None = None,
    force: bool = False,
    registry: Registry | None = None,
    progress: Progress | None = None,
    argv: Sequence[str] | None = None,
    scheduler: str | None = None,
    resume: bool = False,
) -> RunOutcome:
    """Analyze a configuration and write its NetCDF result atomically.

    **Arguments:**

    - `cfg`: the resolved `Config`.
    - `output_path`: overrides `output.path`.
    - `force`: replace an existing output (also `output.overwrite`).
    - `registry`, `progress`, `scheduler`, `argv`: as for `analyze_config`.
    - `resume`: reuse the tasks a previous, interrupted run of this config finished
      (`sensitiv.pipeline.checkpoint`).

    Each finished task of an ensemble is kept in `<output>.parts/` until the output is
    written; the folder is removed then, unless some tasks failed (`--resume` retries
    only those).

    **Returns:** the `RunOutcome`, with the path written.

    **Raises:** `InputError` before any work when the output cannot be written (it exists
    without `force`, its folder is missing or read-only).
    """
    target = output_path or cfg.output.path
    # --resume after a partial run replaces the output that run wrote (its parts are kept).
    overwrite = force or cfg.output.overwrite or (resume and resumable(target))
    path = output.check_output_path(target, overwrite, cfg.input_files)
    progress = progress or Progress(enabled=False, verbosity=0)
    start = time.perf_counter()
    parts = Checkpoint(path, cfg, resume=resume)
    outcome = analyze_config(cfg, registry=registry, progress=progress, scheduler=scheduler, argv=argv,
                             parts=parts)
    with progress.stage("write"):
        output.write_netcdf(outcome.result, path, compression=cfg.output.compression, overwrite=overwrite)
    if not outcome.failures:
        parts.remove()
    progress.timings["total"] = time.perf_counter() - start
    return dataclasses.replace(outcome, path=path, timings=dict(progress.timings))
