"""examples/dataset_distillation: outer gradient (implicit = unrolled = finite differences), distillation."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from example_loader import load_example


distillation = load_example("dataset_distillation")
TOL = 1e-12  # inner tolerance for the derivative checks


@pytest.fixture(scope="module")
def data():
    return distillation.load_data()


@pytest.fixture(scope="module")
def prototypes():
    return 0.5 + 0.1 * jax.random.normal(jax.random.PRNGKey(0), (10, 64))


@pytest.fixture(scope="module")
def implicit_gradient(data, prototypes):
    x_train, y_train, _, _ = data
    _, state = distillation.train_on_prototypes(prototypes, tol=TOL, maxiter=2000)
    assert bool(state.converged)
    return distillation.outer_value_and_grad(prototypes, x_train, y_train, tol=TOL, maxiter=2000)[1]


def test_implicit_gradient_matches_finite_differences_of_resolving(data, prototypes, implicit_gradient):
    x_train, y_train, _, _ = data
    loss = lambda p: float(distillation.outer_value_and_grad(p, x_train, y_train, tol=TOL, maxiter=2000)[0])
    for key in (1, 2):
        direction = jax.random.normal(jax.random.PRNGKey(key), prototypes.shape)
        h = 1e-5  # the third derivative is large: h = 1e-4 already has a 1e-6 truncation error
        fd = (loss(prototypes + h * direction) - loss(prototypes - h * direction)) / (2 * h)
        assert float(jnp.vdot(implicit_gradient, direction)) == pytest.approx(fd, rel=1e-6)


def test_implicit_gradient_matches_unrolled(data, prototypes, implicit_gradient):
    x_train, y_train, _, _ = data
    unrolled = distillation.outer_value_and_grad(prototypes, x_train, y_train, implicit_diff=False, tol=TOL, maxiter=2000)[1]
    assert np.all(np.isfinite(unrolled))
    error = float(jnp.linalg.norm(unrolled - implicit_gradient) / jnp.linalg.norm(implicit_gradient))
    assert error < 1e-7


def test_distilled_images_beat_class_means(data):
    x_train, y_train, x_test, y_test = data
    prototypes, losses = distillation.distill(x_train, y_train, steps=25)
    assert losses[-1] < 0.5 * losses[0]
    _, state = distillation.train_on_prototypes(prototypes)
    assert bool(state.converged)
    distilled = float(distillation.accuracy(prototypes, x_test, y_test))
    means = float(distillation.accuracy(distillation.class_means(x_train, y_train), x_test, y_test))
    assert distilled > means > 0.8


@pytest.mark.slow
def test_script_writes_figure_and_table(tmp_path):
    result = distillation.main(["--small", "--out", str(tmp_path)])
    assert (tmp_path / "distilled.png").stat().st_size > 10_000
    saved = json.loads((tmp_path / "distillation.json").read_text())
    assert saved["test_accuracy_distilled"] == pytest.approx(result["test_accuracy_distilled"])
    assert saved["timing_seconds"]["implicit"] > 0
