// Two admin servers on one store (two hosts, or two processes, behind one load balancer): a
// create on one that the other made a moment before is 409 ALREADY_EXISTS, and an edit of what
// the other deleted a moment before is a 404, never a silent replace or re-creation. Each server
// checks inside the store's write, not only against what it has heard of so far.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'

import type { KeyStore } from '../index.js'
import { createAdminServer } from '../lib/admin/server.js'
import type { AdminServer } from '../lib/admin/server.js'
import { loginHeaders } from './support/admin.js'
import { open, storePath } from './support/durable.js'

const TOKEN = 'admin-token-for-two-hosts-5678'

describe('admin API on two hosts sharing one store', () => {
  const file = storePath()
  const hosts: { store: KeyStore; server: AdminServer; headers: Record<string, string> }[] = []

  before(async () => {
    for (let i = 0; i < 2; i++) {
      const store = open(file)
      const server = createAdminServer({ store, token: TOKEN, log: () => {} })
      await server.listen()
      hosts.push({ store, server, headers: await loginHeaders(server, TOKEN) })
    }
  })
  after(async () => {
    for (const { server, store } of hosts) {
      await server.close()
      store.close()
    }
  })

  const call = (host: number, method: string, path: string, body?: unknown) =>
    fetch(`${hosts[host]!.server.url}/api${path}`, { method, headers: hosts[host]!.headers, body: body === undefined ? undefined : JSON.stringify(body) })

  for (const [kind, field, body] of [
    ['users', 'id', (name: string, rights: string[]) => ({ id: name, rights })],
    ['roles', 'name', (name: string, rights: string[]) => ({ name, rights })],
  ] as const) {
    test(`POST /api/${kind} on the second host at once is 409 ALREADY_EXISTS, and the first host's ${field} is kept`, async () => {
      for (let round = 0; round < 20; round++) {
        const name = `race-${round}`
        assert.equal((await call(0, 'POST', `/${kind}`, body(name, ['session:*']))).status, 201)
        const second = await call(1, 'POST', `/${kind}`, body(name, ['*:*']))
        assert.equal(second.status, 409, `round ${round}`)
        assert.equal(((await second.json()) as { error: { code: string } }).error.code, 'ALREADY_EXISTS')
        const stored = kind === 'users' ? hosts[0]!.store.getUser(name) : hosts[0]!.store.getRole(name)
        assert.deepEqual(stored?.rights, ['session:*'], `round ${round}: the first host's ${field} was replaced`)
      }
    })

    test(`PUT /api/${kind}/:${field} on the second host just after the first deleted it is a 404, not a re-creation`, async () => {
      for (let round = 0; round < 20; round++) {
        const name = `gone-${round}`
        assert.equal((await call(0, 'POST', `/${kind}`, body(name, []))).status, 201)
        // The second host has seen it (its edit form was open) before the first deletes it.
        while ((await call(1, 'GET', `/${kind}/${name}`)).status !== 200);
        assert.equal((await call(0, 'DELETE', `/${kind}/${name}`)).status, 200)
        const edit = await call(1, 'PUT', `/${kind}/${name}`, body(name, ['*:*']))
        assert.equal(edit.status, 404, `round ${round}`)
        assert.equal(kind === 'users' ? hosts[0]!.store.getUser(name) : hosts[0]!.store.getRole(name), null, `round ${round}: re-created`)
      }
    })
  }

  for (const [kind, body] of [
    ['users', (name: string) => ({ id: name, rights: ['*:*'] })],
    ['roles', (name: string) => ({ name, rights: ['*:*'] })],
  ] as const) {
    test(`PUT /api/${kind}/:id on the second host just after the first created it replaces it, not a 404`, async () => {
      for (let round = 0; round < 20; round++) {
        const name = `fresh-${kind}-${round}`
        assert.equal((await call(0, 'POST', `/${kind}`, { ...body(name), rights: [] })).status, 201)
        const edit = await call(1, 'PUT', `/${kind}/${name}`, body(name))
        assert.equal(edit.status, 200, `round ${round}: ${await edit.text()}`)
      }
    })
  }

  test('POST /api/keys on the second host for a user the first just created makes the key, not a 404', async () => {
    for (let round = 0; round < 20; round++) {
      const id = `new-owner-${round}`
      assert.equal((await call(0, 'POST', '/users', { id, rights: ['*:*'] })).status, 201)
      const expiresAt = new Date(Date.now() + 86_400_000).toISOString()
      const created = await call(1, 'POST', '/keys', { userId: id, description: '', expiresAt })
      assert.equal(created.status, 201, `round ${round}: ${await created.text()}`)
    }
  })

  test('POST /api/users on the second host just after the first deleted the user creates it, not a 409', async () => {
    for (let round = 0; round < 20; round++) {
      const id = `reborn-${round}`
      assert.equal((await call(0, 'POST', '/users', { id })).status, 201)
      while ((await call(1, 'GET', `/users/${id}`)).status !== 200);
      assert.equal((await call(0, 'DELETE', `/users/${id}`)).status, 200)
      const again = await call(1, 'POST', '/users', { id })
      assert.equal(again.status, 201, `round ${round}: ${await again.text()}`)
    }
  })

  test('POST /api/keys/:id/state on the second host just after the first changed the state is made, not answered from what the second had heard', async () => {
    hosts[0]!.store.putUser({ id: 'state-race', rights: ['*:*'] })
    const { key } = hosts[0]!.store.createKey({ userId: 'state-race', description: '', expiresAt: new Date(Date.now() + 86_400_000) })
    for (let round = 0; round < 20; round++) {
      assert.equal((await call(0, 'POST', `/keys/${key.id}/state`, { state: 'suspended' })).status, 200)
      // The second host has seen the key suspended before the first makes it active again.
      while (hosts[1]!.store.getKey(key.id)?.state !== 'suspended') await new Promise((resolve) => setTimeout(resolve, 1))
      assert.equal((await call(0, 'POST', `/keys/${key.id}/state`, { state: 'active' })).status, 200)
      const suspend = await call(1, 'POST', `/keys/${key.id}/state`, { state: 'suspended' })
      assert.equal(suspend.status, 200, `round ${round}`)
      assert.equal(((await suspend.json()) as { key: { state: string } }).key.state, 'suspended')
      // An admin call (one that changes nothing) brings the first host up to date with the file.
      hosts[0]!.store.putUser({ id: 'state-race', rights: ['*:*'] })
      assert.equal(hosts[0]!.store.getKey(key.id)?.state, 'suspended', `round ${round}: answered suspended, but the key stayed active`)
    }
  })
})
