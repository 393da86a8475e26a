"""examples/silicon_elastic: SW silicon elastic constants against published values and
finite differences of re-minimization."""

import json

import numpy as np
import pytest

from example_loader import load_example


si = load_example("silicon_elastic")
# Zero-pressure lattice constant (checked in test_zero_pressure_lattice_constant); to full
# precision, because the stress derivative and the energy Hessian differ by stress terms.
A0 = 5.430949778405214


@pytest.fixture(scope="module")
def silicon():
    return si.silicon(A0)


def test_shear_response_matches_cowley(silicon):
    system, structure = silicon
    shear = si.shear_response(system, structure)
    # Cowley (1988), as quoted in LAMMPS examples/ELASTIC: C44 = 56.4 GPa (three digits).
    assert shear["C44"] == pytest.approx(56.4, abs=0.05)
    assert shear["C44_clamped"] == pytest.approx(109.756, abs=1e-3)
    assert 0 < shear["zeta"] < 1
    assert shear["zeta"] == pytest.approx(0.62895, abs=1e-4)


@pytest.mark.slow
def test_zero_pressure_lattice_constant():
    a0 = si.zero_pressure_lattice_constant()
    assert a0 == pytest.approx(A0, abs=1e-12)
    system, structure = si.silicon(a0)
    stress = np.asarray(system.observables["stress"](system.positions, system.params))
    assert np.max(np.abs(stress)) * si.EV_PER_A3_IN_GPA < 1e-9


@pytest.fixture(scope="module")
def constants(silicon):
    system, structure = silicon
    return si.elastic_constants(system, structure)


@pytest.fixture(scope="module")
def finite_differences(silicon):
    system, structure = silicon
    return si.finite_differences(system, structure)


@pytest.mark.slow
def test_constants_match_published_values(constants):
    cowley = si.PUBLISHED["Cowley 1988 (ε = 2.1683 eV)"]
    for key in ("C11", "C12", "C44"):
        assert constants["relaxed"][key] == pytest.approx(cowley[key], abs=0.05)
    # Uniaxial strains leave the diamond lattice at rest: C11, C12 are clamped = relaxed.
    for key in ("C11", "C12"):
        assert constants["relaxed"][key] == pytest.approx(constants["clamped"][key], rel=1e-12)
    assert constants["cubic_spread"] < 1e-9
    assert constants["jacobian_info"]["trustworthy"]
    assert constants["jacobian_info"]["verdict"] == "minimum"


@pytest.mark.slow
def test_total_derivative_of_stress_equals_schur_complement(constants):
    for key in ("C11", "C12", "C44"):
        assert constants["relaxed_total"][key] == pytest.approx(constants["relaxed"][key], rel=1e-10)


@pytest.mark.slow
def test_implicit_matches_finite_differences_of_reminimization(constants, finite_differences):
    for key in ("C11", "C12", "C44"):
        assert constants["relaxed"][key] == pytest.approx(finite_differences[key], rel=1e-6)
    assert constants["zeta"] == pytest.approx(finite_differences["zeta"], rel=1e-6)


@pytest.mark.slow
def test_balamane_epsilon_scales_every_constant(silicon, constants):
    system, structure = silicon
    rescaled = si.elastic_constants(system, structure, si.EPSILON_BALAMANE)
    balamane = si.PUBLISHED["Balamane et al. 1992 (ε = 2.315 eV)"]
    ratio = si.EPSILON_BALAMANE / si.EPSILON_ORIGINAL
    for key in ("C11", "C12", "C44"):
        assert rescaled["relaxed"][key] == pytest.approx(balamane[key], abs=0.1)
        assert rescaled["relaxed"][key] == pytest.approx(ratio * constants["relaxed"][key], rel=1e-10)
    assert rescaled["zeta"] == pytest.approx(constants["zeta"], rel=1e-10)


@pytest.mark.slow
def test_script_writes_table_and_figure(tmp_path):
    si.main(["--small", "--out", str(tmp_path)])
    table = (tmp_path / "elastic_table.md").read_text()
    assert "Kleinman" in table and "56.45" in table
    assert (tmp_path / "shear_energy.png").stat().st_size > 10_000
    saved = json.loads((tmp_path / "silicon_elastic.json").read_text())
    relaxed = np.asarray(saved["shear_curve"]["relaxed"])
    clamped = np.asarray(saved["shear_curve"]["clamped"])
    assert np.all(relaxed <= clamped + 1e-12)
