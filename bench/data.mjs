// Deterministic workload data for the keygate benchmark: a seeded PRNG, a catalog of
// Hornbill service/API names, users and roles, a pool of realistic rules, key specs and
// queries, plus a plain reading of the documented decision (the oracle) used to balance the
// queries and as a fifth, independent voice in the differential check.
//
// Nothing here is timed.

// ---------------------------------------------------------------------------------------
// PRNG: xmur3 string hash to seed sfc32. Every phase draws from its own labelled stream,
// so adding a phase never shifts the data of another.

function xmur3(str) {
  let h = 1779033703 ^ str.length
  for (let i = 0; i < str.length; i++) {
    h = Math.imul(h ^ str.charCodeAt(i), 3432918353)
    h = (h << 13) | (h >>> 19)
  }
  return () => {
    h = Math.imul(h ^ (h >>> 16), 2246822507)
    h = Math.imul(h ^ (h >>> 13), 3266489909)
    h ^= h >>> 16
    return h >>> 0
  }
}

export const SEED = 'keygate-bench-v1'

/** A seeded generator: `r()` in [0, 1), `r.int(n)` in [0, n), `r.pick(array)`. */
export function rng(label) {
  const seed = xmur3(`${SEED}/${label}`)
  let a = seed(),
    b = seed(),
    c = seed(),
    d = seed()
  const next = () => {
    a >>>= 0
    b >>>= 0
    c >>>= 0
    d >>>= 0
    let t = (a + b) | 0
    a = b ^ (b >>> 9)
    b = (c + (c << 3)) | 0
    c = (c << 21) | (c >>> 11)
    d = (d + 1) | 0
    t = (t + d) | 0
    c = (c + t) | 0
    return (t >>> 0) / 4294967296
  }
  for (let i = 0; i < 16; i++) next()
  next.int = (n) => Math.floor(next() * n)
  next.pick = (array) => array[Math.floor(next() * array.length)]
  /** Index drawn with weights (array of numbers). */
  next.weighted = (weights) => {
    let total = 0
    for (const w of weights) total += w
    let x = next() * total
    for (let i = 0; i < weights.length; i++) {
      x -= weights[i]
      if (x < 0) return i
    }
    return weights.length - 1
  }
  return next
}

// ---------------------------------------------------------------------------------------
// Catalog of calls. The names marked (doc) appear in /work/shared/hornbill-api-keys.md or
// the README; the others are Hornbill-style names of the same services (camelCase apis, app
// services with `/` and `.`), written from Hornbill's public API reference from memory —
// realistic in shape and length, not guaranteed to be an exact current API list.

const CALLS = {
  session: ['userLogon' /* doc */, 'userLogoff', 'getSessionInfo' /* doc */, 'getSessionInfo2', 'isSessionValid', 'analystLogon', 'changePassword'],
  admin: [
    'keysafeGetKey' /* doc */,
    'keysafeAddKey',
    'keysafeUpdateKey',
    'keysafeDeleteKey',
    'keysafeListKeys',
    'userCreate' /* doc */,
    'userDelete',
    'userUpdate',
    'userGetInfo',
    'userGetInfoList',
    'userSetAccountStatus' /* doc */,
    'userAddRole',
    'userDeleteRole',
    'userResetPassword',
    'sysOptionGet',
    'sysOptionSet',
    'groupCreate',
    'groupAddMember',
  ],
  data: [
    'entityAddRecord' /* doc */,
    'entityGetRecord',
    'entityUpdateRecord',
    'entityDeleteRecord',
    'entityBrowseRecords2' /* doc */,
    'entityAttachFile',
    'queryExec' /* doc */,
    'sqlQuery',
    'getColumnInfoList',
    'entityDelRecord',
  ],
  system: ['logMessage' /* doc */, 'getServerInfo', 'getSystemTime'],
  bpm: ['iBridgeInvoke' /* doc */, 'processSpawn2', 'processGetStatus', 'processCancel'],
  activity: ['activityStreamQuery', 'postMessage', 'postComment'],
  mail: ['sendMessage', 'getMailboxList'],
  'apps/com.hornbill.core': ['addHistory' /* doc */, 'getHistory'],
  'apps/com.hornbill.core/Achievement': ['addAchievement' /* doc */, 'getAchievements'],
  'apps/com.hornbill.core/Task': ['taskCreate', 'taskComplete', 'taskGetList'],
  'apps/com.hornbill.servicemanager/Requests': ['holdRequest' /* doc */, 'logServiceRequest', 'logIncident', 'resolveRequest', 'reopenRequest', 'updateReqStatus'],
  'apps/com.hornbill.servicemanager/AssetUsers': ['create' /* doc */, 'delete'],
  'apps/com.hornbill.servicemanager/Asset': ['addAsset', 'updateAsset'],
  'apps/com.hornbill.servicemanager': ['getRequestDetails'],
}

/** Every call of the catalog as `{ service, api }`. */
export const CATALOG = Object.entries(CALLS).flatMap(([service, apis]) => apis.map((api) => ({ service, api })))

// ---------------------------------------------------------------------------------------
// Users and roles. `weight` is the share of keys created under the user.

export const ROLES = [{ name: 'helpdesk', rights: ['apps/com.hornbill.servicemanager/Requests:*', 'data:entityGet*', 'activity:post*'] }]

export const USERS = [
  {
    id: 'svc-integration',
    status: 'active',
    roles: [],
    weight: 30,
    rights: ['session:*', 'data:*', 'apps/com.hornbill.servicemanager/*:*', 'apps/com.hornbill.core/*:*', 'apps/com.hornbill.core:*'],
  },
  { id: 'svc-admin-ops', status: 'active', roles: [], weight: 15, rights: ['session:*', 'admin:user*', 'admin:keysafe*', 'system:*', 'data:entity*'] },
  {
    id: 'svc-reporting',
    status: 'active',
    roles: [],
    weight: 15,
    rights: ['session:*', 'data:queryExec', 'data:entityBrowseRecords2', 'data:entityGet*', 'system:logMessage', 'activity:*'],
  },
  { id: 'svc-workflow', status: 'active', roles: [], weight: 12, rights: ['session:*', 'bpm:*', 'data:*', 'apps/com.hornbill.*/*:*', 'mail:send*'] },
  {
    id: 'svc-servicedesk',
    status: 'active',
    roles: ['helpdesk'],
    weight: 15,
    rights: ['session:*', 'apps/com.hornbill.servicemanager:*', 'data:entity???Record', 'apps/com.hornbill.servicemanager/Asset*:*'],
  },
  { id: 'svc-superuser', status: 'active', roles: [], weight: 10, rights: ['*:*'] },
  { id: 'svc-retired', status: 'suspended', roles: [], weight: 3, rights: ['session:*', 'data:*'] },
]

// ---------------------------------------------------------------------------------------
// Rules. Shapes avoided on purpose, because wildcard-match (the JS peers' matcher) reads
// them differently from keygate's rules: `**` as a whole `:`-segment (wildcard-match lets it span
// separators), a backslash (its escape character), empty service or api, and any `:` in a
// call's names (one `:` in a wildcard-match pattern matches one *or more* `:` in the
// sample). The workload never sends invalid names, so the JS peers skip decision step 3.

/** Rules shown in the README / the Hornbill help, always in the pool. */
export const DOC_RULES = [
  'session:*',
  'session:get*',
  'data:entityBrowseRecords2',
  'admin:keysafeGetKey',
  'apps/com.hornbill.servicemanager/Requests:holdRequest',
  'apps/com.hornbill.core/*:*',
  'apps/com.hornbill.core:*',
  '*:userLogon',
  'data:entity???Record',
  'session:getSessionInfo',
  'apps/com.hornbill.core/Achievement:*',
  'apps/com.hornbill.core:addHistory',
]

function withQuestionMarks(r, name, count) {
  const chars = name.split('')
  for (let i = 0; i < count; i++) {
    const at = 1 + r.int(Math.max(1, chars.length - 1))
    if (at < chars.length) chars[at] = '?'
  }
  return chars.join('')
}

/** How people mistype case in rules: all lower case, or the service in capitals. */
function mutateCase(r, text) {
  if (r() < 0.6) return text.toLowerCase()
  const colon = text.indexOf(':')
  return text.slice(0, colon).toUpperCase() + text.slice(colon)
}

/** One rule derived from a random catalog call, in one of the realistic shapes. */
export function randomRule(r) {
  const { service, api } = r.pick(CATALOG)
  const x = r()
  let rule
  if (x < 0.32)
    rule = `${service}:${api}` // exact
  else if (x < 0.52)
    rule = `${service}:${api.slice(0, 2 + r.int(Math.max(1, api.length - 3)))}*` // session:get*
  else if (x < 0.62)
    rule = `${service}:${withQuestionMarks(r, api, 1 + r.int(3))}` // data:entity???Record
  else if (x < 0.72)
    rule = `${service}:*` // session:*
  else if (x < 0.8) {
    // app service wildcards: apps/com.hornbill.core/*:*, apps/com.hornbill.servicemanager/Req*:*
    const apps = CATALOG.filter((c) => c.service.startsWith('apps/') && c.service.split('/').length === 3)
    const app = r.pick(apps).service
    const base = app.slice(0, app.lastIndexOf('/'))
    const y = r()
    rule = y < 0.5 ? `${base}/*:*` : y < 0.8 ? `${app.slice(0, base.length + 4)}*:*` : `${base}/*:${r.pick(CALLS[app])}`
  } else if (x < 0.87)
    rule = r() < 0.5 ? `*:${api}` : `${service}:*${api.slice(-(3 + r.int(Math.max(1, api.length - 3))))}` // suffix
  else if (x < 0.94) {
    // general: a prefix, a star and a tail (admin:user*Status), or a star in the middle of the service
    rule = r() < 0.7 || !service.includes('.') ? `${service}:${api.slice(0, 2)}*${api.slice(-3)}` : `${service.slice(0, 8)}*${service.slice(-6)}:${api}`
  } else rule = `${service}:${api.slice(0, 3)}*` // short prefixes (session:get*)
  if (r() < 0.04) rule = mutateCase(r, rule)
  return rule
}

/** The shared pool rules are drawn from (people reuse the same few hundred rules). */
export function rulePool(size = 400) {
  const r = rng('rule-pool')
  const pool = new Set(DOC_RULES)
  let guard = 0
  while (pool.size < size && guard++ < size * 50) pool.add(randomRule(r))
  return [...pool]
}

/** Draws `count` distinct rules from the pool, skewed towards the popular ones. */
export function drawRules(r, pool, count = 5) {
  const rules = new Set()
  while (rules.size < count) {
    // Squaring a uniform variate favours the head of the pool (documented rules first).
    const x = r()
    rules.add(pool[Math.floor(x * x * pool.length)])
  }
  return [...rules]
}

/** Distinct fresh rules (for the compile benchmark: no rule repeats across samples). */
export function uniqueRules(r, count, seen) {
  const out = []
  while (out.length < count) {
    let rule = randomRule(r)
    // Make collisions impossible to keep on repeating: add a literal tail when needed.
    if (seen.has(rule)) rule = `${rule.split(':')[0]}:${rule.split(':')[1]}${String.fromCharCode(97 + r.int(26))}${r.int(1000)}`
    if (seen.has(rule)) continue
    seen.add(rule)
    out.push(rule)
  }
  return out
}

// ---------------------------------------------------------------------------------------
// Keys.

const DAY = 86_400_000
const USER_WEIGHTS = USERS.map((u) => u.weight)

/**
 * A key spec: `{ userId, state, expiresAt (ms), rules }`. 3 % of keys are suspended and 1 %
 * revoked; expiries lie 30–700 days ahead of `now`.
 */
export function keySpec(r, pool, now, { rules = 5, states = true } = {}) {
  const user = USERS[r.weighted(USER_WEIGHTS)]
  const x = r()
  const state = !states ? 'active' : x < 0.03 ? 'suspended' : x < 0.04 ? 'revoked' : 'active'
  return { userId: user.id, state, expiresAt: now + (30 + r.int(671)) * DAY, rules: drawRules(r, pool, rules) }
}

export function keySpecs(label, count, pool, now, options) {
  const r = rng(label)
  const specs = new Array(count)
  for (let i = 0; i < count; i++) specs[i] = keySpec(r, pool, now, options)
  return specs
}

// ---------------------------------------------------------------------------------------
// The oracle: the documented decision read literally, with a textbook wildcard matcher. It
// knows the key specs (not the stores), so it answers for a spec or for "no such key".

const NAME = /^[A-Za-z0-9_\-./]{1,256}$/

/** Documented glob: anchored, `*` any run, `?` one character, ASCII case-insensitive. */
export function globMatch(pattern, name) {
  const p = pattern.toLowerCase()
  const n = name.toLowerCase()
  // dp over pattern positions, rolling over the name.
  let prev = new Uint8Array(p.length + 1)
  prev[0] = 1
  for (let i = 1; i <= p.length; i++) prev[i] = prev[i - 1] && p[i - 1] === '*' ? 1 : 0
  for (let j = 1; j <= n.length; j++) {
    const cur = new Uint8Array(p.length + 1)
    for (let i = 1; i <= p.length; i++) {
      const c = p[i - 1]
      if (c === '*') cur[i] = cur[i - 1] || prev[i] ? 1 : 0
      else if (c === '?' || c === n[j - 1]) cur[i] = prev[i - 1]
    }
    prev = cur
  }
  return prev[p.length] === 1
}

/** An API rule `<service>:<api>` against a call. */
export function ruleMatches(rule, service, api) {
  const colon = rule.indexOf(':')
  return globMatch(rule.slice(0, colon).trim(), service) && globMatch(rule.slice(colon + 1).trim(), api)
}

export class Oracle {
  constructor(users = USERS, roles = ROLES) {
    this.users = new Map(users.map((u) => [u.id, u]))
    this.roles = new Map(roles.map((r) => [r.name, r]))
  }

  effectiveRights(user) {
    return [...user.rights, ...user.roles.flatMap((name) => this.roles.get(name)?.rights ?? [])]
  }

  /** The decision for a call with a key of this spec (`undefined`: no such key). */
  decide(spec, service, api, now = Date.now()) {
    if (spec === undefined) return false // malformed or unknown
    if (!NAME.test(service) || !NAME.test(api)) return false
    if (spec.state !== 'active') return false
    if (!(now < spec.expiresAt)) return false
    const user = this.users.get(spec.userId)
    if (user === undefined || user.status !== 'active') return false
    if (!this.effectiveRights(user).some((right) => ruleMatches(right, service, api))) return false
    const apiRules = spec.rules.filter((rule) => !/^ip=/i.test(rule.trim()))
    return apiRules.length === 0 || apiRules.some((rule) => ruleMatches(rule, service, api))
  }
}

// ---------------------------------------------------------------------------------------
// Queries: `{ k, service, api }` — k is the index of the key whose secret is presented.

function nearMiss(r, name) {
  const x = r()
  if (x < 0.4) return name + r.pick(['2', 'X', 's', 'Ex'])
  if (x < 0.7 && name.length > 2) return name.slice(0, -1)
  const i = r.int(name.length)
  const c = name[i] === 'e' ? 'a' : 'e'
  return name.slice(0, i) + c + name.slice(i + 1)
}

/** Catalog calls matching each rule (for drawing allowed calls). */
function matchingCalls(rule, cache) {
  let calls = cache.get(rule)
  if (calls === undefined) {
    calls = CATALOG.filter((c) => ruleMatches(rule, c.service, c.api))
    cache.set(rule, calls)
  }
  return calls
}

/**
 * One call for the key of `spec`, aiming at allowed with probability 1/2; the oracle
 * decides. Keys that cannot allow anything (suspended, inactive user) give denials.
 */
export function makeQuery(r, spec, oracle, cache, now) {
  const wantAllowed = r() < 0.5
  let last
  for (let attempt = 0; attempt < 40; attempt++) {
    let service, api
    const x = r()
    if (wantAllowed || x < 0.35) {
      const calls = matchingCalls(r.pick(spec.rules), cache)
      const call = calls.length > 0 ? r.pick(calls) : r.pick(CATALOG)
      service = call.service
      api = call.api
      if (!wantAllowed) api = nearMiss(r, api) // close to a rule, but outside it
    } else {
      const call = r.pick(CATALOG)
      service = call.service
      api = call.api
    }
    // Clients normally send the documented case; a few do not.
    if (r() < 0.04) service = service.toUpperCase()
    if (r() < 0.04) api = api.toLowerCase()
    last = { service, api, allowed: oracle.decide(spec, service, api, now) }
    if (last.allowed === wantAllowed) break
  }
  return last
}

/** `count` queries over keys `0..specs.length-1` (uniformly), balanced to about half allowed. */
export function makeQueries(label, specs, count, oracle, now) {
  const r = rng(label)
  const cache = new Map()
  const queries = new Array(count)
  for (let i = 0; i < count; i++) {
    const k = r.int(specs.length)
    const q = makeQuery(r, specs[k], oracle, cache, now)
    queries[i] = { k, service: q.service, api: q.api, expected: q.allowed }
  }
  return queries
}

/** One query per key, in key order (the cold workload). */
export function oneQueryPerKey(label, specs, oracle, now) {
  const r = rng(label)
  const cache = new Map()
  return specs.map((spec, k) => {
    const q = makeQuery(r, spec, oracle, cache, now)
    return { k, service: q.service, api: q.api, expected: q.allowed }
  })
}

/** Calls used to cross-check rule semantics: every catalog call, near misses and case variants. */
export function probeCalls() {
  const r = rng('probe-calls')
  const calls = []
  for (const c of CATALOG) {
    calls.push(c)
    calls.push({ service: c.service.toUpperCase(), api: c.api.toLowerCase() })
    calls.push({ service: c.service, api: nearMiss(r, c.api) })
    calls.push({ service: nearMiss(r, c.service), api: c.api })
  }
  return calls
}
