'use strict'
// A bounded memo of recent decisions, so that a repeated check costs a Map
// lookup and a few comparisons instead of a native call. It is exact: the core
// bumps a generation word (in memory both sides read) on every change that
// could alter any decision — admin calls, setNow, other processes' changes
// and, through a watcher thread, shortly before a key's expiry instant, when
// it also raises a bypass word until the instant has passed. A changed
// generation empties the memo.
//
// Entries are found by the secret's last characters — part of its random
// CRC32 checksum — not by hashing the whole secret: a slot array indexed by
// them, chained on collisions, then one string comparison. On a miss, the
// secret's hint (last four characters) indexes the core's hint filter (a
// bitset of every key's hint), so most unknown secrets are refused without a
// native call or a string hash.

/** Decisions remembered at most; reaching it empties the memo (a flood of keys cannot grow it). */
const MAX_DECISIONS = 65536
/** Slots of the hint-indexed table (a power of two). */
const SLOTS = 65536
/** Longest service/api name worth remembering (longer ones are invalid anyway). */
const MAX_NAME = 256
/** Longest caller IP worth remembering. */
const MAX_IP = 64
/**
 * Uses of keys answered from the memo reach the core within this many ms; the
 * durable store then writes them within a second (lastUsedAt).
 */
const TOUCH_FLUSH_MS = 200

/** charCode → base62 digit, or -1. */
const BASE62 = new Int8Array(128).fill(-1)
for (let i = 0; i < 62; i++) {
  BASE62['0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'.charCodeAt(i)] = i
}

function digit(code) {
  return code < 128 ? BASE62[code] : -1
}

/**
 * The memo slot of a secret: a cheap mix of its last three characters (random
 * checksum characters for real secrets), no validation — the slot's entries
 * are compared with the whole secret anyway.
 */
function slotOf(secret) {
  const n = secret.length
  return ((secret.charCodeAt(n - 1) << 12) ^ (secret.charCodeAt(n - 2) << 6) ^ secret.charCodeAt(n - 3)) & (SLOTS - 1)
}

/**
 * The secret's hint as a number in [0, 62^4), or -1 when its last four
 * characters are not base62 (then it cannot be a secret at all).
 */
function hintOf(secret) {
  const n = secret.length
  if (n < 4) return -1
  const d0 = digit(secret.charCodeAt(n - 4))
  const d1 = digit(secret.charCodeAt(n - 3))
  const d2 = digit(secret.charCodeAt(n - 2))
  const d3 = digit(secret.charCodeAt(n - 1))
  if ((d0 | d1 | d2 | d3) < 0) return -1
  return ((d0 * 62 + d1) * 62 + d2) * 62 + d3
}

/**
 * The decisions remembered for one secret: the first four (service, api, ip)
 * calls in fields compared with ===, which beats a Map for the handful of
 * calls a key typically makes; later ones in nested Maps.
 */
class Entry {
  constructor(secret, ipDependent, next) {
    // V8 lays fields out in the order they are first assigned: what a hit on the first
    // remembered call reads comes first, so that it touches as few cache lines as it can.
    this.secret = secret
    this.ipDependent = ipDependent
    this.n = 0
    this.a0 = ''
    this.s0 = ''
    this.i0 = ''
    /** Reason codes (0 = allowed), as the core numbers them. */
    this.r0 = -1
    /** When this secret was first answered from the memo since the last flush (0: not since). */
    this.usedAt = 0
    /** The next entry in the same slot. */
    this.next = next
    this.a1 = this.s1 = this.i1 = ''
    this.r1 = -1
    this.a2 = this.s2 = this.i2 = ''
    this.r2 = -1
    this.a3 = this.s3 = this.i3 = ''
    this.r3 = -1
    /** service → api → ip → reason, once the four fields are taken. */
    this.more = null
  }

  /** The remembered answer, or undefined. The first two fields here, small enough for V8 to inline. */
  get(service, api, ip) {
    const n = this.n
    if (n > 0 && this.a0 === api && this.s0 === service && this.i0 === ip) return this.r0
    if (n > 1 && this.a1 === api && this.s1 === service && this.i1 === ip) return this.r1
    return n > 2 ? this.getMore(service, api, ip) : undefined
  }

  getMore(service, api, ip) {
    const n = this.n
    if (n > 2 && this.a2 === api && this.s2 === service && this.i2 === ip) return this.r2
    if (n > 3 && this.a3 === api && this.s3 === service && this.i3 === ip) return this.r3
    if (this.more === null) return undefined
    const apis = this.more.get(service)
    if (apis === undefined) return undefined
    const ips = apis.get(api)
    return ips === undefined ? undefined : ips.get(ip)
  }

  set(service, api, ip, reason) {
    switch (this.n) {
      case 0:
        this.s0 = service; this.a0 = api; this.i0 = ip; this.r0 = reason
        break
      case 1:
        this.s1 = service; this.a1 = api; this.i1 = ip; this.r1 = reason
        break
      case 2:
        this.s2 = service; this.a2 = api; this.i2 = ip; this.r2 = reason
        break
      case 3:
        this.s3 = service; this.a3 = api; this.i3 = ip; this.r3 = reason
        break
      default: {
        if (this.more === null) this.more = new Map()
        let apis = this.more.get(service)
        if (apis === undefined) this.more.set(service, (apis = new Map()))
        let ips = apis.get(api)
        if (ips === undefined) apis.set(api, (ips = new Map()))
        ips.set(ip, reason)
      }
    }
    this.n++
  }
}

class DecisionCache {
  constructor(words, hints, touch) {
    this.words = words
    this.hints = hints
    this.touch = touch
    this.slots = new Array(SLOTS).fill(undefined)
    /** Slot numbers in use, so that emptying the memo touches only those. */
    this.filled = []
    this.size = 0
    this.generation = -1
    this.used = []
    this.flushTimer = null
    this.clock = Date.now
  }

  /** Brings the memo in line with the core: empty it if anything changed. Returns true when usable. */
  sync() {
    const generation = this.words[0]
    if (generation === this.generation) return true
    this.reset()
    // Read after the generation: while the core holds the bypass, remember nothing.
    this.generation = Atomics.load(this.words, 1) === 0 ? generation : -1
    return this.generation !== -1
  }

  reset() {
    this.flushUses()
    const slots = this.slots
    for (const i of this.filled) slots[i] = undefined
    this.filled = []
    this.size = 0
  }

  /** False when no key's secret has this hint (so the secret is no key's). */
  mayHold(hint) {
    return (this.hints[hint >>> 5] & (1 << (hint & 31))) !== 0
  }

  /** The remembered reason code (0 = allowed), or undefined. `ip` is a string ('' for none). */
  lookup(secret, service, api, ip) {
    let entry = this.slots[slotOf(secret)]
    while (entry !== undefined) {
      if (entry.secret === secret) {
        const reason = entry.get(service, api, entry.ipDependent ? ip : '')
        if (reason === 0 && entry.usedAt === 0) this.markUsed(entry)
        return reason
      }
      entry = entry.next
    }
    return undefined
  }

  remember(secret, service, api, ip, reason, ipDependent) {
    if (service.length > MAX_NAME || api.length > MAX_NAME || ip.length > MAX_IP) return
    if (this.size >= MAX_DECISIONS) this.reset()
    const slot = slotOf(secret)
    const head = this.slots[slot]
    let entry = head
    while (entry !== undefined && entry.secret !== secret) entry = entry.next
    if (entry === undefined || entry.ipDependent !== ipDependent) {
      // A key's IP rules changed: its old entry (if any) is unreachable behind the new head.
      entry = new Entry(secret, ipDependent, head)
      if (head === undefined) this.filled.push(slot)
      this.slots[slot] = entry
    }
    entry.set(service, api, ipDependent ? ip : '', reason)
    this.size++
  }

  markUsed(entry) {
    entry.usedAt = this.clock()
    this.used.push(entry)
    if (this.flushTimer === null) {
      this.flushTimer = setTimeout(() => this.flushUses(), TOUCH_FLUSH_MS)
      this.flushTimer.unref()
    }
  }

  /** Hands the uses answered from the memo to the core (for lastUsedAt). */
  flushUses() {
    if (this.flushTimer !== null) {
      clearTimeout(this.flushTimer)
      this.flushTimer = null
    }
    if (this.used.length === 0) return
    const secrets = this.used.map((entry) => entry.secret)
    const times = this.used.map((entry) => entry.usedAt)
    for (const entry of this.used) entry.usedAt = 0
    this.used = []
    this.touch(secrets, times)
  }
}

module.exports = { DecisionCache, hintOf, MAX_DECISIONS }
