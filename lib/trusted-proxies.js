'use strict'
// The HTTP guard's trusted proxies: the `trustProxy` option read into a predicate, and the
// client address found by walking X-Forwarded-For from the right past trusted hops.

const net = require('node:net')
const { invalidArgument, quote } = require('./errors.js')
const { isArray, ownElements } = require('./args.js')

/**
 * @typedef {import('node:http').IncomingMessage} IncomingMessage
 * @typedef {(address: string, hop: number) => boolean} TrustPredicate
 */

/** @type {Record<string, [address: string, prefix: number, type: 'ipv4' | 'ipv6'][] | undefined>} */
const PRESETS = {
  loopback: [
    ['127.0.0.0', 8, 'ipv4'],
    ['::1', 128, 'ipv6'],
  ],
  linklocal: [
    ['169.254.0.0', 16, 'ipv4'],
    ['fe80::', 10, 'ipv6'],
  ],
  uniquelocal: [
    ['10.0.0.0', 8, 'ipv4'],
    ['172.16.0.0', 12, 'ipv4'],
    ['192.168.0.0', 16, 'ipv4'],
    ['fc00::', 7, 'ipv6'],
  ],
}

/**
 * The trustProxy option as a predicate `(address, hop) => boolean`, or null.
 * @param {unknown} option as given: checked here
 * @returns {TrustPredicate | null}
 */
function trustPredicate(option) {
  if (option === undefined || option === null || option === false) return null
  if (typeof option === 'function') {
    return (address, hop) => {
      try {
        return option(address, hop) === true
      } catch {
        return false
      }
    }
  }
  const single = typeof option === 'string'
  if (single && option.includes(',')) {
    // Express's 'trust proxy' takes 'loopback, 10.0.0.0/8'; here that would be one entry, refused as no address.
    throw invalidArgument(`options.trustProxy ${quote(option)} is one address or range: give several as an array`)
  }
  const list = single ? [option] : option
  if (!isArray(list, 'options.trustProxy')) {
    throw invalidArgument('options.trustProxy must be an array of IP addresses and CIDR ranges, one of them, a function, or false or null (no proxy trusted)')
  }
  const blocks = new net.BlockList()
  // A hole is a missing entry, never one inherited from a polluted prototype.
  ownElements(list, (entry, index) => {
    const i = single ? '' : `[${index}]`
    if (typeof entry !== 'string') throw invalidArgument(`options.trustProxy${i} must be a string`)
    const preset = PRESETS[entry]
    if (preset !== undefined) {
      for (const [address, prefix, type] of preset) blocks.addSubnet(address, prefix, type)
      return
    }
    const slash = entry.indexOf('/')
    const address = slash < 0 ? entry : entry.slice(0, slash)
    const family = net.isIP(address)
    if (family === 0) {
      throw invalidArgument(`options.trustProxy${i} ${quote(entry)} is not an IP address, a CIDR range or one of loopback, linklocal, uniquelocal`)
    }
    const type = family === 4 ? 'ipv4' : 'ipv6'
    if (slash < 0) {
      blocks.addAddress(address, type)
      return
    }
    const prefixText = entry.slice(slash + 1)
    const prefix = Number(prefixText)
    if (!/^\d{1,3}$/.test(prefixText) || prefix > (family === 4 ? 32 : 128)) {
      throw invalidArgument(`options.trustProxy${i} ${quote(entry)} has an invalid prefix length`)
    }
    blocks.addSubnet(address, prefix, type)
  })
  return (address) => {
    const family = net.isIP(address)
    return family !== 0 && blocks.check(address, family === 4 ? 'ipv4' : 'ipv6')
  }
}

/**
 * One X-Forwarded-For entry as a bare address (brackets and ports removed), or null.
 * @param {string} entry
 */
function forwardedAddress(entry) {
  let a = entry.trim()
  if (a.charCodeAt(0) === 91 /* [ */) {
    const end = a.indexOf(']')
    if (end < 0) return null
    const rest = a.slice(end + 1)
    if (rest !== '' && !/^:\d{1,5}$/.test(rest)) return null
    a = a.slice(1, end)
    return net.isIPv6(a) ? a : null
  }
  if (net.isIP(a) !== 0) return a
  const colon = a.indexOf(':')
  if (colon > 0 && a.indexOf(':', colon + 1) < 0 && /^\d{1,5}$/.test(a.slice(colon + 1))) {
    const v4 = a.slice(0, colon)
    if (net.isIPv4(v4)) return v4
  }
  return null
}

/** Sentinel: a trusted hop forwarded an X-Forwarded-For the guard cannot read. */
const BAD_FORWARDED = Symbol('bad X-Forwarded-For')

/**
 * The client address: the socket's peer, or — when that peer is a trusted proxy — the
 * X-Forwarded-For entries walked from the right, skipping trusted hops.
 * @param {IncomingMessage} req
 * @param {TrustPredicate | null} trust
 * @param {string | undefined} forwardedFor
 * @returns {string | undefined | typeof BAD_FORWARDED}
 */
function clientAddress(req, trust, forwardedFor) {
  const peer = req.socket == null ? undefined : req.socket.remoteAddress
  if (trust === null || typeof peer !== 'string' || forwardedFor === undefined) return peer
  if (!trust(peer, 0)) return peer
  const entries = forwardedFor.split(',')
  let hop = 0
  for (let i = entries.length - 1; i >= 0; i--) {
    const address = forwardedAddress(entries[i])
    if (address === null) return BAD_FORWARDED
    hop++
    if (i === 0 || !trust(address, hop)) return address
  }
  return peer
}

module.exports = { trustPredicate, clientAddress, BAD_FORWARDED }
