/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
// The admin web page (`keygate serve`), end to end in a real browser: Debian's chromium
// driven by playwright-core (no browser download), plus API-level checks of auth, CSRF and
// headers with fetch. KEYGATE_SCREENSHOTS=1 also writes docs/screenshots/*.png.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'

import type { Browser, BrowserContext, Locator, Page } from 'playwright-core'

import { KeyStore, KeygateError } from '../index.js'
import { createGuard } from 'keygate/http'
import * as binding from '../binding.js'
import { createAdminServer, CSP } from '../lib/admin/server.js'
import type { AdminServer } from '../lib/admin/server.js'
import { serve } from '../lib/admin/serve.js'
import { createAdminHandler } from '../lib/admin/index.js'
import type { Serving } from '../lib/admin/serve.js'
import { assertTypeError, digestForms } from './helpers.js'
import { ADMIN_TOKEN as TOKEN, browserSuite, launchChromium } from './support/browser.js'

const SCREENSHOTS = process.env.KEYGATE_SCREENSHOTS === '1'
const SHOT_DIR = path.join(__dirname, '..', 'docs', 'screenshots')
const DAY = 86_400_000
const SECRET_RE = /^kg_[0-9A-Za-z]{49}$/

// The admin API's own error codes (lib/admin/codes.js, internal: no typings).
const { AdminErrorCode } = require('../lib/admin/codes.js') as { AdminErrorCode: Record<string, string> }

const EXPECTED_CSP = "default-src 'self'; script-src 'self'; style-src 'self'"

/** Waits until `locator` matches `n` elements (page.waitForFunction would need eval, which the CSP forbids); as long as the page's own waits. */
async function waitCount(locator: Locator, n: number, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs
  for (;;) {
    const count = await locator.count()
    if (count === n) return
    if (Date.now() > end) assert.fail(`expected ${n} elements, found ${count}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

function tempDir(): string {
  return mkdtempSync(path.join(tmpdir(), 'keygate-admin-'))
}

/** Runs `body` in a new directory with KEYGATE_ADMIN_TOKEN unset, as `serve` finds them at a first start; restores both after. */
async function inDirWithoutEnvToken(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = tempDir()
  const saved = process.env.KEYGATE_ADMIN_TOKEN
  delete process.env.KEYGATE_ADMIN_TOKEN
  try {
    await body(dir)
  } finally {
    if (saved === undefined) delete process.env.KEYGATE_ADMIN_TOKEN
    else process.env.KEYGATE_ADMIN_TOKEN = saved
    rmSync(dir, { recursive: true, force: true })
  }
}

// ---- API level: auth, CSRF, headers ----------------------------------------------------

describe('admin API (fetch)', () => {
  let store: KeyStore
  let server: AdminServer
  let url: string
  const logged: string[] = []

  before(async () => {
    store = KeyStore.inMemory()
    server = createAdminServer({ store, token: TOKEN, port: 0, bodyLimit: 64 * 1024, log: (l) => logged.push(l) })
    url = await server.listen()
  })
  after(async () => {
    await server.close()
    store.close()
  })

  /** The device cookie of the last login, sent back as a browser would (so a wrong-token test slows no later login). */
  let device = ''
  async function login(): Promise<{ cookie: string; csrf: string; setCookie: string }> {
    const res = await fetch(`${url}/api/login`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...(device ? { Cookie: device } : {}) },
      body: JSON.stringify({ token: TOKEN }),
    })
    assert.equal(res.status, 200)
    const setCookie = res.headers.get('set-cookie') ?? ''
    device =
      res.headers
        .getSetCookie()
        .find((c) => c.startsWith('keygate_device='))
        ?.split(';')[0] ?? device
    const body = (await res.json()) as { csrfToken: string }
    return { cookie: setCookie.split(';')[0]!, csrf: body.csrfToken, setCookie }
  }

  // Login throttling and device cookies: __test__/admin-login.test.ts.
  test('the login delay options are checked', () => {
    for (const bad of [-1, Number.NaN, 60_001]) {
      assert.throws(() => createAdminServer({ store, token: TOKEN, loginFailureDelayMs: bad }), TypeError)
    }
  })

  test('an id that is a secret is never echoed in an error', async () => {
    const { cookie } = await login()
    const secretLike = `kg_${'a1B2c3D4e5'.repeat(5)}`
    const res = await fetch(`${url}/api/keys/${secretLike}`, { headers: { Cookie: cookie } })
    const text = await res.text()
    assert.ok(res.status >= 400)
    assert.ok(!text.includes(secretLike.slice(3)), text)
  })

  test('the page is served with a strict CSP and security headers, and has no inline script', async () => {
    const res = await fetch(`${url}/`)
    assert.equal(res.status, 200)
    const csp = res.headers.get('content-security-policy') ?? ''
    assert.ok(csp.startsWith(EXPECTED_CSP), csp)
    for (const part of ["object-src 'none'", "frame-ancestors 'none'", "base-uri 'none'", "form-action 'self'"]) assert.ok(csp.includes(part), part)
    assert.equal(csp, CSP)
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff')
    assert.equal(res.headers.get('referrer-policy'), 'no-referrer')
    const html = await res.text()
    for (const m of html.matchAll(/<script\b[^>]*>/gi)) assert.match(m[0], /\bsrc=/, `inline script: ${m[0]}`)
    assert.doesNotMatch(html, /\son[a-z]+\s*=/i, 'no inline event handler')
    assert.doesNotMatch(html, /\sstyle\s*=/i, 'no inline style')
    assert.doesNotMatch(html, /https?:\/\//i, 'nothing loaded from another origin')
    for (const file of ['/app.js', '/app.css']) {
      const r = await fetch(`${url}${file}`)
      assert.equal(r.status, 200, file)
      assert.equal(r.headers.get('x-content-type-options'), 'nosniff')
      assert.doesNotMatch(await r.text(), /https?:\/\/(?!localhost)/i, `${file} loads nothing from elsewhere`)
    }
    assert.equal((await fetch(`${url}/../package.json`)).status, 404)
    assert.equal((await fetch(`${url}/public/app.js`)).status, 404)
  })

  test('every script module the page imports is served as JavaScript and preloaded by the page', async () => {
    const html = await (await fetch(`${url}/`)).text()
    const preloaded = new Set([...html.matchAll(/<link rel="modulepreload" href="([^"]+)">/g)].map((m) => m[1]!))
    const seen = new Set<string>()
    const queue = ['app.js']
    while (queue.length > 0) {
      const name = queue.shift()!
      if (seen.has(name)) continue
      seen.add(name)
      const res = await fetch(`${url}/${name}`)
      assert.equal(res.status, 200, name)
      assert.match(res.headers.get('content-type') ?? '', /^text\/javascript/, `${name} is served as JavaScript`)
      assert.equal(res.headers.get('x-content-type-options'), 'nosniff')
      const text = await res.text()
      assert.doesNotMatch(text, /https?:\/\/(?!localhost)/i, `${name} loads nothing from elsewhere`)
      for (const m of text.matchAll(/^(?:import|export)\b[^'"]*from\s+'([^']+)'/gm)) {
        assert.match(m[1]!, /^\.\/[a-z-]+\.js$/, `${name} imports ${m[1]} relative to the page`)
        queue.push(m[1]!.slice(2))
      }
    }
    assert.ok(seen.size > 5, `the page is split into modules: ${[...seen].join(', ')}`)
    for (const name of seen) if (name !== 'app.js') assert.ok(preloaded.has(name), `${name} is named by a modulepreload link`)
    for (const name of preloaded) assert.ok(seen.has(name), `preloaded ${name} is imported`)
  })

  test("/constants.js, the page's names, is the binding's string enums and the admin API's own codes", async () => {
    const res = await fetch(`${url}/constants.js`)
    assert.equal(res.status, 200)
    assert.match(res.headers.get('content-type') ?? '', /^text\/javascript/)
    const served = await import(`data:text/javascript,${encodeURIComponent(await res.text())}`)
    const expected = { ...binding, AdminErrorCode }
    const names = ['Reason', 'KeyState', 'UserStatus', 'AuditAction', 'ErrorCode', 'AdminErrorCode'] as const
    assert.deepEqual(Object.keys(served).sort(), [...names].sort())
    for (const name of names) {
      assert.deepEqual(Object.entries(served[name]), Object.entries(expected[name]), name)
      assert.ok(Object.isFrozen(served[name]), `${name} is frozen`)
    }
  })

  test('without a session the API answers 401 with a JSON error and no-store', async () => {
    const res = await fetch(`${url}/api/keys`)
    assert.equal(res.status, 401)
    assert.equal(res.headers.get('cache-control'), 'no-store')
    const body = (await res.json()) as { error: { code: string } }
    assert.equal(body.error.code, 'UNAUTHENTICATED')
  })

  test('login: a wrong token is refused; the right one gives an HttpOnly SameSite=Strict cookie', async () => {
    const bad = await fetch(`${url}/api/login`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ token: 'nope' }) })
    assert.equal(bad.status, 401)
    assert.equal(bad.headers.get('set-cookie'), null)
    const { setCookie, csrf } = await login()
    assert.match(setCookie, /^keygate_sid=[A-Za-z0-9_-]{43};/)
    assert.match(setCookie, /; HttpOnly/)
    assert.match(setCookie, /; SameSite=Strict/)
    assert.match(setCookie, /; Path=\//)
    assert.doesNotMatch(setCookie, /Secure/, 'no Secure flag over plain http')
    assert.match(csrf, /^[A-Za-z0-9_-]{43}$/)
    const https = await fetch(`${url}/api/login`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-Forwarded-Proto': 'https' },
      body: JSON.stringify({ token: TOKEN }),
    })
    assert.match(https.headers.get('set-cookie') ?? '', /; Secure/, 'Secure behind https')
  })

  test('CSRF: a change without the token (or with a wrong one) is 403 and changes nothing', async () => {
    const { cookie, csrf } = await login()
    const body = JSON.stringify({ id: 'csrf-victim' })
    const none = await fetch(`${url}/api/users`, { method: 'POST', headers: { cookie, 'Content-Type': 'application/json' }, body })
    assert.equal(none.status, 403)
    assert.equal(((await none.json()) as { error: { code: string } }).error.code, 'CSRF')
    const wrong = await fetch(`${url}/api/users`, { method: 'POST', headers: { cookie, 'Content-Type': 'application/json', 'X-CSRF-Token': `${csrf}x` }, body })
    assert.equal(wrong.status, 403)
    const cross = await fetch(`${url}/api/users`, {
      method: 'POST',
      headers: { cookie, 'Content-Type': 'application/json', 'X-CSRF-Token': csrf, Origin: 'https://evil.example' },
      body,
    })
    assert.equal(cross.status, 403, 'a cross-origin request is refused even with the token')
    const form = await fetch(`${url}/api/users`, { method: 'POST', headers: { cookie, 'Content-Type': 'text/plain', 'X-CSRF-Token': csrf }, body })
    assert.equal(form.status, 415, 'only JSON bodies')
    assert.equal(store.getUser('csrf-victim'), null)
    const ok = await fetch(`${url}/api/users`, { method: 'POST', headers: { cookie, 'Content-Type': 'application/json', 'X-CSRF-Token': csrf }, body })
    assert.equal(ok.status, 201)
    assert.notEqual(store.getUser('csrf-victim'), null)
    assert.equal(store.audit({ limit: 1 })[0]!.actor, 'web:admin', 'changes are recorded as web:admin')
  })

  test('errors are JSON { error: { code, message } } with 400/404/409; bodies are limited; no secret is echoed', async () => {
    const { cookie, csrf } = await login()
    const headers = { cookie, 'Content-Type': 'application/json', 'X-CSRF-Token': csrf }
    const post = (p: string, b: unknown, method = 'POST') => fetch(`${url}${p}`, { method, headers, body: JSON.stringify(b) })
    store.putUser({ id: 'api-user', rights: ['*:*'] })
    const far = await post('/api/keys', { userId: 'api-user', description: '', expiresAt: new Date(Date.now() + 800 * DAY).toISOString() })
    assert.equal(far.status, 400)
    assert.equal(((await far.json()) as { error: { code: string } }).error.code, 'EXPIRY_TOO_FAR')
    const none = await post('/api/keys', { userId: 'api-user', description: '' })
    assert.equal(((await none.json()) as { error: { code: string } }).error.code, 'EXPIRY_REQUIRED')
    const badRule = await post('/api/keys', {
      userId: 'api-user',
      description: '',
      expiresAt: new Date(Date.now() + DAY).toISOString(),
      rules: ['session:*', 'nonsense'],
    })
    assert.equal(badRule.status, 400)
    const err = ((await badRule.json()) as { error: { code: string; message: string } }).error
    assert.equal(err.code, 'INVALID_RULE')
    assert.match(err.message, /line 2/)
    assert.match(err.message, /nonsense/)
    const missing = await post('/api/keys/key_doesnotexist/state', { state: 'suspended' })
    assert.equal(missing.status, 404)
    const created = await post('/api/keys', { userId: 'api-user', description: 'd', expiresAt: new Date(Date.now() + DAY).toISOString() })
    assert.equal(created.status, 201)
    assert.equal(created.headers.get('cache-control'), 'no-store')
    const { key, secret } = (await created.json()) as { key: { id: string; updatedAt: string }; secret: string }
    assert.match(secret, SECRET_RE)
    await post(`/api/keys/${key.id}/state`, { state: 'revoked' })
    const again = await post(`/api/keys/${key.id}/state`, { state: 'active' })
    assert.equal(again.status, 409)
    const stale = await post(`/api/keys/${key.id}`, { description: 'x', updatedAt: key.updatedAt }, 'PATCH')
    assert.equal(stale.status, 409)
    assert.equal(((await stale.json()) as { error: { code: string } }).error.code, 'CONFLICT', 'checked by the store inside its write')
    // The secret never comes back: not in the key, list, audit or a try answer.
    const texts = await Promise.all(
      [`/api/keys/${key.id}`, '/api/keys', '/api/audit?limit=1000', '/api/users'].map(async (p) => (await fetch(`${url}${p}`, { headers: { cookie } })).text()),
    )
    const tried = await (await post('/api/try', { secret, service: 'session', api: 'userLogon' })).text()
    for (const t of [...texts, tried]) {
      assert.ok(!t.includes(secret) && !t.includes(secret.slice(3, 25)), 'no secret in an API answer')
      for (const d of digestForms(secret)) assert.ok(!t.includes(d), 'no digest in an API answer')
    }
    assert.match(tried, /"reason":"revoked"/)
    // By key id the store's explainKey answers the same, naming the key and no secret.
    const byId = (await (await post('/api/try', { keyId: key.id, service: 'session', api: 'userLogon' })).json()) as {
      mode: string
      decision: { reason: string; keyId: string }
    }
    assert.deepEqual([byId.mode, byId.decision.reason, byId.decision.keyId], ['key', 'revoked', key.id])
    // A broken body that holds a secret: the error does not quote it.
    const broken = await fetch(`${url}/api/try`, { method: 'POST', headers, body: `{"secret":"${secret}` })
    assert.equal(broken.status, 400)
    assert.ok(!(await broken.text()).includes(secret.slice(3, 20)))
    const big = await fetch(`${url}/api/users`, { method: 'POST', headers, body: JSON.stringify({ id: 'x', rights: ['a'.repeat(70 * 1024)] }) })
    assert.equal(big.status, 413)
    assert.ok(!logged.join('\n').includes(secret.slice(3, 20)), 'no secret in the log')
  })

  test('logout ends the session', async () => {
    const { cookie, csrf } = await login()
    const out = await fetch(`${url}/api/logout`, { method: 'POST', headers: { cookie, 'X-CSRF-Token': csrf } })
    assert.equal(out.status, 200)
    assert.equal((await fetch(`${url}/api/keys`, { headers: { cookie } })).status, 401)
  })
})

describe('serve() and the bootstrap admin token', () => {
  test('options serve() only inherits (a polluted Object.prototype) are not read: no host, no token', async () => {
    const dir = tempDir()
    const proto = Object.prototype as Record<string, unknown>
    proto.host = '0.0.0.0'
    proto.token = 'attacker-chosen-token-0123456789abcdef'
    proto.maxLifetimeDays = 36_500
    const printed: string[] = []
    let s: Serving
    try {
      s = await serve({ db: path.join(dir, 'keygate.db'), port: 0, handleSignals: false, print: (line) => printed.push(line) })
    } finally {
      delete proto.host
      delete proto.token
      delete proto.maxLifetimeDays
    }
    try {
      assert.match(s.url, /^http:\/\/127\.0\.0\.1:/)
      const login = await fetch(`${s.url}/api/login`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ token: 'attacker-chosen-token-0123456789abcdef' }),
      })
      assert.equal(login.status, 401)
      // The page offers the store's own lifetime limit, not an inherited one.
      const token = printed.join('\n').match(/kga_[A-Za-z0-9_-]{43}/)?.[0]
      assert.ok(token, 'a token was generated and printed')
      const real = await fetch(`${s.url}/api/login`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ token }) })
      assert.equal(real.status, 200)
      assert.equal(((await real.json()) as { maxLifetimeDays: number }).maxLifetimeDays, 730)
    } finally {
      await s.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })

  test('a token is generated at the first start, printed once, kept only as a SHA-256 (0600); later starts accept it silently', async () => {
    await inDirWithoutEnvToken(async (dir) => {
      const db = path.join(dir, 'keygate.db')
      const first: string[] = []
      let s: Serving = await serve({ db, port: 0, handleSignals: false, print: (l) => first.push(l) })
      const token = first.join('\n').match(/kga_[A-Za-z0-9_-]{43}/)?.[0]
      assert.ok(token, 'the token is printed at the first start')
      const file = `${db}.admin-token.sha256`
      assert.equal(s.tokenFile, file)
      if (process.platform !== 'win32') assert.equal(statSync(file).mode & 0o777, 0o600)
      const kept = readFileSync(file, 'utf8')
      assert.ok(!kept.includes(token!), 'only the digest is kept')
      await s.close()

      const second: string[] = []
      s = await serve({ db, port: 0, handleSignals: false, print: (l) => second.push(l) })
      assert.ok(!second.join('\n').includes('kga_'), 'not printed again')
      assert.match(second.join('\n'), /delete .*admin-token\.sha256/, 'says how to reset')
      const res = await fetch(`${s.url}/api/login`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ token }) })
      assert.equal(res.status, 200, 'the same token still works')
      await s.close()

      process.env.KEYGATE_ADMIN_TOKEN = 'from-the-environment-1234'
      const third: string[] = []
      s = await serve({ db, port: 0, handleSignals: false, print: (l) => third.push(l) })
      assert.ok(!third.join('\n').includes('from-the-environment-1234'), 'an env token is never printed')
      const env = await fetch(`${s.url}/api/login`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ token: 'from-the-environment-1234' }),
      })
      assert.equal(env.status, 200)
      await s.close()
    })
  })

  test("host '' is refused before the store is opened: no store file is made", async () => {
    const dir = tempDir()
    const db = path.join(dir, 'keygate.db')
    try {
      await assert.rejects(serve({ db, host: '', port: 0, handleSignals: false, print: () => {} }), /options\.host must be an address/)
      assert.ok(!existsSync(db), 'a store file was made')
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  test('an option of another type than serve.d.ts says is a TypeError before the store is opened, never taken as left out', async () => {
    await inDirWithoutEnvToken(async (dir) => {
      const db = path.join(dir, 'keygate.db')
      // A first start keeps a generated token's digest: a token option taken as left out would
      // leave the page on that one, not on the token the caller gave.
      const first = await serve({ db, port: 0, handleSignals: false, print: () => {} })
      await first.close()
      const listeners = process.listenerCount('SIGINT')
      const wrong: [Record<string, unknown>, RegExp][] = [
        [{ token: 1234567890123456 }, /^TypeError: options\.token must be a string/],
        [{ token: Buffer.from('a-token-of-sixteen-or-more') }, /^TypeError: options\.token must be a string/],
        [{ handleSignals: 0 }, /^TypeError: options\.handleSignals must be true or false/],
        [{ handleSignals: 'no' }, /^TypeError: options\.handleSignals must be true or false/],
        [{ print: 'console' }, /^TypeError: options\.print must be a function/],
        [{ port: '8080' }, /^TypeError: options\.port must be a whole number from 0/],
        [{ db: 5 }, /^TypeError: options\.db must be a store file path/],
        // Had been INVALID_ARGUMENT "options must be an object", or (an array) 'no option "length"'.
        [{ storeOptions: 5 }, /^TypeError: options\.storeOptions must be an object/],
        [{ storeOptions: 'x' }, /^TypeError: options\.storeOptions must be an object/],
        [{ storeOptions: [] }, /^TypeError: options\.storeOptions must be an object/],
        // Had been KeyStore.open's INVALID_ARGUMENT 'options: no option "bogus"', naming an option serve does not have.
        [{ storeOptions: { bogus: 1 } }, /^TypeError: options\.storeOptions: no option "bogus"; the options are keyPrefix, /],
        [{ storeOptions: { maxLifetimeDay: 90 } }, /^TypeError: options\.storeOptions: no option "maxLifetimeDay" \(did you mean maxLifetimeDays\?\)/],
        [{ storeOptions: { maxLifetimeDays: '90' } }, /^TypeError: options\.storeOptions\.maxLifetimeDays must be a number, got a string/],
        [{ storeOptions: { onError: 'log' } }, /^TypeError: options\.storeOptions\.onError must be a function/],
      ]
      for (const [given, message] of wrong) {
        const other = path.join(dir, 'other.db')
        const outcome = await serve({ db: other, port: 0, handleSignals: false, print: () => {}, ...given }).catch((error: unknown) => error)
        // Taken: close what it started (a listening server would keep the test running), then fail.
        if (!(outcome instanceof Error)) await (outcome as Serving).close()
        assert.match(String(outcome), message, JSON.stringify(given))
        assertTypeError(outcome, JSON.stringify(given))
        assert.ok(!existsSync(other), `a store file was made for ${JSON.stringify(given)}`)
      }
      assert.equal(process.listenerCount('SIGINT'), listeners, 'no signal handler was left installed')
    })
  })

  test('a bad admin token, as the token option or KEYGATE_ADMIN_TOKEN, is refused before the store is opened: no store file is made', async () => {
    const dir = tempDir()
    const db = path.join(dir, 'keygate.db')
    const saved = process.env.KEYGATE_ADMIN_TOKEN
    try {
      const start = (token?: string) => serve({ db, token, port: 0, handleSignals: false, print: () => {} })
      delete process.env.KEYGATE_ADMIN_TOKEN
      await assert.rejects(start('too-short'), /the admin token must be at least 16 characters \(the token option\)/)
      assert.ok(!existsSync(db), 'a store file was made for a token option refused')
      process.env.KEYGATE_ADMIN_TOKEN = 'x'.repeat(1025)
      await assert.rejects(start(), /the admin token must be at most 1024 characters \(KEYGATE_ADMIN_TOKEN\)/)
      assert.ok(!existsSync(db), 'a store file was made for a KEYGATE_ADMIN_TOKEN refused')
    } finally {
      if (saved === undefined) delete process.env.KEYGATE_ADMIN_TOKEN
      else process.env.KEYGATE_ADMIN_TOKEN = saved
      rmSync(dir, { recursive: true, force: true })
    }
  })

  test('a token the login form could never send is refused at start, not left to lock the admin out', async () => {
    const dir = tempDir()
    const db = path.join(dir, 'keygate.db')
    try {
      let started: Serving | undefined
      let refused: unknown
      try {
        started = await serve({ db, token: `kga_${'x'.repeat(1500)}`, port: 0, handleSignals: false, print: () => {} })
      } catch (error) {
        refused = error
      }
      await started?.close()
      assert.match(String(refused), /the admin token must be at most 1024 characters \(the token option\)/)
      assert.ok(!existsSync(`${db}.admin-token.sha256`))
      // Given empty: refused, not taken as left out (the page would open on another token).
      const empty = await serve({ db, token: '', port: 0, handleSignals: false, print: () => {} }).catch((error: unknown) => error)
      if (!(empty instanceof Error)) await (empty as Serving).close()
      assert.match(String(empty), /the admin token must be at least 16 characters \(the token option\)/)
      assertTypeError(empty)
      assert.ok(!existsSync(`${db}.admin-token.sha256`))
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  test("options given as a revoked Proxy are INVALID_ARGUMENT, not the engine's TypeError", async () => {
    const { proxy, revoke } = Proxy.revocable({}, {})
    revoke()
    const refused = (e: unknown) => e instanceof KeygateError && e.code === 'INVALID_ARGUMENT'
    // The admin's option errors are TypeErrors too (as documented), this one included.
    const refusedOption = (e: unknown) => refused(e) && e instanceof TypeError
    await assert.rejects(serve(proxy as never), refusedOption)
    await assert.rejects(serve({ port: 0, handleSignals: false, storeOptions: proxy as never }), refusedOption)
    assert.throws(() => createAdminServer(proxy as never), refusedOption)
    assert.throws(() => createAdminHandler(proxy as never), refusedOption)
    assert.throws(() => createGuard(KeyStore.inMemory(), proxy as never), refused)
    // A revoked Proxy given as an option's value, which is read for a method or tested for an array.
    assert.throws(() => createGuard(proxy as never), refused)
    assert.throws(() => createGuard(KeyStore.inMemory(), { trustProxy: proxy as never }), refused)
    assert.throws(() => createAdminServer({ store: proxy as never, token: TOKEN }), refused)
    assert.throws(() => createAdminHandler({ store: proxy as never, token: TOKEN }), refused)
  })

  test("serve()'s other refusals are KeygateErrors too, made before the store is opened: a port in use INVALID_ARGUMENT, a damaged token digest file STORE_IO", async () => {
    await inDirWithoutEnvToken(async (dir) => {
      const db = path.join(dir, 'keygate.db')
      const first = await serve({ db, port: 0, handleSignals: false, print: () => {} })
      try {
        // Had been a plain Error: a caller could not tell it from a bug by its code.
        const other = path.join(dir, 'other.db')
        const taken = await serve({ db: other, port: first.port, token: TOKEN, handleSignals: false, print: () => {} }).catch((e: unknown) => e)
        if (!(taken instanceof Error)) await (taken as Serving).close()
        assert.ok(taken instanceof KeygateError, String(taken))
        assert.equal(taken.code, 'INVALID_ARGUMENT')
        assert.match(taken.message, new RegExp(`^port ${first.port} on "127\\.0\\.0\\.1" is already in use`))
        // Refused before the store was opened: no store file was made (a refused call changes nothing).
        assert.ok(!existsSync(other), 'a store file was made for a port in use')
        // An address of another machine (TEST-NET-1): the same, not a store made for nothing.
        const elsewhere = await serve({ db: other, host: '192.0.2.1', port: 0, token: TOKEN, handleSignals: false, print: () => {} }).catch((e: unknown) => e)
        if (!(elsewhere instanceof Error)) await (elsewhere as Serving).close()
        assert.ok(elsewhere instanceof KeygateError && elsewhere.code === 'INVALID_ARGUMENT', String(elsewhere))
        assert.match(elsewhere.message, /^"192\.0\.2\.1" is not an address of this machine$/)
        assert.ok(!existsSync(other), 'a store file was made for a host not this machine')
        // An address no server can listen on (link-local without its interface, multicast): Linux's
        // EINVAL, which had been a plain Error (the CLI's 'unexpected error', INTERNAL, with a stack).
        for (const host of ['fe80::1', 'ff02::1']) {
          const invalid = await serve({ db: other, host, port: 0, token: TOKEN, handleSignals: false, print: () => {} }).catch((e: unknown) => e)
          if (!(invalid instanceof Error)) await (invalid as Serving).close()
          assert.ok(invalid instanceof KeygateError && invalid.code === 'INVALID_ARGUMENT', String(invalid))
          assert.equal(invalid.message, `cannot listen on "${host}": no server can (a link-local IPv6 address needs its interface, such as fe80::1%eth0)`)
          assert.ok(!existsSync(other), `a store file was made for ${host}`)
        }
      } finally {
        await first.close()
      }
      writeFileSync(first.tokenFile, 'not a digest\n', { mode: 0o600 })
      const damaged = await serve({ db, port: 0, handleSignals: false, print: () => {} }).catch((e: unknown) => e)
      if (!(damaged instanceof Error)) await (damaged as Serving).close()
      assert.ok(damaged instanceof KeygateError, String(damaged))
      assert.equal(damaged.code, 'STORE_IO')
      assert.match(damaged.message, /admin-token\.sha256 is not a SHA-256 digest; delete it/)
    })
  })

  test('serve() and createAdminServer refuse a host with a control character or over 253 characters before any lookup; a listen failure quotes the host, redacted', async (t) => {
    await inDirWithoutEnvToken(async (dir) => {
      const db = path.join(dir, 'keygate.db')
      const start = (host: string) => serve({ db, host, port: 0, token: TOKEN, handleSignals: false, print: () => {} }).catch((e: unknown) => e)
      const refusedAs = async (host: string, message: RegExp) => {
        const outcome = await start(host)
        if (!(outcome instanceof Error)) await (outcome as Serving).close()
        assertTypeError(outcome, JSON.stringify(host))
        assert.match((outcome as Error).message, message)
        assert.ok(!existsSync(db), `a store file was made for ${JSON.stringify(host)}`)
        assert.throws(
          () => createAdminServer({ store: KeyStore.inMemory(), token: TOKEN, host }),
          (e) => e instanceof KeygateError && message.test(e.message),
        )
      }
      // A NUL had ended the text the system was given: '127.0.0.1\0x' listened on 127.0.0.1.
      await refusedAs('127.0.0.1\0x', /^options\.host "127\.0\.0\.1\\u0000x" holds a control character/)
      for (const host of ['127.0.0.1\nx', 'localhost\t', '\x7f', 'a\u0085b']) await refusedAs(host, /^options\.host ".*" holds a control character/)
      // Had been the resolver's EINVAL, told as an address no server can listen on (link-local, multicast).
      await refusedAs('abcdefghi_'.repeat(30), /^options\.host "(abcdefghi_){8}…" is 300 characters long: a host name has at most 253$/)
      // The final dot of a fully qualified name is no part of its 253 characters: one of 253 and
      // its dot (254, as DNS allows) is looked up, and had been refused for its length.
      // Labels of 63 characters cut by underscores (a run of 32 letters and dashes would be redacted as secret-shaped).
      const longest = [...Array(3).fill(`${'label_'.repeat(10)}abc`), `${'label_'.repeat(8)}abcde`, 'invalid'].join('.')
      assert.equal(longest.length, 253)
      const qualified = await start(`${longest}.`)
      if (!(qualified instanceof Error)) await (qualified as Serving).close()
      assert.ok(qualified instanceof KeygateError && qualified.code === 'INVALID_ARGUMENT', String(qualified))
      assert.match(qualified.message, /^cannot listen on "(label_|abc\.)+labe…": the name does not resolve/)
      await refusedAs(`${longest}b.`, /^options\.host "(label_|abc\.)+labe…" is 255 characters long: a host name has at most 253$/)
      // A host that does not resolve is quoted (not bare, unredacted) in the message, as every value keygate shows.
      const secretShaped = `kg_${'A'.repeat(45)}.invalid`
      const unresolved = await start(secretShaped)
      if (!(unresolved instanceof Error)) await (unresolved as Serving).close()
      assert.ok(unresolved instanceof KeygateError && unresolved.code === 'INVALID_ARGUMENT', String(unresolved))
      assert.match(unresolved.message, /^cannot listen on "kg_<redacted>": the name does not resolve/)
      const admin = createAdminServer({ store: KeyStore.inMemory(), token: TOKEN, host: secretShaped })
      const viaListen = await admin.listen().then(
        () => assert.fail('listened on a name that does not resolve'),
        (e: unknown) => e,
      )
      await admin.close()
      assert.ok(viaListen instanceof KeygateError && !viaListen.message.includes('A'.repeat(32)), String(viaListen))
      assert.match(viaListen.message, /^cannot listen on "kg_<redacted>"/)
      // A resolver that still says EINVAL for a name (another libc's limits) is told so, not as a link-local address.
      const net = await import('node:net')
      const failing = t.mock.method(net.Server.prototype, 'listen', function (this: import('node:net').Server) {
        process.nextTick(() => this.emit('error', Object.assign(new Error('getaddrinfo EINVAL a-name'), { code: 'EINVAL', syscall: 'getaddrinfo' })))
        return this
      })
      const resolverInvalid = await start('a-name')
      failing.mock.restore()
      if (!(resolverInvalid instanceof Error)) await (resolverInvalid as Serving).close()
      assert.ok(resolverInvalid instanceof KeygateError && resolverInvalid.code === 'INVALID_ARGUMENT', String(resolverInvalid))
      assert.equal(resolverInvalid.message, 'cannot listen on "a-name": it is not a host name the system can look up (EINVAL)')
    })
  })

  test('serve(): a listen failure of any kind is a KeygateError: out of file descriptors STORE_IO, an address family the machine lacks INVALID_ARGUMENT', async (t) => {
    await inDirWithoutEnvToken(async (dir) => {
      // Out of file descriptors for real, in a child whose limit is low: had been Node's own
      // Error (EMFILE), which the CLI reported as a bug in keygate (exit 4, with a stack).
      if (process.platform !== 'win32') {
        const script = [
          "const fs = require('node:fs')",
          `const { serve } = require(${JSON.stringify(path.join(__dirname, '..', 'lib', 'admin', 'serve.js'))})`,
          `const { KeygateError } = require(${JSON.stringify(path.join(__dirname, '..', 'index.js'))})`,
          'const held = []',
          "try { for (;;) held.push(fs.openSync('/dev/null', 'r')) } catch {}",
          `serve({ db: ${JSON.stringify(path.join(dir, 'emfile.db'))}, token: ${JSON.stringify(TOKEN)}, port: 0, handleSignals: false, print: () => {} }).then(`,
          "  async (s) => { await s.close(); console.log('started') },",
          '  (e) => { for (const fd of held) fs.closeSync(fd); console.log(JSON.stringify({ keygate: e instanceof KeygateError, code: e.code, message: e.message })) })',
        ].join('\n')
        const { execFileSync } = await import('node:child_process')
        const out = execFileSync('sh', ['-c', 'ulimit -n 64 && exec "$0" -e "$1"', process.execPath, script], { encoding: 'utf8' })
        const outcome = JSON.parse(out)
        assert.deepEqual(outcome, {
          keygate: true,
          code: 'STORE_IO',
          message: 'cannot listen on "127.0.0.1" port 0: this process has as many files open as it may (raise its limit: ulimit -n) (EMFILE)',
        })
        assert.ok(!existsSync(path.join(dir, 'emfile.db')), 'a store file was made')
      }
      // No IPv6 on this machine (a container's, say) for `::1`: listen() fails with EAFNOSUPPORT,
      // made here by a listen() that fails so, as Node's does.
      const net = await import('node:net')
      const failing = t.mock.method(net.Server.prototype, 'listen', function (this: import('node:net').Server) {
        process.nextTick(() => this.emit('error', Object.assign(new Error('listen EAFNOSUPPORT: address family not supported ::1'), { code: 'EAFNOSUPPORT' })))
        return this
      })
      const db = path.join(dir, 'keygate.db')
      const refused = await serve({ db, host: '::1', port: 0, token: TOKEN, handleSignals: false, print: () => {} }).catch((e: unknown) => e)
      failing.mock.restore()
      if (!(refused instanceof Error)) await (refused as Serving).close()
      assert.ok(refused instanceof KeygateError && refused.code === 'INVALID_ARGUMENT', String(refused))
      assert.match(refused.message, /^cannot listen on "::1": this machine does not support its address family/)
      assert.ok(!existsSync(db), 'a store file was made')
    })
  })

  test('serve(): a port taken between its probe and its listen is refused as the probe refuses it, saying how to choose another', async (t) => {
    await inDirWithoutEnvToken(async (dir) => {
      const net = await import('node:net')
      const original = net.Server.prototype.listen
      let calls = 0
      // The probe listens and lets go; by the admin server's listen, another program has the port.
      const taking = t.mock.method(net.Server.prototype, 'listen', function (this: import('node:net').Server, ...args: unknown[]) {
        calls++
        if (calls === 1) return Reflect.apply(original, this, args)
        process.nextTick(() => this.emit('error', Object.assign(new Error('listen EADDRINUSE: address already in use 127.0.0.1:8089'), { code: 'EADDRINUSE' })))
        return this
      })
      const refused = await serve({ db: path.join(dir, 'keygate.db'), port: 8089, token: TOKEN, handleSignals: false, print: () => {} }).catch((e: unknown) => e)
      taking.mock.restore()
      if (!(refused instanceof Error)) await (refused as Serving).close()
      assert.equal(calls, 2)
      assert.ok(refused instanceof KeygateError && refused.code === 'INVALID_ARGUMENT', String(refused))
      // Had lost the hint that the probe's refusal gives (createAdminServer's listen() has no PORT or --port).
      assert.equal(refused.message, 'port 8089 on "127.0.0.1" is already in use; choose another (PORT=… or --port)')
    })
  })

  test("createAdminServer's listen() rejects with a KeygateError for a port in use; server.listen() called directly with no listener of the caller's still throws its failure", async () => {
    const store = KeyStore.inMemory()
    const first = createAdminServer({ store, token: TOKEN, port: 0 })
    await first.listen()
    const second = createAdminServer({ store, token: TOKEN, port: first.port! })
    try {
      // Had been Node's own Error (EADDRINUSE, no code of keygate's).
      const taken = await second.listen().then(
        () => assert.fail('listened on a port in use'),
        (e: unknown) => e,
      )
      assert.ok(taken instanceof KeygateError, String(taken))
      assert.equal(taken.code, 'INVALID_ARGUMENT')
      assert.equal(taken.message, `port ${first.port} on "127.0.0.1" is already in use; choose another`)
      assert.equal(second.url, null)
      // A failure to listen that nobody hears is thrown by the emitter, as for any node server:
      // the admin server's own listener (for failed accepts) must not make it go unsaid.
      const inUse = Object.assign(new Error('listen EADDRINUSE'), { code: 'EADDRINUSE' })
      assert.throws(() => second.server.emit('error', inUse), inUse)
    } finally {
      await second.close()
      await first.close()
      store.close()
    }
  })

  test("createAdminServer's listen() called again while listening rejects with a KeygateError and leaves no listener that would swallow a later failure of server.listen()", async () => {
    const store = KeyStore.inMemory()
    const admin = createAdminServer({ store, token: TOKEN, port: 0 })
    await admin.listen()
    try {
      // Had been Node's ERR_SERVER_ALREADY_LISTEN, thrown by server.listen() inside the promise.
      const again = await admin.listen().then(
        () => assert.fail('listened twice'),
        (e: unknown) => e,
      )
      assert.ok(again instanceof KeygateError, String(again))
      assert.equal(again.code, 'INVALID_ARGUMENT')
      assert.equal(again.message, 'the server is already listening, or starting to: close() it before listening again')
      await admin.close()
      // listen()'s own 'error' listener had stayed on: a failure of server.listen() called
      // directly, with no listener of the caller's, then went unsaid instead of being thrown.
      const inUse = Object.assign(new Error('listen EADDRINUSE'), { code: 'EADDRINUSE' })
      assert.throws(() => admin.server.emit('error', inUse), inUse)
    } finally {
      await admin.close()
      store.close()
    }
  })

  test('close() called while listen() is still looking up the host leaves no server listening once it resolves', async () => {
    const store = KeyStore.inMemory()
    const admin = createAdminServer({ store, token: TOKEN, port: 0, host: 'localhost' })
    try {
      const started = admin.listen()
      // A shutdown during startup: close() had resolved at once, and the lookup then started the
      // server anyway, listening (and keeping the process alive) after close() said it was done.
      await admin.close()
      assert.equal(admin.server.listening, false, 'listening after close() resolved')
      await started
      assert.equal(admin.server.listening, false)
    } finally {
      await admin.close()
      store.close()
    }
  })

  test('serve() warns of plain HTTP by the address it listens on, not by how the host is spelt', async (t) => {
    await inDirWithoutEnvToken(async (dir) => {
      const WARNING = /Warning: listening on .* over plain HTTP/
      const printedFor = async (host: string) => {
        const printed: string[] = []
        const s = await serve({ db: path.join(dir, 'keygate.db'), host, port: 0, token: TOKEN, handleSignals: false, print: (l) => printed.push(l) })
        await s.close()
        return printed.join('\n')
      }
      // A name is not an address: this one resolves (as its DNS may say) to every interface. It
      // starts with `127.`, and had been taken for a loopback address, with no warning.
      const dns = (await import('node:dns')).default
      const lookup = dns.lookup
      const name = '127.0.0.1.example.invalid'
      t.mock.method(dns, 'lookup', (host: string, ...rest: unknown[]) => Reflect.apply(lookup, dns, [host === name ? '0.0.0.0' : host, ...rest]))
      assert.match(await printedFor(name), /Warning: listening on 127\.0\.0\.1\.example\.invalid over plain HTTP/)
      for (const host of ['0.0.0.0', '::']) assert.match(await printedFor(host), WARNING, host)
      // Loopback addresses in any spelling: no warning (`127.1` had none either, `0:…:1` had one).
      // An IPv4-mapped one (`::ffff:127.0.0.1`) takes IPv4 loopback connections only.
      for (const host of ['127.0.0.1', '127.1', 'localhost', '::1', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1', '::FFFF:7f00:2']) {
        assert.doesNotMatch(await printedFor(host), WARNING, host)
      }
    })
  })

  test('the url of a server on a link-local IPv6 address keeps its zone, written as a URL writes it (%25)', async (t) => {
    const { networkInterfaces } = await import('node:os')
    const linkLocal = Object.entries(networkInterfaces())
      .flatMap(([name, addresses]) => (addresses ?? []).map((a) => ({ name, ...a })))
      .find((a) => a.family === 'IPv6' && a.address.startsWith('fe80:'))
    if (linkLocal === undefined) return t.skip('no link-local IPv6 address on this machine')
    const store = KeyStore.inMemory()
    const admin = createAdminServer({ store, token: TOKEN, port: 0, host: `${linkLocal.address}%${linkLocal.name}` })
    try {
      const url = await admin.listen()
      // Had been `[fe80::…%eth0]`: a bare `%` in a URL, which curl and RFC 6874 read as an escape.
      assert.equal(url, `http://[${linkLocal.address}%25${linkLocal.name}]:${admin.port}`)
      assert.equal(admin.url, url)
    } finally {
      await admin.close()
      store.close()
    }
  })

  test("an 'error' event on a listening admin server (a failed accept: EMFILE) is logged, not thrown: it would end the host process", async () => {
    const store = KeyStore.inMemory()
    const logged: string[] = []
    const admin = createAdminServer({ store, token: TOKEN, port: 0, log: (line) => logged.push(line) })
    const url = await admin.listen()
    try {
      // What Node emits when accept() fails; with no listener, emit throws it (uncaught: the process ends).
      const failure = Object.assign(new Error('accept EMFILE'), { code: 'EMFILE', syscall: 'accept' })
      assert.doesNotThrow(() => admin.server.emit('error', failure))
      assert.deepEqual(logged, ['keygate admin: the server failed: accept EMFILE'])
      // Whatever is emitted: a Symbol (had thrown out of the listener, making the line), a message that cannot be read.
      const unreadable = {
        get message(): string {
          throw new Error('no message')
        },
      }
      for (const odd of [Symbol('odd'), unreadable]) assert.doesNotThrow(() => admin.server.emit('error', odd))
      assert.deepEqual(logged.slice(1), ['keygate admin: the server failed: Symbol(odd)', 'keygate admin: the server failed: (a thrown object that cannot be shown)'])
      assert.equal((await fetch(`${url}/api/session`)).status, 200, 'the server still answers')
    } finally {
      await admin.close()
      store.close()
    }
  })
})

// ---- in the browser ------------------------------------------------------------------

browserSuite('admin page in a real browser (chromium)', () => {
  let dir: string
  let serving: Serving
  let browser: Browser
  let context: BrowserContext
  let page: Page
  let secret = ''
  const urls: string[] = []
  const consoleErrors: string[] = []
  const printed: string[] = []

  async function shot(name: string, p: Page = page, mask: string[] = []): Promise<void> {
    if (!SCREENSHOTS) return
    mkdirSync(SHOT_DIR, { recursive: true })
    await p.evaluate('document.getElementById("toast").classList.remove("visible")')
    await p.waitForTimeout(300) // let the toast go and dialogs settle
    await p.screenshot({ path: path.join(SHOT_DIR, `${name}.png`), mask: mask.map((m) => p.locator(m)), maskColor: '#9aa7b8' })
  }

  /** The key list, freshly loaded (a goto to the same #/keys would not reload it). */
  async function freshKeys(p: Page = page): Promise<void> {
    await p.goto(`${serving.url}/#/keys`)
    await p.reload()
    await p.getByRole('heading', { name: 'API keys' }).waitFor()
  }

  function watch(p: Page): void {
    p.on('request', (r) => urls.push(r.url()))
    p.on('console', (m) => {
      if (m.type() === 'error') consoleErrors.push(m.text())
    })
    p.on('pageerror', (e) => consoleErrors.push(String(e)))
  }

  before(async () => {
    dir = tempDir()
    serving = await serve({ db: path.join(dir, 'keygate.db'), port: 0, token: TOKEN, handleSignals: false, print: (l) => printed.push(l) })
    browser = await launchChromium()
    context = await browser.newContext({ viewport: { width: 1280, height: 860 } })
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: serving.url })
    context.setDefaultTimeout(10_000)
    page = await context.newPage()
    watch(page)
  })

  after(async () => {
    await browser?.close()
    await serving?.close()
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  test('logs in: a wrong token is refused, the right one opens the key list', async () => {
    const res = await page.goto(serving.url)
    const csp = res?.headers()['content-security-policy'] ?? ''
    assert.ok(csp.startsWith(EXPECTED_CSP), 'CSP on the page')
    await page.getByLabel('Admin token').fill('wrong-token')
    await page.getByRole('button', { name: 'Log in' }).click()
    await page.getByText('Wrong admin token.').waitFor()
    await page.getByLabel('Admin token').fill(TOKEN)
    await page.getByRole('button', { name: 'Log in' }).click()
    await page.getByRole('heading', { name: 'API keys' }).waitFor()
    await page.getByText('No API keys yet').waitFor()
    // A new user presses + first: told to create a user account.
    await page.getByRole('button', { name: 'Create an API key' }).click()
    await page
      .locator('#dlg-create')
      .getByText(/There is no user account yet/)
      .waitFor()
    await page.keyboard.press('Escape')
    await page.locator('#dlg-create').waitFor({ state: 'hidden' })
    const cookies = await context.cookies()
    const sid = cookies.find((c) => c.name === 'keygate_sid')
    assert.ok(sid?.httpOnly && sid.sameSite === 'Strict', 'HttpOnly, SameSite=Strict session cookie')
    assert.equal(await page.evaluate('document.cookie'), '', 'the page cannot read the session cookie')
  })

  test("the state and status lists offer the binding's values, in its order", async () => {
    const options = (select: string) => page.locator(`${select} option`).evaluateAll((os) => os.map((o) => [(o as HTMLOptionElement).value, o.textContent]))
    const { Active, Suspended, Revoked } = binding.KeyState
    const status = binding.UserStatus
    assert.deepEqual(await options('#filter-state'), [
      ['', 'Any state'],
      [Active, 'Active'],
      [Suspended, 'Suspended'],
      [Revoked, 'Revoked'],
    ])
    assert.deepEqual(await options('#create-state'), [
      [Active, 'Active'],
      [Suspended, 'Suspended'],
    ])
    assert.deepEqual(await options('#newuser-status'), [
      [status.Active, 'Active'],
      [status.Suspended, 'Suspended'],
      [status.Archived, 'Archived'],
    ])
    assert.deepEqual(await options('#user-status'), [
      [status.Active, 'Active'],
      [status.Suspended, 'Suspended (temporary)'],
      [status.Archived, 'Archived (permanent)'],
    ])
  })

  test('creates a user account with live validation of its rights', async () => {
    await page.getByRole('link', { name: 'Users' }).click()
    await page.getByRole('button', { name: 'New user' }).click()
    const dlg = page.locator('#dlg-user')
    await dlg.getByLabel('User id').fill('svc-requests')
    const rights = dlg.getByLabel(/^Rights/)
    await rights.fill('session:*\ndata:entityBrowseRecords2\nip=10.0.0.0/8')
    await dlg.getByText(/Line 3: .*IP rules/).waitFor()
    await rights.fill('session:*\ndata:entityBrowseRecords2\n*:userLogon')
    await dlg.getByText('3 rules, all valid').waitFor()
    await dlg.getByRole('button', { name: 'Create user' }).click()
    await page.locator('tr[data-user-id="svc-requests"]').waitFor()
    assert.deepEqual(serving.store.getUser('svc-requests')?.rights, ['session:*', 'data:entityBrowseRecords2', '*:userLogon'])
    // Second user, for the list's filter.
    await page.getByRole('button', { name: 'New user' }).click()
    await dlg.getByLabel('User id').fill('svc-reports')
    await dlg.getByRole('button', { name: 'Create user' }).click()
    await page.locator('tr[data-user-id="svc-reports"]').waitFor()
    await shot('users')
  })

  test('creates a key: mandatory expiry with a default and the 2-year limit, rules validated line by line, the ? examples', async () => {
    await page.getByRole('link', { name: 'API keys' }).click()
    // Keyboard: the + button opens the dialog with Enter and Escape closes it.
    await page.getByRole('button', { name: 'Create an API key' }).focus()
    await page.keyboard.press('Enter')
    const dlg = page.locator('#dlg-create')
    await dlg.waitFor()
    await page.keyboard.press('Escape')
    await dlg.waitFor({ state: 'hidden' })
    await page.getByRole('button', { name: 'Create an API key' }).click()
    await dlg.waitFor()

    await dlg.getByLabel('User account').selectOption('svc-requests')
    await dlg.getByLabel('Description').fill('Request sync from the service desk')
    // Default expiry: about 90 days ahead.
    const expires = dlg.getByLabel('Expires')
    const defaultValue = await expires.inputValue()
    const days = (new Date(defaultValue).getTime() - Date.now()) / DAY
    assert.ok(days > 89.9 && days < 90.1, `default expiry ${defaultValue} is 90 days ahead`)

    // Rules: a bad line is named while typing.
    const rules = dlg.getByLabel(/^Rules/)
    await rules.fill('session:get*\nsession getSessionInfo\nip=10.0.0.0/8')
    await dlg.getByText(/Line 2: invalid rule "session getSessionInfo"/).waitFor()
    assert.equal(await rules.getAttribute('aria-invalid'), 'true')
    await dlg.getByRole('button', { name: 'Create', exact: true }).click()
    await dlg.getByText('Fix the rules first').waitFor()
    await rules.fill('session:get*\nip=10.0.0.1/8')
    await dlg.getByText(/Line 2: .*did you mean ip=10.0.0.0\/8/).waitFor()
    await rules.fill('session:get*\nip=10.0.0.0/8')
    await dlg.getByText('2 rules, all valid').waitFor()
    // The ? shows example rules and can add one.
    await dlg.getByRole('button', { name: 'Example rules' }).click()
    const help = page.locator('#dlg-help')
    await help.getByText('apps/com.hornbill.core/Achievement:*').waitFor()
    await help.getByRole('button', { name: 'Add rule data:entityBrowseRecords2' }).click()
    await help.waitFor({ state: 'hidden' })
    assert.equal(await rules.inputValue(), 'session:get*\nip=10.0.0.0/8\ndata:entityBrowseRecords2')
    await dlg.getByText('3 rules, all valid').waitFor()

    // Expiry beyond two years is refused, in the past too; the 2-year preset is accepted.
    const pad = (n: number) => String(n).padStart(2, '0')
    const local = (ms: number) => {
      const d = new Date(ms)
      return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`
    }
    await expires.fill(local(Date.now() + 3 * 365 * DAY))
    await dlg.getByRole('button', { name: 'Create', exact: true }).click()
    await dlg.getByText(/At most 730 days/).waitFor()
    await expires.fill(local(Date.now() - DAY))
    await dlg.getByRole('button', { name: 'Create', exact: true }).click()
    await dlg.getByText('The expiry must lie in the future.').waitFor()
    await expires.fill('')
    await dlg.getByRole('button', { name: 'Create', exact: true }).click()
    await dlg.getByText(/Expiry is mandatory/).waitFor()
    await dlg.getByRole('button', { name: '2 years (max)' }).click()
    const maxDays = (new Date(await expires.inputValue()).getTime() - Date.now()) / DAY
    assert.ok(maxDays > 729.9 && maxDays <= 730, `2-year preset: ${maxDays} days`)
    await dlg.getByRole('button', { name: '90 days' }).click()
    await shot('create-key')
    assert.equal(serving.store.listKeys().length, 0, 'nothing created by the refused attempts')

    await dlg.getByRole('button', { name: 'Create', exact: true }).click()
    const secretDialog = page.locator('#dlg-secret')
    await secretDialog.waitFor()
    await secretDialog.getByText(/you will not see it again/).waitFor()
    secret = await secretDialog.getByLabel('Secret').inputValue()
    assert.match(secret, SECRET_RE)

    // Copy button: the clipboard holds the secret.
    await secretDialog.getByRole('button', { name: 'Copy' }).click()
    await secretDialog.getByText('Copied to the clipboard.').waitFor()
    assert.equal(await page.evaluate('navigator.clipboard.readText()'), secret)
    await page.evaluate('navigator.clipboard.writeText("")')
    if (SCREENSHOTS) {
      // Never a real secret in a picture: blank out its random part.
      await page.evaluate(`document.getElementById('secret-value').value = 'kg_' + '•'.repeat(45) + ${JSON.stringify(secret.slice(-4))}`)
      await shot('secret-once')
    }

    await secretDialog.getByRole('button', { name: /^Done/ }).click()
    await secretDialog.waitFor({ state: 'hidden' })
    assert.equal(await secretDialog.getByLabel('Secret').inputValue(), '', 'the secret leaves the page with its dialog')

    const [key] = serving.store.listKeys()
    assert.ok(key)
    assert.deepEqual(key.rules, ['session:get*', 'ip=10.0.0.0/8', 'data:entityBrowseRecords2'])
    assert.equal(key.hint, secret.slice(-4))
    const row = page.locator(`tr[data-key-id="${key.id}"]`)
    await row.waitFor()
    await row.getByText(`…${key.hint}`).waitFor()
    await row.getByText('Request sync from the service desk').waitFor()
    await shot('key-list')
  })

  test('the try box: the secret is allowed for a matching call, denied with a reason otherwise', async () => {
    await page.getByRole('link', { name: 'Try a call' }).click()
    const form = page.locator('#try-form')
    await form.getByLabel('Secret', { exact: true }).fill(secret)
    await form.getByLabel('Service', { exact: true }).fill('session')
    await form.getByLabel('API', { exact: true }).fill('getSessionInfo')
    await form.getByLabel(/Caller IP/).fill('10.1.2.3')
    await form.getByRole('button', { name: 'Check' }).click()
    const result = page.locator('#try-result')
    await result.locator('[data-reason="allowed"]').getByText('✓ Allowed').waitFor()
    await result.getByText('session:get*').waitFor()
    await shot('try-a-call')
    await form.getByLabel(/Caller IP/).fill('192.0.2.1')
    await form.getByRole('button', { name: 'Check' }).click()
    await result.locator('[data-reason="ip_not_allowed"]').waitFor()
    await form.getByLabel(/Caller IP/).fill('10.1.2.3')
    await form.getByLabel('API', { exact: true }).fill('userLogon')
    await form.getByRole('button', { name: 'Check' }).click()
    await result.locator('[data-reason="no_matching_rule"]').waitFor()
    // By key id, without the secret.
    await form.getByLabel(/a key id/).check()
    const key = serving.store.listKeys()[0]!
    await form.getByLabel('Key id', { exact: true }).fill(key.id)
    await form.getByLabel('API', { exact: true }).fill('getSessionInfo')
    await form.getByRole('button', { name: 'Check' }).click()
    await result.getByText('✓ Allowed').waitFor()
    await form.getByLabel(/the secret/).check()
  })

  test('revokes the key after a confirmation saying revoked is final; the try box then says revoked', async () => {
    await page.getByRole('link', { name: 'API keys' }).click()
    const key = serving.store.listKeys()[0]!
    await page.getByRole('button', { name: `Open key ${key.id}` }).click()
    const dlg = page.locator('#dlg-key')
    await dlg.waitFor()
    await shot('key-details')
    await dlg.getByRole('button', { name: 'Revoke…' }).click()
    const confirm = page.locator('#dlg-confirm')
    await confirm.getByText(/Revoked is final/).waitFor()
    await confirm.getByRole('button', { name: 'Cancel' }).click()
    assert.equal(serving.store.getKey(key.id)?.state, 'active', 'cancel changes nothing')
    await dlg.getByRole('button', { name: 'Revoke…' }).click()
    await confirm.getByRole('button', { name: 'Revoke key' }).click()
    await dlg.locator('.badge-revoked').waitFor()
    await dlg.getByText(/can never be used or changed again/).waitFor()
    assert.equal(await dlg.getByRole('button', { name: 'Activate' }).isVisible(), false, 'no way back from revoked')
    assert.equal(serving.store.getKey(key.id)?.state, 'revoked')
    await page.keyboard.press('Escape')
    await dlg.waitFor({ state: 'hidden' })
    await page.locator(`tr[data-key-id="${key.id}"][data-state="revoked"]`).waitFor()

    await page.getByRole('link', { name: 'Try a call' }).click()
    const form = page.locator('#try-form')
    await form.getByLabel('Secret', { exact: true }).fill(secret)
    await form.getByLabel('Service', { exact: true }).fill('session')
    await form.getByLabel('API', { exact: true }).fill('getSessionInfo')
    await form.getByLabel(/Caller IP/).fill('10.1.2.3')
    await form.getByRole('button', { name: 'Check' }).click()
    await page.locator('#try-result [data-reason="revoked"]').waitFor()
    await page.locator('#try-result').getByText('✗ Denied').waitFor()
  })

  test('the secret never reappears: not after a reload, not in any URL', async () => {
    await page.getByRole('link', { name: 'API keys' }).click()
    await page.reload()
    await page.getByRole('heading', { name: 'API keys' }).waitFor()
    const body = secret.slice(3)
    const html = await page.content()
    assert.ok(!html.includes(body.slice(0, 16)), 'not in the HTML')
    const values = (await page.evaluate('Array.from(document.querySelectorAll("input, textarea")).map((e) => e.value).join("\\n") + document.body.innerText')) as string
    assert.ok(!values.includes(body.slice(0, 16)), 'not in any field or text')
    for (const view of ['users', 'try', 'audit', 'roles']) {
      await page.goto(`${serving.url}/#/${view}`)
      await page.locator(`#view-${view}`).waitFor()
      await page.waitForLoadState('networkidle')
      assert.ok(!(await page.content()).includes(body.slice(0, 16)), `not on the ${view} page`)
    }
    assert.ok(urls.length > 10)
    for (const u of urls) {
      assert.ok(!u.includes(body.slice(0, 16)) && !decodeURIComponent(u).includes(body.slice(0, 16)), `no secret in ${u}`)
    }
    assert.ok(!printed.join('\n').includes(body.slice(0, 16)), 'not in the server output')
  })

  test('the page has no inline script, no CSP violation, labels on every control', async () => {
    await page.goto(`${serving.url}/#/keys`)
    await page.getByRole('heading', { name: 'API keys' }).waitFor()
    const inline = await page.evaluate('Array.from(document.scripts).filter((s) => !s.src).length')
    assert.equal(inline, 0)
    const handlers = await page.evaluate('Array.from(document.querySelectorAll("*")).filter((e) => Array.from(e.attributes).some((a) => a.name.startsWith("on"))).length')
    assert.equal(handlers, 0)
    const named = await page.evaluate('document.querySelectorAll("input[type=password][name], #secret-value[name]").length')
    assert.equal(named, 0, 'secret fields have no name: even a native form submit cannot carry them')
    const unlabeled = (await page.evaluate(`Array.from(document.querySelectorAll('input, select, textarea'))
      .filter((e) => e.type !== 'hidden' && e.labels.length === 0 && !e.getAttribute('aria-label') && !e.getAttribute('aria-labelledby'))
      .map((e) => e.id || e.name)`)) as string[]
    assert.deepEqual(unlabeled, [], 'every control has a label')
    assert.deepEqual(
      consoleErrors.filter((e) => /Content Security Policy|Refused to/i.test(e)),
      [],
      'no CSP violation',
    )
  })

  test('CSRF in the browser context: a POST with the session cookie but without the token is 403', async () => {
    const res = await context.request.post(`${serving.url}/api/users`, { data: { id: 'forged' } })
    assert.equal(res.status(), 403)
    assert.equal(serving.store.getUser('forged'), null)
  })

  test('a second tab with a stale page: acting on a key deleted or changed elsewhere shows a clear error and refreshes', async () => {
    const expiresAt = new Date(Date.now() + 30 * DAY)
    const doomed = serving.store.createKey({ userId: 'svc-requests', description: 'Doomed key', expiresAt }, { actor: 'test' }).key
    const changed = serving.store.createKey({ userId: 'svc-reports', description: 'Report export', expiresAt }, { actor: 'test' }).key
    const gone = serving.store.createKey({ userId: 'svc-reports', description: 'Vanishing key', expiresAt }, { actor: 'test' }).key

    await freshKeys()
    await page.locator(`tr[data-key-id="${doomed.id}"]`).waitFor()
    const tab2 = await context.newPage()
    watch(tab2)
    await tab2.goto(`${serving.url}/#/keys`)
    await tab2.locator(`tr[data-key-id="${doomed.id}"]`).waitFor()
    await tab2.locator(`tr[data-key-id="${gone.id}"]`).waitFor()

    // Tab 2 has the key open; tab 1 deletes it; tab 2 then suspends it.
    await tab2.getByRole('button', { name: `Open key ${doomed.id}` }).click()
    await tab2.locator('#dlg-key').waitFor()
    await page.getByRole('button', { name: `Open key ${doomed.id}` }).click()
    await page.locator('#dlg-key').getByRole('button', { name: 'Delete…' }).click()
    await page.locator('#dlg-confirm').getByRole('button', { name: 'Delete key' }).click()
    await page.locator(`tr[data-key-id="${doomed.id}"]`).waitFor({ state: 'detached' })
    assert.equal(serving.store.getKey(doomed.id), null)

    await tab2.locator('#dlg-key').getByRole('button', { name: 'Suspend' }).click()
    const alert = tab2.locator('#page-alert')
    await alert.getByText(/deleted in another tab or by another admin\. The list has been refreshed/).waitFor()
    await tab2.locator('#dlg-key').waitFor({ state: 'hidden' })
    await tab2.locator(`tr[data-key-id="${doomed.id}"]`).waitFor({ state: 'detached' })
    await shot('stale-tab', tab2)

    // A stale row: deleted elsewhere, then opened here.
    serving.store.deleteKey(gone.id, { actor: 'another-admin' })
    await tab2.getByRole('button', { name: `Open key ${gone.id}` }).click()
    await alert.getByText(new RegExp(`no key with id "${gone.id}"`, 'i')).waitFor()
    await tab2.locator(`tr[data-key-id="${gone.id}"]`).waitFor({ state: 'detached' })
    assert.equal(await tab2.locator('#dlg-key').isVisible(), false)

    // Changed elsewhere while open here: the save is refused and the dialog shows the current data.
    await tab2.getByRole('button', { name: `Open key ${changed.id}` }).click()
    const dlg = tab2.locator('#dlg-key')
    await dlg.waitFor()
    serving.store.updateKey(changed.id, { description: 'Renamed by another admin' }, { actor: 'another-admin' })
    await dlg.getByLabel(/^Rules/).fill('data:*')
    await dlg.getByRole('button', { name: 'Save changes' }).click()
    await dlg.getByText(/was changed elsewhere/).waitFor()
    assert.equal(await dlg.getByLabel('Description').inputValue(), 'Renamed by another admin')
    assert.deepEqual(serving.store.getKey(changed.id)?.rules, [], 'the stale save changed nothing')
    // Saving again, now from the fresh data, works.
    await dlg.getByLabel(/^Rules/).fill('data:*')
    await dlg.getByRole('button', { name: 'Save changes' }).click()
    await tab2.getByText('Changes saved.').waitFor()
    assert.deepEqual(serving.store.getKey(changed.id)?.rules, ['data:*'])
    await tab2.close()
  })

  test('rotates with an overlap: a new secret once; the old key expires after the overlap', async () => {
    const key = serving.store.listKeys({ userId: 'svc-reports' })[0]!
    await freshKeys()
    await page.getByRole('button', { name: `Open key ${key.id}` }).click()
    await page.locator('#dlg-key').getByRole('button', { name: 'Rotate…' }).click()
    const rot = page.locator('#dlg-rotate')
    await rot.getByLabel(/old key stays usable/).selectOption('3600')
    await rot.getByRole('button', { name: 'Rotate' }).click()
    const secretDialog = page.locator('#dlg-secret')
    await secretDialog.waitFor()
    const rotated = await secretDialog.getByLabel('Secret').inputValue()
    assert.match(rotated, SECRET_RE)
    await secretDialog.getByRole('button', { name: /^Done/ }).click()
    const old = serving.store.getKey(key.id)!
    const overlap = old.expiresAt.getTime() - Date.now()
    assert.ok(overlap > 3500_000 && overlap <= 3600_000, `old key usable about an hour more (${overlap} ms)`)
    assert.equal(serving.store.listKeys({ userId: 'svc-reports' }).length, 2)
    assert.ok(!(await page.content()).includes(rotated.slice(3, 19)))
  })

  test('a double click on Create makes one key, and the secret shown is its own', async () => {
    const before = serving.store.listKeys({ userId: 'svc-requests' }).length
    await freshKeys()
    await page.getByRole('button', { name: 'Create an API key' }).click()
    const dlg = page.locator('#dlg-create')
    await dlg.getByLabel('User account').selectOption('svc-requests')
    await dlg.getByLabel('Description').fill('Clicked twice')
    // Rules make the submit ask the server to check them first: the window a second click fell into.
    await dlg.getByLabel(/^Rules/).fill('data:*')
    await dlg.getByRole('button', { name: 'Create', exact: true }).dblclick()
    const secretDialog = page.locator('#dlg-secret')
    await secretDialog.waitFor()
    await page.waitForLoadState('networkidle')
    const shown = await secretDialog.getByLabel('Secret').inputValue()
    await secretDialog.getByRole('button', { name: /^Done/ }).click()
    const made = serving.store.listKeys({ userId: 'svc-requests' }).filter((k) => k.description === 'Clicked twice')
    assert.equal(made.length, 1, 'one key')
    assert.equal(serving.store.listKeys({ userId: 'svc-requests' }).length, before + 1)
    assert.equal(made[0]!.hint, shown.slice(-4), 'the secret shown is the key’s')
  })

  test('users page: status, rights, roles and the keys of one account; roles page', async () => {
    await page.getByRole('link', { name: 'Roles' }).click()
    await page.getByRole('button', { name: 'New role' }).click()
    const rdlg = page.locator('#dlg-role')
    await rdlg.getByLabel('Name').fill('request-agent')
    await rdlg.getByLabel(/^Rights/).fill('apps/com.hornbill.servicemanager/*:*')
    await rdlg.getByText('1 rule, all valid').waitFor()
    await rdlg.getByRole('button', { name: 'Save role' }).click()
    await page.locator('tr[data-role="request-agent"]').waitFor()
    await shot('roles')

    await page.getByRole('link', { name: 'Users' }).click()
    await page.getByRole('link', { name: 'svc-requests' }).click()
    await page.getByRole('heading', { name: 'User account svc-requests' }).waitFor()
    await page.locator('#user-roles-list').getByLabel('request-agent').check()
    await page.locator('#user-form').getByLabel('Status').selectOption('suspended')
    await page.getByRole('button', { name: 'Save user' }).click()
    await page.getByText('User svc-requests saved.').waitFor()
    const user = serving.store.getUser('svc-requests')!
    assert.equal(user.status, 'suspended')
    assert.deepEqual(user.roles, ['request-agent'])
    await page.locator('#user-keys-table tr[data-key-id]').first().waitFor()
    // The effective rights shown are the store's own ∪ its roles', as the store computes them.
    const effective = serving.store.effectiveRights('svc-requests')!
    assert.deepEqual(effective.byRole, [{ role: 'request-agent', rights: ['apps/com.hornbill.servicemanager/*:*'] }])
    assert.ok(effective.all.includes('apps/com.hornbill.servicemanager/*:*'))
    await page.locator('#user-effective', { hasText: 'apps/com.hornbill.servicemanager/*:*' }).waitFor()
    await shot('user-details')
    await page.locator('#user-form').getByLabel('Status').selectOption('active')
    await page.getByRole('button', { name: 'Save user' }).click()
    await page.getByText('User svc-requests saved.').waitFor()
  })

  test('wrong inputs get clear messages; a user deleted elsewhere is reported', async () => {
    await page.getByRole('link', { name: 'Users' }).click()
    await page.getByRole('button', { name: 'New user' }).click()
    const dlg = page.locator('#dlg-user')
    await dlg.getByLabel('User id').fill('bad id')
    await dlg.getByRole('button', { name: 'Create user' }).click()
    await dlg.getByText(/user id "bad id" must be 1-128 characters/).waitFor()
    await dlg.getByLabel('User id').fill('svc-requests')
    await dlg.getByRole('button', { name: 'Create user' }).click()
    await dlg.getByText('a user with id "svc-requests" already exists').waitFor()
    await dlg.getByLabel('User id').fill('temp-account')
    await dlg.getByRole('button', { name: 'Create user' }).click()
    await page.locator('tr[data-user-id="temp-account"]').waitFor()

    await page.getByRole('link', { name: 'Try a call' }).click()
    const form = page.locator('#try-form')
    await form.getByLabel('Secret', { exact: true }).fill('kg_not-a-real-secret')
    await form.getByLabel('Service', { exact: true }).fill('')
    await form.getByRole('button', { name: 'Check' }).click()
    await form.getByText(/Give the service and the API/).waitFor()
    await form.getByLabel('Service', { exact: true }).fill('session')
    await form.getByLabel('API', { exact: true }).fill('getSessionInfo')
    await form.getByRole('button', { name: 'Check' }).click()
    await page.locator('#try-result [data-reason="malformed_key"]').waitFor()

    // The account page is open here; another admin deletes the account; saving says so.
    await page.goto(`${serving.url}/#/users/temp-account`)
    await page.getByRole('heading', { name: 'User account temp-account' }).waitFor()
    serving.store.deleteUser('temp-account', { actor: 'another-admin' })
    await page.getByRole('button', { name: 'Save user' }).click()
    await page
      .locator('#page-alert')
      .getByText(/deleted in another tab or by another admin/)
      .waitFor()
    await page.getByRole('heading', { name: 'User accounts' }).waitFor()
    assert.equal(serving.store.getUser('temp-account'), null, 'a stale save does not bring the account back')
  })

  test('audit trail: filterable, with its verification status', async () => {
    await page.getByRole('link', { name: 'Audit trail' }).click()
    await page.getByText(/Audit trail verified: all \d+ entries intact/).waitFor()
    const all = await page.locator('#audit-table tbody tr').count()
    assert.ok(all >= 8, `${all} entries`)
    await page.locator('#audit-table').getByText('web:admin').first().waitFor()
    await page.getByLabel('Action', { exact: true }).selectOption('setState')
    await page.getByRole('button', { name: 'Apply' }).click()
    await waitCount(page.locator('#audit-table tbody tr'), 1)
    await page.locator('#audit-table').getByText('state: active → revoked').waitFor()
    // A rotation (made above) shows which key replaced which, on both of its entries.
    await page.getByLabel('Action', { exact: true }).selectOption('rotateKey')
    await page.getByRole('button', { name: 'Apply' }).click()
    await waitCount(page.locator('#audit-table tbody tr'), 2)
    await page
      .locator('#audit-table')
      .getByText(/^created; rotated from key_\w+$/)
      .waitFor()
    await page
      .locator('#audit-table')
      .getByText(/^rotated to key_\w+; expiresAt: /)
      .waitFor()
    await page.getByRole('button', { name: 'Clear' }).click()
    await waitCount(page.locator('#audit-table tbody tr'), all)
    await shot('audit')
  })

  test('audit trail: older entries page by entry number, past a page of entries sharing one instant', async () => {
    // 60 entries at one instant, as a purge writes them: "since" could not page through them.
    serving.store.setNow(new Date())
    for (let i = 0; i < 60; i++) serving.store.putUser({ id: `paged-${i}` }, { actor: 'bulk-import' })
    serving.store.setNow(null)
    const newest = serving.store.audit({ limit: 1 })[0]!.seq
    await page.goto(`${serving.url}/#/audit`)
    await page.getByLabel('At most').selectOption('50')
    await page.getByRole('button', { name: 'Apply' }).click()
    const rows = page.locator('#audit-table tbody tr')
    const firstSeq = async () => Number(await rows.first().locator('td').first().textContent())
    await waitCount(rows, 50)
    assert.equal(await firstSeq(), newest)
    assert.equal(await page.getByRole('button', { name: 'Newest entries' }).count(), 0, 'the newest page has no way back')
    await page.getByRole('button', { name: 'Older entries' }).click()
    await page.getByRole('button', { name: 'Newest entries' }).waitFor()
    assert.equal(await firstSeq(), newest - 50, 'the page after the last entry shown, none repeated or skipped')
    await page.getByRole('button', { name: 'Newest entries' }).click()
    await page.getByRole('button', { name: 'Newest entries' }).waitFor({ state: 'detached' })
    assert.equal(await firstSeq(), newest)
  })

  test('bidi control characters in a description are shown visibly and isolated: they reorder nothing', async () => {
    const expiresAt = new Date(Date.now() + 30 * DAY)
    // U+202E (right-to-left override) would show "txt.exe" as "exe.txt"; U+2067 would isolate RTL, U+200F is RLM
    const spoof = 'invoice \u202Etxt.exe\u202C sync \u2067x\u2069 \u200F end'
    const key = serving.store.createKey({ userId: 'svc-reports', description: spoof, expiresAt }, { actor: 'test' }).key
    const hebrew = serving.store.createKey({ userId: 'svc-reports', description: 'שלום 123', expiresAt }, { actor: 'test' }).key
    await freshKeys()
    const cell = page.locator(`tr[data-key-id="${key.id}"] td.desc`)
    await cell.waitFor()
    assert.equal(await cell.textContent(), 'invoice <U+202E>txt.exe<U+202C> sync <U+2067>x<U+2069> <U+200F> end')
    assert.equal(await cell.locator('bdi').count(), 1, 'the description is isolated in a <bdi>')
    assert.equal(await page.locator(`tr[data-key-id="${hebrew.id}"] td.desc bdi`).count(), 1, 'right-to-left text is isolated too')
    // laid out in logical order: "txt" left of "exe"
    const [txt, exe] = (await page.evaluate(`(() => {
      const cell = document.querySelector('tr[data-key-id="${key.id}"] td.desc')
      const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT)
      const nodes = []
      for (let n = walker.nextNode(); n; n = walker.nextNode()) nodes.push(n)
      const left = (needle) => {
        for (const n of nodes) {
          const i = n.data.indexOf(needle)
          if (i < 0) continue
          const range = document.createRange()
          range.setStart(n, i)
          range.setEnd(n, i + needle.length)
          return range.getBoundingClientRect().left
        }
        return null
      }
      return [left('txt'), left('exe')]
    })()`)) as [number, number]
    assert.ok(txt < exe, `"txt" is drawn at ${txt}px, "exe" at ${exe}px: the override reordered the text`)
    const BIDI = /[\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069]/
    assert.doesNotMatch((await page.evaluate('document.body.innerText')) as string, BIDI, 'no bidi control in the key list')
    // the key's dialog says the description holds them, and shows where
    await page.getByRole('button', { name: `Open key ${key.id}` }).click()
    const note = page.locator('#key-description-bidi')
    await note.waitFor()
    assert.match((await note.textContent()) ?? '', /invisible direction characters: invoice <U\+202E>txt\.exe<U\+202C>/)
    assert.equal(await page.locator('#key-description').inputValue(), spoof, 'the edit box keeps the exact text')
    await page.keyboard.press('Escape')
    // the audit trail shows the same description without the controls
    await page.goto(`${serving.url}/#/audit?keyId=${encodeURIComponent(key.id)}`)
    const details = page.locator('#audit-table pre').filter({ hasText: '<U+202E>txt.exe<U+202C>' })
    await details.first().waitFor({ state: 'attached' })
    assert.doesNotMatch((await page.evaluate('document.body.innerText')) as string, BIDI, 'no bidi control in the audit trail')
    serving.store.deleteKey(key.id, { actor: 'test' })
    serving.store.deleteKey(hebrew.id, { actor: 'test' })
  })

  test('a hash naming no screen, not even an Object.prototype member (#/toString), shows the keys, not a blank page', async () => {
    for (const name of ['toString', 'constructor', '__proto__', 'nothing']) {
      await page.goto(`${serving.url}/#/audit`)
      await page.getByRole('heading', { name: 'Audit trail' }).waitFor()
      const before = consoleErrors.length
      await page.goto(`${serving.url}/#/${name}`)
      await page.getByRole('heading', { name: 'API keys' }).waitFor() // the page's own timeout: 3 s was too short for a loaded machine
      assert.deepEqual(consoleErrors.slice(before), [], name)
    }
  })

  test('ids of 128 characters without a break wrap: the user heading, the users and keys tables stay within the window', async () => {
    const longUser = `u${'x'.repeat(126)}z`
    const longRole = `r${'y'.repeat(126)}z`
    serving.store.putRole({ name: longRole, rights: ['session:*'] }, { actor: 'test' })
    serving.store.putUser({ id: longUser, roles: [longRole], rights: [`apps/${'a'.repeat(240)}:*`] }, { actor: 'test' })
    const { key } = serving.store.createKey({ userId: longUser, description: 'd'.repeat(300), expiresAt: new Date(Date.now() + 86_400_000) }, { actor: 'test' })
    /** How far the page, and any table inside its scrolling wrapper, reaches past its box. */
    const overflows = () =>
      page.evaluate(`[document.documentElement.scrollWidth - document.documentElement.clientWidth,
        ...[...document.querySelectorAll('.view:not([hidden]) .table-wrap')].map((w) => w.scrollWidth - w.clientWidth)]`) as Promise<number[]>
    try {
      for (const width of [1280, 390]) {
        await page.setViewportSize({ width, height: 860 })
        await page.goto(`${serving.url}/#/users/${encodeURIComponent(longUser)}`)
        await page.getByRole('heading', { name: `User account ${longUser}` }).waitFor()
        await page.locator('#user-keys-table tr[data-key-id]').first().waitFor()
        for (const o of await overflows()) assert.ok(o <= 0, `user page at ${width}px: ${o}px past the window`)
        await page.goto(`${serving.url}/#/users`)
        await page.locator('#view-users tr', { hasText: longUser }).waitFor()
        for (const o of await overflows()) assert.ok(o <= 0, `users list at ${width}px: ${o}px past the window`)
        await page.goto(`${serving.url}/#/roles`)
        await page.locator(`tr[data-role="${longRole}"]`).waitFor()
        for (const o of await overflows()) assert.ok(o <= 0, `roles list at ${width}px: ${o}px past the window`)
        await freshKeys()
        await page.locator(`tr[data-key-id="${key.id}"]`).waitFor()
        for (const o of await overflows()) assert.ok(o <= 0, `key list at ${width}px: ${o}px past the window`)
      }
    } finally {
      await page.setViewportSize({ width: 1280, height: 860 })
      serving.store.deleteUser(longUser, { actor: 'test' })
      serving.store.deleteRole(longRole, { actor: 'test' })
    }
  })

  test('narrow screen: no horizontal scrolling, the list still usable', async () => {
    await page.setViewportSize({ width: 390, height: 844 })
    await freshKeys()
    await page.locator('tr[data-key-id]').first().waitFor()
    const overflow = await page.evaluate('document.documentElement.scrollWidth - document.documentElement.clientWidth')
    assert.ok((overflow as number) <= 0, `horizontal overflow ${overflow}px`)
    await page.getByRole('button', { name: 'Create an API key' }).click()
    await page.locator('#dlg-create').getByLabel('Description').waitFor()
    await shot('narrow-create')
    await page.keyboard.press('Escape')
    await shot('narrow-key-list')
    await page.setViewportSize({ width: 1280, height: 860 })
  })

  test('a double click on Suspend or Rotate does it once, and reports no change made elsewhere', async () => {
    const expiresAt = new Date(Date.now() + 30 * DAY)
    const key = serving.store.createKey({ userId: 'svc-requests', description: 'Double clicked', expiresAt }, { actor: 'test' }).key
    const before = serving.store.listKeys().length
    await freshKeys()
    await page.getByRole('button', { name: `Open key ${key.id}` }).click()
    const dlg = page.locator('#dlg-key')
    await dlg.getByRole('button', { name: 'Suspend' }).dblclick()
    await dlg.getByRole('button', { name: 'Activate' }).waitFor()
    await page.waitForLoadState('networkidle')
    assert.equal(serving.store.getKey(key.id)?.state, 'suspended')
    assert.equal(await page.locator('#key-error').isVisible(), false, 'no error in the dialog')
    assert.equal(await page.locator('#page-alert').isVisible(), false, 'no alert on the page')

    await dlg.getByRole('button', { name: 'Rotate…' }).click()
    await page.locator('#dlg-rotate').getByRole('button', { name: 'Rotate' }).dblclick()
    const secretDialog = page.locator('#dlg-secret')
    await secretDialog.waitFor()
    await page.waitForLoadState('networkidle')
    assert.equal(serving.store.listKeys().length, before + 1, 'one new key')
    assert.equal(await page.locator('#page-alert').isVisible(), false, 'no alert on the page')
    await secretDialog.getByRole('button', { name: /^Done/ }).click()
  })

  test('a change sent after the session ended is not made, and the page says so', async () => {
    serving.store.putUser({ id: 'svc-session', status: 'active', rights: [], roles: [] }, { actor: 'test' })
    const key = serving.store.createKey({ userId: 'svc-session', description: 'Leaked', expiresAt: new Date(Date.now() + DAY) }, { actor: 'test' }).key
    // A context of its own (with this browser's device cookie, so the login is not slowed): its session ends here.
    const other = await browser.newContext({ viewport: { width: 1280, height: 860 } })
    other.setDefaultTimeout(10_000)
    try {
      await other.addCookies((await context.cookies()).filter((c) => c.name === 'keygate_device'))
      const tab = await other.newPage()
      await tab.goto(serving.url)
      await tab.getByLabel('Admin token').fill(TOKEN)
      await tab.getByRole('button', { name: 'Log in' }).click()
      await tab.getByRole('button', { name: `Open key ${key.id}` }).click()
      await other.clearCookies({ name: 'keygate_sid' }) // as the session's end
      await tab.locator('#dlg-key').getByRole('button', { name: 'Revoke…' }).click()
      await tab.locator('#dlg-confirm').getByRole('button', { name: 'Revoke key' }).click()
      await tab.getByLabel('Admin token').waitFor()
      assert.match((await tab.locator('#login-error').textContent()) ?? '', /your last change was not made/)
      assert.equal(serving.store.getKey(key.id)?.state, 'active')
    } finally {
      await other.close()
      serving.store.deleteUser('svc-session', { actor: 'test' })
    }
  })

  test('logging out ends the session in every tab', async () => {
    await page.goto(`${serving.url}/#/keys`)
    await page.getByRole('button', { name: 'Log out' }).click()
    await page.getByLabel('Admin token').waitFor()
    const res = await context.request.get(`${serving.url}/api/keys`)
    assert.equal(res.status(), 401)
    assert.deepEqual(
      consoleErrors.filter((e) => !/status of 40[14]/.test(e) && !/Failed to load resource/.test(e)),
      [],
      'no script errors',
    )
  })
})
