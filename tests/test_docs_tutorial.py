"""The documentation's commands run, so the pages cannot rot.

Every fenced `bash` and `python` block of README.md, docs/*.md and examples/*/README.md
is accounted for:

- `docs/tutorial.md`: every fenced `bash` and `python` block is run, in page order, in an
  empty folder, as a reader would type them. Consecutive `python` blocks form one
  session (one interpreter), like a reader's; a `yaml` block with `title="NAME"` is
  written to the file NAME. `text` blocks show output and are not run. A block placed
  right after `<!-- tutorial-test: skip -->` is not run: only `sensitiv plugins`, a
  read-only listing that `tests/test_plugins_cli.py` covers and that costs 12 s of CPU
  (importing every plugin) for nothing the tutorial needs.
- Other pages, one block at a time, each in a fresh folder holding a copy of `examples/`
  (so `examples/...` paths work and nothing is written into the repository), as its own
  `bash -euo pipefail` script or Python interpreter. The line right before a block
  decides what happens to it:
  - nothing, or `<!-- docs-test -->`: run in CI;
  - `<!-- docs-test: slow -->`: run with `-m slow` (minutes: a full example);
  - `<!-- docs-test: reduced ARGS -->`: run in CI with ARGS appended to every
    `sensitiv analyze` command of the block (a reduced size), and in full with `-m slow`;
  - `<!-- docs-test: skip REASON -->`: not run, and REASON says why (a GPU, a signature,
    what another test runs already);
  - `<!-- docs-test: given softspheres.nc -->`: run in CI in a folder that holds the
    result the page's commands write (`softspheres.nc`: the bundled main job at 16
    particles, made once per session by `sensitiv analyze`).
  Identical bash blocks on several pages (the set-up commands of README.md and
  docs/installation.md) run once.
- The `python` blocks of one page run as one session, like a reader's: in page order, in
  one interpreter and one namespace (`test_docs_python_page`), so a fragment uses the
  names the page's earlier blocks define. Every block is compiled with its page and line
  as file name, so a traceback points into the page. A `skip` block is left out of the
  session; a `given` block puts its result in the session's folder; a `slow` block makes
  the whole session slow.
- `pip install` commands are checked, not re-run: the test environment is the one they
  make, and re-installing it from inside its own test run would change it under the
  other tests. Every path they name must hold a Python project, every extra they ask for
  must be declared there (`check_pip_install`); the rest of the line then runs.

A block has 15 minutes (a slow one 3 hours: whole examples on loaded cores); past that it
fails with its output, and every program it started is ended with it.

The tutorial runs at the size it is written for (107 atoms): the cost is JAX's
compilation, which a smaller structure would not reduce (measured: 31 atoms take 39 s of
CPU, 107 atoms 43 s).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
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


#: Seconds a block may run: CI blocks are small; a slow block runs whole examples (the
#: eam_vacancy fit and uncertainty commands: ~10 min each on 2 idle cores, three times
#: that on loaded ones).
TIMEOUT, SLOW_TIMEOUT = 900, 3 * 3600


def run_step(kind: str, code: str, where: str, cwd: Path, index: int, timeout: float = TIMEOUT) -> None:
    if kind == "bash":
        command = ["bash", "-euo", "pipefail", "-c", code]
    else:
        script = cwd / f"_docs_step_{index}.py"
        script.write_text(code, encoding="utf-8")
        command = [sys.executable, str(script)]
    # Its own process group: a block that runs too long is ended with every program it started.
    with subprocess.Popen(command, cwd=cwd, env=run_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, start_new_session=True) as proc:
        try:
            output, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            output, _ = proc.communicate()
            pytest.fail(f"{where} ({kind}) did not finish in {timeout:.0f} s:\n{code}\n--- output ---\n{output[-8000:]}")
    assert proc.returncode == 0, f"{where} ({kind}) exited with {proc.returncode}:\n{code}\n--- output ---\n{output[-8000:]}"


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


def test_a_block_past_its_time_ends_with_its_programs(tmp_path):
    """A block that runs too long fails with its output, and the programs it started end too
    (not left running on the CI machine's two cores)."""
    with pytest.raises(pytest.fail.Exception, match=r"(?s)did not finish in 2 s.*started"):
        run_step("bash", "echo started; sleep 60 >/dev/null 2>&1 & echo $! > child.pid; wait", "page.md:1", tmp_path, 0, timeout=2)
    stat = Path(f"/proc/{int((tmp_path / 'child.pid').read_text())}/stat")
    if Path("/proc/self/stat").exists():  # Linux: gone, or a zombie waiting for its reaper
        # SIGKILL is delivered asynchronously: on a loaded machine the child can still show as
        # running for a moment after killpg returns (seen intermittently). Give it 10 s to end;
        # a child outside the process group would run its full 60 s and fail this.
        deadline = time.monotonic() + 10
        while stat.exists() and _state(stat) not in ("Z", None) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _state(stat) in ("Z", None)


def _state(stat: Path) -> str | None:
    """A process's state letter from /proc/<pid>/stat, None when it is gone."""
    try:
        return stat.read_text().split()[2]
    except (FileNotFoundError, ProcessLookupError):
        return None


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


PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md")), *sorted((ROOT / "examples").glob("*/README.md"))]
MARK = re.compile(r"^<!-- docs-test(?::\s*(?P<kind>slow|reduced|skip|given)\b\s*(?P<detail>.*?))?\s*-->$")
ANALYZE = re.compile(r"(sensitiv analyze [^\n&|;#]*?)(\s*(?:#[^\n]*)?)$", re.M)


def page_blocks():
    """(where, language, kind, detail, body) of every bash and python block outside the
    tutorial; kind: run, slow, reduced, skip, given."""
    seen = set()
    for page in PAGES:
        if page == TUTORIAL:
            continue
        where_page = page.relative_to(ROOT).as_posix()
        for lang, _, body, line, before in fenced_blocks(page.read_text(encoding="utf-8")):
            if lang not in ("bash", "python"):
                continue
            mark = MARK.match(before)
            if mark is None:
                kind, detail = "run", ""
            else:
                kind, detail = mark["kind"] or "run", mark["detail"] or ""
            if lang == "bash":
                # Python blocks belong to their page's session: never deduplicated.
                if (lang, body) in seen:
                    continue
                seen.add((lang, body))
            yield f"{where_page}:{line}", lang, kind, detail, body


BLOCKS = list(page_blocks())


def _cases():
    """Every bash block, and the python blocks that are skipped (with their reason);
    the other python blocks run in their page's session (`_sessions`)."""
    for where, lang, kind, detail, body in BLOCKS:
        if lang == "python" and kind != "skip":
            continue
        if kind == "reduced":
            yield pytest.param(where, lang, "reduced", detail, body, id=f"{where}-reduced")
            yield pytest.param(where, lang, "run", "", body, id=where, marks=pytest.mark.slow)
        elif kind == "slow":
            yield pytest.param(where, lang, "run", detail, body, id=where, marks=pytest.mark.slow)
        else:
            yield pytest.param(where, lang, kind, detail, body, id=where)


CHECK_PIP = r'''
import pathlib, re, sys, tomllib
root = pathlib.Path(sys.argv[1])
args = [a for a in sys.argv[2:] if a not in ("-q", "-e", "--quiet", "-U", "--upgrade")]
if not args or args[0] != "install":
    sys.exit(f"docs test: only `pip install` is checked, got {sys.argv[2:]}")
for target in args[1:]:
    match = re.fullmatch(r"([^\[\]]+)(?:\[([^\]]*)\])?", target)
    path = root / match.group(1)
    project = path / "pyproject.toml"
    if not project.is_file():
        sys.exit(f"docs test: pip install {target}: {path} holds no pyproject.toml")
    declared = tomllib.loads(project.read_text())["project"].get("optional-dependencies", {})
    for extra in filter(None, (match.group(2) or "").split(",")):
        if extra.strip() not in declared:
            sys.exit(f"docs test: pip install {target}: extra {extra!r} is not declared in {project}")
print(f"docs test: checked, not re-run: pip {' '.join(sys.argv[2:])}")
'''


def bash_with_pip_check(code: str, folder: Path) -> str:
    """`code` with `pip` and `python -m pip` checking their arguments instead of installing."""
    checker = folder / "_check_pip.py"
    checker.write_text(CHECK_PIP, encoding="utf-8")
    prelude = (
        f'pip() {{ command python "{checker}" "{ROOT}" "$@"; }}\n'
        f'python() {{ if [ "${{1-}}" = "-m" ] && [ "${{2-}}" = "pip" ]; then shift 2; pip "$@"; '
        'else command python "$@"; fi; }\n'
    )
    return prelude + code


def reduce_analyses(code: str, args: str) -> str:
    """Every `sensitiv analyze ...` of `code` with `args` appended (before a comment)."""
    reduced, count = ANALYZE.subn(lambda m: f"{m.group(1)} {args}{m.group(2)}", code)
    assert count, f"`reduced` asks for a `sensitiv analyze` command, none found in:\n{code}"
    return reduced


def test_page_blocks_are_found():
    pages = {where.rsplit(":", 1)[0] for where, *_ in BLOCKS}
    assert {"README.md", "docs/index.md", "docs/concepts.md", "docs/migrating.md", "docs/gallery.md",
            "examples/softspheres/README.md"} <= pages, pages
    kinds = {kind for _, _, kind, _, _ in BLOCKS}
    assert {"run", "slow", "reduced", "skip", "given"} <= kinds, kinds
    for where, _, kind, detail, _ in BLOCKS:
        assert kind not in ("skip", "reduced", "given") or detail.strip(), f"{where}: `{kind}` needs a reason or arguments"
        assert kind != "given" or detail.strip() in GIVEN, f"{where}: no recipe for {detail!r} (known: {sorted(GIVEN)})"


def test_reduce_analyses():
    code = "pip install -e . && sensitiv analyze a.yaml -o a.nc --force\nsensitiv analyze b.yaml  # note\n"
    assert reduce_analyses(code, "--set x=1") == (
        "pip install -e . && sensitiv analyze a.yaml -o a.nc --force --set x=1\n"
        "sensitiv analyze b.yaml --set x=1  # note\n")


def test_readme_test_command_is_ci():
    """The README's test command is what CI runs (`.ci/run`), so running the one runs the other."""
    readme = [body for where, lang, *_, body in BLOCKS if where.startswith("README.md") and "pytest" in body]
    assert readme and readme[0].strip() in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


#: Results that `given` blocks find in their folder: the command that makes each one.
GIVEN = {
    "softspheres.nc": ["analyze", str(ROOT / "examples" / "softspheres" / "config.yaml"), "-o", "{path}", "-q",
                       "--set", "structure.generator.n_atoms=16"],
}


@pytest.fixture(scope="session")
def given_results(tmp_path_factory):
    made = {}

    def make(name: str) -> Path:
        if name not in made:
            path = tmp_path_factory.mktemp("given") / name
            argv = [a.replace("{path}", str(path)) for a in GIVEN[name]]
            proc = subprocess.run([sys.executable, "-m", "sensitiv.cli", *argv], env=run_env(),
                                  capture_output=True, text=True, timeout=900)
            assert proc.returncode == 0, f"sensitiv {' '.join(argv)}:\n{proc.stderr[-4000:]}"
            made[name] = path
        return made[name]

    return make


@pytest.mark.parametrize("where,lang,kind,detail,code", list(_cases()))
def test_docs_block(where, lang, kind, detail, code, tmp_path, request):
    if kind == "skip":
        pytest.skip(detail)
    if kind == "given":
        name = detail.strip()
        shutil.copy(request.getfixturevalue("given_results")(name), tmp_path / name)
    shutil.copytree(ROOT / "examples", tmp_path / "examples",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build"))
    if lang == "bash":
        if kind == "reduced":
            code = reduce_analyses(code, detail)
        code = bash_with_pip_check(code, tmp_path)
    slow = request.node.get_closest_marker("slow") is not None
    run_step(lang, code, where, tmp_path, 0, SLOW_TIMEOUT if slow else TIMEOUT)


def _sessions():
    """One case per page with python blocks to run: (page, [(where, kind, detail, body)])."""
    pages: dict[str, list] = {}
    for where, lang, kind, detail, body in BLOCKS:
        if lang == "python" and kind != "skip":
            pages.setdefault(where.rsplit(":", 1)[0], []).append((where, kind, detail, body))
    for page, blocks in pages.items():
        slow = any(kind == "slow" for _, kind, _, _ in blocks)
        yield pytest.param(page, blocks, id=page, marks=[pytest.mark.slow] if slow else [])


#: Runs a page's python blocks in order in one namespace; each block compiled with its
#: page and line as file name (blank lines in front keep the page's line numbers).
SESSION = r"""
import json, sys
namespace = {"__name__": "__main__"}
for where, line, body in json.load(open(sys.argv[1], encoding="utf-8")):
    exec(compile("\n" * line + body, where, "exec"), namespace)
"""


def test_session_keeps_names_and_lines(tmp_path):
    blocks = [("page.md:3", "run", "", "x = 41\n"), ("page.md:9", "run", "", "x += 1\nassert x == 41, x\n")]
    with pytest.raises(AssertionError, match=r'File "page.md", line 11'):
        run_python_session(blocks, tmp_path)


def run_python_session(blocks, cwd: Path) -> None:
    payload = [(where.rsplit(":", 1)[0], int(where.rsplit(":", 1)[1]), body) for where, _, _, body in blocks]
    (cwd / "_docs_session.json").write_text(json.dumps(payload), encoding="utf-8")
    slow = any(kind == "slow" for _, kind, _, _ in blocks)
    run_step("python", SESSION.replace("sys.argv[1]", repr(str(cwd / "_docs_session.json"))),
             blocks[0][0].rsplit(":", 1)[0], cwd, 0, SLOW_TIMEOUT if slow else TIMEOUT)


@pytest.mark.parametrize("page,blocks", list(_sessions()))
def test_docs_python_page(page, blocks, tmp_path, request):
    for _, kind, detail, _ in blocks:
        if kind == "given":
            name = detail.strip()
            shutil.copy(request.getfixturevalue("given_results")(name), tmp_path / name)
    shutil.copytree(ROOT / "examples", tmp_path / "examples",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build"))
    run_python_session(blocks, tmp_path)
