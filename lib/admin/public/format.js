// Dates, times and badges as the page shows them (in the server's clock, see state.offset).

import { KeyState, UserStatus } from './constants.js'
import { h } from './dom.js'
import { DAY_MS, nowMs } from './state.js'

/** What the page calls each key state and user status (the values come from the binding). */
export const KEY_STATE_LABELS = { [KeyState.Active]: 'Active', [KeyState.Suspended]: 'Suspended', [KeyState.Revoked]: 'Revoked' }
export const USER_STATUS_LABELS = { [UserStatus.Active]: 'Active', [UserStatus.Suspended]: 'Suspended', [UserStatus.Archived]: 'Archived' }

export const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' })

function fmtDate(iso) {
  if (!iso) return 'never'
  return dateFormat.format(new Date(iso))
}

function relative(iso) {
  const diff = new Date(iso).getTime() - nowMs()
  const abs = Math.abs(diff)
  // Within a minute either way is "just now": the page's estimate of the server clock is
  // off by a round trip, which must not make a change just made look like the future.
  if (abs < 60_000) return 'just now'
  let text
  if (abs < 3_600_000) text = `${Math.round(abs / 60_000)} min`
  else if (abs < DAY_MS) text = `${Math.round(abs / 3_600_000)} h`
  else text = `${Math.round(abs / DAY_MS)} days`
  return diff >= 0 ? `in ${text}` : `${text} ago`
}

export function timeCell(iso) {
  if (!iso) return h('span', { class: 'muted' }, 'never')
  return h('time', { datetime: iso, title: iso }, fmtDate(iso), h('span', { class: 'rel' }, ` (${relative(iso)})`))
}

function pad(n) {
  return String(n).padStart(2, '0')
}

/** A Date as the value of <input type="datetime-local"> (local time, minutes). */
export function toLocalInput(ms) {
  const d = new Date(ms)
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`
}

export function fromLocalInput(value) {
  if (!value) return null
  const d = new Date(value)
  return Number.isFinite(d.getTime()) ? d : null
}

export function lines(text) {
  return text.split(/\r?\n/)
}

export function stateBadge(key) {
  const expired = key.state === KeyState.Active && new Date(key.expiresAt).getTime() <= nowMs()
  return h('span', {}, h('span', { class: `badge badge-${key.state}` }, key.state), expired ? h('span', { class: 'badge badge-expired' }, 'expired') : null)
}
