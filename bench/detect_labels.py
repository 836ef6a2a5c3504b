#!/usr/bin/env python3
"""Labelled anomaly windows of `omen detect --labels` from the simulator's truth.

Usage: detect_labels.py DEPLOYMENTS.jsonl [--services a,b] > labels.csv

Every failed deployment of the simulator (`failure_mode`, `effect.onset_minute`) gives a window
on the canary series of the metrics its failure mode moves, from the onset to the end of the
rollout (docs/simulator.md, "Effects"):
  error_spike    http_requests_error_ratio
  latency_shift  http_request_duration_seconds_p50, http_request_duration_seconds_p99
  memory_leak    process_resident_memory_bytes
  saturation     worker_saturation_ratio (from the first step above 50 % of traffic)
Bait (noisy canaries, scrape gaps, a missing metric) is not labelled: alarms on it are false.
"""
import argparse
import datetime as dt
import json
import sys

METRICS = {
    "error_spike": ["http_requests_error_ratio"],
    "latency_shift": ["http_request_duration_seconds_p50", "http_request_duration_seconds_p99"],
    "memory_leak": ["process_resident_memory_bytes"],
    "saturation": ["worker_saturation_ratio"],
}


def ts(s):
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("deployments")
    ap.add_argument("--services", default="", help="only these services (comma-separated)")
    a = ap.parse_args()
    only = set(filter(None, a.services.split(",")))
    out = sys.stdout
    out.write("service,series,start,end\n")
    for line in open(a.deployments):
        d = json.loads(line)
        mode = d.get("failure_mode")
        if mode not in METRICS or (only and d["service"] not in only):
            continue
        start = ts(d["started_at"]) + dt.timedelta(minutes=d["effect"].get("onset_minute", 0.0))
        if mode == "saturation":
            above = [ts(s["at"]) for s in d["steps"] if s["weight"] > 50]
            if not above:
                continue
            start = above[0]
        end = ts(d["ended_at"])
        for m in METRICS[mode]:
            sel = f'{m}{{deployment=""{d["deployment_id"]}"",role=""canary""}}'
            out.write(f'{d["service"]},"{sel}",{start.isoformat()},{end.isoformat()}\n')


if __name__ == "__main__":
    main()
