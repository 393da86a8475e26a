"""Configuration of `sensitiv analyze`: load YAML, validate every error, resolve it once into
typed, frozen settings.

`load` parses the YAML (remembering where each value sits), applies `--set` overrides,
validates against the schema with the installed plugins' parts (`_schema`), fills in the
schema's defaults — the schema is their only source — and resolves paths and the structure
reader. What comes out is a `Config` of frozen sections (`cfg.structure`, `cfg.model`,
`cfg.solver`, `cfg.condition`, `cfg.observables`, `cfg.jacobian`, `cfg.ensemble`,
`cfg.output`); every later stage reads their attributes and never calls back here.

**Example:**

```python
from sensitiv.pipeline import config
cfg = config.load("examples/softspheres/config.yaml")   # ConfigError listing every problem
cfg.model.name, cfg.solver.name, cfg.jacobian.memory_budget   # ('soft_sphere', 'fire', 2147483648)
```
"""

from __future__ import annotations

import copy
import dataclasses
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import jsonschema

from ..errors import ConfigError
from ..plugins import Registry, get_registry
from ._schema import SOLVER_NONE, ConfigIssue, _json_path, base_schema, full_schema, validate
from ._yaml import Marks, dump_yaml, load_yaml_with_marks, parse_scalar, parse_yaml_text
from .theta import parse_parameter_label
from .uncertainty import UncertaintySpec, parse_spec

__all__ = [
    "Config",
    "ConfigIssue",
    "StructureFile",
    "StructureSettings",
    "FixedAtoms",
    "Region",
    "CellSettings",
    "ModelSettings",
    "SolverSettings",
    "ConditionSettings",
    "ObservableSettings",
    "JacobianSettings",
    "ParameterSamples",
    "EnsembleSettings",
    "OutputSettings",
    "UncertaintySpec",
    "base_schema",
    "full_schema",
    "load",
    "load_data",
    "validate",
    "parse_override",
    "parse_memory",
    "parse_parameter_label",
    "SOLVER_NONE",
]


# -- the typed settings ------------------------------------------------------------------
#
# A field without a default here has a default in the schema (or is required by it); a
# field defaulting to `None` is optional and has none. `tests/test_pipeline_config.py`
# checks both against the schema, so no default is ever written twice.


@dataclasses.dataclass(frozen=True)
class StructureFile:
    """One structure file and the reader chosen for it, once, when the config was loaded.

    **Arguments:**

    - `path`: the absolute path.
    - `format`: the reader's name: `structure.format`, or the reader claiming the file's
      ending (`sensitiv.plugins.Registry.find_structure_reader`).
    """

    path: str
    format: str


@dataclasses.dataclass(frozen=True)
class Region:
    """`structure.fixed.region`: a LAMMPS-style region selecting atoms by position.

    **Arguments:**

    - `shape`: `"block"`, `"sphere"` or `"cylinder"`.
    - `axis`: the cylinder's axis (`"x"`, `"y"`, `"z"`).
    - `side`: `"in"` selects the atoms inside, `"out"` those outside.
    - `lo`, `hi`: a block's bounds per direction (`None` entries: unbounded).
    - `center`, `radius`: a sphere's or cylinder's.
    """

    shape: str
    axis: str
    side: str
    lo: tuple[float | None, ...] | None = None
    hi: tuple[float | None, ...] | None = None
    center: tuple[float, ...] | None = None
    radius: float | None = None


@dataclasses.dataclass(frozen=True)
class FixedAtoms:
    """`structure.fixed`: which atoms stay at their input positions (the selections add up).

    **Arguments:**

    - `from_file`: also fix the atoms the file marks fixed (ASE `FixAtoms`).
    - `indices`: 0-based atom indices; `ids`: 1-based LAMMPS atom ids.
    - `species`: species names.
    - `region`: a `Region`, or `None`.
    """

    from_file: bool
    indices: tuple[int, ...] | None = None
    ids: tuple[int, ...] | None = None
    species: tuple[str, ...] | None = None
    region: Region | None = None


@dataclasses.dataclass(frozen=True)
class CellSettings:
    """The `cell` section: a held or a relaxing periodic cell.

    **Arguments:**

    - `relax`: `"none"`, `"iso"`, `"aniso"` or `"tri"` (`sensitiv.constraints.relax_cell`).
    - `pressure`: the target hydrostatic pressure (energy / length³ of the model).
    - `stress`: instead, the target Cauchy stress in Voigt order (tension positive), or `None`.
    """

    relax: str
    pressure: float
    stress: tuple[float, ...] | None = None

    @property
    def relaxes(self) -> bool:
        """Whether the cell is an unknown of the equilibrium."""
        return self.relax != "none"


@dataclasses.dataclass(frozen=True)
class StructureSettings:
    """The `structure` section.

    **Arguments:**

    - `files`: the files to read, each with its reader (empty with a generator).
    - `generator`: the generator section (`name` and its options, defaults filled), or `None`.
    - `frames`: the frame selection (`"last"`, `"all"`, an index, a list, a slice string).
    - `options`: the reader's options.
    - `min_distance`: atoms closer than this are rejected as overlapping.
    - `fixed`: the atoms held fixed (`FixedAtoms`; the schema's defaults when not given).
    """

    files: tuple[StructureFile, ...]
    generator: Mapping[str, Any] | None
    frames: Any
    options: Mapping[str, Any]
    min_distance: float
    fixed: FixedAtoms


@dataclasses.dataclass(frozen=True)
class ModelSettings:
    """The `model` section.

    **Arguments:**

    - `name`: the energy model (a plugin's `EnergyModel.name`).
    - `parameters`: values overriding the model's defaults, as written (numbers, nested lists).
    - `differentiate`: `"all"`, or a tuple of parameter names and component labels.
    - `options`: the model's options.
    """

    name: str
    parameters: Mapping[str, Any]
    differentiate: str | tuple[str, ...]
    options: Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class SolverSettings:
    """The `solver` section.

    **Arguments:**

    - `name`: the equilibrium solver, or `"none"` (`SOLVER_NONE`) to take the structure as
      relaxed.
    - `options`: the solver's options.
    """

    name: str
    options: Mapping[str, Any]

    @property
    def relaxes(self) -> bool:
        """Whether a solver runs (the name is not `"none"`)."""
        return self.name != SOLVER_NONE


@dataclasses.dataclass(frozen=True)
class ConditionSettings:
    """The `condition` section.

    **Arguments:**

    - `name`: the optimality condition F(x, θ) = 0.
    - `options`: its options.
    """

    name: str
    options: Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class ObservableSettings:
    """One entry of `observables`.

    **Arguments:**

    - `name`: the observable (`energy`, `stress`, `elastic_constants`, or the model's own).
    - `label`: its variable name in the output (the name unless given).
    """

    name: str
    label: str


@dataclasses.dataclass(frozen=True)
class JacobianSettings:
    """The `jacobian` section: how dx*/dθ is computed.

    **Arguments:**

    - `strategy`: `"auto"`, `"dense"`, `"krylov"` or `"reverse"`.
    - `preconditioner`: `"auto"` or `"none"`.
    - `memory_budget`: bytes the computation may use (parsed from `"2 GiB"` and the like).
    - `precision`: `"float64"` or `"float32"`.
    - `lanczos_steps`: Lanczos steps of the Krylov strategy's spectrum estimate.
    - `parameter_derivatives`: `"auto"`, `"forward"` or `"reverse"`.
    - `use_interactions`: pass the model's interacting pairs as a sparsity hint.
    - `tol`, `maxiter`, `trust_rtol`: given values, or `None` for the engine's defaults.
    - `pad_atoms`: `"auto"`, `True` or `False`: pad atom counts to buckets with phantom
      atoms (`sensitiv.pipeline.ensemble.padding`) so that structures of different
      sizes share compiled programs; `"auto"` when a run's atom counts differ.
    """

    strategy: str
    preconditioner: str
    memory_budget: int
    precision: str
    lanczos_steps: int
    parameter_derivatives: str
    use_interactions: bool
    pad_atoms: bool | str
    tol: float | None = None
    maxiter: int | None = None
    trust_rtol: float | None = None


@dataclasses.dataclass(frozen=True)
class ParameterSamples:
    """`ensemble.parameter_samples`: `n` parameter values analyzed for every structure.

    **Arguments:**

    - `n`: the number of samples.
    - `seed`: the random seed of `bounds` draws.
    - `bounds`: name → `(low, high)`, uniform per component.
    - `values`: name → the `n` values.
    """

    n: int
    seed: int
    bounds: Mapping[str, tuple[float, float]]
    values: Mapping[str, Sequence[Any]]


@dataclasses.dataclass(frozen=True)
class EnsembleSettings:
    """The `ensemble` section.

    **Arguments:**

    - `scheduler`: `"serial"`, `"local"` or a Dask scheduler address.
    - `parameter_samples`: the samples, or `None`.
    - `workers`: worker processes of a local Dask cluster, or `None` (half the cores).
    """

    scheduler: str
    parameter_samples: ParameterSamples | None = None
    workers: int | None = None


@dataclasses.dataclass(frozen=True)
class OutputSettings:
    """The `output` section.

    **Arguments:**

    - `path`: the absolute output path.
    - `compression`: zlib level 0–9.
    - `overwrite`: replace an existing file.
    - `log_sensitivity`: also write θ·dx*/dθ.
    """

    path: str
    compression: int
    overwrite: bool
    log_sensitivity: bool


@dataclasses.dataclass(frozen=True)
class Config:
    """A validated configuration, resolved once into typed, frozen sections.

    **Arguments:**

    - `structure`, `model`, `solver`, `condition`, `cell`, `observables`, `jacobian`,
      `ensemble`, `output`: the sections (see their classes).
    - `uncertainty`: the `uncertainty` section (`UncertaintySpec`), or `None` without one.
    - `title`: the analysis title, or `None`.
    - `path`: the config file (`"<string>"` when parsed from text).
    - `marks`: where each value came from, for later error messages.
    - `raw`: the configuration as written, before defaults.
    - `resolved`: the resolved configuration as plain data, paths absolute (`to_yaml`
      writes it with paths relative to `base_dir`).
    - `base_dir`: the folder relative paths refer to: the config file's, or the working
      folder for a config given as text.

    **Example:**

    ```python
    cfg = config.load("config.yaml")
    cfg.structure.files[0].format, cfg.observables[0].label
    ```
    """

    structure: StructureSettings
    model: ModelSettings
    solver: SolverSettings
    condition: ConditionSettings
    cell: CellSettings
    observables: tuple[ObservableSettings, ...]
    jacobian: JacobianSettings
    ensemble: EnsembleSettings
    output: OutputSettings
    uncertainty: UncertaintySpec | None
    title: str | None
    path: str
    marks: Marks
    raw: Mapping[str, Any]
    resolved: Mapping[str, Any]
    base_dir: str = ""

    @property
    def input_files(self) -> list[str]:
        """The files a run reads — the config and the structure files — which its output
        never replaces, not even with `--force`."""
        return [p for p in [self.path, *(f.path for f in self.structure.files)] if p != "<string>"]

    def locate(self, *keys) -> str:
        """`file:line:col` of the value at `keys`, e.g. `cfg.locate("structure", "file")`."""
        return self.marks.locate(tuple(keys))

    def with_output(self, path: str | None = None, overwrite: bool | None = None) -> "Config":
        """This config with `output.path` (made absolute) and/or `output.overwrite` replaced,
        as `-o` and `--force` do: the resolved config (`to_yaml`, the dry run, the stored
        copy) then names the file actually written."""
        changes: dict[str, Any] = {}
        if path is not None:
            changes["path"] = os.path.abspath(os.fspath(path))
        if overwrite is not None:
            changes["overwrite"] = bool(overwrite)
        if not changes:
            return self
        resolved = copy.deepcopy(dict(self.resolved))
        resolved["output"] = {**resolved["output"], **changes}
        return dataclasses.replace(self, output=dataclasses.replace(self.output, **changes), resolved=resolved)

    def to_dict(self, relative: bool = False) -> dict:
        """The resolved configuration as plain dicts and lists (a copy); with `relative`,
        its structure files relative to `base_dir` and the output as its file name (the
        result sits beside it; a rerun of the stored config writes beside the config)."""
        data = copy.deepcopy(dict(self.resolved))
        if relative and self.base_dir:
            def rel(path: str) -> str:
                return os.path.relpath(path, self.base_dir) if os.path.isabs(path) else path

            structure, output = data.get("structure", {}), data.get("output", {})
            if "file" in structure:
                structure["file"] = rel(structure["file"])
            if "files" in structure:
                structure["files"] = [rel(f) for f in structure["files"]]
            if "path" in output:
                output["path"] = os.path.basename(output["path"])
            uncertainty = data.get("uncertainty")
            if isinstance(uncertainty, dict) and "file" in uncertainty:
                uncertainty["file"] = rel(uncertainty["file"])

            def relative_paths(value):  # plugin options declared as paths (potential files)
                if isinstance(value, str) and os.path.isabs(value) and os.path.exists(value):
                    return rel(value)
                if isinstance(value, dict):
                    return {k: relative_paths(v) for k, v in value.items()}
                if isinstance(value, list):
                    return [relative_paths(v) for v in value]
                return value

            for section in ("model", "solver", "condition"):
                if isinstance(data.get(section), dict) and "options" in data[section]:
                    data[section]["options"] = relative_paths(data[section]["options"])
        return data

    def to_yaml(self) -> str:
        """The resolved configuration as YAML 1.2 text, paths relative to the config's
        folder: what the dry run prints and the output stores (`sensitiv_config`); saved
        beside the original config, it reruns the same analysis."""
        return dump_yaml(self.to_dict(relative=True))


# -- defaults and resolution ------------------------------------------------------------


def _fill_defaults(value: Any, schema: Mapping, defs: Mapping) -> Any:
    """Fill `default`s of `properties` (following `$ref` and matching `if/then` cases)."""
    if "$ref" in schema:
        ref = schema["$ref"].rsplit("/", 1)[-1]
        schema = {**defs[ref], **{k: v for k, v in schema.items() if k != "$ref"}}
    if not isinstance(value, dict):
        return value
    properties: dict = dict(schema.get("properties", {}))
    for case in schema.get("allOf", ()):
        cond, then = case.get("if"), case.get("then")
        if cond is None or then is None:
            continue
        if jsonschema.Draft202012Validator(cond).is_valid(value):
            for key, sub in then.get("properties", {}).items():
                if isinstance(sub, Mapping):
                    properties[key] = {**properties.get(key, {}), **sub} if isinstance(properties.get(key), Mapping) else sub
    for key, sub in properties.items():
        if not isinstance(sub, Mapping):
            continue
        if key not in value:
            target = sub
            if "$ref" in sub:
                target = defs[sub["$ref"].rsplit("/", 1)[-1]]
            if "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            elif "default" in target:
                value[key] = copy.deepcopy(target["default"])
            else:
                continue
        value[key] = _fill_defaults(value[key], sub, defs)
    return value


def _absolute(base_dir: str, path: str) -> str:
    return os.path.normpath(os.path.join(base_dir, os.path.expanduser(path)))


def _is_path(schema: Mapping) -> bool:
    """Whether an option's schema declares a file path (`"format": "path"`, also inside
    `oneOf` alternatives and as the values of a mapping)."""
    if not isinstance(schema, Mapping):
        return False
    if schema.get("format") == "path":
        return True
    return any(_is_path(s) for s in schema.get("oneOf", ())) or _is_path(schema.get("additionalProperties"))


def _resolve_option_paths(options: dict, schema: Mapping, base_dir: str) -> None:
    """Plugin options declared as paths, made absolute when the file is found relative to
    the config's folder (like `structure.file`); a name not found there is left for the
    plugin to look up (a LAMMPS potential by name, say)."""

    def resolve(value):
        if isinstance(value, str) and not os.path.isabs(os.path.expanduser(value)):
            candidate = _absolute(base_dir, value)
            return candidate if os.path.exists(candidate) else value
        if isinstance(value, dict):
            return {k: resolve(v) for k, v in value.items()}
        return value

    for key, sub in (schema.get("properties") or {}).items():
        if key in options and _is_path(sub):
            options[key] = resolve(options[key])


#: The solver of structures read from files when the config names none.
RELAXED_INPUT_SOLVER = "polish"


def _default_solver(data: Any, registry: Registry) -> None:
    """Name `polish` as the solver when the config names none and its structures come from
    files: a simulation's output is usually relaxed already, and Newton steps finish that
    in a few Hessian solves where FIRE takes thousands of steps (FIRE remains its fallback).
    Generated structures keep the schema's default (`fire`)."""
    if not isinstance(data, dict) or RELAXED_INPUT_SOLVER not in registry.equilibrium_solvers:
        return
    structure, solver = data.get("structure"), data.get("solver", {})
    if (isinstance(structure, Mapping) and ("file" in structure or "files" in structure)
            and isinstance(solver, Mapping) and "name" not in solver):
        data["solver"] = {**solver, "name": RELAXED_INPUT_SOLVER}


def _resolve(
    data: dict, schema: Mapping, path: str, base_dir: str, registry: Registry
) -> tuple[dict, tuple[StructureFile, ...]]:
    """The resolved document (defaults filled, paths absolute) and the structure files,
    each with its reader: decided here, once."""
    data = _fill_defaults(copy.deepcopy(data), schema, schema["$defs"])
    structure = data["structure"]
    if "file" in structure:
        structure["file"] = _absolute(base_dir, structure["file"])
    if "files" in structure:
        structure["files"] = [_absolute(base_dir, f) for f in structure["files"]]
    paths = [structure["file"]] if "file" in structure else structure.get("files", [])
    files = tuple(
        StructureFile(p, structure.get("format") or registry.find_structure_reader(p).name) for p in paths
    )
    formats = {f.format for f in files}
    if len(formats) == 1:  # recorded, so that the dry run and the stored config show it
        structure["format"] = formats.pop()
    model = registry.energy_models.get(data["model"]["name"])
    if model is not None:
        _resolve_option_paths(data["model"].get("options") or {}, model.options_schema, base_dir)
    output = data["output"]
    if "path" not in output:
        stem = os.path.splitext(os.path.basename(path))[0] if path != "<string>" else "sensitiv"
        output["path"] = os.path.join(base_dir, stem + ".nc")
    else:
        output["path"] = _absolute(base_dir, output["path"])
    if isinstance(data.get("uncertainty"), dict) and "file" in data["uncertainty"]:
        data["uncertainty"]["file"] = _absolute(base_dir, data["uncertainty"]["file"])
    # Units options as the model and reader receive them: a LAMMPS unit style ("metal")
    # becomes its unit of that kind ("eV"); validation has checked every one.
    from .. import units
    from ._schema import UNITS_OPTIONS

    for section in ("model", "structure"):
        options = data[section].get("options") or {}
        for key, kind in UNITS_OPTIONS.items():
            if isinstance(options.get(key), str):
                options[key] = units.check(options[key], kind)
    data["observables"] = [
        {"name": o, "label": o} if isinstance(o, str) else {"label": o["name"], **o}
        for o in data["observables"]
    ]
    return data, files


def _fixed_atoms(section: Mapping) -> FixedAtoms:
    def tupled(key):
        return tuple(section[key]) if key in section else None

    region = section.get("region")
    if region is not None:
        region = Region(**{k: tuple(v) if isinstance(v, list) else v for k, v in region.items()})
    return FixedAtoms(from_file=section["from_file"], indices=tupled("indices"), ids=tupled("ids"),
                      species=tupled("species"), region=region)


def _structure_settings(section: Mapping, files: tuple[StructureFile, ...]) -> StructureSettings:
    return StructureSettings(
        files=files,
        generator=section.get("generator"),
        frames=section["frames"],
        options=section["options"],
        min_distance=float(section["min_distance"]),
        fixed=_fixed_atoms(section["fixed"]),
    )


def _ensemble_settings(section: Mapping) -> EnsembleSettings:
    samples = section.get("parameter_samples")
    if samples is not None:
        samples = ParameterSamples(
            n=samples["n"],
            seed=samples["seed"],
            bounds={k: tuple(v) for k, v in samples["bounds"].items()},
            values=dict(samples["values"]),
        )
    return EnsembleSettings(scheduler=section["scheduler"], parameter_samples=samples,
                            workers=section.get("workers"))


def _cell_settings(cell: Mapping) -> CellSettings:
    stress = cell.get("stress")
    return CellSettings(relax=cell["relax"], pressure=float(cell["pressure"]),
                        stress=None if stress is None else tuple(float(v) for v in stress))


def _sections(resolved: Mapping, files: tuple[StructureFile, ...]) -> dict[str, Any]:
    """The typed sections of a resolved document (keys are the schema's, checked by name)."""
    model = dict(resolved["model"])
    if model["differentiate"] != "all":
        model["differentiate"] = tuple(model["differentiate"])
    jacobian = {**resolved["jacobian"], "memory_budget": parse_memory(resolved["jacobian"]["memory_budget"])}
    return {
        "structure": _structure_settings(resolved["structure"], files),
        "model": ModelSettings(**model),
        "solver": SolverSettings(**resolved["solver"]),
        "condition": ConditionSettings(**resolved["condition"]),
        "cell": _cell_settings(resolved["cell"]),
        "observables": tuple(ObservableSettings(**o) for o in resolved["observables"]),
        "jacobian": JacobianSettings(**jacobian),
        "ensemble": _ensemble_settings(resolved["ensemble"]),
        "output": OutputSettings(**resolved["output"]),
        "uncertainty": parse_spec(resolved["uncertainty"], "") if "uncertainty" in resolved else None,
        "title": resolved.get("title"),
    }


# -- overrides ---------------------------------------------------------------------------


def parse_override(text: str) -> tuple[tuple, Any]:
    """Parse a `--set key.path=value` override (value as YAML 1.2): `(("a", "b"), value)`;
    `solver.options.ftol=1e-9` gives the number 1e-09."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: write KEY.PATH=VALUE, e.g. structure.generator.n_atoms=32")
    key, _, raw = text.partition("=")
    parts: list = []
    for part in key.strip().split("."):
        if not part:
            raise ConfigError(f"--set {text!r}: empty key in {key!r}")
        parts.append(int(part) if part.isdigit() else part)
    return tuple(parts), parse_scalar(raw, f"--set {text!r}")


def _apply_override(data: dict, marks: Marks, path: tuple, value: Any, text: str) -> None:
    node = data
    for i, part in enumerate(path[:-1]):
        if isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
            continue
        if not isinstance(node, dict):
            raise ConfigError(f"--set {text}: {_json_path(path[: i + 1])} is not a mapping")
        node = node.setdefault(part, {})
    last = path[-1]
    if isinstance(node, list) and isinstance(last, int) and last < len(node):
        node[last] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise ConfigError(f"--set {text}: {_json_path(path[:-1])} is not a mapping")
    marks.values[path] = (0, 0)
    marks.keys[path] = (0, 0)


class _OverrideMarks(Marks):
    """Marks that name `--set` for values given on the command line."""

    def __init__(self, marks: Marks):
        super().__init__(marks.filename, marks.values, marks.keys)

    def locate(self, path, key=False):
        path = tuple(path)
        for n in range(len(path), 0, -1):
            table = self.keys if key and n == len(path) else self.values
            if table.get(path[:n]) == (0, 0):
                return "--set"
        return super().locate(path, key)


# -- load ----------------------------------------------------------------------------------


def load(
    path: str | None = None,
    *,
    text: str | None = None,
    overrides: Sequence[str] = (),
    registry: Registry | None = None,
    check_files: bool = True,
) -> Config:
    """Load, validate and resolve a configuration.

    **Arguments:**

    - `path`: the YAML file.
    - `text`: YAML text instead of a file (relative paths then refer to the working folder).
    - `overrides`: `KEY.PATH=VALUE` strings applied before validation (`--set`).
    - `registry`: the plugin registry (default: `sensitiv.plugins.get_registry()`).
    - `check_files`: check that structure files exist.

    **Returns:** a `Config`.

    **Raises:** `ConfigError` whose message lists every problem, one per line
    (`err.issues` holds them as `ConfigIssue`s).
    """
    registry = registry if registry is not None else get_registry()
    if text is not None:
        data, marks, duplicates = parse_yaml_text(text, path or "<string>")
        base_dir = os.getcwd() if path is None else os.path.dirname(os.path.abspath(path))
        path = path or "<string>"
    else:
        data, marks, duplicates = load_yaml_with_marks(path)
        base_dir = os.path.dirname(os.path.abspath(path))
    for text_override in overrides:
        key, value = parse_override(text_override)
        if not isinstance(data, dict):
            break
        _apply_override(data, marks, key, value, text_override)
    _default_solver(data, registry)
    issues = validate(data, _OverrideMarks(marks), registry, base_dir, check_files, duplicates)
    if issues:
        raise ConfigError("\n".join(str(i) for i in issues), issues=issues)
    resolved, files = _resolve(data, full_schema(registry), path, base_dir, registry)
    return Config(**_sections(resolved, files), path=path, marks=marks,
                  raw=copy.deepcopy(data), resolved=resolved, base_dir=base_dir)


class _SourceMarks(Marks):
    """Marks of a config given as data (`sensitiv.analyze`): no lines, the source's name."""

    def locate(self, path, key=False):
        return self.filename


def load_data(
    data: Mapping[str, Any],
    *,
    source: str = "<data>",
    base_dir: str | None = None,
    registry: Registry | None = None,
    check_files: bool = True,
) -> Config:
    """Validate and resolve a configuration given as a mapping (what `sensitiv.analyze`
    builds from its arguments): the same schema, checks and messages as `load`, located
    at `source` instead of `file:line:col`.

    **Arguments:**

    - `data`: the configuration, as the YAML would give it.
    - `source`: the name messages start with.
    - `base_dir`: the folder relative paths refer to (default: the working folder).
    - `registry`, `check_files`: as for `load`.

    **Returns:** a `Config`.

    **Raises:** `ConfigError` listing every problem, one per line.
    """
    registry = registry if registry is not None else get_registry()
    base_dir = os.path.abspath(base_dir or os.getcwd())
    data = copy.deepcopy(dict(data))
    marks = _SourceMarks(source)
    _default_solver(data, registry)
    issues = validate(data, marks, registry, base_dir, check_files, ())
    if issues:
        raise ConfigError("\n".join(str(i) for i in issues), issues=issues)
    resolved, files = _resolve(data, full_schema(registry), "<string>", base_dir, registry)
    return Config(**_sections(resolved, files), path=source, marks=marks,
                  raw=copy.deepcopy(data), resolved=resolved, base_dir=base_dir)


_UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


def parse_memory(value: int | str) -> int:
    """Bytes of a memory budget: `2147483648`, `"2 GiB"`, `"500MB"`.

    **Raises:** `ConfigError` for text that is not a number with an optional unit.
    """
    if isinstance(value, int):
        return value
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT]i?B|B)?\s*", value, flags=re.IGNORECASE)
    if match is None:
        raise ConfigError(f"invalid memory budget {value!r}; write e.g. '2 GiB' or '500 MB'")
    number, unit = match.groups()
    return int(float(number) * _UNITS[(unit or "B").upper()])
