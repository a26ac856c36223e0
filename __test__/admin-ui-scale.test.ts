/// <reference lib="dom" />
// The admin page with many keys, in Debian's chromium (as admin-ui.test.ts): the key list
// draws a page of rows at a time, so a store of 100,000 keys stays usable; the search still
// finds keys that are not drawn.
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'

import type { Page } from 'playwright-core'

import { KeyStore } from '../index.js'
import { adminPageOn, browserSuite } from './support/browser.js'
import type { AdminPage } from './support/browser.js'

const KEYS = 1_100
const PAGE_ROWS = 500

browserSuite('admin page with many keys (chromium)', () => {
  let store: KeyStore
  let admin: AdminPage
  let page: Page
  const ids: string[] = []

  before(async () => {
    store = KeyStore.inMemory()
    store.putUser({ id: 'svc-bulk', status: 'active', rights: [], roles: [] })
    const expiresAt = new Date(Date.now() + 30 * 86_400_000)
    for (let i = 0; i < KEYS; i++) ids.push(store.createKey({ userId: 'svc-bulk', description: `bulk key ${i}`, expiresAt }).key.id)
    admin = await adminPageOn(store, { timeoutMs: 20_000 })
    page = admin.page
  })

  after(async () => {
    await admin?.close()
    store?.close()
  })

  test('the key list draws a page of rows at a time; the rest on request, keyboard focus kept in the list', async () => {
    const more = page.getByRole('button', { name: /^Show 500 more/ })
    await more.waitFor()
    await page.locator('#keys-count').getByText(`${KEYS} keys`).waitFor()
    assert.equal(await page.locator('tr[data-key-id]').count(), PAGE_ROWS)
    assert.equal(await more.textContent(), `Show ${PAGE_ROWS} more (${PAGE_ROWS} of ${KEYS} shown)`)
    await more.click()
    await page.getByRole('button', { name: `Show ${KEYS - 2 * PAGE_ROWS} more (${2 * PAGE_ROWS} of ${KEYS} shown)` }).click()
    await page.getByRole('button', { name: /^Show \d+ more/ }).waitFor({ state: 'detached' })
    assert.equal(await page.locator('tr[data-key-id]').count(), KEYS)
    const focused = await page.evaluate('document.activeElement?.getAttribute("aria-label")')
    assert.match(String(focused), /^Open key key_/, 'focus moves to the first row added, not to the page')
  })

  test('the search finds a key that was not drawn, and a new search starts again at the first page', async () => {
    await page.reload()
    await page.getByRole('button', { name: /^Show 500 more/ }).waitFor()
    const last = ids.at(-1)!
    const listed = (await page.locator('tr[data-key-id]').evaluateAll((rows) => rows.map((r) => (r as HTMLElement).dataset.keyId))) as string[]
    assert.ok(!listed.includes(last) || !listed.includes(ids[0]!), 'some key is not drawn')
    const hidden = listed.includes(last) ? ids[0]! : last
    await page.getByLabel(/Search/).fill(hidden)
    await page.locator(`tr[data-key-id="${hidden}"]`).waitFor()
    assert.equal(await page.locator('tr[data-key-id]').count(), 1)
    await page.getByLabel(/Search/).fill('bulk key')
    await page.locator('#keys-count').getByText(`${KEYS} keys`).waitFor()
    assert.equal(await page.locator('tr[data-key-id]').count(), PAGE_ROWS)
  })
})
