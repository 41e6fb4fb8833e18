// What a trained classifier says about images it did not train on: refit on every image,
// calibrated probabilities, "none of these" for images of classes it never saw, evaluate()
// against a hand count, auto mode's report, and bad input. Real photos (scikit-image crops).
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { createEngine } from '../wasm/engine.mjs';
import { Classifier } from '../wasm/transfer.mjs';
import { buildSets, crops, sample, materialize } from '../bench/sets.mjs';
import { modelDir, ROOT } from './helpers.mjs';
import { encodePng } from './png.mjs';

let engine, small, sets, photos;
before(async () => {
  engine = await createEngine();
  small = await engine.loadModel(modelDir('mobilenet_v2'));
  sets = buildSets((b) => engine.decodeImage(b));
  // Crops of a third to a half of each photo: classes a person would tell apart.
  photos = crops(
    ['astronaut.png', 'chelsea.png', 'coffee.png', 'rocket.jpg', 'motorcycle_left.png', 'retina.jpg'],
    (b) => engine.decodeImage(b),
    { perPool: 40, min: 0.3, max: 0.6 },
  );
});

// Three of the photo classes train; the other photos' crops and digits are unknown to it.
const KNOWN = ['astronaut', 'chelsea', 'coffee'];
async function trainPhotos(opts = {}, fitOpts = {}) {
  const train = sample(photos, 10, 1).filter((s) => KNOWN.includes(s.label));
  const c = new Classifier(small, { labels: KNOWN, blocks: 0, seed: 1, ...opts });
  for (const s of train) assert.ok(c.addImage(s.pixels, s.label));
  const report = await c.fit({ epochs: 20, ...fitOpts });
  return { c, report, train };
}

test("training refits on every image after validation chose the epochs; the estimate is validation's", async () => {
  const { c, report, train } = await trainPhotos();
  assert.equal(report.nVal, 6, 'a stratified 20% of 30 images validates');
  assert.ok(report.refit, 'the model was refitted');
  assert.equal(report.refit.images, train.length, 'the refit learns from every image');
  assert.equal(report.refit.epochs, 20, 'the refit runs the whole schedule');
  assert.ok(report.bestEpoch >= 1 && report.bestEpoch <= 20);
  assert.deepEqual(
    report.history.map((e) => e.phase),
    [...Array(report.history.length - report.refit.epochs).fill('validate'), ...Array(report.refit.epochs).fill('refit')],
  );
  assert.ok(report.temperature > 0.05 && report.temperature < 20, `temperature ${report.temperature}`);
  // Without refit the trainer keeps the validation run's best weights: fewer images.
  const { c: d, report: r2 } = await trainPhotos({}, { refit: false });
  assert.equal(r2.refit, null);
  assert.equal(r2.nTrain, train.length - 6);
  c.dispose();
  d.dispose();
});

test('"none of these": images of classes it never saw are flagged, its own held-out classes are not', async () => {
  const { c } = await trainPhotos();
  const test = materialize(photos.test);
  const known = test.filter((s) => KNOWN.includes(s.label));
  const unknown = [...test.filter((s) => !KNOWN.includes(s.label)), ...materialize(sets.digits.test).filter((_, i) => i % 50 === 0)];
  const flagged = (list) => list.filter((s) => c.predict(s.pixels)[0].unknown).length / list.length;
  const fk = flagged(known),
    fu = flagged(unknown);
  console.log(
    `# none of these: ${(fu * 100).toFixed(0)}% of ${unknown.length} unknown-class images flagged, ${(fk * 100).toFixed(0)}% of ${known.length} known`,
  );
  assert.ok(fu >= 0.4, `only ${fu} of images of unseen classes flagged`);
  assert.ok(fk <= 0.1, `${fk} of images of known classes flagged`);
  // The answer survives saving; a crafted file's "none of these" data is refused.
  const file = c.save();
  const back = Classifier.load(small, file);
  assert.deepEqual(back.predict(unknown[0].pixels), c.predict(unknown[0].pixels));
  c.dispose();
  back.dispose();
});

test('evaluate() equals a hand count; labels the model lacks and unreadable images are named', async () => {
  const { c } = await trainPhotos();
  const items = materialize(photos.test)
    .filter((s) => KNOWN.includes(s.label))
    .map((s, i) => ({ image: s.pixels, label: s.label, name: `t${i}` }));
  items.push({ image: new TextEncoder().encode('not a picture'), label: 'coffee', name: 'notes.jpg' });
  const r = c.evaluate(items);
  const hand = KNOWN.map(() => [0, 0, 0]);
  let right = 0;
  for (const it of items.slice(0, -1)) {
    const p = c.predict(it.image)[0];
    hand[KNOWN.indexOf(it.label)][p.index]++;
    right += p.label === it.label ? 1 : 0;
  }
  assert.deepEqual(r.confusion, hand);
  assert.equal(r.n, items.length - 1);
  assert.equal(r.accuracy, right / r.n);
  assert.deepEqual(
    r.skipped.map((s) => s.name),
    ['notes.jpg'],
  );
  assert.ok(r.accuracy > 0.8, `accuracy ${r.accuracy} on held-out crops`);
  assert.ok(r.calibration.ece >= 0 && r.calibration.ece < 0.25, `calibration error ${r.calibration.ece}`);
  assert.throws(
    () =>
      c.evaluate([
        { image: items[0].image, label: 'rocket' },
        { image: items[0].image, label: 'Coffee' },
      ]),
    /the classifier has no class 'rocket', 'Coffee' \(its classes: astronaut, chelsea, coffee\)/,
  );
  assert.throws(() => c.evaluate([]), /no images to evaluate/);
  c.dispose();
});

test('auto mode says what it chose and why, and a seeded run repeats bit for bit', async () => {
  const run = async () => {
    const set = sets.grey;
    const c = new Classifier(small, { labels: set.labels, seed: 4, views: 2 });
    for (const s of sample(set, 5, 4)) c.addImage(s.pixels, s.label);
    const r = await c.fit({ epochs: 4, seed: 4, timeBudget: 600 });
    return { c, r };
  };
  const a = await run(),
    b = await run();
  assert.deepEqual(
    a.r.auto.tried.map((t) => t.blocks),
    [0, 2],
  );
  assert.ok([0, 2].includes(a.r.blocks) && a.r.auto.why.length > 0);
  assert.equal(a.c.blocks, a.r.blocks);
  a.c.ops().forEach((op, i) => assert.deepEqual(op.weights, b.c.ops()[i].weights, `op ${op.name} differs between seeded runs`));
  // A budget the blocks cannot fit leaves a head alone, and says so.
  const set = sets.grey;
  const c = new Classifier(small, { labels: set.labels, seed: 4, views: 2 });
  for (const s of sample(set, 5, 4)) c.addImage(s.pixels, s.label);
  const r = await c.fit({ epochs: 4, timeBudget: 0.001 });
  assert.equal(r.blocks, 0);
  assert.match(r.auto.why, /training 2 blocks would take about \d+ s, more than the/);
  for (const x of [a.c, b.c, c]) x.dispose();
});

const run = promisify(execFile);
const cli = (...args) => run(process.execPath, [path.join(ROOT, 'tools/tinytune.mjs'), ...args], { cwd: ROOT, maxBuffer: 1 << 24 });

test("tinytune evaluate: the API's numbers, as text and JSON; bad folders get clear messages", async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tinytune-eval-'));
  const write = (dir, list) =>
    list.forEach((s, i) => {
      fs.mkdirSync(path.join(tmp, dir, s.label), { recursive: true });
      fs.writeFileSync(path.join(tmp, dir, s.label, `${i}.png`), encodePng(s.pixels));
    });
  write(
    'train',
    sample(photos, 8, 2).filter((s) => KNOWN.includes(s.label)),
  );
  const held = materialize(photos.test)
    .filter((s) => KNOWN.includes(s.label))
    .filter((_, i) => i % 4 === 0);
  write('test', held);
  fs.writeFileSync(path.join(tmp, 'test', 'coffee', 'broken.jpg'), 'not a picture');
  const model = path.join(tmp, 'm.ttm');
  await cli(
    'finetune',
    path.join(tmp, 'train'),
    '--model',
    'mobilenet_v2',
    '--blocks',
    '0',
    '--epochs',
    '5',
    '--out',
    model,
    '--metrics',
    path.join(tmp, 'metrics.json'),
  );
  const j = await cli('evaluate', model, path.join(tmp, 'test'), '--json');
  const r = JSON.parse(j.stdout);
  assert.match(j.stderr, /skipped .*broken\.jpg: not an image/);
  const c = Classifier.load(small, new Uint8Array(fs.readFileSync(model)));
  const api = c.evaluate(held.map((s) => ({ image: encodePng(s.pixels), label: s.label })));
  assert.deepEqual(r.confusion, api.confusion);
  assert.equal(r.accuracy, api.accuracy);
  const t = await cli('evaluate', model, path.join(tmp, 'test'));
  assert.match(t.stdout, new RegExp(`^accuracy ${r.accuracy.toFixed(4)} on ${r.n} images`));
  fs.mkdirSync(path.join(tmp, 'other', 'rocket'), { recursive: true });
  const one = fs.readdirSync(path.join(tmp, 'test', 'coffee')).find((f) => f.endsWith('.png'));
  fs.copyFileSync(path.join(tmp, 'test', 'coffee', one), path.join(tmp, 'other', 'rocket', one));
  await assert.rejects(cli('evaluate', model, path.join(tmp, 'other')), (e) => /the classifier has no class 'rocket'/.test(e.stderr));
  fs.mkdirSync(path.join(tmp, 'empty'));
  await assert.rejects(cli('evaluate', model, path.join(tmp, 'empty')), (e) => /holds no images in class folders/.test(e.stderr));
  c.dispose();
  fs.rmSync(tmp, { recursive: true, force: true });
});
