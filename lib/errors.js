'use strict'

const native = require('./native.js')
const { escapedJson } = require('./visible.js')

/** The stable, documented error codes, in its order (the binding's `ErrorCode`). */
const ERROR_CODES = Object.freeze(Object.values(native.ErrorCode))
const KNOWN_CODES = new Set(ERROR_CODES)

// Marks every error keygate throws, so that the TypeError of a non-string
// argument is also `instanceof KeygateError`.
const BRAND = Symbol('keygate.error')

/** @typedef {import('../index.js').ErrorCode} ErrorCode */

class KeygateError extends Error {
  /**
   * @param {ErrorCode} code
   * @param {string} message
   */
  constructor(code, message) {
    super(message)
    this.name = 'KeygateError'
    this.code = code
    Object.defineProperty(this, BRAND, { value: true })
  }

  /** @param {unknown} value */
  static [Symbol.hasInstance](value) {
    // biome-ignore lint/complexity/noThisInStatic: `this` is the class `instanceof` was asked about, KeygateError or a subclass
    if (this !== KeygateError) return Function.prototype[Symbol.hasInstance].call(this, value)
    return value !== null && typeof value === 'object' && /** @type {{ [BRAND]?: unknown }} */ (value)[BRAND] === true
  }
}

/** @param {string} message */
function invalidArgument(message) {
  return new KeygateError('INVALID_ARGUMENT', message)
}

/**
 * A `TypeError` (as documented for isAllowed/explain) that is also a KeygateError.
 * @param {string} message
 */
function typeError(message) {
  const error = Object.assign(new TypeError(message), { code: 'INVALID_ARGUMENT' })
  Object.defineProperty(error, BRAND, { value: true })
  return error
}

/**
 * Codes of a native error that is keygate's defect, not the caller's: a panic
 * caught by a hand-registered callback (`INTERNAL`), or one caught by napi-rs's
 * `catch_unwind` wrapper, which reports it as `GenericFailure` with the panic's
 * message (napi-rs uses that status only for failures inside the binding; a
 * wrong argument type has a status of its own, such as `StringExpected`).
 */
const DEFECT_CODES = new Set(['INTERNAL', 'GenericFailure'])

/**
 * Re-throws an error of the native layer as a KeygateError with its code.
 * @param {any} error what the binding threw: read as JavaScript reads a caught value (`error.code`), like every catch here
 * @returns {KeygateError}
 */
function fromNative(error) {
  if (error instanceof KeygateError) return error
  const message = error?.message ? error.message : String(error)
  if (error && DEFECT_CODES.has(error.code)) {
    // A panic message may quote the value it failed on.
    return new KeygateError('INTERNAL', `internal error: a defect in keygate (please report it): ${redactSecrets(message)}`)
  }
  const code = error && KNOWN_CODES.has(error.code) ? error.code : 'INVALID_ARGUMENT'
  return new KeygateError(code, message)
}

/**
 * A user-supplied value fit for a message: any stretch of 32 or more base62
 * characters, counting across the characters a paste may slip in between them
 * (`-`, `.`, soft hyphens, invisible format characters), is redacted — a
 * secret's body is 49, so even a secret cut in two shows no long piece, and an
 * admin who pastes a secret where an id belongs will not find it in a log. The
 * same rule as the core's `redact_secrets`.
 * @param {unknown} text
 * @returns {string}
 */
function redactSecrets(text) {
  return String(text).replace(/[0-9A-Za-z][0-9A-Za-z\-.\u00ad\u200b-\u200d\u2060\ufeff]*/g, (stretch) =>
    stretch.replace(/[^0-9A-Za-z]/g, '').length >= 32 ? '<redacted>' : stretch,
  )
}

/**
 * A value quoted for a message: redacted, and shortened to 80 characters.
 * @param {unknown} value
 */
function quote(value) {
  const text = redactSecrets(value)
  // Cut by code points, so an astral character is never split into a lone surrogate.
  // JSON.stringify escapes U+0000-U+001F; the other characters a terminal or log acts on too (as the core's quoting does).
  return escapedJson(JSON.stringify(text.length <= 80 ? text : `${Array.from(text.slice(0, 160)).slice(0, 80).join('')}…`))
}

module.exports = { ERROR_CODES, KeygateError, invalidArgument, typeError, fromNative, redactSecrets, quote }
