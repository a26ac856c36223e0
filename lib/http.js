'use strict'
// keygate/http: an HTTP guard around KeyStore#isAllowed (API calls) and #isAllowedDav (WebDAV
// requests under `/dav/`) for node:http, Express and Fastify.
//
// The core is framework-free: `guard.check(req)` reads a node IncomingMessage and answers
// either the caller's identity or a ready-made denial (status, JSON body, headers). The
// adapters only attach the identity to the request or write the denial.
//
// Order of the checks (the first failure answers):
//   0. a WebDAV path (under `/dav/`) the guard refuses      400 invalid_request (no key read,
//      (see dav-path.js), or a COPY/MOVE Destination it      no store call)
//      refuses (see davDestinationOf)
//   1. duplicated Authorization / X-API-Key                 400 duplicate_authorization / duplicate_api_key
//   2. Authorization and X-API-Key carrying different keys   400 conflicting_keys
//   3. X-Forwarded-For unusable (only with trustProxy)       400 invalid_forwarded_for
//   4. no key                                                401 missing_key (or unsupported_scheme)
//   5. key over 1,024 characters                             401 malformed_key
//   6. the route function throws or returns garbage: the     401 malformed_key / unknown_key, else 500 internal_error
//      key is still checked
//   7. no route for the request: the key is still checked    401 malformed_key / unknown_key, else 404 no_route
//      (a WebDAV request has its route: its method and path)
//   8. the store's decision (or its WebDAV decision; for a   401 malformed_key / unknown_key,
//      COPY/MOVE on the source, then on the destination)     400 invalid_request, 503 store_unavailable,
//                                                            403 for every other reason
// The key never appears in a response, a log line or an error this module produces.

const { KeygateError, redactSecrets, typeError } = require('./errors.js')
const { visible } = require('./visible.js')
const { ErrorCode, Reason } = require('./native.js')
const { decodeDavPath, davPrefixOf, REFUSED } = require('./dav-path.js')
const { hasMethods, isArray, ownFields, unknownOption } = require('./args.js')
const { KeyStore: KeyStoreClass, scrubMessage } = require('./store.js')
const { BAD_FORWARDED, clientAddress, trustPredicate } = require('./trusted-proxies.js')
const { errorWithoutKey } = require('./error-redaction.js')

/** The options of `createGuard`. */
const GUARD_OPTIONS = ['route', 'onError', 'realm', 'davPrefix', 'trustProxy']

/**
 * @typedef {import('node:http').IncomingMessage} IncomingMessage
 * @typedef {import('node:http').ServerResponse} ServerResponse
 * @typedef {import('node:http2').Http2ServerRequest} Http2ServerRequest
 * @typedef {import('node:http2').Http2ServerResponse} Http2ServerResponse
 * @typedef {import('../index.js').KeyStore} KeyStore
 * @typedef {import('../index.js').Reason} ReasonName
 * @typedef {import('../http.js').Route} Route
 * @typedef {import('../http.js').RouteFunction} RouteFunction
 * @typedef {import('../http.js').GuardOptions} GuardOptions
 * @typedef {import('../http.js').KeygateAuth} KeygateAuth
 * @typedef {import('../http.js').Denial} Denial
 * @typedef {import('../http.js').DenialError} DenialError
 * @typedef {import('../http.js').DenialReason} DenialReason
 * @typedef {import('./trusted-proxies.js').TrustPredicate} TrustPredicate
 */

/**
 * A denial as makeDenial makes it: also its JSON body and its header lines, ready to write
 * (not enumerable, so not part of what users see of it). `lines` is frozen; typed mutable
 * only because writeHead's parameter is.
 * @typedef {Denial & { readonly json?: string, readonly lines?: string[] }} PreparedDenial
 */

/** Authorization schemes that carry a keygate key, lower-cased. */
const SCHEMES = new Set(['esp-apikey', 'bearer'])
/** Keys longer than this are malformed without asking the store (valid ones are < 70 chars). */
const MAX_KEY_LENGTH = 1024
/** Secrets whose key id / user id the guard remembers at most (then it starts over). */
const MAX_IDENTITIES = 10_000

/** @type {Record<DenialError, Denial['status']>} */
const STATUS = {
  bad_request: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  internal_error: 500,
  unavailable: 503,
}

/** Seconds a client should wait before retrying a 503 (the store catches up within about a second). */
const RETRY_AFTER = '1'

/** The guard's own reasons for a denial, beside the store's (the binding's `Reason`). */
const GuardReason = Object.freeze({
  DuplicateAuthorization: 'duplicate_authorization',
  DuplicateApiKey: 'duplicate_api_key',
  ConflictingKeys: 'conflicting_keys',
  InvalidForwardedFor: 'invalid_forwarded_for',
  MissingKey: 'missing_key',
  UnsupportedScheme: 'unsupported_scheme',
  NoRoute: 'no_route',
  InternalError: 'internal_error',
})

/**
 * The `error` of each guard-level reason; store reasons not listed are `forbidden`.
 * @type {Partial<Record<DenialReason, DenialError>>}
 */
const ERROR_OF_REASON = {
  [GuardReason.DuplicateAuthorization]: 'bad_request',
  [GuardReason.DuplicateApiKey]: 'bad_request',
  [GuardReason.ConflictingKeys]: 'bad_request',
  [GuardReason.InvalidForwardedFor]: 'bad_request',
  [Reason.InvalidRequest]: 'bad_request',
  [GuardReason.MissingKey]: 'unauthorized',
  [GuardReason.UnsupportedScheme]: 'unauthorized',
  [Reason.MalformedKey]: 'unauthorized',
  [Reason.UnknownKey]: 'unauthorized',
  [GuardReason.NoRoute]: 'not_found',
  [GuardReason.InternalError]: 'internal_error',
  // The store cannot vouch that its state is current: not the caller's fault, worth a retry.
  [Reason.StoreUnavailable]: 'unavailable',
}

// ---- the default route: Hornbill's POST /xmlmc/<service>/?method=<api> ----------------

/** An empty, `.` or `..` path segment. */
const BAD_SEGMENT = /(?:^|\/)\.{0,2}(?:\/|$)/

/** A route the store refuses as `invalid_request` (empty names are invalid). */
const INVALID_CALL = Object.freeze({ service: '', api: '' })

/** Parameters a query may have: node:querystring and qs read only the first 1,000. */
const MAX_PARAMETERS = 1000

/**
 * True when the parameter name url[start, end) (up to its `=`) could be read as `method` by
 * some query parser: percent-decoded (`+` is a space), case and surrounding spaces ignored,
 * and cut at the first `[`, `]` or `.` — qs reads `method[]`, `method[0]`, `[method]` and,
 * with allowDots, `method.x` and `.method` as `method`. Undecodable names count too.
 * @param {string} url
 * @param {number} start
 * @param {number} end
 */
function namesMethod(url, start, end) {
  let eq = url.indexOf('=', start)
  if (eq < 0 || eq > end) eq = end
  let name = url.slice(start, eq)
  if (name.includes('%') || name.includes('+')) {
    try {
      name = decodeURIComponent(name.replace(/\+/g, ' '))
    } catch {
      return true // undecodable: not worth the risk
    }
  }
  if (name.length < 6 || !name.toLowerCase().includes('method')) return false // the usual case, cheaply
  for (const segment of name.split(/[[\].]/)) {
    const part = segment.trim()
    if (part !== '') return part.toLowerCase() === 'method'
  }
  return false
}

/**
 * Hornbill's mapping: `POST /xmlmc/<service>/?method=<api>` → `{ service, api }`.
 * Anything that is not a POST under `/xmlmc/` → null (404 no_route). Under `/xmlmc/`, an
 * empty/`.`/`..` path segment, characters outside the store's alphabet (percent-escapes
 * are not decoded), or a `method` that is not exactly one plain `method=<api>` → a call the
 * store answers `invalid_request` (400). Every parameter that any common parser (qs for
 * Express, fast-querystring for Fastify, node:querystring, URLSearchParams) could read as
 * `method` counts: `method[]=a&method=b`, `%6Dethod=a&method=b`, `method&method=b` are
 * refused, so the app never reads another call than the one checked.
 * @param {IncomingMessage & { originalUrl?: string }} req
 * @returns {Route | null}
 */
function hornbillRoute(req) {
  if (req === null || typeof req !== 'object') throw new KeygateError('INVALID_ARGUMENT', 'hornbillRoute(req) takes a request')
  let method
  let url
  try {
    method = req.method
    url = method === 'POST' ? pathAndQuery(req) : null
  } catch (error) {
    // A revoked Proxy (every read throws the engine's TypeError) or a getter that throws: a keygate error, not theirs.
    throw Object.assign(new KeygateError('INVALID_ARGUMENT', 'hornbillRoute(req): the request cannot be read (a revoked Proxy, or a getter that throws)'), {
      cause: error,
    })
  }
  if (method !== 'POST') return null
  if (url === REFUSED) return INVALID_CALL
  if (url === null || !url.startsWith('/xmlmc/')) return null
  const q = url.indexOf('?')
  if (q < 0) return INVALID_CALL // no `method`
  const end = url.charCodeAt(q - 1) === 47 /* / */ ? q - 1 : q
  if (end <= 7) return INVALID_CALL
  const path = url.slice(7, end)
  if (BAD_SEGMENT.test(path)) return INVALID_CALL
  let api
  let methods = 0
  let parameters = 0
  for (let i = q + 1; i < url.length; ) {
    let amp = url.indexOf('&', i)
    if (amp < 0) amp = url.length
    // Past the parsers' limit a `method` would be checked here and unseen by the app.
    if (++parameters > MAX_PARAMETERS) return INVALID_CALL
    if (url.startsWith('method=', i)) {
      methods++
      api = url.slice(i + 7, amp)
    } else if (namesMethod(url, i, amp)) {
      // `method`, `method[]=`, `%6Dethod=`…: another spelling, so ambiguous or unchecked.
      return INVALID_CALL
    }
    if (methods > 1) return INVALID_CALL // two `method`s: ambiguous
    i = amp + 1
  }
  if (api === undefined || api === '') return INVALID_CALL
  return { service: path, api }
}

const REASON = Symbol.for('keygate.reason')
const DAV_REASON = Symbol.for('keygate.reasonDav')
// The memo answers for a store whose check is the KeyStore's own: a wrapper that binds the
// store's methods (a Proxy, the usual way round private fields) hands the memo on too, and
// would otherwise be bypassed, its refusals with it.
const KEYSTORE_IS_ALLOWED = KeyStoreClass.prototype.isAllowed
const KEYSTORE_IS_ALLOWED_DAV = KeyStoreClass.prototype.isAllowedDav

/**
 * Whether the guard may ask the memo's reason function for a call: only while the store's check
 * is the KeyStore's own (see KEYSTORE_IS_ALLOWED).
 * @param {GuardedStore} store
 * @returns {store is GuardedStore & Required<Pick<GuardedStore, typeof REASON>>}
 */
function answersFromMemo(store) {
  return store.isAllowed === KEYSTORE_IS_ALLOWED && typeof store[REASON] === 'function'
}

/**
 * `answersFromMemo` for WebDAV requests.
 * @param {GuardedDavStore} store
 * @returns {store is GuardedDavStore & Required<Pick<GuardedDavStore, typeof DAV_REASON>>}
 */
function answersDavFromMemo(store) {
  return store.isAllowedDav === KEYSTORE_IS_ALLOWED_DAV && typeof store[DAV_REASON] === 'function'
}

/**
 * A store as the guard uses it: a keygate KeyStore has the memo's reason function under REASON.
 * @typedef {KeyStore & { [REASON]?: (key: string, service: string, api: string, ip: string | undefined) => ReasonName }} GuardedStore
 */

/**
 * A store as the WebDAV guard uses it: the memo's reason function for WebDAV requests is under DAV_REASON.
 * @typedef {KeyStore & { [DAV_REASON]?: (key: string, method: string, path: string, ip: string | undefined) => ReasonName }} GuardedDavStore
 */

/** Below this length V8 copies a slice instead of pointing into the string it was cut from. */
const SHORTEST_SLICE = 13

/**
 * `text` as a string that shares no memory with the one it was cut from. V8 keeps the
 * whole parent of a slice alive, and the store's memo keeps the strings of recent calls
 * (up to 65,536): given slices of request lines, it would keep as many request lines.
 * @param {string} text
 */
function detached(text) {
  return text.length < SHORTEST_SLICE ? text : ` ${text}`.slice(1)
}

/**
 * The reason of a call. A keygate KeyStore answers from its memo of decisions (as cheap
 * as isAllowed, denials included); any other store object (a wrapper of one, or a store whose
 * isAllowed was replaced) through its
 * isAllowed, which is the check (a use of the key, and any refusal the wrapper adds), and
 * explain() only to say why not.
 * @param {GuardedStore} store
 * @param {string} key
 * @param {string} service
 * @param {string} api
 * @param {string | undefined} ip
 * @returns {ReasonName}
 */
function reasonOf(store, key, service, api, ip) {
  if (answersFromMemo(store)) return store[REASON](key, service, api, ip)
  return answerOf(store.isAllowed(key, service, api, ip), 'isAllowed') ? Reason.Allowed : refusalOf(explanationOf(store.explain(key, service, api, ip), 'explain').reason)
}

/** Does nothing: the handler the guard attaches to a Promise it got where it needed an answer. */
function ignore() {}

/**
 * Whether `value` is a thenable (a Promise: what an async route function, store wrapper or
 * onError returns). If so, its rejection is handled here: the guard has answered without it (a
 * 500), and an unhandled rejection would end the process, with its error (maybe quoting the key)
 * written to stderr unredacted.
 * @param {unknown} value
 */
function isThenable(value) {
  if ((typeof value !== 'object' || value === null) && typeof value !== 'function') return false
  try {
    const then = /** @type {{ then?: unknown }} */ (value).then
    if (typeof then !== 'function') return false
    try {
      Reflect.apply(then, value, [undefined, ignore])
    } catch {
      // A thenable of its own whose then throws: nothing is pending, nothing to handle.
    }
    return true
  } catch {
    return false // a getter that throws: not a thenable
  }
}

/**
 * The reasons a store's explain may give.
 * @type {ReadonlySet<string>}
 */
const STORE_REASONS = new Set(Object.values(Reason))

/**
 * A wrapper's explanation (its explain's or explainDav's answer): an object whose `reason` is one
 * of the store's reasons. Anything else is its defect, a 500 (onError): a Promise (an async
 * wrapper's) has no reason to answer, and a reason keygate does not know has no status.
 * @param {unknown} decision
 * @param {'explain' | 'explainDav'} method
 * @returns {import('../index.js').Decision}
 */
function explanationOf(decision, method) {
  if (isThenable(decision)) throw typeError(`the store's ${method} answered a Promise, not a decision: the guard needs its answer at once`)
  if (decision === null || typeof decision !== 'object') throw typeError(`the store's ${method} answered ${decision === null ? 'null' : typeof decision}, not a decision`)
  const { reason } = /** @type {{ reason?: unknown }} */ (decision)
  if (typeof reason !== 'string' || !STORE_REASONS.has(reason)) {
    throw typeError(`the store's ${method} answered a reason that is none of the store's: the guard has no answer for it`)
  }
  return /** @type {import('../index.js').Decision} */ (decision)
}

/**
 * The key and user ids of a wrapper's allowed decision, for `req.keygate`: an allowed decision
 * names both (the typings' AllowedDecision). One that does not, or that is allowed with another
 * reason, is the wrapper's defect, a 500 (onError), never a request let through with
 * `req.keygate.keyId` undefined (an app keying rate limits or logs on it would merge callers).
 * @param {import('../index.js').Decision} decision
 * @param {'explain' | 'explainDav'} method
 * @returns {[keyId: string, userId: string]}
 */
function allowedIds(decision, method) {
  if (decision.reason !== Reason.Allowed) {
    throw typeError(`the store's ${method} answered allowed with the reason ${JSON.stringify(decision.reason)}: an allowed decision's reason is "allowed"`)
  }
  const { keyId, userId } = /** @type {{ keyId?: unknown, userId?: unknown }} */ (decision)
  if (typeof keyId !== 'string' || keyId === '' || typeof userId !== 'string' || userId === '') {
    throw typeError(`the store's ${method} answered allowed without a keyId and a userId (non-empty strings): the guard cannot tell the app who is calling`)
  }
  return [keyId, userId]
}

/**
 * A wrapper's yes or no. Anything else is its defect, a 500 (onError), never a yes: a Promise
 * (an async wrapper's) is truthy, and would let through every key the wrapper refuses.
 * @param {unknown} answer
 * @param {'isAllowed' | 'isAllowedDav'} method
 * @returns {boolean}
 */
function answerOf(answer, method) {
  if (typeof answer === 'boolean') return answer
  const kind = isThenable(answer) ? 'a Promise' : typeof answer
  throw typeError(`the store's ${method} answered ${kind}, not true or false: the guard needs its answer at once`)
}

/**
 * The reason of a check that said no, as explain gives it: never `allowed` (the store's own
 * refusal, a wrapper's, or a change made between the two calls), which would let the request through.
 * @param {ReasonName} explained
 * @returns {ReasonName}
 */
function refusalOf(explained) {
  return explained === Reason.Allowed ? Reason.NoMatchingRule : explained
}

/**
 * Requests a Fastify hook checks: Fastify routes their `url`, which its `rewriteUrl` may have
 * rewritten from the `originalUrl` it keeps, so the guard decides `url` too.
 * @type {WeakSet<IncomingMessage>}
 */
const routedByUrl = new WeakSet()

/**
 * The full request target: Express keeps it in `originalUrl` when mounted under a path (Fastify's
 * requests: `url`, see routedByUrl).
 * @param {IncomingMessage & { originalUrl?: unknown }} req
 */
function requestTarget(req) {
  const original = req.originalUrl
  return typeof original === 'string' && !routedByUrl.has(req) ? original : req.url
}

/**
 * The authority of an absolute URI the guard reads: a host (a name of `A-Z a-z 0-9 - . _ ~`, or a
 * bracketed IPv6 address) and an optional numeric port. Anything else — user info, a `:` not
 * followed by a port, `%`, `;`, `'`… — url.parse (Express's parseurl) ends the host early and
 * reads the rest as part of the path: `http://h:x/dav/a` is the path `/:x/dav/a` there.
 */
const PLAIN_AUTHORITY = /^(?:[A-Za-z0-9._~-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]*)?$/

/**
 * Where the path of `url` starts: 0 for a path (`/a/b?c`), past the host of an absolute URI
 * (`http://host/a/b?c`); REFUSED for an absolute URI whose host is empty, not a plain
 * `host[:port]` (PLAIN_AUTHORITY) or not ended by the path's `/`; -1 for anything else. Request targets and WebDAV Destination headers are read
 * by this one function.
 * @param {string} url
 * @returns {number | typeof REFUSED}
 */
function pathStart(url) {
  if (url.charCodeAt(0) === 47 /* / */) return 0
  // absolute-form (`POST http://host/xmlmc/...`): keep only the path and query. The host must be
  // non-empty and end at the path's `/`: parsers disagree on where `http:///dav/x` or
  // `http://h?/dav/x` end their host, and the app must never route another path than the one checked.
  const scheme = url.indexOf('://')
  if (scheme < 0) return -1
  const hostEnd = url.slice(scheme + 3).search(/[/?#\\]/)
  if (!/^https?$/i.test(url.slice(0, scheme)) || hostEnd === 0) return REFUSED
  if (hostEnd < 0) return -1
  const start = scheme + 3 + hostEnd
  if (url.charCodeAt(start) !== 47 /* / */ || !PLAIN_AUTHORITY.test(url.slice(scheme + 3, start))) return REFUSED
  return start
}

/**
 * The request target's path and query (`/a/b?c`), also of an absolute-form target; REFUSED for an
 * absolute-form target whose host is empty, not a plain `host[:port]` or not ended by the path's `/`; or null.
 * @param {IncomingMessage & { originalUrl?: unknown }} req
 */
function pathAndQuery(req) {
  const url = requestTarget(req)
  if (typeof url !== 'string') return null
  const start = pathStart(url)
  if (start === REFUSED) return REFUSED
  if (start < 0) return null
  return start === 0 ? url : url.slice(start)
}

/**
 * The WebDAV path of a path and query (`url`, as pathAndQuery gives it) under `prefix` (the query is
 * not part of it), REFUSED for a path the guard refuses with 400 (see dav-path.js), or null for a
 * path not under `prefix`. The prefix is matched before any decoding.
 * @param {string | typeof REFUSED | null} url
 * @param {string} prefix
 */
function davPathIn(url, prefix) {
  if (url === REFUSED) return REFUSED
  if (url === null || !url.startsWith(prefix)) return null
  const q = url.indexOf('?', prefix.length)
  return decodeDavPath(q < 0 ? url.slice(prefix.length) : url.slice(prefix.length, q))
}

/**
 * The WebDAV path of a request under `prefix` (the query is not part of it), REFUSED for a
 * path the guard refuses with 400 (see dav-path.js), or null for a request not under `prefix`.
 * @param {IncomingMessage & { originalUrl?: unknown }} req
 * @param {string} prefix
 */
function davPathOf(req, prefix) {
  return davPathIn(pathAndQuery(req), prefix)
}

/** A COPY or MOVE method (any case, as the store reads methods): the request names a Destination. */
const DESTINATION_METHOD = /^(?:COPY|MOVE)$/i

/**
 * What a COPY or MOVE says of its destination: its Destination header and how many there are,
 * and the values of its Host headers (and HTTP/2's `:authority`).
 * @typedef {{ destination: string | undefined, destinations: number, hosts: string[] }} DestinationHeaders
 */

/**
 * The WebDAV path a COPY or MOVE names in its Destination header (RFC 4918: an absolute URI or an
 * absolute path), read as a request target is (pathStart, davPathIn: the same prefix, decoding and
 * refusals); REFUSED when the guard cannot vouch that the app will read the same path: no
 * Destination or more than one, a Destination that is neither form, has a query, lies outside
 * `prefix`, or whose host is not the request's own (every Host header, `:authority` and
 * absolute-form target host must name it, ASCII case ignored; a request naming no host at all may
 * only give a path).
 * @param {IncomingMessage & { originalUrl?: unknown }} req
 * @param {string} prefix
 * @param {DestinationHeaders} headers
 * @returns {string | typeof REFUSED}
 */
function davDestinationOf(req, prefix, headers) {
  const { destination, destinations } = headers
  if (destinations !== 1 || typeof destination !== 'string') return REFUSED
  const start = pathStart(destination)
  if (start === REFUSED || start < 0) return REFUSED
  const url = start === 0 ? destination : destination.slice(start)
  // A query names no other resource; some apps would keep it in the path they act on.
  if (url.includes('?')) return REFUSED
  const path = davPathIn(url, prefix)
  if (path === null) return REFUSED // outside the WebDAV prefix
  if (path === REFUSED || start === 0) return path
  const authority = asciiLowerCase(destination.slice(destination.indexOf('://') + 3, start))
  const hosts = [...headers.hosts]
  const target = requestTarget(req)
  if (typeof target === 'string') {
    const targetStart = pathStart(target)
    if (typeof targetStart === 'number' && targetStart > 0) hosts.push(target.slice(target.indexOf('://') + 3, targetStart))
  }
  if (hosts.length === 0) return REFUSED // no host of its own to compare with
  for (const host of hosts) if (asciiLowerCase(host) !== authority) return REFUSED
  return path
}

/**
 * `text` with A-Z lower-cased and nothing else changed (toLowerCase also maps, e.g., the Kelvin
 * sign to `k`).
 * @param {string} text
 */
function asciiLowerCase(text) {
  return text.replace(/[A-Z]+/g, (run) => run.toLowerCase())
}

/**
 * The reason of a WebDAV request, as `reasonOf` for API calls.
 * @param {GuardedDavStore} store
 * @param {string} key
 * @param {string} method
 * @param {string} path
 * @param {string | undefined} ip
 * @returns {ReasonName}
 */
function davReasonOf(store, key, method, path, ip) {
  if (answersDavFromMemo(store)) return store[DAV_REASON](key, method, path, ip)
  return answerOf(store.isAllowedDav(key, method, path, ip), 'isAllowedDav')
    ? Reason.Allowed
    : refusalOf(explanationOf(store.explainDav(key, method, path, ip), 'explainDav').reason)
}

/** @param {string} message */
function invalidOption(message) {
  return new KeygateError(ErrorCode.InvalidArgument, message)
}

// ---- denials -------------------------------------------------------------------------

/** @param {unknown} realm */
function quotedRealm(realm) {
  if (typeof realm !== 'string' || !/^[\x20-\x7e]{1,128}$/.test(realm) || /["\\]/.test(realm)) {
    throw invalidOption('options.realm must be 1–128 printable ASCII characters without quotes or backslashes')
  }
  // Sent with every 401: never something that may be a secret pasted in the wrong place.
  if (/[0-9A-Za-z]{32,}/.test(realm)) throw invalidOption('options.realm must not hold a run of 32 or more letters and digits (it may be a secret)')
  return `"${realm}"`
}

/**
 * A frozen denial for `reason`, with its JSON body ready to write.
 * @param {DenialReason} reason
 * @param {string} challenge the WWW-Authenticate value of a 401
 * @returns {PreparedDenial}
 */
function makeDenial(reason, challenge) {
  const error = ERROR_OF_REASON[reason] ?? 'forbidden'
  const status = STATUS[error]
  const body = Object.freeze({ error, reason })
  const json = JSON.stringify(body)
  /** @type {Record<string, string>} */
  const headers = { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' }
  if (status === 401) headers['www-authenticate'] = challenge
  if (status === 503) headers['retry-after'] = RETRY_AFTER
  /** @type {Denial} */
  const denial = { ok: false, status, body, headers: Object.freeze(headers) }
  // Ready to write: the body and the header lines (a flat [name, value, …] list for writeHead).
  Object.defineProperty(denial, 'json', { value: json })
  const lines = Object.entries(headers).flat()
  lines.push('content-length', String(Buffer.byteLength(json)))
  Object.defineProperty(denial, 'lines', { value: Object.freeze(lines) })
  return Object.freeze(denial)
}

/**
 * Bytes of a denied request's body that the server may still read and drop after the denial,
 * keeping the connection open for the client's next request: 1 MiB, the most curl sends
 * without asking first (`Expect: 100-continue`).
 */
const MAX_DROPPED_BODY = 1_048_576

/**
 * Whether the connection of a denied request must close once the denial is sent: an HTTP/1.x
 * request whose body may be longer than MAX_DROPPED_BODY (a larger Content-Length, or a
 * Transfer-Encoding: a chunked body of any length). Node reads a body the app never read to its
 * end before the next request on the connection: without the close, a client with no key could
 * have the server read gigabytes per request, or hold the connection open by trickling them.
 * HTTP/2 has no Connection header: a stream's flow control bounds what its peer may send.
 * @param {unknown} req the request of the response (`res.req`)
 */
function closesAfterDenial(req) {
  if (req === null || typeof req !== 'object') return false
  const { httpVersionMajor, headers } = /** @type {{ httpVersionMajor?: unknown, headers?: unknown }} */ (req)
  if (httpVersionMajor !== 1 || headers === null || typeof headers !== 'object') return false
  if (/** @type {{ readableEnded?: unknown }} */ (req).readableEnded === true) return false // the body is read already
  const { 'transfer-encoding': coding, 'content-length': length } = /** @type {Record<string, unknown>} */ (headers)
  if (coding !== undefined) return true
  return length !== undefined && !(typeof length === 'string' && /^\d{1,7}$/.test(length) && Number(length) <= MAX_DROPPED_BODY)
}

/**
 * Writes a denial on a node ServerResponse (also an Express response).
 * @param {ServerResponse} res
 * @param {PreparedDenial} denial
 */
function writeDenial(res, denial) {
  if (res === null || typeof res !== 'object' || typeof res.writeHead !== 'function') {
    throw new KeygateError('INVALID_ARGUMENT', 'guard.reply(res, denial) needs a node response (one with writeHead)')
  }
  // An allowed result (`reply(res, guard.check(req))` without looking at `ok`) had reached
  // Buffer.byteLength(undefined): Node's TypeError, no code, from inside a request handler.
  if (denial === null || typeof denial !== 'object' || /** @type {{ ok?: unknown }} */ (denial).ok === true) {
    throw new KeygateError('INVALID_ARGUMENT', "guard.reply(res, denial) takes a denial: check(req)'s answer when its ok is false")
  }
  if (res.headersSent || res.writableEnded) return
  const closing = closesAfterDenial(res.req)
  if (denial.lines !== undefined) {
    res.writeHead(denial.status, closing ? [...denial.lines, 'connection', 'close'] : denial.lines)
    res.end(denial.json)
    return
  }
  // A denial built by hand: { status, body, headers }, checked before anything is written.
  const { status, body, headers: given } = denial
  if (!Number.isInteger(status) || status < 400 || status > 599) {
    throw new KeygateError('INVALID_ARGUMENT', 'denial.status must be a whole number from 400 to 599')
  }
  let json
  try {
    json = JSON.stringify(body)
  } catch {
    // A BigInt, a cycle, a throwing toJSON: the engine's TypeError.
    json = undefined
  }
  if (typeof json !== 'string' || body === null || typeof body !== 'object') {
    throw new KeygateError('INVALID_ARGUMENT', 'denial.body must be an object that JSON.stringify can write')
  }
  // A string or an array would be listed as headers named 0, 1 and length, and written so.
  if (given !== undefined && given !== null && (typeof given !== 'object' || isArray(given, 'denial.headers'))) {
    throw new KeygateError('INVALID_ARGUMENT', 'denial.headers must be an object of header names and values')
  }
  const listed = ownFields(given ?? {}, () => new KeygateError('INVALID_ARGUMENT', 'denial.headers cannot be listed (a Proxy whose ownKeys trap throws)'))
  /** @type {import('node:http').OutgoingHttpHeaders} */
  const headers = { ...listed, 'content-length': Buffer.byteLength(json) }
  if (closing) {
    // The close is not the denial's to undo: a `Connection: keep-alive` of its own gives way.
    for (const name of Object.keys(headers)) if (name.toLowerCase() === 'connection') delete headers[name]
    headers.connection = 'close'
  }
  try {
    res.writeHead(status, headers)
  } catch (error) {
    // Node's ERR_INVALID_CHAR and the like, thrown before anything is sent; its message quotes the
    // header's name, which is the app's text (a secret among it, as in any message, is redacted).
    throw new KeygateError('INVALID_ARGUMENT', `denial.headers: ${redactSecrets(/** @type {Error} */ (error).message)}`)
  }
  res.end(json)
}

/**
 * One line about an error: `Name CODE: message`, and the messages of its causes.
 * @param {unknown} error
 */
function errorSummary(error) {
  if (!(error instanceof Error)) return `a thrown ${typeof error}`
  /** @type {string[]} */
  const parts = []
  /** @type {unknown} */
  let current = error
  for (let depth = 0; current instanceof Error && depth < 4; depth++) {
    const { code: given } = /** @type {{ code?: unknown }} */ (current)
    const code = typeof given === 'string' ? ` ${given}` : ''
    parts.push(`${current.name}${code}: ${current.message}`)
    current = current.cause
  }
  return parts.join('; caused by ')
}

// ---- the guard -----------------------------------------------------------------------

class Guard {
  /** @type {GuardedStore} */
  #store
  /** @type {RouteFunction} */
  #route
  /** @type {TrustPredicate | null} */
  #trust
  /** @type {NonNullable<GuardOptions['onError']>} */
  #onError
  /**
   * Requests under this path prefix are WebDAV requests; null: none are.
   * @type {string | null}
   */
  #davPrefix
  /** @type {Map<DenialReason, PreparedDenial>} */
  #denials = new Map()
  /** @type {string} */
  #challenge
  /**
   * secret → [keyId, userId]; both never change for a secret, so this stays exact.
   * @type {Map<string, [keyId: string, userId: string]>}
   */
  #identities = new Map()

  /**
   * @param {KeyStore} store
   * @param {GuardOptions} [options]
   */
  constructor(store, options) {
    if (typeof store !== 'object' || !hasMethods(store, ['isAllowed', 'explain'])) {
      throw invalidOption('createGuard needs a KeyStore (KeyStore.inMemory() or KeyStore.open(path))')
    }
    if (options !== undefined && (options === null || typeof options !== 'object')) throw invalidOption('options must be an object')
    // Own fields only: an inherited `trustProxy` (a polluted Object.prototype) must not trust anyone.
    const o = options === undefined ? {} : ownFields(options)
    const unknown = unknownOption(o, GUARD_OPTIONS, 'createGuard')
    if (unknown !== undefined) throw invalidOption(unknown)
    if (o.route !== undefined && typeof o.route !== 'function') throw invalidOption('options.route must be a function (req) => { service, api } | null')
    if (o.onError !== undefined && typeof o.onError !== 'function') throw invalidOption('options.onError must be a function')
    const realm = quotedRealm(o.realm === undefined ? 'keygate' : o.realm)
    const dav = davPrefixOf(o.davPrefix)
    if (dav.error !== undefined) throw invalidOption(dav.error)
    this.#davPrefix = dav.prefix
    this.#store = store
    this.#route = o.route ?? hornbillRoute
    try {
      this.#trust = trustPredicate(o.trustProxy)
    } catch (error) {
      // The message quotes the entry: withheld if it would give away a secret of the store in pieces.
      if (error instanceof KeygateError) throw new KeygateError(error.code, scrubMessage(store, error.message))
      throw error
    }
    this.#onError = o.onError ?? defaultOnError
    this.#challenge = `ESP-APIKEY realm=${realm}, Bearer realm=${realm}`
    // Bound, so that methods can be passed around detached (`const { check } = guard`): each
    // becomes an own property of the guard, read here as a record of its methods.
    // biome-ignore lint/complexity/noUselessThisAlias: the alias is the guard typed as that record
    const methods = /** @type {Record<string, (...args: never[]) => unknown>} */ (/** @type {unknown} */ (this))
    for (const name of ['check', 'node', 'express', 'fastify', 'fastifyHook', 'reply']) methods[name] = methods[name].bind(this)
  }

  /** @param {DenialReason} reason */
  #deny(reason) {
    let denial = this.#denials.get(reason)
    if (denial === undefined) {
      denial = makeDenial(reason, this.#challenge)
      if (this.#denials.size < 64) this.#denials.set(reason, denial)
    }
    return denial
  }

  /**
   * @param {unknown} error
   * @param {IncomingMessage} req
   * @param {string | undefined} key the key of the request, to keep out of what onError gets
   */
  #fail(error, req, key) {
    try {
      // Never hand the key on, not even inside an error from user code.
      isThenable(this.#onError(errorWithoutKey(error, key), req)) // an async onError's rejection is ignored too
    } catch {
      // a failing onError must not fail the request
    }
    return this.#deny(GuardReason.InternalError)
  }

  /**
   * The 401 of a key the store does not know (malformed or unknown), for a request the route
   * function did not map to a call; undefined for a key the store knows.
   * @param {string} key
   * @param {string | undefined} ip
   */
  #unauthenticated(key, ip) {
    const store = this.#store
    // Only whether the key is known: never a wrapper's isAllowed, which would take this for a
    // call (one to count, meter or log) that there is none of.
    const reason = answersFromMemo(store) ? store[REASON](key, '', '', ip) : explanationOf(store.explain(key, '', '', ip), 'explain').reason
    return reason === Reason.MalformedKey || reason === Reason.UnknownKey ? this.#deny(reason) : undefined
  }

  /**
   * Checks one request. Never throws: every failure, including the store's or the route
   * function's, is a denial.
   * @param {IncomingMessage} req
   * @returns {KeygateAuth | PreparedDenial}
   */
  check(req) {
    let key
    try {
      // A WebDAV path that could be read as another one is refused before anything else:
      // no key is read and the store is not asked.
      const davPrefix = this.#davPrefix
      const davPath = davPrefix === null ? null : davPathOf(req, davPrefix)
      if (davPath === REFUSED) return this.#deny(Reason.InvalidRequest)
      // A COPY or MOVE acts on a second path, its Destination: read (and refused) the same way.
      /** @type {DestinationHeaders | null} */
      const moving =
        davPath !== null && typeof req.method === 'string' && DESTINATION_METHOD.test(req.method) ? { destination: undefined, destinations: 0, hosts: [] } : null

      // One pass over the raw headers: Node drops repeated Authorization headers from
      // req.headers (it keeps the first), so duplicates are only visible here.
      let authorization
      let authorizations = 0
      let apiKey
      let apiKeys = 0
      let forwardedFor
      const raw = req.rawHeaders
      if (Array.isArray(raw)) {
        const wantForwarded = this.#trust !== null
        for (let i = 0; i < raw.length; i += 2) {
          const name = raw[i]
          const length = name.length
          if (length === 13) {
            if (name.toLowerCase() === 'authorization') {
              authorizations++
              authorization = raw[i + 1]
            }
          } else if (length === 9) {
            if (name.toLowerCase() === 'x-api-key') {
              apiKeys++
              apiKey = raw[i + 1]
            }
          } else if (length === 15 && wantForwarded && name.toLowerCase() === 'x-forwarded-for') {
            forwardedFor = forwardedFor === undefined ? raw[i + 1] : `${forwardedFor},${raw[i + 1]}`
          } else if (moving !== null) {
            if (length === 11 && name.toLowerCase() === 'destination') {
              moving.destinations++
              moving.destination = raw[i + 1]
            } else if ((length === 4 && name.toLowerCase() === 'host') || name === ':authority') {
              moving.hosts.push(raw[i + 1])
            }
          }
        }
      } else if (req.headers !== null && typeof req.headers === 'object') {
        const h = req.headers
        authorization = h.authorization
        apiKey = h['x-api-key']
        forwardedFor = h['x-forwarded-for']
        if (moving !== null) {
          const destination = h.destination
          const hosts = [h.host, h[':authority']].flat()
          if (Array.isArray(destination)) moving.destinations = destination.length
          else if (destination !== undefined) moving.destinations = 1
          moving.destination = Array.isArray(destination) ? destination[0] : destination
          for (const host of hosts) if (typeof host === 'string') moving.hosts.push(host)
        }
        if (Array.isArray(authorization)) authorizations = authorization.length
        else if (authorization !== undefined) authorizations = 1
        if (Array.isArray(apiKey)) apiKeys = apiKey.length
        else if (apiKey !== undefined) apiKeys = 1
        if (Array.isArray(forwardedFor)) forwardedFor = forwardedFor.join(',')
      }
      let davDestination
      if (moving !== null) {
        // Like a refused path: before the key is read, without asking the store.
        davDestination = davDestinationOf(req, /** @type {string} */ (davPrefix), moving)
        if (davDestination === REFUSED) return this.#deny(Reason.InvalidRequest)
      }
      if (authorizations > 1) return this.#deny(GuardReason.DuplicateAuthorization)
      if (apiKeys > 1) return this.#deny(GuardReason.DuplicateApiKey)

      // Authorization: <scheme> 1*(SP / HTAB) <key>, scheme case-insensitive.
      let authKey = ''
      let foreignScheme = false
      if (typeof authorization === 'string') {
        const value = authorization.trim()
        if (value !== '') {
          let end = 0
          while (end < value.length && value.charCodeAt(end) !== 32 && value.charCodeAt(end) !== 9) end++
          if (SCHEMES.has(value.slice(0, end).toLowerCase())) authKey = value.slice(end).trim()
          else foreignScheme = true
        }
      }
      const headerKey = typeof apiKey === 'string' ? apiKey.trim() : ''
      if (authKey !== '' && headerKey !== '' && authKey !== headerKey) return this.#deny(GuardReason.ConflictingKeys)

      let ip = clientAddress(req, this.#trust, forwardedFor)
      if (ip === BAD_FORWARDED) return this.#deny(GuardReason.InvalidForwardedFor)
      // A link-local IPv6 peer comes with its zone (`fe80::1%eth0`), which no IP rule matches.
      if (typeof ip === 'string' && ip.includes('%')) ip = ip.slice(0, ip.indexOf('%'))

      key = authKey !== '' ? authKey : headerKey
      if (key === '') return this.#deny(foreignScheme ? GuardReason.UnsupportedScheme : GuardReason.MissingKey)
      if (key.length > MAX_KEY_LENGTH) return this.#deny(Reason.MalformedKey) // the store would say so too, after reading it all

      if (davPath !== null) return this.#checkDav(req, key, davPath, davDestination, ip)

      // Authenticate first: a bad key is 401 whatever the route function answers or throws.
      let route
      let service
      let api
      try {
        route = this.#route(req)
        if (isThenable(route)) throw typeError('options.route returned a Promise: the guard needs the call at once (a plain function, not an async one)')
        // Read here too: an answer whose fields cannot be read (a getter that throws, a revoked
        // Proxy) is the route failing, and a bad key is still a 401, not a 500 and onError.
        if (route !== null && route !== undefined) ({ service, api } = route)
      } catch (error) {
        return this.#unauthenticated(key, ip) ?? this.#fail(error, req, key)
      }
      const store = this.#store
      if (route === null || route === undefined) return this.#unauthenticated(key, ip) ?? this.#deny(GuardReason.NoRoute)
      if (typeof service !== 'string' || typeof api !== 'string') {
        const garbage = new TypeError('options.route must return { service: string, api: string }, null or undefined')
        return this.#unauthenticated(key, ip) ?? this.#fail(garbage, req, key)
      }

      key = detached(key)
      const reason = reasonOf(store, key, detached(service), detached(api), typeof ip === 'string' ? detached(ip) : ip)
      if (reason !== Reason.Allowed) return this.#deny(reason)
      const known = this.#identities.get(key)
      if (known !== undefined) return { ok: true, kind: 'api', keyId: known[0], userId: known[1], service, api, ip }
      // The first success of this secret: ask for the ids.
      const decision = explanationOf(store.explain(key, service, api, ip), 'explain')
      // Refused as `allowed` (isAllowed said yes, explain no): no_matching_rule, as reasonOf says it.
      if (!decision.allowed) return this.#deny(/** @type {DenialReason} */ (refusalOf(decision.reason)))
      const [keyId, userId] = this.#remember(key, allowedIds(decision, 'explain'))
      return { ok: true, kind: 'api', keyId, userId, service, api, ip }
    } catch (error) {
      return this.#fail(error, req, key)
    }
  }

  /**
   * The WebDAV part of `check`: the store's decision on `req.method` and `path`, and for a COPY or
   * MOVE on `req.method` and its `destination` too (both must be allowed).
   * @param {IncomingMessage} req
   * @param {string} secret
   * @param {string} path
   * @param {string | undefined} destination the Destination's path, for a COPY or MOVE only
   * @param {string | undefined} ip
   * @returns {KeygateAuth | PreparedDenial}
   */
  #checkDav(req, secret, path, destination, ip) {
    const method = typeof req.method === 'string' ? req.method : ''
    const key = detached(secret)
    const store = this.#store
    const address = typeof ip === 'string' ? detached(ip) : ip
    const reason = davReasonOf(store, key, method, detached(path), address)
    if (reason !== Reason.Allowed) return this.#deny(reason)
    if (destination !== undefined) {
      const destinationReason = davReasonOf(store, key, method, detached(destination), address)
      if (destinationReason !== Reason.Allowed) return this.#deny(destinationReason)
    }
    let ids = this.#identities.get(key)
    if (ids === undefined) {
      const decision = explanationOf(store.explainDav(key, method, path, ip), 'explainDav')
      if (!decision.allowed) return this.#deny(/** @type {DenialReason} */ (refusalOf(decision.reason)))
      ids = this.#remember(key, allowedIds(decision, 'explainDav'))
    }
    const [keyId, userId] = ids
    return destination === undefined
      ? { ok: true, kind: 'dav', keyId, userId, method, path, ip }
      : { ok: true, kind: 'dav', keyId, userId, method, path, destination, ip }
  }

  /**
   * Remembers the ids of a secret's first success (its allowed decision's, see allowedIds).
   * @param {string} key
   * @param {[keyId: string, userId: string]} ids
   * @returns {[keyId: string, userId: string]}
   */
  #remember(key, ids) {
    const identities = this.#identities
    if (identities.size >= MAX_IDENTITIES) identities.clear()
    identities.set(key, ids)
    return ids
  }

  /**
   * A node:http request listener that runs `handler` only for allowed requests; also one of
   * node:http2's compatibility API, whose request and response have every part the guard uses.
   * @template {IncomingMessage | Http2ServerRequest} Req
   * @template {ServerResponse | Http2ServerResponse} Res
   * @param {(req: Req & { keygate: KeygateAuth }, res: Res) => unknown} handler
   * @returns {(req: Req, res: Res) => void}
   */
  node(handler) {
    if (typeof handler !== 'function') throw invalidOption('guard.node(handler) needs a function (req, res) => void')
    const check = this.check
    /** @this {unknown} */
    return function keygateGuarded(req, res) {
      const request = /** @type {IncomingMessage} */ (req)
      const result = check(request)
      if (result.ok) {
        request.keygate = result
        return handler.call(this, /** @type {Req & { keygate: KeygateAuth }} */ (req), res)
      }
      writeDenial(/** @type {ServerResponse} */ (res), result)
    }
  }

  /**
   * Connect/Express middleware `(req, res, next)`: sets `req.keygate` or answers the denial.
   * @returns {import('../http.js').GuardMiddleware}
   */
  express() {
    const check = this.check
    return function keygate(req, res, next) {
      const result = check(req)
      if (result.ok) {
        req.keygate = result
        next()
      } else {
        writeDenial(res, result)
      }
    }
  }

  /**
   * A Fastify plugin: registers an `onRequest` hook on the instance it is registered on (and
   * not only inside its own encapsulation context) and decorates requests with `keygate`.
   * @returns {import('../http.js').GuardFastifyPlugin}
   */
  fastify() {
    const hook = this.fastifyHook()
    /**
     * @param {any} instance a Fastify instance (typed loosely, as in http.d.ts: no fastify types here)
     * @param {unknown} _opts
     * @param {(error?: Error) => void} done
     */
    function keygatePlugin(instance, _opts, done) {
      try {
        if (typeof instance.hasRequestDecorator !== 'function' || !instance.hasRequestDecorator('keygate')) {
          instance.decorateRequest('keygate', null)
        }
        instance.addHook('onRequest', hook)
        done()
      } catch (error) {
        done(error)
      }
    }
    // What the fastify-plugin package does: run in the parent's context, not a child's.
    const marks = /** @type {Record<symbol, unknown>} */ (/** @type {unknown} */ (keygatePlugin))
    marks[Symbol.for('skip-override')] = true
    marks[Symbol.for('fastify.display-name')] = 'keygate'
    marks[Symbol.for('plugin-meta')] = { name: 'keygate', fastify: '>=4' }
    return keygatePlugin
  }

  /**
   * A Fastify `onRequest` hook, for one route or a scope: `{ onRequest: guard.fastifyHook() }`.
   * @returns {import('../http.js').GuardFastifyHook}
   */
  fastifyHook() {
    const check = this.check
    return function keygateOnRequest(request, reply, done) {
      routedByUrl.add(request.raw)
      const result = check(request.raw)
      if (result.ok) {
        request.keygate = result
        done()
        return
      }
      reply.code(result.status).headers(result.headers)
      if (closesAfterDenial(request.raw)) reply.header('connection', 'close')
      reply.send(result.json ?? JSON.stringify(result.body))
    }
  }

  /**
   * Writes a denial from `check` on a node ServerResponse (also an Express response, or an
   * HTTP/2 compatibility API's).
   * @param {ServerResponse | Http2ServerResponse} res
   * @param {PreparedDenial} denial
   */
  reply(res, denial) {
    writeDenial(/** @type {ServerResponse} */ (res), denial)
  }
}

/** @param {Error} error */
function defaultOnError(error) {
  // One line, whatever the error says: a message may quote what a request sent (a route's
  // JSON.parse quotes its input), newlines and escape sequences included. Any secret too,
  // not only the request's key (hidden already): a route may quote another header's key.
  console.error(`keygate/http: answered 500: ${visible(redactSecrets(errorSummary(error)))}`)
}

/**
 * Makes the HTTP guard of a store.
 * @param {KeyStore} store
 * @param {GuardOptions} [options]
 * @returns {import('../http.js').Guard}
 */
function createGuard(store, options) {
  return new Guard(store, options)
}

module.exports = { createGuard, hornbillRoute }
