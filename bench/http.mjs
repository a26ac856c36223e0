// Requests per second through keygate/http on a minimal node:http server, against the same
// server without the guard, with a real load generator (autocannon) in this process and each
// server in its own child process.
//
//   node bench/http.mjs                          7 runs of 6 s (+1 s warm-up each), 50 connections
//   node bench/http.mjs --duration 10 --connections 100
//
// plain and guard run twice, alternating, and are summed (a drifting machine hits both alike).
// Runs (all: POST /xmlmc/session/?method=userLogon, `Authorization: ESP-APIKEY <key>`):
//   plain           no guard: the baseline
//   guard           the guard, a key that is allowed (isAllowed on the hot path, ids remembered)
//   guard-explain   the guard made to call explain() for every request instead of isAllowed()
//   denied          the guard, a key without the right (403 no_matching_rule)
//   unknown         the guard, a well-formed key that does not exist (401 unknown_key)
// Besides req/s (the load generator shares the machine), each server reports its own CPU time
// per request, which is steadier on a small machine.

import { fork } from 'node:child_process'
import { createRequire } from 'node:module'
import http from 'node:http'
import os from 'node:os'
import { fileURLToPath } from 'node:url'

const require = createRequire(import.meta.url)
const PATH = '/xmlmc/session/?method=userLogon'
const BODY = '{"ok":true}'

if (process.argv[2] === '--serve') {
  serve(process.argv[3])
} else {
  await main()
}

// ---- child: one server ------------------------------------------------------------------

function serve(mode) {
  const { KeyStore } = require('../index.js')
  const { createGuard } = require('../lib/http.js')

  const store = KeyStore.inMemory()
  store.putUser({ id: 'bench', rights: ['*:*'] })
  const expiresAt = new Date(Date.now() + 86_400_000)
  const allowed = store.createKey({ userId: 'bench', description: 'allowed', expiresAt }).secret
  const denied = store.createKey({ userId: 'bench', description: 'denied', expiresAt, rules: ['session:getSessionInfo'] }).secret
  // A well-formed secret that was never issued: a real one, deleted.
  const gone = store.createKey({ userId: 'bench', description: 'deleted', expiresAt })
  store.deleteKey(gone.key.id)

  const handler = (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': BODY.length })
    res.end(BODY)
  }
  let listener = handler
  if (mode === 'guard') {
    listener = createGuard(store).node(handler)
  } else if (mode === 'guard-explain') {
    // The alternative design: explain() (a native call, an object) for every request.
    const explainOnly = { isAllowed: (...a) => store.explain(...a).allowed, explain: (...a) => store.explain(...a) }
    listener = createGuard(explainOnly).node(handler)
  } else if (mode !== 'plain') {
    throw new Error(`unknown mode ${mode}`)
  }
  const server = http.createServer({ keepAliveTimeout: 30_000 }, listener)
  server.listen(0, '127.0.0.1', () => {
    process.send({ port: server.address().port, secrets: { allowed, denied, unknown: gone.secret } })
  })
  process.on('message', (msg) => {
    if (msg === 'cpu') {
      process.send({ cpu: process.cpuUsage() })
    } else if (msg === 'stop') {
      server.close(() => process.exit(0))
      server.closeAllConnections()
    }
  })
}

// ---- parent: the load generator -----------------------------------------------------------

function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`)
  return i < 0 ? fallback : Number(process.argv[i + 1])
}

function startServer(mode) {
  const child = fork(fileURLToPath(import.meta.url), ['--serve', mode], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  return new Promise((resolve, reject) => {
    child.once('message', (msg) => resolve({ child, ...msg }))
    child.once('error', reject)
    child.once('exit', (code) => reject(new Error(`server ${mode} exited with ${code}`)))
  })
}

/** CPU time (user + system, µs) the server has used so far. */
function serverCpu(child) {
  return new Promise((resolve) => {
    child.once('message', (msg) => resolve(msg.cpu.user + msg.cpu.system))
    child.send('cpu')
  })
}

function stopServer(child) {
  return new Promise((resolve) => {
    child.removeAllListeners('exit')
    child.once('exit', resolve)
    child.send('stop')
    setTimeout(() => child.kill(), 2000).unref()
  })
}

async function load(port, secret, duration, connections) {
  const autocannon = require('autocannon')
  return autocannon({
    url: `http://127.0.0.1:${port}${PATH}`,
    method: 'POST',
    headers: { authorization: `ESP-APIKEY ${secret}` },
    connections,
    duration,
  })
}

async function main() {
  const duration = option('duration', 6)
  const connections = option('connections', 50)
  // plain and guard alternate (A B A B), so that a machine getting busier or quieter in
  // between hits both alike; the others run once.
  const runs = [
    { name: 'plain', mode: 'plain', key: 'allowed', status: 200 },
    { name: 'guard', mode: 'guard', key: 'allowed', status: 200 },
    { name: 'plain', mode: 'plain', key: 'allowed', status: 200 },
    { name: 'guard', mode: 'guard', key: 'allowed', status: 200 },
    { name: 'guard-explain', mode: 'guard-explain', key: 'allowed', status: 200 },
    { name: 'denied', mode: 'guard', key: 'denied', status: 403 },
    { name: 'unknown', mode: 'guard', key: 'unknown', status: 401 },
  ]
  const cpus = os.cpus()
  console.log(`keygate/http: ${runs.length} runs of ${duration} s (+1 s warm-up), ${connections} connections, autocannon in this process, each server in a child`)
  console.log(`${cpus.length} × ${cpus[0]?.model ?? 'cpu'}, Node ${process.version}, load average ${os.loadavg()[0].toFixed(2)}\n`)
  const sums = {}
  for (const run of runs) {
    const { child, port, secrets } = await startServer(run.mode)
    try {
      await load(port, secrets[run.key], 1, connections) // warm-up: JIT, memo, sockets
      const cpuBefore = await serverCpu(child)
      const r = await load(port, secrets[run.key], duration, connections)
      const cpu = (await serverCpu(child)) - cpuBefore
      const statuses = Object.fromEntries(Object.entries(r.statusCodeStats).map(([code, st]) => [code, st.count]))
      const wrong = Object.entries(statuses).filter(([code]) => Number(code) !== run.status)
      if (r.errors > 0 || r.timeouts > 0 || wrong.length > 0) {
        throw new Error(`${run.name}: expected only ${run.status}, got ${JSON.stringify(statuses)}, ${r.errors} errors, ${r.timeouts} timeouts`)
      }
      sums[run.name] ??= { requests: 0, seconds: 0, cpuUs: 0, p99: 0, status: run.status, runs: [] }
      const sum = sums[run.name]
      sum.requests += r.requests.total
      sum.seconds += r.duration
      sum.cpuUs += cpu
      sum.p99 = Math.max(sum.p99, r.latency.p99)
      sum.runs.push(Math.round(r.requests.total / r.duration))
      console.log(
        `${run.name.padEnd(14)} ${String(Math.round(r.requests.total / r.duration)).padStart(7)} req/s   ` +
          `server CPU ${(cpu / r.requests.total).toFixed(2).padStart(5)} µs/request   ` +
          `latency p50 ${String(r.latency.p50).padStart(3)} ms, p99 ${String(r.latency.p99).padStart(3)} ms   ` +
          `${r.requests.total} × ${run.status}`,
      )
    } finally {
      await stopServer(child)
    }
  }
  const results = {}
  for (const [name, sum] of Object.entries(sums)) {
    results[name] = { rps: Math.round(sum.requests / sum.seconds), serverCpuUs: +(sum.cpuUs / sum.requests).toFixed(2), p99: sum.p99, status: sum.status, runs: sum.runs }
  }
  const base = results.plain
  console.log(`\nbaseline (plain, both runs): ${base.rps} req/s, ${base.serverCpuUs.toFixed(2)} µs server CPU/request`)
  console.log('ratio    = req/s through the guard / req/s without it (as measured; shares the machine with autocannon and anything else running)')
  console.log('CPU      = extra server CPU per request; CPU ratio = plain CPU / guarded CPU per request, the throughput ratio of a CPU-bound server')
  for (const name of ['guard', 'guard-explain', 'denied', 'unknown']) {
    const ratio = results[name].rps / base.rps
    const extra = results[name].serverCpuUs - base.serverCpuUs
    const cpuRatio = base.serverCpuUs / results[name].serverCpuUs
    results[name].ratio = +ratio.toFixed(3)
    results[name].cpuRatio = +cpuRatio.toFixed(3)
    console.log(
      `${name.padEnd(14)} ${String(results[name].rps).padStart(7)} req/s  ratio ${ratio.toFixed(3)}   ` +
        `CPU ${extra >= 0 ? '+' : ''}${extra.toFixed(2)} µs/request, CPU ratio ${cpuRatio.toFixed(3)}`,
    )
  }
  console.log(`\n${JSON.stringify({ duration, connections, loadAverage: os.loadavg()[0], results })}`)
}
