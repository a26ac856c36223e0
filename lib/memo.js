'use strict'
// The memo: recent decisions, so that a repeated check costs a few comparisons
// instead of a native call. The contract it keeps with the core — the shared
// signal words and hint filter, who writes them, the order of the checks below,
// the packed verdict — is documented once, in crates/keygate-core/src/memo.rs;
// its constants come from the binding.
//
// In short: the core bumps the generation word on every change that could alter
// any decision (admin calls, setNow, other processes' changes and, through the
// expiry watch, within the two seconds before each key's expiry instant), and
// never lets a decision whose key expires within those two seconds be
// remembered (a transient verdict). A changed generation empties the memo; while
// the flags word is non-zero (a shared store that cannot vouch it is current,
// or no expiry watch) nothing is remembered or answered here.
//
// Layout: one flat array, four-way set associative, of bounded size (it starts small and
// grows to SETS sets as calls fill it; see FIRST_SET_BITS). A set is
// chosen by a cheap mix of the secret's last characters (its random CRC32
// checksum) and of the call's names, so that a repeated call lands on its own
// entry at the first probe: no hashing of the whole secret, no per-key object,
// no walk over a key's other calls, branches that predict (a call is found in
// its set's first entry nine times in ten on the benchmark's workload, and four
// ways leave no set overflowing there). Each entry is four fields (32 bytes):
//
//   secret, service, api, code
//
// `code` is the core's reason code plus the entry's own flags. A plain code —
// no flags — is the common hit and costs one comparison. A key with IP rules
// has flag PER_ADDRESS: the decision holds only for the caller address kept
// beside the table ('' for none). The bound on its size bounds memory: a flood of
// keys or calls only evicts entries. Entries hold the caller's own string objects (so
// that a caller reusing them compares pointers); keygate/http hands in copies,
// never slices of a request line that V8 would keep alive with them.
//
// A key's first check is not remembered (its verdict says so), whether the key is new, just
// loaded or just changed: a key checked once, as at a start or in a sweep over many new keys,
// would cost a table write, a cache miss, that no hit repays. Its next check is remembered.
//
// On a miss, the secret's hint (last four characters) indexes the core's hint
// filter (a bitset of every key's hint), so most unknown secrets are refused
// without a native call or a string hash. The filter is 1.8 MB read at random:
// a cache miss on every lookup, which buys nothing while the secrets presented
// are keys'. So the memo counts the secrets that are no key's among the calls
// it did not answer (refused here, or so said by the core's verdict), and
// consults the filter only while they come: fewer than HINT_WANTED in a window
// of HINT_WINDOW calls that reached the core turn the lookups off; HINT_WANTED
// of them turn them back on at once. Looking or not, the answer is the same
// (the core refuses an unknown secret too); only its cost differs.
//
// When calls are too many and too spread for the table (a wide key population:
// fewer hits than evictions over a window), probing and filling it costs more
// than it saves; the memo then steps aside for all but one call in
// sixteen, through which it sees the workload turn repetitive again.

// Node's own timers, not the global ones a test environment puts in their place: jest's jsdom
// environment's setTimeout returns a number (no unref(), and isAllowed threw a TypeError), and
// fake timers would hand uses over only when the test advances its clock.
const { setTimeout, clearTimeout } = require('node:timers')
const { GENERATION_WORD, FLAGS_WORD, VERDICT_REASON_MASK, HINT_DIGITS, MAX_NAME_LENGTH } = require('./native.js')

/** Sets in the table at most (a power of two ≤ 2^16). */
const SET_BITS = 14
const SETS = 1 << SET_BITS
/**
 * Sets in a new table: it grows (SET_GROWTH_BITS at a time, emptied) when a call would evict an
 * entry that a larger table would keep apart from it (see `separable`), up to SETS. A store that
 * remembers a few calls (a test's) holds 32 KiB, not 2 MiB: thousands of stores made and dropped
 * by a synchronous run, whose hand-over timers hold their memos until the event loop turns, would
 * otherwise hold gigabytes.
 */
const FIRST_SET_BITS = 8
const SET_GROWTH_BITS = 3
/**
 * Bits of the presence filter (a power of two, more than SETS): a bit per
 * slice of a set, so that few probes for calls the memo does not hold — an
 * unknown secret's, say — find their bit set and go on to the table.
 */
const FILTER_BITS = 17
const WAYS = 4
/** Entries the memo holds at most. */
const MAX_DECISIONS = WAYS * SETS
const FIELDS = 4
const SET_FIELDS = WAYS * FIELDS
/** Longest service/api name worth remembering (longer ones are invalid anyway); a WebDAV memo's method too. */
const MAX_NAME = MAX_NAME_LENGTH
/** Longest caller IP worth remembering. */
const MAX_IP = 64
/**
 * What free entries hold in every field: a string that no secret or name
 * equals (both are checked to be longer), so that the comparisons of a probe
 * only ever see strings and V8 compiles them as string comparisons.
 */
const FREE = ''
/** Bits of an entry's code: the core's reason code (0 = allowed)… */
const REASON_BITS = VERDICT_REASON_MASK
/** …an allowed decision whose use has not been handed to the core since the last flush (lastUsedAt)… */
const UNNOTED = REASON_BITS + 1
/** …and a key with IP rules: the decision holds for the entry's caller address only. */
const PER_ADDRESS = UNNOTED << 1
/**
 * Uses of keys answered from the memo reach the core within this many ms; the
 * durable store then writes them within a second (lastUsedAt). An entry notes
 * its first use of each such window, with the time of that use.
 */
const TOUCH_FLUSH_MS = 200
/**
 * The thrash detector: every THRASH_WINDOW decisions the memo took part in (hits, and
 * misses it remembered), fewer hits than evictions means the calls are too many and too
 * spread for the table — each miss then costs probes of a cold table and an entry
 * evicting another, and an allowed hit still hands its use to the core (lastUsedAt),
 * which costs about what the check it saved would have. (Evictions, not misses: a memo
 * filling up after a start or a change misses without thrashing.) While that lasts, only one call
 * in THRASH_SAMPLE uses the memo (so the detector still sees the workload change back).
 */
const THRASH_WINDOW = 4096
/** Uses noted by the memo are handed over, if due, every this many decisions it takes part in (see `judge`); divides THRASH_WINDOW. */
const USE_CHECK_EVERY = 256
const THRASH_SAMPLE = 16
/**
 * The hint filter's upkeep: over each HINT_WINDOW calls that reached the core, fewer than
 * HINT_WANTED secrets that are no key's (refused by the filter or by the core: about 3%) stop
 * the filter lookups; that many turn them back on at once (a flood of unknown secrets reaches
 * the core HINT_WANTED times, then the filter refuses it). Measured on 200,000 keys: an
 * unknown secret costs ~100 ns refused here, ~470 ns refused by the core, and the lookups
 * cost each known key's check ~100-200 ns (wide), so they pay only above a share of about
 * 25%; the 3% kept errs towards looking.
 */
const HINT_WINDOW = 1024
const HINT_WANTED = 32

/** charCode → base62 digit, or -1 (the core's hint arithmetic, crates/keygate-core/src/memo/hints.rs). */
const BASE62 = new Int8Array(128).fill(-1)
for (let i = 0; i < HINT_DIGITS.length; i++) {
  BASE62[HINT_DIGITS.charCodeAt(i)] = i
}

/** @param {number} code a UTF-16 code unit */
function digit(code) {
  return code < 128 ? BASE62[code] : -1
}

/**
 * The secret's hint as a number in [0, 62^4), or -1 when its last four
 * characters are not base62 (then it cannot be a secret at all).
 * @param {string} secret
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
 * A 32-bit hash of a call: its top FILTER_BITS index the presence filter, its
 * top bits (as many as the table has sets) its set. The secret's last three characters (random for
 * real secrets) pick the region; the names' lengths and three characters of the
 * api spread one key's calls over it (calls differing elsewhere share a set of
 * four entries: more such calls of one key are answered, exactly, by the core).
 * Callers check `fits` first: the secret has at least three characters and the
 * names at least one, so no read is out of bounds (which would cost V8 a
 * deoptimisation).
 * @param {string} secret
 * @param {string} service
 * @param {string} api
 */
function hashOf(secret, service, api) {
  const n = secret.length
  const m = api.length
  const k = service.length
  const s = (secret.charCodeAt(n - 1) << 14) ^ (secret.charCodeAt(n - 2) << 7) ^ secret.charCodeAt(n - 3)
  // The api's middle and last two characters (names often differ only in a suffix);
  // `m - 2 + (1 >> (m - 1))` is m - 2, or 0 for a one-character name.
  const middle = api.charCodeAt(m >> 1)
  const beforeLast = api.charCodeAt(m - 2 + (1 >> (m - 1)))
  const names = Math.imul(m ^ (k << 8) ^ (middle << 16) ^ (beforeLast << 24), 0x85ebca6b) ^ api.charCodeAt(m - 1)
  return Math.imul(s ^ names, 0x9e3779b1) >>> 0
}

/**
 * The entries, FIELDS to an entry: secret, service and api are strings, code a number. `any`
 * because an array type cannot give fields at fixed offsets types of their own, and casting
 * each read of this hot path would only repeat the layout above.
 * @typedef {any[]} Table
 */

/**
 * A call's caller address as the memo is given it (checked by the caller).
 * @typedef {string | undefined | null} CallerIp
 */

class Memo {
  /**
   * @param {Uint32Array} words the core's signal words (generation, flags)
   * @param {Uint32Array} hints the core's hint filter
   * @param {number} secretLength the length of this store's secrets
   * @param {(secrets: string[], times: number[]) => void} touch hands uses answered here to the core
   * @param {number} [maxName] longest second name worth remembering (the api; a WebDAV memo's path)
   */
  constructor(words, hints, secretLength, touch, maxName = MAX_NAME) {
    this.words = words
    this.hints = hints
    this.secretLength = secretLength
    this.touch = touch
    this.maxName = maxName
    /** The entries; allocated at the first decision remembered, and grown (see FIRST_SET_BITS). */
    this.table = EMPTY
    /** 32 - the table's set bits: a call's set is its hash's top bits. */
    this.setShift = 32 - FIRST_SET_BITS
    /**
     * Caller addresses of IP-dependent entries, by entry number (offset / FIELDS, FIELDS = 4); allocated at the first.
     * @type {string[]}
     */
    this.ips = EMPTY
    /**
     * The presence filter: a bit for each hash slice (top FILTER_BITS) that
     * entries were remembered for (16 KiB, so it stays in the CPU's near caches).
     * A probe for a call nothing was remembered for, such as an unknown secret's,
     * touches only this, not the table.
     */
    this.present = new Int32Array(1 << (FILTER_BITS - 5))
    /**
     * The sets in use, so that emptying the memo touches only those.
     * @type {number[]}
     */
    this.filled = []
    this.generation = -1
    /**
     * Allowed entries used since the last flush: their offsets, secrets and the times of those uses.
     * @type {number[]}
     */
    this.notedAt = []
    /** @type {string[]} */
    this.usedSecrets = []
    /** @type {number[]} */
    this.usedTimes = []
    /** @type {NodeJS.Timeout | null} */
    this.flushTimer = null
    /** @type {() => number} */
    this.clock = Date.now
    /**
     * Thrash detector: on while the memo answers too few calls; decisions left before `judge`
     * (USE_CHECK_EVERY at a time) and such stretches left in this window, misses and evictions
     * in it; the sampling tick.
     */
    this.thrashing = false
    this.window = USE_CHECK_EVERY
    this.stretches = THRASH_WINDOW / USE_CHECK_EVERY
    this.misses = 0
    this.evictions = 0
    this.tick = 0
    /** Hint filter upkeep: whether it is consulted; core calls left in this window, and the secrets in it that were no key's. */
    this.filtering = true
    this.screenings = HINT_WINDOW
    this.strangers = 0
  }

  /**
   * The remembered reason code (0 = allowed) of a call, or -1. The arguments'
   * types are checked by the caller: strings, and `ip` a string, undefined or null.
   * While the memo thrashes, most calls skip it (-1 at once).
   * @param {string} secret
   * @param {string} service
   * @param {string} api
   * @param {CallerIp} ip
   * @returns {number}
   */
  find(secret, service, api, ip) {
    if (this.thrashing && (++this.tick & (THRASH_SAMPLE - 1)) !== 0) return -1
    if (this.words[GENERATION_WORD] !== this.generation && !this.sync()) return -1
    const table = this.table
    if (table.length === 0 || !this.fits(secret, service, api)) return -1
    const hash = hashOf(secret, service, api)
    const bit = hash >>> (32 - FILTER_BITS)
    if ((this.present[bit >>> 5] & (1 << (bit & 31))) === 0) return -1
    const o = (hash >>> this.setShift) * SET_FIELDS
    if (table[o] === secret && table[o + 2] === api && table[o + 1] === service) {
      const code = table[o + 3]
      if (code < UNNOTED) {
        if (--this.window === 0) this.judge()
        return code
      }
      const reason = this.flagged(o, code, ip)
      if (reason >= 0) return this.hit(reason)
    }
    return this.findInOtherWays(table, o, secret, service, api, ip)
  }

  /**
   * Counts a hit for the thrash detector; returns `reason`.
   * @param {number} reason
   * @returns {number}
   */
  hit(reason) {
    if (--this.window === 0) this.judge()
    return reason
  }

  /**
   * Every USE_CHECK_EVERY decisions the memo takes part in: hands the uses over when the oldest
   * was noted TOUCH_FLUSH_MS ago or more. The timer does that while the event loop turns; in a
   * synchronous run of checks (a loop of isAllowed calls, a long synchronous handler, a worker
   * busy checking) it cannot fire, and an entry noted at the run's start would note nothing more
   * until the run ends, leaving lastUsedAt at the run's first use. One clock read per
   * USE_CHECK_EVERY decisions. At the end of a window of the thrash detector, also: fewer hits
   * than evictions turn the memo (mostly) off.
   */
  judge() {
    this.window = USE_CHECK_EVERY
    if (--this.stretches === 0) {
      this.stretches = THRASH_WINDOW / USE_CHECK_EVERY
      this.thrashing = THRASH_WINDOW - this.misses < this.evictions
      this.misses = 0
      this.evictions = 0
    }
    if (this.usedTimes.length !== 0 && this.clock() - this.usedTimes[0] >= TOUCH_FLUSH_MS) this.flushUses()
  }

  /**
   * Whether a call can have an entry: a secret of this store's length, names not empty.
   * @param {string} secret
   * @param {string} service
   * @param {string} api
   */
  fits(secret, service, api) {
    return secret.length === this.secretLength && service.length !== 0 && api.length !== 0
  }

  /**
   * `find` in the set at `o` beyond its first entry.
   * @param {Table} table
   * @param {number} o
   * @param {string} secret
   * @param {string} service
   * @param {string} api
   * @param {CallerIp} ip
   * @returns {number}
   */
  findInOtherWays(table, o, secret, service, api, ip) {
    for (let way = 1; way < WAYS; way++) {
      const e = o + way * FIELDS
      if (table[e] === FREE) return -1
      if (table[e] === secret && table[e + 2] === api && table[e + 1] === service) {
        const code = table[e + 3]
        if (code < UNNOTED) return this.hit(code)
        const reason = this.flagged(e, code, ip)
        if (reason >= 0) return this.hit(reason)
      }
    }
    return -1
  }

  /**
   * The reason of the entry at `o` whose code has flags (-1 for another caller address); notes a use.
   * @param {number} o
   * @param {number} code
   * @param {CallerIp} ip
   */
  flagged(o, code, ip) {
    if ((code & PER_ADDRESS) !== 0 && this.ips[o >>> 2] !== (ip == null ? '' : ip)) return -1
    if ((code & UNNOTED) === 0) return code & REASON_BITS
    this.noteUse(o)
    return 0
  }

  /** Brings the memo in line with the core: empty it if anything changed. Returns true when usable. */
  sync() {
    const generation = this.words[GENERATION_WORD]
    if (generation === this.generation) return true
    this.reset()
    // Read after the generation: while any flag is raised, remember nothing.
    this.generation = Atomics.load(this.words, FLAGS_WORD) === 0 ? generation : -1
    return this.generation !== -1
  }

  reset() {
    this.flushUses()
    // Nothing remembered, no presence bit set: a memo kept off (memoOffWords) resets at each call.
    if (this.filled.length === 0) return
    const table = this.table
    for (const set of this.filled) table.fill(FREE, set * SET_FIELDS, (set + 1) * SET_FIELDS)
    this.filled = []
    this.present.fill(0)
  }

  /**
   * Whether `secret`, in a call the memo did not answer, is refused without asking the core:
   * its hint is no key's (or it has none). Consults the hint filter only while secrets that
   * are no key's come (see HINT_WINDOW).
   * @param {string} secret
   */
  refuses(secret) {
    if (!this.filtering) return false
    const hint = hintOf(secret)
    if (hint >= 0 && (this.hints[hint >>> 5] & (1 << (hint & 31))) !== 0) return false
    // Counted up to what keeps the filter on only: a flood of them writes nothing.
    if (this.strangers < HINT_WANTED) this.strangers++
    return true
  }

  /**
   * Counts a call the core decided for the hint filter's upkeep (`stranger`: its secret was no
   * key's). The window ends after HINT_WINDOW of them: the filter stays on only if HINT_WANTED
   * secrets that were no key's came meanwhile (refused here or by the core); that many turn it
   * on at once.
   * @param {boolean} stranger
   */
  decided(stranger) {
    if (stranger && ++this.strangers >= HINT_WANTED) this.filtering = true
    if (--this.screenings === 0) {
      this.filtering = this.strangers >= HINT_WANTED
      this.strangers = 0
      this.screenings = HINT_WINDOW
    }
  }

  /**
   * Remembers the core's reason code for a call of a known key; `perAddress`
   * says whether the key has IP rules (then the decision holds for this `ip` only).
   * A call takes its set's first free entry, else the last: entries before it
   * stay until the memo is emptied, so calls competing for a set still find
   * most of them at once.
   * @param {string} secret
   * @param {string} service
   * @param {string} api
   * @param {CallerIp} ip
   * @param {number} reason
   * @param {boolean} perAddress
   */
  remember(secret, service, api, ip, reason, perAddress) {
    // While thrashing, only the calls `find` sampled (the tick it left) are remembered.
    if (this.thrashing && (this.tick & (THRASH_SAMPLE - 1)) !== 0) return
    // Only under the generation the call was decided in (a change applied meanwhile bumped
    // it), and never while a flag is raised (generation -1, which no word equals).
    if (this.words[GENERATION_WORD] !== this.generation || !this.fits(secret, service, api)) return
    this.misses++
    if (--this.window === 0) this.judge()
    const callerIp = ip == null ? '' : ip
    if (service.length > MAX_NAME || api.length > this.maxName || callerIp.length > MAX_IP) return
    const hash = hashOf(secret, service, api)
    if (this.table.length === 0) this.table = new Array((1 << (32 - this.setShift)) * SET_FIELDS).fill(FREE)
    // A full set in a table below its size: grow it rather than evict, if growing can separate the calls.
    if (this.setShift > 32 - SET_BITS) {
      const full = (hash >>> this.setShift) * SET_FIELDS
      if (this.table[full + (WAYS - 1) * FIELDS] !== FREE && this.separable(full, hash)) this.grow()
    }
    const table = this.table
    const bit = hash >>> (32 - FILTER_BITS)
    this.present[bit >>> 5] |= 1 << (bit & 31)
    const set = hash >>> this.setShift
    let o = set * SET_FIELDS
    if (table[o] === FREE) {
      this.filled.push(set)
    } else {
      let way = 1
      while (way < WAYS - 1 && table[o + way * FIELDS] !== FREE) way++
      o += way * FIELDS
      if (table[o] !== FREE) this.evictions++
    }
    table[o] = secret
    table[o + 1] = service
    table[o + 2] = api
    table[o + 3] = reason | (reason === 0 ? UNNOTED : 0) | (perAddress ? PER_ADDRESS : 0)
    if (perAddress) {
      if (this.ips.length === 0) this.ips = new Array(table.length / FIELDS).fill('')
      this.ips[o >>> 2] = callerIp
    }
  }

  /**
   * Whether the largest table would put the call of `hash` in another set than some entry of the
   * full set at `o`. Calls that share a set at every size (names of one length with the same
   * middle and last two characters; one call of a key with IP rules from many addresses) are
   * only evicted by one another: growing for them would empty the memo and hold 2 MiB for nothing.
   * @param {number} o
   * @param {number} hash
   */
  separable(o, hash) {
    const table = this.table
    const set = hash >>> (32 - SET_BITS)
    for (let e = o; e < o + SET_FIELDS; e += FIELDS) {
      if (hashOf(table[e], table[e + 1], table[e + 2]) >>> (32 - SET_BITS) !== set) return true
    }
    return false
  }

  /**
   * A table SET_GROWTH_BITS larger (at most SETS sets), empty: the entries are dropped, not
   * moved (the core answers them again), and the uses noted are handed over first.
   */
  grow() {
    this.reset()
    this.setShift = Math.max(32 - SET_BITS, this.setShift - SET_GROWTH_BITS)
    this.table = new Array((1 << (32 - this.setShift)) * SET_FIELDS).fill(FREE)
    this.ips = EMPTY
  }

  /**
   * Notes the use of the allowed entry at `o`, now, for the next flush (lastUsedAt).
   * @param {number} o
   */
  noteUse(o) {
    // An entry evicted and remembered again notes again: hand over a full list at once
    // rather than let it grow until the event loop turns.
    if (this.notedAt.length >= MAX_DECISIONS) this.flushUses()
    const table = this.table
    table[o + 3] &= ~UNNOTED
    this.notedAt.push(o)
    this.usedSecrets.push(table[o])
    this.usedTimes.push(this.clock())
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
    if (this.usedSecrets.length === 0) return
    const secrets = this.usedSecrets
    const times = this.usedTimes
    const table = this.table
    // Allowed entries noted since the last flush note their next use again.
    for (const o of this.notedAt) if ((table[o + 3] & (REASON_BITS | UNNOTED)) === 0) table[o + 3] |= UNNOTED
    this.notedAt = []
    this.usedSecrets = []
    this.usedTimes = []
    this.touch(secrets, times)
  }
}

/**
 * The table of a memo that has remembered nothing yet (shared, never written:
 * `remember` replaces it first). Made like a real table, so that V8 sees one
 * kind of array at the memo's loads.
 * @type {Table}
 */
const EMPTY = new Array(1).fill(FREE)
EMPTY.length = 0

/**
 * Signal words of a memo that stays off, for a store whose own words cannot be shared: a flag
 * is raised for good, so the memo never remembers (and each call goes to the core).
 * @returns {Uint32Array}
 */
function memoOffWords() {
  const words = new Uint32Array(Math.max(GENERATION_WORD, FLAGS_WORD) + 1)
  words[FLAGS_WORD] = 1
  return words
}

/** @type {Uint32Array | null} */
let everyHintBits = null

/**
 * A hint filter with every hint's bit set (refusing no secret), for a store whose own filter
 * cannot be shared; made once (1.8 MB), for all such stores.
 * @returns {Uint32Array}
 */
function everyHint() {
  if (everyHintBits === null) everyHintBits = new Uint32Array(Math.ceil(62 ** 4 / 32)).fill(0xffffffff)
  return everyHintBits
}

module.exports = { Memo, hintOf, memoOffWords, everyHint, HINT_WINDOW, HINT_WANTED, USE_CHECK_EVERY, TOUCH_FLUSH_MS }
