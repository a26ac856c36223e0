// The store contract: every admin call and check behaves the same on every kind of store —
// in-memory, SQLite (a real temp file) and PostgreSQL (a database of its own). One suite,
// run once per kind; the durable kinds also keep everything across close and reopen.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'

import { ERROR_CODES, KeyStore, type KeygateError } from '../index.js'
import type { AuditEntry, ErrorCode, KeyFilter, KeyPageQuery, KeyState, StoreOptions } from '../index.js'
import { DAY, HOUR, SECOND, T0, assertNoSecret, at, forgeSecret, issue, plainKey, snapshot, throwsCode, throwsTypeError } from './helpers.js'
import type { Probe } from './helpers.js'
import { assertApiKey, assertAuditEntry, assertAuditReport, assertDecision, assertIssued, assertRole, assertUser } from './support/contract.js'
import { MEMORY, SQLITE, STORE_KINDS } from './support/stores.js'
import type { Place } from './support/stores.js'

/** Frozen at T0, and nothing purged behind the test's back. */
const FROZEN: StoreOptions = { now: T0, purgeExpiredAfterDays: 1e6 }

/** An object whose fields are getters that record each read in `reads`, in order. */
function readsRecorded(fields: Record<string, unknown>, reads: string[]): object {
  const getters: PropertyDescriptorMap = {}
  for (const [field, value] of Object.entries(fields)) {
    getters[field] = {
      enumerable: true,
      get: () => {
        reads.push(field)
        return value
      },
    }
  }
  return Object.defineProperties({}, getters)
}

for (const kind of STORE_KINDS) {
  describe(`store contract: ${kind.name}`, kind.options, () => {
    /** A new, empty store of this kind, frozen at T0, and the place it keeps its state. */
    function fresh(options: StoreOptions = {}): { store: KeyStore; place: Place } {
      const place = kind.place()
      return { store: place.open({ ...FROZEN, ...options }), place }
    }

    /** A store with a role, a user holding it, and an active key of that user. */
    function seeded() {
      const { store, place } = fresh()
      store.putRole({ name: 'reader', rights: ['data:*'] })
      store.putUser({ id: 'integration', rights: ['session:*'], roles: ['reader'] })
      const issued = issue(store, { rules: ['session:*', 'data:entity*'] })
      return { store, place, issued, secret: issued.secret, id: issued.key.id }
    }

    /** Asserts `fn` throws `code` and leaves everything observable (listings, decisions, the audit head) as it was. */
    function refusedUnchanged(store: KeyStore, fn: () => unknown, code: ErrorCode, probes: Probe[] = [], ...messageParts: string[]): KeygateError {
      const before = [snapshot(store, probes), store.audit({ limit: 1 })]
      const error = throwsCode(fn, code, ...messageParts)
      assert.ok((ERROR_CODES as readonly string[]).includes(error.code))
      assert.deepEqual([snapshot(store, probes), store.audit({ limit: 1 })], before, `a refused call (${code}) changed the store`)
      return error
    }

    describe('roles', () => {
      test('putRole returns the role with normalised rights; getRole reads it back', () => {
        const { store } = fresh()
        const role = store.putRole({ name: 'reader', rights: [' data:entityBrowseRecords2 ', 'data:query*'] })
        assertRole(role, 'putRole')
        assert.deepEqual(role, { name: 'reader', rights: ['data:entityBrowseRecords2', 'data:query*'] })
        assert.deepEqual(store.getRole('reader'), role)
        assert.equal(store.getRole('nobody'), null)
      })

      test('putRole replaces a role; listRoles is ordered by name', () => {
        const { store } = fresh()
        for (const name of ['zeta', 'alpha', 'mid']) store.putRole({ name, rights: ['a:b'] })
        store.putRole({ name: 'mid', rights: [] })
        assert.deepEqual(store.listRoles(), [
          { name: 'alpha', rights: ['a:b'] },
          { name: 'mid', rights: [] },
          { name: 'zeta', rights: ['a:b'] },
        ])
      })

      test('deleteRole: true then false, and the role leaves every user holding it', () => {
        const { store } = fresh()
        store.putRole({ name: 'reader', rights: ['data:*'] })
        store.putRole({ name: 'agent', rights: ['session:*'] })
        store.putUser({ id: 'a', roles: ['reader', 'agent'] })
        store.putUser({ id: 'b', roles: ['reader'] })
        assert.equal(store.deleteRole('reader'), true)
        assert.equal(store.deleteRole('reader'), false)
        assert.equal(store.getRole('reader'), null)
        assert.deepEqual(store.getUser('a')!.roles, ['agent'])
        assert.deepEqual(store.getUser('b')!.roles, [])
      })

      test('bad role names and ip= rights are refused and change nothing', () => {
        const { store } = fresh()
        refusedUnchanged(store, () => store.putRole({ name: 'bad name', rights: [] }), 'INVALID_ARGUMENT')
        refusedUnchanged(store, () => store.putRole({ name: '', rights: [] }), 'INVALID_ARGUMENT')
        refusedUnchanged(store, () => store.putRole({ name: 'r', rights: ['ip=10.0.0.0/8'] }), 'INVALID_RULE', [], 'ip=10.0.0.0/8')
        refusedUnchanged(store, () => store.putRole({ name: 'r', rights: ['nocolon'] }), 'INVALID_RULE', [], 'nocolon')
      })
    })

    describe('users', () => {
      test('putUser defaults: active, no rights, no roles', () => {
        const { store } = fresh()
        const user = store.putUser({ id: 'u1' })
        assertUser(user, 'putUser')
        assert.deepEqual(user, { id: 'u1', status: 'active', rights: [], roles: [] })
        assert.deepEqual(store.getUser('u1'), user)
        assert.equal(store.getUser('nobody'), null)
      })

      test('putUser stores status, normalised rights and roles, and replaces a user entirely', () => {
        const { store } = fresh()
        store.putRole({ name: 'reader', rights: ['data:*'] })
        const user = store.putUser({ id: 'svc.sync@acme', status: 'suspended', rights: ['  session:* '], roles: ['reader'] })
        assert.deepEqual(user, { id: 'svc.sync@acme', status: 'suspended', rights: ['session:*'], roles: ['reader'] })
        assert.deepEqual(store.putUser({ id: 'svc.sync@acme' }), { id: 'svc.sync@acme', status: 'active', rights: [], roles: [] })
      })

      test('putUser and putRole of what is already there write and record nothing', () => {
        const { store } = fresh()
        const role = store.putRole({ name: 'reader', rights: ['data:*'] })
        const user = store.putUser({ id: 'svc', status: 'suspended', rights: ['session:*'], roles: ['reader'] })
        const head = store.audit({ limit: 1 })
        assert.deepEqual(store.putRole({ name: 'reader', rights: [' data:* '] }), role)
        assert.deepEqual(store.putUser(store.getUser('svc')!, { expect: 'existing' }), user)
        assert.deepEqual(store.putUser({ ...user, rights: [' session:* '], roles: ['reader', 'reader'] }), user)
        assert.deepEqual(store.audit({ limit: 1 }), head, 'nothing recorded')
        // A change is recorded as before.
        store.putUser({ ...user, status: 'active' })
        assert.deepEqual(store.audit({ limit: 1 })[0]!.changes, { status: ['suspended', 'active'] })
      })

      test("putUser and putRole with expect: 'new' create only, 'existing' replace only; a refusal changes nothing", () => {
        const { store } = seeded()
        refusedUnchanged(store, () => store.putUser({ id: 'integration' }, { expect: 'new' }), 'CONFLICT', [], 'integration', 'already exists')
        refusedUnchanged(store, () => store.putRole({ name: 'reader', rights: [] }, { expect: 'new' }), 'CONFLICT', [], 'reader', 'already exists')
        refusedUnchanged(store, () => store.putUser({ id: 'ghost' }, { expect: 'existing' }), 'UNKNOWN_USER', [], 'ghost')
        refusedUnchanged(store, () => store.putRole({ name: 'ghost', rights: [] }, { expect: 'existing' }), 'UNKNOWN_ROLE', [], 'ghost')
        for (const expect of ['New', 'any', '', 1, null]) {
          refusedUnchanged(store, () => store.putUser({ id: 'x' }, { expect: expect as 'new' }), 'INVALID_ARGUMENT', [], 'options.expect')
          refusedUnchanged(store, () => store.putRole({ name: 'x', rights: [] }, { expect: expect as 'new' }), 'INVALID_ARGUMENT', [], 'options.expect')
        }
        assert.deepEqual(store.putUser({ id: 'fresh' }, { expect: 'new' }), { id: 'fresh', status: 'active', rights: [], roles: [] })
        assert.deepEqual(store.putUser({ id: 'fresh', status: 'suspended' }, { expect: 'existing', actor: 'ops' }).status, 'suspended')
        assert.deepEqual(store.putRole({ name: 'writer', rights: ['a:b'] }, { expect: 'new' }), { name: 'writer', rights: ['a:b'] })
        assert.deepEqual(store.putRole({ name: 'writer', rights: [] }, { expect: 'existing' }), { name: 'writer', rights: [] })
        assert.equal(store.audit({ limit: 1 })[0]!.actor, undefined)
        assert.equal(store.audit({ actor: 'ops' }).length, 1)
      })

      // Durable kinds only: an in-memory store has no second handle on the same state.
      if (kind.durable)
        test("expect is checked inside the write: another handle's create or delete a moment before counts", () => {
          const { store, place } = seeded()
          const other = place.open(FROZEN)
          try {
            // At once, before `other` has necessarily heard of either change by itself.
            store.putUser({ id: 'made-elsewhere' })
            throwsCode(() => other.putUser({ id: 'made-elsewhere', rights: ['a:b'] }, { expect: 'new' }), 'CONFLICT', 'made-elsewhere')
            store.putRole({ name: 'role-elsewhere', rights: [] })
            throwsCode(() => other.putRole({ name: 'role-elsewhere', rights: ['a:b'] }, { expect: 'new' }), 'CONFLICT', 'role-elsewhere')
            store.deleteUser('made-elsewhere')
            throwsCode(() => other.putUser({ id: 'made-elsewhere' }, { expect: 'existing' }), 'UNKNOWN_USER', 'made-elsewhere')
            store.deleteRole('role-elsewhere')
            throwsCode(() => other.putRole({ name: 'role-elsewhere', rights: [] }, { expect: 'existing' }), 'UNKNOWN_ROLE', 'role-elsewhere')
            assert.equal(store.getUser('made-elsewhere'), null)
            assert.equal(store.getRole('role-elsewhere'), null)
          } finally {
            other.close()
          }
        })

      test('listUsers is ordered by id', () => {
        const { store } = fresh()
        for (const id of ['c', 'a', 'b']) store.putUser({ id })
        assert.deepEqual(
          store.listUsers().map((u) => u.id),
          ['a', 'b', 'c'],
        )
      })

      test('an unknown role, an unknown status, a bad id or an ip= right is refused and changes nothing', () => {
        const { store } = seeded()
        refusedUnchanged(store, () => store.putUser({ id: 'integration', roles: ['ghost'] }), 'UNKNOWN_ROLE', [], 'ghost')
        refusedUnchanged(store, () => store.putUser({ id: 'x', status: 'sleeping' as 'active' }), 'INVALID_ARGUMENT', [], 'sleeping')
        refusedUnchanged(store, () => store.putUser({ id: 'a/b' }), 'INVALID_ARGUMENT')
        refusedUnchanged(store, () => store.putUser({ id: 'x'.repeat(129) }), 'INVALID_ARGUMENT')
        refusedUnchanged(store, () => store.putUser({ id: 'x', rights: ['ip=1.2.3.4'] }), 'INVALID_RULE')
      })

      test('replacing a user keeps its keys, which follow the new rights at once', () => {
        const { store, secret, id } = seeded()
        assert.equal(store.isAllowed(secret, 'session', 'getSessionInfo'), true)
        store.putUser({ id: 'integration', rights: [] })
        assert.ok(store.getKey(id))
        assert.equal(store.explain(secret, 'session', 'getSessionInfo').reason, 'user_lacks_right')
      })

      test("deleteUser: true then false; the user's keys go with it, and only those", () => {
        const { store, secret, id } = seeded()
        store.putUser({ id: 'other', rights: ['*:*'] })
        const other = issue(store, { userId: 'other' })
        assert.equal(store.deleteUser('integration'), true)
        assert.equal(store.deleteUser('integration'), false)
        assert.equal(store.getUser('integration'), null)
        assert.equal(store.getKey(id), null)
        assert.equal(store.explain(secret, 'session', 'x').reason, 'unknown_key')
        assert.deepEqual(
          store.listKeys().map((k) => k.id),
          [other.key.id],
        )
        assert.equal(store.isAllowed(other.secret, 'any', 'thing'), true)
      })

      test('a suspended or archived user cannot use its keys; active again, it can', () => {
        const { store, secret } = seeded()
        for (const status of ['suspended', 'archived'] as const) {
          store.putUser({ id: 'integration', status, rights: ['session:*'], roles: ['reader'] })
          assert.equal(store.explain(secret, 'session', 'x').reason, 'user_inactive')
        }
        store.putUser({ id: 'integration', rights: ['session:*'], roles: ['reader'] })
        assert.equal(store.isAllowed(secret, 'session', 'x'), true)
      })
    })

    describe('effective rights', () => {
      test('own rights, then each existing role in the user order, and their union once each', () => {
        const { store } = fresh()
        store.putRole({ name: 'reader', rights: ['data:*', 'session:getSessionInfo'] })
        store.putRole({ name: 'sm', rights: ['apps/sm/*:*'] })
        store.putUser({ id: 'u', rights: ['session:getSessionInfo'], roles: ['sm', 'reader'] })
        assert.deepEqual(store.effectiveRights('u'), {
          own: ['session:getSessionInfo'],
          byRole: [
            { role: 'sm', rights: ['apps/sm/*:*'] },
            { role: 'reader', rights: ['data:*', 'session:getSessionInfo'] },
          ],
          all: ['session:getSessionInfo', 'apps/sm/*:*', 'data:*'],
        })
        assert.equal(store.effectiveRights('nobody'), null)
      })

      test("a change of a role applies to the very next check of its users' keys", () => {
        const { store, secret } = seeded()
        assert.equal(store.isAllowed(secret, 'data', 'entityBrowse'), true)
        store.putRole({ name: 'reader', rights: [] })
        assert.equal(store.explain(secret, 'data', 'entityBrowse').reason, 'user_lacks_right')
        store.putRole({ name: 'reader', rights: ['data:entity*'] })
        assert.equal(store.isAllowed(secret, 'data', 'entityBrowse'), true)
        store.deleteRole('reader')
        assert.equal(store.isAllowed(secret, 'data', 'entityBrowse'), false)
      })

      test('key rules narrow the rights, never widen them', () => {
        const { store } = fresh()
        store.putUser({ id: 'integration', rights: ['session:*'] })
        const { secret } = issue(store, { rules: ['admin:*', 'session:getSessionInfo'] })
        assert.equal(store.isAllowed(secret, 'session', 'getSessionInfo'), true)
        assert.equal(store.explain(secret, 'admin', 'userCreate').reason, 'user_lacks_right')
        assert.equal(store.explain(secret, 'session', 'userLogon').reason, 'no_matching_rule')
      })
    })

    describe('createKey', () => {
      test('returns the key and its secret once; getKey shows the same key, never the secret', () => {
        const { store } = fresh()
        store.putUser({ id: 'integration', rights: ['*:*'] })
        const issued = store.createKey({ userId: 'integration', description: 'sync job', expiresAt: at(T0, 30 * DAY), rules: ['IP=10.0.0.0/8', ' data:* '] })
        assertIssued(issued, store, 'createKey')
        const { key, secret } = issued
        assert.equal(key.state, 'active')
        assert.deepEqual(key.rules, ['ip=10.0.0.0/8', 'data:*'])
        assert.equal(key.createdAt.getTime(), T0.getTime())
        assert.equal(key.updatedAt.getTime(), T0.getTime())
        assert.equal(key.lastUsedAt, null)
        assert.deepEqual(store.getKey(key.id), key)
        assertNoSecret([store.getKey(key.id), store.listKeys(), store.audit()], secret)
      })

      test("state 'suspended' makes a suspended key; 'revoked' or another state is INVALID_STATE", () => {
        const { store } = seeded()
        const { key, secret } = issue(store, { state: 'suspended' })
        assert.equal(key.state, 'suspended')
        assert.equal(store.explain(secret, 'session', 'x').reason, 'suspended')
        refusedUnchanged(store, () => issue(store, { state: 'revoked' as 'active' }), 'INVALID_STATE')
        refusedUnchanged(store, () => issue(store, { state: 'paused' as 'active' }), 'INVALID_STATE', [], 'paused')
      })

      test('an unknown user, a bad rule or a bad expiry is refused and changes nothing', () => {
        const { store, secret } = seeded()
        const probes = [{ secret, service: 'session', api: 'x' }]
        refusedUnchanged(store, () => issue(store, { userId: 'ghost' }), 'UNKNOWN_USER', probes, 'ghost')
        refusedUnchanged(store, () => issue(store, { rules: ['ip=300.1.1.1'] }), 'INVALID_RULE', probes, 'ip=300.1.1.1')
        refusedUnchanged(store, () => issue(store, { expiresAt: undefined as unknown as Date }), 'EXPIRY_REQUIRED', probes)
        refusedUnchanged(store, () => issue(store, { expiresAt: T0 }), 'EXPIRY_IN_PAST', probes)
        refusedUnchanged(store, () => issue(store, { expiresAt: at(T0, 731 * DAY) }), 'EXPIRY_TOO_FAR', probes)
        refusedUnchanged(store, () => issue(store, { description: 'x'.repeat(1025) }), 'INVALID_ARGUMENT', probes)
      })

      test('a description holding NUL is INVALID_ARGUMENT on every store (PostgreSQL text cannot hold it), creating or updating', () => {
        const { store, secret, id } = seeded()
        const probes = [{ secret, service: 'session', api: 'x' }]
        refusedUnchanged(store, () => issue(store, { description: 'a\u0000b' }), 'INVALID_ARGUMENT', probes, 'NUL')
        refusedUnchanged(store, () => store.updateKey(id, { description: '\u0000' }), 'INVALID_ARGUMENT', probes, 'NUL')
      })

      test('maxLifetimeDays bounds the expiry; exactly the limit is allowed', () => {
        const { store } = fresh({ maxLifetimeDays: 30 })
        store.putUser({ id: 'integration', rights: ['*:*'] })
        assert.equal(store.maxLifetimeDays, 30)
        issue(store, { expiresAt: at(T0, 30 * DAY) })
        throwsCode(() => issue(store, { expiresAt: at(T0, 30 * DAY + 1) }), 'EXPIRY_TOO_FAR')
      })

      test('keyPrefix: secrets carry it; a secret of another prefix is malformed here', () => {
        const { store } = fresh({ keyPrefix: 'acme' })
        store.putUser({ id: 'integration', rights: ['*:*'] })
        const { secret } = issue(store)
        assert.equal(store.keyPrefix, 'acme')
        assert.match(secret, /^acme_[0-9A-Za-z]{49}$/)
        assert.equal(store.isAllowed(secret, 's', 'a'), true)
        assert.equal(store.explain(forgeSecret('kg'), 's', 'a').reason, 'malformed_key')
      })
    })

    describe('reading keys', () => {
      test('listKeys is newest first and filters by user and state', () => {
        const { store } = seeded()
        store.putUser({ id: 'other', rights: ['*:*'] })
        store.setNow(at(T0, HOUR))
        const a = issue(store, { userId: 'other' })
        store.setNow(at(T0, 2 * HOUR))
        const b = issue(store, { state: 'suspended' })
        const all = store.listKeys()
        for (const [i, k] of all.entries()) assertApiKey(k, `listKeys()[${i}]`)
        assert.equal(all.length, 3)
        assert.deepEqual(
          all.slice(0, 2).map((k) => k.id),
          [b.key.id, a.key.id],
        )
        assert.deepEqual(
          store.listKeys({ userId: 'other' }).map((k) => k.id),
          [a.key.id],
        )
        assert.deepEqual(
          store.listKeys({ state: 'suspended' }).map((k) => k.id),
          [b.key.id],
        )
        assert.deepEqual(store.listKeys({ userId: 'other', state: 'suspended' }), [])
        assert.deepEqual(
          all.map(plainKey),
          all.map((k) => plainKey(store.getKey(k.id))),
        )
      })

      /** Every key of `query`'s listing, page by page, and the size of each page. */
      function walk(store: KeyStore, query: KeyPageQuery): { ids: string[]; sizes: number[] } {
        const ids: string[] = []
        const sizes: number[] = []
        let after = query.after
        do {
          const page = store.listKeysPage({ ...query, after })
          for (const [i, k] of page.keys.entries()) assertApiKey(k, `listKeysPage().keys[${i}]`)
          ids.push(...page.keys.map((k) => k.id))
          sizes.push(page.keys.length)
          assert.ok(page.next === null || typeof page.next === 'string')
          after = page.next ?? undefined
          assert.ok(sizes.length <= 100, 'paging does not end')
        } while (after !== undefined)
        return { ids, sizes }
      }

      test('listKeysPage walks the same listing as listKeys, in pages of at most limit, ties of a frozen clock included', () => {
        const { store } = seeded()
        store.putUser({ id: 'other', rights: ['*:*'] })
        // Seven keys at T0 (a tie broken by creation order), four later, some suspended, some another user's.
        for (let i = 0; i < 7; i++) issue(store, { userId: i % 3 === 0 ? 'other' : 'integration' })
        for (let i = 1; i <= 4; i++) {
          store.setNow(at(T0, i * HOUR))
          issue(store, { state: i % 2 === 0 ? 'suspended' : 'active' })
        }
        const filters: KeyFilter[] = [
          {},
          { userId: 'integration' },
          { userId: 'other' },
          { state: 'suspended' },
          { userId: 'other', state: 'suspended' },
          { userId: 'nobody' },
        ]
        for (const filter of filters) {
          const whole = store.listKeys(filter).map((k) => k.id)
          for (const limit of [1, 2, 3, 5, whole.length, whole.length + 1, 1000]) {
            if (limit < 1) continue
            const { ids, sizes } = walk(store, { ...filter, limit })
            assert.deepEqual(ids, whole, `${JSON.stringify(filter)} in pages of ${limit}`)
            assert.ok(
              sizes.slice(0, -1).every((n) => n === limit),
              `only the last page is short: ${sizes}`,
            )
            // A page that ends the listing says so: no empty page after a full one.
            assert.ok(sizes.length === 1 || sizes.at(-1)! > 0, `an empty last page: ${sizes}`)
          }
        }
        // The default page is 100 keys.
        for (let i = 0; i < 95; i++) issue(store)
        const first = store.listKeysPage()
        assert.equal(first.keys.length, 100)
        assert.deepEqual(first.keys.map(plainKey), store.listKeys().slice(0, 100).map(plainKey))
        assert.equal(store.listKeysPage({ after: first.next! }).keys.length, 7)
      })

      test('a page deleted, revoked or added to between pages: the next page neither fails, skips nor repeats a key still there', () => {
        const { store, id: seededId } = seeded()
        for (let i = 0; i < 8; i++) {
          store.setNow(at(T0, i * SECOND))
          issue(store)
        }
        const whole = store.listKeys().map((k) => k.id)
        const first = store.listKeysPage({ limit: 3 })
        assert.deepEqual(
          first.keys.map((k) => k.id),
          whole.slice(0, 3),
        )
        // The page's last key (the cursor's own) and one further on are deleted; one is revoked; a newer key is made.
        assert.equal(store.deleteKey(whole[2]!), true)
        assert.equal(store.deleteKey(whole[5]!), true)
        store.setState(whole[4]!, 'revoked')
        store.setNow(at(T0, DAY / 2))
        const newer = issue(store)
        const rest = walk(store, { limit: 3, after: first.next! }).ids
        assert.deepEqual(
          rest,
          whole.slice(3).filter((id) => id !== whole[5]),
        )
        assert.ok(!rest.includes(newer.key.id), 'a key newer than the first page is not in a later one')
        assert.ok(rest.includes(seededId))
        // Filtered by state, the revoked key is left out of the pages after the cursor too.
        assert.deepEqual(
          walk(store, { state: 'active', limit: 2, after: first.next! }).ids,
          rest.filter((id) => id !== whole[4]),
        )
      })

      test('listKeysPage refuses a bad limit or cursor with INVALID_ARGUMENT, naming the field but never echoing the text', () => {
        const { store, id } = seeded()
        issue(store)
        const good = store.listKeysPage({ limit: 1 }).next!
        const bad: Array<[unknown, string]> = [
          [{ limit: 0 }, 'query.limit'],
          [{ limit: 1001 }, 'query.limit'],
          [{ limit: 2.5 }, 'query.limit'],
          [{ limit: -1 }, 'query.limit'],
          [{ limit: '10' }, 'query.limit'],
          [{ limit: Number.NaN }, 'query.limit'],
          [{ after: null }, 'query.after'],
          [{ after: 7 }, 'query.after'],
          [{ after: '' }, 'after'],
          [{ after: id }, 'after'],
          [{ after: `${good} ` }, 'after'],
          [{ after: good.toUpperCase() }, 'after'],
          [{ after: good.replace(/\.(\d+)$/, '.0$1') }, 'after'],
          [{ after: 'kp1.1.99999999999999999999' }, 'after'],
          [{ cursor: good }, 'cursor'],
          [{ userId: 5 }, 'query.userId'],
        ]
        for (const [query, named] of bad) {
          const error = refusedUnchanged(store, () => store.listKeysPage(query as KeyPageQuery), 'INVALID_ARGUMENT' as ErrorCode, [], named)
          if (typeof (query as { after?: unknown }).after === 'string' && (query as { after: string }).after.length > 8) {
            assert.ok(!error.message.includes((query as { after: string }).after.trim()), `the cursor was echoed: ${error.message}`)
          }
        }
        refusedUnchanged(store, () => store.listKeysPage({ state: 'gone' as KeyState }), 'INVALID_STATE', [], 'gone')
        // A secret pasted as the cursor is neither accepted nor shown.
        const { secret } = issue(store)
        const error = throwsCode(() => store.listKeysPage({ after: secret }), 'INVALID_ARGUMENT')
        assertNoSecret(error.message, secret)
      })

      test('search keeps the keys whose id, description or hint holds the text, any letter case, in listKeys and in every page', () => {
        const { store, id: seededId } = seeded()
        store.putUser({ id: 'other', rights: ['*:*'] })
        const descriptions = ['Nightly BILLING export', 'billing webhook', 'ΟΔΟΣ sync', 'οδος backup', 'Straße import', "rapport d'ÉTÉ", '']
        for (let i = 0; i < 14; i++) {
          store.setNow(at(T0, (i % 3) * SECOND))
          issue(store, { userId: i % 2 ? 'other' : 'integration', description: descriptions[i % descriptions.length]!, state: i % 4 === 3 ? 'suspended' : 'active' })
        }
        const whole = store.listKeys()
        const seededKey = whole.find((k) => k.id === seededId)!
        // The fold the store documents: lower case a character at a time, a final sigma as a sigma.
        const fold = (text: string) => [...text].map((c) => (c === 'ς' ? 'σ' : c).toLowerCase()).join('')
        const expected = (filter: KeyFilter) =>
          whole
            .filter((k) => (filter.userId === undefined || k.userId === filter.userId) && (filter.state === undefined || k.state === filter.state))
            .filter((k) => [k.id, k.description, k.hint].some((field) => fold(field).includes(fold(filter.search ?? ''))))
            .map((k) => k.id)
        const searches = ['billing', 'BILLING', 'οδοσ', 'ΟΔΟΣ', 'ς', 'STRAẞE', 'été', '', 'absent', seededKey.id.slice(4, 12).toLowerCase(), seededKey.hint.toUpperCase()]
        let found = 0
        for (const search of searches) {
          for (const filter of [
            { search },
            { search, userId: 'other' },
            { search, state: 'suspended' as const },
            { search, userId: 'integration', state: 'active' as const },
          ]) {
            const ids = expected(filter)
            found += ids.length
            assert.deepEqual(
              store.listKeys(filter).map((k) => k.id),
              ids,
              JSON.stringify(filter),
            )
            for (const limit of [1, 3, 1000]) assert.deepEqual(walk(store, { ...filter, limit }).ids, ids, `${JSON.stringify(filter)} in pages of ${limit}`)
          }
        }
        assert.ok(found > 50, `the searches found too little (${found})`)
        assert.equal(store.listKeys({ search: 'billing' }).length, 4)
        assert.equal(store.listKeys({ search: 'ΟΔΟΣ' }).length, 4, 'σ and ς find each other')
        assert.equal(store.listKeys({ search: 'strasse' }).length, 0, 'lower case only: ß is not ss')
        assert.ok(
          store.listKeys({ search: seededKey.id.toLowerCase() }).some((k) => k.id === seededId),
          'an id in lower case',
        )
      })

      test('a bad search is INVALID_ARGUMENT, naming the field, never quoting the text', () => {
        const { store } = seeded()
        const { secret } = issue(store)
        const longest = 'é'.repeat(1024)
        assert.deepEqual(store.listKeys({ search: longest }), [])
        for (const [call, named] of [
          [(search: unknown) => store.listKeys({ search } as KeyFilter), 'filter.search'],
          [(search: unknown) => store.listKeysPage({ search } as KeyPageQuery), 'query.search'],
        ] as const) {
          for (const search of [7, null, ['billing'], {}, 'a\uD800b']) refusedUnchanged(store, () => call(search), 'INVALID_ARGUMENT' as ErrorCode, [], named)
          const long = `${secret} ${'x'.repeat(1024)}`
          const error = refusedUnchanged(store, () => call(long), 'INVALID_ARGUMENT' as ErrorCode, [], 'search')
          assertNoSecret(error.message, secret)
          assert.ok(!error.message.includes('xxxx'), error.message)
        }
      })

      test('getKey of an unknown, malformed or deleted id is null', () => {
        const { store, id } = seeded()
        assert.equal(store.getKey('key_doesNotExist'), null)
        assert.equal(store.getKey('not a key id'), null)
        store.deleteKey(id)
        assert.equal(store.getKey(id), null)
      })
    })

    describe('key states', () => {
      test('suspend, then activate: the key stops and starts working at once', () => {
        const { store, secret, id } = seeded()
        assert.equal(store.isAllowed(secret, 'session', 'x'), true)
        const suspended = store.setState(id, 'suspended')
        assert.equal(suspended.state, 'suspended')
        assert.equal(store.explain(secret, 'session', 'x').reason, 'suspended')
        assert.equal(store.setState(id, 'active').state, 'active')
        assert.equal(store.isAllowed(secret, 'session', 'x'), true)
      })

      test('revoke is final: REVOKED_IS_FINAL naming the key, and nothing changes', () => {
        const { store, secret, id } = seeded()
        store.setState(id, 'revoked')
        assert.equal(store.explain(secret, 'session', 'x').reason, 'revoked')
        const probes = [{ secret, service: 'session', api: 'x' }]
        refusedUnchanged(store, () => store.setState(id, 'active'), 'REVOKED_IS_FINAL', probes, id)
        refusedUnchanged(store, () => store.setState(id, 'suspended'), 'REVOKED_IS_FINAL', probes)
        refusedUnchanged(store, () => store.updateKey(id, { description: 'again' }), 'REVOKED_IS_FINAL', probes)
        refusedUnchanged(store, () => store.rotateKey(id), 'REVOKED_IS_FINAL', probes)
        assert.equal(store.setState(id, 'revoked').state, 'revoked', 'revoking a revoked key is a no-op')
      })

      test('an unknown state is INVALID_STATE; an unknown key is UNKNOWN_KEY', () => {
        const { store, id } = seeded()
        refusedUnchanged(store, () => store.setState(id, 'paused' as 'active'), 'INVALID_STATE', [], 'paused')
        refusedUnchanged(store, () => store.setState('key_nope', 'suspended'), 'UNKNOWN_KEY', [], 'key_nope')
      })
    })

    describe('updateKey', () => {
      test('changes description, rules and expiry; absent fields stay; updatedAt moves', () => {
        const { store, secret, id, issued } = seeded()
        store.setNow(at(T0, HOUR))
        const updated = store.updateKey(id, { description: 'renamed', rules: ['session:getSessionInfo'] })
        assert.equal(updated.description, 'renamed')
        assert.deepEqual(updated.rules, ['session:getSessionInfo'])
        assert.equal(updated.expiresAt.getTime(), issued.key.expiresAt.getTime())
        assert.equal(updated.updatedAt.getTime(), at(T0, HOUR).getTime())
        assert.equal(updated.createdAt.getTime(), T0.getTime())
        assert.equal(store.explain(secret, 'session', 'userLogon').reason, 'no_matching_rule')
        assert.equal(store.updateKey(id, { expiresAt: at(T0, 10 * DAY) }).expiresAt.getTime(), at(T0, 10 * DAY).getTime())
        assert.deepEqual(store.getKey(id)!.rules, ['session:getSessionInfo'])
      })

      test('values the key already has are no change: updatedAt stays, nothing is recorded, no other admin gets CONFLICT', () => {
        const { store, id, issued } = seeded()
        store.setNow(at(T0, HOUR))
        const head = store.audit({ limit: 1 })
        const { description, rules, expiresAt } = issued.key
        const same = store.updateKey(id, { description, rules: rules.map((rule) => ` ${rule} `), expiresAt })
        assert.equal(same.updatedAt.getTime(), issued.key.updatedAt.getTime(), 'updatedAt stays')
        assert.deepEqual(store.audit({ limit: 1 }), head, 'nothing recorded')
        // An admin who read the key before that save still gets through.
        const mine = store.updateKey(id, { description: 'mine' }, { expectedUpdatedAt: issued.key.updatedAt })
        assert.equal(mine.description, 'mine')
        assert.equal(mine.updatedAt.getTime(), at(T0, HOUR).getTime())
      })

      test('the expiry a key has, sent back with an edit, is no change of it: an expired key can still be renamed', () => {
        const { store, id, issued } = seeded()
        store.setNow(at(issued.key.expiresAt, HOUR))
        const { expiresAt } = issued.key
        const renamed = store.updateKey(id, { description: 'renamed', rules: issued.key.rules, expiresAt })
        assert.equal(renamed.description, 'renamed')
        assert.equal(renamed.expiresAt.getTime(), expiresAt.getTime())
        // A new expiry meets the limits as ever.
        refusedUnchanged(store, () => store.updateKey(id, { description: 'x', expiresAt: at(expiresAt, SECOND) }), 'EXPIRY_IN_PAST')
        refusedUnchanged(store, () => store.updateKey(id, { description: 'x', expiresAt: null }), 'EXPIRY_REQUIRED')
      })

      // Durable kinds only: a process that opens the store with a lower maxLifetimeDays.
      if (kind.durable)
        test('the expiry a key has is no change of it under a lowered maxLifetimeDays either', () => {
          const { store, place, id } = seeded()
          const far = store.updateKey(id, { expiresAt: at(T0, 300 * DAY) })
          const strict = place.open({ ...FROZEN, maxLifetimeDays: 30 })
          try {
            assert.equal(strict.updateKey(id, { description: 'renamed', expiresAt: far.expiresAt }).description, 'renamed')
            throwsCode(() => strict.updateKey(id, { expiresAt: at(far.expiresAt, -SECOND) }), 'EXPIRY_TOO_FAR')
          } finally {
            strict.close()
          }
        })

      test('unknown key, bad rules and bad expiry are refused and change nothing', () => {
        const { store, id, secret } = seeded()
        const probes = [{ secret, service: 'session', api: 'x' }]
        refusedUnchanged(store, () => store.updateKey('key_nope', { description: 'x' }), 'UNKNOWN_KEY', probes)
        refusedUnchanged(store, () => store.updateKey(id, { rules: ['bad rule'] }), 'INVALID_RULE', probes)
        refusedUnchanged(store, () => store.updateKey(id, { expiresAt: null }), 'EXPIRY_REQUIRED', probes)
        refusedUnchanged(store, () => store.updateKey(id, { expiresAt: at(T0, -1) }), 'EXPIRY_IN_PAST', probes)
      })
    })

    describe('expectedUpdatedAt (optimistic concurrency)', () => {
      test('the updatedAt last read lets the change through', () => {
        const { store, id, issued } = seeded()
        store.setNow(at(T0, SECOND))
        const updated = store.updateKey(id, { description: 'b' }, { expectedUpdatedAt: issued.key.updatedAt })
        store.setNow(at(T0, 2 * SECOND))
        assert.equal(store.setState(id, 'suspended', { expectedUpdatedAt: updated.updatedAt }).state, 'suspended')
      })

      test('a stale updatedAt is CONFLICT for updateKey, setState and rotateKey, and nothing changes', () => {
        const { store, id, issued, secret } = seeded()
        store.setNow(at(T0, SECOND))
        store.updateKey(id, { description: 'changed by someone else' })
        const stale = { expectedUpdatedAt: issued.key.updatedAt }
        const probes = [{ secret, service: 'session', api: 'x' }]
        refusedUnchanged(store, () => store.updateKey(id, { description: 'mine' }, stale), 'CONFLICT', probes)
        refusedUnchanged(store, () => store.setState(id, 'revoked', stale), 'CONFLICT', probes)
        refusedUnchanged(store, () => store.rotateKey(id, stale), 'CONFLICT', probes)
      })

      test('updateKey, setState and rotateKey read each option once (a getter runs once)', () => {
        const { store, id } = seeded()
        const reads: string[] = []
        const counted = (expectedUpdatedAt: Date) => readsRecorded({ actor: 'ops', expectedUpdatedAt }, reads)
        store.setNow(at(T0, SECOND))
        const updated = store.updateKey(id, { description: 'b' }, counted(store.getKey(id)!.updatedAt))
        assert.deepEqual(reads.splice(0), ['actor', 'expectedUpdatedAt'], 'updateKey')
        store.setNow(at(T0, 2 * SECOND))
        const suspended = store.setState(id, 'suspended', counted(updated.updatedAt))
        assert.deepEqual(reads.splice(0), ['actor', 'expectedUpdatedAt'], 'setState')
        store.setNow(at(T0, 3 * SECOND))
        store.rotateKey(id, counted(suspended.updatedAt))
        assert.deepEqual(reads.splice(0), ['actor', 'expectedUpdatedAt'], 'rotateKey')
        assert.equal(store.getKey(id)!.state, 'revoked')
      })

      test('opening a store reads each option once (a getter runs once)', () => {
        const reads: string[] = []
        const options = readsRecorded({ maxLifetimeDays: 30, onError: () => {} }, reads)
        const store = kind.place().open(options)
        assert.deepEqual(reads, ['maxLifetimeDays', 'onError'])
        assert.equal(store.maxLifetimeDays, 30)
      })
    })

    describe('rotateKey', () => {
      test('the new key keeps user, description, rules, expiry; the old one is revoked at once by default', () => {
        const { store, secret, id, issued } = seeded()
        const rotated = store.rotateKey(id)
        assertIssued(rotated, store, 'rotateKey')
        assert.notEqual(rotated.key.id, id)
        assert.equal(rotated.key.userId, 'integration')
        assert.equal(rotated.key.description, issued.key.description)
        assert.deepEqual(rotated.key.rules, issued.key.rules)
        assert.equal(rotated.key.expiresAt.getTime(), issued.key.expiresAt.getTime())
        assert.equal(store.getKey(id)!.state, 'revoked')
        assert.equal(store.explain(secret, 'session', 'x').reason, 'revoked')
        assert.equal(store.isAllowed(rotated.secret, 'session', 'x'), true)
        assert.equal(store.listKeys()[0]!.id, rotated.key.id)
      })

      test('with overlapSeconds the old secret works until the overlap ends', () => {
        const { store, secret, id } = seeded()
        const rotated = store.rotateKey(id, { overlapSeconds: 600 })
        assert.equal(store.isAllowed(secret, 'session', 'x'), true)
        assert.equal(store.getKey(id)!.expiresAt.getTime(), at(T0, 600 * SECOND).getTime())
        store.setNow(at(T0, 600 * SECOND))
        assert.equal(store.explain(secret, 'session', 'x').reason, 'expired')
        assert.equal(store.isAllowed(rotated.secret, 'session', 'x'), true)
      })

      test('an unknown key is UNKNOWN_KEY; a bad overlap is INVALID_ARGUMENT', () => {
        const { store, id } = seeded()
        refusedUnchanged(store, () => store.rotateKey('key_nope'), 'UNKNOWN_KEY')
        refusedUnchanged(store, () => store.rotateKey(id, { overlapSeconds: -1 }), 'INVALID_ARGUMENT')
      })
    })

    describe('deleteKey', () => {
      test('true then false; the secret becomes unknown', () => {
        const { store, secret, id } = seeded()
        assert.equal(store.deleteKey(id), true)
        assert.equal(store.deleteKey(id), false)
        assert.equal(store.explain(secret, 'session', 'x').reason, 'unknown_key')
        assert.deepEqual(store.listKeys(), [])
      })
    })

    describe('checks', () => {
      test('allowed: the first matching rule is named; explain agrees with isAllowed', () => {
        const { store, secret, id } = seeded()
        const decision = store.explain(secret, 'data', 'entityBrowse')
        assertDecision(decision, 'explain')
        assert.deepEqual(decision, { allowed: true, reason: 'allowed', keyId: id, userId: 'integration', matchedRule: 'data:entity*' })
        assert.equal(store.isAllowed(secret, 'data', 'entityBrowse'), true)
      })

      test('no matching rule, a right the user lacks, a malformed and an unknown secret', () => {
        const { store, secret, id } = seeded()
        assert.deepEqual(store.explain(secret, 'data', 'queryExec'), { allowed: false, reason: 'no_matching_rule', keyId: id, userId: 'integration' })
        assert.equal(store.explain(secret, 'admin', 'x').reason, 'user_lacks_right')
        assert.deepEqual(store.explain('kg_short', 'session', 'x'), { allowed: false, reason: 'malformed_key' })
        assert.deepEqual(store.explain(forgeSecret(), 'session', 'x'), { allowed: false, reason: 'unknown_key' })
        assert.equal(store.isAllowed(forgeSecret(), 'session', 'x'), false)
      })

      test('IP rules: inside the range allowed, outside or missing ip_not_allowed', () => {
        const { store } = fresh()
        store.putUser({ id: 'integration', rights: ['*:*'] })
        const { secret } = issue(store, { rules: ['ip=10.0.0.0/8', 'ip=2001:db8::/32'] })
        assert.equal(store.isAllowed(secret, 's', 'a', '10.1.2.3'), true)
        assert.equal(store.isAllowed(secret, 's', 'a', '2001:db8::1'), true)
        assert.equal(store.explain(secret, 's', 'a', '192.168.0.1').reason, 'ip_not_allowed')
        assert.equal(store.explain(secret, 's', 'a').reason, 'ip_not_allowed')
      })

      test('a key is usable while now < expiresAt, expired from that instant', () => {
        const { store, secret, issued } = seeded()
        store.setNow(at(issued.key.expiresAt, -1))
        assert.equal(store.isAllowed(secret, 'session', 'x'), true)
        store.setNow(issued.key.expiresAt)
        assert.equal(store.explain(secret, 'session', 'x').reason, 'expired')
      })

      test('explainKey diagnoses by key id; an unknown id is unknown_key', () => {
        const { store, id } = seeded()
        assert.deepEqual(store.explainKey(id, 'session', 'x'), { allowed: true, reason: 'allowed', keyId: id, userId: 'integration', matchedRule: 'session:*' })
        assert.equal(store.explainKey(id, 'admin', 'x').reason, 'user_lacks_right')
        assert.equal(store.explainKey('key_nope', 'session', 'x').reason, 'unknown_key')
      })

      test('a non-string argument is a TypeError that is a KeygateError', () => {
        const { store, secret } = seeded()
        throwsTypeError(() => store.isAllowed(42 as unknown as string, 'session', 'x'))
        throwsTypeError(() => store.explain(secret, null as unknown as string, 'x'))
        throwsTypeError(() => store.isAllowed(secret, 'session', 'x', 7 as unknown as string))
      })

      test('an allowed check sets lastUsedAt; explain and a denied check do not', () => {
        const { store, secret, id } = seeded()
        store.explain(secret, 'session', 'x')
        store.isAllowed(secret, 'admin', 'x')
        assert.equal(store.getKey(id)!.lastUsedAt, null)
        store.setNow(at(T0, 5 * SECOND))
        assert.equal(store.isAllowed(secret, 'session', 'x'), true)
        assert.equal(store.getKey(id)!.lastUsedAt?.getTime(), at(T0, 5 * SECOND).getTime())
      })
    })

    describe('audit', () => {
      test('a filter holding NUL finds nothing (no stored actor, key or user id holds one)', () => {
        const { store } = seeded()
        for (const field of ['actor', 'keyId', 'userId'] as const) assert.deepEqual(store.audit({ [field]: 'a\u0000' }), [], field)
      })

      test('every admin call is one entry, newest first, with action, actor, key and user', () => {
        const { store } = fresh()
        const actor = { actor: 'alice@example.com' }
        store.putRole({ name: 'r', rights: ['a:*'] }, actor)
        store.putUser({ id: 'u', roles: ['r'] }, actor)
        const { key } = issue(store, { userId: 'u' })
        store.updateKey(key.id, { description: 'd2' }, actor)
        store.setState(key.id, 'suspended', actor)
        const rotated = store.rotateKey(key.id, actor)
        store.deleteKey(rotated.key.id, actor)
        store.deleteRole('r', actor)
        store.deleteUser('u', actor)
        const entries = store.audit()
        for (const [i, e] of entries.entries()) assertAuditEntry(e, `audit()[${i}]`)
        assert.deepEqual(
          entries.map((e) => e.action).reverse(),
          // A rotation records the old key and the new one; deleting a user, each of its keys and the user.
          ['putRole', 'putUser', 'createKey', 'updateKey', 'setState', 'rotateKey', 'rotateKey', 'deleteKey', 'deleteRole', 'deleteUser', 'deleteUser'],
        )
        assert.deepEqual(
          entries.map((e) => e.seq),
          entries.map((_, i) => entries.length - i),
        )
        const create = entries.find((e) => e.action === 'createKey')!
        assert.equal(create.keyId, key.id)
        assert.equal(create.userId, 'u')
        assert.equal(create.actor, undefined)
        assert.equal(entries.find((e) => e.action === 'updateKey')!.actor, 'alice@example.com')
      })

      test('deleting a user records its keys newest first, deleting a role its holders by id, on every store and after a reopen', () => {
        const { store, place } = fresh()
        store.putRole({ name: 'reader', rights: ['a:*'] })
        const holders = Array.from({ length: 40 }, (_, i) => `holder${String(i).padStart(2, '0')}`)
        for (const id of [...holders].reverse()) store.putUser({ id, roles: ['reader'] })
        store.putUser({ id: 'u', rights: ['*:*'] })
        // Twelve keys, half of them at one instant (ordered by creation there), half later.
        for (let i = 0; i < 12; i++) {
          if (i === 6) store.setNow(at(T0, SECOND))
          issue(store, { userId: 'u', description: `key ${i}` })
        }
        const newestFirst = store.listKeys({ userId: 'u' }).map((k) => k.id)
        // A durable store reopened reads its users and keys back from its rows: the trail must
        // not depend on the order a store happens to hold them in (a hash table's, a key's slot).
        if (kind.durable) store.close()
        const reopened = kind.durable ? place.open({ ...FROZEN, now: at(T0, SECOND) }) : store
        reopened.deleteRole('reader')
        assert.deepEqual(reopened.audit({ limit: 1 })[0]!.changes.removedFromUsers, holders)
        reopened.deleteUser('u')
        const [...entries] = reopened.audit({ action: 'deleteUser', limit: 13 }).reverse()
        assert.deepEqual(entries[0]!.changes.deletedKeys, newestFirst)
        assert.deepEqual(
          entries.slice(1).map((e) => e.keyId),
          newestFirst,
          "one entry per key, in the order of the user's entry",
        )
      })

      test('filters: action, actor, keyId, userId, since/until and limit', () => {
        const { store, id } = seeded()
        store.setNow(at(T0, HOUR))
        store.setState(id, 'suspended', { actor: 'Bob' })
        store.setNow(at(T0, 2 * HOUR))
        store.putUser({ id: 'other' }, { actor: 'carol' })
        assert.deepEqual(
          store.audit({ action: 'setState' }).map((e) => e.keyId),
          [id],
        )
        assert.deepEqual(
          store.audit({ actor: 'bob' }).map((e) => e.action),
          ['setState'],
        )
        assert.ok(store.audit({ keyId: id }).length >= 2)
        assert.deepEqual(
          store.audit({ userId: 'other' }).map((e) => e.action),
          ['putUser'],
        )
        assert.deepEqual(
          store.audit({ since: at(T0, HOUR), until: at(T0, HOUR) }).map((e) => e.action),
          ['setState'],
        )
        assert.equal(store.audit({ limit: 2 }).length, 2)
        throwsCode(() => store.audit({ action: 'nope' as 'putUser' }), 'INVALID_ARGUMENT')
      })

      test('beforeSeq pages through entries that share one instant, where until cannot', () => {
        const { store } = fresh()
        // A frozen clock: every entry at T0, as the entries of one purge are.
        for (let i = 0; i < 25; i++) store.putUser({ id: `u${i}` })
        const pages: number[][] = []
        let page = store.audit({ limit: 10 })
        // Bounded: a cursor that does not move must fail here, not loop.
        while (page.length > 0 && pages.length < 5) {
          pages.push(page.map((e) => e.seq))
          page = store.audit({ beforeSeq: page[page.length - 1]!.seq, limit: 10 })
        }
        const all = Array.from({ length: 25 }, (_, i) => 25 - i)
        assert.deepEqual(pages, [all.slice(0, 10), all.slice(10, 20), all.slice(20)])
        assert.deepEqual(
          store.audit({ until: T0, limit: 10 }).map((e) => e.seq),
          all.slice(0, 10),
          'until gives the same first page again',
        )
        // Combined with the other filters, and bounds at either end.
        assert.deepEqual(
          store.audit({ userId: 'u3', beforeSeq: 5 }).map((e) => e.userId),
          ['u3'],
        )
        assert.deepEqual(store.audit({ userId: 'u3', beforeSeq: 4 }), [])
        assert.deepEqual(store.audit({ beforeSeq: 1 }), [])
        assert.deepEqual(store.audit({ beforeSeq: 0 }), [])
        assert.equal(store.audit({ beforeSeq: Number.MAX_SAFE_INTEGER, limit: 1000 }).length, 25)
        for (const bad of [-1, 1.5, Number.NaN, 2 ** 53, Number.POSITIVE_INFINITY]) {
          throwsCode(() => store.audit({ beforeSeq: bad }), 'INVALID_ARGUMENT')
        }
        throwsCode(() => store.audit({ beforeSeq: '7' as unknown as number }), 'INVALID_ARGUMENT')
        // A whole number past 2^53 - 1 is refused for its size, and the message says so.
        for (const big of [2 ** 53, 2 ** 64]) {
          const error = throwsCode(() => store.audit({ beforeSeq: big }), 'INVALID_ARGUMENT', 'from 0 to 9007199254740991')
          assert.doesNotMatch(error.message, /must be a whole number, 0 or more/)
        }
      })

      test('the actor filter ignores the case of ASCII letters only, as every store does', () => {
        const { store } = fresh()
        store.putUser({ id: 'u' }, { actor: 'Ünïcode Élodie' })
        assert.deepEqual(
          store.audit({ actor: 'ÜNïCODE ÉLODIE' }).map((e) => e.actor),
          ['Ünïcode Élodie'],
        )
        for (const part of ['ü', 'éLODIE', 'NÏ']) assert.deepEqual(store.audit({ actor: part }), [], part)
      })

      test('an empty actor filter is INVALID_ARGUMENT, not every change made by anyone', () => {
        const { store } = fresh()
        store.putUser({ id: 'u' }, { actor: 'alice' })
        store.putUser({ id: 'v' }, { actor: 'bob' })
        // `audit({ actor: process.env.WHO ?? '' })` with WHO unset: every actor contains ''.
        throwsCode(() => store.audit({ actor: '' }), 'INVALID_ARGUMENT', 'actor filter is empty')
        throwsCode(() => store.audit({ actor: '', limit: 1 }), 'INVALID_ARGUMENT', 'actor filter is empty')
        assert.equal(store.audit({ actor: undefined }).length, 2, 'left out, it filters nothing')
      })

      test('the trail never shows a secret or its digest', () => {
        const { store, secret, id } = seeded()
        const rotated = store.rotateKey(id, { overlapSeconds: 60 })
        assertNoSecret(store.audit({ limit: 1000 }), secret)
        assertNoSecret(store.audit({ limit: 1000 }), rotated.secret)
      })

      test('verifyAudit passes and counts every entry; a refused call adds none', () => {
        const { store } = seeded()
        const before = store.verifyAudit()
        assertAuditReport(before, 'verifyAudit')
        assert.deepEqual(before, { ok: true, entries: 3 })
        throwsCode(() => store.putUser({ id: 'x', roles: ['ghost'] }), 'UNKNOWN_ROLE')
        assert.deepEqual(store.verifyAudit(), { ok: true, entries: 3 })
      })

      test('a secret pasted as an actor, a user id or a description is refused and never reaches the trail', () => {
        const { store, secret, id } = seeded()
        refusedUnchanged(store, () => store.putUser({ id: 'x' }, { actor: secret }), 'INVALID_ARGUMENT')
        refusedUnchanged(store, () => store.updateKey(id, { description: `see ${secret}` }), 'INVALID_ARGUMENT')
        refusedUnchanged(store, () => store.putUser({ id: secret.replace('_', '-') }), 'INVALID_ARGUMENT')
        assertNoSecret(store.audit({ limit: 1000 }), secret)
      })

      test('an actor with control or bidi characters is INVALID_ARGUMENT', () => {
        const { store } = fresh()
        refusedUnchanged(store, () => store.putUser({ id: 'u' }, { actor: 'eve\u202Eadmin' }), 'INVALID_ARGUMENT')
        refusedUnchanged(store, () => store.putUser({ id: 'u' }, { actor: 'line\nbreak' }), 'INVALID_ARGUMENT')
        refusedUnchanged(store, () => store.putUser({ id: 'u' }, { actor: '' }), 'INVALID_ARGUMENT')
      })
    })

    describe('close', () => {
      test('a closed store refuses every call with STORE_IO; close twice is harmless', () => {
        const { store, secret, id } = seeded()
        store.close()
        store.close()
        throwsCode(() => store.getKey(id), 'STORE_IO')
        throwsCode(() => store.listUsers(), 'STORE_IO')
        throwsCode(() => store.putUser({ id: 'x' }), 'STORE_IO')
        throwsCode(() => store.isAllowed(secret, 'session', 'x'), 'STORE_IO')
        throwsCode(() => store.audit(), 'STORE_IO')
      })
    })

    describe('reopen', kind.durable ? {} : { skip: 'an in-memory store keeps nothing once closed' }, () => {
      test('roles, users, keys, states, rules and lastUsedAt survive close and reopen', () => {
        const { store, place, secret, id } = seeded()
        store.isAllowed(secret, 'session', 'x')
        const suspended = issue(store, { state: 'suspended', rules: ['ip=10.0.0.0/8'] })
        const revoked = issue(store)
        store.setState(revoked.key.id, 'revoked')
        const before = snapshot(store)
        store.close()
        const again = place.open(FROZEN)
        assert.deepEqual(snapshot(again), before)
        assert.equal(again.getKey(id)!.lastUsedAt?.getTime(), T0.getTime())
        assert.equal(again.isAllowed(secret, 'session', 'x'), true)
        assert.equal(again.explain(suspended.secret, 'session', 'x', '10.0.0.1').reason, 'suspended')
        assert.equal(again.explain(revoked.secret, 'session', 'x').reason, 'revoked')
      })

      test('a use after getKey/listKeys read back a stored lastUsedAt is still flushed: close and reopen show it', () => {
        const { store, place, secret, id } = seeded()
        assert.equal(store.isAllowed(secret, 'session', 'x'), true)
        store.close() // flushes the use at T0
        const again = place.open(FROZEN)
        // Each reads back what was flushed before showing the key; the uses after it must still be written.
        assert.equal(again.getKey(id)!.lastUsedAt?.getTime(), T0.getTime())
        again.setNow(at(T0, 5 * SECOND))
        assert.equal(again.isAllowed(secret, 'session', 'x'), true)
        assert.equal(again.getKey(id)!.lastUsedAt?.getTime(), at(T0, 5 * SECOND).getTime(), 'in memory at once')
        assert.equal(again.listKeys()[0]!.lastUsedAt?.getTime(), at(T0, 5 * SECOND).getTime())
        again.setNow(at(T0, 9 * SECOND))
        for (let i = 0; i < 3; i++) assert.equal(again.isAllowed(secret, 'session', 'x'), true)
        again.close() // flushes the uses since the open
        const third = place.open(FROZEN)
        assert.equal(third.getKey(id)!.lastUsedAt?.getTime(), at(T0, 9 * SECOND).getTime(), 'the latest use reached the store')
      })

      test("listKeysPage shows the lastUsedAt another handle on the same store recorded, for the page's keys", () => {
        const { store, place, secret, id } = seeded()
        const other = issue(store)
        const elsewhere = place.open({ ...FROZEN, now: at(T0, 7 * SECOND) })
        assert.equal(elsewhere.isAllowed(secret, 'session', 'x'), true)
        elsewhere.close() // writes the use at T0 + 7 s
        const page = store.listKeysPage({ limit: 1, after: store.listKeysPage({ limit: 1 }).next! })
        assert.deepEqual(
          page.keys.map((k) => k.id),
          [id],
        )
        assert.equal(page.keys[0]!.lastUsedAt?.getTime(), at(T0, 7 * SECOND).getTime())
        assert.equal(store.listKeysPage({ limit: 1 }).keys[0]!.id, other.key.id)
        assert.equal(store.listKeysPage({ limit: 1 }).keys[0]!.lastUsedAt, null)
      })

      test('the audit trail survives reopen, verifies, and its chain goes on', () => {
        const { store, place } = seeded()
        const trail = store.audit({ limit: 1000 })
        store.close()
        const again = place.open(FROZEN)
        assert.deepEqual(again.audit({ limit: 1000 }), trail)
        again.putUser({ id: 'later' })
        const report = again.verifyAudit()
        assert.deepEqual(report, { ok: true, entries: trail.length + 1 })
        assert.equal(again.audit({ limit: 1 })[0]!.seq, trail[0]!.seq + 1)
      })

      test('keyPrefix and maxLifetimeDays given at creation apply to a later open without them', () => {
        const place = kind.place()
        place.open({ ...FROZEN, keyPrefix: 'acme', maxLifetimeDays: 10 }).close()
        const again = place.open(FROZEN)
        assert.equal(again.keyPrefix, 'acme')
        assert.equal(again.maxLifetimeDays, 10)
        again.putUser({ id: 'integration' })
        assert.match(issue(again, { expiresAt: at(T0, 10 * DAY) }).secret, /^acme_/)
        throwsCode(() => issue(again, { expiresAt: at(T0, 11 * DAY) }), 'EXPIRY_TOO_FAR')
      })
    })

    describe('KeyStore.copy', () => {
      /** A store with some history: roles, users, keys in every state, a use, a rotation. */
      function history() {
        const s = seeded()
        s.store.isAllowed(s.secret, 'session', 'x')
        const suspended = issue(s.store, { state: 'suspended' })
        const rotated = s.store.rotateKey(issue(s.store).key.id, { overlapSeconds: 60 })
        s.store.putUser({ id: 'idle', status: 'archived' })
        return { ...s, suspended, rotated }
      }

      for (const target of [MEMORY, SQLITE]) {
        test(`into an empty ${target.name} store: same keys (ids, states, lastUsedAt), same trail, secrets work`, () => {
          const { store, secret, suspended, rotated } = history()
          const copy = target.place().open(FROZEN)
          const report = KeyStore.copy(store, copy)
          assert.deepEqual(report, { roles: 1, users: 2, keys: 4, auditEntries: store.audit({ limit: 1000 }).length })
          assert.deepEqual(snapshot(copy), snapshot(store))
          assert.deepEqual(copy.audit({ limit: 1000 }), store.audit({ limit: 1000 }))
          assert.deepEqual(copy.verifyAudit(), store.verifyAudit())
          assert.equal(copy.isAllowed(secret, 'session', 'x'), true)
          assert.equal(copy.isAllowed(rotated.secret, 'session', 'x'), true)
          assert.equal(copy.explain(suspended.secret, 'session', 'x').reason, 'suspended')
          // The copy goes on by itself: its chain extends the copied one.
          copy.putUser({ id: 'after-copy' })
          assert.equal(copy.verifyAudit().ok, true)
          assert.equal(store.getUser('after-copy'), null)
        })
      }

      test('from an in-memory store past its 1,000-entry audit window: the window numbered from 1, each entry kept, verifyAudit passes', () => {
        const source = MEMORY.place().open(FROZEN)
        source.putUser({ id: 'u' })
        for (let i = 0; i < 1_200; i++) source.putRole({ name: `r${i % 7}`, rights: [`svc${i}:*`] }, { actor: 'ops' })
        const window = source.audit({ limit: 5000 })
        assert.equal(window.length, 1000)
        assert.ok(window.at(-1)!.seq > 1)
        const copy = kind.place().open(FROZEN)
        assert.equal(KeyStore.copy(source, copy).auditEntries, 1000)
        const copied = copy.audit({ limit: 5000 })
        assert.deepEqual(
          copied.map((e) => e.seq),
          window.map((_, i) => 1000 - i),
        )
        const content = (e: AuditEntry) => ({ at: e.at, actor: e.actor, action: e.action, keyId: e.keyId, userId: e.userId, changes: e.changes })
        assert.deepEqual(copied.map(content), window.map(content))
        assert.deepEqual(copy.verifyAudit(), { ok: true, entries: 1000 })
      })

      test('into a store of the same kind, which keeps the copy across reopen', () => {
        const { store, secret } = history()
        const place = kind.place()
        const copy = place.open(FROZEN)
        KeyStore.copy(store, copy)
        const expected = snapshot(copy)
        if (!kind.durable) return
        copy.close()
        const again = place.open(FROZEN)
        assert.deepEqual(snapshot(again), expected)
        assert.equal(again.verifyAudit().ok, true)
        assert.equal(again.isAllowed(secret, 'session', 'x'), true)
      })

      test('a target that is not empty is refused and left as it was', () => {
        const { store } = history()
        for (const prepare of [(s: KeyStore) => s.putRole({ name: 'r', rights: [] }), (s: KeyStore) => s.deleteUser('nobody-but-audited')]) {
          const target = kind.place().open(FROZEN)
          prepare(target)
          if (target.audit().length === 0 && target.listRoles().length === 0) continue
          const before = [snapshot(target), target.audit()]
          throwsCode(() => KeyStore.copy(store, target), 'INVALID_ARGUMENT', 'not empty')
          assert.deepEqual([snapshot(target), target.audit()], before)
        }
        throwsCode(() => KeyStore.copy(store, store), 'INVALID_ARGUMENT')
        throwsCode(() => KeyStore.copy(store, {} as KeyStore), 'INVALID_ARGUMENT')
      })
    })
  })
}
