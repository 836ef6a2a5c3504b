#!/usr/bin/env python3
"""The GBDT benchmark's data and anchors.

  gbdt_anchor.py gen OUT.parquet [--rows 1000000] [--features 40] [--seed 1]
      a table with a non-linear signal, about 10 % positives and 5 % missing values;
      column `label` (0/1), features f00..f39, in time order (file order).
  gbdt_anchor.py lightgbm|xgboost TABLE.parquet|FOLDER --label label [--time-column C] [--holdout 0.2] [--rounds 200] [--numeric-only]
      trains on the rows and inputs `omen train` trains on (see `load`) with 2 threads and LightGBM's defaults
      (31 leaves, learning rate 0.1, 255 bins), prints one JSON line: train seconds, held-out
      AUC, batch and single-row prediction latency.
"""
import argparse
import json
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def gen(a):
    rng = np.random.default_rng(a.seed)
    n, d = a.rows, a.features
    x = rng.normal(size=(n, d))
    s = (1.2 * x[:, 0] * x[:, 1] + np.sin(2 * x[:, 2]) * 1.5 + np.where(x[:, 3] > 0.7, 1.5, -0.3)
         + 0.8 * np.abs(x[:, 4]) - 0.6 * x[:, 5] ** 2 + 0.5 * x[:, 6] * (x[:, 7] > 0))
    s = s - np.quantile(s, 0.9) - 0.1  # about 10 % positives after noise
    y = (rng.random(n) < 1 / (1 + np.exp(-3 * s))).astype(np.int8)
    x[rng.random((n, d)) < 0.05] = np.nan
    cols = {f"f{j:02d}": x[:, j] for j in range(d)}
    cols["label"] = y
    pq.write_table(pa.table(cols), a.out, compression="zstd")
    print(json.dumps({"rows": n, "features": d, "positives": float(y.mean())}))


def load(a):
    """The same rows and inputs as `omen train`: files in path order (a folder is a dataset),
    rows ordered by the time column (stable), unlabelled rows dropped, numeric and boolean
    columns as features, and the string inputs an omen feature folder's `_schema.json` names
    (the `…__state` columns, which omen one-hot encodes) as categorical features (integer codes,
    null missing), unless `--numeric-only`; the last `holdout` of the rows for testing, the last
    tenth of the rest (omen's calibration split) left out of training. Returns the splits and the
    indices of the categorical columns."""
    import os
    paths = [a.table]
    if os.path.isdir(a.table):
        paths = sorted(os.path.join(d, f) for d, _, fs in os.walk(a.table) for f in fs if f.endswith(".parquet"))
    t = pa.concat_tables([pq.read_table(p) for p in paths], promote_options="default")
    # An omen feature folder names its labels (outcomes, never inputs) in _schema.json.
    labels, strings = set(), set()
    if os.path.isdir(a.table) and os.path.exists(os.path.join(a.table, "_schema.json")):
        columns = json.load(open(os.path.join(a.table, "_schema.json")))["columns"]
        labels = {c["name"] for c in columns if c.get("label")}
        if not a.numeric_only:
            strings = {c["name"] for c in columns if not c.get("label") and c.get("kind") == "str"}
    names = [c for c in t.column_names if c not in (a.label, a.time_column) and c not in labels
             and (pa.types.is_integer(t.schema.field(c).type) or pa.types.is_floating(t.schema.field(c).type)
                  or pa.types.is_boolean(t.schema.field(c).type) or c in strings)]
    for c in names:
        if c in strings:  # integer codes of the distinct values, null stays null
            codes = pa.chunked_array(t.column(c).cast(pa.string())).dictionary_encode().combine_chunks().indices
            t = t.set_column(t.column_names.index(c), c, codes.cast(pa.float64()))
    categorical = [j for j, c in enumerate(names) if c in strings]
    t = t.select(names + [a.label] + ([a.time_column] if a.time_column else []))
    if a.time_column:
        order = np.argsort(t.column(a.time_column).to_numpy(zero_copy_only=False), kind="stable")
        t = t.take(order)
    label = t.column(a.label).to_numpy(zero_copy_only=False).astype(np.float64)
    keep = ~np.isnan(label)
    x = np.column_stack([t.column(c).to_numpy(zero_copy_only=False).astype(np.float64) for c in names])[keep]
    y = label[keep]
    n = len(y)
    n_test = int(round(n * a.holdout))
    n_fit = n - n_test
    n_train = n_fit - n_fit // 10
    return x[:n_train], y[:n_train], x[n_fit:], y[n_fit:], categorical


def auc(y, p):
    from scipy.stats import rankdata
    r = rankdata(p)
    pos = y == 1
    n1, n0 = pos.sum(), (~pos).sum()
    return float((r[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def latency(predict_one, row, reps=2000):
    predict_one(row)
    t = time.perf_counter()
    for _ in range(reps):
        predict_one(row)
    return (time.perf_counter() - t) / reps


def run(a):
    xt, yt, xh, yh, categorical = load(a)
    if a.cmd == "lightgbm":
        import lightgbm as lgb
        params = {"objective": "binary", "num_leaves": 31, "learning_rate": 0.1, "max_bin": 255,
                  "min_data_in_leaf": 20, "num_threads": 2, "verbose": -1, "seed": 1, "deterministic": True}
        t = time.perf_counter()
        ds = lgb.Dataset(xt, yt, params={"max_bin": 255, "verbose": -1}, categorical_feature=categorical or "auto")
        booster = lgb.train(params, ds, num_boost_round=a.rounds)
        train_s = time.perf_counter() - t
        t = time.perf_counter()
        p = booster.predict(xh, num_threads=2)
        batch_s = time.perf_counter() - t
        one = latency(lambda r: booster.predict(r, num_threads=1), xh[:1])
    else:
        import xgboost as xgb
        t = time.perf_counter()
        types = ["c" if j in categorical else "q" for j in range(xt.shape[1])] if categorical else None
        dtrain = xgb.DMatrix(xt, label=yt, nthread=2, feature_types=types, enable_categorical=bool(categorical))
        booster = xgb.train({"objective": "binary:logistic", "tree_method": "hist", "max_leaves": 31, "grow_policy": "lossguide",
                             "max_depth": 0, "eta": 0.1, "max_bin": 256, "nthread": 2, "seed": 1}, dtrain, num_boost_round=a.rounds)
        train_s = time.perf_counter() - t
        dh = xgb.DMatrix(xh, nthread=2, feature_types=types, enable_categorical=bool(categorical))
        t = time.perf_counter()
        p = booster.predict(dh)
        batch_s = time.perf_counter() - t
        one = latency(lambda r: booster.inplace_predict(r), xh[:1]) if not categorical else float("nan")
    print(json.dumps({"anchor": a.cmd, "train_seconds": train_s, "auc": auc(yh, p), "rows_test": len(yh), "categorical": len(categorical),
                      "batch_seconds": batch_s, "single_row_us": one * 1e6}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["gen", "lightgbm", "xgboost"])
    ap.add_argument("path")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--features", type=int, default=40)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--label", default="label")
    ap.add_argument("--holdout", type=float, default=0.2)
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--time-column", dest="time_column", default=None)
    ap.add_argument("--numeric-only", dest="numeric_only", action="store_true",
                    help="leave out the string (state) inputs omen one-hot encodes")
    a = ap.parse_args()
    if a.cmd == "gen":
        a.out = a.path
        gen(a)
    else:
        a.table = a.path
        run(a)


if __name__ == "__main__":
    main()
