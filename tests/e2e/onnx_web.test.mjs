// The whole-model ONNX export in Chromium: onnxruntime-web (its WASM build, as a page would
// load it) runs the exported file on the engine's input for real photos and gives the
// engine's probabilities (K = 2, default integer layers: within 1e-3).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { createEngine } from '../../wasm/engine.mjs';
import { Classifier } from '../../wasm/transfer.mjs';
import { ROOT, launch } from './browser.mjs';
import { modelDir, textureSet, readPhoto, PHOTOS, maxAbsDiff } from '../helpers.mjs';

const ORIGIN = 'http://onnx.test';
const DIST = path.join(ROOT, 'node_modules/onnxruntime-web/dist');

test("onnxruntime-web in Chromium runs the exported whole model to the engine's probabilities", async () => {
  const engine = await createEngine();
  const model = await engine.loadModel(modelDir('mobilenet_v2_mid'));
  const set = textureSet(engine, { perClass: 6, heldOut: 2, seed: 4 });
  const c = new Classifier(model, { labels: set.labels, blocks: 2, views: 2, seed: 5 });
  for (const s of set.train) c.addImage(s.pixels, s.label);
  await c.fit({ epochs: 3, batchSize: 8, validationFraction: 0, patience: 0 });
  const onnx = c.exportOnnx({ whole: true }).bytes;
  const images = [...PHOTOS.slice(0, 3).map(readPhoto), ...set.test.slice(0, 3).map((s) => s.pixels)];
  const inputs = images.map((img) => model.embed(img, { cut: 0 }));
  const ours = images.map((img) => {
    const p = new Float32Array(set.labels.length);
    for (const r of c.predict(img)) p[r.index] = r.probability;
    return p;
  });
  const batch = new Float32Array(inputs.length * inputs[0].length);
  inputs.forEach((x, i) => batch.set(x, i * x.length));

  const browser = await launch();
  try {
    const page = await browser.newPage();
    // Everything from memory under one made-up origin: the page, ONNX Runtime's files, the model, the pixels.
    await page.route(`${ORIGIN}/**`, (route) => {
      const name = new URL(route.request().url()).pathname.slice(1);
      if (name === '') return route.fulfill({ contentType: 'text/html', body: '<!doctype html><title>onnx</title>' });
      if (name === 'model.onnx') return route.fulfill({ contentType: 'application/octet-stream', body: Buffer.from(onnx) });
      if (name === 'input.bin') return route.fulfill({ contentType: 'application/octet-stream', body: Buffer.from(batch.buffer) });
      const file = path.join(DIST, path.basename(name));
      if (!fs.existsSync(file)) return route.fulfill({ status: 404, body: 'not found' });
      return route.fulfill({ contentType: file.endsWith('.wasm') ? 'application/wasm' : 'text/javascript', body: fs.readFileSync(file) });
    });
    await page.goto(`${ORIGIN}/`);
    const got = await page.evaluate(async (n) => {
      const ort = await import('/ort.wasm.min.mjs');
      ort.env.wasm.wasmPaths = '/';
      ort.env.wasm.numThreads = 1;
      const session = await ort.InferenceSession.create('/model.onnx');
      const data = new Float32Array(await (await fetch('/input.bin')).arrayBuffer());
      const out = await session.run({ input: new ort.Tensor('float32', data, [n, 224, 224, 3]) });
      return [...out.probabilities.data];
    }, inputs.length);
    const C = set.labels.length;
    let worst = 0;
    ours.forEach((p, i) => {
      worst = Math.max(worst, maxAbsDiff(p, got.slice(i * C, (i + 1) * C)));
    });
    assert.equal(got.length, inputs.length * C);
    assert.ok(worst <= 1e-3, `onnxruntime-web in Chromium differs from the engine by ${worst}`);
  } finally {
    await browser.close();
    c.dispose();
  }
});
