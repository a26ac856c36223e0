// The admin API answers a failure of the server side (an unreachable PostgreSQL, a defect in
// keygate) as a 5xx and logs it: a 4xx would tell the admin, and any client that retries on
// 5xx only, that the request was at fault.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, renameSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'

import { KeyStore, KeygateError } from '../index.js'
import type { ErrorCode } from '../index.js'
import { createAdminServer } from '../lib/admin/server.js'
import type { AdminServer } from '../lib/admin/server.js'
import { loginHeaders } from './support/admin.js'
import { PG_PORT, TcpProxy, createDatabase, openPg, pgOnly } from './support/postgres.js'

const TOKEN = 'admin-token-for-this-test-1234'

describe('admin API: failures of the store are 5xx, not the caller’s fault', () => {
  let store: KeyStore
  let server: AdminServer
  const logged: string[] = []
  let thrown: KeygateError | null = null

  before(async () => {
    store = KeyStore.inMemory()
    // What a store's call throws when its database is away, or when keygate has a defect.
    const putUser = store.putUser.bind(store)
    store.putUser = (...args: Parameters<KeyStore['putUser']>) => {
      if (thrown) throw thrown
      return putUser(...args)
    }
    server = createAdminServer({ store, token: TOKEN, log: (line) => logged.push(line) })
    await server.listen()
  })
  after(async () => {
    await server.close()
    store.close()
  })

  for (const [code, status] of [
    ['STORE_UNAVAILABLE', 503],
    ['INTERNAL', 500],
  ] as [ErrorCode, number][]) {
    test(`${code} is ${status} and logged`, async () => {
      thrown = new KeygateError(code, `${code.toLowerCase()} for this test`)
      logged.length = 0
      const res = await fetch(`${server.url}/api/users`, { method: 'POST', headers: await loginHeaders(server, TOKEN), body: JSON.stringify({ id: 'bob' }) })
      thrown = null
      assert.equal(res.status, status)
      assert.equal(((await res.json()) as { error: { code: string } }).error.code, code)
      assert.equal(logged.length, 1, 'one log line for the operator')
      assert.match(logged[0]!, new RegExp(`${code} on POST "/api/users"`))
    })
  }
})

describe('admin API: a log function that throws', () => {
  test('the 5xx is still answered, and the process does not crash', async () => {
    const store = KeyStore.inMemory()
    const attempts: string[] = []
    const server = createAdminServer({
      store,
      token: TOKEN,
      log: (line) => {
        attempts.push(line)
        throw new Error('the logger is down')
      },
    })
    // Without the fix, the throw escapes the request's promise: an unhandled rejection, which ends the process.
    const unhandled: unknown[] = []
    const onUnhandled = (reason: unknown) => unhandled.push(reason)
    process.on('unhandledRejection', onUnhandled)
    try {
      await server.listen()
      const headers = await loginHeaders(server, TOKEN)
      store.close() // every call now throws STORE_IO: a 500, logged
      const res = await fetch(`${server.url}/api/users`, { headers, signal: AbortSignal.timeout(5000) })
      assert.equal(res.status, 500)
      assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'STORE_IO')
      await new Promise((resolve) => setImmediate(resolve))
      assert.equal(attempts.length, 1, 'the log was called once')
      assert.deepEqual(unhandled, [])
    } finally {
      process.off('unhandledRejection', onUnhandled)
      await server.close()
    }
  })
})

/** Waits until the store says whether it is in contact with its backend, as `connected`. */
async function untilConnected(store: KeyStore, connected: boolean): Promise<void> {
  const end = Date.now() + 20_000
  while (store.health().connected !== connected) {
    if (Date.now() > end) assert.fail(`health().connected never became ${connected}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

describe('admin API: a read from a store that has failed closed is 503, not its last state', () => {
  test('SQLite: the store file replaced under the server', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'keygate-admin-failed-closed-'))
    const file = path.join(dir, 'keys.db')
    const store = KeyStore.open(file)
    const logged: string[] = []
    const server = createAdminServer({ store, token: TOKEN, log: (line) => logged.push(line) })
    try {
      store.putUser({ id: 'svc', status: 'active', rights: [], roles: [] })
      store.backup(path.join(dir, 'other.db'))
      await server.listen()
      const headers = await loginHeaders(server, TOKEN)
      assert.equal((await fetch(`${server.url}/api/users`, { headers })).status, 200)
      renameSync(path.join(dir, 'other.db'), file)
      await untilConnected(store, false)
      for (const route of ['/api/keys', '/api/users', '/api/users/svc', '/api/roles']) {
        const res = await fetch(`${server.url}${route}`, { headers })
        assert.equal(res.status, 503, route)
        const { error } = (await res.json()) as { error: { code: string; message: string } }
        assert.equal(error.code, 'STORE_UNAVAILABLE', route)
        assert.match(error.message, /cannot vouch that it is current/)
      }
      assert.ok(
        logged.some((l) => l.includes('STORE_UNAVAILABLE on GET "/api/keys"')),
        logged.join('\n'),
      )
    } finally {
      await server.close()
      store.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })

  test('PostgreSQL: the database unreachable; reads work again once it is back', pgOnly(), async () => {
    const db = createDatabase()
    const proxy = await TcpProxy.start(PG_PORT)
    const store = openPg(proxy.url(db.name), { connectTimeoutMs: 1000, statementTimeoutMs: 1000, failClosedAfterMs: 1000 })
    const server = createAdminServer({ store, token: TOKEN, log: () => {} })
    try {
      store.putUser({ id: 'svc', status: 'active', rights: [], roles: [] })
      await server.listen()
      const headers = await loginHeaders(server, TOKEN)
      await proxy.pause()
      await untilConnected(store, false)
      const res = await fetch(`${server.url}/api/keys`, { headers })
      assert.equal(res.status, 503)
      assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'STORE_UNAVAILABLE')
      await proxy.resume()
      await untilConnected(store, true)
      assert.equal((await fetch(`${server.url}/api/keys`, { headers })).status, 200)
    } finally {
      await server.close()
      store.close()
      proxy.stop()
      db.drop()
    }
  })
})

describe('admin API on PostgreSQL: an unreachable database is 503', pgOnly(), () => {
  test('a change while the database cannot be reached', { timeout: 30_000 }, async () => {
    const db = createDatabase()
    const proxy = await TcpProxy.start(PG_PORT)
    const store = openPg(proxy.url(db.name), { connectTimeoutMs: 1000, statementTimeoutMs: 1000 })
    const logged: string[] = []
    const server = createAdminServer({ store, token: TOKEN, log: (line) => logged.push(line) })
    try {
      await server.listen()
      const headers = await loginHeaders(server, TOKEN)
      await proxy.pause()
      const res = await fetch(`${server.url}/api/users`, { method: 'POST', headers, body: JSON.stringify({ id: 'bob' }) })
      assert.equal(res.status, 503)
      assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'STORE_UNAVAILABLE')
      assert.ok(
        logged.some((l) => l.includes('STORE_UNAVAILABLE')),
        logged.join('\n'),
      )
      await proxy.resume()
      assert.equal(store.getUser('bob'), null, 'the refused change changed nothing')
    } finally {
      await server.close()
      store.close()
      proxy.stop()
      db.drop()
    }
  })
})
