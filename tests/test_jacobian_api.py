"""The engine's face: `sensitiv.jacobian` a plain function, `KrylovOptions`, the plan as the
compile-cache key, and the paths of earlier releases (deprecated, still working)."""

from __future__ import annotations

import ast
import importlib
import types
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sensitiv
from sensitiv.engine import KrylovOptions
from sensitiv.errors import InputError

jax.config.update("jax_enable_x64", True)

ROOT = Path(__file__).resolve().parent.parent


def _quadratic():
    a = jnp.array([[4.0, 1.0, 0.0], [1.0, 3.0, 0.5], [0.0, 0.5, 2.0]])
    F = lambda x, theta: a @ x - theta
    theta = jnp.array([1.0, -2.0, 0.5])
    return F, jnp.linalg.solve(a, theta), theta, np.linalg.inv(np.asarray(a))


def test_jacobian_is_a_plain_function_on_the_face():
    assert isinstance(sensitiv.jacobian, types.FunctionType)
    assert sensitiv.jacobian is sensitiv.engine.jacobian
    for name in sensitiv.engine.__all__:
        assert getattr(sensitiv, name) is getattr(sensitiv.engine, name)
    # the deprecation shim forwards exactly the engine's names
    assert sensitiv._moved.ENGINE_NAMES == tuple(sensitiv.engine.__all__)
    # no module anywhere is callable by a swapped class
    assert type(sensitiv.engine) is types.ModuleType


def test_old_module_path_warns_and_forwards():
    with pytest.warns(DeprecationWarning, match="sensitiv.Sparsity"):
        from sensitiv.jacobian import Sparsity
    assert Sparsity is sensitiv.Sparsity
    with pytest.warns(DeprecationWarning, match="sensitiv.total_derivative"):
        from sensitiv.jacobian import total_derivative
    assert total_derivative is sensitiv.total_derivative
    # importing the old path leaves the face's attribute the function
    importlib.import_module("sensitiv.jacobian")
    assert isinstance(sensitiv.jacobian, types.FunctionType)
    with pytest.raises(ImportError):
        from sensitiv.jacobian import no_such_name  # noqa: F401


def test_old_attribute_paths_warn_and_forward():
    F, x, theta, a_inv = _quadratic()
    with pytest.warns(DeprecationWarning, match="sensitiv.translation_modes"):
        modes = sensitiv.jacobian.translation_modes(2, 3)
    np.testing.assert_allclose(modes, sensitiv.translation_modes(2, 3))
    with pytest.warns(DeprecationWarning, match="sensitiv.total_derivative"):
        C = sensitiv.jacobian.total_derivative(lambda x, t: x, F, x, theta).jacobian
    np.testing.assert_allclose(C, a_inv, atol=1e-12)
    with pytest.warns(DeprecationWarning, match="sensitiv.Sparsity"):
        sp = sensitiv.jacobian.Sparsity.from_pairs(np.array([[0, 1]]), 2, 3)
    assert isinstance(sp, sensitiv.Sparsity)


@pytest.mark.parametrize("fn", ["jacobian", "total_derivative"])
def test_legacy_krylov_keywords_warn_and_mean_the_same(fn):
    F, x, theta, a_inv = _quadratic()
    call = (lambda **kw: sensitiv.jacobian(F, x, theta, **kw)) if fn == "jacobian" else (
        lambda **kw: sensitiv.total_derivative(lambda x, t: x, F, x, theta, **kw)
    )
    with pytest.warns(DeprecationWarning, match="KrylovOptions"):
        old = call(method="krylov", tol=1e-13, lanczos_steps=3)
    new = call(method="krylov", krylov=KrylovOptions(tol=1e-13, lanczos_steps=3))
    np.testing.assert_allclose(old.jacobian, new.jacobian, rtol=0, atol=0)
    np.testing.assert_allclose(new.jacobian, a_inv, atol=1e-11)


def test_options_are_checked_with_one_line_errors():
    F, x, theta, _ = _quadratic()
    with pytest.raises(InputError, match="total_derivative: unknown option"):
        sensitiv.total_derivative(lambda x, t: x, F, x, theta, tolerance=1e-3)
    with pytest.raises(InputError, match="jacobian: unknown option"):
        sensitiv.jacobian(F, x, theta, lanczos=3)
    with pytest.raises(InputError, match="krylov.precond"):
        KrylovOptions(precond="jacobi")
    with pytest.raises(InputError, match="krylov.maxiter"):
        KrylovOptions(maxiter=0)
    with pytest.raises(InputError, match="krylov: expected a sensitiv.KrylovOptions"):
        sensitiv.jacobian(F, x, theta, krylov=dict(tol=1e-3))
    with pytest.raises(InputError, match="method: expected one of auto, dense, krylov,"):
        sensitiv.total_derivative(lambda x, t: x, F, x, theta, method="reverse")
    with pytest.raises(InputError, match="trust_rtol"):
        sensitiv.jacobian(F, x, theta, trust_rtol=0.0)


def test_one_compilation_per_plan():
    from sensitiv.engine import _program

    F, x, theta, _ = _quadratic()
    opts = KrylovOptions(tol=1e-12)
    sensitiv.jacobian(F, x, theta, method="krylov", krylov=opts)
    before = _program.run._cache_size()
    sensitiv.jacobian(F, x + 0.0, theta * 1.0, method="krylov", krylov=KrylovOptions(tol=1e-12))
    assert _program.run._cache_size() == before  # an equal plan is the same cache key


def test_no_function_in_the_engine_over_120_lines():
    long = []
    for path in sorted((ROOT / "sensitiv" / "engine").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > 120:
                    long.append(f"{path.name}:{node.name} ({length} lines)")
    assert not long, long
