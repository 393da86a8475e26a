"""Dataset distillation on scikit-learn's 8 × 8 digits: one learned image per class.

Run:  python examples/dataset_distillation/run.py [--small] [--out DIR]

Inner problem (Blondel et al. 2021, §4.3): ℓ2-regularized multiclass logistic regression
trained on the ten prototypes x (one per class),

    W*(x) = argmin_W  CE(x W + b, 0..9) + l2reg ‖W‖²,

solved by accelerated gradient descent (`sensitiv.solvers.ProximalGradient` without a
prox). Outer problem: the prototypes x minimize the cross-entropy of W*(x) on the real
training set; its gradient in x goes through the implicit Jacobian ∂W*/∂x (one conjugate-
gradient solve with the Hessian per outer step), or, for comparison, through the unrolled
iterations of the same solver (`implicit_diff=False`). The script reports the test accuracy
of the classifier trained on the ten distilled images only, and the time of one outer
gradient with each mode.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)

import sensitiv  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
N_CLASSES = 10
L2REG = 1e-2
INNER_TOL = 1e-9
INNER_MAXITER = 1000


def load_data(seed: int = 0):
    """Digits (1,797 images, 8 × 8, grey levels scaled to [0, 1]), split in half
    (stratified, fixed seed) into a training set for the outer loss and a test set.

    **Returns:** `(x_train, y_train, x_test, y_test)`.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    images, labels = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        images / 16.0, labels, test_size=0.5, stratify=labels, random_state=seed
    )
    return jnp.asarray(x_train), jnp.asarray(y_train), jnp.asarray(x_test), jnp.asarray(y_test)


def cross_entropy(params, images, labels):
    weights, bias = params
    logits = images @ weights + bias
    return jnp.mean(jax.nn.logsumexp(logits, axis=1) - jnp.take_along_axis(logits, labels[:, None], 1)[:, 0])


def inner_objective(params, prototypes, l2reg):
    """Logistic regression on the ten prototypes, labelled 0..9, with an ℓ2 penalty on W."""
    return cross_entropy(params, prototypes, jnp.arange(N_CLASSES)) + l2reg * jnp.sum(params[0] ** 2)


def inner_solver(implicit_diff: bool = True, maxiter: int = INNER_MAXITER, tol: float = INNER_TOL):
    # Step 1/L: the Hessian of the mean cross-entropy is at most ½·max‖(x_i, 1)‖² ≤ ½·65
    # for images in [0, 1]; prototypes can leave [0, 1] during the outer loop, so the step
    # is chosen by backtracking instead of fixed.
    return sensitiv.solvers.ProximalGradient(
        inner_objective, stepsize=None, accelerated=True, maxiter=maxiter, tol=tol,
        implicit_diff=implicit_diff, solve=sensitiv.LinearSolver("cg", tol=1e-10),
    )


def init_params(n_features: int = 64):
    return jnp.zeros((n_features, N_CLASSES)), jnp.zeros(N_CLASSES)


def train_on_prototypes(prototypes, l2reg=L2REG, implicit_diff=True, maxiter=INNER_MAXITER, tol=INNER_TOL):
    """W*(x): the classifier trained on the prototypes, with its solver state."""
    solver = inner_solver(implicit_diff, maxiter, tol)
    return solver.run(init_params(prototypes.shape[1]), None, prototypes, jnp.asarray(l2reg))


def outer_loss(prototypes, x_train, y_train, l2reg=L2REG, implicit_diff=True, maxiter=INNER_MAXITER, tol=INNER_TOL):
    """Cross-entropy on the real training set of the classifier trained on the prototypes."""
    params, _ = train_on_prototypes(prototypes, l2reg, implicit_diff, maxiter, tol)
    return cross_entropy(params, x_train, y_train)


outer_value_and_grad = jax.jit(jax.value_and_grad(outer_loss), static_argnames=("implicit_diff", "maxiter", "tol"))


@jax.jit
def accuracy(prototypes, images, labels, l2reg=L2REG):
    (weights, bias), _ = train_on_prototypes(prototypes, l2reg)
    return jnp.mean(jnp.argmax(images @ weights + bias, axis=1) == labels)


def class_means(images, labels):
    return jnp.stack([jnp.mean(images[labels == c], axis=0) for c in range(N_CLASSES)])


def distill(x_train, y_train, steps: int, l2reg=L2REG, learning_rate: float = 0.05, seed: int = 0):
    """Learn the prototypes by Adam on the outer loss, from random grey images.

    **Returns:** `(prototypes, losses)`.
    """
    prototypes = 0.5 + 0.1 * jax.random.normal(jax.random.PRNGKey(seed), (N_CLASSES, x_train.shape[1]))
    first, second = jnp.zeros_like(prototypes), jnp.zeros_like(prototypes)
    beta1, beta2 = 0.9, 0.999
    losses = []
    for k in range(1, steps + 1):
        loss, g = outer_value_and_grad(prototypes, x_train, y_train, l2reg)
        losses.append(float(loss))
        first = beta1 * first + (1 - beta1) * g
        second = beta2 * second + (1 - beta2) * g**2
        step = (first / (1 - beta1**k)) / (jnp.sqrt(second / (1 - beta2**k)) + 1e-8)
        prototypes = prototypes - learning_rate * step
    losses.append(float(outer_value_and_grad(prototypes, x_train, y_train, l2reg)[0]))
    return prototypes, np.asarray(losses)


def time_outer_gradient(prototypes, x_train, y_train, repeats: int = 5) -> dict:
    """Median wall time of one outer gradient (compiled beforehand), three ways:

    - `implicit`: the solver's `lax.while_loop` stops at `tol`, then one CG solve;
    - `unrolled_same_maxiter`: the same solver with `implicit_diff=False`: reverse-mode
      autodiff through a `lax.scan` of `maxiter` steps (frozen once converged) — what
      unrolling a solver with a fixed iteration budget costs;
    - `unrolled_exact_iterations`: unrolled over exactly the iterations the implicit run
      took, so that both do the same forward work and the ratio isolates the backward pass.
    """
    _, state = train_on_prototypes(prototypes)
    needed = int(state.iterations)
    modes = {
        "implicit": dict(implicit_diff=True),
        "unrolled_same_maxiter": dict(implicit_diff=False),
        "unrolled_exact_iterations": dict(implicit_diff=False, maxiter=needed),
    }
    times = {"inner_iterations": needed, "inner_maxiter": INNER_MAXITER}
    for mode, options in modes.items():
        call = lambda: outer_value_and_grad(prototypes, x_train, y_train, **options)
        jax.block_until_ready(call())
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            jax.block_until_ready(call())
            samples.append(time.perf_counter() - start)
        times[mode] = float(np.median(samples))
    times["ratio_same_maxiter"] = times["unrolled_same_maxiter"] / times["implicit"]
    times["ratio_exact_iterations"] = times["unrolled_exact_iterations"] / times["implicit"]
    return times


def plot(prototypes, means, losses, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(11, 2.8), layout="constrained")
    left, right = fig.subfigures(1, 2, width_ratios=[3.2, 1])
    axes = left.subplots(2, N_CLASSES)
    for row, (images, name) in enumerate(((means, "class mean"), (prototypes, "distilled"))):
        for c in range(N_CLASSES):
            ax = axes[row, c]
            ax.imshow(np.asarray(images[c]).reshape(8, 8), cmap="gray_r")
            ax.set_xticks([]), ax.set_yticks([])
            if row == 0:
                ax.set_title(str(c), fontsize=9)
        axes[row, 0].set_ylabel(name, fontsize=9)
    ax = right.subplots()
    ax.plot(losses)
    ax.set(xlabel="outer step (Adam)", ylabel="train cross-entropy", yscale="log")
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="40 outer steps instead of 400 (for CI)")
    parser.add_argument("--out", type=pathlib.Path, default=HERE / "output", help="output folder")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    x_train, y_train, x_test, y_test = load_data()
    steps = 40 if args.small else 400
    prototypes, losses = distill(x_train, y_train, steps)
    means = class_means(x_train, y_train)
    _, state = train_on_prototypes(prototypes)
    result = {
        "outer_steps": steps,
        "l2reg": L2REG,
        "inner_tol": INNER_TOL,
        "train_loss": [losses[0], losses[-1]],
        "test_accuracy_distilled": float(accuracy(prototypes, x_test, y_test)),
        "test_accuracy_class_means": float(accuracy(means, x_test, y_test)),
        "inner_iterations_at_end": int(state.iterations),
        "inner_converged_at_end": bool(state.converged),
        "timing_seconds": time_outer_gradient(prototypes, x_train, y_train, repeats=3 if args.small else 7),
    }
    print(f"digits, one image per class ({steps} outer steps): test accuracy"
          f" {result['test_accuracy_distilled']:.3f} (class means: {result['test_accuracy_class_means']:.3f})")
    t = result["timing_seconds"]
    print(f"one outer gradient ({t['inner_iterations']} inner iterations): implicit {t['implicit'] * 1e3:.1f} ms;"
          f" unrolled over maxiter = {t['inner_maxiter']}: {t['unrolled_same_maxiter'] * 1e3:.1f} ms"
          f" (ratio {t['ratio_same_maxiter']:.2f}); unrolled over the {t['inner_iterations']} iterations needed:"
          f" {t['unrolled_exact_iterations'] * 1e3:.1f} ms (ratio {t['ratio_exact_iterations']:.2f})")
    (args.out / "distillation.json").write_text(json.dumps(result, indent=1))
    plot(prototypes, means, losses, args.out / "distilled.png")
    print(f"wrote {args.out / 'distilled.png'} and {args.out / 'distillation.json'}")
    return result


if __name__ == "__main__":
    main()
