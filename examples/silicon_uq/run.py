"""How uncertain Stillinger–Weber silicon's relaxed-ion elastic constants and internal
relaxation are, given what experimental data leave uncertain in its parameters — one run of
`sensitiv analyze uncertainty.yaml`, checked by `sensitiv check` (re-relaxed θ samples).

Run:  python examples/silicon_uq/fit_covariance.py      # covariance.json (committed)
      python examples/silicon_uq/run.py [--samples N] [--repeat R] [--out DIR]

Writes `output/silicon_uq.json` (the numbers the README quotes), the NetCDF result and the
check's report. θ = (ε, σ, B, λ) at the fit, covariance from `covariance.json`; the cell
is held at 5.431 Å (the fit's zero-pressure lattice constant, the measured one).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
VOIGT = {"C11": (0, 0), "C12": (0, 1), "C44": (3, 3)}
#: GPa per eV/Å³
EV_A3_GPA = 160.21766208


def run_analysis(out: pathlib.Path, repeat: int):
    """`sensitiv analyze uncertainty.yaml` through the Python API (to hand its analyses to
    the check): the result's first frame, the config and the run's outcome."""
    import xarray as xr

    from sensitiv.pipeline import config
    from sensitiv.pipeline.report import analysis_summary
    from sensitiv.pipeline.run import run_config

    cfg = config.load(str(HERE / "uncertainty.yaml"), overrides=[f"structure.generator.repeat=[{repeat},{repeat},{repeat}]"])
    outcome = run_config(cfg, output_path=str(out / f"silicon_uq_{repeat}.nc"), force=True)
    print(analysis_summary(outcome.path, outcome.analyses, outcome.timings))
    with xr.open_dataset(outcome.path) as opened:
        return opened.isel(frame=0).load(), cfg, outcome


def summarize(ds) -> dict:
    """C11, C12, C44 (GPa) with their linear σ and the shares of their variance by parameter;
    the internal relaxation's σ; the validity ranges of the energy."""
    labels = [str(v) for v in ds["parameter_label"].values]
    uncertain = [i for i, s in enumerate(np.diag(ds["parameter_covariance"].values)) if s > 0]
    value, std = ds["elastic_constants_gpa"].values, ds["elastic_constants_std_gpa"].values
    by_parameter = ds["elastic_constants_variance_by_parameter"].values
    elastic = {}
    for name, (i, j) in VOIGT.items():
        var = by_parameter[i, j, uncertain]
        elastic[name] = {"value": float(value[i, j]), "std": float(std[i, j]),
                         "shares": {labels[k]: float(v / var.sum()) for k, v in zip(uncertain, var)}}
    field = ds["dx_dstrain_std"].values  # (atom, spatial, voigt): σ of dx*/dε
    derivative = ds["dx_dtheta"].values[..., [labels.index(f"strain[{a},{b}]") for a, b in ((1, 2),)]][..., 0]
    return {
        "atoms": int(ds.sizes["atom"]),
        "parameters": {labels[k]: float(ds["parameter_value"].values[k]) for k in uncertain},
        "parameter_std": {labels[k]: float(np.sqrt(ds["parameter_covariance"].values[k, k])) for k in uncertain},
        "elastic_constants_GPa": elastic,
        # under the shear γ_yz the two fcc sublattices shift along x against each other
        "internal_relaxation_yz": {"dx_dgamma_per_atom": float(np.max(np.abs(derivative[:, 0]))),
                                   "std_per_atom": float(np.max(field[:, 0, 3]))},
        "positions_std_max": float(np.max(np.sqrt(np.sum(ds["coordinates_std"].values ** 2, axis=-1)))),
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=32, help="θ samples of the check (0: skip it)")
    parser.add_argument("--repeat", type=int, default=2, help="cubic cells per axis (2: 64 atoms, 1: 8)")
    parser.add_argument("--out", default=str(HERE / "output"))
    args = parser.parse_args(argv)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    ds, cfg, outcome = run_analysis(out, args.repeat)
    summary = summarize(ds)
    summary["analyze_seconds"] = time.perf_counter() - start
    if args.samples:
        from sensitiv.pipeline.check import check_config, check_text

        start = time.perf_counter()
        report = check_config(cfg, samples=args.samples, analyses=outcome.analyses)
        summary["check_seconds"] = time.perf_counter() - start
        print(check_text(report))
        summary["check"] = report.structures[0]
        summary["check_agrees"] = report.agrees
        (out / f"silicon_uq_{args.repeat}_check.txt").write_text(check_text(report) + "\n")
    (out / f"silicon_uq_{args.repeat}.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "check"}, indent=2))
    return summary


if __name__ == "__main__":
    main()
