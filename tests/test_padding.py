"""Atom counts padded to buckets (issue 14): structures of different sizes padded with masked
phantom atoms share one compiled minimizer and engine, and padding changes no result —
dx*/dθ, observables, elastic constants, λ_min, verdict — beyond round-off (1e-12).

Each model is analyzed once without padding (the reference, computed with its own programs)
and padded: first a structure one atom smaller (it compiles the padded programs), then the
reference's structure, which must compile nothing and agree with the reference."""

from __future__ import annotations

import collections
import dataclasses

import ase.build
import ase.io
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import monitoring

from sensitiv.engine import _program
from sensitiv.errors import ConfigError
from sensitiv.pipeline import analyze, config, ensemble, structure
from sensitiv.plugins import get_registry
from sensitiv.records import ATOM_MASK

jax.config.update("jax_enable_x64", True)

LOWERINGS: collections.Counter = collections.Counter()


def _on_duration(event: str, duration: float, **kwargs) -> None:
    if event.endswith("jaxpr_to_mlir_module_duration"):  # every lowering, cached on disk or not
        LOWERINGS["count"] += 1


monitoring.register_event_duration_secs_listener(_on_duration)


def _config(path, model: str) -> config.Config:
    return config.load(text=(
        f"structure: {{file: {path}}}\n"
        f"model: {model}\n"
        "observables: [energy, stress, elastic_constants]\n"))


def _relaxed(atoms, cfg_of, tmp_path):
    """`(config, Structure)` of `atoms` relaxed by an unpadded run (the reference), and that run."""
    path = tmp_path / "input.extxyz"
    ase.io.write(path, atoms, format="extxyz")
    cfg = cfg_of(path)
    [s] = structure.read_structures(cfg.structure)
    reference = analyze.analyze_structure(s, cfg)
    assert reference.solver.converged and reference.engine.trustworthy, reference.problems
    return cfg, dataclasses.replace(s, positions=reference.positions), reference


def _assert_same(padded, reference):
    assert padded.dx_dtheta.shape == reference.dx_dtheta.shape
    np.testing.assert_allclose(padded.positions, reference.positions, rtol=0, atol=1e-12)
    np.testing.assert_allclose(padded.dx_dtheta, reference.dx_dtheta, rtol=0, atol=1e-12)
    for got, want in zip(padded.observables, reference.observables, strict=True):
        assert got.label == want.label
        np.testing.assert_allclose(got.value, want.value, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(got.derivative, want.derivative, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(padded.elastic_constants.relaxed, reference.elastic_constants.relaxed,
                               rtol=1e-12, atol=1e-12)
    e, r = padded.engine, reference.engine
    assert (e.verdict, e.trustworthy, e.null_space_dimension, e.detected_null_space_dimension) == \
        (r.verdict, r.trustworthy, r.null_space_dimension, r.detected_null_space_dimension)
    np.testing.assert_allclose(e.smallest_eigenvalue, r.smallest_eigenvalue, rtol=1e-12)
    assert padded.trustworthy == reference.trustworthy and padded.problems == reference.problems


def _without(s, k):
    keep = np.arange(s.n_atoms) != k
    return dataclasses.replace(s, positions=s.positions[keep], species=s.species[keep], atom_ids=None, fixed=None)


def _check_model(atoms, cfg_of, tmp_path, pad_to):
    cfg, relaxed, reference = _relaxed(atoms, cfg_of, tmp_path)
    # smaller structures of the same bucket, unrelaxed: they compile the padded programs
    # (the second takes the paths of a bound model: the neighbor list's check)
    smaller = _without(relaxed, 0)
    first = analyze.analyze_structure(smaller, cfg, pad_to=pad_to)
    assert first.dx_dtheta.shape[0] == relaxed.n_atoms - 1 and first.solver.converged
    analyze.analyze_structure(_without(relaxed, 1), cfg, pad_to=pad_to)
    lowered, engine = LOWERINGS["count"], _program.run._cache_size()
    padded = analyze.analyze_structure(relaxed, cfg, pad_to=pad_to)
    # the engine and the minimizer compiled once for the bucket: nothing new for this size
    assert _program.run._cache_size() == engine
    assert LOWERINGS["count"] == lowered
    _assert_same(padded, reference)
    # phantoms are not moved by the minimizer, and the energy leaves them out
    problem = analyze._bind(structure.pad_structure(smaller, pad_to), cfg.model, get_registry(), None, jnp.float64)
    system = problem.system
    mask = np.asarray(system.params[ATOM_MASK]) > 0.5
    assert mask.sum() == smaller.n_atoms and not mask[smaller.n_atoms:].any()
    solve = get_registry().get_equilibrium_solver(cfg.solver.name).factory(dict(cfg.solver.options))
    moved = np.asarray(solve(system, system.positions, system.params).positions)
    np.testing.assert_array_equal(moved[~mask], np.asarray(system.positions)[~mask])
    np.testing.assert_allclose(moved[mask], first.positions, rtol=0, atol=1e-8)
    gradient = np.asarray(jax.grad(system.energy)(system.positions, system.params))
    assert not gradient[~mask].any()


def test_pair_model_padded_results_are_the_unpadded_ones(tmp_path):
    atoms = ase.io.read("examples/lj_crystal/argon_vacancy_small.extxyz")  # 31 atoms
    atoms.rattle(0.05, seed=1)
    model = ("{name: lennard_jones, parameters: {sigma: 3.405, epsilon: 0.0104},\n"
             "  options: {r_cutoff: 1.5, r_onset: 1.3, energy_units: eV}, differentiate: all}")
    _check_model(atoms, lambda p: _config(p, model), tmp_path, pad_to=32)


def _copper():
    atoms = ase.build.bulk("Cu", "fcc", a=3.615, cubic=True).repeat((2, 2, 1))  # 16 atoms
    del atoms[3]
    atoms.rattle(0.03, seed=2)
    return atoms


def _silicon():
    atoms = ase.build.bulk("Si", "diamond", a=5.431, cubic=True).repeat((2, 1, 1))  # 16 atoms
    del atoms[5]
    atoms.rattle(0.03, seed=3)
    return atoms


@pytest.mark.slow  # 2–4 min of compilation each on 2 cores
@pytest.mark.parametrize("atoms,model", [
    (_copper, "{name: eam, options: {potential_file: Cu_u3.eam}, differentiate: all}"),
    # three-body, with the neighbor list on: phantoms must stay out of its cells and counts too
    (_silicon, "{name: tersoff, options: {potential_file: Si.tersoff, neighbor_list: true},"
               " differentiate: [A, B, lambda1, lambda2, strain]}"),
], ids=["eam", "tersoff"])
def test_many_body_padded_results_are_the_unpadded_ones(tmp_path, atoms, model):
    _check_model(atoms(), lambda p: _config(p, model), tmp_path, pad_to=16)


def test_padding_decision(tmp_path):
    atoms = ase.io.read("examples/lj_crystal/argon_vacancy_small.extxyz")
    path = tmp_path / "traj.extxyz"
    ase.io.write(path, [atoms, atoms[:-2]], format="extxyz")
    model = ("{name: lennard_jones, parameters: {sigma: 3.405, epsilon: 0.0104},"
             " options: {r_cutoff: 1.5, r_onset: 1.3, energy_units: eV}}")
    text = f"model: {model}\nstructure: {{file: {path}, frames: all}}\n"
    record = get_registry().get_energy_model("lennard_jones")
    structures = structure.read_structures(config.load(text=text).structure)
    assert [s.n_atoms for s in structures] == [31, 29]
    # 29 atoms would be a bucket of its own (30): within 7/8 of 32, it joins the 31 atoms'
    assert ensemble.padding(structures, config.load(text=text), record) == [32, 32]
    assert ensemble.padding(structures[:1], config.load(text=text), record) == [None]  # one size: nothing to share
    assert ensemble.padding(structures[:1], config.load(text=text + "jacobian: {pad_atoms: true}\n"), record) == [32]
    assert ensemble.padding(structures, config.load(text=text + "jacobian: {pad_atoms: false}\n"), record) == [None] * 2
    fixed = text.replace("frames: all", "frames: all, fixed: {indices: [0]}") + "jacobian: {pad_atoms: true}\n"
    with pytest.raises(ConfigError, match="pad_atoms.*fixed atoms"):
        ensemble.padding(structures, config.load(text=fixed), record)
    assert [structure.atom_bucket(n) for n in (7, 17, 100, 107, 129, 1000)] == [7, 18, 104, 112, 144, 1024]
    sizes = [dataclasses.replace(structures[0], positions=np.zeros((n, 3)), species=np.zeros(n, int))
             for n in (108, 100, 105, 90)]
    assert ensemble.padding(sizes, config.load(text=text), record) == [112, 112, 112, 96]


def _springs(pairs, x, k):
    """∇ₓE of a spring network (rest length 1): phantoms appended to `x` take part in no spring."""

    def energy(xx):
        d = xx[pairs[:, 0]] - xx[pairs[:, 1]]
        return 0.5 * jnp.sum(k * (jnp.sqrt(jnp.sum(d * d, axis=1)) - 1.0) ** 2)

    return jax.grad(energy)(x)


@pytest.mark.parametrize("method", [pytest.param("dense", marks=pytest.mark.slow),  # the pipeline tests run dense
                                    "krylov"])
def test_engine_excludes_inactive_coordinates(method):
    import sensitiv

    rng = np.random.default_rng(0)
    n, n_pad = 12, 16
    pairs = np.array([[i, i + 1] for i in range(n - 1)] + [[0, 5], [2, 9], [3, 7], [1, 4], [6, 10], [8, 11], [0, 2]])
    F = jax.tree_util.Partial(_springs, jnp.asarray(pairs))
    k = jnp.asarray(rng.uniform(1.0, 2.0, size=len(pairs)))
    x = rng.normal(size=(n, 2))
    x_pad = np.concatenate([x, np.repeat(x[:1], n_pad - n, axis=0)])
    common = dict(method=method, sparsity=pairs, symmetric=True)
    plain = sensitiv.jacobian(F, jnp.asarray(x), k, null_space=sensitiv.rigid_body_modes(x), **common)
    modes = np.zeros((3, n_pad, 2))
    modes[:, :n] = np.asarray(sensitiv.rigid_body_modes(x)).reshape(3, n, 2)
    padded = sensitiv.jacobian(F, jnp.asarray(x_pad), k, null_space=modes.reshape(3, -1), active=np.arange(n_pad) < n,
                               **common)
    j, j_pad = np.asarray(plain.jacobian), np.asarray(padded.jacobian)
    assert not j_pad[n:].any()  # phantom rows: exactly zero
    np.testing.assert_allclose(j_pad[:n], j, rtol=0, atol=1e-11 * np.abs(j).max())
    for name in ("verdict", "null_space_dim", "detected_null_dim", "trustworthy"):
        assert np.asarray(getattr(padded.info, name)) == np.asarray(getattr(plain.info, name)), name
    np.testing.assert_allclose(padded.info.lambda_min, plain.info.lambda_min, rtol=1e-10)
    with pytest.raises(sensitiv.errors.InputError, match="active: 5 entries"):
        sensitiv.jacobian(F, jnp.asarray(x_pad), k, active=np.ones(5, bool), **common)
