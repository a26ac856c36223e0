// The secret of a new or rotated key, shown once: held only in the dialog's input and
// cleared when it closes.

import { $, isolated, setText } from './dom.js'

/**
 * A secret's shape: a prefix, `_`, then 49 letters and digits. A search holding one is never
 * asked of the server: it would travel in the request's address, which a reverse proxy in front
 * logs, and no key's id, description (a secret is refused there) or hint holds one anyway.
 */
export const SECRET_SHAPE = /[A-Za-z0-9]_[A-Za-z0-9]{49}/

const COPIED = 'Copied to the clipboard.'
const NOT_COPIED = 'The secret is not copied yet. Press Escape again to close without it: it cannot be shown again.'

/**
 * Whether the first Escape of this showing was held back. A secret not yet copied is kept on
 * the first Escape (an accidental one, or a screen reader's own use of the key, would lose it
 * for good) and let go on the second.
 */
let escapeWarned = false

export function showSecret(issued, what) {
  escapeWarned = false
  const dlg = $('#dlg-secret')
  const input = $('#secret-value')
  input.value = issued.secret
  setText($('#secret-for'), `${what === 'rotated' ? 'New key' : 'Key'} `, isolated(issued.key.id), ' for ', isolated(issued.key.userId), `, ending …${issued.key.hint}.`)
  $('#secret-copy-status').textContent = ''
  dlg.showModal()
  $('#secret-copy').focus()
}

function forgetSecret() {
  $('#secret-value').value = ''
  $('#secret-for').textContent = ''
  $('#secret-copy-status').textContent = ''
}

export function clearSecretInputs() {
  $('#secret-value').value = ''
  $('#try-secret').value = ''
}

async function copySecret() {
  const input = $('#secret-value')
  const status = $('#secret-copy-status')
  try {
    await navigator.clipboard.writeText(input.value)
    status.textContent = COPIED
  } catch {
    input.focus()
    input.select()
    let ok = false
    try {
      ok = document.execCommand('copy')
    } catch {
      ok = false
    }
    status.textContent = ok ? COPIED : 'The secret is selected: press Ctrl+C (⌘C on a Mac) to copy it.'
  }
}

export function wireSecret() {
  $('#secret-copy').addEventListener('click', copySecret)
  $('#secret-done').addEventListener('click', () => {
    forgetSecret()
    $('#dlg-secret').close()
  })
  // The secret leaves the page as soon as its dialog closes (Done, or Esc: at once once copied,
  // else at the second, the first announcing what closing loses).
  $('#dlg-secret').addEventListener('close', forgetSecret)
  $('#dlg-secret').addEventListener('cancel', (event) => {
    const status = $('#secret-copy-status')
    if (status.textContent !== COPIED && !escapeWarned) {
      event.preventDefault()
      escapeWarned = true
      status.textContent = NOT_COPIED
      return
    }
    forgetSecret()
  })
  // Leaving the page ends the showing too: the back/forward cache keeps the page as it was, so
  // Back (by anyone at this browser later, or after a logout elsewhere) would show it again.
  window.addEventListener('pagehide', () => {
    forgetSecret()
    clearSecretInputs()
    $('#dlg-secret').close()
  })
}
