// The checks every change to the admin API passes before its route runs (docs/admin-api.md,
// "Rules for every change"), each sent as a client would send it over a raw node:http request
// (headers fetch would add or refuse, chunked bodies, a client that hangs up), and what every
// answer carries: the security headers.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import http from 'node:http'
import type { AddressInfo } from 'node:net'

import { KeyStore } from '../index.js'
import { createAdminHandler } from '../lib/admin/index.js'
import { createAdminServer } from '../lib/admin/server.js'
import type { AdminServer } from '../lib/admin/server.js'
import { loginHeaders } from './support/admin.js'

const TOKEN = 'admin-change-checks-token-0123456789'
const BODY_LIMIT = 2048

interface Answer {
  status: number
  headers: http.IncomingHttpHeaders
  body: Record<string, any> | undefined
}

/**
 * One request to `url`: `body` written as given, in one piece (with its Content-Length unless
 * `chunked`, then in two chunks); headers sent exactly as given.
 */
function request(url: string, method: string, headers: Record<string, string>, body?: string, chunked = false): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const sent = { ...headers }
    if (body !== undefined && !chunked) sent['Content-Length'] = String(Buffer.byteLength(body))
    const req = http.request(url, { method, headers: sent, agent: false }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (chunk: Buffer) => chunks.push(chunk))
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8')
        resolve({ status: res.statusCode!, headers: res.headers, body: text === '' ? undefined : JSON.parse(text) })
      })
    })
    req.on('error', reject)
    if (body !== undefined && chunked) {
      const half = Math.floor(body.length / 2)
      req.write(body.slice(0, half))
      req.write(body.slice(half))
    } else if (body !== undefined) req.write(body)
    req.end()
  })
}

/** A JSON text of exactly `size` bytes: an object with one string field. */
function jsonOfSize(size: number): string {
  const shell = JSON.stringify({ pad: '' })
  return JSON.stringify({ pad: 'x'.repeat(size - shell.length) })
}

describe('admin API: the checks of every change', () => {
  let store: KeyStore
  let server: AdminServer
  let session: Record<string, string>
  let host: string

  before(async () => {
    store = KeyStore.inMemory()
    server = createAdminServer({ store, token: TOKEN, log: () => {}, bodyLimit: BODY_LIMIT })
    await server.listen()
    host = new URL(server.url!).host
    session = await loginHeaders(server, TOKEN)
  })
  after(async () => {
    await server.close()
    store.close()
  })

  const createUser = (id: string, extra: Record<string, string>) =>
    request(`${server.url}/api/users`, 'POST', { ...session, ...extra }, JSON.stringify({ id, rights: [] }))

  test('Sec-Fetch-Site cross-site or same-site is 403 FORBIDDEN and changes nothing; same-origin and none pass', async () => {
    for (const site of ['cross-site', 'same-site']) {
      const refused = await createUser('u-site-refused', { 'Sec-Fetch-Site': site })
      assert.equal(refused.status, 403, site)
      assert.equal(refused.body!.error.code, 'FORBIDDEN', site)
      assert.equal(store.getUser('u-site-refused'), null, site)
    }
    for (const site of ['same-origin', 'none']) {
      const taken = await createUser(`u-site-${site}`, { 'Sec-Fetch-Site': site })
      assert.ok(taken.status < 300, `${site}: ${JSON.stringify(taken.body)}`)
      assert.notEqual(store.getUser(`u-site-${site}`), null, site)
    }
  })

  test('Origin: null, another host, or no URL at all is 403 FORBIDDEN and changes nothing; the Host header’s own origin passes', async () => {
    for (const origin of ['null', 'http://evil.example', `http://${host}.evil.example`, 'not a url']) {
      const refused = await createUser('u-origin-refused', { Origin: origin })
      assert.equal(refused.status, 403, origin)
      assert.equal(refused.body!.error.code, 'FORBIDDEN', origin)
      assert.equal(store.getUser('u-origin-refused'), null, origin)
    }
    const taken = await createUser('u-origin-own', { Origin: `http://${host}` })
    assert.ok(taken.status < 300, JSON.stringify(taken.body))
  })

  test('behind a proxy the Origin may name the first X-Forwarded-Host (spaces around it ignored), never a later one', async () => {
    const taken = await createUser('u-forwarded-first', { Origin: 'https://admin.example', 'X-Forwarded-Host': ' admin.example , inner.example' })
    assert.ok(taken.status < 300, JSON.stringify(taken.body))
    const refused = await createUser('u-forwarded-second', { Origin: 'https://inner.example', 'X-Forwarded-Host': 'admin.example, inner.example' })
    assert.equal(refused.status, 403)
    assert.equal(refused.body!.error.code, 'FORBIDDEN')
    assert.equal(store.getUser('u-forwarded-second'), null)
  })

  test('a chunked body (Transfer-Encoding, no Content-Length) must be declared JSON too: 415, nothing changed; chunked JSON is taken', async () => {
    const refused = await request(
      `${server.url}/api/users`,
      'POST',
      { ...session, 'Content-Type': 'text/plain' },
      JSON.stringify({ id: 'u-chunked-text', rights: [] }),
      true,
    )
    assert.equal(refused.status, 415)
    assert.equal(refused.body!.error.code, 'UNSUPPORTED_MEDIA_TYPE')
    assert.equal(store.getUser('u-chunked-text'), null)
    const taken = await request(`${server.url}/api/users`, 'POST', session, JSON.stringify({ id: 'u-chunked-json', rights: [] }), true)
    assert.ok(taken.status < 300, JSON.stringify(taken.body))
    assert.notEqual(store.getUser('u-chunked-json'), null)
  })

  test('Content-Length: 0 is no body: no Content-Type is asked of it (a logout as curl sends it)', async () => {
    const own = await loginHeaders(server, TOKEN)
    const logout = await request(`${server.url}/api/logout`, 'POST', { ...own, 'Content-Type': 'text/plain' }, '')
    assert.equal(logout.status, 200, JSON.stringify(logout.body))
  })

  test('a body of exactly bodyLimit bytes is read, one byte more is 413 BODY_TOO_LARGE: declared or streamed in chunks', async () => {
    for (const chunked of [false, true]) {
      const atLimit = await request(`${server.url}/api/users/u-limit`, 'PUT', session, jsonOfSize(BODY_LIMIT), chunked)
      // Read, so the route answers (the field is not one it takes).
      assert.equal(atLimit.status, 400, `chunked: ${chunked}`)
      assert.equal(atLimit.body!.error.code, 'INVALID_ARGUMENT', `chunked: ${chunked}`)
      const over = await request(`${server.url}/api/users/u-limit`, 'PUT', session, jsonOfSize(BODY_LIMIT + 1), chunked)
      assert.equal(over.status, 413, `chunked: ${chunked}`)
      assert.equal(over.body!.error.code, 'BODY_TOO_LARGE', `chunked: ${chunked}`)
    }
  })

  test('every answer, success or error, carries the security headers', async () => {
    const answers = [
      await request(`${server.url}/api/users`, 'GET', session),
      await request(`${server.url}/api/users/nobody-here`, 'GET', session),
      await createUser('u-headers', { 'Sec-Fetch-Site': 'cross-site' }),
    ]
    for (const answer of answers) {
      const h = answer.headers
      assert.equal(h['x-frame-options'], 'DENY')
      assert.equal(h['x-content-type-options'], 'nosniff')
      assert.equal(h['referrer-policy'], 'no-referrer')
      assert.equal(h['cross-origin-opener-policy'], 'same-origin')
      assert.equal(h['cross-origin-resource-policy'], 'same-origin')
      assert.equal(h['permissions-policy'], 'camera=(), microphone=(), geolocation=(), payment=()')
      assert.match(String(h['content-security-policy']), /frame-ancestors 'none'/)
      assert.equal(h['content-type'], 'application/json; charset=utf-8')
      assert.equal(h['cache-control'], 'no-store')
    }
  })
})

test('a client that hangs up mid-body is answered 400 and not logged as an internal error', async () => {
  const store = KeyStore.inMemory()
  const lines: string[] = []
  const handler = createAdminHandler({ store, token: TOKEN, prefix: '/', log: (line) => lines.push(line) })
  /** The status the handler answered the cut request with, once it did. */
  let answered!: (status: number) => void
  const answer = new Promise<number>((resolve) => {
    answered = resolve
  })
  const server = http.createServer((req, res) => {
    const end = res.end.bind(res)
    res.end = ((...args: Parameters<typeof res.end>) => {
      answered(res.statusCode)
      return end(...args)
    }) as typeof res.end
    handler(req, res)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  try {
    const { port } = server.address() as AddressInfo
    const req = http.request({
      host: '127.0.0.1',
      port,
      path: '/api/login',
      method: 'POST',
      agent: false,
      headers: { 'Content-Type': 'application/json', 'Content-Length': '1000' },
    })
    req.on('error', () => {})
    req.write('{"token": "', () => setImmediate(() => req.destroy()))
    assert.equal(await answer, 400)
    assert.deepEqual(
      lines.filter((line) => /internal|INTERNAL/.test(line)),
      [],
    )
  } finally {
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
    await handler.close()
    store.close()
  }
})

describe('admin API mounted behind a proxy: the Origin is compared with the Host as a URL writes it', () => {
  let store: KeyStore
  let server: http.Server
  let url: string
  let session: Record<string, string>

  before(async () => {
    store = KeyStore.inMemory()
    const handler = createAdminHandler({ store, token: TOKEN, log: () => {} })
    server = http.createServer((req, res) => handler(req, res))
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/admin`
    session = await loginHeaders({ url } as AdminServer, TOKEN)
  })
  after(async () => {
    await new Promise((resolve) => server.close(resolve))
    store.close()
  })

  const createUser = (id: string, headers: Record<string, string>) => request(`${url}/api/users`, 'POST', { ...session, ...headers }, JSON.stringify({ id, rights: [] }))

  test('a Host in capitals or with the scheme’s default port names the Origin’s host; another port, scheme or host does not', async () => {
    const taken: [string, Record<string, string>][] = [
      ['u-host-capitals', { Host: 'ADMIN.Example', Origin: 'https://admin.example' }],
      ['u-host-default-https', { Host: 'admin.example:443', Origin: 'https://admin.example' }],
      ['u-host-default-http', { Host: 'admin.example:80', Origin: 'http://admin.example' }],
      ['u-forwarded-default', { Host: 'inner:8080', 'X-Forwarded-Host': 'Admin.Example:443', Origin: 'https://admin.example' }],
    ]
    for (const [id, headers] of taken) {
      const answer = await createUser(id, headers)
      assert.ok(answer.status < 300, `${JSON.stringify(headers)}: ${JSON.stringify(answer.body)}`)
      assert.notEqual(store.getUser(id), null)
    }
    const refused: Record<string, string>[] = [
      { Host: 'admin.example:80', Origin: 'https://admin.example' },
      { Host: 'admin.example:8443', Origin: 'https://admin.example' },
      { Host: 'admin.example.evil', Origin: 'https://admin.example' },
      { Host: 'evil@admin.example', Origin: 'https://admin.example' },
      { Host: 'admin.example/x', Origin: 'https://admin.example' },
      { Host: 'inner', 'X-Forwarded-Host': 'admin.example:80', Origin: 'https://admin.example' },
      { Host: 'admin.example', Origin: 'file:///etc/passwd' },
    ]
    for (const headers of refused) {
      const answer = await createUser('u-host-refused', headers)
      assert.equal(answer.status, 403, JSON.stringify(headers))
      assert.equal(answer.body!.error.code, 'FORBIDDEN', JSON.stringify(headers))
      assert.equal(store.getUser('u-host-refused'), null, JSON.stringify(headers))
    }
  })
})
