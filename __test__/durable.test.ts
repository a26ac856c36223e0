// KeyStore.open(path): the embedded durable store — persistence, damaged and odd files,
// crash safety (real child processes killed with SIGKILL), no secrets on disk, several
// processes on one file, the audit trail and its hash chain, lastUsedAt, purge, close().
//
// Child processes run the plain CommonJS scripts in ./fixtures with `node`. Damaged files
// are made with python3's sqlite3 module; cases that need it are skipped without it.
import { after, describe, test } from 'node:test'
import type { TestContext } from 'node:test'
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'

import { KeyStore, KeygateError } from '../index.js'
import type { AuditEntry, Decision, IssuedKey, StoreOptions } from '../index.js'
import { DAY, HOUR, MINUTE, T0, assertNoSecret, at, plainKey, throwsCode } from './helpers.js'

const FIXTURES = path.join(__dirname, 'fixtures')
const NODE = process.execPath

// ---- housekeeping: temp dirs, stores and children are all released ---------

const tempDirs: string[] = []
const openStores: KeyStore[] = []
const children = new Set<ChildProcess>()

after(() => {
  for (const store of openStores) {
    try {
      store.close()
    } catch {
      // already reported by the test that used it
    }
  }
  for (const child of children) child.kill('SIGKILL')
  for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true })
})

function tempDir(): string {
  const dir = fs.mkdtempSync(os.tmpdir() + '/keygate-')
  tempDirs.push(dir)
  return dir
}

/** A path for a new store in a fresh temp dir. */
function storePath(name = 'keys.db'): string {
  return path.join(tempDir(), name)
}

/** KeyStore.open, remembered so that `after` closes it if the test did not. */
function open(file: string, options?: StoreOptions): KeyStore {
  const store = KeyStore.open(file, options)
  openStores.push(store)
  return store
}

const wall = () => performance.timeOrigin + performance.now()
const PAUSE = new Int32Array(new SharedArrayBuffer(4))
/** Blocks this thread (not the store's own threads) for `ms`. */
function sleepSync(ms: number): void {
  Atomics.wait(PAUSE, 0, 0, ms)
}
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

function sha256(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex')
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

/** Asserts that `fn` throws a KeygateError `code` whose message names `file`. */
function throwsStoreError(fn: () => unknown, code: 'STORE_IO' | 'STORE_CORRUPT' | 'STORE_LOCKED', file: string): KeygateError {
  return throwsCode(fn, code, file)
}

// ---- python3's sqlite3: to make foreign, newer and tampered files ------------

const PY_SQL = `
import json, sqlite3, sys
path, statements = sys.argv[1], json.loads(sys.argv[2])
c = sqlite3.connect(path, isolation_level=None)
out = []
c.execute('BEGIN')
for s in statements:
    sql, params = (s[0], s[1]) if isinstance(s, list) else (s, [])
    out.append([list(r) for r in c.execute(sql, params).fetchall()])
c.execute('COMMIT')
out.append([list(r) for r in c.execute('PRAGMA wal_checkpoint(TRUNCATE)').fetchall()])
c.close()
print(json.dumps(out, default=lambda b: b.hex()))
`

const PYTHON = (() => {
  try {
    execFileSync('python3', ['-c', 'import sqlite3'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
})()
const NO_PYTHON = PYTHON ? false : 'python3 with its sqlite3 module is not available'

type Statement = string | [string, unknown[]]

/**
 * Runs statements in one transaction with python3's sqlite3 and checkpoints the WAL into the
 * main file (the last connection to close also removes the WAL). Returns each statement's rows.
 */
function sql(file: string, statements: Statement[] = []): unknown[][][] {
  const out = execFileSync('python3', ['-c', PY_SQL, file, JSON.stringify(statements)], { encoding: 'utf8' })
  return JSON.parse(out) as unknown[][][]
}

// ---- a store in another process, driven over stdin/stdout (fixtures/store-server.js)

interface Reply {
  id?: number
  ready?: boolean
  ok?: boolean
  watching?: boolean
  seen?: boolean
  result?: any
  code?: string
  message?: string
  at: number
  polls?: number
}

function encodeArg(value: unknown): unknown {
  if (value instanceof Date) return { $date: value.getTime() }
  if (Array.isArray(value)) return value.map(encodeArg)
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, encodeArg(v)]))
  }
  return value
}

class StoreProcess {
  private buffer = ''
  private readonly messages: Reply[] = []
  private waiters: Array<() => void> = []
  private nextId = 1
  stderr = ''
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>

  private constructor(readonly child: ChildProcess) {
    children.add(child)
    child.stdout!.setEncoding('utf8')
    child.stderr!.setEncoding('utf8')
    child.stdout!.on('data', (chunk: string) => {
      this.buffer += chunk
      let nl: number
      while ((nl = this.buffer.indexOf('\n')) >= 0) {
        const line = this.buffer.slice(0, nl)
        this.buffer = this.buffer.slice(nl + 1)
        if (line.trim() !== '') this.messages.push(JSON.parse(line) as Reply)
      }
      const waiters = this.waiters
      this.waiters = []
      for (const wake of waiters) wake()
    })
    child.stderr!.on('data', (chunk: string) => {
      this.stderr += chunk
    })
    this.exited = new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        children.delete(child)
        resolve({ code, signal })
        const waiters = this.waiters
        this.waiters = []
        for (const wake of waiters) wake()
      })
    })
  }

  /** Starts a store server on `file`; resolves once the store is open. */
  static async start(file: string, options?: StoreOptions): Promise<StoreProcess> {
    const args = [path.join(FIXTURES, 'store-server.js'), file]
    if (options) args.push(JSON.stringify(encodeArg(options)))
    const p = new StoreProcess(spawn(NODE, args, { stdio: ['pipe', 'pipe', 'pipe'] }))
    const ready = await p.next((m) => m.ready !== undefined, 15_000)
    if (!ready.ready) throw new Error(`the child could not open ${file}: ${ready.code} ${ready.message}`)
    return p
  }

  /** The first message (not yet taken) that matches, taking it. */
  next(match: (m: Reply) => boolean, timeoutMs = 15_000): Promise<Reply> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no reply from the child within ${timeoutMs} ms; stderr: ${this.stderr}`)), timeoutMs)
      const look = () => {
        const i = this.messages.findIndex(match)
        if (i >= 0) {
          clearTimeout(timer)
          resolve(this.messages.splice(i, 1)[0]!)
        } else if (this.child.exitCode !== null || this.child.signalCode !== null) {
          clearTimeout(timer)
          reject(new Error(`the child exited (${this.child.exitCode ?? this.child.signalCode}); stderr: ${this.stderr}`))
        } else {
          this.waiters.push(look)
        }
      }
      look()
    })
  }

  send(op: string, args: unknown[] = [], extra: Record<string, unknown> = {}): number {
    const id = this.nextId++
    this.child.stdin!.write(JSON.stringify({ id, op, args: encodeArg(args), ...extra }) + '\n')
    return id
  }

  reply(id: number): Promise<Reply> {
    return this.next((m) => m.id === id && !m.watching)
  }

  async call(op: string, ...args: unknown[]): Promise<Reply> {
    return this.reply(this.send(op, args))
  }

  /** Asks the child to check `secret` in a tight loop until the answer is `expect`; resolves once it loops. */
  async watch(secret: string, expect: boolean, timeoutMs = 3000): Promise<number> {
    const id = this.send('watch', [secret, 'svc', 'call'], { expect, timeoutMs })
    await this.next((m) => m.id === id && m.watching === true)
    return id
  }

  async kill(): Promise<void> {
    this.child.kill('SIGKILL')
    await this.exited
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return
    this.send('close')
    this.send('exit')
    this.child.stdin!.end()
    await this.exited
  }
}

let sharedProbe: string | undefined

/**
 * open-probe.js in a copy of the package's runtime files that any user can read: the
 * checkout may sit under a directory other users cannot enter (`mktemp -d` makes 0700).
 */
function probeForOtherUsers(): string {
  if (sharedProbe !== undefined) return sharedProbe
  const root = path.join(__dirname, '..')
  const dir = fs.mkdtempSync(os.tmpdir() + '/keygate-probe-')
  fs.chmodSync(dir, 0o755)
  const runtime = ['index.js', 'binding.js', 'package.json', ...fs.readdirSync(root).filter((f) => f.endsWith('.node'))]
  for (const file of runtime) fs.copyFileSync(path.join(root, file), path.join(dir, file))
  fs.cpSync(path.join(root, 'lib'), path.join(dir, 'lib'), { recursive: true })
  fs.mkdirSync(path.join(dir, '__test__', 'fixtures'), { recursive: true })
  sharedProbe = path.join(dir, '__test__', 'fixtures', 'open-probe.js')
  fs.copyFileSync(path.join(FIXTURES, 'open-probe.js'), sharedProbe)
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }))
  return sharedProbe
}

/** Runs fixtures/open-probe.js on `files` (optionally as another user) and returns its report. */
function probeOpen(files: string[], prefix: string[] = []): Array<Record<string, any>> {
  const probe = prefix.length > 0 ? probeForOtherUsers() : path.join(FIXTURES, 'open-probe.js')
  const command = [...prefix, NODE, probe, ...files]
  const r = spawnSync(command[0]!, command.slice(1), { encoding: 'utf8', timeout: 30_000 })
  assert.equal(r.signal, null, `the child crashed with ${r.signal}; stderr: ${r.stderr}`)
  assert.equal(r.status, 0, `the child failed; stderr: ${r.stderr}`)
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Array<Record<string, any>>
}

// ---- snapshots -------------------------------------------------------------


/** Everything observable about a store, without side effects on lastUsedAt. */
function contents(store: KeyStore): unknown {
  const keys = store.listKeys()
  return {
    users: store.listUsers(),
    roles: store.listRoles(),
    keys: keys.map(plainKey),
    byId: keys.map((k) => plainKey(store.getKey(k.id))),
  }
}

// =============================================================================

describe('persistence: everything survives close and reopen', () => {
  test('users, roles, keys (all fields, rules, states, expiry), rotation and deletion; secrets still check', () => {
    const file = storePath()
    const store = open(file, { now: T0 })
    store.putRole({ name: 'reader', rights: ['data:entityBrowseRecords2', 'data:entity*Record'] })
    store.putRole({ name: 'admin', rights: ['admin:*'] })
    store.putRole({ name: 'empty', rights: [] })
    store.putUser({ id: 'alice@example.com', rights: ['session:*', 'apps/com.hornbill.core/*:*'], roles: ['reader', 'admin'] })
    store.putUser({ id: 'bob', status: 'suspended', rights: ['session:*'] })
    store.putUser({ id: 'carol.c', status: 'archived', rights: [], roles: ['empty'] })
    store.putUser({ id: 'dave', rights: ['*:*'] })

    const description = 'Ünïcödé ✓ "quoted" \'single\'\nsecond line\ttab — 🔑'
    const k1 = store.createKey({
      userId: 'alice@example.com',
      description,
      expiresAt: at(T0, 30 * DAY),
      rules: ['  session:*  ', 'data:entity???Record', 'ip=10.0.0.0/8', 'ip=2001:DB8::/32'],
    })
    const k2 = store.createKey({ userId: 'alice@example.com', description: '', expiresAt: at(T0, DAY), state: 'suspended' })
    const k3 = store.createKey({ userId: 'alice@example.com', description: 'to revoke', expiresAt: at(T0, 2 * DAY) })
    store.setState(k3.key.id, 'revoked')
    const k4 = store.createKey({ userId: 'alice@example.com', description: 'to update', expiresAt: at(T0, DAY), rules: ['session:*'] })
    store.setNow(at(T0, MINUTE))
    store.updateKey(k4.key.id, { description: 'updated', rules: [], expiresAt: at(T0, 90 * DAY) })
    const k5 = store.createKey({ userId: 'alice@example.com', description: 'rotate with overlap', expiresAt: at(T0, 10 * DAY) })
    const k5b = store.rotateKey(k5.key.id, { overlapSeconds: 3600 })
    const k6 = store.createKey({ userId: 'alice@example.com', description: 'rotate now', expiresAt: at(T0, 10 * DAY), rules: ['session:get*'] })
    const k6b = store.rotateKey(k6.key.id)
    const k7 = store.createKey({ userId: 'alice@example.com', description: 'to delete', expiresAt: at(T0, DAY) })
    assert.equal(store.deleteKey(k7.key.id), true)
    const k8 = store.createKey({ userId: 'dave', description: 'gone with dave', expiresAt: at(T0, DAY) })
    assert.equal(store.deleteUser('dave'), true)
    assert.equal(store.deleteRole('admin'), true)
    const kb = store.createKey({ userId: 'bob', description: 'of a suspended user', expiresAt: at(T0, DAY) })
    // A use at a known instant: lastUsedAt must persist too.
    store.setNow(at(T0, 2 * MINUTE))
    assert.equal(store.isAllowed(k1.secret, 'session', 'getSessionInfo', '10.1.2.3'), true)
    store.setNow(at(T0, 3 * MINUTE))

    const probes: Array<[string, string, string, string | undefined]> = [
      [k1.secret, 'session', 'getSessionInfo', '10.1.2.3'],
      [k1.secret, 'data', 'entityGetRecord', '2001:db8::1'],
      [k1.secret, 'data', 'entityGetRecord', '192.168.0.1'],
      [k1.secret, 'admin', 'keysafeGetKey', '10.1.2.3'],
      [k2.secret, 'session', 'x', undefined],
      [k3.secret, 'session', 'x', undefined],
      [k4.secret, 'data', 'entityBrowseRecords2', undefined],
      [k4.secret, 'admin', 'x', undefined],
      [k5.secret, 'session', 'x', undefined],
      [k5b.secret, 'session', 'x', undefined],
      [k6.secret, 'session', 'getX', undefined],
      [k6b.secret, 'session', 'getX', undefined],
      [k7.secret, 'session', 'x', undefined],
      [k8.secret, 'session', 'x', undefined],
      [kb.secret, 'session', 'x', undefined],
    ]
    const decide = (s: KeyStore) => probes.map(([secret, service, api, ip]) => s.explain(secret, service, api, ip))

    // Decisions first: explain is a diagnosis and records no use; the allowed isAllowed
    // calls record theirs (lastUsedAt) at the frozen instant.
    const decisionsBefore = decide(store)
    for (const [secret, service, api, ip] of probes) store.isAllowed(secret, service, api, ip)
    const before = contents(store)
    const auditBefore = store.audit({ limit: 1000 })
    store.close()

    const reopened = open(file, { now: at(T0, 3 * MINUTE) })
    assert.deepEqual(contents(reopened), before, 'the store reads back exactly what was written')
    assert.deepEqual(decide(reopened), decisionsBefore, 'every secret decides as before')
    assert.deepEqual(contents(reopened), before)
    assert.deepEqual(reopened.audit({ limit: 1000 }), auditBefore)
    assert.deepEqual(reopened.verifyAudit(), { ok: true, entries: auditBefore.length })

    // Spot checks against the values written, so that a store losing them on both sides still fails.
    const reasons = decide(reopened).map((d: Decision) => d.reason)
    assert.deepEqual(reasons, [
      'allowed',
      'allowed',
      'ip_not_allowed',
      'user_lacks_right', // admin role deleted
      'suspended',
      'revoked',
      'allowed',
      'user_lacks_right',
      'allowed', // in its overlap hour
      'allowed',
      'revoked',
      'allowed',
      'unknown_key',
      'unknown_key',
      'user_inactive',
    ])
    assert.deepEqual(reopened.listRoles(), [
      { name: 'empty', rights: [] },
      { name: 'reader', rights: ['data:entityBrowseRecords2', 'data:entity*Record'] },
    ])
    assert.deepEqual(reopened.listUsers(), [
      { id: 'alice@example.com', status: 'active', rights: ['session:*', 'apps/com.hornbill.core/*:*'], roles: ['reader'] },
      { id: 'bob', status: 'suspended', rights: ['session:*'], roles: [] },
      { id: 'carol.c', status: 'archived', rights: [], roles: ['empty'] },
    ])
    const r1 = reopened.getKey(k1.key.id)!
    assert.equal(r1.description, description)
    assert.equal(r1.userId, 'alice@example.com')
    assert.equal(r1.state, 'active')
    assert.deepEqual(r1.rules, ['  session:*  ', 'data:entity???Record', 'ip=10.0.0.0/8', 'ip=2001:DB8::/32'].map((r) => KeyStore.validateRule(r)))
    assert.equal(r1.expiresAt.getTime(), at(T0, 30 * DAY).getTime())
    assert.equal(r1.createdAt.getTime(), T0.getTime(), 'createdAt is the frozen instant')
    assert.equal(r1.updatedAt.getTime(), T0.getTime())
    assert.equal(r1.lastUsedAt?.getTime(), at(T0, 3 * MINUTE).getTime(), 'lastUsedAt of the last frozen check')
    assert.equal(reopened.getKey(k6b.key.id)!.lastUsedAt?.getTime(), at(T0, 3 * MINUTE).getTime())
    assert.equal(reopened.getKey(k2.key.id)!.lastUsedAt, null, 'a key never allowed has no lastUsedAt')
    assert.equal(r1.hint, k1.secret.slice(-4))
    assert.equal(reopened.getKey(k2.key.id)!.state, 'suspended')
    assert.equal(reopened.getKey(k3.key.id)!.state, 'revoked')
    const r4 = reopened.getKey(k4.key.id)!
    assert.equal(r4.description, 'updated')
    assert.deepEqual(r4.rules, [])
    assert.equal(r4.expiresAt.getTime(), at(T0, 90 * DAY).getTime())
    assert.equal(r4.updatedAt.getTime(), at(T0, MINUTE).getTime())
    const r5 = reopened.getKey(k5.key.id)!
    assert.equal(r5.state, 'active')
    assert.equal(r5.expiresAt.getTime(), at(T0, MINUTE + HOUR).getTime(), 'the overlap expiry persisted')
    assert.equal(reopened.getKey(k5b.key.id)!.expiresAt.getTime(), at(T0, 10 * DAY).getTime())
    assert.equal(reopened.getKey(k6.key.id)!.state, 'revoked')
    assert.deepEqual(reopened.getKey(k6b.key.id)!.rules, ['session:get*'])
    assert.equal(reopened.getKey(k7.key.id), null)
    assert.equal(reopened.getKey(k8.key.id), null)
    assert.equal(reopened.getUser('dave'), null)
    assert.equal(reopened.listKeys().length, 9)
    assert.equal(reopened.listKeys({ userId: 'alice@example.com', state: 'revoked' }).length, 2)

    // The store still works after reopening: the clock moves, old keys expire, new keys are issued.
    reopened.setNow(at(T0, 2 * HOUR))
    assert.equal(reopened.explain(k5.secret, 'session', 'x').reason, 'expired', 'the rotated key expired after its overlap')
    const fresh = reopened.createKey({ userId: 'alice@example.com', description: 'after reopen', expiresAt: at(T0, DAY) })
    assert.equal(reopened.isAllowed(fresh.secret, 'session', 'x'), true)
    reopened.close()
  })

  test('the key prefix is recorded in the store: new keys keep it, a different one is refused', () => {
    const file = storePath()
    const store = open(file, { keyPrefix: 'acme' })
    store.putUser({ id: 'u', rights: ['*:*'] })
    const first = store.createKey({ userId: 'u', description: '', expiresAt: at(new Date(), DAY) })
    assert.match(first.secret, /^acme_/)
    store.close()

    const again = open(file)
    const second = again.createKey({ userId: 'u', description: '', expiresAt: at(new Date(), DAY) })
    assert.match(second.secret, /^acme_/, 'reopened without keyPrefix, the store keeps its own')
    assert.equal(again.isAllowed(first.secret, 's', 'a'), true)
    again.close()
    const error = throwsCode(() => open(file, { keyPrefix: 'kg' }), 'INVALID_ARGUMENT')
    assert.match(error.message, /acme/)
    const same = open(file, { keyPrefix: 'acme' })
    assert.equal(same.listKeys().length, 2)
    same.close()
  })

  test('an empty file is a new, empty store', () => {
    const file = storePath()
    fs.writeFileSync(file, '')
    const store = open(file)
    assert.deepEqual(store.listUsers(), [])
    store.putUser({ id: 'u' })
    store.close()
    const again = open(file)
    assert.deepEqual(again.listUsers(), [{ id: 'u', status: 'active', rights: [], roles: [] }])
    again.close()
  })
})

// =============================================================================

describe('damaged and odd files: a clear KeygateError, never a crash or a changed file', () => {
  /** A closed store with some content, checkpointed so that the main file holds everything. */
  function realStore(keys = 200): string {
    const file = storePath()
    const store = open(file)
    store.putRole({ name: 'r', rights: ['data:*'] })
    store.putUser({ id: 'u', rights: ['*:*'], roles: ['r'] })
    for (let i = 0; i < keys; i++) store.createKey({ userId: 'u', description: 'x'.repeat(300) + i, expiresAt: at(new Date(), DAY) })
    store.close()
    if (PYTHON) sql(file)
    return file
  }

  test('garbage bytes → STORE_CORRUPT, the file unchanged', () => {
    const file = storePath()
    fs.writeFileSync(file, Buffer.concat([Buffer.from('this is not a database\n'), Buffer.alloc(8192, 0xa5)]))
    const hash = sha256(file)
    const error = throwsStoreError(() => open(file), 'STORE_CORRUPT', file)
    assert.ok(error instanceof Error)
    assert.equal(sha256(file), hash)
  })

  test('an SQLite header followed by garbage → STORE_CORRUPT', { skip: NO_PYTHON }, () => {
    const source = realStore(5)
    const file = storePath()
    const bytes = fs.readFileSync(source)
    bytes.fill(0x5a, 100)
    fs.writeFileSync(file, bytes)
    const hash = sha256(file)
    throwsStoreError(() => open(file), 'STORE_CORRUPT', file)
    assert.equal(sha256(file), hash)
  })

  test('a truncated copy of a real store → STORE_CORRUPT or STORE_IO, in a child process that does not crash', { skip: NO_PYTHON }, () => {
    const source = realStore()
    const bytes = fs.readFileSync(source)
    assert.ok(bytes.length > 16 * 4096, `the store should span many pages (${bytes.length} bytes)`)
    const dir = tempDir()
    const cuts = [100, 4096 + 17, Math.floor(bytes.length / 4), Math.floor(bytes.length / 2), Math.floor(bytes.length / 2) + 1234, bytes.length - 4096]
    const files = cuts.map((cut) => {
      const file = path.join(dir, `cut-${cut}.db`)
      fs.writeFileSync(file, bytes.subarray(0, cut))
      return file
    })
    const hashes = files.map(sha256)
    const results = probeOpen(files)
    for (const [i, r] of results.entries()) {
      assert.equal(r.opened, false, `truncated at ${cuts[i]} bytes of ${bytes.length}, the store opened: ${JSON.stringify(r)}`)
      assert.equal(r.keygate, true)
      assert.ok(r.code === 'STORE_CORRUPT' || r.code === 'STORE_IO', `cut at ${cuts[i]}: ${r.code} ${r.message}`)
      assert.ok(String(r.message).includes(files[i]!), `the message names the path: ${r.message}`)
    }
    // And in this process too (a crash here would end the test run).
    throwsStoreError(() => open(files[3]!), 'STORE_CORRUPT', files[3]!)
    assert.deepEqual(files.map(sha256), hashes, 'no truncated file was changed')
  })

  test('an SQLite database of something else → STORE_CORRUPT', { skip: NO_PYTHON }, () => {
    const file = storePath('other.db')
    sql(file, ['CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)', "INSERT INTO customers (name) VALUES ('Ada')"])
    const error = throwsStoreError(() => open(file), 'STORE_CORRUPT', file)
    assert.ok(error instanceof KeygateError)
  })

  test('an SQLite database of something else is left byte for byte as it was (not switched to WAL)', { skip: NO_PYTHON }, () => {
    const file = storePath('other.db')
    sql(file, ['CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)', "INSERT INTO customers (name) VALUES ('Ada')"])
    const before = fs.readFileSync(file)
    throwsStoreError(() => open(file), 'STORE_CORRUPT', file)
    const after = fs.readFileSync(file)
    const changed: number[] = []
    for (let i = 0; i < Math.max(before.length, after.length); i++) if (before[i] !== after[i]) changed.push(i)
    assert.deepEqual(changed, [], `header bytes changed at offsets ${changed.join(', ')} (bytes 18/19 are the WAL flags)`)
    assert.deepEqual(sql(file, ['PRAGMA journal_mode'])[0], [['delete']], "the other program's database keeps its journal mode")
  })

  test('a file from a newer keygate (user_version 99) → STORE_CORRUPT, the file unchanged', { skip: NO_PYTHON }, () => {
    const file = realStore(3)
    sql(file, ['PRAGMA user_version = 99'])
    const hash = sha256(file)
    const error = throwsStoreError(() => open(file), 'STORE_CORRUPT', file)
    assert.match(error.message, /newer/i, 'the message says the file is from a newer keygate')
    assert.equal(sha256(file), hash, 'the newer file was not touched')
    assert.deepEqual(sql(file, ['PRAGMA user_version', 'SELECT count(*) FROM keys']).slice(0, 2), [[[99]], [[3]]])
  })

  test('a directory → STORE_IO naming the path', () => {
    const dir = tempDir()
    throwsStoreError(() => open(dir), 'STORE_IO', dir)
    assert.deepEqual(fs.readdirSync(dir), [], 'nothing was created in the directory')
  })

  test('a path in a missing directory → STORE_IO naming the path, nothing created', () => {
    const dir = tempDir()
    const file = path.join(dir, 'missing', 'keys.db')
    throwsStoreError(() => open(file), 'STORE_IO', file)
    assert.equal(fs.existsSync(path.join(dir, 'missing')), false)
  })

  test('an empty path → INVALID_ARGUMENT', () => {
    throwsCode(() => open(''), 'INVALID_ARGUMENT')
  })

  /** Sidecar files SQLite would leave next to `file` if it had opened it for writing. */
  function sidecars(file: string): string[] {
    return ['-wal', '-shm', '-journal'].filter((s) => fs.existsSync(file + s))
  }

  /** Probes `files` in a child process; each must be refused with STORE_CORRUPT, byte for byte untouched. */
  function assertRefusedUntouched(files: string[], labels: string[]): void {
    const hashes = files.map(sha256)
    for (const [i, file] of files.entries()) assert.deepEqual(sidecars(file), [], `${labels[i]}: set-up left a sidecar`)
    const results = probeOpen(files)
    for (const [i, r] of results.entries()) {
      assert.equal(r.opened, false, `${labels[i]}: the store opened: ${JSON.stringify(r)}`)
      assert.equal(r.keygate, true, labels[i])
      assert.equal(r.code, 'STORE_CORRUPT', `${labels[i]}: ${r.code} ${r.message}`)
      assert.ok(String(r.message).includes(files[i]!), `${labels[i]}: the message names the file: ${r.message}`)
    }
    assert.deepEqual(files.map(sha256), hashes, 'no refused file was changed')
    for (const [i, file] of files.entries()) assert.deepEqual(sidecars(file), [], `${labels[i]}: a -wal/-shm file was created`)
  }

  test('a foreign SQLite file with user_version 1 → STORE_CORRUPT, left byte for byte (not switched to WAL)', { skip: NO_PYTHON }, () => {
    const file = storePath('other.db')
    sql(file, ['CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)', "INSERT INTO customers (name) VALUES ('Ada')", 'PRAGMA user_version = 1'])
    const hash = sha256(file)
    throwsStoreError(() => open(file), 'STORE_CORRUPT', file)
    assert.equal(sha256(file), hash)
    assert.deepEqual(sidecars(file), [])
    assert.deepEqual(sql(file, ['PRAGMA journal_mode'])[0], [['delete']])
  })

  test('rows and schemas it cannot load → STORE_CORRUPT in a child that does not crash; each file untouched', { skip: NO_PYTHON }, () => {
    const source = realStore(3)
    const damages: [string, string[]][] = [
      ['a rule with a space', ["UPDATE keys SET rules = 'a b:c' WHERE rowid = 1"]],
      ['a non-ASCII rule', ["UPDATE keys SET rules = 'éé' WHERE rowid = 1"]],
      ['a non-ASCII right', ["UPDATE roles SET rights = 'Grö:x'"]],
      ['a state keygate does not know', ["UPDATE keys SET state = 'bogus' WHERE rowid = 1"]],
      ['a 3-byte key id', ["UPDATE keys SET id = X'010203' WHERE rowid = 1"]],
      ['invalid UTF-8 in a description', ["UPDATE keys SET description = CAST(X'C328FF' AS TEXT) WHERE rowid = 1"]],
      ['invalid UTF-8 in a user id', ["UPDATE users SET id = CAST(X'FF' AS TEXT)"]],
      ['a number where text belongs', ['UPDATE keys SET state = 7 WHERE rowid = 1']],
      ['a dropped table', ['DROP TABLE roles']],
      ['a dropped column', ['ALTER TABLE keys DROP COLUMN hint']],
    ]
    const dir = tempDir()
    const files = damages.map(([, statements], i) => {
      const file = path.join(dir, `damaged-${i}.db`)
      fs.copyFileSync(source, file)
      sql(file, statements)
      return file
    })
    assertRefusedUntouched(files, damages.map(([label]) => label))
  })

  test('random bytes, and a real store with random byte flips (8 seeds): STORE_CORRUPT and untouched, or opened; never a crash', { skip: NO_PYTHON }, () => {
    const source = realStore(50)
    const bytes = fs.readFileSync(source)
    const dir = tempDir()
    let seed = 0x2545f491
    const random = () => {
      seed ^= seed << 13
      seed ^= seed >>> 17
      seed ^= seed << 5
      return (seed >>> 0) / 2 ** 32
    }
    const noise = path.join(dir, 'noise.db')
    fs.writeFileSync(noise, Buffer.from(Array.from({ length: 64 * 1024 }, () => Math.floor(random() * 256))))
    const flipped = Array.from({ length: 8 }, (_, n) => {
      const copy = Buffer.from(bytes)
      for (let f = 0; f < 16; f++) {
        const at = Math.floor(random() * copy.length)
        copy[at] = copy[at]! ^ (1 + Math.floor(random() * 255))
      }
      const file = path.join(dir, `flipped-${n}.db`)
      fs.writeFileSync(file, copy)
      return file
    })
    const files = [noise, ...flipped]
    const hashes = files.map(sha256)
    const results = probeOpen(files)
    let refused = 0
    for (const [i, r] of results.entries()) {
      if (r.opened) continue // the flips hit bytes no check can tell from data (a description, free space)
      refused++
      assert.equal(r.code, 'STORE_CORRUPT', `${files[i]}: ${r.code} ${r.message}`)
      assert.equal(sha256(files[i]!), hashes[i], `${files[i]}: refused, yet changed`)
      assert.deepEqual(sidecars(files[i]!), [], `${files[i]}: refused, yet a sidecar was created`)
    }
    assert.equal(results[0]!.opened, false, 'random bytes are refused')
    assert.ok(refused >= 3, `only ${refused} of ${files.length} damaged files were refused`)
  })

  describe('without permission (run as user nobody)', () => {
    const runAs = (() => {
      if (process.getuid?.() !== 0) return { prefix: [] as string[], skip: false as const }
      const candidates = [
        ['setpriv', '--reuid=nobody', '--regid=nogroup', '--clear-groups'],
        ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'],
        ['runuser', '-u', 'nobody', '--'],
      ]
      for (const prefix of candidates) {
        const r = spawnSync(prefix[0]!, [...prefix.slice(1), NODE, '-e', 'process.stdout.write(String(process.getuid()))'], { encoding: 'utf8' })
        if (r.status === 0 && r.stdout !== '0') return { prefix, skip: false as const }
      }
      return { prefix: [] as string[], skip: 'cannot run a process as another user (setpriv/runuser)' }
    })()

    /** A dir others may enter (mkdtemp makes 0700). */
    function sharedDir(mode = 0o755): string {
      const dir = tempDir()
      fs.chmodSync(dir, mode)
      return dir
    }

    /** A closed store with one user; with `checkpoint`, its WAL folded into the file and removed. */
    function closedStore(dir: string, checkpoint: boolean): string {
      const file = path.join(dir, 'keys.db')
      const store = open(file)
      store.putUser({ id: 'u' })
      store.close()
      if (checkpoint) sql(file)
      return file
    }

    function hashes(dir: string): Record<string, string> {
      return Object.fromEntries(fs.readdirSync(dir).map((f) => [f, sha256(path.join(dir, f))]))
    }

    function expectIo(result: Record<string, any>, file: string): void {
      assert.equal(result.opened, false, `open should fail with STORE_IO, but it opened: ${JSON.stringify(result)}`)
      assert.equal(result.keygate, true)
      assert.equal(result.code, 'STORE_IO', result.message)
      assert.ok(String(result.message).includes(file), `the message names the path: ${result.message}`)
    }

    test('a new file in a directory the user cannot write → STORE_IO', { skip: runAs.skip }, () => {
      const dir = sharedDir()
      const file = path.join(dir, 'new.db')
      expectIo(probeOpen([file], runAs.prefix)[0]!, file)
      assert.deepEqual(fs.readdirSync(dir), [])
    })

    test('a store file the user cannot read → STORE_IO, unchanged', { skip: runAs.skip || NO_PYTHON }, () => {
      const dir = sharedDir()
      const file = closedStore(dir, true)
      fs.chmodSync(file, 0o600)
      const before = hashes(dir)
      expectIo(probeOpen([file], runAs.prefix)[0]!, file)
      assert.deepEqual(hashes(dir), before)
    })

    test('a read-only store file in a writable directory → STORE_IO, unchanged', { skip: runAs.skip || NO_PYTHON }, () => {
      const dir = sharedDir(0o777)
      const file = closedStore(dir, true)
      fs.chmodSync(file, 0o444)
      const hash = sha256(file)
      expectIo(probeOpen([file], runAs.prefix)[0]!, file)
      assert.equal(sha256(file), hash)
    })

    test('a read-only location (store checkpointed, no WAL file) → STORE_IO, unchanged', { skip: runAs.skip || NO_PYTHON }, () => {
      const dir = sharedDir()
      const file = closedStore(dir, true)
      fs.chmodSync(file, 0o644)
      const before = hashes(dir)
      expectIo(probeOpen([file], runAs.prefix)[0]!, file)
      assert.deepEqual(hashes(dir), before)
    })

    test('a read-only location (store as close() left it, with its -wal/-shm files) → STORE_IO, unchanged', { skip: runAs.skip }, () => {
      const dir = sharedDir()
      const file = closedStore(dir, false)
      for (const f of fs.readdirSync(dir)) fs.chmodSync(path.join(dir, f), 0o644)
      const before = hashes(dir)
      const result = probeOpen([file], runAs.prefix)[0]!
      expectIo(result, file)
      assert.deepEqual(hashes(dir), before)
    })
  })

  test('another process holding the write lock too long → STORE_LOCKED for admin calls and open; nothing changed', { skip: NO_PYTHON, timeout: 30_000 }, async () => {
    const file = storePath()
    const store = open(file)
    store.putUser({ id: 'u', rights: ['*:*'] })
    const { secret } = store.createKey({ userId: 'u', description: '', expiresAt: at(new Date(), DAY) })
    const auditBefore = store.audit().length

    const locker = spawn(
      'python3',
      [
        '-c',
        `import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute('BEGIN IMMEDIATE')
print('locked', flush=True)
time.sleep(float(sys.argv[2]))
c.execute('ROLLBACK')
c.close()`,
        file,
        '6',
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    )
    children.add(locker)
    const lockerDone = new Promise<number | null>((resolve) => locker.on('exit', (code) => resolve(code)))
    await new Promise<void>((resolve) => locker.stdout!.once('data', () => resolve()))

    // Another process opening the store meanwhile (asynchronously, while this one waits too).
    const opener = spawn(NODE, [path.join(FIXTURES, 'open-probe.js'), file], { stdio: ['ignore', 'pipe', 'pipe'] })
    children.add(opener)
    let openerOut = ''
    opener.stdout!.on('data', (c) => (openerOut += c))
    const openerDone = new Promise<number | null>((resolve) => opener.on('exit', (code) => resolve(code)))

    assert.equal(store.isAllowed(secret, 's', 'a'), true, 'checks go on while another process holds the lock')
    const started = Date.now()
    throwsStoreError(() => store.putUser({ id: 'late' }), 'STORE_LOCKED', file)
    const waited = Date.now() - started
    assert.ok(waited >= 1000 && waited < 7000, `gave up after ${waited} ms`)
    assert.equal(store.getUser('late'), null, 'the failed call changed nothing')
    assert.equal(store.audit().length, auditBefore)
    assert.equal(store.isAllowed(secret, 's', 'a'), true)

    assert.equal(await openerDone, 0)
    const [opened] = JSON.parse(openerOut) as Array<Record<string, any>>
    assert.equal(opened!.opened, false, `open during the lock: ${JSON.stringify(opened)}`)
    assert.equal(opened!.code, 'STORE_LOCKED', opened!.message)
    assert.ok(String(opened!.message).includes(file))

    assert.equal(await lockerDone, 0)
    store.putUser({ id: 'late' })
    assert.ok(store.getUser('late'))
    assert.equal(store.verifyAudit().ok, true)
    store.close()
  })
})

// =============================================================================

describe('crash safety: SIGKILL at any instant loses no acknowledged change', () => {
  interface UserModel {
    status: string
    rights: string[]
    roles: string[]
  }
  interface KeyModel {
    userId: string
    description: string
    state: string
    rules: string[]
  }
  interface Model {
    users: Map<string, UserModel>
    roles: Map<string, string[]>
    keys: Map<string, KeyModel>
    secrets: Map<string, string>
    audit: number
  }
  type Line = Record<string, any>

  const emptyModel = (): Model => ({ users: new Map(), roles: new Map(), keys: new Map(), secrets: new Map(), audit: 0 })
  const cloneModel = (m: Model): Model => ({
    users: new Map([...m.users].map(([k, v]) => [k, { ...v, rights: [...v.rights], roles: [...v.roles] }])),
    roles: new Map([...m.roles].map(([k, v]) => [k, [...v]])),
    keys: new Map([...m.keys].map(([k, v]) => [k, { ...v, rules: [...v.rules] }])),
    secrets: new Map(m.secrets),
    audit: m.audit,
  })

  function applyOp(m: Model, op: Line, ack: Line): void {
    switch (op.op) {
      case 'putUser':
        m.users.set(op.id, { status: op.status, rights: op.rights, roles: op.roles })
        m.audit += 1
        break
      case 'putRole':
        m.roles.set(op.name, op.rights)
        m.audit += 1
        break
      case 'deleteRole':
        m.roles.delete(op.name)
        for (const u of m.users.values()) u.roles = u.roles.filter((r) => r !== op.name)
        m.audit += 1
        break
      case 'deleteUser':
        m.users.delete(op.id)
        // One entry for the user, one for each key deleted with it.
        m.audit += 1
        for (const [id, k] of m.keys) {
          if (k.userId === op.id) {
            m.keys.delete(id)
            m.audit += 1
          }
        }
        break
      case 'createKey':
        m.keys.set(ack.id, { userId: op.userId, description: op.description, state: 'active', rules: op.rules })
        if (ack.secret) m.secrets.set(ack.id, ack.secret)
        m.audit += 1
        break
      case 'updateKey': {
        const k = m.keys.get(op.id)!
        k.description = op.description
        k.rules = op.rules
        m.audit += 1
        break
      }
      case 'setState':
        m.keys.get(op.id)!.state = op.state
        m.audit += 1
        break
      case 'rotateKey': {
        const old = m.keys.get(op.id)!
        m.keys.set(ack.newId, { ...old, rules: [...old.rules] })
        old.state = 'revoked'
        if (ack.secret) m.secrets.set(ack.newId, ack.secret)
        m.audit += 2
        break
      }
      case 'deleteKey':
        m.keys.delete(op.id)
        m.audit += 1
        break
      default:
        throw new Error(`unknown op ${op.op}`)
    }
  }

  function observe(store: KeyStore) {
    const report = store.verifyAudit()
    return {
      users: store.listUsers().map((u) => [u.id, { status: u.status, rights: u.rights, roles: u.roles }] as const),
      roles: store.listRoles().map((r) => [r.name, r.rights] as const),
      keys: store
        .listKeys()
        .map((k) => [k.id, { userId: k.userId, description: k.description, state: k.state, rules: k.rules }] as const)
        .sort((a, b) => (a[0] < b[0] ? -1 : 1)),
      audit: report.ok ? report.entries : `broken: ${JSON.stringify(report)}`,
    }
  }

  function expected(m: Model) {
    return {
      users: [...m.users].sort((a, b) => (a[0] < b[0] ? -1 : 1)),
      roles: [...m.roles].sort((a, b) => (a[0] < b[0] ? -1 : 1)),
      keys: [...m.keys].sort((a, b) => (a[0] < b[0] ? -1 : 1)),
      audit: m.audit,
    }
  }

  function matches(actual: unknown, m: Model): boolean {
    try {
      assert.deepStrictEqual(actual, expected(m))
      return true
    } catch {
      return false
    }
  }

  test('15 rounds of a writer killed mid-stream; after each, the store holds every acknowledged change and no half of one', { timeout: 60_000 }, async (t: TestContext) => {
    const file = storePath()
    let model = emptyModel()
    const rounds = 15
    let acks = 0
    let inflightApplied = 0
    let inflightLost = 0
    let killedBeforeReady = 0

    for (let round = 0; round < rounds; round++) {
      const child = spawn(NODE, [path.join(FIXTURES, 'crash-writer.js'), file, String(round)], { stdio: ['ignore', 'pipe', 'pipe'] })
      children.add(child)
      let out = ''
      let err = ''
      let ready = false
      let onReady: () => void = () => {}
      const readyPromise = new Promise<void>((resolve) => (onReady = resolve))
      child.stdout!.setEncoding('utf8')
      child.stdout!.on('data', (chunk: string) => {
        out += chunk
        if (!ready && out.includes('"t":"ready"')) {
          ready = true
          onReady()
        }
      })
      child.stderr!.on('data', (chunk) => (err += chunk))
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
        child.on('exit', (code, signal) => {
          children.delete(child)
          resolve({ code, signal })
        }),
      )
      if (round < 3) {
        // Early rounds: kill while the child starts up and opens (or creates) the store.
        await sleep(30 + Math.random() * 170)
      } else {
        await Promise.race([readyPromise, exited])
        await sleep(20 + Math.random() * 280)
      }
      child.kill('SIGKILL')
      const { code, signal } = await exited
      assert.equal(signal, 'SIGKILL', `round ${round}: the writer ended by itself (code ${code}): ${err}`)
      if (!ready) killedBeforeReady++

      // Only complete lines count; an ack printed is an acknowledged change.
      const lines: Line[] = out
        .split('\n')
        .slice(0, -1)
        .map((l) => JSON.parse(l) as Line)
      let pending: Line | null = null
      for (const line of lines) {
        if (line.t === 'begin') {
          if (pending !== null) assert.fail(`two calls at once: ${JSON.stringify(pending)} and ${JSON.stringify(line)}`)
          pending = line
        } else if (line.t === 'ack') {
          const begun = pending as Line | null
          if (begun === null || begun.n !== line.n) assert.fail(`an ack without its call: ${JSON.stringify(line)}`)
          applyOp(model, begun, line)
          pending = null
          acks++
        }
      }

      if (!fs.existsSync(file)) continue // killed before the file was even created
      const store = open(file)
      try {
        const actual = observe(store)
        if (!matches(actual, model)) {
          // The call in flight when the kill came may have committed (its ack line never printed).
          let withInflight: Model | null = null
          if (pending !== null) {
            withInflight = cloneModel(model)
            const known = new Set(model.keys.keys())
            const extra = actual.keys.map(([id]) => id).filter((id) => !known.has(id))
            applyOp(withInflight, pending, pending.op === 'createKey' ? { id: extra[0] } : pending.op === 'rotateKey' ? { newId: extra[0] } : {})
          }
          if (withInflight !== null && matches(actual, withInflight)) {
            model = withInflight
            inflightApplied++
          } else {
            assert.deepStrictEqual(
              actual,
              expected(model),
              `round ${round}: the store differs from every acknowledged change (call in flight: ${JSON.stringify(pending)})`,
            )
          }
        } else if (pending !== null) {
          inflightLost++
        }
        // No half-applied state: every key's user exists, every rotation pair is whole, the trail is intact.
        const users = new Set(store.listUsers().map((u) => u.id))
        for (const key of store.listKeys()) assert.ok(users.has(key.userId), `key ${key.id} of missing user ${key.userId}`)
        assert.equal(store.verifyAudit().ok, true, `round ${round}: ${JSON.stringify(store.verifyAudit())}`)
      } finally {
        store.close()
      }
    }

    // Every secret ever acknowledged still decides as its key's state says.
    const store = open(file)
    let checked = 0
    for (const [id, secret] of model.secrets) {
      const key = model.keys.get(id)
      const decision = store.explain(secret, 'svc', 'ping')
      const want = key === undefined ? 'unknown_key' : key.state === 'active' ? 'allowed' : key.state
      assert.equal(decision.reason, want, `secret of ${id}`)
      checked++
    }
    // Rotation pairs: every rotateKey entry in the trail names a revoked old key and an existing or deleted new one.
    const rotations = store.audit({ limit: 100_000 }).filter((e) => e.action === 'rotateKey')
    assert.equal(rotations.length % 2, 0, 'rotateKey entries come in pairs (new key, old key)')
    store.close()

    t.diagnostic(
      `${rounds} rounds, ${acks} acknowledged calls, ${killedBeforeReady} killed before the store was open, ` +
        `in-flight call committed in ${inflightApplied} rounds and not in ${inflightLost}; ${checked} secrets checked`,
    )
    assert.ok(acks >= 100, `the writers should have made many calls (${acks})`)
  })
})

// =============================================================================

describe('no secret on disk', () => {
  const WINDOW = 16

  /** Every 16-character piece of every secret's body (the random part and its checksum). */
  function pieces(secrets: string[]): Map<string, string> {
    const out = new Map<string, string>()
    for (const secret of secrets) {
      const body = secret.slice(secret.indexOf('_') + 1)
      for (let i = 0; i + WINDOW <= body.length; i++) out.set(body.slice(i, i + WINDOW), secret)
    }
    return out
  }

  /** Fails if any 16-character piece of a secret body appears in a file (as ASCII/UTF-8 or UTF-16). */
  function scan(files: string[], secrets: string[]): void {
    const wanted = pieces(secrets)
    for (const file of files.filter((f) => fs.existsSync(f))) {
      const blob = fs.readFileSync(file)
      const texts = [blob.toString('latin1'), blob.toString('utf16le'), blob.subarray(1).toString('utf16le')]
      for (const text of texts) {
        for (const run of text.matchAll(/[0-9A-Za-z]{16,}/g)) {
          for (let i = 0; i + WINDOW <= run[0].length; i++) {
            const hit = wanted.get(run[0].slice(i, i + WINDOW))
            assert.equal(hit, undefined, `${path.basename(file)} holds part of a secret (hint ${hit?.slice(-4)})`)
          }
        }
      }
    }
  }

  test('the database, its WAL and shm hold no secret or secret body — while open and after close', () => {
    const file = storePath()
    const store = open(file)
    store.putUser({ id: 'u', rights: ['*:*'] })
    const secrets: string[] = []
    const issued: IssuedKey[] = []
    for (let i = 0; i < 150; i++) {
      const k = store.createKey({ userId: 'u', description: `marker-${i}-visible`, expiresAt: at(new Date(), DAY), rules: ['svc:*'] })
      secrets.push(k.secret)
      issued.push(k)
    }
    for (let i = 0; i < 40; i++) {
      const r = store.rotateKey(issued[i]!.key.id, { overlapSeconds: i % 2 ? 60 : 0 })
      secrets.push(r.secret)
    }
    for (let i = 40; i < 60; i++) store.updateKey(issued[i]!.key.id, { description: `updated-${i}` })
    for (const s of secrets) store.isAllowed(s, 'svc', 'call')

    // The scanner finds a secret where there is one (plain or UTF-16, even cut short), else it proves nothing.
    const control = path.join(tempDir(), 'control.bin')
    const body = secrets[7]!.slice(3)
    fs.writeFileSync(control, Buffer.concat([Buffer.alloc(100, 1), Buffer.from(body.slice(5, 25)), Buffer.alloc(100, 2)]))
    assert.throws(() => scan([control], secrets), /holds part of a secret/)
    fs.writeFileSync(control, Buffer.concat([Buffer.alloc(101, 1), Buffer.from(secrets[9]!, 'utf16le')]))
    assert.throws(() => scan([control], secrets), /holds part of a secret/)

    const files = [file, `${file}-wal`, `${file}-shm`]
    assert.ok(fs.existsSync(`${file}-wal`), 'the store runs in WAL mode')
    const all = Buffer.concat(files.filter((f) => fs.existsSync(f)).map((f) => fs.readFileSync(f)))
    assert.notEqual(all.indexOf('marker-77-visible'), -1, 'the scan sees what the store wrote (sanity)')
    scan(files, secrets)

    // Nor in what the API hands out.
    const visible = { audit: store.audit({ limit: 10_000 }), keys: store.listKeys(), users: store.listUsers(), verify: store.verifyAudit() }
    for (const s of secrets) assertNoSecret(visible, s)

    store.close()
    const dir = path.dirname(file)
    scan(fs.readdirSync(dir).map((f) => path.join(dir, f)), secrets)
    if (PYTHON) {
      sql(file)
      scan([file], secrets)
    }
  })
})

// =============================================================================

describe('several processes on one file', () => {
  test('hot path does no I/O: thousands of checks make no read or write system call on the calling thread', (t: TestContext) => {
    const ioFile = `/proc/self/task/${process.pid}/io`
    if (!fs.existsSync(ioFile)) return t.skip('no per-thread I/O accounting here')
    const file = storePath()
    const store = open(file)
    store.putUser({ id: 'u', rights: ['svc:*'] })
    const secrets = Array.from({ length: 300 }, () => store.createKey({ userId: 'u', description: '', expiresAt: at(new Date(), DAY) }).secret)
    const io = () =>
      Object.fromEntries(
        fs
          .readFileSync(ioFile, 'utf8')
          .trim()
          .split('\n')
          .map((l) => l.split(': '))
          .map(([k, v]) => [k!, Number(v)] as [string, number]),
      ) as Record<string, number>
    const a = io()
    const b = io() // what reading the counters itself costs
    let allowed = 0
    for (let round = 0; round < 20; round++) {
      for (const s of secrets) {
        if (store.isAllowed(s, 'svc', `api${round}`)) allowed++
        if (store.explain(s, 'svc', 'other').allowed) allowed++
        store.isAllowed(s, 'nope', 'x')
      }
    }
    const c = io()
    assert.equal(allowed, 2 * 20 * secrets.length)
    const own = (k: string) => b[k]! - a[k]!
    const used = (k: string) => c[k]! - b[k]!
    t.diagnostic(`${3 * 20 * secrets.length} checks: syscr +${used('syscr') - own('syscr')}, syscw +${used('syscw')}`)
    assert.ok(used('syscr') <= own('syscr'), `checks made read calls: ${JSON.stringify({ own: own('syscr'), used: used('syscr') })}`)
    assert.equal(used('syscw'), 0, 'checks made write calls')
    store.close()
  })

  test('a change by one process is seen by the next check of every other within 100 ms', { timeout: 60_000 }, async (t: TestContext) => {
    const file = storePath()
    const store = open(file)
    const DAYLATER = at(new Date(), DAY)
    store.putRole({ name: 'reader', rights: ['svc:*'] })
    store.putRole({ name: 'reader2', rights: ['svc:*'] })
    store.putRole({ name: 'reader3', rights: ['svc:*'] })
    for (const id of ['int', 'susp', 'rights', 'deluser', 'susp2', 'sleepy']) store.putUser({ id, rights: ['svc:*'] })
    store.putUser({ id: 'viaRole', roles: ['reader'] })
    store.putUser({ id: 'viaRole2', roles: ['reader2'] })
    store.putUser({ id: 'viaRole3', roles: ['reader3'] })
    const key = (userId: string) => store.createKey({ userId, description: `for ${userId}`, expiresAt: DAYLATER })
    const k = {
      revoke: key('int'),
      suspend: key('int'),
      rules: key('int'),
      del: key('int'),
      rotate: key('int'),
      susp: key('susp'),
      rights: key('rights'),
      role: key('viaRole'),
      role2: key('viaRole2'),
      delUser: key('deluser'),
      revokeBack: key('int'),
      suspBack: key('susp2'),
      roleBack: key('viaRole3'),
      sleepy: key('sleepy'),
    }

    const writer = await StoreProcess.start(file)
    const reader = await StoreProcess.start(file)
    const latencies: Record<string, number[]> = {}
    const record = (kind: string, who: string, ms: number) => {
      ;(latencies[kind] ??= []).push(ms)
      t.diagnostic(`${kind}: seen by ${who} after ${ms.toFixed(1)} ms`)
    }
    const failures: string[] = []
    const check = (secret: string) => store.isAllowed(secret, 'svc', 'call')
    /** Polls this process's checks until `expect`; the instant seen, or null. */
    const pollHere = (secret: string, expect: boolean, timeoutMs = 3000): number | null => {
      const deadline = wall() + timeoutMs
      for (;;) {
        if (check(secret) === expect) return wall()
        if (wall() > deadline) return null
        sleepSync(0.2)
      }
    }

    /** The writer child changes; this process and the reader child watch. */
    async function byChild(kind: string, secret: string, expect: boolean, op: string, ...args: unknown[]) {
      for (let i = 0; i < 3; i++) assert.equal(check(secret), !expect, `${kind}: warm-up`)
      const watchId = await reader.watch(secret, expect)
      const id = writer.send(op, args)
      const seenHere = pollHere(secret, expect)
      const done = await writer.reply(id)
      assert.equal(done.ok, true, `${kind}: ${done.code} ${done.message}`)
      const seenThere = await reader.reply(watchId)
      for (const [who, seen] of [
        ['the test process', seenHere],
        ['the reader process', seenThere.seen ? seenThere.at : null],
      ] as const) {
        if (seen === null) failures.push(`${kind}: never seen by ${who}`)
        else {
          const ms = Math.max(0, seen - done.at)
          record(kind, who, ms)
          if (ms > 100) failures.push(`${kind}: seen by ${who} after ${ms.toFixed(1)} ms`)
        }
      }
    }

    /** This process changes; both children watch. */
    async function byParent(kind: string, secret: string, expect: boolean, change: () => void) {
      const ids = [await writer.watch(secret, expect), await reader.watch(secret, expect)]
      change()
      const doneAt = wall()
      assert.equal(check(secret), expect, `${kind}: the changing process's own next check`)
      for (const [who, p] of [
        ['the writer process', writer],
        ['the reader process', reader],
      ] as const) {
        const seen = await p.reply(ids[p === writer ? 0 : 1]!)
        if (!seen.seen) failures.push(`${kind}: never seen by ${who}`)
        else {
          const ms = Math.max(0, seen.at - doneAt)
          record(kind, who, ms)
          if (ms > 100) failures.push(`${kind}: seen by ${who} after ${ms.toFixed(1)} ms`)
        }
      }
    }

    try {
      await byChild('revoke', k.revoke.secret, false, 'setState', k.revoke.key.id, 'revoked')
      await byChild('suspend', k.suspend.secret, false, 'setState', k.suspend.key.id, 'suspended')
      await byChild('reactivate', k.suspend.secret, true, 'setState', k.suspend.key.id, 'active')
      await byChild('rule change', k.rules.secret, false, 'updateKey', k.rules.key.id, { rules: ['other:*'] })
      await byChild('user suspension', k.susp.secret, false, 'putUser', { id: 'susp', status: 'suspended', rights: ['svc:*'] })
      await byChild('user rights change', k.rights.secret, false, 'putUser', { id: 'rights', rights: ['other:*'] })
      await byChild('role change', k.role.secret, false, 'putRole', { name: 'reader', rights: ['other:*'] })
      await byChild('role deletion', k.role2.secret, false, 'deleteRole', 'reader2')
      await byChild('key deletion', k.del.secret, false, 'deleteKey', k.del.key.id)
      await byChild('user deletion', k.delUser.secret, false, 'deleteUser', 'deluser')
      await byChild('rotation (old key)', k.rotate.secret, false, 'rotateKey', k.rotate.key.id)

      // A key created by another process works here within 100 ms of its creation.
      {
        const done = await writer.call('createKey', { userId: 'int', description: 'made elsewhere', expiresAt: DAYLATER })
        assert.equal(done.ok, true, done.message)
        const secret = done.result.secret as string
        const seen = pollHere(secret, true)
        if (seen === null) failures.push('new key: never seen by the test process')
        else {
          record('new key', 'the test process', Math.max(0, seen - done.at))
          if (seen - done.at > 100) failures.push(`new key: seen after ${(seen - done.at).toFixed(1)} ms`)
        }
      }

      await byParent('revoke (reverse)', k.revokeBack.secret, false, () => store.setState(k.revokeBack.key.id, 'revoked'))
      await byParent('user suspension (reverse)', k.suspBack.secret, false, () => store.putUser({ id: 'susp2', status: 'suspended', rights: ['svc:*'] }))
      await byParent('role change (reverse)', k.roleBack.secret, false, () => store.putRole({ name: 'reader3', rights: [] }))

      // Detected in the background: with this thread blocked (no check at all), the change still arrives.
      {
        for (let i = 0; i < 3; i++) assert.equal(check(k.sleepy.secret), true)
        const done = await writer.call('setState', k.sleepy.key.id, 'revoked')
        assert.equal(done.ok, true)
        sleepSync(Math.max(0, done.at + 100 - wall()))
        const first = check(k.sleepy.secret)
        if (first !== false) failures.push('background: the first check 100 ms after a revoke in another process still allowed the key')
      }

      // Every process converges on the same users, roles and keys — the same as a fresh open reads.
      await sleep(150)
      type Listed = { id: string; userId: string; description: string; state: string; rules: string[] }
      const view = (users: unknown, roles: unknown, keys: Listed[]) => ({
        users,
        roles,
        keys: keys.map((key) => ({ id: key.id, userId: key.userId, description: key.description, state: key.state, rules: key.rules })),
      })
      const mine = view(store.listUsers(), store.listRoles(), store.listKeys())
      const fresh = open(file)
      assert.deepEqual(view(fresh.listUsers(), fresh.listRoles(), fresh.listKeys()), mine, 'the long-running process matches a fresh open')
      fresh.close()
      for (const p of [writer, reader]) {
        const users = (await p.call('listUsers')).result
        const roles = (await p.call('listRoles')).result
        const keys = (await p.call('listKeys')).result as Listed[]
        assert.deepEqual(view(users, roles, keys), mine, 'every process holds the same state')
      }
    } finally {
      await writer.stop()
      await reader.stop()
      store.close()
    }

    const all = Object.values(latencies).flat()
    const perKind = Object.entries(latencies)
      .map(([kind, ms]) => `${kind} ${ms.map((v) => v.toFixed(1)).join('/')}`)
      .join('; ')
    t.diagnostic(`propagation: median ${median(all).toFixed(1)} ms, max ${Math.max(...all).toFixed(1)} ms over ${all.length} observations`)
    t.diagnostic(`per kind (ms): ${perKind}`)
    console.log(`[durable] propagation latencies: median ${median(all).toFixed(1)} ms, max ${Math.max(...all).toFixed(1)} ms; ${perKind}`)
    assert.deepEqual(failures, [], 'every change is seen by every other process within 100 ms')
  })

  test('three concurrent writer processes lose no update', { timeout: 60_000 }, async (t: TestContext) => {
    const N = 50
    const names = ['alpha', 'beta', 'gamma']
    const fields = ['description', 'rules', 'expiresAt']
    const file = storePath()
    const store = open(file)
    store.putUser({ id: 'shared', rights: ['svc:*'] })
    const shared = store.createKey({ userId: 'shared', description: 'shared', expiresAt: at(new Date(), DAY), rules: ['svc:*'] })

    const startAt = Date.now() + 800
    const runs = names.map((name, i) => {
      const child = spawn(NODE, [path.join(FIXTURES, 'concurrent-writer.js'), file, name, String(N), String(startAt), shared.key.id, fields[i]!], {
        stdio: ['ignore', 'pipe', 'pipe'],
      })
      children.add(child)
      let out = ''
      let err = ''
      child.stdout!.on('data', (c) => (out += c))
      child.stderr!.on('data', (c) => (err += c))
      return new Promise<{ name: string; lines: Array<Record<string, any>>; code: number | null; err: string }>((resolve) =>
        child.on('exit', (code) => {
          children.delete(child)
          resolve({ name, code, err, lines: out.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, any>) })
        }),
      )
    })
    // Meanwhile this process reads the trail again and again: always a whole, intact chain.
    let writing = true
    let verified = 0
    const all = Promise.all(runs).finally(() => (writing = false))
    while (writing) {
      const report = store.verifyAudit()
      assert.equal(report.ok, true, `verifyAudit during concurrent writes: ${JSON.stringify(report)}`)
      verified++
      await sleep(15)
    }
    const results = await all
    const finishedAt = wall()
    for (const r of results) {
      assert.equal(r.code, 0, `${r.name}: ${JSON.stringify(r.lines.find((l) => l.t === 'error'))} ${r.err}`)
      assert.equal(r.lines.at(-1)!.t, 'done')
    }

    // The process that had the store open all along catches up.
    const expectedKeys = 3 * N + 1
    let caughtUpAfter = -1
    for (const deadline = wall() + 2000; wall() < deadline; ) {
      if (store.listKeys().length === expectedKeys) {
        caughtUpAfter = wall() - finishedAt
        break
      }
      await sleep(5)
    }
    assert.ok(caughtUpAfter >= 0, `the first process holds ${store.listKeys().length} keys, not ${expectedKeys}`)

    const fresh = open(file)
    for (const view of [store, fresh]) {
      const keys = view.listKeys()
      assert.equal(keys.length, expectedKeys)
      const byId = new Map(keys.map((k) => [k.id, k]))
      for (const r of results) {
        for (const line of r.lines.filter((l) => l.t === 'key')) {
          assert.equal(byId.get(line.id)?.description, line.description, `${r.name}'s key ${line.id}`)
          assert.equal(view.isAllowed(line.secret, 'svc', 'call'), true, `${r.name}'s secret ${line.description}`)
        }
      }
      // The shared key: each writer changed another field; none undid another's change.
      const last = (name: string) => results.find((r) => r.name === name)!.lines.filter((l) => l.t === 'shared').at(-1)!.value
      const sharedKey = view.getKey(shared.key.id)!
      assert.equal(sharedKey.description, last('alpha'), 'description (alpha) survived the others')
      assert.deepEqual(sharedKey.rules, last('beta'), 'rules (beta) survived the others')
      assert.equal(sharedKey.expiresAt.getTime(), last('gamma'), 'expiresAt (gamma) survived the others')
    }

    // The trail holds every acknowledged change, in each writer's order, and is intact.
    const trail = fresh.audit({ limit: 100_000 }).reverse()
    const userEntries = trail.filter((e) => e.action === 'putUser' && e.userId === 'shared')
    assert.equal(userEntries.length, 3 * N + 1)
    for (const r of results) {
      const mine = userEntries.filter((e) => e.actor === r.name).map((e) => (e.changes.rights as unknown[] | undefined)?.[1])
      assert.deepEqual(mine, r.lines.filter((l) => l.t === 'user').map((l) => l.rights), `${r.name}'s putUser calls, in order`)
    }
    assert.deepEqual(fresh.getUser('shared')!.rights, (userEntries.at(-1)!.changes.rights as unknown[])[1], 'the user holds the last write')
    assert.equal(trail.filter((e) => e.action === 'createKey').length, 3 * N + 1)
    assert.equal(trail.filter((e) => e.action === 'updateKey' && e.keyId === shared.key.id).length, 3 * N)
    assert.deepEqual(fresh.verifyAudit(), { ok: true, entries: 2 + 3 * 3 * N })
    assert.deepEqual(trail.map((e) => e.seq), Array.from({ length: trail.length }, (_, i) => i + 1))
    t.diagnostic(`the first process caught up ${caughtUpAfter.toFixed(1)} ms after the last writer exited; ${verified} verifyAudit() calls during the writes`)
    fresh.close()
    store.close()
  })
})

// =============================================================================

describe('a store that cannot vouch it is current fails closed, and says so once', () => {
  /** SHA-256 of a secret as stored (to find its row from outside). */
  const digestHex = (secret: string) => createHash('sha256').update(secret).digest('hex')

  test('a bad row from another writer: store_unavailable in every process until it is repaired; no revocation missed', { skip: NO_PYTHON, timeout: 60_000 }, async () => {
    const file = storePath()
    const reported: KeygateError[] = []
    const store = open(file, { onError: (error) => reported.push(error) })
    store.putUser({ id: 'svc', rights: ['*:*'] })
    const first = store.createKey({ userId: 'svc', description: 'first', expiresAt: at(new Date(), DAY) })
    const second = store.createKey({ userId: 'svc', description: 'second', expiresAt: at(new Date(), DAY) })
    const third = store.createKey({ userId: 'svc', description: 'third', expiresAt: at(new Date(), DAY) })
    const other = await StoreProcess.start(file)
    try {
      for (let i = 0; i < 3; i++) assert.equal(store.isAllowed(first.secret, 'svc', 'call'), true) // remembered
      const reason = async (p: StoreProcess, secret: string) => (await p.call('explain', secret, 'svc', 'call')).result.reason as string

      // Another writer stores a rule no keygate can load, with its change row.
      sql(file, [
        [`UPDATE keys SET rules = 'a b:c' WHERE digest = X'${digestHex(third.secret)}'`, []],
        [`INSERT INTO changes (kind, id, op) VALUES ('key', ?, 'put')`, [third.key.id]],
      ])
      const start = Date.now()
      while (store.explain(first.secret, 'svc', 'call').reason !== 'store_unavailable') {
        assert.ok(Date.now() - start < 5000, 'this process never failed closed')
        await sleep(5)
      }
      assert.equal(store.isAllowed(first.secret, 'svc', 'call'), false, 'the memo does not answer for a store that failed closed')
      assert.equal(store.explain('kg_garbage', 'svc', 'call').reason, 'malformed_key', 'step 1 still comes first')
      while ((await reason(other, first.secret)) !== 'store_unavailable') {
        assert.ok(Date.now() - start < 5000, 'the other process never failed closed')
        await sleep(20)
      }
      throwsStoreError(() => store.setState(second.key.id, 'suspended'), 'STORE_CORRUPT', file)

      // A healthy writer revokes the second key meanwhile: nobody answers from stale state.
      sql(file, [
        [`UPDATE keys SET state = 'revoked' WHERE digest = X'${digestHex(second.secret)}'`, []],
        [`INSERT INTO changes (kind, id, op) VALUES ('key', ?, 'put')`, [second.key.id]],
      ])
      await sleep(1500)
      assert.equal(store.explain(second.secret, 'svc', 'call').reason, 'store_unavailable')
      assert.equal(await reason(other, second.secret), 'store_unavailable')

      // The row is repaired: both processes catch up, revocation included.
      sql(file, [
        [`UPDATE keys SET rules = 'svc:*' WHERE digest = X'${digestHex(third.secret)}'`, []],
        [`INSERT INTO changes (kind, id, op) VALUES ('key', ?, 'put')`, [third.key.id]],
      ])
      while (store.explain(first.secret, 'svc', 'call').reason !== 'allowed') {
        assert.ok(Date.now() - start < 15_000, 'this process never recovered')
        await sleep(5)
      }
      assert.equal(store.isAllowed(second.secret, 'svc', 'call'), false)
      assert.equal(store.explain(second.secret, 'svc', 'call').reason, 'revoked')
      assert.equal(store.isAllowed(third.secret, 'svc', 'call'), true)
      while ((await reason(other, first.secret)) !== 'allowed') {
        assert.ok(Date.now() - start < 15_000, 'the other process never recovered')
        await sleep(20)
      }
      assert.equal(await reason(other, second.secret), 'revoked')

      // Reported once per episode, and once on recovery: here to onError, there to console.error.
      await sleep(100)
      assert.deepEqual(
        reported.map((e) => [e instanceof KeygateError, e.code, (e as any).task, (e as any).recovered]),
        [
          [true, 'STORE_CORRUPT', 'sync', false],
          [true, 'STORE_CORRUPT', 'sync', true],
        ],
      )
      assert.match(reported[0]!.message, /a b:c/)
      const lines = other.stderr.split('\n').filter((l) => l.startsWith('keygate:'))
      assert.equal(lines.length, 2, other.stderr)
      assert.match(lines[0]!, /sync failed: STORE_CORRUPT.*store_unavailable/)
      assert.match(lines[1]!, /sync works again/)
      for (const secret of [first.secret, second.secret, third.secret]) assertNoSecret(other.stderr, secret)
    } finally {
      await other.stop()
    }
  })

  test('onError must be a function', () => {
    throwsCode(() => KeyStore.inMemory({ onError: 'log' as never }), 'INVALID_ARGUMENT', 'onError')
    throwsCode(() => KeyStore.open(storePath(), { onError: 1 as never }), 'INVALID_ARGUMENT', 'onError')
  })

  test('a store with onError does not keep the process alive', () => {
    const file = storePath()
    const script = `const { KeyStore } = require(${JSON.stringify(path.join(__dirname, '..', 'index.js'))})
      const store = KeyStore.open(${JSON.stringify(file)}, { onError: () => {} })
      store.putUser({ id: 'u' })
      KeyStore.inMemory({ onError: () => {} })`
    const r = spawnSync(NODE, ['-e', script], { encoding: 'utf8', timeout: 10_000 })
    assert.equal(r.signal, null, `the process did not exit by itself: ${r.stderr}`)
    assert.equal(r.status, 0, r.stderr)
  })
})

describe('audit trail', () => {
  const A = (minutes: number) => at(T0, minutes * MINUTE)

  /** Builds a store with every kind of change, one minute apart; returns what it made. */
  function scenario(file: string) {
    const store = open(file, { now: A(0) })
    const secrets: string[] = []
    let minute = 0
    const step = () => store.setNow(A(++minute))
    store.putRole({ name: 'reader', rights: ['data:*'] }, { actor: 'alice' }) // 1
    step()
    store.putRole({ name: 'reader', rights: ['data:get*'] }) // 2
    step()
    store.putUser({ id: 'u1', rights: ['session:*'], roles: ['reader'] }, { actor: 'alice' }) // 3
    step()
    store.putUser({ id: 'u1', status: 'suspended', rights: ['session:*'], roles: ['reader'] }, { actor: 'bob' }) // 4
    step()
    store.putUser({ id: 'u1', rights: ['session:*'], roles: ['reader'] }) // 5
    step()
    const k1 = store.createKey({ userId: 'u1', description: 'first', expiresAt: at(T0, DAY), rules: ['session:*'] }, { actor: 'alice' }) // 6
    step()
    const k2 = store.createKey({ userId: 'u1', description: 'second', expiresAt: at(T0, DAY) }) // 7
    step()
    store.updateKey(k1.key.id, { description: 'renamed' }, { actor: 'carol' }) // 8
    step()
    store.updateKey(k1.key.id, { rules: ['session:get*'], expiresAt: at(T0, 2 * DAY) }) // 9
    step()
    store.setState(k2.key.id, 'suspended', { actor: 'carol' }) // 10
    step()
    store.setState(k2.key.id, 'revoked') // 11
    step()
    const k1b = store.rotateKey(k1.key.id, { actor: 'dave' }) // 12, 13
    step()
    store.deleteKey(k2.key.id, { actor: 'erin' }) // 14
    step()
    const k3 = store.createKey({ userId: 'u1', description: 'third', expiresAt: at(T0, DAY) }) // 15
    step()
    store.deleteRole('reader', { actor: 'frank' }) // 16
    step()
    store.putUser({ id: 'u2', rights: ['*:*'] }) // 17
    step()
    const k4 = store.createKey({ userId: 'u2', description: 'of u2', expiresAt: at(T0, DAY) }) // 18
    step()
    store.deleteUser('u2', { actor: 'grace' }) // 19, and 20 for k4 deleted with it
    secrets.push(k1.secret, k2.secret, k1b.secret, k3.secret, k4.secret)
    store.close()
    // Purge: k3 expired at T0+1d; 8 days later it goes. k1/k1b expire at T0+2d: exactly 7 days, they stay.
    const later = open(file, { now: at(T0, 9 * DAY) }) // 21
    return { store: later, secrets, k1, k2, k1b, k3, k4, minutes: minute }
  }

  function only(entries: AuditEntry[], seq: number): AuditEntry {
    const e = entries.find((x) => x.seq === seq)
    assert.ok(e, `entry ${seq} is missing`)
    return e
  }

  function sameInstant(value: unknown, date: Date): void {
    assert.equal(typeof value, 'string')
    assert.equal(new Date(value as string).getTime(), date.getTime(), `${String(value)} is ${date.toISOString()}`)
  }

  test('every kind of change is recorded: time, actor, key/user, what changed; newest first; no secret', () => {
    const file = storePath()
    const { store, secrets, k1, k2, k1b, k3, k4 } = scenario(file)
    const entries = store.audit({ limit: 1000 })
    assert.equal(entries.length, 21)
    assert.deepEqual(entries.map((e) => e.seq), Array.from({ length: 21 }, (_, i) => 21 - i), 'newest first, numbered from 1')
    for (const e of entries) {
      assert.match(e.hash, /^[0-9a-f]{64}$/)
      assert.ok(e.at instanceof Date)
    }
    const pick = (seq: number) => only(entries, seq)
    const shape = (e: AuditEntry) => ({ action: e.action, actor: e.actor, keyId: e.keyId, userId: e.userId, at: e.at.getTime() })

    assert.deepEqual(shape(pick(1)), { action: 'putRole', actor: 'alice', keyId: undefined, userId: undefined, at: A(0).getTime() })
    assert.ok(!('actor' in pick(2)), 'no actor given, none recorded')
    assert.deepEqual(pick(1).changes, { role: 'reader', created: { rights: ['data:*'] } })
    assert.deepEqual(pick(2).changes, { role: 'reader', changes: { rights: [['data:*'], ['data:get*']] } })

    assert.deepEqual(shape(pick(3)), { action: 'putUser', actor: 'alice', keyId: undefined, userId: 'u1', at: A(2).getTime() })
    assert.deepEqual(pick(3).changes, { created: { status: 'active', rights: ['session:*'], roles: ['reader'] } })
    assert.deepEqual(shape(pick(4)), { action: 'putUser', actor: 'bob', keyId: undefined, userId: 'u1', at: A(3).getTime() })
    assert.deepEqual(pick(4).changes, { status: ['active', 'suspended'] })
    assert.deepEqual(pick(5).changes, { status: ['suspended', 'active'] })

    assert.deepEqual(shape(pick(6)), { action: 'createKey', actor: 'alice', keyId: k1.key.id, userId: 'u1', at: A(5).getTime() })
    const created = pick(6).changes.created as Record<string, unknown>
    sameInstant(created.expiresAt, at(T0, DAY))
    assert.deepEqual({ ...created, expiresAt: undefined }, {
      userId: 'u1',
      description: 'first',
      state: 'active',
      expiresAt: undefined,
      rules: ['session:*'],
      hint: k1.key.hint,
    })
    assert.deepEqual(shape(pick(7)), { action: 'createKey', actor: undefined, keyId: k2.key.id, userId: 'u1', at: A(6).getTime() })

    assert.deepEqual(shape(pick(8)), { action: 'updateKey', actor: 'carol', keyId: k1.key.id, userId: 'u1', at: A(7).getTime() })
    assert.deepEqual(pick(8).changes, { description: ['first', 'renamed'] })
    const nine = pick(9).changes
    assert.deepEqual(Object.keys(nine).sort(), ['expiresAt', 'rules'])
    assert.deepEqual(nine.rules, [['session:*'], ['session:get*']])
    sameInstant((nine.expiresAt as unknown[])[0], at(T0, DAY))
    sameInstant((nine.expiresAt as unknown[])[1], at(T0, 2 * DAY))

    assert.deepEqual(shape(pick(10)), { action: 'setState', actor: 'carol', keyId: k2.key.id, userId: 'u1', at: A(9).getTime() })
    assert.deepEqual(pick(10).changes, { state: ['active', 'suspended'] })
    assert.deepEqual(pick(11).changes, { state: ['suspended', 'revoked'] })

    const rotation = [pick(12), pick(13)]
    for (const e of rotation) assert.deepEqual({ action: e.action, actor: e.actor, userId: e.userId, at: e.at.getTime() }, { action: 'rotateKey', actor: 'dave', userId: 'u1', at: A(11).getTime() })
    const ofNew = rotation.find((e) => e.keyId === k1b.key.id)
    const ofOld = rotation.find((e) => e.keyId === k1.key.id)
    assert.ok(ofNew && ofOld, 'the rotation records the new and the old key')
    assert.equal((ofNew.changes.created as Record<string, unknown>).description, 'renamed')
    assert.equal((ofNew.changes.created as Record<string, unknown>).hint, k1b.key.hint)
    assert.deepEqual(ofOld.changes, { state: ['active', 'revoked'] })

    assert.deepEqual(shape(pick(14)), { action: 'deleteKey', actor: 'erin', keyId: k2.key.id, userId: 'u1', at: A(12).getTime() })
    const deleted = pick(14).changes.deleted as Record<string, unknown>
    assert.equal(deleted.description, 'second')
    assert.equal(deleted.state, 'revoked')
    assert.equal(pick(15).keyId, k3.key.id)

    assert.deepEqual(shape(pick(16)), { action: 'deleteRole', actor: 'frank', keyId: undefined, userId: undefined, at: A(14).getTime() })
    assert.deepEqual(pick(16).changes, { role: 'reader', removedFromUsers: ['u1'] })

    assert.equal(pick(17).action, 'putUser')
    assert.equal(pick(18).keyId, k4.key.id)
    assert.deepEqual(shape(pick(19)), { action: 'deleteUser', actor: 'grace', keyId: undefined, userId: 'u2', at: A(17).getTime() })
    assert.deepEqual(pick(19).changes, { deletedKeys: [k4.key.id] })
    assert.deepEqual(shape(pick(20)), { action: 'deleteUser', actor: 'grace', keyId: k4.key.id, userId: 'u2', at: A(17).getTime() })
    assert.equal((pick(20).changes.deleted as Record<string, unknown>).description, 'of u2')

    const purge = pick(21)
    assert.deepEqual(shape(purge), { action: 'purgeExpired', actor: undefined, keyId: k3.key.id, userId: 'u1', at: at(T0, 9 * DAY).getTime() })
    assert.equal((purge.changes.deleted as Record<string, unknown>).description, 'third')
    assert.equal(store.getKey(k3.key.id), null)
    assert.ok(store.getKey(k1.key.id) && store.getKey(k1b.key.id), 'keys expired exactly 7 days ago stay')

    for (const secret of secrets) assertNoSecret(entries, secret)
    assert.deepEqual(store.verifyAudit(), { ok: true, entries: 21 })
    store.close()
  })

  test('filters: keyId, userId, since, limit (default 100), combined', () => {
    const file = storePath()
    const { store, k1 } = scenario(file)
    const all = store.audit({ limit: 1000 })
    const byKey = store.audit({ keyId: k1.key.id })
    assert.deepEqual(byKey.map((e) => e.action), ['rotateKey', 'updateKey', 'updateKey', 'createKey'])
    assert.deepEqual(byKey, all.filter((e) => e.keyId === k1.key.id))
    const byUser = store.audit({ userId: 'u1' })
    assert.deepEqual(byUser, all.filter((e) => e.userId === 'u1'))
    assert.equal(byUser.length, 14)
    const since = store.audit({ since: A(10) })
    assert.deepEqual(since, all.filter((e) => e.at.getTime() >= A(10).getTime()))
    assert.deepEqual(since.map((e) => e.seq), [21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11])
    assert.deepEqual(store.audit({ limit: 3 }), all.slice(0, 3))
    assert.deepEqual(store.audit({ limit: 0 }), [])
    const oldKeyRotation = all.find((e) => e.action === 'rotateKey' && e.keyId === k1.key.id)!
    assert.deepEqual(store.audit({ keyId: k1.key.id, since: A(8), limit: 1 }).map((e) => e.seq), [oldKeyRotation.seq])
    assert.deepEqual(store.audit({ keyId: 'key_doesnotexist' }), [])
    assert.deepEqual(store.audit({ userId: 'u1', since: at(T0, 10 * DAY) }), [])
    throwsCode(() => store.audit({ limit: -1 }), 'INVALID_ARGUMENT')

    for (let i = 0; i < 110; i++) store.putRole({ name: `r${i}`, rights: [] })
    const page = store.audit()
    assert.equal(page.length, 100, 'default limit')
    assert.equal(page[0]!.seq, 131)
    store.close()
  })

  test('actor: recorded as given, invalid actors refused and nothing recorded', () => {
    const file = storePath()
    const store = open(file, { now: T0 })
    store.putUser({ id: 'u' }, { actor: 'ops@example.com (ticket #42) — Ünïcode' })
    assert.equal(store.audit()[0]!.actor, 'ops@example.com (ticket #42) — Ünïcode')
    throwsCode(() => store.putUser({ id: 'v' }, { actor: 'bad\nactor' }), 'INVALID_ARGUMENT')
    throwsCode(() => store.putUser({ id: 'v' }, { actor: '' }), 'INVALID_ARGUMENT')
    throwsCode(() => store.putUser({ id: 'v' }, { actor: 'x'.repeat(257) }), 'INVALID_ARGUMENT')
    assert.equal(store.getUser('v'), null)
    assert.equal(store.audit().length, 1)
    store.close()
    const again = open(file, { now: T0 })
    assert.equal(again.audit()[0]!.actor, 'ops@example.com (ticket #42) — Ünïcode')
    again.close()
  })

  test('a key deleted together with its user: audit({ keyId }) shows its deletion', () => {
    const file = storePath()
    const { store, k4 } = scenario(file)
    const history = store.audit({ keyId: k4.key.id })
    assert.ok(history.length >= 2, `the key's history ends at its creation: ${JSON.stringify(history.map((e) => e.action))}`)
    assert.equal(history[0]!.action, 'deleteUser')
    store.close()
  })

  describe('tampering is detected by verifyAudit()', { skip: NO_PYTHON }, () => {
    let pristine = ''
    let seqOfLast = 0

    function ensurePristine(): void {
      if (pristine === '') {
        const file = storePath()
        const { store } = scenario(file)
        seqOfLast = store.audit({ limit: 1 })[0]!.seq
        store.close()
        sql(file)
        pristine = file
      }
    }

    function tampered(statements: Statement[]): KeyStore {
      ensurePristine()
      const copy = storePath()
      fs.copyFileSync(pristine, copy)
      sql(copy, statements)
      return open(copy, { now: at(T0, 9 * DAY) })
    }

    test('an untouched copy verifies', () => {
      const store = tampered([])
      assert.deepEqual(store.verifyAudit(), { ok: true, entries: seqOfLast })
      store.close()
    })

    test("one entry's detail altered → ok: false, firstBadSeq is that entry", () => {
      const store = tampered(["UPDATE audit SET detail = replace(detail, 'suspended', 'active') WHERE seq = 10"])
      assert.deepEqual(only(store.audit({ limit: 100 }), 10).changes, { state: ['active', 'active'] }, 'the change is there to see')
      const report = store.verifyAudit()
      assert.equal(report.ok, false)
      assert.equal(report.firstBadSeq, 10)
      assert.equal(report.entries, 9)
      assert.match(report.problem ?? '', /10/)
      store.close()
    })

    test("one entry's actor, time, key id or action altered → firstBadSeq is that entry", () => {
      ensurePristine()
      const cases: Array<[number, string]> = [
        [1, "UPDATE audit SET actor = 'mallory' WHERE seq = 1"],
        [8, 'UPDATE audit SET actor = NULL WHERE seq = 8'],
        [5, 'UPDATE audit SET at = at + 1 WHERE seq = 5'],
        [14, "UPDATE audit SET key_id = 'key_other' WHERE seq = 14"],
        [11, "UPDATE audit SET action = 'updateKey' WHERE seq = 11"],
        [seqOfLast, 'UPDATE audit SET user_id = NULL WHERE seq = (SELECT max(seq) FROM audit)'],
      ]
      for (const [seq, statement] of cases) {
        const store = tampered([statement])
        const report = store.verifyAudit()
        assert.equal(report.ok, false, statement)
        assert.equal(report.firstBadSeq, seq, statement)
        store.close()
      }
    })

    test('an entry deleted in the middle → reported missing', () => {
      const store = tampered(['DELETE FROM audit WHERE seq = 8'])
      const report = store.verifyAudit()
      assert.equal(report.ok, false)
      assert.equal(report.firstBadSeq, 8)
      assert.equal(report.entries, 7)
      assert.match(report.problem ?? '', /missing/i)
      store.close()
    })

    test('the last entry deleted → detected', () => {
      const store = tampered(['DELETE FROM audit WHERE seq = (SELECT max(seq) FROM audit)'])
      const report = store.verifyAudit()
      assert.equal(report.ok, false)
      assert.equal(report.firstBadSeq, seqOfLast)
      store.close()
    })

    test('all entries deleted → detected', () => {
      const store = tampered(['DELETE FROM audit'])
      const report = store.verifyAudit()
      assert.equal(report.ok, false)
      assert.equal(report.firstBadSeq, 1)
      store.close()
    })

    test('a tampered trail keeps growing: new entries are chained, the old damage still reported', () => {
      const store = tampered(["UPDATE audit SET detail = replace(detail, 'renamed', 'innocent') WHERE seq = 8"])
      store.putUser({ id: 'after' }, { actor: 'auditor' })
      const report = store.verifyAudit()
      assert.equal(report.ok, false)
      assert.equal(report.firstBadSeq, 8)
      assert.equal(store.audit({ limit: 1 })[0]!.seq, seqOfLast + 1)
      store.close()
    })
  })
})

// =============================================================================

describe('lastUsedAt', () => {
  /** Polls `read` until it returns a value satisfying `ok`; the ms it took, or -1 after `timeoutMs`. */
  async function within(read: () => number | null, ok: (v: number) => boolean, timeoutMs: number): Promise<number> {
    const start = wall()
    while (wall() - start < timeoutMs) {
      const v = read()
      if (v !== null && ok(v)) return wall() - start
      await sleep(10)
    }
    return -1
  }

  test('a successful check reaches the file within ~1.5 s (seen by a second store on the file), exact to a second', async (t: TestContext) => {
    const file = storePath()
    const a = open(file)
    a.putUser({ id: 'u', rights: ['svc:*'] })
    const k = a.createKey({ userId: 'u', description: '', expiresAt: at(new Date(), DAY) })
    const b = open(file)
    assert.equal(a.isAllowed(k.secret, 'other', 'x'), false)
    assert.equal(a.getKey(k.key.id)!.lastUsedAt, null, 'a denied check is no use')
    const used = Date.now()
    assert.equal(a.isAllowed(k.secret, 'svc', 'call'), true)
    const mine = a.getKey(k.key.id)!.lastUsedAt
    assert.ok(mine && Math.abs(mine.getTime() - used) <= 1000, 'in memory at once')
    const read = () => b.getKey(k.key.id)?.lastUsedAt?.getTime() ?? null
    const took = await within(read, (v) => Math.abs(v - used) <= 1000, 3000)
    t.diagnostic(`first use on disk after ${took.toFixed(0)} ms`)
    assert.ok(took >= 0 && took <= 1500, `the use reached the file after ${took.toFixed(0)} ms`)
    a.close()
    b.close()
    const again = open(file)
    assert.ok(Math.abs(again.getKey(k.key.id)!.lastUsedAt!.getTime() - used) <= 1000, 'it survives close and reopen')
    again.close()
  })

  test('a later check (answered from the decision memo) also reaches the file within ~1.5 s', async (t: TestContext) => {
    const file = storePath()
    const a = open(file)
    a.putUser({ id: 'u', rights: ['svc:*'] })
    const k = a.createKey({ userId: 'u', description: '', expiresAt: at(new Date(), DAY) })
    const b = open(file)
    for (let i = 0; i < 3; i++) assert.equal(a.isAllowed(k.secret, 'svc', 'call'), true)
    await sleep(1300)
    const used = Date.now()
    assert.equal(a.isAllowed(k.secret, 'svc', 'call'), true)
    const read = () => b.getKey(k.key.id)?.lastUsedAt?.getTime() ?? null
    const took = await within(read, (v) => v >= used - 1000, 4000)
    t.diagnostic(`later use on disk after ${took.toFixed(0)} ms`)
    assert.ok(took >= 0 && took <= 1500, `the later use reached the file after ${took < 0 ? '> 4000' : took.toFixed(0)} ms`)
    a.close()
    b.close()
  })

  test('close() flushes: a use just before close is there after reopen (frozen clock: exactly)', () => {
    const file = storePath()
    const a = open(file, { now: T0 })
    a.putUser({ id: 'u', rights: ['svc:*'] })
    const k = a.createKey({ userId: 'u', description: '', expiresAt: at(T0, DAY) })
    const k2 = a.createKey({ userId: 'u', description: '', expiresAt: at(T0, DAY) })
    assert.equal(a.isAllowed(k.secret, 'svc', 'call'), true)
    a.setNow(at(T0, 5 * MINUTE))
    for (let i = 0; i < 3; i++) assert.equal(a.isAllowed(k2.secret, 'svc', 'call'), true)
    a.setNow(at(T0, 6 * MINUTE))
    for (let i = 0; i < 3; i++) assert.equal(a.isAllowed(k.secret, 'svc', 'call'), true)
    a.close()
    const again = open(file, { now: T0 })
    assert.equal(again.getKey(k.key.id)!.lastUsedAt?.getTime(), at(T0, 6 * MINUTE).getTime())
    assert.equal(again.getKey(k2.key.id)!.lastUsedAt?.getTime(), at(T0, 5 * MINUTE).getTime())
    again.close()
  })

  test('a process killed 1.5 s after a check: the use is on disk', async () => {
    const file = storePath()
    const setup = open(file)
    setup.putUser({ id: 'u', rights: ['svc:*'] })
    const k = setup.createKey({ userId: 'u', description: '', expiresAt: at(new Date(), DAY) })
    setup.close()
    const child = await StoreProcess.start(file)
    const checked = await child.call('checkMany', k.secret, 'svc', 'call', 3)
    assert.deepEqual(checked.result, [true, true, true])
    await sleep(1500)
    await child.kill()
    const after = open(file)
    const last = after.getKey(k.key.id)!.lastUsedAt
    assert.ok(last, 'lastUsedAt was lost with the process')
    assert.ok(Math.abs(last.getTime() - checked.at) <= 1000, `lastUsedAt ${last.toISOString()} vs check at ${new Date(checked.at).toISOString()}`)
    after.close()
  })

  test('a process killed 1.5 s after a later check (answered from its memo): that use is on disk', async () => {
    const file = storePath()
    const setup = open(file)
    setup.putUser({ id: 'u', rights: ['svc:*'] })
    const k = setup.createKey({ userId: 'u', description: '', expiresAt: at(new Date(), DAY) })
    setup.close()
    const child = await StoreProcess.start(file)
    await child.call('checkMany', k.secret, 'svc', 'call', 3)
    await sleep(1300)
    const later = await child.call('checkMany', k.secret, 'svc', 'call', 2)
    assert.deepEqual(later.result, [true, true])
    await sleep(1500)
    await child.kill()
    const after = open(file)
    const last = after.getKey(k.key.id)!.lastUsedAt!
    assert.ok(last.getTime() >= later.at - 1000, `lastUsedAt ${last.toISOString()} is the earlier use, not the one at ${new Date(later.at).toISOString()}`)
    after.close()
  })
})

// =============================================================================

describe('purge of long-expired keys', () => {
  function setup() {
    const file = storePath()
    const store = open(file, { now: T0 })
    store.putUser({ id: 'u', rights: ['svc:*'] })
    const k1 = store.createKey({ userId: 'u', description: 'expires day 1', expiresAt: at(T0, DAY) })
    const k2 = store.createKey({ userId: 'u', description: 'expires day 3', expiresAt: at(T0, 3 * DAY) })
    const k3 = store.createKey({ userId: 'u', description: 'revoked, expires day 1', expiresAt: at(T0, DAY) })
    store.setState(k3.key.id, 'revoked')
    const k4 = store.createKey({ userId: 'u', description: 'expires day 30', expiresAt: at(T0, 30 * DAY) })
    store.close()
    return { file, k1, k2, k3, k4 }
  }
  const ids = (store: KeyStore) => store.listKeys().map((k) => k.id).sort()
  const purges = (store: KeyStore) => store.audit({ limit: 1000 }).filter((e) => e.action === 'purgeExpired')

  test('keys expired more than 7 days (default) are deleted at open, and audited; younger ones stay', () => {
    const { file, k1, k2, k3, k4 } = setup()
    const exactly7 = open(file, { now: at(T0, 8 * DAY) })
    assert.deepEqual(ids(exactly7), [k1, k2, k3, k4].map((k) => k.key.id).sort(), 'expired exactly 7 days: kept')
    assert.deepEqual(purges(exactly7), [])
    exactly7.close()

    const store = open(file, { now: at(T0, 9 * DAY) })
    assert.deepEqual(ids(store), [k2, k4].map((k) => k.key.id).sort())
    assert.equal(store.explain(k1.secret, 'svc', 'x').reason, 'unknown_key')
    assert.equal(store.explain(k2.secret, 'svc', 'x').reason, 'expired')
    const entries = purges(store)
    assert.deepEqual(entries.map((e) => e.keyId).sort(), [k1.key.id, k3.key.id].sort())
    for (const e of entries) {
      assert.equal(e.userId, 'u')
      assert.equal(e.at.getTime(), at(T0, 9 * DAY).getTime())
      assert.ok(!('actor' in e))
      assert.ok(e.changes.deleted, 'the entry records what was deleted')
      assertNoSecret(e, k1.secret)
      assertNoSecret(e, k3.secret)
    }
    assert.equal(store.verifyAudit().ok, true)
    store.close()

    const again = open(file, { now: at(T0, 9 * DAY) })
    assert.equal(purges(again).length, 2, 'nothing more to purge')
    assert.deepEqual(ids(again), [k2, k4].map((k) => k.key.id).sort())
    again.close()
  })

  test('purgeExpiredAfterDays: 30 keeps them; 0 deletes every expired key; a negative value is refused', () => {
    const { file, k1, k2, k3, k4 } = setup()
    const patient = open(file, { now: at(T0, 9 * DAY), purgeExpiredAfterDays: 30 })
    assert.deepEqual(ids(patient), [k1, k2, k3, k4].map((k) => k.key.id).sort())
    assert.deepEqual(purges(patient), [])
    patient.close()
    throwsCode(() => open(file, { purgeExpiredAfterDays: -1 }), 'INVALID_ARGUMENT')
    const eager = open(file, { now: at(T0, 9 * DAY), purgeExpiredAfterDays: 0 })
    assert.deepEqual(ids(eager), [k4.key.id])
    assert.equal(purges(eager).length, 3)
    eager.close()
  })
})

// =============================================================================

describe('close()', () => {
  test('after close every method throws KeygateError STORE_IO, isAllowed/explain included; close twice is fine', () => {
    const file = storePath()
    const store = open(file)
    store.putRole({ name: 'r', rights: ['svc:*'] })
    store.putUser({ id: 'u', rights: ['svc:*'] })
    const k = store.createKey({ userId: 'u', description: '', expiresAt: at(new Date(), DAY) })
    for (let i = 0; i < 3; i++) assert.equal(store.isAllowed(k.secret, 'svc', 'call'), true) // remembered
    store.close()
    const calls: Record<string, () => unknown> = {
      isAllowed: () => store.isAllowed(k.secret, 'svc', 'call'),
      'isAllowed (unknown secret)': () => store.isAllowed('kg_nonsense', 'svc', 'call'),
      explain: () => store.explain(k.secret, 'svc', 'call'),
      audit: () => store.audit(),
      verifyAudit: () => store.verifyAudit(),
      now: () => store.now(),
      setNow: () => store.setNow(null),
      putRole: () => store.putRole({ name: 'r2', rights: [] }),
      deleteRole: () => store.deleteRole('r'),
      getRole: () => store.getRole('r'),
      listRoles: () => store.listRoles(),
      putUser: () => store.putUser({ id: 'v' }),
      getUser: () => store.getUser('u'),
      listUsers: () => store.listUsers(),
      deleteUser: () => store.deleteUser('u'),
      createKey: () => store.createKey({ userId: 'u', description: '', expiresAt: at(new Date(), DAY) }),
      getKey: () => store.getKey(k.key.id),
      listKeys: () => store.listKeys(),
      updateKey: () => store.updateKey(k.key.id, { description: 'x' }),
      setState: () => store.setState(k.key.id, 'suspended'),
      rotateKey: () => store.rotateKey(k.key.id),
      deleteKey: () => store.deleteKey(k.key.id),
    }
    const wrong: string[] = []
    for (const [name, call] of Object.entries(calls)) {
      try {
        const value = call()
        wrong.push(`${name} returned ${JSON.stringify(value)}`)
      } catch (error) {
        if (!(error instanceof KeygateError) || error.code !== 'STORE_IO' || !/closed/i.test(error.message)) {
          wrong.push(`${name} threw ${String(error)} (${(error as { code?: string }).code})`)
        }
      }
    }
    assert.deepEqual(wrong, [], 'every method of a closed store throws STORE_IO "closed"')
    store.close()
    store.close()
  })

  test('close releases the file (no descriptor left), the data is intact, and reopening works', () => {
    const file = storePath()
    const fds = () =>
      fs
        .readdirSync('/proc/self/fd')
        .map((fd) => {
          try {
            return fs.readlinkSync(`/proc/self/fd/${fd}`)
          } catch {
            return ''
          }
        })
        .filter((target) => target.startsWith(file))
    const store = open(file)
    store.putUser({ id: 'u', rights: ['svc:*'] })
    const k = store.createKey({ userId: 'u', description: 'kept', expiresAt: at(new Date(), DAY) })
    assert.ok(fds().length > 0)
    store.close()
    assert.deepEqual(fds(), [], 'no file descriptor of the store is left open')

    const other = open(file)
    const again = open(file)
    other.close()
    assert.equal(again.isAllowed(k.secret, 'svc', 'call'), true, 'closing one store leaves another on the same file working')
    again.putUser({ id: 'v' })
    again.close()
    const last = open(file)
    assert.deepEqual(last.listUsers().map((u) => u.id), ['u', 'v'])
    assert.equal(last.getKey(k.key.id)!.description, 'kept')
    assert.equal(last.verifyAudit().ok, true)
    last.close()
  })
})
