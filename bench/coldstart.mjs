// Page start-up time in Chromium on loopback: from navigation to a usable page (the
// engine started and the default model loaded: body[data-ready][data-model-ready]).
// Cold: a fresh browser profile (no HTTP cache, no service worker). Warm: the same page
// reloaded in that profile (service worker and caches in place). Also the bytes of .wasm
// the cold visit fetched. Alternated rounds, each in a new profile.
//   node bench/coldstart.mjs [--rounds 3] [--json out.json]
import { parseArgs } from 'node:util';
import fs from 'node:fs';
import { launch, serve, newContext } from '../tests/e2e/browser.mjs';

const { values: o } = parseArgs({ options: { rounds: { type: 'string', default: '3' }, json: { type: 'string' } } });
const srv = await serve();
const wasmBytes = new Map();
srv.server.on('request', (req, res) => {
  if (!req.url.endsWith('.wasm')) return;
  const end = res.end.bind(res);
  res.end = (data, ...rest) => {
    wasmBytes.set(req.url, (wasmBytes.get(req.url) ?? 0) + (data?.length ?? 0));
    return end(data, ...rest);
  };
});
const browser = await launch();
const usable = (page) =>
  page
    .waitForFunction(
      () => (document.body.dataset.ready === 'true' && document.body.dataset.modelReady === 'true' ? performance.now() : 0),
      null,
      { timeout: 120000, polling: 10 },
    )
    .then((h) => h.jsonValue());
// when the engine was up (web/app.mjs marks it), for the breakdown
const engineAt = (page) => page.evaluate(() => performance.getEntriesByName('tinytune:engine')[0]?.startTime ?? NaN);
const cold = [],
  warm = [],
  fetched = [];
for (let r = 0; r < Number(o.rounds); r++) {
  wasmBytes.clear();
  const { context, errors } = await newContext(browser);
  const page = await context.newPage();
  await page.goto(srv.origin + '/', { waitUntil: 'commit' });
  cold.push(await usable(page));
  const coldEngine = await engineAt(page);
  fetched.push([...wasmBytes].map(([u, n]) => `${u.split('/').pop()} ${(n / 1e6).toFixed(2)} MB`).join(', '));
  // let the service worker finish its install before the warm visit
  await page.evaluate(() => navigator.serviceWorker?.ready);
  await page.waitForTimeout(1000);
  await page.reload({ waitUntil: 'commit' });
  warm.push(await usable(page));
  const warmEngine = await engineAt(page);
  if (errors.length) console.log(`page errors: ${errors.join('; ')}`);
  await context.close();
  console.log(
    `round ${r + 1}: cold ${(cold[r] / 1000).toFixed(2)} s (engine up at ${(coldEngine / 1000).toFixed(2)}), warm ${(warm[r] / 1000).toFixed(2)} s (engine ${(warmEngine / 1000).toFixed(2)}); cold visit fetched ${fetched[r]}`,
  );
}
const range = (xs) => `${(Math.min(...xs) / 1000).toFixed(2)}-${(Math.max(...xs) / 1000).toFixed(2)} s`;
console.log(
  `page start to usable, Chromium ${browser.version()}, loopback: cold ${range(cold)}, warm ${range(warm)} (${cold.length} rounds)`,
);
if (o.json) fs.writeFileSync(o.json, JSON.stringify({ cold, warm, fetched }, null, 1));
await browser.close();
await srv.close();
