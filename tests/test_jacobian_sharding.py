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
    from sensitiv.engine import jacobian, translation_modes

    assert jax.device_count() == 8, jax.devices()
    n_atoms = 6

    def energy(x, theta):
        # a complete spring network whose rest lengths θ makes frustrated: a rigid,
        # prestressed minimum with only rigid-body zero modes
        i, j = np.triu_indices(n_atoms, 1)
        r = jnp.sqrt(jnp.sum((x[i] - x[j]) ** 2, axis=1))
        rest = rest0 * (1.0 + 0.05 * theta[np.arange(i.size) % theta.size])
        return 0.5 * jnp.sum((r - rest) ** 2) + 0.01 * jnp.sum((r - rest) ** 4)

    F = jax.grad(energy)
    theta = jnp.asarray(np.linspace(-1.0, 1.0, 2 * n_atoms))  # n = 12: not a multiple of 8
    angles = 2 * np.pi * np.arange(n_atoms) / n_atoms
    x0 = np.stack([np.cos(angles), np.sin(angles)], 1)
    i, j = np.triu_indices(n_atoms, 1)
    rest0 = jnp.asarray(np.linalg.norm(x0[i] - x0[j], axis=1))
    x = jnp.asarray(x0)
    shape = x.shape
    g = jax.grad(lambda v: energy(v.reshape(shape), theta))
    h = jax.hessian(lambda v: energy(v.reshape(shape), theta))
    v = x.reshape(-1)
    for _ in range(40):
        v = v - jnp.linalg.pinv(h(v), rtol=1e-12) @ g(v)
    x = v.reshape(shape)
    assert float(jnp.linalg.norm(g(v))) < 1e-12
    assert np.sum(np.linalg.eigvalsh(np.asarray(h(v))) > 1e-8) == 2 * n_atoms - 3  # rigid minimum
    null = translation_modes(n_atoms, 2)
    # free ring: a rotation is a zero mode too
    c = np.asarray(x) - np.asarray(x).mean(0)
    rot = np.stack([-c[:, 1], c[:, 0]], 1).reshape(1, -1)
    z = np.concatenate([np.asarray(null), rot / np.linalg.norm(rot)])
    for method in ("dense", "krylov"):  # reverse mode shares the dense path's sharded solve
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
    for method in ("dense", "krylov"):
        assert f"{method} ok" in proc.stdout
