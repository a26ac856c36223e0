// Many admin processes writing to one store file at once: each waits its turn for the write lock,
// and none is starved into STORE_LOCKED while every write holds the lock for about a millisecond
// (STORE_LOCKED means another process held the lock for more than 5 s).
import { describe, test } from 'node:test'
import type { TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'

import { NODE, childScript, children, open, storePath } from './support/durable.js'

type Summary = { t: 'done'; calls: number; worst: number; locked: number; other: Record<string, number> } | { t: 'error'; code: string; message: string }

function writer(file: string, name: string, startAt: number, ms: number): Promise<{ name: string; summary: Summary | undefined; err: string }> {
  const child = spawn(NODE, [childScript('contending-writer'), file, name, String(startAt), String(ms)], { stdio: ['ignore', 'pipe', 'pipe'] })
  children.add(child)
  let out = ''
  let err = ''
  child.stdout!.on('data', (c) => (out += c))
  child.stderr!.on('data', (c) => (err += c))
  return new Promise((resolve) =>
    child.on('close', (code, signal) => {
      children.delete(child)
      const line = out.split('\n').find(Boolean)
      resolve({ name, summary: line === undefined ? undefined : (JSON.parse(line) as Summary), err: `${err}(exit ${code ?? signal})` })
    }),
  )
}

describe('many processes writing at once', () => {
  test('16 processes writing back to back for 20 s: no call waits out the lock (STORE_LOCKED)', { timeout: 120_000 }, async (t: TestContext) => {
    const file = storePath()
    open(file).close()
    const names = Array.from({ length: 16 }, (_, i) => `writer-${i}`)
    const startAt = Date.now() + 2_000
    const results = await Promise.all(names.map((name) => writer(file, name, startAt, 20_000)))
    let calls = 0
    let worst = 0
    for (const { name, summary, err } of results) {
      assert.ok(summary?.t === 'done', `${name}: ${JSON.stringify(summary)} ${err}`)
      assert.deepEqual(summary.other, {}, name)
      assert.equal(summary.locked, 0, `${name}: ${summary.locked} of ${summary.calls} calls gave up waiting for the lock (STORE_LOCKED)`)
      calls += summary.calls
      worst = Math.max(worst, summary.worst)
    }
    t.diagnostic(`${calls} writes by 16 processes in 20 s; the longest call ${Math.round(worst)} ms`)
  })
})
