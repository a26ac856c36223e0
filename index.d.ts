/**
 * keygate — API keys for Node.js back ends, with a Rust core.
 *
 * An admin back end creates keys under user accounts, restricts them with rules and
 * changes their state; an integration asks, for every incoming call,
 * `store.isAllowed(secret, service, api, ip?)` — or, for a WebDAV request,
 * `store.isAllowedDav(secret, method, path, ip?)`.
 *
 * @packageDocumentation
 */

// The names the core shares with JavaScript come from the binding's string
// enums (binding.d.ts, generated from src/convert.rs); these are their values.
import type * as binding from './binding.js'

/** State of an API key. Only `active` keys can be used; `revoked` is final. */
export type KeyState = `${binding.KeyState}`

/** Status of a user account. Keys of a non-active user cannot be used. */
export type UserStatus = `${binding.UserStatus}`

/**
 * The reason `explain` reports: `'allowed'` or the first failing step of the
 * decision, in this order (the README's "The decision" gives each step).
 */
export type Reason = `${binding.Reason}`

/** Why a call was denied: the first failing step of the decision. */
export type DenyReason = Exclude<Reason, 'allowed'>

/** Stable codes of {@link KeygateError} (`INTERNAL`: a defect inside keygate, reported instead of a crash). */
export type ErrorCode = `${binding.ErrorCode}`

/** The admin calls the audit trail names (an entry's `action`). */
export type AuditAction = `${binding.AuditAction}`

/** Every error code, in the documented order. */
export declare const ERROR_CODES: readonly ErrorCode[]

/**
 * The error every keygate call throws. `code` is stable; `message` names the bad value
 * (never a secret). A call that throws has changed nothing.
 *
 * The `TypeError` that `isAllowed`/`explain` (and their WebDAV twins) throw for a non-string argument is also
 * `instanceof KeygateError` (code `INVALID_ARGUMENT`).
 */
export declare class KeygateError extends Error {
  /** The stable error code. */
  readonly code: ErrorCode
  constructor(code: ErrorCode, message: string)
}

/** Options of {@link KeyStore.inMemory}. */
export interface StoreOptions {
  /** Prefix of issued secrets, `[a-z][a-z0-9]{0,15}`; default `kg` (secrets look like `kg_…`). */
  keyPrefix?: string | undefined
  /**
   * Longest lifetime a key may be given, in whole days from 1 to 36,500; default 730 (two years). A durable
   * store records the value given when it is created and uses it for every process that
   * opens it without this option.
   */
  maxLifetimeDays?: number | undefined
  /** Freeze the store clock at this instant (for tests); see {@link KeyStore.setNow}. */
  now?: Date | undefined
  /**
   * Durable store only: keys expired for longer than this many days are deleted
   * automatically (audited as `purgeExpired`); default 7, as Hornbill does. Like every option
   * for one kind of store, it is checked by every store (0 or more) and ignored by the others,
   * so one configuration serves stores of every kind.
   */
  purgeExpiredAfterDays?: number | undefined
  /**
   * Receives what the store's background threads report (following other processes'
   * changes, keeping the decision memo exact across expiry instants, writing `lastUsedAt`,
   * purging): the first failure of each episode, and the recovery that ends it, on the
   * event loop. Without it they go to `console.error`. Never carries a secret; what it
   * throws is reported on `console.error` and otherwise ignored.
   */
  onError?: ((error: BackgroundError) => void) | undefined
  /**
   * PostgreSQL store only (checked by every store, 1 to 3,600,000): a process that has not known itself current for longer than this (ms:
   * no heartbeat finding the database where it stands, no catch-up reading what it missed)
   * answers `store_unavailable` to every check until it has caught up again; default 5000.
   */
  failClosedAfterMs?: number | undefined
  /** PostgreSQL store only (checked by every store): the longest wait for a connection, in ms, 1 to 3,600,000; default 5000. */
  connectTimeoutMs?: number | undefined
  /**
   * PostgreSQL store only (checked by every store, 1 to 3,600,000): the longest wait for one statement's answer, in ms; default 5000.
   * An admin call that waits longer throws `STORE_UNAVAILABLE` and changes nothing.
   */
  statementTimeoutMs?: number | undefined
  /**
   * Durable store only: `false` opens only a store that exists. A missing or empty file, an
   * SQLite file without tables, or a PostgreSQL database without keygate's tables is then
   * `STORE_IO`, and nothing is created. Default `true`: such a store is created.
   */
  create?: boolean | undefined
}

/** Result of {@link KeyStore.health}. */
export interface StoreHealth {
  /** In contact with the backend (always true for a memory or SQLite store that does not fail closed). */
  connected: boolean
  /**
   * The backend's version of the state this process's checks answer from (0 for memory): it
   * moves only once a change is applied, so a check made after it reads N sees change N.
   */
  appliedVersion: number
  /** How long ago the process last confirmed it was current, in ms. */
  lagMs: number
  /** When the process last heard from its backend. */
  lastContactAt: Date | null
}

/** The task a {@link BackgroundError} concerns. */
export type BackgroundTask = `${binding.Task}`

/**
 * A background failure, or (`recovered: true`) the end of one, as given to
 * `StoreOptions.onError`. While `sync` fails, checks answer `store_unavailable`.
 */
export interface BackgroundError extends KeygateError {
  readonly task: BackgroundTask
  /** True when this reports that the task works again (the error it had failed with is in the message). */
  readonly recovered: boolean
}

/** The last argument of every admin call. */
export interface AdminOptions {
  /**
   * Who makes the change, recorded in the audit trail: 1–256 characters, no control or
   * bidirectional control characters, no secret.
   */
  actor?: string | undefined
  /**
   * For `updateKey`/`setState`/`rotateKey`: the key's `updatedAt` as the caller last read it. If the
   * key changed since, the change is refused with `CONFLICT` (checked inside the store's write).
   * Given to another call, which would not check it, it is refused (`INVALID_ARGUMENT`).
   * `null`, like `undefined`, is taken as left out (no check), by every call.
   */
  expectedUpdatedAt?: Date | null | undefined
}

/** One recorded change. Never holds a secret or its digest. */
export interface AuditEntry {
  /** Position in the trail, from 1. */
  seq: number
  at: Date
  actor?: string
  /** The admin call (`purgeExpired`: the durable store deleting long-expired keys). */
  action: AuditAction
  keyId?: string
  userId?: string
  /**
   * What changed: `{ field: [before, after] }`, `{ created: {...} }`, `{ deleted: {...} }`, …; a
   * rotation's entries name each other (`rotatedFrom` on the new key's, `rotatedTo` on the old key's).
   */
  changes: Record<string, unknown>
  /** SHA-256 (hex) chaining this entry to the previous one. */
  hash: string
}

/** Filter of {@link KeyStore.audit}. */
export interface AuditQuery {
  /** Entries of this action; another name is `INVALID_ARGUMENT`. */
  action?: AuditAction | undefined
  /**
   * Entries whose actor contains this text (ASCII letters in either case). Empty text is
   * `INVALID_ARGUMENT`: every actor contains it (an unset variable would list everyone's changes).
   */
  actor?: string | undefined
  keyId?: string | undefined
  userId?: string | undefined
  /** Entries at or after this instant. */
  since?: Date | undefined
  /** Entries at or before this instant. */
  until?: Date | undefined
  /**
   * Entries numbered below this `seq`: the next page after the last entry read
   * (`audit({ beforeSeq: page[page.length - 1].seq })`), also where many entries share one instant.
   */
  beforeSeq?: number | undefined
  /** At most this many entries (default 100). */
  limit?: number | undefined
}

/** Result of {@link KeyStore.verifyAudit}. */
export interface AuditReport {
  /** True when every entry is intact and none is missing. */
  ok: boolean
  /** Entries verified before the first problem (all of them when `ok`). */
  entries: number
  /** The first entry found altered, or the first missing sequence number. */
  firstBadSeq?: number
  problem?: string
}

/** A user account: keys run as a user and inherit its rights. */
export interface User {
  /** 1–128 characters: letters, digits and `_ - . @`; not `.` or `..`. */
  id: string
  status: UserStatus
  /**
   * What the user may call: API rules and WebDAV rules (same syntax as a key's; never IP
   * rules). An API right never grants a WebDAV request, nor a WebDAV right an API call.
   */
  rights: string[]
  /** Names of roles whose rights the user also has. */
  roles: string[]
}

/**
 * Result of {@link KeyStore.effectiveRights}: what the decision lets a user call (step 7),
 * API and WebDAV rights alike.
 */
export interface EffectiveRights {
  /** The user's own rights. */
  own: string[]
  /** Each of the user's roles that exists, in the user's order, with its rights. */
  byRole: { role: string; rights: string[] }[]
  /** Own rights then each role's, each text once, in order of first appearance. */
  all: string[]
}

/** Input of {@link KeyStore.putUser}. */
export interface UserInput {
  id: string
  /** Default `'active'`. */
  status?: UserStatus | undefined
  /** Default none. */
  rights?: readonly string[] | undefined
  /** Default none; each role must exist. */
  roles?: readonly string[] | undefined
}

/** A named list of rights. */
export interface Role {
  /** 1–128 characters: letters, digits and `_ - . @`; not `.` or `..`. */
  name: string
  rights: string[]
}

/** Input of {@link KeyStore.putRole}: a {@link Role}, whose `rights` may be a readonly array. */
export interface RoleInput {
  /** 1–128 characters: letters, digits and `_ - . @`; not `.` or `..`. */
  name: string
  rights: readonly string[]
}

/** An API key as stored: never its secret nor the secret's digest. */
export interface ApiKey {
  /** Public identifier (`key_…`), safe to log and show. */
  id: string
  userId: string
  description: string
  state: KeyState
  /** The key can be used while `now < expiresAt`. */
  expiresAt: Date
  /**
   * Rules in list order, normalised (trimmed; IP rules in canonical form; WebDAV rules with
   * the method upper-case and no leading `/` on the path).
   */
  rules: string[]
  createdAt: Date
  updatedAt: Date
  /** Last successful check, exact to within a second; `null` if never used. */
  lastUsedAt: Date | null
  /** Last 4 characters of the secret, to recognise a key in a list. */
  hint: string
}

/** Input of {@link KeyStore.createKey}. */
export interface NewKey {
  userId: string
  /** Free text, at most 1,024 characters (may be empty), none of them NUL; no secret. */
  description: string
  /** Mandatory; in the future and at most `maxLifetimeDays` ahead. */
  expiresAt: Date
  /**
   * API rules `<service>:<api>`, IP rules `ip=<address>[/<prefix>]` and WebDAV rules
   * `dav=<method> <path>`; default none.
   */
  rules?: readonly string[] | undefined
  /** Default `'active'`; a key cannot be created `'revoked'`. */
  state?: 'active' | 'suspended' | undefined
  // What an ApiKey has besides: a key read back (or spread, `{ ...key }`) is no new key, and
  // `createKey` refuses it (INVALID_ARGUMENT), so the types refuse it too.
  /** Not a field of a new key (the store gives the id): `createKey` refuses it. */
  id?: never
  /** Not a field of a new key: `createKey` refuses it. */
  createdAt?: never
  /** Not a field of a new key: `createKey` refuses it. */
  updatedAt?: never
  /** Not a field of a new key: `createKey` refuses it. */
  lastUsedAt?: never
  /** Not a field of a new key: `createKey` refuses it. */
  hint?: never
}

/** A key together with its secret. The secret is shown this once and cannot be read again. */
export interface IssuedKey {
  key: ApiKey
  secret: string
}

/** Fields {@link KeyStore.updateKey} changes; absent fields stay as they are. */
export interface KeyPatch {
  description?: string | undefined
  rules?: readonly string[] | undefined
  /** A new expiry (same limits as at creation); `null` is refused with `EXPIRY_REQUIRED`. */
  expiresAt?: Date | null | undefined
  // What an ApiKey has besides: a key read back (or spread, `{ ...key, description }`) is no
  // patch, and `updateKey` refuses it (INVALID_ARGUMENT), so the types refuse it too.
  /** Not a field of a patch: `updateKey` refuses it. */
  id?: never
  /** Not a field of a patch (a key's user cannot be changed): `updateKey` refuses it. */
  userId?: never
  /** Not a field of a patch (a key's state is changed with `setState`): `updateKey` refuses it. */
  state?: never
  /** Not a field of a patch: `updateKey` refuses it. */
  createdAt?: never
  /** Not a field of a patch: `updateKey` refuses it. */
  updatedAt?: never
  /** Not a field of a patch: `updateKey` refuses it. */
  lastUsedAt?: never
  /** Not a field of a patch: `updateKey` refuses it. */
  hint?: never
  /** An option, not a field of a patch: `updateKey(id, patch, { expectedUpdatedAt })`. */
  expectedUpdatedAt?: never
}

/** Filter of {@link KeyStore.listKeys}. */
export interface KeyFilter {
  userId?: string | undefined
  state?: KeyState | undefined
  /**
   * Only keys whose id, description or hint holds this text, in any letter case: each text is
   * lower-cased a character at a time (Unicode, no locale; a final sigma `ς` as `σ`), with no
   * other folding or normalisation (`ß` does not find `ss`, nor `é` an `e` and a combining
   * accent). Empty: every key. At most 1,024 characters (`INVALID_ARGUMENT`, the text not quoted).
   */
  search?: string | undefined
}

/** Query of {@link KeyStore.listKeysPage}: a filter, the page size and where the page starts. */
export interface KeyPageQuery extends KeyFilter {
  /** At most this many keys: a whole number from 1 to 1,000 (default 100). */
  limit?: number | undefined
  /** The `next` of the page before; left out (or `undefined`) for the first page. */
  after?: string | undefined
}

/** A page of {@link KeyStore.listKeysPage}. */
export interface KeyPage {
  keys: ApiKey[]
  /** Pass as `after` for the next page; `null` when this page holds the listing's last key. */
  next: string | null
}

/** Options of {@link KeyStore.putRole} and {@link KeyStore.putUser}. */
export interface PutOptions extends AdminOptions {
  /**
   * What the call expects to find, checked inside the store's write (so no change of another
   * process or host can come between): `'new'` creates only, and refuses with `CONFLICT` if the
   * role or user exists; `'existing'` replaces only, and refuses with `UNKNOWN_ROLE` /
   * `UNKNOWN_USER` if it does not. Default: create or replace.
   */
  expect?: 'new' | 'existing' | undefined
}

/** Options of {@link KeyStore.rotateKey}. */
export interface RotateOptions extends AdminOptions {
  /** Seconds the old key stays usable (never beyond its own expiry); default 0 = revoked at once. */
  overlapSeconds?: number | undefined
}

/** What {@link KeyStore.copy} wrote. */
export interface CopyReport {
  roles: number
  users: number
  keys: number
  auditEntries: number
}

/**
 * The decision on one call, with its reason. `allowed` tells the two kinds apart: when it is
 * `true` the reason is `'allowed'` and the key and user are named; when `false` the reason is
 * why not.
 */
export type Decision = AllowedDecision | DeniedDecision

/** A call allowed: a key was found, and every step of the decision passed. */
export interface AllowedDecision {
  allowed: true
  reason: 'allowed'
  /** The key the secret belongs to. */
  keyId: string
  /** The key's user. */
  userId: string
  /**
   * The first rule of the key (in list order) that matched: an API rule for a call
   * (`explain`), a WebDAV rule for a WebDAV request (`explainDav`); absent when the key has
   * no rules of that kind (it is unrestricted).
   */
  matchedRule?: string
}

/** A call denied, with the first failing step of the decision. */
export interface DeniedDecision {
  allowed: false
  reason: DenyReason
  /** The key the secret belongs to (absent for `malformed_key`, `unknown_key` and `store_unavailable`). */
  keyId?: string
  /** The key's user (absent when `keyId` is). */
  userId?: string
  /**
   * The first rule of the key (in list order) that matched, when the IP check (step 9)
   * then denies the call.
   */
  matchedRule?: string
}

/** A store of users, roles and API keys, and the place calls are checked. */
export declare class KeyStore {
  private constructor()

  /** An in-memory store, for tests and ephemeral use. Throws `INVALID_ARGUMENT` for bad options. */
  static inMemory(options?: StoreOptions): KeyStore

  /**
   * Opens (or creates) the durable store in one SQLite file. Several processes may open the
   * same file: a change made by one is seen by the others' next checks within milliseconds (each
   * looks for other processes' changes every 10 ms).
   * Throws `STORE_IO` (cannot open, a directory, no permission), `STORE_CORRUPT` (not a keygate
   * store, damaged, or written by a newer keygate) or `STORE_LOCKED` (another process holds
   * the write lock too long). `keyPrefix`, when given, must match the store's. `path` is a file
   * path: `''`, `':memory:'` and `file:` URIs (any case) are refused with `INVALID_ARGUMENT`
   * before any file is touched (`./dev.db`, not `file:./dev.db`; `KeyStore.inMemory()` for memory).
   *
   * A `postgres://` or `postgresql://` URL (`?sslmode=disable|prefer|require|verify-ca|verify-full`,
   * `sslrootcert=<file>`) opens the shared store in that PostgreSQL database instead, with the same
   * API and semantics: every admin call is committed there before it returns, checks never do I/O,
   * and other hosts' changes arrive within milliseconds. Throws `STORE_UNAVAILABLE` when the
   * database cannot be reached within `connectTimeoutMs`, and `INVALID_ARGUMENT` for a bad URL or a
   * server that cannot LISTEN (a read-only replica, a pooler in transaction mode).
   */
  static open(path: string, options?: StoreOptions): KeyStore

  /**
   * Checks one rule. Returns the normalised rule; throws `INVALID_RULE` naming the rule and
   * what is wrong with it.
   */
  static validateRule(rule: string): string

  /**
   * Copies the whole of `from` — roles, users, keys (ids, secret digests, states,
   * `lastUsedAt`) and the audit trail, entry for entry, so `verifyAudit` passes on the copy —
   * into `to`, which must hold nothing yet (`INVALID_ARGUMENT` otherwise, and `to` is left as
   * it was). Secrets issued by `from` work on `to`. Moves a store between SQLite files or to
   * another kind of store (`keygate copy <from> <to>`). `to` is written in one transaction.
   */
  static copy(from: KeyStore, to: KeyStore): CopyReport

  /** Flushes pending writes (`lastUsedAt`) and releases the store; later calls throw `STORE_IO`. */
  close(): void

  /** Whether the store follows its backend (see {@link StoreHealth}). */
  health(): StoreHealth

  /**
   * Writes a consistent copy of the SQLite store to a new file `path` (SQLite's online
   * backup, safe while other processes use the store). `STORE_IO` if `path` exists;
   * `INVALID_ARGUMENT` for `''`, `':memory:'` or a `file:` URI (any case), nothing written.
   * An in-memory store (no file) or a PostgreSQL store (use `pg_dump`) is `INVALID_ARGUMENT`;
   * `KeyStore.copy` copies either into a new SQLite file.
   */
  backup(path: string): void

  /**
   * The audit trail, newest first. A durable store keeps every entry; an in-memory store keeps
   * the latest 1,000 (and `verifyAudit` checks that window).
   */
  audit(query?: AuditQuery): AuditEntry[]

  /** Verifies the audit trail's hash chain; reports the first entry altered or removed. */
  verifyAudit(): AuditReport

  /** The prefix of this store's secrets (`kg` unless created with another `keyPrefix`). */
  readonly keyPrefix: string

  /**
   * Whether opening this store made it: a new (or empty) SQLite file, or keygate's tables in a
   * PostgreSQL database that had none. Always true for `KeyStore.inMemory()`.
   */
  readonly created: boolean

  /** The longest lifetime a key may be given, in days (`maxLifetimeDays`). */
  readonly maxLifetimeDays: number

  /** The store clock. */
  now(): Date

  /** Freezes the store clock at `date` (tests), or returns to the system clock with `null`. */
  setNow(date: Date | null): void

  /**
   * Creates or replaces a role (`options.expect`: create only, or replace only). Changes apply
   * to the very next check of every key. A field besides `name` and `rights` is refused
   * (`INVALID_ARGUMENT`); a role read back with `getRole` is taken as it is.
   */
  putRole(role: RoleInput, options?: PutOptions): Role

  /** Deletes a role and removes it from every user holding it. False if there was none. */
  deleteRole(name: string, options?: AdminOptions): boolean

  /** A role by name, or `null`. */
  getRole(name: string): Role | null

  /** All roles, by name. */
  listRoles(): Role[]

  /**
   * Creates or replaces a user (`options.expect`: create only, or replace only). Throws
   * `UNKNOWN_ROLE` for a role that does not exist. A field besides those of `UserInput` is
   * refused (`INVALID_ARGUMENT`); a user read back with `getUser` is taken as it is.
   */
  putUser(user: UserInput, options?: PutOptions): User

  /** A user by id, or `null`. */
  getUser(id: string): User | null

  /** The user's effective rights (own ∪ its roles'), or `null` when there is no such user. */
  effectiveRights(userId: string): EffectiveRights | null

  /** All users, by id. */
  listUsers(): User[]

  /** Deletes a user and all its keys. False if there was none. */
  deleteUser(id: string, options?: AdminOptions): boolean

  /**
   * Creates a key under a user. The returned secret is never available again. A field besides
   * those of `NewKey` is refused (`INVALID_ARGUMENT`): a misspelt `rules` would leave the key
   * unrestricted.
   */
  createKey(input: NewKey, options?: AdminOptions): IssuedKey

  /** A key by id, or `null`. */
  getKey(id: string): ApiKey | null

  /** Keys, newest first, optionally of one user and/or in one state. */
  listKeys(filter?: KeyFilter): ApiKey[]

  /**
   * One page of {@link listKeys}' listing: at most `limit` keys (default 100, at most 1,000),
   * newest first, after the page whose `next` is passed as `after`. Keys deleted between pages
   * never make a later page fail, skip or repeat a key; keys created since the first page are
   * newer, so they are not in later pages. `after` is not a key id: a value this store did not
   * give is `INVALID_ARGUMENT`.
   *
   * ```ts
   * let after: string | undefined
   * do {
   *   const page = store.listKeysPage({ userId: 'svc-requests', after })
   *   for (const key of page.keys) console.log(key.id)
   *   after = page.next ?? undefined
   * } while (after !== undefined)
   * ```
   *
   * `after: null` is refused (`INVALID_ARGUMENT`), not read as "from the start": a loop passing
   * the last page's `next` back would otherwise list everything again, for ever.
   */
  listKeysPage(query?: KeyPageQuery): KeyPage

  /**
   * Changes description, rules and/or expiry; values the key already has are no change (its
   * `updatedAt` stays, nothing is recorded). Throws `REVOKED_IS_FINAL` for a revoked key. A
   * field besides those of `KeyPatch` is refused (`INVALID_ARGUMENT`): a `state` (changed with
   * `setState`), and so a key read back.
   */
  updateKey(id: string, patch: KeyPatch, options?: AdminOptions): ApiKey

  /** `active ⇄ suspended`, either → `revoked`; revoked is final (`REVOKED_IS_FINAL`). */
  setState(id: string, state: KeyState, options?: AdminOptions): ApiKey

  /**
   * Issues a new key with the same user, description, rules, expiry and state; the old key
   * stays usable for `overlapSeconds` (0, the default, revokes it at once).
   */
  rotateKey(id: string, options?: RotateOptions): IssuedKey

  /** Deletes a key. False if there was none. */
  deleteKey(id: string, options?: AdminOptions): boolean

  /**
   * True exactly when the call is allowed (see {@link Decision} for the reasons).
   * Never throws for string arguments on an open store (a closed one throws `STORE_IO`); a
   * non-string argument is a `TypeError`. An `ip` left
   * out, `undefined` or `null` is no caller address: a key with IP rules is `ip_not_allowed`.
   */
  isAllowed(secret: string, service: string, api: string, ip?: string | null): boolean

  /**
   * The decision on a call with its reason; same arguments and guarantees as `isAllowed`.
   * A diagnosis, not a use: it does not set `lastUsedAt`.
   */
  explain(secret: string, service: string, api: string, ip?: string | null): Decision

  /**
   * `explain` for an admin who holds the key id but not the secret: steps 3–9 of the
   * decision for that key (reason `'unknown_key'` when no key has this id). Also a
   * diagnosis, not a use. A non-string argument is a `TypeError`.
   */
  explainKey(keyId: string, service: string, api: string, ip?: string | null): Decision

  /**
   * True exactly when the WebDAV request is allowed: the decision of {@link isAllowed}
   * with step 3 checking `method` (1–32 letters, any case) and `path` (1–1,024 characters
   * of `A-Z a-z 0-9 _ - . / ~`, one leading `/` ignored, a trailing `/` allowed; no `.`,
   * `..` or empty segment: `docs/../x`, `a//b` and `%2F` are `invalid_request`), step 7
   * the user's WebDAV rights, step 8 the key's WebDAV rules (none = unrestricted) and
   * step 9 its IP rules. API rules never decide a WebDAV request.
   * Never throws for string arguments on an open store (a closed one throws `STORE_IO`); a
   * non-string argument is a `TypeError`.
   */
  isAllowedDav(secret: string, method: string, path: string, ip?: string | null): boolean

  /**
   * The decision on a WebDAV request with its reason; same arguments and guarantees as
   * `isAllowedDav`. `matchedRule` is the first WebDAV rule that matched. A diagnosis,
   * not a use: it does not set `lastUsedAt`.
   */
  explainDav(secret: string, method: string, path: string, ip?: string | null): Decision

  /**
   * `explainDav` for an admin who holds the key id but not the secret: steps 3–9 of the
   * decision for that key (reason `'unknown_key'` when no key has this id).
   */
  explainKeyDav(keyId: string, method: string, path: string, ip?: string | null): Decision
}
