"""`sensitiv plot`: a result drawn so that a scientist reads it right.

What a figure holds, and why:

- **the structure**, wrapped into its cell (the cell drawn), each atom coloured by the
  magnitude |∂x*_i/∂θ| of the chosen parameter's field (one colour scale, its units on the
  colour bar). In 2-D, particles are discs at their size (the diagonal `sigma[i,i]` of the
  model when θ holds it, else their contact distances) with periodic images clipped at the
  cell, and every particle carries its arrow. In 3-D, one projection does not show a
  crystal (atoms of different layers fall on the same column), so there are two views: an
  oblique projection with a depth cue (far atoms paler and smaller) with arrows only
  where they do not overlap, and a slice through the centre (one atomic layer) with the
  in-plane arrows;
- **a radial profile** around a centre (3-D, or when one is given): |∂x*_i/∂θ| and its
  radial component against the periodic distance from the centre. The default centre is
  where the response is: the periodic mean of the atoms that move most (for a vacancy,
  its site); a uniform response (a perfect crystal under strain) has no centre, and the
  panel shows the distribution of |∂x*_i/∂θ| instead;
- **importance bars**: one per parameter, on a linear scale from zero, of
  ‖θ·∂x*/∂θ‖ (`dx_dlogtheta`), the shift of all atoms per relative change of θ — in
  length units whatever θ's own units, so the bars compare (the number `sensitiv
  inspect` prints). Parameters at θ = 0 (a strain) have no relative scale; when all θ
  share one unit, the bars are ‖∂x*/∂θ‖ instead, labelled so;
- **a verdict**: an untrustworthy result is marked on the figure (a red frame and the
  first problems), not only in a log.

Every artist that carries data has a `gid` (`atoms`, `arrows`, `cell`, `centre`,
`radial_magnitude`, `radial_component`, `bars`, `verdict`), so tests and users can find
what was drawn.

**Example:**

```python
import sensitiv
fig = sensitiv.plot("eam.nc", "eam.png", parameter="radial_scale")
```
"""

from __future__ import annotations

import difflib
import os
import textwrap
from dataclasses import dataclass

import numpy as np

from .. import units as _units
from ..errors import InputError
from .dataset import (
    CELL,
    COORDINATES,
    DX_DLOGTHETA,
    DX_DTHETA,
    FRAME,
    PARAMETER,
    PARAMETER_LABEL,
    PARAMETER_NAME,
    PARAMETER_UNITS,
    PARAMETER_VALUE,
    PBC,
    PROBLEMS,
    SPECIES,
    TRUSTWORTHY,
    VERDICT,
    ATTR_LENGTH_UNITS,
    ATTR_TITLE,
)
from .output import open_result
from .report import result_groups

__all__ = ["plot", "plot_result", "figure_data", "FigureData"]

#: atoms whose |∂x*/∂θ| is at least this fraction of the largest define the centre
_CENTRE_FRACTION = 0.5
#: a response whose largest and smallest per-atom magnitudes differ by less than this ratio is uniform
_UNIFORM_RATIO = 1.5
#: a parameter whose ‖θ·∂x*/∂θ‖ is below this many atomic spacings does not move the atoms (round-off)
_STILL = 1e-9
#: arrows are drawn only for atoms moving at least this fraction of the largest (3-D views)
_ARROW_FLOOR = 0.05


@dataclass(frozen=True)
class FigureData:
    """What a figure of `sensitiv plot` draws, as numbers (one frame of one structure).

    **Arguments:**

    - `parameter`: the θ label whose field is drawn.
    - `positions`: `(atoms, dims)` relaxed positions wrapped into the cell.
    - `field`: `(atoms, dims)` ∂x*/∂θ of that parameter.
    - `magnitude`: `(atoms,)` |∂x*_i/∂θ|.
    - `cell`: `(dims, dims)` cell vectors as rows (`None` without a cell); `pbc` per axis.
    - `radii`: `(atoms,)` particle radii, and `radii_source` saying where they come from.
    - `centre`: the radial profile's centre (`None` when the response is uniform and none
      was given), `centre_source` describing it; `distance` and `radial` per atom (periodic
      distance to the centre and the outward component of ∂x*/∂θ; `None` without a centre).
    - `labels`, `importance`, `importance_label`: the bars.
    - `length_units`, `field_units` (of ∂x*/∂θ), `theta_units`: UDUNITS strings; `trustworthy`, `problems`, `title`.

    **Example:** `data = figure_data(ds, parameter="radial_scale"); data.importance`
    """

    parameter: str
    positions: np.ndarray
    field: np.ndarray
    magnitude: np.ndarray
    cell: np.ndarray | None
    pbc: np.ndarray
    species: list[str]
    radii: np.ndarray
    radii_source: str
    centre: np.ndarray | None
    centre_source: str
    distance: np.ndarray | None
    radial: np.ndarray | None
    labels: list[str]
    importance: np.ndarray
    importance_label: str
    length_units: str
    field_units: str
    theta_units: str
    trustworthy: bool | None
    problems: list[str]
    title: str


# -- geometry ------------------------------------------------------------------------------


def _fractional(x: np.ndarray, cell: np.ndarray) -> np.ndarray:
    return np.linalg.solve(cell.T, x.T).T


def _wrap(x: np.ndarray, cell: np.ndarray | None, pbc: np.ndarray) -> np.ndarray:
    """Positions folded into the cell along periodic axes."""
    if cell is None:
        return x
    frac = _fractional(x, cell)
    frac[:, pbc] = np.mod(frac[:, pbc], 1.0)
    frac[:, pbc] = np.where(frac[:, pbc] >= 1.0, 0.0, frac[:, pbc])  # -1e-17 % 1 == 1.0
    return frac @ cell


def _minimum_image(d: np.ndarray, cell: np.ndarray | None, pbc: np.ndarray) -> np.ndarray:
    """Displacements `d` (..., dims) to their nearest periodic image (exact for
    orthogonal cells, the usual approximation for skewed ones)."""
    if cell is None:
        return d
    frac = np.linalg.solve(cell.T, d.reshape(-1, d.shape[-1]).T).T
    frac[:, pbc] -= np.round(frac[:, pbc])
    return (frac @ cell).reshape(d.shape)


def _nearest_distances(x: np.ndarray, cell, pbc) -> np.ndarray:
    """Each atom's distance to its nearest neighbour (periodic), in blocks of rows."""
    n = len(x)
    nearest = np.full(n, np.inf)
    for start in range(0, n, 256):
        d = _minimum_image(x[start:start + 256, None, :] - x[None, :, :], cell, pbc)
        r = np.linalg.norm(d, axis=-1)
        r[np.arange(r.shape[0]), np.arange(start, start + r.shape[0])] = np.inf
        nearest[start:start + 256] = r.min(axis=1)
    return nearest


def _periodic_mean(x: np.ndarray, weights: np.ndarray, cell, pbc) -> np.ndarray:
    """The weighted mean position, each periodic axis averaged on the circle."""
    if cell is None:
        return np.average(x, axis=0, weights=weights)
    frac = _fractional(x, cell)
    mean = np.average(frac, axis=0, weights=weights)
    for k in np.flatnonzero(pbc):
        angle = np.angle(np.sum(weights * np.exp(2j * np.pi * frac[:, k])))
        mean[k] = np.mod(angle / (2 * np.pi), 1.0)
    return mean @ cell


# -- what is drawn -------------------------------------------------------------------------


def _one_frame(result, structure: int, frame: int):
    if isinstance(result, (str, os.PathLike)):
        result = open_result(os.fspath(result))
    groups = result_groups(result)
    if not 0 <= structure < len(groups):
        raise InputError(f"--structure {structure}: the result holds {len(groups)} structure(s)")
    path, ds = groups[structure]
    if path and ATTR_TITLE not in ds.attrs:  # a group of a result: the title is the file's
        ds = ds.assign_attrs({ATTR_TITLE: f"{result.attrs.get(ATTR_TITLE, 'sensitiv result')} [{path}]"})
    if FRAME in ds.dims:
        if not 0 <= frame < ds.sizes[FRAME]:
            raise InputError(f"--frame {frame}: the result holds {ds.sizes[FRAME]} frame(s)")
        ds = ds.isel({FRAME: frame})
    return ds


def _labels(ds) -> list[str]:
    coord = PARAMETER_LABEL if PARAMETER_LABEL in ds.coords else PARAMETER
    return [str(v) for v in ds[coord].values]


def _radii(ds, species: list[str], labels: list[str], nearest: np.ndarray) -> tuple[np.ndarray, str]:
    """Particle radii: half the model's `sigma[i,i]` per species when θ holds them (the
    diameters of soft spheres and Lennard-Jones particles), else half of each species'
    median nearest-neighbour distance (the contact size)."""
    names = list(dict.fromkeys(species))
    index = np.array([names.index(s) for s in species])
    values = np.atleast_1d(ds[PARAMETER_VALUE].values) if PARAMETER_VALUE in ds else None
    kinds = [str(v) for v in ds[PARAMETER_NAME].values] if PARAMETER_NAME in ds else [
        label.split("[")[0] for label in labels]
    sigma = {}
    if values is not None:
        for k, (label, kind) in enumerate(zip(labels, kinds)):
            if kind != "sigma":
                continue
            inside = label[len(kind):].strip("[]").split(",") if "[" in label else []
            if not inside and len(names) == 1:
                sigma[0] = values[k]
            elif len(inside) == 2 and inside[0] == inside[1] and inside[0].strip().isdigit():
                sigma[int(inside[0])] = values[k]
    if len(sigma) == len(names) and all(v > 0 for v in sigma.values()):
        return np.array([sigma[i] / 2 for i in index]), "discs at the model's diameters sigma[i,i]"
    radii = np.array([np.median(nearest[index == i]) / 2 for i in range(len(names))])
    return radii[index], "discs at half the nearest-neighbour distance"


def _centre(x, magnitude, cell, pbc, centre) -> tuple[np.ndarray | None, str]:
    if centre is not None:
        if isinstance(centre, str) and centre.startswith("atom"):
            k = int(centre.split("=", 1)[-1].split(":", 1)[-1])
            if not 0 <= k < len(x):
                raise InputError(f"--centre {centre}: the structure has atoms 0 to {len(x) - 1}")
            return x[k], f"atom {k}"
        point = np.asarray(centre, dtype=float)
        if point.shape != (x.shape[1],):
            raise InputError(f"--centre: give {x.shape[1]} coordinates (or atom=N), got {len(point)}")
        return point, "the given centre"
    top = float(magnitude.max()) if magnitude.size else 0.0
    bottom = float(magnitude.min()) if magnitude.size else 0.0
    if top == 0.0 or top <= _UNIFORM_RATIO * bottom:
        return None, "uniform response: no centre"
    moving = magnitude >= _CENTRE_FRACTION * top
    point = _periodic_mean(x[moving], magnitude[moving], cell, pbc)
    return point, f"centre of the {int(moving.sum())} atoms moving most"


def _importance(ds, labels, values, length_units) -> tuple[np.ndarray, str]:
    jac = np.asarray(ds[DX_DTHETA].transpose(..., PARAMETER).values, dtype=float)
    jac = jac.reshape(-1, len(labels))
    units = [str(u) for u in ds[PARAMETER_UNITS].values] if PARAMETER_UNITS in ds else []
    length = _units.describe(length_units) or "1"
    if values is not None and np.all(values != 0):
        if DX_DLOGTHETA in ds:
            log = np.asarray(ds[DX_DLOGTHETA].transpose(..., PARAMETER).values, dtype=float).reshape(-1, len(labels))
        else:
            log = jac * values
        return np.linalg.norm(log, axis=0), f"‖θ·∂x*/∂θ‖ [{length}]: all atoms' shift per relative change of θ"
    if units and len(set(units)) == 1:
        per = _units.describe(_units.ratio(length_units, units[0])) or "1"
        return np.linalg.norm(jac, axis=0), f"‖∂x*/∂θ‖ [{per}] (θ = 0 has no relative scale)"
    norms = np.linalg.norm(jac * (values if values is not None else 1.0), axis=0)
    return norms, f"‖θ·∂x*/∂θ‖ [{length}] (θ = 0: no relative scale, drawn as 0)"


def figure_data(result, parameter: str | None = None, frame: int = 0, structure: int = 0,
                centre=None) -> FigureData:
    """The numbers a `sensitiv plot` figure draws, for one frame of one structure.

    **Arguments:**

    - `result`: a path, or a result opened by `sensitiv.io.open_result`.
    - `parameter`: the θ label whose field is drawn (default: the most important, by
      ‖θ·∂x*/∂θ‖).
    - `frame`, `structure`: which frame, which group.
    - `centre`: the radial profile's centre: coordinates, or `"atom=N"` (default: found).

    **Returns:** a `FigureData`.

    **Example:** `figure_data("eam.nc").centre`
    """
    ds = _one_frame(result, structure, frame)
    if COORDINATES not in ds:
        raise InputError("the result has no coordinates variable to draw the atoms at; is it a complete "
                         "sensitiv result?")
    labels = _labels(ds)
    x = np.asarray(ds[COORDINATES].values, dtype=float)
    d = x.shape[1]
    cell = np.asarray(ds[CELL].values, dtype=float) if CELL in ds else None
    if cell is not None and (cell.shape != (d, d) or abs(np.linalg.det(cell)) < 1e-12):
        cell = None
    pbc = np.asarray(ds[PBC].values, dtype=bool) if PBC in ds else np.full(d, cell is not None)
    pbc = pbc & (cell is not None)
    length_units = str(ds[COORDINATES].attrs.get("units", ds.attrs.get(ATTR_LENGTH_UNITS, "")))
    values = np.atleast_1d(ds[PARAMETER_VALUE].values).astype(float) if PARAMETER_VALUE in ds else None
    importance, importance_label = _importance(ds, labels, values, length_units)
    if parameter is None:
        parameter = labels[int(np.argmax(importance))]
    if parameter not in labels:
        close = difflib.get_close_matches(parameter, labels, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise InputError(f"--parameter {parameter!r}: not in the result{hint}; parameters: {', '.join(labels)}")
    k = labels.index(parameter)
    field = np.asarray(ds[DX_DTHETA].isel({PARAMETER: k}).transpose(..., *ds[COORDINATES].dims[-2:]).values, float)
    magnitude = np.linalg.norm(field, axis=1)
    wrapped = _wrap(x, cell, pbc)
    species = [str(s) for s in ds[SPECIES].values] if SPECIES in ds else ["atom"] * len(x)
    nearest = _nearest_distances(wrapped, cell, pbc) if len(x) > 1 else np.ones(1)
    radii, radii_source = _radii(ds, species, labels, nearest)
    point, centre_source = _centre(wrapped, magnitude, cell, pbc, centre)
    distance = radial = None
    if point is not None:
        offset = _minimum_image(wrapped - point, cell, pbc)
        distance = np.linalg.norm(offset, axis=1)
        unit = np.divide(offset, distance[:, None], out=np.zeros_like(offset), where=distance[:, None] > 0)
        radial = np.sum(field * unit, axis=1)
    theta_units = str(ds[PARAMETER_UNITS].values[k]) if PARAMETER_UNITS in ds else "1"
    trust = None
    if TRUSTWORTHY in ds:
        trust = bool(int(np.asarray(ds[TRUSTWORTHY].values).ravel()[0]) == 1)
    problems = [str(p) for p in np.ravel(ds[PROBLEMS].values) if str(p)] if PROBLEMS in ds else []
    return FigureData(
        parameter=parameter, positions=wrapped, field=field, magnitude=magnitude, cell=cell, pbc=pbc,
        species=species, radii=radii, radii_source=radii_source, centre=point, centre_source=centre_source,
        distance=distance, radial=radial, labels=labels, importance=importance,
        importance_label=importance_label, length_units=length_units,
        field_units=_units.ratio(length_units, theta_units), theta_units=theta_units, trustworthy=trust, problems=problems,
        title=str(ds.attrs.get(ATTR_TITLE, "")) + (f" ({VERDICT}: {ds[VERDICT].values.ravel()[0]})"
                                                   if VERDICT in ds else ""),
    )


# -- drawing -------------------------------------------------------------------------------


def _unit_text(units: str) -> str:
    shown = _units.describe(units)
    return shown if shown else "dimensionless"


def _field_label(data: FigureData) -> str:
    return f"|∂x*/∂{data.parameter}| [{_per_text(data.length_units, data.theta_units)}]"


def _per_text(length_units: str, theta_units: str) -> str:
    """The units of ∂x*/∂θ as a person reads them: `Å`, `Å/eV`, and `σ per σ` when they cancel."""
    ratio = _units.ratio(length_units, theta_units)
    if ratio == "1" and length_units not in ("1", ""):
        reduced = " (reduced)" if _units.is_reduced(length_units) else ""
        strip = lambda u: _unit_text(u).replace(" (reduced)", "")  # noqa: E731
        return f"{strip(length_units)} per {strip(theta_units)}{reduced}"
    return _unit_text(ratio)


def _arrow_scale(data: FigureData, scale: float | None, spacing: float) -> float:
    longest = float(data.magnitude.max()) if data.magnitude.size else 0.0
    if scale is not None:
        return scale
    return spacing / longest if longest > 0 else 1.0


def _cell_outline(ax, cell, dims=(0, 1), project=None):
    corners2 = np.array([[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]], dtype=float)
    if cell.shape[0] == 2:
        pts = corners2 @ cell
        ax.plot(pts[:, 0], pts[:, 1], color="0.35", lw=1.0, gid="cell")
        return
    edges = []
    for a in range(3):
        for b in (0, 1):
            for c in (0, 1):
                start = np.zeros(3)
                others = [i for i in range(3) if i != a]
                start[others[0]], start[others[1]] = b, c
                end = start.copy()
                end[a] = 1
                edges.append((start @ cell, end @ cell))
    for start, end in edges:
        seg = np.array([start, end])
        seg = project(seg) if project is not None else seg[:, list(dims)]
        ax.plot(seg[:, 0], seg[:, 1], color="0.35", lw=0.8, gid="cell")


def _discs(ax, xy, radii, colours, *, clip=None, gid="atoms", alpha=None, zorder=2):
    from matplotlib.collections import EllipseCollection  # lazy: see plot()

    discs = EllipseCollection(2 * radii, 2 * radii, np.zeros(len(radii)), units="xy", offsets=xy,
                              offset_transform=ax.transData, facecolors=colours, edgecolors="0.25",
                              linewidths=0.4, alpha=alpha, zorder=zorder)
    discs.set_gid(gid)
    ax.add_collection(discs)
    if clip is not None:
        discs.set_clip_path(clip)
    return discs


def _periodic_images_2d(data: FigureData):
    """(indices, positions) of the atoms and of the images of discs crossing the cell's edges."""
    index, points = [np.arange(len(data.positions))], [data.positions]
    if data.cell is None:
        return np.concatenate(index), np.concatenate(points)
    frac = _fractional(data.positions, data.cell)
    reach = data.radii[:, None] / np.linalg.norm(data.cell, axis=1)[None, :]
    for shift in ((1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (1, -1), (-1, 1), (-1, -1)):
        s = np.array(shift, dtype=float)
        if np.any((s != 0) & ~data.pbc):
            continue
        moved = frac + s
        inside = np.all((moved + reach > 0) & (moved - reach < 1), axis=1)
        index.append(np.flatnonzero(inside))
        points.append(moved[inside] @ data.cell)
    return np.concatenate(index), np.concatenate(points)


def _draw_2d(fig, ax, data: FigureData, scale, cmap, norm):
    from matplotlib.patches import Polygon  # lazy: see plot()

    index, points = _periodic_images_2d(data)
    clip = None
    if data.cell is not None:
        clip = Polygon(np.array([[0, 0], [1, 0], [1, 1], [0, 1]], float) @ data.cell, closed=True,
                       transform=ax.transData, facecolor="none", edgecolor="none")
        ax.add_patch(clip)
        _cell_outline(ax, data.cell)
    _discs(ax, points, data.radii[index], cmap(norm(data.magnitude[index])), clip=clip)
    scale = _arrow_scale(data, scale, 2.0 * float(np.min(data.radii)))
    arrows = ax.quiver(data.positions[:, 0], data.positions[:, 1], data.field[:, 0] * scale,
                       data.field[:, 1] * scale, angles="xy", scale_units="xy", scale=1, width=0.0035,
                       color="k", zorder=3)
    arrows.set_gid("arrows")
    _arrow_key(ax, arrows, data, scale)
    units = _unit_text(data.length_units)
    ax.set_xlabel(f"x [{units}]")
    ax.set_ylabel(f"y [{units}]")
    ax.set_aspect("equal")
    ax.autoscale_view()
    ax.set_title(f"∂x*/∂{data.parameter} on the relaxed structure, wrapped into the cell\n"
                 f"({data.radii_source}; colour = magnitude)", fontsize=10, pad=16)


def _arrow_key(ax, arrows, data: FigureData, scale: float):
    longest = float(data.magnitude.max()) if data.magnitude.size else 0.0
    if longest <= 0:
        return
    key = float(f"{0.5 * longest:.1g}")
    ax.quiverkey(arrows, 0.78, 1.02, key * scale, f"{key:g} {_per_text(data.length_units, data.theta_units)}",
                 labelpos="E", coordinates="axes", fontproperties={"size": 8}).set_gid("arrow_key")


@dataclass(frozen=True)
class _Display:
    """The atoms a 3-D view shows: wrapped into the cell centred on the centre (so a defect
    sits in the middle, not split over the corners), tiled when the cell is small."""

    positions: np.ndarray
    field: np.ndarray
    magnitude: np.ndarray
    origin: np.ndarray          # the drawn cell's corner
    cell: np.ndarray | None     # the drawn (tiled) cell
    repeats: tuple[int, ...]


def _display(data: FigureData, spacing: float) -> _Display:
    if data.cell is None:
        return _Display(data.positions, data.field, data.magnitude, np.zeros(3), None, (1, 1, 1))
    middle = data.centre if data.centre is not None else 0.5 * data.cell.sum(axis=0)
    lengths = np.linalg.norm(data.cell, axis=1)
    repeats = tuple(int(max(1, np.ceil(3.5 * spacing / lengths[k]))) if data.pbc[k] else 1 for k in range(3))
    cell = data.cell * np.array(repeats)[:, None]
    origin = middle - 0.5 * cell.sum(axis=0)
    frac = _fractional(data.positions - origin, data.cell)          # in units of the original cell
    frac[:, data.pbc] = np.mod(frac[:, data.pbc], 1.0)
    shifts = np.array(np.meshgrid(*[np.arange(r) for r in repeats], indexing="ij")).reshape(3, -1).T
    tiled = ((frac[None] + shifts[:, None]).reshape(-1, 3)) @ data.cell + origin
    count = len(shifts)
    return _Display(tiled, np.tile(data.field, (count, 1)), np.tile(data.magnitude, count), origin, cell, repeats)


def _repeat_text(display: _Display) -> str:
    return "" if max(display.repeats) == 1 else f"; cell repeated {'×'.join(map(str, display.repeats))}"


def _view_rotation(elevation: float = 22.0, azimuth: float = -58.0) -> np.ndarray:
    """Rows: the screen's right, up and towards-the-viewer directions (an oblique view that
    puts no lattice row of a cubic crystal along the line of sight)."""
    a, e = np.radians(azimuth), np.radians(elevation)
    right = np.array([np.cos(a), np.sin(a), 0.0])
    towards = np.array([-np.sin(a) * np.cos(e), np.cos(a) * np.cos(e), np.sin(e)])
    up = np.cross(towards, right)
    return np.array([right, up, towards])


def _draw_projection(ax, data: FigureData, scale, cmap, norm, spacing):
    import matplotlib.colors as mcolors  # lazy: see plot()

    shown = _display(data, spacing)
    rotation = _view_rotation()
    middle = shown.origin + 0.5 * shown.cell.sum(axis=0) if shown.cell is not None else shown.positions.mean(axis=0)
    screen = (shown.positions - middle) @ rotation.T
    depth = screen[:, 2]
    near = (depth - depth.min()) / (np.ptp(depth) or 1.0)        # 0 far, 1 near
    order = np.argsort(depth)                                     # painter's order: far first
    colours = cmap(norm(shown.magnitude))
    fade = (0.55 * (1 - near))[:, None]                           # the depth cue: far atoms paler
    colours = (1 - fade) * colours + fade * np.ones_like(colours)
    # atoms that barely move are see-through, so the ones that respond show from inside the crystal
    colours[:, 3] = 0.3 + 0.7 * np.sqrt(shown.magnitude / (shown.magnitude.max() or 1.0))
    radii = 0.25 * spacing * (0.75 + 0.25 * near)
    _discs(ax, screen[order, :2], radii[order], colours[order])
    if shown.cell is not None:
        _cell_outline(ax, shown.cell, project=lambda p: ((p + shown.origin - middle) @ rotation.T)[:, :2])
    scale = _arrow_scale(data, scale, 0.6 * spacing)
    tips = shown.field @ rotation.T * scale
    chosen = _non_overlapping(screen[:, :2], shown.magnitude, tips, spacing)
    if chosen.size:
        arrows = ax.quiver(screen[chosen, 0], screen[chosen, 1], tips[chosen, 0], tips[chosen, 1], angles="xy",
                           scale_units="xy", scale=1, width=0.004, zorder=4,
                           color=[mcolors.to_rgba("k", 0.45 + 0.55 * near[i]) for i in chosen])
        arrows.set_gid("arrows")
        _arrow_key(ax, arrows, data, scale)
    if data.centre is not None:
        c = (data.centre - middle) @ rotation.T
        ax.plot([c[0]], [c[1]], marker="x", color="tab:blue", ms=11, mew=3, zorder=5, gid="centre")
    _axis_triad(ax, rotation)
    ax.set_aspect("equal")
    ax.autoscale_view()
    ax.set_xticks([])
    ax.set_yticks([])
    mark = "; × = centre" if data.centre is not None else ""
    ax.set_title(f"3-D view: far atoms paler and smaller, still ones see-through{_repeat_text(shown)}\n"
                 f"arrows on the {chosen.size} atoms moving most that do not overlap{mark}", fontsize=10, pad=16)


def _non_overlapping(xy, magnitude, tips, spacing) -> np.ndarray:
    """Atoms, largest response first, whose arrows (base to tip, on the screen) keep clear
    of every arrow already chosen by at least a quarter of the atomic spacing."""
    floor = _ARROW_FLOOR * (magnitude.max() if magnitude.size else 0.0)
    chosen: list[int] = []
    for i in np.argsort(-magnitude, kind="stable"):
        if magnitude[i] <= floor or magnitude[i] == 0:
            break
        a0, a1 = xy[i], xy[i] + tips[i, :2]
        if all(_segment_distance(a0, a1, xy[j], xy[j] + tips[j, :2]) > 0.25 * spacing for j in chosen):
            chosen.append(int(i))
    return np.array(chosen, dtype=int)


def _segment_distance(p0, p1, q0, q1) -> float:
    """Shortest distance between two 2-D segments (sampled: exact enough for a layout test)."""
    t = np.linspace(0.0, 1.0, 9)
    p = p0 + t[:, None] * (p1 - p0)
    q = q0 + t[:, None] * (q1 - q0)
    return float(np.min(np.linalg.norm(p[:, None, :] - q[None, :, :], axis=-1)))


def _axis_triad(ax, rotation):
    """Small x, y, z arrows in the lower left corner, as the view shows them."""
    origin = np.array([0.08, 0.08])
    for k, name in enumerate("xyz"):
        v = rotation[:2, k] * 0.07
        ax.annotate("", xy=origin + v, xytext=origin, xycoords="axes fraction",
                    arrowprops={"arrowstyle": "->", "color": "0.3", "lw": 1.0})
        ax.annotate(name, xy=origin + 1.35 * v, xycoords="axes fraction", fontsize=8, color="0.3",
                    ha="center", va="center")


def _draw_slice(ax, data: FigureData, scale, cmap, norm, spacing):
    """The atomic layer through the centre (normal z), in-plane arrows."""
    shown = _display(data, spacing)
    point = data.centre if data.centre is not None else shown.origin + 0.5 * shown.cell.sum(axis=0) \
        if shown.cell is not None else data.positions.mean(axis=0)
    half = 0.5 * spacing
    layer = np.abs(shown.positions[:, 2] - point[2]) < half
    xy = shown.positions[layer, :2]
    units = _unit_text(data.length_units)
    if shown.cell is not None:
        corner = shown.origin[:2]
        box = corner + np.array([[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]], float) @ shown.cell[:2, :2]
        ax.plot(box[:, 0], box[:, 1], color="0.35", lw=1.0, gid="cell")
    _discs(ax, xy, np.full(layer.sum(), 0.5 * spacing), cmap(norm(shown.magnitude[layer])), gid="slice_atoms")
    scale = _arrow_scale(data, scale, 0.9 * spacing)
    arrows = ax.quiver(xy[:, 0], xy[:, 1], shown.field[layer, 0] * scale, shown.field[layer, 1] * scale,
                       angles="xy", scale_units="xy", scale=1, width=0.004, color="k", zorder=3)
    arrows.set_gid("slice_arrows")
    _arrow_key(ax, arrows, data, scale)
    if data.centre is not None:
        ax.plot([data.centre[0]], [data.centre[1]], marker="x", color="tab:blue", ms=11, mew=3, zorder=5)
    ax.set_aspect("equal")
    ax.autoscale_view()
    ax.set_xlabel(f"x [{units}]")
    ax.set_ylabel(f"y [{units}]")
    z = 0.0 if abs(point[2]) < 1e-9 * spacing else point[2]
    ax.set_title(f"slice z = {z:.3g} ± {half:.2g} {units}: {int(layer.sum())} atoms{_repeat_text(shown)}\n"
                 "in-plane arrows (the layer through the centre)", fontsize=10, pad=16)


def _draw_radial(ax, data: FigureData, spacing: float = 1.0):
    units = _unit_text(data.length_units)
    ylabel = f"∂x*/∂{data.parameter} [{_per_text(data.length_units, data.theta_units)}]"
    if data.distance is None:
        # ‖θ·∂x*/∂θ‖ (or ‖∂x*/∂θ‖ at θ = 0) in lengths: below 1e-9 atomic spacings is round-off
        if data.importance[data.labels.index(data.parameter)] <= _STILL * spacing:
            ax.text(0.5, 0.5, f"no atom moves: ∂x*/∂{data.parameter} = 0 (to round-off)", ha="center",
                    va="center", transform=ax.transAxes, fontsize=11, gid="no_response")
            ax.set_axis_off()
            return
        atoms = np.arange(len(data.field))
        values = _round_off_zero(data.field)
        for k, (name, marker) in enumerate(zip("xyz", "o^s")):
            ax.scatter(atoms, values[:, k], s=22, marker=marker, label=f"{name} component", gid=f"component_{name}")
        ax.axhline(0.0, color="0.6", lw=0.8)
        ax.set_xlabel("atom")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=8)
        ax.set_title("every atom moves by the same amount: no centre for a radial profile\n"
                     "(per-atom components instead; --centre to choose one)", fontsize=10)
        return
    ax.axhline(0.0, color="0.6", lw=0.8)
    ax.scatter(data.distance, data.magnitude, s=18, color="tab:blue", label="|∂x*ᵢ/∂θ|", gid="radial_magnitude")
    ax.scatter(data.distance, data.radial, s=18, marker="x", color="tab:red",
               label="radial component (+ outward)", gid="radial_component")
    ax.set_xlabel(f"distance from the centre [{units}]")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8, loc="upper right")
    ax.set_title(f"radial profile around the {data.centre_source}", fontsize=10)


def _round_off_zero(values: np.ndarray, relative: float = 1e-9) -> np.ndarray:
    """Entries below `relative` × the largest magnitude shown as 0 (round-off, not signal)."""
    values = np.asarray(values, dtype=float)
    top = np.max(np.abs(values)) if values.size else 0.0
    return np.where(np.abs(values) <= relative * top, 0.0, values) + 0.0


def _draw_bars(ax, data: FigureData):
    """One bar per parameter, largest first, on a linear scale from zero."""
    values = _round_off_zero(data.importance)
    order = np.argsort(-values, kind="stable")
    n = len(order)
    colours = ["tab:orange" if data.labels[k] == data.parameter else "tab:blue" for k in order]
    bars = ax.barh(np.arange(n), values[order], color=colours, gid="bars")
    ax.set_yticks(np.arange(n), [data.labels[k] for k in order], fontsize=8 if n < 30 else 5)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.22 * (float(np.max(values)) or 1.0))
    for rect, value in zip(bars, values[order]):
        ax.text(rect.get_width(), rect.get_y() + rect.get_height() / 2, f" {value:.3g}", va="center", fontsize=8)
    ax.set_xlabel("\n".join(textwrap.wrap(data.importance_label, 60)), fontsize=9)
    ax.set_title("importance ranking, linear scale (orange: drawn)", fontsize=10)


def _mark_verdict(fig, data: FigureData):
    if data.trustworthy is False:
        from matplotlib.patches import Rectangle  # lazy: see plot()

        fig.patches.append(Rectangle((0.002, 0.002), 0.996, 0.996, transform=fig.transFigure, fill=False,
                                     edgecolor="red", linewidth=5, gid="verdict_frame"))
        problems = "; ".join(data.problems[:2]) or "see sensitiv inspect"
        text = "NOT TRUSTWORTHY: " + "\n".join(textwrap.wrap(problems, 140)[:3])
        fig.supxlabel(text, color="red", fontsize=10, fontweight="bold").set_gid("verdict")
    fig.suptitle("\n".join(textwrap.wrap(data.title, 130)[:2]), fontsize=11)


def plot(result, path: str | os.PathLike | None = None, *, parameter: str | None = None, frame: int = 0,
         structure: int = 0, centre=None, scale: float | None = None):
    """Draw a result: the field of one parameter on the structure, a radial profile, the
    importance of every parameter, and the verdict (the figure of `sensitiv plot`).

    **Arguments:**

    - `result`: a path, or a result opened by `sensitiv.io.open_result`.
    - `path`: the image to write (`.png`, `.pdf`, `.svg`); `None` writes nothing.
    - `parameter`: the θ label whose field is drawn (default: the most important).
    - `frame`, `structure`: which frame, which group.
    - `centre`: the radial profile's centre: coordinates in the result's length units, or
      `"atom=N"` (default: where the response is; 2-D figures draw a profile only when
      given one).
    - `scale`: arrow length per unit of ∂x*/∂θ (default: the longest arrow spans about one
      atomic spacing).

    **Returns:** the `matplotlib.figure.Figure`.

    **Raises:** `InputError` for a parameter, frame, structure or centre the result does not hold.

    **Example:**

    ```python
    fig = sensitiv.plot("softspheres.nc", "softspheres.png")
    ```
    """
    data = figure_data(result, parameter, frame, structure, centre)
    if path is not None:
        folder = os.path.dirname(os.path.abspath(os.fspath(path)))
        if not os.path.isdir(folder):
            raise InputError(f"{path}: folder {folder} does not exist")
    try:  # lazy: matplotlib (~0.5 s) is the optional extra sensitiv[plot], needed by this command only
        from matplotlib import colormaps, colors as mcolors
        from matplotlib.figure import Figure  # a Figure without pyplot: no GUI backend, no global state
    except ImportError:
        raise InputError("plot needs matplotlib: pip install 'sensitiv[plot]'") from None
    cmap = colormaps["YlOrRd"]
    norm = mcolors.Normalize(0.0, float(data.magnitude.max()) or 1.0)
    dims = data.positions.shape[1]
    spacing = float(np.median(_nearest_distances(data.positions, data.cell, data.pbc))) if len(data.positions) > 1 \
        else 1.0
    if dims == 3:
        fig = Figure(figsize=(14, 12), layout="constrained")
        (view, cut), (radial, bars) = fig.subplots(2, 2, gridspec_kw={"width_ratios": [1.15, 1]})
        _draw_projection(view, data, scale, cmap, norm, spacing)
        _draw_slice(cut, data, scale, cmap, norm, spacing)
        _draw_radial(radial, data, spacing)
        owner = [view, cut]
    else:
        if dims != 2:
            raise InputError(f"plot draws 2-D and 3-D structures; this one has {dims} dimension(s)")
        with_profile = centre is not None
        fig = Figure(figsize=(18 if with_profile else 14, 7), layout="constrained")
        axes = fig.subplots(1, 3 if with_profile else 2,
                            gridspec_kw={"width_ratios": [1.3, 1, 0.8] if with_profile else [1.3, 1]})
        view, bars = axes[0], axes[-1]
        _draw_2d(fig, view, data, scale, cmap, norm)
        if with_profile:
            _draw_radial(axes[1], data, spacing)
        owner = [view]
    _draw_bars(bars, data)
    from matplotlib.cm import ScalarMappable  # lazy: see above

    bar = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=owner, shrink=0.8, pad=0.01)
    bar.set_label(_field_label(data))
    _mark_verdict(fig, data)
    if path is not None:
        try:
            fig.savefig(os.fspath(path), dpi=110)
        except (OSError, ValueError) as err:
            raise InputError(f"{path}: cannot write the figure ({err})") from None
    return fig


def plot_result(result, figure_path: str, parameter: str | None = None, frame: int = 0,
                structure: int = 0, scale: float | None = None, centre=None) -> str:
    """`plot` for the command line: write the figure, return its path.

    **Arguments:** as `plot` (`figure_path` is required).

    **Returns:** the path written.
    """
    plot(result, figure_path, parameter=parameter, frame=frame, structure=structure, centre=centre, scale=scale)
    return figure_path
