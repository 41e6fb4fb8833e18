// The threaded builds in Node (worker_threads lent to the engine): the number of threads
// never changes an answer. Features of real photos and a seeded fine-tuning run (two
// backbone blocks + head, so the backward kernels split too) are compared bit for bit
// with the single-threaded build; an engine whose threads are released keeps working.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createEngine } from '../wasm/engine.mjs';
import { canThread } from '../wasm/module.mjs';
import { Classifier } from '../wasm/transfer.mjs';
import { PHOTOS, modelDir, readPhoto, textureSet } from './helpers.mjs';

const skip = !canThread() && 'this runtime has no shared WebAssembly memory';
let one, many;
before(async () => {
  if (skip) return;
  one = await createEngine({ simd: true, relaxed: false, threads: 1 });
  many = await createEngine({ simd: true, relaxed: false, threads: 3 });
});
after(() => many?.close());

const same = (a, b, what) => {
  assert.equal(a.length, b.length, `${what}: lengths differ`);
  const i = a.findIndex((v, k) => !Object.is(v, b[k]));
  assert.equal(i, -1, `${what}: element ${i} is ${a[i]} with threads and ${b[i]} without`);
};

test('a threaded engine runs on the threads it was given', { skip }, () => {
  assert.equal(one.threads, 1);
  assert.equal(many.threads, 3);
});

test('features of real photos are bit for bit those of one thread, at batch 1 and 5, integer and float32', { skip }, async () => {
  for (const id of ['mobilenet_v2_mid', 'mobilenet_v2']) {
    const a = await one.loadModel(modelDir(id)),
      b = await many.loadModel(modelDir(id));
    const photos = PHOTOS.slice(0, 5).map(readPhoto);
    for (const p of photos) same(b.embed(p), a.embed(p), `${id} features`);
    // a batch: the input of the whole network for 5 photos at once
    const [h, w, c] = a.inputShape,
      px = new Float32Array(5 * h * w * c);
    photos.forEach((p, k) => px.set(a.embedViews(p, { views: 1, upto: 0 }), k * h * w * c));
    same(b.runInput(px, 5, b.layers.length - 1), a.runInput(px, 5, a.layers.length - 1), `${id} batch of 5`);
    (a.dispose(), b.dispose());
    // float32 inference: the float GEMM's sums, whose order a cut must not change
    const fa = await one.loadModel(modelDir(id), { integer: false }),
      fb = await many.loadModel(modelDir(id), { integer: false });
    same(fb.runInput(px, 5, fb.layers.length - 1), fa.runInput(px, 5, fa.layers.length - 1), `${id} float32 batch of 5`);
    (fa.dispose(), fb.dispose());
  }
});

test('seeded fine-tuning of two blocks gives the same weights with threads as without', { skip }, async () => {
  const runs = [];
  for (const engine of [one, many]) {
    const m = await engine.loadModel(modelDir('mobilenet_v2'));
    const set = textureSet(engine, { perClass: 6, heldOut: 2 });
    const c = new Classifier(m, { labels: set.labels, blocks: 2, views: 2, seed: 3 });
    for (const s of set.train) c.addImage(s.pixels, s.label);
    await c.fit({ epochs: 3, batchSize: 8, validationFraction: 0, patience: 0, seed: 3 });
    runs.push({ ops: c.ops(), predictions: set.test.map((s) => c.predict(s.pixels)) });
    (c.dispose(), m.dispose());
  }
  const [a, b] = runs;
  assert.ok(a.ops.length > 4);
  a.ops.forEach((op, i) => {
    same(b.ops[i].weights, op.weights, `${op.name} weights`);
    same(b.ops[i].bias, op.bias, `${op.name} bias`);
  });
  assert.deepEqual(b.predictions, a.predictions);
});

test('after close() the engine runs on one thread, with the same results', { skip }, async () => {
  const e = await createEngine({ simd: true, relaxed: false, threads: 2 });
  const m = await e.loadModel(modelDir('mobilenet_v2'));
  const photo = readPhoto(PHOTOS[0]);
  const before = m.embed(photo);
  await e.close();
  assert.equal(e.threads, 1);
  same(m.embed(photo), before, 'features after close');
  m.dispose();
});

test('where the shared memory is refused, the engine runs on one thread instead of failing', { skip }, async () => {
  const Memory = WebAssembly.Memory;
  WebAssembly.Memory = function (d) {
    if (d.shared && d.maximum > 1) throw new RangeError('WebAssembly.Memory(): could not allocate memory');
    return new Memory(d);
  };
  let e;
  try {
    e = await createEngine({ simd: true, relaxed: false, threads: 2 });
  } finally {
    WebAssembly.Memory = Memory;
  }
  assert.equal(e.threads, 1);
  const m = await e.loadModel(modelDir('mobilenet_v2'));
  const photo = readPhoto(PHOTOS[1]);
  const ref = await one.loadModel(modelDir('mobilenet_v2'));
  same(m.embed(photo), ref.embed(photo), 'features of the fallback engine');
  (m.dispose(), ref.dispose());
});

test('a worker thread that crashes inside a task is reported, not waited for forever', { skip }, () => {
  // In a child process: a regression would hang the engine's caller, and with it this
  // process's event loop (no timer could fire), so the child is killed after 60 s.
  const child = `
    import { createEngine } from ${JSON.stringify(new URL('../wasm/engine.mjs', import.meta.url).href)};
    import { PHOTOS, modelDir, readPhoto } from ${JSON.stringify(new URL('./helpers.mjs', import.meta.url).href)};
    const e = await createEngine({ simd: true, relaxed: false, threads: 3 });
    const m = await e.loadModel(modelDir('mobilenet_v2'));
    const photo = readPhoto(PHOTOS[2]);
    const before = m.embed(photo);
    let error = null;
    // task 1 of this loop traps on the worker that claims it (a stand-in for a kernel bug)
    try { e.mod.x.tt_test_crash_thread(); } catch (err) { error = err.name + ': ' + err.message; }
    const threads = e.threads, same = m.embed(photo).every((v, i) => Object.is(v, before[i]));
    await e.close(); // returns: the crashed thread has left the pool
    console.log(JSON.stringify({ error, threads, same, closed: e.threads }));
    process.exit(0);`;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tinytune-crash-')),
    file = path.join(dir, 'child.mjs');
  fs.writeFileSync(file, child);
  const env = { ...process.env };
  delete env.NODE_TEST_CONTEXT; // the child is a plain script, not one of the runner's
  const r = spawnSync(process.execPath, [file], { timeout: 60000, encoding: 'utf8', env });
  fs.rmSync(dir, { recursive: true, force: true });
  assert.ok(!r.error, r.error?.code === 'ETIMEDOUT' ? 'the child hung (killed after 60 s)' : String(r.error));
  assert.equal(r.status, 0, `the child failed: ${r.stderr}`);
  const out = JSON.parse(r.stdout.trim().split('\n').pop());
  assert.match(
    out.error,
    /^EngineError: a worker thread crashed inside the engine \(unreachable\); the call was abandoned, and the engine goes on with 2 thread\(s\)$/,
  );
  assert.equal(out.threads, 2);
  assert.ok(out.same, 'features after the crash, on the threads left, differ');
  assert.equal(out.closed, 1);
});
