"""examples/tersoff_silicon: Tersoff T3 silicon from LAMMPS' SiCGe.tersoff in the 8-atom cell,
relaxed-ion elastic constants against Tersoff's published values and LAMMPS."""

import json

import pytest

import lammps_reference as lmp_ref
from example_loader import load_example

ters = load_example("tersoff_silicon")


def test_committed_numbers_match_tersoff_1988_and_the_readme():
    committed = json.loads((ters.HERE / "output" / "tersoff_silicon.json").read_text())
    readme = (ters.HERE / "README.md").read_text()
    for key, value in ters.PUBLISHED.items():
        assert committed["relaxed"][key] == pytest.approx(value, abs=0.05), key
        assert f"| {key} relaxed-ion | {committed['relaxed'][key]:.2f} | {committed['lammps']['relaxed'][key]:.2f} |" in readme
    assert max(committed["relative_difference_to_lammps"]["relaxed"].values()) < 1e-6


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    lmp_ref.lammps_module()  # the potential file ships with the lammps package (a test dependency)
    return ters.main(["--out", str(tmp_path_factory.mktemp("tersoff"))])


@pytest.mark.slow
def test_elastic_constants_match_tersoff_1988_and_lammps(results):
    # Tersoff, PRB 38, 9902 (1988): C11 = 142.5, C12 = 75.4, C44 = 69.0 GPa (three digits).
    for key, value in ters.PUBLISHED.items():
        assert results["relaxed"][key] == pytest.approx(value, abs=0.05), key
    assert results["a0"] == pytest.approx(5.432, abs=5e-4)
    assert -results["energy_per_atom"] == pytest.approx(4.63, abs=5e-3)
    assert results["a0"] == pytest.approx(results["a0_in_config"], abs=1e-9)
    assert results["trustworthy"] and results["verdict"] == "minimum"
    assert results["periodic_images"] == [1, 1, 1]  # cutoff beyond half the 8-atom cell
    assert results["clamped"]["C44"] > results["relaxed"]["C44"] + 40  # internal relaxation
    for kind in ("relaxed", "clamped"):
        for key, error in results["relative_difference_to_lammps"][kind].items():
            assert error < 1e-6, (kind, key)


@pytest.mark.slow
def test_committed_numbers_are_the_examples(results):
    committed = json.loads((ters.HERE / "output" / "tersoff_silicon.json").read_text())
    for kind in ("relaxed", "clamped"):
        for key in ("C11", "C12", "C44"):
            assert committed[kind][key] == pytest.approx(results[kind][key], rel=1e-8)
