"""Host side of a Jacobian computation: check the inputs, probe symmetry, choose the
strategy and the mode, and resolve every default into one hashable `Plan`.

The plan is the compiled program's cache key (`_program.run` is jitted with the plan
static): two calls with the same shapes and options reuse one compilation. It holds
shapes, not structures: a sparsity enters as its capacities (`SparsityShape`), its
arrays are traced, so interaction graphs that differ (trajectory frames) share a program. Nothing here
runs inside `jit` except the symmetry probe, a small program of its own.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import InputError
from . import _linalg as la
from ._nullspace import as_null_basis
from ._operators import Layout, ParamPlan, flat_problem, make_param_plan, merge_callable, split_callable
from ._options import KrylovOptions
from ._sharding import column_mesh
from ._structure import Sparsity, SparsityArrays, SparsityShape

__all__ = ["Plan", "make_plan", "METHODS"]

METHODS = ("auto", "dense", "krylov", "reverse")


@dataclasses.dataclass(frozen=True)
class Plan:
    """Everything static about one computation, every default resolved (hashable)."""

    strategy: str  # "dense" | "krylov"
    mode: str  # "forward" (columns: one solve per parameter) | "reverse" (rows: one per output)
    symmetric: bool
    sign: int
    x_layout: Layout
    theta_layout: Layout
    sparsity: SparsityShape | None  # shapes only: the arrays are traced (`SparsityArrays`)
    param_plan: ParamPlan
    b_assembly: str  # "forward" (∂₂F materialized by JVPs) | "reverse" (applied by VJPs)
    krylov: KrylovOptions  # tol and maxiter resolved
    memory_budget: int
    mesh: Any
    singular_rtol: float
    trust_rtol: float
    structure_rtol: float
    seed: int
    dense_spectrum: bool  # the dense matrix fits the budget: its spectrum settles the verdict
    observable: Any = None
    g_layout: Layout | None = None


# -- checks ------------------------------------------------------------------------------


def _check_inexact(tree, what):
    for leaf in jax.tree.leaves(tree):
        if not jnp.issubdtype(jnp.result_type(leaf), jnp.inexact):
            raise InputError(
                f"{what}: every leaf must be a floating-point array, got dtype {jnp.result_type(leaf)}"
            )
        if jnp.issubdtype(jnp.result_type(leaf), jnp.complexfloating):
            raise InputError(f"{what}: complex arrays are not supported")
        if isinstance(leaf, (jax.core.Tracer, jax.ShapeDtypeStruct)):
            continue  # under the caller's jit the values are unknown; the flags catch NaN later
        bad = ~np.isfinite(np.asarray(leaf))
        if bad.any():
            raise InputError(
                f"{what}: {int(bad.sum())} non-finite entr{'y' if bad.sum() == 1 else 'ies'} (NaN or inf, first at "
                f"index {tuple(int(i) for i in np.argwhere(bad)[0])}); the Jacobian at such a point means "
                f"nothing: pass finite values"
            )


def _device_memory() -> int:
    try:
        stats = jax.devices()[0].memory_stats()
    except Exception:  # noqa: BLE001 - backends without memory stats
        stats = None
    if stats and stats.get("bytes_limit"):
        return int(0.5 * stats["bytes_limit"])
    try:
        return int(0.25 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 4 << 30


def _as_sparsity(sparsity, sol, d) -> Sparsity | None:
    if sparsity is None:
        return None
    if not isinstance(sparsity, Sparsity):
        leaves = jax.tree.leaves(sol)
        if len(leaves) != 1 or jnp.ndim(leaves[0]) != 2:
            raise InputError(
                "sparsity: a pair array needs the solution to be one (n_atoms, n_spatial) array; "
                "otherwise pass a sensitiv.Sparsity"
            )
        n_atoms, n_spatial = jnp.shape(leaves[0])
        sparsity = Sparsity.from_pairs(sparsity, n_atoms, n_spatial)
    if sparsity.size != d:
        raise InputError(
            f"sparsity: describes {sparsity.n_blocks} atoms × {sparsity.block_size} coordinates "
            f"= {sparsity.size}, but the solution has {d} entries"
        )
    return sparsity


# -- symmetry ----------------------------------------------------------------------------


@jax.jit(static_argnums=(0, 2, 3))
def _symmetry_probe(fun_static, fun_arrays, x_layout, theta_layout, sol, params, args):
    prob = flat_problem(merge_callable(fun_static, fun_arrays), x_layout, theta_layout, sol, params, args)
    a, b = la.probe_vectors(12345, 2, prob.d, prob.dtype)
    ka, kb = prob.k_lin(a), prob.k_lin(b)
    return jnp.abs(jnp.vdot(a, kb) - jnp.vdot(b, ka)) / (
        jnp.linalg.norm(ka) * jnp.linalg.norm(b) + jnp.finfo(prob.dtype).tiny
    )


def _is_traced(*trees) -> bool:
    return any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(trees))


def _decide_symmetric(symmetric, fun, x_layout, theta_layout, sol, params, args, structure_rtol):
    if symmetric is not None:
        return bool(symmetric), "given"
    if _is_traced(sol, params, args):
        return False, "not probed under jit (pass symmetric=True to use Cholesky/CG)"
    err = float(_symmetry_probe(*split_callable(fun), x_layout, theta_layout, sol, params, args))
    return err <= structure_rtol, f"probed (asymmetry {err:.1e})"


# -- strategy ----------------------------------------------------------------------------


def dense_bytes(d: int, m: int, itemsize: int) -> int:
    """Memory of the dense strategy: `∂₁F`, its factor, a work copy and the right-hand sides."""
    return (3 * d * d + 2 * d * m) * itemsize


def _choose_strategy(method, d, m, itemsize, budget, sparsity, symmetric):
    """Dense or matrix-free for `m` right-hand sides of size `d`; returns (strategy, reason)."""
    need = dense_bytes(d, m, itemsize)
    if method == "dense" and need > budget:
        raise InputError(
            f"method: 'dense' needs {need / 2**30:.1f} GiB for d = {d} (∂₁F, its factor and "
            f"the right-hand sides), over memory_budget {budget / 2**30:.1f} GiB: use method='krylov' "
            "or 'auto', or raise memory_budget"
        )
    if method in ("dense", "krylov"):
        return method, "requested"
    if need > budget:
        return "krylov", (
            f"d = {d}: a dense ∂₁F needs {need / 2**30:.1f} GiB > budget "
            f"{budget / 2**30:.1f} GiB: matrix-free"
        )
    # What the dense strategy really costs: Cholesky (d³/3, at a fraction of product speed),
    # on GPUs the triangular inverse that turns the solves into matrix products (d³/3), the
    # solves (2d²m), and the spectral diagnostics (block inverse iteration: ~10 steps of
    # triangular solves with 8 right-hand sides, ~300 d²). Counting only d³/3 made `auto`
    # take dense for n = 2 at d = 1024, where it measured ~4× slower than matrix-free
    # (benchmarks, soft-spheres-sp-512).
    dense_flops = d**3 + 2 * d * d * m + 300 * d * d
    if sparsity is not None and symmetric:
        nnz = (sparsity.n_blocks + 2 * len(sparsity.pairs)) * sparsity.block_size**2
        # CG iteration counts are unknown before solving; 300 is typical for jammed packings
        # with a block-Jacobi preconditioner (pessimistic for stiff crystals). Block CG shares
        # one Krylov space among the m columns: measured 267 iterations for m = 3, 2–3 for
        # m = 129 and 513, each costing m products plus O(d m²) for the block's algebra.
        iterations = max(3, math.ceil(300 / (1 + m / 8)))
        krylov_flops = (iterations * m + 64) * (2 * nnz + 12 * d) + iterations * (4 * d * m * m + 20 * m**3)
        if krylov_flops < dense_flops:
            return "krylov", (
                f"sparse ∂₁F ({nnz} nonzeros), {m} right-hand sides: ~{krylov_flops:.1e} flops "
                f"matrix-free vs {dense_flops:.1e} for one dense factorization"
            )
        return "dense", (
            f"d = {d}, {m} right-hand sides: one dense factorization ({dense_flops:.1e} flops) "
            f"beats matrix-free solves (~{krylov_flops:.1e})"
        )
    return "dense", (
        f"d = {d} fits ({need / 2**20:.0f} MiB): one factorization shared by all {m} "
        "right-hand sides (without a structure hint, matrix-free costs hundreds of full JVPs per column)"
    )


def _choose(method, mode, d, n, m_out, itemsize, budget, sparsity, symmetric):
    """`(strategy, mode, reason)`. `m_out` is the number of outputs of an observable
    (`None` for `jacobian`, whose outputs are the `d` coordinates)."""
    if m_out is None:  # jacobian
        if method == "reverse":
            strategy, reason = _choose_strategy("auto", d, d, itemsize, budget, sparsity, symmetric)
            return strategy, "reverse", f"reverse requested ({d} adjoint solves); {strategy}: {reason}"
        strategy, reason = _choose_strategy(method, d, min(n, d) + 1, itemsize, budget, sparsity, symmetric)
        if strategy == "krylov" and d < n and method == "auto":
            return strategy, "reverse", reason + f"; reverse mode: {d} outputs < {n} parameters"
        return strategy, "forward", reason
    if mode == "auto":
        mode = "reverse" if m_out < n else "forward"
        mode_reason = f"{mode} mode: {m_out} outputs vs {n} parameters"
    else:
        mode_reason = f"{mode} mode requested"
    m = (n if mode == "forward" else m_out) + 1
    strategy, reason = _choose_strategy(method, d, m, itemsize, budget, sparsity, symmetric)
    return strategy, mode, f"{mode_reason}; {strategy}: {reason}"


def _b_assembly(parameter_derivatives, mode, param_plan, m_rows):
    if parameter_derivatives not in ("auto", "forward", "reverse"):
        raise InputError(
            f"parameter_derivatives: expected 'auto', 'forward' or 'reverse', got {parameter_derivatives!r}"
        )
    if mode == "forward" or parameter_derivatives == "forward":
        return "forward"
    if parameter_derivatives == "reverse":
        return "reverse"
    # auto, reverse mode: materialize B by forward JVPs when that takes fewer products
    return "forward" if param_plan.n_products <= m_rows else "reverse"


def _tolerances(dtype, krylov: KrylovOptions, singular_rtol, trust_rtol, d):
    eps = float(jnp.finfo(dtype).eps)
    krylov = dataclasses.replace(
        krylov,
        tol=float(krylov.tol) if krylov.tol is not None else eps**0.75,
        maxiter=int(krylov.maxiter) if krylov.maxiter is not None else 10 * d,
        lanczos_steps=int(krylov.lanczos_steps),
        deflation=int(krylov.deflation),
    )
    # Weyl: elementwise rounding (eps) of K moves each eigenvalue by at most eps ‖K‖_F ≤
    # eps √d λ_max; measured, by about 1 eps λ_max (float32 and float64, d = 12 to 192).
    # 100 √d eps keeps a wide margin over it. 100 d eps (before) counted the softest mode
    # of a sound float32 packing (d = 192, λ_min/λ_max = 1.8e-3) as a zero mode.
    singular_rtol = singular_rtol if singular_rtol is not None else 100 * math.sqrt(max(d, 1)) * eps
    trust_rtol = trust_rtol if trust_rtol is not None else (1e-6 if eps < 1e-10 else 1e-3)
    if not float(trust_rtol) > 0:
        raise InputError(f"trust_rtol: expected a positive number, got {trust_rtol!r}")
    return krylov, float(singular_rtol), float(trust_rtol), math.sqrt(eps) * 10


# -- the plan ----------------------------------------------------------------------------


def make_plan(optimality_fun, sol, params, args, *, observable, mode, method, null_space, sparsity,
              per_atom_params, symmetric, gradient_sign, krylov: KrylovOptions, memory_budget, shard,
              parameter_derivatives, singular_rtol, trust_rtol, seed, n_active_atoms=None):
    """Check everything and decide everything; returns `(plan, null_basis, structure, reason)`,
    `structure` the sparsity's `SparsityArrays` (padded to the capacities in `plan.sparsity`)
    or `None`. `n_active_atoms`: the atoms that are no padding (`jacobian(active=…)`),
    which size the sparsity's capacity.

    `observable` is `None` for `jacobian` (then `mode` is ignored and `method` may be
    `"reverse"`); the reason (static text) stays out of the plan so that it does not split
    the compile cache.
    """
    if method not in METHODS or (observable is not None and method == "reverse"):
        allowed = METHODS if observable is None else METHODS[:3]
        raise InputError(f"method: expected one of {', '.join(allowed)}, got {method!r}")
    if mode not in ("auto", "forward", "reverse"):
        raise InputError(f"mode: expected 'auto', 'forward' or 'reverse', got {mode!r}")
    if gradient_sign not in (1, -1):
        raise InputError(f"gradient_sign: expected +1 (F = ∇E) or -1 (F = −∇E), got {gradient_sign!r}")
    _check_inexact(sol, "sol")
    _check_inexact(params, "params")
    if not jax.tree.leaves(params):
        raise InputError("params: no parameters to differentiate (empty pytree)")
    x_layout, theta_layout = Layout.of(sol), Layout.of(params)
    dtype = jnp.result_type(*jax.tree.leaves(sol))
    itemsize = jnp.dtype(dtype).itemsize
    d, n = x_layout.size, theta_layout.size
    sp = _as_sparsity(sparsity, sol, d)
    param_plan = make_param_plan(theta_layout, sp, per_atom_params)
    krylov, singular_rtol, trust_rtol, structure_rtol = _tolerances(dtype, krylov, singular_rtol, trust_rtol, d)
    sym, sym_reason = _decide_symmetric(
        symmetric, optimality_fun, x_layout, theta_layout, sol, params, tuple(args), structure_rtol
    )
    budget = int(memory_budget) if memory_budget is not None else _device_memory()
    null_basis = as_null_basis(null_space, d, dtype)
    g_layout = None
    if observable is not None:
        g_shape = jax.eval_shape(observable, sol, params, *args)
        _check_inexact(g_shape, "observable output")
        g_layout = Layout.of(g_shape)
    m_out = None if g_layout is None else g_layout.size
    strategy, mode, reason = _choose(method, mode, d, n, m_out, itemsize, budget, sp, sym)
    reason += f"; ∂₁F symmetric: {sym} ({sym_reason})"
    structure = None if sp is None else SparsityArrays.of(sp, n_active=n_active_atoms)
    plan = Plan(
        strategy=strategy, mode=mode, symmetric=sym, sign=int(gradient_sign), x_layout=x_layout,
        theta_layout=theta_layout, sparsity=None if structure is None else structure.shape, param_plan=param_plan,
        b_assembly=_b_assembly(parameter_derivatives, mode, param_plan, d if m_out is None else m_out),
        krylov=krylov, memory_budget=budget, mesh=column_mesh(shard), singular_rtol=singular_rtol,
        trust_rtol=trust_rtol, structure_rtol=structure_rtol, seed=int(seed),
        dense_spectrum=dense_bytes(d, 8, itemsize) <= budget, observable=observable, g_layout=g_layout,
    )
    return plan, null_basis, structure, reason
