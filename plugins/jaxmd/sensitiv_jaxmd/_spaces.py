"""Spaces: free, periodic (orthorhombic or triclinic cell), with homogeneous strain.

Coordinates convention (every model of this plugin follows it):

- positions `x` are **Cartesian**, shape `(n_atoms, n_spatial)`, in the **reference
  (unstrained) cell**. They are never wrapped, so a minimization path is continuous.
- a periodic cell is `(n_spatial, n_spatial)` with the lattice vectors as **rows**.
- the parameter `"strain"` is a `(n_spatial, n_spatial)` tensor `ε` (only its symmetric
  part acts); the deformation `F = I + (ε + εᵀ)/2` is applied *inside* the energy to
  every minimum-image displacement, `r_ij = F · mic(x_i − x_j)`, and to the cell
  (rows `a_k → F a_k`). So `∂x*/∂ε` is the internal-relaxation field in reference
  Cartesian coordinates, the quantity relaxed-ion elastic constants need.

Why not jax-md's `space.periodic_general`: with fractional coordinates its
`space.transform` carries a custom JVP that returns *Cartesian* gradients for
fractional inputs, so derivatives taken in fractional coordinates come out in the wrong
units; without them its displacement is Cartesian but the cell is a column matrix that
neighbor lists want upper-triangular. Here everything is Cartesian and general.

Periodic images: the displacement rounds fractional differences to the nearest image and
then adds an integer lattice shift, `r = F · ((s_i − s_j − round(s_i − s_j) + n) C)`. With
`n = 0` that is the minimum image, exact for every pair closer than half the smallest
perpendicular width (height) of the cell. Beyond that the neighbor list enumerates the
shifts `|n_k| ≤ ⌊r_c / h_k + ½⌋` (`image_counts`), so cells of any size — a 2-atom
primitive cell, a cutoff longer than the cell — are computed exactly, as LAMMPS and
matscipy do with their ghost atoms (jax-md's minimum image silently misses them, its
issue #220).
"""

from __future__ import annotations

import dataclasses
import jax
import jax.numpy as jnp
import numpy as np

from sensitiv.errors import InputError

__all__ = ["Space", "space_from_structure", "deformation"]


def deformation(strain, dim: int):
    """`F = I + (ε + εᵀ)/2`; `strain=None` gives the identity."""
    eye = jnp.eye(dim)
    if strain is None:
        return eye
    strain = jnp.asarray(strain)
    return eye + 0.5 * (strain + strain.T)


def heights(cell) -> jax.Array:
    """Perpendicular widths of a cell given by rows: `h_k = 1 / ‖(C⁻¹)[:, k]‖`."""
    reciprocal = jnp.linalg.inv(cell)  # columns are the reciprocal vectors b_k
    return 1.0 / jnp.linalg.norm(reciprocal, axis=0)


@dataclasses.dataclass(frozen=True, eq=False)
class Space:
    """The geometry of a system: dimension, cell and periodicity.

    **Arguments:**

    - `dim`: number of spatial dimensions.
    - `cell`: lattice vectors as rows (`numpy` array), or `None` for free space.
    - `pbc`: periodicity per direction; all `False` is free space.

    A space with any periodic direction supports the `"strain"` parameter.
    """

    dim: int
    cell: np.ndarray | None
    pbc: tuple[bool, ...]

    @property
    def periodic(self) -> bool:
        return any(self.pbc)

    @property
    def kind(self) -> str:
        return "periodic" if self.periodic else "free"

    @property
    def frame(self) -> np.ndarray:
        """Rows spanning the grid frame: the cell, or the identity in free space."""
        return np.eye(self.dim) if self.cell is None else self.cell

    def strained_cell(self, F):
        """Rows `a_k → F a_k`, i.e. `C Fᵀ`."""
        return jnp.asarray(self.frame) @ F.T

    def volume(self, F=None):
        """Volume (area in 2-D) of the deformed cell; periodic spaces only."""
        if self.cell is None:
            raise InputError("the volume of a free space is undefined (no cell)")
        F = jnp.eye(self.dim) if F is None else F
        return jnp.abs(jnp.linalg.det(self.strained_cell(F)))

    def displacement(self, xi, xj, F=None, shift=None):
        """`F · (mic(xi − xj) + shift · C)`, broadcasting over leading axes.

        `shift` (optional, same leading shape, last axis `dim`) is an integer lattice
        translation in units of the cell vectors, added after the minimum-image rounding:
        the periodic image of the pair the neighbor list selected.
        """
        dr = xi - xj
        if self.periodic:
            frame = jnp.asarray(self.frame)
            inverse = jnp.asarray(np.linalg.inv(self.frame))
            s = dr @ inverse
            mask = jnp.asarray(self.pbc, dtype=s.dtype)
            # The rounded image shift is piecewise constant: derivatives pass through dr.
            s = s - jax.lax.stop_gradient(jnp.round(s)) * mask
            if shift is not None:
                s = s + shift * mask
            dr = s @ frame
        if F is not None:
            dr = dr @ F.T
        return dr

    def image_counts(self, cutoff, F):
        """Per direction, the largest `|n_k|` of a lattice shift that can bring a pair
        within `cutoff` after minimum-image rounding (traceable): `⌊r_c / h_k + ½⌋` along
        periodic directions of the deformed cell, 0 along free ones. All zero means the
        minimum image suffices.
        """
        if not self.periodic:
            return jnp.zeros((self.dim,), jnp.int32)
        h = heights(self.strained_cell(F))
        counts = jnp.floor(cutoff / h + 0.5).astype(jnp.int32)
        return jnp.where(jnp.asarray(self.pbc), counts, 0)

    # -- zero modes --------------------------------------------------------------------

    def null_space(self, positions, real=None) -> jax.Array:
        """Orthonormal rows `(k, n_atoms * dim)` spanning the exact zero modes of the Hessian.

        Rigid translations always (the energy depends on differences only); in free space
        also rigid rotations about the centroid (zero modes at a stationary point). `real`:
        `(n_atoms,)` booleans, `False` for phantom atoms (padding); the modes are then those
        of the real atoms alone, zero on the phantoms, about the real atoms' centroid
        (weighted, not indexed: no shape depends on how many are real).
        """
        positions = jnp.asarray(positions)
        n, dim = positions.shape
        modes = [jnp.tile(jnp.eye(dim)[k], n) for k in range(dim)]
        if real is not None:
            weight = jnp.asarray(real, positions.dtype)
            modes = [m * jnp.repeat(weight, dim) for m in modes]
        if not self.periodic:
            if real is None:
                centred = positions - positions.mean(axis=0)
            else:
                centred = (positions - (weight @ positions) / jnp.sum(weight)) * weight[:, None]
            for a, b in _rotation_planes(dim):
                generator = jnp.zeros_like(centred)
                generator = generator.at[:, a].set(-centred[:, b]).at[:, b].set(centred[:, a])
                modes.append(generator.reshape(-1))
        basis = jnp.stack(modes)
        # Translations are mutually orthogonal and orthogonal to centred rotations; QR
        # orthonormalizes the rotations among themselves.
        q, r = jnp.linalg.qr(basis.T)
        if not isinstance(r, jax.core.Tracer):
            diag = np.abs(np.asarray(jnp.diag(r)))
            if diag.min() <= 1e-10 * max(diag.max(), 1.0):
                raise InputError(
                    "the rigid-body modes of this free-space structure are degenerate "
                    "(collinear or single atom); use a periodic cell or more atoms"
                )
        return q.T * jnp.sign(jnp.diag(r))[:, None]


def _rotation_planes(dim: int):
    return [(a, b) for a in range(dim) for b in range(a + 1, dim)]


def space_from_structure(structure, kind: str = "auto") -> Space:
    """Build the `Space` of a `Structure` (cell rows, pbc), honouring `kind`.

    **Arguments:**

    - `structure`: a `sensitiv.records.Structure`.
    - `kind`: `"auto"` (periodic where `pbc` says so and a cell is given, else free),
      `"free"` or `"periodic"` (all directions periodic; needs a cell).
    """
    positions = np.asarray(structure.positions, dtype=np.float64)
    if positions.ndim != 2 or positions.shape[1] not in (1, 2, 3):
        raise InputError(
            f"structure {structure.source!r}: positions must have shape (n_atoms, 1|2|3), "
            f"got {positions.shape}"
        )
    dim = positions.shape[1]
    cell = None if structure.cell is None else np.asarray(structure.cell, dtype=np.float64)
    pbc = tuple(bool(p) for p in structure.pbc) if structure.pbc else (cell is not None,) * dim
    if len(pbc) != dim:
        raise InputError(
            f"structure {structure.source!r}: pbc has {len(pbc)} entries for {dim} dimensions"
        )
    if kind == "free":
        return Space(dim, None, (False,) * dim)
    if kind == "periodic":
        pbc = (True,) * dim
    elif kind != "auto":
        raise InputError(f"space must be 'auto', 'free' or 'periodic', got {kind!r}")
    if not any(pbc):
        return Space(dim, None, (False,) * dim)
    if cell is None:
        raise InputError(
            f"structure {structure.source!r} is periodic but has no cell; give the lattice "
            "vectors or use space: free"
        )
    if cell.shape != (dim, dim):
        raise InputError(
            f"structure {structure.source!r}: cell must have shape ({dim}, {dim}), got {cell.shape}"
        )
    det = np.linalg.det(cell)
    if not np.isfinite(det) or abs(det) <= 1e-12 * max(np.abs(cell).max(), 1.0) ** dim:
        raise InputError(f"structure {structure.source!r}: the cell is singular (volume {det})")
    return Space(dim, cell, pbc)
