// What KeyStore.open hands out: a store current with every commit made before it returned, and
// never a file that is not an SQLite database taken for one (a stale -wal beside it or not).
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync, spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import path from 'node:path'

import { KeyStore } from '../index.js'
import { DAY, at } from './helpers.js'
import { StoreProcess } from './support/child-store.js'
import { open, storePath, throwsStoreError, wall } from './support/durable.js'

/** The `-wal` of a store in use (a user and a key written), as it is while the store is open. */
function walOfAnOpenStore(): Buffer {
  const other = storePath()
  const live = open(other)
  live.putUser({ id: 'u', rights: ['*:*'] })
  live.createKey({ userId: 'u', description: '', expiresAt: at(new Date(), DAY) })
  const wal = fs.readFileSync(`${other}-wal`)
  live.close()
  return wal
}

describe('KeyStore.open', () => {
  test('a revocation another process commits while the store opens is seen by the first check after open returns', { timeout: 120_000 }, async () => {
    const file = storePath()
    // Enough keys that the open's first read of the file takes tens of milliseconds.
    const seed = KeyStore.inMemory()
    seed.putUser({ id: 'u', rights: ['*:*'] })
    const expiresAt = at(new Date(), 30 * DAY)
    for (let i = 0; i < 30_000; i++) seed.createKey({ userId: 'u', description: '', expiresAt })
    const disk = open(file)
    KeyStore.copy(seed, disk)
    disk.close()
    let started = wall()
    KeyStore.open(file).close()
    const openMs = wall() - started

    const other = await StoreProcess.start(file)
    let conclusive = 0
    for (let trial = 0; trial < 12 && conclusive < 4; trial++) {
      const writer = KeyStore.open(file)
      const { key, secret } = writer.createKey({ userId: 'u', description: 'revoked during an open', expiresAt })
      writer.close()
      const revocation = other.send('setState', [key.id, 'revoked'], { delayMs: openMs * 0.3 })
      started = wall()
      const store = KeyStore.open(file)
      const returned = wall()
      const allowed = store.isAllowed(secret, 'svc', 'call')
      store.close()
      const { ok, at: committedAt } = await other.reply(revocation)
      assert.equal(ok, true)
      // Only a revocation committed well before open returned says anything (the store's
      // watcher may also catch up with one committed in the open's last moments).
      if (committedAt < started || returned - committedAt < 10) continue
      conclusive++
      assert.equal(allowed, false, `revoked ${(returned - committedAt).toFixed(1)} ms before open returned, yet allowed`)
    }
    await other.stop()
    assert.ok(conclusive > 0, 'no revocation landed inside an open; the store opens too fast for this test')
  })

  test('a file that is not an SQLite database, with a stale -wal of another store beside it, is refused and left as it was', () => {
    // The WAL as it was while the store was open (a crash, or files copied together).
    const staleWal = walOfAnOpenStore()
    for (const bytes of [Buffer.from('my notes, not a database\n'.repeat(200)), Buffer.alloc(8192), Buffer.from('hi')]) {
      const file = storePath()
      fs.writeFileSync(file, bytes)
      fs.writeFileSync(`${file}-wal`, staleWal)
      throwsStoreError(() => open(file), 'STORE_CORRUPT', file)
      assert.deepEqual(fs.readFileSync(file), bytes, 'the file was written over')
    }
  })

  test('an empty file with a non-empty -wal beside it (the file truncated) is refused, and the -wal left as it was', () => {
    // The WAL of a store in use: it may hold every page written since the last checkpoint.
    const wal = walOfAnOpenStore()
    assert.ok(wal.length > 0)
    const file = storePath()
    fs.writeFileSync(file, '')
    fs.writeFileSync(`${file}-wal`, wal)
    const error = throwsStoreError(() => open(file), 'STORE_CORRUPT', file)
    assert.match(error.message, /empty/)
    assert.equal(fs.statSync(file).size, 0, 'a new store was made in the file')
    assert.ok(fs.existsSync(`${file}-wal`), 'the -wal beside the file was deleted')
    assert.deepEqual(fs.readFileSync(`${file}-wal`), wal, 'the -wal beside the file was changed')
  })

  test('a new store file, its -wal and -shm, and a backup are readable by their owner only', { skip: process.platform === 'win32' && 'no POSIX modes' }, () => {
    const file = storePath()
    const store = open(file)
    store.putUser({ id: 'u', rights: ['*:*'] })
    store.createKey({ userId: 'u', description: '', expiresAt: at(new Date(), DAY) })
    const backup = `${file}.backup`
    store.backup(backup)
    const modes = Object.fromEntries([file, `${file}-wal`, `${file}-shm`, backup].map((f) => [f, fs.statSync(f).mode & 0o777]))
    store.close()
    for (const [f, mode] of Object.entries(modes)) assert.equal(mode, 0o600, `${f} is ${mode.toString(8)}`)
  })

  test('a store opened through a symbolic link to a file not there yet: the file it makes is readable by its owner only', {
    skip: process.platform === 'win32' && 'no POSIX modes',
  }, () => {
    const target = storePath()
    const link = `${target}.link`
    fs.symlinkSync(target, link)
    open(link).close()
    assert.equal(fs.lstatSync(link).isSymbolicLink(), true, 'the link was replaced')
    assert.equal(fs.statSync(target).mode & 0o777, 0o600)
  })

  test('an existing file keeps the mode its owner gave it', { skip: process.platform === 'win32' && 'no POSIX modes' }, () => {
    const file = storePath()
    fs.writeFileSync(file, '')
    fs.chmodSync(file, 0o640)
    open(file).close()
    assert.equal(fs.statSync(file).mode & 0o777, 0o640)
  })

  test('a path naming a device, a FIFO or a socket is refused before anything is written to it or made beside it', {
    skip: process.platform === 'win32' && 'no device files',
  }, () => {
    // A block device reports size 0, like an empty file: taken for a new store, its first pages
    // were written over with an SQLite database (a disk, named by KEYGATE_DB or a planted link).
    const dir = path.dirname(storePath())
    const fifo = path.join(dir, 'fifo')
    execFileSync('mkfifo', [fifo])
    const names = [fifo]
    const device = path.join(dir, 'null')
    // A character device (a copy of /dev/null) where this process may make one (root).
    if (spawnSync('mknod', [device, 'c', '1', '3']).status === 0) names.push(device)
    const link = path.join(dir, 'link.db')
    fs.symlinkSync(names.at(-1)!, link)
    for (const file of [...names, link]) {
      const error = throwsStoreError(() => open(file), 'STORE_IO', file)
      assert.match(error.message, /not a regular file/)
    }
    assert.deepEqual(fs.readdirSync(dir).sort(), ['link.db', ...names.map((f) => path.basename(f))].sort(), 'files were made beside them')
  })

  test("a -wal, -shm or -journal another user made first (a shared directory such as /tmp) is refused: it would give them the store's pages", {
    skip: process.platform === 'win32' && 'no POSIX owners',
  }, () => {
    // SQLite takes whatever file is at those names: one made world-readable by another user let them
    // read every digest and audit entry written, write pages of their own, and kill the process
    // (SIGBUS) by cutting the -shm short; a -journal was played back into the store file (measured:
    // another user's whole store, their keys in it, took the place of this one).
    const plants: [string, RegExp, (file: string) => void][] = [
      ['world-readable and writable', /lets others read or write it \(mode 666\) where the store file does not \(mode 600\)/, (f) => fs.chmodSync(f, 0o666)],
      [
        'a symbolic link',
        /is not a regular file/,
        (f) => {
          fs.rmSync(f)
          fs.symlinkSync(`${f}.elsewhere`, f)
        },
      ],
    ]
    if (process.getuid?.() === 0) plants.push(['owned by another user', /is owned by another user \(uid 65534\)/, (f) => fs.chownSync(f, 65534, 65534)])
    for (const existing of [true, false]) {
      for (const [what, problem, plant] of plants) {
        for (const suffix of ['-wal', '-shm', '-journal']) {
          const file = storePath()
          if (existing) open(file).close()
          const before = existing ? fs.readFileSync(file) : undefined
          fs.writeFileSync(`${file}${suffix}`, '')
          fs.writeFileSync(`${file}${suffix}.elsewhere`, 'not theirs')
          plant(`${file}${suffix}`)
          const error = throwsStoreError(() => open(file), 'STORE_IO', file)
          assert.match(error.message, new RegExp(`the ${suffix} file beside it ${problem.source}`), `${what} ${suffix}`)
          assert.equal(fs.readFileSync(`${file}${suffix}.elsewhere`, 'utf8'), 'not theirs')
          if (before) assert.deepEqual(fs.readFileSync(file), before, `${what} ${suffix}: the store file was changed`)
          else assert.ok(!fs.existsSync(file), `${what} ${suffix}: a store file was made`)
        }
      }
    }
  })

  test("its own -wal and -shm that others may read (a store made 0644, chmod'ed 0600 while in use) are given the store's mode, not refused", {
    skip: process.platform === 'win32' && 'no POSIX modes',
  }, () => {
    const file = storePath()
    const running = open(file)
    running.putUser({ id: 'u' })
    for (const suffix of ['-wal', '-shm']) fs.chmodSync(`${file}${suffix}`, 0o644)
    const another = open(file)
    assert.deepEqual(
      another.listUsers().map((u) => u.id),
      ['u'],
    )
    for (const suffix of ['-wal', '-shm']) assert.equal(fs.statSync(`${file}${suffix}`).mode & 0o777, 0o600, suffix)
    another.close()
    running.close()
  })

  test('create: false opens only a store that exists: a missing, empty or table-less file is STORE_IO and left as it was', () => {
    const missing = storePath()
    throwsStoreError(() => open(missing, { create: false }), 'STORE_IO', missing)
    assert.equal(fs.existsSync(missing), false, 'a store was made')
    const empty = storePath()
    fs.writeFileSync(empty, '')
    throwsStoreError(() => open(empty, { create: false }), 'STORE_IO', empty)
    assert.equal(fs.statSync(empty).size, 0, 'a store was made in the empty file')
    assert.deepEqual(
      fs.readdirSync(path.dirname(empty)).filter((f) => f.startsWith(path.basename(empty))),
      [path.basename(empty)],
    )
    // An existing store opens as ever.
    const file = storePath()
    open(file).close()
    open(file, { create: false }).close()
    assert.throws(() => KeyStore.open(storePath(), { create: 'no' as unknown as boolean }), { code: 'INVALID_ARGUMENT' })
  })
})
