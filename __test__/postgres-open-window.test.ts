// KeyStore.open('postgres://…') hands out a store current with what other hosts committed before
// it returned: a change committed while the snapshot was being read (a big store takes a while)
// is seen by the first check after open returns, not only once the listener thread has looked.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'

import { KeyStore } from '../index.js'
import { DAY, at } from './helpers.js'
import { StoreProcess } from './support/child-store.js'
import { wall } from './support/durable.js'
import { createDatabase, pgOnly, psql } from './support/postgres.js'

/** A change another host commits, as the KeyStore call a store server makes (key `id`, user `userId`). */
const CHANGES = {
  revoke: (id: string) => ['setState', [id, 'revoked']],
  suspendUser: (_id: string, userId: string) => ['putUser', [{ id: userId, rights: ['svc:*'], status: 'suspended' }]],
  delete: (id: string) => ['deleteKey', [id]],
  narrow: (id: string) => ['updateKey', [id, { rules: ['other:*'] }]],
  suspend: (id: string) => ['setState', [id, 'suspended']],
} satisfies Record<string, (id: string, userId: string) => [string, unknown[]]>
const ACTIONS = Object.keys(CHANGES) as (keyof typeof CHANGES)[]

describe('KeyStore.open(postgres://…) and commits of other hosts during the open', pgOnly(), () => {
  test('a change another host commits while the store opens is seen by the first check after open returns', { timeout: 180_000 }, async () => {
    const db = createDatabase()
    try {
      // Enough keys that reading the snapshot takes tens of milliseconds.
      const seed = KeyStore.inMemory()
      seed.putUser({ id: 'u', rights: ['*:*'] })
      const expiresAt = at(new Date(), 30 * DAY)
      for (let i = 0; i < 30_000; i++) seed.createKey({ userId: 'u', description: '', expiresAt })
      const empty = KeyStore.open(db.url)
      KeyStore.copy(seed, empty)
      empty.close()
      psql('ANALYZE', { database: db.name })
      KeyStore.open(db.url).close()
      let started = wall()
      KeyStore.open(db.url).close()
      const openMs = wall() - started

      const other = await StoreProcess.start(db.url)
      const conclusive = new Set<string>()
      for (let trial = 0; trial < 30 && conclusive.size < ACTIONS.length; trial++) {
        const action = ACTIONS[trial % ACTIONS.length]!
        const writer = KeyStore.open(db.url)
        const userId = `user${trial}`
        writer.putUser({ id: userId, rights: ['svc:*'] })
        const { key, secret } = writer.createKey({ userId, description: `${action} during an open`, expiresAt, rules: ['svc:*'] })
        writer.close()
        const [op, args] = CHANGES[action](key.id, userId)
        const change = other.send(op, args, { delayMs: openMs * [0.2, 0.35, 0.5][trial % 3]! })
        started = wall()
        const store = KeyStore.open(db.url)
        const returned = wall()
        const allowed = store.isAllowed(secret, 'svc', 'call')
        const applied = store.health().appliedVersion
        store.close()
        const { ok, at: committedAt } = await other.reply(change)
        assert.equal(ok, true, `${action} failed in the other process`)
        const version: number = (await other.call('health')).result.appliedVersion
        // Only a change committed well before open returned says anything (one committed in the
        // open's last moments may be seen by the listener thread or not).
        if (committedAt < started || returned - committedAt < 10) continue
        conclusive.add(action)
        assert.equal(allowed, false, `${action}: committed ${(returned - committedAt).toFixed(1)} ms before open returned, yet allowed`)
        assert.ok(applied >= version, `${action}: appliedVersion ${applied} after open, the change's version ${version}`)
      }
      await other.stop()
      assert.ok(conclusive.size > 0, 'no change landed inside an open; the store opens too fast for this test')
    } finally {
      db.drop()
    }
  })
})
