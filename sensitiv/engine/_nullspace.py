"""Known zero modes: rigid translations (periodic boxes) and rotations (free space).

A translation-invariant energy has a singular Hessian; its minimizers form a family and
the Jacobian is only defined up to those motions. sensitiv returns the minimum-norm
Jacobian: the one with no component along the zero modes — the same in every strategy
and mode. These helpers build the orthonormal `(k, d)` rows that `null_space=` takes.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from ..errors import InputError

__all__ = ["translation_modes", "rigid_body_modes", "as_null_basis"]


def translation_modes(n_atoms: int, n_spatial: int, dtype=jnp.float64) -> jnp.ndarray:
    """Rigid translations of `n_atoms` atoms: `(n_spatial, n_atoms * n_spatial)` orthonormal rows.

    **Arguments:**

    - `n_atoms`, `n_spatial`: the shape of the positions (flattened atom-major).
    - `dtype`: the dtype of the rows.

    **Returns:** the rows; the zero modes of any periodic, translation-invariant energy.

    **Example:**

    ```python
    z = translation_modes(128, 2)  # (2, 256)
    ```
    """
    rows = np.zeros((n_spatial, n_atoms, n_spatial))
    for a in range(n_spatial):
        rows[a, :, a] = 1.0 / np.sqrt(n_atoms)
    return jnp.asarray(rows.reshape(n_spatial, -1), dtype)


def rigid_body_modes(positions, dtype=None) -> jnp.ndarray:
    """Translations and infinitesimal rotations about the centroid, orthonormalized.

    For a cluster in free space (no box) the energy is invariant under both: 3 + 3 zero
    modes in 3-D (fewer for a linear molecule: rank-deficient rotations are dropped),
    2 + 1 in 2-D.

    **Arguments:**

    - `positions`: `(n_atoms, n_spatial)` with `n_spatial` 2 or 3.

    **Returns:** `(k, n_atoms * n_spatial)` orthonormal rows.

    **Example:**

    ```python
    modes = rigid_body_modes(cluster_positions)     # (6, 3 n_atoms) for a 3-D cluster
    result = sensitiv.jacobian(jax.grad(energy), cluster_positions, params,
                                        null_space=modes)
    ```
    """
    x = np.asarray(positions, np.float64)
    n, dim = x.shape
    dtype = dtype or jnp.asarray(positions).dtype
    c = x - x.mean(axis=0)
    modes = [np.asarray(translation_modes(n, dim, jnp.float64))]
    if dim == 2:
        rot = np.stack([-c[:, 1], c[:, 0]], axis=1)
        modes.append(rot.reshape(1, -1))
    elif dim == 3:
        for axis in np.eye(3):
            modes.append(np.cross(axis, c).reshape(1, -1))
    else:
        raise InputError(f"rigid_body_modes: positions must be 2-D or 3-D, got shape {x.shape}")
    stack = np.concatenate(modes, axis=0)
    # An orthonormal basis of the span by the SVD: QR without pivoting would, for a
    # (nearly) linear molecule, orthogonalize the last rotation against the arbitrary
    # direction it makes up for the dependent one (for a dimer along x: a stretch).
    u, sv, _ = np.linalg.svd(stack.T, full_matrices=False)
    keep = sv > 1e-10 * sv.max()
    return jnp.asarray(u[:, keep].T, dtype)


def as_null_basis(null_space, d: int, dtype):
    """Validate `null_space=`: `None`, or `(k, d)` rows (a single row may be 1-D)."""
    if null_space is None:
        return None
    basis = jnp.asarray(null_space, dtype)
    if basis.ndim == 1:
        basis = basis[None, :]
    if basis.ndim != 2 or basis.shape[1] != d:
        raise InputError(
            f"null_space: expected (k, {d}) rows on the flattened solution, got shape {basis.shape}"
        )
    if basis.shape[0] == 0:
        return None
    return basis
