'use strict'
// /api/audit: the audit trail, newest first, filtered; and its hash-chain verification.

const { quote } = require('../../errors.js')
const { ApiError } = require('../response.js')

const { AUDIT_ACTIONS } = require('../../store.js')

/** @param {{ store: import('../../../index').KeyStore }} context */
function auditRoutes({ store }) {
  function list({ query }) {
    const q = {}
    const keyId = query.get('keyId')
    const userId = query.get('userId')
    const since = query.get('since')
    const action = query.get('action')
    const who = query.get('actor')
    let limit = Number(query.get('limit') || 100)
    if (!Number.isInteger(limit) || limit < 1) limit = 100
    limit = Math.min(limit, 1000)
    if (keyId) q.keyId = keyId
    if (userId) q.userId = userId
    if (since) {
      const d = new Date(since)
      if (!Number.isFinite(d.getTime())) throw new ApiError(400, 'INVALID_ARGUMENT', 'since is not a valid date-time')
      q.since = d
    }
    if (action && !AUDIT_ACTIONS.includes(action)) throw new ApiError(400, 'INVALID_ARGUMENT', `unknown audit action ${quote(action)}`)
    const filtering = Boolean(action || who)
    q.limit = filtering ? 100_000 : limit
    let entries = store.audit(q)
    if (action) entries = entries.filter((e) => e.action === action)
    if (who) entries = entries.filter((e) => (e.actor ?? '').toLowerCase().includes(who.toLowerCase()))
    return [200, { entries: entries.slice(0, limit), verification: store.verifyAudit(), actions: AUDIT_ACTIONS }]
  }

  return [
    ['GET', '/audit', list],
    ['GET', '/audit/verify', () => [200, store.verifyAudit()]],
  ]
}

module.exports = { auditRoutes }
