'use strict'
// The option names of createAdminServer (server.d.ts), createAdminHandler and serve: anything else
// given is refused, so that a misspelt option (`sesionIdleMs`) is not ignored in favour of its default.

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
const ADMIN_HANDLER_OPTIONS = Object.freeze([...ADMIN_SERVER_OPTIONS.filter((name) => name !== 'host' && name !== 'port'), 'prefix'])

/** serve's (serve.d.ts). */
const SERVE_OPTIONS = Object.freeze(['db', 'host', 'port', 'token', 'storeOptions', 'print', 'handleSignals'])

module.exports = { ADMIN_SERVER_OPTIONS, ADMIN_HANDLER_OPTIONS, SERVE_OPTIONS }
