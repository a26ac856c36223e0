'use strict'
// /api/rules/validate: the page's live check of a rules textarea, line by line.

const { ErrorCode } = require('../../native.js')
const { ApiError } = require('../response.js')
const { field, strList } = require('../input.js')
const { validateLines, MAX_RULES } = require('../rules.js')
const { scrubMessage } = require('../../store.js')

/**
 * @typedef {import('../response.js').RouteRow} RouteRow
 * @typedef {import('../response.js').RouteHandler} RouteHandler
 */

/**
 * @param {Pick<import('../response.js').RouteContext, 'store'>} context
 * @returns {RouteRow[]}
 */
function ruleRoutes({ store }) {
  /** @type {RouteHandler} */
  function validate({ body }) {
    const lines = strList(body, 'lines')
    // Checked, as /api/try checks its kind: a misspelt 'rights' would pass ip= rules as valid rights.
    const kind = field(body, 'kind') ?? 'key'
    if (kind !== 'key' && kind !== 'rights') throw new ApiError(400, ErrorCode.InvalidArgument, 'kind must be "key" or "rights"')
    // Blank lines are allowed, so more lines than rules may come; but not without end.
    if (lines.length > 5 * MAX_RULES) throw new ApiError(400, ErrorCode.InvalidRule, `${lines.length} lines; at most ${MAX_RULES} rules are allowed`)
    // Scrubbed by the store: the answer is no error, so fail() does not withhold a secret in it.
    return [200, validateLines(lines, { rights: kind === 'rights', scrub: (text) => scrubMessage(store, text) })]
  }

  return [['POST', '/rules/validate', validate, { body: ['lines', 'kind'] }]]
}

module.exports = { ruleRoutes }
