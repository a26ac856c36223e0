// The purge at open of keys expired longer ago than purgeExpiredAfterDays (default 7), audited.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'

import type { KeyStore } from '../index.js'
import { DAY, T0, assertNoSecret, at, throwsCode } from './helpers.js'
import { open, storePath } from './support/durable.js'

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
})
