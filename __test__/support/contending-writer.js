'use strict'
// Child process of durable-write-contention.test.ts: from `startAt` on, for `ms` milliseconds,
// changes the state of a key of its own back to back (active ⇄ suspended), one admin call each,
// as one of many admin processes on one store. Then prints one line:
// {t:'done', calls, worst (ms), locked (calls that threw STORE_LOCKED), other (other codes)}.
//
//   node contending-writer.js <path> <name> <startAt-ms> <ms>
const { KeyStore } = require('../../index.js')

const [path, name, startAtText, msText] = process.argv.slice(2)

try {
  const store = KeyStore.open(path)
  store.putUser({ id: name, rights: ['svc:*'] })
  const { key } = store.createKey({ userId: name, description: '', expiresAt: new Date(Date.now() + 86_400_000) })
  const wait = Number(startAtText) - Date.now()
  if (wait > 0) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, wait)
  const end = Date.now() + Number(msText)
  let calls = 0
  let worst = 0
  let locked = 0
  const other = {}
  while (Date.now() < end) {
    const began = performance.now()
    try {
      store.setState(key.id, calls % 2 ? 'active' : 'suspended')
    } catch (error) {
      if (error.code === 'STORE_LOCKED') locked++
      else other[error.code] = (other[error.code] ?? 0) + 1
    }
    worst = Math.max(worst, performance.now() - began)
    calls++
  }
  store.close()
  process.stdout.write(`${JSON.stringify({ t: 'done', calls, worst, locked, other })}\n`)
} catch (error) {
  process.stdout.write(`${JSON.stringify({ t: 'error', code: error.code, message: error.message })}\n`)
  process.exit(1)
}
