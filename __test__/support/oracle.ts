// A child process that makes keygate calls for the parent, so that a call which aborts the
// process (a panic in the core) fails one property with its input instead of killing the
// test file before it can say which input it was.
import { spawn } from 'node:child_process'
import type { ChildProcessWithoutNullStreams } from 'node:child_process'
import { join } from 'node:path'
import { createInterface } from 'node:readline'

const ROOT = join(__dirname, '..', '..')

// Runs in the child: one JSON request per line, one JSON answer per line.
const CHILD = `
const { KeyStore, KeygateError } = require(${JSON.stringify(join(ROOT, 'index.js'))})
const store = KeyStore.inMemory({ now: new Date('2025-03-01T09:00:00.000Z') })
store.putUser({ id: 'u0', rights: ['*:*'] })
const expiresAt = new Date('2025-03-02T09:00:00.000Z')
const keyId = store.createKey({ userId: 'u0', description: '', expiresAt }).key.id
const calls = {
  validateRule: (rule) => KeyStore.validateRule(rule),
  putRole: (rule) => store.putRole({ name: 'role0', rights: [rule] }).rights,
  putUser: (rule) => store.putUser({ id: 'u1', rights: [rule] }).rights,
  createKey: (rule) => store.createKey({ userId: 'u0', description: '', expiresAt, rules: [rule] }).key.rules,
  updateKey: (rule) => store.updateKey(keyId, { rules: [rule] }).rules,
}
require('node:readline').createInterface({ input: process.stdin }).on('line', (line) => {
  const { method, rule } = JSON.parse(line)
  let answer
  try {
    answer = { ok: true, value: calls[method](rule) }
  } catch (error) {
    answer = { ok: false, keygate: error instanceof KeygateError, name: error && error.name, code: error && error.code, message: String(error && error.message) }
  }
  process.stdout.write(JSON.stringify(answer) + '\\n')
})
`

export type OracleMethod = 'validateRule' | 'putRole' | 'putUser' | 'createKey' | 'updateKey'
export type OracleAnswer = { ok: true; value: unknown } | { ok: false; keygate: boolean; name?: string; code?: string; message: string } | { died: string }

export class RuleOracle {
  #child: ChildProcessWithoutNullStreams | null = null
  #pending: ((answer: OracleAnswer) => void) | null = null

  #start(): ChildProcessWithoutNullStreams {
    const child = spawn(process.execPath, ['-e', CHILD], { cwd: ROOT, stdio: 'pipe' })
    child.stderr.resume() // a panic message is expected here; the answer says how the child died
    createInterface({ input: child.stdout }).on('line', (line) => {
      const resolve = this.#pending
      this.#pending = null
      resolve?.(JSON.parse(line) as OracleAnswer)
    })
    child.on('exit', (code, signal) => {
      if (this.#child === child) this.#child = null
      const resolve = this.#pending
      this.#pending = null
      resolve?.({ died: signal ?? `exit code ${code}` })
    })
    return child
  }

  ask(method: OracleMethod, rule: string): Promise<OracleAnswer> {
    this.#child ??= this.#start()
    const child = this.#child
    return new Promise((resolve) => {
      this.#pending = resolve
      child.stdin.write(`${JSON.stringify({ method, rule })}\n`)
    })
  }

  close(): void {
    this.#child?.kill()
    this.#child = null
  }
}
