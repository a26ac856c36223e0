'use strict'
// Child process of the PostgreSQL fault tests: a TCP proxy on a free port of 127.0.0.1 to
// <host>:<port>, driven by one command a line on stdin, one JSON line of answer on stdout.
//
//   node tcp-proxy.js <host> <port>      → { port } once listening
//   pause  — stop forwarding both ways, closing nothing (a half-open connection); new
//            connections are accepted and held too → { paused: n }
//   resume — forward again, delivering what was held → { resumed: n }
//   cut    — reset every open connection (both sides); new ones are forwarded → { cut: n }
//   count  → { open: n, accepted: n } (accepted: every connection made through it so far)
const net = require('node:net')
const readline = require('node:readline')

const [host, port] = process.argv.slice(2)
/** @type {Set<{ client: net.Socket, server: net.Socket, held: boolean, queue: Array<[net.Socket, Buffer]> }>} */
const pairs = new Set()
let paused = false
let accepted = 0

// Forwarded by hand, not piped: a pipe resumes a paused source when its destination drains.
function hold(pair) {
  pair.held = true
  pair.client.pause()
  pair.server.pause()
}

function release(pair) {
  pair.held = false
  for (const [to, chunk] of pair.queue.splice(0)) to.write(chunk)
  pair.client.resume()
  pair.server.resume()
}

function forward(pair, from, to) {
  from.on('data', (chunk) => {
    if (pair.held) pair.queue.push([to, chunk])
    else to.write(chunk)
  })
}

const proxy = net.createServer((client) => {
  accepted++
  const server = net.connect(Number(port), host)
  const pair = { client, server, held: false, queue: [] }
  pairs.add(pair)
  client.setNoDelay(true)
  server.setNoDelay(true)
  forward(pair, client, server)
  forward(pair, server, client)
  const end = () => {
    pairs.delete(pair)
    client.destroy()
    server.destroy()
  }
  client.on('error', end)
  server.on('error', end)
  client.on('close', end)
  server.on('close', end)
  if (paused) hold(pair)
})

proxy.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: proxy.address().port })}\n`)
})

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  const op = line.trim()
  if (op === 'pause') {
    paused = true
    for (const pair of pairs) hold(pair)
    process.stdout.write(`${JSON.stringify({ paused: pairs.size })}\n`)
  } else if (op === 'resume') {
    paused = false
    for (const pair of pairs) release(pair)
    process.stdout.write(`${JSON.stringify({ resumed: pairs.size })}\n`)
  } else if (op === 'cut') {
    const n = pairs.size
    for (const pair of [...pairs]) {
      pair.client.resetAndDestroy()
      pair.server.resetAndDestroy()
      pairs.delete(pair)
    }
    process.stdout.write(`${JSON.stringify({ cut: n })}\n`)
  } else if (op === 'count') {
    process.stdout.write(`${JSON.stringify({ open: pairs.size, accepted })}\n`)
  }
})
process.stdin.on('end', () => process.exit(0))
