// A store dropped without close() is collected, with its memo and its threads: the binding keeps the
// onError reporter alive as long as the native store, and an onError that refers to the store must
// not make that a cycle the garbage collector cannot see through.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { readdirSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

import { KeyStore } from '../index.js'
import { DAY, at, issue, withUser } from './helpers.js'

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

/** Threads of this process (Linux), else undefined. */
function threads(): number | undefined {
  try {
    return readdirSync('/proc/self/task').length
  } catch {
    return undefined
  }
}

describe('a store dropped without close()', () => {
  test('is collected, threads and all, even when its onError refers to it', async () => {
    const STORES = 40
    let collected = 0
    const registry = new FinalizationRegistry(() => {
      collected++
    })
    // Made in a function of their own: the test's async frame keeps no reference to the last one.
    const makeAndDrop = (i: number) => {
      let store: KeyStore
      const onError = (error: Error) => console.error(error.message, store.health().connected)
      store = withUser(KeyStore.inMemory({ onError }))
      const { secret } = issue(store, { expiresAt: at(new Date(), DAY) })
      for (let n = 0; n < 3; n++) assert.equal(store.isAllowed(secret, 'svc', 'call'), true)
      registry.register(store, i)
    }
    const before = threads()
    for (let i = 0; i < STORES; i++) makeAndDrop(i)
    for (let round = 0; round < 100 && collected < STORES; round++) {
      gc()
      await sleep(20)
    }
    assert.equal(collected, STORES, `${collected} of ${STORES} dropped stores collected`)
    // Their native parts (one expiry thread each) go with them.
    for (let round = 0; round < 100 && before !== undefined && (threads() ?? 0) > before + 2; round++) {
      gc()
      await sleep(20)
    }
    if (before !== undefined) assert.ok((threads() ?? 0) <= before + 2, `threads: ${before} before, ${threads()} after`)
  })
})
