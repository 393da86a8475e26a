"""Implicit differentiation core, checked against closed forms, dense solves and re-solving."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import sensitiv
from sensitiv.errors import ImplicitDiffError

METHODS = ["cg", "gmres", "bicgstab", "normal_cg", "cholesky", "lu", "lstsq", "auto"]

X = jax.random.normal(jax.random.PRNGKey(0), (30, 6))
Y = jax.random.normal(jax.random.PRNGKey(1), (30,))


def ridge_objective(x, theta):
    return 0.5 * ((X @ x - Y) ** 2).sum() + 0.5 * theta * (x**2).sum()


def ridge_closed_form(theta):
    return jnp.linalg.solve(X.T @ X + theta * jnp.eye(6), X.T @ Y)


def ridge_jacobian_closed_form(theta):
    a = X.T @ X + theta * jnp.eye(6)
    return -jnp.linalg.solve(a, ridge_closed_form(theta))


def relative_error(a, b):
    return float(jnp.linalg.norm(jnp.ravel(a - b)) / jnp.linalg.norm(jnp.ravel(b)))


# -- ridge regression: the seed's example ------------------------------------------------


def test_seed_example_verbatim_no_initial_guess():
    @sensitiv.custom_root(jax.grad(ridge_objective))
    def ridge_solver(theta):
        return jnp.linalg.solve(X.T @ X + theta * jnp.eye(6), X.T @ Y)

    expected = ridge_jacobian_closed_form(10.0)
    for transform in (jax.jacobian, jax.jacfwd, jax.jacrev):
        assert relative_error(transform(ridge_solver)(10.0), expected) < 1e-10


@pytest.mark.parametrize("method", METHODS)
def test_ridge_every_solver_every_mode(method):
    @sensitiv.custom_root(jax.grad(ridge_objective), solve=method)
    def ridge_solver(init_x, theta):  # jaxopt's convention: initial guess first
        del init_x
        return ridge_closed_form(theta)

    thetas = jnp.array([0.5, 3.0, 10.0])
    expected = jax.vmap(ridge_jacobian_closed_form)(thetas)
    x0 = jnp.zeros(6)
    for transform in (jax.jacfwd, jax.jacrev):
        got = jax.vmap(transform(ridge_solver, argnums=1), in_axes=(None, 0))(x0, thetas)
        assert relative_error(got, expected) < 1e-10, (method, transform)

    optimality = jax.grad(ridge_objective)
    sols = jax.vmap(ridge_closed_form)(thetas)
    jvps, infos = jax.vmap(
        lambda s, t: sensitiv.root_jvp_with_info(optimality, s, (t,), (1.0,), solve=method)
    )(sols, thetas)
    assert relative_error(jvps, expected) < 1e-10
    assert bool(jnp.all(infos.converged))
    assert float(jnp.max(infos.relative_residual)) < 1e-10

    eye = jnp.eye(6)
    vjps = jax.vmap(
        lambda s, t: jax.vmap(
            lambda v: sensitiv.root_vjp(optimality, s, (t,), v, solve=method)[0]
        )(eye)
    )(sols, thetas)
    assert relative_error(vjps, expected) < 1e-10


def test_jit_of_the_whole_thing_and_batch():
    @sensitiv.custom_root(jax.grad(ridge_objective))
    def ridge_solver(theta):
        return ridge_closed_form(theta)

    f = jax.jit(jax.vmap(jax.jacfwd(ridge_solver)))
    thetas = jnp.linspace(0.1, 5.0, 4)
    assert relative_error(f(thetas), jax.vmap(ridge_jacobian_closed_form)(thetas)) < 1e-10
    g = jax.jit(jax.grad(lambda t: ridge_solver(t).sum()))
    assert abs(float(g(2.0)) - float(ridge_jacobian_closed_form(2.0).sum())) < 1e-10


# -- nonlinear problems, second order ------------------------------------------------------

Z = jax.random.normal(jax.random.PRNGKey(2), (40, 3))
LABELS = (jax.random.uniform(jax.random.PRNGKey(3), (40,)) < 0.5).astype(jnp.float64)


def logistic_objective(w, lam, scale):
    logits = (Z * scale) @ w
    loss = jnp.sum(jnp.logaddexp(0.0, logits) - LABELS * logits)
    return loss + 0.5 * lam * jnp.sum(w**2)


@sensitiv.custom_root(jax.grad(logistic_objective))
def logistic_regression(lam, scale):
    """Newton's method in a while_loop: not differentiable by JAX itself in reverse mode."""
    grad = jax.grad(logistic_objective)
    hess = jax.hessian(logistic_objective)

    def cond(state):
        w, k = state
        return (jnp.linalg.norm(grad(w, lam, scale)) > 1e-13) & (k < 50)

    def body(state):
        w, k = state
        return w - jnp.linalg.solve(hess(w, lam, scale), grad(w, lam, scale)), k + 1

    w, _ = jax.lax.while_loop(cond, body, (jnp.zeros(3), 0))
    return w


def test_check_grads_logistic_regression_order_2():
    check_grads(logistic_regression, (0.7, 1.3), order=2, modes=("fwd", "rev"), eps=1e-4)


def test_logistic_regression_against_finite_differences_of_resolving():
    h = 1e-5
    fd = (logistic_regression(0.7 + h, 1.3) - logistic_regression(0.7 - h, 1.3)) / (2 * h)
    assert relative_error(jax.jacfwd(logistic_regression)(0.7, 1.3), fd) < 1e-8
    assert relative_error(jax.jacrev(logistic_regression)(0.7, 1.3), fd) < 1e-8


def contraction(x, a, b):
    # A contraction for |a| < 1: x = a tanh(x) + b
    return a * jnp.tanh(x) + b


@sensitiv.custom_fixed_point(contraction)
def fixed_point(x0, a, b):
    def body(_, x):
        return contraction(x, a, b)

    return jax.lax.fori_loop(0, 200, body, x0)


def test_check_grads_fixed_point_order_2():
    b = jnp.array([0.3, -0.5, 1.2])
    f = lambda a, b: fixed_point(jnp.zeros(3), a, b)
    x = f(0.6, b)
    assert float(jnp.max(jnp.abs(contraction(x, 0.6, b) - x))) < 1e-14
    check_grads(f, (0.6, b), order=2, modes=("fwd", "rev"), eps=1e-4)
    # Closed form for the elementwise fixed point: dx/db = 1 / (1 - a sech^2 x).
    expected = jnp.diag(1.0 / (1.0 - 0.6 / jnp.cosh(x) ** 2))
    assert relative_error(jax.jacfwd(f, argnums=1)(0.6, b), expected) < 1e-12


def test_hessian_and_grad_of_grad():
    loss = lambda lam: jnp.sum(logistic_regression(lam, 1.0) ** 2)
    h = 1e-4
    fd_second = (jax.grad(loss)(0.7 + h) - jax.grad(loss)(0.7 - h)) / (2 * h)
    assert abs(float(jax.grad(jax.grad(loss))(0.7)) - float(fd_second)) < 1e-7 * abs(float(fd_second)) + 1e-10
    assert abs(float(jax.hessian(loss)(0.7)) - float(fd_second)) < 1e-7 * abs(float(fd_second)) + 1e-10


# -- singular systems: a ring of springs ----------------------------------------------------

N_RING = 7
PERIOD = 10.0


def ring_energy(x, rest, stiffness):
    # 1-D ring: spring i joins i and i+1 (the last one wraps around the period).
    nxt = jnp.roll(x, -1).at[-1].add(PERIOD)
    return 0.5 * jnp.sum(stiffness * (nxt - x - rest) ** 2)


def ring_solution(rest, stiffness):
    """Minimum-norm (zero-mean) equilibrium, from the dense pseudo-inverse."""
    grad = jax.grad(ring_energy)
    hess = jax.hessian(ring_energy)(jnp.zeros(N_RING), rest, stiffness)
    return -jnp.linalg.pinv(hess) @ grad(jnp.zeros(N_RING), rest, stiffness)


TRANSLATION = jnp.ones((1, N_RING)) / jnp.sqrt(N_RING)


@pytest.mark.parametrize(
    "solve",
    [
        sensitiv.LinearSolver("cg", null_space=TRANSLATION),
        sensitiv.LinearSolver("gmres", null_space=TRANSLATION),
        sensitiv.LinearSolver("cholesky", null_space=TRANSLATION),
        sensitiv.LinearSolver("lu", null_space=TRANSLATION),
        "lstsq",
        "normal_cg",
        "auto",
    ],
    ids=["cg+null", "gmres+null", "cholesky+null", "lu+null", "lstsq", "normal_cg", "auto"],
)
def test_translation_invariant_ring_forward_equals_reverse_equals_pinv(solve):
    rest = jnp.linspace(1.0, 2.0, N_RING)
    stiffness = jnp.linspace(1.0, 3.0, N_RING)
    solver = sensitiv.custom_root(jax.grad(ring_energy), solve=solve)(ring_solution)
    x = solver(rest, stiffness)
    assert float(jnp.max(jnp.abs(jax.grad(ring_energy)(x, rest, stiffness)))) < 1e-12

    hess = jax.hessian(ring_energy)(x, rest, stiffness)
    mixed = jax.jacfwd(jax.grad(ring_energy), argnums=1)(x, rest, stiffness)
    dense = -jnp.linalg.pinv(hess) @ mixed

    fwd = jax.jacfwd(solver)(rest, stiffness)
    rev = jax.jacrev(solver)(rest, stiffness)
    assert relative_error(fwd, dense) < 1e-9
    assert relative_error(rev, dense) < 1e-9
    assert relative_error(fwd, rev) < 1e-9


def test_singular_known_mode_without_projection_is_not_silent():
    """Plain LU on the singular ring is singular: auto falls back to the minimum-norm answer."""
    rest = jnp.linspace(1.0, 2.0, N_RING)
    stiffness = jnp.ones(N_RING)
    x = ring_solution(rest, stiffness)
    mixed = jax.jacfwd(jax.grad(ring_energy), argnums=1)(x, rest, stiffness)
    dense = -jnp.linalg.pinv(jax.hessian(ring_energy)(x, rest, stiffness)) @ mixed
    u = jnp.zeros(N_RING).at[2].set(1.0)
    jvp, info = sensitiv.root_jvp_with_info(
        jax.grad(ring_energy), x, (rest, stiffness), (u, jnp.zeros(N_RING)), solve="auto"
    )
    assert bool(info.converged)
    assert relative_error(jvp, dense @ u) < 1e-10


# -- pytrees and keyword arguments -----------------------------------------------------------


def test_pytree_solution_and_parameters():
    def energy(x, params):
        a, b = x["a"], x["b"]
        return 0.5 * params["k"] * jnp.sum((a - params["c"]) ** 2) + 0.25 * jnp.sum(b**4) + jnp.sum(
            b * params["c"][:2]
        )

    def analytic(params):
        return {"a": params["c"], "b": -jnp.cbrt(params["c"][:2])}

    solver = sensitiv.custom_root(jax.grad(energy))(lambda params: analytic(params))
    params = {"k": 2.0, "c": jnp.array([0.5, 1.5, 2.0])}
    jac = jax.jacfwd(solver)(params)
    jac_rev = jax.jacrev(solver)(params)
    expected = jax.jacfwd(analytic)(params)
    for key in ("a", "b"):
        for inner in ("k", "c"):
            np.testing.assert_allclose(jac[key][inner], expected[key][inner], atol=1e-12)
            np.testing.assert_allclose(jac_rev[key][inner], expected[key][inner], atol=1e-12)


def test_keyword_arguments_including_var_kwargs():
    def optimality(x, theta, **kwargs):
        return x - theta * kwargs["scale"]

    @sensitiv.custom_root(optimality)
    def solver(theta, **kwargs):
        return theta * kwargs["scale"]

    d_theta = jax.grad(lambda t: solver(t, scale=3.0))(2.0)
    d_scale = jax.grad(lambda s: solver(2.0, scale=s))(3.0)
    assert abs(float(d_theta) - 3.0) < 1e-14
    assert abs(float(d_scale) - 2.0) < 1e-14

    @sensitiv.custom_root(jax.grad(ridge_objective))
    def solver_kw(*, theta):
        return ridge_closed_form(theta)

    got = jax.jacfwd(lambda t: solver_kw(theta=t))(4.0)
    assert relative_error(got, ridge_jacobian_closed_form(4.0)) < 1e-10


def test_arguments_f_does_not_take_are_not_differentiated():
    @sensitiv.custom_root(jax.grad(ridge_objective))
    def solver(theta, tol):  # tol is not an argument of F
        return ridge_closed_form(theta) + 0.0 * tol

    g = jax.grad(lambda tol: solver(1.0, tol).sum())(jnp.array(1e-3))
    assert float(g) == 0.0


# -- errors that say what to change -----------------------------------------------------------


def test_closed_over_value_error():
    def loss(theta):
        @sensitiv.custom_root(jax.grad(ridge_objective))
        def solver(init):
            return ridge_closed_form(theta)  # closes over the traced theta

        return solver(jnp.zeros(6)).sum()

    with pytest.raises(ImplicitDiffError, match="closes over"):
        jax.grad(loss)(1.0)


def test_output_structure_mismatch_error():
    @sensitiv.custom_root(lambda x, theta: jnp.sum(x) - theta)
    def solver(theta):
        return jnp.full(3, theta / 3)

    with pytest.raises(ImplicitDiffError, match="structure and shapes"):
        jax.jacfwd(solver)(1.0)


def test_unmatchable_arguments_error():
    @sensitiv.custom_root(lambda x, a, b: x - a * b)
    def solver(p):
        return p

    with pytest.raises(ImplicitDiffError, match="cannot match"):
        jax.grad(solver)(1.0)


def test_unknown_method_error():
    with pytest.raises(ImplicitDiffError, match="unknown linear solve method 'cgg'"):
        sensitiv.LinearSolver("cgg")


def test_reverse_mode_when_a_block_of_f_ignores_the_parameter():
    # The second block of F does not depend on h: its right-hand side in the tangent
    # system is a symbolic zero, which JAX's leaf-wise transpose of custom_linear_solve
    # used to reject. Closed form: a = h², b = 2a − 1.
    def F(x, h):
        a, b = x
        return (a - h**2, b - 2.0 * a + 1.0)

    @sensitiv.custom_root(F)
    def solver(init, h):
        return (h**2, 2.0 * h**2 - 1.0)

    init = (jnp.zeros(3), jnp.zeros(3))
    h = jnp.array([0.5, 1.0, 2.0])
    expected = (jnp.diag(2.0 * h), jnp.diag(4.0 * h))
    for jac in (jax.jacfwd, jax.jacrev):
        got = jac(lambda h: solver(init, h))(h)
        np.testing.assert_allclose(got[0], expected[0], rtol=1e-12)
        np.testing.assert_allclose(got[1], expected[1], rtol=1e-12)
    # Second order through reverse mode: d²b/dh² = 4 on the diagonal.
    hess = jax.hessian(lambda h: solver(init, h)[1].sum())(h)
    np.testing.assert_allclose(hess, 4.0 * jnp.eye(3), atol=1e-12)


def test_positional_matching_follows_the_solver_order_not_alphabetical():
    # Solver argument names unrelated to F's and not in alphabetical order.
    def F(x, scale, shift):
        return x - (scale * 2.0 + shift)

    @sensitiv.custom_root(F)
    def solver(x0, zeta, alpha):
        return zeta * 2.0 + alpha

    dzeta, dalpha = jax.grad(lambda z, a: solver(0.0, z, a), argnums=(0, 1))(3.0, 5.0)
    assert (float(dzeta), float(dalpha)) == (2.0, 1.0)


def test_var_positional_f_keeps_every_solver_argument_unless_named_as_a_guess():
    def F(x, *args):
        return x - args[0] * args[1]

    @sensitiv.custom_root(F)
    def product(p, q):
        return p * q

    @sensitiv.custom_root(F)
    def product_from_guess(init_x, p, q):
        return p * q + 0.0 * init_x

    assert float(jax.grad(product)(2.0, 3.0)) == 3.0
    assert float(jax.grad(product_from_guess, argnums=1)(7.0, 2.0, 3.0)) == 3.0
    assert float(jax.grad(product_from_guess, argnums=0)(7.0, 2.0, 3.0)) == 0.0
