"""Human-readable views of a result: the closing summary of `analyze`, `inspect`, `plot`."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import InputError

__all__ = ["analysis_summary", "inspect_text", "plot_result"]


def _fmt(x: float) -> str:
    return "nan" if x is None or not np.isfinite(x) else f"{x:.3e}"


def analysis_summary(path: str, analyses: Sequence, timings: Mapping[str, float]) -> str:
    """The closing summary `sensitiv analyze` prints: residuals, verdict, strategy, timings, top sensitivities."""
    lines = [f"wrote {path}"]
    for a in analyses[:10]:
        s = a.summary
        head = f"{s['source']}: {s['n_atoms']} atoms" if len(analyses) > 1 else f"structure: {s['source']}, {s['n_atoms']} atoms"
        lines.append(head)
        solver = s["solver"]
        lines.append(
            f"  equilibrium: {solver['iterations']} steps, solver residual {_fmt(solver['residual'])}, "
            f"max|F| {_fmt(s['stationarity_residual'])}"
        )
        lines.append(
            f"  hessian: {s['verdict']}, smallest eigenvalue {_fmt(s['smallest_eigenvalue'])}, "
            f"null space {s['null_space_dimension']}"
        )
        lines.append(
            f"  jacobian: {s['strategy']}, max linear residual {_fmt(s['linear_residual_max'])}, "
            f"error estimate {_fmt(s['error_estimate'])}"
        )
        top = ", ".join(f"{label} {norm:.3g}" for label, norm, _ in s["largest"])
        lines.append(f"  largest ‖dx*/dθ‖: {top}")
        for problem in s["problems"]:
            lines.append(f"  WARNING: {problem}")
    if len(analyses) > 10:
        rest = analyses[10:]
        bad = sum(not a.trustworthy for a in rest)
        lines.append(f"... and {len(rest)} more structures ({bad} untrustworthy)")
    order = ["read", "model", "minimization", "jacobian", "observables", "write", "total"]
    shown = [k for k in order if k in timings] + [k for k in timings if k not in order]
    lines.append("timings: " + ", ".join(f"{k} {timings[k]:.2f} s" for k in shown))
    n_bad = sum(not a.trustworthy for a in analyses)
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
    import xarray as xr

    attrs = result.attrs
    lines = [f"{path}: {attrs.get('title', 'sensitiv result')}"]
    lines.append(f"  source: {attrs.get('source', '?')}")
    history = str(attrs.get("history", "")).splitlines()
    if history:
        lines.append(f"  history: {history[-1]}")
    for group, ds in _datasets(result):
        prefix = f"  [{group}] " if group else "  "
        frames = ds.sizes.get("frame")
        lines.append(
            f"{prefix}{ds.sizes['atom']} atoms × {ds.sizes['spatial']} dims"
            + (f" × {frames} frames" if frames else "")
            + f", {ds.sizes['parameter']} parameters"
        )
        units = ds["parameter_units"].values if "parameter_units" in ds else [""] * ds.sizes["parameter"]
        jac = ds["dx_dtheta"]
        norms = np.sqrt((jac**2).sum(("atom", "spatial")))
        if frames:
            norms = norms.mean("frame")
        values = ds["parameter_value"]
        if "frame" in values.dims:
            values = values.isel(frame=0)
        for label, value, unit, norm in zip(ds["parameter"].values, values.values, units, norms.values):
            lines.append(f"{prefix}  θ {label} = {value:.6g} [{unit}]  ‖dx*/dθ‖ = {norm:.4g}")
        for name in ("verdict", "smallest_eigenvalue", "stationarity_residual", "jacobian_error_estimate",
                     "null_space_dimension", "jacobian_strategy", "trustworthy"):
            if name in ds:
                v = ds[name].values
                text = ", ".join(map(str, np.ravel(v)[:8])) + (" …" if np.size(v) > 8 else "")
                lines.append(f"{prefix}  {name}: {text}")
        if "linear_residual" in ds:
            lines.append(f"{prefix}  max linear residual: {float(ds['linear_residual'].max()):.3e}")
        observables = [v for v in ds.data_vars if v.startswith("d") and v.endswith("_dtheta") and v not in ("dx_dtheta",)]
        if observables:
            lines.append(f"{prefix}  observable derivatives: {', '.join(observables)}")
        for name in ("elastic_constants",):
            if name in ds:
                c = ds[name]
                if "frame" in c.dims:
                    c = c.isel(frame=0)
                lines.append(f"{prefix}  {name} [{c.attrs.get('units', '')}] (Voigt):")
                for row in np.atleast_2d(c.values):
                    lines.append(f"{prefix}    " + " ".join(f"{x:10.4g}" for x in row))
        if "problems" in ds:
            problems = [p for p in np.ravel(ds["problems"].values) if str(p)]
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
    if "frame" in ds.dims:
        if not 0 <= frame < ds.sizes["frame"]:
            raise InputError(f"--frame {frame}: the result holds {ds.sizes['frame']} frame(s)")
        ds = ds.isel(frame=frame)
    labels = [str(v) for v in ds["parameter"].values]
    norms = np.sqrt((ds["dx_dtheta"] ** 2).sum(("atom", "spatial"))).values
    if parameter is None:
        parameter = labels[int(np.argmax(norms))]
    if parameter not in labels:
        import difflib

        close = difflib.get_close_matches(parameter, labels, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise InputError(f"--parameter {parameter!r}: not in the result{hint}; parameters: {', '.join(labels)}")
    x = ds["coordinates"].values
    field = ds["dx_dtheta"].sel(parameter=parameter).values
    species = ds["species"].values if "species" in ds else np.zeros(len(x))
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
    if "cell" in ds and d >= 2:
        cell = ds["cell"].values
        corners = np.array([[0, 0], cell[0, :2], cell[0, :2] + cell[1, :2], cell[1, :2], [0, 0]])
        ax.plot(corners[:, 0], corners[:, 1], color="0.6", lw=0.8)
    ax.set_aspect("equal")
    units = ds["coordinates"].attrs.get("units", "")
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
