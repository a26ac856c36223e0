'use strict'
// An Express server guarded by keygate (Express 4 or 5).
//
//   node examples/express-server.js                          demo store in memory, key printed once
//   KEYGATE_DB=keygate.db node examples/express-server.js    your durable store (docs/cli.md)

const express = require('express')
const { KeyStore } = require('keygate')
const { createGuard } = require('keygate/http')

const store = process.env.KEYGATE_DB ? KeyStore.open(process.env.KEYGATE_DB) : demoStore()
const guard = createGuard(store, {
  // Express's own `trust proxy` setting does not apply: tell the guard which proxies to trust.
  trustProxy: process.env.TRUST_PROXY ? process.env.TRUST_PROXY.split(',') : undefined,
})

const app = express()
app.get('/health', (_req, res) => res.json({ ok: true })) // not guarded: declared before the guard

// Everything under /xmlmc is guarded. The default route reads req.originalUrl, so mounting the
// guard under a path still maps POST /xmlmc/<service>/?method=<api>.
app.use('/xmlmc', guard.express())
app.post(/^\/xmlmc\//, (req, res) => {
  const { userId, keyId, service, api } = req.keygate
  res.json({ ok: true, call: `${service}:${api}`, userId, keyId })
})

const server = app.listen(Number(process.env.PORT ?? 3000), '127.0.0.1', () => {
  const base = `http://127.0.0.1:${server.address().port}`
  console.log(`Express + keygate on ${base}`)
  console.log(`try: curl -i -X POST -H "Authorization: ESP-APIKEY $KEY" '${base}/xmlmc/session/?method=getSessionInfo'`)
})

function demoStore() {
  const s = KeyStore.inMemory()
  s.putUser({ id: 'demo-integration', rights: ['session:*'] })
  const { secret } = s.createKey({ userId: 'demo-integration', description: 'demo', expiresAt: new Date(Date.now() + 86_400_000) })
  console.log(`demo key (printed on purpose; the guard never prints keys):\n  export KEY=${secret}`)
  return s
}
