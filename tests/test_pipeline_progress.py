"""The stage display: live on a terminal, one line per stage in batch, timings always recorded."""

import io
import time

from sensitiv import progress as reports
from sensitiv.pipeline._progress import Progress


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_live_display_on_a_terminal():
    stream = _Terminal()
    progress = Progress(stream=stream)
    with progress.stage("minimization"):
        time.sleep(0.25)
    text = stream.getvalue()
    assert "\r" in text and "minimization …" in text and "✓ minimization" in text
    assert progress.timings["minimization"] >= 0.2


def test_one_line_per_stage_in_verbose_batch_and_silent_when_quiet():
    plain = io.StringIO()
    with Progress(stream=plain).stage("jacobian"):
        pass
    assert plain.getvalue() == ""  # a refusal after a stage stays one line
    stream = io.StringIO()
    progress = Progress(stream=stream, verbosity=2)
    with progress.stage("jacobian"):
        pass
    assert stream.getvalue().startswith("jacobian: ") and stream.getvalue().count("\n") == 1
    assert "\r" not in stream.getvalue() and "jacobian" in progress.timings
    quiet = Progress(stream=_Terminal(), verbosity=0)
    with quiet.stage("jacobian"):
        time.sleep(0.15)
        reports.report("fire", 10, 1e-3, 1e-10)
    quiet.note("a task is done")
    assert quiet.stream.getvalue() == ""


def test_what_the_solver_reports_is_shown():
    stream = _Terminal()
    progress = Progress(stream=stream)
    with progress.stage("minimization"):
        reports.report("fire", 4000, 2.1e-7, 1e-10, limit=100000)
        time.sleep(0.25)
    text = stream.getvalue()
    assert "fire step 4000/100000, max|F| 2.10e-07 → 1e-10" in text
    batch = io.StringIO()
    progress = Progress(stream=batch, verbosity=2)
    with progress.stage("minimization"):
        reports.report("newton", 2, 3e-12, 1e-10)
    assert batch.getvalue().startswith("minimization: ") and "(newton step 2, max|F| 3.00e-12 → 1e-10)" in batch.getvalue()
    reports.report("fire", 1, 1.0)  # nobody listening: nothing happens


def test_tasks_of_an_ensemble_get_a_line_each_with_the_time_left():
    batch = io.StringIO()
    progress = Progress(stream=batch)
    counter = progress.counter(3, done=1)
    counter.finished("traj.xyz (frame 1)")
    counter.failed("traj.xyz (frame 2): did not converge")
    lines = batch.getvalue().splitlines()
    assert lines[0].startswith("[2/3] done: traj.xyz (frame 1); about ") and lines[0].endswith(" left")
    assert lines[1] == "[3/3] FAILED: traj.xyz (frame 2): did not converge"
