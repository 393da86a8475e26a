"""`sensitiv plot` / `sensitiv.plot` on real results: what the figure draws is the data.

Two analyses, each at a size CI affords: a 3-D LJ argon vacancy (31 atoms, relaxed by FIRE,
trustworthy) and a 2-D soft-sphere packing taken as it comes out of the generator
(`solver: none`: a saddle, so the result is untrustworthy). The checks read the figure's
artists (found by their `gid`) and compare them with the result's numbers: the centre of the
radial profile sits on the vacancy site, the bars are ‖θ·dx*/dθ‖ on a linear axis from
zero, discs have the model's diameters, arrows do not overlap in the 3-D view, the
untrustworthy result is marked, axes and colour bars carry units.
"""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")

import sensitiv  # noqa: E402
from sensitiv.cli import ExitCode, main  # noqa: E402
from sensitiv.pipeline import plot as plot_module  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
ARGON_SMALL = ROOT / "examples" / "lj_crystal" / "argon_vacancy_small.extxyz"
LJ = dict(model="lennard_jones", parameters={"sigma": 3.405, "epsilon": 0.0104},
          model_options={"r_cutoff": 1.5, "r_onset": 1.3, "energy_units": "eV"},
          differentiate=["sigma", "epsilon"], solver_options={"ftol": 1e-10})


@pytest.fixture(scope="module")
def vacancy(tmp_path_factory):
    path = tmp_path_factory.mktemp("vacancy") / "vacancy.nc"
    ds = sensitiv.analyze(str(ARGON_SMALL), output=path, **LJ)
    assert ds.sensitiv.trustworthy
    return ds, path


@pytest.fixture(scope="module")
def packing(tmp_path_factory):
    """16 bidisperse discs straight from the generator, not relaxed: a saddle."""
    path = tmp_path_factory.mktemp("packing") / "packing.nc"
    ds = sensitiv.analyze({"name": "bidisperse_packing", "n_atoms": 16, "dimension": 2,
                           "packing_fraction": 0.9, "diameters": [1.0, 1.4], "seed": 0},
                          model="soft_sphere", parameters={"sigma": [[1.0, 1.2], [1.2, 1.4]], "epsilon": 1.0,
                                                           "alpha": 2.0},
                          differentiate=["sigma"], solver="none", output=path)
    assert not ds.sensitiv.trustworthy
    return ds, path


def _gid(fig, gid):
    found = [a for ax in fig.axes for a in ax.findobj(lambda a: a.get_gid() == gid)]
    found += [a for a in fig.findobj(lambda a: a.get_gid() == gid) if a not in found]
    return found


def _axes_with(fig, gid):
    return [ax for ax in fig.axes if ax.findobj(lambda a: a.get_gid() == gid)]


def _vacancy_site(positions, cell):
    """The fcc site of the 2×2×2 conventional cell that no atom occupies."""
    a = cell[0, 0] / 2
    basis = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    sites = np.array([(np.array(n) + b) * a for n in np.ndindex(2, 2, 2) for b in basis])
    d = sites[:, None, :] - positions[None, :, :]
    d -= np.round(d / cell[0, 0]) * cell[0, 0]
    empty = np.linalg.norm(d, axis=-1).min(axis=1)
    return sites[int(np.argmax(empty))], a


def test_vacancy_centre_profile_and_bars(vacancy):
    ds, _ = vacancy
    data = plot_module.figure_data(ds)
    frame = ds.isel(frame=0)
    cell = frame.cell.values
    site, a = _vacancy_site(frame.coordinates.values, cell)
    offset = data.centre - site
    offset -= np.round(offset / cell[0, 0]) * cell[0, 0]
    assert np.linalg.norm(offset) < 0.2, (data.centre, site)
    # the twelve nearest neighbours of the vacancy are the atoms closest to the centre, at a/√2
    nearest = np.sort(data.distance)[:12]
    np.testing.assert_allclose(nearest, a / np.sqrt(2), atol=0.1)
    # bars: ‖θ·dx*/dθ‖ per parameter, the number the file holds; ε does not move an LJ crystal
    expected = np.sqrt((frame.dx_dlogtheta ** 2).sum(("atom", "spatial"))).values
    np.testing.assert_allclose(data.importance, expected, rtol=1e-12)
    assert data.labels == ["sigma[0,0]", "epsilon[0,0]"] and data.parameter == "sigma[0,0]"
    assert data.importance[1] < 1e-8 * data.importance[0]
    # positions wrapped into the cell, the field is the file's
    frac = np.linalg.solve(cell.T, data.positions.T).T
    assert np.all((frac >= 0) & (frac < 1))
    np.testing.assert_allclose(data.field, frame.dx_dtheta.sel(parameter_label="sigma[0,0]").values)


def test_vacancy_figure_content(vacancy, tmp_path):
    ds, path = vacancy
    figure = tmp_path / "vacancy.png"
    code = main(["plot", str(path), "-o", str(figure)])
    assert code == ExitCode.OK and figure.read_bytes()[:4] == b"\x89PNG"
    fig = sensitiv.plot(ds)
    data = plot_module.figure_data(ds)
    # the importance ranking: linear axis from zero, largest first, the numbers of the file
    (bars_ax,) = _axes_with(fig, "bars")
    assert bars_ax.get_xscale() == "linear" and bars_ax.get_xlim()[0] == 0
    widths = [p.get_width() for p in bars_ax.patches]
    assert widths[0] == pytest.approx(data.importance[0], rel=1e-12) and widths[1] < 1e-8 * widths[0]
    assert [t.get_text() for t in bars_ax.get_yticklabels()] == ["sigma[0,0]", "epsilon[0,0]"]
    assert "θ·∂x*/∂θ" in bars_ax.get_xlabel() and "[Å]" in bars_ax.get_xlabel()
    # the 3-D view: every atom of the (tiled) cell drawn, arrows that keep clear of each other
    (view,) = _axes_with(fig, "arrows")
    atoms = [c for c in view.collections if c.get_gid() == "atoms"][0]
    spacing = 3.72  # a/√2 of the 5.26 Å lattice
    tiles = int(np.prod([max(1, np.ceil(3.5 * spacing / 10.52))] * 3))
    assert len(atoms.get_offsets()) == 31 * tiles
    arrows = [c for c in view.collections if c.get_gid() == "arrows"][0]
    base, tip = arrows.get_offsets(), arrows.get_offsets() + np.c_[arrows.U, arrows.V]
    assert 4 <= len(base) < 31 * tiles
    for i in range(len(base)):
        for j in range(i):
            gap = plot_module._segment_distance(base[i], tip[i], base[j], tip[j])
            assert gap > 0.2 * spacing, (i, j, gap)
    assert _gid(fig, "centre")
    # the slice: in-plane arrows, one common scale, the field of the file
    (cut,) = _axes_with(fig, "slice_arrows")
    quiver = [c for c in cut.collections if c.get_gid() == "slice_arrows"][0]
    assert cut.get_xlabel() == "x [Å]" and cut.get_ylabel() == "y [Å]"
    lengths = np.hypot(quiver.U, quiver.V)
    assert np.isclose(lengths.max(), 0.9 * spacing, rtol=0.05)
    # the radial profile: distances and magnitudes of every atom
    (radial,) = _axes_with(fig, "radial_magnitude")
    points = [c for c in radial.collections if c.get_gid() == "radial_magnitude"][0].get_offsets()
    np.testing.assert_allclose(np.sort(points[:, 0]), np.sort(data.distance))
    assert "distance from the centre [Å]" == radial.get_xlabel() and "[Å per Å]" in radial.get_ylabel()
    # colour scale with units, no verdict mark on a trustworthy result
    assert any("|∂x*/∂sigma[0,0]| [Å per Å]" in ax.get_ylabel() for ax in fig.axes)
    assert not _gid(fig, "verdict") and not _gid(fig, "verdict_frame")


def test_packing_discs_arrows_and_mark(packing, tmp_path):
    ds, path = packing
    data = plot_module.figure_data(ds, parameter="sigma[0,1]")
    species = np.array(data.species)
    np.testing.assert_allclose(data.radii[species == "A"], 0.5)   # sigma[0,0] / 2
    np.testing.assert_allclose(data.radii[species == "B"], 0.7)   # sigma[1,1] / 2
    fig = sensitiv.plot(ds, tmp_path / "packing.png", parameter="sigma[0,1]")
    (view,) = _axes_with(fig, "atoms")
    discs = [c for c in view.collections if c.get_gid() == "atoms"][0]
    offsets = discs.get_offsets()
    np.testing.assert_allclose(offsets[:16], data.positions)      # every particle, wrapped
    assert len(offsets) > 16 and discs.get_clip_path() is not None  # images across the edges, clipped
    side = ds.cell.values[0, 0, 0]
    assert np.all((data.positions >= 0) & (data.positions < side))
    arrows = [c for c in view.collections if c.get_gid() == "arrows"][0]
    assert len(arrows.get_offsets()) == 16                          # 2-D: every particle has its arrow
    moving = data.magnitude > 1e-9 * data.magnitude.max()
    ratio = np.hypot(arrows.U, arrows.V)[moving] / data.magnitude[moving]
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-9)          # one scale
    assert np.isclose(np.hypot(arrows.U, arrows.V).max(), 1.0)      # longest = the smallest diameter
    assert view.get_xlabel() == "x [σ (reduced)]"
    # the verdict on the figure, with the problem
    (verdict,) = _gid(fig, "verdict")
    assert verdict.get_text().startswith("NOT TRUSTWORTHY") and "saddle" in verdict.get_text()
    assert _gid(fig, "verdict_frame")


def test_packing_profile_around_a_given_atom(packing, tmp_path):
    ds, path = packing
    figure = tmp_path / "centre.png"
    assert main(["plot", str(path), "-o", str(figure), "--centre", "atom=3"]) == ExitCode.OK
    fig = ds.sensitiv.plot(centre="atom=3")          # the accessor: the same figure
    (radial,) = _axes_with(fig, "radial_component")
    data = plot_module.figure_data(ds, centre="atom=3")
    assert data.distance[3] == 0 and data.centre_source == "atom 3"
    assert len(fig.axes) == 4  # structure, profile, bars, colour bar


@pytest.mark.parametrize("argv,message", [
    (["--parameter", "sigma[0,2]"], "did you mean"),
    (["--centre", "atom=99"], "atoms 0 to 15"),
    (["--centre", "1,2,3"], "give 2 coordinates"),
    (["--centre", "one,two"], "X,Y[,Z] or atom=N"),
    (["--frame", "3"], "1 frame"),
])
def test_plot_refusals(packing, tmp_path, capsys, argv, message):
    _, path = packing
    code = main(["plot", str(path), "-o", str(tmp_path / "x.png"), *argv])
    err = capsys.readouterr().err
    assert code == ExitCode.USAGE_ERROR and message in err, err
    assert not (tmp_path / "x.png").exists()


@pytest.mark.slow
def test_uniform_response_silicon_under_strain(tmp_path):
    """A perfect crystal under strain: every atom moves as much; no radial profile, the
    small cell tiled for the views, the bars of ‖∂x*/∂ε‖ since θ = 0."""
    ds = sensitiv.analyze({"name": "diamond", "lattice_constant": 5.431978956, "repeat": [1, 1, 1],
                           "species": "Si"}, model="tersoff",
                          model_options={"potential_file": "SiCGe.tersoff", "elements": {"Si": "Si(C)"}},
                          differentiate=["strain"], solver="none")
    data = plot_module.figure_data(ds, parameter="strain[1,2]")
    assert data.centre is None and "no relative scale" in data.importance_label
    np.testing.assert_allclose(data.magnitude, data.magnitude[0], rtol=1e-9)
    fig = sensitiv.plot(ds, tmp_path / "si.png", parameter="strain[1,2]")
    (view,) = _axes_with(fig, "arrows")
    atoms = [c for c in view.collections if c.get_gid() == "atoms"][0]
    assert len(atoms.get_offsets()) == 64  # 8 atoms tiled 2×2×2
    assert _gid(fig, "component_x") and not _gid(fig, "radial_magnitude")
    # sensitiv inspect shows the round-off of the normal strains as 0, the shears as they are
    from sensitiv.pipeline.report import inspect_text

    text = inspect_text(ds)
    assert "θ strain[0,0] = 0  ‖dx*/dθ‖ = 0," in text and "θ strain[1,2] = 0  ‖dx*/dθ‖ = 2.59" in text


@pytest.mark.slow
def test_groups_and_a_parameter_that_moves_nothing(tmp_path):
    """A result with one group per structure (a vacancy and a perfect crystal): the
    figure of group 1 carries the file's title and the group, and says that σ moves no atom
    of the perfect crystal (∂x*/∂σ = 0 by symmetry) instead of drawing a profile."""
    import ase.io
    from ase.build import bulk

    perfect = bulk("Ar", "fcc", a=5.26, cubic=True).repeat(2)
    options = {**LJ, "differentiate": ["sigma"]}
    path = tmp_path / "groups.nc"
    sensitiv.analyze([ase.io.read(ARGON_SMALL), perfect], output=path, title="vacancy and bulk", **options)
    assert main(["plot", str(path), "-o", str(tmp_path / "bulk.png"), "--structure", "1"]) == ExitCode.OK
    fig = sensitiv.plot(path, structure=1)
    assert "vacancy and bulk [/" in fig._suptitle.get_text()
    (still,) = _gid(fig, "no_response")
    assert "no atom moves" in still.get_text()
    assert main(["plot", str(path), "-o", str(tmp_path / "x.png"), "--structure", "2"]) == ExitCode.USAGE_ERROR
