// Shared test fixtures: real photos from Debian's python3-skimage, the built model zoo,
// and TensorFlow.js (WASM backend) as the numerical reference.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const SKIMAGE = '/usr/lib/python3/dist-packages/skimage/data';
export const PHOTOS = ['chelsea.png', 'coffee.png', 'astronaut.png', 'rocket.jpg', 'motorcycle_left.png', 'horse.png', 'camera.png', 'hubble_deep_field.jpg'];
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
      const specs = [], bufs = [];
      for (const g of json.weightsManifest) {
        specs.push(...g.weights);
        for (const p of g.paths) bufs.push(fs.readFileSync(path.join(dir, p)));
      }
      const all = Buffer.concat(bufs);
      return {
        modelTopology: json.modelTopology, format: json.format, generatedBy: json.generatedBy,
        convertedBy: json.convertedBy, userDefinedMetadata: json.userDefinedMetadata, signature: json.signature,
        weightSpecs: specs, weightData: all.buffer.slice(all.byteOffset, all.byteOffset + all.length),
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
  let ab = 0, aa = 0, bb = 0;
  for (let i = 0; i < a.length; i++) ab += a[i] * b[i], aa += a[i] * a[i], bb += b[i] * b[i];
  return ab / Math.sqrt(aa * bb);
}

export const argmax = (a) => a.reduce((bi, v, i, arr) => (v > arr[bi] ? i : bi), 0);
