"""Stage timings, a live progress line on a terminal, and log lines in batch.

On a terminal (stderr), the running stage is redrawn by a thread: its name, elapsed time
and what the computation last reported (`sensitiv.progress`: the FIRE or Newton step,
max‖F‖ against the tolerance). An ensemble writes one line per task done or failed, with
an estimate of the time left, on a terminal and in batch (stderr a file or a pipe); with
`-v`, batch logs also get one line per stage, with the last report. `-q` silences all of
it; the closing summary goes to stdout, not here, and a refusal stays one line.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from typing import TextIO

from .. import progress as reports

__all__ = ["Progress"]

_SPIN = "|/-\\"


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


class _Counter:
    """Tasks of an ensemble: one line per task done or failed, with the time left."""

    def __init__(self, progress: "Progress", total: int, done: int):
        self.progress, self.total, self.count = progress, total, done
        self.start, self.new = time.perf_counter(), 0

    def _line(self, text: str) -> None:
        if self.total > 1:
            self.count += 1
            self.new += 1
            left = self.total - self.count
            eta = ""
            if left and self.new:
                eta = f"; about {_duration((time.perf_counter() - self.start) / self.new * left)} left"
            self.progress.note(f"[{self.count}/{self.total}] {text}{eta}")

    def finished(self, where: str) -> None:
        """A task produced its result."""
        self._line(f"done: {where}")

    def failed(self, failure) -> None:
        """A task failed (the others go on)."""
        self._line(f"FAILED: {failure}")


class Progress:
    """Records how long each stage takes; shows it live on a terminal, as lines in batch.

    **Arguments:**

    - `stream`: where to write (stderr by default).
    - `enabled`: draw a live line; default: when `stream` is a terminal.
    - `verbosity`: 0 quiet, 1 normal (live line on a terminal, task lines), 2 verbose
      (stage lines in batch, `log` lines).
    """

    def __init__(self, stream: TextIO | None = None, enabled: bool | None = None, verbosity: int = 1):
        self.stream = stream if stream is not None else sys.stderr
        isatty = getattr(self.stream, "isatty", lambda: False)()
        self.live = (isatty if enabled is None else enabled) and verbosity > 0
        self.verbosity = verbosity
        self.timings: dict[str, float] = {}
        self.prefix = ""
        self.detail = ""
        self._lock = threading.Lock()

    def _write_line(self, text: str) -> None:
        with self._lock:
            if self.live:  # over the live line, which the drawing thread redraws
                self.stream.write("\r\033[K")
            print(text, file=self.stream, flush=True)

    def log(self, message: str) -> None:
        """A line for `-v`."""
        if self.verbosity >= 2:
            self._write_line(message)

    def note(self, message: str) -> None:
        """A line shown unless `-q` (tasks done, resuming)."""
        if self.verbosity >= 1:
            self._write_line(message)

    def counter(self, total: int, done: int = 0) -> _Counter:
        """The per-task lines of an ensemble of `total` tasks, `done` of them already done."""
        return _Counter(self, total, done)

    def _listen(self, update: reports.Update) -> None:
        self.detail = update.text()

    @contextlib.contextmanager
    def stage(self, name: str):
        """Time the block as stage `name` (timings add up over frames)."""
        label = f"{self.prefix}{name}"
        start = time.perf_counter()
        stop = threading.Event()
        thread = None
        self.detail = ""
        if self.live:
            def draw():
                i = 0
                while not stop.wait(0.1):
                    elapsed = time.perf_counter() - start
                    detail = f"  {self.detail}" if self.detail else ""
                    with self._lock:
                        self.stream.write(f"\r\033[K{_SPIN[i % 4]} {label} … {elapsed:5.1f} s{detail}")
                        self.stream.flush()
                    i += 1

            thread = threading.Thread(target=draw, daemon=True)
            thread.start()
        try:
            with reports.listening(self._listen):
                yield
        finally:
            elapsed = time.perf_counter() - start
            self.timings[name] = self.timings.get(name, 0.0) + elapsed
            detail = f" ({self.detail})" if self.detail else ""
            if thread is not None:
                stop.set()
                thread.join()
                with self._lock:
                    self.stream.write(f"\r\033[K✓ {label} {elapsed:6.2f} s{detail}\n")
                    self.stream.flush()
            elif self.verbosity >= 2:
                self._write_line(f"{label}: {elapsed:.2f} s{detail}")
