// Head training alone, as bench/bench.mjs times it (1,000 cached features x 50 epochs,
// Dense(100, relu) -> Dense(10), batch 16, Adam), without the rest of the bench: for
// A/B runs of the head's kernels. Prints one line per run.
//   node --experimental-wasm-relaxed-simd bench/head.mjs [--model mobilenet_v2_mid] [--threads 1] [--runs 3]
import { parseArgs } from 'node:util';
import { createEngine } from '../wasm/engine.mjs';
import { Classifier } from '../wasm/transfer.mjs';
import { modelDir } from '../tests/helpers.mjs';

const { values: o } = parseArgs({
  options: {
    model: { type: 'string', default: 'mobilenet_v2_mid' },
    threads: { type: 'string', default: '1' },
    'wasm-base': { type: 'string' },
    runs: { type: 'string', default: '3' },
  },
});
// --wasm-base DIR: the builds from another folder (an A/B run against other code)
const engine = await createEngine({
  threads: Number(o.threads),
  ...(o['wasm-base'] ? { wasmBase: new URL(`file://${o['wasm-base'].replace(/\/?$/, '/')}`) } : {}),
});
const m = await engine.loadModel(modelDir(o.model));
const F = m.layers[m.cut].shape[2],
  N = 1000,
  K = 10;
const feats = new Float32Array(N * F),
  labels = new Int32Array(N);
for (let i = 0; i < N; i++) {
  labels[i] = i % K;
  for (let j = 0; j < F; j++) feats[i * F + j] = Math.max(0, Math.sin(i * 0.37 + j * 1.3) + (j % K === labels[i] ? 0.5 : 0));
}
// A digest of the trained head's outputs on 20 inputs: equal across A/B runs when the
// arithmetic is unchanged.
const digest = (probs) => {
  let h = 0;
  for (const v of new Uint32Array(Float32Array.from(probs.flat()).buffer)) h = (Math.imul(h, 31) + v) >>> 0;
  return h.toString(16);
};
let out = '';
const cpu = []; // CPU seconds: with one thread, the time less any wait for a core (a shared machine)
const fit = async () => {
  const head = new Classifier(m, {
    labels: Array.from({ length: K }, (_, k) => `c${k}`),
    hidden: 100,
    dropout: 0,
    augment: false,
    blocks: 0,
  });
  head.images = Array.from({ length: N }, (_, i) => ({ label: labels[i], data: feats.subarray(i * F, (i + 1) * F) }));
  const t0 = performance.now(),
    c0 = process.cpuUsage();
  const r = await head.fit({ epochs: 50, validationFraction: 0, patience: 0, batchesPerTick: 1e9 });
  const dt = performance.now() - t0,
    cu = process.cpuUsage(c0);
  cpu.push((cu.user + cu.system) / 1e6);
  out = digest(head.predictActivations(Array.from({ length: 20 }, (_, i) => feats.subarray(i * F, (i + 1) * F))).map((p) => Array.from(p)));
  head.dispose();
  return { dt, r };
};
await fit();
cpu.length = 0;
const ts = [];
for (let i = 0; i < Number(o.runs); i++) ts.push((await fit()).dt);
console.log(
  `head training, ${N} x ${F} features x 50 epochs, ${engine.build ?? ''} ${engine.threads} thread(s): ${ts.map((t) => (t / 1000).toFixed(3)).join(' ')} s (CPU ${cpu.map((t) => t.toFixed(3)).join(' ')} s), outputs ${out}`,
);
