import os

import jax

# Every derivative in the suite is checked in float64.
jax.config.update("jax_enable_x64", True)

# Nearly all of the suite's time is XLA compilation: a persistent cache makes re-runs on one
# machine several times faster (tests/test_jacobian.py: 69 s -> 17 s on 2 cores). JAX keys
# entries by the program, its compile options and the jax/jaxlib versions, so a stale entry
# is never reused. A clean machine (CI) starts with an empty cache.
jax.config.update(
    "jax_compilation_cache_dir",
    os.environ.get("SENSITIV_TEST_CACHE_DIR", os.path.join(os.path.expanduser("~"), ".cache", "sensitiv", "jax-tests")),
)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
