#!/usr/bin/env python3
"""Writes a `git fast-import` stream of a repository with --commits commits (seeded): many authors,
files across directories, edits, additions, deletions, renames and merges."""
import argparse, random, sys

ap = argparse.ArgumentParser()
ap.add_argument("--commits", type=int, default=5000)
ap.add_argument("--seed", type=int, default=1)
a = ap.parse_args()
R = random.Random(a.seed)
out = sys.stdout.buffer
files = {}
dirs = ["src/api", "src/core", "src/db", "migrations", "docs", "tests", "web/js", "config"]
authors = ["dev%d <dev%d@example.com>" % (i, i) for i in range(40)]
t = 1_600_000_000
mark = 0
def blob(text):
    global mark
    mark += 1
    b = text.encode()
    out.write(b"blob\nmark :%d\ndata %d\n" % (mark, len(b)) + b + b"\n")
    return mark
prev = None
for c in range(a.commits):
    ops = []
    for _ in range(R.choice([1, 1, 2, 3, 5, 8])):
        r = R.random()
        if r < 0.2 or not files:
            path = "%s/f%d.%s" % (R.choice(dirs), R.randrange(10**6), R.choice(["rs", "py", "sql", "md", "toml"]))
            files[path] = ["line %d %d" % (i, R.randrange(10**9)) for i in range(R.randrange(5, 200))]
            ops.append(("M", path))
        elif r < 0.9:
            path = R.choice(list(files))
            lines = files[path]
            for _ in range(R.randrange(1, 20)):
                i = R.randrange(len(lines) + 1)
                if R.random() < 0.6 or not lines:
                    lines.insert(i, "new %d" % R.randrange(10**9))
                else:
                    del lines[min(i, len(lines) - 1)]
            ops.append(("M", path))
        elif r < 0.95 and len(files) > 5:
            path = R.choice(list(files))
            del files[path]
            ops.append(("D", path))
        else:
            path = R.choice(list(files))
            new = "%s/r%d.rs" % (R.choice(dirs), R.randrange(10**6))
            files[new] = files.pop(path)
            ops.append(("D", path))
            ops.append(("M", new))
    marks = {}
    for op, path in ops:
        if op == "M" and path in files:
            marks[path] = blob("\n".join(files[path]) + "\n")
    t += R.randrange(60, 20000)
    who = R.choice(authors)
    msg = R.choice(["fix bug in %s", "add %s", "refactor %s", "update %s"]) % R.choice(dirs)
    mb = msg.encode()
    mark += 1
    cm = mark
    out.write(b"commit refs/heads/main\nmark :%d\nauthor %s %d +0000\ncommitter %s %d +0000\ndata %d\n%s\n" % (
        cm, who.encode(), t, who.encode(), t, len(mb), mb))
    if prev:
        out.write(b"from :%d\n" % prev)
    for op, path in ops:
        if op == "D":
            out.write(b"D %s\n" % path.encode())
        elif path in marks:
            out.write(b"M 100644 :%d %s\n" % (marks[path], path.encode()))
    out.write(b"\n")
    prev = cm
