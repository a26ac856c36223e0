// WebDAV rules and WebDAV requests through the public API: isAllowedDav and
// explainDav decide in the documented order; API rules never decide a WebDAV
// request nor WebDAV rules an API call; hostile paths are invalid requests,
// never a crash and never a pass; the memo stays exact for WebDAV requests.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'

import { KeyStore } from '../index.js'
import { DAY, at, frozenStore, issue, throwsCode, throwsTypeError, withUser } from './helpers.js'

/** isAllowedDav twice (the second answer may come from the memo), both equal to explainDav's; returns the reason. */
function decideDav(store: KeyStore, secret: string, method: string, path: string, ip?: string): string {
  const decision = store.explainDav(secret, method, path, ip)
  for (let i = 0; i < 2; i++) {
    assert.equal(store.isAllowedDav(secret, method, path, ip), decision.allowed, `${method} ${path}, check #${i + 1}: ${decision.reason}`)
  }
  return decision.reason
}

/** A store whose user may read `docs/*` and call `session:*`; a key with the given rules. */
function docsStore(rules: string[] = []): { store: KeyStore; secret: string; id: string } {
  const store = withUser(frozenStore(), { id: 'integration', rights: ['session:*', 'dav=* docs/*'] })
  const { key, secret } = issue(store, { rules })
  return { store, secret, id: key.id }
}

describe('WebDAV rules', () => {
  test('validateRule normalises method case and the leading slash, keeping the path as written', () => {
    assert.equal(KeyStore.validateRule('dav=get /Session/*'), 'dav=GET Session/*')
    assert.equal(KeyStore.validateRule('  DAV=propfind docs/  '), 'dav=PROPFIND docs/')
    assert.equal(KeyStore.validateRule('dav=* ~user/a?c.txt'), 'dav=* ~user/a?c.txt')
  })

  test('bad WebDAV rules are INVALID_RULE naming what is wrong', () => {
    for (const [rule, part] of [
      ['dav=GET', 'one space'],
      ['dav=GET  docs', 'exactly one space'],
      ['dav=G3T docs', 'method'],
      ['dav=GET docs/%2F', "'%'"],
      ['dav=GET docs//x', 'empty segment'],
      ['dav=GET docs/../x', '".."'],
      ['dav=GET /', 'empty'],
      ['dav=GET dócs', 'ASCII'],
      [`dav=GET ${'a'.repeat(260)}`, 'longer than 256'],
    ]) {
      throwsCode(() => KeyStore.validateRule(rule), 'INVALID_RULE', part)
    }
  })

  test('a WebDAV rule holding a secret of the store is refused without showing it', () => {
    const store = withUser(frozenStore())
    const { secret } = issue(store)
    const error = throwsCode(() => KeyStore.validateRule(`dav=GET docs/${secret}`), 'INVALID_RULE')
    assert.ok(!error.message.includes(secret.slice(3, 30)))
  })

  test('user and role rights hold API and WebDAV rules, never IP rules', () => {
    const store = frozenStore()
    store.putRole({ name: 'reader', rights: ['dav=GET docs/*'] })
    const user = store.putUser({ id: 'u', rights: ['session:*', 'dav=put /inbox/*'], roles: ['reader'] })
    assert.deepEqual(user.rights, ['session:*', 'dav=PUT inbox/*'])
    throwsCode(() => store.putUser({ id: 'v', rights: ['dav=GET x', 'ip=10.0.0.0/8'] }), 'INVALID_RULE', 'ip=10.0.0.0/8')
    assert.deepEqual(store.effectiveRights('u')?.all, ['session:*', 'dav=PUT inbox/*', 'dav=GET docs/*'])
  })
})

describe('the decision on a WebDAV request', () => {
  test('each step of the order, with its reason', () => {
    const store = withUser(frozenStore(), { id: 'integration', rights: ['dav=* docs/*', 'dav=GET public/*'] })
    const { key, secret } = issue(store, { rules: ['dav=GET docs/reports/*', 'session:*', 'ip=10.0.0.0/8'] })
    assert.equal(decideDav(store, 'kg_nonsense', 'GET', 'docs/x'), 'malformed_key')
    const stranger = issue(withUser(frozenStore())).secret
    assert.equal(decideDav(store, stranger, 'GET', 'docs/x'), 'unknown_key')
    assert.equal(decideDav(store, secret, 'G3T', 'docs/reports/a'), 'invalid_request')
    assert.equal(decideDav(store, secret, 'GET', 'docs/../reports/a'), 'invalid_request')
    assert.equal(decideDav(store, secret, 'GET', 'public/a', '10.1.2.3'), 'no_matching_rule', 'a right is not a rule of the key')
    assert.equal(decideDav(store, secret, 'GET', 'private/a', '10.1.2.3'), 'user_lacks_right')
    assert.equal(decideDav(store, secret, 'PUT', 'docs/reports/a', '10.1.2.3'), 'no_matching_rule')
    assert.equal(decideDav(store, secret, 'GET', 'docs/reports/a', '192.168.0.1'), 'ip_not_allowed')
    assert.equal(decideDav(store, secret, 'GET', 'docs/reports/a'), 'ip_not_allowed', 'no address: IP rules deny')
    assert.equal(decideDav(store, secret, 'get', '/DOCS/Reports/a', '10.1.2.3'), 'allowed')
    store.setState(key.id, 'suspended')
    assert.equal(decideDav(store, secret, 'GET', 'docs/reports/a', '10.1.2.3'), 'suspended')
    store.setState(key.id, 'active')
    store.setNow(at(store.now(), 2 * DAY))
    assert.equal(decideDav(store, secret, 'GET', 'docs/reports/a', '10.1.2.3'), 'expired')
  })

  test('an inactive user and a user without WebDAV rights', () => {
    const store = withUser(frozenStore(), { id: 'integration', rights: ['*:*'] })
    const { secret } = issue(store)
    assert.equal(decideDav(store, secret, 'GET', 'docs/a'), 'user_lacks_right', 'API rights never grant a WebDAV request')
    store.putUser({ id: 'integration', rights: ['dav=* *'], status: 'suspended' })
    assert.equal(decideDav(store, secret, 'GET', 'docs/a'), 'user_inactive')
    store.putUser({ id: 'integration', rights: ['dav=* *'] })
    assert.equal(decideDav(store, secret, 'GET', 'docs/a'), 'allowed')
    assert.equal(store.isAllowed(secret, 'session', 'getSessionInfo'), false, 'WebDAV rights never grant an API call')
  })

  test('a key without WebDAV rules is unrestricted for WebDAV; its API rules do not decide', () => {
    const { store, secret } = docsStore(['session:getSessionInfo'])
    assert.equal(decideDav(store, secret, 'PROPFIND', 'docs/a/b/'), 'allowed')
    assert.equal(store.explainDav(secret, 'PROPFIND', 'docs/a/b/').matchedRule, undefined)
    assert.equal(store.isAllowed(secret, 'session', 'userLogon'), false)
  })

  test('WebDAV rules never decide an API call, and matchedRule is the first WebDAV rule that matched', () => {
    const { store, secret } = docsStore(['dav=GET docs/a*', 'session:get*', 'dav=* docs/*'])
    assert.equal(store.explain(secret, 'session', 'getSessionInfo').matchedRule, 'session:get*')
    assert.equal(store.isAllowed(secret, 'session', 'userLogon'), false)
    const decision = store.explainDav(secret, 'GET', 'docs/abc')
    assert.deepEqual([decision.reason, decision.matchedRule], ['allowed', 'dav=GET docs/a*'])
    assert.equal(store.explainDav(secret, 'DELETE', 'docs/abc').matchedRule, 'dav=* docs/*')
    const onlyDav = docsStore(['dav=GET docs/*'])
    assert.equal(onlyDav.store.isAllowed(onlyDav.secret, 'session', 'anything'), true, 'no API rules: unrestricted API calls')
  })

  test('explainKeyDav decides steps 3–9 for a key id', () => {
    const { store, id } = docsStore(['dav=GET docs/*'])
    assert.deepEqual(store.explainKeyDav(id, 'GET', 'docs/x'), {
      allowed: true,
      reason: 'allowed',
      keyId: id,
      userId: 'integration',
      matchedRule: 'dav=GET docs/*',
    })
    assert.equal(store.explainKeyDav(id, 'PUT', 'docs/x').reason, 'no_matching_rule')
    assert.equal(store.explainKeyDav('key_nope', 'GET', 'docs/x').reason, 'unknown_key')
  })
})

describe('hostile WebDAV requests', () => {
  test('traversal, encoded slashes, long paths, non-ASCII, NUL and odd methods are invalid requests', () => {
    const { store, secret } = docsStore(['dav=* docs/*'])
    for (const [method, path] of [
      ['GET', 'docs/../secret'],
      ['GET', 'docs/./x'],
      ['GET', 'docs/..'],
      ['GET', 'docs//x'],
      ['GET', '//docs/x'],
      ['GET', 'docs%2Fx'],
      ['GET', 'docs/%2e%2e/secret'],
      ['GET', `docs/${'a'.repeat(8 * 1024)}`],
      ['GET', `docs/${'a'.repeat(1020)}`],
      ['GET', 'docs/é'],
      ['GET', 'docs/\u202e'],
      ['GET', 'docs/a\u0000b'],
      ['GET', 'docs/a b'],
      ['GET', 'docs/*'],
      ['GET', 'docs/?'],
      ['GET', ''],
      ['GET', '/'],
      ['G3T', 'docs/x'],
      ['GET ', 'docs/x'],
      ['', 'docs/x'],
      ['*', 'docs/x'],
      ['A'.repeat(33), 'docs/x'],
      ['GÉT', 'docs/x'],
    ]) {
      assert.equal(decideDav(store, secret, method, path), 'invalid_request', `${JSON.stringify(method)} ${JSON.stringify(path.slice(0, 40))}`)
    }
    assert.equal(decideDav(store, secret, 'GET', `docs/${'a'.repeat(1019)}`), 'allowed', '1,024 characters')
    assert.equal(decideDav(store, secret, 'GET', `/docs/${'a'.repeat(1019)}`), 'allowed', 'and a leading slash')
    assert.equal(decideDav(store, secret, 'A'.repeat(32), 'docs/x'), 'allowed')
  })

  test('non-string arguments are TypeErrors; strings never throw', () => {
    const { store, secret } = docsStore()
    for (const args of [
      [1, 'GET', 'docs/x'],
      [secret, null, 'docs/x'],
      [secret, 'GET', undefined],
      [secret, 'GET', 'docs/x', 42],
    ] as unknown as [string, string, string, string?][]) {
      throwsTypeError(() => store.isAllowedDav(...args))
      throwsTypeError(() => store.explainDav(...args))
    }
    for (const text of ['', '\u0000', '\ud800', 'x'.repeat(100_000)]) {
      assert.equal(store.isAllowedDav(text, text, text, text), false)
      assert.equal(store.isAllowedDav(secret, text, 'docs/x'), false)
      assert.equal(store.isAllowedDav(secret, 'GET', text), false)
    }
  })
})

describe('the memo and WebDAV requests', () => {
  test('revocation, suspension, rule and rights changes are seen on the next check', () => {
    const { store, secret, id } = docsStore(['dav=GET docs/*'])
    assert.equal(decideDav(store, secret, 'GET', 'docs/a'), 'allowed')
    store.updateKey(id, { rules: ['dav=GET docs/b*'] })
    assert.equal(store.isAllowedDav(secret, 'GET', 'docs/a'), false)
    store.updateKey(id, { rules: ['dav=GET docs/*'] })
    assert.equal(store.isAllowedDav(secret, 'GET', 'docs/a'), true)
    store.putUser({ id: 'integration', rights: ['dav=GET other/*'] })
    assert.equal(store.isAllowedDav(secret, 'GET', 'docs/a'), false)
    store.putUser({ id: 'integration', rights: ['dav=* docs/*'] })
    assert.equal(store.isAllowedDav(secret, 'GET', 'docs/a'), true)
    store.setState(id, 'suspended')
    assert.equal(store.isAllowedDav(secret, 'GET', 'docs/a'), false)
    store.setState(id, 'active')
    assert.equal(store.isAllowedDav(secret, 'GET', 'docs/a'), true)
    store.setState(id, 'revoked')
    assert.equal(store.isAllowedDav(secret, 'GET', 'docs/a'), false)
    assert.equal(store.explainDav(secret, 'GET', 'docs/a').reason, 'revoked')
  })

  test('an API call and a WebDAV request with the same strings never answer for each other', () => {
    // A user allowed the API call `GET:docs/a` (service GET, api docs/a) but no WebDAV request.
    const store = withUser(frozenStore(), { id: 'integration', rights: ['GET:docs/a'] })
    const { secret } = issue(store)
    for (let i = 0; i < 3; i++) {
      assert.equal(store.isAllowed(secret, 'GET', 'docs/a'), true)
      assert.equal(store.isAllowedDav(secret, 'GET', 'docs/a'), false)
    }
    const other = withUser(frozenStore(), { id: 'integration', rights: ['dav=GET docs/a'] })
    const key = issue(other)
    for (let i = 0; i < 3; i++) {
      assert.equal(other.isAllowedDav(key.secret, 'GET', 'docs/a'), true)
      assert.equal(other.isAllowed(key.secret, 'GET', 'docs/a'), false)
    }
  })

  test('a key with IP rules is answered per caller address', () => {
    const { store, secret } = docsStore(['ip=10.0.0.0/8'])
    for (let i = 0; i < 3; i++) {
      assert.equal(store.isAllowedDav(secret, 'GET', 'docs/a', '10.0.0.1'), true)
      assert.equal(store.isAllowedDav(secret, 'GET', 'docs/a', '11.0.0.1'), false)
      assert.equal(store.isAllowedDav(secret, 'GET', 'docs/a'), false)
    }
  })

  test('uses answered from the memo reach lastUsedAt', () => {
    const { store, secret, id } = docsStore()
    assert.equal(store.getKey(id)?.lastUsedAt, null)
    assert.equal(store.isAllowedDav(secret, 'GET', 'docs/a'), true)
    assert.equal(store.isAllowedDav(secret, 'GET', 'docs/a'), true)
    assert.deepEqual(store.getKey(id)?.lastUsedAt, store.now())
  })

  test('a closed store refuses WebDAV checks', () => {
    const { store, secret } = docsStore()
    store.close()
    throwsCode(() => store.isAllowedDav(secret, 'GET', 'docs/a'), 'STORE_IO')
    throwsCode(() => store.explainDav(secret, 'GET', 'docs/a'), 'STORE_IO')
  })
})
