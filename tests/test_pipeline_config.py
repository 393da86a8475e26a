"""Config loading and validation: every error with file:line:col, key path and suggestion."""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib

import jsonschema
import pytest

from sensitiv.errors import ConfigError
from sensitiv.pipeline import config
from sensitiv.plugins import get_registry

ROOT = pathlib.Path(__file__).resolve().parents[1]

GOOD = """\
title: test
structure:
  generator:
    name: bidisperse_packing
    n_atoms: 16
model:
  name: soft_sphere
  parameters:
    sigma: [[1.0, 1.2], [1.2, 1.4]]
  differentiate: ["sigma[0,0]", alpha]
solver:
  name: fire
  options: {ftol: 1.0e-9}
observables: [energy]
jacobian: {memory_budget: 1 GiB}
output: {path: out.nc}
"""


def _write(tmp_path, text, name="config.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _issues(tmp_path, text):
    with pytest.raises(ConfigError) as err:
        config.load(_write(tmp_path, text))
    return err.value.issues, str(err.value)


def test_packaged_schema_is_identical_to_schemas_folder():
    packaged = (ROOT / "sensitiv" / "config.schema.json").read_text()
    source = (ROOT / "schemas" / "config.schema.json").read_text()
    assert packaged == source
    schema = json.loads(source)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema == config.base_schema()


def test_full_schema_has_plugin_parts():
    schema = config.full_schema(get_registry())
    jsonschema.Draft202012Validator.check_schema(schema)
    assert "soft_sphere" in schema["$defs"]["model"]["properties"]["name"]["enum"]
    assert "fire" in schema["$defs"]["solver"]["properties"]["name"]["enum"]
    assert "extxyz" in schema["$defs"]["structure"]["properties"]["format"]["enum"]
    cases = {c["if"]["properties"]["name"]["const"]: c["then"] for c in schema["$defs"]["model"]["allOf"]}
    assert "sigma" in cases["soft_sphere"]["properties"]["parameters"]["properties"]


def test_good_config_resolves_defaults_and_paths(tmp_path):
    cfg = config.load(_write(tmp_path, GOOD))
    assert cfg.output == config.OutputSettings(
        path=str(tmp_path / "out.nc"), compression=4, overwrite=False, log_sensitivity=True)
    assert cfg.structure.generator["packing_fraction"] == 0.9  # generator default
    assert cfg.structure.files == ()
    assert cfg.jacobian.precision == "float64" and cfg.jacobian.memory_budget == 2**30
    assert cfg.jacobian.tol is None and cfg.jacobian.strategy == "auto"
    assert cfg.condition.name == "stationary"
    assert cfg.observables == (config.ObservableSettings("energy", "energy"),)
    assert cfg.solver.name == "fire" and cfg.solver.options["ftol"] == 1e-9 and cfg.solver.relaxes
    assert cfg.model.differentiate == ("sigma[0,0]", "alpha")
    assert cfg.ensemble == config.EnsembleSettings(scheduler="serial")
    assert cfg.title == "test"
    assert cfg.locate("model", "name") == f"{tmp_path / 'config.yaml'}:7:9"
    assert "soft_sphere" in cfg.to_yaml()
    assert cfg.to_dict()["output"]["path"] == cfg.output.path
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.model.name = "lennard_jones"


def test_solver_default_is_the_schemas():
    # The pipeline once fell back to "none" while the schema said "fire": one source now.
    text = "structure: {generator: {name: fcc, lattice_constant: 1.5}}\nmodel: {name: soft_sphere}\n"
    cfg = config.load(text=text)
    assert cfg.solver.name == config.full_schema(get_registry())["$defs"]["solver"]["properties"]["name"]["default"]
    assert cfg.solver.name == "fire"


def _schema_properties(schema, section):
    node = schema["$defs"][section]
    return node.get("properties", {})


@pytest.mark.parametrize("section, cls", [
    ("jacobian", config.JacobianSettings),
    ("output", config.OutputSettings),
    ("solver", config.SolverSettings),
    ("condition", config.ConditionSettings),
    ("model", config.ModelSettings),
    ("ensemble", config.EnsembleSettings),
])
def test_settings_defaults_come_from_the_schema_only(section, cls):
    # A field without a dataclass default must have a schema default (or be required); a
    # field defaulting to None must have none in the schema: no default is written twice.
    schema = config.full_schema(get_registry())
    properties = _schema_properties(schema, section)
    required = set(schema["$defs"][section].get("required", ()))
    for field in dataclasses.fields(cls):
        prop = properties.get(field.name, {})
        if (section, field.name) == ("output", "path"):
            continue  # derived from the config's own name when absent (config.load)
        if field.default is dataclasses.MISSING:
            assert "default" in prop or field.name in required, (section, field.name)
        else:
            assert field.default is None and "default" not in prop, (section, field.name)
    assert {f.name for f in dataclasses.fields(cls)} == set(properties), section


def test_structure_reader_is_decided_once_and_recorded(tmp_path):
    (tmp_path / "a.xyz").write_text("1\nLattice=\"2 0 0 0 2 0 0 0 2\" pbc=\"T T T\"\nAr 0 0 0\n")
    cfg = config.load(_write(tmp_path, "structure: {file: a.xyz}\nmodel: {name: lennard_jones}\n"))
    assert cfg.structure.files == (config.StructureFile(str(tmp_path / "a.xyz"), "extxyz"),)
    assert cfg.to_dict()["structure"]["format"] == "extxyz"  # what --dry-run and the output show


def test_every_error_is_reported_with_location_and_suggestion(tmp_path):
    text = """\
structure:
  generator:
    name: bidisperse_packing
    n_atom: 16
model:
  nme: soft_sphere
  name: sof_sphere
solver:
  name: fire
  options: {ftol: -1}
jacobian:
  precision: float16
outptu: {}
"""
    issues, message = _issues(tmp_path, text)
    lines = [str(i) for i in issues]
    path = str(tmp_path / "config.yaml")
    expected = [
        (f"{path}:4:5", "$.structure.generator.n_atom", "unknown key 'n_atom'", "n_atoms"),
        (f"{path}:6:3", "$.model.nme", "unknown key 'nme'", "name"),
        (f"{path}:7:9", "$.model.name", "unknown name 'sof_sphere'", "soft_sphere"),
        (f"{path}:10:19", "$.solver.options.ftol", "out of range", ""),
        (f"{path}:12:14", "$.jacobian.precision", "unknown value 'float16'", "float64"),
        (f"{path}:13:1", "$.outptu", "unknown key 'outptu'", "output"),
    ]
    assert len(issues) == len(expected), lines
    for issue, (where, key, what, hint) in zip(issues, expected):
        assert issue.location == where, lines
        assert issue.path == key
        assert what in issue.message
        assert issue.suggestion == hint
    assert message.count("\n") == len(expected) - 1
    assert "(did you mean 'n_atoms'?)" in lines[0]


@pytest.mark.parametrize(
    "snippet, where, fragment",
    [
        ("model: {name: soft_sphere, parameters: {sigmaa: 1.0}}", "$.model.parameters.sigmaa",
         "the model has no parameter 'sigmaa'"),
        ("model: {name: soft_sphere, differentiate: [sigam]}", "$.model.differentiate[0]",
         "model 'soft_sphere' has no parameter 'sigam'"),
        ("model: {name: soft_sphere, differentiate: ['sigma[0]']}", "$.model.differentiate[0]",
         "has 2 dimension(s)"),
        ("model: {name: soft_sphere, differentiate: ['alpha[0]']}", "$.model.differentiate[0]",
         "has 0 dimension(s)"),
        ("model: {name: soft_sphere}\nsolver: {name: fier}", "$.solver.name", "unknown name 'fier'"),
        ("model: {name: soft_sphere}\ncondition: {name: stationry}", "$.condition.name",
         "unknown name 'stationry'"),
        ("model: {name: soft_sphere}\noutput: {compression: 12}", "$.output.compression", "out of range"),
        ("model: {name: soft_sphere}\noutput: {overwrite: 'yes please'}", "$.output.overwrite",
         "expected boolean"),
        ("model: {name: soft_sphere}\njacobian: {memory_budget: lots}", "$.jacobian.memory_budget",
         "invalid value 'lots'"),
    ],
)
def test_single_errors(tmp_path, snippet, where, fragment):
    text = "structure: {generator: {name: fcc, lattice_constant: 1.5}}\n" + snippet + "\n"
    issues, _ = _issues(tmp_path, text)
    assert any(i.path == where and fragment in i.message for i in issues), [str(i) for i in issues]


def test_structure_section_errors(tmp_path):
    issues, _ = _issues(tmp_path, "structure: {}\nmodel: {name: soft_sphere}\n")
    assert "give one of 'file', 'files' or 'generator'" in issues[0].message
    issues, _ = _issues(
        tmp_path,
        "structure: {file: a.xyz, generator: {name: fcc, lattice_constant: 1}}\nmodel: {name: soft_sphere}\n",
    )
    assert any("only one of" in i.message for i in issues)
    issues, _ = _issues(tmp_path, "structure: {file: missing.xyz}\nmodel: {name: soft_sphere}\n")
    assert issues[0].path == "$.structure.file" and "not found" in issues[0].message
    (tmp_path / "thing.weird").write_text("x")
    issues, _ = _issues(tmp_path, "structure: {file: thing.weird}\nmodel: {name: soft_sphere}\n")
    assert "cannot tell the format" in issues[0].message
    issues, _ = _issues(tmp_path, "structure: {file: thing.weird, format: extxzy}\nmodel: {name: soft_sphere}\n")
    assert issues[0].suggestion == "extxyz"
    issues, _ = _issues(tmp_path, "structure: {generator: {name: fcc, lattice_constant: 1}, frames: 'a:b'}\nmodel: {name: soft_sphere}\n")
    assert issues[0].path == "$.structure.frames"


def test_malformed_yaml_and_duplicates(tmp_path):
    with pytest.raises(ConfigError) as err:
        config.load(_write(tmp_path, "model: {name: soft_sphere\nstructure: [\n"))
    text = str(err.value)
    assert text.startswith(str(tmp_path / "config.yaml") + ":") and "malformed YAML" in text
    assert "\n" not in text
    issues, _ = _issues(tmp_path, "model: {name: soft_sphere}\nmodel: {name: lennard_jones}\nstructure: {generator: {name: fcc, lattice_constant: 1}}\n")
    assert "duplicate key 'model'" in issues[0].message and issues[0].location.endswith(":2:1")
    issues, _ = _issues(tmp_path, "- just\n- a list\n")
    assert "must be a mapping" in issues[0].message
    with pytest.raises(ConfigError, match="config file not found"):
        config.load(str(tmp_path / "nope.yaml"))


def test_overrides(tmp_path):
    path = _write(tmp_path, GOOD)
    cfg = config.load(path, overrides=["structure.generator.n_atoms=8", "jacobian.precision=float32"])
    assert cfg.structure.generator["n_atoms"] == 8
    assert cfg.jacobian.precision == "float32"
    with pytest.raises(ConfigError) as err:
        config.load(path, overrides=["structure.generator.n_atoms=-3"])
    assert err.value.issues[0].location == "--set"
    with pytest.raises(ConfigError, match="KEY.PATH=VALUE"):
        config.load(path, overrides=["nothing"])


def test_parse_helpers():
    assert config.parse_memory("2 GiB") == 2 * 2**30
    assert config.parse_memory("500MB") == 500 * 10**6
    assert config.parse_memory(1024) == 1024
    assert config.parse_parameter_label("sigma[0,1]") == ("sigma", (0, 1))
    assert config.parse_parameter_label("alpha") == ("alpha", None)
    with pytest.raises(ConfigError):
        config.parse_parameter_label("sigma[")


def test_example_configs_are_valid():
    for example in ("softspheres", "silicon_sw", "lj_crystal"):
        path = ROOT / "examples" / example / "config.yaml"
        if path.exists():
            config.load(str(path))


def test_yaml_1_2_numbers_everywhere(tmp_path):
    """YAML 1.2: `1e-9` is a number in the file, in `--set` and in the stored config; the
    stored config reads back equal (also with a YAML 1.1 reader); `on` stays a string."""
    from sensitiv.pipeline._yaml import dump_yaml, parse_yaml_text

    text = GOOD.replace("{ftol: 1.0e-9}", "{ftol: 1e-9, max_steps: 1_000}")
    cfg = config.load(_write(tmp_path, text))
    assert cfg.solver.options["ftol"] == 1e-9 and cfg.solver.options["max_steps"] == 1000
    cfg = config.load(_write(tmp_path, GOOD), overrides=["solver.options.ftol=1e-9", "title=on"])
    assert cfg.solver.options["ftol"] == 1e-9 and isinstance(cfg.solver.options["ftol"], float)
    assert cfg.title == "on"
    stored = cfg.to_yaml()
    assert parse_yaml_text(stored, "stored")[0] == cfg.to_dict(relative=True)
    assert cfg.to_dict(relative=True)["output"]["path"] == "out.nc"  # no absolute path stored
    yaml11 = pytest.importorskip("yaml")
    assert yaml11.safe_load(stored) == cfg.to_dict(relative=True)
    assert yaml11.safe_load(dump_yaml({"a": 1e-12, "b": "no", "c": [1.5, 2]})) == {"a": 1e-12, "b": "no", "c": [1.5, 2]}
    # laid out as a user writes a config: one option per line, short lists inline
    assert "  options:\n    ftol: 1.0e-09\n" in stored
    assert dump_yaml({"s": {"m": [[1.0, 1.2], [1.2, 1.4]], "d": ["sigma"]}}) == (
        "s:\n  m:\n  - [1.0, 1.2]\n  - [1.2, 1.4]\n  d: [sigma]\n")


def test_yaml_marks_and_every_duplicate(tmp_path):
    text = GOOD + "title: again\noutput: {path: other.nc}\n"
    issues, _ = _issues(tmp_path, text)
    dups = [i for i in issues if "duplicate key" in i.message]
    assert [i.path for i in dups] == ["$.title", "$.output"]
    assert [i.location.rsplit(":", 2)[1:] for i in dups] == [["17", "1"], ["18", "1"]]
    issues, _ = _issues(tmp_path, GOOD.replace("ftol: 1.0e-9", "ftol: -1e-9"))
    assert issues[0].location.endswith(":13:19") and issues[0].path == "$.solver.options.ftol"
