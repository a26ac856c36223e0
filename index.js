'use strict'
// keygate: API keys for Node.js back ends, with a Rust core.
// The native binding (binding.js, generated) is wrapped here into the public API.

const { KeyStore } = require('./lib/store.js')
const { KeygateError, ERROR_CODES } = require('./lib/errors.js')

module.exports = { KeyStore, KeygateError, ERROR_CODES }
