"""scipy.optimize.minimize behind jax.pure_callback, differentiated implicitly: the
Jacobian of scipy's L-BFGS-B solution matches the same problem solved in JAX."""

import jax
import jax.numpy as jnp
import numpy as np

from sensitiv import solvers as S

X = jax.random.normal(jax.random.PRNGKey(0), (20, 4))
LABELS = (jax.random.normal(jax.random.PRNGKey(1), (20,)) > 0).astype(float)


def logistic(w, lam):
    z = X @ w
    return jnp.sum(jnp.logaddexp(0.0, z) - LABELS * z) + 0.5 * lam * jnp.sum(w**2)


def test_lbfgsb_jacobian_matches_jax_solution():
    lam = jnp.asarray(0.5)
    scipy_solver = S.ScipyMinimize(logistic, tol=1e-10)
    w_sp, state = scipy_solver.run(jnp.zeros(4), lam)
    # L-BFGS-B's line search works on f, which stops changing in float64 once
    # ‖∇f‖ ≈ 1e-9 here: scipy may stop short of gtol=1e-10, and `converged` says so.
    assert float(state.error) <= 1e-8 and int(state.iterations) > 0
    assert bool(state.converged) == (float(state.error) <= 1e-10)
    reference = S.GradientDescent(logistic, tol=1e-12, maxiter=5000)
    w_nt, _ = reference.run(jnp.zeros(4), lam)
    np.testing.assert_allclose(w_sp, w_nt, rtol=0, atol=1e-8)
    # Jacobians in θ: forward mode (jvp) and reverse mode (grad) through the callback.
    j_sp = jax.jacfwd(lambda lam: scipy_solver.run(jnp.zeros(4), lam).params)(lam)
    j_nt = jax.jacfwd(lambda lam: reference.run(jnp.zeros(4), lam).params)(lam)
    np.testing.assert_allclose(j_sp, j_nt, rtol=1e-6, atol=1e-10)
    g_sp = jax.grad(lambda lam: jnp.sum(scipy_solver.run(jnp.zeros(4), lam).params ** 2))(lam)
    np.testing.assert_allclose(g_sp, 2 * jnp.vdot(w_nt, j_nt), rtol=1e-6)


def test_bounded_lbfgsb_matches_jax_projected_gradient_and_vmaps():
    lower, upper = jnp.full(4, -0.3), jnp.full(4, 0.25)
    lam = jnp.asarray(0.2)
    scipy_solver = S.ScipyBoundedMinimize(logistic, tol=1e-11)
    jax_solver = S.ProjectedGradient(
        logistic, lambda x, b: jnp.clip(x, b[0], b[1]), stepsize=0.05, tol=1e-12, maxiter=5000
    )
    x_sp, state = scipy_solver.run(jnp.zeros(4), (lower, upper), lam)
    x_pg, _ = jax_solver.run(jnp.zeros(4), (lower, upper), lam)
    assert float(state.error) <= 1e-9  # see the note on L-BFGS-B's precision above
    np.testing.assert_allclose(x_sp, x_pg, atol=1e-9)
    active = (np.abs(np.asarray(x_sp) - 0.25) < 1e-9) | (np.abs(np.asarray(x_sp) + 0.3) < 1e-9)
    assert 0 < active.sum() < 4
    # Jacobian with respect to the bounds and the regularization, reverse mode.
    run_sp = lambda upper, lam: scipy_solver.run(jnp.zeros(4), (lower, upper), lam).params
    run_pg = lambda upper, lam: jax_solver.run(jnp.zeros(4), (lower, upper), lam).params
    for a, b in zip(jax.jacrev(run_sp, argnums=(0, 1))(upper, lam), jax.jacrev(run_pg, argnums=(0, 1))(upper, lam)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)
    # One scipy run per batch element under vmap.
    lams = jnp.array([0.2, 1.0])
    batched = jax.vmap(lambda lam: scipy_solver.run(jnp.zeros(4), (lower, upper), lam).params)(lams)
    np.testing.assert_allclose(batched[0], x_sp, atol=1e-9)
