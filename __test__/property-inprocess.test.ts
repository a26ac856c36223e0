// Property tests at the JS surface, part three (issue 10): the calls of
// property-rules.test.ts made in this process, as users make them. The contract: "the process
// never aborts" — so an abort here fails this file (property-rules.test.ts names the input
// from a child process; this file is separate so that its abort cannot hide those results).
import { after, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'

import { KeyStore, KeygateError } from '../index.js'
import { T0, assertContractError, attempt, makeWorlds, runs } from './support/contract.js'
import type { StringDesc } from './support/hostile.js'
import { callOnAll, methodSpecs } from './support/methods.js'
import { openOrCorrupt, unicodeRule } from './support/rules.js'

describe('rules with any Unicode in them, in this process', () => {
  test('KeyStore.validateRule(any string) in this process: the normalised (ASCII) rule or INVALID_RULE', () => {
    fc.assert(
      fc.property(unicodeRule, (rule) => {
        const outcome = attempt(() => KeyStore.validateRule(rule))
        if (outcome.ok) {
          assert.match(outcome.value, /^[\x20-\x7e]+$/, 'a valid rule is ASCII')
          return
        }
        assert.ok(outcome.error instanceof KeygateError, `validateRule threw ${String(outcome.error)}`)
        assert.equal(outcome.error.code, 'INVALID_RULE')
      }),
      runs(200),
    )
  })

  test('putRole / putUser / createKey / updateKey with any Unicode rule in this process: an answer or INVALID_RULE, and a throw changes nothing', () => {
    const ruleDesc = unicodeRule as fc.Arbitrary<StringDesc>
    const specs = methodSpecs(ruleDesc, ruleDesc).filter((s) => ['putRole', 'putUser', 'createKey', 'updateKey'].includes(s.name))
    const worlds = makeWorlds()
    try {
      for (const spec of specs)
        fc.assert(
          fc.property(spec.args, (descs) => callOnAll(spec, descs, worlds.both)),
          runs(60),
        )
    } finally {
      worlds.close()
    }
  })
})

describe('a real store file with bytes flipped (last: a damaged rule may abort the process)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'keygate-prop-flips-'))
  after(() => rmSync(dir, { recursive: true, force: true }))
  let n = 0
  test('a real store with bytes flipped: opens with a consistent state, or STORE_CORRUPT with the file untouched', () => {
    const original = join(dir, 'original.db')
    const seed = KeyStore.open(original, { now: T0 })
    seed.putRole({ name: 'role0', rights: ['session:*', 'data:entity???Record'] })
    seed.putUser({ id: 'u0', rights: ['*:*'], roles: ['role0'] })
    seed.createKey({ userId: 'u0', description: 'flip me', expiresAt: new Date(T0.getTime() + 86_400_000), rules: ['session:*', 'ip=10.0.0.0/8'] })
    seed.close()
    for (const side of readdirSync(dir).filter((f) => f.startsWith('original.db-'))) rmSync(join(dir, side))
    const pristine = readFileSync(original)
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(pristine.length - 1), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 8 }), (flips) => {
        const path = join(dir, `flipped-${n++}.db`)
        const bytes = Buffer.from(pristine)
        for (const [at, xor] of flips) bytes[at]! ^= xor
        writeFileSync(path, bytes)
        const store = openOrCorrupt(dir, path, `a store with ${flips.length} byte(s) flipped`)
        if (store === null) return
        try {
          // Whatever it read, it answers as documented or throws a KeygateError.
          const reads: Array<() => unknown> = [() => store.listUsers(), () => store.listRoles(), () => store.listKeys(), () => store.verifyAudit()]
          for (const read of reads) {
            const outcome = attempt(read)
            if (!outcome.ok) assertContractError(outcome.error, { hostileUsed: false } as never, 'a read of a damaged store')
          }
        } finally {
          store.close()
        }
      }),
      runs(80),
    )
  })
})
