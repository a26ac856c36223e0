'use strict'
// The keygate admin page on the durable store: node examples/serve.js
//   KEYGATE_DB (default ./keygate.db), HOST (default 127.0.0.1), PORT (default 8080),
//   KEYGATE_ADMIN_TOKEN (else a token is generated at the first start and printed once).

const { serve } = require('keygate/admin')

serve({
  db: process.env.KEYGATE_DB || 'keygate.db',
  host: process.env.HOST || '127.0.0.1',
  port: process.env.PORT ? Number(process.env.PORT) : 8080,
}).catch((error) => {
  console.error(`keygate serve: ${error.message}`)
  process.exit(1)
})
