// Property tests at the JS surface, part two (issue 10): rules with any Unicode in them, and
// store files with anything in them. The contract: "Rules are ASCII: any other character is
// INVALID_RULE (never a crash)"; a foreign or damaged file is STORE_CORRUPT and left byte
// for byte. Where a defect aborts the process, the first tests name the input from a child
// process; the tests after them make the same calls in this process, as users would, and a
// process abort fails the file.
import { after, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'

import { runs } from './support/contract.js'
import { openOrCorrupt, unicodeRule } from './support/rules.js'
import { RuleOracle } from './support/oracle.js'
import type { OracleMethod } from './support/oracle.js'

const METHODS: OracleMethod[] = ['validateRule', 'putRole', 'putUser', 'createKey', 'updateKey']

describe('rules with any Unicode in them', () => {
  const oracle = new RuleOracle()
  after(() => oracle.close())

  test('(in a child process, to name the input) every rule-taking call answers or throws INVALID_RULE, and the process lives', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...METHODS), unicodeRule, async (method, rule) => {
        const answer = await oracle.ask(method, rule)
        assert.ok(!('died' in answer), `${method} with the rule ${JSON.stringify(rule)} killed the process (${'died' in answer && answer.died})`)
        if ('died' in answer || answer.ok) return
        assert.ok(answer.keygate, `${method} threw ${answer.name}: ${answer.message}`)
        assert.equal(answer.code, 'INVALID_RULE', `${method} threw ${answer.code}: ${answer.message}`)
      }),
      runs(200),
    )
  })
})

describe('store files with anything in them', () => {
  const dir = mkdtempSync(join(tmpdir(), 'keygate-prop-files-'))
  after(() => rmSync(dir, { recursive: true, force: true }))
  let n = 0

  test('arbitrary bytes (some behind a SQLite header): STORE_CORRUPT, the file untouched; an empty file is a new store', () => {
    const header = Buffer.from('SQLite format 3\0', 'latin1')
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 4096 }), fc.boolean(), (bytes, withHeader) => {
        const path = join(dir, `garbage-${n++}.db`)
        const content = withHeader ? Buffer.concat([header, Buffer.from(bytes)]) : Buffer.from(bytes)
        writeFileSync(path, content)
        const store = openOrCorrupt(dir, path, `${content.length} arbitrary bytes`)
        if (store !== null) {
          store.close()
          assert.equal(content.length, 0, 'only an empty file opens as a (new) store')
        }
      }),
      runs(80),
    )
  })
})
