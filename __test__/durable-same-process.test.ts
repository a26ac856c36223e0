// Two stores on one file in one process (two worker threads, or an admin page and a guard
// each opening it): opening the second must not take away the first one's SQLite locks, or
// another process's close deletes the WAL under them and their commits reach nobody else.
import { describe, test } from 'node:test'
import type { TestContext } from 'node:test'
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { Worker } from 'node:worker_threads'

import { DAY, at } from './helpers.js'
import { open, storePath } from './support/durable.js'
import { StoreProcess } from './support/child-store.js'

describe('two stores on one file in one process', () => {
  test('a second open keeps the first store’s locks: another process closing leaves the WAL, and a revocation here reaches other processes', {
    timeout: 60_000,
  }, async () => {
    const file = storePath()
    const first = open(file)
    first.putUser({ id: 'svc', rights: ['*:*'] })
    const { key, secret } = first.createKey({ userId: 'svc', description: 'k', expiresAt: at(new Date(), DAY) })
    const second = open(file)
    assert.equal(second.isAllowed(secret, 'svc', 'call'), true)

    // Another process opens the store and closes it (as a CLI call does).
    const passing = await StoreProcess.start(file)
    await passing.stop()
    assert.ok(fs.existsSync(`${file}-wal`), 'the WAL of the stores still open here was deleted by another process closing')

    first.setState(key.id, 'revoked')
    const other = await StoreProcess.start(file)
    try {
      assert.equal((await other.call('explain', secret, 'svc', 'call')).result.reason, 'revoked', 'a revocation made here is not seen by another process')
    } finally {
      await other.stop()
    }
    assert.equal(second.explain(secret, 'svc', 'call').reason, 'revoked')
  })
})

/** The POSIX locks this process holds on `file` (Linux's /proc/locks), or undefined where it cannot say. */
function locksHeld(file: string): number | undefined {
  let table: string
  try {
    table = fs.readFileSync('/proc/locks', 'utf8')
  } catch {
    return undefined
  }
  const inode = String(fs.statSync(file).ino)
  // "1: POSIX  ADVISORY  READ 4747 08:01:123456 128 128": the pid, then major:minor:inode.
  return table.split('\n').filter((line) => {
    const fields = line.trim().split(/\s+/)
    return fields[1] === 'POSIX' && fields[4] === String(process.pid) && fields[5]?.split(':')[2] === inode
  }).length
}

describe('a second store on the file, opened while a -shm beside it is looser than the store file', () => {
  // A store made before new files were owner-only (0644, and so its -shm), chmod'ed 0600 while
  // in use: a second open in the process (a worker's) gives the -shm the store file's mode. Done
  // through a descriptor that can read the file, closing it dropped every POSIX lock the process
  // held on the -shm, SQLite's among them: the next process to open the store took the -shm for
  // unused and cut it short under this one, which died of SIGBUS at its next look.
  test('keeps this process’s locks on the -shm: other processes opening the store do not cut it short under it', { timeout: 60_000 }, async () => {
    const file = storePath()
    const setup = open(file)
    setup.putUser({ id: 'svc', rights: ['*:*'] })
    setup.close()
    fs.chmodSync(file, 0o644)
    const first = open(file)
    const { key, secret } = first.createKey({ userId: 'svc', description: 'k', expiresAt: at(new Date(), DAY) })
    fs.chmodSync(file, 0o600)
    assert.equal(fs.statSync(`${file}-shm`).mode & 0o777, 0o644)
    const held = locksHeld(`${file}-shm`)
    const second = open(file)
    assert.equal(fs.statSync(`${file}-shm`).mode & 0o777, 0o600, 'the -shm is given the store file’s mode')
    if (held !== undefined) {
      assert.ok(held > 0, 'no lock on the -shm before the second open')
      assert.ok((locksHeld(`${file}-shm`) ?? 0) > 0, 'the second open dropped this process’s locks on the -shm')
    }

    // Other processes open the store and close it (as CLI calls do) while the stores here work.
    for (let round = 0; round < 5; round++) {
      const passing = await StoreProcess.start(file)
      await passing.stop()
      assert.equal(first.isAllowed(secret, 'svc', 'call'), true)
      assert.equal(second.explain(secret, 'svc', 'call').reason, 'allowed')
    }
    first.setState(key.id, 'revoked')
    const other = await StoreProcess.start(file)
    try {
      assert.equal((await other.call('explain', secret, 'svc', 'call')).result.reason, 'revoked', 'a revocation made here is not seen by another process')
    } finally {
      await other.stop()
    }
    assert.equal(second.explain(secret, 'svc', 'call').reason, 'revoked')
  })
})

// A worker thread's store on the file: it keeps every call asked of it warm in its memo, then
// spins on the next check until it changes, and reports how long after the change returned.
const WORKER = `
const { parentPort, workerData } = require('node:worker_threads')
const { KeyStore } = require(${JSON.stringify(path.join(__dirname, '..', 'index.js'))})
const store = KeyStore.open(workerData.file)
const changedAt = new Float64Array(workerData.changedAt)
const now = () => performance.timeOrigin + performance.now()
parentPort.on('message', ({ close, secret, service, api, before }) => {
  if (close) {
    store.close()
    parentPort.postMessage({ closed: true })
    return
  }
  const answers = []
  for (let i = 0; i < 3; i++) answers.push(store.isAllowed(secret, service, api))
  parentPort.postMessage({ warm: answers })
  // The main thread makes the change, then writes the instant it returned.
  const deadline = now() + 5000
  while (changedAt[0] === 0 && now() < deadline) {}
  while (store.isAllowed(secret, service, api) === before && now() < deadline) {}
  const seen = store.isAllowed(secret, service, api) !== before
  parentPort.postMessage({ seen, afterMs: now() - changedAt[0], reason: store.explain(secret, service, api).reason })
  changedAt[0] = 0
})
`

describe('a store in a worker thread, on the file the main thread changes', () => {
  test('every kind of change reaches the worker’s checks (its memo warm) within the bound, both ways', { timeout: 60_000 }, async (t: TestContext) => {
    const file = storePath()
    const main = open(file)
    main.putRole({ name: 'reader', rights: ['svc:*'] })
    for (const id of ['int', 'viaRole', 'doomed', 'paused']) main.putUser({ id, rights: id === 'viaRole' ? [] : ['svc:*'], roles: id === 'viaRole' ? ['reader'] : [] })
    const expiresAt = at(new Date(), DAY)
    const key = (userId: string, rules: string[] = []) => main.createKey({ userId, description: userId, expiresAt, rules })
    const k = {
      revoke: key('int'),
      suspend: key('int'),
      rules: key('int', ['svc:*']),
      role: key('viaRole'),
      doomed: key('doomed'),
      paused: key('paused'),
      rotate: key('int'),
    }
    const changedAt = new Float64Array(new SharedArrayBuffer(8))
    const worker = new Worker(WORKER, { eval: true, workerData: { file, changedAt: changedAt.buffer } })
    const replies: unknown[] = []
    let waiting: (() => void) | null = null
    worker.on('message', (m) => {
      replies.push(m)
      waiting?.()
    })
    const next = async <T>(): Promise<T> => {
      while (replies.length === 0) await new Promise<void>((resolve) => (waiting = resolve))
      return replies.shift() as T
    }
    try {
      const cases: [string, string, boolean, () => unknown][] = [
        ['revoke', k.revoke.secret, true, () => main.setState(k.revoke.key.id, 'revoked')],
        ['suspend', k.suspend.secret, true, () => main.setState(k.suspend.key.id, 'suspended')],
        ['reactivate', k.suspend.secret, false, () => main.setState(k.suspend.key.id, 'active')],
        ['narrow rules', k.rules.secret, true, () => main.updateKey(k.rules.key.id, { rules: ['svc:other'] })],
        ['rules widened', k.rules.secret, false, () => main.updateKey(k.rules.key.id, { rules: ['svc:call', 'svc:other'] })],
        ['role rights', k.role.secret, true, () => main.putRole({ name: 'reader', rights: ['other:*'] })],
        ['role rights back', k.role.secret, false, () => main.putRole({ name: 'reader', rights: ['svc:*'] })],
        ['role deleted', k.role.secret, true, () => main.deleteRole('reader')],
        ['user status', k.paused.secret, true, () => main.putUser({ id: 'paused', status: 'suspended', rights: ['svc:*'] })],
        ['user status back', k.paused.secret, false, () => main.putUser({ id: 'paused', rights: ['svc:*'] })],
        ['deleteUser', k.doomed.secret, true, () => main.deleteUser('doomed')],
        ['rotateKey (overlap 0)', k.rotate.secret, true, () => main.rotateKey(k.rotate.key.id)],
      ]
      for (const [kind, secret, before, change] of cases) {
        worker.postMessage({ secret, service: 'svc', api: 'call', before })
        const { warm } = await next<{ warm: boolean[] }>()
        assert.deepEqual(warm, [before, before, before], `${kind}: the worker's answers before the change`)
        change()
        changedAt[0] = performance.timeOrigin + performance.now()
        const { seen, afterMs, reason } = await next<{ seen: boolean; afterMs: number; reason: string }>()
        t.diagnostic(`${kind}: seen by the worker after ${afterMs.toFixed(1)} ms (${reason})`)
        assert.ok(seen, `${kind}: the worker still answers ${before} 5 s after the change (${reason})`)
      }
      worker.postMessage({ close: true })
      assert.deepEqual(await next(), { closed: true })
    } finally {
      await worker.terminate()
    }
  })
})
