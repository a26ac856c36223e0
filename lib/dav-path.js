'use strict'
// keygate/http's WebDAV mapping: the path of a request under the WebDAV prefix (`/dav/` by
// default), percent-decoded once, or a refusal.
//
// A WebDAV path names a file, so the guard accepts only paths that every server and
// framework reads the same way: segments of the store's path alphabet (RFC 3986's
// unreserved characters, `A-Z a-z 0-9 - . _ ~`), no `.`/`..`/empty segment, no encoded `/`
// or `\`, nothing the app could decode into another path than the one checked.

/** The longest path the store accepts (1,024 characters). */
const { MAX_DAV_PATH_LENGTH: MAX_DAV_PATH } = require('./native.js')

/** The path alphabet, by character code (`/` is handled apart). */
const PATH_CHAR = new Uint8Array(128)
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~') PATH_CHAR[c.charCodeAt(0)] = 1

/** A refused path (400 before any check). */
const REFUSED = Symbol('refused WebDAV path')

/**
 * The value of one hex digit, or -1.
 * @param {number} code a UTF-16 code unit (NaN past the end of the string: -1)
 */
function hexValue(code) {
  if (code >= 48 && code <= 57) return code - 48
  const lower = code | 0x20
  if (lower >= 97 && lower <= 102) return lower - 87
  return -1
}

/**
 * The WebDAV path of `raw` (the request target's path after the prefix, without the query):
 * percent-escapes decoded exactly once, or REFUSED when the decoded path is empty, longer than
 * 1,024 characters, or holds anything outside the alphabet — a `%` that is not followed by
 * two hex digits, an encoded `/` (`%2F`) or `\` (`%5C`), a backslash, NUL, `#`, a non-ASCII
 * byte (so invalid UTF-8 too) — or a `.`, `..` or empty segment. One trailing `/` (a
 * collection, `PROPFIND /dav/docs/`) is kept: the store decides on it.
 * @param {string} raw
 * @returns {string | typeof REFUSED}
 */
function decodeDavPath(raw) {
  // Every decoded character costs at most three raw ones: longer can only be refused.
  if (raw.length === 0 || raw.length > 3 * MAX_DAV_PATH) return REFUSED
  let out = ''
  let segmentStart = 0
  for (let i = 0; i < raw.length; i++) {
    let code = raw.charCodeAt(i)
    if (code === 47 /* / */) {
      if (!segmentOk(out, segmentStart)) return REFUSED
      out += '/'
      segmentStart = out.length
      continue
    }
    if (code === 37 /* % */) {
      const high = hexValue(raw.charCodeAt(i + 1))
      const low = hexValue(raw.charCodeAt(i + 2))
      if (high < 0 || low < 0) return REFUSED
      code = high * 16 + low // `%2F` and `%5C` are not in PATH_CHAR: refused below
      i += 2
    }
    if (code >= 128 || PATH_CHAR[code] !== 1) return REFUSED
    out += String.fromCharCode(code)
  }
  // The last segment may be empty only as one trailing `/` after a real segment.
  if (out.length === segmentStart) {
    if (out.length === 0) return REFUSED
  } else if (!segmentOk(out, segmentStart)) {
    return REFUSED
  }
  if (out.length > MAX_DAV_PATH) return REFUSED
  return out
}

/**
 * The segment out[start..] is neither empty, `.` nor `..`.
 * @param {string} out
 * @param {number} start
 */
function segmentOk(out, start) {
  const length = out.length - start
  if (length === 0) return false
  if (length > 2 || out.charCodeAt(start) !== 46 /* . */) return true
  return length === 2 && out.charCodeAt(start + 1) !== 46
}

/**
 * The prefix option as the guard uses it: `'/dav/'` by default, null when the WebDAV mapping is
 * off (`false`), or a string starting and ending with `/` over the path alphabet.
 * Returns an error message for anything else.
 * @param {unknown} option as given: checked here
 * @returns {{ prefix: string | null, error?: undefined } | { error: string, prefix?: undefined }}
 */
function davPrefixOf(option) {
  if (option === undefined) return { prefix: '/dav/' }
  if (option === false || option === null) return { prefix: null }
  if (typeof option !== 'string' || !/^\/(?:[A-Za-z0-9._~-]+\/)+$/.test(option) || /(?:^|\/)\.{1,2}\//.test(option) || option.length > 256) {
    return { error: 'options.davPrefix must be a path such as "/dav/" (starting and ending with /, segments of A-Z a-z 0-9 - . _ ~), or false' }
  }
  return { prefix: option }
}

module.exports = { decodeDavPath, davPrefixOf, REFUSED }
