"""Uncertainty propagation against one Jacobian and against sampling, in one run.

    python benchmarks/uncertainty.py                  # 63-atom SW silicon vacancy, 2 CPU cores: ~2 minutes
    python benchmarks/uncertainty.py --cells 3        # 215 atoms
    python benchmarks/uncertainty.py --samples 48     # more re-relaxed samples for the sampling side

Problem: diamond silicon, `cells³` conventional cells with one vacancy, Stillinger–Weber
(the jax-md plugin, every parameter differentiable), relaxed by FIRE to max‖f‖ ≤ 1e-10 eV/Å.
θ = (ε, σ, a, λ, γ, A, B), independently uncertain by `--rel-std` (default 1 %) of their
values: the point is the cost, and the first-order prediction's accuracy at this width,
measured here per sample. Observables: the energy and the pressure.

Measured after compilation (each the minimum of a few repeats), in the same process:

- `jacobian`: one call of the engine, `∂x*/∂θ` (7 columns, translations as null space);
- `propagation + importance`: per-atom covariance of x*, dg/dθ of the observables by
  forward products, their covariance, Shapley importance of x* and of each observable;
- `second order + validity`: second-order derivatives along the 7 parameter axes and the 7
  principal directions (one engine program: it factorizes `K` once, for the Jacobian and
  the second-order right-hand sides), the third-order bound, validity ranges;
- `propagate (all)`: `sensitiv.uncertainty.propagate`, everything above in one call,
  including its own Jacobian (the same single engine program);
- `one re-relaxation`: FIRE from x̂ at a sampled θ (mean over `--samples` samples);
- `sampling at 1 %`: the number of samples whose sample standard deviation has a relative
  standard error of 1 % (`1 + 1/(2 · 0.01²) = 5001` for Gaussian outputs), times one
  re-relaxation — extrapolated from the measured per-sample time, not run.

"Equal answer": each sampled structure is also compared with its first-order prediction
`x̂ + J δθ` (relative error of the predicted displacement field); a maximum below 1 % means
the linear propagation's standard deviations agree with what sampling would converge to,
to better than 1 %.

Writes `benchmarks/results/uncertainty-<device>.json` and `.md`.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)

import sensitiv  # noqa: E402
import sensitiv_jaxmd  # noqa: E402
from sensitiv.engine import translation_modes  # noqa: E402
from sensitiv.pipeline.structure import lattice  # noqa: E402
from sensitiv.uncertainty import (  # noqa: E402
    ParameterCovariance,
    directional_derivatives,
    importance,
    observable_covariance,
    observable_derivatives,
    per_atom_covariance,
    propagate,
    validity_range,
)

HERE = os.path.dirname(os.path.abspath(__file__))
THETA = ("epsilon", "sigma", "a", "lambda", "gamma", "A", "B")
SAMPLES_FOR_ONE_PERCENT = 1 + int(round(1 / (2 * 0.01**2)))


def block(tree):
    return jax.block_until_ready(tree)


def timed_interleaved(fns: dict, rounds=5, min_total=3.0, max_rounds=30):
    """Minimum wall time of each `fn()` over rounds that call every function once in turn
    (after one warm-up call each), so that load from other processes hits all alike."""
    out = {name: block(fn()) for name, fn in fns.items()}
    times = {name: [] for name in fns}
    start = time.perf_counter()
    n = 0
    while n < rounds or (time.perf_counter() - start < min_total and n < max_rounds):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            out[name] = block(fn())
            times[name].append(time.perf_counter() - t0)
        n += 1
    return {name: min(t) for name, t in times.items()}, out


def build(cells: int, rattle: float = 0.05, seed: int = 0):
    structure = lattice("diamond", 5.431, repeat=(cells,) * 3, species="Si", rattle=rattle, seed=seed)
    keep = np.arange(1, structure.n_atoms)  # a vacancy at atom 0
    structure = dataclasses.replace(structure, positions=np.asarray(structure.positions)[keep],
                                    species=np.asarray(structure.species)[keep])
    system = sensitiv_jaxmd.build_system(sensitiv_jaxmd.MODELS["stillinger_weber"], structure, {})
    fixed = {k: v for k, v in system.params.items() if k not in THETA}
    theta = {k: jnp.asarray(system.params[k], float) for k in THETA}

    def energy(x, th):
        return system.energy(x, {**fixed, **th})

    def pressure(x, th):
        return -jnp.trace(system.observables["stress"](x, {**fixed, **th})) / 3.0

    return structure, system, fixed, theta, energy, pressure


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=2)
    parser.add_argument("--samples", type=int, default=24)
    parser.add_argument("--rel-std", default="0.001,0.01",
                        help="relative standard deviations of θ, comma-separated: the costs use the first, "
                        "the sampling comparison runs for each")
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    args = parser.parse_args(argv)

    structure, system, fixed, theta, energy, pressure = build(args.cells)
    relax = sensitiv_jaxmd.fire({"ftol": 1e-10, "max_steps": 200000})
    res0 = relax(system, system.positions, {**fixed, **theta})
    assert res0.converged, res0.info
    x_hat = res0.positions
    n_atoms = x_hat.shape[0]
    F = jax.grad(energy)
    modes = translation_modes(n_atoms, 3)
    opts = dict(null_space=modes, symmetric=True)
    widths = [float(w) for w in str(args.rel_std).split(",")]
    covs = [ParameterCovariance.from_std({k: w * abs(float(v)) for k, v in theta.items()}) for w in widths]
    cov = covs[0]
    observables = {"energy": energy, "pressure": pressure}

    jac = sensitiv.jacobian(F, x_hat, theta, **opts)
    J = jac.jacobian
    lam, steps = cov.principal_directions()
    directions = np.concatenate([np.eye(cov.size), steps])

    def linear_part():
        fc = per_atom_covariance(J, cov)
        dg = observable_derivatives(observables, x_hat, theta, jacobian=J)
        oc = observable_covariance(dg, cov)
        imps = [importance(J, cov)] + [importance(dg[k], cov) for k in dg]
        return fc, oc, [i.contribution for i in imps]

    def second_part():
        dd = directional_derivatives(F, x_hat, theta, jacobian=J, directions=directions,
                                     observables=observables, **opts)
        vr = validity_range(dd.first, dd.second, third_bound=dd.third_bound)
        return dd, vr

    rows, outs = timed_interleaved({
        "jacobian": lambda: sensitiv.jacobian(F, x_hat, theta, **opts),
        "propagation + importance": linear_part,
        "second order + validity": second_part,
        "propagate (all, own Jacobian)": lambda: propagate(F, x_hat, theta, covariance=cov,
                                                           observables=observables, **opts),
    })
    t_jac = rows["jacobian"]
    fc, oc, _ = outs["propagation + importance"]
    dd, vr = outs["second order + validity"]
    res = outs["propagate (all, own Jacobian)"]

    # -- the sampling side -----------------------------------------------------------------
    # flattened θ is in jax.tree order (sorted keys): the covariance's labels say which is which
    j_flat = np.concatenate([np.asarray(J[k]).reshape(-1, 1) for k in cov.labels], axis=1)
    relax(system, x_hat, {**fixed, **theta})  # warm-up: the FIRE runner compiled for this system
    times, accuracy = [], []
    for width, cov_w in zip(widths, covs):
        rng = np.random.default_rng(1)
        deltas = rng.multivariate_normal(np.zeros(cov_w.size), cov_w.matrix, size=args.samples)
        errors, disp = [], []
        for delta in deltas:
            th = {k: theta[k] + delta[i] for i, k in enumerate(cov_w.labels)}
            t0 = time.perf_counter()
            r = relax(system, x_hat, {**fixed, **th})
            block(r.positions)
            times.append(time.perf_counter() - t0)
            assert r.converged, r.info
            moved = np.array(r.positions - x_hat)
            moved -= moved.mean(axis=0)  # the translation gauge of the minimum-norm Jacobian
            pred = (j_flat @ delta).reshape(moved.shape)
            errors.append(float(np.linalg.norm(moved - pred) / np.linalg.norm(pred)))
            disp.append(moved)
        disp = np.asarray(disp)
        centered = disp - disp.mean(axis=0)
        sampled_rms = float(np.sqrt(np.sum(centered**2) / (len(disp) - 1)))
        res_w = propagate(F, x_hat, theta, covariance=cov_w, observables=observables,
                          jacobian=jac, **opts)
        accuracy.append({
            "rel_std": width,
            "per_sample_first_order_error_max": max(errors),
            "per_sample_first_order_error_median": float(np.median(errors)),
            "field_rms_std_linear": float(np.sqrt(np.sum(np.asarray(res_w.positions.std) ** 2))),
            "field_rms_std_sampled": sampled_rms,
            "sampling_rel_se": float(1 / np.sqrt(2 * (len(disp) - 1))),
            "validity_principal_sigma_min": float(np.min(res_w.validity_principal["x"].estimate)),
            "validity_axes_relative": {
                lab: float(res_w.validity["x"].estimate[i] / abs(float(theta[lab])))
                for i, lab in enumerate(cov_w.labels)
            },
        })
    t_sample = float(np.mean(times))
    n1 = SAMPLES_FOR_ONE_PERCENT
    rows["one re-relaxation (mean)"] = t_sample
    rows[f"sampling at 1 % ({n1} re-relaxations, extrapolated)"] = t_sample * n1

    t_all = rows["propagate (all, own Jacobian)"]
    result = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "device": jax.devices()[0].device_kind,
        "platform": platform.platform(),
        "n_atoms": n_atoms,
        "n_params": cov.size,
        "times_s": rows,
        "propagate_over_jacobian": t_all / t_jac,
        "parts_over_jacobian": (t_jac + rows["propagation + importance"] + rows["second order + validity"]) / t_jac,
        "sampling_over_propagate": rows[f"sampling at 1 % ({n1} re-relaxations, extrapolated)"] / t_all,
        "jacobian_strategy": jac.info.strategy,
        "trustworthy": bool(jac.info.trustworthy),
        "second_order_trustworthy": bool(dd.info.trustworthy),
        "accuracy": accuracy,
        "ranking_x": res.importance["x"].ranking()[:4],
        "ranking_pressure": res.importance["pressure"].ranking()[:4],
    }
    device = "gpu" if jax.devices()[0].platform == "gpu" else "cpu"
    os.makedirs(args.out, exist_ok=True)
    stem = os.path.join(args.out, f"uncertainty-{device}")
    with open(stem + ".json", "w") as fh:
        json.dump(result, fh, indent=2)
    lines = [
        f"# Uncertainty propagation vs one Jacobian vs sampling ({device}, {result['date']})",
        "",
        f"SW silicon, {n_atoms} atoms (a vacancy), θ = {', '.join(cov.labels)} independent; "
        f"Jacobian strategy `{jac.info.strategy}`. Command: `python benchmarks/uncertainty.py`.",
        "",
        "| step | time (s) | × one Jacobian |",
        "| --- | ---: | ---: |",
    ]
    for name, t in rows.items():
        lines.append(f"| {name} | {t:.4g} | {t / t_jac:.3g} |")
    lines += [
        "",
        f"- propagate (everything, its own Jacobian included) / one Jacobian: "
        f"**{result['propagate_over_jacobian']:.2f}×** (goal ≤ 2×)",
        f"- sampling at 1 % / propagate: **{result['sampling_over_propagate']:.0f}×** (goal ≥ 100×)",
        "",
        "Is the linear answer the answer sampling converges to? Per sample, the first-order prediction "
        f"x̂ + J δθ against the re-relaxed structure ({args.samples} samples per width):",
        "",
        "| σ(θ)/θ | per-sample error, median | max | RMS σ of x*, linear (Å) | sampled (Å, ± s.e.) "
        "| smallest validity range (principal, in σ) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for acc in accuracy:
        lines.append(
            f"| {acc['rel_std']:.1%} | {acc['per_sample_first_order_error_median']:.2%} "
            f"| {acc['per_sample_first_order_error_max']:.2%} | {acc['field_rms_std_linear']:.4g} "
            f"| {acc['field_rms_std_sampled']:.4g} ± {acc['sampling_rel_se']:.0%} "
            f"| {acc['validity_principal_sigma_min']:.3g} |"
        )
    ranges = accuracy[0]["validity_axes_relative"]
    lines += [
        "",
        "Validity range of the first-order x* per parameter (1 % tolerance), relative to the parameter: "
        + ", ".join(f"{k} {v:.2%}" for k, v in sorted(ranges.items(), key=lambda kv: kv[1])),
        "",
        f"Importance for x* (σ = {widths[0]:.1%}): " + ", ".join(f"{a} {b:.1%}" for a, b in result["ranking_x"]),
        f"; for the pressure: " + ", ".join(f"{a} {b:.1%}" for a, b in result["ranking_pressure"]),
    ]
    with open(stem + ".md", "w") as fh:
        fh.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return result


if __name__ == "__main__":
    main()
