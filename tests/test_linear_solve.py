"""Linear solves: every method against numpy, preconditioning, ridge, null spaces, diagnostics."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sensitiv

rng = np.random.default_rng(0)
M = rng.normal(size=(12, 12))
SPD = jnp.asarray(M @ M.T + 12 * np.eye(12))
GENERAL = jnp.asarray(M + 6 * np.eye(12))
B = jnp.asarray(rng.normal(size=12))


@pytest.mark.parametrize("method", sensitiv._linear_solve.METHODS)
def test_every_method_matches_numpy(method):
    matrix = SPD if method in ("cg", "cholesky") else GENERAL
    x, info = sensitiv.linear_solve(lambda v: matrix @ v, B, method)
    expected = np.linalg.solve(np.asarray(matrix), np.asarray(B))
    np.testing.assert_allclose(x, expected, rtol=1e-10, atol=1e-12)
    assert bool(info.converged)
    assert float(info.relative_residual) < 1e-10


def test_pytree_right_hand_side():
    b = {"u": B[:5], "v": B[5:]}

    def matvec(t):
        flat = jnp.concatenate([t["u"], t["v"]])
        out = SPD @ flat
        return {"u": out[:5], "v": out[5:]}

    x, info = sensitiv.linear_solve(matvec, b, "cg")
    expected = np.linalg.solve(np.asarray(SPD), np.asarray(B))
    np.testing.assert_allclose(jnp.concatenate([x["u"], x["v"]]), expected, rtol=1e-10)


def test_jacobi_preconditioner_cuts_iterations():
    scales = jnp.logspace(0, 4, 12)
    badly_scaled = SPD * jnp.sqrt(scales)[:, None] * jnp.sqrt(scales)[None, :]
    mv = lambda v: badly_scaled @ v
    _, plain = sensitiv.linear_solve(mv, B, "cg")
    x, pre = sensitiv.linear_solve(mv, B, "cg", precond="jacobi")
    assert bool(pre.converged)
    assert int(pre.iterations) < int(plain.iterations)
    np.testing.assert_allclose(badly_scaled @ x, B, rtol=1e-9, atol=1e-9)
    diag_pre = sensitiv.jacobi_preconditioner(jnp.diag(badly_scaled))
    _, pre2 = sensitiv.linear_solve(mv, B, "cg", precond=diag_pre)
    assert int(pre2.iterations) == int(pre.iterations)


def test_ridge_and_initial_guess():
    x, info = sensitiv.linear_solve(lambda v: SPD @ v, B, "cg", ridge=2.0)
    np.testing.assert_allclose(x, np.linalg.solve(np.asarray(SPD) + 2 * np.eye(12), B), rtol=1e-10)
    exact = jnp.linalg.solve(SPD, B)
    _, warm = sensitiv.linear_solve(lambda v: SPD @ v, B, "cg", init=exact)
    assert int(warm.iterations) <= 1


def test_null_space_gives_minimum_norm_solution():
    # A symmetric PSD matrix with a known 2-dimensional null space.
    q, _ = np.linalg.qr(rng.normal(size=(12, 12)))
    eig = np.concatenate([[0.0, 0.0], np.linspace(1, 5, 10)])
    a = jnp.asarray(q @ np.diag(eig) @ q.T)
    null = jnp.asarray(q[:, :2].T)
    b = a @ jnp.asarray(rng.normal(size=12))  # consistent right-hand side
    expected = np.linalg.pinv(np.asarray(a)) @ np.asarray(b)
    for method in ("cg", "gmres", "cholesky", "lu", "lstsq", "auto"):
        x, info = sensitiv.linear_solve(lambda v: a @ v, b, method, null_space=null)
        np.testing.assert_allclose(x, expected, rtol=1e-8, atol=1e-10, err_msg=method)
        assert bool(info.converged), method
    # Without being told, auto still gives the minimum-norm answer (pseudo-inverse fallback).
    x, info = sensitiv.linear_solve(lambda v: a @ v, b, "auto")
    np.testing.assert_allclose(x, expected, rtol=1e-8, atol=1e-10)


def test_unconverged_krylov_is_reported_not_zero():
    x, info = sensitiv.linear_solve(lambda v: SPD @ v, B, "cg", maxiter=2)
    assert not bool(info.converged)
    assert int(info.iterations) == 2
    assert float(info.relative_residual) > 1e-6
    assert float(jnp.linalg.norm(x)) > 0


def test_info_survives_jit_and_vmap():
    solve = jax.jit(jax.vmap(lambda b: sensitiv.linear_solve(lambda v: SPD @ v, b, "cg", maxiter=3)))
    _, info = solve(jnp.stack([B, 2 * B, jnp.zeros(12)]))
    assert info.converged.shape == (3,)
    assert not bool(info.converged[0]) and bool(info.converged[2])


def test_unconverged_solve_inside_custom_root_warns():
    def f(x, theta):
        return 0.5 * x @ SPD @ x - theta * B @ x

    solver = sensitiv.custom_root(jax.grad(f), solve=sensitiv.LinearSolver("cg", maxiter=1))(
        lambda theta: theta * jnp.linalg.solve(SPD, B)
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        jax.block_until_ready(jax.jacfwd(solver)(1.0))
    assert any("did not converge" in str(w.message) for w in caught)


def test_user_callable_solve_gets_measured_residual():
    def my_solve(matvec, b):
        return jnp.linalg.solve(SPD, b)

    x, info = sensitiv.linear_solve(lambda v: SPD @ v, B, my_solve)
    assert bool(info.converged) and int(info.iterations) == -1
