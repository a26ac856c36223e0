// KeyStore.open on damaged and odd files (garbage, truncated, foreign, newer, unreadable,
// locked): a clear KeygateError naming the file, never a crash (probed in child processes)
// and never a changed file. Damaged files are made with python3's sqlite3 module.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { spawn, spawnSync } from 'node:child_process'

import { KeygateError } from '../index.js'
import { DAY, at, throwsCode } from './helpers.js'
import { NODE, childScript, children, open, sha256, storePath, tempDir, throwsStoreError } from './support/durable.js'
import { NO_PYTHON, PYTHON, sql } from './support/python-sqlite.js'
import { probeOpen } from './support/child-store.js'

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

  test("another application's database with no tables yet but its application_id set → STORE_CORRUPT, left byte for byte", { skip: NO_PYTHON }, () => {
    // A table-less SQLite file becomes a new store; one another application has claimed (PRAGMA
    // application_id, which keygate never sets) got keygate's tables added to it.
    const file = storePath('other.db')
    sql(file, ['PRAGMA application_id = 1234'])
    const hash = sha256(file)
    const error = throwsStoreError(() => open(file), 'STORE_CORRUPT', file)
    assert.match(error.message, /another application's SQLite database \(application_id 1234\)/)
    assert.equal(sha256(file), hash)
    assert.deepEqual(sidecars(file), [])
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
    assertRefusedUntouched(
      files,
      damages.map(([label]) => label),
    )
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

    // A gateway run under a user of its own, given as little access as possible: the error must
    // say which access it lacks. SQLite says "unable to open database file" (shown with the
    // file: URI of keygate's first, read-only look) or "attempt to write a readonly database",
    // whichever file it could not open or write, and a store in a directory the user may not
    // enter was taken for no file at all.
    test('a store in a directory the user may not enter → STORE_IO saying so, never "no such file"', { skip: runAs.skip }, () => {
      const dir = sharedDir(0o700)
      const file = closedStore(dir, false)
      for (const options of [undefined, { create: false }]) {
        const result = probeOpen([file], runAs.prefix, options)[0]!
        expectIo(result, file)
        assert.match(result.message, /may not enter its directory/, JSON.stringify(options))
        assert.doesNotMatch(result.message, /no such file|no keygate store|cannot create/, JSON.stringify(options))
      }
    })

    test('the access the user lacks is named: reading the store file, writing it, writing its directory', { skip: runAs.skip || NO_PYTHON }, () => {
      const cases: Array<[string, (dir: string, file: string) => void, RegExp]> = [
        ['a store file it may not read', (_, file) => fs.chmodSync(file, 0o600), /may not read the store file \(owner uid 0, group 0, mode 600\)/],
        ['a store file it may only read', (_, file) => fs.chmodSync(file, 0o644), /may not write the store file \(owner uid 0, group 0, mode 644\)/],
        [
          'its own store file in a directory it may not write',
          (_, file) => fs.chownSync(file, 65534, 65534),
          /may not write its directory .*, where SQLite makes the -wal file/,
        ],
      ]
      for (const [what, plant, named] of cases) {
        const dir = sharedDir()
        const file = closedStore(dir, true)
        plant(dir, file)
        const before = hashes(dir)
        const result = probeOpen([file], runAs.prefix)[0]!
        expectIo(result, file)
        assert.match(result.message, named, what)
        assert.doesNotMatch(result.message, /file:[^ ]|immutable/, `${what}: a file: URI the caller never gave`)
        assert.deepEqual(hashes(dir), before, what)
      }
    })

    // SQLite follows a symbolic link to the store file and makes the -wal and -shm beside the
    // file it leads to: the access to name is that directory's, not the link's.
    test('a store reached through a symbolic link: the directory named is the one the link leads to', { skip: runAs.skip || NO_PYTHON }, () => {
      const real = sharedDir()
      const file = closedStore(real, true)
      fs.chownSync(file, 65534, 65534)
      const links = sharedDir(0o777)
      const link = path.join(links, 'keys.db')
      fs.symlinkSync(file, link)
      const before = hashes(real)
      const result = probeOpen([link], runAs.prefix)[0]!
      expectIo(result, link)
      const realDir = real.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
      assert.match(result.message, new RegExp(`may not write its directory ${realDir} .*, where SQLite makes the -wal file`))
      assert.deepEqual(hashes(real), before)
      assert.deepEqual(fs.readdirSync(links), ['keys.db'])
    })

    test("a store two users share through a group, its -wal made by the other user's group: the -wal is named", {
      skip: NO_PYTHON || ((process.getuid?.() !== 0 || runAs.prefix[0] !== 'setpriv') && 'needs root and setpriv'),
    }, () => {
      // The directory is not set-group-ID, so a -wal and -shm take their maker's own group.
      const dir = tempDir()
      fs.chmodSync(dir, 0o770)
      fs.chownSync(dir, 0, 4242)
      const file = closedStore(dir, true)
      fs.chownSync(file, 65533, 4242)
      fs.chmodSync(file, 0o660)
      for (const suffix of ['-wal', '-shm']) {
        fs.writeFileSync(`${file}${suffix}`, '')
        fs.chmodSync(`${file}${suffix}`, 0o660)
        fs.chownSync(`${file}${suffix}`, 65534, 65534)
      }
      const asOwner = ['setpriv', '--reuid=65533', '--regid=65533', '--groups=4242']
      const result = probeOpen([file], asOwner)[0]!
      expectIo(result, file)
      assert.match(result.message, /uid 65533\) may not read and write the -wal file beside it \(owner uid 65534, group 65534, mode 660\)/)
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
    const opener = spawn(NODE, [childScript('open-probe'), file], { stdio: ['ignore', 'pipe', 'pipe'] })
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
