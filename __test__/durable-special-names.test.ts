// KeyStore.open and store.backup with SQLite's special names: "" (a temporary database),
// ":memory:" and file: URIs (the bundled SQLite reads them whatever the open flags). keygate's
// checks look at the literal path, so each is refused with INVALID_ARGUMENT before anything is
// opened: no file is written, an existing backup and another program's database are left byte
// for byte. A file whose name really begins with "file:" is reached as ./file:….
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as path from 'node:path'

import { KeyStore } from '../index.js'
import { throwsCode } from './helpers.js'
import { open, sha256, storePath, tempDir } from './support/durable.js'
import { NO_PYTHON, sql } from './support/python-sqlite.js'

/** Every file in `dir` with the SHA-256 of its bytes. */
function filesIn(dir: string): Record<string, string> {
  return Object.fromEntries(
    fs
      .readdirSync(dir)
      .sort()
      .map((name) => [name, sha256(path.join(dir, name))]),
  )
}

/** Runs `fn` with `dir` as the working directory, so that relative names land there. */
function inDir<T>(dir: string, fn: () => T): T {
  const cwd = process.cwd()
  process.chdir(dir)
  try {
    return fn()
  } finally {
    process.chdir(cwd)
  }
}

/** What `fn` did: the code of the KeygateError it threw, or 'returned'. */
function outcome(fn: () => unknown): string {
  try {
    const value = fn()
    if (value instanceof KeyStore) value.close()
    return 'returned'
  } catch (error) {
    return String((error as { code?: unknown }).code)
  }
}

/** A live store with a user, in its own directory. */
function liveStore(): KeyStore {
  const store = open(storePath())
  store.putUser({ id: 'u', rights: ['*:*'] })
  return store
}

/** The special names, absolute ones pointing into `dir`. */
function specialNames(dir: string): string[] {
  return ['', ':memory:', `file:${dir}/new.db`, `file:${dir}/new.db?mode=memory`, `FILE:${dir}/new.db`, 'file:new.db', 'file:new.db?mode=memory&cache=shared']
}

describe("SQLite's special names: refused as store and backup paths, nothing written", () => {
  test('KeyStore.open: "", ":memory:" and file: URIs → INVALID_ARGUMENT, no file created', () => {
    const dir = tempDir()
    const names = specialNames(dir)
    const outcomes = inDir(dir, () => names.map((name) => [name, outcome(() => KeyStore.open(name))]))
    assert.deepEqual(
      outcomes,
      names.map((name) => [name, 'INVALID_ARGUMENT']),
    )
    assert.deepEqual(fs.readdirSync(dir), [], 'nothing was created')
    for (const name of names) {
      const error = throwsCode(() => KeyStore.open(name), 'INVALID_ARGUMENT')
      assert.match(error.message, /give (a file|the file's) path/, `${JSON.stringify(name)}: ${error.message}`)
    }
  })

  test('store.backup: "", ":memory:" and file: URIs → INVALID_ARGUMENT, no file written', () => {
    const store = liveStore()
    const dir = tempDir()
    const names = specialNames(dir)
    const outcomes = inDir(dir, () => names.map((name) => [name, outcome(() => store.backup(name))]))
    assert.deepEqual(
      outcomes,
      names.map((name) => [name, 'INVALID_ARGUMENT']),
    )
    assert.deepEqual(fs.readdirSync(dir), [], 'no backup file was written')
    for (const name of names) throwsCode(() => store.backup(name), 'INVALID_ARGUMENT', 'backup path')
    store.close()
  })

  test('the messages say what to give instead', () => {
    const store = liveStore()
    throwsCode(() => open(''), 'INVALID_ARGUMENT', 'store path is empty')
    throwsCode(() => open(':memory:'), 'INVALID_ARGUMENT', 'in-memory', 'KeyStore.inMemory()')
    throwsCode(() => open('file:./dev.db'), 'INVALID_ARGUMENT', 'file:./dev.db', 'SQLite URI', 'not a file path', './dev.db, not file:./dev.db')
    throwsCode(() => store.backup(':memory:'), 'INVALID_ARGUMENT', 'in-memory', 'give a file path')
    throwsCode(() => store.backup('File:bk.db'), 'INVALID_ARGUMENT', 'File:bk.db', 'SQLite URI')
    store.close()
  })

  test('store.backup("file:<an existing backup>") → INVALID_ARGUMENT, the backup byte for byte as it was', () => {
    const store = liveStore()
    const dir = tempDir()
    const old = path.join(dir, 'old-backup.db')
    const previous = KeyStore.open(old)
    previous.putUser({ id: 'precious' })
    previous.close()
    fs.writeFileSync(path.join(dir, 'notes.txt'), 'important text\n')
    const before = filesIn(dir)
    throwsCode(() => store.backup(old), 'STORE_IO', 'already exists')
    throwsCode(() => store.backup(`file:${old}`), 'INVALID_ARGUMENT', old)
    throwsCode(() => store.backup(`file:${path.join(dir, 'notes.txt')}`), 'INVALID_ARGUMENT')
    assert.deepEqual(filesIn(dir), before, 'no file changed or appeared')
    const again = KeyStore.open(old)
    assert.deepEqual(
      again.listUsers().map((u) => u.id),
      ['precious'],
    )
    again.close()
    store.close()
  })

  test('KeyStore.open("file:<another program\'s database>") → INVALID_ARGUMENT, the database byte for byte (not switched to WAL)', { skip: NO_PYTHON }, () => {
    const file = storePath('other-app.db')
    sql(file, ['CREATE TABLE invoices (id INTEGER PRIMARY KEY, amount INTEGER)', 'INSERT INTO invoices (amount) VALUES (42)'])
    const dir = path.dirname(file)
    const before = filesIn(dir)
    throwsCode(() => open(`file:${file}`), 'INVALID_ARGUMENT', file)
    throwsCode(() => open(`file:${file}?mode=rw`), 'INVALID_ARGUMENT', file)
    assert.deepEqual(filesIn(dir), before, 'the database is unchanged and no -wal/-shm file was made')
    assert.deepEqual(sql(file, ['PRAGMA journal_mode'])[0], [['delete']], "the other program's database keeps its journal mode")
  })

  test('KeyStore.open("file:<an existing keygate store>") → INVALID_ARGUMENT (not opened as a new store), the store unchanged', () => {
    const file = storePath()
    const store = open(file)
    store.putUser({ id: 'alice' })
    store.close()
    const before = filesIn(path.dirname(file))
    throwsCode(() => open(`file:${file}`), 'INVALID_ARGUMENT', file)
    assert.deepEqual(filesIn(path.dirname(file)), before)
    const reopened = open(file)
    assert.equal(reopened.created, false)
    assert.deepEqual(
      reopened.listUsers().map((u) => u.id),
      ['alice'],
    )
    reopened.close()
  })

  test('a file whose name begins with "file:" is opened and backed up to as ./file:…', () => {
    const store = liveStore()
    const dir = tempDir()
    inDir(dir, () => {
      const named = open('./file:keys.db')
      assert.equal(named.created, true)
      named.putUser({ id: 'v' })
      named.close()
      store.backup('./file:backup.db')
    })
    assert.deepEqual(
      Object.keys(filesIn(dir)).filter((name) => !name.endsWith('-wal') && !name.endsWith('-shm')),
      ['file:backup.db', 'file:keys.db'],
    )
    const backup = KeyStore.open(path.join(dir, 'file:backup.db'))
    assert.deepEqual(
      backup.listUsers().map((u) => u.id),
      ['u'],
    )
    backup.close()
    store.close()
  })
})

describe('a store path holding control or bidi characters, in messages', () => {
  test('is shown on one line with each such character as <U+XXXX>', () => {
    const dir = tempDir()
    // A directory that does not exist, so the open fails quoting the path; and a backup target that exists.
    const missing = path.join(dir, 'no\nsuch\u001b[2J\u202edir', 'keys.db')
    const message = (fn: () => unknown): string => {
      try {
        fn()
      } catch (error) {
        return String((error as Error).message)
      }
      assert.fail('expected a throw')
    }
    const opened = message(() => KeyStore.open(missing))
    assert.match(opened, /no<U\+000A>such<U\+001B>\[2J<U\+202E>dir/)
    assert.doesNotMatch(opened, /[\n\u001b\u202e]/)
    const store = liveStore()
    const taken = path.join(dir, 'taken\r\nforged line.db')
    fs.writeFileSync(taken, '')
    const backedUp = message(() => store.backup(taken))
    assert.match(backedUp, /taken<U\+000D><U\+000A>forged line\.db/)
    store.close()
  })
})
