// Exports on real photos: the whole model (image to probabilities) and the trained part as a
// TensorFlow.js layers model, opened with tf.loadLayersModel, and as ONNX, run in ONNX
// Runtime (onnxruntime-node), give the engine's probabilities, for K = 0 and K = 2, with
// float32 layers and with the default integer ones; the exported layers model trains on in
// TensorFlow.js; bad input gets a clear error.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { createEngine, EngineError } from '../wasm/engine.mjs';
import { Classifier } from '../wasm/transfer.mjs';
import { exportGraph } from '../wasm/export-ops.mjs';
import { toLayersModel, tfjsFiles } from '../wasm/export-tfjs.mjs';
import { toOnnx } from '../wasm/export-onnx.mjs';
import { modelDir, referenceTf, dirHandler, textureSet, readPhoto, PHOTOS, maxAbsDiff } from './helpers.mjs';

const ort = createRequire(import.meta.url)('onnxruntime-node');
let engine, set;
const models = {};
before(async () => {
  engine = await createEngine();
  set = textureSet(engine, { perClass: 6, heldOut: 2, seed: 4 });
  models.float32 = await engine.loadModel(modelDir('mobilenet_v2_mid'), { integer: false });
  models.integer = await engine.loadModel(modelDir('mobilenet_v2_mid'));
});

async function trained(model, blocks) {
  const c = new Classifier(model, { labels: set.labels, blocks, views: 2, seed: 5 });
  for (const s of set.train) c.addImage(s.pixels, s.label);
  await c.fit({ epochs: 4, batchSize: 8, validationFraction: 0, patience: 0 });
  return c;
}

// Real photos and held-out texture crops: the probabilities by class index, and the input
// the backbone takes (the engine's own decode and resize: its activation at op 0).
function samples(c) {
  const images = [...PHOTOS.slice(0, 4).map(readPhoto), ...set.test.map((s) => s.pixels)];
  return images.map((img) => {
    const probs = new Float32Array(c.labels.length);
    for (const p of c.predict(img)) probs[p.index] = p.probability;
    return { img, probs, input: c.model.embed(img, { cut: 0 }), act: c.model.embedViews(img, { upto: c.boundary }) };
  });
}

const BOUND = { float32: 1e-4, integer: 1e-3 };

test("the whole model as a tfjs layers model gives the engine's probabilities on real photos (K = 0, 2)", async () => {
  const tf = await referenceTf();
  for (const kind of ['float32', 'integer']) {
    for (const blocks of [0, 2]) {
      const c = await trained(models[kind], blocks);
      const exp = c.exportTfjs({ whole: true });
      assert.deepEqual(exp.metadata.labels, set.labels);
      assert.deepEqual(exp.metadata.input.shape, [224, 224, 3]);
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tinytune-export-'));
      for (const [name, bytes] of Object.entries(tfjsFiles(exp))) fs.writeFileSync(path.join(dir, name), bytes);
      const lm = await tf.loadLayersModel(dirHandler(dir));
      assert.deepEqual(lm.inputs[0].shape, [null, 224, 224, 3]);
      assert.deepEqual(JSON.parse(fs.readFileSync(path.join(dir, 'metadata.json'), 'utf8')).labels, set.labels);
      let worst = 0;
      for (const s of samples(c)) {
        const ref = tf.tidy(() => lm.predict(tf.tensor(s.input, [1, 224, 224, 3])).dataSync());
        worst = Math.max(worst, maxAbsDiff(s.probs, ref));
      }
      assert.ok(worst <= BOUND[kind], `${kind} K=${blocks}: tfjs differs from the engine by ${worst}`);
      // The backbone is frozen in the export; the trained blocks and the head are not.
      const trainable = new Set(lm.trainableWeights.map((w) => w.originalName.split('/')[0]));
      assert.equal(lm.layers.filter((l) => l.trainable && l.getWeights().length).length, trainable.size);
      assert.equal(trainable.size, c.ops().filter((o) => o.weights.length).length, `K=${blocks}: ${[...trainable]}`);
      lm.dispose();
      fs.rmSync(dir, { recursive: true });
      c.dispose();
    }
  }
});

test("the whole model and the trained part as ONNX give the engine's probabilities in ONNX Runtime (K = 0, 2)", async () => {
  for (const kind of ['float32', 'integer']) {
    for (const blocks of [0, 2]) {
      const c = await trained(models[kind], blocks);
      const whole = await ort.InferenceSession.create(c.exportOnnx({ whole: true }).bytes);
      const part = await ort.InferenceSession.create(c.exportOnnx().bytes);
      assert.deepEqual(whole.inputNames, ['input']);
      assert.deepEqual(whole.outputNames, ['probabilities']);
      let worst = 0,
        worstPart = 0;
      for (const s of samples(c)) {
        const r = await whole.run({ input: new ort.Tensor('float32', s.input, [1, 224, 224, 3]) });
        worst = Math.max(worst, maxAbsDiff(s.probs, r.probabilities.data));
        const shape = blocks ? [1, ...c.inputShape] : [1, c.inputShape[2]];
        const p = await part.run({ input: new ort.Tensor('float32', s.act, shape) });
        worstPart = Math.max(worstPart, maxAbsDiff(c.predictActivation(s.act), p.probabilities.data));
      }
      assert.ok(worst <= BOUND[kind], `${kind} K=${blocks}: ONNX Runtime differs from the engine by ${worst}`);
      assert.ok(worstPart <= 1e-5, `${kind} K=${blocks}: the trained part in ONNX Runtime differs by ${worstPart}`);
      // A batch gives each image's own answer.
      const two = samples(c).slice(0, 2);
      const batch = new Float32Array(2 * 224 * 224 * 3);
      (batch.set(two[0].input), batch.set(two[1].input, 224 * 224 * 3));
      const rb = (await whole.run({ input: new ort.Tensor('float32', batch, [2, 224, 224, 3]) })).probabilities;
      assert.deepEqual(rb.dims, [2, set.labels.length]);
      assert.ok(maxAbsDiff(rb.data.subarray(set.labels.length), two[1].probs) <= BOUND[kind]);
      // The metadata names what the classifier trained (for a trainer) and the labels.
      const props = onnxMetadata(c.exportOnnx({ whole: true }).bytes);
      assert.deepEqual(JSON.parse(props.labels), set.labels);
      assert.equal(JSON.parse(props.trainable_initializers).length, 2 * c.ops().filter((o) => o.weights.length).length);
      assert.equal(JSON.parse(props.metadata).whole, true);
      (await whole.release(), await part.release());
      c.dispose();
    }
  }
});

// ModelProto's metadata_props (field 14: key 1, value 2), read with a minimal protobuf reader.
function onnxMetadata(bytes) {
  let at = 0;
  const varint = (b) => {
    let v = 0,
      k = 1;
    for (;;) {
      const x = b[at++];
      v += (x & 127) * k;
      k *= 128;
      if (x < 128) return v;
    }
  };
  const fields = (b) => {
    const out = [];
    at = 0;
    while (at < b.length) {
      const key = varint(b),
        wire = key % 8;
      if (wire === 0) varint(b);
      else if (wire === 5) at += 4;
      else if (wire === 1) at += 8;
      else {
        const n = varint(b);
        out.push([Math.floor(key / 8), b.subarray(at, at + n)]);
        at += n;
      }
    }
    return out;
  };
  const dec = new TextDecoder();
  return Object.fromEntries(
    fields(bytes)
      .filter(([f]) => f === 14)
      .map(([, m]) => {
        const kv = Object.fromEntries(fields(m));
        return [dec.decode(kv[1]), dec.decode(kv[2])];
      }),
  );
}

test('the exported layers model trains one more epoch in TensorFlow.js, loss decreasing, backbone unchanged', async () => {
  const tf = await referenceTf();
  borrowGradients(tf);
  const c = await trained(models.integer, 2);
  const { modelJson, weightData } = c.exportTfjs({ whole: true });
  const lm = await tf.loadLayersModel(
    tf.io.fromMemory({
      modelTopology: modelJson.modelTopology,
      weightSpecs: modelJson.weightsManifest[0].weights,
      weightData: weightData.buffer,
    }),
  );
  // New images of the same classes (the held-out crops), as a server would get.
  const more = textureSet(engine, { perClass: 4, heldOut: 0, seed: 9 }).train;
  const xs = tf.tensor(
    more.flatMap((s) => [...c.model.embed(s.pixels, { cut: 0 })]),
    [more.length, 224, 224, 3],
  );
  const ys = tf.oneHot(
    tf.tensor1d(
      more.map((s) => set.labels.indexOf(s.label)),
      'int32',
    ),
    set.labels.length,
  );
  lm.compile({ optimizer: tf.train.adam(1e-4), loss: 'categoricalCrossentropy' });
  const frozen = lm.layers.find((l) => !l.trainable && l.getWeights().length);
  const frozenBefore = frozen.getWeights()[0].dataSync().slice();
  const lossOf = () => tf.tidy(() => lm.evaluate(xs, ys, { batchSize: 4 }).dataSync()[0]);
  const before = lossOf();
  const h = await lm.fit(xs, ys, { epochs: 1, batchSize: 4, shuffle: false });
  const after = lossOf();
  assert.ok(Number.isFinite(h.history.loss[0]));
  assert.ok(after < before, `loss went from ${before} to ${after} after one epoch`);
  assert.deepEqual(frozen.getWeights()[0].dataSync(), frozenBefore, 'a frozen layer changed');
  tf.dispose([xs, ys]);
  lm.dispose();
  c.dispose();
});

// tfjs's WASM backend lacks three convolution gradients that tfjs-node and Keras have: they
// run here in tfjs's CPU backend, except the 1x1 convolutions' filter gradient (a plain
// product x^T dy), which the CPU backend takes minutes for on these shapes.
function borrowGradients(tf) {
  const cpu = tf.engine().findBackend('cpu');
  const pointwise = ({ x, dy }, attrs, read) => {
    const [kh, kw, ci, co] = attrs.filterShape,
      s = [attrs.strides].flat();
    if (kh !== 1 || kw !== 1 || s.some((v) => v !== 1) || attrs.dataFormat !== 'NHWC') return null;
    const xv = read(x),
      dv = read(dy),
      dw = new Float32Array(ci * co);
    for (let p = 0; p < xv.length / ci; p++) {
      for (let i = 0; i < ci; i++) {
        const a = xv[p * ci + i];
        if (a !== 0) for (let o = 0; o < co; o++) dw[i * co + o] += a * dv[p * co + o];
      }
    }
    return { shape: attrs.filterShape, dtype: 'float32', values: dw };
  };
  for (const name of ['Conv2DBackpropFilter', 'DepthwiseConv2dNativeBackpropFilter', 'DepthwiseConv2dNativeBackpropInput']) {
    if (tf.getKernel(name, 'wasm')) continue;
    const { kernelFunc } = tf.getKernel(name, 'cpu');
    tf.registerKernel({
      kernelName: name,
      backendName: 'wasm',
      kernelFunc: ({ inputs, attrs, backend }) => {
        const read = (t) => backend.readSync(t.dataId);
        const fast = name === 'Conv2DBackpropFilter' && pointwise(inputs, attrs, read);
        if (fast) return backend.makeOutput(fast.shape, fast.dtype, undefined, fast.values);
        const moved = Object.fromEntries(Object.entries(inputs).map(([k, t]) => [k, cpu.makeTensorInfo(t.shape, t.dtype, read(t))]));
        const out = kernelFunc({ inputs: moved, attrs, backend: cpu });
        const values = cpu.readSync(out.dataId);
        for (const t of [...Object.values(moved), out]) cpu.disposeData(t.dataId);
        return backend.makeOutput(out.shape, out.dtype, undefined, values);
      },
    });
  }
}

test('bad input: an untrained classifier, an op or activation an exporter cannot write', async () => {
  const c = new Classifier(models.integer, { labels: set.labels, views: 1 });
  assert.throws(
    () => c.exportTfjs({ whole: true }),
    (e) => e instanceof EngineError && /this classifier has not been trained/.test(e.message),
  );
  assert.throws(
    () => c.exportOnnx(),
    (e) => e instanceof EngineError && /this classifier has not been trained/.test(e.message),
  );
  for (const s of set.train) c.addImage(s.pixels, s.label);
  await c.fit({ epochs: 1, validationFraction: 0 });
  const graph = exportGraph(c, { whole: true });
  const i = graph.ops.findIndex((o) => o.type === 'depthwise');
  const name = graph.ops[i].name;
  // Op types and activations the engine may grow (MobileNetV3's hard-swish, say).
  const odd = { ...graph, ops: graph.ops.map((o, j) => (j === i ? { ...o, type: 'type 12' } : o)) };
  assert.throws(() => toLayersModel(odd), {
    name: 'EngineError',
    message: `cannot export op '${name}' to TensorFlow.js layers: engine op type 12 is not supported by this exporter`,
  });
  assert.throws(() => toOnnx(odd), {
    name: 'EngineError',
    message: `cannot export op '${name}' to ONNX: engine op type 12 is not supported by this exporter`,
  });
  const act = { ...graph, ops: graph.ops.map((o, j) => (j === i ? { ...o, act: 'activation 3' } : o)) };
  assert.throws(() => toOnnx(act), {
    name: 'EngineError',
    message: `cannot export op '${name}' to ONNX: its activation 3 is not supported by this exporter`,
  });
  assert.throws(() => toLayersModel(act), /cannot export op .* its activation 3 is not supported/);
  c.dispose();
});
