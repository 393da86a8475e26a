"""The `uncertainty:` section of `sensitiv analyze` and `sensitiv check`.

Config errors are one line each with file:line:col; the propagated numbers in the NetCDF
result are checked against the Jacobian stored next to them, the elastic constants'
uncertainty (second-order implicit derivatives of the stress) against central differences
of re-relaxed relaxed-ion constants, and `check` against its own brute-force samples.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from sensitiv.errors import ConfigError
from sensitiv.pipeline import config, dataset, report
from sensitiv.pipeline.theta import ThetaComponent
from sensitiv.pipeline.uncertainty import SpecIssue, parse_spec, read_parameter_file, theta_covariance

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARGON = os.path.join(ROOT, "examples", "lj_crystal", "argon_vacancy_small.extxyz")
EV_A3_GPA = 160.21766208

BASE = f"""
structure: {{file: {ARGON}}}
model:
  name: lennard_jones
  parameters: {{sigma: 3.405, epsilon: 0.0104}}
  options: {{r_cutoff: 1.5, r_onset: 1.3, energy_units: eV}}
  differentiate: [sigma, epsilon, strain]
solver: {{name: fire, options: {{ftol: 1.0e-10}}}}
"""


def load(uncertainty: str, extra: str = "", tmp_path=None):
    text = BASE + extra + "uncertainty:\n" + "\n".join("  " + line for line in uncertainty.strip().splitlines()) + "\n"
    path = None if tmp_path is None else str(tmp_path / "c.yaml")
    if path:
        with open(path, "w") as fh:
            fh.write(text)
        return config.load(path)
    return config.load(text=text)


# -- the section -----------------------------------------------------------------------------


@pytest.mark.parametrize("section, where, message", [
    ("std: {sigma: 0.01}\ncovariance: [[1]]\nparameters: [sigma]", "$.uncertainty", "exactly one source"),
    ("covariance: [[1, 2], [2, 1]]\nparameters: [sigma, epsilon]", "$.uncertainty.covariance",
     "not positive semi-definite"),
    ("covariance: [[1, 0.1], [0.2, 1]]\nparameters: [sigma, epsilon]", "$.uncertainty.covariance", "not symmetric"),
    ("covariance: [[1]]\nparameters: [sigma, epsilon]", "$.uncertainty.covariance", "expected a 2 × 2 matrix"),
    ("std: {sigmaa: 0.01}", "$.uncertainty.std.sigmaa", "no parameter 'sigmaa'"),
    ("std: {sigma: -0.01}", "$.uncertainty.std.sigma", "must be >= 0"),
    ("std: {sigma: 0.01, epsilon: 0.001}\ncorrelation: [[1, 1.5], [1.5, 1]]\nparameters: [sigma, epsilon]",
     "$.uncertainty.correlation", "not positive semi-definite"),
    ("samples: [[3.4, 0.01]]\nparameters: [sigma, epsilon]", "$.uncertainty.samples", "at least 2 samples"),
    ("file: missing.json", "$.uncertainty.file", "file not found"),
    ("covariance: [[1]]", "$.uncertainty.covariance", "needs 'parameters'"),
    ("std: {sigma: 0.01}\nrelative_std: {sigma: 0.01}", "$.uncertainty.relative_std.sigma", "both std and relative_std"),
])
def test_section_errors_name_the_key_and_the_fix(section, where, message):
    with pytest.raises(ConfigError) as err:
        load(section)
    text = str(err.value)
    assert where in text and message in text, text
    assert "<string>:" in text  # file:line:col


def test_not_differentiated_label_is_refused():
    text = BASE.replace("differentiate: [sigma, epsilon, strain]", "differentiate: [sigma]") + \
        "uncertainty: {std: {epsilon: 0.001}}\n"
    with pytest.raises(ConfigError, match="'epsilon' is not differentiated"):
        config.load(text=text)


def test_files_exported_by_a_fit(tmp_path):
    cov = [[4e-4, 1e-6], [1e-6, 1e-8]]
    (tmp_path / "fit.json").write_text(json.dumps({"parameters": ["sigma", "epsilon"], "covariance": cov}))
    (tmp_path / "fit.yaml").write_text("parameters: [sigma, epsilon]\nsamples:\n  - [3.40, 0.0104]\n  - [3.41, 0.0103]\n"
                                       "  - [3.39, 0.0105]\n")
    np.save(tmp_path / "cov.npy", np.array(cov))
    (tmp_path / "samples.csv").write_text("# sigma, epsilon\n3.40,0.0104\n3.41,0.0103\n3.39,0.0105\n")
    kind, labels, matrix = read_parameter_file(str(tmp_path / "fit.json"), "covariance")
    assert (kind, labels) == ("covariance", ("sigma", "epsilon")) and np.allclose(matrix, cov)
    kind, _, matrix = read_parameter_file(str(tmp_path / "fit.yaml"), "covariance")
    assert kind == "samples" and matrix.shape == (3, 2)
    kind, _, matrix = read_parameter_file(str(tmp_path / "cov.npy"), "covariance", ["sigma", "epsilon"])
    assert kind == "covariance" and np.allclose(matrix, cov)
    kind, _, matrix = read_parameter_file(str(tmp_path / "samples.csv"), "samples", ["sigma", "epsilon"])
    assert kind == "samples" and np.allclose(matrix[:, 0], [3.40, 3.41, 3.39])
    with pytest.raises(SpecIssue, match="needs 'parameters'"):
        read_parameter_file(str(tmp_path / "cov.npy"), "covariance")
    cfg = load("file: fit.json", tmp_path=tmp_path)
    assert cfg.uncertainty.kind == "covariance" and cfg.uncertainty.source == str(tmp_path / "fit.json")
    # the stored config names the file relative to the config's folder, as every path
    assert "file: fit.json" in cfg.to_yaml()


def components(*labels):
    out = []
    for label in labels:
        name = label.split("[")[0]
        index = tuple(int(i) for i in label[len(name) + 1:-1].split(",")) if "[" in label else ()
        out.append(ThetaComponent(label, name, index, None, ""))
    return out


def test_spec_onto_theta():
    comps = components("sigma[0,0]", "sigma[0,1]", "epsilon", "strain[0,0]")
    theta = np.array([3.0, 3.5, 0.01, 0.0])
    spec = parse_spec({"std": {"sigma": 0.1}, "relative_std": {"epsilon": 0.05}}, ".")
    sigma, mean = theta_covariance(spec, comps, theta)
    np.testing.assert_allclose(np.diag(sigma), [0.01, 0.01, (0.05 * 0.01) ** 2, 0.0])  # strain exact
    assert mean is None
    spec = parse_spec({"std": {"sigma[0,1]": 0.1, "epsilon": 0.001}, "correlation": [[1, -0.5], [-0.5, 1]],
                       "parameters": ["sigma[0,1]", "epsilon"]}, ".")
    sigma, _ = theta_covariance(spec, comps, theta)
    assert sigma[1, 2] == pytest.approx(-0.5 * 0.1 * 0.001) and sigma[0, 0] == 0.0
    samples = np.array([[3.4, 0.010], [3.5, 0.011], [3.6, 0.009]])
    spec = parse_spec({"samples": samples.tolist(), "parameters": ["sigma[0,1]", "epsilon"]}, ".")
    sigma, mean = theta_covariance(spec, comps, theta)
    np.testing.assert_allclose(sigma[np.ix_([1, 2], [1, 2])], np.cov(samples, rowvar=False))
    np.testing.assert_allclose(mean[[1, 2]], samples.mean(axis=0))
    with pytest.raises(ConfigError, match="'lambda' is not a differentiated parameter component"):
        theta_covariance(parse_spec({"std": {"lambda": 1.0}}, "."), comps, theta)
    with pytest.raises(ConfigError, match="names 2 components"):
        theta_covariance(parse_spec({"covariance": [[1.0]], "parameters": ["sigma"]}, "."), comps, theta)


# -- a run ------------------------------------------------------------------------------------

UNCERTAINTY = """
std: {sigma: 0.01, epsilon: 0.0002}
correlation: [[1, 0.5], [0.5, 1]]
parameters: [sigma, epsilon]
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from sensitiv.pipeline.run import run_config

    folder = tmp_path_factory.mktemp("uq")
    cfg = load(UNCERTAINTY, extra="observables: [energy, elastic_constants]\n", tmp_path=folder)
    outcome = run_config(cfg, output_path=str(folder / "out.nc"), force=True)
    import xarray as xr

    with xr.open_dataset(outcome.path) as ds:
        ds = ds.load()
    assert ds.sizes[dataset.FRAME] == 1
    return cfg, outcome, ds.isel({dataset.FRAME: 0})


def test_result_holds_the_propagation_with_units(run):
    cfg, outcome, ds = run
    a = outcome.analyses[0]
    assert outcome.trustworthy and a.uncertainty.second_order_trustworthy
    jac = ds[dataset.DX_DTHETA].values
    sigma = ds[dataset.PARAMETER_COVARIANCE].values
    per_atom = np.einsum("aip,pq,ajq->aij", jac, sigma, jac)
    np.testing.assert_allclose(ds[dataset.COORDINATES_COVARIANCE].values, per_atom, rtol=1e-10, atol=1e-20)
    np.testing.assert_allclose(ds[dataset.COORDINATES_STD].values ** 2,
                               np.diagonal(per_atom, axis1=1, axis2=2), rtol=1e-10, atol=1e-20)
    assert ds[dataset.COORDINATES_STD].attrs["units"] == "angstrom"
    assert ds[dataset.COORDINATES_COVARIANCE].attrs["units"] == "angstrom2"
    # the variance decomposition adds up, and the exact strain components carry none
    by_param = ds[dataset.variance_by_parameter_name(dataset.COORDINATES)].values
    np.testing.assert_allclose(by_param.sum(-1), ds[dataset.COORDINATES_STD].values ** 2, rtol=1e-9, atol=1e-22)
    strain = [i for i, lab in enumerate(a.labels) if lab.startswith("strain")]
    assert np.all(by_param[..., strain] == 0)
    assert ds[dataset.COORDINATES_IMPORTANCE].sum() == pytest.approx(1.0)
    # observables: energy σ from its stored total derivative
    de = ds[dataset.derivative_name("energy")].values
    assert float(ds[dataset.std_name("energy")]) == pytest.approx(np.sqrt(de @ sigma @ de), rel=1e-10)
    assert ds[dataset.std_name("energy")].attrs["units"] == "eV"
    assert ds[dataset.std_name("elastic_constants")].dims == (dataset.VOIGT_I, dataset.VOIGT_J)
    # x* of pure Lennard-Jones does not depend on ε in a fixed cell: that range is exact
    eps, sig = a.labels.index("epsilon[0,0]"), a.labels.index("sigma[0,0]")  # one species: one component
    assert np.isinf(ds[dataset.validity_names(dataset.COORDINATES)[0]].values[eps])
    assert np.isfinite(ds[dataset.validity_names(dataset.COORDINATES)[0]].values[sig])
    assert np.all(np.isnan(ds[dataset.validity_names(dataset.COORDINATES)[0]].values[strain]))
    assert ds.attrs[dataset.ATTR_UNCERTAINTY_RULE] == "shapley"


def test_summary_ranks_the_parameters(run):
    cfg, outcome, ds = run
    text = report.analysis_summary(outcome.path, outcome.analyses, outcome.timings)
    assert "uncertainty (config): σ(x*) per atom max" in text
    assert "variance of x* from: sigma[0,0] 87%, epsilon[0,0] 13%" in text, text
    record = report.summary_record(outcome.path, outcome.analyses, outcome.timings)
    unc = record["structures"][0]["uncertainty"]
    c11 = unc["elastic_constants"]["C11"]  # quoted in GPa (units physical here: eV/Å³)
    assert c11["units"] == "eV angstrom-3"
    assert f"elastic constants (1σ, GPa): C11 {c11['value'] * 160.2176634:.4g} ± {c11['std'] * 160.2176634:.2g}" in text
    # x* of pure Lennard-Jones in a fixed cell depends on σ only; ε, correlated with it
    # (ρ = 0.5), tells about it: the Shapley shares are 1 − ρ²/2 and ρ²/2 exactly
    shares = {r["parameter"]: r["share"] for r in unc["importance"]}
    assert shares["sigma[0,0]"] == pytest.approx(1 - 0.125, rel=1e-9)
    assert shares["epsilon[0,0]"] == pytest.approx(0.125, rel=1e-9)
    json.dumps(record, allow_nan=False)
    # a covariance read from a file is named by its file name (the eam_vacancy example's
    # case, once a NameError): no folder of the user's machine in the summary
    from_file = report._uncertainty_lines(dict(unc, source="/home/someone/fits/covariance.json"), "Å")
    assert from_file[0].startswith("  uncertainty (covariance.json): σ(x*) per atom max")
    # an observable whose first-order change vanishes (the stress of a cell held at zero
    # pressure by the covariance: silicon_uq) has a range of ~1e-13 σ; the summary says the
    # change is second order instead of quoting the range as if the first order held to it
    stress = dict(unc["observables"][0], label="stress", linear=False, validity_principal_min=5e-13)
    held = dict(unc["observables"][0], label="energy", linear=False, validity_principal_min=0.41)
    lines = report._uncertainty_lines(dict(unc, observables=[stress, held]), "Å")
    assert any(line.strip().startswith("stress:") and "second order in θ beyond 5e-13 σ" in line for line in lines), lines
    assert any(line.strip().startswith("energy:") and "first order within 1% to 0.41 σ" in line for line in lines), lines


def test_elastic_constant_uncertainty_matches_finite_differences(run):
    """dC/dθ and d²x*/dε dθ from second-order implicit derivatives = central differences of
    the relaxed-ion constants and internal-relaxation fields of re-relaxed structures."""
    from sensitiv.pipeline.check import _sampler
    from sensitiv.plugins import get_registry

    cfg, outcome, ds = run
    a = outcome.analyses[0]
    _, _, relax = _sampler(a, cfg, get_registry())
    dC = ds[dataset.derivative_name("elastic_constants")].values
    for label, h in (("sigma[0,0]", 1e-4), ("epsilon[0,0]", 1e-7)):
        k = a.labels.index(label)
        step = np.zeros_like(a.theta)
        step[k] = h
        plus, minus = relax(a.theta + step), relax(a.theta - step)
        fd = (plus[2] - minus[2]) / (2 * h)
        np.testing.assert_allclose(dC[..., k], fd, atol=2e-5 * np.max(np.abs(fd)))
        d2x = ds[dataset.D2X_DSTRAIN_DTHETA].values
        if label.startswith("sigma"):
            # the internal-relaxation field dx*/dε moves with θ as d²x*/dε dθ says
            fd_field = (plus[3] - minus[3]) / (2 * h)
            np.testing.assert_allclose(d2x[..., k], fd_field, atol=2e-5 * np.max(np.abs(fd_field)))
        else:
            # ε scales the Lennard-Jones energy: no position, nor its strain response, moves
            # (the finite difference is round-off over h here)
            sig = a.labels.index("sigma[0,0]")
            assert np.max(np.abs(d2x[..., k])) < 1e-6 * np.max(np.abs(d2x[..., sig])) * 3.405 / 0.0104


def test_check_samples_and_agrees(run):
    from sensitiv.pipeline.check import check_config, check_text

    cfg, outcome, ds = run
    result = check_config(cfg, samples=8, seed=3, analyses=outcome.analyses)
    rec = result.structures[0]
    assert rec["validity_agrees"] and rec["first_order_error"]["disagreements"] == 0
    # the second-order model of the same samples explains their mean (no sampling error)
    assert rec["positions"]["mean_model_residual"] < 0.1 * rec["positions"]["mean_sampling_error"]
    text = check_text(result)
    assert "samples re-relaxed" in text and "first-order error per sample" in text
    with pytest.raises(ConfigError, match="needs an 'uncertainty' section"):
        import dataclasses

        check_config(dataclasses.replace(cfg, uncertainty=None), samples=4)


def test_check_refuses_a_solver_that_relaxes_nothing():
    # with `solver: none` every sample would keep x̂: refused before any work
    from sensitiv.pipeline.check import check_config

    cfg = load("std: {sigma: 0.01}", extra="observables: [energy]\n")
    import dataclasses

    none = dataclasses.replace(cfg, solver=dataclasses.replace(cfg.solver, name="none"))
    assert not none.solver.relaxes
    with pytest.raises(ConfigError, match="relaxes nothing.*solver.name=fire"):
        check_config(none, samples=4)


@pytest.mark.slow  # 1-4 min on 2 loaded cores: the check's compilation, not the 4 atoms
def test_check_a_perfect_crystal_whose_atoms_do_not_move():
    # x* of a perfect crystal does not move with σ, ε: linear σ and sampled spread are both
    # round-off, and their ratio (here ~50) must not read as a disagreement
    from sensitiv.pipeline.check import check_config, check_text

    cfg = config.load(text="""
structure: {generator: {name: fcc, lattice_constant: 5.26, repeat: [1, 1, 1], species: Ar, rattle: 0.02, seed: 1}}
model:
  name: lennard_jones
  parameters: {sigma: 3.405, epsilon: 0.0104}
  options: {r_cutoff: 1.5, r_onset: 1.3, energy_units: eV}
  differentiate: [sigma, epsilon]
solver: {name: fire, options: {ftol: 1.0e-10}}
observables: [energy]
uncertainty: {relative_std: {sigma: 0.01, epsilon: 0.02}}
""")
    result = check_config(cfg, samples=6, seed=1)
    rec = result.structures[0]
    assert rec["positions"]["static"] and rec["positions"]["agrees"]
    assert rec["positions"]["rms_std_sampled"] < 1e-9 and rec["first_order_error"]["disagreements"] == 0
    energy = rec["observables"][0]  # E ∝ ε at fixed x*: resolved, and linear in ε
    assert energy["agrees"] and energy["std_sampled_max"] > 1e-4
    assert "x*: does not move" in check_text(result) and result.agrees
