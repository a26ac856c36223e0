// The audit trail screen: filtered entries, newest first, and the hash chain's verification.

import { $, h } from './dom.js'
import { api } from './api.js'
import { state } from './state.js'
import { fromLocalInput, timeCell } from './format.js'
import { attempt } from './actions.js'
import { holdFocus } from './focus.js'

export async function renderAudit(route) {
  const form = $('#audit-filter')
  for (const name of ['keyId', 'userId', 'action', 'actor']) {
    const v = route.params.get(name)
    if (v !== null) form.elements[name].value = v
  }
  await loadAudit()
}

/**
 * One page of the trail: the newest entries that match, or with `beforeSeq` those numbered
 * below it (the page after an entry: `since` cannot page, many entries may share one instant).
 */
async function loadAudit(beforeSeq = null) {
  // The pager is drawn anew: focus stays on its button, not on <body>; where that button is gone
  // ("Older entries" on the last page, "Newest entries" on the first), on the other one beside it
  // (else the heading).
  const restoreFocus = holdFocus(() => $('#audit-newest') ?? $('#audit-older'))
  try {
    await drawAudit(beforeSeq)
  } finally {
    restoreFocus()
  }
}

async function drawAudit(beforeSeq) {
  const form = $('#audit-filter')
  const params = new URLSearchParams()
  for (const name of ['keyId', 'userId', 'action', 'actor', 'limit']) {
    const v = form.elements[name].value.trim()
    if (v) params.set(name, v)
  }
  const since = fromLocalInput(form.elements.since.value)
  if (since) params.set('since', since.toISOString())
  if (beforeSeq !== null) params.set('beforeSeq', String(beforeSeq))
  const data = await api('GET', `/api/audit?${params}`)
  if (!state.auditActions) {
    state.auditActions = data.actions
    const select = $('#audit-action')
    const current = select.value
    select.replaceChildren(h('option', { value: '' }, 'Any action'), ...data.actions.map((a) => h('option', { value: a }, a)))
    select.value = current
  }
  const v = data.verification
  const verify = $('#audit-verify')
  verify.className = `verify ${v.ok ? 'ok' : 'bad'}`
  verify.textContent = v.ok
    ? `✓ Audit trail verified: all ${v.entries} entries intact (hash chain unbroken).`
    : `✗ Audit trail damaged: ${v.entries} entries verified, then entry #${v.firstBadSeq ?? '?'}: ${v.problem ?? 'altered or missing'}.`
  const entries = data.entries
  // A full page may have older entries after it; a page after the newest can go back to it.
  const full = entries.length > 0 && entries.length === Number(params.get('limit') ?? 100)
  const pager = h(
    'nav',
    { class: 'pager', 'aria-label': 'Audit trail pages' },
    beforeSeq !== null && h('button', { type: 'button', id: 'audit-newest', class: 'btn btn-small', onclick: () => attempt(() => loadAudit()) }, 'Newest entries'),
    full &&
      h(
        'button',
        { type: 'button', id: 'audit-older', class: 'btn btn-small', onclick: () => attempt(() => loadAudit(entries[entries.length - 1].seq)) },
        'Older entries',
      ),
  )
  if (entries.length === 0) {
    $('#audit-table').replaceChildren(h('p', { class: 'empty' }, beforeSeq === null ? 'No audit entry matches.' : 'No older audit entry matches.'), pager)
    return
  }
  $('#audit-table').replaceChildren(
    h(
      'table',
      { class: 'grid audit' },
      h('caption', { class: 'sr-only' }, 'Audit trail, newest first'),
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          ['#', 'When', 'Actor', 'Action', 'Key', 'User account', 'Changes'].map((t) => h('th', { scope: 'col' }, t)),
        ),
      ),
      h(
        'tbody',
        {},
        entries.map((e) =>
          h(
            'tr',
            {},
            h('td', { 'data-label': '#' }, String(e.seq)),
            h('td', { 'data-label': 'When' }, timeCell(e.at)),
            h('td', { 'data-label': 'Actor', class: 'id' }, e.actor || h('span', { class: 'muted' }, '—')),
            h('td', { 'data-label': 'Action' }, h('span', { class: 'mono' }, e.action)),
            h('td', { 'data-label': 'Key', class: 'mono id' }, e.keyId || '—'),
            h('td', { 'data-label': 'User account', class: 'id' }, e.userId || '—'),
            h('td', { 'data-label': 'Changes' }, h('details', {}, h('summary', {}, summarise(e.changes)), h('pre', {}, JSON.stringify(e.changes, null, 2)))),
          ),
        ),
      ),
    ),
    pager,
  )
}

function summarise(changes) {
  if (!changes || typeof changes !== 'object') return 'details'
  const prefix = typeof changes.role === 'string' ? `role ${changes.role}: ` : ''
  const body = changes.changes && typeof changes.changes === 'object' && !Array.isArray(changes.changes) ? changes.changes : changes
  const show = (x) => (Array.isArray(x) ? (x.length ? x.join(', ') : '(none)') : x !== null && typeof x === 'object' ? '…' : String(x))
  const parts = []
  // Which key replaced which leads (after "created"), so the summary's cut never hides it.
  let rotation = ''
  for (const [n, v] of Object.entries(body)) {
    if (n === 'role' || n === 'changes') continue
    if (n === 'created' || n === 'deleted') parts.unshift(n)
    else if (n === 'deletedKeys') parts.push(`${Array.isArray(v) ? v.length : '?'} key(s) deleted`)
    else if (n === 'removedFromUsers') parts.push(Array.isArray(v) && v.length ? `removed from ${v.join(', ')}` : 'held by no user')
    else if (n === 'rotatedTo' || n === 'rotatedFrom') rotation = `${n === 'rotatedTo' ? 'rotated to' : 'rotated from'} ${show(v)}`
    else if (Array.isArray(v) && v.length === 2) parts.push(`${n}: ${show(v[0])} → ${show(v[1])}`)
    else parts.push(n)
  }
  if (rotation) parts.splice(parts[0] === 'created' ? 1 : 0, 0, rotation)
  if (parts.length === 0 && prefix) parts.push('deleted')
  const text = prefix + (parts.join('; ') || 'details')
  return text.length > 90 ? `${text.slice(0, 89)}…` : text
}

export function wireAudit() {
  $('#audit-filter').addEventListener('submit', (e) => {
    e.preventDefault()
    attempt(() => loadAudit())
  })
  $('#audit-filter').addEventListener('reset', () => {
    setTimeout(() => attempt(() => loadAudit()), 0)
  })
}
