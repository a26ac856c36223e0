// User ids and role names that a URL cannot carry: `.` and `..` are path steps to every client
// (the page's fetch, the server's URL parsing, a user's own admin API), even percent-encoded, so
// /api/users/.. is /api/. The store refuses them, so the page never shows a user or role it
// could not open, edit or delete.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'

import { KeyStore, KeygateError } from '../index.js'
import { createAdminServer } from '../lib/admin/server.js'
import type { AdminServer } from '../lib/admin/server.js'

const TOKEN = 'admin-token-for-this-test-1234'

describe('names a URL cannot address', () => {
  let store: KeyStore
  let server: AdminServer
  let headers: Record<string, string>

  before(async () => {
    store = KeyStore.inMemory()
    server = createAdminServer({ store, token: TOKEN })
    await server.listen()
    const login = await fetch(`${server.url}/api/login`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ token: TOKEN }) })
    const csrf = ((await login.json()) as { csrfToken: string }).csrfToken
    headers = { Cookie: (login.headers.get('set-cookie') ?? '').split(';')[0]!, 'X-CSRF-Token': csrf, 'Content-Type': 'application/json' }
  })
  after(async () => {
    await server.close()
    store.close()
  })

  for (const name of ['.', '..']) {
    test(`a user or role named ${JSON.stringify(name)} is INVALID_ARGUMENT from the store and 400 from the admin API; nothing is created`, async () => {
      const refused = (error: unknown) => error instanceof KeygateError && error.code === 'INVALID_ARGUMENT' && /no URL could address it/.test(error.message)
      assert.throws(() => store.putUser({ id: name }), refused)
      assert.throws(() => store.putRole({ name, rights: [] }), refused)
      for (const [path, body] of [
        ['/api/users', { id: name }],
        ['/api/roles', { name }],
      ] as const) {
        const res = await fetch(`${server.url}${path}`, { method: 'POST', headers, body: JSON.stringify(body) })
        assert.equal(res.status, 400, path)
        const error = ((await res.json()) as { error: { code: string; message: string } }).error
        assert.equal(error.code, 'INVALID_ARGUMENT')
        assert.match(error.message, /no URL could address it/)
      }
      assert.equal(store.getUser(name), null)
      assert.equal(store.getRole(name), null)
      assert.equal(store.audit({}).length, 0, 'nothing audited')
    })
  }

  test('names that merely hold dots are still fine, and the admin API addresses them', async () => {
    for (const id of ['...', '.a', 'a..b', 'svc.prod']) {
      const res = await fetch(`${server.url}/api/users`, { method: 'POST', headers, body: JSON.stringify({ id }) })
      assert.equal(res.status, 201, id)
      assert.equal((await fetch(`${server.url}/api/users/${encodeURIComponent(id)}`, { headers })).status, 200, id)
    }
  })
})
