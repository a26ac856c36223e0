// The Express examples (examples/*.js) run as a user runs them, with `require('keygate')` and
// `require('express')` resolved from a project of their own: under Express 4 and under Express 5
// (the devDependency `express5`), which `npm install express` gives today. Each serves what its
// comments say over real HTTP, on a real store file holding a real key.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'

import { KeyStore } from '../index.js'

const ROOT = path.resolve(__dirname, '..')
const TOKEN = 'examples-test-admin-token-0123456789'
const EXPRESSES = [
  { name: 'Express 4', dir: 'express' },
  { name: 'Express 5', dir: 'express5' },
]

/** A project whose node_modules hold keygate (this repository) and the given Express as `express`. */
function project(work: string, expressDir: string): void {
  const dir = path.join(work, expressDir)
  mkdirSync(path.join(dir, 'node_modules'), { recursive: true })
  symlinkSync(ROOT, path.join(dir, 'node_modules', 'keygate'), 'dir')
  symlinkSync(path.join(ROOT, 'node_modules', expressDir), path.join(dir, 'node_modules', 'express'), 'dir')
  for (const example of ['admin-mount.js', 'express-server.js']) copyFileSync(path.join(ROOT, 'examples', example), path.join(dir, example))
}

/** Starts `node <file>` in `cwd` and resolves to the first http://127.0.0.1:<port> it prints. */
function start(cwd: string, file: string, env: Record<string, string>, children: ChildProcess[]): Promise<string> {
  const child = spawn(process.execPath, [file], { cwd, env: { PATH: process.env.PATH ?? '', PORT: '0', ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  children.push(child)
  return new Promise((resolve, reject) => {
    let out = ''
    const timer = setTimeout(() => reject(new Error(`${file} printed no address within 10 s:\n${out}`)), 10_000)
    const read = (chunk: Buffer) => {
      out += chunk.toString()
      const m = /http:\/\/127\.0\.0\.1:\d+/.exec(out)
      if (m) {
        clearTimeout(timer)
        resolve(m[0])
      }
    }
    child.stdout!.on('data', read)
    child.stderr!.on('data', read)
    child.on('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`${file} exited (${code}) before listening:\n${out}`))
    })
  })
}

function call(base: string, pathname: string, secret?: string, method = 'POST'): Promise<Response> {
  return fetch(`${base}${pathname}`, { method, headers: secret === undefined ? {} : { Authorization: `ESP-APIKEY ${secret}` } })
}

describe('the Express examples, under Express 4 and 5', () => {
  let work = ''
  let db = ''
  let secret = ''
  const children: ChildProcess[] = []

  before(() => {
    work = mkdtempSync(path.join(tmpdir(), 'keygate-examples-'))
    db = path.join(work, 'keygate.db')
    const store = KeyStore.open(db)
    store.putUser({ id: 'svc', rights: ['session:*'] })
    secret = store.createKey({ userId: 'svc', description: 'examples test', expiresAt: new Date(Date.now() + 86_400_000) }).secret
    store.close()
    for (const { dir } of EXPRESSES) project(work, dir)
  })

  after(() => {
    for (const child of children) child.kill()
    rmSync(work, { recursive: true, force: true })
  })

  for (const { name, dir } of EXPRESSES) {
    test(`${name}: admin-mount.js serves the page under /admin/ and guards /xmlmc`, async () => {
      const base = await start(path.join(work, dir), 'admin-mount.js', { KEYGATE_DB: db, KEYGATE_ADMIN_TOKEN: TOKEN }, children)
      const home = await call(base, '/', undefined, 'GET')
      assert.equal(home.status, 200, 'the app’s own route')
      await home.text()
      const page = await call(base, '/admin/', undefined, 'GET')
      assert.equal(page.status, 200)
      assert.match(page.headers.get('content-type') ?? '', /^text\/html/)
      await page.text()
      const denied = await call(base, '/xmlmc/session/?method=getSessionInfo')
      assert.equal(denied.status, 401)
      assert.deepEqual(await denied.json(), { error: 'unauthorized', reason: 'missing_key' })
      const allowed = await call(base, '/xmlmc/session/?method=getSessionInfo', secret)
      assert.equal(allowed.status, 200)
      assert.deepEqual(await allowed.json(), { ok: true, call: 'session:getSessionInfo' })
      // A service may hold `/`: the handler's route takes it too.
      const deep = await call(base, '/xmlmc/apps/com.hornbill.core/Task/?method=x', secret)
      assert.equal(deep.status, 403, 'checked, and denied by the user’s rights')
      await deep.text()
    })

    test(`${name}: express-server.js leaves /health open and guards /xmlmc`, async () => {
      const base = await start(path.join(work, dir), 'express-server.js', { KEYGATE_DB: db }, children)
      const health = await call(base, '/health', undefined, 'GET')
      assert.equal(health.status, 200)
      assert.deepEqual(await health.json(), { ok: true })
      const denied = await call(base, '/xmlmc/session/?method=getSessionInfo')
      assert.equal(denied.status, 401)
      await denied.text()
      const allowed = await call(base, '/xmlmc/session/?method=getSessionInfo', secret)
      assert.equal(allowed.status, 200)
      const body = await allowed.json()
      assert.equal(body.call, 'session:getSessionInfo')
      assert.equal(body.userId, 'svc')
    })
  }
})
