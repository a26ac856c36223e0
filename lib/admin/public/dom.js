// DOM helpers of the admin page. Everything the page shows is built with DOM calls
// (textContent), never innerHTML; user data is isolated against bidi tricks.

import { keepFocus } from './focus.js'

export const $ = (sel, root = document) => root.querySelector(sel)

export const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel))

/**
 * Bidirectional control characters: invisible, yet they reorder the text around them (a
 * description could make "…abc" read as "cba…" or move a neighbouring column's text).
 */
const BIDI_CONTROLS = /[\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069]/g

/** `text` with every bidi control character replaced by a visible `<U+202E>`. */
function shown(text) {
  return String(text).replace(BIDI_CONTROLS, (c) => `<U+${c.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')}>`)
}

/** Attributes whose value is shown to people (the others, e.g. `value`, must stay exact). */
const TEXT_ATTRIBUTES = new Set(['aria-label', 'title', 'placeholder', 'label'])

/** Elements whose text is shown as plain text: they cannot hold a <bdi>. */
const PLAIN_TEXT_TAGS = new Set(['option', 'title', 'textarea'])

/**
 * An element. Every string goes through shown(); strings with non-ASCII characters are
 * also isolated in a <bdi>, so right-to-left text cannot reorder what surrounds them.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag)
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue
    if (k === 'class') el.className = v
    else if (k === 'text') el.textContent = shown(v)
    else if (k === 'dataset') Object.assign(el.dataset, v)
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v)
    else el.setAttribute(k, v === true ? '' : TEXT_ATTRIBUTES.has(k) ? shown(v) : String(v))
  }
  const plain = PLAIN_TEXT_TAGS.has(tag)
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue
    el.append(c instanceof Node ? c : plain ? shown(c) : isolated(String(c)))
  }
  return el
}

/** Adds an <option> to `select` for each of `values` (default: all), labelled from `labels`. */
export function addOptions(select, labels, values = Object.keys(labels)) {
  select.append(...values.map((value) => h('option', { value }, labels[value])))
}

/** A string as a node: a <bdi> when it holds anything but ASCII, else a text node. */
export function isolated(text) {
  if (!/[^\x00-\x7f]/.test(text)) return text
  const bdi = document.createElement('bdi')
  bdi.textContent = shown(text)
  return bdi
}

/** Under an input: says so, and shows the text with them visible, when it holds bidi control characters. */
export function noteBidi(input, note) {
  const has = /[\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069]/.test(input.value)
  setText(note, has ? 'Holds invisible direction characters: ' : '', has ? isolated(input.value) : '')
  note.hidden = !has
}

/** Sets the text of `el` from parts: fixed strings, and user data isolated by isolated(). */
export function setText(el, ...parts) {
  el.replaceChildren(...parts.map((p) => (p instanceof Node ? p : isolated(String(p)))))
}

export function show(el, visible = true) {
  el.hidden = !visible
}

export function setError(el, message) {
  setText(el, message || '')
  el.hidden = !message
}

let toastTimer

export function toast(message) {
  const el = $('#toast')
  setText(el, message)
  el.classList.add('visible')
  clearTimeout(toastTimer)
  toastTimer = setTimeout(() => el.classList.remove('visible'), 4000)
}

export function pageAlert(message) {
  const el = $('#page-alert')
  el.replaceChildren(
    h('span', { class: 'alert-text' }, message),
    h('button', { type: 'button', class: 'btn btn-quiet btn-small', 'aria-label': 'Dismiss', onclick: () => dismiss(el) }, '✕'),
  )
  show(el, true)
}

/** Hides the alert; focus, on its Dismiss button, goes to the screen's heading rather than to the top of the page. */
function dismiss(el) {
  show(el, false)
  keepFocus(null)
}

export function clearPageAlert() {
  show($('#page-alert'), false)
}

export function confirmDialog({ title, text, ok }) {
  const dlg = $('#dlg-confirm')
  setText($('#confirm-title'), title)
  setText($('#confirm-text'), text)
  $('#confirm-ok').textContent = ok
  dlg.returnValue = ''
  return new Promise((resolve) => {
    dlg.addEventListener('close', () => resolve(dlg.returnValue === 'ok'), { once: true })
    dlg.showModal()
    $('#confirm-cancel').focus()
  })
}
