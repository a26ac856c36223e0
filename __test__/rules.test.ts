// Rule syntax and matching: API rules, IP rules, validateRule, limits.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'

import { KeyStore } from '../index.js'
import { assertNoSecret, forgeSecret, frozenStore, issue, snapshot, throwsCode, withUser } from './helpers.js'

/** A key restricted to exactly `rule` (user may call anything). */
function ruleKey(rule: string) {
  const store = withUser(frozenStore())
  const { secret } = issue(store, { rules: [rule] })
  return (service: string, api: string) => {
    const decision = store.explain(secret, service, api)
    const allowed = store.isAllowed(secret, service, api)
    assert.equal(allowed, decision.allowed)
    if (!allowed) assert.equal(decision.reason, 'no_matching_rule', `${rule} vs ${service}:${api}`)
    return allowed
  }
}

/** A user whose only right is `right` (key unrestricted). */
function rightKey(right: string) {
  const store = withUser(frozenStore(), { id: 'integration', rights: [right] })
  const { secret } = issue(store)
  return (service: string, api: string) => store.isAllowed(secret, service, api)
}

describe('API rules: the documented examples (real Hornbill names)', () => {
  const cases: Array<[string, Array<[string, string]>, Array<[string, string]>]> = [
    [
      'session:*',
      [
        ['session', 'userLogon'],
        ['session', 'getSessionInfo'],
      ],
      [
        ['admin', 'userCreate'],
        ['sessions', 'userLogon'],
      ],
    ],
    [
      'session:get*',
      [
        ['session', 'getSessionInfo'],
        ['session', 'get'],
      ],
      [
        ['session', 'userLogon'],
        ['session', 'xgetSessionInfo'],
      ],
    ],
    [
      'data:entityBrowseRecords2',
      [['data', 'entityBrowseRecords2']],
      [
        ['data', 'entityBrowseRecords'],
        ['data', 'entityBrowseRecords22'],
      ],
    ],
    [
      'admin:keysafeGetKey',
      [['admin', 'keysafeGetKey']],
      [
        ['admin', 'keysafeGetKeys'],
        ['admin', 'userCreate'],
      ],
    ],
    [
      'apps/com.hornbill.servicemanager/Requests:holdRequest',
      [['apps/com.hornbill.servicemanager/Requests', 'holdRequest']],
      [
        ['apps/com.hornbill.servicemanager/AssetUsers', 'holdRequest'],
        ['apps/com.hornbill.servicemanager', 'holdRequest'],
      ],
    ],
    [
      'apps/com.hornbill.core/*:*',
      [
        ['apps/com.hornbill.core/Achievement', 'addAchievement'],
        ['apps/com.hornbill.core/', 'x'],
      ],
      [
        ['apps/com.hornbill.core', 'addHistory'],
        ['apps/com.hornbill.servicemanager/Requests', 'holdRequest'],
      ],
    ],
    [
      'apps/com.hornbill.core:*',
      [['apps/com.hornbill.core', 'addHistory']],
      [
        ['apps/com.hornbill.core/Achievement', 'addAchievement'],
        ['apps/com.hornbill.corex', 'addHistory'],
      ],
    ],
    [
      '*:userLogon',
      [
        ['session', 'userLogon'],
        ['apps/com.hornbill.core', 'userLogon'],
      ],
      [
        ['session', 'userLogonX'],
        ['session', 'getSessionInfo'],
      ],
    ],
    [
      'data:entity???Record',
      [
        ['data', 'entityAddRecord'],
        ['data', 'entityGetRecord'],
      ],
      [
        ['data', 'entityBrowseRecords2'],
        ['data', 'entityAdRecord'],
        ['data', 'entityAddsRecord'],
      ],
    ],
    ['session:getSessionInfo', [['session', 'getSessionInfo']], [['session', 'getSessionInf']]],
    ['apps/com.hornbill.core/Achievement:*', [['apps/com.hornbill.core/Achievement', 'addAchievement']], [['apps/com.hornbill.core', 'addAchievement']]],
    ['apps/com.hornbill.core:addHistory', [['apps/com.hornbill.core', 'addHistory']], [['apps/com.hornbill.core', 'addHistory2']]],
  ]
  for (const [rule, yes, no] of cases) {
    test(rule, () => {
      assert.equal(KeyStore.validateRule(rule), rule)
      const asKeyRule = ruleKey(rule)
      const asRight = rightKey(rule)
      for (const [service, api] of yes) {
        assert.equal(asKeyRule(service, api), true, `key rule ${rule} should match ${service}:${api}`)
        assert.equal(asRight(service, api), true, `right ${rule} should match ${service}:${api}`)
      }
      for (const [service, api] of no) {
        assert.equal(asKeyRule(service, api), false, `key rule ${rule} should not match ${service}:${api}`)
        assert.equal(asRight(service, api), false, `right ${rule} should not match ${service}:${api}`)
      }
    })
  }
})

describe('wildcards and case', () => {
  test('* matches any run, also none', () => {
    const m = ruleKey('session:*Info')
    assert.equal(m('session', 'Info'), true)
    assert.equal(m('session', 'getSessionInfo'), true)
    assert.equal(m('session', 'getSessionInfos'), false)
    const mid = ruleKey('data:entity*Record*')
    assert.equal(mid('data', 'entityRecord'), true)
    assert.equal(mid('data', 'entityAddRecord'), true)
    assert.equal(mid('data', 'entityBrowseRecords2'), true)
    assert.equal(mid('data', 'entityBrowse'), false)
    const many = ruleKey('a*b*c:*')
    assert.equal(many('abc', 'x'), true)
    assert.equal(many('aXXbYYc', 'x'), true)
    assert.equal(many('aXXbYY', 'x'), false)
    assert.equal(many('acbc', 'x'), true)
    const stars = ruleKey('**:***')
    assert.equal(stars('anything', 'atAll'), true)
  })

  test('? matches exactly one character', () => {
    const m = ruleKey('s?ssion:get?')
    assert.equal(m('session', 'getX'), true)
    assert.equal(m('sussion', 'get1'), true)
    assert.equal(m('ssion', 'getX'), false)
    assert.equal(m('seession', 'getX'), false)
    assert.equal(m('session', 'get'), false)
    assert.equal(m('session', 'getXY'), false)
    const one = ruleKey('?:?')
    assert.equal(one('a', 'b'), true)
    assert.equal(one('ab', 'b'), false)
    const mixed = ruleKey('data:?*?')
    assert.equal(mixed('data', 'ab'), true)
    assert.equal(mixed('data', 'a'), false)
  })

  test('wildcards never cross the ":" (service and api are matched separately, anchored)', () => {
    const svc = ruleKey('session*:userLogon')
    assert.equal(svc('session', 'userLogon'), true)
    assert.equal(svc('sessionX', 'userLogon'), true)
    assert.equal(svc('session', 'getuserLogon'), false)
    assert.equal(svc('session', 'userLogonX'), false)
    const api = ruleKey('session:*Logon')
    assert.equal(api('xsession', 'userLogon'), false)
    assert.equal(api('session', 'userLogon'), true)
    const anchored = ruleKey('ses:get')
    assert.equal(anchored('session', 'getSessionInfo'), false)
    assert.equal(anchored('ses', 'get'), true)
    const q = ruleKey('session?userLogon:*')
    assert.equal(q('session', 'userLogon'), false)
  })

  test('matching ignores ASCII case, in key rules and in rights', () => {
    const m = ruleKey('SESSION:GETSESSIONINFO')
    assert.equal(m('session', 'getSessionInfo'), true)
    assert.equal(m('Session', 'GetSessionInfo'), true)
    const w = ruleKey('Apps/Com.Hornbill.Core/*:Add*')
    assert.equal(w('apps/com.hornbill.core/Achievement', 'addAchievement'), true)
    const r = rightKey('DATA:entity???RECORD')
    assert.equal(r('data', 'EntityAddRecord'), true)
    assert.equal(r('DATA', 'entityaddrecord'), true)
  })

  test('the matched rule keeps the case it was written in', () => {
    const store = withUser(frozenStore())
    const { secret } = issue(store, { rules: ['Session:Get*'] })
    assert.equal(store.explain(secret, 'session', 'getSessionInfo').matchedRule, 'Session:Get*')
  })
})

describe('KeyStore.validateRule', () => {
  test('returns the normalised rule: trimmed, ip= canonical and lower-case', () => {
    assert.equal(KeyStore.validateRule('session:*'), 'session:*')
    assert.equal(KeyStore.validateRule('  session:get*\t'), 'session:get*')
    assert.equal(KeyStore.validateRule('\n data:queryExec \r\n'), 'data:queryExec')
    assert.equal(KeyStore.validateRule('ip=142.250.200.46'), 'ip=142.250.200.46')
    assert.equal(KeyStore.validateRule('ip=142.250.200.0/24'), 'ip=142.250.200.0/24')
    assert.equal(KeyStore.validateRule(' IP=10.0.0.0/8 '), 'ip=10.0.0.0/8')
    assert.equal(KeyStore.validateRule('Ip=10.0.0.0/8'), 'ip=10.0.0.0/8')
    assert.equal(KeyStore.validateRule('ip=2001:DB8::/32'), 'ip=2001:db8::/32')
    assert.equal(KeyStore.validateRule('ip=2001:0db8:0000:0000:0000:0000:0000:0000/32'), 'ip=2001:db8::/32')
    assert.equal(KeyStore.validateRule('ip=::1'), 'ip=::1')
    assert.equal(KeyStore.validateRule('ip=0.0.0.0/0'), 'ip=0.0.0.0/0')
  })

  test('normalising is idempotent and stores rules in the normalised form', () => {
    const rules = ['  session:*  ', 'IP=10.0.0.0/8', 'ip=2001:DB8:0::/48', 'ip=192.168.1.7/32', 'data:entity???Record']
    const store = withUser(frozenStore())
    const { key } = issue(store, { rules })
    const normalised = rules.map((r) => KeyStore.validateRule(r))
    assert.deepEqual(key.rules, normalised)
    for (const r of normalised) assert.equal(KeyStore.validateRule(r), r)
    store.putUser({ id: 'integration', rights: ['  session:*  ', 'DATA:*'] })
    assert.deepEqual(store.getUser('integration')!.rights, ['session:*', 'DATA:*'])
  })

  test('throws INVALID_RULE whose message names the rule, for each kind of mistake', () => {
    const bad = [
      'session',
      'session*',
      '*',
      'a:b:c',
      ':getSessionInfo',
      'session:',
      ':',
      'ses sion:get',
      'session:get Info',
      'session:get$',
      'sessión:get',
      'session:getInfo;drop',
      'session:get\\Info',
      'session,data:get',
      'ip=300.1.1.1',
      'ip=10.0.0.0/33',
      'ip=2001:db8::/129',
      'ip=10.0.0.1/8',
      'ip=10.0.0.0/',
      'ip=10.0.0.0/-1',
      'ip=10.0.0.0/8/8',
      'ip=',
      'ip=localhost',
      'ip=10.0.0',
      'ip =10.0.0.1',
      'dav=GET  session/*',
      'dav=GET session/../x',
    ]
    for (const rule of bad) {
      const error = throwsCode(() => KeyStore.validateRule(rule), 'INVALID_RULE')
      // The rule may be shown quoted with escapes (a backslash as \\).
      const named = error.message.includes(rule.trim()) || error.message.includes(JSON.stringify(rule.trim()).slice(1, -1))
      assert.ok(named, `message ${JSON.stringify(error.message)} should name ${JSON.stringify(rule)}`)
    }
  })

  test('empty and blank rules are INVALID_RULE', () => {
    for (const rule of ['', ' ', '\t\n']) throwsCode(() => KeyStore.validateRule(rule), 'INVALID_RULE')
  })

  test('IP rules with host bits set are refused (ip=10.0.0.1/8)', () => {
    throwsCode(() => KeyStore.validateRule('ip=10.0.0.1/8'), 'INVALID_RULE', 'ip=10.0.0.1/8')
    throwsCode(() => KeyStore.validateRule('ip=142.250.200.46/24'), 'INVALID_RULE', 'ip=142.250.200.46/24')
    throwsCode(() => KeyStore.validateRule('ip=2001:db8::1/32'), 'INVALID_RULE')
    assert.equal(KeyStore.validateRule('ip=10.0.0.1/32'), KeyStore.validateRule('ip=10.0.0.1'))
  })

  test('a non-string is INVALID_ARGUMENT', () => {
    throwsCode(() => KeyStore.validateRule(42 as never), 'INVALID_ARGUMENT')
    throwsCode(() => KeyStore.validateRule(undefined as never), 'INVALID_ARGUMENT')
  })

  test('the same rules are refused by createKey, updateKey, putUser and putRole', () => {
    const store = withUser(frozenStore())
    const { key } = issue(store)
    throwsCode(() => issue(store, { rules: ['session:*', 'a:b:c'] }), 'INVALID_RULE', 'a:b:c')
    throwsCode(() => issue(store, { rules: [''] }), 'INVALID_RULE')
    throwsCode(() => store.updateKey(key.id, { rules: ['ip=10.0.0.1/8'] }), 'INVALID_RULE', 'ip=10.0.0.1/8')
    throwsCode(() => store.putUser({ id: 'x', rights: ['ses sion:x'] }), 'INVALID_RULE', 'ses sion:x')
    throwsCode(() => store.putRole({ name: 'x', rights: ['*'] }), 'INVALID_RULE')
  })
})

describe('limits', () => {
  test('a rule of 256 chars is fine, 257 is INVALID_RULE (whitespace around does not count)', () => {
    const rule256 = `session:${'a'.repeat(248)}`
    assert.equal(rule256.length, 256)
    assert.equal(KeyStore.validateRule(rule256), rule256)
    assert.equal(KeyStore.validateRule(`   ${rule256}   `), rule256)
    const rule257 = `session:${'a'.repeat(249)}`
    const error = throwsCode(() => KeyStore.validateRule(rule257), 'INVALID_RULE')
    assert.ok(error.message.includes('session:'), error.message)
    assert.ok(error.message.length < 2000, 'the message stays short')
    const store = withUser(frozenStore())
    throwsCode(() => issue(store, { rules: [rule257] }), 'INVALID_RULE')
    assert.ok(issue(store, { rules: [rule256] }))
  })

  test('1,000 rules per key, user and role are fine; 1,001 is INVALID_RULE', () => {
    const store = withUser(frozenStore())
    const rules = Array.from({ length: 1000 }, (_, i) => `svc${i}:api${i}`)
    const { key, secret } = issue(store, { rules })
    assert.equal(key.rules.length, 1000)
    assert.equal(store.explain(secret, 'svc999', 'api999').matchedRule, 'svc999:api999')
    assert.equal(store.explain(secret, 'svc999', 'api998').reason, 'no_matching_rule')
    const tooMany = [...rules, 'svc1000:api1000']
    throwsCode(() => issue(store, { rules: tooMany }), 'INVALID_RULE', '1001')
    throwsCode(() => store.updateKey(key.id, { rules: tooMany }), 'INVALID_RULE')
    assert.ok(store.putUser({ id: 'many', rights: rules }))
    throwsCode(() => store.putUser({ id: 'many2', rights: tooMany }), 'INVALID_RULE')
    assert.ok(store.putRole({ name: 'many', rights: rules }))
    throwsCode(() => store.putRole({ name: 'many2', rights: tooMany }), 'INVALID_RULE')
    assert.equal(store.getUser('many2'), null)
    assert.equal(store.getRole('many2'), null)
  })

  test('user rights and key rules of 1,000 rules are matched in full', () => {
    const store = frozenStore()
    const rights = Array.from({ length: 1000 }, (_, i) => `svc${i}:*`)
    store.putUser({ id: 'integration', rights })
    const { secret } = issue(store)
    assert.equal(store.isAllowed(secret, 'svc999', 'anything'), true)
    assert.equal(store.isAllowed(secret, 'svc1000', 'anything'), false)
  })
})

describe('rules that cannot be what was meant', () => {
  test('a rule holding a well-formed secret (any prefix) is INVALID_RULE, everywhere, without the secret in the message', () => {
    const store = withUser(frozenStore())
    const { key, secret } = issue(store)
    const before = snapshot(store)
    for (const leaked of [secret, forgeSecret('acme'), forgeSecret('x9')]) {
      for (const rule of [`${leaked}:*`, `session:${leaked}`, `apps/${leaked}/x:y`]) {
        const errors = [
          throwsCode(() => KeyStore.validateRule(rule), 'INVALID_RULE', 'looks like a keygate secret'),
          throwsCode(() => issue(store, { rules: [rule] }), 'INVALID_RULE'),
          throwsCode(() => store.updateKey(key.id, { rules: ['session:*', rule] }), 'INVALID_RULE'),
          throwsCode(() => store.putUser({ id: 'integration', rights: [rule] }), 'INVALID_RULE'),
          throwsCode(() => store.putRole({ name: 'ops', rights: [rule] }), 'INVALID_RULE'),
        ]
        for (const error of errors) assertNoSecret(error.message, leaked)
      }
    }
    assert.deepEqual(snapshot(store), before)
    assertNoSecret(store.audit(), secret)
    // The same shape with a wrong checksum is no secret: an ordinary (odd) rule.
    assert.equal(KeyStore.validateRule(`kg_${'a'.repeat(49)}:*`), `kg_${'a'.repeat(49)}:*`)
  })

  test("operations written as Hornbill's API reference writes them get the rule meant", () => {
    throwsCode(() => KeyStore.validateRule('session::userLogon'), 'INVALID_RULE', 'did you mean session:userLogon?')
    throwsCode(
      () => KeyStore.validateRule('com.hornbill.servicemanager::Requests/logRequest'),
      'INVALID_RULE',
      'did you mean apps/com.hornbill.servicemanager/Requests:logRequest?',
    )
    assert.equal(KeyStore.validateRule('apps/com.hornbill.servicemanager/Requests:logRequest'), 'apps/com.hornbill.servicemanager/Requests:logRequest')
    const error = throwsCode(() => KeyStore.validateRule('a:b:c'), 'INVALID_RULE')
    assert.ok(!error.message.includes('did you mean'), error.message)
  })
})
