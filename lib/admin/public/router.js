// Hash routing (#/keys, #/users/<id>, …): shows one screen, marks its link, renders it.

import { $, $$, show, pageAlert, clearPageAlert } from './dom.js'
import { ApiFailure } from './api.js'
import { state } from './state.js'
import { holdFocus } from './focus.js'

/** Route name → { render(route), leave?() }: the screens, registered by app.js. */
const views = {}

export function registerViews(table) {
  Object.assign(views, table)
}

let keepAlert = false

/** Navigates from code, keeping the alert that explains why. */
export function go(hash) {
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

export async function renderRoute() {
  if (!state.csrf) return
  // Focus stays on its button when the screen is redrawn (else on the screen's heading).
  const restoreFocus = holdFocus()
  const route = parseRoute()
  const leaving = state.route.name
  state.route = route
  // Own entries only: #/toString or #/__proto__ would find Object.prototype's and blank the page.
  const render = Object.hasOwn(views, route.name) ? route.name : 'keys'
  if (leaving !== render && Object.hasOwn(views, leaving) && views[leaving].leave) views[leaving].leave()
  for (const v of $$('.view')) show(v, v.id === `view-${render}`)
  for (const a of $$('[data-nav]')) {
    const current = a.dataset.nav === render || (render === 'user' && a.dataset.nav === 'users')
    if (current) a.setAttribute('aria-current', 'page')
    else a.removeAttribute('aria-current')
  }
  document.title = `${$(`#view-${render} h1`).textContent} · keygate admin`
  try {
    await views[render].render(route)
  } catch (error) {
    if (!(error instanceof ApiFailure)) throw error
    if (error.status !== 401) pageAlert(error.message)
  } finally {
    if (state.csrf) restoreFocus()
  }
}

/** Follows the hash; an alert outlives only the navigation that explains it (see go). */
export function wireRouter() {
  window.addEventListener('hashchange', () => {
    if (!keepAlert) clearPageAlert()
    keepAlert = false
    renderRoute()
  })
}
