"""The stage display: live on a terminal, silent otherwise, timings always recorded."""

import io
import time

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


def test_silent_when_not_a_terminal_or_quiet():
    stream = io.StringIO()
    progress = Progress(stream=stream)
    with progress.stage("jacobian"):
        pass
    assert stream.getvalue() == "" and "jacobian" in progress.timings
    quiet = Progress(stream=_Terminal(), verbosity=0)
    with quiet.stage("jacobian"):
        time.sleep(0.15)
    assert quiet.stream.getvalue() == ""
