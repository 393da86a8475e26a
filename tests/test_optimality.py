"""The mappings themselves: each vanishes (F) or is the identity (T) at a known solution,
used with sensitiv.custom_root / custom_fixed_point on closed-form solvers they give the
closed-form Jacobians, and misuse is reported clearly."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sensitiv
from sensitiv import optimality as O
from sensitiv import projections as P
from sensitiv import prox
from sensitiv.errors import ImplicitDiffError, InputError

X = jax.random.normal(jax.random.PRNGKey(0), (10, 4))
Y = jax.random.normal(jax.random.PRNGKey(1), (10,))
GRAM = X.T @ X


def tree_max_abs(tree):
    return max(float(jnp.max(jnp.abs(leaf))) for leaf in jax.tree_util.tree_leaves(tree))


def ridge_solution(lam, y):
    return jnp.linalg.solve(GRAM + lam * jnp.eye(4), X.T @ y)


def least_squares(w, y):
    return 0.5 * jnp.sum((X @ w - y) ** 2)


def test_stationary_from_fun_or_grad_on_the_papers_ridge_example():
    f = lambda w, lam, y: least_squares(w, y) + 0.5 * lam * jnp.sum(w**2)
    F = O.stationary(f)
    F_grad = O.stationary(grad=lambda w, lam, y: X.T @ (X @ w - y) + lam * w)
    lam = jnp.asarray(1.5)
    w = ridge_solution(lam, Y)
    np.testing.assert_allclose(F(w, lam, Y), 0, atol=1e-12)
    np.testing.assert_allclose(F_grad(w, lam, Y), F(w, lam, Y), atol=1e-14)

    # The paper's example: a closed-form solver decorated with the stationary mapping.
    @sensitiv.custom_root(F)
    def ridge(lam, y):
        return ridge_solution(lam, y)

    H = GRAM + lam * jnp.eye(4)
    jac_lam, jac_y = jax.jit(lambda lam, y: (jax.jacrev(ridge)(lam, y), jax.jacfwd(ridge, argnums=1)(lam, y)))(lam, Y)
    np.testing.assert_allclose(jac_lam, -jnp.linalg.solve(H, w), rtol=1e-10)
    np.testing.assert_allclose(jac_y, jnp.linalg.solve(H, X.T), rtol=1e-10)
    with pytest.raises(ImplicitDiffError, match="exactly one"):
        O.stationary()
    with pytest.raises(ImplicitDiffError, match="exactly one"):
        O.stationary(f, grad=f)


def test_proximal_and_projected_gradient_maps_fixed_points():
    # Ridge as a proximal problem: g = ½λ‖w‖² → the ridge solution is a fixed point for
    # every step size.
    lam = jnp.asarray(1.5)
    w = ridge_solution(lam, Y)
    for eta in (0.01, 0.1):
        T = O.proximal_gradient_fixed_point(least_squares, prox.prox_ridge, stepsize=eta)
        np.testing.assert_allclose(T(w, lam, Y), w, atol=1e-13)

    @sensitiv.custom_fixed_point(O.proximal_gradient_fixed_point(least_squares, prox.prox_ridge, stepsize=0.05))
    def ridge(hyperparams_prox, y):  # named like the mapping's arguments
        return ridge_solution(hyperparams_prox, y)

    H = GRAM + lam * jnp.eye(4)
    np.testing.assert_allclose(jax.jacfwd(ridge)(lam, Y), -jnp.linalg.solve(H, w), rtol=1e-9)

    # Projected gradient onto the non-negative orthant (non-negative least squares):
    # check T(x) = x at a solution computed by an independent solver (scipy's nnls).
    from scipy.optimize import nnls

    x_nnls, _ = nnls(np.asarray(X), np.asarray(Y))
    T = O.projected_gradient_fixed_point(least_squares, P.projection_non_negative, stepsize=0.05)
    np.testing.assert_allclose(T(jnp.asarray(x_nnls), None, Y), x_nnls, atol=1e-10)


def test_mirror_descent_map_is_exponentiated_gradient():
    c = jnp.array([0.3, -0.2, 0.1])
    f = lambda x, c: 0.5 * jnp.sum(x**2) + c @ x
    T = O.mirror_descent_fixed_point(f, jnp.log, P.kl_projection_simplex, stepsize=0.7)
    x = jnp.array([0.2, 0.5, 0.3])
    expected = x * jnp.exp(-0.7 * (x + c))
    np.testing.assert_allclose(T(x, 1.0, c), expected / expected.sum(), rtol=1e-14)
    # The minimizer over the simplex (interior: x = 1/3 − c + mean(c)) is a fixed point.
    x_star = 1 / 3 - c + c.mean()
    np.testing.assert_allclose(T(x_star, 1.0, c), x_star, atol=1e-15)


def test_block_map_array_rows_equal_tuple_blocks():
    W = jax.random.normal(jax.random.PRNGKey(2), (3, 4))
    f = lambda B, W: 0.5 * jnp.sum((B - W) ** 2) + 0.1 * jnp.sum(B[0] * B[1])
    simplex = prox.make_prox_from_projection(P.projection_simplex)
    steps = jnp.array([0.5, 0.25, 1.0])
    T_rows = O.block_proximal_gradient_fixed_point(f, simplex, stepsize=steps)
    T_tuple = O.block_proximal_gradient_fixed_point(
        lambda rows, W: f(jnp.stack(rows), W), (simplex, simplex, simplex), stepsize=(0.5, 0.25, 1.0)
    )
    B = jnp.full((3, 4), 0.25)
    rows = T_rows(B, 1.0, W)
    blocks = T_tuple(tuple(B), 1.0, W)
    np.testing.assert_allclose(rows, jnp.stack(blocks), rtol=1e-14)
    g = jax.grad(f)(B, W)
    np.testing.assert_allclose(rows[1], P.projection_simplex(B[1] - 0.25 * g[1]), rtol=1e-14)
    with pytest.raises(ImplicitDiffError, match="2 entries for 3 blocks"):
        O.block_proximal_gradient_fixed_point(
            lambda rows, W: f(jnp.stack(rows), W), (simplex, simplex), stepsize=1.0
        )(tuple(B), 1.0, W)


def test_newton_map_fixed_point_and_vanishing_jacobian():
    # The dense-Hessian map is exercised by the Newton solver's tests; here the
    # Hessian-free (CG) one, with a closed-form solver.
    theta = jnp.array([0.5, 2.0, 1.0])
    f = lambda x, theta: jnp.sum(jnp.exp(x)) - theta @ x
    x_star = jnp.log(theta)
    T = O.newton_fixed_point(f, hessian_solve="cg")

    @sensitiv.custom_fixed_point(T)
    def solve(theta):
        return jnp.log(theta)

    @jax.jit
    def checks(x, theta):
        # At the solution ∂₁T = 0: the implicit system is −I J = −∂₂T.
        return T(x, theta), jax.jacfwd(T)(x, theta), jax.jacrev(solve)(theta)

    value, d1T, jac = checks(x_star, theta)
    np.testing.assert_allclose(value, x_star, atol=1e-14)
    np.testing.assert_allclose(d1T, 0, atol=1e-12)
    np.testing.assert_allclose(jac, jnp.diag(1 / theta), rtol=1e-12)
    with pytest.raises(ImplicitDiffError, match="hessian_solve"):
        O.newton_fixed_point(f, hessian_solve="qr")


def test_cones_svec_and_projections():
    cones = O.Cones(zero=2, nonnegative=3, second_order=(3, 2), psd=(3,))
    assert cones.dim == 2 + 3 + 5 + 6
    S1 = jnp.array([[1.0, 2.0, 0.5], [2.0, -3.0, 0.1], [0.5, 0.1, 0.7]])
    S2 = jnp.array([[0.3, -1.0, 0.0], [-1.0, 2.0, 0.4], [0.0, 0.4, -0.5]])
    np.testing.assert_allclose(O.smat(O.svec(S1)), S1, rtol=1e-15)
    np.testing.assert_allclose(O.svec(S1) @ O.svec(S2), jnp.trace(S1 @ S2), rtol=1e-14)
    w = jax.random.normal(jax.random.PRNGKey(3), (cones.dim,))
    y = O.projection_dual_cone(w, cones)
    s = O.projection_cone(-w, cones)
    # Moreau: w = Π_{K*}(w) − Π_K(−w), with orthogonal parts.
    np.testing.assert_allclose(y - s, w, atol=1e-14)
    np.testing.assert_allclose(y @ s, 0, atol=1e-14)
    np.testing.assert_allclose(y[:2], w[:2])  # dual of the zero cone is everything
    np.testing.assert_array_equal(s[:2], 0)
    psd_part = O.smat(y[-6:])
    assert float(jnp.linalg.eigvalsh(psd_part).min()) >= -1e-14
    with pytest.raises(InputError, match="positive"):
        O.Cones(second_order=(0,))
    with pytest.raises(InputError, match="16 rows"):
        O.projection_cone(jnp.ones(3), cones)
    with pytest.raises(InputError, match="svec"):
        O.smat(jnp.ones(4))


def test_conic_residual_vanishes_at_a_hand_solved_lp():
    # min −x₁ − x₂ s.t. x₁ + 2x₂ ≤ 4, 3x₁ + x₂ ≤ 6, x ≥ 0  → x = (1.6, 1.2), y = (0.4, 0.2, 0, 0).
    cones = O.Cones(nonnegative=4)
    A = jnp.array([[1.0, 2.0], [3.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    b = jnp.array([4.0, 6.0, 0.0, 0.0])
    c = jnp.array([-1.0, -1.0])
    x = jnp.array([1.6, 1.2])
    y = jnp.array([0.4, 0.2, 0.0, 0.0])
    s = b - A @ x
    F = O.conic_residual(cones)
    point = O.conic_point(O.ConicSolution(x, y, s))
    residual = F(point, A, b, c)
    np.testing.assert_allclose(residual.x, 0, atol=1e-14)
    np.testing.assert_allclose(residual.w, 0, atol=1e-14)
    back = O.conic_solution(point, cones)
    np.testing.assert_allclose(back.y, y, atol=1e-15)
    np.testing.assert_allclose(back.s, s, atol=1e-15)

    # Closed-form solver + implicit derivative: x = A_act⁻¹ b_act on the two active rows.
    @sensitiv.custom_root(F)
    def lp(A, b, c):
        xs = jnp.linalg.solve(A[:2], b[:2])
        ys = jnp.concatenate([jnp.linalg.solve(A[:2].T, -c), jnp.zeros(2)])
        return O.ConicPoint(xs, ys - (b - A @ xs))

    # Reverse mode through root_vjp: vᵀ ∂x/∂b for v = e₁.
    cotangent = O.ConicPoint(jnp.array([1.0, 0.0]), jnp.zeros(4))
    jac_b, (_, vjp_b, _) = jax.jit(
        lambda A, b, c: (jax.jacfwd(lambda b: lp(A, b, c).x)(b), sensitiv.root_vjp(F, point, (A, b, c), cotangent))
    )(A, b, c)
    np.testing.assert_allclose(jac_b[:, :2], jnp.linalg.inv(A[:2]), rtol=1e-12)
    np.testing.assert_allclose(jac_b[:, 2:], 0, atol=1e-14)
    np.testing.assert_allclose(vjp_b, jac_b[0], atol=1e-13)
def test_kkt_mapping_with_pytree_primal_and_duals():
    # min ½‖u‖² + ½‖v‖² s.t. u + v = t (dict-valued constraint), v ≤ s elementwise.
    def f(z, p):
        return 0.5 * jnp.sum(z["u"] ** 2) + 0.5 * jnp.sum(z["v"] ** 2)

    def H(z, t):
        return {"sum": z["u"] + z["v"] - t}

    def G(z, s):
        return (z["v"] - s,)

    F = O.kkt(f, H, G)
    t = jnp.array([2.0, 4.0])
    s = jnp.array([0.5, 3.0])
    # Solution: first coordinate v capped at 0.5 (active), second u = v = 2 (inactive).
    z = {"u": jnp.array([1.5, 2.0]), "v": jnp.array([0.5, 2.0])}
    nu = {"sum": jnp.array([-1.5, -2.0])}
    lam = (jnp.array([1.0, 0.0]),)
    sol = O.KKTSolution(z, nu, lam)
    residual = F(sol, None, t, s)
    assert tree_max_abs(residual) == 0.0
    assert jax.tree_util.tree_structure(residual) == jax.tree_util.tree_structure(sol)
    dsol = sensitiv.root_jvp(F, sol, (None, t, s), (None, jnp.array([1.0, 0.0]), jnp.zeros(2)))
    # Raising t₁ with v₁ capped moves u₁ only.
    np.testing.assert_allclose(dsol.primal["u"], [1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(dsol.primal["v"], [0.0, 0.0], atol=1e-12)


