"""What a model sees: the structure it is bound to (`Context`) and, at each evaluation,
the neighbors of every atom (`Neighbors`).

Models (`_model`, `_pair`, `_manybody`, `_eam`, `_tersoff`, `_sw`) read these records; the
binder (`_system`) builds them. Neither imports the other.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["Context", "Neighbors"]


@dataclasses.dataclass(frozen=True)
class Context:
    """What a model needs to know about the structure it is bound to (static).

    **Arguments:**

    - `species`: `(n,)` int array, each atom's species index.
    - `n_species`: number of species of the structure.
    - `present`: `(S, S)` bool, the species pairs that occur.
    - `options`: the model's validated options.
    - `dim`: number of spatial dimensions.
    - `species_names`: the structure's species names.
    - `data`: what the model prepared for this structure (`Model.prepare`: potential
      tables, element maps), static.
    """

    species: Any
    n_species: int
    present: np.ndarray
    options: Mapping[str, Any]
    dim: int
    species_names: tuple[str, ...] = ()
    data: Any = None


@dataclasses.dataclass(frozen=True)
class Neighbors:
    """The neighbors of every atom at one evaluation, `(n, m)` arrays (padded).

    **Arguments:**

    - `dR`: `(n, m, dim)` displacements `r_i − r_j` (deformed cell, the neighbor's image).
    - `r`: `(n, m)` distances; padded and coincident entries hold a safe non-zero value.
    - `inside`: `(n, m)` bool, real pairs within their cutoff (`pair_cutoff(si, sj)`).
    - `valid`: `(n, m)` bool, real pairs at any distance the list holds (up to the
      largest cutoff); three-body terms whose cutoff depends on the triplet use it.
    - `j`: `(n, m)` neighbor indices (padded entries point at atom 0: mask with `inside`).
    - `si`, `sj`: `(n, 1)` and `(n, m)` species of the atom and of its neighbors.
    - `active`: `(n,)` bool, `False` for phantom atoms (padding, `Structure.phantoms`), or
      `None` when there are none. Phantoms have no neighbors and are nobody's; a model with
      a term per atom that is non-zero without neighbors (EAM's embedding F(0)) masks it.
    """

    dR: Any
    r: Any
    inside: Any
    valid: Any
    j: Any
    si: Any
    sj: Any
    active: Any = None
