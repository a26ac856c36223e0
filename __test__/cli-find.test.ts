// Incident response from a shell: which key a leaked secret is (`key find`), keys by hint
// (`key list --hint`), and an `audit --key` that finds nothing saying why. The real bin on a
// real store file; the secret only ever on standard input or in $KEYGATE_SECRET.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import path from 'node:path'

import { KeyStore } from '../index.js'
import type { ApiKey } from '../index.js'
import { DAY, assertNoSecret, forgeSecret } from './helpers.js'
import { createKey, json, jsonError, ok, usage, workspace } from './support/cli.js'

describe('key find: the key a secret belongs to', () => {
  const ws = workspace()
  const keys: Record<string, { id: string; secret: string }> = {}
  let expired = { id: '', secret: '' }
  before(async () => {
    // A user who may call anything, and keys without rules: any check of theirs is allowed, so
    // a find that made one would record a use.
    ok(await ws.kg(['user', 'put', 'svc', '--right', '*:*']))
    ok(await ws.kg(['user', 'put', 'idle', '--status', 'suspended']))
    for (const name of ['used', 'fresh', 'suspended', 'revoked']) {
      keys[name] = await createKey(ws.kg, ['--user', 'svc', '--description', name, '--expires', '1d'])
    }
    keys.idleUser = await createKey(ws.kg, ['--user', 'idle', '--description', 'idle user', '--expires', '1d'])
    ok(await ws.kg(['key', 'suspend', keys.suspended.id]))
    ok(await ws.kg(['key', 'revoke', keys.revoked.id]))
    ok(await ws.kg(['check', keys.used.secret, 'session', 'getInfo']))
    // A key that expired yesterday (not yet purged): created on a store whose clock stands two days back.
    const past = KeyStore.open(ws.db, { now: new Date(Date.now() - 2 * DAY) })
    try {
      const issued = past.createKey({ userId: 'svc', description: 'expired', expiresAt: new Date(Date.now() - DAY) })
      expired = { id: issued.key.id, secret: issued.secret }
    } finally {
      past.close()
    }
  })
  after(() => ws.cleanup())

  const show = async (id: string) => json<ApiKey>(ok(await ws.kg(['key', 'show', id, '--json'])))
  const find = (secret: string, args: string[] = []) => ws.kg(['key', 'find', '--secret-stdin', ...args], { input: `${secret}\n` })

  test('prints the key as key show does, from --secret-stdin or $KEYGATE_SECRET', async () => {
    const { id, secret } = keys.fresh
    const r = ok(await find(secret))
    assert.match(r.stdout, new RegExp(`^found key ${id} \\(to revoke it: keygate key revoke ${id}\\)\\n`))
    assert.match(r.stdout, /^user\s+svc$/m)
    assert.match(r.stdout, /^description\s+fresh$/m)
    assert.deepEqual(json<ApiKey>(ok(await find(secret, ['--json']))), await show(id))
    const fromEnv = ok(await ws.kg(['key', 'find', '--json'], { env: { KEYGATE_SECRET: secret } }))
    assert.equal(json<ApiKey>(fromEnv).id, id)
    // A secret as a file may hold it: CRLF line ends, blanks around it, more lines after.
    const fromFile = ok(await ws.kg(['key', 'find', '--secret-stdin', '--json'], { input: `  ${secret}  \r\nnext line\r\n` }))
    assert.equal(json<ApiKey>(fromFile).id, id)
  })

  test('finds the key whatever its state or its user’s: suspended, revoked, expired, user suspended', async () => {
    const cases: [{ id: string; secret: string }, string][] = [
      [keys.suspended, 'suspended'],
      [keys.revoked, 'revoked'],
      [expired, 'active'],
      [keys.idleUser, 'active'],
    ]
    for (const [key, state] of cases) {
      const r = await find(key.secret, ['--json'])
      assert.equal(r.code, 0, `${state} key ${key.id}: ${r.stdout}${r.stderr}`)
      const found = json<ApiKey>(r)
      assert.equal(found.id, key.id)
      assert.equal(found.state, state)
    }
    assert.match(ok(await find(keys.revoked.secret)).stdout, new RegExp(`^found key ${keys.revoked.id} \\(revoked already\\)\\n`))
    assert.match(ok(await find(expired.secret)).stdout, /^expires\s+\S+ \(expired /m)
  })

  test('is not a use: lastUsedAt stays as it was, used or never used', async () => {
    const usedBefore = (await show(keys.used.id)).lastUsedAt
    assert.notEqual(usedBefore, null, 'the check before was a use')
    for (const name of ['used', 'fresh']) {
      ok(await find(keys[name].secret))
      ok(await ws.kg(['key', 'find'], { env: { KEYGATE_SECRET: keys[name].secret } }))
    }
    assert.equal((await show(keys.used.id)).lastUsedAt, usedBefore)
    assert.equal((await show(keys.fresh.id)).lastUsedAt, null)
  })

  test('no key has it: exit 1, malformed told apart from unknown', async () => {
    const unknown = await find(forgeSecret())
    assert.equal(unknown.code, 1)
    assert.equal(unknown.stdout, '')
    assert.equal(unknown.stderr, 'error: no key in this store has that secret (it was deleted, or belongs to another store) (UNKNOWN_KEY)\n')
    // The secret of a key since deleted is unknown too.
    const gone = await createKey(ws.kg, ['--user', 'svc', '--description', 'gone', '--expires', '1d'])
    ok(await ws.kg(['key', 'delete', gone.id]))
    assert.match((await find(gone.secret)).stderr, /no key in this store has that secret/)
    // Cut short, one character changed: not well formed (the checksum fails).
    const { secret } = keys.fresh
    const changed = `${secret.slice(0, 10)}${secret[10] === 'A' ? 'B' : 'A'}${secret.slice(11)}`
    for (const bad of [secret.slice(0, -1), changed, 'kg_not-a-key']) {
      const r = await find(bad)
      assert.equal(r.code, 1, r.stderr)
      assert.match(r.stderr, /^error: no key has that secret: it is not well formed .* \(UNKNOWN_KEY\)\n$/)
    }
    jsonError(await find(forgeSecret(), ['--json']), 1, 'UNKNOWN_KEY')
    jsonError(await find(changed, ['--json']), 1, 'UNKNOWN_KEY')
  })

  test('the secret is never printed: text, --json, errors', async () => {
    const { secret } = keys.fresh
    const runs = [
      await find(secret),
      await find(secret, ['--json']),
      await ws.kg(['key', 'find'], { env: { KEYGATE_SECRET: secret } }),
      // Given as an argument, a usage error that does not echo it and says how to pass it.
      await ws.kg(['key', 'find', secret]),
      await ws.kg(['key', 'find', secret, '--json']),
      await find(secret.slice(0, -1)),
      await find(secret.slice(0, -1), ['--json']),
    ]
    for (const r of runs) assertNoSecret(`${r.stdout}${r.stderr}`, secret)
    usage(runs[3], 'too many arguments', '--secret-stdin', 'KEYGATE_SECRET')
  })

  test('usage errors before the store is opened: no secret anywhere, an empty one', async () => {
    usage(await ws.kg(['key', 'find']), 'needs a secret', '--secret-stdin', 'KEYGATE_SECRET')
    usage(await ws.kg(['key', 'find', '--secret-stdin'], { input: '\n' }), 'empty')
    usage(await ws.kg(['key', 'find'], { env: { KEYGATE_SECRET: '   ' } }), 'empty')
    usage(await ws.kg(['--db', path.join(ws.dir, 'none.db'), 'key', 'find']), 'needs a secret')
  })
})

describe('key list --hint', () => {
  const ws = workspace()
  const made: { id: string; secret: string; hint: string; user: string }[] = []
  before(async () => {
    ok(await ws.kg(['user', 'put', 'a']))
    ok(await ws.kg(['user', 'put', 'b']))
    for (const user of ['a', 'a', 'b']) {
      const { id, secret } = await createKey(ws.kg, ['--user', user, '--description', 'd', '--expires', '1d'])
      made.push({ id, secret, hint: secret.slice(-4), user })
    }
  })
  after(() => ws.cleanup())

  test('lists only the keys whose hint is exactly that, with the other filters', async () => {
    const first = made[0]
    const listed = json<ApiKey[]>(ok(await ws.kg(['key', 'list', '--hint', first.hint, '--json'])))
    assert.deepEqual(
      listed.map((k) => k.id),
      made.filter((k) => k.hint === first.hint).map((k) => k.id),
    )
    assert.match(ok(await ws.kg(['key', 'list', '--hint', first.hint])).stdout, new RegExp(`^${first.id}\\s.*…${first.hint}`, 'm'))
    // Case-sensitive: the same letters in another case are another hint.
    const swapped = [...first.hint].map((c) => (c === c.toLowerCase() ? c.toUpperCase() : c.toLowerCase())).join('')
    if (swapped !== first.hint && !made.some((k) => k.hint === swapped)) {
      assert.deepEqual(json<ApiKey[]>(ok(await ws.kg(['key', 'list', '--hint', swapped, '--json']))), [])
    }
    // Combined with --user and --state: each narrows the list.
    const b = made[2]
    assert.deepEqual(
      json<ApiKey[]>(ok(await ws.kg(['key', 'list', '--hint', b.hint, '--user', 'b', '--json']))).map((k) => k.id),
      [b.id],
    )
    if (b.hint !== first.hint) assert.deepEqual(json<ApiKey[]>(ok(await ws.kg(['key', 'list', '--hint', b.hint, '--user', 'a', '--json']))), [])
    ok(await ws.kg(['key', 'revoke', b.id]))
    assert.deepEqual(json<ApiKey[]>(ok(await ws.kg(['key', 'list', '--hint', b.hint, '--state', 'active', '--user', 'b', '--json']))), [])
    assert.deepEqual(
      json<ApiKey[]>(ok(await ws.kg(['key', 'list', '--hint', b.hint, '--state', 'revoked', '--json']))).map((k) => k.id),
      [b.id],
    )
  })

  test('--search lists the keys whose id, description or hint holds the text, any letter case, whole or paged', async () => {
    ok(await ws.kg(['user', 'put', 'searched']))
    const ledger = await createKey(ws.kg, ['--user', 'searched', '--description', 'Ledger SYNC', '--expires', '1d'])
    const other = await createKey(ws.kg, ['--user', 'searched', '--description', 'unrelated', '--expires', '1d'])
    const listed = (args: string[]) => ws.kg(['key', 'list', '--user', 'searched', ...args, '--json'])
    assert.deepEqual(
      json<ApiKey[]>(ok(await listed(['--search', 'ledger sync']))).map((k) => k.id),
      [ledger.id],
    )
    assert.deepEqual(
      json<ApiKey[]>(ok(await listed(['--search', other.id.toLowerCase()]))).map((k) => k.id),
      [other.id],
    )
    assert.deepEqual(
      json<{ keys: ApiKey[] }>(ok(await listed(['--search', 'LEDGER', '--limit', '5']))).keys.map((k) => k.id),
      [ledger.id],
    )
    const refused = await ws.kg(['key', 'list', '--search', `${ledger.secret}${'x'.repeat(1024)}`])
    assert.equal(refused.code, 3)
    assert.match(refused.stderr, /INVALID_ARGUMENT/)
    assert.ok(!refused.stderr.includes(ledger.secret.slice(3, 20)) && !refused.stderr.includes('xxxx'), refused.stderr)
  })

  test('two keys sharing a hint are both listed', async () => {
    // Made in memory until two share a hint (62^4 hints: some thousands of keys), the others
    // deleted, then copied into a store file for the command.
    const memory = KeyStore.inMemory()
    const db = path.join(ws.dir, 'shared-hint.db')
    let pair: string[] = []
    try {
      memory.putUser({ id: 'many', status: 'active', rights: [], roles: [] })
      const byHint = new Map<string, string>()
      for (let i = 0; i < 1_000_000 && pair.length === 0; i++) {
        const { key } = memory.createKey({ userId: 'many', description: '', expiresAt: new Date(Date.now() + DAY) })
        const other = byHint.get(key.hint)
        if (other !== undefined) pair = [key.id, other]
        byHint.set(key.hint, key.id)
      }
      for (const key of memory.listKeys()) if (!pair.includes(key.id)) memory.deleteKey(key.id)
      const file = KeyStore.open(db)
      try {
        KeyStore.copy(memory, file)
      } finally {
        file.close()
      }
    } finally {
      memory.close()
    }
    assert.equal(pair.length, 2)
    const hint = json<ApiKey>(ok(await ws.kg(['--db', db, 'key', 'show', pair[0], '--json']))).hint
    const listed = json<ApiKey[]>(ok(await ws.kg(['--db', db, 'key', 'list', '--hint', hint, '--json'])))
    assert.deepEqual(listed.map((k) => k.id).sort(), [...pair].sort())
  })

  test('a hint that is not 4 letters and digits is a usage error, never printing a secret back', async () => {
    const { secret, hint } = made[0]
    // A secret pasted in pieces (a colon, a space, a line break between them) has no run long
    // enough to be redacted: it must not be printed back either.
    const pieces = [':', ' ', '\n'].map((cut) => `${secret.slice(0, 26)}${cut}${secret.slice(26)}`)
    for (const bad of ['', 'abc', 'abcde', 'ab-c', `…${hint}`, 'ab c', 'äbcd', secret, ...pieces]) {
      const r = await ws.kg(['key', 'list', '--hint', bad])
      usage(r, '--hint', 'last 4 characters')
      assertNoSecret(r.stderr, secret)
    }
    jsonError(await ws.kg(['key', 'list', '--hint', secret, '--json']), 2, 'USAGE')
  })
})

describe('audit --key that finds nothing says why', () => {
  const ws = workspace()
  let id = ''
  let gone = ''
  before(async () => {
    ok(await ws.kg(['user', 'put', 'svc']))
    ;({ id } = await createKey(ws.kg, ['--user', 'svc', '--description', 'quiet', '--expires', '1d']))
    ;({ id: gone } = await createKey(ws.kg, ['--user', 'svc', '--description', 'gone', '--expires', '1d']))
    ok(await ws.kg(['key', 'delete', gone]))
  })
  after(() => ws.cleanup())

  test('a key nobody changed still has its creation, and a deleted key its history', async () => {
    assert.match(ok(await ws.kg(['audit', '--key', id])).stdout, /createKey/)
    assert.match(ok(await ws.kg(['audit', '--key', gone])).stdout, /deleteKey/)
  })

  test('entries of the key exist, none matching the other filters', async () => {
    for (const key of [id, gone]) {
      const r = ok(await ws.kg(['audit', '--key', key, '--action', 'setState']))
      assert.equal(r.stdout, `no audit entries\n(key "${key}" has entries, but none match the other filters)\n`)
    }
  })

  test('an id no entry names, or no key id at all: a typo', async () => {
    const other = `key_${'0'.repeat(22)}`
    assert.equal(
      ok(await ws.kg(['audit', '--key', other])).stdout,
      `no audit entries\n(no entry of this store's trail names key "${other}": a typo, or a key of another store?)\n`,
    )
    const typo = `kye_${id.slice(4)}`
    assert.equal(ok(await ws.kg(['audit', '--key', typo])).stdout, `no audit entries\n("${typo}" is not a key id, which is key_ and 22 letters and digits: a typo?)\n`)
    // --json stays the entries alone.
    assert.deepEqual(json<unknown[]>(ok(await ws.kg(['audit', '--key', other, '--json']))), [])
  })

  test('a secret of this store pasted as --key in pieces is not printed back', async () => {
    const { secret } = await createKey(ws.kg, ['--user', 'svc', '--description', 'leaked', '--expires', '1d'])
    for (const cut of [':', ' ', '\n']) {
      const r = ok(await ws.kg(['audit', '--key', `${secret.slice(0, 26)}${cut}${secret.slice(26)}`]))
      assert.match(r.stdout, /^no audit entries\n\(.*withheld\)\n$/)
      assertNoSecret(r.stdout, secret)
    }
  })
})
