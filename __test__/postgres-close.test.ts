// close() on a PostgreSQL store while its background work is stuck on the database: the uses
// not yet written are written by close or reported to onError, never dropped without a word.
import { after, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'

import type { BackgroundError } from '../index.js'
import { Cluster, PG_USER, clusterSkipReason, openPg, pgOnly, seedKeys, until } from './support/postgres.js'

describe('close() while a lastUsedAt flush waits on the database (a throwaway cluster)', {
  ...pgOnly(),
  ...(clusterSkipReason() ? { skip: clusterSkipReason() } : {}),
}, () => {
  let cluster: Cluster | undefined
  after(() => cluster?.remove())

  test('the background flush under way as close begins fails: its uses are reported, not dropped in silence', { timeout: 120_000 }, async () => {
    cluster ??= await Cluster.create()
    const db = cluster.createDatabase()
    const reports: BackgroundError[] = []
    // A lock wait long enough for close to begin while the background flush waits in it.
    const store = openPg(db.url, { statementTimeoutMs: 5000, onError: (e) => reports.push(e) })
    const [issued] = seedKeys(store, 1)
    // Another session holds the key's row, as a long transaction of another tool would.
    const holder = spawn(
      'psql',
      [
        '-X',
        '-q',
        '-h',
        '127.0.0.1',
        '-p',
        String(cluster.port),
        '-U',
        PG_USER,
        '-d',
        db.name,
        '-c',
        'BEGIN; SELECT 1 FROM keygate_keys FOR UPDATE; SELECT pg_sleep(60)',
      ],
      { stdio: 'ignore' },
    )
    try {
      await until('the other session holds the row', 20_000, () =>
        cluster!.psql(`SELECT count(*) FROM pg_stat_activity WHERE datname = '${db.name}' AND query LIKE '%pg_sleep%' AND state = 'active'`) === '1' ? true : undefined,
      )
      assert.equal(store.isAllowed(issued!.secret, 'svc', 'call'), true)
      // The background thread's flush (about once a second) takes the use and waits for the row.
      await until('the background flush waits for the row', 20_000, () =>
        cluster!.psql(`SELECT count(*) FROM pg_stat_activity WHERE datname = '${db.name}' AND wait_event_type = 'Lock' AND query LIKE '%FOR UPDATE%'`, db.name) === '1'
          ? true
          : undefined,
      )
      assert.equal(reports.length, 0, 'nothing failed before close')
      store.close()
      await until('close reports the use it could not write', 5_000, () => (reports.some((e) => e.task === 'lastUsedAt') ? true : undefined))
      const report = reports.find((e) => e.task === 'lastUsedAt')!
      assert.equal(report.code, 'STORE_UNAVAILABLE', report.message)
      assert.equal(report.recovered, false)
      assert.match(report.message, /lock/)
      assert.ok(!report.message.includes(issued!.secret))
    } finally {
      holder.kill('SIGKILL')
    }
  })
})
