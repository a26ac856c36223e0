// Two stores on one file in one process (two worker threads, or an admin page and a guard
// each opening it): opening the second must not take away the first one's SQLite locks, or
// another process's close deletes the WAL under them and their commits reach nobody else.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import * as fs from 'node:fs'

import { DAY, at } from './helpers.js'
import { open, storePath } from './support/durable.js'
import { StoreProcess } from './support/child-store.js'

describe('two stores on one file in one process', () => {
  test('a second open keeps the first store’s locks: another process closing leaves the WAL, and a revocation here reaches other processes', {
    timeout: 60_000,
  }, async () => {
    const file = storePath()
    const first = open(file)
    first.putUser({ id: 'svc', rights: ['*:*'] })
    const { key, secret } = first.createKey({ userId: 'svc', description: 'k', expiresAt: at(new Date(), DAY) })
    const second = open(file)
    assert.equal(second.isAllowed(secret, 'svc', 'call'), true)

    // Another process opens the store and closes it (as a CLI call does).
    const passing = await StoreProcess.start(file)
    await passing.stop()
    assert.ok(fs.existsSync(`${file}-wal`), 'the WAL of the stores still open here was deleted by another process closing')

    first.setState(key.id, 'revoked')
    const other = await StoreProcess.start(file)
    try {
      assert.equal((await other.call('explain', secret, 'svc', 'call')).result.reason, 'revoked', 'a revocation made here is not seen by another process')
    } finally {
      await other.stop()
    }
    assert.equal(second.explain(secret, 'svc', 'call').reason, 'revoked')
  })
})
