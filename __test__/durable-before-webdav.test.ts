// A store file written by keygate before WebDAV rules existed opens unchanged: the
// same users, roles, keys, audit trail and decisions as the build that wrote it read
// back (fixtures/store-before-webdav.*, made by fixtures/make-store-before-webdav.cjs),
// with the same schema version; WebDAV rules then persist in it like other rules and
// change none of its API answers.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as path from 'node:path'

import type { KeyStore, KeygateError } from '../index.js'
import { open, sleep, storePath } from './support/durable.js'
import { NO_PYTHON, sql } from './support/python-sqlite.js'

const FIXTURE = path.join(__dirname, 'fixtures', 'store-before-webdav.sqlite3')

interface Recorded {
  now: string
  users: unknown
  roles: unknown
  keys: { id: string; description: string }[]
  audit: unknown
  decisions: { keyId: string; call: [string, string, string | null]; decision: unknown }[]
}

const RECORDED: Recorded = JSON.parse(fs.readFileSync(path.join(__dirname, 'fixtures', 'store-before-webdav.json'), 'utf8'))
const NOW = new Date(RECORDED.now)

/** A value as the JSON dump holds it (Dates as ISO strings, no undefined fields). */
function asJson(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value))
}

function copyOfFixture(): string {
  const file = storePath()
  fs.copyFileSync(FIXTURE, file)
  return file
}

function apiDecisions(store: KeyStore): unknown {
  return RECORDED.decisions.map(({ keyId, call: [service, api, ip] }) => ({
    keyId,
    call: [service, api, ip],
    decision: store.explainKey(keyId, service, api, ip ?? undefined),
  }))
}

describe('a store written before WebDAV rules', () => {
  test('opens with the same contents and decisions as the build that wrote it', () => {
    const store = open(copyOfFixture(), { now: NOW })
    assert.deepEqual(asJson(store.listUsers()), RECORDED.users)
    assert.deepEqual(asJson(store.listRoles()), RECORDED.roles)
    assert.deepEqual(asJson(store.listKeys()), RECORDED.keys)
    assert.deepEqual(asJson(store.audit()), RECORDED.audit)
    assert.deepEqual(store.verifyAudit().ok, true)
    assert.deepEqual(asJson(apiDecisions(store)), RECORDED.decisions)
  })

  test('is given a change-log id at its first open, reported as nothing (not as a store restored under it)', async () => {
    const reported: KeygateError[] = []
    const store = open(copyOfFixture(), { onError: (error) => reported.push(error) })
    try {
      // The background thread's looks (every 10 ms) and a write's own look both see the id recorded.
      await sleep(100)
      store.putUser({ id: 'after-upgrade', rights: ['svc:*'] })
      await sleep(200)
      assert.deepEqual(
        reported.map((e) => e.message),
        [],
      )
      assert.equal(store.health().connected, true)
    } finally {
      store.close()
    }
  })

  test('keeps its schema version when WebDAV rules are written to it', { skip: NO_PYTHON }, () => {
    const file = copyOfFixture()
    const [[[before]]] = sql(copyOfFixture(), ['PRAGMA user_version'])
    const store = open(file, { now: NOW })
    for (const key of store.listKeys()) {
      if (key.state !== 'revoked') store.updateKey(key.id, { rules: [...key.rules, 'dav=get /docs/*'] })
    }
    store.close()
    const [[[after]]] = sql(file, ['PRAGMA user_version'])
    assert.equal(after, before)
  })

  test('WebDAV rules and rights persist like other rules and change no API answer', () => {
    const file = copyOfFixture()
    const store = open(file, { now: NOW })
    store.putRole({ name: 'reader', rights: ['data:entity*', 'apps/com.hornbill.core/*:*', 'dav=PROPFIND /docs/*'] })
    store.putUser({ id: 'svc', rights: ['session:*', '*:userLogon', 'dav=get docs/*'], roles: ['reader'] })
    for (const key of store.listKeys()) {
      if (key.state !== 'revoked') store.updateKey(key.id, { rules: ['dav=GET docs/reports/*', ...key.rules, 'dav=* *'] })
    }
    store.close()
    const reopened = open(file, { now: NOW })
    assert.deepEqual(reopened.getRole('reader')?.rights, ['data:entity*', 'apps/com.hornbill.core/*:*', 'dav=PROPFIND docs/*'])
    assert.deepEqual(reopened.getUser('svc')?.rights, ['session:*', '*:userLogon', 'dav=GET docs/*'])
    const openKey = RECORDED.keys.find((k) => k.description === 'open')?.id ?? ''
    assert.deepEqual(reopened.getKey(openKey)?.rules, ['dav=GET docs/reports/*', 'dav=* *'])
    assert.deepEqual(asJson(apiDecisions(reopened)), RECORDED.decisions)
    assert.deepEqual(reopened.explainKeyDav(openKey, 'GET', '/docs/reports/q1'), {
      allowed: true,
      reason: 'allowed',
      keyId: openKey,
      userId: 'svc',
      matchedRule: 'dav=GET docs/reports/*',
    })
    assert.equal(reopened.explainKeyDav(openKey, 'PUT', 'docs/x').reason, 'user_lacks_right')
  })
})
