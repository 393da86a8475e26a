"""LAMMPS potential files in the jax-md plugin without LAMMPS: the table interpolation
against closed forms, and malformed files, unknown elements and bad options reported as
one-line errors naming the file or the option."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

import sensitiv_jaxmd as sj
from sensitiv.errors import ConfigError, InputError
from sensitiv.records import Structure
from sensitiv_jaxmd import _eam
from sensitiv_jaxmd._potential_files import find_potential_file, read_setfl, spline_coefficients


def test_lammps_interpolation_is_exact_for_cubics_inside_the_table():
    """LAMMPS' slopes are 4th-order central differences: exact for cubic polynomials, and
    so is the Hermite cubic built on them (away from the two end intervals)."""
    delta, n = 0.01, 200
    r = np.arange(n) * delta
    f = 2.0 * r**3 - 3.0 * r**2 + 0.5 * r + 1.0
    coefficients = spline_coefficients(f[None, :])
    x = jnp.linspace(0.05, 1.9, 37)
    value = _eam._radial(coefficients, jnp.zeros(x.shape, jnp.int32), x, delta, n)
    np.testing.assert_allclose(value, 2.0 * x**3 - 3.0 * x**2 + 0.5 * x + 1.0, rtol=0, atol=1e-12)
    # ... and continuous with a continuous first derivative at the knots.
    knots = r[3:-3]
    left = _eam._radial(coefficients, jnp.zeros(knots.shape, jnp.int32), knots - 1e-9, delta, n)
    right = _eam._radial(coefficients, jnp.zeros(knots.shape, jnp.int32), knots + 1e-9, delta, n)
    np.testing.assert_allclose(left, right, atol=1e-8)


def test_embedding_continues_linearly_beyond_the_table():
    drho, nrho = 0.1, 50
    rho = np.arange(nrho) * drho
    coefficients = spline_coefficients((rho**2)[None, :])
    rhomax = (nrho - 1) * drho
    at = jnp.asarray([rhomax, rhomax + 0.5, rhomax + 1.0])
    value = np.asarray(_eam._embedding(coefficients, jnp.zeros(3, jnp.int32), at, drho, nrho, rhomax))
    # LAMMPS' end slope is one-sided, (f_n − f_{n−1})/Δ = 2ρ_max − Δ for ρ²: F continues
    # from F(ρ_max) = ρ_max² along that line.
    np.testing.assert_allclose(value, rhomax**2 + (2 * rhomax - drho) * np.array([0.0, 0.5, 1.0]), rtol=1e-13)


def _setfl(path, elements=("Cu",), nrho=10, nr=10, truncate=False):
    lines = ["comment", "comment", "comment", f"{len(elements)} " + " ".join(elements),
             f"{nrho} 0.1 {nr} 0.5 4.0"]
    for _ in elements:
        lines.append("29 63.55 3.615 fcc")
        lines += ["-1.0"] * nrho + ["0.1"] * nr
    pairs = len(elements) * (len(elements) + 1) // 2
    lines += ["0.0"] * (nr * pairs - (5 if truncate else 0))
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def structure(names=("Cu",), units="angstrom"):
    a = 3.615
    positions = np.array([(0, 0, 0), (0, 0.5, 0.5), (0.5, 0, 0.5), (0.5, 0.5, 0)]) * a
    return Structure(positions=positions, species=np.arange(4) % len(names), species_names=names,
                     cell=np.eye(3) * a, pbc=(True, True, True), length_units=units, source="fcc")


def test_setfl_reader_and_its_errors(tmp_path):
    tables = read_setfl(_setfl(tmp_path / "ok.eam.alloy", ("Cu", "Ni")))
    assert tables.elements == ("Cu", "Ni") and tables.z2r.shape == (2, 2, 10)
    with pytest.raises(InputError, match="ends early"):
        read_setfl(_setfl(tmp_path / "short.eam.alloy", truncate=True))
    bad = tmp_path / "bad.eam.alloy"
    bad.write_text("a\nb\nc\n2 Cu\n10 0.1 10 0.5 4.0\n")
    with pytest.raises(InputError, match="names 1 element"):
        read_setfl(str(bad))


def test_model_errors_name_the_file_or_option(tmp_path):
    path = _setfl(tmp_path / "Cu.eam.alloy")
    model = sj.MODELS["eam_alloy"].record()
    with pytest.raises(InputError, match="no element 'Zr'"):
        model.factory(structure(("Cu", "Zr")), {"potential_file": path})
    system = model.factory(structure(("A", "B")), {"potential_file": path, "elements": {"A": "Cu", "B": "Cu"}})
    assert system.metadata["elements"] == ["Cu", "Cu"]
    with pytest.raises(ConfigError, match="elements lists 1 element"):
        model.factory(structure(("A", "B")), {"potential_file": path, "elements": ["Cu"]})
    with pytest.raises(InputError, match="metal units"):
        model.factory(structure(units="nm"), {"potential_file": path})
    with pytest.raises(InputError, match="model.options.potential_file: potential file 'missing.eam.alloy' not found"):
        find_potential_file("missing.eam.alloy")


def test_tersoff_and_sw_file_errors(tmp_path):
    tersoff = tmp_path / "x.tersoff"
    tersoff.write_text("# one entry over two lines\nSi Si Si 2.0 1.0 1.3 4.8 2.0 0.0 22.9\n"
                       "  0.33 1.32 95.3 3.0 0.2 3.2 3264.7\n")
    with pytest.raises(InputError, match="m = 2; LAMMPS' Tersoff allows m = 1 or 3"):
        sj.MODELS["tersoff"].record().factory(structure(("Si",)), {"potential_file": str(tersoff)})
    tersoff.write_text(tersoff.read_text().replace(" 2.0 1.0", " 3.0 1.0"))
    with pytest.raises(InputError, match="missing an entry for Si Si C"):
        sj.MODELS["tersoff"].record().factory(structure(("Si", "C")), {"potential_file": str(tersoff)})
    sw = tmp_path / "x.sw"
    sw.write_text("Si Si Si 2.1683 2.0951 1.80 21.0 1.20 -0.333333333333 7.049556277 0.6022245584 4.0 0.0\n")
    with pytest.raises(InputError, match="has 13 words, expected 14"):
        sj.MODELS["sw"].record().factory(structure(("Si",)), {"potential_file": str(sw)})
