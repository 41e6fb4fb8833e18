// tinytune's service worker: after the first visit the page, the engine and the models
// it has used load with no network at all.
//
// Registered by web/app.mjs with scope '/' (tools/serve.mjs sends Service-Worker-Allowed
// for this file). Only same-origin GETs are handled; nothing is ever sent anywhere.
//
//   models/<id>/*   (weights, model.json, card.json): cache-first. Cached on first use;
//                   the files of a model id never change.
//   everything else (the page, its modules, /wasm/*.mjs, /build/*.wasm, models/index.json):
//                   cache-first too, refreshed in the background (stale-while-revalidate),
//                   so a rebuilt engine or page is picked up on the next reload without
//                   ever mixing old and new files within one load.
// The app shell is precached at install; the page also asks (message 'cache') for the
// engine build it runs and the files of each model it loads, in case the first load
// happened before this worker took control.
const CACHE = 'tinytune-v1';
const BASE = new URL('../', self.location).href; // the site root the page lives in
const SHELL = [
  '',
  'web/index.html',
  'web/style.css',
  'web/app.mjs',
  'web/client.mjs',
  'web/files.mjs',
  'web/charts.mjs',
  'web/live.mjs',
  'web/batch.mjs',
  'web/dom.mjs',
  'web/zip.mjs',
  'web/state.mjs',
  'web/panel-classes.mjs',
  'web/panel-train.mjs',
  'web/panel-try.mjs',
  'web/panel-files.mjs',
  'wasm/module.mjs',
  'wasm/engine.mjs',
  'wasm/tfjs.mjs',
  'wasm/tfjs-load.mjs',
  'wasm/tfjs-read.mjs',
  'wasm/tfjs-compile.mjs',
  'wasm/errors.mjs',
  'wasm/abi.mjs',
  'wasm/classifier-file.mjs',
  'wasm/transfer.mjs',
  'wasm/worker.mjs',
  'web/project.mjs',
  'wasm/featurecache.mjs',
  'wasm/export-ops.mjs',
  'wasm/export-tfjs.mjs',
  'wasm/export-onnx.mjs',
  'wasm/threads.mjs',
  'wasm/thread-entry.mjs',
  'wasm/client.mjs',
  'wasm/models.mjs',
  'models/index.json',
].map((p) => BASE + p);
// Not the engine builds: a browser runs one of the four, which the page asks for once it
// has started (message 'cache'); precaching all four downloaded 1.4 MB the first visit
// did not use, beside the one it did.

self.addEventListener('install', (event) => {
  event.waitUntil(
    (async () => {
      const cache = await caches.open(CACHE);
      // One by one, so one missing file (say, a scalar-only build) does not void the rest.
      await Promise.all(SHELL.map((url) => cache.add(new Request(url, { cache: 'no-cache' })).catch(() => {})));
      await self.skipWaiting();
    })(),
  );
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    (async () => {
      for (const k of await caches.keys()) if (k.startsWith('tinytune-') && k !== CACHE) await caches.delete(k);
      await self.clients.claim();
    })(),
  );
});

const isModelFile = (url) => url.startsWith(BASE + 'models/') && !url.endsWith('/index.json');

async function cacheFirst(request) {
  const cache = await caches.open(CACHE);
  const hit = await cache.match(request);
  if (hit) return hit;
  const res = await fetch(request);
  if (res.ok) await cache.put(request, res.clone());
  return res;
}

async function staleWhileRevalidate(event) {
  const { request } = event;
  const cache = await caches.open(CACHE);
  const key = request.mode === 'navigate' ? new URL(request.url).origin + new URL(request.url).pathname : request;
  const hit = await cache.match(key);
  const refresh = fetch(request).then(async (res) => {
    if (res.ok && res.type === 'basic') await cache.put(key, res.clone());
    return res;
  });
  if (hit) {
    event.waitUntil(refresh.catch(() => {})); // offline: the cached copy stands
    return hit;
  }
  return refresh;
}

self.addEventListener('fetch', (event) => {
  const { request } = event;
  if (request.method !== 'GET' || !request.url.startsWith(BASE)) return;
  event.respondWith((isModelFile(request.url) ? cacheFirst(request) : staleWhileRevalidate(event)).catch(() => Response.error()));
});

// The page asks for a model's files to be cached (no-op for those already cached).
self.addEventListener('message', (event) => {
  const { type, urls } = event.data ?? {};
  if (type !== 'cache' || !Array.isArray(urls)) return;
  event.waitUntil(
    (async () => {
      const cache = await caches.open(CACHE);
      const missing = [];
      for (const u of urls) if (u.startsWith(BASE) && !(await cache.match(u))) missing.push(u);
      await Promise.all(missing.map((u) => cache.add(u).catch(() => {})));
      event.source?.postMessage({ type: 'cached', urls, added: missing.length });
    })(),
  );
});
