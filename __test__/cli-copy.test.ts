// keygate copy <from> <to>: a whole store into an empty one, run as users run it — SQLite to
// SQLite here, and through PostgreSQL where a server answers and this build has the PG store.
import { after, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { existsSync, writeFileSync } from 'node:fs'
import path from 'node:path'

import { KeyStore } from '../index.js'
import type { AuditEntry } from '../index.js'
import { BIN, createKey, json, keygateError, ok, usage, workspace } from './support/cli.js'
import { Cluster, PG_USER, clusterSkipReason, createDatabase, pgOnly, psql, until } from './support/postgres.js'
import { NO_PYTHON, sql } from './support/python-sqlite.js'

const ws = workspace()
after(() => ws.cleanup())

/** A store with history: a role, a user, an active key that was used, a revoked one. */
async function seed(db: string, prefix = 'kg') {
  const kg = (args: string[]) => ws.kg(args, { env: { KEYGATE_DB: db } })
  ok(await kg(['init', '--key-prefix', prefix]))
  ok(await kg(['role', 'put', 'reader', '--right', 'data:*']))
  ok(await kg(['user', 'put', 'svc', '--role', 'reader', '--right', 'session:*']))
  const active = await createKey(kg, ['--user', 'svc', '--description', 'sync', '--expires', '30d'])
  const revoked = await createKey(kg, ['--user', 'svc', '--description', 'old', '--expires', '30d'])
  ok(await kg(['key', 'revoke', revoked.id]))
  ok(await kg(['check', active.secret, 'session', 'getSessionInfo']))
  return { active, revoked, kg }
}

/** What a store shows, read with the library (keys as the CLI lists them, the trail, the report). */
function contents(where: string) {
  const store = KeyStore.open(where, { purgeExpiredAfterDays: 1e6 })
  try {
    return {
      keys: store.listKeys(),
      users: store.listUsers(),
      roles: store.listRoles(),
      audit: store.audit({ limit: 1000 }),
      report: store.verifyAudit(),
      prefix: store.keyPrefix,
    }
  } finally {
    store.close()
  }
}

/**
 * `from` made with a 30-day limit (unless it exists), `to` made empty by a plain `init`, then the
 * copy: processes that open `to` with no limit of their own use 30 days, as on `from`.
 */
async function keepsLifetime(from: string, to: string, make = true) {
  if (make) {
    ok(await ws.kg(['init', '--max-lifetime-days', '30'], { env: { KEYGATE_DB: from } }))
    ok(await ws.kg(['user', 'put', 'svc'], { env: { KEYGATE_DB: from } }))
  }
  ok(await ws.kg(['init'], { env: { KEYGATE_DB: to } }))
  ok(await ws.kg(['copy', from, to]))
  const store = KeyStore.open(to)
  try {
    assert.equal(store.maxLifetimeDays, 30)
  } finally {
    store.close()
  }
  keygateError(await ws.kg(['key', 'create', '--user', 'svc', '--description', 'd', '--expires', '60d'], { env: { KEYGATE_DB: to } }), 'EXPIRY_TOO_FAR')
}

describe('keygate copy', () => {
  test('SQLite to a new SQLite file: same keys, users, roles and trail; secrets work; verify-audit passes', async () => {
    const from = path.join(ws.dir, 'from.db')
    const { active, revoked } = await seed(from)
    const to = path.join(ws.dir, 'to.db')
    const r = ok(await ws.kg(['copy', from, to]))
    assert.match(r.stdout, /^copied .*from\.db to .*to\.db: 1 role, 1 user, 2 keys, \d+ audit entries \(audit trail verified\)\n$/)
    assert.deepEqual(contents(to), contents(from))
    const kgTo = (args: string[]) => ws.kg(args, { env: { KEYGATE_DB: to } })
    ok(await kgTo(['check', active.secret, 'session', 'getSessionInfo']))
    assert.equal((await kgTo(['check', revoked.secret, 'session', 'getSessionInfo'])).code, 1)
    ok(await kgTo(['verify-audit']))
  })

  test('--json reports what was copied; relative paths are resolved against the working directory', async () => {
    const from = path.join(ws.dir, 'rel-from.db')
    await seed(from)
    const report = json<Record<string, unknown>>(ok(await ws.kg(['--json', 'copy', 'rel-from.db', 'rel-to.db'])))
    const audit: AuditEntry[] = contents(from).audit
    assert.deepEqual(report, { from, to: path.join(ws.dir, 'rel-to.db'), roles: 1, users: 1, keys: 2, auditEntries: audit.length, auditVerified: true })
  })

  test("the copy keeps the source's key prefix", async () => {
    const from = path.join(ws.dir, 'acme.db')
    const { active } = await seed(from, 'acme')
    const to = path.join(ws.dir, 'acme-copy.db')
    ok(await ws.kg(['copy', from, to]))
    assert.equal(contents(to).prefix, 'acme')
    ok(await ws.kg(['check', active.secret, 'session', 'getSessionInfo'], { env: { KEYGATE_DB: to } }))
  })

  test("into an empty store made by init, the copy keeps the source's maxLifetimeDays", async () => {
    await keepsLifetime(path.join(ws.dir, 'short-from.db'), path.join(ws.dir, 'short-to.db'))
  })

  test('a target that holds anything is refused with INVALID_ARGUMENT and left as it was', async () => {
    const from = path.join(ws.dir, 'full-from.db')
    await seed(from)
    const to = path.join(ws.dir, 'full-to.db')
    ok(await ws.kg(['user', 'put', 'someone'], { env: { KEYGATE_DB: to } }))
    const before = contents(to)
    keygateError(await ws.kg(['copy', from, to]), 'INVALID_ARGUMENT', 'not empty')
    assert.deepEqual(contents(to), before)
  })

  test('a source whose audit trail fails verification is refused with INVALID_ARGUMENT, and no target is made', { skip: NO_PYTHON }, async () => {
    const from = path.join(ws.dir, 'tampered-from.db')
    await seed(from)
    // The last entry removed: the copy's head would be the entry before it, and nothing would show it.
    sql(from, ['DELETE FROM audit WHERE seq = (SELECT max(seq) FROM audit)'])
    assert.equal(contents(from).report.ok, false)
    const to = path.join(ws.dir, 'tampered-to.db')
    keygateError(await ws.kg(['copy', from, to]), 'INVALID_ARGUMENT', 'fails verification')
    assert.equal(existsSync(to), false)
  })

  test('a missing source is STORE_IO and creates no target; a missing argument is a usage error', async () => {
    const to = path.join(ws.dir, 'never.db')
    keygateError(await ws.kg(['copy', path.join(ws.dir, 'nothing-here.db'), to]), 'STORE_IO', 'nothing-here.db')
    assert.equal(existsSync(to), false)
    usage(await ws.kg(['copy', 'only-one.db']))
  })

  test('a target file that is not a store is refused and left alone', async () => {
    const from = path.join(ws.dir, 'src-for-junk.db')
    await seed(from)
    const junk = path.join(ws.dir, 'junk.txt')
    writeFileSync(junk, 'not a database, and long enough to have a header\n'.repeat(4))
    keygateError(await ws.kg(['copy', from, junk]), 'STORE_CORRUPT')
    assert.ok(existsSync(junk))
  })
})

describe('keygate copy and KEYGATE_DB with PostgreSQL', pgOnly(), () => {
  test('SQLite → PostgreSQL → SQLite keeps every key, secret and audit entry', async () => {
    const from = path.join(ws.dir, 'pg-from.db')
    const { active } = await seed(from)
    const db = createDatabase()
    ok(await ws.kg(['copy', from, db.url]))
    assert.deepEqual(contents(db.url), contents(from))
    const back = path.join(ws.dir, 'pg-back.db')
    ok(await ws.kg(['copy', db.url, back]))
    assert.deepEqual(contents(back), contents(from))
    ok(await ws.kg(['check', active.secret, 'session', 'getSessionInfo'], { env: { KEYGATE_DB: back } }))
  })

  test("into a database made by init, the copy keeps the source's maxLifetimeDays (and back)", async () => {
    const db = createDatabase()
    await keepsLifetime(path.join(ws.dir, 'pg-short-from.db'), db.url)
    await keepsLifetime(db.url, path.join(ws.dir, 'pg-short-back.db'), false)
  })

  test('a source whose audit trail fails verification writes nothing into a PostgreSQL target, not even its tables', { skip: NO_PYTHON }, async () => {
    const from = path.join(ws.dir, 'pg-tampered-from.db')
    await seed(from)
    sql(from, ['DELETE FROM audit WHERE seq = (SELECT max(seq) FROM audit)'])
    const db = createDatabase()
    keygateError(await ws.kg(['copy', from, db.url]), 'INVALID_ARGUMENT', 'fails verification')
    assert.equal(psql("SELECT count(*) FROM pg_tables WHERE tablename LIKE 'keygate%'", { database: db.name }).trim(), '0')
  })

  test('a database without keygate tables is no source: STORE_IO, no tables made in it, no target file made', async () => {
    const db = createDatabase()
    const to = path.join(ws.dir, 'from-empty-database.db')
    keygateError(await ws.kg(['copy', db.url, to]), 'STORE_IO', 'no keygate store')
    assert.equal(psql("SELECT count(*) FROM pg_tables WHERE tablename LIKE 'keygate%'", { database: db.name }), '0')
    assert.equal(existsSync(to), false)
  })

  test('every command works on a postgres:// KEYGATE_DB: users, keys, check, revoke, audit', async () => {
    const db = createDatabase()
    const { active, kg } = await seed(db.url)
    ok(await kg(['check', active.secret, 'session', 'getSessionInfo']))
    ok(await kg(['key', 'suspend', active.id]))
    assert.equal((await kg(['check', active.secret, 'session', 'getSessionInfo'])).code, 1)
    const listed = json<Array<{ id: string; state: string }>>(ok(await kg(['--json', 'key', 'list'])))
    assert.deepEqual(listed.find((k) => k.id === active.id)?.state, 'suspended')
    ok(await kg(['verify-audit']))
    assert.ok(json<AuditEntry[]>(ok(await kg(['--json', 'audit']))).length >= 5)
  })
})

describe('keygate copy into PostgreSQL killed midway (a throwaway cluster)', { ...pgOnly(), ...(clusterSkipReason() ? { skip: clusterSkipReason() } : {}) }, () => {
  let cluster: Cluster | undefined
  after(() => cluster?.remove())

  test("kill -9 in the middle of its transaction leaves keygate's tables empty, and a second copy fills them", { timeout: 120_000 }, async () => {
    cluster ??= await Cluster.create()
    const c = cluster
    const from = path.join(ws.dir, 'killed-copy-from.db')
    const { active } = await seed(from)
    const db = c.createDatabase()
    ok(await ws.kg(['init'], { env: { KEYGATE_DB: db.url } }))
    // Holds the copy in the middle of its one transaction: its keys written, its audit rows waiting for this lock.
    const holder = spawn(
      'psql',
      ['-X', '-q', '-h', '127.0.0.1', '-p', String(c.port), '-U', PG_USER, '-d', db.name, '-c', 'BEGIN; LOCK TABLE keygate_audit IN SHARE MODE; SELECT pg_sleep(60)'],
      { stdio: 'ignore' },
    )
    const sessions = (where: string) => c.psql(`SELECT count(*) FROM pg_stat_activity WHERE datname = '${db.name}' AND ${where}`)
    try {
      await until('the other session holds the lock', 20_000, () => (sessions("query LIKE '%pg_sleep%' AND state = 'active'") === '1' ? true : undefined))
      const copy = spawn(process.execPath, [BIN, 'copy', from, db.url], { stdio: 'ignore' })
      const exited = new Promise((resolve) => copy.on('exit', (code, signal) => resolve(signal ?? code)))
      await until('the copy waits inside its transaction', 20_000, () =>
        sessions("wait_event_type = 'Lock' AND query LIKE '%keygate_audit%'") === '1' ? true : undefined,
      )
      copy.kill('SIGKILL')
      assert.equal(await exited, 'SIGKILL')
    } finally {
      holder.kill('SIGKILL')
      c.psql(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '${db.name}' AND query LIKE '%pg_sleep%' AND pid <> pg_backend_pid()`)
    }
    // Its session, given the lock, finds its client gone and rolls the transaction back.
    await until("the killed copy's session ends", 20_000, () => (sessions("query NOT LIKE '%pg_stat_activity%'") === '0' ? true : undefined))
    assert.equal(c.psql("SELECT count(*) FROM pg_tables WHERE tablename LIKE 'keygate%'", db.name), '6')
    for (const table of ['keygate_roles', 'keygate_users', 'keygate_keys', 'keygate_audit']) {
      assert.equal(c.psql(`SELECT count(*) FROM ${table}`, db.name), '0', `${table} holds part of the killed copy`)
    }
    ok(await ws.kg(['copy', from, db.url]), 'the second copy')
    assert.deepEqual(contents(db.url), contents(from))
    ok(await ws.kg(['check', active.secret, 'session', 'getSessionInfo'], { env: { KEYGATE_DB: db.url } }))
  })
})
