// The memo against an independent reference (issue: "takes effect on the very next check"):
// long random sequences of admin calls — roles, users, keys, states, rules reordered, expiry,
// rotation with overlap, deleteUser and the same id made again, setNow back and forth across
// expiry instants — interleaved with checks repeated so that the memo holds their answers,
// each answer compared with a model of the nine documented steps written here, not asked of
// keygate. Bursts of spread calls (the thrash detector) and of unknown secrets (the hint
// filter) are mixed in, so that every layer that caches takes part.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'

import { KeyStore, KeygateError } from '../index.js'
import type { Decision, DenyReason } from '../index.js'
import { T0, forgeSecret, seededRandom } from './helpers.js'
import { open, storePath } from './support/durable.js'
import { createDatabase, openPg, pgOnly } from './support/postgres.js'

const RIGHTS = ['*:*', 'session:*', 'data:get*', '*:userLogon', 'admin:*', 'data:entity???Record', 'SESSION:GET*', 'dav=GET docs/*', 'dav=* *']
const KEY_RULES = ['session:*', 'session:get*', 'data:*', '*:userLogon', 'Data:Entity*', 'ip=10.0.0.0/8', 'ip=192.168.0.0/16', 'dav=* docs/*']
/** API calls (service, api) and WebDAV requests (method, path). */
const CALLS: ['api' | 'dav', string, string][] = [
  ['api', 'session', 'getSessionInfo'],
  ['api', 'session', 'userLogon'],
  ['api', 'SESSION', 'GetSessionInfo'],
  ['api', 'data', 'getRecord'],
  ['api', 'data', 'entityAddRecord'],
  ['api', 'admin', 'userCreate'],
  ['api', 'bad name', 'x'],
  ['dav', 'GET', 'docs/a'],
  ['dav', 'put', '/docs/x/y'],
  ['dav', 'GET', 'other/x'],
  ['dav', 'PROPFIND', 'docs/'],
  ['dav', 'GET', 'docs/../x'],
]
/** Caller addresses and the IP rules that hold them. */
const CALLERS: [string | undefined, string[]][] = [
  [undefined, []],
  ['', []],
  ['10.1.2.3', ['ip=10.0.0.0/8']],
  ['::ffff:10.1.2.3', ['ip=10.0.0.0/8']],
  ['192.168.7.7', ['ip=192.168.0.0/16']],
  ['172.16.0.1', []],
]
const USERS = ['u0', 'u1', 'u2']
const ROLES = ['r0', 'r1']
const STATUSES = ['active', 'active', 'active', 'active', 'suspended', 'archived'] as const

type ModelKey = { id: string; secret: string; userId: string; state: string; expiresAt: number; rules: string[] }
type ModelUser = { status: string; rights: string[]; roles: string[] }

/** An API pattern as a RegExp: anchored, ASCII case-insensitive, `*` any run, `?` one character. */
function globMatches(pattern: string, name: string): boolean {
  const source = pattern
    .replace(/[.+^${}()|[\]\\/-]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.')
  return new RegExp(`^${source}$`, 'i').test(name)
}

function apiRuleMatches(rule: string, service: string, api: string): boolean {
  if (rule.startsWith('ip=') || rule.startsWith('dav=')) return false
  const [s, a] = rule.split(':') as [string, string]
  return globMatches(s, service) && globMatches(a, api)
}

/** A WebDAV rule `dav=<method> <path>` against a request (its path without the leading `/`). */
function davRuleMatches(rule: string, method: string, path: string): boolean {
  if (!rule.startsWith('dav=')) return false
  const [m, p] = rule.slice(4).split(' ') as [string, string]
  return (m === '*' || m.toUpperCase() === method.toUpperCase()) && globMatches(p, path)
}

const VALID_NAME = /^[A-Za-z0-9_\-./]{1,256}$/

/** A WebDAV request's method and path (leading `/` dropped) are valid: no `.`, `..` or empty segment but a last one. */
function validDav(method: string, path: string): boolean {
  const segments = path.split('/')
  if (segments.at(-1) === '') segments.pop()
  return /^[A-Za-z]{1,32}$/.test(method) && /^[A-Za-z0-9_\-./~]{1,1024}$/.test(path) && segments.every((s) => s !== '' && s !== '.' && s !== '..')
}

class Model {
  roles = new Map<string, string[]>()
  users = new Map<string, ModelUser>()
  keys = new Map<string, ModelKey>()
  constructor(public now: number) {}

  decide(secret: string, kind: 'api' | 'dav', first: string, second: string, ip: string | undefined): Decision {
    const key = [...this.keys.values()].find((k) => k.secret === secret)
    if (key === undefined) return { allowed: false, reason: 'unknown_key' }
    const about = { keyId: key.id, userId: key.userId }
    const deny = (reason: DenyReason): Decision => ({ allowed: false, reason, ...about })
    const path = kind === 'dav' && second.startsWith('/') ? second.slice(1) : second
    const valid = kind === 'api' ? VALID_NAME.test(first) && VALID_NAME.test(second) : validDav(first, path)
    if (!valid) return deny('invalid_request')
    if (key.state !== 'active') return deny(key.state as DenyReason)
    if (this.now >= key.expiresAt) return deny('expired')
    const user = this.users.get(key.userId)
    if (user === undefined || user.status !== 'active') return deny('user_inactive')
    const matches = (rule: string) => (kind === 'api' ? apiRuleMatches(rule, first, second) : davRuleMatches(rule, first, path))
    const rights = [...user.rights, ...user.roles.flatMap((r) => this.roles.get(r) ?? [])]
    if (!rights.some(matches)) return deny('user_lacks_right')
    const ofKind = key.rules.filter((r) => (kind === 'dav' ? r.startsWith('dav=') : !r.startsWith('ip=') && !r.startsWith('dav=')))
    const matched = ofKind.find(matches)
    if (ofKind.length > 0 && matched === undefined) return deny('no_matching_rule')
    const withRule = matched === undefined ? about : { ...about, matchedRule: matched }
    const ipRules = key.rules.filter((r) => r.startsWith('ip='))
    const holding = CALLERS.find(([c]) => c === ip)?.[1] ?? []
    if (ipRules.length > 0 && !ipRules.some((r) => holding.includes(r))) return { allowed: false, reason: 'ip_not_allowed', ...withRule }
    return { allowed: true, reason: 'allowed', ...withRule }
  }
}

function pick<T>(rnd: () => number, items: readonly T[]): T {
  return items[Math.floor(rnd() * items.length)]!
}

function subset<T>(rnd: () => number, items: readonly T[], p = 0.35): T[] {
  const chosen = items.filter(() => rnd() < p)
  // Shuffled: the same texts in another order are another list.
  for (let i = chosen.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1))
    ;[chosen[i], chosen[j]] = [chosen[j]!, chosen[i]!]
  }
  return chosen
}

/**
 * Runs one random sequence of `steps` operations over `stores` (stores of one backend: every
 * admin call goes to one of them, chosen at random, and the checks that follow are asked of
 * that store, which caught up with the others' changes before making its own). With `thrash`,
 * a flood of distinct calls first puts the memo in its thrashing mode (one call in 16 uses it),
 * where it stays for the whole sequence.
 */
function run(seed: number, steps: number, stores: KeyStore[], thrash = false) {
  const rnd = seededRandom(seed)
  const model = new Model(T0.getTime())
  let store = stores[0]!
  for (const each of stores) each.setNow(T0)
  const log: string[] = []
  const note = (line: string) => {
    log.push(line)
    if (log.length > 40) log.shift()
  }
  const strangers = Array.from({ length: 40 }, () => forgeSecret())
  const gone: string[] = [] // secrets of deleted keys
  let spread = 0
  /** An admin call on a store chosen at random; checks go to the last store that made one. */
  const attempt = (what: string, fn: () => void, anyStore = true) => {
    const before = store
    if (anyStore && stores.length > 1) store = pick(rnd, stores)
    try {
      fn()
      note(`${what} (store ${stores.indexOf(store)})`)
    } catch (error) {
      if (!(error instanceof KeygateError)) throw error
      note(`${what} -> ${error.code}`)
      // A call refused may have been refused before catching up with the other stores.
      store = before
    }
  }
  const check = (secret: string, [kind, first, second]: (typeof CALLS)[number], ip: string | undefined) => {
    const expected = model.decide(secret, kind, first, second, ip)
    const times = 1 + Math.floor(rnd() * 3)
    const call = `${kind} ${secret.slice(-4)} ${first} ${second} from ${ip}`
    for (let i = 0; i < times; i++) {
      const got = kind === 'api' ? store.isAllowed(secret, first, second, ip) : store.isAllowedDav(secret, first, second, ip)
      if (got !== expected.allowed) {
        assert.fail(`seed ${seed}: ${call}, check #${i + 1}: ${got}, expected ${JSON.stringify(expected)}\nlast operations:\n${log.join('\n')}`)
      }
    }
    const explained = kind === 'api' ? store.explain(secret, first, second, ip) : store.explainDav(secret, first, second, ip)
    assert.deepEqual(explained, expected, `seed ${seed}: explain of ${call}\nlast operations:\n${log.join('\n')}`)
  }
  try {
    if (thrash) {
      store.putUser({ id: 'flood', rights: ['*:*'] })
      model.users.set('flood', { status: 'active', rights: ['*:*'], roles: [] })
      const { key, secret } = store.createKey({ userId: 'flood', description: '', expiresAt: new Date(model.now + 86_400_000) })
      model.keys.set(key.id, { id: key.id, secret, userId: 'flood', state: 'active', expiresAt: model.now + 86_400_000, rules: [] })
      for (let i = 0; i < 100_000; i++) if (!store.isAllowed(secret, 'data', `flood${i}`)) assert.fail(`flood call ${i}`)
    }
    for (let step = 0; step < steps; step++) {
      const keys = [...model.keys.values()]
      const live = keys.filter((k) => k.state !== 'revoked' && k.expiresAt > model.now)
      const key = live.length > 0 && rnd() < 0.8 ? pick(rnd, live) : keys.length > 0 ? pick(rnd, keys) : undefined
      const op = rnd()
      if (op < 0.05 && stores.length > 1 && key !== undefined) {
        // Every store, once it has applied the last change, answers by it (its memo included).
        const latest = Math.max(...stores.map((each) => each.health().appliedVersion))
        const deadline = Date.now() + 5_000
        while (stores.some((each) => each.health().appliedVersion < latest)) {
          if (Date.now() > deadline) assert.fail(`seed ${seed}: a store did not apply version ${latest} within 5 s`)
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1)
        }
        const call = pick(rnd, CALLS)
        const ip = pick(rnd, CALLERS)[0]
        const before = store
        for (const each of stores) {
          store = each
          check(key.secret, call, ip)
        }
        store = before
      } else if (op < 0.45) {
        // Checks, mostly of live keys; sometimes deleted keys' or unknown secrets.
        const r = rnd()
        const secret = key !== undefined && r < 0.85 ? key.secret : gone.length > 0 && r < 0.93 ? pick(rnd, gone) : pick(rnd, strangers)
        check(secret, pick(rnd, CALLS), pick(rnd, CALLERS)[0])
      } else if (op < 0.5) {
        const name = pick(rnd, ROLES)
        const rights = subset(rnd, RIGHTS)
        attempt(`putRole ${name} ${rights}`, () => {
          store.putRole({ name, rights })
          model.roles.set(name, rights)
        })
      } else if (op < 0.53) {
        const name = pick(rnd, ROLES)
        attempt(`deleteRole ${name}`, () => {
          store.deleteRole(name)
          model.roles.delete(name)
          for (const user of model.users.values()) user.roles = user.roles.filter((r) => r !== name)
        })
      } else if (op < 0.6) {
        const id = pick(rnd, USERS)
        const user = { status: pick(rnd, STATUSES), rights: subset(rnd, RIGHTS), roles: subset(rnd, [...model.roles.keys()], 0.5) }
        attempt(`putUser ${id} ${JSON.stringify(user)}`, () => {
          store.putUser({ id, ...user })
          model.users.set(id, user)
        })
      } else if (op < 0.61) {
        const id = pick(rnd, USERS)
        attempt(`deleteUser ${id}`, () => {
          store.deleteUser(id)
          model.users.delete(id)
          for (const k of [...model.keys.values()]) {
            if (k.userId === id) {
              model.keys.delete(k.id)
              gone.push(k.secret)
            }
          }
        })
      } else if (op < 0.7) {
        const userId = pick(rnd, [...model.users.keys(), ...USERS])
        const rules = subset(rnd, KEY_RULES)
        const expiresAt = model.now + pick(rnd, [1_000, 2_000, 2_001, 2_500, 5_000, 3_600_000, 86_400_000])
        const state = rnd() < 0.85 ? 'active' : 'suspended'
        attempt(`createKey ${userId} ${rules} +${expiresAt - model.now} ${state}`, () => {
          const { key: made, secret } = store.createKey({ userId, description: '', expiresAt: new Date(expiresAt), rules, state: state as 'active' })
          model.keys.set(made.id, { id: made.id, secret, userId, state, expiresAt, rules })
          // Checked at once, and again: the second check is remembered.
          check(secret, pick(rnd, CALLS), pick(rnd, CALLERS)[0])
        })
      } else if (op < 0.76 && key !== undefined) {
        const reorder = rnd() < 0.5
        const rules = reorder ? [...key.rules].reverse() : subset(rnd, KEY_RULES)
        const expiresAt = rnd() < 0.3 ? model.now + pick(rnd, [1_500, 2_000, 2_001, 3_000, 60_000]) : undefined
        attempt(`updateKey ${key.id.slice(-4)} ${rules} ${expiresAt === undefined ? '' : `+${expiresAt - model.now}`}`, () => {
          store.updateKey(key.id, expiresAt === undefined ? { rules } : { rules, expiresAt: new Date(expiresAt) })
          key.rules = rules
          if (expiresAt !== undefined) key.expiresAt = expiresAt
        })
      } else if (op < 0.82 && key !== undefined) {
        const state = pick(rnd, ['active', 'active', 'suspended', 'revoked'])
        attempt(`setState ${key.id.slice(-4)} ${state}`, () => {
          store.setState(key.id, state as 'active')
          key.state = state
        })
      } else if (op < 0.86 && key !== undefined) {
        const overlapSeconds = pick(rnd, [0, 1, 2, 3, 60, 3600])
        attempt(`rotateKey ${key.id.slice(-4)} overlap ${overlapSeconds}`, () => {
          const { key: made, secret } = store.rotateKey(key.id, { overlapSeconds })
          model.keys.set(made.id, { id: made.id, secret, userId: key.userId, state: key.state, expiresAt: key.expiresAt, rules: [...key.rules] })
          if (overlapSeconds === 0) key.state = 'revoked'
          else key.expiresAt = Math.min(key.expiresAt, model.now + overlapSeconds * 1000)
          assert.equal(store.getKey(key.id)?.expiresAt.getTime(), key.expiresAt, 'the old key expires after the overlap')
        })
      } else if (op < 0.88 && key !== undefined) {
        attempt(`deleteKey ${key.id.slice(-4)}`, () => {
          store.deleteKey(key.id)
          model.keys.delete(key.id)
          gone.push(key.secret)
        })
      } else if (op < 0.96) {
        // The clock, moved to around some key's expiry instant, or by a small step either way.
        const target =
          key !== undefined && rnd() < 0.6
            ? key.expiresAt + pick(rnd, [-2_001, -2_000, -1_999, -1, 0, 1])
            : model.now + pick(rnd, [-3_000, -2_000, -1, 0, 1, 1_000, 2_000, 2_001])
        attempt(
          `setNow +${target - model.now}`,
          () => {
            for (const each of stores) each.setNow(new Date(target))
            model.now = target
          },
          false,
        )
      } else if (op < 0.98 && key !== undefined) {
        // A burst of spread calls of one key (the thrash detector), then back to the pool.
        const user = model.users.get(key.userId)
        for (let i = 0; i < 1500; i++) {
          const api = `spread${spread++}`
          const answer = store.isAllowed(key.secret, 'data', api)
          if (answer !== model.decide(key.secret, 'api', 'data', api, undefined).allowed)
            assert.fail(`seed ${seed}: spread call ${api} of ${user?.status}\n${log.join('\n')}`)
        }
        note('spread burst')
      } else {
        // A burst of unknown secrets (the hint filter turns on).
        for (let i = 0; i < 40; i++) assert.equal(store.isAllowed(pick(rnd, strangers), 'session', 'getSessionInfo'), false)
        note('strangers burst')
      }
    }
  } finally {
    for (const each of stores) each.close()
  }
}

describe('the memo against an independent model of the decision', () => {
  const base = Number(process.env.KEYGATE_MEMO_SEED ?? 20261205)
  const seeds = Number(process.env.KEYGATE_MEMO_SEEDS ?? 12)

  test('one in-memory store: every answer is the model’s, on the very next check', () => {
    for (let s = 0; s < seeds; s++) run(base + s, 1500, [KeyStore.inMemory()], s % 2 === 1)
  })

  test('three stores on one SQLite file in this process, each call on one of them: the store that made a change answers by it at once', () => {
    for (let s = 0; s < Math.max(1, seeds >> 2); s++) {
      const file = storePath()
      run(base + s, 500, [open(file), open(file), open(file)])
    }
  })

  test('two stores on one PostgreSQL database, each call on one of them: the same', pgOnly(), () => {
    const db = createDatabase()
    try {
      run(base, 300, [openPg(db.url), openPg(db.url)])
    } finally {
      db.drop()
    }
  })
})
