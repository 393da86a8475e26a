"""The seed example: the Jacobian of ridge regression's solution in its regularization.

Run:  python examples/quickstart.py
"""

import jax
import jax.numpy as jnp

jax.config.update("jax_enable_x64", True)

import sensitiv  # noqa: E402

X = jax.random.normal(jax.random.PRNGKey(0), (50, 5))
y = jax.random.normal(jax.random.PRNGKey(1), (50,))


def f(x, theta):
    return 0.5 * jnp.sum((X @ x - y) ** 2) + 0.5 * theta * jnp.sum(x**2)


@sensitiv.custom_root(jax.grad(f))
def ridge_solver(theta):
    return jnp.linalg.solve(X.T @ X + theta * jnp.eye(5), X.T @ y)


if __name__ == "__main__":
    theta = 10.0
    jacobian = jax.jacobian(ridge_solver)(theta)
    a = X.T @ X + theta * jnp.eye(5)
    closed_form = -jnp.linalg.solve(a, ridge_solver(theta))
    error = jnp.linalg.norm(jacobian - closed_form) / jnp.linalg.norm(closed_form)
    print("dx*/dtheta (implicit):   ", jacobian)
    print("dx*/dtheta (closed form):", closed_form)
    print(f"relative error: {float(error):.2e}")
