"""The calibration suite (benchmarks/calibration.py) at reduced sizes: for every case and
every strategy, the verdict matches the case's known truth (0 false alarms, 0 missed
alarms, the expected reason), λ_min is within 1e-3 of the dense reference or reported as an
interval containing it, and the error estimate is within 10× of the measured error.

`python benchmarks/calibration.py` runs the same at full size and prints the confusion
matrices (docs/concepts.md shows them)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
import calibration  # noqa: E402


# the crystals need 128 to 256-atom cells for the cutoffs (d = 384 to 768): full suite only
LARGE = {"fcc-lj", "fcc-lj-sheared", "fcc-lj-vacancy", "bcc-lj-unstable", "bcc-fe-eam"}
#: Cases whose calibration targets are not met yet (issue 13, owner: engine), as strict
#: expected failures: remove an entry when its fix lands (the case must then pass).
OPEN: dict[str, str] = {}  # none left


def _marks(case, slow: bool):
    marks = [pytest.mark.slow] if slow else []
    if case.name in OPEN:
        marks.append(pytest.mark.xfail(reason=OPEN[case.name], strict=True))
    return pytest.param(case, marks=marks)


REDUCED_CASES = [_marks(c, c.name in LARGE) for c in calibration.CASES]


def _judge_in_own_process(case, reduced: bool) -> list[str]:
    """The targets one case misses, judged in a fresh interpreter (the benchmark's own
    mechanism, `calibration.run_in_own_process`): XLA keeps memory mappings for every
    compiled program, and the suite's long-lived xdist workers passed Linux's default
    `vm.max_map_count` and segfaulted on these cases. Without the persistent cache, as
    before: `executable.serialize()` (a cache write) was one place the crash showed."""
    return calibration.run_in_own_process(case.name, reduced, cache=False)["problems"]


@pytest.mark.parametrize("case", REDUCED_CASES, ids=lambda c: c.name)
def test_case_is_judged_right_by_every_strategy(case):
    problems = _judge_in_own_process(case, reduced=True)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("case", [_marks(c, True) for c in calibration.CASES], ids=lambda c: c.name)
def test_case_at_full_size(case):
    problems = _judge_in_own_process(case, reduced=False)
    assert not problems, "\n".join(problems)


# -- the README's main command -------------------------------------------------------------

README_CONFIG = Path(__file__).resolve().parent.parent / "examples" / "softspheres" / "config.yaml"


def _readme_command(tmp_path, capsys, *extra):
    from sensitiv.cli import ExitCode, main

    code = main(["analyze", str(README_CONFIG), "-o", str(tmp_path / "softspheres.nc"), "--force", *extra])
    out = capsys.readouterr().out
    return code, out, ExitCode


def test_readme_command_is_trustworthy_reduced(tmp_path, capsys):
    code, out, ExitCode = _readme_command(tmp_path, capsys, "--set", "structure.generator.n_atoms=48")
    assert code == ExitCode.OK, out
    assert "result: trustworthy" in out and "WARNING" not in out
    assert "(tolerance 1e-06)" in out


@pytest.mark.slow
def test_readme_command_is_trustworthy_full_size(tmp_path, capsys):
    code, out, ExitCode = _readme_command(tmp_path, capsys)
    assert code == ExitCode.OK, out
    assert "result: trustworthy" in out and "WARNING" not in out
