// `npm run pack:local`: builds this machine's binary and writes installable tarballs of keygate
// and of this platform's binary package (npm/<platform>/ plus the .node) to dist/.
//   node scripts/pack-local.mjs            build (release), then pack
//   node scripts/pack-local.mjs --no-build pack the binary already built by `npm run build`
//   --out <dir>                            write the tarballs there instead of dist/
// Then, in any project: npm install <dist>/keygate-<v>.tgz <dist>/keygate-<platform>-<v>.tgz
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { createRequire } from 'node:module'

const { platformOfTarget } = createRequire(import.meta.url)('../lib/targets.js')

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const outAt = process.argv.indexOf('--out')
const dist = outAt > 0 && process.argv[outAt + 1] ? path.resolve(process.argv[outAt + 1]) : path.join(root, 'dist')
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'))
const binaryName = pkg.napi.binaryName
const onWindows = process.platform === 'win32'

function fail(message) {
  console.error(`pack:local: ${message}`)
  process.exit(1)
}

function run(command, args, cwd) {
  const result = spawnSync(command, args, { cwd, encoding: 'utf8', shell: onWindows, stdio: ['ignore', 'pipe', 'inherit'] })
  if (result.status !== 0) fail(`${command} ${args.join(' ')} failed in ${cwd} (exit ${result.status})`)
  return result.stdout
}

/** This machine's target as napi-rs names it (binding.js looks for `keygate.<name>.node`). */
function platformName() {
  const { platform, arch } = process
  if (platform === 'win32') return `win32-${arch}-msvc`
  if (platform !== 'linux') return `${platform}-${arch}`
  const glibc = Boolean(process.report?.getReport?.()?.header?.glibcVersionRuntime)
  return `linux-${arch}-${glibc ? 'gnu' : 'musl'}`
}

/** Packs `dir` into dist/ without running its scripts (keygate's `prepare` would build again). */
function pack(dir) {
  const [info] = JSON.parse(run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', dist], dir))
  return { file: path.join(dist, info.filename), size: info.size, unpackedSize: info.unpackedSize, entries: info.entryCount }
}

const platform = platformName()
const platformDir = path.join(root, 'npm', platform)
if (!fs.existsSync(path.join(platformDir, 'package.json'))) {
  fail(`no npm/${platform}/ package: ${platform} is not among package.json's napi.targets`)
}
const platformPkg = JSON.parse(fs.readFileSync(path.join(platformDir, 'package.json'), 'utf8'))
if (platformPkg.version !== pkg.version) {
  fail(`npm/${platform}/package.json (${platformPkg.version}) must carry version ${pkg.version}`)
}

/**
 * The published manifest lists every target's package in `optionalDependencies` at the
 * package's own version, as `napi prepublish` writes it at release. The repo's
 * package.json does not: those packages do not exist on the registry before the first
 * release, and `npm ci` refuses a lockfile that cannot hold them.
 */
function optionalDependencies() {
  const deps = {}
  for (const target of pkg.napi.targets) {
    const manifest = path.join(root, 'npm', platformOfTarget(target), 'package.json')
    if (!fs.existsSync(manifest)) fail(`no npm/${platformOfTarget(target)}/package.json for the target ${target}`)
    deps[JSON.parse(fs.readFileSync(manifest, 'utf8')).name] = pkg.version
  }
  return deps
}

/** Packs the repo with the published manifest, restoring package.json afterwards. */
function packMain() {
  const manifestPath = path.join(root, 'package.json')
  const original = fs.readFileSync(manifestPath, 'utf8')
  // Without `prepare`: it builds the addon in a clone; a user installs a prebuilt one (as release.yml publishes).
  const { prepare: _build, ...scripts } = pkg.scripts
  fs.writeFileSync(manifestPath, `${JSON.stringify({ ...pkg, scripts, optionalDependencies: optionalDependencies() }, null, 2)}\n`)
  try {
    return pack(root)
  } finally {
    fs.writeFileSync(manifestPath, original)
  }
}

if (!process.argv.includes('--no-build')) {
  run('npm', ['run', 'build'], root)
}
const binary = `${binaryName}.${platform}.node`
if (!fs.existsSync(path.join(root, binary))) fail(`${binary} is missing: run \`npm run build\` first`)

fs.mkdirSync(dist, { recursive: true })
for (const old of fs.readdirSync(dist)) {
  if (old.startsWith(`${pkg.name}-`) && old.endsWith('.tgz')) fs.rmSync(path.join(dist, old))
}

// The binary package is staged outside the repo, as `napi artifacts` would fill npm/<platform>/.
const staging = fs.mkdtempSync(path.join(os.tmpdir(), `${pkg.name}-pack-`))
try {
  for (const file of fs.readdirSync(platformDir)) fs.copyFileSync(path.join(platformDir, file), path.join(staging, file))
  fs.copyFileSync(path.join(root, binary), path.join(staging, binary))
  // The notices of the crates linked into the binary (release.yml copies it alike).
  fs.copyFileSync(path.join(root, 'THIRD-PARTY-LICENSES'), path.join(staging, 'THIRD-PARTY-LICENSES'))
  const packed = [packMain(), pack(staging)]
  for (const p of packed) {
    console.log(`${path.relative(process.cwd(), p.file)}  ${(p.size / 1024).toFixed(0)} KB packed, ${(p.unpackedSize / 1024).toFixed(0)} KB unpacked, ${p.entries} files`)
  }
} finally {
  fs.rmSync(staging, { recursive: true, force: true })
}
