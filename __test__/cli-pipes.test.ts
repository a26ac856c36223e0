// The CLI writing into a pipe whose reader is gone (`keygate … | head -1`, `| true`): it stops
// quietly, and its exit code is still the command's, never a failure turned into a success.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { appendFileSync, closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmdirSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs'
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

  /** Runs keygate with its stdout on /dev/full: every write fails with ENOSPC. */
  function fullDisk(args: string[]): { code: number | null; stderr: string } {
    const full = openSync('/dev/full', 'w')
    try {
      const r = spawnSync(process.execPath, [BIN, '--db', db, ...args], { env, encoding: 'utf8', stdio: ['ignore', full, 'pipe'] })
      return { code: r.status, stderr: r.stderr }
    } finally {
      closeSync(full)
    }
  }

  test('output lost to a full disk is exit 3; a key whose secret was lost so is revoked', { skip: !existsSync('/dev/full') }, () => {
    for (const json of [[], ['--json']]) {
      const listed = fullDisk([...json, 'key', 'list'])
      assert.equal(listed.code, 3, listed.stderr)
      assert.match(listed.stderr, /could not be written to standard output \(ENOSPC\)/)
      for (const issuing of [
        ['key', 'create', '--user', 'alice', '--description', 'lost', '--expires', '30d'],
        ['key', 'rotate', 'ROTATED'],
      ]) {
        let args = issuing
        if (issuing[1] === 'rotate') {
          const made = spawnSync(process.execPath, [BIN, '--db', db, '--json', 'key', 'create', '--user', 'alice', '--description', 'kept', '--expires', '30d'], {
            env,
            encoding: 'utf8',
          })
          assert.equal(made.status, 0, made.stderr)
          args = ['key', 'rotate', JSON.parse(made.stdout).key.id, '--overlap', '1h']
        }
        const r = fullDisk([...json, ...args])
        assert.equal(r.code, 3, r.stderr)
        const id = /the secret of key (key_\w+) could not be written to standard output \(ENOSPC\); the key was revoked/.exec(r.stderr)?.[1]
        assert.ok(id, r.stderr)
        assert.doesNotMatch(r.stderr, /kg_/)
        const shown = spawnSync(process.execPath, [BIN, '--db', db, '--json', 'key', 'show', id], { env, encoding: 'utf8' })
        assert.equal(JSON.parse(shown.stdout).state, 'revoked', `${args.join(' ')}: the new key`)
      }
    }
  })

  /** A directory on a small tmpfs (mounting needs root), or why there is none. */
  function smallDisk(): string | { skip: string } {
    if (process.platform !== 'linux') return { skip: 'needs Linux, to mount a small tmpfs' }
    const mountPoint = mkdtempSync(path.join(tmpdir(), 'keygate-cli-full-'))
    const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', mountPoint], { encoding: 'utf8' })
    if (r.status !== 0) {
      rmdirSync(mountPoint)
      return { skip: `mounting a tmpfs is not permitted here (run as root): ${(r.stderr || String(r.error)).trim().split('\n')[0]}` }
    }
    return mountPoint
  }

  test('into a file on a disk that fills up mid-write (a short write, no error), the secret cut short revokes its key', async (t) => {
    const disk = smallDisk()
    if (typeof disk !== 'string') return t.skip(disk.skip)
    try {
      // The disk full to its last page, which the output file holds, with room for 100 bytes.
      const out = path.join(disk, 'out')
      writeFileSync(out, 'x'.repeat(4096 - 100))
      const filler = path.join(disk, 'filler')
      try {
        for (;;) appendFileSync(filler, Buffer.alloc(4096))
      } catch (error) {
        assert.equal((error as NodeJS.ErrnoException).code, 'ENOSPC')
      }
      for (const args of [
        ['key', 'create', '--user', 'alice', '--description', 'cut short', '--expires', '30d'],
        ['--json', 'key', 'create', '--user', 'alice', '--description', 'cut short', '--expires', '30d'],
        ['key', 'list'],
      ]) {
        truncateSync(out, 4096 - 100)
        const fd = openSync(out, 'a')
        const r = spawnSync(process.execPath, [BIN, '--db', db, ...args], { env, encoding: 'utf8', stdio: ['ignore', fd, 'pipe'] })
        closeSync(fd)
        // The first 100 bytes were written (the write said so), the rest was not.
        assert.equal(statSync(out).size, 4096, args.join(' '))
        assert.equal(r.status, 3, `${args.join(' ')}: exit ${r.status}: ${r.stderr}`)
        assert.doesNotMatch(r.stderr, /kg_/)
        if (args.includes('create')) {
          const id = /the secret of key (key_\w+) could not be written to standard output \(ENOSPC\); the key was revoked/.exec(r.stderr)?.[1]
          assert.ok(id, r.stderr)
          const shown = spawnSync(process.execPath, [BIN, '--db', db, '--json', 'key', 'show', id], { env, encoding: 'utf8' })
          assert.equal(JSON.parse(shown.stdout).state, 'revoked', `${args.join(' ')}: the new key`)
        } else {
          assert.match(r.stderr, /could not be written to standard output \(ENOSPC\)/)
        }
      }
    } finally {
      if (spawnSync('umount', [disk]).status !== 0) spawnSync('umount', ['-l', disk])
      rmdirSync(disk)
    }
  })

  test('a file that fills up mid-output (a short write) is output lost: the key is revoked, exit 3', () => {
    // A file size limit (ulimit -f) stands for a disk filling up: write(2) writes what fits and
    // says how much, Node's file stream ignored the rest, and the command exited 0 with the key
    // active and its secret cut short.
    const LIMIT = 8 * 1024 * 1024
    const log = path.join(dir, 'out.log')
    for (const json of [[], ['--json']]) {
      writeFileSync(log, '')
      truncateSync(log, LIMIT - 100)
      const r = spawnSync(
        '/bin/sh',
        [
          '-c',
          `ulimit -f ${LIMIT / 512} && exec "$@" >> "$0"`,
          log,
          process.execPath,
          BIN,
          '--db',
          db,
          ...json,
          'key',
          'create',
          '--user',
          'alice',
          '--description',
          'cut short',
          '--expires',
          '30d',
        ],
        {
          env,
          encoding: 'utf8',
        },
      )
      assert.equal(r.signal, null, r.stderr)
      assert.equal(r.status, 3, r.stderr)
      const id = /the secret of key (key_\w+) could not be written to standard output \(EFBIG\); the key was revoked/.exec(r.stderr)?.[1]
      assert.ok(id, r.stderr)
      assert.equal(readFileSync(log).length, LIMIT, 'what fitted was written')
      const shown = spawnSync(process.execPath, [BIN, '--db', db, '--json', 'key', 'show', id], { env, encoding: 'utf8' })
      assert.equal(JSON.parse(shown.stdout).state, 'revoked')
    }
  })
})
