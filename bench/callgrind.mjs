// Instruction counts per check under valgrind's callgrind, stable where wall-clock time on a
// shared machine is not. Each workload runs twice, with and without its checks; the
// difference over the number of checks is the cost of one check (JS and native).
//
//   node bench/callgrind.mjs [--cache-sim[=L2]] [workload…]   workloads: warm cold wide unknown exact worst-rules
//
// `--cache-sim` also simulates the data caches and reports, per check, the reads and writes
// that miss the first-level cache and those that miss the last level. Given a size
// (`--cache-sim=1048576,16,64`: bytes, ways, line), the last level is that cache instead of
// the machine's: with a core's L2 there, the misses counted are those that go to L3 or memory.
// Needs valgrind. A build with symbols (CARGO_PROFILE_RELEASE_STRIP=none) lets
// callgrind_annotate name the native functions in the kept callgrind.out.* files.

import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

import { ROLES, USERS, Oracle, keySpecs, oneQueryPerKey, makeQueries, rulePool } from './data.mjs'
import { KeygatePeer, KeyStore } from './peers.mjs'
import { worstRules } from './miss.mjs'

const WORKLOADS = {
  /** 500 keys, 500 queries asked 200 times over (the memo answers all but the first pass). */
  warm: { keys: 500, checks: 100_000 },
  /** 2,000 new keys, each checked once. */
  cold: { keys: 2000, checks: 2000 },
  /** 70,000 keys (more than the memo holds), each checked once, then once again. */
  wide: { keys: 70_000, checks: 140_000 },
  /** 2,000 never-issued secrets against 500 keys. */
  unknown: { keys: 500, checks: 2000 },
  /** A key with 1,000 exact rules, 2,000 distinct calls. */
  exact: { keys: 1, checks: 2000 },
  /** A key with 1,000 rules `*aaa…ab*:*aaa…ab*`, 200 distinct calls of 256-character names. */
  'worst-rules': { keys: 1, checks: 200 },
}

function child(workload, withChecks) {
  const { keys, checks } = WORKLOADS[workload]
  const now = Date.now()
  const peer = new KeygatePeer()
  for (const role of ROLES) peer.putRole(role.name, role.rights)
  for (const user of USERS) peer.putUser({ id: user.id, status: user.status, rights: user.rights, roles: user.roles })
  peer.putUser({ id: 'all', rights: ['*:*'] })
  const store = peer.store
  const expiresAt = new Date(now + 86_400_000)
  const calls = []
  if (workload === 'exact' || workload === 'worst-rules') {
    const rules = workload === 'exact' ? Array.from({ length: 1000 }, (_, n) => `svc${n}:api${n}`) : worstRules(1000)
    const { secret } = store.createKey({ userId: 'all', description: '', expiresAt, rules })
    for (let i = 0; i < checks; i++) {
      const name = (n) => 'a'.repeat(256 - String(n).length) + n
      calls.push(workload === 'exact' ? [secret, `svc${i % 1000}`, `api${(i + (i >> 10)) % 1000}`] : [secret, name(i), name(i + 1)])
    }
  } else {
    const specs = keySpecs(`callgrind-${workload}`, keys, rulePool(), now)
    const queries = oneQueryPerKey(`callgrind-${workload}`, specs, new Oracle(), now)
    const secrets = specs.map((spec) => peer.createKey(spec))
    if (workload === 'unknown') {
      const other = KeyStore.inMemory()
      other.putUser({ id: 'o', rights: ['*:*'] })
      for (let i = 0; i < checks; i++) calls.push([other.createKey({ userId: 'o', description: '', expiresAt }).secret, 'session', 'userLogon'])
    } else if (workload === 'warm') {
      const warmQueries = makeQueries('callgrind-warm', specs, 500, new Oracle(), now)
      for (let i = 0; i < checks; i++) calls.push([secrets[warmQueries[i % 500].k], warmQueries[i % 500].service, warmQueries[i % 500].api])
    } else {
      for (let i = 0; i < checks; i++) calls.push([secrets[i % keys], queries[i % keys].service, queries[i % keys].api])
    }
  }
  // Fresh copies of the strings, made outside the counted difference.
  const copies = calls.map((c) => c.map((s) => Buffer.from(s, 'latin1').toString('latin1')))
  let allowed = 0
  if (withChecks) for (const [secret, service, api] of copies) if (store.isAllowed(secret, service, api)) allowed++
  process.stdout.write(`${allowed} ${copies.length}\n`)
}

/** The run's event totals by name (Ir: instructions; with the cache simulation also D1mr, DLmr, …). */
function collected(file) {
  const text = readFileSync(file, 'utf8')
  const names = /^events:\s+(.+)$/m.exec(text)[1].trim().split(/\s+/)
  const totals = (/^summary:\s+(.+)$/m.exec(text) ?? /^totals:\s+(.+)$/m.exec(text))[1].trim().split(/\s+/).map(Number)
  return Object.fromEntries(names.map((name, i) => [name, totals[i] ?? 0]))
}

/** @param {string | undefined} cacheSim undefined: no cache simulation; '': the machine's caches; else the last level's geometry */
function measure(workload, cacheSim) {
  const dir = mkdtempSync(join(tmpdir(), 'keygate-callgrind-'))
  const cacheArgs = cacheSim === undefined ? [] : ['--cache-sim=yes', ...(cacheSim === '' ? [] : [`--LL=${cacheSim}`])]
  const counts = {}
  for (const withChecks of [false, true]) {
    const out = join(dir, `callgrind.out.${workload}.${withChecks ? 'checks' : 'setup'}`)
    const run = spawnSync(
      'valgrind',
      [
        '--tool=callgrind',
        ...cacheArgs,
        `--callgrind-out-file=${out}`,
        process.execPath,
        '--single-threaded',
        fileURLToPath(import.meta.url),
        '--child',
        workload,
        String(withChecks),
      ],
      { encoding: 'utf8', maxBuffer: 1 << 26 },
    )
    if (run.status !== 0) throw new Error(`callgrind ${workload}: ${run.stderr.slice(-2000)}`)
    counts[withChecks] = collected(out)
  }
  const { checks } = WORKLOADS[workload]
  const perCheck = (event) => (counts.true[event] - counts.false[event]) / checks
  let line = `${workload}: ${Math.round(perCheck('Ir')).toLocaleString('en-US')} instructions per check`
  if (cacheSim !== undefined) {
    const misses = (level) => (perCheck(`${level}mr`) + perCheck(`${level}mw`)).toFixed(2)
    line += `, data misses per check: ${misses('D1')} first level, ${misses('DL')} last level`
  }
  process.stdout.write(`${line} (${dir})\n`)
  return perCheck('Ir')
}

if (process.argv[2] === '--child') {
  child(process.argv[3], process.argv[4] === 'true')
} else {
  const options = process.argv.slice(2).filter((arg) => arg.startsWith('--'))
  const chosen = process.argv.slice(2).filter((arg) => !arg.startsWith('--'))
  const cacheOption = options.find((arg) => arg === '--cache-sim' || arg.startsWith('--cache-sim='))
  const cacheSim = cacheOption === undefined ? undefined : cacheOption.slice('--cache-sim='.length)
  for (const workload of chosen.length > 0 ? chosen : Object.keys(WORKLOADS)) measure(workload, cacheSim)
}
