import jax

# Every derivative in the suite is checked in float64.
jax.config.update("jax_enable_x64", True)
