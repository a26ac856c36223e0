// keygate/http: what guard.reply writes for a denial built by hand (README: "a denial of your own
// making goes out the same way"), and the one line the default onError logs for a 500.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { IncomingMessage, ServerResponse } from 'node:http'

import { KeyStore, KeygateError } from 'keygate'
import { createGuard } from 'keygate/http'
import { DAY, T0, at } from './helpers.js'

/** A response that records what is written on it; `sent` and `ended` as Node's flags say. */
function recordingResponse(sent = false, ended = false) {
  const written: unknown[][] = []
  const res = {
    headersSent: sent,
    writableEnded: ended,
    writeHead: (...a: unknown[]) => written.push(['writeHead', ...a]),
    end: (...a: unknown[]) => written.push(['end', ...a]),
  } as unknown as ServerResponse
  return { res, written }
}

function fakeRequest(key: string): IncomingMessage {
  return {
    method: 'POST',
    url: '/xmlmc/session/?method=userLogon',
    headers: { 'x-api-key': key },
    rawHeaders: ['X-API-Key', key],
    socket: { remoteAddress: '192.0.2.10' },
  } as unknown as IncomingMessage
}

test('reply writes a hand-made denial of any status from 400 to 599 and refuses one outside, writing nothing', () => {
  const guard = createGuard(KeyStore.inMemory())
  const body = { error: 'custom', reason: 'quota' }
  for (const status of [400, 599]) {
    const { res, written } = recordingResponse()
    guard.reply(res, { ok: false, status, body, headers: { 'x-reason': 'quota' } } as never)
    const json = JSON.stringify(body)
    assert.deepEqual(written, [
      ['writeHead', status, { 'x-reason': 'quota', 'content-length': Buffer.byteLength(json) }],
      ['end', json],
    ])
  }
  for (const status of [399, 600, 404.5]) {
    const { res, written } = recordingResponse()
    assert.throws(
      () => guard.reply(res, { ok: false, status, body, headers: {} } as never),
      (e) => e instanceof KeygateError && e.code === 'INVALID_ARGUMENT' && /denial\.status/.test(e.message),
      String(status),
    )
    assert.deepEqual(written, [], String(status))
  }
})

test('reply takes a hand-made denial without headers (null or left out): only its Content-Length is sent', () => {
  const guard = createGuard(KeyStore.inMemory())
  const body = { error: 'custom', reason: 'quota' }
  for (const headers of [null, undefined]) {
    const { res, written } = recordingResponse()
    guard.reply(res, { ok: false, status: 429, body, headers } as never)
    assert.deepEqual(written[0], ['writeHead', 429, { 'content-length': Buffer.byteLength(JSON.stringify(body)) }], String(headers))
  }
})

test('reply leaves a response alone once its headers are sent or it has ended (another handler answered first)', () => {
  const store = KeyStore.inMemory()
  const guard = createGuard(store)
  const denial = guard.check(fakeRequest(''))
  assert.equal(denial.ok, false)
  const handMade = { ok: false, status: 403, body: { error: 'forbidden', reason: 'custom' }, headers: {} }
  for (const [sent, ended] of [
    [true, false],
    [false, true],
  ] as const) {
    for (const given of [denial, handMade]) {
      const { res, written } = recordingResponse(sent, ended)
      guard.reply(res, given as never)
      assert.deepEqual(written, [], `headersSent ${sent}, writableEnded ${ended}`)
    }
  }
})

/** The lines console.error printed while `run` ran. */
function consoleErrorLines(run: () => void): string[] {
  const lines: string[] = []
  const original = console.error
  console.error = (...args: unknown[]) => {
    lines.push(args.join(' '))
  }
  try {
    run()
  } finally {
    console.error = original
  }
  return lines
}

test('the default onError line names the error, its string code and up to three causes; a thrown non-error as an error saying so', () => {
  const store = KeyStore.inMemory({ now: T0 })
  store.putUser({ id: 'svc', rights: ['*:*'] })
  const { secret } = store.createKey({ userId: 'svc', description: 'd', expiresAt: at(T0, DAY) })
  const failing = (thrown: unknown) =>
    createGuard(store, {
      route: () => {
        throw thrown
      },
    })
  const chain = Object.assign(
    new Error('first', { cause: new TypeError('second', { cause: new RangeError('third', { cause: new Error('fourth', { cause: new Error('fifth') }) }) }) }),
    {
      code: 'E_FIRST',
    },
  )
  const numbered = Object.assign(new Error('numbered'), { code: 42 })
  const lines = consoleErrorLines(() => {
    for (const thrown of [chain, numbered, 'a string']) assert.equal((failing(thrown).check(fakeRequest(secret)) as { status: number }).status, 500)
  })
  assert.deepEqual(lines, [
    'keygate/http: answered 500: Error E_FIRST: first; caused by TypeError: second; caused by RangeError: third; caused by Error: fourth',
    'keygate/http: answered 500: Error: numbered',
    // (onError is handed an error, never the thrown value itself: see error-redaction.js)
    'keygate/http: answered 500: Error: a thrown string',
  ])
  store.close()
})
