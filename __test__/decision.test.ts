// The decision (README, "The decision"): every reason, their order, explain's fields, IP rules.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'

import type { KeyStore } from '../index.js'
import type { Decision, Reason } from '../index.js'
import { DAY, HOUR, T0, at, forgeSecret, frozenStore, issue, withUser } from './helpers.js'

/**
 * Asserts the reason from explain, that explainKey gives the same decision from the key id,
 * and that isAllowed agrees (twice, to also go through any memo).
 */
function expectReason(store: KeyStore, reason: Reason, secret: string, service: string, api: string, ip?: string): Decision {
  const decision = store.explain(secret, service, api, ip)
  assert.equal(decision.reason, reason, `explain(${service}:${api}${ip === undefined ? '' : ` from ${ip}`})`)
  assert.equal(decision.allowed, reason === 'allowed')
  if (decision.keyId !== undefined) {
    assert.deepEqual(store.explainKey(decision.keyId, service, api, ip), decision, `explainKey(${service}:${api}) agrees`)
  }
  for (let i = 0; i < 2; i++) {
    assert.equal(store.isAllowed(secret, service, api, ip), reason === 'allowed', `isAllowed(${service}:${api}) #${i + 1}`)
  }
  return decision
}

describe('each reason of the decision', () => {
  test('allowed', () => {
    const store = withUser(frozenStore())
    const { key, secret } = issue(store)
    const d = expectReason(store, 'allowed', secret, 'session', 'getSessionInfo')
    assert.equal(d.keyId, key.id)
    assert.equal(d.userId, 'integration')
  })

  test('malformed_key: wrong prefix, length, alphabet or checksum; no keyId/userId', () => {
    const store = withUser(frozenStore())
    const { secret } = issue(store)
    const flipped = (i: number) => secret.slice(0, i) + (secret[i] === 'a' ? 'b' : 'a') + secret.slice(i + 1)
    const cases = [
      '',
      'kg_',
      'kg',
      secret.slice(0, -1),
      `${secret}a`,
      `KG${secret.slice(2)}`,
      `xx${secret.slice(2)}`,
      secret.replace('_', '-'),
      `${secret.slice(0, 10)}!${secret.slice(11)}`,
      flipped(3),
      flipped(20),
      flipped(45),
      flipped(secret.length - 1),
      `${secret.slice(0, -6)}000000`,
      '0123456789abcdef0123456789abcdef',
      `Bearer ${secret}`,
    ]
    for (const bad of cases) {
      const d = expectReason(store, 'malformed_key', bad, 'session', 'getSessionInfo')
      assert.deepEqual(d, { allowed: false, reason: 'malformed_key' }, bad)
      assert.ok(!('keyId' in d) && !('userId' in d) && !('matchedRule' in d))
    }
  })

  test('a secret with a wrong checksum is malformed_key (every single-character change)', () => {
    const store = withUser(frozenStore())
    const { secret } = issue(store)
    for (let i = 3; i < secret.length; i++) {
      for (const c of ['0', 'z', 'Q']) {
        if (secret[i] === c) continue
        const bad = secret.slice(0, i) + c + secret.slice(i + 1)
        assert.equal(store.explain(bad, 'session', 'getSessionInfo').reason, 'malformed_key', `position ${i}`)
        assert.equal(store.isAllowed(bad, 'session', 'getSessionInfo'), false)
      }
    }
  })

  test('unknown_key: well formed but never issued here (deleted, other store, forged); no keyId/userId', () => {
    const store = withUser(frozenStore())
    const other = withUser(frozenStore())
    const deleted = issue(store)
    store.deleteKey(deleted.key.id)
    for (const secret of [deleted.secret, issue(other).secret, forgeSecret(), forgeSecret()]) {
      const d = expectReason(store, 'unknown_key', secret, 'session', 'getSessionInfo')
      assert.deepEqual(d, { allowed: false, reason: 'unknown_key' })
    }
  })

  test('invalid_request: bad service or api names (the key is named)', () => {
    const store = withUser(frozenStore())
    const { key, secret } = issue(store)
    const bad: Array<[string, string]> = [
      ['', 'getSessionInfo'],
      ['session', ''],
      ['session', 'get*'],
      ['sess?on', 'getSessionInfo'],
      ['*', '*'],
      ['session', 'get:SessionInfo'],
      ['session:getSessionInfo', 'x'],
      ['session ', 'getSessionInfo'],
      [' session', 'getSessionInfo'],
      ['session', 'getSessionInfo\n'],
      ['session', 'get Session'],
      ['séssion', 'getSessionInfo'],
      ['session', 'getSessionInfo\u0000'],
      ['session', 'a'.repeat(257)],
      ['s'.repeat(257), 'getSessionInfo'],
      ['session', 'get$'],
      ['data', 'entity\\Add'],
      ['apps/com.hornbill.core', 'add%History'],
    ]
    for (const [service, api] of bad) {
      const d = expectReason(store, 'invalid_request', secret, service, api)
      assert.equal(d.keyId, key.id)
      assert.equal(d.userId, 'integration')
    }
  })

  test('valid names: the pattern alphabet, 1 to 256 chars', () => {
    const store = withUser(frozenStore())
    const { secret } = issue(store)
    for (const [service, api] of [
      ['a', 'b'],
      ['s'.repeat(256), 'a'.repeat(256)],
      ['apps/com.hornbill.servicemanager/Requests', 'holdRequest'],
      ['data', 'entityBrowseRecords2'],
      ['x_y-z.w/v', 'A-Z_09.az/'],
    ] as const) {
      expectReason(store, 'allowed', secret, service, api)
    }
  })

  test('suspended and revoked', () => {
    const store = withUser(frozenStore())
    const s = issue(store, { state: 'suspended' })
    expectReason(store, 'suspended', s.secret, 'session', 'getSessionInfo')
    const r = issue(store)
    store.setState(r.key.id, 'revoked')
    const d = expectReason(store, 'revoked', r.secret, 'session', 'getSessionInfo')
    assert.equal(d.keyId, r.key.id)
  })

  test('expired', () => {
    const store = withUser(frozenStore())
    const { secret } = issue(store, { expiresAt: at(T0, HOUR) })
    store.setNow(at(T0, HOUR))
    expectReason(store, 'expired', secret, 'session', 'getSessionInfo')
  })

  test('user_inactive: suspended and archived users', () => {
    const store = withUser(frozenStore())
    const { secret } = issue(store)
    store.putUser({ id: 'integration', status: 'suspended', rights: ['*:*'] })
    const d = expectReason(store, 'user_inactive', secret, 'session', 'getSessionInfo')
    assert.equal(d.userId, 'integration')
    store.putUser({ id: 'integration', status: 'archived', rights: ['*:*'] })
    expectReason(store, 'user_inactive', secret, 'session', 'getSessionInfo')
    store.putUser({ id: 'integration', status: 'active', rights: ['*:*'] })
    expectReason(store, 'allowed', secret, 'session', 'getSessionInfo')
  })

  test('user_lacks_right', () => {
    const store = withUser(frozenStore(), { id: 'integration', rights: ['session:*'] })
    const { secret } = issue(store)
    expectReason(store, 'user_lacks_right', secret, 'admin', 'keysafeGetKey')
  })

  test('no_matching_rule', () => {
    const store = withUser(frozenStore())
    const { secret } = issue(store, { rules: ['session:getSessionInfo', 'data:entityBrowseRecords2'] })
    expectReason(store, 'no_matching_rule', secret, 'session', 'userLogon')
    expectReason(store, 'no_matching_rule', secret, 'data', 'entityAddRecord')
  })

  test('ip_not_allowed', () => {
    const store = withUser(frozenStore())
    const { secret } = issue(store, { rules: ['ip=142.250.200.46'] })
    expectReason(store, 'ip_not_allowed', secret, 'session', 'getSessionInfo', '142.250.200.47')
    expectReason(store, 'allowed', secret, 'session', 'getSessionInfo', '142.250.200.46')
  })
})

describe('the order of the steps (the first failure is the reason)', () => {
  test('1 before 2: garbage is malformed_key, never unknown_key', () => {
    const store = withUser(frozenStore())
    expectReason(store, 'malformed_key', 'kg_notavalidsecret', 'bad name', '')
  })

  test('2 before 3: an unknown but well-formed key with invalid names is unknown_key', () => {
    const store = withUser(frozenStore())
    const gone = issue(store)
    store.deleteKey(gone.key.id)
    expectReason(store, 'unknown_key', gone.secret, 'bad name', '*')
    expectReason(store, 'unknown_key', forgeSecret(), '', '')
  })

  test('3 before 4: a suspended or revoked key asked with an invalid service name is invalid_request', () => {
    const store = withUser(frozenStore())
    const s = issue(store, { state: 'suspended' })
    expectReason(store, 'invalid_request', s.secret, 'session*', 'getSessionInfo')
    const r = issue(store)
    store.setState(r.key.id, 'revoked')
    expectReason(store, 'invalid_request', r.secret, 'session', '')
  })

  test('4 before 5: a suspended or revoked key past its expiry reports its state', () => {
    const store = withUser(frozenStore())
    const s = issue(store, { state: 'suspended', expiresAt: at(T0, HOUR) })
    const r = issue(store, { expiresAt: at(T0, HOUR) })
    store.setState(r.key.id, 'revoked')
    store.setNow(at(T0, 2 * HOUR))
    expectReason(store, 'suspended', s.secret, 'session', 'getSessionInfo')
    expectReason(store, 'revoked', r.secret, 'session', 'getSessionInfo')
  })

  test('5 before 6: an expired key of a suspended user is expired', () => {
    const store = withUser(frozenStore())
    const { secret } = issue(store, { expiresAt: at(T0, HOUR) })
    store.putUser({ id: 'integration', status: 'suspended', rights: ['*:*'] })
    store.setNow(at(T0, HOUR))
    expectReason(store, 'expired', secret, 'session', 'getSessionInfo')
  })

  test('6 before 7: an inactive user lacking the right is user_inactive', () => {
    const store = withUser(frozenStore(), { id: 'integration', rights: ['session:*'] })
    const { secret } = issue(store, { rules: ['session:*'] })
    store.putUser({ id: 'integration', status: 'archived', rights: ['session:*'] })
    expectReason(store, 'user_inactive', secret, 'admin', 'userCreate')
  })

  test('7 before 8: lacking the right wins over a key rule that does not match', () => {
    const store = withUser(frozenStore(), { id: 'integration', rights: ['session:*'] })
    const { secret } = issue(store, { rules: ['session:getSessionInfo', 'ip=10.0.0.0/8'] })
    expectReason(store, 'user_lacks_right', secret, 'admin', 'userCreate', '192.168.1.1')
  })

  test('8 before 9: no matching API rule wins over a disallowed IP', () => {
    const store = withUser(frozenStore())
    const { secret } = issue(store, { rules: ['session:getSessionInfo', 'ip=10.0.0.0/8'] })
    expectReason(store, 'no_matching_rule', secret, 'session', 'userLogon', '192.168.1.1')
    expectReason(store, 'no_matching_rule', secret, 'session', 'userLogon')
    expectReason(store, 'ip_not_allowed', secret, 'session', 'getSessionInfo', '192.168.1.1')
    expectReason(store, 'allowed', secret, 'session', 'getSessionInfo', '10.20.30.40')
  })
})

describe('explain', () => {
  test('allowed decision carries keyId, userId and the first matching API rule in list order', () => {
    const store = withUser(frozenStore())
    const { key, secret } = issue(store, {
      rules: ['ip=10.0.0.0/8', 'session:userLogon', '  session:get*', 'session:*', '*:getSessionInfo'],
    })
    assert.deepEqual(store.explain(secret, 'session', 'getSessionInfo', '10.0.0.1'), {
      allowed: true,
      reason: 'allowed',
      keyId: key.id,
      userId: 'integration',
      matchedRule: 'session:get*',
    })
    assert.equal(store.explain(secret, 'session', 'userLogon', '10.0.0.1').matchedRule, 'session:userLogon')
    assert.equal(store.explain(secret, 'session', 'logoff', '10.0.0.1').matchedRule, 'session:*')
    assert.equal(store.explain(secret, 'SESSION', 'GETSESSIONINFO', '10.0.0.1').matchedRule, 'session:get*')
  })

  test('matchedRule follows the list order after updateKey reorders rules', () => {
    const store = withUser(frozenStore())
    const { key, secret } = issue(store, { rules: ['session:*', 'session:getSessionInfo'] })
    assert.equal(store.explain(secret, 'session', 'getSessionInfo').matchedRule, 'session:*')
    store.updateKey(key.id, { rules: ['session:getSessionInfo', 'session:*'] })
    assert.equal(store.explain(secret, 'session', 'getSessionInfo').matchedRule, 'session:getSessionInfo')
  })

  test('an IP denial still names the API rule that matched (step 8 passed); earlier denials name none', () => {
    const store = withUser(frozenStore())
    const { key, secret } = issue(store, { rules: ['session:*', 'ip=10.0.0.0/8'] })
    assert.deepEqual(store.explain(secret, 'session', 'userLogon', '192.168.0.1'), {
      allowed: false,
      reason: 'ip_not_allowed',
      keyId: key.id,
      userId: 'integration',
      matchedRule: 'session:*',
    })
    assert.equal(store.explainKey(key.id, 'session', 'userLogon').matchedRule, 'session:*')
    assert.ok(!('matchedRule' in store.explain(secret, 'data', 'entityBrowseRecords2', '10.0.0.1')), 'no_matching_rule')
    store.putUser({ id: 'integration', rights: ['data:*'] })
    assert.ok(!('matchedRule' in store.explain(secret, 'session', 'userLogon', '10.0.0.1')), 'user_lacks_right')
  })

  test('no matchedRule when the key has no API rules', () => {
    const store = withUser(frozenStore())
    const { key, secret } = issue(store, { rules: ['ip=10.0.0.0/8'] })
    assert.deepEqual(store.explain(secret, 'session', 'getSessionInfo', '10.1.1.1'), {
      allowed: true,
      reason: 'allowed',
      keyId: key.id,
      userId: 'integration',
    })
    const plain = issue(store)
    assert.deepEqual(store.explain(plain.secret, 'data', 'queryExec'), {
      allowed: true,
      reason: 'allowed',
      keyId: plain.key.id,
      userId: 'integration',
    })
  })

  test('explain and isAllowed agree, and explain returns only the documented fields', () => {
    const store = withUser(frozenStore(), { id: 'integration', rights: ['session:*', 'data:*'] })
    const a = issue(store, { rules: ['session:get*', 'data:entity*', 'ip=10.0.0.0/8', 'ip=2001:db8::/32'] })
    const b = issue(store, { state: 'suspended' })
    const secrets = [a.secret, b.secret, forgeSecret(), 'garbage', '']
    const calls: Array<[string, string, string | undefined]> = [
      ['session', 'getSessionInfo', '10.1.2.3'],
      ['session', 'getSessionInfo', '2001:db8::1'],
      ['session', 'getSessionInfo', undefined],
      ['session', 'userLogon', '10.1.2.3'],
      ['data', 'entityAddRecord', '10.1.2.3'],
      ['admin', 'userCreate', '10.1.2.3'],
      ['', 'x', '10.1.2.3'],
    ]
    for (const secret of secrets) {
      for (const [service, api, ip] of calls) {
        const d = store.explain(secret, service, api, ip)
        for (const field of Object.keys(d)) {
          assert.ok(['allowed', 'reason', 'keyId', 'userId', 'matchedRule'].includes(field), field)
        }
        assert.equal(store.isAllowed(secret, service, api, ip), d.allowed)
        assert.equal(d.allowed, d.reason === 'allowed')
      }
    }
  })
})

describe('explainKey', () => {
  test('decides steps 3-9 from the key id; an unknown id is unknown_key; a non-string is a TypeError', () => {
    const store = withUser(frozenStore(), { id: 'integration', rights: ['session:*'] })
    const { key } = issue(store, { rules: ['session:get*', 'ip=10.0.0.0/8'] })
    assert.deepEqual(store.explainKey(key.id, 'session', 'getSessionInfo', '10.1.2.3'), {
      allowed: true,
      reason: 'allowed',
      keyId: key.id,
      userId: 'integration',
      matchedRule: 'session:get*',
    })
    assert.equal(store.explainKey(key.id, 'session', 'getSessionInfo').reason, 'ip_not_allowed')
    assert.equal(store.explainKey(key.id, 'session', 'bad name', '10.1.2.3').reason, 'invalid_request')
    for (const unknown of ['key_00000000000000000000000000000000', 'nope', '']) {
      assert.deepEqual(store.explainKey(unknown, 'session', 'getSessionInfo'), { allowed: false, reason: 'unknown_key' })
    }
    assert.throws(() => store.explainKey(42 as unknown as string, 'session', 'x'), TypeError)
    assert.throws(() => store.explainKey(key.id, 'session', null as unknown as string), TypeError)
    assert.equal(store.getKey(key.id)?.lastUsedAt, null, 'a diagnosis, not a use')
  })
})

describe('IP rules', () => {
  function keyWith(rules: string[]) {
    const store = withUser(frozenStore())
    const { secret } = issue(store, { rules })
    const ask = (ip?: string) => store.explain(secret, 'session', 'getSessionInfo', ip).reason
    const allowed = (ip?: string) => store.isAllowed(secret, 'session', 'getSessionInfo', ip)
    return { store, secret, ask, allowed }
  }

  test('IPv4 single address', () => {
    const { ask, allowed } = keyWith(['ip=142.250.200.46'])
    assert.equal(ask('142.250.200.46'), 'allowed')
    assert.equal(allowed('142.250.200.46'), true)
    assert.equal(ask('142.250.200.47'), 'ip_not_allowed')
    assert.equal(allowed('142.250.200.47'), false)
    assert.equal(ask('42.250.200.46'), 'ip_not_allowed')
  })

  test('no caller address: ip left out, undefined or null (typed so) is ip_not_allowed for a key with IP rules', () => {
    const store = withUser(frozenStore(), { id: 'integration', rights: ['*:*', 'dav=* *'] })
    const { key, secret } = issue(store, { rules: ['ip=142.250.200.46'] })
    const address: string | null = null // as `req.socket.remoteAddress ?? null` gives it
    for (const ip of [undefined, address]) {
      assert.equal(store.isAllowed(secret, 'session', 'getSessionInfo', ip), false)
      assert.equal(store.explain(secret, 'session', 'getSessionInfo', ip).reason, 'ip_not_allowed')
      assert.equal(store.explainKey(key.id, 'session', 'getSessionInfo', ip).reason, 'ip_not_allowed')
      assert.equal(store.isAllowedDav(secret, 'GET', 'docs/a', ip), false)
      assert.equal(store.explainDav(secret, 'GET', 'docs/a', ip).reason, 'ip_not_allowed')
      assert.equal(store.explainKeyDav(key.id, 'GET', 'docs/a', ip).reason, 'ip_not_allowed')
    }
  })

  test('IPv4 CIDR', () => {
    const { ask } = keyWith(['ip=142.250.200.0/24'])
    assert.equal(ask('142.250.200.0'), 'allowed')
    assert.equal(ask('142.250.200.255'), 'allowed')
    assert.equal(ask('142.250.201.0'), 'ip_not_allowed')
    assert.equal(ask('142.250.199.255'), 'ip_not_allowed')
    const wide = keyWith(['ip=10.0.0.0/8'])
    assert.equal(wide.ask('10.255.255.255'), 'allowed')
    assert.equal(wide.ask('11.0.0.0'), 'ip_not_allowed')
    const all = keyWith(['ip=0.0.0.0/0'])
    assert.equal(all.ask('8.8.8.8'), 'allowed')
  })

  test('IPv6 address and CIDR', () => {
    const { ask } = keyWith(['ip=2001:db8::/32'])
    assert.equal(ask('2001:db8::1'), 'allowed')
    assert.equal(ask('2001:db8:1::7'), 'allowed')
    assert.equal(ask('2001:DB8:ffff:ffff::1'), 'allowed')
    assert.equal(ask('2001:db9::1'), 'ip_not_allowed')
    assert.equal(ask('10.0.0.1'), 'ip_not_allowed')
    const one = keyWith(['ip=::1'])
    assert.equal(one.ask('::1'), 'allowed')
    assert.equal(one.ask('0:0:0:0:0:0:0:1'), 'allowed')
    assert.equal(one.ask('::2'), 'ip_not_allowed')
    assert.equal(one.ask('127.0.0.1'), 'ip_not_allowed')
  })

  test('an IPv4-mapped IPv6 address (::ffff:10.1.2.3) matches an IPv4 rule', () => {
    const { ask, allowed } = keyWith(['ip=10.0.0.0/8'])
    assert.equal(ask('::ffff:10.1.2.3'), 'allowed')
    assert.equal(allowed('::ffff:10.1.2.3'), true)
    assert.equal(ask('::ffff:11.1.2.3'), 'ip_not_allowed')
    const single = keyWith(['ip=142.250.200.46'])
    assert.equal(single.ask('::ffff:142.250.200.46'), 'allowed')
  })

  test('a missing, empty or unparsable ip, when the key has IP rules, is ip_not_allowed', () => {
    const { ask, allowed } = keyWith(['ip=10.0.0.0/8'])
    assert.equal(ask(), 'ip_not_allowed')
    assert.equal(ask(undefined), 'ip_not_allowed')
    assert.equal(allowed(), false)
    for (const ip of ['', 'localhost', '10.1.2', '10.1.2.3.4', '10.1.2.3:443', ' 10.1.2.3', '10.1.2.300', 'ip=10.1.2.3', '10.0.0.0/8']) {
      assert.equal(ask(ip), 'ip_not_allowed', ip)
      assert.equal(allowed(ip), false, ip)
    }
  })

  test('a key without IP rules allows any or no ip', () => {
    const { ask } = keyWith(['session:*'])
    assert.equal(ask(), 'allowed')
    assert.equal(ask('203.0.113.9'), 'allowed')
    assert.equal(ask('2001:db8::1'), 'allowed')
    assert.equal(ask('not an ip'), 'allowed')
  })

  test('several IP rules: one must match (OR); API and IP rules both must hold (AND)', () => {
    const { store, secret, ask } = keyWith(['ip=10.0.0.0/8', 'session:getSessionInfo', 'ip=192.168.1.7', 'ip=2001:db8::/32'])
    assert.equal(ask('10.9.8.7'), 'allowed')
    assert.equal(ask('192.168.1.7'), 'allowed')
    assert.equal(ask('2001:db8::42'), 'allowed')
    assert.equal(ask('192.168.1.8'), 'ip_not_allowed')
    assert.equal(store.explain(secret, 'session', 'userLogon', '10.9.8.7').reason, 'no_matching_rule')
  })

  test('decisions of IP-restricted keys depend on the ip of each call (no carry-over)', () => {
    const { allowed } = keyWith(['ip=10.0.0.0/8'])
    for (let i = 0; i < 3; i++) {
      assert.equal(allowed('10.1.2.3'), true)
      assert.equal(allowed('192.168.0.1'), false)
      assert.equal(allowed(), false)
      assert.equal(allowed(''), false)
      assert.equal(allowed('::ffff:10.1.2.3'), true)
    }
  })
})

describe('a realistic integration', () => {
  test('Hornbill service-manager integration keyed to its APIs and network', () => {
    const store = frozenStore()
    store.putRole({ name: 'sm-integration', rights: ['apps/com.hornbill.servicemanager/*:*', 'session:*'] })
    store.putRole({ name: 'data-reader', rights: ['data:entityBrowseRecords2', 'data:queryExec'] })
    store.putUser({ id: 'svc-sm-sync', rights: ['system:logMessage'], roles: ['sm-integration', 'data-reader'] })
    const { key, secret } = store.createKey({
      userId: 'svc-sm-sync',
      description: 'ServiceManager nightly sync',
      expiresAt: at(T0, 365 * DAY),
      rules: [
        'apps/com.hornbill.servicemanager/Requests:holdRequest',
        'apps/com.hornbill.servicemanager/AssetUsers:create',
        'session:getSessionInfo',
        'data:entityBrowseRecords2',
        'system:logMessage',
        'ip=142.250.200.0/24',
      ],
    })
    const ip = '142.250.200.46'
    assert.equal(store.isAllowed(secret, 'apps/com.hornbill.servicemanager/Requests', 'holdRequest', ip), true)
    assert.equal(store.isAllowed(secret, 'apps/com.hornbill.servicemanager/AssetUsers', 'create', ip), true)
    assert.equal(store.isAllowed(secret, 'session', 'getSessionInfo', ip), true)
    assert.equal(store.isAllowed(secret, 'system', 'logMessage', ip), true)
    assert.equal(store.isAllowed(secret, 'data', 'entityBrowseRecords2', ip), true)
    assert.equal(store.explain(secret, 'data', 'queryExec', ip).reason, 'no_matching_rule')
    assert.equal(store.explain(secret, 'admin', 'userCreate', ip).reason, 'user_lacks_right')
    assert.equal(store.explain(secret, 'bpm', 'iBridgeInvoke', ip).reason, 'user_lacks_right')
    assert.equal(store.explain(secret, 'session', 'getSessionInfo', '142.250.201.1').reason, 'ip_not_allowed')
    assert.equal(store.explain(secret, 'apps/com.hornbill.core', 'addHistory', ip).reason, 'user_lacks_right')
    assert.equal(store.explain(secret, 'session', 'getSessionInfo', ip).keyId, key.id)
  })
})
