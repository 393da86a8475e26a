"""Units: check them, name reduced ones, map LAMMPS unit styles, convert (pint).

Every `units` string sensitiv reads (a config's `energy_units`, a structure's length units)
or writes (each variable of a result) is a UDUNITS-style string as CF asks: `"angstrom"`,
`"eV"`, `"eV angstrom-3"`, `"angstrom (eV)-1"`. This module parses them with
[pint](https://pint.readthedocs.io) — a maintained units library carrying CODATA 2018
constants — after translating UDUNITS' exponent syntax (`angstrom-3` → `angstrom**-3`).

**Reduced units** (Lennard-Jones and soft-sphere models, packings generated in units of a
particle diameter) are not dimensionless: a length in units of σ is still a length. They
are written `"sigma"` (length), `"epsilon"` (energy) and their products (`"epsilon
sigma-3"` for a stress), as LAMMPS' `units lj` names them, and pint knows them as units
of their own dimensions (`[reduced_length]`, `[reduced_energy]`), so no conversion to
physical units is ever attempted: `to_gpa` returns `None` for them.

**Why pint rather than cf-units**: UDUNITS-2 (what cf-units wraps) carries the 1986
electronvolt (1 eV/Å³ = 160.217733 GPa instead of the exact 160.2176634 of the 2019 SI),
cannot define the reduced units above, and cannot convert LAMMPS `real` energies
(kcal/mol) to energies per particle. The strings written stay valid UDUNITS, which the
test suite checks with cf-units and the IOOS CF checker.

**Example:**

```python
from sensitiv import units
units.convert(1.0, "eV angstrom-3", "GPa")    # 160.2176634
units.to_gpa(1.0, "epsilon sigma-3")           # None: reduced units have no GPa value
units.lammps_style("real")["energy"]           # 'kcal/mol'
units.check("electron-volts per atom", "energy")   # UnitsError naming the fix
```
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from .errors import InputError

__all__ = [
    "UnitsError",
    "REDUCED_LENGTH",
    "REDUCED_ENERGY",
    "LAMMPS_STYLES",
    "lammps_style",
    "parse",
    "check",
    "is_reduced",
    "is_physical",
    "convert",
    "to_gpa",
    "ratio",
    "power",
    "describe",
]

#: Reduced units, named as LAMMPS' `units lj` names them.
REDUCED_LENGTH, REDUCED_ENERGY = "sigma", "epsilon"
_REDUCED = {REDUCED_LENGTH: "reduced_length", REDUCED_ENERGY: "reduced_energy",
            "tau": "reduced_time", "reduced_mass": "reduced_mass"}

#: LAMMPS unit styles (docs.lammps.org/units.html): the units of lengths, energies,
#: pressures (stresses) and masses each style uses.
LAMMPS_STYLES: dict[str, dict[str, str]] = {
    "metal": {"length": "angstrom", "energy": "eV", "pressure": "bar", "mass": "g/mol", "time": "ps"},
    "real": {"length": "angstrom", "energy": "kcal/mol", "pressure": "atm", "mass": "g/mol", "time": "fs"},
    "si": {"length": "m", "energy": "J", "pressure": "Pa", "mass": "kg", "time": "s"},
    "cgs": {"length": "cm", "energy": "erg", "pressure": "dyn cm-2", "mass": "g", "time": "s"},
    "electron": {"length": "bohr", "energy": "hartree", "pressure": "Pa", "mass": "g/mol", "time": "fs"},
    "micro": {"length": "um", "energy": "pg um2 us-2", "pressure": "pg um-1 us-2", "mass": "pg", "time": "us"},
    "nano": {"length": "nm", "energy": "ag nm2 ns-2", "pressure": "ag nm-1 ns-2", "mass": "ag", "time": "ns"},
    "lj": {"length": REDUCED_LENGTH, "energy": REDUCED_ENERGY, "pressure": f"{REDUCED_ENERGY} {REDUCED_LENGTH}-3",
           "mass": "reduced_mass", "time": "tau"},
}

_KINDS = {"length": "[length]", "energy": "[energy]", "pressure": "[pressure]"}


class UnitsError(InputError):
    """A units string that is not a unit, or not a unit of the expected kind."""


def lammps_style(style: str) -> dict[str, str]:
    """The units of a LAMMPS unit style (`metal`, `real`, `lj`, `si`, `cgs`, `electron`,
    `micro`, `nano`): `{"length", "energy", "pressure", "mass", "time"}`.

    **Raises:** `UnitsError` naming the styles for an unknown one.
    """
    try:
        return dict(LAMMPS_STYLES[style])
    except KeyError:
        raise UnitsError(f"unknown LAMMPS unit style {style!r}; one of {', '.join(LAMMPS_STYLES)}") from None


# UDUNITS writes exponents after the unit ("angstrom-3", "(eV)-1", "m2"); pint wants "**".
_EXPONENT = re.compile(r"(?<=[A-Za-z_)])\^?(-?\d+)(?![\d.])")


def _udunits_to_pint(text: str) -> str:
    return _EXPONENT.sub(r"**\1", text.strip())


@functools.lru_cache(maxsize=1)
def _registry():
    import pint  # deliberately lazy: ~0.5 s, only paid where units are checked or converted

    registry = pint.UnitRegistry(preprocessors=[_udunits_to_pint], autoconvert_offset_to_baseunit=True,
                                # pint has a `sigma` (Stefan-Boltzmann); ours is the reduced length
                                on_redefinition="ignore")
    for name, dimension in _REDUCED.items():
        registry.define(f"{name} = [{dimension}]")
    return registry


@functools.lru_cache(maxsize=256)
def parse(text: str):
    """The pint unit of a UDUNITS-style string (`"1"` is dimensionless).

    **Raises:** `UnitsError` naming the string when pint cannot read it.
    """
    if not isinstance(text, str) or not text.strip():
        raise UnitsError(f"{text!r} is not a units string; write e.g. 'eV', 'angstrom', 'kcal/mol' or '1'")
    registry = _registry()
    try:
        return registry.parse_units(text) if text.strip() != "1" else registry.dimensionless
    except Exception as err:  # pint raises several unrelated types for unreadable text
        import pint

        reason = (f"unknown unit {', '.join(map(repr, err.unit_names))}"
                  if isinstance(err, pint.UndefinedUnitError) else "cannot parse it")
        raise UnitsError(
            f"{text!r} is not a unit ({reason}); write a UDUNITS string such as 'eV', "
            "'kcal/mol', 'angstrom', a LAMMPS style name ('metal', 'real', 'lj') or "
            f"{REDUCED_LENGTH!r}/{REDUCED_ENERGY!r} for reduced units"
        ) from None


def _dimensionality(unit) -> dict[str, float]:
    return dict(_registry().get_dimensionality(unit))


def is_reduced(text: str) -> bool:
    """Whether `text` involves a reduced unit (σ, ε, τ): it has no value in physical units."""
    try:
        return any(k.startswith("[reduced_") for k in _dimensionality(parse(text)))
    except UnitsError:
        return False


def is_physical(text: str) -> bool:
    """Whether `text` is a readable unit free of reduced units."""
    try:
        parse(text)
    except UnitsError:
        return False
    return not is_reduced(text)


def check(text: str, kind: str | None = None) -> str:
    """Check a units string, optionally of a kind; return the UDUNITS string to use.

    **Arguments:**

    - `text`: a UDUNITS-style string, or a LAMMPS unit style name (then its unit of `kind`).
    - `kind`: `"length"`, `"energy"` or `"pressure"` to require that kind (an energy per
      mole, as LAMMPS `real` uses, is an energy; so are reduced units of the kind), or `None`.

    **Returns:** `text` itself, or the LAMMPS style's unit of `kind`.

    **Raises:** `UnitsError` with a one-line message naming the string and the fix.
    """
    if kind is not None and isinstance(text, str) and text in LAMMPS_STYLES:
        return LAMMPS_STYLES[text][kind]
    unit = parse(text)
    if kind is None:
        return text
    dims = _dimensionality(unit)
    reduced = {"length": {"[reduced_length]": 1}, "energy": {"[reduced_energy]": 1},
               "pressure": {"[reduced_energy]": 1, "[reduced_length]": -3}}[kind]
    physical = dict(_dimensionality(_registry().parse_units({"length": "m", "energy": "J", "pressure": "Pa"}[kind])))
    per_mole = {**physical, "[substance]": -1}
    if dims in (reduced, physical, per_mole):
        return text
    if not dims:
        hint = (f"; for reduced units write {LAMMPS_STYLES['lj'][kind]!r}"
                if text.strip() == "1" else "")
        raise UnitsError(f"{text!r} is dimensionless, not a unit of {kind}{hint}")
    raise UnitsError(f"{text!r} is not a unit of {kind} (it is {_describe_dims(dims)}); "
                     f"write e.g. {LAMMPS_STYLES['metal'][kind]!r} or {LAMMPS_STYLES['lj'][kind]!r}")


def _describe_dims(dims: Mapping[str, float]) -> str:
    return " ".join(f"{k}^{v:g}" if v != 1 else k for k, v in sorted(dims.items())) or "dimensionless"


def convert(values: Any, from_units: str, to_units: str) -> Any:
    """`values` in `from_units` expressed in `to_units` (NumPy arrays stay arrays).

    Energies per mole (LAMMPS `real`: kcal/mol) convert to energies per particle through
    the Avogadro constant when the target has no amount of substance.

    **Raises:** `UnitsError` when the two are not of the same dimension (reduced units
    never convert to physical ones).
    """
    registry = _registry()
    source, target = parse(from_units), parse(to_units)
    quantity = registry.Quantity(np.asarray(values, dtype=np.float64), source)
    source_substance = _dimensionality(source).get("[substance]", 0)
    target_substance = _dimensionality(target).get("[substance]", 0)
    if source_substance != target_substance:
        quantity = quantity * registry.avogadro_constant ** (source_substance - target_substance)
    try:
        out = quantity.to(target).magnitude
    except Exception:
        raise UnitsError(f"cannot convert {from_units!r} to {to_units!r}: different dimensions") from None
    return out if np.ndim(out) else float(out)


def to_gpa(values: Any, stress_units: str) -> Any | None:
    """Stresses or elastic constants in GPa, or `None` when their units are reduced or unreadable."""
    if not is_physical(stress_units):
        return None
    try:
        return convert(values, stress_units, "GPa")
    except UnitsError:
        return None


def _group(text: str) -> str:
    return text if re.fullmatch(r"[A-Za-z_]+", text) else f"({text})"


def ratio(numerator: str, denominator: str) -> str:
    """The UDUNITS string of `numerator / denominator`: `ratio("angstrom", "eV")` is
    `"angstrom (eV)-1"`; a dimensionless side drops out; equal sides give `"1"`."""
    if numerator == denominator:
        return "1"
    if denominator in ("1", ""):
        return numerator
    if numerator in ("1", ""):
        return f"{_group(denominator)}-1"
    return f"{numerator} {_group(denominator)}-1"


def power(unit: str, exponent: int) -> str:
    """The UDUNITS string of `unit ** exponent`: `power("angstrom", -3)` is `"angstrom-3"`."""
    if unit in ("1", "") or exponent == 0:
        return "1"
    return unit if exponent == 1 else f"{_group(unit)}{exponent}"


def describe(text: str) -> str:
    """How a units string reads to a person: `"eV angstrom-3"` → `"eV/Å³"`; reduced units
    say so (`"epsilon sigma-3"` → `"ε/σ³ (reduced)"`); `"1"` → `""`."""
    if text in ("", "1", None):
        return ""
    try:
        unit = parse(text)
    except UnitsError:
        return text
    symbols = {"angstrom": "Å", "electron_volt": "eV", "sigma": "σ", "epsilon": "ε", "gigapascal": "GPa",
               "degree": "°", "nanometer": "nm", "kilocalorie": "kcal", "mole": "mol"}
    superscript = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")
    up, down = [], []
    for name, exponent in unit._units.items():
        symbol = symbols.get(name, name)
        e = abs(exponent)
        part = symbol + (str(int(e)).translate(superscript) if e != 1 else "")
        (up if exponent > 0 else down).append(part)
    text_out = "·".join(up) or "1"
    if down:
        text_out += "/" + ("·".join(down) if len(down) == 1 else f"({'·'.join(down)})")
    return text_out + (" (reduced)" if is_reduced(text) else "")
