"""docs/config.md and plugins/jaxmd/README.md list every energy model the registry has
(`sensitiv plugins`), each with its parameters and cutoff convention, and every model that
reads a LAMMPS potential file with its file format: a model added to the plugin without a
row fails here, as does a row naming a model or a parameter that is gone."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sensitiv.plugins import get_registry

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "docs" / "config.md", ROOT / "plugins" / "jaxmd" / "README.md"]
ROW = re.compile(r"^\|\s*`(?P<name>[a-z_]+)`\s*\|(?P<rest>.*)\|\s*$")
#: Parameters a model declares that are not read from its documented θ list: the cell's
#: strain (every periodic model), and file fields held fixed (named as such in the row).
NOT_LISTED = {"strain"}


def _tables(text: str) -> list[dict[str, list[str]]]:
    """Markdown tables whose header starts with `model` or `name`: {model: cells after the name}."""
    tables, current = [], None
    for line in text.splitlines():
        if line.startswith("|") and re.match(r"^\|\s*(model|name)\s*\|", line):
            current = {"header": [c.strip() for c in line.strip("|").split("|")]}
            tables.append(current)
        elif current is not None and (m := ROW.match(line)):
            current[m["name"]] = [c.strip() for c in m["rest"].split("|")]
        elif not line.startswith("|"):
            current = None
    return tables


def _jaxmd_models():
    return dict(get_registry().energy_models)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_model_listed_with_parameters_and_cutoff_convention(page):
    models = _jaxmd_models()
    tables = [t for t in _tables(page.read_text()) if "cutoff convention" in t["header"]]
    assert len(tables) == 1, f"{page}: one model table with a 'cutoff convention' column"
    table = tables[0]
    listed = set(table) - {"header"}
    assert listed == set(models), f"{page}: listed {sorted(listed)}, registered {sorted(models)}"
    for name, model in models.items():
        params_cell, cutoff_cell = table[name][0], table[name][-1]
        assert cutoff_cell, f"{page}: {name} has no cutoff convention"
        same = re.match(r"as `([a-z_]+)`", params_cell)
        if same:  # "as `eam`": that row's parameters, which must be the same set
            assert {p.name for p in models[same[1]].parameters} == {p.name for p in model.parameters}
            params_cell = table[same[1]][0]
        for p in model.parameters:
            if p.name in NOT_LISTED:
                continue
            fixed = re.search(rf"`{re.escape(p.name)}` fixed", params_cell)
            assert fixed or re.search(rf"(?<![\w]){re.escape(p.name)}(?![\w])", params_cell), \
                f"{page}: parameter {p.name!r} of {name} is not in its row"


def test_every_potential_file_model_has_its_file_format():
    models = {name for name, m in _jaxmd_models().items()
              if "potential_file" in (m.options_schema.get("properties") or {})}
    tables = [t for t in _tables((ROOT / "docs" / "config.md").read_text()) if "file format" in t["header"]]
    assert len(tables) == 1
    assert set(tables[0]) - {"header"} == models
    readme = (ROOT / "plugins" / "jaxmd" / "README.md").read_text()
    section = readme[readme.index("### LAMMPS potential files"):]
    for name in models:
        assert f"`{name}`" in section.split("\n\n")[1], f"README's potential-file section lacks {name}"
