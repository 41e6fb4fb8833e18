// Cached activations in half precision (Classifier option `half`): half the bytes, and
// training on them is training on their float32 values rounded to half precision, bit for
// bit (the engine widens each batch back to float32; src/kernels/half.c).
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { createEngine } from '../wasm/engine.mjs';
import { Classifier, toHalf } from '../wasm/transfer.mjs';
import { modelDir, textureSet } from './helpers.mjs';

// An independent binary16 decoder, to check the engine's rounding against.
function fromHalf(h) {
  const s = h & 0x8000 ? -1 : 1,
    e = (h >> 10) & 0x1f,
    m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

let engine, model;
before(async () => {
  engine = await createEngine({ threads: 1 });
  model = await engine.loadModel(modelDir('mobilenet_v2'));
});

test('toHalf rounds to the nearest half, ties to even, out of range to infinity', () => {
  const x = new Float32Array([0, -0, 1, 0.1, 1 + 2 ** -11, 1 + 3 * 2 ** -11, 65504, 65520, -1e6, 2 ** -24, 2 ** -26, NaN]);
  const h = toHalf(model.mod, x);
  assert.ok(h instanceof Uint16Array && h.length === x.length);
  assert.deepEqual([...h.slice(0, 11)], [0x0000, 0x8000, 0x3c00, 0x2e66, 0x3c00, 0x3c02, 0x7bff, 0x7c00, 0xfc00, 0x0001, 0x0000]);
  assert.ok(Number.isNaN(fromHalf(h[11])));
});

test('a classifier with half-precision features trains exactly as on those values in float32', async () => {
  const set = textureSet(engine, { perClass: 5, heldOut: 2 });
  const runs = [];
  for (const half of [true, false]) {
    const c = new Classifier(model, { labels: set.labels, blocks: 2, views: 2, seed: 4, half });
    for (const s of set.train) c.addImage(s.pixels, s.label);
    if (half) {
      assert.ok(c.images.every((im) => im.data instanceof Uint16Array));
      runs.bytes = c.images.reduce((a, im) => a + im.data.byteLength, 0);
      runs.rounded = c.images.map((im) => Float32Array.from(im.data, fromHalf));
    } else {
      assert.equal(
        runs.bytes * 2,
        c.images.reduce((a, im) => a + im.data.byteLength, 0),
      );
      // the float32 classifier, fed the half classifier's values widened back to float32
      c.images.forEach((im, i) => {
        im.data = runs.rounded[i];
      });
    }
    const report = await c.fit({ epochs: 2, batchSize: 4, seed: 4 });
    assert.ok(Number.isFinite(report.history[0].trainLoss));
    runs.push({ ops: c.ops(), predictions: set.test.map((s) => c.predict(s.pixels)) });
    c.dispose();
  }
  const [a, b] = runs;
  a.ops.forEach((op, i) => {
    assert.deepEqual(op.weights, b.ops[i].weights, `${op.name} weights`);
    assert.deepEqual(op.bias, b.ops[i].bias, `${op.name} bias`);
  });
  assert.deepEqual(a.predictions, b.predictions);
});
