// A PgBouncer process of the test's own (Debian's `pgbouncer` binary), in front of the machine's
// PostgreSQL: its config in a temp dir, a free port, trust auth, run as the `postgres` OS user
// when we are root (PgBouncer refuses root). The system's pgbouncer service is never touched.
import { after } from 'node:test'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import * as net from 'node:net'
import { spawn, spawnSync } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'

import { PG_HOST, PG_PORT, PG_USER, asServerUser, freePort, until } from './postgres.js'

/** Where Debian puts the binary (overridable for other machines). */
const PGBOUNCER = process.env.KEYGATE_PGBOUNCER ?? '/usr/sbin/pgbouncer'

/** Why no PgBouncer can be started here, or undefined when one can. */
export function pgbouncerSkipReason(): string | undefined {
  if (!fs.existsSync(PGBOUNCER)) return `no pgbouncer binary at ${PGBOUNCER} (apt-get install pgbouncer)`
  if (process.getuid?.() === 0 && spawnSync('id', ['-u', 'postgres']).status !== 0) return 'running as root and there is no postgres OS user to run pgbouncer as'
  return undefined
}

export type PoolMode = 'session' | 'transaction' | 'statement'

export class PgBouncer {
  private constructor(
    private readonly dir: string,
    private readonly child: ChildProcess,
    readonly port: number,
  ) {}

  /** Starts PgBouncer in `mode`, forwarding every database to the machine's server; resolves once it accepts connections. */
  static async start(mode: PoolMode): Promise<PgBouncer> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keygate-pgbouncer-'))
    const port = await freePort()
    fs.writeFileSync(path.join(dir, 'users.txt'), `"${PG_USER}" ""\n`)
    fs.writeFileSync(
      path.join(dir, 'pgbouncer.ini'),
      [
        '[databases]',
        `* = host=${PG_HOST} port=${PG_PORT}`,
        '[pgbouncer]',
        'listen_addr = 127.0.0.1',
        `listen_port = ${port}`,
        'unix_socket_dir =',
        'auth_type = trust',
        `auth_file = ${path.join(dir, 'users.txt')}`,
        `pool_mode = ${mode}`,
        `logfile = ${path.join(dir, 'pgbouncer.log')}`,
        '',
      ].join('\n'),
    )
    if (process.getuid?.() === 0) {
      const uid = Number(spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).stdout.trim())
      const gid = Number(spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).stdout.trim())
      for (const name of ['', 'users.txt', 'pgbouncer.ini']) fs.chownSync(path.join(dir, name), uid, gid)
    }
    const [command, argv] = asServerUser(PGBOUNCER, [path.join(dir, 'pgbouncer.ini')])
    const child = spawn(command, argv, { stdio: 'ignore', cwd: '/' })
    const bouncer = new PgBouncer(dir, child, port)
    running.add(bouncer)
    let exited: string | undefined
    child.once('exit', (code, signal) => {
      exited = `pgbouncer exited (${code ?? signal}): ${bouncer.log().slice(-500)}`
    })
    await until(`pgbouncer accepting connections on ${port}`, 10_000, async () => {
      if (exited !== undefined) throw new Error(exited)
      return (await accepts(port)) ? true : undefined
    })
    return bouncer
  }

  /** URL of `database` through this pooler, with `password` in it (trust auth: never asked for). */
  url(database: string, password: string): string {
    return `postgres://${PG_USER}:${password}@127.0.0.1:${this.port}/${database}?sslmode=disable`
  }

  log(): string {
    try {
      return fs.readFileSync(path.join(this.dir, 'pgbouncer.log'), 'utf8')
    } catch {
      return ''
    }
  }

  /** Stops the process (runuser passes the signal on) and removes its files. */
  stop(): void {
    if (!running.delete(this)) return
    this.child.kill('SIGTERM')
    fs.rmSync(this.dir, { recursive: true, force: true })
  }
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1')
    socket.once('connect', () => {
      socket.destroy()
      resolve(true)
    })
    socket.once('error', () => resolve(false))
  })
}

const running = new Set<PgBouncer>()

after(() => {
  for (const bouncer of [...running]) bouncer.stop()
})
