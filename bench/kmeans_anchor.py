#!/usr/bin/env python3
"""The k-means benchmark's data and its anchor: writes N x D standardized rows (16 Gaussian blobs,
seeded) to a raw little-endian f64 file, or fits scikit-learn's KMeans on it and prints one JSON
line (seconds of the fit, inertia = sum of squared distances).

Usage: kmeans_anchor.py gen FILE N D SEED | kmeans_anchor.py fit FILE D K SEED
"""
import json
import sys
import time

import numpy as np


def main():
    if sys.argv[1] == "gen":
        path, n, d, seed = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
        rng = np.random.default_rng(seed)
        centers = rng.normal(0, 4, size=(16, d))
        labels = rng.integers(0, 16, size=n)
        x = centers[labels] + rng.normal(0, 1.5, size=(n, d))
        x = (x - x.mean(axis=0)) / x.std(axis=0)
        x.astype("<f8").tofile(path)
        return
    from sklearn.cluster import KMeans
    import sklearn
    path, d, k, seed = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    x = np.fromfile(path, dtype="<f8").reshape(-1, d)
    t0 = time.perf_counter()
    m = KMeans(n_clusters=k, n_init="auto", random_state=seed).fit(x)
    seconds = time.perf_counter() - t0
    print(json.dumps({"impl": f"scikit-learn {sklearn.__version__} KMeans (lloyd, n_init=auto)", "rows": len(x), "d": d, "k": k,
                      "seconds": seconds, "inertia": float(m.inertia_), "iterations": int(m.n_iter_)}))


if __name__ == "__main__":
    main()
