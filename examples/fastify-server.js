'use strict'
// A Fastify server guarded by keygate (Fastify 4 or 5).
//
//   node examples/fastify-server.js                          demo store in memory, key printed once
//   KEYGATE_DB=keygate.db node examples/fastify-server.js    your durable store (docs/cli.md)
//
// In TypeScript, declare the request property once:
//   declare module 'fastify' { interface FastifyRequest { keygate: import('keygate/http').KeygateAuth | null } }

const Fastify = require('fastify')
const { KeyStore } = require('keygate')
const { createGuard } = require('keygate/http')

const store = process.env.KEYGATE_DB ? KeyStore.open(process.env.KEYGATE_DB) : demoStore()
const guard = createGuard(store, {
  // Fastify's own `trustProxy` option does not apply: tell the guard which proxies to trust.
  trustProxy: process.env.TRUST_PROXY ? process.env.TRUST_PROXY.split(',') : undefined,
})

const app = Fastify()
app.get('/health', async () => ({ ok: true })) // outside the guarded scope below

// The guard's plugin hooks onRequest of the instance it is registered on: here a scope, so
// only the routes declared inside it are guarded. Register it on `app` to guard everything.
app.register(async (api) => {
  await api.register(guard.fastify())
  api.post('/xmlmc/*', async (request) => {
    const { userId, keyId, service, api: method } = request.keygate
    return { ok: true, call: `${service}:${method}`, userId, keyId }
  })
})

app.listen({ port: Number(process.env.PORT ?? 3000), host: '127.0.0.1' }).then((address) => {
  console.log(`Fastify + keygate on ${address}`)
  console.log(`try: curl -i -X POST -H "Authorization: ESP-APIKEY $KEY" '${address}/xmlmc/session/?method=getSessionInfo'`)
})

function demoStore() {
  const s = KeyStore.inMemory()
  s.putUser({ id: 'demo-integration', rights: ['session:*'] })
  const { secret } = s.createKey({ userId: 'demo-integration', description: 'demo', expiresAt: new Date(Date.now() + 86_400_000) })
  console.log(`demo key (printed on purpose; the guard never prints keys):\n  export KEY=${secret}`)
  return s
}
