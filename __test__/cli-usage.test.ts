// The CLI's first-hour items: usage errors before any store is touched, --help naming serve
// and its environment, and backup telling what it does with an existing file.
import { after, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { type SpawnOptions, spawn, spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import {
  chmodSync,
  chownSync,
  closeSync,
  createReadStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'

const BIN = path.join(__dirname, '..', 'bin', 'keygate.js')

function keygate(args: string[], cwd: string, env: Record<string, string> = {}) {
  const { KEYGATE_DB: _db, ...rest } = process.env
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd, encoding: 'utf8', env: { ...rest, ...env } })
  return { code: r.status, stdout: r.stdout, stderr: r.stderr }
}

/**
 * Runs `keygate serve` with `args` until its output (stdout and stderr) matches `ready`, it exits,
 * or 20 s pass; then stops it (SIGTERM) and returns the output.
 */
async function serveUntil(args: string[], options: SpawnOptions, ready: RegExp): Promise<string> {
  const child = spawn(process.execPath, [BIN, 'serve', ...args], { ...options, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (out += chunk))
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (out += chunk))
  // 'close', not 'exit': a child that fails at once (port 8080 taken) may exit before its
  // message has been read from the pipe.
  let closed = false
  const done = new Promise<void>((resolve) =>
    child.once('close', () => {
      closed = true
      resolve()
    }),
  )
  try {
    const deadline = Date.now() + 20_000
    while (!ready.test(out) && !closed && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50))
    return out
  } finally {
    child.kill('SIGTERM')
    await done
  }
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
      [['audit', '--action', 'revoke'], /--action "revoke" must be one of/],
      [['audit', '--until', 'soon'], /--until/],
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

  test('--overlap, the secret of check/explain/check-dav and --port are checked before the store is opened', () => {
    const empty = mkdtempSync(path.join(dir, 'empty-'))
    const db = ['--db', 'missing.db']
    const cases: [string[], RegExp, { input?: string; secret?: string }?][] = [
      [[...db, 'key', 'rotate', 'key_x', '--overlap', '3y'], /^error: --overlap "3y" is not a duration/],
      [[...db, 'key', 'rotate', 'key_x', '--overlap', ''], /--overlap/],
      [[...db, 'check', 'session', 'getInfo'], /^error: check needs a secret/],
      [[...db, 'explain', 'session', 'getInfo'], /^error: explain needs a secret/],
      [[...db, 'check-dav', 'GET', 'docs/a.txt'], /^error: check-dav needs a secret/],
      [[...db, 'check', 'kg_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', 'session'], /needs <service> and <api> after the secret/],
      // The call typed as one word, as a rule or Hornbill writes it: said, and the word not echoed.
      [
        [...db, 'check', 'kg_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', 'session:getSessionInfo'],
        /after the secret .*; give the call as two words, <service> <api>, not as a rule writes it \(<service>:<api>\)\n$/,
      ],
      [[...db, 'explain', 'session::getSessionInfo'], /^error: keygate explain needs <api> .*; give the call as two words/, { secret: 'kg_x' }],
      [[...db, 'check', '--secret-stdin', 'session:getSessionInfo'], /^error: keygate check needs <api> .*; give the call as two words/, { input: 'kg_x\n' }],
      // check-dav's second word is a path, not an api: a colon in the first is no call typed as one word.
      [[...db, 'check-dav', '--secret-stdin', 'GET:getSessionInfo'], /^error: keygate check-dav needs <path> \(usage: keygate check-dav [^)]*\)\n$/, { input: 'kg_x\n' }],
      [
        [...db, 'check-dav', 'kg_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', 'GET:getSessionInfo'],
        /needs <method> and <path> after the secret \(usage: keygate check-dav [^)]*\)\n$/,
      ],
      [[...db, 'check', 'a', 'b', 'c', '--secret-stdin'], /not both/],
      [[...db, 'check', '--secret-stdin', 'session', 'getInfo'], /the secret read from standard input is empty/, { input: '\n' }],
      [[...db, 'check', 'session', 'getInfo'], /the secret in \$KEYGATE_SECRET is empty/, { secret: '  ' }],
      [[...db, 'serve', '--port', '99999'], /--port "99999" must be a whole number/],
      [[...db, 'check', '--secret-stdin', 'session', 'getInfo'], /standard input holds more than 1 MiB/, { input: 'x'.repeat(2 << 20) }],
    ]
    for (const [args, message, { input = '', secret } = {}] of cases) {
      const { KEYGATE_DB: _db, KEYGATE_SECRET: _secret, ...rest } = process.env
      const env = secret === undefined ? rest : { ...rest, KEYGATE_SECRET: secret }
      const r = spawnSync(process.execPath, [BIN, ...args], { cwd: empty, encoding: 'utf8', env, input })
      assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`)
      assert.match(r.stderr, message)
      assert.doesNotMatch(r.stderr, /STORE_IO|getSessionInfo/)
    }
    assert.deepEqual(readdirSync(empty), [], 'no store file was created')
  })

  test('serve with a KEYGATE_ADMIN_TOKEN too short or too long: a usage error (exit 2) before the store is opened', () => {
    const empty = mkdtempSync(path.join(dir, 'empty-'))
    for (const [token, message] of [
      ['short', /at least 16 characters/],
      ['t'.repeat(1025), /at most 1024 characters/],
    ] as const) {
      const r = keygate(['serve', '--port', '0'], empty, { KEYGATE_ADMIN_TOKEN: token })
      assert.equal(r.code, 2, r.stderr)
      assert.match(r.stderr, /^error: KEYGATE_ADMIN_TOKEN /)
      assert.match(r.stderr, message)
      assert.doesNotMatch(r.stderr, /INTERNAL|unexpected error|\n {4}at /)
      const json = keygate(['--json', 'serve', '--port', '0'], empty, { KEYGATE_ADMIN_TOKEN: token })
      assert.equal(json.code, 2)
      assert.equal(JSON.parse(json.stdout).error.code, 'USAGE')
    }
    assert.deepEqual(readdirSync(empty), [], 'no store file was created')
  })

  test("serve with $HOST set but empty listens on 127.0.0.1, not on every interface; --host '' is a usage error", { timeout: 30_000 }, async () => {
    const work = mkdtempSync(path.join(dir, 'host-'))
    const { KEYGATE_DB: _db, KEYGATE_ADMIN_TOKEN: _token, PORT: _port, HOST: _host, ...rest } = process.env
    const out = await serveUntil(['--port', '0'], { cwd: work, env: { ...rest, HOST: '' } }, /admin-token/)
    assert.match(out, /^keygate admin: http:\/\/127\.0\.0\.1:\d+ /m, out)
    assert.doesNotMatch(out, /Warning: listening on/, out)
    const empty = mkdtempSync(path.join(dir, 'empty-'))
    const r = keygate(['serve', '--host', '', '--port', '0'], empty)
    assert.equal(r.code, 2, r.stderr)
    assert.match(r.stderr, /^error: --host needs an address/)
    assert.deepEqual(readdirSync(empty), [], 'no store file was created')
  })

  test('serve with $PORT set but empty takes port 8080, as with $PORT unset (not a usage error)', { timeout: 30_000 }, async () => {
    const work = mkdtempSync(path.join(dir, 'port-'))
    const { KEYGATE_DB: _db, KEYGATE_ADMIN_TOKEN: _token, PORT: _port, HOST: _host, ...rest } = process.env
    // Listening on 8080, or told 8080 is taken (another program may hold it): either way, 8080.
    const took8080 = /keygate admin: http:\/\/127\.0\.0\.1:8080 |port 8080 on "127\.0\.0\.1" is already in use/
    const out = await serveUntil([], { cwd: work, env: { ...rest, PORT: '' } }, took8080)
    assert.match(out, took8080, out)
    assert.doesNotMatch(out, /\$PORT/, out)
  })

  test('serve --host with a name that does not resolve: reported plainly (exit 2), not as an internal error', () => {
    const work = mkdtempSync(path.join(dir, 'unresolved-'))
    const r = keygate(['serve', '--host', 'keygate-no-such-host.invalid', '--port', '0'], work)
    assert.equal(r.code, 2, r.stderr)
    assert.match(r.stderr, /^error: cannot listen on "keygate-no-such-host\.invalid": /)
    assert.doesNotMatch(r.stderr, /INTERNAL|unexpected error|\n {4}at /)
    const json = keygate(['--json', 'serve', '--host', 'keygate-no-such-host.invalid', '--port', '0'], work)
    assert.equal(json.code, 2, json.stdout)
    assert.equal(JSON.parse(json.stdout).error.code, 'USAGE')
  })

  test('serve --host or $HOST with a control character or over 253 characters: a usage error naming it, before any lookup or store file', () => {
    const work = mkdtempSync(path.join(dir, 'bad-host-'))
    const tab = keygate(['serve', '--host', '127.0.0.1\tx', '--port', '0'], work)
    assert.equal(tab.code, 2, tab.stderr)
    assert.equal(tab.stderr, 'error: --host "127.0.0.1\\tx" holds a control character: it is no host name or address\n')
    const long = keygate(['serve', '--host', 'abcdefghi_'.repeat(30), '--port', '0'], work)
    assert.equal(long.code, 2, long.stderr)
    assert.match(long.stderr, /^error: --host "(abcdefghi_){8}…" is 300 characters long: a host name has at most 253\n$/)
    assert.deepEqual(readdirSync(work), [], 'no store file was created')
  })

  test('serve with a damaged admin token digest file: reported plainly (exit 2), not as an internal error', () => {
    const work = mkdtempSync(path.join(dir, 'digest-'))
    writeFileSync(path.join(work, 'keygate.db.admin-token.sha256'), 'not a digest\n')
    const r = keygate(['serve', '--port', '0'], work)
    assert.equal(r.code, 2, r.stderr)
    assert.match(r.stderr, /^error: .*admin-token\.sha256 is not a SHA-256 digest; delete it/)
    assert.doesNotMatch(r.stderr, /INTERNAL|unexpected error|\n {4}at /)
  })

  test('serve refuses an admin token digest file another user wrote (or could write): its writer chose the token', {
    skip: process.platform === 'win32' && 'no POSIX owners',
  }, () => {
    // A digest planted beside a store in a shared directory (/tmp) logged its planter in as admin.
    const planted = createHash('sha256').update('kga_a-token-the-other-user-knows-0123456789', 'utf8').digest('hex')
    const cases: [string, (file: string) => void][] = [['writable by other users', (file) => chmodSync(file, 0o666)]]
    // A FIFO would have held the start up forever.
    cases.push([
      'not a regular file',
      (file) => {
        rmSync(file)
        spawnSync('mkfifo', [file])
      },
    ])
    if (process.getuid?.() === 0) cases.push(['owned by another user \\(uid 65534\\)', (file) => chownSync(file, 65534, 65534)])
    for (const [problem, plant] of cases) {
      const work = mkdtempSync(path.join(dir, 'planted-'))
      const file = path.join(work, 'keygate.db.admin-token.sha256')
      writeFileSync(file, `${planted}\n`)
      plant(file)
      const { KEYGATE_DB: _db, KEYGATE_ADMIN_TOKEN: _token, ...env } = process.env
      const r = spawnSync(process.execPath, [BIN, 'serve', '--port', '0'], { cwd: work, encoding: 'utf8', env, timeout: 20_000 })
      assert.equal(r.status, 2, `${problem}: ${r.stderr}`)
      assert.match(r.stderr, new RegExp(`^error: .*admin-token\\.sha256 is ${problem}: .*delete it`))
      if (problem !== 'not a regular file') assert.equal(readFileSync(file, 'utf8'), `${planted}\n`, 'the file was changed')
    }
  })

  test("serve takes an admin token digest file root wrote (a deploy tool's, a mounted secret) when run as another user", {
    skip: process.getuid?.() !== 0 && 'needs root, to write the file as root and run serve as another user',
    timeout: 30_000,
  }, async (t) => {
    const nobody = { uid: 65534, gid: 65534 }
    const probe = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(path.join(__dirname, '..'))})`], { ...nobody, encoding: 'utf8' })
    if (probe.status !== 0) return t.skip('the package is not readable by uid 65534 here')
    const work = mkdtempSync(path.join(tmpdir(), 'keygate-cli-root-digest-'))
    try {
      chownSync(work, nobody.uid, nobody.gid)
      const file = path.join(work, 'keygate.db.admin-token.sha256')
      // Root's, as a deploy tool writes it: refused as 'owned by another user (uid 0)' before.
      writeFileSync(file, `${createHash('sha256').update('kga_the-token-the-deploy-tool-set-0123456789', 'utf8').digest('hex')}\n`, { mode: 0o644 })
      const { KEYGATE_DB: _db, KEYGATE_ADMIN_TOKEN: _token, HOST: _host, ...env } = process.env
      const out = await serveUntil(['--port', '0'], { ...nobody, cwd: work, env }, /keygate admin: /)
      assert.match(out, /^keygate admin: http:\/\/127\.0\.0\.1:\d+ /m, out)
      assert.doesNotMatch(out, /kga_/, 'a new token was generated')
    } finally {
      rmSync(work, { recursive: true, force: true })
    }
  })

  test("--db and KEYGATE_DB as an SQLite URI or ':memory:' get the store's own message, not a file of that name", () => {
    const empty = mkdtempSync(path.join(dir, 'empty-'))
    for (const name of ['file:./dev.db', 'FILE:dev.db', ':memory:']) {
      // init, and commands that need an existing store (no "create one with init" advice, which init refuses).
      for (const [args, env] of [
        [['--db', name, 'init'], {}],
        [['init'], { KEYGATE_DB: name }],
        [['--db', name, 'key', 'list'], {}],
        [['user', 'list'], { KEYGATE_DB: name }],
        [['copy', name, 'copy.db'], {}],
      ] as const) {
        const r = keygate([...args], empty, env)
        assert.notEqual(r.code, 0, `${name}: ${r.stderr}`)
        assert.match(r.stderr, /INVALID_ARGUMENT/, name)
        assert.match(r.stderr, /file path|in-memory|inMemory/i, name)
      }
    }
    assert.deepEqual(readdirSync(empty), [], 'nothing was created')
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

  test('backup to a directory: refused as a directory, nothing written in it', () => {
    const work = mkdtempSync(path.join(dir, 'backup-dir-'))
    assert.equal(keygate(['init'], work).code, 0)
    const target = path.join(work, 'backups')
    mkdirSync(target)
    const r = keygate(['backup', target], work)
    assert.equal(r.code, 3)
    assert.match(r.stderr, /backups is a directory: name the new backup file.*\(STORE_IO\)/s)
    assert.deepEqual(readdirSync(target), [])
  })

  test('standard input that is a directory is a usage error, not empty input: no key without rules, no empty secret', () => {
    const work = mkdtempSync(path.join(dir, 'stdin-dir-'))
    assert.equal(keygate(['init'], work).code, 0)
    assert.equal(keygate(['user', 'put', 'svc-stdin', '--right', '*:*'], work).code, 0)
    const { KEYGATE_DB: _db, ...env } = process.env
    const withStdinFrom = (args: string[], from: string) => {
      const fd = openSync(from, 'r')
      try {
        return spawnSync(process.execPath, [BIN, ...args], { cwd: work, encoding: 'utf8', env, stdio: [fd, 'pipe', 'pipe'] })
      } finally {
        closeSync(fd)
      }
    }
    const create = ['key', 'create', '--user', 'svc-stdin', '--description', 'd', '--expires', '2099-01-01', '--rules-file', '-']
    const created = withStdinFrom(create, work)
    assert.equal(created.status, 2, created.stderr)
    assert.equal(created.stderr, 'error: cannot read standard input: it is a directory\n')
    assert.equal(created.stdout, '')
    const checked = withStdinFrom(['check', '--secret-stdin', 'session', 'getInfo'], work)
    assert.equal(checked.status, 2, checked.stderr)
    assert.match(checked.stderr, /cannot read standard input: it is a directory/)
    assert.match(keygate(['key', 'list'], work).stdout, /no keys/)
  })

  test("backup to '' is the store's INVALID_ARGUMENT (an empty path), not the working directory's \"already exists\"", () => {
    const work = mkdtempSync(path.join(dir, 'backup-empty-'))
    assert.equal(keygate(['init'], work).code, 0)
    const before = readdirSync(work).sort()
    const r = keygate(['backup', ''], work)
    assert.equal(r.code, 3)
    assert.match(r.stderr, /the backup path is empty.*\(INVALID_ARGUMENT\)/s)
    assert.deepEqual(readdirSync(work).sort(), before)
  })
})

describe('keygate CLI: a secret pasted in the wrong place is never printed whole', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'keygate-cli-secret-'))
  const db = path.join(dir, 'store.db')
  after(() => rmSync(dir, { recursive: true, force: true }))
  const run = (args: string[]) => keygate(['--db', db, ...args], dir)
  let secret = ''
  let body = ''

  test('a real secret as the command, as an option value, as an option name, in a rules file', () => {
    assert.equal(run(['init']).code, 0)
    assert.equal(run(['user', 'put', 'alice', '--right', '*:*']).code, 0)
    const created = run(['key', 'create', '--user', 'alice', '--description', 'd', '--expires', '30d', '--json'])
    assert.equal(created.code, 0, created.stderr)
    secret = (JSON.parse(created.stdout) as { secret: string }).secret
    body = secret.slice(secret.indexOf('_') + 1)
    const rulesFile = path.join(dir, 'rules.txt')
    writeFileSync(rulesFile, `svc:api\n${secret}\n`)
    const cases: [string[], RegExp][] = [
      [[secret], /unknown command "kg_<redacted>"/],
      [[secret, 'session', 'x'], /unknown command "kg_<redacted>"/],
      [['key', secret], /unknown command "key kg_<redacted>"/],
      [['key', 'list', '--state', secret], /--state "kg_<redacted>" must be one of/],
      [['key', 'create', '--user', 'alice', '--description', 'd', '--expires', '1d', '--state', secret], /--state "kg_<redacted>"/],
      [['user', 'put', 'bob', '--status', secret], /--status "kg_<redacted>"/],
      [['key', 'create', '--user', 'alice', '--description', 'd', '--expires', secret], /--expires "kg_<redacted>"/],
      [['key', 'rotate', 'key_x', '--overlap', secret], /--overlap "kg_<redacted>"/],
      [['audit', '--since', secret], /--since "kg_<redacted>"/],
      [['audit', '--limit', secret], /--limit "kg_<redacted>"/],
      [['audit', '--until', secret], /--until "kg_<redacted>"/],
      [['audit', '--action', secret], /--action "kg_<redacted>" must be one of/],
      [['--max-lifetime-days', secret, 'key', 'list'], /--max-lifetime-days "kg_<redacted>"/],
      [['key', 'list', `--${secret}`], /unknown option "--kg_<redacted>"/],
      [['key', 'list', `--${secret}=x`], /unknown option "--kg_<redacted>"/],
      [['key', 'list', 'extra', secret], /too many arguments .*"kg_<redacted>"/],
      [['help', secret], /no help for "kg_<redacted>"/],
      [
        ['key', 'create', '--user', 'alice', '--description', 'd', '--expires', '1d', '--rules-file', path.join(dir, secret)],
        /--rules-file ".*kg_<redacted>": no such file/,
      ],
      [['key', 'create', '--user', 'alice', '--description', 'd', '--expires', '1d', '--rules-file', rulesFile], /INVALID_RULE/],
    ]
    for (const [args, message] of cases) {
      const shown = args.map((a) => a.replace(secret, '<secret>')).join(' ')
      const r = run(args)
      assert.ok(r.code === 2 || r.code === 3, `${shown}: exit ${r.code}`)
      assert.match(r.stderr, message, shown)
      assert.ok(!(r.stdout + r.stderr).includes(body), `${shown} printed the secret: ${r.stderr}`)
      // the --json error document too
      const j = run(['--json', ...args])
      assert.ok(!(j.stdout + j.stderr).includes(body), `${shown} --json printed the secret: ${j.stdout}`)
    }
  })

  test('a piece of a secret too short to be redacted (22 to 31 characters) is not shown either; long names and dates still are', () => {
    // The secret is random: pieces that hold a digit, a capital and a small letter, as nearly all do.
    const mixedPiece = (length: number) => {
      for (let at = 0; at + length <= body.length; at++) {
        const piece = body.slice(at, at + length)
        if (/[0-9]/.test(piece) && /[A-Z]/.test(piece) && /[a-z]/.test(piece)) return piece
      }
      throw new Error(`no piece of ${length} characters mixes digits and both cases`)
    }
    const cases: [string[], RegExp][] = [
      [[`kg_${mixedPiece(25)}`], /unknown command \(a value of 28 characters, not shown: it may hold a secret\)/],
      [['key', 'create', '--user', 'alice', '--description', 'd', '--expires', mixedPiece(30)], /--expires \(a value of 30 characters, not shown/],
      [['key', 'list', '--state', mixedPiece(22)], /--state \(a value of 22 characters, not shown/],
    ]
    for (const [args, message] of cases) {
      const r = run(args)
      assert.equal(r.code, 2, r.stderr)
      assert.match(r.stderr, message)
      for (let at = 0; at + 22 <= body.length; at++) assert.ok(!r.stderr.includes(body.slice(at, at + 22)), `${args.join(' ')} printed a piece of the secret`)
    }
    // What a user may mistype is shown as typed: a long camelCase name, a date.
    assert.match(run(['key', 'list', '--state', 'entityBrowseRecordsWithFilter']).stderr, /--state "entityBrowseRecordsWithFilter" must be one of/)
    assert.match(run(['audit', '--since', '2027-13-45T10:00:00Z']).stderr, /--since "2027-13-45T10:00:00Z"/)
    // A run of 22 or more is hidden only when it mixes digits, capitals and small letters; one of
    // 21 is shown even so (21 characters of a secret leave more than 128 bits of it unknown).
    for (const shown of ['release20270131build0042', 'RELEASE20270131BUILD0042', 'Abc123Def456Ghi789Jkl']) {
      assert.match(run(['key', 'list', '--state', shown]).stderr, new RegExp(`--state "${shown}" must be one of`))
    }
    // At most 42 letters and digits in all are shown, however separated; 43 are not. The count
    // of a value not shown is of characters, not UTF-16 units.
    const most = `${'a'.repeat(21)}/${'b'.repeat(21)}`
    assert.match(run(['key', 'list', '--state', most]).stderr, new RegExp(`--state "${most}" must be one of`))
    assert.match(run(['key', 'list', '--state', `${most}b`]).stderr, /--state \(a value of 44 characters, not shown: it may hold a secret\) must be one of/)
    assert.match(run(['key', 'list', '--state', `${mixedPiece(22)}\u{1F511}`]).stderr, /--state \(a value of 23 characters, not shown/)
  })

  test('a --rules-file with no rule (empty, blank lines, # comments only) is a usage error: no key is made or left without rules', () => {
    const work = mkdtempSync(path.join(dir, 'no-rule-'))
    assert.equal(keygate(['user', 'put', 'alice', '--right', '*:*'], work).code, 0)
    const made = keygate(['--json', 'key', 'create', '--user', 'alice', '--description', 'd', '--expires', '1d', '--rule', 'session:getInfo'], work)
    assert.equal(made.code, 0, made.stderr)
    const id = (JSON.parse(made.stdout) as { key: { id: string } }).key.id
    const { KEYGATE_DB: _db, ...env } = process.env
    for (const [name, text] of [
      ['empty.txt', ''],
      ['blank.txt', '\n  \n\r\n'],
      ['comments.txt', '# the rules of the sync key\n\n  # none yet\n'],
    ]) {
      const file = path.join(work, name)
      writeFileSync(file, text)
      for (const [args, input] of [
        [['key', 'create', '--user', 'alice', '--description', 'd', '--expires', '1d', '--rules-file', file], ''],
        [['key', 'create', '--user', 'alice', '--description', 'd', '--expires', '1d', '--rule', 'session:getInfo', '--rules-file', file], ''],
        [['key', 'create', '--user', 'alice', '--description', 'd', '--expires', '1d', '--rules-file', '-'], text],
        [['key', 'update', id, '--rules-file', file], ''],
        [['key', 'update', id, '--rules-file', '-'], text],
      ] as const) {
        const r = spawnSync(process.execPath, [BIN, ...args], { cwd: work, encoding: 'utf8', env, input })
        assert.equal(r.status, 2, `${name} ${args.join(' ')}: ${r.stderr}`)
        assert.match(r.stderr, /(--rules-file ".*"|standard input \(--rules-file -\)) holds no rule \(only blank lines or # comments\)/)
        assert.equal(r.stdout, '')
      }
    }
    const keys = JSON.parse(keygate(['--json', 'key', 'list'], work).stdout) as { id: string; rules: string[] }[]
    assert.deepEqual(
      keys.map((k) => [k.id, k.rules]),
      [[id, ['session:getInfo']]],
    )
    // A key without rules is still made when asked for in words.
    assert.equal(keygate(['key', 'update', id, '--no-rules'], work).code, 0)
    assert.equal(keygate(['key', 'create', '--user', 'alice', '--description', 'd', '--expires', '1d'], work).code, 0)
  })

  test('--rules-file is read up to 1 MiB: /dev/zero, a large file or a flood on standard input is a usage error that creates no key', () => {
    const work = mkdtempSync(path.join(dir, 'bounded-'))
    const big = path.join(work, 'rules.txt')
    writeFileSync(big, 'session:getInfo\n'.repeat(70_000)) // about 1.1 MB
    assert.equal(keygate(['user', 'put', 'alice'], work).code, 0)
    const create = ['key', 'create', '--user', 'alice', '--description', 'd', '--expires', '1d', '--rules-file']
    for (const [file, input] of [
      ['/dev/zero', ''],
      [big, ''],
      ['-', 'session:getInfo\n'.repeat(70_000)],
    ]) {
      const { KEYGATE_DB: _db, ...rest } = process.env
      const r = spawnSync(process.execPath, [BIN, ...create, file], { cwd: work, encoding: 'utf8', env: rest, input, timeout: 60_000 })
      assert.equal(r.status, 2, `${file}: ${r.stderr}`)
      assert.match(r.stderr, file === '-' ? /standard input holds more than 1 MiB/ : /--rules-file ".*" holds more than 1 MiB/)
    }
    const listed = keygate(['--json', 'key', 'list'], work)
    assert.equal(listed.code, 0, listed.stderr)
    assert.deepEqual(JSON.parse(listed.stdout), [])
  })

  test('exactly 1 MiB is read (--rules-file, a piped rules file, --secret-stdin); one byte more is the usage error', () => {
    const work = mkdtempSync(path.join(dir, 'bound-'))
    assert.equal(keygate(['user', 'put', 'alice'], work).code, 0)
    const { KEYGATE_DB: _db, KEYGATE_SECRET: _secret, ...env } = process.env
    const create = ['key', 'create', '--user', 'alice', '--description', 'd', '--expires', '1d', '--rules-file']
    for (const size of [1 << 20, (1 << 20) + 1]) {
      const text = 'x'.repeat(size)
      const file = path.join(work, `rules-${size}.txt`)
      writeFileSync(file, text)
      for (const [label, args, input] of [
        ['--rules-file', [...create, file], ''],
        ['--rules-file -', [...create, '-'], text],
        ['--secret-stdin', ['check', '--secret-stdin', 'session', 'getInfo'], text],
      ] as const) {
        const r = spawnSync(process.execPath, [BIN, ...args], { cwd: work, encoding: 'utf8', env, input, timeout: 60_000 })
        if (size === 1 << 20) assert.doesNotMatch(r.stderr, /holds more than 1 MiB/, `${label}: exactly 1 MiB is read`)
        else assert.match(r.stderr, /holds more than 1 MiB/, `${label}: one byte more is refused`)
        assert.notEqual(r.status, 0, `${label}: ${size} bytes of x are no rules and no secret`)
      }
    }
  })

  test('an endless standard input (yes | keygate …): the usage error, and the process stops reading and exits', () => {
    const work = mkdtempSync(path.join(dir, 'endless-'))
    assert.equal(keygate(['user', 'put', 'alice'], work).code, 0)
    const { KEYGATE_DB: _db, KEYGATE_SECRET: _secret, ...env } = process.env
    for (const args of [
      ['check', '--secret-stdin', 'session', 'getInfo'],
      ['key', 'create', '--user', 'alice', '--description', 'd', '--expires', '1d', '--rules-file', '-'],
    ]) {
      const zero = openSync('/dev/zero', 'r')
      try {
        const r = spawnSync(process.execPath, [BIN, ...args], { cwd: work, encoding: 'utf8', env, stdio: [zero, 'pipe', 'pipe'], timeout: 20_000 })
        assert.equal(r.signal, null, `${args[0]}: still reading after the usage error`)
        assert.equal(r.status, 2, r.stderr)
        assert.match(r.stderr, /standard input holds more than 1 MiB/)
      } finally {
        closeSync(zero)
      }
    }
  })

  test('--rules-file - reads a slow pipe to its end (standard input is non-blocking once Node has touched it)', async () => {
    const work = mkdtempSync(path.join(dir, 'slow-pipe-'))
    assert.equal(keygate(['user', 'put', 'alice'], work).code, 0)
    const { KEYGATE_DB: _db, ...rest } = process.env
    const child = spawn(process.execPath, [BIN, '--json', 'key', 'create', '--user', 'alice', '--description', 'd', '--expires', '1d', '--rules-file', '-'], {
      cwd: work,
      env: rest,
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk) => (stdout += chunk))
    child.stderr.on('data', (chunk) => (stderr += chunk))
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve))
    await new Promise((resolve) => setTimeout(resolve, 600)) // the writer is slow: nothing yet
    child.stdin.write('session:getInfo\n')
    await new Promise((resolve) => setTimeout(resolve, 300))
    child.stdin.end('data:entityBrowseRecords2\n')
    assert.equal(await exited, 0, stderr)
    assert.deepEqual(JSON.parse(stdout).key.rules, ['session:getInfo', 'data:entityBrowseRecords2'])
  })

  test('a rules file longer than one read (64 KiB) is read whole and in order, from a file and from a pipe; its text is read as UTF-8', () => {
    const work = mkdtempSync(path.join(dir, 'long-rules-'))
    assert.equal(keygate(['user', 'put', 'alice', '--right', '*:*'], work).code, 0)
    const { KEYGATE_DB: _db, ...env } = process.env
    // 1,000 different rules of about 90 characters: some 90 KB, so the file is read in two pieces.
    const rules = Array.from({ length: 1000 }, (_, i) => `service${String(i).padStart(4, '0')}:${'a'.repeat(70)}${i}`)
    const file = path.join(work, 'rules.txt')
    writeFileSync(file, `${rules.join('\n')}\n`)
    const create = ['--json', 'key', 'create', '--user', 'alice', '--description', 'd', '--expires', '1d', '--rules-file']
    for (const [label, source, input] of [
      ['--rules-file', file, ''],
      ['--rules-file -', '-', `${rules.join('\n')}\n`],
    ] as const) {
      const r = spawnSync(process.execPath, [BIN, ...create, source], { cwd: work, encoding: 'utf8', env, input })
      assert.equal(r.status, 0, `${label}: ${r.stderr}`)
      assert.deepEqual(JSON.parse(r.stdout).key.rules, rules, label)
    }
    // A character beyond ASCII is named as written, not as its UTF-8 bytes read one by one.
    const accented = path.join(work, 'accented.txt')
    writeFileSync(accented, 'session:getInfo\nsessión:getInfo\n')
    for (const [label, source, input] of [
      ['--rules-file', accented, ''],
      ['--rules-file -', '-', 'session:getInfo\nsessión:getInfo\n'],
    ] as const) {
      const r = spawnSync(process.execPath, [BIN, ...create.slice(1), source], { cwd: work, encoding: 'utf8', env, input })
      assert.equal(r.status, 3, `${label}: ${r.stderr}`)
      assert.match(r.stderr, /invalid rule "sessión:getInfo": 'ó' \(U\+00F3\) at position 6 is not allowed: rules are ASCII only \(INVALID_RULE\)/, label)
    }
    const listed = keygate(['--json', 'key', 'list'], work)
    assert.equal(JSON.parse(listed.stdout).length, 2, 'only the two long rule lists made keys')
  })

  test('a rules file ends its lines as Windows, Unix or old Mac OS do: each line is a rule of its own', () => {
    const work = mkdtempSync(path.join(dir, 'line-endings-'))
    assert.equal(keygate(['user', 'put', 'alice', '--right', '*:*'], work).code, 0)
    for (const [label, text] of [
      ['LF', 'session:getInfo\n# a comment\ndata:entityBrowseRecords2\n'],
      ['CRLF', 'session:getInfo\r\n# a comment\r\ndata:entityBrowseRecords2\r\n'],
      ['CR', 'session:getInfo\r# a comment\rdata:entityBrowseRecords2\r'],
    ] as const) {
      const file = path.join(work, `rules-${label}.txt`)
      writeFileSync(file, text)
      const r = keygate(['--json', 'key', 'create', '--user', 'alice', '--description', label, '--expires', '1d', '--rules-file', file], work)
      assert.equal(r.code, 0, `${label}: ${r.stderr}`)
      assert.deepEqual(JSON.parse(r.stdout).key.rules, ['session:getInfo', 'data:entityBrowseRecords2'], label)
    }
  })

  test('a read error of standard input ends the read with that error (its code), not a crash or a wait', async () => {
    const { readAll } = require('../lib/cli/input.js') as { readAll: (stream: NodeJS.ReadableStream) => Promise<string> }
    await assert.rejects(readAll(createReadStream(dir)), { code: 'EISDIR' })
  })

  test('keygate help of an inherited property name is "no such command", not [object Object]', () => {
    for (const word of ['__proto__', 'constructor', 'toString', 'hasOwnProperty']) {
      const r = run(['help', word])
      assert.equal(r.code, 2, `${word}: ${r.stdout}`)
      assert.match(r.stderr, /no such command/)
      assert.doesNotMatch(r.stdout + r.stderr, /\[object Object\]|native code/)
      const direct = run([word, 'list'])
      assert.equal(direct.code, 2, `${word} list: ${direct.stdout}`)
      assert.match(direct.stderr, /unknown command/)
    }
  })
})
