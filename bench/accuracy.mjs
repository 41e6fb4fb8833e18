#!/usr/bin/env node
// The accuracy benchmark: this engine's default training against the Teachable Machine recipe
// (TensorFlow.js: Dense(100, relu) -> Dense(n, softmax), Adam 1e-3, 50 epochs, batch 16, every
// training image, on the same backbone's features), on held-out real images, seeds 1-3, in one
// run. Prints mean/min test accuracy of each, the difference, and the seconds each took
// (ours includes computing features; the recipe's features are computed once and not timed).
//
//   node bench/accuracy.mjs [--model mobilenet_v2_mid] [--input-size 224] [--sets digits,photos] [--sizes 5,20]
//                           [--seeds 1,2,3] [--split test|dev] [--json out.json] [--open-seeds 1]
// --open-seeds: the seeds that also run the "none of these" experiment (default: every seed).
// --split dev scores on the dev pools (for choosing settings); the README's table is --split test.
import path from 'node:path';
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { createEngine } from '../wasm/engine.mjs';
import { Classifier, concatFloats } from '../wasm/transfer.mjs';
import { buildSets, sample, materialize } from './sets.mjs';
import { referenceTf, teachableMachine } from '../tests/helpers.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values: o } = parseArgs({
  options: {
    model: { type: 'string', default: 'mobilenet_v2_mid' },
    'input-size': { type: 'string' },
    sets: { type: 'string' },
    sizes: { type: 'string', default: '5,20,100' },
    seeds: { type: 'string', default: '1,2,3' },
    split: { type: 'string', default: 'test' },
    json: { type: 'string' },
    options: { type: 'string', default: '{}' },
    'no-peer': { type: 'boolean', default: false },
    'open-seeds': { type: 'string' },
  },
});

const engine = await createEngine();
const model = await engine.loadModel(path.join(ROOT, 'models', o.model), o['input-size'] ? { inputSize: Number(o['input-size']) } : {});
const sets = buildSets((b) => engine.decodeImage(b));
const names = o.sets ? o.sets.split(',') : ['digits', 'shifted', 'photos', 'grey'];
const sizes = o.sizes.split(',').map(Number),
  seeds = o.seeds.split(',').map(Number);
const openSeeds = o['open-seeds'] ? o['open-seeds'].split(',').map(Number) : seeds;
const extra = JSON.parse(o.options); // classifier/fit options for ablations, e.g. '{"blocks":2}'
const tf = o['no-peer'] ? null : await referenceTf();
const F = model.layers[model.cut].shape.reduce((a, b) => a * b, 1);

async function recipe(train, testFeats, labels, seed) {
  const feats = concatFloats(train.map((s) => model.embed(s.pixels)));
  const t = await teachableMachine(
    tf,
    feats,
    train.map((s) => labels.indexOf(s.label)),
    labels.length,
    F,
    seed,
  );
  const pred = t.predict(testFeats);
  t.dispose();
  return { pred, seconds: t.seconds };
}

// The test images' activations at the boundaries a classifier may start from (the pooled
// feature, and K = 2's), computed once per set: scoring a classifier is then its own
// trainable part on them, exactly what predict() runs after the frozen part.
const testActs = new Map();
function activations(set, list, boundary) {
  const key = `${set}:${list.length}:${boundary}`;
  if (!testActs.has(key))
    testActs.set(
      key,
      list.map((s) => model.embedViews(s.pixels, { upto: boundary })),
    );
  return testActs.get(key);
}

async function ours(name, train, test, labels, seed, unseen = []) {
  const t0 = performance.now();
  const c = new Classifier(model, { labels, seed, ...extra });
  for (const s of train) c.addImage(s.pixels, s.label);
  const report = await c.fit({ seed, ...extra });
  const seconds = (performance.now() - t0) / 1000;
  const acts = activations(name, test, c.boundary);
  const probs = c.predictActivations(acts);
  const pred = probs.map((p) => p.indexOf(Math.max(...p)));
  // Expected calibration error over 10 confidence bins, as Classifier.evaluate computes it.
  const bins = Array.from({ length: 10 }, () => ({ conf: 0, correct: 0 }));
  probs.forEach((p, i) => {
    const b = bins[Math.min(9, Math.floor(p[pred[i]] * 10))];
    b.conf += p[pred[i]];
    b.correct += labels[pred[i]] === test[i].label ? 1 : 0;
  });
  const ece = bins.reduce((a, b) => a + Math.abs(b.conf - b.correct), 0) / test.length;
  // Open set: how well the "none of these" score (similarity to the nearest class) and the
  // plain top probability tell images of classes it never saw from its own held-out ones.
  let open = null;
  if (unseen.length) {
    const uActs = activations(`${name}-unseen`, unseen, c.boundary);
    const score = (a, p) => ({ sim: c.similarity(a).similarity, top: Math.max(...p) });
    const k = acts.map((a, i) => score(a, probs[i])),
      u = uActs.map((a, i) => score(a, c.predictActivations([a])[0]));
    const flag = (x) => x.sim < c.unknown.threshold;
    open = {
      aurocSimilarity: auroc(
        k.map((x) => x.sim),
        u.map((x) => x.sim),
      ),
      aurocProbability: auroc(
        k.map((x) => x.top),
        u.map((x) => x.top),
      ),
      flaggedKnown: k.filter(flag).length / k.length,
      flaggedUnseen: u.filter(flag).length / u.length,
    };
  }
  const chose = report.auto ?? { blocks: c.blocks };
  c.dispose();
  return { pred, seconds, chose, estimate: report.validationAccuracy, ece, open };
}

// Probability that a known image scores higher than an unseen one (ties count half).
function auroc(known, unseen) {
  let s = 0;
  for (const a of known) for (const b of unseen) s += a > b ? 1 : a === b ? 0.5 : 0;
  return s / (known.length * unseen.length);
}

const OPEN_SET_SIZE = 20;
const acc = (pred, test, labels) => pred.filter((p, i) => labels[p] === test[i].label).length / test.length;
const stats = (xs) => ({ mean: xs.reduce((a, b) => a + b, 0) / xs.length, min: Math.min(...xs) });
const rows = [];
console.log(
  `model ${o.model}${o['input-size'] ? ` at ${o['input-size']}` : ''}, engine ${engine.build}, ${engine.threads} threads, split ${o.split}, seeds ${seeds.join(',')}` +
    (Object.keys(extra).length ? `, options ${JSON.stringify(extra)}` : ''),
);
console.log('set            n/class  test  | recipe mean  min    s   | tinytune mean  min    s   | diff   | chose');
for (const name of names) {
  const set = sets[name];
  const test = materialize(o.split === 'dev' ? set.dev : set.test);
  const testFeats = tf ? concatFloats(test.map((s) => model.embed(s.pixels))) : null;
  for (const n of sizes) {
    if (set.trainPool.length / set.labels.length < n) continue;
    const r = {
      set: name,
      perClass: n,
      classes: set.labels.length,
      test: test.length,
      tm: [],
      ours: [],
      tmSeconds: [],
      ourSeconds: [],
      chose: [],
      estimate: [],
      ece: [],
      open: [],
    };
    for (const seed of seeds) {
      const train = sample(set, n, seed);
      if (tf) {
        const t = await recipe(train, testFeats, set.labels, seed);
        r.tm.push(acc(t.pred, test, set.labels));
        r.tmSeconds.push(t.seconds);
      }
      const u = await ours(name, train, test, set.labels, seed);
      r.ours.push(acc(u.pred, test, set.labels));
      r.ourSeconds.push(u.seconds);
      r.chose.push(u.chose);
      r.estimate.push(u.estimate);
      r.ece.push(u.ece);
      if (n === OPEN_SET_SIZE && set.labels.length >= 4 && openSeeds.includes(seed)) {
        // The first half of the classes train; the test images of the others are unseen.
        const known = set.labels.slice(0, Math.ceil(set.labels.length / 2));
        const o2 = await ours(
          name,
          train.filter((s) => known.includes(s.label)),
          test.filter((s) => known.includes(s.label)),
          known,
          seed,
          test.filter((s) => !known.includes(s.label)),
        );
        r.open.push(o2.open);
      }
    }
    rows.push(r);
    const a = stats(r.ours),
      b = tf ? stats(r.tm) : { mean: NaN, min: NaN };
    const secs = (xs) => (xs.length ? (xs.reduce((p, q) => p + q, 0) / xs.length).toFixed(1) : '-');
    console.log(
      `${name.padEnd(14)} ${String(n).padStart(4)}  ${String(test.length).padStart(6)}  |  ${b.mean.toFixed(3)}  ${b.min.toFixed(3)} ${secs(r.tmSeconds).padStart(5)} |` +
        `  ${a.mean.toFixed(3)}  ${a.min.toFixed(3)} ${secs(r.ourSeconds).padStart(5)}    | ${((a.mean - b.mean) * 100).toFixed(1).padStart(5)}  | ` +
        r.chose.map((c) => c.summary ?? `K=${c.blocks}`).join(' '),
    );
  }
}
console.log(
  `\ncalibration and "none of these" (${OPEN_SET_SIZE}/class runs of sets with 4 or more classes: the first half of the classes train, the rest are unseen)`,
);
console.log('set            n/class | ECE   | AUROC similarity  top probability | flagged: unseen  known');
const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
for (const r of rows) {
  const op = r.open.length ? r.open : null;
  console.log(
    `${r.set.padEnd(14)} ${String(r.perClass).padStart(4)}    | ${mean(r.ece).toFixed(3)} |` +
      (op
        ? `   ${mean(op.map((x) => x.aurocSimilarity)).toFixed(3)}             ${mean(op.map((x) => x.aurocProbability)).toFixed(3)}         |          ${mean(op.map((x) => x.flaggedUnseen)).toFixed(2)}   ${mean(op.map((x) => x.flaggedKnown)).toFixed(2)}`
        : ''),
  );
}
if (o.json) fs.writeFileSync(o.json, JSON.stringify({ model: o.model, split: o.split, seeds, options: extra, rows }, null, 2));
engine.close?.();
