#!/usr/bin/env bash
# Side-by-side benchmarks of omen's ingest, rows of BENCHMARKS.md:
#   1. `omen ingest logs` vs goaccess on the same ≥100 MB combined log;
#   2. `omen ingest commits` vs `git log --numstat` on the same repository.
# Usage: bench/ingest.sh [MB] [COMMITS]      (installs goaccess from Debian if missing)
set -euo pipefail
cd "$(dirname "$0")/.."
MB=${1:-120}
COMMITS=${2:-5000}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/omen/target}"
command -v goaccess >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq goaccess; }
cargo build --release --bin omen -q
OMEN="$CARGO_TARGET_DIR/release/omen"
W=$(mktemp -d /tmp/omen-bench.XXXX)
trap 'rm -rf "$W"' EXIT
now() { date +%s.%N; }

python3 bench/gen_log.py --mb "$MB" --seed 1 > "$W/access.log"
size=$(stat -c %s "$W/access.log")
mb=$(python3 -c "print(round($size/1e6,1))")
cat "$W/access.log" > /dev/null  # warm the page cache for both

t0=$(now); goaccess "$W/access.log" --log-format=COMBINED --no-global-config -o "$W/report.json" >/dev/null 2>&1; t1=$(now)
g=$(python3 -c "print($t1-$t0)")
# omen single-threaded: wall time and user CPU (the machine's system-time noise is reported apart)
t0=$(now); /usr/bin/time -f "%U %S" -o "$W/cpu1" env RAYON_NUM_THREADS=1 POLARS_MAX_THREADS=1 "$OMEN" ingest logs "$W/access.log" --service bench --store "$W/store1" --json > "$W/o1.json"; t1=$(now)
o1=$(python3 -c "print($t1-$t0)")
t0=$(now); "$OMEN" ingest logs "$W/access.log" --service bench --store "$W/store2" --json > "$W/o2.json"; t1=$(now)
o2=$(python3 -c "print($t1-$t0)")
rows=$(python3 -c "import json; j=json.load(open('$W/o2.json')); print(j['rows_written'], j['rows_rejected'])")
python3 - "$mb" "$g" "$o1" "$o2" "$rows" $(cat "$W/cpu1") <<'PY'
import sys
mb, g, o1, o2 = map(float, sys.argv[1:5])
user = float(sys.argv[6])
print(f"logs: {mb} MB combined, rows/rejects {sys.argv[5]}")
print(f"  goaccess (single-threaded)  {g:7.2f}s  {mb/g:7.1f} MB/s")
print(f"  omen 1 thread               {o1:7.2f}s  {mb/o1:7.1f} MB/s  {g/o1:5.1f}x goaccess; user CPU {user:.2f}s = {mb/user:.0f} MB/s per core")
print(f"  omen 2 threads              {o2:7.2f}s  {mb/o2:7.1f} MB/s  {g/o2:5.1f}x goaccess")
PY

mkdir "$W/repo" && git -C "$W/repo" init -q -b main
python3 bench/gen_repo.py --commits "$COMMITS" --seed 1 | git -C "$W/repo" fast-import --quiet
git -C "$W/repo" log --oneline | wc -l > /dev/null
t0=$(now); git -C "$W/repo" -c core.quotepath=off log --numstat -M --diff-merges=first-parent > /dev/null; t1=$(now)
gl=$(python3 -c "print($t1-$t0)")
t0=$(now); "$OMEN" ingest commits "$W/repo" --service bench --store "$W/store3" --json > "$W/c.json"; t1=$(now)
oc=$(python3 -c "print($t1-$t0)")
python3 - "$gl" "$oc" "$COMMITS" <<'PY'
import sys
gl, oc = map(float, sys.argv[1:3])
print(f"commits: {sys.argv[3]} commits")
print(f"  git log --numstat   {gl:7.2f}s")
print(f"  omen ingest commits {oc:7.2f}s  {oc/gl:5.2f}x git's time")
PY
