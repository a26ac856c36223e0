// Admin login throttling (issue 10, finding 9): guessing from one address is slowed to about
// one guess per delay, whatever the guesser's concurrency, while the admin is never locked
// out: a browser holding the device cookie of an earlier login gets in at once, and without
// one the right token still gets in after at most the maximum delay. Real servers, real
// sockets (each request on its own connection, from 127.0.0.1).
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import http from 'node:http'
import { createRequire } from 'node:module'
import path from 'node:path'

import { KeyStore } from '../index.js'
import { createAdminServer } from '../lib/admin/server.js'
import { createAdminHandler } from '../lib/admin/index.js'
import type { AdminServer, AdminServerOptions } from '../lib/admin/server.js'
import { throwsTypeError } from './helpers.js'

const TOKEN = 'correct-horse-battery-staple-42'

interface Answer {
  status: number
  ms: number
  retryAfter: string | undefined
  setCookie: string[]
  body: string
}

/** POST /api/login with `token` (and a Cookie header, from `localAddress`); resolves with the answer, or 'timeout' after `giveUpMs`. */
function login(port: number, token: string, cookie?: string, giveUpMs?: number, localAddress?: string): Promise<Answer | 'timeout'> {
  return new Promise((resolve, reject) => {
    const body = JSON.stringify({ token })
    const start = performance.now()
    const headers: Record<string, string | number> = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }
    if (cookie) headers.cookie = cookie
    const req = http.request({ port, host: '127.0.0.1', localAddress, method: 'POST', path: '/api/login', agent: false, headers }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => (text += c))
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          ms: performance.now() - start,
          retryAfter: res.headers['retry-after'],
          setCookie: res.headers['set-cookie'] ?? [],
          body: text,
        }),
      )
    })
    req.on('error', (e) => (giveUpMs === undefined ? reject(e) : resolve('timeout')))
    if (giveUpMs !== undefined) {
      req.setTimeout(giveUpMs, () => {
        req.destroy()
        resolve('timeout')
      })
    }
    req.end(body)
  })
}

async function answer(port: number, token: string, cookie?: string, localAddress?: string): Promise<Answer> {
  const a = await login(port, token, cookie, undefined, localAddress)
  assert.notEqual(a, 'timeout')
  return a as Answer
}

/** The `keygate_device=…` pair of a successful login's Set-Cookie headers. */
function deviceCookieOf(a: Answer): string {
  const header = a.setCookie.find((c) => c.startsWith('keygate_device='))
  assert.ok(header, `no device cookie in ${JSON.stringify(a.setCookie)}`)
  return header.split(';')[0]!
}

/** The Set-Cookie headers of a login with the right token through a TLS proxy (X-Forwarded-Proto: https, or `forwardedProto`). */
function setCookiesOverHttps(port: number, forwardedProto = 'https'): Promise<string[]> {
  return new Promise<string[]>((resolve, reject) => {
    const body = JSON.stringify({ token: TOKEN })
    const req = http.request(
      { port, host: '127.0.0.1', method: 'POST', path: '/api/login', agent: false, headers: { 'content-type': 'application/json', 'x-forwarded-proto': forwardedProto } },
      (res) => {
        res.resume()
        resolve(res.headers['set-cookie'] ?? [])
      },
    )
    req.on('error', reject)
    req.end(body)
  })
}

/** The `keygate_sid=…` pair of a successful login's Set-Cookie headers. */
function sessionCookieOf(a: Answer): string {
  return a.setCookie.find((c) => c.startsWith('keygate_sid='))?.split(';')[0] ?? 'no session cookie'
}

/** Whether GET /api/session (a 200 either way) says the Cookie header carries a live session. */
async function isAuthenticated(port: number, cookie: string): Promise<boolean> {
  const res = await fetch(`http://127.0.0.1:${port}/api/session`, { headers: { cookie } })
  assert.equal(res.status, 200)
  return ((await res.json()) as { authenticated?: boolean }).authenticated === true
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

describe('admin login throttling', () => {
  const store = KeyStore.inMemory()
  const servers: AdminServer[] = []
  after(async () => {
    for (const s of servers) await s.close()
    store.close()
  })

  async function server(options: Partial<AdminServerOptions>): Promise<number> {
    const s = createAdminServer({ store, token: TOKEN, log: () => {}, ...options })
    servers.push(s)
    await s.listen()
    return s.port!
  }

  test('concurrent guessing from one address gets at most about one guess per delay; a dropped answer reveals nothing', async () => {
    const DELAY = 50
    const WINDOW = 1000
    const port = await server({ loginFailureDelayMs: DELAY, loginFailureMaxDelayMs: DELAY })
    const counts = new Map<number, number>()
    let guess = 0
    const end = performance.now() + WINDOW
    // The attack script's guesser, but waiting for every answer: 40 guesses in flight at all times.
    async function worker(): Promise<void> {
      while (performance.now() < end) {
        const a = await answer(port, `wrong-guess-${guess++}-xxxxxxxxxxxxxxxx`)
        counts.set(a.status, (counts.get(a.status) ?? 0) + 1)
        if (a.status === 429) assert.match(a.retryAfter ?? '', /^[1-9][0-9]*$/, 'a 429 says when to retry')
      }
    }
    await Promise.all(Array.from({ length: 40 }, worker))
    const checked = counts.get(401) ?? 0
    assert.deepEqual([...counts.keys()].sort(), [401, 429], `answers: ${JSON.stringify([...counts])}`)
    // One guess at once (the address had no failure yet), then at most one per delay.
    const bound = 1 + Math.ceil(WINDOW / DELAY) + 2
    assert.ok(checked <= bound, `${checked} guesses were checked in ${WINDOW} ms: at most ${bound} may be`)
    assert.ok((counts.get(429) ?? 0) > checked, 'the other concurrent attempts were turned away')
    // The attack's shortcut, "no answer within a few ms means wrong", no longer works: the right
    // token is not answered sooner than a wrong one.
    assert.equal(await login(port, TOKEN, undefined, DELAY / 2), 'timeout')
  })

  test('without a device cookie the right token gets in after at most the maximum delay; 429 only while another attempt is in flight, its token unchecked', async () => {
    const DELAY = 400
    const MAX = 800
    const port = await server({ loginFailureDelayMs: DELAY, loginFailureMaxDelayMs: MAX })
    // From an address without failures, right and wrong are answered at once.
    const first = await answer(port, 'wrong-1')
    assert.equal(first.status, 401)
    assert.ok(first.ms < DELAY, `the first failure took ${first.ms.toFixed(0)} ms`)
    // A wrong attempt in flight: the right token sent meanwhile is 429, not checked (else: 200).
    const inFlight = answer(port, 'wrong-2')
    let refused: Answer | undefined
    for (let i = 0; i < 20 && refused === undefined; i++) {
      await sleep(10)
      const a = await answer(port, TOKEN)
      assert.notEqual(a.status, 200, 'the right token was checked while another attempt was in flight')
      if (a.status === 429) refused = a
    }
    assert.ok(refused, 'a second attempt while one is in flight is refused 429')
    assert.ok(refused.ms < DELAY / 2, `the 429 took ${refused.ms.toFixed(0)} ms`)
    assert.match(refused.retryAfter ?? '', /^[1-9][0-9]*$/)
    assert.equal((JSON.parse(refused.body) as { error: { code: string } }).error.code, 'TOO_MANY_LOGINS')
    assert.equal(refused.setCookie.length, 0)
    const second = await inFlight
    assert.equal(second.status, 401)
    assert.ok(second.ms >= DELAY - 5, `the second failure took ${second.ms.toFixed(0)} ms`)
    // Now, alone: the right token gets in, after the address's delay (2 failures: 2 × DELAY = MAX).
    const right = await answer(port, TOKEN)
    assert.equal(right.status, 200, right.body)
    assert.ok(right.ms >= MAX - 5, `the right token was answered after ${right.ms.toFixed(0)} ms: its timing would tell it apart`)
    assert.ok(right.ms < MAX + 1500, `the right token waited ${right.ms.toFixed(0)} ms`)
    // …and a wrong token takes exactly as long: the timing reveals nothing.
    const wrong = await answer(port, 'wrong-3')
    assert.equal(wrong.status, 401)
    assert.ok(wrong.ms >= MAX - 5, `wrong-3 took ${wrong.ms.toFixed(0)} ms`)
  })

  test('after 50 failures from the address, a browser with the device cookie of an earlier login gets in, never 429', async () => {
    const DELAY = 20
    const port = await server({ loginFailureDelayMs: DELAY, loginFailureMaxDelayMs: DELAY })
    const earlier = await answer(port, TOKEN)
    assert.equal(earlier.status, 200)
    const device = deviceCookieOf(earlier)
    let failed = 0
    while (failed < 50) {
      const a = await answer(port, `wrong-${failed}`)
      assert.equal(a.status, 401)
      failed++
    }
    // Guessers of the same address keep it busy; device-cookie logins are not in that queue.
    const guessers = Array.from({ length: 10 }, (_, i) => answer(port, `wrong-more-${i}`))
    const admins = Array.from({ length: 5 }, () => answer(port, TOKEN, device))
    for (const a of await Promise.all(admins)) {
      assert.equal(a.status, 200, a.body)
      assert.match(a.setCookie[0] ?? '', /^keygate_sid=/)
    }
    const statuses = (await Promise.all(guessers)).map((a) => a.status)
    assert.ok(statuses.includes(429), `the guessers: ${statuses.join(' ')}`)
  })

  test('failures slow down their own address only, on a dual-stack server too (where IPv4 clients come as ::ffff:a.b.c.d)', async () => {
    const DELAY = 600
    for (const host of ['127.0.0.1', '::']) {
      const port = await server({ host, loginFailureDelayMs: DELAY, loginFailureMaxDelayMs: DELAY })
      assert.equal((await answer(port, 'wrong token', undefined, '127.0.0.2')).status, 401)
      const other = await answer(port, TOKEN, undefined, '127.0.0.1')
      assert.equal(other.status, 200, host)
      assert.ok(other.ms < DELAY / 2, `${host}: another address waited ${other.ms.toFixed(0)} ms`)
      const same = await answer(port, TOKEN, undefined, '127.0.0.2')
      assert.equal(same.status, 200, host)
      assert.ok(same.ms >= DELAY - 50, `${host}: the failing address waited ${same.ms.toFixed(0)} ms`)
    }
  })

  test('one failure costs the address one delay, not two: Retry-After names loginFailureDelayMs', async () => {
    const DELAY = 1500
    const port = await server({ loginFailureDelayMs: DELAY, loginFailureMaxDelayMs: 4 * DELAY })
    assert.equal((await answer(port, 'wrong-1')).status, 401) // answered at once: the address had no failure
    const inFlight = answer(port, 'wrong-2')
    await sleep(100)
    const refused = await answer(port, TOKEN)
    assert.equal(refused.status, 429, refused.body)
    // 1.5 s left at most, so 2; the first failure counted twice would have made it 3 s.
    assert.equal(refused.retryAfter, '2')
    assert.equal((await inFlight).status, 401)
  })

  test('a device cookie gets in at once while the address is being slowed down', async () => {
    const DELAY = 1500
    const port = await server({ loginFailureDelayMs: DELAY, loginFailureMaxDelayMs: DELAY })
    const device = deviceCookieOf(await answer(port, TOKEN))
    assert.equal((await answer(port, 'wrong')).status, 401) // the address now has a failure
    const withCookie = await answer(port, TOKEN, device)
    assert.equal(withCookie.status, 200)
    assert.ok(withCookie.ms < DELAY / 2, `the device-cookie login took ${withCookie.ms.toFixed(0)} ms`)
    const without = await answer(port, TOKEN)
    assert.equal(without.status, 200)
    assert.ok(without.ms >= DELAY - 5, `the login without the cookie took ${without.ms.toFixed(0)} ms`)
  })

  test('the device cookie: HttpOnly, SameSite=Strict, 30 days, Secure on https; signed, so a forged one is ignored', async () => {
    const DELAY = 600
    const port = await server({ loginFailureDelayMs: DELAY, loginFailureMaxDelayMs: DELAY })
    const ok = await answer(port, TOKEN)
    const header = ok.setCookie.find((c) => c.startsWith('keygate_device='))!
    assert.match(header, /^keygate_device=[A-Za-z0-9_-]{22}\.[0-9]+\.[A-Za-z0-9_-]{43}; /)
    assert.match(header, /; HttpOnly/)
    assert.match(header, /; SameSite=Strict/)
    assert.match(header, /; Max-Age=2592000(;|$)/)
    assert.doesNotMatch(header, /Secure/)
    assert.ok(!header.includes(TOKEN))
    const overHttps = await setCookiesOverHttps(port)
    assert.match(overHttps.find((c) => c.startsWith('keygate_device='))!, /; Secure/)

    const device = deviceCookieOf(ok)
    const [id, expires, mac] = device.slice('keygate_device='.length).split('.') as [string, string, string]
    const flip = (s: string) => (s[0] === 'A' ? 'B' : 'A') + s.slice(1)
    const forged = [
      `keygate_device=${id}.${expires}.${flip(mac)}`, // a wrong signature
      `keygate_device=${flip(id)}.${expires}.${mac}`, // another id
      `keygate_device=${id}.${Number(expires) + 1000}.${mac}`, // a later expiry
      `keygate_device=${id}.${expires}`, // no signature
    ]
    assert.equal((await answer(port, 'wrong')).status, 401) // the address now has a failure
    for (const cookie of forged) {
      const a = await answer(port, TOKEN, cookie)
      assert.equal(a.status, 200)
      assert.ok(a.ms >= DELAY - 5, `a forged device cookie (${cookie}) was let in after ${a.ms.toFixed(0)} ms: it must be ignored`)
    }
    const genuine = await answer(port, TOKEN, device)
    assert.ok(genuine.status === 200 && genuine.ms < DELAY / 2, `the genuine cookie took ${genuine.ms.toFixed(0)} ms`)
  })

  test('secureCookies: true marks the session and device cookies Secure over plain http (a TLS proxy that sends no X-Forwarded-Proto); false never does', async () => {
    const secure = await answer(await server({ secureCookies: true }), TOKEN)
    assert.equal(secure.status, 200, secure.body)
    const plain = await setCookiesOverHttps(await server({ secureCookies: false }))
    for (const name of ['keygate_sid=', 'keygate_device=']) {
      assert.match(secure.setCookie.find((c) => c.startsWith(name)) ?? `no ${name}`, /; Secure(;|$)/, name)
      assert.doesNotMatch(plain.find((c) => c.startsWith(name)) ?? `no ${name}; Secure`, /Secure/, `${name} with secureCookies: false`)
    }
  })

  test("X-Forwarded-Proto through a chain of proxies: the first scheme, the client's, decides Secure, in any case", async () => {
    const port = await server({})
    const secureOf = async (forwardedProto: string) => {
      const cookies = await setCookiesOverHttps(port, forwardedProto)
      assert.equal(cookies.length, 2, forwardedProto)
      return cookies.map((c) => /; Secure(;|$)/.test(c))
    }
    // Each proxy appends the scheme it was reached by (a CDN over HTTPS, then a load balancer over HTTP).
    for (const value of ['https, http', 'https ,http', 'https,https', 'HTTPS', 'Https, http']) assert.deepEqual(await secureOf(value), [true, true], value)
    for (const value of ['http, https', 'http', 'httpsx', 'xhttps']) assert.deepEqual(await secureOf(value), [false, false], value)
  })

  test('a login waiting out its delay does not keep the process alive once the server is closed', () => {
    // A guesser's login waits a minute; the operator stops the server (keygate serve on SIGTERM,
    // a test's after()): the process must end then, not a minute later.
    const script = `
      const http = require('node:http')
      const { KeyStore } = require(${JSON.stringify(path.join(__dirname, '..', 'index.js'))})
      const { createAdminServer } = require(${JSON.stringify(path.join(__dirname, '..', 'lib', 'admin', 'server.js'))})
      const post = (port) => new Promise((resolve) => {
        const req = http.request({ port, host: '127.0.0.1', method: 'POST', path: '/api/login', agent: false, headers: { 'content-type': 'application/json' } }, (res) => {
          res.resume()
          resolve(res.statusCode)
        })
        req.on('error', () => resolve('hung up'))
        req.end(JSON.stringify({ token: 'wrong' }))
      })
      ;(async () => {
        const store = KeyStore.inMemory()
        const server = createAdminServer({ store, token: ${JSON.stringify(TOKEN)}, log: () => {}, loginFailureDelayMs: 60000 })
        await server.listen()
        console.log(await post(server.port)) // the address's first failure: at once
        console.log(await Promise.race([post(server.port), post(server.port)])) // one waits a minute, the other is told so
        await server.close()
        store.close()
      })()
    `
    const child = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 30_000 })
    assert.equal(child.signal, null, 'the process was still alive 30 s after the server closed (the login delay is 60 s)')
    assert.equal(child.status, 0, child.stderr)
    assert.equal(child.stdout, '401\n429\n')
  })

  test('the session cookie is read as browsers send it: the first keygate_sid wins, a part without = is skipped', async () => {
    const port = await server({})
    const sid = sessionCookieOf(await answer(port, TOKEN))
    const authenticated = (cookie: string) => isAuthenticated(port, cookie)
    assert.equal(await authenticated(sid), true)
    // The more specific cookie comes first (RFC 6265 5.4): a later one of the same name, set for a
    // wider path by another app on the site, does not replace the admin's session.
    assert.equal(await authenticated(`${sid}; keygate_sid=${'A'.repeat(43)}`), true, 'a second keygate_sid')
    // A nameless cookie (sent as its value alone) names no cookie.
    assert.equal(await authenticated(`keygate_sidx; ${sid}`), true, 'a part without =')
  })

  test('sessions: an unknown id is none, a new login ends the session it carried, a request keeps one alive past the idle timeout, a logout ends it', async () => {
    const IDLE = 1000
    const port = await server({ sessionIdleMs: IDLE })
    const sessionAt = (cookie: string) => isAuthenticated(port, cookie)
    assert.equal(await sessionAt(`keygate_sid=${'A'.repeat(43)}`), false)
    const first = sessionCookieOf(await answer(port, TOKEN))
    const second = sessionCookieOf(await answer(port, TOKEN, first))
    assert.notEqual(second, first)
    assert.equal(await sessionAt(first), false, 'the session a login carried is ended (no fixation)')
    // Seen at 0.6 s and 1.2 s: alive at 1.2 s though more than IDLE after the login.
    await sleep(0.6 * IDLE)
    assert.equal(await sessionAt(second), true)
    await sleep(0.6 * IDLE)
    assert.equal(await sessionAt(second), true, 'each request restarts the idle timeout')
    // Logging out ends the session on the server, not only in the browser: its id is no use after.
    const third = await answer(port, TOKEN)
    const { csrfToken } = JSON.parse(third.body) as { csrfToken: string }
    const out = await fetch(`http://127.0.0.1:${port}/api/logout`, {
      method: 'POST',
      headers: { cookie: sessionCookieOf(third), 'x-csrf-token': csrfToken, 'content-type': 'application/json' },
      body: '{}',
    })
    assert.equal(out.status, 200, await out.text())
    assert.equal(await sessionAt(sessionCookieOf(third)), false, 'a logged-out session id')
  })

  test('at most 1,000 sessions are held: the 1,001st login ends the least recently seen one, no other', async () => {
    const port = await server({})
    const sessions: string[] = []
    for (let i = 0; i < 1000; i++) sessions.push(sessionCookieOf(await answer(port, TOKEN)))
    // The first session is used again: the least recently seen is now the second.
    assert.equal(await isAuthenticated(port, sessions[0]!), true)
    const newest = sessionCookieOf(await answer(port, TOKEN))
    assert.equal(await isAuthenticated(port, sessions[1]!), false, 'the least recently seen session is ended')
    const alive = []
    for (const [i, cookie] of [...sessions, newest].entries()) if (await isAuthenticated(port, cookie)) alive.push(i)
    assert.deepEqual(
      alive,
      [...Array(1001).keys()].filter((i) => i !== 1),
      'every session but the least recently seen is alive',
    )
  })

  test('an expired device cookie is ignored', async () => {
    const DELAY = 600
    const port = await server({ loginFailureDelayMs: DELAY, loginFailureMaxDelayMs: DELAY, deviceCookieMaxAgeMs: 1000 })
    const ok = await answer(port, TOKEN)
    assert.match(ok.setCookie.find((c) => c.startsWith('keygate_device='))!, /; Max-Age=1(;|$)/)
    const device = deviceCookieOf(ok)
    assert.equal((await answer(port, 'wrong')).status, 401)
    await sleep(1100)
    const a = await answer(port, TOKEN, device)
    assert.equal(a.status, 200)
    assert.ok(a.ms >= DELAY - 5, `an expired device cookie was let in after ${a.ms.toFixed(0)} ms`)
  })

  test('failures with a device cookie count against that cookie only, are delayed, and revoke it after 10', async () => {
    const DELAY = 300
    const port = await server({ loginFailureDelayMs: DELAY, loginFailureMaxDelayMs: DELAY })
    const device = deviceCookieOf(await answer(port, TOKEN))
    // Sent side by side: none is 429 (the cookie's holder is not queued), each waits the delay.
    const wrong = await Promise.all(Array.from({ length: 10 }, (_, i) => answer(port, `wrong-${i}`, device)))
    for (const a of wrong) {
      assert.equal(a.status, 401)
      assert.ok(a.ms >= DELAY - 5, `a device-cookie failure was answered after ${a.ms.toFixed(0)} ms`)
    }
    // The address has no failure of its own: the right token from it, without a cookie, is answered at once.
    const fresh = await answer(port, TOKEN)
    assert.ok(fresh.status === 200 && fresh.ms < DELAY / 2, `took ${fresh.ms.toFixed(0)} ms`)
    // Now give the address a failure: the revoked cookie no longer spares the wait.
    assert.equal((await answer(port, 'wrong-address')).status, 401)
    const revoked = await answer(port, TOKEN, device)
    assert.equal(revoked.status, 200)
    assert.ok(revoked.ms >= DELAY - 5, `a revoked device cookie was let in after ${revoked.ms.toFixed(0)} ms`)
    // A new login's cookie is good again.
    const renewed = deviceCookieOf(revoked)
    const again = await answer(port, TOKEN, renewed)
    assert.ok(again.status === 200 && again.ms < DELAY / 2, `took ${again.ms.toFixed(0)} ms`)
  })

  test("a device cookie's failures are not forgotten at a right login: a stolen copy gets 10 guesses in all", async () => {
    const DELAY = 200
    const port = await server({ loginFailureDelayMs: DELAY, loginFailureMaxDelayMs: DELAY })
    const device = deviceCookieOf(await answer(port, TOKEN))
    // A guesser holding a copy of the cookie: 9 guesses, then the admin logs in with it, then one more guess.
    for (const a of await Promise.all(Array.from({ length: 9 }, (_, i) => answer(port, `wrong-${i}`, device)))) assert.equal(a.status, 401)
    const admin = await answer(port, TOKEN, device)
    assert.ok(admin.status === 200 && admin.ms < DELAY / 2, `the admin's login took ${admin.ms.toFixed(0)} ms`)
    assert.equal((await answer(port, 'wrong-9', device)).status, 401)
    // The tenth failure revoked the cookie: with the address slowed down, it no longer spares the wait.
    assert.equal((await answer(port, 'wrong-address')).status, 401)
    const revoked = await answer(port, TOKEN, device)
    assert.equal(revoked.status, 200)
    assert.ok(revoked.ms >= DELAY - 5, `the cookie with 10 failures was let in after ${revoked.ms.toFixed(0)} ms: its failures were forgotten`)
  })

  test('a device cookie outlives a restart: a guesser on the same address cannot keep the admin out', async () => {
    const DELAY = 300
    const first = await server({ loginFailureDelayMs: DELAY, loginFailureMaxDelayMs: DELAY })
    const device = deviceCookieOf(await answer(first, TOKEN))
    // The server restarts (a new one, given the same token's digest, as `keygate serve` keeps
    // it), and a guesser on the admin's address keeps its one login slot busy.
    const tokenDigest = createHash('sha256').update(TOKEN).digest('hex')
    const port = await server({ token: undefined, tokenDigest, loginFailureDelayMs: DELAY, loginFailureMaxDelayMs: DELAY })
    assert.equal((await answer(port, 'wrong-first')).status, 401)
    const guessing = Array.from({ length: 3 }, (_, i) => login(port, `wrong-${i}`))
    await sleep(20)
    const admin = await answer(port, TOKEN, device)
    assert.ok(admin.status === 200 && admin.ms < DELAY / 2, `the admin's browser got ${admin.status} after ${admin.ms.toFixed(0)} ms`)
    await Promise.all(guessing)
    // A cookie signed for another token is worth nothing.
    const other = await server({ token: `${TOKEN}-rotated`, loginFailureDelayMs: DELAY, loginFailureMaxDelayMs: DELAY })
    assert.equal((await answer(other, 'wrong-first')).status, 401)
    const stale = await answer(other, `${TOKEN}-rotated`, device)
    assert.ok(stale.status === 200 && stale.ms >= DELAY - 5, `a cookie of the old token spared the wait (${stale.ms.toFixed(0)} ms)`)
  })

  test('options that would lock the admin out or switch a limit off are refused', () => {
    assert.throws(() => createAdminServer({ store, token: `kga_${'x'.repeat(1100)}` }), /options\.token must be at most 1024 characters/)
    // A short token is guessed: throttling slows each address, not a guesser with many.
    for (const token of ['x', 'abc', 'x'.repeat(15)]) {
      assert.throws(() => createAdminServer({ store, token }), /options\.token must be at least 16 characters/)
      assert.throws(() => createAdminHandler({ store, token }), /options\.token must be at least 16 characters/)
    }
    assert.throws(() => createAdminHandler({ store, token: '' }), /^TypeError: the admin server needs options\.token \(16 to 1024 characters\) or options\.tokenDigest/)
    // A digest is 64 hex digits, in either case; not as `sha256sum` prints it, nor with a prefix, nor cut short
    // (read as hex, it would come out short or empty, and no login could get in).
    const digest = createHash('sha256').update(TOKEN).digest('hex')
    for (const tokenDigest of [`${digest}  -`, `sha256:${digest}`, digest.slice(1)]) {
      assert.throws(() => createAdminServer({ store, tokenDigest }), /options\.tokenDigest \(its SHA-256, hex\)/, tokenDigest)
    }
    assert.doesNotThrow(() => createAdminServer({ store, tokenDigest: digest.toUpperCase() }).close())
    // Both bounds are allowed, as the message says (16 to 1024).
    assert.doesNotThrow(() => createAdminServer({ store, token: 'x'.repeat(16) }))
    assert.doesNotThrow(() => createAdminServer({ store, token: 'x'.repeat(1024) }))
    // A token whose login body is over the body limit would lock the admin out.
    const wide = '€'.repeat(1000) // 1,000 characters, 3,000 bytes in UTF-8
    assert.throws(() => createAdminServer({ store, token: wide, bodyLimit: 2048 }), /options\.bodyLimit \(2048 bytes\) is too small for a login with this token/)
    assert.doesNotThrow(() => createAdminServer({ store, token: wide, bodyLimit: 4096 }))
    // Login delays, session timeouts, body limit: a string ('1mb', '30m') compared false with every size and age.
    const bad: Partial<AdminServerOptions>[] = [
      { sessionIdleMs: '1s' as unknown as number },
      { sessionMaxMs: '2s' as unknown as number },
      { sessionIdleMs: 0 },
      { sessionMaxMs: Number.POSITIVE_INFINITY },
      // Out of the documented 1000 ms to 400 days (a cookie's Max-Age is capped at 400 days by browsers).
      { sessionIdleMs: 999 },
      { sessionMaxMs: 400 * 86_400_000 + 1 },
      // NaN compares false with every bound and every age: sessions would never end.
      { sessionIdleMs: Number.NaN },
      { sessionMaxMs: Number.NaN },
      { bodyLimit: '1mb' as unknown as number },
      { bodyLimit: 100 },
      { bodyLimit: 1.5e6 + 0.5 },
      // Node listens on every interface for '': an empty HOST must not open the page to the network.
      { host: '' },
      { host: 8080 as unknown as string },
      // Any other value had been taken as 'auto': the session cookie then lacked Secure behind a
      // TLS proxy that sends no X-Forwarded-Proto, though the caller asked for it.
      { secureCookies: 'true' as unknown as boolean },
      { secureCookies: null as unknown as boolean },
      { secureCookies: 1 as unknown as boolean },
      { secureCookies: 'always' as unknown as 'auto' },
      // Had failed only at listen(), or (log) been replaced by console.error without a word.
      { port: '80' as unknown as number },
      { port: 65_536 },
      { port: -1 },
      { port: 80.5 },
      { log: 5 as unknown as () => void },
      { log: 'console' as unknown as () => void },
    ]
    for (const options of bad) {
      // A TypeError that is also a KeygateError INVALID_ARGUMENT, as every error keygate throws.
      throwsTypeError(() => createAdminServer({ store, token: TOKEN, ...options }), JSON.stringify(options))
    }
    // The documented shortest and longest sessions, 1000 ms and 400 days, are allowed.
    assert.doesNotThrow(() => createAdminServer({ store, token: TOKEN, sessionIdleMs: 1000, sessionMaxMs: 1000 }).close())
    assert.doesNotThrow(() => createAdminServer({ store, token: TOKEN, sessionIdleMs: 400 * 86_400_000, sessionMaxMs: 400 * 86_400_000 }).close())
    for (const secureCookies of [true, false, 'auto', undefined] as const) {
      assert.doesNotThrow(() => createAdminServer({ store, token: TOKEN, secureCookies }).close())
      assert.doesNotThrow(() => createAdminHandler({ store, token: TOKEN, secureCookies }).close())
    }
    assert.throws(() => createAdminHandler({ store, token: TOKEN, secureCookies: 'true' as unknown as boolean }), /options\.secureCookies must be true, false or 'auto'/)
  })

  test('the actor and maxLifetimeDays options are checked when the server is made, not at every change', () => {
    // A bad actor had failed every change with a 400 INVALID_ARGUMENT, as if the request were at fault.
    const other = KeyStore.inMemory()
    other.putUser({ id: 'u' })
    const { secret } = other.createKey({ userId: 'u', description: '', expiresAt: new Date(Date.now() + 86_400_000) })
    const badActors: unknown[] = ['', 5, 'web\nadmin', 'ev\u202eil', 'a'.repeat(257), `ci ${secret}`]
    for (const actor of badActors) {
      assert.throws(() => createAdminServer({ store, token: TOKEN, actor: actor as string }), { name: 'TypeError', message: /^options\.actor/ }, JSON.stringify(actor))
      throwsTypeError(() => createAdminHandler({ store, token: TOKEN, actor: actor as string }), JSON.stringify(actor))
    }
    assert.throws(
      () => createAdminServer({ store, token: TOKEN, actor: `ci ${secret}` }),
      (e: Error) => !e.message.includes(secret.slice(3)),
    )
    assert.doesNotThrow(() => createAdminServer({ store, token: TOKEN, actor: 'web:Zoë (ops)' }))
    for (const maxLifetimeDays of ['90', 0, 1.5, 36_501, Number.NaN]) {
      assert.throws(() => createAdminServer({ store, token: TOKEN, maxLifetimeDays: maxLifetimeDays as number }), /options\.maxLifetimeDays must be a whole number/)
    }
    assert.doesNotThrow(() => createAdminServer({ store, token: TOKEN, maxLifetimeDays: 90 }))
  })

  test('the device-cookie lifetime and login delay options are checked: their bounds allowed, past them refused', () => {
    for (const bad of [0, 999, Number.NaN, 400 * 86_400_000 + 1, '30d' as unknown as number]) {
      assert.throws(() => createAdminServer({ store, token: TOKEN, deviceCookieMaxAgeMs: bad }), TypeError)
    }
    for (const good of [1000, 400 * 86_400_000]) assert.doesNotThrow(() => createAdminServer({ store, token: TOKEN, deviceCookieMaxAgeMs: good }).close())
    // As the message says: 0 (no delay) to 60000 ms. A string ('1s') or NaN would wait no time at all.
    for (const name of ['loginFailureDelayMs', 'loginFailureMaxDelayMs'] as const) {
      for (const bad of [-1, 60_001, Number.NaN, Number.POSITIVE_INFINITY, '1s' as unknown as number]) {
        assert.throws(
          () => createAdminServer({ store, token: TOKEN, [name]: bad }),
          new RegExp(`^TypeError: options\\.${name} must be a number of milliseconds from 0 to 60000`),
          `${name}: ${bad}`,
        )
      }
      for (const good of [0, 60_000]) assert.doesNotThrow(() => createAdminServer({ store, token: TOKEN, [name]: good }).close(), `${name}: ${good}`)
    }
  })
})

describe('admin login: a garbage body tests no token', () => {
  let s: AdminServer
  before(async () => {
    s = createAdminServer({ store: KeyStore.inMemory(), token: TOKEN, loginFailureDelayMs: 2000 })
    await s.listen()
  })
  after(() => s.close())
  test('400 at once, and the address is not slowed down by it', async () => {
    for (let i = 0; i < 3; i++) {
      const r = await fetch(`${s.url}/api/login`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{' })
      assert.equal(r.status, 400)
    }
    const a = await answer(s.port!, TOKEN)
    assert.ok(a.status === 200 && a.ms < 1000, `took ${a.ms.toFixed(0)} ms`)
  })
})

// An IPv6 host usually holds a whole /64: its guesses are slowed down as one address, however
// each address of it is written. Loopback offers one IPv6 address only, so the login check is
// given the addresses directly.
describe('admin login: an IPv6 address is throttled as its /64', () => {
  type Check = (req: unknown, token: unknown) => Promise<string>
  const { createLogin, loginOptions } = createRequire(__filename)('../lib/admin/login.js') as {
    createLogin: (options: unknown) => { check: Check }
    loginOptions: (options: Partial<AdminServerOptions>) => unknown
  }
  const DELAY = 300
  const from = (remoteAddress: string) => ({ socket: { remoteAddress }, headers: {} })
  /** How long a login with the right token from `address` waited. */
  async function waited(check: Check, address: string): Promise<number> {
    const start = performance.now()
    assert.match(await check(from(address), TOKEN), /^keygate_device=/, address)
    return performance.now() - start
  }

  test('at most 10,000 failing addresses are remembered: the one whose last failure is oldest is forgotten first', async (t) => {
    const keepAlive = setInterval(() => {}, 1000)
    t.after(() => clearInterval(keepAlive))
    const { check } = createLogin(loginOptions({ token: TOKEN, loginFailureDelayMs: DELAY, loginFailureMaxDelayMs: DELAY }))
    const address = (n: number) => `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`
    // A first failure of an address is answered at once.
    for (let n = 0; n < 10_000; n++) await assert.rejects(check(from(address(n)), 'wrong token'), { status: 401 })
    // Address 0 fails again (now its failure is the latest); a 10,001st address fails: address 1 goes.
    await assert.rejects(check(from(address(0)), 'wrong token'), { status: 401 })
    await assert.rejects(check(from(address(10_000)), 'wrong token'), { status: 401 })
    const forgotten = await waited(check, address(1))
    assert.ok(forgotten < DELAY / 2, `the address with the oldest failure waited ${forgotten.toFixed(0)} ms: it was not forgotten`)
    for (const n of [0, 2, 10_000]) {
      const ms = await waited(check, address(n))
      assert.ok(ms >= DELAY - 20, `${address(n)} waited ${ms.toFixed(0)} ms: it was forgotten`)
    }
  })

  test("at most 10,000 device cookies' failures are remembered: the cookie whose last failure is oldest is forgotten first, no other", async (t) => {
    const keepAlive = setInterval(() => {}, 1000)
    t.after(() => clearInterval(keepAlive))
    const { check } = createLogin(loginOptions({ token: TOKEN, loginFailureDelayMs: DELAY, loginFailureMaxDelayMs: DELAY }))
    // Logins from addresses with no failure get in at once, each with a device cookie of its own.
    const cookies: string[] = []
    for (let n = 0; n <= 10_000; n++) cookies.push((await check(from(`10.1.${n >> 8}.${n & 255}`), TOKEN)).split(';')[0]!)
    const withCookie = (cookie: string) => ({ socket: { remoteAddress: '192.0.2.9' }, headers: { cookie } })
    const fail = (cookie: string) => assert.rejects(check(withCookie(cookie), 'wrong token'), { status: 401 })
    // Cookies 0 then 1 revoked by 10 failures each; then 9,999 other cookies fail once each: the
    // 10,001st record pushes out cookie 0's, the oldest, and no other.
    await Promise.all(Array.from({ length: 10 }, () => fail(cookies[0]!)))
    await Promise.all(Array.from({ length: 10 }, () => fail(cookies[1]!)))
    await Promise.all(cookies.slice(2).map(fail))
    // The address has a failure of its own: a cookie still counted as a device gets in at once, a revoked one waits.
    await assert.rejects(check(from('192.0.2.9'), 'wrong token'), { status: 401 })
    const timed = async (cookie: string) => {
      const start = performance.now()
      await check(withCookie(cookie), TOKEN)
      return performance.now() - start
    }
    const first = await timed(cookies[0]!)
    assert.ok(first < DELAY / 2, `the cookie whose failures are oldest waited ${first.toFixed(0)} ms: its record was kept past 10,000`)
    const second = await timed(cookies[1]!)
    assert.ok(second >= DELAY - 20, `the revoked cookie with the second oldest failures got in after ${second.toFixed(0)} ms: its record was forgotten`)
  })

  test('a token of the longest length a server takes, 1024 characters, logs in', async () => {
    const token = 'x'.repeat(1024)
    const { check } = createLogin(loginOptions({ token }))
    assert.match(await check(from('192.0.2.10'), token), /^keygate_device=/)
  })

  test("an address's failures are forgotten 15 minutes after its last one, not its first", async (t) => {
    const keepAlive = setInterval(() => {}, 1000)
    t.after(() => clearInterval(keepAlive))
    t.mock.timers.enable({ apis: ['Date'], now: Date.parse('2026-12-07T08:00:00Z') })
    const minutes = (n: number) => t.mock.timers.setTime(Date.parse('2026-12-07T08:00:00Z') + n * 60_000)
    const { check } = createLogin(loginOptions({ token: TOKEN, loginFailureDelayMs: DELAY, loginFailureMaxDelayMs: DELAY }))
    await assert.rejects(check(from('192.0.2.7'), 'wrong token'), { status: 401 })
    minutes(10)
    await assert.rejects(check(from('192.0.2.7'), 'wrong token'), { status: 401 })
    // 20 minutes after the first failure, 10 after the last: still remembered.
    minutes(20)
    const remembered = await waited(check, '192.0.2.7')
    assert.ok(remembered >= DELAY - 20, `10 minutes after its last failure the address waited ${remembered.toFixed(0)} ms`)
    // A right login counts no failure: 14.9 minutes after the last one, still remembered.
    minutes(24.9)
    const stillRemembered = await waited(check, '192.0.2.7')
    assert.ok(stillRemembered >= DELAY - 20, `14.9 minutes after its last failure the address waited ${stillRemembered.toFixed(0)} ms`)
    // Over 15 minutes after the last failure: forgotten, answered at once.
    minutes(26)
    const forgotten = await waited(check, '192.0.2.7')
    assert.ok(forgotten < DELAY / 2, `16 minutes after its last failure the address waited ${forgotten.toFixed(0)} ms`)
  })

  test('by default the delay is 1 s after a failure, doubling with each to at most 16 s (what Retry-After says while a login waits)', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: Date.parse('2026-12-07T08:00:00Z') })
    const { check } = createLogin(loginOptions({ token: TOKEN }))
    const guesser = from('192.0.2.8')
    // The first failure is answered at once; each later one waits the address's delay.
    await assert.rejects(check(guesser, 'wrong token'), { status: 401 })
    const delays: number[] = []
    for (let failures = 1; failures <= 6; failures++) {
      const waiting = check(guesser, 'wrong token')
      // A second login from the address meanwhile is told how long the first one waits.
      const busy = await check(guesser, 'wrong token').then(
        () => assert.fail('a second login was checked while the first waited'),
        (e: { status: number; extra: { retryAfter: number } }) => e,
      )
      assert.equal(busy.status, 429)
      delays.push(busy.extra.retryAfter)
      t.mock.timers.tick(busy.extra.retryAfter * 1000)
      await assert.rejects(waiting, { status: 401 })
    }
    assert.deepEqual(delays, [1, 2, 4, 8, 16, 16])
  })

  test('one failure delays every address of its /64, written in any form, and no address outside it', async (t) => {
    // The delay's timer is unref'd (a closed server's process may exit), and here no socket keeps the process alive.
    const keepAlive = setInterval(() => {}, 1000)
    t.after(() => clearInterval(keepAlive))
    const cases: [failing: string, inside: string[], outside: string[]][] = [
      [
        '2001:db8:1:2::1',
        ['2001:db8:1:2::1', '2001:0db8:0001:0002:ffff:0:0:9', '2001:DB8:1:2::5%eth0', '2001:db8:1:2:1:2:3:4'],
        ['2001:db8:1:3::1', '2002:db8:1:2::1', '2001:db8::1:2:0:1', '2001:db8:1::2', '::1', '127.0.0.1'],
      ],
      // `::` standing for groups within the first four
      ['2001:db8::3:4:5:6:7', ['2001:db8:0:3::1', '2001:db8:0:3:4:5:6:7'], ['2001:db8::4:4:5:6:7', '2001:db8::3']],
      ['2001:db8::1', ['2001:db8:0:0:1::1', '2001:db8::'], ['2001:db8:0:1::1']],
    ]
    for (const [failing, inside, outside] of cases) {
      const { check } = createLogin(loginOptions({ token: TOKEN, loginFailureDelayMs: DELAY, loginFailureMaxDelayMs: DELAY }))
      await assert.rejects(check(from(failing), 'wrong token'), { status: 401 })
      for (const address of inside) {
        const ms = await waited(check, address)
        assert.ok(ms >= DELAY - 20, `${address}, in the /64 of ${failing}, waited ${ms.toFixed(0)} ms`)
      }
      for (const address of outside) {
        const ms = await waited(check, address)
        assert.ok(ms < DELAY / 2, `${address}, outside the /64 of ${failing}, waited ${ms.toFixed(0)} ms`)
      }
    }
  })
})
