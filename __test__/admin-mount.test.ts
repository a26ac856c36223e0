// keygate/admin mounted in an application's own server (Express, Fastify, node:http) under a
// path prefix: the page, its assets and its API (a login, then a change) all work through it,
// over real HTTP, and the application's own routes are left alone.
import { after, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import http from 'node:http'
import https from 'node:https'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import type { AddressInfo } from 'node:net'
import { once } from 'node:events'
import { PassThrough } from 'node:stream'

import express from 'express'
import Fastify from 'fastify'

import { KeyStore } from '../index.js'
import { createAdminHandler } from '../lib/admin/index.js'
import type { AdminHandler } from '../lib/admin/index.js'
import { throwsTypeError } from './helpers.js'

const { shownMethod } = require('../lib/admin/response.js') as { shownMethod: (method: unknown) => string }

const TOKEN = 'mount-test-admin-token-0123456789'

function listen(server: http.Server): Promise<string> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`))
  })
}

function close(server: http.Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve())
    server.closeAllConnections()
  })
}

/** A login posted as the page posts it, with `body` as its JSON (`{ token }` unless given), under `prefix`. */
function postLogin(base: string, prefix: string, body: unknown = { token: TOKEN }, init: RequestInit = {}): Promise<Response> {
  return fetch(`${base}${prefix}/api/login`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Origin: base },
    body: JSON.stringify(body),
    ...init,
  })
}

/** What a browser on the mounted page does: load it and its assets, log in, create a user. */
async function useThePage(base: string, prefix: string, store: KeyStore): Promise<void> {
  const bare = await fetch(`${base}${prefix}`, { redirect: 'manual' })
  assert.equal(bare.status, 308, 'the bare prefix redirects to the page')
  assert.equal(bare.headers.get('location'), `${prefix}/`)

  const page = await fetch(`${base}${prefix}/`)
  assert.equal(page.status, 200)
  assert.match(page.headers.get('content-type') ?? '', /^text\/html/)
  const html = await page.text()
  // Every asset the page names is fetched from where the browser would resolve it.
  const assets = [...html.matchAll(/(?:src|href)="([^"#][^"]*)"/g)].map((m) => m[1]!)
  assert.ok(assets.includes('app.js') && assets.includes('app.css'), `assets named relative: ${assets.join(', ')}`)
  for (const asset of assets) {
    const url = new URL(asset, `${base}${prefix}/`)
    assert.ok(url.pathname.startsWith(`${prefix}/`), `${asset} stays under ${prefix}/`)
    const res = await fetch(url)
    assert.equal(res.status, 200, `${url.pathname}`)
    await res.arrayBuffer()
  }

  const login = await postLogin(base, prefix)
  assert.equal(login.status, 200, await login.clone().text())
  const { csrfToken } = (await login.json()) as { csrfToken: string }
  // The session (and device) cookies go to the page's path only: the app's other routes never receive them.
  const paths = login.headers.getSetCookie().map((c) => /; Path=([^;]*)/.exec(c)?.[1])
  assert.deepEqual(paths, [prefix || '/', prefix || '/'])
  const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0]!
  assert.match(cookie, /=/)

  const created = await fetch(`${base}${prefix}/api/users`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Origin: base, Cookie: cookie, 'X-CSRF-Token': csrfToken },
    body: JSON.stringify({ id: 'mounted-user', rights: ['session:*'] }),
  })
  assert.equal(created.status, 201, await created.clone().text())
  assert.equal(store.getUser('mounted-user')?.id, 'mounted-user', 'the change reached the store')

  const listed = await fetch(`${base}${prefix}/api/users`, { headers: { Cookie: cookie } })
  assert.equal(listed.status, 200)
  assert.ok(JSON.stringify(await listed.json()).includes('mounted-user'))

  // Outside the prefix the page's paths mean nothing.
  assert.equal((await fetch(`${base}/app.js`)).status, 404)
  assert.equal((await fetch(`${base}/api/session`)).status, 404)
}

describe('keygate/admin mounted in your own server', () => {
  const handlers: AdminHandler[] = []
  after(async () => {
    for (const h of handlers) await h.close()
  })
  function handler(store: KeyStore, prefix?: string, log?: (line: string) => void): AdminHandler {
    const h = createAdminHandler({ store, token: TOKEN, ...(prefix === undefined ? {} : { prefix }), ...(log === undefined ? {} : { log }) })
    handlers.push(h)
    return h
  }

  test('Express: app.use(handler) under /admin/, the app keeps its own routes', async () => {
    const store = KeyStore.inMemory()
    const app = express()
    app.get('/health', (_req, res) => {
      res.send('ok')
    })
    app.use(handler(store))
    const server = http.createServer(app)
    const base = await listen(server)
    try {
      await useThePage(base, '/admin', store)
      assert.equal(await (await fetch(`${base}/health`)).text(), 'ok')
    } finally {
      await close(server)
    }
  })

  test('Express: mounted after express.json(), the page works on the body it parsed', async () => {
    const store = KeyStore.inMemory()
    const app = express()
    app.use(express.json())
    app.use(handler(store))
    const server = http.createServer(app)
    const base = await listen(server)
    try {
      await useThePage(base, '/admin', store)
    } finally {
      await close(server)
    }
  })

  test('after a JSON parser as Express 5 mounts it (body-parser 2: req.body set, no req._body), the page works on the body it parsed', async () => {
    const store = KeyStore.inMemory()
    const h = handler(store)
    const server = http.createServer((req, res) => {
      // As body-parser 2 (Express 5's express.json()) does: the body read and parsed into req.body, nothing else marked.
      if (!/^application\/json/.test(req.headers['content-type'] ?? '')) return h(req, res)
      const chunks: Buffer[] = []
      req.on('data', (chunk: Buffer) => chunks.push(chunk))
      req.on('end', () => {
        Object.assign(req, { body: JSON.parse(Buffer.concat(chunks).toString('utf8')) })
        h(req, res)
      })
    })
    const base = await listen(server)
    try {
      await useThePage(base, '/admin', store)
      const array = await postLogin(base, '/admin', [{ token: TOKEN }])
      assert.equal(array.status, 400)
    } finally {
      await close(server)
    }
  })

  test('Express: mounted after express.json(), a JSON array body is a 400, as without that parser', async () => {
    const store = KeyStore.inMemory()
    const app = express()
    app.use(express.json())
    app.use(handler(store))
    const server = http.createServer(app)
    const base = await listen(server)
    try {
      const login = await postLogin(base, '/admin', [{ token: TOKEN }], { signal: AbortSignal.timeout(5000) })
      assert.equal(login.status, 400)
      assert.deepEqual(await login.json(), { error: { code: 'INVALID_ARGUMENT', message: 'the request body must be a JSON object' } })
    } finally {
      await close(server)
    }
  })

  test('Express: mounted after express.json({ strict: false }), a JSON null, number, boolean or string body is a 400, as without that parser, and nothing is logged', async () => {
    const store = KeyStore.inMemory()
    const app = express()
    app.use(express.json({ strict: false }))
    const logged: string[] = []
    app.use(handler(store, undefined, (line) => logged.push(line)))
    const server = http.createServer(app)
    const base = await listen(server)
    try {
      // A string had been a 500 ('already read by another middleware'), logged as an internal error.
      // So had a string whose text is a JSON object or empty (a body encoded twice, `"{}"`), which
      // a text parser's copy of the body can also be: the declared length tells them apart.
      for (const body of [null, 0, false, 'abc', TOKEN, '{}', '', ' ', JSON.stringify({ token: TOKEN })]) {
        const login = await postLogin(base, '/admin', body, { signal: AbortSignal.timeout(5000) })
        assert.equal(login.status, 400, JSON.stringify(body))
        assert.deepEqual(await login.json(), { error: { code: 'INVALID_ARGUMENT', message: 'the request body must be a JSON object' } })
      }
      assert.deepEqual(logged, [], 'a client sending the wrong JSON is no internal error')
    } finally {
      await close(server)
    }
  })

  for (const [name, parser] of [
    ['as text', express.text({ type: '*/*' })],
    ['as a Buffer', express.raw({ type: '*/*' })],
  ] as const) {
    test(`Express: mounted after a parser that read the body ${name}, a change is refused at once, not left hanging`, async () => {
      const store = KeyStore.inMemory()
      const app = express()
      app.use(parser)
      const logged: string[] = []
      app.use(handler(store, undefined, (line) => logged.push(line)))
      const server = http.createServer(app)
      const base = await listen(server)
      try {
        const login = await postLogin(base, '/admin', { token: TOKEN }, { signal: AbortSignal.timeout(5000) })
        assert.equal(login.status, 500)
        const { error } = (await login.json()) as { error: { code: string; message: string } }
        assert.equal(error.code, 'INTERNAL')
        assert.match(error.message, /already read by another middleware: mount the admin handler before any body parser/)
        assert.ok(!error.message.includes(TOKEN))
        assert.deepEqual(logged, [`keygate admin: INTERNAL on POST "/api/login": ${error.message}`])
      } finally {
        await close(server)
      }
    })
  }

  test('Express: mounted after a text parser, an empty body (which the handler reads as {}) is refused for the mounting, not blamed on the client', async () => {
    const store = KeyStore.inMemory()
    const app = express()
    app.use(express.text({ type: '*/*' }))
    app.use(handler(store, undefined, () => {}))
    const server = http.createServer(app)
    const base = await listen(server)
    try {
      // Had been a 400 'the request body must be a JSON object': an empty body is one the handler takes (step 8).
      for (const body of ['', ' \n']) {
        const login = await postLogin(base, '/admin', undefined, { body, signal: AbortSignal.timeout(5000) })
        assert.equal(login.status, 500, JSON.stringify(body))
        const { error } = (await login.json()) as { error: { code: string; message: string } }
        assert.match(error.message, /already read by another middleware: mount the admin handler before any body parser/)
      }
      // What the handler would refuse anyway is still the client's 400.
      const notAnObject = await postLogin(base, '/admin', undefined, { body: '[]', signal: AbortSignal.timeout(5000) })
      assert.equal(notAnObject.status, 400)
    } finally {
      await close(server)
    }
  })

  test('without a log option, a 500 is reported on console.error (a mounted page has no log of its own)', async () => {
    const store = KeyStore.inMemory()
    const h = handler(store)
    const server = http.createServer((req, res) => h(req, res))
    const base = await listen(server)
    const lines: string[] = []
    const consoleError = console.error
    console.error = (...args: unknown[]) => {
      lines.push(args.map(String).join(' '))
    }
    try {
      const login = await postLogin(base, '/admin')
      const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0]!
      store.close()
      const keys = await fetch(`${base}/admin/api/keys`, { headers: { Cookie: cookie } })
      assert.equal(keys.status, 500)
      assert.equal(((await keys.json()) as { error: { code: string } }).error.code, 'STORE_IO')
      assert.deepEqual(lines, ['keygate admin: STORE_IO on GET "/api/keys": the store is closed'])
    } finally {
      console.error = consoleError
      await close(server)
    }
  })

  test("Express: app.use('/tools/keys', handler) with the same prefix", async () => {
    const store = KeyStore.inMemory()
    const app = express()
    app.use('/tools/keys', handler(store, '/tools/keys/'))
    const server = http.createServer(app)
    const base = await listen(server)
    try {
      await useThePage(base, '/tools/keys', store)
    } finally {
      await close(server)
    }
  })

  test('Fastify: a plugin under /admin that hands the raw request over', async () => {
    const store = KeyStore.inMemory()
    const admin = handler(store, '/admin')
    const app = Fastify()
    app.get('/health', async () => 'ok')
    await app.register(
      async (scope) => {
        // The page reads its own request bodies: no Fastify body parsing in this scope.
        scope.removeAllContentTypeParsers()
        scope.addContentTypeParser('*', (_request, _payload, done) => done(null))
        const hand = (request: { raw: http.IncomingMessage }, reply: { hijack(): void; raw: http.ServerResponse }) => {
          reply.hijack()
          admin(request.raw, reply.raw)
        }
        scope.all('/', hand)
        scope.all('/*', hand)
      },
      { prefix: '/admin' },
    )
    const base = await app.listen({ port: 0, host: '127.0.0.1' })
    try {
      await useThePage(base, '/admin', store)
      assert.equal(await (await fetch(`${base}/health`)).text(), 'ok')
    } finally {
      await app.close()
    }
  })

  test('node:http: handler(req, res, next) in front of the app', async () => {
    const store = KeyStore.inMemory()
    const admin = handler(store)
    assert.equal(admin.prefix, '/admin/')
    const server = http.createServer((req, res) =>
      admin(req, res, () => {
        if (req.url === '/health') res.end('ok')
        else {
          res.statusCode = 404
          res.end()
        }
      }),
    )
    const base = await listen(server)
    try {
      await useThePage(base, '/admin', store)
      assert.equal(await (await fetch(`${base}/health`)).text(), 'ok')
      assert.equal(admin.sessionCount, 1)
    } finally {
      await close(server)
    }
  })

  test("cookies go to the page's path, '/' at the root; logout clears the session cookie at that path; close() ends every session", async () => {
    for (const [prefix, under, cookiePath] of [
      ['/', '', '/'],
      ['/admin', '/admin', '/admin'],
    ] as const) {
      const admin = handler(KeyStore.inMemory(), prefix)
      const server = http.createServer((req, res) => admin(req, res))
      const base = await listen(server)
      const authenticated = async (cookie: string) =>
        ((await (await fetch(`${base}${under}/api/session`, { headers: { Cookie: cookie } })).json()) as { authenticated: boolean }).authenticated
      try {
        const login = await postLogin(base, under)
        assert.equal(login.status, 200, await login.clone().text())
        const { csrfToken } = (await login.json()) as { csrfToken: string }
        // A cookie without a Path (or an empty one) would go to the login's directory only, `/api`: the page would lose its session.
        assert.deepEqual(
          login.headers.getSetCookie().map((c) => /; Path=([^;]*)/.exec(c)?.[1]),
          [cookiePath, cookiePath],
          prefix,
        )
        const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0]!
        const out = await fetch(`${base}${under}/api/logout`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json', Origin: base, Cookie: cookie, 'X-CSRF-Token': csrfToken },
          body: '{}',
        })
        assert.equal(out.status, 200)
        // Cleared only if it names the cookie's own Path; emptied and expired, the browser sends no id again.
        assert.deepEqual(out.headers.getSetCookie(), [`keygate_sid=; HttpOnly; SameSite=Strict; Path=${cookiePath}; Max-Age=0`], prefix)
        assert.equal(await authenticated(cookie), false, `${prefix}: the logged-out session`)

        const again = (await postLogin(base, under).then((r) => r.headers.get('set-cookie') ?? '')).split(';')[0]!
        assert.equal(await authenticated(again), true)
        assert.equal(admin.sessionCount, 1)
        await admin.close()
        assert.equal(admin.sessionCount, 0, `${prefix}: close() drops every session`)
        assert.equal(await authenticated(again), false, `${prefix}: a session from before close()`)
      } finally {
        await close(server)
      }
    }
  })

  test('without next, a request outside the prefix gets a 404', async () => {
    const admin = handler(KeyStore.inMemory(), 'console')
    assert.equal(admin.prefix, '/console/')
    const server = http.createServer((req, res) => admin(req, res))
    const base = await listen(server)
    try {
      assert.equal((await fetch(`${base}/consolex/`)).status, 404)
      assert.equal((await fetch(`${base}/console/`)).status, 200)
    } finally {
      await close(server)
    }
  })

  test('a prefix the options only inherit (a polluted Object.prototype) is not read', () => {
    const proto = Object.prototype as Record<string, unknown>
    proto.prefix = '/'
    try {
      const h = createAdminHandler({ store: KeyStore.inMemory(), token: TOKEN })
      assert.equal(h.prefix, '/admin/')
    } finally {
      delete proto.prefix
    }
  })

  test('a path beginning with // is a path there, never a host and the path after it', async () => {
    const store = KeyStore.inMemory()
    const admin = handler(store)
    const server = http.createServer((req, res) => admin(req, res))
    const base = await listen(server)
    try {
      const login = await postLogin(base, '/admin')
      const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0]!
      assert.equal((await fetch(`${base}/admin/api/users`, { headers: { Cookie: cookie } })).status, 200)
      // Read as `new URL('//x/api/users', base)` would read it, this was the users' list.
      for (const path of ['/admin//x/api/users', '/admin//x/app.js']) {
        const res = await fetch(`${base}${path}`, { headers: { Cookie: cookie } })
        assert.equal(res.status, 404, path)
        await res.arrayBuffer()
      }
    } finally {
      await close(server)
    }
  })

  test('cookiePath: the path browsers see behind a proxy that serves the page under another one', async () => {
    const store = KeyStore.inMemory()
    const admin = createAdminHandler({ store, token: TOKEN, prefix: '/admin', cookiePath: '/tools/admin' })
    handlers.push(admin)
    const server = http.createServer((req, res) => admin(req, res))
    const base = await listen(server)
    try {
      const login = await postLogin(base, '/admin')
      assert.equal(login.status, 200)
      assert.deepEqual(
        login.headers.getSetCookie().map((c) => /; Path=([^;]*)/.exec(c)?.[1]),
        ['/tools/admin', '/tools/admin'],
      )
    } finally {
      await close(server)
    }
    for (const cookiePath of ['admin', '/a;Domain=evil.example', '/a b']) {
      assert.throws(() => createAdminHandler({ store, token: TOKEN, cookiePath }), /options\.cookiePath must be a path/, cookiePath)
    }
    // @ts-expect-error a cookiePath is a string
    assert.throws(() => createAdminHandler({ store, token: TOKEN, cookiePath: 5 }), /options\.cookiePath must be a path/)
  })

  test("mounted in an HTTPS server, the session and device cookies are Secure with no X-Forwarded-Proto ('auto')", async (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keygate-mount-tls-'))
    t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
    const made = spawnSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-keyout',
        'key.pem',
        '-out',
        'cert.pem',
        '-days',
        '1',
        '-subj',
        '/CN=127.0.0.1',
      ],
      { cwd: dir, encoding: 'utf8' },
    )
    if (made.status !== 0) return t.skip(`no openssl to make a certificate: ${made.error?.message ?? made.stderr}`)
    const admin = createAdminHandler({ store: KeyStore.inMemory(), token: TOKEN })
    handlers.push(admin)
    const server = https.createServer({ key: fs.readFileSync(path.join(dir, 'key.pem')), cert: fs.readFileSync(path.join(dir, 'cert.pem')) }, (req, res) =>
      admin(req, res),
    )
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const origin = `https://127.0.0.1:${(server.address() as AddressInfo).port}`
    try {
      const login = await new Promise<http.IncomingMessage>((resolve, reject) => {
        const req = https.request(
          `${origin}/admin/api/login`,
          { method: 'POST', rejectUnauthorized: false, agent: false, headers: { 'Content-Type': 'application/json', Origin: origin } },
          resolve,
        )
        req.on('error', reject)
        req.end(JSON.stringify({ token: TOKEN }))
      })
      login.resume()
      assert.equal(login.statusCode, 200)
      const setCookies = login.headers['set-cookie'] ?? []
      for (const name of ['keygate_sid=', 'keygate_device=']) assert.match(setCookies.find((c) => c.startsWith(name)) ?? `no ${name}`, /; Secure(;|$)/, name)
    } finally {
      server.close()
      server.closeAllConnections()
    }
  })

  test('a method as log lines show it: a token of up to 20 letters as it is, anything else quoted, so a newline or escape in it cannot forge a line', () => {
    for (const method of ['GET', 'M-SEARCH', 'A'.repeat(20)]) assert.equal(shownMethod(method), method)
    for (const method of ['GET\n\u001b[2J', 'G ET', 'x GET y', 'A'.repeat(21)]) assert.equal(shownMethod(method), JSON.stringify(method))
  })

  test('a request made by hand (a method or url that is not a string, no headers, a query Node cannot put in a header) gets a JSON 4xx/5xx or a redirect, never an unhandled rejection or a throw', async () => {
    const logged: string[] = []
    const admin = handler(KeyStore.inMemory(), undefined, (line) => logged.push(line))
    const rejections: unknown[] = []
    const onRejection = (reason: unknown) => rejections.push(reason)
    process.on('unhandledRejection', onRejection)
    try {
      const unprintable = {
        toString(): string {
          throw new Error('no text')
        },
      }
      const cases: [string, Record<string, unknown>, number, RegExp][] = [
        // Had been an unhandled rejection: the 500's log line made text of the method, and threw.
        [
          'a Symbol method, no headers',
          { method: Symbol('m'), url: '/admin/api/keys', headers: undefined },
          500,
          /internal error on \(a method of type symbol\) "\/api\/keys"/,
        ],
        ['an unprintable method, no headers', { method: unprintable, url: '/admin/api/keys', headers: undefined }, 500, /internal error on \(a method of type object\)/],
        // Had thrown out of the handler: String() of the url.
        ['an unprintable url', { method: 'GET', url: unprintable, headers: {} }, 404, /^$/],
        ['no url', { method: 'GET', url: undefined, headers: {} }, 404, /^$/],
        // Had thrown ERR_INVALID_CHAR out of the handler: the query went into Location as it was.
        ['a newline in the query of the bare prefix', { method: 'GET', url: '/admin?a\nb', headers: {} }, 308, /^$/],
      ]
      for (const [name, fields, status, logLine] of cases) {
        logged.length = 0
        const req = Object.assign(new PassThrough(), { socket: {} }, fields) as unknown as http.IncomingMessage
        const answer: { status?: number; headers?: Record<string, string>; body?: string } = {}
        const res = {
          headersSent: false,
          writeHead(code: number, headers: Record<string, string>) {
            // As Node's does: a header value with a control character is refused.
            if (Object.values(headers).some((value) => /[\0-\x08\x0a-\x1f]/.test(String(value)))) throw new TypeError('ERR_INVALID_CHAR')
            answer.status = code
            answer.headers = headers
            return this
          },
          end(body?: string) {
            answer.body = body ?? ''
            return this
          },
        } as unknown as http.ServerResponse
        admin(req, res)
        await new Promise((resolve) => setTimeout(resolve, 20))
        assert.equal(answer.status, status, name)
        if (status >= 500) assert.equal(JSON.parse(answer.body ?? '').error.code, 'INTERNAL', name)
        if (status === 308) assert.equal(answer.headers?.Location, '/admin/?a%0Ab', name)
        assert.match(logged.join('\n'), logLine, name)
      }
      // A response that cannot be written at all (a framework's, handed over broken): logged and dropped, not an unhandled rejection.
      logged.length = 0
      let destroyed = false
      const broken = {
        headersSent: false,
        writeHead() {
          throw new Error('cannot write')
        },
        destroy() {
          destroyed = true
        },
      } as unknown as http.ServerResponse
      admin(Object.assign(new PassThrough(), { socket: {}, method: 'GET', url: '/admin/api/session', headers: {} }) as unknown as http.IncomingMessage, broken)
      await new Promise((resolve) => setTimeout(resolve, 20))
      assert.ok(destroyed, 'the response was dropped')
      assert.match(logged.join('\n'), /\nkeygate admin: could not answer GET "\/api\/session": Error: cannot write/)
      assert.deepEqual(rejections, [])
    } finally {
      process.off('unhandledRejection', onRejection)
    }
  })

  test("node:http: a request another of the app's handlers answered first is left alone and logged, never a throw out of the app's listener", async () => {
    const logged: string[] = []
    const admin = handler(KeyStore.inMemory(), undefined, (line) => logged.push(line))
    const thrown: unknown[] = []
    const server = http.createServer((req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/plain' })
      try {
        admin(req, res)
      } catch (error) {
        // Had been ERR_HTTP_HEADERS_SENT, which would end a node:http app (an uncaught exception).
        thrown.push(error)
      }
      res.end('the app')
    })
    const base = await listen(server)
    try {
      for (const path of ['/admin', '/elsewhere', '/admin/', '/admin/api/session']) {
        const res = await fetch(`${base}${path}`, { redirect: 'manual' })
        assert.equal(res.status, 200, path)
        assert.equal(await res.text(), 'the app', path)
      }
      assert.deepEqual(thrown, [])
      assert.equal(logged.length, 4, logged.join('\n'))
      assert.match(logged[0]!, /^keygate admin: GET "\/admin" was answered by another handler before the admin page/)
    } finally {
      await close(server)
    }
  })

  test('a client that hangs up in the middle of a body is not logged as an internal error', async () => {
    const logged: string[] = []
    const admin = handler(KeyStore.inMemory(), undefined, (line) => logged.push(line))
    let answered!: () => void
    const done = new Promise<void>((resolve) => {
      answered = resolve
    })
    const server = http.createServer((req, res) => {
      res.on('close', answered)
      admin(req, res)
    })
    const base = await listen(server)
    try {
      const socket = net.connect(Number(new URL(base).port), '127.0.0.1')
      await once(socket, 'connect')
      socket.write(`POST /admin/api/login HTTP/1.1\r\nHost: ${new URL(base).host}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"tok`)
      await new Promise((resolve) => setTimeout(resolve, 50))
      socket.destroy()
      await done
      await new Promise((resolve) => setTimeout(resolve, 20))
      // Had been "internal error on POST "/api/login": Error: aborted" and Node's stack, as if keygate had failed.
      assert.deepEqual(logged, [])
    } finally {
      await close(server)
    }
  })

  test('a bad prefix is refused when mounting', () => {
    throwsTypeError(() => createAdminHandler({ store: KeyStore.inMemory(), token: TOKEN, prefix: '/a?b' }))
    // Mounted where no browser can reach it: browsers resolve dot segments before sending.
    for (const prefix of ['/a/../b', '/a/./b', '/a//b', '..', '/./admin']) {
      assert.throws(() => createAdminHandler({ store: KeyStore.inMemory(), token: TOKEN, prefix }), /empty, "\." or "\.\." segment/, prefix)
    }
    const dotted = createAdminHandler({ store: KeyStore.inMemory(), token: TOKEN, prefix: '/ops.v2/admin..x/' })
    assert.equal(dotted.prefix, '/ops.v2/admin..x/')
    dotted.close()
    // @ts-expect-error a prefix is a string
    throwsTypeError(() => createAdminHandler({ store: KeyStore.inMemory(), token: TOKEN, prefix: 5 }))
  })
})
