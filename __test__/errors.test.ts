// Errors: every code reachable in memory, KeygateError's shape, messages, and
// "a failed call changes nothing" for every mutating method.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import * as path from 'node:path'
import { spawnSync } from 'node:child_process'
import { runInNewContext } from 'node:vm'

import { ERROR_CODES, KeyStore, KeygateError } from '../index.js'
import type { ErrorCode } from '../index.js'
import { DAY, HOUR, T0, at, frozenStore, issue, snapshot, throwsCode, withUser } from './helpers.js'
import type { Probe } from './helpers.js'

describe('KeygateError', () => {
  test('ERROR_CODES lists the documented codes in order', () => {
    assert.deepEqual(
      [...ERROR_CODES],
      [
        'INVALID_ARGUMENT',
        'INVALID_RULE',
        'EXPIRY_REQUIRED',
        'EXPIRY_IN_PAST',
        'EXPIRY_TOO_FAR',
        'UNKNOWN_USER',
        'UNKNOWN_ROLE',
        'UNKNOWN_KEY',
        'INVALID_STATE',
        'REVOKED_IS_FINAL',
        'CONFLICT',
        'STORE_IO',
        'STORE_CORRUPT',
        'STORE_LOCKED',
        'STORE_UNAVAILABLE',
        'INTERNAL',
      ],
    )
  })

  test('is an Error with a stable code and a message', () => {
    const error = new KeygateError('UNKNOWN_KEY', 'no key with id "key_x"')
    assert.ok(error instanceof Error)
    assert.ok(error instanceof KeygateError)
    assert.equal(error.code, 'UNKNOWN_KEY')
    assert.equal(error.message, 'no key with id "key_x"')
    assert.ok(!(new Error('x') instanceof KeygateError))
    assert.ok(!(new TypeError('x') instanceof KeygateError))
  })

  test('errors thrown by the store are KeygateErrors with a stack', () => {
    const store = KeyStore.inMemory()
    try {
      store.createKey({ userId: 'ghost', description: '', expiresAt: at(new Date(), DAY) })
      assert.fail('should throw')
    } catch (error) {
      assert.ok(error instanceof KeygateError)
      assert.ok(error instanceof Error)
      assert.equal(error.code, 'UNKNOWN_USER')
      assert.equal(typeof error.stack, 'string')
    }
  })
})

describe('a store method taken off the store', () => {
  test("throws the engine's TypeError, as the README says; bound, it checks as the method does", () => {
    const store = withUser(frozenStore())
    const { secret } = issue(store, { rules: ['session:*'] })
    const { isAllowed } = store
    assert.throws(
      () => isAllowed(secret, 'session', 'getSessionInfo'),
      (e: unknown) => e instanceof TypeError && !(e instanceof KeygateError),
    )
    const bound = store.isAllowed.bind(store)
    assert.equal(bound(secret, 'session', 'getSessionInfo'), true)
    assert.equal(bound(secret, 'admin', 'userCreate'), false)
    store.close()
  })
})

describe('every error code reachable in memory, with a message naming the bad value', () => {
  function setup() {
    const store = frozenStore()
    store.putRole({ name: 'reader', rights: ['data:*'] })
    store.putUser({ id: 'integration', rights: ['*:*'] })
    const key = issue(store).key
    return { store, key }
  }

  test('INVALID_ARGUMENT', () => {
    const { store, key } = setup()
    throwsCode(() => store.putUser({ id: 'bad id!' }), 'INVALID_ARGUMENT', 'bad id!')
    throwsCode(() => store.putUser({ id: 'u', status: 'gone' as never }), 'INVALID_ARGUMENT', 'gone')
    throwsCode(() => store.putUser(null as never), 'INVALID_ARGUMENT')
    throwsCode(() => store.putUser({ id: 42 } as never), 'INVALID_ARGUMENT', 'id')
    throwsCode(() => store.putUser({ id: 'u', rights: 'session:*' } as never), 'INVALID_ARGUMENT', 'rights')
    throwsCode(() => store.putUser({ id: 'u', rights: ['session:*', 7] } as never), 'INVALID_ARGUMENT', 'rights')
    throwsCode(() => store.putRole({ name: 'no spaces', rights: [] }), 'INVALID_ARGUMENT', 'no spaces')
    throwsCode(() => store.createKey({ userId: 42, description: '', expiresAt: at(T0, DAY) } as never), 'INVALID_ARGUMENT', 'userId')
    throwsCode(() => store.createKey({ userId: 'integration', description: 'x'.repeat(1025), expiresAt: at(T0, DAY) }), 'INVALID_ARGUMENT', 'description')
    throwsCode(() => store.createKey({ userId: 'integration', description: '', expiresAt: '2025-03-02' } as never), 'INVALID_ARGUMENT', 'expiresAt')
    throwsCode(() => store.createKey({ userId: 'integration', description: '', expiresAt: new Date(Number.NaN) }), 'INVALID_ARGUMENT', 'expiresAt')
    throwsCode(() => store.createKey({ userId: 'integration', description: '', expiresAt: at(T0, DAY).getTime() } as never), 'INVALID_ARGUMENT', 'expiresAt')
    throwsCode(() => store.updateKey(key.id, null as never), 'INVALID_ARGUMENT')
    throwsCode(() => store.updateKey(key.id, { rules: 'session:*' } as never), 'INVALID_ARGUMENT', 'rules')
    throwsCode(() => store.updateKey(key.id, { description: 5 } as never), 'INVALID_ARGUMENT', 'description')
    throwsCode(() => store.rotateKey(key.id, { overlapSeconds: -5 }), 'INVALID_ARGUMENT', '-5')
    // Numbers are named as JavaScript writes them (not Rust's `inf`).
    throwsCode(() => store.rotateKey(key.id, { overlapSeconds: Number.POSITIVE_INFINITY }), 'INVALID_ARGUMENT', 'overlapSeconds Infinity must')
    throwsCode(() => KeyStore.inMemory({ maxLifetimeDays: Number.NEGATIVE_INFINITY }), 'INVALID_ARGUMENT', 'maxLifetimeDays -Infinity must')
    throwsCode(() => store.getKey(undefined as never), 'INVALID_ARGUMENT')
    throwsCode(() => store.getUser(5 as never), 'INVALID_ARGUMENT')
    throwsCode(() => store.listKeys({ userId: 5 } as never), 'INVALID_ARGUMENT', 'userId')
    throwsCode(() => store.setNow(12345 as never), 'INVALID_ARGUMENT')
    throwsCode(() => KeyStore.inMemory({ keyPrefix: 'Bad' }), 'INVALID_ARGUMENT', 'Bad')
    throwsCode(() => KeyStore.inMemory({ maxLifetimeDays: 0 }), 'INVALID_ARGUMENT', 'maxLifetimeDays')
    throwsCode(() => KeyStore.inMemory('fast' as never), 'INVALID_ARGUMENT')
    // An audit action from JavaScript or a query string: the message lists the names there are.
    throwsCode(() => store.audit({ action: 'createkey' as never }), 'INVALID_ARGUMENT', '"createkey"', 'putRole, deleteRole', 'deleteKey, purgeExpired')
    // NaN is of type number: the message says NaN, not "a number, got number NaN".
    throwsCode(() => store.audit({ limit: Number.NaN }), 'INVALID_ARGUMENT', 'limit must be a number, got NaN')
  })

  test('a value of the wrong type is named by its kind (its value only for a number, boolean or bigint), never its text', () => {
    const store = frozenStore()
    const before = snapshot(store)
    const revoked = Proxy.revocable({}, {})
    revoked.revoke()
    const cases: [unknown, string][] = [
      [null, 'null'],
      [undefined, 'undefined'],
      [['alice'], 'an array'],
      [new Date(0), 'a Date'],
      [runInNewContext('new Date(0)'), 'a Date'],
      [Object.create(Date.prototype), 'a Date'],
      [revoked.proxy, 'a revoked Proxy'],
      [7, 'number 7'],
      [true, 'boolean true'],
      [7n, 'bigint 7'],
      [{ id: 'alice' }, 'an object'],
      [() => 'alice', 'function'],
      [Symbol('alice'), 'symbol'],
    ]
    for (const [id, kind] of cases) {
      const error = throwsCode(() => store.putUser({ id } as never), 'INVALID_ARGUMENT')
      assert.equal(error.message, `user.id must be a string, got ${kind}`)
    }
    // A string where a list belongs is not quoted either: it may be a secret pasted in the wrong place.
    assert.equal(
      throwsCode(() => store.putUser({ id: 'u', roles: 'alice' } as never), 'INVALID_ARGUMENT').message,
      'user.roles must be an array of strings, got a string',
    )
    assert.deepEqual(snapshot(store), before)
  })

  test("KeyStore.copy of a revoked Proxy, a Proxy of a store or a store's prototype is INVALID_ARGUMENT, not the engine's TypeError; nothing is copied", () => {
    const { store } = setup()
    const target = frozenStore()
    const { proxy: revoked, revoke } = Proxy.revocable({}, {})
    revoke()
    // `instanceof` had thrown for the revoked Proxy, and passed the other two, whose private fields then threw.
    for (const notAStore of [revoked, new Proxy(store, {}), new Proxy(target, {}), Object.create(KeyStore.prototype)]) {
      throwsCode(() => KeyStore.copy(notAStore, target), 'INVALID_ARGUMENT', 'takes two stores')
      throwsCode(() => KeyStore.copy(store, notAStore), 'INVALID_ARGUMENT', 'takes two stores')
    }
    assert.deepEqual(target.listUsers(), [])
    assert.deepEqual(target.audit(), [])
  })

  test('a name quoted by a JavaScript-made message shows C1 and bidi controls as escapes, as the core quotes them', () => {
    const { store, key } = setup()
    // U+009B is CSI to a terminal that takes 8-bit controls, U+202E reorders the rest of a log line.
    const name = 'x\n\u001b[2J\u009b2J\u0085\u202etxt.exe\u2066\u2028'
    const RAW = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]/
    const calls: [string, () => unknown][] = [
      ['createKey field', () => store.createKey({ userId: 'integration', description: '', expiresAt: at(T0, DAY), [name]: 1 } as never)],
      ['updateKey field', () => store.updateKey(key.id, { [name]: 1 } as never)],
      ['putUser field', () => store.putUser({ id: 'u', [name]: 1 } as never)],
      ['inMemory option', () => KeyStore.inMemory({ [name]: 1 } as never)],
      // the core's quoting, for comparison
      ['core', () => store.setState(name, 'active')],
    ]
    for (const [what, call] of calls) {
      const error = (() => {
        try {
          call()
        } catch (e) {
          return e as KeygateError
        }
        assert.fail(`${what}: no error`)
      })()
      assert.ok(error instanceof KeygateError, what)
      assert.doesNotMatch(error.message, RAW, `${what}: ${JSON.stringify(error.message)}`)
      assert.match(error.message, /x\\n\\u(001b|\{1b\})\[2J\\u(009b|\{9b\})2J/i, `${what}: the name is named: ${JSON.stringify(error.message)}`)
    }
  })

  test('INVALID_RULE', () => {
    const { store, key } = setup()
    throwsCode(() => KeyStore.validateRule('session'), 'INVALID_RULE', 'session')
    throwsCode(() => store.putRole({ name: 'r', rights: ['session:*', 'ip=10.0.0.0/8'] }), 'INVALID_RULE', 'ip=10.0.0.0/8')
    throwsCode(() => store.putUser({ id: 'u', rights: ['data:entity Add'] }), 'INVALID_RULE', 'data:entity Add')
    throwsCode(() => issue(store, { rules: ['ip=10.0.0.256'] }), 'INVALID_RULE', 'ip=10.0.0.256')
    throwsCode(() => store.updateKey(key.id, { rules: ['admin::x'] }), 'INVALID_RULE', 'admin::x')
  })

  test('EXPIRY_REQUIRED, EXPIRY_IN_PAST, EXPIRY_TOO_FAR', () => {
    const { store, key } = setup()
    throwsCode(() => store.createKey({ userId: 'integration', description: '' } as never), 'EXPIRY_REQUIRED', 'expiresAt')
    throwsCode(() => store.updateKey(key.id, { expiresAt: null }), 'EXPIRY_REQUIRED', 'expiresAt')
    throwsCode(() => issue(store, { expiresAt: at(T0, -HOUR) }), 'EXPIRY_IN_PAST', at(T0, -HOUR).toISOString())
    throwsCode(() => store.updateKey(key.id, { expiresAt: T0 }), 'EXPIRY_IN_PAST', T0.toISOString())
    throwsCode(() => issue(store, { expiresAt: at(T0, 731 * DAY) }), 'EXPIRY_TOO_FAR', at(T0, 731 * DAY).toISOString())
    throwsCode(() => store.updateKey(key.id, { expiresAt: at(T0, 800 * DAY) }), 'EXPIRY_TOO_FAR', at(T0, 800 * DAY).toISOString())
    store.setNow(at(T0, DAY))
    throwsCode(() => store.rotateKey(key.id), 'EXPIRY_IN_PAST', key.id)
  })

  test('an expiry error writes every instant a Date can hold as toISOString does, the latest and earliest too', () => {
    const { store, key } = setup()
    // These had been written as raw milliseconds ('8640000000000000 ms'), and years past 9999 or
    // before 0 with fewer digits than JavaScript's ('+10000-…').
    for (const far of [new Date(8.64e15), new Date(Date.UTC(10000, 0, 1)), new Date(1e15)]) {
      throwsCode(() => issue(store, { expiresAt: far }), 'EXPIRY_TOO_FAR', `expiresAt ${far.toISOString()} is`)
      throwsCode(() => store.updateKey(key.id, { expiresAt: far }), 'EXPIRY_TOO_FAR', `expiresAt ${far.toISOString()} is`)
    }
    for (const past of [new Date(-8.64e15), new Date(Date.UTC(-1, 11, 31)), new Date(-1e15)]) {
      throwsCode(() => issue(store, { expiresAt: past }), 'EXPIRY_IN_PAST', `expiresAt ${past.toISOString()} is`)
    }
    // Both ends as the store's own clock, in the message's "now is" and "latest allowed".
    for (const now of [new Date(8.64e15), new Date(-8.64e15), new Date(Date.UTC(-1, 0, 1)), new Date(Date.UTC(12345, 5, 6, 7, 8, 9, 10))]) {
      const clocked = KeyStore.inMemory({ now })
      clocked.putUser({ id: 'u', rights: ['*:*'] })
      throwsCode(() => clocked.createKey({ userId: 'u', description: '', expiresAt: now }), 'EXPIRY_IN_PAST', `(now is ${now.toISOString()})`)
      clocked.close()
    }
    const earliest = KeyStore.inMemory({ now: new Date(-8.64e15) })
    earliest.putUser({ id: 'u', rights: ['*:*'] })
    const latestAllowed = new Date(-8.64e15 + 730 * DAY).toISOString()
    throwsCode(() => earliest.createKey({ userId: 'u', description: '', expiresAt: new Date(8.64e15) }), 'EXPIRY_TOO_FAR', `latest allowed: ${latestAllowed}`)
    earliest.close()
  })

  test('UNKNOWN_USER, UNKNOWN_ROLE, UNKNOWN_KEY', () => {
    const { store } = setup()
    throwsCode(() => issue(store, { userId: 'nobody@example.com' }), 'UNKNOWN_USER', 'nobody@example.com')
    throwsCode(() => store.putUser({ id: 'u', roles: ['reader', 'approver'] }), 'UNKNOWN_ROLE', 'approver')
    const id = 'key_0000000000000000000001'
    throwsCode(() => store.updateKey(id, { description: 'x' }), 'UNKNOWN_KEY', id)
    throwsCode(() => store.setState(id, 'suspended'), 'UNKNOWN_KEY', id)
    throwsCode(() => store.rotateKey(id), 'UNKNOWN_KEY', id)
    throwsCode(() => store.updateKey('my-key', {}), 'UNKNOWN_KEY', 'my-key')
  })

  test('INVALID_STATE, REVOKED_IS_FINAL', () => {
    const { store, key } = setup()
    throwsCode(() => store.setState(key.id, 'paused' as never), 'INVALID_STATE', 'paused')
    throwsCode(() => issue(store, { state: 'revoked' as never }), 'INVALID_STATE')
    throwsCode(() => issue(store, { state: 'on' as never }), 'INVALID_STATE', 'on')
    throwsCode(() => store.listKeys({ state: 'gone' as never }), 'INVALID_STATE', 'gone')
    store.setState(key.id, 'revoked')
    throwsCode(() => store.setState(key.id, 'active'), 'REVOKED_IS_FINAL', key.id)
    throwsCode(() => store.updateKey(key.id, { description: 'x' }), 'REVOKED_IS_FINAL', key.id)
    throwsCode(() => store.rotateKey(key.id, { overlapSeconds: 10 }), 'REVOKED_IS_FINAL', key.id)
  })

  test('long bad values are shortened in messages (a 1 MB value is not a 1 MB message)', () => {
    const { store } = setup()
    const huge = 'x'.repeat(1 << 20)
    for (const fn of [
      () => store.putUser({ id: huge }),
      () => KeyStore.validateRule(huge),
      () => issue(store, { userId: huge }),
      () => store.updateKey(huge, {}),
      () => store.setState('key_0000000000000000000000', huge as never),
    ]) {
      try {
        fn()
        assert.fail('should throw')
      } catch (error) {
        assert.ok(error instanceof KeygateError)
        assert.ok(error.message.length < 10_000, `message of ${error.message.length} chars`)
      }
    }
  })

  test('a list whose texts hold more than 1,048,576 characters in all is refused before it crosses, each text under that: INVALID_RULE for rules and rights, INVALID_ARGUMENT for roles; nothing changes', () => {
    const { store, key } = setup()
    // Two texts of 600,000 characters: each under the limit of one text, 1,200,000 together.
    const halves = (c: string) => [`svc:${c.repeat(600_000)}`, `svc:${c.toUpperCase().repeat(600_000)}`]
    const before = snapshot(store)
    throwsCode(() => store.putRole({ name: 'wide', rights: halves('a') }), 'INVALID_RULE', 'role.rights holds more than 1048576 characters in all')
    throwsCode(() => store.putUser({ id: 'wide', rights: halves('b') }), 'INVALID_RULE', 'user.rights holds more than 1048576 characters in all')
    throwsCode(() => store.putUser({ id: 'wide', roles: halves('c') }), 'INVALID_ARGUMENT', 'user.roles holds more than 1048576 characters in all')
    throwsCode(() => store.updateKey(key.id, { rules: halves('d') }), 'INVALID_RULE', 'patch.rules holds more than 1048576 characters in all')
    throwsCode(() => issue(store, { rules: halves('e') }), 'INVALID_RULE', 'input.rules holds more than 1048576 characters in all')
    assert.deepEqual(snapshot(store), before)
  })

  test('a text with a lone UTF-16 surrogate is refused, not stored as U+FFFD; a text over 1,048,576 characters is refused before it crosses, one of exactly that by the core', () => {
    const { store, key } = setup()
    const before = snapshot(store)
    // Crossing as UTF-8 would turn the surrogate into U+FFFD: a description other than the one given.
    throwsCode(() => issue(store, { description: 'note \ud800' }), 'INVALID_ARGUMENT', 'input.description holds a lone UTF-16 surrogate')
    throwsCode(() => store.updateKey(key.id, { description: '\udc00 note' }), 'INVALID_ARGUMENT', 'patch.description holds a lone UTF-16 surrogate')
    // The bound of one text is 2^20 code units: at it, the core's own limit answers; over it, the text never crosses.
    const exactly = 'x'.repeat(1 << 20)
    const refusedByCore = throwsCode(() => store.updateKey(key.id, { description: exactly }), 'INVALID_ARGUMENT', 'at most 1024 are allowed')
    assert.ok(!refusedByCore.message.includes('are taken'), refusedByCore.message)
    throwsCode(() => store.updateKey(key.id, { description: `${exactly}x` }), 'INVALID_ARGUMENT', 'is 1048577 characters long; at most 1048576 are taken')
    assert.deepEqual(snapshot(store), before)
  })
})

describe('messages never contain a secret', () => {
  test('a secret passed where a key id belongs is not echoed back', () => {
    const store = frozenStore()
    store.putUser({ id: 'integration', rights: ['*:*'] })
    const { secret } = issue(store)
    const calls: Array<[string, () => unknown]> = [
      ['updateKey', () => store.updateKey(secret, { description: 'x' })],
      ['setState', () => store.setState(secret, 'suspended')],
      ['rotateKey', () => store.rotateKey(secret)],
    ]
    for (const [name, fn] of calls) {
      const error = throwsCode(fn, 'UNKNOWN_KEY')
      assert.ok(!error.message.includes(secret), `${name}: message contains the secret: ${error.message}`)
      assert.ok(!error.message.includes(secret.slice(3, 30)), `${name}: message contains part of the secret`)
    }
    assert.equal(store.getKey(secret), null)
    assert.equal(store.deleteKey(secret), false)
  })

  test('a secret of the store cut into short pieces is withheld from every message that would quote it', () => {
    const store = frozenStore()
    store.putUser({ id: 'integration', rights: ['*:*'] })
    const { key, secret } = issue(store)
    const body = secret.slice(3)
    // Each piece is too short to be redacted as a long run; together they give the secret away.
    const pieces = [secret.slice(0, 18), body.slice(15, 30), body.slice(30)]
    for (const cut of [':', ' ', '!', '/', '\u00e9', '\n', '\r\n', '\t', '\0', '\u001b', '\u00a0', '\u2028', '"', '\\']) {
      const mangled = `${secret.slice(0, 18)}${cut}${secret.slice(18, 33)}${cut}${secret.slice(33)}`
      const calls: Array<[string, () => unknown]> = [
        ['putUser id', () => store.putUser({ id: mangled })],
        ['putRole name', () => store.putRole({ name: mangled, rights: [] })],
        ['putUser roles', () => store.putUser({ id: 'u2', roles: [mangled] })],
        ['createKey userId', () => store.createKey({ userId: mangled, description: '', expiresAt: at(T0, DAY) })],
        ['createKey rule', () => store.createKey({ userId: 'integration', description: '', expiresAt: at(T0, DAY), rules: [`s:${mangled}`] })],
        ['updateKey rule', () => store.updateKey(key.id, { rules: [`ip=${mangled}`] })],
        ['setState id', () => store.setState(mangled, 'suspended')],
        ['actor', () => store.putUser({ id: 'u3' }, { actor: `${mangled}\u0007` })],
      ]
      for (const [name, fn] of calls) {
        let error: unknown
        try {
          fn()
        } catch (e) {
          error = e
        }
        assert.ok(error instanceof KeygateError, `${name} (${JSON.stringify(cut)}) should throw`)
        for (const piece of pieces) assert.ok(!error.message.includes(piece), `${name}: the message shows a piece of the secret: ${error.message}`)
      }
    }
    assert.equal(store.listUsers().length, 1)
  })

  test('the reason of an invalid rule redacts the part of the rule it quotes', () => {
    const token = `${'Ab3'.repeat(16)}Z`
    for (const rule of [`ip=${token}`, `ip=10.0.0.0/${token}`, `session::${token}`]) {
      const error = throwsCode(() => KeyStore.validateRule(rule), 'INVALID_RULE')
      assert.ok(!error.message.includes(token.slice(0, 32)), error.message)
    }
  })

  test('TypeErrors of isAllowed/explain do not contain the secret', () => {
    const store = frozenStore()
    store.putUser({ id: 'integration', rights: ['*:*'] })
    const { secret } = issue(store)
    for (const fn of [
      () => store.isAllowed(secret, 42 as never, 'x'),
      () => store.isAllowed(secret, 'session', null as never),
      () => store.explain(secret, 'session', 'x', 10 as never),
    ]) {
      try {
        fn()
        assert.fail('should throw')
      } catch (error) {
        assert.ok(error instanceof TypeError)
        assert.ok(!error.message.includes(secret))
        assert.ok(!String(error.stack).includes(secret))
      }
    }
  })
})

describe('a failed call changes nothing', () => {
  /** A store with users, roles and keys in several states, and probes of their decisions. */
  function world() {
    const store = frozenStore()
    store.putRole({ name: 'reader', rights: ['data:entityBrowseRecords2'] })
    store.putRole({ name: 'agent', rights: ['apps/com.hornbill.servicemanager/*:*'] })
    store.putUser({ id: 'integration', rights: ['session:*'], roles: ['reader', 'agent'] })
    store.putUser({ id: 'paused', status: 'suspended', rights: ['*:*'] })
    const active = issue(store, { description: 'active', rules: ['session:get*', 'data:*', 'ip=10.0.0.0/8'] })
    const open = issue(store, { description: 'open', expiresAt: at(T0, 7 * DAY) })
    const suspended = issue(store, { description: 'suspended', state: 'suspended' })
    const revoked = issue(store, { description: 'revoked' })
    store.setState(revoked.key.id, 'revoked')
    const paused = issue(store, { userId: 'paused', description: 'user suspended' })
    const probes: Probe[] = []
    for (const { secret } of [active, open, suspended, revoked, paused]) {
      probes.push(
        { secret, service: 'session', api: 'getSessionInfo', ip: '10.1.2.3' },
        { secret, service: 'session', api: 'getSessionInfo' },
        { secret, service: 'data', api: 'entityBrowseRecords2', ip: '10.1.2.3' },
        { secret, service: 'apps/com.hornbill.servicemanager/Requests', api: 'holdRequest', ip: '10.1.2.3' },
        { secret, service: 'admin', api: 'userCreate', ip: '10.1.2.3' },
      )
    }
    return { store, probes, active, open, suspended, revoked, paused }
  }

  function unchanged(name: string, failing: (w: ReturnType<typeof world>) => unknown, code: ErrorCode) {
    test(`${name} → ${code}`, () => {
      const w = world()
      const before = snapshot(w.store, w.probes)
      assert.ok(
        (before as { decisions: Array<[boolean]> }).decisions.some(([allowed]) => allowed),
        'the world has allowed calls',
      )
      throwsCode(() => failing(w), code)
      assert.deepEqual(snapshot(w.store, w.probes), before)
    })
  }

  // putRole
  unchanged('putRole replacing a role with a bad last right', (w) => w.store.putRole({ name: 'reader', rights: ['data:queryExec', 'session:*', 'bad'] }), 'INVALID_RULE')
  unchanged('putRole replacing a role with an ip= right', (w) => w.store.putRole({ name: 'agent', rights: ['session:*', 'ip=10.0.0.0/8'] }), 'INVALID_RULE')
  unchanged('putRole with 1,001 rights', (w) => w.store.putRole({ name: 'reader', rights: Array.from({ length: 1001 }, (_, i) => `s:a${i}`) }), 'INVALID_RULE')
  unchanged('putRole with a bad name', (w) => w.store.putRole({ name: 'bad name', rights: ['*:*'] }), 'INVALID_ARGUMENT')
  unchanged('putRole with a non-string right', (w) => w.store.putRole({ name: 'reader', rights: ['data:*', null] } as never), 'INVALID_ARGUMENT')
  // deleteRole
  unchanged('deleteRole with a non-string', (w) => w.store.deleteRole(7 as never), 'INVALID_ARGUMENT')
  // putUser
  unchanged(
    'putUser replacing a user, naming an unknown role',
    (w) => w.store.putUser({ id: 'integration', rights: ['*:*'], roles: ['reader', 'ghost'] }),
    'UNKNOWN_ROLE',
  )
  unchanged('putUser replacing a user with a bad last right', (w) => w.store.putUser({ id: 'integration', rights: ['*:*', 'oops'] }), 'INVALID_RULE')
  unchanged('putUser replacing a user with an ip= right', (w) => w.store.putUser({ id: 'paused', status: 'active', rights: ['*:*', 'ip=10.0.0.1'] }), 'INVALID_RULE')
  unchanged('putUser replacing a user with a bad status', (w) => w.store.putUser({ id: 'paused', status: 'enabled' as never, rights: ['*:*'] }), 'INVALID_ARGUMENT')
  unchanged('putUser with a bad id', (w) => w.store.putUser({ id: 'integration!', rights: ['*:*'] }), 'INVALID_ARGUMENT')
  unchanged('putUser with a non-array roles', (w) => w.store.putUser({ id: 'integration', roles: 'reader' } as never), 'INVALID_ARGUMENT')
  // deleteUser
  unchanged('deleteUser with a non-string', (w) => w.store.deleteUser({ id: 'integration' } as never), 'INVALID_ARGUMENT')
  // createKey
  unchanged('createKey for an unknown user', (w) => issue(w.store, { userId: 'ghost' }), 'UNKNOWN_USER')
  unchanged('createKey without expiry', (w) => w.store.createKey({ userId: 'integration', description: '' } as never), 'EXPIRY_REQUIRED')
  unchanged('createKey expiring now', (w) => issue(w.store, { expiresAt: T0 }), 'EXPIRY_IN_PAST')
  unchanged('createKey expiring too far ahead', (w) => issue(w.store, { expiresAt: at(T0, 731 * DAY) }), 'EXPIRY_TOO_FAR')
  unchanged('createKey with a bad last rule', (w) => issue(w.store, { rules: ['session:*', 'ip=10.0.0.1/8'] }), 'INVALID_RULE')
  unchanged('createKey revoked', (w) => issue(w.store, { state: 'revoked' as never }), 'INVALID_STATE')
  unchanged('createKey with a 1,025-char description', (w) => issue(w.store, { description: 'd'.repeat(1025) }), 'INVALID_ARGUMENT')
  unchanged('createKey without description', (w) => w.store.createKey({ userId: 'integration', expiresAt: at(T0, DAY) } as never), 'INVALID_ARGUMENT')
  // updateKey
  unchanged('updateKey: good description, bad rules', (w) => w.store.updateKey(w.active.key.id, { description: 'changed', rules: ['session:*', 'nope'] }), 'INVALID_RULE')
  unchanged(
    'updateKey: good description and rules, past expiry',
    (w) => w.store.updateKey(w.active.key.id, { description: 'changed', rules: ['*:*'], expiresAt: at(T0, -1) }),
    'EXPIRY_IN_PAST',
  )
  unchanged('updateKey: good rules, expiry too far', (w) => w.store.updateKey(w.open.key.id, { rules: ['admin:*'], expiresAt: at(T0, 1000 * DAY) }), 'EXPIRY_TOO_FAR')
  unchanged('updateKey: good rules, null expiry', (w) => w.store.updateKey(w.open.key.id, { rules: ['admin:*'], expiresAt: null }), 'EXPIRY_REQUIRED')
  unchanged(
    'updateKey: good rules, description too long',
    (w) => w.store.updateKey(w.active.key.id, { rules: ['*:*'], description: 'x'.repeat(1025) }),
    'INVALID_ARGUMENT',
  )
  unchanged('updateKey of a revoked key', (w) => w.store.updateKey(w.revoked.key.id, { description: 'back', rules: ['*:*'] }), 'REVOKED_IS_FINAL')
  unchanged('updateKey of an unknown key', (w) => w.store.updateKey('key_0000000000000000000000', { description: 'x' }), 'UNKNOWN_KEY')
  // setState
  unchanged('setState to a bad state', (w) => w.store.setState(w.active.key.id, 'frozen' as never), 'INVALID_STATE')
  unchanged('setState of a revoked key to active', (w) => w.store.setState(w.revoked.key.id, 'active'), 'REVOKED_IS_FINAL')
  unchanged('setState of an unknown key', (w) => w.store.setState('key_0000000000000000000000', 'revoked'), 'UNKNOWN_KEY')
  unchanged('updateKey from a stale updatedAt', (w) => w.store.updateKey(w.active.key.id, { description: 'x' }, { expectedUpdatedAt: at(T0, -1) }), 'CONFLICT')
  unchanged('setState from a stale updatedAt', (w) => w.store.setState(w.active.key.id, 'suspended', { expectedUpdatedAt: at(T0, -1) }), 'CONFLICT')
  unchanged('rotateKey from a stale updatedAt', (w) => w.store.rotateKey(w.active.key.id, { expectedUpdatedAt: at(T0, -1) }), 'CONFLICT')
  // rotateKey
  unchanged('rotateKey of a revoked key', (w) => w.store.rotateKey(w.revoked.key.id, { overlapSeconds: 60 }), 'REVOKED_IS_FINAL')
  unchanged('rotateKey with a negative overlap', (w) => w.store.rotateKey(w.active.key.id, { overlapSeconds: -1 }), 'INVALID_ARGUMENT')
  unchanged('rotateKey with a fractional overlap', (w) => w.store.rotateKey(w.active.key.id, { overlapSeconds: 0.5 }), 'INVALID_ARGUMENT')
  unchanged('rotateKey of an unknown key', (w) => w.store.rotateKey('key_0000000000000000000000'), 'UNKNOWN_KEY')
  // deleteKey
  unchanged('deleteKey with a non-string', (w) => w.store.deleteKey(null as never), 'INVALID_ARGUMENT')
  // setNow
  unchanged('setNow with an invalid Date', (w) => w.store.setNow(new Date('not a date')), 'INVALID_ARGUMENT')
  unchanged('setNow with a number', (w) => w.store.setNow((T0.getTime() + DAY) as never), 'INVALID_ARGUMENT')

  test('rotateKey of an expired key → EXPIRY_IN_PAST, nothing changes', () => {
    const w = world()
    w.store.setNow(at(T0, 8 * DAY))
    const before = snapshot(w.store, w.probes)
    throwsCode(() => w.store.rotateKey(w.open.key.id, { overlapSeconds: 60 }), 'EXPIRY_IN_PAST')
    assert.deepEqual(snapshot(w.store, w.probes), before)
  })
})

describe('an array argument with holes', () => {
  // A sparse array costs its caller nothing (`a.length = 2 ** 32 - 1`): it is refused at its
  // first hole, not copied element by element until V8 runs out of room and aborts the process.
  // Run in a child with a small heap, so that a regression fails fast and alone.
  test('a sparse array of 2^32 - 1 elements is INVALID_ARGUMENT at once, wherever an array is taken', () => {
    const script = `
      const { KeyStore } = require(${JSON.stringify(path.join(__dirname, '..'))})
      const { createGuard } = require(${JSON.stringify(path.join(__dirname, '..', 'lib', 'http.js'))})
      const store = KeyStore.inMemory()
      store.putUser({ id: 'u', rights: ['*:*'] })
      const { key } = store.createKey({ userId: 'u', description: 'd', expiresAt: new Date(Date.now() + 86400000) })
      const huge = (first = 'svc:*') => { const a = [first]; a.length = 2 ** 32 - 1; return a }
      const calls = {
        createKey: () => store.createKey({ userId: 'u', description: 'd', expiresAt: new Date(Date.now() + 86400000), rules: huge() }),
        updateKey: () => store.updateKey(key.id, { rules: huge() }),
        putUserRights: () => store.putUser({ id: 'v', rights: huge() }),
        putUserRoles: () => store.putUser({ id: 'v', roles: huge('reader') }),
        putRole: () => store.putRole({ name: 'r', rights: huge() }),
        trustProxy: () => createGuard(store, { trustProxy: huge('10.0.0.1') }),
      }
      const out = {}
      for (const [name, call] of Object.entries(calls)) {
        try { call(); out[name] = 'no error' } catch (e) { out[name] = [e.constructor.name, e.code, e.message] }
      }
      console.log(JSON.stringify(out))
    `
    const run = spawnSync(process.execPath, ['--max-old-space-size=64', '-e', script], { encoding: 'utf8', timeout: 30_000 })
    assert.equal(run.status, 0, `the process ended with ${run.status ?? run.signal}: ${run.stderr.slice(0, 300)}`)
    const out = JSON.parse(run.stdout) as Record<string, [string, string, string]>
    for (const [name, [kind, code, message]] of Object.entries(out)) {
      assert.equal(kind, 'KeygateError', `${name}: ${kind}`)
      // Lists of rules and roles are refused by their length; the trusted proxies at the first hole.
      if (name === 'trustProxy') assert.deepEqual([code, message.match(/\[1\] must be a string/) !== null], ['INVALID_ARGUMENT', true], name)
      else if (name === 'putUserRoles') assert.deepEqual([code, message], ['INVALID_ARGUMENT', '4294967295 roles given; at most 1000 are allowed'])
      else assert.deepEqual([code, message], ['INVALID_RULE', '4294967295 rules given; at most 1000 are allowed'], name)
    }
  })

  test('a hole in a short list of rules or roles is INVALID_ARGUMENT naming the element, never one inherited', () => {
    const store = KeyStore.inMemory()
    store.putRole({ name: 'reader', rights: ['*:*'] })
    // biome-ignore lint/suspicious/noSparseArray: the hole is the point
    const sparse = (first: string) => [first, , first] as string[]
    throwsCode(() => store.putUser({ id: 'u', rights: sparse('svc:*') }), 'INVALID_ARGUMENT', 'user.rights[1]')
    throwsCode(() => store.putUser({ id: 'u', roles: sparse('reader') }), 'INVALID_ARGUMENT', 'user.roles[1]')
    throwsCode(() => store.putRole({ name: 'r', rights: sparse('svc:*') }), 'INVALID_ARGUMENT', 'role.rights[1]')
    assert.equal(store.getUser('u'), null)
  })

  test('a Proxy claiming 2e8 valid elements is refused before any is read: rules INVALID_RULE, roles INVALID_ARGUMENT', () => {
    // Valid elements, so no hole ends the read: only the length can refuse it in time.
    const script = `
      const { KeyStore } = require(${JSON.stringify(path.join(__dirname, '..'))})
      const store = KeyStore.inMemory()
      store.putRole({ name: 'reader', rights: ['*:*'] })
      store.putUser({ id: 'u', rights: ['*:*'] })
      const { key } = store.createKey({ userId: 'u', description: 'd', expiresAt: new Date(Date.now() + 86400000) })
      let reads = 0
      const claiming = (element) => new Proxy([], {
        get: (target, name) => (name === 'length' ? 2e8 : typeof name === 'string' && /^\\d+$/.test(name) ? (reads++, element) : Reflect.get(target, name)),
        getOwnPropertyDescriptor: (target, name) =>
          typeof name === 'string' && /^\\d+$/.test(name) ? { value: element, writable: true, enumerable: true, configurable: true } : Reflect.getOwnPropertyDescriptor(target, name),
        has: (target, name) => (typeof name === 'string' && /^\\d+$/.test(name)) || Reflect.has(target, name),
      })
      const calls = {
        createKey: () => store.createKey({ userId: 'u', description: 'd', expiresAt: new Date(Date.now() + 86400000), rules: claiming('svc:*') }),
        updateKey: () => store.updateKey(key.id, { rules: claiming('svc:*') }),
        putUserRights: () => store.putUser({ id: 'v', rights: claiming('svc:*') }),
        putUserRoles: () => store.putUser({ id: 'v', roles: claiming('reader') }),
        putRole: () => store.putRole({ name: 'r', rights: claiming('svc:*') }),
      }
      const out = {}
      for (const [name, call] of Object.entries(calls)) {
        try { call(); out[name] = 'no error' } catch (e) { out[name] = [e.constructor.name, e.code, e.message] }
      }
      console.log(JSON.stringify({ out, reads, users: store.listUsers().length, roles: store.listRoles().length, rules: store.getKey(key.id).rules }))
    `
    const run = spawnSync(process.execPath, ['--max-old-space-size=64', '-e', script], { encoding: 'utf8', timeout: 60_000 })
    assert.equal(run.status, 0, `the process ended with ${run.status ?? run.signal}: ${run.stderr.slice(0, 300)}`)
    const { out, reads, users, roles, rules } = JSON.parse(run.stdout)
    for (const [name, [kind, code, message]] of Object.entries(out as Record<string, [string, string, string]>)) {
      assert.equal(kind, 'KeygateError', `${name}: ${kind}`)
      if (name === 'putUserRoles') {
        assert.equal(code, 'INVALID_ARGUMENT', name)
        assert.equal(message, '200000000 roles given; at most 1000 are allowed')
      } else {
        assert.equal(code, 'INVALID_RULE', name)
        assert.equal(message, '200000000 rules given; at most 1000 are allowed')
      }
    }
    assert.equal(reads, 0, 'no element was read')
    assert.deepEqual([users, roles, rules], [1, 1, []], 'nothing changed')
  })

  test('a Proxy whose length is not a whole number (an object whose valueOf changes, NaN, -1) is INVALID_ARGUMENT, nothing read', () => {
    const store = KeyStore.inMemory()
    store.putRole({ name: 'reader', rights: ['*:*'] })
    let reads = 0
    const claiming = (length: () => unknown, element: string) =>
      new Proxy([] as string[], {
        get: (target, name) => {
          if (name === 'length') return length()
          if (typeof name !== 'string' || !/^\d+$/.test(name)) return Reflect.get(target, name)
          reads++
          return element
        },
        getOwnPropertyDescriptor: (target, name) =>
          typeof name === 'string' && /^\d+$/.test(name)
            ? { value: element, writable: true, enumerable: true, configurable: true }
            : Reflect.getOwnPropertyDescriptor(target, name),
      })
    let asked = 0
    const lengths: (() => unknown)[] = [() => ({ valueOf: () => (asked++ ? 5_000_000 : 1) }), () => Number.NaN, () => -1, () => 2.5, () => '3']
    for (const length of lengths) {
      throwsCode(() => store.putUser({ id: 'u', rights: claiming(length, 'svc:*') }), 'INVALID_ARGUMENT', 'user.rights', 'length')
      throwsCode(() => store.putUser({ id: 'u', roles: claiming(length, 'reader') }), 'INVALID_ARGUMENT', 'user.roles', 'length')
    }
    assert.equal(reads, 0, 'no element was read')
    assert.equal(store.getUser('u'), null)
  })

  test('a user may list at most 1,000 roles (as a key, user or role holds at most 1,000 rules)', () => {
    const store = KeyStore.inMemory()
    store.putRole({ name: 'reader', rights: ['session:*'] })
    const roles = Array.from({ length: 1000 }, () => 'reader')
    assert.deepEqual(store.putUser({ id: 'u', roles }).roles, ['reader'])
    throwsCode(() => store.putUser({ id: 'v', roles: [...roles, 'reader'] }), 'INVALID_ARGUMENT')
    assert.equal(store.getUser('v'), null)
  })
})
