'use strict'

// The CLI's --json mode, told and written without keygate's native addon: bin/keygate.js needs
// both when the addon cannot be loaded (refused by --no-addons or the permission model, or no
// binary for the platform), to report that too as the one JSON document on stdout.

const { escapedJson } = require('../visible.js')

/**
 * Whether `argv` asks for JSON: `--json` before any `--` (after it, every word is an argument).
 * @param {string[]} argv
 */
function jsonRequested(argv) {
  const end = argv.indexOf('--')
  return (end === -1 ? argv : argv.slice(0, end)).includes('--json')
}

/**
 * `value` as the one JSON document of --json: JSON.stringify's, with the characters it writes raw
 * that a terminal acts on (U+007F-U+009F: CSI, OSC… to terminals that take 8-bit controls; the
 * bidi controls) written as `\uXXXX` escapes, which parse to the same string.
 * @param {unknown} value
 */
function jsonDocument(value) {
  return escapedJson(JSON.stringify(value, null, 2))
}

module.exports = { jsonRequested, jsonDocument }
