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
# omen, 1 thread and 2 threads, three runs each into fresh stores: the medians are reported (the
# first run after goaccess pays for faulting in memory the machine just had back, up to a second
# of system time on these VMs); user CPU of the 1-thread runs gives MB/s per core.
runs=""
for t in 1 2; do
  for r in 1 2 3; do
    rm -rf "$W/store"
    t0=$(now); /usr/bin/time -f "%U %S" -o "$W/cpu" env RAYON_NUM_THREADS=$t POLARS_MAX_THREADS=$t "$OMEN" ingest logs "$W/access.log" --service bench --store "$W/store" --json > "$W/o.json"; t1=$(now)
    runs="$runs $t:$(python3 -c "print($t1-$t0)"):$(cut -d' ' -f1 "$W/cpu"):$(cut -d' ' -f2 "$W/cpu")"
  done
done
rows=$(python3 -c "import json; j=json.load(open('$W/o.json')); print(j['rows_written'], j['rows_rejected'])")
python3 - "$mb" "$g" "$rows" $runs <<'PY'
import sys, statistics as st
mb, g = float(sys.argv[1]), float(sys.argv[2])
runs = {1: [], 2: []}
for r in sys.argv[4:]:
    t, wall, user, system = r.split(":")
    runs[int(t)].append((float(wall), float(user), float(system)))
print(f"logs: {mb} MB combined, rows/rejects {sys.argv[3]}")
print(f"  goaccess (single-threaded)  {g:7.2f}s  {mb/g:7.1f} MB/s")
for t, rs in runs.items():
    w = st.median(r[0] for r in rs); u = st.median(r[1] for r in rs)
    walls = " ".join(f"{r[0]:.2f}" for r in rs); sys_ = " ".join(f"{r[2]:.2f}" for r in rs)
    extra = f"; user CPU {u:.2f}s = {mb/u:.0f} MB/s per core" if t == 1 else ""
    print(f"  omen {t} thread{'s' if t > 1 else ' '} (median of 3) {w:7.2f}s  {mb/w:7.1f} MB/s  {g/w:5.1f}x goaccess{extra}")
    print(f"      runs {walls} s wall, system {sys_} s")
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
