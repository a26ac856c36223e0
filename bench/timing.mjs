// What a caller timing its own checks can tell apart (not part of `npm run bench`):
//   node bench/timing.mjs [keys=10000] [rounds=2000]
// Classes of secret, each timed in batches, the classes interleaved in a fresh random order every
// round; p10/p50/p90 per check. Read distributions, not single numbers: the machine is noisy.
//
//   unknown            well formed, its hint (last four characters) no key's
//   unknown, key hint  well formed, never issued, ending in a live key's hint
//   malformed, hint    a live key's secret with one body character changed
//   revoked            a revoked key's own secret
//   live               a live key's own secret (allowed)
//   memo near-miss @i  a secret remembered by the memo, with character i changed: the memo's `===`
//                      reads the strings up to their first difference (isAllowed only)
//
// Known and accepted: a hint that is a key's costs a SHA-256 (core) or a native call (isAllowed)
// that a hint that is no key's does not. Hints are 4 of the checksum's 6 characters (about 24 bits
// of the CRC32 of 256 random bits), shown in listings: they shorten no guess of a secret.

import { crc32 } from 'node:zlib'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const { KeyStore } = require('../index.js')
const native = require('../lib/native.js')

const KEYS = Number(process.argv[2] ?? 10_000)
const ROUNDS = Number(process.argv[3] ?? 2_000)
const BATCH = 500
const DIGITS = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'

const base62 = (n, width) => Array.from({ length: width }, (_, i) => DIGITS[Math.floor(n / 62 ** (width - 1 - i)) % 62]).join('')
const randomText = (n) => Array.from({ length: n }, () => DIGITS[Math.floor(Math.random() * 62)]).join('')
const wellFormed = () => {
  const body = `kg_${randomText(43)}`
  return body + base62(crc32(body) >>> 0, 6)
}
/** The same text in a string object of its own, as a server receives it. */
const fresh = (text) => Buffer.from(text, 'latin1').toString('latin1')
const changedAt = (text, i) => text.slice(0, i) + (text[i] === 'A' ? 'B' : 'A') + text.slice(i + 1)

const expiresAt = new Date(Date.now() + 86_400_000)
const store = KeyStore.inMemory()
store.putUser({ id: 'u', rights: ['*:*'] })
const handle = native.storeInMemory({})
native.putUser(handle, { id: 'u', status: 'active', rights: ['*:*'], roles: [] })
/** The same secrets in both stores' terms: the public store's, and a bare core without the memo. */
function issue(state) {
  const { key, secret } = store.createKey({ userId: 'u', description: '', expiresAt })
  const core = native.createKey(handle, { userId: 'u', description: '', expiresAt: expiresAt.getTime(), rules: [], state: 'active' })
  if (state === 'revoked') {
    store.setState(key.id, 'revoked')
    native.setState(handle, core.key.id, 'revoked')
  }
  return { secret, core: core.secret }
}
const keys = Array.from({ length: KEYS }, () => issue('active'))
const revoked = issue('revoked')
const live = keys[0]
const unknownWithHint = (secrets) => {
  const hints = new Set(secrets.map((s) => s.slice(-4)))
  for (;;) {
    const s = wellFormed()
    if (hints.has(s.slice(-4))) return s
  }
}
const unknown = wellFormed()
const classes = (pick) => ({
  unknown: unknown,
  'unknown, key hint': unknownWithHint(keys.map(pick)),
  'malformed, hint': changedAt(pick(live), 10),
  revoked: pick(revoked),
  live: pick(live),
})

// The memo remembers a call from its second check on.
for (let i = 0; i < 3; i++) store.isAllowed(fresh(live.secret), 'svc', 'api')
const memoProbes = { 'memo near-miss @3': changedAt(live.secret, 3), 'memo near-miss @45': changedAt(live.secret, 45) }

function measure(title, check, texts) {
  const list = Object.entries(texts).map(([name, text]) => ({ name, secret: fresh(text), times: [] }))
  for (let r = 0; r < ROUNDS; r++) {
    for (let i = list.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1))
      ;[list[i], list[j]] = [list[j], list[i]]
    }
    for (const c of list) {
      const secret = c.secret
      const start = process.hrtime.bigint()
      for (let k = 0; k < BATCH; k++) check(secret)
      c.times.push(Number(process.hrtime.bigint() - start) / BATCH)
    }
  }
  console.log(`${title} (${KEYS} keys, ${ROUNDS} rounds of ${BATCH}), ns per check:`)
  const at = (sorted, q) => sorted[Math.floor(sorted.length * q)].toFixed(1).padStart(7)
  for (const { name, times } of list.sort((a, b) => a.name.localeCompare(b.name))) {
    times.sort((a, b) => a - b)
    console.log(`  ${name.padEnd(20)} p10 ${at(times, 0.1)}  p50 ${at(times, 0.5)}  p90 ${at(times, 0.9)}`)
  }
}

measure(
  'core (native check, no memo)',
  (s) => native.check(handle, s, 'svc', 'api'),
  classes((k) => k.core),
)
measure('isAllowed (memo, hint filter, core)', (s) => store.isAllowed(s, 'svc', 'api'), { ...classes((k) => k.secret), ...memoProbes })
store.close()
native.storeClose(handle)
