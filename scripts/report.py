#!/usr/bin/env python3
"""Turn one compare.sh run directory into results/compare.md, compare.png and a JSON dump.

    report.py --run WORKDIR --out RESULTS_DIR [--stamp STAMP]

WORKDIR layout (written by compare.sh):
    meta.env                       key=value: machine and settings
    servers.txt                    "name kind port master_pid" per line, in SERVERS order
    runs/r<N>/<server>.<scenario>.wrk      wrk --latency output
    runs/r<N>/<server>.<scenario>.cpu0|1   procsnap.py JSON just before / just after wrk
    runs/r<N>/<server>.<scenario>.stats0|1 ringmaster only: JSON stats line before / after
    runs/r<N>/<server>.stalled.healthy.wrk the healthy churn run the stalled one is compared with
    runs/r<N>/<server>.unequal.pipelined.wrk the pipelined half of the unequal run (.wrk: the churn half)
"""
import argparse
import glob
import json
import os
import re
import shutil
import statistics
import sys

SCENARIO_TITLES = {
    "keepalive": "keep-alive",
    "pipeline": "pipelined",
    "churn": "churn (Connection: close)",
    "stalled": "stalled worker (churn, one worker stopped for part of the run)",
    "unequal": "unequal connections (half pipelined, half one request per connection)",
}
# Scenarios with a table of their own (the others share the generic one).
BALANCING = ("stalled", "unequal")

TIME_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


# ------------------------------------------------------------------ parsing
def parse_time(s):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", s.strip())
    if not m:
        raise ValueError(f"bad wrk time {s!r}")
    return float(m.group(1)) * TIME_UNITS[m.group(2)]


def parse_wrk(path):
    text = open(path).read()
    out = {"file": path}
    m = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.M)
    if not m:
        raise ValueError(f"{path}: no 'Requests/sec' line; wrk output:\n{text}")
    out["rps"] = float(m.group(1))
    m = re.search(r"^\s*(\d+) requests in ([\d.]+\w+),", text, re.M)
    out["requests"] = int(m.group(1)) if m else None
    out["duration_s"] = parse_time(m.group(2)) if m else None
    lat = {}
    for pm in re.finditer(r"^\s+(\d+)%\s+([\d.]+\w+)\s*$", text, re.M):
        lat[int(pm.group(1))] = parse_time(pm.group(2))
    # wrk sometimes prints a percentile as 0.00us (seen with pipelining: its coordinated-omission
    # correction adds samples the percentile walk does not reach); never report that as a latency
    out["bad_percentiles"] = sorted(p for p, v in lat.items() if v <= 0)
    out["p50_s"] = lat.get(50) if lat.get(50) else None
    out["p99_s"] = lat.get(99) if lat.get(99) else None
    errs = 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        out["socket_errors"] = dict(zip(("connect", "read", "write", "timeout"), map(int, m.groups())))
        errs += sum(map(int, m.groups()))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if m:
        out["non2xx"] = int(m.group(1))
        errs += int(m.group(1))
    out["errors"] = errs
    return out


def load_json(path):
    try:
        with open(path) as f:
            line = f.read().strip().splitlines()
        return json.loads(line[-1]) if line else None
    except (OSError, ValueError, IndexError):
        return None


def parse_times(path):
    """bash `times` output -> CPU seconds of the shell's reaped children (2nd line: user sys)."""
    try:
        lines = open(path).read().strip().splitlines()
        vals = re.findall(r"(\d+)m([\d.]+)s", lines[-1])
        return sum(int(m) * 60 + float(sec) for m, sec in vals)
    except (OSError, IndexError, ValueError):
        return None


def cpu_delta(before, after):
    """Ticks used between two procsnap snapshots: master + all descendants, and per worker."""
    b, a = before["procs"], after["procs"]
    root = str(after["root"])
    total, per_worker, lost = 0, {}, []
    for pid, pa in a.items():
        pb = b.get(pid)
        if pb is not None and pb["start"] == pa["start"]:
            d = pa["ticks"] - pb["ticks"]
        else:
            d = pa["ticks"]            # born during the run
        total += d
        if str(pa["ppid"]) == root:
            per_worker[pid] = d
    for pid, pb in b.items():
        if pid not in a:
            lost.append(pid)           # died during the run: its last ticks are unknown
    return total, per_worker, lost


def stats_delta(s0, s1, key="requests"):
    """ringmaster stats lines -> {worker id: `key` (requests answered, connections accepted) between them}."""
    if not s0 or not s1:
        return None
    r0 = {w["id"]: w.get(key, 0) for w in s0.get("workers", [])}
    out = {}
    for w in s1.get("workers", []):
        out[w["id"]] = w.get(key, 0) - r0.get(w["id"], 0)
    return out


def jain(xs):
    xs = [float(x) for x in xs]
    if not xs or sum(xs) <= 0:
        return None
    return sum(xs) ** 2 / (len(xs) * sum(x * x for x in xs))


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


# ------------------------------------------------------------------ formatting
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def shown_path(path):
    """Where a file written here is, as the report names it: relative to the repository when
    inside it (the report is read there), absolute otherwise (RESULTS_DIR may be anywhere)."""
    path = os.path.abspath(path)
    rel = os.path.relpath(path, REPO)
    return path if rel == os.pardir or rel.startswith(os.pardir + os.sep) else rel


def fmt_rps(x):
    if x is None:
        return "n/a"
    return f"{x:,.0f}"


def fmt_time(s):
    if s is None:
        return "n/a"
    if s < 1e-3:
        return f"{s * 1e6:.0f} µs"
    if s < 1:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.2f} s"


def fmt_ratio(x):
    return "n/a" if x is None else f"{x:.2f}×"


def fmt_pct(x):
    return "n/a" if x is None else f"{x * 100:.0f} %"


def fmt_num(x, nd=0):
    return "n/a" if x is None else f"{x:,.{nd}f}"


# ------------------------------------------------------------------ main
def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--stamp", default=None)
    args = ap.parse_args()

    meta = {}
    with open(os.path.join(args.run, "meta.env")) as f:
        for line in f:
            if "=" in line:
                k, v = line.rstrip("\n").split("=", 1)
                meta[k] = v
    stamp = args.stamp or meta.get("stamp", "run")
    clk = int(meta.get("clk_tck", "100"))

    servers = []   # [(name, kind)]
    with open(os.path.join(args.run, "servers.txt")) as f:
        for line in f:
            parts = line.split()
            if parts:
                servers.append((parts[0], parts[1]))
    kinds = dict(servers)
    names = [s for s, _ in servers]
    scenarios = meta.get("scenarios", "keepalive pipeline churn").split()

    # per run records
    runs = []
    problems = []
    for rdir in sorted(glob.glob(os.path.join(args.run, "runs", "r*")),
                       key=lambda p: int(os.path.basename(p)[1:])):
        rnd = int(os.path.basename(rdir)[1:])
        for name in names:
            for sc in scenarios:
                base = os.path.join(rdir, f"{name}.{sc}")
                if not os.path.exists(base + ".wrk"):
                    continue
                rec = {"server": name, "kind": kinds[name], "scenario": sc, "round": rnd}
                rec.update(parse_wrk(base + ".wrk"))
                rec["timeouts"] = rec.get("socket_errors", {}).get("timeout", 0)
                if sc == "stalled" and os.path.exists(base + ".healthy.wrk"):
                    healthy = parse_wrk(base + ".healthy.wrk")
                    rec["healthy_rps"] = healthy["rps"]
                    rec["healthy_timeouts"] = healthy.get("socket_errors", {}).get("timeout", 0)
                    rec["stall_ratio"] = rec["rps"] / healthy["rps"] if healthy["rps"] else None
                    stopped = load_json(base + ".wrk.stopped")
                    try:
                        victim = int(open(base + ".wrk.victim").read().strip())
                    except (OSError, ValueError):
                        victim = None
                    if stopped and victim is not None:
                        def of_victim(stats, key):
                            return sum(w.get(key, 0) for w in (stats or {}).get("workers", [])
                                       if w.get("pid") == victim)
                        # open on it, plus (steered by load) what waited in its queue as it stopped and
                        # the master did not take and hand on during the run (it also takes those sent
                        # after the look, so at most what waited counts out)
                        rescued = of_victim(load_json(base + ".stats1"), "rescued") - of_victim(stopped, "rescued")
                        # (rr, least) plus the batch handed to it and not acknowledged: in its socket
                        rec["held_at_stop"] = (of_victim(stopped, "live") + of_victim(stopped, "unacked")
                                               + max(0, of_victim(stopped, "waiting") - rescued))
                if sc == "unequal" and os.path.exists(base + ".pipelined.wrk"):
                    piped = parse_wrk(base + ".pipelined.wrk")
                    rec["churn_rps"], rec["pipelined_rps"] = rec["rps"], piped["rps"]
                    rec["rps"] += piped["rps"]
                    if rec["requests"] is not None and piped["requests"] is not None:
                        rec["requests"] += piped["requests"]
                    rec["p99_churn_s"], rec["p99_pipelined_s"] = rec["p99_s"], piped["p99_s"]
                    rec["p99_s"] = max((x for x in (rec["p99_s"], piped["p99_s"]) if x is not None), default=None)
                    rec["errors"] += piped["errors"]
                    rec["timeouts"] += piped.get("socket_errors", {}).get("timeout", 0)
                c0, c1 = load_json(base + ".cpu0"), load_json(base + ".cpu1")
                if c0 and c1:
                    ticks, per_w, lost = cpu_delta(c0, c1)
                    rec["cpu_s"] = ticks / clk
                    rec["cpu_per_worker_s"] = {k: v / clk for k, v in per_w.items()}
                    rec["cpu_window_s"] = c1["t"] - c0["t"]
                    if lost:
                        problems.append(f"{name} {sc} round {rnd}: process(es) {', '.join(lost)} "
                                        "exited during the run; their CPU time is missing")
                    w0, w1 = parse_times(base + ".wrk.times0"), parse_times(base + ".wrk.times1")
                    if w0 is not None and w1 is not None:
                        rec["wrk_cpu_s"] = w1 - w0
                    if "sys_busy" in c0 and "sys_busy" in c1:
                        busy = (c1["sys_busy"] - c0["sys_busy"]) / clk
                        cap = (c1["sys_total"] - c0["sys_total"]) / clk
                        if cap > 0 and rec.get("wrk_cpu_s") is not None:
                            # CPU the whole machine spent on neither the server nor wrk: other load
                            # (other users, builds) plus softirq work not charged to either
                            rec["other_cpu_frac"] = max(0.0, busy - rec["cpu_s"] - rec["wrk_cpu_s"]) / cap
                    if rec["requests"] and rec["cpu_s"] > 0:
                        rec["req_per_cpu_s"] = rec["requests"] / rec["cpu_s"]
                        rec["cpu_us_per_req"] = rec["cpu_s"] * 1e6 / rec["requests"]
                if kinds[name] == "ringmaster":
                    d = stats_delta(load_json(base + ".stats0"), load_json(base + ".stats1"))
                    if d is None:
                        problems.append(f"{name} {sc} round {rnd}: no stats line before/after the run")
                    else:
                        rec["split_source"] = "requests"
                        rec["split"] = {str(k): v for k, v in sorted(d.items())}
                        rec["server_requests"] = sum(d.values())
                        # What rr balances is connections: their split is the fairness of the mode itself.
                        conns = stats_delta(load_json(base + ".stats0"), load_json(base + ".stats1"), "accepted")
                        if conns and sum(conns.values()) > 0:
                            rec["conn_split"] = {str(k): v for k, v in sorted(conns.items())}
                            rec["conn_jain"] = jain(conns.values())
                elif rec.get("cpu_per_worker_s"):
                    rec["split_source"] = "cpu"
                    # order workers by pid for a stable display
                    rec["split"] = {k: v for k, v in sorted(rec["cpu_per_worker_s"].items(), key=lambda kv: int(kv[0]))}
                if rec.get("split"):
                    rec["jain"] = jain(rec["split"].values())
                if rec["bad_percentiles"]:
                    problems.append(f"{name} {sc} round {rnd}: wrk printed 0.00us for the "
                                    f"{'/'.join(str(p) + '%' for p in rec['bad_percentiles'])} latency "
                                    "percentile(s) (a wrk quirk); left out of the median")
                if rec["errors"]:
                    problems.append(f"{name} {sc} round {rnd}: wrk counted {rec['errors']} errors "
                                    f"({rec.get('socket_errors', {})}, non-2xx {rec.get('non2xx', 0)})")
                runs.append(rec)
    if not runs:
        sys.exit(f"report.py: no runs found under {args.run}/runs")

    busy = [r["other_cpu_frac"] for r in runs if r.get("other_cpu_frac") is not None]
    noisy = [x for x in busy if x > 0.25]
    if noisy:
        problems.insert(0, f"the machine was busy: in {len(noisy)} of {len(busy)} runs more than 25 % of "
                           f"its CPU went to other work (max {max(noisy) * 100:.0f} %, see 'other CPU'); "
                           "treat these numbers as rough and rerun on a quiet machine")

    # aggregate
    agg = {}
    for sc in scenarios:
        for name in names:
            rs = [r for r in runs if r["server"] == name and r["scenario"] == sc]
            if not rs:
                continue
            a = {
                "rounds": len(rs),
                "rps": median(r["rps"] for r in rs),
                "rps_min": min(r["rps"] for r in rs),
                "rps_max": max(r["rps"] for r in rs),
                "p50_s": median(r.get("p50_s") for r in rs),
                "p99_s": median(r.get("p99_s") for r in rs),
                "req_per_cpu_s": median(r.get("req_per_cpu_s") for r in rs),
                "cpu_us_per_req": median(r.get("cpu_us_per_req") for r in rs),
                "errors": sum(r["errors"] for r in rs),
                "other_cpu_frac": median(r.get("other_cpu_frac") for r in rs),
                "wrk_cpu_us_per_req": median((r["wrk_cpu_s"] * 1e6 / r["requests"])
                                             if r.get("wrk_cpu_s") is not None and r["requests"] else None
                                             for r in rs),
                "jain": median(r.get("jain") for r in rs),
                "conn_jain": median(r.get("conn_jain") for r in rs),
                "jain_min": min((r["jain"] for r in rs if r.get("jain") is not None), default=None),
                "timeouts": sum(r.get("timeouts", 0) for r in rs),
                "healthy_rps": median(r.get("healthy_rps") for r in rs),
                "stall_ratio": median(r.get("stall_ratio") for r in rs),
                "held_at_stop": sum(r["held_at_stop"] for r in rs if r.get("held_at_stop") is not None)
                if any(r.get("held_at_stop") is not None for r in rs) else None,
                # timeouts beyond what the stopped worker held: new connections sent to it after the stop
                "new_stuck": sum(max(0, r.get("timeouts", 0) - r["held_at_stop"]) for r in rs
                                 if r.get("held_at_stop") is not None)
                if any(r.get("held_at_stop") is not None for r in rs) else None,
                "p99_churn_s": median(r.get("p99_churn_s") for r in rs),
                "p99_pipelined_s": median(r.get("p99_pipelined_s") for r in rs),
                "split_source": next((r["split_source"] for r in rs if r.get("split_source")), None),
            }
            # split: each worker's share of the sum over all rounds (workers in display order)
            tot = {}
            for r in rs:
                for i, (k, v) in enumerate((r.get("split") or {}).items()):
                    key = k if a["split_source"] == "requests" else str(i + 1)
                    tot[key] = tot.get(key, 0) + v
            s = sum(tot.values())
            a["split_shares"] = [v / s for v in tot.values()] if s > 0 else None
            srv = [r.get("server_requests") for r in rs if r.get("server_requests") is not None]
            wrk_req = [r["requests"] for r in rs if r.get("server_requests") is not None and r["requests"]]
            if srv and wrk_req:
                a["server_over_wrk"] = sum(srv) / sum(wrk_req)
            agg[(name, sc)] = a
    for sc in scenarios:
        base = agg.get(("nginx", sc))
        for name in names:
            a = agg.get((name, sc))
            if a:
                a["vs_nginx"] = (a["rps"] / base["rps"]) if base and base["rps"] else None

    # ------------------------------------------------------------------ markdown
    L = []
    L.append("# ringmaster vs nginx vs Node cluster")
    L.append("")
    L.append(f"Run `{stamp}` by `scripts/compare.sh`{' --quick' if meta.get('quick') == '1' else ''}: "
             f"wrk -t{meta.get('threads')} -c{meta.get('conns')} -d{meta.get('duration')} --latency, "
             f"{meta.get('rounds')} round(s) per server and scenario, servers taken in turn inside each round "
             f"(A B C, B C A, C A B …: each round starts one server later), {meta.get('workers')} workers per server, "
             f"{meta.get('warmup')} unmeasured warm-up per server. All numbers are medians over the rounds.")
    L.append("")
    L.append("## Machine")
    L.append("")
    L.append("| | |")
    L.append("|---|---|")
    for k, label in (("date", "date"), ("nproc", "nproc"), ("cpu_model", "CPU"), ("kernel", "kernel"),
                     ("wrk_version", "wrk"), ("nginx_version", "nginx"), ("node_version", "node"),
                     ("ringmaster_git", "ringmaster (git describe)")):
        if meta.get(k):
            L.append(f"| {label} | {meta[k]} |")
    L.append(f"| load generator | wrk on the same machine, {'pinned to CPU ' + meta['wrk_cpus'] if meta.get('wrk_cpus') else 'not pinned'}; "
             f"nginx worker_cpu_affinity {'auto' if meta.get('nginx_affinity') == '1' else 'off'} |")
    if meta.get('sched'):
        L.append(f"| scheduling | every server's processes under SCHED_{meta['sched'].upper()} (`SCHED={meta['sched']}`) |")
    L.append("")

    L.append("## Servers")
    L.append("")
    L.append("| server | command |")
    L.append("|---|---|")
    for name in names:
        try:
            cmd = open(os.path.join(args.run, "servers", name, "cmd")).read().strip()
        except OSError:
            cmd = "?"
        cmd = cmd.replace(os.path.join(args.run, "servers", name), "<dir>")
        cmd = re.sub(r"--bind 127\.0\.0\.1:\d+", "--bind 127.0.0.1:<port>", cmd)
        cmd = re.sub(r"PORT=\d+", "PORT=<port>", cmd)
        cmd = re.sub(r"\S*/scripts/", "scripts/", cmd)
        cmd = re.sub(r"^\S*/ringmaster ", "ringmaster ", cmd)
        L.append(f"| {name} | `{cmd}` |")
    L.append("")
    L.append("nginx: `scripts/peers/nginx.conf.template` (`return 200 \"hello world\\n\"`, access_log off, "
             "keepalive_requests 1000000000); Node: `scripts/peers/node-cluster.js` (cluster.fork() per worker, "
             "http.createServer answering `hello world\\n`).")
    L.append("")

    for sc in scenarios:
        L.append(f"## {SCENARIO_TITLES.get(sc, sc)}")
        L.append("")
        if sc in BALANCING:
            balancing_table(L, sc, names, agg, meta)
            continue
        L.append("| server | req/s | min–max | vs nginx | p50 | p99 | req per CPU-s | CPU µs/req | worker split | Jain | Jain (conns) | errors | other CPU |")
        L.append("|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|")
        for name in names:
            a = agg.get((name, sc))
            if not a:
                continue
            if a["split_shares"]:
                split = "/".join(f"{x * 100:.0f}" for x in a["split_shares"]) + f" % ({a['split_source']})"
            else:
                split = "n/a"
            j = fmt_num(a["jain"], 3)
            if a["jain_min"] is not None and a["rounds"] > 1:
                j += f" (min {a['jain_min']:.3f})"
            L.append(f"| {name} | {fmt_rps(a['rps'])} | {fmt_rps(a['rps_min'])}–{fmt_rps(a['rps_max'])} | "
                     f"{fmt_ratio(a.get('vs_nginx'))} | {fmt_time(a['p50_s'])} | {fmt_time(a['p99_s'])} | "
                     f"{fmt_num(a['req_per_cpu_s'])} | {fmt_num(a['cpu_us_per_req'], 1)} | {split} | {j} | "
                     f"{fmt_num(a.get('conn_jain'), 3)} | {a['errors']} | {fmt_pct(a['other_cpu_frac'])} |")
        L.append("")
        paired_table(L, sc, names, runs)

    L.append("## How to read it")
    L.append("")
    depth = meta.get("pipeline_depth", "16")
    L.append(f"- **Scenarios.** keep-alive: one request in flight per connection. pipelined: "
             f"`scripts/pipeline.lua` writes {depth} requests at once and waits for all {depth} responses; "
             f"wrk counts every response, and its latency is per batch (write → last response); wrk's "
             f"coordinated-omission correction assumes one response per interval, so read pipelined "
             f"percentiles as rough. "
             f"churn: `-H 'Connection: close'`, one request per TCP connection.")
    L.append("- **req/s** is wrk's Requests/sec; **min–max** is the spread over rounds; **vs nginx** is the "
             "median divided by nginx's median in the same run and scenario.")
    L.append("- **Round by round** (with 2 or more rounds): the servers of a round run one after another, so a "
             "ratio taken within each round leaves out how the machine's speed drifted over the run; the median "
             "of those ratios and the count of rounds ahead say more than the ratio of two medians when the "
             "rounds spread widely.")
    L.append("- **req per CPU-s / CPU µs/req**: wrk's request count divided by the server's CPU time "
             "(utime+stime from /proc/<pid>/stat of the master and every descendant, sampled just before "
             "and just after each wrk run, CLK_TCK=" + str(clk) + "). Kernel work done in softirq on "
             "behalf of the server is not always charged to it, so compare these between servers, "
             "not against an absolute.")
    L.append("- **worker split**: each worker's share over all rounds. `(requests)`: ringmaster's own "
             "per-worker request counts (SIGUSR1 stats line before/after each run, diffed). `(cpu)`: nginx "
             "and Node do not report per-worker requests, so their split is each worker's CPU time (a proxy: "
             "it also contains per-connection and idle-loop costs; Node's primary, which accepts and "
             "hands out connections in rr mode, is not a worker and is left out of the split but counted "
             "in CPU/req). **Jain (conns)**: the same index over the connections each ringmaster worker accepted "
             "(what `rr` balances, exactly; how many requests each connection then makes is up to the client). "
             "**Jain** = (Σx)²/(n·Σx²) over the workers, 1.0 = perfectly even, 1/n = one worker "
             "took everything; median over rounds (min in brackets).")
    L.append(f"- **wrk -t{meta.get('threads')}**: the machine has {meta.get('nproc')} cores and the servers use "
             f"{meta.get('workers')} workers, so the load generator shares the CPUs with the server under test. "
             "One wrk thread is the default: it is one core's worth of client for every server alike, "
             "and it leaves the server's workers the rest; with 2 threads wrk takes both cores and the "
             "result is decided by who wins the scheduler fight rather than by the server. On a 2-core box "
             "absolute numbers are modest and client-bound in part; the ratios are what to read.")
    L.append("- **errors**: wrk socket errors (connect/read/write/timeout) plus non-2xx responses, summed over rounds.")
    L.append("- **other CPU**: share of the whole machine's CPU (all cores, /proc/stat) during the run that went "
             "to neither the server nor wrk (wrk's own CPU is measured from the script's reaped-children "
             "times): other users' work such as builds, plus softirq time not charged to either. A few % is "
             "normal; a large value means that round was disturbed and its numbers are less trustworthy.")
    wk = [(n, sc, agg[(n, sc)]["wrk_cpu_us_per_req"]) for sc in scenarios for n in names
          if (n, sc) in agg and agg[(n, sc)].get("wrk_cpu_us_per_req") is not None]
    if wk:
        L.append("- **wrk's own CPU µs per request** (the client's cost, for scale): "
                 + ", ".join(f"{n} {sc} {x:.1f}" for n, sc, x in wk) + ".")
    cross = [(n, sc, agg[(n, sc)]["server_over_wrk"]) for sc in scenarios for n in names
             if (n, sc) in agg and agg[(n, sc)].get("server_over_wrk") is not None]
    if cross:
        L.append("- **cross-check**: requests counted by ringmaster ÷ responses counted by wrk "
                 "(slightly above 1 is expected: requests in flight when wrk stops are answered but not counted): "
                 + ", ".join(f"{n} {sc} {x:.4f}" for n, sc, x in cross) + ".")
    L.append("")
    if problems:
        L.append("## Problems seen")
        L.append("")
        for p in problems:
            L.append(f"- {p}")
        L.append("")
    json_path = os.path.join(args.out, f"compare-{stamp}.json")
    png_path = os.path.join(args.out, "compare.png")
    L.append(f"Raw data: `{shown_path(json_path)}`; chart: `{shown_path(png_path)}`.")
    L.append("")
    md = "\n".join(L)

    os.makedirs(args.out, exist_ok=True)
    md_path = os.path.join(args.out, "compare.md")
    with open(md_path, "w") as f:
        f.write(md)
    shutil.copyfile(md_path, os.path.join(args.out, f"compare-{stamp}.md"))
    with open(json_path, "w") as f:
        json.dump({"meta": meta,
                   "aggregate": [dict(server=n, scenario=sc, **agg[(n, sc)]) for sc in scenarios for n in names
                                 if (n, sc) in agg],
                   "runs": runs}, f, indent=1, default=str)

    png = chart(names, scenarios, agg, meta, png_path)
    if png:
        shutil.copyfile(png, os.path.join(args.out, f"compare-{stamp}.png"))
    print(md)
    print(f"wrote {md_path}" + (f" and {png}" if png else " (no chart: matplotlib missing)"), file=sys.stderr)


def round_ratios(runs, sc, name, ref, key):
    """`name`'s `key` over `ref`'s, round by round, in the rounds both ran."""
    by = {}
    for r in runs:
        if r["scenario"] == sc and r["server"] in (name, ref) and r.get(key) is not None:
            by.setdefault(r["round"], {})[r["server"]] = r[key]
    return [v[name] / v[ref] for _, v in sorted(by.items()) if name in v and ref in v and v[ref]]


def paired_table(L, sc, names, runs):
    """Each server against nginx and against its `-base` build, round by round: the ratio of the
    two in each round (servers of a round run one after the other, so the machine's drift over the
    run cancels), its median, and in how many rounds the server was ahead."""
    rows = []
    for name in names:
        refs = [ref for ref in ("nginx", name + "-base") if ref != name and ref in names]
        for ref in refs:
            rps = round_ratios(runs, sc, name, ref, "rps")
            if len(rps) < 2:
                continue
            cpu = round_ratios(runs, sc, name, ref, "req_per_cpu_s")
            cpu_cell = (f"{median(cpu):.3f}× | {sum(x > 1 for x in cpu)} of {len(cpu)}"
                        if cpu else "n/a | n/a")
            rows.append(f"| {name} | {ref} | {median(rps):.3f}× | {sum(x > 1 for x in rps)} of {len(rps)} | "
                        f"{min(rps):.2f}–{max(rps):.2f} | {cpu_cell} |")
    if not rows:
        return
    L.append("Round by round: each server's ratio to another in the same round, the median of those ratios, "
             "and the rounds in which it was ahead.")
    L.append("")
    L.append("| server | against | req/s, median ratio | ahead | range | req per CPU-s, median ratio | ahead |")
    L.append("|---|---|---:|---:|---:|---:|---:|")
    L.extend(rows)
    L.append("")


def balancing_table(L, sc, names, agg, meta):
    """The stalled and unequal scenarios' own columns."""
    if sc == "stalled":
        L.append(f"{meta.get('stall', '')}. The healthy run is the same load just before, without the stop; "
                 "timeouts are wrk's (requests unanswered after the timeout), summed over rounds; held: the "
                 "connections the stopped worker had open as it stopped, plus the batch handed to it and not "
                 "acknowledged where the master hands connections over (`rr`, `least`), plus those waiting in its queue where "
                 "the stats line counts them (`reuseport --steer load`) (ringmaster's stats line right after "
                 "the stop, summed over rounds) less those the master took from its queue and handed on "
                 "(`rescued`, over the run), which no balancer can take back; new stuck: timeouts beyond "
                 "held, per round, summed: new connections sent to the stopped worker after it stopped.")
        L.append("")
        L.append("| server | healthy req/s | stalled req/s | stalled/healthy | timeouts | held | new stuck | p99 | "
                 "Jain (conns) | Jain | other CPU |")
        L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for name in names:
            a = agg.get((name, sc))
            if a:
                L.append(f"| {name} | {fmt_rps(a['healthy_rps'])} | {fmt_rps(a['rps'])} | "
                         f"{fmt_num(a['stall_ratio'], 2)} | {a['timeouts']} | {fmt_num(a.get('held_at_stop'))} | "
                         f"{fmt_num(a.get('new_stuck'))} | "
                         f"{fmt_time(a['p99_s'])} | "
                         f"{fmt_num(a.get('conn_jain'), 3)} | {fmt_num(a['jain'], 3)} | {fmt_pct(a['other_cpu_frac'])} |")
    else:
        L.append(f"{meta.get('unequal', '')}. req/s adds both halves; p99 of each half as wrk measured it "
                 "(the pipelined half's per batch of requests).")
        L.append("")
        L.append("| server | req/s | vs nginx | p99 churn | p99 pipelined | timeouts | Jain (conns) | Jain | "
                 "other CPU |")
        L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for name in names:
            a = agg.get((name, sc))
            if a:
                L.append(f"| {name} | {fmt_rps(a['rps'])} | {fmt_ratio(a.get('vs_nginx'))} | "
                         f"{fmt_time(a['p99_churn_s'])} | {fmt_time(a['p99_pipelined_s'])} | {a['timeouts']} | "
                         f"{fmt_num(a.get('conn_jain'), 3)} | {fmt_num(a['jain'], 3)} | {fmt_pct(a['other_cpu_frac'])} |")
    L.append("")


def chart(names, scenarios, agg, meta, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker  # noqa: F401
    except ImportError:
        return None
    ncol = len(scenarios)
    fig, axes = plt.subplots(2, ncol, figsize=(4.2 * ncol + 1, 8), squeeze=False)
    cmap = plt.get_cmap("tab10")
    colors = {n: cmap(i % 10) for i, n in enumerate(names)}
    for c, sc in enumerate(scenarios):
        present = [n for n in names if (n, sc) in agg]
        xs = range(len(present))
        for row, key, title in ((0, "rps", "requests/s (median, bars: min–max)"),
                                (1, "cpu_us_per_req", "server CPU µs per request (median)")):
            ax = axes[row][c]
            vals = [agg[(n, sc)].get(key) or 0 for n in present]
            kw = {}
            if key == "rps":
                lo = [v - agg[(n, sc)]["rps_min"] for n, v in zip(present, vals)]
                hi = [agg[(n, sc)]["rps_max"] - v for n, v in zip(present, vals)]
                kw = dict(yerr=[lo, hi], capsize=3)
            bars = ax.bar(xs, vals, color=[colors[n] for n in present], **kw)
            for b, v in zip(bars, vals):
                label = f"{v / 1000:.1f}k" if key == "rps" else f"{v:.1f}"
                ax.annotate(label, (b.get_x() + b.get_width() / 2, b.get_height()),
                            ha="center", va="bottom", fontsize=7, xytext=(0, 2), textcoords="offset points")
            ax.margins(y=0.12)
            if key == "rps":
                ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(
                    lambda v, _: "0" if v == 0 else (f"{v / 1e6:g}M" if v >= 1e6 else f"{v / 1e3:g}k")))
            ax.set_xticks(list(xs))
            ax.set_xticklabels(present, rotation=35, ha="right", fontsize=8)
            ax.set_title(f"{SCENARIO_TITLES.get(sc, sc)}\n{title}", fontsize=9)
            ax.grid(axis="y", alpha=0.3)
            ax.set_axisbelow(True)
    fig.suptitle(f"ringmaster vs nginx vs Node cluster — wrk -t{meta.get('threads')} -c{meta.get('conns')} "
                 f"-d{meta.get('duration')}, {meta.get('rounds')} round(s), {meta.get('nproc')} CPUs "
                 f"({meta.get('cpu_model', '?')}), {meta.get('date', '')}", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


if __name__ == "__main__":
    main()
