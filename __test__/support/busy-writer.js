'use strict'
// Child process of postgres-faults.test.ts (a host frozen in the middle of a write): opens the
// PostgreSQL store at <url> with <options JSON>, says it is ready, then writes users `busy-0`,
// `busy-1`, … one admin call each, back to back, until it is killed. Prints a line per call:
// {t:'ok', i} once acknowledged, {t:'failed', i, code} when it threw.
//
//   node busy-writer.js <url> <options JSON>
const { KeyStore } = require('../../index.js')

const [url, optionsJson] = process.argv.slice(2)

function send(message) {
  // Synchronous on a pipe (Linux): every line is out before the next call.
  process.stdout.write(`${JSON.stringify(message)}\n`)
}

let store
try {
  store = KeyStore.open(url, { ...JSON.parse(optionsJson), onError: () => {} })
} catch (error) {
  send({ t: 'error', code: error.code, message: error.message })
  process.exit(1)
}
send({ t: 'ready' })
for (let i = 0; ; i++) {
  try {
    store.putUser({ id: `busy-${i}` })
    send({ t: 'ok', i })
  } catch (error) {
    send({ t: 'failed', i, code: error.code })
  }
}
