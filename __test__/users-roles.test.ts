// Users, roles and effective rights, as an admin back end manages them.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'

import { KeyStore } from '../index.js'
import { DAY, T0, allowedTwice, assertNoSecret, at, forgeSecret, frozenStore, issue, snapshot, throwsCode } from './helpers.js'

describe('users', () => {
  test('putUser creates a user, status defaults to active, rights/roles default to none', () => {
    const store = KeyStore.inMemory()
    const user = store.putUser({ id: 'svc-integration' })
    assert.deepEqual(user, { id: 'svc-integration', status: 'active', rights: [], roles: [] })
    assert.deepEqual(store.getUser('svc-integration'), user)
  })

  test('putUser stores status, normalised rights and roles', () => {
    const store = KeyStore.inMemory()
    store.putRole({ name: 'reader', rights: ['data:entityBrowseRecords2'] })
    const user = store.putUser({
      id: 'alice@example.com',
      status: 'suspended',
      rights: ['  session:*  ', 'data:entityAddRecord'],
      roles: ['reader'],
    })
    assert.deepEqual(user, {
      id: 'alice@example.com',
      status: 'suspended',
      rights: ['session:*', 'data:entityAddRecord'],
      roles: ['reader'],
    })
    assert.deepEqual(store.getUser('alice@example.com'), user)
  })

  test('putUser replaces an existing user entirely', () => {
    const store = KeyStore.inMemory()
    store.putRole({ name: 'reader', rights: ['data:*'] })
    store.putUser({ id: 'bob', status: 'archived', rights: ['session:*'], roles: ['reader'] })
    const replaced = store.putUser({ id: 'bob', rights: ['admin:userCreate'] })
    assert.deepEqual(replaced, { id: 'bob', status: 'active', rights: ['admin:userCreate'], roles: [] })
    assert.deepEqual(store.getUser('bob'), replaced)
    assert.equal(store.listUsers().length, 1)
  })

  test("replacing a user keeps the user's keys (they follow the new rights)", () => {
    const store = frozenStore()
    store.putUser({ id: 'integration', rights: ['session:*'] })
    const { key, secret } = issue(store)
    store.putUser({ id: 'integration', rights: ['data:*'] })
    assert.deepEqual(store.getKey(key.id), key)
    assert.equal(store.isAllowed(secret, 'data', 'queryExec'), true)
    assert.equal(store.explain(secret, 'session', 'getSessionInfo').reason, 'user_lacks_right')
  })

  test('user ids: letters, digits and _ - . @, 1 to 128 chars', () => {
    const store = KeyStore.inMemory()
    for (const id of ['a', 'A9', 'svc_integration-v2.1@example.com', 'x'.repeat(128)]) {
      assert.equal(store.putUser({ id }).id, id)
    }
    for (const id of ['', 'a b', 'café', 'semi;colon', 'x'.repeat(129), 'slash/id', 'colon:id']) {
      throwsCode(() => store.putUser({ id }), 'INVALID_ARGUMENT')
    }
    throwsCode(() => store.putUser({ id: 'bad id!' }), 'INVALID_ARGUMENT', 'bad id!')
  })

  test('putUser refuses an unknown status with INVALID_ARGUMENT naming it', () => {
    const store = KeyStore.inMemory()
    throwsCode(() => store.putUser({ id: 'u', status: 'deleted' as never }), 'INVALID_ARGUMENT', 'deleted')
    assert.equal(store.getUser('u'), null)
  })

  test('putUser with an unknown role throws UNKNOWN_ROLE naming it', () => {
    const store = KeyStore.inMemory()
    store.putRole({ name: 'reader', rights: ['data:*'] })
    throwsCode(() => store.putUser({ id: 'u', roles: ['reader', 'writer'] }), 'UNKNOWN_ROLE', 'writer')
    assert.equal(store.getUser('u'), null)
  })

  test('rights take API rules only: an ip= right is INVALID_RULE', () => {
    const store = KeyStore.inMemory()
    throwsCode(() => store.putUser({ id: 'u', rights: ['session:*', 'ip=10.0.0.0/8'] }), 'INVALID_RULE', 'ip=10.0.0.0/8')
    throwsCode(() => store.putUser({ id: 'u', rights: ['not a rule'] }), 'INVALID_RULE', 'not a rule')
    assert.equal(store.getUser('u'), null)
  })

  test('getUser of an unknown id is null', () => {
    const store = KeyStore.inMemory()
    assert.equal(store.getUser('nobody'), null)
  })

  test('listUsers is ordered by id', () => {
    const store = KeyStore.inMemory()
    const ids = ['mallory', 'alice', 'Zed', 'bob', 'carol.x', 'carol', '007']
    for (const id of ids) store.putUser({ id })
    assert.deepEqual(
      store.listUsers().map((u) => u.id),
      [...ids].sort(),
    )
    assert.deepEqual(KeyStore.inMemory().listUsers(), [])
  })

  test('deleteUser returns true, then false; the user is gone', () => {
    const store = KeyStore.inMemory()
    store.putUser({ id: 'u' })
    assert.equal(store.deleteUser('u'), true)
    assert.equal(store.getUser('u'), null)
    assert.deepEqual(store.listUsers(), [])
    assert.equal(store.deleteUser('u'), false)
    assert.equal(store.deleteUser('never-existed'), false)
  })

  test("deleteUser deletes the user's keys, and only those", () => {
    const store = frozenStore()
    store.putUser({ id: 'integration', rights: ['*:*'] })
    store.putUser({ id: 'other', rights: ['*:*'] })
    const a = issue(store)
    const b = issue(store)
    const c = issue(store, { userId: 'other' })
    assert.equal(allowedTwice(store, a.secret, 'session', 'getSessionInfo'), true)
    assert.equal(store.deleteUser('integration'), true)
    assert.equal(store.getKey(a.key.id), null)
    assert.equal(store.getKey(b.key.id), null)
    assert.deepEqual(store.listKeys({ userId: 'integration' }), [])
    assert.deepEqual(
      store.listKeys().map((k) => k.id),
      [c.key.id],
    )
    assert.equal(store.isAllowed(a.secret, 'session', 'getSessionInfo'), false)
    assert.equal(store.explain(b.secret, 'session', 'getSessionInfo').reason, 'unknown_key')
    assert.equal(store.isAllowed(c.secret, 'session', 'getSessionInfo'), true)
    // A new user with the same id does not inherit the old keys.
    store.putUser({ id: 'integration', rights: ['*:*'] })
    assert.equal(store.isAllowed(a.secret, 'session', 'getSessionInfo'), false)
    assert.equal(store.explain(a.secret, 'session', 'getSessionInfo').reason, 'unknown_key')
  })
})

describe('roles', () => {
  test('putRole creates and returns the role with normalised rights; getRole reads it', () => {
    const store = KeyStore.inMemory()
    const role = store.putRole({ name: 'sm-agent', rights: [' apps/com.hornbill.servicemanager/Requests:* ', 'session:*'] })
    assert.deepEqual(role, { name: 'sm-agent', rights: ['apps/com.hornbill.servicemanager/Requests:*', 'session:*'] })
    assert.deepEqual(store.getRole('sm-agent'), role)
    assert.equal(store.getRole('nope'), null)
  })

  test('putRole replaces an existing role', () => {
    const store = KeyStore.inMemory()
    store.putRole({ name: 'r', rights: ['session:*'] })
    const replaced = store.putRole({ name: 'r', rights: ['data:queryExec'] })
    assert.deepEqual(replaced, { name: 'r', rights: ['data:queryExec'] })
    assert.deepEqual(store.listRoles(), [replaced])
  })

  test('a role may have no rights', () => {
    const store = KeyStore.inMemory()
    assert.deepEqual(store.putRole({ name: 'empty', rights: [] }), { name: 'empty', rights: [] })
  })

  test('role rights take API rules only', () => {
    const store = KeyStore.inMemory()
    throwsCode(() => store.putRole({ name: 'r', rights: ['ip=10.0.0.1'] }), 'INVALID_RULE', 'ip=10.0.0.1')
    throwsCode(() => store.putRole({ name: 'r', rights: ['session'] }), 'INVALID_RULE', 'session')
    assert.equal(store.getRole('r'), null)
  })

  test('role names are validated like user ids', () => {
    const store = KeyStore.inMemory()
    assert.equal(store.putRole({ name: 'x'.repeat(128), rights: [] }).name, 'x'.repeat(128))
    for (const name of ['', 'has space', 'x'.repeat(129), 'rôle']) {
      throwsCode(() => store.putRole({ name, rights: [] }), 'INVALID_ARGUMENT')
    }
  })

  test('listRoles is ordered by name', () => {
    const store = KeyStore.inMemory()
    const names = ['writer', 'admin', 'Reader', 'auditor', 'b']
    for (const name of names) store.putRole({ name, rights: [] })
    assert.deepEqual(
      store.listRoles().map((r) => r.name),
      [...names].sort(),
    )
  })

  test('deleteRole returns true then false, and removes the role from every user', () => {
    const store = KeyStore.inMemory()
    store.putRole({ name: 'reader', rights: ['data:*'] })
    store.putRole({ name: 'agent', rights: ['session:*'] })
    store.putUser({ id: 'a', roles: ['reader', 'agent'] })
    store.putUser({ id: 'b', roles: ['reader'] })
    store.putUser({ id: 'c', roles: ['agent'] })
    assert.equal(store.deleteRole('reader'), true)
    assert.equal(store.getRole('reader'), null)
    assert.deepEqual(store.getUser('a')!.roles, ['agent'])
    assert.deepEqual(store.getUser('b')!.roles, [])
    assert.deepEqual(store.getUser('c')!.roles, ['agent'])
    assert.equal(store.deleteRole('reader'), false)
    assert.equal(store.deleteRole('never'), false)
    // Re-creating a role of that name does not give it back to the users.
    store.putRole({ name: 'reader', rights: ['data:*'] })
    assert.deepEqual(store.getUser('b')!.roles, [])
    // A user can be put again with the re-created role.
    assert.deepEqual(store.putUser({ id: 'b', roles: ['reader'] }).roles, ['reader'])
  })
})

describe('effective rights = own rights ∪ role rights', () => {
  function setup() {
    const store = frozenStore()
    store.putRole({ name: 'reader', rights: ['data:entityBrowseRecords2', 'data:queryExec'] })
    store.putRole({ name: 'sm', rights: ['apps/com.hornbill.servicemanager/*:*'] })
    store.putUser({ id: 'integration', rights: ['session:getSessionInfo'], roles: ['reader', 'sm'] })
    const { secret } = issue(store)
    return { store, secret }
  }

  test('own rights, each role and nothing else', () => {
    const { store, secret } = setup()
    assert.equal(store.isAllowed(secret, 'session', 'getSessionInfo'), true)
    assert.equal(store.isAllowed(secret, 'data', 'entityBrowseRecords2'), true)
    assert.equal(store.isAllowed(secret, 'data', 'queryExec'), true)
    assert.equal(store.isAllowed(secret, 'apps/com.hornbill.servicemanager/Requests', 'holdRequest'), true)
    assert.equal(store.isAllowed(secret, 'apps/com.hornbill.servicemanager/AssetUsers', 'create'), true)
    for (const [service, api] of [
      ['session', 'userLogon'],
      ['data', 'entityAddRecord'],
      ['admin', 'keysafeGetKey'],
      ['apps/com.hornbill.core', 'addHistory'],
    ] as const) {
      assert.equal(store.isAllowed(secret, service, api), false, `${service}:${api}`)
      assert.equal(store.explain(secret, service, api).reason, 'user_lacks_right')
    }
  })

  test('effectiveRights: own, each existing role in the user order, and their union once each', () => {
    const { store } = setup()
    store.putRole({ name: 'dup', rights: ['session:getSessionInfo', 'data:queryExec'] })
    store.putUser({ id: 'integration', rights: ['session:getSessionInfo'], roles: ['sm', 'reader', 'dup'] })
    assert.deepEqual(store.effectiveRights('integration'), {
      own: ['session:getSessionInfo'],
      byRole: [
        { role: 'sm', rights: ['apps/com.hornbill.servicemanager/*:*'] },
        { role: 'reader', rights: ['data:entityBrowseRecords2', 'data:queryExec'] },
        { role: 'dup', rights: ['session:getSessionInfo', 'data:queryExec'] },
      ],
      all: ['session:getSessionInfo', 'apps/com.hornbill.servicemanager/*:*', 'data:entityBrowseRecords2', 'data:queryExec'],
    })
    store.deleteRole('sm')
    assert.deepEqual(
      store.effectiveRights('integration')?.byRole.map((r) => r.role),
      ['reader', 'dup'],
    )
    store.putUser({ id: 'bare' })
    assert.deepEqual(store.effectiveRights('bare'), { own: [], byRole: [], all: [] })
    assert.equal(store.effectiveRights('nobody'), null)
    throwsCode(() => store.effectiveRights(42 as unknown as string), 'INVALID_ARGUMENT')
  })

  test('a user with no rights and no roles can call nothing', () => {
    const store = frozenStore()
    store.putUser({ id: 'integration' })
    const { secret } = issue(store)
    assert.equal(store.explain(secret, 'session', 'getSessionInfo').reason, 'user_lacks_right')
  })

  test('key rules only narrow the rights, never widen them', () => {
    const store = frozenStore()
    store.putUser({ id: 'integration', rights: ['session:*'] })
    const { secret } = issue(store, { rules: ['admin:*', 'session:getSessionInfo'] })
    assert.equal(store.isAllowed(secret, 'session', 'getSessionInfo'), true)
    assert.equal(store.explain(secret, 'admin', 'userCreate').reason, 'user_lacks_right')
    assert.equal(store.explain(secret, 'session', 'userLogon').reason, 'no_matching_rule')
  })
})

describe('ids, role names and actors that would mislead the audit trail', () => {
  const BIDI = ['\u202A', '\u202B', '\u202C', '\u202D', '\u202E', '\u2066', '\u2067', '\u2068', '\u2069', '\u200E', '\u200F', '\u061C']

  function store() {
    const s = frozenStore()
    s.putUser({ id: 'svc', rights: ['*:*'] })
    return s
  }

  test('an actor is 1 to 256 characters (Unicode scalar values): 256 are recorded as given, 257 or none are refused', () => {
    const s = store()
    for (const actor of ['a'.repeat(256), '🔑'.repeat(256)]) {
      s.putRole({ name: 'ops', rights: [`s:a${s.audit().length}`] }, { actor })
      assert.equal(s.audit({ limit: 1 })[0]!.actor, actor)
    }
    const before = snapshot(s)
    for (const actor of ['', 'a'.repeat(257), '🔑'.repeat(257)]) {
      throwsCode(() => s.putRole({ name: 'ops', rights: [] }, { actor }), 'INVALID_ARGUMENT', 'must be 1-256 characters')
    }
    assert.deepEqual(snapshot(s), before)
  })

  test('bidirectional controls are INVALID_ARGUMENT in user ids, role names and actors, named by code point only', () => {
    const s = store()
    const { key } = issue(s, { userId: 'svc' })
    const before = snapshot(s)
    const auditLength = s.audit().length
    for (const c of BIDI) {
      const code = `U+${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`
      const errors = [
        throwsCode(() => s.putUser({ id: `admin${c}txt.exe` }), 'INVALID_ARGUMENT', code),
        throwsCode(() => s.putRole({ name: `ops${c}`, rights: [] }), 'INVALID_ARGUMENT', code),
        throwsCode(() => s.putUser({ id: 'svc', rights: ['*:*'] }, { actor: `alice${c}` }), 'INVALID_ARGUMENT', code),
        throwsCode(() => s.setState(key.id, 'suspended', { actor: `${c}bob` }), 'INVALID_ARGUMENT', code),
        throwsCode(() => s.deleteKey(key.id, { actor: `x${c}` }), 'INVALID_ARGUMENT', code),
      ]
      for (const error of errors) assert.ok(!error.message.includes(c), `raw ${code} in ${JSON.stringify(error.message)}`)
    }
    assert.deepEqual(snapshot(s), before)
    assert.equal(s.audit().length, auditLength)
    // Ordinary non-ASCII actors (names) stay fine (a change is recorded; a put of the user as it is would not be).
    s.putUser({ id: 'svc', rights: ['*:*'], status: 'suspended' }, { actor: 'Zoë Åberg' })
    assert.equal(s.audit({ limit: 1 })[0]!.actor, 'Zoë Åberg')
  })

  test('a secret pasted as a user id, role name, actor or description is INVALID_ARGUMENT and never reaches the audit trail', () => {
    const s = store()
    const { key, secret } = issue(s, { userId: 'svc' })
    const before = snapshot(s)
    const auditLength = s.audit().length
    for (const leaked of [secret, forgeSecret('acme')]) {
      const errors = [
        throwsCode(() => s.putUser({ id: leaked }), 'INVALID_ARGUMENT', 'looks like a keygate secret'),
        throwsCode(() => s.putUser({ id: `svc.${leaked}` }), 'INVALID_ARGUMENT', 'looks like a keygate secret'),
        throwsCode(() => s.putRole({ name: leaked, rights: [] }), 'INVALID_ARGUMENT', 'looks like a keygate secret'),
        throwsCode(() => s.putRole({ name: 'ops', rights: [] }, { actor: `ci ${leaked}` }), 'INVALID_ARGUMENT', 'looks like a keygate secret'),
        throwsCode(() => issue(s, { userId: 'svc', description: `key: ${leaked}` }), 'INVALID_ARGUMENT', 'looks like a keygate secret'),
        throwsCode(() => s.updateKey(key.id, { description: leaked }), 'INVALID_ARGUMENT', 'looks like a keygate secret'),
      ]
      for (const error of errors) assertNoSecret(error.message, leaked)
    }
    assert.deepEqual(snapshot(s), before)
    assert.equal(s.audit().length, auditLength)
    assertNoSecret(s.audit(), secret)
  })
})

describe('a secret of the store, however mangled, never becomes an id, name, rule, description or actor', () => {
  test('cut by -, ., a soft hyphen or an invisible character, re-prefixed, or without its prefix: refused, nothing changes, the message holds no piece of it', () => {
    const store = frozenStore()
    store.putUser({ id: 'integration', rights: ['*:*'] })
    const { key, secret } = issue(store, { userId: 'integration' })
    const body = secret.slice(3, 46)
    const [head, tail] = [body.slice(0, 21), body.slice(21)]
    const mangled = [`${head}-${tail}`, `${head}.${tail}`, `KG_${body}`, `kg-${body}`, body, `x${body}Q`]
    const invisible = [`${head}\u200b${tail}`, `${head}\u00ad${tail}`]
    const before = snapshot(store)
    for (const text of mangled) {
      const errors = [
        throwsCode(() => store.putUser({ id: text }), 'INVALID_ARGUMENT'),
        throwsCode(() => store.putRole({ name: text, rights: [] }), 'INVALID_ARGUMENT'),
        throwsCode(() => store.putRole({ name: 'r', rights: [`${text.replace(/[^0-9A-Za-z]/g, '')}:*`] }), 'INVALID_RULE'),
        throwsCode(() => store.updateKey(key.id, { description: `see ${text}` }), 'INVALID_ARGUMENT'),
        throwsCode(() => store.setState(key.id, 'suspended', { actor: text }), 'INVALID_ARGUMENT'),
      ]
      for (const error of errors) assert.ok(!error.message.includes(head) && !error.message.includes(tail), error.message)
    }
    for (const text of invisible) {
      throwsCode(() => store.updateKey(key.id, { description: text }), 'INVALID_ARGUMENT')
      throwsCode(() => store.setState(key.id, 'suspended', { actor: text }), 'INVALID_ARGUMENT')
    }
    assert.deepEqual(snapshot(store), before)
    // Another store's secret is just text here (its checksum is not this store's business).
    assert.equal(store.updateKey(key.id, { description: `rotated from ${forgeSecret().slice(3, 30)}` }).state, 'active')
  })

  test('cut by a percent escape (%3A) or a backslash escape (\\n, \\u00a0) as a URL or JSON writes it: refused, nothing changes', () => {
    // The error messages already treat such escapes as separators (the scrubber reads a text
    // without them); a description or actor holding them must be refused as well, or the
    // secret lands in the audit trail, one decoding away.
    const store = frozenStore()
    store.putUser({ id: 'integration', rights: ['*:*'] })
    const { key, secret } = issue(store, { userId: 'integration' })
    const body = secret.slice(3, 46)
    const [head, tail] = [body.slice(0, 21), body.slice(21)]
    const escaped = [`${head}%3A${tail}`, `kg%5F${body}`, `${head}\\n${tail}`, `${head}\\u00a0${tail}`, `${head}\\x07${tail}`]
    const before = snapshot(store)
    const auditLength = store.audit().length
    for (const text of escaped) {
      const errors = [
        throwsCode(() => store.updateKey(key.id, { description: `see ${text}` }), 'INVALID_ARGUMENT'),
        throwsCode(() => store.createKey({ userId: 'integration', description: text, expiresAt: at(T0, DAY) }), 'INVALID_ARGUMENT'),
        throwsCode(() => store.setState(key.id, 'suspended', { actor: `ops ${text}` }), 'INVALID_ARGUMENT'),
      ]
      for (const error of errors) assert.ok(!error.message.includes(head) && !error.message.includes(tail), error.message)
    }
    assert.deepEqual(snapshot(store), before)
    assert.equal(store.audit().length, auditLength)
    // Escapes in ordinary text are still fine.
    assert.equal(store.updateKey(key.id, { description: 'import of 100%3A files from C:\\new\\u00a0dir' }).state, 'active')
    assert.equal(store.updateKey(key.id, { description: `rotated from ${forgeSecret().slice(3, 30)}` }).state, 'active')
  })
})

describe('objects given to the store', () => {
  test('fields an object only inherits are not read: a polluted Object.prototype adds no roles, rights or rules', () => {
    const store = frozenStore()
    store.putRole({ name: 'admin', rights: ['*:*'] })
    const proto = Object.prototype as Record<string, unknown>
    proto.roles = ['admin']
    proto.rights = ['*:*']
    proto.rules = ['session:*']
    try {
      assert.deepEqual(store.putUser({ id: 'plain' }), { id: 'plain', status: 'active', rights: [], roles: [] })
      const { key } = store.createKey({ userId: 'plain', description: '', expiresAt: new Date(Date.UTC(2025, 3, 1)), rules: [] })
      assert.deepEqual(key.rules, [])
      // Rules only inherited are refused, not left unread: the key would be made free of them.
      assert.throws(() => store.createKey({ userId: 'plain', description: '', expiresAt: new Date(Date.UTC(2025, 3, 1)) }), {
        code: 'INVALID_ARGUMENT',
        message: /^input\.rules is inherited, not the object's own/,
      })
    } finally {
      delete proto.roles
      delete proto.rights
      delete proto.rules
    }
    // JSON's "__proto__" key, copied by Object.assign, becomes the copy's prototype: not its fields.
    const parsed = Object.assign({}, JSON.parse('{"id":"parsed","__proto__":{"roles":["admin"]}}'))
    assert.deepEqual(store.putUser(parsed).roles, [])
    assert.deepEqual(store.effectiveRights('parsed')?.all, [])
  })

  test("a new key's rules or state that its object only inherits are refused: the key would be made without them", () => {
    const store = frozenStore()
    store.putUser({ id: 'svc', rights: ['*:*'] })
    const expiresAt = new Date(Date.UTC(2025, 3, 1))
    class KeyRequest {
      userId = 'svc'
      description = 'from a class'
      expiresAt = expiresAt
      get rules() {
        return ['session:*']
      }
    }
    for (const [input, field] of [
      [new KeyRequest(), 'rules'],
      [{ __proto__: { rules: ['session:*'] }, userId: 'svc', description: '', expiresAt }, 'rules'],
      [Object.assign({ userId: 'svc', description: '', expiresAt }, JSON.parse('{"__proto__":{"state":"suspended"}}')), 'state'],
    ] as const) {
      assert.throws(() => store.createKey(input as never), { code: 'INVALID_ARGUMENT', message: new RegExp(`^input\\.${field} is inherited`) })
    }
    assert.deepEqual(store.listKeys(), [], 'no key was made')
    // Own fields are read, whatever the prototype.
    const own = Object.assign(Object.create({ unrelated: 1 }), { userId: 'svc', description: '', expiresAt, rules: ['session:*'] })
    assert.deepEqual(store.createKey(own).key.rules, ['session:*'])
  })

  test("fields an object holds as its own are read though not enumerable: a key's rules, a user's status", () => {
    // Own fields are all read, as JSON.stringify or a spread would not: left unread, rules
    // defined with Object.defineProperty would leave the key free to call whatever its user may.
    const store = frozenStore()
    store.putUser({ id: 'svc', rights: ['*:*'] })
    const input = Object.defineProperty({ userId: 'svc', description: '', expiresAt: new Date(Date.UTC(2025, 3, 1)) }, 'rules', { value: ['session:*'] })
    const { key, secret } = store.createKey(input)
    assert.deepEqual(key.rules, ['session:*'])
    assert.equal(store.isAllowed(secret, 'session', 'getInfo'), true)
    assert.equal(store.isAllowed(secret, 'data', 'getRecord'), false, 'the key is held to its rules')
    const held = Object.defineProperty({ id: 'held' }, 'status', { value: 'suspended' })
    assert.equal(store.putUser(held).status, 'suspended')
  })

  test("a user's status or a patch's fields that the object only inherits are refused: the user would be active, the patch would change nothing", () => {
    const store = frozenStore()
    store.putUser({ id: 'svc', rights: ['*:*'] })
    const suspended = Object.assign({ id: 'svc' }, JSON.parse('{"__proto__":{"status":"suspended"}}'))
    assert.throws(() => store.putUser(suspended), { code: 'INVALID_ARGUMENT', message: /^user\.status is inherited.*the user would be active/ })
    const { key } = store.createKey({ userId: 'svc', description: '', expiresAt: new Date(Date.UTC(2025, 3, 1)), rules: ['session:*'] })
    class Narrower {
      get rules() {
        return ['session:userLogon']
      }
    }
    const entries = store.audit().length
    assert.throws(() => store.updateKey(key.id, new Narrower() as never), { code: 'INVALID_ARGUMENT', message: /^patch\.rules is inherited.*the key would not change/ })
    assert.deepEqual(store.getKey(key.id)!.rules, ['session:*'])
    assert.equal(store.getUser('svc')!.status, 'active')
    assert.equal(store.audit().length, entries, 'nothing recorded')
  })

  test('options left out are not read from a polluted Object.prototype either', () => {
    const proto = Object.prototype as Record<string, unknown>
    proto.expectedUpdatedAt = new Date(0)
    proto.actor = 'polluted'
    proto.now = new Date(0)
    proto.state = 'revoked'
    try {
      const store = KeyStore.inMemory()
      assert.notEqual(store.now().getTime(), 0, 'the clock was frozen by an inherited options.now')
      store.putUser({ id: 'u', rights: ['*:*'] })
      // A new key's state only inherited is refused (see above); given as its own, it is read.
      assert.throws(() => store.createKey({ userId: 'u', description: '', expiresAt: new Date(Date.now() + DAY), rules: [] }), /input\.state is inherited/)
      const { key } = store.createKey({ userId: 'u', description: '', expiresAt: new Date(Date.now() + DAY), rules: [], state: 'active' })
      assert.equal(store.setState(key.id, 'suspended').state, 'suspended')
      assert.equal(store.updateKey(key.id, { description: 'd' }).description, 'd')
      assert.equal(store.listKeys().length, 1)
    } finally {
      delete proto.expectedUpdatedAt
      delete proto.actor
      delete proto.now
      delete proto.state
    }
  })

  test('what the store answers holds no field a polluted Object.prototype supplies', () => {
    const store = KeyStore.inMemory()
    store.putUser({ id: 'u', rights: ['*:*'] })
    const { key, secret } = store.createKey({ userId: 'u', description: '', expiresAt: new Date(Date.now() + DAY) })
    const proto = Object.prototype as Record<string, unknown>
    const polluted = { actor: 'mallory', keyId: 'key_forged', userId: 'forged', matchedRule: 'forged:*', lastUsedAt: 0 }
    Object.assign(proto, polluted)
    try {
      for (const entry of store.audit()) assert.equal(Object.hasOwn(entry, 'actor'), false, `${entry.action} shows an actor it was not given`)
      assert.equal(store.getKey(key.id)!.lastUsedAt, null, 'a key never used shows a use')
      const unknown = store.explain('kg_not_a_key', 'svc', 'api')
      for (const field of ['keyId', 'userId', 'matchedRule']) assert.equal(Object.hasOwn(unknown, field), false, `explain shows a ${field}`)
      assert.equal(store.explain(secret, 'svc', 'api').keyId, key.id)
    } finally {
      for (const field of Object.keys(polluted)) delete proto[field]
    }
  })

  test('a hole in an array is not filled from a polluted Object.prototype', () => {
    const store = frozenStore()
    store.putRole({ name: 'admin', rights: ['*:*'] })
    const proto = Object.prototype as Record<string | number, unknown>
    proto[0] = 'admin'
    try {
      throwsCode(() => store.putUser({ id: 'u', roles: new Array(1) }), 'INVALID_ARGUMENT')
      // biome-ignore lint/suspicious/noSparseArray: the hole is the point
      throwsCode(() => store.putUser({ id: 'u', rights: [, 'x:y'] as string[] }), 'INVALID_ARGUMENT')
    } finally {
      delete proto[0]
    }
    assert.equal(store.getUser('u'), null)
  })

  test('a revoked Proxy is an INVALID_ARGUMENT, not an engine TypeError', () => {
    const store = frozenStore()
    const { proxy, revoke } = Proxy.revocable({}, {})
    revoke()
    throwsCode(() => store.putUser(proxy as never), 'INVALID_ARGUMENT')
    throwsCode(() => store.putUser({ id: 'u', roles: proxy as never }), 'INVALID_ARGUMENT')
    throwsCode(() => store.createKey({ userId: 'u', description: '', expiresAt: proxy as never }), 'INVALID_ARGUMENT')
    throwsCode(() => store.putRole({ name: proxy as never, rights: [] }), 'INVALID_ARGUMENT')
    assert.deepEqual(store.listUsers(), [])
  })
})
