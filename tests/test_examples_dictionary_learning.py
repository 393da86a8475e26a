"""examples/dictionary_learning: elastic-net codes, implicit gradient in the dictionary, the AUC table."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from example_loader import load_example


dl = load_example("dictionary_learning")


@pytest.fixture(scope="module")
def problem():
    x, y = dl.load_data()
    order = np.random.default_rng(0).permutation(len(y))[:80]
    samples, _ = dl.standardize(x[order], x[order])
    dictionary = dl.unsupervised_dictionary(samples, iterations=5)
    params = (dictionary, 0.3 * jax.random.normal(jax.random.PRNGKey(0), (dl.N_ATOMS,)), jnp.asarray(0.1))
    return jnp.asarray(samples), jnp.asarray(y[order], float), params


def test_codes_satisfy_elastic_net_optimality(problem):
    samples, _, (dictionary, _, _) = problem
    codes, converged = dl.encode_jit(samples, dictionary, tol=1e-12)
    assert bool(converged)
    # Subgradient conditions of ½‖x − αD‖² + l1‖α‖₁ + ½l2‖α‖²:
    correlation = (samples - codes @ dictionary) @ dictionary.T - dl.L2REG * codes
    active = codes != 0
    np.testing.assert_allclose(correlation[active], dl.L1REG * jnp.sign(codes[active]), atol=1e-9)
    assert float(jnp.max(jnp.abs(correlation[~active]))) <= dl.L1REG + 1e-9
    assert 0.1 < float(jnp.mean(active)) < 0.9  # the codes are sparse, not trivially so


def test_outer_gradient_matches_finite_differences_and_unrolling(problem):
    samples, labels, params = problem
    value, grads = dl.outer_value_and_grad(params, samples, labels, tol=1e-12)
    direction = jax.random.normal(jax.random.PRNGKey(1), params[0].shape)
    h = 1e-5
    loss = lambda d: float(dl.outer_value_and_grad((d, *params[1:]), samples, labels, tol=1e-12)[0])
    fd = (loss(params[0] + h * direction) - loss(params[0] - h * direction)) / (2 * h)
    assert float(jnp.vdot(grads[0], direction)) == pytest.approx(fd, rel=1e-6)
    unrolled = dl.outer_value_and_grad(params, samples, labels, implicit_diff=False, tol=1e-12)[1]
    for a, b in zip(grads, unrolled):
        assert float(jnp.linalg.norm(a - b)) <= 1e-8 * float(jnp.linalg.norm(b))


def test_task_driven_training_lowers_the_loss(problem):
    samples, labels, params = problem
    _, losses = dl.task_driven(samples, labels, params, steps=10)
    assert np.all(np.isfinite(losses))
    assert losses[-1] < 0.8 * losses[0]


@pytest.mark.slow
def test_script_writes_auc_table(tmp_path):
    result = dl.main(["--small", "--out", str(tmp_path)])
    table = (tmp_path / "auc_table.md").read_text()
    assert "task-driven dictionary learning" in table
    assert (tmp_path / "auc.png").stat().st_size > 10_000
    saved = json.loads((tmp_path / "dictionary_learning.json").read_text())
    assert saved["all_codes_converged"]
    for row in result["table"].values():
        assert row["mean"] > 0.95  # breast cancer is an easy problem for all four
    for losses in result["losses"]:
        assert losses[-1] < losses[0]
