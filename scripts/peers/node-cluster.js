// Node peer for scripts/compare.sh: the classic cluster example.
// The primary forks one worker per CPU; every worker answers "hello world\n".
// Balancing is chosen by NODE_CLUSTER_SCHED_POLICY=rr|none (read by the cluster module).
// Env: PORT (required), HOST (default 127.0.0.1), WORKERS (default: CPUs available).
'use strict';
const cluster = require('node:cluster');
const http = require('node:http');
const os = require('node:os');

const port = Number(process.env.PORT);
const host = process.env.HOST || '127.0.0.1';
if (!Number.isInteger(port) || port <= 0) {
  console.error('node-cluster.js: set PORT');
  process.exit(2);
}

if (cluster.isPrimary) {
  const n = Number(process.env.WORKERS) ||
    (os.availableParallelism ? os.availableParallelism() : os.cpus().length);
  const policy = cluster.schedulingPolicy === cluster.SCHED_RR ? 'rr' : 'none';
  console.error(`node-cluster: primary ${process.pid}, ${n} workers, sched ${policy}, port ${port}`);
  let stopping = false;
  for (let i = 0; i < n; i++) cluster.fork();
  cluster.on('exit', (w, code, sig) => {
    if (!stopping) console.error(`node-cluster: worker ${w.process.pid} died (${sig || code})`);
    if (stopping && Object.keys(cluster.workers).length === 0) process.exit(0);
  });
  const stop = () => {
    if (stopping) return;
    stopping = true;
    if (Object.keys(cluster.workers).length === 0) process.exit(0);
    for (const w of Object.values(cluster.workers)) w.process.kill('SIGTERM');
    setTimeout(() => process.exit(0), 3000).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
} else {
  const body = 'hello world\n';
  http.createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': body.length });
    res.end(body);
  }).listen(port, host);
}
