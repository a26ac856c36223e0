// What the page knows of the session and the store, shared by every screen.

export const DAY_MS = 86_400_000

export const state = {
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

export function nowMs() {
  return Date.now() + state.offset
}
