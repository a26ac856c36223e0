'use strict'
// Child process of postgres-open-window.test.ts: opens the store at argv[2], says { ready },
// then for each stdin line "<delayMs> <action> <id>" waits delayMs (busy, to the
// sub-millisecond) and commits the change (revoke | suspend | delete a key; suspend a user;
// narrow a key's rules), replying { committedAt } (wall-clock ms, comparable across
// processes) and the version it committed at. "exit" ends it.
const readline = require('node:readline')
const { KeyStore } = require('../../index.js')

const now = () => performance.timeOrigin + performance.now()
const store = KeyStore.open(process.argv[2])
process.stdout.write(`${JSON.stringify({ ready: true })}\n`)
const actions = {
  revoke: (id) => store.setState(id, 'revoked'),
  suspend: (id) => store.setState(id, 'suspended'),
  delete: (id) => store.deleteKey(id),
  suspendUser: (id) => store.putUser({ ...store.getUser(id), status: 'suspended' }),
  narrow: (id) => store.updateKey(id, { rules: ['other:*'] }),
}
readline.createInterface({ input: process.stdin }).on('line', (line) => {
  if (line === 'exit') {
    store.close()
    process.exit(0)
  }
  const [delay, action, id] = line.split(' ')
  const until = now() + Number(delay)
  while (now() < until) {
    // a busy wait: the change lands in the middle of the other process's open
  }
  actions[action](id)
  process.stdout.write(`${JSON.stringify({ committedAt: now(), version: store.health().appliedVersion })}\n`)
})
