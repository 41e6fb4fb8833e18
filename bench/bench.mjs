// Benchmarks this engine against TensorFlow.js (WASM backend, and the CPU backend as the
// floor) on the same backbone and the same real photos, in one run, and prints ratios.
//   node bench/bench.mjs [--model mobilenet_v2_mid] [--runs 7] [--quick] [--json out.json] [--no-relaxed] [--no-ort]
//                        [--zoo centernet_mnv3@512,...] [--zoo-only]
// --zoo: the other backbones (id@input size), forward batch 1 on one thread against
// tfjs-wasm running the same model file at the same size ('' for none); --zoo-only
// measures just those rows.
// Both of our SIMD builds are measured: the plain one, and the relaxed-SIMD (FMA) one
// that browsers with relaxed SIMD load. Node 20 has relaxed SIMD only behind a flag, so
// unless --no-relaxed is given the benchmark re-runs itself with the flag (which changes
// nothing for tfjs-wasm: it has no relaxed-SIMD build). Each build runs on one thread,
// as tfjs-wasm does in Node; then the fastest build again on all cores (--threads N to
// choose), against itself on one thread and against tfjs-wasm. ONNX Runtime (bench/ort.mjs:
// onnxruntime-web's WASM SIMD build and onnxruntime-node's native CPU one) runs the same
// model, exported by our ONNX exporter, on the same pixels, on 1 thread and on all.
import fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { createEngine } from '../wasm/engine.mjs';
import { hasRelaxedSimd, canThread, defaultThreads } from '../wasm/module.mjs';
import { Classifier } from '../wasm/transfer.mjs';
import { PHOTOS, modelDir, readPhoto, referenceTf, dirHandler } from '../tests/helpers.mjs';
import { ortForward } from './ort.mjs';

const { values: o } = parseArgs({
  options: {
    model: { type: 'string', default: 'mobilenet_v2_mid' },
    runs: { type: 'string', default: '7' },
    quick: { type: 'boolean', default: false },
    json: { type: 'string', default: 'bench/results.json' },
    'no-relaxed': { type: 'boolean', default: false },
    'forward-child': { type: 'string' },
    'memory-child': { type: 'boolean', default: false },
    threads: { type: 'string' },
    zoo: { type: 'string', default: 'centernet_mnv3@512,centernet_mnv3@320,centernet_mnv3@224,mobilefacenet@112' },
    'zoo-child': { type: 'string' },
    'zoo-only': { type: 'boolean', default: false },
    'ort-child': { type: 'string' },
    'no-ort': { type: 'boolean', default: false },
  },
});

const FLAG = '--experimental-wasm-relaxed-simd';
if (!o['no-relaxed'] && !hasRelaxedSimd() && !process.execArgv.includes(FLAG)) {
  const r = spawnSync(process.execPath, [...process.execArgv, FLAG, ...process.argv.slice(1)], { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}

const RUNS = o.quick ? 3 : Number(o.runs);
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
// V8 runs wasm in its baseline compiler until a function is hot: every timed function is
// first run for at least WARM ms (both engines alike) so that TurboFan code is measured.
const WARM = o.quick ? 400 : 1000;
// Then at least `runs` samples and at least SAMPLE ms of them: 7 single-image passes are
// under 0.2 s, short enough for one burst of machine load to move a median by a few %.
const SAMPLE = o.quick ? 300 : 1500;
const time = async (fn, runs = RUNS) => {
  for (let t0 = performance.now(), k = 0; k < 1 || performance.now() - t0 < WARM; k++) await fn();
  const t = [];
  for (let t1 = performance.now(); t.length < runs || performance.now() - t1 < SAMPLE;) {
    const t0 = performance.now();
    await fn();
    t.push(performance.now() - t0);
  }
  return median(t);
};

const rows = [];
// ms rows: speed-up = peer / ours; GFLOP/s rows: ours / peer. Either way > 1 is ours faster.
const row = (what, ours, peer, peerName, unit = 'ms') => {
  const ratio = unit === 'ms' ? peer / ours : ours / peer;
  rows.push({ what, ours, peer, peerName, unit, ratio });
  console.log(
    `${what.padEnd(56)} tinytune ${ours.toFixed(1).padStart(8)} ${unit.padEnd(7)} ${peerName.padEnd(9)} ${peer.toFixed(1).padStart(8)} ${unit.padEnd(7)} ` +
      `x${ratio.toFixed(2)}`,
  );
};

// Forward passes of each build are timed in a child process of their own, where its model
// is the only one: in one process, the first model loaded ran ~10% slower than later
// copies of the same model in the same or another engine (not a matter of buffer
// alignment, tested), which would favour whichever build is measured second. Users load
// one model, so each build is measured as a first model.
// A build's name says what it is: 'SIMD', 'relaxed SIMD', '<either>, N threads'.
const specOf = (build) => ({ simd: true, relaxed: build.startsWith('relaxed'), threads: Number(build.match(/(\d+) threads/)?.[1] ?? 1) });
const forwardChild = async (build) => {
  const e = await createEngine(specOf(build));
  if (e.threads !== specOf(build).threads) throw new Error(`${build}: the engine runs ${e.threads} threads`);
  const m = await e.loadModel(modelDir(o.model), { integer: !/float32/.test(build) });
  const [h, w, c] = m.inputShape;
  const photos = PHOTOS.slice(0, 4).map(readPhoto),
    px = new Float32Array(16 * h * w * c);
  const prep = photos.map((b) => m.embedViews(b, { views: 1, upto: 0 }));
  for (let k = 0; k < 16; k++) px.set(prep[k % prep.length], k * h * w * c);
  const out = {};
  for (const n of [1, 16]) out[n] = await time(() => m.runInput(px.subarray(0, n * h * w * c), n, m.layers.length - 1));
  out.memory = e.memoryBytes(); // the engine's wasm memory after forward passes of 16 images
  return out;
};
// Memory of the whole head-only workflow on IMAGES real photos (4 cycling, each with its
// own augmented views): the engine's wasm memory (which never shrinks, so it is the peak)
// and the features cached in JS, after embedding them all and training.
const IMAGES = o.quick ? 200 : 1000;
const memoryChild = async () => {
  const e = await createEngine();
  const m = await e.loadModel(modelDir(o.model));
  const photos = PHOTOS.slice(0, 4).map(readPhoto);
  const c = new Classifier(m, { labels: ['a', 'b', 'c', 'd'] });
  const t0 = performance.now();
  for (let i = 0; i < IMAGES; i++) c.addImage(photos[i % 4], ['a', 'b', 'c', 'd'][i % 4]);
  const embed = performance.now() - t0;
  await c.fit({ epochs: 5 });
  const cache = c.images.reduce((s, im) => s + im.data.byteLength, 0);
  return {
    images: IMAGES,
    views: c.views,
    threads: e.threads,
    wasm: e.memoryBytes(),
    cache,
    rss: process.memoryUsage().rss,
    embedMs: embed,
  };
};
// One zoo backbone at one input size (id@size), forward batch 1, SIMD build, one thread:
// in a child of its own, as forwardChild, so it is measured as a first model.
const zooChild = async (spec) => {
  const [id, size] = spec.split('@');
  const e = await createEngine({ simd: true, relaxed: false, threads: 1 });
  const m = await e.loadModel(modelDir(id), { inputSize: Number(size) });
  const x = m.embedViews(readPhoto(PHOTOS[0]), { views: 1, upto: 0 });
  return { ms: await time(() => m.runInput(x, 1, m.cut)), feature: m.layers[m.cut].shape[2] };
};
if (o['zoo-child']) {
  process.stdout.write(JSON.stringify(await zooChild(o['zoo-child'])) + '\n');
  process.exit(0);
}
if (o['memory-child']) {
  process.stdout.write(JSON.stringify(await memoryChild()) + '\n');
  process.exit(0);
}
// ONNX Runtime in a child of its own, as our builds: 'ort-web,N' or 'ort-node,N' (threads).
const ortChild = async (spec) => {
  const [peer, threads] = spec.split(',');
  const m = await (await createEngine()).loadModel(modelDir(o.model));
  const [h, w, c] = m.inputShape;
  const prep = PHOTOS.slice(0, 4).map((b) => m.embedViews(readPhoto(b), { views: 1, upto: 0 }));
  const px = new Float32Array(16 * h * w * c);
  for (let k = 0; k < 16; k++) px.set(prep[k % prep.length], k * h * w * c);
  return ortForward({ peer, threads: Number(threads), model: m, pixels: px, expect: m.runInput(prep[0], 1, m.layers.length - 1), time });
};
if (o['ort-child']) {
  process.stdout.write(JSON.stringify(await ortChild(o['ort-child'])) + '\n');
  process.exit(0);
}
if (o['forward-child']) {
  process.stdout.write(JSON.stringify(await forwardChild(o['forward-child'])) + '\n');
  process.exit(0);
}
const childArgs = (build) => [
  ...process.execArgv,
  process.argv[1],
  '--model',
  o.model,
  '--runs',
  String(o.runs),
  ...(o.quick ? ['--quick'] : []),
  '--forward-child',
  build,
];
const forwardOf = (build) => {
  const r = spawnSync(process.execPath, childArgs(build), { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`forward child for ${build} failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop());
};

const names = ['SIMD', ...(hasRelaxedSimd() ? ['relaxed SIMD'] : [])];
const THREADS = Number(o.threads ?? (await defaultThreads()));
if (canThread() && THREADS > 1) names.push(`${names.at(-1)}, ${THREADS} threads`);
const builds = [];
for (const name of names) builds.push([name, await createEngine(specOf(name))]);
const engine = builds[0][1];
const models = [];
for (const [name, e] of builds) models.push([name, e, await e.loadModel(modelDir(o.model))]);
const model = models[0][2];
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
const refRun = (n) =>
  tf
    .tidy(() => {
      const x = tf.tensor(pixels.subarray(0, n * H * W * C), [n, H, W, C]);
      return isGraph ? ref.execute(x) : ref.predict(x);
    })
    .dataSync();

console.log(
  `# ${o.model}, median of >= ${RUNS} runs and >= ${SAMPLE / 1000} s, Node ${process.versions.node}, builds: ${builds.map((b) => b[0]).join(' | ')}; peer ${tf.getBackend()}, 1 thread`,
);
// Frozen layers run by their 8-bit weight codes (the default); '<build>, float32' is the
// same build with every layer in float32 (loadModel's integer: false), for comparison.
const fwdNames = o['zoo-only'] ? [] : names.flatMap((b) => (/threads/.test(b) ? [b] : [b, `${b}, float32`]));
const forward = Object.fromEntries(fwdNames.map((name) => [name, forwardOf(name)]));
for (const n of fwdNames.length ? [1, 16] : []) {
  const peer = await time(() => refRun(n));
  for (const name of fwdNames) row(`forward, batch ${n} (per image), ${name}`, forward[name][n] / n, peer / n, 'tfjs-wasm');
}
const threaded = names.find((b) => /threads/.test(b));
if (threaded && !o['zoo-only']) {
  const alone = threaded.replace(/, \d+ threads/, '');
  for (const n of [1, 16]) row(`forward, batch ${n}, ${threaded} vs 1`, forward[threaded][n], forward[alone][n], `1 thread`);
}
const peakForward = forward.SIMD?.memory;

// The zoo's other backbones: the model file the engine loads, in tfjs-wasm at the same
// input size (its graph's input made free) on the same pixels, scaled to the range the
// card gives (the engine's scaling is its first op).
for (const spec of o.zoo ? o.zoo.split(',') : []) {
  const [id, size] = spec.split('@');
  const r = spawnSync(
    process.execPath,
    [...process.execArgv, process.argv[1], '--runs', String(o.runs), ...(o.quick ? ['--quick'] : []), '--zoo-child', spec],
    { encoding: 'utf8' },
  );
  if (r.status !== 0) throw new Error(`zoo child for ${spec} failed: ${r.stderr}`);
  const ours = JSON.parse(r.stdout.trim().split('\n').pop());
  const dir = modelDir(id),
    card = JSON.parse(fs.readFileSync(`${dir}/card.json`, 'utf8'));
  const handler = dirHandler(dir);
  const gm = await tf.loadGraphModel({
    load: async () => {
      const a = await handler.load();
      for (const n of a.modelTopology.node)
        if (n.op === 'Placeholder') n.attr.shape.shape.dim = [-1, -1, -1, 3].map((d) => ({ size: String(d) }));
      return a;
    },
  });
  const e = await createEngine({ threads: 1 });
  const m = await e.loadModel(dir, { inputSize: Number(size) });
  const px = m.embedViews(readPhoto(PHOTOS[0]), { views: 1, upto: 0 });
  m.dispose();
  const x = tf.tidy(() => tf.tensor(px, [1, Number(size), Number(size), 3]).mul(card.input.range[1]));
  const peer = await time(() => tf.tidy(() => gm.execute(x)).dataSync());
  tf.dispose(x);
  gm.dispose();
  row(`forward, batch 1, ${id} ${size}x${size} (${ours.feature}-d), SIMD`, ours.ms, peer, 'tfjs-wasm');
}
if (o['zoo-only']) process.exit(0);

// ONNX Runtime as the inference peer: our fastest build on one thread and on all, each
// against ONNX Runtime on as many threads (its output checked against ours).
if (!o['no-ort']) {
  const ortOf = (spec) => {
    const r = spawnSync(
      process.execPath,
      [
        ...process.execArgv,
        process.argv[1],
        '--model',
        o.model,
        '--runs',
        String(o.runs),
        ...(o.quick ? ['--quick'] : []),
        '--ort-child',
        spec,
      ],
      { encoding: 'utf8' },
    );
    if (r.status !== 0) throw new Error(`ONNX Runtime child ${spec} failed: ${r.stderr}`);
    return JSON.parse(r.stdout.trim().split('\n').pop());
  };
  const alone = names.filter((b) => !/threads/.test(b)).at(-1);
  for (const peer of ['ort-web', 'ort-node']) {
    for (const [build, t] of [[alone, 1], ...(threaded ? [[threaded, THREADS]] : [])]) {
      const r = ortOf(`${peer},${t}`);
      if (r.maxAbsDiff > 1e-3) throw new Error(`${peer} gives outputs ${r.maxAbsDiff} away from ours: the export or the peer is wrong`);
      for (const n of [1, 16])
        row(`forward, batch ${n} (per image), ${build}`, forward[build][n] / n, r[n] / n, `${peer}${t > 1 ? `/${t}` : ''}`);
    }
  }
}

// Kernels at MobileNetV2 1.4 shapes: GFLOP/s of each build's own kernels (exported
// micro-benchmark, operands resident) against tfjs-wasm's fused ops (XNNPACK) on the same
// shapes, timed without reading results back (tfjs-wasm runs kernels when called).
const KERNELS = [
  ['GEMM 12544x144x24 (expand, 112x112)', 0, 12544, 144, 24, 2 * 12544 * 144 * 24],
  ['GEMM 196x816x136 (expand, 14x14)', 0, 196, 816, 136, 2 * 196 * 816 * 136],
  ['GEMM 49x448x1344 (project, 7x7)', 0, 49, 448, 1344, 2 * 49 * 448 * 1344],
  // The same products by 8-bit weight codes, as the frozen backbone runs them.
  ['int16 GEMM 12544x144x24 (expand, 112x112)', 3, 12544, 144, 24, 2 * 12544 * 144 * 24],
  ['int16 GEMM 196x816x136 (expand, 14x14)', 3, 196, 816, 136, 2 * 196 * 816 * 136],
  ['int16 GEMM 49x448x1344 (project, 7x7)', 3, 49, 448, 1344, 2 * 49 * 448 * 1344],
  ['dwconv 3x3 s1 56x56x192', 1, 56, 192, 1, 2 * 9 * 56 * 56 * 192],
  ['dwconv 3x3 s2 112x112x144', 1, 112, 144, 2, 2 * 9 * 56 * 56 * 144],
  ['conv 3x3 s2 224x224x3 -> 48 (stem)', 2, 224, 48, 2, 2 * 27 * 112 * 112 * 48],
];
const reps = (flops) => Math.max(1, Math.round(2e8 / flops));
for (const [what, kind, a, b, c, flops] of KERNELS) {
  const r = reps(flops);
  const t = tf.tidy(() => {
    const rnd = (shape) => tf.randomUniform(shape, -0.5, 0.5);
    if (kind === 0 || kind === 3) return { a: rnd([a, c]), b: rnd([c, b]), bias: rnd([b]) };
    if (kind === 1) return { x: rnd([1, a, a, b]), filter: rnd([3, 3, b, 1]), bias: rnd([b]) };
    return { x: rnd([1, a, a, 3]), filter: rnd([3, 3, 3, b]), bias: rnd([b]) };
  });
  const op = () => {
    for (let i = 0; i < r; i++) {
      const y =
        kind === 0 || kind === 3
          ? tf.fused.matMul({ a: t.a, b: t.b, bias: t.bias, activation: 'relu6' })
          : kind === 1
            ? tf.fused.depthwiseConv2d({ x: t.x, filter: t.filter, strides: c, pad: 'same', bias: t.bias, activation: 'relu6' })
            : tf.fused.conv2d({ x: t.x, filter: t.filter, strides: c, pad: 'same', bias: t.bias, activation: 'relu6' });
      y.dispose();
    }
  };
  const peer = ((flops * r) / (await time(op, Math.max(RUNS, 5)))) * 1e-6;
  tf.dispose(Object.values(t));
  for (const [name, e] of builds) {
    const x = e.mod.x;
    if (x.tt_bench_kernel(kind, a, b, c, 0) < 0) throw new Error('kernel micro-benchmark: out of memory');
    const ours = ((flops * r) / (await time(() => x.tt_bench_kernel(kind, a, b, c, r), Math.max(RUNS, 5)))) * 1e-6;
    row(`${what}, ${name}`, ours, peer, 'tfjs-wasm', 'GFLOP/s');
  }
}

await tf.setBackend('cpu');
const cpu = await time(() => refRun(1), 1);
row('forward, batch 1, SIMD', await time(() => model.runInput(one, 1, model.layers.length - 1)), cpu, 'tfjs-cpu');
await tf.setBackend('wasm');

// Head training: 1,000 cached features x 50 epochs, Dense(100, relu) -> Dense(10), batch 16.
const F = model.layers[model.cut].shape[2];
const N = 1000,
  K = 10;
const feats = new Float32Array(N * F),
  labels = new Int32Array(N);
for (let i = 0; i < N; i++) {
  labels[i] = i % K;
  for (let j = 0; j < F; j++) feats[i * F + j] = Math.max(0, Math.sin(i * 0.37 + j * 1.3) + (j % K === labels[i] ? 0.5 : 0));
}
const xs = tf.tensor2d(feats, [N, F]),
  ys = tf.oneHot(tf.tensor1d(labels, 'int32'), K);
const tm = tf.sequential({
  layers: [tf.layers.dense({ inputShape: [F], units: 100, activation: 'relu' }), tf.layers.dense({ units: K, activation: 'softmax' })],
});
tm.compile({ optimizer: tf.train.adam(1e-3), loss: 'categoricalCrossentropy' });
const peerHead = median(
  await Promise.all(
    [0].map(async () => {
      const t0 = performance.now();
      await tm.fit(xs, ys, { epochs: 50, batchSize: 16, verbose: 0 });
      return performance.now() - t0;
    }),
  ),
);
for (const [name, , m] of models) {
  const fit = async () => {
    const head = new Classifier(m, { labels: Array.from({ length: K }, (_, k) => `c${k}`), hidden: 100, dropout: 0, augment: false });
    head.images = Array.from({ length: N }, (_, i) => ({ label: labels[i], data: feats.subarray(i * F, (i + 1) * F) }));
    const t0 = performance.now();
    await head.fit({ epochs: 50, validationFraction: 0, patience: 0, batchesPerTick: 1e9 });
    const dt = performance.now() - t0;
    head.dispose();
    return dt;
  };
  await fit(); // warm-up (tier-up), as tfjs's first fit is its own
  const ts = [];
  for (let i = 0; i < (o.quick ? 1 : 3); i++) ts.push(await fit());
  row(`head training, 1000 features x 50 epochs, ${name}`, median(ts), peerHead, 'tfjs-wasm');
}
tf.dispose([xs, ys]);

// One fine-tuning step of the last 2 blocks + head at batch 16, against our own forward.
for (const [name, , m] of models) {
  const ft = new Classifier(m, { labels: ['a', 'b'], blocks: 2, augment: false });
  const act = m.runInput(pixels, 16, ft.boundary);
  const per = act.length / 16;
  ft.images = Array.from({ length: 16 }, (_, i) => ({ label: i % 2, data: act.subarray(i * per, (i + 1) * per) }));
  const step = await time(() => ft.fit({ epochs: 1, batchSize: 16, validationFraction: 0, patience: 0 }));
  const fwd16 = await time(() => m.runInput(pixels, 16, m.layers.length - 1));
  rows.push({ what: `fine-tune step K=2 batch 16 / forward batch 16, ${name}`, ours: step, peer: fwd16, ratio: step / fwd16, unit: 'ms' });
  console.log(
    `${`fine-tune step, K=2 + head, batch 16, ${name}`.padEnd(56)} ${step.toFixed(1)} ms = ${(step / fwd16).toFixed(2)}x our forward of batch 16 (${fwd16.toFixed(1)} ms)`,
  );
  ft.dispose();
}

{
  const r = spawnSync(
    process.execPath,
    [...process.execArgv, process.argv[1], '--model', o.model, ...(o.quick ? ['--quick'] : []), '--memory-child'],
    { encoding: 'utf8' },
  );
  if (r.status !== 0) throw new Error(`memory child failed: ${r.stderr}`);
  const mem = JSON.parse(r.stdout.trim().split('\n').pop()),
    MiB = 2 ** 20;
  rows.push({ what: `memory, ${mem.images} images head-only`, ours: (mem.wasm + mem.cache) / MiB, unit: 'MiB', ...mem });
  console.log(
    `memory, ${mem.images} photos x ${mem.views} views, head-only (${mem.threads} threads): wasm ${(mem.wasm / MiB).toFixed(0)} MiB + ` +
      `cached features ${(mem.cache / MiB).toFixed(0)} MiB = ${((mem.wasm + mem.cache) / MiB).toFixed(0)} MiB (process RSS ${(mem.rss / MiB).toFixed(0)} MiB); ` +
      `embedding took ${(mem.embedMs / mem.images).toFixed(1)} ms/photo`,
  );
}
const peak = engine.memoryBytes();
console.log(
  `wasm memory (SIMD build): ${(peakForward / 2 ** 20).toFixed(0)} MiB after forward, ${(peak / 2 ** 20).toFixed(0)} MiB at the end`,
);
fs.writeFileSync(
  o.json,
  JSON.stringify(
    {
      model: o.model,
      runs: RUNS,
      node: process.versions.node,
      builds: builds.map((b) => b[0]),
      rows,
      memory: { afterForward: peakForward, end: peak },
      date: new Date().toISOString(),
    },
    null,
    2,
  ),
);
console.log(`wrote ${o.json}`);

// Fine-tuning: a K = 2 step against tfjs-wasm training the same ops, and the time from
// images to a trained model for K = 0 and K = 2 (bench/finetune.mjs, in a process of its own).
{
  const r = spawnSync(
    process.execPath,
    [
      ...process.execArgv,
      new URL('./finetune.mjs', import.meta.url).pathname,
      ...(o.quick ? ['--quick'] : []),
      '--json',
      o.json.replace(/\.json$/, '') + '-finetune.json',
    ],
    { stdio: 'inherit' },
  );
  if (r.status !== 0) process.exitCode = 1;
}
