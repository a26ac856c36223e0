'use strict'
// A bounded memo of recent decisions, so that a repeated check costs a few Map
// lookups instead of a native call. It is exact: the core bumps a generation
// word (in memory both sides read) on every change that could alter any
// decision — admin calls, setNow, and, through a watcher thread, shortly
// before a key's expiry instant, when it also raises a bypass word until the
// instant has passed. A changed generation empties the memo.

/** Decisions remembered at most; reaching it empties the memo (a flood of keys cannot grow it). */
const MAX_DECISIONS = 65536
/** Longest service/api name worth remembering (longer ones are invalid anyway). */
const MAX_NAME = 256
/** Uses of keys answered from the memo reach the core within this many ms (lastUsedAt). */
const TOUCH_FLUSH_MS = 1000

class Entry {
  constructor(ipDependent) {
    /** service → api → boolean (or, for keys with IP rules, → ip → boolean) */
    this.byService = new Map()
    this.ipDependent = ipDependent
    /** When this secret was first answered from the memo since the last flush (0: not since). */
    this.usedAt = 0
  }
}

class DecisionCache {
  constructor(words, touch) {
    this.words = words
    this.touch = touch
    this.secrets = new Map()
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
    this.secrets.clear()
    this.size = 0
  }

  /** true/false when remembered, undefined when not. */
  lookup(secret, service, api, ip) {
    const entry = this.secrets.get(secret)
    if (entry === undefined) return undefined
    const apis = entry.byService.get(service)
    if (apis === undefined) return undefined
    let allowed = apis.get(api)
    if (entry.ipDependent && allowed !== undefined) allowed = allowed.get(ip === undefined ? '' : ip)
    if (allowed === true && entry.usedAt === 0) this.markUsed(entry, secret)
    return allowed
  }

  remember(secret, service, api, ip, allowed, ipDependent) {
    if (service.length > MAX_NAME || api.length > MAX_NAME || (ip !== undefined && ip.length > 64)) return
    if (this.size >= MAX_DECISIONS) this.reset()
    let entry = this.secrets.get(secret)
    if (entry === undefined || entry.ipDependent !== ipDependent) {
      entry = new Entry(ipDependent)
      this.secrets.set(secret, entry)
    }
    let apis = entry.byService.get(service)
    if (apis === undefined) {
      apis = new Map()
      entry.byService.set(service, apis)
    }
    if (ipDependent) {
      let ips = apis.get(api)
      if (ips === undefined) {
        ips = new Map()
        apis.set(api, ips)
      }
      ips.set(ip === undefined ? '' : ip, allowed)
    } else {
      apis.set(api, allowed)
    }
    this.size++
  }

  markUsed(entry, secret) {
    entry.usedAt = this.clock()
    this.used.push(secret, entry)
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
    const secrets = []
    const times = []
    for (let i = 0; i < this.used.length; i += 2) {
      const entry = this.used[i + 1]
      secrets.push(this.used[i])
      times.push(entry.usedAt)
      entry.usedAt = 0
    }
    this.used = []
    this.touch(secrets, times)
  }
}

module.exports = { DecisionCache, MAX_DECISIONS }
