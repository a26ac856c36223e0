// The keygate command line, run as users run it: the real bin/keygate.js in a child process,
// on a store file in a temporary directory.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs'
import { userInfo } from 'node:os'
import path from 'node:path'

import { KeyStore } from '../index.js'
import type { ApiKey, AuditEntry, AuditReport, Decision, Role, User } from '../index.js'
import { DAY, HOUR, assertNoSecret, forgeSecret } from './helpers.js'
import { SECRET_LINE, createKey, json, jsonError, keygateError, ok, run, usage, workspace } from './support/cli.js'
import type { Run } from './support/cli.js'
import { NO_PYTHON, sql } from './support/python-sqlite.js'

const ROOT = path.join(__dirname, '..')
const { visible, visibleLines, escapedJson } = require('../lib/visible.js') as Record<'visible' | 'visibleLines' | 'escapedJson', (text: string) => string>

/** YYYY-MM-DD of `ms` from now, UTC. */
function dayFromNow(ms: number): string {
  return new Date(Date.now() + ms).toISOString().slice(0, 10)
}

// ---- help, version, usage -------------------------------------------------------

const COMMANDS = [
  'init',
  'user put',
  'user list',
  'user show',
  'user delete',
  'role put',
  'role list',
  'role show',
  'role delete',
  'key create',
  'key list',
  'key show',
  'key find',
  'key update',
  'key suspend',
  'key activate',
  'key revoke',
  'key rotate',
  'key delete',
  'check',
  'explain',
  'check-dav',
  'audit',
  'verify-audit',
  'backup',
  'copy',
]

describe('help and version', () => {
  test('keygate --help lists every command, the exit codes and the environment', async () => {
    const r = ok(await run(['--help']))
    for (const c of COMMANDS) assert.ok(r.stdout.includes(`  ${c} `), `--help should list ${c}`)
    for (const word of ['Exit codes', 'KEYGATE_DB', 'KEYGATE_ACTOR', 'KEYGATE_SECRET', '--json', '--db', '--actor']) {
      assert.ok(r.stdout.includes(word), `--help should mention ${word}`)
    }
    assert.equal(ok(await run(['help'])).stdout, r.stdout, 'keygate help = keygate --help')
    assert.equal(ok(await run(['-h'])).stdout, r.stdout, 'keygate -h = keygate --help')
  })

  test('--help for every command, in every spelling, without a store', async () => {
    const { dir, kg, cleanup } = workspace()
    try {
      await Promise.all(
        COMMANDS.map(async (c) => {
          const words = c.split(' ')
          const r = ok(await kg([...words, '--help']), `${c} --help`)
          assert.ok(r.stdout.startsWith(`keygate ${c} — `), `${c} --help title:\n${r.stdout.slice(0, 200)}`)
          assert.ok(r.stdout.includes(`Usage: keygate ${c}`), `${c} --help usage`)
          assert.ok(r.stdout.includes('Examples:'), `${c} --help examples`)
          assert.ok(r.stdout.includes('Exit codes:'), `${c} --help exit codes`)
          assert.equal(ok(await kg([...words, '-h'])).stdout, r.stdout, `${c} -h`)
          assert.equal(ok(await kg(['help', ...words])).stdout, r.stdout, `help ${c}`)
        }),
      )
      for (const group of ['user', 'role', 'key']) {
        const r = ok(await kg([group, '--help']))
        assert.ok(r.stdout.includes(`Usage: keygate ${group} <command>`))
      }
      // Help even with otherwise bad arguments, and no store file was made.
      ok(await kg(['key', 'create', '--expires', 'nonsense', '--help']))
      assert.equal(existsSync(path.join(dir, 'keygate.db')), false, 'help must not create a store')
    } finally {
      cleanup()
    }
  })

  test("-h or --help as an option's value is not help: a usage error, and nothing is created", async () => {
    const { dir, kg, cleanup } = workspace()
    try {
      ok(await kg(['user', 'put', 'u', '--right', '*:*']))
      const create = ['key', 'create', '--user', 'u', '--description', 'x', '--expires', '1d']
      for (const help of ['-h', '--help']) {
        for (const args of [
          [...create, '--rule', help],
          ['key', 'create', '--user', help, '--description', 'x', '--expires', '1d'],
          ['--db', help, 'key', 'list'],
          ['--actor', help, ...create],
        ]) {
          const r = await kg(args)
          usage(r, 'needs a value', 'write --')
          assert.equal(r.stdout, '', `${args.join(' ')}: no help printed`)
        }
      }
      assert.deepEqual(json(ok(await kg(['key', 'list', '--json']))), [], 'no key was created')
      assert.deepEqual(readdirSync(dir), ['keygate.db'], 'no other store was created')
      // Help where it is an option of its own, even after an option's value.
      const help = ok(await kg([...create, '--rule', 'session:*', '-h']))
      assert.ok(help.stdout.startsWith('keygate key create — '), help.stdout.slice(0, 200))
      // The value -h itself, written as --rule=-h, reaches the rule parser.
      keygateError(await kg([...create, '--rule=-h']), 'INVALID_RULE', 'invalid rule "-h"')
      assert.deepEqual(json(ok(await kg(['key', 'list', '--json']))), [])
    } finally {
      cleanup()
    }
  })

  test('--version prints the package version', async () => {
    const { version } = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }
    assert.equal(ok(await run(['--version'])).stdout, `keygate ${version}\n`)
    assert.deepEqual(json(ok(await run(['--version', '--json']))), { version })
  })

  test('--json --help prints the help as one JSON document, { help }, as --json promises for every outcome', async () => {
    for (const args of [['--help'], ['key', '--help'], ['key', 'create', '--help'], ['help', 'backup']]) {
      const plain = ok(await run(args)).stdout
      const doc = json<{ help: string }>(ok(await run(['--json', ...args])))
      assert.deepEqual(Object.keys(doc), ['help'], args.join(' '))
      assert.equal(`${doc.help}\n`, plain, args.join(' '))
    }
  })

  test('help says what docs/cli.md says of when a change is seen: within about 10 ms (another process), not at "the very next check"', async () => {
    for (const args of [
      ['user', 'put'],
      ['role', 'put'],
      ['key', 'update'],
      ['key', 'suspend'],
      ['key', 'revoke'],
    ]) {
      const help = ok(await run(['help', ...args])).stdout
      assert.doesNotMatch(help, /very next check/, args.join(' '))
      assert.match(help, /within about 10 ms/, args.join(' '))
    }
  })

  test('docs/cli.md documents every command, the exit codes and the environment variables', () => {
    const doc = readFileSync(path.join(ROOT, 'docs', 'cli.md'), 'utf8')
    for (const c of COMMANDS) assert.ok(doc.includes(`keygate ${c}`), `docs/cli.md should document keygate ${c}`)
    for (const word of ['Exit codes', 'KEYGATE_DB', 'KEYGATE_ACTOR', 'KEYGATE_SECRET', 'KEYGATE_MAX_LIFETIME_DAYS', '--secret-stdin']) {
      assert.ok(doc.includes(word), `docs/cli.md should mention ${word}`)
    }
  })
})

describe('usage errors: exit 2 with a plain message, nothing changed', () => {
  const ws = workspace()
  before(async () => {
    ok(await ws.kg(['user', 'put', 'alice', '--right', '*:*']))
  })
  after(() => ws.cleanup())

  test('no command, unknown command, unknown subcommand (with a suggestion)', async () => {
    usage(await ws.kg([]), 'no command given')
    usage(await ws.kg(['frobnicate']), 'unknown command "frobnicate"')
    usage(await ws.kg(['kye', 'list']), 'did you mean "key"')
    usage(await ws.kg(['key', 'lst']), 'did you mean "key list"')
    usage(await ws.kg(['key']), '"keygate key" needs a command')
    usage(await ws.kg(['help', 'nothing']), 'no such command')
  })

  test('unknown option, missing value, repeated single option, extra or missing arguments', async () => {
    usage(await ws.kg(['key', 'list', '--bogus']), 'unknown option "--bogus" (see keygate key list --help)')
    // A slip of a known option is named: --rules for --rule, --rigth for --right.
    usage(await ws.kg(['key', 'create', '--user', 'alice', '--description', 'x', '--expires', '1d', '--rules', 'a:b']), 'unknown option "--rules" (did you mean --rule?)')
    usage(await ws.kg(['user', 'put', 'alice', '--rigth', 'a:b']), 'unknown option "--rigth" (did you mean --right?)')
    // As near to --host as to --port (one letter each): both are named, not the first listed.
    usage(await ws.kg(['serve', '--hort', '8080']), 'unknown option "--hort" (did you mean --host or --port?)')
    usage(await ws.kg(['serve', '--post', '8080']), 'unknown option "--post" (did you mean --host or --port?)')
    usage(await ws.kg(['serve', '--prot', '8080']), 'unknown option "--prot" (did you mean --port?)')
    // Two letters of a short name changed make another word, not a slip: nothing is suggested.
    for (const [args, option] of [
      [['key', 'list', '--host', 'x'], '--host'],
      [['key', 'list', '--kind', 'x'], '--kind'],
      [['key', 'list', '--date', 'x'], '--date'],
      [['serve', '--pots', '1'], '--pots'],
    ] as const) {
      const r = await ws.kg([...args])
      usage(r, `unknown option "${option}" (see keygate `)
      assert.doesNotMatch(r.stderr, /did you mean/, option)
    }
    usage(await ws.kg(['key', 'list', '--user']), '--user needs a value')
    usage(await ws.kg(['key', 'list', '--user', '--state', 'active']), '--user needs a value')
    usage(await ws.kg(['key', 'list', '--json=yes']), '--json takes no value')
    usage(await ws.kg(['key', 'create', '--user', 'alice', '--user', 'bob', '--description', 'x', '--expires', '1d']), '--user is given more than once')
    usage(await ws.kg(['key', 'list', 'extra']), 'too many arguments')
    usage(await ws.kg(['key', 'show']), 'needs <key-id>')
    usage(await ws.kg(['user', 'put']), 'needs <id>')
    usage(await ws.kg(['backup']), 'needs <file>')
  })

  test('a blank actor is a usage error, given as --actor or as KEYGATE_ACTOR (an empty KEYGATE_ACTOR is unset)', async () => {
    const own = workspace()
    try {
      ok(await own.kg(['user', 'put', 'alice']))
      usage(await own.kg(['user', 'put', 'bob', '--actor', '   ']), '--actor needs a name')
      usage(await own.kg(['user', 'put', 'bob'], { env: { KEYGATE_ACTOR: ' \t ' } }), 'KEYGATE_ACTOR needs a name')
      assert.equal(json<AuditEntry[]>(ok(await own.kg(['audit', '--json']))).length, 1, 'nothing was written')
      ok(await own.kg(['user', 'put', 'bob'], { env: { KEYGATE_ACTOR: '' } }))
      assert.equal(json<AuditEntry[]>(ok(await own.kg(['audit', '--json'])))[0]?.actor, userInfo().username)
    } finally {
      own.cleanup()
    }
  })

  test('missing required options', async () => {
    usage(await ws.kg(['key', 'create', '--description', 'x', '--expires', '1d']), 'needs --user')
    usage(await ws.kg(['key', 'create', '--user', 'alice', '--expires', '1d']), 'needs --description')
    usage(await ws.kg(['key', 'create', '--user', 'alice', '--description', 'x']), 'needs --expires')
    usage(await ws.kg(['role', 'put', 'r']), 'needs --right')
    usage(await ws.kg(['key', 'update', 'key_x']), 'needs something to change')
  })

  test('bad durations, dates, states, statuses and numbers', async () => {
    const base = ['key', 'create', '--user', 'alice', '--description', 'x']
    usage(await ws.kg([...base, '--expires', '3y']), '--expires "3y" is neither a duration nor a date', '90d')
    usage(await ws.kg([...base, '--expires', 'tomorrow']), 'is neither a duration nor a date')
    usage(await ws.kg([...base, '--expires', '2027-02-30']), 'is not a valid date')
    usage(await ws.kg([...base, '--expires', '2027-01-31T25:00Z']), 'is not a valid date')
    usage(await ws.kg([...base, '--expires', '1d', '--state', 'revoked']), '--state "revoked" must be one of: active, suspended')
    usage(await ws.kg(['key', 'list', '--state', 'weird']), '--state "weird" must be one of: active, suspended, revoked')
    usage(await ws.kg(['user', 'put', 'bob', '--status', 'gone']), '--status "gone" must be one of')
    usage(await ws.kg(['key', 'rotate', 'key_x', '--overlap', 'forever']), '--overlap "forever" is not a duration')
    usage(await ws.kg(['audit', '--since', 'yesterday']), '--since "yesterday"')
    usage(await ws.kg(['audit', '--limit', 'ten']), '--limit "ten" must be a whole number')
    usage(await ws.kg(['audit', '--before-seq', '-1']), '--before-seq "-1" must be a whole number from 0 to 9007199254740991')
    usage(await ws.kg(['--max-lifetime-days', '0', 'key', 'list']), '--max-lifetime-days "0"')
    usage(await ws.kg(['user', 'put', 'bob', '--right', 'a:b', '--no-rights']), 'not both')
    // Nothing of the above changed the store.
    const users = json<User[]>(ok(await ws.kg(['user', 'list', '--json'])))
    assert.deepEqual(
      users.map((u) => u.id),
      ['alice'],
    )
    assert.deepEqual(json<ApiKey[]>(ok(await ws.kg(['key', 'list', '--json']))), [])
  })

  test('whole numbers are taken at each bound and refused one past it or written otherwise; durations in capitals, with spaces, or 0', async () => {
    ok(await ws.kg(['audit', '--limit', '1']))
    ok(await ws.kg(['audit', '--limit', '1000000']))
    ok(await ws.kg(['audit', '--limit', ' 5 ']))
    for (const bad of ['0', '1000001', '5x', 'x5', '1e3', '2.5', '-1']) {
      usage(await ws.kg(['audit', '--limit', bad]), `--limit "${bad}" must be a whole number from 1 to 1000000`)
    }
    ok(await ws.kg(['--max-lifetime-days', '36500', 'key', 'list']))
    usage(await ws.kg(['--max-lifetime-days', '36501', 'key', 'list']), '--max-lifetime-days "36501" must be a whole number from 1 to 36500')
    for (const when of ['1D12H', ' 30d ', '0']) ok(await ws.kg(['audit', '--since', when]))
    // A command two letters off is still named (the most a word of its length may be off).
    usage(await ws.kg(['autid']), 'unknown command "autid" (did you mean "audit"?)')
    usage(await ws.kg(['chk']), 'unknown command "chk" (did you mean "check"?)')
    assert.deepEqual(json<ApiKey[]>(ok(await ws.kg(['key', 'list', '--json']))), [])
  })

  test('a duration beyond the dates JavaScript can hold is a usage error; a date before year 100 is a date', async () => {
    // 100000000d from now is past the last Date (+275760): not the store's "invalid Date".
    const base = ['key', 'create', '--user', 'alice', '--description', 'x']
    usage(await ws.kg([...base, '--expires', '100000000d']), '--expires "100000000d"', 'out of range')
    usage(await ws.kg(['audit', '--since', '104000000d']), '--since "104000000d"', 'out of range')
    // A duration too long for a safe integer of milliseconds is a duration too, out of range as
    // well (the range said), not "neither a duration nor a date".
    for (const [args, option] of [
      [[...base, '--expires', '100000000000d'], '--expires'],
      [['key', 'update', 'key_x', '--expires', '100000000000d'], '--expires'],
      [['audit', '--since', '100000000000d'], '--since'],
      [['audit', '--until', `${'9'.repeat(30)}w`], '--until'],
    ] as const) {
      const r = await ws.kg([...args])
      assert.equal(r.code, 2, r.stderr)
      assert.match(
        r.stderr,
        new RegExp(`^error: ${option} "\\d+[dw]" is out of range: it reaches (past the last|before the first) date a time can have \\(year -?\\d+\\)`),
        r.stderr,
      )
    }
    jsonError(await ws.kg([...base, '--expires', '100000000d', '--json']), 2, 'USAGE')
    // Years 0000-0099 are real dates (Date.UTC would take 0099 for 1999): in the past, as any other.
    keygateError(await ws.kg([...base, '--expires', '0099-01-01']), 'EXPIRY_IN_PAST')
    keygateError(await ws.kg([...base, '--expires', '0000-03-01T00:00:00Z']), 'EXPIRY_IN_PAST')
    assert.ok(Array.isArray(json(ok(await ws.kg(['audit', '--since', '0050-01-01', '--json'])))))
    assert.deepEqual(json<ApiKey[]>(ok(await ws.kg(['key', 'list', '--json']))), [])
  })

  test('out of range names its edge: past the last date for --expires, before the first for --since and --until', async () => {
    const base = ['key', 'create', '--user', 'alice', '--description', 'x']
    const past = 'is out of range: it reaches past the last date a time can have (year 275760)'
    const before = 'is out of range: it reaches before the first date a time can have (year -271821)'
    usage(await ws.kg([...base, '--expires', '100000000d']), `--expires "100000000d" ${past}`)
    usage(await ws.kg(['key', 'update', 'key_x', '--expires', '100000000000d']), `--expires "100000000000d" ${past}`)
    usage(await ws.kg(['audit', '--since', '104000000d']), `--since "104000000d" ${before}`)
    usage(await ws.kg(['audit', '--until', '100000000000d']), `--until "100000000000d" ${before}`)
  })

  test('a value shaped as a date but not one is "not a valid date"; other words are "neither"; 0 is a duration', async () => {
    const base = ['key', 'create', '--user', 'alice', '--description', 'x']
    // Month and day of one digit, or spaces around, still look like a date: the message says how to write one.
    usage(await ws.kg([...base, '--expires', '2027-2-3']), '--expires "2027-2-3" is not a valid date or time; a date is YYYY-MM-DD')
    usage(await ws.kg(['audit', '--since', ' 2027-02-30 ']), '--since " 2027-02-30 " is not a valid date or time')
    // A date after other words, or with a year of two digits, is no date at all.
    usage(await ws.kg([...base, '--expires', 'on 2027-01-31']), '--expires "on 2027-01-31" is neither a duration nor a date')
    usage(await ws.kg(['audit', '--until', '27-01-31']), '--until "27-01-31" is neither a duration (ago) nor a date')
    // `0` is zero (docs/cli.md): a key expiring now is the store's EXPIRY_IN_PAST, not a usage error.
    keygateError(await ws.kg([...base, '--expires', '0']), 'EXPIRY_IN_PAST')
    assert.deepEqual(json<ApiKey[]>(ok(await ws.kg(['key', 'list', '--json']))), [])
  })

  test('states, statuses and actions are taken as written: no other case, no spaces', async () => {
    usage(await ws.kg(['key', 'list', '--state', 'Active']), '--state "Active" must be one of: active, suspended, revoked')
    usage(await ws.kg(['key', 'list', '--state', ' active']), '--state " active" must be one of')
    usage(await ws.kg(['user', 'put', 'bob', '--status', 'SUSPENDED']), '--status "SUSPENDED" must be one of')
    usage(await ws.kg(['audit', '--action', 'setState ']), '--action "setState " must be one of')
    assert.deepEqual(
      json<User[]>(ok(await ws.kg(['user', 'list', '--json']))).map((u) => u.id),
      ['alice'],
    )
  })

  test('a command is named only within the edits its length allows; of several as near, the first listed', async () => {
    const noHint = (r: Run, word: string) => {
      usage(r, `unknown command "${word}"`)
      assert.doesNotMatch(r.stderr, /did you mean/, r.stderr)
    }
    noHint(await ws.kg(['frobnicate']), 'frobnicate')
    // Four letters or fewer: two edits at most (list is three from init).
    noHint(await ws.kg(['list']), 'list')
    // Five letters: two edits at most (store is three from role and from serve).
    noHint(await ws.kg(['store']), 'store')
    // Six letters: three edits (chkdav is three from check-dav).
    usage(await ws.kg(['chkdav']), 'unknown command "chkdav" (did you mean "check-dav"?)')
    // As near to create as to revoke and rotate (three edits each): the first listed, never more.
    usage(await ws.kg(['key', 'rename']), 'unknown command "key rename" (did you mean "key create"?)')
    // A word in capitals is a slip too, as an option is (--RULE names --rule).
    usage(await ws.kg(['KEY', 'list']), 'unknown command "KEY" (did you mean "key"?)')
    usage(await ws.kg(['key', 'List']), 'unknown command "key List" (did you mean "key list"?)')
  })

  test('with --json, a usage error is a JSON document on stdout', async () => {
    const r = await ws.kg(['key', 'list', '--bogus', '--json'])
    jsonError(r, 2, 'USAGE')
    assert.equal(r.stderr, '')
    jsonError(await ws.kg(['--json', 'frobnicate']), 2, 'USAGE')
  })
})

// ---- the store file ----------------------------------------------------------------

describe('the store file', () => {
  test('--db, then $KEYGATE_DB, then ./keygate.db; read commands refuse a missing store', async () => {
    const { dir, db, kg, cleanup } = workspace()
    try {
      // No store yet: a read command says so (exit 3, STORE_IO) and creates nothing.
      keygateError(await kg(['key', 'list']), 'STORE_IO', 'no keygate store at', 'keygate init')
      assert.equal(existsSync(db), false)
      jsonError(await kg(['key', 'list', '--json']), 3, 'STORE_IO')

      // init creates it (once); a second init does nothing.
      assert.match(ok(await kg(['init'])).stdout, /created keygate store/)
      assert.ok(existsSync(db))
      assert.deepEqual(json(ok(await kg(['init', '--json']))), { db, created: false })

      // --db wins over $KEYGATE_DB; a relative --db is relative to the working directory.
      const r = ok(await kg(['--db', 'other.db', 'user', 'put', 'bob']))
      assert.match(r.stderr, /note: created a new keygate store .*other\.db/)
      assert.ok(existsSync(path.join(dir, 'other.db')))
      assert.deepEqual(json<User[]>(ok(await kg(['user', 'list', '--json']))), [])
      assert.deepEqual(
        json<User[]>(ok(await kg(['user', 'list', '--json', '--db', 'other.db']))).map((u) => u.id),
        ['bob'],
      )
      // Without --db and $KEYGATE_DB: ./keygate.db of the working directory.
      const bare = ok(await run(['user', 'list', '--json'], { cwd: dir }))
      assert.deepEqual(json(bare), [])

      // Store errors from keygate itself: a directory.
      keygateError(await kg(['--db', dir, 'user', 'put', 'x']), 'STORE_IO', 'directory')
      // Not a keygate store.
      writeFileSync(path.join(dir, 'junk.db'), 'this is not a database, just some text '.repeat(200))
      keygateError(await kg(['--db', 'junk.db', 'user', 'list']), 'STORE_CORRUPT')
    } finally {
      cleanup()
    }
  })

  test('an empty file is not a store: read commands refuse it and leave it empty; init makes a store of it', async () => {
    const { dir, db, kg, cleanup } = workspace()
    try {
      // `touch keygate.db`, mktemp, a failed download: a file of 0 bytes is no keygate store.
      writeFileSync(db, '')
      for (const args of [['key', 'list'], ['audit'], ['user', 'show', 'svc'], ['verify-audit']]) {
        keygateError(await kg(args), 'STORE_IO', 'no keygate store at')
        jsonError(await kg([...args, '--json']), 3, 'STORE_IO')
      }
      // Nor is it a store to copy from (copy changes nothing in its source).
      keygateError(await kg(['copy', db, 'out.db']), 'STORE_IO', 'no keygate store at', 'empty')
      assert.equal(statSync(db).size, 0, 'a read command wrote a store into the empty file')
      assert.deepEqual(readdirSync(dir).sort(), ['keygate.db'])
      // init (and user put, role put) may create the store, in the empty file too.
      assert.match(ok(await kg(['init'])).stdout, /created keygate store/)
      ok(await kg(['key', 'list']))
    } finally {
      cleanup()
    }
  })

  test('init --key-prefix sets the prefix of issued secrets', async () => {
    const { kg, cleanup } = workspace()
    try {
      ok(await kg(['init', '--key-prefix', 'acme']))
      ok(await kg(['user', 'put', 'u', '--right', '*:*']))
      const { secret } = await createKey(kg, ['--user', 'u', '--description', 'x', '--expires', '1h'])
      assert.match(secret, /^acme_[0-9A-Za-z]{49}$/)
    } finally {
      cleanup()
    }
  })
})

// ---- users and roles ---------------------------------------------------------------

describe('users and roles', () => {
  const ws = workspace()
  after(() => ws.cleanup())

  test('role put / list / show, text and JSON', async () => {
    const r = ok(await ws.kg(['role', 'put', 'request-agent', '--right', 'session:*', '--right', 'apps/com.hornbill.servicemanager/*:*']))
    assert.match(r.stdout, /created role request-agent/)
    const role = json<Role>(ok(await ws.kg(['role', 'put', 'reader', '--right', 'data:entityBrowseRecords2', '--json'])))
    assert.deepEqual(role, { name: 'reader', rights: ['data:entityBrowseRecords2'] })
    assert.match(ok(await ws.kg(['role', 'put', 'reader', '--right', 'data:*'])).stdout, /replaced role reader/)

    const list = ok(await ws.kg(['role', 'list']))
    assert.match(list.stdout, /^NAME\s+USERS\s+RIGHTS\n/)
    assert.match(list.stdout, /reader\s+0\s+data:\*/)
    assert.deepEqual(
      json<Role[]>(ok(await ws.kg(['role', 'list', '--json']))).map((x) => x.name),
      ['reader', 'request-agent'],
    )
    assert.match(ok(await ws.kg(['role', 'show', 'request-agent'])).stdout, /rights\s+session:\*, apps\/com\.hornbill\.servicemanager\/\*:\*/)
    assert.deepEqual(json(ok(await ws.kg(['role', 'show', 'reader', '--json']))), { role: { name: 'reader', rights: ['data:*'] }, users: [] })

    keygateError(await ws.kg(['role', 'put', 'bad', '--right', 'ip=10.0.0.0/8']), 'INVALID_RULE')
    keygateError(await ws.kg(['role', 'put', 'bad name', '--right', 'a:b']), 'INVALID_ARGUMENT')
  })

  test('user put creates, then changes only what is given', async () => {
    const created = ok(await ws.kg(['user', 'put', 'svc-requests', '--role', 'request-agent', '--right', 'data:entityBrowseRecords2']))
    assert.match(created.stdout, /created user svc-requests/)
    assert.match(created.stdout, /effective data:entityBrowseRecords2, session:\*/)

    // --status alone keeps rights and roles.
    const suspended = json<User>(ok(await ws.kg(['user', 'put', 'svc-requests', '--status', 'suspended', '--json'])))
    assert.deepEqual(suspended, { id: 'svc-requests', status: 'suspended', rights: ['data:entityBrowseRecords2'], roles: ['request-agent'] })
    // --role replaces the roles; --no-rights empties the rights.
    const changed = json<User>(ok(await ws.kg(['user', 'put', 'svc-requests', '--status', 'active', '--role', 'reader', '--no-rights', '--json'])))
    assert.deepEqual(changed, { id: 'svc-requests', status: 'active', rights: [], roles: ['reader'] })
    const back = json<User>(
      ok(await ws.kg(['user', 'put', 'svc-requests', '--role', 'request-agent', '--role', 'reader', '--right', 'data:entityBrowseRecords2', '--json'])),
    )
    assert.deepEqual(back.roles, ['request-agent', 'reader'])

    keygateError(await ws.kg(['user', 'put', 'bob', '--role', 'no-such-role']), 'UNKNOWN_ROLE', 'no-such-role')
    keygateError(await ws.kg(['user', 'put', 'bad id!']), 'INVALID_ARGUMENT')
    jsonError(await ws.kg(['user', 'put', 'bob', '--role', 'no-such-role', '--json']), 3, 'UNKNOWN_ROLE')
  })

  test('user list and user show (with effective rights and keys)', async () => {
    ok(await ws.kg(['user', 'put', 'alice', '--right', '*:*']))
    const { id } = await createKey(ws.kg, ['--user', 'svc-requests', '--description', 'Request sync', '--expires', '30d'])

    const list = ok(await ws.kg(['user', 'list']))
    assert.match(list.stdout, /^ID\s+STATUS\s+ROLES\s+RIGHTS\s+KEYS\n/)
    assert.match(list.stdout, /svc-requests\s+active\s+request-agent, reader\s+data:entityBrowseRecords2\s+1/)
    assert.deepEqual(
      json<User[]>(ok(await ws.kg(['user', 'list', '--json']))).map((u) => u.id),
      ['alice', 'svc-requests'],
    )

    const show = ok(await ws.kg(['user', 'show', 'svc-requests']))
    assert.match(show.stdout, /status\s+active/)
    assert.ok(show.stdout.includes(id), 'user show lists the user’s keys')
    const shown = json<{ user: User; effectiveRights: string[]; keys: ApiKey[] }>(ok(await ws.kg(['user', 'show', 'svc-requests', '--json'])))
    assert.equal(shown.user.id, 'svc-requests')
    assert.deepEqual(shown.effectiveRights, ['data:entityBrowseRecords2', 'session:*', 'apps/com.hornbill.servicemanager/*:*', 'data:*'])
    assert.deepEqual(
      shown.keys.map((k) => k.id),
      [id],
    )

    // Not found: exit 1 with the code.
    const missing = await ws.kg(['user', 'show', 'nobody'])
    assert.equal(missing.code, 1)
    assert.equal(missing.stderr, 'error: no user with id "nobody" (UNKNOWN_USER)\n')
    jsonError(await ws.kg(['user', 'show', 'nobody', '--json']), 1, 'UNKNOWN_USER')
  })

  test('role show lists holders; role delete takes the role from them; user delete removes keys', async () => {
    assert.deepEqual(json<{ users: string[] }>(ok(await ws.kg(['role', 'show', 'reader', '--json']))).users, ['svc-requests'])
    assert.match(ok(await ws.kg(['role', 'delete', 'reader'])).stdout, /deleted role reader \(taken from 1 user\)/)
    assert.deepEqual(json<User>(ok(await ws.kg(['user', 'put', 'svc-requests', '--json']))).roles, ['request-agent'])
    const again = await ws.kg(['role', 'delete', 'reader'])
    assert.equal(again.code, 1)
    assert.match(again.stderr, /no role named "reader" \(UNKNOWN_ROLE\)/)
    assert.equal((await ws.kg(['role', 'show', 'reader'])).code, 1)
    assert.deepEqual(json(ok(await ws.kg(['role', 'delete', 'request-agent', '--json']))), { deleted: true, name: 'request-agent', usersAffected: 1 })

    assert.match(ok(await ws.kg(['user', 'delete', 'svc-requests'])).stdout, /deleted user svc-requests and its 1 key$/m)
    assert.deepEqual(json<ApiKey[]>(ok(await ws.kg(['key', 'list', '--json']))), [])
    assert.equal((await ws.kg(['user', 'delete', 'svc-requests'])).code, 1)
    assert.deepEqual(json(ok(await ws.kg(['user', 'delete', 'alice', '--json']))), { deleted: true, id: 'alice', keysDeleted: 0 })
  })
})

// ---- keys --------------------------------------------------------------------------

describe('keys', () => {
  const ws = workspace()
  before(async () => {
    ok(await ws.kg(['user', 'put', 'svc', '--right', 'session:*', '--right', 'data:*']))
    ok(await ws.kg(['user', 'put', 'other', '--right', '*:*']))
  })
  after(() => ws.cleanup())

  test('key create prints the secret exactly once, clearly marked; nothing else ever shows it', async () => {
    const { id, secret, out } = await createKey(ws.kg, [
      '--user',
      'svc',
      '--description',
      'Request sync',
      '--expires',
      '90d',
      '--rule',
      'session:get*',
      '--rule',
      'ip=10.0.0.0/8',
    ])
    assert.match(secret, /^kg_[0-9A-Za-z]{49}$/)
    assert.equal(out.stdout.split(secret).length - 1, 1, 'the secret appears exactly once')
    assert.ok(!out.stderr.includes(secret))
    assert.match(out.stdout, /rules\s+session:get\*\n\s+ip=10\.0\.0\.0\/8/)
    assert.match(out.stdout, /hint\s+…(\w{4})/)
    assert.equal(/hint\s+…(\w{4})/.exec(out.stdout)?.[1], secret.slice(-4))

    const views = await Promise.all(
      [
        ['key', 'list'],
        ['key', 'list', '--json'],
        ['key', 'show', id],
        ['key', 'show', id, '--json'],
        ['user', 'show', 'svc'],
        ['user', 'show', 'svc', '--json'],
        ['audit'],
        ['audit', '--json'],
        ['check', secret, 'session', 'getInfo', '--ip', '10.1.2.3'],
        ['explain', secret, 'session', 'getInfo', '--ip', '10.1.2.3', '--json'],
        ['explain', secret, 'session', 'userLogon'],
      ].map((args) => ws.kg(args)),
    )
    for (const r of views) assertNoSecret(r.stdout + r.stderr, secret)
  })

  test('key create --json gives { key, secret }; dates and durations for --expires', async () => {
    const before = Date.now()
    const issued = json<{ key: ApiKey; secret: string }>(
      ok(await ws.kg(['key', 'create', '--json', '--user', 'svc', '--description', '', '--expires', '1d12h', '--state', 'suspended'])),
    )
    assert.match(issued.secret, /^kg_/)
    assert.equal(issued.key.state, 'suspended')
    assert.equal(issued.key.description, '')
    const expires = Date.parse(issued.key.expiresAt as unknown as string)
    assert.ok(Math.abs(expires - (before + 36 * HOUR)) < 30_000, 'expires in 1d12h')
    assertNoSecret(issued.key, issued.secret)

    const day = dayFromNow(40 * DAY)
    const dated = json<{ key: ApiKey }>(ok(await ws.kg(['key', 'create', '--json', '--user', 'svc', '--description', 'd', '--expires', day])))
    assert.equal(dated.key.expiresAt, `${day}T00:00:00.000Z` as unknown as Date, 'YYYY-MM-DD is midnight UTC at the start of the day')
    const offset = json<{ key: ApiKey }>(ok(await ws.kg(['key', 'create', '--json', '--user', 'svc', '--description', 'd', '--expires', `${day}T18:30+02:00`])))
    assert.equal(offset.key.expiresAt, `${day}T16:30:00.000Z` as unknown as Date)
    const noOffset = json<{ key: ApiKey }>(ok(await ws.kg(['key', 'create', '--json', '--user', 'svc', '--description', 'd', '--expires', `${day}T18:30`])))
    assert.equal(noOffset.key.expiresAt, `${day}T18:30:00.000Z` as unknown as Date, 'no offset = UTC')
    for (const [text, ms] of [
      ['2w', 14 * DAY],
      ['12h', 12 * HOUR],
      ['30m', 30 * 60_000],
      ['90d', 90 * DAY],
    ] as const) {
      const k = json<{ key: ApiKey }>(ok(await ws.kg(['key', 'create', '--json', '--user', 'svc', '--description', text, '--expires', text])))
      assert.ok(Math.abs(Date.parse(k.key.expiresAt as unknown as string) - Date.now() - ms) < 30_000, `--expires ${text}`)
    }
  })

  test('store errors: exit 3 with the KeygateError code, in text and JSON', async () => {
    keygateError(await ws.kg(['key', 'create', '--user', 'nobody', '--description', 'x', '--expires', '1d']), 'UNKNOWN_USER', 'nobody')
    jsonError(await ws.kg(['key', 'create', '--user', 'nobody', '--description', 'x', '--expires', '1d', '--json']), 3, 'UNKNOWN_USER')
    keygateError(await ws.kg(['key', 'create', '--user', 'svc', '--description', 'x', '--expires', '800d']), 'EXPIRY_TOO_FAR')
    keygateError(await ws.kg(['key', 'create', '--user', 'svc', '--description', 'x', '--expires', '2020-01-01']), 'EXPIRY_IN_PAST')
    keygateError(await ws.kg(['key', 'create', '--user', 'svc', '--description', 'x', '--expires', '1d', '--rule', 'bad rule']), 'INVALID_RULE', 'bad rule')
    keygateError(await ws.kg(['key', 'create', '--user', 'svc', '--description', 'x', '--expires', '1d', '--rule', 'ip=10.0.0.1/8']), 'INVALID_RULE', 'ip=10.0.0.0/8')
    // --max-lifetime-days / $KEYGATE_MAX_LIFETIME_DAYS narrow the limit.
    keygateError(await ws.kg(['--max-lifetime-days', '30', 'key', 'create', '--user', 'svc', '--description', 'x', '--expires', '31d']), 'EXPIRY_TOO_FAR')
    keygateError(
      await ws.kg(['key', 'create', '--user', 'svc', '--description', 'x', '--expires', '31d'], { env: { KEYGATE_MAX_LIFETIME_DAYS: '30' } }),
      'EXPIRY_TOO_FAR',
    )
    keygateError(await ws.kg(['key', 'suspend', 'key_doesNotExist']), 'UNKNOWN_KEY', 'key_doesNotExist')
  })

  test('key list: table, filters, JSON', async () => {
    const list = ok(await ws.kg(['key', 'list']))
    assert.match(list.stdout, /^ID\s+USER\s+STATE\s+EXPIRES\s+LAST USED\s+HINT\s+DESCRIPTION\n/)
    assert.match(list.stdout, /key_\w+\s+svc\s+active\s+\d{4}-\d\d-\d\d \d\d:\d\dZ\s+\d{4}-\d\d-\d\d \d\d:\d\dZ\s+…\w{4}\s+Request sync\n/)
    assert.match(list.stdout, /key_\w+\s+svc\s+suspended\s+\d{4}-\d\d-\d\d \d\d:\d\dZ\s+never\s+…\w{4}\n/)
    const all = json<ApiKey[]>(ok(await ws.kg(['key', 'list', '--json'])))
    assert.ok(all.length >= 7)
    const suspended = json<ApiKey[]>(ok(await ws.kg(['key', 'list', '--json', '--state', 'suspended'])))
    assert.ok(suspended.length >= 1 && suspended.every((k) => k.state === 'suspended'))
    assert.deepEqual(json(ok(await ws.kg(['key', 'list', '--json', '--user', 'other']))), [])
    assert.equal(ok(await ws.kg(['key', 'list', '--user', 'other'])).stdout, 'no keys\n')
  })

  test('key list --limit/--after: pages of the same list, the next page named at the end, { keys, next } in JSON', async () => {
    const all = json<ApiKey[]>(ok(await ws.kg(['key', 'list', '--json'])))
    assert.ok(all.length >= 3)
    const seen: string[] = []
    let after: string | null = null
    for (let pages = 0; pages < 100; pages++) {
      const page: { keys: ApiKey[]; next: string | null } = json(
        ok(await ws.kg(['key', 'list', '--json', '--limit', '2', ...(after === null ? [] : ['--after', after])])),
      )
      assert.ok(page.keys.length <= 2)
      seen.push(...page.keys.map((k) => k.id))
      after = page.next
      if (after === null) break
    }
    assert.deepEqual(
      seen,
      all.map((k) => k.id),
    )
    const text = ok(await ws.kg(['key', 'list', '--limit', '1']))
    const next = /\(more keys match: the next page is --after (kp1\.\S+)\)\n$/.exec(text.stdout)
    assert.ok(next, text.stdout)
    assert.equal(text.stdout.split('\n').filter((line) => line.startsWith('key_')).length, 1)
    const rest = ok(await ws.kg(['key', 'list', '--after', next[1]!]))
    assert.doesNotMatch(rest.stdout, /more keys match/, 'the last page says no more')
    assert.equal(rest.stdout.split('\n').filter((line) => line.startsWith('key_')).length, all.length - 1)
    usage(await ws.kg(['key', 'list', '--limit', '0']), '--limit "0" must be a whole number from 1 to 1000')
    usage(await ws.kg(['key', 'list', '--limit', '1001']), '--limit')
    usage(await ws.kg(['key', 'list', '--limit', '2', '--hint', 'HRV5']), '--hint looks through every key')
    keygateError(await ws.kg(['key', 'list', '--after', 'key_doesNotExist']), 'INVALID_ARGUMENT', 'not a cursor')
    jsonError(await ws.kg(['key', 'list', '--after', 'nope', '--json']), 3, 'INVALID_ARGUMENT')
  })

  test('key show, update, suspend, activate, revoke (final), delete', async () => {
    const { id, secret } = await createKey(ws.kg, ['--user', 'svc', '--description', 'lifecycle', '--expires', '10d'])
    const shown = ok(await ws.kg(['key', 'show', id]))
    assert.match(shown.stdout, new RegExp(`key\\s+${id}`))
    assert.match(shown.stdout, /rules\s+\(none/)
    assert.equal(json<ApiKey>(ok(await ws.kg(['key', 'show', id, '--json']))).description, 'lifecycle')

    const rulesFile = path.join(ws.dir, 'rules.txt')
    writeFileSync(rulesFile, '# the sync job\nsession:get*\n\n  data:entityBrowseRecords2  \n')
    const updated = json<ApiKey>(
      ok(await ws.kg(['key', 'update', id, '--description', 'renamed', '--rule', 'session:userLogon', '--rules-file', rulesFile, '--expires', '5d', '--json'])),
    )
    assert.equal(updated.description, 'renamed')
    assert.deepEqual(updated.rules, ['session:userLogon', 'session:get*', 'data:entityBrowseRecords2'])
    assert.ok(Math.abs(Date.parse(updated.expiresAt as unknown as string) - Date.now() - 5 * DAY) < 30_000)
    assert.deepEqual(json<ApiKey>(ok(await ws.kg(['key', 'update', id, '--no-rules', '--json']))).rules, [])
    usage(await ws.kg(['key', 'update', id, '--rules-file', path.join(ws.dir, 'missing.txt')]), 'cannot read --rules-file')

    assert.equal(ok(await ws.kg(['key', 'suspend', id])).stdout, `key ${id} is now suspended\n`)
    assert.equal((await ws.kg(['check', secret, 'session', 'getInfo'])).code, 1)
    assert.equal(json<ApiKey>(ok(await ws.kg(['key', 'activate', id, '--json']))).state, 'active')
    assert.equal((await ws.kg(['check', secret, 'session', 'getInfo'])).code, 0)

    const revoked = ok(await ws.kg(['key', 'revoke', id]))
    assert.match(revoked.stdout, /is now revoked \(revoked is final/)
    assert.equal(json<ApiKey>(ok(await ws.kg(['key', 'revoke', id, '--json']))).state, 'revoked', 'revoking again does nothing')
    keygateError(await ws.kg(['key', 'activate', id]), 'REVOKED_IS_FINAL')
    keygateError(await ws.kg(['key', 'update', id, '--description', 'x']), 'REVOKED_IS_FINAL')
    jsonError(await ws.kg(['key', 'suspend', id, '--json']), 3, 'REVOKED_IS_FINAL')

    assert.equal(ok(await ws.kg(['key', 'delete', id])).stdout, `deleted key ${id}\n`)
    const gone = await ws.kg(['key', 'show', id])
    assert.equal(gone.code, 1)
    assert.equal(gone.stderr, `error: no key with id "${id}" (UNKNOWN_KEY)\n`)
    jsonError(await ws.kg(['key', 'delete', id, '--json']), 1, 'UNKNOWN_KEY')
    assert.equal((await ws.kg(['key', 'delete', id])).code, 1)
  })

  test('key rotate: new secret once; old key revoked, or usable for --overlap', async () => {
    const { id, secret } = await createKey(ws.kg, ['--user', 'svc', '--description', 'rotating', '--expires', '10d', '--rule', 'session:*'])
    const rotated = ok(await ws.kg(['key', 'rotate', id, '--overlap', '1h']))
    const next = SECRET_LINE.exec(rotated.stdout)?.[1]
    assert.ok(next && next !== secret)
    assert.equal(rotated.stdout.split(next).length - 1, 1)
    assertNoSecret(rotated.stdout, secret)
    assert.match(rotated.stdout, new RegExp(`old key ${id}: active, usable until `))
    assert.equal((await ws.kg(['check', secret, 'session', 'x'])).code, 0, 'old key usable during the overlap')
    assert.equal((await ws.kg(['check', next, 'session', 'x'])).code, 0, 'new key usable')

    const newId = /→ (key_\w+)/.exec(rotated.stdout)?.[1]
    assert.ok(newId)
    const again = json<{ key: ApiKey; secret: string; previous: ApiKey }>(ok(await ws.kg(['key', 'rotate', newId, '--json'])))
    assert.equal(again.previous.id, newId)
    assert.equal(again.previous.state, 'revoked', 'no overlap: revoked at once')
    assert.deepEqual(again.key.rules, ['session:*'])
    assert.equal((await ws.kg(['check', next, 'session', 'x'])).code, 1)
    assert.equal((await ws.kg(['check', again.secret, 'session', 'x'])).code, 0)
  })

  test('key rotate --overlap: a duration longer than a safe integer holds is capped at the key’s expiry, as rotateKey caps overlapSeconds', async () => {
    const { id, secret } = await createKey(ws.kg, ['--user', 'svc', '--description', 'long overlap', '--expires', '10d'])
    const expiresAt = json<ApiKey>(ok(await ws.kg(['key', 'show', id, '--json']))).expiresAt
    for (const overlap of ['100000000000d', `${'9'.repeat(400)}w`]) {
      const rotated = json<{ key: ApiKey; previous: ApiKey }>(ok(await ws.kg(['key', 'rotate', id, '--overlap', overlap, '--json'])))
      assert.equal(rotated.previous.state, 'active', overlap)
      assert.equal(rotated.previous.expiresAt, expiresAt, `${overlap}: the overlap ends at the key's own expiry`)
      assert.equal(rotated.key.expiresAt, expiresAt)
      assert.equal((await ws.kg(['check', secret, 'session', 'x'])).code, 0, 'the old key is still usable')
    }
  })
})

// ---- check and explain ----------------------------------------------------------------

describe('check and explain', () => {
  const ws = workspace()
  let secret = ''
  let id = ''
  before(async () => {
    ok(await ws.kg(['role', 'put', 'agent', '--right', 'session:*']))
    ok(await ws.kg(['user', 'put', 'svc', '--role', 'agent']))
    ;({ id, secret } = await createKey(ws.kg, ['--user', 'svc', '--description', 'd', '--expires', '1d', '--rule', 'session:get*', '--rule', 'ip=10.0.0.0/8']))
  })
  after(() => ws.cleanup())

  test('check: exit 0 when allowed, 1 when denied, with the reason', async () => {
    const allowed = await ws.kg(['check', secret, 'session', 'getInfo', '--ip', '10.1.2.3'])
    assert.equal(allowed.code, 0)
    assert.equal(allowed.stdout, `allowed (key ${id}, user svc, rule session:get*)\n`)
    const cases: [string[], string][] = [
      [[secret, 'session', 'userLogon', '--ip', '10.1.2.3'], 'no_matching_rule'],
      [[secret, 'session', 'getInfo', '--ip', '192.168.0.1'], 'ip_not_allowed'],
      [[secret, 'session', 'getInfo'], 'ip_not_allowed'],
      [[secret, 'data', 'getThing', '--ip', '10.1.2.3'], 'user_lacks_right'],
      [[secret, 'bad service!', 'x'], 'invalid_request'],
      [[forgeSecret(), 'session', 'getInfo'], 'unknown_key'],
      [['kg_not-a-key', 'session', 'getInfo'], 'malformed_key'],
    ]
    for (const [args, reason] of cases) {
      const r = await ws.kg(['check', ...args])
      assert.equal(r.code, 1, `${reason}: ${r.stdout}${r.stderr}`)
      assert.match(r.stdout, new RegExp(`^denied: ${reason}`))
      const d = json<Decision>(await ws.kg(['check', ...args, '--json']))
      assert.equal(d.allowed, false)
      assert.equal(d.reason, reason)
    }
    assert.deepEqual(json<Decision>(await ws.kg(['check', secret, 'session', 'getInfo', '--ip', '10.1.2.3', '--json'])), {
      allowed: true,
      reason: 'allowed',
      keyId: id,
      userId: 'svc',
      matchedRule: 'session:get*',
    })
  })

  test('explain: the whole decision, in words; same exit codes', async () => {
    const r = await ws.kg(['explain', secret, 'session', 'userLogon', '--ip', '10.1.2.3'])
    assert.equal(r.code, 1)
    assert.match(r.stdout, /^denied: no_matching_rule\n/)
    assert.match(r.stdout, new RegExp(`key\\s+${id}`))
    assert.match(r.stdout, /why\s+none of the key’s API rules matches session:userLogon \(rules: session:get\*\)/)
    const allowed = await ws.kg(['explain', secret, 'session', 'getInfo', '--ip', '10.1.2.3', '--json'])
    assert.equal(allowed.code, 0)
    const d = json<Decision & { explanation: string }>(allowed)
    assert.equal(d.matchedRule, 'session:get*')
    assert.equal(typeof d.explanation, 'string')
    const noIp = json<Decision & { explanation: string }>(await ws.kg(['explain', secret, 'session', 'getInfo', '--json']))
    assert.equal(noIp.reason, 'ip_not_allowed')
    assert.match(noIp.explanation, /no caller IP was given/)
  })

  test('the secret from --secret-stdin or $KEYGATE_SECRET, never from the arguments', async () => {
    for (const name of ['check', 'explain']) {
      assert.equal((await ws.kg([name, '--secret-stdin', 'session', 'getInfo', '--ip', '10.1.2.3'], { input: `${secret}\n` })).code, 0)
      assert.equal((await ws.kg([name, 'session', 'getInfo', '--ip', '10.1.2.3'], { env: { KEYGATE_SECRET: secret } })).code, 0)
      assert.equal((await ws.kg([name, 'session', 'userLogon', '--ip', '10.1.2.3'], { env: { KEYGATE_SECRET: secret } })).code, 1)
      usage(await ws.kg([name, 'session', 'getInfo']), 'needs a secret', '--secret-stdin', 'KEYGATE_SECRET')
      usage(await ws.kg([name, '--secret-stdin', 'session', 'getInfo'], { input: '\n' }), 'empty')
      usage(await ws.kg([name, secret, 'session', 'getInfo', '--secret-stdin'], { input: secret }), 'not both')
      // A secret followed by one word is a missing api; the secret is not echoed back.
      const r = await ws.kg([name, secret, 'session'], { env: { KEYGATE_SECRET: secret } })
      usage(r, 'needs <service> and <api>')
      assertNoSecret(r.stderr, secret)
      const extra = await ws.kg([name, secret, 'session', 'getInfo', 'more'])
      usage(extra, 'too many arguments')
      assertNoSecret(extra.stderr, secret)
    }
  })

  test('a secret given in the place of the service, api, path or --ip is not printed back by explain', async () => {
    // The arguments in the wrong order (or the secret pasted as --ip): explain shows the call it
    // decided, and must not show a secret in it, in text or in the JSON explanation.
    const runs = [
      ['explain', 'session', secret, 'userLogon'],
      ['explain', secret, secret, 'userLogon', '--ip', '10.1.2.3'],
      ['explain', secret, 'session', 'userLogon', '--ip', '10.1.2.3', '--json'].map((a, i) => (i === 3 ? secret : a)),
      ['explain', secret, 'session', 'getInfo', '--ip', secret],
      ['explain', secret, 'session', 'getInfo', '--ip', secret, '--json'],
      ['check-dav', '--explain', secret, 'GET', secret],
      ['check-dav', '--explain', secret, secret, 'docs/a.txt', '--json'],
    ]
    for (const args of runs) {
      const r = await ws.kg(args)
      assert.ok(r.code === 1 || r.code === 0, `${args[0]}: exit ${r.code}\n${r.stderr}`)
      assert.ok(r.stdout.length > 0)
      assertNoSecret(`${r.stdout}${r.stderr}`, secret)
    }
  })

  test('explain and check-dav --explain are a diagnosis, not a use: an allowed one leaves lastUsedAt as it was', async () => {
    ok(await ws.kg(['user', 'put', 'leaker', '--right', 'session:*', '--right', 'dav=GET docs/*']))
    const fresh = await createKey(ws.kg, ['--user', 'leaker', '--description', 'leaked', '--expires', '1d'])
    const lastUsed = async () => json<ApiKey>(ok(await ws.kg(['key', 'show', fresh.id, '--json']))).lastUsedAt
    ok(await ws.kg(['explain', fresh.secret, 'session', 'getInfo']))
    ok(await ws.kg(['explain', '--secret-stdin', 'session', 'getInfo', '--json'], { input: `${fresh.secret}\n` }))
    ok(await ws.kg(['check-dav', '--explain', fresh.secret, 'GET', 'docs/a.txt']))
    assert.equal(await lastUsed(), null, 'never used')
    ok(await ws.kg(['check', fresh.secret, 'session', 'getInfo']))
    assert.notEqual(await lastUsed(), null, 'check is a use')
  })

  test('an allowed check is recorded as the key’s last use (flushed when the command ends)', async () => {
    const key = json<ApiKey>(ok(await ws.kg(['key', 'show', id, '--json'])))
    assert.notEqual(key.lastUsedAt, null)
    assert.match(ok(await ws.kg(['key', 'list'])).stdout, new RegExp(`${id}\\s+svc\\s+active\\s+\\S+ \\S+\\s+\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\dZ`))
  })
})

// ---- check-dav ----------------------------------------------------------------------

describe('check-dav: WebDAV requests', () => {
  const ws = workspace()
  let secret = ''
  let id = ''
  before(async () => {
    ok(await ws.kg(['user', 'put', 'files', '--right', 'dav=* *', '--right', 'session:*']))
    ;({ id, secret } = await createKey(ws.kg, [
      '--user',
      'files',
      '--description',
      'notes reader',
      '--expires',
      '1d',
      '--rule',
      'dav=GET session/*',
      '--rule',
      'dav=PROPFIND docs/*',
      '--rule',
      'ip=10.0.0.0/8',
    ]))
  })
  after(() => ws.cleanup())

  test('exit 0 when allowed (with the WebDAV rule that matched), 1 when denied, with the reason', async () => {
    const allowed = await ws.kg(['check-dav', secret, 'GET', 'session/notes.txt', '--ip', '10.1.2.3'])
    assert.equal(allowed.code, 0, allowed.stderr)
    assert.equal(allowed.stdout, `allowed (key ${id}, user files, rule dav=GET session/*)\n`)
    const lower = json<Decision>(ok(await ws.kg(['check-dav', secret, 'propfind', '/docs/reports/', '--ip', '10.1.2.3', '--json'])))
    assert.deepEqual(lower, { allowed: true, reason: 'allowed', keyId: id, userId: 'files', matchedRule: 'dav=PROPFIND docs/*' })
    const cases: [string[], string][] = [
      [[secret, 'PUT', 'session/notes.txt', '--ip', '10.1.2.3'], 'no_matching_rule'],
      [[secret, 'GET', 'docs/a.txt', '--ip', '10.1.2.3'], 'no_matching_rule'],
      [[secret, 'GET', 'session/notes.txt', '--ip', '192.168.0.1'], 'ip_not_allowed'],
      [[secret, 'GET', 'session/notes.txt'], 'ip_not_allowed'],
      [[secret, 'GET', 'session/../secret.txt', '--ip', '10.1.2.3'], 'invalid_request'],
      [[secret, 'GET', 'session//notes.txt', '--ip', '10.1.2.3'], 'invalid_request'],
      [[secret, 'GET/', 'session/notes.txt', '--ip', '10.1.2.3'], 'invalid_request'],
      [[forgeSecret(), 'GET', 'session/notes.txt'], 'unknown_key'],
      [['kg_not-a-key', 'GET', 'session/notes.txt'], 'malformed_key'],
    ]
    for (const [args, reason] of cases) {
      const r = await ws.kg(['check-dav', ...args])
      assert.equal(r.code, 1, `${reason}: ${r.stdout}${r.stderr}`)
      assert.match(r.stdout, new RegExp(`^denied: ${reason}`))
      assert.equal(json<Decision>(await ws.kg(['check-dav', ...args, '--json'])).reason, reason)
    }
  })

  test('--explain: the whole decision in words, naming the WebDAV rules', async () => {
    const r = await ws.kg(['check-dav', secret, 'PUT', 'session/notes.txt', '--ip', '10.1.2.3', '--explain'])
    assert.equal(r.code, 1)
    assert.match(r.stdout, /^denied: no_matching_rule\n/)
    assert.match(r.stdout, /call\s+WebDAV PUT session\/notes\.txt from 10\.1\.2\.3/)
    assert.match(r.stdout, /why\s+none of the key’s WebDAV rules matches WebDAV PUT session\/notes\.txt \(rules: dav=GET session\/\*, dav=PROPFIND docs\/\*\)/)
    const bad = json<Decision & { explanation: string }>(await ws.kg(['check-dav', secret, 'GET', 'a/../b', '--explain', '--json']))
    assert.equal(bad.reason, 'invalid_request')
    assert.match(bad.explanation, /method or path is not valid/)
  })

  test('API rules and WebDAV rules never decide for each other', async () => {
    // The key has WebDAV rules only: its API calls are limited by the user's rights alone.
    const api = await ws.kg(['check', secret, 'session', 'userLogon', '--ip', '10.1.2.3'])
    assert.equal(api.code, 0, api.stdout)
    // The user's session:* right grants no WebDAV request, and its dav=* * right no API call.
    ok(await ws.kg(['user', 'put', 'api-only', '--right', 'session:*']))
    const other = await createKey(ws.kg, ['--user', 'api-only', '--description', 'api', '--expires', '1d'])
    const dav = await ws.kg(['check-dav', other.secret, 'GET', 'session/notes.txt', '--explain'])
    assert.equal(dav.code, 1)
    assert.match(dav.stdout, /^denied: user_lacks_right/)
    assert.equal((await ws.kg(['check', secret, 'data', 'getThing', '--ip', '10.1.2.3'])).code, 1)
  })

  test('the secret from --secret-stdin or $KEYGATE_SECRET; a missing path is a usage error that never echoes the secret', async () => {
    assert.equal((await ws.kg(['check-dav', '--secret-stdin', 'GET', 'session/a', '--ip', '10.1.2.3'], { input: `${secret}\n` })).code, 0)
    assert.equal((await ws.kg(['check-dav', 'GET', 'session/a', '--ip', '10.1.2.3'], { env: { KEYGATE_SECRET: secret } })).code, 0)
    assert.equal((await ws.kg(['check-dav', 'PUT', 'session/a', '--ip', '10.1.2.3'], { env: { KEYGATE_SECRET: secret } })).code, 1)
    usage(await ws.kg(['check-dav', 'GET', 'session/a']), 'needs a secret', '--secret-stdin', 'KEYGATE_SECRET')
    const r = await ws.kg(['check-dav', secret, 'GET'])
    usage(r, 'needs <method> and <path>')
    assertNoSecret(r.stderr, secret)
    const extra = await ws.kg(['check-dav', secret, 'GET', 'session/a', 'more'])
    usage(extra, 'too many arguments')
    assertNoSecret(extra.stderr, secret)
  })
})

// ---- audit, verify-audit, backup ----------------------------------------------------

describe('audit, verify-audit and backup', () => {
  const ws = workspace()
  let id = ''
  before(async () => {
    ok(await ws.kg(['user', 'put', 'svc', '--right', '*:*'], { env: { KEYGATE_ACTOR: 'alice@example.com' } }))
    ;({ id } = await createKey(ws.kg, ['--user', 'svc', '--description', 'audited-key', '--expires', '1d', '--actor', 'bob']))
    ok(await ws.kg(['key', 'suspend', id]))
    ok(await ws.kg(['user', 'put', 'other']))
  })
  after(() => ws.cleanup())

  test('audit: newest first, with actor, action, key, user and changes; filters', async () => {
    const r = ok(await ws.kg(['audit']))
    assert.match(r.stdout, /^SEQ\s+AT\s+ACTOR\s+ACTION\s+KEY\s+USER\s+CHANGES\n/)
    assert.match(r.stdout, new RegExp(`3\\s+\\S+\\s+tester\\s+setState\\s+${id}\\s+svc\\s+state: active → suspended`))
    const entries = json<AuditEntry[]>(ok(await ws.kg(['audit', '--json'])))
    assert.deepEqual(
      entries.map((e) => e.seq),
      [4, 3, 2, 1],
    )
    assert.deepEqual(
      entries.map((e) => e.actor),
      ['tester', 'tester', 'bob', 'alice@example.com'],
    )
    assert.deepEqual(
      entries.map((e) => e.action),
      ['putUser', 'setState', 'createKey', 'putUser'],
    )

    assert.deepEqual(
      json<AuditEntry[]>(ok(await ws.kg(['audit', '--json', '--key', id]))).map((e) => e.seq),
      [3, 2],
    )
    assert.deepEqual(
      json<AuditEntry[]>(ok(await ws.kg(['audit', '--json', '--user', 'other']))).map((e) => e.seq),
      [4],
    )
    assert.deepEqual(
      json<AuditEntry[]>(ok(await ws.kg(['audit', '--json', '--limit', '1']))).map((e) => e.seq),
      [4],
    )
    // The page after entry 3, as after a first page of --limit 2.
    assert.deepEqual(
      json<AuditEntry[]>(ok(await ws.kg(['audit', '--json', '--before-seq', '3', '--limit', '1']))).map((e) => e.seq),
      [2],
    )
    // --before-seq 0 names no entry: an empty page, as store.audit({ beforeSeq: 0 }) and GET /api/audit?beforeSeq=0.
    assert.deepEqual(json(ok(await ws.kg(['audit', '--json', '--before-seq', '0']))), [])
    assert.equal(ok(await ws.kg(['audit', '--before-seq', '0'])).stdout, 'no audit entries\n')
    assert.equal(json<AuditEntry[]>(ok(await ws.kg(['audit', '--json', '--since', '1h']))).length, 4)
    assert.deepEqual(json(ok(await ws.kg(['audit', '--json', '--since', dayFromNow(2 * DAY)]))), [])
    assert.equal(ok(await ws.kg(['audit', '--since', dayFromNow(2 * DAY)])).stdout, 'no audit entries\n')
  })

  test('verify-audit: exit 0 when intact, 1 when an entry was altered', async () => {
    assert.equal(ok(await ws.kg(['verify-audit'])).stdout, 'audit trail intact: 4 entries verified\n')
    assert.deepEqual(json(ok(await ws.kg(['verify-audit', '--json']))), { ok: true, entries: 4 })

    // Tamper with a copy: change the description recorded in entry 2 (same length, in place).
    const copy = path.join(ws.dir, 'tampered.db')
    ok(await ws.kg(['backup', copy]))
    const bytes = readFileSync(copy)
    const from = Buffer.from('"audited-key"')
    let at = bytes.indexOf(from)
    assert.ok(at >= 0, 'the audit entry is in the backup file')
    for (; at >= 0; at = bytes.indexOf(from, at + 1)) Buffer.from('"audited-kez"').copy(bytes, at)
    writeFileSync(copy, bytes)
    const broken = await ws.kg(['--db', copy, 'verify-audit'])
    assert.equal(broken.code, 1)
    assert.match(broken.stdout, /^audit trail BROKEN at entry 2: .+ \(1 entry verified before it\)\n$/)
    const report = json<AuditReport>(await ws.kg(['--db', copy, 'verify-audit', '--json']))
    assert.equal(report.ok, false)
    assert.equal(report.firstBadSeq, 2)
  })

  test('audit shows rows written behind its back whose changes are not an object instead of failing', { skip: NO_PYTHON }, async () => {
    const copy = path.join(ws.dir, 'hostile-rows.db')
    ok(await ws.kg(['backup', copy]))
    sql(copy, [
      "UPDATE audit SET detail = 'null' WHERE seq = 1",
      'UPDATE audit SET detail = \'"plain \\u001b[2J text"\' WHERE seq = 2',
      "UPDATE audit SET detail = '[1, 2]' WHERE seq = 3",
    ])
    const r = ok(await ws.kg(['--db', copy, 'audit']))
    const lines = r.stdout.split('\n')
    assert.match(lines[1] ?? '', /^4\s+\d{4}-\d\d-\d\dT[\d:]+Z\s/)
    assert.match(lines[2] ?? '', /\[1,2\]$/)
    assert.match(lines[3] ?? '', /plain <U\+001B>\[2J text$/)
    assert.match(lines[4] ?? '', /null$/)
    const entries = json<AuditEntry[]>(ok(await ws.kg(['--db', copy, 'audit', '--json'])))
    assert.deepEqual(
      entries.map((e) => [e.seq, e.changes]),
      [
        [4, entries[0]?.changes],
        [3, [1, 2]],
        [2, 'plain \u001b[2J text'],
        [1, null],
      ],
    )
    assert.equal((await ws.kg(['--db', copy, 'verify-audit'])).code, 1)
  })

  test('audit refuses a row written behind its back at a time no Date holds (STORE_CORRUPT), and verify-audit names it', { skip: NO_PYTHON }, async () => {
    const copy = path.join(ws.dir, 'hostile-time.db')
    ok(await ws.kg(['backup', copy]))
    sql(copy, ['UPDATE audit SET at = 9000000000000000000 WHERE seq = 4'])
    const named = "audit entry 4's time (9000000000000000000) is not a representable date"
    keygateError(await ws.kg(['--db', copy, 'audit']), 'STORE_CORRUPT', named)
    jsonError(await ws.kg(['--db', copy, 'audit', '--json']), 3, 'STORE_CORRUPT')
    const broken = await ws.kg(['--db', copy, 'verify-audit'])
    assert.equal(broken.code, 1)
    assert.equal(
      broken.stdout,
      'audit trail BROKEN at entry 4: entry 4 was altered: its time (9000000000000000000) is not a representable date (3 entries verified before it)\n',
    )
  })

  test('backup writes a store that opens with KeyStore.open and holds the same keys', async () => {
    const file = path.join(ws.dir, 'backup.db')
    const r = ok(await ws.kg(['backup', file]))
    assert.match(r.stdout, /^backed up .*keygate\.db to .*backup\.db \(\d+ bytes\)\n$/)
    assert.ok(statSync(file).size > 0)
    const copy = KeyStore.open(file)
    try {
      const original = json<ApiKey[]>(ok(await ws.kg(['key', 'list', '--json'])))
      assert.deepEqual(
        copy.listKeys().map((k) => [k.id, k.state, k.description]),
        original.map((k) => [k.id, k.state, k.description]),
      )
      assert.deepEqual(
        copy.listUsers().map((u) => u.id),
        ['other', 'svc'],
      )
      assert.equal(copy.verifyAudit().ok, true)
    } finally {
      copy.close()
    }
    keygateError(await ws.kg(['backup', file]), 'STORE_IO', 'already exists')
    const json2 = json<{ backup: string; bytes: number }>(ok(await ws.kg(['backup', 'second.db', '--json'])))
    assert.equal(json2.backup, path.join(ws.dir, 'second.db'))
  })
})

// ---- audit filters: an operator's questions ----------------------------------------

describe('audit filters: --action, --by, --until, with the others', () => {
  const ws = workspace()
  // Entries written at known instants (the store clock frozen), three days back, within one hour
  // but for the first and last: "who revoked keys between 14:00 and 15:00".
  const hour = Math.floor((Date.now() - 3 * DAY) / HOUR) * HOUR
  const at = (minutes: number) => new Date(hour + minutes * 60_000)
  const iso = (minutes: number) => at(minutes).toISOString()
  const keys: string[] = []
  before(() => {
    const store = KeyStore.open(ws.db)
    try {
      store.setNow(at(-60))
      store.putUser({ id: 'svc', rights: ['*:*'] }, { actor: 'Ali Baba' }) // 1
      store.setNow(at(-30))
      const expiresAt = new Date(hour + 300 * DAY)
      for (const actor of ['ali', 'bob']) keys.push(store.createKey({ userId: 'svc', description: actor, expiresAt }, { actor }).key.id) // 2, 3
      store.setNow(at(10))
      store.setState(keys[0] ?? '', 'revoked', { actor: 'web:ALI' }) // 4
      store.setNow(at(50))
      store.setState(keys[1] ?? '', 'suspended', { actor: 'bob' }) // 5
      store.setNow(at(60))
      store.setState(keys[1] ?? '', 'revoked', { actor: 'bob' }) // 6: at the hour's end, which --until includes
      store.setNow(at(90))
      store.putUser({ id: 'other' }, { actor: 'ali' }) // 7
    } finally {
      store.close()
    }
  })
  after(() => ws.cleanup())

  const seqs = async (args: string[]) => json<AuditEntry[]>(ok(await ws.kg(['audit', '--json', ...args]))).map((e) => e.seq)

  test('each filter alone', async () => {
    assert.deepEqual(await seqs([]), [7, 6, 5, 4, 3, 2, 1])
    assert.deepEqual(await seqs(['--action', 'setState']), [6, 5, 4])
    assert.deepEqual(await seqs(['--action', 'createKey']), [3, 2])
    assert.deepEqual(await seqs(['--action', 'purgeExpired']), [])
    // Contains, ASCII letters in either case.
    assert.deepEqual(await seqs(['--by', 'ali']), [7, 4, 2, 1])
    assert.deepEqual(await seqs(['--by', 'ALI B']), [1])
    assert.deepEqual(await seqs(['--by', 'web:']), [4])
    assert.deepEqual(await seqs(['--by', 'carol']), [])
    // At or before the instant; a duration counts back from now.
    assert.deepEqual(await seqs(['--until', iso(60)]), [6, 5, 4, 3, 2, 1])
    assert.deepEqual(await seqs(['--until', iso(59)]), [5, 4, 3, 2, 1])
    assert.deepEqual(await seqs(['--until', '1d']), [7, 6, 5, 4, 3, 2, 1])
    assert.deepEqual(await seqs(['--until', '5d']), [])
  })

  test('combined: who revoked or suspended keys between the hour’s start and end, and who of them was bob', async () => {
    const window = ['--since', iso(0), '--until', iso(60)]
    assert.deepEqual(await seqs(['--action', 'setState', ...window]), [6, 5, 4])
    assert.deepEqual(await seqs(['--action', 'setState', '--by', 'bob', ...window]), [6, 5])
    assert.deepEqual(await seqs(['--action', 'setState', '--by', 'bob', '--key', keys[1] ?? '', ...window, '--limit', '1']), [6])
    assert.deepEqual(await seqs(['--action', 'setState', ...window, '--before-seq', '6']), [5, 4])
    assert.deepEqual(await seqs(['--user', 'other', '--by', 'ali']), [7])
    // In text too: the table of what matched, and the line that says nothing did.
    const text = ok(await ws.kg(['audit', '--action', 'setState', '--by', 'web', ...window])).stdout
    assert.match(text, /^SEQ\s+AT\s+ACTOR\s+ACTION\s+KEY\s+USER\s+CHANGES\n4\s+\S+\s+web:ALI\s+setState\s+\S+\s+svc\s+state: active → revoked\n$/)
    assert.equal(ok(await ws.kg(['audit', '--action', 'deleteKey', ...window])).stdout, 'no audit entries\n')
  })

  test('--since later than --until finds nothing, as store.audit() answers: exit 0', async () => {
    assert.deepEqual(await seqs(['--since', iso(60), '--until', iso(0)]), [])
    assert.equal(ok(await ws.kg(['audit', '--since', '1h', '--until', '2h'])).stdout, 'no audit entries\n')
  })

  test('bad values are usage errors, before the store is opened', async () => {
    const names = 'putRole, deleteRole, putUser, deleteUser, createKey, updateKey, setState, rotateKey, deleteKey, purgeExpired'
    usage(await ws.kg(['audit', '--action', 'setstate']), `--action "setstate" must be one of: ${names}`)
    usage(await ws.kg(['audit', '--action', '']), '--action "" must be one of')
    usage(await ws.kg(['audit', '--until', 'yesterday']), '--until "yesterday" is neither a duration (ago) nor a date')
    usage(await ws.kg(['audit', '--until', '2027-02-30']), '--until "2027-02-30" is not a valid date')
    usage(await ws.kg(['audit', '--until', '104000000d']), '--until "104000000d"', 'out of range')
    usage(await ws.kg(['audit', '--by', '']), '--by needs some text')
    // An unset $KEY or $USER in a script: said, not answered with an empty trail.
    usage(await ws.kg(['audit', '--key', '']), '--key needs a key id')
    usage(await ws.kg(['audit', '--user', '']), '--user needs a user id')
    usage(await ws.kg(['audit', '--by']), '--by needs a value')
    jsonError(await ws.kg(['audit', '--action', 'revoke', '--json']), 2, 'USAGE')
    for (const bad of [
      ['--action', 'x'],
      ['--until', 'soon'],
      ['--by', ''],
    ]) {
      const r = await run(['--db', path.join(ws.dir, 'missing.db'), 'audit', ...bad])
      usage(r)
      assert.ok(!existsSync(path.join(ws.dir, 'missing.db')), `${bad.join(' ')}: no store made`)
    }
  })

  test('--actor after audit is refused for --by, not taken as a filter; before it, as a wrapper gives it, it is accepted', async () => {
    for (const args of [
      ['audit', '--actor', 'bob'],
      ['audit', '--actor=bob', '--action', 'setState'],
    ]) {
      const r = await ws.kg(args)
      usage(r, 'takes no --actor', 'use --by <text>')
      assert.equal(r.stdout, '')
    }
    jsonError(await ws.kg(['audit', '--json', '--actor', 'bob']), 2, 'USAGE')
    assert.deepEqual(
      json<AuditEntry[]>(ok(await ws.kg(['--actor', 'ops', 'audit', '--json', '--by', 'bob']))).map((e) => e.seq),
      [6, 5, 3],
    )
    ok(await ws.kg(['audit', '--by', 'bob'], { env: { KEYGATE_ACTOR: 'ops' } }))
  })

  test('a table cut at --limit says so and names the next page; a whole answer does not; JSON holds --limit entries', async () => {
    const cut = ok(await ws.kg(['audit', '--action', 'setState', '--limit', '2'])).stdout.split('\n')
    assert.match(cut[2] ?? '', /^5\s/)
    assert.equal(cut[3], '(more entries match: the next page is --before-seq 5, or raise --limit)')
    assert.deepEqual(await seqs(['--action', 'setState', '--before-seq', '5']), [4], 'the page it names')
    for (const whole of [['--limit', '3'], ['--limit', '7'], []]) {
      const text = ok(await ws.kg(['audit', '--action', 'setState', ...whole])).stdout
      assert.doesNotMatch(text, /more entries/, whole.join(' '))
    }
    assert.deepEqual(await seqs(['--action', 'setState', '--limit', '2']), [6, 5])
  })

  test('audit --help lists the new filters and the action names', async () => {
    const help = ok(await run(['audit', '--help'])).stdout
    for (const word of ['--action <action>', '--by <text>', '--until <when>', 'setState, rotateKey']) assert.ok(help.includes(word), `help should say ${word}`)
  })
})

// ---- another process using the store ------------------------------------------------

describe('the CLI driving a store that another process is using', () => {
  const ws = workspace()
  let store: KeyStore
  before(() => {
    store = KeyStore.open(ws.db)
  })
  after(() => {
    store.close()
    ws.cleanup()
  })

  test('users and keys made in this process are visible to the CLI, and the other way round', async () => {
    store.putUser({ id: 'app', rights: ['*:*'] }, { actor: 'app-server' })
    const { key } = store.createKey({ userId: 'app', description: 'made by the app', expiresAt: new Date(Date.now() + DAY) })
    const listed = json<ApiKey[]>(ok(await ws.kg(['key', 'list', '--json'])))
    assert.deepEqual(
      listed.map((k) => k.id),
      [key.id],
    )
    assert.match(ok(await ws.kg(['key', 'list'])).stdout, new RegExp(`${key.id}\\s+app\\s+active.*made by the app`))

    const { id } = await createKey(ws.kg, ['--user', 'app', '--description', 'made by the CLI', '--expires', '1d'])
    const deadline = Date.now() + 1000
    while (store.getKey(id) === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10))
    assert.equal(store.getKey(id)?.description, 'made by the CLI')
  })

  test('keygate key revoke: this process’s isAllowed turns false within 200 ms', async () => {
    const { key, secret } = store.createKey({ userId: 'app', description: 'live', expiresAt: new Date(Date.now() + DAY) })
    for (let i = 0; i < 5; i++) assert.equal(store.isAllowed(secret, 'session', 'userLogon'), true) // remembered
    assert.equal((await ws.kg(['check', secret, 'session', 'userLogon'])).code, 0, 'the CLI sees the key too')

    const r = ok(await ws.kg(['key', 'revoke', key.id]))
    const revokedAt = Date.now()
    assert.match(r.stdout, /is now revoked/)
    let denied = false
    while (Date.now() - revokedAt <= 200) {
      if (!store.isAllowed(secret, 'session', 'userLogon')) {
        denied = true
        break
      }
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
    assert.ok(denied, `still allowed ${Date.now() - revokedAt} ms after keygate key revoke`)
    assert.equal(store.explain(secret, 'session', 'userLogon').reason, 'revoked')
    // And the audit trail names both actors.
    const entries = json<AuditEntry[]>(ok(await ws.kg(['audit', '--json', '--key', key.id])))
    assert.deepEqual(
      entries.map((e) => e.action),
      ['setState', 'createKey'],
    )
    assert.equal(entries[0]!.actor, 'tester')
  })

  test('backup while this process keeps writing', async () => {
    const writing = (async () => {
      for (let i = 0; i < 20; i++) {
        store.putUser({ id: `user-${i}`, rights: ['session:*'] })
        await new Promise((resolve) => setTimeout(resolve, 2))
      }
    })()
    const file = path.join(ws.dir, 'live-backup.db')
    const [r] = await Promise.all([ws.kg(['backup', file]), writing])
    ok(r)
    const copy = KeyStore.open(file)
    try {
      assert.equal(copy.verifyAudit().ok, true, 'the copy is consistent')
      assert.ok(copy.listUsers().length >= 1)
    } finally {
      copy.close()
    }
  })
})

describe('secrets pasted where an id belongs', () => {
  test('error messages redact them', async () => {
    const { kg, cleanup } = workspace()
    try {
      ok(await kg(['user', 'put', 'svc', '--right', 'session:*']))
      const created = await createKey(kg, ['--user', 'svc', '--description', 'd', '--expires', '30d'])
      for (const args of [
        ['key', 'show', created.secret],
        ['key', 'delete', created.secret],
        ['key', 'revoke', created.secret],
      ]) {
        const r = await kg(args)
        assert.notEqual(r.code, 0)
        assert.ok(!(r.stdout + r.stderr).includes(created.secret.slice(3)), `${args.join(' ')} printed the secret`)
      }
    } finally {
      cleanup()
    }
  })
})

describe('user text is shown so that it cannot act on the terminal', () => {
  // U+202E would draw "txt.exe" as "exe.txt" and can pull other columns along; ESC starts a
  // terminal escape sequence; a newline in a description would fake an output line.
  const description = 'invoice \u202Etxt.exe\u202C \u2066x\u2069\u200F\u061C \x1b[31mred\x1b[0m\nstate        revoked'
  const CONTROLS = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/
  const SHOWN = 'invoice <U+202E>txt.exe<U+202C> <U+2066>x<U+2069><U+200F><U+061C> <U+001B>[31mred<U+001B>[0m'

  test('key list, key show, key update, user show and audit write bidi and control characters as <U+XXXX>', async () => {
    const w = workspace()
    try {
      ok(await w.kg(['init']))
      ok(await w.kg(['user', 'put', 'svc', '--right', '*:*']))
      const created = json<{ key: ApiKey; secret: string }>(
        ok(await w.kg(['key', 'create', '--user', 'svc', '--description', description, '--expires', '30d', '--json'])),
      )
      assert.equal(created.key.description, description, 'the JSON output keeps the exact text')
      const id = created.key.id
      const outputs = {
        list: ok(await w.kg(['key', 'list'])).stdout,
        show: ok(await w.kg(['key', 'show', id])).stdout,
        update: ok(await w.kg(['key', 'update', id, '--description', `again ${description}`])).stdout,
        user: ok(await w.kg(['user', 'show', 'svc'])).stdout,
        audit: ok(await w.kg(['audit'])).stdout,
      }
      for (const [name, text] of Object.entries(outputs)) {
        assert.doesNotMatch(text, CONTROLS, `${name}: a control character reached the terminal`)
      }
      assert.ok(outputs.show.includes(`description  ${SHOWN}<U+000A>state        revoked\n`), outputs.show)
      assert.equal(outputs.show.match(/^state /gm)?.length, 1, 'the description cannot fake a line')
      assert.ok(outputs.list.includes('invoice <U+202E>txt.exe<U+202C>'), outputs.list)
      assert.ok(outputs.audit.includes('<U+202E>txt.exe'), outputs.audit)
      // the table stays aligned: the columns after USER start at the same place on every line
      const lines = outputs.list.trimEnd().split('\n')
      const at = lines[0]!.indexOf('HINT')
      for (const line of lines.slice(1)) assert.equal(line.slice(at, at + 1), '…', `misaligned: ${line}`)
      // error messages quoting user input too
      const missing = await w.kg(['key', 'show', 'kid\u202Eabc'])
      assert.notEqual(missing.code, 0)
      assert.doesNotMatch(missing.stderr, CONTROLS)
    } finally {
      w.cleanup()
    }
  })

  test('a store path, the words of a call or an --ip that hold a newline or an escape are shown on their line, in output and in errors', async () => {
    // A name typed, or copied from a request log, can hold a newline (a faked output line) or ESC.
    const hostile = 'x\nallowed\u001b[2J\u009b2J\u202e'
    const HOSTILE = 'x<U+000A>allowed<U+001B>[2J<U+009B>2J<U+202E>'
    const w = workspace()
    try {
      const odd = path.join(w.dir, `store${hostile}.db`)
      const runs = {
        // the note of a store made by user put goes to stderr, which the last safety net did not cover
        note: ok(await w.kg(['user', 'put', 'svc', '--right', '*:*'], { env: { KEYGATE_DB: odd } })),
        init: ok(await w.kg(['init'], { env: { KEYGATE_DB: odd } })),
        backup: ok(await w.kg(['backup', path.join(w.dir, `copy${hostile}.db`)], { env: { KEYGATE_DB: odd } })),
        copy: ok(await w.kg(['copy', odd, path.join(w.dir, `moved${hostile}.db`)])),
        missing: await w.kg(['key', 'list'], { env: { KEYGATE_DB: path.join(w.dir, `none${hostile}.db`) } }),
        explain: await w.kg(['explain', `kg_${'a'.repeat(49)}`, hostile, 'api', '--ip', hostile], { env: { KEYGATE_DB: odd } }),
        davExplain: await w.kg(['check-dav', `kg_${'a'.repeat(49)}`, 'GET', hostile, '--explain'], { env: { KEYGATE_DB: odd } }),
      }
      assert.equal(runs.missing.code, 3)
      assert.equal(runs.explain.code, 1)
      for (const [name, r] of Object.entries(runs)) {
        const shown = `${r.stdout}${r.stderr}`
        assert.doesNotMatch(shown, CONTROLS, `${name}: a control character reached the terminal: ${JSON.stringify(shown)}`)
        assert.doesNotMatch(shown, /^allowed/m, `${name}: a faked line: ${JSON.stringify(shown)}`)
        assert.ok(shown.includes(HOSTILE), `${name}: the name is shown, its controls visible: ${JSON.stringify(shown)}`)
      }
      assert.match(runs.note.stderr, /^note: created a new keygate store .*store/)
      assert.match(runs.missing.stderr, /^error: no keygate store at [^\n]*\(STORE_IO\)\n$/, 'the error is one line')
    } finally {
      w.cleanup()
    }
  })

  test('visible, visibleLines and escapedJson: each end of every range of controls, separators and bidi controls, and none of their neighbours', () => {
    // The output tests above use a few of the characters; a store takes every one of these in a
    // description (all but U+0000), so each end of each range is checked here.
    const acted = [0x00, 0x09, 0x0a, 0x1b, 0x1f, 0x7f, 0x85, 0x9b, 0x9f, 0x61c, 0x200e, 0x200f, 0x2028, 0x2029, 0x202a, 0x202e, 0x2066, 0x2069]
    const shown = [0x20, 0x7e, 0xa0, 0x61b, 0x61d, 0x200d, 0x2010, 0x2027, 0x202f, 0x2065, 0x206a, 0x1f600]
    const hex = (c: number) => c.toString(16).toUpperCase().padStart(4, '0')
    for (const c of acted) {
      const ch = String.fromCharCode(c)
      assert.equal(visible(`a${ch}b`), `a<U+${hex(c)}>b`, hex(c))
      assert.equal(visibleLines(`a${ch}b`), ch === '\n' || ch === '\t' ? `a${ch}b` : `a<U+${hex(c)}>b`, hex(c))
      const json = escapedJson(JSON.stringify(`a${ch}b`))
      assert.doesNotMatch(json, /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/, hex(c))
      assert.equal(JSON.parse(json), `a${ch}b`, hex(c))
    }
    for (const c of shown) {
      const ch = String.fromCodePoint(c)
      for (const show of [visible, visibleLines, (t: string) => JSON.parse(escapedJson(JSON.stringify(t)))]) assert.equal(show(`a${ch}b`), `a${ch}b`, hex(c))
      assert.equal(escapedJson(JSON.stringify(`a${ch}b`)), JSON.stringify(`a${ch}b`), hex(c))
    }
    assert.equal(escapedJson(JSON.stringify({ a: '\u202e' }, null, 2)), '{\n  "a": "\\u202e"\n}', 'the layout’s newlines stay; escapes in lower case')
    assert.equal(visibleLines('one\ttwo\nthree\u202e\r'), 'one\ttwo\nthree<U+202E><U+000D>')
  })

  test('--json output writes C1 and bidi controls as \\u escapes: the same JSON, nothing raw for the terminal', async () => {
    // JSON.stringify escapes U+0000-U+001F but writes U+007F-U+009F (U+009B is CSI, U+009D OSC
    // to terminals that take 8-bit controls) and the bidi controls raw.
    const text = 'a\u009b2J\u009d52;c;eA==\u009c\u0085 \u202Etxt.exe\u202C\u2066\u2069\u200F\u061C\u007f'
    const w = workspace()
    try {
      ok(await w.kg(['user', 'put', 'svc', '--right', '*:*']))
      const created = ok(await w.kg(['key', 'create', '--user', 'svc', '--description', text, '--expires', '30d', '--json']))
      assert.equal(json<{ key: ApiKey }>(created).key.description, text, 'the JSON keeps the exact text')
      const id = json<{ key: ApiKey }>(created).key.id
      const outputs = {
        create: created.stdout,
        list: ok(await w.kg(['key', 'list', '--json'])).stdout,
        show: ok(await w.kg(['key', 'show', id, '--json'])).stdout,
        audit: ok(await w.kg(['audit', '--json'])).stdout,
        error: (await w.kg(['key', 'show', `kid${text}`, '--json'])).stdout,
      }
      for (const [name, out] of Object.entries(outputs)) {
        assert.doesNotMatch(out, CONTROLS, `${name}: a control character reached the terminal raw`)
        JSON.parse(out)
      }
      assert.equal(json<ApiKey>({ code: 0, stdout: outputs.show, stderr: '' }).description, text)
      assert.ok(outputs.show.includes('a\\u009b2J\\u009d52;c;eA==\\u009c\\u0085 \\u202etxt.exe\\u202c'), outputs.show)
    } finally {
      w.cleanup()
    }
  })
})

describe('keygate: messages never give a secret away', () => {
  test('a secret of the store cut into short pieces is withheld from not-found and rule errors, text and --json', async () => {
    const { db, kg, cleanup } = workspace()
    try {
      const store = KeyStore.open(db)
      store.putUser({ id: 'svc', rights: ['*:*'] })
      const { secret } = store.createKey({ userId: 'svc', description: 'd', expiresAt: new Date(Date.now() + DAY) })
      store.close()
      const pieces = [secret.slice(0, 20), secret.slice(20, 38), secret.slice(38)]
      for (const cut of [':', '\n', '\t']) {
        const mangled = `${secret.slice(0, 20)}${cut}${secret.slice(20, 38)}${cut}${secret.slice(38)}`
        for (const args of [
          ['user', 'show', mangled],
          ['role', 'delete', mangled],
          ['key', 'show', mangled],
          ['--json', 'user', 'show', mangled],
          ['key', 'create', '--user', 'svc', '--description', 'd', '--expires', '1d', '--rule', `s:${mangled}`],
        ]) {
          const r = await kg(args)
          assert.notEqual(r.code, 0, args.join(' '))
          for (const piece of pieces) assert.ok(!`${r.stdout}${r.stderr}`.includes(piece), `${args[0]} ${args[1]} ${JSON.stringify(cut)}: ${r.stdout}${r.stderr}`)
          assert.match(`${r.stdout}${r.stderr}`, /withheld/, args.join(' '))
        }
      }
    } finally {
      cleanup()
    }
  })

  test('a usage error (before any store is open) shows no value holding as many letters and digits as a secret', async () => {
    const { kg, cleanup } = workspace()
    try {
      ok(await kg(['init']))
      const secret = `kg_${'Ab3x'.repeat(12)}Z`
      const mangled = `${secret.slice(0, 20)}:${secret.slice(20, 38)}:${secret.slice(38)}`
      for (const args of [
        ['key', 'list', '--state', mangled],
        ['key', 'create', '--user', 'u', '--description', 'd', '--expires', mangled],
        ['audit', '--since', mangled],
        ['user', 'put', 'u', '--status', mangled],
      ]) {
        const r = await kg(args)
        assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`)
        assert.ok(!r.stderr.includes(secret.slice(20, 38)), r.stderr)
        assert.match(r.stderr, /not shown/, args.join(' '))
      }
      // A secret pasted with a space is two arguments: together they are not shown either.
      const split = await kg(['user', 'show', 'alice', secret.slice(0, 26), secret.slice(26)])
      assert.equal(split.code, 2, split.stderr)
      assert.ok(!split.stderr.includes(secret.slice(3, 26)) && !split.stderr.includes(secret.slice(26)), split.stderr)
      // Ordinary wrong values are still shown.
      const r = await kg(['key', 'list', '--state', 'sleeping'])
      assert.match(r.stderr, /"sleeping"/)
    } finally {
      cleanup()
    }
  })

  test("an extra argument that is a database URL is shown without its password; backup to an SQLite URI is the store's error", async () => {
    const { dir, kg, cleanup } = workspace()
    try {
      const r = await kg(['init', 'postgres://app:Sup3rSecretPw@db.internal/keygate'])
      assert.equal(r.code, 2, r.stderr)
      assert.match(r.stderr, /too many arguments/)
      assert.ok(!r.stderr.includes('Sup3rSecretPw'), r.stderr)
      ok(await kg(['init']))
      for (const target of ['file:bk.db', ':memory:']) {
        const b = await kg(['backup', target])
        assert.notEqual(b.code, 0, b.stdout)
        assert.match(b.stderr, /INVALID_ARGUMENT/)
      }
      assert.deepEqual(readdirSync(dir).sort(), ['keygate.db'])
    } finally {
      cleanup()
    }
  })
})
