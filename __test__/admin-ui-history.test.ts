/// <reference lib="dom" />
// The admin page and the browser's history, in Debian's chromium (as admin-ui.test.ts) with
// its back/forward cache on (playwright turns it off by default): a page left and come back to
// with Back is the page as it was, so what must be shown once has to go when the page is left.
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'

import type { Page } from 'playwright-core'

import { KeyStore } from '../index.js'
import { adminPageOn, browserSuite } from './support/browser.js'
import type { AdminPage } from './support/browser.js'

browserSuite('admin page and the back/forward cache (chromium)', () => {
  let store: KeyStore
  let admin: AdminPage
  let url: string
  let page: Page

  before(async () => {
    store = KeyStore.inMemory()
    store.putUser({ id: 'svc-history', status: 'active', rights: [], roles: [] })
    admin = await adminPageOn(store, { backForwardCache: true })
    url = admin.url
    page = admin.page
  })

  after(async () => {
    await admin?.close()
    store?.close()
  })

  /** Leaves the page for another document and comes back with Back; asserts the page came from the cache. */
  async function leaveAndComeBack(): Promise<void> {
    await page.evaluate('window.keptInCache = true')
    await page.goto(`${url}/favicon.svg`)
    // A page restored from the cache fires no load event.
    await page.goBack({ waitUntil: 'commit' })
    await page.locator('#topbar').waitFor()
    assert.equal(await page.evaluate('window.keptInCache'), true, 'the page came back from the back/forward cache')
  }

  test('the new secret is not shown again when the admin leaves the page and comes back with Back', async () => {
    await page.getByRole('button', { name: 'Create an API key' }).click()
    await page.locator('#dlg-create').getByRole('button', { name: 'Create', exact: true }).click()
    const secretDialog = page.locator('#dlg-secret')
    await secretDialog.waitFor()
    const secret = await secretDialog.getByLabel('Secret').inputValue()
    assert.match(secret, /^kg_/)
    await leaveAndComeBack()
    assert.equal(await secretDialog.isVisible(), false, 'the secret dialog is closed')
    assert.equal(await page.locator('#secret-value').inputValue(), '')
    assert.ok(!(await page.content()).includes(secret.slice(3)), 'the secret is nowhere in the page')
  })

  test('a secret typed in the try box is gone too', async () => {
    await page.getByRole('link', { name: 'Try a call' }).click()
    const field = page.locator('#try-form').getByLabel('Secret', { exact: true })
    await field.fill('kg_typed-by-the-admin')
    await leaveAndComeBack()
    assert.equal(await field.inputValue(), '')
  })
})
