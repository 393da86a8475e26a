"""`KrylovOptions`: the matrix-free strategy's knobs, one typed object shared by `jacobian`
and `total_derivative` (and the pipeline's `jacobian:` section)."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from typing import Any

from ..errors import InputError

__all__ = ["KrylovOptions", "LEGACY_KRYLOV_KEYWORDS", "krylov_options"]

# keywords of `jacobian` before 0.2, now fields of `KrylovOptions` (accepted with a warning)
LEGACY_KRYLOV_KEYWORDS = ("tol", "maxiter", "precond", "lanczos_steps", "deflation")


@dataclasses.dataclass(frozen=True)
class KrylovOptions:
    """How the matrix-free (`"krylov"`) strategy solves and probes the spectrum.

    Frozen and hashable: it is part of the compiled program's cache key.

    **Arguments:**

    - `tol`: relative residual at which a column's solve stops (default `eps**0.75` of
      the solution's dtype: 1.8e-12 in float64, 6.4e-6 in float32).
    - `maxiter`: iteration limit per column (default `10 d`).
    - `precond`: `"auto"` (block-Jacobi from the recovered sparse `∂₁F`; none without a
      structure hint), `None`, or a callable on `(…, d)` arrays approximating
      `(gradient_sign · ∂₁F)⁻¹`.
    - `lanczos_steps`: Lanczos steps for the spectrum (`λ_min`, the verdict) when it is not
      computed densely.
    - `deflation`: number of Ritz vectors deflated from every CG solve.

    **Example:**

    ```python
    from sensitiv import KrylovOptions
    result = sensitiv.jacobian(F, x, theta, method="krylov",
                               krylov=KrylovOptions(tol=1e-10, lanczos_steps=128))
    ```
    """

    tol: float | None = None
    maxiter: int | None = None
    precond: str | Callable | None = "auto"
    lanczos_steps: int = 64
    deflation: int = 0

    def __post_init__(self):
        if not (self.precond is None or self.precond == "auto" or callable(self.precond)):
            raise InputError(f"krylov.precond: expected 'auto', None or a callable, got {self.precond!r}")
        for name in ("lanczos_steps", "deflation"):
            if int(getattr(self, name)) < 0:
                raise InputError(f"krylov.{name}: expected a non-negative integer, got {getattr(self, name)!r}")
        if self.maxiter is not None and int(self.maxiter) < 1:
            raise InputError(f"krylov.maxiter: expected a positive integer, got {self.maxiter!r}")
        if self.tol is not None and not float(self.tol) > 0:
            raise InputError(f"krylov.tol: expected a positive number, got {self.tol!r}")


def krylov_options(krylov: KrylovOptions | None, legacy: dict[str, Any], where: str) -> KrylovOptions:
    """`krylov=` merged with the keywords it replaced (each with a DeprecationWarning);
    any other keyword is an error naming `where`."""
    unknown = sorted(set(legacy) - set(LEGACY_KRYLOV_KEYWORDS))
    if unknown:
        raise InputError(f"{where}: unknown option(s) {', '.join(unknown)}")
    krylov = KrylovOptions() if krylov is None else krylov
    if not isinstance(krylov, KrylovOptions):
        raise InputError(f"krylov: expected a sensitiv.KrylovOptions, got {type(krylov).__name__}")
    if legacy:
        names = ", ".join(f"{k}=" for k in sorted(legacy))
        warnings.warn(
            f"{where}: {names} moved into krylov=sensitiv.KrylovOptions(...); the keyword(s) "
            "will be removed in the next release",
            DeprecationWarning,
            stacklevel=3,
        )
        krylov = dataclasses.replace(krylov, **legacy)
    return krylov
