#!/usr/bin/env bash
# The LSTM of `omen train sequence` against burn's built-in LSTM and Keras (TensorFlow CPU), side
# by side on the same data: N sequences of T=60 steps x D=8 channels, hidden 64, a dense head of
# 12 outputs (4 steps x 3 quantiles), pinball loss, Adam 1e-3, batch 64, 2 threads.
# (PyTorch's CPU wheels come from download.pytorch.org, which these machines cannot reach; PyPI's
# torch wheel pulls the CUDA libraries, so the anchor is Keras on tensorflow-cpu.)
# Usage: bench/lstm.sh [N] [EPOCHS]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-8192}
EPOCHS=${2:-5}
T=60; D=8; O=12; H=64; B=64; THREADS=2
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/omen/target}"
VENV="${OMEN_BENCH_VENV_KERAS:-$HOME/.cache/omen/bench-venv-keras}"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -c "import tensorflow, numpy" 2>/dev/null || "$VENV/bin/python" -m pip install -q "tensorflow-cpu==2.21.0" numpy
cargo build --release -p omen-models --example lstm_bench -q
BIN="$CARGO_TARGET_DIR/release/examples/lstm_bench"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
"$VENV/bin/python" bench/lstm_anchor.py gen "$TMP" $((N + 64)) $T $D $((O / 3)) 1
echo "== $N sequences x $T steps x $D channels, hidden $H, batch $B, $EPOCHS epochs, $THREADS threads"
"$VENV/bin/python" --version
"$VENV/bin/python" -c "import tensorflow as tf, keras; print('tensorflow', tf.__version__, 'keras', keras.__version__)" 2>/dev/null
# Alternate so that a busy moment of the machine does not land on one side only.
for run in 1 2; do
  echo "-- run $run"
  TF_CPP_MIN_LOG_LEVEL=2 "$VENV/bin/python" bench/lstm_anchor.py keras "$TMP" "$N" $T $D $O $H $B "$EPOCHS" $THREADS 2>&1 | grep '^keras'
  RAYON_NUM_THREADS=$THREADS "$BIN" kernel "$TMP" "$N" $T $D $O $H $B "$EPOCHS" $THREADS
done
echo "-- burn, same model"
"$BIN" fused "$TMP" "$N" $T $D $O $H $B 2 $THREADS
"$BIN" builtin "$TMP" "$N" $T $D $O $H $B 2 $THREADS
echo "-- inference, one $T-step window, one core"
RAYON_NUM_THREADS=1 "$BIN" infer "$TMP" 1024 $T $D $O $H $B 1 1
