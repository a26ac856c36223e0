/**
 * keygate — API keys for Node.js back ends, with a Rust core.
 *
 * An admin back end creates keys under user accounts, restricts them with rules and
 * changes their state; an integration asks, for every incoming call,
 * `store.isAllowed(secret, service, api, ip?)`.
 *
 * @packageDocumentation
 */

/** State of an API key. Only `active` keys can be used; `revoked` is final. */
export type KeyState = 'active' | 'suspended' | 'revoked'

/** Status of a user account. Keys of a non-active user cannot be used. */
export type UserStatus = 'active' | 'suspended' | 'archived'

/** Why a call was denied: the first failing step of the decision, in this order. */
export type DenyReason =
  | 'malformed_key'
  | 'unknown_key'
  | 'invalid_request'
  | 'suspended'
  | 'revoked'
  | 'expired'
  | 'user_inactive'
  | 'user_lacks_right'
  | 'no_matching_rule'
  | 'ip_not_allowed'

/** The reason `explain` reports: `'allowed'` or the first failing step. */
export type Reason = 'allowed' | DenyReason

/** Stable codes of {@link KeygateError}. */
export type ErrorCode =
  | 'INVALID_ARGUMENT'
  | 'INVALID_RULE'
  | 'EXPIRY_REQUIRED'
  | 'EXPIRY_IN_PAST'
  | 'EXPIRY_TOO_FAR'
  | 'UNKNOWN_USER'
  | 'UNKNOWN_ROLE'
  | 'UNKNOWN_KEY'
  | 'INVALID_STATE'
  | 'REVOKED_IS_FINAL'
  | 'STORE_IO'
  | 'STORE_CORRUPT'
  | 'STORE_LOCKED'

/** Every error code, in the order of SPEC.md. */
export declare const ERROR_CODES: readonly ErrorCode[]

/**
 * The error every keygate call throws. `code` is stable; `message` names the bad value
 * (never a secret). A call that throws has changed nothing.
 *
 * The `TypeError` that `isAllowed`/`explain` throw for a non-string argument is also
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
  keyPrefix?: string
  /** Longest lifetime a key may be given, in whole days; default 730 (two years). */
  maxLifetimeDays?: number
  /** Freeze the store clock at this instant (for tests); see {@link KeyStore.setNow}. */
  now?: Date
}

/** A user account: keys run as a user and inherit its rights. */
export interface User {
  /** 1–128 characters: letters, digits and `_ - . @`. */
  id: string
  status: UserStatus
  /** API rule patterns the user may call (same syntax as key API rules). */
  rights: string[]
  /** Names of roles whose rights the user also has. */
  roles: string[]
}

/** Input of {@link KeyStore.putUser}. */
export interface UserInput {
  id: string
  /** Default `'active'`. */
  status?: UserStatus
  /** Default none. */
  rights?: string[]
  /** Default none; each role must exist. */
  roles?: string[]
}

/** A named list of rights. */
export interface Role {
  /** 1–128 characters: letters, digits and `_ - . @`. */
  name: string
  rights: string[]
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
  /** Rules in list order, normalised (trimmed; IP rules in canonical form). */
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
  /** Free text, at most 1,024 characters (may be empty). */
  description: string
  /** Mandatory; in the future and at most `maxLifetimeDays` ahead. */
  expiresAt: Date
  /** API rules `<service>:<api>` and IP rules `ip=<address>[/<prefix>]`; default none. */
  rules?: string[]
  /** Default `'active'`; a key cannot be created `'revoked'`. */
  state?: 'active' | 'suspended'
}

/** A key together with its secret. The secret is shown this once and cannot be read again. */
export interface IssuedKey {
  key: ApiKey
  secret: string
}

/** Fields {@link KeyStore.updateKey} changes; absent fields stay as they are. */
export interface KeyPatch {
  description?: string
  rules?: string[]
  /** A new expiry (same limits as at creation); `null` is refused with `EXPIRY_REQUIRED`. */
  expiresAt?: Date | null
}

/** Filter of {@link KeyStore.listKeys}. */
export interface KeyFilter {
  userId?: string
  state?: KeyState
}

/** Options of {@link KeyStore.rotateKey}. */
export interface RotateOptions {
  /** Seconds the old key stays usable (never beyond its own expiry); default 0 = revoked at once. */
  overlapSeconds?: number
}

/** The decision on one call, with its reason. */
export interface Decision {
  allowed: boolean
  reason: Reason
  /** The key the secret belongs to (absent for `malformed_key` and `unknown_key`). */
  keyId?: string
  /** The key's user. */
  userId?: string
  /** The first API rule of the key (in list order) that matched the call. */
  matchedRule?: string
}

/** A store of users, roles and API keys, and the place calls are checked. */
export declare class KeyStore {
  private constructor()

  /** An in-memory store, for tests and ephemeral use. Throws `INVALID_ARGUMENT` for bad options. */
  static inMemory(options?: StoreOptions): KeyStore

  /**
   * Checks one rule. Returns the normalised rule; throws `INVALID_RULE` naming the rule and
   * what is wrong with it.
   */
  static validateRule(rule: string): string

  /** The store clock. */
  now(): Date

  /** Freezes the store clock at `date` (tests), or returns to the system clock with `null`. */
  setNow(date: Date | null): void

  /** Creates or replaces a role. Changes apply to the very next check of every key. */
  putRole(role: Role): Role

  /** Deletes a role and removes it from every user holding it. False if there was none. */
  deleteRole(name: string): boolean

  /** A role by name, or `null`. */
  getRole(name: string): Role | null

  /** All roles, by name. */
  listRoles(): Role[]

  /** Creates or replaces a user. Throws `UNKNOWN_ROLE` for a role that does not exist. */
  putUser(user: UserInput): User

  /** A user by id, or `null`. */
  getUser(id: string): User | null

  /** All users, by id. */
  listUsers(): User[]

  /** Deletes a user and all its keys. False if there was none. */
  deleteUser(id: string): boolean

  /** Creates a key under a user. The returned secret is never available again. */
  createKey(input: NewKey): IssuedKey

  /** A key by id, or `null`. */
  getKey(id: string): ApiKey | null

  /** Keys, newest first, optionally of one user and/or in one state. */
  listKeys(filter?: KeyFilter): ApiKey[]

  /** Changes description, rules and/or expiry. Throws `REVOKED_IS_FINAL` for a revoked key. */
  updateKey(id: string, patch: KeyPatch): ApiKey

  /** `active ⇄ suspended`, either → `revoked`; revoked is final (`REVOKED_IS_FINAL`). */
  setState(id: string, state: KeyState): ApiKey

  /**
   * Issues a new key with the same user, description, rules, expiry and state; the old key
   * stays usable for `overlapSeconds` (0, the default, revokes it at once).
   */
  rotateKey(id: string, options?: RotateOptions): IssuedKey

  /** Deletes a key. False if there was none. */
  deleteKey(id: string): boolean

  /**
   * True exactly when the call is allowed (see {@link Decision} for the reasons).
   * Never throws for string arguments; a non-string argument is a `TypeError`.
   */
  isAllowed(secret: string, service: string, api: string, ip?: string): boolean

  /** The decision on a call with its reason; same arguments and guarantees as `isAllowed`. */
  explain(secret: string, service: string, api: string, ip?: string): Decision
}
