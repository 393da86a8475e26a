"""The Jacobian engine through the jax-md plugin: its strain parameter, stress observable,
interaction pairs and null space — the relaxed-ion elastic tensor against finite
differences of re-relaxed stresses."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

sj = pytest.importorskip("sensitiv_jaxmd")

from sensitiv.engine import Sparsity, jacobian, total_derivative  # noqa: E402
from sensitiv.records import Structure  # noqa: E402

N_ATOMS = 16


def packing(n=N_ATOMS, seed=0):
    small = np.arange(n) < n // 2
    diameters = np.where(small, 1.0, 1.4)
    side = np.sqrt(np.pi / 4 * np.sum(diameters**2) / 0.9)
    rng = np.random.default_rng(seed)
    return Structure(
        positions=rng.uniform(0.0, side, (n, 2)), species=(~small).astype(int),
        species_names=("A", "B"), cell=np.eye(2) * side, pbc=(True, True),
        length_units="1", source="test:packing", info={"diameters": [1.0, 1.4]},
    )


def newton(energy, x, params, steps):
    shape = x.shape
    grad = jax.grad(lambda v, p: energy(v.reshape(shape), p))
    hess = jax.hessian(lambda v, p: energy(v.reshape(shape), p))

    def step(_, v):
        return v - jnp.linalg.pinv(hess(v, params), rtol=1e-12) @ grad(v, params)

    return jax.lax.fori_loop(0, steps, step, x.reshape(-1)).reshape(shape)


@pytest.fixture(scope="module")
def relaxed():
    system = sj.MODELS["soft_sphere_additive"].record().factory(packing(), {})
    params = dict(system.params)
    result = sj.fire({"ftol": 1e-10})(system, system.positions, params)
    x = jax.jit(newton, static_argnums=(0, 3))(system.energy, result.positions, params, 6)
    F = sj.stationary(system)
    assert float(jnp.linalg.norm(F(x, params))) < 1e-13
    return system, params, x, F


@pytest.mark.slow  # eight re-relaxations and the plugin's stress compiled twice: ~1 min on 2 cores
def test_relaxed_ion_elastic_tensor_through_the_plugin(relaxed):
    system, params, x, F = relaxed
    stress = system.observables["stress"]
    null = system.null_space(x)
    result = total_derivative(stress, F, x, params, null_space=null, symmetric=True, method="dense")
    assert bool(result.info.trustworthy), result.info.warnings
    elastic = np.asarray(result.jacobian["strain"])  # dσ_ij / dε_kl, (2, 2, 2, 2)
    assert elastic.shape == (2, 2, 2, 2)

    relax = jax.jit(lambda x0, p: newton(system.energy, x0, p, 6))
    h = 1e-6
    fd = np.zeros((2, 2, 2, 2))
    for k in range(2):
        for l in range(2):
            out = []
            for sign in (1.0, -1.0):
                p = dict(params, strain=params["strain"].at[k, l].add(sign * h))
                out.append(np.asarray(stress(relax(x, p), p)))
            fd[:, :, k, l] = (out[0] - out[1]) / (2 * h)
    scale = np.max(np.abs(fd))
    assert np.max(np.abs(elastic - fd)) < 1e-6 * scale
    clamped = np.asarray(jax.jacfwd(stress, argnums=1)(x, params)["strain"])
    assert np.max(np.abs(clamped - fd)) > 1e-3 * scale  # the ions' relaxation matters


def test_plugin_interactions_as_structure_hint(relaxed):
    system, params, x, F = relaxed
    null = system.null_space(x)
    sparsity = Sparsity.from_pairs(np.asarray(system.interactions(x, params)), N_ATOMS, 2)
    plain = jacobian(F, x, params, method="dense", null_space=null, symmetric=True)
    hinted = jacobian(F, x, params, method="dense", null_space=null, symmetric=True, sparsity=sparsity)
    assert hinted.info.n_colors == sparsity.n_colors > 0
    assert float(hinted.info.sparsity_error) < 1e-12
    for a, b in zip(jax.tree.leaves(plain.jacobian), jax.tree.leaves(hinted.jacobian)):
        assert np.max(np.abs(np.asarray(a) - np.asarray(b))) <= 1e-10 * max(np.max(np.abs(np.asarray(a))), 1e-300)
