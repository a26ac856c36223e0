'use strict'
// The admin login: the token check and the throttle that slows guessing down without
// locking the admin out (OWASP's "device cookie"). A successful login leaves a signed
// device cookie; a login carrying a valid one is never throttled, and its failures count
// against that cookie alone (revoked after DEVICE_MAX_FAILURES in its life, right logins
// between them or not). Any other login is
// throttled by its address: once the address has recent failures, every attempt from it,
// right or wrong, is answered only after the address's delay (1 s doubling to 16 s), so the
// timing of an answer reveals nothing, and only one attempt per address is checked at a
// time — the others get 429 at once, their token unchecked. A guesser thus gets about one
// guess per delay per address.

const { createHmac, randomBytes, timingSafeEqual } = require('node:crypto')

const { ApiError, sha256 } = require('./response.js')
const { typeError } = require('../errors.js')
const { AdminErrorCode } = require('./codes.js')
const { parseCookies, cookie } = require('./session.js')

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
/** The longest token a login may send (and so the longest a server may be given). */
const MAX_TOKEN_LENGTH = 1024
/** The shortest admin token `keygate serve` takes (from $KEYGATE_ADMIN_TOKEN or its `token` option). */
const MIN_TOKEN_LENGTH = 16
/** `<random id>.<expiry, ms since the epoch>.<HMAC of both>`, all base64url or decimal. */
const DEVICE_COOKIE_RE = /^([A-Za-z0-9_-]{22})\.([0-9]{1,15})\.([A-Za-z0-9_-]{43})$/

/**
 * What an admin token's length must be, when `token`'s is not (`at least 16`, `at most 1024`):
 * a longer token than a login may send would lock the admin out.
 * @param {string} token
 * @returns {string | undefined}
 */
function tokenLengthProblem(token) {
  if (token.length < MIN_TOKEN_LENGTH) return `at least ${MIN_TOKEN_LENGTH}`
  if (token.length > MAX_TOKEN_LENGTH) return `at most ${MAX_TOKEN_LENGTH}`
  return undefined
}

/**
 * @typedef {import('node:http').IncomingMessage} IncomingMessage
 * @typedef {import('./server.js').AdminServerOptions} AdminServerOptions
 */

/**
 * The token's digest from `token` or `tokenDigest` (SHA-256 hex); a TypeError when neither is usable.
 * @param {Pick<AdminServerOptions, 'token' | 'tokenDigest'>} options
 */
function tokenDigestOf({ token, tokenDigest }) {
  if (typeof token === 'string' && token.length > 0) {
    // Refused here, not at every login: a short token is guessed (throttling only slows each
    // address), and one longer than a login may send would lock the admin out.
    const bound = tokenLengthProblem(token)
    if (bound !== undefined) throw typeError(`options.token must be ${bound} characters (${MIN_TOKEN_LENGTH} to ${MAX_TOKEN_LENGTH})`)
    return sha256(token)
  }
  if (typeof tokenDigest === 'string' && /^[0-9a-f]{64}$/i.test(tokenDigest)) return Buffer.from(tokenDigest, 'hex')
  throw typeError(`the admin server needs options.token (${MIN_TOKEN_LENGTH} to ${MAX_TOKEN_LENGTH} characters) or options.tokenDigest (its SHA-256, hex)`)
}

/**
 * The login options, checked (TypeError naming the bad one).
 * @param {AdminServerOptions} options
 */
function loginOptions(options) {
  const tokenDigest = tokenDigestOf(options)
  const failureDelayMs = options.loginFailureDelayMs ?? LOGIN_FAILURE_DELAY_MS
  const givenMaxDelayMs = options.loginFailureMaxDelayMs ?? LOGIN_FAILURE_MAX_DELAY_MS
  // Checked as given: raised to the delay first, a negative maximum had been taken without a word.
  for (const [name, value] of /** @type {[string, number][]} */ ([
    ['loginFailureDelayMs', failureDelayMs],
    ['loginFailureMaxDelayMs', givenMaxDelayMs],
  ])) {
    if (!Number.isFinite(value) || value < 0 || value > 60_000) throw typeError(`options.${name} must be a number of milliseconds from 0 to 60000`)
  }
  const failureMaxDelayMs = Math.max(failureDelayMs, givenMaxDelayMs)
  const deviceMaxAgeMs = options.deviceCookieMaxAgeMs ?? DEVICE_COOKIE_MAX_AGE_MS
  if (!Number.isFinite(deviceMaxAgeMs) || deviceMaxAgeMs < 1000 || deviceMaxAgeMs > 400 * 24 * 60 * 60 * 1000) {
    throw typeError('options.deviceCookieMaxAgeMs must be a number of milliseconds from 1000 to 400 days')
  }
  return { tokenDigest, deviceKey: deviceKeyOf(tokenDigest), failureDelayMs, failureMaxDelayMs, deviceMaxAgeMs, secureCookies: options.secureCookies ?? 'auto' }
}

/**
 * The key that signs device cookies, derived from the token's digest: cookies outlive a
 * restart (a browser that logged in before is never throttled, even by a guesser behind the
 * same address) and die with a new token. Forging one takes the digest, which is kept like the
 * store itself, and would only spare waiting: whoever holds the digest of a guessable token can
 * already try guesses offline.
 * @param {Buffer} tokenDigest
 */
function deviceKeyOf(tokenDigest) {
  return createHmac('sha256', tokenDigest).update('keygate device cookie v1').digest()
}

/** @param {number} ms */
function sleep(ms) {
  // unref: a pending answer does not keep a closed server's process alive
  return ms > 0 ? new Promise((resolve) => setTimeout(resolve, ms).unref()) : Promise.resolve()
}

function badToken() {
  return new ApiError(401, AdminErrorCode.BadToken, 'wrong admin token')
}

/**
 * Where a login comes from, for throttling: the remote address, an IPv4 address mapped
 * into IPv6 as plain IPv4, and an IPv6 address as its /64 (what one host usually holds).
 * @param {IncomingMessage} req
 */
function addressOf(req) {
  const a = String(req.socket.remoteAddress || '?')
    .replace(/%.*$/, '')
    .toLowerCase()
  if (/^::ffff:[0-9.]+$/.test(a)) return a.slice(7)
  if (!a.includes(':')) return a
  const [head, tail] = a.split('::')
  const headGroups = head ? head.split(':') : []
  const tailGroups = tail ? tail.split(':') : []
  const groups = tail === undefined ? headGroups : [...headGroups, ...Array(Math.max(0, 8 - headGroups.length - tailGroups.length)).fill('0'), ...tailGroups]
  return `${groups
    .slice(0, 4)
    .map((g) => g.replace(/^0+(?=.)/, ''))
    .join(':')}::/64`
}

/**
 * The login check of one admin server.
 * @param {ReturnType<typeof loginOptions>} options
 */
function createLogin({ tokenDigest, deviceKey, failureDelayMs, failureMaxDelayMs, deviceMaxAgeMs, secureCookies }) {
  /**
   * remote address → { count, last } of recent failed logins, least recently failed first
   * @type {Map<string, { count: number, last: number }>}
   */
  const failures = new Map()
  /**
   * address → when its one login being checked is answered (ms since the epoch)
   * @type {Map<string, number>}
   */
  const loginsInFlight = new Map()
  /**
   * device cookie id → { count, expires } of its failed logins; count ≥ DEVICE_MAX_FAILURES: revoked
   * @type {Map<string, { count: number, expires: number }>}
   */
  const deviceFailures = new Map()

  /** @param {unknown} token what the login form sent */
  function isRightToken(token) {
    return typeof token === 'string' && token.length > 0 && token.length <= MAX_TOKEN_LENGTH && timingSafeEqual(sha256(token), tokenDigest)
  }

  /**
   * The wait before answering a login, after `count` recent failures (0: none).
   * @param {number} count
   */
  function delayAfter(count) {
    if (count <= 0) return 0
    return Math.min(failureMaxDelayMs, failureDelayMs * 2 ** Math.min(count - 1, 30))
  }

  /**
   * Checks `token`, after the delay of the login's device cookie or address. Resolves to
   * the Set-Cookie value of a fresh device cookie when it is right; else rejects with
   * BAD_TOKEN (401) or TOO_MANY_LOGINS (429).
   * @param {IncomingMessage} req
   * @param {unknown} token what the login form sent
   * @returns {Promise<string>}
   */
  async function check(req, token) {
    const now = Date.now()
    const device = deviceOf(req, now)
    if (device !== null) {
      // The cookie's failures are kept: forgotten at each right login, they would give a stolen
      // copy of it ten more guesses every time the admin logs in with the browser it came from.
      if (isRightToken(token)) return deviceCookie(req)
      // Counted on arrival, so guesses sent side by side with a stolen cookie soon revoke it.
      await sleep(delayAfter(countDeviceFailure(device)))
      throw badToken()
    }
    const addr = addressOf(req)
    const recent = recentFailures(addr, now)
    if (recent === 0) {
      // No recent failure: answered at once, right or wrong (nothing is guessed faster that way).
      if (isRightToken(token)) return deviceCookie(req)
      countAddressFailure(addr, now)
      throw badToken()
    }
    const busyUntil = loginsInFlight.get(addr)
    if (busyUntil !== undefined) {
      // The token is not even looked at: the answer says nothing about it.
      const retryAfter = Math.max(1, Math.ceil((busyUntil - now) / 1000))
      throw new ApiError(429, AdminErrorCode.TooManyLogins, `another login from your address is being checked; try again in ${retryAfter} s`, { retryAfter })
    }
    const delay = delayAfter(recent)
    loginsInFlight.set(addr, now + delay)
    try {
      await sleep(delay)
    } finally {
      loginsInFlight.delete(addr)
    }
    if (isRightToken(token)) return deviceCookie(req)
    countAddressFailure(addr, Date.now())
    throw badToken()
  }

  /**
   * @param {string} id
   * @param {number | string} expires ms since the epoch, as the cookie writes it
   */
  function deviceMac(id, expires) {
    return createHmac('sha256', deviceKey).update(`${id}.${expires}`).digest('base64url')
  }

  /** @param {IncomingMessage} req */
  function deviceCookie(req) {
    const id = randomBytes(16).toString('base64url')
    const expires = Date.now() + deviceMaxAgeMs
    return cookie(req, DEVICE_COOKIE_NAME, `${id}.${expires}.${deviceMac(id, expires)}`, Math.floor(deviceMaxAgeMs / 1000), secureCookies)
  }

  /**
   * The id and expiry of the request's device cookie when it is signed by this server, unexpired and not revoked; else null.
   * @param {IncomingMessage} req
   * @param {number} now
   */
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

  /**
   * Counts a failure of a device cookie (revoking it at DEVICE_MAX_FAILURES); its failure count.
   * @param {{ id: string, expires: number }} device
   */
  function countDeviceFailure(device) {
    const id = device.id
    let d = deviceFailures.get(id)
    deviceFailures.delete(id) // re-inserted last: the map stays ordered by the latest failure
    if (d === undefined) {
      // The map is full, so it has a first key.
      if (deviceFailures.size >= LOGIN_MAX_DEVICES) deviceFailures.delete(/** @type {string} */ (deviceFailures.keys().next().value))
      // Only cookies this server signed get here, so their expiry can be trusted for the sweep.
      d = { count: 0, expires: device.expires }
    }
    d.count++
    deviceFailures.set(id, d)
    return d.count
  }

  /**
   * @param {string} addr
   * @param {number} now
   */
  function recentFailures(addr, now) {
    const f = failures.get(addr)
    return f === undefined || now - f.last > LOGIN_MEMORY_MS ? 0 : f.count
  }

  /**
   * @param {string} addr
   * @param {number} now
   */
  function countAddressFailure(addr, now) {
    let f = failures.get(addr)
    if (f !== undefined && now - f.last > LOGIN_MEMORY_MS) f = undefined
    failures.delete(addr) // re-inserted last: the map stays ordered by the latest failure
    if (f === undefined) {
      // The map is full, so it has a first key.
      if (failures.size >= LOGIN_MAX_ADDRESSES) failures.delete(/** @type {string} */ (failures.keys().next().value))
      f = { count: 0, last: now }
    }
    f.count++
    f.last = now
    failures.set(addr, f)
  }

  /**
   * Forgets failures past their memory and device cookies past their expiry.
   * @param {number} now
   */
  function sweep(now) {
    for (const [addr, f] of failures) if (now - f.last > LOGIN_MEMORY_MS) failures.delete(addr)
    for (const [id, d] of deviceFailures) if (d.expires <= now) deviceFailures.delete(id)
  }

  return { check, sweep }
}

module.exports = { createLogin, loginOptions, tokenLengthProblem }
