"""Human-readable views of a result: the closing summary of `analyze`, `inspect`, `plot`."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import InputError
from .analysis import ELASTIC_CONSTANTS, StructureAnalysis
from .dataset import (
    ATOM,
    ATTR_HISTORY,
    ATTR_SOURCE,
    ATTR_TITLE,
    CELL,
    COORDINATES,
    DIAGNOSTICS,
    DX_DTHETA,
    FRAME,
    LINEAR_RESIDUAL,
    PARAMETER,
    PARAMETER_UNITS,
    PARAMETER_VALUE,
    PROBLEMS,
    SPATIAL,
    SPECIES,
    derivative_names,
)

__all__ = ["analysis_summary", "summary_record", "species_table", "reading_lines", "inspect_text", "plot_result"]


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


def summary_record(path: str | None, analyses: Sequence[StructureAnalysis], timings: Mapping[str, float]) -> dict:
    """The closing summary of `sensitiv analyze` as plain data (`--json` prints it).

    **Arguments:**

    - `path`: the file written (`None` when nothing was written).
    - `analyses`: the `StructureAnalysis` of every task.
    - `timings`: seconds per stage.

    **Returns:** `{"path", "trustworthy", "untrustworthy", "structures": [...], "timings"}`;
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
            },
            "largest_sensitivities": [{"parameter": label, "norm": _finite(norm)} for label, norm in _largest(a)],
            "problems": list(a.problems),
        })
    bad = sum(not a.trustworthy for a in analyses)
    return {
        "path": path,
        "trustworthy": bad == 0,
        "untrustworthy": bad,
        "structures": structures,
        "timings": {k: round(float(v), 4) for k, v in timings.items()},
    }


def analysis_summary(path: str, analyses: Sequence[StructureAnalysis], timings: Mapping[str, float]) -> str:
    """The closing summary `sensitiv analyze` prints: residuals, verdict, strategy, timings, top sensitivities.

    **Arguments:**

    - `path`: the file written.
    - `analyses`: the `StructureAnalysis` of every task (the first ten are described).
    - `timings`: seconds per stage.

    **Returns:** the text, one line per item (see `summary_record` for the same as data).
    """
    record = summary_record(path, analyses, timings)
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
            f"error estimate {_fmt(jac['error_estimate'])}"
        )
        top = ", ".join(f"{t['parameter']} {t['norm']:.3g}" if t["norm"] is not None else f"{t['parameter']} nan"
                        for t in rec["largest_sensitivities"])
        lines.append(f"  largest ‖dx*/dθ‖: {top}")
        for problem in rec["problems"]:
            lines.append(f"  WARNING: {problem}")
    if len(analyses) > 10:
        rest = analyses[10:]
        bad = sum(not a.trustworthy for a in rest)
        lines.append(f"... and {len(rest)} more structures ({bad} untrustworthy)")
    order = ["read", "model", "minimization", "jacobian", "observables", "write", "total"]
    shown = [k for k in order if k in timings] + [k for k in timings if k not in order]
    lines.append("timings: " + ", ".join(f"{k} {timings[k]:.2f} s" for k in shown))
    n_bad = record["untrustworthy"]
    lines.append(
        "result: trustworthy" if n_bad == 0 else f"result: NOT trustworthy ({n_bad} of {len(analyses)} flagged)"
    )
    return "\n".join(lines)


def _datasets(result) -> list[tuple[str, Any]]:
    import xarray as xr

    if isinstance(result, xr.DataTree):
        return [(node.path, node.to_dataset()) for node in result.subtree if node.has_data]
    return [("", result)]


def inspect_text(result, path: str = "") -> str:
    """A summary of a result file: sizes, parameters, diagnostics, largest sensitivities."""

    attrs = result.attrs
    lines = [f"{path}: {attrs.get(ATTR_TITLE, 'sensitiv result')}"]
    lines.append(f"  source: {attrs.get(ATTR_SOURCE, '?')}")
    history = str(attrs.get(ATTR_HISTORY, "")).splitlines()
    if history:
        lines.append(f"  history: {history[-1]}")
    for group, ds in _datasets(result):
        prefix = f"  [{group}] " if group else "  "
        frames = ds.sizes.get(FRAME)
        lines.append(
            f"{prefix}{ds.sizes[ATOM]} atoms × {ds.sizes[SPATIAL]} dims"
            + (f" × {frames} frames" if frames else "")
            + f", {ds.sizes[PARAMETER]} parameters"
        )
        units = ds[PARAMETER_UNITS].values if PARAMETER_UNITS in ds else [""] * ds.sizes[PARAMETER]
        jac = ds[DX_DTHETA]
        norms = np.sqrt((jac**2).sum((ATOM, SPATIAL)))
        if frames:
            norms = norms.mean(FRAME)
        values = ds[PARAMETER_VALUE]
        if FRAME in values.dims:
            values = values.isel({FRAME: 0})
        for label, value, unit, norm in zip(ds[PARAMETER].values, values.values, units, norms.values):
            lines.append(f"{prefix}  θ {label} = {value:.6g} [{unit}]  ‖dx*/dθ‖ = {norm:.4g}")
        for name in DIAGNOSTICS:
            if name in ds:
                v = ds[name].values
                text = ", ".join(map(str, np.ravel(v)[:8])) + (" …" if np.size(v) > 8 else "")
                lines.append(f"{prefix}  {name}: {text}")
        if LINEAR_RESIDUAL in ds:
            lines.append(f"{prefix}  max linear residual: {float(ds[LINEAR_RESIDUAL].max()):.3e}")
        observables = derivative_names(list(ds.data_vars))
        if observables:
            lines.append(f"{prefix}  observable derivatives: {', '.join(observables)}")
        for name in (ELASTIC_CONSTANTS,):
            if name in ds:
                c = ds[name]
                if FRAME in c.dims:
                    c = c.isel({FRAME: 0})
                lines.append(f"{prefix}  {name} [{c.attrs.get('units', '')}] (Voigt):")
                for row in np.atleast_2d(c.values):
                    lines.append(f"{prefix}    " + " ".join(f"{x:10.4g}" for x in row))
        if PROBLEMS in ds:
            problems = [p for p in np.ravel(ds[PROBLEMS].values) if str(p)]
            for p in problems[:5]:
                lines.append(f"{prefix}  WARNING: {p}")
    return "\n".join(lines)


def plot_result(result, figure_path: str, parameter: str | None = None, frame: int = 0,
                structure: int = 0, scale: float | None = None) -> str:
    """Draw dx*/dθ as arrows on the structure and a bar chart of per-parameter magnitudes.

    **Arguments:**

    - `result`: an opened result (`open_result`).
    - `figure_path`: the image to write (`.png`, `.pdf`, `.svg`).
    - `parameter`: the θ label whose field is drawn (default: the largest).
    - `frame`: which frame (results with a `frame` dimension).
    - `structure`: which group (results with one group per structure).
    - `scale`: arrow length per unit sensitivity (default: longest arrow = mean spacing).

    **Returns:** the path written.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise InputError("plot needs matplotlib: pip install 'sensitiv[plot]'") from None
    datasets = _datasets(result)
    if not 0 <= structure < len(datasets):
        raise InputError(f"--structure {structure}: the result holds {len(datasets)} structure(s)")
    ds = datasets[structure][1]
    if FRAME in ds.dims:
        if not 0 <= frame < ds.sizes[FRAME]:
            raise InputError(f"--frame {frame}: the result holds {ds.sizes[FRAME]} frame(s)")
        ds = ds.isel({FRAME: frame})
    if COORDINATES not in ds:
        raise InputError("the result has no coordinates variable to draw the atoms at; is it a complete "
                         "sensitiv result?")
    labels = [str(v) for v in ds[PARAMETER].values]
    norms = np.sqrt((ds[DX_DTHETA] ** 2).sum((ATOM, SPATIAL))).values
    if parameter is None:
        parameter = labels[int(np.argmax(norms))]
    if parameter not in labels:
        import difflib

        close = difflib.get_close_matches(parameter, labels, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise InputError(f"--parameter {parameter!r}: not in the result{hint}; parameters: {', '.join(labels)}")
    x = ds[COORDINATES].values
    field = ds[DX_DTHETA].sel({PARAMETER: parameter}).values
    species = ds[SPECIES].values if SPECIES in ds else np.zeros(len(x))
    n, d = x.shape
    fig, (ax, bar) = plt.subplots(1, 2, figsize=(12, 5.5), gridspec_kw={"width_ratios": [1.3, 1]})
    longest = np.max(np.linalg.norm(field, axis=1)) or 1.0
    if scale is None:
        extent = np.ptp(x, axis=0).max() if n > 1 else 1.0
        scale = (extent / max(n, 1) ** (1 / max(d, 1))) / longest
    names = list(dict.fromkeys(map(str, species)))
    colors = plt.cm.tab10(np.arange(len(names)) % 10)
    for name, color in zip(names, colors):
        mask = np.array([str(s) == name for s in species])
        ax.scatter(x[mask, 0], x[mask, 1] if d > 1 else np.zeros(mask.sum()), s=max(8, 4000 / max(n, 1)),
                   color=color, alpha=0.55, label=name, edgecolors="none")
    ax.quiver(x[:, 0], x[:, 1] if d > 1 else np.zeros(n), field[:, 0] * scale,
              field[:, 1] * scale if d > 1 else np.zeros(n), angles="xy", scale_units="xy", scale=1,
              width=0.004, color="k")
    if CELL in ds and d >= 2:
        cell = ds[CELL].values
        corners = np.array([[0, 0], cell[0, :2], cell[0, :2] + cell[1, :2], cell[1, :2], [0, 0]])
        ax.plot(corners[:, 0], corners[:, 1], color="0.6", lw=0.8)
    ax.set_aspect("equal")
    units = ds[COORDINATES].attrs.get("units", "")
    ax.set_xlabel(f"x [{units}]")
    ax.set_ylabel(f"y [{units}]")
    view = " (x–y projection)" if d == 3 else ""
    ax.set_title(f"dx*/d{parameter}{view}; arrows × {scale:.3g}")
    ax.legend(loc="upper right", fontsize=8)
    bar.barh(range(len(labels)), norms, color="tab:blue")
    bar.set_yticks(range(len(labels)), labels, fontsize=8 if len(labels) < 30 else 5)
    bar.invert_yaxis()
    bar.set_xlabel("‖dx*/dθ‖ (per unit of θ)")
    bar.set_title("sensitivity magnitude per parameter")
    if np.all(norms > 0):
        bar.set_xscale("log")
    fig.tight_layout()
    folder = os.path.dirname(os.path.abspath(figure_path))
    if not os.path.isdir(folder):
        raise InputError(f"{figure_path}: folder {folder} does not exist")
    try:
        fig.savefig(figure_path, dpi=130)
    except (OSError, ValueError) as err:
        raise InputError(f"{figure_path}: cannot write the figure ({err})") from None
    finally:
        plt.close(fig)
    return figure_path
