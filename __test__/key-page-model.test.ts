// listKeysPage against a model, under change: pages interleaved with creates, deletes (the
// cursor's own key included), state changes, rotations, user deletions, a second handle's writes
// (a second KeyStore on the same file or database), frozen clocks with ties and clocks set back.
// Each page must be exactly what the model says: the first `limit` keys matching the filter, now,
// placed after the cursor's place (creation instant, then creation order), newest first; `next`
// is null exactly on the page with the last such key.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'

import { KeygateError } from '../index.js'
import type { IssuedKey, KeyFilter, KeyState, KeyStore, StoreOptions } from '../index.js'
import { DAY, HOUR, SECOND, T0, at, seededRandom } from './helpers.js'
import { STORE_KINDS } from './support/stores.js'

/** Frozen at T0, and nothing purged behind the test's back. */
const FROZEN: StoreOptions = { now: T0, purgeExpiredAfterDays: 1e6 }

interface ModelKey {
  id: string
  userId: string
  state: KeyState
  /** The place in the newest-first order: creation instant, then creation order. */
  createdAt: number
  seq: number
}

const USERS = ['u1', 'u2', 'u3']

/** Newest first: later instant first, then the later made. */
function newestFirst(a: ModelKey, b: ModelKey): number {
  return b.createdAt - a.createdAt || b.seq - a.seq
}

/** True when `k` is listed after the place `p`. */
function after(p: ModelKey, k: ModelKey): boolean {
  return newestFirst(p, k) < 0
}

function matches(filter: KeyFilter, k: ModelKey): boolean {
  return (filter.userId === undefined || k.userId === filter.userId) && (filter.state === undefined || k.state === filter.state)
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

for (const kind of STORE_KINDS) {
  describe(`listKeysPage model: ${kind.name}`, kind.options, () => {
    const seeds = kind.name === 'memory' ? [1, 2, 3, 4, 5, 6, 7, 8] : kind.name === 'sqlite' ? [11, 12, 13] : [21, 22]

    for (const seed of seeds) {
      test(`seed ${seed}: every page is the model's, under creates, deletes, state changes, rotations, another handle's writes and clocks moved both ways`, async () => {
        const rnd = seededRandom(seed)
        const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!
        const place = kind.place()
        const a = place.open(FROZEN)
        // The second handle: another KeyStore on the same file or database (the same store in memory).
        const b = kind.durable ? place.open(FROZEN) : a
        const handles = [a, b]
        const clocks = new Map<KeyStore, number>([
          [a, T0.getTime()],
          [b, T0.getTime()],
        ])
        const model = new Map<string, ModelKey>()
        let made = 0
        const stats = { pages: 0, walks: 0, ops: 0, madeInThePast: 0, pastShownLater: 0 }
        for (const user of USERS) a.putUser({ id: user, rights: ['*:*'] })

        const create = (h: KeyStore) => {
          const userId = pick(USERS)
          const state: KeyState = rnd() < 0.3 ? 'suspended' : 'active'
          const { key } = h.createKey({ userId, description: '', state, expiresAt: at(h.now(), DAY) })
          assert.equal(key.createdAt.getTime(), clocks.get(h))
          model.set(key.id, { id: key.id, userId, state, createdAt: key.createdAt.getTime(), seq: made++ })
          return key.id
        }

        /** Waits until `a` has applied what `b` wrote: its listing is the model's, in the model's order. */
        const settle = async () => {
          const expected = [...model.values()].sort(newestFirst).map((k) => `${k.id}:${k.state}`)
          for (let tries = 0; ; tries++) {
            const listed = a.listKeys().map((k) => `${k.id}:${k.state}`)
            if (JSON.stringify(listed) === JSON.stringify(expected)) return
            if (tries > 400) assert.deepEqual(listed, expected, `seed ${seed}: the store's listing is not the model's`)
            await sleep(5)
          }
        }

        /** One random change, through either handle. */
        const change = (cursorKey: ModelKey | undefined) => {
          stats.ops++
          const h = pick(handles)
          const live = [...model.values()]
          const r = rnd()
          if (r < 0.3 || live.length === 0) {
            create(h)
          } else if (r < 0.45) {
            // Delete a key, the cursor's own half the time.
            const victim = cursorKey !== undefined && model.has(cursorKey.id) && rnd() < 0.5 ? cursorKey : pick(live)
            assert.equal(h.deleteKey(victim.id), true)
            model.delete(victim.id)
          } else if (r < 0.65) {
            const k = pick(live)
            if (k.state === 'revoked') return
            const to: KeyState = rnd() < 0.2 ? 'revoked' : k.state === 'active' ? 'suspended' : 'active'
            h.setState(k.id, to)
            k.state = to
          } else if (r < 0.75) {
            const k = pick(live)
            if (k.state === 'revoked') return
            let rotated: IssuedKey
            try {
              rotated = h.rotateKey(k.id, { overlapSeconds: 60 })
            } catch (error) {
              // An expired key (its handle's clock moved past its expiry) is not rotated; nothing changes.
              assert.ok(error instanceof KeygateError, String(error))
              return
            }
            const { key } = rotated
            model.set(key.id, { id: key.id, userId: k.userId, state: key.state, createdAt: key.createdAt.getTime(), seq: made++ })
            assert.equal(key.createdAt.getTime(), clocks.get(h))
          } else if (r < 0.8) {
            const user = pick(USERS)
            h.deleteUser(user)
            for (const [id, k] of model) if (k.userId === user) model.delete(id)
            h.putUser({ id: user, rights: ['*:*'] })
          } else {
            // The creating handle's clock: a tie (unchanged), a step forward, or set back.
            const now = clocks.get(h)!
            const moves = [0, SECOND, -HOUR, -DAY, Math.floor((rnd() - 0.5) * 2 * DAY)]
            const to = now + pick(moves)
            h.setNow(new Date(to))
            clocks.set(h, to)
            if (to < now) {
              stats.madeInThePast++
              create(h)
            }
          }
        }

        for (let i = 0; i < 30; i++) create(pick(handles))
        const walks = kind.name === 'memory' ? 40 : 12
        for (let w = 0; w < walks; w++) {
          stats.walks++
          const filter: KeyFilter = {}
          if (rnd() < 0.4) filter.userId = pick([...USERS, 'nobody'])
          if (rnd() < 0.4) filter.state = pick(['active', 'suspended', 'revoked'] as const)
          const limit = 1 + Math.floor(rnd() * 5)
          await settle()
          let cursor: ModelKey | undefined
          let afterText: string | undefined
          const shown = new Set<string>()
          const firstPageAt = made
          for (let pageNo = 0; ; pageNo++) {
            const expectedAll = [...model.values()].filter((k) => matches(filter, k) && (cursor === undefined || after(cursor, k))).sort(newestFirst)
            const page = a.listKeysPage({ ...filter, limit, after: afterText })
            stats.pages++
            const ids = page.keys.map((k) => k.id)
            const where = `seed ${seed}, walk ${w} (${JSON.stringify(filter)}, limit ${limit}), page ${pageNo}`
            assert.deepEqual(
              ids,
              expectedAll.slice(0, limit).map((k) => k.id),
              `${where}: not the model's page`,
            )
            assert.equal(page.next === null, expectedAll.length <= limit, `${where}: next is ${page.next === null ? 'null' : 'set'}`)
            for (const id of ids) {
              assert.ok(!shown.has(id), `${where}: ${id} repeated`)
              shown.add(id)
              // A key made after the first page, with a clock set back to before the cursor.
              if (pageNo > 0 && model.get(id)!.seq >= firstPageAt) stats.pastShownLater++
            }
            for (const k of page.keys) if (filter.state !== undefined) assert.equal(k.state, filter.state, `${where}: a key of another state`)
            if (page.next === null) break
            cursor = { ...model.get(ids.at(-1)!)! }
            afterText = page.next
            const changes = Math.floor(rnd() * 4)
            for (let c = 0; c < changes; c++) change(cursor)
            await settle()
            assert.ok(pageNo < 500, 'paging does not end')
          }
          const between = Math.floor(rnd() * 4)
          for (let c = 0; c < between; c++) change(undefined)
        }
        if (process.env.KEYGATE_MODEL_STATS) console.log(kind.name, seed, stats)
        assert.ok(stats.pages > stats.walks, 'the walks paged')
      })
    }

    test('a handle catching up mid-page never shows a key whose state left the filter', kind.options, async () => {
      if (!kind.durable) return
      const place = kind.place()
      const a = place.open(FROZEN)
      const b = place.open(FROZEN)
      a.putUser({ id: 'u', rights: ['*:*'] })
      const ids: string[] = []
      for (let i = 0; i < 500; i++) ids.push(a.createKey({ userId: 'u', description: '', expiresAt: at(T0, DAY) }).key.id)
      for (let i = 0; i < 50; i++) {
        const id = ids[i]!
        // Committed by b; a applies it from its background thread, perhaps while its page reads uses.
        b.setState(id, 'suspended')
        for (const k of a.listKeysPage({ state: 'active', limit: 1000 }).keys) assert.equal(k.state, 'active', `page ${i}: ${k.id}`)
        b.setState(id, 'active')
        for (const k of a.listKeysPage({ state: 'suspended', limit: 1000 }).keys) assert.equal(k.state, 'suspended', `page ${i}: ${k.id}`)
      }
    })
  })
}
