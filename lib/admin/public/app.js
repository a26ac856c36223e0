// keygate admin page: vanilla JavaScript, no framework, no inline script (CSP script-src 'self').
// Everything the page shows is built with DOM calls (textContent), never innerHTML.
// A secret is held only in the one-time dialog's input and cleared when it closes.

const $ = (sel, root = document) => root.querySelector(sel)
const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel))

const DAY_MS = 86_400_000

const state = {
  csrf: null,
  offset: 0, // server clock − browser clock
  maxLifetimeDays: 730,
  actor: 'web:admin',
  users: [],
  roles: [],
  keys: [],
  route: { name: '', arg: '', params: new URLSearchParams() },
  detail: null, // the key shown in the details dialog
  auditActions: null,
}

const REASONS = {
  allowed: 'Allowed: every check passed.',
  malformed_key: 'The secret is not well formed (prefix, length, alphabet or checksum).',
  unknown_key: 'No key has this secret (never issued, or deleted).',
  invalid_request: 'The service or API name is not valid (letters, digits, _ - . / only; 1–256 characters).',
  suspended: 'The key is suspended.',
  revoked: 'The key is revoked (final).',
  expired: 'The key has expired.',
  user_inactive: 'The key’s user account is not active (suspended, archived or deleted).',
  user_lacks_right: 'The key’s user account has no right that matches this call.',
  no_matching_rule: 'None of the key’s API rules matches this call.',
  ip_not_allowed: 'The caller IP is not in the key’s IP rules (or no IP was given).',
}

const EXAMPLE_RULES = [
  ['session:*', 'every API of the session service'],
  ['session:getSessionInfo', 'one API'],
  ['session:get*', 'session APIs starting with “get”'],
  ['data:entityBrowseRecords2', 'browsing entity records'],
  ['data:entity???Record', '? is exactly one character: entityAddRecord, entityGetRecord…'],
  ['apps/com.hornbill.core/Achievement:*', 'every API of one app service'],
  ['apps/com.hornbill.core:addHistory', 'one API of an app'],
  ['apps/com.hornbill.servicemanager/Requests:holdRequest', 'one API of an app service'],
  ['*:userLogon', 'userLogon in any service'],
  ['ip=142.250.200.46', 'only calls from this address (keys only)'],
  ['ip=142.250.200.0/24', 'only calls from this network (keys only)'],
  ['ip=2001:db8::/32', 'an IPv6 network (keys only)'],
]

// ---- small helpers ------------------------------------------------------------------

/**
 * Bidirectional control characters: invisible, yet they reorder the text around them (a
 * description could make "…abc" read as "cba…" or move a neighbouring column's text).
 */
const BIDI_CONTROLS = /[\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069]/g

/** `text` with every bidi control character replaced by a visible `<U+202E>`. */
function shown(text) {
  return String(text).replace(BIDI_CONTROLS, (c) => `<U+${c.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')}>`)
}

/** Attributes whose value is shown to people (the others, e.g. `value`, must stay exact). */
const TEXT_ATTRIBUTES = new Set(['aria-label', 'title', 'placeholder', 'label'])

/** Elements whose text is shown as plain text: they cannot hold a <bdi>. */
const PLAIN_TEXT_TAGS = new Set(['option', 'title', 'textarea'])

/**
 * An element. Every string goes through shown(); strings with non-ASCII characters are
 * also isolated in a <bdi>, so right-to-left text cannot reorder what surrounds them.
 */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag)
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue
    if (k === 'class') el.className = v
    else if (k === 'text') el.textContent = shown(v)
    else if (k === 'dataset') Object.assign(el.dataset, v)
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v)
    else el.setAttribute(k, v === true ? '' : TEXT_ATTRIBUTES.has(k) ? shown(v) : String(v))
  }
  const plain = PLAIN_TEXT_TAGS.has(tag)
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue
    el.append(c instanceof Node ? c : plain ? shown(c) : isolated(String(c)))
  }
  return el
}

/** A string as a node: a <bdi> when it holds anything but ASCII, else a text node. */
function isolated(text) {
  if (!/[^\x00-\x7f]/.test(text)) return text
  const bdi = document.createElement('bdi')
  bdi.textContent = shown(text)
  return bdi
}

/** Under an input: says so, and shows the text with them visible, when it holds bidi control characters. */
function noteBidi(input, note) {
  const has = /[\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069]/.test(input.value)
  setText(note, has ? 'Holds invisible direction characters: ' : '', has ? isolated(input.value) : '')
  note.hidden = !has
}

/** Sets the text of `el` from parts: fixed strings, and user data isolated by isolated(). */
function setText(el, ...parts) {
  el.replaceChildren(...parts.map((p) => (p instanceof Node ? p : isolated(String(p)))))
}

function nowMs() {
  return Date.now() + state.offset
}

const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' })

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

function timeCell(iso) {
  if (!iso) return h('span', { class: 'muted' }, 'never')
  return h('time', { datetime: iso, title: iso }, fmtDate(iso), h('span', { class: 'rel' }, ` (${relative(iso)})`))
}

function pad(n) {
  return String(n).padStart(2, '0')
}

/** A Date as the value of <input type="datetime-local"> (local time, minutes). */
function toLocalInput(ms) {
  const d = new Date(ms)
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`
}

function fromLocalInput(value) {
  if (!value) return null
  const d = new Date(value)
  return Number.isFinite(d.getTime()) ? d : null
}

function lines(text) {
  return text.split(/\r?\n/)
}

function show(el, visible = true) {
  el.hidden = !visible
}

function setError(el, message) {
  setText(el, message || '')
  el.hidden = !message
}

let toastTimer
function toast(message) {
  const el = $('#toast')
  setText(el, message)
  el.classList.add('visible')
  clearTimeout(toastTimer)
  toastTimer = setTimeout(() => el.classList.remove('visible'), 4000)
}

function pageAlert(message) {
  const el = $('#page-alert')
  el.replaceChildren(
    h('span', { class: 'alert-text' }, message),
    h('button', { type: 'button', class: 'btn btn-quiet btn-small', 'aria-label': 'Dismiss', onclick: () => show(el, false) }, '✕'),
  )
  show(el, true)
}

function clearPageAlert() {
  show($('#page-alert'), false)
}

function stateBadge(key) {
  const expired = key.state === 'active' && new Date(key.expiresAt).getTime() <= nowMs()
  return h(
    'span',
    {},
    h('span', { class: `badge badge-${key.state}` }, key.state),
    expired ? h('span', { class: 'badge badge-expired' }, 'expired') : null,
  )
}

// ---- the API ---------------------------------------------------------------------------

class ApiFailure extends Error {
  constructor(status, code, message) {
    super(message)
    this.status = status
    this.code = code
  }
}

async function api(method, path, body, retried = false) {
  const headers = { Accept: 'application/json' }
  const init = { method, headers, credentials: 'same-origin', cache: 'no-store', redirect: 'error' }
  if (method !== 'GET') {
    if (state.csrf) headers['X-CSRF-Token'] = state.csrf
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json'
      init.body = JSON.stringify(body)
    }
  }
  let res
  try {
    // Relative to the page's URL, so the page also works mounted under a prefix (keygate/admin).
    res = await fetch(path.slice(1), init)
  } catch {
    throw new ApiFailure(0, 'NETWORK', 'The keygate server cannot be reached. Is `keygate serve` still running?')
  }
  let data = null
  try {
    data = await res.json()
  } catch {
    data = null
  }
  if (res.ok) return data
  const error = (data && data.error) || { code: `HTTP_${res.status}`, message: `${res.status} ${res.statusText}` }
  if (res.status === 401 && path !== '/api/login') {
    loggedOut('Your session has ended; log in again.')
  } else if (res.status === 403 && error.code === 'CSRF' && !retried) {
    // Logged in again in another tab: take the new session's token and retry once.
    const s = await fetch('api/session', { credentials: 'same-origin', cache: 'no-store' })
    if (s.ok) {
      const info = await s.json()
      state.csrf = info.csrfToken
      return api(method, path, body, true)
    }
  }
  throw new ApiFailure(res.status, error.code, error.message)
}

const GONE = new Set(['UNKNOWN_KEY', 'UNKNOWN_USER', 'UNKNOWN_ROLE'])
const CHANGED = new Set(['KEY_CHANGED', 'REVOKED_IS_FINAL', 'ALREADY_EXISTS'])

/**
 * An action failed because the page was stale (another tab or admin changed or deleted the
 * thing): say so clearly and show the current data.
 */
async function staleRefresh(error) {
  const gone = GONE.has(error.code)
  const text = error.message.charAt(0).toUpperCase() + error.message.slice(1)
  const message = gone
    ? `${text}: it was deleted in another tab or by another admin. The list has been refreshed.`
    : `${text}. The page now shows the current data.`
  if (gone) {
    for (const d of $$('dialog[open]')) if (d.id !== 'dlg-secret') d.close()
  }
  pageAlert(message)
  await renderRoute()
  if (!gone && $('#dlg-key').open && state.detail) await loadKeyDetail(state.detail.id, { quiet: true })
}

function isStale(error) {
  return error instanceof ApiFailure && (GONE.has(error.code) || CHANGED.has(error.code))
}

/** Runs an action; shows failures in `errorEl` (or the page), and refreshes when stale. */
async function attempt(fn, errorEl) {
  try {
    if (errorEl) setError(errorEl, '')
    return await fn()
  } catch (error) {
    if (!(error instanceof ApiFailure)) throw error
    if (error.status === 401) return undefined
    if (isStale(error)) {
      await staleRefresh(error)
      if (errorEl && !GONE.has(error.code)) setError(errorEl, error.message)
      return undefined
    }
    if (errorEl) setError(errorEl, error.message)
    else pageAlert(error.message)
    return undefined
  }
}

// ---- session -------------------------------------------------------------------------

function takeSession(info) {
  state.csrf = info.csrfToken
  state.actor = info.actor
  state.maxLifetimeDays = info.maxLifetimeDays || 730
  if (info.keyPrefix) $('#try-secret').placeholder = `${info.keyPrefix}_…`
  state.offset = new Date(info.now).getTime() - Date.now()
}

function loggedOut(message) {
  state.csrf = null
  for (const d of $$('dialog[open]')) d.close()
  clearSecretInputs()
  show($('#topbar'), false)
  for (const v of $$('.view')) show(v, false)
  show($('#view-login'), true)
  setError($('#login-error'), message || '')
  $('#login-token').focus()
}

async function boot() {
  wireStatic()
  let info = null
  try {
    const res = await fetch('api/session', { credentials: 'same-origin', cache: 'no-store' })
    if (res.ok) info = await res.json()
  } catch {
    /* shown as the login screen */
  }
  if (info && info.authenticated) {
    takeSession(info)
    loggedIn()
  } else {
    loggedOut('')
  }
}

function loggedIn() {
  show($('#view-login'), false)
  show($('#topbar'), true)
  if (!location.hash.startsWith('#/')) history.replaceState(null, '', '#/keys')
  renderRoute()
}

// ---- routing -------------------------------------------------------------------------

let keepAlert = false

/** Navigates from code, keeping the alert that explains why. */
function go(hash) {
  if (location.hash === hash) {
    renderRoute()
    return
  }
  keepAlert = true
  location.hash = hash
}

function parseRoute() {
  const hash = location.hash.startsWith('#/') ? location.hash.slice(2) : 'keys'
  const q = hash.indexOf('?')
  const path = q < 0 ? hash : hash.slice(0, q)
  const params = new URLSearchParams(q < 0 ? '' : hash.slice(q + 1))
  const [name, ...rest] = path.split('/')
  let arg = ''
  try {
    arg = decodeURIComponent(rest.join('/'))
  } catch {
    arg = ''
  }
  if (name === 'users' && arg) return { name: 'user', arg, params }
  return { name: name || 'keys', arg, params }
}

const VIEWS = {
  keys: renderKeys,
  users: renderUsers,
  user: renderUser,
  roles: renderRoles,
  try: renderTry,
  audit: renderAudit,
}

async function renderRoute() {
  if (!state.csrf) return
  const route = parseRoute()
  const leaving = state.route.name
  state.route = route
  const render = VIEWS[route.name] ? route.name : 'keys'
  if (leaving === 'try' && render !== 'try') $('#try-secret').value = ''
  for (const v of $$('.view')) show(v, v.id === `view-${render}`)
  for (const a of $$('[data-nav]')) {
    const current = a.dataset.nav === render || (render === 'user' && a.dataset.nav === 'users')
    if (current) a.setAttribute('aria-current', 'page')
    else a.removeAttribute('aria-current')
  }
  document.title = `${$(`#view-${render} h1`).textContent} · keygate admin`
  try {
    await VIEWS[render](route)
  } catch (error) {
    if (!(error instanceof ApiFailure)) throw error
    if (error.status !== 401) pageAlert(error.message)
  }
}

// ---- keys ---------------------------------------------------------------------------

async function loadUsers() {
  const data = await api('GET', '/api/users')
  state.users = data.users
  return state.users
}

function fillUserSelect(select, { allOption, selected }) {
  const current = selected ?? select.value
  const options = []
  if (allOption) options.push(h('option', { value: '' }, allOption))
  for (const u of state.users) {
    options.push(h('option', { value: u.id }, u.status === 'active' ? u.id : `${u.id} (${u.status})`))
  }
  select.replaceChildren(...options)
  if (current && state.users.some((u) => u.id === current)) select.value = current
}

async function renderKeys() {
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
  const keys = q
    ? state.keys.filter((k) => k.id.toLowerCase().includes(q) || k.description.toLowerCase().includes(q) || k.hint.toLowerCase().includes(q))
    : state.keys
  $('#keys-count').textContent = `${keys.length} ${keys.length === 1 ? 'key' : 'keys'}${keys.length !== state.keys.length ? ` of ${state.keys.length}` : ''}`
  $('#keys-table').replaceChildren(
    keyTable(keys, {
      caption: 'API keys',
      empty: state.keys.length === 0 && !$('#filter-user').value && !$('#filter-state').value ? 'No API keys yet. Press + to create one.' : 'No key matches the filter.',
    }),
  )
}

function keyTable(keys, { caption, empty, showUser = true }) {
  if (keys.length === 0) return h('p', { class: 'empty' }, empty)
  const head = ['Key', showUser ? 'User account' : null, 'Description', 'State', 'Expires', 'Last used', 'Hint', 'Actions'].filter(Boolean)
  return h(
    'table',
    { class: 'grid keys' },
    h('caption', { class: 'sr-only' }, caption),
    h('thead', {}, h('tr', {}, head.map((t) => h('th', { scope: 'col' }, t)))),
    h(
      'tbody',
      {},
      keys.map((k) =>
        h(
          'tr',
          { dataset: { keyId: k.id, state: k.state } },
          h('td', { 'data-label': 'Key', class: 'mono' }, k.id),
          showUser ? h('td', { 'data-label': 'User account' }, h('a', { href: `#/users/${encodeURIComponent(k.userId)}` }, k.userId)) : null,
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
        ),
      ),
    ),
  )
}

// ---- create key ----------------------------------------------------------------------

function expiryBounds() {
  const now = nowMs()
  return { min: now + 60_000, max: now + state.maxLifetimeDays * DAY_MS - 60_000 }
}

function setExpiryInput(input, ms) {
  const { min, max } = expiryBounds()
  input.min = toLocalInput(min)
  input.max = toLocalInput(max)
  input.value = toLocalInput(Math.min(ms, max))
}

function lifetimeText() {
  const d = state.maxLifetimeDays
  return d % 365 === 0 ? `${d} days (${d / 365} ${d === 365 ? 'year' : 'years'})` : `${d} days`
}

/** Checks an expiry input; returns the Date or null (and shows why). */
function checkExpiry(input, errorEl) {
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

/** Live validation of a rules textarea (server-side, so it is exactly keygate's parser). */
function ruleChecker(textarea, output, kind) {
  let timer
  let seq = 0
  let last = { ok: true, rules: [], errors: [] }
  async function run() {
    const mine = ++seq
    const data = await api('POST', '/api/rules/validate', { lines: lines(textarea.value), kind })
    if (mine !== seq) return last
    last = data
    draw()
    return data
  }
  function draw() {
    const bad = last.errors.length > 0
    textarea.setAttribute('aria-invalid', bad ? 'true' : 'false')
    if (bad) {
      output.className = 'rule-check bad'
      output.replaceChildren(
        h(
          'ul',
          {},
          last.errors.map((e) => h('li', {}, e.line > 0 ? `Line ${e.line}: ${e.message}` : e.message)),
        ),
      )
    } else {
      output.className = 'rule-check ok'
      const n = last.rules.length
      output.textContent =
        n > 0
          ? `✓ ${n} ${n === 1 ? 'rule' : 'rules'}, all valid.`
          : kind === 'rights'
            ? 'No rights of its own: the account may call only what its roles grant.'
            : 'No rules: the key may call whatever its user account may call.'
    }
  }
  textarea.addEventListener('input', () => {
    clearTimeout(timer)
    timer = setTimeout(() => run().catch(() => {}), 200)
  })
  return {
    /** Validates now (before a submit). */
    async check() {
      clearTimeout(timer)
      try {
        return await run()
      } catch {
        return { ok: true, rules: [], errors: [] } // the server checks again on submit
      }
    },
    reset() {
      clearTimeout(timer)
      seq++
      last = { ok: true, rules: [], errors: [] }
      output.className = 'rule-check'
      output.textContent = ''
      textarea.removeAttribute('aria-invalid')
    },
    show(data) {
      last = data
      draw()
    },
  }
}

const checkers = {}

async function openCreate(userId) {
  const dlg = $('#dlg-create')
  const form = $('#create-form')
  form.reset()
  setError($('#create-error'), '')
  setError($('#create-expires-error'), '')
  checkers.create.reset()
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
  const check = await checkers.create.check()
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
  const submit = $('#create-form button[type=submit]')
  submit.disabled = true
  try {
    const issued = await api('POST', '/api/keys', body)
    $('#dlg-create').close()
    toast(`Key ${issued.key.id} created.`)
    showSecret(issued, 'created')
    renderRoute()
  } catch (error) {
    if (!(error instanceof ApiFailure) || error.status === 401) return
    if (error.code.startsWith('EXPIRY_')) {
      setError($('#create-expires-error'), error.message)
      $('#create-expires').focus()
    } else if (error.code === 'INVALID_RULE') {
      checkers.create.check()
      setError(errorEl, error.message)
      $('#create-rules').focus()
    } else if (error.code === 'UNKNOWN_USER') {
      setError(errorEl, `${error.message}. It was deleted in another tab; the list of accounts has been refreshed.`)
      await attempt(loadUsers, errorEl)
      fillUserSelect($('#create-user'), {})
    } else {
      setError(errorEl, error.message)
    }
  } finally {
    submit.disabled = false
  }
}

// ---- the secret, once ---------------------------------------------------------------

function showSecret(issued, what) {
  const dlg = $('#dlg-secret')
  const input = $('#secret-value')
  input.value = issued.secret
  setText($('#secret-for'), `${what === 'rotated' ? 'New key' : 'Key'} `, isolated(issued.key.id), ' for ', isolated(issued.key.userId), `, ending …${issued.key.hint}.`)
  $('#secret-copy-status').textContent = ''
  dlg.showModal()
  $('#secret-copy').focus()
}

function forgetSecret() {
  $('#secret-value').value = ''
  $('#secret-for').textContent = ''
  $('#secret-copy-status').textContent = ''
}

function clearSecretInputs() {
  $('#secret-value').value = ''
  $('#try-secret').value = ''
}

async function copySecret() {
  const input = $('#secret-value')
  const status = $('#secret-copy-status')
  try {
    await navigator.clipboard.writeText(input.value)
    status.textContent = 'Copied to the clipboard.'
  } catch {
    input.focus()
    input.select()
    let ok = false
    try {
      ok = document.execCommand('copy')
    } catch {
      ok = false
    }
    status.textContent = ok ? 'Copied to the clipboard.' : 'The secret is selected: press Ctrl+C (⌘C on a Mac) to copy it.'
  }
}

// ---- key details --------------------------------------------------------------------

async function openKey(id) {
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
  const revoked = key.state === 'revoked'
  show($('#key-suspend'), key.state === 'active')
  show($('#key-activate'), key.state === 'suspended')
  show($('#key-revoke'), !revoked)
  show($('#key-rotate'), !revoked)
  show($('#key-final'), revoked)
  $('#key-fieldset').disabled = revoked
  $('#key-try').href = `#/try?key=${encodeURIComponent(key.id)}`
  $('#key-audit').href = `#/audit?keyId=${encodeURIComponent(key.id)}`
  $('#key-description').value = key.description
  noteBidi($('#key-description'), $('#key-description-bidi'))
  $('#key-rules').value = key.rules.join('\n')
  checkers.key.reset()
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
  const check = await checkers.key.check()
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
  if (next === 'revoked') {
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

// ---- confirm dialog -----------------------------------------------------------------

function confirmDialog({ title, text, ok }) {
  const dlg = $('#dlg-confirm')
  setText($('#confirm-title'), title)
  setText($('#confirm-text'), text)
  $('#confirm-ok').textContent = ok
  dlg.returnValue = ''
  return new Promise((resolve) => {
    dlg.addEventListener('close', () => resolve(dlg.returnValue === 'ok'), { once: true })
    dlg.showModal()
    $('#confirm-cancel').focus()
  })
}

// ---- example rules (the ?) ------------------------------------------------------------

let helpTarget = null

function openHelp(targetId) {
  helpTarget = document.getElementById(targetId)
  const rights = targetId !== 'create-rules' && targetId !== 'key-rules'
  const rows = EXAMPLE_RULES.filter(([rule]) => !(rights && rule.startsWith('ip='))).map(([rule, meaning]) =>
    h(
      'tr',
      {},
      h('td', {}, h('code', {}, rule)),
      h('td', {}, meaning),
      h(
        'td',
        {},
        helpTarget && !helpTarget.closest('fieldset:disabled')
          ? h('button', { type: 'button', class: 'btn btn-small', 'aria-label': `Add rule ${rule}`, onclick: () => addExample(rule) }, 'Add')
          : null,
      ),
    ),
  )
  $('#help-rows').replaceChildren(...rows)
  $('#dlg-help').showModal()
}

function addExample(rule) {
  if (!helpTarget) return
  const text = helpTarget.value.replace(/\s+$/, '')
  helpTarget.value = text ? `${text}\n${rule}` : rule
  helpTarget.dispatchEvent(new Event('input', { bubbles: true }))
  $('#dlg-help').close()
  helpTarget.focus()
}

// ---- users -----------------------------------------------------------------------------

async function renderUsers() {
  await loadUsers()
  const users = state.users
  if (users.length === 0) {
    $('#users-table').replaceChildren(h('p', { class: 'empty' }, 'No user accounts yet. Create one, then create keys under it.'))
    return
  }
  $('#users-table').replaceChildren(
    h(
      'table',
      { class: 'grid' },
      h('caption', { class: 'sr-only' }, 'User accounts'),
      h('thead', {}, h('tr', {}, ['User account', 'Status', 'Roles', 'Rights', 'API keys'].map((t) => h('th', { scope: 'col' }, t)))),
      h(
        'tbody',
        {},
        users.map((u) =>
          h(
            'tr',
            { dataset: { userId: u.id } },
            h('td', { 'data-label': 'User account' }, h('a', { href: `#/users/${encodeURIComponent(u.id)}` }, u.id)),
            h('td', { 'data-label': 'Status' }, h('span', { class: `badge badge-${u.status}` }, u.status)),
            h('td', { 'data-label': 'Roles' }, u.roles.length ? u.roles.join(', ') : h('span', { class: 'muted' }, 'none')),
            h('td', { 'data-label': 'Rights', class: 'mono small' }, u.rights.length ? u.rights.join('\n') : h('span', { class: 'muted' }, 'none')),
            h('td', { 'data-label': 'API keys' }, `${u.keys.active} active of ${u.keys.total}`),
          ),
        ),
      ),
    ),
  )
}

async function loadRoles() {
  const data = await api('GET', '/api/roles')
  state.roles = data.roles
  return state.roles
}

function roleChecks(container, selected, prefix) {
  if (state.roles.length === 0) {
    container.replaceChildren(h('p', { class: 'muted' }, 'No roles yet (see Roles).'))
    return
  }
  container.replaceChildren(
    ...state.roles.map((r) =>
      h(
        'label',
        {},
        h('input', { type: 'checkbox', name: 'roles', value: r.name, id: `${prefix}-${r.name}`, checked: selected.includes(r.name) }),
        ` ${r.name}`,
      ),
    ),
  )
}

function checkedRoles(container) {
  return $$('input[type=checkbox]:checked', container).map((c) => c.value)
}

async function openNewUser() {
  const form = $('#newuser-form')
  form.reset()
  setError($('#newuser-error'), '')
  checkers.newuser.reset()
  await attempt(loadRoles, $('#newuser-error'))
  roleChecks($('#newuser-roles'), [], 'newuser-role')
  $('#dlg-user').showModal()
  $('#newuser-id').focus()
}

async function submitNewUser(event) {
  event.preventDefault()
  const errorEl = $('#newuser-error')
  const id = $('#newuser-id').value.trim()
  if (!id) {
    setError(errorEl, 'Give the user account an id.')
    $('#newuser-id').focus()
    return
  }
  const check = await checkers.newuser.check()
  if (!check.ok) {
    setError(errorEl, 'Fix the rights first: each line must be a valid API rule.')
    $('#newuser-rights').focus()
    return
  }
  const body = { id, status: $('#newuser-status').value, rights: lines($('#newuser-rights').value), roles: checkedRoles($('#newuser-roles')) }
  try {
    const data = await api('POST', '/api/users', body)
    $('#dlg-user').close()
    toast(`User ${data.user.id} created.`)
    await renderRoute()
  } catch (error) {
    if (!(error instanceof ApiFailure) || error.status === 401) return
    setError(errorEl, error.message)
    if (error.code === 'UNKNOWN_ROLE') {
      await attempt(loadRoles, errorEl)
      roleChecks($('#newuser-roles'), body.roles, 'newuser-role')
    }
  }
}

async function renderUser(route) {
  const id = route.arg
  let data
  try {
    ;[data] = await Promise.all([api('GET', `/api/users/${encodeURIComponent(id)}`), loadRoles()])
  } catch (error) {
    if (error instanceof ApiFailure && error.code === 'UNKNOWN_USER') {
      pageAlert(`There is no user account “${id}” (any more): it was deleted in another tab or by another admin.`)
      go('#/users')
      return
    }
    throw error
  }
  state.offset = new Date(data.now).getTime() - Date.now()
  const user = data.user
  setText($('#user-title'), 'User account ', isolated(user.id))
  document.title = `${user.id} · keygate admin`
  $('#user-form').dataset.userId = user.id
  $('#user-status').value = user.status
  $('#user-rights').value = user.rights.join('\n')
  checkers.user.reset()
  setError($('#user-form-error'), '')
  roleChecks($('#user-roles-list'), user.roles, 'user-role')
  setText($('#user-keys-title'), 'API keys of ', isolated(user.id), ` (${data.keys.length})`)
  $('#user-keys-table').replaceChildren(
    keyTable(data.keys, { caption: `API keys of ${user.id}`, empty: 'No API keys under this account yet. Press + to create one.', showUser: false }),
  )
}

async function saveUser(event) {
  event.preventDefault()
  const id = $('#user-form').dataset.userId
  const errorEl = $('#user-form-error')
  const check = await checkers.user.check()
  if (!check.ok) {
    setError(errorEl, 'Fix the rights first: each line must be a valid API rule.')
    $('#user-rights').focus()
    return
  }
  const body = { status: $('#user-status').value, rights: lines($('#user-rights').value), roles: checkedRoles($('#user-roles-list')) }
  await attempt(async () => {
    await api('PUT', `/api/users/${encodeURIComponent(id)}`, body)
    toast(`User ${id} saved.`)
    await renderRoute()
  }, errorEl)
}

async function deleteUser() {
  const id = $('#user-form').dataset.userId
  const user = state.users.find((u) => u.id === id)
  const n = user ? user.keys.total : 0
  const ok = await confirmDialog({
    title: `Delete user account ${id}?`,
    text: `The account and all its API keys (${n}) are deleted; those keys stop working at once.`,
    ok: 'Delete user',
  })
  if (!ok) return
  await attempt(async () => {
    await api('DELETE', `/api/users/${encodeURIComponent(id)}`)
    toast(`User ${id} deleted.`)
    go('#/users')
  }, $('#user-form-error'))
}

// ---- roles ------------------------------------------------------------------------------

async function renderRoles() {
  const roles = await loadRoles()
  if (roles.length === 0) {
    $('#roles-table').replaceChildren(h('p', { class: 'empty' }, 'No roles yet.'))
    return
  }
  $('#roles-table').replaceChildren(
    h(
      'table',
      { class: 'grid' },
      h('caption', { class: 'sr-only' }, 'Roles'),
      h('thead', {}, h('tr', {}, ['Role', 'Rights', 'User accounts', 'Actions'].map((t) => h('th', { scope: 'col' }, t)))),
      h(
        'tbody',
        {},
        roles.map((r) =>
          h(
            'tr',
            { dataset: { role: r.name } },
            h('td', { 'data-label': 'Role' }, r.name),
            h('td', { 'data-label': 'Rights', class: 'mono small' }, r.rights.length ? r.rights.join('\n') : h('span', { class: 'muted' }, 'none')),
            h(
              'td',
              { 'data-label': 'User accounts' },
              r.users.length
                ? r.users.flatMap((u, i) => [i ? ', ' : '', h('a', { href: `#/users/${encodeURIComponent(u)}` }, u)])
                : h('span', { class: 'muted' }, 'none'),
            ),
            h(
              'td',
              { 'data-label': 'Actions' },
              h('button', { type: 'button', class: 'btn btn-small', 'aria-label': `Edit role ${r.name}`, onclick: () => openRole(r) }, 'Edit'),
              ' ',
              h('button', { type: 'button', class: 'btn btn-small btn-danger', 'aria-label': `Delete role ${r.name}`, onclick: () => deleteRole(r) }, 'Delete'),
            ),
          ),
        ),
      ),
    ),
  )
}

function openRole(role) {
  const form = $('#role-form')
  form.reset()
  form.dataset.mode = role ? 'edit' : 'new'
  setError($('#role-error'), '')
  checkers.role.reset()
  if (role) setText($('#role-title'), 'Role ', isolated(role.name))
  else setText($('#role-title'), 'New role')
  $('#role-name').value = role ? role.name : ''
  $('#role-name').readOnly = Boolean(role)
  $('#role-rights').value = role ? role.rights.join('\n') : ''
  $('#dlg-role').showModal()
  ;(role ? $('#role-rights') : $('#role-name')).focus()
}

async function submitRole(event) {
  event.preventDefault()
  const form = $('#role-form')
  const errorEl = $('#role-error')
  const name = $('#role-name').value.trim()
  if (!name) {
    setError(errorEl, 'Give the role a name.')
    $('#role-name').focus()
    return
  }
  const check = await checkers.role.check()
  if (!check.ok) {
    setError(errorEl, 'Fix the rights first: each line must be a valid API rule.')
    $('#role-rights').focus()
    return
  }
  const rights = lines($('#role-rights').value)
  try {
    if (form.dataset.mode === 'edit') await api('PUT', `/api/roles/${encodeURIComponent(name)}`, { rights })
    else await api('POST', '/api/roles', { name, rights })
    $('#dlg-role').close()
    toast(`Role ${name} saved.`)
    await renderRoute()
  } catch (error) {
    if (!(error instanceof ApiFailure) || error.status === 401) return
    if (isStale(error)) {
      $('#dlg-role').close()
      await staleRefresh(error)
    } else {
      setError(errorEl, error.message)
    }
  }
}

async function deleteRole(role) {
  const ok = await confirmDialog({
    title: `Delete role ${role.name}?`,
    text: role.users.length
      ? `It is removed from ${role.users.length} user account(s) (${role.users.join(', ')}); their keys lose the rights it granted.`
      : 'No user account holds it.',
    ok: 'Delete role',
  })
  if (!ok) return
  await attempt(async () => {
    await api('DELETE', `/api/roles/${encodeURIComponent(role.name)}`)
    toast(`Role ${role.name} deleted.`)
    await renderRoute()
  })
}

// ---- try a call -----------------------------------------------------------------------

function tryMode() {
  return $('#try-form input[name=mode]:checked').value
}

function syncTryMode() {
  const key = tryMode() === 'key'
  show($('#try-secret-field'), !key)
  show($('#try-key-field'), key)
}

async function renderTry(route) {
  const keyId = route.params.get('key')
  if (keyId) {
    $('#try-form input[name=mode][value=key]').checked = true
    $('#try-key').value = keyId
  }
  syncTryMode()
  show($('#try-result'), false)
  setError($('#try-error'), '')
  const data = await api('GET', '/api/keys')
  $('#try-key-list').replaceChildren(...data.keys.map((k) => h('option', { value: k.id }, `${k.userId} · ${k.description || k.state} · …${k.hint}`)))
}

async function submitTry(event) {
  event.preventDefault()
  const errorEl = $('#try-error')
  setError(errorEl, '')
  const mode = tryMode()
  const body = { service: $('#try-service').value.trim(), api: $('#try-api').value.trim() }
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
  if (!body.service || !body.api) {
    setError(errorEl, 'Give the service and the API of the call, e.g. session and getSessionInfo.')
    ;(body.service ? $('#try-api') : $('#try-service')).focus()
    return
  }
  try {
    const data = await api('POST', '/api/try', body)
    drawDecision(data)
  } catch (error) {
    if (!(error instanceof ApiFailure) || error.status === 401) return
    show($('#try-result'), false)
    setError(errorEl, error.message)
  }
}

function drawDecision({ mode, decision }) {
  const el = $('#try-result')
  const facts = []
  if (decision.keyId) facts.push(h('dt', {}, 'Key'), h('dd', { class: 'mono' }, decision.keyId))
  if (decision.userId) facts.push(h('dt', {}, 'User account'), h('dd', {}, decision.userId))
  if (decision.matchedRule) facts.push(h('dt', {}, 'Matched rule'), h('dd', { class: 'mono' }, decision.matchedRule))
  el.className = `decision ${decision.allowed ? 'allowed' : 'denied'}`
  const parts = [
    h(
      'p',
      { class: 'verdict', 'data-reason': decision.reason },
      decision.allowed ? '✓ Allowed' : ['✗ Denied: ', h('span', { class: 'reason mono' }, decision.reason)],
    ),
    h('p', {}, REASONS[decision.reason] || decision.reason),
  ]
  if (facts.length) parts.push(h('dl', { class: 'facts' }, facts))
  parts.push(
    h(
      'p',
      { class: 'hint' },
      mode === 'key'
        ? 'Evaluated from the key’s settings (no secret); its “last used” time is not changed.'
        : 'Checked exactly as isAllowed/explain would; a check from here is a diagnosis, not a use (“last used” does not change).',
    ),
  )
  el.replaceChildren(...parts)
  show(el, true)
}

// ---- audit --------------------------------------------------------------------------

async function renderAudit(route) {
  const form = $('#audit-filter')
  for (const name of ['keyId', 'userId', 'action', 'actor']) {
    const v = route.params.get(name)
    if (v !== null) form.elements[name].value = v
  }
  await loadAudit()
}

async function loadAudit() {
  const form = $('#audit-filter')
  const params = new URLSearchParams()
  for (const name of ['keyId', 'userId', 'action', 'actor', 'limit']) {
    const v = form.elements[name].value.trim()
    if (v) params.set(name, v)
  }
  const since = fromLocalInput(form.elements.since.value)
  if (since) params.set('since', since.toISOString())
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
  if (entries.length === 0) {
    $('#audit-table').replaceChildren(h('p', { class: 'empty' }, 'No audit entry matches.'))
    return
  }
  $('#audit-table').replaceChildren(
    h(
      'table',
      { class: 'grid audit' },
      h('caption', { class: 'sr-only' }, 'Audit trail, newest first'),
      h('thead', {}, h('tr', {}, ['#', 'When', 'Actor', 'Action', 'Key', 'User account', 'Changes'].map((t) => h('th', { scope: 'col' }, t)))),
      h(
        'tbody',
        {},
        entries.map((e) =>
          h(
            'tr',
            {},
            h('td', { 'data-label': '#' }, String(e.seq)),
            h('td', { 'data-label': 'When' }, timeCell(e.at)),
            h('td', { 'data-label': 'Actor' }, e.actor || h('span', { class: 'muted' }, '—')),
            h('td', { 'data-label': 'Action' }, h('span', { class: 'mono' }, e.action)),
            h('td', { 'data-label': 'Key', class: 'mono' }, e.keyId || '—'),
            h('td', { 'data-label': 'User account' }, e.userId || '—'),
            h('td', { 'data-label': 'Changes' }, h('details', {}, h('summary', {}, summarise(e.changes)), h('pre', {}, JSON.stringify(e.changes, null, 2)))),
          ),
        ),
      ),
    ),
  )
}

function summarise(changes) {
  if (!changes || typeof changes !== 'object') return 'details'
  const prefix = typeof changes.role === 'string' ? `role ${changes.role}: ` : ''
  const body = changes.changes && typeof changes.changes === 'object' && !Array.isArray(changes.changes) ? changes.changes : changes
  const show = (x) => (Array.isArray(x) ? (x.length ? x.join(', ') : '(none)') : x !== null && typeof x === 'object' ? '…' : String(x))
  const parts = []
  for (const [n, v] of Object.entries(body)) {
    if (n === 'role' || n === 'changes') continue
    if (n === 'created' || n === 'deleted') parts.unshift(n)
    else if (n === 'deletedKeys') parts.push(`${Array.isArray(v) ? v.length : '?'} key(s) deleted`)
    else if (n === 'removedFromUsers') parts.push(Array.isArray(v) && v.length ? `removed from ${v.join(', ')}` : 'held by no user')
    else if (Array.isArray(v) && v.length === 2) parts.push(`${n}: ${show(v[0])} → ${show(v[1])}`)
    else parts.push(n)
  }
  if (parts.length === 0 && prefix) parts.push('deleted')
  const text = prefix + (parts.join('; ') || 'details')
  return text.length > 90 ? `${text.slice(0, 89)}…` : text
}

// ---- wiring -------------------------------------------------------------------------

function wireStatic() {
  window.addEventListener('hashchange', () => {
    if (!keepAlert) clearPageAlert()
    keepAlert = false
    renderRoute()
  })
  $('#skip-link').addEventListener('click', (e) => {
    e.preventDefault()
    $('#main').focus()
  })

  $('#login-form').addEventListener('submit', async (e) => {
    e.preventDefault()
    const input = $('#login-token')
    const token = input.value
    if (!token) {
      setError($('#login-error'), 'Enter the admin token.')
      input.focus()
      return
    }
    try {
      const info = await api('POST', '/api/login', { token })
      input.value = ''
      setError($('#login-error'), '')
      takeSession(info)
      loggedIn()
    } catch (error) {
      if (!(error instanceof ApiFailure)) throw error
      setError($('#login-error'), error.code === 'BAD_TOKEN' ? 'Wrong admin token.' : error.message)
      input.select()
    }
  })
  $('#logout').addEventListener('click', async () => {
    try {
      await api('POST', '/api/logout', {})
    } catch {
      /* logged out anyway */
    }
    loggedOut('You are logged out.')
  })

  // Dialog buttons with data-close; links inside dialogs close them.
  for (const dlg of $$('dialog')) {
    dlg.addEventListener('click', (e) => {
      const t = e.target instanceof Element ? e.target : null
      if (!t) return
      if (t.closest('[data-close]')) dlg.close()
      else if (t.closest('a[href^="#/"]')) for (const d of $$('dialog[open]')) d.close()
    })
  }

  // Keys
  $('#key-new').addEventListener('click', () => openCreate())
  $('#keys-refresh').addEventListener('click', () => {
    clearPageAlert()
    renderRoute()
  })
  $('#filter-user').addEventListener('change', () => attempt(reloadKeys))
  $('#filter-state').addEventListener('change', () => attempt(reloadKeys))
  $('#filter-text').addEventListener('input', drawKeys)
  $('#keys-filter').addEventListener('submit', (e) => e.preventDefault())

  checkers.create = ruleChecker($('#create-rules'), $('#create-rules-check'), 'key')
  checkers.key = ruleChecker($('#key-rules'), $('#key-rules-check'), 'key')
  checkers.newuser = ruleChecker($('#newuser-rights'), $('#newuser-rights-check'), 'rights')
  checkers.user = ruleChecker($('#user-rights'), $('#user-rights-check'), 'rights')
  checkers.role = ruleChecker($('#role-rights'), $('#role-rights-check'), 'rights')

  $('#create-form').addEventListener('submit', submitCreate)
  $('#create-expires').addEventListener('change', () => checkExpiry($('#create-expires'), $('#create-expires-error')))
  for (const b of $$('#dlg-create [data-days]')) {
    b.addEventListener('click', () => {
      const days = b.dataset.days === 'max' ? state.maxLifetimeDays : Number(b.dataset.days)
      setExpiryInput($('#create-expires'), nowMs() + days * DAY_MS)
      checkExpiry($('#create-expires'), $('#create-expires-error'))
    })
  }
  for (const b of $$('[data-help]')) b.addEventListener('click', () => openHelp(b.dataset.help))

  $('#secret-copy').addEventListener('click', copySecret)
  $('#secret-done').addEventListener('click', () => {
    forgetSecret()
    $('#dlg-secret').close()
  })
  // The secret leaves the page as soon as its dialog closes (Done or Esc).
  $('#dlg-secret').addEventListener('close', forgetSecret)
  $('#dlg-secret').addEventListener('cancel', forgetSecret)

  $('#key-form').addEventListener('submit', saveKey)
  $('#key-description').addEventListener('input', () => noteBidi($('#key-description'), $('#key-description-bidi')))
  $('#key-expires').addEventListener('change', () => checkExpiry($('#key-expires'), $('#key-expires-error')))
  $('#key-suspend').addEventListener('click', () => changeState('suspended'))
  $('#key-activate').addEventListener('click', () => changeState('active'))
  $('#key-revoke').addEventListener('click', () => changeState('revoked'))
  $('#key-delete').addEventListener('click', deleteKey)
  $('#key-rotate').addEventListener('click', openRotate)
  $('#rotate-form').addEventListener('submit', submitRotate)
  $('#dlg-key').addEventListener('close', () => {
    state.detail = null
  })

  // Users and roles
  $('#user-new').addEventListener('click', openNewUser)
  $('#newuser-form').addEventListener('submit', submitNewUser)
  $('#user-form').addEventListener('submit', saveUser)
  $('#user-delete').addEventListener('click', deleteUser)
  $('#user-key-new').addEventListener('click', () => openCreate($('#user-form').dataset.userId))
  $('#role-new').addEventListener('click', () => openRole(null))
  $('#role-form').addEventListener('submit', submitRole)

  // Try
  for (const r of $$('#try-form input[name=mode]')) r.addEventListener('change', syncTryMode)
  $('#try-form').addEventListener('submit', submitTry)

  // Audit
  $('#audit-filter').addEventListener('submit', (e) => {
    e.preventDefault()
    attempt(loadAudit)
  })
  $('#audit-filter').addEventListener('reset', () => {
    setTimeout(() => attempt(loadAudit), 0)
  })
}

boot()
