// The keys screen: the list of keys, filtered by user account, state and text.

import { $, addOptions, clearPageAlert, h } from './dom.js'
import { UserStatus } from './constants.js'
import { api } from './api.js'
import { state } from './state.js'
import { KEY_STATE_LABELS, stateBadge, timeCell } from './format.js'
import { attempt } from './actions.js'
import { renderRoute } from './router.js'
import { openKey } from './key-details.js'

export async function loadUsers() {
  const data = await api('GET', '/api/users')
  state.users = data.users
  return state.users
}

/**
 * @param {HTMLSelectElement} select
 * @param {{ allOption?: string, selected?: string }} options
 */
export function fillUserSelect(select, { allOption, selected }) {
  const current = selected ?? select.value
  const options = []
  if (allOption) options.push(h('option', { value: '' }, allOption))
  for (const u of state.users) {
    options.push(h('option', { value: u.id }, u.status === UserStatus.Active ? u.id : `${u.id} (${u.status})`))
  }
  select.replaceChildren(...options)
  if (current && state.users.some((u) => u.id === current)) select.value = current
}

export async function renderKeys() {
  await loadUsers()
  fillUserSelect($('#filter-user'), { allOption: 'All user accounts' })
  await reloadKeys()
}

async function reloadKeys() {
  const params = new URLSearchParams()
  const userId = $('#filter-user').value
  const st = $('#filter-state').value
  if (userId) params.set('userId', userId)
  if (st) params.set('state', st)
  const qs = params.toString()
  const data = await api('GET', `/api/keys${qs ? `?${qs}` : ''}`)
  state.offset = new Date(data.now).getTime() - Date.now()
  state.keys = data.keys
  drawKeys()
}

function drawKeys() {
  const q = $('#filter-text').value.trim().toLowerCase()
  const keys = q ? state.keys.filter((k) => k.id.toLowerCase().includes(q) || k.description.toLowerCase().includes(q) || k.hint.toLowerCase().includes(q)) : state.keys
  $('#keys-count').textContent = `${keys.length} ${keys.length === 1 ? 'key' : 'keys'}${keys.length !== state.keys.length ? ` of ${state.keys.length}` : ''}`
  $('#keys-table').replaceChildren(
    keyTable(keys, {
      caption: 'API keys',
      empty: state.keys.length === 0 && !$('#filter-user').value && !$('#filter-state').value ? 'No API keys yet. Press + to create one.' : 'No key matches the filter.',
    }),
  )
}

/**
 * Rows drawn at a time, the rest on request: a store of 100,000 keys drawn whole (2.6 million
 * elements) took over a minute to show, and as long again for every key typed in the search.
 */
const ROWS_PER_PAGE = 500

export function keyTable(keys, { caption, empty, showUser = true }) {
  if (keys.length === 0) return h('p', { class: 'empty' }, empty)
  const head = ['Key', showUser ? 'User account' : null, 'Description', 'State', 'Expires', 'Last used', 'Hint', 'Actions'].filter(Boolean)
  const row = (k) =>
    h(
      'tr',
      { dataset: { keyId: k.id, state: k.state } },
      h('td', { 'data-label': 'Key', class: 'mono id' }, k.id),
      showUser ? h('td', { 'data-label': 'User account', class: 'id' }, h('a', { href: `#/users/${encodeURIComponent(k.userId)}` }, k.userId)) : null,
      h('td', { 'data-label': 'Description', class: 'desc' }, k.description || h('span', { class: 'muted' }, '—')),
      h('td', { 'data-label': 'State' }, stateBadge(k)),
      h('td', { 'data-label': 'Expires' }, timeCell(k.expiresAt)),
      h('td', { 'data-label': 'Last used' }, timeCell(k.lastUsedAt)),
      h('td', { 'data-label': 'Hint', class: 'mono nowrap' }, `…${k.hint}`),
      h(
        'td',
        { 'data-label': 'Actions' },
        h('button', { type: 'button', class: 'btn btn-small', 'aria-label': `Open key ${k.id}`, onclick: () => openKey(k.id) }, 'Open'),
      ),
    )
  const body = h('tbody', {}, keys.slice(0, ROWS_PER_PAGE).map(row))
  const table = h(
    'table',
    { class: 'grid keys' },
    h('caption', { class: 'sr-only' }, caption),
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        head.map((t) => h('th', { scope: 'col' }, t)),
      ),
    ),
    body,
  )
  if (keys.length <= ROWS_PER_PAGE) return table
  let shown = ROWS_PER_PAGE
  const more = h('button', { type: 'button', class: 'btn' })
  const label = () => {
    more.textContent = `Show ${Math.min(ROWS_PER_PAGE, keys.length - shown)} more (${shown} of ${keys.length} shown)`
  }
  label()
  more.addEventListener('click', () => {
    const added = keys.slice(shown, shown + ROWS_PER_PAGE).map(row)
    body.append(...added)
    shown += added.length
    if (shown < keys.length) {
      label()
    } else {
      // The button goes: keyboard focus moves on to the first row it added.
      more.remove()
      added[0]?.querySelector('button')?.focus()
    }
  })
  return h('div', {}, table, h('p', { class: 'table-more' }, more))
}

export function wireKeys() {
  addOptions($('#filter-state'), KEY_STATE_LABELS)
  $('#keys-refresh').addEventListener('click', () => {
    clearPageAlert()
    renderRoute()
  })
  $('#filter-user').addEventListener('change', () => attempt(reloadKeys))
  $('#filter-state').addEventListener('change', () => attempt(reloadKeys))
  $('#filter-text').addEventListener('input', drawKeys)
  $('#keys-filter').addEventListener('submit', (e) => e.preventDefault())
}
