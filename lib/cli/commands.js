'use strict'
// The commands of the keygate CLI: their options, help and what they do.
// A command's `run(ctx)` returns { json, text, exit? }; main.js prints one or the other.

const fs = require('node:fs')

const { KeyStore } = require('../../index.js')
const { KeyState, UserStatus } = require('../native.js')
const { AUDIT_ACTIONS, KEY_COUNTS, KEY_STATES, MAX_KEY_PAGE, USER_STATUSES, scrubMessage } = require('../store.js')
const { KeygateError, invalidArgument, redactSecrets } = require('../errors.js')
const fmt = require('./format.js')
const { UsageError, callAsOneWord, parseExpiry, parseAgo, parseDurationSeconds, parseWhole, parseChoice, DURATION_HELP } = require('./values.js')
const { isDatabaseUrl, resolveStore, shownStore } = require('../location.js')

/**
 * @typedef {import('./main.js').Command} Command
 * @typedef {import('./main.js').Context} Context
 * @typedef {import('./main.js').CommandResult} CommandResult
 * @typedef {import('../../index.js').KeyState} KeyStateName
 * @typedef {import('../../index.js').UserStatus} UserStatusName
 * @typedef {import('../../index.js').Reason} ReasonName
 * @typedef {import('../../index.js').NewKey} NewKey
 * @typedef {import('../../index.js').KeyPatch} KeyPatch
 * @typedef {import('../../index.js').AuditQuery} AuditQuery
 * @typedef {import('../../index.js').ApiKey} ApiKey
 * @typedef {import('../../index.js').User} User
 * @typedef {import('../../index.js').Decision} Decision
 */

/**
 * A command's context with the values of its own options, as its `options` declare them
 * (main.js parses them against those).
 * @template {object} [Opts={}]
 * @typedef {Omit<Context, 'opts'> & { opts: Opts }} OptionContext
 */

/**
 * The context of a command whose `store` is `'create'` or `'read'`: main.js opens the store
 * before `run`; `input` is what the command's `parse` returned.
 * @template {object} [Opts={}]
 * @template [Input=unknown]
 * @typedef {Omit<Context, 'opts' | 'store' | 'input'> & { opts: Opts, store: KeyStore, input: Input }} StoreContext
 */

/** @typedef {{ status?: string, right?: string[], 'no-rights'?: true, role?: string[], 'no-roles'?: true }} UserPutOptions */
/** @typedef {{ ip?: string, 'secret-stdin'?: true }} CheckOptions */
/** @typedef {{ user?: string, state?: string, search?: string, hint?: string, limit?: string, after?: string }} KeyListOptions */

/** A lookup by id/name that found nothing: exit code 1, with the store's error code. */
class NotFound extends Error {
  /**
   * @param {string} code the store's error code (UNKNOWN_USER, UNKNOWN_ROLE, UNKNOWN_KEY)
   * @param {string} message
   */
  constructor(code, message) {
    super(message)
    this.name = 'NotFound'
    this.code = code
  }
}

/** A key's hint: the last 4 characters of its secret, base62 digits. */
const HINT_PATTERN = /^[0-9A-Za-z]{4}$/

/** The states a key can be created in (not revoked). */
const NEW_KEY_STATES = KEY_STATES.filter((state) => state !== KeyState.Revoked)

const WHEN_HELP = `WHEN is a duration from now (90d, 12h, 30m, 2w, 1d12h) or a date: YYYY-MM-DD means 00:00:00 UTC
at the start of that day; an ISO 8601 time (2027-01-31T17:00:00Z, 2027-01-31T18:00+01:00) is
exact; a time without an offset is UTC.`

// ---- small helpers ------------------------------------------------------------

// Quoted values go through the same secret redaction as the core's messages.
const { quote } = require('./values.js')
const { readFileBounded } = require('./input.js')

/**
 * @param {string} file a path, or `-` for standard input
 * @param {string | undefined} fromStdin standard input, read already when `file` is `-`
 */
function readRulesFile(file, fromStdin) {
  let text
  try {
    text = file === '-' ? (fromStdin ?? '') : readFileBounded(file, `--rules-file ${quote(file)}`)
  } catch (error) {
    if (error instanceof UsageError) throw error
    // Not error.message: it repeats the file name unquoted.
    const why =
      error.code === 'ENOENT'
        ? 'no such file'
        : error.code === 'EACCES'
          ? 'permission denied'
          : error.code === 'EISDIR'
            ? 'it is a directory'
            : `cannot be read (${error.code ?? 'error'})`
    throw new UsageError(`cannot read --rules-file ${quote(file)}: ${why}`)
  }
  const rules = text
    .split(/\r\n|\r|\n/)
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
  // A file with no rule is more likely one a failed script left empty than a wish for a key
  // without rules, which may make every call its user may: that is asked for in words.
  if (rules.length === 0) {
    const where = file === '-' ? 'standard input (--rules-file -)' : `--rules-file ${quote(file)}`
    throw new UsageError(
      `${where} holds no rule (only blank lines or # comments): a key without rules may make every call its user may; for that, leave out --rules-file (key create) or give --no-rules (key update)`,
    )
  }
  return rules
}

/**
 * Rules from --rule (in order) then --rules-file; undefined when neither is given.
 * @param {OptionContext<{ rule?: string[], 'rules-file'?: string }>} ctx
 */
function rulesOf(ctx) {
  const { rule, 'rules-file': file } = ctx.opts
  if (rule === undefined && file === undefined) return undefined
  const rules = [...(rule ?? [])]
  if (file !== undefined) rules.push(...readRulesFile(file, ctx.rulesFromStdin))
  return rules
}

/**
 * @template {string} Name
 * @param {OptionContext<{ [N in Name]?: string }>} ctx
 * @param {Name} name the option
 * @param {string} what its value, for the message
 */
function required(ctx, name, what) {
  const value = ctx.opts[name]
  if (value === undefined) throw new UsageError(`${ctx.name} needs --${name} ${what}`)
  return value
}

/**
 * The user's effective rights, as the store's decision sees them.
 * @param {KeyStore} store
 * @param {User} user
 */
function effectiveRights(store, user) {
  return store.effectiveRights(user.id)?.all ?? []
}

/**
 * @param {KeyStore} store
 * @param {string} id
 */
function keyOrNotFound(store, id) {
  const key = store.getKey(id)
  if (key === null) throw new NotFound('UNKNOWN_KEY', `no key with id ${quote(id)}`)
  return key
}

/** A key id: `key_` and 22 base62 digits. */
const KEY_ID_PATTERN = /^key_[0-9A-Za-z]{22}$/

/**
 * Why `audit --key <id>` found nothing, told apart cheaply (one indexed look-up): a key id
 * mistyped, or one of another store, from a key that has entries, none matching the other
 * filters. The trail is never trimmed, and every key's creation (createKey or rotateKey) is
 * in it, a copy's too: a key id this store never issued has no entry at all.
 * @param {KeyStore} store
 * @param {string} id the key id asked for
 */
function noEntriesOfKey(store, id) {
  const shown = quote(id)
  const hasEntries = store.audit({ keyId: id, limit: 1 }).length > 0
  if (hasEntries) return `key ${shown} has entries, but none match the other filters`
  // A store copied from an in-memory one holds only that store's latest 1,000 entries.
  if (store.getKey(id) !== null) return `key ${shown} exists, but the trail holds no entry about it`
  if (!KEY_ID_PATTERN.test(id)) return `${shown} is not a key id, which is key_ and 22 letters and digits: a typo?`
  return `no entry of this store's trail names key ${shown}: a typo, or a key of another store?`
}

/** @param {string} secret */
function secretBlock(secret) {
  return `SECRET (shown once, store it now): ${secret}`
}

// ---- options shared by several commands ------------------------------------

const SECRET_HELP =
  'A secret on the command line can end up in shell history and process listings. To keep it\n' +
  'out, leave it out of the arguments and pipe it in with --secret-stdin, or put it in the\n' +
  'environment variable KEYGATE_SECRET. The secret is never printed.'

const O = {
  status: { type: 'string', arg: '<status>', help: 'active (default for a new user), suspended or archived' },
  right: {
    type: 'string',
    multiple: true,
    arg: '<rule>',
    help: 'a right: an API rule <service>:<api> or a WebDAV rule "dav=<method> <path>" (repeat for more); replaces the list',
  },
  noRights: { type: 'boolean', help: 'set an empty list of rights' },
  role: { type: 'string', multiple: true, arg: '<role>', help: 'a role the user holds (repeat for more); replaces the list' },
  noRoles: { type: 'boolean', help: 'remove every role from the user' },
  user: { type: 'string', arg: '<id>', help: 'the user the key runs as' },
  description: { type: 'string', arg: '<text>', help: 'what the key is for (may be empty: --description "")' },
  expires: { type: 'string', arg: '<when>', help: 'when the key stops working: a duration (90d) or a date; see WHEN above' },
  rule: { type: 'string', multiple: true, arg: '<rule>', help: 'a rule: <service>:<api>, "dav=<method> <path>" or ip=<address>[/<prefix>] (repeat for more)' },
  rulesFile: { type: 'string', arg: '<file>', help: 'rules from a file, one a line; blank lines and # comments ignored (a file with no rule is refused); - for stdin' },
  ip: { type: 'string', arg: '<address>', help: 'the caller’s IP address (needed when the key has ip= rules)' },
  secretStdin: { type: 'boolean', help: 'read the secret from standard input (first line) instead of an argument' },
}

// ---- the commands -------------------------------------------------------------

const COMMANDS = [
  {
    path: ['init'],
    summary: 'Create the store if there is none',
    usage: 'keygate init [--key-prefix <prefix>]',
    details:
      'Creates an empty keygate store at --db (default $KEYGATE_DB or ./keygate.db), or does nothing if\n' +
      "one is there. With a postgres:// URL, creates keygate's tables in that (existing) database, or\n" +
      'does nothing if they are there. `user put` and `role put` create the store too; every other\n' +
      'command needs an existing store file, so a mistyped --db is reported instead of silently\n' +
      'making an empty store.',
    options: { 'key-prefix': { type: 'string', arg: '<prefix>', help: 'prefix of the secrets this store issues, [a-z][a-z0-9]{0,15}; default kg; fixed at creation' } },
    positionals: [],
    store: 'create',
    /** @param {OptionContext<{ 'key-prefix'?: string }>} ctx */
    storeOptions: (ctx) => (ctx.opts['key-prefix'] !== undefined ? { keyPrefix: ctx.opts['key-prefix'] } : {}),
    examples: ['keygate init', 'keygate --db /var/lib/myapp/keys.db init --key-prefix myapp'],
    /** @param {OptionContext} ctx */
    run(ctx) {
      const created = ctx.created
      return {
        json: { db: shownStore(ctx.db), created },
        text: created ? `created keygate store ${fmt.visible(shownStore(ctx.db))}` : `keygate store ${fmt.visible(shownStore(ctx.db))} already exists; nothing to do`,
      }
    },
  },

  // ---- users ----
  {
    path: ['user', 'put'],
    summary: 'Create a user, or change one',
    usage: 'keygate user put <id> [--status <status>] [--right <rule>]... [--role <role>]... [--no-rights] [--no-roles]',
    details:
      'Creates the user, or changes an existing one: what you give replaces that field (all its\n' +
      '--right options together replace the rights, all --role options the roles); what you leave\n' +
      'out keeps its value. A new user is active with no rights and no roles unless you say so.\n' +
      'Changes apply to every key of the user within about 10 ms, in every process using the\n' +
      'store. Roles must exist.\n' +
      'A user id is 1–128 letters, digits and _ - . @',
    options: { status: O.status, right: O.right, 'no-rights': O.noRights, role: O.role, 'no-roles': O.noRoles },
    positionals: ['<id>'],
    store: 'create',
    examples: ["keygate user put svc-requests --role request-agent --right 'data:entityBrowseRecords2'", 'keygate user put svc-requests --status suspended'],
    /** @param {OptionContext<UserPutOptions>} ctx */
    parse({ opts }) {
      if (opts.right && opts['no-rights']) throw new UsageError('give --right or --no-rights, not both')
      if (opts.role && opts['no-roles']) throw new UsageError('give --role or --no-roles, not both')
      return { status: opts.status === undefined ? undefined : parseChoice(opts.status, '--status', USER_STATUSES) }
    },
    /** @param {StoreContext<UserPutOptions, { status: UserStatusName | undefined }>} ctx */
    run(ctx) {
      const [id] = ctx.args
      const { store, opts } = ctx
      const { status } = ctx.input
      const before = store.getUser(id)
      const input = {
        id,
        status: status ?? before?.status ?? UserStatus.Active,
        rights: opts['no-rights'] ? [] : (opts.right ?? before?.rights ?? []),
        roles: opts['no-roles'] ? [] : (opts.role ?? before?.roles ?? []),
      }
      // The fields not given are the ones just read: refused (not re-created, not overwritten)
      // if another process deleted or created the user since.
      const user = store.putUser(input, { ...ctx.admin, expect: before ? 'existing' : 'new' })
      return {
        json: user,
        text: `${before ? 'updated' : 'created'} user ${user.id}\n${fmt.userDetails(user, effectiveRights(store, user))}`,
      }
    },
  },
  {
    path: ['user', 'list'],
    summary: 'List users',
    usage: 'keygate user list',
    details: 'All users, by id, with their status, roles, rights and number of keys.',
    options: {},
    positionals: [],
    store: 'read',
    examples: ['keygate user list', 'keygate user list --json'],
    /** @param {StoreContext} ctx */
    run({ store }) {
      const users = store.listUsers()
      // Counted by the core: a view of every key, built only to be counted, took seconds at
      // 100,000 keys (as the admin page's list of users found).
      const counted = /** @type {import('../store.js').KeyStore} */ (/** @type {unknown} */ (store))[KEY_COUNTS]()
      const counts = new Map(counted.map((c) => [c.userId, c.active + c.suspended + c.revoked]))
      return { json: users, text: fmt.userTable(users, counts) }
    },
  },
  {
    path: ['user', 'show'],
    summary: 'Show a user, its effective rights and its keys',
    usage: 'keygate user show <id>',
    details: 'The user, its effective rights (its own and its roles’) and its keys, newest first.\nExit code 1 if there is no such user.',
    options: {},
    positionals: ['<id>'],
    store: 'read',
    examples: ['keygate user show svc-requests'],
    /** @param {StoreContext} ctx */
    run({ store, args, now }) {
      const user = store.getUser(args[0])
      if (user === null) throw new NotFound('UNKNOWN_USER', `no user with id ${quote(args[0])}`)
      const effective = effectiveRights(store, user)
      const keys = store.listKeys({ userId: user.id })
      return {
        json: { user, effectiveRights: effective, keys },
        text: `${fmt.userDetails(user, effective)}\n\n${fmt.keyTable(keys, now)}`,
      }
    },
  },
  {
    path: ['user', 'delete'],
    summary: 'Delete a user and all its keys',
    usage: 'keygate user delete <id>',
    details: 'Deletes the user and every key it has; their secrets stop working at once.\nExit code 1 if there was no such user.',
    options: {},
    positionals: ['<id>'],
    store: 'read',
    examples: ['keygate user delete svc-old'],
    /** @param {StoreContext} ctx */
    run({ store, args, admin }) {
      const id = args[0]
      const keys = store.listKeys({ userId: id }).length
      if (!store.deleteUser(id, admin)) throw new NotFound('UNKNOWN_USER', `no user with id ${quote(id)}`)
      return {
        json: { deleted: true, id, keysDeleted: keys },
        text: `deleted user ${id} and its ${fmt.count(keys, 'key')}`,
      }
    },
  },

  // ---- roles ----
  {
    path: ['role', 'put'],
    summary: 'Create or replace a role',
    usage: 'keygate role put <name> --right <rule>... | --no-rights',
    details:
      'A role is a named list of rights (API rules <service>:<api>); users holding it get them.\n' +
      'The rights you give replace the role’s rights; changes apply within about 10 ms.',
    options: { right: O.right, 'no-rights': O.noRights },
    positionals: ['<name>'],
    store: 'create',
    examples: ["keygate role put request-agent --right 'session:*' --right 'apps/com.hornbill.servicemanager/*:*'"],
    /** @param {OptionContext<{ right?: string[], 'no-rights'?: true }>} ctx */
    parse({ opts }) {
      if (opts.right && opts['no-rights']) throw new UsageError('give --right or --no-rights, not both')
      if (!opts.right && !opts['no-rights']) throw new UsageError('role put needs --right <rule> (repeat for more), or --no-rights for an empty role')
      return {}
    },
    /** @param {StoreContext<{ right?: string[], 'no-rights'?: true }>} ctx */
    run({ store, args, opts, admin }) {
      const before = store.getRole(args[0])
      const role = store.putRole({ name: args[0], rights: opts.right ?? [] }, admin)
      return { json: role, text: `${before ? 'replaced' : 'created'} role ${role.name}\nrights  ${role.rights.join(', ') || '(none)'}` }
    },
  },
  {
    path: ['role', 'list'],
    summary: 'List roles',
    usage: 'keygate role list',
    details: 'All roles, by name, with their rights and the number of users holding them.',
    options: {},
    positionals: [],
    store: 'read',
    examples: ['keygate role list'],
    /** @param {StoreContext} ctx */
    run({ store }) {
      const roles = store.listRoles()
      const counts = new Map()
      for (const u of store.listUsers()) for (const r of u.roles) counts.set(r, (counts.get(r) ?? 0) + 1)
      return { json: roles, text: fmt.roleTable(roles, counts) }
    },
  },
  {
    path: ['role', 'show'],
    summary: 'Show a role and the users holding it',
    usage: 'keygate role show <name>',
    details: 'Exit code 1 if there is no such role.',
    options: {},
    positionals: ['<name>'],
    store: 'read',
    examples: ['keygate role show request-agent'],
    /** @param {StoreContext} ctx */
    run({ store, args }) {
      const role = store.getRole(args[0])
      if (role === null) throw new NotFound('UNKNOWN_ROLE', `no role named ${quote(args[0])}`)
      const users = store
        .listUsers()
        .filter((u) => u.roles.includes(role.name))
        .map((u) => u.id)
      return {
        json: { role, users },
        text: `role    ${role.name}\nrights  ${role.rights.join(', ') || '(none)'}\nusers   ${users.join(', ') || '(none)'}`,
      }
    },
  },
  {
    path: ['role', 'delete'],
    summary: 'Delete a role (and take it from every user)',
    usage: 'keygate role delete <name>',
    details: 'Deletes the role and removes it from every user that held it.\nExit code 1 if there was no such role.',
    options: {},
    positionals: ['<name>'],
    store: 'read',
    examples: ['keygate role delete request-agent'],
    /** @param {StoreContext} ctx */
    run({ store, args, admin }) {
      const name = args[0]
      const users = store.listUsers().filter((u) => u.roles.includes(name)).length
      if (!store.deleteRole(name, admin)) throw new NotFound('UNKNOWN_ROLE', `no role named ${quote(name)}`)
      return {
        json: { deleted: true, name, usersAffected: users },
        text: `deleted role ${name} (taken from ${fmt.count(users, 'user')})`,
      }
    },
  },

  // ---- keys ----
  {
    path: ['key', 'create'],
    summary: 'Create a key; prints its secret once',
    usage: 'keygate key create --user <id> --description <text> --expires <when> [--rule <rule>]... [--rules-file <file>] [--state active|suspended]',
    details:
      'Creates a key that runs as the user, restricted by the rules (none = the user’s rights only).\n' +
      'The secret is printed once, on a line starting with "SECRET (shown once, store it now):";\n' +
      'keygate keeps only its SHA-256 and can never show it again. With --json the output is\n' +
      '{ "key": {...}, "secret": "kg_..." }.\n\n' +
      "Expiry is mandatory, in the future and at most the store's limit ahead (730 days unless set\n" +
      'when the store was created, or --max-lifetime-days).\n' +
      WHEN_HELP,
    options: {
      user: O.user,
      description: O.description,
      expires: O.expires,
      rule: O.rule,
      'rules-file': O.rulesFile,
      state: { type: 'string', arg: '<state>', help: 'active (default) or suspended' },
    },
    positionals: [],
    store: 'read',
    examples: [
      "keygate key create --user svc-requests --description 'Request sync' --expires 90d --rule 'session:get*' --rule ip=10.0.0.0/8",
      "keygate key create --user svc-requests --description 'CI' --expires 2027-01-31 --json | jq -r .secret",
    ],
    /** @param {OptionContext<{ user?: string, description?: string, expires?: string, rule?: string[], 'rules-file'?: string, state?: string }>} ctx */
    parse(ctx) {
      const userId = required(ctx, 'user', '<id>')
      const description = required(ctx, 'description', '<text>')
      const expires = required(ctx, 'expires', '<when>: a duration from now such as 90d, or a date such as 2027-01-31')
      const expiresAt = parseExpiry(expires, '--expires', ctx.now)
      const state = ctx.opts.state === undefined ? undefined : parseChoice(ctx.opts.state, '--state', NEW_KEY_STATES)
      return { userId, description, expiresAt, rules: rulesOf(ctx), state }
    },
    /** @param {StoreContext<{}, NewKey>} ctx */
    run(ctx) {
      const { key, secret } = ctx.store.createKey(ctx.input, ctx.admin)
      return {
        json: { key, secret },
        text: `created key ${key.id}\n${fmt.keyDetails(key, ctx.now)}\n\n${secretBlock(secret)}`,
        issued: key.id,
      }
    },
  },
  {
    path: ['key', 'list'],
    summary: 'List keys (never their secrets)',
    usage: 'keygate key list [--user <id>] [--state active|suspended|revoked] [--search <text>] [--hint <hint>] [--limit <n>] [--after <cursor>]',
    details:
      'Keys, newest first: id, user, state, expiry, last use, hint (last 4 characters of the secret)\n' +
      'and description. The filters together narrow the list. Several keys can share a hint: to\n' +
      'find the one key a secret belongs to, use key find.\n' +
      'With --limit or --after, one page: the text ends with the --after of the next page, and\n' +
      '--json prints { keys, next } (next is null on the last page) instead of the list.',
    options: {
      user: { type: 'string', arg: '<id>', help: 'only the keys of this user' },
      state: { type: 'string', arg: '<state>', help: 'only keys in this state: active, suspended or revoked' },
      search: { type: 'string', arg: '<text>', help: 'only keys whose id, description or hint holds this text, in any letter case' },
      hint: { type: 'string', arg: '<hint>', help: 'only keys whose hint is this: the 4 letters and digits shown after …, case-sensitive' },
      limit: { type: 'string', arg: '<n>', help: 'one page of at most this many keys, 1 to 1000 (default 100 with --after)' },
      after: { type: 'string', arg: '<cursor>', help: 'the page after the one that printed this cursor' },
    },
    positionals: [],
    store: 'read',
    examples: [
      'keygate key list',
      'keygate key list --user svc-requests --state active --json',
      'keygate key list --search billing',
      'keygate key list --hint HRV5',
      'keygate key list --limit 50',
    ],
    /** @param {OptionContext<KeyListOptions>} ctx */
    parse({ opts }) {
      if (opts.hint !== undefined && !HINT_PATTERN.test(opts.hint)) {
        // Not printed back: what is pasted here is often a secret, and before the store is open
        // only its long runs could be redacted (kg_…:… would be shown in pieces).
        throw new UsageError('--hint is not a hint: it is the last 4 characters of a secret, letters and digits (HRV5 for …HRV5)')
      }
      const paged = opts.limit !== undefined || opts.after !== undefined
      // A hint is looked for among every key: on a page it would miss the keys of the others.
      if (paged && opts.hint !== undefined) throw new UsageError('--hint looks through every key: leave out --limit and --after')
      return {
        state: opts.state === undefined ? undefined : parseChoice(opts.state, '--state', KEY_STATES),
        limit: opts.limit === undefined ? undefined : parseWhole(opts.limit, '--limit', 1, MAX_KEY_PAGE),
        paged,
      }
    },
    /** @param {StoreContext<KeyListOptions, { state: KeyStateName | undefined, limit: number | undefined, paged: boolean }>} ctx */
    run({ store, opts, now, input }) {
      const { state, limit, paged } = input
      if (paged) {
        const page = store.listKeysPage({ userId: opts.user, state, search: opts.search, limit, after: opts.after })
        const more = page.next === null ? '' : `\n(more keys match: the next page is --after ${page.next})`
        return { json: page, text: `${fmt.keyTable(page.keys, now)}${more}` }
      }
      let keys = store.listKeys({ userId: opts.user, state, search: opts.search })
      if (opts.hint !== undefined) keys = keys.filter((k) => k.hint === opts.hint)
      return { json: keys, text: fmt.keyTable(keys, now) }
    },
  },
  {
    path: ['key', 'show'],
    summary: 'Show a key (never its secret)',
    usage: 'keygate key show <key-id>',
    details: 'Every field of the key, its rules in order. Exit code 1 if there is no such key.',
    options: {},
    positionals: ['<key-id>'],
    store: 'read',
    examples: ['keygate key show key_6CWcaQGIvOW5vA0YQ4Tg1N'],
    /** @param {StoreContext} ctx */
    run({ store, args, now }) {
      const key = keyOrNotFound(store, args[0])
      return { json: key, text: fmt.keyDetails(key, now) }
    },
  },
  {
    path: ['key', 'find'],
    summary: 'Find the key a secret belongs to (a leaked one), without using it',
    usage: 'keygate key find --secret-stdin < leaked.txt\n       KEYGATE_SECRET=… keygate key find',
    details:
      'Shows the key the secret belongs to, as key show does, whatever its state (active, suspended,\n' +
      'revoked, expired), so that you can revoke it. The secret is read from standard input (its\n' +
      'first line) with --secret-stdin, else from $KEYGATE_SECRET; never from the arguments, and it\n' +
      'is never printed. Finding is not a use: the key’s last use (lastUsedAt) is left as it was,\n' +
      'so it still tells whether, and when, the secret was used.\n' +
      'Exit code 1 if no key in this store has the secret (not well formed, or unknown: deleted,\n' +
      'or a secret of another store).',
    options: { 'secret-stdin': { type: 'boolean', help: 'read the secret from standard input (its first line); else it is taken from $KEYGATE_SECRET' } },
    positionals: [],
    store: 'read',
    secretArgs: true,
    secretOnlyFromInput: true,
    examples: [
      'keygate key find --secret-stdin < leaked.txt',
      "keygate --json key find --secret-stdin < leaked.txt | jq -r '.id // empty' | xargs -r keygate key revoke",
    ],
    /** @param {OptionContext<{ 'secret-stdin'?: true }>} ctx */
    parse({ opts, env }) {
      if (opts['secret-stdin'] === true) return
      const fromEnv = env.KEYGATE_SECRET
      if (fromEnv === undefined || fromEnv === '') {
        throw new UsageError('key find needs a secret: pipe it in with --secret-stdin, or put it in $KEYGATE_SECRET (never as an argument)')
      }
      if (fromEnv.trim() === '') throw new UsageError('the secret in $KEYGATE_SECRET is empty')
    },
    /** @param {StoreContext<{ 'secret-stdin'?: true }>} ctx */
    async run(ctx) {
      const { store, now } = ctx
      const secret = await secretFromInput(ctx)
      // The store has no lookup by secret besides the decision, so this is explain on a
      // placeholder call: a diagnosis, not a use (lastUsedAt is left alone). Once the secret
      // names a key, every reason (invalid_request, suspended, revoked, expired, user_inactive,
      // user_lacks_right…) carries its keyId; only the three reasons below mean no key.
      const decision = store.explain(secret, 'keygate', 'find')
      if (decision.reason === 'store_unavailable') {
        throw new KeygateError('STORE_UNAVAILABLE', 'the store cannot vouch that it is current (its database is out of reach): try again')
      }
      if (decision.reason === 'malformed_key') {
        throw new NotFound('UNKNOWN_KEY', 'no key has that secret: it is not well formed (wrong prefix, length, characters or checksum); was it copied whole?')
      }
      const key = decision.keyId ? store.getKey(decision.keyId) : null
      if (key === null) {
        throw new NotFound('UNKNOWN_KEY', 'no key in this store has that secret (it was deleted, or belongs to another store)')
      }
      const next = key.state === KeyState.Revoked ? 'revoked already' : `to revoke it: keygate key revoke ${key.id}`
      return { json: key, text: `found key ${key.id} (${next})\n${fmt.keyDetails(key, now)}` }
    },
  },
  {
    path: ['key', 'update'],
    summary: 'Change a key’s description, rules or expiry',
    usage: 'keygate key update <key-id> [--description <text>] [--rule <rule>]... [--rules-file <file>] [--no-rules] [--expires <when>]',
    details:
      'What you give replaces that field: all --rule options (and --rules-file) together replace\n' +
      'the rules; --no-rules removes them all. Applies within about 10 ms. A revoked key\n' +
      'cannot be changed (REVOKED_IS_FINAL).\n' +
      WHEN_HELP,
    options: { description: O.description, rule: O.rule, 'rules-file': O.rulesFile, 'no-rules': { type: 'boolean', help: 'remove every rule' }, expires: O.expires },
    positionals: ['<key-id>'],
    store: 'read',
    examples: ["keygate key update key_6CWcaQGIvOW5vA0YQ4Tg1N --rule 'session:*' --expires 30d"],
    /** @param {OptionContext<{ description?: string, rule?: string[], 'rules-file'?: string, 'no-rules'?: true, expires?: string }>} ctx */
    parse(ctx) {
      const { opts } = ctx
      const rules = rulesOf(ctx)
      if (rules !== undefined && opts['no-rules']) throw new UsageError('give --rule/--rules-file or --no-rules, not both')
      /** @type {KeyPatch} */
      const patch = {}
      if (opts.description !== undefined) patch.description = opts.description
      if (rules !== undefined) patch.rules = rules
      if (opts['no-rules']) patch.rules = []
      if (opts.expires !== undefined) patch.expiresAt = parseExpiry(opts.expires, '--expires', ctx.now)
      if (Object.keys(patch).length === 0) throw new UsageError('key update needs something to change: --description, --rule, --rules-file, --no-rules or --expires')
      return patch
    },
    /** @param {StoreContext<{}, KeyPatch>} ctx */
    run(ctx) {
      const key = ctx.store.updateKey(ctx.args[0], ctx.input, ctx.admin)
      return { json: key, text: `updated key ${key.id}\n${fmt.keyDetails(key, ctx.now)}` }
    },
  },
  stateCommand('suspend', KeyState.Suspended, 'Suspend a key (it can be activated again)'),
  stateCommand('activate', KeyState.Active, 'Activate a suspended key'),
  stateCommand('revoke', KeyState.Revoked, 'Revoke a key for good (revoked is final)'),
  {
    path: ['key', 'rotate'],
    summary: 'Replace a key by a new one; prints the new secret once',
    usage: 'keygate key rotate <key-id> [--overlap <duration>]',
    details:
      'Issues a new key with the same user, description, rules, expiry and state, and prints its\n' +
      'secret once (as key create does). The old key is revoked at once, or, with --overlap, stays\n' +
      'usable for that long (never beyond its own expiry) so integrations can switch over.\n' +
      'With --json: { "key": <new>, "secret": "...", "previous": <old key> }.',
    options: { overlap: { type: 'string', arg: '<duration>', help: `how long the old key stays usable; default 0 (revoked now); ${DURATION_HELP}` } },
    positionals: ['<key-id>'],
    store: 'read',
    examples: ['keygate key rotate key_6CWcaQGIvOW5vA0YQ4Tg1N --overlap 1h'],
    /** @param {OptionContext<{ overlap?: string }>} ctx */
    parse({ opts }) {
      return { overlapSeconds: opts.overlap === undefined ? 0 : parseDurationSeconds(opts.overlap, '--overlap') }
    },
    /** @param {StoreContext<{}, { overlapSeconds: number }>} ctx */
    run(ctx) {
      const { overlapSeconds } = ctx.input
      const { key, secret } = ctx.store.rotateKey(ctx.args[0], { overlapSeconds, ...ctx.admin })
      const previous = ctx.store.getKey(ctx.args[0])
      let old = `old key ${ctx.args[0]}: `
      if (previous === null) old += 'gone'
      else if (previous.state === KeyState.Revoked) old += KeyState.Revoked
      else old += `${previous.state}, usable until ${fmt.iso(previous.expiresAt)}`
      return {
        json: { key, secret, previous },
        text: `rotated key ${ctx.args[0]} → ${key.id}\n${old}\n\n${fmt.keyDetails(key, ctx.now)}\n\n${secretBlock(secret)}`,
        issued: key.id,
      }
    },
  },
  {
    path: ['key', 'delete'],
    summary: 'Delete a key',
    usage: 'keygate key delete <key-id>',
    details:
      'Deletes the key; its secret stops working at once. Revoking keeps the key as evidence\n' +
      '(and in the audit trail); deleting removes it from listings. Exit code 1 if there was no such key.',
    options: {},
    positionals: ['<key-id>'],
    store: 'read',
    examples: ['keygate key delete key_6CWcaQGIvOW5vA0YQ4Tg1N'],
    /** @param {StoreContext} ctx */
    run({ store, args, admin }) {
      if (!store.deleteKey(args[0], admin)) throw new NotFound('UNKNOWN_KEY', `no key with id ${quote(args[0])}`)
      return { json: { deleted: true, id: args[0] }, text: `deleted key ${args[0]}` }
    },
  },

  // ---- the decision ----
  checkCommand('check'),
  checkCommand('explain'),
  checkDavCommand(),

  // ---- audit and backup ----
  {
    path: ['audit'],
    summary: 'Show the audit trail, newest first',
    usage: 'keygate audit [--key <key-id>] [--user <id>] [--action <action>] [--by <text>] [--since <when>] [--until <when>] [--before-seq <seq>] [--limit <n>]',
    details:
      'Every change (who, when, what: before → after), newest first. Never holds a secret.\n' +
      'The filters together narrow the answer (each entry must match all of them).\n' +
      '--since and --until take a duration ago (24h = 24 hours ago, 7d, 2w) or a date: YYYY-MM-DD\n' +
      'is 00:00:00 UTC at the start of that day (so --until 2027-01-31 ends as 31 January begins);\n' +
      'an ISO 8601 time (2027-01-31T17:00:00Z) is exact. --since later than --until finds nothing.\n' +
      '--by filters on who made the change; the global --actor is who makes a change now, and\n' +
      'audit makes none.\n' +
      `Actions: ${AUDIT_ACTIONS.join(', ')}.`,
    options: {
      key: { type: 'string', arg: '<key-id>', help: 'only entries about this key' },
      user: { type: 'string', arg: '<id>', help: 'only entries about this user' },
      action: { type: 'string', arg: '<action>', help: 'only entries of this action (setState, createKey, …; listed above)' },
      by: { type: 'string', arg: '<text>', help: 'only entries whose actor contains this text (ASCII letters in either case)' },
      since: { type: 'string', arg: '<when>', help: 'only entries at or after this time: a duration ago (7d) or a date' },
      until: { type: 'string', arg: '<when>', help: 'only entries at or before this time: a duration ago (1h) or a date' },
      'before-seq': { type: 'string', arg: '<seq>', help: 'only entries numbered below <seq>: the page after the entry numbered <seq>' },
      limit: { type: 'string', arg: '<n>', help: 'at most this many entries (default 100)' },
    },
    positionals: [],
    store: 'read',
    misleadingAfter: {
      actor: 'keygate audit takes no --actor: the global --actor names who makes a change, and audit makes none; to see the changes someone made, use --by <text>',
    },
    examples: [
      'keygate audit --since 7d',
      'keygate audit --key key_6CWcaQGIvOW5vA0YQ4Tg1N --json',
      'keygate audit --action setState --by ali --since 2027-01-30T14:00Z --until 2027-01-30T15:00Z',
      'keygate audit --before-seq 9001',
    ],
    /** @param {OptionContext<{ key?: string, user?: string, action?: string, by?: string, since?: string, until?: string, 'before-seq'?: string, limit?: string }>} ctx */
    parse({ opts, now }) {
      /** @type {AuditQuery} */
      const query = {}
      // An empty id (an unset $KEY in a script) names no key or user: said, not answered with nothing.
      if (opts.key === '') throw new UsageError('--key needs a key id (key_…)')
      if (opts.user === '') throw new UsageError('--user needs a user id')
      if (opts.key !== undefined) query.keyId = opts.key
      if (opts.user !== undefined) query.userId = opts.user
      if (opts.action !== undefined) query.action = parseChoice(opts.action, '--action', AUDIT_ACTIONS)
      // Every actor contains the empty text: `--by "$WHO"` with $WHO unset would answer with
      // everyone's changes as if they were one person's.
      if (opts.by === '') throw new UsageError('--by needs some text of the actor (it matches actors containing it)')
      if (opts.by !== undefined) query.actor = opts.by
      if (opts.since !== undefined) query.since = parseAgo(opts.since, '--since', now)
      if (opts.until !== undefined) query.until = parseAgo(opts.until, '--until', now)
      const before = opts['before-seq']
      // From 0, as audit's beforeSeq and the admin API's: 0 names no entry (an empty page), not a usage error.
      if (before !== undefined) query.beforeSeq = parseWhole(before, '--before-seq', 0, Number.MAX_SAFE_INTEGER)
      query.limit = opts.limit === undefined ? 100 : parseWhole(opts.limit, '--limit', 1, 1_000_000)
      return query
    },
    /** @param {StoreContext<{}, AuditQuery>} ctx */
    run({ store, input }) {
      const limit = input.limit ?? 100
      // One more than asked, to tell a table cut at --limit from a whole answer: the newest 100 of a
      // busy hour must not read as all of it.
      const entries = store.audit({ ...input, limit: limit + 1 })
      const more = entries.length > limit
      if (more) entries.length = limit
      const last = entries[entries.length - 1]
      let note = more && last ? `\n(more entries match: the next page is --before-seq ${last.seq}, or raise --limit)` : ''
      // quote() redacts long runs only: a secret of this store pasted as --key in pieces (kg_…:…) is
      // withheld, as it is in error messages.
      if (entries.length === 0 && input.keyId !== undefined) note = `\n(${scrubMessage(store, noEntriesOfKey(store, input.keyId))})`
      return { json: entries, text: `${fmt.auditTable(entries)}${note}` }
    },
  },
  {
    path: ['verify-audit'],
    summary: 'Verify the audit trail’s hash chain',
    usage: 'keygate verify-audit',
    details: 'Checks that no audit entry was altered or removed. Exit code 0 if intact, 1 if not\n(the first bad entry is reported).',
    options: {},
    positionals: [],
    store: 'read',
    examples: ['keygate verify-audit'],
    /** @param {StoreContext} ctx */
    run({ store }) {
      const report = store.verifyAudit()
      /** @param {number} n */
      const entries = (n) => fmt.count(n, 'entry', 'entries')
      if (report.ok) return { json: report, text: `audit trail intact: ${entries(report.entries)} verified` }
      return {
        json: report,
        text: `audit trail BROKEN at entry ${report.firstBadSeq ?? '?'}: ${report.problem ?? 'unknown problem'} (${entries(report.entries)} verified before it)`,
        exit: 1,
      }
    },
  },
  {
    path: ['serve'],
    summary: 'Serve the admin web page on the store',
    usage: 'keygate serve [--host <address>] [--port <port>]',
    details:
      'Serves the admin page (Hornbill’s API-key screen) on the store at --db, creating it if needed.\n' +
      'Log in with the admin token: $KEYGATE_ADMIN_TOKEN if set, else one generated at the first\n' +
      'start, printed once, and kept only as a SHA-256 digest in <db>.admin-token.sha256 (delete that\n' +
      'file to get a new one). With a postgres:// URL that file is in the working directory, named\n' +
      'keygate-<hex>.admin-token.sha256 from the URL (without its password); each host keeps its own,\n' +
      'so set $KEYGATE_ADMIN_TOKEN for one token on every host. Stops on Ctrl-C.',
    options: {
      host: { type: 'string', arg: '<address>', help: 'address to listen on; default $HOST or 127.0.0.1' },
      port: { type: 'string', arg: '<port>', help: 'port to listen on; default $PORT or 8080 (0: any free port)' },
    },
    positionals: [],
    store: 'none',
    examples: ['keygate serve', 'KEYGATE_ADMIN_TOKEN=$(cat token) keygate --db /var/lib/keygate.db serve --port 9000'],
    /** @param {OptionContext<{ host?: string, port?: string }>} ctx */
    parse({ opts, env }) {
      // A token the server would refuse is a usage error, found before the store is opened or created.
      const token = env.KEYGATE_ADMIN_TOKEN
      if (token !== undefined && token !== '') {
        const bound = require('../admin/login.js').tokenLengthProblem(token)
        if (bound !== undefined) throw new UsageError(`KEYGATE_ADMIN_TOKEN must be ${bound} characters (it has ${token.length})`)
      }
      // $PORT and $HOST set but empty are taken as unset (as $KEYGATE_DB is, and as serve() takes
      // them). An empty address is no address: Node would listen on every interface, so an
      // empty --host is a usage error.
      if (opts.host === '') throw new UsageError('--host needs an address (0.0.0.0 or :: for every interface)')
      const host = opts.host ?? (env.HOST || undefined) ?? '127.0.0.1'
      // Named as typed (--host or $HOST), not as serve's option.
      const hostProblem = require('../admin/options.js').hostProblem(host)
      if (hostProblem !== undefined) throw new UsageError(`${opts.host === undefined ? '$HOST' : '--host'} ${hostProblem}`)
      const port = opts.port ?? (env.PORT || undefined)
      return { host, port: port === undefined ? 8080 : parseWhole(port, opts.port === undefined ? '$PORT' : '--port', 0, 65535) }
    },
    /** @param {OptionContext<{ host?: string, port?: string }> & { input: { host: string, port: number } }} ctx */
    async run(ctx) {
      const { serve } = require('../admin/serve.js')
      const storeOptions = ctx.maxLifetimeDays === undefined ? {} : { maxLifetimeDays: ctx.maxLifetimeDays }
      try {
        await serve({
          db: ctx.db,
          host: ctx.input.host,
          port: ctx.input.port,
          storeOptions,
        })
      } catch (error) {
        // A busy or forbidden port, or a damaged token digest file, is a problem with how serve
        // was asked to run (exit 2), not a bug.
        if (error?.listen || error?.environment) throw new UsageError(error.message)
        throw error
      }
      // Runs until a signal closes the server and the store.
      return new Promise(() => {})
    },
  },
  {
    path: ['backup'],
    summary: 'Copy the store to a new file, safely while it is in use',
    usage: 'keygate backup <file>',
    details:
      'Writes a consistent copy of the store to <file> with SQLite’s online backup: safe while\n' +
      'other processes read and change the store. The copy is a store: use it with --db <file>.\n' +
      '<file> must not exist: backup never overwrites a file (it fails with STORE_IO, "already\n' +
      'exists"). To replace an old backup, delete it first, or name each backup by its date.\n' +
      'A postgres:// store is backed up with PostgreSQL’s own tools (pg_dump), not with backup.',
    options: {},
    positionals: ['<file>'],
    store: 'read',
    examples: ['keygate backup /backups/keygate-$(date +%F).db'],
    /** @param {StoreContext} ctx */
    run({ store, args, db }) {
      // SQLite's special names go to the store as given, for its INVALID_ARGUMENT (as --db does).
      const target = resolveStore(args[0])
      store.backup(target)
      const bytes = fs.statSync(target).size
      return { json: { db, backup: target, bytes }, text: `backed up ${fmt.visible(db)} to ${fmt.visible(target)} (${bytes} bytes)` }
    },
  },
  {
    path: ['copy'],
    summary: 'Copy a whole store into a new, empty one (SQLite or PostgreSQL)',
    usage: 'keygate copy <from> <to>',
    details:
      'Copies everything the store <from> holds into <to>: roles, users, keys with their ids, secret\n' +
      'digests (every secret keeps working), states and last use, and the audit trail entry for\n' +
      'entry (verify-audit passes on the copy). Each is a store file or a postgres:// URL, so this\n' +
      'moves a store between SQLite and PostgreSQL. <to> must be empty: a file that does not exist\n' +
      'yet (it is created, and removed again if the copy fails) or an empty store; a store holding\n' +
      'anything is refused (INVALID_ARGUMENT) and left as it was. The copy issues secrets with the\n' +
      "source's prefix and records its maxLifetimeDays (replacing an empty store's). --db is not\n" +
      'used. Nothing is deleted from <from>: its long-expired keys are copied, not purged.',
    options: {},
    positionals: ['<from>', '<to>'],
    store: 'none',
    examples: ['keygate copy keygate.db postgres://keygate@db.internal:5432/keygate', 'keygate copy keygate.db /backups/keygate-moved.db'],
    /** @param {OptionContext} ctx */
    run(ctx) {
      const [fromText, toText] = ctx.args
      const from = storeLocation(ctx, fromText)
      const to = storeLocation(ctx, toText)
      const missing = from.url ? undefined : noStoreFile(from.where)
      if (missing !== undefined) throw Object.assign(new Error(`no keygate store at ${from.where}${missing} to copy from`), { code: 'STORE_IO' })
      const createdFile = !to.url && !fs.existsSync(to.where)
      // Nothing purged: a copy reads the source as it is and writes the target as given.
      const keep = { purgeExpiredAfterDays: 1e6 }
      // create: false — a database without keygate's tables is no store to copy from, and
      // opening it must not make them there ("nothing is changed in <from>").
      const source = KeyStore.open(from.where, { ...keep, create: false })
      let target
      try {
        // A trail that fails is refused before <to> is opened: opening a database makes keygate's
        // tables in it, and "nothing is written" holds for a database as for a file.
        const checked = source.verifyAudit()
        if (!checked.ok) {
          throw invalidArgument(
            `the source store's audit trail fails verification (${checked.problem ?? 'not intact'}): a copy would no longer show it; keep the source as evidence, and start the new store afresh`,
          )
        }
        target = KeyStore.open(to.where, { ...keep, keyPrefix: source.keyPrefix, maxLifetimeDays: source.maxLifetimeDays })
        const report = KeyStore.copy(source, target)
        const verified = target.verifyAudit()
        return {
          json: { from: from.shown, to: to.shown, ...report, auditVerified: verified.ok },
          text:
            `copied ${fmt.visible(from.shown)} to ${fmt.visible(to.shown)}: ${fmt.count(report.roles, 'role')}, ${fmt.count(report.users, 'user')}, ${fmt.count(report.keys, 'key')}, ` +
            `${fmt.count(report.auditEntries, 'audit entry', 'audit entries')} (audit trail ${verified.ok ? 'verified' : 'NOT verified'})`,
          exit: verified.ok ? undefined : 1,
        }
      } catch (error) {
        if (target !== undefined) target.close()
        target = undefined
        if (createdFile) for (const suffix of ['', '-wal', '-shm']) fs.rmSync(to.where + suffix, { force: true })
        throw error
      } finally {
        target?.close()
        source.close()
      }
    },
  },
]

/**
 * @param {'suspend' | 'activate' | 'revoke'} verb
 * @param {KeyStateName} state
 * @param {string} summary
 */
function stateCommand(verb, state, summary) {
  const notes = {
    suspend: 'Suspends the key: every process using the store refuses it within about 10 ms, until\nactivated again.',
    activate: 'Makes a suspended key usable again (if it has not expired). A revoked key cannot be\nactivated (REVOKED_IS_FINAL).',
    revoke:
      'Revokes the key: every process using the store refuses it within about 10 ms.\n' +
      'Revoked is final: the key can never be activated or changed again (it stays listed as\n' +
      'evidence; use key delete to remove it). Asks no question. Revoking a revoked key does nothing.',
  }
  return {
    path: ['key', verb],
    summary,
    usage: `keygate key ${verb} <key-id>`,
    details: notes[verb],
    options: {},
    positionals: ['<key-id>'],
    store: 'read',
    examples: [`keygate key ${verb} key_6CWcaQGIvOW5vA0YQ4Tg1N`],
    /** @param {StoreContext} ctx */
    run({ store, args, admin, now }) {
      const key = store.setState(args[0], state, admin)
      let text = `key ${key.id} is now ${key.state}`
      if (verb === 'revoke') text += ' (revoked is final: it can never be used or changed again)'
      if (verb === 'activate' && key.expiresAt.getTime() <= now) {
        text += `\nnote: it expired at ${fmt.iso(key.expiresAt)}, so it still cannot be used`
      }
      return { json: key, text }
    },
  }
}

/**
 * A kind of call the store decides, with its two words (service and api, or method and path).
 * @typedef {object} CallKind
 * @property {[string, string]} words their names for usage messages
 * @property {string} rulesName
 * @property {(rules: string[]) => string[]} ownRules
 * @property {(first: string, second: string) => string} label
 * @property {string} invalid why an `invalid_request` was refused
 * @property {(store: KeyStore, secret: string, first: string, second: string, ip: string | undefined, use: boolean) => Decision} decide
 *   the decision; with `use`, made as the check is (a use of the key, recorded in lastUsedAt)
 */

/**
 * The two kinds of call the store decides: an API call and a WebDAV request.
 * @type {Record<'api' | 'dav', CallKind>}
 */
const CALL_KINDS = {
  api: {
    words: ['<service>', '<api>'],
    rulesName: 'API',
    /** The key's rules of this kind. */
    ownRules: (rules) => rules.filter((r) => !r.startsWith('ip=') && !r.startsWith('dav=')),
    label: (service, api) => `${service}:${api}`,
    invalid: 'the service or api is not a valid name (letters, digits, _ - . /, 1–256 characters, no wildcards)',
    // isAllowed is the check (it records the use in lastUsedAt); explain adds the why.
    decide(store, secret, service, api, ip, use) {
      if (use) store.isAllowed(secret, service, api, ip)
      return store.explain(secret, service, api, ip)
    },
  },
  dav: {
    words: ['<method>', '<path>'],
    rulesName: 'WebDAV',
    ownRules: (rules) => rules.filter((r) => r.startsWith('dav=')),
    label: (method, path) => `WebDAV ${method} ${path}`,
    invalid:
      'the method or path is not valid (a method is 1–32 letters; a path 1–1,024 characters of letters, digits, _ - . / ~, no wildcards, no ".", ".." or empty segment)',
    decide(store, secret, method, path, ip, use) {
      if (use) store.isAllowedDav(secret, method, path, ip)
      return store.explainDav(secret, method, path, ip)
    },
  },
}

/**
 * What the words of a decision's reason are made from.
 * @typedef {{ d: Decision, key: ApiKey | null, user: User | null, call: string, ip: string | undefined, kind: CallKind }} ReasonFacts
 */

/**
 * The words of each reason: a full record, so a reason the core adds fails the type-check here.
 * @typedef {(facts: ReasonFacts) => string} ReasonWords
 * @type {Record<ReasonName, ReasonWords>}
 */
const REASON_TEXT = {
  allowed: () => 'the call is allowed',
  malformed_key: () => 'the secret is not well formed (wrong prefix, length, characters or checksum): was it copied whole?',
  unknown_key: () => 'no key in this store has that secret (it was deleted, or belongs to another store)',
  store_unavailable: () => 'the store cannot vouch that it is current (its database is out of reach), so it fails closed',
  invalid_request: ({ kind }) => kind.invalid,
  suspended: ({ d }) => `key ${d.keyId} is suspended (keygate key activate ${d.keyId})`,
  revoked: ({ d }) => `key ${d.keyId} is revoked, which is final`,
  expired: ({ d, key }) => `key ${d.keyId} expired${key ? ` at ${fmt.iso(key.expiresAt)}` : ''}`,
  user_inactive: ({ d, user }) => `user ${d.userId} is ${user ? user.status : 'missing'}`,
  user_lacks_right: ({ d, call }) => `the rights of user ${d.userId} (its own and its roles’) do not include ${call}`,
  no_matching_rule: ({ key, call, kind }) => `none of the key’s ${kind.rulesName} rules matches ${call}${key ? ` (rules: ${kind.ownRules(key.rules).join(', ')})` : ''}`,
  ip_not_allowed: ({ key, ip }) =>
    `${ip ? `the caller IP ${ip} is not` : 'no caller IP was given (--ip), and it must be'} in the key’s IP rules${
      key ? ` (${key.rules.filter((r) => r.startsWith('ip=')).join(', ')})` : ''
    }`,
}

/** The secret and the two words of the call: `<secret> <a> <b>`, or `<a> <b>` and the secret from stdin or $KEYGATE_SECRET. */
/**
 * The usage checks of a check command's secret and call words, made before any store is opened:
 * a secret both given and read, a secret followed by one word, no secret anywhere.
 * @param {OptionContext<CheckOptions>} ctx
 * @param {string} name the command, for messages
 * @param {CallKind} kind
 */
function checkSecretUsage(ctx, name, kind) {
  const fromStdin = ctx.opts['secret-stdin'] === true
  if (ctx.args.length === 3) {
    if (fromStdin) throw new UsageError('give the secret as an argument or with --secret-stdin, not both')
    return
  }
  if (/^[a-z][a-z0-9]{0,15}_[A-Za-z0-9]{20,}$/.test(ctx.args[0])) {
    // A secret followed by one word: the second word is missing (and the secret must not be echoed as the first).
    const [a, b] = kind.words
    throw new UsageError(`${name} needs ${a} and ${b} after the secret (usage: keygate ${name} <secret> ${a} ${b})${callAsOneWord(b, ctx.args[1])}`)
  }
  if (fromStdin) return
  const fromEnv = ctx.env.KEYGATE_SECRET
  if (fromEnv === undefined || fromEnv === '') {
    throw new UsageError(`${name} needs a secret: as the first argument, with --secret-stdin, or in $KEYGATE_SECRET`)
  }
  if (fromEnv.trim() === '') throw new UsageError('the secret in $KEYGATE_SECRET is empty')
}

/**
 * The secret and the call words (checked by `checkSecretUsage`; a secret from standard input
 * was read, and found not empty, before the store was opened).
 * @param {OptionContext<CheckOptions>} ctx
 * @returns {Promise<string[]>}
 */
async function secretAndCall(ctx) {
  if (ctx.args.length === 3) return ctx.args
  const [first, second] = ctx.args
  return [await secretFromInput(ctx), first, second]
}

/**
 * The secret a command was given outside its arguments: the first line of standard input with
 * `--secret-stdin`, else `$KEYGATE_SECRET`; trimmed, and never empty.
 * @param {OptionContext<{ 'secret-stdin'?: true }>} ctx
 * @returns {Promise<string>}
 */
async function secretFromInput(ctx) {
  const secret = ctx.opts['secret-stdin'] === true ? (await ctx.readStdin()).split(/\r?\n/)[0].trim() : (ctx.env.KEYGATE_SECRET ?? '').trim()
  if (secret === '') throw new UsageError('the secret read from standard input is empty')
  return secret
}

/** Decides the call of `ctx` and prints it: one line, or with `explain` the whole decision in words. */
/**
 * @param {StoreContext<CheckOptions>} ctx
 * @param {CallKind} kind
 * @param {boolean} explain
 * @returns {Promise<CommandResult>}
 */
async function decideAndPrint(ctx, kind, explain) {
  const [secret, first, second] = await secretAndCall(ctx)
  const ip = ctx.opts.ip
  const { store } = ctx
  // explain is a diagnosis, as store.explain is, not a use: diagnosing a leaked secret must not
  // overwrite the last use that shows whether it was used.
  const decision = kind.decide(store, secret, first, second, ip, !explain)
  const exit = decision.allowed ? 0 : 1
  const who = decision.keyId ? `key ${decision.keyId}, user ${decision.userId}` : ''
  if (!explain) {
    const text = decision.allowed
      ? `allowed (${who}${decision.matchedRule ? `, rule ${decision.matchedRule}` : ''})`
      : `denied: ${decision.reason}${who ? ` (${who})` : ''}`
    return { json: decision, text, exit }
  }
  const key = decision.keyId ? store.getKey(decision.keyId) : null
  const user = decision.userId ? store.getUser(decision.userId) : null
  // The call words and the IP are shown as typed, but not a secret given in their place (the
  // arguments in the wrong order, or the secret pasted as --ip): redacted as in messages.
  /** @param {string} text */
  const shown = (text) => scrubMessage(store, redactSecrets(text))
  // On one line each, as any word typed (or copied from a request) may hold a newline or an escape.
  const call = fmt.visible(shown(kind.label(first, second)))
  const shownIp = ip === undefined ? undefined : fmt.visible(shown(ip))
  const why = REASON_TEXT[decision.reason]({ d: decision, key, user, call, ip: shownIp, kind })
  const lines = [
    decision.allowed ? 'allowed' : `denied: ${decision.reason}`,
    `  call          ${call}${shownIp ? ` from ${shownIp}` : ''}`,
    `  key           ${decision.keyId ?? '-'}`,
    `  user          ${decision.userId ?? '-'}`,
    `  matched rule  ${decision.matchedRule ?? '-'}`,
    `  why           ${why}`,
  ]
  return { json: { ...decision, explanation: why }, text: lines.join('\n'), exit }
}

/** @param {'check' | 'explain'} name */
function checkCommand(name) {
  const explain = name === 'explain'
  return {
    path: [name],
    summary: explain ? 'Explain the decision on a call in full' : 'Check whether a secret may make a call',
    usage: `keygate ${name} <secret> <service> <api> [--ip <address>]\n       keygate ${name} <service> <api> [--ip <address>] --secret-stdin   (or with $KEYGATE_SECRET)`,
    details: `${
      explain
        ? 'Decides as store.explain does and prints the whole decision: the reason, key, user, the\nfirst rule that matched, and in words why.'
        : 'Decides as store.isAllowed does and prints "allowed" or "denied: <reason>".'
    }\nExit code 0 when allowed, 1 when denied.\n\n${SECRET_HELP}`,
    options: { ip: O.ip, 'secret-stdin': O.secretStdin },
    positionals: ['[<secret>]', '<service>', '<api>'],
    minPositionals: 2,
    store: 'read',
    secretArgs: true,
    examples: [
      `keygate ${name} "$SECRET" session userLogon --ip 10.1.2.3`,
      `printf '%s' "$SECRET" | keygate ${name} --secret-stdin session userLogon`,
      `KEYGATE_SECRET="$SECRET" keygate ${name} apps/com.hornbill.servicemanager/Requests holdRequest`,
    ],
    /** @param {OptionContext<CheckOptions>} ctx */
    parse: (ctx) => checkSecretUsage(ctx, name, CALL_KINDS.api),
    /** @param {StoreContext<CheckOptions>} ctx */
    run: (ctx) => decideAndPrint(ctx, CALL_KINDS.api, explain),
  }
}

function checkDavCommand() {
  const name = 'check-dav'
  return {
    path: [name],
    summary: 'Check whether a secret may make a WebDAV request',
    usage: `keygate ${name} <secret> <method> <path> [--ip <address>] [--explain]\n       keygate ${name} <method> <path> [--ip <address>] [--explain] --secret-stdin   (or with $KEYGATE_SECRET)`,
    details:
      'Decides a WebDAV request (the guard maps PROPFIND /dav/docs/a.txt to PROPFIND docs/a.txt) as\n' +
      'store.isAllowedDav does and prints "allowed" or "denied: <reason>"; with --explain, the whole\n' +
      'decision in words, as store.explainDav gives it. The method is any WebDAV/HTTP method (GET,\n' +
      'PUT, PROPFIND, MKCOL, COPY, MOVE, LOCK…, any case); the path is decided as given (a leading /\n' +
      `is ignored, "." and ".." segments are invalid).\nExit code 0 when allowed, 1 when denied.\n\n${SECRET_HELP}`,
    options: { ip: O.ip, explain: { type: 'boolean', help: 'print the whole decision and why, as explain does' }, 'secret-stdin': O.secretStdin },
    positionals: ['[<secret>]', '<method>', '<path>'],
    minPositionals: 2,
    store: 'read',
    secretArgs: true,
    examples: [`keygate ${name} "$SECRET" GET session/notes.txt --ip 10.1.2.3`, `printf '%s' "$SECRET" | keygate ${name} --secret-stdin PROPFIND docs/ --explain`],
    /** @param {OptionContext<CheckOptions & { explain?: true }>} ctx */
    parse: (ctx) => checkSecretUsage(ctx, name, CALL_KINDS.dav),
    /** @param {StoreContext<CheckOptions & { explain?: true }>} ctx */
    run: (ctx) => decideAndPrint(ctx, CALL_KINDS.dav, ctx.opts.explain === true),
  }
}

const GROUPS = {
  user: 'Users: accounts that keys run as',
  role: 'Roles: named lists of rights',
  key: 'API keys',
}

/** @param {string[]} words */
function findCommand(words) {
  return COMMANDS.find((c) => c.path.length === words.length && c.path.every((w, i) => w === words[i]))
}

/**
 * Where a store named on the command line is: a URL as given, a file resolved against the working directory.
 * @param {OptionContext} ctx
 * @param {string} text
 */
function storeLocation(ctx, text) {
  if (text === '') throw new UsageError(`${ctx.name} needs a store file or a postgres:// URL, not an empty argument`)
  const url = isDatabaseUrl(text)
  const where = resolveStore(text, ctx.cwd)
  return { url, where, shown: shownStore(where) }
}

/**
 * Whether there is no store file at `file` to use: '' when it does not exist, what it is when it
 * is an empty file (which the store would take as new, and make a store of); undefined when there
 * is something to open.
 * @param {string} file
 */
function noStoreFile(file) {
  // SQLite's special names: the store refuses them itself (INVALID_ARGUMENT), touching no file.
  if (file === '' || file === ':memory:' || /^file:/i.test(file)) return undefined
  if (!fs.existsSync(file)) return ''
  try {
    const stat = fs.statSync(file)
    const wal = fs.statSync(`${file}-wal`, { throwIfNoEntry: false })
    if (stat.isFile() && stat.size === 0 && !(wal && wal.size > 0)) return ' (the file is empty)'
  } catch {
    // the store's own error says what is wrong with it
  }
  return undefined
}

/**
 * Opens a store at `db` for `command` (creating it only for commands that may).
 * @param {Command} command
 * @param {Context} ctx
 */
function openStore(command, ctx) {
  // A database is opened as it is (its schema is made when missing); whether it was is the store's to say.
  const missing = isDatabaseUrl(ctx.db) ? undefined : noStoreFile(ctx.db)
  if (missing !== undefined && command.store !== 'create') {
    throw Object.assign(new Error(`no keygate store at ${ctx.db}${missing}: point --db or $KEYGATE_DB at an existing store, or create one with "keygate init"`), {
      code: 'STORE_IO',
      keygate: true,
    })
  }
  const options = { ...(command.storeOptions ? command.storeOptions(ctx) : {}) }
  if (ctx.maxLifetimeDays !== undefined) options.maxLifetimeDays = ctx.maxLifetimeDays
  const store = KeyStore.open(ctx.db, options)
  return { store, created: store.created }
}

module.exports = { COMMANDS, GROUPS, NotFound, findCommand, openStore }
