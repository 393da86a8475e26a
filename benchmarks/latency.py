"""What a user waits for, side by side in one run (issue 14): first and warm runs, trajectory
frames, the polish against FIRE, the cheap commands.

    python benchmarks/latency.py                        # 2 CPU cores: ~15 minutes, 50 frames
    python benchmarks/latency.py --frames 10 --sections trajectory   # reduced

Sections (every wall time is measured here, in this run, on this machine; `uptime`'s
load is recorded with them, since the machine may be shared):

1. `sensitiv validate` and `sensitiv plugins`: wall time of the command (median of 3).
2. The README's command (`sensitiv analyze examples/softspheres/config.yaml`): a cold run
   (empty compilation cache), a warm run (the cache the cold run filled), and a run with
   `--no-cache`; against the compiled cost of minimization + Jacobian, i.e. the stage
   times of a second analysis of the same structure in one process.
3. A trajectory of `--frames` frames of LJ argon with a vacancy (107 atoms, rattled by
   0.01–0.05 Å so that neighbor counts vary), analyzed frame by frame in one process as
   `sensitiv analyze` does (solver `polish`, the default for files): frame 1, the mean of
   frames 2…N, and the steady state (frame N analyzed again), with the XLA compilations
   counted per frame (`jax.monitoring`), those of the engine's program apart, and the
   persistent cache off, so that the counts say what this process compiles. (The input
   frames differ in their interaction pairs; relaxed, they reach one minimum.)
4. Equilibrium from a LAMMPS-relaxed structure (EAM copper, 107 atoms, LAMMPS CG to
   `ftol` 1e-6): `polish` against `fire` to max‖f‖ ≤ 1e-10 eV/Å, compiled (second call).
5. An ensemble whose atom counts vary (`--ensemble` structures: fcc argon, 108 atoms, with
   0, 1, 2, … atoms taken out, rattled): analyzed with atom counts padded to their bucket
   (`jacobian.pad_atoms`, 112 here) and without, structure by structure in one process;
   per-structure wall and XLA compilations (engine programs apart), against the steady
   state (the last structure again, padded). Persistent cache off.

Writes `benchmarks/results/latency-<device>.json` and `.md`.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import sensitiv  # first: quiets XLA's cache-load log lines before jaxlib loads

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)

from jax import monitoring  # noqa: E402

from sensitiv.engine import _program  # noqa: E402  the engine's compiled program (its cache size)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README_CONFIG = os.path.join(ROOT, "examples", "softspheres", "config.yaml")
ARGON = os.path.join(ROOT, "examples", "lj_crystal", "argon_vacancy.extxyz")

COMPILES: collections.Counter = collections.Counter()


def _on_duration(event: str, duration: float, **kwargs) -> None:
    if event.endswith("backend_compile_duration"):
        COMPILES["count"] += 1
        COMPILES["seconds"] += duration


monitoring.register_event_duration_secs_listener(_on_duration)


def load() -> str:
    return os.getloadavg().__repr__()


def command_seconds(argv, env=None, repeat: int = 1) -> tuple[float, int]:
    times, code = [], 0
    for _ in range(repeat):
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "sensitiv.cli", *argv], cwd=ROOT, env=env,
                              capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        code = done.returncode
    return statistics.median(times), code


def cheap_commands() -> list[dict]:
    rows = []
    for argv in (["validate", README_CONFIG], ["plugins"]):
        seconds, code = command_seconds(argv, repeat=3)
        rows.append({"what": f"sensitiv {argv[0]}", "seconds": seconds, "exit": code})
    return rows


def readme_command(tmp: str) -> dict:
    env = {**os.environ, "SENSITIV_CACHE_DIR": os.path.join(tmp, "cache")}
    argv = ["analyze", README_CONFIG, "-o", os.path.join(tmp, "readme.nc"), "--force", "-q"]
    cold, _ = command_seconds(argv, env)
    warm, _ = command_seconds(argv, env)
    uncached, _ = command_seconds(argv + ["--no-cache"], env)
    # compiled minimization + Jacobian: a second analysis of the same structure in one process
    from sensitiv.pipeline import analyze, config, structure
    from sensitiv.pipeline._progress import Progress

    cfg = config.load(README_CONFIG)
    [s] = structure.read_structures(cfg.structure)
    analyze.analyze_structure(s, cfg)
    progress = Progress(enabled=False, verbosity=0)
    analyze.analyze_structure(s, cfg, progress=progress)
    compiled = progress.timings["minimization"] + progress.timings["jacobian"]
    return {"cold": cold, "warm": warm, "no_cache": uncached, "compiled_min_plus_jac": compiled,
            "target_warm": 1.3 * compiled + 1.0}


def trajectory(frames: int, tmp: str) -> dict:
    import ase.io

    from sensitiv import cache
    from sensitiv.pipeline import analyze, config, structure

    cache.disable()  # count what this process compiles
    atoms = ase.io.read(ARGON)
    path = os.path.join(tmp, "traj.extxyz")
    images = []
    for k in range(frames):
        image = atoms.copy()
        image.rattle(0.01 + 0.04 * k / max(frames - 1, 1), seed=k)
        images.append(image)
    ase.io.write(path, images, format="extxyz")
    text = (f"structure: {{file: {path}, frames: all}}\n"
            "model: {name: lennard_jones, parameters: {sigma: 3.405, epsilon: 0.0104},\n"
            "        options: {r_cutoff: 2.2, r_onset: 1.9, energy_units: eV}, differentiate: [sigma, epsilon]}\n"
            "observables: [energy, stress]\n")
    cfg = config.load(text=text)
    structures = structure.read_structures(cfg.structure)
    bound = analyze._bind(structures[0], cfg.model, sensitiv.plugins.get_registry(), None, np.float64).system
    pairs = [len(bound.interactions(s.positions, bound.params)) for s in structures]
    walls, compiles, engine = [], [], []
    for s in structures:
        before, engine_before = COMPILES["count"], _program.run._cache_size()
        start = time.perf_counter()
        analyze.analyze_structure(s, cfg)
        walls.append(time.perf_counter() - start)
        compiles.append(COMPILES["count"] - before)
        engine.append(_program.run._cache_size() - engine_before)
    before = COMPILES["count"]
    steadies = []
    for _ in range(3):  # the compiled cost of one frame: frame N again, median of 3
        start = time.perf_counter()
        analyze.analyze_structure(structures[-1], cfg)
        steadies.append(time.perf_counter() - start)
    later = walls[1:]
    return {"frames": frames, "solver": cfg.solver.name, "first": walls[0],
            "later_mean": float(np.mean(later)) if later else float("nan"),
            "later_max": float(np.max(later)) if later else float("nan"),
            "later_median": float(np.median(later)) if later else float("nan"), "walls": walls,
            "steady": statistics.median(steadies), "compiles_first": compiles[0],
            "compiles_later": compiles[1:], "compiles_later_total": int(sum(compiles[1:])),
            "engine_compiles_later": int(sum(engine[1:])), "compiles_steady": COMPILES["count"] - before,
            "input_pairs": [min(pairs), max(pairs)]}


def polish_against_fire(tmp: str) -> dict:
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    import lammps_reference as lmp
    import sensitiv_jaxmd as sj
    from test_jaxmd_lammps import FCC, MASSES, crystal, lammps_pair, structure

    positions, cell = crystal(FCC, 3.615, 3, vacancy=0, rattle=0.05, seed=1)
    data = os.path.join(tmp, "cu.data")
    lmp.write_data(data, positions, cell, [1] * len(positions), [MASSES["Cu"]])
    with lmp.Lammps(data, lammps_pair("eam", None, None, [(1, "Cu_u3.eam")])) as engine:
        minimum = engine.minimize(ftol=1e-6)
    start_force = float(np.linalg.norm(minimum["forces"], axis=1).max())
    system = sj.MODELS["eam"].record().factory(
        structure(minimum["positions"], cell, [1] * len(positions), ("Cu",)),
        {"potential_file": lmp.potential("Cu_u3.eam")})
    out = {"atoms": len(positions), "start_max_force": start_force}
    for name, solver in (("polish", sj.polish({"ftol": 1e-10})), ("fire", sj.fire({"ftol": 1e-10}))):
        solver(system, system.positions, system.params)  # compile
        start = time.perf_counter()
        result = solver(system, system.positions, system.params)
        jax.block_until_ready(result.positions)
        out[name] = {"seconds": time.perf_counter() - start, "steps": int(result.iterations),
                     "max_force": float(result.residual), "converged": bool(result.converged)}
    out["speedup"] = out["fire"]["seconds"] / out["polish"]["seconds"]
    return out


def varying_atoms(count: int, tmp: str) -> dict:
    import ase.build
    import ase.io

    from sensitiv import cache
    from sensitiv.pipeline import analyze, config, structure

    cache.disable()  # count what this process compiles
    crystal = ase.build.bulk("Ar", "fcc", a=5.26, cubic=True).repeat((3, 3, 3))  # 108 atoms
    images = []
    for k in range(count):
        image = crystal.copy()
        del image[[7 * j for j in range(k)]]
        image.rattle(0.02, seed=k)
        images.append(image)
    path = os.path.join(tmp, "ensemble.extxyz")
    ase.io.write(path, images, format="extxyz")
    model = ("model: {name: lennard_jones, parameters: {sigma: 3.405, epsilon: 0.0104},\n"
             "        options: {r_cutoff: 2.2, r_onset: 1.9, energy_units: eV}, differentiate: [sigma, epsilon]}\n")
    out = {"atoms": [len(i) for i in images]}
    for label, pad in (("padded", "true"), ("unpadded", "false")):
        cfg = config.load(text=f"structure: {{file: {path}, frames: all}}\n{model}observables: [energy, stress]\n"
                               f"jacobian: {{pad_atoms: {pad}}}\n")
        structures = structure.read_structures(cfg.structure)
        targets = [structure.atom_bucket(s.n_atoms) if pad == "true" else None for s in structures]
        walls, compiles, engine = [], [], []
        for s, pad_to in zip(structures, targets):
            before, engine_before = COMPILES["count"], _program.run._cache_size()
            start = time.perf_counter()
            analyze.analyze_structure(s, cfg, pad_to=pad_to)
            walls.append(time.perf_counter() - start)
            compiles.append(COMPILES["count"] - before)
            engine.append(_program.run._cache_size() - engine_before)
        out[label] = {"walls": walls, "compiles": compiles, "engine": engine, "buckets": targets}
        if pad == "true":
            start = time.perf_counter()
            analyze.analyze_structure(structures[-1], cfg, pad_to=targets[-1])
            out["steady"] = time.perf_counter() - start
    return out


def markdown(r: dict) -> str:
    lines = [f"# Latency (issue 14), {r['device']}, {r['date']}", "",
             f"load average before/after: {r['load_before']} / {r['load_after']}"
             + (f" (the run of sections {', '.join(r['sections_of_last_run'])}; the other rows come from an "
                f"earlier full run)" if r.get("sections_of_last_run") else ""), "",
             "| what | wall | ratio | target |", "| --- | --- | --- | --- |"]
    for row in r.get("cheap", ()):
        lines.append(f"| `{row['what']}` | {row['seconds']:.2f} s | — | ≤ 1.5 s |")
    rm, tr, po = r.get("readme"), r.get("trajectory"), r.get("polish")
    if rm:
        lines += [
            f"| README command, cold (empty cache) | {rm['cold']:.1f} s | 1 | — |",
            f"| README command, `--no-cache` | {rm['no_cache']:.1f} s | {rm['no_cache'] / rm['cold']:.2f} | — |",
            f"| README command, warm (cache filled) | {rm['warm']:.1f} s | {rm['warm'] / rm['cold']:.2f} | "
            f"≤ {rm['target_warm']:.1f} s = 1.3 × {rm['compiled_min_plus_jac']:.2f} s + 1 s |",
        ]
    if tr:
        lines += [
            f"| trajectory frame 1 ({tr['frames']} frames, {tr['solver']}) | {tr['first']:.2f} s | 1 | — |",
            f"| trajectory frames 2…N, mean (max) | {tr['later_mean']:.2f} s ({tr['later_max']:.2f} s) | "
            f"{tr['later_mean'] / tr['steady']:.2f} × steady | ≤ 1.3 × steady |",
            f"| trajectory frames 2…N, median | {tr['later_median']:.2f} s | "
            f"{tr['later_median'] / tr['steady']:.2f} × steady | — |",
            f"| trajectory steady state (frame N again, median of 3) | {tr['steady']:.2f} s | 1 | — |",
        ]
    if po:
        lines += [
            f"| polish from LAMMPS ftol 1e-6 → 1e-10 ({po['atoms']} atoms EAM Cu) | {po['polish']['seconds']:.3f} s, "
            f"{po['polish']['steps']} steps | {po['speedup']:.1f}× faster | ≥ 10× |",
            f"| FIRE from the same start to the same max‖f‖ | {po['fire']['seconds']:.3f} s, {po['fire']['steps']} steps "
            "| 1 | — |",
        ]
    en = r.get("ensemble")
    if en:
        for label in ("padded", "unpadded"):
            e = en[label]
            lines.append(f"| ensemble of {len(en['atoms'])} ({min(en['atoms'])}–{max(en['atoms'])} atoms), {label}: "
                         f"first; later mean | {e['walls'][0]:.2f} s; {np.mean(e['walls'][1:]):.2f} s | "
                         f"{np.mean(e['walls'][1:]) / en['steady']:.2f} × steady | — |")
        lines.append(f"| ensemble steady state (last structure again, padded) | {en['steady']:.2f} s | 1 | — |")
    if tr:
        lines += [
            "",
            f"XLA compilations (persistent cache off): frame 1 {tr['compiles_first']}; frames 2…N "
            f"{tr['compiles_later_total']} in all (engine programs: {tr['engine_compiles_later']}; per frame "
            f"{tr['compiles_later']}); steady {tr['compiles_steady']}. Interaction pairs of the input frames: "
            f"{tr['input_pairs'][0]}–{tr['input_pairs'][1]}.",
        ]
    if en:
        lines += ["", "XLA compilations per structure of the ensemble (atoms " + ", ".join(map(str, en["atoms"]))
                  + "): padded to " + ", ".join(map(str, en["padded"]["buckets"])) + f": {en['padded']['compiles']} "
                  f"(engine {en['padded']['engine']}); unpadded: {en['unpadded']['compiles']} "
                  f"(engine {en['unpadded']['engine']})."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=50, help="trajectory frames (issue: ≥ 50)")
    parser.add_argument("--ensemble", type=int, default=4, help="structures of the varying-N ensemble")
    parser.add_argument("--sections", default="cheap,readme,polish,trajectory,ensemble",
                        help="comma-separated subset of cheap, readme, polish, trajectory, ensemble")
    args = parser.parse_args()
    sections = set(args.sections.split(","))
    device = jax.devices()[0].platform
    result = {"device": device, "date": datetime.date.today().isoformat(), "machine": platform.node(),
              "cpus": os.cpu_count(), "load_before": load()}
    with tempfile.TemporaryDirectory() as tmp:
        if "cheap" in sections:
            result["cheap"] = cheap_commands()
        if "readme" in sections:
            result["readme"] = readme_command(tmp)
        if "polish" in sections:
            result["polish"] = polish_against_fire(tmp)
        if "trajectory" in sections:
            result["trajectory"] = trajectory(args.frames, tmp)
        if "ensemble" in sections:
            result["ensemble"] = varying_atoms(args.ensemble, tmp)
    result["load_after"] = load()
    out = os.path.join(ROOT, "benchmarks", "results", f"latency-{device}")
    print(markdown(result))
    if os.path.exists(out + ".json") and sections != {"cheap", "readme", "polish", "trajectory", "ensemble"}:
        # a partial run updates its sections of the stored results, keeping the others
        with open(out + ".json") as handle:
            stored = json.load(handle)
        result = {**stored, **result, "sections_of_last_run": sorted(sections)}
    text = markdown(result)
    with open(out + ".json", "w") as handle:
        json.dump(result, handle, indent=2)
    with open(out + ".md", "w") as handle:
        handle.write(text)


if __name__ == "__main__":
    main()
