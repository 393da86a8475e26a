"""Every public name is documented: a docstring with its arguments and an example, and an
entry in the API reference (`docs/api/*.md`).

Public names are those in `sensitiv.__all__` and in the `__all__` of the public modules
below. The API reference lists each of them with a `::: module.name` directive, which
mkdocstrings renders from the docstring; `tests/test_docs_build.py` checks that each
directive produced its section in the built site.
"""

from __future__ import annotations

import importlib
import inspect
import re
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
API_DIR = ROOT / "docs" / "api"

# Modules whose `__all__` is public API (`sensitiv` itself re-exports the core).
PUBLIC_MODULES = (
    "sensitiv",
    "sensitiv.optimality",
    "sensitiv.projections",
    "sensitiv.prox",
    "sensitiv.solvers",
    "sensitiv.uncertainty",
    "sensitiv.errors",
    "sensitiv.records",
    "sensitiv.hookspecs",
    "sensitiv.plugins",
)

ARGUMENTS = "**Arguments:**"
EXAMPLE = re.compile(r"\*\*Examples?:?\*\*|^\s*```", re.M)
DIRECTIVE = re.compile(r"^:::\s+([\w.]+)\s*$", re.M)


def public_names() -> list[tuple[str, str]]:
    """(module, name) for every public function, class and constant; modules are recursed into."""
    out = []
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            if name.startswith("__"):
                continue
            if isinstance(getattr(module, name), types.ModuleType):
                continue  # a public submodule: its own names are listed under its path
            out.append((module_name, name))
    return out


def own_docstring(obj) -> str | None:
    """The docstring written for `obj`, not one generated or inherited."""
    doc = obj.__doc__ if isinstance(obj, (type, types.FunctionType)) else getattr(obj, "__doc__", None)
    if not doc:
        return None
    if isinstance(obj, type):
        # dataclasses and NamedTuples without a docstring get "Name(field, ...)".
        if re.match(rf"{re.escape(obj.__name__)}\(", doc.strip()):
            return None
        if any(doc == getattr(base, "__doc__", None) for base in obj.__mro__[1:]):
            return None
    return inspect.cleandoc(doc)


def takes_arguments(obj) -> bool:
    """Whether a caller passes arguments: a function's or a constructor's parameters."""
    if isinstance(obj, type) and issubclass(obj, BaseException):
        return False  # the argument of an exception is its message
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return False
    return any(p.name not in ("self", "cls") for p in signature.parameters.values())


def documented_names() -> set[str]:
    """Every `::: path` directive of the API reference pages."""
    found = set()
    for page in sorted(API_DIR.glob("*.md")):
        found.update(DIRECTIVE.findall(page.read_text(encoding="utf-8")))
    return found


NAMES = public_names()


def is_routine_or_class(obj) -> bool:
    # Instances that happen to be callable (pluggy's `hookimpl` marker) are constants:
    # they are documented where they are defined, like any other constant.
    return inspect.isclass(obj) or inspect.isroutine(inspect.unwrap(obj)) or hasattr(obj, "__wrapped__")


CALLABLES = [(m, n) for m, n in NAMES if is_routine_or_class(getattr(importlib.import_module(m), n))]


def test_public_names_are_found():
    # Guards the parametrizations below against an import that silently lists nothing.
    modules = {m for m, _ in NAMES}
    assert modules == set(PUBLIC_MODULES), set(PUBLIC_MODULES) - modules
    assert ("sensitiv", "custom_root") in NAMES and ("sensitiv", "jacobian") in NAMES


# Docstrings that still lack a section, reported to their owners (the lead's list): each
# is an expected failure until its owner adds the section, then it is removed from here.
KNOWN_GAPS: dict[str, str] = {}  # public names allowed to lack a section: none


def _docstring_cases():
    for module_name, name in CALLABLES:
        path = f"{module_name}.{name}"
        marks = ()
        if path in KNOWN_GAPS:
            marks = pytest.mark.xfail(reason=f"reported, owner to add {KNOWN_GAPS[path]}", strict=False)
        yield pytest.param(module_name, name, id=path, marks=marks)


def test_known_gaps_are_public_names():
    # A stale entry (renamed or removed name) would hide nothing; keep the list honest.
    paths = {f"{m}.{n}" for m, n in CALLABLES}
    assert set(KNOWN_GAPS) <= paths, set(KNOWN_GAPS) - paths


@pytest.mark.parametrize("module_name,name", list(_docstring_cases()))
def test_docstring_has_arguments_and_example(module_name, name):
    obj = getattr(importlib.import_module(module_name), name)
    doc = own_docstring(obj)
    assert doc, f"{module_name}.{name} has no docstring"
    problems = []
    if takes_arguments(obj) and ARGUMENTS not in doc:
        problems.append(f"no {ARGUMENTS} section (it takes arguments)")
    if not EXAMPLE.search(doc):
        problems.append("no **Example:** (or fenced code block)")
    assert not problems, f"{module_name}.{name}: " + "; ".join(problems)


def test_every_public_name_is_in_the_api_reference():
    documented = documented_names()
    missing = [f"{m}.{n}" for m, n in NAMES if f"{m}.{n}" not in documented]
    assert not missing, (
        "public names missing from docs/api/*.md (add a `::: module.name` line): " + ", ".join(missing)
    )


def test_api_reference_lists_only_existing_names():
    # A directive for a name that was renamed or removed would fail the strict build too,
    # but this says which one without building.
    stale = []
    for path in sorted(documented_names()):
        module_name, _, name = path.rpartition(".")
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            module = None
        if module is None or not hasattr(module, name):
            try:
                importlib.import_module(path)  # a whole module documented on its own
            except ImportError:
                stale.append(path)
    assert not stale, "docs/api/*.md documents names that do not exist: " + ", ".join(stale)
