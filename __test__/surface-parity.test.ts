// The same operation through keygate's three surfaces — the library (KeyStore), the admin HTTP
// API (a real server) and the command line (the real bin/keygate.js) — on one store file: the
// same input is refused with the same error code on each, or the difference is the documented one.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'

import { KeyStore } from '../index.js'
import { createAdminServer } from '../lib/admin/server.js'
import type { AdminServer } from '../lib/admin/server.js'
import { DAY, throwsCode } from './helpers.js'
import { loginHeaders } from './support/admin.js'
import { json, jsonError, workspace } from './support/cli.js'

const TOKEN = 'surface-parity-token-0123456789'

describe('the library, the admin API and the CLI on one store', () => {
  const ws = workspace()
  let store: KeyStore
  let server: AdminServer
  let headers: Record<string, string>

  before(async () => {
    store = KeyStore.open(ws.db)
    store.putUser({ id: 'svc-parity', rights: ['*:*'] })
    server = createAdminServer({ store, token: TOKEN, log: () => {} })
    await server.listen()
    headers = await loginHeaders(server, TOKEN)
  })
  after(async () => {
    await server.close()
    store.close()
    ws.cleanup()
  })

  const http = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${server.url}/api${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) })
    return { status: res.status, body: (await res.json()) as Record<string, any> }
  }
  const refused = (r: { status: number; body: Record<string, any> }, status: number, code: string, what: string) => {
    assert.equal(r.status, status, `${what}: ${JSON.stringify(r.body)}`)
    assert.equal(r.body.error?.code, code, `${what}: ${JSON.stringify(r.body)}`)
  }
  const inAMonth = () => new Date(Date.now() + 30 * DAY)

  test('a key state that is no state is INVALID_STATE through the API as through the library, however long it is', async () => {
    const { key } = store.createKey({ userId: 'svc-parity', description: 'state', expiresAt: inAMonth() })
    const before = store.listKeys().length
    for (const state of ['paused', 'x'.repeat(40), 'suspended '.repeat(20)]) {
      throwsCode(() => store.createKey({ userId: 'svc-parity', description: '', expiresAt: inAMonth(), state: state as 'active' }), 'INVALID_STATE')
      throwsCode(() => store.setState(key.id, state as 'active'), 'INVALID_STATE')
      refused(
        await http('POST', '/keys', { userId: 'svc-parity', expiresAt: inAMonth().toISOString(), state }),
        400,
        'INVALID_STATE',
        `create in ${state.length} characters`,
      )
      refused(await http('POST', `/keys/${key.id}/state`, { state }), 400, 'INVALID_STATE', `state of ${state.length} characters`)
    }
    assert.equal(store.listKeys().length, before, 'no key was made')
    assert.equal(store.getKey(key.id)?.state, 'active')
  })

  test('a key for a user id no user has is UNKNOWN_USER on every surface, however long the id', async () => {
    for (const userId of ['nobody', 'n'.repeat(300), 'n'.repeat(5000)]) {
      throwsCode(() => store.createKey({ userId, description: '', expiresAt: inAMonth() }), 'UNKNOWN_USER')
      refused(await http('POST', '/keys', { userId, expiresAt: inAMonth().toISOString() }), 404, 'UNKNOWN_USER', `user id of ${userId.length} characters`)
      jsonError(await ws.kg(['--json', 'key', 'create', '--user', userId, '--description', '', '--expires', '30d']), 3, 'UNKNOWN_USER')
    }
    assert.deepEqual(json<unknown[]>(await ws.kg(['--json', 'key', 'list', '--user', 'nobody'])), [], 'no key was made')
  })

  test('an empty actor filter of the audit trail is refused by the API as by the CLI, not answered with everyone’s changes', async () => {
    store.putUser({ id: 'svc-by-alice' }, { actor: 'alice' })
    store.putUser({ id: 'svc-by-bob' }, { actor: 'bob' })
    jsonError(await ws.kg(['--json', 'audit', '--by', '']), 2, 'USAGE')
    refused(await http('GET', '/audit?actor='), 400, 'INVALID_ARGUMENT', 'GET /api/audit?actor=')
    // A filter with text still finds that actor's changes only.
    const alice = await http('GET', '/audit?actor=ali')
    assert.equal(alice.status, 200, JSON.stringify(alice.body))
    assert.deepEqual(
      alice.body.entries.map((e: { actor: string; userId: string }) => [e.actor, e.userId]),
      [['alice', 'svc-by-alice']],
    )
  })

  test('a user id that starts with "-", taken by the library and the API, is reached on the command line after --, and the usage error says so', async () => {
    const created = await http('POST', '/users', { id: '-svc-dash', rights: ['session:*'] })
    assert.equal(created.status, 201, JSON.stringify(created.body))
    const refusedRun = await ws.kg(['user', 'show', '-svc-dash'])
    assert.equal(refusedRun.code, 2, refusedRun.stderr)
    assert.ok(refusedRun.stderr.includes('an argument that starts with "-" goes after --: keygate user show -- <argument>'), refusedRun.stderr)
    const shown = await ws.kg(['--json', 'user', 'show', '--', '-svc-dash'])
    assert.equal(shown.code, 0, shown.stderr)
    assert.deepEqual(json<{ user: unknown }>(shown).user, { id: '-svc-dash', status: 'active', rights: ['session:*'], roles: [] })
    // As an option's value it needs no --.
    const key = await ws.kg(['--json', 'key', 'create', '--user', '-svc-dash', '--description', '', '--expires', '1d'])
    assert.equal(key.code, 0, key.stderr)
    const deleted = await ws.kg(['--json', 'user', 'delete', '--', '-svc-dash'])
    assert.deepEqual(json(deleted), { deleted: true, id: '-svc-dash', keysDeleted: 1 })
    assert.equal(store.getUser('-svc-dash'), null)
  })

  test('deleting a role answers the same fields through the API as through the CLI', async () => {
    const holders = ['svc-holder-1', 'svc-holder-2']
    const put = () => {
      store.putRole({ name: 'parity-role', rights: ['session:*'] })
      for (const id of holders) store.putUser({ id, roles: ['parity-role'] })
    }
    put()
    const viaCli = json<Record<string, unknown>>(await ws.kg(['--json', 'role', 'delete', 'parity-role']))
    put()
    const viaApi = await http('DELETE', '/roles/parity-role')
    assert.equal(viaApi.status, 200, JSON.stringify(viaApi.body))
    assert.deepEqual(viaCli, { deleted: true, name: 'parity-role', usersAffected: 2 })
    assert.deepEqual(viaApi.body, viaCli)
    for (const id of holders) assert.deepEqual(store.getUser(id)?.roles, [])
  })
})
