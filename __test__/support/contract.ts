// The contract every call at the JS surface is held to in the property tests:
// a documented answer or a KeygateError with a known code, never a change after a throw,
// never a secret of the store in an error, a listing or the audit trail.
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { ERROR_CODES, KeyStore, KeygateError } from '../../index.js'
import type { ApiKey, AuditEntry, AuditReport, Decision, IssuedKey, Role, User } from '../../index.js'
import { plainKey } from '../helpers.js'
import { HostileError } from './hostile.js'
import type { World } from './hostile.js'

/** The fixed store clock of the property tests. */
export const T0 = new Date('2025-03-01T09:00:00.000Z')
const DAY = 86_400_000

/** Fixed seed and bounded runs, overridable to explore: KEYGATE_PROP_SEED, KEYGATE_PROP_RUNS (a factor). */
export const SEED = Number(process.env.KEYGATE_PROP_SEED ?? 0x6b6579)
const RUN_FACTOR = Number(process.env.KEYGATE_PROP_RUNS ?? 1)
export function runs(n: number): { seed: number; numRuns: number; includeErrorInReport: true } {
  return { seed: SEED, numRuns: Math.max(1, Math.round(n * RUN_FACTOR)), includeErrorInReport: true }
}

// ---- worlds: one in-memory and one durable store with the same history ------

function seedWorld(store: KeyStore, dir: string): World {
  const world: World = { store, secrets: [], keyIds: [], userIds: [], roleNames: [], dir, hostileUsed: false, clockFrozen: true }
  store.putRole({ name: 'role0', rights: ['session:*'] })
  store.putUser({ id: 'u0', rights: ['*:*'], roles: ['role0'] })
  store.putUser({ id: 'u1', status: 'suspended', rights: ['data:*'] })
  world.roleNames.push('role0')
  world.userIds.push('u0', 'u1')
  const expiresAt = new Date(store.now().getTime() + DAY)
  for (const [userId, rules, state] of [
    ['u0', ['session:*', 'ip=10.0.0.0/8'], 'active'],
    ['u0', [], 'active'],
    ['u1', ['data:*'], 'suspended'],
  ] as const) {
    const issued = store.createKey({ userId, description: `key of ${userId}`, expiresAt, rules: [...rules], state })
    world.secrets.push(issued.secret)
    world.keyIds.push(issued.key.id)
  }
  return world
}

export interface Worlds {
  memory: World
  durable: World
  both: World[]
  close(): void
}

/** An in-memory store and a durable one (a SQLite file in a fresh temp dir), frozen at T0, seeded alike. */
export function makeWorlds(): Worlds {
  const dir = mkdtempSync(join(tmpdir(), 'keygate-prop-'))
  const memory = seedWorld(KeyStore.inMemory({ now: T0 }), dir)
  // Nothing is ever purged behind the test's back: digests must only change by its calls.
  const durable = seedWorld(KeyStore.open(join(dir, 'store.db'), { now: T0, purgeExpiredAfterDays: 1e6 }), dir)
  return {
    memory,
    durable,
    both: [memory, durable],
    close() {
      for (const w of [memory, durable]) {
        try {
          w.store.close()
        } catch {
          // already closed by the test
        }
      }
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

// ---- the state digest --------------------------------------------------------

/** Everything observable about a world's store, for "a throw changes nothing" (its clock only while frozen). */
export function digest(world: World): unknown {
  const { store } = world
  const last = store.audit({ limit: 1 })[0]
  return {
    now: world.clockFrozen ? store.now().getTime() : 'running',
    users: store.listUsers(),
    roles: store.listRoles(),
    keys: store.listKeys().map(plainKey),
    auditSeq: last?.seq ?? 0,
    auditHash: last?.hash ?? '',
  }
}

// ---- secrets -----------------------------------------------------------------

/**
 * How much of a secret counts as showing it. A secret's body is 43 random characters and a
 * 6-character checksum of them (the hint shows the last 4). In stored data (listings, the
 * audit trail, answers) showing the 43 random characters is showing the secret, whatever
 * follows them: the checksum is derived from them, so the store can recognise a pasted
 * secret with a damaged or missing checksum. A message (errors, what a log prints) must not
 * show even 32 of the body's characters in a row: keygate redacts messages without knowing
 * the secrets, so it can redact every long base62 run.
 */
export type LeakRule = 'stored' | 'message'
const MESSAGE_WINDOW = 32
const RANDOM_PART = 43

/** The first secret of `world` that `text` shows under `rule`, or null. */
export function leakedSecret(text: string, world: World, rule: LeakRule): string | null {
  for (const secret of world.secrets) {
    const body = secret.slice(secret.indexOf('_') + 1)
    if (rule === 'stored') {
      if (text.includes(body.slice(0, RANDOM_PART))) return secret
      continue
    }
    for (let i = 0; i + MESSAGE_WINDOW <= body.length; i++) {
      if (text.includes(body.slice(i, i + MESSAGE_WINDOW))) return secret
    }
  }
  return null
}

export function assertNoLeak(text: string | undefined, world: World, what: string, rule: LeakRule = 'stored'): void {
  const shown = String(text)
  const secret = leakedSecret(shown, world, rule)
  assert.equal(secret, null, `${what} shows a secret of the store: ${JSON.stringify(shown.slice(0, 300))}`)
}

function listings(store: KeyStore): Record<string, string> {
  return {
    'listUsers()': JSON.stringify(store.listUsers()),
    'listRoles()': JSON.stringify(store.listRoles()),
    'listKeys()': JSON.stringify(store.listKeys()),
  }
}

/** `listing: secret` for every secret a listing shows now. */
export function listedLeaks(world: World): Set<string> {
  const found = new Set<string>()
  for (const [name, text] of Object.entries(listings(world.store))) {
    const secret = leakedSecret(text, world, 'stored')
    if (secret !== null) found.add(`${name}: ${secret}`)
  }
  return found
}

/** Listings show no secret they did not show before (`before`), the audit entries after `sinceSeq` none at all. */
export function assertNothingListedLeaks(world: World, sinceSeq: number, before: Set<string> = new Set()): void {
  for (const [name, text] of Object.entries(listings(world.store))) {
    const secret = leakedSecret(text, world, 'stored')
    if (secret !== null && !before.has(`${name}: ${secret}`)) assertNoLeak(text, world, name)
  }
  const fresh = world.store.audit({ limit: 50 }).filter((e) => e.seq > sinceSeq)
  assertNoLeak(JSON.stringify(fresh), world, 'the audit trail')
}

// ---- outcomes ------------------------------------------------------------------

export type Outcome<T = unknown> = { ok: true; value: T } | { ok: false; error: unknown }

export function attempt<T>(fn: () => T): Outcome<T> {
  try {
    return { ok: true, value: fn() }
  } catch (error) {
    return { ok: false, error }
  }
}

/** A short, printable name of an outcome, to compare the two stores' answers. */
export function outcomeTag(outcome: Outcome): string {
  if (outcome.ok) return 'ok'
  const e = outcome.error
  if (e instanceof HostileError) return 'hostile'
  if (e instanceof KeygateError) return (e as KeygateError).code
  return `foreign ${e instanceof Error ? e.name : typeof e}`
}

/** The caller's own hostile object threw (its getter, its trap, its revocation): that error may pass through. */
function fromHostileObject(error: unknown): boolean {
  return error instanceof HostileError || (error instanceof TypeError && /revoked/.test(error.message))
}

/**
 * (a) A thrown error is a KeygateError with a code of ERROR_CODES (a TypeError that is also a
 * KeygateError where the typings say so), or — only when the arguments had hostile objects in
 * them — the caller's own error.
 */
export function assertContractError(error: unknown, world: World, what: string, expectTypeError = false): void {
  if (world.hostileUsed && fromHostileObject(error)) return
  const shown = error instanceof Error ? `${error.name}: ${error.message}` : String(error)
  assert.ok(error instanceof KeygateError, `${what} threw something other than a KeygateError: ${shown}`)
  assert.ok(error instanceof Error, `${what}: a KeygateError is an Error`)
  const code = (error as KeygateError).code
  assert.ok((ERROR_CODES as readonly string[]).includes(code), `${what} threw code ${String(code)}, not one of ERROR_CODES`)
  assert.equal(typeof error.message, 'string')
  assert.ok(error.message.length > 0, `${what} threw ${code} with an empty message`)
  if (expectTypeError) assert.ok(error instanceof TypeError, `${what}: a non-string argument is a TypeError (index.d.ts), got ${shown}`)
}

/** (d) The error shows no secret of the store, anywhere a log line would print from. */
export function assertErrorKeepsSecrets(error: unknown, world: World, what: string): void {
  if (!(error instanceof Error)) return
  const e = error as Error & { code?: unknown; cause?: unknown }
  const text = [e.name, e.message, e.stack ?? '', String(e.code ?? ''), String(e.cause ?? '')].join('\n')
  assertNoLeak(text, world, `the error of ${what}`, 'message')
}

// ---- shapes (index.d.ts) -------------------------------------------------------------

const KEY_STATES = ['active', 'suspended', 'revoked']
const USER_STATUSES = ['active', 'suspended', 'archived']
/** Every reason a decision of an open store can give (all but store_unavailable). */
export const REASONS = [
  'allowed',
  'malformed_key',
  'unknown_key',
  'invalid_request',
  'suspended',
  'revoked',
  'expired',
  'user_inactive',
  'user_lacks_right',
  'no_matching_rule',
  'ip_not_allowed',
]
const AUDIT_ACTIONS = ['putRole', 'deleteRole', 'putUser', 'deleteUser', 'createKey', 'updateKey', 'setState', 'rotateKey', 'deleteKey', 'purgeExpired']

function keysOf(value: object): string[] {
  return Object.keys(value).sort()
}
function isValidDate(value: unknown): value is Date {
  return value instanceof Date && Number.isFinite(value.getTime())
}
function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((s) => typeof s === 'string')
}

export function assertUser(value: unknown, what: string): asserts value is User {
  assert.ok(value !== null && typeof value === 'object', `${what}: a User is an object`)
  const u = value as User
  assert.deepEqual(keysOf(u), ['id', 'rights', 'roles', 'status'], `${what}: User fields`)
  assert.equal(typeof u.id, 'string')
  assert.ok(USER_STATUSES.includes(u.status), `${what}: status ${String(u.status)}`)
  assert.ok(isStringArray(u.rights) && isStringArray(u.roles), `${what}: rights and roles are string arrays`)
}

export function assertRole(value: unknown, what: string): asserts value is Role {
  assert.ok(value !== null && typeof value === 'object', `${what}: a Role is an object`)
  const r = value as Role
  assert.deepEqual(keysOf(r), ['name', 'rights'], `${what}: Role fields`)
  assert.equal(typeof r.name, 'string')
  assert.ok(isStringArray(r.rights), `${what}: rights are strings`)
}

export function assertApiKey(value: unknown, what: string): asserts value is ApiKey {
  assert.ok(value !== null && typeof value === 'object', `${what}: an ApiKey is an object`)
  const k = value as ApiKey
  assert.deepEqual(
    keysOf(k),
    ['createdAt', 'description', 'expiresAt', 'hint', 'id', 'lastUsedAt', 'rules', 'state', 'updatedAt', 'userId'],
    `${what}: ApiKey fields (never the secret or its digest)`,
  )
  assert.match(k.id, /^key_/, `${what}: key id`)
  assert.equal(typeof k.userId, 'string')
  assert.equal(typeof k.description, 'string')
  assert.ok(KEY_STATES.includes(k.state), `${what}: state ${String(k.state)}`)
  assert.ok(isValidDate(k.expiresAt) && isValidDate(k.createdAt) && isValidDate(k.updatedAt), `${what}: dates`)
  assert.ok(k.lastUsedAt === null || isValidDate(k.lastUsedAt), `${what}: lastUsedAt`)
  assert.ok(isStringArray(k.rules), `${what}: rules`)
  assert.match(k.hint, /^[0-9A-Za-z]{4}$/, `${what}: hint`)
}

export function assertIssued(value: unknown, store: KeyStore, what: string): asserts value is IssuedKey {
  assert.ok(value !== null && typeof value === 'object', `${what}: an IssuedKey is an object`)
  const issued = value as IssuedKey
  assert.deepEqual(keysOf(issued), ['key', 'secret'])
  assertApiKey(issued.key, what)
  assert.match(issued.secret, new RegExp(`^${store.keyPrefix}_[0-9A-Za-z]{49}$`), `${what}: the secret's form`)
  assert.equal(issued.secret.slice(-4), issued.key.hint, `${what}: the hint is the secret's last 4 characters`)
}

export function assertDecision(value: unknown, what: string): asserts value is Decision {
  assert.ok(value !== null && typeof value === 'object', `${what}: a Decision is an object`)
  const d = value as Decision
  for (const field of Object.keys(d)) assert.ok(['allowed', 'reason', 'keyId', 'userId', 'matchedRule'].includes(field), `${what}: field ${field}`)
  assert.equal(typeof d.allowed, 'boolean')
  assert.ok(REASONS.includes(d.reason), `${what}: reason ${String(d.reason)}`)
  assert.equal(d.allowed, d.reason === 'allowed', `${what}: allowed iff reason is 'allowed'`)
  for (const field of ['keyId', 'userId', 'matchedRule'] as const) {
    assert.ok(d[field] === undefined || typeof d[field] === 'string', `${what}: ${field}`)
  }
  if (d.reason === 'malformed_key' || d.reason === 'unknown_key') assert.equal(d.keyId, undefined, `${what}: no keyId for ${d.reason}`)
}

export function assertAuditEntry(value: unknown, what: string): asserts value is AuditEntry {
  assert.ok(value !== null && typeof value === 'object', `${what}: an AuditEntry is an object`)
  const e = value as AuditEntry
  for (const field of Object.keys(e)) assert.ok(['seq', 'at', 'actor', 'action', 'keyId', 'userId', 'changes', 'hash'].includes(field), `${what}: field ${field}`)
  assert.ok(Number.isInteger(e.seq) && e.seq >= 1, `${what}: seq`)
  assert.ok(isValidDate(e.at), `${what}: at`)
  assert.ok(AUDIT_ACTIONS.includes(e.action), `${what}: action ${e.action}`)
  for (const field of ['actor', 'keyId', 'userId'] as const) assert.ok(e[field] === undefined || typeof e[field] === 'string', `${what}: ${field}`)
  assert.ok(e.changes !== null && typeof e.changes === 'object', `${what}: changes`)
  assert.match(e.hash, /^[0-9a-f]{64}$/, `${what}: hash`)
}

export function assertAuditReport(value: unknown, what: string): asserts value is AuditReport {
  assert.ok(value !== null && typeof value === 'object', `${what}: an AuditReport is an object`)
  const r = value as AuditReport
  for (const field of Object.keys(r)) assert.ok(['ok', 'entries', 'firstBadSeq', 'problem'].includes(field), `${what}: field ${field}`)
  assert.equal(typeof r.ok, 'boolean')
  assert.ok(Number.isInteger(r.entries) && r.entries >= 0, `${what}: entries`)
  assert.ok(r.firstBadSeq === undefined || Number.isInteger(r.firstBadSeq))
  assert.ok(r.problem === undefined || typeof r.problem === 'string')
}
