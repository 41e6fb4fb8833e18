// Serves the page on 127.0.0.1 only, with the cross-origin-isolation headers that let the
// page use SharedArrayBuffer (threads) where the build has them. No third-party hosts.
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SERVED = ['web', 'wasm', 'build', 'models'];
const TYPES = {
  '.jpg': 'image/jpeg',
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript',
  '.mjs': 'text/javascript',
  '.css': 'text/css',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
  '.webmanifest': 'application/manifest+json',
};

/** mounts: extra {'/prefix/': directory} to serve (benchmarks serve tfjs and photos);
 * isolated: false leaves out the COOP/COEP headers (a page then runs on one thread). */
export function createServer({ mounts = {}, isolated = true } = {}) {
  return http.createServer((req, res) => {
    let p = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    if (p === '/') p = '/web/index.html';
    const mount = Object.keys(mounts).find((m) => p.startsWith(m));
    const base = mount ? path.resolve(mounts[mount]) : ROOT;
    const file = path.join(base, path.normalize(mount ? p.slice(mount.length - 1) : p));
    const top = path.relative(ROOT, file).split(path.sep)[0];
    if (!file.startsWith(base + path.sep) || (!mount && !SERVED.includes(top))) {
      res.writeHead(404).end('not found');
      return;
    }
    fs.readFile(file, (err, data) => {
      if (err) {
        res.writeHead(404).end('not found');
        return;
      }
      res.writeHead(200, {
        'Content-Type': TYPES[path.extname(file)] ?? 'application/octet-stream',
        ...(isolated ? { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' } : {}),
        'Cache-Control': 'no-cache',
        // lets web/sw.js control the whole site (the page at /, /wasm, /build, /models)
        ...(p === '/web/sw.js' ? { 'Service-Worker-Allowed': '/' } : {}),
      });
      res.end(data);
    });
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const port = Number(process.env.PORT ?? 8080);
  createServer().listen(port, '127.0.0.1', () => console.log(`tinytune: http://127.0.0.1:${port}/`));
}
