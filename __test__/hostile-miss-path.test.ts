// Attacks on the lookup by hint (#14): stores whose key rows carry hostile hints, and the
// native checks that take the registry's read lock as soon as the secret is read, before
// the names: a name that is not a string must release it (an admin write afterwards on
// the same thread would otherwise wait forever), also while another process writes.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { spawnSync } from 'node:child_process'

import { DAY, at } from './helpers.js'
import { NODE, open, storePath, throwsStoreError } from './support/durable.js'
import { NO_PYTHON, sql } from './support/python-sqlite.js'

/** A closed store of three keys of user `u`, with each key's id and secret (in creation order). */
function storeOfThreeKeys(): { file: string; keys: { id: string; secret: string }[] } {
  const file = storePath()
  const store = open(file)
  store.putUser({ id: 'u', rights: ['*:*'] })
  const keys = [0, 1, 2].map((n) => {
    const { key, secret } = store.createKey({ userId: 'u', description: `k${n}`, expiresAt: at(new Date(), DAY) })
    return { id: key.id, secret }
  })
  store.close()
  return { file, keys }
}

const reasonsOf = (file: string, secrets: string[]) => {
  const store = open(file)
  try {
    return secrets.map((secret) => [store.explain(secret, 'svc', 'api').reason, store.isAllowed(secret, 'svc', 'api'), store.isAllowed(secret, 'svc', 'api')])
  } finally {
    store.close()
  }
}

describe('key rows with hostile hints', () => {
  test('a hint that is not 4 letters or digits → STORE_CORRUPT, the file untouched', { skip: NO_PYTHON }, () => {
    const { file } = storeOfThreeKeys()
    for (const hint of ['abc', 'abcde', '', 'ab-d', 'ab d', 'abé', 'ａbcd']) {
      const copy = path.join(path.dirname(file), `hint-${Buffer.from(hint).toString('hex')}.db`)
      fs.copyFileSync(file, copy)
      sql(copy, [["UPDATE keys SET hint = ? WHERE description = 'k0'", [hint]]])
      const before = fs.readFileSync(copy)
      throwsStoreError(() => open(copy), 'STORE_CORRUPT', copy)
      assert.ok(fs.readFileSync(copy).equals(before), `hint ${JSON.stringify(hint)}: the file is unchanged`)
    }
  })

  test("a hint not the secret's, or another key's: that key fails closed (unknown_key), the others answer as before", { skip: NO_PYTHON }, () => {
    const { file, keys } = storeOfThreeKeys()
    const secrets = keys.map((k) => k.secret)
    const stranger = `${secrets[1]!.slice(0, -10)}${secrets[0]!.slice(-10)}`
    assert.deepEqual(reasonsOf(file, secrets), [
      ['allowed', true, true],
      ['allowed', true, true],
      ['allowed', true, true],
    ])
    // k0 filed under k1's hint (two keys share it), k2 under a hint no secret has.
    sql(file, [
      ["UPDATE keys SET hint = ? WHERE description = 'k0'", [secrets[1]!.slice(-4)]],
      ["UPDATE keys SET hint = 'ZZZZ' WHERE description = 'k2'", []],
    ])
    assert.deepEqual(reasonsOf(file, [...secrets, stranger]), [
      ['unknown_key', false, false],
      ['allowed', true, true],
      ['unknown_key', false, false],
      ['malformed_key', false, false],
    ])
    // Rotating a key files its new secret under its own hint; the old one stays refused.
    const store = open(file)
    const rotated = store.rotateKey(keys[0]!.id, { overlapSeconds: 0 })
    assert.equal(store.explain(rotated.secret, 'svc', 'api').reason, 'allowed')
    assert.equal(store.explain(secrets[0]!, 'svc', 'api').reason, 'unknown_key')
    assert.equal(store.explain(secrets[1]!, 'svc', 'api').reason, 'allowed')
    store.deleteKey(keys[1]!.id)
    assert.equal(store.explain(secrets[1]!, 'svc', 'api').reason, 'unknown_key')
    assert.equal(store.explain(rotated.secret, 'svc', 'api').reason, 'allowed')
    store.close()
  })
})

describe('a check whose names are not strings, after a valid secret', () => {
  /** Runs `body` in a child (a lock left held would hang it, not this runner); its stdout, asserted empty of errors. */
  function inChild(body: string): string {
    const binding = JSON.stringify(path.join(__dirname, '..', 'binding.js'))
    const index = JSON.stringify(path.join(__dirname, '..', 'index.js'))
    const script = `const binding = require(${binding}); const { KeyStore } = require(${index}); const assert = require('node:assert/strict');\n${body}`
    const child = spawnSync(NODE, ['-e', script], { encoding: 'utf8', timeout: 60_000 })
    assert.equal(child.signal, null, `the child was killed (hung?): ${child.stderr}`)
    assert.equal(child.status, 0, child.stderr)
    return child.stdout
  }

  test('throws a TypeError, runs no getter or toString, and leaves admin writes free (every native check entry)', () => {
    const out = inChild(`
      const handle = binding.storeInMemory({ now: Date.now() })
      binding.putUser(handle, { id: 'u', rights: ['*:*', 'dav=* *'] })
      const issued = binding.createKey(handle, { userId: 'u', description: '', expiresAt: Date.now() + 86400000, rules: [] })
      let touched = 0
      const trap = { get() { touched++; return 'x' } }
      const junk = [1, null, undefined, {}, { toString: () => { touched++; return 'svc' } }, new String('svc'), Symbol('s'),
        new Proxy({}, trap), Object.defineProperty({}, 'length', { get() { touched++; return 3 } }), ['svc'], 10n, () => 'svc']
      const entries = [
        (s, a, b, ip) => binding.check(handle, s, a, b, ip),
        (s, a, b, ip) => binding.checkDav(handle, s, a, b, ip),
        binding.bindCheck(handle),
        binding.bindCheckDav(handle),
        binding.bindReadFloorForBench(handle),
        binding.bindFindFloorForBench(handle),
      ]
      let thrown = 0
      for (const [n, entry] of entries.entries()) {
        for (const value of junk) {
          for (const args of [[value, 'api'], ['svc', value], ['svc', 'api', value]]) {
            if (args[2] == null && args.length === 3) continue
            try { entry(issued.secret, ...args); } catch (error) { assert.ok(error instanceof TypeError, String(error)); thrown++ }
            // A write lock on this thread: it would wait forever for a read lock left held.
            binding.putUser(handle, { id: 'u' + n, rights: ['*:*'] })
            binding.putRole(handle, 'r' + n, ['svc:*'])
          }
        }
      }
      assert.equal(touched, 0, 'no getter, trap or toString ran')
      console.log(thrown)
    `)
    assert.ok(Number(out) > 100, out)
  })

  test("the benchmark's floor functions read as a check does, find only the store's keys and decide nothing", () => {
    inChild(`
      const handle = binding.storeInMemory({ now: Date.now() })
      binding.putUser(handle, { id: 'u', rights: ['svc:api'] })
      const issued = binding.createKey(handle, { userId: 'u', description: '', expiresAt: Date.now() + 86400000, rules: [] })
      const read = binding.bindReadFloorForBench(handle)
      const find = binding.bindFindFloorForBench(handle)
      const other = issued.secret.slice(0, -1) + (issued.secret.endsWith('A') ? 'B' : 'A')
      assert.equal(read(issued.secret, 'svc', 'api'), 0)
      assert.equal(find(issued.secret, 'svc', 'api'), 1)
      // Found whatever the call: nothing is decided (the user may not call this).
      assert.equal(find(issued.secret, 'other', 'call', '10.0.0.1'), 1)
      for (const secret of [other, 'kg_x', '', issued.secret + 'x']) assert.equal(find(secret, 'svc', 'api'), 0, secret)
      // No use recorded, and the store's own check still answers as before.
      assert.equal(binding.getKey(handle, issued.key.id).lastUsedAt, undefined)
      assert.equal(binding.bindCheck(handle)(issued.secret, 'svc', 'api') & 0xff, 0)
      assert.notEqual(binding.getKey(handle, issued.key.id).lastUsedAt, undefined)
    `)
  })

  test('also on a durable store while another process writes to it (its watcher thread applies the changes)', () => {
    const file = storePath()
    const index = JSON.stringify(path.join(__dirname, '..', 'index.js'))
    const writerScript = `
      const { KeyStore } = require(${index})
      const other = KeyStore.open(${JSON.stringify(file)})
      const end = Date.now() + 1500
      let n = 0
      while (Date.now() < end) other.createKey({ userId: 'u', description: 'w' + n++, expiresAt: new Date(Date.now() + 86400000) })
      other.close()`
    const out = inChild(`
      const { spawn } = require('node:child_process')
      const handle = binding.storeOpen(${JSON.stringify(file)}, {})
      binding.putUser(handle, { id: 'u', rights: ['*:*'] })
      const issued = binding.createKey(handle, { userId: 'u', description: '', expiresAt: Date.now() + 86400000, rules: [] })
      const check = binding.bindCheck(handle)
      const writer = spawn(process.execPath, ['-e', ${JSON.stringify(writerScript)}], { stdio: 'inherit' })
      let thrown = 0, allowed = 0
      const started = Date.now()
      const loop = () => {
        for (let i = 0; i < 200; i++) {
          try { check(issued.secret, 'svc', 42) } catch { thrown++ }
          if ((check(issued.secret, 'svc', 'api') & 0xff) === 0) allowed++
          if (i % 50 === 0) binding.putRole(handle, 'r' + i, ['svc:*'])
        }
        if (writer.exitCode === null && Date.now() - started < 30000) setImmediate(loop)
        else { assert.equal(writer.exitCode, 0); binding.storeClose(handle); console.log(thrown + ' ' + allowed) }
      }
      loop()
    `)
    const [thrown, allowed] = out.trim().split(' ').map(Number)
    assert.ok(thrown! > 0 && thrown === allowed, out)
  })
})
