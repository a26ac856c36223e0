'use strict'
// Parsing of command-line values: the option parser, durations, dates and small checks.
// Every problem is a UsageError (exit code 2) with a message in plain words.

// Every value a user typed is shown through quote(): a secret pasted in the wrong place
// must not end up whole in scrollback or CI logs.
const { editDistance, nearestAll } = require('../args.js')
const { quote: quoteText, redactSecrets } = require('../errors.js')
const { isDatabaseUrl, shownStore } = require('../location.js')
const { parseDate } = require('../dates.js')

/**
 * A value the user typed, for a message: quoted and redacted (see lib/errors.js), a database URL
 * with its password masked first (quoting may cut a URL before the end of its password).
 * @param {string} text
 */
function quote(text) {
  return quoteText(isDatabaseUrl(text) ? shownStore(text) : text)
}

/** Letters and digits a value may hold in all and still be shown (a secret holds 49 after its prefix). */
const MOST_SHOWN_ALPHANUMERICS = 42
/**
 * A run of letters and digits this long, mixing capitals, small letters and digits, is taken for a
 * piece of a secret and not shown: 22 of a secret's 43 random characters shown would leave fewer
 * than 128 bits of it unknown; 21 or fewer leave more.
 */
const LONG_RUN = /[0-9A-Za-z]{22,}/g

/**
 * An option's or argument's value for a usage error, which comes before any store is open to
 * tell a secret of it from other text: one holding as many letters and digits as a secret's
 * random part, however separated, is not shown at all (no valid value holds that many).
 * @param {string} text
 */
function quoteTyped(text) {
  return mayHoldASecret(text) ? `(a value of ${[...text].length} characters, not shown: it may hold a secret)` : quote(text)
}

/**
 * Whether `text` (a value, or several joined: a secret pasted with a space is two arguments)
 * holds more letters and digits than any valid value, counted once long runs are redacted (a
 * whole secret still shows as "kg_<redacted>").
 * @param {string} text
 */
function mayHoldASecret(text) {
  const shown = redactSecrets(text)
  if (shown.replace(/[^0-9A-Za-z]/g, '').length > MOST_SHOWN_ALPHANUMERICS) return true
  // A piece of a secret too short to be redacted (a truncated paste): random base62 mixes the
  // three kinds of character, as names and dates seldom do.
  for (const [run] of shown.matchAll(LONG_RUN)) if (/[0-9]/.test(run) && /[A-Z]/.test(run) && /[a-z]/.test(run)) return true
  return false
}

class UsageError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message)
    this.name = 'UsageError'
  }
}

/**
 * An option of a command: `--name <arg>` (type `string`, repeatable when `multiple`) or a flag.
 * @typedef {object} OptionSpec
 * @property {'string' | 'boolean'} type
 * @property {string} [short] the one-letter form (`-h`)
 * @property {string} [arg] how help names its value (`<file>`)
 * @property {boolean} [multiple]
 * @property {string} help
 */

/**
 * What the options of `spec` parse to: a string, the list of a `multiple` option's strings,
 * or true for a flag; absent when not given.
 * @template {Record<string, OptionSpec>} S
 * @typedef {{ [K in keyof S]?: S[K] extends { type: 'boolean' } ? true : S[K] extends { type: 'string' } ? (S[K] extends { multiple: true } ? string[] : string) : string | string[] | true }} OptionValues
 */

/**
 * Parses `args` against `spec`.
 * Options may come before, between or after positionals; `--` ends the options.
 * @template {Record<string, OptionSpec>} S
 * @param {string[]} args
 * @param {S} spec
 * @param {string} [context] the command, for "see … --help"
 * @param {boolean} [takesArguments] whether the command takes arguments: an unknown option then
 *   says how to give one that starts with "-" (a user id such as -svc, valid on every surface)
 * @returns {{ values: OptionValues<S>, positionals: string[] }}
 */
function parseOptions(args, spec, context, takesArguments = false) {
  /** @type {Record<string, string | string[] | true>} */
  const values = {}
  /** @type {string[]} */
  const positionals = []
  const byShort = new Map()
  for (const [name, def] of Object.entries(spec)) if (def.short) byShort.set(def.short, name)
  const see = context ? ` (see ${context} --help)` : ''
  // A user id or role name may start with "-" (the library and the admin API take `-svc`); the
  // command line reads such a word as an option unless it comes after `--`.
  const dash = takesArguments ? `; an argument that starts with "-" goes after --: ${context ?? 'keygate …'} -- <argument>` : ''

  for (let i = 0; i < args.length; i++) {
    const arg = args[i]
    if (arg === '--') {
      positionals.push(...args.slice(i + 1))
      break
    }
    let name
    let inline
    if (arg.startsWith('--') && arg.length > 2) {
      const eq = arg.indexOf('=')
      name = eq === -1 ? arg.slice(2) : arg.slice(2, eq)
      inline = eq === -1 ? undefined : arg.slice(eq + 1)
      if (!Object.hasOwn(spec, name)) {
        // Every option as near as the nearest: `--post` is one letter from --host and from --port.
        const near = nearestAll(name, Object.keys(spec)).map((option) => `--${option}`)
        const last = near.pop()
        const guess = last === undefined ? '' : ` (did you mean ${near.length > 0 ? `${near.join(', ')} or ` : ''}${last}?)`
        throw new UsageError(`unknown option ${quoteTyped(`--${name}`)}${guess}${see}${dash}`)
      }
    } else if (arg.startsWith('-') && arg.length > 1 && !/^-\d/.test(arg)) {
      const short = arg.slice(1)
      name = byShort.get(short)
      if (name === undefined) throw new UsageError(`unknown option ${quoteTyped(arg)}${see}${dash}`)
    } else {
      positionals.push(arg)
      continue
    }
    const def = spec[name]
    if (def.type === 'boolean') {
      if (inline !== undefined) throw new UsageError(`--${name} takes no value`)
      values[name] = true
      continue
    }
    let value = inline
    if (value === undefined) {
      value = args[i + 1]
      if (value === undefined || looksLikeOption(value)) {
        throw new UsageError(`--${name} needs a value${def.arg ? ` (${def.arg})` : ''}; to pass a value that starts with "-", write --${name}=VALUE`)
      }
      i++
    }
    if (def.multiple) {
      values[name] ??= []
      // A multiple option's value is always its list.
      const list = /** @type {string[]} */ (values[name])
      list.push(value)
    } else {
      if (values[name] !== undefined) throw new UsageError(`--${name} is given more than once`)
      values[name] = value
    }
  }
  // Each value has its option's kind (the checks above): what OptionValues says, per name.
  return { values: /** @type {OptionValues<S>} */ (values), positionals }
}

/** @param {string} value */
function looksLikeOption(value) {
  return /^--[a-z]/i.test(value) || value === '-h'
}

// ---- durations and dates ----------------------------------------------------

/** @type {Record<string, number>} */
const UNIT_MS = { w: 7 * 86_400_000, d: 86_400_000, h: 3_600_000, m: 60_000, s: 1_000 }
const DURATION = /^(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/
const DURATION_HELP = 'a duration is a number with a unit w, d, h, m or s, such as 90d, 12h, 30m, 2w or 1d12h'
const DATE_HELP = 'a date is YYYY-MM-DD (midnight UTC at the start of that day) or an ISO 8601 time such as 2027-01-31T17:00:00Z'

/**
 * Milliseconds of a duration such as `90d`, `12h`, `1d12h`, `0`; undefined if `text` is not one.
 * A duration too long for a whole number of milliseconds (`100000000000d`) is still one: its
 * number is then beyond Number.MAX_SAFE_INTEGER (or Infinity), for the caller to cap or refuse as
 * out of range, never to call "not a duration".
 * @param {string} text
 */
function durationMs(text) {
  const t = text.trim().toLowerCase()
  if (t === '0') return 0
  if (t === '') return undefined
  const m = DURATION.exec(t)
  if (m === null) return undefined
  const units = ['w', 'd', 'h', 'm', 's']
  let ms = 0
  for (let i = 0; i < units.length; i++) if (m[i + 1] !== undefined) ms += Number(m[i + 1]) * UNIT_MS[units[i]]
  return ms
}

/**
 * A date-shaped value that is not a real date or time (2027-02-30, 25:00).
 * @param {string} text
 * @param {string} option
 */
function badDate(text, option) {
  if (/^\d{4}-\d{1,2}-\d{1,2}/.test(text.trim())) {
    return new UsageError(`${option} ${quoteTyped(text)} is not a valid date or time; ${DATE_HELP}`)
  }
  return undefined
}

/**
 * `date`, when it is one a Date can hold (within 8.64e15 ms of 1970: a duration may reach past
 * it); else the usage error of `option`.
 * @param {Date} date
 * @param {string} text
 * @param {string} option
 * @param {boolean} [ago] whether the duration counts back from now
 */
function inRange(date, text, option, ago = false) {
  if (Number.isNaN(date.getTime())) {
    const edge = ago ? 'before the first date a time can have (year -271821)' : 'past the last date a time can have (year 275760)'
    throw new UsageError(`${option} ${quoteTyped(text)} is out of range: it reaches ${edge}`)
  }
  return date
}

/**
 * `--expires`: a duration from now, or a date.
 * @param {string} text
 * @param {string} option
 * @param {number} now milliseconds since the epoch
 */
function parseExpiry(text, option, now) {
  const ms = durationMs(text)
  if (ms !== undefined) return inRange(new Date(now + ms), text, option)
  const date = parseDate(text)
  if (date !== undefined) return date
  const bad = badDate(text, option)
  if (bad) throw bad
  throw new UsageError(`${option} ${quoteTyped(text)} is neither a duration nor a date: ${DURATION_HELP}; ${DATE_HELP}`)
}

/**
 * `--since`, `--until`: a duration ago, or a date.
 * @param {string} text
 * @param {string} option
 * @param {number} now milliseconds since the epoch
 */
function parseAgo(text, option, now) {
  const ms = durationMs(text)
  if (ms !== undefined) return inRange(new Date(now - ms), text, option, true)
  const date = parseDate(text)
  if (date !== undefined) return date
  const bad = badDate(text, option)
  if (bad) throw bad
  throw new UsageError(`${option} ${quoteTyped(text)} is neither a duration (ago) nor a date: ${DURATION_HELP}; ${DATE_HELP}`)
}

/**
 * A duration in whole seconds (`--overlap`). As `rotateKey` takes any whole number of seconds
 * (the overlap ends at the key's expiry at the latest), a longer duration than a safe integer
 * holds is capped at Number.MAX_SAFE_INTEGER seconds, which no expiry reaches.
 * @param {string} text
 * @param {string} option
 */
function parseDurationSeconds(text, option) {
  const ms = durationMs(text)
  if (ms === undefined) throw new UsageError(`${option} ${quoteTyped(text)} is not a duration: ${DURATION_HELP}`)
  return Math.min(Math.floor(ms / 1000), Number.MAX_SAFE_INTEGER)
}

/**
 * A whole number from `min` to `max`.
 * @param {string} text
 * @param {string} option
 * @param {number} min
 * @param {number} max
 */
function parseWhole(text, option, min, max) {
  const t = text.trim()
  if (!/^\d+$/.test(t) || Number(t) < min || Number(t) > max) {
    throw new UsageError(`${option} ${quoteTyped(text)} must be a whole number from ${min} to ${max}`)
  }
  return Number(t)
}

/**
 * One of `choices`.
 * @template {string} T
 * @param {string} text
 * @param {string} option
 * @param {readonly T[]} choices
 * @returns {T}
 */
function parseChoice(text, option, choices) {
  if (!(/** @type {readonly string[]} */ (choices).includes(text))) {
    throw new UsageError(`${option} ${quoteTyped(text)} must be one of: ${choices.join(', ')}`)
  }
  // One of the choices (checked just above).
  return /** @type {T} */ (text)
}

/**
 * The command of `candidates` (all in small letters) nearest to `word`, within the edits its length
 * allows, case aside (`KEY` names `key`, as `--RULE` names `--rule`); the first listed of several as near.
 * @param {string} word
 * @param {string[]} candidates
 */
function closest(word, candidates) {
  const typed = word.toLowerCase()
  let best
  let bestDistance = Infinity
  for (const c of candidates) {
    const d = editDistance(typed, c)
    if (d < bestDistance) {
      best = c
      bestDistance = d
    }
  }
  return bestDistance <= (word.length <= 4 ? 2 : Math.floor(word.length / 3) + 1) ? best : undefined
}

/**
 * A hint for a call typed as one word, as a rule writes it (`session:getInfo`, or Hornbill's
 * `session::getInfo`), where check and explain take two; '' unless `<api>` is the word missing
 * and `word`, the one given in its place, holds a colon. Never echoes the word: it may be a secret.
 * @param {string | undefined} missing the word missing from the usage (`<api>`, `<path>`, …)
 * @param {string | undefined} word
 */
function callAsOneWord(missing, word) {
  return missing === '<api>' && word?.includes(':') ? '; give the call as two words, <service> <api>, not as a rule writes it (<service>:<api>)' : ''
}

module.exports = {
  callAsOneWord,
  quote,
  quoteTyped,
  mayHoldASecret,
  UsageError,
  parseOptions,
  parseExpiry,
  parseAgo,
  parseDurationSeconds,
  parseWhole,
  parseChoice,
  closest,
  DURATION_HELP,
}
