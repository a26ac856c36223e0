// Signing in to an admin server as a script does: the token, then the session cookie and CSRF token.
import assert from 'node:assert/strict'

import type { AdminServer } from '../../lib/admin/server.js'

/** Logs in to `server` with `token`; the headers of a change (JSON, session cookie, CSRF token). */
export async function loginHeaders(server: AdminServer, token: string): Promise<Record<string, string>> {
  const login = await fetch(`${server.url}/api/login`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ token }) })
  assert.equal(login.status, 200)
  const csrf = ((await login.json()) as { csrfToken: string }).csrfToken
  return { Cookie: (login.headers.get('set-cookie') ?? '').split(';')[0]!, 'X-CSRF-Token': csrf, 'Content-Type': 'application/json' }
}
