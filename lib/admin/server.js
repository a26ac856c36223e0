'use strict'
// keygate admin web server: the Hornbill-like API-key screen and the JSON API behind it.
// Plain node:http, no framework. The page (public/) is static and talks to api/… with
// fetch; every change is a non-GET call that needs the session cookie and its CSRF token.
// This file holds the route table and the order of the checks; the routes live in routes/,
// sessions in session.js, the login throttle in login.js, shared answers in response.js.

const http = require('node:http')
const fs = require('node:fs')
const path = require('node:path')

const { bundlingAdvice } = require('../bundling.js')
const { quote, redactSecrets } = require('../errors.js')
const { adminServerSettings } = require('./options.js')
const { listenProblem } = require('./listen.js')
const { scrubMessage } = require('../store.js')

const { ErrorCode } = require('../native.js')
const { AdminErrorCode } = require('./codes.js')
const { constantsModule } = require('./constants.js')
const {
  CSP,
  SECURITY_HEADERS,
  ApiError,
  send,
  json,
  answerFailure,
  logSafely,
  describedMessage,
  readBody,
  checkOrigin,
  checkJson,
  checkCsrf,
  shownMethod,
  shownPath,
} = require('./response.js')
const { createSessions, COOKIE_NAME } = require('./session.js')
const { createLogin } = require('./login.js')
const { field, onlyInputs } = require('./input.js')
const { validateLines } = require('./rules.js')
const { keyRoutes } = require('./routes/keys.js')
const { userRoutes } = require('./routes/users.js')
const { roleRoutes } = require('./routes/roles.js')
const { auditRoutes } = require('./routes/audit.js')
const { tryRoutes } = require('./routes/try.js')
const { ruleRoutes } = require('./routes/rules.js')

/**
 * @typedef {import('node:http').IncomingMessage} IncomingMessage
 * @typedef {import('node:http').ServerResponse} ServerResponse
 * @typedef {import('./response.js').RouteRow} RouteRow
 * @typedef {import('./response.js').RouteHandler} RouteHandler
 * @typedef {import('./response.js').RouteInputs} RouteInputs
 * @typedef {{ method: string, segments: string[], handle: RouteHandler, inputs: RouteInputs }} Route
 */

const PUBLIC_DIR = path.join(__dirname, 'public')
/** How long close() lets requests under way finish before it cuts their connections. */
const DRAIN_MS = 2000
/** @type {Record<string, string | undefined>} */
const CONTENT_TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
}
/** The names in public/, which a bundle that inlined keygate/admin left behind. */
function publicFiles() {
  try {
    return fs.readdirSync(PUBLIC_DIR)
  } catch (error) {
    if (/** @type {NodeJS.ErrnoException} */ (error).code !== 'ENOENT') throw error
    const message = [
      `keygate/admin serves its page from the files of ${PUBLIC_DIR}, which does not exist: keygate/admin was bundled into another file or its files were moved.`,
      ...bundlingAdvice('keygate', 'its binary package (keygate-<platform>)'),
    ].join('\n')
    throw Object.assign(new Error(message), { code: 'ERR_KEYGATE_BUNDLED', cause: error })
  }
}
/**
 * URL path → [file name, content type]: the files of public/ (not its folders), and / for the page.
 * @type {Record<string, [name: string, type: string | undefined] | undefined>}
 */
const STATIC_FILES = { '/': ['index.html', CONTENT_TYPES['.html']] }
for (const name of publicFiles()) {
  const type = CONTENT_TYPES[path.extname(name)]
  if (type !== undefined) STATIC_FILES[`/${name}`] = [name, type]
}
/** Served beside them, but written from the binding rather than read from public/. */
const CONSTANTS_FILE = 'constants.js'
STATIC_FILES[`/${CONSTANTS_FILE}`] = [CONSTANTS_FILE, CONTENT_TYPES['.js']]

/**
 * A route table: `[method, '/keys/:id/state', handler, inputs?]` rows, matched against the
 * decoded segments of the path after /api. A handler gets `{ params, body, query, session, req }`
 * and returns `[status, value, headers?]`, answered as JSON; `inputs` are the body fields and
 * query parameters it takes (none when left out).
 * @param {RouteRow[]} rows
 * @returns {Route[]}
 */
function routeTable(rows) {
  return rows.map(([method, pattern, handle, inputs = {}]) => ({ method, segments: pattern.split('/').slice(1), handle, inputs }))
}

/**
 * The row of `table` for `method` and the path's `parts`, with its parameters; else null.
 * @param {Route[]} table
 * @param {string | undefined} method
 * @param {string[]} parts
 */
function match(table, method, parts) {
  // HEAD is GET without the body (Node leaves the body out of a HEAD answer).
  const asked = method === 'HEAD' ? 'GET' : method
  /** @type {string[]} */
  const allowed = []
  for (const route of table) {
    if (route.segments.length !== parts.length) continue
    /** @type {Record<string, string>} */
    const params = {}
    const fits = route.segments.every((s, i) => {
      if (!s.startsWith(':')) return s === parts[i]
      params[s.slice(1)] = parts[i]
      return parts[i] !== ''
    })
    if (!fits) continue
    if (route.method === asked) return { handle: route.handle, inputs: route.inputs, params }
    // A GET path answers HEAD too.
    allowed.push(...(route.method === 'GET' ? ['GET', 'HEAD'] : [route.method]))
  }
  // A path the API has, asked with another method: 405 naming those it takes.
  if (allowed.length > 0) throw new ApiError(405, AdminErrorCode.MethodNotAllowed, `use ${allowed.join(' or ')}`, { allow: allowed })
  return null
}

/**
 * @typedef {ReturnType<typeof adminServerSettings>} AdminSettings
 */

/**
 * What the admin server's API answers from: its store and settings, the sessions, the login
 * throttle and the route table.
 * @typedef {object} AdminApi
 * @property {AdminSettings['store']} store
 * @property {AdminSettings['actor']} actor
 * @property {AdminSettings['maxLifetimeDays']} maxLifetimeDays
 * @property {AdminSettings['bodyLimit']} bodyLimit
 * @property {ReturnType<typeof createSessions>} sessions
 * @property {ReturnType<typeof createLogin>} login
 * @property {Route[]} routes
 */

/**
 * Creates the admin web server on a keygate store. The options are described in server.d.ts
 * (AdminServerOptions).
 * @param {import('./server.js').AdminServerOptions} given
 * @returns {import('./server.js').AdminServer}
 */
function createAdminServer(given) {
  const { options, store, loginSettings, host, port, actor, maxLifetimeDays, bodyLimit, log, secureCookies } = adminServerSettings(given)
  /** @param {string} text */
  const scrub = (text) => scrubMessage(store, text)
  const login = createLogin(loginSettings)
  const sessions = createSessions({ idleMs: options.sessionIdleMs, maxMs: options.sessionMaxMs, secureCookies })
  const sweeper = startSweeper(sessions, login)
  const routes = apiRoutes({ store, admin: { actor } })
  /** @type {AdminApi} */
  const admin = { store, actor, maxLifetimeDays, bodyLimit, sessions, login, routes }
  const staticFile = staticFileReader()
  const server = http.createServer((req, res) => {
    handle(admin, staticFile, req, res, log, scrub).catch((error) => answerFailure(res, error, req, log, scrub))
  })
  logAcceptFailures(server, log, scrub)
  server.headersTimeout = 20_000
  server.requestTimeout = 30_000
  server.keepAliveTimeout = 5_000
  return serverHandle(server, host, port, sweeper, sessions)
}

/**
 * Once listening, Node emits 'error' on the server for a failed accept() (out of file
 * descriptors, EMFILE): unheard, that error would end the host process. Logged instead; the
 * server goes on accepting once descriptors are free. A failure to listen is the caller's:
 * `listen()` rejects with it; `server.listen()` called directly, with no listener of the
 * caller's, throws it as Node would (heard here and dropped, a port in use went unsaid).
 * @param {import('node:http').Server} server
 * @param {(line: string) => void} log
 * @param {(text: string) => string} scrub
 */
function logAcceptFailures(server, log, scrub) {
  server.on('error', (error) => {
    if (!server.listening) {
      if (server.listenerCount('error') === 1) throw error
      return
    }
    // Any value may be emitted: a Symbol in a template string would throw here, out of the listener.
    logSafely(log, scrub(redactSecrets(`keygate admin: the server failed: ${describedMessage(error)}`)))
  })
}

/**
 * Ends the sessions and login throttles that have run out, every minute.
 * @param {ReturnType<typeof createSessions>} sessions
 * @param {ReturnType<typeof createLogin>} login
 */
function startSweeper(sessions, login) {
  const sweeper = setInterval(() => {
    sessions.sweep()
    login.sweep(Date.now())
  }, 60_000)
  sweeper.unref()
  return sweeper
}

/**
 * The API's routes (all but login, session and logout) on `context`'s store.
 * @param {{ store: AdminSettings['store'], admin: { actor: AdminSettings['actor'] } }} context
 */
function apiRoutes(context) {
  return routeTable([...keyRoutes(context), ...userRoutes(context), ...roleRoutes(context), ...auditRoutes(context), ...tryRoutes(context), ...ruleRoutes(context)])
}

/**
 * What the page is told of a session: at login, and when it asks for the session.
 * @param {AdminApi} admin
 * @param {import('./session.js').Session} session
 */
function sessionInfo(admin, session) {
  const { store, actor, maxLifetimeDays, sessions } = admin
  return {
    authenticated: true,
    csrfToken: session.csrf,
    actor,
    now: store.now(),
    maxLifetimeDays,
    keyPrefix: typeof store.keyPrefix === 'string' ? store.keyPrefix : 'kg',
    expiresInSeconds: Math.floor(sessions.msLeft(session) / 1000),
  }
}

/**
 * Refuses a login's other body fields and any query parameter without naming them: an admin
 * who sends the token as a name (`{"<token>": …}`, `?<token>`) would find it in the answer and
 * in whatever logs it, and a token chosen by the admin may be of any shape, so no scrub can tell.
 * @param {Record<string, unknown>} body
 * @param {URLSearchParams} query
 */
function onlyLoginInputs(body, query) {
  try {
    onlyInputs({ body: ['token'] }, body, query)
  } catch (e) {
    if (!(e instanceof ApiError)) throw e
    throw new ApiError(
      400,
      ErrorCode.InvalidArgument,
      'a login takes only the body field token and no query parameter (the other name sent is not repeated: it may be the token)',
    )
  }
}

/**
 * A read is refused while the store is out of contact with its backend (a PostgreSQL store
 * that has lost its database, a replaced SQLite file): it would answer from the last state it
 * loaded, and the page would show that as current, every key active as before, with nothing
 * said. Stricter than checks, which answer from memory for `failClosedAfterMs` first: an
 * operator about to act on what the page shows is told at once.
 * @param {AdminSettings['store']} store
 */
function mustVouch(store) {
  const health = store.health()
  if (health.connected) return
  const seconds = Math.round(health.lagMs / 1000)
  throw new ApiError(
    503,
    ErrorCode.StoreUnavailable,
    `the store cannot vouch that it is current (it has lost contact with its backend; last known current ${seconds} s ago): what it would show may be out of date; checks answer from memory for failClosedAfterMs, then store_unavailable until it is back`,
  )
}

/**
 * The decoded segments of an API path after /api; 400 for one that cannot be decoded.
 * @param {string} pathname
 */
function apiPathParts(pathname) {
  return pathname
    .split('/')
    .slice(2)
    .map((p) => {
      try {
        return decodeURIComponent(p)
      } catch {
        throw new ApiError(400, ErrorCode.InvalidArgument, 'bad path')
      }
    })
}

/**
 * The API, in this order: same-origin JSON changes; login; a session; its CSRF token; the route.
 * @param {AdminApi} admin
 * @param {IncomingMessage} req
 * @param {ServerResponse} res
 * @param {string} pathname
 * @param {URLSearchParams} query
 */
async function api(admin, req, res, pathname, query) {
  const { sessions, bodyLimit } = admin
  const method = req.method
  const parts = apiPathParts(pathname)
  const only = (/** @type {string} */ resource) => parts.length === 1 && parts[0] === resource
  const change = method !== 'GET' && method !== 'HEAD'
  if (change) {
    checkOrigin(req)
    checkJson(req)
  }

  // Login and session need no session.
  if (only('login')) return logIn(admin, req, res, query)
  const session = sessions.sessionOf(req)
  if (only('session')) {
    // Not in the route table (it needs no session): its 405 is given here, as a route's would be.
    if (method !== 'GET' && method !== 'HEAD') throw new ApiError(405, AdminErrorCode.MethodNotAllowed, 'use GET', { allow: ['GET', 'HEAD'] })
    onlyInputs({}, {}, query)
    // Not an error: the page asks this first to choose between the login form and the app.
    return json(res, 200, session ? sessionInfo(admin, session) : { authenticated: false })
  }
  if (!session) throw new ApiError(401, AdminErrorCode.Unauthenticated, 'log in first (or your session expired)')
  if (change) checkCsrf(req, session)
  if (only('logout')) {
    if (method !== 'POST') throw new ApiError(405, AdminErrorCode.MethodNotAllowed, 'use POST', { allow: ['POST'] })
    onlyInputs({}, await readBody(req, bodyLimit), query)
    return json(res, 200, { ok: true }, { 'Set-Cookie': sessions.close(req, session) })
  }

  // Matched before the body is read: an unknown path is a 404 whatever its body.
  const found = match(admin.routes, method, parts)
  if (found === null) throw new ApiError(404, AdminErrorCode.NotFound, `no API ${shownMethod(method)} ${quote(shownPath(pathname))}`)
  const body = change ? await readBody(req, bodyLimit) : {}
  onlyInputs(found.inputs, body, query)
  if (!change) mustVouch(admin.store)
  const [status, value, headers] = await found.handle({ params: found.params, body, query, session, req })
  return json(res, status, value, headers)
}

/**
 * POST /api/login: checks the token (and the throttle) and opens a session.
 * @param {AdminApi} admin
 * @param {IncomingMessage} req
 * @param {ServerResponse} res
 * @param {URLSearchParams} query
 */
async function logIn(admin, req, res, query) {
  if (req.method !== 'POST') throw new ApiError(405, AdminErrorCode.MethodNotAllowed, 'use POST', { allow: ['POST'] })
  const body = await readBody(req, admin.bodyLimit) // a body that is not JSON says nothing about the token: 400 at once
  onlyLoginInputs(body, query)
  const deviceCookie = await admin.login.check(req, field(body, 'token'))
  const opened = admin.sessions.open(req)
  return json(res, 200, sessionInfo(admin, opened.session), { 'Set-Cookie': [opened.cookie, deviceCookie] })
}

/**
 * The page's files by name, each read once (by the server that reads it first).
 * @returns {(name: string) => Buffer}
 */
function staticFileReader() {
  /** @type {Map<string, Buffer>} */
  const staticCache = new Map()
  return (name) => {
    let buf = staticCache.get(name)
    if (buf === undefined) {
      buf = name === CONSTANTS_FILE ? Buffer.from(constantsModule()) : fs.readFileSync(path.join(PUBLIC_DIR, name))
      staticCache.set(name, buf)
    }
    return buf
  }
}

/**
 * Answers a request: the API under /api, else a file of the page.
 * @param {AdminApi} admin
 * @param {(name: string) => Buffer} staticFile
 * @param {IncomingMessage} req
 * @param {ServerResponse} res
 * @param {(line: string) => void} log
 * @param {(text: string) => string} scrub
 */
async function handle(admin, staticFile, req, res, log, scrub) {
  let url
  try {
    const target = req.url || '/'
    // A path is read as a path: resolved against a base, `//x/api/keys` would name the host
    // `x` and route `/api/keys`, a path that rules in front of the page (a proxy's) never saw.
    url = new URL(target.startsWith('/') ? `http://localhost${target}` : target)
  } catch {
    return json(res, 400, { error: { code: ErrorCode.InvalidArgument, message: 'bad URL' } })
  }
  const pathname = url.pathname
  try {
    if (pathname === '/api' || pathname.startsWith('/api/')) {
      await api(admin, req, res, pathname, url.searchParams)
      return
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      throw new ApiError(405, AdminErrorCode.MethodNotAllowed, 'only GET here', { allow: ['GET', 'HEAD'] })
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
    answerFailure(res, error, req, log, scrub)
  }
}

/**
 * What createAdminServer returns: the server, its address once listening, listen and close.
 * @param {import('node:http').Server} server
 * @param {AdminSettings['host']} host
 * @param {AdminSettings['port']} port
 * @param {NodeJS.Timeout} sweeper
 * @param {ReturnType<typeof createSessions>} sessions
 * @returns {import('./server.js').AdminServer}
 */
function serverHandle(server, host, port, sweeper, sessions) {
  /** @type {import('node:net').AddressInfo | null} */
  let address = null
  /** The last listen(), settled either way: close() waits for it, or the server would start listening after close() resolved. */
  let listening = Promise.resolve()
  /**
   * The close under way, while it drains: a second close() waits for it too. The server has
   * stopped listening by then, and resolving at once let a caller close the store while a
   * request was still being answered from it.
   * @type {Promise<void> | null}
   */
  let stopping = null
  /** @returns {Promise<void>} once the server and its connections are closed */
  function stop() {
    if (stopping !== null) return stopping
    if (!server.listening) return Promise.resolve()
    stopping = new Promise((resolve) => {
      // Requests under way (a body still arriving, an answer still being written) are given
      // DRAIN_MS to finish: cut at once, a change sent as the server stopped was lost with no
      // answer. Idle connections close now; any left after DRAIN_MS are cut.
      const cut = setTimeout(() => server.closeAllConnections(), DRAIN_MS)
      server.close(() => {
        clearTimeout(cut)
        stopping = null
        resolve()
      })
      draining = true
      server.closeIdleConnections()
    })
    return stopping
  }
  /** Set once close() has begun: each connection then closes as soon as its answer is written. */
  let draining = false
  server.on('request', (/** @type {import('node:http').IncomingMessage} */ _req, /** @type {import('node:http').ServerResponse} */ res) => {
    // A response made by hand (a test's, a framework's emit) may be no stream at all.
    if (typeof res?.once !== 'function') return
    res.once('finish', () => {
      // After Node has marked the connection idle (its own 'finish' listener runs first).
      if (draining) setImmediate(() => server.closeIdleConnections())
    })
  })
  const handleObj = {
    server,
    get url() {
      if (!address) return null
      const h = address.address
      // A link-local address keeps its zone, its `%` written `%25` in a URL (RFC 6874: `[fe80::1%25eth0]`).
      const shown = h === '0.0.0.0' || h === '::' ? 'localhost' : h.includes(':') ? `[${h.replace('%', '%25')}]` : h
      return `http://${shown}:${address.port}`
    },
    get port() {
      return address ? address.port : null
    },
    listen() {
      const started = new Promise((resolve, reject) => {
        const onError = (/** @type {Error} */ e) => reject(listenProblem(e, host, port))
        server.once('error', onError)
        try {
          server.listen(port, host, () => {
            server.off('error', onError)
            // Listening on a host and port (not a pipe): an AddressInfo.
            address = /** @type {import('node:net').AddressInfo} */ (server.address())
            resolve(handleObj.url)
          })
        } catch (error) {
          // Thrown, not emitted (listening already, or starting to): left on, onError would hear a
          // later failure of server.listen() and swallow it, as no listener of the caller's would.
          server.off('error', onError)
          reject(listenProblem(error, host, port))
        }
      })
      listening = started.then(
        () => undefined,
        () => undefined,
      )
      return started
    },
    close() {
      clearInterval(sweeper)
      sessions.clear()
      // A listen() still looking up its host listens once the lookup is done: closed after that.
      return listening.then(stop)
    },
    /** Number of live sessions (for tests). */
    get sessionCount() {
      return sessions.size
    },
  }
  return handleObj
}

module.exports = {
  createAdminServer,
  validateLines,
  CSP,
  SECURITY_HEADERS,
  COOKIE_NAME,
}
