// KeyStore.open: everything written survives close and reopen (users, roles, keys with every
// field, rotation, deletion, lastUsedAt, the audit trail), and secrets decide as before.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import * as fs from 'node:fs'

import { KeyStore } from '../index.js'
import type { Decision } from '../index.js'
import { DAY, HOUR, MINUTE, T0, at, plainKey, throwsCode } from './helpers.js'
import { open, storePath } from './support/durable.js'

/** Everything observable about a store, without side effects on lastUsedAt. */
function contents(store: KeyStore): unknown {
  const keys = store.listKeys()
  return {
    users: store.listUsers(),
    roles: store.listRoles(),
    keys: keys.map(plainKey),
    byId: keys.map((k) => plainKey(store.getKey(k.id))),
  }
}

describe('persistence: everything survives close and reopen', () => {
  test('store.created: true when open made the file (or found it empty), false when it opened an existing store', () => {
    const file = storePath()
    const made = open(file)
    assert.equal(made.created, true)
    made.close()
    const reopened = open(file)
    assert.equal(reopened.created, false)
    reopened.close()
    const empty = storePath()
    fs.writeFileSync(empty, '')
    const filled = open(empty)
    assert.equal(filled.created, true)
    filled.close()
    assert.equal(KeyStore.inMemory().created, true)
  })

  test('users, roles, keys (all fields, rules, states, expiry), rotation and deletion; secrets still check', () => {
    const file = storePath()
    const store = open(file, { now: T0 })
    store.putRole({ name: 'reader', rights: ['data:entityBrowseRecords2', 'data:entity*Record'] })
    store.putRole({ name: 'admin', rights: ['admin:*'] })
    store.putRole({ name: 'empty', rights: [] })
    store.putUser({ id: 'alice@example.com', rights: ['session:*', 'apps/com.hornbill.core/*:*'], roles: ['reader', 'admin'] })
    store.putUser({ id: 'bob', status: 'suspended', rights: ['session:*'] })
    store.putUser({ id: 'carol.c', status: 'archived', rights: [], roles: ['empty'] })
    store.putUser({ id: 'dave', rights: ['*:*'] })

    const description = 'Ünïcödé ✓ "quoted" \'single\'\nsecond line\ttab — 🔑'
    const k1 = store.createKey({
      userId: 'alice@example.com',
      description,
      expiresAt: at(T0, 30 * DAY),
      rules: ['  session:*  ', 'data:entity???Record', 'ip=10.0.0.0/8', 'ip=2001:DB8::/32'],
    })
    const k2 = store.createKey({ userId: 'alice@example.com', description: '', expiresAt: at(T0, DAY), state: 'suspended' })
    const k3 = store.createKey({ userId: 'alice@example.com', description: 'to revoke', expiresAt: at(T0, 2 * DAY) })
    store.setState(k3.key.id, 'revoked')
    const k4 = store.createKey({ userId: 'alice@example.com', description: 'to update', expiresAt: at(T0, DAY), rules: ['session:*'] })
    store.setNow(at(T0, MINUTE))
    store.updateKey(k4.key.id, { description: 'updated', rules: [], expiresAt: at(T0, 90 * DAY) })
    const k5 = store.createKey({ userId: 'alice@example.com', description: 'rotate with overlap', expiresAt: at(T0, 10 * DAY) })
    const k5b = store.rotateKey(k5.key.id, { overlapSeconds: 3600 })
    const k6 = store.createKey({ userId: 'alice@example.com', description: 'rotate now', expiresAt: at(T0, 10 * DAY), rules: ['session:get*'] })
    const k6b = store.rotateKey(k6.key.id)
    const k7 = store.createKey({ userId: 'alice@example.com', description: 'to delete', expiresAt: at(T0, DAY) })
    assert.equal(store.deleteKey(k7.key.id), true)
    const k8 = store.createKey({ userId: 'dave', description: 'gone with dave', expiresAt: at(T0, DAY) })
    assert.equal(store.deleteUser('dave'), true)
    assert.equal(store.deleteRole('admin'), true)
    const kb = store.createKey({ userId: 'bob', description: 'of a suspended user', expiresAt: at(T0, DAY) })
    // A use at a known instant: lastUsedAt must persist too.
    store.setNow(at(T0, 2 * MINUTE))
    assert.equal(store.isAllowed(k1.secret, 'session', 'getSessionInfo', '10.1.2.3'), true)
    store.setNow(at(T0, 3 * MINUTE))

    const probes: Array<[string, string, string, string | undefined]> = [
      [k1.secret, 'session', 'getSessionInfo', '10.1.2.3'],
      [k1.secret, 'data', 'entityGetRecord', '2001:db8::1'],
      [k1.secret, 'data', 'entityGetRecord', '192.168.0.1'],
      [k1.secret, 'admin', 'keysafeGetKey', '10.1.2.3'],
      [k2.secret, 'session', 'x', undefined],
      [k3.secret, 'session', 'x', undefined],
      [k4.secret, 'data', 'entityBrowseRecords2', undefined],
      [k4.secret, 'admin', 'x', undefined],
      [k5.secret, 'session', 'x', undefined],
      [k5b.secret, 'session', 'x', undefined],
      [k6.secret, 'session', 'getX', undefined],
      [k6b.secret, 'session', 'getX', undefined],
      [k7.secret, 'session', 'x', undefined],
      [k8.secret, 'session', 'x', undefined],
      [kb.secret, 'session', 'x', undefined],
    ]
    const decide = (s: KeyStore) => probes.map(([secret, service, api, ip]) => s.explain(secret, service, api, ip))

    // Decisions first: explain is a diagnosis and records no use; the allowed isAllowed
    // calls record theirs (lastUsedAt) at the frozen instant.
    const decisionsBefore = decide(store)
    for (const [secret, service, api, ip] of probes) store.isAllowed(secret, service, api, ip)
    const before = contents(store)
    const auditBefore = store.audit({ limit: 1000 })
    store.close()

    const reopened = open(file, { now: at(T0, 3 * MINUTE) })
    assert.deepEqual(contents(reopened), before, 'the store reads back exactly what was written')
    assert.deepEqual(decide(reopened), decisionsBefore, 'every secret decides as before')
    assert.deepEqual(contents(reopened), before)
    assert.deepEqual(reopened.audit({ limit: 1000 }), auditBefore)
    assert.deepEqual(reopened.verifyAudit(), { ok: true, entries: auditBefore.length })

    // Spot checks against the values written, so that a store losing them on both sides still fails.
    const reasons = decide(reopened).map((d: Decision) => d.reason)
    assert.deepEqual(reasons, [
      'allowed',
      'allowed',
      'ip_not_allowed',
      'user_lacks_right', // admin role deleted
      'suspended',
      'revoked',
      'allowed',
      'user_lacks_right',
      'allowed', // in its overlap hour
      'allowed',
      'revoked',
      'allowed',
      'unknown_key',
      'unknown_key',
      'user_inactive',
    ])
    assert.deepEqual(reopened.listRoles(), [
      { name: 'empty', rights: [] },
      { name: 'reader', rights: ['data:entityBrowseRecords2', 'data:entity*Record'] },
    ])
    assert.deepEqual(reopened.listUsers(), [
      { id: 'alice@example.com', status: 'active', rights: ['session:*', 'apps/com.hornbill.core/*:*'], roles: ['reader'] },
      { id: 'bob', status: 'suspended', rights: ['session:*'], roles: [] },
      { id: 'carol.c', status: 'archived', rights: [], roles: ['empty'] },
    ])
    const r1 = reopened.getKey(k1.key.id)!
    assert.equal(r1.description, description)
    assert.equal(r1.userId, 'alice@example.com')
    assert.equal(r1.state, 'active')
    assert.deepEqual(
      r1.rules,
      ['  session:*  ', 'data:entity???Record', 'ip=10.0.0.0/8', 'ip=2001:DB8::/32'].map((r) => KeyStore.validateRule(r)),
    )
    assert.equal(r1.expiresAt.getTime(), at(T0, 30 * DAY).getTime())
    assert.equal(r1.createdAt.getTime(), T0.getTime(), 'createdAt is the frozen instant')
    assert.equal(r1.updatedAt.getTime(), T0.getTime())
    assert.equal(r1.lastUsedAt?.getTime(), at(T0, 3 * MINUTE).getTime(), 'lastUsedAt of the last frozen check')
    assert.equal(reopened.getKey(k6b.key.id)!.lastUsedAt?.getTime(), at(T0, 3 * MINUTE).getTime())
    assert.equal(reopened.getKey(k2.key.id)!.lastUsedAt, null, 'a key never allowed has no lastUsedAt')
    assert.equal(r1.hint, k1.secret.slice(-4))
    assert.equal(reopened.getKey(k2.key.id)!.state, 'suspended')
    assert.equal(reopened.getKey(k3.key.id)!.state, 'revoked')
    const r4 = reopened.getKey(k4.key.id)!
    assert.equal(r4.description, 'updated')
    assert.deepEqual(r4.rules, [])
    assert.equal(r4.expiresAt.getTime(), at(T0, 90 * DAY).getTime())
    assert.equal(r4.updatedAt.getTime(), at(T0, MINUTE).getTime())
    const r5 = reopened.getKey(k5.key.id)!
    assert.equal(r5.state, 'active')
    assert.equal(r5.expiresAt.getTime(), at(T0, MINUTE + HOUR).getTime(), 'the overlap expiry persisted')
    assert.equal(reopened.getKey(k5b.key.id)!.expiresAt.getTime(), at(T0, 10 * DAY).getTime())
    assert.equal(reopened.getKey(k6.key.id)!.state, 'revoked')
    assert.deepEqual(reopened.getKey(k6b.key.id)!.rules, ['session:get*'])
    assert.equal(reopened.getKey(k7.key.id), null)
    assert.equal(reopened.getKey(k8.key.id), null)
    assert.equal(reopened.getUser('dave'), null)
    assert.equal(reopened.listKeys().length, 9)
    assert.equal(reopened.listKeys({ userId: 'alice@example.com', state: 'revoked' }).length, 2)

    // The store still works after reopening: the clock moves, old keys expire, new keys are issued.
    reopened.setNow(at(T0, 2 * HOUR))
    assert.equal(reopened.explain(k5.secret, 'session', 'x').reason, 'expired', 'the rotated key expired after its overlap')
    const fresh = reopened.createKey({ userId: 'alice@example.com', description: 'after reopen', expiresAt: at(T0, DAY) })
    assert.equal(reopened.isAllowed(fresh.secret, 'session', 'x'), true)
    reopened.close()
  })

  test('the key prefix is recorded in the store: new keys keep it, a different one is refused', () => {
    const file = storePath()
    const store = open(file, { keyPrefix: 'acme' })
    store.putUser({ id: 'u', rights: ['*:*'] })
    const first = store.createKey({ userId: 'u', description: '', expiresAt: at(new Date(), DAY) })
    assert.match(first.secret, /^acme_/)
    store.close()

    const again = open(file)
    const second = again.createKey({ userId: 'u', description: '', expiresAt: at(new Date(), DAY) })
    assert.match(second.secret, /^acme_/, 'reopened without keyPrefix, the store keeps its own')
    assert.equal(again.isAllowed(first.secret, 's', 'a'), true)
    again.close()
    const error = throwsCode(() => open(file, { keyPrefix: 'kg' }), 'INVALID_ARGUMENT')
    assert.match(error.message, /acme/)
    const same = open(file, { keyPrefix: 'acme' })
    assert.equal(same.listKeys().length, 2)
    same.close()
  })

  test('an empty file is a new, empty store', () => {
    const file = storePath()
    fs.writeFileSync(file, '')
    const store = open(file)
    assert.deepEqual(store.listUsers(), [])
    store.putUser({ id: 'u' })
    store.close()
    const again = open(file)
    assert.deepEqual(again.listUsers(), [{ id: 'u', status: 'active', rights: [], roles: [] }])
    again.close()
  })
})
