// Every public method of KeyStore as a property-test subject: how to draw its arguments,
// how to call it, and what a successful answer must look like (index.d.ts).
import assert from 'node:assert/strict'
import fc from 'fast-check'

import type { KeyStore } from '../../index.js'
import { assertApiKey, assertAuditEntry, assertAuditReport, assertContractError, assertIssued, assertRole, assertUser, attempt, digest, outcomeTag } from './contract.js'
import {
  ABSENT,
  dateDesc as dateOrWeird,
  listOf as listOrWeird,
  numberDesc as numberOrWeird,
  objectOf as objectOrWeird,
  resolveArgs,
  ruleString,
  stringOrWeird as anyTypeOr,
} from './hostile.js'
import type { Desc, StringDesc, World } from './hostile.js'

export interface MethodSpec {
  name: string
  args: fc.Arbitrary<Desc[]>
  call(store: KeyStore, args: unknown[]): unknown
  /** Checks a successful answer (shape and meaning) and records new ids/secrets in `world`. */
  check(result: unknown, args: unknown[], world: World): void
}

/** A field of a caller's object, read the way keygate reads it. */
function field(value: unknown, name: string): unknown {
  // The store reads an object's own fields only (an inherited one is not given).
  return Object.hasOwn(value as object, name) ? (value as Record<string, unknown>)[name] : undefined
}

const tuple = (...items: fc.Arbitrary<Desc>[]): fc.Arbitrary<Desc[]> => fc.tuple(...items)

/**
 * The specs of every admin and read method, drawing strings from `str` and rule strings
 * from `rule` (so the rule parser's non-ASCII abort can be kept to its own group).
 */
export function methodSpecs(str: fc.Arbitrary<StringDesc>, rule: fc.Arbitrary<StringDesc>, hostileTypes = true): MethodSpec[] {
  // Without hostile types: strings, arrays, objects and Dates only (so one defect with odd types cannot mask another).
  const stringOrWeird = hostileTypes ? anyTypeOr : (a: fc.Arbitrary<StringDesc>) => a as fc.Arbitrary<Desc>
  const listOf = hostileTypes ? listOrWeird : (item: fc.Arbitrary<Desc>) => fc.record({ list: fc.array(item, { maxLength: 4 }) }) as fc.Arbitrary<Desc>
  const objectOf = hostileTypes
    ? objectOrWeird
    : (fields: { [name: string]: fc.Arbitrary<Desc> }, required: string[] = []) => fc.record({ obj: fc.record(fields, { requiredKeys: required }) }) as fc.Arbitrary<Desc>
  const dateDesc = hostileTypes ? dateOrWeird : (fc.record({ at: fc.constantFrom(86_400_000, 3_600_000, -1) }) as fc.Arbitrary<Desc>)
  const numberDesc = hostileTypes ? numberOrWeird : fc.constantFrom<Desc>({ weird: 'number', n: 0 }, { weird: 'number', n: 60 })
  const adminOptions = fc.oneof(fc.constant(ABSENT), objectOf({ actor: stringOrWeird(str) }))
  const s = stringOrWeird(str)
  const rules = listOf(stringOrWeird(ruleString(rule)))
  const options = fc.oneof({ weight: 1, arbitrary: fc.constant(ABSENT) }, { weight: 3, arbitrary: adminOptions }, { weight: 1, arbitrary: objectOf({ actor: s }) })
  // putRole/putUser also take `expect` ('new': create only, 'existing': replace only).
  const putOptions = fc.oneof(
    { weight: 3, arbitrary: options },
    { weight: 1, arbitrary: objectOf({ actor: s, expect: stringOrWeird(fc.oneof(fc.constantFrom('new', 'existing'), str)) }) },
  )
  const state = stringOrWeird(fc.oneof(fc.constantFrom('active', 'suspended', 'revoked'), str))
  const maybe = (arb: fc.Arbitrary<Desc>) => fc.oneof({ weight: 1, arbitrary: fc.constant(ABSENT) }, { weight: 3, arbitrary: arb })

  return [
    {
      name: 'putRole',
      args: tuple(objectOf({ name: s, rights: rules }, ['name', 'rights']), putOptions),
      call: (store, a) => store.putRole(a[0] as never, a[1] as never),
      check(result, a, world) {
        assertRole(result, 'putRole')
        assert.equal(result.name, field(a[0], 'name'), 'putRole answers the role it stored')
        assert.deepEqual(world.store.getRole(result.name), result, 'getRole reads what putRole stored')
        world.roleNames.push(result.name)
      },
    },
    {
      name: 'deleteRole',
      args: tuple(s, options),
      call: (store, a) => store.deleteRole(a[0] as never, a[1] as never),
      check(result, a, world) {
        assert.equal(typeof result, 'boolean')
        assert.equal(world.store.getRole(a[0] as string), null, 'a deleted role is gone')
      },
    },
    {
      name: 'getRole',
      args: tuple(s),
      call: (store, a) => store.getRole(a[0] as never),
      check(result, a) {
        if (result === null) return
        assertRole(result, 'getRole')
        assert.equal(result.name, a[0])
      },
    },
    {
      name: 'listRoles',
      args: tuple(),
      call: (store) => store.listRoles(),
      check(result) {
        assert.ok(Array.isArray(result))
        for (const r of result) assertRole(r, 'listRoles')
      },
    },
    {
      name: 'putUser',
      args: tuple(
        objectOf(
          {
            id: s,
            status: stringOrWeird(fc.oneof(fc.constantFrom('active', 'suspended', 'archived'), str)),
            rights: rules,
            roles: listOf(s),
          },
          ['id'],
        ),
        putOptions,
      ),
      call: (store, a) => store.putUser(a[0] as never, a[1] as never),
      check(result, a, world) {
        assertUser(result, 'putUser')
        assert.equal(result.id, field(a[0], 'id'), 'putUser answers the user it stored')
        assert.equal(result.status, field(a[0], 'status') ?? 'active')
        assert.deepEqual(world.store.getUser(result.id), result, 'getUser reads what putUser stored')
        world.userIds.push(result.id)
      },
    },
    {
      name: 'getUser',
      args: tuple(s),
      call: (store, a) => store.getUser(a[0] as never),
      check(result, a) {
        if (result === null) return
        assertUser(result, 'getUser')
        assert.equal(result.id, a[0])
      },
    },
    {
      name: 'listUsers',
      args: tuple(),
      call: (store) => store.listUsers(),
      check(result) {
        assert.ok(Array.isArray(result))
        for (const u of result) assertUser(u, 'listUsers')
      },
    },
    {
      name: 'deleteUser',
      args: tuple(s, options),
      call: (store, a) => store.deleteUser(a[0] as never, a[1] as never),
      check(result, a, world) {
        assert.equal(typeof result, 'boolean')
        assert.equal(world.store.getUser(a[0] as string), null, 'a deleted user is gone')
        assert.equal(world.store.listKeys({ userId: a[0] as string }).length, 0, 'a deleted user has no keys')
      },
    },
    {
      name: 'createKey',
      args: tuple(objectOf({ userId: s, description: s, expiresAt: dateDesc, rules, state }, ['userId', 'description', 'expiresAt']), options),
      call: (store, a) => store.createKey(a[0] as never, a[1] as never),
      check(result, a, world) {
        const { store } = world
        assertIssued(result, store, 'createKey')
        const { key } = result
        assert.equal(key.userId, field(a[0], 'userId'))
        assert.equal(key.description, field(a[0], 'description'), 'the description is stored exactly as given')
        assert.equal(key.state, field(a[0], 'state') ?? 'active')
        const expiresAt = (field(a[0], 'expiresAt') as Date).getTime()
        assert.equal(key.expiresAt.getTime(), expiresAt)
        const now = store.now().getTime()
        assert.ok(expiresAt > now && expiresAt <= now + store.maxLifetimeDays * 86_400_000, 'expiry within the documented limits')
        world.secrets.push(result.secret)
        world.keyIds.push(key.id)
      },
    },
    {
      name: 'getKey',
      args: tuple(s),
      call: (store, a) => store.getKey(a[0] as never),
      check(result, a) {
        if (result === null) return
        assertApiKey(result, 'getKey')
        assert.equal(result.id, a[0])
      },
    },
    {
      name: 'listKeys',
      args: tuple(maybe(objectOf({ userId: s, state }))),
      call: (store, a) => store.listKeys(a[0] as never),
      check(result, a) {
        assert.ok(Array.isArray(result))
        for (const k of result) assertApiKey(k, 'listKeys')
        const userId = a[0] === undefined ? undefined : field(a[0], 'userId')
        const wanted = a[0] === undefined ? undefined : field(a[0], 'state')
        for (const k of result) {
          if (userId !== undefined) assert.equal(k.userId, userId, 'listKeys filters by user')
          if (wanted !== undefined) assert.equal(k.state, wanted, 'listKeys filters by state')
        }
      },
    },
    {
      name: 'updateKey',
      args: tuple(s, objectOf({ description: s, rules, expiresAt: dateDesc }), options),
      call: (store, a) => store.updateKey(a[0] as never, a[1] as never, a[2] as never),
      check(result, a, world) {
        assertApiKey(result, 'updateKey')
        assert.equal(result.id, a[0])
        const description = field(a[1], 'description')
        if (description !== undefined) assert.equal(result.description, description, 'the description is stored exactly as given')
        const expiresAt = field(a[1], 'expiresAt')
        if (expiresAt !== undefined) assert.equal(result.expiresAt.getTime(), (expiresAt as Date).getTime())
        assert.notEqual(result.state, 'revoked', 'a revoked key cannot be updated')
        assert.deepEqual(world.store.getKey(result.id), result)
      },
    },
    {
      name: 'setState',
      args: tuple(s, state, options),
      call: (store, a) => store.setState(a[0] as never, a[1] as never, a[2] as never),
      check(result, a) {
        assertApiKey(result, 'setState')
        assert.equal(result.id, a[0])
        assert.equal(result.state, a[1])
      },
    },
    {
      name: 'rotateKey',
      args: tuple(s, maybe(objectOf({ overlapSeconds: numberDesc, actor: s }))),
      call: (store, a) => store.rotateKey(a[0] as never, a[1] as never),
      check(result, a, world) {
        assertIssued(result, world.store, 'rotateKey')
        assert.notEqual(result.key.id, a[0], 'rotation issues a new key')
        world.secrets.push(result.secret)
        world.keyIds.push(result.key.id)
      },
    },
    {
      name: 'deleteKey',
      args: tuple(s, options),
      call: (store, a) => store.deleteKey(a[0] as never, a[1] as never),
      check(result, a, world) {
        assert.equal(typeof result, 'boolean')
        assert.equal(world.store.getKey(a[0] as string), null, 'a deleted key is gone')
      },
    },
    {
      name: 'audit',
      args: tuple(maybe(objectOf({ keyId: s, userId: s, since: dateDesc, limit: numberDesc }))),
      call: (store, a) => store.audit(a[0] as never),
      check(result, a) {
        assert.ok(Array.isArray(result))
        for (const e of result) assertAuditEntry(e, 'audit')
        for (let i = 1; i < result.length; i++) assert.ok(result[i - 1]!.seq > result[i]!.seq, 'the audit trail is newest first')
        const limit = a[0] === undefined ? undefined : field(a[0], 'limit')
        assert.ok(result.length <= (typeof limit === 'number' ? limit : 100), 'at most `limit` entries (default 100)')
      },
    },
    {
      name: 'verifyAudit',
      args: tuple(),
      call: (store) => store.verifyAudit(),
      check(result) {
        assertAuditReport(result, 'verifyAudit')
        assert.equal(result.ok, true, 'nothing altered the trail')
      },
    },
    {
      name: 'setNow',
      args: tuple(fc.oneof(dateDesc, fc.constant<Desc>({ weird: 'null' }))),
      call: (store, a) => store.setNow(a[0] as never),
      check(result, a, world) {
        assert.equal(result, undefined)
        const now = world.store.now()
        assert.ok(now instanceof Date && Number.isFinite(now.getTime()), 'now() is a valid Date')
        if (a[0] instanceof Date) assert.equal(now.getTime(), a[0].getTime(), 'setNow freezes the clock there')
        world.clockFrozen = a[0] instanceof Date
      },
    },
    {
      name: 'now / keyPrefix / maxLifetimeDays',
      args: tuple(),
      call: (store) => [store.now(), store.keyPrefix, store.maxLifetimeDays],
      check(result) {
        const [now, prefix, days] = result as [Date, string, number]
        assert.ok(now instanceof Date && Number.isFinite(now.getTime()))
        assert.match(prefix, /^[a-z][a-z0-9]{0,15}$/)
        assert.ok(Number.isInteger(days) && days >= 1)
      },
    },
  ]
}

/**
 * Calls `spec` with the arguments `descs` describe on every world and holds each answer to
 * the contract: (a) a documented answer or a KeygateError of ERROR_CODES, (c) a throw
 * changes nothing. Both stores must answer alike (same success or same code).
 */
export function callOnAll(spec: MethodSpec, descs: Desc[], worlds: World[]): void {
  const tags: string[] = []
  for (const world of worlds) {
    world.hostileUsed = false
    const args = resolveArgs(descs, world)
    const before = digest(world)
    const outcome = attempt(() => spec.call(world.store, args))
    const where = `${spec.name} on the ${worlds.indexOf(world) === 0 ? 'in-memory' : 'durable'} store`
    if (outcome.ok) {
      spec.check(outcome.value, args, world)
    } else {
      assertContractError(outcome.error, world, where)
      assert.deepEqual(digest(world), before, `${where} threw ${outcomeTag(outcome)} and changed the store`)
    }
    tags.push(outcomeTag(outcome))
  }
  assert.ok(
    tags.every((t) => t === tags[0]),
    `${spec.name}: the in-memory and the durable store answer differently: ${tags.join(' / ')}`,
  )
}
