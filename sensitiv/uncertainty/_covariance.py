"""`ParameterCovariance`: the second moments of θ, on the flattened parameter vector.

Every input form (standard deviations, a covariance or correlation matrix, samples) ends as
one symmetric positive semi-definite `n × n` matrix over θ flattened in `jax.tree` order,
with one label per entry. The checks run on the host, before any expensive work, and name
the argument and the fix.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import numpy as np

from ..errors import InputError
from ._psd import covariance_problem

__all__ = ["ParameterCovariance", "parameter_labels"]


def _key_name(key) -> str:
    for attr in ("key", "name", "idx"):
        if hasattr(key, attr):
            return str(getattr(key, attr))
    return str(key)


def parameter_labels(params: Any) -> tuple[str, ...]:
    """One label per entry of θ flattened in `jax.tree` order.

    Scalars are named by their pytree key (`"sigma"`), array entries by key and index
    (`"strain[0,1]"`), the convention of `sensitiv analyze` outputs; a bare array is `"θ"`.

    **Arguments:**

    - `params`: the parameter pytree (arrays or anything with a `.shape`).

    **Returns:** a tuple of strings, one per scalar entry.

    **Example:**

    ```python
    parameter_labels({"epsilon": 1.0, "strain": jnp.zeros((3, 3))})
    # ('epsilon', 'strain[0,0]', 'strain[0,1]', ..., 'strain[2,2]')
    ```
    """
    out = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        name = ".".join(_key_name(k) for k in path) or "θ"
        shape = np.shape(leaf)
        if not shape:
            out.append(name)
            continue
        for index in np.ndindex(*shape):
            out.append(f"{name}[{','.join(map(str, index))}]")
    return tuple(out)


def _as_matrix(value, what) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError) as err:
        raise InputError(f"{what}: expected numbers, got {type(value).__name__} ({err})") from None
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{what}: contains NaN or infinite entries")
    return arr


def _check_psd(matrix: np.ndarray, labels, what: str, rtol: float) -> np.ndarray:
    problem, sym = covariance_problem(matrix, labels, rtol)
    if problem:
        raise InputError(f"{what}: {problem}")
    return sym


def _shapes(tree) -> tuple[tuple[int, ...], ...]:
    return tuple(tuple(int(s) for s in np.shape(leaf)) for leaf in jax.tree.leaves(tree))


@dataclasses.dataclass(frozen=True)
class ParameterCovariance:
    """The covariance of θ: what linear propagation needs to know about the parameters.

    Build it with `from_std`, `from_correlation`, `from_matrix` or `from_samples`; the
    fields below are what those constructors fill in.

    **Arguments:**

    - `matrix`: the `n × n` symmetric positive semi-definite covariance over θ flattened in
      `jax.tree` order (units: the product of the two parameters' units).
    - `labels`: one label per entry (`parameter_labels`).
    - `treedef`, `shapes`: the structure of θ (to read Jacobians shaped like `jax.jacobian`'s).
    - `mean`: the mean of θ when known (samples), flattened; else `None`.
    - `n_samples`: how many samples the covariance was estimated from (`None` when given).
    - `units`: one unit string per entry, or `None`.

    **Example:**

    ```python
    params = {"epsilon": 2.1683, "sigma": 2.0951}
    cov = ParameterCovariance.from_std({"epsilon": 0.02, "sigma": 0.01})
    cov.std, cov.labels          # array([0.02, 0.01]), ('epsilon', 'sigma')
    ```
    """

    matrix: np.ndarray
    labels: tuple[str, ...]
    treedef: Any
    shapes: tuple[tuple[int, ...], ...]
    mean: np.ndarray | None = None
    n_samples: int | None = None
    units: tuple[str, ...] | None = None

    # -- constructors ---------------------------------------------------------------------

    @classmethod
    def from_std(cls, std: Any, *, labels=None, units=None) -> ParameterCovariance:
        """Independent parameters with the given standard deviations.

        **Arguments:**

        - `std`: a pytree shaped like θ (or a flat array for a flat θ), every entry ≥ 0.
        - `labels`: labels overriding `parameter_labels(std)`.
        - `units`: one unit string per entry.

        **Returns:** a `ParameterCovariance` with a diagonal matrix.

        **Example:**

        ```python
        cov = ParameterCovariance.from_std({"epsilon": 0.02, "sigma": 0.01})
        ```
        """
        flat = _as_matrix(np.concatenate([np.ravel(leaf) for leaf in jax.tree.leaves(std)] or [np.zeros(0)]),
                          "std")
        if np.any(flat < 0):
            bad = int(np.argmin(flat))
            lab = (labels or parameter_labels(std))[bad]
            raise InputError(f"std: standard deviation of {lab} is {flat[bad]:.6g} < 0; give σ ≥ 0")
        return cls._make(np.diag(flat**2), std, labels, units, "std")

    @classmethod
    def from_correlation(cls, std: Any, correlation: Any, *, labels=None, units=None,
                         rtol: float = 1e-8) -> ParameterCovariance:
        """Standard deviations and a correlation matrix: `Σ = diag(σ) R diag(σ)`.

        **Arguments:**

        - `std`: a pytree shaped like θ, every entry ≥ 0.
        - `correlation`: the `n × n` correlation matrix (unit diagonal, entries in [-1, 1]).
        - `labels`, `units`: as in `from_std`.
        - `rtol`: tolerance of the symmetry and semi-definiteness checks.

        **Returns:** a `ParameterCovariance`.

        **Example:**

        ```python
        cov = ParameterCovariance.from_correlation({"a": 0.1, "b": 0.2}, [[1, 0.5], [0.5, 1]])
        ```
        """
        diag = cls.from_std(std, labels=labels, units=units)
        sigma = np.sqrt(np.diag(diag.matrix))
        corr = _as_matrix(correlation, "correlation")
        if corr.shape == (len(sigma), len(sigma)):
            off = np.abs(np.diag(corr) - 1.0)
            if np.any(off > rtol):
                k = int(np.argmax(off))
                raise InputError(f"correlation: diagonal entry of {diag.labels[k]} is {corr[k, k]:.6g}, must be 1")
            if np.any(np.abs(corr) > 1 + rtol):
                i, j = np.unravel_index(np.argmax(np.abs(corr)), corr.shape)
                raise InputError(
                    f"correlation: entry {diag.labels[i]},{diag.labels[j]} = {corr[i, j]:.6g} lies outside [-1, 1]"
                )
        _check_psd(corr, diag.labels, "correlation", rtol)
        matrix = sigma[:, None] * corr * sigma[None, :]
        return dataclasses.replace(diag, matrix=0.5 * (matrix + matrix.T))

    @classmethod
    def from_matrix(cls, matrix: Any, like: Any, *, labels=None, units=None,
                    rtol: float = 1e-8) -> ParameterCovariance:
        """A full covariance matrix (e.g. exported by a fit) over θ flattened in `jax.tree` order.

        **Arguments:**

        - `matrix`: `n × n`, symmetric positive semi-definite (checked, with `rtol`).
        - `like`: a pytree shaped like θ (the parameters themselves), giving order and labels.
        - `labels`, `units`: as in `from_std`.
        - `rtol`: tolerance of the symmetry and semi-definiteness checks.

        **Returns:** a `ParameterCovariance`.

        **Example:**

        ```python
        cov = ParameterCovariance.from_matrix(fit_covariance, params)
        ```
        """
        arr = _as_matrix(matrix, "covariance")
        return cls._make(arr, like, labels, units, "covariance", rtol=rtol)

    @classmethod
    def from_samples(cls, samples: Any, *, labels=None, units=None) -> ParameterCovariance:
        """The sample mean and (unbiased) sample covariance of parameter samples.

        **Arguments:**

        - `samples`: a pytree shaped like θ with one leading sample axis on every leaf
          (e.g. an ensemble of fitted parameter sets), at least two samples.
        - `labels`, `units`: as in `from_std`.

        **Returns:** a `ParameterCovariance` with `mean` and `n_samples` set.

        **Example:**

        ```python
        cov = ParameterCovariance.from_samples({"epsilon": eps_samples, "sigma": sigma_samples})
        ```
        """
        leaves = jax.tree.leaves(samples)
        if not leaves:
            raise InputError("samples: no parameters (empty pytree)")
        counts = {int(np.shape(leaf)[0]) if np.ndim(leaf) else 0 for leaf in leaves}
        if len(counts) != 1 or min(counts) < 2:
            raise InputError(
                f"samples: every leaf needs the same leading sample axis of length ≥ 2, got {sorted(counts)}"
            )
        m = counts.pop()
        flat = _as_matrix(np.concatenate([np.reshape(leaf, (m, -1)) for leaf in leaves], axis=1), "samples")
        like = jax.tree.map(lambda leaf: np.asarray(leaf)[0], samples)
        cov = np.atleast_2d(np.cov(flat, rowvar=False, ddof=1))
        out = cls._make(cov, like, labels, units, "samples", rtol=1e-8)
        return dataclasses.replace(out, mean=flat.mean(axis=0), n_samples=m)

    @classmethod
    def _make(cls, matrix, like, labels, units, what, rtol=1e-8):
        labels = tuple(labels) if labels is not None else parameter_labels(like)
        shapes = _shapes(like)
        n = sum(math.prod(s) for s in shapes)
        if len(labels) != n:
            raise InputError(f"labels: {len(labels)} labels for {n} parameter entries")
        if units is not None:
            units = tuple(str(u) for u in units)
            if len(units) != n:
                raise InputError(f"units: {len(units)} unit strings for {n} parameter entries")
        sym = _check_psd(np.asarray(matrix, dtype=float), labels, what, rtol)
        return cls(sym, labels, jax.tree.structure(like), shapes, None, None, units)

    # -- derived quantities ---------------------------------------------------------------

    @property
    def size(self) -> int:
        """The number of scalar parameter entries `n`."""
        return len(self.labels)

    @property
    def std(self) -> np.ndarray:
        """Standard deviations, flattened (`n`,)."""
        return np.sqrt(np.clip(np.diag(self.matrix), 0.0, None))

    @property
    def correlation(self) -> np.ndarray:
        """The correlation matrix (`n × n`; rows of parameters with σ = 0 are zero but for a unit diagonal)."""
        s = self.std
        safe = np.where(s > 0, s, 1.0)
        corr = self.matrix / safe[:, None] / safe[None, :]
        corr[s == 0, :] = 0.0
        corr[:, s == 0] = 0.0
        np.fill_diagonal(corr, 1.0)
        return corr

    def principal_directions(self, rtol: float = 1e-12) -> tuple[np.ndarray, np.ndarray]:
        """Eigen-directions of the covariance, largest variance first, scaled to one σ.

        **Arguments:**

        - `rtol`: directions with variance below `rtol × largest` are dropped (they do
          not vary).

        **Returns:** `(variances (k,), directions (k, n))`; row `i` is `√λᵢ uᵢ`, a
        one-standard-deviation step along the `i`-th principal axis.

        **Example:**

        ```python
        lam, steps = cov.principal_directions()
        ```
        """
        lam, vec = np.linalg.eigh(self.matrix)
        order = np.argsort(-lam)
        lam, vec = lam[order], vec[:, order]
        keep = lam > rtol * max(float(lam[0]) if lam.size else 0.0, np.finfo(float).tiny)
        lam, vec = lam[keep], vec[:, keep]
        # a deterministic sign: the largest component of each direction is positive
        signs = np.sign(vec[np.argmax(np.abs(vec), axis=0), np.arange(vec.shape[1])])
        vec = vec * np.where(signs == 0, 1.0, signs)
        return lam, (vec * np.sqrt(lam)).T

    def groups(self, rtol: float = 1e-12) -> tuple[tuple[int, ...], ...]:
        """Groups of mutually correlated parameters: connected components of the graph whose
        edges are nonzero correlations (|ρ| > `rtol`). Different groups are uncorrelated.

        **Arguments:**

        - `rtol`: correlations at or below this magnitude count as zero.

        **Returns:** a tuple of index tuples, ordered by first index.

        **Example:**

        ```python
        cov.groups()     # ((0, 1), (2,), (3,)): the first two parameters are correlated
        ```
        """
        return connected_components(np.abs(self.correlation) > rtol)

    def unravel(self, flat) -> Any:
        """A flat (`n`,) vector back into θ's pytree structure.

        **Arguments:**

        - `flat`: an array of `n` entries.

        **Returns:** a pytree shaped like θ.

        **Example:**

        ```python
        std_tree = cov.unravel(cov.std)
        ```
        """
        flat = np.asarray(flat) if not isinstance(flat, jax.Array) else flat
        leaves, offset = [], 0
        for shape in self.shapes:
            size = math.prod(shape)
            leaves.append(flat[offset : offset + size].reshape(shape))
            offset += size
        return jax.tree.unflatten(self.treedef, leaves)


def connected_components(adjacency: np.ndarray) -> tuple[tuple[int, ...], ...]:
    """Connected components of an undirected graph (boolean adjacency), ordered by first index."""
    from scipy.sparse.csgraph import connected_components as _components

    if adjacency.shape[0] == 0:
        return ()
    _, label = _components(np.asarray(adjacency, bool), directed=False)
    order = {}
    for i, lab in enumerate(label):
        order.setdefault(int(lab), []).append(i)
    return tuple(tuple(v) for v in order.values())
