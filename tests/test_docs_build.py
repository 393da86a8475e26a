"""The documentation site builds in strict mode: a broken link, a page missing from the
nav, an unresolved API reference or any other MkDocs warning fails this test.

The build runs `mkdocs build --strict` in a subprocess, with HTTP(S) proxies pointing at
a closed local port, so a build step that reached for the network would fail here too.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
DIRECTIVE = re.compile(r"^:::\s+([\w.]+)\s*$", re.M)


def load_hooks():
    spec = importlib.util.spec_from_file_location("sensitiv_docs_hooks", DOCS / "_hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_site(site: Path) -> str:
    """`mkdocs build --strict` into `site`, offline; returns the build log."""
    env = dict(os.environ)
    env.update(
        NO_MKDOCS_2_WARNING="1",  # mkdocs-material's banner about its successor
        HTTP_PROXY="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9",
        http_proxy="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9",
        NO_PROXY="", no_proxy="",
    )
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--clean",
         "--config-file", str(ROOT / "mkdocs.yml"), "--site-dir", str(site)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    log = proc.stdout + proc.stderr
    if proc.returncode != 0 and "No module named mkdocs" in log:
        pytest.fail("mkdocs is not installed: install the test extra, pip install -e '.[test]'")
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{log[-6000:]}"
    return log


def test_docs_build_strict(tmp_path):
    # One test (not several sharing a fixture): under pytest-xdist a module fixture
    # would build the site once per worker.
    site = tmp_path / "site"
    log = build_site(site)

    warnings = [line for line in log.splitlines() if line.startswith(("WARNING", "ERROR"))]
    assert not warnings, "\n".join(warnings)

    missing = []
    for page in sorted((DOCS / "api").glob("*.md")):
        html_path = site / "api" / ("" if page.stem == "index" else page.stem) / "index.html"
        html = html_path.read_text(encoding="utf-8")
        for path in DIRECTIVE.findall(page.read_text(encoding="utf-8")):
            # A module rendered without its own heading shows its members' ids instead.
            if f'id="{path}"' not in html and f'id="{path}.' not in html:
                missing.append(f"{page.name}: {path}")
    assert not missing, "API reference entries that rendered nothing: " + ", ".join(missing)

    html = (site / "config-reference" / "index.html").read_text(encoding="utf-8")
    assert 'id="config-jacobian"' in html and 'id="config-structure-generator"' in html
    assert "memory_budget" in html
    assert not (site / "_hooks.py").exists()


# -- the config reference renderer on its own ---------------------------------------------


def schema_keys(node, defs, path=""):
    """Every property path of a schema, following local $refs and conditional branches."""
    if not isinstance(node, dict):
        return
    if "$ref" in node:
        yield from schema_keys(defs[node["$ref"].split("/")[-1]], defs, path)
    for key, sub in node.get("properties", {}).items():
        if sub is True:
            continue
        yield f"{path}.{key}" if path else key
        yield from schema_keys(sub, defs, f"{path}.{key}" if path else key)
    for branch in node.get("allOf", []):
        yield from schema_keys(branch.get("then", {}), defs, path)


def test_config_reference_documents_every_key():
    schema = json.loads((ROOT / "schemas" / "config.schema.json").read_text(encoding="utf-8"))
    page = load_hooks().render_config_reference(schema)
    rows = set(re.findall(r"^\| `([^`]+)` \|", page, re.M))
    keys = set(schema_keys(schema, schema["$defs"]))
    assert len(keys) > 30, keys  # the walk found the schema's content
    missing = sorted(k for k in keys if k.rsplit(".", 1)[-1] not in rows)
    assert not missing, f"keys without a row in the config reference: {missing}"
    # One section per object with its own keys, with the anchor other pages link to.
    for section in ("structure", "structure.generator", "model", "jacobian", "ensemble",
                    "ensemble.parameter_samples", "output"):
        anchor = "config-" + section.replace(".", "-").replace("_", "-")
        assert f"`{section}` {{#{anchor}}}" in page, section


def test_config_reference_table_cells_never_split():
    schema = json.loads((ROOT / "schemas" / "config.schema.json").read_text(encoding="utf-8"))
    page = load_hooks().render_config_reference(schema)
    for line in page.splitlines():
        if line.startswith("| `"):
            # key | type | default | description: exactly 5 unescaped pipes
            assert line.count("|") == 5, line


def test_gallery_shows_every_example_figure():
    # The gallery's images are served from examples/<name>/output/ by docs/_hooks.py.
    root = ROOT
    gallery = (DOCS / "gallery.md").read_text(encoding="utf-8")
    shown = set(re.findall(r"\]\(gallery/([\w-]+/[\w.-]+\.png)\)", gallery))
    figures = {f"{p.parent.parent.name}/{p.name}" for p in (root / "examples").glob("*/output/*.png")}
    assert shown <= figures, f"gallery shows figures no example writes: {sorted(shown - figures)}"
    examples_with_figures = {f.split("/")[0] for f in figures}
    assert examples_with_figures <= {s.split("/")[0] for s in shown}, "an example's figure is missing from the gallery"
