'use strict'
// /api/try: what keygate would answer to a call or a WebDAV request, for a pasted secret (the
// store's explain / explainDav) or for a key id (explainKey / explainKeyDav: steps 3–9 from
// the key's settings).

const { KeygateError, quote } = require('../../errors.js')
const { ErrorCode, Reason } = require('../../native.js')
const { ApiError } = require('../response.js')
const { field, str } = require('../input.js')

// The bound of every text field of a try (docs/admin-api.md), far above any real service, API,
// method, path, caller address, key id or secret: within it the answer is the library's, for any
// text (a key without ip= rules is allowed whatever the ip says); over it, a 400 naming the field.
const MAX_TEXT = 4096

/**
 * A kind of call the try box knows: the names of its two fields, the fields read from the body,
 * and the store's explanation of it for a secret and for a key id.
 * @typedef {import('../../../index.js').KeyStore} KeyStore
 * @typedef {import('../../../index.js').Decision} Decision
 * @typedef {[string, string]} Call
 * @typedef {{
 *   fields: readonly [string, string],
 *   read: (body: Record<string, unknown>) => Call,
 *   bySecret: (store: KeyStore, secret: string, call: Call, ip: string | undefined) => Decision,
 *   byKey: (store: KeyStore, keyId: string, call: Call, ip: string | undefined) => Decision,
 * }} TryKind
 */

/** @type {Record<'api' | 'dav', TryKind>} */
const KINDS = {
  api: {
    fields: ['service', 'api'],
    read: (body) => [str(body, 'service', { max: MAX_TEXT }), str(body, 'api', { max: MAX_TEXT })],
    bySecret: (store, secret, [service, api], ip) => store.explain(secret, service, api, ip),
    byKey: (store, keyId, [service, api], ip) => store.explainKey(keyId, service, api, ip),
  },
  dav: {
    fields: ['method', 'path'],
    read: (body) => [str(body, 'method', { max: MAX_TEXT }), str(body, 'path', { max: MAX_TEXT })],
    bySecret: (store, secret, [method, path], ip) => store.explainDav(secret, method, path, ip),
    byKey: (store, keyId, [method, path], ip) => store.explainKeyDav(keyId, method, path, ip),
  },
}

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
    const kindName = field(body, 'kind') ?? 'api'
    if (kindName !== 'api' && kindName !== 'dav') throw new ApiError(400, ErrorCode.InvalidArgument, 'kind must be "api" or "dav"')
    const kind = KINDS[kindName]
    // The other kind's fields would be ignored: a WebDAV request tried with a service and an API
    // answers for a call that was never asked.
    const other = KINDS[kindName === 'api' ? 'dav' : 'api'].fields.find((name) => field(body, name) !== undefined && field(body, name) !== null)
    if (other !== undefined) {
      throw new ApiError(400, ErrorCode.InvalidArgument, `kind ${quote(kindName)} takes ${kind.fields.join(' and ')}, not ${other}`)
    }
    const call = kind.read(body)
    const ipIn = str(body, 'ip', { optional: true, max: MAX_TEXT })
    const ip = ipIn === undefined || ipIn.trim() === '' ? undefined : ipIn.trim()
    const secret = str(body, 'secret', { optional: true, max: MAX_TEXT })
    const keyId = str(body, 'keyId', { optional: true, max: MAX_TEXT })
    if (secret !== undefined && secret.trim() !== '') {
      return [200, { mode: 'secret', kind: kindName, decision: kind.bySecret(store, secret.trim(), call, ip) }]
    }
    if (keyId !== undefined && keyId.trim() !== '') {
      const decision = kind.byKey(store, keyId.trim(), call, ip)
      if (decision.reason === Reason.UnknownKey) throw new KeygateError(ErrorCode.UnknownKey, `no key with id ${quote(keyId.trim())}`)
      return [200, { mode: 'key', kind: kindName, decision }]
    }
    throw new ApiError(400, ErrorCode.InvalidArgument, 'give a secret or a key id')
  }

  return [['POST', '/try', tryCall, { body: ['kind', 'service', 'api', 'method', 'path', 'ip', 'secret', 'keyId'] }]]
}

module.exports = { tryRoutes }
