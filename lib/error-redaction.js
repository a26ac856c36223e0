'use strict'
// What the HTTP guard's onError gets for an error thrown while a request's key was in hand: the
// error itself when no reachable part of it holds any piece of the key, else a copy with every
// such piece replaced by [redacted] (bounded in depth and size, read without running getters).

const { KeygateError } = require('./errors.js')

const REDACTED = '[redacted]'
/** Any run of this many characters of a key's random part is hidden too (a cut key still leaks). */
const REDACTED_RUN = 12
/** How deep and how wide the copy of an error goes; past that, a placeholder. */
const MAX_DEPTH = 8
const MAX_ENTRIES = 100
const MAX_OBJECTS = 10_000

/**
 * The strings to hide for `key`: the key, its part after the prefix, every run of REDACTED_RUN characters of that part.
 * @param {string} key
 */
function keyPieces(key) {
  const pieces = [key]
  const body = key.slice(key.indexOf('_') + 1)
  if (body !== key) pieces.push(body)
  if (body.length > REDACTED_RUN) {
    for (let i = 0; i + REDACTED_RUN <= body.length; i++) pieces.push(body.slice(i, i + REDACTED_RUN))
  }
  // Matched in any letter case (see redactText): lower-cased once here.
  return pieces.filter((piece) => piece.length > 0).map(asciiLowerCase)
}

/**
 * `text` with A-Z lower-cased and nothing else changed, so that every index stays that of `text`.
 * @param {string} text
 */
function asciiLowerCase(text) {
  return text.replace(/[A-Z]+/g, (run) => run.toLowerCase())
}

/**
 * `text` with every piece replaced, in any letter case: a route that lower-cases a header
 * before quoting it shows the key with only its letters' case lost, which the key's checksum
 * and a few guesses give back.
 * @param {string} text
 * @param {string[]} pieces lower-cased (A-Z only), as keyPieces gives them
 */
function redactText(text, pieces) {
  let out = text
  let lower = asciiLowerCase(out)
  for (const piece of pieces) {
    let at = lower.indexOf(piece)
    if (at < 0) continue
    // The lower-cased text is built beside it (REDACTED has no upper-case letter), not lower-cased
    // again: once per piece found, that was seconds for a long text quoting every piece.
    /** @type {string[]} */
    const redacted = []
    /** @type {string[]} */
    const redactedLower = []
    let from = 0
    for (; at >= 0; at = lower.indexOf(piece, from)) {
      redacted.push(out.slice(from, at))
      redactedLower.push(lower.slice(from, at))
      from = at + piece.length
    }
    redacted.push(out.slice(from))
    redactedLower.push(lower.slice(from))
    out = redacted.join(REDACTED)
    lower = redactedLower.join(REDACTED)
  }
  return out
}

/**
 * Reads `object[name]` without letting a throwing getter or proxy trap out.
 * @param {object} object
 * @param {string | symbol} name
 * @param {{ found: boolean }} unreadable set when a read threw
 * @returns {unknown}
 */
function readSafely(object, name, unreadable) {
  try {
    return /** @type {Record<string | symbol, unknown>} */ (object)[name]
  } catch {
    unreadable.found = true
    return '[unreadable]'
  }
}

/** @param {unknown} value */
function isErrorLike(value) {
  try {
    return value instanceof Error || Object.prototype.toString.call(value) === '[object Error]'
  } catch {
    return false
  }
}

/**
 * Error classes whose instances hold nothing but own properties (no private fields, no
 * accessors or inspect/toJSON hooks on the prototype): only such an error may be handed on
 * as it is. An error of any other class may keep the key where the copy cannot look.
 */
/** @type {Set<unknown>} */
const PLAIN_ERROR_PROTOTYPES = new Set(
  [Error, TypeError, RangeError, SyntaxError, ReferenceError, EvalError, URIError, AggregateError, KeygateError].map((c) => c.prototype),
)

// The built-in ways to read a Map's or Set's entries, taken now: a Map may carry its own
// `entries` (or a subclass override it) to hide entries from the copy.
const mapEntries = Map.prototype.entries
const setValues = Set.prototype.values
const mapIteratorNext = Object.getPrototypeOf(new Map().entries()).next
const setIteratorNext = Object.getPrototypeOf(new Set().values()).next
const dateTime = Date.prototype.getTime
const { isProxy } = require('node:util').types

/**
 * Entries of a built-in Map or Set (at most MAX_ENTRIES + 1) read through the built-ins, or null.
 * @param {object} value
 * @param {boolean} isMap
 * @returns {unknown[] | null} a Map's as [key, value] pairs
 */
function builtInEntries(value, isMap) {
  try {
    const iterator = Reflect.apply(isMap ? mapEntries : setValues, value, [])
    const next = isMap ? mapIteratorNext : setIteratorNext
    /** @type {unknown[]} */
    const out = []
    for (let step = Reflect.apply(next, iterator, []); !step.done; step = Reflect.apply(next, iterator, [])) {
      out.push(step.value)
      if (out.length > MAX_ENTRIES) break
    }
    return out
  } catch {
    return null
  }
}

/**
 * The name of a value's class for a placeholder, read without running user code (only data
 * properties: the prototype's `constructor`, its `name`), redacted and cut short.
 * @param {object} value
 * @param {string[]} pieces
 */
function className(value, pieces) {
  try {
    const proto = Object.getPrototypeOf(value)
    if (proto === null) return 'Object'
    const maker = Object.getOwnPropertyDescriptor(proto, 'constructor')?.value
    const name = typeof maker === 'function' ? Object.getOwnPropertyDescriptor(maker, 'name')?.value : undefined
    if (typeof name === 'string' && name !== '') return redactText(name, pieces).slice(0, 64)
  } catch {
    // fall through to the tag
  }
  return 'object'
}

/**
 * Copies the own properties `names` of `value` onto `copy`, each redacted, keeping whether
 * it is enumerable. A property whose value comes from a getter marks the copy as needed: the
 * getter ran once here and may answer otherwise to the next reader.
 * @param {object} value
 * @param {object} copy
 * @param {(string | symbol)[]} names
 * @param {string[]} pieces
 * @param {CopyState} state
 * @param {number} depth
 * @param {(own: string | symbol) => boolean} [skip]
 */
function copyOwnProperties(value, copy, names, pieces, state, depth, skip) {
  for (const own of names) {
    if (skip?.(own)) continue
    let enumerable = false
    try {
      const descriptor = Object.getOwnPropertyDescriptor(value, own)
      enumerable = descriptor?.enumerable === true
      if (descriptor !== undefined && !('value' in descriptor)) state.changed = true
    } catch {
      state.found = true
    }
    const field = redactedCopy(readSafely(value, own, state), pieces, state, depth + 1)
    try {
      // The copy of a string or symbol is a string or symbol.
      Object.defineProperty(copy, /** @type {string | symbol} */ (redactedCopy(own, pieces, state, depth + 1)), {
        value: field,
        enumerable,
        writable: true,
        configurable: true,
      })
    } catch {
      state.changed = true // e.g. an `own` that the copy cannot take: then it is not shown
    }
  }
}

/**
 * What a copy keeps track of: the copies made so far (for cycles), whether the copy differs
 * from the original (`changed`), whether some part could not be read (`found`).
 * @typedef {{ copies: Map<object, unknown>, changed: boolean, found: boolean }} CopyState
 */

/**
 * A copy of `value` in which every string (keys included) has the key's pieces replaced.
 * The copy is made only of what this function can read in full: strings and other
 * primitives, plain objects and arrays, errors (as plain Errors; AggregateErrors stay
 * AggregateErrors, with name, message, stack, code, cause, errors and other own
 * properties), built-in Maps, Sets and Dates with their own properties. Anything else — a
 * Buffer or other typed array, ArrayBuffer, DataView, fetch Headers, URLSearchParams,
 * WeakMap/WeakRef, a boxed string, a function, an instance of any other class (it may keep
 * data in private fields or internal slots) — becomes a placeholder such as
 * `[Headers: not shown]` and marks the copy as needed (`state.changed`), so the original is
 * never handed on. Cycles stay cycles. Reads each property once, never writes to `value`,
 * never throws.
 * @param {unknown} value
 * @param {string[]} pieces
 * @param {CopyState} state
 * @param {number} depth
 * @returns {unknown}
 */
function redactedCopy(value, pieces, state, depth) {
  if (typeof value === 'string') {
    const out = redactText(value, pieces)
    if (out !== value) state.changed = true
    return out
  }
  if (typeof value === 'symbol') {
    const description = value.description
    if (description === undefined || redactText(description, pieces) === description) return value
    state.changed = true
    return Symbol(redactText(description, pieces))
  }
  if (typeof value === 'function') {
    state.changed = true // its own properties, its source, its closure: not looked at
    return '[function: not shown]'
  }
  if (value === null || typeof value !== 'object') return value
  const known = state.copies.get(value)
  if (known !== undefined) return known
  if (depth >= MAX_DEPTH || state.copies.size >= MAX_OBJECTS) {
    state.changed = true // what lies beyond was not looked at: never hand it on
    return '[too deep]'
  }
  // A proxy answers what its traps like, maybe differently to the next reader: copy what it
  // answered now and never hand it on.
  if (isProxy(value)) state.changed = true
  /** @type {(string | symbol)[]} */
  let names
  try {
    names = Reflect.ownKeys(value)
  } catch {
    state.found = true
    names = []
  }
  if (names.length > MAX_ENTRIES) {
    state.changed = true
    names = names.slice(0, MAX_ENTRIES)
  }
  let proto
  try {
    proto = Object.getPrototypeOf(value)
  } catch {
    state.found = true
    proto = undefined
  }
  // An Error, array, plain object, Map, Set or Date, each used as what it is where it is made.
  /** @type {any} */
  let copy
  if (isErrorLike(value)) {
    if (!PLAIN_ERROR_PROTOTYPES.has(proto)) state.changed = true
    const name = redactedCopy(readSafely(value, 'name', state), pieces, state, depth + 1)
    const message = redactedCopy(readSafely(value, 'message', state), pieces, state, depth + 1)
    const errors = names.includes('errors') ? readSafely(value, 'errors', state) : undefined
    copy = Array.isArray(errors) ? new AggregateError([], String(message)) : new Error(String(message))
    state.copies.set(value, copy)
    if (typeof name === 'string') copy.name = name
    copyOwnProperties(value, copy, names, pieces, state, depth, (own) => own === 'message' || own === 'errors')
    if (names.includes('errors')) {
      // read once above, to choose the copy's class
      Object.defineProperty(copy, 'errors', { value: redactedCopy(errors, pieces, state, depth + 1), enumerable: false, writable: true, configurable: true })
    }
    return copy
  }
  let isArray = false
  try {
    isArray = Array.isArray(value)
  } catch {
    state.found = true
  }
  if (isArray && proto === Array.prototype) {
    copy = []
    state.copies.set(value, copy)
    copyOwnProperties(value, copy, names, pieces, state, depth, (own) => own === 'length')
    return copy
  }
  if (!isArray && (proto === Object.prototype || proto === null)) {
    copy = proto === null ? Object.create(null) : {}
    state.copies.set(value, copy)
    copyOwnProperties(value, copy, names, pieces, state, depth)
    return copy
  }
  if (proto === Map.prototype || proto === Set.prototype) {
    const isMap = proto === Map.prototype
    const entries = builtInEntries(value, isMap)
    if (entries !== null) {
      copy = isMap ? new Map() : new Set()
      state.copies.set(value, copy)
      if (entries.length > MAX_ENTRIES) {
        state.changed = true
        entries.length = MAX_ENTRIES
      }
      for (const entry of entries) {
        // A Map's entries are [key, value] pairs.
        if (isMap)
          copy.set(
            redactedCopy(/** @type {unknown[]} */ (entry)[0], pieces, state, depth + 1),
            redactedCopy(/** @type {unknown[]} */ (entry)[1], pieces, state, depth + 1),
          )
        else copy.add(redactedCopy(entry, pieces, state, depth + 1))
      }
      copyOwnProperties(value, copy, names, pieces, state, depth)
      return copy
    }
  }
  if (proto === Date.prototype) {
    let time
    try {
      time = Reflect.apply(dateTime, value, [])
    } catch {
      time = undefined
    }
    if (typeof time === 'number') {
      copy = new Date(time)
      state.copies.set(value, copy)
      copyOwnProperties(value, copy, names, pieces, state, depth)
      return copy
    }
  }
  // Contents this copy cannot enumerate as plain data: shown as a placeholder only.
  state.changed = true
  const placeholder = `[${className(value, pieces)}: not shown]`
  state.copies.set(value, placeholder)
  return placeholder
}

/**
 * What onError gets for `thrown`: the error itself only when it is a plain error (see
 * PLAIN_ERROR_PROTOTYPES) whose every reachable part the copy could read in full and found
 * free of any piece of the key; otherwise the redacted copy. A thrown non-Error becomes an
 * Error whose `cause` is its (redacted) copy.
 * @param {unknown} thrown
 * @param {string | undefined} key
 * @returns {Error}
 */
function errorWithoutKey(thrown, key) {
  const pieces = typeof key === 'string' && key.length > 0 ? keyPieces(key) : []
  /** @type {CopyState} */
  const state = { copies: new Map(), changed: false, found: false }
  if (!isErrorLike(thrown)) {
    const wrapper = new Error(`a thrown ${typeof thrown}`)
    wrapper.cause = redactedCopy(thrown, pieces, state, 1)
    return wrapper
  }
  // The copy of an error-like value at depth 0 is an Error (or AggregateError).
  const copy = /** @type {Error} */ (redactedCopy(thrown, pieces, state, 0))
  return state.changed || state.found || !(thrown instanceof Error) ? copy : thrown
}

module.exports = { errorWithoutKey }
