#!/usr/bin/env bash
# `omen detect` against the rolling z-score and EWMA baselines, event-level precision, recall and
# F1 on labelled series (rows of BENCHMARKS.md, "Anomaly detection"):
#   1. the simulator's history: services split in two; `omen train sequence` (with its series
#      detector) on the first half only; every detector's threshold chosen by F1 on the first
#      half's labelled windows; then scored on the second half, whose series the model never saw;
#   2. real labelled series from the aeon package's bundled data (UCR/KDD-TSAD 135, Daphnet
#      S06R02E0, ecg-diff-count-3; bench/detect_aeon.py), scored by the same model and the
#      thresholds chosen on the simulator.
# Labels of the simulator: bench/detect_labels.py (the truth of docs/simulator.md).
# Usage: bench/detect.sh [SERVICES] [DAYS]     (PROFILE=dev uses the dev build; OMEN=path a given binary)
set -euo pipefail
cd "$(dirname "$0")/.."
SERVICES=${1:-8}
DAYS=${2:-28}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/omen/target}"
if [ -z "${OMEN:-}" ]; then
  if [ "${PROFILE:-release}" = dev ]; then cargo build --workspace --bins -q; DIR=debug; else cargo build --release --workspace --bins -q; DIR=release; fi
  OMEN="$CARGO_TARGET_DIR/$DIR/omen"
fi
W=$(mktemp -d /tmp/omen-bench-detect.XXXX)
trap 'rm -rf "$W"' EXIT
SWEEP=2,3,4,5,6,8,10,12,15,20,25,30,40,50

"$OMEN" simulate --out "$W/sim" --services "$SERVICES" --days "$DAYS" --seed 1 --json > /dev/null
mapfile -t ALL < <(python3 -c "import json,sys; print('\n'.join(sorted({json.loads(l)['service'] for l in open('$W/sim/deployments.jsonl')})))")
HALF=$(( ${#ALL[@]} / 2 ))
A=("${ALL[@]:0:$HALF}"); B=("${ALL[@]:$HALF}")
join() { local IFS=,; echo "$*"; }
for part in A B; do
  eval "svcs=(\"\${$part[@]}\")"
  files=(); for s in "${svcs[@]}"; do files+=("$W"/sim/metrics/"$s"-*.json.gz); done
  "$OMEN" ingest metrics "${files[@]}" --store "$W/$part" --config "$W/sim/omen.toml" --json > /dev/null
  python3 - "$W/sim/deployments.jsonl" "$(join "${svcs[@]}")" > "$W/$part.jsonl" <<'PY'
import json, sys
keep = set(sys.argv[2].split(","))
for l in open(sys.argv[1]):
    if json.loads(l)["service"] in keep:
        sys.stdout.write(l)
PY
  "$OMEN" ingest deployments "$W/$part.jsonl" --store "$W/$part" --json > /dev/null
  python3 bench/detect_labels.py "$W/$part.jsonl" > "$W/$part-labels.csv"
done
echo "services: fitted on ${A[*]}; scored on ${B[*]} (never seen)"
t0=$(date +%s.%N)
"$OMEN" train sequence --store "$W/A" --param epochs=20 --param hidden=32 --json > "$W/train.json"
t1=$(date +%s.%N)
python3 -c "import json; j=json.load(open('$W/train.json')); d=j['detector']; print(f\"train sequence: {($t1-$t0):.0f}s wall; series detector {d['series_train']}+{d['series_valid']} series, best epoch {d['history']['best_epoch']}, {d['seconds']:.0f}s\")"

VENV="$HOME/.cache/omen/bench-venv"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" download -q --no-deps -d "$W/wheel" "aeon==1.6.0"
mkdir -p "$W/aeon"
python3 bench/detect_aeon.py "$W"/wheel/aeon-*.whl "$W/aeon"
"$OMEN" ingest metrics "$W/aeon/metrics.csv" --store "$W/R" --json > /dev/null

for mode in "--for 1" "--for 3" "--cusum 2"; do
for det in lstm zscore ewma; do
  # shellcheck disable=SC2086
  "$OMEN" detect --store "$W/A" --registry "$W/A/registry" --detector "$det" $mode --labels "$W/A-labels.csv" --sweep "$SWEEP" --no-write --json > "$W/$det-A.json"
  # shellcheck disable=SC2086
  "$OMEN" detect --store "$W/B" --registry "$W/A/registry" --detector "$det" $mode --labels "$W/B-labels.csv" --sweep "$SWEEP" --no-write --json > "$W/$det-B.json"
  # shellcheck disable=SC2086
  "$OMEN" detect --store "$W/R" --registry "$W/A/registry" --detector "$det" $mode --labels "$W/aeon/labels.csv" --sweep "$SWEEP" --no-write --json > "$W/$det-R.json"
done
echo "$mode:"
python3 - "$W" <<'PY'
import json, sys
w = sys.argv[1]
def load(det, part): return json.load(open(f"{w}/{det}-{part}.json"))
def best(ev): return max(ev, key=lambda e: (e["f1"] or 0, -e["threshold"]))
def at(ev, t): return next(e for e in ev if e["threshold"] == t)
def fmt(e):
    p = "-" if e["precision"] is None else f"{e['precision']:.3f}"
    d = "-" if e["mean_delay_s"] is None else f"{e['mean_delay_s']/60:.0f} min"
    return f"P {p} ({e['alarms_true']}/{e['alarms']})  R {e['recall']:.3f} ({e['labels_detected']}/{e['labels']})  F1 {e['f1']:.3f}  delay {d}"
print(f"{'detector':8} {'threshold':>9}  where")
for det in ["lstm", "zscore", "ewma"]:
    a, b, r = load(det, "A"), load(det, "B"), load(det, "R")
    t = best(a["evaluation"])["threshold"]
    print(f"{det:8} {t:9}  fitted services (threshold chosen here): {fmt(at(a['evaluation'], t))}")
    print(f"{'':8} {'':9}  unseen services: {fmt(at(b['evaluation'], t))}  [{b['series']} series, {b['steps_scored']} steps, {b['seconds']:.1f}s]")
    print(f"{'':8} {'':9}  aeon real series: {fmt(at(r['evaluation'], t))}  (best threshold there {best(r['evaluation'])['threshold']}: F1 {best(r['evaluation'])['f1']:.3f})")
PY
done
