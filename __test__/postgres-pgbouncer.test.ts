// KeyStore.open through a real PgBouncer (Debian's binary, a process of the test's own): in
// transaction mode LISTEN cannot work (each statement may land on another server connection, and
// notifications reach whichever client holds it then), so open refuses it with INVALID_ARGUMENT and
// says why, the URL's password never shown; in session mode the store works, and a revocation made
// over a direct connection reaches the process behind the pooler.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'

import { allowedTwice } from './helpers.js'
import { PgBouncer, pgbouncerSkipReason } from './support/pgbouncer.js'
import { createDatabase, openPg, pgSkipReason, refusedOpen, seedKeys, until } from './support/postgres.js'

const PASSWORD = 'pooler-url-password-77'
const reason = pgSkipReason() ?? pgbouncerSkipReason()
const skip = reason === undefined ? {} : { skip: `PgBouncer: ${reason}` }

describe('PostgreSQL through PgBouncer', skip, () => {
  test('pool_mode=transaction: open fails with INVALID_ARGUMENT saying why, and never shows the password', async () => {
    const db = createDatabase()
    const bouncer = await PgBouncer.start('transaction')
    try {
      const refused = refusedOpen(bouncer.url(db.name, PASSWORD), 'INVALID_ARGUMENT', PASSWORD, { connectTimeoutMs: 1500 })
      assert.match(refused.message, /does not deliver notifications to a LISTENing session/)
      assert.match(refused.message, /pooler in session mode, not transaction mode/)
    } finally {
      bouncer.stop()
    }
  })

  test('pool_mode=statement: open fails with STORE_UNAVAILABLE (the pooler ends the connection at the first transaction), and never shows the password', async () => {
    const db = createDatabase()
    const bouncer = await PgBouncer.start('statement')
    try {
      const refused = refusedOpen(bouncer.url(db.name, PASSWORD), 'STORE_UNAVAILABLE', PASSWORD, { connectTimeoutMs: 1500 })
      // The pooler's error, or, when the connection's end is read before it, only that.
      assert.match(refused.message, /08P01: transaction blocks not allowed in statement pooling mode|connection closed/)
      assert.match(bouncer.log(), /transaction blocks not allowed in statement pooling mode/)
    } finally {
      bouncer.stop()
    }
  })

  test('pool_mode=session: open succeeds, and a revocation made over a direct connection is seen through the pooler', async () => {
    const db = createDatabase()
    const bouncer = await PgBouncer.start('session')
    try {
      const direct = openPg(db.url)
      const [{ key, secret }] = seedKeys(direct, 1)
      const pooled = openPg(bouncer.url(db.name, PASSWORD))
      assert.equal(allowedTwice(pooled, secret, 'orders', 'list'), true)
      direct.setState(key.id, 'revoked')
      await until('the revocation seen through the pooler', 10_000, () => (pooled.explain(secret, 'orders', 'list').reason === 'revoked' ? true : undefined))
      assert.equal(pooled.isAllowed(secret, 'orders', 'list'), false)
      // And the other way: a change made through the pooler is committed in the database.
      pooled.putRole({ name: 'through-pooler', rights: ['orders:list'] })
      await until("the pooled store's change seen directly", 10_000, () => direct.getRole('through-pooler')?.rights)
    } finally {
      bouncer.stop()
    }
  })
})
