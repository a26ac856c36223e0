'use strict'
// Admin sessions: a random id in an HttpOnly SameSite=Strict cookie, a CSRF token per
// session, an idle timeout and an absolute lifetime. Held in memory only: a restart logs
// everyone out.

const { createHash, randomBytes } = require('node:crypto')
const { performance } = require('node:perf_hooks')

const { typeError } = require('../errors.js')

// Sessions are timed by both clocks and end as soon as either says so: by the monotonic clock,
// as the wall clock stepped back (an NTP step, a VM restored) would let a session outlive its
// idle timeout and lifetime by the step; and by the wall clock, as the monotonic one stands
// still while the host sleeps (a laptop closed overnight would find its sessions still open).
// They live in this process's memory only, so no other process ever reads these instants.
/** @typedef {{ mono: number, wall: number }} Instant */
/** @returns {Instant} */
const clocks = () => ({ mono: performance.now(), wall: Date.now() })
/**
 * The time from `then` to `now`, by whichever clock says longer.
 * @param {Instant} now
 * @param {Instant} then
 */
const since = (now, then) => Math.max(now.mono - then.mono, now.wall - then.wall)

const COOKIE_NAME = 'keygate_sid'
const DEFAULT_IDLE_MS = 30 * 60 * 1000
const DEFAULT_ABSOLUTE_MS = 12 * 60 * 60 * 1000
/** The longest a session may live (a cookie's Max-Age is capped at 400 days by browsers). */
const MAX_SESSION_MS = 400 * 24 * 60 * 60 * 1000
const MAX_SESSIONS = 1000

/**
 * What the session table is keyed by: the id's SHA-256, not the id. A Map compares a key
 * with those in its bucket character by character, stopping at the first difference, so
 * a lookup by the cookie's text would time how much of a live session id a guess shares;
 * how much of a digest it shares tells nothing of the id.
 * @param {string} id
 */
function tableKeyOf(id) {
  return createHash('sha256').update(id, 'latin1').digest('base64url')
}

/**
 * @param {unknown} header the Cookie header, if any
 * @returns {Record<string, string | undefined>}
 */
function parseCookies(header) {
  /** @type {Record<string, string>} */
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

/**
 * @typedef {boolean | 'auto'} SecureCookies
 */

/**
 * Whether cookies set on `req`'s answer get `Secure` (`secureCookies`: true, false or 'auto').
 * @param {import('node:http').IncomingMessage} req
 * @param {SecureCookies} secureCookies
 */
function isSecure(req, secureCookies) {
  if (secureCookies === true) return true
  if (secureCookies === false) return false
  return (
    Boolean(/** @type {import('node:tls').TLSSocket} */ (req.socket).encrypted) ||
    // The first scheme is the client's (each proxy appends its own); a scheme is case-insensitive (RFC 3986).
    String(req.headers['x-forwarded-proto'] || '')
      .split(',')[0]
      .trim()
      .toLowerCase() === 'https'
  )
}

/**
 * The path each request's page is mounted under (`createAdminHandler`'s prefix), which its
 * cookies are scoped to: the rest of the app never receives the admin's session (nor logs it).
 * @type {WeakMap<import('node:http').IncomingMessage, string>}
 */
const mountPaths = new WeakMap()

/** A path a cookie's Path can hold as it is: no `;` (which would end the attribute), no space or control. */
const COOKIE_PATH = /^\/[\x21-\x3a\x3c-\x7e]*$/

/**
 * Records that `req` reached a page whose cookies go to `path` (the mount's prefix, or its `cookiePath`).
 * @param {import('node:http').IncomingMessage} req
 * @param {string} path checked by cookiePathOf
 */
function mountedAt(req, path) {
  mountPaths.set(req, path)
}

/**
 * The Path of a mounted page's cookies: `given` (`cookiePath`), else the prefix ('/' at the root).
 * @param {unknown} given
 * @param {string} prefix normalized: '/admin', or '' at the root
 * @returns {string}
 */
function cookiePathOf(given, prefix) {
  if (given === undefined) return COOKIE_PATH.test(prefix) ? prefix : '/'
  if (typeof given !== 'string' || !COOKIE_PATH.test(given)) {
    throw typeError("options.cookiePath must be a path such as '/tools/admin' (no ';', space or control character)")
  }
  return given
}

/**
 * A Set-Cookie value for the page's path (the whole site unless mounted), HttpOnly and SameSite=Strict.
 * @param {import('node:http').IncomingMessage} req
 * @param {string} name
 * @param {string} value
 * @param {number} maxAgeSeconds
 * @param {SecureCookies} secureCookies
 */
function cookie(req, name, value, maxAgeSeconds, secureCookies) {
  let c = `${name}=${value}; HttpOnly; SameSite=Strict; Path=${mountPaths.get(req) ?? '/'}; Max-Age=${maxAgeSeconds}`
  if (isSecure(req, secureCookies)) c += '; Secure'
  return c
}

/**
 * A logged-in admin's session.
 * @typedef {object} Session
 * @property {string} id
 * @property {string} csrf the token every change must carry (X-CSRF-Token)
 * @property {Instant} created
 * @property {Instant} seen
 */

/**
 * The sessions of one admin server.
 * @param {{ idleMs?: number, maxMs?: number, secureCookies?: boolean | 'auto' }} options
 */
function createSessions(options = {}) {
  const idleMs = options.idleMs ?? DEFAULT_IDLE_MS
  const maxMs = options.maxMs ?? DEFAULT_ABSOLUTE_MS
  // Checked: a string ('30m') compares false with every age, and sessions would never end.
  for (const [name, value] of /** @type {[string, unknown][]} */ ([
    ['sessionIdleMs', idleMs],
    ['sessionMaxMs', maxMs],
  ])) {
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 1000 || value > MAX_SESSION_MS) {
      throw typeError(`options.${name} must be a number of milliseconds from 1000 to 400 days`)
    }
  }
  const secureCookies = options.secureCookies ?? 'auto'
  /**
   * session id's tableKeyOf → { csrf, created, seen }
   * @type {Map<string, { csrf: string, created: Instant, seen: Instant }>}
   */
  const sessions = new Map()

  /**
   * Whether `s` has ended by `now`.
   * @param {{ created: Instant, seen: Instant }} s
   * @param {Instant} now
   */
  const ended = (s, now) => since(now, s.seen) > idleMs || since(now, s.created) > maxMs

  /** Drops the sessions that have ended. @param {Instant} [now] */
  function sweep(now = clocks()) {
    for (const [key, s] of sessions) {
      if (ended(s, now)) sessions.delete(key)
    }
  }

  /**
   * The live session whose cookie `req` carries (and marks it seen), else null.
   * @param {import('node:http').IncomingMessage} req
   * @returns {Session | null}
   */
  function sessionOf(req) {
    const sid = parseCookies(req.headers.cookie)[COOKIE_NAME]
    if (!sid || !/^[A-Za-z0-9_-]{43}$/.test(sid)) return null
    const key = tableKeyOf(sid)
    const s = sessions.get(key)
    if (!s) return null
    const now = clocks()
    if (ended(s, now)) {
      sessions.delete(key)
      return null
    }
    s.seen = now
    return { id: sid, ...s }
  }

  /**
   * A fresh session for a successful login on `req`, replacing the one it carried (no fixation); and its cookie.
   * @param {import('node:http').IncomingMessage} req
   * @returns {{ session: Session, cookie: string }}
   */
  function open(req) {
    const old = sessionOf(req)
    if (old) sessions.delete(tableKeyOf(old.id))
    const now = clocks()
    sweep(now)
    if (sessions.size >= MAX_SESSIONS) {
      // Evict the least recently seen.
      /** @type {[string, { seen: Instant }] | undefined} */
      let oldest
      for (const [key, s] of sessions) if (!oldest || s.seen.mono < oldest[1].seen.mono) oldest = [key, s]
      if (oldest) sessions.delete(oldest[0])
    }
    const id = randomBytes(32).toString('base64url')
    const s = { csrf: randomBytes(32).toString('base64url'), created: now, seen: now }
    sessions.set(tableKeyOf(id), s)
    return { session: { id, ...s }, cookie: cookie(req, COOKIE_NAME, id, Math.floor(maxMs / 1000), secureCookies) }
  }

  /**
   * Ends `session`; the Set-Cookie value that clears its cookie.
   * @param {import('node:http').IncomingMessage} req
   * @param {Session} session
   */
  function close(req, session) {
    sessions.delete(tableKeyOf(session.id))
    return cookie(req, COOKIE_NAME, '', 0, secureCookies)
  }

  return {
    /**
     * What is left of `session` if no request comes: the idle timeout, or less near the end of its lifetime.
     * @param {Session} session
     */
    msLeft: (session) => Math.max(0, Math.min(idleMs, maxMs - since(clocks(), session.created))),
    sessionOf,
    open,
    close,
    sweep,
    clear: () => sessions.clear(),
    get size() {
      return sessions.size
    },
  }
}

module.exports = { createSessions, parseCookies, cookie, mountedAt, cookiePathOf, COOKIE_NAME }
