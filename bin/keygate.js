#!/usr/bin/env node
'use strict'
// keygate — the command line of the keygate package. Reference: docs/cli.md, or `keygate --help`.

// Fail clearly (not with a stack trace) if the native addon cannot be loaded.
let run
try {
  require('../index.js')
  run = require('../lib/cli/main.js').run
} catch (error) {
  // lib/native.js explains a missing binary itself (platform, targets, building from source).
  process.stderr.write(`error: cannot load keygate: ${error?.message}\n`)
  process.exit(4)
}

// `keygate ... | head` closes the pipe early: stop writing to it quietly, but let the command
// finish, so the exit code is still its own (a failure or a denied check must not exit 0 because
// its output found no reader, as it would if the process stopped here, before the code is known).
/** @type {Set<NodeJS.WriteStream>} */
const closed = new Set()
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error) => {
    if (error && error.code === 'EPIPE') {
      closed.add(stream)
      return
    }
    throw error
  })
}
/**
 * @param {NodeJS.WriteStream} stream
 * @param {string} text
 */
const write = (stream, text) => {
  if (!closed.has(stream)) stream.write(text)
}

run(process.argv.slice(2), {
  env: process.env,
  cwd: process.cwd(),
  stdout: (/** @type {string} */ text) => write(process.stdout, text),
  stderr: (/** @type {string} */ text) => write(process.stderr, text),
  stdin: process.stdin,
}).then(
  (code) => {
    process.exitCode = code
  },
  (error) => {
    write(process.stderr, `error: unexpected error: ${error?.stack || error}\n`)
    process.exitCode = 4
  },
)
