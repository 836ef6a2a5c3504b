#!/usr/bin/env bash
# omen-serve under load, side by side with its anchors, rows of BENCHMARKS.md (issue 7, 9–10):
#   - the ceiling: a bare tonic service of the same proto answering a fixed response
#     (serve/examples/omen-echo.rs), fed the same request bytes;
#   - what a team would otherwise deploy: `mlflow models serve` (uvicorn) scoring an equivalent
#     LightGBM model (same feature table, label, rows, inputs, 30 trees, 31 leaves) over REST, one
#     row per call (bench/serve_mlflow.py), with 1 and with 2 uvicorn workers.
# The store is built from data/samples as tests/tests/it/serve.rs does; every call scores
# deployment d-0003 at 10 minutes (538 samples of 10 series, a commit range). The load client
# is serve/examples/omen-load.rs, on the same machine as the servers.
# Runs, in order: closed-loop maximum throughput of echo, omen-serve (limit raised so that the
# limiter is not what is measured) and MLflow at several concurrencies; a fresh omen-serve with
# the default limits in an open loop (constant arrival rate, latency from the intended send
# time) at 30, 50 and 70 % of its maximum; the overload, 2× its maximum for OVERLOAD seconds,
# the server's RSS sampled every second; then a short closed loop to see it answer again.
# The load client shares the 2 cores with the servers (its CPU time is in the raw results).
# The anchors run from a virtual environment this script creates.
# Usage: [PROFILE=dev] bench/serve.sh [SECONDS per point, 15] [OVERLOAD seconds, 30]
# Raw JSON lines: $RESULTS (default ~/.cache/omen/bench-serve-<time>.jsonl), and the server's
# /metrics after the overload beside it (-server-metrics.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-15}
OVER=${2:-30}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/omen/target}"
RESULTS=${RESULTS:-$HOME/.cache/omen/bench-serve-$(date +%Y%m%dT%H%M%S).jsonl}
VENV="$HOME/.cache/omen/bench-venv"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -c "import numpy, pyarrow, lightgbm, mlflow, pandas" 2>/dev/null \
  || "$VENV/bin/pip" install -q numpy==2.3.5 pyarrow==21.0.0 lightgbm==4.6.0 mlflow==3.17.2
# PROFILE=dev measures the dev binaries (every crate at opt-level 2 there, debug assertions on)
# where a release build is not at hand; echo and omen-serve are then built alike.
if [ "${PROFILE:-release}" = dev ]; then
  cargo build --workspace --bins --examples -q
  R="$CARGO_TARGET_DIR/debug"
else
  cargo build --release --workspace --bins --examples -q
  R="$CARGO_TARGET_DIR/release"
fi
OMEN="$R/omen" SERVE="$R/omen-serve" LOAD="$R/examples/omen-load" ECHO="$R/examples/omen-echo"
PY="$VENV/bin/python"
export MLFLOW_DISABLE_TELEMETRY=true MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false
W=$(mktemp -d /tmp/omen-bench-serve.XXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 1
  rm -rf "$W"
}
trap cleanup EXIT
mkdir -p "$(dirname "$RESULTS")"
: > "$RESULTS"

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# wait_for FILE TEXT: until a server's log says it listens.
wait_for() {
  for _ in $(seq 600); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "no '$2' in $1:" >&2; cat "$1" >&2; exit 1
}
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
# load LABEL ARGS...: one run of the load client, its JSON line appended to $RESULTS.
load() {
  local label=$1; shift
  "$LOAD" --label "$label" "$@" | tee -a "$RESULTS" > "$W/last.json"
  python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
l = j["latency_ms"] or {}
print("  %-24s %9.1f ok/s  p50 %8.3f ms  p99 %8.3f ms  shed %d  errors %s" % (j["label"], j["throughput"], l.get("p50", 0), l.get("p99", 0), j["shed"], j["errors"]))
' "$W/last.json" >&2
}
# max_of LABEL_PREFIX: the best closed-loop throughput of the runs so far under that label.
max_of() { python3 -c 'import json,sys; print(max(j["throughput"] for j in map(json.loads, open(sys.argv[1])) if j["label"].startswith(sys.argv[2])))' "$RESULTS" "$1"; }

echo "building the store and the models in $W" >&2
S=data/samples ST="$W/store"
"$OMEN" ingest commits "$S/repos/checkout.bundle" --service checkout --store "$ST" --json > /dev/null
"$OMEN" ingest metrics "$S/metrics/checkout-canary.json" "$S/metrics/checkout-memory.prom" "$S/metrics/search-cpu.csv" --store "$ST" --json > /dev/null
"$OMEN" ingest deployments "$S/deployments/deployments.jsonl" --store "$ST" --json > /dev/null
"$OMEN" features build --config "$S/omen.toml" --store "$ST" --json > /dev/null
"$OMEN" train failure --features "$ST/features" --label label_failed --time-column checkpoint_at --holdout 0.25 \
  --param min_data_in_leaf=2 --param num_iterations=30 --param min_sum_hessian_in_leaf=0.001 --store "$ST" --json > "$W/train.json"
"$PY" bench/serve_mlflow.py request "$S" d-0003 10 "$W/request.json" >&2
"$PY" bench/serve_mlflow.py train "$ST" "$W/train.json" "$W/mlruns" "$W/ml" d-0003 10 2>/dev/null | tee "$W/mlflow_model.json" >&2
printf '[serve.limits]\nmax_concurrent = 100000\n' > "$W/unlimited.toml"
printf '# the defaults: max_concurrent = 64, request_timeout = "5s"\n[serve]\n' > "$W/default.toml"

# 1. Closed loop, maximum throughput: the ceiling, omen-serve with the limit raised, MLflow.
LEVELS=(4 8 16 32 64)
P=$(port) H=$(port)
"$SERVE" --store "$ST" --listen "127.0.0.1:$P" --http "127.0.0.1:$H" --config "$W/unlimited.toml" 2> "$W/serve-a.log" &
SPID=$!; PIDS+=("$SPID")
wait_for "$W/serve-a.log" "listening on"
wait_for "$W/serve-a.log" "HTTP adapter on"
# omen's answer to this request, for the echo service to send back (an answer of the same size).
curl -sf -X POST -H 'content-type: application/json' --data-binary "@$W/request.json" "http://127.0.0.1:$H/v1/score" > "$W/response.json"
EP=$(port)
"$ECHO" --listen "127.0.0.1:$EP" --response "$W/response.json" 2> "$W/echo.log" &
EPID=$!; PIDS+=("$EPID")
wait_for "$W/echo.log" "listening on"
echo "closed loop, ${DUR}s per point:" >&2
for c in "${LEVELS[@]}"; do
  load "echo c=$c" --target "echo://127.0.0.1:$EP" --request "$W/request.json" --concurrency "$c" --duration "${DUR}s" --pid "$EPID"
  load "omen c=$c" --target "grpc://127.0.0.1:$P" --request "$W/request.json" --concurrency "$c" --duration "${DUR}s" --pid "$SPID"
done
stop "$EPID"
stop "$SPID"

MP=$(port)
MODEL=$(cat "$W/ml/model_uri")
for workers in 1 2; do
  MLFLOW_TRACKING_URI=$(cat "$W/ml/tracking_uri") PATH="$VENV/bin:$PATH" \
    "$VENV/bin/mlflow" models serve -m "$MODEL" --env-manager local -p "$MP" --host 127.0.0.1 -w "$workers" > "$W/mlflow.log" 2>&1 &
  MPID=$!; PIDS+=("$MPID")
  for _ in $(seq 120); do curl -sf "http://127.0.0.1:$MP/ping" > /dev/null && break; sleep 0.5; done
  curl -sf -X POST -H 'content-type: application/json' --data-binary "@$W/ml/body.json" "http://127.0.0.1:$MP/invocations" > "$W/ml/answer.json"
  echo "  mlflow ($workers worker(s)) answers $(cat "$W/ml/answer.json")" >&2
  for c in 4 16 64; do
    load "mlflow w=$workers c=$c" --target "http://127.0.0.1:$MP/invocations" --request "$W/ml/body.json" --concurrency "$c" --duration "${DUR}s"
  done
  stop "$MPID"
  sleep 1
done

ECHO_MAX=$(max_of "echo ")
OMEN_MAX=$(max_of "omen c=")
MLFLOW_MAX=$(max_of "mlflow ")
rate() { python3 -c "print(round($OMEN_MAX * $1, 1))"; }

# 2. Open loop with the default limits: 70 % of the maximum, then 2× for the overload.
P=$(port) H=$(port)
"$SERVE" --store "$ST" --listen "127.0.0.1:$P" --http "127.0.0.1:$H" --config "$W/default.toml" 2> "$W/serve-b.log" &
SPID=$!; PIDS+=("$SPID")
wait_for "$W/serve-b.log" "listening on"
echo "open loop, default limits (max_concurrent 64, request_timeout 5s):" >&2
for pct in 30 50 70; do
  load "omen open $pct%" --target "grpc://127.0.0.1:$P" --request "$W/request.json" --rate "$(rate "0.$pct")" --duration "${DUR}s" --pid "$SPID"
done
load "omen overload 2x" --target "grpc://127.0.0.1:$P" --request "$W/request.json" --rate "$(rate 2)" --duration "${OVER}s" --warmup 0s --pid "$SPID"
ALIVE=no
kill -0 "$SPID" 2>/dev/null && curl -sf "http://127.0.0.1:$H/readyz" > /dev/null && ALIVE=yes
# The server's own view (its latency histogram starts when a call reaches the handler).
curl -sf "http://127.0.0.1:$H/metrics" > "${RESULTS%.jsonl}-server-metrics.txt" || true
load "omen after overload" --target "grpc://127.0.0.1:$P" --request "$W/request.json" --concurrency 4 --duration 3s --warmup 0s --pid "$SPID"
stop "$SPID"

python3 - "$RESULTS" "$ALIVE" "$W/mlflow_model.json" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
alive = sys.argv[2] == "yes"
model = json.load(open(sys.argv[3]))
by = {r["label"]: r for r in rows}
best = lambda p: max((r for r in rows if r["label"].startswith(p)), key=lambda r: r["throughput"])
echo, omen, ml = best("echo "), best("omen c="), best("mlflow ")
print(f"\nequivalent LightGBM model: {model['trees']} trees, {model['leaves_mean']:.1f} leaves on average, {model['inputs']} inputs")
print(f"{'run':26s} {'ok/s':>9s} {'p50 ms':>8s} {'p99 ms':>8s} {'max ms':>8s} {'shed':>7s} {'errors':>7s} {'srv CPU µs/call':>15s}")
for r in rows:
    l = r["latency_ms"] or {}
    cpu = r.get("server_cpu_us_per_ok")
    print(f"{r['label']:26s} {r['throughput']:9.1f} {l.get('p50', 0):8.3f} {l.get('p99', 0):8.3f} {l.get('max', 0):8.3f} "
          f"{r['shed']:7d} {sum(r['errors'].values()):7d} {'' if cpu is None else round(cpu):>15}")
o70, ov = by["omen open 70%"], by["omen overload 2x"]
rss = ov["rss_kb"]
samples = rss["samples"][1:] or rss["samples"]
half1, half2 = samples[: len(samples) // 2] or samples, samples[len(samples) // 2:] or samples
fresh = by["omen open 30%"]["rss_kb"]["start"]
goals = [
    ("≥ 50 % of the echo ceiling", omen["throughput"] / echo["throughput"] >= 0.5,
     f"{omen['throughput']:.0f} / {echo['throughput']:.0f} ok/s = {omen['throughput'] / echo['throughput']:.1%} ({omen['label']} vs {echo['label']})"),
    ("≥ 20× MLflow serving", omen["throughput"] / ml["throughput"] >= 20,
     f"{omen['throughput']:.0f} / {ml['throughput']:.0f} ok/s = {omen['throughput'] / ml['throughput']:.1f}× ({ml['label']})"),
    ("p99 ≤ 5 ms at 70 % of the maximum", o70["latency_ms"]["p99"] <= 5.0 and o70["shed"] == 0 and not o70["errors"],
     f"{o70['rate']:.0f}/s offered: p50 {o70['latency_ms']['p50']:.2f} ms, p99 {o70['latency_ms']['p99']:.2f} ms, shed {o70['shed']}, errors {o70['errors']}"),
    ("overload 2×: no crash", alive, "alive and ready after it" if alive else "DEAD or not ready"),
    # At 2× about half the calls are excess: most of them must come back shed, none held back
    # by the client because too many were in flight.
    ("overload 2×: excess shed with RESOURCE_EXHAUSTED", ov["shed"] >= 0.3 * ov["sent"] and not ov["errors"] and ov["not_sent"] == 0,
     f"{ov['sent']} sent, {ov['ok']} OK ({ov['throughput']:.0f}/s), {ov['shed']} shed, other errors {ov['errors']}, not sent {ov['not_sent']}"),
    ("overload 2×: admitted calls within their deadline", ov["ok_within_deadline"] == 1.0,
     f"{ov['ok_within_deadline']:.2%} of OK calls within {ov['deadline_s']:.0f} s; p50 {ov['latency_ms']['p50']:.1f} ms, p99 {ov['latency_ms']['p99']:.1f} ms, max {ov['latency_ms']['max']:.1f} ms"),
    # Flat: no growth while the overload lasts (the second half no higher than 10 % above the
    # first half's peak); the level itself is printed beside the fresh server's.
    ("overload 2×: memory flat", max(half2) <= 1.1 * max(half1),
     f"RSS before {rss['start'] / 1024:.0f} MiB, peak of the first half {max(half1) / 1024:.0f} MiB, of the second half "
     f"{max(half2) / 1024:.0f} MiB, end {rss['end'] / 1024:.0f} MiB (the fresh server: {fresh / 1024:.0f} MiB)"),
]
print()
for name, ok, detail in goals:
    print(f"{'MET ' if ok else 'MISS'}  {name}: {detail}")
print(f"\nraw results: {sys.argv[1]}")
PY
