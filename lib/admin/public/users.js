// The user accounts screen, one account's screen (with its keys), and the new-user dialog.

import { ErrorCode, KeyState, UserStatus } from './constants.js'
import { $, $$, addOptions, confirmDialog, h, isolated, pageAlert, setError, setText, toast } from './dom.js'
import { ApiFailure, api } from './api.js'
import { state } from './state.js'
import { USER_STATUS_LABELS, lines } from './format.js'
import { attempt } from './actions.js'
import { go, renderRoute } from './router.js'
import { ruleChecker } from './rules.js'
import { keyTable, loadUsers } from './keys.js'
import { openCreate } from './key-create.js'
import { loadRoles } from './roles.js'

/** The union of the user's own and its roles' rights, as the store computes it (shown under the form). */
function showEffectiveRights(rights) {
  let el = $('#user-effective')
  if (!el) {
    el = h('p', { id: 'user-effective', class: 'hint field-wide' })
    $('#user-form-error').before(el)
  }
  const all = rights?.all ?? []
  setText(el, 'Effective rights (its own and its roles’): ', all.length ? all.join(', ') : 'none')
}

/** The live checks of the rights textareas (set by wireUsers). */
let newUserChecker
let userChecker

export async function renderUsers() {
  await loadUsers()
  const users = state.users
  if (users.length === 0) {
    $('#users-table').replaceChildren(h('p', { class: 'empty' }, 'No user accounts yet. Create one, then create keys under it.'))
    return
  }
  $('#users-table').replaceChildren(
    h(
      'table',
      { class: 'grid' },
      h('caption', { class: 'sr-only' }, 'User accounts'),
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          ['User account', 'Status', 'Roles', 'Rights', 'API keys'].map((t) => h('th', { scope: 'col' }, t)),
        ),
      ),
      h(
        'tbody',
        {},
        users.map((u) =>
          h(
            'tr',
            { dataset: { userId: u.id } },
            h('td', { 'data-label': 'User account', class: 'id' }, h('a', { href: `#/users/${encodeURIComponent(u.id)}` }, u.id)),
            h('td', { 'data-label': 'Status' }, h('span', { class: `badge badge-${u.status}` }, u.status)),
            h('td', { 'data-label': 'Roles', class: 'id' }, u.roles.length ? u.roles.join(', ') : h('span', { class: 'muted' }, 'none')),
            h('td', { 'data-label': 'Rights', class: 'mono small' }, u.rights.length ? u.rights.join('\n') : h('span', { class: 'muted' }, 'none')),
            h('td', { 'data-label': 'API keys' }, `${u.keys[KeyState.Active]} active of ${u.keys.total}`),
          ),
        ),
      ),
    ),
  )
}

function roleChecks(container, selected, prefix) {
  if (state.roles.length === 0) {
    container.replaceChildren(h('p', { class: 'muted' }, 'No roles yet (see Roles).'))
    return
  }
  container.replaceChildren(
    ...state.roles.map((r) =>
      h('label', {}, h('input', { type: 'checkbox', name: 'roles', value: r.name, id: `${prefix}-${r.name}`, checked: selected.includes(r.name) }), ` ${r.name}`),
    ),
  )
}

function checkedRoles(container) {
  return $$('input[type=checkbox]:checked', container).map((c) => c.value)
}

async function openNewUser() {
  const form = $('#newuser-form')
  form.reset()
  setError($('#newuser-error'), '')
  newUserChecker.reset()
  await attempt(loadRoles, $('#newuser-error'))
  roleChecks($('#newuser-roles'), [], 'newuser-role')
  $('#dlg-user').showModal()
  $('#newuser-id').focus()
}

async function submitNewUser(event) {
  event.preventDefault()
  const errorEl = $('#newuser-error')
  const id = $('#newuser-id').value.trim()
  if (!id) {
    setError(errorEl, 'Give the user account an id.')
    $('#newuser-id').focus()
    return
  }
  const check = await newUserChecker.check()
  if (!check.ok) {
    setError(errorEl, 'Fix the rights first: each line must be a valid API rule.')
    $('#newuser-rights').focus()
    return
  }
  const body = { id, status: $('#newuser-status').value, rights: lines($('#newuser-rights').value), roles: checkedRoles($('#newuser-roles')) }
  try {
    const data = await api('POST', '/api/users', body)
    $('#dlg-user').close()
    toast(`User ${data.user.id} created.`)
    await renderRoute()
  } catch (error) {
    if (!(error instanceof ApiFailure) || error.status === 401) return
    setError(errorEl, error.message)
    if (error.code === ErrorCode.UnknownRole) {
      await attempt(loadRoles, errorEl)
      roleChecks($('#newuser-roles'), body.roles, 'newuser-role')
    }
  }
}

export async function renderUser(route) {
  const id = route.arg
  let data
  try {
    ;[data] = await Promise.all([api('GET', `/api/users/${encodeURIComponent(id)}`), loadRoles()])
  } catch (error) {
    if (error instanceof ApiFailure && error.code === ErrorCode.UnknownUser) {
      pageAlert(`There is no user account “${id}” (any more): it was deleted in another tab or by another admin.`)
      go('#/users')
      return
    }
    throw error
  }
  state.offset = new Date(data.now).getTime() - Date.now()
  const user = data.user
  setText($('#user-title'), 'User account ', isolated(user.id))
  document.title = `${user.id} · keygate admin`
  $('#user-form').dataset.userId = user.id
  $('#user-status').value = user.status
  $('#user-rights').value = user.rights.join('\n')
  userChecker.reset()
  setError($('#user-form-error'), '')
  roleChecks($('#user-roles-list'), user.roles, 'user-role')
  showEffectiveRights(data.effectiveRights)
  setText($('#user-keys-title'), 'API keys of ', isolated(user.id), ` (${data.keys.length})`)
  $('#user-keys-table').replaceChildren(
    keyTable(data.keys, { caption: `API keys of ${user.id}`, empty: 'No API keys under this account yet. Press + to create one.', showUser: false }),
  )
}

async function saveUser(event) {
  event.preventDefault()
  const id = $('#user-form').dataset.userId
  const errorEl = $('#user-form-error')
  const check = await userChecker.check()
  if (!check.ok) {
    setError(errorEl, 'Fix the rights first: each line must be a valid API rule.')
    $('#user-rights').focus()
    return
  }
  const body = { status: $('#user-status').value, rights: lines($('#user-rights').value), roles: checkedRoles($('#user-roles-list')) }
  await attempt(async () => {
    await api('PUT', `/api/users/${encodeURIComponent(id)}`, body)
    toast(`User ${id} saved.`)
    await renderRoute()
  }, errorEl)
}

async function deleteUser() {
  const id = $('#user-form').dataset.userId
  const user = state.users.find((u) => u.id === id)
  const n = user ? user.keys.total : 0
  const ok = await confirmDialog({
    title: `Delete user account ${id}?`,
    text: `The account and all its API keys (${n}) are deleted; those keys stop working at once.`,
    ok: 'Delete user',
  })
  if (!ok) return
  await attempt(async () => {
    await api('DELETE', `/api/users/${encodeURIComponent(id)}`)
    toast(`User ${id} deleted.`)
    go('#/users')
  }, $('#user-form-error'))
}

export function wireUsers() {
  addOptions($('#newuser-status'), USER_STATUS_LABELS)
  addOptions($('#user-status'), { ...USER_STATUS_LABELS, [UserStatus.Suspended]: 'Suspended (temporary)', [UserStatus.Archived]: 'Archived (permanent)' })
  newUserChecker = ruleChecker($('#newuser-rights'), $('#newuser-rights-check'), 'rights')
  userChecker = ruleChecker($('#user-rights'), $('#user-rights-check'), 'rights')
  $('#user-new').addEventListener('click', openNewUser)
  $('#newuser-form').addEventListener('submit', submitNewUser)
  $('#user-form').addEventListener('submit', saveUser)
  $('#user-delete').addEventListener('click', deleteUser)
  $('#user-key-new').addEventListener('click', () => openCreate($('#user-form').dataset.userId))
}
