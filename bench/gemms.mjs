// The training step's GEMMs alone, GFLOP/s on one thread (or --threads N), at the shapes of
// mobilenet_v2's last 2 blocks + last conv on a batch of 16 (784 rows of 7x7 pixels):
// forward (kind 0), weight gradient A^T G (kind 4), input gradient G W^T (kind 5), through
// the engine's own tt_bench_kernel export (the exact code users run). For A/B runs of the
// GEMM; the peer-to-peer numbers are in bench.mjs and finetune.mjs.
//   node --experimental-wasm-relaxed-simd bench/gemms.mjs [--threads 1] [--rows 784]
import { parseArgs } from 'node:util';
import { createEngine } from '../wasm/engine.mjs';

const { values: o } = parseArgs({
  options: {
    threads: { type: 'string', default: '1' },
    rows: { type: 'string', default: '784' },
    rounds: { type: 'string', default: '5' },
  },
});
const e = await createEngine({ threads: Number(o.threads) });
const x = e.mod.x,
  M = Number(o.rows);
const shapes = [
  [160, 960],
  [960, 160],
  [960, 320],
  [320, 1280],
]; // cin -> cout
const KIND = { 0: 'forward  x W', 4: 'weight grad x^T g', 5: 'input grad g W^T' };
const res = {};
for (let round = 0; round < Number(o.rounds); round++) {
  for (const kind of [0, 4, 5])
    for (const [cin, cout] of shapes) {
      if (x.tt_bench_kernel(kind, M, cout, cin, 0) < 0) throw new Error('out of memory');
      const flops = 2 * M * cin * cout;
      // CPU time, not wall time, with one thread: on a shared machine the time spent
      // waiting for a core is then left out (cache misses from a neighbour are not)
      x.tt_bench_kernel(kind, M, cout, cin, 2);
      const t0 = process.cpuUsage();
      x.tt_bench_kernel(kind, M, cout, cin, 10);
      const u = process.cpuUsage(t0);
      const dt = (u.user + u.system) / 1e3 / 10;
      (res[`${KIND[kind]} ${M}x${cin}->${cout}`] ??= []).push((flops / dt) * 1e-6);
    }
}
console.log(`# ${e.build ?? ''}, ${e.threads} thread(s), GFLOP/s (CPU time, 10 calls) over ${o.rounds} rounds: best, median`);
for (const [k, v] of Object.entries(res)) {
  const s = v.sort((a, b) => a - b);
  console.log(`${k.padEnd(36)} ${s[s.length - 1].toFixed(1)}  ${s[s.length >> 1].toFixed(1)}`);
}
