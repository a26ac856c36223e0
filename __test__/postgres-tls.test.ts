// TLS to PostgreSQL, each sslmode the README documents, against a throwaway cluster of the test's
// own with ssl=on and certificates made here with openssl: a CA, a server certificate it signed
// (for 127.0.0.1 only) and an expired one. Every mode connects or refuses as documented, and a
// refusal says why (the certificate's issuer unknown, expired, or not for the host name), never
// only that the handshake failed; no message holds the URL's password.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'

import { KeyStore } from '../index.js'
import { Cluster, clusterSkipReason, pgSkipReason, refusedOpen, until } from './support/postgres.js'

const PASSWORD = 'tls-url-password-4711'

function openssl(args: string[], cwd: string): void {
  const r = spawnSync('openssl', args, { cwd, encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')} failed: ${r.error?.message ?? r.stderr}`)
}

/** A CA, a server certificate it signed for 127.0.0.1 (not `localhost`), and an expired one, in `dir`. */
function makeCertificates(dir: string): void {
  const ca = ['[ca]', 'default_ca = ca', '[ca]', 'dir = .', 'database = index.txt', 'serial = serial', 'new_certs_dir = .', 'certificate = ca.crt']
  fs.writeFileSync(
    path.join(dir, 'ca.cnf'),
    [
      ...ca,
      'private_key = ca.key',
      'default_md = sha256',
      'policy = any',
      'x509_extensions = server',
      '[any]',
      'commonName = supplied',
      '[server]',
      'subjectAltName = IP:127.0.0.1',
      'basicConstraints = CA:FALSE',
      'extendedKeyUsage = serverAuth',
      '',
    ].join('\n'),
  )
  fs.writeFileSync(path.join(dir, 'index.txt'), '')
  fs.writeFileSync(path.join(dir, 'serial'), '1000\n')
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '30', '-subj', '/CN=keygate test CA'], dir)
  for (const [name, dates] of [
    ['server', ['-days', '30']],
    ['expired', ['-startdate', '20200101000000Z', '-enddate', '20200201000000Z']],
  ] as const) {
    openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=keygate test ${name}`], dir)
    openssl(['ca', '-batch', '-config', 'ca.cnf', '-in', `${name}.csr`, '-out', `${name}.crt`, ...dates], dir)
    fs.chmodSync(path.join(dir, `${name}.key`), 0o600)
  }
}

const reason = pgSkipReason() ?? clusterSkipReason() ?? (spawnSync('openssl', ['version']).status === 0 ? undefined : 'no openssl to make certificates')
const skip = reason === undefined ? {} : { skip: `PostgreSQL TLS: ${reason}` }

describe('TLS to PostgreSQL: every sslmode connects or refuses as documented, saying why', skip, () => {
  let certs: string
  let cluster: Cluster
  before(async () => {
    certs = fs.mkdtempSync(path.join(os.tmpdir(), 'keygate-tls-'))
    makeCertificates(certs)
    if (process.getuid?.() === 0) {
      // The server runs as postgres, and reads its key only when it owns it.
      const uid = Number(spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).stdout.trim())
      for (const name of ['', ...fs.readdirSync(certs)]) fs.chownSync(path.join(certs, name), uid, -1)
    }
    cluster = await Cluster.create()
    await serve('server')
  })
  after(() => {
    cluster?.remove()
    if (certs) fs.rmSync(certs, { recursive: true, force: true })
  })

  /** TLS on, with the certificate `name` (set by a reload: sessions that begin once the server has taken it get it). */
  async function serve(name: string): Promise<void> {
    cluster.psql('ALTER SYSTEM SET ssl = on')
    cluster.psql(`ALTER SYSTEM SET ssl_cert_file = '${certs}/${name}.crt'`)
    cluster.psql(`ALTER SYSTEM SET ssl_key_file = '${certs}/${name}.key'`)
    cluster.psql('SELECT pg_reload_conf()')
    await until(`the server serving ${name}.crt`, 10_000, () => (cluster.psql('SHOW ssl_cert_file').endsWith(`${name}.crt`) ? true : undefined))
  }

  const url = (host: string, query: string) => `postgres://postgres:${PASSWORD}@${host}:${cluster.port}/postgres?${query}`
  const root = () => `sslrootcert=${encodeURIComponent(path.join(certs, 'ca.crt'))}`
  /** Whether keygate's connections to the cluster are encrypted (pg_stat_ssl), 'none' when it has none. */
  const encrypted = () =>
    cluster.psql(
      "SELECT coalesce(string_agg(DISTINCT s.ssl::text, ','), 'none') FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'keygate'",
    )

  function opens(target: string): string {
    const store = KeyStore.open(target, { connectTimeoutMs: 5000, onError: () => {} })
    try {
      return encrypted()
    } finally {
      store.close()
    }
  }

  function refused(target: string, why: RegExp): void {
    assert.match(refusedOpen(target, 'STORE_UNAVAILABLE', PASSWORD, { connectTimeoutMs: 5000 }).message, why)
  }

  test('disable connects in plain text; prefer (the default) and require encrypt without checking the certificate', () => {
    assert.equal(opens(url('127.0.0.1', 'sslmode=disable')), 'false')
    for (const query of ['', 'sslmode=prefer', 'sslmode=require']) assert.equal(opens(url('localhost', query)), 'true', query)
    // With a root certificate, require checks the chain (as libpq does), not the name.
    assert.equal(opens(url('127.0.0.1', `sslmode=require&${root()}`)), 'true')
    assert.equal(opens(url('localhost', `sslmode=require&${root()}`)), 'true')
  })

  test('verify-ca checks the chain, not the name; verify-full checks both', () => {
    assert.equal(opens(url('127.0.0.1', `sslmode=verify-ca&${root()}`)), 'true')
    assert.equal(opens(url('localhost', `sslmode=verify-ca&${root()}`)), 'true')
    assert.equal(opens(url('127.0.0.1', `sslmode=verify-full&${root()}`)), 'true')
    refused(url('localhost', `sslmode=verify-full&${root()}`), /TLS handshake: invalid peer certificate: certificate not valid for name "localhost"/)
    for (const mode of ['verify-ca', 'verify-full']) refused(url('127.0.0.1', `sslmode=${mode}`), /TLS handshake: invalid peer certificate: UnknownIssuer/)
  })

  test('an expired certificate is refused by verify-ca, verify-full and require with a root certificate, and still encrypts require without one', async () => {
    await serve('expired')
    try {
      for (const mode of ['verify-ca', 'verify-full', 'require'])
        refused(url('127.0.0.1', `sslmode=${mode}&${root()}`), /TLS handshake: invalid peer certificate: certificate expired/)
      assert.equal(opens(url('127.0.0.1', 'sslmode=require')), 'true')
    } finally {
      await serve('server')
    }
  })
})
