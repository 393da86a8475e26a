"""Robust ensembles (issue 14.5): a failing frame keeps the others, `--resume` finishes the rest.

A three-frame extended-XYZ trajectory of LJ argon (31 atoms): frames 0 and 2 relaxed,
frame 1 rattled. With a step limit FIRE cannot reach from the rattled frame, that frame
fails and the other two are written (exit code 4, `failed_tasks` says why, their parts
kept); `--resume` with a larger limit analyzes frame 1 only and writes all three.
"""

from __future__ import annotations

import os
import pickle

import ase.io
import numpy as np
import pytest
import xarray as xr

import sensitiv_jaxmd as sj
from sensitiv.cli import ExitCode, main
from sensitiv.errors import InputError
from sensitiv.pipeline import checkpoint, config
from sensitiv.pipeline.analysis import StructureAnalysis
from sensitiv.plugins import get_registry

ROOT = os.path.join(os.path.dirname(__file__), "..")
SMALL = os.path.join(ROOT, "examples", "lj_crystal", "argon_vacancy_small.extxyz")

CONFIG = """
structure: {file: traj.extxyz, frames: all}
model:
  name: lennard_jones
  parameters: {sigma: 3.405, epsilon: 0.0104}
  options: {r_cutoff: 1.5, r_onset: 1.3, energy_units: eV}
  differentiate: [sigma]
solver: {name: fire, options: {ftol: 1.0e-9, max_steps: 60}}
observables: [energy]
output: {path: traj.nc}
"""


@pytest.fixture(scope="module")
def trajectory(tmp_path_factory):
    folder = tmp_path_factory.mktemp("resume")
    atoms = ase.io.read(SMALL)
    cfg = config.load_data({"structure": {"file": SMALL}, "model": {
        "name": "lennard_jones", "parameters": {"sigma": 3.405, "epsilon": 0.0104},
        "options": {"r_cutoff": 1.5, "r_onset": 1.3, "energy_units": "eV"}}})
    from sensitiv.pipeline.structure import read_structures

    [structure] = read_structures(cfg.structure)
    system = get_registry().get_energy_model("lennard_jones").factory(structure, dict(cfg.model.options))
    params = {**system.params, "sigma": np.full(np.shape(system.params["sigma"]), 3.405),
              "epsilon": np.full(np.shape(system.params["epsilon"]), 0.0104)}
    relaxed = sj.fire({"ftol": 1e-12})(system, system.positions, params)
    assert relaxed.converged
    frames = []
    for k, shift in enumerate([0.0, 0.15, 0.0]):
        frame = atoms.copy()
        x = np.asarray(relaxed.positions, np.float64)
        frame.set_positions(x + np.random.default_rng(k).normal(0.0, shift, x.shape))
        frames.append(frame)
    ase.io.write(folder / "traj.extxyz", frames, format="extxyz")
    (folder / "config.yaml").write_text(CONFIG)
    return folder


def test_a_failing_frame_keeps_the_others_and_resume_finishes(trajectory, capsys):
    cfg_path = str(trajectory / "config.yaml")
    output = str(trajectory / "traj.nc")
    code = main(["analyze", cfg_path, "-q"])
    assert code == ExitCode.PARTIAL
    err = capsys.readouterr().err
    assert "frame 1" in err and "--resume" in err
    with xr.open_dataset(output) as ds:
        assert ds.sizes["frame"] == 2
        assert list(ds["frame_index"].values) == [0, 2]  # the input frames kept
        assert "frame 1" in ds.attrs["failed_tasks"] and "did not converge" in ds.attrs["failed_tasks"]
        kept = ds["dx_dtheta"].values.copy()
    parts = checkpoint.parts_folder(output)
    assert sorted(n for n in os.listdir(parts) if n.startswith("task-")) == ["task-000000.pickle",
                                                                             "task-000002.pickle"]
    # Without --force the partial output is kept; --resume replaces it, reusing frames 0 and 2.
    with open(os.path.join(parts, "task-000000.pickle"), "rb") as handle:
        first = pickle.load(handle)
    code = main(["analyze", cfg_path, "-q", "--resume", "--set", "solver.options.max_steps=100000"])
    assert code in (ExitCode.OK, ExitCode.UNTRUSTWORTHY)
    assert not os.path.exists(parts)  # written whole: the parts are gone
    with xr.open_dataset(output) as ds:
        assert ds.sizes["frame"] == 3 and "failed_tasks" not in ds.attrs
        np.testing.assert_array_equal(ds["dx_dtheta"].values[[0, 2]], kept)
        np.testing.assert_array_equal(ds["dx_dtheta"].values[0], first.dx_dtheta.reshape(ds["dx_dtheta"].values[0].shape))


def test_resume_refuses_parts_of_another_config(trajectory, tmp_path):
    cfg = config.load(str(trajectory / "config.yaml"))
    output = str(tmp_path / "other.nc")
    parts = checkpoint.Checkpoint(output, cfg)
    parts.save(0, _fake_analysis())
    changed = config.load(str(trajectory / "config.yaml"), overrides=["model.parameters.epsilon=0.02"])
    with pytest.raises(InputError, match="another config"):
        checkpoint.Checkpoint(output, changed, resume=True)
    # a step limit is not part of what a finished task found
    more_steps = config.load(str(trajectory / "config.yaml"), overrides=["solver.options.max_steps=5000"])
    assert set(checkpoint.Checkpoint(output, more_steps, resume=True).finished()) == {0}
    checkpoint.Checkpoint(output, changed)  # without --resume: afresh
    assert not os.path.exists(checkpoint.parts_folder(output))


def _fake_analysis():
    """An empty StructureAnalysis: the checkpoint stores records, only their type matters to it."""
    return StructureAnalysis.__new__(StructureAnalysis)


def test_dask_streams_results_and_keeps_them_when_a_task_fails(trajectory, tmp_path, capsys):
    """A LocalCluster of two spawned worker processes; frame 1 fails on purpose (step limit).

    Runs where `sensitiv[dask]` is installed. It is not in the test extra: with dask
    installed, xarray imports it when opening any NetCDF file, and `sensitiv inspect` would
    no longer be a host-only command (tests/test_cheap_commands.py)."""
    pytest.importorskip("dask.distributed")
    output = str(tmp_path / "dask.nc")
    code = main(["analyze", str(trajectory / "config.yaml"), "-o", output, "--scheduler", "local",
                 "--set", "ensemble.workers=2"])
    err = capsys.readouterr().err
    assert code == ExitCode.PARTIAL, err
    assert "FAILED" in err and "frame 1" in err and err.count("done: ") == 2
    with xr.open_dataset(output) as ds:
        assert list(ds["frame_index"].values) == [0, 2]
        assert "frame 1" in ds.attrs["failed_tasks"]
    parts = checkpoint.parts_folder(output)
    assert sorted(n for n in os.listdir(parts) if n.startswith("task-")) == ["task-000000.pickle",
                                                                             "task-000002.pickle"]
