"""Progress of long computations, reported by whoever computes and shown by whoever listens.

A solver that iterates on the host (FIRE in chunks of steps, the Newton polish step by
step) calls `report` after each chunk or step; the command line's display
(`sensitiv.pipeline._progress.Progress`) listens while a stage runs and shows the step,
the residual against its tolerance, and an estimate of what is left. With nobody
listening (a script, a test), `report` costs one context-variable lookup.

Plugins use it like the core does: `from sensitiv import progress; progress.report(...)`.

**Example:**

```python
from sensitiv import progress

with progress.listening(lambda update: print(update.text())):
    progress.report("fire", step=2000, residual=3e-7, tolerance=1e-10)
```
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import math
from collections.abc import Callable, Iterator

__all__ = ["Update", "report", "listening"]


@dataclasses.dataclass(frozen=True)
class Update:
    """One progress report.

    **Arguments:**

    - `method`: what is running (`"fire"`, `"newton"`, ...).
    - `step`: steps done so far.
    - `residual`: the quantity driven down (max‖f‖ for a minimizer), or NaN.
    - `tolerance`: where it must get to, or NaN.
    - `limit`: the step limit, or 0 for none.
    """

    method: str
    step: int
    residual: float = math.nan
    tolerance: float = math.nan
    limit: int = 0

    def text(self) -> str:
        """`fire step 4000, max|F| 2.1e-07 → 1e-10`.

        **Returns:** one line for a display.
        """
        text = f"{self.method} step {self.step}"
        if self.limit:
            text += f"/{self.limit}"
        if math.isfinite(self.residual):
            text += f", max|F| {self.residual:.2e}"
            if math.isfinite(self.tolerance):
                text += f" → {self.tolerance:.0e}"
        return text


_LISTENER: contextvars.ContextVar[Callable[[Update], None] | None] = contextvars.ContextVar(
    "sensitiv_progress_listener", default=None
)


def report(method: str, step: int, residual: float = math.nan, tolerance: float = math.nan,
           limit: int = 0) -> None:
    """Tell the current listener (if any) how far a computation is.

    **Arguments:**

    - `method`, `step`, `residual`, `tolerance`, `limit`: see `Update`.

    **Example:**

    ```python
    progress.report("newton", step=2, residual=4e-12, tolerance=1e-10)
    ```
    """
    listener = _LISTENER.get()
    if listener is not None:
        listener(Update(method, int(step), float(residual), float(tolerance), int(limit)))


@contextlib.contextmanager
def listening(callback: Callable[[Update], None]) -> Iterator[None]:
    """Send the reports made inside the block to `callback`.

    **Arguments:**

    - `callback`: called with each `Update` (from the reporting thread).

    **Example:**

    ```python
    with progress.listening(updates.append):
        solve(system)
    ```
    """
    token = _LISTENER.set(callback)
    try:
        yield
    finally:
        _LISTENER.reset(token)
