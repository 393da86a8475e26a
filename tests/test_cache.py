"""The persistent compilation cache (issue 14.1): where it lives, how it is keyed, on/off.

The reuse itself is observed in fresh interpreters (the suite's own process has its cache
on since conftest.py): the second process loads every program the first one stored, and
prints no line about it on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import jax
import pytest

from sensitiv import cache, cli

_PROGRAM = """
import json, sys
import sensitiv
from sensitiv import cache
import jax, jax.numpy as jnp
from jax import monitoring
events = []
monitoring.register_event_listener(lambda event, **kw: events.append(event))
if sys.argv[1] == "on":
    cache.enable()
jax.jit(lambda x: jnp.sin(x) * 2.0 + jnp.cumsum(x))(jnp.arange(7.0)).block_until_ready()
print(json.dumps({"hits": sum("cache_hits" in e for e in events),
                  "misses": sum("cache_misses" in e for e in events)}))
"""


def _run(tmp_path, mode: str, **env) -> tuple[dict, str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("SENSITIV_", "TF_CPP"))}
    environment.update(SENSITIV_CACHE_DIR=str(tmp_path / "cache"), **env)
    done = subprocess.run([sys.executable, "-c", _PROGRAM, mode], env=environment,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


def test_directory_is_versioned_and_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SENSITIV_CACHE_DIR", str(tmp_path))
    path = cache.directory()
    assert path.parent == tmp_path
    assert path.name == f"jax-{cache.__version__}-{jax.__version__}-{jax.__version__}"
    assert cache.directory(tmp_path / "other").parent == tmp_path / "other"
    monkeypatch.delenv("SENSITIV_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.directory().parent == tmp_path / "xdg" / "sensitiv"


def test_another_version_never_shares_a_folder(tmp_path, monkeypatch):
    here = cache.directory(tmp_path)
    monkeypatch.setattr(cache, "__version__", "9.9.9")
    assert cache.directory(tmp_path) != here
    monkeypatch.setattr(cache, "__version__", here.name.split("-")[1])
    monkeypatch.setattr(jax, "__version__", "0.0.1")
    assert cache.directory(tmp_path) != here


def test_a_second_process_loads_what_the_first_stored_quietly(tmp_path):
    first, _ = _run(tmp_path, "on")
    assert first["misses"] >= 1 and first["hits"] == 0
    folder = cache.directory(tmp_path / "cache")
    assert any(folder.iterdir()), "nothing was stored"
    second, stderr = _run(tmp_path, "on")
    assert second["hits"] >= 1 and second["misses"] == 0
    assert "cpu_aot_loader" not in stderr and "AOT result" not in stderr


_OFF_THEN_ON = """
import pathlib, sys
import sensitiv
from sensitiv import cache
import jax, jax.numpy as jnp
stored = lambda: sum(p.is_file() for p in pathlib.Path(sys.argv[1]).rglob("*"))
cache.enable()
jax.jit(lambda x: jnp.sin(x) + 1.0)(jnp.arange(3.0)).block_until_ready()
first = stored()
cache.disable()
jax.jit(lambda x: jnp.cos(x) * 3.0)(jnp.arange(4.0)).block_until_ready()
off = stored()
cache.enable()
jax.jit(lambda x: jnp.tan(x) * 5.0 + 2.0)(jnp.arange(5.0)).block_until_ready()
print(first, off, stored())
"""


def test_enable_after_disable_in_one_process_stores_again(tmp_path):
    # JAX decides at the first compilation whether a process uses the cache; enable() must
    # make it decide again, else the command line's --no-cache would stick in the process
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("SENSITIV_", "TF_CPP"))}
    environment.update(SENSITIV_CACHE_DIR=str(tmp_path / "cache"))
    done = subprocess.run([sys.executable, "-c", _OFF_THEN_ON, str(tmp_path / "cache")], env=environment,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    first, off, last = map(int, done.stdout.split())
    assert first >= 1 and off == first and last > off


def test_off_stores_nothing(tmp_path):
    result, _ = _run(tmp_path, "off")
    assert result["hits"] == 0
    folder = tmp_path / "cache"
    assert not folder.exists() or not any(folder.rglob("*-*"))


@pytest.mark.parametrize("argv, environment, expected", [
    (["analyze", "c.yaml"], {}, True),
    (["analyze", "c.yaml", "--no-cache"], {}, False),
    (["check", "c.yaml", "--no-cache"], {}, False),
    (["analyze", "c.yaml"], {"SENSITIV_NO_CACHE": "1"}, False),
    (["analyze", "c.yaml"], {"SENSITIV_NO_CACHE": "0"}, True),
])
def test_command_line_switch(tmp_path, monkeypatch, argv, environment, expected):
    before = (jax.config.jax_compilation_cache_dir, jax.config.jax_enable_compilation_cache)
    monkeypatch.setenv("SENSITIV_CACHE_DIR", str(tmp_path))
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    args = cli.build_parser().parse_args(argv, namespace=argparse.Namespace(command_line=argv))
    try:
        cli._use_cache(args)
        assert jax.config.jax_enable_compilation_cache is expected
        if expected:
            assert jax.config.jax_compilation_cache_dir == str(cache.directory(tmp_path))
    finally:  # the suite's own cache, as conftest.py set it
        jax.config.update("jax_compilation_cache_dir", before[0])
        jax.config.update("jax_enable_compilation_cache", before[1])
        cache._reset_if_initialized()
