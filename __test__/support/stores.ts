// The kinds of store a suite can run against: in-memory, SQLite (a real temp file) and
// PostgreSQL (a database of its own on the machine's server). One suite, parametrized by
// kind: `for (const kind of STORE_KINDS) describe(kind.name, kind.skip, () => …)`.
import { after } from 'node:test'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'

import { KeyStore } from '../../index.js'
import type { StoreOptions } from '../../index.js'
import { createDatabase, pgSkipReason } from './postgres.js'

export type StoreKindName = 'memory' | 'sqlite' | 'postgres'

/** Where a store of some kind keeps its state: a fresh place per `place()`. */
export interface Place {
  /** Opens (or reopens) the store kept here. An in-memory place opens a new, empty store each time. */
  open(options?: StoreOptions): KeyStore
}

export interface StoreKind {
  name: StoreKindName
  /** Whether a store keeps its state across close and open. */
  durable: boolean
  /** `{ skip: reason }` when this kind cannot run here, else `{}` (for describe/test options). */
  options: { skip?: string }
  /** A new, empty place. */
  place(): Place
}

const openStores: KeyStore[] = []
const tempDirs: string[] = []

function remember(store: KeyStore): KeyStore {
  openStores.push(store)
  return store
}

after(() => {
  for (const store of openStores) {
    try {
      store.close()
    } catch {
      // closed already, or reported by the test that used it
    }
  }
  for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true })
})

export const MEMORY: StoreKind = {
  name: 'memory',
  durable: false,
  options: {},
  place: () => ({ open: (options) => remember(KeyStore.inMemory(options)) }),
}

export const SQLITE: StoreKind = {
  name: 'sqlite',
  durable: true,
  options: {},
  place() {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keygate-contract-'))
    tempDirs.push(dir)
    const file = path.join(dir, 'keys.db')
    return { open: (options) => remember(KeyStore.open(file, options)) }
  },
}

export const POSTGRES: StoreKind = {
  name: 'postgres',
  durable: true,
  get options() {
    const reason = pgSkipReason()
    return reason === undefined ? {} : { skip: `PostgreSQL: ${reason}` }
  },
  place() {
    const db = createDatabase()
    return { open: (options) => remember(KeyStore.open(db.url, options)) }
  },
}

export const STORE_KINDS: readonly StoreKind[] = [MEMORY, SQLITE, POSTGRES]
