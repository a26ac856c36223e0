'use strict'
// Argument checks at the JavaScript boundary: wrong types become
// INVALID_ARGUMENT errors naming the argument; values are checked by the core.

const { invalidArgument } = require('./errors.js')

function describe(value) {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  if (value instanceof Date) return 'a Date'
  return typeof value === 'object' ? 'an object' : `${typeof value} ${String(value).slice(0, 40)}`
}

function string(value, name) {
  if (typeof value !== 'string') throw invalidArgument(`${name} must be a string, got ${describe(value)}`)
  return value
}

function optionalString(value, name) {
  return value === undefined ? undefined : string(value, name)
}

function stringArray(value, name) {
  if (value === undefined) return undefined
  if (!Array.isArray(value)) throw invalidArgument(`${name} must be an array of strings, got ${describe(value)}`)
  value.forEach((item, i) => string(item, `${name}[${i}]`))
  return value.slice()
}

function object(value, name) {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw invalidArgument(`${name} must be an object, got ${describe(value)}`)
  }
  return value
}

function optionalObject(value, name) {
  return value === undefined ? {} : object(value, name)
}

/** A Date as milliseconds since the epoch; undefined/null pass through as undefined. */
function optionalDate(value, name) {
  if (value === undefined || value === null) return undefined
  if (!(value instanceof Date)) throw invalidArgument(`${name} must be a Date, got ${describe(value)}`)
  const ms = value.getTime()
  if (!Number.isFinite(ms)) throw invalidArgument(`${name} is an invalid Date`)
  return ms
}

function optionalNumber(value, name) {
  if (value === undefined) return undefined
  if (typeof value !== 'number' || Number.isNaN(value)) {
    throw invalidArgument(`${name} must be a number, got ${describe(value)}`)
  }
  return value
}

module.exports = { string, optionalString, stringArray, object, optionalObject, optionalDate, optionalNumber }
