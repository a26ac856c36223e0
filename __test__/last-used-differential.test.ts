// lastUsedAt against a model: "the latest allowed use of each key". Random interleavings (a
// seeded generator, so a failure replays) of checks through isAllowed and isAllowedDav (repeated,
// so the memo answers some of them), explain and explainDav (never a use), denied checks (never a
// use), a frozen clock moved by setNow (now and then backwards: lastUsedAt never goes back),
// admin changes from two handles on one store (updateKey, setState, rotateKey, putUser changing
// rights), checks through both, getKey/listKeys, close and reopen, and at the end KeyStore.copy.
// The first handle must show, at every step, no less than its own uses and what it showed
// before, and no more than the latest use (the second handle's uses reach it through the store,
// within about a second); once both are closed (close() flushes every use) and opened again,
// both show the model exactly.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'

import { KeyStore } from '../index.js'
import type { ApiKey } from '../index.js'
import { DAY, T0, at, seededRandom } from './helpers.js'
import { POSTGRES, SQLITE } from './support/stores.js'
import type { Place, StoreKind } from './support/stores.js'

const WIDE = ['svc:*', 'dav=* docs/*']
const NARROW = ['svc:read', 'dav=GET docs/*']

interface Tracked {
  id: string
  secret: string
  /** The latest allowed use (through either handle), in ms, or null. */
  lastUsed: number | null
  /**
   * What the first handle must show at least: its own uses, and what was flushed when both
   * handles were last closed. The second handle's later uses reach it through the store
   * (flushed about once a second), so until then it shows something in between.
   */
  known: number | null
  /** What the first handle showed last: it never goes back. */
  shownByA: number | null
  /** Revoked (by a rotation without overlap): final, no longer changed. */
  revoked: boolean
}

function run(kind: StoreKind, seed: number, steps: number): void {
  const random = seededRandom(seed)
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!
  const place: Place = kind.place()
  let now = T0.getTime()
  let a = place.open({ now: new Date(now) })
  let b = place.open({ now: new Date(now) })
  const log: string[] = []
  const keys: Tracked[] = []
  a.putUser({ id: 'svc', rights: WIDE })
  const issue = (): void => {
    const issued = a.createKey({ userId: 'svc', description: 'k', expiresAt: at(T0, 30 * DAY) })
    keys.push({ id: issued.key.id, secret: issued.secret, lastUsed: null, known: null, shownByA: null, revoked: false })
  }
  for (let i = 0; i < 4; i++) issue()

  const where = (what: string): string => `seed ${seed}, ${kind.name}: ${what}\n  after: ${log.slice(-12).join('; ')}`
  const shown = (key: ApiKey | null | undefined): number | null => key?.lastUsedAt?.getTime() ?? null
  /** Every key as the model has it: exactly, on a store both handles have flushed to. */
  const expectAll = (store: KeyStore, who: string): void => {
    // An admin call catches up with every change committed before it (the other handle's
    // watcher would, a few ms later).
    store.putRole({ name: 'barrier', rights: [] })
    const listed = new Map(store.listKeys().map((k) => [k.id, shown(k)]))
    for (const k of keys) {
      assert.equal(listed.get(k.id), k.lastUsed, where(`${who} listKeys: lastUsedAt of ${k.id}`))
      assert.equal(shown(store.getKey(k.id)), k.lastUsed, where(`${who} getKey: lastUsedAt of ${k.id}`))
    }
  }
  /** What the first handle shows of `k`: no less than it knows, no more than the latest use, never back. */
  const expectA = (k: Tracked, value: number | null, what: string): void => {
    const n = (v: number | null): number => v ?? -Infinity
    assert.ok(
      n(value) >= n(k.known) && n(value) >= n(k.shownByA) && n(value) <= n(k.lastUsed),
      where(`${what}: lastUsedAt of ${k.id} is ${value}; known ${k.known}, shown before ${k.shownByA}, latest use ${k.lastUsed}`),
    )
    k.shownByA = value
  }
  /** Both handles closed (every use flushed) and opened again: both show the model exactly. */
  const sync = (): void => {
    a.close()
    b.close()
    a = place.open({ now: new Date(now) })
    b = place.open({ now: new Date(now) })
    expectAll(a, 'reopened')
    expectAll(b, 'the second handle reopened')
    for (const k of keys) {
      k.known = k.lastUsed
      k.shownByA = k.lastUsed
    }
  }
  const use = (k: Tracked, allowed: boolean, byA: boolean): void => {
    if (!allowed) return
    k.lastUsed = Math.max(k.lastUsed ?? -Infinity, now)
    if (byA) k.known = Math.max(k.known ?? -Infinity, now)
  }

  for (let step = 0; step < steps; step++) {
    const r = random()
    const k = pick(keys)
    if (r < 0.3) {
      const api = pick(['read', 'write'])
      const times = 1 + Math.floor(random() * 3)
      const byA = random() < 0.8
      for (let i = 0; i < times; i++) use(k, (byA ? a : b).isAllowed(k.secret, 'svc', api), byA)
      log.push(`isAllowed ${k.id} ${api} x${times} (${byA ? 'a' : 'b'})`)
    } else if (r < 0.4) {
      const method = pick(['GET', 'PUT'])
      const path = pick(['docs/a', 'other/a'])
      const times = 1 + Math.floor(random() * 3)
      for (let i = 0; i < times; i++) use(k, a.isAllowedDav(k.secret, method, path), true)
      log.push(`isAllowedDav ${k.id} ${method} ${path} x${times}`)
    } else if (r < 0.45) {
      a.explain(k.secret, 'svc', pick(['read', 'write']))
      a.explainDav(k.secret, 'GET', 'docs/a')
      log.push(`explain ${k.id}`)
    } else if (r < 0.6) {
      // Mostly forwards; now and then back (a use then is no later than one already recorded).
      now += random() < 0.1 ? -Math.floor(random() * 5000) : 1 + Math.floor(random() * 3000)
      a.setNow(new Date(now))
      b.setNow(new Date(now))
      log.push(`setNow +${now - T0.getTime()}`)
    } else if (r < 0.65) {
      if (!k.revoked) {
        const who = random() < 0.5 ? a : b
        who.updateKey(k.id, { description: `d${step}` })
        log.push(`updateKey ${k.id} (${who === a ? 'a' : 'b'})`)
      }
    } else if (r < 0.7) {
      const state = pick(['active', 'suspended', 'active'] as const)
      if (!k.revoked) {
        const who = random() < 0.5 ? a : b
        who.setState(k.id, state)
        log.push(`setState ${k.id} ${state} (${who === a ? 'a' : 'b'})`)
      }
    } else if (r < 0.73) {
      const current = a.getKey(k.id)!
      if (current.state === 'active' && current.expiresAt!.getTime() > now) {
        const overlapSeconds = pick([0, 60])
        const issued = a.rotateKey(k.id, { overlapSeconds })
        k.revoked = overlapSeconds === 0
        keys.push({ id: issued.key.id, secret: issued.secret, lastUsed: null, known: null, shownByA: null, revoked: false })
        log.push(`rotateKey ${k.id} overlap ${overlapSeconds} -> ${issued.key.id}`)
      }
    } else if (r < 0.77) {
      const rights = pick([WIDE, NARROW])
      ;(random() < 0.5 ? a : b).putUser({ id: 'svc', rights })
      log.push(`putUser ${rights.join(',')}`)
    } else if (r < 0.87) {
      expectA(k, shown(a.getKey(k.id)), 'getKey')
      log.push(`getKey ${k.id}`)
    } else if (r < 0.93) {
      const listed = new Map(a.listKeys().map((key) => [key.id, shown(key)]))
      for (const key of keys) expectA(key, listed.get(key.id) ?? null, 'listKeys')
      log.push('listKeys')
    } else if (r < 0.98) {
      if (random() < 0.5) {
        // This handle alone: every use of it flushed, and still at least what it knew.
        a.close()
        a = place.open({ now: new Date(now) })
        const listed = new Map(a.listKeys().map((key) => [key.id, shown(key)]))
        for (const key of keys) expectA(key, listed.get(key.id) ?? null, 'reopened listKeys')
        log.push('close, reopen a')
      } else {
        sync()
        log.push('close, reopen both')
      }
    } else {
      if (keys.length < 12) issue()
      log.push('createKey')
    }
  }
  sync()
  const copy = KeyStore.inMemory({ now: new Date(now) })
  KeyStore.copy(a, copy)
  expectAll(copy, 'a copy')
  copy.close()
  a.close()
  b.close()
}

const SEEDS = [1, 2, 3, 4, 5, 6]

for (const kind of [SQLITE, POSTGRES]) {
  describe(`lastUsedAt against a model of the latest allowed use: ${kind.name}`, kind.options, () => {
    for (const seed of SEEDS) {
      test(`seed ${seed}`, () => run(kind, seed, 300))
    }
  })
}
