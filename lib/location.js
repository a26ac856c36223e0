'use strict'
// Where a store lives: a file path, or a PostgreSQL URL (postgres:// or postgresql://) that the
// core opens as the shared store. The CLI and `keygate serve` resolve paths but never URLs, and
// never show a URL's password.

const path = require('node:path')
const { createHash } = require('node:crypto')

/**
 * Whether `location` names a PostgreSQL database rather than a file.
 * @param {unknown} location
 * @returns {location is string}
 */
function isDatabaseUrl(location) {
  return typeof location === 'string' && /^postgres(ql)?:\/\//i.test(location)
}

/**
 * A file path resolved against `cwd`; a URL as it is.
 * @param {string} location
 * @param {string} [cwd]
 */
function resolveStore(location, cwd = process.cwd()) {
  // SQLite's special names stay as given, for the store to refuse with its own message
  // (resolved, `file:./dev.db` would become a file of that literal name under `cwd`).
  if (isDatabaseUrl(location) || location === '' || location === ':memory:' || /^file:/i.test(location)) return location
  return path.resolve(cwd, location)
}

/**
 * The decoded, lower-cased name of a URL parameter: `%XX` decoded as the core's parser does.
 * @param {string} text
 */
function parameterName(text) {
  return text.replace(/%([0-9a-f]{2})/gi, (_, hex) => String.fromCharCode(Number.parseInt(hex, 16))).toLowerCase()
}

/**
 * The spans of `text` (a URL without its scheme) that may hold a password, as [start, end) pairs:
 * the value of every parameter whose name holds "password" (`password`, `sslpassword`,
 * `Pass%77ord`, …), found after any `?` or `&`, up to the next `&`; and the user's password, from
 * the first `:` up to the last `@` outside those values (the driver ends it at the first `@`, and
 * a password may hold `/`, `?`, `#`, `:` or `@` unencoded). When in doubt, more is masked.
 * @param {string} text
 * @returns {Array<[number, number]>}
 */
function passwordSpans(text) {
  /** @type {Array<[number, number]>} */
  const spans = []
  for (let i = 0; i < text.length; i++) {
    if (text[i] !== '?' && text[i] !== '&') continue
    const equals = text.indexOf('=', i + 1)
    if (equals < 0) break
    const name = text.slice(i + 1, equals)
    if (name.includes('&') || !parameterName(name).includes('password')) continue
    const end = text.indexOf('&', equals + 1)
    spans.push([equals + 1, end < 0 ? text.length : end])
  }
  const inValue = (/** @type {number} */ at) => spans.some(([start, end]) => at >= start && at < end)
  const colon = text.indexOf(':')
  const firstAt = text.indexOf('@')
  if (colon >= 0 && firstAt >= 0) {
    let at = -1
    for (let i = text.lastIndexOf('@'); i >= 0; i = i > 0 ? text.lastIndexOf('@', i - 1) : -1) {
      if (!inValue(i)) {
        at = i
        break
      }
    }
    const end = Math.max(at, firstAt)
    if (colon < end) spans.push([colon + 1, end])
  }
  return spans
}

/**
 * `location` as messages show it: in a URL, anything that may be a password (the user's password,
 * a `password=` parameter) replaced by `***`.
 * @param {string} location
 */
function shownStore(location) {
  if (!isDatabaseUrl(location)) return location
  const scheme = location.indexOf('://') + 3
  const rest = location.slice(scheme)
  const spans = passwordSpans(rest).sort((a, b) => a[0] - b[0])
  let shown = ''
  let from = 0
  let masked = false
  for (const [start, end] of spans) {
    if (masked && start <= from) {
      // Overlaps or touches the span before: one `***` for both.
      from = Math.max(from, end)
      continue
    }
    shown += `${rest.slice(from, start)}***`
    from = end
    masked = true
  }
  return location.slice(0, scheme) + shown + rest.slice(from)
}

/**
 * A file name derived from a URL (no password in it: from `shownStore`), for files kept beside a
 * database store.
 * @param {string} location
 */
function fileNameOf(location) {
  return `keygate-${createHash('sha256').update(shownStore(location)).digest('hex').slice(0, 16)}`
}

module.exports = { isDatabaseUrl, resolveStore, shownStore, fileNameOf }
