// Where keygate cannot run, it says so when it is loaded, naming the cause: a Node.js older than
// package.json's `engines`, a process that may not load native addons. (CI has one Node.js: an
// older one is played by a preload that reports its version and lacks what it lacks.)
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'

const ROOT = path.resolve(__dirname, '..')
const BIN = path.join(ROOT, 'bin', 'keygate.js')

function node(args: string[]) {
  return spawnSync(process.execPath, args, { cwd: ROOT, encoding: 'utf8', timeout: 30_000 })
}

describe('a Node.js older than the engines field', () => {
  const oldest = /^>= ?(\d+)$/.exec(JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')).engines.node)?.[1]

  test('loading keygate fails at once, naming the version needed and the one found (not a TypeError at the first admin call)', () => {
    assert.equal(oldest, '20', "package.json's engines.node is the oldest major version lib/native.js accepts")
    const dir = mkdtempSync(path.join(tmpdir(), 'keygate-runtimes-'))
    try {
      const node18 = path.join(dir, 'node18.cjs')
      // What Node 18 reports and lacks: String.prototype.isWellFormed came with Node 20.
      writeFileSync(
        node18,
        `Object.defineProperty(process, 'version', { value: 'v18.20.8' })
Object.defineProperty(process, 'versions', { value: { ...process.versions, node: '18.20.8' } })
delete String.prototype.isWellFormed
`,
      )
      const use = `try {
  const { KeyStore } = require('.')
  KeyStore.inMemory().putUser({ id: 'u', rights: ['a:*'] })
  console.log('loaded')
} catch (error) {
  console.log(JSON.stringify({ code: error.code, message: error.message }))
}`
      const r = node(['--require', node18, '-e', use])
      assert.equal(r.status, 0, r.stderr)
      const error = JSON.parse(r.stdout)
      assert.equal(error.code, 'ERR_KEYGATE_UNSUPPORTED_RUNTIME')
      assert.match(error.message, /^keygate needs Node\.js 20 or later; this is Node\.js v18\.20\.8\./)

      const bin = node(['--require', node18, BIN, '--help'])
      assert.equal(bin.status, 4)
      assert.match(bin.stderr, /^error: cannot load keygate: keygate needs Node\.js 20 or later; this is Node\.js v18\.20\.8\./)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('a process that may not load native addons', () => {
  const flags: [string, string[]][] = [
    ['--no-addons', ['--no-addons']],
    [
      'the permission model without --allow-addons',
      [process.allowedNodeEnvironmentFlags.has('--permission') ? '--permission' : '--experimental-permission', `--allow-fs-read=*`],
    ],
  ]
  for (const [what, args] of flags) {
    test(`${what}: the error says addons are refused and how to allow them, not to install or build the binary`, () => {
      const r = node([...args, '-e', "require('.')"])
      assert.notEqual(r.status, 0)
      assert.match(r.stderr, /keygate cannot run here: this process may not load native addons/)
      assert.match(r.stderr, /without --allow-addons/)
      assert.match(r.stderr, /code: 'ERR_KEYGATE_UNSUPPORTED_RUNTIME'/)
      assert.doesNotMatch(r.stderr, /make sure it is installed|npm run build|no prebuilt native binary/)
    })

    test(`${what}, set in NODE_OPTIONS: the CLI with --json still prints one JSON document on stdout and nothing on stderr`, () => {
      const env = { ...process.env, NODE_OPTIONS: args.join(' ') }
      const cli = (argv: string[]) => spawnSync(process.execPath, [BIN, ...argv], { cwd: ROOT, encoding: 'utf8', timeout: 30_000, env })
      for (const argv of [
        ['--json', 'key', 'list'],
        ['key', 'list', '--json'],
      ]) {
        const r = cli(argv)
        assert.equal(r.status, 4, r.stderr)
        assert.equal(r.stderr, '')
        const { error } = JSON.parse(r.stdout)
        assert.equal(error.code, 'INTERNAL')
        assert.match(error.message, /^cannot load keygate: keygate cannot run here: this process may not load native addons/)
      }
      // Without --json (or with it only after `--`, where it is an argument), the error is text on stderr, as before.
      for (const argv of [
        ['key', 'list'],
        ['key', 'show', '--', '--json'],
      ]) {
        const r = cli(argv)
        assert.equal(r.status, 4)
        assert.equal(r.stdout, '')
        assert.match(r.stderr, /^error: cannot load keygate: keygate cannot run here/)
      }
    })
  }
})
