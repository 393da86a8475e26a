"""`sensitiv.uncertainty`: linear propagation, importance, higher-order derivatives, validity ranges.

Every number is checked against an independent reference: sampled statistics of re-solved
problems (exactly, where the problem is linear in θ), explicit formulas differentiated by
JAX, central differences of re-solved Jacobians, brute-force Shapley values from explicit
conditional variances, and the measured onset of a 1 % first-order error.
"""

from __future__ import annotations

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sensitiv
from sensitiv.errors import InputError
from sensitiv.engine import rigid_body_modes
from sensitiv.uncertainty import (
    ParameterCovariance,
    directional_derivatives,
    importance,
    log_sensitivity,
    observable_covariance,
    parameter_labels,
    per_atom_covariance,
    propagate,
    validity_range,
)

# -- test problems ----------------------------------------------------------------------------


def triangular_patch(n_side=4):
    """A 2-D triangular-lattice patch: reference positions, bonds, bond orientation (0, 1, 2)."""
    pts = np.array([[i + 0.5 * j, j * np.sqrt(3) / 2] for j in range(n_side) for i in range(n_side)])
    idx = lambda i, j: j * n_side + i  # noqa: E731
    bonds, orient = [], []
    for j in range(n_side):
        for i in range(n_side):
            for o, (di, dj) in enumerate(((1, 0), (0, 1), (-1, 1))):
                if 0 <= i + di < n_side and 0 <= j + dj < n_side:
                    bonds.append((idx(i, j), idx(i + di, j + dj)))
                    orient.append(o)
    return pts, np.array(bonds), np.array(orient)


REF, BONDS, ORIENT = triangular_patch()
N_ATOMS = REF.shape[0]
_rng = np.random.default_rng(7)
LENGTH_FACTOR = jnp.asarray(1.0 + 0.08 * _rng.uniform(-1, 1, len(BONDS)))  # frustration: prestress
E_REF = jnp.asarray((REF[BONDS[:, 1]] - REF[BONDS[:, 0]]) / np.linalg.norm(REF[BONDS[:, 1]] - REF[BONDS[:, 0]], axis=1)[:, None])


def linear_energy(u, params):
    """Harmonic network on fixed bond directions: quadratic in u, linear in the rest lengths."""
    ext = jnp.sum((u[BONDS[:, 1]] - u[BONDS[:, 0]]) * E_REF, axis=1)
    return 0.5 * jnp.sum((ext - params["L"][ORIENT] * LENGTH_FACTOR + 1.0) ** 2)


def spring_energy(x, params):
    """Central-force network, prestressed: nonlinear in x, the rest lengths and the stiffnesses."""
    r = jnp.linalg.norm(x[BONDS[:, 1]] - x[BONDS[:, 0]], axis=1)
    return 0.5 * jnp.sum(params["k"][ORIENT] * (r - params["L"][ORIENT] * LENGTH_FACTOR) ** 2)


def bond_12(x, params):
    """An observable: the length of the bond between atoms 5 and 6."""
    return jnp.linalg.norm(x[6] - x[5])


def gyration(x, params):
    """A vector observable: the gyration tensor's entries (xx, xy, yy)."""
    c = x - x.mean(axis=0)
    g = c.T @ c / x.shape[0]
    return jnp.stack([g[0, 0], g[0, 1], g[1, 1]])


PARAMS = {"L": jnp.array([1.0, 1.02, 0.98]), "k": jnp.array([1.0, 1.5, 0.7])}
F_SPRING = jax.grad(spring_energy)
F_LINEAR = jax.grad(linear_energy)


def gauge(modes):
    """Orthonormal basis Q of the complement of the rigid-body modes (d × (d − 3))."""
    modes = np.asarray(modes)
    q, _ = np.linalg.qr(np.concatenate([modes.T, np.eye(modes.shape[1])], axis=1))
    return jnp.asarray(q[:, modes.shape[0]:modes.shape[1]])


def make_solver(energy, x_ref, steps=40, modes=None):
    """Newton on x = x_ref + Q y (the rigid-body gauge of the minimum-norm derivatives): the
    reference solution of the test problems, converged to round-off."""
    q = gauge(rigid_body_modes(x_ref) if modes is None else modes)
    shape = x_ref.shape

    def reduced(y, params):
        return energy(x_ref + (q @ y).reshape(shape), params)

    def solve(params, y0=None):
        y = jnp.zeros(q.shape[1]) if y0 is None else y0

        def step(_, y):
            g = jax.grad(reduced)(y, params)
            h = jax.hessian(reduced)(y, params)
            return y - jnp.linalg.solve(h, g)

        y = jax.lax.fori_loop(0, steps, step, y)
        return x_ref + (q @ y).reshape(shape)

    return jax.jit(solve)


@pytest.fixture(scope="module")
def spring():
    """The prestressed network relaxed at PARAMS, its solver, null space and Jacobian."""
    x0 = jnp.asarray(REF)
    x_hat = make_solver(spring_energy, x0)(PARAMS)
    solver = make_solver(spring_energy, x_hat)
    modes = rigid_body_modes(x_hat)
    result = sensitiv.jacobian(F_SPRING, x_hat, PARAMS, null_space=modes)
    assert bool(result.info.trustworthy), result.info.warnings
    return dict(x=x_hat, solve=solver, modes=modes, J=result.jacobian)


def flat_params(p):
    return jnp.concatenate([p["L"], p["k"]])


def unflat(theta):
    return {"L": theta[:3], "k": theta[3:]}


COV = ParameterCovariance.from_correlation(
    {"L": jnp.array([0.01, 0.012, 0.008]), "k": jnp.array([0.05, 0.08, 0.04])},
    np.array([
        [1.0, 0.6, 0.0, 0.0, 0.0, 0.0],
        [0.6, 1.0, 0.3, 0.0, 0.0, 0.0],
        [0.0, 0.3, 1.0, 0.0, 0.0, 0.0],
        [0.0, 0.0, 0.0, 1.0, -0.5, 0.0],
        [0.0, 0.0, 0.0, -0.5, 1.0, 0.0],
        [0.0, 0.0, 0.0, 0.0, 0.0, 1.0],
    ]),
)


# -- ParameterCovariance ----------------------------------------------------------------------


def test_labels_and_constructors():
    assert parameter_labels(PARAMS) == ("L[0]", "L[1]", "L[2]", "k[0]", "k[1]", "k[2]")
    assert parameter_labels({"eps": 1.0, "strain": np.zeros((2, 2))}) == (
        "eps", "strain[0,0]", "strain[0,1]", "strain[1,0]", "strain[1,1]")
    cov = ParameterCovariance.from_std({"a": 0.1, "b": 0.2})
    np.testing.assert_allclose(cov.matrix, np.diag([0.01, 0.04]))
    np.testing.assert_allclose(cov.std, [0.1, 0.2])
    assert cov.groups() == ((0,), (1,))
    assert COV.groups() == ((0, 1, 2), (3, 4), (5,))
    np.testing.assert_allclose(COV.correlation[0, 1], 0.6)
    lam, steps = COV.principal_directions()
    # the scaled directions rebuild the covariance: Σ = Σₖ sₖ sₖᵀ
    np.testing.assert_allclose(steps.T @ steps, COV.matrix, atol=1e-15)
    assert np.all(np.diff(lam) <= 0)
    tree = COV.unravel(COV.std)
    np.testing.assert_allclose(tree["k"], [0.05, 0.08, 0.04])


def test_from_samples_is_the_sample_covariance():
    rng = np.random.default_rng(0)
    samples = {"a": rng.normal(size=50), "b": rng.normal(size=(50, 2))}
    cov = ParameterCovariance.from_samples(samples)
    flat = np.column_stack([samples["a"], samples["b"]])
    np.testing.assert_allclose(cov.matrix, np.cov(flat, rowvar=False))
    np.testing.assert_allclose(cov.mean, flat.mean(axis=0))
    assert cov.n_samples == 50 and cov.labels == ("a", "b[0]", "b[1]")


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: ParameterCovariance.from_std({"a": -0.1}), "std: standard deviation of a is -0.1 < 0"),
        (lambda: ParameterCovariance.from_matrix([[1.0, 0.5], [0.4, 1.0]], {"a": 0.0, "b": 0.0}), "not symmetric"),
        (lambda: ParameterCovariance.from_matrix([[1.0, 2.0], [2.0, 1.0]], {"a": 0.0, "b": 0.0}),
         "not positive semi-definite"),
        (lambda: ParameterCovariance.from_matrix(np.eye(3), {"a": 0.0, "b": 0.0}), "expected a 2 × 2 matrix"),
        (lambda: ParameterCovariance.from_correlation({"a": 1.0, "b": 1.0}, [[1, 1.2], [1.2, 1]]),
         "outside \\[-1, 1\\]"),
        (lambda: ParameterCovariance.from_samples({"a": np.ones(1)}), "length ≥ 2"),
        (lambda: ParameterCovariance.from_matrix([[np.nan]], {"a": 0.0}), "NaN"),
    ],
)
def test_bad_covariances_name_the_fix(build, message):
    with pytest.raises(InputError, match=message):
        build()


def test_semidefinite_covariance_is_accepted():
    # a perfectly correlated pair: singular but a valid covariance
    cov = ParameterCovariance.from_matrix([[1.0, 1.0], [1.0, 1.0]], {"a": 0.0, "b": 0.0})
    lam, steps = cov.principal_directions()
    assert lam.shape == (1,) and steps.shape == (1, 2)


# -- importance -------------------------------------------------------------------------------


def brute_force_shapley(a, sigma):
    """Shapley effects from explicit Gaussian conditional variances, over all orderings."""
    n = len(a)
    var = a @ sigma @ a

    def value(u):
        u = list(u)
        if not u:
            return 0.0
        rest = [i for i in range(n) if i not in u]
        if not rest:
            return var
        s_rr = sigma[np.ix_(rest, rest)] - sigma[np.ix_(rest, u)] @ np.linalg.pinv(sigma[np.ix_(u, u)]) @ sigma[np.ix_(u, rest)]
        return var - a[rest] @ s_rr @ a[rest]

    out = np.zeros(n)
    perms = list(itertools.permutations(range(n)))
    for perm in perms:
        for pos, j in enumerate(perm):
            out[j] += value(perm[: pos + 1]) - value(perm[:pos])
    return out / len(perms)


def test_shapley_importance_matches_brute_force_and_adds_up():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(7, 6))  # 7 outputs, the 6 parameters of COV
    jac = {"L": jnp.asarray(a[:, :3]), "k": jnp.asarray(a[:, 3:])}
    imp = importance(jac, COV)
    contrib = np.asarray(imp.contribution)
    var = np.asarray(imp.variance)
    np.testing.assert_allclose(var, np.einsum("in,nm,im->i", a, COV.matrix, a), rtol=1e-13)
    np.testing.assert_allclose(contrib.sum(axis=1), var, rtol=1e-12)
    assert np.all(contrib >= -1e-15)
    for i in range(3):
        np.testing.assert_allclose(contrib[i], brute_force_shapley(a[i], COV.matrix), rtol=1e-10, atol=1e-16)
    # groups: the correlated components; their shares are exact block variances
    assert imp.groups == (("L[0]", "L[1]", "L[2]"), ("k[0]", "k[1]"), ("k[2]",))
    block = lambda i, g: a[i, g] @ COV.matrix[np.ix_(g, g)] @ a[i, g]  # noqa: E731
    np.testing.assert_allclose(np.asarray(imp.group_contribution)[0], [block(0, [0, 1, 2]), block(0, [3, 4]),
                                                                        block(0, [5])], rtol=1e-12)
    # the covariance rule: aⱼ (Σa)ⱼ, also additive
    cov_rule = importance(jac, COV, rule="covariance")
    np.testing.assert_allclose(np.asarray(cov_rule.contribution)[0], a[0] * (COV.matrix @ a[0]), rtol=1e-12)
    ranking = imp.ranking()
    assert math.isclose(sum(s for _, s in ranking), 1.0, rel_tol=1e-12)
    assert [s for _, s in ranking] == sorted([s for _, s in ranking], reverse=True)


def test_independent_importance_is_a_squared_sigma_squared_and_log_sensitivity_ranks_without_covariance():
    a = jnp.array([[2.0, -1.0, 0.5]])
    params = jnp.array([1.0, 4.0, 2.0])
    cov = ParameterCovariance.from_std(jnp.array([0.1, 0.2, 0.3]))
    np.testing.assert_allclose(importance(a, cov).contribution, [[0.04, 0.04, 0.0225]], rtol=1e-14)
    logs = log_sensitivity(a, params)
    np.testing.assert_allclose(logs, [[2.0, -4.0, 1.0]])
    imp = importance(a, params=params)
    assert imp.rule == "log-sensitivity"
    np.testing.assert_allclose(imp.contribution, np.asarray(logs) ** 2)
    assert [lab for lab, _ in imp.ranking()] == ["θ[1]", "θ[0]", "θ[2]"]


def test_user_groups_are_shapley_players():
    a = jnp.array([[1.0, 2.0, -1.0, 0.5, 0.3, 1.0]])
    jac = {"L": a[:, :3], "k": a[:, 3:]}
    imp = importance(jac, COV, groups=[["L[0]", "k[0]"], ["L[1]", "L[2]"]])
    contrib = np.asarray(imp.group_contribution)[0]
    np.testing.assert_allclose(contrib.sum(), float(imp.variance[0]), rtol=1e-12)
    assert imp.groups[0] == ("L[0]", "k[0]") and len(imp.groups) == 4  # + k[1], k[2] alone
    with pytest.raises(InputError, match="unknown parameter label"):
        importance(jac, COV, groups=[["L[9]"]])


# -- linear propagation against sampling ------------------------------------------------------


def test_linear_propagation_equals_sampled_statistics_on_a_problem_linear_in_theta():
    """Harmonic network with rest lengths as θ: x*(θ) is exactly linear, so the sampled
    covariance of re-solved positions equals J S Jᵀ for the sample covariance S of θ (to
    round-off), and J Σ Jᵀ within sampling error."""
    params = {"L": jnp.array([1.0, 1.02, 0.98])}
    u0 = jnp.zeros_like(jnp.asarray(REF))
    modes = rigid_body_modes(jnp.asarray(REF))
    result = sensitiv.jacobian(F_LINEAR, u0, params, null_space=modes)
    assert bool(result.info.trustworthy)
    solve = make_solver(linear_energy, u0, steps=2, modes=modes)
    sigma = ParameterCovariance.from_correlation({"L": jnp.array([0.01, 0.02, 0.015])},
                                                 [[1, 0.5, -0.2], [0.5, 1, 0.1], [-0.2, 0.1, 1]])
    rng = np.random.default_rng(11)
    m = 4000
    theta = rng.multivariate_normal(np.asarray(params["L"]), sigma.matrix, size=m)
    x = jax.vmap(lambda t: solve({"L": t}))(jnp.asarray(theta)) - solve(params)
    sampled = ParameterCovariance.from_samples({"L": jnp.asarray(theta)})
    fc = per_atom_covariance(result.jacobian, sampled, units="angstrom")
    xc = np.asarray(x) - np.asarray(x).mean(axis=0)
    sample_cov = np.einsum("mai,maj->aij", xc, xc) / (m - 1)
    np.testing.assert_allclose(fc.covariance, sample_cov, rtol=1e-9, atol=1e-14)
    # with the true Σ: within sampling error (relative s.e. of a variance: sqrt(2/(m−1)))
    true = per_atom_covariance(result.jacobian, sigma)
    var_true = np.diagonal(np.asarray(true.covariance), axis1=1, axis2=2)
    var_sampled = np.diagonal(sample_cov, axis1=1, axis2=2)
    big = var_true > 1e-3 * var_true.max()
    assert np.max(np.abs(var_sampled[big] / var_true[big] - 1)) < 5 * np.sqrt(2 / (m - 1))
    assert fc.units == "angstrom" and fc.covariance.shape == (N_ATOMS, 2, 2)
    # exactly linear: the second order vanishes and the linear prediction holds everywhere
    dd = directional_derivatives(F_LINEAR, u0, params, jacobian=result.jacobian, null_space=modes)
    assert float(jnp.max(jnp.abs(dd.second))) < 1e-12
    vr = validity_range(dd.first, dd.second, third_bound=dd.third_bound)
    assert np.all(np.isinf(vr.estimate)) and np.all(vr.resolved)


def test_per_atom_blocks_are_the_diagonal_of_the_dense_covariance(spring):
    jac = spring["J"]
    fc = per_atom_covariance(jac, COV)
    flat = np.concatenate([np.asarray(jac["L"]), np.asarray(jac["k"])], axis=-1).reshape(-1, 6)
    dense = flat @ COV.matrix @ flat.T
    for i in range(N_ATOMS):
        np.testing.assert_allclose(fc.covariance[i], dense[2 * i:2 * i + 2, 2 * i:2 * i + 2], atol=1e-16)
    np.testing.assert_allclose(fc.std.ravel() ** 2, np.diag(dense), rtol=1e-12, atol=1e-18)


def test_linear_propagation_converges_as_sigma_goes_to_zero(spring):
    """Nonlinear network, common random numbers: the sampled covariance of re-solved positions
    minus J S Jᵀ (S: the samples' own covariance) vanishes like σ, and the sampled mean shift
    minus J·mean(δθ) approaches the second-order mean shift ½ tr(H S)."""
    rng = np.random.default_rng(5)
    z = rng.standard_normal((400, 6))
    chol = np.linalg.cholesky(COV.matrix)
    solve = jax.jit(jax.vmap(lambda t: spring["solve"](unflat(t))))
    theta_hat = np.asarray(flat_params(PARAMS))
    errors, mean_errors = [], []
    for scale in (1.0, 0.1, 0.01):
        delta = scale * z @ chol.T
        x = np.asarray(solve(jnp.asarray(theta_hat + delta))) - np.asarray(spring["x"])
        samples = ParameterCovariance.from_samples({"L": delta[:, :3], "k": delta[:, 3:]})
        fc = per_atom_covariance(spring["J"], samples)
        xc = x - x.mean(axis=0)
        sampled = np.einsum("mai,maj->aij", xc, xc) / (len(z) - 1)
        errors.append(np.max(np.abs(sampled - fc.covariance)) / np.max(np.abs(fc.covariance)))
        # the second-order mean shift ½ tr(H M) with M the samples' second moment about θ̂
        moment = ParameterCovariance.from_matrix(delta.T @ delta / len(z), PARAMS)
        res = propagate(F_SPRING, spring["x"], PARAMS, covariance=moment,
                        jacobian=sensitiv.JacobianResult(spring["J"], None),
                        null_space=spring["modes"])
        jac_flat = np.concatenate([np.asarray(spring["J"]["L"]), np.asarray(spring["J"]["k"])], axis=-1)
        mean_err = x.mean(axis=0) - jac_flat @ delta.mean(axis=0) - np.asarray(res.mean_shift["x"])
        mean_errors.append(np.max(np.abs(mean_err)) / np.max(np.abs(res.mean_shift["x"])))
    assert errors[-1] < 1e-3
    assert errors[1] < 0.2 * errors[0] and errors[2] < 0.2 * errors[1]  # ~ linear in σ
    assert mean_errors[-1] < 0.05 and mean_errors[1] < 0.2 * mean_errors[0]


# -- higher order -----------------------------------------------------------------------------


def test_second_and_third_order_match_a_closed_form():
    """F = (A + λI)x − s b: x*(λ, s) = s (A + λI)⁻¹ b; the explicit formula differentiated by JAX."""
    rng = np.random.default_rng(0)
    a = rng.normal(size=(5, 5))
    a = jnp.asarray(a @ a.T + np.eye(5))
    b = jnp.asarray(rng.normal(size=5))

    def fun(x, p):
        return (a + p["lam"] * jnp.eye(5)) @ x - p["s"] * b

    def closed(theta):
        return theta[1] * jnp.linalg.solve(a + theta[0] * jnp.eye(5), b)

    params = {"lam": jnp.asarray(0.7), "s": jnp.asarray(1.3)}
    theta = jnp.array([0.7, 1.3])
    x = closed(theta)
    jac = sensitiv.jacobian(fun, x, params).jacobian
    dirs = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, -0.8]])
    dd = directional_derivatives(fun, x, params, jacobian=jac, directions=dirs, third_order="solve",
                                 observables={"norm2": lambda x, p: jnp.sum(x**2)})
    for i, v in enumerate(dirs):
        line = lambda t: closed(theta + t * jnp.asarray(v))  # noqa: E731
        d2 = jax.jacfwd(jax.jacfwd(line))(0.0)
        d3 = jax.jacfwd(jax.jacfwd(jax.jacfwd(line)))(0.0)
        np.testing.assert_allclose(dd.second[:, i], d2, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(dd.third[:, i], d3, rtol=1e-11, atol=1e-13)
        g = lambda t: jnp.sum(line(t) ** 2)  # noqa: E731
        np.testing.assert_allclose(dd.observables_second["norm2"][i], jax.grad(jax.grad(g))(0.0), rtol=1e-12)
        np.testing.assert_allclose(dd.observables_third["norm2"][i], jax.grad(jax.grad(jax.grad(g)))(0.0),
                                   rtol=1e-11)
    # the bound mode never underestimates ‖a₃‖ (λ_min of a symmetric positive definite K)
    bound = directional_derivatives(fun, x, params, jacobian=jac, directions=dirs)
    assert np.all(np.asarray(bound.third_bound) >= np.asarray(dd.third_bound) * (1 - 1e-12))
    assert bound.third is None


def test_second_order_matches_implicit_jvp_of_jvp():
    """The same second derivative from `custom_root` differentiated twice (jvp of jvp)."""
    rng = np.random.default_rng(1)
    a = rng.normal(size=(4, 4))
    a = jnp.asarray(a @ a.T + 2 * np.eye(4))

    def fun(x, p):
        return a @ x + 0.3 * x**3 - p * jnp.arange(1.0, 5.0)

    def newton(p):
        step = lambda _, x: x - jnp.linalg.solve(a + jnp.diag(0.9 * x**2), fun(x, p))  # noqa: E731
        return jax.lax.fori_loop(0, 40, step, jnp.zeros(4))

    solver = sensitiv.custom_root(fun)(lambda p: newton(jax.lax.stop_gradient(p)))
    p = jnp.asarray(0.8)
    x = newton(p)
    jac = sensitiv.jacobian(fun, x, p).jacobian
    dd = directional_derivatives(fun, x, p, jacobian=jac)
    np.testing.assert_allclose(dd.second[:, 0], jax.jacfwd(jax.jacfwd(solver))(p), rtol=1e-12)


def test_second_order_matches_central_differences_of_first_order(spring):
    """a₂ along each parameter axis and a principal direction = central differences of the
    Jacobian of re-solved networks; the observables' second order likewise."""
    lam, steps = COV.principal_directions()
    dirs = np.concatenate([np.eye(6), steps[:1] / np.linalg.norm(steps[0])])
    obs = {"bond": bond_12, "gyration": gyration}
    dd = directional_derivatives(F_SPRING, spring["x"], PARAMS, jacobian=spring["J"], directions=dirs,
                                 observables=obs, null_space=spring["modes"])
    theta = flat_params(PARAMS)
    h = 1e-4

    def jac_times(t, v):
        p = unflat(theta + t * v)
        x = spring["solve"](p)
        j = sensitiv.jacobian(F_SPRING, x, p, null_space=spring["modes"]).jacobian
        jf = jnp.concatenate([j["L"], j["k"]], axis=-1)
        dg = sensitiv.uncertainty.observable_derivatives(obs, x, p, jacobian=j)
        tot = {name: jnp.concatenate([dg[name]["L"], dg[name]["k"]], axis=-1) @ v for name in obs}
        return jf @ v, tot

    # the principal direction mixes two correlated parameters, and its second derivative is
    # not the sum of the axes' ones: the cross term ∂²x*/∂k₀∂k₁ counts (a JVP of the JVP along v)
    v_p = dirs[6]
    assert np.sum(np.abs(v_p) > 0.1) == 2
    diagonal_only = np.asarray(dd.second)[..., :6] @ (v_p**2)
    assert np.max(np.abs(np.asarray(dd.second)[..., 6] - diagonal_only)) > 1e-3 * np.max(np.abs(diagonal_only))
    for i, v in enumerate(jnp.asarray(dirs)):
        (xp, gp), (xm, gm) = jac_times(h, v), jac_times(-h, v)
        fd = (xp - xm) / (2 * h)
        scale = float(jnp.max(jnp.abs(dd.second[..., i])))
        assert float(jnp.max(jnp.abs(fd - dd.second[..., i]))) < 1e-6 * scale + 1e-10, i
        for name in obs:
            fd_g = (gp[name] - gm[name]) / (2 * h)
            np.testing.assert_allclose(dd.observables_second[name][..., i], fd_g, rtol=1e-6, atol=1e-9)


def measured_onset(solve, x_hat, theta, v, a1, rtol=0.01, t_max=10.0):
    """Smallest |t| (both signs) where ‖x*(θ + t v) − x̂ − t a₁‖ = rtol ‖t a₁‖, by bisection."""

    def excess(t):
        x = solve(unflat(theta + t * v))
        return float(jnp.linalg.norm(x - x_hat - t * a1) / jnp.linalg.norm(t * a1)) - rtol

    onsets = []
    for sign in (1.0, -1.0):
        lo, hi = 1e-6, None
        t = 1e-3
        while t < t_max:
            if excess(sign * t) > 0:
                hi = t
                break
            lo, t = t, t * 1.5
        if hi is None:
            onsets.append(np.inf)
            continue
        for _ in range(40):
            mid = math.sqrt(lo * hi)
            lo, hi = (mid, hi) if excess(sign * mid) < 0 else (lo, mid)
        onsets.append(hi)
    return min(onsets)


@pytest.mark.parametrize("third_order", ["bound", "solve"])
def test_validity_range_brackets_the_measured_onset_of_a_one_percent_error(spring, third_order):
    dd = directional_derivatives(F_SPRING, spring["x"], PARAMS, jacobian=spring["J"],
                                 null_space=spring["modes"], third_order=third_order)
    a1 = np.moveaxis(np.asarray(dd.first), -1, 0)
    a2 = np.asarray(dd.second)
    vr = validity_range(dd.first, dd.second, dd.third, third_bound=dd.third_bound, rtol=0.01)
    theta = flat_params(PARAMS)
    for j in range(6):
        onset = measured_onset(spring["solve"], spring["x"], theta, jnp.eye(6)[j], a1[j])
        assert vr.lower[j] <= onset * (1 + 1e-6), (j, vr.lower[j], onset)
        assert onset <= vr.upper[j] * (1 + 1e-6), (j, onset, vr.upper[j])
        assert vr.resolved[j]
        # the second-order estimate itself is within 5 % of the measured onset
        assert abs(vr.estimate[j] / onset - 1) < 0.05, (j, vr.estimate[j], onset)
    # the quadratic estimate has the closed form 2 rtol ‖a₁‖ / ‖a₂‖
    if third_order == "bound":
        est = 2 * 0.01 * np.linalg.norm(a1.reshape(6, -1), axis=1) / np.linalg.norm(a2.reshape(-1, 6), axis=0)
        np.testing.assert_allclose(vr.estimate, est, rtol=1e-10)


def test_validity_range_componentwise_and_absolute_tolerance():
    first = np.array([[1.0, 0.0], [0.0, 0.0]])
    second = np.array([[4.0, 2.0], [0.0, 0.0]])
    vr = validity_range(first, second, reduce="component", rtol=0.01)
    np.testing.assert_allclose(vr.estimate[0, 0], 2 * 0.01 * 1 / 4)
    assert vr.estimate[0, 1] == 0.0  # no first-order change, but a second-order one
    assert np.isinf(vr.estimate[1, 0]) and np.isinf(vr.estimate[1, 1])  # zero at every order
    vr_abs = validity_range(first, second, reduce="component", rtol=0.0, atol=1e-4)
    np.testing.assert_allclose(vr_abs.estimate[0, 1], np.sqrt(2 * 1e-4 / 2))
    with pytest.raises(InputError, match="rtol, atol"):
        validity_range(first, second, rtol=0.0)


# -- everything at once -----------------------------------------------------------------------


def test_propagate_assembles_the_pieces(spring):
    obs = {"bond": bond_12, "gyration": gyration}
    res = propagate(F_SPRING, spring["x"], PARAMS, covariance=COV, observables=obs,
                    units={"x": "nm", "bond": "nm", "gyration": "nm2"}, null_space=spring["modes"])
    assert bool(res.info.trustworthy)
    np.testing.assert_allclose(res.jacobian["L"], spring["J"]["L"], atol=1e-12)
    # observables' total derivatives agree with the engine's total_derivative
    ref = sensitiv.total_derivative(gyration, F_SPRING, spring["x"], PARAMS,
                                             null_space=spring["modes"]).jacobian
    np.testing.assert_allclose(res.derivatives["gyration"]["k"], ref["k"], rtol=1e-9, atol=1e-13)
    oc = observable_covariance({"bond": res.derivatives["bond"], "gyration": res.derivatives["gyration"]}, COV)
    np.testing.assert_allclose(res.observables.covariance, oc.covariance)
    assert res.observables.labels == ("bond", "gyration[0]", "gyration[1]", "gyration[2]")
    assert res.positions.covariance.shape == (N_ATOMS, 2, 2) and res.positions.units == "nm"
    assert set(res.importance) == {"x", "bond", "gyration"}
    assert res.validity["x"].estimate.shape == (6,)
    assert res.validity["gyration"].estimate.shape == (3, 6)
    k = res.principal_variances.shape[0]
    assert res.validity_principal["bond"].estimate.shape == (k,)
    # principal-direction ranges are in standard deviations (the directions are one σ long)
    dd = res.second_order
    a1 = np.asarray(dd.first)[..., 6:].reshape(-1, k)
    a2 = np.asarray(dd.second)[..., 6:].reshape(-1, k)
    np.testing.assert_allclose(res.validity_principal["x"].estimate,
                               0.02 * np.linalg.norm(a1, axis=0) / np.linalg.norm(a2, axis=0), rtol=1e-10)
    assert res.mean_shift["x"].shape == spring["x"].shape
    with pytest.raises(InputError, match="covariance: describes 2 parameter entries"):
        propagate(F_SPRING, spring["x"], PARAMS, covariance=ParameterCovariance.from_std({"a": 1.0, "b": 1.0}))


# -- directions the root does not depend on ---------------------------------------------------


def lj_cluster_energy(x, params):
    """Lennard-Jones, no cutoff: x* ∝ σ and independent of ε, the energy ∝ ε and independent of σ."""
    dx = x[:, None] - x[None]
    r2 = jnp.sum(dx**2, -1) + jnp.eye(x.shape[0])
    s6 = (params["sigma"] ** 2 / r2) ** 3
    return 0.5 * jnp.sum(4 * params["epsilon"] * (s6**2 - s6) * (1 - jnp.eye(x.shape[0])))


def lj_size2(x, params):
    """Σ|x − x̄|²: ∝ σ² along the σ axis (a finite range: exactly 2 rtol σ), ε-independent."""
    return jnp.sum((x - x.mean(axis=0)) ** 2)


@pytest.mark.parametrize("loose", [0.0, 1e-7], ids=["polished", "loose-root"])
def test_validity_is_infinite_where_the_output_does_not_depend_on_the_parameter(loose):
    """A Lennard-Jones cluster: x*(ε, σ) = σ x*(1, 1), E* ∝ ε. Along ε nothing in x* moves and
    along σ x* is exactly linear: both ranges are infinite (not the ratio of two round-off
    numbers, 0.01 before), also at a root relaxed only to 1e-7. The energy is linear in ε and
    constant in σ (infinite); the size Σ|x − x̄|² ∝ σ² has the closed-form range 2 rtol σ."""
    params = {"epsilon": jnp.asarray(0.7), "sigma": jnp.asarray(1.1)}
    tbp = np.array([[0, 0, 0.9], [0, 0, -0.9], [1, 0, 0], [-0.5, 0.87, 0], [-0.5, -0.87, 0]]) * 0.95
    x0 = jnp.asarray(tbp - tbp.mean(axis=0))
    x_hat = make_solver(lj_cluster_energy, x0, modes=rigid_body_modes(x0))(params)
    x_hat = x_hat - x_hat.mean(axis=0)
    if loose:
        x_hat = x_hat + loose * jnp.asarray(np.random.default_rng(3).normal(size=x_hat.shape))
    cov = ParameterCovariance.from_std({"epsilon": 0.02 * 0.7, "sigma": 0.01 * 1.1})
    res = propagate(jax.grad(lj_cluster_energy), x_hat, params, covariance=cov,
                    observables={"energy": lj_cluster_energy, "size2": lj_size2},
                    null_space=rigid_body_modes(x_hat))
    # the first order itself is right: J_σ = x̂/σ, J_ε = 0
    np.testing.assert_allclose(res.jacobian["sigma"], x_hat / 1.1, atol=1e-6 if loose else 1e-12)
    for name in ("x", "energy"):
        for vr in (res.validity[name], res.validity_principal[name]):
            assert np.all(np.isinf(vr.estimate)) and np.all(np.isinf(vr.lower)), (name, vr)
            assert np.all(vr.resolved), (name, vr)
    size2 = res.validity["size2"]
    assert np.isinf(size2.estimate[0]) and size2.resolved[0]  # ε
    np.testing.assert_allclose(size2.estimate[1], 2 * 0.01 * 1.1, rtol=1e-6)  # σ: g = c σ²
    assert size2.lower[1] <= size2.estimate[1] <= size2.upper[1]
    # without the resolution the same derivatives give the ratio of round-off numbers
    dd = res.second_order
    raw = validity_range(np.asarray(dd.first)[..., :1].reshape(-1, 1), np.asarray(dd.second)[..., :1].reshape(-1, 1),
                         third_bound=dd.third_bound[:1])
    assert np.isfinite(raw.estimate[0])


@pytest.mark.slow
def test_higher_orders_reuse_the_strategy_krylov_agrees_with_dense(spring):
    """The higher orders are solved inside the Jacobian's program with its solver: the
    matrix-free strategy (MINRES with its preconditioner) gives the dense answer."""
    lam, steps = COV.principal_directions()
    kw = dict(directions=np.concatenate([np.eye(6), steps]), third_order="solve", null_space=spring["modes"])
    dense = directional_derivatives(F_SPRING, spring["x"], PARAMS, method="dense", **kw)
    krylov = directional_derivatives(F_SPRING, spring["x"], PARAMS, method="krylov",
                                     krylov=sensitiv.KrylovOptions(tol=1e-12), **kw)
    assert dense.info.strategy == "dense" and krylov.info.strategy == "krylov"
    for a, b in ((dense.second, krylov.second), (dense.third, krylov.third)):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), atol=1e-7 * float(np.max(np.abs(a))))
    np.testing.assert_allclose(dense.jacobian.jacobian["L"], spring["J"]["L"], atol=1e-12)
