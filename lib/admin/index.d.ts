export { createAdminServer } from './server.js'
export type { AdminServer, AdminServerOptions } from './server.js'
export { serve, tokenFileOf } from './serve.js'
export type { ServeOptions, Serving } from './serve.js'
