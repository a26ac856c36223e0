// Shared by the rule and store-file property tests.
import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import fc from 'fast-check'

import { KeyStore } from '../../index.js'
import type { KeygateError } from '../../index.js'
import { T0, assertContractError, attempt } from './contract.js'
import { SPECIALS, VALID_RULES } from './hostile.js'

const codeUnit = fc.integer({ min: 0, max: 0xffff }).map((n) => String.fromCharCode(n))

/** Rules with non-ASCII in them: anywhere in a valid rule, or any string at all. */
export const unicodeRule: fc.Arbitrary<string> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc
      .tuple(fc.constantFrom(...VALID_RULES), fc.constantFrom(...SPECIALS, 'éé', 'Grö', '€', 'КОТ', '\uD83D\uDE00'), fc.nat())
      .map(([rule, special, at]) => rule.slice(0, at % (rule.length + 1)) + special + rule.slice(at % (rule.length + 1))),
  },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 16 }) },
  { weight: 2, arbitrary: fc.string({ unit: codeUnit, maxLength: 8 }) },
  { weight: 1, arbitrary: fc.constantFrom('éé', 'a€:b', 'КОТ:x', '\uD83D\uDE00:x', 'ipé=1', '  éé', 'é'.repeat(300), `a:${'\uD83D\uDE00'.repeat(200)}`) },
)

/** Opens `path`: a store, or STORE_CORRUPT with the file and the directory left as they were. */
export function openOrCorrupt(dir: string, path: string, what: string): KeyStore | null {
  const bytes = readFileSync(path)
  const files = readdirSync(dir).sort()
  const outcome = attempt(() => KeyStore.open(path, { now: T0 }))
  if (outcome.ok) return outcome.value
  assertContractError(outcome.error, { hostileUsed: false } as never, `open(${what})`)
  assert.equal((outcome.error as KeygateError).code, 'STORE_CORRUPT', `open(${what}): ${(outcome.error as Error).message}`)
  assert.deepEqual(readFileSync(path), bytes, `open(${what}) changed the file`)
  assert.deepEqual(readdirSync(dir).sort(), files, `open(${what}) left files behind`)
  return null
}
