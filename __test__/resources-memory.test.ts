// A process near its memory limit (a container's, `ulimit -v`): an argument far longer than any
// the core takes is refused with its error code before it is copied for the core. The copy (the
// whole text as UTF-8) was made first, and an allocation Rust cannot have aborts the process.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import * as path from 'node:path'

const PACKAGE = path.join(__dirname, '..')

// The child holds a 256 MiB text, then lowers its own address-space limit to what it uses plus
// 128 MiB: room for the calls, not for a copy of the text. One line per call: its error code,
// or what it returned.
const CHILD = `
const { KeyStore } = require(${JSON.stringify(PACKAGE)})
const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const store = KeyStore.inMemory()
store.putUser({ id: 'u', rights: ['orders:*'] })
const { key } = store.createKey({ userId: 'u', description: 'd', expiresAt: new Date(Date.now() + 86400e3) })
const big = Buffer.alloc(256 << 20, 'x').toString('latin1')
const used = Number(/VmSize:\\s+(\\d+) kB/.exec(fs.readFileSync('/proc/self/status', 'utf8'))[1]) * 1024
execFileSync('prlimit', ['--pid', String(process.pid), '--as=' + (used + (128 << 20))])
const expires = new Date(Date.now() + 86400e3)
const calls = {
  putUser: () => store.putUser({ id: big }),
  getUser: () => store.getUser(big),
  rights: () => store.putUser({ id: 'v', rights: [big] }),
  description: () => store.createKey({ userId: 'u', description: big, expiresAt: expires }),
  patch: () => store.updateKey(key.id, { description: big }),
  state: () => store.setState(key.id, big),
  actor: () => store.deleteUser('nobody', { actor: big }),
  explainKey: () => store.explainKey(big, 'orders', 'list'),
  audit: () => store.audit({ actor: big }),
  validateRule: () => KeyStore.validateRule(big),
  open: () => KeyStore.open('/tmp/' + big),
}
for (const [name, call] of Object.entries(calls)) {
  let line
  try {
    line = { name, returned: JSON.stringify(call()) ?? 'undefined' }
  } catch (e) {
    line = { name, code: e.code, message: String(e.message).slice(0, 200) }
  }
  process.stdout.write(JSON.stringify(line) + '\\n')
}
process.stdout.write(JSON.stringify({ name: 'still', returned: String(store.getUser('u') !== null) }) + '\\n')
`

const skip = process.platform !== 'linux' ? 'needs Linux (/proc, prlimit)' : spawnSync('prlimit', ['--version']).status !== 0 ? 'no prlimit (util-linux) here' : false

describe('a process near its memory limit', { skip }, () => {
  test('a text far over every limit is refused with its error code before it is copied, and the process lives on', { timeout: 60_000 }, () => {
    const r = spawnSync(process.execPath, ['-e', CHILD], { encoding: 'utf8', timeout: 50_000 })
    assert.equal(r.signal, null, `the process died (${r.signal}): ${r.stderr.slice(-500)}`)
    assert.equal(r.status, 0, r.stderr.slice(-500))
    const lines = new Map(
      r.stdout
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as { name: string; code?: string; message?: string; returned?: string })
        .map((line) => [line.name, line]),
    )
    const expected: Record<string, string> = {
      putUser: 'INVALID_ARGUMENT',
      getUser: 'INVALID_ARGUMENT',
      rights: 'INVALID_RULE',
      description: 'INVALID_ARGUMENT',
      patch: 'INVALID_ARGUMENT',
      state: 'INVALID_STATE',
      actor: 'INVALID_ARGUMENT',
      explainKey: 'INVALID_ARGUMENT',
      audit: 'INVALID_ARGUMENT',
      validateRule: 'INVALID_RULE',
      open: 'INVALID_ARGUMENT',
    }
    for (const [name, code] of Object.entries(expected)) {
      const line = lines.get(name)
      assert.equal(line?.code, code, `${name}: ${JSON.stringify(line)}`)
      assert.match(line?.message ?? '', / is 2684354\d\d characters long; at most 1048576 are taken/, name)
    }
    assert.equal(lines.get('still')?.returned, 'true', 'the store answers after the refusals')
  })
})
