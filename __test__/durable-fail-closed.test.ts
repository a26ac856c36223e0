// A store that cannot vouch it is current (a row it cannot load, written by another process)
// fails closed with store_unavailable in every process until repaired, and says so once.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'

import { KeyStore, KeygateError } from '../index.js'
import { DAY, assertNoSecret, at, throwsCode } from './helpers.js'
import { NODE, open, sleep, storePath, throwsStoreError } from './support/durable.js'
import { NO_PYTHON, sql } from './support/python-sqlite.js'
import { StoreProcess } from './support/child-store.js'

/**
 * The `sync` failures reported to `onError` so far, once the first has come: a report reaches JS
 * through the event loop, some time after the checks already answer `store_unavailable`. Waits
 * 100 ms more so that a second report of the same episode, which must not come, would be seen.
 */
async function syncReports(reported: KeygateError[]): Promise<KeygateError[]> {
  const sync = () => reported.filter((e) => (e as any).task === 'sync')
  const start = Date.now()
  while (sync().length === 0 && Date.now() - start < 5000) await sleep(10)
  await sleep(100)
  return sync()
}

/** A store of `file` whose `onError` reports land in `reported`, with a user `svc` and one key of it. */
function reportingStore(file: string) {
  const reported: KeygateError[] = []
  const store = open(file, { onError: (error) => reported.push(error) })
  store.putUser({ id: 'svc', rights: ['*:*'] })
  const key = store.createKey({ userId: 'svc', description: 'nightly', expiresAt: at(new Date(), DAY) })
  return { reported, store, key }
}

/** Waits until `reason()` is `store_unavailable`, failing with `never` 5 s after `start`; `pauseMs` between asks. */
async function untilUnavailable(reason: () => string | Promise<string>, start: number, never: string, pauseMs: number): Promise<void> {
  while ((await reason()) !== 'store_unavailable') {
    assert.ok(Date.now() - start < 5000, never)
    await sleep(pauseMs)
  }
}

/** Truncates `file` to nothing from another program (never fs here: closing a descriptor of the file drops this process's locks). */
function truncateElsewhere(file: string): void {
  const cut = spawnSync('truncate', ['-s', '0', file], { encoding: 'utf8' })
  assert.equal(cut.status, 0, cut.stderr)
}
/** Restores `backup` into `file` from another program, as `sqlite3 keys.db ".restore backup.db"` does under running processes. */
function restoreElsewhere(file: string, backup: string): void {
  const script =
    'import sqlite3, sys\nsource = sqlite3.connect(sys.argv[2])\ntarget = sqlite3.connect(sys.argv[1], timeout=5)\nsource.backup(target)\ntarget.close()\nsource.close()'
  const restore = spawnSync('python3', ['-c', script, file, backup], { encoding: 'utf8' })
  assert.equal(restore.status, 0, restore.stderr)
}
describe('a store that cannot vouch it is current fails closed, and says so once', () => {
  /** SHA-256 of a secret as stored (to find its row from outside). */
  const digestHex = (secret: string) => createHash('sha256').update(secret).digest('hex')

  test('a bad row from another writer: store_unavailable in every process until it is repaired; no revocation missed', { skip: NO_PYTHON, timeout: 60_000 }, async () => {
    const file = storePath()
    const reported: KeygateError[] = []
    const store = open(file, { onError: (error) => reported.push(error) })
    store.putUser({ id: 'svc', rights: ['*:*'] })
    const first = store.createKey({ userId: 'svc', description: 'first', expiresAt: at(new Date(), DAY) })
    const second = store.createKey({ userId: 'svc', description: 'second', expiresAt: at(new Date(), DAY) })
    const third = store.createKey({ userId: 'svc', description: 'third', expiresAt: at(new Date(), DAY) })
    const other = await StoreProcess.start(file)
    try {
      for (let i = 0; i < 3; i++) assert.equal(store.isAllowed(first.secret, 'svc', 'call'), true) // remembered
      const reason = async (p: StoreProcess, secret: string) => (await p.call('explain', secret, 'svc', 'call')).result.reason as string

      // Another writer stores a rule no keygate can load, with its change row.
      sql(file, [
        [`UPDATE keys SET rules = 'a b:c' WHERE digest = X'${digestHex(third.secret)}'`, []],
        [`INSERT INTO changes (kind, id, op) VALUES ('key', ?, 'put')`, [third.key.id]],
      ])
      const start = Date.now()
      await untilUnavailable(() => store.explain(first.secret, 'svc', 'call').reason, start, 'this process never failed closed', 5)
      assert.equal(store.isAllowed(first.secret, 'svc', 'call'), false, 'the memo does not answer for a store that failed closed')
      assert.equal(store.explain('kg_garbage', 'svc', 'call').reason, 'malformed_key', 'step 1 still comes first')
      await untilUnavailable(() => reason(other, first.secret), start, 'the other process never failed closed', 20)
      throwsStoreError(() => store.setState(second.key.id, 'suspended'), 'STORE_CORRUPT', file)

      // A healthy writer revokes the second key meanwhile: nobody answers from stale state.
      sql(file, [
        [`UPDATE keys SET state = 'revoked' WHERE digest = X'${digestHex(second.secret)}'`, []],
        [`INSERT INTO changes (kind, id, op) VALUES ('key', ?, 'put')`, [second.key.id]],
      ])
      await sleep(1500)
      // Decided before the key is looked up (step 1): the decision names no key.
      assert.deepEqual(store.explain(second.secret, 'svc', 'call'), { allowed: false, reason: 'store_unavailable' })
      assert.equal(await reason(other, second.secret), 'store_unavailable')

      // The row is repaired: both processes catch up, revocation included.
      sql(file, [
        [`UPDATE keys SET rules = 'svc:*' WHERE digest = X'${digestHex(third.secret)}'`, []],
        [`INSERT INTO changes (kind, id, op) VALUES ('key', ?, 'put')`, [third.key.id]],
      ])
      while (store.explain(first.secret, 'svc', 'call').reason !== 'allowed') {
        assert.ok(Date.now() - start < 15_000, 'this process never recovered')
        await sleep(5)
      }
      assert.equal(store.isAllowed(second.secret, 'svc', 'call'), false)
      assert.equal(store.explain(second.secret, 'svc', 'call').reason, 'revoked')
      assert.equal(store.isAllowed(third.secret, 'svc', 'call'), true)
      while ((await reason(other, first.secret)) !== 'allowed') {
        assert.ok(Date.now() - start < 15_000, 'the other process never recovered')
        await sleep(20)
      }
      assert.equal(await reason(other, second.secret), 'revoked')

      // Reported once per episode, and once on recovery: here to onError, there to console.error.
      // The recovery report reaches onError through the event loop, and the other process's line
      // comes through its stderr pipe, both some time after the checks answer again: wait for
      // them, then 100 ms more, so that a third report, which must not come, would be seen.
      const keygateLines = () => other.stderr.split('\n').filter((l) => l.startsWith('keygate:'))
      const reportsBy = Date.now() + 10_000
      while ((reported.length < 2 || keygateLines().length < 2) && Date.now() < reportsBy) await sleep(20)
      await sleep(100)
      assert.deepEqual(
        reported.map((e) => [e instanceof KeygateError, e.code, (e as any).task, (e as any).recovered]),
        [
          [true, 'STORE_CORRUPT', 'sync', false],
          [true, 'STORE_CORRUPT', 'sync', true],
        ],
      )
      assert.match(reported[0]!.message, /a b:c/)
      const lines = keygateLines()
      assert.equal(lines.length, 2, other.stderr)
      assert.match(lines[0]!, /sync failed: STORE_CORRUPT.*store_unavailable/)
      assert.match(lines[1]!, /sync works again/)
      for (const secret of [first.secret, second.secret, third.secret]) assertNoSecret(other.stderr, secret)
    } finally {
      await other.stop()
    }
  })

  test('a backup renamed over the store under running processes: each fails closed, says so once, writes nothing; reopened, it answers from the new file', {
    timeout: 60_000,
  }, async () => {
    const file = storePath()
    const backup = path.join(path.dirname(file), 'backup.db')
    const { reported, store, key } = reportingStore(file)
    store.backup(backup)
    const edited = open(backup)
    edited.setState(key.key.id, 'revoked')
    edited.close()
    const other = await StoreProcess.start(file)
    const reason = async (p: StoreProcess) => (await p.call('explain', key.secret, 'svc', 'call')).result.reason as string
    try {
      for (let i = 0; i < 3; i++) assert.equal(store.isAllowed(key.secret, 'svc', 'call'), true) // remembered
      assert.equal(await reason(other), 'allowed')
      fs.renameSync(backup, file)
      const start = Date.now()
      await untilUnavailable(() => store.explain(key.secret, 'svc', 'call').reason, start, 'this process never noticed its file replaced', 5)
      assert.equal(store.isAllowed(key.secret, 'svc', 'call'), false, 'the memo does not answer for a store that failed closed')
      assert.equal(store.health().connected, false)
      const refused = throwsStoreError(() => store.putRole({ name: 'through-the-old-file', rights: [] }), 'STORE_IO', file)
      assert.match(refused.message, /replaced, moved or removed while open/)
      await untilUnavailable(() => reason(other), start, 'the other process never noticed its file replaced', 20)
      // Each report comes some time after the checks fail closed (this one through the event loop,
      // the other's through its stderr pipe): waited for, so that the wait below only looks for a second.
      const syncFailedLines = () => other.stderr.split('\n').filter((l) => l.includes('sync failed'))
      const reportsBy = Date.now() + 10_000
      while ((!reported.some((e) => (e as any).task === 'sync') || syncFailedLines().length === 0) && Date.now() < reportsBy) await sleep(20)
      await sleep(1200) // past a retry of the background thread: still failing, not reported again
      assert.equal(store.explain(key.secret, 'svc', 'call').reason, 'store_unavailable')
      // health() tells a monitor how long the process has not vouched for its state, as for PostgreSQL.
      const health = store.health()
      assert.equal(health.connected, false)
      assert.ok(health.lagMs >= 1000, `lagMs ${health.lagMs} after failing closed more than 1.2 s ago`)
      // Reported once, as a sync failure (lastUsed, if a use waits to be written, says it is not written).
      assert.deepEqual(
        reported.filter((e) => (e as any).task === 'sync').map((e) => [e instanceof KeygateError, e.code, (e as any).recovered]),
        [[true, 'STORE_IO', false]],
      )
      assert.match(reported[0]!.message, /replaced, moved or removed while open/)
      for (const e of reported) assert.deepEqual([e.code, (e as any).recovered], ['STORE_IO', false])
      const lines = syncFailedLines()
      assert.equal(lines.length, 1, other.stderr)
      assert.match(lines[0]!, /STORE_IO.*replaced, moved or removed while open/)
      assertNoSecret(other.stderr, key.secret)
    } finally {
      await other.stop()
      store.close()
    }
    // The restart after the rename: the file renamed in, nothing of the old one's last moments.
    const reopened = open(file)
    assert.equal(reopened.explain(key.secret, 'svc', 'call').reason, 'revoked')
    assert.equal(reopened.getRole('through-the-old-file'), null)
    reopened.close()
  })

  test('a backup restored into the store under a running process: read afresh, and the step back in time reported with its recovery', {
    skip: NO_PYTHON,
    timeout: 60_000,
  }, async () => {
    const file = storePath()
    const backup = path.join(path.dirname(file), 'backup.db')
    const { reported, store, key } = reportingStore(file)
    store.backup(backup)
    store.setState(key.key.id, 'revoked')
    assert.equal(store.explain(key.secret, 'svc', 'call').reason, 'revoked')
    restoreElsewhere(file, backup)
    // As documented: what was changed after the backup is undone, the revocation among it.
    const start = Date.now()
    while (store.explain(key.secret, 'svc', 'call').reason !== 'allowed') {
      assert.ok(Date.now() - start < 5000, 'this process never read the restored file')
      await sleep(5)
    }
    // The operator must hear of it: a revocation undone under running gateways is no routine catch-up.
    const sync = await syncReports(reported)
    while (sync.length < 2 && Date.now() - start < 5000) {
      await sleep(10)
      sync.splice(0, sync.length, ...reported.filter((e) => (e as any).task === 'sync'))
    }
    assert.deepEqual(
      sync.map((e) => [e instanceof KeygateError, e.code, (e as any).recovered]),
      [
        [true, 'STORE_UNAVAILABLE', false],
        [true, 'STORE_UNAVAILABLE', true],
      ],
    )
    assert.match(sync[0]!.message, /restored from another copy while open/)
    assert.match(sync[0]!.message, /undone/)
    assert.equal(store.health().connected, true)
    assertNoSecret(sync.map((e) => e.message).join('\n'), key.secret)
    store.close()
  })

  test('the store file truncated under running processes: each fails closed and says so, writes nothing, and the -wal is kept', {
    timeout: 60_000,
  }, async () => {
    const file = storePath()
    const { reported, store, key } = reportingStore(file)
    const other = await StoreProcess.start(file)
    const reason = async (p: StoreProcess) => (await p.call('explain', key.secret, 'svc', 'call')).result.reason as string
    try {
      assert.equal(store.isAllowed(key.secret, 'svc', 'call'), true)
      assert.equal(await reason(other), 'allowed')
      truncateElsewhere(file)
      const start = Date.now()
      await untilUnavailable(() => store.explain(key.secret, 'svc', 'call').reason, start, 'this process never noticed its file truncated', 5)
      assert.equal(store.isAllowed(key.secret, 'svc', 'call'), false, 'the memo does not answer for a store that failed closed')
      assert.equal(store.health().connected, false)
      const refused = throwsStoreError(() => store.setState(key.key.id, 'revoked'), 'STORE_CORRUPT', file)
      assert.match(refused.message, /truncated or overwritten while open/)
      await untilUnavailable(() => reason(other), start, 'the other process never noticed the file truncated', 20)
      const sync = await syncReports(reported)
      assert.deepEqual(
        sync.map((e) => [e instanceof KeygateError, e.code, (e as any).recovered]),
        [[true, 'STORE_CORRUPT', false]],
      )
      assert.match(sync[0]!.message, /truncated or overwritten while open/)
      // A process opening the file now is refused, and leaves the log (the store's last pages) in place.
      assert.ok(fs.statSync(`${file}-wal`).size > 0)
      throwsStoreError(() => KeyStore.open(file), 'STORE_CORRUPT', file)
      assert.ok(fs.statSync(`${file}-wal`).size > 0, 'opening the truncated file deleted its -wal')
      assert.equal(await reason(other), 'store_unavailable')
    } finally {
      await other.stop()
      store.close()
    }
  })

  test('the store file truncated with a key use still to be recorded: the flush does not delete the -wal, and admin calls say truncated', {
    timeout: 60_000,
  }, async () => {
    const file = storePath()
    const { reported, store, key } = reportingStore(file)
    try {
      await sleep(1500) // past the first lastUsedAt flush: nothing to flush yet
      assert.equal(store.isAllowed(key.secret, 'svc', 'call'), true) // a use, flushed within a second
      truncateElsewhere(file)
      await sleep(1500)
      assert.ok(fs.existsSync(`${file}-wal`) && fs.statSync(`${file}-wal`).size > 0, "the store's own connection deleted the -wal of the truncated file")
      const refused = throwsStoreError(() => store.setState(key.key.id, 'revoked'), 'STORE_CORRUPT', file)
      assert.match(refused.message, /truncated or overwritten while open/)
      assert.ok(!reported.some((e) => /deleted or replaced/.test(e.message)), reported.map((e) => e.message).join('\n'))
      throwsStoreError(() => KeyStore.open(file), 'STORE_CORRUPT', file)
    } finally {
      store.close()
    }
  })

  for (const sidecar of ['-wal', '-shm']) {
    test(`the store's ${sidecar} file deleted under running processes: each fails closed and says so, writes nothing; reopened, nothing is lost`, {
      timeout: 60_000,
    }, async () => {
      const file = storePath()
      const { reported, store, key } = reportingStore(file)
      const other = await StoreProcess.start(file)
      const reason = async (p: StoreProcess) => (await p.call('explain', key.secret, 'svc', 'call')).result.reason as string
      try {
        assert.equal(store.isAllowed(key.secret, 'svc', 'call'), true)
        assert.equal(await reason(other), 'allowed')
        // A process opening the store after this would make a new one and share nothing with these
        // (a new -shm: no common locks, each writing over the other's log).
        fs.rmSync(`${file}${sidecar}`)
        const start = Date.now()
        await untilUnavailable(() => store.explain(key.secret, 'svc', 'call').reason, start, `this process never noticed its ${sidecar} deleted`, 5)
        assert.equal(store.health().connected, false)
        const refused = throwsStoreError(() => store.setState(key.key.id, 'revoked'), 'STORE_IO', file)
        assert.match(refused.message, /-wal or -shm file of store .* was deleted or replaced while open/)
        await untilUnavailable(() => reason(other), start, `the other process never noticed the ${sidecar} deleted`, 20)
        const sync = await syncReports(reported)
        assert.deepEqual(
          sync.map((e) => [e.code, (e as any).recovered]),
          [['STORE_IO', false]],
        )
      } finally {
        await other.stop()
        store.close()
      }
      const reopened = open(file)
      assert.equal(reopened.explain(key.secret, 'svc', 'call').reason, 'allowed')
      assert.equal(reopened.verifyAudit().ok, true)
      reopened.close()
    })
  }

  test('onError must be a function', () => {
    throwsCode(() => KeyStore.inMemory({ onError: 'log' as never }), 'INVALID_ARGUMENT', 'onError')
    throwsCode(() => KeyStore.open(storePath(), { onError: 1 as never }), 'INVALID_ARGUMENT', 'onError')
  })

  test('a store with onError does not keep the process alive', () => {
    const file = storePath()
    const script = `const { KeyStore } = require(${JSON.stringify(path.join(__dirname, '..', 'index.js'))})
      const store = KeyStore.open(${JSON.stringify(file)}, { onError: () => {} })
      store.putUser({ id: 'u' })
      KeyStore.inMemory({ onError: () => {} })`
    const r = spawnSync(NODE, ['-e', script], { encoding: 'utf8', timeout: 10_000 })
    assert.equal(r.signal, null, `the process did not exit by itself: ${r.stderr}`)
    assert.equal(r.status, 0, r.stderr)
  })
})
