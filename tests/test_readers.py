"""Structure readers: every reader on a file written by ASE (AMBER NetCDF: by xarray) gives
back the same structure; bad files give one-line `InputError`s naming the path."""

from __future__ import annotations

import os

import numpy as np
import pytest

ase = pytest.importorskip("ase")
import ase.io  # noqa: E402
from ase import Atoms  # noqa: E402
from ase.build import bulk  # noqa: E402

from sensitiv.plugins.amber import cell_from_lengths_angles, read_amber_netcdf  # noqa: E402
from sensitiv.errors import InputError  # noqa: E402
from sensitiv.pipeline import structure as st  # noqa: E402
from sensitiv_ase.readers import READERS, read_with_ase  # noqa: E402


def _crystal():
    atoms = bulk("Si", "diamond", a=5.43, cubic=True) * (1, 1, 2)
    atoms.symbols[[1, 5]] = "Ge"
    rng = np.random.default_rng(0)
    atoms.positions += rng.normal(0, 0.05, atoms.positions.shape)
    return atoms


def _same(structure, atoms, atol=1e-6):
    diff = structure.positions - atoms.get_positions()
    if all(atoms.pbc):
        # Some formats (CIF) wrap atoms into the cell: compare modulo lattice vectors.
        frac = np.linalg.solve(atoms.cell.array.T, diff.T).T
        diff = (frac - np.round(frac)) @ atoms.cell.array
    np.testing.assert_allclose(diff, 0.0, atol=atol, rtol=0)
    symbols = [structure.species_names[s] for s in structure.species]
    assert symbols == atoms.get_chemical_symbols()
    assert structure.pbc == tuple(bool(p) for p in atoms.pbc)
    if any(atoms.pbc):
        np.testing.assert_allclose(structure.cell, atoms.cell.array, atol=atol, rtol=0)
    assert structure.length_units == "angstrom"


@pytest.mark.parametrize(
    "name, filename, write_kwargs",
    [
        ("extxyz", "s.extxyz", {}),
        ("lammps-data", "s.data", {"specorder": ["Si", "Ge"], "masses": True}),
        ("vasp", "POSCAR", {"direct": False}),
        ("cif", "s.cif", {}),
    ],
)
def test_round_trip_through_ase(tmp_path, name, filename, write_kwargs):
    atoms = _crystal()
    path = str(tmp_path / filename)
    ase.io.write(path, atoms, format=READERS[name][0] or name, **write_kwargs)
    options = {"species": ["Si", "Ge"], "atom_style": "atomic"} if name == "lammps-data" else {}
    frames = read_with_ase(path, name, options)
    assert len(frames) == 1
    # CIF stores fractional coordinates with limited digits.
    _same(frames[0], atoms, atol=1e-4 if name == "cif" else 1e-8)
    assert frames[0].source == path


def test_lammps_dump_trajectory_round_trip(tmp_path):
    atoms = _crystal()
    frames_in = []
    for k in range(3):
        a = atoms.copy()
        a.positions += 0.01 * k
        frames_in.append(a)
    path = str(tmp_path / "traj.lammpstrj")
    # ASE has no dump writer: write the text format by hand (what LAMMPS prints).
    with open(path, "w") as f:
        for step, a in enumerate(frames_in):
            lx, ly, lz = np.diag(a.cell.array)
            f.write(f"ITEM: TIMESTEP\n{step}\nITEM: NUMBER OF ATOMS\n{len(a)}\n")
            f.write(f"ITEM: BOX BOUNDS pp pp pp\n0 {lx}\n0 {ly}\n0 {lz}\n")
            f.write("ITEM: ATOMS id type x y z\n")
            for i, (sym, pos) in enumerate(zip(a.get_chemical_symbols(), a.positions)):
                f.write(f"{i + 1} {1 if sym == 'Si' else 2} {pos[0]:.12f} {pos[1]:.12f} {pos[2]:.12f}\n")
    frames = read_with_ase(path, "lammps-dump", {"species": ["Si", "Ge"]})
    assert len(frames) == 3
    for s, a in zip(frames, frames_in):
        _same(s, a, atol=1e-9)
    # Without species (and no mass or element column), species are named by type number,
    # never by atomic number = type (type 1 → H).
    plain = read_with_ase(path, "lammps-dump", {})
    assert plain[0].species_names == ("type1", "type2")
    assert plain[0].species_types == (1, 2)
    assert "names: type numbers" in plain[0].readings[0]


def test_extxyz_multiframe_and_free_molecule(tmp_path):
    mol = Atoms("H2O", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
    crystal = _crystal()
    path = str(tmp_path / "mix.xyz")
    ase.io.write(path, [mol, crystal], format="extxyz")
    frames = read_with_ase(path, "extxyz")
    assert len(frames) == 2
    assert frames[0].cell is None and frames[0].pbc == (False, False, False)
    _same(frames[1], crystal, atol=1e-8)
    assert frames[1].frame == 1


def _write_amber(path, positions, cell_lengths, cell_angles, names):
    import xarray as xr

    n_frames, n_atoms, _ = positions.shape
    ds = xr.Dataset(
        {
            "coordinates": (("frame", "atom", "spatial"), positions, {"units": "angstrom"}),
            "cell_lengths": (("frame", "cell_spatial"), cell_lengths, {"units": "angstrom"}),
            "cell_angles": (("frame", "cell_angular"), cell_angles, {"units": "degree"}),
            "time": (("frame",), np.arange(n_frames, dtype=float), {"units": "picosecond"}),
            "atom_names": (("atom",), np.array(names, dtype=object)),
        },
        coords={"spatial": ["x", "y", "z"], "cell_spatial": ["a", "b", "c"]},
        attrs={"Conventions": "AMBER", "ConventionVersion": "1.0", "program": "test"},
    )
    ds.to_netcdf(path)


def test_amber_netcdf_round_trip_xarray(tmp_path):
    atoms = _crystal()
    rng = np.random.default_rng(1)
    positions = atoms.positions[None] + rng.normal(0, 0.01, (4,) + atoms.positions.shape)
    lengths = np.tile(atoms.cell.lengths(), (4, 1))
    angles = np.tile(atoms.cell.angles(), (4, 1))
    path = str(tmp_path / "traj.nc")
    _write_amber(path, positions, lengths, angles, atoms.get_chemical_symbols())
    frames = read_amber_netcdf(path, {})
    assert len(frames) == 4
    for k in (0, 3, -1):
        s = frames[k]
        np.testing.assert_allclose(s.positions, positions[k], atol=0, rtol=0)
        np.testing.assert_allclose(s.cell, atoms.cell.array, atol=1e-12)
        assert [s.species_names[i] for i in s.species] == atoms.get_chemical_symbols()
        assert s.pbc == (True, True, True)
        assert s.info["time"] == float(k % 4)


def test_amber_netcdf_written_by_ase(tmp_path):
    atoms = _crystal()
    path = str(tmp_path / "ase.nc")
    ase.io.write(path, [atoms, atoms], format="netcdftrajectory")
    frames = read_amber_netcdf(path, {})
    assert len(frames) == 2
    # ASE stores coordinates in single precision.
    _same(frames[1], atoms, atol=1e-5)


def test_cell_from_lengths_angles_triclinic():
    atoms = bulk("Cu", "fcc", a=3.6)  # primitive: 60° angles
    cell = cell_from_lengths_angles(atoms.cell.lengths(), atoms.cell.angles())
    from ase.geometry import cell_to_cellpar

    np.testing.assert_allclose(cell_to_cellpar(cell), cell_to_cellpar(atoms.cell.array), atol=1e-10)
    assert abs(cell[0, 1]) < 1e-15 and abs(cell[0, 2]) < 1e-15 and abs(cell[1, 2]) < 1e-15


def test_amber_reader_rejects_files(tmp_path):
    text = tmp_path / "not.nc"
    text.write_text("hello\n")
    with pytest.raises(InputError, match=r"not\.nc: not a readable NetCDF file"):
        read_amber_netcdf(str(text), {})
    import xarray as xr

    other = str(tmp_path / "other.nc")
    xr.Dataset({"t": ("x", [1.0])}).to_netcdf(other)
    with pytest.raises(InputError, match="no 'coordinates' variable"):
        read_amber_netcdf(other, {})
    with pytest.raises(InputError, match="not found"):
        read_amber_netcdf(str(tmp_path / "missing.nc"), {})


def test_ase_reader_wrong_format_is_one_line(tmp_path):
    path = tmp_path / "bad.cif"
    path.write_text("this is not a CIF file\n")
    with pytest.raises(InputError) as err:
        read_with_ase(str(path), "cif")
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_select_frames():
    assert st.select_frames(5, "all") == [0, 1, 2, 3, 4]
    assert st.select_frames(5, "last") == [4]
    assert st.select_frames(5, "first") == [0]
    assert st.select_frames(5, "1:5:2") == [1, 3]
    assert st.select_frames(5, "::-2") == [4, 2, 0]
    assert st.select_frames(5, [-1, 0]) == [4, 0]
    with pytest.raises(InputError, match="out of range"):
        st.select_frames(5, 7)
    with pytest.raises(InputError, match="selects no frame"):
        st.select_frames(5, "7:9")


def test_check_structure_errors():
    s = st.lattice("fcc", 4.0, repeat=(2, 2, 2))
    st.check_structure(s)
    import dataclasses

    pos = s.positions.copy()
    pos[3, 1] = np.nan
    with pytest.raises(InputError, match="non-finite .* first atom 3"):
        st.check_structure(dataclasses.replace(s, positions=pos))
    pos = s.positions.copy()
    pos[5] = pos[2] + 1e-5
    with pytest.raises(InputError, match="overlapping atoms 2 and 5"):
        st.check_structure(dataclasses.replace(s, positions=pos))
    # Overlap across the periodic boundary (minimum image).
    pos = s.positions.copy()
    pos[1] = pos[0] + s.cell[0] - 1e-5
    with pytest.raises(InputError, match="overlapping atoms 0 and 1"):
        st.check_structure(dataclasses.replace(s, positions=pos))


def test_generators():
    p = st.bidisperse_packing(n_atoms=64, dimension=2, packing_fraction=0.9, seed=3)
    side = p.cell[0, 0]
    area = np.pi / 4 * (32 * 1.0**2 + 32 * 1.4**2)
    assert abs(area / side**2 - 0.9) < 1e-12
    assert p.species_names == ("A", "B") and np.sum(p.species == 0) == 32
    d = st.lattice("diamond", 5.431, repeat=(2, 2, 2), species="Si")
    assert d.n_atoms == 64
    # Every diamond atom has 4 nearest neighbours at a·√3/4.
    from ase import Atoms as A

    atoms = A("Si64", positions=d.positions, cell=d.cell, pbc=True)
    dist = atoms.get_all_distances(mic=True)
    np.fill_diagonal(dist, np.inf)
    assert np.allclose(np.sort(dist, axis=1)[:, :4], 5.431 * np.sqrt(3) / 4)
    assert np.all(np.sort(dist, axis=1)[:, 4] > 5.431 * np.sqrt(3) / 4 + 0.1)
    t = st.lattice("triangular", 1.0, repeat=(4, 2))
    assert t.n_spatial == 2 and t.n_atoms == 16


def test_read_structures_through_registry(tmp_path):
    import sensitiv.plugins
    from sensitiv.pipeline.config import FixedAtoms, StructureFile, StructureSettings

    registry = sensitiv.plugins.Registry(entry_points=["builtin", "ase"])
    atoms = _crystal()
    path = str(tmp_path / "t.xyz")
    ase.io.write(path, [atoms, atoms, atoms], format="extxyz")

    def settings(file, frames="last"):
        return StructureSettings(files=(StructureFile(file, "extxyz"),), generator=None, frames=frames,
                                 options={}, min_distance=1e-3, fixed=FixedAtoms(from_file=True))

    out = st.read_structures(settings(path, "0:2"), registry)
    assert [s.frame for s in out] == [0, 1]
    bad = tmp_path / "bad.xyz"
    bad.write_text("3\nnot extxyz\nH 0 0\n")
    with pytest.raises(InputError, match="bad.xyz"):
        st.read_structures(settings(str(bad)), registry)


def test_amber_netcdf_lazy_frames(tmp_path, monkeypatch):
    """Large trajectories are read frame by frame, when indexed."""
    import sensitiv.plugins.amber as amber

    monkeypatch.setattr(amber, "_EAGER_BYTES", 0)
    atoms = _crystal()
    positions = np.stack([atoms.positions + 0.01 * k for k in range(3)])
    path = str(tmp_path / "big.nc")
    _write_amber(path, positions, np.tile(atoms.cell.lengths(), (3, 1)), np.tile(atoms.cell.angles(), (3, 1)),
                 atoms.get_chemical_symbols())
    frames = read_amber_netcdf(path, {})
    assert isinstance(frames, amber._Frames) and len(frames) == 3
    np.testing.assert_array_equal(frames[-1].positions, positions[2])
    assert [f.frame for f in frames[0:3:2]] == [0, 2]
    with pytest.raises(IndexError):
        frames[3]
