// The purge at open of keys expired longer ago than purgeExpiredAfterDays (default 7), audited.
import { describe, test } from 'node:test'
import type { TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'

import type { KeyStore } from '../index.js'
import { DAY, T0, assertNoSecret, at, throwsCode } from './helpers.js'
import { children, open, storePath, wall } from './support/durable.js'
import { StoreProcess } from './support/child-store.js'
import { LOCK_AGAIN_WHEN_REVOKED, NO_PYTHON } from './support/python-sqlite.js'

describe('purge of long-expired keys', () => {
  function setup() {
    const file = storePath()
    const store = open(file, { now: T0 })
    store.putUser({ id: 'u', rights: ['svc:*'] })
    const k1 = store.createKey({ userId: 'u', description: 'expires day 1', expiresAt: at(T0, DAY) })
    const k2 = store.createKey({ userId: 'u', description: 'expires day 3', expiresAt: at(T0, 3 * DAY) })
    const k3 = store.createKey({ userId: 'u', description: 'revoked, expires day 1', expiresAt: at(T0, DAY) })
    store.setState(k3.key.id, 'revoked')
    const k4 = store.createKey({ userId: 'u', description: 'expires day 30', expiresAt: at(T0, 30 * DAY) })
    store.close()
    return { file, k1, k2, k3, k4 }
  }
  const ids = (store: KeyStore) =>
    store
      .listKeys()
      .map((k) => k.id)
      .sort()
  const purges = (store: KeyStore) => store.audit({ limit: 1000 }).filter((e) => e.action === 'purgeExpired')

  test('keys expired more than 7 days (default) are deleted at open, and audited; younger ones stay', () => {
    const { file, k1, k2, k3, k4 } = setup()
    const exactly7 = open(file, { now: at(T0, 8 * DAY) })
    assert.deepEqual(ids(exactly7), [k1, k2, k3, k4].map((k) => k.key.id).sort(), 'expired exactly 7 days: kept')
    assert.deepEqual(purges(exactly7), [])
    exactly7.close()

    const store = open(file, { now: at(T0, 9 * DAY) })
    assert.deepEqual(ids(store), [k2, k4].map((k) => k.key.id).sort())
    assert.equal(store.explain(k1.secret, 'svc', 'x').reason, 'unknown_key')
    assert.equal(store.explain(k2.secret, 'svc', 'x').reason, 'expired')
    const entries = purges(store)
    assert.deepEqual(entries.map((e) => e.keyId).sort(), [k1.key.id, k3.key.id].sort())
    for (const e of entries) {
      assert.equal(e.userId, 'u')
      assert.equal(e.at.getTime(), at(T0, 9 * DAY).getTime())
      assert.ok(!('actor' in e))
      assert.ok(e.changes.deleted, 'the entry records what was deleted')
      assertNoSecret(e, k1.secret)
      assertNoSecret(e, k3.secret)
    }
    assert.equal(store.verifyAudit().ok, true)
    store.close()

    const again = open(file, { now: at(T0, 9 * DAY) })
    assert.equal(purges(again).length, 2, 'nothing more to purge')
    assert.deepEqual(ids(again), [k2, k4].map((k) => k.key.id).sort())
    again.close()
  })

  test('purgeExpiredAfterDays: 30 keeps them; 0 deletes every expired key; a negative value is refused', () => {
    const { file, k1, k2, k3, k4 } = setup()
    const patient = open(file, { now: at(T0, 9 * DAY), purgeExpiredAfterDays: 30 })
    assert.deepEqual(ids(patient), [k1, k2, k3, k4].map((k) => k.key.id).sort())
    assert.deepEqual(purges(patient), [])
    patient.close()
    throwsCode(() => open(file, { purgeExpiredAfterDays: -1 }), 'INVALID_ARGUMENT')
    const eager = open(file, { now: at(T0, 9 * DAY), purgeExpiredAfterDays: 0 })
    assert.deepEqual(ids(eager), [k4.key.id])
    assert.equal(purges(eager).length, 3)
    eager.close()
  })

  test('the purge deletes, and records, the longest expired first, then by creation: the same trail on every store', () => {
    const file = storePath()
    const store = open(file, { now: T0 })
    store.putUser({ id: 'u', rights: ['svc:*'] })
    // Twelve keys, expiring on days 3, 2 and 1 by turns: four share each instant.
    const created = Array.from({ length: 12 }, (_, i) => store.createKey({ userId: 'u', description: `key ${i}`, expiresAt: at(T0, (3 - (i % 3)) * DAY) }))
    store.close()
    const purged = open(file, { now: at(T0, 20 * DAY) })
    const expected = [...created.entries()].sort(([i, a], [j, b]) => a.key.expiresAt.getTime() - b.key.expiresAt.getTime() || i - j).map(([, k]) => k.key.id)
    assert.deepEqual(
      purges(purged)
        .reverse()
        .map((e) => e.keyId),
      expected,
    )
    purged.close()
  })

  test('the background purge never keeps a process from seeing another process revoke a key', {
    skip: NO_PYTHON,
    timeout: 150_000,
  }, async (t: TestContext) => {
    // The reader's purge (a minute after it opens, a key having expired) finds the write lock
    // taken by a third process (an operator's sqlite3 shell, say). Meanwhile this process revokes a
    // key, and the third process takes the lock again at once and holds it 3 s more.
    const file = storePath()
    const store = open(file)
    store.putUser({ id: 'u', rights: ['svc:*'] })
    store.createKey({ userId: 'u', description: 'expires soon', expiresAt: new Date(Date.now() + 3000) })
    const { key, secret } = store.createKey({ userId: 'u', description: 'revoked', expiresAt: at(new Date(), DAY) })
    const reader = await StoreProcess.start(file, { purgeExpiredAfterDays: 0 })
    const readyAt = wall()
    const releaseAt = readyAt + 61_500
    const grabber = `import sqlite3, sys, time
path, start, release = sys.argv[1], float(sys.argv[2]) / 1000, float(sys.argv[3]) / 1000
time.sleep(max(0, start - time.time()))
c = sqlite3.connect(path, isolation_level=None, timeout=10)
c.execute('BEGIN IMMEDIATE')
time.sleep(max(0, release - time.time()))
c.execute('ROLLBACK')
${LOCK_AGAIN_WHEN_REVOKED}`
    const locker = spawn('python3', ['-c', grabber, file, String(readyAt + 58_000), String(releaseAt)], { stdio: ['ignore', 'inherit', 'inherit'] })
    children.add(locker)
    const lockerDone = new Promise<void>((resolve) => locker.on('exit', () => resolve()))
    await new Promise<void>((resolve) => setTimeout(resolve, releaseAt - 50 - wall()))
    const watchId = await reader.watch(secret, false, 15_000)
    store.setState(key.id, 'revoked') // waits for the lock's first hold to end
    const revokedAt = wall()
    const seen = await reader.reply(watchId)
    locker.kill('SIGKILL')
    await lockerDone
    children.delete(locker)
    assert.equal(seen.seen, true, 'the revocation was never seen')
    t.diagnostic(`seen after ${(seen.at - revokedAt).toFixed(1)} ms`)
    assert.ok(seen.at - revokedAt < 250, `the reader allowed the revoked key ${(seen.at - revokedAt).toFixed(0)} ms after the revocation`)
    const purged = await reader.call('listKeys')
    await reader.call('exit').catch(() => {})
    store.close()
    assert.equal(purged.ok, true)
  })
})
