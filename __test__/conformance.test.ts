// Conformance to the contract (SPEC.md, README) found by an audit of the package as users import it.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import * as vm from 'node:vm'

import { KeyStore } from '../index.js'
import { DAY, T0, at, frozenStore, snapshot, throwsCode } from './helpers.js'

/** A real `Date` made in another realm (a `vm` context, an iframe, a jsdom window): not `instanceof` this realm's Date. */
function foreignDate(ms: number): Date {
  return vm.runInNewContext(`new Date(${ms})`) as Date
}

describe('Dates cross as JS Dates, whatever realm made them', () => {
  test('a Date of another realm is a Date: createKey, updateKey, setNow, options.now and expectedUpdatedAt take it', () => {
    const foreign = foreignDate(at(T0, DAY).getTime())
    assert.ok(!(foreign instanceof Date), 'the fixture is a Date of another realm')
    assert.equal(Object.prototype.toString.call(foreign), '[object Date]')

    const store = frozenStore()
    store.putUser({ id: 'u', rights: ['*:*'] })
    const { key } = store.createKey({ userId: 'u', description: '', expiresAt: foreign })
    assert.equal(key.expiresAt.getTime(), at(T0, DAY).getTime())
    assert.equal(store.updateKey(key.id, { expiresAt: foreignDate(at(T0, 2 * DAY).getTime()) }).expiresAt.getTime(), at(T0, 2 * DAY).getTime())
    const updatedAt = store.getKey(key.id)?.updatedAt.getTime() ?? Number.NaN
    assert.equal(store.setState(key.id, 'suspended', { expectedUpdatedAt: foreignDate(updatedAt) }).state, 'suspended')
    store.setNow(foreignDate(at(T0, 1000).getTime()))
    assert.equal(store.now().getTime(), at(T0, 1000).getTime())
    const frozen = KeyStore.inMemory({ now: foreignDate(T0.getTime()) })
    assert.equal(frozen.now().getTime(), T0.getTime())
  })

  test('an invalid Date of another realm is still INVALID_ARGUMENT (invalid, not "not a Date"); nothing changes', () => {
    const store = frozenStore()
    store.putUser({ id: 'u', rights: ['*:*'] })
    const before = snapshot(store)
    throwsCode(() => store.createKey({ userId: 'u', description: '', expiresAt: foreignDate(Number.NaN) }), 'INVALID_ARGUMENT', 'invalid Date')
    throwsCode(() => store.setNow(foreignDate(Number.NaN)), 'INVALID_ARGUMENT', 'invalid Date')
    assert.deepEqual(snapshot(store), before)
    // What only looks like a Date is still refused.
    throwsCode(() => store.setNow({ getTime: () => 0 } as unknown as Date), 'INVALID_ARGUMENT')
    throwsCode(() => store.createKey({ userId: 'u', description: '', expiresAt: Object.create(Date.prototype) }), 'INVALID_ARGUMENT', 'not a real Date')
    assert.deepEqual(snapshot(store), before)
  })
})

describe('User status (README, "Choices where Hornbill is silent")', () => {
  test('archived is not final, and a putUser without status makes a suspended or archived user active', () => {
    const store = frozenStore()
    store.putUser({ id: 'u', rights: ['*:*'] })
    const { secret } = store.createKey({ userId: 'u', description: '', expiresAt: at(T0, DAY) })
    for (const status of ['archived', 'suspended'] as const) {
      store.putUser({ id: 'u', status, rights: ['*:*'] })
      assert.equal(store.explain(secret, 'session', 'userLogon').reason, 'user_inactive')
      // Rights changed, status left out: the user is replaced, and active again.
      assert.equal(store.putUser({ id: 'u', rights: ['session:*'] }).status, 'active')
      assert.equal(store.explain(secret, 'session', 'userLogon').reason, 'allowed')
    }
    // Passing the status on keeps it.
    store.putUser({ id: 'u', status: 'archived', rights: ['session:*'] })
    const user = store.getUser('u')
    assert.ok(user)
    assert.equal(store.putUser({ ...user, rights: ['*:*'] }).status, 'archived')
    assert.equal(store.explain(secret, 'session', 'userLogon').reason, 'user_inactive')
  })
})

describe('IPv6 zones (README, "Choices where Hornbill is silent")', () => {
  test("a caller's zone is ignored; a rule with a zone is INVALID_RULE naming the rule it meant", () => {
    const error = throwsCode(() => KeyStore.validateRule('ip=fe80::1%eth0'), 'INVALID_RULE', 'names a zone', 'did you mean ip=fe80::1?')
    assert.ok(!error.message.includes('is not an IPv4 or IPv6 address'), error.message)
    throwsCode(() => KeyStore.validateRule('ip=fe80::%eth0/64'), 'INVALID_RULE', 'did you mean ip=fe80::/64?')
    const store = frozenStore()
    store.putUser({ id: 'u', rights: ['*:*'] })
    const { secret } = store.createKey({ userId: 'u', description: '', expiresAt: at(T0, DAY), rules: [KeyStore.validateRule('ip=fe80::1')] })
    assert.equal(store.explain(secret, 'session', 'userLogon', 'fe80::1%eth0').reason, 'allowed')
  })
})

describe('IPv6 rules that hold the IPv4-mapped range (README, "Choices where Hornbill is silent")', () => {
  test('ip=::/0, ip=::/80 and ip=::ffff:0:0/96 match IPv4 callers; ip=::/81 does not', () => {
    const store = frozenStore()
    store.putUser({ id: 'u', rights: ['*:*'] })
    const decide = (rule: string, ip: string) => {
      const { secret } = store.createKey({ userId: 'u', description: '', expiresAt: at(T0, DAY), rules: [rule] })
      return store.explain(secret, 'session', 'userLogon', ip).reason
    }
    for (const rule of ['ip=::/0', 'ip=::/1', 'ip=::/80', 'ip=::ffff:0:0/96']) {
      assert.equal(decide(rule, '192.0.2.1'), 'allowed', rule)
      assert.equal(decide(rule, '::ffff:192.0.2.1'), 'allowed', rule)
    }
    assert.equal(decide('ip=::/81', '192.0.2.1'), 'ip_not_allowed')
    assert.equal(decide('ip=0.0.0.0/0', '::1'), 'ip_not_allowed')
  })
})
