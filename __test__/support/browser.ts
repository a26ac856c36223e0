// The admin page's browser tests: Debian's Chromium driven by playwright-core (no browser
// download). Without Chromium the suites are skipped, saying how to install it.
import { describe, test } from 'node:test'
import { existsSync } from 'node:fs'

import { chromium } from 'playwright-core'
import type { Browser, Page } from 'playwright-core'

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
