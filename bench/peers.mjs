// The implementations under test, behind one small interface:
//
//   putRole(name, rights)  putUser({ id, status, rights, roles })
//   addKey(secret, spec) → handle      (JS peers: insert a key whose secret keygate issued)
//   createKey(spec) → secret            (own secret: createKey throughput, memory runs)
//   setKeyState(handle, state)  setKeyRules(handle, rules)
//   isAllowed(secret, service, api) → boolean      (the timed call)
//
// JS peers are what a careful developer writes by hand. They implement the documented decision
// for everything the workload uses: key state active, Date.now() < expiresAt, user active,
// the user's effective rights (own ∪ roles) match `service:api`, and the key's API rules
// match (no rules = allowed). They do not validate call names (decision step 3): the workload
// sends only valid names, and leaving the check out is the cheaper choice for the peers.

import { createHash, randomBytes } from 'node:crypto'
import * as crypto from 'node:crypto'
import { createRequire } from 'node:module'
import wcmatch from 'wildcard-match'

const require = createRequire(import.meta.url)
export const { KeyStore } = require('../index.js')

// ---------------------------------------------------------------------------------------
// Shared JS pieces.

/**
 * The rules of a key (or rights of a user) compiled once with wildcard-match into one
 * RegExp over `service:api`. `separator: ':'` keeps `*`/`?` inside service or api and
 * anchors both; `flags: 'i'` makes it case-insensitive. The peer keeps only the RegExp
 * (`isMatch.regexp`) and calls `.test` on it: same answers as the returned function
 * (which is `regexp.test` behind a bound typeof check), less memory, one call less.
 */
export function compileRules(patterns) {
  return patterns.length === 0 ? null : wcmatch(patterns, { separator: ':', flags: 'i' }).regexp
}

/** Syntax check a careful developer does before storing a rule (the rule alphabet, one `:`). */
const RULE_SYNTAX = /^[A-Za-z0-9_\-./*?]{1,255}:[A-Za-z0-9_\-./*?]{1,255}$/
export function checkRules(rules) {
  const out = new Array(rules.length)
  for (let i = 0; i < rules.length; i++) {
    const rule = rules[i].trim()
    if (rule.length > 256 || !RULE_SYNTAX.test(rule)) throw new Error(`invalid rule ${JSON.stringify(rules[i])}`)
    out[i] = rule
  }
  return out
}

/** A secret shaped like keygate's (`kg_` + 49 characters) from the OS CSPRNG. */
export function newSecret() {
  return `kg_${randomBytes(37).toString('base64url').slice(0, 49)}`
}

/**
 * SHA-256 hex digest. `crypto.hash` (Node ≥ 20.12 / 21.7) is the one-shot API and the
 * fastest; older Nodes fall back to createHash.
 */
export const sha256hex = typeof crypto.hash === 'function' ? (text) => crypto.hash('sha256', text, 'hex') : (text) => createHash('sha256').update(text).digest('hex')
export const SHA256_API = typeof crypto.hash === 'function' ? 'crypto.hash' : 'createHash'

class JsUsers {
  constructor() {
    this.roles = new Map() // name → rights
    this.users = new Map() // id → { id, active, re, rights, roles }
  }

  putRole(name, rights) {
    this.roles.set(name, checkRules(rights))
    for (const user of this.users.values()) if (user.roles.includes(name)) this.#compile(user)
  }

  putUser({ id, status = 'active', rights = [], roles = [] }) {
    // Update in place: keys hold the user object, so changes apply to their next check.
    let user = this.users.get(id)
    if (user === undefined) {
      user = { id, active: false, re: null, rights: [], roles: [] }
      this.users.set(id, user)
    }
    user.active = status === 'active'
    user.rights = checkRules(rights)
    user.roles = roles.slice()
    this.#compile(user)
    return user
  }

  #compile(user) {
    const effective = [...user.rights, ...user.roles.flatMap((name) => this.roles.get(name) ?? [])]
    user.re = compileRules(effective) // null: no rights, nothing allowed
  }

  get(id) {
    const user = this.users.get(id)
    if (user === undefined) throw new Error(`unknown user ${id}`)
    return user
  }
}

// ---------------------------------------------------------------------------------------
// naive JS: Map from the plaintext secret to { state, expiresAt, user, re }.

export class NaivePeer {
  constructor() {
    this.users = new JsUsers()
    this.keys = new Map()
  }

  putRole(name, rights) {
    this.users.putRole(name, rights)
  }
  putUser(user) {
    this.users.putUser(user)
  }

  addKey(secret, spec) {
    const entry = { state: spec.state, expiresAt: spec.expiresAt, user: this.users.get(spec.userId), re: compileRules(checkRules(spec.rules)) }
    this.keys.set(secret, entry)
    return entry
  }

  createKey(spec) {
    const secret = newSecret()
    this.addKey(secret, spec)
    return secret
  }

  setKeyState(entry, state) {
    entry.state = state
  }
  setKeyRules(entry, rules) {
    entry.re = compileRules(checkRules(rules))
  }

  isAllowed(secret, service, api) {
    const key = this.keys.get(secret)
    if (key === undefined || key.state !== 'active' || Date.now() >= key.expiresAt) return false
    const user = key.user
    if (!user.active || user.re === null) return false
    const call = `${service}:${api}`
    return user.re.test(call) && (key.re === null || key.re.test(call))
  }
}

// ---------------------------------------------------------------------------------------
// hashed JS: the same, keyed by the SHA-256 hex digest so that no plaintext key is kept.

export class HashedPeer {
  /**
   * `eagerCompile`: run each new key's RegExp twice at insertion, so that V8 has compiled
   * it (bytecode on the first run, native code on the second) before the key's first
   * check — what a developer who wants no compile on the request path would add.
   */
  constructor({ eagerCompile = false } = {}) {
    this.users = new JsUsers()
    this.keys = new Map()
    this.eagerCompile = eagerCompile
  }

  putRole(name, rights) {
    this.users.putRole(name, rights)
  }
  putUser(user) {
    this.users.putUser(user)
  }

  addKey(secret, spec) {
    const entry = { state: spec.state, expiresAt: spec.expiresAt, user: this.users.get(spec.userId), re: compileRules(checkRules(spec.rules)) }
    if (this.eagerCompile && entry.re !== null) {
      entry.re.test('warm:up')
      entry.re.test('warm:up')
    }
    this.keys.set(sha256hex(secret), entry)
    return entry
  }

  createKey(spec) {
    const secret = newSecret()
    this.addKey(secret, spec)
    return secret
  }

  setKeyState(entry, state) {
    entry.state = state
  }
  setKeyRules(entry, rules) {
    entry.re = compileRules(checkRules(rules))
  }

  isAllowed(secret, service, api) {
    const key = this.keys.get(sha256hex(secret))
    if (key === undefined || key.state !== 'active' || Date.now() >= key.expiresAt) return false
    const user = key.user
    if (!user.active || user.re === null) return false
    const call = `${service}:${api}`
    return user.re.test(call) && (key.re === null || key.re.test(call))
  }
}

// ---------------------------------------------------------------------------------------
// node-casbin. Casbin authorizes, it does not authenticate: the app finds the key by the
// SHA-256 of the secret (as the hashed peer does) and checks state, expiry and user status
// itself, then asks casbin twice — may the user call it (rights, roles via `g`), and, when
// the key has rules, may the key (casbin's `g(x, x)` holds, so users, roles and keys share
// one RBAC matcher). Subjects are user ids, role names and key ids; objects
// are `service:api`, lower-cased, matched with casbin's builtin `regexMatch` against the
// globs translated to anchored, lower-cased regexes (`*` → `[^:]*`, `?` → `[^:]`).

export const CASBIN_MODEL = `
[request_definition]
r = sub, obj

[policy_definition]
p = sub, obj

[role_definition]
g = _, _

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = g(r.sub, p.sub) && regexMatch(r.obj, p.obj)
`

/** A glob rule `<service>:<api>` as an anchored regex over the lower-cased call. */
export function globRuleToRegex(rule) {
  const [service, api] = rule.trim().toLowerCase().split(':')
  const part = (glob) => glob.replace(/[.*?\-/+^$()|[\]{}\\]/g, (c) => (c === '*' ? '[^:]*' : c === '?' ? '[^:]' : `\\${c}`))
  return `^${part(service)}:${part(api)}$`
}

export class CasbinPeer {
  static async create() {
    const { newEnforcer, newModelFromString } = await import('casbin')
    const enforcer = await newEnforcer(newModelFromString(CASBIN_MODEL))
    return new CasbinPeer(enforcer)
  }

  constructor(enforcer) {
    this.enforcer = enforcer
    this.users = new Map() // id → { active }
    this.keys = new Map() // sha256 hex → { state, expiresAt, user, sub, hasRules }
    this.next = 0
  }

  async putRole(name, rights) {
    await this.enforcer.removeFilteredPolicy(0, name)
    await this.enforcer.addPolicies(checkRules(rights).map((r) => [name, globRuleToRegex(r)]))
  }

  async putUser({ id, status = 'active', rights = [], roles = [] }) {
    let user = this.users.get(id)
    if (user === undefined) {
      user = { active: false, sub: `user:${id}` }
      this.users.set(id, user)
    }
    user.active = status === 'active'
    await this.enforcer.removeFilteredPolicy(0, user.sub)
    await this.enforcer.deleteRolesForUser(user.sub)
    if (rights.length > 0) await this.enforcer.addPolicies(checkRules(rights).map((r) => [user.sub, globRuleToRegex(r)]))
    for (const role of roles) await this.enforcer.addGroupingPolicy(user.sub, role)
  }

  async addKey(secret, spec) {
    const sub = `key:${this.next++}`
    const entry = { state: spec.state, expiresAt: spec.expiresAt, user: this.users.get(spec.userId), sub, hasRules: spec.rules.length > 0 }
    if (entry.hasRules) await this.enforcer.addPolicies(checkRules(spec.rules).map((r) => [sub, globRuleToRegex(r)]))
    this.keys.set(sha256hex(secret), entry)
    return entry
  }

  setKeyState(entry, state) {
    entry.state = state
  }

  async setKeyRules(entry, rules) {
    await this.enforcer.removeFilteredPolicy(0, entry.sub)
    entry.hasRules = rules.length > 0
    if (entry.hasRules) await this.enforcer.addPolicies(checkRules(rules).map((r) => [entry.sub, globRuleToRegex(r)]))
  }

  isAllowed(secret, service, api) {
    const key = this.keys.get(sha256hex(secret))
    if (key === undefined || key.state !== 'active' || Date.now() >= key.expiresAt) return false
    if (!key.user.active) return false
    const obj = `${service}:${api}`.toLowerCase()
    return this.enforcer.enforceSync(key.user.sub, obj) && (!key.hasRules || this.enforcer.enforceSync(key.sub, obj))
  }
}

// ---------------------------------------------------------------------------------------
// keygate through its public API (the store *is* the implementation: store.isAllowed).

export class KeygatePeer {
  constructor(options = {}) {
    this.store = KeyStore.inMemory(options)
  }

  putRole(name, rights) {
    this.store.putRole({ name, rights })
  }
  putUser(user) {
    this.store.putUser(user)
  }

  /** Creates the key; returns `{ id, secret }`. */
  create(spec) {
    const { key, secret } = this.store.createKey({
      userId: spec.userId,
      description: '',
      expiresAt: new Date(spec.expiresAt),
      rules: spec.rules,
      state: spec.state === 'suspended' ? 'suspended' : 'active',
    })
    if (spec.state === 'revoked') this.store.setState(key.id, 'revoked')
    return { id: key.id, secret }
  }

  createKey(spec) {
    return this.create(spec).secret
  }
  setKeyState(handle, state) {
    this.store.setState(handle.id, state)
  }
  setKeyRules(handle, rules) {
    this.store.updateKey(handle.id, { rules })
  }
  isAllowed(secret, service, api) {
    return this.store.isAllowed(secret, service, api)
  }
}

// ---------------------------------------------------------------------------------------
// keygate's Rust core called straight through its napi binding (`check`), i.e. without
// the JavaScript decision memo of lib/memo.js. Informational: this reaches past
// the public API, so it is skipped when the binding does not have the expected shape.

let native = null
try {
  native = require('../binding.js')
  for (const fn of ['storeInMemory', 'putUser', 'putRole', 'createKey', 'setState', 'updateKey', 'check']) {
    if (typeof native[fn] !== 'function') native = null
    if (native === null) break
  }
} catch {
  native = null
}
export const CORE_AVAILABLE = native !== null

export class KeygateCorePeer {
  constructor(options = {}) {
    this.handle = native.storeInMemory(options)
  }

  putRole(name, rights) {
    native.putRole(this.handle, name, rights)
  }
  putUser(user) {
    native.putUser(this.handle, { id: user.id, status: user.status, rights: user.rights, roles: user.roles })
  }

  create(spec) {
    const { key, secret } = native.createKey(this.handle, {
      userId: spec.userId,
      description: '',
      expiresAt: spec.expiresAt,
      rules: spec.rules,
      state: spec.state === 'suspended' ? 'suspended' : 'active',
    })
    if (spec.state === 'revoked') native.setState(this.handle, key.id, 'revoked')
    return { id: key.id, secret }
  }

  createKey(spec) {
    return this.create(spec).secret
  }
  setKeyState(handle, state) {
    native.setState(this.handle, handle.id, state)
  }
  setKeyRules(handle, rules) {
    native.updateKey(this.handle, handle.id, { rules, expiresAtGiven: false })
  }

  isAllowed(secret, service, api) {
    return (native.check(this.handle, secret, service, api) & 0xff) === 0
  }
}

/**
 * The floor under the wide check (information, not an implementation): the bound check's
 * napi crossing with its three strings read and no decision, or (`findsKey`) that plus the
 * check begun and the key found by its secret (read lock, clock, hint index, SHA-256, digest
 * compared). Binding functions for the benchmark only. `isAllowed` is true when the key was
 * found, so the wide checksum still checks them (always false without `findsKey`).
 */
export class KeygateFloorPeer extends KeygateCorePeer {
  constructor(findsKey) {
    super()
    const bind = findsKey ? native.bindFindFloorForBench : native.bindReadFloorForBench
    this.floor = bind(this.handle)
  }

  isAllowed(secret, service, api) {
    return this.floor(secret, service, api) === 1
  }
}
