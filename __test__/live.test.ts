// Every change is seen by the very next isAllowed — also right after checks that
// were allowed (keygate remembers decisions in JavaScript).
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'

import { KeyStore } from '../index.js'
import type { KeyState, UserStatus } from '../index.js'
import { DAY, HOUR, MINUTE, T0, at, frozenStore, issue } from './helpers.js'

const CALL = ['session', 'getSessionInfo'] as const

function setup(rules: string[] = []) {
  const store = frozenStore()
  store.putRole({ name: 'reader', rights: ['data:entityBrowseRecords2'] })
  store.putUser({ id: 'integration', rights: ['session:*'], roles: ['reader'] })
  const { key, secret } = issue(store, { rules, expiresAt: at(T0, DAY) })
  /** Asks the same call several times, so that any memo holds the answer. */
  const warm = (expected: boolean, service: string = CALL[0], api: string = CALL[1], ip?: string) => {
    for (let i = 0; i < 3; i++) assert.equal(store.isAllowed(secret, service, api, ip), expected, `warm-up #${i + 1} of ${service}:${api}`)
  }
  /** The very next check after a change. */
  const next = (service: string = CALL[0], api: string = CALL[1], ip?: string) => store.isAllowed(secret, service, api, ip)
  return { store, key, secret, warm, next }
}

describe('key changes are seen by the next check', () => {
  test('setState: suspend, reactivate, revoke', () => {
    const { store, key, warm, next } = setup()
    warm(true)
    store.setState(key.id, 'suspended')
    assert.equal(next(), false, 'suspended key still allowed')
    warm(false)
    store.setState(key.id, 'active')
    assert.equal(next(), true, 'reactivated key still denied')
    warm(true)
    store.setState(key.id, 'revoked')
    assert.equal(next(), false, 'revoked key still allowed')
  })

  test('updateKey rules: narrowing, widening, adding and removing IP rules', () => {
    const { store, key, warm, next } = setup()
    warm(true)
    warm(true, 'session', 'userLogon')
    store.updateKey(key.id, { rules: ['session:userLogon'] })
    assert.equal(next(), false, 'narrowed rules not applied')
    assert.equal(next('session', 'userLogon'), true)
    warm(false)
    store.updateKey(key.id, { rules: ['session:*'] })
    assert.equal(next(), true, 'widened rules not applied')
    warm(true)
    store.updateKey(key.id, { rules: ['ip=10.0.0.0/8'] })
    assert.equal(next(), false, 'IP rule not applied to a call without ip')
    assert.equal(next('session', 'getSessionInfo', '192.168.0.1'), false)
    assert.equal(next('session', 'getSessionInfo', '10.1.1.1'), true)
    warm(true, 'session', 'getSessionInfo', '10.1.1.1')
    store.updateKey(key.id, { rules: ['ip=192.168.0.0/16'] })
    assert.equal(next('session', 'getSessionInfo', '10.1.1.1'), false, 'changed IP rule not applied')
    warm(false)
    store.updateKey(key.id, { rules: [] })
    assert.equal(next(), true, 'removed IP rule not applied')
  })

  test('updateKey expiry: an expired key given a new expiry works again; an earlier expiry bites', () => {
    const { store, key, warm, next } = setup()
    store.setNow(at(T0, DAY))
    warm(false)
    store.updateKey(key.id, { expiresAt: at(T0, 2 * DAY) })
    assert.equal(next(), true, 'new expiry not applied')
    warm(true)
    store.updateKey(key.id, { expiresAt: at(T0, DAY + MINUTE) })
    assert.equal(next(), true)
    store.setNow(at(T0, DAY + MINUTE))
    assert.equal(next(), false, 'moved clock past the new expiry not applied')
  })

  test('updateKey description only: decisions unchanged', () => {
    const { store, key, warm, next } = setup()
    warm(true)
    store.updateKey(key.id, { description: 'renamed' })
    assert.equal(next(), true)
  })

  test('deleteKey', () => {
    const { store, key, secret, warm, next } = setup()
    warm(true)
    assert.equal(store.deleteKey(key.id), true)
    assert.equal(next(), false, 'deleted key still allowed')
    assert.equal(store.explain(secret, ...CALL).reason, 'unknown_key')
  })

  test('rotateKey: overlap 0 at once; overlap n when the clock passes it', () => {
    const { store, key, warm, next } = setup()
    warm(true)
    const rotated = store.rotateKey(key.id)
    assert.equal(next(), false, 'old key still allowed after rotation without overlap')
    assert.equal(store.isAllowed(rotated.secret, ...CALL), true)
    for (let i = 0; i < 3; i++) assert.equal(store.isAllowed(rotated.secret, ...CALL), true)
    const again = store.rotateKey(rotated.key.id, { overlapSeconds: 60 })
    assert.equal(store.isAllowed(rotated.secret, ...CALL), true)
    assert.equal(store.isAllowed(again.secret, ...CALL), true)
    store.setNow(at(T0, MINUTE))
    assert.equal(store.isAllowed(rotated.secret, ...CALL), false, 'old key still allowed after the overlap')
    assert.equal(store.isAllowed(again.secret, ...CALL), true)
  })

  test('setNow: to the expiry instant, back before it, and to the system clock', () => {
    const { store, warm, next } = setup()
    warm(true)
    store.setNow(at(T0, DAY))
    assert.equal(next(), false, 'setNow to expiry not applied')
    warm(false)
    store.setNow(at(T0, DAY - 1))
    assert.equal(next(), true, 'setNow back before expiry not applied')
    warm(true)
    store.setNow(null)
    assert.equal(next(), false, 'returning to the system clock (far past the expiry) not applied')
  })
})

describe('user and role changes are seen by the next check', () => {
  test('putUser status: suspended, active, archived', () => {
    const { store, warm, next } = setup()
    const put = (status: UserStatus) => store.putUser({ id: 'integration', status, rights: ['session:*'], roles: ['reader'] })
    warm(true)
    put('suspended')
    assert.equal(next(), false, 'suspended user still allowed')
    warm(false)
    put('active')
    assert.equal(next(), true, 'reactivated user still denied')
    warm(true)
    put('archived')
    assert.equal(next(), false, 'archived user still allowed')
  })

  test('putUser rights: removing and adding', () => {
    const { store, warm, next } = setup()
    warm(true)
    warm(false, 'admin', 'userCreate')
    store.putUser({ id: 'integration', rights: ['admin:userCreate'], roles: ['reader'] })
    assert.equal(next(), false, 'removed right still allowed')
    assert.equal(next('admin', 'userCreate'), true, 'added right still denied')
  })

  test('putUser roles: removing and adding a role', () => {
    const { store, warm, next } = setup()
    warm(true, 'data', 'entityBrowseRecords2')
    store.putUser({ id: 'integration', rights: ['session:*'] })
    assert.equal(next('data', 'entityBrowseRecords2'), false, 'right of a removed role still allowed')
    warm(false, 'data', 'entityBrowseRecords2')
    store.putUser({ id: 'integration', rights: ['session:*'], roles: ['reader'] })
    assert.equal(next('data', 'entityBrowseRecords2'), true, 'right of an added role still denied')
  })

  test('putRole: replacing a role changes every holder at once', () => {
    const { store, warm, next } = setup()
    warm(true, 'data', 'entityBrowseRecords2')
    warm(false, 'data', 'queryExec')
    store.putRole({ name: 'reader', rights: ['data:queryExec'] })
    assert.equal(next('data', 'entityBrowseRecords2'), false, 'right taken from the role still allowed')
    assert.equal(next('data', 'queryExec'), true, 'right given to the role still denied')
  })

  test('deleteRole, and re-creating the role', () => {
    const { store, warm, next } = setup()
    warm(true, 'data', 'entityBrowseRecords2')
    assert.equal(store.deleteRole('reader'), true)
    assert.equal(next('data', 'entityBrowseRecords2'), false, 'right of a deleted role still allowed')
    warm(false, 'data', 'entityBrowseRecords2')
    // Re-creating the role does not give it back to the user.
    store.putRole({ name: 'reader', rights: ['data:entityBrowseRecords2'] })
    assert.equal(next('data', 'entityBrowseRecords2'), false)
    assert.equal(next(), true)
  })

  test('deleteUser', () => {
    const { store, secret, warm, next } = setup()
    warm(true)
    assert.equal(store.deleteUser('integration'), true)
    assert.equal(next(), false, "deleted user's key still allowed")
    assert.equal(store.explain(secret, ...CALL).reason, 'unknown_key')
  })

  test("another user's change does not disturb this key's answers", () => {
    const { store, warm, next } = setup()
    store.putUser({ id: 'other', rights: ['*:*'] })
    warm(true)
    store.putUser({ id: 'other', status: 'suspended' })
    assert.equal(next(), true)
    store.deleteUser('other')
    assert.equal(next(), true)
  })
})

describe('isAllowed always agrees with explain (random admin changes between checks)', () => {
  test('2,000 random steps', () => {
    let seed = 0x2545f491
    const rand = (n: number) => {
      seed ^= seed << 13
      seed ^= seed >>> 17
      seed ^= seed << 5
      return (seed >>> 0) % n
    }
    const pick = <T>(items: readonly T[]): T => items[rand(items.length)]!
    const store = KeyStore.inMemory({ now: T0 })
    let clock = T0.getTime()
    const rights = ['*:*', 'session:*', 'data:entity*', 'admin:userCreate', 'apps/com.hornbill.core/*:*', 'system:logMessage', '*:getSessionInfo']
    const rules = ['session:get*', 'data:entityBrowseRecords2', 'ip=10.0.0.0/8', 'ip=2001:db8::/32', 'apps/com.hornbill.core/Achievement:*', 'system:logMessage', '*:*']
    const calls: Array<[string, string, string | undefined]> = [
      ['session', 'getSessionInfo', undefined],
      ['session', 'getSessionInfo', '10.1.2.3'],
      ['session', 'userLogon', '10.1.2.3'],
      ['data', 'entityBrowseRecords2', '2001:db8::5'],
      ['data', 'entityAddRecord', undefined],
      ['admin', 'userCreate', '::ffff:10.0.0.1'],
      ['apps/com.hornbill.core/Achievement', 'addAchievement', '10.0.0.1'],
      ['system', 'logMessage', '192.168.0.1'],
    ]
    store.putRole({ name: 'r1', rights: ['data:*'] })
    store.putRole({ name: 'r2', rights: ['session:getSessionInfo'] })
    const users = ['u1', 'u2']
    for (const id of users) store.putUser({ id, rights: ['session:*'] })
    const keys: Array<{ id: string; secret: string }> = []
    const dead: Array<{ id: string; secret: string }> = []
    const newKey = () => {
      const userId = pick(users)
      if (store.getUser(userId) === null) store.putUser({ id: userId })
      const issued = store.createKey({
        userId,
        description: '',
        expiresAt: new Date(clock + (1 + rand(48)) * HOUR),
        rules: rules.filter(() => rand(3) === 0),
      })
      keys.push({ id: issued.key.id, secret: issued.secret })
    }
    for (let i = 0; i < 4; i++) newKey()

    const recent = () => keys[keys.length - 1 - rand(Math.min(keys.length, 6))]!
    const ops: Array<() => void> = [
      newKey,
      newKey,
      () => store.setState(recent().id, 'active'),
      () => store.setState(recent().id, 'active'),
      () => store.putUser({ id: pick(users), rights: ['*:*'], roles: [] }),
      () => store.setState(pick(keys).id, pick<KeyState>(['active', 'suspended'])),
      () => store.setState(pick(keys).id, 'revoked'),
      () => store.updateKey(pick(keys).id, { rules: rules.filter(() => rand(3) === 0) }),
      () => store.updateKey(pick(keys).id, { expiresAt: new Date(clock + (1 + rand(48)) * HOUR) }),
      () =>
        store.putUser({
          id: pick(users),
          status: pick<UserStatus>(['active', 'active', 'suspended', 'archived']),
          rights: rights.filter(() => rand(2) === 0),
          roles: ['r1', 'r2'].filter((r) => rand(2) === 0 && store.getRole(r) !== null),
        }),
      () => store.putRole({ name: pick(['r1', 'r2']), rights: rights.filter(() => rand(2) === 0) }),
      () => store.deleteRole(pick(['r1', 'r2'])),
      () => store.deleteKey(pick(keys).id),
      () => store.deleteUser(pick(users)),
      () => {
        const rotated = store.rotateKey(pick(keys).id, { overlapSeconds: rand(2) * 3600 })
        keys.push({ id: rotated.key.id, secret: rotated.secret })
      },
      () => {
        clock += rand(3) * 20 * MINUTE
        store.setNow(new Date(clock))
      },
    ]
    let allowedCount = 0
    const reasons: Record<string, number> = {}
    for (let step = 0; step < 2000; step++) {
      if (rand(3) === 0) {
        try {
          pick(ops)()
        } catch (error) {
          // Refused changes (revoked key, unknown key, expired key...) are fine here.
          assert.ok((error as { code?: string }).code, String(error))
        }
        for (let i = keys.length - 1; i >= 0; i--) {
          const k = store.getKey(keys[i]!.id)
          if (k === null || k.state === 'revoked') dead.push(...keys.splice(i, 1))
        }
        if (keys.length === 0) newKey()
      }
      const { secret } = rand(8) === 0 && dead.length > 0 ? pick(dead) : rand(4) === 0 ? pick(keys) : recent()
      const [service, api, ip] = pick(calls)
      const native = store.explain(secret, service, api, ip)
      const answer = store.isAllowed(secret, service, api, ip)
      assert.equal(answer, native.allowed, `step ${step}: isAllowed=${answer} but explain says ${native.reason}`)
      // Ask again (memo hit) right away.
      assert.equal(store.isAllowed(secret, service, api, ip), native.allowed, `step ${step}: repeated check`)
      if (answer) allowedCount++
      reasons[native.reason] = (reasons[native.reason] ?? 0) + 1
    }
    assert.ok(allowedCount > 150, `the walk should exercise allowed answers too (${allowedCount})`)
    for (const reason of ['unknown_key', 'suspended', 'revoked', 'expired', 'user_inactive', 'user_lacks_right', 'no_matching_rule', 'ip_not_allowed']) {
      assert.ok((reasons[reason] ?? 0) > 0, `the walk should reach ${reason}: ${JSON.stringify(reasons)}`)
    }
  })
})
