// A process at its thread limit (RLIMIT_NPROC, or a cgroup's pids.max): starting a thread fails
// with EAGAIN. A store that needs a thread then fails with STORE_IO saying so, never as an
// internal defect, and recovers once threads can be started again.
//
// The store runs in a child process as uid 65534 (RLIMIT_NPROC is not enforced for root), whose
// soft limit the test lowers to the threads it already has (prlimit, run as that user too).
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import * as readline from 'node:readline'

import { Cluster, clusterSkipReason, pgSkipReason } from './support/postgres.js'
import type { TestDatabase } from './support/postgres.js'

const PACKAGE = path.join(__dirname, '..')
const AS_NOBODY = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups']

/** Why the child cannot run as uid 65534 with a thread limit here, or undefined when it can. */
function asNobodySkipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root, to run the store as another user (RLIMIT_NPROC does not bind root)'
  const probe = spawnSync(AS_NOBODY[0]!, [...AS_NOBODY.slice(1), process.execPath, '-e', `require(${JSON.stringify(PACKAGE)})`], { encoding: 'utf8' })
  if (probe.status !== 0) return `the package cannot be loaded as uid 65534 here: ${(probe.stderr || String(probe.error)).trim().split('\n')[0]}`
  const prlimit = spawnSync('prlimit', ['--version'], { encoding: 'utf8' })
  if (prlimit.status !== 0) return 'no prlimit (util-linux) here'
  return undefined
}

// The child: opens the store, says `ready` with its pid, then reports each check's answer and
// every onError. It starts no thread of its own meanwhile (no file I/O, no DNS of Node's).
const CHILD = `
const { KeyStore } = require(${JSON.stringify(PACKAGE)})
const say = (line) => process.stdout.write(JSON.stringify(line) + '\\n')
let store
try {
  store = KeyStore.open(process.argv[1], { failClosedAfterMs: 1000, connectTimeoutMs: 3000, onError: (e) => say({ onError: e.code, message: e.message }) })
} catch (e) {
  say({ opened: false, code: e.code, message: e.message })
  process.exit(0)
}
store.putUser({ id: 'svc', rights: ['orders:*'] })
const { secret } = store.createKey({ userId: 'svc', description: 'd', expiresAt: new Date(Date.now() + 86400e3) })
say({ opened: true, pid: process.pid })
setInterval(() => say({ allowed: store.isAllowed(secret, 'orders', 'list') }), 100)
process.stdin.on('data', () => {})
process.stdin.on('end', () => { store.close(); process.exit(0) })
`

interface Child {
  process: ChildProcess
  lines: Record<string, unknown>[]
  stderr: () => string
}

function startChild(url: string): Child {
  const child = spawn(AS_NOBODY[0]!, [...AS_NOBODY.slice(1), process.execPath, '-e', CHILD, url], { stdio: ['pipe', 'pipe', 'pipe'], cwd: '/' })
  const lines: Record<string, unknown>[] = []
  readline.createInterface({ input: child.stdout! }).on('line', (line) => lines.push(JSON.parse(line) as Record<string, unknown>))
  let stderr = ''
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  return { process: child, lines, stderr: () => stderr }
}

async function stopChild(child: Child): Promise<void> {
  if (child.process.exitCode !== null || child.process.signalCode !== null) return
  const exited = new Promise((resolve) => child.process.once('exit', resolve))
  child.process.stdin!.end()
  const killer = setTimeout(() => child.process.kill('SIGKILL'), 15_000)
  await exited
  clearTimeout(killer)
}

async function until<T>(what: string, child: Child, deadlineMs: number, probe: () => T | undefined): Promise<T> {
  const deadline = Date.now() + deadlineMs
  for (;;) {
    const value = probe()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`${what}: not within ${deadlineMs} ms; child said ${JSON.stringify(child.lines.slice(-5))}, stderr ${child.stderr()}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

/** Sets the soft RLIMIT_NPROC of `pid` (a process of uid 65534), as that user: a soft limit up to the hard one needs no privilege. */
function limitThreads(pid: number, soft: number | 'hard'): void {
  // "Max processes   <soft>   <hard>   processes"
  const hard = /^Max processes\s+\S+\s+(\S+)/m.exec(fs.readFileSync(`/proc/${pid}/limits`, 'utf8'))?.[1]
  const value = soft === 'hard' ? (hard ?? 'unlimited') : String(soft)
  const r = spawnSync(AS_NOBODY[0]!, [...AS_NOBODY.slice(1), 'prlimit', '--pid', String(pid), `--nproc=${value}:`], { encoding: 'utf8' })
  assert.equal(r.status, 0, `prlimit: ${r.stderr}`)
}

function threadsOf(pid: number): number {
  return fs.readdirSync(`/proc/${pid}/task`).length
}

const asNobody = asNobodySkipReason()

describe('a process that cannot start another thread', { skip: asNobody ?? false }, () => {
  test('the expiry watcher not starting is reported as STORE_IO, not an internal defect; answers stay exact; it starts later', { timeout: 60_000 }, async () => {
    // An in-memory store starts no thread until its first key with an expiry: the watcher's.
    const script = `
      const { KeyStore } = require(${JSON.stringify(PACKAGE)})
      const { execFileSync } = require('node:child_process')
      const say = (line) => process.stdout.write(JSON.stringify(line) + '\\n')
      const store = KeyStore.inMemory({ onError: (e) => say({ onError: e.code, task: e.task, recovered: e.recovered, message: e.message }) })
      store.putUser({ id: 'svc', rights: ['orders:*'] })
      const threads = require('node:fs').readdirSync('/proc/self/task').length
      execFileSync('prlimit', ['--pid', String(process.pid), '--nproc=' + threads + ':'])
      const expiresAt = new Date(Date.now() + 86400e3)
      const { key, secret } = store.createKey({ userId: 'svc', description: 'd', expiresAt })
      const answers = [store.isAllowed(secret, 'orders', 'list'), store.isAllowed(secret, 'orders', 'list')]
      store.setState(key.id, 'revoked')
      answers.push(store.isAllowed(secret, 'orders', 'list'))
      say({ answers, pid: process.pid })
      process.stdin.on('data', () => {
        // Room again: the next key's expiry starts the watcher.
        store.createKey({ userId: 'svc', description: 'd', expiresAt: new Date(Date.now() + 2 * 86400e3) })
      })
      process.stdin.on('end', () => process.exit(0))
    `
    const child = spawn(AS_NOBODY[0]!, [...AS_NOBODY.slice(1), process.execPath, '-e', script], { stdio: ['pipe', 'pipe', 'pipe'], cwd: '/' })
    let stderr = ''
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
    const state: Child = { process: child, lines: [], stderr: () => stderr }
    readline.createInterface({ input: child.stdout! }).on('line', (line) => state.lines.push(JSON.parse(line) as Record<string, unknown>))
    try {
      const answered = await until('the checks answer', state, 20_000, () => state.lines.find((line) => 'answers' in line))
      assert.deepEqual(answered.answers, [true, true, false], 'exact answers without the memo, the revocation at once')
      const failed = await until('the failure is reported', state, 20_000, () => state.lines.find((line) => line.onError !== undefined))
      assert.deepEqual([failed.onError, failed.task, failed.recovered], ['STORE_IO', 'expiry', false], JSON.stringify(failed))
      assert.match(String(failed.message), /cannot start the expiry watcher thread/)
      limitThreads(answered.pid as number, 'hard')
      child.stdin!.write('go\n')
      const recovered = await until('the recovery is reported', state, 20_000, () => state.lines.find((line) => line.recovered === true))
      assert.equal(recovered.task, 'expiry')
      assert.doesNotMatch(stderr, /internal defect/)
    } finally {
      await stopChild(state)
    }
  })
})

const reason = asNobody ?? pgSkipReason() ?? clusterSkipReason()

describe('a PostgreSQL store in a process that cannot start another thread', { skip: reason ?? false }, () => {
  let cluster: Cluster
  let db: TestDatabase
  const children: Child[] = []

  before(async () => {
    cluster = await Cluster.create()
    db = cluster.createDatabase()
  })
  after(async () => {
    for (const child of children) await stopChild(child)
    cluster?.remove()
  })

  /** The database's URL naming the host as `localhost`: a name to look up, not an address. */
  const byName = () => db.url.replace('//postgres@127.0.0.1:', '//postgres@localhost:')

  test('a PostgreSQL store reconnecting to a host name fails closed saying no thread could start, not as an internal defect, and recovers', {
    timeout: 90_000,
  }, async () => {
    const child = startChild(byName())
    children.push(child)
    const opened = await until('the store opens', child, 30_000, () => child.lines.find((line) => 'opened' in line))
    assert.equal(opened.opened, true, JSON.stringify(opened))
    const pid = opened.pid as number
    await until('a check allows', child, 10_000, () => (child.lines.at(-1)?.allowed === true ? true : undefined))
    // The driver's resolver keeps an idle thread for 10 s after a lookup; past that, a lookup
    // needs a new thread (the driver's own panicked when it could not have one).
    await new Promise((resolve) => setTimeout(resolve, 11_000))
    limitThreads(pid, threadsOf(pid))
    try {
      cluster.psql(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '${db.name}' AND pid <> pg_backend_pid()`)
      const from = child.lines.length
      await until('checks fail closed', child, 20_000, () => (child.lines.slice(from).some((line) => line.allowed === false) ? true : undefined))
      const reports = await until('the failure is reported', child, 20_000, () => {
        const reports = child.lines.slice(from).filter((line) => 'onError' in line)
        return reports.some((line) => /thread/.test(String(line.message))) ? reports : undefined
      })
      // Failed closed as for any reconnect that fails (STORE_UNAVAILABLE once failClosedAfterMs
      // has passed), saying what ran out; never an internal defect.
      for (const report of reports) assert.notEqual(report.onError, 'INTERNAL', JSON.stringify(report))
      assert.ok(
        reports.some((line) => /cannot start a thread to look up its host name/.test(String(line.message))),
        JSON.stringify(reports),
      )
    } finally {
      limitThreads(pid, 'hard')
    }
    const from = child.lines.length
    await until('checks allow again once threads can start', child, 30_000, () => (child.lines.slice(from).some((line) => line.allowed === true) ? true : undefined))
    assert.doesNotMatch(child.stderr(), /internal defect/, 'no panic was reported')
    await stopChild(child)
  })

  test('KeyStore.open of a host name is STORE_IO saying no thread could start, not an internal defect', { timeout: 60_000 }, async () => {
    // Started with room; the limit is set once the child is running, before it opens the store.
    const script = `
      const { execFileSync } = require('node:child_process')
      const threads = require('node:fs').readdirSync('/proc/self/task').length
      execFileSync('prlimit', ['--pid', String(process.pid), '--nproc=' + threads + ':'])
      ${CHILD}`
    const child = spawn(AS_NOBODY[0]!, [...AS_NOBODY.slice(1), process.execPath, '-e', script, byName()], { stdio: ['pipe', 'pipe', 'pipe'], cwd: '/' })
    const state: Child = { process: child, lines: [], stderr: () => stderr }
    let stderr = ''
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
    readline.createInterface({ input: child.stdout! }).on('line', (line) => state.lines.push(JSON.parse(line) as Record<string, unknown>))
    children.push(state)
    const opened = await until('open answers', state, 30_000, () => state.lines.find((line) => 'opened' in line))
    assert.equal(opened.opened, false, 'opened without a thread to spare')
    assert.equal(opened.code, 'STORE_IO', JSON.stringify(opened))
    assert.match(String(opened.message), /cannot start/, JSON.stringify(opened))
    assert.doesNotMatch(stderr, /internal defect/, 'no panic was reported')
    await stopChild(state)
  })
})
