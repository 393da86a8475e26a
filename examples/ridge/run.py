"""Ridge regression: the implicit Jacobian against its closed form, and a hyperparameter
search on scikit-learn's diabetes data by gradient descent on log λ.

Run:  python examples/ridge/run.py [--small] [--out DIR]

Part 1 is the seed example verbatim: `ridge_solver(theta)` decorated with
`sensitiv.custom_root(jax.grad(f))`, no initial guess. Its Jacobian (forward and reverse
mode) and its second derivative are compared with the closed forms
    dx*/dθ = −A⁻¹x*,   d²x*/dθ² = 2A⁻²x*,   A = XᵀX + θI.

Part 2 tunes λ = exp(t) on diabetes (degree-2 polynomial features, so that regularization
matters): the outer loss is the validation mean squared error of x*(λ) fitted on the
training half, and its gradient in t goes through the implicit Jacobian of the inner ridge
solve. The hypergradient is checked against the closed form and against central finite
differences of re-solving.
"""

from __future__ import annotations

import argparse
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)

import sensitiv  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent

# ----------------------------------------------------------------------------------------
# Part 1: the seed example, verbatim.

X = jax.random.normal(jax.random.PRNGKey(0), (50, 5))
y = jax.random.normal(jax.random.PRNGKey(1), (50,))


def f(x, theta):
    return 0.5 * jnp.sum((X @ x - y) ** 2) + 0.5 * theta * jnp.sum(x**2)


@sensitiv.custom_root(jax.grad(f))
def ridge_solver(theta):
    return jnp.linalg.solve(X.T @ X + theta * jnp.eye(X.shape[1]), X.T @ y)


@jax.jit
def _seed_derivatives(theta):
    return (
        jax.jacfwd(ridge_solver)(theta),
        jax.jacrev(ridge_solver)(theta),
        jax.jacfwd(jax.jacrev(ridge_solver))(theta),
    )


def seed_check(theta: float = 10.0) -> dict:
    """Implicit derivatives of the seed's `ridge_solver` against their closed forms.

    **Returns:** a dict of relative errors (`jacfwd`, `jacrev`, `second`) and the arrays.
    """
    a = X.T @ X + theta * jnp.eye(X.shape[1])
    x_star = ridge_solver(theta)
    first = -jnp.linalg.solve(a, x_star)
    second = 2.0 * jnp.linalg.solve(a, jnp.linalg.solve(a, x_star))
    forward, reverse, second_implicit = _seed_derivatives(theta)
    rel = lambda u, v: float(jnp.linalg.norm(u - v) / jnp.linalg.norm(v))
    return {
        "theta": theta,
        "jacfwd_rel_error": rel(forward, first),
        "jacrev_rel_error": rel(reverse, first),
        "second_rel_error": rel(second_implicit, second),
        "jacobian": np.asarray(forward),
        "closed_form": np.asarray(first),
    }


# ----------------------------------------------------------------------------------------
# Part 2: hyperparameter search on diabetes.


def load_data(n_train: int = 221, seed: int = 0):
    """Diabetes (442 patients), degree-2 polynomial features (65), standardized on the
    training part; targets centred on the training mean.

    **Returns:** `(X_train, y_train, X_val, y_val)` as float64 JAX arrays.
    """
    from sklearn.datasets import load_diabetes
    from sklearn.preprocessing import PolynomialFeatures

    features, target = load_diabetes(return_X_y=True)
    order = np.random.default_rng(seed).permutation(len(target))
    features = PolynomialFeatures(2, include_bias=False).fit_transform(features[order])
    target = target[order]
    x_train, x_val = features[:n_train], features[n_train:]
    mean, std = x_train.mean(0), x_train.std(0)
    x_train, x_val = (x_train - mean) / std, (x_val - mean) / std
    offset = target[:n_train].mean()
    return tuple(jnp.asarray(a) for a in (x_train, target[:n_train] - offset, x_val, target[n_train:] - offset))


def ridge_objective(w, theta, x_train, y_train):
    return 0.5 * jnp.sum((x_train @ w - y_train) ** 2) + 0.5 * theta * jnp.sum(w**2)


@sensitiv.custom_root(jax.grad(ridge_objective))
def ridge_fit(theta, x_train, y_train):
    """The seed's pattern with the training data as arguments (so one compiled function
    serves every data set); only `theta` is differentiated below."""
    return jnp.linalg.solve(x_train.T @ x_train + theta * jnp.eye(x_train.shape[1]), x_train.T @ y_train)


@jax.jit
def validation_loss(log_lam, data):
    """Validation loss as a function of `t = log λ`: mean squared error relative to the
    validation mean square (1.0 means "no better than predicting the training mean")."""
    x_train, y_train, x_val, y_val = data
    w = ridge_fit(jnp.exp(log_lam), x_train, y_train)
    return jnp.mean((x_val @ w - y_val) ** 2) / jnp.mean(y_val**2)


validation_value_and_grad = jax.jit(jax.value_and_grad(validation_loss))


def closed_form_hypergradient(data, log_lam):
    """d(validation loss)/d(log λ) by hand: −λ · 2/(n s) (X_v w − y_v)ᵀ X_v A⁻¹ w."""
    x_train, y_train, x_val, y_val = data
    lam = jnp.exp(log_lam)
    a = x_train.T @ x_train + lam * jnp.eye(x_train.shape[1])
    w = jnp.linalg.solve(a, x_train.T @ y_train)
    residual = x_val @ w - y_val
    scale = jnp.mean(y_val**2)
    return -lam * 2.0 / (len(y_val) * scale) * residual @ (x_val @ jnp.linalg.solve(a, w))


def hyperparameter_search(data, log_lam0: float = 0.0, learning_rate: float = 30.0, steps: int = 20):
    """Gradient descent on `t = log λ` with the implicit hypergradient.

    **Returns:** dict with the trajectories `log_lam`, `loss`, `grad` (length `steps + 1`).
    """
    t = jnp.asarray(log_lam0)
    history = {"log_lam": [], "loss": [], "grad": []}
    for _ in range(steps + 1):
        loss, g = validation_value_and_grad(t, data)
        history["log_lam"].append(float(t))
        history["loss"].append(float(loss))
        history["grad"].append(float(g))
        t = t - learning_rate * g
    return {k: np.asarray(v) for k, v in history.items()}


_loss_on_grid = jax.jit(jax.vmap(validation_loss, in_axes=(0, None)))


def loss_curve(data, log_lams):
    """The validation loss on a grid of log λ (for the figure and the sanity check)."""
    return np.asarray(_loss_on_grid(jnp.asarray(log_lams), data))


def plot(seed, history, grid, curve, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
    k = np.arange(len(seed["jacobian"]))
    axes[0].bar(k - 0.2, seed["closed_form"], 0.4, label="closed form −A⁻¹x*")
    axes[0].bar(k + 0.2, seed["jacobian"], 0.4, label="implicit (jacfwd)")
    axes[0].set(xlabel="coefficient i", ylabel="dx*ᵢ/dθ", title=f"seed example, θ = {seed['theta']:g}")
    axes[0].legend(fontsize=7)
    axes[1].plot(history["loss"], "o-", ms=3)
    axes[1].set(xlabel="outer iteration", ylabel="relative validation MSE", title="diabetes: outer loop")
    axes[2].plot(np.exp(grid), curve, "-", color="0.6", label="grid")
    axes[2].plot(np.exp(history["log_lam"]), history["loss"], "o-", ms=3, label="gradient descent on log λ")
    axes[2].set(xscale="log", xlabel="λ", ylabel="relative validation MSE")
    axes[2].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="fewer outer steps (for CI)")
    parser.add_argument("--out", type=pathlib.Path, default=HERE / "output", help="output folder")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    seed = seed_check()
    print("seed example, θ = 10: relative error of the implicit Jacobian vs closed form")
    print(f"  jacfwd {seed['jacfwd_rel_error']:.1e}  jacrev {seed['jacrev_rel_error']:.1e}"
          f"  second derivative {seed['second_rel_error']:.1e}")

    data = load_data()
    steps = 8 if args.small else 20
    history = hyperparameter_search(data, steps=steps)
    grid = np.linspace(-4.0, 9.0, 14 if args.small else 131)
    curve = loss_curve(data, grid)
    best = grid[np.argmin(curve)]
    print(f"diabetes: λ {np.exp(history['log_lam'][0]):.3g} → {np.exp(history['log_lam'][-1]):.4g}"
          f" (grid optimum ≈ {np.exp(best):.4g}); validation MSE/var"
          f" {history['loss'][0]:.4f} → {history['loss'][-1]:.4f}")

    summary = {
        "seed": {k: seed[k] for k in ("theta", "jacfwd_rel_error", "jacrev_rel_error", "second_rel_error")},
        "search": {k: v.tolist() for k, v in history.items()},
        "grid_best_lambda": float(np.exp(best)),
    }
    (args.out / "ridge.json").write_text(json.dumps(summary, indent=1))
    plot(seed, history, grid, curve, args.out / "ridge.png")
    print(f"wrote {args.out / 'ridge.png'} and {args.out / 'ridge.json'}")
    return summary


if __name__ == "__main__":
    main()
