import os

import sensitiv  # noqa: F401  first: it quiets XLA's C++ log before jaxlib loads (sensitiv.cache)
from sensitiv import cache

import jax

# Every derivative in the suite is checked in float64.
jax.config.update("jax_enable_x64", True)

# Nearly all of the suite's time is XLA compilation: the product's persistent cache
# (sensitiv.cache) makes re-runs on one machine several times faster (tests/test_jacobian.py:
# 69 s -> 17 s on 2 cores). Its folder is versioned by sensitiv/jax/jaxlib and JAX keys each
# entry by the program and its compile options, so a stale entry is never reused. The suite
# keeps its own parent folder (not the user's), also for the commands it runs in subprocesses;
# a clean machine (CI) starts with an empty cache.
os.environ["SENSITIV_CACHE_DIR"] = os.environ.get(
    "SENSITIV_TEST_CACHE_DIR", os.path.join(os.path.expanduser("~"), ".cache", "sensitiv-tests")
)
os.environ.pop("SENSITIV_NO_CACHE", None)
cache.enable()
