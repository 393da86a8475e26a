"""examples/eam_boundary_and_cell: the LAMMPS-relaxed Cu vacancy with a frozen slab
(`structure.fixed`) and with its cell relaxed (`cell.relax`): committed numbers, README,
and (slow) a fresh run that reproduces them."""

import json

import pytest

from example_loader import load_example

ex = load_example("eam_boundary_and_cell")


def _check(summary):
    b, c = summary["boundary"], summary["cell"]
    assert b["trustworthy"] and c["trustworthy"]
    assert b["fixed"] == 32 and b["fixed_rows_max_abs"] == 0.0 and b["free_rows_max_abs"] > 1e-2
    assert b["null_space_dimension"] == 0  # the slab pins the translations
    first = b["shells"][0]
    assert first["atoms"] == 12 and first["spread"] > 1e-3  # the slab breaks the shell's symmetry
    f, phi = first["du_r_dtheta"]["embedding_scale[Cu]"], first["du_r_dtheta"]["pair_scale[Cu,Cu]"]
    assert abs(f + phi) < 1e-8 * abs(f)  # F and φ scaled together cannot move a minimum
    assert c["cubic"] and c["null_space_dimension"] == 3
    assert c["relaxation_volume_omega"] < 0  # a vacancy in Cu_u3 contracts its cell
    assert 120 < c["bulk_modulus_GPa"] < 150  # Cu_u3 was fitted to B = 138 GPa
    assert abs(c["dL_dtheta"]["embedding_scale[Cu]"] + c["dL_dtheta"]["pair_scale[Cu,Cu]"]) < 1e-8
    # at zero pressure the radial stretch scales the whole crystal: dL/dλ = L
    assert c["dL_dtheta"]["radial_scale"] == pytest.approx(c["cell_length"], rel=1e-8)
    check = summary["lammps_check"]
    if check is not None:
        assert check["boundary_dx_max_relative_error"] < 1e-5
        assert check["cell_dL_relative_error"] < 1e-5
        assert check["cell_length_lammps"] == pytest.approx(c["cell_length"], abs=1e-6)


def test_committed_numbers_and_readme():
    summary = json.loads((ex.HERE / "output" / "summary.json").read_text())
    _check(summary)
    readme = (ex.HERE / "README.md").read_text()
    c = summary["cell"]
    assert f"**{c['bulk_modulus_GPa']:.1f} GPa**" in readme
    assert f"{c['relaxation_volume_omega']:.3f} Ω".replace("-", "−") in readme
    assert f"{c['cell_length']:.5f} Å" in readme


@pytest.mark.slow
def test_a_fresh_run_reproduces_them(tmp_path):
    committed = json.loads((ex.HERE / "output" / "summary.json").read_text())
    fresh = ex.main(["--out", str(tmp_path)])
    _check(fresh)
    assert fresh["cell"]["cell_length"] == pytest.approx(committed["cell"]["cell_length"], abs=1e-9)
    assert fresh["cell"]["bulk_modulus_GPa"] == pytest.approx(committed["cell"]["bulk_modulus_GPa"], rel=1e-6)
