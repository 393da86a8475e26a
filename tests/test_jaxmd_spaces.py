"""Spaces of the jax-md plugin: triclinic cells, strain as a parameter (virial, stress),
the fractional-coordinate trap, periodic images beyond the minimum image, slabs and null
spaces."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax_md import energy as jmd_energy
from jax_md import space as jmd_space

import sensitiv_jaxmd as sj
from sensitiv.errors import InputError
from sensitiv.records import Structure

DIAMOND_BASIS = np.array([
    (0, 0, 0), (0, 0.5, 0.5), (0.5, 0, 0.5), (0.5, 0.5, 0),
    (0.25, 0.25, 0.25), (0.25, 0.75, 0.75), (0.75, 0.25, 0.75), (0.75, 0.75, 0.25),
])
TRICLINIC = np.array([[1.0, 0.0, 0.0], [0.3, 1.0, 0.0], [0.2, -0.15, 1.0]])  # rows


def structure(positions, cell=None, pbc=None, species=None, source="test"):
    positions = np.asarray(positions, float)
    n, dim = positions.shape
    return Structure(
        positions=positions,
        species=np.zeros(n, int) if species is None else np.asarray(species),
        species_names=("A", "B") if species is not None else ("A",),
        cell=cell,
        pbc=pbc if pbc is not None else ((True,) * dim if cell is not None else (False,) * dim),
        length_units="1",
        source=source,
    )


def lattice_in_cell(n_side, cell, jitter, seed=0):
    """Points on a grid of fractional coordinates, displaced, mapped by the cell rows."""
    dim = cell.shape[0]
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.arange(n_side)] * dim, indexing="ij"), -1).reshape(-1, dim)
    fractional = (grid + 0.5) / n_side + rng.uniform(-jitter, jitter, grid.shape) / n_side
    return fractional @ cell


def lj_pair(r, sigma=1.0, epsilon=1.0, r_onset=2.0, r_cutoff=2.5):
    """An independent scalar LJ with the C¹ switch, for reference virials."""
    s6 = (sigma / r) ** 6
    e = 4 * epsilon * (s6 * s6 - s6)
    rc2, ro2, r2 = (r_cutoff * sigma) ** 2, (r_onset * sigma) ** 2, r**2
    switch = jnp.where(r < r_onset * sigma, 1.0,
                       (rc2 - r2) ** 2 * (rc2 + 2 * r2 - 3 * ro2) / (rc2 - ro2) ** 3)
    return jnp.where(r < r_cutoff * sigma, e * switch, 0.0)


def explicit_virial(positions, cell, pair, cutoff):
    """W = −Σ_{pairs, images} φ'(r) r⊗r / r by enumerating periodic images (no minimum image)."""
    positions, cell = np.asarray(positions), np.asarray(cell)
    dim = cell.shape[0]
    dphi = jax.jit(jax.grad(pair))
    virial = np.zeros((dim, dim))
    shifts = [np.array(s) @ cell for s in itertools.product((-1, 0, 1), repeat=dim)]
    n = len(positions)
    for i in range(n):
        for j in range(n):
            for shift in shifts:
                if i == j and not shift.any():
                    continue
                d = positions[i] - positions[j] + shift
                r = np.linalg.norm(d)
                if r < cutoff:
                    virial -= 0.5 * float(dphi(r)) * np.outer(d, d) / r
    return virial


# -- triclinic cells and strain --------------------------------------------------------------


def test_triclinic_cell_matches_jax_md_periodic_general():
    cell = 4.2 * TRICLINIC
    positions = lattice_in_cell(4, cell, 0.3)
    system = sj.MODELS["soft_sphere"].record().factory(structure(positions, cell), {})
    # jax-md wants the lattice vectors as columns: box = cellᵀ (upper triangular here).
    displacement, _ = jmd_space.periodic_general(jnp.asarray(cell.T), fractional_coordinates=False)
    reference = jax.jit(jmd_energy.soft_sphere_pair(displacement, sigma=jnp.asarray(1.0)))(jnp.asarray(positions))
    assert float(reference) > 0.1
    assert float(system.energy(system.positions, system.params)) == pytest.approx(float(reference), rel=1e-12)


@pytest.fixture(scope="module")
def lj_2d():
    cell = np.array([[7.2, 0.0], [1.1, 7.0]])
    positions = lattice_in_cell(6, cell, 0.15, seed=3)
    system = sj.MODELS["lennard_jones"].record().factory(structure(positions, cell), {})
    return system, cell


def test_strain_deforms_positions_and_cell(lj_2d):
    system, cell = lj_2d
    strain = jnp.array([[0.02, 0.01], [0.01, -0.015]])
    F = np.eye(2) + np.asarray(strain)
    strained = dict(system.params, strain=strain)
    deformed = sj.MODELS["lennard_jones"].record().factory(
        structure(np.asarray(system.positions) @ F.T, cell @ F.T), {}
    )
    assert float(system.energy(system.positions, strained)) == pytest.approx(
        float(deformed.energy(deformed.positions, deformed.params)), rel=1e-12
    )
    # Only the symmetric part acts: an antisymmetric strain changes nothing (first order
    # would be a rotation; F = I + sym(ε) makes it exactly nothing).
    antisymmetric = dict(system.params, strain=jnp.array([[0.0, 0.3], [-0.3, 0.0]]))
    assert float(system.energy(system.positions, antisymmetric)) == pytest.approx(
        float(system.energy(system.positions, system.params)), rel=1e-14
    )


def test_strain_gradient_is_minus_virial_and_matches_finite_differences(lj_2d):
    system, cell = lj_2d
    x, params = system.positions, system.params
    e_of_strain = jax.jit(lambda s: system.energy(x, dict(params, strain=s)))
    gradient = np.asarray(jax.jit(jax.grad(e_of_strain))(params["strain"]))
    h = 1e-6
    for a, b in [(0, 0), (1, 1), (0, 1)]:
        direction = np.zeros((2, 2))
        direction[a, b] = direction[b, a] = 1.0
        fd = (float(e_of_strain(h * direction)) - float(e_of_strain(-h * direction))) / (2 * h)
        assert np.sum(gradient * direction) == pytest.approx(fd, rel=1e-7, abs=1e-9)
    virial = explicit_virial(x, cell, lj_pair, 2.5)
    np.testing.assert_allclose(gradient, -virial, rtol=1e-10, atol=1e-10 * np.abs(virial).max())
    volume = abs(np.linalg.det(cell))
    np.testing.assert_allclose(system.observables["stress"](x, params), gradient / volume, rtol=1e-12)


def test_stress_of_a_strained_cell_is_the_virial_of_the_deformed_configuration(lj_2d):
    system, cell = lj_2d
    strain = np.array([[0.01, -0.004], [-0.004, 0.02]])
    F = np.eye(2) + strain
    stress = system.observables["stress"](system.positions, dict(system.params, strain=jnp.asarray(strain)))
    deformed_cell = cell @ F.T
    virial = explicit_virial(np.asarray(system.positions) @ F.T, deformed_cell, lj_pair, 2.5)
    np.testing.assert_allclose(stress, -virial / abs(np.linalg.det(deformed_cell)), rtol=1e-10,
                               atol=1e-12)


def test_fractional_coordinate_gradients_come_out_cartesian():
    """jax-md's `space.transform` has a custom JVP: `grad(E)(R_frac)` is the Cartesian force,
    not the derivative in fractional coordinates. This plugin works in Cartesian coordinates."""
    cell = 4.2 * TRICLINIC
    positions = lattice_in_cell(4, cell, 0.3)
    box = jnp.asarray(cell.T)
    displacement, _ = jmd_space.periodic_general(box, fractional_coordinates=True)
    energy_frac = jmd_energy.soft_sphere_pair(displacement, sigma=jnp.asarray(1.0))
    fractional = jnp.asarray(positions @ np.linalg.inv(cell))
    grad_frac = np.asarray(jax.jit(jax.grad(energy_frac))(fractional))
    h = 1e-6
    bump = np.zeros_like(positions)
    bump[0, 1] = h
    fd_frac = (float(energy_frac(fractional + bump)) - float(energy_frac(fractional - bump))) / (2 * h)
    assert abs(grad_frac[0, 1] - fd_frac) > 1e-3 * abs(fd_frac)  # the trap: not ∂E/∂s

    system = sj.MODELS["soft_sphere"].record().factory(structure(positions, cell), {})
    grad_cart = np.asarray(jax.jit(jax.grad(system.energy))(system.positions, system.params))
    np.testing.assert_allclose(grad_frac, grad_cart, rtol=1e-10, atol=1e-12)  # same numbers
    np.testing.assert_allclose((grad_cart @ cell.T)[0, 1], fd_frac, rtol=1e-7)  # chain rule
    fd_cart = (float(system.energy(system.positions + bump, system.params))
               - float(system.energy(system.positions - bump, system.params))) / (2 * h)
    assert grad_cart[0, 1] == pytest.approx(fd_cart, rel=1e-7)


# -- periodic images beyond the minimum image ---------------------------------------------------


def lattice_sum(positions, cell, pair, cutoff, reach):
    """E, forces and virial by brute-force enumeration of every image within `reach` cells,
    independent of the plugin (numpy loops over pairs and shifts)."""
    positions, cell = np.asarray(positions), np.asarray(cell)
    dim = cell.shape[0]
    phi = jax.jit(pair)
    dphi = jax.jit(jax.grad(pair))
    energy, forces, virial = 0.0, np.zeros_like(positions), np.zeros((dim, dim))
    shifts = [np.array(s) @ cell for s in itertools.product(range(-reach, reach + 1), repeat=dim)]
    for i in range(len(positions)):
        for j in range(len(positions)):
            for shift in shifts:
                d = positions[i] - positions[j] - shift
                r = np.linalg.norm(d)
                if r == 0 or r >= cutoff:
                    continue
                energy += 0.5 * float(phi(r))
                forces[i] -= float(dphi(r)) * d / r
                virial -= 0.5 * float(dphi(r)) * np.outer(d, d) / r
    return energy, forces, virial


def test_cells_thinner_than_twice_the_cutoff_sum_every_image():
    slanted = np.array([[3.0, 0.0], [2.4, 1.6]])  # height 1.6: LJ cutoff 2.5 spans 2 images
    positions = lattice_in_cell(2, slanted, 0.2, seed=5)
    system = sj.MODELS["lennard_jones"].record().factory(structure(positions, slanted), {})
    assert sj.neighbor_list(system).images[1] >= 2
    x, params = system.positions, system.params
    e_ref, f_ref, w_ref = lattice_sum(positions, slanted, lj_pair, 2.5, reach=4)
    assert float(system.energy(x, params)) == pytest.approx(e_ref, rel=1e-12)
    forces = -np.asarray(jax.jit(jax.grad(system.energy))(x, params))
    np.testing.assert_allclose(forces, f_ref, rtol=0, atol=1e-11 * np.abs(f_ref).max())
    stress = np.asarray(system.observables["stress"](x, params))
    np.testing.assert_allclose(stress, -w_ref / abs(np.linalg.det(slanted)), rtol=1e-10, atol=1e-13)


def test_diamond_unit_and_primitive_cells_equal_the_supercell():
    """SW silicon: the 8-atom cubic cell (cutoff 3.77 > a/2) and the 2-atom primitive cell
    give the energy per atom, forces and stress of a 64-atom supercell (minimum image)."""
    a = 5.431
    rng = np.random.default_rng(0)
    sw = sj.MODELS["stillinger_weber"].record()
    unit = structure(DIAMOND_BASIS * a + rng.normal(0, 0.05, (8, 3)), np.eye(3) * a)
    shifts = np.array(list(itertools.product(range(2), repeat=3))) * a
    big = structure(np.concatenate([unit.positions + s for s in shifts]), np.eye(3) * 2 * a)
    small, large = sw.factory(unit, {}), sw.factory(big, {})
    assert sj.neighbor_list(small).images == (1, 1, 1)
    assert sj.neighbor_list(large).images == (0, 0, 0)
    e_small = float(small.energy(small.positions, small.params))
    assert 8 * e_small == pytest.approx(float(large.energy(large.positions, large.params)), rel=1e-12)
    g_small = np.asarray(jax.grad(small.energy)(small.positions, small.params))
    g_large = np.asarray(jax.grad(large.energy)(large.positions, large.params))
    np.testing.assert_allclose(np.tile(g_small, (8, 1)), g_large, rtol=0, atol=1e-11)
    np.testing.assert_allclose(small.observables["stress"](small.positions, small.params),
                               large.observables["stress"](large.positions, large.params), atol=1e-12)
    primitive = np.array([[0.0, 0.5, 0.5], [0.5, 0.0, 0.5], [0.5, 0.5, 0.0]]) * a
    two = sw.factory(structure(np.array([[0.0, 0.0, 0.0], [0.25, 0.25, 0.25]]) * a, primitive), {})
    assert float(two.energy(two.positions, two.params)) / 2 == pytest.approx(-4.3366, abs=1e-4)


def test_thin_direction_with_the_cell_list_elsewhere():
    """A slab-shaped periodic cell: the grid covers the wide directions, images the thin one."""
    cell = np.diag([12.0, 12.0, 1.9])
    layer = lattice_in_cell(6, np.diag([12.0, 12.0]), 0.1, seed=2)
    positions = np.concatenate([layer, np.full((36, 1), 0.5)], axis=1)
    st = structure(positions, cell)
    listed = sj.MODELS["morse"].record().factory(st, {"neighbor_list": True, "r_cutoff": 2.5})
    dense = sj.MODELS["morse"].record().factory(st, {"neighbor_list": False, "r_cutoff": 2.5})
    nlist = sj.neighbor_list(listed)
    assert nlist.grid[0] >= 3 and nlist.grid[2] == 1 and nlist.images[2] >= 1
    x, p = listed.positions, listed.params
    assert float(listed.energy(x, p)) == pytest.approx(float(dense.energy(x, p)), rel=1e-12)
    np.testing.assert_allclose(jax.grad(listed.energy)(x, p), jax.grad(dense.energy)(x, p), atol=1e-10)


def test_strain_that_needs_more_images_is_flagged_then_reallocated():
    cell = np.eye(2) * 5.2  # half height 2.6 > cutoff 2.5: the minimum image suffices
    system = sj.MODELS["lennard_jones"].record().factory(structure(lattice_in_cell(4, cell, 0.1), cell), {})
    assert sj.neighbor_list(system).images == (0, 0)
    squeezed = dict(system.params, strain=jnp.array([[-0.05, 0.0], [0.0, 0.0]]))
    traced = float(jax.jit(system.energy)(system.positions, squeezed))
    assert np.isnan(traced)  # a traced call cannot reallocate: flagged, never a wrong sum
    diagnosis = sj.diagnose(system, system.positions, squeezed)
    assert not diagnosis.ok and "periodic images" in diagnosis.message
    deformed = np.asarray(system.positions) @ (np.eye(2) + np.asarray(squeezed["strain"])).T
    e_ref = lattice_sum(deformed, cell @ (np.eye(2) + np.asarray(squeezed["strain"])).T, lj_pair, 2.5, 3)[0]
    assert float(system.energy(system.positions, squeezed)) == pytest.approx(e_ref, rel=1e-12)  # eager
    assert sj.neighbor_list(system).images[0] >= 1
    result = sj.fire({"ftol": 1e-8})(system, system.positions, squeezed)
    assert result.converged, result.info


def test_slab_is_periodic_in_plane_only():
    rng = np.random.default_rng(0)
    cell = np.diag([6.0, 6.0, 6.0])
    positions = lattice_in_cell(4, cell, 0.1, seed=1)[:40] + rng.normal(0, 0.01, (40, 3))
    slab = sj.MODELS["lennard_jones"].record().factory(structure(positions, cell, pbc=(True, True, False)), {})
    vacuum = np.diag([6.0, 6.0, 40.0])
    padded = sj.MODELS["lennard_jones"].record().factory(structure(positions, vacuum), {})
    assert float(slab.energy(slab.positions, slab.params)) == pytest.approx(
        float(padded.energy(padded.positions, padded.params)), rel=1e-12
    )
    assert slab.null_space(slab.positions).shape == (3, 120)  # translations only


# -- null spaces --------------------------------------------------------------------------------------


def _hessian(system, x, params):
    flat = lambda v: system.energy(v.reshape(x.shape), params)
    return np.asarray(jax.jit(jax.hessian(flat))(jnp.ravel(x)))


def test_periodic_null_space_is_translations(lj_2d):
    system, _ = lj_2d
    x = system.positions
    null = np.asarray(system.null_space(x))
    assert null.shape == (2, x.size)
    np.testing.assert_allclose(null @ null.T, np.eye(2), atol=1e-14)
    hessian = _hessian(system, x, system.params)  # exact zero modes anywhere, not only at minima
    assert np.abs(hessian @ null.T).max() <= 1e-10 * np.abs(hessian).max()


def test_free_space_null_space_is_translations_and_rotations_at_a_minimum():
    shell = [(x, y, 0) for x in (-1, 1) for y in (-1, 1)] + [(x, 0, z) for x in (-1, 1) for z in (-1, 1)]
    shell += [(0, y, z) for y in (-1, 1) for z in (-1, 1)]
    positions = np.array([(0, 0, 0)] + shell, float) * 2.04 + np.random.default_rng(0).normal(0, 0.05, (13, 3))
    system = sj.MODELS["gupta"].record().factory(structure(positions), {"r_onset": 6.0})
    result = sj.fire({"ftol": 1e-11, "dt_max": 0.1})(system, system.positions, system.params)
    assert result.converged, result.info
    x = result.positions
    null = np.asarray(system.null_space(x))
    assert null.shape == (6, 39)
    np.testing.assert_allclose(null @ null.T, np.eye(6), atol=1e-13)
    hessian = _hessian(system, x, system.params)
    assert np.abs(hessian @ null.T).max() <= 1e-8 * np.abs(hessian).max()
    eigenvalues = np.linalg.eigvalsh(hessian)
    assert eigenvalues[6] > 1e-3 * eigenvalues[-1]  # nothing else is soft: the basis is complete


def test_free_space_2d_and_degenerate_structures():
    positions = np.random.default_rng(2).normal(size=(5, 2)) * 2
    system = sj.MODELS["morse"].record().factory(structure(positions), {})
    null = np.asarray(system.null_space(system.positions))
    assert null.shape == (3, 10)
    np.testing.assert_allclose(null @ null.T, np.eye(3), atol=1e-14)
    pair = sj.MODELS["morse"].record().factory(structure([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]), {})
    with pytest.raises(InputError, match="degenerate"):
        pair.null_space(pair.positions)
