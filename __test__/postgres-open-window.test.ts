// KeyStore.open('postgres://…') hands out a store current with what other hosts committed before
// it returned: a change committed while the snapshot was being read (a big store takes a while)
// is seen by the first check after open returns, not only once the listener thread has looked.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import * as path from 'node:path'
import { spawn } from 'node:child_process'

import { KeyStore } from '../index.js'
import { DAY, at } from './helpers.js'
import { NODE, children, wall } from './support/durable.js'
import { createDatabase, pgOnly, psql } from './support/postgres.js'

/** A change another host commits (see support/change-later.js), and what a check answers then. */
const ACTIONS = ['revoke', 'suspendUser', 'delete', 'narrow', 'suspend'] as const

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

      const child = spawn(NODE, [path.join(__dirname, 'support', 'change-later.js'), db.url], { stdio: ['pipe', 'pipe', 'inherit'] })
      children.add(child)
      child.stdout.setEncoding('utf8')
      let buffer = ''
      let wake: (() => void) | undefined
      child.stdout.on('data', (chunk: string) => {
        buffer += chunk
        wake?.()
      })
      const next = async (): Promise<{ ready?: boolean; committedAt?: number; version?: number }> => {
        for (;;) {
          const nl = buffer.indexOf('\n')
          if (nl >= 0) {
            const line = buffer.slice(0, nl)
            buffer = buffer.slice(nl + 1)
            return JSON.parse(line)
          }
          await new Promise<void>((resolve) => (wake = resolve))
        }
      }
      assert.equal((await next()).ready, true)

      const conclusive = new Set<string>()
      for (let trial = 0; trial < 30 && conclusive.size < ACTIONS.length; trial++) {
        const action = ACTIONS[trial % ACTIONS.length]!
        const writer = KeyStore.open(db.url)
        const userId = `user${trial}`
        writer.putUser({ id: userId, rights: ['svc:*'] })
        const { key, secret } = writer.createKey({ userId, description: `${action} during an open`, expiresAt, rules: ['svc:*'] })
        writer.close()
        child.stdin.write(`${(openMs * [0.2, 0.35, 0.5][trial % 3]!).toFixed(1)} ${action} ${action === 'suspendUser' ? userId : key.id}\n`)
        started = wall()
        const store = KeyStore.open(db.url)
        const returned = wall()
        const allowed = store.isAllowed(secret, 'svc', 'call')
        const applied = store.health().appliedVersion
        store.close()
        const { committedAt, version } = await next()
        // Only a change committed well before open returned says anything (one committed in the
        // open's last moments may be seen by the listener thread or not).
        if (committedAt! < started || returned - committedAt! < 10) continue
        conclusive.add(action)
        assert.equal(allowed, false, `${action}: committed ${(returned - committedAt!).toFixed(1)} ms before open returned, yet allowed`)
        assert.ok(applied >= version!, `${action}: appliedVersion ${applied} after open, the change's version ${version}`)
      }
      child.stdin.write('exit\n')
      assert.ok(conclusive.size > 0, 'no change landed inside an open; the store opens too fast for this test')
    } finally {
      db.drop()
    }
  })
})
