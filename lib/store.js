'use strict'

const native = require('./native.js')
const args = require('./args.js')
const { KeygateError, fromNative, typeError, redactSecrets } = require('./errors.js')
const { Memo, hintOf, memoOffWords, everyHint } = require('./memo.js')
const { visible } = require('./visible.js')

// The names the core shares, from the binding's string enums (`src/convert.rs`).
/** Reason names, in the order of their codes (the code is the index). */
const REASONS = Object.freeze(Object.values(native.Reason))
const KEY_STATES = Object.freeze(Object.values(native.KeyState))
const USER_STATUSES = Object.freeze(Object.values(native.UserStatus))
const AUDIT_ACTIONS = Object.freeze(Object.values(native.AuditAction))

// The packed verdict of `native.check` (see crates/keygate-core/src/memo.rs).
const { VERDICT_REASON_MASK, VERDICT_KNOWN_KEY, VERDICT_DEPENDS_ON_IP, VERDICT_TRANSIENT, VERDICT_FIRST_CHECK } = native
/**
 * The verdict bits that decide whether the memo remembers a decision: only when, of these,
 * VERDICT_KNOWN_KEY alone is set (not transient, not the key's first check; see
 * crates/keygate-core/src/memo.rs).
 */
const REMEMBER_BITS = VERDICT_KNOWN_KEY | VERDICT_TRANSIENT | VERDICT_FIRST_CHECK
const MALFORMED_KEY = REASONS.indexOf(native.Reason.MalformedKey)
const UNKNOWN_KEY = REASONS.indexOf(native.Reason.UnknownKey)

/** Where keygate/http finds the reason of a call (package-internal). */
const REASON = Symbol.for('keygate.reason')
/** `store[SCRUB](message)`: see `KeyStore#[SCRUB]` (for the CLI, the admin server and the HTTP guard). */
const SCRUB = Symbol.for('keygate.scrub')
/** Where keygate/http finds the reason of a WebDAV request (package-internal). */
const REASON_DAV = Symbol.for('keygate.reasonDav')
/** `store[KEY_COUNTS]()`: see `KeyStore#[KEY_COUNTS]` (for keygate/admin's list of users). */
const KEY_COUNTS = Symbol.for('keygate.keyCounts')

const CONSTRUCT = Symbol('keygate.construct')

/**
 * @typedef {import('./native.js').Handle} Handle
 * @typedef {import('../binding.js').KeyDto} KeyDto
 * @typedef {import('../binding.js').IssuedDto} IssuedDto
 * @typedef {import('../binding.js').UserDto} UserDto
 * @typedef {import('../binding.js').RoleDto} RoleDto
 * @typedef {import('../binding.js').AuditEntryDto} AuditEntryDto
 * @typedef {import('../binding.js').ExplanationDto} ExplanationDto
 * @typedef {import('../binding.js').StoreOptionsDto} StoreOptionsDto
 * @typedef {import('../index.js').ApiKey} ApiKey
 * @typedef {import('../index.js').IssuedKey} IssuedKey
 * @typedef {import('../index.js').User} User
 * @typedef {import('../index.js').UserInput} UserInput
 * @typedef {import('../index.js').Role} Role
 * @typedef {import('../index.js').NewKey} NewKey
 * @typedef {import('../index.js').KeyPatch} KeyPatch
 * @typedef {import('../index.js').KeyFilter} KeyFilter
 * @typedef {import('../index.js').KeyPageQuery} KeyPageQuery
 * @typedef {import('../index.js').KeyState} KeyState
 * @typedef {import('../index.js').RotateOptions} RotateOptions
 * @typedef {import('../index.js').AdminOptions} AdminOptions
 * @typedef {import('../index.js').PutOptions} PutOptions
 * @typedef {import('../index.js').StoreOptions} StoreOptions
 * @typedef {import('../index.js').AuditEntry} AuditEntry
 * @typedef {import('../index.js').AuditQuery} AuditQuery
 * @typedef {import('../index.js').AuditReport} AuditReport
 * @typedef {import('../index.js').Decision} Decision
 * @typedef {import('../index.js').Reason} ReasonName
 * @typedef {import('../index.js').ErrorCode} ErrorCode
 * @typedef {import('../index.js').BackgroundTask} BackgroundTask
 * @typedef {import('../index.js').BackgroundError} BackgroundError
 * @typedef {[code: ErrorCode, message: string, task: BackgroundTask, recovered: boolean, consequence: string]} Incident
 */

/**
 * Runs a native call, its error turned into a KeygateError.
 * @template T
 * @param {() => T} fn
 * @returns {T}
 */
function call(fn) {
  try {
    return fn()
  } catch (error) {
    throw fromNative(error)
  }
}

/**
 * A field the core may leave out of what it answers, read as the answer's own: a field left out
 * is never read through the prototype chain (a polluted `Object.prototype.actor` would otherwise
 * show as every audit entry's actor).
 * @template {object} T
 * @template {keyof T} K
 * @param {T} dto
 * @param {K} field
 * @returns {NonNullable<T[K]> | undefined}
 */
function ownField(dto, field) {
  const value = Object.hasOwn(dto, field) ? dto[field] : undefined
  return value == null ? undefined : /** @type {NonNullable<T[K]>} */ (value)
}

/**
 * The `fields` the core gave in `dto` (see `ownField`), the others left out.
 * @template {object} T
 * @template {keyof T} K
 * @param {T} dto
 * @param {K[]} fields
 * @returns {Partial<Record<K, NonNullable<T[K]>>>}
 */
function givenFields(dto, fields) {
  /** @type {Partial<Record<K, NonNullable<T[K]>>>} */
  const given = {}
  for (const field of fields) {
    const value = ownField(dto, field)
    if (value !== undefined) given[field] = value
  }
  return given
}

/**
 * @param {KeyDto} dto
 * @returns {ApiKey}
 */
function toKey(dto) {
  const lastUsedAt = ownField(dto, 'lastUsedAt')
  return {
    id: dto.id,
    userId: dto.userId,
    description: dto.description,
    // The DTO carries it as a string; src/convert.rs names only the states of index.d.ts.
    state: /** @type {KeyState} */ (dto.state),
    expiresAt: new Date(dto.expiresAt),
    rules: dto.rules,
    createdAt: new Date(dto.createdAt),
    updatedAt: new Date(dto.updatedAt),
    lastUsedAt: lastUsedAt === undefined ? null : new Date(lastUsedAt),
    hint: dto.hint,
  }
}

/**
 * @param {IssuedDto} dto
 * @returns {IssuedKey}
 */
function toIssued(dto) {
  return { key: toKey(dto.key), secret: dto.secret }
}

/**
 * @param {UserDto} dto
 * @returns {User}
 */
function toUser(dto) {
  return { id: dto.id, status: /** @type {User['status']} */ (dto.status), rights: dto.rights, roles: dto.roles }
}

/**
 * @param {RoleDto} dto
 * @returns {Role}
 */
function toRole(dto) {
  return { name: dto.name, rights: dto.rights }
}

/**
 * The argument types of a call, checked for JavaScript callers (TypeError).
 * @param {unknown} secret
 * @param {unknown} service
 * @param {unknown} api
 * @param {unknown} ip
 */
function checkCallTypes(secret, service, api, ip) {
  if (typeof secret !== 'string') throw typeError(`secret must be a string, got ${typeof secret}`)
  if (typeof service !== 'string') throw typeError(`service must be a string, got ${typeof service}`)
  if (typeof api !== 'string') throw typeError(`api must be a string, got ${typeof api}`)
  if (ip !== undefined && ip !== null && typeof ip !== 'string') throw typeError(`ip must be a string, got ${typeof ip}`)
}

/**
 * The argument types of a WebDAV request, checked for JavaScript callers (TypeError).
 * @param {unknown} secret
 * @param {unknown} method
 * @param {unknown} path
 * @param {unknown} ip
 */
function checkDavTypes(secret, method, path, ip) {
  if (typeof secret !== 'string') throw typeError(`secret must be a string, got ${typeof secret}`)
  if (typeof method !== 'string') throw typeError(`method must be a string, got ${typeof method}`)
  if (typeof path !== 'string') throw typeError(`path must be a string, got ${typeof path}`)
  if (ip !== undefined && ip !== null && typeof ip !== 'string') throw typeError(`ip must be a string, got ${typeof ip}`)
}

/** The options of `KeyStore.open` and `KeyStore.inMemory`. */
const STORE_OPTIONS = ['keyPrefix', 'maxLifetimeDays', 'now', 'purgeExpiredAfterDays', 'failClosedAfterMs', 'connectTimeoutMs', 'statementTimeoutMs', 'onError', 'create']

/**
 * @param {unknown} options as given: checked here
 * @param {string} [name] what they are called in messages (`options.storeOptions` for serve's)
 * @returns {StoreOptionsDto & { now: number | undefined }}
 */
function storeOptions(options, name = 'options') {
  const o = optionsOf(options, STORE_OPTIONS, name)
  return {
    keyPrefix: args.optionalString(o.keyPrefix, `${name}.keyPrefix`),
    maxLifetimeDays: args.optionalNumber(o.maxLifetimeDays, `${name}.maxLifetimeDays`),
    now: args.optionalDate(o.now, `${name}.now`),
    purgeExpiredAfterDays: args.optionalNumber(o.purgeExpiredAfterDays, `${name}.purgeExpiredAfterDays`),
    failClosedAfterMs: args.optionalNumber(o.failClosedAfterMs, `${name}.failClosedAfterMs`),
    connectTimeoutMs: args.optionalNumber(o.connectTimeoutMs, `${name}.connectTimeoutMs`),
    statementTimeoutMs: args.optionalNumber(o.statementTimeoutMs, `${name}.statementTimeoutMs`),
    create: args.optionalBoolean(o.create, `${name}.create`),
  }
}

/**
 * @param {unknown} options as given: checked here
 * @param {string} [name] what they are called in messages
 * @returns {StoreOptions['onError']}
 */
function onErrorOption(options, name = 'options') {
  const onError = args.optionalObject(options, name).onError
  if (onError !== undefined && typeof onError !== 'function') {
    throw new KeygateError('INVALID_ARGUMENT', `${name}.onError must be a function, got ${typeof onError}`)
  }
  return /** @type {StoreOptions['onError']} */ (onError)
}

/**
 * Checks options meant for `KeyStore.open` (their names and types; their values are the core's)
 * as `name`, so that a caller passing them on (serve's `storeOptions`) is told where they were.
 * @param {unknown} options
 * @param {string} name
 */
function checkStoreOptions(options, name) {
  storeOptions(options, name)
  onErrorOption(options, name)
}

/**
 * What the core's background threads report, on the event loop: a failure (the first of
 * an episode) or the recovery that ends it. Goes to `onError` as a KeygateError with
 * `task` and `recovered`, else to console.error; never a secret, never a throw.
 *
 * The binding keeps the reporter alive (a strong reference) for as long as the native store
 * lives, and the native store lives until its JavaScript store is collected: an `onError` that
 * refers to the store (`onError: (e) => log(e, store.health())`) held by the reporter would keep
 * the store, its memo and its threads alive forever. So the reporter reaches `onError` only
 * through a WeakRef to `holder`, which the store keeps (see the KeyStore constructor).
 * @param {StoreOptions['onError']} onError
 * @returns {{ report: (...args: [Incident] | Incident) => void, holder: { onError: StoreOptions['onError'] } }}
 */
function incidentReporter(onError) {
  const holder = { onError }
  const weak = new WeakRef(holder)
  // The binding hands over [code, message, task, recovered, consequence] (as one array, or spread);
  // the consequence says what fails while the task does.
  /** @param {[Incident] | Incident} args */
  const report = (...args) => {
    const [code, message, task, recovered, consequence] = /** @type {Incident} */ (Array.isArray(args[0]) ? args[0] : args)
    const text = redactSecrets(message)
    const error = Object.assign(new KeygateError(code, recovered ? `${task} works again (it had failed with ${code}: ${text})` : text), { task, recovered })
    // Gone only once the store was collected (its native part not yet): then console.error.
    const onError = weak.deref()?.onError
    if (onError !== undefined) {
      try {
        onError(error)
        return
      } catch (thrown) {
        console.error(visible(`keygate: options.onError threw while reporting ${code} (${task}): ${redactSecrets(thrown?.message)}`))
      }
    }
    // One line, whatever the message quotes (a PostgreSQL server's message, a trigger's RAISE).
    console.error(visible(recovered ? `keygate: ${error.message}` : `keygate: ${task} failed: ${code}: ${text}; ${consequence}`))
  }
  return { report, holder }
}

/** The options every admin call takes (`AdminOptions`); `putUser`/`putRole` take `expect` too, `rotateKey` `overlapSeconds`. */
const ADMIN_OPTIONS = ['actor', 'expectedUpdatedAt']
const PUT_OPTIONS = [...ADMIN_OPTIONS, 'expect']
const ROTATE_OPTIONS = [...ADMIN_OPTIONS, 'overlapSeconds']
/** The fields of the entities and the patch a caller passes (`NewKey`, `KeyPatch`, `UserInput`, `Role`); the admin API's routes take the same. */
const NEW_KEY_FIELDS = Object.freeze(['userId', 'description', 'expiresAt', 'rules', 'state'])
const KEY_PATCH_FIELDS = Object.freeze(['description', 'rules', 'expiresAt'])
const USER_FIELDS = Object.freeze(['id', 'status', 'rights', 'roles'])
const ROLE_FIELDS = Object.freeze(['name', 'rights'])
/** The fields of a `KeyFilter`. */
const KEY_FILTER = Object.freeze(['userId', 'state', 'search'])
/** The fields of a `KeyPageQuery`. */
const KEY_PAGE_QUERY = Object.freeze([...KEY_FILTER, 'limit', 'after'])
/** The largest page of `listKeysPage` (the core refuses more too). */
const MAX_KEY_PAGE = 1000

/**
 * `listKeysPage`'s `after`. Null is the last page's `next`: read as "from the start", a loop
 * passing it back would list every key again, for ever.
 * @param {unknown} after
 */
function afterOf(after) {
  if (after === null) {
    throw new KeygateError('INVALID_ARGUMENT', 'query.after is null: the page before was the last (its next is null); leave after out for the first page')
  }
  return args.optionalString(after, 'query.after')
}
/** The fields of a new key that restrict it: left unread, the key would be made free of them (a user's is its status). */
const NEW_KEY_RESTRICTIONS = ['rules', 'state']
/** Why a field of a key a caller may put in a patch is not there: ignored, `state` would leave a key meant revoked usable. */
const KEY_PATCH_HINTS = {
  state: "a key's state is changed with setState",
  userId: "a key's user cannot be changed",
  expectedUpdatedAt: 'it is an option: updateKey(id, patch, { expectedUpdatedAt })',
}
/** The fields of an `AuditQuery`. */
const AUDIT_QUERY = ['action', 'actor', 'keyId', 'userId', 'since', 'until', 'beforeSeq', 'limit']

/**
 * An optional object of named options, read by its own fields, refusing a field not among
 * `known` (INVALID_ARGUMENT naming it): a misspelt `expectedUpdatedAt` would otherwise drop the
 * check it asks for without a word.
 * @param {unknown} value
 * @param {readonly string[]} known
 * @param {string} name
 */
function optionsOf(value, known, name = 'options') {
  return onlyKnown(args.optionalObject(value, name), known, name)
}

/**
 * An entity or patch argument (a new key, a user, a role, a key's patch), refusing a field it
 * does not have (INVALID_ARGUMENT naming it): a misspelt `rules` would otherwise create a key
 * with no rules, free to call whatever its user may.
 * @param {unknown} value
 * @param {readonly string[]} known
 * @param {string} name
 * @param {Readonly<Record<string, string>>} [hints]
 */
function fieldsOf(value, known, name, hints) {
  return onlyKnown(args.object(value, name), known, name, { noun: 'field', hints })
}

/**
 * `o`, once each of its own fields is among `known` (else INVALID_ARGUMENT, see `args.unknownOption`).
 * @template {object} T
 * @param {T} o
 * @param {readonly string[]} known
 * @param {string} name
 * @param {{ noun?: string, hints?: Readonly<Record<string, string>> }} [how]
 * @returns {T}
 */
function onlyKnown(o, known, name, how) {
  const unknown = args.unknownOption(o, known, name, how)
  if (unknown !== undefined) throw new KeygateError('INVALID_ARGUMENT', unknown)
  return o
}

/**
 * Refuses an object that only inherits one of `fields` (a getter of its class, a prototype set
 * by `Object.assign` of parsed JSON or a polluted `Object.prototype`) where leaving it unread
 * would loosen what the caller asked for: only own fields are read, and a new key made without
 * the rules its caller meant would be free to call whatever its user may, a user meant to be
 * suspended would be active, a patch would change nothing and say it had.
 * @param {object} value as given (after `fieldsOf`)
 * @param {readonly string[]} fields
 * @param {string} name
 * @param {string} consequence what leaving it unread would do (`the key would be made without it`)
 */
function refuseInherited(value, fields, name, consequence) {
  const inherited = fields.find((field) => !Object.hasOwn(value, field) && field in value)
  if (inherited !== undefined) {
    throw new KeygateError(
      'INVALID_ARGUMENT',
      `${name}.${inherited} is inherited, not the object's own (a getter of a class, or a prototype): it would not be read, and ${consequence}; pass a plain object`,
    )
  }
}

/**
 * The `{ actor }` option of admin calls.
 * @param {unknown} options as given: checked here
 */
function actorOf(options) {
  const o = optionsOf(options, ADMIN_OPTIONS)
  withoutPrecondition(o)
  return args.optionalString(o.actor, 'options.actor')
}

/**
 * Refuses an `expectedUpdatedAt` given to a call that does not check it (only `updateKey`,
 * `setState` and `rotateKey` do): ignored, a delete asked for "only if the key is as I read it"
 * would be made whatever the key had become. Left out, `undefined` or `null`, it is not in the way.
 * @param {{ expectedUpdatedAt?: unknown }} o options as read by `optionsOf`
 */
function withoutPrecondition(o) {
  if (o.expectedUpdatedAt !== undefined && o.expectedUpdatedAt !== null) {
    throw new KeygateError(
      'INVALID_ARGUMENT',
      'options.expectedUpdatedAt is checked by updateKey, setState and rotateKey only; this call would make its change without it',
    )
  }
}

/**
 * The options of `putRole`/`putUser`, each field read once: who made the change, and what it
 * expects to find (`'new'`: create only; `'existing'`: replace only; checked by the core).
 * @param {unknown} options as given: checked here
 */
function putOptionsOf(options) {
  const o = optionsOf(options, PUT_OPTIONS)
  withoutPrecondition(o)
  return { actor: args.optionalString(o.actor, 'options.actor'), expect: args.optionalString(o.expect, 'options.expect') }
}

/**
 * The options of a change of a key, each field read once: who made it, and its
 * optimistic-concurrency precondition (the key's `updatedAt` as last read).
 * @param {{ actor?: unknown, expectedUpdatedAt?: unknown }} o options as read by `args.optionalObject`
 */
function changeOptionsOf(o) {
  return {
    actor: args.optionalString(o.actor, 'options.actor'),
    expected: args.optionalDate(o.expectedUpdatedAt, 'options.expectedUpdatedAt'),
  }
}

/** @param {AuditEntryDto} dto */
function toAuditEntry(dto) {
  /** @type {AuditEntry} */
  const entry = { seq: dto.seq, at: new Date(dto.at), action: /** @type {AuditEntry['action']} */ (dto.action), changes: JSON.parse(dto.detail), hash: dto.hash }
  return Object.assign(entry, givenFields(dto, ['actor', 'keyId', 'userId']))
}

function closedError() {
  return new KeygateError('STORE_IO', 'the store is closed')
}

/**
 * Stands in for the memo once the store is closed: every check fails clearly. Typed as a
 * Memo: a closed store reaches only these two methods.
 */
const CLOSED_MEMO = /** @type {Memo} */ (
  /** @type {unknown} */ ({
    find() {
      throw closedError()
    },
    flushUses() {},
  })
)

/**
 * The stores not yet closed, held weakly: when the process (or a worker) exits, the uses
 * their memos and cores noted in the last second are written (see `flushOpenStores`).
 * @type {Set<WeakRef<KeyStore>>}
 */
const OPEN_STORES = new Set()
/** Drops a collected store's entry from OPEN_STORES. */
const forgetCollected = new FinalizationRegistry((/** @type {WeakRef<KeyStore>} */ ref) => OPEN_STORES.delete(ref))
/**
 * The 'exit' listener (set by KeyStore's static block, where it can reach the stores'
 * private fields), added with the first store.
 * @type {() => void}
 */
let flushOpenStores = () => {}
let exitListened = false

class KeyStore {
  /** @type {Handle} */
  #handle
  /** @type {Memo} */
  #memo
  /** This store's entry in OPEN_STORES (durable stores only). @type {WeakRef<KeyStore> | undefined} */
  #openEntry
  /**
   * `native.check` bound to this store (see `native.bindCheck`): one argument fewer, no handle to unwrap.
   * @type {import('./native.js').BoundCheck}
   */
  #check
  /** @type {import('./native.js').BoundCheck} */
  #checkDav
  /**
   * WebDAV decisions, apart from API decisions: a request (secret, method, path) can never
   * answer for a call (secret, service, api) with the same strings, nor the reverse.
   * @type {Memo}
   */
  #davMemo
  /**
   * What the incident reporter reaches `onError` through (see incidentReporter): kept alive by
   * this store, and by nothing the binding holds.
   * @type {object}
   */
  // biome-ignore lint/correctness/noUnusedPrivateClassMembers: never read, only held (see incidentReporter)
  #incidents
  /**
   * The incident reporter itself, for what this module reports at exit (see flushOpenStores).
   * @type {(...args: [Incident] | Incident) => void}
   */
  #reportIncident

  /**
   * @param {symbol} token CONSTRUCT: only this module makes stores
   * @param {Handle} handle
   * @param {number | undefined} frozenNow the frozen clock of `options.now`
   * @param {ReturnType<typeof incidentReporter>} incidents the reporter and the holder of `onError`
   * @param {boolean} durable a store in a file or database (KeyStore.open), whose uses are written there
   */
  constructor(token, handle, frozenNow, incidents, durable) {
    if (token !== CONSTRUCT) {
      throw new KeygateError('INVALID_ARGUMENT', 'use KeyStore.inMemory() or KeyStore.open(path) to make a store')
    }
    this.#handle = handle
    this.#incidents = incidents.holder
    this.#reportIncident = incidents.report
    this.#check = call(() => native.bindCheck(handle))
    this.#checkDav = call(() => native.bindCheckDav(handle))
    // Views of the core's own memory, or null where the runtime allows no external buffers
    // (Electron's V8 sandbox): then the memo stays off and refuses no secret by its hint.
    const signals = call(() => native.storeSignals(handle))
    const hintBits = call(() => native.storeHints(handle))
    const words = signals === null ? memoOffWords() : new Uint32Array(signals)
    const hints = hintBits === null ? everyHint() : new Uint32Array(hintBits)
    const secretLength = call(() => native.storeKeyPrefix(handle)).length + native.SECRET_AFTER_PREFIX_LENGTH
    /** @type {(secrets: string[], times: number[]) => void} */
    const touch = (secrets, times) => call(() => native.touch(handle, secrets, times))
    this.#memo = new Memo(words, hints, secretLength, touch)
    this.#davMemo = new Memo(words, hints, secretLength, touch, native.MAX_DAV_PATH_LENGTH + 1)
    this.#setMemoClock(frozenNow)
    // Only durable stores: an in-memory store's uses end with the process anyway, and a WeakRef
    // keeps its target alive until the synchronous run that made it ends (10,000 stores made and
    // dropped in one loop took 22.5 s and 445 MB instead of 4.5 s and 91 MB).
    if (durable) {
      this.#openEntry = new WeakRef(this)
      OPEN_STORES.add(this.#openEntry)
      forgetCollected.register(this, this.#openEntry, this.#openEntry)
      if (!exitListened) {
        exitListened = true
        process.on('exit', flushOpenStores)
      }
    }
  }

  static {
    // lastUsedAt reaches the file or database from a background thread within a second, and
    // the memo hands uses to the core within 200 ms, on a timer that never holds the process:
    // a process that exits without close() (process.exit(), an uncaught exception, its event
    // loop drained) would lose the uses of its last second. Written here, synchronously, the
    // store staying open for 'exit' listeners after this one; nothing thrown at exit. A failure
    // is reported here, to onError or the console: the core's own reports reach JavaScript
    // through the event loop, which has stopped.
    flushOpenStores = () => {
      for (const entry of OPEN_STORES) {
        const store = entry.deref()
        if (store === undefined || store.#memo === CLOSED_MEMO) continue
        try {
          store.#flushUses()
          call(() => native.storeFlushUses(store.#handle))
        } catch (error) {
          if (error instanceof KeygateError) {
            store.#reportIncident([error.code, error.message, 'lastUsedAt', false, 'the uses not yet written are lost: the process is exiting'])
          }
        }
      }
    }
  }

  /**
   * An in-memory store, for tests and ephemeral use.
   * @param {StoreOptions} [options]
   */
  static inMemory(options) {
    // Read once: a getter among the options runs once, and both reads below see the same values.
    const o = args.optionalObject(options, 'options')
    const opts = storeOptions(o)
    const incidents = incidentReporter(onErrorOption(o))
    const handle = call(() => native.storeInMemory(opts, incidents.report))
    return new KeyStore(CONSTRUCT, handle, opts.now, incidents, false)
  }

  /**
   * Opens (or creates) the durable store in the file at `path`, or the shared store in the
   * PostgreSQL database a `postgres://` / `postgresql://` URL names.
   * @param {string} path
   * @param {StoreOptions} [options]
   */
  static open(path, options) {
    args.string(path, 'path')
    const o = args.optionalObject(options, 'options')
    const opts = storeOptions(o)
    const incidents = incidentReporter(onErrorOption(o))
    const handle = call(() => native.storeOpen(path, opts, incidents.report))
    return new KeyStore(CONSTRUCT, handle, opts.now, incidents, true)
  }

  /**
   * Validates one rule: the normalised rule, or a KeygateError INVALID_RULE.
   * @param {string} rule
   */
  static validateRule(rule) {
    args.ruleText(rule, 'rule')
    return call(() => native.validateRule(rule))
  }

  /**
   * Copies everything `from` holds (roles, users, keys with their ids, digests, states and
   * lastUsedAt, the audit trail as sealed) into `to`, which must be empty.
   * @param {KeyStore} from
   * @param {KeyStore} to
   */
  static copy(from, to) {
    // By the private field, not `instanceof`: that throws the engine's TypeError for a revoked
    // Proxy, and passes a Proxy of a store or an Object.create(KeyStore.prototype), whose
    // private fields then throw it.
    const isStore = (/** @type {unknown} */ value) => value !== null && typeof value === 'object' && #memo in value
    if (!isStore(from) || !isStore(to)) {
      throw new KeygateError('INVALID_ARGUMENT', 'KeyStore.copy(from, to) takes two stores')
    }
    if (from.#memo === CLOSED_MEMO || to.#memo === CLOSED_MEMO) throw closedError()
    from.#flushUses()
    const r = call(() => native.storeCopy(from.#handle, to.#handle))
    return { roles: r.roles, users: r.users, keys: r.keys, auditEntries: r.auditEntries }
  }

  /** Flushes pending writes and releases the store; later calls throw STORE_IO. */
  close() {
    if (this.#memo === CLOSED_MEMO) return
    this.#flushUses()
    this.#memo = CLOSED_MEMO
    this.#davMemo = CLOSED_MEMO
    if (this.#openEntry !== undefined) {
      OPEN_STORES.delete(this.#openEntry)
      forgetCollected.unregister(this.#openEntry)
    }
    call(() => native.storeClose(this.#handle))
  }

  /** Whether the store follows its backend: `{ connected, appliedVersion, lagMs, lastContactAt }`. */
  health() {
    if (this.#memo === CLOSED_MEMO) throw closedError()
    const h = call(() => native.storeHealth(this.#handle))
    return {
      connected: h.connected,
      appliedVersion: h.appliedVersion,
      lagMs: h.lagMs,
      lastContactAt: h.lastContactAt === undefined || h.lastContactAt === null ? null : new Date(h.lastContactAt),
    }
  }

  /**
   * Writes a consistent copy of the durable store to a new file (SQLite online backup).
   * @param {string} path
   */
  backup(path) {
    args.string(path, 'path')
    call(() => native.storeBackup(this.#handle, path))
  }

  /**
   * The audit trail, newest first.
   * @param {AuditQuery} [query]
   */
  audit(query) {
    const q = optionsOf(query, AUDIT_QUERY, 'query')
    const dto = {
      action: args.optionalString(q.action, 'query.action'),
      actor: args.optionalString(q.actor, 'query.actor'),
      keyId: args.optionalString(q.keyId, 'query.keyId'),
      userId: args.optionalString(q.userId, 'query.userId'),
      since: args.optionalDate(q.since, 'query.since'),
      until: args.optionalDate(q.until, 'query.until'),
      beforeSeq: args.optionalWholeNumber(q.beforeSeq, 'query.beforeSeq', Number.MAX_SAFE_INTEGER),
      limit: args.optionalWholeNumber(q.limit, 'query.limit', 2 ** 32 - 1),
    }
    return call(() => native.audit(this.#handle, dto)).map(toAuditEntry)
  }

  /** Verifies the audit trail's hash chain. */
  verifyAudit() {
    const r = call(() => native.verifyAudit(this.#handle))
    /** @type {AuditReport} */
    const report = { ok: r.ok, entries: r.entries }
    if (r.firstBadSeq != null) report.firstBadSeq = r.firstBadSeq
    if (r.problem != null) report.problem = r.problem
    return report
  }

  /** @param {number | undefined} frozenNow */
  #setMemoClock(frozenNow) {
    // The core's clock, not `Date.now`: a test runner's fake timers (mock.timers, vitest, jest,
    // sinon) replace `Date`, and a use answered from the memo would be recorded at the fake
    // instant (lastUsedAt a month ahead of the store clock, kept as the latest use).
    const handle = this.#handle
    const clock = frozenNow === undefined ? () => native.storeNow(handle) : () => frozenNow
    this.#memo.clock = clock
    this.#davMemo.clock = clock
  }

  /** Hands the uses answered from both memos to the core (before anything reads lastUsedAt). */
  #flushUses() {
    this.#memo.flushUses()
    this.#davMemo.flushUses()
  }

  /** The prefix of this store's secrets (`kg` unless created with another `keyPrefix`). */
  get keyPrefix() {
    return call(() => native.storeKeyPrefix(this.#handle))
  }

  /** Whether opening this store made it (a new SQLite file, or keygate's tables in an empty database). */
  get created() {
    return call(() => native.storeCreated(this.#handle))
  }

  /** The longest lifetime a key may be given, in days. */
  get maxLifetimeDays() {
    return call(() => native.storeMaxLifetimeDays(this.#handle))
  }

  /** The store clock, as a Date. */
  now() {
    if (this.#memo === CLOSED_MEMO) throw closedError()
    return new Date(call(() => native.storeNow(this.#handle)))
  }

  /** @param {Date | null} date */
  setNow(date) {
    if (date !== null && !args.isDate(date) && !args.inheritsDate(date)) {
      throw new KeygateError('INVALID_ARGUMENT', 'setNow takes a Date, or null for the system clock')
    }
    const ms = args.optionalDate(date, 'date')
    if (this.#memo === CLOSED_MEMO) throw closedError()
    this.#flushUses()
    call(() => native.storeSetNow(this.#handle, ms))
    this.#setMemoClock(ms)
  }

  // ---- roles ----

  /**
   * @param {Role} role
   * @param {PutOptions} [options]
   */
  putRole(role, options) {
    const r = fieldsOf(role, ROLE_FIELDS, 'role')
    const name = args.string(r.name, 'role.name')
    const rights = args.ruleArray(r.rights, 'role.rights')
    if (rights === undefined) throw new KeygateError('INVALID_ARGUMENT', 'role.rights must be an array of strings')
    const { actor, expect } = putOptionsOf(options)
    return toRole(call(() => native.putRole(this.#handle, name, rights, actor, expect)))
  }

  /**
   * @param {string} name
   * @param {AdminOptions} [options]
   */
  deleteRole(name, options) {
    args.string(name, 'name')
    const actor = actorOf(options)
    return call(() => native.deleteRole(this.#handle, name, actor))
  }

  /** @param {string} name */
  getRole(name) {
    args.string(name, 'name')
    const dto = call(() => native.getRole(this.#handle, name))
    return dto == null ? null : toRole(dto)
  }

  listRoles() {
    return call(() => native.listRoles(this.#handle)).map(toRole)
  }

  // ---- users ----

  /**
   * @param {UserInput} user
   * @param {PutOptions} [options]
   */
  putUser(user, options) {
    const u = fieldsOf(user, USER_FIELDS, 'user')
    refuseInherited(/** @type {object} */ (user), ['status'], 'user', 'the user would be active')
    const input = {
      id: args.string(u.id, 'user.id'),
      status: args.optionalString(u.status, 'user.status'),
      rights: args.ruleArray(u.rights, 'user.rights'),
      roles: args.roleArray(u.roles, 'user.roles'),
    }
    const { actor, expect } = putOptionsOf(options)
    return toUser(call(() => native.putUser(this.#handle, input, actor, expect)))
  }

  /** @param {string} id */
  getUser(id) {
    args.string(id, 'id')
    const dto = call(() => native.getUser(this.#handle, id))
    return dto == null ? null : toUser(dto)
  }

  /**
   * What the user may call: `{ own, byRole: [{ role, rights }], all }`, or null for no such user.
   * @param {string} userId
   */
  effectiveRights(userId) {
    args.string(userId, 'userId')
    const dto = call(() => native.effectiveRights(this.#handle, userId))
    if (dto == null) return null
    return { own: dto.own, byRole: dto.byRole.map((r) => ({ role: r.role, rights: r.rights })), all: dto.all }
  }

  listUsers() {
    return call(() => native.listUsers(this.#handle)).map(toUser)
  }

  /**
   * @param {string} id
   * @param {AdminOptions} [options]
   */
  deleteUser(id, options) {
    args.string(id, 'id')
    const actor = actorOf(options)
    return call(() => native.deleteUser(this.#handle, id, actor))
  }

  // ---- keys ----

  /**
   * @param {NewKey} input
   * @param {AdminOptions} [options]
   */
  createKey(input, options) {
    const k = fieldsOf(input, NEW_KEY_FIELDS, 'input')
    refuseInherited(/** @type {object} */ (input), NEW_KEY_RESTRICTIONS, 'input', 'the key would be made without it')
    const dto = {
      userId: args.string(k.userId, 'input.userId'),
      description: args.string(k.description, 'input.description'),
      expiresAt: args.optionalDate(k.expiresAt, 'input.expiresAt'),
      rules: args.ruleArray(k.rules, 'input.rules'),
      state: args.optionalStateName(k.state, 'input.state'),
    }
    const actor = actorOf(options)
    return toIssued(call(() => native.createKey(this.#handle, dto, actor)))
  }

  /** @param {string} id */
  getKey(id) {
    args.string(id, 'id')
    this.#flushUses()
    const dto = call(() => native.getKey(this.#handle, id))
    return dto == null ? null : toKey(dto)
  }

  /** @param {KeyFilter} [filter] */
  listKeys(filter) {
    const f = optionsOf(filter, KEY_FILTER, 'filter')
    const userId = args.optionalString(f.userId, 'filter.userId')
    const state = args.optionalStateName(f.state, 'filter.state')
    const search = args.optionalString(f.search, 'filter.search')
    this.#flushUses()
    return call(() => native.listKeys(this.#handle, userId, state, search)).map(toKey)
  }

  /** @param {KeyPageQuery} [query] */
  listKeysPage(query) {
    const q = optionsOf(query, KEY_PAGE_QUERY, 'query')
    const dto = {
      userId: args.optionalString(q.userId, 'query.userId'),
      state: args.optionalStateName(q.state, 'query.state'),
      search: args.optionalString(q.search, 'query.search'),
      limit: args.optionalWholeNumber(q.limit, 'query.limit', MAX_KEY_PAGE, 1),
      after: afterOf(q.after),
    }
    this.#flushUses()
    const page = call(() => native.listKeysPage(this.#handle, dto))
    return { keys: page.keys.map(toKey), next: page.next ?? null }
  }

  /**
   * @param {string} id
   * @param {KeyPatch} patch
   * @param {AdminOptions} [options]
   */
  updateKey(id, patch, options) {
    args.string(id, 'id')
    const p = fieldsOf(patch, KEY_PATCH_FIELDS, 'patch', KEY_PATCH_HINTS)
    refuseInherited(/** @type {object} */ (patch), KEY_PATCH_FIELDS, 'patch', 'the key would not change')
    const description = args.optionalString(p.description, 'patch.description')
    const rules = args.ruleArray(p.rules, 'patch.rules')
    const expiresAt = args.optionalDate(p.expiresAt, 'patch.expiresAt')
    const { actor, expected } = changeOptionsOf(optionsOf(options, ADMIN_OPTIONS))
    const dto = { description, rules, expiresAtGiven: p.expiresAt !== undefined, expiresAt, expectedUpdatedAt: expected }
    return toKey(call(() => native.updateKey(this.#handle, id, dto, actor)))
  }

  /**
   * @param {string} id
   * @param {KeyState} state
   * @param {AdminOptions} [options]
   */
  setState(id, state, options) {
    args.string(id, 'id')
    args.stateName(state, 'state')
    const { actor, expected } = changeOptionsOf(optionsOf(options, ADMIN_OPTIONS))
    return toKey(call(() => native.setState(this.#handle, id, state, expected, actor)))
  }

  /**
   * @param {string} id
   * @param {RotateOptions} [options]
   */
  rotateKey(id, options) {
    args.string(id, 'id')
    const o = optionsOf(options, ROTATE_OPTIONS)
    const overlap = args.optionalNumber(o.overlapSeconds, 'options.overlapSeconds') ?? 0
    const { actor, expected } = changeOptionsOf(o)
    return toIssued(call(() => native.rotateKey(this.#handle, id, overlap, expected, actor)))
  }

  /**
   * @param {string} id
   * @param {AdminOptions} [options]
   */
  deleteKey(id, options) {
    args.string(id, 'id')
    const actor = actorOf(options)
    return call(() => native.deleteKey(this.#handle, id, actor))
  }

  // ---- the decision ----

  /**
   * @param {string} secret
   * @param {string} service
   * @param {string} api
   * @param {string | null} [ip]
   */
  isAllowed(secret, service, api, ip) {
    checkCallTypes(secret, service, api, ip)
    const remembered = this.#memo.find(secret, service, api, ip)
    if (remembered >= 0) return remembered === 0
    return this.#decideFresh(secret, service, api, ip, false) === 0
  }

  /**
   * The reason code of a call (0 = allowed): from the memo, else as `#decideFresh`.
   * @param {string} secret
   * @param {string} service
   * @param {string} api
   * @param {string | null | undefined} ip
   * @param {boolean} exact
   * @returns {number} a reason code
   */
  #decide(secret, service, api, ip, exact) {
    const remembered = this.#memo.find(secret, service, api, ip)
    if (remembered >= 0) return remembered
    return this.#decideFresh(secret, service, api, ip, exact)
  }

  /**
   * The reason code of a call the memo does not hold: one native call, remembered when
   * the secret is a key's. With `exact` false, a secret no key can have answers "unknown"
   * without asking the core whether it is also malformed (both deny) while the memo consults
   * the hint filter (`Memo#refuses`; else the core refuses it); `exact` gives the core's own reason.
   * @param {string} secret
   * @param {string} service
   * @param {string} api
   * @param {string | null | undefined} ip
   * @param {boolean} exact
   * @returns {number} a reason code
   */
  #decideFresh(secret, service, api, ip, exact) {
    const memo = this.#memo
    if (exact) {
      // Not ending in four base62 characters: not a secret at all.
      if (hintOf(secret) < 0) return MALFORMED_KEY
    } else if (memo.refuses(secret)) {
      // No key has this secret's hint: unknown (or malformed).
      return UNKNOWN_KEY
    }
    let packed
    try {
      // Without an address, three arguments: the core then asks no fourth one its type.
      const check = this.#check
      packed = ip == null ? check(secret, service, api) : check(secret, service, api, ip)
    } catch (error) {
      throw fromNative(error)
    }
    const reason = packed & VERDICT_REASON_MASK
    if ((packed & REMEMBER_BITS) === VERDICT_KNOWN_KEY) {
      memo.remember(secret, service, api, ip, reason, (packed & VERDICT_DEPENDS_ON_IP) !== 0)
    }
    if (!exact) memo.decided((packed & VERDICT_KNOWN_KEY) === 0)
    return reason
  }

  /**
   * keygate/http's cheap reason: `explain(...).reason` without building the decision.
   * @param {string} secret
   * @param {string} service
   * @param {string} api
   * @param {string | null} [ip]
   * @returns {ReasonName}
   */
  [REASON](secret, service, api, ip) {
    checkCallTypes(secret, service, api, ip)
    return REASONS[this.#decide(secret, service, api, ip, true)]
  }

  /**
   * How many keys each user holding any has in each state, by user id (package-internal: the
   * admin page's list of users counts these, where listing every key to count them blocked the
   * event loop for seconds at 100,000 keys).
   * @returns {Array<{ userId: string, active: number, suspended: number, revoked: number }>}
   */
  [KEY_COUNTS]() {
    return call(() => native.storeKeyCounts(this.#handle))
  }

  /**
   * A message about a call on this store that keygate's JavaScript side made (the CLI, the
   * admin server, the HTTP guard), as the caller may see it: withheld whole when it would give
   * away a secret of this store cut into short pieces, as the store's own errors are.
   * @param {string} message
   * @returns {string}
   */
  [SCRUB](message) {
    return native.storeScrubMessage(this.#handle, message)
  }

  /**
   * @param {string} secret
   * @param {string} service
   * @param {string} api
   * @param {string | null} [ip]
   */
  explain(secret, service, api, ip) {
    checkCallTypes(secret, service, api, ip)
    if (this.#memo === CLOSED_MEMO) throw closedError()
    return toDecision(call(() => native.explain(this.#handle, secret, service, api, ip ?? undefined)))
  }

  /**
   * `explain` for an admin holding the key id, not the secret: steps 3–9 of the decision.
   * @param {string} keyId
   * @param {string} service
   * @param {string} api
   * @param {string | null} [ip]
   */
  explainKey(keyId, service, api, ip) {
    if (typeof keyId !== 'string') throw typeError(`keyId must be a string, got ${typeof keyId}`)
    args.boundedText(keyId, 'keyId')
    checkCallTypes('', service, api, ip)
    if (this.#memo === CLOSED_MEMO) throw closedError()
    return toDecision(call(() => native.explainKey(this.#handle, keyId, service, api, ip ?? undefined)))
  }

  // ---- the decision on a WebDAV request ----

  /**
   * @param {string} secret
   * @param {string} method
   * @param {string} path
   * @param {string | null} [ip]
   */
  isAllowedDav(secret, method, path, ip) {
    checkDavTypes(secret, method, path, ip)
    return this.#decideDav(secret, method, path, ip, false) === 0
  }

  /**
   * The reason code of a WebDAV request (0 = allowed): from the WebDAV memo, else one native call.
   * The same steps as `#decideFresh`, written apart on purpose: the API check's miss path (what
   * `bench/bench.mjs --miss-only` times) keeps call sites that only ever see the API memo and the
   * API check; one function taking either would make them polymorphic (not measured: keep it so
   * unless a benchmark says otherwise).
   * @param {string} secret
   * @param {string} method
   * @param {string} path
   * @param {string | null | undefined} ip
   * @param {boolean} exact
   * @returns {number} a reason code
   */
  #decideDav(secret, method, path, ip, exact) {
    const memo = this.#davMemo
    const remembered = memo.find(secret, method, path, ip)
    if (remembered >= 0) return remembered
    if (exact) {
      if (hintOf(secret) < 0) return MALFORMED_KEY
    } else if (memo.refuses(secret)) {
      return UNKNOWN_KEY
    }
    let packed
    try {
      const checkDav = this.#checkDav
      packed = ip == null ? checkDav(secret, method, path) : checkDav(secret, method, path, ip)
    } catch (error) {
      throw fromNative(error)
    }
    const reason = packed & VERDICT_REASON_MASK
    if ((packed & REMEMBER_BITS) === VERDICT_KNOWN_KEY) {
      memo.remember(secret, method, path, ip, reason, (packed & VERDICT_DEPENDS_ON_IP) !== 0)
    }
    if (!exact) memo.decided((packed & VERDICT_KNOWN_KEY) === 0)
    return reason
  }

  /**
   * keygate/http's cheap reason of a WebDAV request: `explainDav(...).reason` without building the decision.
   * @param {string} secret
   * @param {string} method
   * @param {string} path
   * @param {string | null} [ip]
   * @returns {ReasonName}
   */
  [REASON_DAV](secret, method, path, ip) {
    checkDavTypes(secret, method, path, ip)
    return REASONS[this.#decideDav(secret, method, path, ip, true)]
  }

  /**
   * @param {string} secret
   * @param {string} method
   * @param {string} path
   * @param {string | null} [ip]
   */
  explainDav(secret, method, path, ip) {
    checkDavTypes(secret, method, path, ip)
    if (this.#memo === CLOSED_MEMO) throw closedError()
    return toDecision(call(() => native.explainDav(this.#handle, secret, method, path, ip ?? undefined)))
  }

  /**
   * `explainDav` for an admin holding the key id, not the secret: steps 3–9 of the decision.
   * @param {string} keyId
   * @param {string} method
   * @param {string} path
   * @param {string | null} [ip]
   */
  explainKeyDav(keyId, method, path, ip) {
    if (typeof keyId !== 'string') throw typeError(`keyId must be a string, got ${typeof keyId}`)
    args.boundedText(keyId, 'keyId')
    checkDavTypes('', method, path, ip)
    if (this.#memo === CLOSED_MEMO) throw closedError()
    return toDecision(call(() => native.explainKeyDav(this.#handle, keyId, method, path, ip ?? undefined)))
  }
}

/**
 * The binding's explanation as a `Decision`, with absent facts left out. The core names the key
 * and its user whenever it allows (an allowed call has found its key), as `AllowedDecision` says.
 * @param {ExplanationDto} dto
 * @returns {Decision}
 */
function toDecision(dto) {
  const decision = { allowed: dto.allowed, reason: dto.reason }
  return /** @type {Decision} */ (Object.assign(decision, givenFields(dto, ['keyId', 'userId', 'matchedRule'])))
}

/**
 * `message`, about a call on `store`, as the caller may see it (see `KeyStore#[SCRUB]`); as it is
 * for anything but a keygate store.
 * @param {unknown} store
 * @param {string} message
 * @returns {string}
 */
function scrubMessage(store, message) {
  const scrub = store !== null && typeof store === 'object' ? /** @type {Record<symbol, unknown>} */ (store)[SCRUB] : undefined
  return typeof scrub === 'function' ? scrub.call(store, message) : message
}

module.exports = {
  KeyStore,
  checkStoreOptions,
  KEY_STATES,
  USER_STATUSES,
  AUDIT_ACTIONS,
  KEY_COUNTS,
  scrubMessage,
  NEW_KEY_FIELDS,
  KEY_PATCH_FIELDS,
  KEY_FILTER,
  MAX_KEY_PAGE,
  USER_FIELDS,
  ROLE_FIELDS,
}
