#!/usr/bin/env python3
"""Reference values for `features/tests/it/stats.rs` (omen's canary-versus-baseline statistics).

The Rust tests embed the numbers this script prints; they never run Python. To regenerate:

    python3 -m venv /tmp/statsvenv
    /tmp/statsvenv/bin/pip install scipy numpy pymannkendall
    /tmp/statsvenv/bin/python features/tests/it/stats_reference.py > /tmp/generated.rs

and paste the output between the `BEGIN GENERATED` and `END GENERATED` markers of stats.rs.
Generated with SciPy 1.17.1, NumPy 2.4.6, pymannkendall 1.4.3.

Where the numbers come from:
- Mann-Whitney U: `scipy.stats.mannwhitneyu(x, y, alternative=..., method=..., use_continuity=True)`
  on the samples without NaN (SciPy refuses NaN; omen drops and counts them).
- Hodges-Lehmann: R's `wilcox.test(x, y, conf.int=TRUE)` re-implemented below (R is not
  available here). Exact case: qwilcox from the exact null distribution counted with Python
  integers, the interval `c(diffs[qu], diffs[mn - qu + 1])` of the sorted outer differences, the
  estimate their median. Asymptotic case: R's statistic W(d) (ranks of c(x - d, y) with the tie
  and continuity corrections), its crossings of +-qnorm(alpha/2) found with `scipy.optimize.brentq`
  as R does with `uniroot` (but to 1e-12 instead of R's 1e-4), and the estimate the median of the
  differences. The script asserts that these roots equal the closed-form order statistics
  omen uses.
- Quantiles and means: `numpy.quantile` (default `method='linear'`) and `numpy.mean`.
- Two proportions: pooled z from `scipy.stats.norm`; Fisher from `scipy.stats.fisher_exact`.
- Poisson rates: `scipy.stats.binomtest(k_c, k_c + k_b, e_c / (e_c + e_b), alternative)`.
- Regression: `scipy.stats.linregress`. Mann-Kendall: `pymannkendall.original_test`.
- EWMA and Western Electric rules: the straightforward definitions written out below with NumPy.
- Distributions: `scipy.special.ndtr`, `ndtri`, `gammaln`, `betainc`, `scipy.stats.t`,
  `binom` and `hypergeom` (cdf, sf). Log-probabilities are computed exactly (Python integers and
  fractions, then a 50-digit logarithm): SciPy 1.17's `hypergeom.logpmf(0, 2000, 1000, 3)` is
  off by 3e-12, more than the tolerance omen is held to.
- `linregress` of a constant y: SciPy 1.17 answers NaN for r, p and the standard errors; omen
  answers r = 0, p = 1, standard errors 0 (no NaN leaves omen), and the test checks that.
"""

import math

import numpy as np
import pymannkendall
import scipy
from scipy import optimize, special, stats

PHI = 0.6180339887498949


class Series(list):
    """Values of `series(...)`, remembering its arguments so that the Rust side regenerates them."""

    params = None


def series(n, seed, scale, offset, step=0.0):
    """Deterministic test data, computed identically by `series` in stats.rs."""
    out = Series()
    for i in range(n):
        u = ((i + seed) * PHI) % 1.0
        v = offset + scale * u
        if step > 0.0:
            v = math.floor(v / step) * step
        out.append(v)
    out.params = (n, seed, scale, offset, step)
    return out


def f(v):
    v = float(v)
    if math.isnan(v):
        return "f64::NAN"
    if math.isinf(v):
        return "f64::INFINITY" if v > 0 else "f64::NEG_INFINITY"
    r = repr(v)
    return r


def arr(vs):
    return "&[" + ", ".join(f(v) for v in vs) + "]"


def sample(vs):
    """A `Sample` of stats.rs: the values, or the `series` call that makes them."""
    if isinstance(vs, Series) and vs.params is not None:
        n, seed, scale, offset, step = vs.params
        return f"Sample::Series({n}, {seed}, {f(scale)}, {f(offset)}, {f(step)})"
    return f"Sample::Values({arr(vs)})"


def alt_rs(alt):
    return {"two-sided": "TwoSided", "greater": "Greater", "less": "Less"}[alt]


def clean(v):
    return [x for x in v if not math.isnan(x)]


# --------------------------------------------------------------------------- Mann-Whitney

def mwu_cases():
    small_x = [1.1, 2.3, 3.5]
    small_y = [0.2, 0.9, 1.5, 4.1]
    cases = [
        # (name, x, y, alternative, method)
        ("ties", [1, 2, 2, 3, 4, 5, 5, 6], [2, 3, 3, 4, 7, 8, 8, 9, 10], "two-sided", "auto"),
        ("ties_greater", [1, 2, 2, 3, 4, 5, 5, 6], [2, 3, 3, 4, 7, 8, 8, 9, 10], "greater", "auto"),
        ("ties_less", [1, 2, 2, 3, 4, 5, 5, 6], [2, 3, 3, 4, 7, 8, 8, 9, 10], "less", "auto"),
        ("identical_constant", [5.0] * 5, [5.0] * 5, "two-sided", "auto"),
        ("identical_constant_greater", [5.0] * 5, [5.0] * 7, "greater", "auto"),
        ("identical_series", [1, 2, 3, 4, 5], [1, 2, 3, 4, 5], "two-sided", "auto"),
        ("tiny_exact", small_x, small_y, "two-sided", "auto"),
        ("tiny_exact_greater", small_x, small_y, "greater", "auto"),
        ("tiny_exact_less", small_x, small_y, "less", "auto"),
        ("one_each", [3.0], [1.0], "two-sided", "auto"),
        ("exact_8_12", series(8, 3, 10.0, 1.0), series(12, 50, 10.0, 0.5), "two-sided", "auto"),
        ("exact_8_12_less", series(8, 3, 10.0, 1.0), series(12, 50, 10.0, 0.5), "less", "auto"),
        ("exact_5_300", series(5, 7, 10.0, 2.0), series(300, 100, 10.0, 0.0), "greater", "auto"),
        ("forced_exact_20_20", series(20, 1, 10.0, 1.0), series(20, 200, 10.0, 0.0), "two-sided", "exact"),
        ("forced_asymptotic_small", small_x, small_y, "two-sided", "asymptotic"),
        ("asymptotic_9_10", series(9, 11, 5.0, 0.0), series(10, 31, 5.0, 1.0), "two-sided", "auto"),
        ("large_ties", series(200, 5, 20.0, 100.0, 0.5), series(300, 77, 20.0, 101.0, 0.5), "two-sided", "auto"),
        ("large_shift_greater", series(400, 9, 50.0, 120.0), series(500, 400, 50.0, 100.0), "greater", "auto"),
        ("with_nan", [1.5, float("nan"), 2.5, 7.0, float("nan"), 3.25, 9.0, 4.0, 8.5, 6.0],
         [2.0, 3.0, float("nan"), 1.0, 0.5, 5.5, 4.5, 3.5, 2.75, 1.25], "two-sided", "auto"),
        ("with_inf", [1.0, float("inf"), 3.0, 4.0, float("inf"), 6.0, 7.0, 8.0, 9.0, 10.0],
         [2.0, float("-inf"), 5.0, 0.5, 1.5, 2.5, 3.5, float("inf"), 4.5, 5.5], "two-sided", "auto"),
    ]
    out = []
    for name, x, y, alt, method in cases:
        xc, yc = clean(x), clean(y)
        r = stats.mannwhitneyu(xc, yc, alternative=alt, method=method, use_continuity=True)
        n1, n2 = len(xc), len(yc)
        ranks, t = stats.rankdata(np.concatenate([xc, yc])), None
        ties = len(np.unique(np.concatenate([xc, yc]))) < n1 + n2
        if method == "auto":
            used = "asymptotic" if (n1 > 8 and n2 > 8) or ties else "exact"
        else:
            used = method
        out.append((name, x, y, alt, method, float(r.statistic), n1 * n2 - float(r.statistic), float(r.pvalue), used,
                    len(x) - n1, len(y) - n2))
    return out


def emit_mwu():
    print("pub const MWU: &[MwuRef] = &[")
    for name, x, y, alt, method, u1, u2, p, used, nanx, nany in mwu_cases():
        print(f"    MwuRef {{ name: {name!r}, x: {sample(x)}, y: {sample(y)}, alternative: Alternative::{alt_rs(alt)}, "
              f"method: MwuMethod::{method.capitalize()}, u1: {f(u1)}, u2: {f(u2)}, p_value: {f(p)}, "
              f"exact: {'true' if used == 'exact' else 'false'}, nan_x: {nanx}, nan_y: {nany} }},".replace("'", '"'))
    print("];")


# --------------------------------------------------------------------------- Hodges-Lehmann (R)

def wilcox_counts(m, n):
    """Exact null frequencies of U (Python integers)."""
    # c(k; m, n) = c(k - n; m - 1, n) + c(k; m, n - 1)
    from functools import lru_cache

    @lru_cache(maxsize=None)
    def c(k, m, n):
        if k < 0 or k > m * n:
            return 0
        if m == 0 or n == 0:
            return 1 if k == 0 else 0
        return c(k - n, m - 1, n) + c(k, m, n - 1)

    return [c(k, m, n) for k in range(m * n + 1)]


def qwilcox(p, m, n):
    counts = wilcox_counts(m, n)
    total = math.comb(m + n, n)
    p = p - 10 * np.finfo(float).eps
    acc = 0
    for q, cnt in enumerate(counts):
        acc += cnt
        if acc / total >= p:
            return q
    return len(counts) - 1


def r_hl(x, y, conf):
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    m, n = len(x), len(y)
    alpha = 1 - conf
    diffs = np.sort(np.subtract.outer(x, y).ravel())
    estimate = float(np.median(diffs))
    r = stats.rankdata(np.concatenate([x, y]))
    ties = len(np.unique(r)) != len(r)
    if m < 50 and n < 50 and not ties:
        qu = qwilcox(alpha / 2, m, n)
        if qu == 0:
            qu = 1
        ql = m * n - qu
        return estimate, float(diffs[qu - 1]), float(diffs[ql]), "exact"

    def W(d, correct=True):
        dr = stats.rankdata(np.concatenate([x - d, y]))
        _, nties = np.unique(dr, return_counts=True)
        dz = dr[:m].sum() - m * (m + 1) / 2 - m * n / 2
        corr = np.sign(dz) * 0.5 if correct else 0.0
        sigma = math.sqrt((m * n / 12) * ((m + n + 1) - (nties ** 3 - nties).sum() / ((m + n) * (m + n - 1))))
        return (dz - corr) / sigma

    mumin, mumax = x.min() - y.max(), x.max() - y.min()
    wmin, wmax = W(mumin), W(mumax)

    def root(zq):
        if wmin - zq <= 0:
            return mumin
        if wmax - zq >= 0:
            return mumax
        return optimize.brentq(lambda d: W(d) - zq, mumin, mumax, xtol=1e-13, rtol=1e-15, maxiter=500)

    lower = root(stats.norm.isf(alpha / 2))
    upper = root(stats.norm.ppf(alpha / 2))
    # The closed form omen uses: the same crossings as order statistics of the differences.
    mn = m * n
    _, tx = np.unique(x, return_counts=True)
    _, ty = np.unique(y, return_counts=True)
    N = m + n
    sigma = math.sqrt(mn / 12 * ((N + 1) - ((tx ** 3 - tx).sum() + (ty ** 3 - ty).sum()) / (N * (N - 1))))
    z = stats.norm.isf(alpha / 2)
    a = mn / 2 - 0.5 - z * sigma
    b = mn / 2 + 0.5 + z * sigma
    c = 1 if a < 0 else min(math.floor(a) + 1, mn)
    k = max(1, min(math.floor(b) + 1, mn))
    assert abs(diffs[c - 1] - lower) <= 1e-9 * max(1.0, abs(lower)), (diffs[c - 1], lower)
    assert abs(diffs[k - 1] - upper) <= 1e-9 * max(1.0, abs(upper)), (diffs[k - 1], upper)
    return estimate, float(lower), float(upper), "asymptotic"


def emit_hl():
    cases = [
        ("r_help_example", [1.83, 0.50, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.30], [0.878, 0.647, 0.598, 2.05, 1.06, 1.29, 1.06, 3.14, 1.29], 0.95),
        ("exact_no_ties", [1.83, 0.50, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.30], [0.878, 0.647, 0.598, 2.05, 1.06, 1.291, 1.061, 3.14, 1.29], 0.95),
        ("exact_90", series(12, 4, 10.0, 3.0), series(15, 40, 10.0, 1.0), 0.90),
        ("exact_tiny", [2.0], [1.0, 5.0], 0.95),
        ("exact_3_4", [1.1, 2.3, 3.5], [0.2, 0.9, 1.5, 4.1], 0.80),
        ("exact_49", series(49, 2, 30.0, 10.0), series(45, 60, 30.0, 5.0), 0.99),
        ("asymptotic_ties", [1, 2, 2, 3, 4, 5, 5, 6], [2, 3, 3, 4, 7, 8, 8, 9, 10], 0.95),
        ("asymptotic_large", series(60, 1, 40.0, 105.0), series(70, 500, 40.0, 100.0), 0.95),
        ("asymptotic_large_ties", series(300, 3, 20.0, 101.0, 0.25), series(250, 90, 20.0, 100.0, 0.25), 0.95),
        ("asymptotic_huge", series(2500, 13, 60.0, 102.0), series(2100, 900, 60.0, 100.0), 0.95),
    ]
    print("pub const HL: &[HlRef] = &[")
    for name, x, y, conf in cases:
        est, lo, hi, method = r_hl(x, y, conf)
        print(f"    HlRef {{ name: \"{name}\", x: {sample(x)}, y: {sample(y)}, confidence: {f(conf)}, estimate: {f(est)}, "
              f"lower: {f(lo)}, upper: {f(hi)}, exact: {'true' if method == 'exact' else 'false'} }},")
    print("];")


# --------------------------------------------------------------------------- summaries

def emit_summary():
    data = [
        ("odd", [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0, 5.0]),
        ("even", [10.5, 2.25, 7.0, 3.5, 8.0, 1.0]),
        ("one", [42.0]),
        ("with_nan", [1.0, float("nan"), 3.0, 2.0, float("nan"), 10.0]),
        ("latencies", series(1000, 17, 250.0, 20.0, 0.1)),
    ]
    qs = [0.0, 0.01, 0.25, 0.5, 0.9, 0.99, 1.0]
    print(f"pub const QUANTILE_QS: [f64; {len(qs)}] = {arr(qs)[1:]};".replace("&[", "["))
    print("pub const QUANTILES: &[QuantileRef] = &[")
    for name, v in data:
        c = np.array(clean(v))
        qv = [float(np.quantile(c, q)) for q in qs]
        print(f"    QuantileRef {{ name: \"{name}\", data: {sample(v)}, mean: {f(np.mean(c))}, quantiles: {arr(qv)} }},")
    print("];")


# --------------------------------------------------------------------------- error rates

def pooled_z(ec, nc, eb, nb, alt):
    p = (ec + eb) / (nc + nb)
    se = math.sqrt(p * (1 - p) * (1 / nc + 1 / nb))
    z = (ec / nc - eb / nb) / se if se > 0 else 0.0
    if alt == "greater":
        pv = stats.norm.sf(z)
    elif alt == "less":
        pv = stats.norm.cdf(z)
    else:
        pv = 2 * stats.norm.sf(abs(z))
    return z, min(1.0, pv)


def emit_rates():
    cases = [
        (0, 1000, 3, 1000), (3, 1000, 0, 1000), (1, 10, 0, 12), (7, 7, 0, 5), (0, 1000, 0, 1000),
        (2, 50000, 9, 60000), (5, 1000, 1, 1000), (50, 1000, 30, 1000), (500, 10000, 450, 10000),
        (120, 2000, 160, 2500), (4, 20, 4, 20),
    ]
    print("pub const PROPORTIONS: &[ProportionRef] = &[")
    for ec, nc, eb, nb in cases:
        table = [[ec, nc - ec], [eb, nb - eb]]
        N = nc + nb
        errors = ec + eb
        min_expected = min(nc, nb) * min(errors, N - errors) / N
        for alt in ["two-sided", "greater", "less"]:
            z, pz = pooled_z(ec, nc, eb, nb, alt)
            if min_expected < 5:
                p = float(stats.fisher_exact(table, alternative=alt).pvalue)
                fisher = "true"
            else:
                p = pz
                fisher = "false"
            print(f"    ProportionRef {{ canary: ({ec}, {nc}), baseline: ({eb}, {nb}), alternative: Alternative::{alt_rs(alt)}, "
                  f"z: {f(z)}, p_value: {f(p)}, fisher: {fisher} }},")
    print("];")
    pcases = [
        (0, 100.0, 3, 100.0), (3, 100.0, 0, 100.0), (10, 50.0, 5, 100.0), (1, 1.0, 0, 3.0), (5, 1.0, 5, 1.0),
        (1000, 3600.0, 900, 3600.0), (17, 1234.5, 3, 987.25), (3000000, 1.0, 2990000, 1.0), (0, 60.0, 1, 600.0),
    ]
    print("pub const POISSON: &[PoissonRef] = &[")
    for kc, ec, kb, eb in pcases:
        for alt in ["two-sided", "greater", "less"]:
            n = kc + kb
            p0 = ec / (ec + eb)
            pv = 1.0 if n == 0 else float(stats.binomtest(kc, n, p0, alternative=alt).pvalue)
            print(f"    PoissonRef {{ canary: ({kc}, {f(ec)}), baseline: ({kb}, {f(eb)}), alternative: Alternative::{alt_rs(alt)}, p_value: {f(pv)} }},")
    print("];")


# --------------------------------------------------------------------------- trends

def emit_trend():
    cases = [
        ("leak", list(range(10)), [0.1 * i + (0.3 if i % 3 == 0 else -0.2) for i in range(10)]),
        ("noise", [float(i) for i in range(50)], series(50, 8, 2.0, -1.0)),
        ("perfect", [0.0, 1.0, 2.0, 3.0, 4.0], [1.0, 3.0, 5.0, 7.0, 9.0]),
        ("constant_y", [0.0, 1.0, 2.0, 3.0], [2.5, 2.5, 2.5, 2.5]),
        ("three", [1.0, 2.0, 4.0], [2.0, 1.0, 5.0]),
        ("irregular_time", [0.0, 15.0, 30.0, 60.0, 75.0, 120.0, 135.0, 180.0], [1.0, 1.2, 0.9, 1.5, 1.7, 1.6, 2.2, 2.0]),
        ("with_nan", [0.0, 1.0, 2.0, float("nan"), 4.0, 5.0, 6.0], [1.0, 2.5, float("nan"), 3.0, 4.5, 4.0, 6.5]),
    ]
    print("pub const LINREG: &[LinregRef] = &[")
    for name, t, y in cases:
        pairs = [(a, b) for a, b in zip(t, y) if not (math.isnan(a) or math.isnan(b))]
        tt = [p[0] for p in pairs]
        yy = [p[1] for p in pairs]
        r = stats.linregress(tt, yy)
        print(f"    LinregRef {{ name: \"{name}\", t: {arr(t)}, y: {sample(y)}, slope: {f(r.slope)}, intercept: {f(r.intercept)}, "
              f"r: {f(r.rvalue)}, p_value: {f(r.pvalue)}, stderr: {f(r.stderr)}, intercept_stderr: {f(r.intercept_stderr)} }},")
    print("];")
    mk = [
        ("rising", [1.0, 2.3, 2.1, 3.5, 4.0, 3.9, 5.2, 6.1, 5.8, 7.0]),
        ("ties", [1.0, 1.0, 2.0, 2.0, 2.0, 3.0, 1.0, 4.0, 4.0, 5.0, 3.0, 6.0]),
        ("falling_noise", [-v for v in series(40, 3, 5.0, 0.0, 0.5)]),
        ("flat", [2.0, 2.0, 2.0, 2.0, 2.0]),
        ("three", [3.0, 1.0, 2.0]),
        ("with_nan_inf", [1.0, float("nan"), 2.0, float("inf"), 3.0, 2.5, float("-inf"), 4.0]),
    ]
    print("pub const MANN_KENDALL: &[MkRef] = &[")
    for name, y in mk:
        c = clean(y)
        r = pymannkendall.original_test(np.array(c, dtype=float))
        p = 2 * stats.norm.sf(abs(r.z))
        print(f"    MkRef {{ name: \"{name}\", y: {sample(y)}, s: {f(r.s)}, var_s: {f(r.var_s)}, z: {f(r.z)}, tau: {f(r.Tau)}, "
              f"p_value: {f(p)} }},")
    print("];")


# --------------------------------------------------------------------------- control charts

def ewma_ref(reference, series_, lam, L):
    mu = np.mean(reference)
    sigma = np.std(reference, ddof=1)
    z = mu
    first = None
    count = 0
    t = 0
    for i, x in enumerate(series_):
        if math.isnan(x):
            continue
        t += 1
        z = lam * x + (1 - lam) * z
        width = L * sigma * math.sqrt(lam / (2 - lam) * (1 - (1 - lam) ** (2 * t)))
        if abs(z - mu) > width:
            count += 1
            if first is None:
                first = i
    return mu, sigma, first, count, z


def western_electric_ref(reference, series_):
    mu = np.mean(reference)
    sigma = np.std(reference, ddof=1)
    pts = [(i, x - mu) for i, x in enumerate(series_) if not math.isnan(x)]

    def side(d, k):
        return 1 if d > k * sigma else (-1 if d < -k * sigma else 0)

    counts = [0, 0, 0, 0]
    first = None
    for j, (i, d) in enumerate(pts):
        fired = False
        if side(d, 3) != 0:
            counts[0] += 1
            fired = True
        last3 = [p[1] for p in pts[max(0, j - 2): j + 1]]
        s = side(d, 2)
        if s != 0 and sum(1 for v in last3 if side(v, 2) == s) >= 2:
            counts[1] += 1
            fired = True
        last5 = [p[1] for p in pts[max(0, j - 4): j + 1]]
        s = side(d, 1)
        if s != 0 and sum(1 for v in last5 if side(v, 1) == s) >= 4:
            counts[2] += 1
            fired = True
        last8 = [p[1] for p in pts[max(0, j - 7): j + 1]]
        s = side(d, 0)
        if s != 0 and len(last8) == 8 and all(side(v, 0) == s for v in last8):
            counts[3] += 1
            fired = True
        if fired and first is None:
            first = i
    return mu, sigma, counts, first


def opt(v):
    return "None" if v is None else f"Some({v})"


def emit_control():
    reference = series(30, 5, 2.0, 9.0)
    cases = [
        ("step_up", reference, [10.0, 10.2, 9.9, 10.1, 11.5, 11.8, 11.6, 11.9, 12.0, 11.7, 11.8, 12.1], 0.2, 3.0),
        ("in_control", reference, series(20, 40, 2.0, 9.0), 0.2, 3.0),
        ("spike_then_nan", reference, [10.0, float("nan"), 16.0, 10.0, 9.5, float("nan"), 10.4], 0.3, 2.5),
        ("slow_drift", reference, [10.0 + 0.08 * i for i in range(40)], 0.1, 2.7),
        ("below", reference, [9.0, 8.6, 8.7, 8.4, 8.5, 8.8, 8.3, 8.6, 8.7, 8.2], 1.0, 3.0),
    ]
    print(f"pub const CONTROL_REFERENCE: Sample = {sample(reference)};")
    print("pub const CONTROL: &[ControlRef] = &[")
    for name, ref, s, lam, L in cases:
        mu, sigma, first, count, last = ewma_ref(ref, s, lam, L)
        _, _, rules, we_first = western_electric_ref(ref, s)
        print(f"    ControlRef {{ name: \"{name}\", series: {sample(s)}, lambda: {f(lam)}, l: {f(L)}, center: {f(mu)}, sigma: {f(sigma)}, "
              f"ewma_first: {opt(first)}, ewma_violations: {count}, ewma_last: {f(last)}, rules: [{', '.join(map(str, rules))}], "
              f"rules_first: {opt(we_first)} }},")
    print("];")


# --------------------------------------------------------------------------- distributions

def exact_ln(fr):
    """ln of a positive Fraction to about 30 digits."""
    import decimal

    decimal.getcontext().prec = 50
    return float(decimal.Decimal(fr.numerator).ln() - decimal.Decimal(fr.denominator).ln())


def exact_binom_logpmf(k, n, p):
    from fractions import Fraction

    p = Fraction(p)
    return exact_ln(math.comb(n, k) * p ** k * (1 - p) ** (n - k))


def exact_hypergeom_logpmf(x, M, K, N):
    from fractions import Fraction

    return exact_ln(Fraction(math.comb(K, x) * math.comb(M - K, N - x), math.comb(M, N)))


def emit_dist():
    xs = [-40.0, -38.0, -10.0, -5.7, -3.0, -1.0, -0.5, 0.0, 1e-10, 0.3, 0.67, 0.7, 2.0, 5.0, 8.0, 10.0, 37.0]
    print("pub const NDTR: &[(f64, f64, f64)] = &[")
    for x in xs:
        print(f"    ({f(x)}, {f(special.ndtr(x))}, {f(stats.norm.sf(x))}),")
    print("];")
    ps = [1e-300, 1e-20, 1e-10, 0.001, 0.02, 0.075, 0.3, 0.5, 0.7, 0.925, 0.99, 1 - 1e-10]
    print("pub const NDTRI: &[(f64, f64)] = &[")
    for p in ps:
        print(f"    ({f(p)}, {f(special.ndtri(p))}),")
    print("];")
    gs = [1e-8, 0.1, 0.5, 1.0, 1.5, 2.0, 2.5, 3.7, 9.99, 10.0, 25.3, 100.0, 1e5, 1e10]
    print("pub const GAMMALN: &[(f64, f64)] = &[")
    for g in gs:
        print(f"    ({f(g)}, {f(special.gammaln(g))}),")
    print("];")
    bs = [(0.5, 0.5, 0.3), (2.0, 3.0, 0.4), (10.0, 0.5, 0.9), (0.5, 10.0, 0.01), (50.0, 60.0, 0.45), (1.0, 1.0, 0.77),
          (200.0, 0.5, 0.999), (3.5, 7.25, 0.99), (1000.0, 1000.0, 0.49)]
    print("pub const BETAINC: &[(f64, f64, f64, f64)] = &[")
    for a, b, x in bs:
        print(f"    ({f(a)}, {f(b)}, {f(x)}, {f(special.betainc(a, b, x))}),")
    print("];")
    ts = [(0.0, 5.0), (1.0, 1.0), (-2.5, 3.0), (2.0, 10.0), (12.0, 4.0), (0.3, 100.0), (4.5, 998.0), (-1e-3, 7.0), (40.0, 2.0)]
    print("pub const STUDENT_T: &[(f64, f64, f64)] = &[")
    for t, df in ts:
        print(f"    ({f(t)}, {f(df)}, {f(stats.t.sf(t, df))}),")
    print("];")
    bins = [(0, 10, 0.3), (3, 10, 0.3), (10, 10, 0.3), (0, 1000, 0.003), (7, 1000, 0.003), (480, 1000, 0.5),
            (1, 2, 0.999), (5000, 10000, 0.51), (2, 7, 0.0001)]
    print("pub const BINOM: &[(u64, u64, f64, f64, f64, f64)] = &[")
    for k, n, p in bins:
        print(f"    ({k}, {n}, {f(p)}, {f(exact_binom_logpmf(k, n, p))}, {f(stats.binom.cdf(k, n, p))}, {f(stats.binom.sf(k, n, p))}),")
    print("];")
    big = [(1_499_000, 3_000_000, 0.5), (1_502_500, 3_000_000, 0.5), (2_995_000, 5_990_000, 0.5008347245409015)]
    print("pub const BINOM_LARGE: &[(u64, u64, f64, f64, f64)] = &[")
    for k, n, p in big:
        print(f"    ({k}, {n}, {f(p)}, {f(stats.binom.cdf(k, n, p))}, {f(stats.binom.sf(k, n, p))}),")
    print("];")
    hyp = [(0, 2000, 1000, 3), (3, 2000, 1000, 3), (1, 22, 10, 1), (4, 40, 20, 8), (10, 100, 30, 40), (0, 10, 10, 3),
           (2, 110000, 50000, 11)]
    print("pub const HYPERGEOM: &[(u64, u64, u64, u64, f64, f64, f64)] = &[")
    for x, M, K, N in hyp:
        print(f"    ({x}, {M}, {K}, {N}, {f(exact_hypergeom_logpmf(x, M, K, N))}, {f(stats.hypergeom.cdf(x, M, K, N))}, "
              f"{f(stats.hypergeom.sf(x, M, K, N))}),")
    print("];")


def main():
    print(f"// SciPy {scipy.__version__}, NumPy {np.__version__}, pymannkendall {pymannkendall.__version__}")
    emit_dist()
    emit_mwu()
    emit_hl()
    emit_summary()
    emit_rates()
    emit_trend()
    emit_control()


if __name__ == "__main__":
    main()
