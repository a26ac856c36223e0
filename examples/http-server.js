'use strict'
// A node:http server guarded by keygate: copy this file to start your own.
//
//   node examples/http-server.js
//       a demo store in memory: creates a user and a key and prints the key once, with curl lines
//   KEYGATE_DB=keygate.db node examples/http-server.js
//       your durable store; make users and keys with the CLI (docs/cli.md), e.g.
//       keygate user put svc --right 'session:*' && keygate key create --user svc --description demo --expires 30d
//
// Environment: PORT (default 3000), HOST (default 127.0.0.1), TRUST_PROXY (comma-separated IPs
// and CIDR ranges of your reverse proxies, e.g. 127.0.0.1,10.0.0.0/8; default none).
//
// Requests are Hornbill's: POST /xmlmc/<service>/?method=<api>, with the key in
// `Authorization: ESP-APIKEY <key>`, `Authorization: Bearer <key>` or `X-API-Key: <key>`.

const http = require('node:http')
const { KeyStore } = require('keygate')
const { createGuard } = require('keygate/http')

const port = Number(process.env.PORT ?? 3000)
const host = process.env.HOST ?? '127.0.0.1'
const trustProxy = process.env.TRUST_PROXY ? process.env.TRUST_PROXY.split(',').map((s) => s.trim()) : undefined

let store
let demoSecret
if (process.env.KEYGATE_DB) {
  store = KeyStore.open(process.env.KEYGATE_DB) // changes made by the CLI are seen within ~100 ms
} else {
  store = KeyStore.inMemory()
  store.putRole({ name: 'session-user', rights: ['session:*'] })
  store.putUser({ id: 'demo-integration', roles: ['session-user'] })
  demoSecret = store.createKey({
    userId: 'demo-integration',
    description: 'examples/http-server.js demo key',
    expiresAt: new Date(Date.now() + 86_400_000),
    rules: ['session:get*', 'session:userLogon'],
  }).secret
}

const guard = createGuard(store, {
  trustProxy, // without it, X-Forwarded-For is ignored and the client is the socket's peer
  // route: (req) => ({ service, api }) | null   — the default is Hornbill's POST /xmlmc/<service>/?method=<api>
})

// Runs only for allowed requests; denials (400/401/403/404/500 with a JSON body) are answered by the guard.
function handler(req, res) {
  req.resume() // a real API would read the body here
  const { keyId, userId, service, api, ip } = req.keygate
  const body = JSON.stringify({ ok: true, call: `${service}:${api}`, userId, keyId, ip })
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
  res.end(body)
}

const server = http.createServer(guard.node(handler))
server.listen(port, host, () => {
  const base = `http://${host.includes(':') ? `[${host}]` : host}:${server.address().port}`
  console.log(`keygate-guarded server on ${base}${process.env.KEYGATE_DB ? ` (store ${process.env.KEYGATE_DB})` : ' (demo store in memory)'}`)
  const key = demoSecret === undefined ? '<your key>' : '$KEY'
  if (demoSecret !== undefined) {
    // A demo key, printed on purpose so you can try it; the guard itself never prints or logs keys.
    console.log(`\ndemo key of user demo-integration (rules session:get*, session:userLogon), valid 24 h:\n  export KEY=${demoSecret}`)
  }
  console.log(`\ntry:
  curl -i -X POST -H "Authorization: ESP-APIKEY ${key}" '${base}/xmlmc/session/?method=getSessionInfo'   # 200
  curl -i -X POST -H "X-API-Key: ${key}"                '${base}/xmlmc/session/?method=userLogon'        # 200
  curl -i -X POST -H "Authorization: Bearer ${key}"     '${base}/xmlmc/admin/?method=userCreate'         # 403 user_lacks_right
  curl -i -X POST -H "Authorization: Bearer ${key}"     '${base}/xmlmc/session/?method=userLogoff'       # 403 no_matching_rule
  curl -i -X POST                                       '${base}/xmlmc/session/?method=getSessionInfo'   # 401 missing_key
  curl -i -X POST -H "X-API-Key: kg_nope"               '${base}/xmlmc/session/?method=getSessionInfo'   # 401 malformed_key
  curl -i -X POST -H "X-API-Key: ${key}"                '${base}/xmlmc/session/'                         # 400 invalid_request
  curl -i         -H "X-API-Key: ${key}"                '${base}/health'                                 # 404 no_route
`)
})

function shutdown() {
  server.close(() => {
    store.close() // flushes lastUsedAt of a durable store
    process.exit(0)
  })
  server.closeAllConnections()
}
process.on('SIGINT', shutdown)
process.on('SIGTERM', shutdown)
