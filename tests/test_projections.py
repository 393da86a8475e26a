"""Projections: feasibility, optimality (variational inequality), and derivatives in both
the point and the set against closed forms and central finite differences."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sensitiv import projections as P
from sensitiv.errors import InputError


def central_fd(fun, x, direction, h=1e-6):
    return (fun(x + h * direction) - fun(x - h * direction)) / (2 * h)


def check_jvp_against_fd(fun, x, rtol=1e-7, seed=0, h=1e-6):
    direction = jax.random.normal(jax.random.PRNGKey(seed), jnp.shape(x))

    # One compiled program for all the evaluations (eager mode would compile each
    # primitive separately, which dominates the run time of these small checks).
    @jax.jit
    def evaluate(x, direction):
        _, jvp = jax.jvp(fun, (x,), (direction,))
        return jvp, central_fd(fun, x, direction, h), jax.jacrev(fun)(x), jax.jacfwd(fun)(x)

    jvp, fd, jac_rev, jac_fwd = evaluate(x, direction)
    np.testing.assert_allclose(jvp, fd, rtol=rtol, atol=rtol * (1 + np.abs(fd).max()))
    # Reverse mode gives the same Jacobian.
    np.testing.assert_allclose(jac_rev, jac_fwd, rtol=1e-12, atol=1e-12)


def assert_projection(project, x, feasible_points, tol=1e-10):
    """Variational inequality: ⟨x − p, y − p⟩ ≤ 0 for every feasible y."""
    p = project(x)
    assert float(jnp.max((feasible_points - p) @ (x - p))) <= tol


def simplex_by_bisection(x, value):
    # Independent reference: bisection on the threshold tau of sum(max(x - tau, 0)) = value.
    lo, hi = float(np.min(x)) - value, float(np.max(x))
    for _ in range(200):
        mid = (lo + hi) / 2
        if np.maximum(x - mid, 0).sum() > value:
            lo = mid
        else:
            hi = mid
    return np.maximum(x - (lo + hi) / 2, 0)


X = jnp.array([0.3, -1.2, 2.0, 0.9, -0.1, 1.4])


def test_non_negative_and_box():
    np.testing.assert_array_equal(P.projection_non_negative(X), np.maximum(X, 0))
    lo, hi = jnp.full(6, -0.5), jnp.full(6, 1.0)
    np.testing.assert_array_equal(P.projection_box(X, (lo, hi)), np.clip(X, -0.5, 1.0))
    # Pytrees and scalar bounds.
    tree = {"a": X, "b": -X}
    out = P.projection_box(tree, (0.0, 1.0))
    np.testing.assert_array_equal(out["b"], np.clip(-X, 0, 1))
    # Derivatives in the bounds: one exactly where the bound is active.
    d_lo = jax.jacfwd(lambda l: P.projection_box(X, (l, hi)))(lo)
    d_hi = jax.jacfwd(lambda u: P.projection_box(X, (lo, u)))(hi)
    np.testing.assert_array_equal(jnp.diag(d_lo), (X < -0.5).astype(float))
    np.testing.assert_array_equal(jnp.diag(d_hi), (X > 1.0).astype(float))


def test_simplex_against_bisection_and_closed_form_jacobian():
    for value in (1.0, 2.5):
        p = P.projection_simplex(X, value)
        np.testing.assert_allclose(p, simplex_by_bisection(np.asarray(X), value), atol=1e-12)
        np.testing.assert_allclose(p.sum(), value, rtol=1e-14)
        support = np.asarray(p > 0, float)
        closed = np.diag(support) - np.outer(support, support) / support.sum()
        np.testing.assert_allclose(jax.jacfwd(P.projection_simplex)(X, value), closed, atol=1e-14)
        np.testing.assert_allclose(jax.jacrev(P.projection_simplex)(X, value), closed, atol=1e-14)
        d_value = jax.jacfwd(P.projection_simplex, argnums=1)(X, value)
        np.testing.assert_allclose(d_value, support / support.sum(), atol=1e-14)
    check_jvp_against_fd(P.projection_simplex, X)
    # Rows through vmap; jit.
    rows = jnp.stack([X, -X, 2 * X])
    out = jax.jit(jax.vmap(P.projection_simplex))(rows)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-14)
    with pytest.raises(InputError, match="1-D"):
        P.projection_simplex(rows)


def test_l1_ball():
    for radius in (0.5, 2.0, 10.0):
        p = P.projection_l1_ball(X, radius)
        if np.abs(X).sum() <= radius:
            np.testing.assert_array_equal(p, X)
        else:
            np.testing.assert_allclose(np.abs(p).sum(), radius, rtol=1e-13)
            ref = np.sign(X) * simplex_by_bisection(np.abs(np.asarray(X)), radius)
            np.testing.assert_allclose(p, ref, atol=1e-12)
        check_jvp_against_fd(lambda x: P.projection_l1_ball(x, radius), X)
        g = jax.grad(lambda r: jnp.vdot(P.projection_l1_ball(X, r), X))(radius)
        fd = central_fd(lambda r: jnp.vdot(P.projection_l1_ball(X, r), X), radius, 1.0)
        np.testing.assert_allclose(g, fd, rtol=1e-7, atol=1e-9)


def test_l2_and_linf_ball_and_sphere():
    r = 1.3
    p = P.projection_l2_ball(X, r)
    np.testing.assert_allclose(jnp.linalg.norm(p), r, rtol=1e-14)
    np.testing.assert_allclose(p, X * r / jnp.linalg.norm(X), rtol=1e-14)
    np.testing.assert_array_equal(P.projection_l2_ball(X, 100.0), X)
    check_jvp_against_fd(lambda x: P.projection_l2_ball(x, r), X, h=1e-5)
    # Derivative in the radius (closed form x/‖x‖) and no NaN at the origin.
    np.testing.assert_allclose(jax.jacfwd(P.projection_l2_ball, argnums=1)(X, r), X / jnp.linalg.norm(X), rtol=1e-14)
    assert np.all(np.isfinite(jax.jacrev(P.projection_l2_ball)(jnp.zeros(3), 1.0)))

    np.testing.assert_array_equal(P.projection_linf_ball(X, 1.0), np.clip(X, -1, 1))
    check_jvp_against_fd(lambda x: P.projection_linf_ball(x, 1.0), X)

    s = P.projection_l2_sphere(X, r)
    np.testing.assert_allclose(s, X * r / jnp.linalg.norm(X), rtol=1e-14)
    check_jvp_against_fd(lambda x: P.projection_l2_sphere(x, r), X, h=1e-5)
    np.testing.assert_allclose(P.projection_l2_sphere(jnp.zeros(3), 2.0), [2.0, 0, 0])


def test_hyperplane_halfspace_affine():
    a = jnp.array([1.0, -2.0, 0.5, 0.0, 1.0, 3.0])
    b = 0.7
    p = P.projection_hyperplane(X, (a, b))
    np.testing.assert_allclose(jnp.vdot(a, p), b, rtol=1e-13)
    np.testing.assert_allclose(p, X - (a @ X - b) / (a @ a) * a, rtol=1e-14)
    h = P.projection_halfspace(X, (a, b))
    assert float(a @ h) <= b + 1e-12
    np.testing.assert_array_equal(P.projection_halfspace(X, (a, 100.0)), X)
    # Derivative in a and b by finite differences.
    g = jax.grad(lambda aa: jnp.sum(P.projection_halfspace(X, (aa, b)) ** 2))(a)
    da = jax.random.normal(jax.random.PRNGKey(3), a.shape)
    fd = central_fd(lambda aa: jnp.sum(P.projection_halfspace(X, (aa, b)) ** 2), a, da)
    np.testing.assert_allclose(jnp.vdot(g, da), fd, rtol=1e-8)

    A = jax.random.normal(jax.random.PRNGKey(1), (2, 6))
    bb = jnp.array([0.5, -1.0])
    q = P.projection_affine_set(X, (A, bb))
    np.testing.assert_allclose(A @ q, bb, atol=1e-13)
    # Optimality: x − q is in the row space of A.
    coef, *_ = np.linalg.lstsq(np.asarray(A.T), np.asarray(X - q), rcond=None)
    np.testing.assert_allclose(A.T @ coef, X - q, atol=1e-13)
    dA = jax.random.normal(jax.random.PRNGKey(2), A.shape)
    _, jvp = jax.jvp(lambda M: P.projection_affine_set(X, (M, bb)), (A,), (dA,))
    fd = central_fd(lambda M: P.projection_affine_set(X, (M, bb)), A, dA)
    np.testing.assert_allclose(jvp, fd, rtol=1e-7, atol=1e-9)
    # The hyperplane is a one-row affine set.
    np.testing.assert_allclose(P.projection_affine_set(X, (a[None], jnp.array([b]))), p, rtol=1e-13)


def test_second_order_cone():
    inside = jnp.array([3.0, 1.0, 2.0])
    polar = jnp.array([-3.0, 1.0, 2.0])
    between = jnp.array([0.5, 1.0, -2.0])
    np.testing.assert_array_equal(P.projection_second_order_cone(inside), inside)
    np.testing.assert_array_equal(P.projection_second_order_cone(polar), jnp.zeros(3))
    p = P.projection_second_order_cone(between)
    np.testing.assert_allclose(p[0], jnp.linalg.norm(p[1:]), rtol=1e-14)
    # Moreau: x = proj_K(x) − proj_K(−x) for the self-dual cone, with orthogonal parts.
    m = P.projection_second_order_cone(-between)
    np.testing.assert_allclose(p - m, between, atol=1e-14)
    np.testing.assert_allclose(jnp.vdot(p, m), 0, atol=1e-14)
    for x in (inside, polar, between):
        check_jvp_against_fd(P.projection_second_order_cone, x, h=1e-5)
    assert np.all(np.isfinite(jax.jacrev(P.projection_second_order_cone)(jnp.array([1.0, 0.0, 0.0]))))


def test_psd_cone():
    M = jax.random.normal(jax.random.PRNGKey(0), (4, 4))
    S = M + M.T
    p = P.projection_psd_cone(S)
    w, V = np.linalg.eigh(np.asarray(S))
    np.testing.assert_allclose(p, (V * np.maximum(w, 0)) @ V.T, atol=1e-13)
    # Moreau decomposition.
    np.testing.assert_allclose(p - P.projection_psd_cone(-S), S, atol=1e-13)
    dS = jax.random.normal(jax.random.PRNGKey(1), (4, 4))
    dS = dS + dS.T
    _, jvp = jax.jvp(P.projection_psd_cone, (S,), (dS,))
    fd = central_fd(P.projection_psd_cone, S, dS, h=1e-5)
    np.testing.assert_allclose(jvp, fd, rtol=1e-8, atol=1e-9)
    # Repeated eigenvalues (two zeros, two equal positives): finite and correct derivative.
    Q, _ = np.linalg.qr(np.asarray(M))
    T = jnp.asarray((Q * np.array([-1.0, 0.0, 2.0, 2.0])) @ Q.T)
    _, jvp = jax.jvp(P.projection_psd_cone, (T,), (dS,))
    fd = central_fd(P.projection_psd_cone, T, dS, h=1e-6)
    assert np.all(np.isfinite(jvp))
    # At the zero eigenvalue the projection is not differentiable; compare away from it.
    T2 = jnp.asarray((Q * np.array([-1.0, -1.0, 2.0, 2.0])) @ Q.T)
    _, jvp2 = jax.jvp(P.projection_psd_cone, (T2,), (dS,))
    fd2 = central_fd(P.projection_psd_cone, T2, dS, h=1e-6)
    np.testing.assert_allclose(jvp2, fd2, rtol=1e-7, atol=1e-8)
    grad = jax.grad(lambda X: jnp.sum(P.projection_psd_cone(X) * dS))(T2)
    np.testing.assert_allclose(jnp.sum(grad * dS), jnp.sum(jvp2 * dS), rtol=1e-10)
    with pytest.raises(InputError, match="square"):
        P.projection_psd_cone(jnp.ones(3))


def test_variational_inequality_for_sets():
    key = jax.random.PRNGKey(7)
    candidates = jax.random.normal(key, (50, 6)) * 2
    simplex_pts = jax.vmap(P.projection_simplex)(candidates)
    assert_projection(P.projection_simplex, X, simplex_pts)
    ball_pts = jax.vmap(lambda c: P.projection_l1_ball(c, 1.5))(candidates)
    assert_projection(lambda x: P.projection_l1_ball(x, 1.5), X * 3, ball_pts)
    cone_pts = jax.vmap(P.projection_second_order_cone)(candidates)
    assert_projection(P.projection_second_order_cone, X, cone_pts)


def test_polyhedron_against_halfspace_and_affine_closed_forms():
    # One active inequality: the projection is the halfspace projection; its Jacobian in
    # x, a and b (autodiff of the closed form) is the reference for the QP's implicit one.
    a = jnp.array([1.0, 2.0, -1.0])
    b = 0.5
    x = jnp.array([1.0, 1.0, 0.2])
    G, h = a[None], jnp.array([b])
    poly = lambda x, G, h: P.projection_polyhedron(x, (None, None, G, h))
    np.testing.assert_allclose(poly(x, G, h), P.projection_halfspace(x, (a, b)), atol=1e-12)
    jx, jG, jh = jax.jacfwd(poly, argnums=(0, 1, 2))(x, G, h)
    rx, ra, rb = jax.jacfwd(lambda x, a, b: P.projection_halfspace(x, (a, b)), argnums=(0, 1, 2))(x, a, b)
    np.testing.assert_allclose(jx, rx, atol=1e-10)
    np.testing.assert_allclose(jG[:, 0, :], ra, atol=1e-10)
    np.testing.assert_allclose(jh[:, 0], rb, atol=1e-10)
    # Equality rows and an inactive inequality: the affine-set projection.
    A = jnp.array([[1.0, 1.0, 1.0]])
    bb = jnp.array([1.0])
    G2, h2 = jnp.array([[0.0, 0.0, 1.0]]), jnp.array([10.0])
    got = jax.jacfwd(lambda A: P.projection_polyhedron(x, (A, bb, G2, h2)))(A)
    ref = jax.jacrev(lambda A: P.projection_affine_set(x, (A, bb)))(A)
    np.testing.assert_allclose(got, ref, atol=1e-10)


def sinkhorn_unrolled(X, a, b, eps, iterations=2000):
    """Independent reference: plain (non log-domain) Sinkhorn, differentiated by autodiff
    through every iteration."""
    K = jnp.exp(X / eps)

    def body(_, v):
        u = a / (K @ v)
        return b / (K.T @ u)

    v = jax.lax.fori_loop(0, iterations, body, jnp.ones_like(b))
    u = a / (K @ v)
    return u[:, None] * K * v[None, :]


def test_kl_transport_and_birkhoff():
    X = jax.random.normal(jax.random.PRNGKey(5), (3, 4))
    a = jnp.array([0.2, 0.3, 0.5])
    b = jnp.array([0.1, 0.4, 0.25, 0.25])
    eps = 0.7
    W = jax.random.normal(jax.random.PRNGKey(6), (3, 4))
    loss = lambda X, a, b, eps: jnp.sum(W * P.kl_projection_transport(X, (a, b), regularization=eps))
    ref_loss = lambda X, a, b, eps: jnp.sum(W * sinkhorn_unrolled(X, a, b, eps))
    # Implicit derivatives in X, the marginals (directions keeping Σa = Σb) and ε against
    # autodiff through unrolled Sinkhorn; reverse mode through <∇loss, u> = jvp(u).
    tangents = (jnp.ones_like(X) * 0.3, jnp.array([0.1, -0.05, -0.05]), jnp.array([0.05, 0.0, -0.1, 0.05]), 0.2)
    value, jvp = jax.jvp(loss, (X, a, b, eps), tangents)
    ref_value, ref = jax.jvp(ref_loss, (X, a, b, eps), tangents)
    np.testing.assert_allclose(value, ref_value, rtol=1e-10)
    np.testing.assert_allclose(jvp, ref, rtol=1e-9)
    grads = jax.grad(loss, argnums=(0, 1, 2, 3))(X, a, b, eps)
    np.testing.assert_allclose(sum(jnp.vdot(g, t) for g, t in zip(grads, tangents)), ref, rtol=1e-9)
    plan = P.kl_projection_transport(X, (a, b), regularization=eps)
    np.testing.assert_allclose(plan.sum(axis=1), a, atol=1e-12)
    np.testing.assert_allclose(plan.sum(axis=0), b, atol=1e-12)
    # Birkhoff: doubly stochastic.
    D = P.kl_projection_birkhoff(X[:3, :3], regularization=0.3)
    np.testing.assert_allclose(D.sum(axis=0), 1, atol=1e-12)
    np.testing.assert_allclose(D.sum(axis=1), 1, atol=1e-12)
