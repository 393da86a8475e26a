"""Ensembles: trajectory frames along `frame`, files of different sizes as groups, parameter
samples, and Dask with spawned workers — each checked against single-structure runs."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

ase = pytest.importorskip("ase")
import ase.io  # noqa: E402
from ase import Atoms  # noqa: E402

from sensitiv.cli import ExitCode, main  # noqa: E402
from sensitiv.pipeline import config, run  # noqa: E402

# Small fcc Lennard-Jones boxes with a vacancy (reduced units, a = 1.55σ, cutoff 1.5σ) keep
# every analysis dense and fast; rattled so that the solver has work to do.


def _lj_box(repeat, seed, a=1.55):
    from ase.build import bulk

    atoms = bulk("Ar", "fcc", a=a, cubic=True) * repeat
    # A vacancy: in a perfect crystal every atom sits at a symmetric site and dx*/dσ = 0.
    del atoms[3]
    atoms.positions += np.random.default_rng(seed).normal(0, 0.03, atoms.positions.shape)
    return atoms


CONFIG = """\
structure: {{file: {file}, frames: {frames}}}
model:
  name: lennard_jones
  differentiate: [sigma]
  options: {{r_cutoff: 1.5, r_onset: 1.3}}
solver: {{name: fire, options: {{ftol: 1.0e-10}}}}
output: {{path: out.nc}}
"""


@pytest.mark.slow  # six separate analyses (each compiles its own Jacobian program)
def test_trajectory_frames_and_samples(tmp_path, capsys):
    frames = [_lj_box((2, 2, 2), seed) for seed in range(3)]
    ase.io.write(tmp_path / "traj.xyz", frames, format="extxyz")
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(CONFIG.format(file="traj.xyz", frames="'0:2'"))
    assert main(["analyze", str(cfg_path)]) == ExitCode.OK, capsys.readouterr().err
    with xr.open_dataset(tmp_path / "out.nc") as ds:
        assert ds["dx_dtheta"].dims == ("frame", "atom", "spatial", "parameter")
        assert ds.sizes["frame"] == 2 and list(ds["frame_index"].values) == [0, 1]
        assert ds["species"].dims == ("atom",)
        j_frames = ds["dx_dtheta"].values
    # Frame 1 alone gives the same numbers.
    single = tmp_path / "single.yaml"
    single.write_text(CONFIG.format(file="traj.xyz", frames="1").replace("out.nc", "one.nc"))
    assert main(["analyze", str(single), "-q"]) == ExitCode.OK
    with xr.open_dataset(tmp_path / "one.nc") as one:
        assert one.sizes["frame"] == 1  # always a frame dimension, length 1 for one structure
        np.testing.assert_allclose(one["dx_dtheta"].values[0], j_frames[1], rtol=1e-10, atol=1e-12)

    # Parameter samples: three values of sigma on frame 0.
    sampled = tmp_path / "samples.yaml"
    sampled.write_text(
        CONFIG.format(file="traj.xyz", frames="0").replace("out.nc", "samples.nc")
        + "ensemble: {parameter_samples: {n: 3, values: {sigma: [0.98, 1.0, 1.02]}}}\n"
    )
    assert main(["analyze", str(sampled), "-q"]) == ExitCode.OK
    with xr.open_dataset(tmp_path / "samples.nc") as ds:
        assert ds.sizes["frame"] == 3
        np.testing.assert_allclose(ds["parameter_value"].values[:, 0], [0.98, 1.0, 1.02])
        assert list(ds["sample"].values) == [0, 1, 2]
        np.testing.assert_allclose(ds["dx_dtheta"].values[1], j_frames[0], rtol=1e-10, atol=1e-12)


def test_files_of_different_sizes_become_groups(tmp_path, capsys):
    ase.io.write(tmp_path / "a.xyz", _lj_box((2, 2, 2), 0), format="extxyz")
    ase.io.write(tmp_path / "b.xyz", _lj_box((3, 2, 2), 1), format="extxyz")
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(CONFIG.format(file="a.xyz", frames="last").replace("file: a.xyz", "files: [a.xyz, b.xyz]"))
    assert main(["analyze", str(cfg_path)]) == ExitCode.OK, capsys.readouterr().err
    tree = xr.open_datatree(tmp_path / "out.nc")
    try:
        assert tree["structure_000"].sizes["atom"] == 31
        assert tree["structure_001"].sizes["atom"] == 47
        assert "Conventions" in tree.attrs
    finally:
        tree.close()


def test_parameter_sample_errors(tmp_path):
    ase.io.write(tmp_path / "a.xyz", _lj_box((2, 2, 2), 0), format="extxyz")
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(
        CONFIG.format(file="a.xyz", frames="last")
        + "ensemble: {parameter_samples: {n: 2, values: {sigma: [1.0]}}}\n"
    )
    code = main(["analyze", str(cfg_path), "-q"])
    assert code == ExitCode.USAGE_ERROR
    assert not (tmp_path / "out.nc").exists()


@pytest.mark.slow
def test_dask_local_cluster_matches_serial(tmp_path):
    pytest.importorskip("distributed")
    frames = [_lj_box((2, 2, 2), seed) for seed in range(2)]
    ase.io.write(tmp_path / "traj.xyz", frames, format="extxyz")
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(CONFIG.format(file="traj.xyz", frames="all") + "ensemble: {workers: 2}\n")
    cfg = config.load(str(cfg_path))
    serial = run.analyze_config(cfg, scheduler="serial")
    distributed = run.analyze_config(cfg, scheduler="local")
    assert len(distributed.analyses) == 2
    np.testing.assert_allclose(distributed.result["dx_dtheta"].values, serial.result["dx_dtheta"].values,
                               rtol=1e-10, atol=1e-12)
