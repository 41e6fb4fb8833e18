// The page end to end in real Chromium (Debian's, driven by playwright-core): classes of
// real photos, training in the worker while the page stays responsive, predictions,
// model files, persistence across reloads, offline reloads, and bad input.
// Screenshots of each step go to test-artifacts/e2e/.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { photoCrops } from './images.mjs';
import {
  ARTIFACTS,
  launch,
  serve,
  newContext,
  shot,
  ready,
  selectModel,
  classes,
  renameClass,
  addImages,
  waitChecked,
  dropFiles,
  messages,
  waitMessage,
  predict,
  startProbe,
  stopProbe,
} from './browser.mjs';

const NAMES = ['brick', 'grass', 'gravel'];
const log = (...a) => console.log('#', ...a);

let browser;
let photos; // per class: { train: [10 files], held: [1 file] }

before(async () => {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  browser = await launch();
  photos = await Promise.all(NAMES.map((n, k) => photoCrops(`${n}.png`, { count: 10, held: 1, seed: k + 1 })));
});

after(async () => {
  await browser?.close();
});

/**
 * Every request the browser made (pages, workers, service worker) stayed on the page's own
 * origin, was a GET and carried no body; and so was every request the server received.
 */
function assertLocalOnly(requests, { origin, received }) {
  assert.ok(received.length > 10, `the server saw only ${received.length} requests`);
  const sent = received.filter((r) => !['GET', 'HEAD'].includes(r.method) || r.bodyBytes > 0 || r.chunked);
  assert.deepEqual(
    sent.map((r) => `${r.method} ${r.url}`),
    [],
    'the server received data',
  );
  assert.ok(requests.length > 10, `only ${requests.length} requests recorded`);
  const foreign = requests.filter(
    (r) => !(r.url.startsWith(`${origin}/`) || r.url.startsWith(`blob:${origin}/`) || r.url.startsWith('data:')),
  );
  assert.deepEqual(
    foreign.map((r) => r.url),
    [],
    'requests left 127.0.0.1',
  );
  const withData = requests.filter((r) => !['GET', 'HEAD'].includes(r.method) || (r.postData && r.postData.length));
  assert.deepEqual(
    withData.map((r) => `${r.method} ${r.url}`),
    [],
    'requests sent data',
  );
  const longUrls = requests.filter((r) => r.url.startsWith(origin) && r.url.length > origin.length + 200);
  assert.deepEqual(
    longUrls.map((r) => r.url.slice(0, 120)),
    [],
    'no data smuggled in a URL',
  );
}

describe('page: train, predict, save, reload, offline', () => {
  let srv, context, page, requests, errors;
  let ttm, firstPredictions;

  before(async () => {
    srv = await serve();
    ({ context, requests, errors } = await newContext(browser));
    page = await context.newPage();
  });
  after(async () => {
    await context?.close();
    await srv?.close();
  });

  test('first visit: the page starts, shows what the browser offers, and switches to the smaller backbone', async () => {
    const t0 = performance.now();
    await page.goto(`${srv.origin}/`);
    await ready(page);
    log(`page + default model (mobilenet_v2_mid) ready in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    assert.match(await page.textContent('#chip-simd'), /WASM SIMD/);
    // Cross-origin isolated with SIMD: the threaded build, on all cores (at most 8).
    const cores = Math.min(8, await page.evaluate(() => navigator.hardwareConcurrency));
    const threads = cores > 1 ? `${cores} threads` : '1 thread';
    assert.match(await page.textContent('#chip-threads'), new RegExp(threads));
    // the service worker registers once the page is usable (web/app.mjs, keepOffline)
    await page.waitForFunction(() => /Works offline/.test(document.querySelector('#chip-offline').textContent), null, { timeout: 10000 });
    assert.match(await page.textContent('#chip-storage'), /Saved in this browser/);
    assert.equal(await page.evaluate(() => crossOriginIsolated), true);
    assert.match(await page.textContent('#env-detail'), new RegExp(`SIMD build · ${threads} in a Web Worker · crossOriginIsolated: yes`));
    assert.equal(await page.getAttribute('#camera-dialog', 'open'), null);
    assert.equal(await page.locator('.class-card .camera').first().isVisible(), false, 'no camera here: the webcam button is hidden');
    const t1 = performance.now();
    await selectModel(page, 'mobilenet_v2');
    log(`switched to mobilenet_v2 in ${((performance.now() - t1) / 1000).toFixed(1)} s`);
    assert.match(await page.textContent('#model-card-name'), /MobileNetV2 1\.0/);
    assert.match(await page.textContent('#model-status'), /ready/);
    await page.click('#model-card summary');
    await shot(page, '01-first-visit');
  });

  test('three classes of real photos, added with the file picker', async () => {
    await renameClass(page, 0, 'brick');
    await renameClass(page, 1, 'grass');
    await page.click('#add-class');
    await renameClass(page, 2, 'gravel');
    const t0 = performance.now();
    for (const k of [0, 1, 2]) await addImages(page, k, photos[k].train);
    log(`30 images added and checked in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    assert.deepEqual(
      await classes(page),
      NAMES.map((name) => ({ name, count: 10 })),
    );
    assert.equal(await page.locator('.thumb img').count(), 30);
    const size = await page.$eval('.thumb img', (i) => [i.naturalWidth, i.naturalHeight]);
    assert.deepEqual(size, [96, 96], 'thumbnails are downscaled to 96 px');
    assert.deepEqual(await messages(page).then((m) => m.filter((x) => x.kind === 'error' || x.kind === 'warn')), []);
    await shot(page, '02-classes');
  });

  test('training runs in the worker while the page stays responsive; accuracy and confusion matrix shown', async () => {
    // The worker computed features in the background while the images came in; a new
    // number of views per image makes training compute them all again, so the measured
    // period holds the heavy part (30 images x 3 views through the backbone) and the fit.
    await page.fill('#views', '3');
    await page.dispatchEvent('#views', 'change');
    await startProbe(page);
    const t0 = performance.now();
    await page.click('#train');
    await page.waitForSelector('body[data-training="true"]', { timeout: 5000 }).catch(() => {});
    await page.waitForSelector('body[data-training="false"]', { timeout: 180000 });
    const seconds = (performance.now() - t0) / 1000;
    const probe = await stopProbe(page);
    log(`training (features for 30 images x 3 views, then the fit) took ${seconds.toFixed(1)} s`);
    log(
      `main thread during training: setTimeout(10ms) gaps max ${probe.timer.max.toFixed(1)} ms, p99 ${probe.timer.p99.toFixed(1)} ms, median ${probe.timer.median.toFixed(1)} ms over ${probe.timer.n} ticks; ` +
        `rAF gaps max ${probe.raf.max.toFixed(1)} ms, p99 ${probe.raf.p99.toFixed(1)} ms over ${probe.raf.n} frames`,
    );
    fs.writeFileSync(path.join(ARTIFACTS, 'responsiveness.json'), JSON.stringify({ seconds, ...probe }, null, 2));
    const bad = (await messages(page)).filter((m) => m.kind === 'error');
    assert.deepEqual(bad, []);
    assert.ok(probe.timer.n > 50, 'the probe ran');
    assert.ok(probe.timer.max < 200, `the main thread was blocked for ${probe.timer.max.toFixed(0)} ms`);

    assert.equal(await page.isVisible('#results'), true);
    const summary = await page.textContent('#summary');
    const acc = Number(summary.match(/Validation accuracy (\d+(?:\.\d+)?)%/)?.[1]);
    assert.ok(acc >= 60, `validation accuracy ${acc}% (${summary})`);
    const matrix = await page.$$eval('#confusion tbody tr', (rows) =>
      rows.map((r) => [...r.querySelectorAll('td')].map((td) => Number(td.textContent))),
    );
    assert.equal(matrix.length, 3);
    assert.ok(matrix.every((r) => r.length === 3));
    const total = matrix.flat().reduce((a, b) => a + b, 0),
      right = matrix.reduce((a, r, i) => a + r[i], 0);
    assert.ok(total >= 3, `validation images in the matrix: ${total}`);
    assert.ok(Math.abs((100 * right) / total - acc) < 0.2, 'the matrix agrees with the accuracy');
    assert.deepEqual(await page.$$eval('#confusion thead th[scope=col]', (t) => t.map((x) => x.textContent)), NAMES);
    assert.equal(await page.locator('#per-class .bar-row').count(), 3);
    assert.match(await page.textContent('#train-status'), /Done in [\d.]+ s: \d+ epochs/);
    log(`${summary}; confusion ${JSON.stringify(matrix)}`);
    await shot(page, '03-trained');
  });

  test('a held-out photo of each class is predicted right', async () => {
    firstPredictions = [];
    for (const [k, name] of NAMES.entries()) {
      const preds = await predict(page, photos[k].held[0]);
      log(`${photos[k].held[0].name}: ${preds.map((p) => `${p.label} ${p.pct}%`).join(', ')}`);
      assert.equal(preds[0].label, name);
      assert.equal(preds.length, 3);
      firstPredictions.push(preds);
    }
    await shot(page, '04-predict');
  });

  test('the trained model saves as a .ttm download', async () => {
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#save-model')]);
    assert.match(download.suggestedFilename(), /^brick-grass-gravel\.ttm$/);
    ttm = path.join(ARTIFACTS, download.suggestedFilename());
    await download.saveAs(ttm);
    const size = fs.statSync(ttm).size;
    log(`saved ${download.suggestedFilename()}: ${size} bytes`);
    assert.ok(size > 5000);
  });

  test('after a reload the project is still there, its model restored, and the saved file loads back', async () => {
    await page.reload();
    await ready(page);
    assert.deepEqual(
      await classes(page),
      NAMES.map((name) => ({ name, count: 10 })),
    );
    assert.equal(await page.inputValue('#model'), 'mobilenet_v2');
    assert.match(await page.textContent('#trained-status'), /last session: brick, grass, gravel/);
    assert.equal(await page.isVisible('#confusion'), true, 'the last report comes back with the model');
    const restored = await predict(page, photos[0].held[0]);
    assert.equal(restored[0].label, 'brick');
    assert.equal(restored[0].pct, firstPredictions[0][0].pct);

    await page.locator('#load-model').setInputFiles(ttm);
    await waitMessage(page, /Loaded 'brick-grass-gravel\.ttm': classes brick, grass, gravel/);
    assert.match(await page.textContent('#trained-status'), /Loaded model: brick, grass, gravel/);
    for (const [k, name] of NAMES.entries()) {
      const preds = await predict(page, photos[k].held[0]);
      assert.equal(preds[0].label, name);
      assert.deepEqual(preds, firstPredictions[k], 'the loaded model predicts exactly as before');
    }
    await shot(page, '05-reloaded');
  });

  test('offline: with the server gone and the network off, a reload brings back the page, engine, model and project', async () => {
    await srv.close();
    await context.setOffline(true);
    const t0 = performance.now();
    await page.reload();
    await ready(page);
    log(`offline reload ready in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    assert.deepEqual(
      await classes(page),
      NAMES.map((name) => ({ name, count: 10 })),
    );
    assert.match(await page.textContent('#model-status'), /ready/);
    const preds = await predict(page, photos[1].held[0]);
    assert.equal(preds[0].label, 'grass');
    assert.deepEqual(preds, firstPredictions[1]);
    await shot(page, '06-offline');
  });

  test("a model file made on another backbone is refused with the engine's message (offline still)", async () => {
    await selectModel(page, 'mobilenet_v2_mid'); // cached on the first visit: works offline
    await page.locator('#load-model').setInputFiles(ttm);
    const m = await waitMessage(page, /Could not load 'brick-grass-gravel\.ttm'/);
    assert.equal(m.kind, 'error');
    assert.match(m.text, /trained on backbone 'mobilenet_v2'.*the loaded backbone is 'mobilenet_v2_mid'/s);
    log(`refusal: ${m.text.split('\n')[0]}`);
    await shot(page, '07-other-backbone-refused');
  });

  test('no request ever left 127.0.0.1, and none carried data', () => {
    assertLocalOnly(requests, srv);
    log(
      `${requests.length} requests recorded in the browser (${requests.filter((r) => r.where === 'context').length} at context level, pages, workers and the service worker), ` +
        `${srv.received.length} received by the server: all GET to ${srv.origin}, none with a body`,
    );
    assert.deepEqual(errors, []);
  });
});

describe('page: bad input', () => {
  let srv, context, page, requests, errors, project;

  before(async () => {
    srv = await serve();
    ({ context, requests, errors } = await newContext(browser));
    page = await context.newPage();
    await page.goto(`${srv.origin}/`);
    await ready(page);
    await selectModel(page, 'mobilenet_v2');
  });
  after(async () => {
    await context?.close();
    await srv?.close();
  });

  test('a non-image and a truncated PNG dropped on a class are skipped with a message naming each; the rest stay', async () => {
    const good = photos[0].train.slice(0, 3);
    const png = photos[0].train[3].buffer;
    const files = [
      good[0],
      { name: 'notes.jpg', mimeType: 'image/jpeg', buffer: Buffer.from('These are my notes, not a photo.\n'.repeat(20)) },
      good[1],
      { name: 'broken.png', mimeType: 'image/png', buffer: png.subarray(0, Math.floor(png.length / 2)) },
      good[2],
    ];
    await dropFiles(page, '.class-card:nth-of-type(1) .dropzone', files);
    await waitChecked(page);
    const m = await waitMessage(page, /Skipped 2 files/);
    assert.equal(m.kind, 'warn');
    assert.match(m.text, /notes\.jpg: not an image/);
    assert.match(m.text, /broken\.png: corrupt or truncated PNG/);
    assert.match(m.text, /3 other images added to 'Class 1'/);
    log(m.text.replace(/\n/g, ' | '));
    assert.deepEqual(await classes(page), [
      { name: 'Class 1', count: 3 },
      { name: 'Class 2', count: 0 },
    ]);
    assert.deepEqual(
      await page.$$eval('.class-card:nth-of-type(1) .thumb', (t) => t.map((x) => x.title)),
      good.map((f) => f.name),
    );
    await shot(page, '10-bad-files-skipped');
  });

  test('training with one class, or with an empty class, is refused with a clear message', async () => {
    await page.locator('.class-card').nth(1).locator('.delete').click(); // empty: deleted at once
    assert.deepEqual(await classes(page), [{ name: 'Class 1', count: 3 }]);
    await page.click('#train');
    const one = await waitMessage(page, /Training needs at least two classes/);
    assert.equal(one.kind, 'error');
    assert.match(one.text, /only one \('Class 1'\)/);
    await page.click('#add-class');
    await page.click('#train');
    const empty = await waitMessage(page, /Class 'Class 2' has no images/);
    assert.equal(empty.kind, 'error');
    assert.equal(await page.getAttribute('body', 'data-trained'), 'false');
    await shot(page, '11-one-class-and-empty-class');
  });

  test('a reload in the middle of training loses no class, image or setting', async () => {
    await renameClass(page, 1, 'grass');
    await addImages(page, 1, photos[1].train);
    await page.click('details.advanced summary');
    await page.selectOption('#blocks', '1');
    await page.fill('#epochs', '60');
    await page.dispatchEvent('#epochs', 'change');
    // 8 views: epochs long enough (with threads) to reload before early stopping ends it
    await page.fill('#views', '8');
    await page.dispatchEvent('#views', 'change');
    await startProbe(page);
    await page.click('#train');
    await page.waitForFunction(
      () => Number(document.getElementById('train-status').textContent.match(/Epoch (\d+) of 60/)?.[1]) >= 2,
      null,
      { timeout: 120000 },
    );
    const probe = await stopProbe(page);
    log(
      `main thread while fine-tuning one block: setTimeout(10ms) gaps max ${probe.timer.max.toFixed(1)} ms, p99 ${probe.timer.p99.toFixed(1)} ms over ${probe.timer.n} ticks; ` +
        `rAF gaps max ${probe.raf.max.toFixed(1)} ms over ${probe.raf.n} frames`,
    );
    assert.ok(probe.timer.max < 200, `the main thread was blocked for ${probe.timer.max.toFixed(0)} ms`);
    await shot(page, '12-training-with-one-block');
    const status = await page.evaluate(() => {
      const s = { training: document.body.dataset.training, text: document.getElementById('train-status').textContent };
      location.reload();
      return s;
    });
    assert.equal(status.training, 'true', `still training when reloaded (${status.text})`);
    log(`reloaded during training at: ${status.text}`);
    await ready(page);
    assert.deepEqual(await classes(page), [
      { name: 'Class 1', count: 3 },
      { name: 'grass', count: 10 },
    ]);
    assert.equal(await page.getAttribute('body', 'data-training'), 'false');
    assert.equal(await page.inputValue('#blocks'), '1');
    assert.equal(await page.inputValue('#epochs'), '60');
    assert.equal(await page.inputValue('#model'), 'mobilenet_v2');
    await shot(page, '13-reloaded-mid-training');
  });

  test('Stop ends a training early, and the model so far is kept and usable', async () => {
    await page.click('#train'); // one trainable block and 60 epochs, as set before the reload
    await page.waitForFunction(
      () => Number(document.getElementById('train-status').textContent.match(/Epoch (\d+) of 60/)?.[1]) >= 2,
      null,
      { timeout: 120000 },
    );
    await page.click('#stop');
    await page.waitForSelector('body[data-training="false"]', { timeout: 30000 });
    const status = await page.textContent('#train-status');
    assert.match(status, /Stopped after \d+ epochs; the best weights so far are kept/);
    await waitMessage(page, /Training stopped\. The model so far is ready/);
    assert.equal(await page.getAttribute('body', 'data-trained'), 'true');
    const preds = await predict(page, photos[1].held[0]);
    assert.equal(preds[0].label, 'grass');
    log(`${status} Held-out grass: ${preds.map((p) => `${p.label} ${p.pct}%`).join(', ')}`);
    await shot(page, '14-stopped');
  });

  test('the whole project exports to one file and imports back', async () => {
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#export-project')]);
    project = path.join(ARTIFACTS, download.suggestedFilename());
    await download.saveAs(project);
    assert.match(path.basename(project), /\.ttproject$/);
    const before = await classes(page);
    await page.click('#clear-project');
    await page.click('#clear-project'); // second click confirms
    await page.waitForFunction(
      () => document.querySelectorAll('.thumb').length === 0 && document.querySelectorAll('.class-card').length === 2,
    );
    assert.deepEqual(await classes(page), [
      { name: 'Class 1', count: 0 },
      { name: 'Class 2', count: 0 },
    ]);
    await page.locator('#import-project').setInputFiles(project);
    await waitMessage(page, /Imported '.*\.ttproject': 2 classes, 13 images/);
    assert.deepEqual(await classes(page), before);
    assert.equal(await page.locator('.thumb img').count(), 13);
    await shot(page, '15-project-imported');
  });

  test('folders dropped on "New class" become one class each (subfolders walked, hidden files ignored)', async () => {
    const [a, b, c, d, e] = photos[2].train.slice(0, 5).map((f) => ({ name: f.name, b64: f.buffer.toString('base64') }));
    const before = (await classes(page)).length;
    await page.evaluate(
      (files) => {
        // What Chromium's FileSystemEntry API gives for a real folder drop (a synthetic
        // DataTransfer has no entries, so they are modelled here).
        const file = (f, name = f.name) => new File([Uint8Array.from(atob(f.b64), (ch) => ch.charCodeAt(0))], name, { type: 'image/png' });
        const fileEntry = (f, name) => ({ isFile: true, isDirectory: false, name: name ?? f.name, file: (ok) => ok(file(f, name)) });
        const dirEntry = (name, children) => ({
          isFile: false,
          isDirectory: true,
          name,
          // like the real API: asynchronous, in chunks, then an empty chunk
          createReader: () => {
            const left = [...children];
            return { readEntries: (ok) => setTimeout(() => ok(left.splice(0, 2))) };
          },
        });
        const [a, b, c, d, e] = files;
        const entries = [
          fileEntry(e, 'loose.png'),
          dirEntry('cats', [
            fileEntry(b, 'b.png'),
            dirEntry('more', [fileEntry(c, 'c.png')]),
            fileEntry(a, 'a.png'),
            fileEntry(a, '.DS_Store'),
          ]),
          dirEntry('dogs', [fileEntry(d, 'd.png')]),
        ];
        const dataTransfer = { items: entries.map((en) => ({ kind: 'file', webkitGetAsEntry: () => en })), files: [] };
        const ev = new Event('drop', { bubbles: true, cancelable: true });
        Object.defineProperty(ev, 'dataTransfer', { value: dataTransfer });
        document.getElementById('add-class').dispatchEvent(ev);
      },
      [a, b, c, d, e],
    );
    await page.waitForFunction((n) => document.querySelectorAll('.class-card').length === n + 3, before);
    await waitChecked(page);
    const now = await classes(page);
    assert.deepEqual(
      now.slice(before).map((x) => [x.name.replace(/^Class \d+$/, 'Class N'), x.count]),
      [
        ['Class N', 1],
        ['cats', 3],
        ['dogs', 1],
      ],
    );
    const cats = await page.$$eval('.class-card', (cards) =>
      [...cards.find((c) => c.querySelector('.class-name').value === 'cats').querySelectorAll('.thumb')].map((t) => t.title),
    );
    assert.deepEqual(cats, ['a.png', 'b.png', 'c.png'], 'sorted by name, subfolder walked, .DS_Store left out');
    await shot(page, '17-folders-dropped');
    // an image can be taken out again, and a class with images is deleted on a second click
    const catsCard = page.locator('.class-card').nth(before + 1);
    await catsCard.locator('.thumb').first().hover();
    await catsCard.locator('.thumb-remove').first().click();
    assert.deepEqual((await classes(page))[before + 1], { name: 'cats', count: 2 });
    await catsCard.locator('.delete').click();
    assert.equal((await classes(page)).length, before + 3, 'the first click only asks');
    await catsCard.locator('.delete').click();
    await waitMessage(page, /Deleted class 'cats' and its 2 images/);
    assert.deepEqual(
      (await classes(page)).slice(before).map((x) => x.name.replace(/^Class \d+$/, 'Class N')),
      ['Class N', 'dogs'],
    );
  });

  test('no request left 127.0.0.1, and none carried data', () => {
    assertLocalOnly(requests, srv);
    assert.deepEqual(errors, []);
  });
});

describe('page: a browser without WebAssembly SIMD', () => {
  let srv, context, requests, errors;
  before(async () => {
    srv = await serve();
  });
  after(async () => {
    await context?.close();
    await srv?.close();
  });

  test('says so, and the engine runs its scalar build', async () => {
    ({ context, requests, errors } = await newContext(browser));
    // As in a browser without SIMD: no module with a SIMD (0xfd-prefixed) instruction validates.
    await context.addInitScript(() => {
      const validate = WebAssembly.validate;
      WebAssembly.validate = (b) => (new Uint8Array(b.buffer ?? b, b.byteOffset ?? 0, b.byteLength).includes(0xfd) ? false : validate(b));
    });
    const page = await context.newPage();
    await page.goto(`${srv.origin}/`);
    await ready(page);
    assert.equal(await page.textContent('#chip-simd'), 'No WASM SIMD: scalar build');
    const m = await waitMessage(page, /does not support WebAssembly SIMD/);
    assert.equal(m.kind, 'warn');
    assert.match(m.text, /runs its scalar build instead/);
    assert.match(await page.textContent('#env-detail'), /WebAssembly scalar \(no SIMD\) build/);
    assert.ok(
      requests.some((r) => r.url.endsWith('/build/tinytune-scalar.wasm')),
      'the scalar build was fetched',
    );
    await shot(page, '16-no-simd');
    assert.deepEqual(errors, []);
  });
});

describe('page: served without cross-origin isolation', () => {
  let srv, context, errors;
  before(async () => {
    srv = await serve({ isolated: false });
  });
  after(async () => {
    await context?.close();
    await srv?.close();
  });

  test('runs on one thread and says why', async () => {
    ({ context, errors } = await newContext(browser));
    const page = await context.newPage();
    await page.goto(`${srv.origin}/`);
    await ready(page);
    assert.equal(await page.evaluate(() => crossOriginIsolated), false);
    assert.match(await page.textContent('#chip-threads'), /^1 thread$/);
    assert.match(await page.getAttribute('#chip-threads', 'title'), /not cross-origin isolated/);
    assert.match(await page.textContent('#env-detail'), /SIMD build · 1 thread in a Web Worker · crossOriginIsolated: no/);
    assert.deepEqual(errors, []);
  });
});

describe("page: webcam capture (Chromium's fake camera)", () => {
  let camBrowser, srv, context, page, errors;

  before(async () => {
    camBrowser = await launch(['--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream']);
    srv = await serve();
    ({ context, errors } = await newContext(camBrowser, { permissions: ['camera'] }));
    page = await context.newPage();
    await page.goto(`${srv.origin}/`);
    await ready(page);
  });
  after(async () => {
    await camBrowser?.close();
    await srv?.close();
  });

  test('where a camera exists, each class offers it, and captured frames join the class', async () => {
    const button = page.locator('.class-card').nth(0).locator('.camera');
    assert.equal(await button.isVisible(), true);
    await button.click();
    await page.waitForFunction(
      () => document.getElementById('camera-dialog').open && document.getElementById('camera-video').videoWidth > 0,
      null,
      { timeout: 15000 },
    );
    for (const n of [1, 2]) {
      await page.click('#camera-capture');
      await page.waitForFunction((k) => document.getElementById('camera-count').textContent.startsWith(`${k} photo`), n);
      await waitChecked(page);
    }
    assert.match(await page.textContent('#camera-count'), /2 photos taken/);
    await shot(page, '20-webcam');
    await page.click('#camera-close');
    assert.equal(await page.evaluate(() => document.getElementById('camera-dialog').open), false);
    assert.equal(await page.evaluate(() => document.getElementById('camera-video').srcObject), null, 'the camera is released');
    assert.deepEqual((await classes(page))[0], { name: 'Class 1', count: 2 });
    assert.match(await page.$eval('.class-card .thumb', (t) => t.title), /^webcam-.*\.jpg$/);
    assert.deepEqual(errors, []);
  });
});
