"""The documentation's commands run, so the pages cannot rot.

- `docs/tutorial.md`: every fenced `bash` and `python` block is run, in page order, in an
  empty folder, as a reader would type them. Consecutive `python` blocks form one
  session (one interpreter), like a reader's; a `yaml` block with `title="NAME"` is
  written to the file NAME. `text` blocks show output and are not run. A block placed
  right after `<!-- tutorial-test: skip -->` is not run: only `sensitiv plugins`, a
  read-only listing that `tests/test_plugins_cli.py` covers and that costs 12 s of CPU
  (importing every plugin) for nothing the tutorial needs.
- Other pages: each `python` block placed right after `<!-- docs-test -->` runs on its
  own, in a fresh interpreter.

The tutorial runs at the size it is written for (107 atoms): the cost is JAX's
compilation, which a smaller structure would not reduce (measured: 31 atoms take 39 s of
CPU, 107 atoms 43 s).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
TUTORIAL = DOCS / "tutorial.md"

FENCE = re.compile(r"^```(?P<lang>\w+)(?P<attrs>[^\n]*)\n(?P<body>.*?)^```[ \t]*$", re.M | re.S)
TITLE = re.compile(r'title="([^"]+)"')
SKIP_MARK = "<!-- tutorial-test: skip -->"
TEST_MARK = "<!-- docs-test -->"


def fenced_blocks(text: str):
    """(language, attributes, body, line number, marker before it) for each top-level fence."""
    for match in FENCE.finditer(text):
        before = text[: match.start()].rstrip().rsplit("\n", 1)[-1].strip()
        line = text.count("\n", 0, match.start()) + 1
        yield match["lang"], match["attrs"], match["body"], line, before


def run_env() -> dict:
    env = dict(os.environ)
    # The `sensitiv` command of this interpreter's environment comes first on PATH.
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env["MPLBACKEND"] = "Agg"
    env["NO_COLOR"] = "1"
    return env


def run_step(kind: str, code: str, where: str, cwd: Path, index: int) -> None:
    if kind == "bash":
        command = ["bash", "-euo", "pipefail", "-c", code]
    else:
        script = cwd / f"_docs_step_{index}.py"
        script.write_text(code, encoding="utf-8")
        command = [sys.executable, str(script)]
    proc = subprocess.run(
        command, cwd=cwd, env=run_env(), capture_output=True, text=True, timeout=900
    )
    output = (proc.stdout + proc.stderr)[-8000:]
    assert proc.returncode == 0, f"{where} ({kind}) exited with {proc.returncode}:\n{code}\n--- output ---\n{output}"


def tutorial_steps(text: str):
    """The tutorial as steps: ('file', name, body), ('bash', code), ('python', code)."""
    steps = []
    for lang, attrs, body, line, before in fenced_blocks(text):
        if before == SKIP_MARK:
            continue
        where = f"docs/tutorial.md:{line}"
        if lang == "yaml":
            title = TITLE.search(attrs)
            if title:
                steps.append(("file", title.group(1), body, where))
        elif lang == "bash":
            steps.append(("bash", body, where))
        elif lang == "python":
            if steps and steps[-1][0] == "python":
                # One interpreter session: the next block continues the previous one.
                _, code, first = steps[-1]
                steps[-1] = ("python", f"{code}\n# --- {where}\n{body}", first)
            else:
                steps.append(("python", f"# --- {where}\n{body}", where))
    return steps


def test_tutorial_block_parsing():
    text = (
        "intro\n\n```bash\necho one\n```\n\n```text\nnot run\n```\n\n"
        '```yaml title="a.yaml"\nkey: 1\n```\n\n```python\nx = 1\n```\n\nprose\n\n'
        "```python\nprint(x)\n```\n\n" + SKIP_MARK + "\n```bash\nexit 1\n```\n"
    )
    steps = tutorial_steps(text)
    assert [s[0] for s in steps] == ["bash", "file", "python"]
    assert steps[1][1:3] == ("a.yaml", "key: 1\n")
    assert "x = 1" in steps[2][1] and "print(x)" in steps[2][1]


def test_tutorial_runs(tmp_path):
    text = TUTORIAL.read_text(encoding="utf-8")
    steps = tutorial_steps(text)
    commands = "\n".join(s[1] for s in steps if s[0] == "bash")
    python = "\n".join(s[1] for s in steps if s[0] == "python")
    # The tutorial's point, guarded against an edit that would leave nothing to test.
    assert re.search(r"^sensitiv analyze \S+\.yaml", commands, re.M), "no `sensitiv analyze` command"
    assert "xr.open_dataset(" in python and "assert" in python
    assert any(s[0] == "file" for s in steps), "no configuration file"
    for index, step in enumerate(steps):
        if step[0] == "file":
            (tmp_path / step[1]).write_text(step[2], encoding="utf-8")
        else:
            run_step(step[0], step[1], step[2], tmp_path, index)


PAGE_EXAMPLES = [
    (page.name, line, body)
    for page in sorted(DOCS.glob("*.md"))
    for lang, _, body, line, before in fenced_blocks(page.read_text(encoding="utf-8"))
    if lang == "python" and before == TEST_MARK
]


def test_page_examples_are_found():
    pages = {name for name, _, _ in PAGE_EXAMPLES}
    assert {"index.md", "concepts.md", "migrating.md"} <= pages, pages


@pytest.mark.parametrize(
    "page,line,code", PAGE_EXAMPLES, ids=[f"{name}:{line}" for name, line, _ in PAGE_EXAMPLES]
)
def test_page_example_runs(page, line, code, tmp_path):
    run_step("python", code, f"docs/{page}:{line}", tmp_path, 0)
