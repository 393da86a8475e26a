"""Relaxed-ion elastic constants of a `System` at equilibrium, in Voigt notation.

**Strain convention** (shared by this module, `sensitiv analyze` and its output): the
strain is a Voigt vector `e = (ε_xx, ε_yy, ε_zz, γ_yz, γ_xz, γ_xy)` in 3-D and
`(ε_xx, ε_yy, γ_xy)` in 2-D, whose shear components are **engineering shears**
`γ_ij = 2 ε_ij`. It deforms the cell by `F = I + ε` (symmetric, no rotation) through the
model's `"strain"` parameter, whose entry `[i, j]` (`i < j`) moved alone is `γ_ij` too
(the model uses `(ε + εᵀ)/2`). The elastic constants are then `C_ab = ∂σ_a/∂e_b`, with no
factor 2 anywhere.

**Two definitions**, equal at zero stress and different under residual stress (by terms
linear in σ; 6.2 GPa on C12 in a stressed amorphous Stillinger–Weber cell):

- `"stress"` (default; what `sensitiv analyze` writes): the Cauchy tangent `dσ/de`, the
  total derivative of the Cauchy (virial) stress of the deformed cell, atoms relaxed. It
  predicts the stress change of a small strain, which LAMMPS' ELASTIC example measures.
- `"energy"`: the strain-energy Hessian `(1/V₀) d²E/dη²` in the Green–Lagrange strain
  `η = (FᵀF − I)/2` (Voigt, engineering shears), atoms relaxed: the Born term plus the
  non-affine (relaxation) term, as matscipy's `born + non-affine` computes them; symmetric
  by construction. It differs from the Cauchy tangent by terms linear in the residual
  stress (matscipy's "stress contribution").

Both relax the atoms by implicit differentiation: `dx*/de = −H⁺ ∂²E/∂x∂e` from one
Jacobian-engine call, the internal-relaxation field, returned too.

**Example:**

```python
import sensitiv
c = sensitiv.elastic_constants(system, x_star)           # Cauchy tangent, relaxed ions
c.relaxed[0, 0], c.clamped[3, 3], c.internal_relaxation.shape   # C11, C44⁰, (n, 3, 6)
```
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .errors import ConfigError
from .engine import jacobian as engine_jacobian

__all__ = ["ElasticConstants", "elastic_constants", "voigt_pairs", "voigt_labels", "strain_tensor", "DEFINITIONS"]

#: The definitions `elastic_constants` offers (see the module's text).
DEFINITIONS = ("stress", "energy")


def voigt_pairs(d: int) -> list[tuple[int, int]]:
    """The Voigt order of a symmetric `(d, d)` tensor: xx, yy, zz, yz, xz, xy (2-D: xx, yy, xy).

    **Arguments:**

    - `d`: the number of spatial dimensions (1, 2 or 3).

    **Returns:** the `(i, j)` index pairs in Voigt order.

    **Example:**

    ```python
    sensitiv.elasticity.voigt_pairs(3)[3]     # (1, 2): yz
    ```
    """
    return {1: [(0, 0)], 2: [(0, 0), (1, 1), (0, 1)],
            3: [(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)]}[d]


def voigt_labels(d: int) -> tuple[str, ...]:
    """`("xx", "yy", "zz", "yz", "xz", "xy")` for `d = 3` (the Voigt order of `voigt_pairs`).

    **Arguments:**

    - `d`: the number of spatial dimensions.

    **Returns:** the component labels.

    **Example:**

    ```python
    sensitiv.elasticity.voigt_labels(2)       # ('xx', 'yy', 'xy')
    ```
    """
    return tuple(f"{'xyz'[i]}{'xyz'[j]}" for i, j in voigt_pairs(d))


def strain_tensor(e, d: int):
    """The symmetric strain tensor ε of a Voigt strain `e` (shears are engineering: ε_ij = γ_ij/2).

    **Arguments:**

    - `e`: the Voigt vector, `(d (d + 1) / 2,)`.
    - `d`: the number of spatial dimensions.

    **Returns:** `(d, d)` ε (traceable).

    **Example:**

    ```python
    sensitiv.elasticity.strain_tensor(jnp.array([0, 0, 0, 0, 0, 0.02]), 3)[0, 1]   # 0.01
    ```
    """
    e = jnp.asarray(e)
    eps = jnp.zeros((d, d), e.dtype)
    for k, (i, j) in enumerate(voigt_pairs(d)):
        if i == j:
            eps = eps.at[i, i].set(e[k])
        else:
            eps = eps.at[i, j].set(0.5 * e[k]).at[j, i].set(0.5 * e[k])
    return eps


@dataclasses.dataclass(frozen=True)
class ElasticConstants:
    """Elastic constants in Voigt notation.

    **Arguments:**

    - `relaxed`: relaxed-ion `C`, `(v, v)` (`v` = 6 in 3-D), in `units`.
    - `clamped`: clamped-ion (affine) `C⁰`, same shape.
    - `internal_relaxation`: `dx*/de`, `(n_atoms, d, v)`: how the atoms move per unit
      Voigt strain (the rigid translation projected out).
    - `voigt`: the component labels (`"xx"`, ..., `"xy"`).
    - `definition`: `"stress"` (Cauchy tangent) or `"energy"` (strain-energy Hessian).
    - `units`: energy per length^d of the system.
    - `info`: the Jacobian engine's `JacobianInfo` for `dx*/de` (verdict, residuals).

    **Example:**

    ```python
    c = sensitiv.elastic_constants(system, x_star)
    bulk = (c.relaxed[0, 0] + 2 * c.relaxed[0, 1]) / 3
    ```
    """

    relaxed: np.ndarray
    clamped: np.ndarray
    internal_relaxation: np.ndarray
    voigt: tuple[str, ...]
    definition: str
    units: str
    info: Any


def elastic_constants(system, positions=None, params: Mapping[str, Any] | None = None, *,
                      definition: str = "stress", volume: float | None = None,
                      **engine_options) -> ElasticConstants:
    """Relaxed- and clamped-ion elastic constants of `system` at the equilibrium `positions`.

    **Arguments:**

    - `system`: a `System` with a `"strain"` parameter (`(d, d)`) and, for
      `definition="stress"`, a `"stress"` observable (the jax-md plugin's periodic systems).
    - `positions`: an equilibrium `(n, d)` (default `system.positions`); relax first.
    - `params`: parameter values (default `system.params`); a non-zero `"strain"` is the
      reference the Voigt strain is added to.
    - `definition`: `"stress"` (Cauchy tangent dσ/de, default) or `"energy"` ((1/V₀) d²E/dη²,
      Green–Lagrange strain; needs a zero reference strain).
    - `volume`: the cell volume at the reference strain, for `"energy"` (default: from
      `system.metadata["cell"]` and the reference strain).
    - `**engine_options`: passed to `sensitiv.jacobian` (`method`, `tol`, ...);
      the system's null space is used unless given.

    **Returns:** an `ElasticConstants`.

    **Raises:** `ConfigError` for a system without strain (or stress), an unknown
    definition, or an `"energy"` request without a known volume.

    **Example:**

    ```python
    c = sensitiv.elastic_constants(system, x_star, definition="energy")
    c.relaxed                                    # (6, 6), energy / length³
    ```
    """
    if definition not in DEFINITIONS:
        raise ConfigError(f"elastic_constants: definition must be one of {', '.join(DEFINITIONS)}, got {definition!r}")
    params = dict(system.params if params is None else params)
    if "strain" not in params:
        raise ConfigError("elastic_constants: the system has no 'strain' parameter (a periodic cell is needed)")
    if definition == "stress" and "stress" not in system.observables:
        raise ConfigError("elastic_constants: the system has no 'stress' observable; use definition='energy'")
    x = jnp.asarray(system.positions if positions is None else positions)
    d = x.shape[-1]
    pairs = voigt_pairs(d)
    reference = jnp.asarray(params["strain"], x.dtype)
    e0 = jnp.zeros((len(pairs),), x.dtype)

    def with_strain(e):
        return {**params, "strain": reference + strain_tensor(e, d)}

    def force_balance(x, e):
        return jax.grad(system.energy)(x, with_strain(e))

    options = dict(engine_options)
    if "null_space" not in options and system.null_space is not None:
        options["null_space"] = jnp.asarray(system.null_space(x), x.dtype)
    result = engine_jacobian(force_balance, x, e0, **options)
    dx_de = jnp.asarray(result.jacobian).reshape(x.shape + (len(pairs),))
    if definition == "stress":
        def voigt_stress(x, e):
            sigma = system.observables["stress"](x, with_strain(e))
            return jnp.stack([sigma[i, j] for i, j in pairs])

        clamped = jax.jacfwd(voigt_stress, argnums=1)(x, e0)
        coupling = jax.jacfwd(voigt_stress, argnums=0)(x, e0)  # (v, n, d)
        relaxed = clamped + jnp.einsum("anc,ncb->ab", coupling, dx_de)
    else:
        v = _reference_volume(system, reference, d) if volume is None else float(volume)

        if np.any(np.asarray(reference) != 0):
            raise ConfigError("elastic_constants: definition='energy' needs a zero reference 'strain' "
                              "(relax or rebuild the structure at the strained cell)")

        def energy(x, e):
            # e is the Green–Lagrange strain η (Voigt): F = √(I + 2η) = I + η − η²/2 + O(η³),
            # exact to the second order the Hessian at η = 0 sees.
            eta = strain_tensor(e, d)
            return system.energy(x, {**params, "strain": eta - 0.5 * eta @ eta})

        clamped = jax.hessian(energy, argnums=1)(x, e0) / v
        coupling = jax.jacfwd(jax.grad(energy, argnums=0), argnums=1)(x, e0)  # (n, d, v)
        relaxed = clamped + jnp.einsum("nca,ncb->ab", coupling, dx_de) / v
    units = f"{system.energy_units} {system.length_units}-{d}"
    return ElasticConstants(np.asarray(relaxed, np.float64), np.asarray(clamped, np.float64),
                            np.asarray(dx_de, np.float64), voigt_labels(d), definition, units, result.info)


def _reference_volume(system, reference, d: int) -> float:
    cell = (system.metadata or {}).get("cell")
    if cell is None:
        raise ConfigError("elastic_constants: definition='energy' needs the cell volume; pass volume=")
    deformation = np.eye(d) + 0.5 * (np.asarray(reference) + np.asarray(reference).T)
    return float(abs(np.linalg.det(np.asarray(cell, np.float64) @ deformation.T)))
