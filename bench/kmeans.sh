#!/usr/bin/env bash
# k-means of `omen profiles fit` against scikit-learn's KMeans, side by side on the same matrix:
# 1,000,000 x 16 standardized rows, k = 16, the same seed; both on this machine's cores.
# Usage: bench/kmeans.sh [ROWS] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${1:-1000000}
RUNS=${2:-3}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/omen/target}"
VENV="${OMEN_BENCH_VENV:-$HOME/.cache/omen/bench-venv}"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -c "import sklearn, numpy" 2>/dev/null || "$VENV/bin/python" -m pip install -q "scikit-learn==1.7.2" numpy
cargo build --release --workspace --examples -q
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
"$VENV/bin/python" bench/kmeans_anchor.py gen "$TMP/x.f64" "$ROWS" 16 1
for i in $(seq "$RUNS"); do
  "$VENV/bin/python" bench/kmeans_anchor.py fit "$TMP/x.f64" 16 16 1
  "$CARGO_TARGET_DIR/release/examples/kmeans_bench" "$TMP/x.f64" 16 16 1
done
