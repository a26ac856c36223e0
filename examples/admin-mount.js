'use strict'
// The keygate admin page inside an Express (4 or 5) admin back end of your own, under /admin/, beside the
// app's other routes, and the HTTP guard on the API under /xmlmc.
//
//   KEYGATE_ADMIN_TOKEN=<16+ characters> node examples/admin-mount.js   (store: $KEYGATE_DB or ./keygate.db)

const express = require('express')
const { KeyStore } = require('keygate')
const { createAdminHandler } = require('keygate/admin')
const { createGuard } = require('keygate/http')

const token = process.env.KEYGATE_ADMIN_TOKEN
if (!token || token.length < 16) {
  console.error('set KEYGATE_ADMIN_TOKEN to the admin token (at least 16 characters)')
  process.exit(2)
}
const store = KeyStore.open(process.env.KEYGATE_DB || 'keygate.db')

const app = express()
app.get('/', (_req, res) => res.send('my back end; the keys are managed at <a href="/admin/">/admin/</a>'))
app.use(createAdminHandler({ store, token, prefix: '/admin' }))
app.use('/xmlmc', createGuard(store).express())
// A regular expression, as Express 4 and 5 both read it ('/xmlmc/*' throws at startup on Express 5).
app.post(/^\/xmlmc\//, (req, res) => res.json({ ok: true, call: `${req.keygate.service}:${req.keygate.api}` }))

const server = app.listen(Number(process.env.PORT ?? 3000), '127.0.0.1', () => {
  console.log(`admin page: http://127.0.0.1:${server.address().port}/admin/`)
})
