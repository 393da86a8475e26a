"""Implicit and unrolled differentiation agree where both converge, and the unrolled
mode really differentiates the iterations (it is wrong when stopped early)."""

import jax
import jax.numpy as jnp
import numpy as np

from sensitiv import projections as P
from sensitiv import prox
from sensitiv import solvers as S

X = jax.random.normal(jax.random.PRNGKey(0), (12, 4))
Y = jax.random.normal(jax.random.PRNGKey(1), (12,))
L = float(jnp.linalg.eigvalsh(X.T @ X).max())


def least_squares(w, X, y):
    return 0.5 * jnp.sum((X @ w - y) ** 2)


def test_lasso_implicit_equals_unrolled():
    kwargs = dict(stepsize=1 / L, tol=1e-13, maxiter=3000, accelerated=False)
    implicit = S.ProximalGradient(least_squares, prox.prox_lasso, **kwargs)
    unrolled = S.ProximalGradient(least_squares, prox.prox_lasso, implicit_diff=False, **kwargs)
    lam = jnp.asarray(2.0)

    def loss(solver):
        return lambda lam, y: jnp.sum(solver.run(jnp.zeros(4), lam, X, y).params ** 2)

    g_implicit = jax.grad(loss(implicit), argnums=(0, 1))(lam, Y)
    g_unrolled = jax.grad(loss(unrolled), argnums=(0, 1))(lam, Y)
    for a, b in zip(g_implicit, g_unrolled):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-12)
    w_i, s_i = implicit.run(jnp.zeros(4), lam, X, Y)
    w_u, s_u = unrolled.run(jnp.zeros(4), lam, X, Y)
    # Both loops stop updating at the same iterate.
    assert int(s_i.iterations) == int(s_u.iterations)
    np.testing.assert_array_equal(w_i, w_u)


def test_projected_gradient_simplex_implicit_equals_unrolled():
    Q = jnp.array([[2.0, 0.3, 0.0], [0.3, 1.0, 0.2], [0.0, 0.2, 1.5]])

    def f(x, c):
        return 0.5 * x @ Q @ x + c @ x

    kwargs = dict(stepsize=0.4, tol=1e-13, maxiter=2000)
    c = jnp.array([0.1, -0.4, 0.2])
    implicit = S.ProjectedGradient(f, P.projection_simplex, **kwargs)
    unrolled = S.ProjectedGradient(f, P.projection_simplex, implicit_diff=False, **kwargs)
    j_i = jax.jacrev(lambda c: implicit.run(jnp.full(3, 1 / 3), 1.0, c).params)(c)
    j_u = jax.jacrev(lambda c: unrolled.run(jnp.full(3, 1 / 3), 1.0, c).params)(c)
    np.testing.assert_allclose(j_i, j_u, rtol=1e-8, atol=1e-11)


def test_unrolled_stopped_early_differs_from_implicit():
    # The unrolled derivative is the derivative of the truncated iteration: with few
    # iterations it is visibly off, while the implicit one is exact at any iterate count
    # that reaches the solution. Gradient descent on ridge: closed form −H⁻¹w.
    def ridge(w, lam):
        return least_squares(w, X, Y) + 0.5 * lam * jnp.sum(w**2)

    lam = jnp.asarray(1.0)
    H = X.T @ X + lam * jnp.eye(4)
    exact = -jnp.linalg.solve(H, jnp.linalg.solve(H, X.T @ Y))
    short = S.GradientDescent(ridge, stepsize=1 / (L + 1), maxiter=10, implicit_diff=False)
    j_short = jax.jacrev(lambda lam: short.run(jnp.zeros(4), lam).params)(lam)
    assert np.max(np.abs(j_short - exact)) > 1e-3
    full = S.GradientDescent(ridge, stepsize=1 / (L + 1), maxiter=3000, tol=1e-12, implicit_diff=False)
    j_full = jax.jacrev(lambda lam: full.run(jnp.zeros(4), lam).params)(lam)
    np.testing.assert_allclose(j_full, exact, rtol=1e-8, atol=1e-12)


def test_mirror_descent_and_bcd_implicit_equals_unrolled():
    Q = jnp.array([[2.0, 0.3, 0.0], [0.3, 1.0, 0.2], [0.0, 0.2, 1.5]])

    def f(x, c):
        return 0.5 * x @ Q @ x + c @ x

    c = jnp.array([0.1, -0.1, 0.05])
    md = dict(stepsize=0.3, tol=1e-13, maxiter=1000)
    implicit = S.MirrorDescent(f, jnp.log, P.kl_projection_simplex, **md)
    unrolled = S.MirrorDescent(f, jnp.log, P.kl_projection_simplex, implicit_diff=False, **md)
    j_i = jax.jacfwd(lambda c: implicit.run(jnp.full(3, 1 / 3), 1.0, c).params)(c)
    j_u = jax.jacfwd(lambda c: unrolled.run(jnp.full(3, 1 / 3), 1.0, c).params)(c)
    np.testing.assert_allclose(j_i, j_u, rtol=1e-8, atol=1e-11)

    bcd = dict(stepsize=(1 / jnp.diag(X.T @ X)).tolist(), tol=1e-13, maxiter=1000)
    implicit = S.BlockCoordinateDescent(least_squares, prox.prox_lasso, **bcd)
    unrolled = S.BlockCoordinateDescent(least_squares, prox.prox_lasso, implicit_diff=False, **bcd)
    g_i = jax.grad(lambda lam: jnp.sum(implicit.run(jnp.zeros(4), lam, X, Y).params))(2.0)
    g_u = jax.grad(lambda lam: jnp.sum(unrolled.run(jnp.zeros(4), lam, X, Y).params))(2.0)
    np.testing.assert_allclose(g_i, g_u, rtol=1e-8)
