"""The third-party example plugin (examples/spring_network_plugin): installed, discovered, usable.

The distribution is pip-installed into a private `--target` folder (the shared
environment is left alone), found there through its `sensitiv` entry point — by
`sensitiv plugins --json` in a subprocess and by a `Registry` in process — and its
spring-network model is checked against closed forms and against central finite
differences of re-solving the equilibrium.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sensitiv
from sensitiv.errors import ConfigError, InputError
from sensitiv.plugins import ENV_DISABLE_AUTOLOAD, ENV_PLUGINS, Registry
from sensitiv.records import Structure

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "spring_network_plugin"


def _pip_install(source: Path, target: Path, offline: bool) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet",
               "--disable-pip-version-check", "--target", str(target)]
    if offline:
        command += ["--no-index", "--no-build-isolation"]
    return subprocess.run(command + [str(source)], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The example distribution pip-installed into a fresh private folder."""
    work = tmp_path_factory.mktemp("springs")
    # Build from a copy: parallel test runs never share a build folder.
    source = work / "src"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = work / "site"
    done = _pip_install(source, target, offline=True)
    if done.returncode != 0:
        # setuptools < 70.1 without `wheel` cannot build offline; pip's isolated build
        # fetches a build backend instead.
        done = _pip_install(source, target, offline=False)
    assert done.returncode == 0, f"pip install failed:\n{done.stdout}\n{done.stderr}"
    assert (target / "sensitiv_springs" / "plugin.py").exists()
    return target


@pytest.fixture(scope="module")
def springs(installed):
    """The `harmonic_springs` model, discovered through the installed entry point."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(installed))
        registry = Registry(entry_points=["springs"])
        info = registry.plugin_info("springs")
        assert (info.distribution, info.version, info.entry_point) == (
            "sensitiv-springs", "0.1.0", "sensitiv_springs.plugin",
        )
        assert Path(sys.modules["sensitiv_springs"].__file__).is_relative_to(installed)
        yield registry.get_energy_model("harmonic_springs")


def test_sensitiv_plugins_json_lists_the_installed_plugin(installed):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(installed), env.get("PYTHONPATH")]))
    env[ENV_PLUGINS] = "builtin,springs"  # not the jax-md import: that is not under test here
    env.pop(ENV_DISABLE_AUTOLOAD, None)
    done = subprocess.run([sys.executable, "-m", "sensitiv.cli", "plugins", "--json"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    plugins = {p["name"]: p for p in json.loads(done.stdout)["plugins"]}
    springs = plugins["springs"]
    assert springs["distribution"] == "sensitiv-springs" and springs["version"] == "0.1.0"
    assert springs["hooks"] == ["sensitiv_energy_models"]
    (model,) = springs["contributions"]["sensitiv_energy_models"]
    assert model["name"] == "harmonic_springs" and model["options"] == ["bonds", "cutoff"]
    assert [(p["name"], p["shape"], p["differentiable"]) for p in model["parameters"]] == [
        ("stiffness", ["species", "species"], True),
        ("rest_length_scale", ["species", "species"], True),
    ]


# -- the model -------------------------------------------------------------------------

# Four corners (species A) and a hub (species B), slightly irregular so the framework
# is generic; cutoff 1.2 joins the 4 edges and the 4 spokes, not the diagonals.
CORNERS_AND_HUB = np.array([[0.0, 0.0], [1.02, 0.05], [1.07, 0.98], [-0.03, 1.01], [0.52, 0.47]])
SPRINGS = [(0, 1), (0, 4), (1, 2), (1, 4), (2, 3), (2, 4), (3, 4), (0, 3)]


def network() -> Structure:
    return Structure(positions=CORNERS_AND_HUB, species=np.array([0, 0, 0, 0, 1]),
                     species_names=("A", "B"), source="network")


class Compiled:
    """A `System` with its energy's gradient and Hessian jitted on flat positions."""

    def __init__(self, system):
        self.system, shape = system, system.positions.shape
        flat = lambda x, p: system.energy(x.reshape(shape), p)
        self._grad, self._hess = jax.jit(jax.grad(flat)), jax.jit(jax.hessian(flat))

    def hessian(self, x, params) -> np.ndarray:
        return np.asarray(self._hess(jnp.ravel(x), params))

    def relax(self, params, positions, tol=1e-14):
        """Minimize by Newton steps with the minimum-norm (pseudo-inverse) step."""
        x = np.asarray(positions, dtype=np.float64).ravel()
        for _ in range(60):
            g = np.asarray(self._grad(x, params))
            if np.max(np.abs(g)) < tol:
                return jnp.asarray(x.reshape(np.shape(positions)))
            x = x - np.linalg.lstsq(self.hessian(x, params), g, rcond=1e-10)[0]
        raise AssertionError(f"Newton did not converge: max|grad| = {np.max(np.abs(g))}")


FRUSTRATION = {"stiffness": [[1.0, 0.6], [0.6, 1.0]], "rest_length_scale": [[1.0, 1.04], [1.04, 1.0]]}


@pytest.fixture(scope="module")
def frustrated(springs):
    """Spokes (A–B) 4 % longer at rest than the frame allows: a prestressed network
    whose equilibrium depends on the stiffness ratio and on each rest length."""
    system = springs.factory(network(), {"cutoff": 1.2, "parameters": FRUSTRATION})
    compiled = Compiled(system)
    x_star = compiled.relax(system.params, system.positions)
    return compiled, x_star, np.asarray(system.null_space(x_star))


def test_springs_follow_the_cutoff_and_are_the_interactions(springs):
    system = springs.factory(network(), {"cutoff": 1.2})
    pairs = np.asarray(system.interactions(system.positions, system.params))
    assert sorted(map(tuple, pairs.tolist())) == sorted(SPRINGS)
    assert system.metadata["n_springs"] == 8
    # The Hessian couples exactly the bonded pairs.
    H = Compiled(system).hessian(system.positions, {**system.params, "rest_length_scale": jnp.full((2, 2), 1.1)})
    blocks = np.abs(H.reshape(5, 2, 5, 2)).max(axis=(1, 3))
    coupled = {(i, j) for i in range(5) for j in range(i + 1, 5) if blocks[i, j] > 1e-12}
    assert coupled == set(SPRINGS)


def test_energy_closed_form(springs):
    structure = network()
    system = springs.factory(structure, {"cutoff": 1.2, "parameters": {"stiffness": 2.5}})
    energy = jax.jit(system.energy)  # one compilation for the evaluations below
    x0 = system.positions
    assert system.params["stiffness"].shape == (2, 2)
    assert abs(float(energy(x0, system.params))) < 1e-28  # zero up to rounding
    np.testing.assert_allclose(jax.jit(jax.grad(system.energy))(x0, system.params), 0.0, atol=1e-14)
    # Uniform rest-length scale s: E = ½ k (1 − s)² Σ d_b².
    lengths_sq = sum(np.sum((CORNERS_AND_HUB[j] - CORNERS_AND_HUB[i]) ** 2) for i, j in SPRINGS)
    params = {**system.params, "rest_length_scale": jnp.full((2, 2), 1.1)}
    np.testing.assert_allclose(energy(x0, params), 0.5 * 2.5 * 0.01 * lengths_sq, rtol=1e-13)
    # Per-pair values are symmetrized: K[A,B] and K[B,A] share the spokes.
    stretched = x0.at[4].add(jnp.array([0.01, -0.02]))
    spokes = sum((np.linalg.norm(np.asarray(stretched[4] - stretched[i])) -
                  np.linalg.norm(CORNERS_AND_HUB[4] - CORNERS_AND_HUB[i])) ** 2 for i in range(4))
    k = jnp.array([[0.0, 3.0], [1.0, 0.0]])
    np.testing.assert_allclose(energy(stretched, {**system.params, "stiffness": k}),
                               0.5 * 2.0 * spokes, rtol=1e-12)


def test_explicit_bonds_and_periodic_minimum_image(springs):
    system = springs.factory(network(), {"bonds": [[0, 4], [1, 4]]})
    assert np.asarray(system.interactions(None, None)).tolist() == [[0, 4], [1, 4]]
    # A 3 × 3 square lattice in a periodic 3 × 3 box: 18 nearest-neighbour springs,
    # 6 of them across the boundary.
    grid = np.array([[i, j] for i in range(3) for j in range(3)], dtype=float)
    lattice = Structure(positions=grid, species=np.zeros(9, int), species_names=("A",),
                        cell=3.0 * np.eye(2), pbc=(True, True), source="lattice")
    system = springs.factory(lattice, {"cutoff": 1.2})
    assert system.metadata["n_springs"] == 18
    params = {**system.params, "rest_length_scale": jnp.full((1, 1), 1.1)}
    np.testing.assert_allclose(system.energy(system.positions, params), 0.5 * 18 * 0.01, rtol=1e-13)


def test_null_space_spans_the_rigid_modes(springs, frustrated):
    compiled, x_star, N = frustrated
    assert N.shape == (3, 10)  # two translations and one rotation in 2-D free space
    np.testing.assert_allclose(N @ N.T, np.eye(3), atol=1e-13)
    H = compiled.hessian(x_star, compiled.system.params)
    np.testing.assert_allclose(H @ N.T, 0.0, atol=1e-12)
    # Exactly these three zero modes: the relaxed, prestressed network is a minimum.
    eigenvalues = np.linalg.eigvalsh(H)
    assert np.all(np.abs(eigenvalues[:3]) < 1e-12) and eigenvalues[3] > 1e-2

    grid = np.array([[i, j] for i in range(3) for j in range(3)], dtype=float)
    lattice = Structure(positions=grid, species=np.zeros(9, int), species_names=("A",),
                        cell=3.0 * np.eye(2), pbc=(True, True))
    periodic = springs.factory(lattice, {"cutoff": 1.2})
    assert np.asarray(periodic.null_space(periodic.positions)).shape == (2, 18)  # translations only


def test_uniform_rest_length_derivative_is_the_closed_form(springs):
    # With every rest length scaled by s, the input structure scaled about its centroid
    # is stress-free: x*(s) = c + s (x0 − c), so dx*/ds = x0 − c (orthogonal to the
    # rigid modes, hence the minimum-norm answer).
    system = springs.factory(network(), {"cutoff": 1.2})
    x0, params = system.positions, system.params
    F = jax.grad(system.energy)
    solver = sensitiv.LinearSolver("cg", null_space=system.null_space(x0))
    tangent = {"stiffness": jnp.zeros((2, 2)), "rest_length_scale": jnp.ones((2, 2))}
    dx = sensitiv.root_jvp(F, x0, (params,), (tangent,), solve=solver)
    expected = CORNERS_AND_HUB - CORNERS_AND_HUB.mean(axis=0)
    np.testing.assert_allclose(dx, expected, rtol=1e-10, atol=1e-12)
    # Stiffness does not move a stress-free network.
    tangent_k = {"stiffness": jnp.ones((2, 2)), "rest_length_scale": jnp.zeros((2, 2))}
    np.testing.assert_allclose(sensitiv.root_jvp(F, x0, (params,), (tangent_k,), solve=solver), 0.0, atol=1e-12)


@pytest.mark.parametrize("name", ["stiffness", "rest_length_scale"])
def test_frustrated_network_derivative_matches_finite_differences_of_resolving(frustrated, name):
    compiled, x_star, N = frustrated
    params = compiled.system.params
    F = jax.grad(compiled.system.energy)
    solver = sensitiv.LinearSolver("cg", null_space=N)

    direction = {key: jnp.zeros((2, 2)) for key in params}
    direction[name] = jnp.array([[0.0, 1.0], [0.0, 0.0]])  # the A–B entry
    dx, info = sensitiv.root_jvp_with_info(F, x_star, (params,), (direction,), solve=solver)
    assert bool(info.converged)

    h = 1e-4
    shifted = lambda sign: {k: v + sign * h * direction[k] for k, v in params.items()}
    fd = (compiled.relax(shifted(+1), x_star) - compiled.relax(shifted(-1), x_star)) / (2 * h)
    fd_free = fd.ravel() - N.T @ (N @ np.asarray(fd).ravel())  # drop rigid motions
    assert np.linalg.norm(dx) > 1e-3  # a real effect
    np.testing.assert_allclose(np.ravel(dx), fd_free, rtol=0, atol=1e-7 * np.linalg.norm(fd_free))

    # Reverse mode agrees: vᵀ (J u) = (vᵀ J) u for a random cotangent v.
    v = jnp.asarray(np.random.default_rng(0).normal(size=x_star.shape))
    v = (v.ravel() - N.T @ (N @ v.ravel())).reshape(x_star.shape)
    (vjp,) = sensitiv.root_vjp(F, x_star, (params,), v, solve=solver)
    np.testing.assert_allclose(jnp.vdot(v, dx), jnp.vdot(vjp[name], direction[name]), rtol=1e-9)


@pytest.mark.parametrize(
    "options, structure, error, match",
    [
        ({}, network(), ConfigError, r"give exactly one of 'cutoff' and 'bonds'"),
        ({"cutoff": 0.1}, network(), ConfigError, r"model.options.cutoff: no two atoms of network"),
        ({"cutoff": 1.2, "neighbor_list": True}, network(), ConfigError, r"model.options.neighbor_list"),
        ({"bonds": [[0, 5]]}, network(), ConfigError, r"model.options.bonds: atom index out of range"),
        ({"bonds": [[0, 1], [1, 0]]}, network(), ConfigError, r"listed twice"),
        ({"cutoff": 1.2, "parameters": {"stifness": 1.0}}, network(), ConfigError,
         r"model.parameters.stifness: unknown parameter"),
        ({"cutoff": 1.2, "parameters": {"stiffness": [1.0, 2.0, 3.0]}}, network(), ConfigError,
         r"model.parameters.stiffness: shape \(3,\)"),
        ({"cutoff": 2.0}, Structure(np.zeros((2, 2)) + [[0, 0], [1, 0]], np.zeros(2, int), ("A",),
                                    cell=3.0 * np.eye(2), pbc=(True, True), source="box"),
         ConfigError, r"not below half the periodic width \(1.5\) of box"),
        ({"cutoff": 1.5}, Structure(np.array([[0.0, 0, 0], [1, 0, 0], [2, 0, 0]]), np.zeros(3, int), ("A",),
                                    source="chain"),
         InputError, r"chain: the atoms are collinear in free space"),
    ],
)
def test_bad_options_and_structures_are_named(springs, options, structure, error, match):
    with pytest.raises(error, match=match):
        springs.factory(structure, options)


BIPYRAMID = """5
Properties=species:S:1:pos:R:3 pbc="F F F"
C 0.0 0.0 0.0
C 1.02 0.05 0.03
C 0.49 0.88 -0.04
N 0.52 0.30 0.83
N 0.47 0.31 -0.79
"""

CONFIG = """
title: spring network through the pipeline
structure: {file: net.xyz}
model:
  name: harmonic_springs
  parameters:
    stiffness: [[1.0, 0.6], [0.6, 1.0]]
    rest_length_scale: [[1.0, 1.04], [1.04, 1.0]]
  options: {cutoff: 1.2}
solver: {name: fire, options: {ftol: 1.0e-10}}
condition: {name: stationary}
output: {path: springs.nc}
"""


@pytest.mark.slow
def test_sensitiv_analyze_runs_the_third_party_model(installed, springs, tmp_path):
    # The installed plugin composes with the others: ASE reads the file, the jax-md
    # plugin's FIRE relaxes the springs' System, the pipeline writes dx*/dθ.
    import xarray as xr

    (tmp_path / "net.xyz").write_text(BIPYRAMID)
    (tmp_path / "config.yaml").write_text(CONFIG)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(installed), env.get("PYTHONPATH")]))
    env[ENV_PLUGINS] = "builtin,ase,jaxmd,springs"
    done = subprocess.run([sys.executable, "-m", "sensitiv.cli", "analyze", "config.yaml"],
                          cwd=tmp_path, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    with xr.open_dataset(tmp_path / "springs.nc") as ds:
        assert ds.attrs["model"] == "harmonic_springs" and ds["trustworthy"].values.ravel().tolist() == [1]
        x_star = jnp.asarray(ds["coordinates"].values[0])
        column = ds["dx_dtheta"].set_xindex("parameter_label").sel(parameter_label="rest_length_scale[0,1]").values[0]

    # The same column computed here at the file's equilibrium; the pipeline moves the
    # symmetric pair [0,1] and [1,0] together.
    lines = BIPYRAMID.splitlines()[2:]
    structure = Structure(np.array([[float(v) for v in line.split()[1:]] for line in lines]),
                          np.array([0, 0, 0, 1, 1]), ("C", "N"))
    system = springs.factory(structure, {"cutoff": 1.2, "parameters": FRUSTRATION})
    direction = {"stiffness": jnp.zeros((2, 2)), "rest_length_scale": jnp.array([[0.0, 1.0], [1.0, 0.0]])}
    solver = sensitiv.LinearSolver("lstsq", null_space=system.null_space(x_star))
    dx = sensitiv.root_jvp(jax.grad(system.energy), x_star, (system.params,), (direction,), solve=solver)
    assert np.linalg.norm(dx) > 0.1
    np.testing.assert_allclose(column, dx, rtol=0, atol=1e-6 * np.linalg.norm(dx))
