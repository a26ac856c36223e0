// The admin JSON API as a script uses it (docs/admin-api.md): idempotent state changes, 405 with
// Allow for a method a path does not take, HEAD as GET, what a user's deletion took with it, and
// rotation's answer and overlap.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'

import { KeyStore } from '../index.js'
import { createAdminServer } from '../lib/admin/server.js'
import type { AdminServer } from '../lib/admin/server.js'
import { serve } from '../lib/admin/serve.js'
import { loginHeaders } from './support/admin.js'

const TOKEN = 'admin-api-token-0123456789'
const DAY = 86_400_000
const { parseDate, parseDateTime } = require('../lib/dates.js') as Record<'parseDate' | 'parseDateTime', (text: string) => Date | undefined>

describe('admin JSON API', () => {
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
    return { status: res.status, headers: res.headers, body: text === '' ? undefined : (JSON.parse(text) as Record<string, any>) }
  }
  const newKey = (userId: string) => store.createKey({ userId, description: 'd', expiresAt: new Date(Date.now() + 30 * DAY) })

  test('setting the state a key has: 200 and nothing recorded without updatedAt (as keygate key revoke); 409 KEY_CHANGED with the page’s updatedAt', async () => {
    store.putUser({ id: 'svc-state', rights: ['*:*'] })
    const { key } = newKey('svc-state')
    const revoked = await call('POST', `/keys/${key.id}/state`, { state: 'revoked' })
    assert.equal(revoked.status, 200)
    assert.equal(revoked.body!.key.state, 'revoked')
    const entries = store.audit({ keyId: key.id }).length
    const again = await call('POST', `/keys/${key.id}/state`, { state: 'revoked' })
    assert.equal(again.status, 200, JSON.stringify(again.body))
    assert.equal(again.body!.key.state, 'revoked')
    assert.equal(store.audit({ keyId: key.id }).length, entries, 'a change that changed nothing is not recorded')
    // The page sends the updatedAt it shows: the same state then means it is behind.
    const behind = await call('POST', `/keys/${key.id}/state`, { state: 'revoked', updatedAt: key.updatedAt.toISOString() })
    assert.equal(behind.status, 409)
    assert.equal(behind.body!.error.code, 'KEY_CHANGED')
  })

  test('a path asked with a method it does not take: 405 METHOD_NOT_ALLOWED with Allow; an unknown path stays 404', async () => {
    store.putUser({ id: 'svc-methods', rights: [] })
    for (const [method, path, allow] of [
      ['PATCH', '/users/svc-methods', 'GET, HEAD, PUT, DELETE'],
      ['DELETE', '/users', 'GET, HEAD, POST'],
      ['POST', '/audit/verify', 'GET, HEAD'],
    ] as const) {
      const r = await call(method, path, method === 'DELETE' ? undefined : {})
      assert.equal(r.status, 405, `${method} ${path}`)
      assert.equal(r.body!.error.code, 'METHOD_NOT_ALLOWED')
      assert.equal(r.headers.get('allow'), allow, `${method} ${path}`)
    }
    const missing = await call('GET', '/nothing/here')
    assert.equal(missing.status, 404)
    assert.equal(missing.body!.error.code, 'NOT_FOUND')
  })

  test('every 405 names the methods the path takes (Allow, which HTTP requires of a 405): login, logout, session and the page too', async () => {
    const raw = async (method: string, path: string) => {
      const res = await fetch(`${server.url}${path}`, { method, headers })
      await res.arrayBuffer()
      return res
    }
    for (const [method, path, allow] of [
      ['GET', '/api/login', 'POST'],
      ['PUT', '/api/login', 'POST'],
      ['HEAD', '/api/login', 'POST'],
      ['GET', '/api/logout', 'POST'],
      ['DELETE', '/api/logout', 'POST'],
      ['POST', '/api/session', 'GET, HEAD'],
      ['DELETE', '/api/session', 'GET, HEAD'],
      ['POST', '/', 'GET, HEAD'],
      ['DELETE', '/app.js', 'GET, HEAD'],
    ] as const) {
      const res = await raw(method, path)
      assert.equal(res.status, 405, `${method} ${path}`)
      assert.equal(res.headers.get('allow'), allow, `${method} ${path}`)
    }
    // The session is still there: a 405 ended nothing.
    assert.equal((await call('GET', '/session')).body!.authenticated, true)
  })

  test('HEAD is GET without a body', async () => {
    for (const path of ['/session', '/keys', '/users/svc-methods']) {
      const r = await call('HEAD', path)
      assert.equal(r.status, 200, path)
      assert.equal(r.body, undefined)
      assert.match(r.headers.get('content-type') ?? '', /^application\/json/)
    }
  })

  test('DELETE /api/users/:id says how many keys went with the user', async () => {
    store.putUser({ id: 'svc-leaving', rights: ['*:*'] })
    newKey('svc-leaving')
    newKey('svc-leaving')
    const r = await call('DELETE', '/users/svc-leaving')
    assert.equal(r.status, 200)
    assert.deepEqual(r.body, { deleted: true, id: 'svc-leaving', keysDeleted: 2 })
    assert.equal(store.listKeys({ userId: 'svc-leaving' }).length, 0)
  })

  test('GET /api/users counts each user’s keys by state without listing every key (seconds of a blocked event loop at 100,000 keys)', async () => {
    store.putUser({ id: 'svc-counted', rights: ['*:*'] })
    store.putUser({ id: 'svc-keyless' })
    const ids = [newKey('svc-counted'), newKey('svc-counted'), newKey('svc-counted'), newKey('svc-counted')].map(({ key }) => key.id)
    store.setState(ids[0]!, 'suspended')
    store.setState(ids[1]!, 'revoked')
    store.setState(ids[2]!, 'revoked')
    const listKeys = store.listKeys
    store.listKeys = () => assert.fail('the users list listed every key to count them')
    try {
      const r = await call('GET', '/users')
      assert.equal(r.status, 200)
      const row = (id: string) => r.body!.users.find((u: { id: string }) => u.id === id)
      assert.deepEqual(row('svc-counted').keys, { total: 4, active: 1, suspended: 1, revoked: 2 })
      assert.deepEqual(row('svc-keyless').keys, { total: 0, active: 0, suspended: 0, revoked: 0 })
    } finally {
      store.listKeys = listKeys
    }
  })
  test('rotate: 201 { key, secret, previous }; an overlap beyond the key’s expiry ends at its expiry; a bad one is 400', async () => {
    store.putUser({ id: 'svc-rotate', rights: ['*:*'] })
    const { key } = newKey('svc-rotate')
    const r = await call('POST', `/keys/${key.id}/rotate`, { overlapSeconds: 3650 * 86_400 })
    assert.equal(r.status, 201, JSON.stringify(r.body))
    assert.deepEqual(Object.keys(r.body!).sort(), ['key', 'previous', 'secret'])
    assert.equal(r.body!.previous.id, key.id)
    assert.equal(r.body!.previous.expiresAt, key.expiresAt.toISOString(), 'the old key keeps its own expiry, no later')
    assert.ok(store.isAllowed(r.body!.secret, 'session', 'userLogon'))
    for (const overlapSeconds of [-1, 1.5, '60']) {
      const bad = await call('POST', `/keys/${r.body!.key.id}/rotate`, { overlapSeconds })
      assert.equal(bad.status, 400, String(overlapSeconds))
      assert.equal(bad.body!.error.code, 'INVALID_ARGUMENT')
      assert.match(bad.body!.error.message, /overlapSeconds .*must be a whole number of seconds, 0 or more/)
    }
  })

  test('a date-time is read as ISO 8601, one without an offset in UTC, whatever the server’s time zone; another form is 400', async () => {
    store.putUser({ id: 'svc-tz', rights: ['*:*'] })
    const day = new Date(Date.now() + 10 * DAY).toISOString().slice(0, 10)
    const tz = process.env.TZ
    process.env.TZ = 'Pacific/Kiritimati' // UTC+14: a local reading is 14 hours off
    try {
      const created = await call('POST', '/keys', { userId: 'svc-tz', description: 'd', expiresAt: `${day}T12:00:00` })
      assert.equal(created.status, 201)
      assert.equal(created.body!.key.expiresAt, `${day}T12:00:00.000Z`)
      const id = created.body!.key.id
      const edited = await call('PATCH', `/keys/${id}`, { expiresAt: `${day}T13:30` })
      assert.equal(edited.status, 200)
      assert.equal(edited.body!.key.expiresAt, `${day}T13:30:00.000Z`)
      // A second after the edit, without an offset: read as local time, 14 hours before it.
      const after = new Date(new Date(edited.body!.key.updatedAt as string).getTime() + 1000).toISOString().slice(0, 19)
      const since = (await call('GET', `/audit?keyId=${id}&since=${after}`)).body!.entries as unknown[]
      assert.equal(since.length, 0, 'since without an offset is UTC: nothing is at or after it')
      // What V8 guesses (local time, or a year from '1') is refused, and changes nothing.
      for (const expiresAt of [`${day} 12:00 local`, 'Jan 31 2099', '1', `${day.replaceAll('-', '/')}`]) {
        const bad = await call('PATCH', `/keys/${id}`, { expiresAt })
        assert.equal(bad.status, 400, expiresAt)
        assert.equal(bad.body!.error.code, 'INVALID_ARGUMENT', expiresAt)
      }
      assert.equal(store.getKey(id)!.expiresAt.toISOString(), `${day}T13:30:00.000Z`)
      // The updatedAt a change carries is read so too: without an offset it is UTC, and matches.
      const seen = store.getKey(id)!.updatedAt.toISOString().slice(0, -1)
      const matched = await call('PATCH', `/keys/${id}`, { description: 'tz', updatedAt: seen })
      assert.equal(matched.status, 200, JSON.stringify(matched.body))
      for (const updatedAt of ['Jan 31 2099', '1']) {
        const bad = await call('PATCH', `/keys/${id}`, { description: 'guessed', updatedAt })
        assert.equal(bad.status, 400, updatedAt)
        assert.equal(bad.body!.error.code, 'INVALID_ARGUMENT', updatedAt)
      }
      assert.equal(store.getKey(id)!.description, 'tz')
    } finally {
      if (tz === undefined) delete process.env.TZ
      else process.env.TZ = tz
    }
  })

  test('dates as docs/cli.md and docs/admin-api.md give them, read alike by the CLI and the API: each form, each bound, and what is no date', () => {
    const read = (text: string, parse: (t: string) => Date | undefined = parseDateTime) => {
      const d = parse(text)
      return d === undefined ? undefined : Number.isFinite(d.getTime()) ? d.toISOString() : 'Invalid Date'
    }
    for (const [text, iso] of [
      ['2027-01-31', '2027-01-31T00:00:00.000Z'],
      [' 2027-01-31\n', '2027-01-31T00:00:00.000Z'],
      ['2027-01-31T17:00:00Z', '2027-01-31T17:00:00.000Z'],
      ['2027-01-31t17:00:00z', '2027-01-31T17:00:00.000Z'],
      ['2027-01-31 17:00', '2027-01-31T17:00:00.000Z'],
      ['2027-01-31T18:00+01:00', '2027-01-31T17:00:00.000Z'],
      ['2027-01-31T18:00+0100', '2027-01-31T17:00:00.000Z'],
      ['2027-01-31T12:00-05:30', '2027-01-31T17:30:00.000Z'],
      ['2027-01-31T00:00+23:59', '2027-01-30T00:01:00.000Z'],
      ['2027-01-31T17:00:00.5Z', '2027-01-31T17:00:00.500Z'],
      ['2027-01-31T17:00:00.123456789Z', '2027-01-31T17:00:00.123Z'],
      ['2027-12-31T23:59:59.999Z', '2027-12-31T23:59:59.999Z'],
      ['2028-02-29', '2028-02-29T00:00:00.000Z'],
      ['0099-01-01', '0099-01-01T00:00:00.000Z'], // not 1999, as Date.UTC would have it
      ['0000-01-01', '0000-01-01T00:00:00.000Z'],
      ['+275760-09-13T00:00:00.000Z', '+275760-09-13T00:00:00.000Z'], // as toISOString writes the last date
      ['-000001-01-01T00:00:00.000Z', '-000001-01-01T00:00:00.000Z'],
    ] as const) {
      assert.equal(read(text), iso, JSON.stringify(text))
      if (!/^[+-]/.test(text)) assert.equal(read(text, parseDate), iso, `the CLI's ${JSON.stringify(text)}`)
    }
    assert.equal(read('+275760-09-13T00:00:00.000Z', parseDate), undefined, 'the CLI takes four-digit years only')
    for (const text of [
      '',
      '1',
      'Jan 31 2027',
      '2027/01/31',
      'x2027-01-31',
      '2027-01-31x',
      '12027-01-31',
      '2027-1-31',
      '2027-01-1',
      '2027-02-29',
      '2027-02-30',
      '2027-04-31',
      '2027-00-10',
      '2027-13-01',
      '2027-01-00',
      '2027-01-31T7:00Z',
      '2027-01-31T17Z',
      '2027-01-31X17:00',
      '2027-01-31x17:00',
      '2027-01-31T17:00:00.Z',
      '2027-01-31T24:00Z',
      '2027-01-31T23:60Z',
      '2027-01-31T23:59:60Z',
      '2027-01-31T17:00+24:00',
      '2027-01-31T17:00+01:60',
      '2027-01-31T17:00+01',
      '2027-01-31T17:00Z+01:00',
      // A zone belongs to a time, right after it.
      '2027-01-31Z',
      '2027-01-31+05:00',
      '2027-01-31T17:00 Z',
      '2027-01-31T17:00\n+01:00',
      '+2027-01-31T00:00:00.000Z',
      'x+275760-09-13T00:00:00.000Z',
      '+275760-09-13T00:00:00.000Zx',
    ]) {
      assert.equal(read(text), undefined, JSON.stringify(text))
      assert.equal(read(text, parseDate), undefined, `the CLI's ${JSON.stringify(text)}`)
    }
  })

  test('a list with an element that is no string, or an updatedAt sent as a number, is a 400 naming the field, and changes nothing', async () => {
    store.putUser({ id: 'svc-types', rights: ['*:*'] })
    const { key } = newKey('svc-types')
    const keys = store.listKeys().length
    const expiresAt = new Date(Date.now() + DAY).toISOString()
    for (const [method, path, body, name] of [
      ['POST', '/keys', { userId: 'svc-types', description: 'd', expiresAt, rules: ['session:*', 5] }, 'rules'],
      ['PATCH', `/keys/${key.id}`, { rules: [null] }, 'rules'],
      ['POST', '/users', { id: 'svc-types-2', rights: [{ service: '*' }] }, 'rights'],
      ['PUT', '/users/svc-types', { roles: [['admins']] }, 'roles'],
      ['POST', '/roles', { name: 'role-types', rights: [true] }, 'rights'],
      ['POST', '/rules/validate', { lines: ['session:*', 1] }, 'lines'],
    ] as const) {
      const r = await call(method, path, body)
      assert.equal(r.status, 400, `${method} ${path} ${JSON.stringify(r.body)}`)
      assert.equal(r.body!.error.code, 'INVALID_ARGUMENT')
      assert.equal(r.body!.error.message, `${name} must be a list of strings`)
    }
    // The page sends back the updatedAt it read (a string); a number is no stamp it read.
    for (const [method, path, body] of [
      ['PATCH', `/keys/${key.id}`, { description: 'changed', updatedAt: key.updatedAt.getTime() }],
      ['POST', `/keys/${key.id}/state`, { state: 'suspended', updatedAt: key.updatedAt.getTime() }],
    ] as const) {
      const r = await call(method, path, body)
      assert.equal(r.status, 400, `${method} ${path} ${JSON.stringify(r.body)}`)
      assert.equal(r.body!.error.message, 'updatedAt is not a valid date-time')
    }
    assert.equal(store.listKeys().length, keys)
    assert.deepEqual(store.getKey(key.id), key)
    assert.deepEqual(store.getUser('svc-types')!.roles, [])
    assert.equal(store.getUser('svc-types-2'), null)
    assert.equal(store.getRole('role-types'), null)
  })

  test('a change must be declared application/json (parameters allowed, any case): another type that merely holds the words is 415, and changes nothing', async () => {
    const send = (type: string, id: string) =>
      fetch(`${server.url}/api/users`, { method: 'POST', headers: { ...headers, 'Content-Type': type }, body: JSON.stringify({ id, rights: [] }) })
    for (const type of ['text/plain; x=application/json', 'application/jsonp', 'application/json-seq', 'application/json5; charset=utf-8']) {
      const res = await send(type, 'svc-type-refused')
      assert.equal(res.status, 415, type)
      assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'UNSUPPORTED_MEDIA_TYPE', type)
    }
    assert.equal(store.getUser('svc-type-refused'), null)
    for (const [i, type] of ['Application/JSON', 'application/json ; charset=utf-8', 'application/json'].entries()) {
      const res = await send(type, `svc-type-${i}`)
      assert.equal(res.status, 201, `${type}: ${await res.text()}`)
    }
  })

  test('a body field or query parameter a route does not take is a 400 naming it, and changes nothing', async () => {
    store.putUser({ id: 'svc-fields', rights: ['*:*'] })
    const expiresAt = new Date(Date.now() + 30 * DAY).toISOString()
    // A misspelt rules would have made a key free to call whatever its user may.
    const misspelt = await call('POST', '/keys', { userId: 'svc-fields', description: 'd', expiresAt, rule: ['billing:read'] })
    assert.equal(misspelt.status, 400)
    assert.equal(misspelt.body!.error.code, 'INVALID_ARGUMENT')
    assert.equal(misspelt.body!.error.message, 'body: no field "rule" (did you mean rules?); the fields are userId, description, expiresAt, rules, state')
    assert.deepEqual(store.listKeys({ userId: 'svc-fields' }), [])
    // A state sent with an edit would have left a key meant to be revoked usable.
    const { key, secret } = newKey('svc-fields')
    const read = (await call('GET', `/keys/${key.id}`)).body!.key
    for (const patch of [{ state: 'revoked' }, { ...read, description: 'x' }, { descripton: 'x' }]) {
      const r = await call('PATCH', `/keys/${key.id}`, patch)
      assert.equal(r.status, 400, JSON.stringify(patch))
      assert.equal(r.body!.error.code, 'INVALID_ARGUMENT')
    }
    assert.match(
      (await call('PATCH', `/keys/${key.id}`, { state: 'revoked' })).body!.error.message,
      /no field "state" \(a key's state is changed with POST \/api\/keys\/:id\/state\)/,
    )
    assert.deepEqual((await call('GET', `/keys/${key.id}`)).body!.key, read, 'nothing changed')
    assert.equal(store.isAllowed(secret, 'billing', 'read'), true, 'still usable: nothing was revoked')
    // The library's option name, sent to the API, is named for what the API calls it.
    const option = await call('POST', `/keys/${key.id}/state`, { state: 'revoked', expectedUpdatedAt: read.updatedAt })
    assert.equal(option.status, 400)
    assert.match(option.body!.error.message, /no field "expectedUpdatedAt" \(the API calls it updatedAt/)
    // A misspelt filter would have listed everything.
    for (const path of ['/keys?userid=svc-fields', `/audit?keyID=${key.id}`, '/users?x=1']) {
      const r = await call('GET', path)
      assert.equal(r.status, 400, path)
      assert.match(r.body!.error.message, /^query: no parameter /, path)
    }
    assert.equal((await call('GET', '/keys?userId=svc-fields&state=active')).body!.keys.length, 1)
    assert.equal((await call('GET', `/audit?keyId=${key.id}&limit=5`)).status, 200)
  })

  test('a misspelt field or parameter is told the nearest name, not the first near one', async () => {
    // `kinds` is one edit from kind, two from lines (listed first); `actin` one from action, two from actor.
    const kinds = await call('POST', '/rules/validate', { lines: [], kinds: 'rights' })
    assert.equal(kinds.status, 400)
    assert.match(kinds.body!.error.message, /no field "kinds" \(did you mean kind\?\)/)
    const actin = await call('GET', '/audit?actin=setState')
    assert.equal(actin.status, 400)
    assert.match(actin.body!.error.message, /no parameter "actin" \(did you mean action\?\)/)
  })

  test("rules/validate: kind is 'key' (the default) or 'rights'; another is a 400, not read as a key's rules", async () => {
    const lines = ['session:*', 'ip=10.0.0.0/8']
    for (const kind of [undefined, null, 'key']) {
      const r = await call('POST', '/rules/validate', { lines, kind })
      assert.equal(r.status, 200, String(kind))
      assert.deepEqual(r.body, { ok: true, rules: lines, errors: [] }, String(kind))
    }
    const rights = await call('POST', '/rules/validate', { lines, kind: 'rights' })
    assert.deepEqual(
      rights.body!.errors.map((e: { line: number }) => e.line),
      [2],
    )
    // A misspelt 'rights' would have told an admin UI that an ip= rule is a valid right.
    for (const kind of ['right', 'Rights', 'keys', 5, true]) {
      const r = await call('POST', '/rules/validate', { lines, kind })
      assert.equal(r.status, 400, String(kind))
      assert.deepEqual(r.body, { error: { code: 'INVALID_ARGUMENT', message: 'kind must be "key" or "rights"' } })
    }
  })

  test('a query parameter given twice is a 400: a route would read the first only', async () => {
    store.putUser({ id: 'svc-twice', rights: ['*:*'] })
    newKey('svc-twice')
    for (const path of ['/keys?userId=svc-twice&state=active&state=revoked', '/audit?userId=svc-twice&userId=other']) {
      const r = await call('GET', path)
      assert.equal(r.status, 400, path)
      assert.equal(r.body!.error.code, 'INVALID_ARGUMENT')
      assert.match(r.body!.error.message, /^query: parameter "(state|userId)" given more than once$/, path)
    }
    assert.equal((await call('GET', '/keys?userId=svc-twice&state=active')).body!.keys.length, 1)
  })

  test('PUT of a user or role takes its id or name back as read, never another', async () => {
    store.putRole({ name: 'ops-put', rights: ['billing:*'] })
    store.putUser({ id: 'svc-put', rights: ['billing:read'], roles: [] })
    // The docs' round trip: GET the user, change a field, PUT it all back.
    const user = (await call('GET', '/users/svc-put')).body!.user
    const back = await call('PUT', '/users/svc-put', { ...user, roles: ['ops-put'] })
    assert.equal(back.status, 200, JSON.stringify(back.body))
    assert.deepEqual(store.getUser('svc-put')!.roles, ['ops-put'])
    const renamed = await call('PUT', '/users/svc-put', { ...user, id: 'svc-other' })
    assert.equal(renamed.status, 400)
    assert.match(renamed.body!.error.message, /the body's id "svc-other" is not the path's "svc-put": a user's id cannot be changed/)
    assert.equal(store.getUser('svc-other'), null)
    const role = (await call('GET', '/roles/ops-put')).body!.role
    assert.equal((await call('PUT', '/roles/ops-put', role)).status, 200)
    assert.equal((await call('PUT', '/roles/ops-put', { ...role, name: 'other' })).status, 400)
    assert.deepEqual(store.getRole('ops-put'), { name: 'ops-put', rights: ['billing:*'] })
  })

  test('a row of the users or roles list sent back is refused with what to send instead, and changes nothing', async () => {
    store.putRole({ name: 'ops-row', rights: ['billing:*'] })
    store.putUser({ id: 'svc-row', rights: ['billing:read'], roles: ['ops-row'] })
    const userRow = (await call('GET', '/users')).body!.users.find((u: { id: string }) => u.id === 'svc-row')
    const user = await call('PUT', '/users/svc-row', { ...userRow, status: 'suspended' })
    assert.equal(user.status, 400)
    assert.match(user.body!.error.message, /no field "keys" \(the key counts of GET \/api\/users are not part of the user: send it without them\)/)
    const roleRow = (await call('GET', '/roles')).body!.roles.find((r: { name: string }) => r.name === 'ops-row')
    // A role's users are not given to it here: that would be ignored, and the users left without the role.
    const role = await call('PUT', '/roles/ops-row', { ...roleRow, users: [] })
    assert.equal(role.status, 400)
    assert.match(
      role.body!.error.message,
      /no field "users" \(the users of GET \/api\/roles are not part of the role: a user's roles are changed with PUT \/api\/users\/:id\)/,
    )
    assert.deepEqual(store.getUser('svc-row'), { id: 'svc-row', status: 'active', rights: ['billing:read'], roles: ['ops-row'] })
    const { keys: _counts, ...withoutCounts } = userRow
    assert.equal((await call('PUT', '/users/svc-row', withoutCounts)).status, 200)
    const { users: _users, ...withoutUsers } = roleRow
    assert.equal((await call('PUT', '/roles/ops-row', withoutUsers)).status, 200)
  })

  test('an unknown path is 404 whatever its body: the route is matched before the body is read', async () => {
    const res = await fetch(`${server.url}/api/nothing/here`, { method: 'POST', headers, body: '{not json' })
    assert.equal(res.status, 404)
    assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'NOT_FOUND')
    const known = await fetch(`${server.url}/api/keys`, { method: 'POST', headers, body: '{not json' })
    assert.equal(known.status, 400)
    await known.arrayBuffer()
  })

  test('login: a field besides the token is a 400, not counted as a failed login', async () => {
    const res = await fetch(`${server.url}/api/login`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ token: TOKEN, remember: true }),
    })
    assert.equal(res.status, 400)
    assert.match(((await res.json()) as { error: { message: string } }).error.message, /takes only the body field token and no query parameter/)
    assert.ok(await loginHeaders(server, TOKEN), 'a login right after is not throttled')
  })

  test('login: the token sent as a field or parameter name is not sent back', async () => {
    for (const [query, body] of [
      ['', { [TOKEN]: true }],
      ['', { token: 'guess', [TOKEN]: 1 }],
      [`?${TOKEN}`, { token: 'guess' }],
      [`?token=${TOKEN}`, { token: 'guess' }],
    ] as const) {
      const res = await fetch(`${server.url}/api/login${query}`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) })
      assert.equal(res.status, 400)
      const text = await res.text()
      assert.ok(!text.includes(TOKEN.slice(0, 12)), `the answer holds the token: ${text}`)
      assert.match(text, /takes only the body field token/)
    }
  })

  test('expiresInSeconds is the time left: the idle timeout, or less near the end of the session’s lifetime', async () => {
    const short = createAdminServer({ store, token: TOKEN, log: () => {}, sessionIdleMs: 60_000, sessionMaxMs: 5_000 })
    await short.listen()
    try {
      const login = await loginHeaders(short, TOKEN)
      const res = await fetch(`${short.url}/api/session`, { headers: login })
      const info = (await res.json()) as { expiresInSeconds: number }
      assert.ok(info.expiresInSeconds <= 5 && info.expiresInSeconds >= 1, `${info.expiresInSeconds}: the lifetime's 5 s, not the idle timeout's 60`)
    } finally {
      await short.close()
    }
    const info = (await (await fetch(`${server.url}/api/session`, { headers })).json()) as { expiresInSeconds: number }
    assert.equal(info.expiresInSeconds, 1800, 'the default idle timeout, well within the 12-hour lifetime')
  })

  test('a session ends after its idle timeout of elapsed time, even when the wall clock is stepped back meanwhile', async (t) => {
    const short = createAdminServer({ store, token: TOKEN, log: () => {}, sessionIdleMs: 1_000 })
    await short.listen()
    try {
      const login = await loginHeaders(short, TOKEN)
      // The wall clock stepped back an hour (an NTP step, a VM restored): the session
      // must not live an hour longer for it.
      t.mock.timers.enable({ apis: ['Date'], now: Date.now() - 3_600_000 })
      await new Promise((resolve) => setTimeout(resolve, 1_300))
      const info = (await (await fetch(`${short.url}/api/session`, { headers: login })).json()) as { authenticated: boolean }
      assert.equal(info.authenticated, false, 'the session outlived its idle timeout')
    } finally {
      t.mock.timers.reset()
      await short.close()
    }
  })

  test('a session ends after its idle timeout when the host slept meanwhile (the wall clock moved on, the monotonic one stood still)', async (t) => {
    const short = createAdminServer({ store, token: TOKEN, log: () => {}, sessionIdleMs: 60_000 })
    await short.listen()
    try {
      const login = await loginHeaders(short, TOKEN)
      const before = (await (await fetch(`${short.url}/api/session`, { headers: login })).json()) as { authenticated: boolean }
      assert.equal(before.authenticated, true)
      // Suspended for an hour (a laptop closed overnight): CLOCK_MONOTONIC does not count it.
      t.mock.timers.enable({ apis: ['Date'], now: Date.now() + 3_600_000 })
      const info = (await (await fetch(`${short.url}/api/session`, { headers: login })).json()) as { authenticated: boolean }
      assert.equal(info.authenticated, false, 'the session outlived its idle timeout by the time the host slept')
    } finally {
      t.mock.timers.reset()
      await short.close()
    }
  })

  test('a session cookie is looked up by its digest, never by its text: a Map’s comparisons would time how much of a live id a guess shares', async (t) => {
    const own = await loginHeaders(server, TOKEN)
    const sid = own.Cookie!.slice(own.Cookie!.indexOf('=') + 1)
    // A guess sharing all but the last character of a live id, and the id itself.
    const guess = sid.slice(0, -1) + (sid.endsWith('A') ? 'B' : 'A')
    const keys: unknown[] = []
    for (const method of ['get', 'has', 'delete'] as const) {
      const original = Map.prototype[method]
      t.mock.method(Map.prototype, method, function (this: Map<unknown, unknown>, key: unknown) {
        keys.push(key)
        return original.call(this, key)
      })
    }
    const statusOf = async (cookie: string) =>
      ((await (await fetch(`${server.url}/api/session`, { headers: { Cookie: cookie } })).json()) as { authenticated: boolean }).authenticated
    const [guessed, right] = [await statusOf(`keygate_sid=${guess}`), await statusOf(own.Cookie!)]
    t.mock.restoreAll()
    assert.deepEqual([guessed, right], [false, true])
    assert.ok(keys.length > 0, 'no Map was asked anything')
    for (const text of [sid, guess]) assert.ok(!keys.includes(text), 'a Map was searched with a session cookie’s text')
  })

  test('the CSRF token the page reads from JavaScript is not the HttpOnly session id, nor shares its text, and differs per login', async () => {
    const [first, second] = [await loginHeaders(server, TOKEN), await loginHeaders(server, TOKEN)]
    for (const own of [first, second]) {
      const sid = own.Cookie!.slice(own.Cookie!.indexOf('=') + 1)
      const csrf = own['X-CSRF-Token']!
      assert.match(csrf, /^[A-Za-z0-9_-]{43}$/)
      assert.ok(!sid.includes(csrf.slice(0, 16)) && !csrf.includes(sid.slice(0, 16)), 'a script reading the CSRF token could rebuild the session cookie')
    }
    assert.notEqual(first['X-CSRF-Token'], second['X-CSRF-Token'])
  })

  test('by default a session ends 12 hours after login however busy it is, and its cookie says so (Max-Age=43200)', async (t) => {
    const defaults = createAdminServer({ store, token: TOKEN, log: () => {} })
    await defaults.listen()
    try {
      const login = await fetch(`${defaults.url}/api/login`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ token: TOKEN }) })
      assert.equal(login.status, 200)
      await login.arrayBuffer()
      const setCookie = login.headers.getSetCookie().find((c) => c.startsWith('keygate_sid=')) ?? 'no session cookie'
      assert.match(setCookie, /; Max-Age=43200(;|$)/)
      const cookie = setCookie.split(';')[0]!
      const loggedInAt = Date.now()
      t.mock.timers.enable({ apis: ['Date'], now: loggedInAt })
      const authenticatedAfter = async (minutes: number) => {
        t.mock.timers.setTime(loggedInAt + minutes * 60_000)
        const res = await fetch(`${defaults.url}/api/session`, { headers: { cookie } })
        return ((await res.json()) as { authenticated: boolean }).authenticated
      }
      // A request every 25 minutes keeps the session from idling out (30 minutes) ...
      for (let minutes = 25; minutes < 12 * 60; minutes += 25) assert.equal(await authenticatedAfter(minutes), true, `${minutes} minutes after login`)
      assert.equal(await authenticatedAfter(12 * 60 - 1), true, 'a minute before the 12 hours')
      // ... but not past its lifetime.
      assert.equal(await authenticatedAfter(12 * 60 + 1), false, 'the session outlived its 12 hours')
    } finally {
      t.mock.timers.reset()
      await defaults.close()
    }
  })

  test('ended sessions are let go: by the sweep every minute (which keeps live ones), when their cookie comes back, at the next login', async (t) => {
    // The sweeper is a setInterval made with the server: mocked first.
    const start = Date.now()
    t.mock.timers.enable({ apis: ['setInterval', 'Date'], now: start })
    const short = createAdminServer({ store, token: TOKEN, log: () => {}, sessionIdleMs: 90_000 })
    await short.listen()
    const authenticated = async (cookie: string) =>
      ((await (await fetch(`${short.url}/api/session`, { headers: { Cookie: cookie } })).json()) as { authenticated: boolean }).authenticated
    try {
      const [used, idle] = [(await loginHeaders(short, TOKEN)).Cookie!, (await loginHeaders(short, TOKEN)).Cookie!]
      t.mock.timers.tick(60_000) // a sweep: both seen 60 s ago, within the 90 s idle timeout
      assert.equal(short.sessionCount, 2, 'the sweep ended live sessions')
      assert.equal(await authenticated(used), true)
      t.mock.timers.tick(60_000) // a sweep: `idle` unseen for 120 s
      assert.equal(short.sessionCount, 1, 'the sweep kept an ended session, or ended the live one')
      assert.equal(await authenticated(used), true)

      // Between sweeps: an ended session's cookie coming back lets it go at once.
      t.mock.timers.setTime(start + 120_000 + 91_000)
      assert.equal(await authenticated(used), false)
      assert.equal(short.sessionCount, 0, 'an ended session was kept after its cookie was refused')
      // A login lets go of those that have ended meanwhile, before counting them against the 1,000.
      await loginHeaders(short, TOKEN)
      t.mock.timers.setTime(start + 120_000 + 182_000)
      await loginHeaders(short, TOKEN)
      assert.equal(short.sessionCount, 1, 'a login kept the ended sessions')
      assert.equal(await authenticated(idle), false)
    } finally {
      t.mock.timers.reset()
      await short.close()
    }
  })

  test("the server's cookies are the whole site's (Path=/); a session cookie never outlives its session; logout clears it", async () => {
    const short = createAdminServer({ store, token: TOKEN, log: () => {}, sessionMaxMs: 1_500 })
    await short.listen()
    try {
      const login = await fetch(`${short.url}/api/login`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ token: TOKEN }) })
      const { csrfToken } = (await login.json()) as { csrfToken: string }
      const [sid, device] = login.headers.getSetCookie()
      // 1 s, not 2: a browser holding the cookie past the session would send a dead id.
      assert.match(sid ?? '', /^keygate_sid=[A-Za-z0-9_-]{43}; HttpOnly; SameSite=Strict; Path=\/; Max-Age=1$/)
      assert.match(device ?? '', /; Path=\/; Max-Age=2592000$/)
      const cookie = sid!.split(';')[0]!
      const out = await fetch(`${short.url}/api/logout`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Cookie: cookie, 'X-CSRF-Token': csrfToken },
        body: '{}',
      })
      assert.equal(out.status, 200)
      assert.deepEqual(out.headers.getSetCookie(), ['keygate_sid=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0'])
    } finally {
      await short.close()
    }
  })

  test('session and logout take no query and no body fields either (400), and a refused logout leaves the session open', async () => {
    const own = await loginHeaders(server, TOKEN)
    const session = await fetch(`${server.url}/api/session?x=1`, { headers: own })
    assert.equal(session.status, 400)
    assert.match(((await session.json()) as { error: { message: string } }).error.message, /^query: no parameter "x"; it takes no parameters/)
    const refused = await fetch(`${server.url}/api/logout`, { method: 'POST', headers: own, body: JSON.stringify({ everywhere: true }) })
    assert.equal(refused.status, 400)
    await refused.arrayBuffer()
    const still = (await (await fetch(`${server.url}/api/session`, { headers: own })).json()) as { authenticated: boolean }
    assert.equal(still.authenticated, true, 'still logged in')
    const out = await fetch(`${server.url}/api/logout`, { method: 'POST', headers: own, body: '{}' })
    assert.equal(out.status, 200)
    await out.arrayBuffer()
  })

  test('a filter given empty filters (as the library does), never widening a listing to everything', async () => {
    store.putUser({ id: 'svc-empty', rights: ['*:*'] })
    newKey('svc-empty')
    assert.ok((await call('GET', '/keys')).body!.keys.length > 0)
    // `curl "$KG/api/keys?userId=$USER"` with USER unset: no user has the empty id.
    assert.deepEqual((await call('GET', '/keys?userId=')).body!.keys, [])
    const state = await call('GET', '/keys?state=')
    assert.equal(state.status, 400)
    assert.equal(state.body!.error.code, 'INVALID_STATE')
    assert.deepEqual((await call('GET', '/audit?keyId=')).body!.entries, [])
    assert.deepEqual((await call('GET', '/audit?userId=')).body!.entries, [])
    for (const path of ['/audit?since=', '/audit?until=', '/audit?action=', '/audit?beforeSeq=']) assert.equal((await call('GET', path)).status, 400, path)
  })

  test('GET /api/keys pages with limit and after as listKeysPage does; the whole list says next: null; a bad limit or cursor is 400', async () => {
    store.putUser({ id: 'svc-pages', rights: ['*:*'] })
    for (let i = 0; i < 5; i++) newKey('svc-pages')
    const whole = await call('GET', '/keys?userId=svc-pages')
    assert.equal(whole.body!.next, null)
    const ids = (whole.body!.keys as { id: string }[]).map((k) => k.id)
    assert.equal(ids.length, 5)
    const seen: string[] = []
    let path = '/keys?userId=svc-pages&limit=2'
    const sizes: number[] = []
    for (;;) {
      const page = await call('GET', path)
      assert.equal(page.status, 200, JSON.stringify(page.body))
      assert.equal(typeof page.body!.now, 'string')
      seen.push(...(page.body!.keys as { id: string }[]).map((k) => k.id))
      sizes.push(page.body!.keys.length)
      if (page.body!.next === null) break
      // The cursor goes back as it came, through the query string.
      path = `/keys?userId=svc-pages&limit=2&after=${encodeURIComponent(page.body!.next)}`
    }
    assert.deepEqual(seen, ids)
    assert.deepEqual(sizes, [2, 2, 1])
    // `after` alone: the default page (100) after the cursor.
    const first = await call('GET', '/keys?userId=svc-pages&limit=1')
    assert.deepEqual(
      (await call('GET', `/keys?userId=svc-pages&after=${first.body!.next}`)).body!.keys.map((k: { id: string }) => k.id),
      ids.slice(1),
    )
    for (const bad of ['limit=', 'limit=0', 'limit=1001', 'limit=1e2', 'limit=%201', 'limit=2.0', 'limit=-1', 'after=', 'after=key_x', `after=${first.body!.next}x`]) {
      const r = await call('GET', `/keys?${bad}`)
      assert.equal(r.status, 400, bad)
      assert.equal(r.body!.error.code, 'INVALID_ARGUMENT', bad)
    }
    assert.equal((await call('GET', '/keys?cursor=x')).status, 400, 'a misspelt parameter is refused, not ignored')
  })

  test('GET /api/keys?search= finds in id, description and hint in any letter case, whole or paged with the other filters; a bad one is 400 unquoted', async () => {
    store.putUser({ id: 'svc-search', rights: ['*:*'] })
    const made = ['Ledger SYNC', 'ledger backup', 'ΟΔΟΣ ledger', 'unrelated'].map((description) =>
      store.createKey({ userId: 'svc-search', description, expiresAt: new Date(Date.now() + 30 * DAY) }),
    )
    store.setState(made[1]!.key.id, 'suspended')
    const ids = (path: string) => call('GET', path).then((r) => (r.body!.keys as { id: string }[]).map((k) => k.id))
    const ledger = made
      .slice(0, 3)
      .map((m) => m.key.id)
      .reverse()
    assert.deepEqual(await ids('/keys?userId=svc-search&search=LEDGER'), ledger)
    assert.deepEqual(await ids(`/keys?userId=svc-search&search=${encodeURIComponent('οδος')}`), [made[2]!.key.id])
    assert.deepEqual(await ids('/keys?userId=svc-search&search=ledger&state=suspended'), [made[1]!.key.id])
    assert.deepEqual(await ids(`/keys?search=${made[3]!.key.id.toLowerCase()}`), [made[3]!.key.id])
    assert.ok((await ids(`/keys?userId=svc-search&search=${made[3]!.key.hint.toLowerCase()}`)).includes(made[3]!.key.id))
    assert.equal((await ids('/keys?userId=svc-search&search=')).length, 4, 'an empty search keeps every key')
    // Paged: the cursor goes back with the same search.
    const first = await call('GET', '/keys?userId=svc-search&search=ledger&limit=2')
    assert.deepEqual(
      first.body!.keys.map((k: { id: string }) => k.id),
      ledger.slice(0, 2),
    )
    assert.deepEqual(await ids(`/keys?userId=svc-search&search=ledger&limit=2&after=${first.body!.next}`), ledger.slice(2))
    const secret = made[0]!.secret
    for (const search of [encodeURIComponent(`${secret}${'x'.repeat(1024)}`), '%ED%A0%80'.repeat(1025)]) {
      for (const paged of ['', '&limit=10']) {
        const r = await call('GET', `/keys?search=${search}${paged}`)
        assert.equal(r.status, 400)
        assert.equal(r.body!.error.code, 'INVALID_ARGUMENT')
        assert.ok(!JSON.stringify(r.body).includes(secret.slice(3, 20)) && !JSON.stringify(r.body).includes('xxxx'), JSON.stringify(r.body))
      }
    }
  })

  test('paging the trail does not verify it whole for every page; a new entry, or /audit/verify, does', async () => {
    const verify = store.verifyAudit.bind(store)
    let passes = 0
    store.verifyAudit = () => {
      passes++
      return verify()
    }
    try {
      store.putUser({ id: 'svc-verify' })
      const first = await call('GET', '/audit?limit=1')
      assert.equal(first.body!.verification.ok, true)
      const seq = (first.body!.entries as { seq: number }[])[0]!.seq
      for (let page = 0; page < 3; page++) {
        const older = await call('GET', `/audit?limit=1&beforeSeq=${seq - page}`)
        assert.deepEqual(older.body!.verification, first.body!.verification)
      }
      assert.equal(passes, 1, 'pages of an unchanged trail reuse its verification')
      store.putUser({ id: 'svc-verify', status: 'suspended' })
      assert.equal((await call('GET', '/audit?limit=1')).body!.verification.entries, first.body!.verification.entries + 1)
      assert.equal(passes, 2, 'a new entry is verified')
      assert.equal((await call('GET', '/audit/verify')).status, 200)
      assert.equal(passes, 3, '/audit/verify verifies afresh')
    } finally {
      delete (store as { verifyAudit?: unknown }).verifyAudit
    }
  })

  test('beforeSeq pages the trail by entry number; anything but digits is 400', async () => {
    for (const id of ['svc-page-1', 'svc-page-2', 'svc-page-3', 'svc-page-4']) store.putUser({ id })
    const first = (await call('GET', '/audit?limit=2')).body!.entries as { seq: number }[]
    assert.equal(first.length, 2)
    const next = (await call('GET', `/audit?limit=2&beforeSeq=${first[1]!.seq}`)).body!.entries as { seq: number }[]
    assert.deepEqual(
      next.map((e) => e.seq),
      [first[1]!.seq - 1, first[1]!.seq - 2],
    )
    for (const bad of ['-1', '1e3', ' 7', '0x10', '1.5', '99999999999999999']) {
      const answer = await call('GET', `/audit?beforeSeq=${encodeURIComponent(bad)}`)
      assert.equal(answer.status, 400, bad)
      assert.equal(answer.body!.error.code, 'INVALID_ARGUMENT', bad)
    }
    // Digits past 2^53 - 1 are a whole number too: refused for their size, as the message says.
    const big = await call('GET', '/audit?beforeSeq=99999999999999999')
    assert.equal(big.status, 400)
    assert.match(big.body!.error.message, /beforeSeq must be a whole number from 0 to 9007199254740991/)
  })

  test('GET /api/audit takes limit as GET /api/keys does: 1 to 1000, digits only; anything else is 400, never the default', async () => {
    for (const id of ['svc-limit-1', 'svc-limit-2', 'svc-limit-3']) store.putUser({ id })
    assert.equal(((await call('GET', '/audit?limit=2')).body!.entries as unknown[]).length, 2)
    assert.ok(((await call('GET', '/audit')).body!.entries as unknown[]).length >= 3, 'no limit: the default page')
    assert.equal((await call('GET', '/audit?limit=1000')).status, 200)
    for (const bad of ['', 'bad', '0', '-1', '1001', '5000', '1e2', ' 7', '2.0']) {
      const answer = await call('GET', `/audit?limit=${encodeURIComponent(bad)}`)
      assert.equal(answer.status, 400, bad)
      assert.equal(answer.body!.error.code, 'INVALID_ARGUMENT', bad)
      assert.match(answer.body!.error.message, /limit must be a whole number from 1 to 1000/, bad)
    }
  })

  test('terminal controls a JSON.stringify leaves raw (U+007F-U+009F, bidi controls) are sent as \\u escapes: curl shows them, a parser reads the exact text', async () => {
    store.putUser({ id: 'svc-controls', rights: ['*:*'] })
    // U+009B is CSI to a terminal that takes 8-bit controls: "\u009b2J" clears the screen of whoever lists the keys.
    const description = 'clear\u009b2J osc\u009d52;c;aGk=\u009c del\u007f bidi\u202etxt.exe\u202c \u2067x\u2069 \u061c\u200e\u200f esc\u001b[2J'
    const { key } = store.createKey({ userId: 'svc-controls', description, expiresAt: new Date(Date.now() + DAY) }, { actor: 'admin' })
    for (const path of ['/keys?userId=svc-controls', `/keys/${key.id}`, `/audit?keyId=${key.id}`]) {
      const res = await fetch(`${server.url}/api${path}`, { headers })
      const raw = await res.text()
      assert.equal(res.status, 200, raw)
      assert.doesNotMatch(
        raw,
        /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/,
        `${path}: a raw control in ${JSON.stringify(raw.slice(0, 300))}`,
      )
      assert.ok(JSON.stringify(JSON.parse(raw)).includes(JSON.stringify(description).slice(1, -1)), `${path}: the description parses back exactly`)
    }
    assert.equal((await call('GET', `/keys/${key.id}`)).body!.key.description, description)
  })
})

describe('admin server close()', () => {
  /** A raw connection to the server on `port` and what it has received until it closed. */
  async function connect(port: number) {
    const socket = net.connect(port, '127.0.0.1')
    await new Promise((resolve) => socket.once('connect', resolve))
    let received = ''
    socket.on('data', (data) => {
      received += data
    })
    const closed = new Promise<string>((resolve) => {
      socket.on('error', () => {})
      socket.on('close', () => resolve(received))
    })
    return { socket, closed }
  }

  /** A request under way on `port` that never finishes arriving; what its connection received until it closed. */
  async function unfinishedRequest(port: number) {
    const { socket, closed } = await connect(port)
    socket.write('POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"tok')
    await new Promise((resolve) => setTimeout(resolve, 50))
    // In an object: an async function returning the Promise itself would wait for it.
    return { closed }
  }

  test('a change whose body is still arriving as close() begins is answered and made; close() then ends its connection', async () => {
    const store = KeyStore.inMemory()
    const server = createAdminServer({ store, token: TOKEN, log: () => {} })
    await server.listen()
    try {
      const h = await loginHeaders(server, TOKEN)
      const body = JSON.stringify({ id: 'svc-late', rights: ['session:*'] })
      const { socket, closed } = await connect(server.port!)
      socket.write(
        `POST /api/users HTTP/1.1\r\nHost: x\r\nCookie: ${h.Cookie}\r\nX-CSRF-Token: ${h['X-CSRF-Token']}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 5)}`,
      )
      await new Promise((resolve) => setTimeout(resolve, 50))
      const closing = server.close()
      await new Promise((resolve) => setTimeout(resolve, 50))
      socket.write(body.slice(5))
      const answer = await closed
      assert.match(answer, /^HTTP\/1\.1 201 /, 'answered, not cut')
      await closing
      assert.notEqual(store.getUser('svc-late'), null)
      // Closed: no new connection is taken.
      await assert.rejects(fetch(`http://127.0.0.1:${server.port ?? 1}/api/session`))
    } finally {
      await server.close()
      store.close()
    }
  })

  test('a request that never finishes arriving does not hold close() for ever: its connection is cut', async () => {
    const store = KeyStore.inMemory()
    const server = createAdminServer({ store, token: TOKEN, log: () => {} })
    await server.listen()
    const { closed } = await unfinishedRequest(server.port!)
    await server.close()
    assert.equal(await closed, '', 'cut without an answer')
    store.close()
  })

  test('a second close() while the first is draining resolves only once the server is closed, as the first does', async () => {
    const store = KeyStore.inMemory()
    const server = createAdminServer({ store, token: TOKEN, log: () => {} })
    await server.listen()
    const { closed } = await unfinishedRequest(server.port!)
    const first = server.close()
    let firstDone = false
    void first.then(() => {
      firstDone = true
    })
    await new Promise((resolve) => setTimeout(resolve, 50))
    // A caller closing the store after the second close() (serve's close, a test's teardown)
    // must not do so while a request may still be answered from it.
    await server.close()
    assert.equal(firstDone, true, 'the second close() resolved while the first was still draining a request under way')
    assert.equal(await closed, '', 'cut without an answer')
    store.close()
  })

  test("serve()'s close() called again while the first drains resolves once the store is closed, not before", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'keygate-serve-close-'))
    try {
      const s = await serve({ db: path.join(dir, 'keygate.db'), port: 0, token: TOKEN, handleSignals: false, print: () => {} })
      await unfinishedRequest(s.port)
      const first = s.close()
      await s.close()
      assert.throws(() => s.store.listKeys(), { code: 'STORE_IO', message: /the store is closed/ }, 'the second close() resolved with the store still open')
      await first
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
