"""Neighbor lists that are rebuilt inside the energy, usable under `jit`, never silently wrong.

Design (and why it differs from `jax_md.partition`):

- The list is **rebuilt on every energy call** from the current positions *and the
  current parameters*: its radius is the model's largest cutoff at the θ being
  evaluated (`stop_gradient`-ed), so a θ that grows σ cannot drop pairs (with
  jax-md's lists the radius is frozen at build time: 10.1075 instead of 10.1404 for
  σ × 1.3, without error). The indices are integers and carry no derivative.
- A neighbor is an atom **and a periodic image**: `(j, n)` with `n` an integer lattice
  shift added after minimum-image rounding. Along periodic directions too thin for the
  minimum image (`r_c > h_k / 2`: 2- and 8-atom cells, long cutoffs) every shift with
  `|n_k| ≤ ⌊r_c / h_k + ½⌋` is a candidate, an atom's own images included, as LAMMPS'
  ghost atoms do; elsewhere `n = 0`.
- Only **shapes** are static: the cell grid, the capacity of a grid cell, the image
  range and the number of neighbors per atom. They are chosen by `NeighborList.allocate`
  (outside `jit`) with a skin on the radius and a capacity multiplier.
- Every build returns a **status** bitmask (`OK`, `NEIGHBOR_OVERFLOW`, `CELL_OVERFLOW`,
  `CELL_TOO_SMALL`, `PERIODIC_IMAGES`). Energies turn a non-zero status into NaN, never
  a truncated sum; the plugin's solvers read the status, reallocate and retry
  (`NeighborList.allocate` again), and `explain_status` says what went wrong.
- Grid cells live in fractional coordinates of the reference cell (a free space uses an
  axis-aligned frame around the atoms); their width is checked against the cutoff in the
  *strained* metric, so strain parameters are covered too.

With `enabled=False` every other atom is a candidate (`O(n²)` work): when the minimum
image suffices the candidates are all `(n, n − 1)` other atoms, uncompacted; with images
they are compacted to the pairs within the cutoff like the cell list's.
"""

from __future__ import annotations

import dataclasses
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np

from ._spaces import Space, heights

__all__ = [
    "NeighborList",
    "OK",
    "NEIGHBOR_OVERFLOW",
    "CELL_OVERFLOW",
    "CELL_TOO_SMALL",
    "PERIODIC_IMAGES",
    "REALLOCATABLE",
    "explain_status",
]

OK = 0
NEIGHBOR_OVERFLOW = 1
CELL_OVERFLOW = 2
CELL_TOO_SMALL = 4
PERIODIC_IMAGES = 8

_MESSAGES = {
    NEIGHBOR_OVERFLOW: "more neighbors within the cutoff than the list's capacity",
    CELL_OVERFLOW: "more atoms in a grid cell than the cell list's capacity",
    CELL_TOO_SMALL: "the cutoff grew beyond the grid-cell width chosen at allocation",
    PERIODIC_IMAGES: "the cutoff reaches periodic images beyond those allocated (the cell got "
    "thinner than at allocation)",
}
#: Failures that reallocating the list fixes (all of them).
REALLOCATABLE = NEIGHBOR_OVERFLOW | CELL_OVERFLOW | CELL_TOO_SMALL | PERIODIC_IMAGES


def explain_status(status: int) -> str:
    """One line naming every failure in a status bitmask (`"ok"` for 0)."""
    status = int(status)
    if status == OK:
        return "ok"
    return "; ".join(msg for bit, msg in _MESSAGES.items() if status & bit)


@dataclasses.dataclass(eq=False)
class NeighborList:
    """The static shape of a neighbor list, grown when a build reports an overflow.

    It is deliberately mutable: the energy of a `System` reads it when it is traced, so
    after `allocate` grows it, re-trace (re-`jit`) functions built on the energy. The
    plugin's solvers do this themselves.

    **Arguments:**

    - `space`: the `Space`.
    - `enabled`: `False` makes every other atom a candidate (no cell grid).
    - `skin`: relative margin on the radius when sizing grid cells and image ranges
      (`0.25` = 25 %).
    - `capacity_multiplier`: margin on the counts when sizing buffers.

    After `allocate`: `grid` (cells per direction), `images` (largest `|n_k|` of the
    periodic shifts searched per direction), `cell_capacity`, `max_neighbors`.
    """

    space: Space
    enabled: bool = True
    skin: float = 0.25
    capacity_multiplier: float = 1.5
    grid: tuple[int, ...] | None = None
    lower: tuple[float, ...] | None = None
    upper: tuple[float, ...] | None = None
    images: tuple[int, ...] | None = None
    cell_capacity: int = 0
    max_neighbors: int = 0
    allocations: int = 0

    @property
    def allocated(self) -> bool:
        return self.images is not None

    @property
    def n_images(self) -> int:
        """Number of periodic shifts searched per candidate atom (1: minimum image only)."""
        return int(np.prod([2 * k + 1 for k in self.images])) if self.images else 1

    @property
    def compacted(self) -> bool:
        """Whether builds keep only the pairs within the cutoff (to `max_neighbors`)."""
        return self.enabled or self.n_images > 1

    def key(self) -> tuple:
        """Everything a trace depends on (use it in `jit` caches)."""
        return (self.enabled, self.grid, self.lower, self.upper, self.images, self.cell_capacity,
                self.max_neighbors, self.allocations)

    def offsets(self) -> np.ndarray:
        """The periodic shifts searched, `(n_images, dim)` integers, the zero shift first."""
        dim = self.space.dim
        ranges = [sorted(range(-k, k + 1), key=abs) for k in (self.images or (0,) * dim)]
        return np.asarray(list(itertools.product(*ranges)), dtype=np.int32).reshape(-1, dim)

    # -- allocation (host side) --------------------------------------------------------

    def allocate(self, positions, cutoff, F=None, active=None) -> NeighborList:
        """Choose grid, image range and capacities for `positions` at radius `cutoff`
        (not traceable).

        **Arguments:**

        - `positions`: `(n, dim)` Cartesian positions (reference cell).
        - `cutoff`: the current largest interaction cutoff.
        - `F`: the current deformation (identity by default).
        - `active`: `(n,)` booleans, `False` for phantom atoms (padding), which occupy no
          grid cell and are nobody's neighbor; `None`: every atom is real.

        **Returns:** `self`, updated in place.
        """
        positions = np.asarray(positions, dtype=np.float64)
        n, dim = positions.shape
        self.allocations += 1
        cutoff = float(cutoff)
        F = np.eye(dim) if F is None else np.asarray(F, dtype=np.float64)
        radius = cutoff * (1.0 + self.skin)
        frame = self.space.frame
        h = np.asarray(heights(jnp.asarray(frame @ F.T)))
        pbc = self.space.pbc
        if self.enabled:
            s = positions @ np.linalg.inv(frame)
            per_dim_cap = max(3, math.ceil((4.0 * n) ** (1.0 / dim)))
            grid, lower, upper = [], [], []
            for k in range(dim):
                if pbc[k]:
                    lo, hi = 0.0, 1.0
                    width = h[k]
                else:
                    pad = radius / h[k] if radius > 0 else 1.0 / h[k]
                    lo, hi = float(s[:, k].min() - pad), float(s[:, k].max() + pad)
                    width = (hi - lo) * h[k]
                cells = int(np.floor(width / radius)) if radius > 0 else per_dim_cap
                cells = max(1, min(cells, per_dim_cap))
                if pbc[k] and cells < 3:
                    cells = 1  # a periodic stencil of 3 needs 3 distinct cells
                grid.append(cells)
                lower.append(lo)
                upper.append(hi)
            self.grid, self.lower, self.upper = tuple(grid), tuple(lower), tuple(upper)
        # Image range along periodic directions the grid does not cover: none while the
        # minimum image suffices at the current cutoff, else enough for the skin too.
        images = []
        for k in range(dim):
            covered = self.enabled and self.grid[k] > 1
            if not pbc[k] or covered or np.floor(cutoff / h[k] + 0.5) == 0:
                images.append(0)
            else:
                images.append(int(np.floor(radius / h[k] + 0.5)))
        self.images = tuple(images)
        if self.enabled:
            # Cell capacity from the occupancy now; then the neighbor count with that grid.
            cell_ids = np.asarray(jax.jit(self._cell_ids)(jnp.asarray(positions))[1])
            if active is not None:
                cell_ids = cell_ids[np.asarray(active, bool)]
            occupancy = int(np.bincount(cell_ids, minlength=int(np.prod(self.grid))).max())
            self.cell_capacity = max(1, math.ceil(occupancy * self.capacity_multiplier))
            if int(np.prod(self.grid)) == 1:
                self.cell_capacity = n
        if not self.compacted:
            self.max_neighbors = max(n - 1, 1)
            return self
        count = jax.jit(lambda x, c, f, a: self._hits(x, c, f, a)[3])
        counts = count(jnp.asarray(positions), cutoff, jnp.asarray(F), None if active is None else jnp.asarray(active))
        most = int(np.asarray(counts).max()) if n else 0
        width = self._candidate_width(n) * self.n_images
        self.max_neighbors = int(min(max(width - 1, 1), max(1, math.ceil(most * self.capacity_multiplier))))
        return self

    # -- build (traceable) -------------------------------------------------------------

    def build(self, positions, cutoff, F=None, active=None):
        """Neighbors within `cutoff` and a status bitmask (traceable, no gradient).

        **Arguments:**

        - `positions`: `(n, dim)` Cartesian positions in the reference cell.
        - `cutoff`: scalar radius (the model's largest cutoff at the current θ).
        - `F`: deformation applied to displacements (identity by default).
        - `active`: `(n,)` booleans (traced), `False` for phantom atoms: they have no
          neighbors and are nobody's (uncompacted lists still hold them: mask there).

        **Returns:** `(idx, shift, status)`: `idx` is `(n, max_neighbors)` int32, padded
        with `n`; `shift` the `(n, max_neighbors, dim)` lattice shifts of those neighbors'
        images (float, integer-valued; pass them to `Space.displacement`); `status` an
        int32 bitmask (0 = valid).
        """
        if not self.allocated:
            raise RuntimeError("NeighborList.allocate must run before build")
        positions = jax.lax.stop_gradient(jnp.asarray(positions))
        cutoff = jax.lax.stop_gradient(jnp.asarray(cutoff))
        n, dim = positions.shape
        F = jnp.eye(dim, dtype=positions.dtype) if F is None else jax.lax.stop_gradient(F)
        status = self._images_status(cutoff, F)
        if not self.compacted:
            j = jnp.arange(n - 1, dtype=jnp.int32)
            i = jnp.arange(n, dtype=jnp.int32)[:, None]
            idx = j[None, :] + (j[None, :] >= i)
            return idx, jnp.zeros(idx.shape + (dim,), positions.dtype), status.astype(jnp.int32)
        idx, shift, build_status, _ = self._build(positions, cutoff, F, active)
        return idx, shift.astype(positions.dtype), (status | build_status).astype(jnp.int32)

    def _images_status(self, cutoff, F):
        needed = self.space.image_counts(cutoff, F)
        allowed = np.asarray(self.images, dtype=np.int32)
        if self.enabled:
            # Directions with a grid of >= 3 cells are covered by the stencil (and by the
            # cell-width check); only the others rely on the image range.
            allowed = np.where(np.asarray(self.grid) > 1, np.iinfo(np.int32).max, allowed)
        return jnp.where(jnp.any(needed > jnp.asarray(allowed)), PERIODIC_IMAGES, OK)

    def _cell_ids(self, positions):
        frame = self.space.frame
        s = positions @ jnp.asarray(np.linalg.inv(frame))
        coords = []
        for k, cells in enumerate(self.grid):
            if self.space.pbc[k]:
                u = s[:, k] - jnp.floor(s[:, k])
            else:
                u = (s[:, k] - self.lower[k]) / (self.upper[k] - self.lower[k])
            coords.append(jnp.clip(jnp.floor(u * cells).astype(jnp.int32), 0, cells - 1))
        coords = jnp.stack(coords, axis=1)
        strides = np.cumprod((1,) + self.grid[:-1]).astype(np.int32)
        return coords, coords @ jnp.asarray(strides)

    def _candidate_width(self, n: int) -> int:
        """Candidate atoms per atom before the image expansion."""
        if not self.enabled or int(np.prod(self.grid)) == 1:
            return n
        stencil = int(np.prod([3 if cells > 1 else 1 for cells in self.grid]))
        return stencil * self.cell_capacity

    def _candidates(self, positions, active=None):
        """`(n, width)` candidate indices (padded with n) and a cell-overflow flag."""
        n = positions.shape[0]
        if not self.enabled or int(np.prod(self.grid)) == 1:
            return jnp.broadcast_to(jnp.arange(n, dtype=jnp.int32), (n, n)), jnp.array(False)
        n_cells = int(np.prod(self.grid))
        coords, cell_of = self._cell_ids(positions)
        if active is not None:  # phantoms sort past every cell and fill none (the scatter drops them)
            cell_of = jnp.where(active, cell_of, n_cells)
        counts = jnp.zeros(n_cells, jnp.int32).at[cell_of].add(1)
        order = jnp.argsort(cell_of, stable=True).astype(jnp.int32)
        starts = jnp.cumsum(counts) - counts
        slot = jnp.arange(self.cell_capacity, dtype=jnp.int32)
        member = starts[:, None] + slot[None, :]
        buffer = jnp.where(slot[None, :] < counts[:, None], order[jnp.clip(member, 0, n - 1)], n)
        overflow = jnp.max(counts) > self.cell_capacity
        offsets = [(-1, 0, 1) if cells > 1 else (0,) for cells in self.grid]
        stencil = jnp.asarray(list(itertools.product(*offsets)), jnp.int32)  # (K, dim)
        grid = jnp.asarray(self.grid, jnp.int32)
        neighbor = coords[:, None, :] + stencil[None, :, :]  # (n, K, dim)
        periodic = jnp.asarray(self.space.pbc)
        inside = jnp.all(periodic | ((neighbor >= 0) & (neighbor < grid)), axis=-1)
        neighbor = jnp.mod(neighbor, grid)
        strides = jnp.asarray(np.cumprod((1,) + self.grid[:-1]).astype(np.int32))
        flat = neighbor @ strides
        candidates = jnp.where(inside[:, :, None], buffer[flat], n)  # (n, K, capacity)
        return candidates.reshape(n, -1), overflow

    def _hits(self, positions, cutoff, F, active=None):
        """Candidates with their image index, which lie within `cutoff`, per-atom counts,
        cell overflow."""
        n = positions.shape[0]
        atoms, cell_overflow = self._candidates(positions, active)
        offsets = self.offsets()
        n_images = offsets.shape[0]
        # Every candidate atom at every searched image: (n, width * n_images).
        candidates = jnp.repeat(atoms, n_images, axis=1)
        image = jnp.tile(jnp.arange(n_images, dtype=jnp.int32), atoms.shape[1])[None, :]
        image = jnp.broadcast_to(image, candidates.shape)
        shift = jnp.asarray(offsets, positions.dtype)[image]
        safe = jnp.minimum(candidates, n - 1)
        dR = self.space.displacement(positions[:, None, :], positions[safe], F, shift)
        within = jnp.sum(dR**2, axis=-1) < cutoff**2
        self_pair = (candidates == jnp.arange(n)[:, None]) & (image == 0)  # offsets[0] = 0
        mask = within & (candidates < n) & ~self_pair
        if active is not None:
            mask = mask & active[:, None] & active[safe]
        return candidates, image, mask, jnp.sum(mask, axis=1), cell_overflow

    def _build(self, positions, cutoff, F, active=None):
        n = positions.shape[0]
        candidates, image, mask, counts, cell_overflow = self._hits(positions, cutoff, F, active)
        capacity = self.max_neighbors
        # Compact the hits to the front, in candidate order: scatter each hit to its rank
        # (a cumulative sum); hits beyond the capacity go to a dropped extra column.
        # (lax.top_k would also do, but is several times slower on CPU.)
        rank = jnp.cumsum(mask, axis=1) - 1
        target = jnp.where(mask & (rank < capacity), rank, capacity)
        rows = jnp.arange(n)[:, None]
        idx = jnp.full((n, capacity + 1), n, jnp.int32).at[rows, target].set(candidates.astype(jnp.int32))
        img = jnp.zeros((n, capacity + 1), jnp.int32).at[rows, target].set(image)
        idx, img = idx[:, :capacity], img[:, :capacity]
        shift = jnp.asarray(self.offsets(), positions.dtype)[img]
        status = jnp.where(jnp.max(counts) > capacity, NEIGHBOR_OVERFLOW, OK)
        status = status | jnp.where(cell_overflow, CELL_OVERFLOW, OK)
        if self.enabled:
            status = status | jnp.where(self._cells_too_small(cutoff, F), CELL_TOO_SMALL, OK)
        return idx, shift, status.astype(jnp.int32), counts

    def _cells_too_small(self, cutoff, F):
        h = heights(jnp.asarray(self.space.frame) @ F.T)
        too_small = jnp.array(False)
        for k, cells in enumerate(self.grid):
            if cells == 1:
                continue
            span = 1.0 if self.space.pbc[k] else self.upper[k] - self.lower[k]
            too_small = too_small | (span * h[k] / cells < cutoff)
        return too_small
