#!/usr/bin/env python3
"""Writes the small sample inputs of data/samples/ (deterministic, seed 7).

Real formats, real quirks: combined logs with IPv6 clients, `-` fields, escaped quotes, a
garbage request line and a malformed line; a gzipped log with Apache %D; nginx JSON lines;
a git repository (as a bundle) with several authors, a rename, a binary file and a merge;
Prometheus query_range JSON with NaN and +Inf, exposition text with timestamps, long CSV;
deployments as JSON Lines. `omen simulate` (issue 8) will replace this with a full history.
Usage: python3 data/samples/generate.py   (from the repository root)
"""
import datetime as dt
import gzip
import json
import os
import random
import shutil
import subprocess
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
R = random.Random(7)
T0 = dt.datetime(2026, 11, 16, 0, 0, tzinfo=dt.timezone.utc)

ROUTES = [("GET", "/api/products/{}", 0.45), ("GET", "/api/cart", 0.2), ("POST", "/api/cart/items", 0.12),
          ("POST", "/api/checkout", 0.05), ("GET", "/static/app.{}.js", 0.1), ("GET", "/api/users/{}/orders", 0.08)]
UAS = ["Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
       "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
       "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
       "curl/8.5.0", "python-requests/2.31.0", "Mozilla/5.0 \\\"quoted\\\" (Windows NT 10.0) Firefox/121.0"]


def client():
    if R.random() < 0.15:
        return "2001:db8:%x::%x" % (R.randrange(16), R.randrange(4096))
    return "198.51.%d.%d" % (R.randrange(256), R.randrange(1, 255))


def request():
    x = R.random()
    acc = 0
    for m, r, p in ROUTES:
        acc += p
        if x <= acc:
            break
    if "{}" in r:
        r = r.format(R.randrange(1, 5000) if "static" not in r else "%08x" % R.getrandbits(32))
    if R.random() < 0.1:
        r += "?session=%016x&ref=mail" % R.getrandbits(64)
    return m, r


def clf(t):
    return t.strftime("%d/%b/%Y:%H:%M:%S %z")


def access_lines(n, hours, with_time):
    out = []
    for i in range(n):
        t = T0 + dt.timedelta(seconds=R.uniform(0, hours * 3600))
        m, r = request()
        status = R.choices([200, 201, 304, 404, 500], [80, 5, 8, 5, 2])[0]
        size = "-" if status == 304 else str(R.randrange(200, 40000))
        ref = R.choice(["-", "https://shop.example/", "https://shop.example/cart?id=%d" % R.randrange(99)])
        line = '%s - - [%s] "%s %s HTTP/%s" %d %s "%s" "%s"' % (
            client(), clf(t), m, r, R.choice(["1.1", "2.0"]), status, size, ref, R.choice(UAS))
        if with_time:
            line += " %d" % int(R.lognormvariate(10, 0.6))  # Apache %D, microseconds
        out.append((t, line))
    out.sort()
    lines = [l for _, l in out]
    lines.insert(n // 3, '203.0.113.9 - - [%s] "-" 400 0 "-" "-"' % clf(T0 + dt.timedelta(hours=1)))
    lines.insert(n // 2, 'this line is not an access log line')
    return lines


def write(path, text, mode="w"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, mode) as f:
        f.write(text)


def logs():
    write(f"{HERE}/logs/checkout-access.log", "\n".join(access_lines(1500, 48, False)) + "\n")
    with gzip.GzipFile(f"{HERE}/logs/search-access.log.gz", "wb", mtime=0) as f:
        f.write(("\n".join(access_lines(800, 48, True)) + "\n").encode())
    rows = []
    for i in range(400):
        t = T0 + dt.timedelta(seconds=R.uniform(0, 48 * 3600))
        m, r = request()
        rows.append((t, json.dumps({
            "time_iso8601": t.isoformat(), "remote_addr": client(), "request": f"{m} {r} HTTP/1.1",
            "status": str(R.choice([200, 200, 200, 404, 502])), "body_bytes_sent": str(R.randrange(100, 9000)),
            "request_time": "%.3f" % R.lognormvariate(-3, 0.5), "http_referer": "-",
            "http_user_agent": R.choice(UAS), "upstream_response_time": "%.3f" % R.lognormvariate(-3.2, 0.5)})))
    rows.sort()
    write(f"{HERE}/logs/api-nginx.json", "\n".join(r for _, r in rows) + "\n")


def git(repo, *args, env=None):
    subprocess.run(["git", "-C", repo, *args], check=True, env=env, capture_output=True)


def repo():
    authors = [("Ana", "ana@example.com"), ("Bo", "bo@example.com"), ("Chen", "chen@example.com"), ("Dee", "dee@example.com")]
    d = tempfile.mkdtemp()
    base = dict(os.environ, GIT_CONFIG_GLOBAL="/dev/null", GIT_CONFIG_NOSYSTEM="1")
    git(d, "init", "-q", "-b", "main", env=base)
    t = T0 - dt.timedelta(days=30)
    files = ["src/cart.rs", "src/checkout.rs", "src/pricing.rs", "migrations/001_init.sql", "Cargo.toml", "README.md"]
    for i in range(40):
        name, email = authors[R.randrange(len(authors))]
        t += dt.timedelta(hours=R.uniform(2, 30))
        env = dict(base, GIT_AUTHOR_NAME=name, GIT_AUTHOR_EMAIL=email, GIT_COMMITTER_NAME=name,
                   GIT_COMMITTER_EMAIL=email, GIT_AUTHOR_DATE=t.isoformat(), GIT_COMMITTER_DATE=t.isoformat())
        for f in R.sample(files, R.randrange(1, 4)):
            p = os.path.join(d, f)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "a") as fh:
                fh.write("".join(f"// change {i} line {k}\n" for k in range(R.randrange(1, 40))))
        if i == 12:
            with open(os.path.join(d, "assets.bin"), "wb") as fh:
                fh.write(bytes(range(256)) * 4)
        if i == 20:
            git(d, "mv", "src/pricing.rs", "src/prices.rs", env=env)
            files[2] = "src/prices.rs"
        git(d, "add", "-A", env=env)
        msg = R.choice(["add cart limits", "fix rounding bug in pricing", "refactor checkout", "bump deps", "fix crash on empty cart"])
        git(d, "commit", "-q", "-m", msg, env=env)
        if i == 30:
            git(d, "checkout", "-q", "-b", "feature", env=env)
            with open(os.path.join(d, "src/feature.rs"), "w") as fh:
                fh.write("pub fn feature() {}\n")
            git(d, "add", "-A", env=env)
            git(d, "commit", "-q", "-m", "add feature", env=env)
            git(d, "checkout", "-q", "main", env=env)
            git(d, "merge", "-q", "--no-ff", "-m", "merge feature", "feature", env=env)
    os.makedirs(f"{HERE}/repos", exist_ok=True)
    git(d, "bundle", "create", f"{HERE}/repos/checkout.bundle", "--all", env=base)
    shas = subprocess.run(["git", "-C", d, "rev-list", "--reverse", "main"], check=True, capture_output=True, text=True).stdout.split()
    shutil.rmtree(d)
    return shas


def metrics(deps):
    # The checkout samples cover the rolled-back deployment d-0003 from its canary start; the
    # memory samples carry no deployment label (omen attributes them by service and time).
    start = dt.datetime.fromisoformat(deps[3]["started_at"])
    result = []
    for role in ["canary", "baseline"]:
        for name, base in [("http_request_duration_seconds_p99", 0.25), ("http_requests_error_ratio", 0.01)]:
            vals = []
            for k in range(60):
                ts = (start + dt.timedelta(seconds=30 * k)).timestamp()
                v = base * (1.4 if role == "canary" and name.endswith("p99") and k > 30 else 1.0) * R.uniform(0.9, 1.1)
                s = "%.6f" % v
                if k == 10 and role == "canary":
                    s = "NaN"
                if k == 11 and role == "baseline" and name.endswith("p99"):
                    s = "+Inf"
                vals.append([ts, s])
            result.append({"metric": {"__name__": name, "app": "checkout", "track": role,
                                      "rollouts_pod_template_hash": "d-0003", "instance": f"10.0.0.{1 if role == 'canary' else 2}:8080"},
                           "values": vals})
        # Request and error counters (the error-rate pair of omen.toml), with a counter reset.
        total, errors, tv, ev = 0, 0, [], []
        for k in range(60):
            ts = (start + dt.timedelta(seconds=30 * k)).timestamp()
            n = R.randrange(280, 320)
            total += n
            errors += sum(R.random() < (0.02 if role == "canary" and k > 30 else 0.004) for _ in range(n))
            if k == 40 and role == "baseline":
                total, errors = n, 0
            tv.append([ts, str(total)])
            ev.append([ts, str(errors)])
        for name, vals in [("http_requests_total", tv), ("http_requests_errors_total", ev)]:
            result.append({"metric": {"__name__": name, "app": "checkout", "track": role,
                                      "rollouts_pod_template_hash": "d-0003", "instance": f"10.0.0.{1 if role == 'canary' else 2}:8080"},
                           "values": vals})
    # A load test of the new version at the full-traffic rate from minute 1 (role `loadtest`):
    # its p99 well above the baseline's, one NaN. No draws, so nothing after it changes.
    vals = []
    for k in range(2, 12):
        ts = (start + dt.timedelta(seconds=30 * k)).timestamp()
        vals.append([ts, "NaN" if k == 5 else "%.6f" % (0.25 * 1.8 * (1 + 0.02 * ((k * 7) % 5 - 2)))])
    result.append({"metric": {"__name__": "http_request_duration_seconds_p99", "app": "checkout", "track": "loadtest",
                              "rollouts_pod_template_hash": "d-0003", "instance": "10.0.0.3:8080"},
                   "values": vals})
    write(f"{HERE}/metrics/checkout-canary.json", json.dumps({"status": "success", "data": {"resultType": "matrix", "result": result}}))
    lines = ["# HELP process_resident_memory_bytes Resident memory size in bytes.",
             "# TYPE process_resident_memory_bytes gauge"]
    for k in range(30):
        ms = int((start + dt.timedelta(seconds=60 * k)).timestamp() * 1000)
        for role in ["canary", "baseline"]:
            mem = 2.0e8 + (k * 4e6 if role == "canary" else 0) + R.uniform(-1e6, 1e6)
            lines.append('process_resident_memory_bytes{service="checkout",role="%s",pod="checkout-%s-0"} %.0f %d' % (role, role, mem, ms))
    write(f"{HERE}/metrics/checkout-memory.prom", "\n".join(lines) + "\n")
    # search: a deployment whose commits were never ingested; CPU for canary and baseline.
    start = dt.datetime.fromisoformat(deps[-1]["started_at"])
    rows = ["ts,service,metric,value,role,deployment,region"]
    for k in range(40):
        ts = (start + dt.timedelta(seconds=60 * k)).isoformat()
        for role in ["canary", "baseline"]:
            rows.append(f"{ts},search,cpu_utilization,{R.uniform(0.2, 0.6):.4f},{role},d-0104,eu-west-1")
    write(f"{HERE}/metrics/search-cpu.csv", "\n".join(rows) + "\n")


def deployments(shas):
    out = []
    t = T0 - dt.timedelta(days=5)
    for i in range(6):
        t += dt.timedelta(hours=R.uniform(10, 20))
        frm, to = shas[min(len(shas) - 1, 5 * i)], shas[min(len(shas) - 1, 5 * i + 5)]
        steps = [{"at": (t + dt.timedelta(minutes=10 * k)).isoformat(), "weight": w} for k, w in enumerate([5, 25, 50, 100])]
        outcome = "rolled_back" if i == 3 else "success"
        if outcome == "rolled_back":
            steps = steps[:2]
        out.append({"deployment_id": f"d-{i:04d}", "service": "checkout", "version": f"1.{i}.0", "from_sha": frm, "to_sha": to,
                    "started_at": t.isoformat(), "ended_at": (t + dt.timedelta(minutes=40)).isoformat(), "outcome": outcome, "steps": steps})
    t = T0 + dt.timedelta(hours=20)
    out.append({"deployment_id": "d-0104", "service": "search", "version": "4.2.0", "from_sha": "1" * 40, "to_sha": "2" * 40,
                "started_at": t.isoformat(), "ended_at": (t + dt.timedelta(minutes=40)).isoformat(), "outcome": "success",
                "steps": [{"at": (t + dt.timedelta(minutes=10 * k)).isoformat(), "weight": w} for k, w in enumerate([10, 50, 100])]})
    write(f"{HERE}/deployments/deployments.jsonl", "\n".join(json.dumps(d) for d in out) + "\n")
    return out


if __name__ == "__main__":
    logs()
    shas = repo()
    metrics(deployments(shas))
