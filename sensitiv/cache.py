"""The persistent compilation cache: compile a program once per machine, not once per run.

Nearly all of a first run's time is XLA compiling the minimizer, the Jacobian engine and
the observables (the README's command: 185 programs). JAX can keep compiled programs on
disk; `enable` turns that on in a per-user directory, so a second run of the same command
(or the next frame size, parameter sample or config that compiles the same programs)
loads them in milliseconds.

**Where.** `$SENSITIV_CACHE_DIR`, else `$XDG_CACHE_HOME/sensitiv`, else
`~/.cache/sensitiv`; inside it one folder per (sensitiv, jax, jaxlib) version triple,
`jax-<sensitiv>-<jax>-<jaxlib>`. JAX's own key already hashes the program, its compile
options, the backend and the jax/jaxlib versions; the versioned folder adds sensitiv's
version, so an upgrade of either never reuses (or grows) the old entries, and removing a
stale folder is `rm -r` of one directory. There is no size cap: JAX's capped cache
evicts through per-entry access-time files that concurrent processes (Dask workers, a
parallel test suite) race on, and a lost race fails the write.

**Off.** `sensitiv analyze --no-cache` (also `check`), or `SENSITIV_NO_CACHE=1`.
`sensitiv.analyze` in Python uses it too, unless JAX already has a cache folder of the
caller's or jax was imported before sensitiv (see `quiet_loads`).

**Example:**

```python
from sensitiv import cache
path = cache.enable()          # before the first compilation
cache.directory()              # PosixPath('/home/me/.cache/sensitiv/jax-0.1.0-0.10.1-0.10.1')
```
"""

from __future__ import annotations

import os
from pathlib import Path

import jax

from . import _XLA_LOGS_QUIET, __version__

__all__ = ["directory", "enable", "disable", "enabled_by_environment", "quiet_loads"]

_FALSE = {"", "0", "false", "no", "off"}


def _versions() -> tuple[str, str, str]:
    import jaxlib  # lazy: only its version string is read, jax has imported it already

    return __version__, jax.__version__, jaxlib.__version__


def directory(base: str | os.PathLike | None = None) -> Path:
    """The versioned cache folder of this sensitiv/jax/jaxlib (not created here).

    **Arguments:**

    - `base`: the parent folder; default `$SENSITIV_CACHE_DIR`, else
      `$XDG_CACHE_HOME/sensitiv`, else `~/.cache/sensitiv`.

    **Returns:** `base / "jax-<sensitiv>-<jax>-<jaxlib>"`.

    **Example:**

    ```python
    cache.directory("/tmp/c").name    # 'jax-0.1.0-0.10.1-0.10.1'
    ```
    """
    if base is None:
        base = os.environ.get("SENSITIV_CACHE_DIR") or None
    if base is None:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        base = os.path.join(xdg, "sensitiv")
    return Path(base).expanduser() / ("jax-" + "-".join(_versions()))


def enabled_by_environment() -> bool:
    """Whether the environment leaves the cache on (`SENSITIV_NO_CACHE` unset or false).

    **Returns:** `False` when `SENSITIV_NO_CACHE` is set to anything but `0/false/no/off`.

    **Example:**

    ```python
    if cache.enabled_by_environment():
        cache.enable()
    ```
    """
    return os.environ.get("SENSITIV_NO_CACHE", "").strip().lower() in _FALSE


def quiet_loads() -> bool:
    """Whether loading programs from the cache is silent in this process.

    XLA:CPU logs an error line per program it loads from the cache (a false alarm,
    jax-ml/jax#38445) unless `TF_CPP_MIN_LOG_LEVEL=3` was set before jaxlib loaded, which
    `import sensitiv` does when it comes first. `sensitiv.analyze` turns the cache on by
    itself only then.

    **Returns:** `True` when `import sensitiv` preceded jax and the level is 3.

    **Example:**

    ```python
    cache.quiet_loads()
    ```
    """
    return bool(_XLA_LOGS_QUIET) and os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "3"


def _reset_if_initialized() -> None:
    # JAX opens the cache folder at the first compilation and keeps it; a later change of
    # folder takes effect only once that handle is dropped. There is no public call for
    # it, so this stays best effort: on a JAX without it the change applies to new processes.
    try:
        from jax._src import compilation_cache  # lazy: private module, guarded
    except ImportError:  # pragma: no cover - depends on JAX's internals
        return
    reset = getattr(compilation_cache, "reset_cache", None)
    if reset is not None:
        reset()


def enable(base: str | os.PathLike | None = None, *, min_compile_seconds: float = 0.0) -> Path:
    """Keep every compiled program in the versioned cache folder (and read it back).

    **Arguments:**

    - `base`: the parent folder (see `directory`).
    - `min_compile_seconds`: programs that compile faster are not stored. 0 stores all:
      a cold run of sensitiv is hundreds of small programs, each cheap alone.

    **Returns:** the folder in use (created if missing).

    **Example:**

    ```python
    cache.enable("/scratch/me/sensitiv-cache")
    ```
    """
    path = directory(base)
    path.mkdir(parents=True, exist_ok=True)
    # JAX decides once per process (at the first compilation) whether the cache is used:
    # after `disable`, or for another folder, that decision must be taken again
    if jax.config.jax_compilation_cache_dir != str(path) or not jax.config.jax_enable_compilation_cache:
        _reset_if_initialized()
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_enable_compilation_cache", True)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", float(min_compile_seconds))
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    jax.config.update("jax_compilation_cache_max_size", -1)
    return path


def disable() -> None:
    """Stop reading and writing the persistent cache in this process.

    **Example:**

    ```python
    cache.disable()
    ```
    """
    jax.config.update("jax_enable_compilation_cache", False)
    _reset_if_initialized()
