"""Proximal operators: the defining minimization, closed-form derivatives in x and in the
regularization strengths, pytrees, and no NaN at zero."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import minimize

from sensitiv import projections, prox

X = jnp.array([2.0, -0.3, 0.05, -1.7, 0.9])


def prox_by_minimization(g, x, scaling):
    """Independent reference: minimize ½‖y − x‖² + scaling·g(y) numerically (Powell is
    derivative-free, so the kinks of g are harmless)."""
    x = np.asarray(x)
    obj = lambda y: 0.5 * np.sum((y - x) ** 2) + scaling * g(y)
    res = minimize(obj, x, method="Powell", options={"xtol": 1e-12, "ftol": 1e-14, "maxiter": 100000})
    return res.x


CASES = [
    (prox.prox_lasso, 0.5, lambda y: 0.5 * np.abs(y).sum()),
    (prox.prox_non_negative_lasso, 0.5, lambda y: 0.5 * np.abs(y).sum() + (1e6 * np.sum(np.minimum(y, 0) ** 2))),
    (prox.prox_elastic_net, (0.5, 2.0), lambda y: 0.5 * np.abs(y).sum() + 1.0 * np.sum(y**2)),
    (prox.prox_group_lasso, 0.5, lambda y: 0.5 * np.linalg.norm(y)),
    (prox.prox_ridge, 2.0, lambda y: 1.0 * np.sum(y**2)),
]


@pytest.mark.parametrize("op, hyper, g", CASES, ids=lambda c: getattr(c, "__name__", ""))
def test_prox_solves_its_minimization(op, hyper, g):
    scaling = 0.7
    got = op(X, hyper, scaling)
    ref = prox_by_minimization(g, X, scaling)
    np.testing.assert_allclose(got, ref, atol=2e-6)


def test_closed_forms_and_derivatives():
    eta, lam = 0.7, 0.5
    support = np.abs(np.asarray(X)) > eta * lam
    sign = np.sign(np.asarray(X))
    # Lasso: J_x = diag(support), dλ = −η sign on the support.
    np.testing.assert_allclose(jax.jacfwd(prox.prox_lasso)(X, lam, eta), np.diag(support.astype(float)), atol=0)
    np.testing.assert_allclose(jax.jacrev(prox.prox_lasso, argnums=1)(X, lam, eta), -eta * sign * support)
    np.testing.assert_allclose(jax.jacfwd(prox.prox_lasso, argnums=2)(X, lam, eta), -lam * sign * support)
    # Per-coordinate strengths.
    lams = jnp.linspace(0.1, 1.0, 5)
    np.testing.assert_allclose(
        jnp.diag(jax.jacfwd(prox.prox_lasso, argnums=1)(X, lams, eta)),
        -eta * sign * (np.abs(np.asarray(X)) > eta * np.asarray(lams)),
    )
    # Elastic net.
    l1, l2 = 0.5, 2.0
    d1, d2 = jax.jacfwd(prox.prox_elastic_net, argnums=1)(X, (l1, l2), eta)
    soft = np.asarray(prox.prox_lasso(X, l1, eta))
    np.testing.assert_allclose(d1, -eta * sign * support / (1 + eta * l2), rtol=1e-14)
    np.testing.assert_allclose(d2, -eta * soft / (1 + eta * l2) ** 2, rtol=1e-14)
    # Ridge and non-negative ridge.
    np.testing.assert_allclose(jax.jacfwd(prox.prox_ridge, argnums=1)(X, 2.0, eta), -eta * X / (1 + 2 * eta) ** 2, rtol=1e-14)
    np.testing.assert_allclose(prox.prox_non_negative_ridge(X, 2.0, eta), np.maximum(X, 0) / (1 + 2 * eta))
    np.testing.assert_allclose(prox.prox_non_negative_lasso(X, lam, eta), np.maximum(X - eta * lam, 0))
    # Group lasso: J = s I + (1 − s) u uᵀ with s = 1 − ηλ/‖x‖ ... check against FD.
    d = jax.random.normal(jax.random.PRNGKey(0), X.shape)
    h = 1e-5
    fd = (prox.prox_group_lasso(X + h * d, lam, eta) - prox.prox_group_lasso(X - h * d, lam, eta)) / (2 * h)
    np.testing.assert_allclose(jax.jvp(lambda x: prox.prox_group_lasso(x, lam, eta), (X,), (d,))[1], fd, rtol=1e-8)
    norm = float(jnp.linalg.norm(X))
    np.testing.assert_allclose(jax.grad(lambda l: jnp.sum(prox.prox_group_lasso(X, l, eta)))(lam), -eta * float(X.sum()) / norm, rtol=1e-13)
    # Zero group: exactly zero, finite derivatives.
    np.testing.assert_array_equal(prox.prox_group_lasso(0.1 * X, 10.0), 0)
    assert np.all(np.isfinite(jax.jacrev(prox.prox_group_lasso)(jnp.zeros(3), 1.0)))
    assert np.all(np.isfinite(jax.grad(lambda l: jnp.sum(prox.prox_group_lasso(jnp.zeros(3), l)))(1.0)))


def test_pytrees_and_from_projection():
    tree = {"w": X, "b": jnp.array([-3.0])}
    out = prox.prox_lasso(tree, {"w": 0.1, "b": 1.0}, 1.0)
    np.testing.assert_allclose(out["b"], [-2.0])
    np.testing.assert_allclose(out["w"], prox.prox_lasso(X, 0.1))
    grouped = prox.prox_group_lasso(tree, 1.0)
    full = jnp.concatenate([X, jnp.array([-3.0])])
    np.testing.assert_allclose(jnp.concatenate([grouped["w"], grouped["b"]]), prox.prox_group_lasso(full, 1.0), rtol=1e-14)
    rows = jnp.stack([X, 0.01 * X])
    np.testing.assert_allclose(jax.vmap(prox.prox_group_lasso, in_axes=(0, None, None))(rows, 1.0, 1.0)[1], 0)
    box = prox.make_prox_from_projection(projections.projection_box)
    np.testing.assert_array_equal(box(X, (0.0, 1.0), 123.0), jnp.clip(X, 0, 1))
    assert prox.prox_none(X, None, 3.0) is X
