"""Sparsity of `∂₁F` and `∂₂F`, graph coloring, and recovery of sparse blocks from few JVPs.

For a model made of local interactions (pair potentials, many-body potentials with a
cutoff), the block `∂₁F[i, j]` between atoms `i` and `j` is nonzero only when they
interact (or `i = j`). Two atoms whose Hessian *columns* never overlap can share one
Jacobian-vector product: seeding both at once sums two columns with disjoint rows, and
each entry is read back unambiguously. Columns of atoms `i` and `i'` overlap in row `k`
exactly when both `i` and `i'` are in the closed neighborhood of `k` — so the compatible
groups are the classes of a **distance-2 coloring** of the interaction graph. Each color
times each spatial dimension costs one JVP, all JVPs sharing one `jax.linearize`.

The same coloring compresses `∂₂F` when a parameter is per atom (a diameter per
particle): column `j` of `∂₂F` is nonzero only in the closed neighborhood of atom `j`.

Everything here that decides shapes (the coloring, the number of colors) runs on the host
with NumPy on concrete index arrays; what runs under `jit` is gathers and scatters.
"""

from __future__ import annotations

import dataclasses
import hashlib

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import InputError

__all__ = ["Sparsity", "SparsityArrays", "SparsityShape", "distance2_coloring", "BlockSparse"]


def _as_concrete_pairs(pairs, n_blocks: int) -> np.ndarray:
    if isinstance(pairs, jax.core.Tracer):
        raise InputError(
            "sparsity: the interaction pairs are traced (inside jit); build a "
            "sensitiv.Sparsity outside jit and pass it as sparsity="
        )
    pairs = np.asarray(pairs)
    if pairs.size == 0:
        return np.zeros((0, 2), np.int64)
    if pairs.ndim != 2 or pairs.shape[1] != 2 or not np.issubdtype(pairs.dtype, np.integer):
        raise InputError(
            f"sparsity: interaction pairs must be an integer array of shape (P, 2), got "
            f"{pairs.dtype} array of shape {pairs.shape}"
        )
    if pairs.min() < 0 or pairs.max() >= n_blocks:
        raise InputError(
            f"sparsity: interaction pairs index atoms outside [0, {n_blocks}) "
            f"(min {pairs.min()}, max {pairs.max()})"
        )
    pairs = pairs[pairs[:, 0] != pairs[:, 1]].astype(np.int64)
    lo = np.minimum(pairs[:, 0], pairs[:, 1])
    hi = np.maximum(pairs[:, 0], pairs[:, 1])
    key = np.unique(lo * n_blocks + hi)
    return np.stack([key // n_blocks, key % n_blocks], axis=1)


def _csr(n: int, pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric adjacency (no self loops) in CSR form."""
    src = np.concatenate([pairs[:, 0], pairs[:, 1]])
    dst = np.concatenate([pairs[:, 1], pairs[:, 0]])
    order = np.lexsort((dst, src))
    src, dst = src[order], dst[order]
    indptr = np.zeros(n + 1, np.int64)
    np.add.at(indptr, src + 1, 1)
    return np.cumsum(indptr), dst


def distance2_coloring(n: int, pairs) -> np.ndarray:
    """Greedy distance-2 coloring of a graph: vertices within two hops get different colors.

    Vertices are visited in order of decreasing degree (the largest-first heuristic);
    each gets the smallest color unused in its two-hop neighborhood. For a 2-D packing
    with about six contacts per particle this gives 15–25 colors, independent of `n`.

    **Arguments:**

    - `n`: number of vertices (atoms).
    - `pairs`: `(P, 2)` integer array of edges (interacting atom pairs).

    **Returns:** `(n,)` int array of colors `0 … n_colors − 1`.

    **Example:**

    ```python
    distance2_coloring(4, np.array([[0, 1], [1, 2], [2, 3]]))  # array([2, 0, 1, 2])
    ```
    """
    pairs = _as_concrete_pairs(pairs, n)
    indptr, indices = _csr(n, pairs)
    degree = np.diff(indptr)
    order = np.argsort(-degree, kind="stable")
    colors = np.full(n, -1, np.int64)
    # `mark[c] == v` means color c is forbidden for vertex v: no clearing between vertices.
    mark = np.full(int(degree.max(initial=0)) ** 2 + 2, -1, np.int64)
    indptr_l = indptr.tolist()
    indices_l = indices.tolist()
    colors_l = colors.tolist()
    mark_l = mark.tolist()
    for v in order.tolist():
        for u in indices_l[indptr_l[v] : indptr_l[v + 1]]:
            cu = colors_l[u]
            if cu >= 0:
                mark_l[cu] = v
            for w in indices_l[indptr_l[u] : indptr_l[u + 1]]:
                cw = colors_l[w]
                if cw >= 0:
                    mark_l[cw] = v
        c = 0
        while mark_l[c] == v:
            c += 1
        colors_l[v] = c
    return np.asarray(colors_l, np.int64)


@dataclasses.dataclass(frozen=True, eq=False)
class Sparsity:
    """The block sparsity of `∂₁F` for a system of `n_blocks` atoms with `block_size` coordinates each.

    The flattened solution is taken as atom-major: coordinate `a` of atom `i` is entry
    `i * block_size + a` (what `x.reshape(-1)` gives for positions of shape
    `(n_atoms, n_spatial)`). Built once on the host; reuse it for many Jacobians of the
    same interaction graph.

    **Arguments:**

    - `n_blocks`: number of atoms.
    - `block_size`: coordinates per atom (the spatial dimension).
    - `pairs`: `(P, 2)` unique atom pairs `i < j` that may couple.
    - `colors`: `(n_blocks,)` distance-2 coloring of the pair graph.

    Use the constructors `Sparsity.from_pairs` and `Sparsity.from_pattern`.

    **Example:**

    ```python
    sparsity = Sparsity.from_pairs(system.interactions(x, params), n_atoms, 2)
    result = sensitiv.jacobian(F, x, params, sparsity=sparsity)
    result.info.n_colors          # JVPs per spatial dimension instead of n_atoms
    ```
    """

    n_blocks: int
    block_size: int
    pairs: np.ndarray
    colors: np.ndarray

    def __post_init__(self):
        # Equal content means equal compiled programs: hash the arrays once.
        digest = hashlib.blake2b(digest_size=16)
        digest.update(np.ascontiguousarray(self.pairs, np.int64).tobytes())
        digest.update(np.ascontiguousarray(self.colors, np.int64).tobytes())
        object.__setattr__(self, "_key", (self.n_blocks, self.block_size, digest.hexdigest()))

    def __hash__(self) -> int:
        return hash(self._key)

    def __eq__(self, other) -> bool:
        return isinstance(other, Sparsity) and self._key == other._key

    @classmethod
    def from_pairs(cls, pairs, n_atoms: int, n_spatial: int) -> "Sparsity":
        """Sparsity from interacting atom pairs (what `System.interactions` returns).

        **Arguments:**

        - `pairs`: `(P, 2)` integer atom indices; order and duplicates do not matter.
          They must include every pair whose Hessian block can be nonzero — for
          many-body potentials, also atoms coupled through a common neighbor.
        - `n_atoms`, `n_spatial`: the shape of the positions.

        **Returns:** a `Sparsity`.

        **Example:**

        ```python
        sparsity = Sparsity.from_pairs(np.array([[0, 1], [1, 2]]), n_atoms=3, n_spatial=2)
        sparsity.n_colors  # 3
        ```
        """
        pairs = _as_concrete_pairs(pairs, int(n_atoms))
        colors = distance2_coloring(int(n_atoms), pairs)
        return cls(int(n_atoms), int(n_spatial), pairs, colors)

    @classmethod
    def from_pattern(cls, pattern) -> "Sparsity":
        """Sparsity from a boolean `(d, d)` pattern on the flattened coordinates (blocks of size 1)."""
        pattern = np.asarray(pattern)
        if pattern.ndim != 2 or pattern.shape[0] != pattern.shape[1]:
            raise InputError(f"sparsity: pattern must be a square (d, d) array, got {pattern.shape}")
        pattern = pattern.astype(bool) | pattern.T.astype(bool)
        rows, cols = np.nonzero(np.triu(pattern, 1))
        return cls.from_pairs(np.stack([rows, cols], 1), pattern.shape[0], 1)

    @classmethod
    def from_positions(cls, positions, cutoff: float, box=None) -> "Sparsity":
        """Sparsity of a pair model with a cutoff: pairs closer than `cutoff` (minimum image in `box`).

        Host-side NumPy, O(n²) memory: convenient for small systems and tests; large
        systems pass pairs from a neighbor list.
        """
        x = np.asarray(positions, np.float64)
        n, dim = x.shape
        pairs = []
        for i in range(n - 1):
            dr = x[i + 1 :] - x[i]
            if box is not None:
                side = np.broadcast_to(np.asarray(box, np.float64), (dim,))
                dr = dr - side * np.round(dr / side)
            close = np.nonzero(np.sum(dr * dr, axis=1) < cutoff**2)[0]
            pairs.append(np.stack([np.full(close.size, i), close + i + 1], 1))
        return cls.from_pairs(np.concatenate(pairs) if pairs else np.zeros((0, 2), int), n, dim)

    @property
    def n_colors(self) -> int:
        return int(self.colors.max(initial=-1)) + 1

    @property
    def size(self) -> int:
        """Length of the flattened solution this sparsity describes."""
        return self.n_blocks * self.block_size

    def block_pattern(self) -> tuple[np.ndarray, np.ndarray]:
        """Row and column atom of every structurally nonzero block, diagonal first."""
        diag = np.arange(self.n_blocks)
        rows = np.concatenate([diag, self.pairs[:, 0], self.pairs[:, 1]])
        cols = np.concatenate([diag, self.pairs[:, 1], self.pairs[:, 0]])
        return rows, cols

    def row_slots(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The blocks of `block_pattern()` grouped by block row, padded to the widest row.

        Returns `(slots, slot_cols, slots_t)`, each `(n_blocks, width)`: `slots[i, s]` is the
        index in `block_pattern()` of row `i`'s `s`-th block (`P`, one past the end, for
        padding), `slot_cols[i, s]` its block column, and `slots_t[i, s]` the index of the
        mirrored block `(slot_cols[i, s], i)` (the pattern is symmetric). Products then
        gather instead of scatter, which is several times faster on CPUs and avoids atomics on
        GPUs. Cached: computed once per `Sparsity`.
        """
        cached = self.__dict__.get("_row_slots")
        if cached is not None:
            return cached
        rows, cols = self.block_pattern()
        n, count = self.n_blocks, rows.size
        order = np.lexsort((cols, rows))
        r_sorted = rows[order]
        starts = np.searchsorted(r_sorted, np.arange(n))
        pos = np.arange(count) - starts[r_sorted]
        width = int(pos.max(initial=0)) + 1
        slots = np.full((n, width), count, np.int64)
        slot_cols = np.tile(np.arange(n)[:, None], (1, width))  # padding points at the diagonal
        slots[r_sorted, pos] = order
        slot_cols[r_sorted, pos] = cols[order]
        key = rows.astype(np.int64) * n + cols
        by_key = np.argsort(key, kind="stable")
        mirrored = slot_cols.astype(np.int64) * n + np.arange(n)[:, None]
        found = by_key[np.clip(np.searchsorted(key[by_key], mirrored), 0, count - 1)]
        slots_t = np.where(slots < count, found, count)
        cached = (slots, slot_cols, slots_t)
        object.__setattr__(self, "_row_slots", cached)
        return cached

    def __repr__(self) -> str:
        return (
            f"Sparsity(n_blocks={self.n_blocks}, block_size={self.block_size}, "
            f"pairs={len(self.pairs)}, n_colors={self.n_colors})"
        )


# -- sparse blocks under jit -----------------------------------------------------------------


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class BlockSparse:
    """A square block-sparse matrix in block-COO form; a pytree, usable under `jit`.

    `blocks[p]` is the `(bs, bs)` block at block-row `rows[p]`, block-column `cols[p]`.
    """

    rows: jax.Array
    cols: jax.Array
    blocks: jax.Array
    n_blocks: int = dataclasses.field(metadata=dict(static=True))
    slots: jax.Array | None = None
    slot_cols: jax.Array | None = None
    slots_t: jax.Array | None = None

    @property
    def block_size(self) -> int:
        return self.blocks.shape[-1]

    def _row_blocks(self, transpose: bool):
        """`(n_blocks, width, bs, bs)` blocks of each block row (of `Aᵀ` with `transpose`)."""
        padded = jnp.concatenate([self.blocks, jnp.zeros((1,) + self.blocks.shape[1:], self.blocks.dtype)])
        if transpose:
            return jnp.swapaxes(padded[self.slots_t], 2, 3)
        return padded[self.slots]

    def matmat(self, v: jax.Array, transpose: bool = False) -> jax.Array:
        """`A V` (`Aᵀ V` with `transpose`) for `V` of shape `(d, m)`.

        With row slots (see `Sparsity.row_slots`): a gather of `V`'s rows and one
        contraction, no scatter; otherwise the block-COO form, column by column.
        """
        n, bs = self.n_blocks, self.block_size
        if self.slots is None:
            single = self._rmatvec_coo if transpose else self._matvec_coo
            return jax.vmap(single, in_axes=1, out_axes=1)(v)
        m = v.shape[1]
        gathered = v.reshape(n, bs, m)[self.slot_cols]  # (n, width, bs, m)
        return jnp.einsum("nsab,nsbm->nam", self._row_blocks(transpose), gathered).reshape(n * bs, m)

    def matvec(self, v: jax.Array) -> jax.Array:
        """`A v` for a flat `v` of length `n_blocks * block_size`."""
        return self.matmat(v[:, None])[:, 0] if self.slots is not None else self._matvec_coo(v)

    def rmatvec(self, v: jax.Array) -> jax.Array:
        """`Aᵀ v`."""
        return self.matmat(v[:, None], True)[:, 0] if self.slots is not None else self._rmatvec_coo(v)

    def _matvec_coo(self, v):
        vb = v.reshape(self.n_blocks, self.block_size)
        contrib = jnp.einsum("pab,pb->pa", self.blocks, vb[self.cols])
        return jax.ops.segment_sum(contrib, self.rows, self.n_blocks).reshape(-1)

    def _rmatvec_coo(self, v):
        vb = v.reshape(self.n_blocks, self.block_size)
        contrib = jnp.einsum("pab,pa->pb", self.blocks, vb[self.rows])
        return jax.ops.segment_sum(contrib, self.cols, self.n_blocks).reshape(-1)

    def todense(self) -> jax.Array:
        n, bs = self.n_blocks, self.block_size
        # scattered straight into the (atom, coordinate, atom, coordinate) layout, so that the
        # reshape to (d, d) is free (a transpose afterwards costs more than the scatter)
        dense = jnp.zeros((n, bs, n, bs), self.blocks.dtype)
        dense = dense.at[self.rows, :, self.cols, :].add(self.blocks)
        return dense.reshape(n * bs, n * bs)

    def diagonal_blocks(self) -> jax.Array:
        """`(n_blocks, bs, bs)`: the diagonal blocks (zero where none is stored)."""
        n, bs = self.n_blocks, self.block_size
        on_diag = (self.rows == self.cols)[:, None, None]
        return jax.ops.segment_sum(jnp.where(on_diag, self.blocks, 0), self.rows, n)


def _bucket(count: int, step: int) -> int:
    """`count` rounded up to a capacity: a multiple of `step`, and past `8·step` within 1/8
    (about eight capacities per doubling), so that structures that differ a little share it."""
    count = max(int(count), 1)
    if count > 8 * step:
        step = step << max(0, count.bit_length() - (8 * step).bit_length() + 1)
        step = max(step // 2, 1)
    return -(-count // step) * step


@dataclasses.dataclass(frozen=True)
class SparsityShape:
    """The static part of a `Sparsity` in compiled programs: its shapes, at capacities.

    **Arguments:**

    - `n_blocks`, `block_size`: atoms and coordinates per atom.
    - `n_colors`: colors seeded (the coloring's own, rounded up; the extra seeds are zero).
    - `n_entries`: stored blocks (the diagonal, both triangles of the pairs, padding).
    - `width`: blocks per block row in the row-slot layout.
    """

    n_blocks: int
    block_size: int
    n_colors: int
    n_entries: int
    width: int


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class SparsityArrays:
    """A `Sparsity` as arrays of static capacity: traced by compiled programs, so that every
    interaction graph of the same `shape` (the frames of a trajectory, whose neighbor counts
    vary) runs one compiled program. Padded blocks (`valid` false) are recovered as zeros.
    """

    colors: jax.Array  # (n_blocks,)
    rows: jax.Array  # (n_entries,)
    cols: jax.Array
    valid: jax.Array
    slots: jax.Array  # (n_blocks, width), padding → n_entries (the zero block appended)
    slot_cols: jax.Array
    slots_t: jax.Array
    shape: SparsityShape = dataclasses.field(metadata=dict(static=True))

    @classmethod
    def of(cls, sparsity: Sparsity, padded: bool = True, n_active: int | None = None) -> "SparsityArrays":
        """`sparsity`'s arrays padded to bucketed capacities (`padded=False`: exact sizes).
        `n_active`: the atoms that are no padding (phantoms have no pairs): the capacity of
        stored blocks is sized as if every atom had the active ones' share, so that the
        sizes of one atom-count bucket share it too."""
        n, bs = sparsity.n_blocks, sparsity.block_size
        rows, cols = sparsity.block_pattern()
        slots, slot_cols, slots_t = sparsity.row_slots()
        count, width = rows.size, slots.shape[1]
        n_colors = sparsity.n_colors
        if padded:
            share = count if not n_active else -(-count * n // int(n_active))
            count_cap, width, n_colors = _bucket(share, 64), _bucket(width, 4), _bucket(n_colors, 4)
        else:
            count_cap = count
        pad = count_cap - count
        valid = np.concatenate([np.ones(count, bool), np.zeros(pad, bool)])
        rows = np.concatenate([rows, np.zeros(pad, rows.dtype)])
        cols = np.concatenate([cols, np.zeros(pad, cols.dtype)])
        extra = width - slots.shape[1]
        slots = np.pad(np.where(slots == count, count_cap, slots), ((0, 0), (0, extra)), constant_values=count_cap)
        slots_t = np.pad(np.where(slots_t == count, count_cap, slots_t), ((0, 0), (0, extra)),
                         constant_values=count_cap)
        slot_cols = np.concatenate([slot_cols, np.tile(np.arange(n)[:, None], (1, extra))], axis=1)
        shape = SparsityShape(n, bs, n_colors, count_cap, width)
        as_int = lambda a: jnp.asarray(a, jnp.int32)
        return cls(as_int(sparsity.colors), as_int(rows), as_int(cols), jnp.asarray(valid), as_int(slots),
                   as_int(slot_cols), as_int(slots_t), shape)


def color_seeds(sparsity: Sparsity | SparsityArrays, dtype) -> jax.Array:
    """`(n_colors * bs, d)` seed directions: seed `(c, a)` moves coordinate `a` of every atom of color `c`."""
    arrays = sparsity if isinstance(sparsity, SparsityArrays) else SparsityArrays.of(sparsity, padded=False)
    n, bs, nc = arrays.shape.n_blocks, arrays.shape.block_size, arrays.shape.n_colors
    onehot = (arrays.colors[None, :] == jnp.arange(nc)[:, None]).astype(dtype)
    # seed[(c, a), (i, b)] = [color(i) == c] * [a == b]
    return jnp.einsum("ci,ab->caib", onehot, jnp.eye(bs, dtype=dtype)).reshape(nc * bs, n * bs)


def recover_blocks(sparsity: Sparsity | SparsityArrays, products: jax.Array) -> BlockSparse:
    """Read the nonzero blocks of `A` back from `products[(c, a)] = A @ seed[(c, a)]`.

    `A[(k, ·), (i, a)]` is row block `k` of the product of seed `(color(i), a)`: no other
    atom of that color touches row `k` (distance-2 coloring).
    """
    arrays = sparsity if isinstance(sparsity, SparsityArrays) else SparsityArrays.of(sparsity, padded=False)
    n, bs, nc = arrays.shape.n_blocks, arrays.shape.block_size, arrays.shape.n_colors
    y = products.reshape(nc, bs, n, bs)  # [c, a, k, b] = A[(k, b), (color c, a)]
    gathered = y[arrays.colors[arrays.cols], :, arrays.rows, :]  # [p, a, b]
    blocks = jnp.swapaxes(gathered, 1, 2)  # [p, b, a] = A[(k, b), (i, a)]
    blocks = jnp.where(arrays.valid[:, None, None], blocks, 0)
    return BlockSparse(arrays.rows, arrays.cols, blocks, n, arrays.slots, arrays.slot_cols, arrays.slots_t)


def block_jacobi(matrix: BlockSparse, floor_rtol: float | None = None):
    """Block-Jacobi preconditioner `v ↦ D⁻¹ v` from the diagonal blocks, SPD by construction.

    Each `bs × bs` diagonal block is replaced by `V |Λ|⁻¹ Vᵀ` from its eigendecomposition,
    with eigenvalues below `floor_rtol · max|Λ|` (an atom without contacts, a rattler) left
    scaled by the stiffest block instead, so that the preconditioner stays symmetric
    positive definite even at saddle points (MINRES needs an SPD preconditioner).
    """
    diag = matrix.diagonal_blocks()
    diag = 0.5 * (diag + jnp.swapaxes(diag, 1, 2))
    w, v = jnp.linalg.eigh(diag)
    absw = jnp.abs(w)
    if floor_rtol is None:
        floor_rtol = float(jnp.finfo(diag.dtype).eps) ** 0.5
    top = jnp.max(absw)
    floor = floor_rtol * top
    # An empty block (an atom without contacts) gets the scale of the stiffest block.
    safe_top = jnp.where(top > 0, top, 1.0)
    inv = jnp.where(absw > floor, 1.0 / jnp.where(absw > floor, absw, 1.0), 1.0 / safe_top)
    inv_blocks = jnp.einsum("nij,nj,nkj->nik", v, inv, v)
    n, bs = matrix.n_blocks, matrix.block_size

    def apply(r):
        rb = r.reshape(r.shape[:-1] + (n, bs))
        return jnp.einsum("nij,...nj->...ni", inv_blocks, rb).reshape(r.shape)

    return apply
