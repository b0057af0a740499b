#!/usr/bin/env python3
"""One run: a master (mode, backend, 2 workers, --no-pin) from a copy of the
binary, the load of load.py for SECS, and UPGRADES `ctl upgrade`s in a row
spaced GAP s apart while it runs. Prints one JSON line.

usage: run.py BINARY MODE BACKEND PORT [SECS] [UPGRADES] [GAP]   (see matrix.sh)
"""
import json, os, shutil, signal, subprocess, sys, tempfile, time

binary, mode, backend, port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
secs = float(sys.argv[5]) if len(sys.argv) > 5 else 14
upgrades = int(sys.argv[6]) if len(sys.argv) > 6 else 5
gap = float(sys.argv[7]) if len(sys.argv) > 7 else 1.5
extra = os.environ.get("EXTRA", "").split()
here = os.path.dirname(os.path.abspath(__file__))

d = tempfile.mkdtemp(prefix="rm-upg-%s-%s-" % (mode, backend))
exe = os.path.join(d, "ringmaster")
shutil.copy(binary, exe)
ctlsock = os.path.join(d, "control.sock")
log = open(os.path.join(d, "log"), "w")
master = subprocess.Popen([exe, "--bind", "127.0.0.1:%d" % port, "--mode", mode, "--backend", backend,
                           "--workers", "2", "--no-pin", "--control", ctlsock, "--shutdown-timeout", "10"] + extra,
                          stdout=log, stderr=subprocess.STDOUT)
pids = [master.pid]


def ctl(*args):
    p = subprocess.run([exe, "ctl", ctlsock] + list(args), capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout.strip(), p.stderr.strip()




def give_up(why):
    # Not ready: say so and stop, rather than load whatever else answers on the
    # port (or nothing) and count its failures as requests lost to upgrades.
    if master.poll() is None:
        master.kill()
        master.wait()
    log.close()
    print(json.dumps({"mode": mode, "backend": backend, "error": why, "dir": d}), flush=True)
    with open(os.path.join(d, "log")) as f:
        sys.stderr.write("run.py: %s %s on port %d: %s; its log (%s):\n%s" % (mode, backend, port, why, d, f.read()[-2000:]))
    sys.exit(1)


deadline = time.time() + 20
ready = False
while time.time() < deadline and not ready:
    if master.poll() is not None:
        give_up("the master exited (status %s) before it was ready" % master.returncode)
    if os.path.exists(ctlsock):
        code, out, _ = ctl("status")
        if code == 0:
            try:
                st = json.loads(out)
                ready = len([w for w in st.get("workers", []) if w.get("state") == "ready"]) >= 2
            except Exception:
                pass
    if not ready:
        time.sleep(0.1)
if not ready:
    give_up("no 2 ready workers within 20 s")
time.sleep(0.3)

nproc = int(os.environ.get("NPROC", "1"))
loads = [subprocess.Popen([sys.executable, os.path.join(here, "load.py"), str(port), str(secs), os.environ.get("NCHURN", "16"), os.environ.get("NKA", "16")],
                        stdout=subprocess.PIPE, text=True) for _ in range(nproc)]
time.sleep(1.5)
done, errors, times = 0, [], []
for i in range(upgrades):
    t0 = time.time()
    code, out, err = ctl("upgrade")
    times.append(round(time.time() - t0, 3))
    if code == 0 and out.startswith("ok upgraded"):
        done += 1
        try:
            pids.append(int(out.split("pid ")[1].split()[0]))
        except Exception:
            pass
    else:
        errors.append(out + " " + err)
    time.sleep(gap)
res = {"answered": 0, "losses": {}, "first": [], "ka_idle_closed_seen_before_send": 0}
for load in loads:
    r = json.loads(load.communicate()[0])
    res["answered"] += r["answered"]; res["first"] += r["first"]
    res["ka_idle_closed_seen_before_send"] += r["ka_idle_closed_seen_before_send"]
    for k, v in r["losses"].items():
        res["losses"][k] = res["losses"].get(k, 0) + v
code, out, err = ctl("stop")
# wait for every master we know of to go
deadline = time.time() + 20
while time.time() < deadline and any(os.path.exists("/proc/%d" % p) and
                                      "zombie" not in open("/proc/%d/status" % p).read().lower() for p in pids):
    master.poll()
    time.sleep(0.1)
master.poll()
left = [p for p in pids if os.path.exists("/proc/%d" % p) and "zombie" not in open("/proc/%d/status" % p).read().lower()]
for p in left:
    try:
        os.kill(p, signal.SIGKILL)
    except OSError:
        pass
log.close()
# keep the binary's copy and the log only where something went wrong (or KEEP=1)
if not (res["losses"] or errors or left or os.environ.get("KEEP")):
    shutil.rmtree(d, ignore_errors=True)
print(json.dumps({"mode": mode, "backend": backend, "upgrades": done, "upgrade_s": times, "upgrade_errors": errors,
                  "answered": res["answered"], "stale": res["ka_idle_closed_seen_before_send"], "losses": res["losses"], "first": res["first"], "left": left,
                  "dir": d}), flush=True)
