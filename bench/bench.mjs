// keygate benchmark: store.isAllowed against what a Node developer would otherwise use.
//
//   npm run bench                      (node --expose-gc bench/bench.mjs)
//   node --expose-gc bench/bench.mjs --quick        smaller sizes, for trying the bench itself
//   node --expose-gc bench/bench.mjs --keep-going   time even when the differential check fails
//   node --expose-gc bench/bench.mjs --hot-only     checks, then only warm, scale, one loop and unknown (ratios on stderr)
//   node --expose-gc bench/bench.mjs --miss-only    checks, then only what the memo cannot answer (bench/miss.mjs):
//                                                   cold, wide, worst rights, worst rules, exact rules, memory per key
//
// Implementations (bench/peers.mjs):
//   keygate       store.isAllowed, the public API (includes lib/memo.js, its JS memo)
//   keygate core  the napi `check` of the Rust core without the JS memo (informational)
//   naive JS      Map plaintext secret → { state, expiresAt, user, RegExp } (wildcard-match)
//   hashed JS     the same keyed by the SHA-256 hex digest of the secret
//   casbin        node-casbin (hashed lookup + two enforceSync calls), on a 100-key policy
//
// Order of work: rule-semantics cross-check, differential checks (every implementation
// must give the same answer to every query; the first disagreement is printed and the
// run exits 1), then the timed workloads — implementations interleaved in every round
// (the starting one rotating), medians of the rounds, one minor GC before each sample —
// then memory in child processes (one per implementation), then the report: a text
// table and a markdown table on stdout, progress on stderr, everything in
// bench/results.json.

import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { readFileSync, writeFileSync, statSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

import {
  DOC_RULES,
  Oracle,
  ROLES,
  USERS,
  keySpec,
  keySpecs,
  makeQueries,
  makeQuery,
  oneQueryPerKey,
  probeCalls,
  rng,
  rulePool,
  ruleMatches,
  uniqueRules,
  SEED,
} from './data.mjs'
import { missMeasures } from './miss.mjs'
import { KeyStore, NaivePeer, HashedPeer, CasbinPeer, KeygatePeer, KeygateCorePeer, CORE_AVAILABLE, compileRules, globRuleToRegex, SHA256_API } from './peers.mjs'
import {
  cpuSnapshot,
  expectedSum,
  fmtInt,
  otherLoad,
  fmtNs,
  fmtRatio,
  freshCopy,
  fullGc,
  gcAvailable,
  machineInfo,
  makeLoop,
  markdownTable,
  minorGc,
  sleep,
  summarize,
  textTable,
} from './harness.mjs'

const HERE = dirname(fileURLToPath(import.meta.url))
const ARGS = process.argv.slice(2)
const QUICK = ARGS.includes('--quick')
const KEEP_GOING = ARGS.includes('--keep-going')
/** Only the checks and the warm, scale, one-loop and unknown timings, their ratios printed (for trying changes). */
const HOT_ONLY = ARGS.includes('--hot-only')
/** Only the checks, then cold, wide, the rule sets at the limits and memory per key (issue 14), their targets printed. */
const MISS_ONLY = ARGS.includes('--miss-only')

const CONFIG = {
  rounds: QUICK ? 3 : 7,
  warmKeys: 2_000,
  rulesPerKey: 5,
  warmQueries: 4_000,
  checksPerSample: QUICK ? 20_000 : 80_000,
  coldKeys: QUICK ? 5_000 : 20_000,
  unknownSecrets: QUICK ? 5_000 : 20_000,
  scaleKeys: QUICK ? 20_000 : 200_000,
  memoryKeys: QUICK ? 20_000 : 100_000,
  casbinKeys: 100,
  casbinQueries: 1_000,
  createKeysPerSample: QUICK ? 1_000 : 5_000,
  compileRules: 1_000,
}

const log = (...parts) => process.stderr.write(`${parts.join(' ')}\n`)
const label = (name) => NAMES[name] ?? name.replace(/^([^@]+)@(.*)$/, (_, base, at) => `${NAMES[base] ?? base} @${at}`)

const NAMES = {
  keygate: 'keygate',
  'keygate (memo)': 'keygate, repeated call',
  core: 'keygate core',
  naive: 'naive JS',
  hashed: 'hashed JS',
  'hashed-eager': 'hashed JS, RegExps compiled at insert',
  'hashed-warm': 'hashed JS, the same calls again (warm)',
  casbin: 'casbin',
}

// =======================================================================================
// Building a world: the same users, roles and key specs in every implementation.

function makePeer(name) {
  switch (name) {
    case 'keygate':
      return new KeygatePeer()
    case 'core':
      return new KeygateCorePeer()
    case 'naive':
      return new NaivePeer()
    case 'hashed':
      return new HashedPeer()
    case 'hashed-eager':
      return new HashedPeer({ eagerCompile: true })
    case 'casbin':
      return CasbinPeer.create()
    default:
      throw new Error(`unknown implementation ${name}`)
  }
}

async function setupUsers(peer, users = USERS, roles = ROLES) {
  for (const role of roles) await peer.putRole(role.name, role.rights)
  for (const user of users) await peer.putUser({ id: user.id, status: user.status, rights: user.rights, roles: user.roles })
}

/**
 * V8 caches compiled RegExps by source: two JS peers compiling the same rule list would
 * share compiled code, and the second one's "first check" would not be cold. Each JS peer
 * therefore gets the key's rules in its own rotation (same set, same answers).
 */
const ROTATION = { naive: 0, hashed: 1, casbin: 2, 'hashed-eager': 3 }
function rotated(rules, name) {
  const by = (ROTATION[name] ?? 0) % Math.max(1, rules.length)
  return by === 0 ? rules : [...rules.slice(by), ...rules.slice(0, by)]
}

/**
 * Creates a world in each named implementation. keygate issues the secrets; the JS peers
 * insert keys under those same secrets; keygate core issues its own (a separate store).
 * Returns { peers, targets, secrets: name → secret[], handles: name → handle[] }.
 */
async function buildWorld(label, specs, names, { users = USERS, roles = ROLES } = {}) {
  const t0 = Date.now()
  const world = { label, specs, peers: {}, targets: {}, secrets: {}, handles: {} }
  for (const name of names) {
    const peer = await makePeer(name)
    await setupUsers(peer, users, roles)
    world.peers[name] = peer
    world.targets[name] = name === 'keygate' ? peer.store : peer
  }
  const issuers = names.filter((n) => n === 'keygate' || n === 'core')
  if (!issuers.includes('keygate')) throw new Error('a world needs keygate to issue secrets')
  for (const name of issuers) {
    const peer = world.peers[name]
    const secrets = new Array(specs.length)
    const handles = new Array(specs.length)
    for (let i = 0; i < specs.length; i++) {
      const h = peer.create(specs[i])
      secrets[i] = h.secret
      handles[i] = h
    }
    world.secrets[name] = secrets
    world.handles[name] = handles
  }
  for (const name of names) {
    if (issuers.includes(name)) continue
    const peer = world.peers[name]
    const secrets = world.secrets.keygate
    const handles = new Array(specs.length)
    for (let i = 0; i < specs.length; i++) {
      const spec = specs[i]
      handles[i] = await peer.addKey(secrets[i], { ...spec, rules: rotated(spec.rules, name) })
    }
    world.secrets[name] = secrets
    world.handles[name] = handles
  }
  log(`  built ${label}: ${specs.length.toLocaleString('en-US')} keys in ${names.join(', ')} (${((Date.now() - t0) / 1000).toFixed(1)} s)`)
  return world
}

// =======================================================================================
// Differential checks.

const failures = []

/** Workloads during which other processes kept a noticeable share of the CPUs busy. */
const noisy = []
function noteLoad(title, other) {
  if (other !== null && other > 0.15) noisy.push(`${title}: ${other.toFixed(2)} CPUs`)
}

function fail(message) {
  failures.push(message)
  log(`\n*** DISAGREEMENT ***\n${message}\n`)
  if (!KEEP_GOING) {
    log('The benchmark stops here (run with --keep-going to time anyway).')
    process.exit(1)
  }
}

/** A node -e script that rebuilds the key of a failing case in a fresh store and asks keygate. */
function reproduction(world, c) {
  const spec = world.specs[c.k]
  const users = world.users ?? USERS
  const user = users.find((u) => u.id === spec.userId)
  const roles = (world.roles ?? ROLES).filter((r) => user?.roles.includes(r.name))
  const script = [
    "const { KeyStore } = require('./index.js')",
    'const s = KeyStore.inMemory()',
    ...roles.map((r) => `s.putRole(${JSON.stringify({ name: r.name, rights: r.rights })})`),
    `s.putUser(${JSON.stringify({ id: user?.id, status: user?.status, rights: user?.rights, roles: user?.roles })})`,
    `const k = s.createKey(${JSON.stringify({
      userId: spec.userId,
      description: '',
      rules: spec.rules,
      state: spec.state === 'suspended' ? 'suspended' : 'active',
    }).replace(/}$/, `, expiresAt: new Date(${spec.expiresAt}) }`)})`,
    ...(spec.state === 'revoked' ? ["s.setState(k.key.id, 'revoked')"] : []),
    `console.log(s.isAllowed(k.secret, ${JSON.stringify(c.service)}, ${JSON.stringify(c.api)}), s.explain(k.secret, ${JSON.stringify(c.service)}, ${JSON.stringify(c.api)}))`,
  ].join('\n')
  return `    node -e '${script.replace(/'/g, "'\\''")}'`
}

function describeCase(world, c, answers) {
  const lines = [`  check: ${c.label}`]
  lines.push(`  call: service=${JSON.stringify(c.service)} api=${JSON.stringify(c.api)}`)
  if (c.k !== undefined) {
    const spec = world.specs[c.k]
    lines.push(`  key #${c.k}: user=${spec.userId} state=${spec.state} expiresAt=${new Date(spec.expiresAt).toISOString()}`)
    lines.push(`  key rules: ${JSON.stringify(spec.rules)}`)
    const user = (world.users ?? USERS).find((u) => u.id === spec.userId)
    if (user) lines.push(`  user: status=${user.status} rights=${JSON.stringify(user.rights)} roles=${JSON.stringify(user.roles)}`)
  }
  lines.push(`  expected (oracle): ${c.expected}`)
  for (const [name, answer] of Object.entries(answers)) lines.push(`  ${NAMES[name] ?? name}: ${answer}`)
  if (world.peers.keygate) {
    const secret = c.secretOf('keygate')
    lines.push(`  keygate explain: ${JSON.stringify(world.peers.keygate.store.explain(secret, c.service, c.api))}`)
  }
  if (c.k !== undefined) lines.push(`  reproduce (from the repo root):\n${reproduction(world, c)}`)
  return lines.join('\n')
}

/**
 * Asks every implementation of `world` every case; keygate is asked twice (its first
 * answer comes from the core, the repeat may come from its memo). Disagreement with the
 * oracle or among implementations fails the run.
 */
function differential(title, world, cases) {
  const names = Object.keys(world.peers)
  const counts = Object.fromEntries([...names, 'keygate (memo)'].map((n) => [n, 0]))
  let allowed = 0
  let first = null
  for (const c of cases) {
    const answers = {}
    for (const name of names) {
      answers[name] = world.targets[name].isAllowed(c.secretOf(name), c.service, c.api)
      if (name === 'keygate') answers['keygate (memo)'] = world.targets[name].isAllowed(c.secretOf(name), c.service, c.api)
    }
    if (c.expected) allowed++
    let bad = false
    for (const [name, answer] of Object.entries(answers)) {
      if (answer !== c.expected) {
        counts[name]++
        bad = true
      }
    }
    if (bad && first === null) first = describeCase(world, c, answers)
  }
  const total = Object.values(counts).reduce((a, b) => a + b, 0)
  log(
    `  ${title}: ${cases.length.toLocaleString('en-US')} calls, ${allowed} allowed (${((100 * allowed) / cases.length).toFixed(1)} %), ` +
      (total === 0 ? 'all implementations agree' : `disagreements ${JSON.stringify(counts)}`),
  )
  const result = { title, calls: cases.length, allowed, disagreements: counts }
  if (total > 0) fail(`${title}: implementations disagree ${JSON.stringify(counts)}; first:\n${first}`)
  return result
}

function queryCases(label, queries) {
  return queries.map((q) => ({ label, k: q.k, service: q.service, api: q.api, expected: q.expected, secretOf: null }))
}

function bindSecrets(world, cases) {
  for (const c of cases) if (c.secretOf === null) c.secretOf = (name) => world.secrets[name][c.k]
  return cases
}

/** Secrets that must be rejected before any lookup (bad prefix, checksum, length, alphabet…). */
function malformations(secret) {
  const body = secret.slice(secret.indexOf('_') + 1)
  const flip = (s, i) => s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1)
  return [
    '',
    'kg',
    'kg_',
    `xx_${body}`,
    `KG_${body}`,
    flip(secret, secret.length - 1),
    flip(secret, 5),
    secret.slice(0, -1),
    `${secret}a`,
    ` ${secret}`,
    `${secret}\n`,
    `ESP-APIKEY ${secret}`,
    secret.toUpperCase(),
    secret.replace(/.$/, 'é'),
    '0123456789abcdef0123456789abcdef',
    `kg_${'A'.repeat(80)}`,
    `kg_${'A'.repeat(4000)}`,
  ]
}

// =======================================================================================
// Rule semantics: every rule of the pool against every probe call, one key per rule.

async function ruleSemanticsCheck(pool) {
  const rules = [...new Set([...DOC_RULES, ...pool])]
  const calls = probeCalls()
  const store = KeyStore.inMemory()
  store.putUser({ id: 'all', rights: ['*:*'] })
  const expires = new Date(Date.now() + 86_400_000)
  const secrets = rules.map((rule) => store.createKey({ userId: 'all', description: '', expiresAt: expires, rules: [rule] }).secret)
  const disagreements = { keygate: 0, 'wildcard-match': 0, 'casbin regex': 0 }
  let first = null
  let matches = 0
  for (let i = 0; i < rules.length; i++) {
    const wc = compileRules([rules[i]])
    const cb = new RegExp(globRuleToRegex(rules[i]))
    for (const call of calls) {
      const expected = ruleMatches(rules[i], call.service, call.api)
      if (expected) matches++
      const answers = {
        keygate: store.isAllowed(secrets[i], call.service, call.api),
        'wildcard-match': wc.test(`${call.service}:${call.api}`),
        'casbin regex': cb.test(`${call.service}:${call.api}`.toLowerCase()),
      }
      for (const [name, answer] of Object.entries(answers)) {
        if (answer !== expected) {
          disagreements[name]++
          first ??= `rule ${JSON.stringify(rules[i])} on ${call.service}:${call.api}: the oracle says ${expected}, ${JSON.stringify(answers)}`
        }
      }
    }
  }
  const pairs = rules.length * calls.length
  const total = Object.values(disagreements).reduce((a, b) => a + b, 0)
  log(
    `  rule semantics: ${rules.length} rules × ${calls.length} calls = ${pairs.toLocaleString('en-US')} pairs, ${matches.toLocaleString('en-US')} matches, ` +
      (total === 0 ? 'keygate, wildcard-match and the casbin regexes agree with the oracle' : `disagreements ${JSON.stringify(disagreements)}`),
  )
  if (total > 0) fail(`rule semantics: ${JSON.stringify(disagreements)}; first: ${first}`)
  return { rules: rules.length, calls: calls.length, matches, disagreements }
}

// =======================================================================================
// Edge cases: no rules, states, inactive users, roles, changes after creation, expiry.

async function edgeCases(names) {
  const now = Date.now()
  const DAY = 86_400_000
  const users = [
    { id: 'edge-active', status: 'active', roles: [], rights: ['session:*', 'data:entity*', 'apps/com.hornbill.core/*:*'] },
    { id: 'edge-role', status: 'active', roles: ['helpdesk'], rights: ['session:getSessionInfo'] },
    { id: 'edge-archived', status: 'archived', roles: [], rights: ['*:*'] },
    { id: 'edge-norights', status: 'active', roles: [], rights: [] },
    { id: 'edge-flip', status: 'active', roles: [], rights: ['session:*', 'admin:*'] },
  ]
  const roles = ROLES.map((r) => ({ ...r, rights: [...r.rights] }))
  const shortExpiry = now + 1500
  const specs = [
    { userId: 'edge-active', state: 'active', expiresAt: now + 30 * DAY, rules: [] },
    {
      userId: 'edge-active',
      state: 'active',
      expiresAt: now + 30 * DAY,
      rules: ['session:get*', 'data:entity???Record', 'apps/com.hornbill.core/*:*', 'admin:keysafeGetKey', '*:userLogon'],
    },
    { userId: 'edge-active', state: 'suspended', expiresAt: now + 30 * DAY, rules: [] },
    { userId: 'edge-active', state: 'revoked', expiresAt: now + 30 * DAY, rules: ['session:*'] },
    { userId: 'edge-archived', state: 'active', expiresAt: now + 30 * DAY, rules: [] },
    { userId: 'edge-norights', state: 'active', expiresAt: now + 30 * DAY, rules: [] },
    { userId: 'edge-role', state: 'active', expiresAt: now + 30 * DAY, rules: ['apps/com.hornbill.servicemanager/Requests:hold*', 'session:*', 'DATA:ENTITYGET*'] },
    { userId: 'edge-flip', state: 'active', expiresAt: now + 30 * DAY, rules: ['session:*'] },
    { userId: 'edge-active', state: 'active', expiresAt: shortExpiry, rules: [] },
    { userId: 'edge-active', state: 'active', expiresAt: shortExpiry, rules: ['session:get*'] },
    { userId: 'edge-active', state: 'active', expiresAt: now + 30 * DAY, rules: ['data:*'] },
    { userId: 'edge-active', state: 'active', expiresAt: now + 30 * DAY, rules: ['session:userLogon'] },
    { userId: 'edge-active', state: 'active', expiresAt: now + 30 * DAY, rules: ['*:*'] },
    { userId: 'edge-role', state: 'active', expiresAt: now + 30 * DAY, rules: [] },
  ]
  const world = await buildWorld('edge world', specs, names, { users, roles })
  world.users = users
  world.roles = roles
  const calls = probeCalls()
  const cases = (phase) => {
    const oracle = new Oracle(users, roles)
    const at = Date.now()
    const out = []
    for (let k = 0; k < specs.length; k++) {
      for (const call of calls) {
        out.push({
          label: `edge ${phase}`,
          k,
          service: call.service,
          api: call.api,
          expected: oracle.decide(specs[k], call.service, call.api, at),
          secretOf: (name) => world.secrets[name][k],
        })
      }
    }
    return out
  }
  const results = []
  results.push(differential('edge cases, as created', world, cases('as created')))

  // Changes after creation must apply to the very next check.
  const flip = users.find((u) => u.id === 'edge-flip')
  flip.status = 'suspended'
  const helpdesk = roles.find((r) => r.name === 'helpdesk')
  helpdesk.rights = ['activity:*', 'data:entityGetRecord']
  specs[10] = { ...specs[10], state: 'suspended' }
  specs[11] = { ...specs[11], rules: ['data:entityGetRecord', 'session:*Info'] }
  for (const name of names) {
    const peer = world.peers[name]
    await peer.putUser({ id: flip.id, status: flip.status, rights: flip.rights, roles: flip.roles })
    await peer.putRole(helpdesk.name, helpdesk.rights)
    await peer.setKeyState(world.handles[name][10], 'suspended')
    await peer.setKeyRules(world.handles[name][11], rotated(specs[11].rules, name))
  }
  results.push(differential('edge cases, after changes', world, cases('after changes')))

  const wait = shortExpiry + 250 - Date.now()
  if (wait > 0) await sleep(wait)
  results.push(differential('edge cases, after two keys expired', world, cases('after expiry')))
  return results
}

// =======================================================================================
// Timing.

function rotate(list, by) {
  const n = ((by % list.length) + list.length) % list.length
  return [...list.slice(n), ...list.slice(0, n)]
}

/**
 * Runs `rounds` recorded rounds (after `warmupRounds` unrecorded ones). In each round every
 * implementation runs one sample, in rotated order; `prepare(name, round, ctx)` builds the
 * sample's arguments outside the timing: { target, secrets, services, apis, n, expected }.
 * Each sample's checksum must equal the one the expected answers give.
 */
async function timeWorkload(title, names, { rounds = CONFIG.rounds, warmupRounds = 2, setupRound, prepare, sharedLoop = false }) {
  const shared = sharedLoop ? makeLoop() : null
  const loops = Object.fromEntries(names.map((n) => [n, shared ?? makeLoop()]))
  const cpu0 = cpuSnapshot()
  const samples = Object.fromEntries(names.map((n) => [n, []]))
  const t0 = Date.now()
  for (let round = -warmupRounds; round < rounds; round++) {
    const ctx = setupRound ? await setupRound(round) : undefined
    for (const name of rotate(names, round + warmupRounds)) {
      const s = await prepare(name, round, ctx)
      const want = s.expectedSum ?? expectedSum(s.expected, s.n)
      minorGc()
      const start = process.hrtime.bigint()
      const sum = loops[name](s.target, s.secrets, s.services, s.apis, s.n)
      const end = process.hrtime.bigint()
      if (sum !== want) {
        fail(
          `${title}: ${label(name)} gave checksum ${sum}, the expected answers give ${want} (round ${round}); ` +
            'some answers differ from the differential-checked ones',
        )
      }
      if (round >= 0) samples[name].push(Number(end - start) / s.n)
    }
    if (ctx?.dispose) ctx.dispose()
  }
  const result = Object.fromEntries(names.map((n) => [n, summarize(samples[n])]))
  const other = otherLoad(cpu0, cpuSnapshot())
  for (const n of names) result[n].otherLoad = other
  noteLoad(title, other)
  log(
    `  ${title} (${((Date.now() - t0) / 1000).toFixed(1)} s${other === null ? '' : `, other processes ${other.toFixed(2)} CPUs`}): ` +
      names.map((n) => `${label(n)} ${fmtNs(result[n].median)}`).join(', '),
  )
  return result
}

/** Arguments for cycling a fixed query list (the same string objects every time). */
function cycled(world, name, queries, n) {
  const key = `cycled:${name}:${queries.length}`
  world.cache ??= new Map()
  let s = world.cache.get(key)
  if (s === undefined) {
    s = {
      target: world.targets[name],
      secrets: queries.map((q) => world.secrets[name][q.k]),
      services: queries.map((q) => q.service),
      apis: queries.map((q) => q.api),
      expected: queries.map((q) => q.expected),
    }
    world.cache.set(key, s)
  }
  return { ...s, n, expectedSum: expectedSum(s.expected, n) }
}

/** Arguments with a fresh copy of every string for every call (as a server receives them). */
function freshArgs(world, name, queries, n) {
  const secrets = new Array(n)
  const services = new Array(n)
  const apis = new Array(n)
  const expected = new Array(n)
  for (let i = 0; i < n; i++) {
    const q = queries[i % queries.length]
    secrets[i] = freshCopy(world.secrets[name][q.k])
    services[i] = freshCopy(q.service)
    apis[i] = freshCopy(q.api)
    expected[i] = q.expected
  }
  return { target: world.targets[name], secrets, services, apis, n, expected }
}

/**
 * cold: the first check of each of CONFIG.coldKeys new keys, a fresh world every round.
 * `hashed-warm` is the hashed JS peer asked the same calls a second time (the target
 * compares keygate's first check with the peer's warm one).
 */
async function timeCold(names, pool, oracle, now) {
  const builders = names.filter((n) => n !== 'hashed-warm')
  return timeWorkload('cold', [...names, 'hashed-eager', 'hashed-warm'], {
    warmupRounds: 1,
    setupRound: async (round) => {
      const specs = keySpecs(`cold-keys-${round}`, CONFIG.coldKeys, pool, now)
      const queries = oneQueryPerKey(`cold-queries-${round}`, specs, oracle, now)
      const world = await buildWorld(`cold world, round ${round}`, specs, [...builders, 'hashed-eager'])
      fullGc()
      return { world, queries }
    },
    prepare: (entry, _round, { world, queries }) => {
      const name = entry === 'hashed-warm' ? 'hashed' : entry
      const args = {
        target: world.targets[name],
        secrets: queries.map((q) => freshCopy(world.secrets[name][q.k])),
        services: queries.map((q) => q.service),
        apis: queries.map((q) => q.api),
        n: queries.length,
        expected: queries.map((q) => q.expected),
      }
      // Untimed first pass: the peer's RegExps compiled and its code warm for these keys.
      if (entry === 'hashed-warm') for (let i = 0; i < args.n; i++) args.target.isAllowed(args.secrets[i], args.services[i], args.apis[i])
      return args
    },
  })
}

/** Timed workloads and memory of the miss measures only (`--miss-only`), with their targets. */
async function missOnly(results, names, pool, oracle, NOW, addonInfo) {
  log(`\nTiming (${CONFIG.rounds} rounds; ns per check, median)`)
  fullGc()
  const W = results.workloads
  W.cold = await timeCold(names, pool, oracle, NOW)
  fullGc()
  results.miss = await missMeasures({ quick: QUICK, rounds: CONFIG.rounds })
  log('\nMemory (child processes)')
  results.memory = runMemory(['keygate', 'hashed'], addonInfo, ['created'])
  results.ratios = missRatios(results)
  const rows = results.ratios.map((r) => [r.name, r.figure, r.spread, r.ratio, r.target, r.pass ? 'PASS' : 'FAIL'])
  const m = results.machine
  const out = ['', `keygate miss measures — ${results.startedAt}${results.quick ? ' (--quick: reduced sizes)' : ''}, commit ${results.commit ?? '?'}`]
  out.push(`machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, ${m.os}, Node ${m.node}; ${CONFIG.rounds} rounds, medians (min–max)`)
  out.push(`differential check: ${failures.length > 0 ? `FAILED (${failures.length})` : 'all implementations gave the same answers to every call'}`)
  out.push(
    '',
    textTable(['measure', 'keygate', 'min–max', 'ratio', 'target', 'result'], rows),
    '',
    markdownTable(['measure', 'keygate', 'min–max', 'ratio', 'target', 'result'], rows),
    ...wideFloorLines(results.miss.wide),
  )
  process.stdout.write(`${out.join('\n')}\n`)
  results.failures = failures
  writeFileSync(join(HERE, 'results-miss.json'), `${JSON.stringify(results, null, 2)}\n`)
  log('\nresults written to bench/results-miss.json')
  if (failures.length > 0) process.exitCode = 1
}

/**
 * Wide's information table, with its heading: the core's check without the memo, and the floor
 * under it (the same crossing reading the three strings, and that plus finding the key), each
 * over hashed JS.
 */
function wideFloorLines(wide) {
  const ratio = (name) => {
    const r = wide.floorRatio?.[name]
    return r ? `${fmtRatio(r.median)} (${fmtRatio(r.min)}–${fmtRatio(r.max)})` : fmtRatio(wide[name].median / wide.hashed.median)
  }
  const rows = [
    ['keygate core (no memo) / hashed JS', 'core'],
    ['floor: the call reading the three strings / hashed JS', 'floor-read'],
    ['floor: + the check begun and the key found / hashed JS', 'floor-find'],
  ]
    .filter(([, name]) => wide[name])
    .map(([label, name]) => [label, fmtNs(wide[name].median), `${fmtNs(wide[name].min)}–${fmtNs(wide[name].max)}`, ratio(name)])
  return ['', 'wide, for information: what every check pays before deciding (see bench/miss.mjs)', textTable(['measure', 'time', 'min–max', 'ratio (passes)'], rows)]
}

/** The issue-14 targets, from results.workloads.cold, results.miss and results.memory. */
function missRatios(results) {
  const W = results.workloads
  const X = results.miss
  const M = results.memory
  const ms = (ns) => `${(ns / 1e6).toFixed(ns >= 1e7 ? 0 : 2)} ms`
  const spread = (s, unit = fmtNs) => `${unit(s.min)}–${unit(s.max)}`
  return [
    {
      name: `cold: keygate first check / hashed JS warm (${fmtInt(CONFIG.coldKeys)} new keys)`,
      figure: fmtNs(W.cold.keygate.median),
      spread: spread(W.cold.keygate),
      value: W.cold.keygate.median / W.cold['hashed-warm'].median,
      limit: 0.35,
    },
    {
      name: `wide: keygate / hashed JS (${fmtInt(X.wide.keys)} keys, each once per pass)`,
      figure: fmtNs(X.wide.keygate.median),
      spread: spread(X.wide.keygate),
      value: X.wide.ratio.median,
      limit: 0.15,
    },
    { name: 'worst rights: per uncached check', figure: ms(X.worstRights.median), spread: spread(X.worstRights, ms), value: X.worstRights.median, limit: 2e6, unit: ms },
    { name: 'worst rules: per uncached check', figure: ms(X.worstRules.median), spread: spread(X.worstRules, ms), value: X.worstRules.median, limit: 0.5e6, unit: ms },
    {
      name: '1,000 exact rules: per uncached check',
      figure: fmtNs(X.exactRules.median),
      spread: spread(X.exactRules),
      value: X.exactRules.median,
      limit: 2000,
      unit: fmtNs,
    },
    {
      name: 'memory per key: keygate / hashed JS (RSS, keys created)',
      figure: `${fmtInt(M.keygate.created.perKey.rss)} B`,
      spread: `hashed JS ${fmtInt(M.hashed.created.perKey.rss)} B`,
      value: M.keygate.created.perKey.rss / M.hashed.created.perKey.rss,
      limit: 0.5,
    },
  ].map((r) => ({ ...r, ratio: r.unit ? '—' : fmtRatio(r.value), target: r.unit ? `≤ ${r.unit(r.limit)}` : `≤ ${r.limit}×`, pass: r.value <= r.limit }))
}

/** Keys per second of createKey, interleaved rounds, fresh store per sample. */
async function timeCreateKey(names, pool, now) {
  const samples = Object.fromEntries(names.map((n) => [n, []]))
  const count = CONFIG.createKeysPerSample
  for (let round = -1; round < CONFIG.rounds; round++) {
    for (const [i, name] of rotate(names, round + 1).entries()) {
      // Distinct keys per sample and implementation (no compile cache can help).
      const specs = keySpecs(`createKey-${round}-${i}-${name}`, count, pool, now)
      const peer = await makePeer(name)
      await setupUsers(peer)
      fullGc()
      const start = process.hrtime.bigint()
      for (let k = 0; k < count; k++) peer.createKey(specs[k])
      const end = process.hrtime.bigint()
      if (round >= 0) samples[name].push(count / (Number(end - start) / 1e9))
    }
  }
  const result = Object.fromEntries(names.map((n) => [n, summarize(samples[n])]))
  log(`  createKey: ${names.map((n) => `${NAMES[n]} ${fmtInt(result[n].median)} keys/s`).join(', ')}`)
  return result
}

/** Time to compile 1,000 distinct rules, in ms (medians). */
function timeCompile() {
  const seen = new Set()
  const r = rng('compile-rules')
  const kinds = ['keygate createKey', 'keygate validateRule', 'wildcard-match', 'wildcard-match + first test']
  const samples = Object.fromEntries(kinds.map((k) => [k, []]))
  const expires = new Date(Date.now() + 86_400_000)
  const ms = (a, b) => Number(b - a) / 1e6
  for (let round = -1; round < CONFIG.rounds; round++) {
    for (const kind of rotate(kinds, round + 1)) {
      const rules = uniqueRules(r, CONFIG.compileRules, seen)
      let start, end
      if (kind === 'keygate createKey') {
        const store = KeyStore.inMemory()
        store.putUser({ id: 'u', rights: ['*:*'] })
        fullGc()
        start = process.hrtime.bigint()
        store.createKey({ userId: 'u', description: '', expiresAt: expires, rules })
        end = process.hrtime.bigint()
      } else if (kind === 'keygate validateRule') {
        fullGc()
        start = process.hrtime.bigint()
        for (let i = 0; i < rules.length; i++) KeyStore.validateRule(rules[i])
        end = process.hrtime.bigint()
      } else {
        fullGc()
        start = process.hrtime.bigint()
        const re = compileRules(rules)
        if (kind === 'wildcard-match + first test') re.test('session:userLogon') // V8 compiles a RegExp at its first use
        end = process.hrtime.bigint()
      }
      if (round >= 0) samples[kind].push(ms(start, end))
    }
  }
  const result = Object.fromEntries(kinds.map((k) => [k, summarize(samples[k])]))
  log(`  compile 1,000 rules: ${kinds.map((k) => `${k} ${result[k].median.toFixed(2)} ms`).join(', ')}`)
  return result
}

// =======================================================================================
// Memory: one child process per implementation and mode.

async function childMemory(name, mode) {
  const now = Date.now()
  const pool = rulePool()
  const oracle = new Oracle()
  const peer = await makePeer(name)
  await setupUsers(peer)
  const r = rng('memory-keys')
  const rq = rng('memory-queries')
  const cache = new Map()
  // Warm the code paths on a throw-away store so that lazily compiled code is not counted.
  {
    const scratch = await makePeer(name)
    await setupUsers(scratch)
    const rs = rng('memory-scratch')
    for (let i = 0; i < 200; i++) {
      const spec = keySpec(rs, pool, now)
      const secret = scratch.createKey(spec)
      const q = makeQuery(rs, spec, oracle, cache, now)
      scratch.isAllowed(freshCopy(secret), q.service, q.api)
    }
  }
  // V8 grows its young generation with the allocation rate and keeps it; churn garbage
  // first so that this one-time growth lands before the baseline, not in the per-key figure.
  let _junk = null
  for (let i = 0; i < 3_000_000; i++) _junk = { i, list: [i, i + 1], text: `x${i}` }
  _junk = null
  const settle = async () => {
    fullGc()
    await sleep(200)
    fullGc()
    return process.memoryUsage()
  }
  const N = CONFIG.memoryKeys
  const before = await settle()
  const out = { impl: name, mode, keys: N, addon: addonFingerprint() }
  if (mode === 'created') {
    // The store alone: nothing but the store keeps the keys (secrets are dropped).
    const half = N >> 1
    let mid = null
    for (let i = 0; i < N; i++) {
      if (i === half) mid = await settle()
      peer.createKey(keySpec(r, pool, now))
    }
    const after = await settle()
    out.rss = { before: before.rss, mid: mid.rss, after: after.rss }
    out.perKey = { rss: (after.rss - before.rss) / N, heapUsed: (after.heapUsed - before.heapUsed) / N }
    out.marginal = { rss: (after.rss - mid.rss) / (N - half), heapUsed: (after.heapUsed - mid.heapUsed) / (N - half) }
  } else {
    // What the first check of every key adds (compiled RegExps for the JS peers, the memo
    // for keygate): create all keys (keeping their secrets and one query each), then check
    // each key once with a fresh copy of its secret.
    const secrets = new Array(N)
    const queries = new Array(N)
    for (let i = 0; i < N; i++) {
      const spec = keySpec(r, pool, now)
      secrets[i] = peer.createKey(spec)
      queries[i] = makeQuery(rq, spec, oracle, cache, now)
    }
    const mid = await settle()
    let allowed = 0
    for (let i = 0; i < N; i++) if (peer.isAllowed(freshCopy(secrets[i]), queries[i].service, queries[i].api)) allowed++
    await sleep(1200) // keygate's memo hands its use log to the core after ~1 s
    const after = await settle()
    out.allowed = allowed
    out.rss = { before: before.rss, mid: mid.rss, after: after.rss }
    out.addedByFirstCheck = { rss: (after.rss - mid.rss) / N, heapUsed: (after.heapUsed - mid.heapUsed) / N }
    out.alive = secrets.length + queries.length
  }
  out.alive = (out.alive ?? 0) + (peer ? 1 : 0) // keeps the store (and arrays) reachable until here
  process.stdout.write(`${JSON.stringify(out)}\n`)
}

const buildChanged = []

function runMemory(names, expectedAddon, modes = ['created', 'used']) {
  const out = {}
  for (const mode of modes) {
    for (const name of names) {
      const args = ['--expose-gc', fileURLToPath(import.meta.url), '--child-memory', name, mode]
      if (QUICK) args.push('--quick')
      const child = spawnSync(process.execPath, args, { encoding: 'utf8', maxBuffer: 1 << 24 })
      if (child.status !== 0) {
        log(child.stderr)
        throw new Error(`memory child ${name}/${mode} exited with ${child.status}`)
      }
      const line = child.stdout.trim().split('\n').pop()
      out[name] ??= {}
      out[name][mode] = JSON.parse(line)
      if (JSON.stringify(out[name][mode].addon) !== JSON.stringify(expectedAddon)) {
        buildChanged.push(`memory child ${name}/${mode} ran ${JSON.stringify(out[name][mode].addon)}`)
      }
    }
    const figure = (n) => (mode === 'created' ? out[n][mode].perKey.rss : out[n][mode].addedByFirstCheck.rss)
    log(
      `  memory (${mode === 'created' ? 'keys created' : 'added by the first check of each key'}): ` +
        names.map((n) => `${NAMES[n]} ${fmtInt(figure(n))} B/key`).join(', '),
    )
  }
  return out
}

// =======================================================================================
// Main.

/** Which build is measured: the addon file's digest and mtime, and lib/store.js's digest. */
function addonFingerprint() {
  const digest = (file) => createHash('sha256').update(readFileSync(file)).digest('hex').slice(0, 16)
  try {
    const addon = join(HERE, '..', 'keygate.linux-x64-gnu.node')
    return { sha256: digest(addon), mtime: statSync(addon).mtime.toISOString(), storeJs: digest(join(HERE, '..', 'lib', 'store.js')) }
  } catch {
    return null
  }
}

async function main() {
  if (ARGS[0] === '--child-memory') return childMemory(ARGS[1], ARGS[2])
  if (!gcAvailable) log('warning: run with --expose-gc (npm run bench does) for stable numbers')

  const startedAt = new Date()
  const cpuAtStart = cpuSnapshot()
  const machine = machineInfo()
  const addonInfo = addonFingerprint()
  let commit = null
  try {
    const git = spawnSync('git', ['-C', join(HERE, '..'), 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' })
    const dirty = spawnSync('git', ['-C', join(HERE, '..'), 'status', '--porcelain', '--untracked-files=no'], { encoding: 'utf8' })
    if (git.status === 0) commit = git.stdout.trim() + (dirty.stdout.trim() ? ' (working tree modified)' : '')
  } catch {}
  log(`keygate benchmark${QUICK ? ' (--quick)' : ''}: ${machine.cpu}, ${machine.cores} cores, Node ${machine.node}`)

  const names = CORE_AVAILABLE ? ['keygate', 'core', 'naive', 'hashed'] : ['keygate', 'naive', 'hashed']
  if (!CORE_AVAILABLE) log('  (keygate core column skipped: binding.js does not have the expected functions)')
  const NOW = Date.now()
  const pool = rulePool()
  const oracle = new Oracle()
  const results = {
    startedAt: startedAt.toISOString(),
    seed: SEED,
    quick: QUICK,
    config: CONFIG,
    machine,
    addon: addonInfo,
    commit,
    sha256: SHA256_API,
    differential: [],
    workloads: {},
  }

  // ---- checks ---------------------------------------------------------------------------
  log('\nChecks')
  results.ruleSemantics = await ruleSemanticsCheck(pool)
  results.differential.push(...(await edgeCases([...names, 'casbin'])))
  if (MISS_ONLY)
    return missOnly(
      results,
      names.filter((n) => n !== 'naive'),
      pool,
      oracle,
      NOW,
      addonInfo,
    )

  const warmSpecs = keySpecs('warm-keys', CONFIG.warmKeys, pool, NOW)
  const warmQueries = makeQueries('warm-queries', warmSpecs, CONFIG.warmQueries, oracle, NOW)
  const warm = await buildWorld('warm world', warmSpecs, names)

  // Unknown secrets: well formed, same prefix, issued by another store.
  const other = KeyStore.inMemory()
  other.putUser({ id: 'other', rights: ['*:*'] })
  const unknownSecrets = []
  for (let i = 0; i < CONFIG.unknownSecrets; i++) {
    unknownSecrets.push(other.createKey({ userId: 'other', description: '', expiresAt: new Date(NOW + 86_400_000) }).secret)
  }

  const warmCases = bindSecrets(warm, queryCases('warm query', warmQueries))
  for (let i = 0; i < 1000; i++) {
    const q = warmQueries[i % warmQueries.length]
    warmCases.push({ label: 'unknown secret', service: q.service, api: q.api, expected: false, secretOf: () => unknownSecrets[i] })
  }
  for (let k = 0; k < 25; k++) {
    const q = warmQueries.find((x) => x.k === k && x.expected) ?? warmQueries[k]
    const bad = Object.fromEntries(names.map((n) => [n, malformations(warm.secrets[n][k])]))
    for (let m = 0; m < bad[names[0]].length; m++) {
      warmCases.push({ label: `malformed secret #${m}`, service: q.service, api: q.api, expected: false, secretOf: (n) => bad[n][m] })
    }
  }
  results.differential.push(differential('warm world (queries, unknown and malformed secrets)', warm, warmCases))

  const scaleSpecs = warmSpecs.concat(keySpecs('scale-keys', CONFIG.scaleKeys - CONFIG.warmKeys, pool, NOW))
  let scale = await buildWorld('scale world', scaleSpecs, names)
  results.differential.push(differential('scale world (the warm queries)', scale, bindSecrets(scale, queryCases('warm query at scale', warmQueries))))

  const smallSpecs = warmSpecs.slice(0, CONFIG.casbinKeys)
  const smallQueries = makeQueries('small-queries', smallSpecs, CONFIG.casbinQueries, oracle, NOW)
  const small = await buildWorld('small world', smallSpecs, [...names, 'casbin'])
  results.differential.push(differential('small world (casbin)', small, bindSecrets(small, queryCases('small-policy query', smallQueries))))

  const share = warmQueries.filter((q) => q.expected).length / warmQueries.length
  results.warmAllowedShare = share

  // ---- timing ---------------------------------------------------------------------------
  log(`\nTiming (${CONFIG.rounds} rounds; ns per check, median)`)
  fullGc()
  const W = results.workloads
  const n = CONFIG.checksPerSample

  // warm and scale in the same rounds (the same queries against 2,000 and 200,000 keys),
  // so that their ratio compares like with like.
  const AT_SCALE = '@scale'
  const both = await timeWorkload('warm and scale', [...names, ...names.map((x) => x + AT_SCALE)], {
    prepare: (entry) => (entry.endsWith(AT_SCALE) ? cycled(scale, entry.slice(0, -AT_SCALE.length), warmQueries, n) : cycled(warm, entry, warmQueries, n)),
  })
  W.warm = Object.fromEntries(names.map((x) => [x, both[x]]))
  W.scale = Object.fromEntries(names.map((x) => [x, both[x + AT_SCALE]]))
  fullGc()

  // Never-issued secrets against the 2,000-key store (the target) and, for information,
  // against the 200,000-key store, in the same rounds.
  const unknownArgs = (world, name) => {
    // Three passes over the never-issued secrets, each pass with its own fresh copies.
    const count = 3 * CONFIG.unknownSecrets
    return {
      target: world.targets[name],
      secrets: Array.from({ length: count }, (_, i) => freshCopy(unknownSecrets[i % unknownSecrets.length])),
      services: Array.from({ length: count }, (_, i) => warmQueries[i % warmQueries.length].service),
      apis: Array.from({ length: count }, (_, i) => warmQueries[i % warmQueries.length].api),
      n: count,
      expectedSum: 0,
    }
  }
  const unknownBoth = await timeWorkload('unknown', [...names, ...names.map((x) => x + AT_SCALE)], {
    prepare: (entry) => (entry.endsWith(AT_SCALE) ? unknownArgs(scale, entry.slice(0, -AT_SCALE.length)) : unknownArgs(warm, entry)),
  })
  W.unknown = Object.fromEntries(names.map((x) => [x, unknownBoth[x]]))
  W.unknownScale = Object.fromEntries(names.map((x) => [x, unknownBoth[x + AT_SCALE]]))

  // As a harness that calls every implementation from one loop would measure: the call
  // site sees every implementation, so V8 inlines none of them into it.
  W.warmShared = await timeWorkload('warm, one loop for all', names, { sharedLoop: true, prepare: (name) => cycled(warm, name, warmQueries, n) })

  if (HOT_ONLY) {
    const kg = (w) => W[w].keygate.median
    log(
      `\nwarm/naive ${fmtRatio(kg('warm') / W.warm.naive.median)} (≤ 0.2), warm/hashed ${fmtRatio(kg('warm') / W.warm.hashed.median)} (≤ 0.05), ` +
        `one loop for all: warm/hashed ${fmtRatio(kg('warmShared') / W.warmShared.hashed.median)}, ` +
        `unknown/hashed ${fmtRatio(kg('unknown') / W.unknown.hashed.median)} (≤ 0.35), scale/warm ${fmtRatio(kg('scale') / kg('warm'))} (≤ 1.5)`,
    )
    return
  }

  // Drop the 200,000-key stores: the rest should not pay for a big heap.
  scale = null
  fullGc()
  W.warmFresh = await timeWorkload('warm, fresh strings', names, { prepare: (name) => freshArgs(warm, name, warmQueries, n) })
  fullGc()

  W.cold = await timeCold(names, pool, oracle, NOW)
  fullGc()

  // casbin on a small policy, beside the others on the same policy.
  W.small = await timeWorkload('small policy (100 keys)', [...names, 'casbin'], {
    prepare: (name) => cycled(small, name, smallQueries, name === 'casbin' ? smallQueries.length : n),
  })
  fullGc()

  log('\nThroughput')
  let cpu = cpuSnapshot()
  W.createKey = await timeCreateKey(names, pool, NOW)
  W.compile = timeCompile()
  const afterCreate = cpuSnapshot()
  noteLoad('createKey and compile', otherLoad(cpu, afterCreate))
  cpu = afterCreate

  log('\nMemory (child processes)')
  results.memory = runMemory(names, addonInfo)
  noteLoad('memory', otherLoad(cpu, cpuSnapshot()))
  cpu = cpuSnapshot()
  log('\nWhat the memo cannot answer (wide in a child process)')
  results.miss = await missMeasures({ quick: QUICK, rounds: CONFIG.rounds })
  noteLoad('miss measures', otherLoad(cpu, cpuSnapshot()))
  const addonAtEnd = addonFingerprint()
  if (JSON.stringify(addonAtEnd) !== JSON.stringify(addonInfo)) buildChanged.push(`at the end: ${JSON.stringify(addonAtEnd)}`)
  results.buildChanged = buildChanged
  if (buildChanged.length > 0) log(`\nWARNING: the keygate build changed during the run (started with ${JSON.stringify(addonInfo)}):\n  ${buildChanged.join('\n  ')}`)

  results.otherLoad = otherLoad(cpuAtStart, cpuSnapshot())
  results.noisy = noisy
  results.loadavgAtEnd = (await import('node:os')).loadavg().map((x) => Math.round(x * 100) / 100)
  report(results, names)
}

// =======================================================================================
// Report.

function report(results, names) {
  const W = results.workloads
  const M = results.memory
  const cols = [...names, 'casbin']
  const header = ['workload', ...cols.map((n) => NAMES[n])]
  const usedPerKey = (n) => M[n].created.perKey.rss + M[n].used.addedByFirstCheck.rss
  const row = (label, workload, fmt = fmtNs) => [label, ...cols.map((n) => (workload?.[n] ? fmt(workload[n].median) : '—'))]
  const c = results.config
  const rows = [
    row(`warm: ${fmtInt(c.warmKeys)} keys × ${c.rulesPerKey} rules, ${fmtInt(c.warmQueries)} queries cycled`, W.warm),
    row(`scale: the warm queries, ${fmtInt(c.scaleKeys)} keys`, W.scale),
    row('warm, a fresh string per call (info)', W.warmFresh),
    row('warm, one loop calling every implementation (info)', W.warmShared),
    row(`cold: first check of ${fmtInt(c.coldKeys)} new keys`, W.cold),
    ['cold, hashed JS compiling RegExps at insert (info)', ...cols.map((n) => (n === 'hashed' ? fmtNs(W.cold['hashed-eager'].median) : '—'))],
    row(`unknown: ${fmtInt(c.unknownSecrets)} never-issued secrets`, W.unknown),
    row(`unknown, against the ${fmtInt(c.scaleKeys)}-key store (info)`, W.unknownScale),
    row(`small policy: ${c.casbinKeys} keys, ${fmtInt(c.casbinQueries)} queries`, W.small),
    ['memory, bytes/key (RSS, keys created)', ...cols.map((n) => (M[n] ? fmtInt(M[n].created.perKey.rss) : '—'))],
    ['memory, bytes/key (RSS, + first check of each key)', ...cols.map((n) => (M[n] ? fmtInt(usedPerKey(n)) : '—'))],
    ['createKey, keys/s', ...cols.map((n) => (W.createKey[n] ? fmtInt(W.createKey[n].median) : '—'))],
  ]

  const kg = (w) => W[w].keygate.median
  const ratios = [
    { name: 'warm: keygate / naive JS', value: kg('warm') / W.warm.naive.median, limit: 0.2 },
    { name: 'warm: keygate / hashed JS', value: kg('warm') / W.warm.hashed.median, limit: 0.05 },
    { name: 'unknown: keygate / hashed JS', value: kg('unknown') / W.unknown.hashed.median, limit: 0.35 },
    { name: `scale: keygate at ${fmtInt(c.scaleKeys)} / at ${fmtInt(c.warmKeys)} keys`, value: kg('scale') / kg('warm'), limit: 1.5 },
  ].map((r) => ({ ...r, pass: r.value <= r.limit }))
  const miss = missRatios(results)
  results.missRatios = miss
  results.ratios = ratios
  const info = {
    'warm, fresh strings: keygate / naive JS': W.warmFresh.keygate.median / W.warmFresh.naive.median,
    'warm, fresh strings: keygate / hashed JS': W.warmFresh.keygate.median / W.warmFresh.hashed.median,
    'warm, one loop for all: keygate / naive JS': W.warmShared.keygate.median / W.warmShared.naive.median,
    'warm, one loop for all: keygate / hashed JS': W.warmShared.keygate.median / W.warmShared.hashed.median,
    'cold: keygate / hashed JS first check': W.cold.keygate.median / W.cold.hashed.median,
    'cold: keygate / hashed JS compiling RegExps at insert': W.cold.keygate.median / W.cold['hashed-eager'].median,
    'scale / warm: naive JS': W.scale.naive.median / W.warm.naive.median,
    'scale / warm: hashed JS': W.scale.hashed.median / W.warm.hashed.median,
    'small policy: keygate / casbin': W.small.keygate.median / W.small.casbin.median,
    'memory after the first check of each key: keygate / hashed JS': usedPerKey('keygate') / usedPerKey('hashed'),
  }
  if (W.warm.core) {
    info['warm: keygate core / hashed JS'] = W.warm.core.median / W.warm.hashed.median
    info['scale / warm: keygate core'] = W.scale.core.median / W.warm.core.median
  }
  results.informationalRatios = info

  const compileRows = Object.entries(W.compile).map(([k, v]) => [k, `${v.median.toFixed(2)} ms`])
  const ratioRows = ratios.map((r) => [r.name, fmtRatio(r.value), `≤ ${r.limit}`, r.pass ? 'PASS' : 'FAIL'])
  const infoRows = Object.entries(info).map(([k, v]) => [k, fmtRatio(v)])
  const spread = (w, n) => (W[w]?.[n] ? `${fmtNs(W[w][n].min)}–${fmtNs(W[w][n].max)}` : '—')
  const spreadRows = ['warm', 'scale', 'warmFresh', 'warmShared', 'cold', 'unknown', 'unknownScale', 'small'].map((w) => [w, ...cols.map((n) => spread(w, n))])
  spreadRows.splice(5, 0, ['cold, eager', ...cols.map((n) => (n === 'hashed' ? spread('cold', 'hashed-eager') : '—'))])
  const m = results.machine
  const machineLine = `${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, ${m.os}, Node ${m.node} (V8 ${m.v8})`
  const failed = failures.length > 0

  const out = []
  out.push('', '='.repeat(100), `keygate benchmark — ${results.startedAt}${results.quick ? ' (--quick: reduced sizes)' : ''}`)
  out.push(`machine: ${machineLine}`)
  out.push(
    `keygate: commit ${results.commit ?? '?'}, addon ${results.addon ? `${results.addon.sha256} (${results.addon.mtime}), lib/store.js ${results.addon.storeJs}` : '?'}`,
  )
  if (results.buildChanged.length > 0)
    out.push(`WARNING: the keygate build changed during the run — numbers mix builds; run again:\n  ${results.buildChanged.join('\n  ')}`)
  if (results.otherLoad !== null) {
    out.push(
      `other processes kept ${results.otherLoad.toFixed(2)} of ${m.cores} CPUs busy on average during the run` +
        (results.noisy.length > 0 ? ` — NOISY, numbers less reliable (${results.noisy.join('; ')})` : ''),
    )
  }
  out.push(
    `${c.rounds} rounds, implementations interleaved, medians; hashed JS uses ${results.sha256}('sha256'); warm queries ${(results.warmAllowedShare * 100).toFixed(1)} % allowed`,
  )
  out.push(
    `differential check: ${failed ? `FAILED (${failures.length})` : 'all implementations gave the same answers to every call'} ` +
      `(${results.differential.reduce((a, d) => a + d.calls, 0).toLocaleString('en-US')} calls + ${results.ruleSemantics.rules * results.ruleSemantics.calls} rule×call pairs)`,
  )
  out.push('', 'ns per check (median)', textTable(header, rows))
  out.push('', 'min–max over the rounds', textTable(['workload', ...cols.map((n) => NAMES[n])], spreadRows))
  out.push('', 'compile 1,000 rules (median)', textTable(['how', 'time'], compileRows))
  out.push('', 'targets', textTable(['ratio', 'value', 'target', 'result'], ratioRows))
  const missRows = miss.map((r) => [r.name, r.figure, r.spread, r.ratio, r.target, r.pass ? 'PASS' : 'FAIL'])
  out.push('', 'what the memo cannot answer (issue 14)', textTable(['measure', 'keygate', 'min–max', 'ratio', 'target', 'result'], missRows))
  out.push(...wideFloorLines(results.miss.wide))
  out.push('', 'other ratios (information)', textTable(['ratio', 'value'], infoRows))
  out.push(
    '',
    'notes:',
    '- keygate = store.isAllowed (public API, includes its JS decision memo); keygate core = the napi check of the Rust',
    '  core without the memo, reached through binding.js (informational, not a target).',
    '- warm/scale cycle the same query strings; "fresh strings" gives every call new string objects, as a server sees.',
    '- "one loop" times every implementation from the same loop function: its call site sees all of them, so V8',
    '  inlines none (a harness written that way measures this row, not the warm row).',
    "- cold: JS peers' first check includes V8 compiling the key's RegExp (lazily, on first use); keygate compiles",
    '  rules in createKey. The info row gives a hashed JS peer that runs each RegExp twice at insert (V8 then has',
    '  native code) — createKey pays instead. Fresh copies of the secrets are presented in cold and unknown.',
    '- memory: RSS growth per key in a child process per implementation (young generation grown beforehand,',
    '  gc before and after); the target uses "keys created" (the store alone). "+ first check" adds what checking',
    '  every key once leaves behind: compiled RegExps (JS peers), memo entries and lastUsedAt (keygate).',
    '- casbin: hashed lookup + enforceSync for the user (roles via g) and for the key; builtin regexMatch.',
  )

  out.push('', 'Markdown (for the README):', '')
  out.push(
    `Machine: ${machineLine}. ${c.rounds} rounds, interleaved, medians.` +
      (results.noisy.length > 0
        ? ` Other processes were busy during the run (${results.otherLoad.toFixed(2)} CPUs on average): rerun on a quiet machine before quoting.`
        : ''),
    '',
  )
  out.push(markdownTable(header, rows))
  out.push('')
  out.push(
    markdownTable(
      ['target', 'value', 'limit', 'result'],
      ratioRows.map((r) => [r[0], r[1], r[2].replace('≤', '≤'), r[3] === 'PASS' ? '✅ PASS' : '❌ FAIL']),
    ),
  )
  out.push('')
  out.push(markdownTable(['what the memo cannot answer', 'keygate', 'min–max', 'ratio', 'target', 'result'], missRows))
  out.push('')
  out.push(markdownTable(['compile 1,000 rules', 'time'], compileRows))
  process.stdout.write(`${out.join('\n')}\n`)

  results.failures = failures
  writeFileSync(join(HERE, 'results.json'), `${JSON.stringify(results, null, 2)}\n`)
  log(`\nresults written to bench/results.json`)
  if (failed) process.exitCode = 1
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
