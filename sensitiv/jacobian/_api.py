"""`jacobian` and `total_derivative`: full Jacobians of a root's solution map, with diagnostics.

With `F(x*(θ), θ) = 0`, `K = ∂₁F` and `B = ∂₂F` at `(x̂, θ)`, the Jacobian is
`J = −K⁺ B` (minimum-norm when `K` is singular). Every column is a `root_jvp`; computed
one by one they would repeat everything. Here the work shared by all columns is done once:

1. `F` is linearized once in `x` and once in `θ` (`jax.linearize`); every product after
   that evaluates the stored linear map, batched with `vmap`.
2. With a structure hint (`sparsity=`), `K` is recovered from `n_colors × n_spatial` JVPs
   of a distance-2 coloring instead of `d`, and per-atom columns of `B` from `n_colors`
   JVPs instead of `n`.
3. `"dense"`: one factorization of `K` serves all columns. `"krylov"`: one preconditioner,
   one Lanczos run (spectral diagnostics and a deflation space) and one operator serve all
   columns, solved in memory-bounded chunks. `"reverse"`: rows by adjoint solves.
4. The diagnostics (`JacobianInfo`) are computed inside the same compiled program.

The host side (coloring, the symmetry probe, the strategy choice) runs before the compiled
program, whose compilation is cached per optimality function and configuration.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .._linear_solve import LinearSolver
from ..errors import InputError
from . import _dense, _krylov
from . import _linalg as la
from ._diagnostics import JacobianInfo, compute_flags
from ._nullspace import as_null_basis
from ._operators import Layout, ParamPlan, Problem, make_param_plan
from ._sharding import column_mesh, gather_to_host, map_rows
from ._structure import BlockSparse, Sparsity, block_jacobi

__all__ = ["jacobian", "total_derivative", "JacobianResult"]

METHODS = ("auto", "dense", "krylov", "reverse")


class JacobianResult(NamedTuple):
    """What `jacobian` and `total_derivative` return (a pytree).

    **Arguments:**

    - `jacobian`: the derivative, structured like `jax.jacobian` would give it: output
      structure outside, parameter structure inside, leaf shapes `out.shape + param.shape`.
    - `info`: a `JacobianInfo` with the diagnostics.

    **Example:**

    ```python
    J, info = sensitiv.jacobian.jacobian(jax.grad(energy), x_star, params)
    ```
    """

    jacobian: Any
    info: JacobianInfo


@dataclasses.dataclass(frozen=True)
class _Config:
    """Everything static about one computation (hashable: the compile-cache key)."""

    strategy: str
    mode: str
    symmetric: bool
    sign: int
    x_layout: Layout
    theta_layout: Layout
    sparsity: Sparsity | None
    plan: ParamPlan
    b_assembly: str
    tol: float
    maxiter: int
    precond: Any
    lanczos_steps: int
    deflation: int
    memory_budget: int
    mesh: Any
    singular_rtol: float
    trust_rtol: float
    structure_rtol: float
    observable: Any = None
    g_layout: Layout | None = None
    seed: int = 0


# -- host side ---------------------------------------------------------------------------


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
                "otherwise pass a sensitiv.jacobian.Sparsity"
            )
        n_atoms, n_spatial = jnp.shape(leaves[0])
        sparsity = Sparsity.from_pairs(sparsity, n_atoms, n_spatial)
    if sparsity.size != d:
        raise InputError(
            f"sparsity: describes {sparsity.n_blocks} atoms × {sparsity.block_size} coordinates "
            f"= {sparsity.size}, but the solution has {d} entries"
        )
    return sparsity


def _flat_problem(fun, x_layout: Layout, theta_layout: Layout, sol, params, args) -> Problem:
    """`F` linearized at the raveled `(sol, params)` (both in the solution's dtype); called
    inside compiled programs, where raveling costs nothing (on the host every reshape and
    slice is a dispatch of its own)."""
    dtype = jnp.result_type(*jax.tree.leaves(sol))
    x, theta = x_layout.ravel(sol, dtype), theta_layout.ravel(params, dtype)
    return Problem(fun, x, theta, args, x_layout, theta_layout)


@jax.jit(static_argnums=(0, 1, 2))
def _symmetry_probe(fun, x_layout, theta_layout, sol, params, args):
    prob = _flat_problem(fun, x_layout, theta_layout, sol, params, args)
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
    err = float(_symmetry_probe(fun, x_layout, theta_layout, sol, params, args))
    return err <= structure_rtol, f"probed (asymmetry {err:.1e})"


def _choose_strategy(method, d, m, itemsize, budget, sparsity, symmetric):
    """Dense or matrix-free for `m` right-hand sides of size `d`; returns (strategy, reason)."""
    dense_bytes = (3 * d * d + 2 * d * m) * itemsize
    if method == "dense" and dense_bytes > budget:
        raise InputError(
            f"method: 'dense' needs {dense_bytes / 2**30:.1f} GiB for d = {d} (∂₁F, its factor and "
            f"the right-hand sides), over memory_budget {budget / 2**30:.1f} GiB: use method='krylov' "
            "or 'auto', or raise memory_budget"
        )
    if method in ("dense", "krylov"):
        return method, "requested"
    if dense_bytes > budget:
        return "krylov", (
            f"d = {d}: a dense ∂₁F needs {dense_bytes / 2**30:.1f} GiB > budget "
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
        f"d = {d} fits ({dense_bytes / 2**20:.0f} MiB): one factorization shared by all {m} "
        "right-hand sides (without a structure hint, matrix-free costs hundreds of full JVPs per column)"
    )


def _defaults(dtype, tol, singular_rtol, trust_rtol, d):
    eps = float(jnp.finfo(dtype).eps)
    tol = tol if tol is not None else eps**0.75
    singular_rtol = singular_rtol if singular_rtol is not None else 100 * max(d, 1) * eps
    trust_rtol = trust_rtol if trust_rtol is not None else (1e-6 if eps < 1e-10 else 1e-3)
    structure_rtol = math.sqrt(eps) * 10
    return tol, singular_rtol, trust_rtol, structure_rtol


def _unflatten(mat, out_layout: Layout, in_layout: Layout):
    """`(d_out, n_in)` flat matrix -> nested pytree as `jax.jacobian` gives it."""
    outer = []
    for o_off, o_size, o_shape, o_dtype in zip(
        out_layout.offsets, out_layout.sizes, out_layout.shapes, out_layout.dtypes
    ):
        inner = []
        for i_off, i_size, i_shape in zip(in_layout.offsets, in_layout.sizes, in_layout.shapes):
            block = mat[o_off : o_off + o_size, i_off : i_off + i_size]
            inner.append(block.reshape(o_shape + i_shape).astype(o_dtype))
        outer.append(jax.tree.unflatten(in_layout.treedef, inner))
    return jax.tree.unflatten(out_layout.treedef, outer)


# -- the compiled program ----------------------------------------------------------------


def _second_order(prob: Problem, direction_x, ju, u):
    """`d/dε [K(x̂+εs) J u + B(x̂+εs) u]` at ε = 0: how the linear system moves along the Newton step."""

    def linear_residual(xx):
        return jax.jvp(prob.flat, (xx, prob.theta), (ju, u))[1]

    return jax.jvp(linear_residual, (prob.x,), (direction_x,))[1]


def _per_column_bytes(prob: Problem, k_op_sparse: BlockSparse | None) -> int:
    item = jnp.dtype(prob.dtype).itemsize
    if k_op_sparse is not None:
        work = k_op_sparse.rows.shape[0] * k_op_sparse.block_size * 2
    else:
        # applying the stored linearization to one vector allocates about as much as its residuals
        work = sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(prob.k_lin))
    return int((work + 16 * prob.d) * item)


def _krylov_solve_rows(cfg: _Config, apply_rows, precond, rhs_rows, tols, caps, deflation, saddle_hint,
                       project, null_basis, per_col):
    """Solve `A x = r` for every row `r` of `rhs_rows` (with its own tolerance and iteration
    cap) in memory-bounded chunks, sharded over `cfg.mesh`."""

    def solve_chunk(chunk):
        rows, tol, cap = chunk
        if not cfg.symmetric:
            # one GMRES per column (vmap) through the core's LinearSolver, with its diagnostics
            solver = LinearSolver(
                "gmres", tol=cfg.tol, maxiter=max(cfg.maxiter // 20, 10),
                precond=precond, null_space=null_basis,
            )
            x, info = jax.vmap(lambda r: solver.solve(apply_rows, r))(rows)
            negative = jnp.zeros(rows.shape[0], bool)
            return x, _krylov.KrylovReport(info.relative_residual, info.iterations, info.converged, negative)

        def cg(_):
            if deflation is None:
                # one Krylov space shared by the chunk's columns
                return _krylov.block_cg(apply_rows, rows, precond, tol, cfg.maxiter, project, cap)
            return _krylov.block_pcg(apply_rows, rows, precond, tol, cfg.maxiter, project, deflation, cap)

        def minres(_):
            return _krylov.block_minres(apply_rows, rows, precond, tol, cfg.maxiter, project, cap)

        def skipped(_):
            zeros = jnp.zeros(rows.shape[0], rows.dtype)
            report = _krylov.KrylovReport(zeros, zeros.astype(jnp.int32), zeros > 0, zeros == 0)
            return jnp.zeros_like(rows), report

        # At a known saddle CG is skipped; where CG meets negative curvature, MINRES redoes the chunk.
        x, rep = jax.lax.cond(saddle_hint, skipped, cg, None)
        return jax.lax.cond(jnp.any(rep.negative_curvature), minres, lambda _: (x, rep), None)

    chunk = max(1, min(rhs_rows.shape[0], cfg.memory_budget // max(per_col, 1)))
    rows = (rhs_rows, tols, caps)
    return map_rows(lambda block: _krylov.in_chunks(solve_chunk, block, chunk), rows, cfg.mesh)


def _compute(cfg: _Config, fun, sol, params, args, null_basis):
    # raveled here and unflattened at the end, inside the compiled program
    prob = _flat_problem(fun, cfg.x_layout, cfg.theta_layout, sol, params, args)
    x, theta = prob.x, prob.theta
    d, n, dtype = prob.d, prob.n, prob.dtype
    residual_norm = jnp.linalg.norm(prob.residual)
    sign = cfg.sign

    # -- K and B, each from one batch of JVPs that also carries the probe directions -------
    tiny = jnp.finfo(dtype).tiny
    rel = lambda exact, approx: jnp.linalg.norm(exact - approx) / (jnp.linalg.norm(exact) + tiny)
    pv = la.probe_vectors(cfg.seed, 1, d, dtype)[0]
    pu = la.probe_vectors(cfg.seed + 1, 1, n, dtype)[0]
    a, b = la.probe_vectors(cfg.seed + 2, 2, d, dtype)
    checks = []
    k_sparse = k_dense = None
    n_products = 0
    if cfg.sparsity is not None:
        k_sparse, probes = prob.k_sparse(cfg.sparsity, pv[None, :])
        checks.append(rel(probes[0], k_sparse.matvec(pv)))
        # The recovered K is the operator itself (its blocks (i, j) and (j, i) come from
        # different products), checked along `pv` above: its asymmetry is the operator's,
        # measured without two more JVPs.
        ka, kb = k_sparse.matmat(jnp.stack([a, b], axis=1)).T
        n_products += cfg.sparsity.n_colors * cfg.sparsity.block_size
        if cfg.strategy == "dense":
            k_dense = k_sparse.todense()
    elif cfg.strategy == "dense":
        k_dense = prob.k_dense()
        ka, kb = k_dense @ a, k_dense @ b
        n_products += d
    else:
        ka, kb = prob.k_matvec(jnp.stack([a, b]))
    symmetry_error = jnp.abs(jnp.vdot(a, kb) - jnp.vdot(b, ka)) / (
        jnp.linalg.norm(ka) * jnp.linalg.norm(b) + tiny
    )
    observable = cfg.observable
    b_dense = None
    if cfg.b_assembly == "forward":
        if cfg.plan.compressed:
            b_dense, probes = prob.b_dense_forward(cfg.plan, pu[None, :])
            checks.append(rel(probes[0], b_dense @ pu))
        else:
            b_dense = prob.b_dense_forward(cfg.plan)
        n_products += cfg.plan.n_products
    sparsity_error = jnp.max(jnp.stack(checks)) if checks else jnp.asarray(jnp.nan, dtype)

    # -- zero modes: the known ones, and coordinates whose row of K vanishes (rattlers) ----
    keep = jnp.ones(d, dtype)
    if cfg.symmetric and k_sparse is None and k_dense is not None:
        keep = _dense.vanishing_rows(k_dense, cfg.singular_rtol)
    elif cfg.symmetric and k_sparse is not None:  # from the blocks: no pass over d × d
        block_rows = jnp.max(jnp.abs(k_sparse.blocks), axis=2)  # (P, bs): each block's rows
        rows_max = jax.ops.segment_max(block_rows, k_sparse.rows, k_sparse.n_blocks).reshape(-1)
        keep = (rows_max > cfg.singular_rtol * jnp.max(rows_max)).astype(dtype)
    z = null_basis.astype(dtype) if null_basis is not None else None
    proj = la.NullProjector(z, keep)
    project = proj.rows  # rows convention (…, d)
    n_masked = jnp.sum(1.0 - keep).astype(jnp.int32)

    # -- what to solve -------------------------------------------------------------------
    # forward: columns -B and -F (Newton step);  reverse: rows of the requested outputs
    if observable is not None:
        g_flat = lambda xx, tt: cfg.g_layout.ravel(
            observable(cfg.x_layout.unravel(xx), cfg.theta_layout.unravel(tt), *args), dtype
        )
        m_g = cfg.g_layout.size
    if cfg.mode == "forward":
        rhs = -b_dense  # (d, n)
        n_main = n
    else:
        if observable is not None:
            _, g_vjp = jax.vjp(g_flat, x, theta)
            g_x, g_theta = jax.vmap(g_vjp)(jnp.eye(m_g, dtype=dtype))  # (m_g, d), (m_g, n)
            seeds = g_x
        else:
            seeds = jnp.eye(d, dtype=dtype)
        n_main = seeds.shape[0]
        rhs = seeds.T  # (d, m)
    # The Newton step K⁻¹(−F) estimates x* − x̂ (for the error estimates); it is solved with
    # K itself, so in reverse mode only when Kᵀ = K.
    has_newton = cfg.mode == "forward" or cfg.symmetric
    newton_rhs = -prob.residual

    # -- solve ---------------------------------------------------------------------------
    transposed = cfg.mode == "reverse"
    # The derivative exists where ∂₂F is orthogonal to the zero modes of ∂₁F; forward-mode
    # right-hand sides are -∂₂F itself. (Reverse-mode seeds may lie in a zero mode: the
    # minimum-norm answer then has a zero row there, which is right.)
    consistency_rhs = rhs if cfg.mode == "forward" else b_dense
    if consistency_rhs is not None:
        norms = jnp.linalg.norm(consistency_rhs, axis=0)
        masked = jnp.linalg.norm(consistency_rhs * (1.0 - keep)[:, None], axis=0)
        masked_inconsistency = jnp.max(jnp.where(norms > 0, masked / jnp.where(norms > 0, norms, 1.0), 0.0), initial=0.0)
    else:
        masked_inconsistency = jnp.zeros((), dtype)

    def finish(x_cols, newton, solve_fwd, lam_min=None):
        """Build the main result and the error estimate from the solved columns."""
        if cfg.mode == "forward":
            j_flat = x_cols
            ju = j_flat @ pu
        else:
            w = x_cols  # (d, m): Kᵀ w = seed
            if b_dense is not None:
                contrib = -(w.T @ b_dense)
            else:
                contrib = -prob.b_rmatvec(w.T)
            j_flat = contrib if observable is None else g_theta + contrib
            ju = (j_flat @ pu) if observable is None else None
        if newton is None:
            return j_flat, jnp.asarray(jnp.nan, dtype)
        if ju is None:
            # total derivative in reverse mode: J u needs one forward solve
            bu = b_dense @ pu if b_dense is not None else prob.b_lin(pu)
            if solve_fwd is None:
                return j_flat, jnp.asarray(jnp.nan, dtype)
            ju = solve_fwd(-bu[:, None])[:, 0]
        h = _second_order(prob, newton, ju, pu)
        if solve_fwd is not None:
            dju = solve_fwd(-h[:, None])[:, 0]
            est = jnp.linalg.norm(dju) / (jnp.linalg.norm(ju) + jnp.finfo(dtype).tiny)
        else:
            est = jnp.linalg.norm(h) / (jnp.abs(lam_min) * jnp.linalg.norm(ju) + jnp.finfo(dtype).tiny)
        return j_flat, est

    if cfg.strategy == "dense":
        mesh = cfg.mesh

        factor, spectrum = _dense.factorize(
            k_dense, proj, cfg.symmetric, sign, cfg.singular_rtol, consistency_rhs, cfg.seed + 3
        )

        def sharded(transpose):
            single = lambda r: _dense.solve(factor, proj, sign, cfg.symmetric, r, transpose)
            if mesh is None:
                return single
            return lambda r: map_rows(lambda rows: single(rows.T).T, r.T, mesh).T

        if has_newton and cfg.mode == "forward":
            both = sharded(False)(jnp.concatenate([rhs, newton_rhs[:, None]], axis=1))
            x_cols, newton = both[:, :-1], both[:, -1]
        else:
            x_cols = sharded(transposed)(rhs)
            newton = (
                _dense.solve(factor, proj, sign, cfg.symmetric, newton_rhs[:, None])[:, 0]
                if has_newton else None
            )
        j_flat, est = finish(x_cols, newton, sharded(False))
        # per-column residuals against K as assembled (from the sparse recovery, whose
        # agreement with exact JVPs is `sparsity_error`): one dense product, cheaper on CPUs
        # than the gathers and scatters of the sparse blocks even at d = 1024 (measured 35 vs
        # 50 ms); untransposed, as XLA's CPU emitter runs transposed operands several times slower
        applied = (k_dense.T @ x_cols) if transposed else (k_dense @ x_cols)
        target = proj.cols(rhs)
        target_norm = jnp.linalg.norm(target, axis=0)
        col_res = jnp.linalg.norm(proj.cols(applied) - target, axis=0) / jnp.where(
            target_norm > 0, target_norm, 1.0
        )
        col_its = jnp.zeros(rhs.shape[1], jnp.int32)
        col_conv = col_res <= max(cfg.trust_rtol * 1e-2, 1e3 * float(jnp.finfo(dtype).eps))
        lam_min, lam_max, lam_res = spectrum.lambda_min, spectrum.lambda_max, spectrum.lambda_min_residual
        detected, negative, incons, verdict = (
            spectrum.detected_null, spectrum.negative,
            jnp.maximum(spectrum.inconsistency, masked_inconsistency), spectrum.verdict,
        )
        unresolved = jnp.asarray(False)
    else:
        # -- matrix-free -------------------------------------------------------------------
        if k_sparse is not None:
            fwd_rows = lambda v: k_sparse.matmat(v.T).T
            rev_rows = lambda v: k_sparse.matmat(v.T, transpose=True).T
        else:
            fwd_rows = prob.k_matvec
            rev_rows = prob.k_rmatvec
        apply_k = lambda v: sign * (fwd_rows(v) if v.ndim == 2 else fwd_rows(v[None])[0])
        apply_kt = lambda v: sign * (rev_rows(v) if v.ndim == 2 else rev_rows(v[None])[0])
        apply_op = apply_kt if (transposed and not cfg.symmetric) else apply_k
        # preconditioner
        if cfg.precond == "auto":
            precond = block_jacobi(dataclasses.replace(k_sparse, blocks=sign * k_sparse.blocks)) if k_sparse is not None else (lambda r: r)
        elif cfg.precond is None:
            precond = lambda r: r
        else:
            precond = cfg.precond
        # spectrum (symmetric): Lanczos once, shared
        if cfg.symmetric:
            steps = min(cfg.lanczos_steps, max(d - proj.n_known, 1))
            ritz = _krylov.lanczos(lambda v: apply_k(v), la.probe_vectors(cfg.seed + 3, 1, d, dtype)[0], steps, project)
            lam_max = jnp.max(jnp.abs(ritz.values))
            tau = cfg.singular_rtol * lam_max
            nonzero = jnp.abs(ritz.values) > tau
            lam_min = jnp.min(jnp.where(nonzero, ritz.values, jnp.inf))
            idx = jnp.argmin(jnp.where(nonzero, ritz.values, jnp.inf))
            lam_res = ritz.residuals[idx]
            negative = jnp.sum((ritz.values < -tau) & jnp.isfinite(ritz.residuals)).astype(jnp.int32)
            saddle_hint = negative > 0
            # vanishing rows (projected out) plus zero Ritz values: unexpected zero modes
            # (Lanczos sees one vector per distinct eigenvalue: a lower bound)
            detected = n_masked + jnp.sum(
                ~nonzero & jnp.isfinite(ritz.residuals) & (ritz.residuals <= tau * 10)
            ).astype(jnp.int32)
            deflation = None
            if cfg.deflation > 0:
                deflation = _krylov.Deflation.from_ritz(ritz, apply_k, min(cfg.deflation, steps), tau)
                deflation = jax.lax.cond(
                    saddle_hint,
                    lambda _: _krylov.Deflation(jnp.zeros_like(deflation.basis), jnp.zeros_like(deflation.a_basis), jnp.eye(deflation.e_inv.shape[0], dtype=dtype)),
                    lambda _: deflation,
                    None,
                )
            unresolved = ~(lam_res <= 0.1 * jnp.abs(lam_min))
        else:
            lam_min = lam_max = lam_res = jnp.asarray(jnp.nan, dtype)
            negative = detected = jnp.zeros((), jnp.int32)
            saddle_hint = jnp.asarray(False)
            deflation = None
            unresolved = jnp.asarray(True)
        # The Newton step rides along as one more row with a loose tolerance and a short
        # cap: the estimate needs a few digits, and on a singular system a noise-level F
        # need not be consistent (it would never converge).
        rhs_rows = sign * rhs.T
        m_main = rhs_rows.shape[0]
        tols = jnp.full(m_main, cfg.tol, dtype)
        caps = jnp.full(m_main, cfg.maxiter, jnp.int32)
        if has_newton:
            rhs_rows = jnp.concatenate([rhs_rows, sign * newton_rhs[None, :]])
            tols = jnp.concatenate([tols, jnp.full(1, 1e-3, dtype)])
            caps = jnp.concatenate([caps, jnp.full(1, min(cfg.maxiter, 200), jnp.int32)])
        x_rows, rep = _krylov_solve_rows(
            cfg, apply_op, precond, rhs_rows, tols, caps, deflation, saddle_hint, project, proj.z,
            _per_column_bytes(prob, k_sparse),
        )
        x_rows = project(x_rows)
        x_cols = x_rows[:m_main].T
        newton = x_rows[m_main] if has_newton else None
        rep = jax.tree.map(lambda a: a[:m_main], rep)
        j_flat, est = finish(x_cols, newton, None, lam_min)
        col_res, col_its, col_conv = rep.residual, rep.iterations, rep.converged
        incons = masked_inconsistency
        verdict = jnp.where(
            negative > 0, _dense.VERDICT_SADDLE, jnp.where(detected > 0, _dense.VERDICT_SINGULAR, _dense.VERDICT_MINIMUM)
        ) if cfg.symmetric else jnp.asarray(_dense.VERDICT_REGULAR)
        verdict = verdict.astype(jnp.int32)

    # -- observables in forward mode --------------------------------------------------------
    if observable is not None and cfg.mode == "forward":
        eye_n = jnp.eye(n, dtype=dtype)
        j_flat = jax.vmap(lambda jc, e: jax.jvp(g_flat, (x, theta), (jc, e))[1], out_axes=1)(j_flat.T, eye_n)

    # -- diagnostics ----------------------------------------------------------------------
    if has_newton:
        sol_err = jnp.linalg.norm(newton)
    else:
        sol_err = jnp.asarray(jnp.nan, dtype)
    sol_bound = residual_norm / jnp.abs(lam_min)
    n_known = proj.n_known
    flags, trustworthy = compute_flags(
        # F(x̂, θ) not finite (NaN input under jit): no Jacobian at such a point can be trusted
        jacobian_finite=jnp.all(jnp.isfinite(j_flat)) & jnp.isfinite(residual_norm),
        column_converged=col_conv,
        verdict_code=verdict,
        detected_null=detected,
        inconsistency=incons,
        jacobian_error_estimate=est,
        sparsity_error=sparsity_error,
        symmetry_error=symmetry_error,
        spectrum_unresolved=unresolved,
        trust_rtol=cfg.trust_rtol,
        structure_rtol=cfg.structure_rtol,
        symmetric=cfg.symmetric,
    )
    info = JacobianInfo(
        column_residual=col_res,
        column_iterations=col_its,
        column_converged=col_conv,
        stationarity_residual=residual_norm,
        lambda_min=lam_min,
        lambda_max=lam_max,
        lambda_min_residual=lam_res,
        verdict_code=verdict,
        null_space_dim=(detected + n_known).astype(jnp.int32),
        detected_null_dim=detected.astype(jnp.int32),
        negative_eigenvalues=negative.astype(jnp.int32),
        inconsistency=incons,
        solution_error_estimate=sol_err,
        solution_error_bound=sol_bound,
        jacobian_error_estimate=est,
        sparsity_error=sparsity_error,
        symmetry_error=symmetry_error,
        flags=flags,
        trustworthy=trustworthy,
        strategy=cfg.strategy,
        mode=cfg.mode,
        reason="",
        n_colors=cfg.sparsity.n_colors if cfg.sparsity is not None else 0,
        n_products=n_products,
    )
    out_layout = cfg.g_layout if observable is not None else cfg.x_layout
    return _unflatten(j_flat, out_layout, cfg.theta_layout), info


_compute_jit = jax.jit(_compute, static_argnums=(0, 1))


def _prepare(optimality_fun, sol, params, args, *, method, null_space, sparsity, per_atom_params,
             symmetric, gradient_sign, tol, maxiter, precond, lanczos_steps, deflation,
             memory_budget, shard, singular_rtol, trust_rtol, seed):
    if method not in METHODS:
        raise InputError(f"method: expected one of {', '.join(METHODS)}, got {method!r}")
    if gradient_sign not in (1, -1):
        raise InputError(f"gradient_sign: expected +1 (F = ∇E) or -1 (F = −∇E), got {gradient_sign!r}")
    _check_inexact(sol, "sol")
    _check_inexact(params, "params")
    if not jax.tree.leaves(params):
        raise InputError("params: no parameters to differentiate (empty pytree)")
    x_layout = Layout.of(sol)
    theta_layout = Layout.of(params)
    dtype = jnp.result_type(*jax.tree.leaves(sol))
    d, n = x_layout.size, theta_layout.size
    sp = _as_sparsity(sparsity, sol, d)
    plan = make_param_plan(theta_layout, sp, per_atom_params)
    tol, singular_rtol, trust_rtol, structure_rtol = _defaults(dtype, tol, singular_rtol, trust_rtol, d)
    sym, sym_reason = _decide_symmetric(
        symmetric, optimality_fun, x_layout, theta_layout, sol, params, tuple(args), structure_rtol
    )
    budget = int(memory_budget) if memory_budget is not None else _device_memory()
    null_basis = as_null_basis(null_space, d, dtype)
    common = dict(
        symmetric=sym, sign=int(gradient_sign), x_layout=x_layout, theta_layout=theta_layout,
        sparsity=sp, plan=plan, tol=float(tol),
        maxiter=int(maxiter) if maxiter is not None else 10 * d,
        precond=precond, lanczos_steps=int(lanczos_steps), deflation=int(deflation),
        memory_budget=budget, mesh=column_mesh(shard), singular_rtol=float(singular_rtol),
        trust_rtol=float(trust_rtol), structure_rtol=float(structure_rtol), seed=int(seed),
    )
    return d, n, dtype, null_basis, common, sym_reason


def _b_assembly(parameter_derivatives, mode, plan, m_rows, strategy):
    if parameter_derivatives not in ("auto", "forward", "reverse"):
        raise InputError(
            f"parameter_derivatives: expected 'auto', 'forward' or 'reverse', got {parameter_derivatives!r}"
        )
    if mode == "forward" or parameter_derivatives == "forward":
        return "forward"
    if parameter_derivatives == "reverse":
        return "reverse"
    # auto, reverse mode: materialize B by forward JVPs when that takes fewer products
    return "forward" if plan.n_products <= m_rows else "reverse"


def jacobian(
    optimality_fun: Callable,
    sol: Any,
    params: Any,
    *args: Any,
    method: str = "auto",
    null_space: Any = None,
    sparsity: Any = None,
    per_atom_params: Any = False,
    symmetric: bool | None = None,
    gradient_sign: int = 1,
    tol: float | None = None,
    maxiter: int | None = None,
    precond: Any = "auto",
    lanczos_steps: int = 64,
    deflation: int = 0,
    memory_budget: int | None = None,
    shard: Any = "auto",
    parameter_derivatives: str = "auto",
    singular_rtol: float | None = None,
    trust_rtol: float | None = None,
    seed: int = 0,
) -> JacobianResult:
    """The full Jacobian `∂x*/∂θ` of the root `F(x*(θ), θ) = 0` at `(sol, params)`, with diagnostics.

    **Arguments:**

    - `optimality_fun`: `F(sol, params, *args)`, returning a pytree shaped like `sol`;
      e.g. `jax.grad(energy)` for a minimum of `energy`.
    - `sol`: the solution `x̂` (any pytree of float arrays), e.g. relaxed positions.
    - `params`: `θ`, any pytree of float arrays; the Jacobian is taken in all of it.
    - `*args`: further arguments of `F`, not differentiated (a neighbor list, a box).
    - `method`: `"auto"` (default; the choice and its reason go to `info.strategy`/`info.reason`),
      `"dense"` (materialize `∂₁F`, factorize once: Cholesky, LU, eigendecomposition or SVD
      as the matrix requires), `"krylov"` (matrix-free preconditioned CG/MINRES/GMRES in
      chunks), `"reverse"` (rows by adjoint solves, for `d < n`).
    - `null_space`: `(k, d)` orthonormal rows spanning known zero modes of `∂₁F` on the
      flattened solution (see `translation_modes`, `rigid_body_modes`); they are projected
      out, giving the minimum-norm Jacobian.
    - `sparsity`: a structure hint: a `Sparsity`, or a `(P, 2)` array of interacting atom
      pairs when `sol` is one `(n_atoms, n_spatial)` array. `∂₁F` is then recovered from
      `n_colors × n_spatial` JVPs (checked against an exact JVP, see `info.sparsity_error`).
    - `per_atom_params`: `True` (or one bool per parameter leaf) when a parameter's leading
      axis runs over atoms and only touches that atom's interactions (per-particle
      diameters); its `∂₂F` columns are then compressed by the same coloring.
    - `symmetric`: whether `∂₁F` is symmetric (Cholesky/CG/MINRES instead of LU/GMRES);
      default: probed with two JVPs.
    - `gradient_sign`: `+1` when `F = ∇E` (a minimum has positive curvature), `-1` when `F`
      is the force `−∇E`; only the verdict and the choice of factorization depend on it.
    - `tol`, `maxiter`: Krylov relative residual tolerance (default `eps**0.75`) and
      iteration limit (default `10 d`).
    - `precond`: `"auto"` (block-Jacobi from the recovered sparse `∂₁F`, none without a hint),
      `None`, or a callable on `(…, d)` arrays approximating `(gradient_sign · ∂₁F)⁻¹`.
    - `lanczos_steps`: Lanczos steps for the Krylov strategy's spectrum (`λ_min`, verdict).
    - `deflation`: number of Ritz vectors deflated from every CG solve (Krylov strategy).
    - `memory_budget`: bytes for the dense matrix or a chunk of Krylov columns; default
      half the accelerator's memory, or a quarter of the host's.
    - `shard`: `"auto"` shards columns over every device when there are several; `False`;
      or a `jax.sharding.Mesh`.
    - `parameter_derivatives`: how `∂₂F` is applied in reverse mode: `"forward"` (JVPs,
      safe where reverse-mode derivatives of the model give NaN), `"reverse"` (VJPs), `"auto"`.
    - `singular_rtol`: eigenvalues below `singular_rtol · λ_max` count as zero modes
      (default `100 d eps`).
    - `trust_rtol`: the estimated relative Jacobian error above which the result is not
      trustworthy (default `1e-6` in float64, `1e-3` in float32).
    - `seed`: for the random probe directions of the diagnostics.

    **Returns:** a `JacobianResult` with `.jacobian` (as `jax.jacobian` of the solution map:
    for arrays, shape `sol.shape + params.shape`) and `.info` (`JacobianInfo`).

    **Example:**

    ```python
    F = jax.grad(energy)                       # energy(positions, diameters)
    result = sensitiv.jacobian(
        F, positions, diameters,
        null_space=translation_modes(n_atoms, 2),
        sparsity=pairs, per_atom_params=True,
    )
    result.jacobian.shape                      # (n_atoms, 2, n_atoms)
    result.info.trustworthy, result.info.verdict, result.info.warnings
    ```
    """
    d, n, dtype, null_basis, common, sym_reason = _prepare(
        optimality_fun, sol, params, args, method=method, null_space=null_space,
        sparsity=sparsity, per_atom_params=per_atom_params, symmetric=symmetric,
        gradient_sign=gradient_sign, tol=tol, maxiter=maxiter, precond=precond,
        lanczos_steps=lanczos_steps, deflation=deflation, memory_budget=memory_budget,
        shard=shard, singular_rtol=singular_rtol, trust_rtol=trust_rtol, seed=seed,
    )
    itemsize = jnp.dtype(dtype).itemsize
    if method == "reverse":
        mode = "reverse"
        strategy, reason = _choose_strategy("auto", d, d, itemsize, common["memory_budget"], common["sparsity"], common["symmetric"])
        reason = f"reverse requested ({d} adjoint solves); {strategy}: {reason}"
    else:
        strategy, reason = _choose_strategy(
            method, d, min(n, d) + 1, itemsize, common["memory_budget"], common["sparsity"], common["symmetric"]
        )
        mode = "forward"
        if strategy == "krylov" and d < n and method == "auto":
            mode = "reverse"
            reason += f"; reverse mode: {d} outputs < {n} parameters"
    reason += f"; ∂₁F symmetric: {common['symmetric']} ({sym_reason})"
    b_assembly = _b_assembly(parameter_derivatives, mode, common["plan"], d, strategy)
    cfg = _Config(strategy=strategy, mode=mode, b_assembly=b_assembly, **common)
    jac, info = _compute_jit(cfg, optimality_fun, sol, params, tuple(args), null_basis)
    # the reason is static text, kept out of the compile-cache key
    jac, info = gather_to_host((jac, dataclasses.replace(info, reason=reason)))
    return JacobianResult(jac, info)


def total_derivative(
    observable: Callable,
    optimality_fun: Callable,
    sol: Any,
    params: Any,
    *args: Any,
    mode: str = "auto",
    method: str = "auto",
    **options: Any,
) -> JacobianResult:
    """Total derivative `dg/dθ = ∂g/∂θ + ∂g/∂x · ∂x*/∂θ` of an observable at the root of `F`.

    Forward mode solves one system per parameter (`n`), reverse mode one per output of `g`
    (`m`); `"auto"` takes the cheaper. The relaxed-ion elastic tensor is the total
    derivative of the stress with respect to the strain.

    **Arguments:**

    - `observable`: `g(sol, params, *args)`, any pytree of float arrays (energy, stress, a distance).
    - `optimality_fun`, `sol`, `params`, `*args`: as in `jacobian`.
    - `mode`: `"auto"`, `"forward"` or `"reverse"`.
    - `method`: `"auto"`, `"dense"` or `"krylov"`: how the linear systems are solved.
    - `**options`: every other option of `jacobian` (`null_space`, `sparsity`, ...).

    **Returns:** a `JacobianResult` whose `.jacobian` is structured like `jax.jacobian` of
    `θ ↦ g(x*(θ), θ)`: `g`'s structure outside, `params`' inside.

    **Example:**

    ```python
    stress = lambda x, strain: jax.grad(energy, argnums=1)(x, strain) / volume
    C = sensitiv.total_derivative(stress, jax.grad(energy), x_relaxed, strain0).jacobian
    ```
    """
    if mode not in ("auto", "forward", "reverse"):
        raise InputError(f"mode: expected 'auto', 'forward' or 'reverse', got {mode!r}")
    if method not in ("auto", "dense", "krylov"):
        raise InputError(f"method: expected 'auto', 'dense' or 'krylov' for total_derivative, got {method!r}")
    parameter_derivatives = options.pop("parameter_derivatives", "auto")
    defaults = dict(
        null_space=None, sparsity=None, per_atom_params=False, symmetric=None, gradient_sign=1,
        tol=None, maxiter=None, precond="auto", lanczos_steps=64, deflation=0, memory_budget=None,
        shard="auto", singular_rtol=None, trust_rtol=None, seed=0,
    )
    unknown = set(options) - set(defaults)
    if unknown:
        raise InputError(f"total_derivative: unknown option(s) {', '.join(sorted(unknown))}")
    defaults.update(options)
    d, n, dtype, null_basis, common, sym_reason = _prepare(
        optimality_fun, sol, params, args, method=method, **defaults
    )
    g_shape = jax.eval_shape(observable, sol, params, *args)
    _check_inexact(g_shape, "observable output")
    g_layout = Layout.of(g_shape)
    m_g = g_layout.size
    if mode == "auto":
        mode = "reverse" if m_g < n else "forward"
        mode_reason = f"{mode} mode: {m_g} outputs vs {n} parameters"
    else:
        mode_reason = f"{mode} mode requested"
    m = (n if mode == "forward" else m_g) + 1
    strategy, reason = _choose_strategy(
        method, d, m, jnp.dtype(dtype).itemsize, common["memory_budget"], common["sparsity"], common["symmetric"]
    )
    reason = f"{mode_reason}; {strategy}: {reason}; ∂₁F symmetric: {common['symmetric']} ({sym_reason})"
    b_assembly = _b_assembly(parameter_derivatives, mode, common["plan"], m_g, strategy)
    cfg = _Config(
        strategy=strategy, mode=mode, b_assembly=b_assembly,
        observable=observable, g_layout=g_layout, **common,
    )
    deriv, info = _compute_jit(cfg, optimality_fun, sol, params, tuple(args), null_basis)
    deriv, info = gather_to_host((deriv, dataclasses.replace(info, reason=reason)))
    return JacobianResult(deriv, info)
