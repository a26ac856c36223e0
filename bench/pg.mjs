// Measures the PostgreSQL store (issue #13) on the machine's server (127.0.0.1:5432, trust):
// revocation latency to 8 processes (p50/p99), the same after their connections were killed,
// durable createKey from one process, opening a store of 1,000,000 keys, and isAllowed warm/cold
// on PostgreSQL beside SQLite. Prints a table. Every database it makes is dropped at the end.
//
//   node bench/pg.mjs                 all of it
//   node bench/pg.mjs --keys 200000   the large store with fewer keys
//   node bench/pg.mjs --rounds 50     fewer revocation rounds (default 100)
//   node bench/pg.mjs --only create   one measure: revocation, killed, create, open or checks

import { createRequire } from 'node:module'
import { fork, execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const require = createRequire(import.meta.url)
const { KeyStore } = require('../index.js')
const DAY = 86_400_000
const HOST = process.env.KEYGATE_PG_HOST ?? '127.0.0.1'
const PORT = process.env.KEYGATE_PG_PORT ?? '5432'
const wallNow = () => performance.timeOrigin + performance.now()
const pause = new Int32Array(new SharedArrayBuffer(4))
/** Codes of admin calls that failed (and were retried) while revoking. */
const failedCalls = []
/** What `--only` can name. */
const MEASURES = ['revocation', 'killed', 'create', 'open', 'checks']

const RULE_NAMES = [
  'session:userLogon',
  'session:getSessionInfo',
  'session:get*',
  'session:*',
  'admin:keysafeGetKey',
  'admin:userCreate',
  'data:entityAddRecord',
  'data:entityBrowseRecords2',
  'data:queryExec',
  'data:entity???Record',
  'system:logMessage',
  'bpm:iBridgeInvoke',
  'apps/com.hornbill.core:addHistory',
  'apps/com.hornbill.core/*:*',
  'apps/com.hornbill.servicemanager/Requests:holdRequest',
  'apps/com.hornbill.servicemanager/*:*',
  '*:userLogon',
]

function psql(sql, database = 'postgres') {
  return execFileSync('psql', ['-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1', '-h', HOST, '-p', PORT, '-U', 'postgres', '-d', database, '-c', sql], {
    encoding: 'utf8',
  }).trim()
}

const url = (db) => `postgres://postgres@${HOST}:${PORT}/${db}`

if (process.argv[2] === '--watch') {
  // Child: one host. For each message { secret }, replies { armed }, then checks until the key is
  // refused and replies { seenAt } (the instant it first answered false).
  const store = KeyStore.open(process.argv[3])
  process.send({ ready: true })
  process.on('message', (msg) => {
    if (msg.stop) {
      try {
        store.close()
      } catch (error) {
        // Reported, not fatal: the measurements are in.
        console.error(`a host's close failed: ${error.code}: ${error.message}`)
      }
      process.exit(0)
    }
    if (!store.isAllowed(msg.secret, 'svc', 'call')) return process.send({ error: 'the key was refused before the revocation' })
    process.send({ armed: true })
    const deadline = wallNow() + 10_000
    // A tenth of a millisecond between checks: 8 hosts share 2 cores with the writer.
    while (store.isAllowed(msg.secret, 'svc', 'call')) {
      if (wallNow() > deadline) return process.send({ error: 'not seen within 10 s' })
      Atomics.wait(pause, 0, 0, 0.1)
    }
    process.send({ seenAt: wallNow() })
  })
} else if (process.argv[2] === '--open') {
  // Child: opens the big store in a fresh process (honest memory) and reports time and memory.
  const before = process.memoryUsage().rss
  const t = performance.now()
  const store = KeyStore.open(process.argv[3])
  const ms = performance.now() - t
  process.send({ ms, rss: process.memoryUsage().rss - before, keys: store.listKeys({ userId: 'user0' }).length })
  store.close()
} else {
  await main()
}

function pct(xs, p) {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]
}

function arg(name, fallback) {
  const i = process.argv.indexOf(name)
  return i > 0 ? Number(process.argv[i + 1]) : fallback
}

/** Whether to run `measure`: all of them unless `--only <measure>` names one. */
function wanted(measure) {
  const at = process.argv.indexOf('--only')
  return at < 0 || process.argv[at + 1] === measure
}

async function main() {
  const only = process.argv.indexOf('--only')
  if (only > 0 && !MEASURES.includes(process.argv[only + 1])) {
    console.error(`--only takes one of ${MEASURES.join(', ')}`)
    process.exit(2)
  }
  try {
    psql('SELECT 1')
  } catch (error) {
    console.error(`bench:pg needs a PostgreSQL server at ${HOST}:${PORT} (trust auth as postgres): ${error.message.split('\n')[0]}`)
    process.exit(1)
  }
  const made = []
  const database = () => {
    const name = `keygate_bench_${randomBytes(5).toString('hex')}`
    psql(`CREATE DATABASE ${name}`)
    made.push(name)
    return name
  }
  const dir = mkdtempSync(join(tmpdir(), 'keygate-bench-pg-'))
  const rows = []
  try {
    const rounds = arg('--rounds', 100)
    if (wanted('revocation')) rows.push(...(await revocation(database(), rounds)))
    if (wanted('killed')) rows.push(await afterKilledConnections(database(), 10))
    if (wanted('create')) rows.push(...createRate(database(), join(dir, 'create.db')))
    if (wanted('open')) rows.push(await bigStore(database(), arg('--keys', 1_000_000)))
    if (wanted('checks')) rows.push(...checks(database, join(dir, 'checks.db')))
  } finally {
    for (const name of made) psql(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
    rmSync(dir, { recursive: true, force: true })
  }
  const width = Math.max(...rows.map(([m]) => m.length))
  console.log(`\n${'measure'.padEnd(width)}  result`)
  console.log(`${'-'.repeat(width)}  ${'-'.repeat(40)}`)
  for (const [measure, result] of rows) console.log(`${measure.padEnd(width)}  ${result}`)
}

/** 8 host processes on `db`, each ready. */
async function startHosts(db, n = 8) {
  const hosts = []
  for (let i = 0; i < n; i++) {
    const child = fork(new URL(import.meta.url).pathname, ['--watch', url(db)])
    const inbox = []
    const waiters = []
    child.on('message', (m) => (waiters.length > 0 ? waiters.shift()(m) : inbox.push(m)))
    const next = () => (inbox.length > 0 ? Promise.resolve(inbox.shift()) : new Promise((resolve) => waiters.push(resolve)))
    await next()
    hosts.push({ child, next })
  }
  return hosts
}

/** Revokes each key with every host watching it; the time from the writer's call returning to the last host refusing it. */
async function revokeWatched(writer, hosts, issued, beforeRevoke = () => {}) {
  for (const h of hosts) h.child.send({ secret: issued.secret })
  for (const reply of await Promise.all(hosts.map((h) => h.next()))) if (!reply.armed) throw new Error(reply.error)
  const seen = Promise.all(hosts.map((h) => h.next()))
  beforeRevoke()
  for (let attempt = 1; ; attempt++) {
    try {
      writer.setState(issued.key.id, 'revoked')
      break
    } catch (error) {
      // Right after its connection was killed, the writer's call may fail; counted, then retried.
      failedCalls.push(error.code)
      if (attempt === 3) throw error
    }
  }
  const returnedAt = wallNow()
  const replies = await seen
  for (const r of replies) if (r.seenAt === undefined) throw new Error(r.error)
  return Math.max(...replies.map((r) => r.seenAt)) - returnedAt
}

function seedKeys(store, n) {
  store.putUser({ id: 'svc', rights: ['*:*'] })
  const expiresAt = new Date(Date.now() + DAY)
  return Array.from({ length: n }, (_, i) => store.createKey({ userId: 'svc', description: `k${i}`, expiresAt }))
}

async function revocation(db, rounds) {
  const writer = KeyStore.open(url(db))
  const keys = seedKeys(writer, rounds)
  const hosts = await startHosts(db)
  const latencies = []
  for (const k of keys) latencies.push(await revokeWatched(writer, hosts, k))
  for (const h of hosts) h.child.send({ stop: true })
  writer.close()
  return [
    [
      `revocation visible in all 8 processes (${rounds} revocations)`,
      `p50 ${pct(latencies, 50).toFixed(1)} ms, p99 ${pct(latencies, 99).toFixed(1)} ms, max ${Math.max(...latencies).toFixed(1)} ms`,
    ],
  ]
}

async function afterKilledConnections(db, rounds) {
  const writer = KeyStore.open(url(db), { onError: () => {} })
  const keys = seedKeys(writer, rounds)
  const hosts = await startHosts(db)
  const latencies = []
  const kill = () =>
    psql(`SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '${db}' AND application_name = 'keygate' AND pid <> pg_backend_pid()`)
  failedCalls.length = 0
  for (const k of keys) latencies.push(await revokeWatched(writer, hosts, k, kill))
  for (const h of hosts) h.child.send({ stop: true })
  writer.close()
  const failed = failedCalls.length === 0 ? '' : `; the writer's call failed ${failedCalls.length}× first (${[...new Set(failedCalls)].join(', ')}) and was retried`
  return [
    `revocation right after every connection was killed (${rounds})`,
    `p50 ${pct(latencies, 50).toFixed(0)} ms, max ${Math.max(...latencies).toFixed(0)} ms (reconnect, catch up${failed})`,
  ]
}

function createRate(db, sqliteFile) {
  // Each createKey is one committed transaction, so the server's WAL flush (the disk's fsync)
  // bounds the rate. The server's own rate of one-row durable commits (no network, no keygate),
  // measured just before each round, tells a slow disk from a slow client.
  const rate = (store, n) => {
    store.putUser({ id: 'svc', rights: ['*:*'] })
    const expiresAt = new Date(Date.now() + 30 * DAY)
    const t = performance.now()
    for (let i = 0; i < n; i++) store.createKey({ userId: 'svc', description: `k${i}`, expiresAt, rules: ['session:*'] })
    return n / ((performance.now() - t) / 1000)
  }
  const n = 500
  const pg = KeyStore.open(url(db))
  const sqlite = KeyStore.open(sqliteFile)
  const rounds = { pg: [], floor: [], sqlite: [] }
  psql('CREATE TABLE bench_commits (i int); CREATE TABLE bench_commit_time (seconds float8)', db)
  try {
    for (let round = 0; round < 3; round++) {
      rounds.floor.push(durableCommitRate(db, n))
      rounds.pg.push(rate(pg, n))
      rounds.sqlite.push(rate(sqlite, n))
    }
  } finally {
    pg.close()
    sqlite.close()
  }
  const spread = (xs) => `${Math.min(...xs).toFixed(0)}–${Math.max(...xs).toFixed(0)}/s`
  return [
    [
      `durable createKey from one process (3 × ${n})`,
      `PostgreSQL ${spread(rounds.pg)}   (the server's one-row durable commits: ${spread(rounds.floor)}; SQLite ${spread(rounds.sqlite)})`,
    ],
  ]
}

/** Commits per second of `n` one-row transactions run inside the server (a DO block committing each). */
function durableCommitRate(db, n) {
  psql(
    `DO $$
     DECLARE started timestamptz := clock_timestamp();
     BEGIN
       FOR i IN 1..${n} LOOP
         INSERT INTO bench_commits VALUES (i);
         COMMIT;
       END LOOP;
       DELETE FROM bench_commit_time;
       INSERT INTO bench_commit_time VALUES (extract(epoch FROM clock_timestamp() - started));
     END $$`,
    db,
  )
  return n / Number(psql('SELECT seconds FROM bench_commit_time', db))
}

async function bigStore(db, n) {
  // createKey for a million keys would take many minutes: rows are written in bulk with SQL into
  // the schema keygate itself created (random ids and digests, 5 rules each, 1,000 users).
  KeyStore.open(url(db)).close()
  const t = performance.now()
  const names = `ARRAY[${RULE_NAMES.map((r) => `'${r}'`).join(',')}]`
  psql(`INSERT INTO keygate_users (id, status, rights, roles) SELECT 'user' || u, 'active', ARRAY['*:*'], ARRAY[]::text[] FROM generate_series(0, 999) u`, db)
  psql(
    `INSERT INTO keygate_keys (id, seq, user_id, description, state, expires_at, created_at, updated_at, last_used_at, hint, digest, rules)
     SELECT decode(md5(random()::text || i), 'hex'), i, 'user' || (i % 1000), 'bulk key ' || i, 'active',
            ${Date.now() + 365 * DAY}, ${Date.now()}, ${Date.now()}, NULL, substr(md5(i::text), 1, 4),
            decode(md5(random()::text || i) || md5(i::text || random()::text), 'hex'),
            ARRAY[n[1 + i % 17], n[1 + (i + 3) % 17], n[1 + (i + 7) % 17], n[1 + (i + 11) % 17], n[1 + (i + 13) % 17]]
     FROM generate_series(1, ${n}) i, (SELECT ${names} AS n) names`,
    db,
  )
  psql('VACUUM ANALYZE keygate_keys', db)
  const bulkSec = (performance.now() - t) / 1000
  const child = fork(new URL(import.meta.url).pathname, ['--open', url(db)])
  const { ms, rss } = await new Promise((resolve, reject) => {
    child.once('message', resolve)
    child.once('exit', (code) => reject(new Error(`the opening process exited (${code})`)))
  })
  return [
    `open a store of ${n.toLocaleString()} keys (written in ${bulkSec.toFixed(0)} s)`,
    `${(ms / 1000).toFixed(2)} s, memory +${(rss / 1e6).toFixed(0)} MB (${(rss / n).toFixed(0)} bytes/key)`,
  ]
}

function checks(newDatabase, sqliteFile) {
  // Cold: the first check of each of 2,000 keys; warm: the same keys checked again, 50 rounds.
  const measure = (store) => {
    const keys = seedKeys(store, 2000).map((k) => k.secret)
    let t = process.hrtime.bigint()
    for (const s of keys) store.isAllowed(s, 'svc', 'call')
    const cold = Number(process.hrtime.bigint() - t) / keys.length
    t = process.hrtime.bigint()
    for (let round = 0; round < 50; round++) for (const s of keys) store.isAllowed(s, 'svc', 'call')
    const warm = Number(process.hrtime.bigint() - t) / (50 * keys.length)
    store.close()
    return { cold, warm }
  }
  // The first store measured would pay for V8 compiling the check path: an in-memory store goes first.
  measure(KeyStore.inMemory())
  // Then the two stores by turns, 5 rounds each (fresh databases and files), the median of each.
  const runs = { pg: [], sqlite: [] }
  for (let round = 0; round < 5; round++) {
    runs.pg.push(measure(KeyStore.open(url(newDatabase()))))
    runs.sqlite.push(measure(KeyStore.open(`${sqliteFile}.${round}`)))
  }
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
  const pg = { cold: median(runs.pg.map((r) => r.cold)), warm: median(runs.pg.map((r) => r.warm)) }
  const sqlite = { cold: median(runs.sqlite.map((r) => r.cold)), warm: median(runs.sqlite.map((r) => r.warm)) }
  return [
    ['isAllowed warm (2,000 keys × 50; median of 5)', `PostgreSQL ${pg.warm.toFixed(0)} ns   SQLite ${sqlite.warm.toFixed(0)} ns`],
    ['isAllowed cold (first check of 2,000 keys; median of 5)', `PostgreSQL ${pg.cold.toFixed(0)} ns   SQLite ${sqlite.cold.toFixed(0)} ns`],
  ]
}
