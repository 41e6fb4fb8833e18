// The page's deployable model, test sets and auto mode end to end in Chromium, on real
// photos: the default (auto) training shows what it chose and why and that the final model
// learned from every image; the exported TensorFlow.js zip, unzipped and loaded in Node with
// tf.loadLayersModel, gives the page's own probabilities (for the head alone, K = 0, and with
// the last 2 blocks, K = 2), and the ONNX file does in onnxruntime-node; a labelled test
// folder dropped on Try it gets the numbers the CLI's evaluate gives on the same images and
// the same saved model; a test folder naming a class the model lacks and an export with no
// model get clear messages; the model picker says what each backbone was trained for.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { photoCrops } from './images.mjs';
import { ARTIFACTS, ROOT, launch, serve, newContext, shot, ready, renameClass, addImages, waitMessage } from './browser.mjs';
import { referenceTf, dirHandler, referenceInput, maxAbsDiff, readPhoto } from '../helpers.mjs';
import { createEngine } from '../../wasm/engine.mjs';

const NAMES = ['brick', 'grass', 'gravel'];
const log = (...a) => console.log('#', ...a);
const OUT = path.join(ARTIFACTS, 'deploy');
// Held-out crops of the classes come out near one-hot (probabilities saturate at 1 and
// 1e-15), where an absolute comparison says little: photos of none of the classes are not
// saturated, and every comparison also checks log-probabilities.
const OTHER = ['chelsea.png', 'coffee.png', 'astronaut.png'];

/** max |a - b| and the largest relative difference of the probabilities above 1e-30 (a log-space check). */
function compare(got, want) {
  let rel = 0;
  for (let i = 0; i < want.length; i++) if (want[i] > 1e-30) rel = Math.max(rel, Math.abs(Math.log(got[i]) - Math.log(want[i])));
  return { abs: maxAbsDiff(got, want), rel };
}

let browser, srv, context, page, errors, photos, engine;

/** Drops a folder tree on an element the way Chromium's FileSystemEntry API gives a real folder drop. */
async function dropTree(selector, tree) {
  const plain = (t) => ({
    name: t.name,
    children: t.children?.map(plain),
    b64: t.buffer ? Buffer.from(t.buffer).toString('base64') : undefined,
  });
  await page.evaluate(
    ([sel, roots]) => {
      const entry = (t) =>
        t.children
          ? {
              isFile: false,
              isDirectory: true,
              name: t.name,
              createReader: () => {
                const left = t.children.map(entry);
                return { readEntries: (ok) => setTimeout(() => ok(left.splice(0, 3))) };
              },
            }
          : {
              isFile: true,
              isDirectory: false,
              name: t.name,
              file: (ok) => ok(new File([Uint8Array.from(atob(t.b64), (c) => c.charCodeAt(0))], t.name, { type: 'image/png' })),
            };
      const dataTransfer = { items: roots.map((r) => ({ kind: 'file', webkitGetAsEntry: () => entry(r) })), files: [] };
      const ev = new Event('drop', { bubbles: true, cancelable: true });
      Object.defineProperty(ev, 'dataTransfer', { value: dataTransfer });
      document.querySelector(sel).dispatchEvent(ev);
    },
    [selector, tree.map(plain)],
  );
}

/** The page's own probabilities for an image (the worker's predict), in class order. */
async function pageProbabilities(buffer) {
  const preds = await page.evaluate(
    (b64) => window.tinytune.client.call('predict', { bytes: Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)), topk: 100 }),
    Buffer.from(buffer).toString('base64'),
  );
  const out = new Array(preds.length);
  for (const p of preds) out[p.index] = p.probability;
  return out;
}

async function download(selector) {
  const [d] = await Promise.all([page.waitForEvent('download'), page.click(selector)]);
  const file = path.join(OUT, d.suggestedFilename());
  await d.saveAs(file);
  return file;
}

/** Exports the page's model for TensorFlow.js, unzips it (Info-ZIP's unzip) and compares tfjs's probabilities with the page's on held-out photos. */
async function checkTfjsExport(tag) {
  const zipFile = await download('#export-model');
  assert.match(path.basename(zipFile), /^brick-grass-gravel-tfjs\.zip$/);
  const dir = path.join(OUT, `tfjs-${tag}`);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  execFileSync('unzip', ['-q', zipFile, '-d', dir]); // checks every CRC-32
  assert.deepEqual(fs.readdirSync(dir).sort(), ['metadata.json', 'model.json', 'weights.bin']);
  const meta = JSON.parse(fs.readFileSync(path.join(dir, 'metadata.json'), 'utf8'));
  assert.deepEqual(meta.labels, NAMES);
  const tf = await referenceTf();
  const model = await tf.loadLayersModel(dirHandler(dir));
  let worst = 0,
    worstRel = 0,
    leastTop = 1;
  const images = [...[0, 1, 2].flatMap((k) => photos[k].held.slice(0, 2)), ...OTHER.map((f) => ({ name: f, buffer: readPhoto(f) }))];
  for (const img of images) {
    const want = await pageProbabilities(img.buffer);
    const x = referenceInput(tf, engine.decodeImage(new Uint8Array(img.buffer)));
    const y = model.predict(x);
    const got = await y.data();
    x.dispose();
    y.dispose();
    const d = compare(got, want);
    worst = Math.max(worst, d.abs);
    worstRel = Math.max(worstRel, d.rel);
    leastTop = Math.min(leastTop, Math.max(...want));
  }
  model.dispose();
  assert.equal(await page.getAttribute('#export-help', 'data-format'), 'tfjs');
  const snippet = await page.textContent('#export-snippet');
  assert.match(snippet, /tf\.loadLayersModel\('model\/model\.json'\)/);
  assert.match(snippet, /div\(255\)/);
  assert.match(snippet, /resizeBilinear\(rgb, \[224, 224\], true\)/);
  log(
    `tfjs export (${tag}, trainable blocks ${meta.trainableBlocks}): ${fs.statSync(zipFile).size} bytes; over ${images.length} photos (6 held-out, ${OTHER.length} of no class; the least confident top class ${leastTop.toFixed(3)}): ` +
      `max |tfjs - page| ${worst.toExponential(2)}, max |log tfjs - log page| ${worstRel.toExponential(2)}`,
  );
  assert.ok(worst <= 1e-3, `tfjs differs from the page by ${worst}`);
  assert.ok(worstRel <= 1e-2, `tfjs's log-probabilities differ from the page's by ${worstRel}`);
  return { meta, worst };
}

before(async () => {
  fs.rmSync(OUT, { recursive: true, force: true });
  fs.mkdirSync(OUT, { recursive: true });
  engine = await createEngine();
  photos = await Promise.all(NAMES.map((n, k) => photoCrops(`${n}.png`, { count: 10, held: 8, seed: k + 1 })));
  browser = await launch();
  srv = await serve();
  ({ context, errors } = await newContext(browser));
  page = await context.newPage();
});

after(async () => {
  await context?.close();
  await browser?.close();
  await srv?.close();
});

describe('page: a deployable model, labelled test sets, auto mode', () => {
  test('the model picker says in plain words what each backbone was trained for', async () => {
    await page.goto(`${srv.origin}/`);
    await ready(page);
    const options = await page.$$eval('#model option', (os) => os.map((o) => ({ id: o.value, text: o.textContent })));
    const index = JSON.parse(fs.readFileSync(path.join(ROOT, 'models', 'index.json'), 'utf8')).models;
    log(`model picker: ${options.map((o) => o.text).join(' | ')}`);
    assert.deepEqual(
      options.map((o) => o.id),
      index.map((m) => m.id),
    );
    for (const m of index) {
      assert.ok(m.card.description, `${m.id} has a description`);
      assert.ok(options.find((o) => o.id === m.id).text.includes(m.card.description), `${m.id}: '${m.card.description}'`);
    }
  });

  test('export with no trained model: the button is off, and the worker says why', async () => {
    assert.equal(await page.isDisabled('#export-model'), true);
    assert.equal(await page.isDisabled('#export-onnx'), true);
    const err = await page.evaluate(() =>
      window.tinytune.client.call('export', { format: 'tfjs' }).then(
        () => null,
        (e) => e.message,
      ),
    );
    assert.equal(err, 'there is no trained model to export: train one, or load a .ttm file');
  });

  test('auto mode is the default: training shows both phases, what auto chose and why, and that the final model learned from every image', async () => {
    await page.click('details.advanced summary');
    assert.equal(await page.inputValue('#blocks'), 'auto');
    await renameClass(page, 0, 'brick');
    await renameClass(page, 1, 'grass');
    await page.click('#add-class');
    await renameClass(page, 2, 'gravel');
    for (const k of [0, 1, 2]) await addImages(page, k, photos[k].train);
    await page.evaluate(() => {
      window.__phases = [];
      const seen = (t) => {
        const m = t.match(/^(Checking on held-out images|Final training on all images) · Epoch (\d+) of (\d+)/);
        if (m) window.__phases.push([m[1], Number(m[3])]);
      };
      new MutationObserver(() => seen(document.getElementById('train-status').textContent)).observe(
        document.getElementById('train-status'),
        { childList: true, characterData: true, subtree: true },
      );
    });
    await page.click('#train');
    await page.waitForSelector('body[data-trained="true"][data-training="false"]', { timeout: 300000 });
    const report = await page.evaluate(() => window.tinytune.trained.report);
    const phases = await page.evaluate(() => [...new Set(window.__phases.map((p) => p.join(' of ')))]);
    log(`auto: ${JSON.stringify(report.auto)}; refit ${JSON.stringify(report.refit)}; progress phases ${phases.join(', ')}`);
    assert.ok(
      phases.includes('Checking on held-out images of 30') && phases.includes('Final training on all images of 30'),
      `phases shown: ${phases}`,
    );
    assert.ok(report.auto && [0, 2].includes(report.auto.blocks));
    const auto = await page.textContent('#auto-summary');
    assert.match(auto, /^Auto chose (a new head alone|the last 2 blocks fine-tuned): /);
    assert.equal(await page.isVisible('#auto-summary'), true);
    assert.doesNotMatch(auto, /K=/, 'no jargon');
    assert.match(await page.textContent('#refit-summary'), /the final model then learned from all 30 images/);
    assert.match(await page.textContent('#summary'), /Validation accuracy \d+(\.\d)?% on \d+ held-out images/);
    await shot(page, '40-auto-trained');
  });

  test("export for TensorFlow.js: the zip loads with tf.loadLayersModel and gives the page's probabilities (auto's choice)", async () => {
    const { meta } = await checkTfjsExport('auto');
    const report = await page.evaluate(() => window.tinytune.trained.report);
    assert.equal(meta.trainableBlocks, report.auto.blocks);
    await shot(page, '41-exported');
  });

  test("ONNX export: onnxruntime-node gives the page's probabilities", async () => {
    const file = await download('#export-onnx');
    assert.match(path.basename(file), /^brick-grass-gravel\.onnx$/);
    const ort = await import('onnxruntime-node');
    const tf = await referenceTf();
    const session = await ort.InferenceSession.create(fs.readFileSync(file));
    let worst = 0,
      worstRel = 0;
    for (const img of [...[0, 1, 2].map((k) => photos[k].held[3]), ...OTHER.map((f) => ({ name: f, buffer: readPhoto(f) }))]) {
      const want = await pageProbabilities(img.buffer);
      const x = referenceInput(tf, engine.decodeImage(new Uint8Array(img.buffer)));
      const data = await x.data();
      x.dispose();
      const out = await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', data, [1, 224, 224, 3]) });
      const d = compare(out[session.outputNames[0]].data, want);
      worst = Math.max(worst, d.abs);
      worstRel = Math.max(worstRel, d.rel);
    }
    log(
      `onnx export: ${fs.statSync(file).size} bytes; over 3 held-out photos and ${OTHER.length} of no class: max |onnxruntime - page| ${worst.toExponential(2)}, max |log onnxruntime - log page| ${worstRel.toExponential(2)}`,
    );
    assert.ok(worst <= 1e-3, `onnxruntime differs from the page by ${worst}`);
    assert.ok(worstRel <= 1e-2, `onnxruntime's log-probabilities differ from the page's by ${worstRel}`);
    assert.match(await page.textContent('#export-snippet'), /ort\.InferenceSession\.create\('model\.onnx'\)/);
  });

  test("a labelled test folder dropped on Try it: the same numbers as the CLI's evaluate on the same images and the saved model", async () => {
    // each class folder also holds a photo of something else, so that some answers are wrong
    // and not every probability is saturated: the comparison then means something
    const testDir = path.join(OUT, 'testset');
    const sets = NAMES.map((n, k) => [...photos[k].held, { name: `z-${OTHER[k]}`, buffer: readPhoto(OTHER[k]) }]);
    const tree = [
      { name: 'testset', children: NAMES.map((n, k) => ({ name: n, children: sets[k].map((f) => ({ name: f.name, buffer: f.buffer })) })) },
    ];
    for (const [k, n] of NAMES.entries()) {
      fs.mkdirSync(path.join(testDir, n), { recursive: true });
      for (const f of sets[k]) fs.writeFileSync(path.join(testDir, n, f.name), f.buffer);
    }
    await dropTree('#predict-drop', tree);
    await page.waitForSelector('#test-set[data-done="true"]:not([hidden])', { timeout: 120000 });
    const r = await page.evaluate(() => window.tinytune.evaluation);
    const ttm = await download('#save-model');
    const cli = JSON.parse(
      execFileSync(process.execPath, [path.join(ROOT, 'tools', 'tinytune.mjs'), 'evaluate', ttm, testDir, '--json'], { encoding: 'utf8' }),
    );
    log(
      `test set on the page: accuracy ${r.accuracy.toFixed(4)} on ${r.n}, ECE ${r.calibration.ece.toFixed(4)}, NLL ${r.calibration.nll.toFixed(4)}; CLI: accuracy ${cli.accuracy.toFixed(4)} on ${cli.n}, ECE ${cli.calibration.ece.toFixed(4)}, NLL ${cli.calibration.nll.toFixed(4)}`,
    );
    assert.equal(r.n, 27);
    assert.deepEqual(r.labels, cli.labels);
    assert.deepEqual(r.confusion, cli.confusion);
    assert.deepEqual(r.perClassAccuracy, cli.perClassAccuracy);
    assert.equal(r.accuracy, cli.accuracy);
    assert.equal(r.unknown, cli.unknown);
    assert.ok(Math.abs(r.calibration.ece - cli.calibration.ece) < 1e-4 && Math.abs(r.calibration.nll - cli.calibration.nll) < 1e-4);
    assert.ok(r.accuracy >= 0.7 && r.accuracy < 1, `accuracy ${r.accuracy}`);
    // what the page shows
    const pct = (v) => `${(v * 100).toFixed(v === 1 || v === 0 ? 0 : 1)}%`;
    assert.match(await page.textContent('#test-title'), /Test set: 27 images in 3 class folders/);
    const summary = await page.textContent('#test-summary');
    assert.ok(summary.startsWith(`Accuracy ${pct(r.accuracy)} on 27 images · calibration error ${pct(r.calibration.ece)}`), summary);
    assert.deepEqual(
      await page.$$eval('#test-per-class .bar-value', (v) => v.map((x) => x.textContent)),
      r.perClassAccuracy.map((v) => `${Math.round(v * 100)}%`),
    ); // the bars round
    assert.deepEqual(
      await page.$$eval('#test-confusion tbody tr', (trs) =>
        trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => Number(td.textContent))),
      ),
      r.confusion,
    );
    await shot(page, '42-test-set');
  });

  test("a test folder naming a class the model lacks: the engine's message names it", async () => {
    await dropTree('#predict-drop', [
      { name: 'grass', children: [{ name: 'a.png', buffer: photos[1].held[0].buffer }] },
      { name: 'sand', children: [{ name: 'b.png', buffer: photos[2].held[0].buffer }] },
    ]);
    const m = await waitMessage(page, /Could not test the model on this folder/);
    assert.equal(m.kind, 'error');
    assert.match(m.text, /the classifier has no class 'sand' \(its classes: brick, grass, gravel\)/);
    assert.equal(await page.isVisible('#test-set'), false);
  });

  test("K = 0 and K = 2 set by hand both export to the page's probabilities", async () => {
    const report = await page.evaluate(() => window.tinytune.trained.report);
    const other = report.auto.blocks === 2 ? '0' : '2';
    await page.selectOption('#blocks', other);
    await page.fill('#epochs', '8');
    await page.dispatchEvent('#epochs', 'change');
    await page.click('#train');
    await page.waitForFunction(() => window.tinytune.trained?.report?.auto === null && document.body.dataset.training === 'false', null, {
      timeout: 300000,
      polling: 250,
    });
    const r2 = await page.evaluate(() => window.tinytune.trained.report);
    assert.equal(r2.auto, null);
    assert.equal(await page.isVisible('#auto-summary'), false);
    const { meta } = await checkTfjsExport(`k${other}`);
    assert.equal(meta.trainableBlocks, Number(other));
    assert.deepEqual(errors, []);
  });
});
