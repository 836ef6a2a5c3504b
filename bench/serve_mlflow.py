#!/usr/bin/env python3
"""The serving benchmark's inputs and its MLflow anchor (bench/serve.sh).

  serve_mlflow.py request SAMPLES DEPLOYMENT MINUTES OUT.json
      the ScoreRequest a deployer sends for DEPLOYMENT at MINUTES after its start, in the proto3
      JSON mapping, built from the raw sample files (data/samples) exactly as
      tests/tests/it/serve.rs `request()` builds it: every canary and baseline sample of the
      deployment, one entry per metric and label set, the commit range, weight, steps, times.
  serve_mlflow.py train STORE TRAIN.json MLRUNS OUT_DIR DEPLOYMENT MINUTES
      an equivalent LightGBM model: the same rows as `omen train` (the feature table STORE/features,
      label `label_failed`, ordered by `checkpoint_at`, the last quarter held out and the last
      tenth of the rest left for calibration), the same inputs (the `features` list of omen's
      `TRAIN.json`: numeric columns, and `column=value` one-hot columns for the string states),
      the same settings (30 trees, 31 leaves, learning rate 0.1, min_data_in_leaf 2,
      min_sum_hessian_in_leaf 0.001). Logged with `mlflow.lightgbm.log_model` (with its input
      signature) to a local tracking store in MLRUNS (SQLite, artifacts on disk); writes
      OUT_DIR/model_uri, OUT_DIR/tracking_uri and OUT_DIR/body.json, the
      `/invocations` body of one row (`dataframe_split`): the feature row of DEPLOYMENT at MINUTES.
      Prints one JSON line.
"""
import json
import os
import sys
from datetime import datetime


def ts_us(s):
    return int(round(datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp() * 1e6))


SPECIAL = {"+Inf": float("inf"), "Inf": float("inf"), "-Inf": float("-inf"), "NaN": float("nan")}


def number(s):
    return SPECIAL[s] if s in SPECIAL else float(s)


def raw_deployments(inputs):
    out = []
    for line in open(os.path.join(inputs, "deployments/deployments.jsonl")):
        if not line.strip():
            continue
        d = json.loads(line)
        out.append({"id": d["deployment_id"], "service": d["service"], "started_at": ts_us(d["started_at"]),
                    "from_sha": d.get("from_sha"), "to_sha": d["to_sha"],
                    "steps": [(ts_us(s["at"]), float(s["weight"])) for s in d["steps"]]})
    return out


def raw_samples(inputs):
    """The three sample files, parsed as tests/tests/it/features.rs `raw_samples` does."""
    out = []
    rng = json.load(open(os.path.join(inputs, "metrics/checkout-canary.json")))
    for series in rng["data"]["result"]:
        labels = dict(series["metric"])
        for t, v in series["values"]:
            out.append({"metric": labels["__name__"], "labels": labels, "service": labels["app"], "role": labels["track"],
                        "deployment": labels["rollouts_pod_template_hash"], "ts": int(round(float(t) * 1e6)), "value": number(v)})
    for line in open(os.path.join(inputs, "metrics/checkout-memory.prom")):
        if line.startswith("#") or not line.strip():
            continue
        head, rest = line.split("}", 1)
        name, lab = head.split("{", 1)
        labels = {k: v.strip('"') for k, v in (kv.split("=", 1) for kv in lab.split(","))}
        value, ms = rest.split()[:2]
        out.append({"metric": name, "labels": labels, "service": labels["service"], "role": labels["role"],
                    "deployment": None, "ts": int(ms) * 1000, "value": number(value)})
    lines = open(os.path.join(inputs, "metrics/search-cpu.csv")).read().splitlines()
    header = lines[0].split(",")
    for line in lines[1:]:
        cells = dict(zip(header, line.split(",")))
        labels = {k: v for k, v in cells.items() if k not in ("ts", "metric", "value")}
        out.append({"metric": cells["metric"], "labels": labels, "service": cells["service"], "role": cells["role"],
                    "deployment": cells["deployment"], "ts": ts_us(cells["ts"]), "value": number(cells["value"])})
    return out


def json_number(v):
    # proto3 JSON: non-finite doubles are the strings "NaN", "Infinity", "-Infinity".
    if v != v:
        return "NaN"
    if v in (float("inf"), float("-inf")):
        return "Infinity" if v > 0 else "-Infinity"
    return v


def request(inputs, dep_id, minutes):
    deps = raw_deployments(inputs)
    d = next(x for x in deps if x["id"] == dep_id)
    checkpoint = d["started_at"] + int(minutes * 60e6)
    metrics = {}
    for s in raw_samples(inputs):
        if s["role"] not in ("canary", "baseline"):
            continue
        if s["deployment"] is not None:
            mine = s["deployment"] == dep_id
        else:
            own = [o for o in deps if o["service"] == s["service"] and o["started_at"] <= s["ts"]]
            mine = s["service"] == d["service"] and bool(own) and max(own, key=lambda o: (o["started_at"], o["id"]))["id"] == dep_id
        if not mine:
            continue
        key = (s["metric"], tuple(sorted((k, v) for k, v in s["labels"].items() if k not in ("role", "track"))))
        e = metrics.setdefault(key, {"metric": s["metric"], "labels": dict(s["labels"]), "canary": [], "baseline": []})
        e[s["role"]].append({"time": s["ts"] / 1e6, "value": json_number(s["value"])})
    ms = sorted(metrics.values(), key=lambda m: (m["metric"], str(sorted(m["labels"].items())), not m["canary"]))
    steps = [(at, w) for at, w in d["steps"] if at <= checkpoint]
    weight = max(steps)[1] if steps else 0.0
    req = {
        "service": d["service"],
        "deploymentId": d["id"],
        "change": {"commits": {"fromSha": d["from_sha"] or "", "toSha": d["to_sha"]}},
        "metrics": [{k: v for k, v in m.items() if v or k == "metric"} for m in ms],
        "currentWeight": weight,
        "elapsedSeconds": (checkpoint - d["started_at"]) / 1e6,
        "startedAt": d["started_at"] / 1e6,
        "steps": [{"time": at / 1e6, "weight": w} for at, w in steps],
    }
    return req, sum(len(m["canary"]) + len(m["baseline"]) for m in ms)


def feature_matrix(store, names):
    """The feature table in `checkpoint_at` order, as omen's inputs `names`."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    root = os.path.join(store, "features")
    paths = sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if f.endswith(".parquet"))
    t = pa.concat_tables([pq.read_table(p) for p in paths], promote_options="default")
    # A small table: plain lists (pyarrow has no `take` for Polars' string views).
    cps = t.column("checkpoint_at").cast(pa.int64()).to_pylist()
    order = sorted(range(len(cps)), key=lambda i: cps[i])  # stable, as omen's split
    col = lambda n: [t.column(n)[i].as_py() for i in order]
    cols = []
    for n in names:
        if n in t.column_names:
            cols.append(np.array([np.nan if v is None else float(v) for v in col(n)], dtype=np.float64))
        else:
            base, value = n.split("=", 1)
            cols.append(np.array([1.0 if v == value else 0.0 for v in col(base)], dtype=np.float64))
    x = np.column_stack(cols)
    y = np.array([np.nan if v is None else float(v) for v in col("label_failed")])
    return x, y, col("deployment_id"), [cps[i] for i in order]


def train(store, train_json, mlruns, out, dep_id, minutes):
    import lightgbm as lgb
    import mlflow
    import numpy as np
    import pandas as pd
    from mlflow.models import infer_signature

    names = json.load(open(train_json))["features"]
    x, y, ids, cps = feature_matrix(store, names)
    keep = ~np.isnan(y)
    xk, yk = x[keep], y[keep]
    n = len(yk)
    n_fit = n - int(round(n * 0.25))
    n_train = n_fit - n_fit // 10
    params = {"objective": "binary", "num_leaves": 31, "learning_rate": 0.1, "min_data_in_leaf": 2,
              "min_sum_hessian_in_leaf": 0.001, "num_threads": 1, "verbose": -1, "seed": 1, "deterministic": True}
    frame = pd.DataFrame(xk[:n_train], columns=names)
    booster = lgb.train(params, lgb.Dataset(frame, yk[:n_train], params={"verbose": -1}), num_boost_round=30)
    dump = booster.dump_model()
    leaves = [t["num_leaves"] for t in dump["tree_info"]]
    # The row omen scores: DEPLOYMENT at its MINUTES checkpoint.
    deps = raw_deployments(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "samples"))
    start = next(d for d in deps if d["id"] == dep_id)["started_at"]
    row = next(i for i in range(len(ids)) if ids[i] == dep_id and cps[i] == start + int(minutes * 60e6))
    one = pd.DataFrame(x[row:row + 1], columns=names)
    # A local tracking store (SQLite: MLflow 3 refuses new file stores) with local artifacts.
    os.makedirs(mlruns, exist_ok=True)
    tracking = "sqlite:///" + os.path.abspath(os.path.join(mlruns, "mlflow.db"))
    mlflow.set_tracking_uri(tracking)
    exp = mlflow.create_experiment("omen-bench", artifact_location="file://" + os.path.abspath(os.path.join(mlruns, "artifacts")))
    with mlflow.start_run(experiment_id=exp):
        info = mlflow.lightgbm.log_model(booster, name="model", signature=infer_signature(frame, booster.predict(frame)),
                                         input_example=None)
    # JSON has no NaN: missing values as null (MLflow's schema enforcement reads them as NaN).
    body = {"dataframe_split": {"columns": names, "data": [[None if v != v else v for v in one.iloc[0].tolist()]]}}
    os.makedirs(out, exist_ok=True)
    open(os.path.join(out, "model_uri"), "w").write(info.model_uri)
    open(os.path.join(out, "tracking_uri"), "w").write(tracking)
    json.dump(body, open(os.path.join(out, "body.json"), "w"))
    print(json.dumps({"model_uri": info.model_uri, "tracking_uri": tracking, "trees": len(leaves), "leaves_max": max(leaves),
                      "leaves_mean": sum(leaves) / len(leaves), "inputs": len(names), "rows_train": n_train,
                      "p_local": float(booster.predict(one)[0]), "lightgbm": lgb.__version__, "mlflow": mlflow.__version__}))


def main():
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "request" and len(sys.argv) == 6:
        req, n = request(sys.argv[2], sys.argv[3], float(sys.argv[4]))
        json.dump(req, open(sys.argv[5], "w"))
        print(json.dumps({"metrics": len(req["metrics"]), "samples": n}))
    elif cmd == "train" and len(sys.argv) == 8:
        train(*sys.argv[2:7], float(sys.argv[7]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
