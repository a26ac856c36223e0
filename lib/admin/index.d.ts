import type { IncomingMessage, ServerResponse } from 'node:http'
import type { AdminServerOptions } from './server.js'

export { createAdminServer } from './server.js'
export type { AdminServer, AdminServerOptions } from './server.js'
export { serve, tokenFileOf } from './serve.js'
export type { ServeOptions, Serving } from './serve.js'

/** Options of {@link createAdminHandler}: those of `createAdminServer` but `host`/`port`, and `prefix` and `cookiePath`. */
export interface AdminHandlerOptions extends Omit<AdminServerOptions, 'host' | 'port' | 'prefix' | 'cookiePath'> {
  /** The path the page lives under, e.g. `/admin` (default); `/` for the root of the server. */
  prefix?: string | undefined
  /**
   * The `Path` of the page's session and device cookies; default the prefix, so that the app's
   * other routes never receive them. Behind a proxy that serves the page under another path
   * (`/tools/admin/` proxied to `/admin/`), give the path browsers see, or `/`.
   */
  cookiePath?: string | undefined
  // The server's own options, refused here (a TypeError, also a KeygateError INVALID_ARGUMENT, naming them), so that options made for
  // createAdminServer and spread or passed in a variable do not compile either.
  /** Not an option of a handler (the app's server listens): `createAdminHandler` refuses it. */
  host?: never
  /** Not an option of a handler (the app's server listens): `createAdminHandler` refuses it. */
  port?: never
}

/**
 * The admin page as a handler for your own server. Express: `app.use(handler)`; node:http:
 * `handler(req, res, () => yourRoutes(req, res))`; Fastify: call it with `request.raw, reply.raw`
 * after `reply.hijack()`, without Fastify's body parsing on those routes (the page reads its own bodies).
 * A request whose response was already started (headers sent) by another handler is left as it is and logged to `log`.
 */
export interface AdminHandler {
  (req: IncomingMessage, res: ServerResponse, next?: (error?: unknown) => void): void
  /** The normalized prefix, with a trailing slash (`/admin/`). */
  readonly prefix: string
  readonly sessionCount: number
  /** Drops every session and the session sweeper. Does not close the store. */
  close(): Promise<void>
}

/** Mounts the admin page under a path of a server of your own (Express, Fastify, node:http). */
export declare function createAdminHandler(options: AdminHandlerOptions): AdminHandler
