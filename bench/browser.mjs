// The forward benchmark in headless Chromium (Debian's), against tfjs-backend-wasm in the
// same page, on one thread and on all cores (the page is cross-origin isolated):
//   node bench/browser.mjs [--model mobilenet_v2_mid] [--runs 7] [--json out.json]
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { createRequire } from 'node:module';
import { createServer } from '../tools/serve.mjs';
import { launch } from '../tests/e2e/browser.mjs';
import { ROOT, SKIMAGE } from '../tests/helpers.mjs';

const { values: o } = parseArgs({
  options: {
    model: { type: 'string', default: 'mobilenet_v2_mid' },
    runs: { type: 'string', default: '7' },
    json: { type: 'string', default: 'bench/results-browser.json' },
  },
});
const require = createRequire(import.meta.url);
const tfjsDir = path.dirname(path.dirname(path.dirname(require.resolve('@tensorflow/tfjs/package.json'))));
const server = createServer({
  mounts: { '/tfjs/': path.join(tfjsDir, '@tensorflow'), '/skimage/': SKIMAGE, '/bench/': path.join(ROOT, 'bench') },
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const browser = await launch();
const results = [];
try {
  const cores = await (async () => {
    const p = await browser.newPage();
    const n = await p.evaluate(() => navigator.hardwareConcurrency);
    await p.close();
    return n;
  })();
  for (const threads of cores > 1 ? [1, Math.min(8, cores)] : [1]) {
    const page = await browser.newPage();
    page.on('pageerror', (e) => console.error('page error:', e.message));
    await page.goto(`http://127.0.0.1:${server.address().port}/bench/browser.html?model=${o.model}&runs=${o.runs}&threads=${threads}`);
    await page.waitForFunction(() => window.benchResult, null, { timeout: 600000 });
    const r = await page.evaluate(() => window.benchResult);
    await page.close();
    if (!r.ok) throw new Error(r.error);
    console.log(
      `# ${r.model} in ${r.userAgent.match(/Chrom\w+\/[\d.]+/)?.[0]}, median of >= ${r.runs} runs and >= 1.5 s, ${r.relaxed ? 'relaxed ' : ''}SIMD ${r.simd}, ` +
        `tinytune ${r.threads} thread(s), tfjs-wasm ${r.peerThreads} thread(s) (threads supported: ${r.peerCanThread}), crossOriginIsolated ${r.crossOriginIsolated}`,
    );
    for (const x of r.rows) {
      console.log(
        `${`${x.what}, ${r.threads} thread(s)`.padEnd(44)} tinytune ${x.ours.toFixed(1).padStart(8)} ms   ${x.peerName} ${x.peer.toFixed(1).padStart(8)} ms   speed-up x${x.ratio.toFixed(2)}`,
      );
    }
    results.push(r);
  }
  if (results.length > 1) {
    for (let i = 0; i < results[0].rows.length; i++) {
      const a = results[0].rows[i],
        b = results[1].rows[i];
      console.log(
        `${`${a.what}: ${results[1].threads} threads vs 1`.padEnd(44)} tinytune x${(a.ours / b.ours).toFixed(2)}   tfjs-wasm x${(a.peer / b.peer).toFixed(2)}`,
      );
    }
  }
  fs.writeFileSync(o.json, JSON.stringify({ runs: results, date: new Date().toISOString() }, null, 2));
  console.log(`wrote ${o.json}`);
} finally {
  await browser.close();
  server.close();
}
