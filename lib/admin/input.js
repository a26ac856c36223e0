'use strict'
// Reading the fields of a JSON request body: each helper refuses a missing or mistyped field
// with a 400 naming it, so the routes read like a list of their inputs.

const { KeygateError, quote } = require('../errors.js')
const { ApiError } = require('./response.js')

/** The body's own field `name` (never one inherited from Object.prototype). */
function field(body, name) {
  return Object.prototype.hasOwnProperty.call(body, name) ? body[name] : undefined
}

function str(body, name, { optional = false, max = 100_000 } = {}) {
  const v = field(body, name)
  if (v === undefined || v === null) {
    if (optional) return undefined
    throw new ApiError(400, 'INVALID_ARGUMENT', `${name} is required`)
  }
  if (typeof v !== 'string') throw new ApiError(400, 'INVALID_ARGUMENT', `${name} must be a string`)
  if (v.length > max) throw new ApiError(400, 'INVALID_ARGUMENT', `${name} is longer than ${max} characters`)
  return v
}

function strList(body, name, { optional = false } = {}) {
  const v = field(body, name)
  if (v === undefined || v === null) {
    if (optional) return undefined
    throw new ApiError(400, 'INVALID_ARGUMENT', `${name} is required`)
  }
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) {
    throw new ApiError(400, 'INVALID_ARGUMENT', `${name} must be a list of strings`)
  }
  return v
}

function date(body, name, { optional = false } = {}) {
  const v = field(body, name)
  if (v === undefined || v === null || v === '') {
    if (optional) return undefined
    throw new KeygateError('EXPIRY_REQUIRED', `${name} is required`)
  }
  if (typeof v !== 'string' && typeof v !== 'number') {
    throw new ApiError(400, 'INVALID_ARGUMENT', `${name} must be an ISO date-time`)
  }
  const d = new Date(v)
  if (!Number.isFinite(d.getTime())) throw new ApiError(400, 'INVALID_ARGUMENT', `${name} is not a valid date-time`)
  return d
}

/** Checks the optimistic-concurrency stamp (`updatedAt`) a page sends with a change of a key. */
function checkFresh(key, body, id) {
  if (key === null) throw new KeygateError('UNKNOWN_KEY', `no key with id ${quote(id)}`)
  const seen = field(body, 'updatedAt')
  if (seen === undefined || seen === null) return key
  const t = new Date(seen).getTime()
  if (!Number.isFinite(t) || t !== key.updatedAt.getTime()) {
    throw new ApiError(
      409,
      'KEY_CHANGED',
      `key ${key.id} was changed elsewhere (another tab or admin) since this page showed it; review it and try again`,
    )
  }
  return key
}

module.exports = { field, str, strList, date, checkFresh }
