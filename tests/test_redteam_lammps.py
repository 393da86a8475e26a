"""Issue 19's binary case against LAMMPS: species are the file's own atom types.

An Ar/Kr fcc crystal in which LAMMPS atom 1 is made type 2 (`set atom 1 type 2`), so the
first atom of the file is Kr: species numbered by first appearance would swap the σ/ε
matrices written in type order (as `pair_coeff` writes them) and give a wrong answer that
every diagnostic calls trustworthy. Species by type, the energy at LAMMPS' minimum is
LAMMPS' `pe`, and sensitiv relaxes LAMMPS' start to LAMMPS' minimum. A data file and a
dump of one LAMMPS state give the same structure once wrapped (the same IDs, species and
coordinates), and a species option in the wrong order is refused."""

from __future__ import annotations

import numpy as np
import pytest

import lammps_reference as lmp_ref
from sensitiv.errors import InputError
from sensitiv.pipeline import config, run
from sensitiv.pipeline import structure as st
from sensitiv_ase.readers import read_with_ase

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SIGMA = [[3.40, 3.52], [3.52, 3.65]]          # type order: 1 = Ar, 2 = Kr
EPSILON = [[0.0104, 0.0121], [0.0121, 0.0140]]
CUTOFF = 7.5                                   # below half the 3 x 5.26 Å box

SCRIPT = f"""
units metal
boundary p p p
atom_style atomic
lattice fcc 5.26
region box block 0 3 0 3 0 3
create_box 2 box
create_atoms 1 box
mass 1 39.948
mass 2 83.798
set atom 1 type 2
set atom 50 type 2
pair_style lj/cut {CUTOFF}
pair_modify shift yes
pair_coeff 1 1 {EPSILON[0][0]} {SIGMA[0][0]}
pair_coeff 2 2 {EPSILON[1][1]} {SIGMA[1][1]}
pair_coeff 1 2 {EPSILON[0][1]} {SIGMA[0][1]}
displace_atoms all random 0.15 0.15 0.15 4711
displace_atoms all move 1.3 0.7 0.2
write_data start.data
min_style cg
min_modify dmax 0.05
minimize 0 1e-13 100000 1000000
min_style fire
timestep 0.002
minimize 0 1e-12 200000 2000000
write_data minimum.data
write_dump all custom minimum.dump id type x y z modify format float %.17g
write_dump all custom minimum_img.dump id type x y z ix iy iz modify format float %.17g
"""


@pytest.fixture(scope="module")
def lammps_run(tmp_path_factory):
    lammps = lmp_ref.lammps_module()
    folder = tmp_path_factory.mktemp("arkr")
    lmp = lammps(cmdargs=["-log", "none", "-screen", "none"])
    try:
        lmp.command(f"shell cd {folder}")
        lmp.commands_string(SCRIPT)
        pe = float(lmp.get_thermo("pe"))
        fmax = float(lmp.get_thermo("fmax"))
    finally:
        lmp.close()
    return folder, pe, fmax


def _config(folder, file, solver, **options):
    text = f"""
structure: {{file: {file}{', options: ' + repr(options) if options else ''}}}
model:
  name: lennard_jones
  parameters: {{sigma: {SIGMA}, epsilon: {EPSILON}}}
  differentiate: [sigma, epsilon]
  options: {{r_cutoff: {CUTOFF}, cutoff_units: absolute, truncation: shift}}
solver: {solver}
observables: [energy]
output: {{path: out.nc}}
"""
    (folder / "arkr.yaml").write_text(text)
    return config.load(str(folder / "arkr.yaml"))


def test_species_follow_lammps_types_and_the_energy_is_lammps_pe(lammps_run):
    folder, pe, fmax = lammps_run
    assert fmax < 1e-10
    cfg = _config(folder, "minimum.data", "{name: none}")
    outcome = run.analyze_config(cfg)
    (analysis,) = outcome.analyses
    s = analysis.structure
    assert s.species_names == ("Ar", "Kr") and s.species_types == (1, 2)
    assert s.species[0] == 1 and s.species[49] == 1 and (s.species == 1).sum() == 2  # atoms 1, 50: Kr
    energy = next(o for o in analysis.observables if o.name == "energy")
    assert abs(float(energy.value) - pe) <= 1e-9 * abs(pe), (float(energy.value), pe)
    assert analysis.stationarity_residual < 1e-7
    assert analysis.trustworthy, analysis.problems
    ds = outcome.result
    assert list(ds["species_name"].values) == ["Ar", "Kr"] and list(ds["species_type"].values) == [1, 2]
    np.testing.assert_array_equal(ds["atom_id"].values, np.arange(1, 109))


def test_sensitiv_relaxes_lammps_start_to_lammps_minimum(lammps_run):
    folder, pe, _ = lammps_run
    outcome = run.analyze_config(_config(folder, "start.data", "{name: fire, options: {ftol: 1e-10}}"))
    (analysis,) = outcome.analyses
    energy = float(next(o for o in analysis.observables if o.name == "energy").value)
    assert abs(energy - pe) <= 1e-9 * abs(pe)
    (lammps_min,) = read_with_ase(str(folder / "minimum.data"), "lammps-data")
    reference = st.canonical(lammps_min)
    cell = np.asarray(reference.cell)
    diff = analysis.positions - reference.positions
    frac = diff @ np.linalg.inv(cell)
    diff = (frac - np.round(frac)) @ cell  # the same atoms, up to lattice vectors
    assert np.abs(diff).max() < 1e-5, np.abs(diff).max()


def test_data_file_and_dumps_of_one_state_agree(lammps_run):
    folder, _, _ = lammps_run
    data = st.canonical(read_with_ase(str(folder / "minimum.data"), "lammps-data")[0])
    options = {"species": ["Ar", "Kr"]}
    for name in ("minimum.dump", "minimum_img.dump"):
        dump = st.canonical(read_with_ase(str(folder / name), "lammps-dump", options)[0])
        assert dump.species_names == data.species_names
        np.testing.assert_array_equal(dump.atom_ids, data.atom_ids)
        np.testing.assert_array_equal(dump.species, data.species)
        np.testing.assert_allclose(dump.positions, data.positions, atol=1e-9, rtol=0)
    # With image flags in the dump, the images agree with the data file's too.
    img = st.canonical(read_with_ase(str(folder / "minimum_img.dump"), "lammps-dump", options)[0])
    np.testing.assert_array_equal(img.image, data.image)
    assert np.abs(data.image).sum() > 0  # the case is one where images matter


def test_species_option_in_the_wrong_order_is_refused(lammps_run):
    folder, _, _ = lammps_run
    with pytest.raises(InputError, match="calls LAMMPS type 1 'Kr'.*makes it 'Ar'"):
        read_with_ase(str(folder / "minimum.data"), "lammps-data", {"species": ["Kr", "Ar"]})
