"""The red-team catalogue (issue 19): bad input and faults, each caught, named and harmless.

Every case runs the command line (in process, or as a real process for signals) and
asserts three things:

1. the **exit code** (2 bad input or a broken plugin, 1 an untrustworthy result, 130/143
   interrupted/terminated, 0 only when the answer is right);
2. a **one-line message** naming the problem and the fix, with no traceback and no
   "internal error";
3. **nothing lost or written partially**: every file of the working folder is byte for
   byte what it was (a previous result included), unless the case writes a flagged result.

Categories: `config`, `structure`, `output`, `signal`, `physics`, `plugin`, `api`,
`inspect`, `security` (the case ids start with them). Most cases are refused before JAX
compiles anything; the physics and plugin-fault cases compile problems of a few atoms.
Plugin faults come from a third-party plugin written from docs/plugins.md alone
(tests/fixtures/beads_plugin), installed with pip into a private folder.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import sensitiv
from sensitiv.cli import ExitCode, main
from sensitiv.plugins import get_registry

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "beads_plugin"
SENTINEL = b"a previous result: must survive every refused run"

# -- the working folder ---------------------------------------------------------------------

GEN = """\
structure:
  generator: {name: bidisperse_packing, n_atoms: 8, packing_fraction: 0.9}
model:
  name: soft_sphere
  differentiate: ["sigma[0,0]"]
output: {path: out.nc}
"""

ARKR_DATA = """\
LAMMPS data file: Ar/Kr, atom 1 is type 2, atoms out of ID order, image flags

4 atoms
2 atom types

0.0 10.52 xlo xhi
0.0 10.52 ylo yhi
0.0 10.52 zlo zhi

Masses

1 39.948
2 83.798

Atoms # atomic

3 1 2.63 0.0 2.63 0 0 0
1 2 0.0 0.0 0.0 0 0 0
4 1 0.0 2.63 2.63 1 0 0
2 1 2.63 2.63 0.0 0 0 -1
"""

ARKR_DUMP = """\
ITEM: TIMESTEP
0
ITEM: NUMBER OF ATOMS
4
ITEM: BOX BOUNDS pp pp pp
0.0 10.52
0.0 10.52
0.0 10.52
ITEM: ATOMS id type x y z
1 2 0.0 0.0 0.0
2 1 2.63 2.63 0.0
3 1 2.63 0.0 2.63
4 1 0.0 2.63 2.63
"""

SIGE_XYZ = """\
4
Lattice="5.43 0 0 0 5.43 0 0 0 5.43" Properties=species:S:1:pos:R:3 pbc="T T T"
Ge 0.0 0.0 0.0
Si 2.715 2.715 0.0
Si 2.715 0.0 2.715
Si 0.0 2.715 2.715
"""

BEADS = "4\nA 0.0 0.0 0.0\nA 1.0 0.0 0.0\nB 0.0 1.0 0.0\nA 0.0 0.0 1.0\n"
BEADS_CONFIG = """\
structure: {file: tri.beads}
model: {name: bead_cluster, options: {cutoff: 1.5}}
solver: {name: bead_lbfgs}
output: {path: out.nc}
"""

LJ_DATA = """\
structure: {file: arkr.data}
model:
  name: lennard_jones
  parameters: {sigma: [[3.40, 3.52], [3.52, 3.65]], epsilon: [[0.0104, 0.0121], [0.0121, 0.0140]]}
  options: {r_cutoff: 5.0, cutoff_units: absolute, truncation: shift}
solver: {name: none}
output: {path: out.nc}
"""

LJ_SCALAR = LJ_DATA.replace("{sigma: [[3.40, 3.52], [3.52, 3.65]], epsilon: [[0.0104, 0.0121], [0.0121, 0.0140]]}",
                            "{sigma: 3.5, epsilon: 0.012}")


@pytest.fixture
def work(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    files = {"existing.nc": SENTINEL, "arkr.data": ARKR_DATA, "arkr.dump": ARKR_DUMP,
             "sige.xyz": SIGE_XYZ, "tri.beads": BEADS}
    for name, content in files.items():
        path = tmp_path / name
        path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    return tmp_path


@pytest.fixture(scope="session")
def beads_site(tmp_path_factory):
    """The fixture plugin pip-installed into a private folder (offline, no build isolation)."""
    work = tmp_path_factory.mktemp("beads")
    source = work / "src"
    shutil.copytree(FIXTURE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = work / "site"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--no-index",
                           "--no-build-isolation", "--disable-pip-version-check", "--target", str(target),
                           str(source)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return target


@pytest.fixture
def beads(beads_site, monkeypatch):
    """The default registry with the installed fixture plugin (and the others)."""
    monkeypatch.syspath_prepend(str(beads_site))
    get_registry(refresh=True)
    yield beads_site
    monkeypatch.undo()
    get_registry(refresh=True)


# -- running and judging ----------------------------------------------------------------------


@dataclasses.dataclass
class Run:
    code: int
    out: str
    err: str
    changed: set

    @property
    def lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]


def _snapshot(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def cli(capsys, work: Path, *argv, config: str | None = None) -> Run:
    if config is not None:
        (work / "config.yaml").write_text(config)
    capsys.readouterr()
    before = _snapshot(work)
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    after = _snapshot(work)
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    return Run(int(code), out, err, changed)


def refused(run: Run, code: int, *fragments: str, lines: int = 1, prefix: str = "sensitiv: error:",
            writes: set = frozenset()) -> None:
    """The catalogue's three assertions."""
    text = run.out + run.err
    assert run.code == code, f"exit {run.code}, expected {code}:\n{text}"
    assert "Traceback" not in text and "internal error" not in text, text
    assert 1 <= len(run.lines) <= lines, f"expected at most {lines} line(s):\n{run.err}"
    if prefix:
        assert run.lines[0].startswith(prefix), run.lines[0]
    for fragment in fragments:
        assert fragment in run.err, f"{fragment!r} not in:\n{run.err}"
    assert run.changed == set(writes), f"files changed: {sorted(run.changed)}"
    assert (Path.cwd() / "existing.nc").read_bytes() == SENTINEL


def analyze(capsys, work, config, *extra):
    return cli(capsys, work, "analyze", work / "config.yaml", *extra, config=config)


def validate(capsys, work, config, *extra):
    return cli(capsys, work, "validate", work / "config.yaml", *extra, config=config)


# == config ==================================================================================

CONFIG_CASES = [
    ("config-malformed-yaml", "model: {name: soft_sphere\n  - x: [\n", ["config.yaml:", "malformed YAML"]),
    ("config-empty-file", "", ["the config must be a mapping", "empty"]),
    ("config-not-a-mapping", "- structure\n- model\n", ["must be a mapping", "list"]),
    ("config-unknown-section", GEN + "solvr: {name: fire}\n", ["unknown key 'solvr'", "did you mean 'solver'"]),
    ("config-wrong-type", GEN.replace("n_atoms: 8", "n_atoms: eight"), ["n_atoms", "expected integer"]),
    ("config-unknown-model", GEN.replace("name: soft_sphere", "name: soft_sphear"),
     ["unknown name 'soft_sphear'", "did you mean 'soft_sphere'"]),
    ("config-nan-parameter",
     GEN.replace('differentiate: ["sigma[0,0]"]', 'differentiate: ["sigma[0,0]"]\n  parameters: {alpha: .nan}'),
     ["$.model.parameters.alpha", "non-finite number nan", "finite"]),
    ("config-inf-option", GEN + "solver: {name: fire, options: {ftol: .inf}}\n",
     ["$.solver.options.ftol", "non-finite number inf"]),
    ("config-huge-generator", GEN.replace("n_atoms: 8", "n_atoms: 1000000000000"),
     ["$.structure.generator", "atoms need at least", "generate fewer atoms"]),
    ("config-duplicate-key", GEN + "output: {path: other.nc}\n", ["duplicate key 'output'"]),
    ("config-missing-model", "structure: {generator: {name: fcc, lattice_constant: 1.5}}\n",
     ["missing required key 'model'"]),
    ("config-file-and-generator", GEN.replace("structure:\n", "structure:\n  file: arkr.data\n"),
     ["give only one of 'file', 'files' or 'generator'"]),
    ("config-reader-option-misspelt", LJ_DATA.replace("{file: arkr.data}", "{file: arkr.data, options: {specis: [Ar, Kr]}}"),
     ["$.structure.options.specis", "unknown key 'specis'", "did you mean 'species'"]),
    ("config-unit-style-unknown", LJ_DATA.replace("{file: arkr.data}", "{file: arkr.dump, options: {units: ljj}}"),
     ["$.structure.options.units", "unknown value 'ljj'", "did you mean 'lj'"]),
    ("config-onset-above-cutoff", GEN.replace("name: soft_sphere", "name: lennard_jones").replace(
        'differentiate: ["sigma[0,0]"]', "options: {r_onset: 3.0, r_cutoff: 2.5}"),
     ["$.model.options", "r_onset (3.0) must be below r_cutoff (2.5)"]),
    ("config-solver-option-default-solver", GEN + "solver: {options: {ftool: 1.0e-3}}\n",
     ["$.solver.options.ftool", "did you mean 'ftol'"]),
    ("config-options-for-solver-none", GEN + "solver: {name: none, options: {ftol: 1.0e-3}}\n",
     ["$.solver.options", "'none' has no options"]),
    ("config-condition-option-without-name", GEN + "condition: {options: {scale: 2}}\n",
     ["$.condition.options.scale", "unknown key 'scale'"]),
    ("config-species-matrix-wrong-size", GEN.replace('differentiate: ["sigma[0,0]"]',
                                                     "parameters: {sigma: [[1, 1, 1], [1, 1, 1], [1, 1, 1]]}"),
     ["$.model.parameters.sigma", "shape (3, 3)", "(species, species) = (2, 2)"]),
    ("config-asymmetric-pair-matrix", GEN.replace('differentiate: ["sigma[0,0]"]',
                                                  "parameters: {sigma: [[1.0, 1.2], [1.3, 1.4]]}"),
     ["$.model.parameters.sigma", "must be symmetric", "[0][1] = 1.2", "[1][0] = 1.3"]),
    ("config-differentiate-unknown", GEN.replace('["sigma[0,0]"]', "[sigmaa]"),
     ["$.model.differentiate[0]", "no parameter 'sigmaa'", "did you mean 'sigma'"]),
    ("config-differentiate-index-out-of-range", GEN.replace('["sigma[0,0]"]', '["alpha[3]"]'),
     ["$.model.differentiate[0]", "'alpha[3]'"]),
    ("config-memory-budget-garbage", GEN + "jacobian: {memory_budget: lots}\n",
     ["$.jacobian.memory_budget", "'lots'"]),
    ("config-strain-not-declared", BEADS_CONFIG.replace("options: {cutoff: 1.5}",
                                                        "options: {cutoff: 1.5}, parameters: {strain: 0.01}"),
     ["$.model.parameters.strain", "no parameter 'strain'"]),
    ("config-unknown-model-option", GEN.replace('differentiate: ["sigma[0,0]"]',
                                                "options: {neighbour_list: true}"),
     ["$.model.options.neighbour_list", "did you mean 'neighbor_list'"]),
]


@pytest.mark.parametrize("case, config, fragments", CONFIG_CASES, ids=[c[0] for c in CONFIG_CASES])
def test_config_refused_by_analyze(capsys, work, beads, case, config, fragments):
    refused(analyze(capsys, work, config), ExitCode.USAGE_ERROR, *fragments, lines=2 if "duplicate" in case else 1)


@pytest.mark.parametrize("case, config, fragments",
                         [c for c in CONFIG_CASES if c[0] in ("config-reader-option-misspelt",
                                                              "config-onset-above-cutoff",
                                                              "config-species-matrix-wrong-size",
                                                              "config-condition-option-without-name")],
                         ids=lambda c: c if isinstance(c, str) and c.startswith("config") else "")
def test_config_refused_alike_by_validate_and_dry_run(capsys, work, beads, case, config, fragments):
    """validate, --dry-run and analyze refuse the same input with the same message."""
    run = validate(capsys, work, config)
    refused(run, ExitCode.USAGE_ERROR, *fragments, prefix=str(work / "config.yaml"))
    refused(analyze(capsys, work, config, "--dry-run"), ExitCode.USAGE_ERROR, *fragments)


def test_config_set_without_equals(capsys, work):
    refused(analyze(capsys, work, GEN, "--set", "structure.generator.n_atoms"), ExitCode.USAGE_ERROR,
            "--set", "KEY.PATH=VALUE")


def test_config_without_condition_works(capsys, work):
    """Not a refusal: the condition defaults to `stationary` and validates."""
    run = validate(capsys, work, GEN)
    assert run.code == ExitCode.OK and "valid" in run.out and not run.changed


# == structure files =========================================================================

STRUCTURE_CASES = [
    ("structure-missing-file", LJ_DATA.replace("arkr.data", "nowhere.data"), {},
     ["$.structure.file", "structure file not found", "nowhere.data"]),
    ("structure-empty-file", LJ_DATA.replace("arkr.data", "empty.xyz"), {"empty.xyz": ""},
     ["empty.xyz", "no structure found"]),
    ("structure-truncated-dump", LJ_DATA.replace("arkr.data", "cut.dump"), {"cut.dump": ARKR_DUMP[:-30]},
     ["cut.dump", "announces 4 atoms but has 3", "truncated"]),
    ("structure-truncated-data", LJ_DATA.replace("arkr.data", "cut.data"), {"cut.data": ARKR_DATA[:-60]},
     ["cut.data", "Atoms section has 2 rows", "announces 4 atoms"]),
    ("structure-garbage", LJ_DATA.replace("arkr.data", "garbage.data"), {"garbage.data": bytes(range(256)) * 8},
     ["garbage.data", "not a LAMMPS data file"]),
    ("structure-nan-coordinates", LJ_DATA.replace("arkr.data", "nan.xyz"),
     {"nan.xyz": SIGE_XYZ.replace("Si 2.715 2.715 0.0", "Si nan 2.715 0.0")},
     ["nan.xyz", "non-finite", "atom 1"]),
    ("structure-overlapping-atoms", LJ_DATA.replace("arkr.data", "overlap.xyz"),
     {"overlap.xyz": SIGE_XYZ.replace("Si 2.715 2.715 0.0", "Si 5.4299999 0.0 0.0")},
     ["overlap.xyz", "overlapping atoms 0 and 1", "min_distance"]),
    ("structure-singular-cell", LJ_DATA.replace("arkr.data", "flat.xyz"),
     {"flat.xyz": SIGE_XYZ.replace('Lattice="5.43 0 0 0 5.43 0 0 0 5.43"', 'Lattice="5.43 0 0 0 0 0 0 0 5.43"')},
     ["flat.xyz", "singular"]),
    ("structure-species-option-too-short", LJ_SCALAR.replace("{file: arkr.data}", "{file: arkr.data, options: {species: [Ar]}}"),
     {}, ["arkr.data", "2 atom types", "names 1", "type 1 first"]),
    ("structure-element-not-in-species", LJ_SCALAR.replace("{file: arkr.data}", "{file: sige.xyz, options: {species: [Si]}}"),
     {}, ["sige.xyz", "Ge", "not in structure.options.species"]),
    ("structure-wrong-format-for-extension", LJ_DATA.replace("arkr.data", "looks.xyz"), {"looks.xyz": ARKR_DATA},
     ["looks.xyz", "'extxyz'"]),
    ("structure-unknown-extension", LJ_DATA.replace("arkr.data", "atoms.weird"), {"atoms.weird": ARKR_DATA},
     ["atoms.weird", "cannot tell the format", "structure.format"]),
    ("structure-directory", LJ_DATA.replace("arkr.data", "adir.xyz"), {"adir.xyz/": None},
     ["adir.xyz", "not a file"]),
    ("structure-species-option-contradicts-masses",
     LJ_DATA.replace("{file: arkr.data}", "{file: arkr.data, options: {species: [Kr, Ar]}}"), {},
     ["calls LAMMPS type 1 'Kr'", "makes it 'Ar'", "type order"]),
    ("structure-matrix-for-first-appearance-order",
     LJ_DATA.replace("arkr.data", "sige.xyz").replace(", epsilon: [[0.0104, 0.0121], [0.0121, 0.0140]]", ""), {},
     ["model.parameters.sigma", "first appearance", "0 = Ge, 1 = Si",
      "structure.options.species"]),
    ("structure-matrix-too-big-for-types",
     LJ_DATA.replace("sigma: [[3.40, 3.52], [3.52, 3.65]]", "sigma: [[3.4, 3.5, 3.6], [3.5, 3.6, 3.7], [3.6, 3.7, 3.8]]"),
     {}, ["model.parameters.sigma", "shape (3, 3)", "(2, 2)", "0 = Ar, 1 = Kr"]),
    ("structure-duplicate-atom-ids", LJ_DATA.replace("arkr.data", "dup.dump"),
     {"dup.dump": ARKR_DUMP.replace("4 1 0.0 2.63 2.63", "3 1 0.0 2.63 2.63")}, ["dup.dump", "atom ID 3 appears twice"]),
    ("structure-type-beyond-header", LJ_DATA.replace("arkr.data", "t3.data"),
     {"t3.data": ARKR_DATA.replace("3 1 2.63 0.0 2.63", "3 3 2.63 0.0 2.63")}, ["t3.data", "atom type 3", "2 atom types"]),
    ("structure-dump-without-coordinates", LJ_DATA.replace("arkr.data", "nox.dump"),
     {"nox.dump": ARKR_DUMP.replace("id type x y z", "id type vx vy vz")}, ["nox.dump", "no coordinates"]),
    ("structure-units-contradict-dump", LJ_DATA.replace("{file: arkr.data}", "{file: u.dump, options: {units: metal}}"),
     {"u.dump": ARKR_DUMP.replace("ITEM: NUMBER", "ITEM: UNITS\nreal\nITEM: NUMBER")},
     ["u.dump", "units is 'metal'", "ITEM: UNITS real"]),
    ("structure-strain-in-free-space", BEADS_CONFIG.replace("bead_cluster", "lennard_jones").replace(
        "options: {cutoff: 1.5}", "parameters: {strain: 0.01}").replace("bead_lbfgs", "none"),
     {}, ["model.parameters.strain", "no periodic direction", "remove it"]),
    ("structure-frame-out-of-range", LJ_DATA.replace("{file: arkr.data}", "{file: arkr.dump, frames: 5}"), {},
     ["frame 5 out of range", "1 frame"]),
]


@pytest.mark.parametrize("case, config, files, fragments", STRUCTURE_CASES, ids=[c[0] for c in STRUCTURE_CASES])
@pytest.mark.parametrize("mode", ["dry-run", "analyze"])
def test_structure_refused_before_work(capsys, work, beads, case, config, files, fragments, mode):
    """Refused by the dry run and by analyze alike, before any model is built."""
    for name, content in files.items():
        if name.endswith("/"):
            (work / name).mkdir()
        elif isinstance(content, bytes):
            (work / name).write_bytes(content)
        else:
            (work / name).write_text(content)
    extra = ["--dry-run"] if mode == "dry-run" else []
    refused(analyze(capsys, work, config, *extra), ExitCode.USAGE_ERROR, *fragments)


def test_structure_readings_stated_by_dry_run(capsys, work):
    """No silent reading: the species table, units and coordinates the dry run states."""
    run = analyze(capsys, work, LJ_DATA, "--dry-run")
    assert run.code == ExitCode.OK, run.err
    assert "species: 0 = Ar (type 1), 1 = Kr (type 2)" in run.err
    assert "LAMMPS units 'metal' (assumed" in run.err and "wrapped into the cell" in run.err
    assert not run.changed


# == outputs =================================================================================


def test_output_existing_without_force_unchanged(capsys, work):
    refused(analyze(capsys, work, GEN, "-o", work / "existing.nc"), ExitCode.USAGE_ERROR,
            "existing.nc", "output exists", "--force")


def test_output_missing_folder(capsys, work):
    refused(analyze(capsys, work, GEN, "-o", work / "no" / "dir" / "x.nc"), ExitCode.USAGE_ERROR, "does not exist")


def test_output_read_only_filesystem(capsys, work):
    if os.geteuid() != 0:
        locked = work / "locked"
        locked.mkdir(mode=0o500)
        target = locked / "x.nc"
    else:  # root writes anywhere permissions allow; /sys is a read-only (pseudo) file system
        target = Path("/sys/sensitiv-redteam.nc")
    refused(analyze(capsys, work, GEN, "-o", target), ExitCode.USAGE_ERROR, "cannot write to the output folder")


def test_output_is_a_directory(capsys, work):
    (work / "adir.nc").mkdir()
    refused(analyze(capsys, work, GEN, "-o", work / "adir.nc", "--force"), ExitCode.USAGE_ERROR, "is a directory")


@pytest.mark.parametrize("target", ["config.yaml", "arkr.data"])
def test_output_is_an_input(capsys, work, target):
    refused(analyze(capsys, work, LJ_DATA, "-o", work / target, "--force"), ExitCode.USAGE_ERROR,
            "the output path is an input of this run", "-o")


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One real analysis (8 soft spheres), reused by the write-stage cases so that they fail
    in the writing, not in a recomputation."""
    from sensitiv.pipeline import config, run

    folder = tmp_path_factory.mktemp("finished")
    (folder / "config.yaml").write_text(GEN)
    return run.analyze_config(config.load(str(folder / "config.yaml")))


def _skip_analysis(monkeypatch, finished):
    from sensitiv.pipeline import run

    monkeypatch.setattr(run, "analyze_config", lambda cfg, **kwargs: finished)


def _write_then(monkeypatch, error):
    """Writing fails after part of the temporary file is on disk."""
    import xarray

    def write(self, path, *args, **kwargs):
        Path(path).write_bytes(b"CDF\x01 half a file")
        raise error

    monkeypatch.setattr(xarray.Dataset, "to_netcdf", write)


def test_output_disk_full(capsys, work, monkeypatch, finished):
    _skip_analysis(monkeypatch, finished)
    _write_then(monkeypatch, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
    refused(analyze(capsys, work, GEN, "-o", work / "existing.nc", "--force"), ExitCode.USAGE_ERROR,
            "cannot write output", "No space left on device")


def test_output_two_runs_at_once(capsys, work, monkeypatch, finished):
    """Another run writes the output meanwhile: this one does not clobber it."""
    import xarray

    _skip_analysis(monkeypatch, finished)
    real = xarray.Dataset.to_netcdf

    def write(self, path, *args, **kwargs):
        real(self, path, *args, **kwargs)
        (work / "out.nc").write_bytes(b"the other run's complete result")

    monkeypatch.setattr(xarray.Dataset, "to_netcdf", write)
    run = analyze(capsys, work, GEN)
    refused(run, ExitCode.USAGE_ERROR, "output appeared while writing", "--force", writes={"out.nc"})
    assert (work / "out.nc").read_bytes() == b"the other run's complete result"


# == signals =================================================================================


@pytest.mark.parametrize("error, code, word", [(KeyboardInterrupt(), ExitCode.INTERRUPTED, "interrupted"),
                                                (None, ExitCode.TERMINATED, "terminated")],
                         ids=["signal-sigint-while-writing", "signal-sigterm-while-writing"])
def test_signal_while_writing(capsys, work, monkeypatch, finished, error, code, word):
    from sensitiv import cli as cli_module

    _skip_analysis(monkeypatch, finished)
    _write_then(monkeypatch, error if error is not None else cli_module.Terminated())
    refused(analyze(capsys, work, GEN, "-o", work / "existing.nc", "--force"), code, word, prefix="sensitiv:")


SLOW_RUN = """\
structure:
  generator: {name: bidisperse_packing, n_atoms: 256, packing_fraction: 0.95, seed: 3}
model: {name: soft_sphere}
solver: {name: gradient_descent, options: {max_steps: 100000000, step_size: 1.0e-6, ftol: 1.0e-14}}
output: {path: out.nc}
"""


def _wait_until_computing(proc, timeout: float = 180.0) -> None:
    """Until the process has loaded XLA (it is past reading and validating), plus a moment."""
    maps = Path(f"/proc/{proc.pid}/maps")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if "xla_extension" in maps.read_text() or "jaxlib" in maps.read_text():
                break
        except OSError:
            pass
        time.sleep(0.2)
    time.sleep(3.0)
    assert proc.poll() is None, proc.communicate()


def _process(work: Path, config: str):
    (work / "config.yaml").write_text(config)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "sensitiv.cli", "analyze", "config.yaml", "-v"], cwd=work,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, ExitCode.INTERRUPTED), (signal.SIGTERM, ExitCode.TERMINATED),
                                          (signal.SIGKILL, -signal.SIGKILL)],
                         ids=["signal-sigint-during-run", "signal-sigterm-during-run", "signal-sigkill-during-run"])
def test_signal_during_run(work, signum, code):
    """A real process, signalled while it minimizes: it stops, says so, leaves nothing."""
    before = _snapshot(work)
    proc = _process(work, SLOW_RUN)
    _wait_until_computing(proc)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert "Traceback" not in err and "internal error" not in err, err
    if signum != signal.SIGKILL:
        word = "interrupted" if signum == signal.SIGINT else "terminated"
        assert [line for line in err.splitlines() if line.strip()][-1].startswith(f"sensitiv: {word}"), err
        after = _snapshot(work)
        assert set(after) - {"config.yaml"} == set(before), sorted(after)  # no partial or temporary file
    assert not (work / "out.nc").exists()
    assert (work / "existing.nc").read_bytes() == SENTINEL


# == physics faults ==========================================================================


def test_physics_minimization_does_not_converge(capsys, work):
    run = analyze(capsys, work, GEN + "solver: {name: fire, options: {max_steps: 3}}\n")
    refused(run, ExitCode.UNTRUSTWORTHY, "did not converge after 3 steps", "residual reached", "solver.options")


TRAJECTORY = """\
structure: {file: traj.xyz, frames: all}
model:
  name: lennard_jones
  differentiate: [sigma]
  options: {r_cutoff: 1.5, r_onset: 1.3}
solver: {name: fire, options: {ftol: 1.0e-10, max_steps: 1000}}
output: {path: out.nc}
"""


def _vacancy_box(rattle: float):
    from ase.build import bulk

    atoms = bulk("Ar", "fcc", a=1.55, cubic=True) * (2, 2, 2)
    del atoms[3]
    atoms.positions += np.random.default_rng(1).normal(0, rattle, atoms.positions.shape)
    return atoms


def test_physics_one_frame_of_many_does_not_converge(capsys, work):
    """Work is never lost: the frames that converged are written, the one that did not is
    named (at once, in the summary and in the file), and the exit code says so."""
    pytest.importorskip("ase")
    import ase.io
    import xarray as xr

    # FIRE relaxes the vacancy in 152 steps; the strongly rattled frame is stuck after 1000
    frames = [_vacancy_box(0.0), _vacancy_box(0.15), _vacancy_box(0.0)]
    ase.io.write(work / "traj.xyz", frames, format="extxyz")
    run = analyze(capsys, work, TRAJECTORY)
    text = run.out + run.err
    assert run.code == ExitCode.PARTIAL, text
    assert "Traceback" not in text and "internal error" not in text, text
    assert "out.nc" in run.changed and not (run.changed - {"out.nc"}
                                            - {c for c in run.changed if c.startswith("out.nc.parts/")})
    assert "FAILED: " in run.err and "(frame 1)" in run.err and "did not converge after 1000 steps" in run.err
    failed = [line for line in run.err.splitlines() if "FAILED: " in line]
    assert len(failed) == 1 and failed[0].count("traj.xyz") == 1, failed  # the structure named once
    assert "1 of 3 tasks failed" in run.err and "--resume" in run.err
    # the summary never calls a run with a missing frame trustworthy
    assert "result: NOT trustworthy (1 of 3 failed, not in the file)" in run.out, run.out
    with xr.open_dataset(work / "out.nc") as ds:
        assert ds["frame_index"].values.tolist() == [0, 2]
        assert "(frame 1)" in ds.attrs["failed_tasks"]
        assert ds["trustworthy"].values.tolist() == [1, 1]


def test_physics_every_frame_fails_writes_nothing(capsys, work):
    pytest.importorskip("ase")
    import ase.io

    ase.io.write(work / "traj.xyz", [_vacancy_box(0.15)] * 2, format="extxyz")
    run = analyze(capsys, work, TRAJECTORY.replace("max_steps: 1000", "max_steps: 30"), "-q")
    refused(run, ExitCode.UNTRUSTWORTHY, "traj.xyz", "did not converge after 30", "raise solver.options limits")


def test_physics_saddle_written_and_flagged(capsys, work):
    config = ("structure: {generator: {name: fcc, lattice_constant: 1.95, repeat: [2, 2, 2]}}\n"
              "model: {name: lennard_jones, differentiate: [sigma], options: {r_cutoff: 1.8, r_onset: 1.5}}\n"
              "solver: {name: none}\noutput: {path: out.nc}\n")
    run = analyze(capsys, work, config)
    assert run.code == ExitCode.UNTRUSTWORTHY and "saddle" in run.out and "NOT trustworthy" in run.out
    assert "Traceback" not in run.err and run.changed == {"out.nc"}
    import xarray as xr

    with xr.open_dataset(work / "out.nc") as ds:
        assert ds["verdict"].values.ravel().tolist() == ["saddle"] and int(ds["trustworthy"].values.ravel()[0]) == 0


def test_physics_rattler_flagged(capsys, work, beads):
    (work / "rattler.beads").write_text(BEADS.replace("4\n", "5\n") + "A 5.0 5.0 5.0\n")
    run = analyze(capsys, work, BEADS_CONFIG.replace("tri.beads", "rattler.beads"))
    assert run.code == ExitCode.UNTRUSTWORTHY, run.err
    assert "unexpected zero mode" in run.out and "NOT trustworthy" in run.out
    assert "Traceback" not in run.err and run.changed == {"out.nc"}


@pytest.mark.slow
def test_physics_neighbor_overflow(capsys, work):
    config = ("structure: {generator: {name: fcc, lattice_constant: 1.56, repeat: [3, 3, 3], rattle: 0.12, seed: 1}}\n"
              "model: {name: lennard_jones, differentiate: [sigma], options: {neighbor_list: true, "
              "neighbor_capacity_multiplier: 1.0, neighbor_skin: 0.0, r_cutoff: 1.5, r_onset: 1.3}}\n"
              "solver: {name: fire, options: {max_reallocations: 0}}\noutput: {path: out.nc}\n")
    refused(analyze(capsys, work, config), ExitCode.UNTRUSTWORTHY, "more neighbors within the cutoff",
            "the solver says")


PLUGIN_FAULTS = [
    ("physics-nan-energy", "model", "nan_energy", ExitCode.USAGE_ERROR,
     ["model 'bead_cluster' of plugin beads (sensitiv-beads 0.2.0)", "energy nan"]),
    ("physics-nan-gradient", "model", "nan_gradient", ExitCode.USAGE_ERROR,
     ["gradient of model 'bead_cluster' of plugin beads (sensitiv-beads 0.2.0)", "non-finite"]),
    ("physics-wrong-null-space", "model", "wrong_null_space", ExitCode.USAGE_ERROR,
     ["model 'bead_cluster' of plugin beads (sensitiv-beads 0.2.0) declares 7 zero mode(s)", "mode 6 is not one",
      "fix the model's null_space"]),
    ("physics-null-space-not-orthonormal", "model", "non_orthonormal_null_space", ExitCode.USAGE_ERROR,
     ["System.null_space are not orthonormal"]),
    ("physics-nan-positions", "solver", "nan_positions", ExitCode.USAGE_ERROR,
     ["solver 'bead_lbfgs' of plugin beads (sensitiv-beads 0.2.0) returned non-finite positions"]),
    ("physics-solver-wrong-shape", "solver", "wrong_shape", ExitCode.USAGE_ERROR,
     ["returned positions of shape (3, 3)", "(4, 3)"]),
    ("physics-solver-stalls-with-message", "solver", "stall", ExitCode.UNTRUSTWORTHY,
     ["did not converge", "the solver says: line search cannot make progress"]),
    ("plugin-raising-model-factory", "model", "raise_in_factory", ExitCode.USAGE_ERROR,
     ["model 'bead_cluster' of plugin beads (sensitiv-beads 0.2.0) failed", "ValueError: bead table exhausted"]),
    ("plugin-raising-energy", "model", "raise_in_energy", ExitCode.USAGE_ERROR,
     ["of plugin beads (sensitiv-beads 0.2.0) failed", "RuntimeError: bead energy kernel missing"]),
    ("plugin-raising-solver", "solver", "raise", ExitCode.USAGE_ERROR,
     ["solver 'bead_lbfgs' of plugin beads (sensitiv-beads 0.2.0) failed",
      "ZeroDivisionError: line search step underflow"]),
    ("plugin-raising-reader", "structure", "raise", ExitCode.USAGE_ERROR,
     ["reader 'beads' of plugin beads (sensitiv-beads 0.2.0) failed: KeyError", "structure.format"]),
    ("plugin-reader-nan-coordinates", "structure", "nan", ExitCode.USAGE_ERROR,
     ["tri.beads", "non-finite (NaN or infinite) coordinates"]),
]


@pytest.mark.parametrize("case, section, fault, code, fragments", PLUGIN_FAULTS, ids=[c[0] for c in PLUGIN_FAULTS])
def test_plugin_fault_caught_and_named(capsys, work, beads, case, section, fault, code, fragments):
    """A third-party plugin that returns NaN, wrong zero modes or raises: caught, named with
    its distribution, nothing written (never a NaN file called regular, never exit 3)."""
    refused(analyze(capsys, work, BEADS_CONFIG, "--set", f"{section}.options.fault={fault}"), code, *fragments)


def test_plugin_model_right_answer_is_trustworthy(capsys, work, beads):
    """The control: the same plugin without faults gives a trustworthy result (exit 0)."""
    run = analyze(capsys, work, BEADS_CONFIG)
    assert run.code == ExitCode.OK, run.out + run.err
    assert "result: trustworthy" in run.out and run.changed == {"out.nc"}


BROKEN_PLUGINS = [
    ("plugin-import-failure", "sensitiv_broken_gone.plugin", None,
     ["plugin 'broken' (sensitiv_broken_gone.plugin, from sensitiv-broken)", "ModuleNotFoundError"]),
    ("plugin-raising-hook", "sensitiv_broken_mod", """
from sensitiv.hookspecs import hookimpl

@hookimpl
def sensitiv_energy_models():
    raise RuntimeError("boom")
""", ["plugin 'broken'", "sensitiv_energy_models()", "RuntimeError: boom"]),
    ("plugin-wrong-hook-signature", "sensitiv_broken_mod", """
from sensitiv.hookspecs import hookimpl

@hookimpl
def sensitiv_energy_models(structure):
    return []
""", ["plugin 'broken'", "structure"]),
    ("plugin-misspelt-hook", "sensitiv_broken_mod", """
from sensitiv.hookspecs import hookimpl

@hookimpl
def sensitiv_energy_model():
    return []
""", ["plugin 'broken'", "did you mean 'sensitiv_energy_models'"]),
    ("plugin-duplicate-name", "sensitiv_broken_mod", """
from sensitiv.hookspecs import hookimpl
from sensitiv.records import EquilibriumSolver

@hookimpl
def sensitiv_equilibrium_solvers():
    return [EquilibriumSolver(name="fire", factory=lambda options: None, description="a second fire")]
""", ["'fire'", "broken"]),
]


@pytest.fixture
def broken_site(tmp_path, monkeypatch):
    """Install (as files on sys.path) one broken third-party plugin; returns a writer."""
    site = tmp_path / "broken_site"

    def install(module: str, source: str | None, case: str = ""):
        if source is not None:  # one module per case: Python keeps imported modules
            module = f"{module}_{case.replace('-', '_')}"
        info = site / "sensitiv_broken-1.0.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: sensitiv-broken\nVersion: 1.0\n")
        (info / "entry_points.txt").write_text(f"[sensitiv]\nbroken = {module}\n")
        if source is not None:
            (site / f"{module}.py").write_text(source)
        monkeypatch.syspath_prepend(str(site))
        monkeypatch.setattr(sensitiv.plugins._registry, "_default", None)  # the command discovers it

    yield install
    monkeypatch.undo()
    get_registry(refresh=True)


@pytest.mark.parametrize("case, module, source, fragments", BROKEN_PLUGINS, ids=[c[0] for c in BROKEN_PLUGINS])
def test_plugin_broken_one_never_breaks_the_others(capsys, work, broken_site, case, module, source, fragments):
    """One broken third-party plugin is left out with a one-line warning naming it, its
    distribution and the SENSITIV_PLUGINS workaround; every other plugin keeps working."""
    import logging

    handler = logging.StreamHandler(sys.stderr)  # what the CLI's logging set-up shows
    logging.getLogger("sensitiv.plugins").addHandler(handler)
    try:
        broken_site(module, source, case)
        config = GEN.replace("output: {path: out.nc}", "output: {path: out.nc}\nsolver: {name: fire}")
        run = validate(capsys, work, config)
    finally:
        logging.getLogger("sensitiv.plugins").removeHandler(handler)
    assert run.code == ExitCode.OK, run.err
    warnings = [line for line in run.lines if "left out, the other plugins work" in line]
    assert len(warnings) == 1 and "SENSITIV_PLUGINS=builtin" in warnings[0], run.err
    assert all(f in warnings[0] for f in fragments), warnings[0]
    assert "Traceback" not in run.err and run.changed == set()
    registry = get_registry()
    assert "fire" in registry.equilibrium_solvers and "soft_sphere" in registry.energy_models
    assert registry.equilibrium_solvers["fire"].description != "a second fire"
    with pytest.raises(sensitiv.errors.PluginError, match="left out, failed to load: broken"):
        registry.get_energy_model("bead_spring")


def test_plugin_broken_one_chosen_by_name_is_an_error(capsys, work, broken_site, monkeypatch):
    broken_site("sensitiv_broken_gone.plugin", None)
    monkeypatch.setenv("SENSITIV_PLUGINS", "builtin,jaxmd,broken")
    get_registry_error = None
    try:
        get_registry(refresh=True)
    except sensitiv.errors.PluginError as err:
        get_registry_error = str(err)
    assert get_registry_error is not None and "plugin 'broken'" in get_registry_error
    refused(validate(capsys, work, GEN), ExitCode.USAGE_ERROR, "plugin 'broken'", "ModuleNotFoundError")


def test_plugin_model_needs_no_other_plugin(capsys, work, beads, monkeypatch):
    """A third-party model, solver and reader analyzed with only the host beside them: the
    generic `stationary` condition is the host's, not jax-md's."""
    monkeypatch.setenv("SENSITIV_PLUGINS", "builtin,beads")
    registry = get_registry(refresh=True)
    assert registry.owner("optimality_condition", "stationary") == "builtin"
    assert "jaxmd" not in [p.name for p in registry.plugins]
    run = analyze(capsys, work, BEADS_CONFIG)
    assert run.code == ExitCode.OK, run.out + run.err
    assert "result: trustworthy" in run.out and run.changed == {"out.nc"}


# == Python API ==============================================================================


def _api_error(call, error_type, *fragments):
    with pytest.raises(error_type) as info:
        call()
    message = str(info.value)
    assert "\n" not in message and all(f in message for f in fragments), message


def test_api_optimality_function_of_the_wrong_shape():
    import jax.numpy as jnp

    _api_error(lambda: sensitiv.root_jvp(lambda x, t: jnp.sum(x - t), jnp.zeros(3), (jnp.ones(3),), (jnp.ones(3),)),
               sensitiv.errors.ImplicitDiffError, "must return a pytree with the structure and shapes of the solution")


def test_api_tangents_of_the_wrong_structure():
    import jax.numpy as jnp

    _api_error(lambda: sensitiv.root_jvp(lambda x, t: x - t, jnp.zeros(3), (jnp.ones(3),), (jnp.ones(2),)),
               sensitiv.errors.ImplicitDiffError, "tangents must have the structure and shapes of args", "(2,)")


def test_api_cotangent_of_the_wrong_structure():
    import jax.numpy as jnp

    _api_error(lambda: sensitiv.root_vjp(lambda x, t: x - t, jnp.zeros(3), (jnp.ones(3),), {"a": jnp.ones(3)}),
               sensitiv.errors.ImplicitDiffError, "cotangent must have the structure and shapes of the solution")


@pytest.mark.parametrize("which", ["params", "sol"])
def test_api_integer_dtypes(which):
    import jax.numpy as jnp
    from sensitiv import jacobian

    ints, floats = jnp.arange(3), jnp.ones(3)
    args = (ints, floats) if which == "sol" else (floats, ints)
    _api_error(lambda: jacobian(lambda x, t: x - t, *args), sensitiv.errors.InputError,
               f"{which}: every leaf must be a floating-point array")


def test_api_float32_right_and_flagged_honestly():
    import jax.numpy as jnp
    from sensitiv import jacobian

    result = jacobian(lambda x, t: x**3 / 3 + x - t, jnp.zeros(3, jnp.float32), jnp.ones(3, jnp.float32) * 0)
    np.testing.assert_allclose(np.asarray(result.jacobian), np.eye(3), rtol=1e-6)
    assert np.asarray(result.jacobian).dtype == np.float32


def test_api_pytree_solution():
    import jax.numpy as jnp
    from sensitiv import jacobian

    result = jacobian(lambda x, t: {"a": x["a"] - 2.0 * t}, {"a": jnp.zeros(2)}, jnp.ones(2))
    np.testing.assert_allclose(np.asarray(result.jacobian["a"]), 2.0 * np.eye(2))


@pytest.mark.parametrize("which", ["sol", "params"])
def test_api_non_finite_input_never_trustworthy(which):
    import jax
    import jax.numpy as jnp
    from sensitiv import jacobian

    bad = jnp.array([0.0, jnp.nan, 0.0])
    sol, params = (bad, jnp.ones(3)) if which == "sol" else (jnp.zeros(3), bad)
    _api_error(lambda: jacobian(lambda x, t: x - t, sol, params), sensitiv.errors.InputError,
               f"{which}: 1 non-finite entry (NaN or inf, first at index (1,))", "pass finite values")
    # under the caller's jit the values are unknown: the flags must still refuse the result
    info = jax.jit(lambda s, p: jacobian(lambda x, t: x - t, s, p).info)(sol, params)
    assert not bool(info.trustworthy)


# == inspect and plot on foreign or damaged files ============================================


def _fake_result(path: Path, **override):
    import xarray as xr

    ds = xr.Dataset(
        {"dx_dtheta": (("atom", "spatial", "parameter"), np.ones((2, 2, 1))),
         "coordinates": (("atom", "spatial"), np.zeros((2, 2))),
         "parameter_value": (("parameter",), [1.0])},
        coords={"parameter": ["k"], "spatial": ["x", "y"]},
    )
    for name, value in override.items():
        ds = ds.drop_vars(name) if value is None else ds.assign({name: value})
    ds.to_netcdf(path)


INSPECT_CASES = [
    ("inspect-missing-file", "inspect", None, ["no such file"]),
    ("inspect-text-file", "inspect", lambda p: p.write_text("hello\n"), ["not a readable NetCDF file"]),
    ("inspect-truncated", "inspect", lambda p: (_fake_result(p), p.write_bytes(p.read_bytes()[:400])),
     ["not a readable NetCDF file"]),
    ("inspect-foreign-netcdf", "inspect", lambda p: _write_foreign(p), ["not a sensitiv result", "no dx_dtheta"]),
    ("inspect-foreign-dimensions", "inspect",
     lambda p: _write_foreign(p, dx_dtheta=(("a", "b"), np.zeros((2, 2)))),
     ["not a sensitiv result", "dx_dtheta has dimensions ('a', 'b')"]),
    ("plot-missing-coordinates", "plot", lambda p: _fake_result(p, coordinates=None), ["no coordinates variable"]),
    ("plot-truncated", "plot", lambda p: (_fake_result(p), p.write_bytes(p.read_bytes()[:400])),
     ["not a readable NetCDF file"]),
    ("plot-foreign-netcdf", "plot", lambda p: _write_foreign(p), ["not a sensitiv result"]),
    ("plot-unknown-parameter", "plot-parameter", lambda p: _fake_result(p), ["--parameter 'kk'", "did you mean 'k'"]),
    ("plot-missing-folder", "plot-folder", lambda p: _fake_result(p), ["does not exist"]),
]


def _write_foreign(path: Path, **variables):
    import xarray as xr

    xr.Dataset(variables or {"temperature": (("time",), np.ones(3))}).to_netcdf(path)


@pytest.mark.parametrize("case, command, make, fragments", INSPECT_CASES, ids=[c[0] for c in INSPECT_CASES])
def test_inspect_and_plot_refuse(capsys, work, case, command, make, fragments):
    target = work / "result.nc"
    if make is not None:
        make(target)
    if command == "inspect":
        argv = ["inspect", target]
    elif command == "plot-parameter":
        argv = ["plot", target, "-o", work / "fig.png", "--parameter", "kk"]
    elif command == "plot-folder":
        argv = ["plot", target, "-o", work / "nowhere" / "fig.png"]
    else:
        argv = ["plot", target, "-o", work / "fig.png"]
    refused(cli(capsys, work, *argv), ExitCode.USAGE_ERROR, *fragments)


# == security ================================================================================

SECURITY_CASES = [
    ("security-python-object-tag", 'structure: !!python/object/apply:os.system ["touch pwned"]\nmodel: {name: soft_sphere}\n',
     ["YAML tag", "python/object/apply:os.system", "not allowed"]),
    ("security-python-name-tag", GEN.replace("name: soft_sphere", "name: !!python/name:os.system"),
     ["YAML tag", "not allowed"]),
    ("security-custom-tag", GEN.replace("n_atoms: 8", "n_atoms: !eval 8"), ["YAML tag '!eval'"]),
    ("security-alias-bomb", "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{b}: &{b} [{', '.join(['*' + a] * 10)}]\n" for a, b in zip("abcdef", "bcdefg")) + GEN,
     ["expands to more than", "aliases"]),
    ("security-model-name-code", GEN.replace("name: soft_sphere", "name: \"__import__('os').system('touch pwned')\""),
     ["$.model.name"]),
    ("security-format-path-traversal", LJ_DATA.replace("{file: arkr.data}", "{file: arkr.data, format: ../../etc/passwd}"),
     ["$.structure.format"]),
    ("security-observable-code", GEN + "observables: [\"exec('touch pwned')\"]\n", ["$.observables[0]"]),
]


@pytest.mark.parametrize("case, config, fragments", SECURITY_CASES, ids=[c[0] for c in SECURITY_CASES])
def test_security_config_values_never_run(capsys, work, case, config, fragments):
    run = analyze(capsys, work, config)
    refused(run, ExitCode.USAGE_ERROR, *fragments, lines=3)
    assert not (work / "pwned").exists()


def test_security_shell_characters_in_output_path(capsys, work):
    """A path is a path: no shell sees it (the dry run names it literally, nothing runs)."""
    config = GEN.replace("output: {path: out.nc}", "output: {path: \"$(touch pwned)`touch pwned`.nc\"}")
    run = analyze(capsys, work, config, "--dry-run")
    assert run.code == ExitCode.OK and "$(touch pwned)`touch pwned`.nc" in run.err
    assert not (work / "pwned").exists() and not run.changed


def test_security_plugin_selection_imports_only_entry_points(work):
    """SENSITIV_PLUGINS names entry points, never modules: `os.path` is refused, not imported."""
    env = {**os.environ, "SENSITIV_PLUGINS": "os.path"}
    (work / "config.yaml").write_text(GEN)
    done = subprocess.run([sys.executable, "-m", "sensitiv.cli", "validate", "config.yaml"], cwd=work,
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == ExitCode.USAGE_ERROR, done.stderr
    assert "no plugin entry point named 'os.path'" in done.stderr and "Traceback" not in done.stderr


def test_security_stored_config_is_plain_yaml(work):
    """The config stored in a result is data (safe YAML), whatever strings it holds."""
    from sensitiv.pipeline import config

    text = GEN.replace("output: {path: out.nc}", "title: \"!!python/object/apply:os.system ['touch pwned']\"")
    cfg = config.load(text=text)
    stored = cfg.to_yaml()
    from sensitiv.pipeline._yaml import parse_yaml_text

    data, _, _ = parse_yaml_text(stored, "stored")
    assert data["title"] == "!!python/object/apply:os.system ['touch pwned']"
    assert not (work / "pwned").exists()


# == textual test of the catalogue itself ====================================================


def test_catalogue_covers_every_category():
    ids = [c[0] for c in CONFIG_CASES + STRUCTURE_CASES + PLUGIN_FAULTS + BROKEN_PLUGINS + INSPECT_CASES
           + SECURITY_CASES]
    categories = {i.split("-")[0] for i in ids} | {"output", "signal", "api"}
    assert categories >= {"config", "structure", "output", "signal", "physics", "plugin", "api", "inspect",
                          "security"}
    assert len(ids) == len(set(ids))

