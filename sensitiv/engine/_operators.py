"""The flattened problem: `F` on flat vectors, its one-time linearizations, and assembly of `∂₁F`, `∂₂F`.

All solves work on flat vectors: `x ∈ ℝᵈ` (the solution pytree raveled leaf by leaf) and
`θ ∈ ℝⁿ` (the parameters raveled). `K = ∂₁F` and `B = ∂₂F` at `(x̂, θ)` are linearized
once with `jax.linearize`; every product afterwards evaluates the stored linear function
(no re-tracing, no re-evaluation of the nonlinear parts), batched with `vmap`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import InputError
from ._structure import BlockSparse, Sparsity, color_seeds, recover_blocks

__all__ = ["Layout", "ParamPlan", "Problem", "make_param_plan", "flat_problem", "unflatten", "split_callable",
           "merge_callable"]


@dataclasses.dataclass(frozen=True)
class Layout:
    """How a pytree of arrays is raveled to a flat vector (hashable, static under `jit`)."""

    treedef: Any
    shapes: tuple[tuple[int, ...], ...]
    dtypes: tuple[Any, ...]

    @classmethod
    def of(cls, tree) -> "Layout":
        leaves, treedef = jax.tree.flatten(tree)
        return cls(
            treedef,
            tuple(tuple(int(s) for s in jnp.shape(leaf)) for leaf in leaves),
            tuple(jnp.result_type(leaf) for leaf in leaves),
        )

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(math.prod(s) for s in self.shapes)

    @property
    def size(self) -> int:
        return sum(self.sizes)

    @property
    def offsets(self) -> tuple[int, ...]:
        return tuple(int(o) for o in np.cumsum((0,) + self.sizes)[:-1])

    def ravel(self, tree, dtype) -> jax.Array:
        leaves = jax.tree.leaves(tree)
        if not leaves:
            return jnp.zeros((0,), dtype)
        return jnp.concatenate([jnp.ravel(jnp.asarray(leaf, dtype)) for leaf in leaves])

    def unravel(self, flat: jax.Array):
        leaves = []
        for offset, size, shape, dtype in zip(self.offsets, self.sizes, self.shapes, self.dtypes):
            leaves.append(flat[offset : offset + size].reshape(shape).astype(dtype))
        return jax.tree.unflatten(self.treedef, leaves)


@dataclasses.dataclass(frozen=True, eq=False)
class ParamPlan:
    """How the columns of `∂₂F` are probed: one JVP per plain parameter entry, one per
    (color, component) for per-atom parameters compressed by the coloring.

    `seeds` is `(m, n)`; `plain` pairs seed rows with parameter columns read whole;
    `(c_seed, c_row, c_col)` reads entry `B[c_row, c_col] = (B seeds[c_seed])[c_row]`.
    Hashed by identity: built once per (layout, sparsity, per-atom choice) and cached.
    """

    n: int
    seeds: np.ndarray
    plain_seed: np.ndarray
    plain_col: np.ndarray
    c_seed: np.ndarray
    c_row: np.ndarray
    c_col: np.ndarray

    @property
    def n_products(self) -> int:
        return int(self.seeds.shape[0])

    @property
    def compressed(self) -> bool:
        return self.c_seed.size > 0


_PLAN_CACHE: dict = {}


def make_param_plan(layout: Layout, sparsity: Sparsity | None, per_atom) -> ParamPlan:
    """Plan the probing of `∂₂F`; `per_atom` is a bool or a sequence of bools, one per parameter leaf."""
    n_leaves = len(layout.shapes)
    if isinstance(per_atom, (bool, np.bool_)) or per_atom is None:
        flags = [bool(per_atom)] * n_leaves
    else:
        flags = [bool(f) for f in per_atom]
        if len(flags) != n_leaves:
            raise InputError(
                f"per_atom_params: expected {n_leaves} flags (one per parameter leaf), got {len(flags)}"
            )
    # the sparsity matters only to per-atom leaves: plain plans are shared by every structure
    key = (layout, sparsity if any(flags) else None, tuple(flags))
    cached = _PLAN_CACHE.get(key)
    if cached is not None:
        return cached
    n = layout.size
    seed_rows: list[np.ndarray] = []
    plain_seed, plain_col = [], []
    c_seed, c_row, c_col = [], [], []
    count = 0
    for flag, shape, offset, size in zip(flags, layout.shapes, layout.offsets, layout.sizes):
        compress = flag and sparsity is not None and len(shape) >= 1 and shape[0] == sparsity.n_blocks
        if flag and sparsity is not None and not compress and size > 0:
            raise InputError(
                f"per_atom_params: a parameter leaf of shape {shape} is marked per atom but its "
                f"leading axis is not the number of atoms ({sparsity.n_blocks})"
            )
        if not compress:
            for i in range(size):
                seed = np.zeros(n)
                seed[offset + i] = 1.0
                seed_rows.append(seed)
                plain_seed.append(count)
                plain_col.append(offset + i)
                count += 1
            continue
        n_atoms, bs, nc = sparsity.n_blocks, sparsity.block_size, sparsity.n_colors
        q = size // n_atoms
        # seed (c, r): component r of every atom of color c
        block = np.zeros((nc, q, n))
        atoms = np.arange(n_atoms)
        for r in range(q):
            block[sparsity.colors, r, offset + atoms * q + r] = 1.0
        seed_rows.extend(block.reshape(nc * q, n))
        rows_k, cols_j = sparsity.block_pattern()  # entry B[(k, b), (j, r)] for every pattern pair
        kk = np.repeat(rows_k, bs * q)
        jj = np.repeat(cols_j, bs * q)
        bb = np.tile(np.repeat(np.arange(bs), q), rows_k.size)
        rr = np.tile(np.arange(q), rows_k.size * bs)
        c_seed.append(count + sparsity.colors[jj] * q + rr)
        c_row.append(kk * bs + bb)
        c_col.append(offset + jj * q + rr)
        count += nc * q
    cat = lambda parts: np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)
    plan = ParamPlan(
        n=n,
        seeds=np.stack(seed_rows) if seed_rows else np.zeros((0, n)),
        plain_seed=np.asarray(plain_seed, np.int64),
        plain_col=np.asarray(plain_col, np.int64),
        c_seed=cat(c_seed),
        c_row=cat(c_row),
        c_col=cat(c_col),
    )
    if len(_PLAN_CACHE) > 64:
        _PLAN_CACHE.clear()
    _PLAN_CACHE[key] = plan
    return plan


class Problem:
    """`F` at `(x̂, θ)` on flat vectors, linearized once in each argument (traced values)."""

    def __init__(self, optimality_fun, x, theta, args, x_layout: Layout, theta_layout: Layout):
        self.x = x
        self.theta = theta
        self.dtype = x.dtype
        self.d = x.shape[0]
        self.n = theta.shape[0]
        self._fun = optimality_fun
        self.args = args
        self.x_layout = x_layout
        self.theta_layout = theta_layout
        self.residual, self.k_lin = jax.linearize(lambda v: self.flat(v, theta), x)
        self._b_lin = None

    def flat(self, x, theta):
        out = self._fun(self.x_layout.unravel(x), self.theta_layout.unravel(theta), *self.args)
        return self.x_layout.ravel(out, self.dtype)

    @property
    def b_lin(self):
        if self._b_lin is None:
            _, self._b_lin = jax.linearize(lambda t: self.flat(self.x, t), self.theta)
        return self._b_lin

    # -- products ----------------------------------------------------------------------

    def k_matvec(self, v):
        """`K v` for `v` of shape `(d,)` or a batch `(m, d)`."""
        return jax.vmap(self.k_lin)(v) if v.ndim == 2 else self.k_lin(v)

    def k_rmatvec(self, w):
        """`Kᵀ w` (transposing the stored linearization)."""
        transpose = jax.linear_transpose(self.k_lin, self.x)
        single = lambda u: transpose(u)[0]
        return jax.vmap(single)(w) if w.ndim == 2 else single(w)

    def b_matvec(self, u):
        """`B u` for `u` of shape `(n,)` or `(m, n)`."""
        return jax.vmap(self.b_lin)(u) if u.ndim == 2 else self.b_lin(u)

    def b_rmatvec(self, w):
        """`Bᵀ w` by reverse mode through `F` in `θ`."""
        transpose = jax.linear_transpose(self.b_lin, self.theta)
        single = lambda u: transpose(u)[0]
        return jax.vmap(single)(w) if w.ndim == 2 else single(w)

    # -- assembly ----------------------------------------------------------------------

    def k_dense(self):
        """`K` as a dense `(d, d)` matrix: `d` JVPs in one batch."""
        eye = jnp.eye(self.d, dtype=self.dtype)
        return jax.vmap(self.k_lin)(eye).T

    def k_sparse(self, sparsity: Sparsity, extra=None):
        """`K` recovered from `n_colors · block_size` JVPs of the coloring.

        `extra` `(e, d)` directions share the batch; with them, returns `(K, K @ extraᵀ rows)`.
        """
        seeds = color_seeds(sparsity, self.dtype)
        m = seeds.shape[0]
        if extra is not None:
            seeds = jnp.concatenate([seeds, extra.astype(self.dtype)])
        products = jax.vmap(self.k_lin)(seeds)
        k = recover_blocks(sparsity, products[:m])
        return k if extra is None else (k, products[m:])

    def b_dense_forward(self, plan: ParamPlan, extra=None):
        """`B` as a dense `(d, n)` matrix from `plan.n_products` JVPs.

        `extra` `(e, n)` directions are pushed through the same (single) batch of JVPs;
        with them, returns `(B, B @ extraᵀ rows)`.
        """
        seeds = jnp.asarray(plan.seeds, self.dtype)
        if extra is not None:
            seeds = jnp.concatenate([seeds, extra.astype(self.dtype)])
        if seeds.shape[0] == 0:
            products = jnp.zeros((0, self.d), self.dtype)
        else:
            products = jax.vmap(self.b_lin)(seeds)  # (m, d)
        b = jnp.zeros((self.d, self.n), self.dtype)
        if plan.plain_seed.size:
            b = b.at[:, jnp.asarray(plan.plain_col)].set(products[jnp.asarray(plan.plain_seed)].T)
        if plan.c_seed.size:
            rows = jnp.asarray(plan.c_row)
            b = b.at[rows, jnp.asarray(plan.c_col)].set(products[jnp.asarray(plan.c_seed), rows])
        if extra is None:
            return b
        return b, products[plan.n_products :]


def _is_array(leaf) -> bool:
    return isinstance(leaf, (jax.Array, np.ndarray, np.generic))


def split_callable(fun):
    """`(static, arrays)`: a callable pytree's array leaves apart from the rest.

    Compiled programs take `static` (hashable: the tree structure and the non-array
    leaves) as a static argument and `arrays` as traced ones, so that a callable carrying
    values (`jax.tree_util.Partial`, a registered class) is compiled once for all values
    of the same shapes; a plain function is all static.
    """
    leaves, treedef = jax.tree.flatten(fun)
    mask = tuple(_is_array(leaf) for leaf in leaves)
    others = tuple(leaf for leaf, is_array in zip(leaves, mask) if not is_array)
    arrays = tuple(leaf for leaf, is_array in zip(leaves, mask) if is_array)
    return (treedef, mask, others), arrays


def merge_callable(static, arrays):
    """The inverse of `split_callable`."""
    treedef, mask, others = static
    arrays, others = iter(arrays), iter(others)
    return jax.tree.unflatten(treedef, [next(arrays) if is_array else next(others) for is_array in mask])


def flat_problem(fun, x_layout: Layout, theta_layout: Layout, sol, params, args) -> Problem:
    """`F` linearized at the raveled `(sol, params)` (both in the solution's dtype); called
    inside compiled programs, where raveling costs nothing (on the host every reshape and
    slice is a dispatch of its own)."""
    dtype = jnp.result_type(*jax.tree.leaves(sol))
    x, theta = x_layout.ravel(sol, dtype), theta_layout.ravel(params, dtype)
    return Problem(fun, x, theta, args, x_layout, theta_layout)


def unflatten(mat, out_layout: Layout, in_layout: Layout):
    """`(d_out, n_in)` flat matrix -> nested pytree as `jax.jacobian` gives it."""
    outer = []
    for o_off, o_size, o_shape, o_dtype in zip(
        out_layout.offsets, out_layout.sizes, out_layout.shapes, out_layout.dtypes
    ):
        inner = []
        for i_off, i_size, i_shape in zip(in_layout.offsets, in_layout.sizes, in_layout.shapes):
            block = mat[o_off : o_off + o_size, i_off : i_off + i_size]
            inner.append(block.reshape(o_shape + i_shape).astype(o_dtype))
        outer.append(jax.tree.unflatten(in_layout.treedef, inner))
    return jax.tree.unflatten(out_layout.treedef, outer)
