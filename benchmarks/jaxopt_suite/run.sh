#!/usr/bin/env bash
# jaxopt 0.8.5's own tests run against sensitiv (docs/migrating.md, "jaxopt's own tests").
# Needs `pip install jaxopt==0.8.5 scikit-learn` (benchmark-only peer) and jaxopt's sources:
#   git clone https://github.com/google/jaxopt /tmp/jaxopt && git -C /tmp/jaxopt checkout jaxopt-v0.8.5
# Usage: bash benchmarks/jaxopt_suite/run.sh /tmp/jaxopt/tests [OUT_DIR]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
tests="$1"
out="${2:-/tmp/jaxopt_suite_on_sensitiv}"
python "$here/transform.py" "$tests" "$out"
cd "$out"
# float32, as jaxopt runs its tests (no x64 switch here).
PYTHONPATH="$here" python -m pytest -q -p no:cacheprovider -n 0 -rf --tb=line .
