// Measures the durable store (issue: KeyStore.open): durable createKey and
// setState per second, revocation propagation between two processes (median
// and worst of 100), and open time + memory of a store with 1,000,000 keys.
//
//   node bench/durable.mjs            all of it
//   node bench/durable.mjs --keys N   the large-store part with N keys

import { createRequire } from 'node:module'
import { fork, execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const require = createRequire(import.meta.url)
const { KeyStore } = require('../index.js')
const DAY = 86_400_000
const wallNow = () => performance.timeOrigin + performance.now()

const BULK = String.raw`
import os, random, sqlite3, sys
path, n = sys.argv[1], int(sys.argv[2])
rnd = random.Random(42)
names = ['session:userLogon', 'session:getSessionInfo', 'session:get*', 'session:*', 'admin:keysafeGetKey',
         'admin:userCreate', 'admin:userSetAccountStatus', 'data:entityAddRecord', 'data:entityBrowseRecords2',
         'data:queryExec', 'data:entity???Record', 'system:logMessage', 'bpm:iBridgeInvoke',
         'apps/com.hornbill.core:addHistory', 'apps/com.hornbill.core/Achievement:addAchievement',
         'apps/com.hornbill.core/*:*', 'apps/com.hornbill.servicemanager/Requests:holdRequest',
         'apps/com.hornbill.servicemanager/AssetUsers:create', 'apps/com.hornbill.servicemanager/*:*', '*:userLogon']
db = sqlite3.connect(path)
db.execute('PRAGMA journal_mode=WAL')
db.execute('BEGIN')
for u in range(1000):
    db.execute("INSERT INTO users (id, status, rights, roles) VALUES (?, 'active', '*:*', '')", ('user%d' % u,))
now = 1_800_000_000_000
alnum = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'
def rows():
    for i in range(n):
        yield (os.urandom(16), i, 'user%d' % (i % 1000), 'bulk key %d' % i, 'active', now + 365 * 86400000,
               now, now, None, ''.join(rnd.choice(alnum) for _ in range(4)), os.urandom(32), '\n'.join(rnd.sample(names, 5)))
db.executemany('INSERT INTO keys (id, seq, user_id, description, state, expires_at, created_at, updated_at, last_used_at, hint, digest, rules) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)', rows())
db.execute('COMMIT')
db.execute('PRAGMA wal_checkpoint(TRUNCATE)')
db.close()
`

if (process.argv[2] === '--watch') {
  // Child: waits for each flip of one key's decision and reports when it saw it.
  const [path, secret] = process.argv.slice(3)
  const store = KeyStore.open(path)
  let expected = store.isAllowed(secret, 'session', 'getSessionInfo')
  process.send({ ready: true })
  process.on('message', (msg) => {
    if (msg.stop) {
      store.close()
      process.exit(0)
    }
    expected = !expected
    while (store.isAllowed(secret, 'session', 'getSessionInfo') !== expected) {}
    process.send({ seenAt: wallNow() })
  })
} else if (process.argv[2] === '--open') {
  // Child: opens a big store and reports time and memory (fresh process: honest RSS).
  const before = process.memoryUsage().rss
  const t = performance.now()
  const store = KeyStore.open(process.argv[3])
  const ms = performance.now() - t
  const rss = process.memoryUsage().rss - before
  process.send({ ms, rss })
  store.close()
} else {
  await main()
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]
}

async function main() {
  const dir = mkdtempSync(join(tmpdir(), 'keygate-bench-'))
  const keysArg = process.argv.indexOf('--keys')
  const bigN = keysArg > 0 ? Number(process.argv[keysArg + 1]) : 1_000_000
  try {
    if (keysArg < 0) {
      throughput(join(dir, 'throughput.db'))
      await propagation(join(dir, 'propagation.db'))
    }
    await bigStore(join(dir, 'big.db'), bigN)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

function throughput(path) {
  const store = KeyStore.open(path)
  store.putUser({ id: 'svc', rights: ['*:*'] })
  const n = 300
  const expiresAt = new Date(Date.now() + 30 * DAY)
  let t = performance.now()
  const ids = []
  for (let i = 0; i < n; i++) ids.push(store.createKey({ userId: 'svc', description: `k${i}`, expiresAt, rules: ['session:*'] }).key.id)
  const createPerSec = n / ((performance.now() - t) / 1000)
  t = performance.now()
  for (let i = 0; i < n; i++) store.setState(ids[i], i % 2 ? 'active' : 'suspended')
  const statePerSec = n / ((performance.now() - t) / 1000)
  store.close()
  console.log(`durable createKey: ${createPerSec.toFixed(0)}/s   durable setState: ${statePerSec.toFixed(0)}/s   (synchronous=FULL, one transaction each)`)
}

async function propagation(path) {
  const store = KeyStore.open(path)
  store.putUser({ id: 'svc', rights: ['*:*'] })
  const { key, secret } = store.createKey({ userId: 'svc', description: 'watched', expiresAt: new Date(Date.now() + DAY) })
  const child = fork(new URL(import.meta.url).pathname, ['--watch', path, secret])
  const next = () => new Promise((resolve) => child.once('message', resolve))
  await next()
  const latencies = []
  for (let i = 0; i < 100; i++) {
    const state = i % 2 === 0 ? 'suspended' : 'active'
    const seen = next()
    child.send({ flip: true })
    await new Promise((r) => setTimeout(r, 5))
    store.setState(key.id, state)
    const committedAt = wallNow()
    const { seenAt } = await seen
    latencies.push(seenAt - committedAt)
  }
  child.send({ stop: true })
  store.close()
  const worst = Math.max(...latencies)
  console.log(`propagation to another process (100 state changes): median ${median(latencies).toFixed(1)} ms, worst ${worst.toFixed(1)} ms`)
}

async function bigStore(path, n) {
  // Writing a million keys through createKey (one fsync'd transaction each)
  // would take many minutes, so rows are written in bulk with Python's sqlite3
  // into the schema keygate itself created: random digests and ids, 5 rules
  // each from real Hornbill names, 1,000 users.
  const seed = KeyStore.open(path)
  seed.close()
  const t = performance.now()
  execFileSync('python3', ['-c', BULK, path, String(n)], { stdio: 'inherit' })
  const bulkSec = (performance.now() - t) / 1000
  const size = statSync(path).size
  const child = fork(new URL(import.meta.url).pathname, ['--open', path])
  const { ms, rss } = await new Promise((resolve) => child.once('message', resolve))
  console.log(
    `store of ${n.toLocaleString()} keys (${(size / 1e6).toFixed(0)} MB file, written in ${bulkSec.toFixed(0)} s): ` +
      `open ${(ms / 1000).toFixed(2)} s, memory +${(rss / 1e6).toFixed(0)} MB (${(rss / n).toFixed(0)} bytes/key)`,
  )
}
