"""Work never lost: each finished task of a run is kept on disk until the output is written.

A run of many tasks (trajectory frames, files, parameter samples) stores each task's
numbers (`StructureAnalysis`) as soon as they exist, in a folder beside the output,
`<output>.parts/`. When the whole output is written (atomically, at its path) the folder
is removed. When the run stops first — a crash, Ctrl-C, a killed job, a frame whose
equilibrium does not converge — the finished tasks stay, and `sensitiv analyze --resume`
analyzes only the others.

A part belongs to one configuration: the folder holds the fingerprint of the resolved
config (and of sensitiv's version); `--resume` refuses parts of another config rather than
mixing results, and a run without `--resume` starts afresh. Step limits
(`solver.options.max_steps`, `max_reallocations`), the output section and the scheduler
are left out of the fingerprint: they decide whether a task finishes, never what a
finished task found, so a frame that ran out of steps can be retried with more.

Parts are Python pickles of sensitiv's own records, written by this user for this run;
they are read back only from the folder the run itself names.

**Example:**

```python
from sensitiv.pipeline import checkpoint
parts = checkpoint.Checkpoint("out.nc", cfg, resume=True)
finished = parts.finished()          # {task index: StructureAnalysis}
```
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import tempfile

from .. import __version__
from ..errors import InputError
from .analysis import StructureAnalysis
from .config import Config

__all__ = ["Checkpoint", "parts_folder", "resumable"]

_FINGERPRINT = "fingerprint"


def parts_folder(output_path: str) -> str:
    """The folder that keeps the finished tasks of a run writing `output_path`.

    **Arguments:**

    - `output_path`: the NetCDF file the run writes.

    **Returns:** `output_path + ".parts"`.
    """
    return os.fspath(output_path) + ".parts"


def resumable(output_path: str) -> bool:
    """Whether a previous run writing `output_path` left finished tasks (`--resume` uses them).

    **Arguments:**

    - `output_path`: the NetCDF file the run writes.

    **Returns:** `True` when `<output_path>.parts/` exists.
    """
    return os.path.isdir(parts_folder(output_path))


#: Settings that decide whether a task runs to the end, never what a finished task found:
#: a resumed run may change them (raise the step limit of the frame that failed).
_LIMITS = {"solver": ("max_steps", "max_reallocations")}
_NOT_RESULTS = ("output", "title")


def _fingerprint(cfg: Config) -> str:
    data = {k: v for k, v in cfg.to_dict().items() if k not in _NOT_RESULTS}
    data["ensemble"] = {k: v for k, v in dict(data.get("ensemble") or {}).items()
                        if k not in ("scheduler", "workers")}
    for section, keys in _LIMITS.items():
        options = dict((data.get(section) or {}).get("options") or {})
        data[section] = {**data.get(section, {}), "options": {k: v for k, v in options.items() if k not in keys}}
    text = f"sensitiv {__version__}\n" + json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class Checkpoint:
    """The finished tasks of one run, kept beside its output.

    **Arguments:**

    - `output_path`: the NetCDF file the run writes.
    - `cfg`: the resolved config (its fingerprint names the parts it may reuse).
    - `resume`: reuse the parts a previous run of the same config left; without it, any
      parts there are removed and the run starts afresh.

    **Raises:** `InputError` when `resume` finds parts of another config.
    """

    def __init__(self, output_path: str, cfg: Config, resume: bool = False):
        self.folder = parts_folder(output_path)
        self.fingerprint = _fingerprint(cfg)
        self._stamp = os.path.join(self.folder, _FINGERPRINT)
        if os.path.isdir(self.folder):
            found = open(self._stamp).read().strip() if os.path.isfile(self._stamp) else ""
            if resume and found != self.fingerprint:
                raise InputError(
                    f"--resume: the finished tasks in {self.folder} come from another config or sensitiv "
                    "version; run without --resume to start afresh (they are then removed)"
                )
            if not resume:
                shutil.rmtree(self.folder)

    def _create(self) -> None:
        # Made on the first task kept: a run of one task, or one that fails at once, leaves nothing.
        if not os.path.isfile(self._stamp):
            os.makedirs(self.folder, exist_ok=True)
            with open(self._stamp, "w") as handle:
                handle.write(self.fingerprint + "\n")

    def _path(self, index: int) -> str:
        return os.path.join(self.folder, f"task-{index:06d}.pickle")

    def finished(self) -> dict[int, StructureAnalysis]:
        """The tasks kept so far, by task index.

        **Returns:** `{index: StructureAnalysis}`; unreadable parts (a write cut short)
        are left out, so their tasks run again.
        """
        out: dict[int, StructureAnalysis] = {}
        if not os.path.isdir(self.folder):
            return out
        for name in sorted(os.listdir(self.folder)):
            if not (name.startswith("task-") and name.endswith(".pickle")):
                continue
            try:
                with open(os.path.join(self.folder, name), "rb") as handle:
                    analysis = pickle.load(handle)
            except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ImportError):
                continue
            if isinstance(analysis, StructureAnalysis):
                out[int(name[5:11])] = analysis
        return out

    def save(self, index: int, analysis: StructureAnalysis) -> None:
        """Keep task `index`'s result (written to a temporary file, then renamed).

        **Arguments:**

        - `index`: the task's position in the run.
        - `analysis`: its numbers.
        """
        self._create()
        fd, tmp = tempfile.mkstemp(dir=self.folder, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                pickle.dump(analysis, handle, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, self._path(index))
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def remove(self) -> None:
        """Drop the parts (the output holding them has been written)."""
        shutil.rmtree(self.folder, ignore_errors=True)
