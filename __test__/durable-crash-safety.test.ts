// Crash safety: a writer process (support/crash-writer.js) killed with SIGKILL at random
// instants; after each kill the store holds every acknowledged change and no half of one.
import { describe, test } from 'node:test'
import type { TestContext } from 'node:test'
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import { spawn } from 'node:child_process'

import type { KeyStore } from '../index.js'
import { NODE, childScript, children, open, sleep, storePath } from './support/durable.js'

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

  test('15 rounds of a writer killed mid-stream; after each, the store holds every acknowledged change and no half of one', {
    timeout: 60_000,
  }, async (t: TestContext) => {
    const file = storePath()
    let model = emptyModel()
    const rounds = 15
    let acks = 0
    let inflightApplied = 0
    let inflightLost = 0
    let killedBeforeReady = 0

    for (let round = 0; round < rounds; round++) {
      const child = spawn(NODE, [childScript('crash-writer'), file, String(round)], { stdio: ['ignore', 'pipe', 'pipe'] })
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
      // 'close', not 'exit': the acks printed just before the kill may still be in the pipe at 'exit'.
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
        child.on('close', (code, signal) => {
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
