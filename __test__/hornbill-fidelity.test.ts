// Hornbill's API keys as a Hornbill administrator knows them (README, "What keygate implements"):
// the in-app help's example rules against Hornbill's real service and API names, the key states,
// expiry, and what keygate does otherwise on purpose: a Hornbill key is no keygate key, there is
// no list of services, the in-memory store purges nothing, the default route has no instance.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import http from 'node:http'
import type { AddressInfo } from 'node:net'

import { KeyStore } from '../index.js'
import { createGuard, hornbillRoute } from 'keygate/http'
import { DAY, T0, at, frozenStore, throwsCode } from './helpers.js'

/** Real Hornbill calls, `<service>:<api>` (a service may hold `/` and `.`). */
const HORNBILL_CALLS = [
  'session:userLogon',
  'session:getSessionInfo',
  'admin:keysafeGetKey',
  'admin:userCreate',
  'admin:userSetAccountStatus',
  'data:entityAddRecord',
  'data:entityBrowseRecords2',
  'data:queryExec',
  'system:logMessage',
  'bpm:iBridgeInvoke',
  'apps/com.hornbill.core:addHistory',
  'apps/com.hornbill.core/Achievement:addAchievement',
  'apps/com.hornbill.servicemanager/Requests:holdRequest',
  'apps/com.hornbill.servicemanager/AssetUsers:create',
] as const

/** Each example rule (Hornbill's in-app help, then the README's) and the real calls it allows. */
const EXAMPLE_RULES: [string, string[]][] = [
  ['session:*', ['session:userLogon', 'session:getSessionInfo']],
  ['session:getSessionInfo', ['session:getSessionInfo']],
  ['session:get*', ['session:getSessionInfo']],
  ['apps/com.hornbill.core/Achievement:*', ['apps/com.hornbill.core/Achievement:addAchievement']],
  ['apps/com.hornbill.core:addHistory', ['apps/com.hornbill.core:addHistory']],
  ['apps/com.hornbill.core/*:*', ['apps/com.hornbill.core/Achievement:addAchievement']],
  ['apps/com.hornbill.core:*', ['apps/com.hornbill.core:addHistory']],
  ['*:userLogon', ['session:userLogon']],
  ['data:entity???Record', ['data:entityAddRecord']],
  ['data:entityBrowseRecords2', ['data:entityBrowseRecords2']],
  ['admin:keysafeGetKey', ['admin:keysafeGetKey']],
  ['apps/com.hornbill.servicemanager/Requests:holdRequest', ['apps/com.hornbill.servicemanager/Requests:holdRequest']],
  ['apps/*:*', HORNBILL_CALLS.filter((call) => call.startsWith('apps/'))],
]

function split(call: string): [string, string] {
  const colon = call.lastIndexOf(':')
  return [call.slice(0, colon), call.slice(colon + 1)]
}

describe("Hornbill's example rules against Hornbill's real calls", () => {
  for (const [rule, allows] of EXAMPLE_RULES) {
    test(`${rule} allows ${allows.join(', ')} and nothing else, in any case`, () => {
      const store = frozenStore()
      store.putUser({ id: 'svc-integration', rights: ['*:*'] })
      const { key, secret } = store.createKey({ userId: 'svc-integration', description: rule, expiresAt: at(T0, 30 * DAY), rules: [rule] })
      for (const call of HORNBILL_CALLS) {
        for (const written of [call, call.toUpperCase(), call.toLowerCase()]) {
          const [service, api] = split(written)
          const expected = allows.includes(call)
          const decision = store.explain(secret, service, api)
          assert.equal(decision.reason, expected ? 'allowed' : 'no_matching_rule', `${rule} on ${written}`)
          if (decision.allowed) assert.equal(decision.matchedRule, rule)
          assert.equal(decision.keyId, key.id)
          for (let i = 0; i < 2; i++) assert.equal(store.isAllowed(secret, service, api), expected, `${rule} on ${written}, check ${i + 1}`)
        }
      }
      store.close()
    })
  }
})

describe("a Hornbill account's keys end to end, with the real names", () => {
  test('rights through a role narrowed by rules, IP rules, states, expiry, and the listing per user account', () => {
    const store = frozenStore()
    store.putRole({ name: 'service-desk', rights: ['apps/com.hornbill.servicemanager/*:*', 'session:*'] })
    store.putUser({ id: 'svc.requests@acme', roles: ['service-desk'], rights: ['admin:userSetAccountStatus', 'bpm:iBridgeInvoke'] })
    store.putUser({ id: 'svc.other', rights: ['*:*'] })
    store.createKey({ userId: 'svc.other', description: 'another account', expiresAt: at(T0, DAY) })
    const { key, secret } = store.createKey({
      userId: 'svc.requests@acme',
      description: 'Request sync',
      expiresAt: at(T0, 90 * DAY),
      rules: ['apps/com.hornbill.servicemanager/AssetUsers:create', 'bpm:iBridgeInvoke', 'admin:userSetAccountStatus', 'session:get*', 'ip=142.250.200.0/24'],
    })
    const from = '142.250.200.46'
    const reason = (call: string, ip = from) => store.explain(secret, ...split(call), ip).reason
    assert.equal(reason('apps/com.hornbill.servicemanager/AssetUsers:create'), 'allowed')
    assert.equal(reason('bpm:iBridgeInvoke'), 'allowed')
    assert.equal(reason('admin:userSetAccountStatus'), 'allowed')
    assert.equal(reason('session:getSessionInfo'), 'allowed')
    // Rules only narrow: what neither the user nor its roles may call stays refused.
    assert.equal(reason('data:queryExec'), 'user_lacks_right')
    assert.equal(reason('session:userLogon'), 'no_matching_rule')
    assert.equal(reason('apps/com.hornbill.servicemanager/Requests:holdRequest'), 'no_matching_rule')
    assert.equal(reason('session:getSessionInfo', '142.250.201.46'), 'ip_not_allowed')
    assert.equal(store.explain(secret, 'session', 'getSessionInfo').reason, 'ip_not_allowed')

    const listed = store.listKeys({ userId: 'svc.requests@acme' })
    assert.deepEqual(
      listed.map((k) => [k.id, k.userId, k.state, k.rules]),
      [
        [
          key.id,
          'svc.requests@acme',
          'active',
          ['apps/com.hornbill.servicemanager/AssetUsers:create', 'bpm:iBridgeInvoke', 'admin:userSetAccountStatus', 'session:get*', 'ip=142.250.200.0/24'],
        ],
      ],
    )

    // Only an active key of an active account can be used; the expiry ends it at its instant.
    store.setState(key.id, 'suspended')
    assert.equal(reason('bpm:iBridgeInvoke'), 'suspended')
    store.setState(key.id, 'active')
    store.putUser({ id: 'svc.requests@acme', roles: ['service-desk'], rights: ['admin:userSetAccountStatus', 'bpm:iBridgeInvoke'], status: 'suspended' })
    assert.equal(reason('bpm:iBridgeInvoke'), 'user_inactive')
    store.putUser({ id: 'svc.requests@acme', roles: ['service-desk'], rights: ['admin:userSetAccountStatus', 'bpm:iBridgeInvoke'], status: 'archived' })
    assert.equal(reason('bpm:iBridgeInvoke'), 'user_inactive')
    store.putUser({ id: 'svc.requests@acme', roles: ['service-desk'], rights: ['admin:userSetAccountStatus', 'bpm:iBridgeInvoke'] })
    assert.equal(reason('bpm:iBridgeInvoke'), 'allowed')
    store.setNow(at(T0, 90 * DAY - 1))
    assert.equal(reason('bpm:iBridgeInvoke'), 'allowed')
    store.setNow(at(T0, 90 * DAY))
    assert.equal(reason('bpm:iBridgeInvoke'), 'expired')
    store.close()
  })
})

describe("Hornbill's rules are entered one per line", () => {
  test('a block of rules given as one rule is INVALID_RULE saying so, and changes nothing', () => {
    const store = frozenStore()
    store.putUser({ id: 'svc', rights: ['*:*'] })
    const { key } = store.createKey({ userId: 'svc', description: 'x', expiresAt: at(T0, DAY), rules: ['session:*'] })
    const pasted = 'ip=142.250.200.0/24\nsession:getSessionInfo\r\napps/com.hornbill.core:addHistory'
    const oneLine = 'a rule is one line, and this one holds a line break: give each line as a rule of its own'
    throwsCode(() => KeyStore.validateRule(pasted), 'INVALID_RULE', oneLine)
    throwsCode(() => store.updateKey(key.id, { rules: [pasted] }), 'INVALID_RULE', oneLine)
    throwsCode(() => store.createKey({ userId: 'svc', description: 'y', expiresAt: at(T0, DAY), rules: ['session:*\nadmin:*'] }), 'INVALID_RULE', oneLine)
    throwsCode(() => store.putUser({ id: 'svc', rights: ['session:*\ndata:*'] }), 'INVALID_RULE', oneLine)
    assert.deepEqual(store.getKey(key.id)?.rules, ['session:*'])
    assert.deepEqual(store.getUser('svc')?.rights, ['*:*'])
    assert.equal(store.listKeys().length, 1)
    // Each line as a rule of its own is what was meant.
    assert.deepEqual(store.updateKey(key.id, { rules: pasted.split(/\r?\n/) }).rules, pasted.split(/\r?\n/))
    store.close()
  })
})

describe('where keygate differs from Hornbill on purpose (README, "What keygate implements")', () => {
  test('a Hornbill key (32 hex characters) is no keygate key: malformed_key, and a 401 from the guard', async () => {
    const store = frozenStore()
    store.putUser({ id: 'svc', rights: ['*:*'] })
    store.createKey({ userId: 'svc', description: 'x', expiresAt: at(T0, DAY) })
    const hornbillKey = '521c5f8f138a43e58af87fea9f3a201c'
    assert.deepEqual(store.explain(hornbillKey, 'session', 'getSessionInfo'), { allowed: false, reason: 'malformed_key' })
    assert.equal(store.isAllowed(hornbillKey, 'session', 'getSessionInfo'), false)

    const server = http.createServer(createGuard(store).node((_req, res) => res.end('ok')))
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    try {
      const { port } = server.address() as AddressInfo
      const answer = await fetch(`http://127.0.0.1:${port}/xmlmc/session/?method=getSessionInfo`, {
        method: 'POST',
        headers: { Authorization: `ESP-APIKEY ${hornbillKey}` },
      })
      assert.equal(answer.status, 401)
      assert.deepEqual(await answer.json(), { error: 'unauthorized', reason: 'malformed_key' })
    } finally {
      await new Promise((resolve) => server.close(resolve))
      store.close()
    }
  })

  test('there is no list of services: a misspelt service is a valid rule that matches nothing, and a call to it is decided like any other', () => {
    const store = frozenStore()
    store.putUser({ id: 'svc', rights: ['session:*', 'sesion:*'] })
    assert.equal(KeyStore.validateRule('sesion:getSessionInfo'), 'sesion:getSessionInfo')
    const { secret } = store.createKey({ userId: 'svc', description: 'typo', expiresAt: at(T0, DAY), rules: ['sesion:getSessionInfo'] })
    assert.equal(store.explain(secret, 'session', 'getSessionInfo').reason, 'no_matching_rule')
    assert.equal(store.explain(secret, 'sesion', 'getSessionInfo').reason, 'allowed')
    assert.equal(store.explain(secret, 'nosuchservice', 'nosuchApi').reason, 'user_lacks_right')
    store.close()
  })

  test('the in-memory store purges nothing: a key expired for longer than purgeExpiredAfterDays stays, answering expired', () => {
    const store = frozenStore(T0, { purgeExpiredAfterDays: 7 })
    store.putUser({ id: 'svc', rights: ['*:*'] })
    const { key, secret } = store.createKey({ userId: 'svc', description: 'x', expiresAt: at(T0, DAY) })
    store.setNow(at(T0, 30 * DAY))
    assert.equal(store.getKey(key.id)?.id, key.id)
    assert.deepEqual(
      store.listKeys().map((k) => k.id),
      [key.id],
    )
    assert.equal(store.explain(secret, 'session', 'getSessionInfo').reason, 'expired')
    store.close()
  })

  test("the default route reads /xmlmc/ at the root of the path, not after Hornbill's instance name", async () => {
    const store = frozenStore()
    store.putUser({ id: 'svc', rights: ['*:*'] })
    const { secret } = store.createKey({ userId: 'svc', description: 'x', expiresAt: at(T0, DAY) })
    const server = http.createServer(createGuard(store).node((_req, res) => res.end('ok')))
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    try {
      const { port } = server.address() as AddressInfo
      const post = (path: string) => fetch(`http://127.0.0.1:${port}${path}`, { method: 'POST', headers: { Authorization: `ESP-APIKEY ${secret}` } })
      assert.equal((await post('/xmlmc/session/?method=getSessionInfo')).status, 200)
      const instance = await post('/acme/xmlmc/session/?method=getSessionInfo')
      assert.equal(instance.status, 404)
      assert.deepEqual(await instance.json(), { error: 'not_found', reason: 'no_route' })
    } finally {
      await new Promise((resolve) => server.close(resolve))
      store.close()
    }
  })

  test("the README's route for Hornbill's instance-first URLs: the call after /<instance>/xmlmc/ is checked, as Hornbill's route reads it", async () => {
    const store = frozenStore()
    store.putUser({ id: 'svc', rights: ['*:*'] })
    const { secret } = store.createKey({ userId: 'svc', description: 'x', expiresAt: at(T0, DAY), rules: ['session:*'] })
    // As the README gives it: Hornbill's route, given the URL without its first segment.
    const route = (req: http.IncomingMessage) => {
      const url = req.url ?? ''
      const instanceEnd = url.indexOf('/', 1)
      if (instanceEnd < 0) return null
      return hornbillRoute({ method: req.method, url: url.slice(instanceEnd) } as http.IncomingMessage)
    }
    const guard = createGuard(store, { route })
    const server = http.createServer(guard.node((req, res) => res.end(JSON.stringify((req as http.IncomingMessage & { keygate?: unknown }).keygate))))
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    try {
      const { port } = server.address() as AddressInfo
      const post = (path: string) => fetch(`http://127.0.0.1:${port}${path}`, { method: 'POST', headers: { Authorization: `ESP-APIKEY ${secret}` } })
      const allowed = await post('/acme/xmlmc/session/?method=getSessionInfo')
      assert.equal(allowed.status, 200)
      assert.deepEqual(JSON.parse(await allowed.text()), {
        ok: true,
        kind: 'api',
        keyId: store.listKeys()[0]!.id,
        userId: 'svc',
        service: 'session',
        api: 'getSessionInfo',
        ip: '127.0.0.1',
      })
      const denied = await post('/acme/xmlmc/admin/?method=keysafeGetKey')
      assert.equal(denied.status, 403)
      for (const path of ['/xmlmc/session/?method=getSessionInfo', '/acme/session/?method=getSessionInfo', '/acme']) {
        const r = await post(path)
        assert.equal(r.status, 404, path)
      }
      assert.equal((await post('/acme/xmlmc/session/?method=a&method=b')).status, 400, 'two methods: ambiguous, as at the root')
    } finally {
      await new Promise((resolve) => server.close(resolve))
      store.close()
    }
  })
})
