'use strict'
// Argument checks at the JavaScript boundary: wrong types become
// INVALID_ARGUMENT errors naming the argument; values are checked by the core.

const { KeygateError, invalidArgument, quote } = require('./errors.js')
const { MAX_RULES, MAX_USER_ROLES } = require('./native.js')

/**
 * What a wrong value is, for a message. Never its text: a string or a
 * function's source may hold a secret pasted in the wrong place.
 * @param {unknown} value
 */
function describe(value) {
  if (value === null) return 'null'
  try {
    if (Array.isArray(value)) return 'an array'
    if (isDate(value) || value instanceof Date) return 'a Date'
  } catch {
    // Both throw for a revoked Proxy.
    return 'a revoked Proxy'
  }
  switch (typeof value) {
    case 'number':
    case 'boolean':
    case 'bigint':
      return `${typeof value} ${String(value)}`
    case 'object':
      return 'an object'
    case 'string':
      return 'a string'
    default:
      return typeof value
  }
}

// Each check takes the caller's value as `unknown` and the argument's name for the message,
// and returns the value with its checked type (a copy for arrays).

// The longest text an argument may hold, in UTF-16 code units, and the most the texts of one
// list may hold together: far above every limit the core has (a rule or name 256 characters, a
// description 1,024, 1,000 rules), so nothing the core would take is refused. A longer text is
// refused here, before it crosses: the crossing copies it whole as UTF-8, and a copy of
// hundreds of megabytes that the allocator cannot give (a container's memory limit) aborts the
// process, since Rust does not survive a failed allocation.
const MAX_TEXT_LENGTH = 1 << 20

/**
 * Any string not over MAX_TEXT_LENGTH code units; `tooLong` makes the error for one that is.
 * @param {unknown} value
 * @param {string} name
 * @param {(message: string) => Error} [tooLong]
 * @returns {string}
 */
function boundedText(value, name, tooLong = invalidArgument) {
  if (typeof value !== 'string') throw invalidArgument(`${name} must be a string, got ${describe(value)}`)
  if (value.length > MAX_TEXT_LENGTH) throw tooLong(`${name} is ${value.length} characters long; at most ${MAX_TEXT_LENGTH} are taken`)
  return value
}

/**
 * A rule's text: any string (what is not ASCII is the core's INVALID_RULE), but for one whose
 * first character beyond ASCII is a lone surrogate: crossing to the core would turn that into
 * U+FFFD, and the core's message would name a character the caller never wrote.
 * @param {unknown} value
 * @param {string} name
 * @returns {string}
 */
function ruleText(value, name) {
  const text = boundedText(value, name, (message) => new KeygateError('INVALID_RULE', message))
  if (!text.isWellFormed()) {
    let position = 0
    for (const character of text) {
      position++
      const code = /** @type {number} */ (character.codePointAt(0))
      if (code < 0x80) continue
      if (code >= 0xd800 && code <= 0xdfff) {
        // Not quoted: the core alone knows which pieces of this store's secrets a quote must withhold.
        const at = `U+${code.toString(16).toUpperCase()} (a lone UTF-16 surrogate) at position ${position}`
        throw new KeygateError('INVALID_RULE', `${name} holds ${at}, which is not allowed: rules are ASCII only`)
      }
      break
    }
  }
  return text
}

/**
 * A key state, whose wrong value is the core's INVALID_STATE, a long one too.
 * @param {unknown} value
 * @param {string} name
 * @returns {string}
 */
function stateName(value, name) {
  return string(value, name, (message) => new KeygateError('INVALID_STATE', message))
}

/**
 * @param {unknown} value
 * @param {string} name
 * @returns {string | undefined}
 */
function optionalStateName(value, name) {
  return value === undefined ? undefined : stateName(value, name)
}

/**
 * @param {unknown} value
 * @param {string} name
 * @param {(message: string) => Error} [tooLong] the error for a text over MAX_TEXT_LENGTH
 * @returns {string}
 */
function string(value, name, tooLong = invalidArgument) {
  const text = boundedText(value, name, tooLong)
  // A lone surrogate cannot cross to the core as UTF-8 unchanged: refuse it
  // rather than store a different text than the one given.
  if (!text.isWellFormed()) throw invalidArgument(`${name} holds a lone UTF-16 surrogate (not valid Unicode text)`)
  return text
}

/**
 * @param {unknown} value
 * @param {string} name
 * @returns {string | undefined}
 */
function optionalString(value, name) {
  return value === undefined ? undefined : string(value, name)
}

/**
 * @param {unknown} value
 * @param {string} name
 * @param {(value: unknown, name: string) => string} [item] the check of each element
 * @param {{ most: number, tooMany: (given: number) => Error, tooLong?: (message: string) => Error }} [limit] the longest list the
 *   core takes, and the error for texts over MAX_TEXT_LENGTH in all (INVALID_ARGUMENT unless given)
 * @returns {string[] | undefined}
 */
function stringArray(value, name, item = string, limit = undefined) {
  if (value === undefined) return undefined
  if (!isArray(value, name)) throw invalidArgument(`${name} must be an array of strings, got ${describe(value)}`)
  const array = /** @type {unknown[]} */ (value)
  // Read once: a Proxy may answer differently each time it is asked, or with an object whose
  // valueOf does (a real array's length is always a whole number).
  const length = array.length
  if (typeof length !== 'number' || !Number.isSafeInteger(length) || length < 0) {
    throw invalidArgument(`${name} is an array whose length is not a whole number`)
  }
  // Refused before any element is read: a Proxy can claim 2e8 valid elements at no cost to its
  // maker, and copying them would run V8 out of room and abort the process.
  if (limit !== undefined && length > limit.most) throw limit.tooMany(length)
  // Each text is bounded, and so are all of them together (1,000 texts of the longest would be gigabytes).
  let total = 0
  return ownElements(
    array,
    (element, i) => {
      const text = item(element, `${name}[${i}]`)
      total += text.length
      if (total > MAX_TEXT_LENGTH) throw (limit?.tooLong ?? invalidArgument)(`${name} holds more than ${MAX_TEXT_LENGTH} characters in all`)
      return text
    },
    length,
  )
}

/**
 * `each` of every element of `array` by index, a hole as `undefined`: read as an own element
 * only, since a hole would otherwise be read through the prototype chain (a polluted
 * `Object.prototype[0]`), as `forEach` and a crossing to the core read it. Each element is
 * handed to `each` as it is read, so a check that throws for a hole ends the read there: a
 * sparse array of 2^32 - 1 holes (`a.length = n`) is refused at once, not copied until V8
 * aborts the process.
 * @template T
 * @param {unknown[]} array
 * @param {(element: unknown, index: number) => T} each
 * @param {number} [length] the length already read (a Proxy may answer differently each time)
 * @returns {T[]}
 */
function ownElements(array, each, length = array.length) {
  const elements = []
  for (let i = 0; i < length; i++) elements.push(each(Object.hasOwn(array, i) ? array[i] : undefined, i))
  return elements
}

/**
 * A list of rules (rights or key rules).
 * @param {unknown} value
 * @param {string} name
 */
function ruleArray(value, name) {
  // The core's own message and code for a list too long.
  const tooMany = (/** @type {number} */ given) => new KeygateError('INVALID_RULE', `${given} rules given; at most ${MAX_RULES} are allowed`)
  const tooLong = (/** @type {string} */ message) => new KeygateError('INVALID_RULE', message)
  return stringArray(value, name, ruleText, { most: MAX_RULES, tooMany, tooLong })
}

/**
 * A user's role names.
 * @param {unknown} value
 * @param {string} name
 */
function roleArray(value, name) {
  const tooMany = (/** @type {number} */ given) => invalidArgument(`${given} roles given; at most ${MAX_USER_ROLES} are allowed`)
  return stringArray(value, name, string, { most: MAX_USER_ROLES, tooMany })
}

/**
 * @param {unknown} value
 * @param {string} name
 * @returns {Record<string, unknown>} its fields, each still to be checked
 */
function object(value, name) {
  if (value === null || typeof value !== 'object' || isArray(value, name)) {
    throw invalidArgument(`${name} must be an object, got ${describe(value)}`)
  }
  return /** @type {Record<string, unknown>} */ (ownFields(value))
}

/**
 * The own fields of an object, on an object without a prototype: a field it only inherits
 * (from a polluted `Object.prototype`, say, or `JSON.parse`'s `"__proto__"` copied by
 * `Object.assign`) is not given, so it cannot add roles, rules or options to a call.
 * @template {object} T
 * @param {T} value
 * @param {(message: string) => Error} [refuse] the error for options that cannot be listed (INVALID_ARGUMENT)
 * @returns {T}
 */
function ownFields(value, refuse = invalidArgument) {
  let names
  try {
    names = Object.getOwnPropertyNames(value)
  } catch {
    // A revoked Proxy, or one whose ownKeys trap throws: a keygate error, not the engine's or the trap's.
    throw refuse('the options cannot be listed (a revoked Proxy, or a Proxy whose ownKeys trap throws)')
  }
  const fields = Object.create(null)
  for (const field of names) fields[field] = /** @type {Record<string, unknown>} */ (value)[field]
  return fields
}

/**
 * Whether `value` is an object with each of `names` as a method; false, not the engine's
 * TypeError, for a revoked Proxy (whose every read throws), so that it is refused as no store.
 * @param {unknown} value
 * @param {readonly string[]} names
 */
function hasMethods(value, names) {
  if (value === null || (typeof value !== 'object' && typeof value !== 'function')) return false
  try {
    return names.every((name) => typeof (/** @type {Record<string, unknown>} */ (value)[name]) === 'function')
  } catch {
    return false
  }
}

/**
 * `Array.isArray`, which throws a TypeError for a revoked Proxy: an INVALID_ARGUMENT instead.
 * @param {unknown} value
 * @param {string} name
 */
function isArray(value, name) {
  try {
    return Array.isArray(value)
  } catch {
    throw invalidArgument(`${name} is a revoked Proxy`)
  }
}

/**
 * @param {unknown} value
 * @param {string} name
 * @returns {Record<string, unknown>}
 */
function optionalObject(value, name) {
  // Left out: no fields, and none inherited either (as `ownFields` gives them).
  return value === undefined ? Object.create(null) : object(value, name)
}

/**
 * A Date as milliseconds since the epoch; undefined/null pass through as undefined.
 * @param {unknown} value
 * @param {string} name
 * @returns {number | undefined}
 */
function optionalDate(value, name) {
  if (value === undefined || value === null) return undefined
  const ms = timeValue(value)
  if (ms === undefined) {
    // An object that only inherits from Date has no time value of its own.
    throw invalidArgument(inheritsDate(value) ? `${name} is not a real Date` : `${name} must be a Date, got ${describe(value)}`)
  }
  if (!Number.isFinite(ms)) throw invalidArgument(`${name} is an invalid Date`)
  return ms
}

/**
 * Whether `value` is a real Date, of this realm or another (see `timeValue`).
 * @param {unknown} value
 */
function isDate(value) {
  return timeValue(value) !== undefined
}

/**
 * `instanceof Date`: a real Date of this realm, or an object that only inherits from Date
 * (which `optionalDate` refuses as "not a real Date"); false for a revoked Proxy.
 * @param {unknown} value
 */
function inheritsDate(value) {
  try {
    return value instanceof Date
  } catch {
    return false
  }
}

/**
 * The time value of a real Date — of this realm or another (a `vm` context, an iframe, a jsdom
 * window), which `instanceof Date` would refuse — or undefined for anything else. Read through
 * `Date.prototype.getTime`, which checks the object's own time value: a Date's overridden
 * `getTime`/`valueOf` is not called, and an object that only inherits from Date has none.
 * @param {unknown} value
 * @returns {number | undefined}
 */
function timeValue(value) {
  if (value === null || typeof value !== 'object') return undefined
  try {
    return Date.prototype.getTime.call(value)
  } catch {
    return undefined
  }
}

/**
 * @param {unknown} value
 * @param {string} name
 * @returns {number | undefined}
 */
function optionalNumber(value, name) {
  if (value === undefined) return undefined
  if (typeof value !== 'number') throw invalidArgument(`${name} must be a number, got ${describe(value)}`)
  // NaN is of type number: "must be a number, got number NaN" would leave the caller puzzled.
  if (Number.isNaN(value)) throw invalidArgument(`${name} must be a number, got NaN`)
  return value
}

/**
 * An optional whole number from `min` (default 0) to `max`.
 * @param {unknown} value
 * @param {string} name
 * @param {number} max
 * @param {number} [min]
 * @returns {number | undefined}
 */
function optionalWholeNumber(value, name, max, min = 0) {
  const number = optionalNumber(value, name)
  if (number !== undefined && !(Number.isInteger(number) && number >= min && number <= max)) {
    throw invalidArgument(`${name} ${number} must be a whole number from ${min} to ${max}`)
  }
  return number
}

/**
 * @param {unknown} value
 * @param {string} name
 * @returns {boolean | undefined}
 */
function optionalBoolean(value, name) {
  if (value === undefined) return undefined
  if (typeof value !== 'boolean') throw invalidArgument(`${name} must be true or false, got ${describe(value)}`)
  return value
}

/**
 * What is wrong with an object's own fields when one is not among `known` (a misspelt option,
 * `trustproxy` or `purgeExpiredAfterDay`, would otherwise be ignored and its default used without
 * a word; a misspelt `rule` of a new key would leave it unrestricted), else undefined. The caller
 * throws it as its errors are.
 * @param {object} fields
 * @param {readonly string[]} known
 * @param {string} name what the object is called in messages (`options`)
 * @param {{ noun?: string, hints?: Readonly<Record<string, string>> }} [how] what a field is
 *   called (`option`, `field`), and why a field a caller may expect is not there (`state`: how a
 *   key's state is changed instead)
 * @returns {string | undefined}
 */
function unknownOption(fields, known, name, { noun = 'option', hints = {} } = {}) {
  const unknown = Object.getOwnPropertyNames(fields).find((field) => !known.includes(field))
  if (unknown === undefined) return undefined
  const hint = Object.hasOwn(hints, unknown) ? ` (${hints[unknown]})` : ''
  const near = hint === '' ? nearest(unknown, known) : undefined
  const suggestion = near === undefined ? hint : ` (did you mean ${near}?)`
  const choices = known.length === 0 ? `it takes no ${noun}s` : `the ${noun}s are ${known.join(', ')}`
  return `${name}: no ${noun} ${quote(unknown)}${suggestion}; ${choices}`
}

/** Longest name compared letter by letter for a suggestion: longer ones are no slip of a known name. */
const NEAR_MAX = 64

/**
 * The name of `known` that `given` looks like a slip for, if any: the nearest one (`kinds` is
 * `kind`, one edit away, not `lines`, two away but listed first), the first of those as near.
 * @param {string} given
 * @param {readonly string[]} known
 * @returns {string | undefined}
 */
function nearest(given, known) {
  return nearestAll(given, known)[0]
}

/**
 * Every name of `known` that `given` looks like a slip for and that is as near as the nearest, in
 * the order of `known`: `post` is one edit from both `host` and `port`, and naming only the one
 * listed first would guess for the user.
 * @param {string} given
 * @param {readonly string[]} known
 * @returns {string[]}
 */
function nearestAll(given, known) {
  /** @type {string[]} */
  let best = []
  let bestDistance = Number.POSITIVE_INFINITY
  for (const name of known) {
    const distance = nearness(given, name)
    if (distance === undefined || distance > bestDistance) continue
    if (distance < bestDistance) best = []
    best.push(name)
    bestDistance = distance
  }
  return best
}

/**
 * How far `given` is from `known` when it looks like a slip for it, else undefined: 0 when the
 * same but for case, else within one edit (a letter added, dropped, changed or two swapped:
 * `rule`, `rigths`, `descripton`) for names of four letters or more, two edits from six letters
 * (`dsecritpion`). Two edits of a short name make another word: `--kind` and `--host` are not
 * `--hint`, `--date` is not `--state`.
 * @param {string} given
 * @param {string} known
 * @returns {number | undefined}
 */
function nearness(given, known) {
  const a = given.toLowerCase()
  const b = known.toLowerCase()
  if (a === b) return 0
  if (a.length < 4 || a.length > NEAR_MAX || Math.abs(a.length - b.length) > 2) return undefined
  const distance = editDistance(a, b)
  return distance <= (a.length < 6 ? 1 : 2) ? distance : undefined
}

/**
 * The optimal string alignment distance (insertions, deletions, substitutions and swaps of
 * neighbours, by UTF-16 unit) between two short strings.
 * @param {string} a
 * @param {string} b
 */
function editDistance(a, b) {
  /** @type {number[][]} */
  const d = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)))
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1)
    }
  }
  return d[a.length][b.length]
}

module.exports = {
  ruleText,
  stateName,
  optionalStateName,
  boundedText,
  ruleArray,
  roleArray,
  string,
  optionalString,
  object,
  optionalObject,
  ownFields,
  isArray,
  hasMethods,
  unknownOption,
  nearest,
  nearestAll,
  editDistance,
  ownElements,
  optionalDate,
  isDate,
  inheritsDate,
  optionalNumber,
  optionalWholeNumber,
  optionalBoolean,
}
