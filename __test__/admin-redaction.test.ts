// The admin API never sends back (or logs) a secret pasted where an id, a name, a state or a
// path belongs: every user value in its messages is quoted and redacted. Real server, real
// secret of the store.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'

import { KeyStore } from '../index.js'
import { createAdminServer } from '../lib/admin/server.js'
import type { AdminServer } from '../lib/admin/server.js'

const TOKEN = 'admin-token-for-this-test-1234'

describe('admin API: a secret in a request is never echoed', () => {
  let store: KeyStore
  let server: AdminServer
  let secret: string
  let auth: Record<string, string>
  const logged: string[] = []

  before(async () => {
    store = KeyStore.inMemory()
    store.putUser({ id: 'alice', rights: ['*:*'] })
    secret = store.createKey({ userId: 'alice', description: 'd', expiresAt: new Date(Date.now() + 86_400_000) }).secret
    server = createAdminServer({ store, token: TOKEN, log: (line) => logged.push(line) })
    await server.listen()
    const login = await fetch(`${server.url}/api/login`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ token: TOKEN }) })
    assert.equal(login.status, 200)
    const csrf = ((await login.json()) as { csrfToken: string }).csrfToken
    auth = { Cookie: (login.headers.get('set-cookie') ?? '').split(';')[0]!, 'X-CSRF-Token': csrf }
  })
  after(async () => {
    await server.close()
    store.close()
  })

  test('ids, names, states, statuses, actions and paths: each error quotes "kg_<redacted>"', async () => {
    const body = secret.slice(3)
    const e = encodeURIComponent(secret)
    const later = new Date(Date.now() + 86_400_000).toISOString()
    const cases: [string, string, unknown, number, string][] = [
      ['GET', `/api/users/${e}`, undefined, 404, 'UNKNOWN_USER'],
      ['PUT', `/api/users/${e}`, { rights: [] }, 404, 'UNKNOWN_USER'],
      ['DELETE', `/api/users/${e}`, undefined, 404, 'UNKNOWN_USER'],
      ['GET', `/api/roles/${e}`, undefined, 404, 'UNKNOWN_ROLE'],
      ['PUT', `/api/roles/${e}`, { rights: [] }, 404, 'UNKNOWN_ROLE'],
      ['DELETE', `/api/roles/${e}`, undefined, 404, 'UNKNOWN_ROLE'],
      ['GET', `/api/keys?state=${e}`, undefined, 400, 'INVALID_STATE'],
      ['POST', '/api/keys', { userId: secret, description: 'x', expiresAt: later }, 404, 'UNKNOWN_USER'],
      ['GET', `/api/keys/${e}`, undefined, 404, 'UNKNOWN_KEY'],
      ['DELETE', `/api/keys/${e}`, undefined, 404, 'UNKNOWN_KEY'],
      ['GET', `/api/audit?action=${e}`, undefined, 400, 'INVALID_ARGUMENT'],
      ['GET', `/api/${e}`, undefined, 404, 'NOT_FOUND'],
      ['POST', '/api/try', { service: 's', api: 'a', keyId: secret }, 404, 'UNKNOWN_KEY'],
    ]
    for (const [method, path, payload, status, code] of cases) {
      const shown = `${method} ${path.replace(e, '<secret>')}`
      const headers: Record<string, string> = { ...auth }
      if (payload !== undefined) headers['Content-Type'] = 'application/json'
      const res = await fetch(`${server.url}${path}`, { method, headers, body: payload === undefined ? undefined : JSON.stringify(payload) })
      const text = await res.text()
      assert.equal(res.status, status, `${shown}: ${text}`)
      const error = (JSON.parse(text) as { error: { code: string; message: string } }).error
      assert.equal(error.code, code, shown)
      assert.ok(!text.includes(body), `${shown} echoed the secret: ${text}`)
      assert.match(error.message, /kg_<redacted>"/, shown)
    }
  })

  test('a secret of the store cut into short pieces is withheld from every error that would quote it', async () => {
    const pieces = [secret.slice(0, 20), secret.slice(20, 38), secret.slice(38)]
    for (const cut of [':', '\n', '\t', '\u00a0']) {
      const mangled = encodeURIComponent(`${secret.slice(0, 20)}${cut}${secret.slice(20, 38)}${cut}${secret.slice(38)}`)
      const later = new Date(Date.now() + 86_400_000).toISOString()
      const cases: [string, string, unknown][] = [
        ['GET', `/api/users/${mangled}`, undefined],
        ['DELETE', `/api/roles/${mangled}`, undefined],
        ['GET', `/api/keys/${mangled}`, undefined],
        ['POST', '/api/keys', { userId: decodeURIComponent(mangled), description: 'x', expiresAt: later }],
        ['POST', '/api/try', { service: 's', api: 'a', keyId: decodeURIComponent(mangled) }],
      ]
      for (const [method, path, payload] of cases) {
        const headers: Record<string, string> = { ...auth }
        if (payload !== undefined) headers['Content-Type'] = 'application/json'
        const res = await fetch(`${server.url}${path}`, { method, headers, body: payload === undefined ? undefined : JSON.stringify(payload) })
        const text = await res.text()
        assert.ok(res.status >= 400, `${method} ${path}: ${res.status}`)
        const { message } = (JSON.parse(text) as { error: { message: string } }).error
        for (const piece of pieces) assert.ok(!message.includes(piece), `${method} ${JSON.stringify(cut)}: ${message}`)
        assert.match(message, /withheld/, `${method} ${path}`)
      }
    }
  })

  test('a path hiding a secret behind percent escapes and a bare % is not quoted past its second segment', async () => {
    const body = secret.slice(3)
    // A bare % before two of the secret's own hex digits, and an encoded ':' elsewhere.
    const at = [...body].findIndex((c, i) => i >= 30 && i < 40 && /[0-9a-fA-F]/.test(c) && /[0-9a-fA-F]/.test(body[i + 1] ?? ''))
    if (at < 0) return // no two hex digits there in this secret
    const path = `/api/${body.slice(0, 15)}%3A${body.slice(15, at)}%${body.slice(at)}`
    const res = await fetch(`${server.url}${path}`, { headers: auth })
    const { message } = ((await res.json()) as { error: { message: string } }).error
    assert.ok(res.status === 400 || res.status === 404, `${res.status}: ${message}`)
    // At most the segment's first 32 characters: the piece after the bare % (and so the whole secret) is not shown.
    assert.ok(!message.includes(body.slice(at, at + 8)), message)
  })

  test('a path segment is shown at most 16 characters long: a secret cut into pieces by escapes shows no more of itself', async () => {
    const body = secret.slice(3)
    const res = await fetch(`${server.url}/api/${body.slice(0, 20)}%3A${body.slice(20)}`, { headers: auth })
    const { message } = ((await res.json()) as { error: { message: string } }).error
    assert.equal(res.status, 404)
    assert.ok(message.includes(`/api/${body.slice(0, 16)}…`), message)
    assert.ok(!message.includes(body.slice(0, 17)), message)
  })

  test('the rule checker shows a pasted secret line redacted', async () => {
    const res = await fetch(`${server.url}/api/rules/validate`, {
      method: 'POST',
      headers: { ...auth, 'Content-Type': 'application/json' },
      body: JSON.stringify({ lines: ['svc:api', secret] }),
    })
    const text = await res.text()
    assert.equal(res.status, 200)
    assert.ok(!text.includes(secret.slice(3)), text)
    const check = JSON.parse(text) as { ok: boolean; errors: { line: number; rule: string }[] }
    assert.equal(check.ok, false)
    assert.deepEqual(
      check.errors.map((x) => [x.line, x.rule]),
      [[2, 'kg_<redacted>']],
    )
  })

  test('the rule checker never sends back a secret of the store pasted without its prefix or cut into pieces', async () => {
    const body = secret.slice(3)
    const pieces = [body.slice(0, 15), body.slice(15, 30), body.slice(30)]
    const lines = [
      `svc:${body}`, // valid as a rule: the store would refuse it, so must the checker
      `dav=GET ${body}`,
      `${body.slice(0, 20)}:${body.slice(20)}`, // a secret cut by a ':' reads as a valid rule
      `svc:${pieces.join(':')}`, // invalid: the message would quote it
      `${pieces.join('\n')}`,
      `${pieces.join(' ')}`,
    ]
    const res = await fetch(`${server.url}/api/rules/validate`, {
      method: 'POST',
      headers: { ...auth, 'Content-Type': 'application/json' },
      body: JSON.stringify({ lines: ['svc:api', ...lines] }),
    })
    const text = await res.text()
    assert.equal(res.status, 200)
    for (const piece of pieces) assert.ok(!text.includes(piece), `the answer holds a piece of the secret: ${text}`)
    const check = JSON.parse(text) as { ok: boolean; rules: string[]; errors: { line: number; rule: string; message: string }[] }
    assert.equal(check.ok, false)
    assert.deepEqual(check.rules, ['svc:api'])
    assert.deepEqual(
      check.errors.map((x) => x.line),
      lines.map((_, i) => i + 2),
    )
    for (const error of check.errors) assert.match(error.message, /secret of this store/)
  })

  test('the log line of a failing request names its path redacted', async () => {
    // A store that fails under the admin: every later call is a 5xx, whose log line names the path.
    const broken = KeyStore.inMemory()
    const own = createAdminServer({ store: broken, token: TOKEN, log: (line) => logged.push(line) })
    await own.listen()
    try {
      const login = await fetch(`${own.url}/api/login`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ token: TOKEN }) })
      const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0]!
      broken.close()
      logged.length = 0
      const res = await fetch(`${own.url}/api/users/${encodeURIComponent(secret)}`, { headers: { Cookie: cookie } })
      assert.ok(res.status >= 500, `status ${res.status}`)
      assert.ok(!(await res.text()).includes(secret.slice(3)))
      assert.ok(logged.length > 0, 'the failure was logged')
      for (const line of logged) {
        assert.ok(!line.includes(secret.slice(3)), `the log has the secret: ${line}`)
        // The path's first two segments, not the id the caller typed after them.
        assert.match(line, /"\/api\/users\/…"/)
      }
    } finally {
      await own.close()
    }
  })
})
