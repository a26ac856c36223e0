// Property tests of every public method at the JS surface (issue 10): with arbitrary strings
// (astral characters, lone surrogates, bidi marks, NUL, controls, 1 MB, real and near-miss
// secrets of the store) and arbitrary types (numbers, NaN, bigint, symbols, null, arrays,
// objects with throwing getters, Proxies, valid and invalid Dates, functions), each call
// (a) answers as index.d.ts documents or throws a KeygateError with a code of ERROR_CODES,
// (b) never crashes this process, (c) changes nothing when it throws — on an in-memory and a
// durable store alike — and (d) never shows a secret of the store in an error, a listing or
// the audit trail. Rule strings stay ASCII here; non-ASCII rules and damaged store files are
// property-rules.test.ts (they abort the process in trees without the fix of issue 10 #1).
//
// Fixed seed, bounded runs: KEYGATE_PROP_SEED / KEYGATE_PROP_RUNS (a factor) explore further.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import fc from 'fast-check'

import { ERROR_CODES, KeyStore, KeygateError } from '../index.js'
import type { Decision } from '../index.js'
import { createGuard } from 'keygate/http'
import type { IncomingMessage } from 'node:http'
import {
  T0,
  assertContractError,
  assertDecision,
  assertErrorKeepsSecrets,
  assertNoLeak,
  assertNothingListedLeaks,
  attempt,
  digest,
  leakedSecret,
  listedLeaks,
  makeWorlds,
  runs,
} from './support/contract.js'
import type { Worlds } from './support/contract.js'
import {
  ABSENT,
  anyString,
  asciiString,
  dateDesc,
  isAbsent,
  listOf,
  nearMissRef,
  numberDesc,
  objectOf,
  resolve,
  resolveArgs,
  secretRef,
  stringOrWeird,
  weird,
} from './support/hostile.js'
import type { Desc, StringDesc, World } from './support/hostile.js'
import { callOnAll, methodSpecs } from './support/methods.js'

/** Runs `body` with fresh worlds, closing them after. */
function withWorlds(body: (worlds: Worlds) => void): void {
  const worlds = makeWorlds()
  try {
    body(worlds)
  } finally {
    worlds.close()
  }
}

test('ERROR_CODES lists every documented code, INTERNAL among them', () => {
  // The contract: INTERNAL is what a defect inside keygate is reported as instead of a crash.
  for (const code of ['INVALID_ARGUMENT', 'INVALID_RULE', 'STORE_IO', 'STORE_CORRUPT', 'STORE_LOCKED', 'INTERNAL']) {
    assert.ok((ERROR_CODES as readonly string[]).includes(code), `ERROR_CODES lacks ${code}`)
  }
})

// ---- (a) (b) (c): every admin and read method ---------------------------------

describe('every method answers as documented or throws a KeygateError, and a throw changes nothing', () => {
  for (const spec of methodSpecs(anyString, asciiString)) {
    test(spec.name, () => {
      withWorlds((worlds) => {
        fc.assert(
          fc.property(spec.args, (descs) => callOnAll(spec, descs, worlds.both)),
          runs(60),
        )
      })
    })
  }

  test('a mixed sequence of calls to all of them', () => {
    const specs = methodSpecs(anyString, asciiString)
    const step = fc.oneof(...specs.map((spec) => spec.args.map((descs) => ({ method: spec.name, descs }))))
    fc.assert(
      fc.property(fc.array(step, { minLength: 1, maxLength: 12 }), (steps) => {
        withWorlds((worlds) => {
          for (const { method, descs } of steps) callOnAll(specs.find((s) => s.name === method)!, descs, worlds.both)
          for (const world of worlds.both) assert.equal(world.store.verifyAudit().ok, true)
        })
      }),
      runs(25),
    )
  })
})

// ---- isAllowed / explain ---------------------------------------------------------------

const secretArg: fc.Arbitrary<Desc> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ secret: fc.nat(20), pre: fc.constant(''), post: fc.constant('') }) },
  { weight: 2, arbitrary: nearMissRef },
  { weight: 1, arbitrary: secretRef },
  { weight: 2, arbitrary: anyString },
  { weight: 1, arbitrary: weird },
)
const nameArg: fc.Arbitrary<Desc> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom('session', 'getSessionInfo', 'data', 'userLogon', 'apps/com.hornbill.core/x') },
  { weight: 3, arbitrary: anyString },
  { weight: 1, arbitrary: weird },
)
const ipArg: fc.Arbitrary<Desc> = fc.oneof(
  { weight: 2, arbitrary: fc.constant(ABSENT) },
  { weight: 2, arbitrary: fc.constantFrom('10.1.2.3', '192.168.0.1', '::1', '::ffff:10.1.2.3', '2001:db8::1') },
  { weight: 2, arbitrary: anyString },
  { weight: 1, arbitrary: weird },
)

const methodArg: fc.Arbitrary<Desc> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom('GET', 'propfind', 'MKCOL', 'G3T', '') },
  { weight: 3, arbitrary: anyString },
  { weight: 1, arbitrary: weird },
)
const pathArg: fc.Arbitrary<Desc> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom('session/x', '/session/a/b/', 'docs/../secret', 'a//b', 'docs%2Fx', '~u/f.txt') },
  { weight: 3, arbitrary: anyString },
  { weight: 1, arbitrary: weird },
)

type Check<T> = (store: KeyStore, secret: string, first: string, second: string, ip?: string) => T

/** The decision calls of one kind of request: their arguments' arbitraries and the calls. */
const KINDS: { label: string; first: fc.Arbitrary<Desc>; second: fc.Arbitrary<Desc>; explain: Check<Decision>; isAllowed: Check<boolean> }[] = [
  {
    label: 'isAllowed/explain',
    first: nameArg,
    second: nameArg,
    explain: (store, ...args) => store.explain(...args),
    isAllowed: (store, ...args) => store.isAllowed(...args),
  },
  {
    label: 'isAllowedDav/explainDav',
    first: methodArg,
    second: pathArg,
    explain: (store, ...args) => store.explainDav(...args),
    isAllowed: (store, ...args) => store.isAllowedDav(...args),
  },
]

describe('isAllowed / explain, isAllowedDav / explainDav', () => {
  for (const { label, first, second, explain, isAllowed } of KINDS) {
    test(`${label} with strings: a boolean and a Decision that agree, never allowed for anything but a real secret; other types: a TypeError; nothing changes`, () => {
      withWorlds((worlds) => {
        fc.assert(
          fc.property(fc.tuple(secretArg, first, second, ipArg), (descs) => {
            for (const world of worlds.both) {
              world.hostileUsed = false
              const args = resolveArgs(descs, world)
              const [secret, service, api] = args
              const ip = args[3]
              const strings = typeof secret === 'string' && typeof service === 'string' && typeof api === 'string'
              // ip: a string or left out (null, undocumented, may go either way).
              const ipOk = ip === undefined || typeof ip === 'string'
              const before = digest(world)
              const explained = attempt(() => explain(world.store, ...(args as [string, string, string, string?])))
              assert.deepEqual(digest(world), before, 'explain is a diagnosis: it changes nothing')
              const allowed = attempt(() => isAllowed(world.store, ...(args as [string, string, string, string?])))
              if (strings && ip === null && explained.ok === allowed.ok && explained.ok) {
                assertDecision(explained.value, 'explain with ip null')
                continue
              }
              if (!(strings && ipOk)) {
                for (const outcome of [explained, allowed]) {
                  assert.equal(outcome.ok, false, 'a non-string argument is a TypeError')
                  if (!outcome.ok) assertContractError(outcome.error, world, label, true)
                }
                assert.deepEqual(digest(world), before)
                continue
              }
              assert.ok(explained.ok, `${label}: explain threw for string arguments: ${!explained.ok && String(explained.error)}`)
              assert.ok(allowed.ok, `${label}: isAllowed threw for string arguments: ${!allowed.ok && String(allowed.error)}`)
              const decision = explained.value
              assertDecision(decision, 'explain')
              assert.equal(allowed.value, decision.allowed, 'isAllowed agrees with explain')
              const index = world.secrets.indexOf(secret as string)
              if (index < 0) {
                assert.ok(['malformed_key', 'unknown_key'].includes(decision.reason), `a string that is no issued secret is ${decision.reason}`)
              } else {
                assert.equal(decision.keyId, world.keyIds[index], 'the decision names the key of the secret')
              }
              assertNoLeak(JSON.stringify(decision), world, 'the decision', 'message')
            }
          }),
          runs(300),
        )
      })
    })
  }
})

// ---- statics, lifecycle, files -----------------------------------------------------

const storeOptions: fc.Arbitrary<Desc> = fc.oneof(
  { weight: 1, arbitrary: fc.constant(ABSENT) },
  {
    weight: 4,
    arbitrary: objectOf({
      keyPrefix: stringOrWeird(fc.oneof(fc.constantFrom('kg', 'acme', 'a', 'a0123456789abcde', 'a0123456789abcdef', 'Kg', 'k_g'), anyString)),
      maxLifetimeDays: numberDesc,
      now: fc.oneof(dateDesc, fc.constant<Desc>({ weird: 'null' })),
      purgeExpiredAfterDays: numberDesc,
    }),
  },
)

/** A file name inside the world's temp dir: never a path out of it. */
function fileIn(world: World, desc: Desc): unknown {
  const name = resolve(desc, world)
  return typeof name === 'string' ? join(world.dir, name.replace(/[/\\]/g, '_').replace(/^\.\.?$/, 'dot')) : name
}

function assertStoreMatchesOptions(store: KeyStore, options: unknown, recordedPrefix?: string): void {
  // The store reads the options' own fields only (an inherited one is not given).
  const o = Object.fromEntries(Object.entries(options ?? {})) as { keyPrefix?: string; maxLifetimeDays?: number; now?: Date | null }
  // A file made earlier keeps the prefix it was created with (a different one is refused).
  assert.equal(store.keyPrefix, o.keyPrefix ?? recordedPrefix ?? 'kg')
  if (o.maxLifetimeDays !== undefined) assert.equal(store.maxLifetimeDays, o.maxLifetimeDays)
  if (o.now instanceof Date) assert.equal(store.now().getTime(), o.now.getTime())
}

/** The key prefix a store file was created with (read by opening it). */
function prefixRecordedIn(path: string): string | undefined {
  try {
    const store = KeyStore.open(path)
    const prefix = store.keyPrefix
    store.close()
    return prefix
  } catch {
    return undefined
  }
}

describe('statics and lifecycle', () => {
  test('KeyStore.inMemory(options): a store as configured, or a KeygateError', () => {
    withWorlds(({ memory }) => {
      fc.assert(
        fc.property(storeOptions, (desc) => {
          memory.hostileUsed = false
          const options = resolve(desc, memory)
          const outcome = attempt(() => KeyStore.inMemory(options as never))
          if (!outcome.ok) return assertContractError(outcome.error, memory, 'inMemory')
          assert.ok(outcome.value instanceof KeyStore)
          assertStoreMatchesOptions(outcome.value, options)
          outcome.value.close()
        }),
        runs(150),
      )
    })
  })

  test('KeyStore.open(path, options): a store as configured, or a KeygateError that leaves no file behind', () => {
    withWorlds(({ durable }) => {
      fc.assert(
        fc.property(stringOrWeird(anyString), storeOptions, (pathDesc, optionsDesc) => {
          durable.hostileUsed = false
          const path = fileIn(durable, pathDesc)
          const options = resolve(optionsDesc, durable)
          const files = readdirSync(durable.dir).sort()
          const existed = typeof path === 'string' && existsSync(path) && statSync(path).size > 0
          const recordedPrefix = existed ? prefixRecordedIn(path as string) : undefined
          const outcome = attempt(() => KeyStore.open(path as never, options as never))
          if (!outcome.ok) {
            assertContractError(outcome.error, durable, 'open')
            assertErrorKeepsSecrets(outcome.error, durable, 'open')
            assert.deepEqual(readdirSync(durable.dir).sort(), files, 'a failed open leaves the directory as it was')
            return
          }
          const store = outcome.value
          try {
            assertStoreMatchesOptions(store, options, recordedPrefix)
            if (path === join(durable.dir, 'store.db') || existed) return
            assert.deepEqual(store.listUsers(), [], 'a new file is an empty store')
          } finally {
            store.close()
          }
        }),
        runs(120),
      )
    })
  })

  test('KeyStore.validateRule(ASCII string or anything else): the normalised rule or INVALID_RULE / INVALID_ARGUMENT', () => {
    withWorlds(({ memory }) => {
      fc.assert(
        fc.property(stringOrWeird(asciiString), (desc) => {
          memory.hostileUsed = false
          const rule = resolve(desc, memory)
          const outcome = attempt(() => KeyStore.validateRule(rule as never))
          if (!outcome.ok) {
            assertContractError(outcome.error, memory, 'validateRule')
            if (outcome.error instanceof KeygateError) assert.equal(outcome.error.code, typeof rule === 'string' ? 'INVALID_RULE' : 'INVALID_ARGUMENT')
            return
          }
          assert.equal(typeof outcome.value, 'string')
          assert.equal(KeyStore.validateRule(outcome.value), outcome.value, 'a normalised rule is its own normal form')
        }),
        runs(300),
      )
    })
  })

  test('new KeyStore(...) is refused with a KeygateError', () => {
    const Ctor = KeyStore as unknown as new (...args: unknown[]) => unknown
    const outcome = attempt(() => new Ctor())
    assert.equal(outcome.ok, false)
    if (!outcome.ok) assert.ok(outcome.error instanceof KeygateError)
  })

  test('backup(path): a copy that opens with the same content, or a KeygateError that changes nothing', () => {
    withWorlds((worlds) => {
      fc.assert(
        fc.property(stringOrWeird(anyString), (desc) => {
          for (const world of worlds.both) {
            world.hostileUsed = false
            const path = fileIn(world, desc)
            const existed = typeof path === 'string' && existsSync(path)
            const content = existed ? safeRead(path as string) : null
            const before = digest(world)
            const outcome = attempt(() => world.store.backup(path as never))
            assert.deepEqual(digest(world), before, 'backup changes nothing in the store')
            if (!outcome.ok) {
              assertContractError(outcome.error, world, 'backup')
              if (content !== null) assert.deepEqual(safeRead(path as string), content, 'a failed backup leaves an existing file as it was')
              continue
            }
            assert.equal(world, worlds.durable, 'only a durable store has a file to back up')
            assert.equal(existed, false, 'backup refuses an existing path')
            const copy = KeyStore.open(path as string, { now: T0 })
            try {
              const { now: _n, ...copied } = digest({ ...world, store: copy }) as Record<string, unknown>
              const { now: _m, ...original } = digest(world) as Record<string, unknown>
              assert.deepEqual(copied, original, 'the backup holds what the store holds')
            } finally {
              copy.close()
            }
          }
        }),
        runs(60),
      )
    })
  })

  test('after close(), every call throws a KeygateError (or answers as documented) and close() again is harmless', () => {
    const specs = methodSpecs(anyString, asciiString)
    const step = fc.oneof(...specs.map((spec) => spec.args.map((descs) => ({ method: spec.name, descs }))))
    fc.assert(
      fc.property(fc.array(step, { minLength: 1, maxLength: 8 }), (steps) => {
        withWorlds((worlds) => {
          for (const world of worlds.both) world.store.close()
          for (const { method, descs } of steps) {
            const spec = specs.find((s) => s.name === method)!
            for (const world of worlds.both) {
              world.hostileUsed = false
              const outcome = attempt(() => spec.call(world.store, resolveArgs(descs, world)))
              if (!outcome.ok) assertContractError(outcome.error, world, `${method} after close`)
            }
          }
          for (const world of worlds.both) world.store.close()
        })
      }),
      runs(15),
    )
  })
})

function safeRead(path: string): Buffer | null {
  try {
    return readFileSync(path)
  } catch {
    return null
  }
}

// ---- texts: stored as given, or refused ---------------------------------------------

const BIDI = ['\u202A', '\u202B', '\u202C', '\u202D', '\u202E', '\u2066', '\u2067', '\u2068', '\u2069']

/** Strings with lone surrogates in them, often. */
const loneSurrogates = fc.string({ unit: fc.constantFrom('a', '\uD800', '\uDBFF', '\uDC00', '\uDFFF', '\uD83D\uDE00'), minLength: 1, maxLength: 6 })

describe('texts', () => {
  test('a description or an actor is refused or stored exactly as given (no lone surrogate turned into U+FFFD)', () => {
    withWorlds((worlds) => {
      fc.assert(
        fc.property(fc.oneof(anyString, loneSurrogates), fc.constantFrom('description', 'actor'), (desc, where) => {
          for (const world of worlds.both) {
            const text = resolve(desc, world) as string
            const { store } = world
            const before = digest(world)
            const outcome = attempt(() =>
              where === 'description'
                ? store.createKey({ userId: 'u0', description: text, expiresAt: new Date(store.now().getTime() + 86_400_000) }).key.description
                : // Its rights toggled: a put of the role as it is records nothing.
                  store.putRole({ name: 'role0', rights: [store.getRole('role0')?.rights[0] === 'session:*' ? 'session:get*' : 'session:*'] }, { actor: text }) &&
                  store.audit({ limit: 1 })[0]!.actor,
            )
            if (!outcome.ok) {
              assertContractError(outcome.error, world, where)
              assert.deepEqual(digest(world), before)
              continue
            }
            assert.equal(outcome.value, text, `the ${where} reads back as given`)
          }
        }),
        runs(150),
      )
    })
  })

  test('a bidirectional control character (U+202A–U+202E, U+2066–U+2069) in an id, a role name or an actor is refused with INVALID_ARGUMENT', () => {
    withWorlds((worlds) => {
      fc.assert(
        fc.property(fc.constantFrom(...BIDI), fc.nat(3), fc.constantFrom('putUser.id', 'putRole.name', 'actor'), (mark, at, where) => {
          for (const world of worlds.both) {
            const text = 'admin'.slice(0, at) + mark + 'admin'.slice(at)
            const { store } = world
            const before = digest(world)
            const outcome = attempt(() =>
              where === 'putUser.id'
                ? store.putUser({ id: text })
                : where === 'putRole.name'
                  ? store.putRole({ name: text, rights: [] })
                  : store.putUser({ id: 'u0', rights: ['*:*'], roles: ['role0'] }, { actor: text }),
            )
            assert.equal(outcome.ok, false, `${where} ${JSON.stringify(text)} was accepted`)
            if (outcome.ok) continue
            assertContractError(outcome.error, world, where)
            assert.equal((outcome.error as KeygateError).code, 'INVALID_ARGUMENT')
            assert.deepEqual(digest(world), before)
          }
        }),
        runs(40),
      )
    })
  })
})

// ---- keygate/http -----------------------------------------------------------------

/** A route function that throws an error carrying the request's key in every field a log prints. */
function keyCarryingRoute(req: IncomingMessage): never {
  const auth = String(req.headers.authorization ?? '')
  const key = auth.slice(auth.indexOf(' ') + 1)
  const error = new Error(`route failed for ${key}`, { cause: new Error(`caused by ${key}`) }) as Error & { code?: string }
  error.name = `RouteError ${key}`
  error.code = `E_${key}`
  throw error
}

const routeDesc: fc.Arbitrary<Desc | 'keyCarrying' | 'hornbill'> = fc.oneof(
  fc.constant<'keyCarrying'>('keyCarrying'),
  fc.constant<'hornbill'>('hornbill'),
  fc.constant(ABSENT),
  weird,
)

describe('keygate/http createGuard', () => {
  test('hostile options: a guard or a KeygateError; its check() never throws, and nothing it passes on shows the key', () => {
    withWorlds(({ memory }) => {
      fc.assert(
        fc.property(
          fc.oneof({ weight: 4, arbitrary: fc.constant<Desc>('store') }, { weight: 1, arbitrary: weird }),
          routeDesc,
          fc.oneof(fc.constant(ABSENT), listOf(stringOrWeird(fc.oneof(fc.constantFrom('loopback', '10.0.0.0/8', '::1', '127.0.0.1/33'), anyString))), weird),
          fc.oneof(fc.constant(ABSENT), stringOrWeird(anyString)),
          fc.oneof(fc.constant<Desc>({ ref: 'keyId', i: 0 }), fc.record({ secret: fc.nat(3), pre: fc.constant(''), post: fc.constant('') }), nearMissRef, anyString),
          stringOrWeird(anyString),
          (storeDesc, route, trustProxy, realm, keyDesc, urlDesc) => {
            memory.hostileUsed = false
            const errors: unknown[] = []
            const options: Record<string, unknown> = { onError: (error: unknown) => errors.push(error) }
            if (route === 'keyCarrying') options.route = keyCarryingRoute
            else if (route !== 'hornbill' && !isAbsent(route)) options.route = resolve(route, memory)
            if (!isAbsent(trustProxy)) options.trustProxy = resolve(trustProxy, memory)
            if (!isAbsent(realm)) options.realm = resolve(realm, memory)
            const store = storeDesc === 'store' ? memory.store : resolve(storeDesc, memory)
            const made = attempt(() => createGuard(store as never, options as never))
            if (!made.ok) {
              assertContractError(made.error, memory, 'createGuard')
              if (made.error instanceof KeygateError) assert.equal(made.error.code, 'INVALID_ARGUMENT')
              return
            }
            const guard = made.value
            for (const name of ['check', 'node', 'express', 'fastify', 'fastifyHook', 'reply'] as const) assert.equal(typeof guard[name], 'function')
            const key = resolve(keyDesc, memory)
            const req = {
              method: 'POST',
              url: resolve(urlDesc, memory),
              headers: { authorization: `Bearer ${String(key)}` },
              rawHeaders: ['Authorization', `Bearer ${String(key)}`],
              socket: { remoteAddress: '10.1.2.3' },
            }
            const result = attempt(() => guard.check(req as unknown as IncomingMessage))
            assert.ok(result.ok, `check() threw: ${!result.ok && String(result.error)}`)
            const answer = result.value as { ok: boolean; status?: number; body?: unknown }
            assert.equal(typeof answer.ok, 'boolean')
            if (!answer.ok) assert.ok([400, 401, 403, 404, 500].includes(answer.status!), `status ${answer.status}`)
            assertNoLeak(JSON.stringify(answer), memory, 'the guard answer', 'message')
            for (const error of errors) assertErrorKeepsSecrets(error, memory, 'an error passed to onError')
          },
        ),
        runs(200),
      )
    })
  })
})

// ---- (d) secrets never become identifiers, messages, listings or audit entries ------------

/** A real secret of the store inside text that is ASCII (so the rule parser's abort stays out of it). */
const asciiSecret = fc.record({
  secret: fc.nat(20),
  pre: fc.constantFrom('', 'u', 'x_', 'kg_', 'a.'),
  post: fc.constantFrom('', ':*', '_', '@x', '.y'),
})

describe('secrets of the store', () => {
  test('a user id, role name or rule that contains a well-formed secret is refused (INVALID_ARGUMENT / INVALID_RULE) without showing it', () => {
    type Target = 'putUser.id' | 'putRole.name' | 'putUser.rights' | 'putRole.rights' | 'createKey.rules' | 'updateKey.rules'
    const targets = fc.constantFrom<Target>('putUser.id', 'putRole.name', 'putUser.rights', 'putRole.rights', 'createKey.rules', 'updateKey.rules')
    withWorlds((worlds) => {
      fc.assert(
        fc.property(targets, asciiSecret, (target, desc) => {
          for (const world of worlds.both) {
            const text = resolve(desc, world) as string
            const { store } = world
            const expiresAt = new Date(store.now().getTime() + 86_400_000)
            const calls: Record<Target, () => unknown> = {
              'putUser.id': () => store.putUser({ id: text }),
              'putRole.name': () => store.putRole({ name: text, rights: [] }),
              'putUser.rights': () => store.putUser({ id: 'u0', rights: [text] }),
              'putRole.rights': () => store.putRole({ name: 'role0', rights: [text] }),
              'createKey.rules': () => store.createKey({ userId: 'u0', description: 'd', expiresAt, rules: [text] }),
              'updateKey.rules': () => store.updateKey(world.keyIds[0]!, { rules: [text] }),
            }
            const before = digest(world)
            const outcome = attempt(calls[target])
            assert.equal(outcome.ok, false, `${target} accepted ${JSON.stringify(desc)}, a text with a secret of the store in it`)
            if (outcome.ok) continue
            assertContractError(outcome.error, world, target)
            assert.equal((outcome.error as KeygateError).code, target.endsWith('rights') || target.endsWith('rules') ? 'INVALID_RULE' : 'INVALID_ARGUMENT')
            assertErrorKeepsSecrets(outcome.error, world, target)
            assert.deepEqual(digest(world), before)
          }
        }),
        runs(60),
      )
    })
  })

  /** Strings that carry secrets wherever a string goes. */
  const smuggled: fc.Arbitrary<StringDesc> = fc.oneof(
    { weight: 4, arbitrary: secretRef },
    { weight: 2, arbitrary: nearMissRef },
    { weight: 1, arbitrary: fc.record({ ref: fc.constantFrom<'keyId' | 'userId' | 'roleName'>('keyId', 'userId', 'roleName'), i: fc.nat(5) }) },
    { weight: 1, arbitrary: fc.constantFrom('u0', 'role0', 'active') },
  )
  const smuggledAscii = fc.oneof({ weight: 4, arbitrary: asciiSecret as fc.Arbitrary<StringDesc> }, { weight: 1, arbitrary: fc.constantFrom('session:*', 'u0') })

  for (const spec of methodSpecs(smuggled, smuggledAscii, false)) {
    test(`${spec.name}: no error message, listing or audit entry shows a secret smuggled into any string (ids, names, rules, descriptions, actors)`, () => {
      withWorlds((worlds) => {
        fc.assert(
          fc.property(spec.args, (descs) => {
            for (const world of worlds.both) {
              world.hostileUsed = false
              const args = resolveArgs(descs, world)
              const seq = (digest(world) as { auditSeq: number }).auditSeq
              // Only what this call adds counts: a leak of an earlier run must not make every later (and every shrunk) input fail.
              const leakedBefore = listedLeaks(world)
              const outcome = attempt(() => spec.call(world.store, args))
              if (!outcome.ok) {
                assertContractError(outcome.error, world, spec.name)
                assertErrorKeepsSecrets(outcome.error, world, spec.name)
              } else {
                // createKey/rotateKey answer a secret by design: only that one field may hold it.
                const issues = spec.name === 'createKey' || spec.name === 'rotateKey'
                const answer = String(JSON.stringify(issues ? (outcome.value as { key: unknown }).key : outcome.value))
                const shown = leakedSecret(answer, world, 'stored')
                const listedAlready = [...leakedBefore].some((entry) => shown !== null && entry.endsWith(`: ${shown}`))
                if (!listedAlready) assertNoLeak(answer, world, `the answer of ${spec.name}`)
              }
              assertNothingListedLeaks(world, seq, leakedBefore)
              if (outcome.ok && (spec.name === 'createKey' || spec.name === 'rotateKey')) {
                // Remember the new secret only after checking: it is the answer, not a leak.
                const issued = outcome.value as { secret: string; key: { id: string } }
                world.secrets.push(issued.secret)
                world.keyIds.push(issued.key.id)
              }
            }
          }),
          runs(40),
        )
      })
    })
  }
})
