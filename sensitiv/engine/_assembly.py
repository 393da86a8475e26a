"""Inside the compiled program, before any solve: `∂₁F` and `∂₂F` assembled, the zero modes
projected out, the systems to solve set up — what both strategies start from — and the
record each strategy hands back (`Solved`).

Every product that a diagnostic needs (probe directions for the sparse-recovery check and
the symmetry measurement) rides in the same batch of JVPs as the assembly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from . import _linalg as la
from ._diagnostics import Spectrum
from ._operators import Problem
from ._structure import BlockSparse

__all__ = ["Assembly", "Systems", "Solved", "assemble", "zero_mode_projector", "systems", "vanishing_rows"]


class Assembly(NamedTuple):
    """`K = ∂₁F` and `B = ∂₂F` as far as the plan materializes them, with their checks."""

    prob: Problem
    k_sparse: BlockSparse | None  # with a structure hint
    k_dense: jax.Array | None  # dense strategy (from the sparse blocks when there are any)
    b_dense: jax.Array | None  # `(d, n)` when B is assembled by forward JVPs
    sparsity_error: jax.Array  # NaN without a structure hint
    symmetry_error: jax.Array
    n_products: int  # JVPs spent on assembly (static)
    probe_u: jax.Array  # the parameter direction of the error estimate


class Systems(NamedTuple):
    """What is solved: `K X = rhs` (forward) or `Kᵀ W = rhs` (reverse), plus the Newton step."""

    rhs: jax.Array  # (d, m): -B (forward) or the output seeds (reverse)
    newton_rhs: jax.Array | None  # -F, solved only where K itself is available
    consistency_rhs: jax.Array | None  # what must be orthogonal to the zero modes (-B or B)
    masked_inconsistency: jax.Array  # fraction of it on vanishing rows
    g_flat: Callable | None  # the raveled observable
    g_theta: jax.Array | None  # ∂g/∂θ (reverse mode with an observable)


class Solved(NamedTuple):
    """What a strategy's solve path returns to the program."""

    x_cols: jax.Array  # (d, m) solutions of the main systems
    newton: jax.Array | None  # K⁻¹(−F), for the error estimates
    solve_forward: Callable | None  # further forward solves `(d, k) -> (d, k)` (dense only)
    column_residual: jax.Array
    column_iterations: jax.Array
    column_converged: jax.Array
    spectrum: Spectrum
    spectrum_unresolved: jax.Array


def _relative_error(exact, approx):
    tiny = jnp.finfo(exact.dtype).tiny
    return jnp.linalg.norm(exact - approx) / (jnp.linalg.norm(exact) + tiny)


def assemble(plan, prob: Problem) -> Assembly:
    """`K` and `B` each from one batch of JVPs that also carries the probe directions."""
    d, n, dtype = prob.d, prob.n, prob.dtype
    pv = la.probe_vectors(plan.seed, 1, d, dtype)[0]
    pu = la.probe_vectors(plan.seed + 1, 1, n, dtype)[0]
    a, b = la.probe_vectors(plan.seed + 2, 2, d, dtype)
    checks = []
    k_sparse = k_dense = None
    n_products = 0
    if plan.sparsity is not None:
        k_sparse, probes = prob.k_sparse(plan.sparsity, pv[None, :])
        checks.append(_relative_error(probes[0], k_sparse.matvec(pv)))
        # The recovered K is the operator itself (its blocks (i, j) and (j, i) come from
        # different products), checked along `pv` above: its asymmetry is the operator's,
        # measured without two more JVPs.
        ka, kb = k_sparse.matmat(jnp.stack([a, b], axis=1)).T
        n_products += plan.sparsity.shape.n_colors * plan.sparsity.shape.block_size
        if plan.strategy == "dense":
            k_dense = k_sparse.todense()
    elif plan.strategy == "dense":
        k_dense = prob.k_dense()
        ka, kb = k_dense @ a, k_dense @ b
        n_products += d
    else:
        ka, kb = prob.k_matvec(jnp.stack([a, b]))
    symmetry_error = jnp.abs(jnp.vdot(a, kb) - jnp.vdot(b, ka)) / (
        jnp.linalg.norm(ka) * jnp.linalg.norm(b) + jnp.finfo(dtype).tiny
    )
    b_dense = None
    if plan.b_assembly == "forward":
        if plan.param_plan.compressed:
            b_dense, probes = prob.b_dense_forward(plan.param_plan, pu[None, :])
            checks.append(_relative_error(probes[0], b_dense @ pu))
        else:
            b_dense = prob.b_dense_forward(plan.param_plan)
        n_products += plan.param_plan.n_products
    sparsity_error = jnp.max(jnp.stack(checks)) if checks else jnp.asarray(jnp.nan, dtype)
    return Assembly(prob, k_sparse, k_dense, b_dense, sparsity_error, symmetry_error, n_products, pu)


def _keep_mask(row_max, singular_rtol, dtype):
    """Mask (1 = keep) of the coordinates whose row of K vanishes (isolated zero modes).
    When all of K vanishes (one atom in a box, atoms out of each other's reach) nothing is
    masked: the zero modes are then judged against the known ones by the spectrum."""
    top = jnp.max(row_max)
    return jnp.where(top > 0, row_max > singular_rtol * top, True).astype(dtype)


def vanishing_rows(k, singular_rtol):
    """Mask (1 = keep) of the coordinates whose row of `k` vanishes: isolated zero modes."""
    return _keep_mask(jnp.max(jnp.abs(k), axis=1), singular_rtol, k.dtype)


def zero_mode_projector(plan, asm: Assembly, null_basis, active=None) -> tuple[la.NullProjector, jax.Array]:
    """The known zero modes, and coordinates whose row of K vanishes (rattlers); returns the
    projector onto their complement and the number of zero modes the vanishing rows add
    beyond the known ones. `active` (`(d,)`, 1 = a coordinate of the problem) masks padding
    coordinates out as well, counted as no zero mode."""
    d, dtype = asm.prob.d, asm.prob.dtype
    keep = jnp.ones(d, dtype)
    if plan.symmetric and asm.k_sparse is not None:  # from the blocks: no pass over d × d
        k_sparse = asm.k_sparse
        block_rows = jnp.max(jnp.abs(k_sparse.blocks), axis=2)  # (P, bs): each block's rows
        rows_max = jax.ops.segment_max(block_rows, k_sparse.rows, k_sparse.n_blocks).reshape(-1)
        keep = _keep_mask(rows_max, plan.singular_rtol, dtype)
    elif plan.symmetric and asm.k_dense is not None:
        keep = vanishing_rows(asm.k_dense, plan.singular_rtol)
    excluded = 0
    if active is not None:
        keep = keep * active
        excluded = jnp.sum(1.0 - active)
    z = null_basis.astype(dtype) if null_basis is not None else None
    proj = la.NullProjector(z, keep, excluded)
    return proj, proj.masked_beyond_known()


def systems(plan, asm: Assembly, proj: la.NullProjector) -> Systems:
    """Forward: the columns −B and the Newton step −F; reverse: the rows of the outputs."""
    prob, b_dense, dtype = asm.prob, asm.b_dense, asm.prob.dtype
    g_flat = g_theta = None
    if plan.observable is not None:
        g_flat = lambda xx, tt: plan.g_layout.ravel(
            plan.observable(plan.x_layout.unravel(xx), plan.theta_layout.unravel(tt), *prob.args), dtype
        )
    if plan.mode == "forward":
        rhs = -b_dense  # (d, n)
    elif g_flat is not None:
        _, g_vjp = jax.vjp(g_flat, prob.x, prob.theta)
        g_x, g_theta = jax.vmap(g_vjp)(jnp.eye(plan.g_layout.size, dtype=dtype))  # (m_g, d), (m_g, n)
        rhs = g_x.T
    else:
        rhs = jnp.eye(prob.d, dtype=dtype)
    # The Newton step K⁻¹(−F) estimates x* − x̂ (for the error estimates); it is solved with
    # K itself, so in reverse mode only when Kᵀ = K.
    newton_rhs = -prob.residual if (plan.mode == "forward" or plan.symmetric) else None
    # The derivative exists where ∂₂F is orthogonal to the zero modes of ∂₁F; forward-mode
    # right-hand sides are -∂₂F itself. (Reverse-mode seeds may lie in a zero mode: the
    # minimum-norm answer then has a zero row there, which is right.)
    consistency_rhs = rhs if plan.mode == "forward" else b_dense
    if consistency_rhs is not None:
        norms = jnp.linalg.norm(consistency_rhs, axis=0)
        masked = jnp.linalg.norm(consistency_rhs * (1.0 - proj.keep)[:, None], axis=0)
        safe = jnp.where(norms > 0, norms, 1.0)
        masked_inconsistency = jnp.max(jnp.where(norms > 0, masked / safe, 0.0), initial=0.0)
    else:
        masked_inconsistency = jnp.zeros((), dtype)
    return Systems(rhs, newton_rhs, consistency_rhs, masked_inconsistency, g_flat, g_theta)
