'use strict'
// Child process of durable-crash-stress.test.ts: opens the store, then makes seeded random admin
// calls, checks and copies without end until it is killed (SIGKILL, at any moment: during its
// open, a commit, a lastUsedAt flush, a copy). After each call has returned it prints one line
//   {"op":…,"actor":…, …results}
// (synchronous on a pipe, so a call killed before it returned prints nothing).
//
//   node stress-worker.js <path> <seed> <name> <copies dir>
const { KeyStore } = require('../../index.js')

const [path, seedText, name, copies] = process.argv.slice(2)
let state = Number(seedText) >>> 0
function random() {
  state = (state + 0x6d2b79f5) >>> 0
  let t = state
  t = Math.imul(t ^ (t >>> 15), t | 1)
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}
const pick = (list) => list[Math.floor(random() * list.length)]
const send = (message) => process.stdout.write(`${JSON.stringify({ ...message, at: performance.timeOrigin + performance.now() })}\n`)
const options = { onError: (e) => send({ incident: true, code: e.code, task: e.task, recovered: e.recovered }) }

let store
try {
  store = KeyStore.open(path, options)
} catch (e) {
  send({ openFailed: true, code: e.code, message: e.message })
  process.exit(5)
}
send({ ready: true })

const USERS = ['u1', 'u2', 'u3']
const secrets = new Map()
let n = 0

function step() {
  const op = pick([
    'createKey',
    'createKey',
    'setState',
    'setState',
    'putUser',
    'putRole',
    'deleteUser',
    'updateKey',
    'rotateKey',
    'deleteKey',
    'check',
    'check',
    'copy',
    'reopen',
  ])
  const actor = `${name}.${++n}`
  // Each put and update carries something new (a right or a description naming its actor): one
  // that changes nothing writes no audit entry, and every acknowledged call must have one.
  try {
    if (op === 'putUser') {
      store.putUser({ id: pick(USERS), rights: [random() < 0.8 ? '*:*' : 'a:b', `${actor}:x`], roles: random() < 0.5 ? ['r1'] : [] }, { actor })
      send({ op, actor })
    } else if (op === 'putRole') {
      store.putRole({ name: 'r1', rights: [pick(['*:*', 'x:*']), `${actor}:x`] }, { actor })
      send({ op, actor })
    } else if (op === 'deleteUser') {
      if (random() < 0.7) return
      send({ op, actor, deleted: store.deleteUser(pick(USERS), { actor }) })
    } else if (op === 'createKey') {
      const { key, secret } = store.createKey({ userId: pick(USERS), description: actor, expiresAt: new Date(Date.now() + 86_400_000) }, { actor })
      secrets.set(key.id, secret)
      send({ op, actor, id: key.id, secret })
    } else if (op === 'check') {
      for (const secret of secrets.values()) store.isAllowed(secret, 'svc', 'call')
    } else if (op === 'copy') {
      if (random() < 0.8) return
      const to = KeyStore.open(`${copies}/${actor}.db`)
      KeyStore.copy(store, to)
      to.close()
    } else if (op === 'reopen') {
      if (random() < 0.8) return
      store.close()
      store = KeyStore.open(path, options)
    } else {
      const keys = store.listKeys()
      if (keys.length === 0) return
      const key = pick(keys)
      if (op === 'setState') {
        const to = pick(['active', 'suspended', 'revoked'])
        store.setState(key.id, to, { actor })
        send({ op, actor, id: key.id, state: to })
      } else if (op === 'updateKey') {
        store.updateKey(key.id, { description: actor, rules: random() < 0.5 ? [] : ['svc:call'] }, { actor })
        send({ op, actor })
      } else if (op === 'rotateKey') {
        const next = store.rotateKey(key.id, { overlapSeconds: 0, actor })
        secrets.set(next.key.id, next.secret)
        send({ op, actor, id: key.id, newId: next.key.id, secret: next.secret })
      } else {
        send({ op, actor, id: key.id, deleted: store.deleteKey(key.id, { actor }) })
      }
    }
  } catch (e) {
    send({ op, actor, error: true, code: e.code, name: e.name, message: e.message })
  }
}

function run() {
  for (let i = 0; i < 3; i++) step()
  setTimeout(run, Math.floor(random() * 4))
}
run()
