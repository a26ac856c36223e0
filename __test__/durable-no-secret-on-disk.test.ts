// No secret on disk: the database, its WAL and shm never hold a secret or a piece of one.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as path from 'node:path'

import type { IssuedKey } from '../index.js'
import { DAY, assertNoSecret, at } from './helpers.js'
import { open, storePath, tempDir } from './support/durable.js'
import { PYTHON, sql } from './support/python-sqlite.js'

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
    scan(
      fs.readdirSync(dir).map((f) => path.join(dir, f)),
      secrets,
    )
    if (PYTHON) {
      sql(file)
      scan([file], secrets)
    }
  })
})
