'use strict'
// keygate admin web server: the Hornbill-like API-key screen and the JSON API behind it.
// Plain node:http, no framework. The page (public/) is static and talks to /api/… with
// fetch; every change is a non-GET call that needs the session cookie and its CSRF token.

const http = require('node:http')
const fs = require('node:fs')
const path = require('node:path')
const { createHash, createHmac, randomBytes, timingSafeEqual } = require('node:crypto')

const { KeyStore, KEY_STATES: KEY_STATE_LIST, USER_STATUSES: USER_STATUS_LIST, AUDIT_ACTIONS } = require('../store.js')
const { KeygateError, quote, redactSecrets } = require('../errors.js')

const PUBLIC_DIR = path.join(__dirname, 'public')
const STATIC_FILES = {
  '/': ['index.html', 'text/html; charset=utf-8'],
  '/index.html': ['index.html', 'text/html; charset=utf-8'],
  '/app.js': ['app.js', 'text/javascript; charset=utf-8'],
  '/app.css': ['app.css', 'text/css; charset=utf-8'],
  '/favicon.svg': ['favicon.svg', 'image/svg+xml'],
}

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

const COOKIE_NAME = 'keygate_sid'
const DEFAULT_BODY_LIMIT = 1024 * 1024 // 1,000 rules of 256 characters fit comfortably
const DEFAULT_IDLE_MS = 30 * 60 * 1000
const DEFAULT_ABSOLUTE_MS = 12 * 60 * 60 * 1000
const MAX_SESSIONS = 1000
// Login guessing is slowed down without locking the admin out (OWASP's "device cookie"):
// a successful login leaves a signed device cookie; a login carrying a valid one is never
// throttled, and its failures count against that cookie alone (revoked after
// DEVICE_MAX_FAILURES). Any other login is throttled by its address: once the address has
// recent failures, every attempt from it, right or wrong, is answered only after the
// address's delay (1 s doubling to 16 s), so the timing of an answer reveals nothing, and
// only one attempt per address is checked at a time — the others get 429 at once, their
// token unchecked. A guesser thus gets about one guess per delay per address.
const LOGIN_FAILURE_DELAY_MS = 1000
const LOGIN_FAILURE_MAX_DELAY_MS = 16 * 1000
/** Failures of an address are forgotten after this long without one. */
const LOGIN_MEMORY_MS = 15 * 60 * 1000
/** Addresses whose failures are remembered at most (the oldest is forgotten first). */
const LOGIN_MAX_ADDRESSES = 10_000
const DEVICE_COOKIE_NAME = 'keygate_device'
const DEVICE_COOKIE_MAX_AGE_MS = 30 * 24 * 60 * 60 * 1000
/** Failures a device cookie may have before it stops exempting its logins from throttling. */
const DEVICE_MAX_FAILURES = 10
/** Device cookies with failures (or revoked) remembered at most (the oldest is forgotten first). */
const LOGIN_MAX_DEVICES = 10_000
/** `<random id>.<expiry, ms since the epoch>.<HMAC of both>`, all base64url or decimal. */
const DEVICE_COOKIE_RE = /^([A-Za-z0-9_-]{22})\.([0-9]{1,15})\.([A-Za-z0-9_-]{43})$/

const KEY_STATES = new Set(KEY_STATE_LIST)
const USER_STATUSES = new Set(USER_STATUS_LIST)

/** An error of the admin API itself (not of the store). */
class ApiError extends Error {
  constructor(status, code, message, extra) {
    super(message)
    this.status = status
    this.code = code
    this.extra = extra
  }
}

const STATUS_OF_CODE = {
  INVALID_ARGUMENT: 400,
  INVALID_RULE: 400,
  EXPIRY_REQUIRED: 400,
  EXPIRY_IN_PAST: 400,
  EXPIRY_TOO_FAR: 400,
  INVALID_STATE: 400,
  UNKNOWN_USER: 404,
  UNKNOWN_ROLE: 404,
  UNKNOWN_KEY: 404,
  REVOKED_IS_FINAL: 409,
  STORE_LOCKED: 503,
  STORE_IO: 500,
  STORE_CORRUPT: 500,
}

function sha256(text) {
  return createHash('sha256').update(text, 'utf8').digest()
}

/** Constant-time string comparison (digests first, so unequal lengths take the same time). */
function constantTimeEqual(a, b) {
  return timingSafeEqual(sha256(String(a)), sha256(String(b)))
}

function parseCookies(header) {
  const out = {}
  if (typeof header !== 'string') return out
  for (const part of header.split(';')) {
    const i = part.indexOf('=')
    if (i < 0) continue
    const name = part.slice(0, i).trim()
    if (name && !(name in out)) out[name] = part.slice(i + 1).trim()
  }
  return out
}

// ---- request-body helpers ----------------------------------------------------

function field(body, name) {
  return Object.prototype.hasOwnProperty.call(body, name) ? body[name] : undefined
}

function str(body, name, { optional = false, max = 100_000 } = {}) {
  const v = field(body, name)
  if (v === undefined || v === null) {
    if (optional) return undefined
    throw new ApiError(400, 'INVALID_ARGUMENT', `${name} is required`)
  }
  if (typeof v !== 'string') throw new ApiError(400, 'INVALID_ARGUMENT', `${name} must be a string`)
  if (v.length > max) throw new ApiError(400, 'INVALID_ARGUMENT', `${name} is longer than ${max} characters`)
  return v
}

function strList(body, name, { optional = false } = {}) {
  const v = field(body, name)
  if (v === undefined || v === null) {
    if (optional) return undefined
    throw new ApiError(400, 'INVALID_ARGUMENT', `${name} is required`)
  }
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) {
    throw new ApiError(400, 'INVALID_ARGUMENT', `${name} must be a list of strings`)
  }
  return v
}

/** Rules as typed in a textarea: one per line, blank lines dropped, whitespace trimmed. */
function ruleLines(list) {
  return list.map((r) => r.trim()).filter((r) => r !== '')
}

function date(body, name, { optional = false } = {}) {
  const v = field(body, name)
  if (v === undefined || v === null || v === '') {
    if (optional) return undefined
    throw new KeygateError('EXPIRY_REQUIRED', `${name} is required`)
  }
  if (typeof v !== 'string' && typeof v !== 'number') {
    throw new ApiError(400, 'INVALID_ARGUMENT', `${name} must be an ISO date-time`)
  }
  const d = new Date(v)
  if (!Number.isFinite(d.getTime())) throw new ApiError(400, 'INVALID_ARGUMENT', `${name} is not a valid date-time`)
  return d
}

/** Checks the optimistic-concurrency stamp a page sends with a change of a key. */
function checkFresh(key, body, id) {
  if (key === null) throw new KeygateError('UNKNOWN_KEY', `no key with id ${quote(id)}`)
  const seen = field(body, 'updatedAt')
  if (seen === undefined || seen === null) return key
  const t = new Date(seen).getTime()
  if (!Number.isFinite(t) || t !== key.updatedAt.getTime()) {
    throw new ApiError(
      409,
      'KEY_CHANGED',
      `key ${key.id} was changed elsewhere (another tab or admin) since this page showed it; review it and try again`,
    )
  }
  return key
}

/**
 * Validates rules line by line. `lines` are the raw lines of a textarea; line numbers
 * count every line (blank ones are allowed and ignored). `rights` refuses IP rules.
 */
function validateLines(lines, { rights = false } = {}) {
  const errors = []
  const rules = []
  lines.forEach((raw, i) => {
    const text = raw.trim()
    if (text === '') return
    try {
      const rule = KeyStore.validateRule(text)
      if (rights && /^ip=/i.test(rule)) {
        throw new KeygateError('INVALID_RULE', `invalid rule ${quote(text)}: user and role rights take API rules only, not IP rules`)
      }
      rules.push(rule)
    } catch (e) {
      if (!(e instanceof KeygateError)) throw e
      errors.push({ line: i + 1, rule: shortened(redactSecrets(text), 300), message: e.message })
    }
  })
  if (rules.length + errors.length > 1000) {
    errors.push({ line: 0, rule: '', message: `${rules.length + errors.length} rules given; at most 1000 are allowed` })
  }
  return { ok: errors.length === 0, rules, errors }
}

/** `text` cut to `max` code points (never splitting a surrogate pair), with … when cut. */
function shortened(text, max) {
  const points = Array.from(text)
  return points.length > max ? `${points.slice(0, max).join('')}…` : text
}

// ---- the server ------------------------------------------------------------------

/**
 * Creates the admin web server on a keygate store.
 *
 * @param {object} options
 * @param {import('../../index').KeyStore} options.store
 * @param {string} [options.token]          the admin token (plain); or
 * @param {string} [options.tokenDigest]    its SHA-256 in hex (what `serve` keeps on disk)
 * @param {string} [options.host]           default 127.0.0.1
 * @param {number} [options.port]           default 0 (any free port)
 * @param {string} [options.actor]          recorded in the audit trail, default 'web:admin'
 * @param {boolean|'auto'} [options.secureCookies] add `Secure` to the cookie ('auto': on https / X-Forwarded-Proto https)
 * @param {number} [options.maxLifetimeDays] shown by the page (the store enforces its own), default 730
 * @param {number} [options.sessionIdleMs]  default 30 minutes
 * @param {number} [options.sessionMaxMs]   default 12 hours
 * @param {number} [options.bodyLimit]      bytes, default 1 MiB
 * @param {number} [options.loginFailureDelayMs]    a login without a device cookie, from an address with recent failures, is answered after this, doubling per failure; default 1000
 * @param {number} [options.loginFailureMaxDelayMs] the most such a login waits; default 16000
 * @param {number} [options.deviceCookieMaxAgeMs]   lifetime of the device cookie a successful login sets; default 30 days
 * @param {(line: string) => void} [options.log] receives one line per failed request (never a secret)
 */
function createAdminServer(options) {
  if (options === null || typeof options !== 'object') throw new TypeError('createAdminServer takes an options object')
  const store = options.store
  if (!store || typeof store.listKeys !== 'function') throw new TypeError('options.store must be a keygate KeyStore')

  let tokenDigest
  if (typeof options.token === 'string' && options.token.length > 0) {
    tokenDigest = sha256(options.token)
  } else if (typeof options.tokenDigest === 'string' && /^[0-9a-f]{64}$/i.test(options.tokenDigest)) {
    tokenDigest = Buffer.from(options.tokenDigest, 'hex')
  } else {
    throw new TypeError('createAdminServer needs options.token (or options.tokenDigest, SHA-256 hex)')
  }

  const host = options.host ?? '127.0.0.1'
  const port = options.port ?? 0
  const actor = options.actor ?? 'web:admin'
  const secureCookies = options.secureCookies ?? 'auto'
  // The store's own limit when it tells it (a durable store keeps the one it was created with).
  const storeLimit = typeof store.maxLifetimeDays === 'number' ? store.maxLifetimeDays : undefined
  const maxLifetimeDays = options.maxLifetimeDays ?? storeLimit ?? 730
  const idleMs = options.sessionIdleMs ?? DEFAULT_IDLE_MS
  const maxMs = options.sessionMaxMs ?? DEFAULT_ABSOLUTE_MS
  const bodyLimit = options.bodyLimit ?? DEFAULT_BODY_LIMIT
  const failureDelayMs = options.loginFailureDelayMs ?? LOGIN_FAILURE_DELAY_MS
  const failureMaxDelayMs = Math.max(failureDelayMs, options.loginFailureMaxDelayMs ?? LOGIN_FAILURE_MAX_DELAY_MS)
  for (const [name, value] of [['loginFailureDelayMs', failureDelayMs], ['loginFailureMaxDelayMs', failureMaxDelayMs]]) {
    if (!Number.isFinite(value) || value < 0 || value > 60_000) throw new TypeError(`options.${name} must be a number of milliseconds from 0 to 60000`)
  }
  const deviceMaxAgeMs = options.deviceCookieMaxAgeMs ?? DEVICE_COOKIE_MAX_AGE_MS
  if (!Number.isFinite(deviceMaxAgeMs) || deviceMaxAgeMs < 1000 || deviceMaxAgeMs > 400 * 24 * 60 * 60 * 1000) {
    throw new TypeError('options.deviceCookieMaxAgeMs must be a number of milliseconds from 1000 to 400 days')
  }
  const log = typeof options.log === 'function' ? options.log : () => {}
  const admin = { actor }
  /** Signs device cookies; per server, so a restart invalidates them (they only spare waiting). */
  const deviceKey = randomBytes(32)

  /** session id → { csrf, created, seen } */
  const sessions = new Map()
  /** remote address → { count, last } of recent failed logins, least recently failed first */
  const failures = new Map()
  /** address → when its one login being checked is answered (ms since the epoch) */
  const loginsInFlight = new Map()
  /** device cookie id → { count, expires } of its failed logins; count ≥ DEVICE_MAX_FAILURES: revoked */
  const deviceFailures = new Map()

  const staticCache = new Map()
  function staticFile(name) {
    let buf = staticCache.get(name)
    if (buf === undefined) {
      buf = fs.readFileSync(path.join(PUBLIC_DIR, name))
      staticCache.set(name, buf)
    }
    return buf
  }

  function sweep(now) {
    for (const [id, s] of sessions) {
      if (now - s.seen > idleMs || now - s.created > maxMs) sessions.delete(id)
    }
    for (const [addr, f] of failures) if (now - f.last > LOGIN_MEMORY_MS) failures.delete(addr)
    for (const [id, d] of deviceFailures) if (d.expires <= now) deviceFailures.delete(id)
  }
  const sweeper = setInterval(() => sweep(Date.now()), 60_000)
  sweeper.unref()

  function sessionOf(req) {
    const sid = parseCookies(req.headers.cookie)[COOKIE_NAME]
    if (!sid || !/^[A-Za-z0-9_-]{43}$/.test(sid)) return null
    const s = sessions.get(sid)
    if (!s) return null
    const now = Date.now()
    if (now - s.seen > idleMs || now - s.created > maxMs) {
      sessions.delete(sid)
      return null
    }
    s.seen = now
    return { id: sid, ...s, ref: s }
  }

  function isSecure(req) {
    if (secureCookies === true) return true
    if (secureCookies === false) return false
    return Boolean(req.socket.encrypted) || String(req.headers['x-forwarded-proto'] || '').split(',')[0].trim() === 'https'
  }

  function cookie(req, value, maxAgeSeconds) {
    let c = `${COOKIE_NAME}=${value}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${maxAgeSeconds}`
    if (isSecure(req)) c += '; Secure'
    return c
  }

  // ---- responses ----

  function send(res, status, body, headers = {}) {
    if (res.headersSent) return
    res.writeHead(status, { ...SECURITY_HEADERS, ...headers })
    res.end(body)
  }

  function json(res, status, value, headers = {}) {
    send(res, status, JSON.stringify(value), {
      'Content-Type': 'application/json; charset=utf-8',
      'Cache-Control': 'no-store',
      ...headers,
    })
  }

  function fail(res, error, req) {
    let status
    let code
    let message
    let extra
    if (error instanceof ApiError) {
      ;({ status, code, message, extra } = error)
    } else if (error instanceof KeygateError) {
      code = error.code
      status = STATUS_OF_CODE[code] ?? 400
      message = error.message
    } else {
      status = 500
      code = 'INTERNAL'
      message = 'internal error'
      // Never the request body: only where and what kind of failure.
      log(redactSecrets(`keygate admin: internal error on ${req.method} ${quote(urlPath(req))}: ${error && error.stack ? error.stack : error}`))
    }
    if (status >= 500 && code !== 'INTERNAL') log(redactSecrets(`keygate admin: ${code} on ${req.method} ${quote(urlPath(req))}: ${message}`))
    const headers = status === 429 && extra && extra.retryAfter ? { 'Retry-After': String(extra.retryAfter) } : {}
    json(res, status, { error: { code, message } }, headers)
  }

  function urlPath(req) {
    const u = String(req.url || '/')
    const q = u.indexOf('?')
    return q < 0 ? u : u.slice(0, q)
  }

  // ---- request bodies ----

  function readBody(req) {
    return new Promise((resolve, reject) => {
      const declared = Number(req.headers['content-length'])
      if (Number.isFinite(declared) && declared > bodyLimit) {
        reject(new ApiError(413, 'BODY_TOO_LARGE', `request body over ${bodyLimit} bytes`))
        req.resume()
        return
      }
      const chunks = []
      let size = 0
      let done = false
      req.on('data', (chunk) => {
        if (done) return
        size += chunk.length
        if (size > bodyLimit) {
          done = true
          reject(new ApiError(413, 'BODY_TOO_LARGE', `request body over ${bodyLimit} bytes`))
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
            return reject(new ApiError(400, 'INVALID_ARGUMENT', 'the request body must be a JSON object'))
          }
          resolve(value)
        } catch {
          // JSON.parse messages quote the input, which may hold a secret: never pass them on.
          reject(new ApiError(400, 'INVALID_ARGUMENT', 'the request body is not valid JSON'))
        }
      })
      req.on('error', reject)
    })
  }

  // ---- checks on changes ----

  function checkOrigin(req) {
    const site = req.headers['sec-fetch-site']
    if (site === 'cross-site' || site === 'same-site') {
      throw new ApiError(403, 'FORBIDDEN', 'cross-site requests are refused')
    }
    const origin = req.headers.origin
    if (origin !== undefined && origin !== 'null') {
      let host
      try {
        host = new URL(origin).host
      } catch {
        throw new ApiError(403, 'FORBIDDEN', 'bad Origin header')
      }
      // Behind a reverse proxy that rewrites Host, the original host is in X-Forwarded-Host.
      const forwarded = String(req.headers['x-forwarded-host'] || '').split(',')[0].trim()
      if (host !== req.headers.host && (forwarded === '' || host !== forwarded)) {
        throw new ApiError(403, 'FORBIDDEN', 'cross-origin requests are refused')
      }
    } else if (origin === 'null') {
      throw new ApiError(403, 'FORBIDDEN', 'cross-origin requests are refused')
    }
  }

  function checkJson(req) {
    const type = String(req.headers['content-type'] || '')
    const length = req.headers['content-length']
    const hasBody = (length !== undefined && length !== '0') || req.headers['transfer-encoding'] !== undefined
    if (hasBody && !/^application\/json\s*(;|$)/i.test(type)) {
      throw new ApiError(415, 'UNSUPPORTED_MEDIA_TYPE', 'send JSON (Content-Type: application/json)')
    }
  }

  function checkCsrf(req, session) {
    const given = req.headers['x-csrf-token']
    if (typeof given !== 'string' || given === '' || !constantTimeEqual(given, session.csrf)) {
      throw new ApiError(403, 'CSRF', 'missing or wrong CSRF token (reload the page)')
    }
  }

  // ---- login ----

  function isRightToken(token) {
    return typeof token === 'string' && token.length > 0 && token.length <= 1024 && timingSafeEqual(sha256(token), tokenDigest)
  }

  /** The wait before answering a login, after `count` recent failures (0: none). */
  function delayAfter(count) {
    if (count <= 0) return 0
    return Math.min(failureMaxDelayMs, failureDelayMs * 2 ** Math.min(count - 1, 30))
  }

  function sleep(ms) {
    // unref: a pending answer does not keep a closed server's process alive
    return ms > 0 ? new Promise((resolve) => setTimeout(resolve, ms).unref()) : Promise.resolve()
  }

  function badToken() {
    return new ApiError(401, 'BAD_TOKEN', 'wrong admin token')
  }

  /** Logs in, or refuses after the delay of the login's device cookie or address (see LOGIN_FAILURE_DELAY_MS). */
  async function login(req, res, token) {
    const now = Date.now()
    const device = deviceOf(req, now)
    if (device !== null) {
      if (isRightToken(token)) {
        deviceFailures.delete(device.id)
        return admit(req, res)
      }
      // Counted on arrival, so guesses sent side by side with a stolen cookie soon revoke it.
      await sleep(delayAfter(countDeviceFailure(device)))
      throw badToken()
    }
    const addr = addressOf(req)
    const recent = recentFailures(addr, now)
    if (recent === 0) {
      // No recent failure: answered at once, right or wrong (nothing is guessed faster that way).
      if (isRightToken(token)) return admit(req, res)
      countAddressFailure(addr, now)
      throw badToken()
    }
    const busyUntil = loginsInFlight.get(addr)
    if (busyUntil !== undefined) {
      // The token is not even looked at: the answer says nothing about it.
      const retryAfter = Math.max(1, Math.ceil((busyUntil - now) / 1000))
      throw new ApiError(429, 'TOO_MANY_LOGINS', `another login from your address is being checked; try again in ${retryAfter} s`, { retryAfter })
    }
    const delay = delayAfter(recent)
    loginsInFlight.set(addr, now + delay)
    try {
      await sleep(delay)
    } finally {
      loginsInFlight.delete(addr)
    }
    if (isRightToken(token)) return admit(req, res)
    countAddressFailure(addr, Date.now())
    throw badToken()
  }

  /** A successful login: a fresh session (no fixation) and a fresh device cookie. */
  function admit(req, res) {
    const old = sessionOf(req)
    if (old) sessions.delete(old.id)
    const s = newSession()
    return json(res, 200, sessionInfo(s), {
      'Set-Cookie': [cookie(req, s.id, Math.floor(maxMs / 1000)), deviceCookie(req)],
    })
  }

  function deviceMac(id, expires) {
    return createHmac('sha256', deviceKey).update(`${id}.${expires}`).digest('base64url')
  }

  function deviceCookie(req) {
    const id = randomBytes(16).toString('base64url')
    const expires = Date.now() + deviceMaxAgeMs
    let c = `${DEVICE_COOKIE_NAME}=${id}.${expires}.${deviceMac(id, expires)}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${Math.floor(deviceMaxAgeMs / 1000)}`
    if (isSecure(req)) c += '; Secure'
    return c
  }

  /** The id and expiry of the request's device cookie when it is signed by this server, unexpired and not revoked; else null. */
  function deviceOf(req, now) {
    const m = DEVICE_COOKIE_RE.exec(parseCookies(req.headers.cookie)[DEVICE_COOKIE_NAME] ?? '')
    if (m === null) return null
    const [, id, expiresText, mac] = m
    const expires = Number(expiresText)
    if (!timingSafeEqual(Buffer.from(mac), Buffer.from(deviceMac(id, expiresText)))) return null
    if (!(expires > now)) return null
    const d = deviceFailures.get(id)
    if (d !== undefined && d.count >= DEVICE_MAX_FAILURES) return null
    return { id, expires }
  }

  /** Counts a failure of a device cookie (revoking it at DEVICE_MAX_FAILURES); its failure count. */
  function countDeviceFailure(device) {
    const id = device.id
    let d = deviceFailures.get(id)
    deviceFailures.delete(id) // re-inserted last: the map stays ordered by the latest failure
    if (d === undefined) {
      if (deviceFailures.size >= LOGIN_MAX_DEVICES) deviceFailures.delete(deviceFailures.keys().next().value)
      // Only cookies this server signed get here, so their expiry can be trusted for the sweep.
      d = { count: 0, expires: device.expires }
    }
    d.count++
    deviceFailures.set(id, d)
    return d.count
  }

  /**
   * Where a login comes from, for throttling: the remote address, an IPv4 address mapped
   * into IPv6 as plain IPv4, and an IPv6 address as its /64 (what one host usually holds).
   */
  function addressOf(req) {
    const a = String(req.socket.remoteAddress || '?').replace(/%.*$/, '').toLowerCase()
    if (/^::ffff:[0-9.]+$/.test(a)) return a.slice(7)
    if (!a.includes(':')) return a
    const [head, tail] = a.split('::')
    const headGroups = head ? head.split(':') : []
    const tailGroups = tail ? tail.split(':') : []
    const groups = tail === undefined ? headGroups : [...headGroups, ...Array(Math.max(0, 8 - headGroups.length - tailGroups.length)).fill('0'), ...tailGroups]
    return `${groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, '')).join(':')}::/64`
  }

  function recentFailures(addr, now) {
    const f = failures.get(addr)
    return f === undefined || now - f.last > LOGIN_MEMORY_MS ? 0 : f.count
  }

  function countAddressFailure(addr, now) {
    let f = failures.get(addr)
    if (f !== undefined && now - f.last > LOGIN_MEMORY_MS) f = undefined
    failures.delete(addr) // re-inserted last: the map stays ordered by the latest failure
    if (f === undefined) {
      if (failures.size >= LOGIN_MAX_ADDRESSES) failures.delete(failures.keys().next().value)
      f = { count: 0, last: now }
    }
    f.count++
    f.last = now
    failures.set(addr, f)
  }

  function newSession() {
    const now = Date.now()
    sweep(now)
    if (sessions.size >= MAX_SESSIONS) {
      // Evict the least recently seen.
      let oldest
      for (const [id, s] of sessions) if (!oldest || s.seen < oldest[1].seen) oldest = [id, s]
      if (oldest) sessions.delete(oldest[0])
    }
    const id = randomBytes(32).toString('base64url')
    const s = { csrf: randomBytes(32).toString('base64url'), created: now, seen: now }
    sessions.set(id, s)
    return { id, ...s }
  }

  function sessionInfo(session) {
    return {
      authenticated: true,
      csrfToken: session.csrf,
      actor,
      now: store.now(),
      maxLifetimeDays,
      keyPrefix: typeof store.keyPrefix === 'string' ? store.keyPrefix : 'kg',
      expiresInSeconds: Math.floor(idleMs / 1000),
    }
  }

  // ---- views of the store ----

  function usersWithCounts() {
    const keys = store.listKeys()
    const counts = new Map()
    for (const k of keys) {
      const c = counts.get(k.userId) ?? { total: 0, active: 0, suspended: 0, revoked: 0 }
      c.total++
      c[k.state]++
      counts.set(k.userId, c)
    }
    return store.listUsers().map((u) => ({ ...u, keys: counts.get(u.id) ?? { total: 0, active: 0, suspended: 0, revoked: 0 } }))
  }

  function mustKey(id) {
    const key = store.getKey(id)
    if (key === null) throw new KeygateError('UNKNOWN_KEY', `no key with id ${quote(id)}`)
    return key
  }

  function mustUser(id) {
    const user = store.getUser(id)
    if (user === null) throw new KeygateError('UNKNOWN_USER', `no user with id ${quote(id)}`)
    return user
  }

  function mustRole(name) {
    const role = store.getRole(name)
    if (role === null) throw new KeygateError('UNKNOWN_ROLE', `no role named ${quote(name)}`)
    return role
  }

  /**
   * The decision a key would give, from its settings alone (no secret): steps 3–9 of the
   * decision, replayed on a scratch in-memory store that holds a copy of the key's user,
   * roles and rules.
   */
  function simulate(key, service, api, ip) {
    const now = store.now()
    const user = store.getUser(key.userId)
    const base = { keyId: key.id, userId: key.userId }
    const simNow = new Date(Math.min(now.getTime(), key.expiresAt.getTime() - 1000))
    const scratch = KeyStore.inMemory({ now: simNow, maxLifetimeDays: 36500 })
    try {
      let decision
      if (user === null) {
        decision = { allowed: false, reason: 'user_inactive' }
      } else {
        for (const name of user.roles) {
          const role = store.getRole(name)
          if (role) scratch.putRole(role)
        }
        scratch.putUser({ id: user.id, status: user.status, rights: user.rights, roles: user.roles.filter((r) => scratch.getRole(r)) })
        const issued = scratch.createKey({ userId: user.id, description: '', expiresAt: key.expiresAt, rules: key.rules })
        decision = scratch.explain(issued.secret, service, api, ip)
      }
      if (decision.reason !== 'invalid_request') {
        if (key.state !== 'active') decision = { allowed: false, reason: key.state }
        else if (now.getTime() >= key.expiresAt.getTime()) decision = { allowed: false, reason: 'expired' }
      }
      const out = { allowed: decision.allowed, reason: decision.reason, ...base }
      if (decision.matchedRule) out.matchedRule = decision.matchedRule
      return out
    } finally {
      scratch.close()
    }
  }

  // ---- the API ----

  async function api(req, res, pathname, query) {
    const method = req.method
    const parts = pathname.split('/').slice(2).map((p) => {
      try {
        return decodeURIComponent(p)
      } catch {
        throw new ApiError(400, 'INVALID_ARGUMENT', 'bad path')
      }
    })
    const [resource, id, sub] = parts
    const change = method !== 'GET' && method !== 'HEAD'

    if (change) {
      checkOrigin(req)
      checkJson(req)
    }

    // Login and session need no session.
    if (resource === 'login' && parts.length === 1) {
      if (method !== 'POST') throw new ApiError(405, 'METHOD_NOT_ALLOWED', 'use POST')
      const body = await readBody(req) // a body that is not JSON says nothing about the token: 400 at once
      return await login(req, res, field(body, 'token'))
    }

    const session = sessionOf(req)
    if (resource === 'session' && parts.length === 1 && method === 'GET') {
      // Not an error: the page asks this first to choose between the login form and the app.
      if (!session) return json(res, 200, { authenticated: false })
      return json(res, 200, sessionInfo(session))
    }
    if (!session) throw new ApiError(401, 'UNAUTHENTICATED', 'log in first (or your session expired)')
    if (change) checkCsrf(req, session)

    if (resource === 'logout' && parts.length === 1) {
      if (method !== 'POST') throw new ApiError(405, 'METHOD_NOT_ALLOWED', 'use POST')
      sessions.delete(session.id)
      return json(res, 200, { ok: true }, { 'Set-Cookie': cookie(req, '', 0) })
    }

    const body = change ? await readBody(req) : {}

    switch (resource) {
      case 'keys':
        return keysApi(res, method, id, sub, parts.length, body, query)
      case 'users':
        return usersApi(res, method, id, sub, parts.length, body)
      case 'roles':
        return rolesApi(res, method, id, parts.length, body)
      case 'rules':
        if (id === 'validate' && parts.length === 2 && method === 'POST') {
          const lines = strList(body, 'lines')
          if (lines.length > 5000) throw new ApiError(400, 'INVALID_RULE', `${lines.length} lines; at most 1000 rules are allowed`)
          return json(res, 200, validateLines(lines, { rights: field(body, 'kind') === 'rights' }))
        }
        break
      case 'try':
        if (parts.length === 1 && method === 'POST') return tryApi(res, body)
        break
      case 'audit':
        if (parts.length === 1 && method === 'GET') return auditApi(res, query)
        if (id === 'verify' && parts.length === 2 && method === 'GET') return json(res, 200, store.verifyAudit())
        break
      default:
        break
    }
    throw new ApiError(404, 'NOT_FOUND', `no API ${method} ${quote(pathname)}`)
  }

  function keysApi(res, method, id, sub, n, body, query) {
    if (n === 1 && method === 'GET') {
      const filter = {}
      const userId = query.get('userId')
      const state = query.get('state')
      if (userId) filter.userId = userId
      if (state) {
        if (!KEY_STATES.has(state)) throw new KeygateError('INVALID_STATE', `unknown key state ${quote(state)}`)
        filter.state = state
      }
      return json(res, 200, { keys: store.listKeys(filter), now: store.now() })
    }
    if (n === 1 && method === 'POST') {
      const userId = str(body, 'userId', { max: 256 })
      const rulesIn = strList(body, 'rules', { optional: true }) ?? []
      const checked = validateLines(rulesIn)
      if (!checked.ok) {
        const e = checked.errors[0]
        throw new KeygateError('INVALID_RULE', e.line > 0 ? `line ${e.line}: ${e.message}` : e.message)
      }
      mustUser(userId)
      const input = {
        userId,
        description: str(body, 'description', { optional: true, max: 10_000 }) ?? '',
        expiresAt: date(body, 'expiresAt'),
        rules: ruleLines(rulesIn),
      }
      const state = str(body, 'state', { optional: true, max: 32 })
      if (state !== undefined) input.state = state
      const issued = store.createKey(input, admin)
      return json(res, 201, { key: issued.key, secret: issued.secret })
    }
    if (!id) throw new ApiError(404, 'NOT_FOUND', 'no such API')
    if (n === 2 && method === 'GET') return json(res, 200, { key: mustKey(id), now: store.now() })
    if (n === 2 && (method === 'PATCH' || method === 'PUT')) {
      checkFresh(store.getKey(id), body, id)
      const patch = {}
      const description = str(body, 'description', { optional: true, max: 10_000 })
      if (description !== undefined) patch.description = description
      const rulesIn = strList(body, 'rules', { optional: true })
      if (rulesIn !== undefined) {
        const checked = validateLines(rulesIn)
        if (!checked.ok) {
          const e = checked.errors[0]
          throw new KeygateError('INVALID_RULE', e.line > 0 ? `line ${e.line}: ${e.message}` : e.message)
        }
        patch.rules = ruleLines(rulesIn)
      }
      if (field(body, 'expiresAt') !== undefined) patch.expiresAt = date(body, 'expiresAt')
      return json(res, 200, { key: store.updateKey(id, patch, admin) })
    }
    if (n === 2 && method === 'DELETE') {
      const deleted = store.deleteKey(id, admin)
      if (!deleted) throw new KeygateError('UNKNOWN_KEY', `no key with id ${quote(id)}`)
      return json(res, 200, { deleted: true, id })
    }
    if (n === 3 && sub === 'state' && method === 'POST') {
      const state = str(body, 'state', { max: 32 })
      const key = checkFresh(store.getKey(id), body, id)
      if (key.state === state) {
        throw new ApiError(409, 'KEY_CHANGED', `key ${quote(id)} is already ${quote(state)} (changed elsewhere?)`)
      }
      return json(res, 200, { key: store.setState(id, state, admin) })
    }
    if (n === 3 && sub === 'rotate' && method === 'POST') {
      checkFresh(store.getKey(id), body, id)
      const overlap = field(body, 'overlapSeconds') ?? 0
      if (typeof overlap !== 'number' || !Number.isInteger(overlap) || overlap < 0 || overlap > 730 * 86400) {
        throw new ApiError(400, 'INVALID_ARGUMENT', 'overlapSeconds must be a whole number of seconds, 0 or more')
      }
      const issued = store.rotateKey(id, { overlapSeconds: overlap, actor })
      return json(res, 201, { key: issued.key, secret: issued.secret, old: store.getKey(id) })
    }
    throw new ApiError(404, 'NOT_FOUND', 'no such API')
  }

  function userInput(body, id) {
    const status = str(body, 'status', { optional: true, max: 32 }) ?? 'active'
    if (!USER_STATUSES.has(status)) throw new ApiError(400, 'INVALID_ARGUMENT', `unknown user status ${quote(status)}`)
    const rightsIn = strList(body, 'rights', { optional: true }) ?? []
    const checked = validateLines(rightsIn, { rights: true })
    if (!checked.ok) {
      const e = checked.errors[0]
      throw new KeygateError('INVALID_RULE', e.line > 0 ? `rights line ${e.line}: ${e.message}` : e.message)
    }
    const roles = strList(body, 'roles', { optional: true }) ?? []
    return { id, status, rights: ruleLines(rightsIn), roles }
  }

  function usersApi(res, method, id, sub, n, body) {
    if (n === 1 && method === 'GET') return json(res, 200, { users: usersWithCounts() })
    if (n === 1 && method === 'POST') {
      const uid = str(body, 'id', { max: 256 })
      if (store.getUser(uid) !== null) throw new ApiError(409, 'ALREADY_EXISTS', `a user with id ${quote(uid)} already exists`)
      return json(res, 201, { user: store.putUser(userInput(body, uid), admin) })
    }
    if (!id) throw new ApiError(404, 'NOT_FOUND', 'no such API')
    if (n === 2 && method === 'GET') {
      const user = mustUser(id)
      return json(res, 200, { user, keys: store.listKeys({ userId: id }), now: store.now() })
    }
    if (n === 2 && method === 'PUT') {
      // Editing never re-creates a user deleted meanwhile (a stale tab).
      mustUser(id)
      return json(res, 200, { user: store.putUser(userInput(body, id), admin) })
    }
    if (n === 2 && method === 'DELETE') {
      if (!store.deleteUser(id, admin)) throw new KeygateError('UNKNOWN_USER', `no user with id ${quote(id)}`)
      return json(res, 200, { deleted: true, id })
    }
    throw new ApiError(404, 'NOT_FOUND', 'no such API')
  }

  function roleInput(body, name) {
    const rightsIn = strList(body, 'rights', { optional: true }) ?? []
    const checked = validateLines(rightsIn, { rights: true })
    if (!checked.ok) {
      const e = checked.errors[0]
      throw new KeygateError('INVALID_RULE', e.line > 0 ? `rights line ${e.line}: ${e.message}` : e.message)
    }
    return { name, rights: ruleLines(rightsIn) }
  }

  function rolesApi(res, method, name, n, body) {
    if (n === 1 && method === 'GET') {
      const users = store.listUsers()
      const roles = store.listRoles().map((r) => ({ ...r, users: users.filter((u) => u.roles.includes(r.name)).map((u) => u.id) }))
      return json(res, 200, { roles })
    }
    if (n === 1 && method === 'POST') {
      const rname = str(body, 'name', { max: 256 })
      if (store.getRole(rname) !== null) throw new ApiError(409, 'ALREADY_EXISTS', `a role named ${quote(rname)} already exists`)
      return json(res, 201, { role: store.putRole(roleInput(body, rname), admin) })
    }
    if (!name) throw new ApiError(404, 'NOT_FOUND', 'no such API')
    if (n === 2 && method === 'GET') return json(res, 200, { role: mustRole(name) })
    if (n === 2 && method === 'PUT') {
      mustRole(name)
      return json(res, 200, { role: store.putRole(roleInput(body, name), admin) })
    }
    if (n === 2 && method === 'DELETE') {
      if (!store.deleteRole(name, admin)) throw new KeygateError('UNKNOWN_ROLE', `no role named ${quote(name)}`)
      return json(res, 200, { deleted: true, name })
    }
    throw new ApiError(404, 'NOT_FOUND', 'no such API')
  }

  function tryApi(res, body) {
    const service = str(body, 'service', { max: 4096 })
    const apiName = str(body, 'api', { max: 4096 })
    const ipIn = str(body, 'ip', { optional: true, max: 256 })
    const ip = ipIn === undefined || ipIn.trim() === '' ? undefined : ipIn.trim()
    const secret = str(body, 'secret', { optional: true, max: 4096 })
    const keyId = str(body, 'keyId', { optional: true, max: 256 })
    if (secret !== undefined && secret.trim() !== '') {
      const decision = store.explain(secret.trim(), service, apiName, ip)
      return json(res, 200, { mode: 'secret', decision })
    }
    if (keyId !== undefined && keyId.trim() !== '') {
      const key = mustKey(keyId.trim())
      return json(res, 200, { mode: 'key', decision: simulate(key, service, apiName, ip) })
    }
    throw new ApiError(400, 'INVALID_ARGUMENT', 'give a secret or a key id')
  }

  function auditApi(res, query) {
    const q = {}
    const keyId = query.get('keyId')
    const userId = query.get('userId')
    const since = query.get('since')
    const action = query.get('action')
    const who = query.get('actor')
    let limit = Number(query.get('limit') || 100)
    if (!Number.isInteger(limit) || limit < 1) limit = 100
    limit = Math.min(limit, 1000)
    if (keyId) q.keyId = keyId
    if (userId) q.userId = userId
    if (since) {
      const d = new Date(since)
      if (!Number.isFinite(d.getTime())) throw new ApiError(400, 'INVALID_ARGUMENT', 'since is not a valid date-time')
      q.since = d
    }
    if (action && !AUDIT_ACTIONS.includes(action)) throw new ApiError(400, 'INVALID_ARGUMENT', `unknown audit action ${quote(action)}`)
    const filtering = Boolean(action || who)
    q.limit = filtering ? 100_000 : limit
    let entries = store.audit(q)
    if (action) entries = entries.filter((e) => e.action === action)
    if (who) entries = entries.filter((e) => (e.actor ?? '').toLowerCase().includes(who.toLowerCase()))
    return json(res, 200, { entries: entries.slice(0, limit), verification: store.verifyAudit(), actions: AUDIT_ACTIONS })
  }

  // ---- dispatch ----

  async function handle(req, res) {
    let url
    try {
      url = new URL(req.url || '/', 'http://localhost')
    } catch {
      return json(res, 400, { error: { code: 'INVALID_ARGUMENT', message: 'bad URL' } })
    }
    const pathname = url.pathname
    try {
      if (pathname === '/api' || pathname.startsWith('/api/')) {
        await api(req, res, pathname, url.searchParams)
        return
      }
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        throw new ApiError(405, 'METHOD_NOT_ALLOWED', 'only GET here')
      }
      const file = STATIC_FILES[pathname]
      if (!file) return send(res, 404, 'not found', { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-store' })
      const buf = staticFile(file[0])
      send(res, 200, req.method === 'HEAD' ? undefined : buf, {
        'Content-Type': file[1],
        'Content-Length': String(buf.length),
        'Cache-Control': 'no-cache',
      })
    } catch (error) {
      fail(res, error, req)
    }
  }

  const server = http.createServer((req, res) => {
    handle(req, res).catch((error) => fail(res, error, req))
  })
  server.headersTimeout = 20_000
  server.requestTimeout = 30_000
  server.keepAliveTimeout = 5_000

  let address = null
  const handleObj = {
    server,
    get url() {
      if (!address) return null
      const h = address.address
      const shown = h === '0.0.0.0' || h === '::' ? 'localhost' : h.includes(':') ? `[${h}]` : h
      return `http://${shown}:${address.port}`
    },
    get port() {
      return address ? address.port : null
    },
    listen() {
      return new Promise((resolve, reject) => {
        const onError = (e) => reject(e)
        server.once('error', onError)
        server.listen(port, host, () => {
          server.off('error', onError)
          address = server.address()
          resolve(handleObj.url)
        })
      })
    },
    close() {
      clearInterval(sweeper)
      sessions.clear()
      return new Promise((resolve) => {
        if (!server.listening) return resolve()
        server.close(() => resolve())
        server.closeAllConnections()
      })
    },
    /** Number of live sessions (for tests). */
    get sessionCount() {
      return sessions.size
    },
  }
  return handleObj
}

module.exports = { createAdminServer, validateLines, CSP, SECURITY_HEADERS, COOKIE_NAME }
