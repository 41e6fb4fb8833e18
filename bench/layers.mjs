// Per-op profile of the real model in WASM: each op of the backbone runs alone, in a
// one-op network built through the exported API (same shapes and dispatch as the full
// forward, random weights), so its time is measured directly instead of as a difference
// of two noisy whole-network timings (pointwise convs by the integer GEMM, as with the
// real weights, unless --float). Prints every op and totals per kind of op. Ops run
// one at a time here, so the expand/depthwise/project blocks the engine fuses in row bands
// (src/infer.c, run_block) are timed unfused: the gap between the sum of ops and the whole
// network is mostly that and cache effects between ops. --prefix adds in-network costs
// as differences of prefix timings (noisy on a shared machine).
//   node bench/layers.mjs [--model mobilenet_v2_mid] [--batch 1] [--runs 15] [--top 25] [--threads N] [--float]
import { parseArgs } from 'node:util';
import { createEngine, putOpDesc } from '../wasm/engine.mjs';
import { modelDir } from '../tests/helpers.mjs';

const { values: o } = parseArgs({
  options: {
    model: { type: 'string', default: 'mobilenet_v2_mid' },
    batch: { type: 'string', default: '1' },
    runs: { type: 'string', default: '15' },
    top: { type: 'string', default: '25' },
    simd: { type: 'string', default: '' },
    prefix: { type: 'boolean', default: false },
    threads: { type: 'string', default: '' },
    float: { type: 'boolean', default: false },
    wasm: { type: 'string', default: '' },
  },
});
const N = Number(o.batch),
  RUNS = Number(o.runs);
const engine = await createEngine({
  ...(o.threads ? { threads: Number(o.threads) } : {}),
  ...(o.simd ? { simd: o.simd === 'true' } : {}),
  ...(o.wasm ? { url: new URL(o.wasm, `file://${process.cwd()}/`) } : {}),
});
const model = await engine.loadModel(modelDir(o.model), { integer: !o.float });
const m = engine.mod;
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
// Per op, the fastest sample: on a shared machine it is the least disturbed one.
const best = (xs) => Math.min(...xs);
const size = (s) => s.reduce((a, b) => a * b, 1);
const rand = (n) => {
  const p = m.alloc(Math.max(1, n) * 4);
  const f = m.f32;
  for (let i = 0; i < n; i++) f[(p >> 2) + i] = Math.sin(i * 0.7) * 0.1;
  return p;
};

// V8 runs wasm functions in its baseline compiler (Liftoff) until they are hot; warm the
// whole network up first so every kernel is measured in TurboFan code.
const x0 = new Float32Array(N * size(model.inputShape)).map((_, i) => Math.sin(i) * 0.5);
for (const t0 = performance.now(); performance.now() - t0 < 3000;) model.runInput(x0, N);

const rows = [];
model.parsed.ops.forEach((op, i) => {
  if (i === 0) return;
  const [h, w, c] = model.layers[op.inputs[0]].shape,
    out = model.layers[i].shape;
  const [kh, kw] = op.kernel ?? [0, 0],
    [sh, sw] = op.strides ?? [0, 0],
    [pt, pb, pl, pr] = op.pads ?? [0, 0, 0, 0];
  const wn =
    op.type === 'conv2d'
      ? kh * kw * c * op.channels
      : op.type === 'depthwise'
        ? kh * kw * c
        : op.type === 'dense'
          ? h * w * c * op.channels
          : 0;
  const net = m.ptr(m.x.tt_net_create(h, w, c));
  // Pointwise weights as uint8 codes (like the real ones), so they run as the engine runs
  // them: by the integer GEMM, unless --float.
  const codes = !o.float && op.type === 'conv2d' && kh === 1;
  const Q = { min: -0.128, scale: 0.001 };
  const wp = !wn ? 0 : codes ? m.put(new Float32Array(wn).map((_, i) => ((i * 37) % 256) * Q.scale + Q.min)) : rand(wn);
  m.scoped((t) => m.check(m.x.tt_net_add(net, t(m.putString(op.name)), t(putOpDesc(m, op)), wp, wn, 0, 0)));
  if (codes) m.check(m.x.tt_net_quantized(net, 1, Q.min, Q.scale));
  m.free(wp);
  const x = rand(N * h * w * c);
  for (let r = 0; r < 3; r++) m.x.tt_net_forward(net, x, N, -1);
  const ts = [];
  // Enough repetitions per sample that tiny ops are not measured at timer resolution.
  const t0 = performance.now();
  m.x.tt_net_forward(net, x, N, -1);
  const once = performance.now() - t0;
  const reps = Math.max(1, Math.ceil(2 / Math.max(once, 1e-3)));
  for (let r = 0; r < RUNS; r++) {
    const a = performance.now();
    for (let k = 0; k < reps; k++) m.x.tt_net_forward(net, x, N, -1);
    ts.push((performance.now() - a) / reps);
  }
  m.free(x);
  m.x.tt_net_free(net);
  const macs =
    op.type === 'conv2d' || op.type === 'dense' ? size(out) * (wn / op.channels) : op.type === 'depthwise' ? size(out) * kh * kw : 0;
  const kind =
    op.type === 'conv2d'
      ? kh === 1
        ? op.act === 'relu6'
          ? 'pw expand'
          : 'pw project'
        : 'stem conv'
      : op.type === 'depthwise'
        ? `dw s${sh}`
        : op.type;
  const ms = best(ts) / N;
  rows.push({ i, kind, shape: `${h}x${w}x${c} -> ${out.join('x')}`, ms, gflops: macs ? ((2 * macs) / ms) * 1e-6 : 0 });
});
const total = rows.reduce((a, r) => a + r.ms, 0);
console.log(`# ${o.model}, batch ${N}, per image, best of ${RUNS}, SIMD ${engine.simd}`);
for (const r of [...rows].sort((a, b) => b.ms - a.ms).slice(0, Number(o.top)))
  console.log(
    `${String(r.i).padStart(3)} ${r.kind.padEnd(11)} ${r.shape.padEnd(28)} ${r.ms.toFixed(3).padStart(7)} ms ${((100 * r.ms) / total).toFixed(1).padStart(5)}%` +
      (r.gflops ? ` ${r.gflops.toFixed(1).padStart(6)} GFLOP/s` : ''),
  );
const kinds = {};
for (const r of rows) {
  const k = (kinds[r.kind] ??= { ms: 0, n: 0, fl: 0 });
  k.ms += r.ms;
  k.n++;
  k.fl += r.gflops * r.ms;
}
console.log('-- per kind');
for (const [k, v] of Object.entries(kinds).sort((a, b) => b[1].ms - a[1].ms))
  console.log(
    `${k.padEnd(11)} x${String(v.n).padEnd(3)} ${v.ms.toFixed(2).padStart(7)} ms ${((100 * v.ms) / total).toFixed(1).padStart(5)}%` +
      (v.fl ? ` ${(v.fl / v.ms).toFixed(1).padStart(6)} GFLOP/s` : ''),
  );
const x = new Float32Array(N * size(model.inputShape)).map((_, i) => Math.sin(i) * 0.5);
model.runInput(x, N);
const full = [];
for (let r = 0; r < 9; r++) {
  const a = performance.now();
  model.runInput(x, N);
  full.push(performance.now() - a);
}
console.log(`sum of ops ${total.toFixed(2)} ms/image; whole network (best of 9) ${(best(full) / N).toFixed(2)} ms/image`);

// In the network, an op also pays for the activations its neighbours evicted from cache:
// the best time of the prefix ending at each op, minus the prefix before it.
if (o.prefix) {
  const pre = [0];
  model.runInput(x, N); // leaves x in the model's input buffer
  // Straight through the export, not runInput: that copies the last op's output out.
  const run = (last) => m.x.tt_net_forward(model.net, model._input, N, last);
  for (let i = 1; i < model.layers.length; i++) {
    const ts = [];
    for (let r = 0; r < RUNS; r++) {
      const a = performance.now();
      run(i);
      ts.push(performance.now() - a);
    }
    pre.push(best(ts) / N);
  }
  const kinds2 = {};
  for (const r of rows) {
    const k = (kinds2[r.kind] ??= { alone: 0, net: 0 });
    k.alone += r.ms;
    k.net += pre[r.i] - pre[r.i - 1];
  }
  console.log('-- in the network (prefix differences) vs alone, per kind');
  for (const [k, v] of Object.entries(kinds2).sort((a, b) => b[1].net - a[1].net))
    console.log(`${k.padEnd(11)} net ${v.net.toFixed(2).padStart(7)} ms   alone ${v.alone.toFixed(2).padStart(7)} ms`);
  for (const r of rows) r.net = pre[r.i] - pre[r.i - 1];
  for (const r of [...rows].sort((a, b) => b.net - b.ms - (a.net - a.ms)).slice(0, 12))
    console.log(`${String(r.i).padStart(3)} ${r.kind.padEnd(11)} ${r.shape.padEnd(28)} net ${r.net.toFixed(3)} alone ${r.ms.toFixed(3)}`);
}
