// The try-a-call screen: what keygate answers to an API call or a WebDAV request, for a secret
// or a key id.

import { Reason } from './constants.js'
import { $, $$, h, setError, show } from './dom.js'
import { ApiFailure, api } from './api.js'
import { attempt } from './actions.js'
import { SECRET_SHAPE } from './secret.js'
import { SEARCH_DELAY_MS } from './keys.js'

const REASONS = {
  [Reason.Allowed]: 'Allowed: every check passed.',
  [Reason.MalformedKey]: 'The secret is not well formed (prefix, length, alphabet or checksum).',
  [Reason.UnknownKey]: 'No key has this secret (never issued, or deleted).',
  [Reason.InvalidRequest]: 'The service or API name is not valid (letters, digits, _ - . / only; 1–256 characters).',
  [Reason.Suspended]: 'The key is suspended.',
  [Reason.Revoked]: 'The key is revoked (final).',
  [Reason.Expired]: 'The key has expired.',
  [Reason.UserInactive]: 'The key’s user account is not active (suspended, archived or deleted).',
  [Reason.UserLacksRight]: 'The key’s user account has no right that matches this call.',
  [Reason.NoMatchingRule]: 'None of the key’s API rules matches this call.',
  [Reason.IpNotAllowed]: 'The caller IP is not in the key’s IP rules (or no IP was given).',
}

/** Where a WebDAV request's reason reads otherwise than an API call's. */
const DAV_REASONS = {
  [Reason.InvalidRequest]:
    'The method or path is not valid (a method is 1–32 letters; a path 1–1,024 characters of letters, digits, _ - . / ~, without wildcards or “.”, “..” and empty segments).',
  [Reason.UserLacksRight]: 'The key’s user account has no WebDAV right that matches this request.',
  [Reason.NoMatchingRule]: 'None of the key’s WebDAV rules matches this request.',
}

function tryMode() {
  return $('#try-form input[name=mode]:checked').value
}

function tryKind() {
  return $('#try-form input[name=kind]:checked').value
}

function syncTryMode() {
  const key = tryMode() === 'key'
  show($('#try-secret-field'), !key)
  show($('#try-key-field'), key)
  const dav = tryKind() === 'dav'
  for (const id of ['#try-service-field', '#try-api-field']) show($(id), !dav)
  for (const id of ['#try-method-field', '#try-path-field']) show($(id), dav)
}

/** The call of the form, or an error message and the field to fix. */
function callOfForm() {
  if (tryKind() === 'dav') {
    const method = $('#try-method').value.trim()
    const path = $('#try-path').value.trim()
    if (!method || !path) {
      return { error: 'Give the method and the path of the WebDAV request, e.g. PROPFIND and docs/report.pdf.', focus: method ? '#try-path' : '#try-method' }
    }
    return { call: { kind: 'dav', method, path } }
  }
  const service = $('#try-service').value.trim()
  const api = $('#try-api').value.trim()
  if (!service || !api) return { error: 'Give the service and the API of the call, e.g. session and getSessionInfo.', focus: service ? '#try-api' : '#try-service' }
  return { call: { service, api } }
}

export async function renderTry(route) {
  const keyId = route.params.get('key')
  if (keyId) {
    $('#try-form input[name=mode][value=key]').checked = true
    $('#try-key').value = keyId
  }
  syncTryMode()
  show($('#try-result'), false)
  setError($('#try-error'), '')
  await suggestKeys()
}

/** Keys suggested for the key id field at a time: a page, never the whole store (100,000 keys held the server a second or more). */
const SUGGESTED_KEYS = 50
/** The latest suggestions asked for: an earlier answer (the field changed since) is dropped. */
let suggesting = 0
/** @type {ReturnType<typeof setTimeout> | undefined} */
let suggestTimer

/** The newest keys whose id, description or hint holds what the key id field holds, as its suggestions. */
async function suggestKeys() {
  clearTimeout(suggestTimer)
  const asked = ++suggesting
  const params = new URLSearchParams({ limit: String(SUGGESTED_KEYS) })
  const search = $('#try-key').value.trim()
  if (SECRET_SHAPE.test(search)) {
    // Never sent in an address (see SECRET_SHAPE): no suggestion for it.
    $('#try-key-list').replaceChildren()
    return
  }
  if (search) params.set('search', search)
  const data = await api('GET', `/api/keys?${params}`)
  if (asked !== suggesting) return
  $('#try-key-list').replaceChildren(...data.keys.map((k) => h('option', { value: k.id }, `${k.userId} · ${k.description || k.state} · …${k.hint}`)))
}

async function submitTry(event) {
  event.preventDefault()
  const errorEl = $('#try-error')
  setError(errorEl, '')
  const mode = tryMode()
  const body = {}
  const ip = $('#try-ip').value.trim()
  if (ip) body.ip = ip
  if (mode === 'secret') {
    const secret = $('#try-secret').value.trim()
    if (!secret) {
      setError(errorEl, 'Paste the secret to check (or switch to a key id).')
      $('#try-secret').focus()
      return
    }
    body.secret = secret
  } else {
    const keyId = $('#try-key').value.trim()
    if (!keyId) {
      setError(errorEl, 'Give a key id (or switch to the secret).')
      $('#try-key').focus()
      return
    }
    body.keyId = keyId
  }
  const { call, error, focus } = callOfForm()
  if (!call) {
    setError(errorEl, error)
    $(focus).focus()
    return
  }
  Object.assign(body, call)
  try {
    const data = await api('POST', '/api/try', body)
    drawDecision(data)
  } catch (error) {
    if (!(error instanceof ApiFailure) || error.status === 401) return
    show($('#try-result'), false)
    setError(errorEl, error.message)
  }
}

function drawDecision({ mode, kind, decision }) {
  const el = $('#try-result')
  const facts = []
  if (decision.keyId) facts.push(h('dt', {}, 'Key'), h('dd', { class: 'mono' }, decision.keyId))
  if (decision.userId) facts.push(h('dt', {}, 'User account'), h('dd', {}, decision.userId))
  if (decision.matchedRule) facts.push(h('dt', {}, 'Matched rule'), h('dd', { class: 'mono' }, decision.matchedRule))
  el.className = `decision ${decision.allowed ? 'allowed' : 'denied'}`
  const parts = [
    h('p', { class: 'verdict', 'data-reason': decision.reason }, decision.allowed ? '✓ Allowed' : ['✗ Denied: ', h('span', { class: 'reason mono' }, decision.reason)]),
    h('p', {}, (kind === 'dav' && DAV_REASONS[decision.reason]) || REASONS[decision.reason] || decision.reason),
  ]
  if (facts.length) parts.push(h('dl', { class: 'facts' }, facts))
  parts.push(
    h(
      'p',
      { class: 'hint' },
      mode === 'key'
        ? 'Decided by the store from the key’s settings (no secret); its “last used” time is not changed.'
        : 'Checked exactly as isAllowed/explain would; a check from here is a diagnosis, not a use (“last used” does not change).',
    ),
  )
  el.replaceChildren(...parts)
  show(el, true)
}

export function wireTry() {
  for (const r of $$('#try-form input[name=mode], #try-form input[name=kind]')) r.addEventListener('change', syncTryMode)
  $('#try-form').addEventListener('submit', submitTry)
  $('#try-key').addEventListener('input', () => {
    clearTimeout(suggestTimer)
    suggestTimer = setTimeout(() => attempt(suggestKeys), SEARCH_DELAY_MS)
  })
}

/** Leaving the screen forgets a pasted secret. */
export function leaveTry() {
  $('#try-secret').value = ''
}
