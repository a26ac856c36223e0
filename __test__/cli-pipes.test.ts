// The CLI writing into a pipe whose reader is gone (`keygate … | head -1`, `| true`): it stops
// quietly, and its exit code is still the command's, never a failure turned into a success.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'

const BIN = path.join(__dirname, '..', 'bin', 'keygate.js')

describe('keygate CLI: output into a closed pipe', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'keygate-cli-pipes-'))
  const db = path.join(dir, 'k.db')
  const { KEYGATE_DB: _db, KEYGATE_SECRET: _secret, ...env } = process.env
  before(() => {
    for (const args of [['init'], ['user', 'put', 'alice']]) {
      const r = spawnSync(process.execPath, [BIN, '--db', db, ...args], { env, encoding: 'utf8' })
      assert.equal(r.status, 0, r.stderr)
    }
  })
  after(() => rmSync(dir, { recursive: true, force: true }))

  /** Runs keygate with its stdout and stderr pipes closed by the reader before it writes anything. */
  function closedPipes(args: string[]): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    const child = spawn(process.execPath, [BIN, '--db', db, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] })
    child.stdout.destroy()
    child.stderr.destroy()
    return new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })))
  }

  test('the exit code is the command’s: 0, 1, 2 or 3, with text or --json', async () => {
    const cases: [string[], number][] = [
      [['key', 'list'], 0],
      [['key', 'show', 'key_nope'], 1],
      [['check', 'kg_nope', 'session', 'getInfo'], 1],
      [['key', 'list', '--state', 'sleeping'], 2],
      [['key', 'suspend', 'key_nope'], 3],
    ]
    for (const [args, expected] of cases) {
      for (const form of [args, ['--json', ...args]]) {
        const r = await closedPipes(form)
        assert.equal(r.signal, null, form.join(' '))
        assert.equal(r.code, expected, `${form.join(' ')}: exit ${r.code}`)
      }
    }
  })
})
