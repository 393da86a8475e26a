"""examples/ridge: the seed example against closed forms; the diabetes hyperparameter search."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from example_loader import load_example


ridge = load_example("ridge")


def test_seed_jacobian_matches_closed_form():
    result = ridge.seed_check(theta=10.0)
    assert result["jacfwd_rel_error"] < 1e-12
    assert result["jacrev_rel_error"] < 1e-12
    assert result["second_rel_error"] < 1e-10


def test_seed_solver_takes_no_initial_guess_and_vmaps():
    # The seed signature: one argument, theta, and it is differentiated (jaxopt #386).
    thetas = jnp.array([1.0, 3.0])
    batched = jax.jit(jax.vmap(jax.jacfwd(ridge.ridge_solver)))(thetas)
    for theta, jacobian in zip(thetas, batched):
        a = ridge.X.T @ ridge.X + theta * jnp.eye(5)
        expected = -jnp.linalg.solve(a, jnp.linalg.solve(a, ridge.X.T @ ridge.y))
        np.testing.assert_allclose(jacobian, expected, rtol=1e-12)


@pytest.fixture(scope="module")
def data():
    return ridge.load_data()


@pytest.mark.parametrize("log_lam", [-2.0, 0.0, 4.0])
def test_hypergradient_closed_form_and_finite_differences(data, log_lam):
    outer = lambda t: ridge.validation_loss(jnp.asarray(t), data)
    implicit = float(ridge.validation_value_and_grad(jnp.asarray(log_lam), data)[1])
    closed = float(ridge.closed_form_hypergradient(data, jnp.asarray(log_lam)))
    assert implicit == pytest.approx(closed, rel=1e-10)
    h = 1e-4
    fd = (float(outer(log_lam + h)) - float(outer(log_lam - h))) / (2 * h)
    assert implicit == pytest.approx(fd, rel=1e-6)


def test_search_decreases_validation_loss_to_grid_optimum(data):
    history = ridge.hyperparameter_search(data, steps=12)
    loss = history["loss"]
    assert np.all(np.diff(loss) <= 1e-12), loss
    grid = np.linspace(-4.0, 9.0, 131)
    curve = ridge.loss_curve(data, grid)
    # Regularization matters here: λ = 1 is clearly worse than the optimum.
    assert loss[0] - curve.min() > 0.05
    assert loss[-1] == pytest.approx(curve.min(), abs=1e-4)
    assert abs(history["grad"][-1]) < 1e-4


def test_script_writes_figure_and_summary(tmp_path):
    summary = ridge.main(["--small", "--out", str(tmp_path)])
    assert (tmp_path / "ridge.png").stat().st_size > 10_000
    saved = json.loads((tmp_path / "ridge.json").read_text())
    assert saved["seed"]["jacfwd_rel_error"] < 1e-12
    assert saved["search"]["loss"][-1] < saved["search"]["loss"][0]
    assert summary["grid_best_lambda"] > 1.0
