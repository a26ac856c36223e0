// Key expiry inputs: bounded by the store's longest lifetime, checked before sending.

import { setError } from './dom.js'
import { DAY_MS, nowMs, state } from './state.js'
import { dateFormat, fromLocalInput, toLocalInput } from './format.js'

export function expiryBounds() {
  const now = nowMs()
  return { min: now + 60_000, max: now + state.maxLifetimeDays * DAY_MS - 60_000 }
}

export function setExpiryInput(input, ms) {
  const { min, max } = expiryBounds()
  input.min = toLocalInput(min)
  input.max = toLocalInput(max)
  input.value = toLocalInput(Math.min(ms, max))
}

export function lifetimeText() {
  const d = state.maxLifetimeDays
  return d % 365 === 0 ? `${d} days (${d / 365} ${d === 365 ? 'year' : 'years'})` : `${d} days`
}

/** Checks an expiry input; returns the Date or null (and shows why). */
export function checkExpiry(input, errorEl) {
  const d = fromLocalInput(input.value)
  let message = ''
  if (!d) message = 'Expiry is mandatory: choose a date and time.'
  else if (d.getTime() <= nowMs()) message = 'The expiry must lie in the future.'
  else if (d.getTime() > nowMs() + state.maxLifetimeDays * DAY_MS) {
    message = `At most ${lifetimeText()} ahead: the latest is ${dateFormat.format(new Date(nowMs() + state.maxLifetimeDays * DAY_MS))}.`
  }
  setError(errorEl, message)
  input.setAttribute('aria-invalid', message ? 'true' : 'false')
  return message ? null : d
}
