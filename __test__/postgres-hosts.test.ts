// Several hosts, one PostgreSQL database: processes standing in for hosts (support/store-server.js)
// and stores in this process. A change made by one is answered by every other within a deadline,
// nothing is missed, and every process ends with the same state (the state digest).
import { describe, test } from 'node:test'
import type { TestContext } from 'node:test'
import assert from 'node:assert/strict'

import type { StoreOptions } from '../index.js'

import { StoreProcess } from './support/child-store.js'
import { converge, createDatabase, openPg, pgOnly, seedKeys, until } from './support/postgres.js'
import { stateDigest } from './support/state-digest.js'

/** Processes standing in for hosts. */
const HOSTS = 8
/** How long a change may take to reach every host before the test fails (a bound, not a benchmark: see bench/pg.mjs). */
const DEADLINE_MS = 3000
const OPTIONS: StoreOptions = { failClosedAfterMs: 3000, connectTimeoutMs: 3000, statementTimeoutMs: 3000 }

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!
}

describe('several hosts on one PostgreSQL database', pgOnly(), () => {
  test(`a revocation is answered false by all ${HOSTS} hosts within the deadline, every time`, { timeout: 120_000 }, async (t: TestContext) => {
    const db = createDatabase()
    const writer = openPg(db.url, OPTIONS)
    const keys = seedKeys(writer, 10)
    const hosts = await Promise.all(Array.from({ length: HOSTS }, () => StoreProcess.start(db.url, OPTIONS)))
    const latencies: number[] = []
    for (const { key, secret } of keys) {
      // Every host answers true first (warm), then loops on isAllowed until it answers false.
      const watches = await Promise.all(hosts.map((h) => h.watch(secret, false, DEADLINE_MS)))
      const start = performance.timeOrigin + performance.now()
      writer.setState(key.id, 'revoked')
      const seen = await Promise.all(hosts.map((h, i) => h.reply(watches[i]!)))
      for (const [i, reply] of seen.entries()) assert.equal(reply.seen, true, `host ${i} still allowed a revoked key after ${DEADLINE_MS} ms`)
      latencies.push(Math.max(...seen.map((r) => r.at - start)))
    }
    t.diagnostic(`revocation seen by all ${HOSTS} hosts: p50 ${percentile(latencies, 50).toFixed(1)} ms, max ${Math.max(...latencies).toFixed(1)} ms`)
    await converge(hosts, stateDigest(writer), 'every host holds the writer state', 3 * DEADLINE_MS)
    await Promise.all(hosts.map((h) => h.stop()))
  })

  test('every kind of change reaches the other hosts: users, roles, keys, rules, deletions', { timeout: 60_000 }, async () => {
    const db = createDatabase()
    const writer = openPg(db.url, OPTIONS)
    const [a, b] = seedKeys(writer, 2)
    const host = await StoreProcess.start(db.url, OPTIONS)
    const reader = openPg(db.url, OPTIONS)
    const expect = async (secret: string, service: string, allowed: boolean, what: string) => {
      await until(`${what} (this process)`, DEADLINE_MS, () => (reader.isAllowed(secret, service, 'call') === allowed ? true : undefined))
      await until(`${what} (another process)`, DEADLINE_MS, async () => ((await host.call('isAllowed', secret, service, 'call')).result === allowed ? true : undefined))
    }
    await expect(a!.secret, 'svc', true, 'a new key works everywhere')
    writer.updateKey(a!.key.id, { rules: ['other:*'] })
    await expect(a!.secret, 'svc', false, 'new rules')
    writer.putRole({ name: 'r', rights: ['svc:*'] })
    writer.putUser({ id: 'svc', rights: [], roles: ['r'] })
    await expect(b!.secret, 'svc', true, 'rights through a new role')
    writer.putRole({ name: 'r', rights: [] })
    await expect(b!.secret, 'svc', false, 'a role emptied')
    writer.putRole({ name: 'r', rights: ['svc:*'] })
    await expect(b!.secret, 'svc', true, 'the role filled again')
    writer.setState(b!.key.id, 'suspended')
    await expect(b!.secret, 'svc', false, 'a suspension')
    writer.setState(b!.key.id, 'active')
    await expect(b!.secret, 'svc', true, 'an activation')
    writer.deleteUser('svc')
    await expect(b!.secret, 'svc', false, "a user's deletion")
    assert.equal(reader.getUser('svc'), null)
    assert.equal(stateDigest(reader), stateDigest(writer))
    await host.stop()
  })

  test('two writer processes and this one change concurrently: no change lost, every host ends identical', { timeout: 120_000 }, async (t: TestContext) => {
    const db = createDatabase()
    const seedStore = openPg(db.url, OPTIONS)
    const keys = seedKeys(seedStore, 60)
    const writers = await Promise.all([0, 1].map(() => StoreProcess.start(db.url, OPTIONS)))
    const hosts = await Promise.all(Array.from({ length: 4 }, () => StoreProcess.start(db.url, OPTIONS)))
    // Each writer suspends its own third of the keys and creates users; this process revokes the last third.
    const sent = writers.map((w, wi) =>
      keys
        .filter((_, i) => i % 3 === wi)
        .flatMap((k, i) => [w.send('setState', [k.key.id, 'suspended']), w.send('putUser', [{ id: `user-${wi}-${i}`, rights: ['a:b'] }])]),
    )
    for (const [i, k] of keys.entries()) if (i % 3 === 2) seedStore.setState(k.key.id, 'revoked')
    for (const [wi, ids] of sent.entries()) {
      for (const id of ids) {
        const reply = await writers[wi]!.reply(id)
        assert.equal(reply.ok, true, `writer ${wi}: ${reply.code} ${reply.message}`)
      }
    }
    const truth = openPg(db.url, OPTIONS)
    assert.deepEqual(
      keys.map((k) => truth.getKey(k.key.id)!.state),
      keys.map((_, i) => (i % 3 === 2 ? 'revoked' : 'suspended')),
    )
    assert.equal(truth.listUsers().length, 1 + 2 * 20)
    await converge([...writers, ...hosts], stateDigest(truth), 'every process holds the same state', 3 * DEADLINE_MS)
    await until('this process holds the same state', DEADLINE_MS, () => (stateDigest(seedStore) === stateDigest(truth) ? true : undefined))
    t.diagnostic(`${keys.length} key changes and 40 users from 3 writers, seen identically by ${writers.length + hosts.length + 1} processes`)
    await Promise.all([...writers, ...hosts].map((h) => h.stop()))
  })

  test('health(): connected, the applied version moves with each change, recent contact', async () => {
    const db = createDatabase()
    const writer = openPg(db.url, OPTIONS)
    const reader = openPg(db.url, OPTIONS)
    const before = reader.health()
    assert.equal(before.connected, true)
    assert.ok(Number.isInteger(before.appliedVersion) && before.appliedVersion >= 0)
    assert.ok(before.lagMs >= 0)
    assert.ok(before.lastContactAt instanceof Date && Math.abs(before.lastContactAt.getTime() - Date.now()) < 60_000)
    writer.putUser({ id: 'u' })
    writer.putUser({ id: 'v' })
    const after = await until('the reader applies both changes', DEADLINE_MS, () => {
      const h = reader.health()
      return h.appliedVersion >= before.appliedVersion + 2 ? h : undefined
    })
    assert.equal(after.appliedVersion, writer.health().appliedVersion)
    assert.deepEqual(
      reader.listUsers().map((u) => u.id),
      ['u', 'v'],
    )
  })

  test('a host opened later starts from everything committed before it', async () => {
    const db = createDatabase()
    const writer = openPg(db.url, OPTIONS)
    const keys = seedKeys(writer, 5)
    writer.setState(keys[0]!.key.id, 'revoked')
    writer.putRole({ name: 'ops', rights: ['ops:*'] })
    const late = await StoreProcess.start(db.url, OPTIONS)
    const answer = await late.call('digest')
    assert.equal(answer.result.digest, stateDigest(writer))
    assert.equal((await late.call('isAllowed', keys[0]!.secret, 'svc', 'call')).result, false)
    assert.equal((await late.call('isAllowed', keys[1]!.secret, 'svc', 'call')).result, true)
    await late.stop()
  })
})
