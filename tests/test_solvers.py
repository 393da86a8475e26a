"""Every solver with its paired mapping: the mapping vanishes at the returned solution,
and implicit derivatives match an independent reference (closed forms where they exist,
central finite differences of re-solving otherwise), in forward and reverse mode."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sensitiv import optimality as O
from sensitiv import projections as P
from sensitiv import prox
from sensitiv import solvers as S
from sensitiv.errors import ImplicitDiffError, InputError

KEYS = jax.random.split(jax.random.PRNGKey(42), 12)
X = jax.random.normal(KEYS[0], (15, 5))
Y = jax.random.normal(KEYS[1], (15,))
GRAM = X.T @ X
L = float(jnp.linalg.eigvalsh(GRAM).max())
M = jax.random.normal(KEYS[2], (5, 5))
Q = M @ M.T + 0.5 * jnp.eye(5)
C = jax.random.normal(KEYS[3], (5,))


def tree_max_abs(tree):
    return max(float(jnp.max(jnp.abs(leaf))) for leaf in jax.tree_util.tree_leaves(tree))


def fd_jvp(solve, theta, direction, h=1e-6):
    """Central finite difference of re-solving along `direction`."""
    plus = solve(jax.tree_util.tree_map(lambda t, d: t + h * d, theta, direction))
    minus = solve(jax.tree_util.tree_map(lambda t, d: t - h * d, theta, direction))
    return jax.tree_util.tree_map(lambda a, b: (a - b) / (2 * h), plus, minus)


def with_solution(run):
    """`θ ↦ (x*, (x*, state))` for `jax.jacfwd/jacrev(..., has_aux=True)`: one compiled
    program gives the solution, its state and the Jacobian."""

    def fun(*args):
        out = run(*args)
        return out.params, out

    return fun


def assert_close(actual, expected, rtol=1e-8):
    actual, expected = np.asarray(actual), np.asarray(expected)
    scale = max(np.abs(expected).max(), 1e-12)
    np.testing.assert_allclose(actual, expected, rtol=0, atol=rtol * scale)


# --- stationary: gradient descent on ridge regression ----------------------------------------


def ridge_objective(w, lam, X, y):
    return 0.5 * jnp.sum((X @ w - y) ** 2) + 0.5 * lam * jnp.sum(w**2)


def test_gradient_descent_stationary_ridge_closed_form():
    # Pytree parameters and the backtracking line search (stepsize=None).
    def objective(p, lam, y):
        return ridge_objective(p["w"], lam, X, y)

    solver = S.GradientDescent(objective, tol=1e-11, maxiter=5000)
    lam = jnp.asarray(2.0)
    run = with_solution(lambda lam, y: solver.run({"w": jnp.zeros(5)}, lam, y))
    jac, (p, state) = jax.jacrev(run, argnums=(0, 1), has_aux=True)(lam, Y)
    dlam, dy = jac["w"]  # the Jacobian is nested: output structure, then arguments
    assert bool(state.converged)
    F = solver.optimality_fun()
    assert tree_max_abs(F(p, lam, Y)) <= 1e-11
    H = GRAM + lam * jnp.eye(5)
    w_ref = jnp.linalg.solve(H, X.T @ Y)
    assert_close(p["w"], w_ref, 1e-10)
    # dw/dlam = −H⁻¹ w ; dw/dy = H⁻¹ Xᵀ (closed forms), reverse mode.
    assert_close(dlam, -jnp.linalg.solve(H, w_ref), 1e-9)
    assert_close(dy, jnp.linalg.solve(H, X.T), 1e-9)


def test_newton_fixed_point_logistic_against_resolving():
    labels = (Y > 0).astype(float)

    def logistic(w, lam):
        z = X @ w
        return jnp.sum(jnp.logaddexp(0.0, z) - labels * z) + 0.5 * lam * jnp.sum(w**2)

    solver = S.Newton(logistic, tol=1e-12)
    lam = jnp.asarray(0.7)
    w, state = solver.run(jnp.zeros(5), lam)
    assert bool(state.converged) and int(state.iterations) < 20
    T = solver.optimality_fun()
    assert tree_max_abs(jax.tree_util.tree_map(jnp.subtract, T(w, lam), w)) <= 1e-12
    run = lambda lam: solver.run(jnp.zeros(5), lam).params
    assert_close(jax.jacfwd(run)(lam), fd_jvp(run, lam, 1.0, h=1e-5), 1e-7)


# --- proximal gradient: lasso on its support --------------------------------------------------


def least_squares(w, X, y):
    return 0.5 * jnp.sum((X @ w - y) ** 2)


def test_proximal_gradient_lasso_closed_form_on_support():
    solver = S.ProximalGradient(least_squares, prox.prox_lasso, stepsize=1 / L, tol=1e-12, maxiter=5000)
    lam = jnp.asarray(3.0)
    run = lambda lam, y: solver.run(jnp.zeros(5), lam, X, y).params
    jac_fwd, (w, state) = jax.jacfwd(with_solution(lambda lam: solver.run(jnp.zeros(5), lam, X, Y)), has_aux=True)(lam)
    assert bool(state.converged)
    T = solver.optimality_fun()
    assert tree_max_abs(T(w, lam, X, Y) - w) <= 1e-12
    support = np.abs(np.asarray(w)) > 0
    assert 0 < support.sum() < 5  # a genuine lasso solution with zeros
    XS = np.asarray(X)[:, support]
    inv = np.linalg.inv(XS.T @ XS)
    dlam = np.zeros(5)
    dlam[support] = -inv @ np.sign(np.asarray(w)[support])
    dy = np.zeros((5, 15))
    dy[support] = inv @ XS.T
    assert_close(jac_fwd, dlam, 1e-9)
    rev_lam, rev_y = jax.jacrev(run, argnums=(0, 1))(lam, Y)
    assert_close(rev_lam, dlam, 1e-9)
    assert_close(rev_y, dy, 1e-9)


def test_proximal_gradient_elastic_net_line_search():
    solver = S.ProximalGradient(least_squares, prox.prox_elastic_net, tol=1e-11, maxiter=5000)
    hyper = (jnp.asarray(3.0), jnp.asarray(0.5))
    (g1, g2), (w, state) = jax.jacfwd(with_solution(lambda h: solver.run(jnp.zeros(5), h, X, Y)), has_aux=True)(hyper)
    assert bool(state.converged)
    support = np.abs(np.asarray(w)) > 0
    XS = np.asarray(X)[:, support]
    inv = np.linalg.inv(XS.T @ XS + 0.5 * np.eye(support.sum()))
    d1 = np.zeros(5)
    d1[support] = -inv @ np.sign(np.asarray(w)[support])
    d2 = np.zeros(5)
    d2[support] = -inv @ np.asarray(w)[support]
    assert_close(g1, d1, 1e-8)
    assert_close(g2, d2, 1e-8)


# --- block proximal gradient: coordinate descent on the lasso, and tuple blocks ----------------


def test_block_coordinate_descent_lasso_closed_form():
    steps = 1 / jnp.diag(GRAM)  # coordinate-wise Lipschitz constants
    solver = S.BlockCoordinateDescent(least_squares, prox.prox_lasso, stepsize=steps, tol=1e-12, maxiter=2000)
    lam = jnp.asarray(3.0)
    jac, (w, state) = jax.jacrev(with_solution(lambda lam: solver.run(jnp.zeros(5), lam, X, Y)), has_aux=True)(lam)
    assert bool(state.converged)
    T = solver.optimality_fun()
    assert tree_max_abs(T(w, lam, X, Y) - w) <= 1e-11
    support = np.abs(np.asarray(w)) > 0
    XS = np.asarray(X)[:, support]
    dlam = np.zeros(5)
    dlam[support] = -np.linalg.solve(XS.T @ XS, np.sign(np.asarray(w)[support]))
    assert_close(jac, dlam, 1e-9)


def test_block_coordinate_descent_rows_on_simplices_and_tuple_blocks():
    # Rows of B on simplices: min ½‖B − Z‖² + ½ γ ‖B Wᵀ‖², one block per row.
    Z = jax.random.normal(KEYS[4], (3, 4))
    W = 0.3 * jax.random.normal(KEYS[5], (2, 4))

    def f(B, Z, gamma):
        return 0.5 * jnp.sum((B - Z) ** 2) + 0.5 * gamma * jnp.sum((B @ W.T) ** 2)

    simplex = prox.make_prox_from_projection(P.projection_simplex)
    solver = S.BlockCoordinateDescent(f, simplex, stepsize=0.5, tol=1e-12, maxiter=2000)
    gamma = jnp.asarray(0.8)
    B, state = solver.run(jnp.full((3, 4), 0.25), 1.0, Z, gamma)
    assert bool(state.converged)
    np.testing.assert_allclose(B.sum(axis=1), 1.0, rtol=1e-13)
    run = lambda Z: solver.run(jnp.full((3, 4), 0.25), 1.0, Z, gamma).params
    direction = jax.random.normal(KEYS[6], Z.shape)
    _, jvp = jax.jvp(run, (Z,), (direction,))
    assert_close(jvp, fd_jvp(run, Z, direction), 1e-7)
    # The same problem with the rows as a tuple of blocks gives the same solution.
    tuple_f = lambda rows, Z, gamma: f(jnp.stack(rows), Z, gamma)
    tuple_solver = S.BlockCoordinateDescent(tuple_f, simplex, stepsize=0.5, tol=1e-12, maxiter=2000)
    rows, _ = tuple_solver.run(tuple(jnp.full(4, 0.25) for _ in range(3)), 1.0, Z, gamma)
    assert_close(jnp.stack(rows), B, 1e-10)


# --- projected gradient: QP on the simplex, closed form through its active set ----------------


def simplex_qp(x, Q, c):
    return 0.5 * x @ Q @ x + c @ x


def simplex_qp_closed_form(Q, c, support):
    # On the support S: [Q_SS 1; 1ᵀ 0] [x_S; μ] = [−c_S; 1] → derivative in c.
    idx = np.flatnonzero(support)
    k = len(idx)
    K = np.zeros((k + 1, k + 1))
    K[:k, :k] = np.asarray(Q)[np.ix_(idx, idx)]
    K[:k, k] = K[k, :k] = 1.0
    rhs = np.zeros((k + 1, len(support)))
    rhs[np.arange(k), idx] = -1.0
    dx = np.zeros((len(support), len(support)))
    dx[idx] = np.linalg.solve(K, rhs)[:k]
    return dx


def test_projected_gradient_simplex_closed_form():
    c = 2.0 * C
    solver = S.ProjectedGradient(simplex_qp, P.projection_simplex, stepsize=1 / float(jnp.linalg.eigvalsh(Q).max()), tol=1e-12, maxiter=5000)
    run = with_solution(lambda c: solver.run(jnp.full(5, 0.2), 1.0, Q, c))
    jac, (x, state) = jax.jacrev(run, has_aux=True)(c)
    assert bool(state.converged)
    T = solver.optimality_fun()
    assert tree_max_abs(T(x, 1.0, Q, c) - x) <= 1e-12
    support = np.asarray(x) > 0
    assert 1 < support.sum() < 5
    assert_close(jac, simplex_qp_closed_form(Q, c, support), 1e-9)


def test_box_qp_closed_form():
    solver = S.BoxQP(tol=1e-13)
    lower, upper = -0.15 * jnp.ones(5), 0.1 * jnp.ones(5)
    run = with_solution(lambda c, upper: solver.run(None, (Q, c), (lower, upper)))
    (jac_c, jac_u), (x, state) = jax.jacfwd(run, argnums=(0, 1), has_aux=True)(C, upper)
    assert bool(state.converged)
    T = solver.optimality_fun()
    assert tree_max_abs(T(x, (lower, upper), (Q, C)) - x) <= 1e-12
    at_lower, at_upper = np.abs(np.asarray(x) + 0.15) < 1e-12, np.abs(np.asarray(x) - 0.1) < 1e-12
    free = ~(at_lower | at_upper)
    assert 0 < free.sum() < 5
    # Closed form: free coordinates solve Q_FF x_F = −c_F − Q_FA x_A.
    QFF_inv = np.linalg.inv(np.asarray(Q)[np.ix_(free, free)])
    dc = np.zeros((5, 5))
    dc[np.ix_(free, free)] = -QFF_inv
    du = np.zeros((5, 5))
    du[at_upper, at_upper] = 1.0
    du[np.ix_(free, at_upper)] = -QFF_inv @ np.asarray(Q)[np.ix_(free, at_upper)]
    assert_close(jac_c, dc, 1e-9)
    assert_close(jac_u, du, 1e-9)


# --- mirror descent: entropic geometry on the simplex ----------------------------------------


def test_mirror_descent_matches_closed_form_interior_solution():
    # Interior solution: all coordinates positive → the simplex constraint reduces to the
    # equality 1ᵀx = 1, whose KKT system gives the Jacobian in closed form.
    c = 0.2 * C
    solver = S.MirrorDescent(simplex_qp, jnp.log, P.kl_projection_simplex, stepsize=0.2, tol=1e-12, maxiter=5000)
    run = with_solution(lambda c: solver.run(jnp.full(5, 0.2), 1.0, Q, c))
    jac, (x, state) = jax.jacrev(run, has_aux=True)(c)
    assert bool(state.converged)
    assert np.all(np.asarray(x) > 1e-3)
    T = solver.optimality_fun()
    assert tree_max_abs(T(x, 1.0, Q, c) - x) <= 1e-12
    assert_close(jac, simplex_qp_closed_form(Q, c, np.ones(5, bool)), 1e-8)


# --- KKT: equality-constrained QP through its KKT linear system, and inequalities -----------


A_EQ = jax.random.normal(KEYS[7], (2, 5))
B_EQ = jax.random.normal(KEYS[8], (2,))


def test_equality_qp_kkt_closed_form():
    solver = S.EqualityQP()
    run = with_solution(lambda c, b: solver.run(None, (Q, c), (A_EQ, b)))
    jac, (sol, state) = jax.jacfwd(run, argnums=(0, 1), has_aux=True)(C, B_EQ)
    (dc_x, db_x), (dc_nu, db_nu) = jac.primal, jac.eq_dual
    assert bool(state.converged)
    F = solver.optimality_fun()
    assert tree_max_abs(F(sol, (Q, C), (A_EQ, B_EQ))) <= 1e-13
    K = np.block([[np.asarray(Q), np.asarray(A_EQ).T], [np.asarray(A_EQ), np.zeros((2, 2))]])
    Kinv = np.linalg.inv(K)
    assert_close(jnp.concatenate([dc_x, dc_nu]), -Kinv[:, :5], 1e-10)
    assert_close(jnp.concatenate([db_x, db_nu]), Kinv[:, 5:], 1e-10)
    # Derivative in Q (symmetric perturbation) against finite differences of re-solving.
    dQ = jax.random.normal(KEYS[9], (5, 5))
    dQ = dQ + dQ.T
    runQ = lambda Qm: solver.run(None, (Qm, C), (A_EQ, B_EQ)).params.primal
    assert_close(jax.jvp(runQ, (Q,), (dQ,))[1], fd_jvp(runQ, Q, dQ), 1e-7)


def make_inequality_qp():
    G = jax.random.normal(KEYS[10], (4, 5))
    x_free = jnp.linalg.solve(Q, -C)
    # Put the bound of two rows inside the unconstrained minimizer so they become active.
    h = G @ x_free + jnp.array([-0.5, -0.3, 1.0, 2.0])
    return G, h


def test_qp_inequalities_active_set_closed_form_and_resolving():
    G, h = make_inequality_qp()
    solver = S.QP(tol=1e-12)
    run = with_solution(lambda c, h: solver.run(None, (Q, c), (A_EQ, B_EQ), (G, h)))
    jac, (sol, state) = jax.jacrev(run, argnums=(0, 1), has_aux=True)(C, h)
    jac_c, jac_h = jac.primal
    assert bool(state.converged)
    F = solver.optimality_fun()
    assert tree_max_abs(F(sol, (Q, C), (A_EQ, B_EQ), (G, h))) <= 1e-12
    lam = np.asarray(sol.ineq_dual)
    active = lam > 1e-8
    assert 0 < active.sum() < 4 and np.all(lam >= -1e-12)
    # Closed form: the equality QP with the active rows added.
    E = np.concatenate([np.asarray(A_EQ), np.asarray(G)[active]])
    k = E.shape[0]
    K = np.block([[np.asarray(Q), E.T], [E, np.zeros((k, k))]])
    Kinv = np.linalg.inv(K)
    assert_close(jac_c, -Kinv[:5, :5], 1e-9)
    dh = np.zeros((5, 4))
    dh[:, active] = Kinv[:5, 5 + 2 :]
    assert_close(jac_h, dh, 1e-9)
    # The derivative in G is checked against a closed form in test_projections.py
    # (projection_polyhedron with one active row).


# --- conic programs: LP, SOCP and SDP against finite differences of re-solving -----------------


def lp_data():
    # min cᵀx s.t. x ≥ 0, Σx = 1, x₁ + 2x₂ ≤ 0.8 (zero cone first, then the orthant).
    n = 4
    A = jnp.concatenate([jnp.ones((1, n)), -jnp.eye(n), jnp.array([[1.0, 2.0, 0.0, 0.0]])])
    b = jnp.concatenate([jnp.ones(1), jnp.zeros(n), jnp.array([0.8])])
    c = jnp.array([-1.0, -1.5, -0.2, 0.3])
    return O.Cones(zero=1, nonnegative=n + 1), A, b, c


def socp_data():
    # min cᵀx s.t. ‖x − x₀‖₂ ≤ r  (SOC: (r, x − x₀) ∈ K), and x₁ ≤ 0.3.
    n = 3
    A = jnp.concatenate([jnp.zeros((1, n)), -jnp.eye(n), jnp.array([[1.0, 0.0, 0.0]])])
    x0 = jnp.array([0.2, -0.1, 0.4])
    b = jnp.concatenate([jnp.array([1.0]), -x0, jnp.array([0.3])])
    c = jnp.array([-1.0, 0.5, -0.3])
    return O.Cones(nonnegative=1, second_order=(4,)), A[jnp.array([4, 0, 1, 2, 3])], b[jnp.array([4, 0, 1, 2, 3])], c


def sdp_data():
    # min tr(C X) s.t. tr(X) = 1, X ⪰ 0 with X = smat(x): the smallest eigenvector of C...
    # made non-degenerate by adding a linear term; variables x = svec(X).
    n = 2
    size = n * (n + 1) // 2
    Cm = jnp.array([[1.0, 0.4], [0.4, 2.0]])
    c = O.svec(Cm)
    trace_row = O.svec(jnp.eye(n))
    A = jnp.concatenate([trace_row[None], -jnp.eye(size)])
    b = jnp.concatenate([jnp.ones(1), jnp.zeros(size)])
    return O.Cones(zero=1, psd=(n,)), A, b, c


@pytest.mark.parametrize(
    "data",
    [lp_data, socp_data, pytest.param(sdp_data, marks=pytest.mark.slow)],
    ids=["lp", "socp", "sdp"],
)
def test_conic_solver_against_resolving(data):
    cones, A, b, c = data()
    solver = S.ConicSolver(cones, tol=1e-13)
    sol, state = solver.run(A, b, c)
    assert bool(state.converged), state
    F = solver.optimality_fun()
    assert tree_max_abs(F(O.conic_point(sol), A, b, c)) <= 1e-12
    # Primal and dual objectives agree (strong duality) and the cone memberships hold.
    np.testing.assert_allclose(c @ sol.x, -b @ sol.y, atol=1e-11)
    np.testing.assert_allclose(O.projection_cone(sol.s, cones), sol.s, atol=1e-12)
    np.testing.assert_allclose(O.projection_dual_cone(sol.y, cones), sol.y, atol=1e-12)
    # Perturb A, b and c at once; compare with finite differences of re-solving.
    data = (A, b, c)
    keys = jax.random.split(jax.random.PRNGKey(3), 3)
    direction = tuple(jax.random.normal(k, d.shape) for k, d in zip(keys, data))
    run = lambda data: solver.run(*data).params
    _, jvp = jax.jvp(run, (data,), (direction,))
    fd = fd_jvp(run, data, direction, h=1e-6)
    for got, ref in zip(jvp, fd):
        assert_close(got, ref, 1e-6)
    # Reverse mode through the solvers' implicit wiring is checked on the KKT map
    # (test_qp_inequalities_...), and for the conic map through root_vjp in
    # test_optimality.py; forward mode suffices here.


# --- input validation ----------------------------------------------------------------------


def test_clear_errors():
    with pytest.raises(ImplicitDiffError, match="stepsize"):
        S.ProximalGradient(least_squares, prox.prox_lasso, stepsize=-1.0)
    with pytest.raises(ImplicitDiffError, match="maxiter"):
        S.GradientDescent(least_squares, maxiter=0)
    with pytest.raises(ImplicitDiffError, match="fun must be callable"):
        S.Newton(3.0)
    with pytest.raises(InputError, match="params_obj"):
        S.QP().run(None, Q, None, None)
    with pytest.raises(InputError, match="params_eq"):
        S.EqualityQP().run(None, (Q, C), (A_EQ, jnp.ones(3)))
    cones, A, b, c = lp_data()
    with pytest.raises(InputError, match="cone rows"):
        S.ConicSolver(cones).run(A[:-1], b[:-1], c)


def test_non_convergence_is_reported_not_hidden():
    solver = S.GradientDescent(ridge_objective, stepsize=1e-4, maxiter=5, tol=1e-12)
    w, state = solver.run(jnp.zeros(5), 1.0, X, Y)
    assert not bool(state.converged)
    assert int(state.iterations) == 5
    assert float(state.error) > 1e-3
    # Infeasible LP: x ≥ 1 and x ≤ 0.
    cones = O.Cones(nonnegative=2)
    A = jnp.array([[-1.0], [1.0]])
    b = jnp.array([-1.0, 0.0])
    _, state = S.ConicSolver(cones, maxiter=5).run(A, b, jnp.array([1.0]))
    assert not bool(state.converged)


def test_jit_and_vmap_over_hyperparameters():
    solver = S.ProximalGradient(least_squares, prox.prox_lasso, stepsize=1 / L, tol=1e-12, maxiter=3000)
    lams = jnp.array([1.0, 3.0, 6.0])
    batched = jax.jit(jax.vmap(lambda lam: solver.run(jnp.zeros(5), lam, X, Y)))
    out = batched(lams)
    assert out.state.converged.shape == (3,) and bool(jnp.all(out.state.converged))
    grads = jax.vmap(jax.grad(lambda lam: jnp.sum(solver.run(jnp.zeros(5), lam, X, Y).params)))(lams)
    for i in range(3):
        # Each batch element against the lasso's closed form on its own support.
        w = np.asarray(out.params[i])
        support = w != 0
        XS = np.asarray(X)[:, support]
        expected = -np.sum(np.linalg.solve(XS.T @ XS, np.sign(w[support])))
        assert_close(grads[i], expected, 1e-9)
