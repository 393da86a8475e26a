"""Bad input, one test per case: a one-line message naming the file/key, a non-zero exit
code, no output file written, and an existing output left unchanged."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from sensitiv.cli import ExitCode, main

ROOT = pathlib.Path(__file__).resolve().parents[1]

BASE = """\
structure:
  generator: {name: bidisperse_packing, n_atoms: 8, packing_fraction: 0.9}
model:
  name: soft_sphere
  differentiate: ["sigma[0,0]"]
solver: {name: fire}
output: {path: out.nc}
"""

SENTINEL = b"previous result, must survive"


@pytest.fixture
def workdir(tmp_path):
    existing = tmp_path / "existing.nc"
    existing.write_bytes(SENTINEL)
    return tmp_path


def _analyze(capsys, workdir, text, *extra, name="config.yaml"):
    cfg = workdir / name
    cfg.write_text(text)
    before = sorted(p.name for p in workdir.iterdir())
    code = main(["analyze", str(cfg), *map(str, extra)])
    out, err = capsys.readouterr()
    if code in (ExitCode.OK, ExitCode.UNTRUSTWORTHY) and out:
        err = out + err  # the closing summary (stdout) with the messages (stderr)
    after = sorted(p.name for p in workdir.iterdir())
    return code, err, before, after


def _assert_refused(code, err, before, after, workdir, expected_code, *fragments):
    assert code == expected_code, err
    message = err.strip()
    assert message.startswith("sensitiv: error:"), message
    for fragment in fragments:
        assert fragment in message, message
    assert after == before, "a file appeared or vanished"
    assert (workdir / "existing.nc").read_bytes() == SENTINEL


def _single_line(err):
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1, err
    return lines[0]


def test_malformed_yaml(capsys, workdir):
    code, err, before, after = _analyze(capsys, workdir, "model: {name: soft_sphere\n  - x: [\n")
    _assert_refused(code, err, before, after, workdir, ExitCode.USAGE_ERROR, "config.yaml:", "malformed YAML")
    _single_line(err)


def test_unknown_key_with_suggestion(capsys, workdir):
    code, err, before, after = _analyze(capsys, workdir, BASE.replace("solver:", "solvr:"))
    _assert_refused(code, err, before, after, workdir, ExitCode.USAGE_ERROR,
                    "config.yaml:6:1", "$.solvr", "unknown key 'solvr'", "did you mean 'solver'")
    _single_line(err)


def test_wrong_type_and_out_of_range(capsys, workdir):
    text = BASE.replace("n_atoms: 8", "n_atoms: eight").replace("packing_fraction: 0.9", "packing_fraction: -1")
    code, err, before, after = _analyze(capsys, workdir, text)
    _assert_refused(code, err, before, after, workdir, ExitCode.USAGE_ERROR,
                    "$.structure.generator.n_atoms: expected integer", "packing_fraction: value -1 out of range")


@pytest.mark.parametrize(
    "old, new, fragments",
    [
        ("name: soft_sphere", "name: soft_sphear", ["$.model.name", "unknown name 'soft_sphear'", "did you mean 'soft_sphere'"]),
        ("{name: fire}", "{name: fyre}", ["$.solver.name", "did you mean 'fire'"]),
        ('["sigma[0,0]"]', "[sigmaa]", ["$.model.differentiate[0]", "no parameter 'sigmaa'", "did you mean 'sigma'"]),
        ('["sigma[0,0]"]', "[sigma]\n  parameters: {sigmx: 1}", ["$.model.parameters.sigmx", "did you mean 'sigma'"]),
        ("generator: {name: bidisperse_packing", "generator: {name: bidisperse_packin",
         ["$.structure.generator.name", "did you mean 'bidisperse_packing'"]),
    ],
)
def test_unknown_names(capsys, workdir, old, new, fragments):
    code, err, before, after = _analyze(capsys, workdir, BASE.replace(old, new))
    _assert_refused(code, err, before, after, workdir, ExitCode.USAGE_ERROR, *fragments)


def test_parameter_the_model_lacks_at_run_time(capsys, workdir):
    # strain exists only for periodic structures: an isolated molecule has none.
    (workdir / "mol.xyz").write_text("3\nProperties=species:S:1:pos:R:3\nAr 0 0 0\nAr 3.8 0 0\nAr 0 3.8 0\n")
    text = "structure: {file: mol.xyz}\nmodel: {name: lennard_jones, differentiate: [strain]}\nsolver: {name: none}\n"
    code, err, before, after = _analyze(capsys, workdir, text)
    _assert_refused(code, err, before, after, workdir, ExitCode.USAGE_ERROR, "no parameter 'strain'", "periodic")
    _single_line(err)


def test_missing_structure_file(capsys, workdir):
    code, err, before, after = _analyze(capsys, workdir, "structure: {file: nowhere.xyz}\nmodel: {name: soft_sphere}\n")
    _assert_refused(code, err, before, after, workdir, ExitCode.USAGE_ERROR,
                    "$.structure.file", "structure file not found", "nowhere.xyz")


def test_unreadable_structure_file(capsys, workdir):
    (workdir / "adir.xyz").mkdir()
    code, err, before, after = _analyze(capsys, workdir, "structure: {file: adir.xyz}\nmodel: {name: soft_sphere}\n")
    _assert_refused(code, err, before, after, workdir, ExitCode.USAGE_ERROR, "not a file", "adir.xyz")
    if os.geteuid() != 0:  # root reads anything
        locked = workdir / "locked.xyz"
        locked.write_text("1\n\nH 0 0 0\n")
        locked.chmod(0)
        code, err, before, after = _analyze(capsys, workdir, "structure: {file: locked.xyz}\nmodel: {name: soft_sphere}\n")
        _assert_refused(code, err, before, after, workdir, ExitCode.USAGE_ERROR, "cannot read", "locked.xyz")


def test_file_in_the_wrong_format(capsys, workdir):
    (workdir / "fake.cif").write_text("this is not a crystallographic information file\n")
    code, err, before, after = _analyze(capsys, workdir, "structure: {file: fake.cif}\nmodel: {name: soft_sphere}\n")
    _assert_refused(code, err, before, after, workdir, ExitCode.USAGE_ERROR, "fake.cif", "cannot read as 'cif'")
    _single_line(err)
    (workdir / "fake.nc").write_text("plain text, not NetCDF\n")
    code, err, before, after = _analyze(capsys, workdir, "structure: {file: fake.nc}\nmodel: {name: soft_sphere}\n")
    _assert_refused(code, err, before, after, workdir, ExitCode.USAGE_ERROR, "fake.nc", "not a readable NetCDF file")


def test_nan_coordinates(capsys, workdir):
    (workdir / "nan.xyz").write_text(
        '2\nLattice="5 0 0 0 5 0 0 0 5" Properties=species:S:1:pos:R:3 pbc="T T T"\nAr 0 0 0\nAr nan 1 1\n'
    )
    code, err, before, after = _analyze(capsys, workdir, "structure: {file: nan.xyz}\nmodel: {name: lennard_jones}\n")
    _assert_refused(code, err, before, after, workdir, ExitCode.USAGE_ERROR, "nan.xyz", "non-finite", "atom 1")
    _single_line(err)


def test_infinite_coordinates(capsys, workdir):
    (workdir / "inf.xyz").write_text("2\nProperties=species:S:1:pos:R:3\nAr 0 0 0\nAr inf 1 1\n")
    code, err, before, after = _analyze(capsys, workdir, "structure: {file: inf.xyz}\nmodel: {name: lennard_jones}\n")
    _assert_refused(code, err, before, after, workdir, ExitCode.USAGE_ERROR, "inf.xyz", "non-finite")


def test_overlapping_atoms(capsys, workdir):
    (workdir / "overlap.xyz").write_text(
        '3\nLattice="9 0 0 0 9 0 0 0 9" Properties=species:S:1:pos:R:3 pbc="T T T"\n'
        "Ar 0 0 0\nAr 3.8 0 0\nAr 8.9999999 0 0\n"
    )
    code, err, before, after = _analyze(capsys, workdir, "structure: {file: overlap.xyz}\nmodel: {name: lennard_jones}\n")
    _assert_refused(code, err, before, after, workdir, ExitCode.USAGE_ERROR,
                    "overlap.xyz", "overlapping atoms 0 and 2", "min_distance")
    _single_line(err)


def test_solver_does_not_converge(capsys, workdir):
    text = BASE.replace("{name: fire}", "{name: fire, options: {max_steps: 3}}")
    code, err, before, after = _analyze(capsys, workdir, text)
    _assert_refused(code, err, before, after, workdir, ExitCode.UNTRUSTWORTHY,
                    "did not converge after 3 steps", "residual reached")
    _single_line(err)


def test_saddle_point_is_reported_and_flagged(capsys, workdir):
    """An fcc Lennard-Jones crystal stretched past its spinodal: stationary by symmetry,
    but unstable. The result is written, flagged, and the exit code says so."""
    text = (
        "structure: {generator: {name: fcc, lattice_constant: 1.95, repeat: [2, 2, 2]}}\n"
        "model: {name: lennard_jones, differentiate: [sigma], options: {r_cutoff: 1.8, r_onset: 1.5}}\n"
        "solver: {name: none}\n"
    )
    out = workdir / "saddle.nc"
    code, err, before, after = _analyze(capsys, workdir, text, "-o", out)
    assert code == ExitCode.UNTRUSTWORTHY, err
    assert "saddle" in err and "NOT trustworthy" in err  # _analyze returns stdout + stderr
    assert after == sorted(before + ["saddle.nc"])
    import xarray as xr

    with xr.open_dataset(out) as ds:
        assert str(ds["verdict"].values[0]) == "saddle"
        assert float(ds["smallest_eigenvalue"][0]) < 0
        problems = [p for p in ds["problems"].values[0] if p]
        assert int(ds["trustworthy"][0]) == 0 and any("saddle" in p for p in problems)
        assert int(ds.attrs["trustworthy"]) == 0


def test_singular_hessian_is_reported_and_flagged(capsys, workdir):
    """Soft spheres so dilute that no two touch: the Hessian vanishes beyond translations."""
    text = BASE.replace("packing_fraction: 0.9", "packing_fraction: 0.05")
    out = workdir / "singular.nc"
    code, err, before, after = _analyze(capsys, workdir, text, "-o", out)
    assert code == ExitCode.UNTRUSTWORTHY, err
    assert "singular" in err
    import xarray as xr

    with xr.open_dataset(out) as ds:
        assert str(ds["verdict"].values[0]) == "singular"
        assert int(ds["trustworthy"][0]) == 0


def test_output_path_cannot_be_written(capsys, workdir):
    code, err, before, after = _analyze(capsys, workdir, BASE, "-o", workdir / "no" / "such" / "dir.nc")
    _assert_refused(code, err, before, after, workdir, ExitCode.USAGE_ERROR, "does not exist")
    code, err, before, after = _analyze(capsys, workdir, BASE, "-o", workdir)
    _assert_refused(code, err, before, after, workdir, ExitCode.USAGE_ERROR, "is a directory")


def test_existing_output_needs_force(capsys, workdir):
    code, err, before, after = _analyze(capsys, workdir, BASE, "-o", workdir / "existing.nc")
    _assert_refused(code, err, before, after, workdir, ExitCode.USAGE_ERROR,
                    "existing.nc", "output exists", "--force")


def test_dry_run_writes_nothing(capsys, workdir):
    cfg = workdir / "config.yaml"
    cfg.write_text(BASE)
    code = main(["analyze", str(cfg), "--dry-run"])
    out, err = capsys.readouterr()
    assert code == ExitCode.OK
    assert "n_atoms: 8" in out and "would write" in err
    assert sorted(p.name for p in workdir.iterdir()) == ["config.yaml", "existing.nc"]
    # -o is the output the resolved config names, not the config's own output.path.
    code = main(["analyze", str(cfg), "--dry-run", "-o", str(workdir / "dry.nc")])
    out, err = capsys.readouterr()
    assert code == ExitCode.OK and "dry.nc" in out and "out.nc" not in out and "dry.nc" in err
    assert sorted(p.name for p in workdir.iterdir()) == ["config.yaml", "existing.nc"]


def _interrupt(*args, **kwargs):
    raise KeyboardInterrupt


def test_interrupt_mid_run(capsys, workdir, monkeypatch):
    from sensitiv.pipeline import analyze

    monkeypatch.setattr(analyze, "_differentiate", _interrupt)  # Ctrl-C during the Jacobian
    code, err, before, after = _analyze(capsys, workdir, BASE, "-o", workdir / "existing.nc", "--force")
    assert code == ExitCode.INTERRUPTED and "interrupted" in err
    assert after == before
    assert (workdir / "existing.nc").read_bytes() == SENTINEL


def test_interrupt_while_writing(capsys, workdir, monkeypatch):
    import xarray

    real = xarray.Dataset.to_netcdf

    def partial_then_interrupt(self, path, *args, **kwargs):
        real(self, path, *args, **kwargs)  # a complete temporary file exists now
        raise KeyboardInterrupt

    monkeypatch.setattr(xarray.Dataset, "to_netcdf", partial_then_interrupt)
    code, err, before, after = _analyze(capsys, workdir, BASE, "-o", workdir / "existing.nc", "--force")
    assert code == ExitCode.INTERRUPTED
    assert after == before, "the temporary file was not removed"
    assert (workdir / "existing.nc").read_bytes() == SENTINEL


def test_validate_reports_every_error(capsys, workdir):
    cfg = workdir / "bad.yaml"
    cfg.write_text(BASE.replace("n_atoms: 8", "n_atom: 8").replace("solver:", "solvr:"))
    code = main(["validate", str(cfg)])
    _, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == ExitCode.USAGE_ERROR
    assert lines[0].startswith(f"{cfg}:2:") and "did you mean 'n_atoms'" in lines[0]
    assert lines[1].startswith(f"{cfg}:6:1") and "did you mean 'solver'" in lines[1]
    assert lines[2] == f"sensitiv: 2 errors in {cfg}"
    cfg.write_text(BASE)
    assert main(["validate", str(cfg)]) == ExitCode.OK
    assert "valid" in capsys.readouterr().out


def test_schema_command(capsys):
    import json

    assert main(["schema"]) == ExitCode.OK
    schema = json.loads(capsys.readouterr().out)
    assert "stillinger_weber" in schema["$defs"]["model"]["properties"]["name"]["enum"]
    assert main(["schema", "--base"]) == ExitCode.OK
    base = json.loads(capsys.readouterr().out)
    assert base == json.loads((ROOT / "schemas" / "config.schema.json").read_text())


def test_subprocess_smoke(tmp_path):
    """The installed `sensitiv` script: validate an example and a dry run, real processes."""
    env = dict(os.environ)
    cfg = ROOT / "examples" / "softspheres" / "config.yaml"
    proc = subprocess.run([sys.executable, "-m", "sensitiv.cli", "validate", str(cfg)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "sensitiv.cli", "analyze", str(tmp_path / "missing.yaml")],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 2 and "config file not found" in proc.stderr


def test_json_summary_on_stdout(capsys, workdir):
    """`--json`: the summary as JSON on stdout, nothing else there; messages on stderr."""
    import json

    cfg = workdir / "config.yaml"
    cfg.write_text(BASE)
    code = main(["analyze", str(cfg), "--json", "-o", str(workdir / "j.nc")])
    out, err = capsys.readouterr()
    assert code == ExitCode.OK, err
    summary = json.loads(out)
    assert summary["path"] == str(workdir / "j.nc") and summary["trustworthy"] is True
    [structure] = summary["structures"]
    assert structure["atoms"] == 8 and structure["hessian"]["verdict"] == "minimum"
    assert structure["largest_sensitivities"][0]["parameter"] == "sigma[0,0]"
    assert structure["problems"] == [] and summary["timings"]["total"] > 0
    assert "result:" not in err
