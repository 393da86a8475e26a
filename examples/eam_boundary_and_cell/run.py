"""A copper vacancy with a frozen boundary, and with its cell relaxed: `structure.fixed`
and `cell.relax` on the LAMMPS-relaxed vacancy of examples/eam_vacancy (Cu_u3.eam).

Run:  python examples/eam_boundary_and_cell/run.py [--out DIR] [--reuse]

1. **Frozen boundary** (`boundary.yaml`): the (100) slab of atoms farthest from the
   vacancy is fixed (a `block` region); the others relax (FIRE) and are differentiated with
   respect to the potential's parts. The fixed atoms' rows of `dx_dtheta` are exactly zero,
   no rigid mode is left, and the first shells' sensitivities are compared with the fully
   periodic result of examples/eam_vacancy.
2. **Relaxed cell** (`cell.yaml`): positions and the cell relax together at zero pressure;
   `dcell_dtheta` gives the lattice's response to each part of the potential, and its
   response to the pressure the bulk modulus of the defective crystal,
   B = −V dP/dV = −L / (3 dL/dP); the vacancy's relaxation volume is V − V₀.
3. **Checked against LAMMPS** (when installed): the same runs with `fix setforce 0 0 0` on
   the slab and with `fix box/relax aniso 0.0`, re-minimized with F(ρ) scaled by 1 ± 1e-4:
   central differences against dx/dθ and dL/dθ.
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
A0 = 3.615  # Å, the lattice constant examples/eam_vacancy relaxed the vacancy at
GPA_PER_EV_A3 = 160.21766208
THETA = ("embedding_scale", "density_scale", "pair_scale", "radial_scale")


def analyze(config: pathlib.Path, out: pathlib.Path, run: bool = True) -> dict:
    """Run `sensitiv analyze` on `config`, writing into `out` (or, with `run=False`, read
    the result already there); the result's numbers."""
    import xarray as xr

    from sensitiv.cli import ExitCode, main

    path = out / (config.stem + ".nc")
    if run:
        code = main(["analyze", str(config), "-o", str(path), "--force", "-q"])
        if code != ExitCode.OK:
            raise SystemExit(f"sensitiv analyze {config} failed ({code})")
    with xr.open_dataset(path) as ds:
        result = {name: np.asarray(ds[name].values[0]) for name in ("coordinates", "dx_dtheta", "cell")}
        result["labels"] = [str(v) for v in ds["parameter_label"].values]
        result["initial"] = np.asarray(ds["initial_coordinates"].values[0])
        for name in ("fixed", "dcell_dtheta", "initial_cell"):
            if name in ds:
                result[name] = np.asarray(ds[name].values if name == "fixed" else ds[name].values[0])
        for name in ("trustworthy", "null_space_dimension", "smallest_eigenvalue", "stationarity_residual"):
            result[name] = ds[name].values[0].item()
    return result


def _minimum_image(d, cell):
    s = d @ np.linalg.inv(cell)
    return (s - np.round(s)) @ cell


def first_shells(result: dict, count: int = 3) -> list[dict]:
    """Radial sensitivities du_r/dθ of the vacancy's first neighbour shells (sites from
    the input positions; no mean removed: the frozen slab fixes the translation)."""
    sites = _minimum_image(result["initial"], result["cell"])
    distance = np.linalg.norm(sites, axis=1)
    unit = sites / distance[:, None]
    du_r = np.einsum("nd,ndp->np", unit, result["dx_dtheta"])
    rows = []
    for r in np.unique(np.round(distance, 1))[:count]:
        members = np.abs(distance - r) < 0.05
        rows.append({"distance": float(distance[members].mean()), "atoms": int(members.sum()),
                     "du_r_dtheta": {label: float(du_r[members, k].mean()) for k, label in enumerate(result["labels"])},
                     "spread": float(np.ptp(du_r[members], axis=0).max())})
    return rows


def boundary_summary(result: dict) -> dict:
    fixed = result["fixed"].astype(bool)
    return {
        "atoms": int(fixed.size), "fixed": int(fixed.sum()),
        "fixed_rows_max_abs": float(np.abs(result["dx_dtheta"][fixed]).max()),
        "free_rows_max_abs": float(np.abs(result["dx_dtheta"][~fixed]).max()),
        "null_space_dimension": int(result["null_space_dimension"]),
        "smallest_eigenvalue": float(result["smallest_eigenvalue"]),
        "trustworthy": bool(result["trustworthy"]),
        "shells": first_shells(result),
    }


def cell_summary(result: dict) -> dict:
    labels = result["labels"]
    length = float(result["cell"][0, 0])
    dlength = {label: float(result["dcell_dtheta"][0, 0, k]) for k, label in enumerate(labels)}
    n = result["coordinates"].shape[0]
    omega = A0**3 / 4  # atomic volume of the perfect crystal
    v0 = float(np.linalg.det(result["initial_cell"]))
    v = float(np.linalg.det(result["cell"]))
    return {
        "atoms": n, "cell_length": length, "initial_cell_length": float(result["initial_cell"][0, 0]),
        "cubic": bool(np.abs(result["cell"] - np.eye(3) * length).max() < 1e-10),
        "dL_dtheta": dlength,
        "bulk_modulus_GPa": -length / (3 * dlength["pressure"]) * GPA_PER_EV_A3,
        # V − V₀ in atomic volumes: the vacancy's relaxation volume (V₀ holds N + 1 atoms
        # of the perfect crystal at its zero-pressure a₀, the cell LAMMPS relaxed the vacancy in)
        "relaxation_volume_omega": (v - v0) / omega,
        "trustworthy": bool(result["trustworthy"]),
        "null_space_dimension": int(result["null_space_dimension"]),
    }


def _lammps():
    sys.path.insert(0, str(ROOT / "tests"))
    try:
        import lammps_reference as ref
        ref.lammps_module()
    except BaseException:  # pytest.skip raises a BaseException subclass; no LAMMPS here
        return None
    return ref


def lammps_check(boundary: dict, cell: dict, h: float = 1e-4) -> dict | None:
    """dx/dθ (frozen slab) and dL/dθ (box/relax) for θ = the embedding scale, by LAMMPS'
    central differences of re-minimization; max relative errors. `None` without LAMMPS."""
    ref = _lammps()
    if ref is None:
        return None
    from sensitiv_jaxmd._potential_files import read_funcfl

    source = ref.potential("Cu_u3.eam")
    data = str(ROOT / "examples" / "eam_vacancy" / "vacancy.data")
    fixed_ids = " ".join(str(i + 1) for i in np.flatnonzero(boundary["fixed"]))
    runs = {"boundary": [f"group slab id {fixed_ids}", "fix freeze slab setforce 0.0 0.0 0.0"],
            "cell": ["fix relax all box/relax aniso 0.0 vmax 0.001 nreset 1"]}
    out: dict = {}
    with tempfile.TemporaryDirectory() as folder:
        f = read_funcfl(source)
        with open(source) as handle:
            head = [next(handle) for _ in range(3)]
        moved: dict = {name: [] for name in runs}
        for sign in (1.0, -1.0):
            file = os.path.join(folder, f"F{sign:+.0f}.eam")
            with open(file, "w") as handle:  # F(ρ) scaled by 1 ± h, same grids
                blocks = [f.frho * (1 + sign * h), f.zr, f.rhor]
                handle.write("".join(head) + "".join(
                    "\n".join(" ".join(repr(float(v)) for v in b[k:k + 5]) for k in range(0, len(b), 5)) + "\n"
                    for b in blocks))
            for name, fixes in runs.items():
                with ref.Lammps(data, ["pair_style eam", f"pair_coeff 1 1 {file}"]) as lmp:
                    for command in ["min_style cg", "min_modify line quadratic dmax 0.05", *fixes,
                                    "compute unwrapped all property/atom xu yu zu"]:
                        lmp.lmp.command(command)
                    # box/relax: a force norm of 1e-10 (its box "forces" stall LAMMPS' line search
                    # near 1e-13 on this cell), repeated since its objective refers to the start box
                    for _ in range(3 if name == "cell" else 1):
                        lmp.lmp.command(f"minimize 0.0 {1e-10 if name == 'cell' else 1e-13} 20000 200000")
                    lmp.lmp.command("run 0")
                    n = lmp.lmp.get_natoms()
                    ids = np.asarray(lmp.lmp.numpy.extract_atom("id"))[:n]
                    xu = np.array(lmp.lmp.numpy.extract_compute("unwrapped", 1, 2))[:n][np.argsort(ids)]
                    lo, hi = lmp.lmp.extract_box()[:2]
                    moved[name].append((xu, hi[0] - lo[0]))
        k = boundary["labels"].index("embedding_scale[Cu]")
        dx = (moved["boundary"][0][0] - moved["boundary"][1][0]) / (2 * h)
        ours = boundary["dx_dtheta"][:, :, k]
        out["boundary_dx_max_relative_error"] = float(np.abs(ours - dx).max() / np.abs(dx).max())
        dl = (moved["cell"][0][1] - moved["cell"][1][1]) / (2 * h)
        out["cell_dL_relative_error"] = abs(cell["dL_dtheta"]["embedding_scale[Cu]"] - dl) / abs(dl)
        out["cell_length_lammps"] = float(moved["cell"][0][1] + moved["cell"][1][1]) / 2
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(HERE / "output"))
    parser.add_argument("--reuse", action="store_true", help="summarize the NetCDF results already in --out")
    args = parser.parse_args(argv)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    boundary = analyze(HERE / "boundary.yaml", out, run=not args.reuse)
    cell = analyze(HERE / "cell.yaml", out, run=not args.reuse)
    cell_numbers = cell_summary(cell)
    summary = {"boundary": boundary_summary(boundary), "cell": cell_numbers,
               "lammps_check": lammps_check(boundary, cell_numbers)}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()
