// KeyStore.open('postgres://…') through the package: the machine's PostgreSQL (127.0.0.1:5432,
// user postgres, trust), a database of its own per run, dropped afterwards. Skipped, with the
// reason, when no server answers there.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'

import { KeyStore, KeygateError } from '../index.js'
import { DAY, allowedTwice, throwsCode } from './helpers.js'

/** Whether the machine's server answers (synchronously: the suite is skipped, with the reason, if not). */
function serverAnswers(): boolean {
  try {
    psql('SELECT 1')
    return true
  } catch {
    return false
  }
}

function psql(sql: string, database = 'postgres'): string {
  return execFileSync('psql', ['-h', '127.0.0.1', '-U', 'postgres', '-d', database, '-v', 'ON_ERROR_STOP=1', '-Atc', sql], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 60_000,
  }).trim()
}

const database = `keygate_ts_${randomBytes(6).toString('hex')}`
const url = `postgres://postgres@127.0.0.1:5432/${database}?sslmode=disable`
const skip = serverAnswers() ? false : 'no PostgreSQL answers at 127.0.0.1:5432 (psql -h 127.0.0.1 -U postgres)'

describe('KeyStore.open(postgres://…)', { skip }, () => {
  before(() => psql(`CREATE DATABASE ${database}`))
  after(() => psql(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`))

  test('create, check, revoke: committed in the database, seen by a second store, health() reports', async () => {
    const store = KeyStore.open(url)
    const other = KeyStore.open(url)
    try {
      store.putUser({ id: 'svc', rights: ['orders:*'] })
      const { key, secret } = store.createKey({ userId: 'svc', description: 'ci', expiresAt: new Date(Date.now() + DAY) })
      assert.equal(allowedTwice(store, secret, 'orders', 'list'), true)
      assert.equal(psql('SELECT state FROM keygate_keys', database), 'active')

      const deadline = Date.now() + 10_000
      while (!other.isAllowed(secret, 'orders', 'list')) {
        assert.ok(Date.now() < deadline, 'the other store sees the new key')
        await new Promise((resolve) => setTimeout(resolve, 2))
      }
      assert.equal(other.isAllowed(secret, 'orders', 'list'), true)
      store.setState(key.id, 'revoked')
      assert.equal(store.isAllowed(secret, 'orders', 'list'), false)
      while (other.explain(secret, 'orders', 'list').reason !== 'revoked') {
        assert.ok(Date.now() < deadline, 'the other store sees the revocation')
        await new Promise((resolve) => setTimeout(resolve, 2))
      }
      assert.equal(other.isAllowed(secret, 'orders', 'list'), false, "the other store's memo forgot the key")

      const health = store.health()
      assert.equal(health.connected, true)
      assert.equal(health.appliedVersion, 3)
      assert.equal(typeof health.lagMs, 'number')
      assert.ok(health.lastContactAt instanceof Date)
      assert.equal(store.verifyAudit().ok, true)
    } finally {
      store.close()
      other.close()
    }
  })

  test("store.created: true for the open that made keygate's tables, false for later ones", () => {
    const fresh = `keygate_ts_${randomBytes(6).toString('hex')}`
    psql(`CREATE DATABASE ${fresh}`)
    try {
      const freshUrl = url.replace(database, fresh)
      const first = KeyStore.open(freshUrl)
      assert.equal(first.created, true)
      const second = KeyStore.open(freshUrl)
      assert.equal(second.created, false)
      first.close()
      second.close()
    } finally {
      psql(`DROP DATABASE IF EXISTS ${fresh} WITH (FORCE)`)
    }
  })

  test('the CLI takes the URL through KEYGATE_DB unchanged, and never prints its password', () => {
    const withPassword = url.replace('postgres@', 'postgres:not-a-real-password@')
    const kg = (...args: string[]) =>
      execFileSync(process.execPath, [path.join(__dirname, '..', 'bin', 'keygate.js'), ...args], {
        encoding: 'utf8',
        env: { ...process.env, KEYGATE_DB: withPassword },
        stdio: ['ignore', 'pipe', 'pipe'],
      })
    const initialized = kg('init')
    assert.ok(!initialized.includes('not-a-real-password'), initialized)
    kg('role', 'put', 'cli-role', '--right', 'orders:*')
    const store = KeyStore.open(url)
    try {
      assert.deepEqual(store.getRole('cli-role')?.rights, ['orders:*'])
    } finally {
      store.close()
    }
  })

  test('memory and SQLite stores answer health() too', () => {
    const health = KeyStore.inMemory().health()
    assert.equal(health.connected, true)
    assert.equal(health.appliedVersion, 0)
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keygate-health-'))
    const file = KeyStore.open(path.join(dir, 'keys.db'))
    try {
      file.putUser({ id: 'svc', rights: [] })
      const fileHealth = file.health()
      assert.equal(fileHealth.connected, true)
      assert.equal(fileHealth.appliedVersion, 1)
      assert.ok(fileHealth.lastContactAt instanceof Date)
    } finally {
      file.close()
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  test('bad URLs and options are INVALID_ARGUMENT; an unreachable server is STORE_UNAVAILABLE, quickly', () => {
    throwsCode(() => KeyStore.open('postgres://127.0.0.1/x?sslmode=sometimes'), 'INVALID_ARGUMENT')
    throwsCode(() => KeyStore.open(url, { failClosedAfterMs: -1 }), 'INVALID_ARGUMENT')
    // Under 1 ms would be "no answer within 0 ms" on every call; messages write numbers as JS does.
    for (const [option, value, shown] of [
      ['statementTimeoutMs', 0.5, '0.5'],
      ['connectTimeoutMs', Number.POSITIVE_INFINITY, 'Infinity'],
      ['failClosedAfterMs', 0, '0'],
    ] as const) {
      assert.throws(
        () => KeyStore.open(url, { [option]: value }),
        (e: unknown) => e instanceof KeygateError && e.code === 'INVALID_ARGUMENT' && e.message.includes(`${option} ${shown} must be from 1 to`),
      )
    }
    const started = Date.now()
    throwsCode(() => KeyStore.open('postgres://postgres:pw@127.0.0.1:1/x?sslmode=disable', { connectTimeoutMs: 500 }), 'STORE_UNAVAILABLE')
    assert.ok(Date.now() - started < 3000)
  })
})
