"""Unit strings of derived quantities (pure Python: the dataset module uses it without jax)."""

from __future__ import annotations

import re

__all__ = ["power_units"]

_UNIT_TOKEN = re.compile(r"^([^\W\d][\w]*?)(-?\d+)?$")


def power_units(units: str | None, power: int) -> str | None:
    """The unit string of a quantity raised to an integer power (UDUNITS-style products).

    `"eV angstrom-3"` squared is `"eV2 angstrom-6"`; strings that are not a product of
    `name[exponent]` tokens are parenthesized: `"(eV/Å^3)^2"`.

    **Arguments:**

    - `units`: a unit string, `""` (dimensionless, also `"1"`) or `None` (unknown).
    - `power`: the integer power.

    **Returns:** the unit string, or `None` when `units` is `None`.

    **Example:**

    ```python
    power_units("angstrom", 2)        # 'angstrom2'
    ```
    """
    if units is None:
        return None
    text = units.strip()
    if text in ("", "1"):
        return text
    tokens = text.split()
    out = []
    for token in tokens:
        match = _UNIT_TOKEN.match(token)
        if not match:
            return f"({text})^{power}"
        exponent = int(match.group(2) or 1) * power
        out.append(match.group(1) + ("" if exponent == 1 else str(exponent)))
    return " ".join(out)
