// 2 threads over 1 on the forward pass (batch 1 and batch 16 per image), for runs where the
// cores are unequal: run it pinned to two cores with one of them shared with a busy
// process, e.g.
//   taskset -c 0 sh -c 'yes > /dev/null' & taskset -c 0,1 node --experimental-wasm-relaxed-simd bench/unequal.mjs
// (the engine's two threads then get about 1 and 1/2 of a core). Alternated 1- and
// 2-thread runs; --wasm-base DIR loads the builds from another folder (an A/B run).
import { parseArgs } from 'node:util';
import { createEngine } from '../wasm/engine.mjs';
import { modelDir } from '../tests/helpers.mjs';

const { values: o } = parseArgs({
  options: {
    model: { type: 'string', default: 'mobilenet_v2_mid' },
    rounds: { type: 'string', default: '5' },
    'wasm-base': { type: 'string' },
  },
});
const base = o['wasm-base'] ? { wasmBase: new URL(`file://${o['wasm-base'].replace(/\/?$/, '/')}`) } : {};
const e1 = await createEngine({ threads: 1, ...base }),
  e2 = await createEngine({ threads: 2, ...base });
const m1 = await e1.loadModel(modelDir(o.model)),
  m2 = await e2.loadModel(modelDir(o.model));
const per = m1.inputShape.reduce((a, b) => a * b, 1);
const x16 = Float32Array.from({ length: 16 * per }, (_, i) => Math.sin(i * 0.01)),
  x1 = x16.subarray(0, per);
// the fastest of reps runs: on a machine shared with other jobs, the least disturbed one
const time = async (m, x, reps) => {
  const n = x.length / per;
  m.runInput(x, n);
  let best = Infinity;
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    m.runInput(x, n);
    best = Math.min(best, performance.now() - t0);
  }
  return best / n;
};
const r = { b1: [], b16: [] };
for (let k = 0; k < Number(o.rounds); k++) {
  r.b1.push((await time(m1, x1, 10)) / (await time(m2, x1, 10)));
  r.b16.push((await time(m1, x16, 4)) / (await time(m2, x16, 4)));
}
const s = (xs) => `x${Math.min(...xs).toFixed(2)}-x${Math.max(...xs).toFixed(2)}`;
const y1 = m1.runInput(x16, 16),
  y2 = m2.runInput(x16, 16),
  same = y1.every((v, i) => Object.is(v, y2[i]));
console.log(
  `2 threads over 1, ${e2.build}, ${o.model}: forward batch 1 ${s(r.b1)}, batch 16 ${s(r.b16)} (${o.rounds} rounds); features bit-identical: ${same}`,
);
