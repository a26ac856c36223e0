'use strict'
// The options of createAdminServer (server.d.ts), createAdminHandler and serve: their names
// (anything else given is refused, so that a misspelt option, `sesionIdleMs`, is not ignored in
// favour of its default), and the checks of the server's, made before anything is started.

const { fromNative, quote, typeError } = require('../errors.js')
const { hasMethods, ownFields, unknownOption } = require('../args.js')
const native = require('../native.js')
const { loginOptions } = require('./login.js')

const ADMIN_SERVER_OPTIONS = Object.freeze([
  'store',
  'token',
  'tokenDigest',
  'host',
  'port',
  'actor',
  'secureCookies',
  'maxLifetimeDays',
  'sessionIdleMs',
  'sessionMaxMs',
  'bodyLimit',
  'loginFailureDelayMs',
  'loginFailureMaxDelayMs',
  'deviceCookieMaxAgeMs',
  'log',
])

/** createAdminHandler's: the server's but where it listens (the host server does), and prefix. */
const ADMIN_HANDLER_OPTIONS = Object.freeze([...ADMIN_SERVER_OPTIONS.filter((name) => name !== 'host' && name !== 'port'), 'prefix', 'cookiePath'])

/** serve's (serve.d.ts). */
const SERVE_OPTIONS = Object.freeze(['db', 'host', 'port', 'token', 'storeOptions', 'print', 'handleSignals'])

/**
 * The longest host name DNS allows (RFC 1035), not counting the final dot of a fully qualified
 * one (`example.com.`); an IP address, even with its zone, is far shorter.
 */
const MAX_HOST_LENGTH = 253

/**
 * Why `host` is no host name or address to listen on, said after its name; undefined when it may be one.
 * Found before any lookup: a NUL ends the text the system is given (`127.0.0.1\0x` listened on
 * 127.0.0.1), and the resolver's EINVAL for a long name read as an address no server can have.
 * @param {string} host
 */
function hostProblem(host) {
  // Control characters: C0, DEL and C1; none is in a host name or an address.
  if (/[^\x20-\x7e\xa0-\uffff]/.test(host)) return `${quote(host)} holds a control character: it is no host name or address`
  const named = host.endsWith('.') ? host.length - 1 : host.length
  if (named > MAX_HOST_LENGTH) return `${quote(host)} is ${host.length} characters long: a host name has at most ${MAX_HOST_LENGTH}`
  return undefined
}

/**
 * The address to listen on: `given`, or `127.0.0.1` when left out.
 * @param {unknown} given
 * @returns {string}
 */
function checkHost(given) {
  const host = given ?? '127.0.0.1'
  // Node takes '' as no address and listens on every interface: never what an empty setting meant.
  if (typeof host !== 'string' || host === '') throw typeError("options.host must be an address ('0.0.0.0' or '::' for every interface); leave it out for 127.0.0.1")
  const problem = hostProblem(host)
  if (problem !== undefined) throw typeError(`options.host ${problem}`)
  return host
}

/**
 * A port to listen on: a whole number from 0 (any free port) to 65535.
 * @param {unknown} port
 * @returns {port is number}
 */
function isPort(port) {
  return Number.isInteger(port) && /** @type {number} */ (port) >= 0 && /** @type {number} */ (port) <= 65535
}

const DEFAULT_BODY_LIMIT = 1024 * 1024 // 1,000 rules of 256 characters fit comfortably
/** A login (a token of up to 1,024 characters) must fit. */
const MIN_BODY_LIMIT = 2048
const MAX_BODY_LIMIT = 1024 * 1024 * 1024

/**
 * createAdminServer's options (server.d.ts), checked when the server is made, in this order, with
 * their defaults: a TypeError (INVALID_ARGUMENT) names the first bad one.
 * @param {import('./server.js').AdminServerOptions} given
 */
function adminServerSettings(given) {
  if (given === null || typeof given !== 'object') throw typeError('createAdminServer takes an options object')
  // Own fields only: an inherited `host` (a polluted Object.prototype) must not open the server to the network.
  const options = ownFields(given, typeError)
  const unknown = unknownOption(options, ADMIN_SERVER_OPTIONS, 'createAdminServer')
  if (unknown !== undefined) throw typeError(unknown)
  const store = options.store
  if (!hasMethods(store, ['listKeys'])) throw typeError('options.store must be a keygate KeyStore')
  const loginSettings = loginOptions(options)
  const host = checkHost(options.host)
  const port = options.port ?? 0
  // Checked now, as serve() does: '80' or 65536 would otherwise fail only at listen().
  if (!isPort(port)) throw typeError('options.port must be a whole number from 0 (any free port) to 65535')
  const actor = options.actor ?? 'web:admin'
  // Checked now, as the store checks it at each change: a bad one would fail every change with a 400 blaming the request.
  if (typeof actor !== 'string') throw typeError('options.actor must be a string, such as "web:admin"')
  try {
    native.validateActor(actor)
  } catch (error) {
    throw typeError(`options.actor: ${fromNative(error).message}`)
  }
  // The store's own limit when it tells it (a durable store keeps the one it was created with).
  const storeLimit = typeof store.maxLifetimeDays === 'number' ? store.maxLifetimeDays : undefined
  const maxLifetimeDays = options.maxLifetimeDays ?? storeLimit ?? 730
  // The page offers expiries up to it: a string ('90') or 0 would reach the page as its limit.
  if (!Number.isInteger(maxLifetimeDays) || maxLifetimeDays < 1 || maxLifetimeDays > 36_500) {
    throw typeError('options.maxLifetimeDays must be a whole number of days from 1 to 36500')
  }
  const bodyLimit = options.bodyLimit ?? DEFAULT_BODY_LIMIT
  // Checked: a string ('1mb') compares false with every size, and there would be no limit.
  if (!Number.isSafeInteger(bodyLimit) || bodyLimit < MIN_BODY_LIMIT || bodyLimit > MAX_BODY_LIMIT) {
    throw typeError(`options.bodyLimit must be a whole number of bytes from ${MIN_BODY_LIMIT} to ${MAX_BODY_LIMIT}`)
  }
  // A login whose body the limit refuses would lock the admin out (1,024 characters of three
  // UTF-8 bytes each are over the smallest limit).
  if (typeof options.token === 'string' && Buffer.byteLength(JSON.stringify({ token: options.token })) > bodyLimit) {
    throw typeError(`options.bodyLimit (${bodyLimit} bytes) is too small for a login with this token: raise it, or use a shorter token`)
  }
  // Without a log of its own, a mounted page's 500s would leave no trace anywhere; a log that is not
  // a function would leave none where the caller looks.
  if (options.log !== undefined && typeof options.log !== 'function') throw typeError('options.log must be a function (line) => void')
  const log = options.log ?? ((/** @type {string} */ line) => console.error(line))
  // Only a missing option is 'auto': null is refused below, as every other value is.
  const secureCookies = options.secureCookies === undefined ? 'auto' : options.secureCookies
  // Checked: any other value ('true' from an environment variable, 'always') was taken as 'auto',
  // and behind a proxy that sends no X-Forwarded-Proto the session cookie went out without Secure.
  if (secureCookies !== true && secureCookies !== false && secureCookies !== 'auto') {
    throw typeError("options.secureCookies must be true, false or 'auto'")
  }
  return { options, store, loginSettings, host, port, actor, maxLifetimeDays, bodyLimit, log, secureCookies }
}

module.exports = { ADMIN_SERVER_OPTIONS, ADMIN_HANDLER_OPTIONS, SERVE_OPTIONS, adminServerSettings, checkHost, hostProblem, isPort }
