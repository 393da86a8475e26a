"""Equilibrium solvers: FIRE (jax-md `minimize.fire_descent`) and gradient descent.

jax-md's minimizers only step; the stopping rule is here: a `lax.while_loop` runs until
the largest per-atom force norm `max_i ‖f_i‖` drops to `ftol` or `max_steps` is reached,
`CHUNK` steps per call with the minimizer's state carried across calls, so that Python
regains control often enough for Ctrl-C and SIGTERM to stop a long run. A NaN force (an energy flagged invalid, see `_neighbors`) stops the loop; the host side
then asks the system why, reallocates the neighbor list when that is the cause, and
resumes from where it stopped. Positions are never wrapped into the cell.
"""

from __future__ import annotations

import collections
import json
import math
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
from jax_md import minimize

from sensitiv import progress
from sensitiv.records import EquilibriumResult, EquilibriumSolver, System

from ._declarations import FIRE_SCHEMA, GRADIENT_DESCENT_SCHEMA, SOLVER_DESCRIPTIONS
from ._neighbors import REALLOCATABLE
from ._options import validate_options
from ._system import binding_of

__all__ = ["FIRE", "GRADIENT_DESCENT", "fire", "gradient_descent", "PROGRAMS", "ProgramCache", "options_key"]

def _max_force(force):
    return jnp.max(jnp.linalg.norm(force, axis=-1))


def _shift(x, dx, **unused):
    return x + dx


#: Steps per compiled call: between calls Python can act on signals (Ctrl-C, SIGTERM) and
#: report progress (`sensitiv.progress`: the step and max|F| the display shows).
CHUNK = 500


def _make_runner(system: System, method: str, options: Mapping[str, Any]):
    """`(start, run)`: `start(x0, params) -> state`, and `run(state, params, max_steps) ->
    (state, x, steps, max_force, energy)`, both compiled."""
    energy = system.energy
    ftol = options["ftol"]

    def stepper(params):
        def force(x, **unused):
            return -jax.grad(energy)(x, params)

        if method == "fire":
            init, apply = minimize.fire_descent(
                force, _shift, dt_start=options["dt_start"], dt_max=options["dt_max"],
                n_min=options["n_min"], f_inc=options["f_inc"], f_dec=options["f_dec"],
                alpha_start=options["alpha_start"], f_alpha=options["f_alpha"],
            )
            return init, apply, (lambda s: s.position), (lambda s: s.force)
        init, apply = minimize.gradient_descent(force, _shift, options["step_size"])
        return init, apply, (lambda s: s), (lambda s: force(s))

    def start(x0, params):
        return stepper(params)[0](x0)

    def run(state, params, max_steps):
        _, apply, position, current_force = stepper(params)

        def cond(carry):
            _, step, fmax = carry
            # NaN fails the comparison, which stops the loop: the host explains it.
            return (fmax > ftol) & (step < max_steps)

        def body(carry):
            state, step, _ = carry
            state = apply(state)
            return state, step + 1, _max_force(current_force(state))

        first = (state, jnp.zeros((), jnp.int32), _max_force(current_force(state)))
        state, steps, fmax = jax.lax.while_loop(cond, body, first)
        x = position(state)
        return state, x, steps, fmax, energy(x, params)

    return jax.jit(start), jax.jit(run)


def options_key(options: Mapping[str, Any]) -> str:
    """The options as a hashable key of compiled-program caches."""
    return json.dumps(options, sort_keys=True, default=repr)


class ProgramCache:
    """Compiled programs per (energy object, neighbor-list shapes, solver and options),
    shared by every solver instance: the pipeline makes one per frame, and the frames of a
    trajectory share one energy (`_system`), so they share the programs too. The energy is
    kept with its entry, so that its id cannot be taken by another object meanwhile."""

    def __init__(self, size: int = 16):
        self.size = size
        self._entries: collections.OrderedDict = collections.OrderedDict()

    def get(self, system: System, extra: tuple, make):
        binding = binding_of(system)
        key = (id(system.energy), None if binding is None else binding.nlist.key(), extra)
        hit = self._entries.get(key)
        if hit is not None and hit[0] is system.energy:
            self._entries.move_to_end(key)
            return hit[1]
        programs = make()
        self._entries[key] = (system.energy, programs)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return programs


PROGRAMS = ProgramCache()


class _Solve:
    """`solve(system, positions, params) -> EquilibriumResult`, its programs cached in `PROGRAMS`."""

    def __init__(self, method: str, options: Mapping[str, Any]):
        self.method = method
        self.options = dict(options)
        self._key = (method, options_key(self.options))

    def _runner(self, system: System):
        return PROGRAMS.get(system, self._key, lambda: _make_runner(system, self.method, self.options))

    def __call__(self, system: System, positions=None, params=None) -> EquilibriumResult:
        x = jnp.asarray(system.positions if positions is None else positions)
        params = dict(system.params if params is None else params)
        binding = binding_of(system)
        total_steps, reallocations, reason = 0, 0, ""
        start, run = self._runner(system)
        state = start(x, params)
        while True:
            budget = jnp.asarray(min(self.options["max_steps"] - total_steps, CHUNK), jnp.int32)
            state, x_new, steps, fmax, e = run(state, params, budget)
            total_steps += int(steps)
            fmax, e = float(fmax), float(e)
            if not math.isfinite(e):
                fmax = math.nan  # an invalid energy invalidates its forces
            progress.report(self.method, total_steps, fmax, self.options["ftol"], self.options["max_steps"])
            if math.isfinite(fmax) and fmax > self.options["ftol"] and total_steps < self.options["max_steps"]:
                continue  # the next chunk, from the carried state
            if math.isfinite(fmax) or binding is None:
                x = x_new
                break
            diagnosis = binding.diagnose(x_new, params)
            if (diagnosis.status & REALLOCATABLE
                    and reallocations < self.options["max_reallocations"] and binding.ensure(x_new, params)):
                reallocations += 1
                x = x_new
                start, run = self._runner(system)  # re-traced for the new list's shapes
                state = start(x, params)
                continue
            x = x_new
            reason = diagnosis.message if not diagnosis.ok else "the force is not finite"
            break
        converged = bool(math.isfinite(fmax) and fmax <= self.options["ftol"])
        if not reason and not converged:
            reason = f"max_steps ({self.options['max_steps']}) reached"
        info = {
            "method": self.method,
            "energy": e,
            "max_force": fmax,
            "ftol": self.options["ftol"],
            "neighbor_reallocations": reallocations,
            "message": "converged" if converged else reason,
        }
        return EquilibriumResult(
            positions=x, converged=converged, iterations=total_steps, residual=fmax, info=info
        )


def fire(options: Mapping[str, Any] | None = None) -> _Solve:
    """FIRE minimization to `max_i ‖f_i‖ ≤ ftol` (jax-md `minimize.fire_descent`).

    **Arguments:**

    - `options`: see `FIRE_SCHEMA` (`ftol` 1e-10, `max_steps` 100000, `dt_start` 0.01,
      `dt_max` 0.05, `n_min`, `f_inc`, `f_dec`, `alpha_start`, `f_alpha`,
      `max_reallocations`).

    **Returns:** `solve(system, positions=None, params=None) -> EquilibriumResult`;
    `residual` is the final max force, `info` holds the energy, the message and the number
    of neighbor-list reallocations. Non-convergence is reported, not raised.

    **Example:**

    ```python
    result = sensitiv_jaxmd.fire({"ftol": 1e-12})(system, system.positions, system.params)
    ```
    """
    return _Solve("fire", validate_options("solver", "fire", FIRE_SCHEMA, options))


def gradient_descent(options: Mapping[str, Any] | None = None) -> _Solve:
    """Fixed-step gradient descent to `max_i ‖f_i‖ ≤ ftol` (jax-md `minimize.gradient_descent`).

    **Arguments:**

    - `options`: see `GRADIENT_DESCENT_SCHEMA` (`step_size` 0.01, `ftol`, `max_steps`,
      `max_reallocations`).

    **Returns:** `solve(system, positions=None, params=None) -> EquilibriumResult`.
    """
    return _Solve(
        "gradient_descent",
        validate_options("solver", "gradient_descent", GRADIENT_DESCENT_SCHEMA, options),
    )


FIRE = EquilibriumSolver(
    name="fire",
    factory=fire,
    description=SOLVER_DESCRIPTIONS["fire"],
    options_schema=FIRE_SCHEMA,
)

GRADIENT_DESCENT = EquilibriumSolver(
    name="gradient_descent",
    factory=gradient_descent,
    description=SOLVER_DESCRIPTIONS["gradient_descent"],
    options_schema=GRADIENT_DESCENT_SCHEMA,
)
