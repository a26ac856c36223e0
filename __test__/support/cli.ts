// The keygate command line as users run it: the real bin/keygate.js in a child process, on a
// store in a temporary directory; what a run printed and how it exited, checked plainly.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'

export const BIN = path.join(__dirname, '..', '..', 'bin', 'keygate.js')

export interface Run {
  code: number | null
  stdout: string
  stderr: string
}

export interface RunOptions {
  env?: Record<string, string | undefined>
  input?: string
  cwd?: string
}

/** A temporary directory with a store path; `kg` runs the CLI on that store. */
export function workspace() {
  const dir = mkdtempSync(path.join(tmpdir(), 'keygate-cli-'))
  const db = path.join(dir, 'keygate.db')
  const kg = (args: string[], options: RunOptions = {}) => run(args, { ...options, env: { KEYGATE_DB: db, ...options.env }, cwd: options.cwd ?? dir })
  return { dir, db, kg, cleanup: () => rmSync(dir, { recursive: true, force: true }) }
}

export function run(args: string[], options: RunOptions = {}): Promise<Run> {
  const env: Record<string, string | undefined> = { ...process.env, KEYGATE_ACTOR: 'tester' }
  for (const name of ['KEYGATE_DB', 'KEYGATE_SECRET', 'KEYGATE_MAX_LIFETIME_DAYS']) delete env[name]
  Object.assign(env, options.env)
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { env, cwd: options.cwd, stdio: ['pipe', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c))
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c))
    child.on('error', reject)
    child.on('close', (code) => resolve({ code, stdout, stderr }))
    child.stdin.end(options.input ?? '')
  })
}

export function ok(r: Run, what = 'command'): Run {
  assert.equal(r.code, 0, `${what} failed (exit ${r.code}):\n${r.stderr}${r.stdout}`)
  return r
}

export function json<T>(r: Run): T {
  try {
    return JSON.parse(r.stdout) as T
  } catch {
    assert.fail(`stdout is not JSON (exit ${r.code}):\n${r.stdout}\n${r.stderr}`)
  }
}

/** A usage error: exit 2, a plain one-line message on stderr, no stack trace. */
export function usage(r: Run, ...parts: string[]): void {
  assert.equal(r.code, 2, `expected exit 2, got ${r.code}:\n${r.stderr}${r.stdout}`)
  assert.match(r.stderr, /^error: /)
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace')
  for (const part of parts) assert.ok(r.stderr.includes(part), `stderr ${JSON.stringify(r.stderr)} should say ${JSON.stringify(part)}`)
}

/** A keygate error: exit 3 and `error: <message> (<CODE>)`. */
export function keygateError(r: Run, code: string, ...parts: string[]): void {
  assert.equal(r.code, 3, `expected exit 3, got ${r.code}:\n${r.stderr}${r.stdout}`)
  assert.match(r.stderr, new RegExp(`^error: .+ \\(${code}\\)\\n$`))
  for (const part of parts) assert.ok(r.stderr.includes(part), `stderr ${JSON.stringify(r.stderr)} should say ${JSON.stringify(part)}`)
}

export function jsonError(r: Run, exit: number, code: string): void {
  assert.equal(r.code, exit, `expected exit ${exit}, got ${r.code}:\n${r.stderr}${r.stdout}`)
  const body = json<{ error: { code: string; message: string } }>(r)
  assert.equal(body.error.code, code)
  assert.equal(typeof body.error.message, 'string')
  assert.ok(body.error.message.length > 0)
}

export const SECRET_LINE = /^SECRET \(shown once, store it now\): (\S+)$/m

/** `key create` in text form: returns the key id and the secret from the marked line. */
export async function createKey(kg: (a: string[], o?: RunOptions) => Promise<Run>, args: string[]) {
  const r = ok(await kg(['key', 'create', ...args]), 'key create')
  const secret = SECRET_LINE.exec(r.stdout)?.[1]
  assert.ok(secret, `no SECRET line in:\n${r.stdout}`)
  const id = /created key (key_\w+)/.exec(r.stdout)?.[1]
  assert.ok(id, `no key id in:\n${r.stdout}`)
  return { id, secret, out: r }
}
