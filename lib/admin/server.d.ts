import type { KeyStore } from '../../index.js'

/** Options of {@link createAdminServer}. Give `token` or `tokenDigest`. */
export interface AdminServerOptions {
  store: KeyStore
  /** The admin token the login form takes (compared in constant time, as a SHA-256 digest): 16 to 1,024 characters. */
  token?: string | undefined
  /** Or only the token's SHA-256, in hex (what `serve` keeps on disk). */
  tokenDigest?: string | undefined
  /**
   * Default `127.0.0.1`. Refused (a `TypeError`, `INVALID_ARGUMENT`): `''` (Node would take it as every
   * interface), a host holding a control character (a NUL would cut it short) or longer than 253 characters (a final dot not counted).
   */
  host?: string | undefined
  /** Default 0: any free port (see `url` after `listen()`). */
  port?: number | undefined
  /**
   * Recorded as the actor of every change in the audit trail; default `'web:admin'`. Checked as the
   * store checks an actor (1–256 characters, no control characters, no secret): a TypeError (also a KeygateError INVALID_ARGUMENT) when made.
   */
  actor?: string | undefined
  /** Add `Secure` to the session cookie: true, false, or `'auto'` (default: https or X-Forwarded-Proto https). */
  secureCookies?: boolean | 'auto' | undefined
  /**
   * Longest key lifetime the page offers, a whole number of days from 1 to 36,500; the store enforces
   * its own limit. Default: the store's `maxLifetimeDays`.
   */
  maxLifetimeDays?: number | undefined
  /** Session idle timeout in ms (1000 to 400 days), default 30 minutes. */
  sessionIdleMs?: number | undefined
  /** Session absolute lifetime in ms (1000 to 400 days), default 12 hours. */
  sessionMaxMs?: number | undefined
  /** Request body limit, a whole number of bytes from 2048 to 1 GiB; default 1 MiB. */
  bodyLimit?: number | undefined
  /**
   * Login throttling by address, for logins without a valid device cookie: once an address
   * has recent failed logins (forgotten after 15 minutes without one), every login from it,
   * right or wrong, is answered only after this delay, doubled for each of those failures;
   * and only one login per address is checked at a time (the others get 429 with
   * Retry-After at once). A login from an address without recent failures is answered at
   * once. 0 to 60000 ms; default 1000 ms.
   */
  loginFailureDelayMs?: number | undefined
  /**
   * The longest such a login waits for its answer (0 to 60000 ms; one below
   * `loginFailureDelayMs` is raised to it: the first delay is always waited). Default 16000 ms.
   */
  loginFailureMaxDelayMs?: number | undefined
  /**
   * Lifetime of the device cookie (`keygate_device`, HMAC-signed with a key derived from the token's digest: it outlives restarts, not a new token)
   * that every successful login sets: a login carrying a valid one is never throttled by
   * address; its failures count against that cookie alone (with the same delays), and 10
   * failures revoke it. Default 30 days.
   */
  deviceCookieMaxAgeMs?: number | undefined
  /** Receives a line for each 500 or 503 answer (never a request body or a secret); default `console.error`. If it throws, the answer is sent all the same. */
  log?: ((line: string) => void) | undefined
  // createAdminHandler's own options, refused here (a TypeError, also a KeygateError INVALID_ARGUMENT, naming them), so that options
  // made for it and spread or passed in a variable do not compile either.
  /** Not an option of the server (it serves the page at `/`): `createAdminServer` refuses it. */
  prefix?: never
  /** Not an option of the server: `createAdminServer` refuses it. */
  cookiePath?: never
}

export interface AdminServer {
  readonly server: import('node:http').Server
  /** `http://host:port` once listening, else null; a link-local IPv6 host keeps its zone, as a URL writes it (`http://[fe80::1%25eth0]:8080`). */
  readonly url: string | null
  readonly port: number | null
  readonly sessionCount: number
  /**
   * Starts listening; resolves to the URL. Rejects with a `KeygateError`: `INVALID_ARGUMENT` for a
   * port in use or one below 1024 without the right, a host that is not this machine's, or a server
   * already listening (or starting to);
   * `STORE_IO` for any other failure (out of file descriptors, `EMFILE`).
   */
  listen(): Promise<string>
  /**
   * Stops listening, drops every session and connection: idle connections at once, requests
   * under way (a body still arriving, an answer being written) once answered, or after 2 s if
   * they have not finished by then. Does not close the store. Called again while it drains, it
   * resolves with the first call, once the server is closed. Called while
   * `listen()` is still under way (looking up the host), it resolves once that server is closed too.
   */
  close(): Promise<void>
}

export declare function createAdminServer(options: AdminServerOptions): AdminServer

export interface RuleCheck {
  ok: boolean
  rules: string[]
  errors: { line: number; rule: string; message: string }[]
}
export declare function validateLines(lines: string[], options?: { rights?: boolean; scrub?: (text: string) => string }): RuleCheck
export declare const CSP: string
export declare const SECURITY_HEADERS: Record<string, string>
export declare const COOKIE_NAME: string
