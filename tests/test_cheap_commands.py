"""Host-only commands import neither jax, jax-md, ASE nor the numerical core (issue 14.4).

`sensitiv plugins`, `validate`, `schema`, `inspect`, `--help` and every refusal need the
plugin host and the config schema only. Each case runs the command in a fresh interpreter
(the suite's own process has imported jax long ago) and lists the heavy modules it loaded.
Wall times are measured in benchmarks, never asserted here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
SOFTSPHERES = str(ROOT / "examples" / "softspheres" / "config.yaml")

#: Top-level packages a host-only command must not import, and core modules of sensitiv.
HEAVY_PACKAGES = ("jax", "jaxlib", "jax_md", "ase", "matplotlib", "dask")
CORE_MODULES = ("sensitiv._implicit", "sensitiv._linear_solve", "sensitiv.engine",
                "sensitiv.optimality", "sensitiv.solvers", "sensitiv.projections")

_PROBE = """
import json, sys
from sensitiv.cli import main
code = int(main(sys.argv[2:]))
heavy = sorted(m for m in sys.modules
               if m.split(".")[0] in {heavy} or any(m == c or m.startswith(c + ".") for c in {core}))
with open(sys.argv[1], "w") as handle:
    json.dump({{"code": code, "heavy": heavy}}, handle)
""".format(heavy=repr(HEAVY_PACKAGES), core=repr(CORE_MODULES))


def run_probe(tmp_path: Path, *argv: str) -> dict:
    report = tmp_path / "probe.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENSITIV_")}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(report), *argv],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert report.exists(), done.stderr[-2000:]
    return json.loads(report.read_text()) | {"stderr": done.stderr}


def tiny_result(path: Path) -> None:
    """A minimal file `inspect` accepts (written with xarray, no analysis)."""
    import xarray as xr

    ds = xr.Dataset(
        {
            "dx_dtheta": (("atom", "spatial", "parameter"), np.ones((2, 2, 1))),
            "parameter_value": (("parameter",), np.array([1.0])),
            "parameter_units": (("parameter",), np.array(["1"], dtype=object)),
            "verdict": ((), "minimum"),
        },
        coords={"spatial": ["x", "y"], "parameter": ["sigma"]},
        attrs={"title": "tiny", "source": "test"},
    )
    ds.to_netcdf(path)


@pytest.mark.parametrize(
    "argv, code",
    [
        (["validate", SOFTSPHERES], 0),
        (["validate", SOFTSPHERES, "--set", "model.name=soft_spher"], 2),
        (["plugins"], 0),
        (["plugins", "--json"], 0),
        (["schema"], 0),
        (["--help"], 0),
        (["analyze", "--help"], 0),
        (["analyze", SOFTSPHERES, "--dry-run", "-o", "dry.nc"], 0),
        (["analyze", SOFTSPHERES, "-o", "exists.nc"], 2),  # refused: output exists
        (["analyze", SOFTSPHERES, "--set", "jacobian.strategy=denseish"], 2),  # refused: config
        (["inspect", "tiny.nc"], 0),
        (["inspect", "missing.nc"], 2),
    ],
    ids=lambda value: " ".join(value).replace(SOFTSPHERES, "softspheres.yaml") if isinstance(value, list) else None,
)
def test_host_only_commands_import_no_numerical_code(tmp_path, argv, code):
    (tmp_path / "exists.nc").write_bytes(b"keep me")
    tiny_result(tmp_path / "tiny.nc")
    probe = run_probe(tmp_path, *argv)
    assert probe["code"] == code, probe["stderr"][-2000:]
    heavy = probe["heavy"]
    if argv[0] == "inspect":
        # xarray itself imports dask on opening any file when dask is installed
        # (xarray.compat.dask_array_ops; the test extra installs dask[distributed])
        heavy = [m for m in heavy if m.split(".")[0] != "dask"]
    assert heavy == [], f"`sensitiv {' '.join(argv)}` imported {heavy[:10]}"
    assert (tmp_path / "exists.nc").read_bytes() == b"keep me"


def test_import_sensitiv_is_lazy_and_keeps_its_names(tmp_path):
    code = (
        "import sys, json, sensitiv\n"
        "lazy = 'jax' not in sys.modules\n"
        "names = sorted(n for n in sensitiv.__all__ if n != '__version__')\n"
        "resolved = all(getattr(sensitiv, n) is not None for n in names)\n"
        "print(json.dumps({'lazy': lazy, 'jax_after_use': 'jax' in sys.modules, 'resolved': resolved,"
        " 'dir': sorted(set(names) - set(dir(sensitiv)))}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out == {"lazy": True, "jax_after_use": True, "resolved": True, "dir": []}


def test_unknown_face_attribute_is_an_attribute_error():
    import sensitiv

    with pytest.raises(AttributeError, match="no attribute 'custom_rot'"):
        sensitiv.custom_rot  # noqa: B018


def test_jaxmd_plugin_declares_every_implemented_model():
    # The registration module lists models from `_declarations`; the implementation from
    # `_energies`. A model added to one and not the other would be missing or unlisted.
    import sensitiv_jaxmd
    from sensitiv_jaxmd import _declarations, plugin

    records = {r.name: r for r in plugin.sensitiv_energy_models()}
    assert set(records) == set(sensitiv_jaxmd.MODELS) == set(_declarations.MODELS)
    for name, model in sensitiv_jaxmd.MODELS.items():
        eager = model.record()
        assert (eager.parameters, eager.options_schema, eager.description) == (
            records[name].parameters, records[name].options_schema, records[name].description)
    solvers = {r.name: r for r in plugin.sensitiv_equilibrium_solvers()}
    assert solvers["fire"].options_schema == sensitiv_jaxmd.FIRE.options_schema
    assert solvers["gradient_descent"].description == sensitiv_jaxmd.GRADIENT_DESCENT.description
