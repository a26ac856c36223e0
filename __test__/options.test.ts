// A misspelt option is refused, naming it: ignored, it would leave its default in force without a
// word (`trustproxy` trusting no proxy, `purgeExpiredAfterDay` purging after 7 days, `sesionIdleMs`
// keeping sessions 30 minutes, `expectedUpdateAt` dropping the concurrency check). Checked: the
// options of KeyStore.open and inMemory, createGuard, createAdminServer, createAdminHandler, serve
// and every admin call, the audit query and the key filter.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as path from 'node:path'

import { KeyStore, KeygateError } from '../index.js'
import { createGuard } from 'keygate/http'
import { createAdminHandler, createAdminServer, serve } from 'keygate/admin'
import { tempDir } from './support/durable.js'

const TOKEN = 'a-long-enough-admin-token'

function refused(fn: () => unknown, kind: 'keygate' | 'type', ...parts: (string | RegExp)[]) {
  let thrown: unknown
  try {
    fn()
  } catch (error) {
    thrown = error
  }
  assert.ok(thrown instanceof Error, 'refused')
  if (kind === 'keygate') {
    assert.ok(thrown instanceof KeygateError, `a KeygateError: ${thrown}`)
    assert.equal(thrown.code, 'INVALID_ARGUMENT')
  } else {
    assert.ok(thrown instanceof TypeError, `a TypeError: ${thrown}`)
  }
  for (const part of parts) assert.match(thrown.message, typeof part === 'string' ? new RegExp(part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')) : part)
}

describe('misspelt options are refused, naming the option', () => {
  test('KeyStore.inMemory and KeyStore.open: INVALID_ARGUMENT, no file made', () => {
    refused(() => KeyStore.inMemory({ keyprefix: 'ab' } as never), 'keygate', 'options: no option "keyprefix" (did you mean keyPrefix?)', 'purgeExpiredAfterDays')
    const dir = tempDir()
    const file = path.join(dir, 'keys.db')
    refused(() => KeyStore.open(file, { purgeExpiredAfterDay: 30 } as never), 'keygate', 'options: no option "purgeExpiredAfterDay"', 'the options are keyPrefix')
    assert.deepEqual(fs.readdirSync(dir), [], 'no store file was made')
    // Every documented option is taken.
    const store = KeyStore.inMemory({
      keyPrefix: 'ab',
      maxLifetimeDays: 30,
      now: new Date(),
      purgeExpiredAfterDays: 1,
      failClosedAfterMs: 5000,
      connectTimeoutMs: 5000,
      statementTimeoutMs: 5000,
      onError: () => {},
    })
    store.close()
  })

  test('createGuard: INVALID_ARGUMENT', () => {
    const store = KeyStore.inMemory()
    refused(() => createGuard(store, { trustproxy: ['10.0.0.0/8'] } as never), 'keygate', 'createGuard: no option "trustproxy" (did you mean trustProxy?)')
    refused(() => createGuard(store, { onerror: () => {} } as never), 'keygate', 'did you mean onError?')
    createGuard(store, { trustProxy: ['10.0.0.0/8'], realm: 'api', davPrefix: '/dav/', route: () => null, onError: () => {} })
    store.close()
  })

  test('createAdminServer and createAdminHandler: TypeError; the handler takes no host or port (its server listens)', () => {
    const store = KeyStore.inMemory()
    refused(() => createAdminServer({ store, token: TOKEN, sesionIdleMs: 60_000 } as never), 'type', 'createAdminServer: no option "sesionIdleMs"')
    refused(() => createAdminServer({ store, token: TOKEN, Host: '0.0.0.0' } as never), 'type', 'did you mean host?')
    refused(() => createAdminHandler({ store, token: TOKEN, port: 80 } as never), 'type', 'createAdminHandler: no option "port"')
    refused(() => createAdminHandler({ store, token: TOKEN, Prefix: '/x' } as never), 'type', 'did you mean prefix?')
    const handler = createAdminHandler({ store, token: TOKEN, prefix: '/admin', sessionIdleMs: 60_000, log: () => {} })
    void handler.close()
    store.close()
  })

  test('serve: rejects before opening anything', async () => {
    const dir = tempDir()
    await assert.rejects(serve({ db: path.join(dir, 'k.db'), token: TOKEN, handleSignal: false } as never), {
      name: 'TypeError',
      message: /serve: no option "handleSignal"/,
    })
    assert.deepEqual(fs.readdirSync(dir), [])
  })

  test('admin calls, the audit query and the key filter: INVALID_ARGUMENT, and nothing changes', () => {
    const store = KeyStore.inMemory()
    store.putUser({ id: 'u', rights: ['*:*'] })
    const { key } = store.createKey({ userId: 'u', description: 'd', expiresAt: new Date(Date.now() + 86_400_000) })
    const entries = store.audit().length
    const stale = new Date(key.updatedAt.getTime() - 1000)
    // A misspelt expectedUpdatedAt would have dropped the check it asks for.
    refused(() => store.setState(key.id, 'suspended', { expectedUpdateAt: stale } as never), 'keygate', 'options: no option "expectedUpdateAt"', 'expectedUpdatedAt')
    refused(() => store.updateKey(key.id, { description: 'x' }, { ExpectedUpdatedAt: stale } as never), 'keygate', 'did you mean expectedUpdatedAt?')
    refused(() => store.rotateKey(key.id, { overlap: 60 } as never), 'keygate', 'options: no option "overlap"', 'overlapSeconds')
    refused(() => store.putUser({ id: 'v', rights: [] }, { expected: 'new' } as never), 'keygate', 'options: no option "expected"', 'expect')
    refused(() => store.deleteKey(key.id, { Actor: 'alice' } as never), 'keygate', 'did you mean actor?')
    assert.equal(store.getKey(key.id)!.state, 'active')
    assert.equal(store.getUser('v'), null)
    assert.equal(store.audit().length, entries, 'nothing recorded')
    refused(() => store.audit({ keyID: key.id } as never), 'keygate', 'query: no option "keyID" (did you mean keyId?)')
    refused(() => store.listKeys({ user: 'u' } as never), 'keygate', 'filter: no option "user"', 'userId, state')
    // Every documented option is taken, by every call; expectedUpdatedAt by all (AdminOptions).
    store.setState(key.id, 'suspended', { actor: 'a', expectedUpdatedAt: key.updatedAt })
    store.putRole({ name: 'r', rights: [] }, { actor: 'a', expect: 'new', expectedUpdatedAt: undefined })
    store.rotateKey(key.id, { actor: 'a', overlapSeconds: 0 })
    assert.ok(store.audit({ action: 'setState', actor: 'a', keyId: key.id, userId: 'u', since: new Date(0), until: new Date(), limit: 5 }).length > 0)
    assert.equal(store.listKeys({ userId: 'u', state: 'revoked' }).length, 1)
    store.close()
  })

  test('expectedUpdatedAt given to a call that does not check it is refused, not ignored: the change would not wait on it', () => {
    const store = KeyStore.inMemory()
    store.putUser({ id: 'u', rights: ['*:*'] })
    const { key } = store.createKey({ userId: 'u', description: 'd', expiresAt: new Date(Date.now() + 86_400_000) })
    const stale = new Date(key.updatedAt.getTime() - 1000)
    const expiresAt = new Date(Date.now() + 86_400_000)
    for (const [name, fn] of [
      ['deleteKey', () => store.deleteKey(key.id, { expectedUpdatedAt: stale })],
      ['deleteUser', () => store.deleteUser('u', { expectedUpdatedAt: stale })],
      ['createKey', () => store.createKey({ userId: 'u', description: 'd', expiresAt }, { expectedUpdatedAt: stale })],
      ['putUser', () => store.putUser({ id: 'u', rights: [] }, { expectedUpdatedAt: stale })],
      ['putRole', () => store.putRole({ name: 'r', rights: [] }, { expectedUpdatedAt: stale })],
      ['deleteRole', () => store.deleteRole('r', { expectedUpdatedAt: stale })],
    ] as const) {
      refused(fn, 'keygate', 'options.expectedUpdatedAt', 'updateKey, setState and rotateKey')
      assert.ok(store.getKey(key.id), `${name} changed nothing`)
    }
    assert.deepEqual(store.getUser('u')!.rights, ['*:*'])
    assert.equal(store.listKeys().length, 1)
    // Left out, or undefined or null (as AdminOptions allows it), it is not in the way.
    store.putRole({ name: 'r', rights: [] }, { actor: 'a', expectedUpdatedAt: undefined })
    assert.equal(store.deleteRole('r', { expectedUpdatedAt: null as never }), true)
    store.close()
  })

  test('an option named like a secret is not echoed', () => {
    const store = KeyStore.inMemory()
    store.putUser({ id: 'u', rights: ['*:*'] })
    const { secret } = store.createKey({ userId: 'u', description: 'd', expiresAt: new Date(Date.now() + 86_400_000) })
    for (const fn of [() => KeyStore.inMemory({ [secret]: 1 } as never), () => createGuard(store, { [secret]: 1 } as never)]) {
      let message = ''
      try {
        fn()
      } catch (error) {
        message = (error as Error).message
      }
      assert.match(message, /: no option/)
      assert.ok(!message.includes(secret.slice(3, 20)), message)
    }
    store.close()
  })
})

// A field of a new key, a patch, a user or a role is checked by name as an option is: ignored, a
// misspelt `rules` would create a key free to call whatever its user may, and a `state` in a
// patch would leave a key its admin meant to revoke usable.
describe('options for another kind of store are checked by every store', () => {
  // One configuration serves every kind of store (KeyStore.open(process.env.KEYGATE_DB, options)):
  // a bad value is refused by each, never only once the URL names a PostgreSQL database.
  test('a bad purgeExpiredAfterDays or timeout: INVALID_ARGUMENT from the in-memory and SQLite stores too, no file made', () => {
    const dir = tempDir()
    const bad: [Record<string, number>, RegExp][] = [
      [{ purgeExpiredAfterDays: -1 }, /purgeExpiredAfterDays -1 must be 0 or more/],
      [{ purgeExpiredAfterDays: Number.POSITIVE_INFINITY }, /purgeExpiredAfterDays Infinity/],
      [{ connectTimeoutMs: -5 }, /connectTimeoutMs -5 must be from 1 to 3600000/],
      [{ statementTimeoutMs: 0 }, /statementTimeoutMs 0 must be from 1/],
      [{ failClosedAfterMs: 3_600_001 }, /failClosedAfterMs 3600001 must be from 1/],
    ]
    for (const [options, message] of bad) {
      refused(() => KeyStore.inMemory(options), 'keygate', message)
      refused(() => KeyStore.open(path.join(dir, 'k.db'), options), 'keygate', message)
      assert.deepEqual(fs.readdirSync(dir), [])
    }
    const good = { purgeExpiredAfterDays: 30, connectTimeoutMs: 2000, statementTimeoutMs: 3000, failClosedAfterMs: 4000 }
    KeyStore.inMemory(good).close()
    KeyStore.open(path.join(dir, 'k.db'), good).close()
  })
})

describe('misspelt fields of keys, patches, users and roles are refused, naming the field', () => {
  const expiresAt = () => new Date(Date.now() + 86_400_000)

  test('createKey: a misspelt rules creates no key (it would have been unrestricted)', () => {
    const store = KeyStore.inMemory()
    store.putUser({ id: 'u', rights: ['*:*'] })
    refused(
      () => store.createKey({ userId: 'u', description: 'd', expiresAt: expiresAt(), rule: ['billing:read'] } as never),
      'keygate',
      'input: no field "rule" (did you mean rules?); the fields are userId, description, expiresAt, rules, state',
    )
    refused(() => store.createKey({ userId: 'u', description: 'd', expiresAt: expiresAt(), expiresIn: 60 } as never), 'keygate', 'no field "expiresIn"')
    assert.deepEqual(store.listKeys(), [])
    assert.equal(store.audit().filter((e) => e.action === 'createKey').length, 0)
    // Every field of NewKey is taken.
    const { key } = store.createKey({ userId: 'u', description: 'd', expiresAt: expiresAt(), rules: ['billing:read'], state: 'suspended' })
    assert.deepEqual(key.rules, ['billing:read'])
    store.close()
  })

  test('updateKey: a state, a misspelt field or an option in the patch changes nothing and records nothing', () => {
    const store = KeyStore.inMemory()
    store.putUser({ id: 'u', rights: ['*:*'] })
    const { key, secret } = store.createKey({ userId: 'u', description: 'd', expiresAt: expiresAt(), rules: ['billing:read'] })
    const entries = store.audit().length
    refused(() => store.updateKey(key.id, { state: 'revoked' } as never), 'keygate', 'patch: no field "state" (a key\'s state is changed with setState)')
    refused(() => store.updateKey(key.id, { descripton: 'x' } as never), 'keygate', 'did you mean description?', 'the fields are description, rules, expiresAt')
    refused(() => store.updateKey(key.id, { rules: [], Rules: [] } as never), 'keygate', 'no field "Rules" (did you mean rules?)')
    refused(() => store.updateKey(key.id, { expectedUpdatedAt: key.updatedAt } as never), 'keygate', 'it is an option: updateKey(id, patch, { expectedUpdatedAt })')
    refused(() => store.updateKey(key.id, { userId: 'v' } as never), 'keygate', "a key's user cannot be changed")
    // A key read back is no patch.
    refused(() => store.updateKey(key.id, { ...key, description: 'x' } as never), 'keygate', 'patch: no field "id"')
    assert.deepEqual(store.getKey(key.id), key)
    assert.equal(store.isAllowed(secret, 'billing', 'read'), true, 'still active')
    assert.equal(store.audit().length, entries, 'nothing recorded')
    // Every field of KeyPatch is taken.
    const changed = store.updateKey(key.id, { description: 'x', rules: ['billing:*'], expiresAt: expiresAt() })
    assert.equal(changed.description, 'x')
    store.close()
  })

  test('putUser and putRole: a misspelt field is refused; a user or role read back is taken as it is', () => {
    const store = KeyStore.inMemory()
    store.putRole({ name: 'ops', rights: ['billing:*'] })
    store.putUser({ id: 'u', rights: ['billing:read'], roles: ['ops'] })
    refused(() => store.putUser({ id: 'u', rigths: [] } as never), 'keygate', 'user: no field "rigths" (did you mean rights?); the fields are id, status, rights, roles')
    refused(() => store.putUser({ id: 'u', role: ['ops'] } as never), 'keygate', 'did you mean roles?')
    refused(() => store.putRole({ name: 'ops', rights: [], description: 'x' } as never), 'keygate', 'role: no field "description"; the fields are name, rights')
    assert.deepEqual(store.getUser('u'), { id: 'u', status: 'active', rights: ['billing:read'], roles: ['ops'] })
    assert.deepEqual(store.getRole('ops'), { name: 'ops', rights: ['billing:*'] })
    // Round trips: what getUser and getRole give back is what putUser and putRole take.
    assert.deepEqual(store.putUser(store.getUser('u')!), store.getUser('u'))
    assert.deepEqual(store.putRole(store.getRole('ops')!), store.getRole('ops'))
    store.close()
  })

  test('a field named like a secret is not echoed, and a far-off name gets no suggestion', () => {
    const store = KeyStore.inMemory()
    store.putUser({ id: 'u', rights: ['*:*'] })
    const { key, secret } = store.createKey({ userId: 'u', description: 'd', expiresAt: expiresAt() })
    let message = ''
    try {
      store.updateKey(key.id, { [secret]: 'x' } as never)
    } catch (error) {
      message = (error as Error).message
    }
    assert.match(message, /^patch: no field/)
    assert.ok(!message.includes(secret.slice(3, 20)), message)
    refused(() => store.putUser({ id: 'u', colour: 'red' } as never), 'keygate', /no field "colour"; the fields are/)
    store.close()
  })
})
