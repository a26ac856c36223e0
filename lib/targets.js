'use strict'
// napi-rs names each binary package after its target: `x86_64-unknown-linux-gnu` ships as
// `keygate-linux-x64-gnu`. package.json's `napi.targets` lists the triples.

/** @type {Record<string, string | undefined>} */
const ARCH = { x86_64: 'x64', aarch64: 'arm64', i686: 'ia32', armv7: 'arm', riscv64gc: 'riscv64', powerpc64le: 'ppc64', s390x: 's390x' }

/**
 * The platform part of the package name for a Rust target triple (e.g. `linux-x64-gnu`).
 * @param {string} triple
 */
function platformOfTarget(triple) {
  const [cpu, , os, abi] = triple.split('-')
  const arch = ARCH[cpu] || cpu
  if (os === 'darwin') return `darwin-${arch}`
  if (os === 'windows') return `win32-${arch}-${abi}`
  if (os === 'linux') return `linux-${arch}-${abi}`
  return `${os}-${arch}`
}

module.exports = { platformOfTarget }
