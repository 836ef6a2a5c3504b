#!/usr/bin/env bash
# omen's GBDT against LightGBM and XGBoost, side by side on the same Parquet, rows of
# BENCHMARKS.md: (1) a generated 1M × 40 table (non-linear signal, 10 % positives, 5 % missing
# values), 200 rounds; (2) the feature table of `omen features build` on bench/gen_features.py's
# store (10,000 deployments × 4 checkpoints, 512 numeric inputs), 100 rounds, label
# `label_failed`, ordered by `checkpoint_at`. 31 leaves, learning rate 0.1, 255 bins, 2 threads,
# the last 20 % of rows held out, the same training rows for every library.
# The anchors run from a virtual environment this script creates.
# Usage: bench/gbdt.sh [ROWS] [FEATURES]
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${1:-1000000}
FEATURES=${2:-40}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/omen/target}"
VENV="$HOME/.cache/omen/bench-venv"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -c "import numpy, pyarrow, lightgbm, xgboost, scipy" 2>/dev/null \
  || "$VENV/bin/pip" install -q numpy==2.3.5 pyarrow==21.0.0 lightgbm==4.6.0 xgboost==3.1.1 scipy==1.16.3
cargo build --release --bin omen -q
OMEN="$CARGO_TARGET_DIR/release/omen"
W=$(mktemp -d /tmp/omen-bench-gbdt.XXXX)
trap 'rm -rf "$W"' EXIT
"$VENV/bin/python" bench/gbdt_anchor.py gen "$W/table.parquet" --rows "$ROWS" --features "$FEATURES"
"$VENV/bin/python" bench/gen_features.py "$W/store" > /dev/null
"$OMEN" features build --store "$W/store" --json > /dev/null
run() { # NAME TABLE LABEL ROUNDS [TIME_COLUMN]
  local name=$1 table=$2 label=$3 rounds=$4 time=${5:-}
  local tflag=() oflag=()
  [ -n "$time" ] && tflag=(--time-column "$time") && oflag=(--time-column "$time")
  for round in 1 2; do
    "$VENV/bin/python" bench/gbdt_anchor.py lightgbm "$table" --label "$label" --rounds "$rounds" "${tflag[@]}" > "$W/lgb.json"
    "$VENV/bin/python" bench/gbdt_anchor.py xgboost "$table" --label "$label" --rounds "$rounds" "${tflag[@]}" > "$W/xgb.json"
    RAYON_NUM_THREADS=2 "$OMEN" train failure --features "$table" --label "$label" --holdout 0.2 "${oflag[@]}" \
      --param num_iterations="$rounds" --param num_leaves=31 --param learning_rate=0.1 --param max_bin=255 --json > "$W/omen.json"
    python3 - "$W" "$name, round $round" <<'PY'
import json, sys
w = sys.argv[1]
lgb, xgb, om = (json.load(open(f"{w}/{n}.json")) for n in ("lgb", "xgb", "omen"))
print(f"{sys.argv[2]}:")
for name, t, auc, batch, one in [
    ("lightgbm", lgb["train_seconds"], lgb["auc"], lgb["batch_seconds"], lgb["single_row_us"]),
    ("xgboost", xgb["train_seconds"], xgb["auc"], xgb["batch_seconds"], xgb["single_row_us"]),
    ("omen", om["train_seconds"], om["metrics"]["auc"], om["predict_batch_seconds"], om["single_row_us"]),
]:
    print(f"  {name:9s} train {t:7.2f}s ({t / lgb['train_seconds']:.2f}x lightgbm)  AUC {auc:.5f} ({auc - lgb['auc']:+.5f})"
          f"  batch {batch:.3f}s  single row {one:.2f} us")
PY
  done
}
run "generated 1M x 40" "$W/table.parquet" label 200
run "features table" "$W/store/features" label_failed 100 checkpoint_at
