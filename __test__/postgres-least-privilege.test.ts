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

  test('a role granted only SELECT tries its refused lastUsedAt flush less and less often, and flushes again once granted UPDATE', async () => {
    // A database of its own: its rolled-back transactions are the gateway's refused flushes.
    const own = createDatabase()
    KeyStore.open(own.url).close()
    psql(`GRANT USAGE ON SCHEMA public TO ${reader}; GRANT SELECT ON ${TABLES.join(', ')} TO ${reader}`, { database: own.name })
    const rollbacks = () => Number(psql(`SELECT xact_rollback FROM pg_stat_database WHERE datname = '${own.name}'`))
    const admin = KeyStore.open(own.url)
    const seen: BackgroundError[] = []
    const gateway = KeyStore.open(`postgres://${reader}@${PG_HOST}:${PG_PORT}/${own.name}?sslmode=disable`, { onError: (error) => seen.push(error) })
    try {
      admin.putUser({ id: 'svc', rights: ['orders:*'] })
      const { key, secret } = admin.createKey({ userId: 'svc', description: '', expiresAt: new Date(Date.now() + DAY) })
      const start = Date.now()
      const before = rollbacks()
      // Used all along, refused for 12 s: flushes every second would be about 12 refusals;
      // backing off (1, 2, 4, 8 s) makes about 4, plus the purge's one.
      while (Date.now() - start < 12_000) {
        while (!gateway.isAllowed(secret, 'orders', 'list')) {
          assert.ok(Date.now() - start < 10_000, 'the gateway sees the new key')
          await new Promise((resolve) => setTimeout(resolve, 2))
        }
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
      assert.ok(
        seen.some((e) => e.task === 'lastUsedAt' && !e.recovered),
        'the refused flush was reported',
      )
      psql(`GRANT UPDATE ON keygate_keys TO ${reader}`, { database: own.name })
      // The next attempt (at most 16 s after the first refusal) flushes, and says so.
      while (!seen.some((e) => e.task === 'lastUsedAt' && e.recovered)) {
        assert.ok(Date.now() - start < 30_000, `the flush worked again: ${JSON.stringify(seen.map((e) => [e.task, e.recovered]))}`)
        gateway.isAllowed(secret, 'orders', 'list')
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
      assert.notEqual(admin.getKey(key.id)!.lastUsedAt, null, "the gateway's uses kept through the refusals were written")
      gateway.close()
      admin.close()
      // The counters reach pg_stat_database when each session ends (or within about a second).
      await new Promise((resolve) => setTimeout(resolve, 1_500))
      const refused = rollbacks() - before
      assert.ok(refused >= 2 && refused <= 7, `refused flushes and purges: ${refused} in about ${Math.round((Date.now() - start) / 1000)} s`)
    } finally {
      gateway.close()
      admin.close()
      own.drop()
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
