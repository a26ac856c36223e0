// The PostgreSQL store under faults: connections cut, half-open (a TCP proxy process that stops
// forwarding), listeners terminated during a burst of revocations, a process paused through many
// changes, history pruned past a cursor, the server killed and restarted (a throwaway cluster),
// a database restored from an older dump. Nothing acknowledged is lost, a store that cannot vouch
// for its state fails closed, and every process ends with the identical state (state digest).
import { after, describe, test } from 'node:test'
import type { TestContext } from 'node:test'
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { spawn, spawnSync } from 'node:child_process'

import { KeyStore, KeygateError } from '../index.js'
import type { StoreOptions } from '../index.js'
import { DAY, SECOND, T0, at } from './helpers.js'
import { StoreProcess } from './support/child-store.js'
import { NODE, childScript, children, sleep, wall } from './support/durable.js'
import { Cluster, PG_PORT, TcpProxy, clusterSkipReason, converge, createDatabase, openPg, pgOnly, psql, seedKeys, until, whilePaused } from './support/postgres.js'
import type { TestDatabase } from './support/postgres.js'
import { stateDigest } from './support/state-digest.js'

/** Short bounds, so that each fault shows within a second or two. */
const FAIL_CLOSED_MS = 1000
const OPTIONS: StoreOptions = { failClosedAfterMs: FAIL_CLOSED_MS, connectTimeoutMs: 1000, statementTimeoutMs: 1000 }
/** How long recovery may take once the fault is gone (reconnect backoff, catch-up). */
const RECOVERY_MS = 10_000

async function childAllows(host: StoreProcess, secret: string): Promise<boolean> {
  return (await host.call('isAllowed', secret, 'svc', 'call')).result as boolean
}

/** The admin call fails with STORE_UNAVAILABLE (or another store error), or succeeds: never hangs, never another kind of error. */
function attemptAdmin(fn: () => unknown): 'ok' | string {
  try {
    fn()
    return 'ok'
  } catch (error) {
    assert.ok(error instanceof KeygateError, `an admin call threw ${String(error)}`)
    assert.ok(['STORE_UNAVAILABLE', 'STORE_IO'].includes(error.code), `an admin call during a fault threw ${error.code}: ${error.message}`)
    return error.code
  }
}

/** Retries `store.putUser({ id })` until it goes through; every refusal meanwhile must be STORE_UNAVAILABLE. Returns the refusals. */
async function writesAgain(store: KeyStore, id: string, deadlineMs: number): Promise<number> {
  let refused = 0
  await until('another host writes again', deadlineMs, () => {
    try {
      store.putUser({ id })
      return true
    } catch (error) {
      assert.ok(error instanceof KeygateError && error.code === 'STORE_UNAVAILABLE', String(error))
      refused++
      return undefined
    }
  })
  return refused
}

/**
 * Starts a child host writing users back to back and freezes it (SIGSTOP) with its write
 * connection idle inside a transaction, holding keygate_meta's row: a write caught between two
 * statements. `at` is when that session went idle (the server's bound counts from then, not from
 * when the test saw it).
 */
async function freezeInTheMiddleOfAWrite(db: TestDatabase) {
  const child = spawn(NODE, [childScript('busy-writer'), db.url, JSON.stringify(OPTIONS)], { stdio: ['ignore', 'pipe', 'inherit'] })
  children.add(child)
  const acked: number[] = []
  const failed: Array<{ i: number; code: string }> = []
  let ready = false
  let pending = ''
  child.stdout!.on('data', (chunk: Buffer) => {
    pending += chunk.toString()
    const lines = pending.split('\n')
    pending = lines.pop()!
    for (const line of lines) {
      const m = JSON.parse(line) as { t: string; i: number; code: string; message?: string }
      if (m.t === 'ready') ready = true
      else if (m.t === 'ok') acked.push(m.i)
      else if (m.t === 'failed') failed.push({ i: m.i, code: m.code })
      else assert.fail(`the busy writer could not start: ${m.code} ${m.message}`)
    }
  })
  await until('the busy writer writes', 20_000, () => (ready && acked.length >= 20 ? true : undefined))
  // How long each session idle in a transaction has been so, in ms.
  const idleInWrite = () =>
    psql(`SELECT floor(extract(epoch FROM now() - state_change) * 1000) FROM pg_stat_activity WHERE datname = '${db.name}' AND state = 'idle in transaction'`, {
      database: db.name,
    })
      .split('\n')
      .filter(Boolean)
      .map(Number)
  let caught = false
  for (let attempt = 0; attempt < 500 && !caught; attempt++) {
    child.kill('SIGSTOP')
    // The statement in flight, if any, completes on the server meanwhile.
    await sleep(30)
    caught = idleInWrite().length === 1
    if (!caught) {
      child.kill('SIGCONT')
      await sleep(1 + Math.random() * 10)
    }
  }
  assert.ok(caught, 'the busy writer was never caught between the statements of a write')
  const [idleForMs] = idleInWrite() as [number]
  const ackedWhenFrozen = acked.length
  return {
    at: wall() - idleForMs,
    idleInWrite,
    /**
     * Resumed, the frozen call either fails STORE_UNAVAILABLE or, when its lock's answer had not
     * yet been read and the loss is found then, is made again on a new connection; its next calls
     * go through. Nothing acknowledged is missing.
     */
    async resumeAndCheck(t: TestContext, db: TestDatabase) {
      child.kill('SIGCONT')
      await until('the resumed host writes again', 20_000, () => (acked.length > ackedWhenFrozen + 5 ? true : undefined))
      child.kill('SIGKILL')
      await new Promise((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve(null) : child.once('exit', resolve)))
      children.delete(child)
      t.diagnostic(`the frozen call ${failed.some((f) => f.i === ackedWhenFrozen) ? 'failed' : 'was acknowledged'}; ${failed.length} calls failed`)
      for (const f of failed) assert.equal(f.code, 'STORE_UNAVAILABLE', `write busy-${f.i} failed with ${f.code}`)
      const users = new Set(
        openPg(db.url, OPTIONS)
          .listUsers()
          .map((u) => u.id),
      )
      for (const i of acked) assert.ok(users.has(`busy-${i}`), `acknowledged write busy-${i} lost`)
      assert.ok(users.has('after-the-freeze'))
    },
  }
}

describe('PostgreSQL faults through a TCP proxy', pgOnly(), () => {
  test('a cut connection: the host reconnects and catches up with every change made meanwhile', { timeout: 60_000 }, async (t: TestContext) => {
    const db = createDatabase()
    const writer = openPg(db.url, OPTIONS)
    const keys = seedKeys(writer, 40)
    const proxy = await TcpProxy.start(PG_PORT)
    const host = await StoreProcess.start(proxy.url(db.name), OPTIONS)
    await converge([host], stateDigest(writer), 'the host starts current', RECOVERY_MS)
    const cut = await proxy.cut()
    // Changes while the host is disconnected (or reconnecting): none may be missed.
    for (const k of keys.slice(0, 20)) writer.setState(k.key.id, 'revoked')
    writer.putUser({ id: 'added-while-cut' })
    await converge([host], stateDigest(writer), 'the host catches up after the cut', RECOVERY_MS)
    for (const k of keys.slice(0, 20)) assert.equal(await childAllows(host, k.secret), false)
    assert.equal(await childAllows(host, keys[20]!.secret), true)
    t.diagnostic(`cut ${JSON.stringify(cut)}; ${await proxy.connections()} connections through the proxy after reconnecting`)
    await host.stop()
    proxy.stop()
  })

  test('a use not yet flushed is kept when a host reads everything afresh (history pruned past it)', { timeout: 60_000 }, async () => {
    const db = createDatabase()
    const writer = openPg(db.url, { ...OPTIONS, now: T0 })
    writer.putUser({ id: 'svc', rights: ['*:*'] })
    const { key, secret } = writer.createKey({ userId: 'svc', description: 'k', expiresAt: at(T0, DAY) })
    const host = await StoreProcess.start(db.url, { ...OPTIONS, now: at(T0, 5 * SECOND) })
    assert.equal((await host.call('isAllowed', secret, 'svc', 'call')).result, true)
    whilePaused(host, () => {
      // Changes the host has not read, their rows pruned (as after a long outage): it reloads when resumed.
      writer.putUser({ id: 'later' })
      writer.putUser({ id: 'later-still' })
      psql('DELETE FROM keygate_changes', { database: db.name })
    })
    await until('the host reloads', RECOVERY_MS, async () => ((await host.call('getUser', 'later-still')).result ? true : undefined))
    // Dates come back from the child as { $date: ms }.
    const shown = (await host.call('getKey', key.id)).result as { lastUsedAt: { $date: number } | null }
    assert.equal(shown.lastUsedAt?.$date, at(T0, 5 * SECOND).getTime(), 'lastUsedAt went back after the reload')
    await host.stop()
    writer.close()
    const reopened = openPg(db.url, { ...OPTIONS, now: T0 })
    assert.equal(reopened.getKey(key.id)!.lastUsedAt?.getTime(), at(T0, 5 * SECOND).getTime(), 'the use never reached the database')
    reopened.close()
  })

  test('a half-open connection: the host fails closed within failClosedAfterMs, and recovers when forwarding resumes', { timeout: 60_000 }, async (t: TestContext) => {
    const db = createDatabase()
    const writer = openPg(db.url, OPTIONS)
    const [kept, revokedMeanwhile] = seedKeys(writer, 2)
    const proxy = await TcpProxy.start(PG_PORT)
    const host = await StoreProcess.start(proxy.url(db.name), OPTIONS)
    assert.equal(await childAllows(host, kept!.secret), true)
    // The host's own loop notices: from the pause, it checks until it answers false (fails closed).
    const watch = await host.watch(kept!.secret, false, FAIL_CLOSED_MS + 5000)
    const pausedAt = performance.timeOrigin + performance.now()
    await proxy.pause()
    const closed = await host.reply(watch)
    assert.equal(closed.seen, true, `the host kept answering from a half-open connection for ${FAIL_CLOSED_MS + 5000} ms`)
    const detectedMs = closed.at - pausedAt
    t.diagnostic(`half-open connection detected, checks failing closed after ${detectedMs.toFixed(0)} ms (failClosedAfterMs ${FAIL_CLOSED_MS})`)
    assert.ok(detectedMs >= FAIL_CLOSED_MS * 0.5, `failed closed after ${detectedMs} ms: too early for failClosedAfterMs ${FAIL_CLOSED_MS}`)
    const why = await host.call('explain', kept!.secret, 'svc', 'call')
    assert.equal(why.result.reason, 'store_unavailable')
    const hostHealth = (await host.call('health')).result
    assert.equal(hostHealth.connected, false)
    // Meanwhile the database moves on; when forwarding resumes the host must not miss it.
    writer.setState(revokedMeanwhile!.key.id, 'revoked')
    await proxy.resume()
    await until('the host answers again after resume', RECOVERY_MS, async () => ((await childAllows(host, kept!.secret)) ? true : undefined))
    assert.equal(await childAllows(host, revokedMeanwhile!.secret), false)
    await converge([host], stateDigest(writer), 'the host is current again', RECOVERY_MS)
    await host.stop()
    proxy.stop()
  })

  test('listeners terminated again and again during a burst of revocations: nothing acknowledged is lost', { timeout: 120_000 }, async (t: TestContext) => {
    const db = createDatabase()
    const writer = openPg(db.url, OPTIONS)
    const keys = seedKeys(writer, 300)
    const hosts = await Promise.all(Array.from({ length: 3 }, () => StoreProcess.start(db.url, OPTIONS)))
    // A psql loop in another process terminates every keygate connection every 100 ms while the writer revokes.
    const sql = `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '${db.name}' AND application_name = 'keygate' AND pid <> pg_backend_pid()`
    const killer = spawn(
      'bash',
      ['-c', `for i in $(seq 1 40); do psql -X -q -h 127.0.0.1 -p ${PG_PORT} -U postgres -d postgres -c "${sql}" >/dev/null 2>&1; sleep 0.1; done`],
      // Its own process group, so that stopping it stops the psql it is running too.
      { stdio: 'ignore', detached: true },
    )
    const killerDone = new Promise((resolve) => killer.once('exit', resolve))
    children.add(killer)
    const acknowledged: string[] = []
    const failed: string[] = []
    for (const k of keys) {
      const outcome = attemptAdmin(() => writer.setState(k.key.id, 'revoked'))
      if (outcome === 'ok') acknowledged.push(k.key.id)
      else failed.push(k.key.id)
    }
    process.kill(-killer.pid!, 'SIGKILL')
    await killerDone
    children.delete(killer)
    const truth = openPg(db.url, OPTIONS)
    for (const id of acknowledged) assert.equal(truth.getKey(id)!.state, 'revoked', `acknowledged revocation of ${id} lost`)
    await converge(hosts, stateDigest(truth), 'every host ends with the database state', RECOVERY_MS)
    await until('the writer ends with the database state', RECOVERY_MS, () => (stateDigest(writer) === stateDigest(truth) ? true : undefined))
    t.diagnostic(`${acknowledged.length} revocations acknowledged, ${failed.length} refused while connections were being terminated`)
    await Promise.all(hosts.map((h) => h.stop()))
  })

  test('a host paused (SIGSTOP) through 2,000 changes catches up when resumed', { timeout: 120_000 }, async () => {
    const db = createDatabase()
    const writer = openPg(db.url, OPTIONS)
    const keys = seedKeys(writer, 20)
    const host = await StoreProcess.start(db.url, OPTIONS)
    await converge([host], stateDigest(writer), 'the host starts current', RECOVERY_MS)
    whilePaused(host, () => {
      for (let i = 0; i < 2000; i++) {
        const k = keys[i % keys.length]!
        writer.updateKey(k.key.id, { description: `change ${i}` })
      }
      writer.setState(keys[0]!.key.id, 'revoked')
    })
    await converge([host], stateDigest(writer), 'the resumed host catches up', RECOVERY_MS)
    assert.equal(await childAllows(host, keys[0]!.secret), false)
    await host.stop()
  })

  test('history pruned past a paused host’s cursor: it reloads everything when resumed', { timeout: 60_000 }, async () => {
    const db = createDatabase()
    const writer = openPg(db.url, OPTIONS)
    const keys = seedKeys(writer, 10)
    const host = await StoreProcess.start(db.url, OPTIONS)
    await converge([host], stateDigest(writer), 'the host starts current', RECOVERY_MS)
    whilePaused(host, () => {
      writer.setState(keys[0]!.key.id, 'revoked')
      writer.deleteKey(keys[1]!.key.id)
      writer.putUser({ id: 'later' })
      // What a long outage and the store's own pruning would leave: no change rows at all.
      psql('DELETE FROM keygate_changes', { database: db.name })
    })
    await converge([host], stateDigest(writer), 'the host reloads the whole state', RECOVERY_MS)
    assert.equal(await childAllows(host, keys[0]!.secret), false)
    assert.equal(await childAllows(host, keys[1]!.secret), false)
    assert.equal(await childAllows(host, keys[2]!.secret), true)
    await host.stop()
  })

  test('a host frozen (SIGSTOP) in the middle of a write holds the other hosts back for a bounded time, and nothing acknowledged is lost', {
    timeout: 120_000,
  }, async (t: TestContext) => {
    const db = createDatabase()
    const other = openPg(db.url, OPTIONS)
    const frozen = await freezeInTheMiddleOfAWrite(db)
    // Another host's writes wait for the lock, then go through once the server has ended the frozen transaction.
    const refused = await writesAgain(other, 'after-the-freeze', 60_000)
    const heldMs = wall() - frozen.at
    t.diagnostic(`a host frozen mid-write held the others back ${heldMs.toFixed(0)} ms (${refused} writes refused meanwhile, STORE_UNAVAILABLE)`)
    // Ended by the server after max(4 × statementTimeoutMs, 10 s) idle; a write then waits at most one lock wait more.
    assert.ok(heldMs >= 9_800, `the frozen transaction ended after ${heldMs} ms: sooner than its idle bound of 10 s`)
    assert.ok(heldMs < 10_000 + 3 * OPTIONS.statementTimeoutMs!, `the frozen host held the others back ${heldMs} ms`)
    assert.deepEqual(frozen.idleInWrite(), [], 'the frozen session is still idle in its transaction')
    await frozen.resumeAndCheck(t, db)
  })

  test('an operator’s stricter idle-in-transaction bound for the database is kept: a frozen writer is ended after it, not after keygate’s', {
    timeout: 120_000,
  }, async (t: TestContext) => {
    const db = createDatabase()
    // Applies to every session opened in the database from now on; keygate's own bound would be 10 s.
    psql(`ALTER DATABASE ${db.name} SET idle_in_transaction_session_timeout = '2500ms'`, { database: db.name })
    const other = openPg(db.url, OPTIONS)
    const frozen = await freezeInTheMiddleOfAWrite(db)
    await writesAgain(other, 'after-the-freeze', 60_000)
    const heldMs = wall() - frozen.at
    t.diagnostic(`with the database's bound at 2.5 s, a host frozen mid-write held the others back ${heldMs.toFixed(0)} ms`)
    assert.ok(heldMs >= 2_300, `the frozen transaction ended after ${heldMs} ms: sooner than the database's bound of 2.5 s`)
    assert.ok(heldMs < 2_500 + 3 * OPTIONS.statementTimeoutMs!, `the frozen host held the others back ${heldMs} ms: the database's stricter bound was overridden`)
    await frozen.resumeAndCheck(t, db)
  })

  test('a write that times out on the client ends its session at once: the other hosts are not held back by it', { timeout: 60_000 }, async (t: TestContext) => {
    const db = createDatabase()
    const slow = openPg(db.url, { ...OPTIONS, statementTimeoutMs: 300 })
    const other = openPg(db.url, OPTIONS)
    // Every key row takes the server 2 ms to insert: a copy of 600 keys outlasts the 300 ms its client waits.
    psql(
      `CREATE FUNCTION slow_insert() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(0.002); RETURN NEW; END $$;
       CREATE TRIGGER slow_insert BEFORE INSERT ON keygate_keys FOR EACH ROW EXECUTE FUNCTION slow_insert()`,
      { database: db.name },
    )
    const source = KeyStore.inMemory()
    source.putUser({ id: 'u' })
    for (let i = 0; i < 600; i++) source.createKey({ userId: 'u', description: `k${i}`, expiresAt: new Date(Date.now() + 30 * DAY) })
    assert.throws(
      () => KeyStore.copy(source, slow),
      (error: unknown) => error instanceof KeygateError && error.code === 'STORE_UNAVAILABLE',
    )
    const failedAt = wall()
    const refused = await writesAgain(other, 'after-the-timeout', 30_000)
    const heldMs = wall() - failedAt
    t.diagnostic(`another host wrote ${heldMs.toFixed(0)} ms after the timed-out write (${refused} refused)`)
    // Without ending the dropped connection, its session stayed in the transaction until the server's idle bound (10 s).
    assert.ok(heldMs < 3_000, `the timed-out write's session held the others back ${heldMs} ms`)
    assert.equal(other.listKeys().length, 0, 'part of the failed copy is in the database')
  })
})

describe('PostgreSQL server killed and restored (a throwaway cluster)', { ...pgOnly(), ...(clusterSkipReason() ? { skip: clusterSkipReason() } : {}) }, () => {
  let cluster: Cluster | undefined
  after(() => cluster?.remove())

  test('the server killed: admin calls STORE_UNAVAILABLE, checks fail closed, all recovers after restart', { timeout: 120_000 }, async (t: TestContext) => {
    cluster ??= await Cluster.create()
    const db = cluster.createDatabase()
    const store = openPg(db.url, OPTIONS)
    const [kept, revokedLater] = seedKeys(store, 2)
    const host = await StoreProcess.start(db.url, OPTIONS)
    assert.equal(store.isAllowed(kept!.secret, 'svc', 'call'), true)
    cluster.stop('immediate')
    const started = Date.now()
    assert.equal(
      attemptAdmin(() => store.putUser({ id: 'while-down' })),
      'STORE_UNAVAILABLE',
    )
    t.diagnostic(`an admin call with the server down failed after ${Date.now() - started} ms`)
    assert.equal(store.getUser('while-down'), null)
    await until('checks fail closed in this process', FAIL_CLOSED_MS + 5000, () => (store.isAllowed(kept!.secret, 'svc', 'call') ? undefined : true))
    assert.equal(store.explain(kept!.secret, 'svc', 'call').reason, 'store_unavailable')
    assert.equal(store.health().connected, false)
    await until('checks fail closed in the host', FAIL_CLOSED_MS + 5000, async () => ((await childAllows(host, kept!.secret)) ? undefined : true))
    cluster.start()
    await until('checks answer again after the restart', RECOVERY_MS, () => (store.isAllowed(kept!.secret, 'svc', 'call') ? true : undefined))
    await until('the host answers again after the restart', RECOVERY_MS, async () => ((await childAllows(host, kept!.secret)) ? true : undefined))
    assert.equal(await childAllows(host, revokedLater!.secret), true)
    store.setState(revokedLater!.key.id, 'revoked')
    await until('the host follows changes after the restart', RECOVERY_MS, async () => ((await childAllows(host, revokedLater!.secret)) ? undefined : true))
    assert.equal(await childAllows(host, kept!.secret), true)
    await converge([host], stateDigest(store), 'the host ends with the same state', RECOVERY_MS)
    assert.equal(store.health().connected, true)
    await host.stop()
  })

  test('a role at its CONNECTION LIMIT: open is STORE_UNAVAILABLE (turned away, as at start-up), and works once there is room', { timeout: 60_000 }, async () => {
    cluster ??= await Cluster.create()
    const db = cluster.createDatabase()
    cluster.psql('CREATE ROLE limited LOGIN CONNECTION LIMIT 1')
    cluster.psql(`GRANT ALL ON DATABASE ${db.name} TO limited; ALTER DATABASE ${db.name} OWNER TO limited`)
    const url = db.url.replace('//postgres@', '//limited@')
    // A store holds two connections: the second is turned away (53300).
    const refused = (() => {
      try {
        KeyStore.open(url, { onError: () => {}, ...OPTIONS }).close()
      } catch (error) {
        return error as KeygateError
      }
      return undefined
    })()
    assert.ok(refused instanceof KeygateError, 'opened with one connection to spare')
    assert.equal(refused.code, 'STORE_UNAVAILABLE', refused.message)
    assert.match(refused.message, /53300: too many connections for role "limited"/)
    cluster.psql('ALTER ROLE limited CONNECTION LIMIT 2')
    const store = openPg(url, OPTIONS)
    store.putUser({ id: 'svc', rights: ['svc:*'] })
    assert.equal(store.getUser('svc')?.id, 'svc')
    store.close()
  })

  test('an immediate restart in the middle of writes: every acknowledged change survives, every host ends identical', { timeout: 120_000 }, async (t: TestContext) => {
    cluster ??= await Cluster.create()
    const db = cluster.createDatabase()
    const writer = openPg(db.url, OPTIONS)
    const keys = seedKeys(writer, 200)
    const hosts = await Promise.all([0, 1].map(() => StoreProcess.start(db.url, OPTIONS)))
    const acknowledged: string[] = []
    let restart: Promise<void> | undefined
    let restarted = false
    for (const [i, k] of keys.entries()) {
      // The crash comes from another process while this one keeps writing.
      if (i === 50)
        restart = cluster.restartInBackground().then(() => {
          restarted = true
        })
      if (attemptAdmin(() => writer.setState(k.key.id, 'suspended')) === 'ok') acknowledged.push(k.key.id)
      // While the server is down, calls fail fast: spread the rest of the writes over the restart.
      else if (!restarted) await new Promise((resolve) => setTimeout(resolve, 20))
    }
    await restart
    const truth = openPg(db.url, OPTIONS)
    for (const id of acknowledged) assert.equal(truth.getKey(id)!.state, 'suspended', `acknowledged change of ${id} lost by the restart`)
    await converge(hosts, stateDigest(truth), 'each host ends with the database state', RECOVERY_MS)
    t.diagnostic(`${acknowledged.length} of ${keys.length} changes acknowledged across an immediate restart`)
    await Promise.all(hosts.map((h) => h.stop()))
  })

  test('the database restored from an older dump: hosts notice (version backwards) and reload it whole', { timeout: 120_000 }, async () => {
    cluster ??= await Cluster.create()
    const db = cluster.createDatabase()
    const writer = openPg(db.url, OPTIONS)
    const keys = seedKeys(writer, 5)
    const dump = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'keygate-dump-')), 'store.dump')
    const pgDump = spawnSync('pg_dump', ['-Fc', '-h', '127.0.0.1', '-p', String(cluster.port), '-U', 'postgres', '-f', dump, db.name], { encoding: 'utf8' })
    assert.equal(pgDump.status, 0, pgDump.stderr)
    const older = stateDigest(writer)
    // After the dump: changes the restore will take back.
    const lost = writer.createKey({ userId: 'svc', description: 'after the dump', expiresAt: at(new Date(), DAY) })
    writer.setState(keys[0]!.key.id, 'revoked')
    const host = await StoreProcess.start(db.url, OPTIONS)
    // Twice: a key's first check is not remembered, its second is (the restore must empty the memo).
    assert.equal(await childAllows(host, lost.secret), true)
    assert.equal(await childAllows(host, lost.secret), true)
    // The restore: the database replaced by the dump (every connection dropped on the way).
    cluster.psql(`DROP DATABASE ${db.name} WITH (FORCE)`)
    cluster.psql(`CREATE DATABASE ${db.name}`)
    const restore = spawnSync('pg_restore', ['-h', '127.0.0.1', '-p', String(cluster.port), '-U', 'postgres', '-d', db.name, dump], { encoding: 'utf8' })
    fs.rmSync(path.dirname(dump), { recursive: true, force: true })
    assert.equal(restore.status, 0, restore.stderr)
    await converge([host], older, 'the host reloads the restored state', RECOVERY_MS)
    assert.equal(await childAllows(host, lost.secret), false, 'a key created after the dump is unknown after the restore')
    assert.equal(await childAllows(host, keys[0]!.secret), true, 'a revocation after the dump is undone by the restore')
    await until('this process reloads the restored state', RECOVERY_MS, () => (stateDigest(writer) === older ? true : undefined))
    await host.stop()
  })

  test('the database restored from an older dump while a host was cut off: back in contact, the host says what the restore undid', { timeout: 120_000 }, async () => {
    cluster ??= await Cluster.create()
    const db = cluster.createDatabase()
    const writer = openPg(db.url, OPTIONS)
    const [key] = seedKeys(writer, 1)
    const dump = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'keygate-dump-')), 'store.dump')
    const pgDump = spawnSync('pg_dump', ['-Fc', '-h', '127.0.0.1', '-p', String(cluster.port), '-U', 'postgres', '-f', dump, db.name], { encoding: 'utf8' })
    assert.equal(pgDump.status, 0, pgDump.stderr)
    writer.setState(key!.key.id, 'revoked') // after the dump: the restore takes it back
    writer.close()
    const reported: KeygateError[] = []
    const host = openPg(db.url, { ...OPTIONS, onError: (error) => reported.push(error) })
    const reason = () => host.explain(key!.secret, 'svc', 'call').reason
    assert.equal(reason(), 'revoked')
    // The host cut off past failClosedAfterMs (its database renamed away, its sessions ended), and
    // the dump restored meanwhile: an outage that ends on another history, as a failover that lost
    // the last commits does.
    const away = `${db.name}_away`
    cluster.psql(`ALTER DATABASE ${db.name} ALLOW_CONNECTIONS false`)
    cluster.psql(`SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '${db.name}'`)
    cluster.psql(`ALTER DATABASE ${db.name} RENAME TO ${away}`)
    cluster.psql(`ALTER DATABASE ${away} ALLOW_CONNECTIONS true`)
    try {
      await until('the cut-off host fails closed', RECOVERY_MS, () => (reason() === 'store_unavailable' ? true : undefined))
      const restore = spawnSync('pg_restore', ['--clean', '-h', '127.0.0.1', '-p', String(cluster.port), '-U', 'postgres', '-d', away, dump], { encoding: 'utf8' })
      assert.equal(restore.status, 0, restore.stderr)
    } finally {
      fs.rmSync(path.dirname(dump), { recursive: true, force: true })
      cluster.psql(`ALTER DATABASE ${away} RENAME TO ${db.name}`)
    }
    // As documented: the revocation made after the dump is undone.
    await until('the host reads the restored store', RECOVERY_MS, () => (reason() === 'allowed' ? true : undefined))
    // And said: not only that the outage ended, but that this host went back (README: each such episode is reported).
    const sync = () => reported.filter((e) => (e as any).task === 'sync').map((e) => [(e as any).recovered, e.code, e.message] as const)
    const told = await until('the step back reported, and its end', RECOVERY_MS, () => {
      const all = sync()
      const at = all.findIndex(([recovered, , message]) => !recovered && /another history/.test(message))
      return at >= 0 && all.slice(at + 1).some(([recovered]) => recovered) ? all : undefined
    })
    assert.deepEqual(
      told.map(([recovered, code]) => [recovered, code]),
      [
        [false, 'STORE_UNAVAILABLE'],
        [true, 'STORE_UNAVAILABLE'],
        [false, 'STORE_UNAVAILABLE'],
        [true, 'STORE_UNAVAILABLE'],
      ],
      JSON.stringify(told),
    )
    assert.match(told[0]![2], /no word from/)
    host.close()
  })
})
