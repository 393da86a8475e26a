"""Equilibrium polish: Newton steps from a nearly relaxed structure, FIRE far from a minimum.

Structures read from a simulation are usually relaxed already (LAMMPS `minimize` to
`ftol` 1e-6–1e-8); what the implicit derivative needs is max‖f‖ ≲ 1e-10. FIRE gets there
in thousands of steps; Newton's method, from a point that close, in two or three, each one
Hessian and one solve — the same Hessian the Jacobian engine is about to build.

Each Newton step:

1. the Newton direction dx solving H dx = -g: by conjugate gradients on Hessian-vector
   products (`linear_solver: cg`, the default: tens of products where FIRE takes
   thousands of gradient steps; g is orthogonal to zero modes such as rigid translations,
   so CG never moves along them), or from the dense Hessian and its eigendecomposition
   (`dense`: dx = -H⁺g on the eigenvalues above `null_rtol`·λ_max; for small systems,
   and it reports the smallest eigenvalue);
2. negative curvature (met by CG, or an eigenvalue below -`null_rtol`·λ_max) means a
   saddle or a maximum: Newton would climb, so FIRE takes over;
3. a trust region: no atom moves more than `max_displacement`; then a backtracking
   line search on max‖f‖ (at most 8 halvings), rejecting NaN energies (an overflowing
   neighbor list).

When a step cannot reduce the force (far from a minimum, a saddle, a list to
reallocate), FIRE (`fire` options) runs to `switch_ftol` and Newton resumes; when Newton
still fails, FIRE finishes alone to `ftol`. The result says which path was taken
(`info["path"]`), how many Newton and FIRE steps, and the smallest Hessian eigenvalue seen
(dense mode).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp

from sensitiv import progress
from sensitiv.records import EquilibriumResult, System

from ._declarations import POLISH_SCHEMA
from ._minimize import PROGRAMS, fire, options_key
from ._options import validate_options
from ._system import binding_of

__all__ = ["polish"]

#: Halvings of a Newton step before it counts as failed.
_LINE_SEARCH_HALVINGS = 8


def _max_force(g):
    return jnp.max(jnp.linalg.norm(g, axis=-1))


def _hvp_function(energy, x, params):
    """`hvp(v)` of the energy's Hessian at `x` (`v` flat), one linearization shared."""
    shape = x.shape

    def gradient(flat):
        return jax.grad(energy)(flat.reshape(shape), params).reshape(-1)

    g, hvp = jax.linearize(gradient, x.reshape(-1))
    return g, hvp


def _dense_direction(energy, null_rtol: float, batch: int):
    def direction(x, params):
        g, hvp = _hvp_function(energy, x, params)
        size = g.shape[0]
        hessian = jax.lax.map(hvp, jnp.eye(size, dtype=x.dtype), batch_size=min(batch, size))
        hessian = 0.5 * (hessian + hessian.T)
        lam, vecs = jnp.linalg.eigh(hessian)
        scale = jnp.maximum(jnp.max(jnp.abs(lam)), jnp.finfo(x.dtype).tiny)
        keep = lam > null_rtol * scale
        coefficients = jnp.where(keep, (vecs.T @ g) / jnp.where(keep, lam, 1.0), 0.0)
        step = -(vecs @ coefficients)
        saddle = jnp.any(lam < -null_rtol * scale)
        return step.reshape(x.shape), saddle, lam[0]

    return jax.jit(direction)


#: Curvature `p·Hp` within this fraction of the largest Rayleigh quotient seen (times
#: `‖p‖²`) is flat, not negative: a zero mode (a rigid translation, a masked phantom) at
#: round-off, whose sign means nothing.
_FLAT_CURVATURE = 1e-8


def _krylov_direction(energy, cg_rtol: float, cg_maxiter: int):
    """Newton direction by CG on H dx = -g; stops at negative curvature (a saddle).

    Near a minimum (max‖f‖ ~ 1e-10) the residual picks up round-off along zero modes, whose
    curvature is ±round-off; `curvature <= 0` alone then reported a saddle at random and
    sent the polish to FIRE. Negative curvature is now below `-_FLAT_CURVATURE` times the
    largest Rayleigh quotient seen; a flat direction ends CG with what it has."""

    def direction(x, params):
        g, hvp = _hvp_function(energy, x, params)
        b = -g
        tol2 = (cg_rtol * jnp.linalg.norm(b)) ** 2

        def cond(state):
            _, r, _, rr, k, negative, flat, _ = state
            return (rr > tol2) & (k < cg_maxiter) & ~negative & ~flat

        def body(state):
            z, r, p, rr, k, _, _, scale = state
            hp = hvp(p)
            curvature = p @ hp
            pp = p @ p
            scale = jnp.maximum(scale, curvature / jnp.where(pp > 0, pp, 1.0))
            threshold = _FLAT_CURVATURE * scale * pp
            negative = curvature < -threshold
            flat = ~negative & (curvature <= threshold)
            stop = negative | flat
            alpha = rr / jnp.where(stop, 1.0, curvature)
            z_new = jnp.where(stop, z, z + alpha * p)
            r_new = jnp.where(stop, r, r - alpha * hp)
            rr_new = r_new @ r_new
            p_new = r_new + (rr_new / rr) * p
            return z_new, r_new, p_new, rr_new, k + 1, negative, flat, scale

        zero = jnp.zeros_like(b)
        false = jnp.zeros((), bool)
        state = (zero, b, b, b @ b, jnp.zeros((), jnp.int32), false, false, jnp.zeros((), b.dtype))
        z, _, _, _, _, negative, _, _ = jax.lax.while_loop(cond, body, state)
        return z.reshape(x.shape), negative, jnp.asarray(jnp.nan, x.dtype)

    return jax.jit(direction)


def _trial_function(energy):
    def trial(x, dx, alpha, params):
        y = x + alpha * dx
        e, g = jax.value_and_grad(energy)(y, params)
        fmax = _max_force(g)
        return y, jnp.where(jnp.isfinite(e), fmax, jnp.nan)

    return jax.jit(trial)


class _Polish:
    """`solve(system, positions, params) -> EquilibriumResult`, Newton with FIRE to fall back on.

    Compiled programs are kept per energy function and neighbor-list allocation
    (`_minimize.PROGRAMS`), so the frames of a trajectory bound to one system reuse them."""

    def __init__(self, options: Mapping[str, Any]):
        self.options = dict(options)
        fire_options = dict(self.options["fire"])
        fire_options.setdefault("max_reallocations", self.options["max_reallocations"])
        self._fire_final = fire({**fire_options, "ftol": self.options["ftol"]})
        self._fire_switch = fire({**fire_options, "ftol": max(self.options["switch_ftol"], self.options["ftol"])})
        self._key = options_key(self.options)

    def _programs(self, system: System, size: int):
        o = self.options

        def make():
            if o["linear_solver"] == "dense":
                direction = _dense_direction(system.energy, o["null_rtol"], o["hessian_batch"])
            else:
                direction = _krylov_direction(system.energy, o["cg_rtol"], o["cg_maxiter"])
            return direction, _trial_function(system.energy)

        return PROGRAMS.get(system, ("polish", size, self._key), make)

    def _newton(self, system: System, x, params, fmax: float, stats: dict):
        """Newton steps from `x`; `(x, max force, reason it stopped or "")`."""
        o = self.options
        direction, trial = self._programs(system, x.size)
        while fmax > o["ftol"]:
            if stats["newton_steps"] >= o["max_steps"]:
                return x, fmax, f"max_steps ({o['max_steps']}) Newton steps reached"
            dx, saddle, lam_min = direction(x, params)
            stats["hessians"] += 1
            lam_min = float(lam_min)
            if math.isfinite(lam_min):
                stats["smallest_eigenvalue"] = lam_min
            if bool(saddle):
                return x, fmax, "negative curvature (a saddle or a maximum): Newton would climb"
            largest = float(jnp.max(jnp.linalg.norm(dx, axis=-1)))
            if not math.isfinite(largest):
                return x, fmax, "the Newton step is not finite"
            alpha = min(1.0, o["max_displacement"] / largest) if largest > 0 else 1.0
            for _ in range(_LINE_SEARCH_HALVINGS + 1):
                y, f_new = trial(x, dx, alpha, params)
                f_new = float(f_new)
                if math.isfinite(f_new) and f_new < fmax:
                    break
                alpha *= 0.5
            else:
                return x, fmax, "no Newton step reduces the force (far from a minimum?)"
            stats["newton_steps"] += 1
            x, fmax = y, f_new
            progress.report("newton", stats["newton_steps"], fmax, o["ftol"], o["max_steps"])
        return x, fmax, ""

    def _fire(self, solver, system: System, x, params, stats: dict):
        result = solver(system, x, params)
        stats["fire_steps"] += int(result.iterations)
        stats["neighbor_reallocations"] += int(result.info.get("neighbor_reallocations", 0))
        return jnp.asarray(result.positions), float(result.residual), result

    def __call__(self, system: System, positions=None, params=None) -> EquilibriumResult:
        x = jnp.asarray(system.positions if positions is None else positions)
        params = dict(system.params if params is None else params)
        stats = {"newton_steps": 0, "fire_steps": 0, "hessians": 0, "neighbor_reallocations": 0,
                 "smallest_eigenvalue": math.nan}
        _, trial = self._programs(system, x.size)
        _, fmax = trial(x, jnp.zeros_like(x), 0.0, params)
        fmax = float(fmax)
        path, reason = ["newton"], ""
        if math.isfinite(fmax):
            x, fmax, reason = self._newton(system, x, params, fmax, stats)
        else:
            reason = "the force at the start is not finite"
        if reason and fmax > self.options["ftol"]:
            # Far from a minimum, at a saddle, or a list to reallocate: FIRE, then Newton again.
            path.append("fire")
            x, fmax, _ = self._fire(self._fire_switch, system, x, params, stats)
            if math.isfinite(fmax):
                path.append("newton")
                x, fmax, reason = self._newton(system, x, params, fmax, stats)
            if fmax > self.options["ftol"] or not math.isfinite(fmax):
                path.append("fire")
                x, fmax, result = self._fire(self._fire_final, system, x, params, stats)
                reason = result.info.get("message", reason)
        converged = bool(math.isfinite(fmax) and fmax <= self.options["ftol"])
        energy = float(system.energy(x, params))
        info = {
            "method": "polish",
            "path": "+".join(path),
            "energy": energy,
            "max_force": fmax,
            "ftol": self.options["ftol"],
            "newton_steps": stats["newton_steps"],
            "fire_steps": stats["fire_steps"],
            "hessian_evaluations": stats["hessians"],
            "neighbor_reallocations": stats["neighbor_reallocations"],
            "message": "converged" if converged else (reason or "not converged"),
        }
        if math.isfinite(stats["smallest_eigenvalue"]):  # linear_solver: dense
            info["smallest_eigenvalue"] = stats["smallest_eigenvalue"]
        return EquilibriumResult(positions=x, converged=converged,
                                 iterations=stats["newton_steps"] + stats["fire_steps"],
                                 residual=fmax, info=info)


def polish(options: Mapping[str, Any] | None = None) -> _Polish:
    """Newton polish of a nearly relaxed structure to `max_i ‖f_i‖ ≤ ftol`, FIRE far from a minimum.

    **Arguments:**

    - `options`: see `POLISH_SCHEMA`: `ftol` (1e-10), `max_steps` (Newton steps, 50),
      `max_displacement` (trust radius per atom, 0.1 length units), `linear_solver`
      (`"cg"` or `"dense"`), `cg_rtol`, `cg_maxiter`, `null_rtol`, `hessian_batch`
      (dense mode), `switch_ftol` (FIRE's target before Newton resumes, 1e-4), `fire`
      (FIRE's options), `max_reallocations`.

    **Returns:** `solve(system, positions=None, params=None) -> EquilibriumResult`;
    `iterations` counts Newton plus FIRE steps, `info` says which path was taken
    (`"newton"`, `"newton+fire+newton"`, …), the step counts, the Hessian evaluations and
    the smallest eigenvalue seen. Non-convergence is reported, not raised.

    **Example:**

    ```python
    result = sensitiv_jaxmd.polish({"ftol": 1e-12})(system, lammps_positions, system.params)
    result.info["path"], result.info["newton_steps"]      # ('newton', 3)
    ```
    """
    return _Polish(validate_options("solver", "polish", POLISH_SCHEMA, options))
