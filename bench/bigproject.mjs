// A big project in the page, in Chromium: N phone-size JPEGs (4000x3000, default 2,000)
// across 10 classes, made from real photos (scikit-image's: a random 4:3 crop of one photo
// per class, scaled up, maybe mirrored, with a little sensor-like noise so the files are
// phone-sized, 2-4 MB), then: add them all, compute their features, train K = 0, reload,
// train K = 2 (which computes the features it needs first). For each phase: its time, the
// longest main-thread gap (a 10 ms setTimeout chain) beside an idle page's in the same
// browser (what the shared machine does to any page), and the longest task
// (PerformanceObserver 'longtask'); after each, the worker's wasm memory (it only grows,
// so that is its peak), the page's JS heap, and the peak resident memory of all of
// Chromium's processes (sampled every second from /proc).
//
// The JPEGs are made by Chromium itself (OffscreenCanvas.convertToBlob) into a temporary
// folder that later runs reuse; nothing is committed.
//
//   node bench/bigproject.mjs [--images 2000] [--epochs 10] [--epochs-k2 3] [--dir /tmp/tinytune-bigproject] [--generate-only] [--distinct M]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { parseArgs } from 'node:util';
import { SKIMAGE } from '../tests/helpers.mjs';
import { chromium } from 'playwright-core';
import { CHROMIUM, launch, serve, newContext, ready } from '../tests/e2e/browser.mjs';

const { values: opt } = parseArgs({
  options: {
    images: { type: 'string', default: '2000' },
    epochs: { type: 'string', default: '10' },
    'epochs-k2': { type: 'string', default: '3' },
    dir: { type: 'string', default: path.join(os.tmpdir(), 'tinytune-bigproject') },
    'generate-only': { type: 'boolean', default: false },
    distinct: { type: 'string' },
  },
});
const N = Number(opt.images);
const PHOTOS = [
  'astronaut.png',
  'chelsea.png',
  'coffee.png',
  'rocket.jpg',
  'motorcycle_left.png',
  'hubble_deep_field.jpg',
  'retina.jpg',
  'ihc.png',
  'grass.png',
  'brick.png',
];
const W = 4000,
  H = 3000;
const MiB = (n) => `${(n / 1048576).toFixed(0)} MiB`;
const sec = (ms) => `${(ms / 1000).toFixed(1)} s`;
const log = (...a) => console.log(...a);

// ---------------------------------------------------------------------------------------
// The JPEGs: image i belongs to class i % 10; made in a page that PUTs each file back.

const names = Array.from({ length: N }, (_, i) => `${path.parse(PHOTOS[i % 10]).name}-${String(i).padStart(4, '0')}.jpg`);

async function generate(browser) {
  fs.mkdirSync(opt.dir, { recursive: true });
  const missing = names.map((n, i) => [n, i]).filter(([n]) => !fs.existsSync(path.join(opt.dir, n)));
  if (!missing.length) return;
  log(`making ${missing.length} JPEGs of ${W}x${H} in ${opt.dir} ...`);
  const srv = await serve({ mounts: { '/photos/': SKIMAGE } });
  const handler = srv.server.listeners('request')[0];
  srv.server.removeListener('request', handler);
  srv.server.on('request', (req, res) => {
    if (req.method !== 'PUT') {
      handler(req, res);
      return;
    }
    const name = path.basename(decodeURIComponent(new URL(req.url, 'http://x').pathname));
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      fs.writeFileSync(path.join(opt.dir, `${name}.part`), Buffer.concat(chunks));
      fs.renameSync(path.join(opt.dir, `${name}.part`), path.join(opt.dir, name));
      res.end('ok');
    });
  });
  const { context } = await newContext(browser);
  const page = await context.newPage();
  await page.goto(`${srv.origin}/models/index.json`); // any page of the origin
  const t0 = performance.now();
  await page.evaluate(
    async ({ photos, jobs, W, H }) => {
      const bitmaps = await Promise.all(photos.map(async (p) => createImageBitmap(await (await fetch(`/photos/${p}`)).blob())));
      let s = 12345; // a seeded generator: the same files on every machine
      const rand = () => {
        s = (s * 1103515245 + 12345) >>> 0;
        return s / 4294967296;
      };
      const noise = new OffscreenCanvas(509, 509); // an odd size, so the tiling does not line up with JPEG's 8x8 blocks
      const nd = new ImageData(509, 509);
      for (let i = 0; i < nd.data.length; i += 4) {
        const v = 128 + (rand() - 0.5) * 90;
        nd.data[i] = nd.data[i + 1] = nd.data[i + 2] = v;
        nd.data[i + 3] = 255;
      }
      noise.getContext('2d').putImageData(nd, 0, 0);
      const canvas = new OffscreenCanvas(W, H);
      const ctx = canvas.getContext('2d');
      ctx.imageSmoothingQuality = 'high';
      const pattern = ctx.createPattern(noise, 'repeat');
      for (const [name, i] of jobs) {
        s = 777 + i * 7919; // each file from its own seed: any subset makes the same files
        const b = bitmaps[i % photos.length];
        const cw = Math.min(b.width, (b.height * 4) / 3) * (0.45 + 0.55 * rand()),
          ch = (cw * 3) / 4;
        const x = rand() * (b.width - cw),
          y = rand() * (b.height - ch);
        ctx.save();
        if (rand() < 0.5) {
          ctx.translate(W, 0);
          ctx.scale(-1, 1);
        }
        ctx.filter = `brightness(${0.8 + 0.4 * rand()})`;
        ctx.drawImage(b, x, y, cw, ch, 0, 0, W, H);
        ctx.restore();
        ctx.save();
        ctx.globalAlpha = 0.25;
        ctx.globalCompositeOperation = 'overlay';
        ctx.translate(Math.floor(rand() * 509), Math.floor(rand() * 509));
        ctx.fillStyle = pattern;
        ctx.fillRect(-509, -509, W + 509, H + 509);
        ctx.restore();
        const jpeg = await canvas.convertToBlob({ type: 'image/jpeg', quality: 0.92 });
        const r = await fetch(`/out/${name}`, { method: 'PUT', body: jpeg });
        if (!r.ok) throw new Error(`PUT ${name}: ${r.status}`);
      }
    },
    { photos: PHOTOS, jobs: missing, W, H },
  );
  log(`made in ${sec(performance.now() - t0)}`);
  await context.close();
  await srv.close();
}

// ---------------------------------------------------------------------------------------
// Resident memory of this run's Chromium: the process launched with our marker and all
// its descendants (other agents' browsers on the machine are not counted).

const marker = `--tinytune-bench=${crypto.randomUUID()}`;
function chromiumRss() {
  const procs = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const rss = Number(fs.readFileSync(`/proc/${d}/statm`, 'utf8').split(' ')[1]) * 4096;
      procs.push({ pid: Number(d), ppid, rss, root: fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').includes(marker) });
    } catch {
      /* gone meanwhile */
    }
  }
  const ours = new Set(procs.filter((p) => p.root).map((p) => p.pid));
  for (let grew = true; grew;) {
    grew = false;
    for (const p of procs)
      if (!ours.has(p.pid) && ours.has(p.ppid)) {
        ours.add(p.pid);
        grew = true;
      }
  }
  return procs.filter((p) => ours.has(p.pid)).reduce((a, p) => a + p.rss, 0);
}

// ---------------------------------------------------------------------------------------
// The page's main thread: a 10 ms timer chain and long tasks, from the first script on.

const PROBE = () => {
  const p = (window.__probe = { gaps: [], tasks: [] });
  const abs = (t) => performance.timeOrigin + t; // wall-clock ms, comparable across pages and reloads
  let last = performance.now();
  const tick = () => {
    const now = performance.now();
    p.gaps.push([abs(now), now - last]);
    last = now;
    setTimeout(tick, 10);
  };
  setTimeout(tick, 10);
  try {
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) p.tasks.push([abs(e.startTime + e.duration), e.duration]);
    }).observe({ type: 'longtask', buffered: true });
  } catch {
    /* no long-task timing */
  }
};

/** The longest timer gap and long task that ended in [from, to) (wall-clock ms). */
const worst = (page, from, to) =>
  page.evaluate(
    ([a, b]) => {
      const p = window.__probe;
      const inside = (list) => list.filter(([t]) => t >= a && t < b);
      const max = (list) => list.reduce((m, g) => Math.max(m, g[1]), 0);
      const out = { gap: max(inside(p.gaps)), task: max(inside(p.tasks)), tasks: inside(p.tasks).length };
      p.gaps = p.gaps.filter(([t]) => t >= b); // keep the probe's memory small over a long run
      return out;
    },
    [from, to],
  );

// ---------------------------------------------------------------------------------------

// --distinct M (a multiple of 10): only the first M files are made; file i >= M is a hard
// link to file i % M (same class), which the page stores, decodes and embeds as any other
// file. Making 2,000 distinct 12-megapixel JPEGs takes most of an hour on a busy machine.
if (opt.distinct) {
  const m = Number(opt.distinct);
  if (!(m > 0 && m % 10 === 0)) throw new Error('--distinct: a multiple of 10');
  for (let i = m; i < N; i++) {
    const to = path.join(opt.dir, names[i]);
    if (!fs.existsSync(to) && fs.existsSync(path.join(opt.dir, names[i % m]))) fs.linkSync(path.join(opt.dir, names[i % m]), to);
  }
}
if (names.some((n) => !fs.existsSync(path.join(opt.dir, n)))) {
  const gen = await launch();
  await generate(gen);
  await gen.close();
}
if (opt['generate-only']) process.exit(0);
const bytes = names.reduce((a, n) => a + fs.statSync(path.join(opt.dir, n)).size, 0);
log(
  `${N} JPEGs, ${W}x${H}, ${MiB(bytes)} (${(bytes / N / 1048576).toFixed(1)} MiB each on average), 10 classes${opt.distinct ? `, ${opt.distinct} distinct` : ''}`,
);

let peakRss = 0;
const sampler = setInterval(() => {
  peakRss = Math.max(peakRss, chromiumRss());
}, 1000);
const srv = await serve();
// A profile on disk, as a user's: IndexedDB then keeps the photos on disk (an incognito
// context, playwright's default, keeps them all in memory).
const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'tinytune-bigproject-profile-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: CHROMIUM,
  viewport: { width: 1280, height: 800 },
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run', marker],
});
const errors = [];
context.on('page', (p) => p.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`)));
await context.addInitScript(PROBE);
const rows = [];
try {
  // the peer: an empty page of the same browser with the same probe; its gaps are what the
  // (shared) machine does to any page's main thread, not this page's work
  const peer = await context.newPage();
  await peer.goto(`${srv.origin}/models/index.json`);
  const page = await context.newPage();
  page.setDefaultTimeout(0);
  const cdp = await context.newCDPSession(page);
  const status = () => page.evaluate(() => window.tinytune.client.call('status'));
  async function phase(name, fn) {
    peakRss = chromiumRss();
    const a = Date.now(),
      t0 = performance.now();
    const extra = await fn();
    const ms = performance.now() - t0;
    const w = await worst(page, a, Date.now());
    const idle = await worst(peer, a, Date.now());
    const heap = (await cdp.send('Runtime.getHeapUsage')).usedSize;
    const { memory } = await status();
    peakRss = Math.max(peakRss, chromiumRss());
    const row = {
      phase: name,
      seconds: ms / 1000,
      gapMs: w.gap,
      longestTaskMs: w.task,
      longTasks: w.tasks,
      idlePageGapMs: idle.gap,
      wasmBytes: memory,
      heapBytes: heap,
      rssPeakBytes: peakRss,
      ...extra,
    };
    rows.push(row);
    log(
      `${name.padEnd(18)} ${sec(ms).padStart(8)} · longest gap ${w.gap.toFixed(0)} ms (an idle page's: ${idle.gap.toFixed(0)} ms), longest task ${w.task.toFixed(0)} ms (${w.tasks} over 50 ms) · wasm ${MiB(memory)} · page heap ${MiB(heap)} · Chromium RSS peak ${MiB(peakRss)}${extra ? ` · ${JSON.stringify(extra)}` : ''}`,
    );
  }
  const waitFeatures = async () => {
    for (;;) {
      const s = await status();
      if (s.pending === 0 && s.images >= N) return;
      await new Promise((r) => setTimeout(r, 1000));
    }
  };
  const train = async (blocks, epochs) => {
    await page.$eval(
      '#blocks',
      (e, v) => {
        e.value = v;
        e.dispatchEvent(new Event('change'));
      },
      String(blocks),
    );
    await page.fill('#epochs', String(epochs));
    await page.dispatchEvent('#epochs', 'change');
    await page.click('#train');
    await page.waitForSelector('body[data-training="true"]', { timeout: 10000 }).catch(() => {});
    await page.waitForSelector('body[data-training="false"]');
    return { result: (await page.textContent('#summary')).trim() };
  };

  await phase('open', async () => {
    await page.goto(`${srv.origin}/`);
    await ready(page, 300000);
  });
  // K = 0 from the start, so the features computed in the background are the ones it trains on
  await page.$eval('#blocks', (e) => {
    e.value = '0';
    e.dispatchEvent(new Event('change'));
  });
  await phase('add', async () => {
    for (let k = 2; k < 10; k++) await page.click('#add-class');
    await page.waitForFunction(() => document.querySelectorAll('.class-card').length === 10);
    for (let k = 0; k < 10; k++) {
      const input = page.locator('.class-card .class-name').nth(k);
      await input.fill(path.parse(PHOTOS[k]).name);
      await input.press('Enter');
    }
    // one class after another, as a user dropping ten folders would
    for (let k = 0; k < 10; k++) {
      await page
        .locator('.class-card')
        .nth(k)
        .locator('input[type=file]')
        .setInputFiles(names.filter((_, i) => i % 10 === k).map((n) => path.join(opt.dir, n)));
    }
    await page.waitForFunction(() => (document.body.dataset.adding ?? '0') === '0' && !document.querySelector('.thumb.checking'), null, {
      polling: 1000,
    });
    const counts = await page.$$eval('.class-card', (cs) => cs.map((c) => Number(c.dataset.count)));
    const msgs = await page.$$eval('#messages .msg', (ms) => ms.map((m) => m.innerText.split('\n')[0]));
    return { images: counts.reduce((a, b) => a + b, 0), messages: msgs };
  });
  await phase('features', waitFeatures);
  await phase('train K=0', () => train(0, Number(opt.epochs)));
  await phase('reload', async () => {
    await page.reload();
    await ready(page, 300000);
    await page.waitForFunction(() => document.body.dataset.trained === 'true', null, { polling: 500 });
    const counts = await page.$$eval('.class-card', (cs) => cs.map((c) => Number(c.dataset.count)));
    return { images: counts.reduce((a, b) => a + b, 0) };
  });
  await phase('features (cached)', waitFeatures);
  await phase('train K=2', () => train(2, Number(opt['epochs-k2']))); // its features first: the frozen part up to the last 2 blocks, for every image
  const est = await page.evaluate(() => navigator.storage.estimate());
  log(`IndexedDB usage ${MiB(est.usage)} of a ${MiB(est.quota)} quota`);
  if (errors.length) log('page errors:', errors);
  const out = path.join(opt.dir, `bigproject-${N}.json`);
  fs.writeFileSync(out, JSON.stringify({ images: N, distinct: Number(opt.distinct ?? N), bytes, rows, storage: est, errors }, null, 1));
  log(`figures in ${out}`);
} finally {
  clearInterval(sampler);
  await context.close();
  await srv.close();
  fs.rmSync(profile, { recursive: true, force: true });
}
