// The checks keygate's memo cannot answer (issue 14): a wide key population, and rule
// sets at the documented limits. Imported by bench.mjs (`npm run bench`, and
// `--miss-only` for just these and cold/memory); `wide` runs in child processes, one per
// implementation (`node --expose-gc bench/miss.mjs --child-wide <name>`, which then runs a
// pass for each `pass` line on its stdin), so that their 200,000 keys do not grow the heap the
// other workloads run in; their passes are taken by turns.
//
//   wide         200,000 keys (5 rules each), one query per key, each asked once per pass in a
//                fresh random order: keygate (store.isAllowed, memo included) vs hashed JS; for
//                information, keygate core (the napi check without the memo) and the floor under
//                it: the same crossing reading the three strings only, and that plus finding the key
//   worst rights a user lacking the right: 1,000 own rights and 10 roles × 1,000 rights shaped
//                `*aaa…ab*:*aaa…ab*`; calls of two 256-character names, all distinct
//   worst rules  a key with 1,000 such rules (its user may call anything), distinct calls
//   exact rules  a key with 1,000 exact rules `svcN:apiN`, distinct calls (half allowed)
//
// Every answer is compared with the one the workload was built to give; a difference
// fails the run like a disagreement of the differential check.

import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

import { Oracle, ROLES, USERS, keySpecs, oneQueryPerKey, rng, rulePool } from './data.mjs'
import { fmtNs, fullGc, makeLoop, minorGc, summarize } from './harness.mjs'
import { HashedPeer, KeygateCorePeer, KeygateFloorPeer, KeygatePeer, KeyStore } from './peers.mjs'

const log = (...parts) => process.stderr.write(`${parts.join(' ')}\n`)

/** Longest pattern of one side of a rule: `*` + run + `b*` within 256 characters with the `:`. */
const SIDE_MAX = 127

/**
 * `count` distinct rules `*a{i}b*:*a{j}b*` with long runs of `a` (the shape that makes a
 * backtracking matcher try every start position), skipping the first `skip` of the sequence.
 */
export function worstRules(count, skip = 0) {
  const runs = SIDE_MAX - 3
  const rules = []
  for (let n = skip; rules.length < count; n++) {
    const i = runs - (n % runs)
    const j = runs - Math.floor(n / runs)
    rules.push(`*${'a'.repeat(i)}b*:*${'a'.repeat(j)}b*`)
  }
  return rules
}

/** A 256-character name of `a`s ending in the decimal `n` (never a `b`: no worst rule matches). */
function longName(n) {
  const tail = String(n)
  return 'a'.repeat(256 - tail.length) + tail
}

/**
 * Times distinct calls: rounds of `n` calls (n grown until a round takes ≥ 50 ms), each
 * call built by `call(i)` → { secret, service, api, expected } with a counter never reused, so
 * that no memo can answer. Returns ns per check (summary over the rounds).
 */
function timeDistinct(title, store, call, { rounds }) {
  let next = 0
  const round = (n) => {
    const secrets = new Array(n)
    const services = new Array(n)
    const apis = new Array(n)
    const expected = new Array(n)
    for (let i = 0; i < n; i++) {
      const c = call(next++)
      secrets[i] = c.secret
      services[i] = c.service
      apis[i] = c.api
      expected[i] = c.expected
    }
    minorGc()
    const start = process.hrtime.bigint()
    let wrong = -1
    for (let i = 0; i < n; i++) if (store.isAllowed(secrets[i], services[i], apis[i]) !== expected[i]) wrong = i
    const ns = Number(process.hrtime.bigint() - start)
    if (wrong >= 0) throw new Error(`${title}: keygate answered ${!expected[wrong]} to ${services[wrong]}:${apis[wrong]}, expected ${expected[wrong]}`)
    return ns
  }
  let n = 1
  while (n < 1 << 20 && round(n) < 50e6) n *= 2
  const samples = []
  for (let r = 0; r < rounds; r++) samples.push(round(n) / n)
  const result = { ...summarize(samples), callsPerRound: n }
  log(`  ${title}: ${fmtNs(result.median)} per check (${fmtNs(result.min)}–${fmtNs(result.max)}, ${n.toLocaleString('en-US')} distinct calls a round)`)
  return result
}

function expiry() {
  return new Date(Date.now() + 30 * 86_400_000)
}

/** A user lacking the right: 1,000 own rights and 10 roles of 1,000, all of the worst shape. */
export function timeWorstRights({ rounds }) {
  const store = KeyStore.inMemory()
  const roles = []
  for (let r = 0; r < 10; r++) {
    const name = `worst-role-${r}`
    store.putRole({ name, rights: worstRules(1000, 1000 * (r + 1)) })
    roles.push(name)
  }
  store.putUser({ id: 'worst', rights: worstRules(1000), roles })
  const { secret } = store.createKey({ userId: 'worst', description: '', expiresAt: expiry() })
  return timeDistinct(
    'worst rights (11,000 rights, user lacks the right)',
    store,
    (i) => ({
      secret,
      service: longName(i),
      api: longName(i + 1),
      expected: false,
    }),
    { rounds },
  )
}

/** A key with 1,000 rules of the worst shape, none matching. */
export function timeWorstRules({ rounds }) {
  const store = KeyStore.inMemory()
  store.putUser({ id: 'all', rights: ['*:*'] })
  const { secret } = store.createKey({ userId: 'all', description: '', expiresAt: expiry(), rules: worstRules(1000) })
  const call = (i) => ({ secret, service: longName(i), api: longName(i + 1), expected: false })
  return timeDistinct('worst rules (1,000 rules, none matching)', store, call, { rounds })
}

/**
 * Keys with the same 1,000 exact rules `svcN:apiN`. Call pair j asks key j mod KEYS for
 * rule n = (j / KEYS) mod 1000 (allowed) and for svcN:apiM, M ≠ N (denied); the case of
 * the letters changes with j / (KEYS × 1000), so no call repeats and the memo never answers.
 */
export function timeExactRules({ rounds }) {
  const KEYS = 256
  const store = KeyStore.inMemory()
  store.putUser({ id: 'all', rights: ['*:*'] })
  const rules = Array.from({ length: 1000 }, (_, n) => `svc${n}:api${n}`)
  const secrets = Array.from({ length: KEYS }, () => store.createKey({ userId: 'all', description: '', expiresAt: expiry(), rules }).secret)
  const variant = (text, v) => text.replace(/[a-z]/g, (c, at) => ((v >> at) & 1 ? c.toUpperCase() : c))
  const call = (i) => {
    const j = i >> 1
    const n = Math.floor(j / KEYS) % 1000
    const v = Math.floor(j / (KEYS * 1000))
    const secret = secrets[j % KEYS]
    const service = variant(`svc${n}`, v)
    return i % 2 === 0
      ? { secret, service, api: variant(`api${n}`, v >> 3), expected: true }
      : { secret, service, api: variant(`api${(n + 1 + (v % 998)) % 1000}`, v >> 3), expected: false }
  }
  return timeDistinct('exact rules (1,000 rules svcN:apiN)', store, call, { rounds })
}

// ---------------------------------------------------------------------------------------
// wide: one child process per implementation, their passes taken by turns.

const WIDE_NAMES = ['keygate', 'core', 'hashed', 'floor-read', 'floor-find']
/** The floor children (information): whether each finds the key, which its answers are also checked against instead of the queries' (see `KeygateFloorPeer`). */
const FLOOR_FINDS = { 'floor-read': false, 'floor-find': true }

/**
 * A wide child, spawned: `ready` resolves once its world is built, `pass()` runs one timed pass
 * and resolves to ns per check, `close()` ends it and resolves once it has exited (rejecting if
 * it failed), `kill()` ends it at once. Anything else it does (an exit, a line that is not its
 * JSON answer, a failed spawn) rejects what waits on it, naming it.
 */
function startWideChild(name, quick) {
  const args = ['--expose-gc', fileURLToPath(import.meta.url), '--child-wide', name]
  // 200,000 keys' RegExps compiled to native code exhaust V8's code space (the process
  // aborts): the JS peer's RegExps stay in V8's RegExp interpreter here.
  if (name === 'hashed') args.unshift('--regexp-tier-up-ticks=1000000', '--max-old-space-size=8192')
  if (quick) args.push('--quick')
  const child = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'inherit'] })
  const waiting = []
  let failed = null
  const fail = (error) => {
    failed ??= error
    for (const w of waiting.splice(0)) w.reject(failed)
  }
  const exited = ({ code, signal }) => new Error(`the wide child for ${name} exited with ${code ?? signal}`)
  const exit = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })))
  exit.then((status) => fail(exited(status)))
  child.on('error', (error) => fail(new Error(`the wide child for ${name}: ${error.message}`)))
  // A child that dies between passes must not crash the parent on its closed stdin.
  child.stdin.on('error', () => {})
  createInterface({ input: child.stdout }).on('line', (line) => {
    let answer
    try {
      answer = JSON.parse(line)
    } catch {
      fail(new Error(`the wide child for ${name} printed ${JSON.stringify(line.slice(0, 200))}`))
      return
    }
    waiting.shift()?.resolve(answer)
  })
  const next = () =>
    new Promise((resolve, reject) => {
      if (failed) reject(failed)
      else waiting.push({ resolve, reject })
    })
  const ready = next()
  // Awaited only through `pass` or `close`: a child failing while its world is built rejects it.
  ready.catch(() => {})
  return {
    ready,
    pass: () => {
      const answer = next()
      child.stdin.write('pass\n')
      return answer.then((out) => out.ns)
    },
    close: async () => {
      child.stdin.end()
      const status = await exit
      if (status.code !== 0) throw exited(status)
    },
    kill: () => child.kill(),
  }
}

/**
 * Wide, the implementations by turns: each pass of one follows a pass of the others, so a host
 * whose speed drifts (this one's does, by a third within minutes) slows all of them alike, and
 * each ratio is also taken pass by pass (`ratio`: the median of keygate's pass over hashed JS's
 * in the same turn). The children have exited when it returns (their CPU time then counts as
 * this process's, not as other load).
 */
export async function runWide({ quick }) {
  const rounds = quick ? 3 : 7
  const children = {}
  const samples = Object.fromEntries(WIDE_NAMES.map((name) => [name, []]))
  const ratios = []
  const floorRatios = Object.fromEntries(Object.keys(FLOOR_FINDS).map((name) => [name, []]))
  let keys = 0
  try {
    // Built one after another (each world takes a core and a few hundred MB while built).
    for (const name of WIDE_NAMES) {
      children[name] = startWideChild(name, quick)
      keys = (await children[name].ready).keys
    }
    for (let round = -1; round < rounds; round++) {
      const turn = {}
      // Rotated, so that no implementation always runs right after another's pass.
      for (let i = 0; i < WIDE_NAMES.length; i++) {
        const name = WIDE_NAMES[(i + round + 1) % WIDE_NAMES.length]
        turn[name] = await children[name].pass()
      }
      if (round < 0) continue
      for (const name of WIDE_NAMES) samples[name].push(turn[name])
      ratios.push(turn.keygate / turn.hashed)
      for (const name of Object.keys(FLOOR_FINDS)) floorRatios[name].push(turn[name] / turn.hashed)
    }
    await Promise.all(Object.values(children).map((child) => child.close()))
  } catch (error) {
    for (const child of Object.values(children)) child.kill()
    throw error
  }
  const out = {
    keys,
    ...Object.fromEntries(WIDE_NAMES.map((name) => [name, summarize(samples[name])])),
    ratio: summarize(ratios),
    floorRatio: Object.fromEntries(Object.entries(floorRatios).map(([name, r]) => [name, summarize(r)])),
  }
  const range = (s) => `${s.median.toFixed(3)} (${s.min.toFixed(3)}–${s.max.toFixed(3)})`
  log(
    `  wide (${out.keys.toLocaleString('en-US')} keys, each once per pass, by turns): keygate ${fmtNs(out.keygate.median)}, ` +
      `keygate core ${fmtNs(out.core.median)}, hashed JS ${fmtNs(out.hashed.median)}; keygate / hashed JS pass by pass ` +
      `${range(out.ratio)}\n  wide floor (information): reading the strings ${fmtNs(out['floor-read'].median)}, ` +
      `${range(out.floorRatio['floor-read'])} of hashed JS; and finding the key ${fmtNs(out['floor-find'].median)}, ` +
      range(out.floorRatio['floor-find']),
  )
  return out
}

/**
 * One implementation's wide child: builds the keys and queries (the same in every child:
 * seeded), says it is ready, then runs a pass, in a fresh order (the same sequence of orders
 * in every child), for each `pass` line it reads, answering its ns per check.
 */
async function childWide(name, quick) {
  const keys = quick ? 20_000 : 200_000
  const now = Date.now()
  const pool = rulePool()
  const specs = keySpecs('wide-keys', keys, pool, now)
  const queries = oneQueryPerKey('wide-queries', specs, new Oracle(), now)
  const floor = Object.hasOwn(FLOOR_FINDS, name)
  const peer = name === 'keygate' ? new KeygatePeer() : name === 'core' ? new KeygateCorePeer() : floor ? new KeygateFloorPeer(FLOOR_FINDS[name]) : new HashedPeer()
  for (const role of ROLES) peer.putRole(role.name, role.rights)
  for (const user of USERS) peer.putUser({ id: user.id, status: user.status, rights: user.rights, roles: user.roles })
  // Each issues its own secrets (the peer's are of keygate's shape).
  const secrets = specs.map((spec) => peer.createKey(spec))
  const target = name === 'keygate' ? peer.store : peer
  const loop = makeLoop()
  const r = rng('wide-order')
  const answer = (out) => process.stdout.write(`${JSON.stringify(out)}\n`)
  answer({ ready: true, keys })
  for await (const line of createInterface({ input: process.stdin })) {
    if (line !== 'pass') continue
    const order = Array.from({ length: keys }, (_, i) => i)
    for (let i = keys - 1; i > 0; i--) {
      const j = r.int(i + 1)
      ;[order[i], order[j]] = [order[j], order[i]]
    }
    const s = order.map((k) => secrets[k])
    const services = order.map((k) => queries[k].service)
    const apis = order.map((k) => queries[k].api)
    let want = 0
    for (let i = 0; i < keys; i++) if (floor ? FLOOR_FINDS[name] : queries[order[i]].expected) want += i + 1
    fullGc()
    const start = process.hrtime.bigint()
    const sum = loop(target, s, services, apis, keys)
    const ns = Number(process.hrtime.bigint() - start) / keys
    if (sum !== want) throw new Error(`wide: ${name} gave checksum ${sum}, the expected answers give ${want}`)
    answer({ ns })
  }
}

if (process.argv[2] === '--child-wide') {
  childWide(process.argv[3], process.argv.includes('--quick')).catch((error) => {
    console.error(error)
    process.exit(1)
  })
}

/** Every miss measure but cold and memory (bench.mjs times those beside its other workloads). */
export async function missMeasures({ quick, rounds }) {
  const out = {}
  out.wide = await runWide({ quick })
  fullGc()
  out.worstRights = timeWorstRights({ rounds })
  fullGc()
  out.worstRules = timeWorstRules({ rounds })
  fullGc()
  out.exactRules = timeExactRules({ rounds })
  return out
}
