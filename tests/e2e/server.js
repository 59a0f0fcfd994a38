// A static file server for the built app (dist/), on loopback, for the browser tests.
// Usage: node tests/e2e/server.js [root] [port]   (port 0 picks a free one; prints the URL)
import { createServer } from 'node:http';
import { readFile, stat } from 'node:fs/promises';
import { extname, join, normalize } from 'node:path';

const TYPES = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.css': 'text/css',
  '.wasm': 'application/wasm', '.json': 'application/json', '.gz': 'application/octet-stream',
  '.png': 'image/png', '.md': 'text/plain; charset=utf-8', '.map': 'application/json',
};

/** Serves `root` on 127.0.0.1; `log` receives each request's path and method, paths `refuse` accepts get a
 * 403, as a blocked download would, and `headers` go with every file (a CSP, say). */
export function serveStatic(root, { port = 0, log = () => {}, refuse = () => false, headers = {} } = {}) {
  const server = createServer(async (request, response) => {
    const path = decodeURIComponent(new URL(request.url, 'http://x').pathname);
    log(path, request.method);
    if (refuse(path)) {
      response.writeHead(403).end('blocked');
      return;
    }
    let file = normalize(join(root, path));
    if (!file.startsWith(normalize(root))) {
      response.writeHead(403).end();
      return;
    }
    try {
      if ((await stat(file)).isDirectory()) file = join(file, 'index.html');
      const body = await readFile(file);
      response.writeHead(200, {
        ...headers,
        'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
        // Said for HEAD requests too, as static hosts do (the widget asks for sizes that way).
        'content-length': body.length,
      });
      response.end(body);
    } catch {
      response.writeHead(404).end('not found');
    }
  });
  return new Promise((resolve) => server.listen(port, '127.0.0.1', () => resolve(server)));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const server = await serveStatic(process.argv[2] ?? 'dist', { port: Number(process.argv[3] ?? 8080) });
  console.log(`serving on http://127.0.0.1:${server.address().port}/`);
}
