'use strict'
// /api/users: list (with key counts), create, read (with its effective rights and keys), replace, delete.

const { KeygateError, quote } = require('../../errors.js')
const { ErrorCode, UserStatus } = require('../../native.js')
const { AdminErrorCode } = require('../codes.js')
const { ApiError, createdOnly, decidedByTheWrite } = require('../response.js')
const { str, strList, isOneOf, sameAsPath } = require('../input.js')
const { rulesToStore } = require('../rules.js')

const { KEY_COUNTS, KEY_STATES, USER_STATUSES, USER_FIELDS } = require('../../store.js')

/**
 * @typedef {import('../response.js').RouteContext} RouteContext
 * @typedef {import('../response.js').RouteRow} RouteRow
 * @typedef {import('../response.js').RouteHandler} RouteHandler
 */

/** What a new or replaced user takes; a row of GET /users sent back carries its key counts too. */
const USER_INPUTS = {
  body: USER_FIELDS,
  hints: { keys: 'the key counts of GET /api/users are not part of the user: send it without them' },
}

/**
 * A user's key counts: in all (`total`), and in each state.
 * @returns {Record<string, number>}
 */
function noKeys() {
  return { total: 0, ...Object.fromEntries(KEY_STATES.map((state) => [state, 0])) }
}

/**
 * @param {RouteContext} context
 * @returns {RouteRow[]}
 */
function userRoutes({ store, admin }) {
  /** @param {string} id */
  const unknownUser = (id) => new KeygateError(ErrorCode.UnknownUser, `no user with id ${quote(id)}`)

  /** @param {string} id */
  function mustUser(id) {
    const user = store.getUser(id)
    if (user === null) throw unknownUser(id)
    return user
  }

  /**
   * @param {Record<string, unknown>} body
   * @param {string} id
   * @returns {import('../../../index.js').UserInput}
   */
  function userInput(body, id) {
    const status = str(body, 'status', { optional: true, max: 32 }) ?? UserStatus.Active
    if (!isOneOf(USER_STATUSES, status)) throw new ApiError(400, ErrorCode.InvalidArgument, `unknown user status ${quote(status)}`)
    const rights = rulesToStore(strList(body, 'rights', { optional: true }) ?? [], { rights: true })
    const roles = strList(body, 'roles', { optional: true }) ?? []
    return { id, status, rights, roles }
  }

  /** @type {RouteHandler} */
  function list() {
    /** @type {Map<string, ReturnType<typeof noKeys>>} */
    const counts = new Map()
    const countedByTheCore = /** @type {Record<symbol, unknown>} */ (/** @type {unknown} */ (store))[KEY_COUNTS]
    if (typeof countedByTheCore === 'function') {
      // A view of every key, built only to be counted, blocked the event loop for seconds at
      // 100,000 keys: the core counts them.
      for (const { userId, ...byState } of /** @type {Array<{ userId: string, active: number, suspended: number, revoked: number }>} */ (countedByTheCore.call(store))) {
        counts.set(userId, { total: byState.active + byState.suspended + byState.revoked, ...byState })
      }
    } else {
      // A store that is not a KeyStore of this copy of keygate (a wrapper of one, say).
      for (const k of store.listKeys()) {
        const c = counts.get(k.userId) ?? noKeys()
        c.total++
        c[k.state]++
        counts.set(k.userId, c)
      }
    }
    const users = store.listUsers().map((u) => ({ ...u, keys: counts.get(u.id) ?? noKeys() }))
    return [200, { users }]
  }

  /** @type {RouteHandler} */
  function create({ body }) {
    const id = str(body, 'id', { max: 256 })
    const exists = () => new ApiError(409, AdminErrorCode.AlreadyExists, `a user with id ${quote(id)} already exists`)
    const put = () => createdOnly(() => store.putUser(userInput(body, id), { ...admin, expect: 'new' }), exists)
    return [201, { user: decidedByTheWrite(put, () => (store.getUser(id) === null ? undefined : exists())) }]
  }

  /** @type {RouteHandler} */
  function read({ params: { id } }) {
    const user = mustUser(id)
    return [200, { user, effectiveRights: store.effectiveRights(id), keys: store.listKeys({ userId: id }), now: store.now() }]
  }

  /** @type {RouteHandler} */
  function replace({ params: { id }, body }) {
    sameAsPath(body, 'id', id, "a user's id")
    // Editing never re-creates a user deleted meanwhile (a stale tab): expect 'existing'.
    const put = () => store.putUser(userInput(body, id), { ...admin, expect: 'existing' })
    return [200, { user: decidedByTheWrite(put, () => (store.getUser(id) === null ? unknownUser(id) : undefined)) }]
  }

  /** @type {RouteHandler} */
  function remove({ params: { id } }) {
    // Counted before: the store deletes the user's keys with it (as `keygate user delete` reports).
    const keysDeleted = store.listKeys({ userId: id }).length
    if (!store.deleteUser(id, admin)) throw new KeygateError(ErrorCode.UnknownUser, `no user with id ${quote(id)}`)
    return [200, { deleted: true, id, keysDeleted }]
  }

  return [
    ['GET', '/users', list],
    ['POST', '/users', create, USER_INPUTS],
    ['GET', '/users/:id', read],
    ['PUT', '/users/:id', replace, USER_INPUTS],
    ['DELETE', '/users/:id', remove],
  ]
}

module.exports = { userRoutes }
