// The durable store on a full disk: a small tmpfs filled to the last page. Every admin call
// then either succeeds or throws STORE_IO and changes nothing, in memory or in the file (a
// reopened store holds exactly what succeeded); the store works again once space is freed.
// Mounting needs root: without it these tests are skipped, and say so.
import { after, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { spawn, spawnSync } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'

import { KeyStore, KeygateError } from '../index.js'
import type { BackgroundError } from '../index.js'
import { NODE, sleep } from './support/durable.js'
import { NO_PYTHON } from './support/python-sqlite.js'
import { DAY, throwsCode } from './helpers.js'

const mounted: string[] = []
const readers = new Set<ChildProcess>()

after(() => {
  for (const child of readers) child.kill('SIGKILL')
  for (const dir of mounted) {
    // Lazily, should a process of a failed test still hold a file there.
    if (spawnSync('umount', [dir]).status !== 0) spawnSync('umount', ['-l', dir])
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

/** A new empty directory on a tmpfs of `megabytes`. */
function smallDisk(megabytes: number): string {
  const dir = fs.mkdtempSync(`${os.tmpdir()}/keygate-full-`)
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${megabytes}m`, 'tmpfs', dir], { encoding: 'utf8' })
  if (r.status !== 0) {
    fs.rmdirSync(dir)
    throw new Error(`mount -t tmpfs failed: ${r.stderr || r.error}`)
  }
  mounted.push(dir)
  return dir
}

/** Why the tests cannot run here (mounting a tmpfs is not permitted), or false. */
const NO_MOUNT = (() => {
  if (process.platform !== 'linux') return 'needs Linux, to mount a small tmpfs as a full disk'
  const dir = fs.mkdtempSync(`${os.tmpdir()}/keygate-mount-probe-`)
  try {
    const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', dir], { encoding: 'utf8' })
    if (r.status !== 0) {
      return `mounting a tmpfs (mount -t tmpfs) is not permitted here, so no full disk can be made (run as root): ${(r.stderr || String(r.error)).trim().split('\n')[0]}`
    }
    spawnSync('umount', [dir])
    return false
  } finally {
    fs.rmdirSync(dir)
  }
})()

const FILLER = 'filler'

/** Fills the file system of `dir` to its last byte, then frees `pages` pages of 4 KiB. */
function fill(dir: string, pages = 0): void {
  const filler = path.join(dir, FILLER)
  for (const size of [65_536, 4096, 1]) {
    try {
      for (;;) fs.appendFileSync(filler, Buffer.alloc(size))
    } catch (error) {
      assert.equal((error as NodeJS.ErrnoException).code, 'ENOSPC')
    }
  }
  if (pages > 0) fs.truncateSync(filler, Math.max(0, fs.statSync(filler).size - pages * 4096))
}

const free = (dir: string) => fs.rmSync(path.join(dir, FILLER), { force: true })
const expires = () => new Date(Date.now() + DAY)
const state = (store: KeyStore) => JSON.stringify([store.listUsers(), store.listRoles(), store.listKeys().map(({ lastUsedAt: _, ...key }) => key)])

describe('a full disk', { skip: NO_MOUNT }, () => {
  test('every admin call throws STORE_IO and changes nothing; a revocation not written is not done; the store works once space is freed', async () => {
    const dir = smallDisk(1)
    const file = path.join(dir, 'keys.db')
    const reported: BackgroundError[] = []
    const store = KeyStore.open(file, { onError: (error) => reported.push(error) })
    store.putUser({ id: 'svc', rights: ['*:*'] })
    const keys = [0, 1, 2, 3].map((i) => store.createKey({ userId: 'svc', description: `k${i}`, expiresAt: expires() }))
    const [a, b, c, d] = keys.map((k) => k!)
    fill(dir)
    // Writes first go into room the log already has; the disk is full well before 50 of these.
    let written = 0
    for (; written < 50; written++) {
      try {
        store.createKey({ userId: 'svc', description: 'x'.repeat(1000), expiresAt: expires() })
      } catch (error) {
        assert.ok(error instanceof KeygateError && error.code === 'STORE_IO', String(error))
        break
      }
    }
    assert.ok(written < 50, 'the disk never filled')
    const before = state(store)
    const full = (call: () => unknown) => throwsCode(call, 'STORE_IO', file)
    full(() => store.createKey({ userId: 'svc', description: 'new', expiresAt: expires() }))
    full(() => store.updateKey(a.key.id, { description: 'changed' }))
    full(() => store.setState(b.key.id, 'revoked'))
    full(() => store.rotateKey(c.key.id))
    full(() => store.deleteKey(d.key.id))
    full(() => store.putUser({ id: 'other', rights: ['a:b'] }))
    full(() => store.putRole({ name: 'role', rights: ['a:b'] }))
    full(() => store.deleteUser('svc'))
    assert.equal(state(store), before, 'a call that threw changed the store in memory')
    assert.equal(store.getKey(b.key.id)?.state, 'active', 'a revocation that was not written is not reported done')
    assert.equal(store.isAllowed(b.secret, 'svc', 'call'), true)
    const target = path.join(dir, 'nightly.db')
    throwsCode(() => store.backup(target), 'STORE_IO', target)
    assert.deepEqual(
      fs.readdirSync(dir).filter((name) => name.startsWith('nightly.db')),
      [],
      'a failed backup left files',
    )
    // The lastUsedAt flush (once a second, and at close) fails: reported, never thrown.
    assert.equal(store.isAllowed(a.secret, 'svc', 'call'), true)
    store.close()
    // Reported on the event loop.
    for (let waited = 0; waited < 2000 && !reported.some((error) => error.task === 'lastUsedAt'); waited += 20) await sleep(20)
    assert.ok(
      reported.some((error) => error.task === 'lastUsedAt' && error.code === 'STORE_IO'),
      reported.map((error) => error.message).join('\n'),
    )
    // Opened again on the full disk, it reads what was committed; once space is freed, it writes.
    const reopened = KeyStore.open(file)
    assert.equal(state(reopened), before, 'the file does not hold exactly what succeeded')
    free(dir)
    reopened.setState(b.key.id, 'revoked')
    reopened.close()
    const last = KeyStore.open(file)
    assert.equal(last.getKey(b.key.id)?.state, 'revoked')
    assert.equal(last.listKeys().length, 4 + written)
    assert.equal(last.verifyAudit().ok, true)
    last.close()
  })

  test('a new store on a full disk: STORE_IO, and a store is made there once space is freed', () => {
    const dir = smallDisk(1)
    const file = path.join(dir, 'keys.db')
    fill(dir)
    throwsCode(() => KeyStore.open(file), 'STORE_IO', file)
    free(dir)
    const store = KeyStore.open(file)
    store.putUser({ id: 'svc', rights: ['*:*'] })
    store.close()
  })

  // SQLite writes a commit's frames to the -wal (and syncs them) before it indexes them in the
  // -shm, which grows by 32 KiB each 4,096 frames. When that growth found the disk full, the
  // COMMIT failed with the whole transaction in the log, and the next process to read the log
  // afresh took it as committed: a createKey that threw left a key in the file (a setState that
  // threw, a key's state changed), unseen by the process that made it.
  test('a write that fails where the log index must grow is not committed behind its error', { skip: NO_PYTHON, timeout: 120_000 }, async () => {
    const dir = smallDisk(40)
    const file = path.join(dir, 'keys.db')
    const frames = () => Math.floor((fs.statSync(`${file}-wal`).size - 32) / (4096 + 24))
    for (const pages of [12, 14, 16, 18, 20, 22]) {
      for (const name of fs.readdirSync(dir)) fs.rmSync(path.join(dir, name))
      const store = KeyStore.open(file, { onError: () => {} })
      store.putUser({ id: 'svc', rights: ['*:*'] })
      // A reader holding an old snapshot keeps the log from starting over, so it grows past the
      // 4,062 frames the index's first 32 KiB hold.
      const script = `import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute('BEGIN')
c.execute('SELECT count(*) FROM keys').fetchall()
print('ready', flush=True)
time.sleep(120)`
      const reader = spawn('python3', ['-c', script, file], { stdio: ['ignore', 'pipe', 'inherit'] })
      readers.add(reader)
      const exited = new Promise((resolve) => reader.on('exit', resolve))
      await new Promise((resolve) => reader.stdout.once('data', resolve))
      while (frames() < 4062 - 12) store.createKey({ userId: 'svc', description: 'bulk', expiresAt: expires() })
      fill(dir, pages)
      const succeeded: string[] = []
      for (let i = 0; i < 6; i++) {
        try {
          store.createKey({ userId: 'svc', description: `attempt ${i}`, expiresAt: expires() })
          succeeded.push(`attempt ${i}`)
        } catch (error) {
          assert.ok(error instanceof KeygateError && error.code === 'STORE_IO', String(error))
        }
      }
      const attempts = (s: KeyStore) =>
        s
          .listKeys()
          .flatMap((key) => (key.description.startsWith('attempt') ? [key.description] : []))
          .sort()
      assert.deepEqual(attempts(store), succeeded, `${pages} pages free: memory holds what succeeded`)
      reader.kill('SIGKILL')
      await exited
      readers.delete(reader)
      // Closed on the full disk, its log cannot be folded into the file and stays.
      store.close()
      free(dir)
      const reopened = KeyStore.open(file)
      assert.deepEqual(attempts(reopened), succeeded, `${pages} pages free: a write that threw is in the file`)
      reopened.close()
    }
  })
})

describe('a file size limit', () => {
  test('Node ignores SIGXFSZ: a write past a file size limit (ulimit -f) throws STORE_IO, the process lives on', {
    skip: process.platform !== 'linux' && 'needs ulimit -f (Linux)',
  }, () => {
    const dir = fs.mkdtempSync(`${os.tmpdir()}/keygate-fsize-`)
    try {
      const file = path.join(dir, 'keys.db')
      const script = `const { KeyStore } = require(${JSON.stringify(path.join(__dirname, '..', 'index.js'))})
const s = KeyStore.open(${JSON.stringify(file)}, { onError: () => {} })
s.putUser({ id: 'svc', rights: ['*:*'] })
let made = 0
try { for (;;) { s.createKey({ userId: 'svc', description: 'x'.repeat(1000), expiresAt: new Date(Date.now() + 86400000) }); made++ } }
catch (e) { console.log(JSON.stringify({ code: e.code, made, inMemory: s.listKeys().length })) }
s.close()`
      // No trap: the signal's default action (killing the process) is what Node must override.
      const r = spawnSync('bash', ['-c', 'ulimit -f 512; exec "$0" -e "$1"', NODE, script], { encoding: 'utf8' })
      assert.equal(r.signal, null, `killed by ${r.signal}`)
      assert.equal(r.status, 0, r.stderr)
      const { code, made, inMemory } = JSON.parse(r.stdout) as { code: string; made: number; inMemory: number }
      assert.equal(code, 'STORE_IO')
      assert.equal(inMemory, made)
      const store = KeyStore.open(file)
      assert.equal(store.listKeys().length, made)
      store.close()
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})
