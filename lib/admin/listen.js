'use strict'
// Why listening failed, said as a KeygateError: for serve()'s probe and createAdminServer's listen().

const { KeygateError, invalidArgument, quote, redactSecrets } = require('../errors.js')

/** What a listen() failure for want of the system's resources is; the rest are told by Node's message. */
const EXHAUSTED = Object.freeze({
  EMFILE: 'this process has as many files open as it may (raise its limit: ulimit -n)',
  ENFILE: 'the system has as many files open as it may',
  ENOBUFS: 'the system is out of socket buffers',
  ENOMEM: 'the system is out of memory',
})

/**
 * Why listening on `host`:`port` failed, as a KeygateError: INVALID_ARGUMENT when it is the host
 * or port asked for (the caller's to change, not a bug: marked so the CLI reports it plainly);
 * else STORE_IO, a failure of the machine (out of file descriptors), as for the store's files.
 * @param {any} e what listen() failed with
 * @param {string} host
 * @param {number} port
 * @param {string} [portHint] how to choose another port, said when this one is in use
 */
function listenProblem(e, host, port, portHint = '') {
  const problem = (/** @type {string} */ message) => Object.assign(invalidArgument(message), { listen: true })
  if (e instanceof KeygateError) return e
  // listen() called again on a server that is listening or about to: the caller's to fix, not the machine's.
  if (e?.code === 'ERR_SERVER_ALREADY_LISTEN') return invalidArgument('the server is already listening, or starting to: close() it before listening again')
  // Quoted and redacted as every value a message shows: a host is the caller's text (a secret pasted as --host, a newline).
  const shown = quote(host)
  if (e?.code === 'EADDRINUSE') return Object.assign(problem(`port ${port} on ${shown} is already in use; choose another${portHint}`), { portInUse: true })
  // EPERM: a sandbox's (seccomp, an SELinux policy) answer where a plain Linux would say EACCES.
  if (e?.code === 'EACCES' || e?.code === 'EPERM') return problem(`no permission to listen on ${shown} port ${port}; choose a port above 1023`)
  if (e?.code === 'EADDRNOTAVAIL') return problem(`${shown} is not an address of this machine`)
  // An IPv6 address (`::1`) on a machine without IPv6, or an IPv4 one on an IPv6-only machine.
  if (e?.code === 'EAFNOSUPPORT') return problem(`cannot listen on ${shown}: this machine does not support its address family (IPv6 turned off?)`)
  // The resolver's EINVAL: a name it will not look up at all (too long, a label over 63 characters).
  if (e?.code === 'EINVAL' && e?.syscall === 'getaddrinfo') return problem(`cannot listen on ${shown}: it is not a host name the system can look up (EINVAL)`)
  // Linux's answer for a multicast address, or a link-local one without its interface.
  if (e?.code === 'EINVAL') return problem(`cannot listen on ${shown}: no server can (a link-local IPv6 address needs its interface, such as fe80::1%eth0)`)
  // A host name is looked up before listening: a mistyped one is the caller's to fix, not a bug.
  if (['ENOTFOUND', 'EAI_AGAIN', 'EAI_FAIL', 'EAI_NODATA'].includes(e?.code)) {
    return problem(`cannot listen on ${shown}: the name does not resolve to an address of this machine (${e.code})`)
  }
  const why = Object.hasOwn(EXHAUSTED, e?.code) ? `${EXHAUSTED[/** @type {keyof typeof EXHAUSTED} */ (e.code)]} (${e.code})` : redactSecrets(e?.message ?? e)
  return Object.assign(new KeygateError('STORE_IO', `cannot listen on ${shown} port ${port}: ${why}`), { cause: e })
}

module.exports = { listenProblem }
