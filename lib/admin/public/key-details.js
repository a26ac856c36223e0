// The key details dialog: edit a key, change its state, rotate or delete it.

import { KeyState } from './constants.js'
import { $, clearPageAlert, confirmDialog, h, isolated, noteBidi, pageAlert, setError, setText, show, toast } from './dom.js'
import { ApiFailure, GONE, api, isStale } from './api.js'
import { state } from './state.js'
import { lines, stateBadge, timeCell, toLocalInput } from './format.js'
import { afterStaleRefresh, attempt, staleRefresh } from './actions.js'
import { renderRoute } from './router.js'
import { checkExpiry, expiryBounds, wireExpiryInput } from './expiry.js'
import { ruleChecker } from './rules.js'
import { showSecret } from './secret.js'
import { keepFocus } from './focus.js'

/** The live check of the rules textarea (set by wireKeyDetails). */
let checker

export async function openKey(id) {
  clearPageAlert()
  state.detail = null
  const ok = await loadKeyDetail(id)
  if (ok && !$('#dlg-key').open) {
    $('#dlg-key').showModal()
    $('#key-description').focus()
  }
}

async function loadKeyDetail(id, { quiet = false } = {}) {
  try {
    const data = await api('GET', `/api/keys/${encodeURIComponent(id)}`)
    state.offset = new Date(data.now).getTime() - Date.now()
    fillKeyDetail(data.key)
    return true
  } catch (error) {
    if (!(error instanceof ApiFailure) || error.status === 401) return false
    if (isStale(error)) await staleRefresh(error)
    else if (!quiet) pageAlert(error.message)
    return false
  }
}

function fillKeyDetail(key) {
  state.detail = key
  setError($('#key-error'), '')
  setText($('#key-title'), 'API key ', isolated(key.id))
  const fact = (term, value) => [h('dt', {}, term), h('dd', {}, value)]
  $('#key-facts').replaceChildren(
    ...fact('Key id', h('span', { class: 'mono' }, key.id)),
    ...fact('User account', h('a', { href: `#/users/${encodeURIComponent(key.userId)}`, 'data-close-dialogs': '' }, key.userId)),
    ...fact('State', stateBadge(key)),
    ...fact('Expires', timeCell(key.expiresAt)),
    ...fact('Last used', timeCell(key.lastUsedAt)),
    ...fact('Hint', h('span', { class: 'mono' }, `…${key.hint}`)),
    ...fact('Created', timeCell(key.createdAt)),
    ...fact('Updated', timeCell(key.updatedAt)),
  )
  const revoked = key.state === KeyState.Revoked
  show($('#key-suspend'), key.state === KeyState.Active)
  show($('#key-activate'), key.state === KeyState.Suspended)
  show($('#key-revoke'), !revoked)
  show($('#key-rotate'), !revoked)
  show($('#key-final'), revoked)
  $('#key-fieldset').disabled = revoked
  $('#key-try').href = `#/try?key=${encodeURIComponent(key.id)}`
  $('#key-audit').href = `#/audit?keyId=${encodeURIComponent(key.id)}`
  $('#key-description').value = key.description
  noteBidi($('#key-description'), $('#key-description-bidi'))
  $('#key-rules').value = key.rules.join('\n')
  checker.reset()
  const input = $('#key-expires')
  input.value = toLocalInput(new Date(key.expiresAt).getTime())
  const { max } = expiryBounds()
  input.max = toLocalInput(max)
  input.dataset.initial = input.value
  input.setAttribute('aria-invalid', 'false')
  setError($('#key-expires-error'), '')
}

async function saveKey(event) {
  event.preventDefault()
  const key = state.detail
  if (!key) return
  const errorEl = $('#key-error')
  const patch = { updatedAt: key.updatedAt }
  const description = $('#key-description').value
  if (description !== key.description) patch.description = description
  const check = await checker.check()
  if (!check.ok) {
    setError(errorEl, 'Fix the rules first: each line must be a valid rule.')
    $('#key-rules').focus()
    return
  }
  const rules = lines($('#key-rules').value)
  const cleaned = rules.map((r) => r.trim()).filter((r) => r !== '')
  if (cleaned.join('\n') !== key.rules.join('\n')) patch.rules = rules
  const input = $('#key-expires')
  if (input.value !== input.dataset.initial) {
    const d = checkExpiry(input, $('#key-expires-error'))
    if (!d) {
      input.focus()
      return
    }
    patch.expiresAt = d.toISOString()
  }
  if (Object.keys(patch).length === 1) {
    toast('Nothing changed.')
    return
  }
  await attempt(async () => {
    const data = await api('PATCH', `/api/keys/${encodeURIComponent(key.id)}`, patch)
    fillKeyDetail(data.key)
    toast('Changes saved.')
    await renderRoute()
  }, errorEl)
}

async function changeState(next) {
  const key = state.detail
  if (!key) return
  if (next === KeyState.Revoked) {
    const ok = await confirmDialog({
      title: `Revoke key ${key.id}?`,
      text: 'Revoked is final: the key stops working at once and can never be activated again. Its record stays as evidence.',
      ok: 'Revoke key',
    })
    if (!ok) return
  }
  await attempt(async () => {
    const data = await api('POST', `/api/keys/${encodeURIComponent(key.id)}/state`, { state: next, updatedAt: key.updatedAt })
    fillKeyDetail(data.key)
    // The button pressed is hidden now: focus moves to the one that undoes it, or to the word
    // that revoked is final (else the browser drops it to the page behind the dialog).
    keepFocus($(next === KeyState.Suspended ? '#key-activate' : next === KeyState.Active ? '#key-suspend' : '#key-final'))
    toast(`Key ${key.id} is now ${data.key.state}.`)
    await renderRoute()
  }, $('#key-error'))
}

async function deleteKey() {
  const key = state.detail
  if (!key) return
  const ok = await confirmDialog({
    title: `Delete key ${key.id}?`,
    text: 'The key stops working at once and disappears from the lists. Its audit entries remain.',
    ok: 'Delete key',
  })
  if (!ok) return
  await attempt(async () => {
    await api('DELETE', `/api/keys/${encodeURIComponent(key.id)}`)
    $('#dlg-key').close()
    state.detail = null
    toast(`Key ${key.id} deleted.`)
    await renderRoute()
  }, $('#key-error'))
}

function openRotate() {
  if (!state.detail) return
  setError($('#rotate-error'), '')
  setText($('#rotate-title'), 'Rotate key ', isolated(state.detail.id))
  $('#dlg-rotate').showModal()
  $('#rotate-overlap').focus()
}

async function submitRotate(event) {
  event.preventDefault()
  const key = state.detail
  if (!key) return
  const overlapSeconds = Number($('#rotate-overlap').value)
  try {
    const issued = await api('POST', `/api/keys/${encodeURIComponent(key.id)}/rotate`, { overlapSeconds, updatedAt: key.updatedAt })
    $('#dlg-rotate').close()
    $('#dlg-key').close()
    state.detail = null
    toast(`Key ${key.id} rotated: new key ${issued.key.id}.`)
    showSecret(issued, 'rotated')
    renderRoute()
  } catch (error) {
    if (!(error instanceof ApiFailure) || error.status === 401) return
    $('#dlg-rotate').close()
    if (isStale(error)) {
      await staleRefresh(error)
      if (!GONE.has(error.code)) setError($('#key-error'), error.message)
    } else {
      setError($('#key-error'), error.message)
    }
  }
}

/** Whether an action of the dialog is under way. */
let acting = false

/**
 * Runs the dialog's actions one at a time: a double click sent the same change twice, and the
 * second, sent with the updatedAt the first had just changed, was reported as a change made
 * elsewhere (and a rotation so as a conflict, under the new secret).
 */
async function oneAtATime(action) {
  if (acting) return
  acting = true
  try {
    await action()
  } finally {
    acting = false
  }
}

/** A form's submit handler that runs `action` one at a time; the form is never submitted natively. */
function submitting(action) {
  return (event) => {
    event.preventDefault()
    return oneAtATime(() => action(event))
  }
}

export function wireKeyDetails() {
  checker = ruleChecker($('#key-rules'), $('#key-rules-check'), 'key')
  $('#key-form').addEventListener('submit', submitting(saveKey))
  $('#key-description').addEventListener('input', () => noteBidi($('#key-description'), $('#key-description-bidi')))
  wireExpiryInput($('#key-expires'), $('#key-expires-error'))
  $('#key-suspend').addEventListener('click', () => oneAtATime(() => changeState(KeyState.Suspended)))
  $('#key-activate').addEventListener('click', () => oneAtATime(() => changeState(KeyState.Active)))
  $('#key-revoke').addEventListener('click', () => oneAtATime(() => changeState(KeyState.Revoked)))
  $('#key-delete').addEventListener('click', () => oneAtATime(deleteKey))
  $('#key-rotate').addEventListener('click', openRotate)
  $('#rotate-form').addEventListener('submit', submitting(submitRotate))
  $('#dlg-key').addEventListener('close', () => {
    state.detail = null
  })
  // A key changed elsewhere is shown as it is now, when its dialog is open.
  afterStaleRefresh(async (gone) => {
    if (!gone && $('#dlg-key').open && state.detail) await loadKeyDetail(state.detail.id, { quiet: true })
  })
}
