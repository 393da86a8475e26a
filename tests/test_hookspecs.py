"""The hook specifications: typed, documented, tested and in docs/plugins.md (each one).

Like datasette's suite: adding a hook without a test and a documentation section fails
here. The hooks are found by introspection, never listed by hand in this file.
"""

from __future__ import annotations

import inspect
import re
import typing
from pathlib import Path

import pytest

import sensitiv.hookspecs as hookspecs
from sensitiv import records
from sensitiv.plugins import KINDS

ROOT = Path(__file__).resolve().parent.parent
PREFIX = hookspecs.PROJECT_NAME + "_"


def _hookspecs() -> dict[str, object]:
    marker = hookspecs.PROJECT_NAME + "_spec"
    return {
        name: fn
        for name, fn in vars(hookspecs).items()
        if name.startswith(PREFIX) and hasattr(fn, marker)
    }


HOOKS = sorted(_hookspecs())


def test_there_are_hooks_and_no_unmarked_lookalikes():
    assert len(HOOKS) >= 4
    lookalikes = {n for n, v in vars(hookspecs).items() if n.startswith(PREFIX) and callable(v)}
    assert lookalikes == set(HOOKS)
    assert set(HOOKS) <= set(hookspecs.__all__)


def test_the_host_handles_exactly_the_specified_hooks():
    assert sorted(k.hook for k in KINDS) == HOOKS


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_typed_and_returns_a_list_of_records(hook):
    fn = getattr(hookspecs, hook)
    hints = typing.get_type_hints(fn, vars(hookspecs))
    returned = hints["return"]
    assert typing.get_origin(returned) is list
    (record_type,) = typing.get_args(returned)
    assert record_type.__module__ == records.__name__ and record_type.__name__ in records.__all__
    # Every hook is collected from all plugins: none may stop at the first result.
    assert not getattr(fn, hookspecs.PROJECT_NAME + "_spec").get("firstresult")
    assert list(inspect.signature(fn).parameters) == []


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_docstring_has_arguments_returns_and_an_example(hook):
    doc = inspect.getdoc(getattr(hookspecs, hook))
    assert doc and "**Arguments:**" in doc and "**Returns:**" in doc and "**Example:**" in doc
    assert "@hookimpl" in doc and f"def {hook}(" in doc


def _docs_headings() -> set[str]:
    text = (ROOT / "docs" / "plugins.md").read_text()
    return {
        re.sub(r"[`()\s]", "", m.group(1))
        for m in re.finditer(r"^#{2,4}\s+(.+?)\s*$", text, flags=re.MULTILINE)
    }


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_a_section_in_docs_plugins_md(hook):
    assert hook in _docs_headings(), f"docs/plugins.md needs a heading '## {hook}'"


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_exercised_by_some_test(hook):
    this = Path(__file__).resolve()
    users = [
        path.name
        for path in sorted((ROOT / "tests").glob("test_*.py"))
        if path.resolve() != this and re.search(rf"\b{hook}\b", path.read_text())
    ]
    assert users, f"no test under tests/ mentions {hook}"
