// The forward benchmark in headless Chromium (Debian's), against tfjs-backend-wasm in the
// same page: node bench/browser.mjs [--model mobilenet_v2_mid] [--runs 7] [--json out.json]
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { createRequire } from 'node:module';
import { createServer } from '../tools/serve.mjs';
import { launch } from '../tests/e2e/browser.mjs';
import { ROOT, SKIMAGE } from '../tests/helpers.mjs';

const { values: o } = parseArgs({ options: { model: { type: 'string', default: 'mobilenet_v2_mid' },
  runs: { type: 'string', default: '7' }, json: { type: 'string', default: 'bench/results-browser.json' } } });
const require = createRequire(import.meta.url);
const tfjsDir = path.dirname(path.dirname(path.dirname(require.resolve('@tensorflow/tfjs/package.json'))));
const server = createServer({ mounts: { '/tfjs/': path.join(tfjsDir, '@tensorflow'), '/skimage/': SKIMAGE, '/bench/': path.join(ROOT, 'bench') } });
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const browser = await launch();
try {
  const page = await browser.newPage();
  page.on('pageerror', (e) => console.error('page error:', e.message));
  await page.goto(`http://127.0.0.1:${server.address().port}/bench/browser.html?model=${o.model}&runs=${o.runs}`);
  await page.waitForFunction(() => window.benchResult, null, { timeout: 600000 });
  const r = await page.evaluate(() => window.benchResult);
  if (!r.ok) throw new Error(r.error);
  console.log(`# ${r.model} in ${r.userAgent.match(/Chrom\w+\/[\d.]+/)?.[0]}, ${r.runs} runs (median), SIMD ${r.simd}, 1 thread each`);
  for (const x of r.rows) {
    console.log(`${x.what.padEnd(44)} tinytune ${x.ours.toFixed(1).padStart(8)} ms   ${x.peerName} ${x.peer.toFixed(1).padStart(8)} ms   speed-up x${x.ratio.toFixed(2)}`);
  }
  fs.writeFileSync(o.json, JSON.stringify({ ...r, date: new Date().toISOString() }, null, 2));
  console.log(`wrote ${o.json}`);
} finally {
  await browser.close();
  server.close();
}
