// keygate/http's WebDAV mapping: requests under /dav/ are decided by the store's WebDAV rules.
// Real node:http, Express and Fastify servers on port 0; WebDAV methods and hostile request targets are
// sent byte for byte through raw sockets (fetch cannot send PROPFIND reliably, and normalises
// `..`, `%2e` and `\` away before they reach the server).
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'
import type { AddressInfo } from 'node:net'

import express from 'express'
import Fastify from 'fastify'

import { KeyStore, KeygateError } from 'keygate'
import { createGuard } from 'keygate/http'
import type { CheckResult, Guard, GuardOptions, KeygateAuth } from 'keygate/http'
import { DAY, T0, assertNoSecret, at } from './helpers.js'
import { NO_PYTHON, sql } from './support/python-sqlite.js'
import { type RawAnswer, rawExchange, rawRequest } from './support/raw-http.js'

declare module 'fastify' {
  interface FastifyRequest {
    keygate: KeygateAuth | null
  }
}

// ---- fixture --------------------------------------------------------------------------

const SECRETS: string[] = []

/** The real store, with every method call the guard makes on it counted by name. */
function counted(store: KeyStore): { store: KeyStore; calls: string[] } {
  const calls: string[] = []
  const proxy = new Proxy(store, {
    get(target, name) {
      const value = Reflect.get(target, name, target)
      if (typeof value !== 'function') return value
      return (...args: unknown[]) => {
        calls.push(String(name))
        return value.apply(target, args)
      }
    },
  })
  return { store: proxy, calls }
}

function fixture() {
  const base = KeyStore.inMemory({ now: T0 })
  // Hornbill's WebDAV rights live beside the API rights of the same user.
  base.putUser({ id: 'files', rights: ['*:*', 'dav=* *'] })
  base.putUser({ id: 'api-only', rights: ['*:*'] })
  const make = (userId: string, rules: string[] = []) => {
    const issued = base.createKey({ userId, description: 'dav test', expiresAt: at(T0, DAY), rules })
    SECRETS.push(issued.secret)
    return issued
  }
  return {
    base,
    ...counted(base),
    open: make('files'),
    reader: make('files', ['dav=GET session/*', 'dav=PROPFIND docs/*']),
    apiRules: make('files', ['session:getSessionInfo']),
    local: make('files', ['dav=* *', 'ip=127.0.0.0/8']),
    remote: make('files', ['ip=10.0.0.0/8']),
    apiOnlyUser: make('api-only'),
  }
}

/** A store with one unrestricted key: the refusals below never get as far as its rules. */
function openKey() {
  const base = KeyStore.inMemory({ now: T0 })
  base.putUser({ id: 'files', rights: ['*:*'] })
  const issued = base.createKey({ userId: 'files', description: 'dav test', expiresAt: at(T0, DAY) })
  SECRETS.push(issued.secret)
  return { ...counted(base), open: issued }
}

// ---- servers: node:http, Express and Fastify, each answering 200 { keygate, method, url } -------

/** `express-mounted`: the README's WebDAV example, guard and app mounted under /dav. */
type Kind = 'node' | 'express' | 'express-mounted' | 'fastify'
const KINDS: readonly Kind[] = ['node', 'express']

interface Running {
  port: number
  /** How many requests reached the app behind the guard. */
  served: () => number
  close(): Promise<void>
}

async function serve(kind: Kind, guard: Guard): Promise<Running> {
  let served = 0
  const answer = (req: http.IncomingMessage, res: http.ServerResponse) => {
    served++
    const json = JSON.stringify({ keygate: req.keygate, method: req.method, url: req.url })
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(json) })
    res.end(json)
  }
  if (kind === 'fastify') {
    const app = Fastify()
    // Fastify 5 routes only the common methods unless told of the others.
    for (const method of ['COPY', 'MOVE']) app.addHttpMethod(method, { hasBody: true })
    await app.register(guard.fastify())
    app.all('*', async (request) => {
      served++
      return { keygate: request.keygate, method: request.method, url: request.url }
    })
    await app.listen({ port: 0, host: '127.0.0.1' })
    return { port: (app.server.address() as AddressInfo).port, served: () => served, close: () => app.close() }
  }
  let server: http.Server
  if (kind === 'node') {
    server = http.createServer(guard.node(answer))
  } else if (kind === 'express') {
    const app = express()
    app.use(guard.express())
    app.use(answer)
    server = http.createServer(app)
  } else {
    const app = express()
    app.use('/dav', guard.express())
    app.use('/dav', answer)
    server = http.createServer(app)
  }
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    port: (server.address() as AddressInfo).port,
    served: () => served,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

const esp = (secret: string) => ({ Authorization: `ESP-APIKEY ${secret}` })

async function send(s: Running, method: string, target: string | Buffer, headers: Record<string, string> = {}): Promise<RawAnswer> {
  const answer = await rawRequest(s.port, method, target, headers)
  for (const secret of SECRETS) assertNoSecret(answer, secret)
  return answer
}

function expectDenied(answer: RawAnswer, status: number, reason: string, label: string): void {
  assert.equal(answer.status, status, `${label}: status (body ${answer.text})`)
  assert.equal(answer.json?.reason, reason, `${label}: reason (body ${answer.text})`)
}

/** A 400 invalid_request from the guard; Node's own parser refuses raw non-ASCII bytes first (400, no body). */
function expectRefused(answer: RawAnswer, label: string): void {
  assert.equal(answer.status, 400, `${label}: status (body ${answer.text})`)
  if (answer.text !== '') assert.deepEqual(answer.json, { error: 'bad_request', reason: 'invalid_request' }, `${label}: body`)
}

function expectDav(answer: RawAnswer, method: string, path: string, label: string): KeygateAuth {
  assert.equal(answer.status, 200, `${label}: status (body ${answer.text})`)
  const auth = answer.json.keygate as KeygateAuth
  assert.equal(auth.kind, 'dav', label)
  if (auth.kind !== 'dav') throw new Error('unreachable')
  assert.equal(auth.method, method, label)
  assert.equal(auth.path, path, label)
  return auth
}

// ---- hostile paths: 400 before any check ----------------------------------------------

/** Request targets the guard refuses with 400 invalid_request, without asking the store. */
const HOSTILE: [label: string, target: string | Buffer][] = [
  ['traversal', '/dav/docs/../secret.txt'],
  ['traversal at the end', '/dav/docs/..'],
  ['encoded traversal', '/dav/docs/%2E%2E/secret.txt'],
  ['half-encoded traversal', '/dav/docs/%2e./secret.txt'],
  ['double-encoded traversal', '/dav/docs/%252e%252e/secret.txt'],
  ['dot segment', '/dav/./docs/a.txt'],
  ['encoded dot segment', '/dav/docs/%2E/a.txt'],
  ['empty segment', '/dav/docs//a.txt'],
  ['leading empty segment', '/dav//docs/a.txt'],
  ['two trailing slashes', '/dav/docs//'],
  ['empty path', '/dav/'],
  ['empty path with a query', '/dav/?x=1'],
  ['encoded slash', '/dav/docs%2Fa.txt'],
  ['encoded slash, lower case', '/dav/docs%2fa.txt'],
  ['encoded backslash', '/dav/docs%5C..%5Csecret.txt'],
  ['backslash', '/dav/docs\\..\\secret.txt'],
  ['encoded NUL', '/dav/docs/a.txt%00.png'],
  ['bad escape', '/dav/docs/%zz'],
  // A lenient hex reading would take %4g for 'P': the guard would check docs/P, the app serve docs/%4g.
  ['bad escape that a lenient decoder reads as a letter', '/dav/docs/%4g'],
  // The characters just past each range of hex digits: '%6:' would read as 'j', '%4@' and '%4`' as 'I'.
  ['bad escape, the character after 9', '/dav/docs/%6:'],
  ['bad escape, the character before A', '/dav/docs/%4@'],
  ['bad escape, the character before a', '/dav/docs/%4`'],
  ['bad escape, the character after F', '/dav/docs/%4G'],
  ['truncated escape', '/dav/docs/a%4'],
  ['lone percent', '/dav/docs/a%'],
  ['encoded non-ASCII (valid UTF-8)', '/dav/docs/%C3%A9t%C3%A9.txt'],
  ['encoded invalid UTF-8', '/dav/docs/%FF%FE.txt'],
  ['overlong UTF-8 slash', '/dav/docs/%C0%AF..%C0%AFsecret'],
  ['raw non-ASCII bytes', Buffer.concat([Buffer.from('/dav/docs/'), Buffer.from('été', 'utf8')])],
  ['fragment', '/dav/docs/a.txt#x'],
  ['wildcard', '/dav/docs/*'],
  ['encoded question mark', '/dav/docs/a%3F.txt'],
  ['space', '/dav/docs/a%20b.txt'],
  ['8 KB path', `/dav/${'a'.repeat(8192)}`],
  ['8 KB of segments', `/dav/${'ab/'.repeat(2730)}x`],
  ['1,025 characters', `/dav/${'a'.repeat(1025)}`],
  // absolute-form targets whose host parsers end in different places: the app would route another path
  ['absolute-form, empty host', 'http:///dav/pub/x'],
  ['absolute-form, query before the path', 'http://h?/dav/pub/x'],
  ['absolute-form, fragment before the path', 'http://h#/dav/pub/x'],
  ['absolute-form, backslash before the path', 'http://h\\/dav/pub/x'],
  ['absolute-form, another scheme', 'file://h/dav/pub/x'],
  // a host that is not a plain host[:port]: Express (url.parse) ends it early and routes the rest as
  // part of the path (`http://h:x/dav/pub/x` → `/:x/dav/pub/x`)
  ['absolute-form, colon without a port', 'http://h:x/dav/pub/x'],
  ['absolute-form, semicolon in the host', 'http://h;x/dav/pub/x'],
  ['absolute-form, percent in the host', 'http://h%2f/dav/pub/x'],
  ['absolute-form, quote in the host', "http://h'x/dav/pub/x"],
  ['absolute-form, user info', 'http://u@h/dav/pub/x'],
]

describe('WebDAV paths the guard refuses', () => {
  for (const kind of KINDS) {
    test(`${kind}: 400 invalid_request, the store never asked and the app never run`, async () => {
      const f = openKey()
      const s = await serve(kind, createGuard(f.store))
      try {
        for (const [label, target] of HOSTILE) {
          for (const method of ['GET', 'PROPFIND', 'MOVE']) {
            expectRefused(await send(s, method, target, esp(f.open.secret)), `${label} (${method})`)
          }
          // Before any check: no key at all is still the path's 400, not a 401.
          expectRefused(await send(s, 'GET', target), `${label} without a key`)
        }
        assert.deepEqual(f.calls, [], 'the store was never asked')
        assert.equal(s.served(), 0, 'the app never ran')
      } finally {
        await s.close()
      }
    })
  }

  test('guard.check: the same refusals, for a request object without a socket', () => {
    const f = openKey()
    const guard = createGuard(f.store)
    for (const [label, target] of HOSTILE) {
      const url = typeof target === 'string' ? target : target.toString('latin1')
      const req = { method: 'PROPFIND', url, rawHeaders: ['X-API-Key', f.open.secret], headers: {} } as unknown as http.IncomingMessage
      const result = guard.check(req)
      assert.equal(result.ok, false, label)
      if (!result.ok) assert.deepEqual(result.body, { error: 'bad_request', reason: 'invalid_request' }, label)
    }
    assert.deepEqual(f.calls, [])
  })
})

describe('the WebDAV prefix option', () => {
  const throwsInvalid = (fn: () => unknown) =>
    assert.throws(fn, (error: unknown) => error instanceof KeygateError && error.code === 'INVALID_ARGUMENT' && error.message.includes('davPrefix'))

  test('must be a path starting and ending with / over the path alphabet, or false', () => {
    const store = KeyStore.inMemory()
    for (const bad of ['dav/', '/dav', '', '/', '//', '/a//', '/../', '/./', '/d v/', '/dav%2F/', 42, true, `/${'a'.repeat(300)}/`]) {
      throwsInvalid(() => createGuard(store, { davPrefix: bad as GuardOptions['davPrefix'] }))
    }
    for (const good of ['/dav/', '/files/dav/', '/a.b~c_d-e/', '/.../', false] as const) createGuard(store, { davPrefix: good })
  })

  test('with davPrefix: false, /dav/ is not special: hostile paths go to the route (404 no_route)', () => {
    const f = openKey()
    const guard = createGuard(f.store, { davPrefix: false })
    const req = { method: 'GET', url: '/dav/docs/../x', rawHeaders: ['X-API-Key', f.open.secret], headers: {} } as unknown as http.IncomingMessage
    const result = guard.check(req)
    assert.equal(result.ok ? 'ok' : result.body.reason, 'no_route')
  })
})

// ---- WebDAV requests decided by the store -------------------------------------------------

/** The methods of WebDAV (RFC 4918) and plain HTTP a file store serves. */
const DAV_METHODS = ['GET', 'PUT', 'DELETE', 'OPTIONS', 'PROPFIND', 'PROPPATCH', 'MKCOL', 'COPY', 'MOVE', 'LOCK', 'UNLOCK']

describe('WebDAV requests under /dav/', () => {
  for (const kind of KINDS) {
    test(`${kind}: every WebDAV method is decided by the key's dav= rules on the path after /dav/`, async () => {
      const f = fixture()
      const s = await serve(kind, createGuard(f.store))
      try {
        const reader = esp(f.reader.secret)
        const auth = expectDav(await send(s, 'GET', '/dav/session/notes.txt', reader), 'GET', 'session/notes.txt', 'GET under session/')
        assert.equal(auth.keyId, f.reader.key.id)
        assert.equal(auth.userId, 'files')
        assert.match(auth.ip ?? '', /127\.0\.0\.1$/)
        // The query is not part of the path; a collection keeps its trailing /.
        expectDav(await send(s, 'PROPFIND', '/dav/docs/reports/?depth=1', reader), 'PROPFIND', 'docs/reports/', 'PROPFIND a collection')
        expectDav(await send(s, 'GET', '/dav/session/a.txt?path=../../etc/passwd', reader), 'GET', 'session/a.txt', 'a query is not the path')
        // Percent-escapes of the path alphabet are decoded once (and matched case-insensitively).
        expectDav(await send(s, 'GET', '/dav/SESSION/%7Euser%2Dnotes.txt', reader), 'GET', 'SESSION/~user-notes.txt', 'escapes decoded')
        // Any character of the alphabet may come escaped (a client may escape more than it must), its hex digits in either case.
        const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~'
        const escaped = [...alphabet].map((c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`).join('')
        for (const target of [escaped, escaped.toLowerCase()]) expectDav(await send(s, 'GET', `/dav/session/${target}`, reader), 'GET', `session/${alphabet}`, target)
        for (const [method, target] of [
          ['PUT', '/dav/session/notes.txt'],
          ['DELETE', '/dav/session/notes.txt'],
          ['GET', '/dav/docs/a.txt'],
          ['PROPFIND', '/dav/other/'],
          ['MOVE', '/dav/docs/a.txt'],
        ]) {
          expectDenied(await send(s, method!, target!, { ...reader, Destination: '/dav/session/a.txt' }), 403, 'no_matching_rule', `${method} ${target}`)
        }
        // A key without dav= rules may make any WebDAV request its user's rights allow.
        for (const method of DAV_METHODS) {
          // COPY and MOVE name a destination, checked too (see below).
          const moves = method === 'COPY' || method === 'MOVE'
          const headers: Record<string, string> = moves ? { 'X-API-Key': f.open.secret, Destination: '/dav/docs/reports/q4.pdf' } : { 'X-API-Key': f.open.secret }
          const auth = expectDav(await send(s, method, '/dav/docs/reports/q3.pdf', headers), method, 'docs/reports/q3.pdf', method)
          assert.equal(auth.kind === 'dav' ? auth.destination : 'not dav', moves ? 'docs/reports/q4.pdf' : undefined, method)
        }
        expectDav(await send(s, 'MKCOL', '/dav/docs/new/', { Authorization: `Bearer ${f.open.secret}` }), 'MKCOL', 'docs/new/', 'Bearer')
        // The same key checks and IP rules as for an API call.
        expectDenied(await send(s, 'PROPFIND', '/dav/docs/'), 401, 'missing_key', 'no key')
        expectDenied(
          await send(s, 'PROPFIND', '/dav/docs/', esp(`${f.open.secret.slice(0, -1)}${f.open.secret.endsWith('a') ? 'b' : 'a'}`)),
          401,
          'malformed_key',
          'altered key',
        )
        expectDav(await send(s, 'LOCK', '/dav/docs/a.txt', esp(f.local.secret)), 'LOCK', 'docs/a.txt', 'ip=127.0.0.0/8 from loopback')
        expectDenied(await send(s, 'LOCK', '/dav/docs/a.txt', esp(f.remote.secret)), 403, 'ip_not_allowed', 'ip=10.0.0.0/8 from loopback')
        expectDenied(await send(s, 'GET', '/dav/docs/a.txt', esp(f.apiOnlyUser.secret)), 403, 'user_lacks_right', 'a user without WebDAV rights')
        assert.equal(s.served(), 6 + DAV_METHODS.length + 2, 'the app ran for the allowed requests only')
        assert.notEqual(f.base.getKey(f.reader.key.id)?.lastUsedAt, null, 'an allowed WebDAV request is a use of the key')
        assert.equal(f.base.getKey(f.remote.key.id)?.lastUsedAt, null, 'a denied one is not')
      } finally {
        await s.close()
      }
    })
  }

  test('API calls are not decided by dav= rules, nor WebDAV requests by API rules', async () => {
    const f = fixture()
    const s = await serve('express', createGuard(f.store))
    try {
      const api = (secret: string) => send(s, 'POST', '/xmlmc/session/?method=userLogon', esp(secret))
      // dav= rules only: the API call is limited by the user's rights alone.
      const call = await api(f.reader.secret)
      assert.equal(call.status, 200, call.text)
      assert.deepEqual(call.json.keygate, {
        ok: true,
        kind: 'api',
        keyId: f.reader.key.id,
        userId: 'files',
        service: 'session',
        api: 'userLogon',
        ip: call.json.keygate.ip,
      })
      // An API rule restricts API calls only.
      expectDenied(await api(f.apiRules.secret), 403, 'no_matching_rule', 'API rule, other API')
      expectDav(await send(s, 'PUT', '/dav/anything/x.bin', esp(f.apiRules.secret)), 'PUT', 'anything/x.bin', 'API rule, WebDAV request')
      // A user's *:* grants every API call and no WebDAV request.
      assert.equal((await api(f.apiOnlyUser.secret)).status, 200)
      expectDenied(await send(s, 'PROPFIND', '/dav/docs/', esp(f.apiOnlyUser.secret)), 403, 'user_lacks_right', '*:* is not a WebDAV right')
    } finally {
      await s.close()
    }
  })

  test('davPrefix moves the mapping; /dav/ is then an ordinary path', async () => {
    const f = fixture()
    const s = await serve('node', createGuard(f.store, { davPrefix: '/files/dav/' }))
    try {
      expectDav(await send(s, 'PROPFIND', '/files/dav/docs/a.txt', esp(f.reader.secret)), 'PROPFIND', 'docs/a.txt', 'under the prefix')
      expectDenied(await send(s, 'PROPFIND', '/dav/docs/a.txt', esp(f.reader.secret)), 404, 'no_route', 'the old prefix')
      expectDenied(await send(s, 'PROPFIND', '/files/dav/docs/../x', esp(f.reader.secret)), 400, 'invalid_request', 'traversal under the prefix')
    } finally {
      await s.close()
    }
  })

  test('store_unavailable on a WebDAV request → 503 with Retry-After: 1, as for an API call', { skip: NO_PYTHON, timeout: 30_000 }, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keygate-dav-'))
    const file = path.join(dir, 'keys.db')
    const store = KeyStore.open(file, { onError: () => {} })
    const s = await serve('node', createGuard(store))
    try {
      store.putUser({ id: 'files', rights: ['dav=* *'] })
      const good = store.createKey({ userId: 'files', description: 'good', expiresAt: at(new Date(), DAY), rules: ['dav=GET docs/*'] })
      const damaged = store.createKey({ userId: 'files', description: 'damaged', expiresAt: at(new Date(), DAY) })
      SECRETS.push(good.secret, damaged.secret)
      expectDav(await send(s, 'GET', '/dav/docs/a.txt', esp(good.secret)), 'GET', 'docs/a.txt', 'before')
      // Another writer stores a rule no keygate can load: the store cannot vouch for its state.
      const digest = createHash('sha256').update(damaged.secret).digest('hex')
      sql(file, [
        [`UPDATE keys SET rules = 'a b:c' WHERE digest = X'${digest}'`, []],
        [`INSERT INTO changes (kind, id, op) VALUES ('key', ?, 'put')`, [damaged.key.id]],
      ])
      const start = Date.now()
      while (store.explainDav(good.secret, 'GET', 'docs/a.txt').reason !== 'store_unavailable') {
        assert.ok(Date.now() - start < 10_000, 'the store never failed closed')
        await new Promise((resolve) => setTimeout(resolve, 10))
      }
      const answer = await send(s, 'GET', '/dav/docs/a.txt', esp(good.secret))
      expectDenied(answer, 503, 'store_unavailable', 'WebDAV request')
      assert.deepEqual(answer.json, { error: 'unavailable', reason: 'store_unavailable' })
      assert.equal(answer.headers['retry-after'], '1')
    } finally {
      await s.close()
      store.close()
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})

// ---- COPY and MOVE: the Destination is decided too ------------------------------------------

/**
 * A request written line by line (repeated headers stay repeated), with Connection: close and an
 * empty body; `Host: localhost` unless `host` is null (then HTTP/1.0, which may omit it).
 */
async function sendLines(s: Running, requestLine: string, lines: string[], host: string | null = 'localhost'): Promise<RawAnswer> {
  const head = host === null ? [requestLine.replace(/HTTP\/1\.1$/, 'HTTP/1.0'), ...lines] : [requestLine, ...lines, `Host: ${host}`]
  const answer = await rawExchange(s.port, `${[...head, 'Connection: close', 'Content-Length: 0'].join('\r\n')}\r\n\r\n`)
  for (const secret of SECRETS) assertNoSecret(answer, secret)
  return answer
}

/** A user whose rights are `dav=* pub/*`; a key of a `dav=* *` user restricted by its own rule `dav=* pub/*`. */
function moverFixture() {
  const base = KeyStore.inMemory({ now: T0 })
  base.putUser({ id: 'pub-only', rights: ['dav=* pub/*'] })
  base.putUser({ id: 'files', rights: ['dav=* *'] })
  const make = (userId: string, rules: string[] = []) => {
    const issued = base.createKey({ userId, description: 'dav move test', expiresAt: at(T0, DAY), rules })
    SECRETS.push(issued.secret)
    return issued
  }
  return { base, ...counted(base), byRight: make('pub-only'), byRule: make('files', ['dav=* pub/*']), open: make('files') }
}

function expectMoved(answer: RawAnswer, method: string, path: string, destination: string, label: string): void {
  const auth = expectDav(answer, method, path, label)
  assert.equal(auth.kind === 'dav' ? auth.destination : undefined, destination, `${label}: destination`)
}

/** Destination headers the guard refuses with 400 invalid_request (the request has Host: localhost). */
const BAD_DESTINATIONS: [label: string, value: string][] = [
  ['empty', ''],
  ['a relative path', 'pub/b'],
  ['a relative path with the prefix', 'dav/pub/b'],
  ['a network-path reference', '//localhost/dav/pub/b'],
  ['an absolute URI without a path', 'http://localhost'],
  ['an absolute URI with an empty host', 'http:///dav/pub/b'],
  ['another scheme', 'ftp://localhost/dav/pub/b'],
  ['a query before the path', 'http://localhost?/dav/pub/b'],
  ['a backslash before the path', 'http://localhost\\/dav/pub/b'],
  ['a query', '/dav/pub/b?x=1'],
  ['a query that names another path', '/dav/pub/b?/../../private/b'],
  ['an absolute URI with a query', 'http://localhost/dav/pub/b?x'],
  ['a fragment', '/dav/pub/b#x'],
  // the path rules of a request target
  ['traversal', '/dav/pub/../private/b'],
  ['encoded traversal', '/dav/pub/%2e%2e/private/b'],
  ['encoded traversal, upper case', '/dav/pub/%2E%2E/private/b'],
  ['encoded traversal in an absolute URI', 'http://localhost/dav/pub/%2e%2e/private/b'],
  ['double-encoded traversal', '/dav/pub/%252e%252e/private/b'],
  ['encoded slash', '/dav/pub%2F..%2Fprivate/b'],
  ['backslash', '/dav/pub\\..\\private\\b'],
  ['empty segment', '/dav/pub//b'],
  ['empty path', '/dav/'],
  ['wildcard', '/dav/pub/*'],
  ['non-ASCII', '/dav/pub/%C3%A9'],
  // outside the prefix, which is matched before decoding
  ['outside the prefix', '/private/b'],
  ['the prefix without its slash', '/dav'],
  ['the prefix in another case', '/DAV/pub/b'],
  ['an encoded prefix', '/%64av/pub/b'],
  ['outside the prefix, absolute URI', 'http://localhost/private/b'],
  // another host than the request's (Host: localhost)
  ['another host', 'http://evil.example/dav/pub/b'],
  ['another port', 'http://localhost:8080/dav/pub/b'],
  ['user info', 'http://user@localhost/dav/pub/b'],
]

describe('COPY and MOVE: the Destination is decided as well as the source', () => {
  const ALL_KINDS: readonly Kind[] = ['node', 'express', 'express-mounted', 'fastify']
  for (const kind of ALL_KINDS) {
    test(`${kind}: a destination the key may not write is denied with its reason; an allowed one is req.keygate.destination`, async () => {
      const f = moverFixture()
      const s = await serve(kind, createGuard(f.store))
      try {
        for (const method of ['MOVE', 'COPY']) {
          // The user's right dav=* pub/* allows the source, not the destination.
          for (const destination of ['/dav/private/b', 'http://localhost/dav/private/b', '/dav/PRIVATE/pub/b']) {
            expectDenied(
              await send(s, method, '/dav/pub/a', { ...esp(f.byRight.secret), Destination: destination }),
              403,
              'user_lacks_right',
              `${method} → ${destination}`,
            )
          }
          // The key's own rule: the store's reason for the destination.
          expectDenied(await send(s, method, '/dav/pub/a', { ...esp(f.byRule.secret), Destination: '/dav/private/b' }), 403, 'no_matching_rule', `${method}, key rule`)
          // The source is still decided first.
          expectDenied(
            await send(s, method, '/dav/private/a', { ...esp(f.byRight.secret), Destination: '/dav/pub/b' }),
            403,
            'user_lacks_right',
            `${method} from private/`,
          )
          assert.equal(s.served(), 0, `${method}: the app never ran for a denied request`)
        }
        let allowed = 0
        for (const method of ['MOVE', 'COPY']) {
          for (const secret of [f.byRight.secret, f.byRule.secret]) {
            expectMoved(await send(s, method, '/dav/pub/a', { ...esp(secret), Destination: '/dav/pub/b' }), method, 'pub/a', 'pub/b', `${method} within pub/`)
            // An absolute URI naming the request's own host (ASCII case ignored), decoded once as a request target.
            expectMoved(
              await send(s, method, '/dav/pub/a', { 'X-API-Key': secret, Destination: 'http://LocalHost/dav/pub/new%7Edir/b.txt' }),
              method,
              'pub/a',
              'pub/new~dir/b.txt',
              `${method}, absolute URI`,
            )
            // A collection keeps its trailing /.
            expectMoved(
              await send(s, method, '/dav/pub/dir/', { ...esp(secret), Destination: '/dav/pub/dir2/' }),
              method,
              'pub/dir/',
              'pub/dir2/',
              `${method}, collection`,
            )
            allowed += 3
          }
        }
        // Methods without a destination: a Destination header plays no part and is not exposed.
        const get = expectDav(await send(s, 'GET', '/dav/pub/a', { ...esp(f.byRight.secret), Destination: '/dav/private/b' }), 'GET', 'pub/a', 'GET with a Destination')
        assert.equal(get.kind === 'dav' && 'destination' in get, false, 'no destination on a GET')
        assert.equal(s.served(), allowed + 1, 'the app ran for the allowed requests only')
      } finally {
        await s.close()
      }
    })

    test(`${kind}: a missing, repeated, malformed, foreign or outside Destination is 400 invalid_request before the key is read`, async () => {
      const f = moverFixture()
      const s = await serve(kind, createGuard(f.store))
      try {
        const key = `Authorization: ESP-APIKEY ${f.open.secret}`
        for (const method of ['MOVE', 'COPY']) {
          const line = `${method} /dav/pub/a HTTP/1.1`
          expectDenied(await sendLines(s, line, [key]), 400, 'invalid_request', `${method} without a Destination`)
          expectDenied(await sendLines(s, line, []), 400, 'invalid_request', `${method} without a Destination or a key`)
          for (const pair of [
            ['/dav/pub/b', '/dav/pub/b'],
            ['/dav/pub/b', '/dav/private/b'],
            ['/dav/private/b', '/dav/pub/b'],
          ]) {
            expectDenied(
              await sendLines(s, line, [key, ...pair.map((value, i) => `${i === 0 ? 'Destination' : 'destination'}: ${value}`)]),
              400,
              'invalid_request',
              `${method}, two Destinations ${pair.join(' + ')}`,
            )
          }
          for (const [label, value] of BAD_DESTINATIONS) {
            expectDenied(await sendLines(s, line, [key, `Destination: ${value}`]), 400, 'invalid_request', `${method}, ${label}: ${value}`)
            expectDenied(await sendLines(s, line, [`Destination: ${value}`]), 400, 'invalid_request', `${method}, ${label}, no key`)
          }
          // A good Destination without a key is the usual 401.
          expectDenied(await sendLines(s, line, ['Destination: /dav/pub/b']), 401, 'missing_key', `${method}, no key`)
        }
        assert.deepEqual(f.calls, [], 'the store was never asked')
        assert.equal(s.served(), 0, 'the app never ran')
      } finally {
        await s.close()
      }
    })

    test(`${kind}: the host of an absolute-URI Destination is checked against every host the request names`, async () => {
      const f = moverFixture()
      const s = await serve(kind, createGuard(f.store))
      try {
        const key = `X-API-Key: ${f.open.secret}`
        // An absolute-form request target names a host too: both must be the Destination's.
        expectMoved(
          await sendLines(s, 'MOVE http://localhost/dav/pub/a HTTP/1.1', [key, 'Destination: http://localhost/dav/pub/b']),
          'MOVE',
          'pub/a',
          'pub/b',
          'absolute-form target, same host',
        )
        expectMoved(
          await sendLines(s, 'MOVE http://localhost/dav/pub/a HTTP/1.1', [key, 'Destination: /dav/pub/b']),
          'MOVE',
          'pub/a',
          'pub/b',
          'absolute-form target, path',
        )
        expectDenied(
          await sendLines(s, 'MOVE http://other.example/dav/pub/a HTTP/1.1', [key, 'Destination: http://localhost/dav/pub/b']),
          400,
          'invalid_request',
          'absolute-form target naming another host than the Destination',
        )
        // HTTP/1.0 without a Host: an absolute path only (nothing to compare an absolute URI's host with).
        expectMoved(await sendLines(s, 'COPY /dav/pub/a HTTP/1.1', [key, 'Destination: /dav/pub/b'], null), 'COPY', 'pub/a', 'pub/b', 'no Host, a path')
        expectDenied(
          await sendLines(s, 'COPY /dav/pub/a HTTP/1.1', [key, 'Destination: http://localhost/dav/pub/b'], null),
          400,
          'invalid_request',
          'no Host, an absolute URI',
        )
        // A Host with a port: the Destination's authority must carry the same port.
        expectMoved(
          await sendLines(s, 'COPY /dav/pub/a HTTP/1.1', [key, 'Destination: http://files.example:8443/dav/pub/b'], 'FILES.example:8443'),
          'COPY',
          'pub/a',
          'pub/b',
          'Host with a port',
        )
        expectDenied(
          await sendLines(s, 'COPY /dav/pub/a HTTP/1.1', [key, 'Destination: http://files.example/dav/pub/b'], 'files.example:8443'),
          400,
          'invalid_request',
          'Host with a port, Destination without',
        )
      } finally {
        await s.close()
      }
    })
  }

  test('davPrefix applies to the Destination as to the request target', async () => {
    const f = moverFixture()
    const s = await serve('node', createGuard(f.store, { davPrefix: '/files/dav/' }))
    try {
      const headers = (destination: string) => ({ ...esp(f.byRight.secret), Destination: destination })
      expectMoved(await send(s, 'MOVE', '/files/dav/pub/a', headers('/files/dav/pub/b')), 'MOVE', 'pub/a', 'pub/b', 'under the prefix')
      expectDenied(await send(s, 'MOVE', '/files/dav/pub/a', headers('/dav/pub/b')), 400, 'invalid_request', 'the default prefix')
      expectDenied(await send(s, 'MOVE', '/files/dav/pub/a', headers('/files/dav/private/b')), 403, 'user_lacks_right', 'forbidden under the prefix')
    } finally {
      await s.close()
    }
  })

  test('guard.check: any case of COPY/MOVE, request objects without rawHeaders, and the store asked for both paths', () => {
    const f = moverFixture()
    const guard = createGuard(f.store)
    const check = (method: string, headers: Record<string, string | string[]>, rawHeaders?: string[]) =>
      guard.check({ method, url: '/dav/pub/a', headers: { 'x-api-key': f.byRight.secret, ...headers }, rawHeaders } as unknown as http.IncomingMessage)
    const reason = (result: CheckResult) => (result.ok ? 'allowed' : result.body.reason)
    // The store reads methods in any case: so does the guard's test for COPY and MOVE.
    for (const method of ['move', 'Copy', 'MOVE']) {
      assert.equal(reason(check(method, { destination: '/dav/private/b' })), 'user_lacks_right', method)
      assert.equal(reason(check(method, {})), 'invalid_request', `${method}, no Destination`)
      assert.equal(reason(check(method, { destination: ['/dav/pub/b', '/dav/pub/b'] })), 'invalid_request', `${method}, two Destinations`)
      const allowed = check(method, { destination: 'http://localhost/dav/pub/b', host: 'localhost' })
      assert.equal(allowed.ok && allowed.kind === 'dav' ? allowed.destination : reason(allowed), 'pub/b', method)
    }
    // Hosts are compared ignoring ASCII case only (the Kelvin sign lower-cases to `k`).
    assert.equal(reason(check('MOVE', { destination: 'http://\u212Aey.example/dav/pub/b', host: 'key.example' })), 'invalid_request', 'Kelvin sign')
    // A Destination host that is not a plain host[:port] is refused even when the Host header names it:
    // url.parse (Express) reads `http://h:x/dav/pub/b` as the path `/:x/dav/pub/b`.
    for (const host of ['h:x', 'h;x', 'u@h']) {
      assert.equal(reason(check('MOVE', { destination: `http://${host}/dav/pub/b`, host })), 'invalid_request', `Destination host ${host}`)
    }
    // rawHeaders, when present, are what counts (Node keeps only one Host in req.headers).
    assert.equal(
      reason(
        check('MOVE', { destination: 'http://a.example/dav/pub/b', host: 'a.example' }, [
          'X-API-Key',
          f.byRight.secret,
          'Host',
          'a.example',
          'Host',
          'b.example',
          'Destination',
          'http://a.example/dav/pub/b',
        ]),
      ),
      'invalid_request',
      'two different Host headers',
    )
    // Once the key's ids are known, a COPY/MOVE is two decisions: its source and its destination.
    f.calls.length = 0
    assert.equal(reason(check('MOVE', { destination: '/dav/pub/b' })), 'allowed')
    // The counting Proxy is a wrapper store: its own isAllowedDav decides each of the two.
    assert.deepEqual(f.calls, ['isAllowedDav', 'isAllowedDav'])
  })
})
