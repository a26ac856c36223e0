'use strict'

// Text that keygate shows (CLI output, log lines, messages, JSON read with curl) may hold what a
// user typed or a request sent. These are the characters that would act on whatever shows it
// instead of being shown: C0 and C1 controls (a newline faking a line, an escape sequence, 8-bit
// CSI/OSC), the line and paragraph separators, and the bidi controls (U+202E makes "txt.exe" read
// "exe.txt" and can move the text around it).
const UNSHOWABLE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g

/** @param {string} c */
const codePoint = (c) => c.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')

/**
 * `text` on one line, with every such character written as a visible `<U+202E>`.
 * @param {unknown} text shown as `String(text)`
 * @returns {string}
 */
function visible(text) {
  return String(text).replace(UNSHOWABLE, (c) => `<U+${codePoint(c)}>`)
}

/**
 * `text` made of lines: like visible(), but newlines and tabs stay.
 * @param {unknown} text shown as `String(text)`
 * @returns {string}
 */
function visibleLines(text) {
  return String(text).replace(UNSHOWABLE, (c) => (c === '\n' || c === '\t' ? c : `<U+${codePoint(c)}>`))
}

/**
 * JSON text (JSON.stringify's) with the characters it writes raw (U+007F-U+009F, the separators,
 * the bidi controls) written as `\uXXXX` escapes, which parse to the same string. JSON.stringify
 * escapes U+0000-U+001F in strings itself, so a raw newline is its layout's and stays.
 * @param {string} json
 * @returns {string}
 */
function escapedJson(json) {
  return json.replace(UNSHOWABLE, (c) => (c === '\n' ? c : `\\u${codePoint(c).toLowerCase()}`))
}

module.exports = { visible, visibleLines, escapedJson }
