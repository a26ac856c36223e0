'use strict'

// Instants written as text, read the same way by the CLI (--expires) and the admin API: ISO 8601,
// never `new Date` on any string (it reads a time without an offset in the server's time zone, and
// guesses at other forms).

// A zone only after a time, right after it (ISO 8601 gives a date alone no offset: `2027-01-31+05:00`
// read as 2027-01-30T19:00Z, and `17:00 Z`, were taken, though the docs call other forms errors).
const DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(?:([Zz])|([+-])(\d{2}):?(\d{2}))?)?$/

/**
 * An instant from `YYYY-MM-DD` (00:00:00 UTC of that day), `YYYY-MM-DDTHH:MM[:SS[.fff]]` with
 * `Z`, an offset `±HH:MM`, or no offset (taken as UTC). Undefined if `text` is not a date.
 * @param {string} text
 */
function parseDate(text) {
  const m = DATE_TIME.exec(text.trim())
  if (m === null) return undefined
  const [, y, mo, d, h = '0', mi = '0', s = '0', frac = '0', , sign, oh, om] = m
  const year = Number(y)
  const month = Number(mo)
  const day = Number(d)
  const hour = Number(h)
  const minute = Number(mi)
  const second = Number(s)
  if (month < 1 || month > 12 || hour > 23 || minute > 59 || second > 59) return undefined
  const ms = Number(frac.padEnd(3, '0').slice(0, 3))
  // setUTCFullYear, not Date.UTC: that takes the years 0-99 for 1900-1999.
  const check = new Date(0)
  check.setUTCFullYear(year, month - 1, day)
  if (check.getUTCFullYear() !== year || check.getUTCMonth() !== month - 1 || check.getUTCDate() !== day) return undefined
  let at = check.getTime() + ((hour * 60 + minute) * 60 + second) * 1000 + ms
  if (sign !== undefined) {
    const offset = (Number(oh) * 60 + Number(om)) * 60_000
    if (Number(oh) > 23 || Number(om) > 59) return undefined
    at += sign === '+' ? -offset : offset
  }
  return new Date(at)
}

/** An instant as `Date#toISOString` writes one beyond the years 0000-9999 (`+275760-09-13T00:00:00.000Z`). */
const EXTENDED_ISO = /^[+-]\d{6}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/

/**
 * An instant sent as text: ISO 8601 read as the CLI reads it (`YYYY-MM-DD` is midnight UTC, a
 * time without an offset is UTC), or as `toISOString` writes it; else undefined. Never `new Date`
 * on any string: it reads `2027-01-31T17:00` in the server's time zone, and guesses at other
 * forms (`'Jan 31 2027'` in local time, `'1'` as 2001).
 * @param {string} text
 */
function parseDateTime(text) {
  return EXTENDED_ISO.test(text) ? new Date(text) : parseDate(text)
}

module.exports = { parseDate, parseDateTime }
