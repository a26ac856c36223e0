'use strict'
// The state digest of a store: SHA-256 over its roles, users and keys as listed (lastUsedAt left
// out: it is flushed in the background, never a change). Two processes with the same digest hold
// the same state. Plain CommonJS, shared by the tests and their child processes (store-server.js).
const { createHash } = require('node:crypto')

/** @param {import('../../index.js').KeyStore} store */
function stateDigest(store) {
  const keys = store.listKeys().map((k) => [k.id, k.userId, k.description, k.state, k.expiresAt.getTime(), k.rules, k.createdAt.getTime(), k.updatedAt.getTime(), k.hint])
  const state = { roles: store.listRoles(), users: store.listUsers(), keys }
  return createHash('sha256').update(JSON.stringify(state)).digest('hex')
}

module.exports = { stateDigest }
