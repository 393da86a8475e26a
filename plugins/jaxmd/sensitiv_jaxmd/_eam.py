"""Embedded-atom models from LAMMPS' tabulated files: `eam` (funcfl), `eam_alloy` (setfl),
`eam_fs` (Finnis–Sinclair), evaluated exactly as LAMMPS evaluates them.

`E = Σ_i F_{α_i}(ρ_i) + ½ Σ_i Σ_{j≠i} φ_{α_i α_j}(r_ij)`, `ρ_i = Σ_{j≠i} ρ_{α_j→α_i}(r_ij)`,
pairs within the file's cutoff. The tables are LAMMPS' (`_potential_files`), interpolated
by LAMMPS' cubic (same coefficients, same interval and clamping rules), and `F` is
continued linearly beyond the table's last density as LAMMPS does; so energies, forces
and virials agree with LAMMPS to round-off.

θ (all 1 at the file's potential; each is a factor, so `∂x*/∂θ` answers "which part of
the potential controls this relaxation"):

- `embedding_scale[α]`: `F_α → s F_α` (the many-body glue of element α);
- `density_scale[α]`: `ρ_{α→β} → s ρ_{α→β}` for every β (the electron density element α
  donates; moves the argument of every neighbour's F);
- `pair_scale[α, β]`: `φ_αβ → s φ_αβ` (symmetric);
- `radial_scale`: a radial stretch `ρ(r) → ρ(r/λ)`, `φ(r) → φ(r/λ)`, cutoff `→ λ r_c`
  (lengths of the potential; a perfect crystal's lattice constant scales with λ).

jax-md's `eam_from_lammps_parameters` reads funcfl only, resamples with its own cubic
spline (not LAMMPS' table interpolation) and closes the tables over, so neither the
1e-9 agreement with LAMMPS nor θ is available there; this module re-implements the
evaluation.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from sensitiv.errors import ConfigError
from . import _declarations as declarations
from ._file_model import FileModel, cached
from ._potential_files import EamTables, eam_from_funcfl, read_funcfl, read_setfl, spline_coefficients

__all__ = ["EAM", "EAM_ALLOY", "EAM_FS"]

_read_funcfl = cached(read_funcfl)
_read_setfl = cached(read_setfl)


@dataclasses.dataclass(frozen=True, eq=False)
class _EamData:
    """Spline coefficients and the species → element map of one binding (numpy)."""

    tables: EamTables
    element_of_species: np.ndarray  # (S,) index into tables.elements
    frho: np.ndarray  # (E, nrho, 4)
    rhor: np.ndarray  # (E, nr, 4) or (E*E, nr, 4) for eam/fs, flattened [source, centre]
    z2r: np.ndarray  # (E*E, nr, 4)


def _cubic(coefficients, p):
    c = coefficients
    return ((c[..., 0] * p + c[..., 1]) * p + c[..., 2]) * p + c[..., 3]


def _interval(x, delta, n, lowest):
    """LAMMPS' table lookup: `p = x/Δ + 1`, interval `m` (1-based, clamped to
    `[lowest, n − 1]`), fractional part `p − m` (at most 1)."""
    p = x / delta + 1.0
    m = jax.lax.stop_gradient(jnp.clip(jnp.trunc(p), lowest, n - 1)).astype(jnp.int32)
    return m, jnp.minimum(p - m, 1.0)


def _radial(coefficients, table, r, delta, n):
    """A radial function (`ρ` or `r·φ`) of table `table` at distances `r`."""
    m, p = _interval(r, delta, n, 0)
    return _cubic(jnp.asarray(coefficients)[table, m - 1], p)


def _embedding(coefficients, table, rho, drho, nrho, rhomax):
    """`F(ρ)` of table `table` per atom, continued linearly beyond `rhomax` with the slope
    at the table's end (LAMMPS: "will exceed table, so add linear term to conserve energy")."""
    m, p = _interval(rho, drho, nrho, 1)
    c = jnp.asarray(coefficients)[table, m - 1]  # only each atom's interval, never a table per atom
    value = _cubic(c, p)
    slope = ((3.0 * c[..., 0] * p + 2.0 * c[..., 1]) * p + c[..., 2]) / drho
    return value + jnp.where(rho > rhomax, slope * (rho - rhomax), 0.0)


class _Eam(FileModel):
    """An EAM model of one LAMMPS file style."""

    masks_phantoms = True  # the embedding is masked with Neighbors.active

    style = "eam/alloy"

    def prepare(self, structure, options) -> _EamData:
        self.check_units(structure)
        elements = self.element_map(structure, options)
        tables = self._read(options, elements)
        self.missing_elements(elements, tables.elements, tables.path)
        index = {e: k for k, e in enumerate(tables.elements)}
        n_el = len(tables.elements)
        rhor = spline_coefficients(tables.rhor)
        if tables.style == "eam/fs":
            rhor = rhor.reshape(n_el * n_el, tables.nr, 4)
        return _EamData(
            tables=tables,
            element_of_species=np.asarray([index[e] for e in elements], dtype=np.int32),
            frho=spline_coefficients(tables.frho),
            rhor=rhor,
            z2r=spline_coefficients(tables.z2r).reshape(n_el * n_el, tables.nr, 4),
        )

    def _read(self, options, elements) -> EamTables:
        source = options["potential_file"]
        if self.style == "eam":
            names = tuple(dict.fromkeys(elements))
            if not isinstance(source, Mapping):
                return eam_from_funcfl([_read_funcfl(self.locate(source))] * len(names), names)
            missing = [e for e in names if e not in source]
            if missing:
                raise ConfigError(
                    f"model {self.name!r}: option potential_file has no funcfl file for element "
                    f"{missing[0]!r}; give one per element: {{El: file, ...}}"
                )
            return eam_from_funcfl([_read_funcfl(self.locate(source[e])) for e in names], names)
        if isinstance(source, Mapping):
            raise ConfigError(f"model {self.name!r}: option potential_file must be one {self.style} file")
        return _read_setfl(self.locate(source), self.style == "eam/fs")

    def provenance(self, ctx):
        data: _EamData = ctx.data
        return data.tables.path, data.tables.style, [data.tables.elements[k] for k in data.element_of_species]

    def cutoff_convention(self, options) -> str:
        return ("the file's cutoff times radial_scale, for every pair (LAMMPS: pairs with r < cutoff); "
                "tables interpolated by LAMMPS' cubic")

    def pair_cutoff(self, params, ctx, si, sj, i, j):
        return params["radial_scale"] * ctx.data.tables.cut

    def max_cutoff(self, params, ctx):
        return params["radial_scale"] * ctx.data.tables.cut

    def energy(self, params, ctx, nb):
        data: _EamData = ctx.data
        t = data.tables
        n_el = len(t.elements)
        element = jnp.asarray(data.element_of_species)
        e_i, e_j = element[nb.si], element[nb.sj]  # (n, 1), (n, m)
        r = nb.r / params["radial_scale"]
        table = e_j * n_el + e_i if t.style == "eam/fs" else e_j
        density = _radial(data.rhor, table, r, t.dr, t.nr) * params["density_scale"][nb.sj]
        rho = jnp.sum(jnp.where(nb.inside, density, 0.0), axis=1)
        embedding = _embedding(data.frho, element[ctx.species], rho, t.drho, t.nrho, t.rhomax)
        embedding = embedding * params["embedding_scale"][ctx.species]
        if nb.active is not None:  # a phantom's F(0) is no energy of the structure
            embedding = jnp.where(nb.active, embedding, 0.0)
        z2 = _radial(data.z2r, e_i * n_el + e_j, r, t.dr, t.nr)
        pair = params["pair_scale"][nb.si, nb.sj] * z2 / r
        return jnp.sum(embedding) + 0.5 * jnp.sum(jnp.where(nb.inside, pair, 0.0))


class _Funcfl(_Eam):
    style = "eam"


class _Setfl(_Eam):
    style = "eam/alloy"


class _FinnisSinclair(_Eam):
    style = "eam/fs"


EAM = _Funcfl.declared(declarations.EAM)
EAM_ALLOY = _Setfl.declared(declarations.EAM_ALLOY)
EAM_FS = _FinnisSinclair.declared(declarations.EAM_FS)
