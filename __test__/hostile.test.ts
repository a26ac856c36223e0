// Hostile input to isAllowed/explain: never a throw for strings, a TypeError for
// anything else, exact answers for near-miss strings, bounded memory under a flood.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { createRequire } from 'node:module'

import type { KeyStore } from '../index.js'
import type { Reason } from '../index.js'
import { DAY, T0, forgeSecret, frozenStore, issue, randomBase62, throwsTypeError, withUser } from './helpers.js'

function setup(options: { keyPrefix?: string } = {}) {
  const store = withUser(frozenStore(undefined, options))
  const { key, secret } = issue(store, { rules: ['session:*', 'data:*', 'ip=10.0.0.0/8'] })
  const plain = issue(store)
  return { store, key, secret, plain }
}

/** explain's reason, checking that isAllowed agrees and neither throws. */
function reasonOf(store: KeyStore, secret: string, service: string, api: string, ip?: string): Reason {
  const d = store.explain(secret, service, api, ip)
  assert.equal(store.isAllowed(secret, service, api, ip), d.allowed)
  assert.equal(store.isAllowed(secret, service, api, ip), d.allowed)
  return d.reason
}

const MB = 'x'.repeat(1 << 20)

describe('hostile strings never throw', () => {
  test('as the secret: empty, 1 MB, non-ASCII, lone surrogates, NUL bytes, control characters', () => {
    const { store, secret } = setup()
    const cases = [
      '',
      MB,
      `kg_${MB}`,
      'ключ',
      'kg_🔑🔑🔑',
      '\uD800',
      '\uDFFF',
      `kg_${'\uD800'.repeat(49)}`,
      '\u0000',
      `kg_\u0000${secret.slice(4)}`,
      `${secret.slice(0, 10)}\u0000${secret.slice(11)}`,
      `${secret}\u0000`,
      `\u0000${secret}`,
      secret.replace('kg_', 'kg_\u200B'),
      `kg_${'é'.repeat(49)}`,
      ' '.repeat(52),
      '\n',
      secret.toUpperCase(),
      secret.toLowerCase(),
    ]
    for (const s of cases) assert.equal(reasonOf(store, s, 'session', 'getSessionInfo', '10.1.2.3'), 'malformed_key', JSON.stringify(s.slice(0, 60)))
  })

  test('a valid secret with surrounding whitespace or a trailing character is malformed_key', () => {
    const { store, secret, plain } = setup()
    const decorations: Array<(s: string) => string> = [
      (s) => `${s} `,
      (s) => `${s}\n`,
      (s) => `${s}\r\n`,
      (s) => ` ${s}`,
      (s) => `\t${s}`,
      (s) => `${s}\t`,
      (s) => `${s}x`,
      (s) => `${s}é`,
      (s) => `${s}\uD800`,
      (s) => `${s}🔑`,
    ]
    for (const decorate of decorations) {
      assert.equal(reasonOf(store, decorate(secret), 'session', 'getSessionInfo', '10.1.2.3'), 'malformed_key', JSON.stringify(decorate('')))
      assert.equal(reasonOf(store, decorate(plain.secret), 'session', 'getSessionInfo'), 'malformed_key', JSON.stringify(decorate('')))
    }
    assert.equal(reasonOf(store, secret, 'session', 'getSessionInfo', '10.1.2.3'), 'allowed')
  })

  for (const tail of ['x', ' ', 'é', '€', '🔑', '\uD800', '\u0000']) {
    test(`with the longest prefix (16 chars), a valid secret + ${JSON.stringify(tail)} is still malformed_key`, () => {
      const { store, secret } = setup({ keyPrefix: 'abcdefghijklmnop' })
      assert.equal(secret.length, 16 + 1 + 49)
      assert.equal(reasonOf(store, secret, 'session', 'getSessionInfo', '10.1.2.3'), 'allowed')
      assert.equal(reasonOf(store, secret + tail, 'session', 'getSessionInfo', '10.1.2.3'), 'malformed_key')
    })
  }

  test('a secret with a wrong checksum is malformed_key', () => {
    const { store, secret } = setup()
    const body = secret.slice(0, -6)
    for (const checksum of ['000000', 'zzzzzz', secret.slice(-6).split('').reverse().join(''), secret.slice(-6, -1) + (secret.endsWith('A') ? 'B' : 'A')]) {
      if (checksum === secret.slice(-6)) continue
      assert.equal(reasonOf(store, body + checksum, 'session', 'getSessionInfo', '10.1.2.3'), 'malformed_key')
    }
  })

  test('as service/api: empty, 1 MB, non-ASCII, lone surrogates, NUL bytes → invalid_request', () => {
    const { store, secret } = setup()
    const names = ['', MB, 'sessión', 'сессия', '\uD800', 'session\uD800', 'session\u0000', '\u0000', 'session\n', '🔑', 'session\u200B', 'session\u00A0']
    for (const name of names) {
      assert.equal(reasonOf(store, secret, name, 'getSessionInfo', '10.1.2.3'), 'invalid_request', `service ${JSON.stringify(name.slice(0, 20))}`)
      assert.equal(reasonOf(store, secret, 'session', name, '10.1.2.3'), 'invalid_request', `api ${JSON.stringify(name.slice(0, 20))}`)
    }
  })

  const overlong: Array<[string, string]> = [
    ['256 ASCII + é', `${'a'.repeat(256)}é`],
    ['255 ASCII + €', `${'a'.repeat(255)}€`],
    ['255 ASCII + 🔑', `${'a'.repeat(255)}🔑`],
    ['256 ASCII + lone surrogate', `${'a'.repeat(256)}\uD800`],
    ['255 ASCII + lone surrogate', `${'a'.repeat(255)}\uD800`],
    ['256 ASCII + NUL', `${'a'.repeat(256)}\u0000`],
    ['257 ASCII', 'a'.repeat(257)],
  ]
  for (const [label, name] of overlong) {
    test(`a name of ${label} is invalid_request (as api and as service)`, () => {
      const { store, secret } = setup()
      assert.equal(reasonOf(store, secret, 'data', 'a'.repeat(256), '10.1.2.3'), 'allowed')
      assert.equal(reasonOf(store, secret, 'data', name, '10.1.2.3'), 'invalid_request', 'as api')
      assert.equal(reasonOf(store, secret, name, 'getSessionInfo', '10.1.2.3'), 'invalid_request', 'as service')
    })
  }

  test('as ip: empty, 1 MB, non-ASCII, NUL, an address followed by junk → ip_not_allowed (or allowed without IP rules)', () => {
    const { store, secret, plain } = setup()
    const ips = [
      '',
      MB,
      `10.1.2.3${'x'.repeat(100)}`,
      '10.1.2.3\u0000',
      '10.1.2.3 ',
      '１０.1.2.3',
      '10.1.2.3\uD800',
      '\uD800',
      `::ffff:10.1.2.3${'0'.repeat(60)}`,
      `10.1.2.3${' '.repeat(56)}é`,
      `${'0'.repeat(64)}10.1.2.3`,
    ]
    for (const ip of ips) {
      assert.equal(reasonOf(store, secret, 'session', 'getSessionInfo', ip), 'ip_not_allowed', JSON.stringify(ip.slice(0, 40)))
      assert.equal(reasonOf(store, plain.secret, 'session', 'getSessionInfo', ip), 'allowed')
    }
  })

  test('random strings in every argument never throw and isAllowed agrees with explain', () => {
    const { store, secret } = setup()
    const alphabet = ['a', 'Z', '0', '_', '-', '.', '/', ':', '*', '?', ' ', '\u0000', 'é', '\uD800', '🔑', '\n', 'k', 'g']
    const rnd = (n: number) => Math.floor(Math.random() * n)
    const randomString = () => Array.from({ length: rnd(12) }, () => alphabet[rnd(alphabet.length)]).join('')
    for (let i = 0; i < 3000; i++) {
      const s = rnd(3) === 0 ? secret : rnd(2) === 0 ? secret.slice(0, rnd(secret.length + 1)) + randomString() : randomString()
      const service = rnd(2) === 0 ? 'session' : randomString()
      const api = rnd(2) === 0 ? 'getSessionInfo' : randomString()
      const ip = rnd(3) === 0 ? undefined : rnd(2) === 0 ? '10.1.2.3' : randomString()
      const d = store.explain(s, service, api, ip)
      assert.equal(store.isAllowed(s, service, api, ip), d.allowed)
      if (d.allowed) {
        assert.equal(s, secret)
        assert.match(service, /^[A-Za-z0-9_\-./]{1,256}$/)
        assert.match(api, /^[A-Za-z0-9_\-./]{1,256}$/)
      }
    }
  })
})

describe('non-string arguments are a TypeError (also instanceof KeygateError)', () => {
  const values: Array<[string, unknown]> = [
    ['number', 42],
    ['undefined', undefined],
    ['null', null],
    ['object', { toString: () => 'session' }],
    ['array', ['session']],
    ['Symbol', Symbol('secret')],
    ['boolean', true],
    ['bigint', 10n],
    ['String object', new String('session')],
    ['function', () => 'session'],
  ]

  for (const [label, value] of values) {
    test(`${label} as secret, service or api`, () => {
      const { store, secret } = setup()
      const v = value as never
      throwsTypeError(() => store.isAllowed(v, 'session', 'getSessionInfo'))
      throwsTypeError(() => store.isAllowed(secret, v, 'getSessionInfo'))
      throwsTypeError(() => store.isAllowed(secret, 'session', v))
      throwsTypeError(() => store.explain(v, 'session', 'getSessionInfo'))
      throwsTypeError(() => store.explain(secret, v, 'getSessionInfo'))
      throwsTypeError(() => store.explain(secret, 'session', v))
      assert.equal(store.isAllowed(secret, 'session', 'getSessionInfo', '10.1.2.3'), true)
    })
  }

  test('ip: omitted or undefined is fine; a number, object, Symbol, boolean is a TypeError', () => {
    const { store, secret, plain } = setup()
    assert.equal(store.isAllowed(plain.secret, 'session', 'getSessionInfo'), true)
    assert.equal(store.isAllowed(plain.secret, 'session', 'getSessionInfo', undefined), true)
    assert.equal(store.explain(plain.secret, 'session', 'getSessionInfo', undefined).reason, 'allowed')
    assert.equal(store.explain(secret, 'session', 'getSessionInfo', undefined).reason, 'ip_not_allowed')
    for (const ip of [10, { ip: '10.1.2.3' }, Symbol('ip'), true, ['10.1.2.3']]) {
      throwsTypeError(() => store.isAllowed(secret, 'session', 'getSessionInfo', ip as never))
      throwsTypeError(() => store.explain(secret, 'session', 'getSessionInfo', ip as never))
      throwsTypeError(() => store.isAllowed(plain.secret, 'session', 'getSessionInfo', ip as never))
    }
  })

  test('the native check behind isAllowed, called directly, refuses a junk handle or argument without crashing', () => {
    type Binding = { check: (...args: unknown[]) => number; storeInMemory: (options: object) => unknown }
    const binding = createRequire(__filename)('../binding.js') as Binding
    const { store, secret } = setup()
    for (const junk of [undefined, null, 42, {}, 'store', store]) {
      assert.throws(() => binding.check(junk, secret, 'session', 'getSessionInfo'), TypeError)
    }
    const handle = binding.storeInMemory({})
    for (const junk of [undefined, 42, {}, Symbol('s')]) {
      assert.throws(() => binding.check(handle, junk, 'session', 'getSessionInfo'), TypeError)
      assert.throws(() => binding.check(handle, secret, junk, 'getSessionInfo'), TypeError)
      assert.throws(() => binding.check(handle, secret, 'session', junk === undefined ? 1 : junk), TypeError)
      if (junk !== undefined) assert.throws(() => binding.check(handle, secret, 'session', 'getSessionInfo', junk), TypeError)
    }
    assert.throws(() => binding.check(handle, secret, 'session'), TypeError)
    assert.equal(binding.check(handle, secret, 'session', 'getSessionInfo') & 0xff, 2, 'unknown_key in another store')
    assert.equal(binding.check(handle, secret, 'session', 'getSessionInfo', null) & 0xff, 2)
    assert.equal(store.isAllowed(secret, 'session', 'getSessionInfo', '10.1.2.3'), true)
  })

  test('a check bound to a store (bindCheck) refuses junk as check does, answers as it does, and outlives the handle', () => {
    type Check = (...args: unknown[]) => number
    type Binding = { check: Check; bindCheck: (store: unknown) => Check; bindCheckDav: (store: unknown) => Check; storeInMemory: (options: object) => unknown }
    const binding = createRequire(__filename)('../binding.js') as Binding
    const { store, secret } = setup()
    for (const junk of [undefined, null, 42, {}, 'store', store]) {
      assert.throws(() => binding.bindCheck(junk), TypeError)
      assert.throws(() => binding.bindCheckDav(junk), TypeError)
    }
    let handle: unknown = binding.storeInMemory({})
    const check = binding.bindCheck(handle)
    const checkDav = binding.bindCheckDav(handle)
    for (const junk of [undefined, 42, {}, Symbol('s')]) {
      assert.throws(() => check(junk, 'session', 'getSessionInfo'), TypeError)
      assert.throws(() => check(secret, junk, 'getSessionInfo'), TypeError)
      assert.throws(() => checkDav(secret, 'GET', junk === undefined ? 1 : junk), TypeError)
      if (junk !== undefined) assert.throws(() => check(secret, 'session', 'getSessionInfo', junk), TypeError)
    }
    assert.throws(() => check(secret, 'session'), TypeError)
    assert.equal(check(secret, 'session', 'getSessionInfo'), binding.check(handle, secret, 'session', 'getSessionInfo'))
    assert.equal(check(secret, 'session', 'getSessionInfo') & 0xff, 2, 'unknown_key in another store')
    assert.equal(check(secret, 'session', 'getSessionInfo', null) & 0xff, 2)
    assert.equal(checkDav(secret, 'GET', '/files/a') & 0xff, 2)
    assert.equal(checkDav('junk', 'GET', '/files/a') & 0xff, 1, 'malformed_key')
    // The functions hold their own reference to the store: collecting the handle frees nothing they use.
    handle = undefined
    setFlagsFromString('--expose-gc')
    const collect = runInNewContext('gc') as () => void
    collect()
    collect()
    assert.equal(check(secret, 'session', 'getSessionInfo') & 0xff, 2)
    assert.equal(checkDav(secret, 'GET', '/files/a') & 0xff, 2)
  })

  test('the TypeError has code INVALID_ARGUMENT and names the argument', () => {
    const { store, secret } = setup()
    try {
      store.isAllowed(secret, 'session', 42 as never)
      assert.fail('should throw')
    } catch (error) {
      assert.ok(error instanceof TypeError)
      assert.equal((error as { code?: string }).code, 'INVALID_ARGUMENT')
      assert.match(error.message, /api/)
    }
  })
})

describe('every check entry reads a hostile string exactly as its UTF-8 would', () => {
  // The binding reads arguments as UTF-16 and narrows them to bytes (see src/hot.rs):
  // these cases pin down that no entry answers differently from reading UTF-8.
  type Kind = 'api' | 'dav'
  type Check = (...args: unknown[]) => number
  type Explain = (...args: unknown[]) => { reason: Reason }
  type Binding = {
    storeInMemory: (options: object) => unknown
    putUser: (store: unknown, user: object) => unknown
    createKey: (store: unknown, input: object) => { key: { id: string }; secret: string }
    check: Check
    checkDav: Check
    bindCheck: (store: unknown) => Check
    bindCheckDav: (store: unknown) => Check
    explain: Explain
    explainDav: Explain
    explainKey: Explain
    explainKeyDav: Explain
    Reason: Record<string, Reason>
  }
  const binding = createRequire(__filename)('../binding.js') as Binding
  const REASONS = Object.values(binding.Reason)
  const RIGHTS = ['*:*', 'dav=* *']
  const RULES = ['session:*', 'dav=* files/*', 'ip=10.0.0.0/8', 'ip=fe80::/10']

  const store = withUser(frozenStore(), { id: 'integration', rights: RIGHTS })
  const { key, secret } = issue(store, { rules: RULES })
  const handle = binding.storeInMemory({ now: T0.getTime() })
  binding.putUser(handle, { id: 'integration', rights: RIGHTS })
  const raw = binding.createKey(handle, { userId: 'integration', description: '', expiresAt: T0.getTime() + DAY, rules: RULES })
  const [check, checkDav] = [binding.bindCheck(handle), binding.bindCheckDav(handle)]
  /** The secret for the native store: the valid one is its own key's, anything else as given. */
  const sRaw = (s: string) => (s === secret ? raw.secret : s)

  type Entries = {
    isAllowed: (s: string, first: string, second: string, ip: string) => boolean
    explain: (s: string, first: string, second: string, ip: string) => { reason: Reason }
    explainKey: (id: string, first: string, second: string, ip: string) => { reason: Reason }
    check: Check
    boundCheck: Check
    nativeExplain: Explain
    nativeExplainKey: Explain
  }
  /** The public and the native entries, for API calls and for WebDAV requests. */
  const ENTRIES: Record<Kind, Entries> = {
    api: {
      isAllowed: (...a) => store.isAllowed(...a),
      explain: (...a) => store.explain(...a),
      explainKey: (...a) => store.explainKey(...a),
      check: binding.check,
      boundCheck: check,
      nativeExplain: binding.explain,
      nativeExplainKey: binding.explainKey,
    },
    dav: {
      isAllowed: (...a) => store.isAllowedDav(...a),
      explain: (...a) => store.explainDav(...a),
      explainKey: (...a) => store.explainKeyDav(...a),
      check: binding.checkDav,
      boundCheck: checkDav,
      nativeExplain: binding.explainDav,
      nativeExplainKey: binding.explainKeyDav,
    },
  }

  /** The reason of every entry for one request, by entry name (`isAllowed`: its two answers, the second maybe the memo's). */
  function reasons(kind: Kind, [s, ...rest]: string[]): Record<string, string> {
    const entries = ENTRIES[kind]
    const [first, second, ip] = rest
    const code = (packed: number) => REASONS[packed & 0xff]
    const answers: Record<string, string> = {
      explain: entries.explain(s, first, second, ip).reason,
      isAllowed: [entries.isAllowed(s, first, second, ip), entries.isAllowed(s, first, second, ip)].join(),
      'native check': code(entries.check(handle, sRaw(s), ...rest)),
      'native bound check': code(entries.boundCheck(sRaw(s), ...rest)),
      'native explain': entries.nativeExplain(handle, sRaw(s), ...rest).reason,
    }
    if (s === secret) {
      answers.explainKey = entries.explainKey(key.id, first, second, ip).reason
      answers['native explainKey'] = entries.nativeExplainKey(handle, raw.key.id, ...rest).reason
    }
    return answers
  }
  function expectAll(kind: Kind, request: string[], reason: Reason, label: string) {
    const expected = reason === 'allowed' ? 'true,true' : 'false,false'
    for (const [entry, answer] of Object.entries(reasons(kind, request))) {
      assert.equal(answer, entry === 'isAllowed' ? expected : reason, `${entry}: ${label}`)
    }
  }

  /** Characters no valid value holds: NUL, DEL, non-ASCII of one and two bytes in V8 (some whose low byte is a
   * valid character: Ł is 0x141, š 0x161, ａ 0xFF41), lone surrogates, a pair, BOM, a line separator. */
  const HOSTILE = ['\u0000', '\u007F', '\u0080', 'é', '\u00FF', '\u0100', 'Ł', 'š', 'ａ', '\u2028', '\uD800', '\uDFFF', '🔑', '\uFEFF']
  /** `value` with a hostile character before, after, inside, and in place of some of its characters. */
  function spoiled(value: string): string[] {
    const out: string[] = []
    const at = [0, 1, value.length >> 1, value.length - 1].filter((i, n, all) => i >= 0 && i < value.length && all.indexOf(i) === n)
    for (const c of HOSTILE) {
      out.push(c + value, value + c, value.slice(0, value.length >> 1) + c + value.slice(value.length >> 1), c.repeat(3))
      for (const i of at) out.push(value.slice(0, i) + c + value.slice(i + 1))
    }
    // The same characters widened to two-byte ones that keep the ASCII value as their low byte.
    for (const i of at) {
      for (const high of [0x100, 0xff00, 0xd800]) out.push(value.slice(0, i) + String.fromCharCode(high | value.charCodeAt(i)) + value.slice(i + 1))
    }
    return out
  }
  /** A valid value held in a two-byte string (sliced off a string with a non-Latin-1 character). */
  const twoByte = (value: string) => `${value}\u0100${'x'.repeat(20)}`.slice(0, value.length)

  const API = [secret, 'session', 'getSessionInfo', '10.1.2.3']
  const DAV = [secret, 'PROPFIND', '/files/a.txt', '10.1.2.3']
  const denial: Reason[] = ['malformed_key', 'invalid_request', 'invalid_request', 'ip_not_allowed']
  const replaced = (request: string[], field: number, value: string) => request.map((v, i) => (i === field ? value : v))

  test('valid requests are allowed by every entry, also when held in two-byte strings', () => {
    for (const [kind, request] of [
      ['api', API],
      ['dav', DAV],
    ] as const) {
      expectAll(kind, request, 'allowed', kind)
      expectAll(kind, request.map(twoByte), 'allowed', `${kind} as two-byte strings`)
      for (let field = 0; field < 4; field++) expectAll(kind, replaced(request, field, twoByte(request[field])), 'allowed', `${kind} field ${field} two-byte`)
    }
  })

  test('a hostile character anywhere in the secret, a name, the method, the path or the address denies it as its UTF-8 would', () => {
    for (const [kind, request] of [
      ['api', API],
      ['dav', DAV],
    ] as const) {
      for (let field = 0; field < 4; field++) {
        for (const value of spoiled(request[field])) {
          expectAll(kind, replaced(request, field, value), denial[field], `${kind} field ${field} = ${JSON.stringify(value)}`)
        }
      }
    }
  })

  test('over-long values read as over-long, never as a valid prefix', () => {
    const at = (n: number, c = 'a') => c.repeat(n)
    expectAll('api', [secret, 'session', at(256), '10.1.2.3'], 'allowed', 'a 256-character api')
    const longestPath = `/files/${at(1024 - 'files/'.length)}`
    expectAll('dav', [secret, at(32, 'A'), longestPath, '10.1.2.3'], 'allowed', 'a 32-letter method, a 1,024-character path')
    const cases: Array<[Kind, number, string, Reason]> = []
    for (let extra = 1; extra < 24; extra++) {
      cases.push(['api', 0, secret + at(extra, '0'), 'malformed_key'], ['api', 2, at(256 + extra), 'invalid_request'])
      cases.push(['dav', 1, at(32 + extra, 'A'), 'invalid_request'], ['dav', 2, longestPath + at(extra), 'invalid_request'])
    }
    for (const c of HOSTILE) {
      for (const tail of [c, c.repeat(3), c.repeat(600)]) {
        cases.push(['api', 0, secret + tail, 'malformed_key'], ['api', 2, at(256) + tail, 'invalid_request'], ['api', 2, at(255) + tail, 'invalid_request'])
        cases.push(['dav', 1, at(32, 'A') + tail, 'invalid_request'], ['dav', 2, longestPath + tail, 'invalid_request'])
        cases.push(['dav', 2, longestPath.slice(0, -1) + tail, 'invalid_request'], ['api', 3, `10.1.2.3${tail}`, 'ip_not_allowed'])
      }
      cases.push(['api', 2, at(300, c), 'invalid_request'], ['dav', 2, `/${at(1100, c)}`, 'invalid_request'])
    }
    for (const [kind, field, value, reason] of cases) {
      expectAll(kind, replaced(kind === 'api' ? API : DAV, field, value), reason, `${kind} field ${field} = ${JSON.stringify(value.slice(-40))} (${value.length})`)
    }
  })

  test('an IPv6 zone may hold anything, hostile characters too; the address before it may not', () => {
    const longest = 'fe80:0000:0000:0000:0000:ffff:255.255.255.255'
    assert.equal(longest.length, 45)
    const cases: Array<[string, Reason]> = [
      ['fe80::1%eth0', 'allowed'],
      [`${longest}%eth0`, 'allowed'],
      [`${longest}%`, 'ip_not_allowed'],
      ['fe80::1%', 'ip_not_allowed'],
    ]
    for (const c of HOSTILE) {
      cases.push([`fe80::1%${c}`, 'allowed'], [`fe80::1%eth${c}0`, 'allowed'], [`fe80::1%${c.repeat(100)}`, 'allowed'])
      cases.push([`${longest}%${c}`, 'allowed'], [`${longest}%${c.repeat(30)}`, 'allowed'])
      cases.push([`fe80::${c}1%eth0`, 'ip_not_allowed'], [`fe80::1${c}%eth0`, 'ip_not_allowed'], [`${longest}${c}%eth0`, 'ip_not_allowed'])
      cases.push([`${c}%eth0`, 'ip_not_allowed'], [`%${c}`, 'ip_not_allowed'])
    }
    for (const [ip, reason] of cases) {
      expectAll('api', replaced(API, 3, ip), reason, `api ip ${JSON.stringify(ip)}`)
      expectAll('dav', replaced(DAV, 3, ip), reason, `dav ip ${JSON.stringify(ip)}`)
    }
  })
})

describe('under a flood', () => {
  function gc(): () => void {
    setFlagsFromString('--expose-gc')
    return runInNewContext('gc') as () => void
  }

  test('200,000 checks with random well-formed and garbage secrets do not break later answers', () => {
    const store = withUser(frozenStore(), { id: 'integration', rights: ['session:*', 'data:*'] })
    const a = issue(store, { rules: ['session:get*', 'ip=10.0.0.0/8'] })
    const b = issue(store)
    const c = issue(store, { state: 'suspended' })
    const expected: Array<[string, string, string, string | undefined, Reason]> = [
      [a.secret, 'session', 'getSessionInfo', '10.1.2.3', 'allowed'],
      [a.secret, 'session', 'getSessionInfo', '192.168.1.1', 'ip_not_allowed'],
      [a.secret, 'session', 'userLogon', '10.1.2.3', 'no_matching_rule'],
      [b.secret, 'data', 'queryExec', undefined, 'allowed'],
      [b.secret, 'admin', 'userCreate', undefined, 'user_lacks_right'],
      [c.secret, 'session', 'getSessionInfo', undefined, 'suspended'],
    ]
    const check = (label: string) => {
      for (const [secret, service, api, ip, reason] of expected) {
        assert.equal(store.explain(secret, service, api, ip).reason, reason, `${label}: ${service}:${api}`)
        assert.equal(store.isAllowed(secret, service, api, ip), reason === 'allowed', `${label}: isAllowed ${service}:${api}`)
      }
    }
    check('before')
    let allowed = 0
    for (let i = 0; i < 200_000; i++) {
      let secret: string
      switch (i % 4) {
        case 0:
          secret = forgeSecret()
          break
        case 1:
          secret = `kg_${randomBase62(49)}`
          break
        case 2:
          secret = randomBytes(8 + (i % 60)).toString('base64')
          break
        default:
          secret = i % 8 === 3 ? a.secret : b.secret
      }
      const api = i % 4 === 3 ? `get${i}` : 'getSessionInfo'
      if (store.isAllowed(secret, 'session', api, i % 3 === 0 ? '10.1.2.3' : undefined)) allowed++
    }
    // Only the real keys can have been allowed (b always for session:*, a only from 10/8).
    assert.ok(allowed > 0 && allowed <= 50_000, `allowed ${allowed}`)
    check('after the flood')
    store.setState(b.key.id, 'suspended')
    assert.equal(store.isAllowed(b.secret, 'data', 'queryExec'), false)
    assert.equal(store.explain(b.secret, 'data', 'queryExec').reason, 'suspended')
    assert.equal(store.isAllowed(b.secret, 'session', 'get3'), false)
  })

  test('memory stays bounded: 400,000 distinct allowed calls do not grow the heap without limit', () => {
    const collect = gc()
    const store = withUser(frozenStore())
    const { secret } = issue(store)
    const flood = (from: number, count: number) => {
      for (let i = from; i < from + count; i++) {
        if (!store.isAllowed(secret, `svc${i % 1000}`, `api${i}`, `10.0.${i % 256}.1`)) assert.fail(`call ${i} denied`)
      }
    }
    flood(0, 100_000)
    collect()
    const afterFirst = process.memoryUsage().heapUsed
    flood(100_000, 300_000)
    collect()
    const afterSecond = process.memoryUsage().heapUsed
    const growthMb = (afterSecond - afterFirst) / (1 << 20)
    assert.ok(growthMb < 12, `heap grew by ${growthMb.toFixed(1)} MB over 300,000 more distinct calls`)
    assert.equal(store.isAllowed(secret, 'session', 'getSessionInfo'), true)
    assert.equal(store.explain(secret, 'session', 'getSessionInfo').reason, 'allowed')
  })

  test('memory stays bounded for one secret asked with ever new names and ips', () => {
    const collect = gc()
    const store = withUser(frozenStore())
    const { secret } = issue(store, { rules: ['ip=10.0.0.0/8'] })
    const flood = (from: number, count: number) => {
      for (let i = from; i < from + count; i++) {
        store.isAllowed(secret, 'session', 'getSessionInfo', `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`)
      }
    }
    flood(0, 100_000)
    collect()
    const afterFirst = process.memoryUsage().heapUsed
    flood(100_000, 300_000)
    collect()
    const growthMb = (process.memoryUsage().heapUsed - afterFirst) / (1 << 20)
    assert.ok(growthMb < 12, `heap grew by ${growthMb.toFixed(1)} MB`)
    assert.equal(store.isAllowed(secret, 'session', 'getSessionInfo', '10.200.0.1'), true)
    assert.equal(store.isAllowed(secret, 'session', 'getSessionInfo', '11.0.0.1'), false)
  })

  test('a flood of unknown well-formed secrets does not grow the heap without limit', () => {
    const collect = gc()
    const store = withUser(frozenStore())
    const { secret } = issue(store)
    const secrets = Array.from({ length: 2000 }, () => forgeSecret())
    const flood = (rounds: number, salt: number) => {
      for (let r = 0; r < rounds; r++) {
        for (let i = 0; i < secrets.length; i++) store.isAllowed(secrets[i]!, 'session', `api${salt}x${r}`)
      }
    }
    flood(25, 0)
    collect()
    const before = process.memoryUsage().heapUsed
    flood(75, 1)
    collect()
    const growthMb = (process.memoryUsage().heapUsed - before) / (1 << 20)
    assert.ok(growthMb < 12, `heap grew by ${growthMb.toFixed(1)} MB`)
    assert.equal(store.isAllowed(secret, 'session', 'getSessionInfo'), true)
  })
})
