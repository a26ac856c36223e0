// The roles screen and the role dialog.

import { $, confirmDialog, h, isolated, setError, setText, toast } from './dom.js'
import { ApiFailure, api, isStale } from './api.js'
import { state } from './state.js'
import { lines } from './format.js'
import { attempt, staleRefresh } from './actions.js'
import { renderRoute } from './router.js'
import { ruleChecker } from './rules.js'

/** The live check of the rights textarea (set by wireRoles). */
let checker

export async function loadRoles() {
  const data = await api('GET', '/api/roles')
  state.roles = data.roles
  return state.roles
}

export async function renderRoles() {
  const roles = await loadRoles()
  if (roles.length === 0) {
    $('#roles-table').replaceChildren(h('p', { class: 'empty' }, 'No roles yet.'))
    return
  }
  $('#roles-table').replaceChildren(
    h(
      'table',
      { class: 'grid' },
      h('caption', { class: 'sr-only' }, 'Roles'),
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          ['Role', 'Rights', 'User accounts', 'Actions'].map((t) => h('th', { scope: 'col' }, t)),
        ),
      ),
      h(
        'tbody',
        {},
        roles.map((r) =>
          h(
            'tr',
            { dataset: { role: r.name } },
            h('td', { 'data-label': 'Role', class: 'id' }, r.name),
            h('td', { 'data-label': 'Rights', class: 'mono small' }, r.rights.length ? r.rights.join('\n') : h('span', { class: 'muted' }, 'none')),
            h(
              'td',
              { 'data-label': 'User accounts', class: 'id' },
              r.users.length
                ? r.users.flatMap((u, i) => [i ? ', ' : '', h('a', { href: `#/users/${encodeURIComponent(u)}` }, u)])
                : h('span', { class: 'muted' }, 'none'),
            ),
            h(
              'td',
              { 'data-label': 'Actions' },
              h('button', { type: 'button', class: 'btn btn-small', 'aria-label': `Edit role ${r.name}`, onclick: () => openRole(r) }, 'Edit'),
              ' ',
              h('button', { type: 'button', class: 'btn btn-small btn-danger', 'aria-label': `Delete role ${r.name}`, onclick: () => deleteRole(r) }, 'Delete'),
            ),
          ),
        ),
      ),
    ),
  )
}

function openRole(role) {
  const form = $('#role-form')
  form.reset()
  form.dataset.mode = role ? 'edit' : 'new'
  setError($('#role-error'), '')
  checker.reset()
  if (role) setText($('#role-title'), 'Role ', isolated(role.name))
  else setText($('#role-title'), 'New role')
  $('#role-name').value = role ? role.name : ''
  $('#role-name').readOnly = Boolean(role)
  $('#role-rights').value = role ? role.rights.join('\n') : ''
  $('#dlg-role').showModal()
  ;(role ? $('#role-rights') : $('#role-name')).focus()
}

async function submitRole(event) {
  event.preventDefault()
  const form = $('#role-form')
  const errorEl = $('#role-error')
  const name = $('#role-name').value.trim()
  if (!name) {
    setError(errorEl, 'Give the role a name.')
    $('#role-name').focus()
    return
  }
  const check = await checker.check()
  if (!check.ok) {
    setError(errorEl, 'Fix the rights first: each line must be a valid API rule.')
    $('#role-rights').focus()
    return
  }
  const rights = lines($('#role-rights').value)
  try {
    if (form.dataset.mode === 'edit') await api('PUT', `/api/roles/${encodeURIComponent(name)}`, { rights })
    else await api('POST', '/api/roles', { name, rights })
    $('#dlg-role').close()
    toast(`Role ${name} saved.`)
    await renderRoute()
  } catch (error) {
    if (!(error instanceof ApiFailure) || error.status === 401) return
    if (isStale(error)) {
      $('#dlg-role').close()
      await staleRefresh(error)
    } else {
      setError(errorEl, error.message)
    }
  }
}

async function deleteRole(role) {
  const ok = await confirmDialog({
    title: `Delete role ${role.name}?`,
    text: role.users.length
      ? `It is removed from ${role.users.length} user account(s) (${role.users.join(', ')}); their keys lose the rights it granted.`
      : 'No user account holds it.',
    ok: 'Delete role',
  })
  if (!ok) return
  await attempt(async () => {
    await api('DELETE', `/api/roles/${encodeURIComponent(role.name)}`)
    toast(`Role ${role.name} deleted.`)
    await renderRoute()
  })
}

export function wireRoles() {
  checker = ruleChecker($('#role-rights'), $('#role-rights-check'), 'rights')
  $('#role-new').addEventListener('click', () => openRole(null))
  $('#role-form').addEventListener('submit', submitRole)
}
