"""examples/eam_vacancy: a LAMMPS-relaxed Cu vacancy (Cu_u3.eam) read from its data file,
θ = the parts of the EAM potential, the relaxation field's sensitivity by neighbour shell."""

import json

import numpy as np
import pytest

import lammps_reference as lmp_ref
from example_loader import load_example

vac = load_example("eam_vacancy")


def _check(summary, repeat):
    shells = summary["shells"]
    assert summary["trustworthy"] and summary["verdict"] == "minimum"
    assert summary["stationarity_residual"] < 1e-10  # LAMMPS' minimum is sensitiv's
    assert [s["atoms"] for s in shells[:4]] == [12, 6, 24, 12]
    assert shells[0]["u_r"] < -0.02  # the nearest neighbours relax inwards
    for row in shells:
        f, phi = row["du_r_dtheta"]["embedding_scale[Cu]"], row["du_r_dtheta"]["pair_scale[Cu,Cu]"]
        # F and φ scaled together scale the energy: a minimum cannot move.
        assert abs(f + phi) < 1e-9 * max(abs(f), 1e-3)
        assert max(row["du_r_dtheta_spread"].values()) < 1e-9  # one value per symmetric shell
    assert summary["formation"]["E_f"] == pytest.approx(1.28, abs=0.02)
    for error in summary["lammps_check_max_relative_error"].values():
        assert error < 1e-6


def test_committed_numbers_and_readme():
    summary = json.loads((vac.HERE / "output" / "eam_vacancy.json").read_text())
    _check(summary, 4)
    assert summary["atoms"] == 255
    readme = (vac.HERE / "README.md").read_text()
    first = summary["shells"][0]
    assert f"| 1 | {first['distance']:.3f} | 12 | −{-1e3 * first['u_r']:.2f} |" in readme
    assert f"**{summary['formation']['E_f']:.4f} eV**" in readme
    assert (vac.HERE / "output" / "eam_vacancy.png").stat().st_size > 10_000


@pytest.mark.slow
def test_example_reruns_with_lammps(tmp_path):
    lmp_ref.lammps_module()  # the potential file ships with the lammps package (a test dependency)
    summary = vac.main(["--regenerate", "--repeat", "3", "--out", str(tmp_path)])
    _check(summary, 3)
    assert summary["atoms"] == 107
    assert (tmp_path / "eam_vacancy.png").exists()
    assert np.isfinite(summary["formation"]["dE_f_dtheta"]["radial_scale"])


# -- the uncertainty case: covariance from the potential's fitting data --------------------


def test_fit_covariance_is_consistent_and_read_by_the_config():
    # covariance.json, exported by fit_covariance.py: the stored Jacobian of the fitted
    # properties obeys the exact scalings of the four parts, and the config reads the file.
    from sensitiv.pipeline import config

    doc = json.loads((vac.HERE / "covariance.json").read_text())
    fit = doc["fit"]
    jac = np.array(fit["jacobian"])  # rows: a0, E_c, C11, C12, C44, E_v; columns: F, ρ, φ, λ
    a0, ec, c11, c12, c44, _ = fit["model_values"]
    assert fit["jacobian_vs_central_differences"] < 1e-7
    # λ stretches every length: a0 ∝ λ, energies unchanged, C ∝ λ⁻³
    np.testing.assert_allclose(jac[:, 3], [a0, 0, -3 * c11, -3 * c12, -3 * c44, 0], atol=1e-8 * c11)
    # F and φ scaled together scale the energy: a0 fixed, E_c, C and E_v proportional
    np.testing.assert_allclose(jac[:, 0] + jac[:, 2], [0, ec, c11, c12, c44, fit["model_values"][5]],
                               rtol=1e-8, atol=1e-8)
    cov = np.array(doc["covariance"])
    assert np.all(np.linalg.eigvalsh(cov) > 0) and fit["effective_samples"] > 200
    cfg = config.load(str(vac.HERE / "uncertainty.yaml"))
    assert cfg.uncertainty.kind == "covariance" and cfg.uncertainty.labels == tuple(doc["parameters"])
    np.testing.assert_allclose(cfg.uncertainty.covariance, cov)


@pytest.mark.slow
def test_fit_covariance_reruns():
    import importlib.util

    spec = importlib.util.spec_from_file_location("eam_fit", vac.HERE / "fit_covariance.py")
    fit = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fit)
    doc = fit.fit_covariance(*fit.properties_function(fit.crystal(), *fit.vacancy()))
    committed = json.loads((vac.HERE / "covariance.json").read_text())
    np.testing.assert_allclose(doc["covariance"], committed["covariance"], rtol=1e-6)


def test_committed_uncertainty_run_and_docs():
    # the committed run of uncertainty_measured.yaml: the validity ranges foresaw every
    # sample's first-order error, and the docs quote its numbers
    summary = json.loads((vac.HERE / "output" / "eam_vacancy_uncertainty_measured.json").read_text())
    check = summary["check"]
    err = check["first_order_error"]
    assert err["disagreements"] == 0 and check["validity_agrees"]
    assert err["samples_beyond_rtol_measured"] == err["samples_beyond_rtol_predicted"]
    assert err["predicted_median"] == pytest.approx(err["measured_median"], rel=0.1)
    first = summary["shells"][0]
    assert first["atoms"] == 12 and 0 < first["u_r_std"] < abs(first["u_r"])
    page = (vac.HERE.parents[1] / "docs" / "uncertainty.md").read_text()
    assert f"−{-1e3 * first['u_r']:.2f} ± {1e3 * first['u_r_std']:.2f}" in page
    c11 = summary["elastic_constants_GPa"]["C11"]
    assert f"C11 = {c11['value']:.1f}: σ linear → sampled | {c11['std']:.2f}" in page
    assert (vac.HERE / "output" / "eam_vacancy_uncertainty_measured.png").stat().st_size > 10_000
