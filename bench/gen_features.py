#!/usr/bin/env python3
"""Writes a store for the `omen features build` benchmark straight into the store layout
(DESIGN §1), as `omen ingest` would: N deployments over S services, M metrics each sampled every
minute for canary and baseline from the canary start to 45 minutes after it, a linear git history
per service (commits and files with the Kamei columns) and the deployment records.

Usage: gen_features.py STORE [--deployments 10000] [--metrics 20] [--services 20] [--seed 1]
Needs numpy and pyarrow.
"""
import argparse
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

US = 1_000_000
TS = pa.timestamp("us", tz="UTC")
KAMEI_INT = ["ns", "nd", "nf", "la", "ld", "ndev", "nuc"]
KAMEI_FLOAT = ["entropy", "lt", "age", "exp", "rexp", "sexp"]
PATHS = ["src/cart.rs", "src/checkout.rs", "src/pricing.rs", "src/api/handlers.rs", "src/db.rs", "Cargo.toml",
         "Cargo.lock", "migrations/0001_init.sql", "migrations/0002_orders.sql", "deploy/values.yaml", "README.md",
         "tests/cart_test.rs", "src/util.rs", "src/auth.rs", "docs/api.md"]


def write(path, table):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pq.write_table(table, path, compression="zstd")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("store")
    ap.add_argument("--deployments", type=int, default=10_000)
    ap.add_argument("--metrics", type=int, default=20)
    ap.add_argument("--services", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    per_service = a.deployments // a.services
    t0 = 1_790_000_000 * US
    minutes = 45
    metrics = [f"metric_{m:02d}" for m in range(a.metrics)]
    total_samples = 0
    for s in range(a.services):
        service = f"svc{s:02d}"
        # Deployments every ~6 hours, 5 commits each on a linear history.
        starts = t0 + np.cumsum(rng.integers(3 * 3600, 9 * 3600, per_service)) * US
        n_commits = per_service * 5 + 1
        shas = [f"{s:02x}{i:038x}" for i in range(n_commits)]
        ids = [f"{service}-{i:05d}" for i in range(per_service)]
        failed = rng.random(per_service) < 0.1
        # 3 % of the labels disagree with the metrics (failures no metric shows, and the reverse).
        flip = rng.random(per_service) < 0.03
        outcome = np.where(failed ^ flip, "rolled_back", "success")
        steps = [[{"at": int(st), "weight": 5.0}, {"at": int(st + 10 * 60 * US), "weight": 25.0},
                  {"at": int(st + 20 * 60 * US), "weight": 50.0}, {"at": int(st + 30 * 60 * US), "weight": 100.0}]
                 for st in starts]
        dep = pa.table({
            "deployment_id": ids,
            "version": [f"1.{i}.0" for i in range(per_service)],
            "from_sha": [shas[5 * i] for i in range(per_service)],
            "to_sha": [shas[5 * i + 5] for i in range(per_service)],
            "started_at": pa.array(starts, TS),
            "ended_at": pa.array(starts + 45 * 60 * US, TS),
            "outcome": outcome,
            "steps": pa.array(steps, pa.list_(pa.struct([("at", TS), ("weight", pa.float64())]))),
            "source_file": ["bench"] * per_service,
            "source_line": pa.array(np.arange(1, per_service + 1), pa.int64()),
        })
        write(f"{a.store}/deployments/service={service}/part-0.parquet", dep)

        commit_ts = np.concatenate([[t0 - 86400 * US], np.repeat(starts, 5) - rng.integers(3600, 86400, n_commits - 1) * US])
        commit_ts = np.sort(commit_ts)
        cols = {
            "sha": shas,
            "ts": pa.array(commit_ts, TS),
            "committed_at": pa.array(commit_ts, TS),
            "author": [f"{rng.integers(0, 12):016x}" for _ in range(n_commits)],
            "message": ["change"] * n_commits,
            "parents": pa.array(np.r_[0, np.ones(n_commits - 1)], pa.int32()),
            "parent_shas": [""] + shas[:-1],
            "fix": rng.random(n_commits) < 0.2,
        }
        for k in KAMEI_INT:
            cols[k] = pa.array(rng.integers(0, 200, n_commits), pa.int64())
        for k in KAMEI_FLOAT:
            cols[k] = pa.array(rng.random(n_commits) * 50, pa.float64())
        write(f"{a.store}/commits/service={service}/part-0.parquet", pa.table(cols))
        fsha, fpath = [], []
        for sha in shas:
            for p in rng.choice(len(PATHS), rng.integers(1, 4), replace=False):
                fsha.append(sha)
                fpath.append(PATHS[p])
        nf = len(fsha)
        write(f"{a.store}/commit_files/service={service}/part-0.parquet", pa.table({
            "sha": fsha, "path": fpath, "old_path": pa.array([None] * nf, pa.string()),
            "lines_added": pa.array(rng.integers(0, 100, nf), pa.int64()),
            "lines_deleted": pa.array(rng.integers(0, 50, nf), pa.int64()),
            "change_kind": ["modified"] * nf, "is_binary": np.zeros(nf, bool),
        }))

        # Samples: deployment × metric × role × minute.
        k = np.arange(minutes)
        ts = (starts[:, None] + k[None, :] * 60 * US)  # deployments × minutes
        n = per_service * minutes
        parts = []
        for mi, m in enumerate(metrics):
            base = 1.0 + mi
            for role in ["canary", "baseline"]:
                # A slow leak in the first two metrics of failed canaries, from minute 15 on,
                # small against the noise until late: predictable, not trivially.
                slope = 0.003 * base if mi < 2 else 0.0
                leak = np.where(failed[:, None] & (role == "canary"), slope * np.maximum(k[None, :] - 15, 0), 0.0)
                v = base + rng.normal(0, 0.05 * base, (per_service, minutes)) + leak
                parts.append(pa.table({
                    "ts": pa.array(ts.ravel(), TS),
                    "metric": pa.array(np.full(n, m)),
                    "labels": pa.array(np.full(n, f"app={service},role={role}")),
                    "value": pa.array(v.ravel()),
                    "deployment": pa.array(np.repeat(ids, minutes)),
                    "role": pa.array(np.full(n, role)),
                    "source_file": pa.array(np.full(n, "bench")),
                    "source_line": pa.array(np.arange(n), pa.int64()),
                }))
        table = pa.concat_tables(parts)
        total_samples += table.num_rows
        write(f"{a.store}/metrics/service={service}/date=bench/part-0.parquet", table)
    print(f"{a.deployments} deployments, {a.metrics} metrics, {total_samples} samples written to {a.store}")


if __name__ == "__main__":
    main()
