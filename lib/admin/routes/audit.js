'use strict'
// /api/audit: the audit trail, newest first, filtered by the store; and its hash-chain verification.

const { ErrorCode } = require('../../native.js')
const { ApiError } = require('../response.js')
const { parseDateTime } = require('../../dates.js')
const { queryLimit } = require('../input.js')

const { AUDIT_ACTIONS } = require('../../store.js')

/** The entries of a page: by default, and at most. */
const AUDIT_PAGE = 100
const MAX_AUDIT_PAGE = 1000

/** How long a page's verification of the audit trail is reused while the trail has no new entry. */
const VERIFICATION_REUSE_MS = 60_000

/**
 * @typedef {import('../response.js').RouteContext} RouteContext
 * @typedef {import('../response.js').RouteRow} RouteRow
 * @typedef {import('../response.js').RouteHandler} RouteHandler
 */

/**
 * @param {Pick<RouteContext, 'store'>} context
 * @returns {RouteRow[]}
 */
function auditRoutes({ store }) {
  /**
   * The last verification a page was answered with, and the trail's newest entry it covered:
   * reused while that entry is still the newest, for up to VERIFICATION_REUSE_MS, so that paging
   * through a long trail costs no pass over it per page (about 3 µs an entry: seconds of a
   * blocked event loop for a million). `/audit/verify` always verifies afresh.
   * @type {{ head: string, at: number, report: import('../../../index.js').AuditReport } | undefined}
   */
  let lastVerification
  function verification() {
    const newest = store.audit({ limit: 1 })[0]
    const head = newest ? `${newest.seq} ${newest.hash}` : ''
    const now = Date.now()
    // A clock gone back counts as expired.
    const age = lastVerification ? now - lastVerification.at : -1
    if (lastVerification && lastVerification.head === head && age >= 0 && age < VERIFICATION_REUSE_MS) return lastVerification.report
    const report = store.verifyAudit()
    lastVerification = { head, at: now, report }
    return report
  }

  /** @type {RouteHandler} */
  function list({ query }) {
    /** @type {import('../../../index.js').AuditQuery} */
    const q = {}
    // As GET /api/keys: a bad limit is refused, never read as the default (`keygate audit
    // --limit` is a usage error too).
    const limit = query.get('limit')
    q.limit = limit === null ? AUDIT_PAGE : queryLimit(limit, MAX_AUDIT_PAGE)
    // A filter given empty filters as the store does, never as left out (see the keys' list).
    for (const name of /** @type {const} */ (['keyId', 'userId', 'actor'])) {
      const value = query.get(name)
      if (value !== null) q[name] = value
    }
    // Every actor contains the empty text: `?actor=$WHO` with $WHO unset would answer everyone's
    // changes as if they were one person's. Refused, as `keygate audit --by ''` is.
    if (q.actor === '') throw new ApiError(400, ErrorCode.InvalidArgument, 'actor needs some text of the actor (it finds the entries whose actor contains it)')
    const action = query.get('action')
    // The store refuses an unknown action with INVALID_ARGUMENT.
    if (action !== null) q.action = /** @type {import('../../../index.js').AuditAction} */ (action)
    for (const name of /** @type {const} */ (['since', 'until'])) {
      const text = query.get(name)
      if (text === null) continue
      const d = parseDateTime(text)
      if (d === undefined || !Number.isFinite(d.getTime())) throw new ApiError(400, ErrorCode.InvalidArgument, `${name} is not a valid date-time`)
      q[name] = d
    }
    const before = query.get('beforeSeq')
    if (before !== null) {
      // Digits only: Number('') is 0, Number('1e3') 1000, Number(' 7') 7.
      if (!/^[0-9]{1,16}$/.test(before) || !Number.isSafeInteger(Number(before))) {
        throw new ApiError(400, ErrorCode.InvalidArgument, `beforeSeq must be a whole number from 0 to ${Number.MAX_SAFE_INTEGER}`)
      }
      q.beforeSeq = Number(before)
    }
    return [200, { entries: store.audit(q), verification: verification(), actions: AUDIT_ACTIONS }]
  }

  return [
    ['GET', '/audit', list, { query: ['keyId', 'userId', 'actor', 'action', 'since', 'until', 'beforeSeq', 'limit'] }],
    ['GET', '/audit/verify', () => [200, store.verifyAudit()]],
  ]
}

module.exports = { auditRoutes }
