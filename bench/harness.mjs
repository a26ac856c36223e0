// Timing and reporting helpers.

import { readFileSync } from 'node:fs'
import os from 'node:os'

export const gcAvailable = typeof globalThis.gc === 'function'

export function fullGc() {
  if (!gcAvailable) return
  globalThis.gc()
  globalThis.gc()
}

/**
 * Two scavenges: empties the young generation and promotes what survives (V8 promotes
 * objects that survive two), such as a sample's freshly built argument arrays, so that
 * scavenges during the sample do not copy them again and again.
 */
export function minorGc() {
  if (!gcAvailable) return
  try {
    globalThis.gc({ type: 'minor' })
    globalThis.gc({ type: 'minor' })
  } catch {
    globalThis.gc()
  }
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * A fresh timing loop. Each (implementation, workload) pair gets its own compiled copy
 * (`new Function` makes a new function, with its own type feedback), so that the call
 * site `impl.isAllowed(...)` stays monomorphic and no implementation pays for another's
 * shapes. Returns a checksum of the answers: Σ (index + 1) over the allowed calls.
 */
export function makeLoop() {
  return new Function(
    'impl',
    'secrets',
    'services',
    'apis',
    'n',
    `'use strict'
    const len = secrets.length
    let sum = 0
    let j = 0
    for (let i = 0; i < n; i++) {
      if (impl.isAllowed(secrets[j], services[j], apis[j])) sum += j + 1
      if (++j === len) j = 0
    }
    return sum`,
  )
}

/** The checksum the loop must return, from the expected answers. */
export function expectedSum(expected, n) {
  const len = expected.length
  let sum = 0
  let j = 0
  for (let i = 0; i < n; i++) {
    if (expected[j]) sum += j + 1
    if (++j === len) j = 0
  }
  return sum
}

/** A copy of a string that shares nothing with it (no cached hash, not the same object). */
export function freshCopy(text) {
  return Buffer.from(text, 'latin1').toString('latin1')
}

export function median(values) {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

export function summarize(samples) {
  return {
    median: median(samples),
    min: Math.min(...samples),
    max: Math.max(...samples),
    samples: samples.map((x) => Math.round(x * 100) / 100),
  }
}

/**
 * CPU time of the whole machine and of this process (with its waited-for children), to
 * tell how much other processes ran during a measurement. Linux only; null elsewhere.
 */
export function cpuSnapshot() {
  try {
    const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number)
    // user nice system idle iowait irq softirq steal
    const busy = cpu[0] + cpu[1] + cpu[2] + cpu[5] + cpu[6] + (cpu[7] || 0)
    const self = readFileSync('/proc/self/stat', 'utf8')
    const fields = self
      .slice(self.lastIndexOf(')') + 2)
      .split(' ')
      .map(Number)
    // fields[11..14] = utime stime cutime cstime (stat fields 14–17)
    const own = fields[11] + fields[12] + fields[13] + fields[14]
    return { busy, own, wall: Date.now() }
  } catch {
    return null
  }
}

/** Average number of CPUs other processes kept busy between two snapshots (clock ticks of 10 ms). */
export function otherLoad(a, b) {
  if (a === null || b === null || b.wall <= a.wall) return null
  const ticks = b.busy - a.busy - (b.own - a.own)
  return Math.max(0, (ticks * 10) / (b.wall - a.wall))
}

export function machineInfo() {
  let cpu = os.cpus()[0]?.model ?? 'unknown'
  try {
    const line = readFileSync('/proc/cpuinfo', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('model name'))
    if (line) cpu = line.split(':')[1].trim()
  } catch {}
  return {
    cpu,
    cores: os.cpus().length,
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    v8: process.versions.v8,
    loadavgAtStart: os.loadavg().map((x) => Math.round(x * 100) / 100),
  }
}

export function fmtNs(ns) {
  if (ns === undefined || ns === null || Number.isNaN(ns)) return '—'
  if (ns >= 100_000) return `${(ns / 1000).toFixed(0)} µs`
  if (ns >= 10_000) return `${(ns / 1000).toFixed(1)} µs`
  if (ns >= 999.5) return `${(ns / 1000).toFixed(2)} µs`
  if (ns >= 100) return `${ns.toFixed(0)} ns`
  return `${ns.toFixed(1)} ns`
}

export function fmtRatio(x) {
  if (x === undefined || Number.isNaN(x)) return '—'
  if (x >= 10) return `${x.toFixed(1)}×`
  if (x >= 0.001) return `${x.toFixed(3)}×`
  return `${x.toPrecision(2)}×`
}

export function fmtInt(x) {
  return x === undefined || Number.isNaN(x) ? '—' : Math.round(x).toLocaleString('en-US')
}

/** A plain-text table with right-aligned columns after the first. */
export function textTable(header, rows) {
  const all = [header, ...rows]
  const widths = header.map((_, c) => Math.max(...all.map((r) => String(r[c] ?? '').length)))
  const line = (r) => r.map((cell, c) => (c === 0 ? String(cell ?? '').padEnd(widths[c]) : String(cell ?? '').padStart(widths[c]))).join('  ')
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n')
}

export function markdownTable(header, rows) {
  const align = header.map((_, c) => (c === 0 ? ':---' : '---:'))
  return [header, align, ...rows].map((r) => `| ${r.join(' | ')} |`).join('\n')
}
