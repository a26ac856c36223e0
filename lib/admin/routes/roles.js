'use strict'
// /api/roles: list (with the users holding each), create, read, replace, delete.

const { KeygateError, quote } = require('../../errors.js')
const { ErrorCode } = require('../../native.js')
const { AdminErrorCode } = require('../codes.js')
const { ApiError, createdOnly, decidedByTheWrite } = require('../response.js')
const { str, strList, sameAsPath } = require('../input.js')
const { rulesToStore } = require('../rules.js')

const { ROLE_FIELDS } = require('../../store.js')

/**
 * @typedef {import('../response.js').RouteContext} RouteContext
 * @typedef {import('../response.js').RouteRow} RouteRow
 * @typedef {import('../response.js').RouteHandler} RouteHandler
 */

/**
 * What a new or replaced role takes; a row of GET /roles sent back carries its users too, and a
 * role is given to a user by the user's roles, never by the role.
 */
const ROLE_INPUTS = {
  body: ROLE_FIELDS,
  hints: { users: "the users of GET /api/roles are not part of the role: a user's roles are changed with PUT /api/users/:id" },
}

/**
 * @param {RouteContext} context
 * @returns {RouteRow[]}
 */
function roleRoutes({ store, admin }) {
  /** @param {string} name */
  const unknownRole = (name) => new KeygateError(ErrorCode.UnknownRole, `no role named ${quote(name)}`)

  /** @param {string} name */
  function mustRole(name) {
    const role = store.getRole(name)
    if (role === null) throw unknownRole(name)
    return role
  }

  /**
   * @param {Record<string, unknown>} body
   * @param {string} name
   */
  function roleInput(body, name) {
    return { name, rights: rulesToStore(strList(body, 'rights', { optional: true }) ?? [], { rights: true }) }
  }

  /** @type {RouteHandler} */
  function list() {
    const users = store.listUsers()
    const roles = store.listRoles().map((r) => ({ ...r, users: users.filter((u) => u.roles.includes(r.name)).map((u) => u.id) }))
    return [200, { roles }]
  }

  /** @type {RouteHandler} */
  function create({ body }) {
    const name = str(body, 'name', { max: 256 })
    const exists = () => new ApiError(409, AdminErrorCode.AlreadyExists, `a role named ${quote(name)} already exists`)
    const put = () => createdOnly(() => store.putRole(roleInput(body, name), { ...admin, expect: 'new' }), exists)
    return [201, { role: decidedByTheWrite(put, () => (store.getRole(name) === null ? undefined : exists())) }]
  }

  /** @type {RouteHandler} */
  function read({ params: { name } }) {
    return [200, { role: mustRole(name) }]
  }

  /** @type {RouteHandler} */
  function replace({ params: { name }, body }) {
    sameAsPath(body, 'name', name, "a role's name")
    const put = () => store.putRole(roleInput(body, name), { ...admin, expect: 'existing' })
    return [200, { role: decidedByTheWrite(put, () => (store.getRole(name) === null ? unknownRole(name) : undefined)) }]
  }

  /** @type {RouteHandler} */
  function remove({ params: { name } }) {
    // Counted before, as `keygate role delete --json` reports it: the store takes the role from them.
    const usersAffected = store.listUsers().filter((u) => u.roles.includes(name)).length
    if (!store.deleteRole(name, admin)) throw new KeygateError(ErrorCode.UnknownRole, `no role named ${quote(name)}`)
    return [200, { deleted: true, name, usersAffected }]
  }

  return [
    ['GET', '/roles', list],
    ['POST', '/roles', create, ROLE_INPUTS],
    ['GET', '/roles/:name', read],
    ['PUT', '/roles/:name', replace, ROLE_INPUTS],
    ['DELETE', '/roles/:name', remove],
  ]
}

module.exports = { roleRoutes }
