// README.md's ```ts samples run as a user copies them (scripts/check-readme.mjs only typechecks
// them): each one that neither listens on a port nor needs a PostgreSQL server runs to its end
// in an empty directory of its own, with `keygate` resolved as an installed package, and every
// line of the form `<expression> // <literal>` (`// true`, `// 'expired'`) must give that value.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'

const ROOT = path.resolve(__dirname, '..')
const TSX = path.join(ROOT, 'node_modules', 'tsx', 'dist', 'cli.mjs')

const samples = [...readFileSync(path.join(ROOT, 'README.md'), 'utf8').matchAll(/```ts\n([\s\S]*?)```/g)].map((m, i) => ({ n: i + 1, code: m[1]! }))
const runnable = samples.filter(({ code }) => !code.includes('.listen(') && !code.includes('postgres://'))

/** A statement whose trailing comment is a plain literal: `store.isAllowed(…)  // true`. */
const STATED = /^(?<expr>[A-Za-z_$][^;]*?)\s*\/\/\s*(?<value>true|false|null|-?\d+|'[^'\\]*')\s*$/

/** The sample with each stated result turned into an assertion; and how many there are. */
function withAssertions(code: string): { code: string; stated: number } {
  let stated = 0
  const lines = code.split('\n').map((line) => {
    const m = STATED.exec(line)
    if (!m) return line
    stated++
    return `__readme_assert.deepStrictEqual(${m.groups!.expr}, ${m.groups!.value}, ${JSON.stringify(line.trim())})`
  })
  return { code: `import __readme_assert from 'node:assert/strict'\n${lines.join('\n')}\n`, stated }
}

describe('README.md samples run, and give the results their comments state', () => {
  let work = ''
  before(() => {
    work = mkdtempSync(path.join(tmpdir(), 'keygate-readme-'))
    mkdirSync(path.join(work, 'node_modules'))
    symlinkSync(ROOT, path.join(work, 'node_modules', 'keygate'), 'dir')
  })
  after(() => rmSync(work, { recursive: true, force: true }))

  test('the samples without a server or a database are found, and some state results', () => {
    assert.ok(runnable.length >= 4, `${runnable.length} runnable samples of ${samples.length}`)
    assert.ok(runnable.reduce((sum, { code }) => sum + withAssertions(code).stated, 0) >= 2, 'no stated result found')
  })

  for (const { n, code } of runnable) {
    const first = code.split('\n').find((line) => line.startsWith('const ') || line.startsWith('store.')) ?? ''
    test(`sample ${n} (${first.slice(0, 60)}…)`, () => {
      const dir = path.join(work, `sample-${n}`)
      mkdirSync(dir)
      const file = path.join(dir, 'sample.ts')
      writeFileSync(file, withAssertions(code).code)
      const r = spawnSync(process.execPath, [TSX, file], { cwd: dir, encoding: 'utf8', timeout: 60_000 })
      assert.equal(r.status, 0, `sample ${n} failed (exit ${r.status}):\n${r.stdout}\n${r.stderr}`)
    })
  }
})
