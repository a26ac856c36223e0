// keygate/http's WebDAV mapping: requests under /dav/ are decided by the store's WebDAV rules.
// Real node:http and Express servers on port 0; WebDAV methods and hostile request targets are
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

import { KeyStore, KeygateError } from 'keygate'
import { createGuard } from 'keygate/http'
import type { Guard, GuardOptions, KeygateAuth } from 'keygate/http'
import { DAY, T0, assertNoSecret, at } from './helpers.js'
import { NO_PYTHON, sql } from './support/python-sqlite.js'
import { type RawAnswer, rawRequest } from './support/raw-http.js'

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

// ---- servers: node:http and Express, each answering 200 { keygate, method, url } -------

type Kind = 'node' | 'express'
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
  let server: http.Server
  if (kind === 'node') {
    server = http.createServer(guard.node(answer))
  } else {
    const app = express()
    app.use(guard.express())
    app.use(answer)
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
    for (const good of ['/dav/', '/files/dav/', '/a.b~c_d-e/', false] as const) createGuard(store, { davPrefix: good })
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
        for (const [method, target] of [
          ['PUT', '/dav/session/notes.txt'],
          ['DELETE', '/dav/session/notes.txt'],
          ['GET', '/dav/docs/a.txt'],
          ['PROPFIND', '/dav/other/'],
          ['MOVE', '/dav/docs/a.txt'],
        ]) {
          expectDenied(await send(s, method!, target!, reader), 403, 'no_matching_rule', `${method} ${target}`)
        }
        // A key without dav= rules may make any WebDAV request its user's rights allow.
        for (const method of DAV_METHODS) {
          expectDav(await send(s, method, '/dav/docs/reports/q3.pdf', { 'X-API-Key': f.open.secret }), method, 'docs/reports/q3.pdf', method)
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
        assert.equal(s.served(), 4 + DAV_METHODS.length + 2, 'the app ran for the allowed requests only')
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
