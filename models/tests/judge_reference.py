"""Independent reference values for models/tests/judge.rs (`kayenta_worked_example`).

Re-implements, from Kayenta's documentation and source semantics, the NetflixACAJudge pipeline
for the worked example: NaN removal, IQRDetector(factor 3, reduceSensitivity) with R-7
percentiles (numpy), the two-sided Mann-Whitney p-value (scipy.stats.mannwhitneyu), the
Hodges-Lehmann estimate and its Moses interval at 0.98 as R's wilcox.test computes it (exact
null distribution of U by brute-force recursion here; normal approximation with ties), the
tolerance band 0.25·|estimate|, the meanRatio effect size, and WeightedSumScorer.
Run: python3 models/tests/judge_reference.py > models/tests/judge_reference.json   (numpy, scipy)
"""
import functools
import json
import math

import numpy as np
from scipy import stats


def data():
    rng = np.random.default_rng(20261122)
    base = 100 + rng.normal(0, 5, 40)
    latency_b = np.round(base, 3)
    latency_c = np.round(100 + rng.normal(0, 5, 36) + 6.0, 3)  # a clear increase
    slight_b = np.round(50 + rng.normal(0, 4, 30), 3)
    slight_c = np.round(50 + rng.normal(0, 4, 30) + 4.0, 3)  # interval above 0, not above 0.25·|estimate|
    errors_b = rng.poisson(3, 45).astype(float)
    errors_c = rng.poisson(3, 45).astype(float)
    errors_c[[3, 17]] = [40.0, 55.0]  # spikes the outlier rule removes
    errors_c[5] = float("nan")
    return {
        "latency": (latency_c.tolist(), latency_b.tolist()),
        "slight": (slight_c.tolist(), slight_b.tolist()),
        "errors": (errors_c.tolist(), errors_b.tolist()),
        "empty": ([], [1.0, 2.0, 3.0]),
        "same": ([4.0, 5.0, 6.0], [6.0, 4.0, 5.0]),
    }


def iqr_remove(v, k=3.0):
    v = np.asarray(v, float)
    p01, q1, q3, p99 = np.quantile(v, [0.01, 0.25, 0.75, 0.99])
    iqr = q3 - q1
    lo, hi = min(p01, q1 - k * iqr), max(p99, q3 + k * iqr)
    return v[(v >= lo) & (v <= hi)]


@functools.lru_cache(maxsize=None)
def count_u(m, n, u):
    """Number of arrangements of m x's and n y's with U = u (U counts pairs x > y)."""
    if u < 0:
        return 0
    if m == 0 or n == 0:
        return 1 if u == 0 else 0
    # The largest element is an x (it beats all n y's) or a y.
    return count_u(m - 1, n, u - n) + count_u(m, n - 1, u)


def qwilcox(p, m, n):
    total = math.comb(m + n, m)
    cdf = 0.0
    for q in range(m * n + 1):
        cdf += count_u(m, n, q) / total
        if cdf >= p - 10 * np.finfo(float).eps:
            return q
    return m * n


def hodges_lehmann(x, y, conf):
    x, y = np.asarray(x), np.asarray(y)
    d = np.sort((x[:, None] - y[None, :]).ravel())
    m, n = len(x), len(y)
    mn = m * n
    est = float(np.median(d))
    alpha = 1 - conf
    pooled = np.concatenate([x, y])
    ties = len(np.unique(pooled)) < len(pooled)
    if not ties and m < 50 and n < 50:
        c = max(1, qwilcox(alpha / 2, m, n))
        k = mn + 1 - c
    else:
        def tie_sum(v):
            _, t = np.unique(v, return_counts=True)
            return float(np.sum(t ** 3 - t))
        N = m + n
        sigma = math.sqrt(mn / 12 * ((N + 1) - (tie_sum(x) + tie_sum(y)) / (N * (N - 1))))
        z = stats.norm.ppf(1 - alpha / 2)
        a, b = mn / 2 - 0.5 - z * sigma, mn / 2 + 0.5 + z * sigma
        c = 1 if a < 0 else min(mn, math.floor(a) + 1)
        k = 1 if b < 0 else min(mn, max(1, math.floor(b) + 1))
        k = max(k, c)
    return est, float(d[c - 1]), float(d[k - 1])


def classify(c, b, direction="either", allowed=(1.0, 1.0), outliers=False, tol=0.25, conf=0.98):
    c = np.asarray([v for v in c if not math.isnan(v)], float)
    b = np.asarray([v for v in b if not math.isnan(v)], float)
    if outliers:
        c, b = iqr_remove(c), iqr_remove(b)
    if len(c) == 0 or len(b) == 0:
        return {"classification": "NODATA"}
    if sorted(c) == sorted(b):
        return {"classification": "PASS", "p": 1.0}
    p = float(stats.mannwhitneyu(c, b, alternative="two-sided").pvalue)
    est, lo, hi = hodges_lehmann(c, b, conf)
    ratio = float(np.mean(c) / np.mean(b)) if np.mean(c) != 0 and np.mean(b) != 0 else None
    bound = tol * abs(est)
    cls = "PASS"
    if direction in ("increase", "either") and lo > bound and (ratio is None or ratio >= allowed[1]):
        cls = "HIGH"
    elif direction in ("decrease", "either") and hi < -bound and (ratio is None or ratio <= allowed[0]):
        cls = "LOW"
    return {"classification": cls, "p": p, "estimate": est, "lower": lo, "upper": hi, "ratio": ratio,
            "n_canary": len(c), "n_baseline": len(b), "zero_test": "HIGH" if lo > 0 else "LOW" if hi < 0 else "PASS"}


def main():
    d = data()
    # JSON has no NaN: a missing sample is written as null.
    nulls = {k: [[None if math.isnan(v) else v for v in side] for side in pair] for k, pair in d.items()}
    out = {"data": nulls, "metrics": {
        "latency": classify(*d["latency"], direction="increase", allowed=(1.0, 1.02)),
        "slight": classify(*d["slight"]),
        "errors": classify(*d["errors"], direction="increase", outliers=True),
        "empty": classify(*d["empty"]),
        "same": classify(*d["same"]),
    }}
    # Groups: latency (latency, slight) weight 60; errors (errors, empty, same) weight 40.
    groups = {"latency": ["latency", "slight"], "errors": ["errors", "empty", "same"]}
    weights = {"latency": 60.0, "errors": 40.0}
    score = 0.0
    for g, names in groups.items():
        labels = [out["metrics"][n]["classification"] for n in names]
        counted = [l for l in labels if l != "NODATA"]
        gs = 100.0 if not counted else 100.0 * counted.count("PASS") / len(counted)
        out.setdefault("groups", {})[g] = gs
        score += gs * weights[g] / 100
    out["score"] = round(score, 2)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
