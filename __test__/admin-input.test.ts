// The admin API's reading of body fields (docs/admin-api.md): an optional field that is null
// counts as missing, a field of the wrong JSON type or over its length is a 400 naming it,
// expiresAt is ISO text or milliseconds, and only the body's own fields are read. Each refusal is
// the exact code and message an operator sees, and changes nothing.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'

import { KeyStore } from '../index.js'
import { createAdminServer } from '../lib/admin/server.js'
import type { AdminServer } from '../lib/admin/server.js'
import { loginHeaders } from './support/admin.js'

const TOKEN = 'admin-input-token-0123456789'
const DAY = 86_400_000

describe('admin API body fields', () => {
  let store: KeyStore
  let server: AdminServer
  let headers: Record<string, string>

  before(async () => {
    store = KeyStore.inMemory()
    server = createAdminServer({ store, token: TOKEN, log: () => {} })
    await server.listen()
    headers = await loginHeaders(server, TOKEN)
  })
  after(async () => {
    await server.close()
    store.close()
  })

  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${server.url}/api${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) })
    const text = await res.text()
    return { status: res.status, body: text === '' ? undefined : (JSON.parse(text) as Record<string, any>) }
  }
  const refused = (r: { status: number; body?: Record<string, any> }, code: string, message: string, what: string) => {
    assert.equal(r.status, 400, `${what}: ${JSON.stringify(r.body)}`)
    assert.deepEqual(r.body, { error: { code, message } }, what)
  }
  const inAMonth = () => new Date(Date.now() + 30 * DAY).toISOString()

  test('an optional field sent as null counts as missing: a key edit keeps its description and rules, a new user takes the defaults', async () => {
    store.putUser({ id: 'svc-null', rights: ['*:*'] })
    const { key } = store.createKey({ userId: 'svc-null', description: 'kept', expiresAt: new Date(inAMonth()), rules: ['session:getInfo'] })
    const edited = await call('PATCH', `/keys/${key.id}`, { description: null, rules: null, updatedAt: null })
    assert.equal(edited.status, 200, JSON.stringify(edited.body))
    assert.deepEqual(store.getKey(key.id), key, 'nothing changed')
    const created = await call('POST', '/keys', { userId: 'svc-null', description: null, rules: null, state: null, expiresAt: inAMonth() })
    assert.equal(created.status, 201, JSON.stringify(created.body))
    assert.equal(created.body!.key.description, '')
    assert.deepEqual(created.body!.key.rules, [])
    assert.equal(created.body!.key.state, 'active')
    const user = await call('POST', '/users', { id: 'svc-null-2', status: null, rights: null, roles: null })
    assert.equal(user.status, 201, JSON.stringify(user.body))
    assert.deepEqual(store.getUser('svc-null-2'), { id: 'svc-null-2', status: 'active', rights: [], roles: [] })
  })

  test('a field of the wrong JSON type is a 400 naming it, and changes nothing', async () => {
    store.putUser({ id: 'svc-typed', rights: ['*:*'] })
    const { key } = store.createKey({ userId: 'svc-typed', description: 'd', expiresAt: new Date(inAMonth()), rules: ['session:getInfo'] })
    const keys = store.listKeys().length
    for (const [method, path, body, message] of [
      ['POST', '/keys', { userId: 5, description: 'd', expiresAt: inAMonth() }, 'userId must be a string'],
      ['POST', '/keys', { userId: 'svc-typed', description: ['d'], expiresAt: inAMonth() }, 'description must be a string'],
      ['PATCH', `/keys/${key.id}`, { description: { text: 'x' } }, 'description must be a string'],
      ['PATCH', `/keys/${key.id}`, { rules: 'session:*' }, 'rules must be a list of strings'],
      ['PATCH', `/keys/${key.id}`, { rules: { 0: 'session:*' } }, 'rules must be a list of strings'],
      ['POST', `/keys/${key.id}/state`, { state: true }, 'state must be a string'],
      ['POST', '/users', { id: ['svc-typed-2'] }, 'id must be a string'],
      ['POST', '/users', { id: 'svc-typed-2', roles: 'admins' }, 'roles must be a list of strings'],
      ['PUT', '/users/svc-typed', { status: 1 }, 'status must be a string'],
      ['POST', '/try', { service: 1, api: 'getInfo', keyId: key.id }, 'service must be a string'],
    ] as const) {
      refused(await call(method, path, body), 'INVALID_ARGUMENT', message, `${method} ${path} ${JSON.stringify(body)}`)
    }
    assert.equal(store.listKeys().length, keys)
    assert.deepEqual(store.getKey(key.id), key)
    assert.equal(store.getUser('svc-typed-2'), null)
    assert.deepEqual(store.getUser('svc-typed'), { id: 'svc-typed', status: 'active', rights: ['*:*'], roles: [] })
  })

  test('a required field left out or null is a 400 naming it', async () => {
    store.putUser({ id: 'svc-required', rights: ['*:*'] })
    const { key } = store.createKey({ userId: 'svc-required', description: 'd', expiresAt: new Date(inAMonth()) })
    for (const [method, path, body, message] of [
      ['POST', '/keys', { description: 'd', expiresAt: inAMonth() }, 'userId is required'],
      ['POST', '/keys', { userId: null, description: 'd', expiresAt: inAMonth() }, 'userId is required'],
      ['POST', `/keys/${key.id}/state`, { state: null }, 'state is required'],
      ['POST', '/rules/validate', { lines: null }, 'lines is required'],
      ['POST', '/try', { api: 'getInfo', keyId: key.id }, 'service is required'],
    ] as const) {
      refused(await call(method, path, body), 'INVALID_ARGUMENT', message, `${method} ${path} ${JSON.stringify(body)}`)
    }
    assert.deepEqual(store.getKey(key.id), key)
    assert.equal(store.listKeys({ userId: 'svc-required' }).length, 1)
  })

  test('a text over its field’s length is a 400 naming the field and the bound, never echoing the text; one at the bound is read', async () => {
    store.putUser({ id: 'svc-long', rights: ['*:*'] })
    const { key } = store.createKey({ userId: 'svc-long', description: 'd', expiresAt: new Date(inAMonth()) })
    const atBound = await call('POST', '/try', { service: 's'.repeat(4096), api: 'a'.repeat(4096), keyId: key.id })
    assert.equal(atBound.status, 200, JSON.stringify(atBound.body))
    const secretLike = `kg_${'x'.repeat(4094)}`
    for (const [method, path, body, message] of [
      ['POST', '/try', { service: 's'.repeat(4097), api: 'getInfo', keyId: key.id }, 'service is longer than 4096 characters'],
      ['POST', '/try', { service: 'session', api: 'getInfo', secret: secretLike }, 'secret is longer than 4096 characters'],
      ['PUT', '/users/svc-long', { id: 'u'.repeat(257) }, 'id is longer than 256 characters'],
    ] as const) {
      refused(await call(method, path, body), 'INVALID_ARGUMENT', message, `${method} ${path}`)
    }
    assert.deepEqual(store.getKey(key.id), key)
    assert.deepEqual(store.getUser('svc-long'), { id: 'svc-long', status: 'active', rights: ['*:*'], roles: [] })
  })

  test('/api/try: a long ip, key id or method gets the library’s decision, as explain gives it; only past 4,096 characters is a field refused', async () => {
    store.putUser({ id: 'svc-try-long', rights: ['*:*', 'dav=* *'] })
    const { key, secret } = store.createKey({ userId: 'svc-try-long', description: 'd', expiresAt: new Date(inAMonth()) })
    for (const ip of ['1'.repeat(2000), '1'.repeat(4096)]) {
      const library = store.explain(secret, 'session', 'getInfo', ip)
      assert.equal(library.reason, 'allowed', 'no ip= rules: any ip')
      const bySecret = await call('POST', '/try', { secret, service: 'session', api: 'getInfo', ip })
      assert.equal(bySecret.status, 200, JSON.stringify(bySecret.body))
      assert.deepEqual(bySecret.body!.decision, library)
      const byKey = await call('POST', '/try', { keyId: key.id, service: 'session', api: 'getInfo', ip })
      assert.equal(byKey.status, 200, JSON.stringify(byKey.body))
      assert.deepEqual(byKey.body!.decision, store.explainKey(key.id, 'session', 'getInfo', ip))
    }
    const longId = `key_${'x'.repeat(1996)}`
    assert.equal(store.explainKey(longId, 'session', 'getInfo').reason, 'unknown_key')
    const unknown = await call('POST', '/try', { keyId: longId, service: 'session', api: 'getInfo' })
    assert.equal(unknown.status, 404, JSON.stringify(unknown.body))
    assert.equal(unknown.body!.error.code, 'UNKNOWN_KEY')
    const method = 'G'.repeat(300)
    const dav = await call('POST', '/try', { kind: 'dav', keyId: key.id, method, path: '/docs/a.txt' })
    assert.equal(dav.status, 200, JSON.stringify(dav.body))
    assert.deepEqual(dav.body!.decision, store.explainKeyDav(key.id, method, '/docs/a.txt'))
    for (const [body, message] of [
      [{ secret, service: 'session', api: 'getInfo', ip: '1'.repeat(4097) }, 'ip is longer than 4096 characters'],
      [{ keyId: 'k'.repeat(4097), service: 'session', api: 'getInfo' }, 'keyId is longer than 4096 characters'],
      [{ kind: 'dav', keyId: key.id, method: 'G'.repeat(4097), path: '/a' }, 'method is longer than 4096 characters'],
    ] as const) {
      refused(await call('POST', '/try', body), 'INVALID_ARGUMENT', message, Object.keys(body).join())
    }
  })

  test('expiresAt: ISO text or milliseconds; missing, null or "" is EXPIRY_REQUIRED; another type or an instant no Date holds is INVALID_ARGUMENT', async () => {
    store.putUser({ id: 'svc-expiry', rights: ['*:*'] })
    const at = Date.now() + 10 * DAY
    const byNumber = await call('POST', '/keys', { userId: 'svc-expiry', description: 'ms', expiresAt: at })
    assert.equal(byNumber.status, 201, JSON.stringify(byNumber.body))
    assert.equal(byNumber.body!.key.expiresAt, new Date(at).toISOString())
    const key = store.getKey(byNumber.body!.key.id)!
    for (const body of [{}, { expiresAt: null }, { expiresAt: '' }]) {
      refused(await call('POST', '/keys', { userId: 'svc-expiry', description: 'd', ...body }), 'EXPIRY_REQUIRED', 'expiresAt is required', JSON.stringify(body))
    }
    for (const expiresAt of [null, '']) {
      refused(await call('PATCH', `/keys/${key.id}`, { expiresAt }), 'EXPIRY_REQUIRED', 'expiresAt is required', `PATCH ${JSON.stringify(expiresAt)}`)
    }
    for (const expiresAt of [true, [at], { at }]) {
      refused(await call('PATCH', `/keys/${key.id}`, { expiresAt }), 'INVALID_ARGUMENT', 'expiresAt must be an ISO date-time', JSON.stringify(expiresAt))
    }
    // Beyond ±8.64e15 ms no Date holds the instant: refused here, never handed on as an Invalid Date.
    for (const expiresAt of [8.64e15 + 1, 1e300]) {
      refused(await call('PATCH', `/keys/${key.id}`, { expiresAt }), 'INVALID_ARGUMENT', 'expiresAt is not a valid date-time', String(expiresAt))
    }
    // Text as toISOString writes a year beyond ±275,760 names no instant a Date holds either.
    const beyond = '+300000-01-01T00:00:00.000Z'
    refused(await call('PATCH', `/keys/${key.id}`, { expiresAt: beyond }), 'INVALID_ARGUMENT', 'expiresAt is not a valid date-time', beyond)
    refused(await call('PATCH', `/keys/${key.id}`, { description: 'x', updatedAt: beyond }), 'INVALID_ARGUMENT', 'updatedAt is not a valid date-time', beyond)
    assert.deepEqual(store.getKey(key.id), key, 'nothing changed')
    assert.equal(store.listKeys({ userId: 'svc-expiry' }).length, 1)
  })

  test('a field the body only inherits (a polluted Object.prototype) is not read: a key without expiresAt is refused, a description not sent is empty', async () => {
    store.putUser({ id: 'svc-inherited', rights: ['*:*'] })
    const proto = Object.prototype as Record<string, unknown>
    proto.expiresAt = inAMonth()
    proto.description = 'inherited'
    const [missing, created] = await Promise.all([
      call('POST', '/keys', { userId: 'svc-inherited' }),
      call('POST', '/keys', { userId: 'svc-inherited', expiresAt: inAMonth() }),
    ]).finally(() => {
      delete proto.expiresAt
      delete proto.description
    })
    refused(missing, 'EXPIRY_REQUIRED', 'expiresAt is required', 'POST /keys without expiresAt')
    assert.equal(created.status, 201, JSON.stringify(created.body))
    assert.equal(created.body!.key.description, '')
    assert.equal(store.listKeys({ userId: 'svc-inherited' }).length, 1)
  })

  test('a field or parameter named as an Object.prototype member is refused as any unknown one, with no hint read from the prototype', async () => {
    store.putUser({ id: 'svc-proto', rights: ['*:*'] })
    const { key } = store.createKey({ userId: 'svc-proto', description: 'd', expiresAt: new Date(inAMonth()) })
    for (const [method, path, body, message] of [
      [
        'POST',
        '/keys',
        { userId: 'svc-proto', expiresAt: inAMonth(), constructor: 1 },
        'body: no field "constructor"; the fields are userId, description, expiresAt, rules, state',
      ],
      ['PATCH', `/keys/${key.id}`, { toString: 'x' }, 'body: no field "toString"; the fields are description, rules, expiresAt, updatedAt'],
      ['PATCH', `/keys/${key.id}`, '{"__proto__": {"description": "x"}}', 'body: no field "__proto__"; the fields are description, rules, expiresAt, updatedAt'],
      ['GET', '/keys?constructor=1', undefined, 'query: no parameter "constructor"; the parameters are userId, state, search, limit, after'],
    ] as const) {
      const r =
        typeof body === 'string'
          ? await fetch(`${server.url}/api${path}`, { method, headers, body }).then(async (res) => ({
              status: res.status,
              body: (await res.json()) as Record<string, any>,
            }))
          : await call(method, path, body)
      refused(r, 'INVALID_ARGUMENT', message, `${method} ${path}`)
    }
    assert.deepEqual(store.getKey(key.id), key)
    assert.equal(store.listKeys({ userId: 'svc-proto' }).length, 1)
  })

  test('a user status or key state filter that is none of the known ones is a 400 naming it', async () => {
    store.putUser({ id: 'svc-status', rights: ['*:*'] })
    refused(await call('PUT', '/users/svc-status', { status: 'retired' }), 'INVALID_ARGUMENT', 'unknown user status "retired"', 'PUT status')
    refused(await call('GET', '/keys?state=gone'), 'INVALID_STATE', 'unknown key state "gone"', 'GET ?state=gone')
    assert.deepEqual(store.getUser('svc-status'), { id: 'svc-status', status: 'active', rights: ['*:*'], roles: [] })
  })

  test('a misspelt field is told the known name it is a slip for: the same but for case, two edits or two swaps away; a short one only when the same but for case', async () => {
    store.putUser({ id: 'svc-slips', rights: ['*:*'] })
    const { key } = store.createKey({ userId: 'svc-slips', description: 'd', expiresAt: new Date(inAMonth()) })
    const tryFields = 'the fields are kind, service, api, method, path, ip, secret, keyId'
    const editFields = 'the fields are description, rules, expiresAt, updatedAt'
    const tried = { service: 'session', api: 'getInfo', keyId: key.id }
    for (const [method, path, body, message] of [
      ['POST', '/try', { ...tried, IP: '10.0.0.1' }, `body: no field "IP" (did you mean ip?); ${tryFields}`],
      ['POST', '/try', { ...tried, apu: 'x' }, `body: no field "apu"; ${tryFields}`],
      ['PATCH', `/keys/${key.id}`, { descriptn: 'x' }, `body: no field "descriptn" (did you mean description?); ${editFields}`],
      ['PATCH', `/keys/${key.id}`, { dsecritpion: 'x' }, `body: no field "dsecritpion" (did you mean description?); ${editFields}`],
    ] as const) {
      refused(await call(method, path, body), 'INVALID_ARGUMENT', message, JSON.stringify(body))
    }
    assert.deepEqual(store.getKey(key.id), key)
  })
})
