// The typings against the runtime: what index.d.ts lets a TypeScript user write is what the
// store takes, and what the store refuses whatever the values is refused by the types too.
// `npm run typecheck` (tsc -p __test__) checks the type half: each call below must compile,
// each `@ts-expect-error` must be an error; the test runner checks the runtime half.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'

import type { IncomingMessage } from 'node:http'

import type { ApiKey, Decision, DenyReason, KeyPatch, NewKey, RoleInput, UserInput } from '../index.js'
import { createGuard, type GuardStore } from 'keygate/http'
import { createAdminHandler, createAdminServer } from '../lib/admin/index.js'
import type { AdminHandlerOptions, AdminServerOptions } from '../lib/admin/index.js'
import { DAY, T0, at, frozenStore, throwsCode, withUser } from './helpers.js'

describe('readonly arrays (`as const`, Object.freeze) are taken wherever a list is given', () => {
  // Rules kept as constants: `as const` and Object.freeze make them readonly arrays.
  const RIGHTS = ['session:*', 'data:entityBrowseRecords2'] as const
  const RULES: readonly string[] = Object.freeze(['session:userLogon', 'ip=10.0.0.0/8'])

  test('putRole, putUser, createKey and updateKey', () => {
    const store = frozenStore()
    const role: RoleInput = { name: 'reader', rights: RIGHTS }
    assert.deepEqual(store.putRole(role).rights, [...RIGHTS])
    const user: UserInput = { id: 'integration', rights: Object.freeze(['session:userLogon']), roles: ['reader'] as const }
    assert.deepEqual(store.putUser(user).roles, ['reader'])
    const input: NewKey = { userId: 'integration', description: 'sync', expiresAt: at(T0, DAY), rules: RULES }
    const { key, secret } = store.createKey(input)
    assert.deepEqual(key.rules, [...RULES])
    assert.equal(store.isAllowed(secret, 'session', 'userLogon', '10.1.2.3'), true)
    const patch: KeyPatch = { rules: RIGHTS }
    assert.deepEqual(store.updateKey(key.id, patch).rules, [...RIGHTS])
  })

  test('a role read back with getRole is still taken as it is', () => {
    const store = frozenStore()
    store.putRole({ name: 'reader', rights: ['session:*'] })
    const role = store.getRole('reader')
    assert.ok(role)
    assert.deepEqual(store.putRole(role), role)
  })
})

describe('expectedUpdatedAt: null is taken as left out (README, "Options are checked by name")', () => {
  test('setState, rotateKey and updateKey take null and check nothing; deleteKey takes it too', () => {
    const store = withUser(frozenStore())
    const { key } = store.createKey({ userId: 'integration', description: 'd', expiresAt: at(T0, DAY) })
    // A key changed since it was read: a Date would be a CONFLICT, null asks for no check.
    store.updateKey(key.id, { description: 'changed' })
    assert.equal(store.updateKey(key.id, { description: 'again' }, { expectedUpdatedAt: null }).description, 'again')
    assert.equal(store.setState(key.id, 'suspended', { expectedUpdatedAt: null }).state, 'suspended')
    const rotated = store.rotateKey(key.id, { expectedUpdatedAt: null })
    assert.equal(store.deleteKey(rotated.key.id, { expectedUpdatedAt: null }), true)
  })
})

describe('a key read back is no new key and no patch: the types refuse what the store refuses', () => {
  test('updateKey(id, { ...key, description }) and createKey({ ...key }) are INVALID_ARGUMENT', () => {
    const store = withUser(frozenStore())
    const { key } = store.createKey({ userId: 'integration', description: 'd', expiresAt: at(T0, DAY) })
    const readBack: ApiKey = key
    // @ts-expect-error a key read back has id, state, createdAt…: no patch
    throwsCode(() => store.updateKey(key.id, { ...readBack, description: 'x' }), 'INVALID_ARGUMENT', 'no field')
    // @ts-expect-error a key read back is no patch, even passed through a variable
    throwsCode(() => store.updateKey(key.id, readBack), 'INVALID_ARGUMENT', 'no field')
    // @ts-expect-error a key's state is changed with setState
    throwsCode(() => store.updateKey(key.id, { state: 'revoked' }), 'INVALID_ARGUMENT', 'setState')
    const revoke = { description: 'x', state: 'revoked' } as const
    // @ts-expect-error …also when the patch is a variable (no excess-property check there)
    throwsCode(() => store.updateKey(key.id, revoke), 'INVALID_ARGUMENT', 'setState')
    const active = { ...readBack, state: 'active', expiresAt: at(T0, 2 * DAY) } as const
    // @ts-expect-error a key read back is no new key (its id, createdAt, hint…)
    throwsCode(() => store.createKey(active), 'INVALID_ARGUMENT', 'no field')
    assert.equal(store.getKey(key.id)?.description, 'd')
    assert.equal(store.listKeys().length, 1)
  })
})

describe("keygate/admin: a server's options are no handler's, nor the reverse", () => {
  const TOKEN = 'an-admin-token-of-32-characters!'

  test('createAdminHandler refuses host and port, createAdminServer prefix and cookiePath (TypeError)', async () => {
    const store = frozenStore()
    const standalone: AdminServerOptions = { store, token: TOKEN, host: '127.0.0.1', port: 0 }
    // @ts-expect-error options made for createAdminServer, passed in a variable
    assert.throws(() => createAdminHandler(standalone), { name: 'TypeError', message: /no option "host"/ })
    // @ts-expect-error …or spread into the handler's
    assert.throws(() => createAdminHandler({ ...standalone, prefix: '/admin' }), { name: 'TypeError', message: /no option "host"/ })
    const mounted: AdminHandlerOptions = { store, token: TOKEN, prefix: '/admin', cookiePath: '/' }
    // @ts-expect-error options made for createAdminHandler
    assert.throws(() => createAdminServer(mounted), { name: 'TypeError', message: /no option "prefix"/ })
    // What both take compiles and runs for both.
    const { host: _host, port: _port, ...shared } = standalone
    await createAdminHandler({ ...shared, prefix: '/admin' }).close()
    const server = createAdminServer({ ...shared, port: 0 })
    assert.equal(server.url, null)
    await server.close()
  })
})

describe('createGuard takes a wrapper of a store, as http.d.ts documents, without a cast', () => {
  /** A node request carrying `secret` in X-API-Key, for `path` (default: session:userLogon). */
  function request(secret: string, path = '/xmlmc/session/?method=userLogon', method = 'POST'): IncomingMessage {
    return {
      method,
      url: path,
      rawHeaders: ['X-API-Key', secret],
      headers: { 'x-api-key': secret },
      socket: { remoteAddress: '192.0.2.10' },
    } as unknown as IncomingMessage
  }

  test('a deny list in front of the store compiles as a GuardStore and its refusal is the answer', () => {
    const store = withUser(frozenStore(), { id: 'integration', rights: ['session:*', 'dav=GET docs/*'] })
    const { secret } = store.createKey({ userId: 'integration', description: 'd', expiresAt: at(T0, DAY) })
    const denied = new Set<string>([secret])
    const withDenyList = {
      isAllowed: (key: string, service: string, api: string, ip?: string | null) => !denied.has(key) && store.isAllowed(key, service, api, ip),
      isAllowedDav: (key: string, method: string, path: string, ip?: string | null) => !denied.has(key) && store.isAllowedDav(key, method, path, ip),
      explain: (key: string, service: string, api: string, ip?: string | null) => store.explain(key, service, api, ip),
      explainDav: (key: string, method: string, path: string, ip?: string | null) => store.explainDav(key, method, path, ip),
    }
    const guard = createGuard(withDenyList)
    // The type names what a wrapper needs; a KeyStore is one too.
    const asNamed: GuardStore[] = [withDenyList, store]
    assert.equal(asNamed.length, 2)
    for (const refused of [guard.check(request(secret)), guard.check(request(secret, '/dav/docs/a.txt', 'GET'))]) {
      assert.equal(refused.ok ? 200 : refused.status, 403)
    }
    denied.clear()
    assert.equal(guard.check(request(secret)).ok, true)
    assert.equal(guard.check(request(secret, '/dav/docs/a.txt', 'GET')).ok, true)
  })

  test('an object without the methods the guard calls is refused by the types and by createGuard', () => {
    const store = frozenStore()
    const checkOnly = { isAllowed: store.isAllowed.bind(store) }
    // @ts-expect-error no explain: the guard could not say why a call was refused
    throwsCode(() => createGuard(checkOnly), 'INVALID_ARGUMENT', 'needs a KeyStore')
  })
})

describe('a Decision tells its two kinds apart by `allowed`', () => {
  test('allowed: the reason is allowed and the key and user are named; denied: the reason is why not', () => {
    const store = withUser(frozenStore())
    const { key, secret } = store.createKey({ userId: 'integration', description: 'd', expiresAt: at(T0, DAY), rules: ['session:*', 'ip=10.0.0.0/8'] })
    const seen: Decision[] = [
      store.explain(secret, 'session', 'userLogon', '10.1.2.3'),
      store.explainDav(secret, 'GET', '/docs/a.txt', '10.1.2.3'),
      store.explainKey(key.id, 'session', 'userLogon', '10.1.2.3'),
      store.explain(secret, 'session', 'userLogon', '192.0.2.1'),
      store.explain(secret, 'data', 'entityGetRecord', '10.1.2.3'),
      store.explain('kg_not_a_secret', 'session', 'userLogon'),
      store.explainKey('key_unknown', 'session', 'userLogon'),
    ]
    const kinds = seen.map((decision) => {
      if (decision.allowed) {
        // Narrowed: no optional chaining needed, and the reason is the one that allows.
        const named: { keyId: string; userId: string } = { keyId: decision.keyId, userId: decision.userId }
        const reason: 'allowed' = decision.reason
        assert.deepEqual([named, reason], [{ keyId: key.id, userId: 'integration' }, 'allowed'])
        return 'allowed'
      }
      const why: DenyReason = decision.reason
      // @ts-expect-error a denied decision is never 'allowed'
      assert.notEqual(decision.reason === 'allowed', true)
      // @ts-expect-error a denied decision may name no key (malformed_key, unknown_key, store_unavailable)
      const id: string = decision.keyId
      assert.equal(typeof id === 'string', why !== 'malformed_key' && why !== 'unknown_key')
      return why
    })
    assert.deepEqual(kinds, ['allowed', 'user_lacks_right', 'allowed', 'ip_not_allowed', 'no_matching_rule', 'malformed_key', 'unknown_key'])
  })
})
