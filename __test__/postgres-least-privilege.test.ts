// A gateway given as little access to the PostgreSQL store as it needs to check keys: a role
// granted only SELECT on keygate's tables, or a session whose transactions are read-only. What
// README promises of each (see "Privileges" and "A URL that cannot LISTEN").
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'

import { KeyStore } from '../index.js'
import type { BackgroundError } from '../index.js'
import { DAY, throwsCode } from './helpers.js'
import { PG_HOST, PG_PORT, createDatabase, pgOnly, psql } from './support/postgres.js'
import type { TestDatabase } from './support/postgres.js'

const TABLES = ['keygate_meta', 'keygate_roles', 'keygate_users', 'keygate_keys', 'keygate_changes', 'keygate_audit']

describe('a gateway with least privilege on the PostgreSQL store', pgOnly(), () => {
  let db: TestDatabase
  const reader = `keygate_reader_${randomBytes(6).toString('hex')}`
  const readerUrl = () => `postgres://${reader}@${PG_HOST}:${PG_PORT}/${db.name}?sslmode=disable`

  before(() => {
    db = createDatabase()
    KeyStore.open(db.url).close()
    psql(`CREATE ROLE ${reader} LOGIN`)
    psql(`GRANT USAGE ON SCHEMA public TO ${reader}; GRANT SELECT ON ${TABLES.join(', ')} TO ${reader}`, { database: db.name })
  })
  after(() => {
    db.drop()
    psql(`DROP ROLE IF EXISTS ${reader}`)
  })

  test('a role granted only SELECT follows the admin, refuses admin calls with 42501, and reports its lastUsedAt flushes failing for that reason', async () => {
    const admin = KeyStore.open(db.url)
    // Several gateways, each reporting its first failed flush: the error must name the missing
    // privilege every time (the statements after the refused one fail too, "current
    // transaction is aborted", and that was told instead in about one flush in six).
    const reports: BackgroundError[][] = []
    const gateways = Array.from({ length: 12 }, () => {
      const seen: BackgroundError[] = []
      reports.push(seen)
      return KeyStore.open(readerUrl(), { onError: (error) => seen.push(error) })
    })
    try {
      admin.putUser({ id: 'svc', rights: ['orders:*'] })
      const { key, secret } = admin.createKey({ userId: 'svc', description: '', expiresAt: new Date(Date.now() + DAY) })
      const deadline = Date.now() + 10_000
      for (const gateway of gateways) {
        while (!gateway.isAllowed(secret, 'orders', 'list')) {
          assert.ok(Date.now() < deadline, 'every gateway sees the new key')
          await new Promise((resolve) => setTimeout(resolve, 2))
        }
      }
      const gateway = gateways[0]!
      const users = gateway.listUsers()
      const error = throwsCode(() => gateway.putUser({ id: 'intruder' }), 'STORE_IO')
      assert.match(error.message, /42501: permission denied for table keygate_meta/)
      throwsCode(() => gateway.setState(key.id, 'revoked'), 'STORE_IO')
      assert.deepEqual(gateway.listUsers(), users, 'a refused admin call changed nothing')
      assert.equal(gateway.isAllowed(secret, 'orders', 'list'), true)

      // Each gateway's use of the key is flushed within about a second, and refused.
      while (reports.some((seen) => !seen.some((e) => e.task === 'lastUsedAt'))) {
        assert.ok(Date.now() < deadline + 5_000, `a flush failure was reported: ${JSON.stringify(reports.map((seen) => seen.map((e) => e.task)))}`)
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
      for (const seen of reports) {
        const flush = seen.find((e) => e.task === 'lastUsedAt')!
        assert.equal(flush.code, 'STORE_IO')
        assert.match(flush.message, /42501: permission denied for table keygate_keys/)
      }
      assert.equal(gateway.health().connected, true, 'a refused flush is no lost database')

      admin.setState(key.id, 'revoked')
      for (const gateway of gateways) {
        while (gateway.explain(secret, 'orders', 'list').reason !== 'revoked') {
          assert.ok(Date.now() < deadline + 10_000, "every gateway sees the admin's revocation")
          await new Promise((resolve) => setTimeout(resolve, 1))
        }
      }
      assert.equal(gateway.verifyAudit().ok, true)
    } finally {
      for (const gateway of gateways) gateway.close()
      admin.close()
    }
  })

  test('a session whose transactions are read-only is refused at open, naming the setting and the role to use instead', () => {
    const url = `${readerUrl()}&options=-c%20default_transaction_read_only%3Don`
    const error = throwsCode(() => KeyStore.open(url), 'INVALID_ARGUMENT')
    assert.match(error.message, /default_transaction_read_only is on/)
    assert.match(error.message, /granted only SELECT/)
    // It is the primary: sending the operator to look for another server was wrong.
    assert.doesNotMatch(error.message, /read-only server|needs the primary/)
  })
})
