// Bundles the demo with esbuild into dist/: bundled.mjs (the page), worker.mjs (the engine
// worker), thread-entry.mjs (its lent threads, where the page is cross-origin isolated) and
// wasm/ (the engine's builds, copied from the package). Run: node build.mjs
import { build } from 'esbuild';
import { cpSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const resolve = createRequire(import.meta.url).resolve;
await build({
  entryPoints: {
    bundled: join(here, 'bundled.mjs'),
    worker: resolve('tinytune/worker'),
    // the worker starts its threads from ./thread-entry.mjs beside itself
    'thread-entry': resolve('tinytune/thread-entry'),
  },
  bundle: true,
  format: 'esm',
  platform: 'browser',
  outdir: join(here, 'dist'),
  outExtension: { '.js': '.mjs' },
  logLevel: 'warning',
});
// esbuild does not follow new URL('…wasm', import.meta.url): copy the builds beside the bundle.
cpSync(join(dirname(resolve('tinytune/package.json')), 'build'), join(here, 'dist', 'wasm'), { recursive: true });
console.log('built dist/');
