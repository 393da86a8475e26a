"""The `uncertainty:` section: what is known about θ, and its propagation at one structure.

Three stages, each called once:

1. `parse_spec` (at config load, numpy only): the section → an `UncertaintySpec` — labels,
   standard deviations (absolute or relative), a correlation or covariance matrix, or
   samples, inline or from a file exported by a fit — with every problem reported as a
   `(key path, message)` pair that the config turns into `file:line:col` errors.
2. `theta_covariance` (after the model is bound): the spec mapped onto θ's components →
   a full `p × p` covariance over θ (exact components, such as a reference strain, get
   zero variance); a label that names no θ component is a `ConfigError`.
3. `_uncertainty_stage.analyze_uncertainty` (after the Jacobian; it needs jax): linear
   propagation, importance, second-order derivatives by implicit differentiation, validity
   ranges and the second-order mean shift, through `sensitiv.uncertainty`; the numbers go
   to an `UncertaintyAnalysis`.

**Example:**

```yaml
uncertainty:
  std: {epsilon: 0.02, sigma: 0.01}          # or relative_std, covariance, samples, file
  correlation: [[1, -0.6], [-0.6, 1]]
  parameters: [epsilon, sigma]
```
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..uncertainty._psd import covariance_problem  # numpy only: sensitiv.uncertainty's face is lazy
from ._yaml import parse_yaml_text
from .theta import ThetaComponent, parse_parameter_label

__all__ = ["UncertaintySpec", "SpecIssue", "parse_spec", "read_parameter_file", "theta_covariance"]

MATRIX_SUFFIXES = (".npy", ".txt", ".csv", ".dat")
DOCUMENT_SUFFIXES = (".json", ".yaml", ".yml")


class SpecIssue(Exception):
    """A problem in the `uncertainty` section: `path` (key path below `uncertainty`) and message."""

    def __init__(self, path: tuple, message: str):
        super().__init__(message)
        self.path = tuple(path)
        self.message = message


@dataclasses.dataclass(frozen=True)
class UncertaintySpec:
    """The `uncertainty` section, resolved (`cfg.uncertainty`).

    **Arguments:**

    - `kind`: `"independent"` (standard deviations, with an optional `correlation`),
      `"covariance"` or `"samples"`.
    - `labels`: θ labels or parameter names, one per row/column.
    - `std`: absolute standard deviations per label (NaN where relative), `"independent"` only.
    - `relative_std`: fractions of the parameter's value per label (NaN where absolute).
    - `correlation`: the correlation matrix of the standard deviations, or `None`.
    - `covariance`: the covariance matrix (`"covariance"`), or `None`.
    - `samples`: `(m, len(labels))` parameter samples (`"samples"`), or `None`.
    - `source`: where it came from (`"config"` or the file's path), for the output's attributes.
    - `groups`, `rule`, `rtol`, `second_order`, `third_order`: the section's options.
    """

    kind: str
    labels: tuple[str, ...]
    std: np.ndarray | None
    relative_std: np.ndarray | None
    correlation: np.ndarray | None
    covariance: np.ndarray | None
    samples: np.ndarray | None
    source: str
    groups: tuple[tuple[str, ...], ...] | None
    rule: str
    rtol: float
    second_order: bool
    third_order: str


# -- parsing (config load time) ------------------------------------------------------------


def _matrix(value, path, what) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise SpecIssue(path, f"{what} must be a matrix of numbers (a list of equally long rows)") from None
    if arr.ndim != 2:
        raise SpecIssue(path, f"{what} must be a matrix (a list of rows), got {arr.ndim} dimension(s)")
    if not np.all(np.isfinite(arr)):
        raise SpecIssue(path, f"{what} contains NaN or infinite entries")
    return arr


def read_parameter_file(path: str, contains: str, parameters: Sequence[str] | None = None
                        ) -> tuple[str, tuple[str, ...], np.ndarray]:
    """Read a covariance or samples file exported by a fit.

    **Arguments:**

    - `path`: `.json`/`.yaml` with `parameters` (labels) and `covariance` or `samples`; or
      a plain matrix `.npy`, `.txt`, `.csv`, `.dat` (comma or whitespace separated; lines
      starting with `#` are comments).
    - `contains`: what a plain matrix holds, `"covariance"` or `"samples"`.
    - `parameters`: the labels of a plain matrix's rows (covariance) or columns (samples).

    **Returns:** `(kind, labels, matrix)`.

    **Raises:** `SpecIssue` naming the problem (missing file, unreadable, wrong shape).
    """
    key = ("file",)
    if not os.path.isfile(path):
        raise SpecIssue(key, f"file not found: {path}")
    suffix = os.path.splitext(path)[1].lower()
    try:
        if suffix in DOCUMENT_SUFFIXES:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
            if suffix == ".json":
                doc = json.loads(text)
            else:
                doc = parse_yaml_text(text, path)[0]
            if not isinstance(doc, Mapping):
                raise SpecIssue(key, f"{path}: expected a mapping with 'parameters' and 'covariance' or 'samples'")
            kinds = [k for k in ("covariance", "samples") if k in doc]
            if len(kinds) != 1:
                raise SpecIssue(key, f"{path}: give exactly one of 'covariance' or 'samples' (found {kinds or 'none'})")
            labels = doc.get("parameters", parameters)
            if not labels or not all(isinstance(x, str) for x in labels):
                raise SpecIssue(key, f"{path}: 'parameters' must list the θ labels of the rows")
            return kinds[0], tuple(labels), _matrix(doc[kinds[0]], key, f"{path}: {kinds[0]}")
        if suffix == ".npy":
            matrix = np.load(path, allow_pickle=False)
        elif suffix in MATRIX_SUFFIXES:
            with open(path, encoding="utf-8") as fh:
                first = next((ln for ln in fh if ln.strip() and not ln.lstrip().startswith("#")), "")
            matrix = np.loadtxt(path, delimiter="," if "," in first else None, comments="#", ndmin=2)
        else:
            raise SpecIssue(key, f"{path}: unknown file type {suffix!r}; use {', '.join(DOCUMENT_SUFFIXES + MATRIX_SUFFIXES)}")
    except SpecIssue:
        raise
    except Exception as err:  # noqa: BLE001 - any parser's failure is the file's problem
        raise SpecIssue(key, f"{path}: cannot read ({type(err).__name__}: {err})") from None
    if not parameters:
        raise SpecIssue(("parameters",), f"a plain matrix file ({os.path.basename(path)}) needs 'parameters': the θ labels of its rows")
    return contains, tuple(parameters), _matrix(matrix, key, path)


def _check_labels(labels: Sequence[str], path) -> None:
    for i, label in enumerate(labels):
        try:
            parse_parameter_label(label)
        except ConfigError as err:
            raise SpecIssue(path + (i,), str(err)) from None
    seen = set()
    for i, label in enumerate(labels):
        if label in seen:
            raise SpecIssue(path + (i,), f"label {label!r} given twice")
        seen.add(label)


def parse_spec(section: Mapping[str, Any], base_dir: str) -> UncertaintySpec:
    """The `uncertainty` section (defaults filled) → an `UncertaintySpec`.

    **Raises:** `SpecIssue` for the first problem: not exactly one source, matrices of the
    wrong size, a correlation or covariance that is not positive semi-definite, a file
    that cannot be read.
    """
    sources = [k for k in ("covariance", "samples", "file") if k in section]
    independent = [k for k in ("std", "relative_std") if k in section]
    if len(sources) + bool(independent) != 1:
        given = independent + sources
        raise SpecIssue((), "give exactly one source of uncertainty: std and/or relative_std, covariance, "
                        f"samples, or file (got {', '.join(given) if given else 'none'})")
    if "correlation" in section and not independent:
        raise SpecIssue(("correlation",), "correlation goes with std or relative_std (a covariance already holds it)")
    parameters = section.get("parameters")
    if parameters is not None:
        _check_labels(parameters, ("parameters",))
    # the options' defaults are the schema's (filled in by config.load before this is called
    # for the resolved config; validation calls it on the raw section, where they may be absent)
    common = dict(
        groups=tuple(tuple(g) for g in section["groups"]) if section.get("groups") else None,
        rule=section.get("rule"), rtol=section.get("rtol"),
        second_order=section.get("second_order"), third_order=section.get("third_order"),
    )
    if independent:
        absolute = dict(section.get("std", {}))
        relative = dict(section.get("relative_std", {}))
        both = sorted(set(absolute) & set(relative))
        if both:
            raise SpecIssue(("relative_std", both[0]), f"{both[0]!r} has both std and relative_std; give one")
        labels = tuple(parameters) if parameters is not None else tuple(list(absolute) + list(relative))
        missing = [lab for lab in labels if lab not in absolute and lab not in relative]
        if missing:
            raise SpecIssue(("parameters",), f"no std or relative_std for {', '.join(missing)}")
        extra = [lab for lab in list(absolute) + list(relative) if lab not in labels]
        if extra:
            raise SpecIssue(("parameters",), f"std given for {', '.join(extra)}, which 'parameters' does not list")
        _check_labels(labels, ("parameters",) if parameters is not None else ("std",))
        std = np.array([absolute.get(lab, np.nan) for lab in labels], float)
        rel = np.array([relative.get(lab, np.nan) for lab in labels], float)
        corr = None
        if "correlation" in section:
            corr = _matrix(section["correlation"], ("correlation",), "correlation")
            problem, corr = covariance_problem(corr, labels)
            if problem:
                raise SpecIssue(("correlation",), problem)
            if np.any(np.abs(np.diag(corr) - 1) > 1e-8):
                raise SpecIssue(("correlation",), "the diagonal of a correlation matrix must be 1")
            if np.any(np.abs(corr) > 1 + 1e-8):
                raise SpecIssue(("correlation",), "correlations must lie in [-1, 1]")
        return UncertaintySpec("independent", labels, std, rel, corr, None, None, "config", **common)

    if "file" in section:
        path = os.path.normpath(os.path.join(base_dir, os.path.expanduser(section["file"])))
        kind, labels, matrix = read_parameter_file(path, section.get("file_contains") or "covariance", parameters)
        source, where = path, ("file",)
    else:
        kind = sources[0]
        if parameters is None:
            raise SpecIssue((kind,), f"{kind} needs 'parameters': the θ labels of its rows (or columns)")
        labels, matrix, source, where = tuple(parameters), _matrix(section[kind], (kind,), kind), "config", (kind,)
    _check_labels(labels, ("parameters",))
    if kind == "covariance":
        problem, matrix = covariance_problem(matrix, labels)
        if problem:
            raise SpecIssue(where, problem)
        return UncertaintySpec("covariance", labels, None, None, None, matrix, None, source, **common)
    if matrix.shape[1] != len(labels):
        raise SpecIssue(where, f"samples have {matrix.shape[1]} columns for {len(labels)} parameters")
    if matrix.shape[0] < 2:
        raise SpecIssue(where, f"need at least 2 samples, got {matrix.shape[0]}")
    return UncertaintySpec("samples", labels, None, None, None, None, matrix, source, **common)


# -- onto θ (after binding) -----------------------------------------------------------------


def _targets(label: str, components: Sequence[ThetaComponent]) -> list[int]:
    """θ indices a spec label stands for: the component with that label, or every
    component of the parameter it names."""
    exact = [k for k, c in enumerate(components) if c.label == label]
    if exact:
        return exact
    name, index = parse_parameter_label(label)
    return [k for k, c in enumerate(components) if c.name == name] if index is None else []


def theta_covariance(spec: UncertaintySpec, components: Sequence[ThetaComponent], theta: np.ndarray,
                     where: str = "uncertainty") -> tuple[np.ndarray, np.ndarray | None]:
    """`(Σ (p, p), mean or None)` over θ's components for a spec.

    A label may name a component (`"sigma[0,1]"`) or, with independent standard deviations,
    a whole parameter (`"sigma"`: each of its components gets that σ, independently).
    Components no label names are exact (zero variance).

    **Raises:** `ConfigError` naming a label that matches no θ component, or a parameter
    name used with a correlation, covariance or samples (ambiguous over its components).
    """
    p = len(components)
    known = ", ".join(c.label for c in components)
    index = []
    for label in spec.labels:
        targets = _targets(label, components)
        if not targets:
            raise ConfigError(f"{where}: {label!r} is not a differentiated parameter component "
                              f"(θ is: {known}); add it to model.differentiate or fix the label")
        if len(targets) > 1 and (spec.kind != "independent" or spec.correlation is not None):
            raise ConfigError(f"{where}: {label!r} names {len(targets)} components; with a correlation, "
                              "covariance or samples give one label per component "
                              f"({', '.join(components[k].label for k in targets)})")
        index.append(targets)
    seen: dict[int, str] = {}
    for label, targets in zip(spec.labels, index):
        for k in targets:
            if k in seen:
                raise ConfigError(f"{where}: θ component {components[k].label!r} is given by both "
                                  f"{seen[k]!r} and {label!r}")
            seen[k] = label
    sigma = np.zeros((p, p))
    mean = None
    if spec.kind == "independent":
        per_label = []
        for i, targets in enumerate(index):
            if np.isnan(spec.std[i]):
                per_label.append([spec.relative_std[i] * abs(float(theta[k])) for k in targets])
            else:
                per_label.append([float(spec.std[i])] * len(targets))
        if spec.correlation is None:
            for targets, stds in zip(index, per_label):
                for k, s in zip(targets, stds):
                    sigma[k, k] = s * s
        else:
            rows = [t[0] for t in index]
            s = np.array([v[0] for v in per_label])
            sigma[np.ix_(rows, rows)] = s[:, None] * spec.correlation * s[None, :]
    else:
        rows = [t[0] for t in index]
        if spec.kind == "covariance":
            sigma[np.ix_(rows, rows)] = spec.covariance
        else:
            samples = spec.samples
            sigma[np.ix_(rows, rows)] = np.atleast_2d(np.cov(samples, rowvar=False, ddof=1))
            mean = np.array(theta, float)
            mean[rows] = samples.mean(axis=0)
    return 0.5 * (sigma + sigma.T), mean
