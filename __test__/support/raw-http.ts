// An HTTP/1.1 client on a raw socket: any method (PROPFIND, MKCOL, LOCK… which fetch may
// refuse or rewrite) and any request target byte for byte (fetch normalises `..`, `%2e`, `\`).
import net from 'node:net'

export interface RawAnswer {
  status: number
  headers: Record<string, string>
  text: string
  json: any
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

export interface RawExchange extends RawAnswer {
  statusLine: string
  headerLines: string[]
}

/**
 * Writes `request` (bytes, as given) on a new socket to 127.0.0.1:`port` and reads the answer
 * until the server closes; repeated headers are joined with `, `.
 */
export function rawExchange(port: number, request: Buffer | string): Promise<RawExchange> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1')
    const chunks: Buffer[] = []
    let done = false
    const finish = () => {
      if (done) return
      done = true
      socket.destroy()
      const all = Buffer.concat(chunks).toString('latin1')
      const split = all.indexOf('\r\n\r\n')
      if (split < 0) return reject(new Error(`no HTTP answer: ${JSON.stringify(all.slice(0, 200))}`))
      const [statusLine = '', ...headerLines] = all.slice(0, split).split('\r\n')
      const headers: Record<string, string> = {}
      for (const line of headerLines) {
        const colon = line.indexOf(':')
        const name = line.slice(0, colon).toLowerCase()
        const value = line.slice(colon + 1).trim()
        headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`
      }
      const text = all.slice(split + 4)
      resolve({ statusLine, headerLines, status: Number(statusLine.split(' ')[1]), headers, text, json: parseJson(text) })
    }
    socket.on('data', (chunk) => chunks.push(chunk))
    socket.on('end', finish)
    socket.on('close', finish)
    socket.on('error', () => finish()) // e.g. ECONNRESET after Node answered 431 and closed
    socket.setTimeout(5000, () => {
      socket.destroy()
      reject(new Error('raw request timed out'))
    })
    socket.write(request)
  })
}

/**
 * Sends `METHOD target HTTP/1.1` with `headers` (and Host, Connection: close); the target is
 * written as latin1 bytes unless given as a Buffer.
 */
export function rawRequest(port: number, method: string, target: string | Buffer, headers: Record<string, string> = {}): Promise<RawExchange> {
  const head = [...Object.entries(headers).map(([name, value]) => `${name}: ${value}`), 'Host: localhost', 'Connection: close', 'Content-Length: 0']
  const targetBytes = Buffer.isBuffer(target) ? target : Buffer.from(target, 'latin1')
  return rawExchange(port, Buffer.concat([Buffer.from(`${method} `), targetBytes, Buffer.from(` HTTP/1.1\r\n${head.join('\r\n')}\r\n\r\n`)]))
}
