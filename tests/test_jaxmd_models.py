"""Energy models of the jax-md plugin: values against jax-md itself, every parameter
derivative (forward, reverse, finite differences), the reverse-mode NaN traps, cutoff
conventions, option and parameter validation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax_md import energy as jmd_energy
from jax_md import space as jmd_space

import sensitiv_jaxmd as sj
from sensitiv.errors import ConfigError
from sensitiv.records import Structure

DIAMOND_BASIS = np.array([
    (0, 0, 0), (0, 0.5, 0.5), (0.5, 0, 0.5), (0.5, 0.5, 0),
    (0.25, 0.25, 0.25), (0.25, 0.75, 0.75), (0.75, 0.25, 0.75), (0.75, 0.75, 0.25),
])
SIGMA = np.array([[1.0, 1.1], [1.1, 1.25]])
EPSILON = np.array([[1.0, 0.8], [0.8, 1.3]])


def jittered_lattice(n_side, dim, spacing, jitter, seed=0, n_species=2):
    """A square/cubic lattice with random displacements, two alternating species, periodic."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.arange(n_side)] * dim, indexing="ij"), -1).reshape(-1, dim)
    positions = (grid + 0.5) * spacing + rng.uniform(-jitter, jitter, grid.shape)
    n = len(positions)
    return Structure(
        positions=positions,
        species=np.arange(n) % n_species,
        species_names=tuple("AB"[:n_species]),
        cell=np.eye(dim) * n_side * spacing,
        pbc=(True,) * dim,
        length_units="1",
        source="test:lattice",
    )


def diamond(a=5.431, repeat=2, rattle=0.0, seed=0):
    cells = [(i, j, k) for i in range(repeat) for j in range(repeat) for k in range(repeat)]
    positions = np.array([(b + np.array(c)) * a for c in cells for b in DIAMOND_BASIS])
    positions = positions + np.random.default_rng(seed).normal(0, rattle, positions.shape)
    return Structure(
        positions=positions, species=np.zeros(len(positions), int), species_names=("Si",),
        cell=np.eye(3) * a * repeat, pbc=(True,) * 3, source="test:diamond",
    )


def gold_cluster(rattle=0.05, seed=0):
    """A 13-atom cuboctahedron (fcc, a = 4.08 Å), rattled, free space."""
    shell = [(x, y, 0) for x in (-1, 1) for y in (-1, 1)]
    shell += [(x, 0, z) for x in (-1, 1) for z in (-1, 1)]
    shell += [(0, y, z) for y in (-1, 1) for z in (-1, 1)]
    positions = np.array([(0, 0, 0)] + shell, float) * 4.08 / 2
    positions = positions + np.random.default_rng(seed).normal(0, rattle, positions.shape)
    return Structure(positions=positions, species=np.zeros(13, int), species_names=("Au",),
                     source="test:au13")


def make(name, structure, **options):
    return sj.MODELS[name].record().factory(structure, options)


def energy_value(system, positions=None, params=None):
    return float(system.energy(system.positions if positions is None else positions,
                               system.params if params is None else params))


# -- values against jax-md ---------------------------------------------------------------------


def test_soft_sphere_matches_jax_md():
    structure = jittered_lattice(6, 2, 1.0, 0.2)
    system = make("soft_sphere", structure, parameters={"sigma": SIGMA, "epsilon": EPSILON, "alpha": 2.5})
    displacement, _ = jmd_space.periodic(6.0)
    reference = jax.jit(jmd_energy.soft_sphere_pair(
        displacement, species=jnp.asarray(structure.species), sigma=jnp.asarray(SIGMA),
        epsilon=jnp.asarray(EPSILON), alpha=2.5,
    ))(jnp.asarray(structure.positions))
    assert float(reference) > 0.1
    assert energy_value(system) == pytest.approx(float(reference), rel=1e-12)


def test_soft_sphere_additive_equals_additive_pair_matrix():
    structure = jittered_lattice(6, 2, 1.0, 0.2)
    diameters = {"A": 1.0, "B": 1.4}
    additive = make("soft_sphere_additive", structure, diameters=diameters)
    np.testing.assert_array_equal(additive.params["diameter"], np.where(structure.species == 0, 1.0, 1.4))
    matrix = make("soft_sphere", structure, parameters={"sigma": [[1.0, 1.2], [1.2, 1.4]]})
    assert energy_value(additive) == pytest.approx(energy_value(matrix), rel=1e-13)
    # The generator's info["diameters"] is the default of both.
    with_info = Structure(**{**structure.__dict__, "info": {"diameters": [1.0, 1.4]}})
    assert energy_value(make("soft_sphere", with_info)) == pytest.approx(energy_value(matrix), rel=1e-13)
    assert energy_value(make("soft_sphere_additive", with_info)) == pytest.approx(energy_value(matrix), rel=1e-13)


@pytest.mark.parametrize("name", ["lennard_jones", "morse"])
def test_switched_pairs_match_jax_md(name):
    structure = jittered_lattice(6, 2, 1.2, 0.1)
    displacement, _ = jmd_space.periodic(7.2)
    species = jnp.asarray(structure.species)
    if name == "lennard_jones":
        params = {"sigma": SIGMA, "epsilon": EPSILON}
        reference = jmd_energy.lennard_jones_pair(displacement, species=species, sigma=jnp.asarray(SIGMA),
                                                  epsilon=jnp.asarray(EPSILON))
    else:
        alpha = np.array([[5.0, 4.0], [4.0, 6.0]])
        params = {"sigma": SIGMA, "epsilon": EPSILON, "alpha": alpha}
        reference = jmd_energy.morse_pair(displacement, species=species, sigma=jnp.asarray(SIGMA),
                                          epsilon=jnp.asarray(EPSILON), alpha=jnp.asarray(alpha))
    # jax-md's LJ multiplies r_onset = 2.0 and r_cutoff = 2.5 by max(sigma) once, when
    # built; its Morse keeps them absolute.
    smax = SIGMA.max() if name == "lennard_jones" else 1.0
    system = make(name, structure, cutoff_units="absolute", r_onset=2.0 * smax, r_cutoff=2.5 * smax,
                  parameters=params)
    expected = float(jax.jit(reference)(jnp.asarray(structure.positions)))
    assert energy_value(system) == pytest.approx(expected, rel=1e-12)


def test_stillinger_weber_matches_jax_md_and_lattice_energy():
    structure = diamond(rattle=0.05)
    # jax-md's default epsilon is 2.16826; the original paper's 2.1683 is this plugin's.
    system = make("stillinger_weber", structure, parameters={"epsilon": 2.16826})
    displacement, _ = jmd_space.periodic(2 * 5.431)
    reference = jax.jit(jmd_energy.stillinger_weber(displacement))(jnp.asarray(structure.positions))
    # jax-md's cosine adds 1e-7 to both distances (quantity.cosine_angle_between_two_vectors),
    # which shifts its three-body energy by ~1e-9 relative; this plugin's cosine is exact.
    assert energy_value(system) == pytest.approx(float(reference), rel=3e-9)
    perfect = diamond()
    per_atom = energy_value(system, jnp.asarray(perfect.positions), dict(system.params, epsilon=2.1683)) / 64
    assert per_atom == pytest.approx(-4.3366, abs=5e-5)


def test_gupta_matches_jax_md():
    structure = gold_cluster()
    system = make("gupta", structure)
    displacement, _ = jmd_space.free()
    reference = jax.jit(jmd_energy.gupta_gold55(displacement))(jnp.asarray(structure.positions))
    assert energy_value(system) == pytest.approx(float(reference), rel=1e-12)
    assert system.metadata["space"] == "free" and "strain" not in system.params


# -- derivatives with respect to every parameter ----------------------------------------------


def _tree_vdot(a, b):
    return sum(jnp.vdot(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def _derivative_probe(system):
    energy = system.energy

    def gradient(x, p):
        return jax.grad(energy)(x, p)

    @jax.jit
    def probe(x, p, dp, v):
        e_forward = jax.jvp(lambda q: energy(x, q), (p,), (dp,))[1]
        e_reverse = _tree_vdot(jax.grad(lambda q: energy(x, q))(p), dp)
        f_forward = jax.jvp(lambda q: gradient(x, q), (p,), (dp,))[1]
        f_reverse = _tree_vdot(jax.grad(lambda q: jnp.vdot(gradient(x, q), v))(p), dp)
        return e_forward, e_reverse, f_forward, f_reverse

    return probe, jax.jit(energy), jax.jit(gradient)


CASES = {
    "soft_sphere": lambda: make("soft_sphere", jittered_lattice(5, 2, 1.0, 0.2),
                                parameters={"sigma": SIGMA, "epsilon": EPSILON}),
    "soft_sphere_additive": lambda: make("soft_sphere_additive", jittered_lattice(5, 2, 1.0, 0.2),
                                         diameters=[1.0, 1.4]),
    "lennard_jones": lambda: make("lennard_jones", jittered_lattice(6, 2, 1.2, 0.15),
                                  parameters={"sigma": SIGMA, "epsilon": EPSILON}),
    "morse": lambda: make("morse", jittered_lattice(6, 2, 1.2, 0.15), parameters={"sigma": SIGMA}),
    "stillinger_weber": lambda: make("stillinger_weber", diamond(rattle=0.1)),
    "gupta": lambda: make("gupta", gold_cluster(), r_onset=6.0),
}


# Morse shares its code path with Lennard-Jones, and soft_sphere with soft_sphere_additive.
@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.slow) if n in ("morse", "soft_sphere") else n for n in sorted(CASES)],
)
def test_every_parameter_derivative_forward_reverse_and_finite_differences(name):
    system = CASES[name]()
    assert system.reverse_mode_safe
    x, params = system.positions, system.params
    probe, energy, gradient = _derivative_probe(system)
    rng = np.random.default_rng(1)
    v = jnp.asarray(rng.normal(size=x.shape))
    h = 2e-6
    for key, value in params.items():
        direction = rng.normal(size=np.shape(value))
        if direction.ndim == 2:
            direction = direction + direction.T
        direction = direction / np.linalg.norm(direction)
        dp = {k: jnp.zeros_like(p) for k, p in params.items()}
        dp[key] = jnp.asarray(direction)
        e_forward, e_reverse, f_forward, f_reverse = (np.asarray(a) for a in probe(x, params, dp, v))
        assert np.all(np.isfinite(f_forward)) and np.isfinite(e_reverse) and np.isfinite(f_reverse), key
        plus = {k: p + h * dp[k] for k, p in params.items()}
        minus = {k: p - h * dp[k] for k, p in params.items()}
        e_fd = (float(energy(x, plus)) - float(energy(x, minus))) / (2 * h)
        f_fd = (np.asarray(gradient(x, plus)) - np.asarray(gradient(x, minus))) / (2 * h)
        scale_e = max(abs(e_fd), 1e-3 * abs(float(energy(x, params))), 1e-8)
        assert abs(e_forward - e_fd) <= 1e-6 * scale_e, (key, e_forward, e_fd)
        assert abs(e_reverse - e_forward) <= 1e-10 * scale_e, (key, e_reverse, e_forward)
        scale_f = max(np.linalg.norm(f_fd), 1e-8)
        assert np.linalg.norm(f_forward - f_fd) <= 1e-6 * scale_f, (key, np.linalg.norm(f_forward - f_fd), scale_f)
        assert abs(f_reverse - np.vdot(v, f_forward)) <= 1e-9 * scale_f * np.linalg.norm(v), key


def test_upstream_reverse_mode_nans_do_not_reach_this_plugin():
    """jax-md 0.2.29 returns NaN for reverse-mode σ derivatives of LJ (issue #258) and
    Stillinger–Weber; this plugin's masked distances make them finite and exact."""
    structure = jittered_lattice(6, 2, 1.2, 0.15)
    displacement, _ = jmd_space.periodic(7.2)
    upstream = jmd_energy.lennard_jones_pair(displacement, sigma=jnp.asarray(1.0), epsilon=jnp.asarray(1.0))
    positions = jnp.asarray(structure.positions)
    upstream_force = lambda s: -jax.grad(upstream)(positions, sigma=s)
    probe = jnp.ones_like(positions)
    one = jnp.asarray(1.0)
    assert np.isnan(float(jax.jit(jax.grad(lambda s: jnp.vdot(upstream_force(s), probe)))(one)))  # the trap
    assert np.isnan(float(jax.jit(jax.grad(lambda s: upstream(positions, sigma=s)))(one)))

    ours = make("lennard_jones", structure, cutoff_units="absolute")
    p = ours.params
    projected_force = lambda s: jnp.vdot(jax.grad(ours.energy)(positions, dict(p, sigma=s)), probe)
    reverse = jax.jit(jax.grad(projected_force))(p["sigma"])
    forward = jax.jit(lambda s: jax.jvp(projected_force, (s,), (jnp.ones_like(s),))[1])(p["sigma"])
    assert np.all(np.isfinite(reverse))
    assert float(jnp.sum(reverse)) == pytest.approx(float(forward), rel=1e-10)

    silicon = diamond(rattle=0.05)
    displacement, _ = jmd_space.periodic(2 * 5.431)
    sw_up = lambda s: jmd_energy.stillinger_weber(displacement, sigma=s, cutoff=1.8 * s)(jnp.asarray(silicon.positions))
    assert np.isnan(float(jax.jit(jax.grad(sw_up))(jnp.asarray(2.0951))))  # the trap
    sw = make("stillinger_weber", silicon)
    e_sigma = lambda s: sw.energy(sw.positions, dict(sw.params, sigma=s))
    reverse = float(jax.jit(jax.grad(e_sigma))(sw.params["sigma"]))
    forward = float(jax.jit(lambda s: jax.jvp(e_sigma, (s,), (jnp.ones_like(s),))[1])(sw.params["sigma"]))
    assert np.isfinite(reverse) and reverse == pytest.approx(forward, rel=1e-10)


# -- cutoff conventions ----------------------------------------------------------------------------


def test_lennard_jones_cutoff_follows_sigma_or_stays_absolute():
    structure = jittered_lattice(6, 2, 1.2, 0.15, n_species=1)
    positions = jnp.asarray(structure.positions)
    displacement, _ = jmd_space.periodic(7.2)
    sigma = 1.2
    reduced = make("lennard_jones", structure)  # cutoff_units: sigma (default)
    absolute = make("lennard_jones", structure, cutoff_units="absolute")
    e_reduced = energy_value(reduced, params=dict(reduced.params, sigma=jnp.full((1, 1), sigma)))
    e_absolute = energy_value(absolute, params=dict(absolute.params, sigma=jnp.full((1, 1), sigma)))
    # jax-md built at sigma: cutoffs 2.0 * 1.2 and 2.5 * 1.2, the reduced convention. (Its
    # builders cast Python floats to float32, `util.maybe_downcast`: pass float64 arrays.)
    sigma64 = jnp.asarray(sigma)
    built_at_sigma = jax.jit(jmd_energy.lennard_jones_pair(displacement, sigma=sigma64))(positions)
    # jax-md built at 1 and called with sigma=1.2: cutoffs stay 2.0 and 2.5 (absolute).
    built_at_one = jmd_energy.lennard_jones_pair(displacement, sigma=jnp.asarray(1.0))
    called_with_sigma = jax.jit(lambda r: built_at_one(r, sigma=sigma64))(positions)
    assert e_reduced == pytest.approx(float(built_at_sigma), rel=1e-12)
    assert e_absolute == pytest.approx(float(called_with_sigma), rel=1e-12)
    assert abs(e_reduced - e_absolute) > 1e-3 * abs(e_reduced)
    assert "sigma" in reduced.metadata["cutoff_convention"]


def test_stillinger_weber_cutoff_is_a_sigma():
    structure = diamond(rattle=0.05)
    positions = jnp.asarray(structure.positions)
    displacement, _ = jmd_space.periodic(2 * 5.431)
    system = make("stillinger_weber", structure, parameters={"epsilon": 2.16826})
    sigma = 2.2
    ours = energy_value(system, params=dict(system.params, sigma=sigma))
    scaled = jax.jit(jmd_energy.stillinger_weber(displacement, sigma=sigma, cutoff=1.8 * sigma))(positions)
    absolute = jax.jit(jmd_energy.stillinger_weber(displacement, sigma=sigma))(positions)  # 3.77118 Å
    assert ours == pytest.approx(float(scaled), rel=3e-9)  # jax-md's cosine: see above
    assert abs(ours - float(absolute)) > 1e-3 * abs(ours)


# -- options and parameters --------------------------------------------------------------------------


def test_parameters_resolve_to_structure_shapes():
    structure = jittered_lattice(5, 2, 1.0, 0.2)
    system = make("lennard_jones", structure)
    shapes = {p.name: p.shape for p in system.parameters}
    assert shapes == {"sigma": (2, 2), "epsilon": (2, 2), "strain": (2, 2)}
    assert make("soft_sphere_additive", structure).params["diameter"].shape == (25,)
    assert {p.shape for p in make("stillinger_weber", diamond()).parameters} == {(), (3, 3)}
    # A species absent from the structure does not enlarge the cutoff.
    three = Structure(**{**structure.__dict__, "species_names": ("A", "B", "C")})
    huge = np.ones((3, 3))
    huge[2, 2] = 10.0
    assert make("lennard_jones", three, parameters={"sigma": huge}).metadata["cutoff"] == pytest.approx(2.5)


def test_pair_parameter_units_are_the_structures_length_and_the_models_energy():
    # sigma is a length (Å for an extxyz structure), epsilon an energy, Morse alpha an
    # inverse length; they were declared dimensionless ('1') before.
    angstrom = Structure(**{**jittered_lattice(5, 2, 3.4, 0.2).__dict__, "length_units": "angstrom"})
    units = {p.name: p.units for p in make("lennard_jones", angstrom, energy_units="eV").parameters}
    assert units["sigma"] == "angstrom" and units["epsilon"] == "eV"
    units = {p.name: p.units for p in make("morse", angstrom, energy_units="eV").parameters}
    assert (units["sigma"], units["epsilon"], units["alpha"]) == ("angstrom", "eV", "angstrom-1")
    units = {p.name: p.units for p in make("soft_sphere_additive", angstrom).parameters}
    # reduced-unit models name their energy unit (`epsilon`) instead of claiming "1"
    assert (units["diameter"], units["epsilon"], units["alpha"]) == ("angstrom", "epsilon", "1")
    # Reduced (Lennard-Jones) units are named: σ for lengths, ε for energies (the structure
    # here has no length units: "1").
    reduced = jittered_lattice(5, 2, 1.0, 0.2)
    units = {p.name: p.units for p in make("lennard_jones", reduced).parameters if p.name != "strain"}
    assert units == {"sigma": "1", "epsilon": "epsilon"}


@pytest.mark.parametrize(
    "options, match",
    [
        ({"r_cutof": 3.0}, "r_cutof"),
        ({"r_onset": 3.0, "r_cutoff": 2.5}, "r_onset"),
        ({"cutoff_units": "nm"}, "cutoff_units"),
        ({"parameters": {"sgima": 1.0}}, "sgima"),
        ({"parameters": {"sigma": [1.0, 2.0, 3.0]}}, "shape"),
        ({"parameters": {"epsilon": float("nan")}}, "non-finite"),
        ({"space": "helical"}, "space"),
    ],
)
def test_bad_options_raise_config_errors(options, match):
    with pytest.raises(ConfigError, match=match):
        make("lennard_jones", jittered_lattice(6, 2, 1.2, 0.1), **options)
