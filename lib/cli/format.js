'use strict'
// Human output: dates, aligned tables, key and user details. Never given a secret.

const { KeyState } = require('../native.js')
const { visible, visibleLines: shownLines } = require('../visible.js')

/**
 * @typedef {import('../../index.js').ApiKey} ApiKey
 * @typedef {import('../../index.js').User} User
 * @typedef {import('../../index.js').Role} Role
 * @typedef {import('../../index.js').AuditEntry} AuditEntry
 */

/**
 * `2026-11-27T20:06:33Z` (UTC, whole seconds).
 * @param {Date | null | undefined} date
 */
function iso(date) {
  if (date == null) return 'never'
  // The stores refuse a time no Date can hold (STORE_CORRUPT); should one reach here, it is shown, not a crash.
  if (Number.isNaN(date.getTime())) return 'invalid date'
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z')
}

/**
 * `2026-11-27 20:06Z`, for tables.
 * @param {Date | null | undefined} date
 */
function short(date) {
  if (date == null) return 'never'
  return `${date.toISOString().slice(0, 16).replace('T', ' ')}Z`
}

/**
 * `in 3d 4h` / `5m ago`, coarse.
 * @param {Date} date
 * @param {number} now milliseconds since the epoch
 */
function relative(date, now) {
  const diff = date.getTime() - now
  const abs = Math.abs(diff)
  /** @type {Array<[string, number]>} */
  const units = [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1_000],
  ]
  let text = ''
  for (let i = 0; i < units.length; i++) {
    const [name, ms] = units[i]
    if (abs >= ms || name === 's') {
      text = `${Math.floor(abs / ms)}${name}`
      const next = units[i + 1]
      if (next && name !== 's') {
        const rest = Math.floor((abs % ms) / next[1])
        if (rest > 0) text += ` ${rest}${next[0]}`
      }
      break
    }
  }
  return diff >= 0 ? `in ${text}` : `${text} ago`
}

/**
 * At most `width` characters (code points: an emoji is never cut in half) on one line.
 * @param {string} text
 * @param {number} width
 */
function truncate(text, width) {
  const oneLine = Array.from(text.replace(/\s+/g, ' '))
  return oneLine.length > width ? `${oneLine.slice(0, width - 1).join('')}…` : oneLine.join('')
}

/**
 * An aligned table: `headers` and rows of strings (shown through visible()); the last column is not padded.
 * @param {string[]} headers
 * @param {string[][]} givenRows
 */
function table(headers, givenRows) {
  const rows = givenRows.map((row) => row.map(visible))
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)))
  /** @param {string[]} cells */
  const line = (cells) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i])))
      .join('  ')
      .trimEnd()
  return [line(headers), ...rows.map(line)].join('\n')
}

/**
 * @param {ApiKey} key
 * @param {number} now milliseconds since the epoch
 */
function expiryCell(key, now) {
  return key.expiresAt.getTime() <= now ? `${short(key.expiresAt)} (expired)` : short(key.expiresAt)
}

/**
 * @param {ApiKey[]} keys
 * @param {number} now milliseconds since the epoch
 */
function keyTable(keys, now) {
  if (keys.length === 0) return 'no keys'
  return table(
    ['ID', 'USER', 'STATE', 'EXPIRES', 'LAST USED', 'HINT', 'DESCRIPTION'],
    keys.map((k) => [k.id, k.userId, k.state, expiryCell(k, now), short(k.lastUsedAt), `…${k.hint}`, truncate(k.description, 40)]),
  )
}

/**
 * @param {ApiKey} key
 * @param {number} now milliseconds since the epoch
 */
function keyDetails(key, now) {
  const expired = key.expiresAt.getTime() <= now
  const lines = [
    `key          ${visible(key.id)}`,
    `user         ${visible(key.userId)}`,
    `state        ${key.state}${key.state === KeyState.Active && expired ? ' (but expired)' : ''}`,
    `description  ${key.description === '' ? '(none)' : visible(key.description)}`,
    `expires      ${iso(key.expiresAt)} (${expired ? 'expired ' : ''}${relative(key.expiresAt, now)})`,
    `hint         …${key.hint}`,
    `created      ${iso(key.createdAt)}`,
    `updated      ${iso(key.updatedAt)}`,
    `last used    ${iso(key.lastUsedAt)}`,
  ]
  if (key.rules.length === 0) lines.push('rules        (none: the user’s rights only)')
  else for (const [i, r] of key.rules.entries()) lines.push(`${i === 0 ? 'rules        ' : '             '}${visible(r)}`)
  return lines.join('\n')
}

/** @param {string[]} items */
function list(items) {
  return items.length === 0 ? '(none)' : items.map(visible).join(', ')
}

/**
 * @param {User} user
 * @param {string[]} effective the user's effective rights
 */
function userDetails(user, effective) {
  return [
    `user      ${visible(user.id)}`,
    `status    ${user.status}`,
    `rights    ${list(user.rights)}`,
    `roles     ${list(user.roles)}`,
    `effective ${list(effective)}`,
  ].join('\n')
}

/**
 * @param {User[]} users
 * @param {Map<string, number>} keyCounts keys by user id
 */
function userTable(users, keyCounts) {
  if (users.length === 0) return 'no users'
  return table(
    ['ID', 'STATUS', 'ROLES', 'RIGHTS', 'KEYS'],
    users.map((u) => [u.id, u.status, truncate(list(u.roles), 40), truncate(list(u.rights), 50), String(keyCounts.get(u.id) ?? 0)]),
  )
}

/**
 * @param {Role[]} roles
 * @param {Map<string, number>} userCounts holders by role name
 */
function roleTable(roles, userCounts) {
  if (roles.length === 0) return 'no roles'
  return table(
    ['NAME', 'USERS', 'RIGHTS'],
    roles.map((r) => [r.name, String(userCounts.get(r.name) ?? 0), truncate(list(r.rights), 70)]),
  )
}

/**
 * One audit value in a line: strings bare, the rest as compact JSON.
 * @param {unknown} value
 */
function auditValue(value) {
  return typeof value === 'string' ? value : JSON.stringify(value)
}

/**
 * The changes of an audit entry in one line: `state: active → revoked`, `created: {...}`.
 * @param {AuditEntry['changes']} changes
 */
function auditChanges(changes) {
  // keygate writes an object; a row written behind its back may hold any JSON value.
  if (changes === null || typeof changes !== 'object' || Array.isArray(changes)) return auditValue(changes)
  return Object.entries(changes)
    .map(([field, value]) => {
      if (Array.isArray(value) && value.length === 2 && field !== 'rules' && field !== 'rights' && field !== 'roles') {
        return `${field}: ${auditValue(value[0])} → ${auditValue(value[1])}`
      }
      if (Array.isArray(value) && value.length === 2 && Array.isArray(value[0]) && Array.isArray(value[1])) {
        return `${field}: ${JSON.stringify(value[0])} → ${JSON.stringify(value[1])}`
      }
      return `${field}: ${auditValue(value)}`
    })
    .join('; ')
}

/** @param {AuditEntry[]} entries */
function auditTable(entries) {
  if (entries.length === 0) return 'no audit entries'
  return table(
    ['SEQ', 'AT', 'ACTOR', 'ACTION', 'KEY', 'USER', 'CHANGES'],
    entries.map((e) => [String(e.seq), iso(e.at), e.actor ?? '-', e.action, e.keyId ?? '-', e.userId ?? '-', auditChanges(e.changes)]),
  )
}

/**
 * `1 key`, `2 keys`; `plural` where adding an s is not the plural (`entries`).
 * @param {number} n
 * @param {string} one
 * @param {string} [plural]
 */
function count(n, one, plural = `${one}s`) {
  return `${n} ${n === 1 ? one : plural}`
}

module.exports = {
  count,
  visible,
  shownLines,
  iso,
  short,
  relative,
  table,
  keyTable,
  keyDetails,
  userDetails,
  userTable,
  roleTable,
  auditTable,
}
