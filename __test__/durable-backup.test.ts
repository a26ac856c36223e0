// store.backup(path) under a process killed half-way: the copy appears under its name whole or
// not at all, and the next backup to that name is not blocked by the killed one.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'

import { NODE, children, open, tempDir } from './support/durable.js'

const PACKAGE = path.join(__dirname, '..', 'index.js')
const USERS = 60

/** A store of about 25 MB (60 users of 1,000 long rights), so that a backup takes tens of ms. */
function bulkyStore(file: string, users = USERS) {
  const store = open(file)
  for (let u = 0; u < users; u++) {
    store.putUser({ id: `u${u}`, rights: Array.from({ length: 1000 }, (_, j) => `svc${u}${'a'.repeat(118)}:api${j}${'b'.repeat(118)}`) })
  }
  return store
}

/** Whether `file` is a whole backup: it opens, holds every user and its audit trail verifies. */
function isWholeBackup(file: string): boolean {
  const copy = open(file)
  try {
    return copy.listUsers().length === USERS && copy.verifyAudit().ok
  } finally {
    copy.close()
  }
}

/** Runs `keygate`'s backup of `storeFile` to `target` in a child killed as soon as a file for it appears. */
function killedBackup(storeFile: string, target: string): Promise<void> {
  const dir = path.dirname(target)
  const base = path.basename(target)
  const script = `const { KeyStore } = require(${JSON.stringify(PACKAGE)}); KeyStore.open(${JSON.stringify(storeFile)}).backup(${JSON.stringify(target)})`
  return new Promise((resolve, reject) => {
    const watcher = fs.watch(dir, (_event, name) => {
      if (typeof name === 'string' && name.startsWith(base)) child.kill('SIGKILL')
    })
    const child = spawn(NODE, ['-e', script], { stdio: ['ignore', 'ignore', 'pipe'] })
    children.add(child)
    let stderr = ''
    child.stderr.on('data', (chunk) => (stderr += chunk))
    child.on('close', (code, signal) => {
      watcher.close()
      children.delete(child)
      if (signal === 'SIGKILL' || code === 0) resolve()
      else reject(new Error(`backup child exited ${code}: ${stderr}`))
    })
  })
}

describe('store.backup killed half-way', () => {
  test('leaves nothing under the backup name (only a .keygate-partial- file), and the next backup to it succeeds whole', async () => {
    const dir = tempDir()
    const storeFile = path.join(dir, 'keys.db')
    bulkyStore(storeFile).close()
    const target = path.join(dir, 'nightly.db')
    let caughtHalfWay = 0
    for (let attempt = 0; attempt < 5 && caughtHalfWay < 2; attempt++) {
      await killedBackup(storeFile, target)
      if (fs.existsSync(target)) {
        // The kill came after the copy was complete and named: then it must be whole.
        assert.ok(isWholeBackup(target), 'a killed backup left an incomplete file under the backup name')
        fs.rmSync(target)
        continue
      }
      caughtHalfWay++
      const left = fs.readdirSync(dir).filter((name) => name.startsWith('nightly.db'))
      assert.ok(left.length > 0, 'the killed backup had begun')
      for (const name of left) assert.match(name, /^nightly\.db\.keygate-partial-[0-9a-f]{8}(-journal)?$/)
      const store = open(storeFile)
      store.backup(target)
      store.close()
      assert.ok(isWholeBackup(target), 'the backup after a killed one is whole')
      fs.rmSync(target)
      for (const name of left) fs.rmSync(path.join(dir, name), { force: true })
    }
    assert.ok(caughtHalfWay > 0, 'no kill came while the copy was under way')
  })
})

describe('store.backup that fails', () => {
  // A full disk, as a file size limit (ulimit -f, with SIGXFSZ ignored so that a write past it
  // fails with EFBIG instead of killing the process): SQLite's write of the copy fails half-way.
  test('leaves nothing beside the target: neither the partial file nor its -journal', { skip: process.platform !== 'linux' && 'needs ulimit -f (Linux)' }, () => {
    const dir = tempDir()
    const storeFile = path.join(dir, 'keys.db')
    // Larger than SQLite's page cache (2 MB), so that the copy spills to the file, with a journal, before it fails.
    bulkyStore(storeFile, 12).close()
    assert.ok(fs.statSync(storeFile).size > 4 * 1024 * 1024, 'the store is larger than the cache and the limit')
    const target = path.join(dir, 'nightly.db')
    const script = `const { KeyStore } = require(${JSON.stringify(PACKAGE)}); const s = KeyStore.open(${JSON.stringify(storeFile)}); try { s.backup(${JSON.stringify(target)}) } catch (e) { console.log(e.code) } s.close()`
    const r = spawnSync('bash', ['-c', `trap '' XFSZ; ulimit -f 1024; exec "$0" -e "$1"`, NODE, script], { encoding: 'utf8' })
    assert.equal(r.status, 0, r.stderr)
    assert.equal(r.stdout.trim(), 'STORE_IO', 'the backup failed')
    assert.deepEqual(
      fs.readdirSync(dir).filter((name) => name.startsWith('nightly.db')),
      [],
      'a failed backup left files beside its target',
    )
  })
})

/**
 * A child that writes `storeFile` back to back until killed: creates keys, revokes every third,
 * rotates every third with an hour's overlap, printing a JSON line once each call is acknowledged.
 */
function busyWriter(storeFile: string) {
  const script = `
    const { KeyStore } = require(${JSON.stringify(PACKAGE)})
    const store = KeyStore.open(${JSON.stringify(storeFile)}, { onError: () => {} })
    const expiresAt = new Date(Date.now() + 86400000)
    const say = (m) => process.stdout.write(JSON.stringify(m) + '\\n')
    say({ t: 'ready' })
    for (let i = 0; ; i++) {
      const { key, secret } = store.createKey({ userId: 'writer', description: 'k' + i, expiresAt, rules: ['session:*'] })
      say({ t: 'created', id: key.id, secret })
      if (i % 3 === 1) { store.setState(key.id, 'revoked'); say({ t: 'revoked', id: key.id }) }
      if (i % 3 === 2) { const next = store.rotateKey(key.id, { overlapSeconds: 3600 }); say({ t: 'created', id: next.key.id, secret: next.secret }) }
    }`
  const child = spawn(NODE, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
  children.add(child)
  const acknowledged: { t: string; id: string; secret?: string }[] = []
  let pending = ''
  child.stdout.setEncoding('utf8')
  child.stdout.on('data', (chunk: string) => {
    const lines = (pending + chunk).split('\n')
    pending = lines.pop() ?? ''
    for (const line of lines) acknowledged.push(JSON.parse(line))
  })
  const until = (count: number) =>
    new Promise<void>((resolve) => {
      const look = () => (acknowledged.length >= count ? resolve() : setTimeout(look, 10))
      look()
    })
  return { child, acknowledged, until }
}

describe('store.backup while another process keeps writing', () => {
  // SQLite's backup, copied a few pages per step, starts over whenever another connection commits
  // between two steps: it must still finish while the store is written back to back, and hold
  // what was acknowledged before it began.
  test('finishes, and holds every key acknowledged before it began, each with its decision', { timeout: 120_000 }, async () => {
    const dir = tempDir()
    const storeFile = path.join(dir, 'keys.db')
    const store = bulkyStore(storeFile)
    store.putUser({ id: 'writer', rights: ['*:*'] })
    // The application keeps the store open, as it does while the operator backs it up.
    const writer = busyWriter(storeFile)
    await writer.until(50)
    const before = writer.acknowledged.slice()
    const target = path.join(dir, 'nightly.db')
    const script = `const { KeyStore } = require(${JSON.stringify(PACKAGE)}); KeyStore.open(${JSON.stringify(storeFile)}).backup(${JSON.stringify(target)}); console.log('done')`
    const backup = spawn(NODE, ['-e', script], { stdio: ['ignore', 'pipe', 'pipe'] })
    children.add(backup)
    let output = ''
    backup.stdout.on('data', (chunk) => (output += chunk))
    backup.stderr.on('data', (chunk) => (output += chunk))
    const seen = writer.acknowledged.length
    // Far longer than the copy takes (1.5 to 5 s here, restarts included): a bound, not a timing.
    const timer = setTimeout(() => backup.kill('SIGKILL'), 20_000)
    const [code] = await once(backup, 'close')
    clearTimeout(timer)
    children.delete(backup)
    const writtenMeanwhile = writer.acknowledged.length - seen
    writer.child.kill('SIGKILL')
    assert.equal(code, 0, `the backup did not finish while the other process wrote: ${output}`)
    assert.ok(writtenMeanwhile > 0, 'the other process kept writing during the backup')

    const copy = open(target)
    try {
      assert.equal(copy.verifyAudit().ok, true)
      assert.equal(copy.listUsers().length, USERS + 1)
      const revoked = new Set(before.filter((m) => m.t === 'revoked').map((m) => m.id))
      // A key created just before the backup began may have been revoked by the time it ran.
      const last = before.at(-1)
      for (const m of before) {
        if (m.t !== 'created' || !m.secret) continue
        const decision = copy.explain(m.secret, 'session', 'getSessionInfo')
        assert.equal(decision.keyId, m.id, 'an acknowledged key is missing from the backup')
        if (m.id !== last?.id) assert.equal(decision.reason, revoked.has(m.id) ? 'revoked' : 'allowed', m.id)
      }
    } finally {
      copy.close()
    }
  })
})
