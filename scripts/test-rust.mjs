// The core's tests, compiled where `npm run build` compiled the addon, so that `npm test`
// reuses its dependencies (SQLite's C sources above all): `napi build` always passes
// `--target <host triple>`, which puts its artifacts under target/<triple>/release, apart
// from a plain `cargo test`'s target/release. Only the test-only crates and the few whose
// features the dev-dependencies change are compiled again.
import { execFileSync, spawnSync } from 'node:child_process'

const version = execFileSync('rustc', ['-vV'], { encoding: 'utf8' })
const host = /^host: (\S+)$/m.exec(version)?.[1]
if (!host) {
  console.error('test:rust: cannot tell the host target from `rustc -vV`')
  process.exit(1)
}
const args = ['test', '-p', 'keygate-core', '--release', '--target', host, ...process.argv.slice(2)]
const result = spawnSync('cargo', args, { stdio: 'inherit' })
process.exit(result.status ?? 1)
