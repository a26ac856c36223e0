'use strict'
// Loads the native addon through the generated loader (binding.js). When no binary fits this
// machine, the loader's own message blames npm; this one says what is missing and what to do.

const { readFileSync } = require('node:fs')
const path = require('node:path')

const { bundlingAdvice } = require('./bundling.js')
const { platformOfTarget } = require('./targets.js')

const ROOT = path.join(__dirname, '..')

/**
 * The oldest Node.js major version keygate runs on (package.json's `engines`). Older ones load
 * the addon, then fail at the first admin call with a TypeError of a missing built-in
 * (`String.prototype.isWellFormed`, Node 20), far from the cause. Bun and Deno report the
 * version of Node.js they implement.
 */
const OLDEST_NODE = 20

/** An error for a Node.js older than OLDEST_NODE, or null. */
function unsupportedNodeError() {
  const major = Number.parseInt(String(process.versions?.node), 10)
  if (!(major < OLDEST_NODE)) return null
  const message = [
    `keygate needs Node.js ${OLDEST_NODE} or later; this is Node.js ${process.version}.`,
    `Upgrade Node.js (keygate is tested on Node.js 20, 22 and 24).`,
  ].join('\n')
  return Object.assign(new Error(message), { code: 'ERR_KEYGATE_UNSUPPORTED_RUNTIME' })
}

/** The napi-rs name of this machine's target, as in `keygate-<name>` (e.g. linux-x64-gnu). */
function platformName() {
  const { platform, arch } = process
  if (platform === 'win32') return `win32-${arch}-msvc`
  if (platform !== 'linux') return `${platform}-${arch}`
  let glibc = true
  try {
    /** @type {{ header?: { glibcVersionRuntime?: string } } | null} */
    const report = process.report?.getReport ? process.report.getReport() : null
    glibc = Boolean(report?.header?.glibcVersionRuntime)
  } catch {
    /* unknown: assume glibc, the common case */
  }
  return `linux-${arch}-${glibc ? 'gnu' : 'musl'}`
}

/**
 * The package's name, version and the targets it has binary packages for; `bundled` when its
 * package.json is not beside its code: keygate was bundled into another file or moved (what
 * lies there then, if anything, is the app's own package.json, with no napi targets).
 */
function packageInfo() {
  const notFound = { name: 'keygate', version: '?', targets: [], bundled: true }
  try {
    const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8'))
    if (!Array.isArray(pkg.napi?.targets)) return notFound
    return { name: pkg.name, version: pkg.version, targets: pkg.napi.targets.map(platformOfTarget), bundled: false }
  } catch {
    return notFound
  }
}

/**
 * The failures worth showing: a binary that was found but could not be loaded (not "not found").
 * @param {any} error what the loader threw (a caught value), whose `cause` chain lists what it tried
 * @returns {string[]}
 */
function loadFailures(error) {
  const found = []
  const seen = new Set()
  let cause = error?.cause
  while (cause && !seen.has(cause) && found.length < 5) {
    seen.add(cause)
    const notFound = cause.code === 'MODULE_NOT_FOUND' || /^Cannot find module/.test(String(cause.message))
    if (!notFound && typeof cause.message === 'string') {
      found.push(cause.message.split('\n')[0])
    }
    cause = cause.cause
  }
  return found
}

/**
 * Whether the runtime itself refused to load native addons: Node.js run with `--no-addons`, or
 * under its permission model without `--allow-addons` (ERR_DLOPEN_DISABLED), or Deno without
 * `--allow-ffi`. The binary is there then: advice to install or build it would mislead.
 * @param {string[]} failures what loadFailures found
 */
function addonsRefused(failures) {
  return failures.some((message) => /loading addons is disabled|Requires ffi access/.test(message))
}

/** @param {any} error what the loader threw (a caught value) */
function missingBinaryError(error) {
  const here = platformName()
  const { name, version, targets, bundled } = packageInfo()
  const failures = loadFailures(error)
  if (addonsRefused(failures)) {
    const message = [
      `${name} cannot run here: this process may not load native addons, and ${name} is one (${here}, Node.js ${process.version}).`,
      `Node.js refuses them under --no-addons, and under the permission model (--permission, --experimental-permission) without --allow-addons;`,
      `Deno without --allow-ffi. Run it without --no-addons, or grant the permission.`,
      `Loading failed with: ${failures.join(' | ')}`,
    ].join('\n')
    const refused = Object.assign(new Error(message), { code: 'ERR_KEYGATE_UNSUPPORTED_RUNTIME', platform: here })
    refused.cause = error && error.cause !== undefined ? error.cause : error
    return refused
  }
  const lines = []
  if (bundled) {
    lines.push(
      `${name} could not load its native binary (${here}, Node.js ${process.version}), and its package.json is not beside its code:`,
      `${name} was bundled into another file (esbuild, webpack, Rollup, ncc, a single executable) or its files were moved.`,
      ...bundlingAdvice(name, `${name}-${here}`),
    )
  } else if (targets.includes(here)) {
    lines.push(
      `${name} could not load its native binary for this platform (${here}, Node.js ${process.version}).`,
      `It comes in the package ${name}-${here}@${version}, an optional dependency of ${name}:`,
      `make sure it is installed (it is left out by --omit=optional or --no-optional, and by a lockfile written on another platform).`,
    )
  } else {
    lines.push(
      `${name} has no prebuilt native binary for this platform (${here}, Node.js ${process.version}).`,
      `Prebuilt binaries exist for: ${targets.length ? targets.join(', ') : 'none listed'}.`,
    )
  }
  if (failures.length) lines.push(`Loading failed with: ${failures.join(' | ')}`)
  // The loader require()s the variable's value from binding.js: a relative path is not the working directory's.
  const override = process.env.NAPI_RS_NATIVE_LIBRARY_PATH
  if (override) {
    const relative = path.isAbsolute(override) ? '' : ` (a relative path is read from ${name}'s own directory, not the working directory: give the absolute path)`
    lines.push(`NAPI_RS_NATIVE_LIBRARY_PATH is set to ${override}, but no binary could be loaded from it${relative}.`)
  }
  if (!bundled) {
    lines.push(
      `To build it from source (Rust from https://rustup.rs and a C compiler): in ${name}'s source tree run`,
      `\`npm run build\`, which writes ${name}.${here}.node; then set NAPI_RS_NATIVE_LIBRARY_PATH to that file's absolute path,`,
      `or run \`npm run pack:local\` there, which writes installable tarballs of ${name} and ${name}-${here} to dist/.`,
    )
  }
  const wrapped = Object.assign(new Error(lines.join('\n')), { code: 'ERR_KEYGATE_NO_BINARY', platform: here })
  // The loader's own error advises reinstalling (an npm bug workaround); keep only what it tried.
  wrapped.cause = error && error.cause !== undefined ? error.cause : error
  return wrapped
}

/**
 * The generated binding, plus `check` and `checkDav`, which src/hot.rs registers by hand (so
 * binding.d.ts does not declare them): a call's (a WebDAV request's) packed verdict (see the VERDICT_* bits);
 * `bindCheck` and `bindCheckDav` (also by hand) return them bound to one store: no handle argument;
 * `bindReadFloorForBench` and `bindFindFloorForBench`, for the benchmark only, the same crossing
 * deciding nothing (0 once the strings are read; 1 when the secret names a key).
 * @typedef {import('../binding.js').ExternalObject<import('../binding.js').KeyStore>} Handle
 * @typedef {(secret: string, first: string, second: string, ip?: string) => number} BoundCheck
 * @typedef {typeof import('../binding.js') & {
 *   check(store: Handle, secret: string, service: string, api: string, ip?: string): number,
 *   checkDav(store: Handle, secret: string, method: string, path: string, ip?: string): number,
 *   bindCheck(store: Handle): BoundCheck,
 *   bindCheckDav(store: Handle): BoundCheck,
 *   bindReadFloorForBench(store: Handle): BoundCheck,
 *   bindFindFloorForBench(store: Handle): BoundCheck,
 * }} Binding
 * @returns {Binding}
 */
function loadBinding() {
  const unsupported = unsupportedNodeError()
  if (unsupported) throw unsupported
  /** @type {unknown} */
  let binding
  try {
    binding = require('../binding.js')
  } catch (error) {
    throw missingBinaryError(error)
  }
  // A bundler's file or asset loader (esbuild --loader:.node=file, webpack's asset modules) turns
  // the addon's require into its file name: every later use would fail far from the cause.
  if (typeof (/** @type {{ storeOpen?: unknown } | null | undefined} */ (binding)?.storeOpen) !== 'function') {
    const { name } = packageInfo()
    const here = platformName()
    const got = binding === null ? 'null' : typeof binding
    const override = process.env.NAPI_RS_NATIVE_LIBRARY_PATH
    const message = [
      `${name}'s native binary did not load as a Node.js addon: its loader got ${/^[aeiou]/.test(got) ? 'an' : 'a'} ${got} in its place (${here}, Node.js ${process.version}).`,
      override
        ? `NAPI_RS_NATIVE_LIBRARY_PATH is set to ${override}: it must name ${name}.${here}.node (or a bundler has rewritten the addon's require).`
        : `A bundler has rewritten the addon's require (esbuild's file loader, webpack's asset modules).`,
      ...bundlingAdvice(name, `${name}-${here}`),
    ].join('\n')
    throw Object.assign(new Error(message), { code: 'ERR_KEYGATE_NO_BINARY', platform: here })
  }
  return /** @type {Binding} */ (binding)
}

module.exports = loadBinding()
