// `Expect: 100-continue` (README, HTTP guard): a client that asks before sending a body (curl
// for bodies over 1 MiB, WebDAV clients uploading files) must learn of a denial before it
// uploads. Node answers `100 Continue` itself unless the server has a 'checkContinue' listener,
// so the README's recipe decides such requests there. Real node:http and Express servers on
// port 0, driven through raw sockets (fetch never sends Expect).
import { after, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import http from 'node:http'
import net from 'node:net'
import type { AddressInfo } from 'node:net'

import express from 'express'

import { KeyStore } from 'keygate'
import { createGuard } from 'keygate/http'
import type { Guard } from 'keygate/http'
import { DAY, T0, at } from './helpers.js'

const BODY = 'x'.repeat(64 * 1024)

function fixture() {
  const store = KeyStore.inMemory({ now: T0 })
  store.putUser({ id: 'files', rights: ['*:*', 'dav=* *'] })
  const { secret } = store.createKey({ userId: 'files', description: 'uploads', expiresAt: at(T0, DAY) })
  return { guard: createGuard(store), secret }
}

interface Upload {
  /** Everything the server wrote, interim answers included. */
  answer: string
  /** Whether the client sent the body (only after a `100 Continue`, as curl does). */
  sentBody: boolean
}

/**
 * A `PUT` with `Expect: 100-continue` that sends its body only once the server says
 * `100 Continue`, and reads until the server closes or has answered in full.
 */
function upload(port: number, target: string, key: string): Promise<Upload> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1')
    let answer = ''
    let sentBody = false
    const finish = () => {
      socket.destroy()
      resolve({ answer, sentBody })
    }
    socket.setEncoding('latin1')
    socket.on('data', (chunk: string) => {
      answer += chunk
      if (!sentBody && answer.startsWith('HTTP/1.1 100 Continue\r\n\r\n')) {
        sentBody = true
        socket.write(BODY)
      }
      const final = answer.replace(/^(HTTP\/1\.1 100 Continue\r\n\r\n)+/, '')
      const length = /\r\ncontent-length: (\d+)\r\n/i.exec(final)
      const split = final.indexOf('\r\n\r\n')
      if (length && split >= 0 && final.length >= split + 4 + Number(length[1])) finish()
    })
    socket.on('close', finish)
    socket.on('error', finish)
    socket.setTimeout(5000, () => {
      socket.destroy()
      reject(new Error(`no answer to PUT ${target}: ${JSON.stringify(answer.slice(0, 200))}`))
    })
    socket.write(`PUT ${target} HTTP/1.1\r\nHost: files.test\r\nX-API-Key: ${key}\r\nContent-Length: ${BODY.length}\r\nExpect: 100-continue\r\n\r\n`)
  })
}

const servers: http.Server[] = []
after(() => {
  for (const server of servers) server.close()
})

async function listen(server: http.Server): Promise<number> {
  servers.push(server)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return (server.address() as AddressInfo).port
}

/** The handler of allowed uploads: answers how many bytes of body it read. */
function counting(seen: string[]) {
  return (req: http.IncomingMessage, res: http.ServerResponse) => {
    seen.push(req.url ?? '')
    let bytes = 0
    req.on('data', (chunk: Buffer) => {
      bytes += chunk.length
    })
    req.on('end', () => res.end(`read ${bytes}`))
  }
}

/** The README's recipe: a `guard.node()` server that decides `Expect: 100-continue` requests in 'checkContinue'. */
function withRecipe(guard: Guard, seen: string[]): http.Server {
  const listener = guard.node(counting(seen))
  const server = http.createServer(listener)
  server.on('checkContinue', (req, res) => {
    const result = guard.check(req)
    if (!result.ok) return guard.reply(res, result)
    res.writeContinue()
    listener(req, res)
  })
  return server
}

// Of a secret's shape, with a checksum no secret has.
const FORGED = `kg_${'0'.repeat(43)}aaaa`
const continues = (answer: string) => answer.split('HTTP/1.1 100 Continue\r\n').length - 1

describe('Expect: 100-continue', () => {
  test("without a 'checkContinue' listener Node says 100 Continue before the guard runs: a denied client uploads its body first", async () => {
    const { guard } = fixture()
    const seen: string[] = []
    const port = await listen(http.createServer(guard.node(counting(seen))))
    const denied = await upload(port, '/dav/reports/q3.pdf', FORGED)
    assert.equal(continues(denied.answer), 1)
    assert.equal(denied.sentBody, true)
    assert.match(denied.answer, /\r\n\r\nHTTP\/1\.1 401 Unauthorized\r\n/)
    assert.deepEqual(seen, [])
  })

  test("with the README's recipe a denied upload gets its 401 and no 100 Continue, never sends its body, and the connection closes", async () => {
    const { guard } = fixture()
    const seen: string[] = []
    const port = await listen(withRecipe(guard, seen))
    const denied = await upload(port, '/dav/reports/q3.pdf', FORGED)
    assert.equal(continues(denied.answer), 0)
    assert.equal(denied.sentBody, false)
    assert.match(denied.answer, /^HTTP\/1\.1 401 Unauthorized\r\n/)
    assert.match(denied.answer, /\r\nconnection: close\r\n/i)
    assert.match(denied.answer, /"reason":"malformed_key"/)
    assert.deepEqual(seen, [])
  })

  test('with the recipe an allowed upload gets exactly one 100 Continue, and its whole body reaches the handler', async () => {
    const { guard, secret } = fixture()
    const seen: string[] = []
    const port = await listen(withRecipe(guard, seen))
    const allowed = await upload(port, '/dav/reports/q3.pdf', secret)
    assert.equal(continues(allowed.answer), 1)
    assert.equal(allowed.sentBody, true)
    assert.match(allowed.answer, /HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\nread 65536$/)
    assert.deepEqual(seen, ['/dav/reports/q3.pdf'])
  })

  test('with Express and the guard on /dav only, the recipe decides /dav uploads and leaves the other routes to the app', async () => {
    const { guard, secret } = fixture()
    const seen: string[] = []
    const app = express()
    app.use('/dav', guard.express())
    app.put('/dav/*', counting(seen))
    app.put('/upload', counting(seen))
    const server = http.createServer(app)
    server.on('checkContinue', (req, res) => {
      if (req.url?.startsWith('/dav/')) {
        const result = guard.check(req)
        if (!result.ok) return guard.reply(res, result)
      }
      res.writeContinue()
      app(req, res)
    })
    const port = await listen(server)
    const denied = await upload(port, '/dav/reports/q3.pdf', FORGED)
    assert.equal(continues(denied.answer), 0)
    assert.equal(denied.sentBody, false)
    assert.match(denied.answer, /^HTTP\/1\.1 401 Unauthorized\r\n/)
    const allowed = await upload(port, '/dav/reports/q3.pdf', secret)
    assert.equal(continues(allowed.answer), 1)
    assert.match(allowed.answer, /\r\n\r\nread 65536$/)
    // Not guarded: the app's own route gets its 100 Continue whatever key is sent.
    const open = await upload(port, '/upload', FORGED)
    assert.equal(continues(open.answer), 1)
    assert.match(open.answer, /\r\n\r\nread 65536$/)
    assert.deepEqual(seen, ['/dav/reports/q3.pdf', '/upload'])
  })
})
