// The login screen and the session: who is logged in, the server's clock, logging out.

import { AdminErrorCode } from './constants.js'
import { $, $$, setError, show } from './dom.js'
import { ApiFailure, api, onSessionEnded } from './api.js'
import { state } from './state.js'
import { renderRoute } from './router.js'
import { clearSecretInputs } from './secret.js'

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
  // The tab and the screen reader name the login screen, not the screen it replaced.
  document.title = $('#login-title').textContent ?? ''
  setError($('#login-error'), message || '')
  $('#login-token').focus()
}

/** Shows the app when the browser still has a session, else the login form. */
export async function boot() {
  let info = null
  try {
    const res = await fetch('api/session', { credentials: 'same-origin', cache: 'no-store' })
    if (res.ok) info = await res.json()
  } catch {
    /* shown as the login screen */
  }
  if (info?.authenticated) {
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

export function wireLogin() {
  onSessionEnded(loggedOut)
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
      setError($('#login-error'), error.code === AdminErrorCode.BadToken ? 'Wrong admin token.' : error.message)
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
}
