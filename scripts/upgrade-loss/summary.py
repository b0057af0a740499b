#!/usr/bin/env python3
"""Sums matrix.sh's JSON lines: upgrades, answers, requests lost (by kind) and
the idle closes clients saw before they reused a connection. Lines starting
with `==` begin a new group (e.g. `== OLD` and `== NEW` around two runs)."""
import json
import statistics
import sys

groups = {}
name = "all"
for line in sys.stdin:
    if line.startswith("=="):
        name = line[2:].strip()
        continue
    if not line.strip():
        continue
    run = json.loads(line)
    g = groups.setdefault(name, {"runs": 0, "upgrades": 0, "answered": 0, "lost": {}, "stale": 0, "secs": [], "left": 0})
    g["runs"] += 1
    g["upgrades"] += run["upgrades"]
    g["answered"] += run["answered"]
    g["stale"] += run["stale"]
    g["secs"] += run["upgrade_s"]
    g["left"] += len(run["left"])
    for kind, n in run["losses"].items():
        g["lost"][kind] = g["lost"].get(kind, 0) + n
for name, g in groups.items():
    secs = statistics.median(g["secs"]) if g["secs"] else 0
    print(f"{name}: {g['runs']} runs, {g['upgrades']} upgrades (median {secs:.3f} s), {g['answered']} answered, "
          f"lost {sum(g['lost'].values())} {g['lost']}, idle closes seen before reuse {g['stale']}, processes left {g['left']}")
