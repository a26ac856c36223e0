'use strict'
// /api/try: what keygate would answer to a call, for a pasted secret (the store's own
// explain) or for a key id (simulated from the key's settings; see simulate).

const { KeyStore } = require('../../store.js')
const { KeygateError, quote } = require('../../errors.js')
const { ApiError } = require('../response.js')
const { str } = require('../input.js')

/** @param {{ store: import('../../../index').KeyStore }} context */
function tryRoutes({ store }) {
  /**
   * The decision a key would give, from its settings alone (no secret): steps 3–9 of the
   * decision, replayed on a scratch in-memory store that holds a copy of the key's user,
   * roles and rules.
   */
  function simulate(key, service, api, ip) {
    const now = store.now()
    const user = store.getUser(key.userId)
    const base = { keyId: key.id, userId: key.userId }
    const simNow = new Date(Math.min(now.getTime(), key.expiresAt.getTime() - 1000))
    const scratch = KeyStore.inMemory({ now: simNow, maxLifetimeDays: 36500 })
    try {
      let decision
      if (user === null) {
        decision = { allowed: false, reason: 'user_inactive' }
      } else {
        for (const name of user.roles) {
          const role = store.getRole(name)
          if (role) scratch.putRole(role)
        }
        scratch.putUser({ id: user.id, status: user.status, rights: user.rights, roles: user.roles.filter((r) => scratch.getRole(r)) })
        const issued = scratch.createKey({ userId: user.id, description: '', expiresAt: key.expiresAt, rules: key.rules })
        decision = scratch.explain(issued.secret, service, api, ip)
      }
      if (decision.reason !== 'invalid_request') {
        if (key.state !== 'active') decision = { allowed: false, reason: key.state }
        else if (now.getTime() >= key.expiresAt.getTime()) decision = { allowed: false, reason: 'expired' }
      }
      const out = { allowed: decision.allowed, reason: decision.reason, ...base }
      if (decision.matchedRule) out.matchedRule = decision.matchedRule
      return out
    } finally {
      scratch.close()
    }
  }

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
      const key = store.getKey(keyId.trim())
      if (key === null) throw new KeygateError('UNKNOWN_KEY', `no key with id ${quote(keyId.trim())}`)
      return [200, { mode: 'key', decision: simulate(key, service, api, ip) }]
    }
    throw new ApiError(400, 'INVALID_ARGUMENT', 'give a secret or a key id')
  }

  return [['POST', '/try', tryCall]]
}

module.exports = { tryRoutes }
