// The kinds of store a suite can run against: in-memory, SQLite (a real temp file) and
// PostgreSQL (a database of its own on the machine's server). One suite, parametrized by
// kind: `for (const kind of STORE_KINDS) describe(kind.name, kind.skip, () => …)`.
import { after, afterEach } from 'node:test'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'

import { KeyStore } from '../../index.js'
import type { StoreOptions } from '../../index.js'
import { createDatabase, pgSkipReason } from './postgres.js'
import type { TestDatabase } from './postgres.js'

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
const databases: TestDatabase[] = []

function remember(store: KeyStore): KeyStore {
  openStores.push(store)
  return store
}

/**
 * After each test: its stores closed, its temp files and databases removed. A PostgreSQL store
 * holds two connections, and the machine's server allows 100 in all, shared with others.
 */
function release(): void {
  for (const store of openStores.splice(0)) {
    try {
      store.close()
    } catch {
      // closed already, or reported by the test that used it
    }
  }
  for (const dir of tempDirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true })
  for (const db of databases.splice(0)) {
    try {
      db.drop()
    } catch (error) {
      console.error(`could not drop test database ${db.name}: ${(error as Error).message}`)
    }
  }
}
afterEach(release)
after(release)

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
    databases.push(db)
    return { open: (options) => remember(KeyStore.open(db.url, options)) }
  },
}

export const STORE_KINDS: readonly StoreKind[] = [MEMORY, SQLITE, POSTGRES]
