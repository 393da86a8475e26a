"""sensitiv.jacobian: every strategy and mode against independent references.

References: the pseudo-inverse of the float64 Hessian from `jax.hessian` (dense, exact),
closed forms for linear and quadratic problems, `jax.jacobian` through a
`custom_root`-decorated Newton solver, and central finite differences of re-solving.
Systems are small (16 soft spheres in a periodic box) so that compilation dominates.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sensitiv
from sensitiv.errors import InputError
from sensitiv.engine import Sparsity, distance2_coloring, jacobian, total_derivative, translation_modes

N_ATOMS = 16
DIAMETERS = np.where(np.arange(N_ATOMS) < N_ATOMS // 2, 1.0, 1.4)
SIDE = float(np.sqrt(np.sum(np.pi * (DIAMETERS / 2) ** 2) / 0.9))


def soft_sphere_energy(x, diameters, strain=None):
    """Harmonic soft spheres in a periodic square box; `strain` deforms the box (2×2)."""
    n = x.shape[0]
    dr = x[:, None, :] - x[None, :, :]
    dr = dr - SIDE * jnp.round(dr / SIDE)
    if strain is not None:
        dr = dr @ (jnp.eye(2, dtype=x.dtype) + strain).T
    eye = jnp.eye(n, dtype=bool)
    r = jnp.sqrt(jnp.where(eye, 1.0, jnp.sum(dr**2, -1)))
    sigma = 0.5 * (diameters[:, None] + diameters[None, :])
    return 0.25 * jnp.sum(jnp.where((r < sigma) & ~eye, (1.0 - r / sigma) ** 2, 0.0))


def newton(fun, x, *params, steps=12):
    """Newton's method with pseudo-inverse steps (the Hessian is singular along translations)."""
    shape = x.shape
    grad = jax.grad(lambda v, *p: fun(v.reshape(shape), *p))
    hess = jax.hessian(lambda v, *p: fun(v.reshape(shape), *p))

    def step(_, v):
        return v - jnp.linalg.pinv(hess(v, *params), rtol=1e-12) @ grad(v, *params)

    return jax.lax.fori_loop(0, steps, step, x.reshape(-1)).reshape(shape)


def relax(fun, x0, *params):
    import scipy.optimize

    shape = x0.shape
    value = jax.jit(lambda v: fun(v.reshape(shape), *params))
    grad = jax.jit(jax.grad(lambda v: fun(v.reshape(shape), *params)))
    res = scipy.optimize.minimize(
        lambda v: float(value(v)), np.ravel(x0), jac=lambda v: np.asarray(grad(v)),
        method="L-BFGS-B", options=dict(maxiter=20000, gtol=1e-13, ftol=1e-16),
    )
    return jax.jit(newton, static_argnums=0)(fun, jnp.asarray(res.x).reshape(shape), *params)


F_SOFT = jax.grad(soft_sphere_energy)


@pytest.fixture(scope="module")
def packing():
    rng = np.random.default_rng(0)
    x0 = jnp.asarray(rng.uniform(0.0, SIDE, (N_ATOMS, 2)))
    sigma = jnp.asarray(DIAMETERS)
    x = relax(soft_sphere_energy, x0, sigma)
    assert float(jnp.linalg.norm(F_SOFT(x, sigma))) < 1e-12
    hess = jax.hessian(lambda v: soft_sphere_energy(v.reshape(N_ATOMS, 2), sigma))(x.reshape(-1))
    b = jax.jacfwd(lambda s: F_SOFT(x, s))(sigma).reshape(2 * N_ATOMS, N_ATOMS)
    w = np.linalg.eigvalsh(np.asarray(hess))
    assert np.sum(np.abs(w) < 1e-10) == 2 and w[2] > 1e-3  # translations only
    reference = -np.linalg.pinv(np.asarray(hess), rcond=1e-10) @ np.asarray(b)
    sparsity = Sparsity.from_positions(x, 1.05 * DIAMETERS.max(), box=SIDE)
    return dict(x=x, sigma=sigma, reference=reference, sparsity=sparsity, null=translation_modes(N_ATOMS, 2))


def rel_err(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return np.max(np.abs(a - b)) / np.max(np.abs(b))


# -- structure ----------------------------------------------------------------------------


def test_distance2_coloring_is_valid():
    rng = np.random.default_rng(3)
    n = 300
    pairs = rng.integers(0, n, size=(900, 2))
    colors = distance2_coloring(n, pairs)
    neighbors = [set() for _ in range(n)]
    for i, j in pairs:
        if i != j:
            neighbors[i].add(j)
            neighbors[j].add(i)
    for v in range(n):
        closed = [v, *neighbors[v]]
        assert len({colors[u] for u in closed}) == len(closed)  # no two in a closed neighborhood
    assert colors.max() + 1 <= max(len(s) for s in neighbors) ** 2 + 1


def test_block_sparse_products_by_row_slots_match_the_dense_matrix():
    """The gather-only products (row slots) against the block-COO ones and the dense matrix,
    with rows of different widths, an isolated atom (padding only) and 3 coordinates per atom."""
    from sensitiv.engine._structure import BlockSparse

    rng = np.random.default_rng(1)
    n, bs = 40, 3
    pairs = rng.integers(0, n - 1, size=(90, 2))  # atom n - 1 interacts with nothing
    sparsity = Sparsity.from_pairs(pairs, n, bs)
    rows, cols = sparsity.block_pattern()
    blocks = jnp.asarray(rng.standard_normal((rows.size, bs, bs)))
    coo = BlockSparse(jnp.asarray(rows), jnp.asarray(cols), blocks, n)
    slotted = BlockSparse(coo.rows, coo.cols, blocks, n, *(jnp.asarray(a) for a in sparsity.row_slots()))
    dense = np.asarray(coo.todense())
    v = rng.standard_normal((n * bs, 5))
    for transpose, reference in ((False, dense @ v), (True, dense.T @ v)):
        assert np.allclose(slotted.matmat(jnp.asarray(v), transpose), reference, rtol=0, atol=1e-13)
        assert np.allclose(coo.matmat(jnp.asarray(v), transpose), reference, rtol=0, atol=1e-13)
    assert np.allclose(slotted.matvec(jnp.asarray(v[:, 0])), dense @ v[:, 0], rtol=0, atol=1e-13)
    assert np.allclose(slotted.rmatvec(jnp.asarray(v[:, 0])), dense.T @ v[:, 0], rtol=0, atol=1e-13)


def test_block_cg_solves_dependent_and_zero_rows_and_reports_negative_curvature():
    """Block CG against a dense solve: rows that are equal (the block loses rank), a zero
    row, per-row tolerances and caps; an indefinite matrix stops the rows and says so."""
    from sensitiv.engine._block_krylov import block_cg

    rng = np.random.default_rng(4)
    d = 60
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    spd = (q * np.geomspace(1e-3, 1.0, d)) @ q.T
    rhs = rng.standard_normal((5, d))
    rhs[3] = rhs[1]  # dependent: the block loses rank after the first step
    rhs[4] = 0.0
    a = jnp.asarray(spd)
    x, report = block_cg(lambda v: v @ a, jnp.asarray(rhs), lambda v: v, 1e-12, 500)
    expected = np.linalg.solve(spd, rhs.T).T
    assert np.max(np.abs(np.asarray(x) - expected)) < 1e-8 * np.max(np.abs(expected))
    assert bool(np.all(report.converged)) and not bool(np.any(report.negative_curvature))
    assert int(report.iterations[4]) == 0 and np.all(np.asarray(x)[4] == 0.0)
    # a cap of one iteration for row 0: reported as not converged, the others unaffected
    x, report = block_cg(lambda v: v @ a, jnp.asarray(rhs), lambda v: v, 1e-12, 500,
                         row_maxiter=jnp.array([1, 500, 500, 500, 500]))
    assert int(report.iterations[0]) == 1 and not bool(report.converged[0])
    assert bool(np.all(report.converged[1:]))
    indefinite = jnp.asarray((q * np.linspace(-0.5, 1.0, d)) @ q.T)
    _, report = block_cg(lambda v: v @ indefinite, jnp.asarray(rhs[:3]), lambda v: v, 1e-12, 500)
    assert bool(np.all(report.negative_curvature))


def test_sparsity_inputs_are_checked():
    with pytest.raises(InputError, match="outside"):
        Sparsity.from_pairs(np.array([[0, 5]]), n_atoms=3, n_spatial=2)
    with pytest.raises(InputError, match=r"\(P, 2\)"):
        Sparsity.from_pairs(np.array([0.0, 1.0]), n_atoms=3, n_spatial=2)
    a = Sparsity.from_pairs(np.array([[0, 1], [1, 2]]), 3, 2)
    b = Sparsity.from_pairs(np.array([[2, 1], [1, 0], [0, 1]]), 3, 2)
    assert a == b and hash(a) == hash(b) and a.n_colors == 3


# -- every strategy, the same minimum-norm Jacobian ------------------------------------------

STRATEGIES = [
    ("dense", False),
    ("dense", True),
    ("krylov", False),
    ("krylov", True),
    ("reverse", False),
]


@pytest.fixture(scope="module")
def strategy_results(packing):
    p = packing
    out = {}
    for method, structured in STRATEGIES:
        out[method, structured] = jacobian(
            F_SOFT, p["x"], p["sigma"], method=method, null_space=p["null"],
            sparsity=p["sparsity"] if structured else None, per_atom_params=structured, symmetric=True,
        )
    return out


@pytest.mark.parametrize("method,structured", STRATEGIES)
def test_strategies_give_the_minimum_norm_jacobian(packing, strategy_results, method, structured):
    result = strategy_results[method, structured]
    assert result.jacobian.shape == (N_ATOMS, 2, N_ATOMS)
    assert rel_err(result.jacobian.reshape(2 * N_ATOMS, N_ATOMS), packing["reference"]) < 1e-8
    # minimum norm: no component along the translations
    along = packing["null"] @ np.asarray(result.jacobian).reshape(2 * N_ATOMS, N_ATOMS)
    assert np.max(np.abs(along)) < 1e-10 * np.max(np.abs(packing["reference"]))
    info = result.info
    assert bool(info.trustworthy), info.warnings
    assert info.verdict == "minimum" and int(info.null_space_dim) == 2
    assert info.mode == ("reverse" if method == "reverse" else "forward")
    assert float(info.stationarity_residual) < 1e-12
    assert float(info.jacobian_error_estimate) < 1e-9
    eigenvalues = np.linalg.eigvalsh(np.asarray(jax.hessian(
        lambda v: soft_sphere_energy(v.reshape(N_ATOMS, 2), packing["sigma"]))(packing["x"].reshape(-1))))
    lam_min = eigenvalues[2]
    tolerance = 1e-6 if method != "krylov" else 0.5  # Lanczos estimate (an upper bound) vs exact
    assert lam_min <= float(info.lambda_min) * (1 + 1e-9) and float(info.lambda_min) <= lam_min * (1 + tolerance)
    if structured:
        assert info.n_colors > 0 and info.n_products < 2 * N_ATOMS + N_ATOMS
        assert float(info.sparsity_error) < 1e-12


def test_dense_strategy_through_the_inverse_factor_as_on_gpus(packing, monkeypatch):
    """GPUs solve with `L⁻¹` (products) instead of triangular solves: the same answer here."""
    from sensitiv.engine import _dense

    monkeypatch.setattr(_dense, "_prefer_inverse", lambda: True)
    p = packing
    # a seed of its own: a new configuration, so the program is traced with the patch
    result = jacobian(F_SOFT, p["x"], p["sigma"], method="dense", null_space=p["null"],
                      sparsity=p["sparsity"], per_atom_params=True, symmetric=True, seed=7)
    assert rel_err(result.jacobian.reshape(2 * N_ATOMS, N_ATOMS), p["reference"]) < 1e-8
    assert bool(result.info.trustworthy) and result.info.verdict == "minimum"
    assert float(result.info.jacobian_error_estimate) < 1e-9


def test_auto_records_choice(packing):
    p = packing
    result = jacobian(F_SOFT, p["x"], p["sigma"], null_space=p["null"], symmetric=True)
    assert result.info.strategy == "dense" and "factorization" in result.info.reason
    assert rel_err(result.jacobian.reshape(2 * N_ATOMS, N_ATOMS), p["reference"]) < 1e-8


def test_agrees_with_jax_jacobian_of_custom_root_solver(packing):
    p = packing

    @sensitiv.custom_root(F_SOFT, solve=sensitiv.LinearSolver("cholesky", null_space=p["null"]))
    def solver(x_init, diameters):
        return newton(soft_sphere_energy, x_init, diameters, steps=2)

    expected = jax.jacobian(solver, argnums=1)(p["x"], p["sigma"])
    result = jacobian(F_SOFT, p["x"], p["sigma"], method="dense", null_space=p["null"], symmetric=True)
    assert rel_err(result.jacobian, expected) < 1e-9


def test_missing_pairs_are_detected(packing):
    p = packing
    pairs = p["sparsity"].pairs
    broken = Sparsity.from_pairs(pairs[: len(pairs) // 2], N_ATOMS, 2)
    result = jacobian(
        F_SOFT, p["x"], p["sigma"], method="dense", null_space=p["null"], sparsity=broken,
        per_atom_params=True, symmetric=True,
    )
    assert not bool(result.info.trustworthy)
    assert float(result.info.sparsity_error) > 1e-3
    assert any("sparsity" in w for w in result.info.warnings)


# -- diagnostics ------------------------------------------------------------------------------


def test_unconverged_solution_is_flagged_and_error_estimated(packing):
    p = packing
    rng = np.random.default_rng(1)
    x_hat = p["x"] + 1e-4 * jnp.asarray(rng.normal(size=p["x"].shape))
    result = jacobian(F_SOFT, x_hat, p["sigma"], method="dense", null_space=p["null"], symmetric=True)
    info = result.info
    assert not bool(info.trustworthy)
    assert any("not converged enough" in w for w in info.warnings)
    actual = rel_err(result.jacobian.reshape(2 * N_ATOMS, N_ATOMS), p["reference"])
    estimate = float(info.jacobian_error_estimate)
    assert 0.05 * actual < estimate < 20 * actual  # Theorem 1, to first order
    # the Newton step estimates the solution error
    true_error = np.linalg.norm(np.asarray((x_hat - p["x"]) @ np.eye(2)).reshape(-1) @ (
        np.eye(2 * N_ATOMS) - np.asarray(p["null"]).T @ np.asarray(p["null"])))
    assert 0.5 * true_error < float(info.solution_error_estimate) < 2 * true_error


def quadratic_energy(x, theta, curvatures):
    """½ xᵀ Q diag(c) Qᵀ x − θᵀx + ¼ Σx⁴ scaled small; a saddle when some c < 0."""
    q = jnp.asarray(np.linalg.qr(np.random.default_rng(7).normal(size=(6, 6)))[0])
    h = q @ jnp.diag(curvatures) @ q.T
    return 0.5 * x @ h @ x - theta @ x + 1e-3 * jnp.sum(x**4)


def test_saddle_is_flagged_in_every_strategy():
    curv = jnp.array([-0.7, 0.5, 1.0, 2.0, 3.0, 5.0])
    theta = jnp.array([0.1, -0.2, 0.3, 0.05, 0.0, 0.2])
    F = jax.grad(quadratic_energy)
    x = newton(quadratic_energy, jnp.zeros(6), theta, curv, steps=30)
    assert float(jnp.linalg.norm(F(x, theta, curv))) < 1e-13
    hess = jax.hessian(quadratic_energy)(x, theta, curv)
    expected = np.linalg.inv(np.asarray(hess))  # J = H⁻¹ since ∂F/∂θ = −I
    for method in ("dense", "krylov"):
        result = jacobian(F, x, theta, curv, method=method, symmetric=True)
        assert result.info.verdict == "saddle", method
        assert not bool(result.info.trustworthy)
        assert any("saddle" in w for w in result.info.warnings)
        assert float(result.info.lambda_min) < 0
        assert rel_err(result.jacobian, expected) < 1e-8, method


def test_float32_minimum_with_a_soft_mode_is_trusted():
    """float32, d = 256, λ_min/λ_max = 2e-3 (a sound soft packing's ratio): a minimum, not
    a zero mode. The zero-mode threshold 100 d eps (3e-3 λ_max here) called it singular;
    rounding moves the eigenvalues by about eps λ_max, under 100 √d eps."""
    d = 256
    q = np.linalg.qr(np.random.default_rng(3).normal(size=(d, d)))[0]
    lam = np.geomspace(2e-3, 1.0, d)
    h = (q * lam) @ q.T
    energy = lambda x, theta: 0.5 * x @ jnp.asarray(h, jnp.float32) @ x - theta @ x
    theta = jnp.asarray(np.random.default_rng(4).normal(size=d), jnp.float32)
    x = jnp.asarray(np.linalg.solve(h, np.asarray(theta, np.float64)), jnp.float32)
    expected = np.linalg.inv(h)  # J = H⁻¹ since ∂F/∂θ = −I, in float64
    for method in ("dense", "krylov"):
        result = jacobian(jax.grad(energy), x, theta, method=method, symmetric=True)
        info = result.info
        assert info.verdict == "minimum" and int(info.detected_null_dim) == 0, method
        assert bool(info.trustworthy), (method, info.warnings)
        assert abs(float(info.lambda_min) - 2e-3) <= max(2e-6, float(info.lambda_min_residual)), method
        assert rel_err(np.asarray(result.jacobian, np.float64), expected) < 1e-3, method


def test_rattler_is_detected_and_jacobian_is_minimum_norm(packing):
    p = packing
    x = np.asarray(p["x"])
    # a small particle in the largest void touches nothing: two unexpected zero modes
    grid = np.stack(np.meshgrid(*[np.linspace(0, SIDE, 60, endpoint=False)] * 2), -1).reshape(-1, 2)
    dr = grid[:, None, :] - x[None, :, :]
    dr -= SIDE * np.round(dr / SIDE)
    gap = np.min(np.linalg.norm(dr, axis=-1) - DIAMETERS / 2, axis=1)
    spot = grid[np.argmax(gap)]
    small = 0.5 * gap.max()  # radius well inside the void
    assert small > 0.02
    x_r = jnp.asarray(np.vstack([x, spot]))
    sigma_r = jnp.concatenate([p["sigma"], jnp.array([small])])
    null = translation_modes(N_ATOMS + 1, 2)
    dense = jacobian(F_SOFT, x_r, sigma_r, method="dense", null_space=null, symmetric=True)
    krylov = jacobian(F_SOFT, x_r, sigma_r, method="krylov", null_space=null, symmetric=True)
    assert dense.info.verdict == "singular" and int(dense.info.detected_null_dim) == 2
    assert int(dense.info.null_space_dim) == 4
    # a rattler's position is not a function of θ: flagged (the rest of the answer is exact)
    for result in (dense, krylov):
        assert not bool(result.info.trustworthy) and any("zero mode" in w for w in result.info.warnings)
        assert int(result.info.detected_null_dim) == 2
    # the rattler does not move and nothing else changes (minimum norm)
    assert np.max(np.abs(np.asarray(dense.jacobian)[-1])) < 1e-12 * np.max(np.abs(p["reference"]))
    assert rel_err(dense.jacobian[:N_ATOMS, :, :N_ATOMS].reshape(2 * N_ATOMS, N_ATOMS), p["reference"]) < 1e-8
    assert rel_err(krylov.jacobian, dense.jacobian) < 1e-8


# -- general roots, pytrees, jit -------------------------------------------------------------


def test_nonsymmetric_root_dense_and_krylov():
    rng = np.random.default_rng(5)
    a = jnp.asarray(rng.normal(size=(5, 5)) + 4 * np.eye(5))
    c = jnp.asarray(rng.normal(size=(5, 3)))

    def F(x, theta):
        return a @ x + 0.1 * jnp.tanh(x) - c @ theta

    theta = jnp.array([0.3, -0.1, 0.2])
    x = jnp.linalg.solve(a, c @ theta)
    for _ in range(30):
        x = x - jnp.linalg.solve(jax.jacfwd(F)(x, theta), F(x, theta))
    k = jax.jacfwd(F)(x, theta)
    expected = np.linalg.solve(np.asarray(k), np.asarray(c))
    for method in ("dense", "krylov", "reverse"):
        result = jacobian(F, x, theta, method=method)
        assert result.info.verdict == "regular"
        assert "symmetric: False" in result.info.reason
        assert rel_err(result.jacobian, expected) < 1e-9, method
        assert bool(result.info.trustworthy), (method, result.info.warnings)


def test_pytree_solution_and_parameters():
    m = jnp.array([[3.0, 1.0, 0.0, 0.5, 0.0], [1.0, 4.0, 1.0, 0.0, 0.0], [0.0, 1.0, 5.0, 0.0, 1.0],
                   [0.5, 0.0, 0.0, 2.0, 0.3], [0.0, 0.0, 1.0, 0.3, 6.0]])

    def g(params):
        scale, vec = params
        return jnp.concatenate([jnp.sin(scale * vec), scale**2 * jnp.ones(2), vec[:1] * scale])

    def unpack(v):
        return {"a": v[:3], "b": v[3:].reshape(1, 2)}

    def F(x, params):
        v = jnp.concatenate([x["a"], x["b"].reshape(-1)])
        r = m @ v - g(params)
        return unpack(r)

    params = (jnp.array(0.7), jnp.array([0.2, -0.4]))
    solution_map = lambda p: unpack(jnp.linalg.solve(m, g(p)))
    x = solution_map(params)
    expected = jax.jacobian(solution_map)(params)
    for method in ("dense", "reverse"):
        result = jacobian(F, x, params, method=method)
        assert jax.tree.structure(result.jacobian) == jax.tree.structure(expected)
        for got, want in zip(jax.tree.leaves(result.jacobian), jax.tree.leaves(expected)):
            assert got.shape == want.shape
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_inside_jit_and_vmap():
    curv = jnp.array([0.7, 0.5, 1.0, 2.0, 3.0, 5.0])
    F = jax.grad(quadratic_energy)
    thetas = jnp.array([[0.1, -0.2, 0.3, 0.05, 0.0, 0.2], [0.0, 0.1, -0.1, 0.2, 0.3, -0.2]])
    xs = jax.vmap(lambda t: newton(quadratic_energy, jnp.zeros(6), t, curv, steps=30))(thetas)

    @jax.jit
    def jac(x, theta):
        r = jacobian(F, x, theta, curv, method="dense", symmetric=True)
        return r.jacobian, r.info.trustworthy

    batched, ok = jax.vmap(jac)(xs, thetas)
    for i in range(2):
        hess = jax.hessian(quadratic_energy)(xs[i], thetas[i], curv)
        assert rel_err(batched[i], np.linalg.inv(np.asarray(hess))) < 1e-10
    assert ok.shape == (2,) and bool(jnp.all(ok))


def test_bad_arguments_raise_clear_errors(packing):
    p = packing
    with pytest.raises(InputError, match="method"):
        jacobian(F_SOFT, p["x"], p["sigma"], method="newton")
    with pytest.raises(InputError, match="null_space"):
        jacobian(F_SOFT, p["x"], p["sigma"], null_space=jnp.ones((2, 5)))
    with pytest.raises(InputError, match="params"):
        jacobian(F_SOFT, p["x"], jnp.arange(3))
    with pytest.raises(InputError, match="sparsity"):
        jacobian(F_SOFT, p["x"], p["sigma"], sparsity=Sparsity.from_pairs(np.array([[0, 1]]), 5, 2))
    # an explicit dense request beyond the memory budget is refused, not attempted
    with pytest.raises(InputError, match="memory_budget"):
        jacobian(F_SOFT, p["x"], p["sigma"], method="dense", memory_budget=1000)


# -- observables --------------------------------------------------------------------------------


def strained_energy(x, strain_voigt, diameters):
    strain = jnp.array([[strain_voigt[0], strain_voigt[2]], [strain_voigt[2], strain_voigt[1]]])
    return soft_sphere_energy(x, diameters, strain)


def stress(x, strain_voigt, diameters):
    """∂E/∂ε / V in Voigt order (xx, yy, xy)."""
    return jax.jacfwd(strained_energy, argnums=1)(x, strain_voigt, diameters) / SIDE**2


F_STRAIN = jax.grad(strained_energy)


def test_relaxed_ion_elastic_tensor_matches_finite_differences(packing):
    p = packing
    strain = jnp.zeros(3)
    sigma = p["sigma"]
    x = p["x"]
    solve = jax.jit(lambda x0, s: newton(strained_energy, x0, s, sigma, steps=8))

    def relaxed_stress(s):
        return stress(solve(x, s), s, sigma)

    h = 1e-5
    fd = np.stack([
        (relaxed_stress(strain.at[k].add(h)) - relaxed_stress(strain.at[k].add(-h))) / (2 * h)
        for k in range(3)
    ], axis=1)
    affine = np.asarray(jax.jacfwd(stress, argnums=1)(x, strain, sigma))
    assert rel_err(affine, fd) > 1e-3  # ions do relax: the test can tell
    for mode in ("forward", "reverse"):
        result = total_derivative(
            stress, F_STRAIN, x, strain, sigma, mode=mode, method="dense",
            null_space=p["null"], symmetric=True,
        )
        assert result.jacobian.shape == (3, 3)
        assert rel_err(result.jacobian, fd) < 1e-6, mode
        assert bool(result.info.trustworthy)
        assert result.info.mode == mode


def test_energy_total_derivative_is_the_partial_one(packing):
    # at a minimum ∂E/∂x = 0, so dE/dθ = ∂E/∂θ (envelope theorem): an exact check
    p = packing
    result = total_derivative(
        soft_sphere_energy, F_SOFT, p["x"], p["sigma"], null_space=p["null"], symmetric=True,
    )
    assert result.info.mode == "reverse"  # one output, 16 parameters
    expected = jax.grad(soft_sphere_energy, argnums=1)(p["x"], p["sigma"])
    np.testing.assert_allclose(result.jacobian, expected, rtol=1e-10, atol=1e-14)

    def distance01(x, sigma):
        d = x[0] - x[1]
        d = d - SIDE * jnp.round(d / SIDE)
        return jnp.sqrt(jnp.sum(d**2))

    krylov = total_derivative(
        distance01, F_SOFT, p["x"], p["sigma"], method="krylov", null_space=p["null"], symmetric=True,
    )
    x = p["x"]
    d = np.array(x[0] - x[1])
    d -= SIDE * np.round(d / SIDE)
    unit = d / np.linalg.norm(d)
    ref = np.asarray(p["reference"]).reshape(N_ATOMS, 2, N_ATOMS)
    expected = unit @ (ref[0] - ref[1])
    np.testing.assert_allclose(krylov.jacobian, expected, rtol=1e-8, atol=1e-12)
