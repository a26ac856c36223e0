#!/usr/bin/env node
'use strict'
// keygate — the command line of the keygate package. Reference: docs/cli.md, or `keygate --help`.

const fs = require('node:fs')

// Fail clearly (not with a stack trace) if the native addon cannot be loaded.
let run
try {
  require('../index.js')
  run = require('../lib/cli/main.js').run
} catch (error) {
  // lib/native.js explains a missing binary itself (platform, targets, building from source).
  const message = `cannot load keygate: ${error?.message}`
  // With --json stdout holds one document whatever happens, this too (`--no-addons` in
  // NODE_OPTIONS had a script that parses stdout read nothing there).
  const { jsonRequested, jsonDocument } = require('../lib/cli/json.js')
  if (jsonRequested(process.argv.slice(2))) process.stdout.write(`${jsonDocument({ error: { code: 'INTERNAL', message } })}\n`)
  else process.stderr.write(`error: ${message}\n`)
  process.exit(4)
}

// `keygate ... | head` closes the pipe early: stop writing to it quietly, but let the command
// finish, so the exit code is still its own (a failure or a denied check must not exit 0 because
// its output found no reader, as it would if the process stopped here, before the code is known).
// Any other failure to write (a full disk, an I/O error) is the command's to report: the write's
// promise rejects (see run()), and later writes to that stream are dropped.
/** @type {Set<NodeJS.WriteStream>} */
const closed = new Set()
/** @type {NodeJS.ErrnoException | undefined} */
let stdoutFailure
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error) => {
    closed.add(stream)
    if (stream === process.stdout && error?.code !== 'EPIPE') stdoutFailure ??= error
  })
}
// Into a file, Node writes once and drops what a short write left out (a disk that fills up
// mid-write writes what fits and says nothing): there every byte is written here, until a
// write fails (ENOSPC), so a secret cut short is told, not taken for delivered.
const stdoutIsFile = (() => {
  try {
    return fs.fstatSync(1).isFile()
  } catch {
    return false
  }
})()
/**
 * Writes all of `bytes` to `fd`, or throws the error of the write that could not go on.
 * @param {number} fd
 * @param {Buffer} bytes
 */
const writeAll = (fd, bytes) => {
  for (let at = 0; at < bytes.length; ) at += fs.writeSync(fd, bytes, at)
}
/**
 * Resolves once `text` is written to stdout (or its reader is gone), rejects if it cannot be.
 * @param {string} text
 * @returns {Promise<void>}
 */
const toStdout = (text) =>
  new Promise((resolve, reject) => {
    if (closed.has(process.stdout)) return stdoutFailure ? reject(stdoutFailure) : resolve()
    if (stdoutIsFile) {
      try {
        writeAll(1, Buffer.from(text, 'utf8'))
      } catch (error) {
        closed.add(process.stdout)
        stdoutFailure ??= error
        return reject(error)
      }
      return resolve()
    }
    process.stdout.write(text, (/** @type {NodeJS.ErrnoException | null | undefined} */ error) => (error && error.code !== 'EPIPE' ? reject(error) : resolve()))
  })
/** @param {string} text */
const toStderr = (text) => {
  if (!closed.has(process.stderr)) process.stderr.write(text)
}

// Output lost to a full disk or an I/O error (told once the last write has failed, which may
// come after the command's end): the command was done, but no one saw its answer.
process.on('exit', () => {
  if (stdoutFailure !== undefined && !process.exitCode) {
    toStderr(`error: the output could not be written to standard output (${stdoutFailure.code ?? stdoutFailure.message})\n`)
    process.exitCode = 3
  }
})

run(process.argv.slice(2), {
  env: process.env,
  cwd: process.cwd(),
  stdout: toStdout,
  stderr: toStderr,
  stdin: process.stdin,
}).then(
  (code) => {
    process.exitCode = code
  },
  (error) => {
    toStderr(`error: unexpected error: ${error?.stack || error}\n`)
    process.exitCode = 4
  },
)
