// Stores in other processes: a store server driven over stdin/stdout (store-server.js),
// and a probe that tries KeyStore.open on files and reports what happened (open-probe.js).
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { spawn, spawnSync } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'

import type { StoreOptions } from '../../index.js'
import { NODE, childScript, children } from './durable.js'

// ---- a store in another process, driven over stdin/stdout (store-server.js) --

export interface Reply {
  id?: number
  ready?: boolean
  ok?: boolean
  watching?: boolean
  seen?: boolean
  result?: any
  code?: string
  message?: string
  at: number
  polls?: number
}

function encodeArg(value: unknown): unknown {
  if (value instanceof Date) return { $date: value.getTime() }
  if (Array.isArray(value)) return value.map(encodeArg)
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, encodeArg(v)]))
  }
  return value
}

export class StoreProcess {
  private buffer = ''
  private readonly messages: Reply[] = []
  private waiters: Array<() => void> = []
  private nextId = 1
  stderr = ''
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>

  private constructor(readonly child: ChildProcess) {
    children.add(child)
    child.stdout!.setEncoding('utf8')
    child.stderr!.setEncoding('utf8')
    child.stdout!.on('data', (chunk: string) => {
      this.buffer += chunk
      for (let nl = this.buffer.indexOf('\n'); nl >= 0; nl = this.buffer.indexOf('\n')) {
        const line = this.buffer.slice(0, nl)
        this.buffer = this.buffer.slice(nl + 1)
        if (line.trim() !== '') this.messages.push(JSON.parse(line) as Reply)
      }
      const waiters = this.waiters
      this.waiters = []
      for (const wake of waiters) wake()
    })
    child.stderr!.on('data', (chunk: string) => {
      this.stderr += chunk
    })
    this.exited = new Promise((resolve) => {
      child.on('close', (code, signal) => {
        children.delete(child)
        resolve({ code, signal })
        const waiters = this.waiters
        this.waiters = []
        for (const wake of waiters) wake()
      })
    })
  }

  /** Starts a store server on `file`; resolves once the store is open. */
  static async start(file: string, options?: StoreOptions): Promise<StoreProcess> {
    const args = [childScript('store-server'), file]
    if (options) args.push(JSON.stringify(encodeArg(options)))
    const p = new StoreProcess(spawn(NODE, args, { stdio: ['pipe', 'pipe', 'pipe'] }))
    const ready = await p.next((m) => m.ready !== undefined, 15_000)
    if (!ready.ready) throw new Error(`the child could not open ${file}: ${ready.code} ${ready.message}`)
    return p
  }

  /** The first message (not yet taken) that matches, taking it. */
  next(match: (m: Reply) => boolean, timeoutMs = 15_000): Promise<Reply> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no reply from the child within ${timeoutMs} ms; stderr: ${this.stderr}`)), timeoutMs)
      const look = () => {
        const i = this.messages.findIndex(match)
        if (i >= 0) {
          clearTimeout(timer)
          resolve(this.messages.splice(i, 1)[0]!)
        } else if (this.child.exitCode !== null || this.child.signalCode !== null) {
          clearTimeout(timer)
          reject(new Error(`the child exited (${this.child.exitCode ?? this.child.signalCode}); stderr: ${this.stderr}`))
        } else {
          this.waiters.push(look)
        }
      }
      look()
    })
  }

  send(op: string, args: unknown[] = [], extra: Record<string, unknown> = {}): number {
    const id = this.nextId++
    this.child.stdin!.write(`${JSON.stringify({ id, op, args: encodeArg(args), ...extra })}\n`)
    return id
  }

  reply(id: number): Promise<Reply> {
    return this.next((m) => m.id === id && !m.watching)
  }

  async call(op: string, ...args: unknown[]): Promise<Reply> {
    return this.reply(this.send(op, args))
  }

  /** Asks the child to check `secret` in a tight loop until the answer is `expect`; resolves once it loops. */
  async watch(secret: string, expect: boolean, timeoutMs = 3000): Promise<number> {
    const id = this.send('watch', [secret, 'svc', 'call'], { expect, timeoutMs })
    await this.next((m) => m.id === id && m.watching === true)
    return id
  }

  async kill(): Promise<void> {
    this.child.kill('SIGKILL')
    await this.exited
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return
    this.send('close')
    this.send('exit')
    this.child.stdin!.end()
    await this.exited
  }
}

let sharedProbe: string | undefined

/**
 * open-probe.js in a copy of the package's runtime files that any user can read: the
 * checkout may sit under a directory other users cannot enter (`mktemp -d` makes 0700).
 */
function probeForOtherUsers(): string {
  if (sharedProbe !== undefined) return sharedProbe
  const root = path.join(__dirname, '..', '..')
  const dir = fs.mkdtempSync(`${os.tmpdir()}/keygate-probe-`)
  fs.chmodSync(dir, 0o755)
  const runtime = ['index.js', 'binding.js', 'package.json', ...fs.readdirSync(root).filter((f) => f.endsWith('.node'))]
  for (const file of runtime) fs.copyFileSync(path.join(root, file), path.join(dir, file))
  fs.cpSync(path.join(root, 'lib'), path.join(dir, 'lib'), { recursive: true })
  fs.mkdirSync(path.join(dir, '__test__', 'support'), { recursive: true })
  sharedProbe = path.join(dir, '__test__', 'support', 'open-probe.js')
  fs.copyFileSync(childScript('open-probe'), sharedProbe)
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }))
  return sharedProbe
}

/** Runs open-probe.js on `files` (optionally as another user, with `options` for each open) and returns its report. */
export function probeOpen(files: string[], prefix: string[] = [], options?: StoreOptions): Array<Record<string, any>> {
  const probe = prefix.length > 0 ? probeForOtherUsers() : childScript('open-probe')
  const command = [...prefix, NODE, probe, ...files]
  const env = options === undefined ? process.env : { ...process.env, KEYGATE_PROBE_OPTIONS: JSON.stringify(options) }
  const r = spawnSync(command[0]!, command.slice(1), { encoding: 'utf8', timeout: 30_000, env })
  assert.equal(r.signal, null, `the child crashed with ${r.signal}; stderr: ${r.stderr}`)
  assert.equal(r.status, 0, `the child failed; stderr: ${r.stderr}`)
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Array<Record<string, any>>
}
