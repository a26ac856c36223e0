// Running an action of a screen: its failure shown where it belongs, and a stale page
// (another tab or admin changed or deleted the thing) refreshed with a clear word.

import { $$, pageAlert, setError } from './dom.js'
import { ApiFailure, GONE, isStale } from './api.js'
import { renderRoute } from './router.js'

/** Run after a stale refresh (`gone`: the thing was deleted), e.g. to reload an open dialog. */
const refreshers = []

export function afterStaleRefresh(callback) {
  refreshers.push(callback)
}

/**
 * An action failed because the page was stale (another tab or admin changed or deleted the
 * thing): say so clearly and show the current data.
 */
export async function staleRefresh(error) {
  const gone = GONE.has(error.code)
  const text = error.message.charAt(0).toUpperCase() + error.message.slice(1)
  const message = gone ? `${text}: it was deleted in another tab or by another admin. The list has been refreshed.` : `${text}. The page now shows the current data.`
  if (gone) {
    for (const d of $$('dialog[open]')) if (d.id !== 'dlg-secret') d.close()
  }
  pageAlert(message)
  await renderRoute()
  for (const refresh of refreshers) await refresh(gone)
}

/** Runs an action; shows failures in `errorEl` (or the page), and refreshes when stale. */
export async function attempt(fn, errorEl) {
  try {
    if (errorEl) setError(errorEl, '')
    return await fn()
  } catch (error) {
    if (!(error instanceof ApiFailure)) throw error
    if (error.status === 401) return undefined
    if (isStale(error)) {
      await staleRefresh(error)
      if (errorEl && !GONE.has(error.code)) setError(errorEl, error.message)
      return undefined
    }
    if (errorEl) setError(errorEl, error.message)
    else pageAlert(error.message)
    return undefined
  }
}
