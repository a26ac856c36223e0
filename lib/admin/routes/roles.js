'use strict'
// /api/roles: list (with the users holding each), create, read, replace, delete.

const { KeygateError, quote } = require('../../errors.js')
const { ErrorCode } = require('../../native.js')
const { AdminErrorCode } = require('../codes.js')
const { ApiError } = require('../response.js')
const { str, strList } = require('../input.js')
const { rulesToStore } = require('../rules.js')

/** @param {{ store: import('../../../index').KeyStore, admin: { actor: string } }} context */
function roleRoutes({ store, admin }) {
  function mustRole(name) {
    const role = store.getRole(name)
    if (role === null) throw new KeygateError(ErrorCode.UnknownRole, `no role named ${quote(name)}`)
    return role
  }

  function roleInput(body, name) {
    return { name, rights: rulesToStore(strList(body, 'rights', { optional: true }) ?? [], { rights: true }) }
  }

  function list() {
    const users = store.listUsers()
    const roles = store.listRoles().map((r) => ({ ...r, users: users.filter((u) => u.roles.includes(r.name)).map((u) => u.id) }))
    return [200, { roles }]
  }

  function create({ body }) {
    const name = str(body, 'name', { max: 256 })
    if (store.getRole(name) !== null) throw new ApiError(409, AdminErrorCode.AlreadyExists, `a role named ${quote(name)} already exists`)
    return [201, { role: store.putRole(roleInput(body, name), admin) }]
  }

  function read({ params: { name } }) {
    return [200, { role: mustRole(name) }]
  }

  function replace({ params: { name }, body }) {
    mustRole(name)
    return [200, { role: store.putRole(roleInput(body, name), admin) }]
  }

  function remove({ params: { name } }) {
    if (!store.deleteRole(name, admin)) throw new KeygateError(ErrorCode.UnknownRole, `no role named ${quote(name)}`)
    return [200, { deleted: true, name }]
  }

  return [
    ['GET', '/roles', list],
    ['POST', '/roles', create],
    ['GET', '/roles/:name', read],
    ['PUT', '/roles/:name', replace],
    ['DELETE', '/roles/:name', remove],
  ]
}

module.exports = { roleRoutes }
