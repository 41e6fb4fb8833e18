// Soak in the page: many train/predict cycles in one Chromium tab (the real page, its
// worker and IndexedDB), to show that the worker's wasm memory and the page's JS heap stop
// growing after the first few. Each cycle: Train (3 epochs, K = 0 and 2 alternating),
// predict a held-out photo, read the figures (page heap after a forced GC).
//   node bench/soak-page.mjs [cycles=50]
import { photoCrops } from '../tests/e2e/images.mjs';
import { launch, serve, newContext, ready, selectModel, renameClass, addImages, predict } from '../tests/e2e/browser.mjs';

const cycles = Number(process.argv[2] ?? 50);
const MiB = (n) => (n / 1048576).toFixed(1);
const photos = await Promise.all(['brick.png', 'grass.png'].map((n, k) => photoCrops(n, { count: 8, held: 1, seed: 11 + k })));
const browser = await launch();
const srv = await serve();
const { context } = await newContext(browser);
try {
  const page = await context.newPage();
  await page.goto(`${srv.origin}/`);
  await ready(page, 120000);
  await selectModel(page, 'mobilenet_v2');
  await renameClass(page, 0, 'brick');
  await renameClass(page, 1, 'grass');
  await addImages(page, 0, photos[0].train);
  await addImages(page, 1, photos[1].train);
  await page.fill('#epochs', '3');
  await page.dispatchEvent('#epochs', 'change');
  const cdp = await context.newCDPSession(page);
  const rows = [];
  const t0 = performance.now();
  for (let i = 1; i <= cycles; i++) {
    const blocks = i % 2 ? 0 : 2;
    await page.$eval(
      '#blocks',
      (e, v) => {
        e.value = v;
        e.dispatchEvent(new Event('change'));
      },
      String(blocks),
    ); // (inside Advanced)
    await page.click('#train');
    await page.waitForSelector('body[data-training="true"]', { timeout: 10000 }).catch(() => {});
    await page.waitForSelector('body[data-training="false"]', { timeout: 300000 });
    const top = (await predict(page, photos[i % 2].held[0]))[0]?.label;
    await cdp.send('HeapProfiler.collectGarbage');
    const heap = (await cdp.send('Runtime.getHeapUsage')).usedSize;
    const { memory } = await page.evaluate(() => window.tinytune.client.call('status'));
    rows.push({ cycle: i, heap, memory });
    console.log(
      `cycle ${String(i).padStart(2)} K=${blocks}: worker wasm ${MiB(memory)} MiB, page JS heap ${MiB(heap)} MiB, held-out ${top === ['brick', 'grass'][i % 2] ? 'right' : 'wrong'}`,
    );
  }
  const first = rows[Math.min(5, rows.length) - 1],
    last = rows.at(-1);
  console.log(`\n${cycles} cycles in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  console.log(
    `worker wasm memory: cycle 1 ${MiB(rows[0].memory)} MiB, cycle 5 ${MiB(first.memory)} MiB, cycle ${last.cycle} ${MiB(last.memory)} MiB`,
  );
  console.log(
    `page JS heap (after GC): cycle 1 ${MiB(rows[0].heap)} MiB, cycle 5 ${MiB(first.heap)} MiB, cycle ${last.cycle} ${MiB(last.heap)} MiB, max after cycle 5 ${MiB(Math.max(...rows.slice(4).map((r) => r.heap)))} MiB`,
  );
} finally {
  await context.close();
  await browser.close();
  await srv.close();
}
