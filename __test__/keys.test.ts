// API keys: issuing, secrets, listing, states, expiry, rotation, lastUsedAt.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'

import { KeyStore } from '../index.js'
import type { ApiKey } from '../index.js'
import { API_KEY_FIELDS, DAY, allowedTwice, HOUR, MINUTE, SECOND, T0, assertNoSecret, at, checksum, frozenStore, issue, throwsCode, withUser } from './helpers.js'

const SECRET_RE = /^kg_[0-9A-Za-z]{49}$/

describe('createKey', () => {
  test('returns { key, secret } with every ApiKey field', () => {
    const store = withUser(frozenStore())
    const expiresAt = at(T0, 30 * DAY)
    const issued = store.createKey({
      userId: 'integration',
      description: 'Hornbill sync job',
      expiresAt,
      rules: ['session:getSessionInfo', '  data:entityBrowseRecords2 ', 'IP=142.250.200.0/24'],
    })
    assert.deepEqual(Object.keys(issued).sort(), ['key', 'secret'])
    const { key, secret } = issued
    assert.deepEqual(Object.keys(key).sort(), API_KEY_FIELDS)
    assert.match(key.id, /^key_[0-9A-Za-z]+$/)
    assert.equal(key.userId, 'integration')
    assert.equal(key.description, 'Hornbill sync job')
    assert.equal(key.state, 'active')
    assert.ok(key.expiresAt instanceof Date)
    assert.equal(key.expiresAt.getTime(), expiresAt.getTime())
    assert.deepEqual(key.rules, ['session:getSessionInfo', 'data:entityBrowseRecords2', 'ip=142.250.200.0/24'])
    assert.ok(key.createdAt instanceof Date && key.updatedAt instanceof Date)
    assert.equal(key.createdAt.getTime(), T0.getTime())
    assert.equal(key.updatedAt.getTime(), T0.getTime())
    assert.equal(key.lastUsedAt, null)
    assert.equal(key.hint, secret.slice(-4))
    assert.match(secret, SECRET_RE)
    assert.deepEqual(store.getKey(key.id), key)
  })

  test('secret: kg_ + 43 random base62 chars + 6-char base62 CRC32 of everything before it', () => {
    const store = withUser(KeyStore.inMemory())
    for (let i = 0; i < 20; i++) {
      const { secret, key } = issue(store)
      assert.match(secret, SECRET_RE)
      assert.equal(secret.length, 3 + 43 + 6)
      assert.equal(secret.slice(-6), checksum(secret.slice(0, -6)), 'checksum is base62 CRC32 of the text before it')
      assert.equal(key.hint, secret.slice(-4))
      assert.equal(key.hint.length, 4)
    }
  })

  test('two keys get distinct secrets and ids (also across many keys)', () => {
    const store = withUser(KeyStore.inMemory())
    const secrets = new Set<string>()
    const ids = new Set<string>()
    const bodies = new Set<string>()
    for (let i = 0; i < 200; i++) {
      const { secret, key } = issue(store)
      secrets.add(secret)
      ids.add(key.id)
      bodies.add(secret.slice(3, 3 + 43))
    }
    assert.equal(secrets.size, 200)
    assert.equal(ids.size, 200)
    assert.equal(bodies.size, 200)
  })

  test('the random part uses the whole base62 alphabet (not hex, not a counter)', () => {
    const store = withUser(KeyStore.inMemory())
    const seen = new Set<string>()
    for (let i = 0; i < 100; i++) for (const c of issue(store).secret.slice(3, 46)) seen.add(c)
    assert.ok(seen.size > 55, `only ${seen.size} distinct characters in 4,300`)
  })

  test('custom keyPrefix', () => {
    for (const keyPrefix of ['acme', 'a', 'hb2', 'abcdefghijklmnop']) {
      const store = withUser(KeyStore.inMemory({ keyPrefix }))
      const { secret } = issue(store)
      assert.match(secret, new RegExp(`^${keyPrefix}_[0-9A-Za-z]{49}$`))
      assert.equal(secret.slice(-6), checksum(secret.slice(0, -6)))
      assert.equal(store.isAllowed(secret, 'session', 'getSessionInfo'), true)
    }
  })

  test('a secret of another prefix is malformed for this store', () => {
    const kg = withUser(KeyStore.inMemory())
    const acme = withUser(KeyStore.inMemory({ keyPrefix: 'acme' }))
    const fromKg = issue(kg).secret
    const fromAcme = issue(acme).secret
    assert.equal(acme.explain(fromKg, 'session', 'getSessionInfo').reason, 'malformed_key')
    assert.equal(kg.explain(fromAcme, 'session', 'getSessionInfo').reason, 'malformed_key')
  })

  test('invalid keyPrefix is INVALID_ARGUMENT', () => {
    for (const keyPrefix of ['', 'Kg', '1kg', 'k_g', 'kg-', 'abcdefghijklmnopq', 'kg ', 'ké']) {
      throwsCode(() => KeyStore.inMemory({ keyPrefix }), 'INVALID_ARGUMENT')
    }
  })

  test('ApiKey never contains the secret or its digest (createKey, getKey, listKeys, explain, rotateKey)', () => {
    const store = withUser(frozenStore())
    const { key, secret } = issue(store, { rules: ['session:*'] })
    assertNoSecret(key, secret)
    assert.equal(store.isAllowed(secret, 'session', 'getSessionInfo'), true)
    assertNoSecret(store.getKey(key.id), secret)
    assertNoSecret(store.listKeys(), secret)
    assertNoSecret(store.explain(secret, 'session', 'getSessionInfo'), secret)
    assertNoSecret(store.explain(secret, 'admin', 'userCreate'), secret)
    assertNoSecret(store.explain(secret, 'bad name', 'x'), secret)
    const rotated = store.rotateKey(key.id, { overlapSeconds: 60 })
    assertNoSecret(rotated.key, rotated.secret)
    assertNoSecret(rotated.key, secret)
    assertNoSecret(store.listKeys(), rotated.secret)
    assertNoSecret(store.listKeys(), secret)
    for (const k of store.listKeys()) {
      for (const value of Object.values(k)) {
        if (typeof value === 'string') assert.ok(!value.startsWith('kg_'), `field looks like a secret: ${value}`)
      }
    }
  })

  test('description is free text, may be empty, at most 1,024 chars', () => {
    const store = withUser(frozenStore())
    assert.equal(issue(store, { description: '' }).key.description, '')
    const text = 'Sync job — ünïcödé ✓ '.padEnd(1024, 'x')
    assert.equal(text.length, 1024)
    assert.equal(issue(store, { description: text }).key.description, text)
    throwsCode(() => issue(store, { description: 'x'.repeat(1025) }), 'INVALID_ARGUMENT')
  })

  test('the 1,024 characters of a description are Unicode scalar values, not UTF-16 code units', () => {
    const store = withUser(frozenStore())
    const astral = '🔑'.repeat(1024) // 2,048 code units
    assert.equal(issue(store, { description: astral }).key.description, astral)
    const { key } = issue(store)
    assert.equal(store.updateKey(key.id, { description: astral }).description, astral)
    throwsCode(() => issue(store, { description: `${astral}x` }), 'INVALID_ARGUMENT', 'is 1025 characters long; at most 1024')
    throwsCode(() => store.updateKey(key.id, { description: `x${astral}` }), 'INVALID_ARGUMENT', 'is 1025 characters long; at most 1024')
  })

  test('description is required and must be a string', () => {
    const store = withUser(frozenStore())
    const expiresAt = at(T0, DAY)
    throwsCode(() => store.createKey({ userId: 'integration', expiresAt } as never), 'INVALID_ARGUMENT', 'description')
    throwsCode(() => store.createKey({ userId: 'integration', description: 42, expiresAt } as never), 'INVALID_ARGUMENT', 'description')
    assert.deepEqual(store.listKeys(), [])
  })

  test('createKey for an unknown user is UNKNOWN_USER naming it', () => {
    const store = frozenStore()
    throwsCode(() => issue(store, { userId: 'ghost' }), 'UNKNOWN_USER', 'ghost')
  })

  test("createKey with state 'suspended' makes a suspended key; 'revoked' and others are INVALID_STATE", () => {
    const store = withUser(frozenStore())
    const { key, secret } = issue(store, { state: 'suspended' })
    assert.equal(key.state, 'suspended')
    assert.equal(store.explain(secret, 'session', 'getSessionInfo').reason, 'suspended')
    assert.equal(issue(store, { state: 'active' }).key.state, 'active')
    throwsCode(() => issue(store, { state: 'revoked' as never }), 'INVALID_STATE')
    throwsCode(() => issue(store, { state: 'enabled' as never }), 'INVALID_STATE', 'enabled')
    assert.equal(store.listKeys().length, 2)
  })
})

describe('returned and given values are copies', () => {
  test('mutating a returned key or a given rules array does not change the store', () => {
    const store = withUser(frozenStore())
    const rules = ['session:*']
    const { key, secret } = issue(store, { rules })
    rules.push('admin:*')
    key.rules.push('admin:*')
    key.state = 'revoked'
    assert.deepEqual(store.getKey(key.id)!.rules, ['session:*'])
    assert.equal(store.getKey(key.id)!.state, 'active')
    assert.equal(store.explain(secret, 'admin', 'userCreate').reason, 'no_matching_rule')
    const listed = store.listKeys()
    listed[0]!.rules.length = 0
    assert.deepEqual(store.listKeys()[0]!.rules, ['session:*'])
    const user = store.getUser('integration')!
    user.rights.push('x:y')
    assert.deepEqual(store.getUser('integration')!.rights, ['*:*'])
  })
})

describe('getKey / listKeys', () => {
  test('getKey of an unknown, malformed or deleted id is null', () => {
    const store = withUser(frozenStore())
    const { key } = issue(store)
    assert.equal(store.getKey('key_doesnotexist'), null)
    assert.equal(store.getKey('key_0000000000000000000000'), null)
    assert.equal(store.getKey(''), null)
    assert.equal(store.getKey('not a key id at all'), null)
    assert.equal(store.deleteKey(key.id), true)
    assert.equal(store.getKey(key.id), null)
  })

  test('listKeys is newest first; with a frozen clock ties go by creation order', () => {
    const store = withUser(frozenStore())
    const ids: string[] = []
    for (let i = 0; i < 5; i++) ids.push(issue(store, { description: `k${i}` }).key.id)
    assert.deepEqual(
      store.listKeys().map((k) => k.id),
      [...ids].reverse(),
    )
    store.setNow(at(T0, HOUR))
    const later = issue(store).key.id
    store.setNow(at(T0, 30 * MINUTE))
    const between = issue(store).key.id
    assert.deepEqual(
      store.listKeys().map((k) => k.id),
      [later, between, ...[...ids].reverse()],
    )
  })

  test('listKeys filters by userId and by state, and both', () => {
    const store = frozenStore()
    store.putUser({ id: 'a', rights: ['*:*'] })
    store.putUser({ id: 'b', rights: ['*:*'] })
    const a1 = issue(store, { userId: 'a' }).key
    const b1 = issue(store, { userId: 'b' }).key
    const a2 = issue(store, { userId: 'a', state: 'suspended' }).key
    const a3 = issue(store, { userId: 'a' }).key
    store.setState(a3.id, 'revoked')
    const ids = (keys: ApiKey[]) => keys.map((k) => k.id)
    assert.deepEqual(ids(store.listKeys()), [a3.id, a2.id, b1.id, a1.id])
    assert.deepEqual(ids(store.listKeys({})), [a3.id, a2.id, b1.id, a1.id])
    assert.deepEqual(ids(store.listKeys({ userId: 'a' })), [a3.id, a2.id, a1.id])
    assert.deepEqual(ids(store.listKeys({ userId: 'b' })), [b1.id])
    assert.deepEqual(ids(store.listKeys({ userId: 'nobody' })), [])
    assert.deepEqual(ids(store.listKeys({ state: 'active' })), [b1.id, a1.id])
    assert.deepEqual(ids(store.listKeys({ state: 'suspended' })), [a2.id])
    assert.deepEqual(ids(store.listKeys({ state: 'revoked' })), [a3.id])
    assert.deepEqual(ids(store.listKeys({ userId: 'a', state: 'active' })), [a1.id])
    assert.deepEqual(ids(store.listKeys({ userId: 'b', state: 'revoked' })), [])
    throwsCode(() => store.listKeys({ state: 'expired' as never }), 'INVALID_STATE', 'expired')
  })

  test('listKeys shows keys as getKey does', () => {
    const store = withUser(frozenStore())
    const { key } = issue(store, { rules: ['session:*'] })
    assert.deepEqual(store.listKeys(), [store.getKey(key.id)])
  })
})

describe('key states', () => {
  test('active ⇄ suspended, either → revoked; setState returns the key', () => {
    const store = withUser(frozenStore())
    const { key, secret } = issue(store)
    store.setNow(at(T0, MINUTE))
    const suspended = store.setState(key.id, 'suspended')
    assert.equal(suspended.state, 'suspended')
    assert.equal(suspended.id, key.id)
    assert.equal(suspended.updatedAt.getTime(), at(T0, MINUTE).getTime())
    assert.equal(suspended.createdAt.getTime(), T0.getTime())
    assert.equal(store.explain(secret, 'session', 'getSessionInfo').reason, 'suspended')
    assert.equal(store.setState(key.id, 'active').state, 'active')
    assert.equal(store.isAllowed(secret, 'session', 'getSessionInfo'), true)
    assert.equal(store.setState(key.id, 'revoked').state, 'revoked')
    assert.equal(store.getKey(key.id)!.state, 'revoked')
    assert.equal(store.explain(secret, 'session', 'getSessionInfo').reason, 'revoked')

    const other = issue(store)
    store.setState(other.key.id, 'suspended')
    assert.equal(store.setState(other.key.id, 'revoked').state, 'revoked')
    assert.equal(store.explain(other.secret, 'session', 'getSessionInfo').reason, 'revoked')
  })

  test('revoked is final: REVOKED_IS_FINAL naming the key, and nothing changes', () => {
    const store = withUser(frozenStore())
    const { key, secret } = issue(store)
    const revoked = store.setState(key.id, 'revoked')
    throwsCode(() => store.setState(key.id, 'active'), 'REVOKED_IS_FINAL', key.id)
    throwsCode(() => store.setState(key.id, 'suspended'), 'REVOKED_IS_FINAL', key.id)
    throwsCode(() => store.updateKey(key.id, { description: 'again' }), 'REVOKED_IS_FINAL', key.id)
    throwsCode(() => store.updateKey(key.id, { expiresAt: at(T0, 2 * DAY) }), 'REVOKED_IS_FINAL', key.id)
    throwsCode(() => store.rotateKey(key.id), 'REVOKED_IS_FINAL', key.id)
    assert.deepEqual(store.getKey(key.id), revoked)
    assert.equal(store.explain(secret, 'session', 'getSessionInfo').reason, 'revoked')
    assert.equal(store.listKeys().length, 1)
  })

  test("setState(revoked key, 'revoked') is a no-op returning the key", () => {
    const store = withUser(frozenStore())
    const { key } = issue(store)
    const revoked = store.setState(key.id, 'revoked')
    store.setNow(at(T0, HOUR))
    const again = store.setState(key.id, 'revoked')
    assert.deepEqual(again, revoked)
    assert.deepEqual(store.getKey(key.id), revoked)
  })

  test('an unknown state is INVALID_STATE naming it; an unknown key is UNKNOWN_KEY naming it', () => {
    const store = withUser(frozenStore())
    const { key } = issue(store)
    for (const state of ['disabled', '', 'expired', 'deleted']) {
      throwsCode(() => store.setState(key.id, state as never), 'INVALID_STATE')
    }
    throwsCode(() => store.setState(key.id, 'disabled' as never), 'INVALID_STATE', 'disabled')
    throwsCode(() => store.setState('key_0000000000000000000000', 'suspended'), 'UNKNOWN_KEY', 'key_0000000000000000000000')
    throwsCode(() => store.setState('whatever', 'suspended'), 'UNKNOWN_KEY', 'whatever')
    assert.equal(store.getKey(key.id)!.state, 'active')
  })
})

describe('updateKey', () => {
  test('changes description, rules and expiry; absent fields stay; updatedAt moves', () => {
    const store = withUser(frozenStore())
    const { key, secret } = issue(store, { rules: ['session:*'], description: 'old' })
    store.setNow(at(T0, MINUTE))
    const d = store.updateKey(key.id, { description: 'new' })
    assert.equal(d.description, 'new')
    assert.deepEqual(d.rules, ['session:*'])
    assert.equal(d.expiresAt.getTime(), key.expiresAt.getTime())
    assert.equal(d.updatedAt.getTime(), at(T0, MINUTE).getTime())
    assert.equal(d.createdAt.getTime(), T0.getTime())
    const r = store.updateKey(key.id, { rules: [' data:* ', 'ip=10.0.0.0/8'] })
    assert.deepEqual(r.rules, ['data:*', 'ip=10.0.0.0/8'])
    assert.equal(r.description, 'new')
    const e = store.updateKey(key.id, { expiresAt: at(T0, 10 * DAY) })
    assert.equal(e.expiresAt.getTime(), at(T0, 10 * DAY).getTime())
    assert.deepEqual(e.rules, ['data:*', 'ip=10.0.0.0/8'])
    const cleared = store.updateKey(key.id, { rules: [] })
    assert.deepEqual(cleared.rules, [])
    assert.deepEqual(store.getKey(key.id), cleared)
    assert.equal(store.getKey(key.id)!.hint, secret.slice(-4))
    assert.equal(store.isAllowed(secret, 'admin', 'userCreate'), true)
  })

  test('an empty patch changes nothing', () => {
    const store = withUser(frozenStore())
    const { key } = issue(store)
    store.setNow(at(T0, MINUTE))
    const same = store.updateKey(key.id, {})
    assert.deepEqual(same, key)
  })

  test('expiresAt: undefined in a patch counts as absent (leaves the expiry as it is)', () => {
    const store = withUser(frozenStore())
    const { key } = issue(store)
    const updated = store.updateKey(key.id, { description: 'renamed', expiresAt: undefined })
    assert.equal(updated.description, 'renamed')
    assert.equal(updated.expiresAt.getTime(), key.expiresAt.getTime())
  })

  test('expiry limits apply as at creation; null is EXPIRY_REQUIRED', () => {
    const store = withUser(frozenStore())
    const { key } = issue(store)
    throwsCode(() => store.updateKey(key.id, { expiresAt: null }), 'EXPIRY_REQUIRED')
    throwsCode(() => store.updateKey(key.id, { expiresAt: T0 }), 'EXPIRY_IN_PAST', T0.toISOString())
    throwsCode(() => store.updateKey(key.id, { expiresAt: at(T0, -1) }), 'EXPIRY_IN_PAST')
    throwsCode(() => store.updateKey(key.id, { expiresAt: at(T0, 730 * DAY + 1) }), 'EXPIRY_TOO_FAR')
    assert.equal(store.updateKey(key.id, { expiresAt: at(T0, 730 * DAY) }).expiresAt.getTime(), at(T0, 730 * DAY).getTime())
  })

  test('an unknown key is UNKNOWN_KEY; bad rules are INVALID_RULE', () => {
    const store = withUser(frozenStore())
    const { key } = issue(store)
    throwsCode(() => store.updateKey('key_0000000000000000000000', { description: 'x' }), 'UNKNOWN_KEY', 'key_0000000000000000000000')
    throwsCode(() => store.updateKey(key.id, { rules: ['session:*', 'session'] }), 'INVALID_RULE', 'session')
    throwsCode(() => store.updateKey(key.id, { description: 'x'.repeat(1025) }), 'INVALID_ARGUMENT')
  })

  test('a suspended key can be updated', () => {
    const store = withUser(frozenStore())
    const { key } = issue(store, { state: 'suspended' })
    const updated = store.updateKey(key.id, { description: 'paused' })
    assert.equal(updated.state, 'suspended')
    assert.equal(updated.description, 'paused')
  })
})

describe('expiry', () => {
  test('EXPIRY_REQUIRED when missing, undefined or null', () => {
    const store = withUser(frozenStore())
    throwsCode(() => store.createKey({ userId: 'integration', description: '' } as never), 'EXPIRY_REQUIRED')
    throwsCode(() => store.createKey({ userId: 'integration', description: '', expiresAt: undefined } as never), 'EXPIRY_REQUIRED')
    throwsCode(() => store.createKey({ userId: 'integration', description: '', expiresAt: null } as never), 'EXPIRY_REQUIRED')
    assert.deepEqual(store.listKeys(), [])
  })

  test('EXPIRY_IN_PAST for a past instant and for exactly now, naming it', () => {
    const store = withUser(frozenStore())
    throwsCode(() => issue(store, { expiresAt: T0 }), 'EXPIRY_IN_PAST', T0.toISOString())
    throwsCode(() => issue(store, { expiresAt: at(T0, -DAY) }), 'EXPIRY_IN_PAST', at(T0, -DAY).toISOString())
    assert.equal(issue(store, { expiresAt: at(T0, 1) }).key.expiresAt.getTime(), T0.getTime() + 1)
  })

  test('EXPIRY_TOO_FAR beyond 730 days; exactly 730 days is allowed', () => {
    const store = withUser(frozenStore())
    const limit = at(T0, 730 * DAY)
    assert.equal(issue(store, { expiresAt: limit }).key.expiresAt.getTime(), limit.getTime())
    throwsCode(() => issue(store, { expiresAt: at(T0, 730 * DAY + 1) }), 'EXPIRY_TOO_FAR', at(T0, 730 * DAY + 1).toISOString())
    throwsCode(() => issue(store, { expiresAt: at(T0, 3 * 365 * DAY) }), 'EXPIRY_TOO_FAR')
  })

  test('custom maxLifetimeDays', () => {
    const store = withUser(frozenStore(T0, { maxLifetimeDays: 30 }))
    assert.ok(issue(store, { expiresAt: at(T0, 30 * DAY) }))
    throwsCode(() => issue(store, { expiresAt: at(T0, 30 * DAY + 1) }), 'EXPIRY_TOO_FAR')
    const long = withUser(frozenStore(T0, { maxLifetimeDays: 1000 }))
    assert.ok(issue(long, { expiresAt: at(T0, 1000 * DAY) }))
    throwsCode(() => issue(long, { expiresAt: at(T0, 1000 * DAY + 1) }), 'EXPIRY_TOO_FAR')
  })

  test('maxLifetimeDays is a whole number from 1 to 36,500: both bounds are taken and honoured, 36,501 is refused', () => {
    for (const days of [1, 36_500]) {
      const store = withUser(frozenStore(T0, { maxLifetimeDays: days }))
      assert.equal(store.maxLifetimeDays, days)
      assert.ok(issue(store, { expiresAt: at(T0, days * DAY) }))
      throwsCode(() => issue(store, { expiresAt: at(T0, days * DAY + 1) }), 'EXPIRY_TOO_FAR')
    }
    throwsCode(() => KeyStore.inMemory({ maxLifetimeDays: 36_501 }), 'INVALID_ARGUMENT', 'from 1 to 36500')
  })

  test('invalid maxLifetimeDays is INVALID_ARGUMENT', () => {
    for (const maxLifetimeDays of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      throwsCode(() => KeyStore.inMemory({ maxLifetimeDays }), 'INVALID_ARGUMENT')
    }
    throwsCode(() => KeyStore.inMemory({ maxLifetimeDays: '30' as never }), 'INVALID_ARGUMENT')
  })

  test('the frozen clock: now(), setNow(date), setNow(null)', () => {
    const store = frozenStore()
    assert.equal(store.now().getTime(), T0.getTime())
    store.setNow(at(T0, HOUR))
    assert.equal(store.now().getTime(), T0.getTime() + HOUR)
    store.setNow(null)
    assert.ok(Math.abs(store.now().getTime() - Date.now()) < 5 * SECOND)
    const system = KeyStore.inMemory()
    assert.ok(Math.abs(system.now().getTime() - Date.now()) < 5 * SECOND)
    throwsCode(() => store.setNow(new Date(Number.NaN)), 'INVALID_ARGUMENT')
    throwsCode(() => store.setNow('2025-01-01' as never), 'INVALID_ARGUMENT')
    throwsCode(() => KeyStore.inMemory({ now: new Date(Number.NaN) }), 'INVALID_ARGUMENT')
  })

  test('usable while now < expiresAt; expired at exactly expiresAt and after', () => {
    const store = withUser(frozenStore())
    const { key, secret } = issue(store, { expiresAt: at(T0, HOUR) })
    assert.equal(allowedTwice(store, secret, 'session', 'getSessionInfo'), true)
    store.setNow(at(T0, HOUR - 1))
    assert.equal(store.isAllowed(secret, 'session', 'getSessionInfo'), true)
    store.setNow(at(T0, HOUR))
    assert.equal(store.isAllowed(secret, 'session', 'getSessionInfo'), false)
    assert.deepEqual(store.explain(secret, 'session', 'getSessionInfo'), {
      allowed: false,
      reason: 'expired',
      keyId: key.id,
      userId: 'integration',
    })
    store.setNow(at(T0, 2 * HOUR))
    assert.equal(store.explain(secret, 'session', 'getSessionInfo').reason, 'expired')
    // An expired key stays listed as it was: expiry is not a state.
    assert.equal(store.getKey(key.id)!.state, 'active')
    store.setNow(null)
    assert.equal(store.explain(secret, 'session', 'getSessionInfo').reason, 'expired')
  })

  test('under the system clock a key stops working once expiresAt passes, even right after an allowed check', async () => {
    const store = withUser(KeyStore.inMemory())
    const { secret } = issue(store, { expiresAt: new Date(Date.now() + 700) })
    assert.equal(store.isAllowed(secret, 'session', 'getSessionInfo'), true)
    assert.equal(store.isAllowed(secret, 'session', 'getSessionInfo'), true)
    await sleep(900)
    assert.equal(store.explain(secret, 'session', 'getSessionInfo').reason, 'expired')
    assert.equal(store.isAllowed(secret, 'session', 'getSessionInfo'), false, 'isAllowed still allows an expired key')
  })
})

describe('rotateKey', () => {
  function setup() {
    const store = withUser(frozenStore())
    const old = issue(store, {
      description: 'Hornbill sync job',
      rules: ['session:getSessionInfo', 'data:entity???Record', 'ip=10.0.0.0/8'],
      expiresAt: at(T0, 90 * DAY),
    })
    return { store, old }
  }

  test('the new key keeps user, description, rules and expiry; its secret works', () => {
    const { store, old } = setup()
    store.setNow(at(T0, DAY))
    const { key, secret } = store.rotateKey(old.key.id, { overlapSeconds: 3600 })
    assert.notEqual(key.id, old.key.id)
    assert.notEqual(secret, old.secret)
    assert.match(secret, SECRET_RE)
    assert.equal(key.hint, secret.slice(-4))
    assert.equal(key.userId, 'integration')
    assert.equal(key.description, 'Hornbill sync job')
    assert.deepEqual(key.rules, old.key.rules)
    assert.equal(key.expiresAt.getTime(), old.key.expiresAt.getTime())
    assert.equal(key.state, 'active')
    assert.equal(key.createdAt.getTime(), at(T0, DAY).getTime())
    assert.equal(key.lastUsedAt, null)
    assert.deepEqual(store.getKey(key.id), key)
    assert.equal(store.listKeys()[0]!.id, key.id, 'the new key is the newest')
    assert.equal(store.isAllowed(secret, 'session', 'getSessionInfo', '10.1.2.3'), true)
    assert.equal(store.isAllowed(secret, 'data', 'entityAddRecord', '10.1.2.3'), true)
    assert.equal(store.explain(secret, 'session', 'getSessionInfo', '192.168.0.1').reason, 'ip_not_allowed')
  })

  test('the old secret works during overlapSeconds and not after', () => {
    const { store, old } = setup()
    const probe = () => allowedTwice(store, old.secret, 'session', 'getSessionInfo', '10.1.2.3')
    assert.equal(probe(), true)
    const { secret } = store.rotateKey(old.key.id, { overlapSeconds: 600 })
    assert.equal(probe(), true)
    assert.equal(store.getKey(old.key.id)!.state, 'active')
    assert.equal(store.getKey(old.key.id)!.expiresAt.getTime(), at(T0, 600 * SECOND).getTime())
    store.setNow(at(T0, 600 * SECOND - 1))
    assert.equal(probe(), true)
    store.setNow(at(T0, 600 * SECOND))
    assert.equal(probe(), false)
    assert.equal(store.explain(old.secret, 'session', 'getSessionInfo', '10.1.2.3').reason, 'expired')
    assert.equal(store.isAllowed(secret, 'session', 'getSessionInfo', '10.1.2.3'), true)
  })

  test('default overlap 0 revokes the old key at once', () => {
    const { store, old } = setup()
    assert.equal(allowedTwice(store, old.secret, 'session', 'getSessionInfo', '10.1.2.3'), true)
    const { secret } = store.rotateKey(old.key.id)
    assert.equal(store.isAllowed(old.secret, 'session', 'getSessionInfo', '10.1.2.3'), false)
    assert.equal(store.explain(old.secret, 'session', 'getSessionInfo', '10.1.2.3').reason, 'revoked')
    assert.equal(store.getKey(old.key.id)!.state, 'revoked')
    assert.equal(store.isAllowed(secret, 'session', 'getSessionInfo', '10.1.2.3'), true)
    const explicit = issue(store)
    store.rotateKey(explicit.key.id, { overlapSeconds: 0 })
    assert.equal(store.getKey(explicit.key.id)!.state, 'revoked')
    const empty = issue(store)
    store.rotateKey(empty.key.id, {})
    assert.equal(store.getKey(empty.key.id)!.state, 'revoked')
  })

  test("the overlap is capped at the old key's expiry", () => {
    const store = withUser(frozenStore())
    const old = issue(store, { expiresAt: at(T0, HOUR) })
    const { key } = store.rotateKey(old.key.id, { overlapSeconds: 7 * 24 * 3600 })
    assert.equal(store.getKey(old.key.id)!.expiresAt.getTime(), at(T0, HOUR).getTime())
    assert.equal(key.expiresAt.getTime(), at(T0, HOUR).getTime())
    store.setNow(at(T0, HOUR))
    assert.equal(store.explain(old.secret, 'session', 'getSessionInfo').reason, 'expired')
  })

  test('a second rotation from the same read is a CONFLICT, also when the overlap leaves the old expiry as it was', () => {
    const store = withUser(frozenStore())
    const old = issue(store, { expiresAt: at(T0, HOUR) })
    const read = store.getKey(old.key.id)!
    store.rotateKey(old.key.id, { overlapSeconds: 7 * 24 * 3600, expectedUpdatedAt: read.updatedAt })
    const rotated = store.getKey(old.key.id)!
    assert.equal(rotated.expiresAt.getTime(), read.expiresAt.getTime(), 'the overlap reaches past the expiry')
    assert.ok(rotated.updatedAt > read.updatedAt, 'rotated is a change of the old key')
    throwsCode(() => store.rotateKey(old.key.id, { expectedUpdatedAt: read.updatedAt }), 'CONFLICT')
    assert.equal(store.listKeys().length, 2, 'one successor, not two')
  })

  test('the rotated key copies the old state (suspended stays suspended)', () => {
    const store = withUser(frozenStore())
    const old = issue(store, { state: 'suspended' })
    const { key, secret } = store.rotateKey(old.key.id, { overlapSeconds: 60 })
    assert.equal(key.state, 'suspended')
    assert.equal(store.explain(secret, 'session', 'getSessionInfo').reason, 'suspended')
    store.setState(key.id, 'active')
    assert.equal(store.isAllowed(secret, 'session', 'getSessionInfo'), true)
  })

  test('rotating a revoked key is REVOKED_IS_FINAL; an expired key is EXPIRY_IN_PAST; unknown is UNKNOWN_KEY', () => {
    const store = withUser(frozenStore())
    const revoked = issue(store)
    store.setState(revoked.key.id, 'revoked')
    throwsCode(() => store.rotateKey(revoked.key.id), 'REVOKED_IS_FINAL', revoked.key.id)
    const expiring = issue(store, { expiresAt: at(T0, HOUR) })
    store.setNow(at(T0, HOUR))
    throwsCode(() => store.rotateKey(expiring.key.id, { overlapSeconds: 60 }), 'EXPIRY_IN_PAST', expiring.key.id)
    throwsCode(() => store.rotateKey('key_0000000000000000000000'), 'UNKNOWN_KEY', 'key_0000000000000000000000')
    assert.equal(store.listKeys().length, 2, 'no key was issued by the failed rotations')
  })

  test('invalid overlapSeconds is INVALID_ARGUMENT', () => {
    const store = withUser(frozenStore())
    const { key } = issue(store)
    for (const overlapSeconds of [-1, 1.5, Number.NaN, Number.NEGATIVE_INFINITY]) {
      throwsCode(() => store.rotateKey(key.id, { overlapSeconds }), 'INVALID_ARGUMENT')
    }
    throwsCode(() => store.rotateKey(key.id, { overlapSeconds: '60' as never }), 'INVALID_ARGUMENT')
    assert.equal(store.listKeys().length, 1)
    assert.equal(store.getKey(key.id)!.state, 'active')
  })

  test('under the system clock the old key stops working when the overlap ends', async () => {
    const store = withUser(KeyStore.inMemory())
    const old = issue(store)
    assert.equal(allowedTwice(store, old.secret, 'session', 'getSessionInfo'), true)
    const rotated = store.rotateKey(old.key.id, { overlapSeconds: 1 })
    assert.equal(store.isAllowed(old.secret, 'session', 'getSessionInfo'), true)
    assert.equal(store.isAllowed(old.secret, 'session', 'getSessionInfo'), true)
    await sleep(1200)
    assert.equal(store.explain(old.secret, 'session', 'getSessionInfo').reason, 'expired')
    assert.equal(store.isAllowed(old.secret, 'session', 'getSessionInfo'), false, 'isAllowed still allows the old key after the overlap')
    assert.equal(store.isAllowed(rotated.secret, 'session', 'getSessionInfo'), true)
  })
})

describe('deleteKey', () => {
  test('returns true then false; the secret becomes unknown', () => {
    const store = withUser(frozenStore())
    const { key, secret } = issue(store)
    assert.equal(allowedTwice(store, secret, 'session', 'getSessionInfo'), true)
    assert.equal(store.deleteKey(key.id), true)
    assert.equal(store.isAllowed(secret, 'session', 'getSessionInfo'), false)
    assert.equal(store.explain(secret, 'session', 'getSessionInfo').reason, 'unknown_key')
    assert.equal(store.deleteKey(key.id), false)
    assert.equal(store.deleteKey('key_0000000000000000000000'), false)
    assert.equal(store.deleteKey('garbage'), false)
    assert.deepEqual(store.listKeys(), [])
  })
})

describe('lastUsedAt', () => {
  test('null until a successful check; then the frozen instant', () => {
    const store = withUser(frozenStore(), { id: 'integration', rights: ['session:*'] })
    const { key, secret } = issue(store)
    assert.equal(store.getKey(key.id)!.lastUsedAt, null)
    assert.equal(store.isAllowed(secret, 'admin', 'userCreate'), false)
    assert.equal(store.isAllowed(secret, 'bad name', 'x'), false)
    assert.equal(store.getKey(key.id)!.lastUsedAt, null, 'a denied check is not a use')
    assert.equal(store.isAllowed(secret, 'session', 'getSessionInfo'), true)
    assert.equal(store.getKey(key.id)!.lastUsedAt?.getTime(), T0.getTime())
    assert.equal(store.listKeys()[0]!.lastUsedAt?.getTime(), T0.getTime())
    store.setNow(at(T0, HOUR))
    assert.equal(store.isAllowed(secret, 'session', 'getSessionInfo'), true)
    assert.equal(store.getKey(key.id)!.lastUsedAt?.getTime(), at(T0, HOUR).getTime())
    store.setNow(at(T0, 2 * HOUR))
    assert.equal(store.isAllowed(secret, 'session', 'getSessionInfo'), true)
    assert.equal(store.isAllowed(secret, 'session', 'getSessionInfo'), true)
    assert.equal(store.getKey(key.id)!.lastUsedAt?.getTime(), at(T0, 2 * HOUR).getTime())
  })

  test('a suspended key checked is not used', () => {
    const store = withUser(frozenStore())
    const { key, secret } = issue(store, { state: 'suspended' })
    store.isAllowed(secret, 'session', 'getSessionInfo')
    assert.equal(store.getKey(key.id)!.lastUsedAt, null)
  })

  test('under the system clock: exact to within about a second, also for repeated checks', async () => {
    const store = withUser(KeyStore.inMemory())
    const { key, secret } = issue(store)
    const before = Date.now()
    assert.equal(store.isAllowed(secret, 'session', 'getSessionInfo'), true)
    const first = store.getKey(key.id)!.lastUsedAt
    assert.ok(first !== null)
    assert.ok(Math.abs(first.getTime() - before) < 1100, `lastUsedAt ${first.toISOString()} vs ${new Date(before).toISOString()}`)
    await sleep(1300)
    const again = Date.now()
    assert.equal(store.isAllowed(secret, 'session', 'getSessionInfo'), true)
    const second = store.getKey(key.id)!.lastUsedAt
    assert.ok(second !== null)
    assert.ok(Math.abs(second.getTime() - again) < 1100, `lastUsedAt ${second.toISOString()} vs ${new Date(again).toISOString()}`)
    assert.ok(second.getTime() > first.getTime())
  })

  test('rotation gives the new key its own lastUsedAt', () => {
    const store = withUser(frozenStore())
    const old = issue(store)
    store.isAllowed(old.secret, 'session', 'getSessionInfo')
    const rotated = store.rotateKey(old.key.id, { overlapSeconds: 60 })
    assert.equal(rotated.key.lastUsedAt, null)
    assert.equal(store.getKey(old.key.id)!.lastUsedAt?.getTime(), T0.getTime())
  })
})
