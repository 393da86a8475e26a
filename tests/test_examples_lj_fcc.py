"""examples/lj_fcc: LJ fcc elastic constants against analytic lattice sums; a vacancy's
sensitivities against finite differences of re-minimization."""

import json

import numpy as np
import pytest

from example_loader import load_example


lj = load_example("lj_fcc")


def test_switch_derivatives_are_exact():
    r = np.linspace(2.001, 2.499, 41)
    h = 1e-6
    s, ds, d2s = lj.switch(r, 2.0, 2.5)
    numerical = (lj.switch(r + h, 2.0, 2.5)[0] - lj.switch(r - h, 2.0, 2.5)[0]) / (2 * h)
    np.testing.assert_allclose(ds, numerical, rtol=1e-7, atol=1e-9)
    numerical = (lj.switch(r + h, 2.0, 2.5)[1] - lj.switch(r - h, 2.0, 2.5)[1]) / (2 * h)
    np.testing.assert_allclose(d2s, numerical, rtol=1e-6, atol=1e-7)
    # C¹ at both ends: S = 1, S' = 0 at the onset; S = 0, S' = 0 at the cutoff.
    ends = lj.switch(np.array([2.0, 2.5 - 1e-12]), 2.0, 2.5)
    np.testing.assert_allclose(ends[0], [1.0, 0.0], atol=1e-10)
    np.testing.assert_allclose(ends[1], [0.0, 0.0], atol=1e-9)


def test_full_lattice_sum_matches_the_classic_constants():
    # fcc lattice sums A12 = 12.13188, A6 = 14.45392: E_min = −A6²/(2 A12) = −8.61023 ε,
    # r0 = (2 A12/A6)^(1/6) σ. At a 20σ cutoff the missing tail of −4/r⁶ is, in the
    # continuum approximation, −8πρ/(3 r_c³) per atom (ρ = 4/a³).
    a12, a6 = 12.13188, 14.45392
    values = lj.lattice_sum(None, 20.0)
    tail = -8 * np.pi * (4 / values["a0"] ** 3) / (3 * 20.0**3)
    assert values["energy_per_atom"] + tail == pytest.approx(-(a6**2) / (2 * a12), rel=1e-5)
    assert values["a0"] / np.sqrt(2) == pytest.approx((2 * a12 / a6) ** (1 / 6), rel=1e-4)
    assert values["C12"] == pytest.approx(values["C44"], rel=1e-12)  # Cauchy relation


def test_switch_and_truncation_differ_by_about_eight_percent():
    switched = lj.lattice_sum(2.0, 2.5)
    truncated = lj.lattice_sum(None, 2.5)
    assert truncated["C11"] / switched["C11"] - 1 == pytest.approx(0.086, abs=0.002)


def test_simulated_constants_equal_lattice_sums():
    analytic = lj.lattice_sum(*lj.ANALYTIC["switched 2.0–2.5σ"])
    simulated = lj.simulated_constants("switched 2.0–2.5σ", analytic["a0"])
    assert simulated["a0"] == pytest.approx(analytic["a0"], rel=1e-12)
    for key in ("C11", "C12", "C44", "energy_per_atom"):
        assert simulated[key] == pytest.approx(analytic[key], rel=1e-10)
    # A monatomic Bravais lattice has no internal relaxation: the implicit ∂x*/∂ε is zero.
    assert simulated["max_internal_relaxation"] < 1e-10
    assert simulated["C44_clamped"] == pytest.approx(simulated["C44"], rel=1e-12)


@pytest.mark.slow
def test_truncated_convention_simulated_equals_lattice_sum():
    analytic = lj.lattice_sum(*lj.ANALYTIC["truncated at 2.5σ"])
    # The emulated truncation is exact only if no neighbour shell lies in its 2.49–2.5σ switch.
    distances = np.linalg.norm(lj.fcc_vectors(analytic["a0"], 4), axis=1)
    assert not np.any((distances > 2.49) & (distances < 2.5))
    simulated = lj.simulated_constants("truncated at 2.5σ", analytic["a0"])
    for key in ("a0", "C11", "C12", "C44"):
        assert simulated[key] == pytest.approx(analytic[key], rel=1e-10)


def test_vacancy_sensitivities_match_finite_differences():
    a0 = lj.lattice_sum(2.0, 2.5)["a0"]
    vacancy = lj.vacancy_sensitivity(a0)
    assert vacancy["verdict"] == "minimum" and vacancy["jacobian_trustworthy"]
    sigma = vacancy["sigma"]
    assert sigma["max_abs_difference"] < 1e-6 * sigma["max_abs_implicit"]
    # x* does not depend on the energy scale: exactly zero, both ways.
    assert vacancy["epsilon"]["max_abs_implicit"] < 1e-12
    assert vacancy["epsilon"]["max_abs_fd"] < 1e-6
    # The first shell relaxes inwards, towards the vacancy.
    assert vacancy["relaxation"][0] < 0


@pytest.mark.slow
def test_script_writes_table_and_figure(tmp_path):
    lj.main(["--small", "--out", str(tmp_path)])
    assert "analytic lattice sum" in (tmp_path / "elastic_table.md").read_text()
    assert (tmp_path / "vacancy.png").stat().st_size > 10_000
    saved = json.loads((tmp_path / "lj_fcc.json").read_text())
    assert saved["simulated"]["switched 2.0–2.5σ"]["C11"] == pytest.approx(saved["analytic"]["switched 2.0–2.5σ"]["C11"], rel=1e-10)
