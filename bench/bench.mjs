// Benchmarks this engine against TensorFlow.js (WASM backend, and the CPU backend as the
// floor) on the same backbone and the same real photos, in one run, and prints ratios.
//   node bench/bench.mjs [--model mobilenet_v2_mid] [--runs 7] [--quick] [--json out.json]
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { createEngine } from '../wasm/engine.mjs';
import { Classifier } from '../wasm/transfer.mjs';
import { PHOTOS, modelDir, readPhoto, referenceTf, dirHandler } from '../tests/helpers.mjs';

const { values: o } = parseArgs({ options: {
  model: { type: 'string', default: 'mobilenet_v2_mid' }, runs: { type: 'string', default: '7' },
  quick: { type: 'boolean', default: false }, json: { type: 'string', default: 'bench/results.json' } } });
const RUNS = o.quick ? 3 : Number(o.runs);
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const time = async (fn, runs = RUNS) => {
  await fn(); // warm-up: compile, allocate
  const t = [];
  for (let i = 0; i < runs; i++) { const t0 = performance.now(); await fn(); t.push(performance.now() - t0); }
  return median(t);
};

const rows = [];
const row = (what, ours, peer, peerName, unit = 'ms') => {
  rows.push({ what, ours, peer, peerName, unit, ratio: peer / ours });
  console.log(`${what.padEnd(44)} tinytune ${ours.toFixed(1).padStart(8)} ${unit}   ${peerName} ${peer.toFixed(1).padStart(8)} ${unit}   ` +
    `speed-up x${(peer / ours).toFixed(2)}`);
};

const engine = await createEngine();
const model = await engine.loadModel(modelDir(o.model));
const [H, W, C] = model.inputShape;
const photos = PHOTOS.slice(0, 4).map(readPhoto);
// The same preprocessed pixels for both engines (our decode and resize, which match tfjs's),
// 16 images cycling through 4 real photos.
const pixels = new Float32Array(16 * H * W * C);
const prepared = photos.map((b) => model.embedViews(b, { views: 1, upto: 0 }));
for (let k = 0; k < 16; k++) pixels.set(prepared[k % prepared.length], k * H * W * C);
const one = pixels.subarray(0, H * W * C);

const tf = await referenceTf();
const isGraph = JSON.parse(fs.readFileSync(`${modelDir(o.model)}/model.json`, 'utf8')).format === 'graph-model';
const ref = isGraph ? await tf.loadGraphModel(dirHandler(modelDir(o.model))) : await tf.loadLayersModel(dirHandler(modelDir(o.model)));
const refRun = (n) => tf.tidy(() => {
  const x = tf.tensor(pixels.subarray(0, n * H * W * C), [n, H, W, C]);
  return isGraph ? ref.execute(x) : ref.predict(x);
}).dataSync();

console.log(`# ${o.model}, ${RUNS} runs (median), Node ${process.versions.node}, SIMD ${engine.simd}, 1 thread`);
for (const n of [1, 16]) {
  const ours = await time(() => model.runInput(pixels.subarray(0, n * H * W * C), n, model.layers.length - 1));
  const peer = await time(() => refRun(n));
  row(`forward, batch ${n} (per image)`, ours / n, peer / n, 'tfjs-wasm');
}
const peakForward = engine.memoryBytes();

await tf.setBackend('cpu');
const cpu = await time(() => refRun(1), o.quick ? 1 : 3);
row('forward, batch 1', await time(() => model.runInput(one, 1, model.layers.length - 1)), cpu, 'tfjs-cpu ');
await tf.setBackend('wasm');

// Head training: 1,000 cached features x 50 epochs, Dense(100, relu) -> Dense(10), batch 16.
const F = model.layers[model.cut].shape[2];
const N = 1000, K = 10;
const feats = new Float32Array(N * F), labels = new Int32Array(N);
for (let i = 0; i < N; i++) { labels[i] = i % K; for (let j = 0; j < F; j++) feats[i * F + j] = Math.max(0, Math.sin(i * 0.37 + j * 1.3) + (j % K === labels[i] ? 0.5 : 0)); }
const head = new Classifier(model, { labels: Array.from({ length: K }, (_, k) => `c${k}`), hidden: 100, dropout: 0, augment: false });
head.images = Array.from({ length: N }, (_, i) => ({ label: labels[i], data: feats.subarray(i * F, (i + 1) * F) }));
const oursHead = await time(() => head.fit({ epochs: 50, validationFraction: 0, patience: 0, batchesPerTick: 1e9 }), 1);
const xs = tf.tensor2d(feats, [N, F]), ys = tf.oneHot(tf.tensor1d(labels, 'int32'), K);
const tm = tf.sequential({ layers: [tf.layers.dense({ inputShape: [F], units: 100, activation: 'relu' }), tf.layers.dense({ units: K, activation: 'softmax' })] });
tm.compile({ optimizer: tf.train.adam(1e-3), loss: 'categoricalCrossentropy' });
const peerHead = await time(() => tm.fit(xs, ys, { epochs: 50, batchSize: 16, verbose: 0 }), 1);
row('head training, 1000 features x 50 epochs', oursHead, peerHead, 'tfjs-wasm');
head.dispose();

// One fine-tuning step of the last 2 blocks + head at batch 16, against our own forward.
const ft = new Classifier(model, { labels: ['a', 'b'], blocks: 2, augment: false });
const act = model.runInput(pixels, 16, ft.boundary);
const per = act.length / 16;
ft.images = Array.from({ length: 16 }, (_, i) => ({ label: i % 2, data: act.subarray(i * per, (i + 1) * per) }));
const step = await time(() => ft.fit({ epochs: 1, batchSize: 16, validationFraction: 0, patience: 0 }));
const fwd16 = await time(() => model.runInput(pixels, 16, model.layers.length - 1));
rows.push({ what: 'fine-tune step K=2 batch 16 / forward batch 16', ours: step, peer: fwd16, ratio: step / fwd16, unit: 'ms' });
console.log(`${'fine-tune step, K=2 + head, batch 16'.padEnd(44)} ${step.toFixed(1)} ms = ${(step / fwd16).toFixed(2)}x our forward of batch 16 (${fwd16.toFixed(1)} ms)`);
ft.dispose();

const peak = engine.memoryBytes();
console.log(`wasm memory: ${(peakForward / 2 ** 20).toFixed(0)} MiB after forward, ${(peak / 2 ** 20).toFixed(0)} MiB at the end`);
fs.writeFileSync(o.json, JSON.stringify({ model: o.model, runs: RUNS, node: process.versions.node, simd: engine.simd, rows,
  memory: { afterForward: peakForward, end: peak }, date: new Date().toISOString() }, null, 2));
console.log(`wrote ${o.json}`);
