#!/usr/bin/env bash
# `omen features build` at scale, a row of BENCHMARKS.md: 10,000 deployments × 20 metrics
# (canary and baseline sampled every minute for 45 minutes: 18 M samples), 4 checkpoints each,
# change impact over 50,000 commits. The store is written straight in the store layout by
# bench/gen_features.py (numpy, pyarrow in a virtual environment this script creates).
# Usage: bench/features.sh [DEPLOYMENTS] [METRICS]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000}
M=${2:-20}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/omen/target}"
VENV="$HOME/.cache/omen/bench-venv"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -c "import numpy, pyarrow" 2>/dev/null || "$VENV/bin/pip" install -q numpy==2.3.5 pyarrow==21.0.0
cargo build --release --bin omen -q
OMEN="$CARGO_TARGET_DIR/release/omen"
W=$(mktemp -d /tmp/omen-bench-features.XXXX)
trap 'rm -rf "$W"' EXIT
"$VENV/bin/python" bench/gen_features.py "$W/store" --deployments "$N" --metrics "$M"
du -sh "$W/store/metrics" | sed 's/^/metrics on disk: /'
for threads in 1 2; do
  /usr/bin/time -f "%e s wall, %U s user, %S s system, %M KB max RSS" -o "$W/time" \
    env RAYON_NUM_THREADS=$threads POLARS_MAX_THREADS=$threads "$OMEN" features build --store "$W/store" --json > "$W/out.json"
  python3 - "$threads" "$(cat "$W/time")" "$W/out.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[3]))
print(f"{sys.argv[1]} thread(s): {sys.argv[2]}; {j['deployments']} deployments, {j['rows']} rows x {j['columns']} columns, "
      f"{j['samples']} samples; omen's own timer {j['seconds']:.2f} s")
PY
done
