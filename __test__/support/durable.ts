// Shared by the durable-*.test.ts files (KeyStore.open): temp files and stores that are
// released after the file's tests, child processes that are killed, and small timing helpers.
import { after } from 'node:test'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import type { ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'

import { KeyStore } from '../../index.js'
import type { KeygateError, StoreOptions } from '../../index.js'
import { throwsCode } from '../helpers.js'

export const NODE = process.execPath

/** The plain CommonJS scripts in this folder that the tests run as child processes. */
export type ChildScript = 'busy-writer' | 'concurrent-writer' | 'contending-writer' | 'crash-writer' | 'open-probe' | 'store-server' | 'stress-worker'

export function childScript(name: ChildScript): string {
  return path.join(__dirname, `${name}.js`)
}

// ---- housekeeping: temp dirs, stores and children are all released ---------

const tempDirs: string[] = []
const openStores: KeyStore[] = []
/** Child processes still running; killed after the file's tests if a test did not end them. */
export const children = new Set<ChildProcess>()

after(() => {
  for (const store of openStores) {
    try {
      store.close()
    } catch {
      // already reported by the test that used it
    }
  }
  for (const child of children) child.kill('SIGKILL')
  for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true })
})

export function tempDir(): string {
  const dir = fs.mkdtempSync(`${os.tmpdir()}/keygate-`)
  tempDirs.push(dir)
  return dir
}

/** A path for a new store in a fresh temp dir. */
export function storePath(name = 'keys.db'): string {
  return path.join(tempDir(), name)
}

/** KeyStore.open, remembered so that `after` closes it if the test did not. */
export function open(file: string, options?: StoreOptions): KeyStore {
  const store = KeyStore.open(file, options)
  openStores.push(store)
  return store
}

// ---- time -------------------------------------------------------------------

/** Wall-clock ms with sub-ms precision, comparable across processes. */
export const wall = () => performance.timeOrigin + performance.now()
const PAUSE = new Int32Array(new SharedArrayBuffer(4))
/** Blocks this thread (not the store's own threads) for `ms`. */
export function sleepSync(ms: number): void {
  Atomics.wait(PAUSE, 0, 0, ms)
}
export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

// ---- files ------------------------------------------------------------------

export function sha256(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex')
}

/** Asserts that `fn` throws a KeygateError `code` whose message names `file`. */
export function throwsStoreError(fn: () => unknown, code: 'STORE_IO' | 'STORE_CORRUPT' | 'STORE_LOCKED', file: string): KeygateError {
  return throwsCode(fn, code, file)
}
