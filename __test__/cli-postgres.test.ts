// The command line on a PostgreSQL URL, run as users run it (the real bin/keygate.js in a child
// process, a database of the test's own on the machine's server): `init` creates keygate's tables
// or says they are there; `serve` keeps its generated admin token's digest in the working
// directory (there is no store file to put it beside), and an admin call made over HTTP with
// that token is committed in the database.
import { after, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import path from 'node:path'

import { BIN, json, ok, workspace } from './support/cli.js'
import { PG_HOST, PG_PORT, createDatabase, freePort, pgOnly, psql, until } from './support/postgres.js'

const PASSWORD = 'cli-url-password-31'
const ws = workspace()
after(() => ws.cleanup())

/** The database's URL with a password in it (trust auth: the server never asks for it), and as keygate shows it. */
function urls(name: string) {
  const url = `postgres://postgres:${PASSWORD}@${PG_HOST}:${PG_PORT}/${name}?sslmode=disable`
  return { url, shown: url.replace(`:${PASSWORD}@`, ':***@') }
}

const hasTables = (database: string) => psql("SELECT to_regclass('keygate_meta') IS NOT NULL", { database }) === 't'

describe('keygate init on a PostgreSQL URL', pgOnly(), () => {
  test('an empty database gets keygate\'s tables and the "created" line; a second init says it already exists', async () => {
    const db = createDatabase()
    const { url, shown } = urls(db.name)
    const kg = (args: string[]) => ws.kg(args, { env: { KEYGATE_DB: url } })
    assert.equal(hasTables(db.name), false)

    const first = ok(await kg(['init', '--key-prefix', 'acme']))
    assert.equal(first.stdout, `created keygate store ${shown}\n`)
    assert.equal(first.stderr, '')
    assert.equal(hasTables(db.name), true)
    assert.equal(psql('SELECT key_prefix FROM keygate_meta', { database: db.name }), 'acme')

    const second = ok(await kg(['init']))
    assert.equal(second.stdout, `keygate store ${shown} already exists; nothing to do\n`)
    assert.deepEqual(json(ok(await kg(['init', '--json']))), { db: shown, created: false })
    for (const r of [first, second]) assert.ok(!`${r.stdout}${r.stderr}`.includes(PASSWORD))
  })

  test('--json on an empty database reports created: true; `role put` there notes the new store without the password', async () => {
    const fresh = createDatabase()
    assert.deepEqual(json(ok(await ws.kg(['init', '--json'], { env: { KEYGATE_DB: urls(fresh.name).url } }))), { db: urls(fresh.name).shown, created: true })

    const other = createDatabase()
    const put = ok(await ws.kg(['role', 'put', 'reader', '--right', 'data:*'], { env: { KEYGATE_DB: urls(other.name).url } }))
    assert.equal(put.stderr, `note: created a new keygate store ${urls(other.name).shown}\n`)
    assert.equal(psql('SELECT name FROM keygate_roles', { database: other.name }), 'reader')
    const again = ok(await ws.kg(['role', 'put', 'writer', '--right', 'data:*'], { env: { KEYGATE_DB: urls(other.name).url } }))
    assert.equal(again.stderr, '')
  })
})

describe('a store URL is shown without its password, in every form the core accepts', pgOnly(), () => {
  const SECRET = 'pg-Secret-Qz7'
  /** URLs of `name` with a password as users write them (trust auth: any password connects), and as keygate shows them. */
  const forms = (name: string) => [
    {
      url: `postgres://postgres@${PG_HOST}:${PG_PORT}/${name}?password=${SECRET}&sslmode=disable`,
      shown: `postgres://postgres@${PG_HOST}:${PG_PORT}/${name}?password=***&sslmode=disable`,
    },
    {
      url: `postgres://postgres@${PG_HOST}:${PG_PORT}/${name}?sslmode=disable&password=${SECRET}`,
      shown: `postgres://postgres@${PG_HOST}:${PG_PORT}/${name}?sslmode=disable&password=***`,
    },
    // An unencoded `/`, `?`, `#`, `:` or `@` in the user's password: the driver reads up to the first `@`.
    {
      url: `postgres://postgres:${SECRET}/x@${PG_HOST}:${PG_PORT}/${name}?sslmode=disable`,
      shown: `postgres://postgres:***@${PG_HOST}:${PG_PORT}/${name}?sslmode=disable`,
    },
    {
      url: `postgres://postgres:${SECRET}?x#y:z@${PG_HOST}:${PG_PORT}/${name}?sslmode=disable`,
      shown: `postgres://postgres:***@${PG_HOST}:${PG_PORT}/${name}?sslmode=disable`,
    },
    // A `password=` value holding `@` and `:`.
    {
      url: `postgres://postgres@${PG_HOST}:${PG_PORT}/${name}?sslmode=disable&password=${SECRET}@a:b`,
      shown: `postgres://postgres@${PG_HOST}:${PG_PORT}/${name}?sslmode=disable&password=***`,
    },
  ]
  const secretParts = [SECRET, 'Secret', 'Qz7', 'x#y', ':z', 'a:b']

  test('init (text and --json), the "created a new keygate store" note and copy never show the password', async () => {
    for (const { url, shown } of forms(createDatabase().name)) {
      const kg = (args: string[]) => ws.kg(args, { env: { KEYGATE_DB: url } })
      const runs = [ok(await kg(['init'])), ok(await kg(['init', '--json']))]
      const said = [`created keygate store ${shown}\n`, `keygate store ${shown} already exists; nothing to do\n`]
      assert.ok(said.includes(runs[0]!.stdout), `${url}: ${runs[0]!.stdout}`)
      assert.deepEqual(json(runs[1]!), { db: shown, created: false })
      for (const r of runs) for (const part of secretParts) assert.ok(!`${r.stdout}${r.stderr}`.includes(part), `${url}: ${r.stdout}${r.stderr}`)
    }
    for (const { url, shown } of forms(createDatabase().name).slice(0, 1)) {
      const note = ok(await ws.kg(['role', 'put', 'reader', '--right', 'data:*'], { env: { KEYGATE_DB: url } }))
      assert.equal(note.stderr, `note: created a new keygate store ${shown}\n`)
    }
    const from = path.join(ws.dir, 'url-forms-from.db')
    ok(await ws.kg(['role', 'put', 'reader', '--right', 'data:*'], { env: { KEYGATE_DB: from } }))
    for (const { url, shown } of forms(createDatabase().name).slice(0, 1)) {
      const copied = ok(await ws.kg(['copy', from, url]))
      assert.ok(copied.stdout.startsWith(`copied ${from} to ${shown}: 1 role,`), copied.stdout)
      const back = ok(await ws.kg(['copy', '--json', url, path.join(ws.dir, 'url-forms-back.db')]))
      assert.equal(json<{ from: string }>(back).from, shown)
      for (const r of [copied, back]) for (const part of secretParts) assert.ok(!`${r.stdout}${r.stderr}`.includes(part), `${r.stdout}${r.stderr}`)
    }
    for (const which of [2, 3, 4]) {
      const form = forms(createDatabase().name)[which]!
      const copied = ok(await ws.kg(['copy', from, form.url]))
      assert.ok(copied.stdout.startsWith(`copied ${from} to ${form.shown}: 1 role,`), copied.stdout)
    }
  })
})

/** `keygate serve` in a child process; its stdout lines as they come. */
class Serving {
  lines: string[] = []
  private exit: Promise<number | null>

  constructor(readonly child: ChildProcess) {
    let buffer = ''
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      buffer += chunk
      const parts = buffer.split('\n')
      buffer = parts.pop()!
      this.lines.push(...parts)
    })
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => this.lines.push(`stderr: ${chunk}`))
    this.exit = new Promise((resolve) => child.once('exit', (code) => resolve(code)))
  }

  static start(url: string, port: number, cwd: string): Serving {
    const env: Record<string, string | undefined> = { ...process.env }
    for (const name of ['KEYGATE_DB', 'KEYGATE_ADMIN_TOKEN', 'PORT', 'HOST']) delete env[name]
    return new Serving(spawn(process.execPath, [BIN, '--db', url, 'serve', '--port', String(port)], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] }))
  }

  /** Waits for the start message (up to its last line, which names the token file) and returns it. */
  started(): Promise<string> {
    return until('keygate serve started', 20_000, () => {
      const text = this.lines.join('\n')
      if (text.includes('stderr:')) throw new Error(`keygate serve wrote to stderr:\n${text}`)
      return /admin-token\.sha256/.test(text) ? text : undefined
    })
  }

  async stop(): Promise<number | null> {
    this.child.kill('SIGTERM')
    return this.exit
  }
}

/** Logs in to the admin API with `token`: the session cookie and CSRF token, or the refusal's status. */
async function login(base: string, token: string) {
  const res = await fetch(`${base}/api/login`, { method: 'POST', headers: { 'Content-Type': 'application/json', Origin: base }, body: JSON.stringify({ token }) })
  if (res.status !== 200) return { status: res.status }
  const { csrfToken } = (await res.json()) as { csrfToken: string }
  return {
    status: 200,
    headers: { 'Content-Type': 'application/json', Origin: base, Cookie: (res.headers.get('set-cookie') ?? '').split(';')[0]!, 'X-CSRF-Token': csrfToken },
  }
}

describe('keygate serve on a PostgreSQL URL', pgOnly(), () => {
  test('the generated token works over HTTP, its digest is kept in the working directory, and the admin call lands in the database', { timeout: 120_000 }, async () => {
    const db = createDatabase()
    const { url, shown } = urls(db.name)
    const port = await freePort()
    const base = `http://127.0.0.1:${port}`
    const dir = mkdtempSync(path.join(tmpdir(), 'keygate-serve-'))
    after(() => rmSync(dir, { recursive: true, force: true }))

    const first = Serving.start(url, port, dir)
    let printed: string
    try {
      printed = await first.started()
      assert.ok(printed.includes(`keygate admin: ${base}`), printed)
      assert.ok(printed.includes(`(store ${shown})`), printed)
      // The working directory now holds the digest file (named from the URL, never its password), and the start message names it.
      const files = readdirSync(dir)
      assert.equal(files.length, 1, files.join(', '))
      assert.match(files[0]!, /^keygate-[0-9a-f]{16}\.admin-token\.sha256$/)
      const tokenFile = path.join(dir, files[0]!)
      assert.ok(printed.includes(tokenFile), `the start message names the token file:\n${printed}`)
      assert.ok(!printed.includes(PASSWORD), printed)
      const token = /^\s+(kga_\S+)$/m.exec(printed)?.[1]
      assert.ok(token, `a generated token is printed:\n${printed}`)
      // Only the token's digest is kept.
      assert.equal(readFileSync(tokenFile, 'utf8'), `${createHash('sha256').update(token).digest('hex')}\n`)

      const session = await login(base, token)
      assert.equal(session.status, 200)
      const created = await fetch(`${base}/api/users`, { method: 'POST', headers: session.headers, body: JSON.stringify({ id: 'svc-web', rights: ['session:*'] }) })
      assert.equal(created.status, 201, await created.clone().text())
      assert.equal(psql("SELECT rights::text FROM keygate_users WHERE id = 'svc-web'", { database: db.name }), '{session:*}')
      assert.equal(psql("SELECT actor FROM keygate_audit WHERE user_id = 'svc-web'", { database: db.name }), 'web:admin')
      assert.equal(await first.stop(), 0)

      // A restart in the same directory accepts the same token and prints none (the file is named
      // from the URL without its password: a changed password keeps the token).
      const second = Serving.start(url.replace(PASSWORD, 'a-rotated-password'), port, dir)
      try {
        const again = await second.started()
        assert.ok(!/kga_/.test(again), again)
        assert.ok(again.includes('Log in with the admin token printed at the first start'), again)
        assert.equal((await login(base, token)).status, 200)
        assert.equal((await login(base, `${token}x`)).status, 401)
      } finally {
        await second.stop()
      }
    } finally {
      await first.stop()
    }
  })
})

describe('keygate serve on a URL with a password parameter', pgOnly(), () => {
  test('the start line hides it, and a changed ?password= keeps the token file', { timeout: 120_000 }, async () => {
    const db = createDatabase()
    const url = (password: string) => `postgres://postgres@${PG_HOST}:${PG_PORT}/${db.name}?password=${password}&sslmode=disable`
    const shown = `postgres://postgres@${PG_HOST}:${PG_PORT}/${db.name}?password=***&sslmode=disable`
    const port = await freePort()
    const dir = mkdtempSync(path.join(tmpdir(), 'keygate-serve-'))
    after(() => rmSync(dir, { recursive: true, force: true }))

    const first = Serving.start(url('first-Pass-41'), port, dir)
    try {
      const printed = await first.started()
      assert.ok(printed.includes(`(store ${shown})`), printed)
      assert.ok(!printed.includes('Pass-41'), printed)
      assert.match(printed, /kga_/)
    } finally {
      assert.equal(await first.stop(), 0)
    }
    const files = readdirSync(dir)
    assert.equal(files.length, 1, files.join(', '))

    const second = Serving.start(url('second-Pass-42'), port, dir)
    try {
      const again = await second.started()
      assert.ok(!again.includes('Pass-42'), again)
      assert.ok(!/kga_/.test(again), again)
      assert.ok(again.includes('Log in with the admin token printed at the first start'), again)
    } finally {
      await second.stop()
    }
    assert.deepEqual(readdirSync(dir), files)
  })
})

describe('the shown form of a store URL', () => {
  const { shownStore, fileNameOf } = createRequire(__filename)('../lib/location.js') as {
    shownStore(location: string): string
    fileNameOf(location: string): string
  }

  test('masks every password-like parameter and any user password, however written', () => {
    const cases: Array<[string, string]> = [
      ['postgres://u:hunter2@h/d', 'postgres://u:***@h/d'],
      ['postgres://u@h/d?password=hunter2', 'postgres://u@h/d?password=***'],
      ['postgresql://u@h/d?sslmode=require&sslpassword=hunter2&application_name=x', 'postgresql://u@h/d?sslmode=require&sslpassword=***&application_name=x'],
      ['postgres://u@h/d?PassWord=hunter2', 'postgres://u@h/d?PassWord=***'],
      ['postgres://u@h/d?pass%77ord=hunter2', 'postgres://u@h/d?pass%77ord=***'],
      ['postgres://u:hun/ter2@h/d', 'postgres://u:***@h/d'],
      ['postgres://u:hun?ter#2@h/d', 'postgres://u:***@h/d'],
      ['postgres://u:hun@ter2@h/d', 'postgres://u:***@h/d'],
      ['postgres://u:hun?password=ter2@h/d', 'postgres://u:***'],
      ['postgres://u@h:5432/d?password=hun@ter:2', 'postgres://u@h:5432/d?password=***'],
      ['POSTGRES://u:hunter2@h/d', 'POSTGRES://u:***@h/d'],
      ['postgres://u@h/d?sslmode=disable', 'postgres://u@h/d?sslmode=disable'],
    ]
    for (const [url, shown] of cases) {
      assert.equal(shownStore(url), shown, url)
      assert.ok(!shownStore(url).includes('hun'), url)
    }
    assert.equal(shownStore('/var/lib/app/keygate.db'), '/var/lib/app/keygate.db')
  })

  test('the file name kept beside a database store does not change with the password', () => {
    for (const url of [
      'postgres://u:PASS@h:5432/d?sslmode=disable',
      'postgres://u@h:5432/d?password=PASS&sslmode=disable',
      'postgres://u@h/d?sslmode=disable&password=PASS',
    ]) {
      const names = ['a', 'other-one', 'with/slash?and#hash', 'with@at:colon'].map((password) => fileNameOf(url.replace('PASS', password)))
      assert.equal(new Set(names).size, 1, `${url}: ${names.join(', ')}`)
    }
  })
})
