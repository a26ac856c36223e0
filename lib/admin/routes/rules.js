'use strict'
// /api/rules/validate: the page's live check of a rules textarea, line by line.

const { ErrorCode } = require('../../native.js')
const { ApiError } = require('../response.js')
const { field, strList } = require('../input.js')
const { validateLines, MAX_RULES } = require('../rules.js')

/**
 * @typedef {import('../response.js').RouteRow} RouteRow
 * @typedef {import('../response.js').RouteHandler} RouteHandler
 */

/** @returns {RouteRow[]} */
function ruleRoutes() {
  /** @type {RouteHandler} */
  function validate({ body }) {
    const lines = strList(body, 'lines')
    // Blank lines are allowed, so more lines than rules may come; but not without end.
    if (lines.length > 5 * MAX_RULES) throw new ApiError(400, ErrorCode.InvalidRule, `${lines.length} lines; at most ${MAX_RULES} rules are allowed`)
    return [200, validateLines(lines, { rights: field(body, 'kind') === 'rights' })]
  }

  return [['POST', '/rules/validate', validate, { body: ['lines', 'kind'] }]]
}

module.exports = { ruleRoutes }
