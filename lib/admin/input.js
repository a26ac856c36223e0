'use strict'
// Reading the fields of a JSON request body: each helper refuses a missing or mistyped field
// with a 400 naming it, so the routes read like a list of their inputs.

const { unknownOption } = require('../args.js')
const { KeygateError, quote } = require('../errors.js')
const { ErrorCode } = require('../native.js')
const { ApiError } = require('./response.js')
const { parseDateTime } = require('../dates.js')

/**
 * The body's own field `name` (never one inherited from Object.prototype).
 * @param {Record<string, unknown>} body
 * @param {string} name
 */
function field(body, name) {
  return Object.hasOwn(body, name) ? body[name] : undefined
}

/**
 * A string field, at most `max` characters (each caller names its own bound); undefined (when
 * optional) if missing or null.
 * @overload
 * @param {Record<string, unknown>} body
 * @param {string} name
 * @param {{ optional: true, max: number }} options
 * @returns {string | undefined}
 */
/**
 * @overload
 * @param {Record<string, unknown>} body
 * @param {string} name
 * @param {{ optional?: false, max: number }} options
 * @returns {string}
 */
/**
 * @param {Record<string, unknown>} body
 * @param {string} name
 * @param {{ optional?: boolean, max: number }} options
 */
function str(body, name, { optional = false, max }) {
  const v = field(body, name)
  if (v === undefined || v === null) {
    if (optional) return undefined
    throw new ApiError(400, ErrorCode.InvalidArgument, `${name} is required`)
  }
  if (typeof v !== 'string') throw new ApiError(400, ErrorCode.InvalidArgument, `${name} must be a string`)
  if (v.length > max) throw new ApiError(400, ErrorCode.InvalidArgument, `${name} is longer than ${max} characters`)
  return v
}

/**
 * A list-of-strings field; undefined (when optional) if missing or null.
 * @overload
 * @param {Record<string, unknown>} body
 * @param {string} name
 * @param {{ optional: true }} options
 * @returns {string[] | undefined}
 */
/**
 * @overload
 * @param {Record<string, unknown>} body
 * @param {string} name
 * @param {{ optional?: false }} [options]
 * @returns {string[]}
 */
/**
 * @param {Record<string, unknown>} body
 * @param {string} name
 * @param {{ optional?: boolean }} [options]
 */
function strList(body, name, { optional = false } = {}) {
  const v = field(body, name)
  if (v === undefined || v === null) {
    if (optional) return undefined
    throw new ApiError(400, ErrorCode.InvalidArgument, `${name} is required`)
  }
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) {
    throw new ApiError(400, ErrorCode.InvalidArgument, `${name} must be a list of strings`)
  }
  return v
}

/**
 * A date-time field (ISO text or milliseconds); missing (or null, or '') is EXPIRY_REQUIRED.
 * @param {Record<string, unknown>} body
 * @param {string} name
 * @returns {Date}
 */
function date(body, name) {
  const v = field(body, name)
  if (v === undefined || v === null || v === '') throw new KeygateError(ErrorCode.ExpiryRequired, `${name} is required`)
  if (typeof v !== 'string' && typeof v !== 'number') {
    throw new ApiError(400, ErrorCode.InvalidArgument, `${name} must be an ISO date-time`)
  }
  const d = typeof v === 'string' ? parseDateTime(v) : new Date(v)
  if (d === undefined || !Number.isFinite(d.getTime())) throw new ApiError(400, ErrorCode.InvalidArgument, `${name} is not a valid date-time`)
  return d
}

/**
 * The optimistic-concurrency stamp (`updatedAt`) a page sends with a change of a key, for the
 * store to check inside its write (`expectedUpdatedAt`; a mismatch is `CONFLICT`, 409).
 * @param {Record<string, unknown>} body
 */
function expectedUpdatedAt(body) {
  const seen = field(body, 'updatedAt')
  if (seen === undefined || seen === null) return undefined
  const d = typeof seen === 'string' ? parseDateTime(seen) : undefined
  if (d === undefined || !Number.isFinite(d.getTime())) throw new ApiError(400, ErrorCode.InvalidArgument, 'updatedAt is not a valid date-time')
  return d
}

/**
 * Whether `value` is one of `values` (the binding's KeyState, UserStatus, …): a type guard.
 * @template {string} T
 * @param {readonly T[]} values
 * @param {string} value
 * @returns {value is T}
 */
function isOneOf(values, value) {
  return /** @type {readonly string[]} */ (values).includes(value)
}

/**
 * Refuses a body field or query parameter the route does not take (400 naming it, with the
 * ones it takes): ignored, a misspelt `rules` would create a key free to call whatever its user
 * may, a `state` in a key's edit would leave a key meant revoked usable, and a misspelt
 * filter would list everything.
 * @param {import('./response.js').RouteInputs} inputs what the route takes
 * @param {Record<string, unknown>} body
 * @param {URLSearchParams} query
 */
function onlyInputs(inputs, body, query) {
  const names = [...query.keys()]
  const unknown =
    unknownOption(body, inputs.body ?? [], 'body', { noun: 'field', hints: inputs.hints }) ??
    unknownOption(Object.fromEntries(names.map((name) => [name, true])), inputs.query ?? [], 'query', { noun: 'parameter' })
  if (unknown !== undefined) throw new ApiError(400, ErrorCode.InvalidArgument, unknown)
  // A route reads the first of a repeated parameter: `?state=active&state=revoked` would list the active keys only.
  const repeated = names.find((name, i) => names.indexOf(name) < i)
  if (repeated !== undefined) throw new ApiError(400, ErrorCode.InvalidArgument, `query: parameter ${quote(repeated)} given more than once`)
}

/**
 * A listing's `limit` query parameter: a whole number from 1 to `max`, digits only (Number('')
 * is 0, Number('1e2') 100, Number(' 7') 7); anything else is 400 INVALID_ARGUMENT, never a
 * default: a typo in a script's limit must not answer a page of another size as if it were asked.
 * @param {string} text
 * @param {number} max
 */
function queryLimit(text, max) {
  if (!/^[0-9]{1,4}$/.test(text) || Number(text) < 1 || Number(text) > max) {
    throw new KeygateError(ErrorCode.InvalidArgument, `limit must be a whole number from 1 to ${max}`)
  }
  return Number(text)
}

/**
 * Refuses a body's `name` (`id`, a role's `name`) other than the path's: a replace names what it
 * replaces by its path, and may carry the name back as read, never a new one.
 * @param {Record<string, unknown>} body
 * @param {string} name
 * @param {string} value the path's
 * @param {string} what what it is called in the message (`a user's id`)
 */
function sameAsPath(body, name, value, what) {
  const given = str(body, name, { optional: true, max: 256 })
  if (given !== undefined && given !== value) {
    throw new ApiError(400, ErrorCode.InvalidArgument, `the body's ${name} ${quote(given)} is not the path's ${quote(value)}: ${what} cannot be changed`)
  }
}

module.exports = { field, str, strList, date, expectedUpdatedAt, isOneOf, onlyInputs, queryLimit, sameAsPath }
