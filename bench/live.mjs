// The page's live webcam prediction rate and its main thread's responsiveness, in headless
// Chromium (Debian's) on all cores, with the default model: a fake camera plays a held-out
// photo (a y4m made from scikit-image's grass); a 3-class model is trained in the page on
// real photo crops; then, for --seconds each:
//   live      the Try-it webcam preview running: predictions a second, frame-to-answer time,
//             and the main thread's longest gaps (requestAnimationFrame and a 10 ms timer)
//   training  features for every image recomputed (another views setting) and a fit, with
//             the preview off: the same gaps, and the main thread's own long tasks (> 50 ms),
//             which tell the page's work from the OS scheduling other processes
//   node bench/live.mjs [--seconds 10] [--runs 3]
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { launch, serve, newContext, ready, addImages, renameClass, startProbe, stopProbe } from '../tests/e2e/browser.mjs';
import { photoCrops, videoOf } from '../tests/e2e/images.mjs';

const { values: o } = parseArgs({ options: { seconds: { type: 'string', default: '10' }, runs: { type: 'string', default: '3' } } });
const NAMES = ['brick', 'grass', 'gravel'];
const photos = await Promise.all(NAMES.map((n, k) => photoCrops(`${n}.png`, { count: 10, held: 10, seed: k + 1 })));
const dir = fs.mkdtempSync('/tmp/tinytune-live-');
const video = path.join(dir, 'grass.y4m');
fs.writeFileSync(video, await videoOf(photos[1].held[4].buffer));
const browser = await launch([
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  `--use-file-for-fake-video-capture=${video}`,
]);
const srv = await serve();
const fmt = (x) => x.toFixed(1);
const range = (a) => (Math.min(...a) === Math.max(...a) ? fmt(a[0]) : `${fmt(Math.min(...a))}-${fmt(Math.max(...a))}`);

const longTasks = (page) =>
  page.evaluate(() => {
    window.__long = [];
    new PerformanceObserver((l) => {
      for (const e of l.getEntries()) window.__long.push(e.duration);
    }).observe({ type: 'longtask' });
  });

try {
  const { context } = await newContext(browser, { permissions: ['camera'] });
  const page = await context.newPage();
  await page.goto(`${srv.origin}/`);
  await ready(page);
  for (const [k, n] of NAMES.entries()) {
    if (k === 2) await page.click('#add-class');
    await renameClass(page, k, n);
    await addImages(page, k, photos[k].train);
  }
  const threads = (await page.textContent('#chip-threads')).trim();
  const live = [],
    train = [];
  for (let run = 0; run < Number(o.runs); run++) {
    // training, the preview off; a new views setting makes it compute every image's features again
    await page.fill('#views', String(5 + (run % 4))); // 4 is the default, prepared in the background
    await page.dispatchEvent('#views', 'change');
    await longTasks(page);
    await startProbe(page);
    const t0 = performance.now();
    await page.click('#train');
    await page.waitForSelector('body[data-training="true"]', { timeout: 5000 }).catch(() => {});
    await page.waitForSelector('body[data-training="false"][data-trained="true"]', { timeout: 300000 });
    const p = await stopProbe(page);
    const long = await page.evaluate(() => window.__long);
    train.push({
      seconds: (performance.now() - t0) / 1000,
      raf: p.raf.max,
      timer: p.timer.max,
      longTasks: long.length,
      longest: Math.max(0, ...long),
    });

    await page.click('#live-toggle');
    await page.waitForFunction(() => document.body.dataset.live === 'true' && window.tinytune.live.stats.frames > 5, null, {
      timeout: 30000,
    });
    await longTasks(page);
    await startProbe(page);
    const f0 = await page.evaluate(() => ({ n: window.tinytune.live.stats.frames, t: performance.now() }));
    await page.waitForTimeout(Number(o.seconds) * 1000);
    const f1 = await page.evaluate(() => ({
      n: window.tinytune.live.stats.frames,
      t: performance.now(),
      ms: window.tinytune.live.stats.ms,
      top: document.getElementById('live-bars').dataset.top,
    }));
    const q = await stopProbe(page);
    const lt = await page.evaluate(() => window.__long);
    await page.click('#live-toggle');
    const ms = [...f1.ms].sort((a, b) => a - b);
    live.push({
      rate: ((f1.n - f0.n) * 1000) / (f1.t - f0.t),
      median: ms[ms.length >> 1],
      top: f1.top,
      raf: q.raf.max,
      timer: q.timer.max,
      longTasks: lt.length,
      longest: Math.max(0, ...lt),
    });
  }
  const ua = await page.evaluate(() => navigator.userAgent.match(/Chrom\w+\/[\d.]+/)?.[0]);
  console.log(
    `# live preview and training in ${ua}, default model, engine ${threads}, ${o.runs} runs of ${o.seconds} s (load average ${fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')})`,
  );
  console.log(
    `live: ${range(live.map((r) => r.rate))} predictions a second; frame to answer median ${range(live.map((r) => r.median))} ms; top class ${[...new Set(live.map((r) => r.top))].join('/')}`,
  );
  console.log(
    `live: main thread longest frame gap ${range(live.map((r) => r.raf))} ms, longest 10 ms-timer gap ${range(live.map((r) => r.timer))} ms, long tasks ${live.map((r) => r.longTasks).join('/')} (longest ${range(live.map((r) => r.longest))} ms)`,
  );
  console.log(
    `training (features + fit, ${range(train.map((r) => r.seconds))} s): longest frame gap ${range(train.map((r) => r.raf))} ms, longest 10 ms-timer gap ${range(train.map((r) => r.timer))} ms, long tasks ${train.map((r) => r.longTasks).join('/')} (longest ${range(train.map((r) => r.longest))} ms)`,
  );
  await context.close();
} finally {
  await browser.close();
  await srv.close();
  fs.rmSync(dir, { recursive: true, force: true });
}
