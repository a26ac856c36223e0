// isAllowedDav / explainDav / explainKeyDav against an independent reference written here from
// the contract (SPEC.md, "Rules" and "The decision"): random users, roles and keys holding API,
// WebDAV and IP rules, random WebDAV requests (hostile paths and methods among them), and admin
// changes between checks so that an answer the memo kept would show if it went stale. Each
// request is asked several times (the memo answers the repeats), by a key id too, and as an API
// call with the same strings (WebDAV rules never decide it, nor API rules a WebDAV request), and
// through the HTTP guard as a request under /dav/ (guard.check: its reason, or its path).
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'

import { KeyStore } from '../index.js'
import type { Decision, UserStatus } from '../index.js'
import { DAY, HOUR, T0, at } from './helpers.js'
import { runs } from './support/contract.js'
import { createGuard } from 'keygate/http'
import type { IncomingMessage } from 'node:http'

// ---- the reference ------------------------------------------------------------------

const PATH_CHAR = /^[A-Za-z0-9_.\-/~]$/
const MAX_PATH = 1024

/** A glob as the contract reads it: anchored, ASCII case-insensitive, `*` any run (`/` too), `?` one character. */
function globMatches(pattern: string, text: string): boolean {
  const p = pattern.toLowerCase()
  const t = text.replace(/[A-Z]/g, (c) => c.toLowerCase())
  // Plain dynamic programming (no regex engine: independent of how the core matches).
  let row = new Array<boolean>(t.length + 1).fill(false)
  row[0] = true
  for (const c of p) {
    const next = new Array<boolean>(t.length + 1).fill(false)
    if (c === '*') {
      let any = false
      for (let j = 0; j <= t.length; j++) {
        any = any || row[j]
        next[j] = any
      }
    } else {
      for (let j = 1; j <= t.length; j++) next[j] = row[j - 1] && (c === '?' || c === t[j - 1])
    }
    row = next
  }
  return row[t.length]
}

/** Segments of a path without its leading `/`: none empty but a last one, none `.` or `..`. */
function segmentsOk(path: string): boolean {
  const segments = path.split('/')
  return segments.every((s, i) => (s !== '' || i === segments.length - 1) && s !== '.' && s !== '..')
}

type RefRule =
  | { kind: 'api'; service: string; api: string; text: string }
  | { kind: 'dav'; method: string | null; path: string; text: string }
  | { kind: 'ip'; text: string }

/** The reference's reading of a WebDAV rule, or null when the contract refuses it. */
function parseDav(rule: string): RefRule | null {
  const m = /^dav=(.*)$/i.exec(rule.trim())
  if (m === null) return null
  const body = m[1]
  const space = body.indexOf(' ')
  if (space < 0) return null
  const method = body.slice(0, space)
  let path = body.slice(space + 1)
  if (method !== '*' && !/^[A-Za-z]{1,32}$/.test(method)) return null
  if (path.startsWith('/')) path = path.slice(1)
  if (path === '' || ![...path].every((c) => c === '*' || c === '?' || PATH_CHAR.test(c))) return null
  // A literal empty, `.` or `..` segment could match no valid request: refused (README).
  if (!segmentsOk(path)) return null
  const upper = method === '*' ? null : method.toUpperCase()
  return { kind: 'dav', method: upper, path, text: `dav=${upper ?? '*'} ${path}` }
}

function parseApi(rule: string): RefRule {
  const [service, api] = rule.split(':')
  return { kind: 'api', service, api, text: rule }
}

/** The IP rules this test uses and the caller addresses each holds (written out by hand). */
const IP_RULES: Record<string, string[]> = {
  'ip=10.0.0.0/8': ['10.1.2.3', '::ffff:10.1.2.3'],
  'ip=192.168.1.7': ['192.168.1.7'],
  'ip=::1': ['::1'],
}
const CALLER_IPS = [undefined, '10.1.2.3', '::ffff:10.1.2.3', '192.168.1.7', '192.168.1.8', '::1', 'not an ip']

function parseRule(rule: string): RefRule {
  if (rule.startsWith('ip=')) return { kind: 'ip', text: rule }
  if (rule.toLowerCase().startsWith('dav=')) {
    const dav = parseDav(rule)
    if (dav === null) throw new Error(`the reference refuses ${rule}`)
    return dav
  }
  return parseApi(rule)
}

function davValid(method: string, path: string): boolean {
  if (!/^[A-Za-z]{1,32}$/.test(method)) return false
  const p = path.startsWith('/') ? path.slice(1) : path
  return p.length >= 1 && p.length <= MAX_PATH && [...p].every((c) => PATH_CHAR.test(c)) && segmentsOk(p)
}

function davMatches(rule: RefRule, method: string, path: string): boolean {
  if (rule.kind !== 'dav') return false
  const p = path.startsWith('/') ? path.slice(1) : path
  return (rule.method === null || rule.method === method.toUpperCase()) && globMatches(rule.path, p)
}

function apiMatches(rule: RefRule, service: string, api: string): boolean {
  return rule.kind === 'api' && globMatches(rule.service, service) && globMatches(rule.api, api)
}

interface RefUser {
  status: UserStatus
  rights: string[]
  roles: string[]
}
interface RefKey {
  id: string
  secret: string
  userId: string
  state: 'active' | 'suspended' | 'revoked'
  expiresAt: number
  rules: string[]
}
interface RefWorld {
  now: number
  users: Map<string, RefUser>
  roles: Map<string, string[]>
  keys: RefKey[]
}

type Expected = { reason: string; keyId?: string; userId?: string; matchedRule?: string }

/**
 * Steps 3–9 for a known key, as the contract orders them, for a request of `kind` (`valid`: step 3;
 * `match` tells whether a rule of that kind matches the request).
 */
function decide(w: RefWorld, key: RefKey, kind: 'api' | 'dav', valid: boolean, match: (r: RefRule) => boolean, ip: string | undefined): Expected {
  const ids = { keyId: key.id, userId: key.userId }
  if (!valid) return { reason: 'invalid_request', ...ids }
  if (key.state !== 'active') return { reason: key.state, ...ids }
  if (w.now >= key.expiresAt) return { reason: 'expired', ...ids }
  const user = w.users.get(key.userId)
  if (user === undefined || user.status !== 'active') return { reason: 'user_inactive', ...ids }
  const rights = [...user.rights, ...user.roles.flatMap((r) => w.roles.get(r) ?? [])].map(parseRule)
  if (!rights.some(match)) return { reason: 'user_lacks_right', ...ids }
  const rules = key.rules.map(parseRule)
  const matched = rules.find(match)
  if (matched === undefined && rules.some((r) => r.kind === kind)) return { reason: 'no_matching_rule', ...ids }
  const ipRules = rules.filter((r) => r.kind === 'ip')
  const ipOk = ipRules.length === 0 || (ip !== undefined && ipRules.some((r) => IP_RULES[r.text].includes(ip)))
  return { reason: ipOk ? 'allowed' : 'ip_not_allowed', ...ids, ...(matched ? { matchedRule: matched.text } : {}) }
}

function expectedDav(w: RefWorld, key: RefKey, method: string, path: string, ip: string | undefined): Expected {
  return decide(w, key, 'dav', davValid(method, path), (r) => davMatches(r, method, path), ip)
}

function expectedApi(w: RefWorld, key: RefKey, service: string, api: string, ip: string | undefined): Expected {
  const name = /^[A-Za-z0-9_.\-/]{1,256}$/
  return decide(w, key, 'api', name.test(service) && name.test(api), (r) => apiMatches(r, service, api), ip)
}

function shown(decision: Decision): Expected {
  const { allowed, ...rest } = decision
  assert.equal(allowed, decision.reason === 'allowed', 'allowed agrees with the reason')
  return rest
}

// ---- arbitraries ----------------------------------------------------------------------

// Paths built of segments, with a few hostile ones among them, so that most requests are valid
// and rules match them often; patterns of segments with wildcards, and of loose characters.
const segment = fc.oneof(
  { weight: 12, arbitrary: fc.constantFrom('a', 'A', 'b', 'ab', 'aB', 'x.y', '~u', '.a', '..a', '...', 'a-_') },
  { weight: 1, arbitrary: fc.constantFrom('.', '..', '') },
)
const patternSegment = fc.constantFrom('a', 'A', 'b', 'ab', '*', '?', 'a*', '*b', '~u', '.a', 'x.y', '?b', '*.?', '.', '')
const patternChar = fc.constantFrom('a', 'A', 'b', '/', '.', '~', '-', '_', '*', '?', '*', '/')
const pathChar = fc.constantFrom('a', 'A', 'b', 'B', '/', '.', '~', '-', '_', '/', 'a', 'b')
const str = (chars: fc.Arbitrary<string>, max: number) => fc.array(chars, { minLength: 0, maxLength: max }).map((cs) => cs.join(''))
const joined = (parts: fc.Arbitrary<string>, max: number) =>
  fc
    .tuple(fc.boolean(), fc.array(parts, { minLength: 1, maxLength: max }), fc.boolean())
    .map(([lead, ps, trail]) => `${lead ? '/' : ''}${ps.join('/')}${trail ? '/' : ''}`)
const patternText = fc.oneof({ weight: 3, arbitrary: joined(patternSegment, 4) }, { weight: 1, arbitrary: str(patternChar, 9) })

const davRuleText = fc.tuple(fc.constantFrom('GET', 'get', 'PropFind', '*', '*', 'PUT', 'MKCOL'), patternText).map(([m, p]) => `dav=${m} ${p}`)
const apiRuleText = fc.constantFrom('*:*', 'session:*', 'a:b', 'data:get*', 'a*:?')
const ipRuleText = fc.constantFrom(...Object.keys(IP_RULES))
const anyRule = fc.oneof({ weight: 6, arbitrary: davRuleText }, { weight: 2, arbitrary: apiRuleText }, { weight: 1, arbitrary: ipRuleText })
const rightRule = fc.oneof(
  { weight: 3, arbitrary: davRuleText },
  { weight: 1, arbitrary: apiRuleText },
  { weight: 2, arbitrary: fc.constantFrom('dav=* *', 'dav=GET *', 'dav=* /a*') },
)

const method = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom('GET', 'get', 'Get', 'PUT', 'PROPFIND', 'propfind', 'MKCOL', 'A'.repeat(32)) },
  { weight: 1, arbitrary: fc.constantFrom('G3T', '', '*', 'A'.repeat(33), 'GET ', 'ÉTÉ') },
)
const path = fc.oneof(
  { weight: 8, arbitrary: joined(segment, 4) },
  { weight: 2, arbitrary: fc.tuple(fc.boolean(), str(pathChar, 10)).map(([slash, p]) => (slash ? '/' : '') + p) },
  { weight: 1, arbitrary: fc.constantFrom('a%2Fb', 'a b', 'a\\b', 'a*', 'a?', 'caf\u00e9', 'a\0', '//', '/', 'a/:b', 'a;b', 'a#b') },
  {
    weight: 1,
    arbitrary: fc.constantFrom('a'.repeat(1024), `/${'a'.repeat(1024)}`, 'a'.repeat(1025), `/${'a'.repeat(1025)}`, `${'ab/'.repeat(341)}a`, `${'ab/'.repeat(341)}ab`),
  },
)
const callerIp = fc.constantFrom(...CALLER_IPS)

const userDesc = fc.record({
  status: fc.constantFrom<UserStatus>('active', 'active', 'active', 'suspended'),
  rights: fc.array(rightRule, { maxLength: 3 }),
  roles: fc.subarray(['r0', 'r1']),
})
const keyDesc = fc.record({
  user: fc.constantFrom('u0', 'u1'),
  state: fc.constantFrom<'active' | 'suspended'>('active', 'active', 'active', 'suspended'),
  expiresInHours: fc.constantFrom(1, 5, 48),
  rules: fc.array(anyRule, { maxLength: 4 }),
})

/** A change between checks: each can alter decisions the memo holds. */
const change = fc.oneof(
  fc.record({ op: fc.constant('rules' as const), key: fc.nat(3), rules: fc.array(anyRule, { maxLength: 4 }) }),
  fc.record({ op: fc.constant('user' as const), user: fc.constantFrom('u0', 'u1'), desc: userDesc }),
  fc.record({ op: fc.constant('role' as const), role: fc.constantFrom('r0', 'r1'), rights: fc.array(rightRule, { maxLength: 3 }) }),
  fc.record({ op: fc.constant('state' as const), key: fc.nat(3), state: fc.constantFrom<'active' | 'suspended' | 'revoked'>('active', 'suspended', 'revoked') }),
  fc.record({ op: fc.constant('clock' as const), hours: fc.constantFrom(0, 2, 6) }),
)

const request = fc.record({ key: fc.nat(4), method, path, ip: callerIp })
const step = fc.oneof({ weight: 4, arbitrary: request.map((r) => ({ op: 'check' as const, ...r })) }, { weight: 1, arbitrary: change })

// ---- the test -------------------------------------------------------------------------

/** The rules of `list` the reference accepts (the test checks validateRule agrees on each). */
function accepted(list: string[]): string[] {
  const out: string[] = []
  for (const rule of list) {
    const parsed = rule.toLowerCase().startsWith('dav=') ? parseDav(rule) : parseRule(rule)
    let normalised: string | null = null
    try {
      normalised = KeyStore.validateRule(rule)
    } catch {
      normalised = null
    }
    assert.equal(normalised, parsed?.text ?? null, `validateRule(${JSON.stringify(rule)})`)
    if (parsed !== null) out.push(parsed.text)
  }
  return out
}

describe('isAllowedDav / explainDav / explainKeyDav against a reference of the contract', () => {
  test('random worlds, requests and changes between them', () => {
    fc.assert(
      fc.property(
        fc.tuple(userDesc, userDesc),
        fc.tuple(fc.array(rightRule, { maxLength: 3 }), fc.array(rightRule, { maxLength: 3 })),
        fc.array(keyDesc, { minLength: 1, maxLength: 4 }),
        fc.array(step, { minLength: 1, maxLength: 40 }),
        (userDescs, roleRights, keyDescs, steps) => {
          const store = KeyStore.inMemory({ now: T0 })
          try {
            const w: RefWorld = { now: T0.getTime(), users: new Map(), roles: new Map(), keys: [] }
            const putRole = (name: string, rights: string[]) => {
              const kept = accepted(rights)
              store.putRole({ name, rights: kept })
              w.roles.set(name, kept)
            }
            const putUser = (id: string, d: { status: UserStatus; rights: string[]; roles: string[] }) => {
              const kept = accepted(d.rights)
              store.putUser({ id, status: d.status, rights: kept, roles: d.roles })
              w.users.set(id, { status: d.status, rights: kept, roles: d.roles })
            }
            putRole('r0', roleRights[0])
            putRole('r1', roleRights[1])
            putUser('u0', userDescs[0])
            putUser('u1', userDescs[1])
            for (const k of keyDescs) {
              const rules = accepted(k.rules)
              const expiresAt = at(T0, k.expiresInHours * HOUR)
              const { key, secret } = store.createKey({ userId: k.user, description: '', expiresAt, rules, state: k.state })
              w.keys.push({ id: key.id, secret, userId: k.user, state: k.state, expiresAt: expiresAt.getTime(), rules })
            }
            const guard = createGuard(store)
            /** The HTTP guard on the same request under /dav/ (its path without the leading `/`), from the caller's address. */
            const guarded = (secret: string, method: string, path: string, ip: string | undefined, reason: string, label: string) => {
              const rest = path.startsWith('/') ? path.slice(1) : path
              // Only what a request line can carry and the guard passes on as it is: the path alphabet, an address that parses.
              if (!/^[A-Za-z0-9_.\-/~]*$/.test(rest) || ip?.includes(' ')) return
              const req = { method, url: `/dav/${rest}?q=1`, rawHeaders: ['Authorization', `Bearer ${secret}`], headers: {}, socket: { remoteAddress: ip } }
              const result = guard.check(req as unknown as IncomingMessage)
              if (result.ok) {
                assert.equal(reason, 'allowed', `guard ${label}`)
                assert.deepEqual([result.kind, result.kind === 'dav' && result.path], ['dav', rest], `guard ${label}`)
              } else {
                assert.equal(result.body.reason, reason, `guard ${label}`)
              }
            }
            // A well-formed secret of no key: its key deleted.
            const gone = store.createKey({ userId: 'u0', description: '', expiresAt: at(T0, DAY) })
            store.deleteKey(gone.key.id)
            for (const s of steps) {
              if (s.op === 'check') {
                const key = w.keys[s.key % (w.keys.length + 1)]
                const label = `${JSON.stringify(s)}`
                if (key === undefined) {
                  for (let i = 0; i < 3; i++) assert.equal(store.isAllowedDav(gone.secret, s.method, s.path, s.ip), false, label)
                  assert.equal(store.explainDav(gone.secret, s.method, s.path, s.ip).reason, 'unknown_key', label)
                  continue
                }
                const expected = expectedDav(w, key, s.method, s.path, s.ip)
                // Repeated: the key's first check is not remembered, its next ones may be answered by the memo.
                for (let i = 0; i < 3; i++) {
                  assert.equal(
                    store.isAllowedDav(key.secret, s.method, s.path, s.ip),
                    expected.reason === 'allowed',
                    `isAllowedDav #${i + 1} ${label}: ${expected.reason}`,
                  )
                }
                assert.deepEqual(shown(store.explainDav(key.secret, s.method, s.path, s.ip)), expected, `explainDav ${label}`)
                assert.deepEqual(shown(store.explainKeyDav(key.id, s.method, s.path, s.ip)), expected, `explainKeyDav ${label}`)
                guarded(key.secret, s.method, s.path, s.ip, expected.reason, label)
                // The same strings as an API call: decided by API rules and rights only.
                const api = expectedApi(w, key, s.method, s.path, s.ip)
                for (let i = 0; i < 2; i++) {
                  assert.equal(store.isAllowed(key.secret, s.method, s.path, s.ip), api.reason === 'allowed', `isAllowed #${i + 1} ${label}: ${api.reason}`)
                }
                assert.deepEqual(shown(store.explain(key.secret, s.method, s.path, s.ip)), api, `explain ${label}`)
              } else if (s.op === 'rules') {
                const key = w.keys[s.key % w.keys.length]
                if (key.state === 'revoked') continue
                const rules = accepted(s.rules)
                store.updateKey(key.id, { rules })
                key.rules = rules
              } else if (s.op === 'user') {
                putUser(s.user, s.desc)
              } else if (s.op === 'role') {
                putRole(s.role, s.rights)
              } else if (s.op === 'state') {
                const key = w.keys[s.key % w.keys.length]
                if (key.state === 'revoked') continue
                store.setState(key.id, s.state)
                key.state = s.state
              } else {
                w.now = T0.getTime() + s.hours * HOUR
                store.setNow(new Date(w.now))
              }
            }
          } finally {
            store.close()
          }
        },
      ),
      runs(300),
    )
  })
})
