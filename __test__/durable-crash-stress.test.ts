// Crash stress: several processes on one store make seeded random admin calls, checks and copies,
// and are killed with SIGKILL at random moments (during their open, a commit, a lastUsedAt flush,
// a copy) and started again, while this process keeps the store open and checks. Every call that
// returned is in the audit trail afterwards, the trail verifies, a revoked or deleted key is denied
// here within 100 ms of its acknowledgement and ever after, lastUsedAt never goes back, and no
// process dies by itself or fails to open.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'

import { KeyStore } from '../index.js'
import { seededRandom } from './helpers.js'
import { NODE, childScript, children, open, sleep, storePath, wall } from './support/durable.js'

describe('crash stress: processes killed at random on one store', () => {
  test('acknowledged calls are durable, revocations reach this process within 100 ms, nothing aborts', { timeout: 60_000 }, async () => {
    const random = seededRandom(20_261_205)
    const file = storePath()
    const copies = path.join(path.dirname(file), 'copies')
    fs.mkdirSync(copies)
    const incidents: unknown[] = []
    const store = open(file, { onError: (e) => incidents.push([e.code, (e as any).task]) })
    for (const id of ['u1', 'u2', 'u3']) store.putUser({ id, rights: ['*:*'] })

    type Line = Record<string, any>
    const acked = new Map<string, Line>()
    const secrets = new Map<string, string>()
    const dead = new Map<string, number>() // secret → when it was acknowledged dead
    const problems: string[] = []
    let kills = 0
    let stopping = false
    const workers: Array<{ child: ChildProcess; killed: boolean } | undefined> = []

    const start = (slot: number) => {
      const name = `w${slot}-${kills}`
      const child = spawn(NODE, [childScript('stress-worker'), file, String(Math.floor(random() * 2 ** 31)), name, copies], {
        stdio: ['ignore', 'pipe', 'pipe'],
      })
      children.add(child)
      const worker = { child, killed: false }
      workers[slot] = worker
      let buffer = ''
      let stderr = ''
      child.stdout!.setEncoding('utf8')
      child.stderr!.setEncoding('utf8')
      child.stderr!.on('data', (chunk: string) => {
        stderr += chunk
      })
      child.stdout!.on('data', (chunk: string) => {
        buffer += chunk
        for (let nl = buffer.indexOf('\n'); nl >= 0; nl = buffer.indexOf('\n')) {
          const line = JSON.parse(buffer.slice(0, nl)) as Line
          buffer = buffer.slice(nl + 1)
          if (line.openFailed) problems.push(`open failed: ${line.code} ${line.message}`)
          else if (line.incident) incidents.push([line.code, line.task])
          else if (line.error) {
            const expected = ['UNKNOWN_USER', 'UNKNOWN_KEY', 'REVOKED_IS_FINAL', 'INVALID_STATE', 'UNKNOWN_ROLE']
            if (line.name !== 'KeygateError' || !expected.includes(line.code)) problems.push(`${line.op}: ${line.code} ${line.message}`)
          } else if (line.op) {
            if (line.deleted !== false) acked.set(line.actor, line)
            if (line.op === 'createKey' || line.op === 'rotateKey') secrets.set(line.newId ?? line.id, line.secret)
            const killsKey = (line.op === 'setState' && line.state === 'revoked') || line.op === 'rotateKey' || (line.op === 'deleteKey' && line.deleted)
            if (killsKey && secrets.has(line.id)) dead.set(secrets.get(line.id)!, line.at)
          }
        }
      })
      child.on('close', (code, signal) => {
        children.delete(child)
        if (!(worker.killed && signal === 'SIGKILL')) problems.push(`a worker ended by itself: code ${code}, signal ${signal}: ${stderr.slice(-500)}`)
        if (/panick|abort/i.test(stderr)) problems.push(`a worker wrote: ${stderr.slice(-500)}`)
        if (!stopping) start(slot)
      })
      // Some are killed during their open.
      if (random() < 0.2) setTimeout(() => kill(worker), Math.floor(random() * 40))
    }
    const kill = (worker: { child: ChildProcess; killed: boolean }) => {
      if (worker.killed || worker.child.exitCode !== null) return
      worker.killed = true
      kills++
      worker.child.kill('SIGKILL')
    }

    for (let slot = 0; slot < 3; slot++) start(slot)
    const lastUsed = new Map<string, number>()
    const deadline = wall() + 12_000
    let nextKill = wall() + 300
    let lateAllowed = 0
    while (wall() < deadline) {
      await sleep(20)
      if (wall() >= nextKill) {
        const worker = workers[Math.floor(random() * workers.length)]
        if (worker) kill(worker)
        nextKill = wall() + 100 + random() * 400
      }
      const now = wall()
      for (const [secret, at] of dead) {
        if (now >= at + 100 && store.isAllowed(secret, 'svc', 'call')) lateAllowed++
      }
      for (const [id, secret] of secrets) {
        store.isAllowed(secret, 'svc', 'call')
        const key = store.getKey(id)
        if (!key) continue // deleted
        const used = key.lastUsedAt?.getTime()
        const before = lastUsed.get(id)
        if (before !== undefined && (used === undefined || used < before)) problems.push(`lastUsedAt of ${id} went back`)
        if (used !== undefined) lastUsed.set(id, used)
      }
    }
    stopping = true
    for (const worker of workers) if (worker) kill(worker)
    while (children.size > 0) await sleep(20)
    store.close()

    assert.deepEqual(problems, [])
    assert.equal(lateAllowed, 0, 'a key revoked or deleted (acknowledged) was allowed here more than 100 ms later')
    assert.deepEqual(incidents, [], 'no background task failed')
    assert.ok(kills >= 10, `only ${kills} workers were killed`)
    assert.ok(acked.size >= 200, `only ${acked.size} calls were acknowledged`)

    const after = open(file)
    assert.deepEqual(after.verifyAudit().ok, true)
    const trail = after.audit({ limit: 1_000_000 })
    const actors = new Set(trail.map((e) => e.actor))
    // A setState to the state the key already had (another process got there first, or it was
    // created in it: a rotated key keeps the old one's state) writes no entry.
    const reached = new Set<string>()
    for (const e of trail) {
      const changes = e.changes as any
      if (changes.state) reached.add(`${e.keyId}/${changes.state[1]}`)
      if (changes.created) reached.add(`${e.keyId}/${changes.created.state}`)
    }
    const missing = [...acked.values()].filter((l) => !actors.has(l.actor) && !(l.op === 'setState' && reached.has(`${l.id}/${l.state}`)))
    assert.deepEqual(missing, [], 'acknowledged calls missing from the audit trail')
    for (const secret of dead.keys()) assert.equal(after.isAllowed(secret, 'svc', 'call'), false)
    for (const [id, used] of lastUsed) {
      const key = after.getKey(id)
      if (key) assert.ok((key.lastUsedAt?.getTime() ?? 0) >= used, `lastUsedAt of ${id} went back after reopening`)
    }
    after.close()
    // Copies killed half-way hold nothing (one transaction); finished ones verify.
    for (const name of fs.readdirSync(copies).filter((f) => f.endsWith('.db'))) {
      const copy = KeyStore.open(path.join(copies, name))
      assert.equal(copy.verifyAudit().ok, true, name)
      copy.close()
    }
  })
})
