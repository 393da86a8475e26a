"""Human-readable views of a result: the closing summary of `analyze` and `inspect` (figures: `plot`)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from .. import units as _units
from .analysis import ELASTIC_CONSTANTS, StructureAnalysis, is_round_off
from .dataset import (
    ATOM,
    CELL,
    DCELL_DTHETA,
    FIXED,
    ATTR_HISTORY,
    ATTR_SOURCE,
    ATTR_TITLE,
    COORDINATES,
    DIAGNOSTICS,
    DX_DLOGTHETA,
    DX_DTHETA,
    FRAME,
    GPA_SUFFIX,
    LINEAR_RESIDUAL,
    PARAMETER,
    PARAMETER_LABEL,
    PARAMETER_UNITS,
    PARAMETER_VALUE,
    PROBLEMS,
    SPATIAL,
    TRUSTWORTHY,
    VOIGT_I_LABEL,
    derivative_names,
    index_labels,
)

__all__ = ["analysis_summary", "summary_record", "species_table", "reading_lines", "result_groups", "inspect_record",
           "inspect_text"]


def species_table(structure) -> list[dict[str, Any]]:
    """The species table of a structure: `[{"index", "name", "type"}]` (`type`: the file's
    own type number, LAMMPS type, or `None`)."""
    types = structure.species_types
    return [{"index": k, "name": name, "type": None if types is None else int(types[k])}
            for k, name in enumerate(structure.species_names)]


def reading_lines(structure, indent: str = "  ") -> list[str]:
    """How a structure was read, for the dry run and the summary: the species table (index
    → name, and type where it came from) and each of the reader's and pipeline's readings."""
    table = ", ".join(
        f"{row['index']} = {row['name']}" + (f" (type {row['type']})" if row["type"] is not None else "")
        for row in species_table(structure)
    )
    return [f"{indent}species: {table}"] + [f"{indent}read: {text}" for text in structure.readings]


def _fmt(x: float | None) -> str:
    return "nan" if x is None or not np.isfinite(x) else f"{x:.3e}"


def _largest(analysis: StructureAnalysis, count: int = 5) -> list[tuple[str, float]]:
    """The `count` parameters with the largest ‖dx*/dθ_k‖, as `(label, norm)`."""
    jac = analysis.dx_dtheta
    norms = np.linalg.norm(jac.reshape(-1, jac.shape[-1]), axis=0)
    return [(analysis.labels[k], float(norms[k])) for k in np.argsort(-norms)[:count]]


def _finite(x: float) -> float | None:
    return float(x) if x is not None and np.isfinite(x) else None


def _ranking(variance_by_parameter: np.ndarray, labels: Sequence[str], count: int = 4) -> list[dict]:
    """The parameters with the largest shares of a summed variance, largest first."""
    totals = np.asarray(variance_by_parameter).reshape(-1, len(labels)).sum(axis=0)
    whole = float(totals.sum())
    order = np.argsort(-totals, kind="stable")
    return [{"parameter": labels[k], "share": float(totals[k] / whole)} for k in order[:count]
            if whole > 0 and totals[k] > 0]


def _validity_record(ranges, labels: Sequence[str]) -> list[dict]:
    if ranges is None:
        return []
    est = np.asarray(ranges.estimate)
    return [{"direction": labels[k], "range": _finite(est[k]) if np.isfinite(est[k]) else None,
             "exact": bool(np.isinf(est[k])), "resolved": bool(np.asarray(ranges.resolved)[k])}
            for k in range(len(labels)) if not np.isnan(est[k])]


def _smallest_range(ranges) -> dict:
    """`validity_principal_min` (finite, or None) and `linear` (every range infinite)."""
    if ranges is None or not np.asarray(ranges.estimate).size:
        return {"validity_principal_min": None, "linear": False}
    smallest = float(np.nanmin(ranges.estimate))
    return {"validity_principal_min": smallest if np.isfinite(smallest) else None, "linear": bool(np.isinf(smallest))}


def _uncertainty_record(a: StructureAnalysis) -> dict | None:
    """The uncertainty part of a structure's summary: σ of x* and of each observable, the
    dominant parameters, and how far the first-order prediction holds."""
    u = a.uncertainty
    if u is None:
        return None
    labels = a.labels
    std = np.asarray(u.positions_std)
    atom_rms = np.sqrt(np.sum(std**2, axis=-1))
    principal = [f"principal {k + 1}" for k in range(len(u.principal_variance))]
    observables = []
    for o in list(u.observables) + ([u.elastic_constants] if u.elastic_constants is not None else []):
        observables.append({
            "label": o.label, "units": o.units,
            "std_max": _finite(float(np.max(o.std))) if o.std.size else None,
            "importance": _ranking(o.variance_by_parameter, labels),
            **_smallest_range(o.validity_principal),
        })
    elastic = None
    if u.elastic_constants is not None and a.elastic_constants is not None:
        c, sd = a.elastic_constants.relaxed, u.elastic_constants.std
        units = u.elastic_constants.units
        elastic = {name: {"value": _finite(float(c[i, j])), "std": _finite(float(sd[i, j])), "units": units}
                   for name, (i, j) in (("C11", (0, 0)), ("C12", (0, 1)), ("C44", (3, 3)))
                   if c.shape[0] > 3 or name != "C44"}
    validity_p = u.positions_validity_principal
    smallest = None
    if validity_p is not None and np.asarray(validity_p.estimate).size:
        smallest = float(np.min(validity_p.estimate))
    return {
        "source": u.source,
        "rule": u.rule,
        "rtol": u.rtol,
        # x* of a perfect crystal does not move with its potential's parameters: round-off
        "positions_static": is_round_off(atom_rms, a.positions),
        "positions_std_max": _finite(float(atom_rms.max())) if atom_rms.size else None,
        "positions_std_max_atom": int(np.argmax(atom_rms)) if atom_rms.size else None,
        "positions_std_rms": _finite(float(np.sqrt(np.mean(atom_rms**2)))) if atom_rms.size else None,
        "importance": _ranking(u.positions_variance_by_parameter, labels),
        "validity": _validity_record(u.positions_validity, labels),
        "validity_principal": _validity_record(validity_p, principal),
        "validity_principal_min": smallest if smallest is None or np.isfinite(smallest) else None,
        "observables": observables,
        "elastic_constants": elastic,
        "second_order_warnings": list(u.second_order_warnings),
    }


def summary_record(path: str | None, analyses: Sequence[StructureAnalysis], timings: Mapping[str, float],
                   failures: Sequence = ()) -> dict:
    """The closing summary of `sensitiv analyze` as plain data (`--json` prints it).

    **Arguments:**

    - `path`: the file written (`None` when nothing was written).
    - `analyses`: the `StructureAnalysis` of every task.
    - `timings`: seconds per stage.
    - `failures`: the tasks that produced no result (`sensitiv.pipeline.run.TaskFailure`).

    **Returns:** `{"path", "trustworthy", "untrustworthy", "structures": [...], "failed":
    [{"task", "where", "message"}], "timings"}` (`trustworthy` is false when a task failed);
    each structure holds its `source`, `frame`, `sample`, `atoms`, `equilibrium`, `hessian`,
    `jacobian`, `largest_sensitivities` (`parameter`, `norm` of dx*/dθ_k) and `problems`.
    Non-finite numbers are `null`.
    """
    structures = []
    for a in analyses:
        engine = a.engine
        residual_max = float(np.nanmax(engine.column_residual)) if engine.column_residual.size else 0.0
        structures.append({
            "source": a.structure.source,
            "frame": int(a.structure.frame),
            "sample": a.sample,
            "atoms": int(a.structure.n_atoms),
            "species": species_table(a.structure),
            "readings": list(a.structure.readings),
            "trustworthy": bool(a.trustworthy),
            "equilibrium": {
                "solver": a.solver.name, "converged": bool(a.solver.converged),
                "steps": int(a.solver.iterations), "solver_residual": _finite(a.solver.residual),
                "max_abs_F": _finite(a.stationarity_residual),
            },
            "hessian": {
                "verdict": engine.verdict, "smallest_eigenvalue": _finite(engine.smallest_eigenvalue),
                "null_space_dimension": int(engine.null_space_dimension),
            },
            "jacobian": {
                "strategy": engine.description, "max_linear_residual": _finite(residual_max),
                "error_estimate": _finite(engine.jacobian_error_estimate),
                "trust_rtol": _finite(engine.trust_rtol),
            },
            "largest_sensitivities": [{"parameter": label, "norm": _finite(norm)} for label, norm in _largest(a)],
            "uncertainty": _uncertainty_record(a),
            "problems": list(a.problems),
            "notes": list(engine.notes),
        })
    bad = sum(not a.trustworthy for a in analyses)
    return {
        "path": path,
        "trustworthy": bad == 0 and not failures,
        "untrustworthy": bad,
        "structures": structures,
        "failed": [{"task": f.index, "where": f.where, "message": f.message} for f in failures],
        "timings": {k: round(float(v), 4) for k, v in timings.items()},
    }


def _shares(ranking: list[dict]) -> str:
    return ", ".join(f"{r['parameter']} {r['share']:.0%}" for r in ranking) or "none (no variance)"


def _uncertainty_lines(rec: dict | None, length_units: str) -> list[str]:
    if rec is None:
        return []
    source = os.path.basename(rec["source"]) if rec["source"] != "config" else "config"
    if rec["positions_static"]:
        lines = [f"  uncertainty ({source}): x* does not move with the uncertain parameters "
                 f"(σ(x*) ≤ {_fmt(rec['positions_std_max'])} {length_units}, round-off)"]
    else:
        lines = [f"  uncertainty ({source}): σ(x*) per atom max {_fmt(rec['positions_std_max'])} {length_units} "
                 f"(atom {rec['positions_std_max_atom']}), rms {_fmt(rec['positions_std_rms'])}; "
                 f"variance of x* from: {_shares(rec['importance'])}"]
    if rec["elastic_constants"]:
        parts, shown = [], ""
        for k, v in rec["elastic_constants"].items():
            if v["value"] is None or v["std"] is None:
                continue
            value, std = v["value"], v["std"]
            gpa = _units.to_gpa(np.array([value, std]), v["units"])
            if gpa is not None:  # physical units: in GPa, as elastic constants are quoted
                (value, std), shown = gpa, "GPa"
            else:
                shown = _units.describe(v["units"])
            parts.append(f"{k} {value:.4g} ± {std:.2g}")
        lines.append(f"    elastic constants (1σ, {shown}): " + ", ".join(parts))
    for o in rec["observables"]:
        valid = o["validity_principal_min"]
        if o["linear"]:
            holds = "; linear in θ"
        elif valid is None:
            holds = ""
        elif valid < 1e-3:
            # a first-order change that vanishes (e.g. the stress of a cell held at zero
            # pressure to first order) makes any range tiny: say what that means instead
            holds = (f"; the change is second order in θ beyond {valid:.1g} σ: its linear σ does not "
                     "describe it (sensitiv check samples it)")
        else:
            holds = f"; first order within {rec['rtol']:.0%} to {valid:.3g} σ"
        lines.append(f"    {o['label']}: σ ≤ {_fmt(o['std_max'])} {o['units']}; from: {_shares(o['importance'])}{holds}")
    if rec["elastic_constants"]:
        lines.append("    (validity ranges of the elastic constants need third-order mixed derivatives: "
                     "check them by sampling, sensitiv check)")
    valid = [v for v in rec["validity"] if not v["exact"] and v["range"] is not None]
    if valid and not rec["positions_static"]:
        lines.append(f"    first order within {rec['rtol']:.0%} for |Δθ| ≤ "
                     + ", ".join(f"{v['direction']} {v['range']:.3g}" for v in valid))
    smallest = rec["validity_principal_min"]
    if smallest is not None and not rec["positions_static"]:
        lines.append(f"    along the covariance's principal directions: first order holds to {smallest:.3g} σ")
        if smallest < 1.0:
            lines.append(f"    NOTE: the linear propagation errs by more than {rec['rtol']:.0%} within one standard "
                         "deviation; check it by sampling (sensitiv check)")
    for w in rec["second_order_warnings"]:
        lines.append(f"  WARNING (second-order solve): {w}")
    return lines


def analysis_summary(path: str, analyses: Sequence[StructureAnalysis], timings: Mapping[str, float],
                     failures: Sequence = ()) -> str:
    """The closing summary `sensitiv analyze` prints: residuals, verdict, strategy, timings, top sensitivities.

    **Arguments:**

    - `path`: the file written.
    - `analyses`: the `StructureAnalysis` of every task (the first ten are described).
    - `timings`: seconds per stage.
    - `failures`: the tasks that produced no result (the result line counts them).

    **Returns:** the text, one line per item (see `summary_record` for the same as data).
    """
    record = summary_record(path, analyses, timings, failures)
    lines = [f"wrote {path}"]
    for a, rec in zip(analyses[:10], record["structures"]):
        n_atoms = rec["atoms"]
        head = f"{a.where}: {n_atoms} atoms" if len(analyses) > 1 else f"structure: {a.where}, {n_atoms} atoms"
        lines.append(head)
        lines += reading_lines(a.structure)
        eq, hessian, jac = rec["equilibrium"], rec["hessian"], rec["jacobian"]
        lines.append(
            f"  equilibrium: {eq['steps']} steps, solver residual {_fmt(eq['solver_residual'])}, "
            f"max|F| {_fmt(eq['max_abs_F'])}"
        )
        lines.append(
            f"  hessian: {hessian['verdict']}, smallest eigenvalue {_fmt(hessian['smallest_eigenvalue'])}, "
            f"null space {hessian['null_space_dimension']}"
        )
        lines.append(
            f"  jacobian: {jac['strategy']}, max linear residual {_fmt(jac['max_linear_residual'])}, "
            f"error estimate {_fmt(jac['error_estimate'])} (tolerance {'nan' if jac['trust_rtol'] is None else format(jac['trust_rtol'], '.3g')})"
        )
        top = ", ".join(f"{t['parameter']} {t['norm']:.3g}" if t["norm"] is not None else f"{t['parameter']} nan"
                        for t in rec["largest_sensitivities"])
        lines.append(f"  largest ‖dx*/dθ‖: {top}")
        lines += _uncertainty_lines(rec["uncertainty"], a.length_units)
        for problem in rec["problems"]:
            lines.append(f"  WARNING: {problem}")
        for note in rec["notes"]:
            lines.append(f"  note: {note}")
    if len(analyses) > 10:
        rest = analyses[10:]
        bad = sum(not a.trustworthy for a in rest)
        lines.append(f"... and {len(rest)} more structures ({bad} untrustworthy)")
    order = ["read", "model", "minimization", "jacobian", "observables", "write", "total"]
    shown = [k for k in order if k in timings] + [k for k in timings if k not in order]
    lines.append("timings: " + ", ".join(f"{k} {timings[k]:.2f} s" for k in shown))
    n_bad, total = record["untrustworthy"], len(analyses) + len(failures)
    flagged = [f"{n_bad} of {total} flagged"] if n_bad else []
    flagged += [f"{len(failures)} of {total} failed, not in the file"] if failures else []
    lines.append("result: trustworthy" if not flagged else f"result: NOT trustworthy ({'; '.join(flagged)})")
    return "\n".join(lines)


def result_groups(result) -> list[tuple[str, Any]]:
    """`[(group path, dataset)]` of a result: one entry `("", ds)` for a plain result, one per
    group for a result with one group per structure."""

    if isinstance(result, xr.DataTree):
        return [(node.path, index_labels(node.to_dataset())) for node in result.subtree if node.has_data]
    return [("", result)]


_datasets = result_groups


def _labels(ds) -> list[str]:
    coord = PARAMETER_LABEL if PARAMETER_LABEL in ds.coords else PARAMETER
    return [str(v) for v in ds[coord].values]


def _clean(values: np.ndarray, relative: float = 1e-9) -> np.ndarray:
    """Round-off suppressed: entries below `relative` × the largest magnitude become 0."""
    values = np.asarray(values, dtype=np.float64)
    finite = np.abs(values[np.isfinite(values)])
    scale = finite.max() if finite.size else 0.0
    return np.where(np.abs(values) <= relative * scale, 0.0, values) + 0.0


def _quantity(value: float, units: str | None, digits: int = 6) -> str:
    text = "nan" if not np.isfinite(value) else f"{value:.{digits}g}"
    shown = _units.describe(units) if units else ""
    return f"{text} {shown}".strip()


def _frame0(var):
    return var.isel({FRAME: 0}) if FRAME in var.dims else var


def _group_record(ds) -> dict:
    frames = ds.sizes.get(FRAME, 1)
    labels = _labels(ds)
    units = [str(u) for u in ds[PARAMETER_UNITS].values] if PARAMETER_UNITS in ds else [""] * len(labels)
    jac = ds[DX_DTHETA]
    norms = np.sqrt((jac**2).sum((ATOM, SPATIAL)))
    if FRAME in norms.dims:
        norms = norms.mean(FRAME)
    values = np.atleast_1d(_frame0(ds[PARAMETER_VALUE]).values)
    log_norms = None
    if DX_DLOGTHETA in ds:
        log = np.sqrt((ds[DX_DLOGTHETA] ** 2).sum((ATOM, SPATIAL)))
        log_norms = (log.mean(FRAME) if FRAME in log.dims else log).values
    parameters = []
    for k, label in enumerate(labels):
        entry = {"label": label, "value": float(values[k]), "units": units[k], "dx_dtheta_norm": float(norms.values[k])}
        if log_norms is not None:
            entry["dx_dlogtheta_norm"] = float(log_norms[k])
        parameters.append(entry)
    diagnostics = {}
    for name in DIAGNOSTICS:
        if name in ds:
            v = np.ravel(ds[name].values)
            items = [x.item() if hasattr(x, "item") else x for x in v]
            items = [str(x) if isinstance(x, (str, bytes)) else x for x in items]
            diagnostics[name] = {"values": items, "units": ds[name].attrs.get("units")}
    record = {
        "atoms": int(ds.sizes[ATOM]), "spatial": int(ds.sizes[SPATIAL]), "frames": int(frames),
        "length_units": str(ds[COORDINATES].attrs.get("units", "")) if COORDINATES in ds
        else str(ds.attrs.get("length_units", "")),
        "parameters": parameters, "diagnostics": diagnostics,
    }
    if LINEAR_RESIDUAL in ds:
        record["max_linear_residual"] = float(ds[LINEAR_RESIDUAL].max())
    record["observable_derivatives"] = derivative_names(list(ds.data_vars))
    if ELASTIC_CONSTANTS in ds:
        c = _frame0(ds[ELASTIC_CONSTANTS])
        voigt = [str(v) for v in c[VOIGT_I_LABEL].values] if VOIGT_I_LABEL in c.coords else []
        elastic = {"voigt": voigt, "units": c.attrs.get("units", ""), "values": _clean(c.values).tolist()}
        gpa = ELASTIC_CONSTANTS + GPA_SUFFIX
        if gpa in ds:
            elastic["GPa"] = _clean(_frame0(ds[gpa]).values).tolist()
        record[ELASTIC_CONSTANTS] = elastic
    if FIXED in ds:
        record["fixed_atoms"] = int(np.asarray(ds[FIXED].values).astype(bool).sum())
    if DCELL_DTHETA in ds:
        # the relaxed cell's lengths and their sensitivities (lattice constants, for a cubic cell)
        cell = np.asarray(_frame0(ds[CELL]).values, np.float64)
        dcell = np.asarray(_frame0(ds[DCELL_DTHETA]).values, np.float64)  # (vector, spatial, parameter)
        lengths = np.linalg.norm(cell, axis=1)
        dlengths = np.einsum("vs,vsp->vp", cell / lengths[:, None], dcell)
        record["relaxed_cell"] = {"lengths": lengths.tolist(),
                                  "dlength_dtheta": {label: dlengths[:, k].tolist() for k, label in enumerate(labels)}}
    if PROBLEMS in ds:
        record["problems"] = [str(p) for p in np.ravel(ds[PROBLEMS].values) if str(p)]
    return record


def inspect_record(result, path: str = "") -> dict:
    """What `sensitiv inspect --json` prints: the result's title, source, history, and per
    group its sizes, parameters (value, units, ‖dx*/dθ_k‖ averaged over frames),
    diagnostics with units, elastic constants (also in GPa when physical) and problems."""
    attrs = result.attrs
    history = str(attrs.get(ATTR_HISTORY, "")).splitlines()
    trust = attrs.get(TRUSTWORTHY)
    return {
        "path": path,
        "title": str(attrs.get(ATTR_TITLE, "sensitiv result")),
        "source": str(attrs.get(ATTR_SOURCE, "")),
        "history": history[-1] if history else "",
        "trustworthy": None if trust is None else bool(int(trust)),
        "groups": [{"group": group, **_group_record(ds)} for group, ds in result_groups(result)],
    }


def inspect_text(result, path: str = "") -> str:
    """A summary of a result file: sizes, parameters with their units, diagnostics with
    units, elastic constants (round-off shown as 0; also in GPa when the units are
    physical), the largest sensitivities and the problems found."""
    record = inspect_record(result, path)
    lines = [f"{path}: {record['title']}", f"  source: {record['source']}"]
    if record["history"]:
        lines.append(f"  history: {record['history']}")
    for group in record["groups"]:
        prefix = f"  [{group['group']}] " if group["group"] else "  "
        frames = group["frames"]
        lines.append(
            f"{prefix}{group['atoms']} atoms × {group['spatial']} dims"
            + (f" × {frames} frames" if frames > 1 else "")
            + f", {len(group['parameters'])} parameters (lengths in {_units_text(group['length_units'])})"
        )
        parameters = group["parameters"]
        # round-off shown as 0, compared within parameters of one unit (Å/eV and Å/Å do not compare)
        norms = np.array([p["dx_dtheta_norm"] for p in parameters])
        units = np.array([p["units"] for p in parameters], dtype=object)
        shown = np.zeros_like(norms)
        for u in set(units):
            shown[units == u] = _clean(norms[units == u])
        for p, norm in zip(parameters, shown):
            log = f", ‖θ·dx*/dθ‖ = {p['dx_dlogtheta_norm']:.4g}" if "dx_dlogtheta_norm" in p else ""
            lines.append(f"{prefix}  θ {p['label']} = {_quantity(p['value'], p['units'])}  "
                         f"‖dx*/dθ‖ = {norm:.4g}{log}")
        for name, d in group["diagnostics"].items():
            values = d["values"]
            if d["units"] is not None and all(isinstance(v, (int, float)) for v in values):
                text = ", ".join(_quantity(float(v), d["units"], 4) for v in values[:8])
            else:
                text = ", ".join(map(str, values[:8]))
            lines.append(f"{prefix}  {name}: {text}" + (" …" if len(values) > 8 else ""))
        if "max_linear_residual" in group:
            lines.append(f"{prefix}  max linear residual: {group['max_linear_residual']:.3e}")
        if group["observable_derivatives"]:
            lines.append(f"{prefix}  observable derivatives: {', '.join(group['observable_derivatives'])}")
        if group.get("fixed_atoms"):
            lines.append(f"{prefix}  fixed atoms: {group['fixed_atoms']} (not unknowns of the equilibrium)")
        relaxed = group.get("relaxed_cell")
        if relaxed:
            length_units = _units_text(group["length_units"])
            lines.append(f"{prefix}  relaxed cell lengths: " + ", ".join(f"{x:.6g}" for x in relaxed["lengths"])
                         + f" {length_units}")
            for label, values in relaxed["dlength_dtheta"].items():
                lines.append(f"{prefix}    d(lengths)/d{label}: " + ", ".join(f"{x:.4g}" for x in values))
        elastic = group.get(ELASTIC_CONSTANTS)
        if elastic:
            table, units = (elastic["GPa"], "GPa") if "GPa" in elastic else (elastic["values"], elastic["units"])
            lines.append(f"{prefix}  {ELASTIC_CONSTANTS} [{_units_text(units)}] (Voigt {' '.join(elastic['voigt'])}):")
            for row in table:
                lines.append(f"{prefix}    " + " ".join(f"{x:10.5g}" for x in row))
        for p in group.get("problems", [])[:5]:
            lines.append(f"{prefix}  WARNING: {p}")
    return "\n".join(lines)


def _units_text(units: str) -> str:
    return _units.describe(units) or "1"
