'use strict'
// The keygate admin web page: createAdminServer (its own node:http server, on any KeyStore),
// createAdminHandler (the same page mounted under a path of your own server) and serve (on the
// durable store).

const { ownFields, unknownOption } = require('../args.js')
const { quote, redactSecrets, typeError } = require('../errors.js')
const { logSafely, shownMethod, shownPath } = require('./response.js')
const { createAdminServer } = require('./server.js')
const { mountedAt, cookiePathOf } = require('./session.js')
const { ADMIN_HANDLER_OPTIONS } = require('./options.js')
const { serve, tokenFileOf } = require('./serve.js')

/**
 * '/admin/' or 'admin' → '/admin'; '/' or '' → '' (the page at the root).
 * @param {unknown} prefix
 */
function normalizePrefix(prefix) {
  if (typeof prefix !== 'string') throw typeError('options.prefix must be a string such as "/admin"')
  const trimmed = prefix.replace(/\/+$/, '')
  if (trimmed === '') return ''
  const withSlash = trimmed.startsWith('/') ? trimmed : `/${trimmed}`
  if (/[?#\s]/.test(withSlash)) throw typeError('options.prefix must be a plain path such as "/admin"')
  // Browsers resolve `.` and `..` segments, and proxies merge `//`, before a request is sent: a
  // page mounted at '/a/../b' would be out of every browser's reach.
  if (
    withSlash
      .slice(1)
      .split('/')
      .some((segment) => segment === '' || segment === '.' || segment === '..')
  ) {
    throw typeError('options.prefix must not hold an empty, "." or ".." segment')
  }
  return withSlash
}

/**
 * A query for a Location header: Node refuses a header with a control character or one past
 * Latin-1 (which only a request made by hand can carry), so those are percent-encoded (UTF-8).
 * @param {string} query
 */
function locationQuery(query) {
  return query.replace(/[^\x21-\x7e\x80-\xff]/gu, (c) => Buffer.from(c).toString('hex').toUpperCase().replace(/../g, '%$&'))
}

/**
 * The admin page as a request handler for a server of your own, under `prefix` (default `/admin`).
 * Use it as `(req, res, next)` middleware (Express: `app.use(handler)` or `app.use('/admin', handler)`)
 * or call it from node:http / Fastify with the raw request and response. Requests outside the prefix
 * go to `next()` when given, else get a 404. `prefix` itself redirects to `prefix/`, because the page
 * loads its assets and API relative to its own URL.
 * @param {import('./index.js').AdminHandlerOptions} options
 * @returns {import('./index.js').AdminHandler}
 */
function createAdminHandler(options) {
  if (options === null || typeof options !== 'object') throw typeError('createAdminHandler takes an options object')
  // Own fields only (an inherited `prefix` must not mount the page over the whole app).
  const fields = ownFields(options, typeError)
  const unknown = unknownOption(fields, ADMIN_HANDLER_OPTIONS, 'createAdminHandler')
  if (unknown !== undefined) throw typeError(unknown)
  const { prefix: givenPrefix = '/admin', cookiePath: givenCookiePath, ...serverOptions } = fields
  const prefix = normalizePrefix(givenPrefix)
  const cookiePath = cookiePathOf(givenCookiePath, prefix)
  // The admin server is never listened on: its request listener is used as is.
  const admin = createAdminServer(serverOptions)
  // createAdminServer has checked it: a function, or left out.
  const log = typeof serverOptions.log === 'function' ? serverOptions.log : (/** @type {string} */ line) => console.error(line)
  /**
   * Whether another of the app's handlers has answered already: then nothing more can be said, and
   * writing would throw ERR_HTTP_HEADERS_SENT out of the app's request listener (ending a node:http app).
   * @param {import('node:http').IncomingMessage} req
   * @param {import('node:http').ServerResponse} res
   * @param {string} pathname
   */
  function answeredBefore(req, res, pathname) {
    if (!res.headersSent) return false
    logSafely(
      log,
      redactSecrets(
        `keygate admin: ${shownMethod(req.method)} ${quote(shownPath(pathname))} was answered by another handler before the admin page; it was left as it was`,
      ),
    )
    return true
  }

  /**
   * @param {import('node:http').IncomingMessage & { originalUrl?: unknown }} req
   * @param {import('node:http').ServerResponse} res
   * @param {(error?: unknown) => void} [next]
   */
  function handler(req, res, next) {
    // Express strips its own mount path from req.url but keeps the full one in originalUrl.
    // A url that is not a string (a request made by hand) is taken as missing: made text, a Symbol or an object whose toString throws would throw here.
    const full = typeof req.originalUrl === 'string' ? req.originalUrl : typeof req.url === 'string' && req.url !== '' ? req.url : '/'
    const q = full.indexOf('?')
    const pathname = q < 0 ? full : full.slice(0, q)
    const query = q < 0 ? '' : full.slice(q)
    if (prefix !== '' && pathname === prefix) {
      if (answeredBefore(req, res, pathname)) return
      res.writeHead(308, { Location: `${prefix}/${locationQuery(query)}`, 'Cache-Control': 'no-store' })
      res.end()
      return
    }
    if (prefix !== '' && !pathname.startsWith(`${prefix}/`)) {
      if (typeof next === 'function') return next()
      if (answeredBefore(req, res, pathname)) return
      res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' })
      res.end('not found')
      return
    }
    if (answeredBefore(req, res, pathname)) return
    req.url = full.slice(prefix.length)
    mountedAt(req, cookiePath)
    admin.server.emit('request', req, res)
  }
  Object.defineProperties(handler, {
    prefix: { value: prefix === '' ? '/' : `${prefix}/`, enumerable: true },
    sessionCount: { get: () => admin.sessionCount, enumerable: true },
  })
  /** Drops every session and the session sweeper. Does not close the store. */
  handler.close = () => admin.close()
  // With prefix and sessionCount, defined just above (which TypeScript does not follow).
  return /** @type {import('./index.js').AdminHandler} */ (handler)
}

module.exports = { createAdminServer, createAdminHandler, serve, tokenFileOf }
