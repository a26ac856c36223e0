// A PostgreSQL store in a database whose encoding is not UTF-8. The server converts every text it
// stores from the client's UTF-8 to the database's encoding, and back when it is read: LATIN1
// cannot hold most of Unicode (a description with an emoji would be refused at the write, a
// STORE_IO the SQLite store never gives), and EUC_JP holds U+00A6 '¦' but reads it back as U+FFE4
// '￤', so a description or actor would change under the process that wrote it, and the audit
// trail, sealed over the text as written, would no longer verify. Such a database is refused at
// open, before anything is written, saying why; SQL_ASCII stores the bytes it is given and reads
// them back unchanged, so it works, as UTF8 does.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'

import { KeyStore } from '../index.js'
import { DAY, throwsCode } from './helpers.js'
import { createDatabase, openPg, pgOnly, psql } from './support/postgres.js'

const TEXT = 'café ¦ Grüße 中文 🚀 𝔘𝔫𝔦'

describe('a PostgreSQL database that is not UTF-8', pgOnly(), () => {
  for (const encoding of ['LATIN1', 'EUC_JP', 'WIN1252']) {
    test(`${encoding}: refused at open with INVALID_ARGUMENT naming the encoding, nothing written`, () => {
      const db = createDatabase(undefined, encoding)
      throwsCode(() => KeyStore.open(`${db.url}?sslmode=disable`, { onError: () => {} }), 'INVALID_ARGUMENT', `encoding ${encoding}`, "ENCODING 'UTF8'")
      // No table was made: the database is left as it was.
      assert.equal(psql("SELECT count(*) FROM pg_tables WHERE tablename LIKE 'keygate%'", { database: db.name }), '0')
    })
  }

  for (const encoding of ['UTF8', 'SQL_ASCII']) {
    test(`${encoding}: descriptions and actors of any Unicode text round-trip exactly, and the audit trail verifies after a reopen`, () => {
      const db = createDatabase(undefined, encoding)
      const url = `${db.url}?sslmode=disable`
      const writer = openPg(url)
      writer.putUser({ id: 'u1', rights: ['svc:*'] }, { actor: TEXT })
      const { key, secret } = writer.createKey({ userId: 'u1', description: TEXT, expiresAt: new Date(Date.now() + DAY) }, { actor: TEXT })
      const fresh = openPg(url)
      for (const store of [writer, fresh]) {
        assert.equal(store.getKey(key.id)?.description, TEXT)
        assert.deepEqual(
          store.audit({}).map((entry) => entry.actor),
          [TEXT, TEXT],
        )
        assert.deepEqual(store.verifyAudit(), { ok: true, entries: 2 })
        assert.equal(store.isAllowed(secret, 'svc', 'call'), true)
      }
    })
  }
})
