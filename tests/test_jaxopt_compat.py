"""What docs/migrating.md promises a jaxopt user, behaviour by behaviour.

Each test states one promise and checks it against an independent reference: a closed
form, central differences of re-solving, numpy/scipy, or a plain alternating-projection
algorithm. Regression tests for the nine defects of issue 20 are marked `issue20_*`.
Float32 (jaxopt's default) and float64 are both exercised; arrays carry their dtype
explicitly, since the suite enables x64.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sensitiv
from sensitiv import LinearSolver, custom_fixed_point, custom_root
from sensitiv import projections as P
from sensitiv import prox as X
from sensitiv.errors import ImplicitDiffError
from sensitiv.solvers import MirrorDescent, ProjectedGradient

DTYPES = [jnp.float32, jnp.float64]
# Relative accuracy expected of a derivative in each dtype (float32 solves and finite
# differences lose about half the digits).
RTOL = {jnp.float32: 2e-3, jnp.float64: 1e-8}


def _tol(dtype):
    return RTOL[jnp.dtype(dtype).type]


# --- argument matching: every solver signature style jaxopt accepts ----------------------

RNG = np.random.RandomState(0)
DESIGN = RNG.randn(12, 4)
TARGET = RNG.randn(12)


def ridge_objective(params, lam, X, y):
    residuals = X @ params - y
    return 0.5 * jnp.sum(residuals**2) + 0.5 * lam * jnp.sum(params**2)


def ridge_closed_form(lam, X, y):
    return jnp.linalg.solve(X.T @ X + lam * jnp.eye(X.shape[1], dtype=X.dtype), X.T @ y)


def ridge_derivative(lam, X, y):
    # d/dλ of (XᵀX + λI)⁻¹Xᵀy = −(XᵀX + λI)⁻¹ x*.
    return -jnp.linalg.solve(X.T @ X + lam * jnp.eye(X.shape[1], dtype=X.dtype), ridge_closed_form(lam, X, y))


def ridge_solver(init_params, lam, X, y):
    del init_params
    return ridge_closed_form(lam, X, y)


def ridge_solver_kwargs(init_params, **kw):
    return ridge_closed_form(kw["lam"], kw["X"], kw["y"])


def ridge_solver_aux(init_params, lam, X, y):
    return ridge_closed_form(lam, X, y), {"note": jnp.zeros(())}


def ridge_solver_other_names(init_params, l2reg, data_X, data_y):
    return ridge_closed_form(l2reg, data_X, data_y)


def ridge_solver_partly_other_names(init_params, l2reg, X, y):
    # Shares X and y with F, but calls F's `lam` `l2reg`: jaxopt matches by position.
    return ridge_closed_form(l2reg, X, y)


def _fixed_point_with_wraps():
    grad = jax.grad(ridge_objective)
    # A fixed-point map T(x, *args) carrying the objective's signature: jaxopt's own idiom.
    return functools.wraps(grad)(lambda x, *args: x - 0.01 * grad(x, *args))


def _data(dtype):
    return jnp.asarray(DESIGN, dtype), jnp.asarray(TARGET, dtype)


# (name, decorated solver, how to call it with lam, unpack the solution)
def _styles():
    F = jax.grad(ridge_objective)
    star = lambda *a, **k: F(*a, **k)  # F(x, *args, **kwargs): no signature to read

    positional = custom_root(F)(ridge_solver)
    kwargs_solver = custom_root(F)(ridge_solver_kwargs)
    aux = custom_root(F, has_aux=True)(ridge_solver_aux)
    wraps_fp = custom_fixed_point(_fixed_point_with_wraps())(ridge_solver)
    reference = custom_root(star, reference_signature=ridge_objective)(ridge_solver)
    other_names = custom_root(F)(ridge_solver_other_names)
    partly = custom_root(F)(ridge_solver_partly_other_names)
    ident = lambda out: out
    return {
        "positional": (lambda lam, X, y: positional(None, lam, X, y), ident),
        "keyword": (lambda lam, X, y: positional(None, lam=lam, X=X, y=y), ident),
        "keyword-unordered": (lambda lam, X, y: positional(None, y=y, X=X, lam=lam), ident),
        "mixed": (lambda lam, X, y: positional(None, lam, y=y, X=X), ident),
        "**kwargs-solver": (lambda lam, X, y: kwargs_solver(None, lam=lam, X=X, y=y), ident),
        "**kwargs-solver-unordered": (lambda lam, X, y: kwargs_solver(None, X=X, y=y, lam=lam), ident),
        "has_aux": (lambda lam, X, y: aux(None, lam, X=X, y=y), lambda out: out[0]),
        "wraps-fixed-point": (lambda lam, X, y: wraps_fp(None, lam, X=X, y=y), ident),
        "reference_signature": (lambda lam, X, y: reference(None, lam, X, y), ident),
        "other-names-positional": (lambda lam, X, y: other_names(None, lam, X, y), ident),
        "partly-other-names": (lambda lam, X, y: partly(None, lam, X, y), ident),
    }


STYLES = list(_styles())


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("style", STYLES)
def test_argument_matching_styles(style, dtype):
    """Every calling style jaxopt accepts gives the solution and its exact derivative,
    in reverse and forward mode (jaxopt: reverse only), eagerly and under jit."""
    call, unpack = _styles()[style]
    X_, y_ = _data(dtype)
    lam = jnp.asarray(3.0, dtype)
    solution = lambda lam: unpack(call(lam, X_, y_))
    np.testing.assert_allclose(solution(lam), ridge_closed_form(lam, X_, y_), rtol=_tol(dtype))
    exact = ridge_derivative(lam, X_, y_)
    rev = jax.jacrev(solution)(lam)
    fwd = jax.jit(jax.jacfwd(solution))(lam)
    assert rev.dtype == dtype
    np.testing.assert_allclose(rev, exact, rtol=_tol(dtype), atol=_tol(dtype) * float(jnp.abs(exact).max()))
    np.testing.assert_allclose(fwd, exact, rtol=_tol(dtype), atol=_tol(dtype) * float(jnp.abs(exact).max()))


def test_issue20_wraps_signature_fixed_point():
    """Case 1: T(x, *args) with a functools.wraps-carried signature; jaxopt gives [1, 1, 1]."""

    def f(x, lam):
        return 0.5 * jnp.sum(x**2) - lam * jnp.sum(x)

    T = functools.wraps(f)(lambda x, *args: x - 0.5 * jax.grad(f)(x, *args))

    @custom_fixed_point(T)
    def solver(init, lam):
        del init
        return jnp.ones(3, jnp.float32) * lam

    np.testing.assert_allclose(jax.jacrev(solver, argnums=1)(None, 2.0), [1.0, 1.0, 1.0])


def test_issue20_kwargs_solver():
    """Case 2: `solver(init_params, **kw)` called with keywords; jaxopt gives 3.0."""

    def f(x, lam):
        return 0.5 * jnp.sum(x**2) - lam * jnp.sum(x)

    @custom_root(jax.grad(f))
    def solver(init_params, **kw):
        return jnp.ones(3, jnp.float32) * kw["lam"]

    grad = jax.grad(lambda lam: solver(None, lam=lam).sum())
    assert float(grad(2.0)) == pytest.approx(3.0)
    assert float(jax.jit(grad)(2.0)) == pytest.approx(3.0)


def test_unmatchable_arguments_still_say_so():
    F = jax.grad(ridge_objective)

    @custom_root(F)
    def solver(a, b):
        return ridge_closed_form(a, *_data(jnp.float64))

    with pytest.raises(ImplicitDiffError, match="cannot match|needs argument"):
        jax.grad(lambda lam: solver(lam, 1.0).sum())(1.0)


# --- linear solves: jaxopt's solve_* functions ------------------------------------------------


def _square_system(dtype, n=5, seed=0):
    rng = np.random.RandomState(seed)
    return rng.randn(n, n).astype(dtype), rng.randn(n).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_issue20_normal_cg_with_ridge(dtype):
    """Case 5: `"normal_cg"` with `ridge` solves (AᵀA + ridge·I) x = Aᵀb, as jaxopt does."""
    A, b = _square_system(dtype)
    x = LinearSolver("normal_cg", ridge=1.0)(lambda v: jnp.asarray(A) @ v, jnp.asarray(b))
    A64, b64 = A.astype(np.float64), b.astype(np.float64)
    expected = np.linalg.solve(A64.T @ A64 + np.eye(5), A64.T @ b64)
    np.testing.assert_allclose(x, expected, rtol=10 * _tol(dtype))
    _, info = LinearSolver("normal_cg", ridge=1.0).solve(lambda v: jnp.asarray(A) @ v, jnp.asarray(b))
    assert bool(info.converged)


@pytest.mark.parametrize("method", ["cg", "gmres", "bicgstab", "lu", "cholesky", "auto"])
def test_ridge_on_square_methods(method):
    """Every other method with `ridge` solves (A + ridge·I) x = b (jaxopt's solve_cg,
    solve_gmres, solve_bicgstab, solve_inv)."""
    A, b = _square_system(np.float64)
    if method in ("cg", "cholesky"):
        A = A.T @ A  # symmetric positive definite
    x = LinearSolver(method, ridge=1.0)(lambda v: jnp.asarray(A) @ v, jnp.asarray(b))
    np.testing.assert_allclose(x, np.linalg.solve(A + np.eye(5), b), rtol=1e-8)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("ridge", [0.0, 0.5])
def test_issue20_normal_cg_rectangular(dtype, ridge):
    """Case 6: a rectangular (2 × 3) operator with `init` shaped like the solution gives
    the minimum-norm (ridge: Tikhonov) least-squares solution."""
    rng = np.random.RandomState(1)
    A = rng.randn(2, 3).astype(dtype)
    b = rng.randn(2).astype(dtype)
    solver = LinearSolver("normal_cg", init=jnp.zeros(3, dtype), ridge=ridge)
    x, info = solver.solve(lambda v: jnp.asarray(A) @ v, jnp.asarray(b))
    A64, b64 = A.astype(np.float64), b.astype(np.float64)
    if ridge:
        expected = np.linalg.solve(A64.T @ A64 + ridge * np.eye(3), A64.T @ b64)
    else:
        expected = np.linalg.pinv(A64) @ b64
    assert x.shape == (3,) and x.dtype == dtype
    np.testing.assert_allclose(x, expected, rtol=10 * _tol(dtype), atol=10 * _tol(dtype))
    assert bool(info.converged)
    # Tall (3 × 2): the least-squares solution.
    x = LinearSolver("normal_cg", init=jnp.zeros(2, dtype))(lambda v: jnp.asarray(A.T) @ v, jnp.asarray(A.T @ b))
    np.testing.assert_allclose(x, np.linalg.lstsq(A64.T, A64.T @ b64, rcond=None)[0], rtol=10 * _tol(dtype))


def test_normal_cg_rectangular_without_init_says_what_to_pass():
    A = jnp.ones((2, 3))
    with pytest.raises(ImplicitDiffError, match="init="):
        LinearSolver("normal_cg")(lambda v: A @ v, jnp.ones(2))


def test_jaxopt_solve_callables_accepted():
    """A jaxopt-style `solve(matvec, b) -> x` callable (e.g. functools.partial of a solver
    function) is accepted by custom_root and gives the exact derivative."""

    def solve_dense(matvec, b):
        n = b.shape[0]
        matrix = jax.vmap(matvec, out_axes=1)(jnp.eye(n, dtype=b.dtype))
        return jnp.linalg.solve(matrix, b)

    X_, y_ = _data(jnp.float64)
    solver = custom_root(jax.grad(ridge_objective), solve=solve_dense)(ridge_solver)
    J = jax.jacrev(solver, argnums=1)(None, 2.0, X_, y_)
    np.testing.assert_allclose(J, ridge_derivative(2.0, X_, y_), rtol=1e-10)


# --- projections: magnitudes, points of the set, derivatives ---------------------------------

SCALES = [1e-9, 1.0, 1e9]


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("scale", SCALES, ids=["1e-9", "1", "1e9"])
def test_simplex_extreme_magnitudes(scale, dtype):
    """Case 3 and its family: the result lies on the simplex at every magnitude."""
    x = jnp.array([1.0, 0.0, -0.5, 0.25], dtype) * scale
    y = P.projection_simplex(x)
    assert bool(jnp.all(y >= 0))
    assert float(jnp.sum(y)) == pytest.approx(1.0, rel=10 * float(jnp.finfo(dtype).eps))
    if scale == 1e9:  # far apart: the largest entry takes everything
        np.testing.assert_allclose(y, [1, 0, 0, 0])
    if scale == 1e-9:  # all within 1e-9 of each other: the centre of the simplex
        np.testing.assert_allclose(y, 0.25 + (x - x.mean()), rtol=1e-6)


def test_issue20_simplex_1e9_float32():
    np.testing.assert_array_equal(P.projection_simplex(jnp.array([1e9, 0.0], jnp.float32)), [1.0, 0.0])


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("scale", SCALES, ids=["1e-9", "1", "1e9"])
def test_projections_extreme_magnitudes(scale, dtype):
    """Each closed-form projection at 1e±9: the result is in the set and matches the
    closed form evaluated in float64 (relative to the input's magnitude)."""
    x64 = np.array([0.8, -0.6, 0.3, -0.1]) * scale
    x = jnp.asarray(x64, dtype)
    eps = float(jnp.finfo(dtype).eps)

    def close(got, expected, size=scale):
        np.testing.assert_allclose(np.asarray(got, np.float64), expected, rtol=50 * eps, atol=50 * eps * size)

    close(P.projection_l2_ball(x, 1.0 * scale), x64 / max(1.0, np.linalg.norm(x64) / scale))
    close(P.projection_l2_sphere(x, 2.0 * scale), 2.0 * scale * x64 / np.linalg.norm(x64))
    close(P.projection_linf_ball(x, 0.5 * scale), np.clip(x64, -0.5 * scale, 0.5 * scale))
    close(P.projection_box(x, (-0.2 * scale, 0.5 * scale)), np.clip(x64, -0.2 * scale, 0.5 * scale))
    close(P.projection_non_negative(x), np.maximum(x64, 0))
    a = np.array([1.0, 2.0, -1.0, 0.5])
    close(P.projection_hyperplane(x, (jnp.asarray(a, dtype), 0.1 * scale)), x64 - (a @ x64 - 0.1 * scale) / (a @ a) * a)
    close(P.projection_halfspace(x, (jnp.asarray(a, dtype), -scale)), x64 - max(a @ x64 + scale, 0) / (a @ a) * a)
    close(P.projection_hypercube(x, 0.5 * scale), np.clip(x64, 0, 0.5 * scale))
    close(P.projection_l1_sphere(x, 1.0 * scale), np.sign(x64) * np.maximum(np.abs(x64) - 0.7 / 3 * scale, 0))
    l1 = P.projection_l1_ball(x, 1.0 * scale)
    assert float(jnp.sum(jnp.abs(l1))) <= scale * (1 + 50 * eps)
    close(l1, np.sign(x64) * np.maximum(np.abs(x64) - 0.7 / 3 * scale, 0))  # support of 3: τ = (1.7 − 1)/3
    t, v = x64[0], x64[1:]
    norm = np.linalg.norm(v)
    soc = np.concatenate([[t + norm], (t + norm) * v / norm]) / 2 if abs(t) < norm else x64
    close(P.projection_second_order_cone(x), soc)
    sym = np.diag(x64)
    close(P.projection_psd_cone(jnp.asarray(sym, dtype)), np.diag(np.maximum(x64, 0)))


def _points_of_sets(dtype):
    """(name, projection, a point of its set)."""
    d = lambda v: jnp.asarray(v, dtype)
    A = np.array([[1.0, 1.0, 0.0, 0.0], [0.0, 1.0, -1.0, 2.0]])
    point = np.array([0.3, 0.2, 0.1, 0.4])
    G = np.array([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]])
    doubly = np.array([[0.6, 0.4, 0.0], [0.1, 0.3, 0.6], [0.3, 0.3, 0.4]])
    transport = np.array([[0.1, 0.2, 0.0], [0.3, 0.1, 0.3]])
    return [
        ("non_negative", lambda x: P.projection_non_negative(x), d([0.0, 1.0, 2.5])),
        ("box", lambda x: P.projection_box(x, (0.0, 1.0)), d([0.0, 0.5, 1.0])),
        ("hypercube", lambda x: P.projection_hypercube(x, 2.0), d([0.0, 0.5, 2.0])),
        ("box_section", lambda x: P.projection_box_section(x, (0.0, 1.0, d([1.0, 2.0, 3.0]), 2.0)), d([0.5, 0.0, 0.5])),
        ("sparse_simplex", lambda x: P.projection_sparse_simplex(x, 2), d([0.0, 0.7, 0.0, 0.3])),
        ("l1_sphere", lambda x: P.projection_l1_sphere(x, 2.0), d([0.5, -1.0, 0.0, 0.5])),
        ("simplex", lambda x: P.projection_simplex(x), d([0.2, 0.3, 0.5, 0.0])),
        ("simplex-value", lambda x: P.projection_simplex(x, 3.0), d([1.0, 2.0, 0.0])),
        ("l1_ball", lambda x: P.projection_l1_ball(x, 1.0), d([0.2, -0.3, 0.5])),
        ("l1_ball-inside", lambda x: P.projection_l1_ball(x, 1.0), d([0.1, -0.2, 0.3])),
        ("l2_ball", lambda x: P.projection_l2_ball(x, 5.0), d([3.0, 4.0])),
        ("linf_ball", lambda x: P.projection_linf_ball(x, 1.0), d([1.0, -1.0, 0.3])),
        ("l2_sphere", lambda x: P.projection_l2_sphere(x, 5.0), d([3.0, -4.0])),
        ("hyperplane", lambda x: P.projection_hyperplane(x, (d([1.0, 2.0]), 3.0)), d([1.0, 1.0])),
        ("halfspace", lambda x: P.projection_halfspace(x, (d([1.0, 2.0]), 3.0)), d([1.0, 1.0])),
        ("affine_set", lambda x: P.projection_affine_set(x, (d(A), d(A @ point))), d(point)),
        ("polyhedron", lambda x: P.projection_polyhedron(x, (d(A[:1]), d(A[:1] @ point), d(G), d(G @ point + [0.0, 0.1]))), d(point)),
        ("second_order_cone", lambda x: P.projection_second_order_cone(x), d([5.0, 3.0, -4.0])),
        ("psd_cone", lambda x: P.projection_psd_cone(x), d([[2.0, 1.0], [1.0, 1.0]])),
        ("psd_cone-singular", lambda x: P.projection_psd_cone(x), d([[1.0, 1.0], [1.0, 1.0]])),
        ("birkhoff", lambda x: P.projection_birkhoff(x), d(doubly)),
        ("birkhoff-issue20", lambda x: P.projection_birkhoff(x), d([[0.6, 0.4], [0.4, 0.6]])),
        ("birkhoff-permutation", lambda x: P.projection_birkhoff(x), d(np.eye(3)[[2, 0, 1]])),
        ("transport", lambda x: P.projection_transport(x, (d(transport.sum(1)), d(transport.sum(0)))), d(transport)),
    ]


POINTS = [name for name, _, _ in _points_of_sets(jnp.float64)]


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("name", POINTS)
def test_points_of_the_set_are_unchanged(name, dtype):
    """A projection leaves the points of its set where they are (case 8: Birkhoff)."""
    (_, project, point), = [item for item in _points_of_sets(dtype) if item[0] == name]
    tol = 1e-9 if name == "polyhedron" and dtype == jnp.float64 else 20 * float(jnp.finfo(dtype).eps)
    out = project(point)
    assert out.dtype == point.dtype
    np.testing.assert_allclose(out, point, rtol=tol, atol=tol)


def _transport_by_dykstra(X, a, b, sweeps=20000):
    """Independent reference: Dykstra's alternating projections onto {P1 = a, Pᵀ1 = b}
    (closed form) and {P ≥ 0}, in numpy float64."""
    m, n = X.shape

    def affine(Y):
        r, c, s = Y.sum(1) - a, Y.sum(0) - b, Y.sum() - a.sum()
        return Y - r[:, None] / n - c[None, :] / m + s / (m * n)

    Y, p, q = X.copy(), np.zeros_like(X), np.zeros_like(X)
    for _ in range(sweeps):
        Z = affine(Y + p)
        p = Y + p - Z
        new = np.maximum(Z + q, 0)
        q = Z + q - new
        if np.abs(new - Y).max() < 1e-15:
            return new
        Y = new
    return Y


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_transport_projection_against_dykstra_and_finite_differences(seed):
    rng = np.random.RandomState(seed)
    m, n = 4, 5
    Xm = rng.randn(m, n)
    a = rng.rand(m) + 0.2
    b = rng.rand(n) + 0.2
    b *= a.sum() / b.sum()
    marg = (jnp.asarray(a), jnp.asarray(b))
    plan = P.projection_transport(jnp.asarray(Xm), marg)
    np.testing.assert_allclose(plan, _transport_by_dykstra(Xm, a, b), atol=1e-10)
    # Derivatives in X and in the marginals (a direction keeping Σa = Σb) against
    # central differences of re-solving; reverse mode agrees with forward.
    U = rng.randn(m, n)
    da = rng.randn(m)
    db = rng.randn(n)
    db += (da.sum() - db.sum()) / n
    f = lambda t: P.projection_transport(jnp.asarray(Xm) + t * U, (marg[0] + t * da, marg[1] + t * db))
    h = 1e-6
    fd = (f(h) - f(-h)) / (2 * h)
    _, jvp = jax.jvp(f, (0.0,), (1.0,))
    np.testing.assert_allclose(jvp, fd, atol=1e-7)
    W = rng.randn(m, n)
    grads = jax.grad(lambda X_, a_, b_: jnp.vdot(W, P.projection_transport(X_, (a_, b_))), argnums=(0, 1, 2))(
        jnp.asarray(Xm), *marg
    )
    np.testing.assert_allclose(
        jnp.vdot(grads[0], U) + jnp.vdot(grads[1], da) + jnp.vdot(grads[2], db), jnp.vdot(W, jvp), rtol=1e-9
    )


def test_box_section_against_the_qp_and_finite_differences():
    """The box section {0 ≤ y ≤ 0.8, ⟨w, y⟩ = c} against the QP-backed polyhedron
    projection of the same set, and its derivative in x, w and c against central
    differences (two coordinates free at the solution)."""
    x = jnp.array([0.9, 0.1, 0.5, -0.3])
    w = jnp.array([1.0, 2.0, 0.5, 1.5])
    c = 1.2
    box = lambda x, w, c: P.projection_box_section(x, (0.0, 0.8, w, c))
    n = x.shape[0]
    G = jnp.concatenate([-jnp.eye(n), jnp.eye(n)])
    h = jnp.concatenate([jnp.zeros(n), 0.8 * jnp.ones(n)])
    reference = P.projection_polyhedron(x, (w[None, :], jnp.array([c]), G, h))
    y = box(x, w, c)
    np.testing.assert_allclose(y, reference, atol=1e-9)
    assert float(jnp.vdot(w, y)) == pytest.approx(c, abs=1e-12)
    free = (y > 1e-9) & (y < 0.8 - 1e-9)
    assert int(free.sum()) >= 2
    rng = np.random.RandomState(0)
    u = jnp.asarray(rng.randn(n))
    v = jnp.asarray(rng.randn(n))
    f = lambda t: box(x + t * u, w + 0.1 * t * v, c + 0.3 * t)
    h_ = 1e-6
    _, jvp = jax.jvp(f, (0.0,), (1.0,))
    np.testing.assert_allclose(jvp, (f(h_) - f(-h_)) / (2 * h_), atol=1e-8)


def test_sparse_simplex_is_the_simplex_on_the_top_entries():
    x = jnp.array([0.3, 2.0, -1.0, 1.7, 0.9])
    top = jnp.array([1, 3])
    y = P.projection_sparse_simplex(x, 2, value=2.0)
    expected = jnp.zeros(5).at[top].set(P.projection_simplex(x[top], 2.0))
    np.testing.assert_allclose(y, expected, atol=1e-15)
    J = jax.jacobian(lambda x: P.projection_sparse_simplex(x, 2, value=2.0))(x)
    Jtop = np.zeros((5, 5))
    Jtop[np.ix_(top, top)] = jax.jacobian(lambda v: P.projection_simplex(v, 2.0))(x[top])
    np.testing.assert_allclose(J, Jtop, atol=1e-15)


def test_birkhoff_at_a_vertex_has_zero_derivative():
    """Near a permutation matrix scaled up, the projection is that permutation and stays
    so under small perturbations: the derivative is exactly zero (finite, not NaN)."""
    perm = np.eye(3)[[1, 2, 0]]
    Xm = 5.0 * jnp.asarray(perm)
    np.testing.assert_allclose(P.projection_birkhoff(Xm), perm, atol=1e-12)
    J = jax.jacobian(P.projection_birkhoff)(Xm)
    np.testing.assert_array_equal(J, 0.0)


def test_birkhoff_extreme_magnitudes_float64():
    """At 1e−9 the plan is interior: the projection onto the affine set {P1 = 1, Pᵀ1 = 1}
    (closed form). At 1e9 it is the optimal assignment of the linear program max ⟨P, X⟩
    (scipy's Hungarian method): the continuation in the scale of X reaches it."""
    from scipy.optimize import linear_sum_assignment

    rng = np.random.RandomState(3)
    n = 5
    Xm = rng.randn(n, n) * 1e-9
    interior = Xm - Xm.mean(1, keepdims=True) - Xm.mean(0, keepdims=True) + Xm.mean() + 1 / n
    np.testing.assert_allclose(P.projection_birkhoff(jnp.asarray(Xm)), interior, atol=1e-15)
    Xm = rng.randn(n, n) * 1e9
    rows, cols = linear_sum_assignment(-Xm)
    assignment = np.zeros((n, n))
    assignment[rows, cols] = 1.0
    np.testing.assert_allclose(P.projection_birkhoff(jnp.asarray(Xm)), assignment, atol=1e-6)


def test_kl_projections_are_the_entropic_ones():
    """`kl_projection_transport` is jaxopt's KL projection of exp(X) (ε = 1): the
    Sinkhorn scaling of the Gibbs kernel, computed here by plain Sinkhorn in numpy."""
    rng = np.random.RandomState(4)
    Xm = rng.randn(3, 3)
    K = np.exp(Xm)
    u = np.ones(3)
    for _ in range(5000):
        v = 1 / (K.T @ u)
        u = 1 / (K @ v)
    np.testing.assert_allclose(P.kl_projection_birkhoff(jnp.asarray(Xm)), u[:, None] * K * v[None, :], atol=1e-10)


# --- proximal operators -------------------------------------------------------------------------


def test_issue20_elastic_net_conventions():
    """Case 4: sensitiv's (λ₁, λ₂) against jaxopt's (λ, γ), both against the minimizer of
    ½(y − x)² + g(y) found by brute force on a fine grid."""
    x, lam, gamma = 2.0, 0.5, 0.1
    grid = np.linspace(-1, 3, 400001)
    sensitiv_g = lam * np.abs(grid) + 0.5 * gamma * grid**2
    jaxopt_g = lam * (np.abs(grid) + 0.5 * gamma * grid**2)
    brute = lambda g: grid[np.argmin(0.5 * (grid - x) ** 2 + g)]
    ours = float(X.prox_elastic_net(jnp.array([x]), (lam, gamma))[0])
    theirs = float(X.prox_elastic_net_jaxopt(jnp.array([x]), (lam, gamma))[0])
    assert ours == pytest.approx(1.5 / 1.1, rel=1e-12) and ours == pytest.approx(brute(sensitiv_g), abs=1e-5)
    assert theirs == pytest.approx(1.5 / 1.05, rel=1e-12) and theirs == pytest.approx(brute(jaxopt_g), abs=1e-5)
    # The documented conversion: (λ₁, λ₂) = (λ, λγ).
    assert float(X.prox_elastic_net(jnp.array([x]), (lam, lam * gamma))[0]) == pytest.approx(theirs, rel=1e-12)
    # Pytree hyperparameters and the step size, as jaxopt allows.
    tree = {"a": jnp.array([2.0, -3.0]), "b": jnp.array([0.1])}
    out = X.prox_elastic_net_jaxopt(tree, ({"a": 0.5, "b": 0.05}, {"a": 0.1, "b": 2.0}), 2.0)
    np.testing.assert_allclose(out["a"], np.sign([2.0, -3.0]) * (np.abs([2.0, -3.0]) - 1.0) / (1 + 2 * 0.5 * 0.1))
    np.testing.assert_allclose(out["b"], [0.0])


def test_issue20_make_prox_from_projection_defaults():
    """Case 7: with hyperparams left at None the projection's own default set applies."""
    x = jnp.array([0.3, 0.9, -1.0], jnp.float32)
    prox = X.make_prox_from_projection(P.projection_simplex)
    np.testing.assert_allclose(prox(x), [0.2, 0.8, 0.0], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(prox(x, None, 0.3), P.projection_simplex(x))
    np.testing.assert_allclose(prox(x, 2.0, 0.3), P.projection_simplex(x, 2.0))
    np.testing.assert_allclose(X.make_prox_from_projection(P.projection_l2_ball)(jnp.array([3.0, 4.0])), [0.6, 0.8])
    # A projection whose set has no default still names what is missing.
    with pytest.raises(TypeError, match="hyperparams"):
        X.make_prox_from_projection(P.projection_box)(x)


@pytest.mark.parametrize(
    "projection", [P.projection_simplex, P.projection_l1_ball, P.projection_l2_ball, P.projection_linf_ball]
)
def test_none_hyperparams_mean_the_default_set(projection):
    x = jnp.array([0.9, -0.7, 0.4])
    np.testing.assert_array_equal(projection(x, None), projection(x))


@pytest.mark.parametrize(
    "prox", [X.prox_lasso, X.prox_non_negative_lasso, X.prox_group_lasso, X.prox_ridge, X.prox_non_negative_ridge,
             X.prox_elastic_net, X.prox_elastic_net_jaxopt]
)
def test_none_strengths_mean_one(prox):
    x = jnp.array([2.0, -0.5, 0.3])
    one = (1.0, 1.0) if "elastic" in prox.__name__ else 1.0
    np.testing.assert_array_equal(prox(x, None, 0.5), prox(x, one, 0.5))


def test_prox_ridge_is_half_squared_norm():
    """jaxopt's and sensitiv's prox_ridge both minimize ½(y − x)² + η·½λy² (jaxopt's
    docstring omits the ½; the numbers agree)."""
    x, lam, eta = 3.0, 2.0, 0.5
    assert float(X.prox_ridge(jnp.array([x]), lam, eta)[0]) == pytest.approx(x / (1 + eta * lam))


def test_polyhedron_float32_default_tolerance_is_reachable():
    """In float32 the default QP tolerance sits above round-off, so an eager call on a
    feasible set converges (no ConvergenceError) and matches the float64 answer."""
    rng = np.random.RandomState(0)
    x, A, b, G, h = rng.randn(5), rng.randn(3, 5), rng.randn(3), rng.randn(2, 5), rng.randn(2)
    f32 = lambda *a: tuple(jnp.asarray(v, jnp.float32) for v in a)
    p32 = P.projection_polyhedron(f32(x)[0], f32(A, b, G, h))
    p64 = P.projection_polyhedron(jnp.asarray(x), tuple(jnp.asarray(v) for v in (A, b, G, h)))
    assert p32.dtype == jnp.float32
    np.testing.assert_allclose(p32, p64, atol=1e-3)
    np.testing.assert_allclose(A @ np.asarray(p64), b, atol=1e-9)


def test_polyhedron_reports_an_empty_set_outside_jit():
    """jaxopt checks feasibility by default; sensitiv checks convergence whenever the
    inputs are concrete, and says what may be wrong."""
    from sensitiv.errors import ConvergenceError

    A = jnp.array([[1.0, 1.0], [0.0, 1.0], [-1.0, 1.0]])
    b = jnp.array([1.0, 1.0, -1.0])
    G = -jnp.eye(2)
    h = jnp.zeros(2)
    with pytest.raises(ConvergenceError, match="may be empty"):
        P.projection_polyhedron(jnp.zeros(2), hyperparams=(A, b, G, h), maxiter=20)


# --- boundary solutions of paired solvers ----------------------------------------------------------


def _simplex_face_jacobian(support, n):
    """d proj_simplex(θ)/dθ on a fixed support S: I_S − 1_S1_Sᵀ/|S| (zero off S)."""
    s = np.zeros(n)
    s[list(support)] = 1.0
    return np.diag(s) - np.outer(s, s) / s.sum()


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_issue20_mirror_descent_kl_exact_zeros(dtype):
    """Case 9: entropic mirror descent whose solution has exact zeros.

    min ½‖x − θ‖² over the simplex is proj_simplex(θ) = [0.75, 0.25, 0]; the zero is
    strictly active, so x₃ stays 0 under small changes of θ and ∂x*/∂θ is the closed
    form I_S − 1_S1_Sᵀ/|S| on S = {1, 2} (both one-sided limits)."""
    f = lambda x, theta: 0.5 * jnp.sum((x - theta) ** 2)
    md = MirrorDescent(f, jnp.log, P.kl_projection_simplex, stepsize=1.0, maxiter=3000,
                       tol=1e-6 if dtype == jnp.float32 else 1e-12)
    theta = jnp.array([1.0, 0.5, -5.0], dtype)
    x0 = jnp.array([0.5, 0.5, 0.0], dtype)  # the zero is exact from the start
    solve = lambda t: md.run(x0, 1.0, t).params
    x = solve(theta)
    assert float(x[2]) == 0.0
    np.testing.assert_allclose(x, [0.75, 0.25, 0.0], rtol=_tol(dtype), atol=_tol(dtype))
    exact = _simplex_face_jacobian({0, 1}, 3)
    for J in (jax.jacrev(solve)(theta), jax.jacfwd(solve)(theta)):
        assert bool(jnp.all(jnp.isfinite(J)))
        np.testing.assert_allclose(J, exact, atol=_tol(dtype))
    if dtype == jnp.float64:
        # Central differences of re-solving, coordinate by coordinate.
        h = 1e-5
        fd = np.stack([(solve(theta.at[i].add(h)) - solve(theta.at[i].add(-h))) / (2 * h) for i in range(3)], axis=1)
        np.testing.assert_allclose(jax.jacfwd(solve)(theta), fd, atol=1e-7)


def test_mirror_descent_underflow_to_zero_float32():
    """The issue's form: iterates underflow to an exact zero in float32 (x* = [1, 0, 0]
    from a uniform start); the derivative is finite (the vertex is stable: zero)."""
    f = lambda x, theta: 0.5 * jnp.sum((x - theta) ** 2)
    md = MirrorDescent(f, jnp.log, P.kl_projection_simplex, stepsize=1.0, maxiter=500, tol=0.0)
    theta = jnp.array([3.0, -40.0, -40.0], jnp.float32)
    x0 = jnp.ones(3, jnp.float32) / 3
    x = md.run(x0, 1.0, theta).params
    np.testing.assert_array_equal(x, [1.0, 0.0, 0.0])
    J = jax.jacobian(lambda t: md.run(x0, 1.0, t).params)(theta)
    np.testing.assert_allclose(J, np.zeros((3, 3)), atol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_projected_gradient_boundary_solution(dtype):
    """Projected gradient on the simplex with a boundary solution: the derivative is the
    face's closed form (one-sided limits agree), in float32 and float64."""
    f = lambda x, theta: 0.5 * jnp.sum((x - theta) ** 2)
    pg = ProjectedGradient(f, P.projection_simplex, stepsize=0.5, maxiter=2000, tol=1e-10 if dtype == jnp.float64 else 1e-6)
    theta = jnp.array([0.9, 0.4, -1.0, -2.0], dtype)
    x0 = jnp.ones(4, dtype) / 4
    solve = lambda t: pg.run(x0, None, t).params
    np.testing.assert_allclose(solve(theta), [0.75, 0.25, 0.0, 0.0], atol=_tol(dtype))
    exact = _simplex_face_jacobian({0, 1}, 4)
    np.testing.assert_allclose(jax.jacrev(solve)(theta), exact, atol=_tol(dtype))
    np.testing.assert_allclose(jax.jacfwd(solve)(theta), exact, atol=_tol(dtype))


def test_projected_gradient_box_active_bound_derivative():
    """A bound that is active at the solution: ∂x*/∂upper = 1 on that coordinate, 0 on
    the free one, against central differences of re-solving."""
    f = lambda x, theta: 0.5 * jnp.sum((x - theta) ** 2)
    pg = ProjectedGradient(f, P.projection_box, stepsize=1.0, maxiter=100, tol=1e-12)
    theta = jnp.array([2.0, 0.3])
    solve = lambda upper: pg.run(jnp.zeros(2), (0.0, upper), theta).params
    g = jax.jacfwd(solve)(1.0)
    h = 1e-6
    np.testing.assert_allclose(g, (solve(1.0 + h) - solve(1.0 - h)) / (2 * h), atol=1e-8)
    np.testing.assert_allclose(g, [1.0, 0.0])


# --- the documentation's promise list stays in step ---------------------------------------------


def test_migrating_table_names_exist():
    """Every sensitiv name the migration table points to exists."""
    from pathlib import Path
    import re

    text = (Path(__file__).resolve().parent.parent / "docs" / "migrating.md").read_text()
    names = set(re.findall(r"`sensitiv\.([\w.]+)", text))
    assert names, "the migration table names no sensitiv objects"
    for dotted in names:
        obj = sensitiv
        for part in dotted.split("."):
            assert hasattr(obj, part), f"docs/migrating.md names sensitiv.{dotted}, which does not exist"
            obj = getattr(obj, part)


def test_scipy_minimize_refuses_two_iteration_limits():
    """jaxopt refuses maxiter= together with options['maxiter']; so does sensitiv (one of
    the two would be silently ignored)."""
    from sensitiv.solvers import ScipyBoundedMinimize, ScipyMinimize

    for solver in (ScipyMinimize, ScipyBoundedMinimize):
        with pytest.raises(ImplicitDiffError, match=r"options\['maxiter'\]"):
            solver(lambda x: jnp.sum(x**2), maxiter=500, options={"maxiter": 100})
