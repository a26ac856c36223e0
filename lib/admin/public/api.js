// The page's client of the admin API: JSON over fetch, relative to the page's URL, with the
// session's CSRF token on every change.

import { AdminErrorCode, ErrorCode } from './constants.js'
import { state } from './state.js'

/** Called when the server says the session has ended (set by the login screen). */
let sessionEnded = (_message) => {}

export function onSessionEnded(callback) {
  sessionEnded = callback
}

export class ApiFailure extends Error {
  constructor(status, code, message) {
    super(message)
    this.status = status
    this.code = code
  }
}

export async function api(method, path, body, retried = false) {
  const headers = { Accept: 'application/json' }
  /** @type {RequestInit} */
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
  const error = data?.error || { code: `HTTP_${res.status}`, message: `${res.status} ${res.statusText}` }
  if (res.status === 401 && path !== '/api/login') {
    // A change refused for it was not made: said, or a revoke clicked just after the session
    // ended would look done once the admin had logged in again.
    sessionEnded(method === 'GET' ? 'Your session has ended; log in again.' : 'Your session has ended, so your last change was not made: log in again and make it again.')
  } else if (res.status === 403 && error.code === AdminErrorCode.Csrf && !retried) {
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

export const GONE = new Set([ErrorCode.UnknownKey, ErrorCode.UnknownUser, ErrorCode.UnknownRole])

const CHANGED = new Set([AdminErrorCode.KeyChanged, ErrorCode.Conflict, ErrorCode.RevokedIsFinal, AdminErrorCode.AlreadyExists])

export function isStale(error) {
  return error instanceof ApiFailure && (GONE.has(error.code) || CHANGED.has(error.code))
}
