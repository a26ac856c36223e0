// The admin page's browser tests: Debian's Chromium driven by playwright-core (no browser
// download). Without Chromium the suites are skipped, saying how to install it.
import { describe, test } from 'node:test'
import { existsSync } from 'node:fs'

import { chromium } from 'playwright-core'
import type { Browser, Page } from 'playwright-core'

import type { KeyStore } from '../../index.js'
import { createAdminServer } from '../../lib/admin/server.js'
import type { AdminServer } from '../../lib/admin/server.js'

/** Debian's chromium; KEYGATE_CHROMIUM points elsewhere (e.g. to a missing file, to see the suites skipped). */
export const CHROMIUM = process.env.KEYGATE_CHROMIUM || '/usr/bin/chromium'
export const NO_BROWSER: string | false = existsSync(CHROMIUM)
  ? false
  : `no Chromium at ${CHROMIUM}: install Debian's chromium (apt-get install -y chromium) to run the browser tests`

/**
 * A suite that needs the browser. Without one it is a single skipped test carrying the
 * reason: node:test leaves a skipped describe out of the summary's "skipped" count.
 */
export function browserSuite(name: string, body: () => void): void {
  if (NO_BROWSER) test(name, { skip: NO_BROWSER }, () => {})
  else describe(name, body)
}

/**
 * Chromium, headless and quiet (no network of its own). `backForwardCache`: keep the cache
 * that playwright turns off by default (for tests of what a page restored from it shows).
 */
export function launchChromium({ backForwardCache = false } = {}): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    ...(backForwardCache ? { ignoreDefaultArgs: ['--disable-back-forward-cache'] } : {}),
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  })
}

/** A page in a fresh desktop-sized context (1280 × 860) whose waits give up after `timeoutMs`. */
export async function desktopPage(browser: Browser, timeoutMs = 10_000): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } })
  context.setDefaultTimeout(timeoutMs)
  return context.newPage()
}

/** Opens the admin page at `url` and logs in with `token`, up to the key list. */
export async function logIn(page: Page, url: string, token: string): Promise<void> {
  await page.goto(url)
  await page.getByLabel('Admin token').fill(token)
  await page.getByRole('button', { name: 'Log in' }).click()
  await page.getByRole('heading', { name: 'API keys' }).waitFor()
}

/** The admin token the browser suites log in with. */
export const ADMIN_TOKEN = 'test-admin-token-0123456789abcdef'

export interface BrowserOptions {
  /** Keep Chromium's back/forward cache (see `launchChromium`). */
  backForwardCache?: boolean
  /** How long the page's waits wait (default 10 s). */
  timeoutMs?: number
}

/** Chromium, a desktop page in it, logged in with `token` to the admin page at `url`. */
export async function loggedInBrowser(
  url: string,
  token: string,
  { backForwardCache = false, timeoutMs }: BrowserOptions = {},
): Promise<{ browser: Browser; page: Page }> {
  const browser = await launchChromium({ backForwardCache })
  try {
    const page = await desktopPage(browser, timeoutMs)
    await logIn(page, url, token)
    return { browser, page }
  } catch (error) {
    // A suite whose `before` fails runs no `after` with the browser: close it here.
    await browser.close()
    throw error
  }
}

export interface AdminPage {
  server: AdminServer
  url: string
  browser: Browser
  page: Page
  /** Closes the browser and the server (not the store, which the suite made). */
  close(): Promise<void>
}

/** An admin server on `store` (token ADMIN_TOKEN, any free port), and Chromium logged in to its page. */
export async function adminPageOn(store: KeyStore, options: BrowserOptions = {}): Promise<AdminPage> {
  const server = createAdminServer({ store, token: ADMIN_TOKEN, port: 0, log: () => {} })
  const url = await server.listen()
  try {
    const { browser, page } = await loggedInBrowser(url, ADMIN_TOKEN, options)
    const close = async (): Promise<void> => {
      await browser.close()
      await server.close()
    }
    return { server, url, browser, page, close }
  } catch (error) {
    await server.close()
    throw error
  }
}
