'use strict'
// Reading what the user pipes in: standard input and --rules-file. Each read stops at a bound, so
// `--rules-file /dev/zero` or `yes | keygate check --secret-stdin …` is a usage error instead of
// a process that reads until memory runs out.

const fs = require('node:fs')
const { UsageError } = require('./values.js')

/** The most any input may hold: 1,000 rules of 256 characters take about 260 KB. */
const MAX_INPUT_BYTES = 1 << 20

/** @param {string} what */
function tooLarge(what) {
  return new UsageError(`${what} holds more than ${MAX_INPUT_BYTES / (1 << 20)} MiB; keygate reads at most that`)
}

/**
 * A whole stream as UTF-8 text, refused once it passes MAX_INPUT_BYTES.
 * @param {NodeJS.ReadableStream} stream
 * @returns {Promise<string>}
 */
function readAll(stream) {
  if (readsADirectory(stream)) return Promise.reject(new UsageError('cannot read standard input: it is a directory'))
  return new Promise((resolve, reject) => {
    /** @type {Buffer[]} */
    const chunks = []
    let size = 0
    /** @param {string | Buffer} chunk */
    const onData = (chunk) => {
      const bytes = Buffer.from(chunk)
      size += bytes.length
      if (size > MAX_INPUT_BYTES) {
        stream.removeListener('data', onData)
        stream.pause()
        reject(tooLarge('standard input'))
        return
      }
      chunks.push(bytes)
    }
    stream.on('data', onData)
    stream.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')))
    stream.on('error', reject)
  })
}

/**
 * Whether the stream reads a directory (`keygate … < some/dir`): Node ends such a stream as if it
 * were empty, which `--rules-file -` took for a key with no rules at all.
 * @param {NodeJS.ReadableStream} stream
 */
function readsADirectory(stream) {
  const fd = /** @type {{ fd?: unknown }} */ (stream).fd
  if (typeof fd !== 'number') return false
  try {
    return fs.fstatSync(fd).isDirectory()
  } catch {
    return false
  }
}

/**
 * A file as UTF-8 text, read synchronously and refused once it passes MAX_INPUT_BYTES. A
 * character device (`/dev/zero`) has no size to check first, so the bound is kept while reading.
 * Errors from the file system are thrown as they are (with their `code`).
 * @param {string} file
 * @param {string} what how the message names the input
 */
function readFileBounded(file, what) {
  const fd = fs.openSync(file, 'r')
  try {
    /** @type {Buffer[]} */
    const chunks = []
    let size = 0
    const buffer = Buffer.allocUnsafe(64 * 1024)
    for (;;) {
      const read = fs.readSync(fd, buffer, 0, buffer.length, null)
      if (read === 0) break
      size += read
      if (size > MAX_INPUT_BYTES) throw tooLarge(what)
      chunks.push(Buffer.from(buffer.subarray(0, read)))
    }
    return Buffer.concat(chunks).toString('utf8')
  } finally {
    fs.closeSync(fd)
  }
}

module.exports = { readAll, readFileBounded }
