// One fine-tuning step of the last 2 blocks + head at batch 16 (mobilenet_v2), ours only,
// as bench/finetune.mjs times it: for A/B runs of the training kernels without the tfjs
// peer. Prints the steps' times and a digest of the trained weights (equal across A/B
// runs when the arithmetic is unchanged).
//   node --experimental-wasm-relaxed-simd bench/step.mjs [--model mobilenet_v2] [--threads 1] [--steps 10]
import { parseArgs } from 'node:util';
import { createEngine } from '../wasm/engine.mjs';
import { Classifier } from '../wasm/transfer.mjs';
import { PHOTOS, modelDir, readPhoto } from '../tests/helpers.mjs';

const { values: o } = parseArgs({
  options: {
    model: { type: 'string', default: 'mobilenet_v2' },
    threads: { type: 'string', default: '1' },
    'wasm-base': { type: 'string' },
    steps: { type: 'string', default: '10' },
  },
});
const B = 16,
  C = 2;
// --wasm-base DIR: the builds from another folder (an A/B run against other code)
const engine = await createEngine({
  threads: Number(o.threads),
  ...(o['wasm-base'] ? { wasmBase: new URL(`file://${o['wasm-base'].replace(/\/?$/, '/')}`) } : {}),
});
const m = await engine.loadModel(modelDir(o.model));
const c = new Classifier(m, { labels: ['a', 'b'], blocks: 2, augment: false });
const acts = PHOTOS.slice(0, 8)
  .map(readPhoto)
  .map((p) => m.embedViews(p, { views: 1, upto: c.boundary }));
c.images = Array.from({ length: B }, (_, i) => ({ label: i % C, data: acts[i % acts.length] }));
const fit = async () => {
  const t0 = performance.now();
  await c.fit({ epochs: 1, batchSize: B, validationFraction: 0, patience: 0 });
  return performance.now() - t0;
};
(await fit(), await fit());
const ts = [];
for (let i = 0; i < Number(o.steps); i++) ts.push(await fit());
let h = 0;
for (const op of c.ops()) for (const v of new Uint32Array(Float32Array.from(op.weights).buffer)) h = (Math.imul(h, 31) + v) >>> 0;
const s = [...ts].sort((a, b) => a - b);
console.log(
  `K=2 step, batch ${B}, ${o.model}, ${engine.build ?? ''} ${engine.threads} thread(s): median ${s[s.length >> 1].toFixed(1)} ms (${s[0].toFixed(1)}-${s[s.length - 1].toFixed(1)}), weights ${h.toString(16)}`,
);
(c.dispose(), m.dispose());
