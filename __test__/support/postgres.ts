// PostgreSQL for the tests: the machine's server (a database of its own per suite, dropped
// after), a throwaway cluster for tests that stop or kill a server, and a TCP proxy process
// between a store and its server that a test can pause (half-open), cut and resume.
//
// Nothing here restarts or reconfigures the machine's server. When no server answers and none
// can be started, or when this build of keygate has no PostgreSQL store, `pgSkipReason()`
// says why, and the suites skip with that reason (never a silent pass).
import { after } from 'node:test'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import * as net from 'node:net'
import { randomBytes } from 'node:crypto'
import { spawn, spawnSync } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'

import assert from 'node:assert/strict'
import { KeyStore, KeygateError } from '../../index.js'
import type { ErrorCode, IssuedKey, StoreOptions } from '../../index.js'
import type { StoreProcess } from './child-store.js'

/** The machine's server: 127.0.0.1:5432, trust auth (overridable for other machines). */
export const PG_HOST = process.env.KEYGATE_PG_HOST ?? '127.0.0.1'
export const PG_PORT = Number(process.env.KEYGATE_PG_PORT ?? 5432)
export const PG_USER = process.env.KEYGATE_PG_USER ?? 'postgres'
/** The start of the tests' database names: runs sharing a server can tell theirs apart. */
export const PG_DB_PREFIX = process.env.KEYGATE_PG_DB_PREFIX ?? 'keygate_test'
/** Debian's server binaries (initdb, pg_ctl, postgres). */
export const PG_BIN = process.env.KEYGATE_PG_BIN ?? '/usr/lib/postgresql/15/bin'

/** A postgres:// URL of `database` on host:port. */
export function pgUrl(database: string, port = PG_PORT, host = PG_HOST): string {
  return `postgres://${PG_USER}@${host}:${port}/${database}`
}

// ---- psql -----------------------------------------------------------------------

/** Runs SQL through psql (-X: no ~/.psqlrc; ON_ERROR_STOP); stdout, or throws with stderr. */
export function psql(sql: string, { database = 'postgres', port = PG_PORT, host = PG_HOST, timeoutMs = 20_000 } = {}): string {
  const r = spawnSync('psql', ['-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1', '-h', host, '-p', String(port), '-U', PG_USER, '-d', database, '-c', sql], {
    encoding: 'utf8',
    timeout: timeoutMs,
    env: { ...process.env, PGCONNECT_TIMEOUT: '5' },
  })
  if (r.error) throw new Error(`psql could not run: ${r.error.message}`)
  if (r.status !== 0) throw new Error(`psql failed (${r.status ?? r.signal}) on ${JSON.stringify(sql.slice(0, 200))}: ${r.stderr.trim()}`)
  return r.stdout.trim()
}

/** Why the machine's server cannot be used, or undefined when it answers. */
export function serverSkipReason(port = PG_PORT): string | undefined {
  try {
    psql('SELECT 1', { port, timeoutMs: 10_000 })
    return undefined
  } catch (error) {
    return `no PostgreSQL server answers at ${PG_HOST}:${port} as ${PG_USER} (${(error as Error).message.split('\n')[0]})`
  }
}

// ---- a database per suite ----------------------------------------------------------

export interface TestDatabase {
  name: string
  url: string
  drop(): void
}

const databases = new Set<TestDatabase>()

/**
 * A new, empty database with a random name on the machine's server, dropped after the file's
 * tests; of the server's default encoding, or of `encoding` (with the C locale, which every
 * encoding takes).
 */
export function createDatabase(port = PG_PORT, encoding?: string): TestDatabase {
  const name = `${PG_DB_PREFIX}_${randomBytes(6).toString('hex')}`
  const options = encoding === undefined ? '' : ` ENCODING '${encoding}' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0`
  psql(`CREATE DATABASE ${name}${options}`, { port })
  const db: TestDatabase = {
    name,
    url: pgUrl(name, port),
    drop() {
      if (!databases.delete(db)) return
      // FORCE: a store a test left open (or a child killed mid-connection) must not keep it alive.
      psql(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`, { port })
    },
  }
  databases.add(db)
  return db
}

after(() => {
  for (const db of [...databases]) {
    try {
      db.drop()
    } catch (error) {
      console.error(`could not drop test database ${db.name}: ${(error as Error).message}`)
    }
  }
})

// ---- does this build have a PostgreSQL store? ----------------------------------------

let support: string | undefined | null = null

/**
 * Why the PostgreSQL suites cannot run here, or undefined when they can: no server answers,
 * or this build of keygate cannot open a postgres:// URL. Probed once per process.
 */
export function pgSkipReason(): string | undefined {
  if (support !== null) return support
  support = serverSkipReason()
  if (support !== undefined) return support
  if (typeof (KeyStore.prototype as unknown as { health?: unknown }).health !== 'function') {
    support = "this build of keygate has no PostgreSQL store (KeyStore.open('postgres://…') and store.health() are not there yet)"
    return support
  }
  const db = createDatabase()
  try {
    KeyStore.open(db.url).close()
  } catch (error) {
    // The store exists in this build but cannot open a URL the server accepts: that is a failure
    // for the tests to show, not a reason to skip them.
    console.error(`KeyStore.open(${db.url}) failed: ${(error as Error).message}`)
  } finally {
    db.drop()
  }
  return support
}

/** `{ skip: reason }` for describe/test when the PostgreSQL suites cannot run, else `{}`. */
export function pgOnly(): { skip?: string } {
  const reason = pgSkipReason()
  return reason === undefined ? {} : { skip: `PostgreSQL: ${reason}` }
}

// ---- a free port ------------------------------------------------------------------------

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.unref()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
  })
}

// ---- a throwaway cluster ----------------------------------------------------------------

/** As the `postgres` OS user when running as root (initdb and postgres refuse root), else as ourselves. */
export function asServerUser(command: string, args: string[]): [string, string[]] {
  if (process.getuid?.() === 0) return ['runuser', ['-u', 'postgres', '--', command, ...args]]
  return [command, args]
}

function runServerTool(tool: string, args: string[], timeoutMs = 60_000): string {
  const [command, argv] = asServerUser(path.join(PG_BIN, tool), args)
  const r = spawnSync(command, argv, { encoding: 'utf8', timeout: timeoutMs, cwd: '/' })
  if (r.error) throw new Error(`${tool} could not run: ${r.error.message}`)
  if (r.status !== 0) throw new Error(`${tool} ${args.join(' ')} failed (${r.status ?? r.signal}): ${r.stderr.trim() || r.stdout.trim()}`)
  return r.stdout
}

/** A PostgreSQL cluster of the test's own, in a temp dir, on a free port: it may be stopped, killed and restarted. */
export class Cluster {
  private constructor(
    readonly dir: string,
    readonly port: number,
    private readonly extraOptions: string,
  ) {}

  private get dataDir(): string {
    return path.join(this.dir, 'data')
  }

  /** Makes (initdb, trust auth) and starts a cluster, with `options` for its server (`-c ssl=on …`); removed after the file's tests. */
  static async create(options = ''): Promise<Cluster> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keygate-pg-'))
    const cluster = new Cluster(dir, await freePort(), options)
    clusters.add(cluster)
    if (process.getuid?.() === 0) {
      const ids = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' })
      const gid = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' })
      if (ids.status !== 0) throw new Error('no postgres OS user to run a throwaway cluster as')
      fs.chownSync(dir, Number(ids.stdout.trim()), Number(gid.stdout.trim()))
    }
    runServerTool('initdb', ['-D', cluster.dataDir, '-U', PG_USER, '--auth=trust', '--no-sync', '-E', 'UTF8', '--locale=C.UTF-8'])
    cluster.start()
    return cluster
  }

  /** Starts (or restarts) the server and waits until it accepts connections. */
  start(): void {
    runServerTool('pg_ctl', ['-D', this.dataDir, '-l', path.join(this.dir, 'server.log'), '-w', '-t', '60', '-o', this.serverOptions(), 'start'])
  }

  /** Fast and lean: a test cluster needs no durability across an OS crash, and few connections. */
  private serverOptions(): string {
    return `-p ${this.port} -k ${this.dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=60 -c shared_buffers=16MB ${this.extraOptions}`.trim()
  }

  /** Stops the server: `immediate` is a crash (no checkpoint; every connection dropped at once). */
  stop(mode: 'fast' | 'immediate' = 'fast'): void {
    runServerTool('pg_ctl', ['-D', this.dataDir, '-w', '-t', '60', '-m', mode, 'stop'])
  }

  /** An immediate restart (a crash and a start) in another process, while the test goes on; resolves once the server is back. */
  restartInBackground(): Promise<void> {
    const options = this.serverOptions()
    const [command, argv] = asServerUser(path.join(PG_BIN, 'pg_ctl'), [
      '-D',
      this.dataDir,
      '-l',
      path.join(this.dir, 'server.log'),
      '-w',
      '-t',
      '60',
      '-m',
      'immediate',
      '-o',
      options,
      'restart',
    ])
    return new Promise((resolve, reject) => {
      const child = spawn(command, argv, { stdio: 'ignore', cwd: '/' })
      child.on('error', reject)
      child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`pg_ctl restart failed (${code}): ${this.log().slice(-500)}`))))
    })
  }

  get running(): boolean {
    const [command, argv] = asServerUser(path.join(PG_BIN, 'pg_ctl'), ['-D', this.dataDir, 'status'])
    return spawnSync(command, argv, { cwd: '/' }).status === 0
  }

  psql(sql: string, database = 'postgres'): string {
    return psql(sql, { database, port: this.port })
  }

  /** A new database in this cluster. */
  createDatabase(): TestDatabase {
    const db = createDatabase(this.port)
    // Removed with the cluster (which may be down when the file's tests end).
    databases.delete(db)
    return db
  }

  /** Stops the server (if running) and removes its files. */
  remove(): void {
    if (!clusters.delete(this)) return
    try {
      if (this.running) this.stop('immediate')
    } finally {
      fs.rmSync(this.dir, { recursive: true, force: true })
    }
  }

  /** The server's log, for a failing test's message. */
  log(): string {
    try {
      return fs.readFileSync(path.join(this.dir, 'server.log'), 'utf8')
    } catch {
      return ''
    }
  }
}

const clusters = new Set<Cluster>()

/** Why a throwaway cluster cannot be made here, or undefined when it can. */
export function clusterSkipReason(): string | undefined {
  if (!fs.existsSync(path.join(PG_BIN, 'initdb')) || !fs.existsSync(path.join(PG_BIN, 'pg_ctl'))) {
    return `no initdb/pg_ctl in ${PG_BIN} to start a throwaway PostgreSQL cluster`
  }
  if (process.getuid?.() === 0 && spawnSync('id', ['-u', 'postgres']).status !== 0) return 'running as root and there is no postgres OS user'
  return undefined
}

// ---- a TCP proxy process ------------------------------------------------------------------

/**
 * tcp-proxy.js in a child process (a store's calls block the event loop, so the proxy must not
 * share it): forwards 127.0.0.1:<port> to the server; `pause()` stops forwarding both ways
 * without closing anything (a half-open connection: the peers wait for bytes that do not come),
 * `cut()` resets every connection, `resume()` forwards again (what was held is delivered).
 */
export class TcpProxy {
  private buffer = ''
  private waiters: Array<(line: string) => void> = []

  private constructor(
    private readonly child: ChildProcess,
    readonly port: number,
  ) {
    child.stdout!.setEncoding('utf8')
    child.stdout!.on('data', (chunk: string) => {
      this.buffer += chunk
      for (let nl = this.buffer.indexOf('\n'); nl >= 0; nl = this.buffer.indexOf('\n')) {
        const line = this.buffer.slice(0, nl)
        this.buffer = this.buffer.slice(nl + 1)
        this.waiters.shift()?.(line)
      }
    })
  }

  static async start(targetPort: number, targetHost = PG_HOST): Promise<TcpProxy> {
    const child = spawn(process.execPath, [path.join(__dirname, 'tcp-proxy.js'), targetHost, String(targetPort)], { stdio: ['pipe', 'pipe', 'inherit'] })
    proxies.add(child)
    child.on('exit', () => proxies.delete(child))
    const first = await new Promise<string>((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`the proxy exited (${code})`)))
      child.stdout!.once('data', (chunk: Buffer) => resolve(chunk.toString('utf8').trim()))
    })
    const proxy = new TcpProxy(child, Number(JSON.parse(first).port))
    return proxy
  }

  /** URL of `database` through the proxy. */
  url(database: string): string {
    return pgUrl(database, this.port, '127.0.0.1')
  }

  private command(op: 'pause' | 'resume' | 'cut' | 'count'): Promise<Record<string, unknown>> {
    return new Promise((resolve) => {
      this.waiters.push((line) => resolve(JSON.parse(line)))
      this.child.stdin!.write(`${op}\n`)
    })
  }

  pause(): Promise<unknown> {
    return this.command('pause')
  }

  resume(): Promise<unknown> {
    return this.command('resume')
  }

  cut(): Promise<unknown> {
    return this.command('cut')
  }

  /** Connections open through the proxy now. */
  async connections(): Promise<number> {
    return Number((await this.command('count')).open)
  }

  /** Connections made through the proxy so far (closed ones too). */
  async accepted(): Promise<number> {
    return Number((await this.command('count')).accepted)
  }

  stop(): void {
    this.child.kill('SIGKILL')
  }
}

const proxies = new Set<ChildProcess>()

after(() => {
  for (const child of proxies) child.kill('SIGKILL')
  for (const cluster of [...clusters]) {
    try {
      cluster.remove()
    } catch (error) {
      console.error(`could not remove the throwaway cluster in ${cluster.dir}: ${(error as Error).message}`)
    }
  }
})

// ---- following a store --------------------------------------------------------------------

/**
 * Polls `probe` (every few ms, letting the event loop run) until it returns something other than
 * undefined; throws naming `what` once `deadlineMs` has passed. Never a fixed sleep.
 */
export async function until<T>(what: string, deadlineMs: number, probe: () => T | undefined | Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + deadlineMs
  for (;;) {
    const value = await probe()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`${what}: not within ${deadlineMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

// ---- stores and hosts of a test file ------------------------------------------------------

const pgStores: KeyStore[] = []

/** KeyStore.open on `url`, closed after the file's tests if the test did not. Background reports are the test's to read, not console noise. */
export function openPg(url: string, options: StoreOptions = {}): KeyStore {
  const store = KeyStore.open(url, { onError: () => {}, ...options })
  pgStores.push(store)
  return store
}

/**
 * What `KeyStore.open(url, options)` throws: a KeygateError of `code` whose message, stack and
 * JSON never hold `password` (the URL's). Fails the test if open succeeds (then closes the store).
 */
export function refusedOpen(url: string, code: ErrorCode, password: string, options: StoreOptions): KeygateError {
  let caught: unknown
  try {
    KeyStore.open(url, { onError: () => {}, ...options }).close()
  } catch (error) {
    caught = error
  }
  assert.ok(caught instanceof KeygateError, `opening should fail, got ${String(caught)}`)
  assert.equal(caught.code, code, caught.message)
  for (const text of [caught.message, String(caught.stack), JSON.stringify(caught)]) assert.ok(!text.includes(password), text)
  return caught
}

after(() => {
  for (const store of pgStores) {
    try {
      store.close()
    } catch {
      // closed already, or reported by the test that used it
    }
  }
})

/** A user `svc` with every right and `n` active keys of it, expiring in a day. */
export function seedKeys(store: KeyStore, n: number): IssuedKey[] {
  store.putUser({ id: 'svc', rights: ['*:*'] })
  return Array.from({ length: n }, (_, i) => store.createKey({ userId: 'svc', description: `key ${i}`, expiresAt: new Date(Date.now() + 86_400_000) }))
}

/** Waits until every host reports the state digest `digest` (support/state-digest.js). */
export async function converge(hosts: StoreProcess[], digest: string, what: string, deadlineMs: number): Promise<void> {
  await until(what, deadlineMs, async () => {
    const answers = await Promise.all(hosts.map((h) => h.call('digest')))
    return answers.every((a) => a.ok && a.result.digest === digest) ? true : undefined
  })
}

/** Runs `fn` with `host` stopped (SIGSTOP), and lets it run again (SIGCONT) whatever happens. */
export function whilePaused<T>(host: StoreProcess, fn: () => T): T {
  host.child.kill('SIGSTOP')
  try {
    return fn()
  } finally {
    host.child.kill('SIGCONT')
  }
}
