#!/usr/bin/env python3
"""Snapshot the CPU time of a process and all its descendants, from /proc.

    procsnap.py PID            -> one JSON object on stdout:
    {"t": <monotonic s>, "root": PID,
     "sys_busy": ticks, "sys_total": ticks,   (whole machine, from /proc/stat)
     "procs": {"<pid>": {"ppid": P, "comm": "...", "ticks": utime+stime, "start": starttime}}}

ticks are in clock ticks (getconf CLK_TCK). A process that is gone is simply absent.
Used by compare.sh just before and just after every wrk run.
"""
import json
import os
import sys
import time


def read_stat(pid):
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            s = f.read().decode("utf-8", "replace")
    except OSError:
        return None
    # comm is in parentheses and may contain spaces or ')': split at the LAST ')'.
    lp, rp = s.index("("), s.rindex(")")
    comm = s[lp + 1:rp]
    rest = s[rp + 2:].split()
    # rest[0] = state (field 3); field n is rest[n - 3]
    return {
        "ppid": int(rest[1]),
        "comm": comm,
        "ticks": int(rest[11]) + int(rest[12]),   # utime (14) + stime (15)
        "start": int(rest[19]),                   # starttime (22)
        "state": rest[0],
    }


def snapshot(root):
    procs = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = read_stat(int(d))
            if st is not None:
                procs[int(d)] = st
    children = {}
    for pid, st in procs.items():
        children.setdefault(st["ppid"], []).append(pid)
    out, todo = {}, [root]
    while todo:
        pid = todo.pop()
        if pid in procs and pid not in out:
            out[pid] = procs[pid]
            todo.extend(children.get(pid, []))
    return out


def main():
    if len(sys.argv) != 2 or not sys.argv[1].isdigit():
        sys.exit("usage: procsnap.py PID")
    root = int(sys.argv[1])
    procs = snapshot(root)
    with open("/proc/stat") as f:
        cpu = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal (guest is already inside user)
    busy = cpu[0] + cpu[1] + cpu[2] + cpu[5] + cpu[6] + (cpu[7] if len(cpu) > 7 else 0)
    total = busy + cpu[3] + cpu[4]
    json.dump({"t": time.monotonic(), "root": root, "sys_busy": busy, "sys_total": total,
               "procs": {str(k): v for k, v in sorted(procs.items())}}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
