"""How uncertain a Cu vacancy's relaxation and the cell's elastic constants are, given what
Cu_u3's fitting data leave uncertain in the potential, which part controls the first-shell
relaxation, and how far the linear prediction holds — from one run of `sensitiv analyze`
with an `uncertainty:` section (`uncertainty.yaml`), checked by `sensitiv check`.

Run:  python examples/eam_vacancy/fit_covariance.py     # covariance.json (committed)
      python examples/eam_vacancy/uncertainty.py [--samples N] [--out DIR]

Writes `output/eam_vacancy_uncertainty.png`, `output/eam_vacancy_uncertainty.json`, the
NetCDF result and the check's report. The four parts of the potential (F, ρ, φ scales and
the radial stretch λ, all 1 at the file) have the covariance of the fit (`covariance.json`).

By neighbour shell of the vacant site: the radial relaxation u_r, its standard deviation
from the linear propagation, and the share of its variance due to each part — computed
from the stored per-atom covariance and dx*/dθ with the Python API
(`sensitiv.uncertainty.importance` on du_r/dθ, the shell's radial projection).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from run import THETA_LABELS, _minimum_image, perfect_lattice  # noqa: E402

REPEAT = 4


def run_analysis(out: pathlib.Path, name: str):
    """`sensitiv analyze uncertainty.yaml` (through the Python API, to hand its analyses to
    the check): the result's first frame, the config and the run's outcome."""
    import xarray as xr

    from sensitiv.pipeline import config
    from sensitiv.pipeline.report import analysis_summary
    from sensitiv.pipeline.run import run_config

    cfg = config.load(str(HERE / f"{name}.yaml"))
    outcome = run_config(cfg, output_path=str(out / f"eam_vacancy_{name}.nc"), force=True)
    print(analysis_summary(outcome.path, outcome.analyses, outcome.timings))
    with xr.open_dataset(outcome.path) as opened:
        return opened.isel(frame=0).load(), cfg, outcome


def shell_table(ds, a0: float, count: int = 4) -> list[dict]:
    """Per shell: u_r, its σ, and the shares of its variance by part (Shapley; independent
    parts: (du_r/dθ_k σ_k)²)."""
    from sensitiv.uncertainty import ParameterCovariance, importance

    labels = [str(v) for v in ds["parameter_label"].values]
    cov = ParameterCovariance.from_matrix(ds["parameter_covariance"].values, np.zeros(len(labels)), labels=labels)
    perfect, _ = perfect_lattice(a0, REPEAT)
    perfect = perfect[1:]
    cell = ds["cell"].values
    site = _minimum_image(perfect, cell)
    distance = np.linalg.norm(site, axis=1)
    unit = site / distance[:, None]
    displacement = _minimum_image(ds["coordinates"].values - perfect, cell)
    displacement -= displacement.mean(axis=0)
    u_r = np.sum(displacement * unit, axis=1)
    jac = ds["dx_dtheta"].values
    du_r = np.einsum("nd,ndp->np", unit, jac - jac.mean(axis=0))
    cov_atoms = ds["coordinates_covariance"].values
    rows = []
    for r in np.unique(np.round(distance, 6))[:count]:
        members = np.abs(distance - r) < 1e-5
        mean_derivative = du_r[members].mean(axis=0)  # d(shell mean of u_r)/dθ
        imp = importance(mean_derivative[None, :], cov)
        shares = {lab: float(c) for lab, c in imp.ranking()}
        atom_std = np.sqrt(np.einsum("ni,nij,nj->n", unit[members], cov_atoms[members], unit[members]))
        rows.append({
            "shell": len(rows) + 1, "distance": float(r), "atoms": int(members.sum()),
            "u_r": float(u_r[members].mean()), "u_r_std": float(np.sqrt(imp.variance[0])),
            "u_r_std_per_atom": float(atom_std.mean()), "shares": shares,
        })
    return rows


def elastic_table(ds) -> dict:
    """C11, C12, C44 of the cell (relaxed ion) and their σ from the linear propagation, GPa."""
    value, std = ds["elastic_constants_gpa"].values, ds["elastic_constants_std_gpa"].values
    return {name: {"value": float(value[i, j]), "std": float(std[i, j])}
            for name, (i, j) in {"C11": (0, 0), "C12": (0, 1), "C44": (3, 3)}.items()}


def _name(label: str) -> str:
    """`embedding_scale[Cu]` → `F (embedding)`."""
    return THETA_LABELS.get(label.split("[")[0], label)


def figure(rows: list[dict], ds, path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    all_labels = [str(v) for v in ds["parameter_label"].values]
    sigma_all = np.sqrt(np.diag(ds["parameter_covariance"].values))
    uncertain = [i for i, sd in enumerate(sigma_all) if sd > 0]  # the strain is exact
    labels = [all_labels[i] for i in uncertain]
    colors = dict(zip(labels, plt.cm.tab10(np.arange(len(labels)))))
    fig, (ax_u, ax_share, ax_valid) = plt.subplots(1, 3, figsize=(15, 4.8),
                                                  gridspec_kw={"width_ratios": [1, 1.1, 1]})
    shells = [row["shell"] for row in rows]
    u = np.array([row["u_r"] for row in rows]) * 1e3
    s = np.array([row["u_r_std"] for row in rows]) * 1e3
    ax_u.bar(shells, u, yerr=2 * s, capsize=5, color="0.6", edgecolor="k")
    ax_u.axhline(0, color="k", lw=0.7)
    ax_u.set_xticks(shells, [f"{row['shell']}\n{row['distance']:.2f} Å\n({row['atoms']})" for row in rows])
    ax_u.set_ylabel("radial relaxation u_r (mÅ), ± 2σ")
    ax_u.set_title("relaxation by neighbour shell\n(negative: towards the vacancy)")
    bottom = np.zeros(len(rows))
    for lab in labels:
        share = np.array([row["shares"].get(lab, 0.0) for row in rows]) * 100
        ax_share.bar(shells, share, bottom=bottom, color=colors[lab], label=_name(lab))
        bottom += share
    ax_share.set_xticks(shells, [str(x) for x in shells])
    ax_share.set_xlabel("shell")
    ax_share.set_ylabel("share of the variance of the shell's u_r (%)")
    ax_share.set_title("which part controls it (Shapley shares,\nthe fit's correlated covariance)")
    ax_share.set_xlim(0.4, len(rows) + 2.2)  # room for the legend on the right
    ax_share.legend(fontsize=8, loc="center right")
    valid = ds["coordinates_validity"].values[uncertain] * 100
    lower = ds["coordinates_validity_lower"].values[uncertain] * 100
    upper = ds["coordinates_validity_upper"].values[uncertain] * 100
    upper = np.where(np.isfinite(upper), upper, valid * 1.5)
    y = np.arange(len(labels))
    ax_valid.barh(y, valid, color=[colors[lab] for lab in labels], alpha=0.85)
    ax_valid.errorbar(valid, y, xerr=[valid - lower, upper - valid], fmt="none", ecolor="k", capsize=4)
    ax_valid.set_yticks(y, [_name(lab) for lab in labels])
    ax_valid.invert_yaxis()
    sigma = sigma_all[uncertain] * 100
    ax_valid.scatter(sigma, y, marker="D", color="tab:red", zorder=3, label="1σ of the part (fit)")
    ax_valid.legend(fontsize=8, loc="lower right")
    ax_valid.set_xscale("log")
    ax_valid.set_xlabel("|Δθ| / θ (%) where first-order x* errs by 1 %")
    ax_valid.set_title("how far the linear prediction holds\n(estimate, bracket)")
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=32, help="θ samples of the check (0: skip it)")
    parser.add_argument("--out", default=str(HERE / "output"))
    parser.add_argument("--config", default="uncertainty", choices=("uncertainty", "uncertainty_measured"),
                        help="uncertainty.yaml (the fit's 300 K − 0 K spread, default) or uncertainty_measured.yaml")
    args = parser.parse_args(argv)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    a0 = json.loads((HERE / "output" / "eam_vacancy.json").read_text())["a0"]
    ds, cfg, outcome = run_analysis(out, args.config)
    rows = shell_table(ds, a0)
    labels = [str(v) for v in ds["parameter_label"].values]
    summary = {
        "a0": a0, "atoms": int(ds.sizes["atom"]), "shells": rows,
        "parameter_std": {lab: float(v) for lab, v in zip(labels, np.sqrt(np.diag(ds["parameter_covariance"].values)))},
        "positions_std_max": float(np.max(np.sqrt(np.sum(ds["coordinates_std"].values ** 2, axis=-1)))),
        "elastic_constants_GPa": elastic_table(ds),
        "validity_relative": {lab: float(v) for lab, v in zip(labels, ds["coordinates_validity"].values)},
        "validity_principal_sigma": [float(v) for v in ds["coordinates_validity_principal"].values],
        "field_importance": {lab: float(v) for lab, v in zip(labels, ds["coordinates_importance"].values)},
        "group_importance": {str(g): float(v) for g, v in zip(
            ds["group_label"].values, ds["coordinates_variance_by_group"].values.sum(axis=(0, 1))
            / float(np.sum(ds["coordinates_std"].values ** 2)))},
    }
    if args.samples:
        from sensitiv.pipeline.check import check_config, check_text

        report = check_config(cfg, samples=args.samples, analyses=outcome.analyses)
        print(check_text(report))
        summary["check"] = report.structures[0]
        summary["check_agrees"] = report.agrees
        (out / f"eam_vacancy_{args.config}_check.txt").write_text(check_text(report) + "\n")
    figure(rows, ds, out / f"eam_vacancy_{args.config}.png")
    (out / f"eam_vacancy_{args.config}.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps({k: v for k, v in summary.items() if k != "check"}, indent=2))
    return summary


if __name__ == "__main__":
    main()
