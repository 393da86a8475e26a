"""`propagate`: everything about a parameter covariance at one root, from one engine program.

1. The Jacobian `∂x*/∂θ` and the second order along every parameter axis and every
   principal direction of the covariance, in one engine program (the second-order
   right-hand sides are solved with the Jacobian's factorization); from the Jacobian the
   total derivatives of the observables by forward products (`dg/dθ = ∂₁g J + ∂₂g`).
2. Linear propagation (per-atom covariance of the positions, covariance and correlations of
   the observables) and importance: algebra on the Jacobian, no further solve.
3. From the second order and a third-order bound (no further solve): the validity ranges
   (orders the root does not resolve count as zero) and the second-order shift of the mean,
   `E[y] − y(θ̂) ≈ ½ tr(Σ ∂²y/∂θ²) = ½ Σₖ ∂²y[√λₖ uₖ, √λₖ uₖ]`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from ..errors import InputError
from ._covariance import ParameterCovariance
from ._higher import (
    DirectionalDerivatives,
    ValidityRange,
    directional_derivatives,
    natural_steps,
    validity_range,
)
from ._linear import (
    FieldCovariance,
    Importance,
    ObservableCovariance,
    importance,
    observable_covariance,
    per_atom_covariance,
)

__all__ = ["UncertaintyResult", "propagate", "observable_derivatives"]


class UncertaintyResult(NamedTuple):
    """What `propagate` returns: linear propagation, importance and validity of the linearization.

    `"x"` names the solution in every dict below; the observables keep their names.

    **Arguments:**

    - `covariance`: the `ParameterCovariance` propagated.
    - `jacobian`: `∂x*/∂θ` (as `sensitiv.jacobian` returns it); `info`: its `JacobianInfo`.
    - `derivatives`: dict name → `dg/dθ` of each observable (structured like `jax.jacobian`).
    - `positions`: a `FieldCovariance` when the solution is one `(N, s)` array, else an
      `ObservableCovariance` of the solution's entries.
    - `observables`: an `ObservableCovariance` of every observable component (`None` without).
    - `importance`: dict name → `Importance` (`"x"` and every observable).
    - `principal_variances`, `principal_directions`: the covariance's eigenpairs (`(k,)`,
      `(k, n)` rows scaled to one σ).
    - `second_order`: the `DirectionalDerivatives` along the `n` parameter axes followed by
      the `k` principal directions.
    - `validity`: dict name → `ValidityRange` along the parameter axes, in each
      parameter's units (`"x"`: the whole displacement field in the 2-norm; observables
      per component).
    - `validity_principal`: the same along the principal directions, in standard deviations.
    - `mean_shift`: dict name → the second-order shift of the mean, shaped like the output.
    - `rtol`, `atol`: the tolerance of the validity ranges (`atol` per name).

    **Example:**

    ```python
    res = propagate(F, x_star, params, covariance=cov, observables={"C": elastic})
    res.positions.std                # (N, 3) Å
    res.importance["C"].ranking()
    res.validity["x"].estimate       # per parameter, in its units
    ```
    """

    covariance: ParameterCovariance
    jacobian: Any
    info: Any
    derivatives: dict
    positions: Any
    observables: ObservableCovariance | None
    importance: dict
    principal_variances: np.ndarray
    principal_directions: np.ndarray
    second_order: DirectionalDerivatives | None
    validity: dict
    validity_principal: dict
    mean_shift: dict
    rtol: float
    atol: dict


@jax.jit(static_argnums=(0,))
def _forward_total(g, sol, params, args, j_rows):
    """`dg/dθ` columns: one JVP of `g` per parameter along `(J eᵢ, eᵢ)`, flattened `(m, n)`."""
    x, ux = ravel_pytree(sol)
    theta, ut = ravel_pytree(params)
    theta = theta.astype(x.dtype)

    def flat(xx, tt):
        return ravel_pytree(g(ux(xx), ut(tt), *args))[0]

    eye = jnp.eye(theta.shape[0], dtype=x.dtype)
    return jax.vmap(lambda jc, e: jax.jvp(flat, (x, theta), (jc, e))[1], out_axes=1)(j_rows, eye)


def _as_jacobian(flat_cols, out_tree, params):
    """`(m, n)` flat columns → structured like `jax.jacobian` (outputs outside, params inside)."""
    leaves, treedef = jax.tree.flatten(out_tree)
    p_leaves, p_def = jax.tree.flatten(params)
    out, offset = [], 0
    for leaf in leaves:
        size = int(np.prod(np.shape(leaf)))
        block = flat_cols[offset : offset + size]
        offset += size
        inner, p_off = [], 0
        for p in p_leaves:
            p_size = int(np.prod(np.shape(p)))
            inner.append(block[:, p_off : p_off + p_size].reshape(np.shape(leaf) + np.shape(p)))
            p_off += p_size
        out.append(jax.tree.unflatten(p_def, inner))
    return jax.tree.unflatten(treedef, out)


def _flat_jacobian(jac, params, d):
    from ._linear import _structure, jacobian_columns

    n = sum(int(np.size(leaf)) for leaf in jax.tree.leaves(params))
    _, cols = jacobian_columns(jac, _structure(params))
    flat = np.concatenate([np.reshape(np.asarray(c), (-1, n)) for c in cols], axis=0)
    if flat.shape[0] != d:
        raise InputError(f"jacobian: has {flat.shape[0]} rows for a solution of {d} entries")
    return flat


def observable_derivatives(observables: dict, sol: Any, params: Any, *args: Any, jacobian: Any) -> dict:
    """Total derivatives `dg/dθ = ∂g/∂θ + ∂g/∂x · ∂x*/∂θ` from an already computed Jacobian.

    One forward product of `g` per parameter, no linear solve (`sensitiv.total_derivative`
    computes the same from scratch, choosing forward or reverse mode).

    **Arguments:**

    - `observables`: dict name → `g(x, θ, *args)`.
    - `sol`, `params`, `*args`: the root and its parameters.
    - `jacobian`: `∂x*/∂θ` at `(sol, params)` (`sensitiv.jacobian(...).jacobian`).

    **Returns:** dict name → `dg/dθ`, structured like `jax.jacobian` of `θ ↦ g(x*(θ), θ)`.

    **Example:**

    ```python
    J = sensitiv.jacobian(F, x_star, params).jacobian
    dC = observable_derivatives({"C": elastic}, x_star, params, jacobian=J)["C"]
    ```
    """
    d = sum(int(np.size(leaf)) for leaf in jax.tree.leaves(sol))
    j_rows = _flat_jacobian(jacobian, params, d).T
    out = {}
    for name, g in observables.items():
        shape = jax.eval_shape(g, sol, params, *args)
        cols = np.asarray(_forward_total(g, sol, params, tuple(args), j_rows))
        out[name] = _as_jacobian(cols, shape, params)
    return out


def propagate(
    optimality_fun,
    sol: Any,
    params: Any,
    *args: Any,
    covariance: ParameterCovariance,
    observables: dict | None = None,
    units: dict | None = None,
    rtol: float = 0.01,
    atol: dict | None = None,
    groups: Any = None,
    rule: str = "shapley",
    second_order: bool = True,
    third_order: str = "bound",
    jacobian: Any = None,
    **options: Any,
) -> UncertaintyResult:
    """Propagate a parameter covariance through a root, rank the parameters, and say how far
    the linear prediction holds.

    Costs one engine program — the Jacobian, then the second order along all `n + k`
    directions (parameter axes and principal directions) solved with its factorization —
    and forward products; see the module notes.

    **Arguments:**

    - `optimality_fun`, `sol`, `params`, `*args`: as in `sensitiv.jacobian`.
    - `covariance`: a `ParameterCovariance` over `params`.
    - `observables`: dict name → `g(x, θ, *args)` (stress, elastic constants, distances).
    - `units`: dict name → unit string (`"x"` for the solution), carried to the results.
    - `rtol`: relative tolerance of the validity ranges (default 1 % of the predicted change).
    - `atol`: dict name → absolute tolerance in that output's units (default 0).
    - `groups`, `rule`: as in `importance`.
    - `second_order`: compute second-order derivatives, validity ranges and mean shifts.
    - `third_order`: as in `directional_derivatives` (`"bound"`, `"solve"`, `"none"`).
    - `jacobian`: a `JacobianResult` already computed at `(sol, params)`: its columns are the
      first order (the program still factorizes `K` once for the second order).
    - `**options`: options of `sensitiv.jacobian` (`null_space`, `method`, `sparsity`, ...).

    **Returns:** an `UncertaintyResult`.

    **Example:**

    ```python
    cov = ParameterCovariance.from_std({"epsilon": 0.02, "sigma": 0.01})
    res = propagate(jax.grad(energy), x_star, params, covariance=cov,
                    null_space=translation_modes(n_atoms, 3))
    res.positions.std.max(), res.importance["x"].ranking()
    ```
    """
    from ..engine import jacobian as engine_jacobian  # the engine, not the lazy face

    if not isinstance(covariance, ParameterCovariance):
        raise InputError("covariance: expected a sensitiv.uncertainty.ParameterCovariance")
    observables = dict(observables or {})
    if "x" in observables:
        raise InputError("observables: the name 'x' is reserved for the solution")
    units = dict(units or {})
    atol = {name: float(v) for name, v in (atol or {}).items()}
    n_theta = sum(int(np.size(leaf)) for leaf in jax.tree.leaves(params))
    if n_theta != covariance.size or jax.tree.structure(params) != covariance.treedef:
        raise InputError(
            f"covariance: describes {covariance.size} parameter entries ({', '.join(covariance.labels[:6])}"
            f"{', ...' if covariance.size > 6 else ''}), params has {n_theta} with another "
            "structure; build it from a pytree shaped like params"
        )
    lam, steps = covariance.principal_directions()
    n, k = covariance.size, lam.shape[0]
    dd = None
    if second_order:
        # one engine program: the Jacobian, then the second order along all n + k directions
        # with its factorization (a given Jacobian only supplies the first order)
        directions = np.concatenate([np.eye(n), steps], axis=0)
        dd = directional_derivatives(optimality_fun, sol, params, *args,
                                     jacobian=None if jacobian is None else jacobian.jacobian,
                                     directions=directions, observables=observables, third_order=third_order,
                                     **options)
        jacobian = jacobian if jacobian is not None else dd.jacobian
    elif jacobian is None:
        jacobian = engine_jacobian(optimality_fun, sol, params, *args, **options)
    jac, info = jacobian.jacobian, jacobian.info
    if dd is not None:  # the first order along the parameter axes is dg/dθ
        derivs = {name: _as_jacobian(_stack(jax.tree.map(lambda a: a[..., :n], dd.observables_first[name])),
                                     jax.eval_shape(g, sol, params, *args), params)
                  for name, g in observables.items()}
    else:
        derivs = observable_derivatives(observables, sol, params, *args, jacobian=jac)

    sol_leaves = jax.tree.leaves(sol)
    if len(sol_leaves) == 1 and np.ndim(sol_leaves[0]) >= 2:
        positions = per_atom_covariance(jac, covariance, units=units.get("x"))
    else:
        positions = observable_covariance(jac, covariance, units=units.get("x"))
    obs = observable_covariance(derivs, covariance, units={k: units.get(k) for k in derivs}) if derivs else None
    imp = {"x": importance(jac, covariance, groups=groups, rule=rule)}
    for name, dg in derivs.items():
        imp[name] = importance(dg, covariance, groups=groups, rule=rule)

    validity, validity_p, shift = {}, {}, {}
    if dd is not None:
        third_x = dd.third_bound if dd.third is None else None
        split = lambda tree, sl: jax.tree.map(lambda a: a[..., sl], tree)  # noqa: E731
        axes, principal = slice(0, n), slice(n, n + k)
        # a natural step per direction and the smallest change each output resolves: a
        # direction an output does not depend on gets an infinite range, not a ratio of round-offs
        theta_flat = np.concatenate([np.ravel(np.asarray(leaf, float)) for leaf in jax.tree.leaves(params)])
        natural = natural_steps(directions, theta_flat, np.sqrt(np.clip(np.diag(covariance.matrix), 0.0, None)))
        for sl, target in ((axes, validity), (principal, validity_p)):
            step = natural[sl]
            target["x"] = validity_range(
                _stack(split(dd.first, sl)), _stack(split(dd.second, sl)),
                None if dd.third is None else _stack(split(dd.third, sl)),
                third_bound=None if third_x is None else np.asarray(third_x)[sl],
                rtol=rtol, atol=atol.get("x", 0.0), scale=step, noise=dd.resolution,
            )
            for name in observables:
                f1, f2 = dd.observables_first[name], dd.observables_second[name]
                f3 = None if dd.observables_third is None else dd.observables_third[name]
                b3 = dd.observables_third_bound[name]

                def ranges(a1, a2, a3b, res, a3=None, sl=sl, step=step, name=name):
                    return validity_range(a1[..., sl], a2[..., sl], None if a3 is None else a3[..., sl],
                                          third_bound=a3b[..., sl], rtol=rtol, atol=atol.get(name, 0.0),
                                          reduce="component", scale=step, noise=res)

                target[name] = jax.tree.map(ranges, f1, f2, b3, dd.observables_resolution[name],
                                            *(() if f3 is None else (f3,)))
        shift["x"] = jax.tree.map(lambda a: 0.5 * np.sum(a[..., principal], axis=-1), dd.second)
        for name in observables:
            shift[name] = jax.tree.map(lambda a: 0.5 * np.sum(a[..., principal], axis=-1),
                                       dd.observables_second[name])
    return UncertaintyResult(
        covariance, jac, info, derivs, positions, obs, imp, lam, steps, dd, validity, validity_p, shift,
        float(rtol), atol,
    )


def _stack(tree):
    """A solution pytree with trailing direction axes → one `(d, k)` array (whole-field norm)."""
    leaves = jax.tree.leaves(tree)
    k = np.shape(leaves[0])[-1]
    return np.concatenate([np.reshape(a, (-1, k)) for a in leaves], axis=0)
