// keygate as a user gets it: the tarballs of `npm run pack:local` (the main package and this
// platform's binary package) installed into a new, empty project outside the repository, with
// no registry, then used from CommonJS, ESM, TypeScript and the bin. Reuses the binary built by
// `npm run build` (no Rust build here).
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import type { SpawnSyncReturns } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { buildSync } from 'esbuild'

const ROOT = path.resolve(__dirname, '..')
const TSC = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc')
const TYPES = path.join(ROOT, 'node_modules', '@types')
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm'
const ADMIN_TOKEN = 'package-test-admin-token-0123456789'

/** This machine's napi-rs target name, as pack-local.mjs and lib/native.js name it. */
function platformName(): string {
  const { platform, arch } = process
  if (platform === 'win32') return `win32-${arch}-msvc`
  if (platform !== 'linux') return `${platform}-${arch}`
  const report = process.report.getReport() as { header?: { glibcVersionRuntime?: string } }
  return `linux-${arch}-${report.header?.glibcVersionRuntime ? 'gnu' : 'musl'}`
}

const PLATFORM = platformName()
const BINARY = path.join(ROOT, `keygate.${PLATFORM}.node`)
const skip = !existsSync(path.join(ROOT, 'npm', PLATFORM, 'package.json'))
  ? `no npm/${PLATFORM}/ package: this platform is not a target, nothing to pack`
  : !existsSync(BINARY)
    ? `keygate.${PLATFORM}.node is not built (run npm run build): nothing to pack`
    : spawnSync(NPM, ['--version'], { shell: process.platform === 'win32' }).status !== 0
      ? 'npm is not on PATH: cannot pack'
      : false

/** The environment of a user's shell: nothing of this repository's test run leaks in. */
function userEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const name of ['PATH', 'HOME', 'USERPROFILE', 'SYSTEMROOT', 'TMPDIR', 'TEMP', 'TMP', 'LANG']) {
    if (process.env[name] !== undefined) env[name] = process.env[name]
  }
  return { ...env, ...extra }
}

function run(command: string, args: string[], cwd: string, extra: Record<string, string> = {}): SpawnSyncReturns<string> {
  const r = spawnSync(command, args, { cwd, encoding: 'utf8', env: userEnv(extra), shell: process.platform === 'win32' && command === NPM, timeout: 120_000 })
  return r
}

function ok(r: SpawnSyncReturns<string>, what: string): string {
  assert.equal(r.status, 0, `${what} failed (exit ${r.status}):\n${r.stdout}\n${r.stderr}`)
  return r.stdout
}

/** A new, empty project in the system temp dir, with the given tarballs installed offline. */
function project(work: string, name: string, tarballs: string[], npmCache: string): string {
  const dir = path.join(work, name)
  mkdirSync(dir)
  writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name, version: '1.0.0', private: true }))
  // --offline with an empty cache: keygate itself and its runtime needs come from the tarballs
  // alone; the other platforms' optional packages cannot be fetched and are skipped.
  ok(run(NPM, ['install', '--offline', '--cache', npmCache, '--no-audit', '--no-fund', '--loglevel=error', ...tarballs], dir), `npm install in ${name}`)
  return dir
}

test('a crate linked into the binary must be licensed permissively: copyleft refused, a permissive choice or conjunction taken', async () => {
  const script = pathToFileURL(path.join(ROOT, 'scripts', 'third-party-licenses.mjs')).href
  const { permissive } = (await import(script)) as { permissive: (expression: string) => boolean }
  for (const allowed of [
    'MIT',
    'MIT/Apache-2.0',
    '(MIT OR Apache-2.0) AND Unicode-3.0',
    'Apache-2.0 AND ISC',
    'LGPL-2.1-or-later OR MIT',
    'Apache-2.0 WITH LLVM-exception',
  ]) {
    assert.equal(permissive(allowed), true, allowed)
  }
  for (const refused of ['GPL-3.0-only', 'MIT AND GPL-2.0-or-later', 'MPL-2.0', '(MIT OR GPL-3.0) AND LGPL-3.0', '', 'MIT OR']) {
    assert.equal(permissive(refused), false, refused)
  }
})

describe('the installed package', { skip }, () => {
  let work = ''
  let app = ''
  let tarballs: string[] = []

  before(() => {
    work = realpathSync(mkdtempSync(path.join(tmpdir(), 'keygate-package-')))
    assert.ok(!work.startsWith(ROOT), 'the project lives outside the repository')
    const dist = path.join(work, 'dist')
    ok(run(process.execPath, [path.join(ROOT, 'scripts', 'pack-local.mjs'), '--no-build', '--out', dist], ROOT), 'pack:local --no-build')
    tarballs = readdirSync(dist).map((f) => path.join(dist, f))
    assert.deepEqual(tarballs.map((f) => path.basename(f)).sort(), [`keygate-${PLATFORM}-0.1.0.tgz`, 'keygate-0.1.0.tgz'].sort())
    app = project(work, 'app', tarballs, path.join(work, 'npm-cache'))
  })
  after(() => {
    if (work) rmSync(work, { recursive: true, force: true })
  })

  test('require("keygate"), keygate/http and keygate/admin, all from the project', () => {
    writeFileSync(
      path.join(app, 'check.cjs'),
      `const assert = require('node:assert/strict')
const { KeyStore, KeygateError, ERROR_CODES } = require('keygate')
for (const m of ['keygate', 'keygate/http', 'keygate/admin']) {
  assert.ok(require.resolve(m).startsWith(${JSON.stringify(path.join(app, 'node_modules'))}), m)
}
assert.ok(require.resolve('keygate-${PLATFORM}').startsWith(${JSON.stringify(path.join(app, 'node_modules'))}))
const store = KeyStore.inMemory()
store.putUser({ id: 'svc', rights: ['session:*'] })
const { secret } = store.createKey({ userId: 'svc', description: 'd', expiresAt: new Date(Date.now() + 86400000) })
assert.equal(store.isAllowed(secret, 'session', 'userLogon'), true)
assert.equal(store.isAllowed(secret, 'admin', 'x'), false)
assert.throws(() => store.putUser({ id: '' }), KeygateError)
assert.ok(ERROR_CODES.includes('UNKNOWN_USER'))
const { createGuard, hornbillRoute } = require('keygate/http')
assert.equal(typeof createGuard(store).express, 'function')
assert.equal(typeof hornbillRoute, 'function')
const admin = require('keygate/admin')
for (const f of ['createAdminServer', 'createAdminHandler', 'serve']) assert.equal(typeof admin[f], 'function', f)
console.log('cjs ok')
`,
    )
    assert.equal(ok(run(process.execPath, ['check.cjs'], app), 'check.cjs').trim(), 'cjs ok')
  })

  test('import: named exports and the default export', () => {
    writeFileSync(
      path.join(app, 'check.mjs'),
      `import assert from 'node:assert/strict'
import keygate, { KeyStore, KeygateError } from 'keygate'
import http, { createGuard } from 'keygate/http'
import { createAdminHandler } from 'keygate/admin'
assert.equal(keygate.KeyStore, KeyStore)
assert.equal(keygate.KeygateError, KeygateError)
assert.equal(http.createGuard, createGuard)
const store = KeyStore.inMemory()
store.putUser({ id: 'svc', rights: ['*:*'] })
const { secret } = store.createKey({ userId: 'svc', description: 'd', expiresAt: new Date(Date.now() + 86400000) })
assert.equal(store.isAllowed(secret, 'any', 'thing'), true)
const handler = createAdminHandler({ store, token: '${ADMIN_TOKEN}', prefix: '/admin' })
assert.equal(handler.prefix, '/admin/')
await handler.close()
console.log('esm ok')
`,
    )
    assert.equal(ok(run(process.execPath, ['check.mjs'], app), 'check.mjs').trim(), 'esm ok')
  })

  test('strict TypeScript (nodenext) on the typings: ESM and CommonJS files', () => {
    writeFileSync(
      path.join(app, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          strict: true,
          noEmit: true,
          target: 'es2022',
          module: 'nodenext',
          moduleResolution: 'nodenext',
          skipLibCheck: false,
          exactOptionalPropertyTypes: true,
          noUncheckedIndexedAccess: true,
          // The user's own @types/node, which keygate's typings build on.
          typeRoots: [TYPES],
          types: ['node'],
        },
        files: ['typed.mts', 'typed.cts'],
      }),
    )
    writeFileSync(
      path.join(app, 'typed.mts'),
      `import keygate, { KeyStore, KeygateError } from 'keygate'
import type { ApiKey, IssuedKey, ErrorCode } from 'keygate'
import { createGuard } from 'keygate/http'
import type { Guard, GuardOptions } from 'keygate/http'
import { createAdminHandler, createAdminServer } from 'keygate/admin'
import type { AdminHandler } from 'keygate/admin'
import { createServer } from 'node:http'

const store: KeyStore = keygate.KeyStore.inMemory()
const issued: IssuedKey = store.createKey({ userId: 'svc', description: 'd', expiresAt: new Date() })
const key: ApiKey = issued.key
const allowed: boolean = store.isAllowed(issued.secret, 'session', 'userLogon', '10.0.0.1')
const options: GuardOptions = { trustProxy: ['10.0.0.0/8'] }
const guard: Guard = createGuard(store, options)
const admin: AdminHandler = createAdminHandler({ store, token: 'x'.repeat(16), prefix: '/admin' })
createServer((req, res) => admin(req, res, () => res.end()))
createAdminServer({ store, token: 'x'.repeat(16) })
try {
  store.getKey(key.id)
} catch (e) {
  if (e instanceof KeygateError) {
    const code: ErrorCode = e.code
    console.log(code)
  }
}
console.log(allowed, guard)
// @ts-expect-error isAllowed takes strings
store.isAllowed(1, 'a', 'b')
// exactOptionalPropertyTypes: an option given as undefined is left out (so the calls take it).
declare const env: { prefix?: string; actor?: string; days?: number; since?: Date }
KeyStore.inMemory({ keyPrefix: env.prefix, maxLifetimeDays: env.days, now: env.since }).close()
store.listKeys({ userId: env.actor, state: undefined })
store.audit({ actor: env.actor, since: env.since, limit: env.days })
store.putUser({ id: 'svc', rights: undefined, roles: undefined }, { actor: env.actor, expect: undefined })
store.updateKey(key.id, { description: env.prefix, rules: undefined }, { actor: env.actor, expectedUpdatedAt: env.since })
store.rotateKey(key.id, { overlapSeconds: env.days })
createGuard(store, { realm: env.actor, route: undefined, onError: undefined })
createAdminHandler({ store, token: 'x'.repeat(16), prefix: env.prefix, cookiePath: env.prefix, actor: env.actor })
createAdminServer({ store, token: env.prefix, tokenDigest: env.prefix, host: env.prefix, port: env.days })
`,
    )
    writeFileSync(
      path.join(app, 'typed.cts'),
      `import keygate = require('keygate')
import http = require('keygate/http')
const store: keygate.KeyStore = keygate.KeyStore.open('typed.db')
http.createGuard(store)
`,
    )
    ok(run(process.execPath, [TSC, '-p', 'tsconfig.json'], app), 'tsc')
  })

  test('strict TypeScript with module commonjs (node10 resolution, which reads no exports): keygate, keygate/http and keygate/admin', () => {
    writeFileSync(
      path.join(app, 'tsconfig.node10.json'),
      JSON.stringify({
        compilerOptions: {
          strict: true,
          noEmit: true,
          target: 'es2022',
          module: 'commonjs',
          moduleResolution: 'node10',
          esModuleInterop: true,
          skipLibCheck: false,
          typeRoots: [TYPES],
          types: ['node'],
        },
        files: ['typed-node10.ts'],
      }),
    )
    writeFileSync(
      path.join(app, 'typed-node10.ts'),
      `import { KeyStore } from 'keygate'
import { createGuard } from 'keygate/http'
import type { KeygateAuth } from 'keygate/http'
import { createAdminHandler } from 'keygate/admin'
import type { AdminHandler } from 'keygate/admin'

const store = KeyStore.inMemory()
const auth: KeygateAuth | undefined = undefined
const admin: AdminHandler = createAdminHandler({ store, token: 'x'.repeat(16), prefix: '/admin' })
console.log(createGuard(store), auth, admin.prefix)
// @ts-expect-error createAdminHandler needs a store
createAdminHandler({ token: 'x'.repeat(16) })
`,
    )
    ok(run(process.execPath, [TSC, '-p', 'tsconfig.node10.json'], app), 'tsc')
  })

  test('the bin: --help, init, serve answering / over HTTP', async () => {
    const bin = path.join(app, 'node_modules', '.bin', process.platform === 'win32' ? 'keygate.cmd' : 'keygate')
    const help = ok(run(bin, ['--help'], app), 'keygate --help')
    assert.match(help, /^ {2}serve +/m)
    assert.match(help, /KEYGATE_ADMIN_TOKEN/)

    ok(run(bin, ['init'], app), 'keygate init')
    assert.ok(existsSync(path.join(app, 'keygate.db')), 'init created ./keygate.db')

    const child = spawn(bin, ['serve', '--port', '0'], { cwd: app, env: userEnv({ KEYGATE_ADMIN_TOKEN: ADMIN_TOKEN }) })
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let out = ''
        const timer = setTimeout(() => reject(new Error(`serve printed no URL:\n${out}`)), 20_000)
        child.stdout.on('data', (chunk: Buffer) => {
          out += chunk.toString('utf8')
          const m = /keygate admin: (http:\/\/\S+)/.exec(out)
          if (m) {
            clearTimeout(timer)
            resolve(m[1]!)
          }
        })
        child.on('exit', (code) => reject(new Error(`serve exited (${code}):\n${out}`)))
      })
      const page = await fetch(`${url}/`)
      assert.equal(page.status, 200)
      assert.match(await page.text(), /<title>keygate admin<\/title>/)
      const session = await fetch(`${url}/api/session`)
      assert.deepEqual(await session.json(), { authenticated: false })
    } finally {
      child.kill('SIGTERM')
      await new Promise((resolve) => (child.exitCode !== null ? resolve(null) : child.once('exit', resolve)))
    }
  })

  test("the tarball ships what runs: no docs/screenshots, no sources of the native part, not the admin page's type-check files", () => {
    const files = ok(run('tar', ['-tzf', tarballs.find((f) => path.basename(f) === 'keygate-0.1.0.tgz')!], work), 'tar -t')
      .split('\n')
      .filter(Boolean)
    for (const needed of [
      'package/LICENSE',
      'package/index.js',
      'package/binding.js',
      'package/lib/native.js',
      'package/lib/admin/public/app.js',
      'package/bin/keygate.js',
    ]) {
      assert.ok(files.includes(needed), needed)
    }
    // The references a user reads beside the code ship with it (the contributors' docs and the
    // screenshots do not: npm's page links them to the repository).
    for (const doc of ['package/docs/cli.md', 'package/docs/admin-api.md']) assert.ok(files.includes(doc), doc)
    assert.deepEqual(
      files.filter((f) => /screenshots|\.png$|\.rs$|Cargo|__test__|\.node$|admin\/public\/(.*\.d\.ts|tsconfig\.json)$/.test(f)),
      [],
    )
  })

  test('the installed manifest lists every target package as an optional dependency at its own version', () => {
    const installed = JSON.parse(readFileSync(path.join(app, 'node_modules', 'keygate', 'package.json'), 'utf8'))
    const repo = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8'))
    const expected = Object.fromEntries(
      readdirSync(path.join(ROOT, 'npm')).map((dir) => [JSON.parse(readFileSync(path.join(ROOT, 'npm', dir, 'package.json'), 'utf8')).name, repo.version]),
    )
    assert.equal(Object.keys(expected).length, repo.napi.targets.length)
    assert.deepEqual(installed.optionalDependencies, expected)
    // pack:local restores the repo's manifest (which has none: see scripts/pack-local.mjs).
    assert.equal(repo.optionalDependencies, undefined)
  })

  test("every binary package carries keygate's license text (MIT asks that copies keep it), this platform's in its tarball", () => {
    const license = readFileSync(path.join(ROOT, 'LICENSE'), 'utf8')
    for (const dir of readdirSync(path.join(ROOT, 'npm'))) {
      const own = path.join(ROOT, 'npm', dir, 'LICENSE')
      assert.ok(existsSync(own) && readFileSync(own, 'utf8') === license, `npm/${dir}/LICENSE is the root LICENSE`)
    }
    const files = ok(run('tar', ['-tzf', tarballs.find((f) => path.basename(f) === `keygate-${PLATFORM}-0.1.0.tgz`)!], work), 'tar -t').split('\n')
    assert.ok(files.includes('package/LICENSE'), `keygate-${PLATFORM} ships its LICENSE`)
  })

  test('every binary package carries the license texts of the Rust crates linked into the binary, kept in step with Cargo.lock', () => {
    // MIT, ISC, BSD-3-Clause, Apache-2.0 and CDLA-Permissive-2.0 crates are compiled in: their
    // notices must travel with the binary, not only keygate's own LICENSE.
    const notices = readFileSync(path.join(ROOT, 'THIRD-PARTY-LICENSES'), 'utf8')
    for (const dir of readdirSync(path.join(ROOT, 'npm'))) {
      const manifest = JSON.parse(readFileSync(path.join(ROOT, 'npm', dir, 'package.json'), 'utf8'))
      assert.ok(manifest.files.includes('THIRD-PARTY-LICENSES'), `npm/${dir}/package.json publishes THIRD-PARTY-LICENSES`)
    }
    const installed = path.join(app, 'node_modules', `keygate-${PLATFORM}`, 'THIRD-PARTY-LICENSES')
    assert.ok(existsSync(installed) && readFileSync(installed, 'utf8') === notices, `keygate-${PLATFORM} installs THIRD-PARTY-LICENSES`)
    for (const crate of ['rusqlite', 'ring', 'rustls', 'subtle', 'tokio', 'webpki-roots']) assert.match(notices, new RegExp(`^  ${crate} \\S+: `, 'm'), crate)
    assert.match(notices, /Community Data License Agreement - Permissive - Version 2\.0/)
    // A dependency added or bumped without regenerating the file fails here.
    // (A repository tool, run with this run's environment: cargo as it built the binary.)
    const check = spawnSync(process.execPath, [path.join(ROOT, 'scripts', 'third-party-licenses.mjs'), '--check'], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 })
    ok(check, 'third-party-licenses --check')
  })

  test('the installed manifest has no install-time script: the repo builds in `prepare`, a user installs prebuilt', () => {
    const installed = JSON.parse(readFileSync(path.join(app, 'node_modules', 'keygate', 'package.json'), 'utf8'))
    const repo = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8'))
    const lifecycle = ['preinstall', 'install', 'postinstall', 'prepare', 'preprepare', 'postprepare']
    assert.deepEqual(
      lifecycle.filter((name) => installed.scripts?.[name] !== undefined),
      [],
    )
    assert.equal(typeof repo.scripts.prepare, 'string', 'the repo keeps its prepare (npm install builds the addon)')
  })

  test('a platform with no binary: the error names it, lists the targets, says how to build; no npm install advice', () => {
    // What a user on another CPU sees: the same installed tree, on a machine keygate has no binary for.
    writeFileSync(path.join(work, 'other-cpu.cjs'), "Object.defineProperty(process, 'arch', { value: 'riscv64' })\n")
    const r = run(process.execPath, ['--require', path.join(work, 'other-cpu.cjs'), '-e', "require('keygate')"], app)
    assert.notEqual(r.status, 0)
    const message = r.stderr
    assert.match(message, /no prebuilt native binary for this platform \(linux-riscv64-gnu|no prebuilt native binary for this platform \(\w+-riscv64/)
    assert.match(message, /linux-x64-gnu, linux-arm64-gnu, darwin-x64, darwin-arm64, win32-x64-msvc/)
    assert.match(message, /build it from source/)
    assert.match(message, /npm run build/)
    assert.doesNotMatch(message, /npm i\b|npm install|reinstall/i)

    const bin = run(process.execPath, ['--require', path.join(work, 'other-cpu.cjs'), path.join(app, 'node_modules', 'keygate', 'bin', 'keygate.js'), '--help'], app)
    assert.equal(bin.status, 4)
    assert.match(bin.stderr, /^error: cannot load keygate: keygate has no prebuilt native binary/)
    assert.doesNotMatch(bin.stderr, /npm i\b|npm install|reinstall/i)
  })

  test('the main package alone (binary package left out): the error names the missing package', () => {
    const main = tarballs.filter((f) => path.basename(f) === 'keygate-0.1.0.tgz')
    const bare = project(work, 'bare', main, path.join(work, 'npm-cache-bare'))
    const r = run(process.execPath, ['-e', "require('keygate')"], bare)
    assert.notEqual(r.status, 0)
    assert.match(r.stderr, new RegExp(`could not load its native binary for this platform \\(${PLATFORM}`))
    assert.match(r.stderr, new RegExp(`keygate-${PLATFORM}@0\\.1\\.0`))
    assert.doesNotMatch(r.stderr, /npm i\b|npm install|reinstall/i)
  })

  test('bundled with esbuild: marked external (as the README says) it runs; inlined, the error says it was bundled and how to mark it external', () => {
    const entry = path.join(app, 'bundle-entry.cjs')
    writeFileSync(
      entry,
      `const { KeyStore } = require('keygate')
const store = KeyStore.inMemory()
store.putUser({ id: 'svc', rights: ['session:*'] })
const { secret } = store.createKey({ userId: 'svc', description: 'd', expiresAt: new Date(Date.now() + 86400000) })
console.log(store.isAllowed(secret, 'session', 'userLogon'))
`,
    )
    const bundle = (outfile: string, options: { external?: string[]; loader?: Record<string, 'file' | 'copy'> }) => {
      buildSync({ entryPoints: [entry], bundle: true, platform: 'node', outfile, logLevel: 'silent', ...options })
      return run(process.execPath, [outfile], app)
    }

    const external = bundle(path.join(app, 'dist-external', 'app.js'), { external: ['keygate'] })
    assert.equal(ok(external, 'the bundle with keygate external').trim(), 'true')

    const advice = /keygate cannot be bundled: mark keygate as external in your bundler \(esbuild: --external:keygate/
    // esbuild's file loader puts the addon's file name where the addon belongs (binding.js then
    // fails to set properties on it, or hands it on, as the bundle runs strict or not).
    const fileLoader = bundle(path.join(app, 'dist-file-loader', 'app.js'), { loader: { '.node': 'file' } })
    assert.notEqual(fileLoader.status, 0)
    assert.match(
      fileLoader.stderr,
      /^Error: keygate(?: could not load its native binary \([^)]+\), and its package\.json is not beside its code|'s native binary did not load as a Node\.js addon: its loader got a string in its place)/m,
    )
    assert.match(fileLoader.stderr, advice)
    assert.doesNotMatch(fileLoader.stderr, /^TypeError/m)

    // The binary package left external, the bundle copied where no node_modules holds it (a
    // Docker stage copying dist/ alone), beside the app's own package.json.
    const elsewhere = path.join(work, 'bundle-elsewhere')
    mkdirSync(elsewhere)
    writeFileSync(path.join(elsewhere, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }))
    const missing = bundle(path.join(elsewhere, 'dist', 'app.js'), { external: [`keygate-${PLATFORM}`] })
    assert.notEqual(missing.status, 0)
    assert.match(
      missing.stderr,
      /keygate could not load its native binary \([^)]+\), and its package\.json is not beside its code:\nkeygate was bundled into another file/,
    )
    assert.match(missing.stderr, advice)
    assert.match(missing.stderr, new RegExp(`install keygate and keygate-${PLATFORM} in the node_modules beside the bundle`))
    // Not the advice for a platform without a binary: this one has one.
    assert.doesNotMatch(missing.stderr, /no prebuilt native binary|none listed|npm run build/)
  })

  test('keygate/admin bundled with its addon copied beside the bundle (esbuild copy loader, as ncc does): the error says it was bundled, not ENOENT', () => {
    // The addon loads; the page's files (lib/admin/public/) are not beside the bundle.
    const entry = path.join(app, 'bundle-admin.cjs')
    writeFileSync(entry, "const { createAdminServer } = require('keygate/admin')\nconsole.log(typeof createAdminServer)\n")
    const outfile = path.join(app, 'dist-admin', 'app.js')
    buildSync({ entryPoints: [entry], bundle: true, platform: 'node', outfile, logLevel: 'silent', loader: { '.node': 'copy' } })
    const r = run(process.execPath, [outfile], app)
    assert.notEqual(r.status, 0)
    assert.match(r.stderr, /^Error: keygate\/admin serves its page from the files of .*public, which does not exist: keygate\/admin was bundled into another file/m)
    assert.match(r.stderr, /keygate cannot be bundled: mark keygate as external in your bundler \(esbuild: --external:keygate/)
    assert.match(r.stderr, /code: 'ERR_KEYGATE_BUNDLED'/)
  })

  test('the advice NAPI_RS_NATIVE_LIBRARY_PATH: an absolute path loads; a relative one the loader cannot find is named, with the fix', () => {
    // What a user does after reading the missing-binary error: builds the binary, copies it
    // into the project and points the variable at it, relative to where they stand.
    const main = tarballs.filter((f) => path.basename(f) === 'keygate-0.1.0.tgz')
    const own = project(work, 'own-binary', main, path.join(work, 'npm-cache-own-binary'))
    copyFileSync(BINARY, path.join(own, 'keygate.node'))
    const load = "console.log(require('keygate').KeyStore.inMemory().keyPrefix)"

    const absolute = run(process.execPath, ['-e', load], own, { NAPI_RS_NATIVE_LIBRARY_PATH: path.join(own, 'keygate.node') })
    assert.equal(ok(absolute, 'with an absolute NAPI_RS_NATIVE_LIBRARY_PATH').trim(), 'kg')

    const relative = run(process.execPath, ['-e', load], own, { NAPI_RS_NATIVE_LIBRARY_PATH: './keygate.node' })
    assert.notEqual(relative.status, 0)
    assert.match(relative.stderr, /NAPI_RS_NATIVE_LIBRARY_PATH is set to \.\/keygate\.node, but no binary could be loaded from it/)
    assert.match(relative.stderr, /a relative path is read from keygate's own directory, not the working directory: give the absolute path/)
    assert.match(relative.stderr, /set NAPI_RS_NATIVE_LIBRARY_PATH to that file's absolute path/)
  })
})
