'use strict'
// The option names of createAdminServer (server.d.ts), createAdminHandler and serve: anything else
// given is refused, so that a misspelt option (`sesionIdleMs`) is not ignored in favour of its default.

const { typeError } = require('../errors.js')

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
 * The address to listen on: `given`, or `127.0.0.1` when left out.
 * @param {unknown} given
 * @returns {string}
 */
function checkHost(given) {
  const host = given ?? '127.0.0.1'
  // Node takes '' as no address and listens on every interface: never what an empty setting meant.
  if (typeof host !== 'string' || host === '') throw typeError("options.host must be an address ('0.0.0.0' or '::' for every interface); leave it out for 127.0.0.1")
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

module.exports = { ADMIN_SERVER_OPTIONS, ADMIN_HANDLER_OPTIONS, SERVE_OPTIONS, checkHost, isPort }
