'use strict'
// /constants.js: the ES module the page imports its names from, written out from the
// binding's string enums (and the admin API's own error codes) when first asked for, so that
// the page copies none of them. Its types: public/constants.d.ts.

const native = require('../native.js')
const { AdminErrorCode } = require('./codes.js')

const EXPORTS = {
  Reason: native.Reason,
  KeyState: native.KeyState,
  UserStatus: native.UserStatus,
  AuditAction: native.AuditAction,
  ErrorCode: native.ErrorCode,
  AdminErrorCode,
}

/** The module's source text: one frozen object per name. */
function constantsModule() {
  return Object.entries(EXPORTS)
    .map(([name, values]) => `export const ${name} = Object.freeze(${JSON.stringify(values)})\n`)
    .join('')
}

module.exports = { constantsModule }
