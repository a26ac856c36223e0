// What the page knows of the session and the store, shared by every screen.

export const DAY_MS = 86_400_000

export const state = {
  /** @type {string | null} */
  csrf: null,
  offset: 0, // server clock − browser clock
  maxLifetimeDays: 730,
  actor: 'web:admin',
  /** @type {import('./wire.js').UserRow[]} */
  users: [],
  /** @type {import('./wire.js').RoleJson[]} */
  roles: [],
  /** @type {import('./wire.js').KeyJson[]} */
  keys: [],
  route: { name: '', arg: '', params: new URLSearchParams() },
  /** @type {import('./wire.js').KeyJson | null} the key shown in the details dialog */
  detail: null,
  /** @type {string[] | null} */
  auditActions: null,
}

export function nowMs() {
  return Date.now() + state.offset
}
