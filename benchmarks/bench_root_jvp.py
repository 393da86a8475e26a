"""sensitiv.root_jvp under vmap against jaxopt's, side by side in one run.

Problem: multinomial-free logistic regression with one L2 weight per feature,
θ ∈ R^p; x*(θ) = argmin_w  Σ logistic loss + ½ Σ θ_j w_j². The full Jacobian ∂x*/∂θ
(p × p) is computed column by column with `root_jvp` under `vmap`, by both libraries,
with the same optimality function and comparable linear solves, and compared with a
dense closed-form reference `−H⁻¹ diag(w*)`.

Run:  python benchmarks/bench_root_jvp.py [--features 200] [--repeats 5]
Writes benchmarks/results/root_jvp.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time
import warnings

import jax
import jax.numpy as jnp

jax.config.update("jax_enable_x64", True)

import sensitiv  # noqa: E402


def make_problem(n_samples: int, n_features: int):
    key_x, key_w = jax.random.split(jax.random.PRNGKey(0))
    data = jax.random.normal(key_x, (n_samples, n_features)) / jnp.sqrt(n_features)
    labels = (data @ jax.random.normal(key_w, (n_features,)) > 0).astype(jnp.float64)

    def objective(w, theta):
        logits = data @ w
        return jnp.sum(jnp.logaddexp(0.0, logits) - labels * logits) + 0.5 * jnp.sum(theta * w**2)

    optimality = jax.grad(objective)
    theta = jnp.linspace(0.5, 2.0, n_features)

    @jax.jit
    def newton(theta):
        hess = jax.hessian(objective)

        def body(_, w):
            return w - jnp.linalg.solve(hess(w, theta), optimality(w, theta))

        return jax.lax.fori_loop(0, 30, body, jnp.zeros(n_features))

    w_star = newton(theta)
    reference = -jnp.linalg.solve(jax.hessian(objective)(w_star, theta), jnp.diag(w_star))
    return optimality, w_star, theta, reference


def timed_interleaved(functions: dict, repeats: int) -> dict:
    """Median wall time of each function, timing them in turn on every repeat so that
    the load of a shared machine drifts over all methods alike."""
    for fn in functions.values():
        jax.block_until_ready(fn())  # compile
    times = {name: [] for name in functions}
    for _ in range(repeats):
        for name, fn in functions.items():
            start = time.perf_counter()
            jax.block_until_ready(fn())
            times[name].append(time.perf_counter() - start)
    return {name: sorted(t)[len(t) // 2] for name, t in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", type=int, default=200)
    parser.add_argument("--samples", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--out", default=str(pathlib.Path(__file__).parent / "results" / "root_jvp.json"))
    args = parser.parse_args()

    optimality, w_star, theta, reference = make_problem(args.samples, args.features)
    eye = jnp.eye(args.features)
    tol = 1e-10

    def columns(jvp):
        return jax.jit(lambda: jax.vmap(jvp, out_axes=1)(eye))

    methods = {
        "sensitiv cg": columns(
            lambda u: sensitiv.root_jvp(optimality, w_star, (theta,), (u,), solve=sensitiv.LinearSolver("cg", tol=tol))
        ),
        "sensitiv auto (dense LU)": columns(
            lambda u: sensitiv.root_jvp(optimality, w_star, (theta,), (u,), solve="auto")
        ),
    }
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            from jaxopt import implicit_diff as jaxopt_implicit
            from jaxopt import linear_solve as jaxopt_linear_solve

        jaxopt_cg = lambda matvec, b: jaxopt_linear_solve.solve_cg(matvec, b, tol=tol)
        methods["jaxopt cg"] = columns(
            lambda u: jaxopt_implicit.root_jvp(optimality, w_star, (theta,), (u,), solve=jaxopt_cg)
        )
        methods["jaxopt lu"] = columns(
            lambda u: jaxopt_implicit.root_jvp(
                optimality, w_star, (theta,), (u,), solve=jaxopt_linear_solve.solve_lu
            )
        )
    except ImportError:
        print("jaxopt is not installed (pip install jaxopt==0.8.5): peers skipped")

    rows = []
    medians = timed_interleaved(methods, args.repeats)
    for name, fn in methods.items():
        seconds = medians[name]
        error = float(jnp.linalg.norm(fn() - reference) / jnp.linalg.norm(reference))
        rows.append({"method": name, "seconds": seconds, "relative_error": error})
    base = next((r["seconds"] for r in rows if r["method"] == "jaxopt cg"), rows[0]["seconds"])
    for row in rows:
        row["time_ratio_to_jaxopt_cg"] = row["seconds"] / base

    print(f"\nFull Jacobian, p = {args.features} features (root_jvp under vmap), median of {args.repeats}\n")
    print("| method | time (s) | ratio to jaxopt cg | relative error vs dense |")
    print("| --- | --- | --- | --- |")
    for row in rows:
        print(f"| {row['method']} | {row['seconds']:.4f} | {row['time_ratio_to_jaxopt_cg']:.3f} | {row['relative_error']:.2e} |")
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"features": args.features, "samples": args.samples, "rows": rows}, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
