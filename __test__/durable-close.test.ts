// close(): every method of a closed store throws STORE_IO, close twice is fine, the file is
// released and the data intact.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import * as fs from 'node:fs'

import { KeygateError } from '../index.js'
import { DAY, at } from './helpers.js'
import { open, storePath } from './support/durable.js'

describe('close()', () => {
  test('after close every method throws KeygateError STORE_IO, isAllowed/explain included; close twice is fine', () => {
    const file = storePath()
    const store = open(file)
    store.putRole({ name: 'r', rights: ['svc:*'] })
    store.putUser({ id: 'u', rights: ['svc:*', 'dav=GET docs/*'] })
    const k = store.createKey({ userId: 'u', description: '', expiresAt: at(new Date(), DAY) })
    for (let i = 0; i < 3; i++) assert.equal(store.isAllowed(k.secret, 'svc', 'call'), true) // remembered
    for (let i = 0; i < 3; i++) assert.equal(store.isAllowedDav(k.secret, 'GET', 'docs/a'), true) // remembered
    store.close()
    const calls: Record<string, () => unknown> = {
      isAllowed: () => store.isAllowed(k.secret, 'svc', 'call'),
      'isAllowed (unknown secret)': () => store.isAllowed('kg_nonsense', 'svc', 'call'),
      explain: () => store.explain(k.secret, 'svc', 'call'),
      explainKey: () => store.explainKey(k.key.id, 'svc', 'call'),
      isAllowedDav: () => store.isAllowedDav(k.secret, 'GET', 'docs/a'),
      'isAllowedDav (unknown secret)': () => store.isAllowedDav('kg_nonsense', 'GET', 'docs/a'),
      explainDav: () => store.explainDav(k.secret, 'GET', 'docs/a'),
      explainKeyDav: () => store.explainKeyDav(k.key.id, 'GET', 'docs/a'),
      health: () => store.health(),
      backup: () => store.backup(`${file}.backup`),
      effectiveRights: () => store.effectiveRights('u'),
      audit: () => store.audit(),
      verifyAudit: () => store.verifyAudit(),
      now: () => store.now(),
      setNow: () => store.setNow(null),
      putRole: () => store.putRole({ name: 'r2', rights: [] }),
      deleteRole: () => store.deleteRole('r'),
      getRole: () => store.getRole('r'),
      listRoles: () => store.listRoles(),
      putUser: () => store.putUser({ id: 'v' }),
      getUser: () => store.getUser('u'),
      listUsers: () => store.listUsers(),
      deleteUser: () => store.deleteUser('u'),
      createKey: () => store.createKey({ userId: 'u', description: '', expiresAt: at(new Date(), DAY) }),
      getKey: () => store.getKey(k.key.id),
      listKeys: () => store.listKeys(),
      updateKey: () => store.updateKey(k.key.id, { description: 'x' }),
      setState: () => store.setState(k.key.id, 'suspended'),
      rotateKey: () => store.rotateKey(k.key.id),
      deleteKey: () => store.deleteKey(k.key.id),
    }
    const wrong: string[] = []
    for (const [name, call] of Object.entries(calls)) {
      try {
        const value = call()
        wrong.push(`${name} returned ${JSON.stringify(value)}`)
      } catch (error) {
        if (!(error instanceof KeygateError) || error.code !== 'STORE_IO' || !/closed/i.test(error.message)) {
          wrong.push(`${name} threw ${String(error)} (${(error as { code?: string }).code})`)
        }
      }
    }
    assert.deepEqual(wrong, [], 'every method of a closed store throws STORE_IO "closed"')
    store.close()
    store.close()
  })

  test('close releases the file (no descriptor left), the data is intact, and reopening works', () => {
    const file = storePath()
    const fds = () =>
      fs
        .readdirSync('/proc/self/fd')
        .map((fd) => {
          try {
            return fs.readlinkSync(`/proc/self/fd/${fd}`)
          } catch {
            return ''
          }
        })
        .filter((target) => target.startsWith(file))
    const store = open(file)
    store.putUser({ id: 'u', rights: ['svc:*'] })
    const k = store.createKey({ userId: 'u', description: 'kept', expiresAt: at(new Date(), DAY) })
    assert.ok(fds().length > 0)
    store.close()
    assert.deepEqual(fds(), [], 'no file descriptor of the store is left open')

    const other = open(file)
    const again = open(file)
    other.close()
    assert.equal(again.isAllowed(k.secret, 'svc', 'call'), true, 'closing one store leaves another on the same file working')
    again.putUser({ id: 'v' })
    again.close()
    const last = open(file)
    assert.deepEqual(
      last.listUsers().map((u) => u.id),
      ['u', 'v'],
    )
    assert.equal(last.getKey(k.key.id)!.description, 'kept')
    assert.equal(last.verifyAudit().ok, true)
    last.close()
  })
})
