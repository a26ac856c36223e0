import type { KeyStore, StoreOptions } from '../../index.js'

export interface ServeOptions {
  /** The durable store file; default `./keygate.db` (created if missing). */
  db?: string | undefined
  /**
   * Default `127.0.0.1`. Refused before the store is opened (a `TypeError`, `INVALID_ARGUMENT`): `''` (Node
   * would take it as every interface), a host holding a control character (a NUL would cut it short) or
   * longer than 253 characters (a final dot not counted).
   */
  host?: string | undefined
  /** Default `PORT` or 8080; 0 = any free port. */
  port?: number | undefined
  /**
   * The admin token, 16 to 1,024 characters (given empty: refused). Default `KEYGATE_ADMIN_TOKEN`
   * (empty: unset); else one is generated at the first start,
   * printed once, and only its SHA-256 is kept in `<db>.admin-token.sha256` (delete it to reset).
   */
  token?: string | undefined
  /** Options of `KeyStore.open`, checked before anything is started (a TypeError naming `options.storeOptions`). */
  storeOptions?: StoreOptions | undefined
  /** Where the startup lines go; default `console.log`. */
  print?: ((line: string) => void) | undefined
  /** Close the server and the store on SIGINT/SIGTERM, then exit; default true. */
  handleSignals?: boolean | undefined
}

export interface Serving {
  url: string
  port: number
  /** Absolute path of the store file. */
  db: string
  /** Absolute path of the admin-token digest file. */
  tokenFile: string
  store: KeyStore
  /** Stops the server and closes the store. */
  close(): Promise<void>
}

export declare function serve(options?: ServeOptions): Promise<Serving>
export declare function tokenFileOf(db: string): string
export declare function adminToken(
  db: string,
  given?: string,
  env?: Record<string, string | undefined>,
): { token?: string; tokenDigest: string; source: 'option' | 'env' | 'file' | 'generated'; file: string; save?: () => void }
