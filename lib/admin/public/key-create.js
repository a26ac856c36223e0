// The new-key dialog.

import { ErrorCode, KeyState } from './constants.js'
import { $, $$, addOptions, h, setError, show, toast } from './dom.js'
import { ApiFailure, api } from './api.js'
import { DAY_MS, nowMs, state } from './state.js'
import { KEY_STATE_LABELS, lines } from './format.js'
import { attempt } from './actions.js'
import { renderRoute } from './router.js'
import { checkExpiry, lifetimeText, setExpiryInput, wireExpiryInput } from './expiry.js'
import { ruleChecker } from './rules.js'
import { showSecret } from './secret.js'
import { fillUserSelect, loadUsers } from './keys.js'

/** The errors that concern the expiry field. */
const EXPIRY_ERRORS = new Set([ErrorCode.ExpiryRequired, ErrorCode.ExpiryInPast, ErrorCode.ExpiryTooFar])

/** The live check of the rules textarea (set by wireKeyCreate). */
let checker

export async function openCreate(userId) {
  const dlg = $('#dlg-create')
  const form = $('#create-form')
  form.reset()
  setError($('#create-error'), '')
  setError($('#create-expires-error'), '')
  checker.reset()
  await attempt(loadUsers, $('#create-error'))
  const select = $('#create-user')
  if (state.users.length === 0) {
    select.replaceChildren(h('option', { value: '' }, '— no user accounts yet —'))
    setError($('#create-error'), 'There is no user account yet: create one first (User accounts → New user).')
  } else {
    fillUserSelect(select, { selected: userId || $('#filter-user').value || state.users[0].id })
  }
  setExpiryInput($('#create-expires'), nowMs() + Math.min(90, state.maxLifetimeDays) * DAY_MS)
  $('#create-expires').setAttribute('aria-invalid', 'false')
  const max = state.maxLifetimeDays
  for (const b of $$('#dlg-create [data-days]')) {
    if (b.dataset.days === 'max') b.textContent = max === 730 ? '2 years (max)' : `${max} days (max)`
    else show(b, Number(b.dataset.days) < max)
  }
  $('#create-expires-hint').textContent = `Mandatory; your local time. Default ${Math.min(90, max)} days; at most ${lifetimeText()} ahead.`
  dlg.showModal()
  select.focus()
}

async function submitCreate(event) {
  event.preventDefault()
  // Disabled before the first await (the rules check asks the server): a double click or a
  // second Enter would otherwise send a second POST, making a second key whose secret,
  // shown over the first, left the first key's secret never seen.
  const submit = $('#create-form button[type=submit]')
  if (submit.disabled) return
  submit.disabled = true
  try {
    await createFromForm()
  } finally {
    submit.disabled = false
  }
}

async function createFromForm() {
  const errorEl = $('#create-error')
  setError(errorEl, '')
  const userId = $('#create-user').value
  if (!userId) {
    setError(errorEl, 'Choose the user account the key runs as (create one first if there is none).')
    $('#create-user').focus()
    return
  }
  const expiresAt = checkExpiry($('#create-expires'), $('#create-expires-error'))
  if (!expiresAt) {
    $('#create-expires').focus()
    return
  }
  const check = await checker.check()
  if (!check.ok) {
    setError(errorEl, 'Fix the rules first: each line must be a valid rule.')
    $('#create-rules').focus()
    return
  }
  const body = {
    userId,
    description: $('#create-description').value,
    state: $('#create-state').value,
    expiresAt: expiresAt.toISOString(),
    rules: lines($('#create-rules').value),
  }
  try {
    const issued = await api('POST', '/api/keys', body)
    $('#dlg-create').close()
    toast(`Key ${issued.key.id} created.`)
    showSecret(issued, 'created')
    renderRoute()
  } catch (error) {
    if (!(error instanceof ApiFailure) || error.status === 401) return
    if (EXPIRY_ERRORS.has(error.code)) {
      setError($('#create-expires-error'), error.message)
      $('#create-expires').focus()
    } else if (error.code === ErrorCode.InvalidRule) {
      checker.check()
      setError(errorEl, error.message)
      $('#create-rules').focus()
    } else if (error.code === ErrorCode.UnknownUser) {
      setError(errorEl, `${error.message}. It was deleted in another tab; the list of accounts has been refreshed.`)
      await attempt(loadUsers, errorEl)
      fillUserSelect($('#create-user'), {})
    } else {
      setError(errorEl, error.message)
    }
  }
}

export function wireKeyCreate() {
  // A new key cannot start revoked.
  addOptions($('#create-state'), KEY_STATE_LABELS, [KeyState.Active, KeyState.Suspended])
  checker = ruleChecker($('#create-rules'), $('#create-rules-check'), 'key')
  $('#key-new').addEventListener('click', () => openCreate())
  $('#create-form').addEventListener('submit', submitCreate)
  wireExpiryInput($('#create-expires'), $('#create-expires-error'))
  for (const b of $$('#dlg-create [data-days]')) {
    b.addEventListener('click', () => {
      const days = b.dataset.days === 'max' ? state.maxLifetimeDays : Number(b.dataset.days)
      setExpiryInput($('#create-expires'), nowMs() + days * DAY_MS)
      checkExpiry($('#create-expires'), $('#create-expires-error'))
    })
  }
}
