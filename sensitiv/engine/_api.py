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

Host side first (`_plan.make_plan`: checks, the symmetry probe, the strategy choice → a
hashable `Plan`), then the compiled program (`_program.run`), cached per plan.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import InputError
from ._diagnostics import JacobianInfo
from ._options import KrylovOptions, krylov_options
from ._operators import split_callable
from ._plan import make_plan
from ._program import run
from ._sharding import gather_to_host

__all__ = ["jacobian", "total_derivative", "JacobianResult"]


class JacobianResult(NamedTuple):
    """What `jacobian` and `total_derivative` return (a pytree).

    **Arguments:**

    - `jacobian`: the derivative, structured like `jax.jacobian` would give it: output
      structure outside, parameter structure inside, leaf shapes `out.shape + param.shape`.
    - `info`: a `JacobianInfo` with the diagnostics.

    **Example:**

    ```python
    J, info = sensitiv.jacobian(jax.grad(energy), x_star, params)
    ```
    """

    jacobian: Any
    info: JacobianInfo


def _active_mask(active, d: int, dtype):
    """`active=` as a flat `(d,)` mask (1 = a coordinate of the problem), or `None`."""
    if active is None:
        return None
    mask = np.asarray(active, dtype=bool)
    if mask.size != d and mask.size and d % mask.size == 0 and mask.ndim == 1:
        mask = np.repeat(mask, d // mask.size)  # one entry per atom of an (n_atoms, n_spatial) solution
    mask = mask.reshape(-1)
    if mask.size != d:
        raise InputError(f"active: {mask.size} entries for a solution of {d} coordinates; pass one boolean per "
                         f"atom (rows of an (n_atoms, n_spatial) solution) or per coordinate")
    if not mask.any():
        raise InputError("active: no coordinate is active; at least one must take part in the problem")
    return jnp.asarray(mask, dtype)


def _compute(optimality_fun, sol, params, args, *, observable=None, mode="auto", then=None, then_args=None,
             active=None, **options):
    dtype = jnp.result_type(*jax.tree.leaves(sol))
    mask = _active_mask(active, sum(int(np.size(leaf)) for leaf in jax.tree.leaves(sol)), dtype)
    n_active = None
    if mask is not None and options.get("sparsity") is not None:
        sp = options["sparsity"]
        block = sp.block_size if hasattr(sp, "block_size") else np.shape(jax.tree.leaves(sol)[0])[-1]
        n_active = int(np.asarray(mask).sum()) // block
    plan, null_basis, structure, reason = make_plan(
        optimality_fun, sol, params, args, observable=observable, mode=mode, n_active_atoms=n_active, **options
    )
    fun_static, fun_arrays = split_callable(optimality_fun)
    common = (plan, fun_static, fun_arrays, sol, params, tuple(args), null_basis, structure)
    if then is None:
        result, info = run(*common, None, None, mask)
        extra = None
    else:
        result, info, extra = run(*common, then, then_args, mask)
    # the reason and the coloring's own size are static, kept out of the compile-cache key
    n_colors = int(np.asarray(structure.colors).max(initial=-1)) + 1 if structure is not None else 0
    result, info = gather_to_host((result, dataclasses.replace(info, reason=reason, n_colors=n_colors)))
    out = JacobianResult(result, info)
    return out if then is None else (out, extra)


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
    krylov: KrylovOptions | None = None,
    memory_budget: int | None = None,
    shard: Any = "auto",
    parameter_derivatives: str = "auto",
    singular_rtol: float | None = None,
    trust_rtol: float | None = None,
    seed: int = 0,
    active: Any = None,
    **deprecated: Any,
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
    - `krylov`: a `KrylovOptions` (tolerance, iteration limit, preconditioner, Lanczos
      steps, deflation) for the matrix-free strategy; default `KrylovOptions()`. The
      keywords `tol`, `maxiter`, `precond`, `lanczos_steps` and `deflation` of earlier
      releases are still accepted, with a `DeprecationWarning`.
    - `memory_budget`: bytes for the dense matrix or a chunk of Krylov columns; default
      half the accelerator's memory, or a quarter of the host's.
    - `shard`: `"auto"` shards columns over every device when there are several; `False`;
      or a `jax.sharding.Mesh`.
    - `parameter_derivatives`: how `∂₂F` is applied in reverse mode: `"forward"` (JVPs,
      safe where reverse-mode derivatives of the model give NaN), `"reverse"` (VJPs), `"auto"`.
    - `singular_rtol`: eigenvalues below `singular_rtol · λ_max` count as zero modes
      (default `100 √d eps`).
    - `trust_rtol`: the estimated relative Jacobian error above which the result is not
      trustworthy (default `1e-6` in float64, `1e-3` in float32).
    - `seed`: for the random probe directions of the diagnostics.
    - `active`: `None`, or booleans marking the coordinates that belong to the problem,
      one per atom of an `(n_atoms, n_spatial)` solution or one per coordinate. The
      others are padding (phantom atoms appended so that structures of different sizes
      share one compiled program): `F` must not couple them to the active ones; they are
      excluded as if absent (zero rows of the Jacobian, no zero mode, no eigenvalue, no
      share in the error scales), so the result on the active coordinates is the one
      without them.

    **Returns:** a `JacobianResult` with `.jacobian` (as `jax.jacobian` of the solution map:
    for arrays, shape `sol.shape + params.shape`) and `.info` (`JacobianInfo`).

    **Example:**

    ```python
    F = jax.grad(energy)                       # energy(positions, diameters)
    result = sensitiv.jacobian(
        F, positions, diameters,
        null_space=sensitiv.translation_modes(n_atoms, 2),
        sparsity=pairs, per_atom_params=True,
    )
    result.jacobian.shape                      # (n_atoms, 2, n_atoms)
    result.info.trustworthy, result.info.verdict, result.info.warnings
    ```
    """
    return _compute(
        optimality_fun, sol, params, args, method=method, null_space=null_space, sparsity=sparsity,
        per_atom_params=per_atom_params, symmetric=symmetric, gradient_sign=gradient_sign,
        krylov=krylov_options(krylov, deprecated, "jacobian"), memory_budget=memory_budget, shard=shard,
        parameter_derivatives=parameter_derivatives, singular_rtol=singular_rtol,
        trust_rtol=trust_rtol, seed=seed, active=active,
    )


def _jacobian_defaults() -> dict[str, Any]:
    """`jacobian`'s keyword options and their defaults: the one place they are listed."""
    return {
        name: p.default
        for name, p in inspect.signature(jacobian).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }


def jacobian_then(then: Callable, then_args: Any, optimality_fun: Callable, sol: Any, params: Any, *args: Any,
                  **options: Any) -> tuple[JacobianResult, Any]:
    """`jacobian`, then a further computation with its solver, in the same compiled program.

    For right-hand sides that need `K⁺ = (∂₁F)⁺` after the Jacobian (higher-order
    derivatives along directions): they reuse the factorization of `K` (dense) or its
    solver and preconditioner (Krylov) instead of assembling and factorizing it again.

    **Arguments:**

    - `then`: `then(solves, then_args)`, a hashable callable (a frozen dataclass or a
      module-level function: it is part of the compile-cache key) receiving a
      `sensitiv.engine._program.Solves` (traced) and returning a pytree of arrays.
    - `then_args`: a pytree of arrays passed to `then` (traced: new values, same program).
    - `optimality_fun`, `sol`, `params`, `*args`, `**options`: as in `jacobian` (`method`
      `"reverse"` included; a `then` step always solves with `K` itself).

    **Returns:** `(JacobianResult, what then returned)`.

    **Example:**

    ```python
    def newton_step(solves, _):
        return solves.solve(-solves.flat(solves.x, solves.theta)[:, None])[:, 0]

    result, step = jacobian_then(newton_step, None, F, x_star, params)
    ```
    """
    defaults = _jacobian_defaults()
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise TypeError(f"jacobian_then: unexpected keyword argument {unknown[0]!r} (see sensitiv.jacobian)")
    settings = {**defaults, **options}
    settings["krylov"] = krylov_options(settings["krylov"], {}, "jacobian")
    return _compute(optimality_fun, sol, params, args, then=then, then_args=then_args, **settings)


def total_derivative(
    observable: Callable,
    optimality_fun: Callable,
    sol: Any,
    params: Any,
    *args: Any,
    mode: str = "auto",
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
    - `**options`: the keyword options of `jacobian`, with the same defaults (`method`
      — `"auto"`, `"dense"` or `"krylov"` here —, `null_space`, `sparsity`, `krylov`, ...).

    **Returns:** a `JacobianResult` whose `.jacobian` is structured like `jax.jacobian` of
    `θ ↦ g(x*(θ), θ)`: `g`'s structure outside, `params`' inside.

    **Example:**

    ```python
    stress = lambda x, strain: jax.grad(energy, argnums=1)(x, strain) / volume
    C = sensitiv.total_derivative(stress, jax.grad(energy), x_relaxed, strain0).jacobian
    ```
    """
    defaults = _jacobian_defaults()
    known = {k: v for k, v in options.items() if k in defaults}
    legacy = {k: v for k, v in options.items() if k not in defaults}
    settings = {**defaults, **known}
    settings["krylov"] = krylov_options(settings["krylov"], legacy, "total_derivative")
    return _compute(optimality_fun, sol, params, args, observable=observable, mode=mode, **settings)
