"""Copy jaxopt's test files, changing only imports and the renames docs/migrating.md documents.

Usage: python transform.py JAXOPT_TESTS_DIR OUT_DIR   (prints every change it made)
"""
import pathlib
import re
import sys

FILES = ["implicit_diff", "linear_solve", "projection", "prox", "gradient_descent", "proximal_gradient",
         "projected_gradient", "mirror_descent", "block_cd", "eq_qp", "osqp", "cd_qp", "scipy_wrappers", "common"]
src = pathlib.Path(sys.argv[1])
dst = pathlib.Path(sys.argv[2])
dst.mkdir(parents=True, exist_ok=True)
UNDER_TEST = {"implicit_diff", "linear_solve", "projection", "prox", "GradientDescent", "ProximalGradient",
              "ProjectedGradient", "MirrorDescent", "BlockCoordinateDescent", "EqualityConstrainedQP", "OSQP",
              "BoxCDQP", "ScipyMinimize", "ScipyBoundedMinimize", "ScipyLeastSquares", "ScipyBoundedLeastSquares",
              "ScipyRootFinding"}
changes = {}
for path in [src / f"{name}_test.py" for name in FILES]:
    text = path.read_text()
    out = []
    for line in text.splitlines():
        new = line
        m = re.match(r"from jaxopt import (\w+)(.*)$", line)
        if m and m.group(1)[:1].isupper() and m.group(1) not in UNDER_TEST:
            m = None
        if m and m.group(1) in UNDER_TEST:
            new = f"from jaxopt_on_sensitiv import {m.group(1)}{m.group(2)}"
        if re.match(r"from jaxopt(\._src)?\.osqp import OSQP$", line):
            new = "from jaxopt_on_sensitiv import OSQP"
        if re.match(r"from jaxopt(\._src)?\.base import KKTSolution$", line):
            new = "from jaxopt_on_sensitiv import KKTSolution"
        if line == "import jaxopt":
            new = "import jaxopt_on_sensitiv as jaxopt"
        if new != line:
            changes.setdefault(path.name, []).append(f"{line!r} -> {new!r}")
        out.append(new)
    text = "\n".join(out) + "\n"
    if path.name == "cd_qp_test.py":  # BoxCDQP.run's params_ineq is BoxQP.run's params_box
        n = text.count("params_ineq=")
        text = text.replace("params_ineq=", "params_box=")
        changes.setdefault(path.name, []).append(f"params_ineq= -> params_box= ({n}x)")
    if path.name in ("proximal_gradient_test.py", "projected_gradient_test.py"):
        # ProximalGradient/ProjectedGradient: jaxopt's acceleration= is accelerated= (migrating.md).
        lines, n = [], 0
        for line in text.splitlines():
            if "acceleration=" in line and "def " not in line and "parameterized" not in line:
                line = line.replace("acceleration=", "accelerated=")
                n += 1
            lines.append(line)
        text = "\n".join(lines) + "\n"
        changes.setdefault(path.name, []).append(f"constructor keyword acceleration= -> accelerated= ({n}x)")
    (dst / path.name).write_text(text)
for name, items in changes.items():
    print(name)
    for item in items:
        print("   ", item)
