// The audit trail of a durable store: every kind of change recorded, filters, actors, and
// tampering with the file (made with python3's sqlite3) detected by verifyAudit().
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import * as fs from 'node:fs'

import { KeyStore } from '../index.js'
import type { AuditEntry } from '../index.js'
import { DAY, MINUTE, T0, assertNoSecret, at, throwsCode } from './helpers.js'
import { open, storePath } from './support/durable.js'
import { NO_PYTHON, sql } from './support/python-sqlite.js'
import type { Statement } from './support/python-sqlite.js'

describe('audit trail', () => {
  const A = (minutes: number) => at(T0, minutes * MINUTE)

  /** Builds a store with every kind of change, one minute apart; returns what it made. */
  function scenario(file: string) {
    const store = open(file, { now: A(0) })
    const secrets: string[] = []
    let minute = 0
    const step = () => store.setNow(A(++minute))
    store.putRole({ name: 'reader', rights: ['data:*'] }, { actor: 'alice' }) // 1
    step()
    store.putRole({ name: 'reader', rights: ['data:get*'] }) // 2
    step()
    store.putUser({ id: 'u1', rights: ['session:*'], roles: ['reader'] }, { actor: 'alice' }) // 3
    step()
    store.putUser({ id: 'u1', status: 'suspended', rights: ['session:*'], roles: ['reader'] }, { actor: 'bob' }) // 4
    step()
    store.putUser({ id: 'u1', rights: ['session:*'], roles: ['reader'] }) // 5
    step()
    const k1 = store.createKey({ userId: 'u1', description: 'first', expiresAt: at(T0, DAY), rules: ['session:*'] }, { actor: 'alice' }) // 6
    step()
    const k2 = store.createKey({ userId: 'u1', description: 'second', expiresAt: at(T0, DAY) }) // 7
    step()
    store.updateKey(k1.key.id, { description: 'renamed' }, { actor: 'carol' }) // 8
    step()
    store.updateKey(k1.key.id, { rules: ['session:get*'], expiresAt: at(T0, 2 * DAY) }) // 9
    step()
    store.setState(k2.key.id, 'suspended', { actor: 'carol' }) // 10
    step()
    store.setState(k2.key.id, 'revoked') // 11
    step()
    const k1b = store.rotateKey(k1.key.id, { actor: 'dave' }) // 12, 13
    step()
    store.deleteKey(k2.key.id, { actor: 'erin' }) // 14
    step()
    const k3 = store.createKey({ userId: 'u1', description: 'third', expiresAt: at(T0, DAY) }) // 15
    step()
    store.deleteRole('reader', { actor: 'frank' }) // 16
    step()
    store.putUser({ id: 'u2', rights: ['*:*'] }) // 17
    step()
    const k4 = store.createKey({ userId: 'u2', description: 'of u2', expiresAt: at(T0, DAY) }) // 18
    step()
    store.deleteUser('u2', { actor: 'grace' }) // 19, and 20 for k4 deleted with it
    secrets.push(k1.secret, k2.secret, k1b.secret, k3.secret, k4.secret)
    store.close()
    // Purge: k3 expired at T0+1d; 8 days later it goes. k1/k1b expire at T0+2d: exactly 7 days, they stay.
    const later = open(file, { now: at(T0, 9 * DAY) }) // 21
    return { store: later, secrets, k1, k2, k1b, k3, k4, minutes: minute }
  }

  function only(entries: AuditEntry[], seq: number): AuditEntry {
    const e = entries.find((x) => x.seq === seq)
    assert.ok(e, `entry ${seq} is missing`)
    return e
  }

  function sameInstant(value: unknown, date: Date): void {
    assert.equal(typeof value, 'string')
    assert.equal(new Date(value as string).getTime(), date.getTime(), `${String(value)} is ${date.toISOString()}`)
  }

  test('every kind of change is recorded: time, actor, key/user, what changed; newest first; no secret', () => {
    const file = storePath()
    const { store, secrets, k1, k2, k1b, k3, k4 } = scenario(file)
    const entries = store.audit({ limit: 1000 })
    assert.equal(entries.length, 21)
    assert.deepEqual(
      entries.map((e) => e.seq),
      Array.from({ length: 21 }, (_, i) => 21 - i),
      'newest first, numbered from 1',
    )
    for (const e of entries) {
      assert.match(e.hash, /^[0-9a-f]{64}$/)
      assert.ok(e.at instanceof Date)
    }
    const pick = (seq: number) => only(entries, seq)
    const shape = (e: AuditEntry) => ({ action: e.action, actor: e.actor, keyId: e.keyId, userId: e.userId, at: e.at.getTime() })

    assert.deepEqual(shape(pick(1)), { action: 'putRole', actor: 'alice', keyId: undefined, userId: undefined, at: A(0).getTime() })
    assert.ok(!('actor' in pick(2)), 'no actor given, none recorded')
    assert.deepEqual(pick(1).changes, { role: 'reader', created: { rights: ['data:*'] } })
    assert.deepEqual(pick(2).changes, { role: 'reader', changes: { rights: [['data:*'], ['data:get*']] } })

    assert.deepEqual(shape(pick(3)), { action: 'putUser', actor: 'alice', keyId: undefined, userId: 'u1', at: A(2).getTime() })
    assert.deepEqual(pick(3).changes, { created: { status: 'active', rights: ['session:*'], roles: ['reader'] } })
    assert.deepEqual(shape(pick(4)), { action: 'putUser', actor: 'bob', keyId: undefined, userId: 'u1', at: A(3).getTime() })
    assert.deepEqual(pick(4).changes, { status: ['active', 'suspended'] })
    assert.deepEqual(pick(5).changes, { status: ['suspended', 'active'] })

    assert.deepEqual(shape(pick(6)), { action: 'createKey', actor: 'alice', keyId: k1.key.id, userId: 'u1', at: A(5).getTime() })
    const created = pick(6).changes.created as Record<string, unknown>
    sameInstant(created.expiresAt, at(T0, DAY))
    assert.deepEqual(
      { ...created, expiresAt: undefined },
      {
        userId: 'u1',
        description: 'first',
        state: 'active',
        expiresAt: undefined,
        rules: ['session:*'],
        hint: k1.key.hint,
      },
    )
    assert.deepEqual(shape(pick(7)), { action: 'createKey', actor: undefined, keyId: k2.key.id, userId: 'u1', at: A(6).getTime() })

    assert.deepEqual(shape(pick(8)), { action: 'updateKey', actor: 'carol', keyId: k1.key.id, userId: 'u1', at: A(7).getTime() })
    assert.deepEqual(pick(8).changes, { description: ['first', 'renamed'] })
    const nine = pick(9).changes
    assert.deepEqual(Object.keys(nine).sort(), ['expiresAt', 'rules'])
    assert.deepEqual(nine.rules, [['session:*'], ['session:get*']])
    sameInstant((nine.expiresAt as unknown[])[0], at(T0, DAY))
    sameInstant((nine.expiresAt as unknown[])[1], at(T0, 2 * DAY))

    assert.deepEqual(shape(pick(10)), { action: 'setState', actor: 'carol', keyId: k2.key.id, userId: 'u1', at: A(9).getTime() })
    assert.deepEqual(pick(10).changes, { state: ['active', 'suspended'] })
    assert.deepEqual(pick(11).changes, { state: ['suspended', 'revoked'] })

    const rotation = [pick(12), pick(13)]
    for (const e of rotation)
      assert.deepEqual(
        { action: e.action, actor: e.actor, userId: e.userId, at: e.at.getTime() },
        { action: 'rotateKey', actor: 'dave', userId: 'u1', at: A(11).getTime() },
      )
    const ofNew = rotation.find((e) => e.keyId === k1b.key.id)
    const ofOld = rotation.find((e) => e.keyId === k1.key.id)
    assert.ok(ofNew && ofOld, 'the rotation records the new and the old key')
    assert.equal((ofNew.changes.created as Record<string, unknown>).description, 'renamed')
    assert.equal((ofNew.changes.created as Record<string, unknown>).hint, k1b.key.hint)
    assert.deepEqual(ofOld.changes, { state: ['active', 'revoked'], rotatedTo: k1b.key.id }, 'the two entries name each other')
    assert.equal(ofNew.changes.rotatedFrom, k1.key.id)

    assert.deepEqual(shape(pick(14)), { action: 'deleteKey', actor: 'erin', keyId: k2.key.id, userId: 'u1', at: A(12).getTime() })
    const deleted = pick(14).changes.deleted as Record<string, unknown>
    assert.equal(deleted.description, 'second')
    assert.equal(deleted.state, 'revoked')
    assert.equal(pick(15).keyId, k3.key.id)

    assert.deepEqual(shape(pick(16)), { action: 'deleteRole', actor: 'frank', keyId: undefined, userId: undefined, at: A(14).getTime() })
    assert.deepEqual(pick(16).changes, { role: 'reader', deleted: { rights: ['data:get*'] }, removedFromUsers: ['u1'] })

    assert.equal(pick(17).action, 'putUser')
    assert.equal(pick(18).keyId, k4.key.id)
    assert.deepEqual(shape(pick(19)), { action: 'deleteUser', actor: 'grace', keyId: undefined, userId: 'u2', at: A(17).getTime() })
    assert.deepEqual(pick(19).changes, { deleted: { status: 'active', rights: ['*:*'], roles: [] }, deletedKeys: [k4.key.id] })
    assert.deepEqual(shape(pick(20)), { action: 'deleteUser', actor: 'grace', keyId: k4.key.id, userId: 'u2', at: A(17).getTime() })
    assert.equal((pick(20).changes.deleted as Record<string, unknown>).description, 'of u2')

    const purge = pick(21)
    assert.deepEqual(shape(purge), { action: 'purgeExpired', actor: undefined, keyId: k3.key.id, userId: 'u1', at: at(T0, 9 * DAY).getTime() })
    assert.equal((purge.changes.deleted as Record<string, unknown>).description, 'third')
    assert.equal(store.getKey(k3.key.id), null)
    assert.ok(store.getKey(k1.key.id) && store.getKey(k1b.key.id), 'keys expired exactly 7 days ago stay')

    for (const secret of secrets) assertNoSecret(entries, secret)
    assert.deepEqual(store.verifyAudit(), { ok: true, entries: 21 })
    store.close()
  })

  test('filters: keyId, userId, since, limit (default 100), combined', () => {
    const file = storePath()
    const { store, k1 } = scenario(file)
    const all = store.audit({ limit: 1000 })
    const byKey = store.audit({ keyId: k1.key.id })
    assert.deepEqual(
      byKey.map((e) => e.action),
      ['rotateKey', 'updateKey', 'updateKey', 'createKey'],
    )
    assert.deepEqual(
      byKey,
      all.filter((e) => e.keyId === k1.key.id),
    )
    const byUser = store.audit({ userId: 'u1' })
    assert.deepEqual(
      byUser,
      all.filter((e) => e.userId === 'u1'),
    )
    assert.equal(byUser.length, 14)
    const since = store.audit({ since: A(10) })
    assert.deepEqual(
      since,
      all.filter((e) => e.at.getTime() >= A(10).getTime()),
    )
    assert.deepEqual(
      since.map((e) => e.seq),
      [21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11],
    )
    assert.deepEqual(store.audit({ limit: 3 }), all.slice(0, 3))
    assert.deepEqual(store.audit({ limit: 0 }), [])
    const oldKeyRotation = all.find((e) => e.action === 'rotateKey' && e.keyId === k1.key.id)!
    assert.deepEqual(
      store.audit({ keyId: k1.key.id, since: A(8), limit: 1 }).map((e) => e.seq),
      [oldKeyRotation.seq],
    )
    assert.deepEqual(store.audit({ keyId: 'key_doesnotexist' }), [])
    assert.deepEqual(store.audit({ userId: 'u1', since: at(T0, 10 * DAY) }), [])
    throwsCode(() => store.audit({ limit: -1 }), 'INVALID_ARGUMENT')
    // A whole number too large is refused for its size, not called something it is not.
    throwsCode(() => store.audit({ limit: 2 ** 32 }), 'INVALID_ARGUMENT', 'from 0 to 4294967295')

    for (let i = 0; i < 110; i++) store.putRole({ name: `r${i}`, rights: [] })
    const page = store.audit()
    assert.equal(page.length, 100, 'default limit')
    assert.equal(page[0]!.seq, 131)
    store.close()
  })

  test('filters: action, actor (a part, either case), until; the same on a durable and an in-memory store', () => {
    const file = storePath()
    const { store: durable } = scenario(file)
    const memory = KeyStore.inMemory({ now: A(0) })
    memory.putRole({ name: 'reader', rights: ['data:*'] }, { actor: 'Alice' })
    memory.setNow(A(1))
    memory.putUser({ id: 'u1', rights: ['*:*'] }, { actor: 'bob' })
    memory.setNow(A(2))
    const k = memory.createKey({ userId: 'u1', description: 'k', expiresAt: at(T0, DAY) })
    memory.setNow(A(3))
    memory.setState(k.key.id, 'suspended', { actor: 'ALICE' })
    for (const store of [durable, memory]) {
      const all = store.audit({ limit: 1000 })
      const byAction = store.audit({ action: 'putUser' })
      assert.ok(byAction.length > 0)
      assert.deepEqual(
        byAction,
        all.filter((e) => e.action === 'putUser'),
      )
      const byActor = store.audit({ actor: 'LIC' })
      assert.ok(byActor.length > 0)
      assert.deepEqual(
        byActor,
        all.filter((e) => (e.actor ?? '').toLowerCase().includes('lic')),
      )
      const until = store.audit({ until: A(2) })
      assert.deepEqual(
        until,
        all.filter((e) => e.at.getTime() <= A(2).getTime()),
      )
      assert.deepEqual(
        store.audit({ since: A(1), until: A(1) }),
        all.filter((e) => e.at.getTime() === A(1).getTime()),
      )
      const both = store.audit({ action: 'setState', actor: 'alice', limit: 1 })
      assert.deepEqual(both, all.filter((e) => e.action === 'setState' && /alice/i.test(e.actor ?? '')).slice(0, 1))
      throwsCode(() => store.audit({ action: 'nope' as 'putUser' }), 'INVALID_ARGUMENT')
      throwsCode(() => store.audit({ until: new Date(NaN) }), 'INVALID_ARGUMENT')
    }
    durable.close()
    memory.close()
  })

  test('actor: recorded as given, invalid actors refused and nothing recorded', () => {
    const file = storePath()
    const store = open(file, { now: T0 })
    store.putUser({ id: 'u' }, { actor: 'ops@example.com (ticket #42) — Ünïcode' })
    assert.equal(store.audit()[0]!.actor, 'ops@example.com (ticket #42) — Ünïcode')
    throwsCode(() => store.putUser({ id: 'v' }, { actor: 'bad\nactor' }), 'INVALID_ARGUMENT')
    throwsCode(() => store.putUser({ id: 'v' }, { actor: '' }), 'INVALID_ARGUMENT')
    throwsCode(() => store.putUser({ id: 'v' }, { actor: 'x'.repeat(257) }), 'INVALID_ARGUMENT')
    assert.equal(store.getUser('v'), null)
    assert.equal(store.audit().length, 1)
    store.close()
    const again = open(file, { now: T0 })
    assert.equal(again.audit()[0]!.actor, 'ops@example.com (ticket #42) — Ünïcode')
    again.close()
  })

  test('a key deleted together with its user: audit({ keyId }) shows its deletion', () => {
    const file = storePath()
    const { store, k4 } = scenario(file)
    const history = store.audit({ keyId: k4.key.id })
    assert.ok(history.length >= 2, `the key's history ends at its creation: ${JSON.stringify(history.map((e) => e.action))}`)
    assert.equal(history[0]!.action, 'deleteUser')
    store.close()
  })

  describe('tampering is detected by verifyAudit()', { skip: NO_PYTHON }, () => {
    let pristine = ''
    let seqOfLast = 0

    function ensurePristine(): void {
      if (pristine === '') {
        const file = storePath()
        const { store } = scenario(file)
        seqOfLast = store.audit({ limit: 1 })[0]!.seq
        store.close()
        sql(file)
        pristine = file
      }
    }

    function tampered(statements: Statement[]): KeyStore {
      ensurePristine()
      const copy = storePath()
      fs.copyFileSync(pristine, copy)
      sql(copy, statements)
      return open(copy, { now: at(T0, 9 * DAY) })
    }

    test('an untouched copy verifies', () => {
      const store = tampered([])
      assert.deepEqual(store.verifyAudit(), { ok: true, entries: seqOfLast })
      store.close()
    })

    test("one entry's detail altered → ok: false, firstBadSeq is that entry", () => {
      const store = tampered(["UPDATE audit SET detail = replace(detail, 'suspended', 'active') WHERE seq = 10"])
      assert.deepEqual(only(store.audit({ limit: 100 }), 10).changes, { state: ['active', 'active'] }, 'the change is there to see')
      const report = store.verifyAudit()
      assert.equal(report.ok, false)
      assert.equal(report.firstBadSeq, 10)
      assert.equal(report.entries, 9)
      assert.match(report.problem ?? '', /10/)
      store.close()
    })

    test("one entry's actor, time, key id or action altered → firstBadSeq is that entry", () => {
      ensurePristine()
      const cases: Array<[number, string]> = [
        [1, "UPDATE audit SET actor = 'mallory' WHERE seq = 1"],
        [8, 'UPDATE audit SET actor = NULL WHERE seq = 8'],
        [5, 'UPDATE audit SET at = at + 1 WHERE seq = 5'],
        [14, "UPDATE audit SET key_id = 'key_other' WHERE seq = 14"],
        [11, "UPDATE audit SET action = 'updateKey' WHERE seq = 11"],
        [seqOfLast, 'UPDATE audit SET user_id = NULL WHERE seq = (SELECT max(seq) FROM audit)'],
      ]
      for (const [seq, statement] of cases) {
        const store = tampered([statement])
        const report = store.verifyAudit()
        assert.equal(report.ok, false, statement)
        assert.equal(report.firstBadSeq, seq, statement)
        store.close()
      }
    })

    test('a column altered to a value of another type → that entry reported altered, and why; the listing is STORE_CORRUPT', () => {
      ensurePristine()
      const cases: Array<[number, string]> = [
        [3, "UPDATE audit SET at = 'yesterday' WHERE seq = 3"],
        [6, 'UPDATE audit SET hash = hex(hash) WHERE seq = 6'],
        [9, "UPDATE audit SET actor = CAST('alice' AS BLOB) WHERE seq = 9"],
        [12, "UPDATE audit SET detail = CAST(x'ff' AS TEXT) WHERE seq = 12"],
        [seqOfLast, "UPDATE audit SET key_id = x'00ff' WHERE seq = (SELECT max(seq) FROM audit)"],
      ]
      for (const [seq, statement] of cases) {
        const store = tampered([statement])
        const report = store.verifyAudit()
        // The operator hears why the entry cannot be verified, not only that it was altered.
        const problem = `entry ${seq} was altered: it holds a value keygate cannot read (of another type than keygate writes, or text that is not UTF-8)`
        assert.deepEqual(report, { ok: false, entries: seq - 1, firstBadSeq: seq, problem }, statement)
        throwsCode(() => store.audit({ limit: 1000 }), 'STORE_CORRUPT')
        store.close()
      }
    })

    test('an entry renumbered with no whole number (a rebuilt table) → reported where it stands, or the store refused at open; never verified', () => {
      ensurePristine()
      // Rebuilt as a table whose seq column takes any value (keygate's is the rowid, which does not).
      const rebuilt: Statement[] = [
        'ALTER TABLE audit RENAME TO audit_before',
        'CREATE TABLE audit (seq, at INTEGER NOT NULL, actor TEXT, action TEXT NOT NULL, key_id TEXT, user_id TEXT, detail TEXT NOT NULL, hash BLOB NOT NULL)',
        'INSERT INTO audit SELECT * FROM audit_before',
        'DROP TABLE audit_before',
      ]
      const untouched = tampered(rebuilt)
      assert.deepEqual(untouched.verifyAudit(), { ok: true, entries: seqOfLast }, 'the rebuilt table as such is no damage')
      untouched.close()
      // These had thrown STORE_CORRUPT "Invalid column type Real at index: 0, name: seq" from verifyAudit.
      const reported: Array<[string, number, RegExp]> = [
        ['UPDATE audit SET seq = 4.5 WHERE seq = 5', 5, /numbered with a floating-point number \(4\.5\), not a whole number, where entry 5 should be/],
        ['UPDATE audit SET seq = 5.0 WHERE seq = 5', 5, /numbered with a floating-point number \(5\.0\)/],
        ['UPDATE audit SET seq = NULL WHERE seq = 5', 1, /numbered with nothing \(NULL\), not a whole number, where entry 1 should be/],
      ]
      for (const [statement, firstBadSeq, problem] of reported) {
        const store = tampered([...rebuilt, statement])
        const report = store.verifyAudit()
        assert.equal(report.ok, false, statement)
        assert.equal(report.firstBadSeq, firstBadSeq, statement)
        assert.equal(report.entries, firstBadSeq - 1, statement)
        assert.match(report.problem ?? '', problem, statement)
        const listing = throwsCode(() => store.audit({ limit: 1000 }), 'STORE_CORRUPT', 'not a whole number')
        assert.doesNotMatch(listing.message, /column type/)
        store.close()
      }
      // Text or a blob sorts after every number, as the largest: the open's check of the head
      // meets it first, and refuses the store, naming what it is (never the text itself).
      for (const [statement, what] of [
        ["UPDATE audit SET seq = 'kg_' || hex(randomblob(20)) WHERE seq = 5", 'text'],
        ["UPDATE audit SET seq = x'05' WHERE seq = 5", 'a blob'],
        ['UPDATE audit SET seq = 1e300 WHERE seq = 5', 'a floating-point number (1e300)'],
      ]) {
        const error = throwsCode(() => tampered([...rebuilt, statement]), 'STORE_CORRUPT', `an audit entry is numbered with ${what}, not a whole number`)
        assert.doesNotMatch(error.message, /kg_|column type/, statement)
      }
    })

    test('an entry deleted in the middle → reported missing', () => {
      const store = tampered(['DELETE FROM audit WHERE seq = 8'])
      const report = store.verifyAudit()
      assert.equal(report.ok, false)
      assert.equal(report.firstBadSeq, 8)
      assert.equal(report.entries, 7)
      assert.match(report.problem ?? '', /missing/i)
      store.close()
    })

    test('the last entry deleted → detected', () => {
      const store = tampered(['DELETE FROM audit WHERE seq = (SELECT max(seq) FROM audit)'])
      const report = store.verifyAudit()
      assert.equal(report.ok, false)
      assert.equal(report.firstBadSeq, seqOfLast)
      store.close()
    })

    test('all entries deleted → detected', () => {
      const store = tampered(['DELETE FROM audit'])
      const report = store.verifyAudit()
      assert.equal(report.ok, false)
      assert.equal(report.firstBadSeq, 1)
      store.close()
    })

    test('a tampered trail keeps growing: new entries are chained, the old damage still reported', () => {
      const store = tampered(["UPDATE audit SET detail = replace(detail, 'renamed', 'innocent') WHERE seq = 8"])
      store.putUser({ id: 'after' }, { actor: 'auditor' })
      const report = store.verifyAudit()
      assert.equal(report.ok, false)
      assert.equal(report.firstBadSeq, 8)
      assert.equal(store.audit({ limit: 1 })[0]!.seq, seqOfLast + 1)
      store.close()
    })
  })
})
