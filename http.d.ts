/**
 * keygate/http — the HTTP guard: checks the API key of every request against a
 * {@link KeyStore} and answers denials itself, for `node:http`, Express and Fastify.
 *
 * ```js
 * const { KeyStore } = require('keygate')
 * const { createGuard } = require('keygate/http')
 *
 * const guard = createGuard(KeyStore.open('keygate.db'), { trustProxy: ['10.0.0.0/8'] })
 * http.createServer(guard.node((req, res) => res.end(`hello ${req.keygate.userId}`)))   // node:http
 * app.use('/xmlmc', guard.express())     // Express: only the API's path (app.use(guard.express()) guards every route)
 * fastify.register(async (api) => {      // Fastify: the plugin guards the scope it is registered in
 *   await api.register(guard.fastify())
 *   api.post('/xmlmc/*', async (request) => request.keygate)
 * })
 * ```
 *
 * **WebDAV.** A request under `/dav/` ({@link GuardOptions.davPrefix}), whatever its method
 * (`GET`, `PUT`, `PROPFIND`, `MKCOL`, `COPY`, `MOVE`, `LOCK`, `UNLOCK`, `PROPPATCH`, `OPTIONS`,
 * …), is a WebDAV request: the store's `isAllowedDav(key, method, path, ip)` decides it, for the
 * path after the prefix (`PROPFIND /dav/docs/a.txt?x=1` → `PROPFIND`, `docs/a.txt`), with the
 * same key headers. A `COPY` or `MOVE` also writes where its `Destination` header points: the
 * guard decides that path too, with the same method, and lets the request through only when
 * the key may make the request on both (see {@link KeygateDavAuth.destination}). Other requests
 * go to {@link GuardOptions.route}. `req.keygate.kind` says which kind of call was checked.
 *
 * **The key** is read from `Authorization: ESP-APIKEY <key>` (Hornbill's scheme),
 * `Authorization: Bearer <key>` (schemes case-insensitive, any run of spaces/tabs after the
 * scheme) or `X-API-Key: <key>`. It never appears in a response, in anything the guard logs
 * or in an error it passes to {@link GuardOptions.onError}.
 *
 * **The answers**, checked in this order (the first failure answers); every denial has a JSON
 * body `{ "error", "reason" }` ({@link DenialBody}) and `Cache-Control: no-store`:
 *
 * | status | error | reason | when |
 * | --- | --- | --- | --- |
 * | 400 | `bad_request` | `invalid_request` | a WebDAV path the guard refuses before reading the key (see {@link GuardOptions.davPrefix}), or the `Destination` of a `COPY`/`MOVE` it refuses (see {@link KeygateDavAuth.destination}) |
 * | 400 | `bad_request` | `duplicate_authorization` / `duplicate_api_key` | the header appears more than once (even with the same value) |
 * | 400 | `bad_request` | `conflicting_keys` | `Authorization` and `X-API-Key` carry different keys (the same key twice is fine) |
 * | 400 | `bad_request` | `invalid_forwarded_for` | a trusted proxy passed an `X-Forwarded-For` entry that is not an IP address |
 * | 401 | `unauthorized` | `missing_key` | no key (an empty `X-API-Key` or `Authorization: Bearer` with nothing after it counts as none) |
 * | 401 | `unauthorized` | `unsupported_scheme` | `Authorization` with another scheme (`Basic`, …) and no `X-API-Key` |
 * | 401 | `unauthorized` | `malformed_key` / `unknown_key` | the store's first two reasons; also a key with whitespace inside or over 1,024 characters |
 * | 500 | `internal_error` | `internal_error` | the store or the route function threw, the route function returned a Promise (an async one), or a store object of your own (a wrapper) answered `isAllowed`/`isAllowedDav` with anything but `true` or `false`, such as a Promise, or `explain`/`explainDav` with anything but a decision giving one of the store's reasons, or an allowed decision without its `keyId` and `userId` (the key is checked first: a bad key is still 401); details go to {@link GuardOptions.onError} only. A Promise the guard got there is left to settle, its rejection handled: never an unhandled rejection |
 * | 404 | `not_found` | `no_route` | the route function returned `null` (the key is checked first: a bad key is still 401) |
 * | 400 | `bad_request` | `invalid_request` | the store found `service`/`api` (or a WebDAV method/path) invalid (e.g. `POST /xmlmc/session/` without `?method=`) |
 * | 503 | `unavailable` | `store_unavailable` | a durable store cannot vouch that its state is current (another process's change it cannot apply; see the README, "Fails closed, loudly"): not the caller's fault, so not a 403; retry later |
 * | 403 | `forbidden` | any other reason of the store | `suspended`, `revoked`, `expired`, `user_inactive`, `user_lacks_right`, `no_matching_rule`, `ip_not_allowed`; for a `COPY`/`MOVE`, the reason for its source, else the reason for its destination |
 *
 * 401 answers carry `WWW-Authenticate: ESP-APIKEY realm="keygate", Bearer realm="keygate"`;
 * 503 answers `Retry-After: 1`.
 * Headers that Node itself refuses never reach the guard: an oversized header block gets
 * Node's `431`, control characters in a header value Node's `400`.
 *
 * @packageDocumentation
 */

import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2'
import type { DenyReason, KeyStore } from './index.js'

/** A call as the store sees it: `store.isAllowed(key, service, api, ip)`. */
export interface Route {
  /** The service, e.g. `session` or `apps/com.hornbill.servicemanager/Requests`. */
  service: string
  /** The API of the service, e.g. `userLogon`. */
  api: string
}

/**
 * Maps a request to the call the key must be allowed to make. Return `null` or `undefined`
 * when the request is not an API call the guard knows: the guard then answers 404
 * `no_route` (after checking the key, so a bad key is still 401). Names the store finds
 * invalid are a 400 `invalid_request`. A function that throws makes a 500 (after checking the
 * key too: a bad key is still 401), and so does one that returns a Promise (an `async` function):
 * the guard needs the call at once, and handles the Promise's rejection.
 *
 * `req` is the node request (for Fastify, `request.raw`). Behind Express mounted under a
 * path, `req.url` is relative to the mount point: use `req.originalUrl ?? req.url` for the
 * full path. With Fastify, read `req.url`: it is the URL Fastify routes, after any
 * `rewriteUrl` (which keeps the URL the client sent in `req.originalUrl`). Over HTTP/2
 * (`guard.node` in an `http2` server) `req` is an `Http2ServerRequest`, typed here as the
 * HTTP/1 request it mostly resembles: `url`, `method` and `headers` are there, but the host is
 * `req.headers[':authority']`, not `req.headers.host`.
 */
export type RouteFunction = (req: IncomingMessage & { originalUrl?: string }) => Route | null | undefined

/**
 * Which peers may set `X-Forwarded-For`: IP addresses and CIDR ranges (`'127.0.0.1'`,
 * `'10.0.0.0/8'`, `'2001:db8::/32'`) and the names `'loopback'`, `'linklocal'`,
 * `'uniquelocal'` (private ranges), as an array or one of them alone (`'loopback'`; a
 * comma-separated string is refused); or a function answering for one address, where `hop` is
 * 0 for the socket's peer, 1 for the rightmost `X-Forwarded-For` entry, and so on (a
 * function that throws trusts nobody). IPv4-mapped IPv6 peers (`::ffff:10.1.2.3`) match
 * IPv4 entries.
 */
export type TrustProxy = string | readonly string[] | ((address: string, hop: number) => boolean)

/** Options of {@link createGuard}. */
export interface GuardOptions {
  /** Request → `(service, api)`. Default {@link hornbillRoute}: `POST /xmlmc/<service>/?method=<api>`. */
  route?: RouteFunction | undefined
  /**
   * Trusted proxies. Without it (the default) the client address is the socket's peer and
   * `X-Forwarded-For` is ignored. With it, when the peer is trusted, the guard walks
   * `X-Forwarded-For` from the right, skipping trusted hops; the first untrusted address (or
   * the leftmost one, if all are trusted) is the client. An entry that is not an IP address
   * (ports and `[…]` around IPv6 are accepted) on that walk is a 400 `invalid_forwarded_for`.
   */
  trustProxy?: TrustProxy | false | null | undefined
  /**
   * The path prefix of WebDAV requests; default `'/dav/'`; `false`: no request is a WebDAV
   * request. Starts and ends with `/` (`'/files/dav/'`). Matched against the full request
   * target (Express's `originalUrl`), case-sensitively and before any decoding: `/DAV/x` and
   * `/%64av/x` are not WebDAV requests (the route function gets them).
   *
   * The path after the prefix, up to the query (which is not part of it), is percent-decoded
   * exactly once. Before the key is read and without asking the store, the guard answers 400
   * `invalid_request` when that path is empty, longer than 1,024 characters once decoded, or
   * holds a `.`, `..` or empty segment (`a//b`), an encoded `/` or `\` (`%2F`, `%5C`), a
   * backslash, NUL, `#`, a `%` not followed by two hex digits, or any character outside
   * `A-Z a-z 0-9 - . _ ~` and `/` (non-ASCII included). One trailing `/` (a collection) is kept.
   * So the app never serves another file than the one checked (`docs/../secret` never passes a
   * `docs/*` rule). The `Destination` of a `COPY` or `MOVE` is read by the same rules (see
   * {@link KeygateDavAuth.destination}).
   */
  davPrefix?: string | false | undefined
  /** Realm of the `WWW-Authenticate` challenges; default `keygate`. */
  realm?: string | undefined
  /**
   * Called with the error behind every 500 (a store read failing, e.g. `STORE_IO`, or the
   * route function throwing). `onError` gets the error itself only when it is a plain
   * built-in error (`Error`, `TypeError`, …, `AggregateError`, `KeygateError`) and everything
   * reachable from it (name, message, stack, code, the `cause` chain, AggregateError
   * `errors`, other own properties, enumerable or not) is strings, other primitives, plain
   * objects, arrays, Maps, Sets, Dates and such errors, all readable without getters or
   * proxies and free of the key and of any 12-character run of it (in any letter case). Otherwise it gets a
   * redacted copy: a plain `Error` or `AggregateError` keeping the name, `[redacted]` in place
   * of the key, Maps and Sets copied with their entries redacted, and a placeholder such as
   * `[Headers: not shown]` in place of anything whose contents cannot be read as plain data
   * (Buffers and other typed arrays, ArrayBuffer, DataView, fetch `Headers`,
   * `URLSearchParams`, WeakMap/WeakRef, boxed strings, functions, instances of any other
   * class). A thrown non-Error arrives as an `Error` whose `cause` is its redacted copy. Your
   * error is never modified. Note that `req` still carries the
   * request's headers, key included. Default: one `console.error` line (name, code, message
   * and those of up to three causes, control and bidi characters written as `<U+001B>`, so
   * a message quoting what a request sent cannot forge a line, and any run of 32+ letters and
   * digits, counted across `-` and `.` (a UUID or a hash too), as `<redacted>`, so another secret a
   * route quotes is not logged either). An `onError` that throws is ignored, and so is the
   * rejection of an async one's Promise.
   */
  onError?: ((error: Error, req: IncomingMessage) => void) | undefined
}

/**
 * An allowed request: who is calling and what. Adapters expose it as `req.keygate`
 * (node:http, Express) and `request.keygate` (Fastify). `kind` tells an API call
 * ({@link KeygateApiAuth}) from a WebDAV request ({@link KeygateDavAuth}).
 */
export type KeygateAuth = KeygateApiAuth | KeygateDavAuth

/** What every allowed request carries. */
interface KeygateAuthBase {
  /** Discriminant of {@link CheckResult}. */
  readonly ok: true
  /** The key's public id (`key_…`), safe to log. */
  readonly keyId: string
  /** The user account the key runs as. */
  readonly userId: string
  /**
   * The client address the key was checked from (see {@link GuardOptions.trustProxy}), as
   * Node reports it (IPv4 peers of a dual-stack server look like `::ffff:127.0.0.1`) without an
   * IPv6 zone (`fe80::1%eth0` → `fe80::1`); undefined if the socket has none.
   */
  readonly ip: string | undefined
}

/** An allowed API call: the store's `isAllowed(key, service, api, ip)` said yes. */
export interface KeygateApiAuth extends KeygateAuthBase {
  /** An API call. */
  readonly kind: 'api'
  /** The service of the call the key was checked for. */
  readonly service: string
  /** The API of the call the key was checked for. */
  readonly api: string
}

/** An allowed WebDAV request: the store's `isAllowedDav(key, method, path, ip)` said yes. */
export interface KeygateDavAuth extends KeygateAuthBase {
  /** A WebDAV request (under {@link GuardOptions.davPrefix}). */
  readonly kind: 'dav'
  /** The request's method as Node read it (`PROPFIND`). */
  readonly method: string
  /** The path checked: after the prefix, percent-decoded once, without the query (`docs/a.txt`). */
  readonly path: string
  /**
   * For a `COPY` or `MOVE` (any case) only: the path of its `Destination` header, read as
   * `path` is (after the prefix, percent-decoded once) and also allowed by the store for the
   * same method (`isAllowedDav(key, method, destination, ip)`). Copy or move to this path, not
   * to one you read from the header yourself. Absent for every other method.
   *
   * The `Destination` is an absolute path (`/dav/archive/a.txt`) or an absolute `http`/`https`
   * URI (`https://files.example/dav/archive/a.txt`). Before the key is read and without asking
   * the store, the guard answers 400 `invalid_request` to a `COPY`/`MOVE` whose `Destination`
   * is missing or repeated, is neither form, has a query, lies outside the prefix (matched
   * before decoding, as for the request target), holds a path the prefix rules refuse
   * (`/dav/pub/%2e%2e/private/b`), or, as a URI, names another host than the request: its
   * `host[:port]` must equal (ASCII case ignored, no default port added) the `Host` header,
   * HTTP/2's `:authority` and the host of an absolute-form request target, each that the
   * request has; a request with none of them (HTTP/1.0 without `Host`) may only give a path.
   */
  readonly destination?: string
}

/** The `error` of a denial body, one per status. */
export type DenialError = 'bad_request' | 'unauthorized' | 'forbidden' | 'not_found' | 'internal_error' | 'unavailable'

/** Why the guard said no: a reason of the store, or a problem it found in the request itself. */
export type DenialReason =
  | DenyReason
  | 'missing_key'
  | 'unsupported_scheme'
  | 'duplicate_authorization'
  | 'duplicate_api_key'
  | 'conflicting_keys'
  | 'invalid_forwarded_for'
  | 'no_route'
  | 'internal_error'

/** The JSON body of every denial. */
export interface DenialBody {
  /** The class of the answer, matching the status. */
  readonly error: DenialError
  /** The precise reason. */
  readonly reason: DenialReason
}

/** A denied request, ready to write: `reply(res, denial)` or your own response. Frozen and shared. */
export interface Denial {
  /** Discriminant of {@link CheckResult}. */
  readonly ok: false
  /** 400, 401, 403, 404, 500 or 503. */
  readonly status: 400 | 401 | 403 | 404 | 500 | 503
  /** Send as JSON. */
  readonly body: DenialBody
  /** `content-type`, `cache-control`, on 401 `www-authenticate`, on 503 `retry-after` (lower-case names). */
  readonly headers: Readonly<Record<string, string>>
}

/** The outcome of {@link Guard.check}. */
export type CheckResult = KeygateAuth | Denial

/** A node request after the guard let it through. */
export type GuardedRequest = IncomingMessage & { keygate: KeygateAuth }

/** Connect/Express middleware: `(req, res, next)`. */
export type GuardMiddleware = (req: IncomingMessage, res: ServerResponse, next: (error?: unknown) => void) => void

/**
 * A Fastify plugin (registered with the fastify-plugin convention, so its hook applies to the
 * instance it is registered on). Typed loosely so this file does not need fastify's types.
 */
export type GuardFastifyPlugin = (instance: any, options: unknown, done: (error?: Error) => void) => void

/** A Fastify `onRequest` hook (callback style). */
export type GuardFastifyHook = (request: any, reply: any, done: (error?: Error) => void) => void

/** The guard of one store. Every method may be detached from the guard (`const { check } = guard`). */
export interface Guard {
  /**
   * Checks one request: its identity, or a denial. Never throws — a failing store or route
   * function is a 500 denial. Framework-free: use it to guard anything that has a node request
   * (`node:http`'s, or `node:http2`'s compatibility API's).
   */
  check(req: IncomingMessage | Http2ServerRequest): CheckResult

  /**
   * A `node:http` request listener: answers denials itself and calls `handler` with
   * `req.keygate` set for allowed requests. `http.createServer(guard.node(handler))`, and
   * likewise for `node:http2`'s compatibility API: `http2.createSecureServer(options, guard.node(handler))`.
   */
  node<Req extends IncomingMessage | Http2ServerRequest = IncomingMessage, Res extends ServerResponse | Http2ServerResponse = ServerResponse>(
    handler: (req: Req & { keygate: KeygateAuth }, res: Res) => unknown,
  ): (req: Req, res: Res) => void

  /** Express (or Connect) middleware: sets `req.keygate` and calls `next()`, or answers the denial. */
  express(): GuardMiddleware

  /**
   * A Fastify plugin: `await app.register(guard.fastify())` guards every route of `app`
   * (register it inside a scope to guard only that scope). Sets `request.keygate`; declare
   * its type once in your code:
   * ```ts
   * declare module 'fastify' {
   *   interface FastifyRequest { keygate: import('keygate/http').KeygateAuth | null }
   * }
   * ```
   */
  fastify(): GuardFastifyPlugin

  /** The Fastify `onRequest` hook behind {@link Guard.fastify}, for one route: `{ onRequest: guard.fastifyHook() }`. */
  fastifyHook(): GuardFastifyHook

  /**
   * Writes a denial from {@link Guard.check} on a node (Express, HTTP/2 compatibility API) response. Does nothing if headers were sent.
   * A `KeygateError` `INVALID_ARGUMENT`, with nothing written, for an allowed result (`ok: true`), no response, or a denial
   * of your own whose `status` is not 400–599, whose `body` is not an object `JSON.stringify` can write, or whose
   * `headers` are not an object of header names (a string, an array).
   */
  reply(res: ServerResponse | Http2ServerResponse, denial: Denial): void
}

/**
 * What {@link createGuard} asks of its store: a {@link KeyStore}, or an object wrapping one
 * (say a deny list in front) with these four methods. Its `isAllowed` (`isAllowedDav` for
 * WebDAV) decides each call and must answer `true` or `false` at once (anything else, a Promise
 * too, is a 500); its `explain` (`explainDav`) only says why not and names the key and user of
 * a first success, and must answer at once a decision whose `reason` is one of the store's
 * (anything else, a Promise too, is a 500); a decision that is `allowed` must name both, as
 * an `AllowedDecision` does: one without a `keyId` and a `userId` (non-empty strings), or
 * allowed with another reason than `allowed`, is a 500 too, never a request let through with
 * `req.keygate.keyId` undefined. The reason of a 403 is what that `explain` says; a refusal of the wrapper's
 * own that its `explain` calls `allowed` (the store's `explain`, which knows nothing of a deny
 * list) is `no_matching_rule`, the store's reasons having none for it: to tell the caller more,
 * make `explain` give the reason that fits (a deny list's: `revoked`).
 */
export type GuardStore = Pick<KeyStore, 'isAllowed' | 'explain' | 'isAllowedDav' | 'explainDav'>

/**
 * Makes the guard of `store`. Throws a `KeygateError` `INVALID_ARGUMENT` for a bad option
 * (e.g. an entry of `trustProxy` that is neither an address nor a CIDR range).
 *
 * `store` may also wrap a KeyStore (an object, or a Proxy, with its own `isAllowed`): see
 * {@link GuardStore}.
 */
export declare function createGuard(store: KeyStore | GuardStore, options?: GuardOptions): Guard

/**
 * The default {@link RouteFunction}, Hornbill's: `POST /xmlmc/<service>/?method=<api>` →
 * `{ service, api }` (service may contain `/`: `/xmlmc/apps/com.hornbill.core/Achievement/?method=addAchievement`;
 * the trailing `/` is optional; other query parameters are ignored).
 *
 * - Any other HTTP method, or a path outside `/xmlmc/` → `null` (404 `no_route`).
 * - Under `/xmlmc/`: no `method`, an empty one or two of them, an empty, `.` or `..` path
 *   segment → a call the store refuses (400 `invalid_request`). Percent-escapes are not
 *   decoded, so `%2E%2E` is refused as well (the store's alphabet has no `%`).
 * - So is a query in which any other parameter could be read as `method` by a query parser
 *   (qs, fast-querystring, node:querystring, URLSearchParams): a name that, percent-decoded,
 *   case and spaces ignored, cut at its first `[`, `]` or `.`, is `method` (`method[]=`,
 *   `method[0]=`, `[method]=`, `method.x=`, `%6Dethod=`, a bare `method`), and a query of
 *   more than 1,000 parameters. The app then never reads another call than the one checked.
 * - A `req` that is not an object, or whose `method` or URL cannot be read (a revoked Proxy, a getter
 *   that throws), is a `KeygateError` `INVALID_ARGUMENT`.
 */
export declare function hornbillRoute(req: IncomingMessage & { originalUrl?: string }): Route | null

declare module 'http' {
  interface IncomingMessage {
    /** Set by the keygate guard on requests it allowed (node:http and Express). */
    keygate?: KeygateAuth
  }
}
