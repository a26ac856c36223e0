// Hostile arguments for the property tests, as printable descriptions.
//
// fast-check prints a failing input; a Proxy whose traps throw cannot be printed, a 1 MB
// string should not be, and a real secret only exists once a store made it. So the
// arbitraries produce plain descriptions (`{ weird: 'proxyThrows' }`, `{ repeat: 'é', times:
// 1048576 }`, `{ secret: 0, pre: 'u', post: '' }`) that `resolve` turns into the value for
// one store, just before the call.
import fc from 'fast-check'

import type { KeyStore } from '../../index.js'

/** What a description can refer to in the store it is resolved against. */
export interface World {
  store: KeyStore
  /** Secrets this store issued (never shown anywhere but here). */
  secrets: string[]
  keyIds: string[]
  userIds: string[]
  roleNames: string[]
  /** A temporary directory this store may write files in. */
  dir: string
  /** Set by `resolve` when a value throws from a getter or trap of its own. */
  hostileUsed: boolean
  /** False once `setNow(null)` returned the store to the system clock (then `now()` moves by itself). */
  clockFrozen: boolean
}

/** The error thrown by the caller's own hostile objects (getters, Proxy traps, toString). */
export class HostileError extends Error {
  constructor(where: string) {
    super(`hostile object: ${where}`)
    this.name = 'HostileError'
  }
}

export type NearMiss = 'flipLast' | 'flipFirst' | 'dropLast' | 'extra' | 'upper' | 'zeroWidth' | 'otherPrefix' | 'spaced'

export type Weird =
  | 'undefined'
  | 'null'
  | 'NaN'
  | 'Infinity'
  | 'negZero'
  | 'number'
  | 'bigint'
  | 'symbol'
  | 'true'
  | 'emptyArray'
  | 'arrayOfString'
  | 'emptyObject'
  | 'throwingGetters'
  | 'proxyThrows'
  | 'revokedProxy'
  | 'transparentProxy'
  | 'date'
  | 'invalidDate'
  | 'proxyDate'
  | 'fakeDate'
  | 'function'
  | 'stringObject'
  | 'toStringObject'

/** A string, by description. */
export type StringDesc =
  | string
  | { repeat: string; times: number }
  | { secret: number; pre: string; post: string }
  | { nearMiss: number; how: NearMiss }
  | { ref: 'keyId' | 'userId' | 'roleName'; i: number }

export type Desc =
  | StringDesc
  | { weird: Weird; n?: number }
  | { at: number } // a Date this many ms from the store clock
  | { list: Desc[]; shape?: 'plain' | 'sparse' | 'proxy' | 'frozen' }
  | { obj: { [field: string]: Desc }; shape?: 'plain' | 'nullProto' | 'proxy' | 'frozen' | 'inherited' }
  | { absent: true } // a trailing argument left out

export const ABSENT: Desc = { absent: true }
export const isAbsent = (d: Desc): boolean => typeof d === 'object' && d !== null && 'absent' in d

// ---- arbitraries -----------------------------------------------------------

/** Characters that have broken or spoofed things before, one each. */
export const SPECIALS = [
  '\u202E', // RIGHT-TO-LEFT OVERRIDE
  '\u202A',
  '\u2066', // LEFT-TO-RIGHT ISOLATE
  '\u2069',
  '\u200B', // ZERO WIDTH SPACE
  '\uFEFF',
  '\u0000',
  '\u0007',
  '\u001B',
  '\n',
  '\r',
  '\t',
  '\u007F',
  '\u0085',
  '\u2028',
  '\uD800', // lone high surrogate
  '\uDFFF', // lone low surrogate
  '\uD83D\uDE00', // 😀 (astral)
  'é',
  'e\u0301', // e + combining acute
  'К',
  '€',
  ' ',
  ':',
  '*',
  '?',
  '=',
  '/',
  '%',
  '"',
  '\\',
]
const ASCII_SPECIALS = SPECIALS.filter((c) => /^[\x00-\x7f]+$/.test(c))

/** Strings a valid call would use: ids, role names, states, statuses. */
const PLAUSIBLE = ['u0', 'u1', 'role0', 'active', 'suspended', 'revoked', 'archived', 'key_', 'kg_', 'a', 'x@y.z', '_', '-', '.']

const token = fc.stringMatching(/^[A-Za-z0-9_.@-]{1,12}$/)
/** A code unit, so lone surrogates come up. */
const codeUnit = fc.integer({ min: 0, max: 0xffff }).map((n) => String.fromCharCode(n))

function spliced(specials: string[]): fc.Arbitrary<string> {
  return fc.tuple(token, fc.constantFrom(...specials), fc.nat()).map(([t, special, at]) => t.slice(0, at % (t.length + 1)) + special + t.slice(at % (t.length + 1)))
}

const nearMissHow = fc.constantFrom<NearMiss>('flipLast', 'flipFirst', 'dropLast', 'extra', 'upper', 'zeroWidth', 'otherPrefix', 'spaced')

/** A real secret of the store, with text around it. */
export const secretRef: fc.Arbitrary<StringDesc> = fc.record({
  secret: fc.nat(20),
  pre: fc.constantFrom('', 'u', 'x_', 'kg_', ' ', '\u202E', 'a:'),
  post: fc.constantFrom('', ':*', '_', ' ', '@x', '\u0000'),
})
export const nearMissRef: fc.Arbitrary<StringDesc> = fc.record({ nearMiss: fc.nat(20), how: nearMissHow })
const idRef: fc.Arbitrary<StringDesc> = fc.record({ ref: fc.constantFrom<'keyId' | 'userId' | 'roleName'>('keyId', 'userId', 'roleName'), i: fc.nat(20) })
const huge: fc.Arbitrary<StringDesc> = fc.record({
  repeat: fc.constantFrom('x', 'é', '\uD83D\uDE00', '\uD800', '\u202E', '\u0000', 'a:'),
  times: fc.constantFrom(1 << 20, 1025, 257, 129),
})

/** Any string: full Unicode (astral, lone surrogates, bidi, NUL, controls), 1 MB, real and near-miss secrets. */
export const anyString: fc.Arbitrary<StringDesc> = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...PLAUSIBLE) },
  { weight: 3, arbitrary: idRef },
  { weight: 3, arbitrary: fc.string({ unit: 'binary', maxLength: 24 }) },
  { weight: 3, arbitrary: fc.string({ unit: codeUnit, maxLength: 12 }) },
  { weight: 4, arbitrary: spliced(SPECIALS) },
  { weight: 1, arbitrary: huge },
  { weight: 2, arbitrary: secretRef },
  { weight: 2, arbitrary: nearMissRef },
)

/** A string with only ASCII in it (the core's rule parser is tested with the rest in its own group). */
export const asciiString: fc.Arbitrary<StringDesc> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...PLAUSIBLE) },
  { weight: 3, arbitrary: fc.string({ unit: 'binary-ascii', maxLength: 24 }) },
  { weight: 3, arbitrary: spliced(ASCII_SPECIALS) },
  { weight: 1, arbitrary: fc.record({ repeat: fc.constantFrom('x', 'a:', '*'), times: fc.constantFrom(1 << 20, 257) }) },
  { weight: 2, arbitrary: secretRef.filter((d) => typeof d === 'object' && 'pre' in d && /^[\x00-\x7f]*$/.test(d.pre + d.post)) },
)

/** Valid rules, to let calls succeed and the state move. */
export const VALID_RULES = [
  'session:*',
  'data:entityBrowseRecords2',
  '*:userLogon',
  'apps/com.hornbill.core/*:*',
  'data:entity???Record',
  'ip=10.0.0.0/8',
  'ip=2001:db8::/32',
  'dav=GET session/*',
  '  admin:keysafeGetKey  ',
]

/** A rule string: valid, or any string of `chars`. */
export function ruleString(chars: fc.Arbitrary<StringDesc>): fc.Arbitrary<StringDesc> {
  return fc.oneof({ weight: 2, arbitrary: fc.constantFrom(...VALID_RULES) }, { weight: 3, arbitrary: chars })
}

const WEIRD: Weird[] = [
  'undefined',
  'null',
  'NaN',
  'Infinity',
  'negZero',
  'number',
  'bigint',
  'symbol',
  'true',
  'emptyArray',
  'arrayOfString',
  'emptyObject',
  'throwingGetters',
  'proxyThrows',
  'revokedProxy',
  'transparentProxy',
  'date',
  'invalidDate',
  'proxyDate',
  'fakeDate',
  'function',
  'stringObject',
  'toStringObject',
]

/** Anything that is not what the argument should be. */
export const weird: fc.Arbitrary<Desc> = fc.record({ weird: fc.constantFrom(...WEIRD), n: fc.oneof(fc.integer(), fc.double()) }, { requiredKeys: ['weird'] })

/** A string most of the time, anything else sometimes. */
export function stringOrWeird(strings: fc.Arbitrary<StringDesc> = anyString): fc.Arbitrary<Desc> {
  return fc.oneof({ weight: 5, arbitrary: strings as fc.Arbitrary<Desc> }, { weight: 1, arbitrary: weird })
}

/** A Date near the store clock (valid expiries among them), or anything else. */
export const dateDesc: fc.Arbitrary<Desc> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      at: fc.oneof(fc.constantFrom(86_400_000, 3_600_000, 1, 0, -1, 730 * 86_400_000, 730 * 86_400_000 + 1, 8.64e15, -8.64e15), fc.integer({ min: -1e10, max: 1e11 })),
    }),
  },
  { weight: 1, arbitrary: weird },
  { weight: 1, arbitrary: anyString as fc.Arbitrary<Desc> },
)

/** A number option (overlapSeconds, limit, maxLifetimeDays), or anything else. */
export const numberDesc: fc.Arbitrary<Desc> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom<Desc>({ weird: 'number', n: 0 }, { weird: 'number', n: 1 }, { weird: 'number', n: 60 }, { weird: 'number', n: 730 }) },
  {
    weight: 2,
    arbitrary: fc.record({ weird: fc.constant<Weird>('number'), n: fc.oneof(fc.integer(), fc.double(), fc.constantFrom(2 ** 32, 2 ** 53, -1, 1e308, 36500, 36501)) }),
  },
  { weight: 2, arbitrary: weird },
)

export function listOf(item: fc.Arbitrary<Desc>, maxLength = 4): fc.Arbitrary<Desc> {
  return fc.oneof(
    {
      weight: 5,
      arbitrary: fc.record({
        list: fc.array(item, { maxLength }),
        shape: fc.constantFrom<'plain' | 'sparse' | 'proxy' | 'frozen'>('plain', 'plain', 'plain', 'sparse', 'proxy', 'frozen'),
      }),
    },
    { weight: 1, arbitrary: weird },
  )
}

const objShape = fc.constantFrom<'plain' | 'nullProto' | 'proxy' | 'frozen' | 'inherited'>('plain', 'plain', 'plain', 'nullProto', 'proxy', 'frozen', 'inherited')

/** An object with the given fields, each present or not, or anything else. */
export function objectOf(fields: { [name: string]: fc.Arbitrary<Desc> }, required: string[] = []): fc.Arbitrary<Desc> {
  return fc.oneof(
    { weight: 6, arbitrary: fc.record({ obj: fc.record(fields, { requiredKeys: required }), shape: objShape }) as fc.Arbitrary<Desc> },
    { weight: 1, arbitrary: weird },
  )
}

/** The `{ actor }` option of admin calls: left out, an object, or anything else. */
export const adminOptions: fc.Arbitrary<Desc> = fc.oneof({ weight: 3, arbitrary: fc.constant(ABSENT) }, { weight: 3, arbitrary: objectOf({ actor: stringOrWeird() }) })

// ---- resolution ------------------------------------------------------------

const BASE62 = /^[0-9A-Za-z]$/

function nearMiss(secret: string, how: NearMiss): string {
  const at = secret.indexOf('_') + 1
  const swap = (c: string) => (c === 'a' ? 'b' : c === '0' ? '1' : 'a')
  switch (how) {
    case 'flipLast':
      return secret.slice(0, -1) + swap(secret.slice(-1))
    case 'flipFirst':
      return secret.slice(0, at) + swap(secret[at]!) + secret.slice(at + 1)
    case 'dropLast':
      return secret.slice(0, -1)
    case 'extra':
      return `${secret}A`
    case 'upper':
      return secret.slice(0, at) + [...secret.slice(at)].map((c) => (BASE62.test(c) && c.toUpperCase() !== c ? c.toUpperCase() : c)).join('')
    case 'zeroWidth':
      return `${secret.slice(0, 20)}\u200B${secret.slice(20)}`
    case 'otherPrefix':
      return `xx${secret.slice(at - 1)}`
    case 'spaced':
      return ` ${secret} `
  }
}

const FIELD_NAMES = [
  'id',
  'name',
  'rights',
  'roles',
  'status',
  'userId',
  'description',
  'expiresAt',
  'rules',
  'state',
  'actor',
  'overlapSeconds',
  'keyId',
  'since',
  'limit',
  'keyPrefix',
  'maxLifetimeDays',
  'now',
  'purgeExpiredAfterDays',
  'route',
  'trustProxy',
  'realm',
  'onError',
  'length',
  'toString',
  'valueOf',
  'toJSON',
  'then',
]

function throwingTraps(where: string): ProxyHandler<object> {
  const fail = (): never => {
    throw new HostileError(where)
  }
  return {
    get: fail,
    has: fail,
    ownKeys: fail,
    getOwnPropertyDescriptor: fail,
    getPrototypeOf: fail,
    set: fail,
    defineProperty: fail,
    deleteProperty: fail,
    isExtensible: fail,
    preventExtensions: fail,
    setPrototypeOf: fail,
    apply: fail,
    construct: fail,
  }
}

function weirdValue(kind: Weird, n: number | undefined, world: World): unknown {
  const num = n ?? 7
  switch (kind) {
    case 'undefined':
      return undefined
    case 'null':
      return null
    case 'NaN':
      return NaN
    case 'Infinity':
      return Infinity
    case 'negZero':
      return -0
    case 'number':
      return num
    case 'bigint':
      return BigInt(Number.isFinite(num) ? Math.trunc(num) : 0)
    case 'symbol':
      return Symbol('hostile')
    case 'true':
      return true
    case 'emptyArray':
      return []
    case 'arrayOfString':
      return ['u0']
    case 'emptyObject':
      return {}
    case 'throwingGetters': {
      world.hostileUsed = true
      const o: Record<string | symbol, unknown> = {}
      for (const name of [...FIELD_NAMES, Symbol.toPrimitive, Symbol.iterator]) {
        Object.defineProperty(o, name, {
          get: () => {
            throw new HostileError(`getter ${String(name)}`)
          },
          enumerable: true,
        })
      }
      return o
    }
    case 'proxyThrows':
      world.hostileUsed = true
      return new Proxy({}, throwingTraps('proxy trap'))
    case 'revokedProxy': {
      world.hostileUsed = true
      const { proxy, revoke } = Proxy.revocable({}, {})
      revoke()
      return proxy
    }
    case 'transparentProxy':
      return new Proxy({ id: 'u0', name: 'role0', rights: [], userId: 'u0', description: '' }, {})
    case 'date':
      return new Date(world.store.now().getTime() + (Number.isFinite(num) ? num : 0))
    case 'invalidDate':
      return new Date(NaN)
    case 'proxyDate':
      // `instanceof Date` holds, Date.prototype.getTime on it does not.
      return new Proxy(new Date(world.store.now().getTime() + 86_400_000), {})
    case 'fakeDate':
      return Object.create(Date.prototype)
    case 'function':
      return () => 'u0'
    case 'stringObject':
      return new String('u0')
    case 'toStringObject':
      return { toString: () => 'u0' }
  }
}

/** The value a description stands for, in `world`. */
export function resolve(desc: Desc, world: World): unknown {
  if (typeof desc === 'string') return desc
  if ('absent' in desc) return undefined
  if ('repeat' in desc) return desc.repeat.repeat(desc.times)
  if ('secret' in desc) {
    const secret = world.secrets[desc.secret % world.secrets.length]!
    return desc.pre + secret + desc.post
  }
  if ('nearMiss' in desc) return nearMiss(world.secrets[desc.nearMiss % world.secrets.length]!, desc.how)
  if ('ref' in desc) {
    const pool = desc.ref === 'keyId' ? world.keyIds : desc.ref === 'userId' ? world.userIds : world.roleNames
    return pool.length === 0 ? `no_${desc.ref}` : pool[desc.i % pool.length]!
  }
  if ('weird' in desc) return weirdValue(desc.weird, desc.n, world)
  if ('at' in desc) return new Date(world.store.now().getTime() + desc.at)
  if ('list' in desc) {
    const items = desc.list.map((d) => resolve(d, world))
    switch (desc.shape) {
      case 'sparse': {
        const sparse = new Array<unknown>(items.length + 2)
        items.forEach((item, i) => {
          sparse[(i * 2) % sparse.length] = item
        })
        return sparse
      }
      case 'proxy':
        return new Proxy(items, {})
      case 'frozen':
        return Object.freeze(items)
      default:
        return items
    }
  }
  // an object
  const fields: Record<string, unknown> = {}
  for (const [name, d] of Object.entries(desc.obj)) fields[name] = resolve(d, world)
  switch (desc.shape) {
    case 'nullProto':
      return Object.assign(Object.create(null), fields)
    case 'proxy':
      return new Proxy(fields, {})
    case 'frozen':
      return Object.freeze(fields)
    case 'inherited':
      // Fields on the prototype, none of its own.
      return Object.create(fields)
    default:
      return fields
  }
}

/** The arguments of one call, with trailing absent ones left out (so `f(a)` is not `f(a, undefined)`). */
export function resolveArgs(descs: Desc[], world: World): unknown[] {
  let end = descs.length
  while (end > 0 && isAbsent(descs[end - 1]!)) end--
  return descs.slice(0, end).map((d) => resolve(d, world))
}
