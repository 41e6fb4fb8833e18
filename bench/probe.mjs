// Linear probe: how well each backbone's pooled features separate classes it never saw,
// before any fine-tuning. The same multinomial logistic regression (features standardised
// on the training split, L2 1e-3, full-batch gradient descent, in plain JS) on each
// backbone's features of the same real images; accuracy on held-out images, mean over
// --seeds. Sets (tests/helpers.mjs and scikit-image's data):
//   textures  brick / grass / gravel crops, 20 per class to train, 10 held out
//   digits    MNIST digits shifted on a 48x48 canvas, 10 classes, 10 per class, 10 held out
//   faces     scikit-image's LFW subset: 25x25 grey faces vs non-faces, 30 per class, 70 held out
//   node bench/probe.mjs [--models mobilenet_v2_mid,centernet_mnv3@512,centernet_mnv3@224,mobilefacenet] [--seeds 1,2,3]
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { createEngine } from '../wasm/engine.mjs';
import { SKIMAGE, modelDir, textureSet, digitSet, seeded } from '../tests/helpers.mjs';

const { values: o } = parseArgs({
  options: {
    models: { type: 'string', default: 'mobilenet_v2_mid,centernet_mnv3@512,centernet_mnv3@224,mobilefacenet' },
    seeds: { type: 'string', default: '1,2,3' },
  },
});

// scikit-image's lfw_subset.npy: 200 x 25 x 25 float64 in [0,1], 100 faces then 100 not
function lfw() {
  const buf = fs.readFileSync(path.join(SKIMAGE, 'lfw_subset.npy'));
  const hlen = buf.readUInt16LE(8),
    header = buf.subarray(10, 10 + hlen).toString();
  if (!/'descr': '<f8'/.test(header) || !/\(200, 25, 25\)/.test(header)) throw new Error(`lfw_subset.npy: unexpected header ${header}`);
  const f = new Float64Array(buf.buffer.slice(buf.byteOffset + 10 + hlen, buf.byteOffset + 10 + hlen + 200 * 625 * 8));
  return Array.from({ length: 200 }, (_, i) => ({
    label: i < 100 ? 'face' : 'not face',
    pixels: {
      width: 25,
      height: 25,
      channels: 1,
      data: Uint8Array.from(f.subarray(i * 625, (i + 1) * 625), (v) => Math.round(Math.min(1, Math.max(0, v)) * 255)),
    },
  }));
}

function sets(engine, seed) {
  const rnd = seeded(seed);
  const t = textureSet(engine, { perClass: 20, heldOut: 10, seed });
  const faces = lfw();
  const pick = (items, n) => {
    const a = [...items];
    for (let i = a.length - 1; i > 0; i--) {
      const j = Math.floor(rnd() * (i + 1));
      [a[i], a[j]] = [a[j], a[i]];
    }
    return [a.slice(0, n), a.slice(n)];
  };
  const [ft, fh] = pick(faces.slice(0, 100), 30),
    [nt, nh] = pick(faces.slice(100), 30);
  const first = Math.floor(rnd() * 100);
  return {
    textures: { train: t.train, test: t.test },
    digits: { train: digitSet({ count: 10, first, shift: true }), test: digitSet({ first: 300 + first, count: 10, shift: true }) },
    faces: { train: [...ft, ...nt], test: [...fh, ...nh] },
  };
}

// Multinomial logistic regression, standardised features, L2, gradient descent.
function probe(train, test, seed) {
  const labels = [...new Set(train.map((s) => s.label))],
    K = labels.length,
    F = train[0].f.length;
  const mu = new Float64Array(F),
    sd = new Float64Array(F);
  for (const s of train) for (let j = 0; j < F; j++) mu[j] += s.f[j] / train.length;
  for (const s of train) for (let j = 0; j < F; j++) sd[j] += (s.f[j] - mu[j]) ** 2 / train.length;
  for (let j = 0; j < F; j++) sd[j] = Math.sqrt(sd[j]) + 1e-6;
  const z = (f) => Float64Array.from(f, (v, j) => (v - mu[j]) / sd[j]);
  const X = train.map((s) => z(s.f)),
    Y = train.map((s) => labels.indexOf(s.label));
  const rnd = seeded(seed);
  const W = Array.from({ length: K }, () => Float64Array.from({ length: F + 1 }, () => (rnd() - 0.5) * 0.01));
  const scores = (x) =>
    W.map((w) => {
      let a = w[F];
      for (let j = 0; j < F; j++) a += w[j] * x[j];
      return a;
    });
  const softmax = (a) => {
    const m = Math.max(...a),
      e = a.map((v) => Math.exp(v - m)),
      s = e.reduce((p, q) => p + q);
    return e.map((v) => v / s);
  };
  for (let it = 0; it < 300; it++) {
    const G = W.map(() => new Float64Array(F + 1));
    X.forEach((x, i) => {
      const p = softmax(scores(x));
      for (let k = 0; k < K; k++) {
        const d = (p[k] - (Y[i] === k ? 1 : 0)) / X.length;
        for (let j = 0; j < F; j++) G[k][j] += d * x[j];
        G[k][F] += d;
      }
    });
    for (let k = 0; k < K; k++) for (let j = 0; j <= F; j++) W[k][j] -= 0.5 * (G[k][j] + (j < F ? 1e-3 * W[k][j] : 0));
  }
  return (
    test.filter((s) => {
      const a = scores(z(s.f));
      return labels[a.indexOf(Math.max(...a))] === s.label;
    }).length / test.length
  );
}

const engine = await createEngine();
const results = {};
for (const spec of o.models.split(',')) {
  const [id, size] = spec.split('@');
  const model = await engine.loadModel(modelDir(id), size ? { inputSize: Number(size) } : {});
  results[spec] = {};
  for (const seed of o.seeds.split(',').map(Number)) {
    for (const [name, set] of Object.entries(sets(engine, seed))) {
      const embed = (s) => ({ label: s.label, f: model.embed(s.pixels) });
      const acc = probe(set.train.map(embed), set.test.map(embed), seed);
      (results[spec][name] ??= []).push(acc);
    }
  }
  model.dispose();
  const row = Object.entries(results[spec])
    .map(([n, a]) => `${n} ${(a.reduce((p, q) => p + q) / a.length).toFixed(3)}`)
    .join('  ');
  console.log(`${spec.padEnd(22)} ${row}`);
}
