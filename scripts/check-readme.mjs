// Typechecks every ```ts example of README.md against the package's own typings, as a
// user would write it (each example must be complete: its own imports). Run by `npm run typecheck`.

import { execFileSync } from 'node:child_process'
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..')
const dir = path.join(root, '.readme-examples')
const examples = [...readFileSync(path.join(root, 'README.md'), 'utf8').matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1])

rmSync(dir, { recursive: true, force: true })
mkdirSync(dir)
for (const [i, code] of examples.entries()) writeFileSync(path.join(dir, `example-${i + 1}.ts`), `${code}\nexport {}\n`)
writeFileSync(
  path.join(dir, 'tsconfig.json'),
  JSON.stringify({
    compilerOptions: { strict: true, noEmit: true, target: 'es2022', module: 'nodenext', moduleResolution: 'nodenext', types: ['node'], skipLibCheck: true },
    include: ['*.ts'],
  }),
)
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc')
try {
  execFileSync(process.execPath, [tsc, '-p', path.join(dir, 'tsconfig.json')], { stdio: 'inherit' })
  console.log(`README.md: ${examples.length} TypeScript examples typecheck`)
} finally {
  rmSync(dir, { recursive: true, force: true })
}
