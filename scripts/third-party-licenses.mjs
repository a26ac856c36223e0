// Writes THIRD-PARTY-LICENSES: the license texts of the Rust crates linked into keygate's
// native binaries. Most of them (MIT, BSD-3-Clause, ISC, Apache-2.0, CDLA-Permissive-2.0)
// ask that a binary distribution carry their notices, and every binary package ships this file.
//   node scripts/third-party-licenses.mjs           rewrite THIRD-PARTY-LICENSES
//   node scripts/third-party-licenses.mjs --check   exit 1 if it no longer matches Cargo.lock
// The crates are those `cargo metadata --locked` resolves for any of package.json's napi.targets,
// reached from the `keygate` crate through normal dependencies: build and dev dependencies and
// proc macros run on the build machine and are not in the binary.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const output = path.join(root, 'THIRD-PARTY-LICENSES')
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'))

/** The third-party packages linked into the binary for one target, by cargo's package id. */
function linkedPackages(target) {
  const json = execFileSync('cargo', ['metadata', '--format-version', '1', '--locked', '--filter-platform', target], {
    cwd: root,
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
  })
  const metadata = JSON.parse(json)
  const packages = new Map(metadata.packages.map((p) => [p.id, p]))
  const nodes = new Map(metadata.resolve.nodes.map((n) => [n.id, n]))
  const binding = metadata.packages.find((p) => p.name === pkg.napi.binaryName && p.source === null)
  if (!binding) throw new Error(`no workspace crate named ${pkg.napi.binaryName}`)
  const reached = new Set([binding.id])
  const pending = [binding.id]
  while (pending.length > 0) {
    for (const dep of nodes.get(pending.pop())?.deps ?? []) {
      const linked = dep.dep_kinds.some((k) => k.kind === null)
      const procMacro = packages.get(dep.pkg).targets.some((t) => t.kind.includes('proc-macro'))
      if (linked && !procMacro && !reached.has(dep.pkg)) {
        reached.add(dep.pkg)
        pending.push(dep.pkg)
      }
    }
  }
  // The workspace's own crates are keygate's, under its LICENSE.
  return [...reached].map((id) => packages.get(id)).filter((p) => p.source !== null)
}

/**
 * A crate's license files: LICENSE*, COPYING*, NOTICE* … at its root, and its `license-file`.
 * A crate offered under a choice that includes MIT ("MIT OR Apache-2.0") is taken under MIT, so
 * only its MIT text is needed (and its NOTICE or COPYRIGHT, if any).
 */
function licenseFiles(p) {
  const dir = path.dirname(p.manifest_path)
  let names = fs.readdirSync(dir).filter((f) => /^(licen[cs]e|copying|copyright|notice|unlicense)/i.test(f) && fs.statSync(path.join(dir, f)).isFile())
  if (p.license_file && !names.includes(p.license_file)) names.push(p.license_file)
  const choices = /^[\w.+-]+(\s+OR\s+[\w.+-]+|\/[\w.+-]+)+$/.test(p.license ?? '') ? p.license.split(/\s+OR\s+|\//) : []
  if (choices.includes('MIT') && names.some((f) => /mit/i.test(f))) names = names.filter((f) => /mit|notice|copyright/i.test(f))
  return names.sort().map((name) => ({ name, text: `${fs.readFileSync(path.join(dir, name), 'utf8').replace(/\r\n?/g, '\n').trimEnd()}\n` }))
}

/**
 * Licenses a crate linked into keygate's MIT binaries may carry: permissive ones only. A copyleft
 * crate (GPL, LGPL, MPL …) statically linked would bind the users' back ends to its terms.
 */
const PERMISSIVE = new Set([
  'MIT',
  'MIT-0',
  'Apache-2.0',
  'ISC',
  'BSD-2-Clause',
  'BSD-3-Clause',
  'Zlib',
  'Unicode-3.0',
  'Unicode-DFS-2016',
  'CDLA-Permissive-2.0',
  'BSL-1.0',
  'Unlicense',
  '0BSD',
  'CC0-1.0',
])

/**
 * Whether an SPDX expression ("MIT OR Apache-2.0", "(MIT OR Apache-2.0) AND Unicode-3.0", the old
 * "MIT/Apache-2.0") can be met with permissive licenses alone: an OR needs one side, an AND both.
 * @param {string} expression
 */
export function permissive(expression) {
  const tokens = expression.replace(/\//g, ' OR ').match(/\(|\)|[^\s()]+/g) ?? []
  let at = 0
  const term = () => {
    if (tokens[at] === '(') {
      at++
      const inner = or()
      if (tokens[at++] !== ')') throw new Error(`unbalanced license expression: ${expression}`)
      return inner
    }
    const id = tokens[at++]
    // A licence exception (Apache-2.0 WITH LLVM-exception) only grants more.
    if (tokens[at] === 'WITH') at += 2
    return PERMISSIVE.has(id ?? '')
  }
  const and = () => {
    let ok = term()
    while (tokens[at] === 'AND') {
      at++
      ok = term() && ok
    }
    return ok
  }
  const or = () => {
    let ok = and()
    while (tokens[at] === 'OR') {
      at++
      ok = and() || ok
    }
    return ok
  }
  const ok = tokens.length > 0 && or()
  return ok && at === tokens.length
}

function generate() {
  const crates = new Map()
  for (const target of pkg.napi.targets) {
    for (const p of linkedPackages(target)) crates.set(`${p.name} ${p.version}`, p)
  }
  const sorted = [...crates.entries()].sort(([a], [b]) => a.localeCompare(b, 'en'))
  const refused = sorted.filter(([, p]) => !permissive(p.license ?? ''))
  if (refused.length > 0) {
    throw new Error(
      `crates linked into the binary without a permissive license: ${refused.map(([name, p]) => `${name} (${p.license ?? 'no license field'})`).join(', ')}`,
    )
  }
  // Each distinct text once (most Apache-2.0 copies differ only in spacing), with the crates it covers.
  const texts = new Map()
  const withoutText = []
  for (const [name, p] of sorted) {
    const files = licenseFiles(p)
    if (files.length === 0) withoutText.push(`  ${name}: ${p.license}; its package carries no license text: see ${p.repository ?? 'crates.io'}`)
    for (const file of files) {
      const words = file.text.split(/\s+/).join(' ').trim()
      const entry = texts.get(words) ?? { text: file.text, from: [] }
      entry.from.push(`${name} (${file.name})`)
      texts.set(words, entry)
    }
  }
  const lines = [
    "Third-party software in keygate's native binaries (keygate.<platform>.node)",
    '',
    "keygate's own code is under its LICENSE (MIT). Its native binaries also contain the Rust crates",
    'below, each under the license its authors chose; their license texts follow. libsqlite3-sys',
    'bundles SQLite, which is in the public domain. The crates are those linked for any of the targets',
    `${pkg.napi.targets.join(', ')}.`,
    '',
    'Generated by scripts/third-party-licenses.mjs from Cargo.lock; do not edit by hand.',
    '',
    'Crates (name version: license)',
    '',
    ...sorted.map(([name, p]) => `  ${name}: ${p.license ?? 'see its license file'}`),
    '',
  ]
  if (withoutText.length > 0) lines.push('Crates whose published package has no license file', '', ...withoutText, '')
  for (const { text, from } of texts.values()) {
    lines.push('='.repeat(80), ...from.map((f) => `${f}:`), '-'.repeat(80), text)
  }
  return `${lines.join('\n').trimEnd()}\n`
}

// Run, it writes or checks the file; imported (by the tests, for `permissive`), it does nothing.
if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const notices = generate()
  if (process.argv.includes('--check')) {
    const committed = fs.existsSync(output) ? fs.readFileSync(output, 'utf8') : ''
    if (committed !== notices) {
      console.error('THIRD-PARTY-LICENSES does not match Cargo.lock: run `node scripts/third-party-licenses.mjs` and commit it')
      process.exit(1)
    }
    console.log('THIRD-PARTY-LICENSES matches Cargo.lock')
  } else {
    fs.writeFileSync(output, notices)
    console.log(`THIRD-PARTY-LICENSES: ${notices.length} characters`)
  }
}
