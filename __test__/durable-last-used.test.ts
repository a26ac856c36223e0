// lastUsedAt of a durable store: a use reaches the file within ~1.5 s, close() flushes it,
// a process killed after a check does not lose it, nor one that exits without close().
import { describe, test } from 'node:test'
import type { TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import * as path from 'node:path'

import { DAY, MINUTE, T0, at } from './helpers.js'
import { open, sleep, storePath, wall } from './support/durable.js'
import { StoreProcess } from './support/child-store.js'
import { NO_PYTHON } from './support/python-sqlite.js'

describe('lastUsedAt', () => {
  /** Polls `read` until it returns a value satisfying `ok`; the ms it took, or -1 after `timeoutMs`. */
  async function within(read: () => number | null, ok: (v: number) => boolean, timeoutMs: number): Promise<number> {
    const start = wall()
    while (wall() - start < timeoutMs) {
      const v = read()
      if (v !== null && ok(v)) return wall() - start
      await sleep(10)
    }
    return -1
  }

  test('a successful check reaches the file within ~1.5 s (seen by a second store on the file), exact to a second', async (t: TestContext) => {
    const file = storePath()
    const a = open(file)
    a.putUser({ id: 'u', rights: ['svc:*'] })
    const k = a.createKey({ userId: 'u', description: '', expiresAt: at(new Date(), DAY) })
    const b = open(file)
    assert.equal(a.isAllowed(k.secret, 'other', 'x'), false)
    assert.equal(a.getKey(k.key.id)!.lastUsedAt, null, 'a denied check is no use')
    const used = Date.now()
    assert.equal(a.isAllowed(k.secret, 'svc', 'call'), true)
    const mine = a.getKey(k.key.id)!.lastUsedAt
    assert.ok(mine && Math.abs(mine.getTime() - used) <= 1000, 'in memory at once')
    const read = () => b.getKey(k.key.id)?.lastUsedAt?.getTime() ?? null
    const took = await within(read, (v) => Math.abs(v - used) <= 1000, 3000)
    t.diagnostic(`first use on disk after ${took.toFixed(0)} ms`)
    assert.ok(took >= 0 && took <= 1500, `the use reached the file after ${took.toFixed(0)} ms`)
    a.close()
    b.close()
    const again = open(file)
    assert.ok(Math.abs(again.getKey(k.key.id)!.lastUsedAt!.getTime() - used) <= 1000, 'it survives close and reopen')
    again.close()
  })

  test('a later check (answered from the decision memo) also reaches the file within ~1.5 s', async (t: TestContext) => {
    const file = storePath()
    const a = open(file)
    a.putUser({ id: 'u', rights: ['svc:*'] })
    const k = a.createKey({ userId: 'u', description: '', expiresAt: at(new Date(), DAY) })
    const b = open(file)
    for (let i = 0; i < 3; i++) assert.equal(a.isAllowed(k.secret, 'svc', 'call'), true)
    await sleep(1300)
    const used = Date.now()
    assert.equal(a.isAllowed(k.secret, 'svc', 'call'), true)
    const read = () => b.getKey(k.key.id)?.lastUsedAt?.getTime() ?? null
    const took = await within(read, (v) => v >= used - 1000, 4000)
    t.diagnostic(`later use on disk after ${took.toFixed(0)} ms`)
    assert.ok(took >= 0 && took <= 1500, `the later use reached the file after ${took < 0 ? '> 4000' : took.toFixed(0)} ms`)
    a.close()
    b.close()
  })

  test('close() flushes: a use just before close is there after reopen (frozen clock: exactly)', () => {
    const file = storePath()
    const a = open(file, { now: T0 })
    a.putUser({ id: 'u', rights: ['svc:*'] })
    const k = a.createKey({ userId: 'u', description: '', expiresAt: at(T0, DAY) })
    const k2 = a.createKey({ userId: 'u', description: '', expiresAt: at(T0, DAY) })
    assert.equal(a.isAllowed(k.secret, 'svc', 'call'), true)
    a.setNow(at(T0, 5 * MINUTE))
    for (let i = 0; i < 3; i++) assert.equal(a.isAllowed(k2.secret, 'svc', 'call'), true)
    a.setNow(at(T0, 6 * MINUTE))
    for (let i = 0; i < 3; i++) assert.equal(a.isAllowed(k.secret, 'svc', 'call'), true)
    a.close()
    const again = open(file, { now: T0 })
    assert.equal(again.getKey(k.key.id)!.lastUsedAt?.getTime(), at(T0, 6 * MINUTE).getTime())
    assert.equal(again.getKey(k2.key.id)!.lastUsedAt?.getTime(), at(T0, 5 * MINUTE).getTime())
    again.close()
  })

  test('a process killed 1.5 s after a check: the use is on disk', async () => {
    const file = storePath()
    const setup = open(file)
    setup.putUser({ id: 'u', rights: ['svc:*'] })
    const k = setup.createKey({ userId: 'u', description: '', expiresAt: at(new Date(), DAY) })
    setup.close()
    const child = await StoreProcess.start(file)
    const checked = await child.call('checkMany', k.secret, 'svc', 'call', 3)
    assert.deepEqual(checked.result, [true, true, true])
    await sleep(1500)
    await child.kill()
    const after = open(file)
    const last = after.getKey(k.key.id)!.lastUsedAt
    assert.ok(last, 'lastUsedAt was lost with the process')
    assert.ok(Math.abs(last.getTime() - checked.at) <= 1000, `lastUsedAt ${last.toISOString()} vs check at ${new Date(checked.at).toISOString()}`)
    after.close()
  })

  test('a process killed 1.5 s after a later check (answered from its memo): that use is on disk', async () => {
    const file = storePath()
    const setup = open(file)
    setup.putUser({ id: 'u', rights: ['svc:*'] })
    const k = setup.createKey({ userId: 'u', description: '', expiresAt: at(new Date(), DAY) })
    setup.close()
    const child = await StoreProcess.start(file)
    await child.call('checkMany', k.secret, 'svc', 'call', 3)
    await sleep(1300)
    const later = await child.call('checkMany', k.secret, 'svc', 'call', 2)
    assert.deepEqual(later.result, [true, true])
    await sleep(1500)
    await child.kill()
    const after = open(file)
    const last = after.getKey(k.key.id)!.lastUsedAt!
    assert.ok(last.getTime() >= later.at - 1000, `lastUsedAt ${last.toISOString()} is the earlier use, not the one at ${new Date(later.at).toISOString()}`)
    after.close()
  })
  // A child that checks a key three times (the last answered from its memo) and ends at once,
  // without close(), as `ending` says; it prints the instant of its checks.
  const PACKAGE = path.join(__dirname, '..')
  const exitingChild = (ending: string) => `
const { KeyStore } = require(${JSON.stringify(PACKAGE)})
const [file, secret] = process.argv.slice(1)
const store = KeyStore.open(file)
for (let i = 0; i < 3; i++) if (!store.isAllowed(secret, 'svc', 'call')) throw new Error('refused')
process.stdout.write(String(Date.now()))
${ending}
`
  for (const [how, ending, status] of [
    ['calls process.exit()', 'process.exit(0)', 0],
    ['throws an uncaught exception', "throw new Error('the app failed')", 1],
    ['lets its event loop drain', '', 0],
  ] as const) {
    test(`a process that ${how} without close(): the uses of its last second are on disk`, () => {
      const file = storePath()
      const setup = open(file)
      setup.putUser({ id: 'u', rights: ['svc:*'] })
      const k = setup.createKey({ userId: 'u', description: '', expiresAt: at(new Date(), DAY) })
      setup.close()
      const r = spawnSync(process.execPath, ['-e', exitingChild(ending), file, k.secret], { encoding: 'utf8', timeout: 30_000 })
      assert.equal(r.status, status, r.stderr)
      const checkedAt = Number(r.stdout)
      const after = open(file)
      const last = after.getKey(k.key.id)!.lastUsedAt
      after.close()
      assert.ok(last, 'lastUsedAt was lost with the process')
      assert.ok(Math.abs(last.getTime() - checkedAt) <= 1000, `lastUsedAt ${last.toISOString()} vs checks at ${new Date(checkedAt).toISOString()}`)
    })
  }

  /** The next line `child` writes to stdout, or an error if it exits first. */
  const nextLine = (child: ChildProcess) =>
    new Promise<string>((resolve, reject) => {
      const lines = createInterface({ input: child.stdout! })
      lines.once('line', (line) => {
        lines.close()
        resolve(line)
      })
      child.once('exit', (code) => reject(new Error(`exited with ${code} first`)))
    })

  /**
   * A child that opens the store, checks a key and exits (process.exit), each when told to, while
   * another process holds the file's write lock: taken after the checks (`lockedFirst` false), or before them and held
   * while the child's background flushes fail for it (they do not wait: `STORE_LOCKED`, the uses
   * put back, tried again every 100 ms). `releaseBeforeExit`: the lock goes just before the exit.
   */
  async function exitWhileLocked({ lockedFirst, releaseBeforeExit }: { lockedFirst: boolean; releaseBeforeExit: boolean }) {
    const file = storePath()
    const setup = open(file)
    setup.putUser({ id: 'u', rights: ['svc:*'] })
    const k = setup.createKey({ userId: 'u', description: '', expiresAt: at(new Date(), DAY) })
    setup.close()
    // Another process takes the write lock and holds it until told to let go.
    const locker = () =>
      spawn(
        'python3',
        [
          '-c',
          "import sqlite3, sys\nc = sqlite3.connect(sys.argv[1], isolation_level=None)\nc.execute('BEGIN IMMEDIATE')\nprint('locked', flush=True)\nsys.stdin.read()\nc.execute('ROLLBACK')",
          file,
        ],
        { stdio: ['pipe', 'pipe', 'inherit'] },
      )
    let holder: ChildProcess | undefined
    const child = spawn(
      process.execPath,
      [
        '-e',
        `const { KeyStore } = require(${JSON.stringify(PACKAGE)})
const [file, secret] = process.argv.slice(1)
const store = KeyStore.open(file, { onError: (e) => process.stderr.write(\`onError: \${e.code} \${e.task} \${e.recovered} \${e.message}\\n\`) })
process.stdout.write('opened\\n')
const lines = require('node:readline').createInterface({ input: process.stdin })
lines.once('line', () => {
  for (let i = 0; i < 3; i++) if (!store.isAllowed(secret, 'svc', 'call')) throw new Error('refused')
  process.stdout.write('checked\\n')
  lines.once('line', () => process.exit(0))
})`,
        file,
        k.secret,
      ],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    )
    let stderr = ''
    child.stderr!.on('data', (chunk) => {
      stderr += chunk
    })
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve))
    /** Tells the holder to let go, and waits until it has. */
    const release = async (p: ChildProcess) => {
      const gone = new Promise((resolve) => p.once('exit', resolve))
      p.stdin!.end()
      await gone
    }
    try {
      assert.equal(await nextLine(child), 'opened')
      if (lockedFirst) {
        holder = locker()
        assert.equal(await nextLine(holder), 'locked')
      }
      child.stdin!.write('check\n')
      assert.equal(await nextLine(child), 'checked')
      if (lockedFirst) {
        // The memo hands the uses over within 200 ms, the background thread tries them within the second.
        await sleep(1500)
      } else {
        holder = locker()
        assert.equal(await nextLine(holder), 'locked')
      }
      if (releaseBeforeExit) await release(holder!)
      child.stdin!.write('exit\n')
      assert.equal(await exited, 0, stderr)
    } finally {
      child.kill('SIGKILL')
      if (holder && holder.exitCode === null) await release(holder)
    }
    const after = open(file)
    const lastUsedAt = after.getKey(k.key.id)!.lastUsedAt
    after.close()
    assert.ok(!stderr.includes(k.secret), 'a report shows no secret')
    return { stderr, lastUsedAt }
  }

  test('a write that fails at exit (another process holds the write lock) is reported to onError, not lost silently', {
    skip: NO_PYTHON,
    timeout: 30_000,
  }, async () => {
    const { stderr } = await exitWhileLocked({ lockedFirst: false, releaseBeforeExit: false })
    assert.match(stderr, /^onError: STORE_\w+ lastUsedAt false /m)
  })

  test('background flushes kept failing for the write lock and it is still held at exit: the uses are reported to onError, not lost silently', {
    skip: NO_PYTHON,
    timeout: 30_000,
  }, async () => {
    const { stderr, lastUsedAt } = await exitWhileLocked({ lockedFirst: true, releaseBeforeExit: false })
    assert.equal(lastUsedAt, null)
    assert.deepEqual(
      stderr
        .split('\n')
        .filter((line) => line.startsWith('onError:'))
        .map((line) => line.split(' ').slice(0, 4).join(' ')),
      ['onError: STORE_LOCKED lastUsedAt false'],
      'one report, at exit (the background flushes are not reported while the lock is young)',
    )
  })

  test('background flushes kept failing for the write lock, let go just before the exit: the uses are on disk', {
    skip: NO_PYTHON,
    timeout: 30_000,
  }, async () => {
    const { stderr, lastUsedAt } = await exitWhileLocked({ lockedFirst: true, releaseBeforeExit: true })
    assert.ok(lastUsedAt, `the uses were lost with the process (stderr: ${stderr})`)
    assert.equal(stderr, '')
  })
})
