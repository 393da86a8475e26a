"""What a Jacobian computation reports about itself: `JacobianInfo`.

Every number is an array computed inside `jit` (nothing is raised); `trustworthy` is an
array too, so it survives `jit` and `vmap`. The strings (`verdict`, `warnings`,
`summary()`) are decoded on the host from those arrays.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from typing import NamedTuple

__all__ = ["JacobianInfo", "FLAGS", "VERDICTS", "Spectrum"]

VERDICTS = ("minimum", "saddle", "singular", "regular", "undetermined")
VERDICT_MINIMUM, VERDICT_SADDLE, VERDICT_SINGULAR, VERDICT_REGULAR, VERDICT_UNDETERMINED = range(5)


class Spectrum(NamedTuple):
    """What a strategy found out about `sign · K` on the complement of the known null space.

    - `lambda_min`: smallest eigenvalue (symmetric) or smallest singular value
      (nonsymmetric), zero modes excluded; `lambda_max`: the largest in magnitude.
    - `lambda_min_residual`: how far `lambda_min` may be from the true value (0 when exact).
    - `detected_null`: zero modes found beyond the known ones.
    - `negative`: number of negative eigenvalues (a saddle when positive).
    - `inconsistency`: largest fraction of a right-hand side inside the detected null space.
    - `verdict`: one of the `VERDICT_*` codes (index into `VERDICTS`).
    """

    lambda_min: jax.Array
    lambda_max: jax.Array
    lambda_min_residual: jax.Array
    detected_null: jax.Array
    negative: jax.Array
    inconsistency: jax.Array
    verdict: jax.Array

    @classmethod
    def without_free_modes(cls, dtype, detected=0):
        """Every mode is a known zero mode (one atom in a periodic box): no λ_min (`+inf`)."""
        zero = jnp.zeros((), jnp.int32)
        verdict = jnp.where(detected > 0, VERDICT_SINGULAR, VERDICT_MINIMUM).astype(jnp.int32)
        return cls(jnp.asarray(jnp.inf, dtype), jnp.zeros((), dtype), jnp.zeros((), dtype),
                   zero + detected, zero, jnp.zeros((), dtype), verdict)

# bit -> (name, breaks trust). Every flag but the last is an alarm: the result is not
# trustworthy. An unresolved λ_min (Lanczos where the dense spectrum does not fit the
# memory budget) is a note: λ_min is then reported as an interval, and no verdict or error
# estimate depends on it.
FLAGS = {
    1: ("not_converged", True),
    2: ("saddle", True),
    4: ("singular", True),
    8: ("inconsistent", True),
    16: ("inaccurate_solution", True),
    32: ("nonfinite", True),
    64: ("sparsity_mismatch", True),
    128: ("not_symmetric", True),
    256: ("spectrum_unresolved", False),
}
_UNTRUSTED_MASK = sum(bit for bit, (_, breaks) in FLAGS.items() if breaks)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class JacobianInfo:
    """Diagnostics of a Jacobian (or total derivative) computation.

    Built by `jacobian` and `total_derivative`, not by users; its fields are listed as arguments.

    **Arguments:**

    Per column (one per linear solve: a parameter direction in forward mode, an output in
    reverse mode; the last column is the Newton correction `K⁻¹F` when it was solved with
    the others):

    - `column_residual`: relative residual `‖K x − r‖ / ‖r‖` of each solve;
    - `column_iterations`: Krylov iterations (0 for dense solves);
    - `column_converged`: whether the residual met the tolerance.

    Global:

    - `stationarity_residual`: `‖F(x̂, θ)‖₂`, how far `x̂` is from a root;
    - `lambda_min`: the smallest eigenvalue of `∂₁F` (times `gradient_sign`) outside the
      null space — the curvature of the softest mode — or, for nonsymmetric `∂₁F`, the
      smallest nonzero singular value; `lambda_max` the largest in magnitude;
    - `lambda_min_residual`: bound on how far `lambda_min` is from a true eigenvalue
      (0 when computed exactly by a dense eigendecomposition);
    - `verdict_code`: 0 minimum, 1 saddle, 2 singular (unexpected zero modes), 3 regular
      (nonsymmetric), 4 undetermined (a minimum or saddle by the sign of `lambda_min`, but
      `lambda_min` lies within the reach of the solution error, `beyond_first_order`, so
      that sign is not established); see `verdict`;
    - `null_space_dim`: known plus detected zero modes (`detected_null_dim` of them
      detected; with Krylov solvers a lower bound);
    - `negative_eigenvalues`: how many (dense) or whether any (Krylov) eigenvalues are negative;
    - `inconsistency`: largest fraction of a right-hand side inside the detected null
      space; above zero, the minimum-norm least-squares answer is not an exact derivative;
    - `solution_error_estimate`: `‖x̂ − x*‖` estimated by the Newton step `‖K⁺F‖`
      (NaN where not solved); `solution_error_bound`: `‖F‖ / λ_min`;
    - `curvature_uncertainty`: how far the eigenvalues of `∂₁F(x̂)` may lie from those at
      the exact root, `‖∂²₁F[x̂ − x*]‖₂` along the Newton step (0 where not solved); a
      `lambda_min` within it (`beyond_first_order`) settles neither the sign of the softest
      curvature nor a first-order error estimate (`inaccurate_solution`);
    - `jacobian_error_estimate`: relative error of the Jacobian from both of its sources,
      `x̂ ≠ x*` (Blondel et al. 2022, Theorem 1: the first-order change of the Jacobian
      along the Newton step) and the linear solves (the residual of the columns), solved
      like the columns for every parameter (up to 8, else 8 generic directions `U`),
      `‖ΔJ U‖_F / max(‖J U‖_F, √eps · s ‖U‖_F)` where `s` is the spread of `x̂` per unit
      of `θ` (so that a Jacobian that vanishes by symmetry is not divided by its own
      round-off); compared with `trust_rtol`;
    - `sparsity_error`: relative mismatch of the recovered sparse `∂₁F`/`∂₂F` against
      exact JVPs in a random direction (NaN when no structure was used);
    - `symmetry_error`: relative asymmetry `|aᵀKb − bᵀKa|` measured in random directions;
    - `flags`: bit set of the problems found (see `warnings`);
    - `trustworthy`: no problem that makes the Jacobian unreliable was found.

    Static (decided on the host): `strategy`, `mode`, `reason`, `n_colors` (0 when no
    coloring was used), `n_products` (JVPs/VJPs spent on assembling `∂₁F` and `∂₂F`),
    `trust_rtol` (the tolerance the error estimate was compared with).

    **Example:**

    ```python
    info = sensitiv.jacobian(F, x_star, params).info
    print(info.summary())              # strategy, verdict, λ_min, ‖F‖, error estimate
    if not info.trustworthy:
        print(info.warnings)
    ```
    """

    column_residual: jax.Array
    column_iterations: jax.Array
    column_converged: jax.Array
    stationarity_residual: jax.Array
    lambda_min: jax.Array
    lambda_max: jax.Array
    lambda_min_residual: jax.Array
    verdict_code: jax.Array
    null_space_dim: jax.Array
    detected_null_dim: jax.Array
    negative_eigenvalues: jax.Array
    inconsistency: jax.Array
    solution_error_estimate: jax.Array
    solution_error_bound: jax.Array
    curvature_uncertainty: jax.Array
    jacobian_error_estimate: jax.Array
    sparsity_error: jax.Array
    symmetry_error: jax.Array
    flags: jax.Array
    trustworthy: jax.Array
    strategy: str = dataclasses.field(default="", metadata=dict(static=True))
    mode: str = dataclasses.field(default="", metadata=dict(static=True))
    reason: str = dataclasses.field(default="", metadata=dict(static=True))
    n_colors: int = dataclasses.field(default=0, metadata=dict(static=True))
    n_products: int = dataclasses.field(default=0, metadata=dict(static=True))
    trust_rtol: float = dataclasses.field(default=float("nan"), metadata=dict(static=True))

    @property
    def verdict(self) -> str:
        """`"minimum"`, `"saddle"`, `"singular"`, `"regular"` or `"undetermined"` (host only)."""
        return VERDICTS[int(np.asarray(self.verdict_code))]

    @property
    def beyond_first_order(self) -> bool:
        """Whether the solution error may move `lambda_min` by its own size or more: the
        verdict's sign and `jacobian_error_estimate` are then not reliable (host only)."""
        return bool(np.asarray(beyond_first_order(self.lambda_min, self.curvature_uncertainty)))

    @property
    def warnings(self) -> list[str]:
        """One sentence per problem found, with the numbers (host only)."""
        flags = int(np.asarray(self.flags))
        f = lambda a: float(np.max(np.asarray(a))) if np.size(a) else float("nan")
        out = []
        if flags & 32:
            out.append("the Jacobian or F(x̂, θ) contains NaN or inf")
        if flags & 1:
            bad = int(np.sum(~np.asarray(self.column_converged)))
            out.append(
                f"{bad} linear solve(s) did not converge (worst relative residual "
                f"{f(self.column_residual):.2e})"
            )
        if flags & 2:
            out.append(
                f"x̂ is a saddle point, not a minimum: ∂₁F has negative eigenvalues "
                f"(smallest {f(self.lambda_min):.3e}); the Jacobian describes a stationary point "
                "that is not stable"
            )
        if flags & 4:
            out.append(
                f"{int(np.asarray(self.detected_null_dim))} unexpected zero mode(s) (rattlers, "
                "mechanisms) beyond the known null space; the minimum-norm Jacobian is returned"
            )
        if flags & 8:
            out.append(
                f"the right-hand side has a component {f(self.inconsistency):.2e} in the null space "
                "of ∂₁F: the solution is not differentiable in those directions (least-squares answer)"
            )
        if flags & 16 and self.beyond_first_order:
            what = "to tell a minimum from a saddle" if f(self.lambda_min) < 0 else "for a first-order error estimate"
            out.append(
                f"x̂ is not converged enough {what}: the smallest eigenvalue {f(self.lambda_min):.3e} "
                f"of ∂₁F(x̂) is within the reach of the solution error (±{f(self.curvature_uncertainty):.2e}; "
                f"estimated solution error {f(self.solution_error_estimate):.2e}); converge the minimization further"
            )
        if flags & 16 and self.jacobian_error_estimate is not None and not (
                float(np.asarray(self.jacobian_error_estimate)) <= self.trust_rtol):
            out.append(
                f"x̂ is not converged enough: ‖F‖ = {f(self.stationarity_residual):.2e}, estimated "
                f"solution error {f(self.solution_error_estimate):.2e}, estimated Jacobian "
                f"error {f(self.jacobian_error_estimate):.2e} > trust_rtol {self.trust_rtol:.0e}"
            )
        if flags & 64:
            out.append(
                f"the sparsity hint does not match ∂F (relative mismatch {f(self.sparsity_error):.2e}): "
                "interaction pairs are missing"
            )
        if flags & 128:
            out.append(
                f"∂₁F is not symmetric (relative asymmetry {f(self.symmetry_error):.2e}) but was "
                "treated as symmetric"
            )
        return out

    @property
    def notes(self) -> list[str]:
        """Facts worth knowing that do not make the result untrustworthy (host only)."""
        flags = int(np.asarray(self.flags))
        out = []
        if flags & 256:
            lam, res = float(np.asarray(self.lambda_min)), float(np.asarray(self.lambda_min_residual))
            out.append(
                f"the smallest eigenvalue is known as an interval, [{lam - res:.3e}, {lam:.3e}] "
                "(Lanczos; the dense spectrum does not fit memory_budget)"
            )
        return out

    def lambda_min_text(self) -> str:
        """`λ_min` as reported: a number, or `value ± residual` when not exact (host only)."""
        lam, res = float(np.asarray(self.lambda_min)), float(np.asarray(self.lambda_min_residual))
        if not np.isfinite(lam):
            return "none (every mode is a known zero mode)" if lam > 0 else f"{lam}"
        return f"{lam:.4e}" if not res > 1e-3 * abs(lam) else f"{lam:.4e} ± {res:.1e}"

    def summary(self) -> str:
        """A few lines for logs (host only)."""
        lines = [
            f"strategy {self.strategy} ({self.mode}): {self.reason}",
            f"verdict {self.verdict}; λ_min {self.lambda_min_text()}, "
            f"null space {int(np.asarray(self.null_space_dim))}; ‖F‖ "
            f"{float(np.asarray(self.stationarity_residual)):.2e}; estimated Jacobian error "
            f"{float(np.asarray(self.jacobian_error_estimate)):.2e} (trust_rtol {self.trust_rtol:.0e})",
            f"trustworthy: {bool(np.asarray(self.trustworthy))}",
        ]
        lines += [f"warning: {w}" for w in self.warnings]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def beyond_first_order(lambda_min, curvature_uncertainty):
    """Whether the solution error may move `λ_min` by its own size or more: then neither
    its sign nor the first-order Jacobian error estimate can be trusted."""
    return jnp.abs(lambda_min) <= curvature_uncertainty


def compute_flags(
    *,
    jacobian_finite,
    column_converged,
    verdict_code,
    detected_null,
    inconsistency,
    jacobian_error_estimate,
    sparsity_error,
    symmetry_error,
    spectrum_unresolved,
    lambda_min,
    curvature_uncertainty,
    trust_rtol,
    structure_rtol,
    symmetric,
):
    flags = jnp.zeros((), jnp.int32)
    add = lambda flags, cond, bit: flags | jnp.where(cond, bit, 0).astype(jnp.int32)
    flags = add(flags, ~jnp.all(column_converged), 1)
    # λ_min of K(x̂) within reach of the solution error: x̂ is too far from x* for the
    # sign of the softest curvature (a negative one is no established saddle: a nearly
    # flat minimum left early) or for a first-order error estimate to mean anything
    unsettled = beyond_first_order(lambda_min, curvature_uncertainty)
    flags = add(flags, (verdict_code == 1) & ~unsettled, 2)
    flags = add(flags, detected_null > 0, 4)
    flags = add(flags, inconsistency > trust_rtol, 8)
    inaccurate = ~(jacobian_error_estimate <= trust_rtol) & ~jnp.isnan(jacobian_error_estimate)
    flags = add(flags, inaccurate | unsettled, 16)
    flags = add(flags, ~jacobian_finite, 32)
    flags = add(flags, sparsity_error > structure_rtol, 64)
    if symmetric:
        flags = add(flags, symmetry_error > structure_rtol, 128)
    flags = add(flags, spectrum_unresolved, 256)
    trustworthy = (flags & _UNTRUSTED_MASK) == 0
    # the sign of λ_min decides minimum vs saddle only where the solution error cannot flip it
    settles_sign = (verdict_code == VERDICT_MINIMUM) | (verdict_code == VERDICT_SADDLE)
    verdict = jnp.where(settles_sign & unsettled, VERDICT_UNDETERMINED, verdict_code).astype(jnp.int32)
    return flags, trustworthy, verdict
