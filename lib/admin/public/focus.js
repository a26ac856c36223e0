// Keyboard focus after an action. A screen is redrawn after most actions, and a dialog gives
// focus back to the button that opened it when it closes: when that button was redrawn (its
// row replaced), hidden or deleted, the browser leaves focus on <body>, and a keyboard or
// screen reader user is sent back to the top of the page with no word of where they are.

// No import: dom.js imports this module (the page alert's Dismiss).
const $ = (sel, root = document) => root.querySelector(sel)
const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel))

/** Whether `el` can hold focus now: in the page and shown. */
function focusable(el) {
  return el instanceof HTMLElement && el.isConnected && el.getClientRects().length > 0 && !el.closest('[hidden], dialog:not([open])')
}

/** Whether focus is lost: on <body> (or nowhere), or on an element no longer shown. */
function lost() {
  const el = document.activeElement
  return !el || el === document.body || !focusable(el)
}

/** The element that stands for `el` once its screen was redrawn: the same id, or a shown button or link of the same name. */
function counterpart(el) {
  if (!(el instanceof HTMLElement)) return null
  if (el.id) return document.getElementById(el.id)
  const name = el.getAttribute('aria-label')
  if (!name) return null
  return $$(`${el.tagName.toLowerCase()}[aria-label]`).find((c) => c.getAttribute('aria-label') === name && focusable(c)) ?? null
}

/** The modal dialog on top, if one is open: nothing outside it can take focus. */
function topDialog() {
  const dialogs = $$('dialog[open]')
  return dialogs[dialogs.length - 1] ?? null
}

/** The heading of the screen shown (or of the open dialog on top): where focus goes when nothing better is left. */
function heading() {
  const top = topDialog()
  const h = top ? $('h2', top) : $$('main .view:not([hidden]) h1')[0]
  if (!h) return null
  h.tabIndex = -1
  return h
}

/** Moves focus to `el` when focus is lost (else leaves it where it is). */
export function keepFocus(el) {
  if (!lost()) return
  const top = topDialog()
  const to = el && focusable(el) && (!top || top.contains(el)) ? el : heading()
  to?.focus()
}

/**
 * Call before a screen is redrawn; the returned function, called after, puts focus back where
 * it was if the redraw lost it: on the redrawn element that stands for the one focused, else on
 * `instead()` (the control that took its place, if any), else on the screen's heading.
 * @param {() => Element | null} [instead]
 */
export function holdFocus(instead) {
  const before = document.activeElement
  return () => {
    // Focus may have moved while the screen was redrawn (a dialog closed meanwhile gave it to
    // the list being redrawn): the element focused last stands for what was lost, not `before`.
    const was = latest !== null && latest !== before && !latest.isConnected ? latest : before
    if (!was || was === document.body || !lost()) return
    // Focus was in a dialog that has closed since, its opener redrawn: the opener's
    // counterpart, as the dialog's own close handler gives it, which (when this redraw ends
    // first, on a busy machine) would find focus already moved to the heading and leave it there.
    if (was.closest('dialog:not([open])')) {
      keepFocus(openerNow() ?? instead?.() ?? null)
      return
    }
    const same = counterpart(was)
    keepFocus(same && focusable(same) ? same : (instead?.() ?? null))
  }
}

/** The last element focused outside a dialog: a closing dialog's opener, redrawn meanwhile or not. */
let opener = null
/** The last element focused anywhere. */
let latest = null

/** The opener as shown now: itself, or what stands for it once its screen was redrawn. */
function openerNow() {
  return opener && (focusable(opener) ? opener : counterpart(opener))
}

export function wireFocus() {
  document.addEventListener('focusin', (e) => {
    if (!(e.target instanceof HTMLElement)) return
    latest = e.target
    if (!e.target.closest('dialog')) opener = e.target
  })
  for (const dlg of $$('dialog')) {
    // After the browser has given focus back (to the opener, if it is still shown).
    dlg.addEventListener('close', () => setTimeout(() => keepFocus(openerNow()), 0))
  }
}
