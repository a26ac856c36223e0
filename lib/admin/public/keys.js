// The keys screen: the list of keys, filtered by user account, state and text.

import { $, addOptions, clearPageAlert, h } from './dom.js'
import { UserStatus } from './constants.js'
import { api } from './api.js'
import { state } from './state.js'
import { KEY_STATE_LABELS, stateBadge, timeCell } from './format.js'
import { attempt } from './actions.js'
import { renderRoute } from './router.js'
import { openKey } from './key-details.js'
import { SECRET_SHAPE } from './secret.js'

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

/** Keys asked of the server at a time: a page, never the whole store (see keysPath). */
const KEYS_PER_REQUEST = 500
/** How long the search waits for typing to pause before it asks the server. */
export const SEARCH_DELAY_MS = 250

/** What the list says instead of asking for a secret-shaped search. */
const SECRET_SEARCH = 'That looks like a secret: it is not searched for (it would travel in the address). To find the key a secret belongs to, use keygate key find.'

/** The latest listing asked for: the answer to an earlier one (filters changed since) is dropped. */
let listing = 0
/** @type {string | null} the cursor of the page after the keys shown; null when they are all the filter's */
let keysNext = null
/** @type {ReturnType<typeof setTimeout> | undefined} */
let searchTimer

/**
 * The screen's filters as a query of `GET /api/keys`, one page of at most KEYS_PER_REQUEST keys:
 * listing every key held the server's event loop a second or more at 100,000 keys, and the
 * gateway's checks with it when the page is mounted in the gateway's process. The search runs in
 * the store too (id, description, hint, any letter case).
 */
function filterQuery() {
  const params = new URLSearchParams({ limit: String(KEYS_PER_REQUEST) })
  const userId = $('#filter-user').value
  const st = $('#filter-state').value
  const search = $('#filter-text').value.trim()
  if (userId) params.set('userId', userId)
  if (st) params.set('state', st)
  if (search) params.set('search', search)
  return params
}

/**
 * The listing's query (its filters as they were when it was asked for), and the page after
 * `after` of it: "Show more" pressed while a search typed is not yet asked must go on with the
 * listing shown, not mix the new search with its cursor.
 * @param {URLSearchParams} query
 * @param {string | null} after
 */
function keysPath(query, after) {
  const params = new URLSearchParams(query)
  if (after !== null) params.set('after', after)
  return `/api/keys?${params}`
}

async function reloadKeys() {
  clearTimeout(searchTimer)
  const asked = ++listing
  const query = filterQuery()
  if (SECRET_SHAPE.test(query.get('search') ?? '')) {
    state.keys = []
    keysNext = null
    drawKeys(asked, query, SECRET_SEARCH)
    return
  }
  const data = await api('GET', keysPath(query, null))
  if (asked !== listing) return
  state.offset = new Date(data.now).getTime() - Date.now()
  state.keys = data.keys
  keysNext = data.next
  drawKeys(asked, query)
}

/** The search asks the server once typing pauses, not at every key pressed. */
function searchSoon() {
  clearTimeout(searchTimer)
  searchTimer = setTimeout(() => attempt(reloadKeys), SEARCH_DELAY_MS)
}

/** The count above the list: a total only once the last page is in. */
function drawKeysCount() {
  const n = state.keys.length
  $('#keys-count').textContent = keysNext === null ? `${n} ${n === 1 ? 'key' : 'keys'}` : `${n} keys shown, more on request`
}

/**
 * @param {number} asked the listing drawn
 * @param {URLSearchParams} query its filters
 * @param {string} [refused] what the list says when the search was not asked (a secret's shape)
 */
function drawKeys(asked, query, refused) {
  drawKeysCount()
  const filtered = $('#filter-user').value || $('#filter-state').value || $('#filter-text').value.trim()
  /** @type {MoreRows} */
  const more = {
    label: () => 'Show more keys',
    fetch: async () => {
      const data = await api('GET', keysPath(query, keysNext))
      // The filters changed meanwhile: this table is being replaced.
      if (asked !== listing) return { keys: [], done: true }
      state.keys.push(...data.keys)
      keysNext = data.next
      drawKeysCount()
      return { keys: data.keys, done: data.next === null }
    },
  }
  $('#keys-table').replaceChildren(
    growingKeyTable(state.keys, {
      caption: 'API keys',
      empty: refused ?? (state.keys.length === 0 && !filtered ? 'No API keys yet. Press + to create one.' : 'No key matches the filter.'),
      more: keysNext === null ? undefined : more,
    }),
  )
}

/**
 * Rows drawn at a time, the rest on request: a store of 100,000 keys drawn whole (2.6 million
 * elements) took over a minute to show.
 */
const ROWS_PER_PAGE = 500

/**
 * A table of keys the page holds whole (one user's), drawn ROWS_PER_PAGE rows at a time.
 * @param {import('./wire.js').KeyJson[]} keys
 * @param {{ caption: string, empty: string, showUser?: boolean }} options
 */
export function keyTable(keys, { caption, empty, showUser = true }) {
  let shown = Math.min(ROWS_PER_PAGE, keys.length)
  /** @type {MoreRows} */
  const more = {
    label: () => `Show ${Math.min(ROWS_PER_PAGE, keys.length - shown)} more (${shown} of ${keys.length} shown)`,
    fetch: async () => {
      const added = keys.slice(shown, shown + ROWS_PER_PAGE)
      shown += added.length
      return { keys: added, done: shown >= keys.length }
    },
  }
  return growingKeyTable(keys.slice(0, shown), { caption, empty, showUser, more: shown < keys.length ? more : undefined })
}

/**
 * @typedef {object} MoreRows
 * @property {() => string} label the button's text
 * @property {() => Promise<{ keys: import('./wire.js').KeyJson[], done: boolean }>} fetch the next rows, and whether they are the last
 */

/**
 * A table of `keys`; with `more`, a button under it that appends the rows it fetches.
 * @param {import('./wire.js').KeyJson[]} keys
 * @param {{ caption: string, empty: string, showUser?: boolean, more?: MoreRows }} options
 */
function growingKeyTable(keys, { caption, empty, showUser = true, more }) {
  if (keys.length === 0 && more === undefined) return h('p', { class: 'empty' }, empty)
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
  const body = h('tbody', {}, keys.map(row))
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
  if (more === undefined) return table
  const button = h('button', { type: 'button', class: 'btn' }, more.label())
  let busy = false
  button.addEventListener('click', () =>
    attempt(async () => {
      // A second press while the rows are on their way asks for nothing more.
      if (busy) return
      busy = true
      button.setAttribute('aria-busy', 'true')
      let page
      try {
        page = await more.fetch()
      } finally {
        busy = false
        button.removeAttribute('aria-busy')
      }
      const added = page.keys.map(row)
      body.append(...added)
      if (!page.done) {
        button.textContent = more.label()
        return
      }
      // The button goes: keyboard focus moves on to the first row it added (the last row when
      // none came, their keys deleted meanwhile).
      const landing = added[0] ?? body.lastElementChild
      button.remove()
      landing?.querySelector('button')?.focus()
    }),
  )
  return h('div', {}, table, h('p', { class: 'table-more' }, button))
}

export function wireKeys() {
  addOptions($('#filter-state'), KEY_STATE_LABELS)
  $('#keys-refresh').addEventListener('click', () => {
    clearPageAlert()
    renderRoute()
  })
  $('#filter-user').addEventListener('change', () => attempt(reloadKeys))
  $('#filter-state').addEventListener('change', () => attempt(reloadKeys))
  $('#filter-text').addEventListener('input', searchSoon)
  // Enter asks at once.
  $('#keys-filter').addEventListener('submit', (e) => {
    e.preventDefault()
    attempt(reloadKeys)
  })
}
