// python3's sqlite3 module, to make foreign, newer, damaged and tampered store files from
// outside keygate. Tests that need it are skipped without it (`{ skip: NO_PYTHON }`).
import { execFileSync } from 'node:child_process'

const PY_SQL = `
import json, sqlite3, sys
path, statements = sys.argv[1], json.loads(sys.argv[2])
c = sqlite3.connect(path, isolation_level=None)
out = []
c.execute('BEGIN')
for s in statements:
    sql, params = (s[0], s[1]) if isinstance(s, list) else (s, [])
    out.append([list(r) for r in c.execute(sql, params).fetchall()])
c.execute('COMMIT')
out.append([list(r) for r in c.execute('PRAGMA wal_checkpoint(TRUNCATE)').fetchall()])
c.close()
print(json.dumps(out, default=lambda b: b.hex()))
`

/**
 * The end of a python3 script (with `sqlite3`, `sys` and `time` imported) that takes the file's
 * write lock again the moment a key of the store at `sys.argv[1]` is revoked, and holds it 3 s:
 * another process's long write right after a revocation.
 */
export const LOCK_AGAIN_WHEN_REVOKED = `c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=0)
while True:
    try:
        c.execute('BEGIN IMMEDIATE')
    except sqlite3.OperationalError:
        time.sleep(0.0001)
        continue
    if c.execute("SELECT count(*) FROM keys WHERE state = 'revoked'").fetchone()[0] > 0:
        time.sleep(3)
        c.execute('ROLLBACK')
        break
    c.execute('ROLLBACK')
    time.sleep(0.0001)`

export const PYTHON = (() => {
  try {
    execFileSync('python3', ['-c', 'import sqlite3'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
})()
export const NO_PYTHON = PYTHON ? false : 'python3 with its sqlite3 module is not available'

export type Statement = string | [string, unknown[]]

/**
 * Runs statements in one transaction with python3's sqlite3 and checkpoints the WAL into the
 * main file (the last connection to close also removes the WAL). Returns each statement's rows.
 */
export function sql(file: string, statements: Statement[] = []): unknown[][][] {
  const out = execFileSync('python3', ['-c', PY_SQL, file, JSON.stringify(statements)], { encoding: 'utf8' })
  return JSON.parse(out) as unknown[][][]
}
