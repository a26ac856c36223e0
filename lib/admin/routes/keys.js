'use strict'
// /api/keys: list, create, read, edit, delete, change state, rotate. Each change of an
// existing key carries the `updatedAt` the page last saw, checked by the store (expectedUpdatedAt).

const { KeygateError, quote } = require('../../errors.js')
const { ErrorCode } = require('../../native.js')
const { AdminErrorCode } = require('../codes.js')
const { ApiError, decidedByTheWrite } = require('../response.js')
const { field, str, strList, date, expectedUpdatedAt, isOneOf, queryLimit } = require('../input.js')
const { rulesToStore } = require('../rules.js')

const { KEY_STATES, NEW_KEY_FIELDS, KEY_PATCH_FIELDS, KEY_FILTER, MAX_KEY_PAGE } = require('../../store.js')

/**
 * @typedef {import('../response.js').RouteContext} RouteContext
 * @typedef {import('../response.js').RouteRow} RouteRow
 * @typedef {import('../response.js').RouteHandler} RouteHandler
 */

/** The library's option is the API's `updatedAt` field. */
const PRECONDITION_HINT = { expectedUpdatedAt: "the API calls it updatedAt: the key's updatedAt as you last read it" }

/** What an edit of a key takes; its state has a route of its own. */
const EDIT_INPUTS = {
  body: [...KEY_PATCH_FIELDS, 'updatedAt'],
  hints: {
    state: "a key's state is changed with POST /api/keys/:id/state",
    userId: "a key's user cannot be changed",
    ...PRECONDITION_HINT,
  },
}

/**
 * @param {RouteContext} context
 * @returns {RouteRow[]}
 */
function keyRoutes({ store, admin }) {
  /** @type {RouteHandler} */
  function list({ query }) {
    /** @type {import('../../../index.js').KeyFilter} */
    const filter = {}
    // A parameter given empty filters as the store does (`?userId=` lists no keys), never as
    // left out: a script's empty variable must not widen its listing to every key.
    const userId = query.get('userId')
    const state = query.get('state')
    // Empty keeps every key, as the store's: every text holds the empty text.
    const search = query.get('search')
    if (userId !== null) filter.userId = userId
    if (search !== null) filter.search = search
    if (state !== null) {
      if (!isOneOf(KEY_STATES, state)) throw new KeygateError(ErrorCode.InvalidState, `unknown key state ${quote(state)}`)
      filter.state = state
    }
    const limit = query.get('limit')
    const after = query.get('after')
    if (limit === null && after === null) return [200, { keys: store.listKeys(filter), next: null, now: store.now() }]
    /** @type {import('../../../index.js').KeyPageQuery} */
    const page = { ...filter }
    if (limit !== null) page.limit = queryLimit(limit, MAX_KEY_PAGE)
    if (after !== null) page.after = after
    if (typeof store.listKeysPage !== 'function') {
      // A store that is not a KeyStore of this copy of keygate (a wrapper of one, say).
      throw new KeygateError(ErrorCode.InvalidArgument, 'this store lists keys only whole: leave out limit and after')
    }
    return [200, { ...store.listKeysPage(page), now: store.now() }]
  }

  /** @type {RouteHandler} */
  function create({ body }) {
    // No length bound of its own: the store answers an id no user has with UNKNOWN_USER, as the
    // library and `keygate key create` do, whatever its length (the body limit bounds it).
    const userId = str(body, 'userId', { max: Number.POSITIVE_INFINITY })
    const rules = rulesToStore(strList(body, 'rules', { optional: true }) ?? [])
    const issue = () => {
      /** @type {import('../../../index.js').NewKey} */
      const input = {
        userId,
        description: str(body, 'description', { optional: true, max: 10_000 }) ?? '',
        expiresAt: date(body, 'expiresAt'),
        rules,
      }
      // The store refuses a state a key cannot be created in (INVALID_STATE), whatever its length:
      // a bound here would answer a long one INVALID_ARGUMENT, unlike the library and the docs.
      const state = str(body, 'state', { optional: true, max: Number.POSITIVE_INFINITY })
      if (state !== undefined) input.state = /** @type {'active' | 'suspended'} */ (state)
      return store.createKey(input, admin)
    }
    const issued = decidedByTheWrite(issue, () =>
      store.getUser(userId) === null ? new KeygateError(ErrorCode.UnknownUser, `no user with id ${quote(userId)}`) : undefined,
    )
    return [201, { key: issued.key, secret: issued.secret }]
  }

  /** @type {RouteHandler} */
  function read({ params: { id } }) {
    const key = store.getKey(id)
    if (key === null) throw new KeygateError(ErrorCode.UnknownKey, `no key with id ${quote(id)}`)
    return [200, { key, now: store.now() }]
  }

  /** @type {RouteHandler} */
  function edit({ params: { id }, body }) {
    const precondition = { ...admin, expectedUpdatedAt: expectedUpdatedAt(body) }
    /** @type {import('../../../index.js').KeyPatch} */
    const patch = {}
    const description = str(body, 'description', { optional: true, max: 10_000 })
    if (description !== undefined) patch.description = description
    const rulesIn = strList(body, 'rules', { optional: true })
    if (rulesIn !== undefined) patch.rules = rulesToStore(rulesIn)
    if (field(body, 'expiresAt') !== undefined) patch.expiresAt = date(body, 'expiresAt')
    return [200, { key: store.updateKey(id, patch, precondition) }]
  }

  /** @type {RouteHandler} */
  function remove({ params: { id } }) {
    if (!store.deleteKey(id, admin)) throw new KeygateError(ErrorCode.UnknownKey, `no key with id ${quote(id)}`)
    return [200, { deleted: true, id }]
  }

  /** @type {RouteHandler} */
  function setState({ params: { id }, body }) {
    // Unbounded here: the store answers any unknown state INVALID_STATE (see create).
    const state = str(body, 'state', { max: Number.POSITIVE_INFINITY })
    const expected = expectedUpdatedAt(body)
    const changedElsewhere = () => new ApiError(409, AdminErrorCode.KeyChanged, `key ${quote(id)} is already ${quote(state)} (changed elsewhere?)`)
    // The store refuses a state it does not know (INVALID_STATE).
    const next = /** @type {import('../../../index.js').KeyState} */ (state)
    // Decided inside the store's write, never from what this process has heard so far: a key
    // another host changed a moment ago would be answered as if the change had been made.
    let key
    try {
      key = store.setState(id, next, { ...admin, expectedUpdatedAt: expected })
    } catch (e) {
      // The page sends the updatedAt it shows: a key changed since to the state asked for means
      // the page is behind (a double click, another tab). The write has brought this process up to date.
      if (expected !== undefined && e instanceof KeygateError && e.code === ErrorCode.Conflict && store.getKey(id)?.state === state) {
        throw changedElsewhere()
      }
      throw e
    }
    // The state the key already has: nothing changed (a change always moves updatedAt). Without an
    // updatedAt, as `keygate key revoke`, that is done; with the page's, the page is behind.
    if (expected !== undefined && key.updatedAt.getTime() === expected.getTime()) throw changedElsewhere()
    return [200, { key }]
  }

  /** @type {RouteHandler} */
  function rotate({ params: { id }, body }) {
    const expected = expectedUpdatedAt(body)
    const overlap = field(body, 'overlapSeconds') ?? 0
    // The store checks the number (a whole number of seconds, 0 or more) and ends the overlap at the key's expiry at the latest.
    if (typeof overlap !== 'number') throw new ApiError(400, ErrorCode.InvalidArgument, 'overlapSeconds must be a whole number of seconds, 0 or more')
    const issued = store.rotateKey(id, { overlapSeconds: overlap, actor: admin.actor, expectedUpdatedAt: expected })
    return [201, { key: issued.key, secret: issued.secret, previous: store.getKey(id) }]
  }

  return [
    ['GET', '/keys', list, { query: [...KEY_FILTER, 'limit', 'after'] }],
    ['POST', '/keys', create, { body: NEW_KEY_FIELDS }],
    ['GET', '/keys/:id', read],
    ['PATCH', '/keys/:id', edit, EDIT_INPUTS],
    ['PUT', '/keys/:id', edit, EDIT_INPUTS],
    ['DELETE', '/keys/:id', remove],
    ['POST', '/keys/:id/state', setState, { body: ['state', 'updatedAt'], hints: PRECONDITION_HINT }],
    ['POST', '/keys/:id/rotate', rotate, { body: ['overlapSeconds', 'updatedAt'], hints: PRECONDITION_HINT }],
  ]
}

module.exports = { keyRoutes }
