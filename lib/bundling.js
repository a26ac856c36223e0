'use strict'
// What to tell a user whose bundler inlined keygate: its native addon and the admin page's files
// are read from keygate's own directory at run time, so keygate must stay a package beside the bundle.

/**
 * @param {string} name the package's name
 * @param {string} binaryPackage the binary package to install with it (e.g. `keygate-linux-x64-gnu`)
 * @returns {string[]} the lines of advice
 */
function bundlingAdvice(name, binaryPackage) {
  return [
    `${name} cannot be bundled: mark ${name} as external in your bundler (esbuild: --external:${name} or --packages=external;`,
    `webpack: externals: [/^${name}(\\/|$)/] with externalsType: 'commonjs'; Rollup: external: [/^${name}(\\/|$)/];`,
    `@vercel/ncc: -e ${name} -e ${name}/http -e ${name}/admin), and install ${name} and ${binaryPackage} in the node_modules beside the bundle.`,
    `In a Node.js single executable application, load ${name} from there with require('node:module').createRequire(process.execPath)('${name}').`,
  ]
}

module.exports = { bundlingAdvice }
