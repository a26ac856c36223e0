/// <reference lib="dom" />
// WebDAV rules on the admin page (`keygate serve`), in a real browser (Debian's chromium driven
// by playwright-core, as in admin-ui.test.ts): the rules boxes accept dav= rules, the ? lists
// WebDAV examples, and "try a call" tries a WebDAV request by secret and by key id.
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'

import type { Browser, Page } from 'playwright-core'

import { serve } from '../lib/admin/serve.js'
import type { Serving } from '../lib/admin/serve.js'
import { ADMIN_TOKEN, browserSuite, desktopPage, launchChromium, logIn } from './support/browser.js'

const DAY = 86_400_000

browserSuite('WebDAV on the admin page', () => {
  let dir: string
  let serving: Serving
  let browser: Browser
  let page: Page
  let secret = ''
  let keyId = ''
  const pageErrors: string[] = []

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'keygate-admin-dav-'))
    serving = await serve({ db: path.join(dir, 'keygate.db'), port: 0, token: ADMIN_TOKEN, handleSignals: false, print: () => {} })
    const { store } = serving
    store.putUser({ id: 'svc-files', rights: ['session:*', 'dav=* *'] })
    const issued = store.createKey({
      userId: 'svc-files',
      description: 'notes reader',
      expiresAt: new Date(Date.now() + 30 * DAY),
      rules: ['dav=GET session/*', 'dav=PROPFIND docs/*'],
    })
    secret = issued.secret
    keyId = issued.key.id
    browser = await launchChromium()
    page = await desktopPage(browser)
    page.on('pageerror', (e) => pageErrors.push(String(e)))
    await logIn(page, serving.url, ADMIN_TOKEN)
  })

  after(async () => {
    await browser?.close()
    await serving?.close()
    if (dir) rmSync(dir, { recursive: true, force: true })
    assert.deepEqual(pageErrors, [])
  })

  test('the rules box accepts WebDAV rules, names a bad one, and the ? adds WebDAV examples', async () => {
    await page.getByRole('button', { name: 'Create an API key' }).click()
    const dlg = page.locator('#dlg-create')
    const rules = dlg.getByLabel(/^Rules/)
    await rules.fill('dav=GET session/*\ndav=GET docs/../secret\nip=10.0.0.0/8')
    await dlg.getByText(/Line 2: invalid rule "dav=GET docs\/\.\.\/secret"/).waitFor()
    assert.equal(await rules.getAttribute('aria-invalid'), 'true')
    await rules.fill('dav=GET session/*\nip=10.0.0.0/8')
    await dlg.getByText('2 rules, all valid').waitFor()
    await dlg.getByRole('button', { name: 'Example rules' }).click()
    const help = page.locator('#dlg-help')
    await help.getByText('dav=GET session/*', { exact: true }).waitFor()
    await help.getByRole('button', { name: 'Add rule dav=PROPFIND docs/*' }).click()
    await help.waitFor({ state: 'hidden' })
    assert.equal(await rules.inputValue(), 'dav=GET session/*\nip=10.0.0.0/8\ndav=PROPFIND docs/*')
    await dlg.getByText('3 rules, all valid').waitFor()
    await page.keyboard.press('Escape')
    await dlg.waitFor({ state: 'hidden' })
  })

  test("a user's rights take WebDAV rules, not IP rules", async () => {
    await page.getByRole('link', { name: 'Users' }).click()
    await page.getByRole('button', { name: 'New user' }).click()
    const dlg = page.locator('#dlg-user')
    await dlg.getByLabel('User id').fill('svc-docs')
    const rights = dlg.getByLabel(/^Rights/)
    await rights.fill('dav=PROPFIND docs/*\nip=10.0.0.0/8')
    await dlg.getByText(/Line 2: .*API and WebDAV rules only/).waitFor()
    await rights.fill('dav=PROPFIND docs/*\ndav=get docs/reports/*')
    await dlg.getByText('2 rules, all valid').waitFor()
    await dlg.getByRole('button', { name: 'Create user' }).click()
    await page.locator('tr[data-user-id="svc-docs"]').waitFor()
    assert.deepEqual(serving.store.getUser('svc-docs')?.rights, ['dav=PROPFIND docs/*', 'dav=GET docs/reports/*'])
  })

  test('"try a call" tries a WebDAV request: by secret, then by key id', async () => {
    await page.getByRole('link', { name: 'Try a call' }).click()
    const form = page.locator('#try-form')
    await form.getByLabel(/a WebDAV request/).check()
    assert.equal(await form.getByLabel('Service', { exact: true }).isVisible(), false, 'the API fields are hidden')
    await form.getByLabel('Secret', { exact: true }).fill(secret)
    await form.getByRole('button', { name: 'Check' }).click()
    await page
      .locator('#try-error')
      .getByText(/Give the method and the path/)
      .waitFor()
    await form.getByLabel('Method', { exact: true }).fill('GET')
    await form.getByLabel('Path', { exact: true }).fill('session/notes.txt')
    await form.getByRole('button', { name: 'Check' }).click()
    const result = page.locator('#try-result')
    await result.locator('[data-reason="allowed"]').getByText('✓ Allowed').waitFor()
    await result.getByText('dav=GET session/*').waitFor()
    await form.getByLabel('Method', { exact: true }).fill('PUT')
    await form.getByRole('button', { name: 'Check' }).click()
    await result.locator('[data-reason="no_matching_rule"]').waitFor()
    await result.getByText('None of the key’s WebDAV rules matches this request.').waitFor()
    await form.getByLabel('Path', { exact: true }).fill('session/../secret.txt')
    await form.getByRole('button', { name: 'Check' }).click()
    await result.locator('[data-reason="invalid_request"]').waitFor()
    await result.getByText(/method or path is not valid/).waitFor()
    // By key id, without the secret: the key's settings decide.
    await form.getByLabel(/a key id/).check()
    await form.getByLabel('Key id', { exact: true }).fill(keyId)
    await form.getByLabel('Method', { exact: true }).fill('propfind')
    await form.getByLabel('Path', { exact: true }).fill('/docs/')
    await form.getByRole('button', { name: 'Check' }).click()
    await result.getByText('dav=PROPFIND docs/*').waitFor()
    await result.locator('[data-reason="allowed"]').waitFor()
    // Back to an API call: the same key has no API rules, so its user's session:* decides.
    await form.getByLabel(/an API call/).check()
    await form.getByLabel('Service', { exact: true }).fill('session')
    await form.getByLabel('API', { exact: true }).fill('getSessionInfo')
    await form.getByRole('button', { name: 'Check' }).click()
    // The new answer has no matched rule: no WebDAV rule decides an API call.
    await result.getByText('dav=PROPFIND docs/*').waitFor({ state: 'detached' })
    await result.locator('[data-reason="allowed"]').waitFor()
    assert.equal(await result.getByText('dav=').count(), 0)
  })

  test('/api/try: a WebDAV request by fetch; an unknown kind is a 400', async () => {
    const login = await fetch(`${serving.url}/api/login`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ token: ADMIN_TOKEN }),
    })
    assert.equal(login.status, 200)
    const cookie =
      login.headers
        .getSetCookie()
        .find((c) => c.startsWith('keygate_sid='))
        ?.split(';')[0] ?? ''
    const { csrfToken } = (await login.json()) as { csrfToken: string }
    const tryCall = (body: object) =>
      fetch(`${serving.url}/api/try`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Cookie: cookie, 'X-CSRF-Token': csrfToken },
        body: JSON.stringify(body),
      })
    const ok = await tryCall({ kind: 'dav', secret, method: 'GET', path: 'session/a.txt' })
    assert.equal(ok.status, 200)
    assert.deepEqual(await ok.json(), {
      mode: 'secret',
      kind: 'dav',
      decision: { allowed: true, reason: 'allowed', keyId, userId: 'svc-files', matchedRule: 'dav=GET session/*' },
    })
    const unknown = await tryCall({ kind: 'ftp', keyId, method: 'GET', path: 'a' })
    assert.equal(unknown.status, 400)
    const text = await unknown.text()
    assert.match(text, /kind must be/)
    assert.ok(!text.includes(secret))
    // The other kind's fields are refused, not ignored: the answer would be for another call.
    for (const [body, message] of [
      [{ kind: 'dav', secret, method: 'GET', path: 'session/a.txt', service: 'session', api: 'x' }, /kind "dav" takes method and path, not service/],
      [{ secret, service: 'session', api: 'x', path: 'session/a.txt' }, /kind "api" takes service and api, not path/],
    ] as const) {
      const refused = await tryCall(body)
      assert.equal(refused.status, 400)
      assert.match(((await refused.json()) as { error: { message: string } }).error.message, message)
    }
  })
})
