"""Columns sharded over 8 (virtual CPU) devices give the single-device Jacobian.

The device count is fixed when jax initializes, so the check runs in a subprocess with
`XLA_FLAGS=--xla_force_host_platform_device_count=8` set before jax is imported.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import jax
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import numpy as np
    from sensitiv.jacobian import jacobian, translation_modes

    assert jax.device_count() == 8, jax.devices()
    n_atoms = 6

    def energy(x, theta):
        # a ring of springs with per-spring stiffness and rest lengths (translation invariant)
        d = x - jnp.roll(x, -1, axis=0)
        r = jnp.sqrt(jnp.sum(d**2, axis=1))
        rest = 1.0 + 0.1 * theta[n_atoms:]
        return 0.5 * jnp.sum((1.0 + theta[:n_atoms] ** 2) * (r - rest) ** 2) + 0.1 * jnp.sum(
            jnp.cos(3.0 * jnp.arctan2(d[:, 1], d[:, 0])))

    F = jax.grad(energy)
    theta = jnp.asarray(np.linspace(0.2, 1.1, 2 * n_atoms))  # n = 12: not a multiple of 8
    angles = 2 * np.pi * np.arange(n_atoms) / n_atoms
    x = jnp.asarray(np.stack([np.cos(angles), np.sin(angles)], 1) * 1.05)
    shape = x.shape
    g = jax.grad(lambda v: energy(v.reshape(shape), theta))
    h = jax.hessian(lambda v: energy(v.reshape(shape), theta))
    v = x.reshape(-1)
    for _ in range(40):
        v = v - jnp.linalg.pinv(h(v), rtol=1e-12) @ g(v)
    x = v.reshape(shape)
    null = translation_modes(n_atoms, 2)
    # free ring: a rotation is a zero mode too
    c = np.asarray(x) - np.asarray(x).mean(0)
    rot = np.stack([-c[:, 1], c[:, 0]], 1).reshape(1, -1)
    z = np.concatenate([np.asarray(null), rot / np.linalg.norm(rot)])
    for method in ("dense", "krylov", "reverse"):
        one = jacobian(F, x, theta, method=method, null_space=z, symmetric=True, shard=False)
        many = jacobian(F, x, theta, method=method, null_space=z, symmetric=True, shard="auto")
        a, b = np.asarray(one.jacobian), np.asarray(many.jacobian)
        err = np.max(np.abs(a - b)) / np.max(np.abs(a))
        assert err < 1e-12, (method, err)
        assert bool(one.info.trustworthy) and bool(many.info.trustworthy), many.info.warnings
        np.testing.assert_allclose(one.info.column_residual, many.info.column_residual, rtol=0, atol=1e-12)
        print(method, "ok", err)
    """
)


def test_sharded_columns_match_single_device():
    env = dict(os.environ)
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8").strip()
    env["JAX_PLATFORMS"] = "cpu"
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for method in ("dense", "krylov", "reverse"):
        assert f"{method} ok" in proc.stdout
