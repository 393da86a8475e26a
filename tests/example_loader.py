"""Import an example's `run.py` as a module, for the tests of `examples/<name>/`."""

import importlib.util
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def load_example(name):
    """The module `examples/<name>/run.py` (examples are scripts, not an installed package)."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", ROOT / "examples" / name / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
