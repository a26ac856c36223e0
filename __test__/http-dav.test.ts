// keygate/http's WebDAV mapping: requests under /dav/ are decided by the store's WebDAV rules.
// Real node:http and Express servers on port 0; WebDAV methods and hostile request targets are
// sent byte for byte through raw sockets (fetch cannot send PROPFIND reliably, and normalises
// `..`, `%2e` and `\` away before they reach the server).
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import http from 'node:http'
import type { AddressInfo } from 'node:net'

import express from 'express'

import { KeyStore, KeygateError } from 'keygate'
import { createGuard } from 'keygate/http'
import type { Guard, GuardOptions } from 'keygate/http'
import { DAY, T0, assertNoSecret, at } from './helpers.js'
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

/** A 400 invalid_request from the guard; Node's own parser refuses raw non-ASCII bytes first (400, no body). */
function expectRefused(answer: RawAnswer, label: string): void {
  assert.equal(answer.status, 400, `${label}: status (body ${answer.text})`)
  if (answer.text !== '') assert.deepEqual(answer.json, { error: 'bad_request', reason: 'invalid_request' }, `${label}: body`)
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
