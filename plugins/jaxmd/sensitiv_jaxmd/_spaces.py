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

Minimum image: the displacement rounds fractional differences, which yields the nearest
image for every pair closer than half the smallest perpendicular width (height) of the
cell. Models check `cutoff <= height / 2` (`minimum_image_ok`) and refuse otherwise,
rather than silently missing images (jax-md issue #220).
"""

from __future__ import annotations

import dataclasses
import math

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

    def displacement(self, xi, xj, F=None):
        """`F · mic(xi − xj)`, broadcasting over leading axes."""
        dr = xi - xj
        if self.periodic:
            frame = jnp.asarray(self.frame)
            inverse = jnp.asarray(np.linalg.inv(self.frame))
            s = dr @ inverse
            mask = jnp.asarray(self.pbc, dtype=s.dtype)
            # The rounded image shift is piecewise constant: derivatives pass through dr.
            s = s - jax.lax.stop_gradient(jnp.round(s)) * mask
            dr = s @ frame
        if F is not None:
            dr = dr @ F.T
        return dr

    def half_heights(self, F):
        """Half of the perpendicular widths of the deformed cell along periodic directions
        (`inf` along free ones): the largest cutoff the minimum image supports."""
        if not self.periodic:
            return jnp.full((self.dim,), jnp.inf)
        h = heights(self.strained_cell(F)) / 2.0
        return jnp.where(jnp.asarray(self.pbc), h, jnp.inf)

    def minimum_image_ok(self, cutoff, F):
        """Whether every pair within `cutoff` has a unique nearest image (traceable)."""
        return jnp.all(cutoff <= self.half_heights(F))

    # -- zero modes --------------------------------------------------------------------

    def null_space(self, positions) -> jax.Array:
        """Orthonormal rows `(k, n_atoms * dim)` spanning the exact zero modes of the Hessian.

        Rigid translations always (the energy depends on differences only); in free space
        also rigid rotations about the centroid (zero modes at a stationary point).
        """
        positions = jnp.asarray(positions)
        n, dim = positions.shape
        modes = [jnp.tile(jnp.eye(dim)[k], n) for k in range(dim)]
        if not self.periodic:
            centred = positions - positions.mean(axis=0)
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


def describe_min_image(space: Space, cutoff: float, F=None) -> str | None:
    """A one-line explanation when `cutoff` exceeds half the cell height, else `None`."""
    F = jnp.eye(space.dim) if F is None else F
    half = np.asarray(space.half_heights(F))
    if cutoff <= half.min():
        return None
    k = int(np.argmin(half))
    need = math.ceil(cutoff / half[k])
    return (
        f"the interaction cutoff {cutoff:.6g} exceeds half the cell height {half[k]:.6g} "
        f"along lattice vector {k}: the minimum-image convention would miss or double-count "
        f"images; use a supercell at least {need}x along that vector"
    )
