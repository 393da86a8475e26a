"""Checks of a covariance that need numpy only (the config loader uses them without jax)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["covariance_problem"]


def covariance_problem(matrix: np.ndarray, labels: Sequence[str], rtol: float = 1e-8) -> tuple[str, np.ndarray]:
    """`("", symmetrized matrix)` for a valid covariance, else `(what is wrong, matrix)`.

    Valid: finite, `n × n` for the `n` labels, symmetric within `rtol`, and positive
    semi-definite (eigenvalues ≥ −rtol·n·largest; a singular covariance is valid).
    """
    n = len(labels)
    matrix = np.asarray(matrix, dtype=float)
    if matrix.shape != (n, n):
        names = ", ".join(labels[:6]) + (", ..." if n > 6 else "")
        return f"expected a {n} × {n} matrix (one row per parameter entry: {names}), got shape {matrix.shape}", matrix
    if not np.all(np.isfinite(matrix)):
        return "contains NaN or infinite entries", matrix
    if n == 0:
        return "", matrix
    scale = float(np.max(np.abs(matrix)))
    diff = np.abs(matrix - matrix.T)
    if float(np.max(diff)) > rtol * max(scale, np.finfo(float).tiny):
        i, j = np.unravel_index(np.argmax(diff), matrix.shape)
        return (f"not symmetric (entry {labels[i]},{labels[j]} = {matrix[i, j]:.6g} but "
                f"{labels[j]},{labels[i]} = {matrix[j, i]:.6g}); give a symmetric covariance"), matrix
    sym = 0.5 * (matrix + matrix.T)
    eigvals, eigvecs = np.linalg.eigh(sym)
    if eigvals[0] < -rtol * max(eigvals[-1], np.finfo(float).tiny) * n:
        top = np.argsort(-np.abs(eigvecs[:, 0]))[:3]
        names = ", ".join(labels[k] for k in top)
        return (f"not positive semi-definite (eigenvalue {eigvals[0]:.3g} < 0, along a combination of "
                f"{names}); a covariance's correlations must lie in [-1, 1] and be mutually consistent"), sym
    return "", sym
