'use strict'
// Rules as the page sends them: the raw lines of a textarea. Checked line by line with the
// store's own parser, so the page can point at the line at fault.

const { KeyStore } = require('../store.js')
const { KeygateError, quote, redactSecrets } = require('../errors.js')
const { ErrorCode } = require('../native.js')

const MAX_RULES = 1000

/**
 * Validates rules line by line. `lines` are the raw lines of a textarea; line numbers
 * count every line (blank ones are allowed and ignored). `rights` refuses IP rules. `scrub` is
 * the store's (`scrubMessage`): a line holding one of its secrets — without its prefix, or cut
 * into pieces by `:`, a newline, a space… — is refused as the store refuses it in a rule it
 * writes, and what is sent back (the rule, the message) is withheld when it would quote it.
 * @param {string[]} lines
 * @param {{ rights?: boolean, scrub?: (text: string) => string }} [options]
 * @returns {import('./server.js').RuleCheck}
 */
function validateLines(lines, { rights = false, scrub = (text) => text } = {}) {
  /** @type {import('./server.js').RuleCheck['errors']} */
  const errors = []
  /** @type {string[]} */
  const rules = []
  lines.forEach((raw, i) => {
    const text = raw.trim()
    if (text === '') return
    try {
      const rule = KeyStore.validateRule(text)
      if (rights && /^ip=/i.test(rule)) {
        throw new KeygateError(ErrorCode.InvalidRule, `invalid rule ${quote(text)}: user and role rights take API and WebDAV rules only, not IP rules`)
      }
      // Valid as a rule, yet it holds a secret of the store: the store would refuse it.
      const scrubbed = scrub(text)
      if (scrubbed !== text) throw new KeygateError(ErrorCode.InvalidRule, scrubbed)
      rules.push(rule)
    } catch (e) {
      if (!(e instanceof KeygateError)) throw e
      errors.push({ line: i + 1, rule: scrub(shortened(redactSecrets(text), 300)), message: scrub(e.message) })
    }
  })
  if (rules.length + errors.length > MAX_RULES) {
    errors.push({ line: 0, rule: '', message: `${rules.length + errors.length} rules given; at most ${MAX_RULES} are allowed` })
  }
  return { ok: errors.length === 0, rules, errors }
}

/**
 * The rules of a key (or, with `rights`, the rights of a user or role) to store: the lines
 * trimmed, blank ones dropped. The first bad line fails the whole change (INVALID_RULE).
 * @param {string[]} lines
 * @param {{ rights?: boolean }} [options]
 */
function rulesToStore(lines, { rights = false } = {}) {
  const checked = validateLines(lines, { rights })
  if (!checked.ok) {
    const e = checked.errors[0]
    const where = rights ? 'rights line' : 'line'
    throw new KeygateError(ErrorCode.InvalidRule, e.line > 0 ? `${where} ${e.line}: ${e.message}` : e.message)
  }
  return lines.map((r) => r.trim()).filter((r) => r !== '')
}

/**
 * `text` cut to `max` code points (never splitting a surrogate pair), with … when cut.
 * @param {string} text
 * @param {number} max
 */
function shortened(text, max) {
  const points = Array.from(text)
  return points.length > max ? `${points.slice(0, max).join('')}…` : text
}

module.exports = { validateLines, rulesToStore, MAX_RULES }
