"""Benchmark problems, written directly with jax-md: jammed 2-D bidisperse soft spheres and
3-D Stillinger–Weber silicon under strain.

Each builder returns a `Problem`: an optimality function `F(x, θ, *args) = ∇ₓE`, a FIRE
solver (`lax.while_loop` on max |force|), the parameters, the known null space
(rigid translations) and a function giving the interacting pairs at a solution (the
structure hint a physics plugin hands to the Jacobian engine).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax_md import energy, minimize, partition, space

jax.config.update("jax_enable_x64", True)

__all__ = ["Problem", "soft_spheres", "silicon"]


@dataclasses.dataclass
class Problem:
    name: str
    description: str
    n_atoms: int
    n_spatial: int
    theta: Any  # parameters (flat array)
    theta_label: str
    x0: Any  # initial positions
    energy: Callable  # energy(x, theta, *args)
    solve: Callable  # solve(x0, theta) -> (x, args, steps, max_force)
    pairs: Callable  # pairs(x, theta, *args) -> np.ndarray (P, 2)
    null_space: Any
    per_atom_params: bool
    neighbor_list: bool
    fd_step: float
    solve_traceable: Callable = None  # (x0, theta, *args) -> x, differentiable (jvp) through FIRE
    box: float | None = None  # side of the periodic cube
    args: tuple = ()

    @property
    def d(self):
        return self.n_atoms * self.n_spatial

    @property
    def n(self):
        return int(np.size(self.theta))

    def optimality(self):
        return _gradient(self.energy)


_GRADIENTS: dict = {}


def _gradient(fn):
    # one object per energy, so compiled programs are cached across methods
    if fn not in _GRADIENTS:
        _GRADIENTS[fn] = jax.grad(fn)
    return _GRADIENTS[fn]


def _translations(n_atoms, dim):
    rows = np.zeros((dim, n_atoms, dim))
    for a in range(dim):
        rows[a, :, a] = 1.0 / np.sqrt(n_atoms)
    return jnp.asarray(rows.reshape(dim, -1))


def _fire_loop(energy_fn, shift, max_force, max_steps, dt_start=0.01, dt_max=0.05):
    """FIRE in a lax.while_loop until max |force| < max_force: jax-md has no convergence test."""
    init, apply = minimize.fire_descent(energy_fn, shift, dt_start=dt_start, dt_max=dt_max)

    def run(x0, **kwargs):
        state = init(x0, **kwargs)

        def cond(carry):
            state, i = carry
            return (jnp.max(jnp.abs(state.force)) >= max_force) & (i < max_steps)

        def body(carry):
            state, i = carry
            return apply(state, **kwargs), i + 1

        state, steps = jax.lax.while_loop(cond, body, (state, 0))
        return state.position, steps, jnp.max(jnp.abs(state.force))

    return run


def soft_spheres(n_atoms: int, per_particle: bool, neighbor_list: bool | None = None, seed: int = 0,
                 phi: float = 0.9, max_force: float = 1e-12):
    """2-D bidisperse soft spheres (diameters 1.0 / 1.4, harmonic ε = 1, α = 2) at packing fraction `phi`.

    `per_particle=True`: θ = the N diameters (n = N); else θ = the two species' diameters (n = 2).
    """
    if neighbor_list is None:
        neighbor_list = n_atoms > 256
    dim = 2
    species = np.where(np.arange(n_atoms) < n_atoms // 2, 0, 1)
    diam_species = np.array([1.0, 1.4])
    diameters = diam_species[species]
    side = float(np.sqrt(np.sum(np.pi * (diameters / 2) ** 2) / phi))
    rng = np.random.default_rng(seed)
    x0 = jnp.asarray(rng.uniform(0.0, side, (n_atoms, dim)))
    displacement, shift = space.periodic(side)
    species_j = jnp.asarray(species)

    def sigma_of(theta):
        return theta if per_particle else theta[species_j]

    theta = jnp.asarray(diameters if per_particle else diam_species)

    if not neighbor_list:
        pair_energy = energy.soft_sphere_pair(displacement, sigma=1.0)

        def energy_fn(x, theta):
            return pair_energy(x, sigma=sigma_of(theta))

        fire = _fire_loop(lambda x, sigma: pair_energy(x, sigma=sigma), shift, max_force, 200_000)

        @jax.jit
        def solve_jit(x0, theta):
            return fire(x0, sigma=sigma_of(theta))

        def solve(x0, theta):
            x, steps, fmax = solve_jit(x0, theta)
            return x, (), int(steps), float(fmax)

        def solve_traceable(x0, theta):
            return fire(x0, sigma=sigma_of(theta))[0], jnp.zeros((), bool)

        @jax.jit
        def _contacts(x, theta):
            dr = space.map_product(displacement)(x, x)
            r = jnp.sqrt(jnp.sum(dr**2, -1))
            s = sigma_of(theta)
            sij = 0.5 * (s[:, None] + s[None, :])
            upper = jnp.triu(jnp.ones((n_atoms, n_atoms), bool), 1)
            return upper & (r < sij)

        def pairs(x, theta):
            return np.argwhere(np.asarray(_contacts(x, theta)))

        args = ()
    else:
        cutoff = float(diam_species.max())
        neighbor_fn, nl_energy = energy.soft_sphere_neighbor_list(
            displacement, side, sigma=cutoff, dr_threshold=0.2, capacity_multiplier=1.5
        )

        def energy_fn(x, theta, nbrs):
            return nl_energy(x, nbrs, sigma=sigma_of(theta))

        init_f, apply_f = minimize.fire_descent(
            lambda x, neighbor, sigma: nl_energy(x, neighbor, sigma=sigma), shift, dt_start=0.01, dt_max=0.05
        )

        @jax.jit
        def run(x0, nbrs, sigma):
            state = init_f(x0, neighbor=nbrs, sigma=sigma)

            def cond(carry):
                state, nbrs, i = carry
                return (jnp.max(jnp.abs(state.force)) >= max_force) & (i < 200_000) & ~nbrs.did_buffer_overflow.astype(bool)

            def body(carry):
                state, nbrs, i = carry
                nbrs = nbrs.update(state.position)
                return apply_f(state, neighbor=nbrs, sigma=sigma), nbrs, i + 1

            state, nbrs, steps = jax.lax.while_loop(cond, body, (state, nbrs, 0))
            return state.position, nbrs, steps, jnp.max(jnp.abs(state.force))

        def solve(x0, theta):
            nbrs = neighbor_fn.allocate(x0)
            x, total = x0, 0
            sigma = sigma_of(theta)
            while True:
                x, nbrs, steps, fmax = run(x, nbrs, sigma)
                total += int(steps)
                if not bool(nbrs.did_buffer_overflow):
                    break
                nbrs = neighbor_fn.allocate(x)  # grow the list and go on from where it stopped
            nbrs = nbrs.update(x)
            return x, (nbrs,), total, float(fmax)

        def solve_traceable(x0, theta, nbrs):
            # nbrs: a list with enough capacity (from a completed solve); the overflow flag
            # says whether it sufficed along the whole trajectory
            x, nbrs_end, steps, _ = run(x0, nbrs.update(x0), sigma_of(theta))
            return x, nbrs_end.did_buffer_overflow

        @jax.jit
        def _contacts(x, theta, nbrs):
            i, j = nbrs.idx
            valid = i < n_atoms
            dr = jax.vmap(displacement)(x[jnp.where(valid, i, 0)], x[jnp.where(valid, j, 0)])
            r = jnp.sqrt(jnp.sum(dr**2, -1))
            s = sigma_of(theta)
            sij = 0.5 * (s[jnp.where(valid, i, 0)] + s[jnp.where(valid, j, 0)])
            return valid & (r < sij)

        def pairs(x, theta, nbrs):
            keep = np.asarray(_contacts(x, theta, nbrs))
            return np.asarray(nbrs.idx).T[keep]

        args = ()
    label = "per-particle diameters" if per_particle else "species diameters"
    return Problem(
        name=f"soft-spheres-{'pp' if per_particle else 'sp'}-{n_atoms}",
        description=(
            f"2-D bidisperse soft spheres, N = {n_atoms}, φ = {phi}, θ = {label}"
            f"{', neighbor list' if neighbor_list else ', all pairs'}"
        ),
        n_atoms=n_atoms, n_spatial=dim, theta=theta, theta_label=label, x0=x0,
        energy=energy_fn, solve=solve, pairs=pairs, null_space=_translations(n_atoms, dim),
        per_atom_params=per_particle, neighbor_list=neighbor_list, fd_step=1e-6,
        solve_traceable=solve_traceable, box=side, args=args,
    )


def silicon(cells: int = 2, seed: int = 0, max_force: float = 1e-10, jitter: float = 0.05):
    """Diamond-cubic silicon, `cells³` conventional cells, one vacancy, positions jittered,
    Stillinger–Weber (jax-md), θ = the six strain components (Voigt: xx yy zz yz xz xy)."""
    a = 5.431
    basis = np.array([
        [0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0],
        [0.25, 0.25, 0.25], [0.25, 0.75, 0.75], [0.75, 0.25, 0.75], [0.75, 0.75, 0.25],
    ])
    grid = np.array([[i, j, k] for i in range(cells) for j in range(cells) for k in range(cells)])
    frac = (grid[:, None, :] + basis[None, :, :]).reshape(-1, 3) / cells
    side = a * cells
    x = frac * side
    x = x[1:]  # a vacancy
    rng = np.random.default_rng(seed)
    x = x + rng.normal(scale=jitter, size=x.shape)
    x0 = jnp.asarray(np.mod(x, side))
    n_atoms = x0.shape[0]
    displacement, shift = space.periodic(side)
    neighbor_fn, sw_energy = energy.stillinger_weber_neighbor_list(
        displacement, side, dr_threshold=0.3, capacity_multiplier=1.5
    )

    def strain_matrix(theta):
        xx, yy, zz, yz, xz, xy = [theta[i] for i in range(6)]
        eps = jnp.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
        return jnp.eye(3, dtype=theta.dtype) + eps

    def energy_fn(x, theta, nbrs):
        return sw_energy(x, nbrs, perturbation=strain_matrix(theta))

    init_f, apply_f = minimize.fire_descent(
        lambda x, neighbor, perturbation: sw_energy(x, neighbor, perturbation=perturbation),
        shift, dt_start=0.01, dt_max=0.1,
    )

    @jax.jit
    def run(x0, nbrs, theta):
        p = strain_matrix(theta)
        state = init_f(x0, neighbor=nbrs, perturbation=p)

        def cond(carry):
            state, nbrs, i = carry
            return (jnp.max(jnp.abs(state.force)) >= max_force) & (i < 200_000) & ~nbrs.did_buffer_overflow.astype(bool)

        def body(carry):
            state, nbrs, i = carry
            nbrs = nbrs.update(state.position)
            return apply_f(state, neighbor=nbrs, perturbation=p), nbrs, i + 1

        state, nbrs, steps = jax.lax.while_loop(cond, body, (state, nbrs, 0))
        return state.position, nbrs, steps, jnp.max(jnp.abs(state.force))

    def solve(x0, theta):
        nbrs = neighbor_fn.allocate(x0)
        x, total = x0, 0
        while True:
            x, nbrs, steps, fmax = run(x, nbrs, theta)
            total += int(steps)
            if not bool(nbrs.did_buffer_overflow):
                break
            nbrs = neighbor_fn.allocate(x)
        nbrs = nbrs.update(x)
        return x, (nbrs,), total, float(fmax)

    def solve_traceable(x0, theta, nbrs):
        x, nbrs_end, steps, _ = run(x0, nbrs.update(x0), theta)
        return x, nbrs_end.did_buffer_overflow

    def pairs(x, theta, nbrs):
        # three-body terms couple two neighbors of a common atom: the Hessian pattern is the
        # neighbor graph and its two-hop closure
        idx = np.asarray(nbrs.idx)
        dr = np.asarray(jax.vmap(jax.vmap(displacement, (None, 0)))(x, x[jnp.asarray(np.minimum(idx, n_atoms - 1))]))
        close = (idx < n_atoms) & (np.linalg.norm(dr, axis=-1) < 3.77118)
        adj = [set(idx[i][close[i]].tolist()) for i in range(n_atoms)]
        out = set()
        for i in range(n_atoms):
            nb = sorted(adj[i] | {i})
            for p in range(len(nb)):
                for q in range(p + 1, len(nb)):
                    out.add((nb[p], nb[q]))
        return np.array(sorted(out))

    return Problem(
        name=f"silicon-sw-{n_atoms}",
        description=f"3-D Stillinger–Weber silicon, {n_atoms} atoms (diamond, one vacancy, jittered), θ = strain (6)",
        n_atoms=n_atoms, n_spatial=3, theta=jnp.zeros(6), theta_label="strain (Voigt)", x0=x0,
        energy=energy_fn, solve=solve, pairs=pairs, null_space=_translations(n_atoms, 3),
        per_atom_params=False, neighbor_list=True, fd_step=1e-6, solve_traceable=solve_traceable,
        box=side,
    )
