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

// `keygate ... | head` closes the pipe early: stop quietly.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error) => {
    if (error && error.code === 'EPIPE') process.exit(process.exitCode ?? 0)
    throw error
  })
}

run(process.argv.slice(2), {
  env: process.env,
  cwd: process.cwd(),
  stdout: (/** @type {string} */ text) => process.stdout.write(text),
  stderr: (/** @type {string} */ text) => process.stderr.write(text),
  stdin: process.stdin,
}).then(
  (code) => {
    process.exitCode = code
  },
  (error) => {
    process.stderr.write(`error: unexpected error: ${error?.stack || error}\n`)
    process.exitCode = 4
  },
)
