"""Full Jacobians ∂x*/∂θ of relaxed structures: sensitiv against its peers, on the same problems, in one run.

    python benchmarks/run.py            # reduced sizes: a few minutes on 2 CPU cores
    python benchmarks/run.py --full     # the sizes of the issue (needs a GPU for the large ones)
    python benchmarks/run.py --only soft-spheres-pp-128

Writes `benchmarks/results/jacobian-<device>.json` and `.md`. For every problem and method:
the time after compilation (`time`), its ratio to the FIRE minimization that produced the
structure (`× solve`), the first call including compilation (`first call`), the relative
error against a float64 reference, and the peak memory of the compiled program (XLA's
memory analysis: arguments + outputs + temporaries). Methods that would take far longer
than the solve run on a few columns and are extrapolated linearly (marked `~`).

Errors are max-abs differences relative to the largest reference entry, after removing
the rigid-translation components (the Jacobian is only defined up to them; the minimum-
norm one is the reference) and ignoring the rows of rattlers (atoms without any contact at
x*: their position is a zero mode, the minimum-norm Jacobian has zero rows there, while
re-minimization or unrolled FIRE moves them arbitrarily). Each sensitiv method starts from
cleared compilation caches, so its `first call` includes its own compilation. Timings are
noisy on a shared machine: each is the minimum of a few repeats.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import functools
import json
import math
import os
import platform
import subprocess
import sys
import time
import traceback

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from problems import Problem, silicon, soft_spheres  # noqa: E402

import sensitiv  # noqa: E402
from sensitiv.engine import Sparsity  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


# -- measuring ---------------------------------------------------------------------------------


def block(tree):
    return jax.block_until_ready(tree)


def timed(fn, repeats=3, min_total=1.0, max_repeats=50):
    """(first-call seconds, best warm seconds, result).

    Calls that take milliseconds are repeated until `min_total` seconds have passed (at
    most `max_repeats` times): on a shared machine the minimum of three such calls still
    carries the noise of a neighbour's burst.
    """
    t = time.perf_counter()
    out = block(fn())
    first = time.perf_counter() - t
    best, total, count = math.inf, 0.0, 0
    while count < repeats or (total < min_total and count < max_repeats):
        t = time.perf_counter()
        out = block(fn())
        elapsed = time.perf_counter() - t
        best, total, count = min(best, elapsed), total + elapsed, count + 1
    return first, best, out


def compiled_peak_bytes(jitted, *args):
    """Peak memory of a compiled program per XLA: arguments + outputs + temporaries − aliased."""
    try:
        analysis = jitted.lower(*args).compile().memory_analysis()
    except Exception:  # noqa: BLE001 - some backends do not report it
        return None
    if analysis is None:
        return None
    total = analysis.argument_size_in_bytes + analysis.output_size_in_bytes + analysis.temp_size_in_bytes
    return int(total - getattr(analysis, "alias_size_in_bytes", 0))


def rel_error(j, ref, null, keep_rows=None):
    j = np.asarray(j, np.float64)
    z = np.asarray(null)
    j = j - z.T @ (z @ j)
    diff = np.abs(j - ref)
    if keep_rows is not None:
        diff = diff[keep_rows]
    return float(np.max(diff) / np.max(np.abs(ref)))


def contact_rows(p: Problem, x, args):
    """Rows of the flat Jacobian that belong to atoms with at least one contact (not rattlers)."""
    pairs = np.asarray(p.pairs(x, p.theta, *args)).reshape(-1, 2)
    touched = np.zeros(p.n_atoms, bool)
    touched[pairs.ravel()] = True
    return np.repeat(touched, p.n_spatial)


# -- the reference -------------------------------------------------------------------------------


def reference_jacobian(p: Problem, x, args):
    """float64: dense `jax.hessian` + symmetric eigendecomposition pseudo-inverse (d ≤ 8192),
    else CG on exact Hessian-vector products to 1e-13 (translations projected out)."""
    F = p.optimality()
    flat = lambda v, t: F(v.reshape(x.shape), t, *args).reshape(-1)
    z = np.asarray(p.null_space)
    b = np.asarray(jax.jit(jax.jacfwd(lambda t: flat(x.reshape(-1), t)))(p.theta)).reshape(p.d, p.n)
    if p.d <= 8192:
        hess = np.asarray(jax.jit(jax.jacfwd(lambda v: flat(v, p.theta)))(x.reshape(-1)))
        hess = 0.5 * (hess + hess.T)
        w, v = np.linalg.eigh(hess)
        keep = np.abs(w) > 1e-10 * np.abs(w).max()
        ref = -(v[:, keep] / w[keep]) @ (v[:, keep].T @ b)
        return ref - z.T @ (z @ ref), "dense eigendecomposition pseudo-inverse (float64)"
    _, hvp = jax.linearize(lambda v: flat(v, p.theta), x.reshape(-1))
    zj = jnp.asarray(z)
    proj = lambda v: v - zj.T @ (zj @ v)
    op = jax.jit(lambda v: proj(hvp(proj(v))))
    cols = []
    for j in range(p.n):
        rhs = proj(-jnp.asarray(b[:, j]))
        sol, _ = jax.scipy.sparse.linalg.cg(op, rhs, tol=1e-13, maxiter=20 * p.d)
        cols.append(np.asarray(proj(sol)))
    return np.stack(cols, 1), "CG on exact Hessian-vector products, tol 1e-13 (float64)"


# -- the methods -----------------------------------------------------------------------------------


def sensitiv_method(p: Problem, x, args, method, repeats):
    F = p.optimality()
    jax.clear_caches()  # `first call` = this method's own compilation + run

    def run():
        pairs = p.pairs(x, p.theta, *args)  # the structure hint a plugin hands over, timed
        sparsity = Sparsity.from_pairs(pairs, p.n_atoms, p.n_spatial)
        result = sensitiv.jacobian(
            F, x, p.theta, *args, method=method, null_space=p.null_space, sparsity=sparsity,
            per_atom_params=p.per_atom_params, symmetric=True,
        )
        return result

    try:
        first, best, result = timed(run, repeats)
    except sensitiv.errors.InputError as err:  # e.g. a dense matrix beyond the memory budget
        return dict(skipped=str(err))
    info = result.info
    sparsity = Sparsity.from_pairs(p.pairs(x, p.theta, *args), p.n_atoms, p.n_spatial)
    jitted = jax.jit(lambda xx, tt, zz, *aa: sensitiv.jacobian(
        F, xx, tt, *aa, method=method, null_space=zz, sparsity=sparsity,
        per_atom_params=p.per_atom_params, symmetric=True).jacobian)
    peak = compiled_peak_bytes(jitted, x, p.theta, p.null_space, *args)
    note = (
        f"{info.strategy}/{info.mode}, {info.n_colors} colors, {info.n_products} JVPs; "
        f"trustworthy={bool(info.trustworthy)}, verdict {info.verdict}, "
        f"λ_min {float(info.lambda_min):.2e}, est. error {float(info.jacobian_error_estimate):.1e}"
    )
    if info.strategy == "krylov":
        its = np.asarray(info.column_iterations)
        note += f", CG iterations ≤ {int(its.max())}"
    return dict(
        first=first, time=best, jacobian=np.asarray(result.jacobian).reshape(p.d, p.n),
        peak=peak, note=note, columns=p.n,
    )


def jaxopt_method(p: Problem, x, args, max_columns, repeats):
    from jaxopt import implicit_diff, linear_solve

    F = p.optimality()
    closed = lambda xx, tt: F(xx, tt, *args)
    solve = functools.partial(linear_solve.solve_cg, tol=1e-10)
    k = min(p.n, max_columns)
    tangents = jnp.eye(p.n, dtype=x.dtype)[:k]

    @jax.jit
    def columns(x, theta, tangents):
        return jax.vmap(lambda u: implicit_diff.root_jvp(closed, x, (theta,), (u,), solve=solve))(tangents)

    first, best, cols = timed(lambda: columns(x, p.theta, tangents), repeats)
    jac = np.asarray(cols).reshape(k, p.d).T
    scale = p.n / k
    return dict(
        first=first, time=best * scale, jacobian=jac, columns=k,
        peak=compiled_peak_bytes(columns, x, p.theta, tangents),
        note=("root_jvp under vmap, solve_cg tol 1e-10" + (f"; {k} of {p.n} columns, extrapolated" if k < p.n else "")),
        extrapolated=k < p.n,
    )


def optimistix_method(p: Problem, x, args, repeats):
    try:
        import lineax as lx
        import optimistix as optx
    except ImportError as err:
        return dict(skipped=f"optimistix not installed ({err})")
    F = p.optimality()
    fn = lambda y, theta: F(y, theta, *args)
    # The Hessian is singular (translations): the default LU gives a non-unique answer;
    # SVD (well_posed=False) is what gives the minimum-norm Jacobian.
    solver = optx.Newton(rtol=1e-8, atol=1e-10, linear_solver=lx.AutoLinearSolver(well_posed=False))
    adjoint = optx.ImplicitAdjoint(linear_solver=lx.AutoLinearSolver(well_posed=False))

    @jax.jit
    def jac(theta, y0):
        return jax.jacfwd(lambda t: optx.root_find(fn, solver, y0, t, adjoint=adjoint, throw=False, max_steps=4).value)(theta)

    first, best, out = timed(lambda: jac(p.theta, x), repeats)
    return dict(
        first=first, time=best, jacobian=np.asarray(out).reshape(p.d, p.n), columns=p.n,
        peak=compiled_peak_bytes(jac, p.theta, x),
        note="root_find(Newton from x*) + ImplicitAdjoint, lineax AutoLinearSolver(well_posed=False) = SVD; jax.jacfwd",
    )


def finite_differences(p: Problem, x, columns, h):
    """Central differences of re-minimization (FIRE warm-started at x*), a few columns, extrapolated."""
    cols = []
    p.solve(x, p.theta)  # compile outside the timing (caches may have been cleared)
    t = time.perf_counter()
    for j in columns:
        e = np.zeros(p.n)
        e[j] = h
        xp, *_ = p.solve(x, p.theta + e)
        xm, *_ = p.solve(x, p.theta - e)
        dx = np.asarray(xp - xm)
        # positions are wrapped into the periodic box: take the minimum image of the change
        if p.box is not None:
            dx = dx - p.box * np.round(dx / p.box)
        cols.append(dx.reshape(-1) / (2 * h))
    elapsed = time.perf_counter() - t
    return dict(
        time=elapsed * p.n / len(columns), jacobian=np.stack(cols, 1), columns=len(columns),
        extrapolated=len(columns) < p.n, first=None, peak=None,
        note=f"central, h = {h:g}, FIRE re-minimization warm-started at x*; {len(columns)} of {p.n} columns, extrapolated",
    )


def unrolled_fire(p: Problem, args, columns, repeats=1):
    """Forward-mode differentiation through the unrolled FIRE iterations (jvp through the
    while_loop from the original x₀), a few columns, extrapolated. Reverse mode would need
    every iterate stored (jax-md's notebook: ~90 GiB at 55 particles) and is not attempted."""
    run = p.solve_traceable
    tangents = jnp.eye(p.n, dtype=p.x0.dtype)[jnp.asarray(columns)]

    @jax.jit
    def jvps(x0, theta, tangents, *args):
        return jax.vmap(lambda u: jax.jvp(lambda t: run(x0, t, *args)[0], (theta,), (u,))[1])(tangents)

    overflow = bool(jax.jit(lambda x0, t, *a: run(x0, t, *a)[1])(p.x0, p.theta, *args))
    if overflow:
        return dict(skipped="the neighbor list overflowed along the unrolled trajectory")
    first, best, out = timed(lambda: jvps(p.x0, p.theta, tangents, *args), repeats)
    jac = np.asarray(out).reshape(len(columns), p.d).T
    return dict(
        first=first, time=best * p.n / len(columns), jacobian=jac, columns=len(columns),
        extrapolated=len(columns) < p.n, peak=compiled_peak_bytes(jvps, p.x0, p.theta, tangents, *args),
        note=f"jvp through FIRE's while_loop from x₀; {len(columns)} of {p.n} columns, extrapolated",
    )


# -- the run ------------------------------------------------------------------------------------------


def problem_set(full: bool):
    """(builder, per-method column budgets) for reduced or full sizes."""
    if not full:
        return [
            ("soft-spheres-pp-128", lambda: soft_spheres(128, per_particle=True), dict(jaxopt=128, fd=2, unrolled=2)),
            ("soft-spheres-pp-512", lambda: soft_spheres(512, per_particle=True), dict(jaxopt=16, fd=1, unrolled=1)),
            ("soft-spheres-sp-512", lambda: soft_spheres(512, per_particle=False), dict(jaxopt=2, fd=1, unrolled=1)),
            ("silicon-sw-63", lambda: silicon(2), dict(jaxopt=6, fd=2, unrolled=2)),
        ]
    return [
        ("soft-spheres-pp-128", lambda: soft_spheres(128, per_particle=True), dict(jaxopt=128, fd=4, unrolled=4)),
        ("soft-spheres-pp-512", lambda: soft_spheres(512, per_particle=True), dict(jaxopt=64, fd=2, unrolled=2)),
        ("soft-spheres-pp-2048", lambda: soft_spheres(2048, per_particle=True), dict(jaxopt=16, fd=1, unrolled=1)),
        ("soft-spheres-sp-4096", lambda: soft_spheres(4096, per_particle=False), dict(jaxopt=2, fd=2, unrolled=2)),
        ("soft-spheres-sp-16384", lambda: soft_spheres(16384, per_particle=False), dict(jaxopt=2, fd=1, unrolled=1)),
        ("silicon-sw-511", lambda: silicon(4), dict(jaxopt=6, fd=3, unrolled=3)),
    ]


def run_problem(build, budget, methods, repeats, on_gpu):
    p = build()
    print(f"\n== {p.name}: {p.description} (d = {p.d}, n = {p.n})", flush=True)
    first_solve = time.perf_counter()
    x, args, steps, fmax = p.solve(p.x0, p.theta)
    first_solve = time.perf_counter() - first_solve
    solve_time = math.inf
    for _ in range(1):
        t = time.perf_counter()
        x, args, steps, fmax = p.solve(p.x0, p.theta)
        solve_time = min(solve_time, time.perf_counter() - t)
    print(f"FIRE: {steps} steps, max‖force‖ {fmax:.1e}, {solve_time:.2f} s", flush=True)
    ref, ref_kind = reference_jacobian(p, x, args)
    keep_rows = contact_rows(p, x, args)
    n_rattlers = p.n_atoms - int(keep_rows.sum()) // p.n_spatial
    if n_rattlers:
        ref_kind += f"; errors exclude the {n_rattlers} rattler(s)' rows"
    rows = [dict(method="FIRE minimization", time=solve_time, first=first_solve, error=None,
                 peak=None, note=f"{steps} steps to max‖force‖ < {fmax:.0e}")]

    def record(name, fn):
        if name.split(" ")[0] not in methods:
            return
        try:
            out = fn()
        except Exception as err:  # noqa: BLE001 - a failing peer is a result, not a crash
            traceback.print_exc()
            out = dict(skipped=f"failed: {type(err).__name__}: {str(err).splitlines()[0][:160]}")
        if "skipped" in out:
            rows.append(dict(method=name, time=None, error=None, first=None, peak=None, note=out["skipped"]))
            print(f"{name}: skipped ({out['skipped']})", flush=True)
            return
        cols = out["jacobian"].shape[1]
        idx = out.get("column_index", slice(0, cols))
        err = rel_error(out["jacobian"], ref[:, idx], p.null_space, keep_rows)
        rows.append(dict(method=name, time=out["time"], first=out.get("first"), error=err,
                         peak=out.get("peak"), note=out.get("note", ""), extrapolated=out.get("extrapolated", False)))
        print(f"{name}: {out['time']:.4g} s ({out['time'] / solve_time:.3g}× solve), error {err:.1e}; {out.get('note', '')}", flush=True)

    for method in ("auto", "dense", "krylov"):
        record(f"sensitiv {method}", lambda m=method: sensitiv_method(p, x, args, m, repeats))
    record("jaxopt root_jvp+vmap (CG)", lambda: jaxopt_method(p, x, args, budget["jaxopt"], 1))
    if p.d <= (4096 if on_gpu else 1024):
        record("optimistix ImplicitAdjoint+jacfwd", lambda: optimistix_method(p, x, args, 1))
    else:
        record("optimistix ImplicitAdjoint+jacfwd", lambda: dict(
            skipped=f"d = {p.d}: dense SVD per solve is impractical here (needs well_posed=False for the singular Hessian)"))
    fd_cols = list(range(budget["fd"]))

    def fd():
        out = finite_differences(p, x, fd_cols, p.fd_step)
        out["column_index"] = fd_cols
        return out

    record("finite differences (re-minimization)", fd)
    un_cols = list(range(budget["unrolled"]))

    def unrolled():
        out = unrolled_fire(p, args, un_cols)
        out["column_index"] = un_cols
        return out

    record("unrolled FIRE (forward mode)", unrolled)
    for row in rows:
        row["ratio"] = None if row["time"] is None else row["time"] / solve_time
    return dict(problem=p.name, description=p.description, d=p.d, n=p.n, fire_steps=steps,
                fire_max_force=fmax, reference=ref_kind, rows=rows)


def fmt_bytes(b):
    if b is None:
        return "—"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if b < 1024 or unit == "GiB":
            return f"{b:.0f} {unit}" if unit == "B" else f"{b:.1f} {unit}"
        b /= 1024


def markdown(report):
    lines = [
        f"# Full-Jacobian benchmark ({report['mode']} sizes)",
        "",
        f"{report['date']} · {report['device']} · jax {report['jax']} · float64 · command: `{report['command']}`",
        "",
        "`× solve`: time divided by the FIRE minimization's; `~`: measured on a few columns and "
        "extrapolated; error: max |ΔJ| / max |J_ref| after removing rigid translations; peak: "
        "XLA memory analysis of the compiled program.",
    ]
    for prob in report["problems"]:
        lines += ["", f"## {prob['problem']}: {prob['description']}", "",
                  f"d = {prob['d']}, n = {prob['n']}; FIRE {prob['fire_steps']} steps; reference: {prob['reference']}", "",
                  "| method | time | × solve | first call | error | peak memory | notes |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for r in prob["rows"]:
            t = "—" if r["time"] is None else ("~" if r.get("extrapolated") else "") + f"{r['time']:.3g} s"
            ratio = "—" if r["ratio"] is None else ("~" if r.get("extrapolated") else "") + f"{r['ratio']:.3g}"
            first = "—" if r.get("first") is None else f"{r['first']:.3g} s"
            err = "—" if r["error"] is None else f"{r['error']:.1e}"
            lines.append(f"| {r['method']} | {t} | {ratio} | {first} | {err} | {fmt_bytes(r.get('peak'))} | {r['note']} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="the issue's sizes (GPU recommended)")
    parser.add_argument("--only", default=None, help="run only problems whose name contains this")
    parser.add_argument("--methods", default="sensitiv,jaxopt,optimistix,finite,unrolled",
                        help="comma-separated method families to run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    parser.add_argument("--problem-json", default=None, help=argparse.SUPPRESS)  # child mode
    args = parser.parse_args(argv)
    argv = list(sys.argv[1:] if argv is None else argv)
    methods = set(args.methods.split(","))
    device = jax.devices()[0]
    on_gpu = device.platform == "gpu"
    problems = [(name, build, budget) for name, build, budget in problem_set(args.full)
                if not args.only or args.only in name]
    if args.problem_json:
        # Child: one problem per process (jax-md's cached traces of neighbor lists of equal
        # shapes collide across problems, and each method's memory then starts clean).
        (name, build, budget), = problems
        result = run_problem(build, budget, methods, args.repeats, on_gpu)
        with open(args.problem_json, "w") as fh:
            json.dump(result, fh, default=float)
        return
    report = dict(
        mode="full" if args.full else "reduced",
        date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        device=f"{device.platform}: {getattr(device, 'device_kind', '')} ×{jax.device_count()}, "
               f"{os.cpu_count()} CPU cores, {platform.machine()}",
        jax=jax.__version__, command="python benchmarks/run.py " + " ".join(argv),
        problems=[],
    )
    os.makedirs(args.out, exist_ok=True)
    for name, _, _ in problems:
        fragment = os.path.join(args.out, f".{name}.json")
        child, skip = [], False
        for a in argv:
            if skip:
                skip = False
            elif a == "--only":
                skip = True
            elif not a.startswith("--only="):
                child.append(a)
        cmd = [sys.executable, os.path.abspath(__file__), *child, "--only", name, "--problem-json", fragment]
        code = subprocess.call(cmd)
        if code != 0 or not os.path.exists(fragment):
            report["problems"].append(dict(problem=name, description=f"failed (exit code {code})", d=0, n=0,
                                           fire_steps=0, fire_max_force=0, reference="—", rows=[]))
            continue
        with open(fragment) as fh:
            report["problems"].append(json.load(fh))
        os.remove(fragment)
    tag = f"{'full' if args.full else 'reduced'}-{device.platform}"
    with open(os.path.join(args.out, f"jacobian-{tag}.json"), "w") as fh:
        json.dump(report, fh, indent=1, default=float)
    with open(os.path.join(args.out, f"jacobian-{tag}.md"), "w") as fh:
        fh.write(markdown(report))
    print("\n" + markdown(report))


if __name__ == "__main__":
    main()
