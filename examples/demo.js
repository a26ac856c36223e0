'use strict'
// keygate's main job in a minute: an admin back end creates a user and a key
// with rules; an integration checks incoming calls; the admin revokes the key.

const { KeyStore, KeygateError } = require('..')

const store = KeyStore.inMemory()
const inOneYear = new Date(Date.now() + 365 * 86_400_000)

// Admin back end: a role, a user account that runs integrations, a restricted key.
store.putRole({ name: 'request-agent', rights: ['session:*', 'apps/com.hornbill.servicemanager/*:*'] })
store.putUser({ id: 'svc-requests', roles: ['request-agent'], rights: ['data:entityBrowseRecords2'] })
const { key, secret } = store.createKey({
  userId: 'svc-requests',
  description: 'Request sync from the service desk',
  expiresAt: inOneYear,
  rules: ['session:get*', 'apps/com.hornbill.servicemanager/Requests:*', 'ip=10.0.0.0/8'],
})
console.log(`created ${key.id} for ${key.userId} (hint …${key.hint}, expires ${key.expiresAt.toISOString()})`)
console.log(`the secret, shown once: ${secret.slice(0, 6)}… (${secret.length} characters)\n`)

// Integration: one decision per incoming call.
const calls = [
  [secret, 'session', 'getSessionInfo', '10.1.2.3'],
  [secret, 'apps/com.hornbill.servicemanager/Requests', 'holdRequest', '10.1.2.3'],
  [secret, 'apps/com.hornbill.servicemanager/Requests', 'holdRequest', '192.0.2.7'],
  [secret, 'session', 'userLogon', '10.1.2.3'],
  [secret, 'data', 'entityBrowseRecords2', '10.1.2.3'],
  [secret, 'admin', 'userCreate', '10.1.2.3'],
  [`${secret.slice(0, -1)}x`, 'session', 'getSessionInfo', '10.1.2.3'],
]
const show = (label) => {
  console.log(label)
  for (const [s, service, api, ip] of calls) {
    const d = store.explain(s, service, api, ip)
    const who = s === secret ? 'key' : 'bad key'
    const rule = d.matchedRule ? `  (rule ${d.matchedRule})` : ''
    console.log(`  ${d.allowed ? 'ALLOW' : 'DENY '} ${who.padEnd(7)} ${`${service}:${api}`.padEnd(52)} from ${ip.padEnd(10)} ${d.reason}${rule}`)
  }
  console.log()
}
show('decisions:')

store.setState(key.id, 'revoked')
show('after revoking the key:')

try {
  store.setState(key.id, 'active')
} catch (error) {
  if (!(error instanceof KeygateError)) throw error
  console.log(`reactivating fails: ${error.code}: ${error.message}`)
}
