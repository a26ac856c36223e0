'use strict'
// `keygate serve`: the admin web page on the durable store.
//
// The admin token: KEYGATE_ADMIN_TOKEN (or the `token` option) when set; otherwise one is
// generated at the first start with the OS CSPRNG, printed once, and only its SHA-256 is
// kept, in `<db>.admin-token.sha256` (mode 0600) beside the store. A database store has no
// file to put it beside: the digest goes to the working directory, in
// `keygate-<16 hex digits>.admin-token.sha256`, named from the URL without its password (see
// location.js), so each host running serve keeps its own (KEYGATE_ADMIN_TOKEN gives every host
// the same). Later starts accept the same token and print nothing. To reset it, stop the
// server, delete that file and start again: a new token is printed.

const fs = require('node:fs')
const net = require('node:net')
const path = require('node:path')
const { createHash, randomBytes } = require('node:crypto')

const { KeyStore, checkStoreOptions } = require('../store.js')
const { KeygateError, invalidArgument, typeError } = require('../errors.js')
const { ownFields, unknownOption } = require('../args.js')
const { fileNameOf, isDatabaseUrl, resolveStore, shownStore } = require('../location.js')
const { tokenLengthProblem } = require('./login.js')
const { createAdminServer } = require('./server.js')
const { listenProblem } = require('./listen.js')
const { SERVE_OPTIONS, checkHost, isPort } = require('./options.js')

/**
 * The file beside the store that holds the SHA-256 of the generated admin token.
 * @param {string} db
 */
function tokenFileOf(db) {
  // Beside a store file; for a database, in the working directory, named from its URL.
  return isDatabaseUrl(db) ? path.resolve(`${fileNameOf(db)}.admin-token.sha256`) : `${path.resolve(db)}.admin-token.sha256`
}

/**
 * A problem with the token's digest file (the environment's, not a bug): STORE_IO, as for the
 * store's own files, and marked so the CLI reports it plainly.
 * @param {string} message
 */
function fileProblem(message) {
  return Object.assign(new KeygateError('STORE_IO', message), { environment: true })
}

/**
 * Works out the admin token: given (option/env), kept (digest file) or new (generated now).
 * @param {string} db
 * @param {string} [given] the `token` option
 * @param {NodeJS.ProcessEnv} [env]
 * @returns {{ token?: string, tokenDigest: string, source: 'option' | 'env' | 'file' | 'generated', file: string, save?: () => void }}
 */
function adminToken(db, given, env = process.env) {
  const file = tokenFileOf(db)
  // A token option given empty is refused below, not taken as left out (the page would open on
  // the token kept from an earlier start); an empty KEYGATE_ADMIN_TOKEN is unset, as shells mean it.
  const fromOption = typeof given === 'string'
  const explicit = fromOption ? given : env.KEYGATE_ADMIN_TOKEN
  if (typeof explicit === 'string' && (fromOption || explicit !== '')) {
    const bound = tokenLengthProblem(explicit)
    if (bound !== undefined) {
      if (fromOption) throw typeError(`the admin token must be ${bound} characters (the token option)`)
      throw invalidArgument(`the admin token must be ${bound} characters (KEYGATE_ADMIN_TOKEN)`)
    }
    const digest = createHash('sha256').update(explicit, 'utf8').digest('hex')
    return { token: explicit, tokenDigest: digest, source: fromOption ? 'option' : 'env', file }
  }
  let kept
  try {
    kept = readOwnFile(file).trim()
  } catch (e) {
    if (e.environment) throw e
    if (e.code !== 'ENOENT') throw fileProblem(`cannot read the admin token digest ${file}: ${e.message}`)
  }
  if (kept !== undefined) {
    if (!/^[0-9a-f]{64}$/i.test(kept)) {
      throw fileProblem(`${file} is not a SHA-256 digest; delete it and restart to get a new admin token`)
    }
    return { tokenDigest: kept.toLowerCase(), source: 'file', file }
  }
  const token = `kga_${randomBytes(32).toString('base64url')}`
  const digest = createHash('sha256').update(token, 'utf8').digest('hex')
  return { token, tokenDigest: digest, source: 'generated', file, save: () => saveDigest(file, digest) }
}

/**
 * The text of the digest file, which must be this process's own or root's: whoever could write it
 * chose the admin token (another user who planted one beside a store in a shared directory such as
 * /tmp would log in with a token of their own). Root's is taken (a deploy tool's, a mounted secret's),
 * as root could change this process anyway. Owned by another user, or writable by others, it is refused.
 * @param {string} file
 */
function readOwnFile(file) {
  // Non-blocking: a FIFO planted there would hold the start up forever.
  const fd = fs.openSync(file, fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0))
  try {
    const stat = fs.fstatSync(fd)
    const { uid, mode } = stat
    if (!stat.isFile()) throw fileProblem(`${file} is not a regular file: delete it and restart to get a new admin token`)
    const euid = typeof process.geteuid === 'function' ? process.geteuid() : undefined
    if (euid !== undefined && ((uid !== euid && uid !== 0) || (mode & 0o022) !== 0)) {
      const whose = uid !== euid && uid !== 0 ? `is owned by another user (uid ${uid})` : 'is writable by other users'
      throw fileProblem(`${file} ${whose}: whoever could write it chose the admin token; delete it and restart to get a new admin token`)
    }
    return fs.readFileSync(fd, 'utf8')
  } finally {
    fs.closeSync(fd)
  }
}

/**
 * Keeps the digest of a generated token (only once the server is up, so a token is never lost unseen).
 * @param {string} file
 * @param {string} digest
 */
function saveDigest(file, digest) {
  try {
    // 'wx': never overwrite a digest another process wrote meanwhile.
    fs.writeFileSync(file, `${digest}\n`, { mode: 0o600, flag: 'wx' })
  } catch (e) {
    if (e.code === 'EEXIST') throw fileProblem(`${file} appeared meanwhile (another keygate serve?); start again`)
    throw fileProblem(`cannot write the admin token digest ${file}: ${e.message}`)
  }
  try {
    fs.chmodSync(file, 0o600)
  } catch {
    /* not supported (Windows) */
  }
}

/**
 * Whether the server listens on a loopback address: the address it got, not the host asked for,
 * which may be a name (`127.0.0.1.example.com` resolves wherever its DNS says).
 * @param {string} address as server.address() gives it
 */
function isLoopback(address) {
  const family = net.isIP(address)
  if (family === 4) return address.startsWith('127.')
  return family === 6 && (address === '::1' || /^::ffff:127\./i.test(address))
}

/** How to choose another port, said when the one asked for is in use. */
const PORT_HINT = ' (PORT=… or --port)'

/**
 * Listens on `host`:`port` for a moment and lets go, so that a port in use or a host that is not
 * this machine's is refused before the store is opened (which makes a new store's file).
 * @param {string} host
 * @param {number} port
 */
async function probeListen(host, port) {
  const probe = net.createServer()
  try {
    await new Promise((resolve, reject) => {
      probe.once('error', reject)
      probe.listen({ host, port }, () => resolve(undefined))
    })
  } catch (e) {
    throw listenProblem(e, host, port, PORT_HINT)
  }
  await new Promise((resolve) => probe.close(() => resolve(undefined)))
}

/**
 * Refuses an option of the wrong type (a TypeError, INVALID_ARGUMENT, saying `message`); left out, undefined or null, it is not in the way.
 * @param {unknown} value
 * @param {'string' | 'function' | 'boolean' | 'object'} type
 * @param {string} message
 */
function optionOfType(value, type, message) {
  if (value != null && typeof value !== type) throw typeError(message)
}

/**
 * Opens the durable store at `db` and serves the admin page on it.
 *
 * @param {import('./serve.js').ServeOptions} [given] described in serve.d.ts
 * @returns {Promise<import('./serve.js').Serving>}
 */
async function serve(given = {}) {
  if (given === null || typeof given !== 'object') throw typeError('serve takes an options object')
  // Own fields only: an inherited `host` or `token` (a polluted Object.prototype) must not open the page.
  const options = ownFields(given, typeError)
  const unknown = unknownOption(options, SERVE_OPTIONS, 'serve')
  if (unknown !== undefined) throw typeError(unknown)
  // Checked before the store is opened: a bad option makes no store file. Each option left out,
  // undefined or null takes its default; one of another type is refused, not taken as left out
  // (a token given as a number would leave the page on the token kept from an earlier start,
  // `handleSignals: 0` would make SIGINT exit the process).
  optionOfType(options.db, 'string', 'options.db must be a store file path or a postgres:// URL')
  optionOfType(options.token, 'string', 'options.token must be a string (16 to 1024 characters)')
  optionOfType(options.print, 'function', 'options.print must be a function (line) => void')
  optionOfType(options.handleSignals, 'boolean', 'options.handleSignals must be true or false')
  const storeOptionsMessage = "options.storeOptions must be an object of KeyStore.open's options"
  optionOfType(options.storeOptions, 'object', storeOptionsMessage)
  // Own fields (as KeyStore.open reads them): an inherited maxLifetimeDays must not reach the page
  // either. Listed first: a revoked Proxy is refused here, before Array.isArray would throw.
  const storeOptions = ownFields(options.storeOptions ?? {}, typeError)
  // An array is an object too; KeyStore.open would name its `length` as an unknown option.
  if (Array.isArray(options.storeOptions)) throw typeError(storeOptionsMessage)
  // Named as serve's (`options.storeOptions: no option "bogus"`), and now, not by KeyStore.open later.
  try {
    checkStoreOptions(storeOptions, 'options.storeOptions')
  } catch (error) {
    throw typeError(/** @type {Error} */ (error).message)
  }
  const db = resolveStore(options.db ?? 'keygate.db')
  const host = checkHost(options.host)
  const envPort = process.env.PORT !== undefined && process.env.PORT !== '' ? Number(process.env.PORT) : undefined
  const port = options.port ?? envPort ?? 8080
  if (!isPort(port)) {
    throw typeError(`${options.port == null ? '$PORT' : 'options.port'} must be a whole number from 0 (any free port) to 65535`)
  }
  const print = typeof options.print === 'function' ? options.print : (/** @type {string} */ line) => console.log(line)

  // Before the store is opened too: a token refused (too short, too long) makes no store file,
  // nor does a damaged digest file, a port in use or a host that is not this machine's.
  const t = adminToken(db, options.token)
  await probeListen(host, port)
  const store = KeyStore.open(db, storeOptions)
  /** @type {import('./server.js').AdminServer | undefined} */
  let admin
  /**
   * The close under way or done: called again (a signal, then the caller's own close), close()
   * waits for it, and resolves once the store is closed, not while the server still drains.
   * @type {Promise<void> | undefined}
   */
  let closing
  const signals = options.handleSignals !== false
  const close = () => {
    closing ??= (async () => {
      if (signals) {
        process.off('SIGINT', onSignal)
        process.off('SIGTERM', onSignal)
      }
      if (admin) await admin.close()
      store.close()
    })()
    return closing
  }
  function onSignal() {
    close().then(
      () => process.exit(0),
      (e) => {
        console.error(e)
        process.exit(1)
      },
    )
  }
  try {
    admin = createAdminServer({
      store,
      tokenDigest: t.tokenDigest,
      host,
      port,
      maxLifetimeDays: storeOptions.maxLifetimeDays,
      log: (line) => console.error(line),
    })
    // Refused as the probe would be, should the port be taken meanwhile: with how to choose another.
    const url = await admin.listen().catch((/** @type {any} */ error) => {
      throw error?.portInUse === true ? listenProblem({ code: 'EADDRINUSE' }, host, port, PORT_HINT) : error
    })
    // Before the start message: a supervisor may stop the server as soon as it reads it.
    if (signals) {
      process.on('SIGINT', onSignal)
      process.on('SIGTERM', onSignal)
    }
    if (t.save) t.save()
    print(`keygate admin: ${url}  (store ${shownStore(db)})`)
    if (t.source === 'generated') {
      print('')
      print('  Admin token (shown this once; only its SHA-256 is kept):')
      print(`    ${t.token}`)
      print('')
      print(`  Lost it? Stop the server, delete ${t.file} and start again for a new one,`)
      print('  or set KEYGATE_ADMIN_TOKEN.')
    } else if (t.source === 'file') {
      print(`  Log in with the admin token printed at the first start (reset: delete ${t.file} and restart).`)
    } else {
      print(`  Log in with the admin token from ${t.source === 'env' ? 'KEYGATE_ADMIN_TOKEN' : 'the token option'}.`)
    }
    const listened = /** @type {import('node:net').AddressInfo} */ (admin.server.address())
    if (!isLoopback(listened.address)) {
      print(`  Warning: listening on ${host} over plain HTTP; put it behind HTTPS (a reverse proxy) before using it from another machine.`)
    }
  } catch (e) {
    await close()
    throw e
  }

  // Listening by now: both are set.
  return { url: /** @type {string} */ (admin.url), port: /** @type {number} */ (admin.port), db, tokenFile: tokenFileOf(db), store, close }
}

module.exports = { serve, adminToken, tokenFileOf }
