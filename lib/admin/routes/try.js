'use strict'
// /api/try: what keygate would answer to a call, for a pasted secret (the store's
// explain) or for a key id (the store's explainKey: steps 3–9 from the key's settings).

const { KeygateError, quote } = require('../../errors.js')
const { ErrorCode, Reason } = require('../../native.js')
const { ApiError } = require('../response.js')
const { str } = require('../input.js')

/**
 * @typedef {import('../response.js').RouteContext} RouteContext
 * @typedef {import('../response.js').RouteRow} RouteRow
 * @typedef {import('../response.js').RouteHandler} RouteHandler
 */

/**
 * @param {Pick<RouteContext, 'store'>} context
 * @returns {RouteRow[]}
 */
function tryRoutes({ store }) {
  /** @type {RouteHandler} */
  function tryCall({ body }) {
    const service = str(body, 'service', { max: 4096 })
    const api = str(body, 'api', { max: 4096 })
    const ipIn = str(body, 'ip', { optional: true, max: 256 })
    const ip = ipIn === undefined || ipIn.trim() === '' ? undefined : ipIn.trim()
    const secret = str(body, 'secret', { optional: true, max: 4096 })
    const keyId = str(body, 'keyId', { optional: true, max: 256 })
    if (secret !== undefined && secret.trim() !== '') {
      return [200, { mode: 'secret', decision: store.explain(secret.trim(), service, api, ip) }]
    }
    if (keyId !== undefined && keyId.trim() !== '') {
      const decision = store.explainKey(keyId.trim(), service, api, ip)
      if (decision.reason === Reason.UnknownKey) throw new KeygateError(ErrorCode.UnknownKey, `no key with id ${quote(keyId.trim())}`)
      return [200, { mode: 'key', decision }]
    }
    throw new ApiError(400, ErrorCode.InvalidArgument, 'give a secret or a key id')
  }

  return [['POST', '/try', tryCall]]
}

module.exports = { tryRoutes }
