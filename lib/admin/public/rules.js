// Rules textareas: live validation by the server (exactly keygate's parser) and the
// example rules dialog (the ? next to each textarea).

import { $, $$, h } from './dom.js'
import { api } from './api.js'
import { lines } from './format.js'

const EXAMPLE_RULES = [
  ['session:*', 'every API of the session service'],
  ['session:getSessionInfo', 'one API'],
  ['session:get*', 'session APIs starting with “get”'],
  ['data:entityBrowseRecords2', 'browsing entity records'],
  ['data:entity???Record', '? is exactly one character: entityAddRecord, entityGetRecord…'],
  ['apps/com.hornbill.core/Achievement:*', 'every API of one app service'],
  ['apps/com.hornbill.core:addHistory', 'one API of an app'],
  ['apps/com.hornbill.servicemanager/Requests:holdRequest', 'one API of an app service'],
  ['*:userLogon', 'userLogon in any service'],
  ['dav=GET session/*', 'WebDAV: reading any file under session/'],
  ['dav=PROPFIND docs/*', 'WebDAV: listing the docs folder and everything in it'],
  ['dav=* docs/reports/*', 'WebDAV: any method (PUT, MKCOL, MOVE…) under docs/reports/'],
  ['ip=142.250.200.46', 'only calls from this address (keys only)'],
  ['ip=142.250.200.0/24', 'only calls from this network (keys only)'],
  ['ip=2001:db8::/32', 'an IPv6 network (keys only)'],
]

/** Live validation of a rules textarea (server-side, so it is exactly keygate's parser). */
export function ruleChecker(textarea, output, kind) {
  let timer
  let seq = 0
  /** @type {import('./wire.js').RuleCheck} */
  let last = { ok: true, rules: [], errors: [] }
  async function run() {
    const mine = ++seq
    const data = await api('POST', '/api/rules/validate', { lines: lines(textarea.value), kind })
    if (mine !== seq) return last
    last = data
    draw()
    return data
  }
  function draw() {
    const bad = last.errors.length > 0
    textarea.setAttribute('aria-invalid', bad ? 'true' : 'false')
    if (bad) {
      output.className = 'rule-check bad'
      output.replaceChildren(
        h(
          'ul',
          {},
          last.errors.map((e) => h('li', {}, e.line > 0 ? `Line ${e.line}: ${e.message}` : e.message)),
        ),
      )
    } else {
      output.className = 'rule-check ok'
      const n = last.rules.length
      output.textContent =
        n > 0
          ? `✓ ${n} ${n === 1 ? 'rule' : 'rules'}, all valid.`
          : kind === 'rights'
            ? 'No rights of its own: the account may call only what its roles grant.'
            : 'No rules: the key may call whatever its user account may call.'
    }
  }
  textarea.addEventListener('input', () => {
    clearTimeout(timer)
    timer = setTimeout(() => run().catch(() => {}), 200)
  })
  return {
    /** Validates now (before a submit). */
    async check() {
      clearTimeout(timer)
      try {
        return await run()
      } catch {
        return { ok: true, rules: [], errors: [] } // the server checks again on submit
      }
    },
    reset() {
      clearTimeout(timer)
      seq++
      last = { ok: true, rules: [], errors: [] }
      output.className = 'rule-check'
      output.textContent = ''
      textarea.removeAttribute('aria-invalid')
    },
    show(data) {
      last = data
      draw()
    },
  }
}

let helpTarget = null

function openHelp(targetId) {
  helpTarget = document.getElementById(targetId)
  const rights = targetId !== 'create-rules' && targetId !== 'key-rules'
  const rows = EXAMPLE_RULES.filter(([rule]) => !(rights && rule.startsWith('ip='))).map(([rule, meaning]) =>
    h(
      'tr',
      {},
      h('td', {}, h('code', {}, rule)),
      h('td', {}, meaning),
      h(
        'td',
        {},
        helpTarget && !helpTarget.closest('fieldset:disabled')
          ? h('button', { type: 'button', class: 'btn btn-small', 'aria-label': `Add rule ${rule}`, onclick: () => addExample(rule) }, 'Add')
          : null,
      ),
    ),
  )
  $('#help-rows').replaceChildren(...rows)
  $('#dlg-help').showModal()
}

function addExample(rule) {
  if (!helpTarget) return
  const text = helpTarget.value.replace(/\s+$/, '')
  helpTarget.value = text ? `${text}\n${rule}` : rule
  helpTarget.dispatchEvent(new Event('input', { bubbles: true }))
  $('#dlg-help').close()
  helpTarget.focus()
}

/** The ? buttons next to the rules textareas open the example rules. */
export function wireRuleHelp() {
  for (const b of $$('[data-help]')) b.addEventListener('click', () => openHelp(b.dataset.help))
}
