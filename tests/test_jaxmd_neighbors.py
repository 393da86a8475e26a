"""Neighbor lists of the jax-md plugin: equal to all pairs (periodic, triclinic, free),
under jit and vmap; overflow and parameter growth flagged and reallocated, never silently
wrong; interactions cover the Hessian's sparsity."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax_md import energy as jmd_energy
from jax_md import space as jmd_space

import sensitiv_jaxmd as sj
from sensitiv.records import Structure


def packing(n, side, seed=0, diameters=None):
    rng = np.random.default_rng(seed)
    species = (np.arange(n) >= n // 2).astype(int)
    return Structure(
        positions=rng.uniform(0, side, (n, 2)), species=species, species_names=("A", "B"),
        cell=np.eye(2) * side, pbc=(True, True), length_units="1", source="test:packing",
        info={} if diameters is None else {"diameters": diameters},
    )


def lattice(n_side, cell, jitter, seed=0, pbc=True):
    dim = cell.shape[0]
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.arange(n_side)] * dim, indexing="ij"), -1).reshape(-1, dim)
    positions = ((grid + 0.5) / n_side + rng.uniform(-jitter, jitter, grid.shape) / n_side) @ cell
    return Structure(
        positions=positions, species=np.arange(len(positions)) % 2, species_names=("A", "B"),
        cell=cell if pbc else None, pbc=(pbc,) * dim, length_units="1", source="test:lattice",
    )


def both(name, structure, **options):
    """The same model with the neighbor list and with all pairs."""
    record = sj.MODELS[name].record()
    listed = record.factory(structure, {**options, "neighbor_list": True})
    dense = record.factory(structure, {**options, "neighbor_list": False})
    return listed, dense


CASES = {
    "periodic_2d": lambda: both("soft_sphere_additive", packing(60, 8.8, diameters=[1.0, 1.4])),
    "triclinic_3d": lambda: both(
        "lennard_jones",
        lattice(5, 6.0 * np.array([[1.0, 0, 0], [0.2, 1.0, 0], [0.1, -0.1, 1.0]]), 0.2),
        r_onset=1.2, r_cutoff=1.5, parameters={"sigma": [[0.9, 0.95], [0.95, 1.0]]},
    ),
    "free_3d": lambda: both("morse", lattice(4, 4.4 * np.eye(3), 0.2, pbc=False)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_neighbor_list_equals_all_pairs(case):
    listed, dense = CASES[case]()
    nlist = sj.neighbor_list(listed)
    assert max(nlist.grid) >= 3, nlist  # the cell list is really exercised
    assert not sj.neighbor_list(dense).enabled and not sj.neighbor_list(dense).compacted
    x, p = listed.positions, listed.params

    def value_and_gradient(system):
        return jax.jit(lambda x, p: (system.energy(x, p), jax.grad(system.energy)(x, p)))(x, p)

    e_list, g_list = value_and_gradient(listed)
    e_dense, g_dense = value_and_gradient(dense)
    assert abs(float(e_dense)) > 1e-3
    assert float(e_list) == pytest.approx(float(e_dense), rel=1e-12)
    np.testing.assert_allclose(g_list, g_dense, rtol=0, atol=1e-11 * np.abs(g_dense).max())
    if case == "periodic_2d":  # vmap over a batch of configurations
        batch = jnp.stack([x, x + 0.01 * jnp.sin(x)])
        batched = jax.vmap(listed.energy, in_axes=(0, None))(batch, p)
        assert float(batched[0]) == pytest.approx(float(e_dense), rel=1e-12)
        assert float(batched[1]) == pytest.approx(float(dense.energy(batch[1], p)), rel=1e-12)


def test_overflow_is_flagged_never_truncated_and_reallocated():
    listed, dense = both("soft_sphere_additive", packing(30, 6.22, diameters=[1.0, 1.4]))
    x, p = listed.positions, listed.params
    nlist = sj.neighbor_list(listed)
    exact = float(dense.energy(x, p))
    nlist.max_neighbors = 2  # an under-sized list, as after a compression
    nlist.allocations += 1
    traced = jax.jit(lambda x, p: (listed.energy(x, p), jax.grad(listed.energy)(x, p)))
    value, force = traced(x, p)
    assert np.isnan(float(value))
    # NaN forces (on every interacting atom), never zero forces a minimizer would accept.
    assert np.isnan(float(jnp.max(jnp.linalg.norm(force, axis=-1))))
    diagnosis = sj.diagnose(listed, x, p)
    assert diagnosis.status == 1 and "capacity" in diagnosis.message
    assert sj.ensure_neighbors(listed, x, p) is True
    assert nlist.max_neighbors > 2 and sj.diagnose(listed, x, p).ok
    assert float(jax.jit(listed.energy)(x, p)) == pytest.approx(exact, rel=1e-12)

    nlist.cell_capacity = 1
    nlist.allocations += 1
    assert sj.diagnose(listed, x, p).status & 2  # cell-list overflow


def test_fire_reallocates_and_reaches_a_true_minimum():
    structure = packing(30, 6.22, diameters=[1.0, 1.4])
    listed, dense = both("soft_sphere_additive", structure)
    nlist = sj.neighbor_list(listed)
    nlist.max_neighbors = 3
    nlist.allocations += 1
    result = sj.fire({"ftol": 1e-9})(listed, listed.positions, listed.params)
    assert result.converged, result.info
    assert result.info["neighbor_reallocations"] >= 1
    # The minimum is one of the exact (all-pairs) energy.
    exact_force = jax.jit(jax.grad(dense.energy))(result.positions, dense.params)
    assert float(jnp.max(jnp.linalg.norm(exact_force, axis=-1))) <= 1e-9
    assert result.info["energy"] == pytest.approx(float(dense.energy(result.positions, dense.params)), rel=1e-12)


def test_growing_sigma_never_drops_pairs():
    structure = Structure(**{**packing(150, 12.1, seed=1).__dict__, "species_names": ("A", "B")})
    x = jnp.asarray(structure.positions)
    # jax-md: the list radius is fixed at build time (sigma = 1 plus dr_threshold 0.2);
    # evaluated at sigma = 1.3, the pairs between 1.2 and 1.3 are silently dropped.
    displacement, _ = jmd_space.periodic(12.1)
    neighbor_fn, energy_fn = jmd_energy.soft_sphere_neighbor_list(displacement, 12.1, sigma=jnp.asarray(1.0))
    neighbors = neighbor_fn.allocate(x)
    upstream = float(jax.jit(lambda x, n: energy_fn(x, n, sigma=jnp.asarray(1.3)))(x, neighbors))
    exact = float(jax.jit(jmd_energy.soft_sphere_pair(displacement, sigma=jnp.asarray(1.3)))(x))
    assert upstream < exact - 1e-3 * exact  # the trap

    listed, dense = both("soft_sphere", structure)
    grown = dict(listed.params, sigma=jnp.full((2, 2), 1.3))
    assert float(dense.energy(x, grown)) == pytest.approx(exact, rel=1e-12)
    within_skin = dict(listed.params, sigma=jnp.full((2, 2), 1.1))
    traced = jax.jit(listed.energy)
    assert float(traced(x, within_skin)) == pytest.approx(float(dense.energy(x, within_skin)), rel=1e-12)
    value = float(traced(x, grown))  # beyond the skin: flagged, not wrong
    assert np.isnan(value) or value == pytest.approx(exact, rel=1e-12)
    if np.isnan(value):
        assert not sj.diagnose(listed, x, grown).ok
    assert float(listed.energy(x, grown)) == pytest.approx(exact, rel=1e-12)  # eager reallocates


def _block_norms(hessian, n, dim):
    return np.abs(hessian.reshape(n, dim, n, dim)).max(axis=(1, 3))


@pytest.mark.parametrize("name", ["soft_sphere_additive", "stillinger_weber"])
def test_interactions_cover_the_hessian_sparsity(name):
    if name == "soft_sphere_additive":
        structure = packing(40, 6.3, seed=2, diameters=[1.0, 1.4])
    else:
        a = 5.431
        basis = np.array([(0, 0, 0), (0, .5, .5), (.5, 0, .5), (.5, .5, 0),
                          (.25, .25, .25), (.25, .75, .75), (.75, .25, .75), (.75, .75, .25)])
        cells = [(i, j, k) for i in range(2) for j in range(2) for k in range(2)]
        positions = np.array([(b + np.array(c)) * a for c in cells for b in basis])
        positions += np.random.default_rng(0).normal(0, 0.01, positions.shape)
        structure = Structure(positions=positions, species=np.zeros(64, int), species_names=("Si",),
                              cell=np.eye(3) * 2 * a, pbc=(True,) * 3)
    system = sj.MODELS[name].record().factory(structure, {})
    x, p = system.positions, system.params
    pairs = np.asarray(system.interactions(x, p))
    n, dim = x.shape
    assert pairs.ndim == 2 and pairs.shape[1] == 2 and np.all(pairs[:, 0] < pairs[:, 1])
    assert len({tuple(q) for q in pairs}) == len(pairs)
    hessian = np.asarray(jax.jit(jax.hessian(lambda v: system.energy(v.reshape(n, dim), p)))(jnp.ravel(x)))
    blocks = _block_norms(hessian, n, dim)
    listed = np.zeros((n, n), bool)
    listed[pairs[:, 0], pairs[:, 1]] = listed[pairs[:, 1], pairs[:, 0]] = True
    off_diagonal = ~np.eye(n, dtype=bool)
    assert np.all(blocks[off_diagonal & ~listed] == 0.0)  # nothing outside the list couples
    assert np.mean(blocks[listed] > 0) > 0.95  # and the list is not padded with non-couplings
    if name == "stillinger_weber":
        degree = listed.sum(axis=1)
        assert degree.min() == degree.max() == 16  # 4 bonds + 12 atoms sharing a bond partner
