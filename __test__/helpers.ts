// Shared fixtures of the keygate test suite (not a test file itself).
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { crc32 } from 'node:zlib'

import { KeyStore, KeygateError } from '../index.js'
import type { ApiKey, ErrorCode, IssuedKey, NewKey, StoreOptions, UserInput } from '../index.js'

export const SECOND = 1000
export const MINUTE = 60 * SECOND
export const HOUR = 60 * MINUTE
export const DAY = 24 * HOUR

/** A fixed instant in the past of the system clock, so `setNow(null)` moves far forward. */
export const T0 = new Date('2025-03-01T09:00:00.000Z')

export function at(base: Date, offsetMs: number): Date {
  return new Date(base.getTime() + offsetMs)
}

/** A store frozen at `now` (default T0). */
export function frozenStore(now: Date = T0, options: Omit<StoreOptions, 'now'> = {}): KeyStore {
  return KeyStore.inMemory({ ...options, now })
}

/** Creates a user with the given rights (default: everything) and returns the store for chaining. */
export function withUser(store: KeyStore, user: UserInput = { id: 'integration', rights: ['*:*'] }): KeyStore {
  store.putUser(user)
  return store
}

/**
 * `isAllowed` asked twice, both answers equal; returns it. A key's first check is not
 * remembered and its second is, so a check after a change then shows whether the memo
 * forgot the answer it held.
 */
export function allowedTwice(store: KeyStore, secret: string, service: string, api: string, ip?: string): boolean {
  const first = store.isAllowed(secret, service, api, ip)
  assert.equal(store.isAllowed(secret, service, api, ip), first, 'a repeated check gave another answer')
  return first
}

/** Creates a key that expires in a day (relative to the store clock). */
export function issue(store: KeyStore, input: Partial<NewKey> & { userId?: string } = {}): IssuedKey {
  return store.createKey({
    userId: 'integration',
    description: 'test key',
    expiresAt: at(store.now(), DAY),
    ...input,
  })
}

/** Asserts that `fn` throws a KeygateError with `code`; returns it for more checks. */
export function throwsCode(fn: () => unknown, code: ErrorCode, ...messageParts: string[]): KeygateError {
  let caught: unknown
  try {
    fn()
  } catch (error) {
    caught = error
  }
  assert.ok(caught !== undefined, `expected a KeygateError ${code}, but nothing was thrown`)
  assert.ok(caught instanceof KeygateError, `expected a KeygateError ${code}, got ${String(caught)}`)
  assert.ok(caught instanceof Error, 'a KeygateError is an Error')
  assert.equal(caught.code, code, `wrong code; message: ${caught.message}`)
  for (const part of messageParts) {
    assert.ok(caught.message.includes(part), `message ${JSON.stringify(caught.message)} should name ${JSON.stringify(part)}`)
  }
  return caught
}

/**
 * Asserts that `fn` throws a TypeError that is also a KeygateError INVALID_ARGUMENT (isAllowed/explain
 * with non-strings, the admin server's options).
 */
export function throwsTypeError(fn: () => unknown, context = ''): void {
  let caught: unknown
  try {
    fn()
  } catch (error) {
    caught = error
  }
  assertTypeError(caught, context)
}

/** Asserts that `caught` is a TypeError that is also a KeygateError INVALID_ARGUMENT. */
export function assertTypeError(caught: unknown, context = ''): void {
  assert.ok(caught !== undefined, `expected a TypeError, but nothing was thrown ${context}`)
  assert.ok(caught instanceof TypeError, `expected a TypeError, got ${String(caught)} ${context}`)
  assert.ok(caught instanceof KeygateError, `the TypeError is also instanceof KeygateError ${context}`)
  assert.equal(caught.code, 'INVALID_ARGUMENT', context)
}

// ---- secrets --------------------------------------------------------------

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'

/** The 6-char base62 CRC32 of `text` (the secret format: checksum of everything before it). */
export function checksum(text: string): string {
  let n = crc32(Buffer.from(text, 'utf8'))
  let out = ''
  for (let i = 0; i < 6; i++) {
    out = BASE62[n % 62] + out
    n = Math.floor(n / 62)
  }
  return out
}

/** A small deterministic PRNG (mulberry32), so that a failing seed can be run again: numbers in [0, 1). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** A random string of base62 characters. */
export function randomBase62(length: number): string {
  const bytes = randomBytes(length)
  let out = ''
  for (let i = 0; i < length; i++) out += BASE62[bytes[i]! % 62]
  return out
}

/** A secret that is well formed (prefix, length, alphabet, checksum) but was never issued. */
export function forgeSecret(prefix = 'kg'): string {
  const signed = `${prefix}_${randomBase62(43)}`
  return signed + checksum(signed)
}

/** Representations of the digest of a secret that must never appear anywhere. */
export function digestForms(secret: string): string[] {
  const digest = createHash('sha256').update(secret).digest()
  return [digest.toString('hex'), digest.toString('base64'), digest.toString('base64url')]
}

/** Asserts that neither the secret, its random body nor its digest appears in `value` (as JSON). */
export function assertNoSecret(value: unknown, secret: string): void {
  const json = JSON.stringify(value)
  const body = secret.slice(secret.indexOf('_') + 1)
  assert.ok(!json.includes(secret), 'the secret leaked')
  assert.ok(!json.includes(body), 'the secret body leaked')
  assert.ok(!json.includes(body.slice(0, 20)), 'part of the secret body leaked')
  for (const form of digestForms(secret)) assert.ok(!json.toLowerCase().includes(form.toLowerCase()), 'the secret digest leaked')
}

// ---- snapshots for "a failed call changes nothing" -------------------------

export interface Probe {
  secret: string
  service: string
  api: string
  ip?: string
}

/** Everything observable about a store: entities, keys and some decisions. */
export function snapshot(store: KeyStore, probes: Probe[] = []): unknown {
  // Decisions first: an allowed check sets lastUsedAt (to the frozen instant in these tests).
  const decisions = probes.map((p) => [store.isAllowed(p.secret, p.service, p.api, p.ip), store.explain(p.secret, p.service, p.api, p.ip)])
  const keys = store.listKeys()
  return {
    decisions,
    now: store.now().getTime(),
    users: store.listUsers(),
    roles: store.listRoles(),
    keys: keys.map(plainKey),
    byId: keys.map((k) => plainKey(store.getKey(k.id))),
  }
}

/** A key with its dates as numbers, for deep comparison. */
export function plainKey(key: ApiKey | null): unknown {
  if (key === null) return null
  return {
    ...key,
    expiresAt: key.expiresAt.getTime(),
    createdAt: key.createdAt.getTime(),
    updatedAt: key.updatedAt.getTime(),
    lastUsedAt: key.lastUsedAt === null ? null : key.lastUsedAt.getTime(),
  }
}

export const API_KEY_FIELDS = ['createdAt', 'description', 'expiresAt', 'hint', 'id', 'lastUsedAt', 'rules', 'state', 'updatedAt', 'userId']
