#!/usr/bin/env python3
"""drive.py NAME PORT SECS 'SERVER ARGS' 'CLIENT KINDS' 'ACTIONS' [FAULT]

Starts ringmaster ($RINGMASTER_BIN, default target/release/ringmaster; with
$NOFILE as its RLIMIT_NOFILE if set; FAULT as RINGMASTER_FAULT) on
127.0.0.1:PORT with a control socket, runs client.py with CLIENT KINDS for
SECS seconds while doing ACTIONS, stops the master with SIGTERM and prints
the client's counts and every failure not within 0.6 s after a kill -9 of a
worker (whose connections die with it). Logs, events and the client's output
stay in $OUT/NAME (without OUT, a new /tmp/ringmaster-accounting.XXXXXX, so
that two runs of one scenario never share a control socket), printed last.

ACTIONS: `;`-separated `every:LO:HI:CMD|CMD|...`, each a thread that does one
CMD picked at random every LO..HI seconds. CMDs: reload, status, upgrade,
scale:N, scaleR (1-4 workers), stopw (SIGSTOP a worker for 0.3-1.5 s),
stopw:S, kill9 (SIGKILL a worker), upgrade-stopped (a worker SIGSTOPped from
0.2 s before an upgrade to 0.5 s after it), scaledown-upgrade (`scale 1` and
20 ms later `upgrade`, then `scale 2`).
"""
import collections, os, re, resource, random, signal, subprocess, sys, tempfile, threading, time, json

name, port, secs, sargs, kinds, actions = sys.argv[1:7]
fault = sys.argv[7] if len(sys.argv) > 7 else ''
port = int(port); secs = float(secs)
HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.environ.get('RINGMASTER_BIN', os.path.join(HERE, '../../target/release/ringmaster'))
d = os.path.join(os.environ.get('OUT') or tempfile.mkdtemp(prefix='ringmaster-accounting.'), name)
os.makedirs(d, exist_ok=True)
ctl = f'{d}/ctl.sock'
try: os.unlink(ctl)
except FileNotFoundError: pass
env = dict(os.environ)
if fault: env['RINGMASTER_FAULT'] = fault
log = open(f'{d}/log', 'w'); so = open(f'{d}/stdout', 'w')
def lim():
    if os.environ.get('NOFILE'):
        n = int(os.environ['NOFILE']); resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))
srv = subprocess.Popen([BIN, '--bind', f'127.0.0.1:{port}', '--control', ctl, '--no-pin'] + sargs.split(),
                       stdout=so, stderr=log, env=env, preexec_fn=lim)
for _ in range(100):
    if os.path.exists(ctl):
        r = subprocess.run([BIN, 'ctl', ctl, 'status'], capture_output=True, text=True)
        if r.stdout.startswith('{') and all(w['state'] == 'ready' for w in json.loads(r.stdout)['workers']):
            break
    time.sleep(0.1)
else:
    print('server not ready'); srv.kill(); sys.exit(1)

ev = open(f'{d}/events', 'w')
import atexit


def leave_nothing():
    # An exception in here must not leave a master serving the port.
    m = master_pid()
    if m:
        os.kill(m, signal.SIGTERM)
    if srv.poll() is None:
        srv.terminate()


atexit.register(leave_nothing)
def event(s):
    ev.write(f'{time.time():.3f} {s}\n'); ev.flush()

def master_pid():
    # after an upgrade the master changes; find via ctl status? use ss
    r = subprocess.run(['ss', '-ltnpH', f'sport = :{port}'], capture_output=True, text=True)
    for p in set(re.findall(r'pid=(\d+)', r.stdout)):
        try:
            if open(f'/proc/{p}/cmdline', 'rb').read().startswith(b'ringmaster: master'):
                return int(p)
        except OSError: pass
    return None

def workers(m):
    r = subprocess.run(['pgrep', '-P', str(m)], capture_output=True, text=True)
    out = []
    for x in r.stdout.split():
        try:
            if open(f'/proc/{x}/cmdline', 'rb').read().startswith(b'ringmaster: worker'): out.append(int(x))
        except OSError: pass
    return out

def do(cmd):
    m = master_pid()
    if cmd.startswith('scale:'):
        n = cmd.split(':')[1]
    elif cmd == 'scaleR':
        n = str(random.randint(1, 4)); cmd = 'scale:' + n
    if cmd.startswith('scale:'):
        r = subprocess.run([BIN, 'ctl', ctl, 'scale', n], capture_output=True, text=True, timeout=30)
        event(f'{cmd} -> {r.stdout.strip()[:80]}{r.stderr.strip()[:80]}')
    elif cmd in ('reload', 'upgrade', 'status'):
        t = time.time()
        r = subprocess.run([BIN, 'ctl', ctl, cmd], capture_output=True, text=True, timeout=60)
        event(f'{cmd} ({time.time()-t:.2f}s) -> {r.stdout.strip()[:100]}{r.stderr.strip()[:100]}')
    elif cmd.startswith('stopw') or cmd == 'kill9':
        ws = workers(m) if m else []
        if not ws: event(f'{cmd}: no worker'); return
        w = random.choice(ws)
        if cmd == 'kill9':
            os.kill(w, signal.SIGKILL); event(f'kill9 {w}')
        else:
            dur = float(cmd.split(':')[1]) if ':' in cmd else random.uniform(0.3, 1.5)
            os.kill(w, signal.SIGSTOP); event(f'SIGSTOP {w} for {dur:.2f}')
            def cont(w=w):
                try: os.kill(w, signal.SIGCONT)
                except ProcessLookupError: pass
                event(f'SIGCONT {w}')
            threading.Timer(dur, cont).start()
    elif cmd.startswith('upgrade-stopped'):
        # SIGSTOP a worker, upgrade, keep it stopped a while after
        ws = workers(m) if m else []
        w = random.choice(ws) if ws else None
        if w: os.kill(w, signal.SIGSTOP); event(f'SIGSTOP {w} (for upgrade)')
        time.sleep(0.2)
        t = time.time()
        r = subprocess.run([BIN, 'ctl', ctl, 'upgrade'], capture_output=True, text=True, timeout=60)
        event(f'upgrade ({time.time()-t:.2f}s) -> {r.stdout.strip()[:100]}{r.stderr.strip()[:100]}')
        time.sleep(0.5)
        if w:
            try: os.kill(w, signal.SIGCONT)
            except ProcessLookupError: pass
            event(f'SIGCONT {w}')
    elif cmd == 'scaledown-upgrade':
        subprocess.Popen([BIN, 'ctl', ctl, 'scale', '1'], stdout=subprocess.DEVNULL)
        time.sleep(0.02)
        r = subprocess.run([BIN, 'ctl', ctl, 'upgrade'], capture_output=True, text=True, timeout=60)
        event(f'scale 1 + upgrade -> {r.stdout.strip()[:100]}{r.stderr.strip()[:100]}')
        r = subprocess.run([BIN, 'ctl', ctl, 'scale', '2'], capture_output=True, text=True, timeout=60)
    else:
        event('unknown ' + cmd)

client = subprocess.Popen(['python3', os.path.join(HERE, 'client.py'), str(port), str(secs)] + kinds.split(),
                          stdout=subprocess.PIPE, text=True)
t_end = time.monotonic() + secs - 1
specs = []
for a in filter(str.strip, actions.split(';')):
    _, lo, hi, cmds = a.split(':', 3)
    specs.append((float(lo), float(hi), cmds.split('|')))
def actor(lo, hi, cmds):
    time.sleep(random.uniform(lo, hi))
    while time.monotonic() < t_end:
        try: do(random.choice(cmds))
        except Exception as e: event(f'action error {e}')
        time.sleep(random.uniform(lo, hi))
ths = [threading.Thread(target=actor, args=s) for s in specs]
for t in ths: t.start()
cout, _ = client.communicate()
for t in ths: t.join()
open(f'{d}/client', 'w').write(cout)
m = master_pid()
time.sleep(0.5)
st = subprocess.run([BIN, 'ctl', ctl, 'status'], capture_output=True, text=True).stdout
if m: os.kill(m, signal.SIGTERM)
try: srv.wait(20)
except subprocess.TimeoutExpired: pass
time.sleep(1)
res = json.loads(cout.splitlines()[0])
print(f'{name}: total={res["total"]} fails={res["fails"]} {res["outcomes"]}')
kills = [float(e.split()[0]) for e in open(f'{d}/events').read().split('\n') if ' kill9 ' in e]
un = []
for l in cout.splitlines()[1:]:
    p = l.split()
    wall = float(p[2])
    if not any(0 <= wall - k <= 0.6 for k in kills): un.append(l)
print(f'  fails not within 0.6 s after a kill -9: {len(un)}')
for l in un[:12]: print('  ', l)
errs = [l for l in open(f'{d}/log') if ' ERROR ' in l]
for l in errs[:5]: print('  LOG', l.strip())
evs = open(f'{d}/events').read().split('\n')
print('  events:', dict(collections.Counter(e.split()[1] for e in evs if e)))
print('  logs:', d)
