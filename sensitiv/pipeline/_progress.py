"""Stage timings, and a live progress line on stderr when it is a terminal.

Minimization and the Jacobian run as single compiled calls, so the display shows the
stage and its elapsed time (a spinner redrawn by a thread), not a percentage.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from typing import TextIO

__all__ = ["Progress"]

_SPIN = "|/-\\"


class Progress:
    """Records how long each stage takes; draws `⟳ stage … 3.2 s` on a terminal.

    **Arguments:**

    - `stream`: where to draw (stderr by default).
    - `enabled`: draw at all; default: when `stream` is a terminal.
    - `verbosity`: 0 quiet, 1 normal, 2 verbose (stage lines also when not a terminal).
    """

    def __init__(self, stream: TextIO | None = None, enabled: bool | None = None, verbosity: int = 1):
        self.stream = stream if stream is not None else sys.stderr
        isatty = getattr(self.stream, "isatty", lambda: False)()
        self.live = (isatty if enabled is None else enabled) and verbosity > 0
        self.verbosity = verbosity
        self.timings: dict[str, float] = {}
        self.prefix = ""

    def log(self, message: str) -> None:
        """A line for `-v`."""
        if self.verbosity >= 2:
            print(message, file=self.stream, flush=True)

    def warn(self, message: str) -> None:
        """A line shown at every verbosity but `-q` (a task failed, the run goes on)."""
        if self.verbosity >= 1:
            print(f"{self.prefix}WARNING: {message}", file=self.stream, flush=True)

    @contextlib.contextmanager
    def stage(self, name: str):
        """Time the block as stage `name` (timings add up over frames)."""
        label = f"{self.prefix}{name}"
        start = time.perf_counter()
        stop = threading.Event()
        thread = None
        if self.live:
            def draw():
                i = 0
                while not stop.wait(0.1):
                    elapsed = time.perf_counter() - start
                    self.stream.write(f"\r{_SPIN[i % 4]} {label} … {elapsed:5.1f} s")
                    self.stream.flush()
                    i += 1

            thread = threading.Thread(target=draw, daemon=True)
            thread.start()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            self.timings[name] = self.timings.get(name, 0.0) + elapsed
            if thread is not None:
                stop.set()
                thread.join()
                self.stream.write(f"\r✓ {label} {elapsed:6.2f} s" + " " * 8 + "\n")
                self.stream.flush()
            elif self.verbosity >= 2:
                print(f"{label}: {elapsed:.2f} s", file=self.stream, flush=True)
