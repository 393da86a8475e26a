"""The compiled program of one Jacobian computation, for a given `Plan`:

assemble `∂₁F` and `∂₂F` → project the zero modes → the strategy's solve path
(`_dense.solve_all` or `_krylov.solve_all`) → the Jacobian (or total derivative) and its
error estimate → `JacobianInfo`.

Raveling and unflattening happen inside the program (on the host every reshape is a
dispatch of its own). `run` is jitted with the plan and `F`'s static part
(`_operators.split_callable`) static, `F`'s array leaves traced: the compilation is cached
per optimality function and plan, and a pytree `F` carrying values (the pipeline's θ
embedding, a frame's data) is compiled once for all values of the same shapes.

A `then` step (static, hashable) may follow the Jacobian in the same program: it receives
`Solves` — `F` on flat vectors, the flat Jacobian and the strategy's solver with the
factorization (or preconditioner) already built — so that further right-hand sides (the
higher-order derivatives of `sensitiv.uncertainty`) reuse it instead of assembling and
factorizing `K` again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from . import _dense, _krylov
from . import _linalg as la
from ._assembly import Assembly, Solved, Systems, assemble, systems, zero_mode_projector
from ._diagnostics import JacobianInfo, compute_flags
from ._operators import Problem, flat_problem, merge_callable, unflatten

__all__ = ["run", "Solves"]


class Solves(NamedTuple):
    """What a `then` step of `run` receives (traced values, flat vectors).

    **Arguments:**

    - `flat`: `F(x, θ)` on flat vectors.
    - `x`, `theta`: the flat root and parameters.
    - `jacobian`: `(d, n)` the flat Jacobian just computed.
    - `solve`: `(d, k) ↦ K⁺ r` with the Jacobian's operator: the same factorization (dense)
      or solver and preconditioner (Krylov), restricted to the complement of the zero modes.
    - `project`: `(d, k)` columns onto that complement.
    """

    flat: Callable
    x: jax.Array
    theta: jax.Array
    jacobian: jax.Array
    solve: Callable
    project: Callable

STRATEGIES = {"dense": _dense, "krylov": _krylov}


def _second_order(prob: Problem, direction_x, ju, u):
    """`d/dε [K(x̂+εs) J u + B(x̂+εs) u]` at ε = 0: how the linear system moves along the Newton step."""

    def linear_residual(xx):
        return jax.jvp(prob.flat, (xx, prob.theta), (ju, u))[1]

    return jax.jvp(linear_residual, (prob.x,), (direction_x,))[1]


def _derivative(plan, asm: Assembly, sys: Systems, x_cols):
    """The flat result from the solved systems: `J` (forward: the columns themselves;
    reverse: `−Wᵀ B`), or `∂g/∂θ + ∂g/∂x J` with an observable in reverse mode."""
    if plan.mode == "forward":
        return x_cols
    contrib = -(x_cols.T @ asm.b_dense) if asm.b_dense is not None else -asm.prob.b_rmatvec(x_cols.T)
    return contrib if plan.observable is None else sys.g_theta + contrib


def _active_x(prob: Problem, active):
    """`(x̂ on the problem's own coordinates, their count)`: padding coordinates (`active` 0)
    are taken out, weighted to zero, so that no scale depends on them."""
    if active is None:
        return prob.x, jnp.asarray(prob.d, prob.dtype), None
    return prob.x * active, jnp.sum(active), active


def _jacobian_floor(prob: Problem, active=None):
    """The size below which `‖J u‖` counts as zero: `√eps` of the spread of the solution
    (standard deviation of its entries: for positions, a length of the size of the
    structure) per unit of `θ` (per rms of `θ` where that exceeds 1). A Jacobian that
    vanishes by symmetry (a Bravais lattice under strain) has its error measured against
    this floor instead of against its own round-off."""
    theta_rms = jnp.sqrt(jnp.mean(prob.theta**2)) if prob.n else jnp.ones((), prob.dtype)
    eps = jnp.finfo(prob.dtype).eps
    x, count, weight = _active_x(prob, active)
    if weight is None:
        spread = jnp.std(x)
    else:
        mean = jnp.sum(x) / count
        spread = jnp.sqrt(jnp.sum(weight * (x - mean) ** 2) / count)
    return jnp.sqrt(eps) * spread / jnp.maximum(theta_rms, 1.0)


def _solution_step(asm: Assembly, solved: Solved, active=None):
    """The Newton step `K⁺(−F)` (`x* − x̂` to first order) as far as `F` exceeds what the
    rounding of `x̂` itself makes: `‖K δx‖ ≤ λ_max · eps · max|x̂| · √d` for coordinates
    rounded by `eps · max|x̂|`. Below that level `F` is round-off (a perfect crystal, an
    exactly polished root) and its Newton step a fiction that must not be turned into a
    Jacobian error; above it, the step counts in proportion. `None` where not solved."""
    if solved.newton is None:
        return None
    prob, dtype = asm.prob, asm.prob.dtype
    eps = jnp.finfo(dtype).eps
    lam_max = jnp.where(jnp.isfinite(solved.spectrum.lambda_max), jnp.abs(solved.spectrum.lambda_max), 0.0)
    x, count, _ = _active_x(prob, active)
    rounding = eps * lam_max * jnp.max(jnp.abs(x)) * jnp.sqrt(count.astype(dtype))
    f_norm = jnp.linalg.norm(prob.residual)
    weight = jnp.clip(1.0 - rounding / jnp.maximum(f_norm, jnp.finfo(dtype).tiny), 0.0, 1.0)
    return weight * solved.newton


#: Parameter directions of the error estimate: every parameter up to this many (the
#: estimate is then the Frobenius norm itself), else this many generic directions.
ERROR_PROBES = 8


def _error_estimate(plan, asm: Assembly, j_flat, solved: Solved, step, active=None):
    """Relative error of the Jacobian, `‖ΔJ U‖_F / ‖J U‖_F` over the probe directions `U`
    (every parameter when there are at most `ERROR_PROBES`, else that many generic
    directions, whose ratio estimates `‖ΔJ‖_F / ‖J‖_F`), from both of its sources, by one
    more batch of solves of the strategy: `ΔJ U = −K⁻¹ (H + R)`, where
    - `H` is the first-order change of the linear system along the Newton step `step`
      (`_solution_step`): the error caused by `x̂ ≠ x*` (Blondel et al. 2022, Theorem 1);
    - `R = K (J U) + B U` is the residual of the computed columns: the error of the linear
      solves (a Krylov tolerance, or round-off: in float32 it can dominate).
    Relative to `max(‖J U‖_F, floor · ‖U‖_F)` (`_jacobian_floor`), so that it stays
    meaningful where `J` vanishes."""
    prob, dtype = asm.prob, asm.prob.dtype
    if solved.newton is None or solved.solve_forward is None:
        return jnp.asarray(jnp.nan, dtype)
    n = prob.n
    u = jnp.eye(n, dtype=dtype) if n <= ERROR_PROBES else la.probe_vectors(plan.seed + 1, ERROR_PROBES, n, dtype).T
    solved_here = plan.mode == "reverse" and plan.observable is not None
    if solved_here:
        # total derivative in reverse mode: J U needs forward solves
        bu = asm.b_dense @ u if asm.b_dense is not None else jax.vmap(prob.b_lin, in_axes=1, out_axes=1)(u)
        ju = solved.solve_forward(-bu)
    else:
        ju = j_flat @ u
    h = jax.vmap(lambda jc, uc: _second_order(prob, step, jc, uc), in_axes=1, out_axes=1)(ju, u)
    if not solved_here:
        # the columns' own residual (J U solved here for the estimate has it already)
        h = h + jax.vmap(lambda jc, uc: jax.jvp(prob.flat, (prob.x, prob.theta), (jc, uc))[1],
                         in_axes=1, out_axes=1)(ju, u)
    dju = solved.solve_forward(-h)
    scale = jnp.maximum(jnp.linalg.norm(ju), _jacobian_floor(prob, active) * jnp.linalg.norm(u))
    return jnp.linalg.norm(dju) / jnp.maximum(scale, jnp.finfo(dtype).tiny)


def _curvature_uncertainty(plan, asm: Assembly, proj, step, steps: int = 8):
    """How far the spectrum of `K(x̂)` may lie from that of `K(x*)`: `‖P ∂K[s] P‖₂`, with
    `s` the Newton step (`x* − x̂` to first order, `_solution_step`), by power iteration on the
    third-derivative operator `v ↦ d/dε K(x̂ + εs) v` (Weyl: every eigenvalue moves by at
    most this much). A negative `λ_min` smaller than this does not establish a saddle: the
    sign of the softest curvature at the exact root is not known from `x̂`."""
    prob, dtype = asm.prob, asm.prob.dtype
    if step is None or not plan.symmetric:
        return jnp.zeros((), dtype)
    s = step
    zero_theta = jnp.zeros_like(prob.theta)

    def apply(v):
        k_v = lambda xx: jax.jvp(prob.flat, (xx, prob.theta), (v, zero_theta))[1]
        return proj.rows(jax.jvp(k_v, (prob.x,), (s,))[1])

    def step(_, carry):
        v, _norm = carry
        w = apply(v)
        norm = jnp.linalg.norm(w)
        return w / jnp.maximum(norm, jnp.finfo(dtype).tiny), norm

    v0 = proj.rows(la.probe_vectors(plan.seed + 5, 1, prob.d, dtype)[0])
    v0 = v0 / jnp.maximum(jnp.linalg.norm(v0), jnp.finfo(dtype).tiny)
    # power iteration bounds ‖·‖ from below; 2x covers its typical shortfall after a few steps
    return 2.0 * jax.lax.fori_loop(0, steps, step, (v0, jnp.zeros((), dtype)))[1]


def _info(plan, asm: Assembly, proj, solved: Solved, j_flat, est, reach) -> JacobianInfo:
    spec, dtype = solved.spectrum, asm.prob.dtype
    residual_norm = jnp.linalg.norm(asm.prob.residual)
    sol_err = jnp.linalg.norm(solved.newton) if solved.newton is not None else jnp.asarray(jnp.nan, dtype)
    flags, trustworthy, verdict = compute_flags(
        # F(x̂, θ) not finite (NaN input under jit): no Jacobian at such a point can be trusted
        jacobian_finite=jnp.all(jnp.isfinite(j_flat)) & jnp.isfinite(residual_norm),
        column_converged=solved.column_converged,
        verdict_code=spec.verdict,
        detected_null=spec.detected_null,
        inconsistency=spec.inconsistency,
        jacobian_error_estimate=est,
        sparsity_error=asm.sparsity_error,
        symmetry_error=asm.symmetry_error,
        spectrum_unresolved=solved.spectrum_unresolved,
        lambda_min=spec.lambda_min,
        curvature_uncertainty=reach,
        trust_rtol=plan.trust_rtol,
        structure_rtol=plan.structure_rtol,
        symmetric=plan.symmetric,
    )
    return JacobianInfo(
        column_residual=solved.column_residual,
        column_iterations=solved.column_iterations,
        column_converged=solved.column_converged,
        stationarity_residual=residual_norm,
        lambda_min=spec.lambda_min,
        lambda_max=spec.lambda_max,
        lambda_min_residual=spec.lambda_min_residual,
        verdict_code=verdict,
        null_space_dim=(spec.detected_null + proj.n_known).astype(jnp.int32),
        detected_null_dim=spec.detected_null.astype(jnp.int32),
        negative_eigenvalues=spec.negative.astype(jnp.int32),
        inconsistency=spec.inconsistency,
        solution_error_estimate=sol_err,
        solution_error_bound=residual_norm / jnp.abs(spec.lambda_min),
        curvature_uncertainty=reach,
        jacobian_error_estimate=est,
        sparsity_error=asm.sparsity_error,
        symmetry_error=asm.symmetry_error,
        flags=flags,
        trustworthy=trustworthy,
        strategy=plan.strategy,
        mode=plan.mode,
        reason="",
        n_colors=0,  # the coloring's own count, set on the host (_api)
        n_products=asm.n_products,
        trust_rtol=plan.trust_rtol,
    )


def _run(plan, fun_static, fun_arrays, sol, params, args, null_basis, structure, then=None, then_args=None,
         active=None):
    fun = merge_callable(fun_static, fun_arrays)
    if structure is not None:  # the traced arrays of the sparsity whose shapes the plan holds
        plan = dataclasses.replace(plan, sparsity=structure)
    prob = flat_problem(fun, plan.x_layout, plan.theta_layout, sol, params, args)
    asm = assemble(plan, prob)
    proj, n_masked = zero_mode_projector(plan, asm, null_basis, active)
    sys = systems(plan, asm, proj)
    solved = STRATEGIES[plan.strategy].solve_all(plan, asm, proj, n_masked, sys)
    j_flat = _derivative(plan, asm, sys, solved.x_cols)
    step = _solution_step(asm, solved, active)
    est = _error_estimate(plan, asm, j_flat, solved, step, active)
    reach = _curvature_uncertainty(plan, asm, proj, step)
    extra = None
    if then is not None:
        extra = then(Solves(prob.flat, prob.x, prob.theta, j_flat, solved.solve_forward, proj.cols), then_args)
    if plan.observable is not None and plan.mode == "forward":
        # dg/dθ = ∂g/∂x J + ∂g/∂θ, one JVP of g per parameter
        eye_n = jnp.eye(prob.n, dtype=prob.dtype)
        j_flat = jax.vmap(lambda jc, e: jax.jvp(sys.g_flat, (prob.x, prob.theta), (jc, e))[1], out_axes=1)(
            j_flat.T, eye_n
        )
    out_layout = plan.g_layout if plan.observable is not None else plan.x_layout
    out = unflatten(j_flat, out_layout, plan.theta_layout), _info(plan, asm, proj, solved, j_flat, est, reach)
    return out if then is None else (*out, extra)


run = jax.jit(_run, static_argnums=(0, 1, 8))
