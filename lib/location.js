'use strict'
// Where a store lives: a file path, or a PostgreSQL URL (postgres:// or postgresql://) that the
// core opens as the shared store. The CLI and `keygate serve` resolve paths but never URLs, and
// never show a URL's password.

const path = require('node:path')
const { createHash } = require('node:crypto')

/** Whether `location` names a PostgreSQL database rather than a file. */
function isDatabaseUrl(location) {
  return typeof location === 'string' && /^postgres(ql)?:\/\//i.test(location)
}

/** A file path resolved against `cwd`; a URL as it is. */
function resolveStore(location, cwd = process.cwd()) {
  return isDatabaseUrl(location) ? location : path.resolve(cwd, location)
}

/** `location` as messages show it: a URL's password replaced by `***`. */
function shownStore(location) {
  return isDatabaseUrl(location) ? location.replace(/^([a-z]+:\/\/[^:@/?#]*):[^@/?#]*@/i, '$1:***@') : location
}

/** A file name derived from a URL (its password left out), for files kept beside a database store. */
function fileNameOf(location) {
  return `keygate-${createHash('sha256').update(shownStore(location)).digest('hex').slice(0, 16)}`
}

module.exports = { isDatabaseUrl, resolveStore, shownStore, fileNameOf }
