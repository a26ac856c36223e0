'use strict'
// Child process of durable-open.test.ts: opens the store at argv[2], says { ready }, then for
// each stdin line "<delayMs> <keyId>" waits delayMs (busy, to the sub-millisecond) and revokes
// the key, replying { committedAt } (wall-clock ms, comparable across processes). "exit" ends it.
const readline = require('node:readline')
const { KeyStore } = require('../../index.js')

const now = () => performance.timeOrigin + performance.now()
const store = KeyStore.open(process.argv[2])
process.stdout.write(`${JSON.stringify({ ready: true })}\n`)
readline.createInterface({ input: process.stdin }).on('line', (line) => {
  if (line === 'exit') {
    store.close()
    process.exit(0)
  }
  const [delay, id] = line.split(' ')
  const until = now() + Number(delay)
  while (now() < until) {
    // a busy wait: the revocation lands in the middle of the other process's open
  }
  store.setState(id, 'revoked')
  process.stdout.write(`${JSON.stringify({ committedAt: now() })}\n`)
})
