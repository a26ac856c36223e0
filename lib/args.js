'use strict'
// Argument checks at the JavaScript boundary: wrong types become
// INVALID_ARGUMENT errors naming the argument; values are checked by the core.

const { invalidArgument } = require('./errors.js')

/**
 * What a wrong value is, for a message. Never its text: a string or a
 * function's source may hold a secret pasted in the wrong place.
 * @param {unknown} value
 */
function describe(value) {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  if (value instanceof Date) return 'a Date'
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

/**
 * A rule's text: any string (what is not ASCII is the core's INVALID_RULE).
 * @param {unknown} value
 * @param {string} name
 * @returns {string}
 */
function ruleText(value, name) {
  if (typeof value !== 'string') throw invalidArgument(`${name} must be a string, got ${describe(value)}`)
  return value
}

/**
 * @param {unknown} value
 * @param {string} name
 * @returns {string}
 */
function string(value, name) {
  const text = ruleText(value, name)
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
 * @returns {string[] | undefined}
 */
function stringArray(value, name, item = string) {
  if (value === undefined) return undefined
  if (!Array.isArray(value)) throw invalidArgument(`${name} must be an array of strings, got ${describe(value)}`)
  value.forEach((element, i) => {
    item(element, `${name}[${i}]`)
  })
  return value.slice()
}

/**
 * A list of rules (rights or key rules).
 * @param {unknown} value
 * @param {string} name
 */
function ruleArray(value, name) {
  return stringArray(value, name, ruleText)
}

/**
 * @param {unknown} value
 * @param {string} name
 * @returns {Record<string, unknown>} its fields, each still to be checked
 */
function object(value, name) {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw invalidArgument(`${name} must be an object, got ${describe(value)}`)
  }
  // A non-null, non-array object: reading any field of it is safe, and gives an unknown.
  return /** @type {Record<string, unknown>} */ (value)
}

/**
 * @param {unknown} value
 * @param {string} name
 * @returns {Record<string, unknown>}
 */
function optionalObject(value, name) {
  return value === undefined ? {} : object(value, name)
}

/**
 * A Date as milliseconds since the epoch; undefined/null pass through as undefined.
 * @param {unknown} value
 * @param {string} name
 * @returns {number | undefined}
 */
function optionalDate(value, name) {
  if (value === undefined || value === null) return undefined
  if (!(value instanceof Date)) throw invalidArgument(`${name} must be a Date, got ${describe(value)}`)
  let ms
  try {
    // Throws for objects that only inherit from Date (no time value of their own).
    ms = Date.prototype.getTime.call(value)
  } catch {
    throw invalidArgument(`${name} is not a real Date`)
  }
  if (!Number.isFinite(ms)) throw invalidArgument(`${name} is an invalid Date`)
  return ms
}

/**
 * @param {unknown} value
 * @param {string} name
 * @returns {number | undefined}
 */
function optionalNumber(value, name) {
  if (value === undefined) return undefined
  if (typeof value !== 'number' || Number.isNaN(value)) {
    throw invalidArgument(`${name} must be a number, got ${describe(value)}`)
  }
  return value
}

module.exports = { ruleText, ruleArray, string, optionalString, stringArray, object, optionalObject, optionalDate, optionalNumber }
