'use strict'
// The keygate command line: finds the command, parses its options, opens the store,
// runs the command, prints text or JSON, and returns the exit code.

const os = require('node:os')

const { ERROR_CODES, redactSecrets } = require('../errors.js')
const { scrubMessage } = require('../store.js')
// Each command's `run` in commands.js takes a context narrower than Context (its own option
// values; the store open), which a Command[] cannot express: its exports are read as these types.
const { COMMANDS, GROUPS, NotFound, findCommand, openStore } =
  /** @type {{ COMMANDS: Command[], GROUPS: Record<string, string>, NotFound: typeof import('./commands.js').NotFound, findCommand(words: string[]): Command | undefined, openStore(command: Command, ctx: Context): { store: KeyStore, created: boolean } }} */ (
    require('./commands.js')
  )
const { UsageError, parseOptions, parseWhole, closest, quoteTyped, mayHoldASecret, callAsOneWord } = require('./values.js')
const { visible, shownLines } = require('./format.js')
const { jsonRequested, jsonDocument } = require('./json.js')
const { readAll } = require('./input.js')
const { resolveStore, shownStore } = require('../location.js')

/**
 * @typedef {import('./values.js').OptionSpec} OptionSpec
 * @typedef {import('../../index.js').KeyStore} KeyStore
 */

/**
 * What a command's `parse` and `run` are given.
 * @typedef {object} Context
 * @property {string} name `keygate <command words>`, for messages
 * @property {string[]} args the positional arguments
 * @property {import('./values.js').OptionValues<Record<string, OptionSpec>>} opts the options given, global ones included
 * @property {NodeJS.ProcessEnv} env
 * @property {string} cwd the directory a relative store path is resolved against
 * @property {string} db the store file, absolute
 * @property {number} now milliseconds since the epoch, read once
 * @property {number | undefined} maxLifetimeDays
 * @property {import('../../index.js').AdminOptions} admin the `{ actor }` of admin calls
 * @property {() => Promise<string>} readStdin
 * @property {string | undefined} rulesFromStdin standard input, read before the options are checked when `--rules-file` is `-`
 * @property {KeyStore | undefined} store open while `run` runs (commands whose `store` is not `'none'`)
 * @property {boolean} created whether opening the store created it
 * @property {unknown} input what the command's `parse` returned
 */

/**
 * What a command's `run` answers: printed as `json` with --json, else as `text`.
 * @typedef {object} CommandResult
 * @property {unknown} json
 * @property {string} text
 * @property {number} [exit] the exit code; default 0
 * @property {string} [issued] the id of a key whose secret the output shows (see runOnStore())
 */

/**
 * A command of commands.js.
 * @typedef {object} Command
 * @property {string[]} path its words (`['key', 'create']`)
 * @property {string} summary
 * @property {string} usage
 * @property {string} details
 * @property {Record<string, OptionSpec>} options its own options (the global ones come with every command)
 * @property {string[]} positionals their names for help; `[optional]` ones in brackets
 * @property {number} [minPositionals] when not the count of the non-bracketed ones
 * @property {boolean} [secretArgs] check/explain: the arguments may hold a secret, never echo them
 * @property {boolean} [secretOnlyFromInput] key find: the secret comes from --secret-stdin or
 *   $KEYGATE_SECRET only, never from the arguments
 * @property {Record<string, string>} [misleadingAfter] global options that, written after this
 *   command, would read as one of its own filters: the usage error each is
 * @property {'create' | 'read' | 'none'} store whether the command may create the store, needs an existing one, or opens its own
 * @property {string[]} examples
 * @property {(ctx: Context) => unknown} [parse] checks the options before any store is opened; gives `ctx.input`
 * @property {(ctx: Context) => import('../../index.js').StoreOptions} [storeOptions]
 * @property {(ctx: Context) => CommandResult | Promise<CommandResult>} run
 */

const EXIT = Object.freeze({ OK: 0, NO: 1, USAGE: 2, KEYGATE: 3, INTERNAL: 4 })
const KNOWN_CODES = new Set(ERROR_CODES)

/** @satisfies {Record<string, OptionSpec>} */
const GLOBAL_OPTIONS = {
  db: { type: 'string', arg: '<file|url>', help: 'the store file, or a postgres:// URL; default $KEYGATE_DB, else ./keygate.db' },
  json: { type: 'boolean', help: 'print JSON (one document on stdout, errors included) instead of text' },
  actor: { type: 'string', arg: '<name>', help: 'who makes the change, for the audit trail; default $KEYGATE_ACTOR, else your OS user name' },
  'max-lifetime-days': {
    type: 'string',
    arg: '<n>',
    help: "longest key lifetime allowed, in days; default $KEYGATE_MAX_LIFETIME_DAYS, else the store's limit (730 by default)",
  },
  help: { type: 'boolean', short: 'h', help: 'show help (also: keygate help <command>)' },
  version: { type: 'boolean', help: 'print the version of keygate' },
}
/** @type {Set<string>} */
const GLOBAL_WITH_VALUE = new Set(/** @type {(keyof typeof GLOBAL_OPTIONS)[]} */ (Object.keys(GLOBAL_OPTIONS)).filter((k) => GLOBAL_OPTIONS[k].type === 'string'))

const EXIT_CODES_HELP = `Exit codes:
  0  done; check/explain/check-dav: the call is allowed
  1  the answer is no: check/explain/check-dav denied the call, verify-audit found the trail broken,
     or the user/role/key named by show or delete does not exist
  2  usage error: unknown command or option, missing or bad argument (nothing was changed)
  3  keygate refused or failed: the error's code is printed, e.g. UNKNOWN_USER, INVALID_RULE,
     EXPIRY_TOO_FAR, REVOKED_IS_FINAL, STORE_IO, STORE_LOCKED (nothing was changed)
  4  internal error (a bug in keygate: please report it)`

const ENV_HELP = `Environment:
  KEYGATE_DB                 the store file or postgres:// URL when --db is not given (else ./keygate.db)
  KEYGATE_ACTOR              the actor recorded in the audit trail when --actor is not given
  KEYGATE_SECRET             the secret for check/explain/check-dav when it is not an argument,
                             and for key find without --secret-stdin
  KEYGATE_MAX_LIFETIME_DAYS  as --max-lifetime-days
  KEYGATE_ADMIN_TOKEN        serve: the admin page's login token (16 to 1,024 characters); when unset,
                             one is generated at the first start, printed once, and kept as a digest
  PORT                       serve: the port when --port is not given (else 8080)
  HOST                       serve: the address when --host is not given (else 127.0.0.1)`

function version() {
  return require('../../package.json').version
}

// ---- help ------------------------------------------------------------------------

/** @param {Record<string, OptionSpec>} options */
function optionLines(options) {
  const rows = Object.entries(options).map(([name, def]) => [
    `${def.short ? `-${def.short}, ` : ''}--${name}${def.arg ? ` ${def.arg}` : ''}${def.multiple ? '...' : ''}`,
    def.help,
  ])
  const width = Math.max(0, ...rows.map((r) => r[0].length))
  return rows.map(([flags, help]) => `  ${flags.padEnd(width)}  ${help}`).join('\n')
}

/** @param {Command[]} commands */
function commandList(commands) {
  const rows = commands.map((c) => [c.path.join(' '), c.summary])
  const width = Math.max(...rows.map((r) => r[0].length))
  return rows.map(([name, summary]) => `  ${name.padEnd(width)}  ${summary}`).join('\n')
}

function generalHelp() {
  const sections = [
    `keygate ${version()} — manage the API keys of a keygate store from the command line`,
    'Usage: keygate [global options] <command> [arguments] [options]',
    `Users and roles:\n${commandList(COMMANDS.filter((c) => c.path[0] === 'user' || c.path[0] === 'role'))}`,
    `Keys:\n${commandList(COMMANDS.filter((c) => c.path[0] === 'key'))}`,
    `Checks:\n${commandList(COMMANDS.filter((c) => c.path[0] === 'check' || c.path[0] === 'explain' || c.path[0] === 'check-dav'))}`,
    `Store:\n${commandList(COMMANDS.filter((c) => ['init', 'audit', 'verify-audit', 'backup', 'copy'].includes(c.path[0])))}`,
    `Admin web page:\n${commandList(COMMANDS.filter((c) => c.path[0] === 'serve'))}`,
    `Global options (before or after the command):\n${optionLines(GLOBAL_OPTIONS)}`,
    EXIT_CODES_HELP,
    ENV_HELP,
    'Run "keygate <command> --help" for a command\'s options and examples.\nFull reference: docs/cli.md in the keygate package.',
  ]
  return sections.join('\n\n')
}

/** @param {string} group */
function groupHelp(group) {
  const commands = COMMANDS.filter((c) => c.path[0] === group)
  return [
    `keygate ${group} — ${GROUPS[group]}`,
    `Usage: keygate ${group} <command> [arguments] [options]`,
    `Commands:\n${commandList(commands)}`,
    `Global options:\n${optionLines(GLOBAL_OPTIONS)}`,
    `Run "keygate ${group} <command> --help" for a command's options and examples.`,
  ].join('\n\n')
}

/** @param {Command} command */
function commandHelp(command) {
  const sections = [`keygate ${command.path.join(' ')} — ${command.summary}`, `Usage: ${command.usage}`, command.details]
  if (Object.keys(command.options).length > 0) sections.push(`Options:\n${optionLines(command.options)}`)
  sections.push(`Global options:\n${optionLines(GLOBAL_OPTIONS)}`)
  sections.push(`Examples:\n${command.examples.map((e) => `  ${e}`).join('\n')}`)
  sections.push(EXIT_CODES_HELP)
  return sections.join('\n\n')
}

// ---- finding the command ---------------------------------------------------------

const TOP_WORDS = [...new Set(COMMANDS.map((c) => c.path[0]))]

/**
 * Splits argv into leading global options, the command words, and the rest.
 * @param {string[]} argv
 */
function locate(argv) {
  /** @type {string[]} */
  const leading = []
  let i = 0
  while (i < argv.length && argv[i].startsWith('-') && argv[i] !== '--' && argv[i] !== '-') {
    const arg = argv[i]
    leading.push(arg)
    const name = arg.startsWith('--') ? arg.slice(2) : ''
    if (GLOBAL_WITH_VALUE.has(name) && i + 1 < argv.length) leading.push(argv[++i])
    i++
  }
  return { leading, words: argv.slice(i) }
}

/**
 * @param {string} word
 * @param {string[]} candidates
 * @param {string} prefix the words before `word`, each followed by a space
 */
function unknownCommand(word, candidates, prefix) {
  const guess = closest(word, candidates)
  return new UsageError(
    `unknown command ${quoteTyped(`${prefix}${word}`)}${guess ? ` (did you mean "${prefix}${guess}"?)` : ''}; run "keygate ${prefix}--help" for the list`,
  )
}

/**
 * Whether `argv` asks for help: `--help` or `-h` as an option of its own, before any `--`. The
 * argument after an option that takes a value is that option's, not a request for help:
 * `--rule -h` is the option parser's "--rule needs a value", never the help (which would exit 0
 * and do nothing a script could notice).
 * @param {string[]} argv
 * @param {string[]} words its command words (`locate(argv).words`)
 */
function wantsHelp(argv, words) {
  const command = findCommand(words.slice(0, 2)) ?? findCommand(words.slice(0, 1))
  /** @type {Record<string, OptionSpec>} */
  const spec = { ...GLOBAL_OPTIONS, ...(command ? command.options : {}) }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    if (arg === '--') return false
    if (arg === '--help' || arg === '-h') return true
    const name = arg.startsWith('--') && !arg.includes('=') ? arg.slice(2) : ''
    if (Object.hasOwn(spec, name) && spec[name].type === 'string') i++ // its value, whatever it is
  }
  return false
}

/**
 * Resolves the command words: { command, rest } or { help: text } for a group or
 * "help" request; throws UsageError for unknown or missing commands.
 * @param {string[]} words
 * @param {boolean} helpRequested
 * @returns {{ help: string, command?: undefined, version?: undefined, rest?: undefined } | { version: true, rest: string[], command?: undefined, help?: undefined } | { command: Command, rest: string[], help?: undefined, version?: undefined }}
 */
function resolve(words, helpRequested) {
  const [first, second] = words
  if (first === 'help') {
    const target = words.slice(1).filter((w) => !w.startsWith('-'))
    if (target.length === 0) return { help: generalHelp() }
    const command = findCommand(target)
    if (command) return { help: commandHelp(command) }
    if (target.length === 1 && Object.hasOwn(GROUPS, target[0])) return { help: groupHelp(target[0]) }
    throw new UsageError(`no help for ${quoteTyped(target.join(' '))}: no such command; run "keygate --help" for the list`)
  }
  if (first === 'version') return { version: true, rest: words.slice(1) }
  if (first === undefined || first === '--') {
    if (helpRequested) return { help: generalHelp() }
    throw new UsageError('no command given; run "keygate --help" for the list of commands')
  }
  if (Object.hasOwn(GROUPS, first)) {
    if (second === undefined || second.startsWith('-')) {
      if (helpRequested) return { help: groupHelp(first) }
      const names = COMMANDS.filter((c) => c.path[0] === first).map((c) => c.path[1])
      throw new UsageError(`"keygate ${first}" needs a command: ${names.join(', ')} (see keygate ${first} --help)`)
    }
    const command = findCommand([first, second])
    if (!command) {
      const names = COMMANDS.filter((c) => c.path[0] === first).map((c) => c.path[1])
      throw unknownCommand(second, names, `${first} `)
    }
    return { command, rest: words.slice(2) }
  }
  const command = findCommand([first])
  if (!command) throw unknownCommand(first, [...TOP_WORDS, 'help', 'version'], '')
  return { command, rest: words.slice(1) }
}

// ---- running ----------------------------------------------------------------------

/** @param {NodeJS.ProcessEnv} env */
function defaultActor(env) {
  if (env.KEYGATE_ACTOR !== undefined && env.KEYGATE_ACTOR !== '') return env.KEYGATE_ACTOR
  try {
    const name = os.userInfo().username
    if (name) return name
  } catch {
    // no user name (some containers)
  }
  return env.USER || env.USERNAME || undefined
}

/**
 * @param {Command} command
 * @param {string[]} args
 */
function checkPositionals(command, args) {
  const max = command.positionals.length
  const min = command.minPositionals ?? command.positionals.filter((p) => !p.startsWith('[')).length
  const name = `keygate ${command.path.join(' ')}`
  if (args.length < min) {
    const missing = command.positionals.filter((p) => !p.startsWith('['))[args.length]
    throw new UsageError(`${name} needs ${missing ?? 'more arguments'} (usage: ${command.usage.split('\n')[0]})${callAsOneWord(missing, args.at(-1))}`)
  }
  if (args.length > max) {
    // Never echo the arguments of check/explain: one of them may be a secret.
    // Nor arguments that together may hold one (a secret pasted with a space is two).
    const extras = args.slice(max)
    const extra = command.secretArgs || mayHoldASecret(extras.join(' ')) ? '' : `: ${extras.map((a) => quoteTyped(a)).join(' ')}`
    // A secret typed as an argument is in the shell history already: say how to keep it out next time.
    const how = command.secretOnlyFromInput ? '; a secret is never taken as an argument: pipe it in with --secret-stdin, or set $KEYGATE_SECRET' : ''
    throw new UsageError(`too many arguments for ${name}${extra} (usage: ${command.usage.split('\n')[0]})${how}`)
  }
}

/**
 * The secret from standard input: its first line. On a terminal, asks for it and reads it
 * without echoing it to the screen.
 * @param {NodeJS.ReadStream} stream
 * @param {(text: string) => void} stderr
 * @returns {Promise<string>}
 */
function readSecretLine(stream, stderr) {
  if (!stream.isTTY || typeof stream.setRawMode !== 'function') return readAll(stream).then((text) => text.split(/\r?\n/)[0])
  return new Promise((resolve) => {
    stderr('secret (not shown; press Enter when done): ')
    let text = ''
    stream.setRawMode(true)
    stream.setEncoding('utf8')
    /** @param {string} value */
    const done = (value) => {
      stream.setRawMode(false)
      stream.pause()
      stream.removeListener('data', onData)
      stderr('\n')
      resolve(value)
    }
    /** @param {string} chunk text: the stream's encoding is set */
    const onData = (chunk) => {
      for (const ch of chunk) {
        if (ch === '\r' || ch === '\n' || ch === '\u0004') return done(text)
        if (ch === '\u0003') {
          stream.setRawMode(false)
          stderr('\n')
          process.exit(130)
        }
        if (ch === '\u007f' || ch === '\b') text = text.slice(0, -1)
        else text += ch
      }
    }
    stream.on('data', onData)
    stream.resume()
  })
}

/**
 * What the CLI is given besides argv. `stdout` may return a promise that rejects when the text
 * cannot be written (a full disk): a command that issues a secret then revokes its key.
 * @typedef {{ env: NodeJS.ProcessEnv, cwd: string, stdout: (text: string) => void | Promise<void>, stderr: (text: string) => void, stdin: NodeJS.ReadStream }} Io
 */

/**
 * Where a run's answers go; each text written ends with a newline.
 * @typedef {object} Output
 * @property {boolean} json --json was given (before any `--`): every answer is one JSON document on stdout
 * @property {(text: string) => Promise<void>} out writes to stdout; see terminalOutput
 * @property {(text: string) => void} err writes to stderr
 */

/**
 * The store a command opened: `store` while it is open (closed by run() should the command
 * fail), `scrubbing` still once closed (what the error reported is redacted against).
 * @typedef {{ store: KeyStore | undefined, scrubbing: KeyStore | undefined }} HeldStore
 */

/**
 * A command found in argv, with its options parsed and its arguments counted.
 * @typedef {object} Invocation
 * @property {Command} command
 * @property {string} name `keygate <command words>`, for messages
 * @property {import('./values.js').OptionValues<typeof GLOBAL_OPTIONS & Record<string, OptionSpec>>} values
 * @property {string[]} positionals
 */

/**
 * @param {Io} io
 * @param {boolean} json
 * @returns {Output}
 */
function terminalOutput(io, json) {
  /** @param {string} text */
  const out = (text) => {
    const written = Promise.resolve(io.stdout(text.endsWith('\n') ? text : `${text}\n`))
    // Awaited only where a failure changes what to do (a secret issued); else bin/keygate.js reports it.
    written.catch(() => {})
    return written
  }
  /** @param {string} text */
  const err = (text) => io.stderr(text.endsWith('\n') ? text : `${text}\n`)
  return { json, out, err }
}

/** @param {Output} output */
function printVersion(output) {
  if (output.json) output.out(jsonDocument({ version: version() }))
  else output.out(`keygate ${version()}`)
}

/**
 * With --json, help too is one JSON document: { "help": text }.
 * @param {Output} output
 * @param {string} help
 */
function printHelp(output, help) {
  output.out(output.json ? jsonDocument({ help }) : help)
}

/**
 * Finds the command argv names, parses its options and counts its arguments. A request for
 * help or the version is answered here: `{ exit }` then. Throws UsageError.
 * @param {string[]} argv
 * @param {Output} output
 * @returns {{ exit: number } | Invocation}
 */
function findInvocation(argv, output) {
  const { leading, words } = locate(argv)
  const helpRequested = wantsHelp(argv, words)
  if (words.length === 0 && !helpRequested && leading.includes('--version')) {
    printVersion(output)
    return { exit: EXIT.OK }
  }
  const resolved = resolve(words, helpRequested)
  if (resolved.help !== undefined) {
    printHelp(output, resolved.help)
    return { exit: EXIT.OK }
  }
  const command = resolved.command
  const name = command ? `keygate ${command.path.join(' ')}` : 'keygate'
  if (helpRequested && command) {
    printHelp(output, commandHelp(command))
    return { exit: EXIT.OK }
  }
  /** @type {typeof GLOBAL_OPTIONS & Record<string, OptionSpec>} */
  const spec = { ...GLOBAL_OPTIONS, ...(command ? command.options : {}) }
  const { values, positionals } = parseOptions([...leading, ...resolved.rest], spec, name, (command?.positionals.length ?? 0) > 0)
  if (command?.misleadingAfter) {
    // Only after the command: a wrapper that puts a global option first for every command keeps working.
    const after = parseOptions(resolved.rest, spec, name).values
    for (const [option, message] of Object.entries(command.misleadingAfter)) if (Object.hasOwn(after, option)) throw new UsageError(message)
  }
  if (resolved.version || values.version) {
    printVersion(output)
    return { exit: EXIT.OK }
  }
  if (!command) {
    throw new UsageError('no command given; run "keygate --help" for the list of commands')
  }
  checkPositionals(command, positionals)
  return { command, name, values, positionals }
}

/**
 * The global settings from the options, else the environment: the store, the actor and the
 * longest key lifetime. Throws UsageError for an empty or bad one.
 * @param {Invocation['values']} values
 * @param {Io} io
 */
function globalSettings(values, io) {
  const env = io.env
  const dbText = values.db ?? (env.KEYGATE_DB || undefined) ?? 'keygate.db'
  if (dbText === '') throw new UsageError('--db needs a file name')
  const db = resolveStore(dbText, io.cwd)
  const actor = values.actor ?? defaultActor(env)
  if (values.actor !== undefined && values.actor.trim() === '') throw new UsageError('--actor needs a name')
  if (values.actor === undefined && env.KEYGATE_ACTOR?.trim() === '' && env.KEYGATE_ACTOR !== '') {
    throw new UsageError('KEYGATE_ACTOR needs a name (or leave it empty for your OS user name)')
  }
  const lifetimeText = values['max-lifetime-days'] ?? (env.KEYGATE_MAX_LIFETIME_DAYS || undefined)
  const maxLifetimeDays =
    lifetimeText === undefined
      ? undefined
      : parseWhole(lifetimeText, values['max-lifetime-days'] !== undefined ? '--max-lifetime-days' : 'KEYGATE_MAX_LIFETIME_DAYS', 1, 36_500)
  return { db, actor, maxLifetimeDays }
}

/**
 * The context of the command's `parse` and `run`, no store open yet.
 * @param {Invocation} invocation
 * @param {Io} io
 * @returns {Context}
 */
function newContext(invocation, io) {
  const { db, actor, maxLifetimeDays } = globalSettings(invocation.values, io)
  return {
    name: invocation.name,
    args: invocation.positionals,
    opts: invocation.values,
    env: io.env,
    cwd: io.cwd,
    db,
    now: Date.now(),
    maxLifetimeDays,
    admin: actor === undefined ? {} : { actor },
    readStdin: () => readAll(io.stdin),
    rulesFromStdin: undefined,
    store: undefined,
    created: false,
    input: undefined,
  }
}

/**
 * Reads what the command takes from standard input and checks its options (`ctx.input`), all
 * before any store is opened: usage errors come first, and the store is held for as short a
 * time as possible.
 * @param {Invocation} invocation
 * @param {Context} ctx
 * @param {Io} io
 */
async function readInput({ command, values, positionals }, ctx, io) {
  // --rules-file - is read before the options are checked (which reads it), and as a stream, not
  // with readSync on fd 0: stdin is non-blocking once Node has touched it, so a pipe whose
  // writer is slow would fail with EAGAIN.
  if (values['rules-file'] === '-') ctx.rulesFromStdin = await readAll(io.stdin)
  if (typeof command.parse === 'function') ctx.input = command.parse(ctx)
  if (values['secret-stdin'] && (command.secretOnlyFromInput || (command.secretArgs && positionals.length === 2))) {
    const text = await readSecretLine(io.stdin, io.stderr)
    if (text.trim() === '') throw new UsageError('the secret read from standard input is empty')
    ctx.readStdin = async () => text
  }
}

/**
 * Runs a command that opens and closes its own store (serve, a long-running one; copy, on two
 * stores), and prints its result.
 * @param {Command} command
 * @param {Context} ctx
 * @param {Output} output
 */
async function runOwnStore(command, ctx, output) {
  const result = await command.run(ctx)
  if (result.json !== undefined && output.json) output.out(jsonDocument(result.json))
  else if (result.text !== undefined) output.out(shownLines(result.text))
  return result.exit ?? EXIT.OK
}

/**
 * Opens the store, runs the command on it, closes it and prints the result; a secret the result
 * shows is printed before the store is closed (see below). The store is kept in `held` while it
 * is open, for run() to close should this throw.
 * @param {Command} command
 * @param {Context} ctx
 * @param {Output} output
 * @param {HeldStore} held
 */
async function runOnStore(command, ctx, output, held) {
  const opened = openStore(command, ctx)
  const store = opened.store
  held.store = store
  held.scrubbing = store
  ctx.store = store
  ctx.created = opened.created
  if (opened.created && command.path[0] !== 'init' && !output.json) output.err(`note: created a new keygate store ${visible(shownStore(ctx.db))}`)
  const result = await command.run(ctx)
  const text = output.json ? jsonDocument(result.json) : shownLines(result.text) // user text may hold bidi or terminal controls
  if (result.issued !== undefined) {
    // A secret is shown once: written out while the store is still open, so that the key of a
    // secret that could not be written (a full disk; part of it may be on it) is revoked, not
    // left usable by whoever finds the rest.
    const failure = await output.out(text).then(
      () => undefined,
      (/** @type {NodeJS.ErrnoException} */ e) => e,
    )
    if (failure !== undefined) return revokeUndelivered(output, store, result.issued, ctx.admin, failure)
  }
  held.store = undefined
  store.close()
  if (result.issued === undefined) output.out(text)
  return result.exit ?? EXIT.OK
}

/**
 * The output of a command that issued a secret could not be written: revokes its key (no one
 * has the secret, or someone has part of it), closes the store, says so on stderr (stdout
 * is what failed, so even with --json) and returns exit 3.
 * @param {Output} output
 * @param {KeyStore} opened
 * @param {string} keyId
 * @param {{ actor?: string }} admin
 * @param {NodeJS.ErrnoException} failure
 */
function revokeUndelivered(output, opened, keyId, admin, failure) {
  const why = `the secret of key ${keyId} could not be written to standard output (${failure.code ?? failure.message})`
  let outcome = 'the key was revoked, as no one has its secret: issue another'
  try {
    opened.setState(keyId, 'revoked', admin)
  } catch (e) {
    outcome = `revoking it failed (${visible(redactSecrets(e?.message))}): revoke it with keygate key revoke ${keyId}`
  }
  try {
    opened.close()
  } catch {
    // the outcome above is what to report
  }
  output.err(`error: ${why}; ${outcome}`)
  return EXIT.KEYGATE
}

/** @param {HeldStore} held */
function closeHeldStore(held) {
  if (held.store) {
    try {
      held.store.close()
    } catch {
      // the first error is the one to report
    }
    held.store = undefined
  }
}

/**
 * Reports what a run threw, and returns its exit code: usage errors 2, "not found" 1, keygate's
 * errors 3, anything else (a bug) 4.
 * @param {any} error
 * @param {Output} output
 * @param {KeyStore | undefined} scrubbing the store the command opened, if any
 */
function reportError(error, output, scrubbing) {
  if (error instanceof UsageError) return fail(output, scrubbing, EXIT.USAGE, 'USAGE', error.message)
  if (error instanceof NotFound) return fail(output, scrubbing, EXIT.NO, error.code, error.message)
  if (error && KNOWN_CODES.has(error.code)) return fail(output, scrubbing, EXIT.KEYGATE, error.code, error.message)
  const message = error?.stack ? error.stack : String(error)
  return fail(output, scrubbing, EXIT.INTERNAL, 'INTERNAL', `unexpected error: ${error?.message}`, output.json ? undefined : message)
}

/**
 * Prints an error (on stdout with --json, else on stderr) and returns `exit`.
 * @param {Output} output
 * @param {KeyStore | undefined} scrubbing
 * @param {number} exit
 * @param {string} code
 * @param {string} message
 * @param {string} [hint]
 */
function fail(output, scrubbing, exit, code, message, hint) {
  // Every message is redacted once more here: whatever a message quotes, from a usage
  // error to the store's, no secret-shaped run reaches the terminal; and once a store is
  // open, nothing that would give away one of its secrets cut into pieces either.
  const shown = (/** @type {string} */ text) => scrubMessage(scrubbing, redactSecrets(text))
  message = shown(message)
  if (hint !== undefined) hint = shown(hint)
  if (output.json) output.out(jsonDocument({ error: { code, message } }))
  // The message is one line whatever it quotes (a file name, a URL, a word typed with a newline in
  // it); only the hint (a stack) has lines of its own.
  else output.err(`error: ${visible(message)}${code && exit !== EXIT.USAGE ? ` (${code})` : ''}${hint ? `\n${shownLines(hint)}` : ''}`)
  return exit
}

/**
 * Runs the CLI. `io`: { env, cwd, stdout(text), stderr(text), stdin (a readable stream) }.
 * Returns the exit code.
 * @param {string[]} argv
 * @param {Io} io
 * @returns {Promise<number>}
 */
async function run(argv, io) {
  const output = terminalOutput(io, jsonRequested(argv))
  /** @type {HeldStore} */
  const held = { store: undefined, scrubbing: undefined }
  try {
    const invocation = findInvocation(argv, output)
    if ('exit' in invocation) return invocation.exit
    const ctx = newContext(invocation, io)
    await readInput(invocation, ctx, io)
    if (invocation.command.store === 'none') return await runOwnStore(invocation.command, ctx, output)
    return await runOnStore(invocation.command, ctx, output, held)
  } catch (error) {
    closeHeldStore(held)
    return reportError(error, output, held.scrubbing)
  }
}

module.exports = { run }
