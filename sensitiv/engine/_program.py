"""The compiled program of one Jacobian computation, for a given `Plan`:

assemble `∂₁F` and `∂₂F` → project the zero modes → the strategy's solve path
(`_dense.solve_all` or `_krylov.solve_all`) → the Jacobian (or total derivative) and its
error estimate → `JacobianInfo`.

Raveling and unflattening happen inside the program (on the host every reshape is a
dispatch of its own). `run` is jitted with the plan and `F` static: the compilation is
cached per optimality function and plan.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from . import _dense, _krylov
from ._assembly import Assembly, Solved, Systems, assemble, systems, zero_mode_projector
from ._diagnostics import JacobianInfo, compute_flags
from ._operators import Problem, flat_problem, unflatten

__all__ = ["run"]

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


def _jacobian_floor(prob: Problem):
    """The size below which `‖J u‖` counts as zero: `√eps` of the spread of the solution
    (standard deviation of its entries: for positions, a length of the size of the
    structure) per unit of `θ` (per rms of `θ` where that exceeds 1). A Jacobian that
    vanishes by symmetry (a Bravais lattice under strain) has its error measured against
    this floor instead of against its own round-off."""
    theta_rms = jnp.sqrt(jnp.mean(prob.theta**2)) if prob.n else jnp.ones((), prob.dtype)
    eps = jnp.finfo(prob.dtype).eps
    return jnp.sqrt(eps) * jnp.std(prob.x) / jnp.maximum(theta_rms, 1.0)


def _error_estimate(plan, asm: Assembly, j_flat, solved: Solved):
    """Error of the Jacobian caused by `x̂ ≠ x*` (Blondel et al. 2022, Theorem 1): the
    first-order change `ΔJ u = −K⁻¹ h` of `J u` along the Newton step, in the random
    direction `u`, solved by the strategy; relative to `max(‖J u‖, floor · ‖u‖)`
    (`_jacobian_floor`), so that it stays meaningful where `J` vanishes."""
    prob, pu, dtype = asm.prob, asm.probe_u, asm.prob.dtype
    if solved.newton is None or solved.solve_forward is None:
        return jnp.asarray(jnp.nan, dtype)
    if plan.mode == "reverse" and plan.observable is not None:
        # total derivative in reverse mode: J u needs one forward solve
        bu = asm.b_dense @ pu if asm.b_dense is not None else prob.b_lin(pu)
        ju = solved.solve_forward(-bu[:, None])[:, 0]
    else:
        ju = j_flat @ pu
    h = _second_order(prob, solved.newton, ju, pu)
    dju = solved.solve_forward(-h[:, None])[:, 0]
    scale = jnp.maximum(jnp.linalg.norm(ju), _jacobian_floor(prob) * jnp.linalg.norm(pu))
    return jnp.linalg.norm(dju) / jnp.maximum(scale, jnp.finfo(dtype).tiny)


def _info(plan, asm: Assembly, proj, solved: Solved, j_flat, est) -> JacobianInfo:
    spec, dtype = solved.spectrum, asm.prob.dtype
    residual_norm = jnp.linalg.norm(asm.prob.residual)
    sol_err = jnp.linalg.norm(solved.newton) if solved.newton is not None else jnp.asarray(jnp.nan, dtype)
    flags, trustworthy = compute_flags(
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
        verdict_code=spec.verdict,
        null_space_dim=(spec.detected_null + proj.n_known).astype(jnp.int32),
        detected_null_dim=spec.detected_null.astype(jnp.int32),
        negative_eigenvalues=spec.negative.astype(jnp.int32),
        inconsistency=spec.inconsistency,
        solution_error_estimate=sol_err,
        solution_error_bound=residual_norm / jnp.abs(spec.lambda_min),
        jacobian_error_estimate=est,
        sparsity_error=asm.sparsity_error,
        symmetry_error=asm.symmetry_error,
        flags=flags,
        trustworthy=trustworthy,
        strategy=plan.strategy,
        mode=plan.mode,
        reason="",
        n_colors=plan.sparsity.n_colors if plan.sparsity is not None else 0,
        n_products=asm.n_products,
        trust_rtol=plan.trust_rtol,
    )


def _run(plan, fun, sol, params, args, null_basis):
    prob = flat_problem(fun, plan.x_layout, plan.theta_layout, sol, params, args)
    asm = assemble(plan, prob)
    proj, n_masked = zero_mode_projector(plan, asm, null_basis)
    sys = systems(plan, asm, proj)
    solved = STRATEGIES[plan.strategy].solve_all(plan, asm, proj, n_masked, sys)
    j_flat = _derivative(plan, asm, sys, solved.x_cols)
    est = _error_estimate(plan, asm, j_flat, solved)
    if plan.observable is not None and plan.mode == "forward":
        # dg/dθ = ∂g/∂x J + ∂g/∂θ, one JVP of g per parameter
        eye_n = jnp.eye(prob.n, dtype=prob.dtype)
        j_flat = jax.vmap(lambda jc, e: jax.jvp(sys.g_flat, (prob.x, prob.theta), (jc, e))[1], out_axes=1)(
            j_flat.T, eye_n
        )
    out_layout = plan.g_layout if plan.observable is not None else plan.x_layout
    return unflatten(j_flat, out_layout, plan.theta_layout), _info(plan, asm, proj, solved, j_flat, est)


run = jax.jit(_run, static_argnums=(0, 1))
