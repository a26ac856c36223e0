/// <reference lib="dom" />
// The admin page with many keys, in Debian's chromium (as admin-ui.test.ts): the key list asks
// the server for a page of keys at a time, so a store of 100,000 keys neither stalls the server
// nor the page; the search runs in the store and finds keys beyond the pages asked for.
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

  /** The `GET /api/keys` the page asks from now on, as query parameters. */
  function keysAsked(): URLSearchParams[] {
    const asked: URLSearchParams[] = []
    page.on('request', (request) => {
      const url = new URL(request.url())
      if (url.pathname.endsWith('/api/keys')) asked.push(url.searchParams)
    })
    return asked
  }

  const rowIds = () => page.locator('tr[data-key-id]').evaluateAll((rows) => rows.map((r) => (r as HTMLElement).dataset.keyId)) as Promise<string[]>

  test('the first paint asks the server for one page of keys; "Show more" asks for the next, keyboard focus kept in the list', async () => {
    const asked = keysAsked()
    await page.reload()
    const more = page.getByRole('button', { name: 'Show more keys' })
    await more.waitFor()
    await page.locator('#keys-count').getByText(`${PAGE_ROWS} keys shown, more on request`).waitFor()
    assert.deepEqual(
      asked.map((q) => q.toString()),
      [`limit=${PAGE_ROWS}`],
      'one page, not every key',
    )
    const newestFirst = [...ids].reverse()
    assert.deepEqual(await rowIds(), newestFirst.slice(0, PAGE_ROWS))
    await more.click()
    await page
      .locator('#keys-count')
      .getByText(`${2 * PAGE_ROWS} keys shown, more on request`)
      .waitFor()
    assert.equal(asked.length, 2)
    assert.equal(asked[1]!.get('limit'), String(PAGE_ROWS))
    assert.match(asked[1]!.get('after') ?? '', /^kp1\./, 'the next page is asked from the cursor')
    await more.click()
    await more.waitFor({ state: 'detached' })
    // The last page is in: now the count is a total.
    await page.locator('#keys-count').getByText(`${KEYS} keys`, { exact: true }).waitFor()
    assert.deepEqual(await rowIds(), newestFirst)
    const focused = await page.evaluate('document.activeElement?.getAttribute("aria-label")')
    assert.equal(focused, `Open key ${newestFirst[2 * PAGE_ROWS]}`, 'focus moves to the first row added, not to the page')
  })

  test('the search runs in the store: it finds a key beyond the first page, in any letter case, asked once typing pauses', async () => {
    await page.reload()
    await page.getByRole('button', { name: 'Show more keys' }).waitFor()
    const asked = keysAsked()
    const oldest = ids[0]!
    assert.ok(!(await rowIds()).includes(oldest), 'the oldest key is not in the first page')
    await page.getByLabel(/Search/).fill(oldest.toLowerCase())
    await page.locator(`tr[data-key-id="${oldest}"]`).waitFor()
    await page.locator('#keys-count').getByText('1 key', { exact: true }).waitFor()
    assert.equal(await page.locator('tr[data-key-id]').count(), 1)
    assert.equal(asked.at(-1)!.get('search'), oldest.toLowerCase())
    // Typed a character at a time: asked when the typing pauses, not at every character.
    const before = asked.length
    await page.getByLabel(/Search/).fill('')
    await page.getByLabel(/Search/).pressSequentially('BULK KEY 7', { delay: 20 })
    // bulk key 7, 70–79, 700–799.
    await page.locator('#keys-count').getByText('111 keys', { exact: true }).waitFor()
    assert.ok(asked.length - before <= 3, `asked ${asked.length - before} times for one typed search`)
    assert.equal(asked.at(-1)!.get('search'), 'BULK KEY 7')
    assert.equal(await page.getByRole('button', { name: 'Show more keys' }).count(), 0, 'no more to show')
    // A search matching more than a page pages too.
    await page.getByLabel(/Search/).fill('bulk key')
    await page.locator('#keys-count').getByText(`${PAGE_ROWS} keys shown, more on request`).waitFor()
    assert.equal(await page.locator('tr[data-key-id]').count(), PAGE_ROWS)
    await page.getByRole('button', { name: 'Show more keys' }).click()
    await page
      .locator('#keys-count')
      .getByText(`${2 * PAGE_ROWS} keys shown, more on request`)
      .waitFor()
    assert.equal(asked.at(-1)!.get('search'), 'bulk key')
    assert.ok(asked.at(-1)!.has('after'))
  })

  test('"Show more" pressed while a typed search waits goes on with the listing shown, then the search replaces it', async () => {
    await page.reload()
    const more = page.getByRole('button', { name: 'Show more keys' })
    await more.waitFor()
    const asked = keysAsked()
    // Typed, then "Show more" before the search is asked (it waits for typing to pause).
    // In one task of the page, so the click always comes within the pause (a busy machine
    // delayed a separate click past it).
    await page.evaluate(() => {
      const box = document.querySelector('#filter-text') as HTMLInputElement
      box.value = 'bulk key 1'
      box.dispatchEvent(new Event('input', { bubbles: true }))
      const button = [...document.querySelectorAll('button')].find((b) => b.textContent === 'Show more keys')
      if (button === undefined) throw new Error('no "Show more keys" button')
      button.click()
    })
    // bulk key 1, 10–19, 100–199, 1000–1099.
    await page.locator('#keys-count').getByText('211 keys', { exact: true }).waitFor()
    const paged = asked.find((q) => q.has('after'))
    assert.ok(paged, 'the next page was asked')
    assert.equal(paged.get('search'), null, "the next page is the shown listing's, not the typed search's with that listing's cursor")
    assert.equal(asked.at(-1)!.get('search'), 'bulk key 1')
    const shown = await page.locator('tr[data-key-id] td.desc').allTextContents()
    assert.equal(shown.length, 211)
    assert.ok(
      shown.every((d) => d.startsWith('bulk key 1')),
      'only the search',
    )
  })

  test('the try screen suggests a page of keys, searched by what the key id field holds, never every key', async () => {
    const asked = keysAsked()
    await page.goto(`${admin.url}#/try`)
    await page.locator('#try-key-list option').first().waitFor({ state: 'attached' })
    assert.equal(await page.locator('#try-key-list option').count(), 50)
    assert.ok(asked.length > 0 && asked.every((q) => q.get('limit') === '50'), asked.map(String).join(' '))
    await page.locator('#try-form input[name=mode][value=key]').check()
    await page.locator('#try-key').fill(ids[0]!)
    // The page's policy allows no evaluated script (waitForFunction): wait for the second option to go.
    await page.locator('#try-key-list option').nth(1).waitFor({ state: 'detached' })
    assert.equal(await page.locator('#try-key-list option').count(), 1)
    assert.equal(asked.at(-1)!.get('search'), ids[0])
    assert.equal(await page.locator('#try-key-list option').getAttribute('value'), ids[0])
  })

  test("a secret pasted in the search box or the try screen's key id field is never sent in an address (a proxy logs the query)", async () => {
    const { secret } = store.createKey({ userId: 'svc-bulk', description: 'pasted', expiresAt: new Date(Date.now() + 86_400_000) })
    try {
      const urls: string[] = []
      page.on('request', (request) => urls.push(request.url()))
      await page.goto(`${admin.url}#/keys`)
      await page.reload()
      await page.getByRole('button', { name: 'Show more keys' }).waitFor()
      for (const typed of [secret, ` ${secret} `, `for ${secret.toUpperCase()} and`]) {
        await page.getByLabel(/Search/).fill(typed)
        await page.getByText(/looks like a secret/).waitFor()
        await page.getByLabel(/Search/).press('Enter')
        assert.equal(await page.locator('tr[data-key-id]').count(), 0)
      }
      await page.goto(`${admin.url}#/try`)
      await page.locator('#try-key-list option').first().waitFor({ state: 'attached' })
      await page.locator('#try-form input[name=mode][value=key]').check()
      await page.locator('#try-key').fill(secret)
      await page.locator('#try-key-list option').first().waitFor({ state: 'detached' })
      // What the page asks after a secret-shaped text: the next search is sent as before.
      await page.locator('#try-key').fill('bulk key 1')
      await page.locator('#try-key-list option').first().waitFor({ state: 'attached' })
      const body = secret.slice(secret.indexOf('_') + 1, secret.indexOf('_') + 21)
      const sent = urls.filter((u) => decodeURIComponent(u).toLowerCase().includes(body.toLowerCase()))
      assert.equal(sent.length, 0, `${sent.length} requests carried the secret in their address`)
      assert.ok(
        urls.some((u) => new URL(u).searchParams.get('search') === 'bulk key 1'),
        urls.join(' '),
      )
    } finally {
      page.removeAllListeners('request')
    }
  })
})
