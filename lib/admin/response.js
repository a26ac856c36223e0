'use strict'
// What every admin API exchange shares: the API's own errors and their HTTP statuses, the
// security headers, JSON answers, reading a JSON body within a size limit, and the checks
// every change must pass (same origin, JSON, CSRF token).

const { createHash, timingSafeEqual } = require('node:crypto')

const { KeygateError, quote, redactSecrets } = require('../errors.js')
const { ErrorCode } = require('../native.js')
const { escapedJson } = require('../visible.js')
const { AdminErrorCode } = require('./codes.js')

/**
 * @typedef {import('node:http').IncomingMessage} IncomingMessage
 * @typedef {import('node:http').ServerResponse} ServerResponse
 * @typedef {import('node:http').OutgoingHttpHeaders} OutgoingHttpHeaders
 * @typedef {import('../../index.js').ErrorCode} ErrorCodeName
 * @typedef {(typeof AdminErrorCode)[keyof typeof AdminErrorCode]} AdminErrorCodeName
 */

/**
 * What a route of the API (routes/) is given.
 * @typedef {object} RouteRequest
 * @property {Record<string, string>} params the `:name` segments of the route's pattern, decoded
 * @property {Record<string, unknown>} body the JSON body of a change (`{}` for GET), each field still to be checked
 * @property {URLSearchParams} query
 * @property {import('./session.js').Session} session
 * @property {IncomingMessage} req
 */

/**
 * A route's answer, sent as JSON: `[status, value, headers?]`.
 * @typedef {[status: number, value: unknown, headers?: OutgoingHttpHeaders]} RouteAnswer
 */

/** @typedef {(request: RouteRequest) => RouteAnswer | Promise<RouteAnswer>} RouteHandler */

/**
 * What a route takes besides its path: the fields of its JSON body and the parameters of its
 * query (none when left out; any other is a 400 naming it), and why a field a client may
 * expect is not among them (`state` of a key's edit: where a key's state is changed).
 * @typedef {{ body?: readonly string[], query?: readonly string[], hints?: Readonly<Record<string, string>> }} RouteInputs
 */

/**
 * A row of a route table: `[method, '/keys/:id/state', handler, inputs?]`.
 * @typedef {[method: string, pattern: string, handle: RouteHandler, inputs?: RouteInputs]} RouteRow
 */

/**
 * What the routes of a store act on: the store, and the actor recorded for their changes.
 * @typedef {{ store: import('../../index.js').KeyStore, admin: { actor: string } }} RouteContext
 */

const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "form-action 'self'",
].join('; ')

const SECURITY_HEADERS = {
  'Content-Security-Policy': CSP,
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'X-Frame-Options': 'DENY',
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Resource-Policy': 'same-origin',
  'Permissions-Policy': 'camera=(), microphone=(), geolocation=(), payment=()',
}

/** An error of the admin API itself (not of the store). */
class ApiError extends Error {
  /**
   * @param {number} status the HTTP status of the answer
   * @param {ErrorCodeName | AdminErrorCodeName} code
   * @param {string} message
   * @param {{ retryAfter?: number, allow?: string[] }} [extra] for a 429: seconds to wait (Retry-After); for a 405: the methods the path takes (Allow)
   */
  constructor(status, code, message, extra) {
    super(message)
    this.status = status
    this.code = code
    this.extra = extra
  }
}

/**
 * The HTTP status of a store error's code (others: 400). The store's own failures are 5xx, so they are logged.
 * @type {Partial<Record<ErrorCodeName, number>>}
 */
const STATUS_OF_CODE = {
  [ErrorCode.InvalidArgument]: 400,
  [ErrorCode.InvalidRule]: 400,
  [ErrorCode.ExpiryRequired]: 400,
  [ErrorCode.ExpiryInPast]: 400,
  [ErrorCode.ExpiryTooFar]: 400,
  [ErrorCode.InvalidState]: 400,
  [ErrorCode.UnknownUser]: 404,
  [ErrorCode.UnknownRole]: 404,
  [ErrorCode.UnknownKey]: 404,
  [ErrorCode.RevokedIsFinal]: 409,
  [ErrorCode.Conflict]: 409,
  [ErrorCode.StoreLocked]: 503,
  [ErrorCode.StoreUnavailable]: 503,
  [ErrorCode.StoreIo]: 500,
  [ErrorCode.StoreCorrupt]: 500,
  [ErrorCode.Internal]: 500,
}

/**
 * The result of `put`, a create-only write (`expect: 'new'`), whose refusal because the role or
 * user exists after all (`CONFLICT`: another host made it since this one last looked) is the
 * API's own `exists()` answer, as when this host had seen it.
 * @template T
 * @param {() => T} put
 * @param {() => ApiError} exists
 * @returns {T}
 */
function createdOnly(put, exists) {
  try {
    return put()
  } catch (error) {
    if (error instanceof KeygateError && error.code === ErrorCode.Conflict) throw exists()
    throw error
  }
}

/** Codes that say something of the store, not of the request: never answered in another's place. */
const STORE_CODES = new Set([ErrorCode.StoreIo, ErrorCode.StoreCorrupt, ErrorCode.StoreLocked, ErrorCode.StoreUnavailable, ErrorCode.Internal])

/**
 * The result of `write`, an admin write that finds inside the store whether the user, role or
 * key it names exists: this process may not yet have heard of one another host created or
 * deleted a moment ago, so what it has heard must not refuse a request the write would take.
 * Only when the write refuses the request does `seenHere` (from what this process has heard)
 * answer first, as a route that looked before it wrote did: a 404 for an id not known, a 409
 * for one taken, whatever else the request gets wrong.
 * @template T
 * @param {() => T} write
 * @param {() => Error | undefined} seenHere
 * @returns {T}
 */
function decidedByTheWrite(write, seenHere) {
  try {
    return write()
  } catch (error) {
    const instead = error instanceof Error && !STORE_CODES.has(/** @type {any} */ (error).code) ? seenHere() : undefined
    throw instead ?? error
  }
}

/** @param {string} text */
function sha256(text) {
  return createHash('sha256').update(text, 'utf8').digest()
}

/**
 * Constant-time string comparison (digests first, so unequal lengths take the same time).
 * @param {string} a
 * @param {string} b
 */
function constantTimeEqual(a, b) {
  return timingSafeEqual(sha256(String(a)), sha256(String(b)))
}

/**
 * @param {ServerResponse} res
 * @param {number} status
 * @param {string | Buffer | undefined} body none for HEAD
 * @param {OutgoingHttpHeaders} [headers]
 */
function send(res, status, body, headers = {}) {
  if (res.headersSent) return
  res.writeHead(status, { ...SECURITY_HEADERS, ...headers })
  res.end(body)
}

/**
 * @param {ServerResponse} res
 * @param {number} status
 * @param {unknown} value
 * @param {OutgoingHttpHeaders} [headers]
 */
function json(res, status, value, headers = {}) {
  send(res, status, escapedJson(JSON.stringify(value)), {
    'Content-Type': 'application/json; charset=utf-8',
    'Cache-Control': 'no-store',
    ...headers,
  })
}

/**
 * A request's method as messages and log lines show it: Node's is always a token, but a request
 * made by hand (a test's, a framework's adapter) may carry anything, and a Symbol or an object
 * whose toString throws would make the message itself throw.
 * @param {unknown} method
 */
function shownMethod(method) {
  if (typeof method !== 'string') return `(a method of type ${typeof method})`
  return /^[A-Za-z-]{1,20}$/.test(method) ? method : quote(method)
}

/**
 * A thrown value for a log line: its stack, else its text; a value that cannot be made text (a
 * Symbol, an object whose toString throws) must not make the log line throw instead.
 * @param {any} error
 */
function described(error) {
  try {
    return String(error?.stack ? error.stack : error)
  } catch {
    return `(a thrown ${typeof error} that cannot be shown)`
  }
}

/**
 * `described`, but a thrown value's message rather than its stack (its text when it has none).
 * @param {any} error
 */
function describedMessage(error) {
  try {
    return String(error?.message ?? error)
  } catch {
    return `(a thrown ${typeof error} that cannot be shown)`
  }
}

/** @param {IncomingMessage} req */
function urlPath(req) {
  const u = typeof req.url === 'string' && req.url !== '' ? req.url : '/'
  const q = u.indexOf('?')
  return shownPath(q < 0 ? u : u.slice(0, q))
}

/** How many characters of a path segment a message shows. */
const SHOWN_SEGMENT = 16

/**
 * A request path as messages and log lines show it: percent-decoded (when it decodes), and only
 * its first two segments (`/api/users/…`), each redacted and cut to 16 characters: the API's own
 * segments fit, and so does `kg_<redacted>`, but a secret's body cut by `%3A` into pieces no
 * scrub can tell shows no more than a third of itself. Ids after them
 * are the caller's text, and a path can hide a secret in pieces behind escapes (`%3A`, or a `%`
 * typed before a secret's own hex digits) that no reading of the message can tell apart.
 * @param {string} path
 */
function shownPath(path) {
  let decoded = path
  try {
    decoded = decodeURIComponent(path)
  } catch {
    // shown as sent
  }
  const segments = decoded.split('/')
  const shown = segments.slice(0, 3).map((segment) => {
    const text = Array.from(redactSecrets(segment))
    return text.length > SHOWN_SEGMENT ? `${text.slice(0, SHOWN_SEGMENT).join('')}…` : text.join('')
  })
  return segments.length > 3 ? `${shown.join('/')}/…` : shown.join('/')
}

/**
 * Hands `line` to `log`; a log that throws is ignored: it must not leave a request unanswered, nor
 * end the process (thrown from an event listener or a promise's catch).
 * @param {(line: string) => void} log
 * @param {string} line
 */
function logSafely(log, line) {
  try {
    log(line)
  } catch {
    // the line is lost; nothing else is
  }
}

/**
 * Answers `error` as `{ error: { code, message } }`; `log` hears of server-side failures only.
 * @param {ServerResponse} res
 * @param {any} error a caught value (read as JavaScript reads it: `error.stack`)
 * @param {IncomingMessage} req
 * @param {(line: string) => void} log
 * @param {(text: string) => string} [scrub] the store's (`scrubMessage`): withholds a message or log
 *   line that would give away one of its secrets cut into pieces
 */
function fail(res, error, req, log, scrub = (text) => text) {
  let status
  let code
  let message
  let extra
  let logged = false
  if (error instanceof ApiError) {
    ;({ status, code, message, extra } = error)
  } else if (error instanceof KeygateError) {
    code = error.code
    status = STATUS_OF_CODE[code] ?? 400
    message = error.message
  } else {
    status = 500
    code = ErrorCode.Internal
    message = 'internal error'
    // Never the request body: only where and what kind of failure.
    logSafely(log, scrub(redactSecrets(`keygate admin: internal error on ${shownMethod(req.method)} ${quote(urlPath(req))}: ${described(error)}`)))
    logged = true
  }
  message = scrub(message)
  if (status >= 500 && !logged) logSafely(log, scrub(redactSecrets(`keygate admin: ${code} on ${shownMethod(req.method)} ${quote(urlPath(req))}: ${message}`)))
  /** @type {Record<string, string>} */
  const headers = {}
  if (status === 429 && extra && extra.retryAfter) headers['Retry-After'] = String(extra.retryAfter)
  if (status === 405 && extra && extra.allow) headers.Allow = extra.allow.join(', ')
  json(res, status, { error: { code, message } }, headers)
}

/**
 * `fail`, which must not throw either: it answers from a promise's catch, where a throw is an
 * unhandled rejection that ends the host process (a response object that cannot be written, say,
 * one of a framework's that was handed over broken). Then the failure is logged and the
 * connection dropped, so the client is not left waiting.
 * @param {ServerResponse} res
 * @param {unknown} error
 * @param {IncomingMessage} req
 * @param {(line: string) => void} log
 * @param {(text: string) => string} [scrub]
 */
function answerFailure(res, error, req, log, scrub = (text) => text) {
  try {
    fail(res, error, req, log, scrub)
  } catch (unanswerable) {
    logSafely(log, scrub(redactSecrets(`keygate admin: could not answer ${shownMethod(req?.method)} ${quote(urlPath(req))}: ${described(unanswerable)}`)))
    try {
      res.destroy()
    } catch {
      // Not a response that can be dropped: nothing more to do.
    }
  }
}

/**
 * An object as JSON.parse makes one: not an array, a Buffer (express.raw) or any other class.
 * @param {unknown} value
 * @returns {value is Record<string, unknown>}
 */
function isPlainObject(value) {
  if (value === null || typeof value !== 'object') return false
  const proto = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}

/**
 * Whether this handler, reading `text` as the body itself, would take it: empty (read as `{}`)
 * or a JSON object.
 * @param {string} text
 */
function isTakenBody(text) {
  if (text.trim() === '') return true
  try {
    return isPlainObject(JSON.parse(text))
  } catch {
    return false
  }
}

/**
 * Whether `text`, a string a parser in front left as the body, is shorter than the body the
 * request declared by at least two bytes: then it is no text parser's copy of the body (as long
 * as the body), but the inside of a JSON string literal (`"{}"`: a body encoded twice) that
 * `express.json({ strict: false })` parsed. Unknown (false) when the declared length does not
 * count the text's UTF-8 bytes: no Content-Length, a compressed body, another charset.
 * @param {IncomingMessage} req
 * @param {string} text
 */
function isParsedJsonString(req, text) {
  const declared = Number(req.headers['content-length'] ?? Number.NaN)
  if (!Number.isSafeInteger(declared)) return false
  const encoding = req.headers['content-encoding']
  if (encoding !== undefined && encoding.trim().toLowerCase() !== 'identity') return false
  const charset = /;\s*charset\s*=\s*"?([^";\s]*)/i.exec(req.headers['content-type'] ?? '')?.[1]?.toLowerCase()
  if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8') return false
  return declared >= Buffer.byteLength(text, 'utf8') + 2
}

/**
 * The request's JSON object body (`{}` when empty); ApiError 413 past `limit` bytes, 400 when not a JSON object.
 * @param {IncomingMessage} req
 * @param {number} limit
 * @returns {Promise<Record<string, unknown>>}
 */
function readBody(req, limit) {
  return new Promise((resolve, reject) => {
    const parsed = /** @type {{ _body?: unknown, body?: unknown }} */ (req)
    // Read by a parser mounted in front: body-parser 1 (Express 4's express.json()) marks the
    // request `_body`; body-parser 2 (Express 5's) only leaves its stream ended.
    const readBefore = parsed._body === true || req.readableEnded
    if (readBefore && isPlainObject(parsed.body)) {
      // The request was already checked to be declared JSON, and JSON.parse made this object.
      resolve(/** @type {Record<string, unknown>} */ (parsed.body))
      return
    }
    if (readBefore && (Array.isArray(parsed.body) || parsed.body === null || typeof parsed.body === 'number' || typeof parsed.body === 'boolean')) {
      // A JSON array the client sent, which express.json() takes (strict mode allows arrays), or
      // a null, number or boolean, which only a JSON parser makes (express.json({ strict: false })):
      // the client's mistake, answered as when this handler reads the body itself.
      reject(new ApiError(400, ErrorCode.InvalidArgument, 'the request body must be a JSON object'))
      return
    }
    if (readBefore && typeof parsed.body === 'string' && (!isTakenBody(parsed.body) || isParsedJsonString(req, parsed.body))) {
      // A JSON string the client sent (express.json({ strict: false }) makes it; `"{}"` too,
      // told by its length), or a text parser's copy of a body that is no JSON object: the
      // client's mistake either way. A text parser's copy of an object (the page's own requests)
      // or of an empty body (a logout's `-d ''`), which this handler would take, is the
      // mounting's, answered below.
      reject(new ApiError(400, ErrorCode.InvalidArgument, 'the request body must be a JSON object'))
      return
    }
    if (readBefore) {
      // Read by another middleware into something else: waiting for it would hang.
      reject(new ApiError(500, ErrorCode.Internal, 'the request body was already read by another middleware: mount the admin handler before any body parser'))
      return
    }
    const declared = Number(req.headers['content-length'])
    if (Number.isFinite(declared) && declared > limit) {
      reject(new ApiError(413, AdminErrorCode.BodyTooLarge, `request body over ${limit} bytes`))
      req.resume()
      return
    }
    /** @type {Buffer[]} */
    const chunks = []
    let size = 0
    let done = false
    req.on('data', (/** @type {Buffer} */ chunk) => {
      if (done) return
      size += chunk.length
      if (size > limit) {
        done = true
        reject(new ApiError(413, AdminErrorCode.BodyTooLarge, `request body over ${limit} bytes`))
        req.resume()
        return
      }
      chunks.push(chunk)
    })
    req.on('end', () => {
      if (done) return
      done = true
      const text = Buffer.concat(chunks).toString('utf8')
      if (text.trim() === '') return resolve({})
      try {
        const value = JSON.parse(text)
        if (value === null || typeof value !== 'object' || Array.isArray(value)) {
          return reject(new ApiError(400, ErrorCode.InvalidArgument, 'the request body must be a JSON object'))
        }
        resolve(value)
      } catch {
        // JSON.parse messages quote the input, which may hold a secret: never pass them on.
        reject(new ApiError(400, ErrorCode.InvalidArgument, 'the request body is not valid JSON'))
      }
    })
    req.on('error', (error) => {
      done = true
      // Node's for a client that hung up mid-body: the client's doing, not a failure of keygate's
      // to log as an internal error with its stack. Any other failure of the stream is one (a 500, logged).
      if (/** @type {NodeJS.ErrnoException} */ (error)?.code === 'ECONNRESET') {
        reject(new ApiError(400, ErrorCode.InvalidArgument, 'the request body was cut short (the client hung up)'))
      } else reject(error)
    })
  })
}

/**
 * A Host or X-Forwarded-Host value as `new URL(origin).host` writes a host: lower case, the
 * scheme's default port left out (a proxy may send `Host: example.com:443`, browsers
 * `Origin: https://example.com`). '' for anything but a bare host and port (no user, path or
 * other URL part could then be taken for the host).
 * @param {string | undefined} value
 * @param {string} scheme the Origin's, `https:` say
 */
function hostAsInUrl(value, scheme) {
  if (value === undefined || !/^[0-9A-Za-z.-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$/.test(value)) return ''
  try {
    return new URL(`${scheme}//${value}`).host
  } catch {
    return ''
  }
}

/**
 * Refuses a change sent from another site or origin (Sec-Fetch-Site, Origin).
 * @param {IncomingMessage} req
 */
function checkOrigin(req) {
  const site = req.headers['sec-fetch-site']
  if (site === 'cross-site' || site === 'same-site') {
    throw new ApiError(403, AdminErrorCode.Forbidden, 'cross-site requests are refused')
  }
  const origin = req.headers.origin
  if (origin !== undefined && origin !== 'null') {
    let url
    try {
      url = new URL(origin)
    } catch {
      throw new ApiError(403, AdminErrorCode.Forbidden, 'bad Origin header')
    }
    // Behind a reverse proxy that rewrites Host, the original host is in X-Forwarded-Host.
    const forwarded = String(req.headers['x-forwarded-host'] || '')
      .split(',')[0]
      .trim()
    const { host, protocol } = url
    if (host === '' || (host !== hostAsInUrl(req.headers.host, protocol) && host !== hostAsInUrl(forwarded, protocol))) {
      throw new ApiError(403, AdminErrorCode.Forbidden, 'cross-origin requests are refused')
    }
  } else if (origin === 'null') {
    throw new ApiError(403, AdminErrorCode.Forbidden, 'cross-origin requests are refused')
  }
}

/**
 * A change with a body must declare it JSON: a plain HTML form cannot.
 * @param {IncomingMessage} req
 */
function checkJson(req) {
  const type = String(req.headers['content-type'] || '')
  const length = req.headers['content-length']
  const hasBody = (length !== undefined && length !== '0') || req.headers['transfer-encoding'] !== undefined
  if (hasBody && !/^application\/json\s*(;|$)/i.test(type)) {
    throw new ApiError(415, AdminErrorCode.UnsupportedMediaType, 'send JSON (Content-Type: application/json)')
  }
}

/**
 * @param {IncomingMessage} req
 * @param {{ csrf: string }} session
 */
function checkCsrf(req, session) {
  const given = req.headers['x-csrf-token']
  if (typeof given !== 'string' || given === '' || !constantTimeEqual(given, session.csrf)) {
    throw new ApiError(403, AdminErrorCode.Csrf, 'missing or wrong CSRF token (reload the page)')
  }
}

module.exports = {
  shownPath,
  shownMethod,
  CSP,
  SECURITY_HEADERS,
  ApiError,
  createdOnly,
  decidedByTheWrite,
  sha256,
  send,
  json,
  fail,
  answerFailure,
  logSafely,
  describedMessage,
  readBody,
  checkOrigin,
  checkJson,
  checkCsrf,
}
