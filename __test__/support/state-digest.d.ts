import type { KeyStore } from '../../index.js'

/** SHA-256 (hex) of the store's roles, users and keys as listed, lastUsedAt left out. */
export declare function stateDigest(store: KeyStore): string
