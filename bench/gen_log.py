#!/usr/bin/env python3
"""Writes a combined-format access log of about --mb megabytes to stdout (seeded, realistic mix:
IPv4 and IPv6 clients, ids in paths, query strings, many user agents, 1% garbage lines)."""
import argparse, random, sys, datetime as dt

ap = argparse.ArgumentParser()
ap.add_argument("--mb", type=float, default=120)
ap.add_argument("--seed", type=int, default=1)
a = ap.parse_args()
R = random.Random(a.seed)
paths = ["/api/products/%d", "/api/cart", "/api/users/%d/orders", "/static/app.%08x.js", "/search?q=%d&page=2",
         "/api/orders/%d/items/%d", "/healthz", "/api/checkout"]
uas = ["Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/%d.0 Safari/537.36",
       "Mozilla/5.0 (iPhone; CPU iPhone OS 17_%d like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
       "Mozilla/5.0 (compatible; Googlebot/2.%d; +http://www.google.com/bot.html)", "curl/8.%d.0",
       "python-requests/2.%d.0", "kube-probe/1.%d"]
t = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)
target = int(a.mb * 1e6)
written = 0
out = sys.stdout
buf = []
while written < target:
    t += dt.timedelta(milliseconds=R.randrange(0, 40))
    if R.random() < 0.01:
        line = "%d.%d.%d.%d - - [%s] \"\\x16\\x03\\x01\" 400 0 \"-\" \"-\"" % (
            R.randrange(1, 255), R.randrange(256), R.randrange(256), R.randrange(256), t.strftime("%d/%b/%Y:%H:%M:%S +0000"))
    else:
        p = R.choice(paths)
        n = p.count("%")
        p = p % tuple(R.randrange(1, 10**6) for _ in range(n)) if n else p
        ip = ("2001:db8::%x" % R.randrange(65536)) if R.random() < 0.2 else "%d.%d.%d.%d" % (
            R.randrange(1, 255), R.randrange(256), R.randrange(256), R.randrange(256))
        line = "%s - - [%s] \"%s %s HTTP/1.1\" %d %d \"https://shop.example/\" \"%s\"" % (
            ip, t.strftime("%d/%b/%Y:%H:%M:%S +0000"), R.choice(["GET", "GET", "GET", "POST"]), p,
            R.choice([200, 200, 200, 200, 304, 404, 500]), R.randrange(100, 50000), R.choice(uas) % R.randrange(10))
    buf.append(line)
    written += len(line) + 1
    if len(buf) >= 10000:
        out.write("\n".join(buf) + "\n")
        buf = []
if buf:
    out.write("\n".join(buf) + "\n")
