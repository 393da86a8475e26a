"""jaxopt's solve_* functions as LinearSolver methods (docs/migrating.md)."""
from sensitiv import LinearSolver


def _method(name):
    def solve(matvec, b, ridge=None, init=None, **options):
        return LinearSolver(name, ridge=0.0 if ridge is None else ridge, init=init, **options)(matvec, b)

    solve.__name__ = f"solve_{name}"
    return solve


solve_lu = _method("lu")
solve_cholesky = _method("cholesky")
solve_cg = _method("cg")
solve_normal_cg = _method("normal_cg")
solve_gmres = _method("gmres")
solve_bicgstab = _method("bicgstab")
# Documented conversions: the same solution of the (square, non-singular) system.
solve_inv = _method("lu")
solve_qr = _method("lstsq")
solve_iterative_refinement = _method("lu")
