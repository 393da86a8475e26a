"""Columns across devices: `shard_map` over a one-axis mesh of every device.

The Jacobian's columns (right-hand sides of the linear solves) are independent once the
operator is known. Each device receives a block of them; the operator (a factorization,
a recovered sparse matrix, a linearization) is computed identically on every device
(it is cheap next to the solves it serves) and closed over as a replicated value.

After `jax.distributed.initialize()`, `jax.devices()` lists the devices of every host;
the mesh spans them all, each host's inputs are identical (replicated), and the sharded
output is gathered back to every host (`gather_to_host`).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, PartitionSpec

from ..errors import InputError

__all__ = ["column_mesh", "map_rows", "gather_to_host"]

AXIS = "columns"


def column_mesh(shard) -> Mesh | None:
    """The mesh to shard columns over: `"auto"` (every device when there are several), `False`/`None`, or a `Mesh`."""
    if shard is None or shard is False:
        return None
    if isinstance(shard, Mesh):
        return shard
    if shard is True or shard == "auto":
        devices = jax.devices()
        if len(devices) < 2:
            return None
        return Mesh(np.array(devices), (AXIS,))
    raise InputError(f"shard: expected 'auto', True, False or a jax.sharding.Mesh, got {shard!r}")


def map_rows(fn: Callable, rows, mesh: Mesh | None):
    """Apply `fn(rows) -> pytree of (m_block, ...) arrays` with the rows sharded over `mesh`.

    `rows` is an array or a pytree of arrays sharing their leading (row) axis. Rows are
    padded with zeros to a multiple of the device count (zero right-hand sides are solved
    trivially) and the padding is dropped from the result.
    """
    if mesh is None:
        return fn(rows)
    axes = tuple(mesh.axis_names)
    n_dev = int(np.prod([mesh.shape[a] for a in axes]))
    m = jax.tree.leaves(rows)[0].shape[0]
    padded_m = -(-m // n_dev) * n_dev

    def pad(a):
        if padded_m == m:
            return a
        return jnp.concatenate([a, jnp.zeros((padded_m - m,) + a.shape[1:], a.dtype)])

    rows = jax.tree.map(pad, rows)
    spec = PartitionSpec(axes if len(axes) > 1 else axes[0])
    block = jax.tree.map(lambda a: jax.ShapeDtypeStruct((padded_m // n_dev,) + a.shape[1:], a.dtype), rows)
    out_specs = jax.tree.map(lambda _: spec, jax.eval_shape(fn, block))
    in_specs = jax.tree.map(lambda _: spec, rows)
    sharded = jax.shard_map(fn, mesh=mesh, in_specs=(in_specs,), out_specs=out_specs, check_vma=False)
    out = sharded(rows)
    return jax.tree.map(lambda a: a[:m], out)


def gather_to_host(tree):
    """With several processes, gather every process's shards so each host holds the whole result."""
    if jax.process_count() == 1:
        return tree
    from jax.experimental import multihost_utils

    return jax.tree.map(
        lambda a: multihost_utils.process_allgather(a, tiled=True) if isinstance(a, jax.Array) else a,
        tree,
    )
