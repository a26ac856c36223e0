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
  // Shown at once, announced only when focus leaves the input (see wireExpiryInput).
  errorEl.removeAttribute('role')
  setError(errorEl, message)
  input.setAttribute('aria-invalid', message ? 'true' : 'false')
  return message ? null : d
}

/**
 * Checks the expiry input at each change, and has a screen reader say its error, if any, when
 * focus leaves it: not at each change, which Chromium fires at each part of a date typed (an
 * announcement per digit). The error stays the input's description for when focus comes back.
 */
export function wireExpiryInput(input, errorEl) {
  input.addEventListener('change', () => checkExpiry(input, errorEl))
  input.addEventListener('blur', () => {
    if (errorEl.hidden || errorEl.getAttribute('role') === 'alert') return
    const text = errorEl.textContent
    errorEl.textContent = ''
    errorEl.setAttribute('role', 'alert')
    // Put back after a frame: an alert is announced when its content changes, not when it is set unchanged.
    requestAnimationFrame(() => {
      errorEl.textContent = text
    })
  })
}
