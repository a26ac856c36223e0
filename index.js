'use strict'
// keygate: API keys for Node.js back ends, with a Rust core.
// The public API: the native binding (binding.js, generated) is wrapped in lib/store.js.

const { KeyStore } = require('./lib/store.js')
const { KeygateError, ERROR_CODES } = require('./lib/errors.js')

module.exports = { KeyStore, KeygateError, ERROR_CODES }
