// The CLI's first-hour items: usage errors before any store is touched, --help naming serve
// and its environment, and backup telling what it does with an existing file.
import { after, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'

const BIN = path.join(__dirname, '..', 'bin', 'keygate.js')

function keygate(args: string[], cwd: string, env: Record<string, string> = {}) {
  const { KEYGATE_DB: _db, ...rest } = process.env
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd, encoding: 'utf8', env: { ...rest, ...env } })
  return { code: r.status, stdout: r.stdout, stderr: r.stderr }
}

describe('keygate CLI: usage', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'keygate-cli-usage-'))
  after(() => rmSync(dir, { recursive: true, force: true }))

  test('--help lists serve and the environment variables serve reads', () => {
    const r = keygate(['--help'], dir)
    assert.equal(r.code, 0)
    assert.match(r.stdout, /^ {2}serve +Serve the admin web page/m)
    for (const name of ['KEYGATE_DB', 'KEYGATE_ADMIN_TOKEN', 'PORT', 'HOST']) {
      assert.match(r.stdout, new RegExp(`^ {2}${name} +\\S`, 'm'), `${name} is described`)
    }
  })

  test('key create with no arguments and no store: the usage error, and no store created', () => {
    const empty = mkdtempSync(path.join(dir, 'empty-'))
    const r = keygate(['key', 'create'], empty)
    assert.equal(r.code, 2, r.stderr)
    assert.match(r.stderr, /^error: keygate key create needs --user <id>\n$/)
    assert.doesNotMatch(r.stderr, /STORE_IO/)
    assert.deepEqual(readdirSync(empty), [])
  })

  test('other option mistakes are reported before the store is opened too', () => {
    const empty = mkdtempSync(path.join(dir, 'empty-'))
    const cases: [string[], RegExp][] = [
      [['key', 'create', '--user', 'u', '--description', 'd', '--expires', 'soon'], /--expires/],
      [['key', 'update', 'key_x'], /key update needs something to change/],
      [['key', 'list', '--state', 'sleeping'], /--state/],
      [['audit', '--limit', '0'], /--limit/],
      [['role', 'put', 'r'], /role put needs --right/],
      [['user', 'put', 'u', '--right', 'a:b', '--no-rights'], /--right or --no-rights/],
    ]
    for (const [args, message] of cases) {
      const r = keygate(args, empty)
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`)
      assert.match(r.stderr, message)
      assert.doesNotMatch(r.stderr, /STORE_IO/)
    }
    assert.deepEqual(readdirSync(empty), [], 'no store file was created')
  })

  test('a well-formed command on a missing store still reports the missing store', () => {
    const empty = mkdtempSync(path.join(dir, 'empty-'))
    const r = keygate(['key', 'create', '--user', 'u', '--description', 'd', '--expires', '30d'], empty)
    assert.equal(r.code, 3)
    assert.match(r.stderr, /no keygate store at .*\(STORE_IO\)/)
  })

  test('backup to an existing file: refused, the file kept, and the help says so', () => {
    const work = mkdtempSync(path.join(dir, 'backup-'))
    assert.equal(keygate(['init'], work).code, 0)
    const target = path.join(work, 'old-backup.db')
    writeFileSync(target, 'an older backup')
    const r = keygate(['backup', target], work)
    assert.equal(r.code, 3)
    assert.match(r.stderr, /already exists.*\(STORE_IO\)/s)
    assert.ok(existsSync(target))
    const help = keygate(['backup', '--help'], work)
    assert.match(help.stdout, /<file> must not exist: backup never overwrites a file/)
  })
})
