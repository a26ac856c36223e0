'use strict'
// The keygate admin web page: createAdminServer (on any KeyStore) and serve (on the durable store).

const { createAdminServer } = require('./server.js')
const { serve, tokenFileOf } = require('./serve.js')

module.exports = { createAdminServer, serve, tokenFileOf }
