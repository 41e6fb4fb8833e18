// The C engine (WASM SIMD and scalar builds) against TensorFlow.js's WASM backend running
// the same model files on the same decoded pixels.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createEngine } from '../wasm/engine.mjs';
import { PHOTOS, modelDir, readPhoto, referenceTf, dirHandler, referenceInput, maxAbsDiff, cosine, argmax } from './helpers.mjs';

const MODELS = [
  {
    id: 'mobilenet_v2_mid',
    kind: 'graph',
    feature: 1792,
    featureNode:
      'StatefulPartitionedCall/sequential/keras_layer/StatefulPartitionedCall/StatefulPartitionedCall/StatefulPartitionedCall/predict/feature_vector/SpatialSqueeze',
  },
  { id: 'mobilenet_v2', kind: 'layers', feature: 1280, featureLayer: 'flatten_1' },
];

let tf;
before(async () => {
  tf = await referenceTf();
});

/** Reference features and probabilities for each photo. */
async function reference(spec, decoded) {
  if (spec.kind === 'graph') {
    const gm = await tf.loadGraphModel(dirHandler(modelDir(spec.id)));
    return decoded.map((img) => {
      const x = referenceInput(tf, img);
      const [f, p] = gm.execute(x, [spec.featureNode, 'Identity']);
      const r = { feature: f.dataSync(), probs: p.dataSync() };
      tf.dispose([x, f, p]);
      return r;
    });
  }
  const lm = await tf.loadLayersModel(dirHandler(modelDir(spec.id)));
  const both = tf.model({ inputs: lm.inputs, outputs: [lm.getLayer(spec.featureLayer).output, lm.outputs[0]] });
  return decoded.map((img) => {
    const x = referenceInput(tf, img);
    const [f, p] = both.predict(x);
    const r = { feature: f.dataSync(), probs: p.dataSync() };
    tf.dispose([x, f, p]);
    return r;
  });
}

// Frozen layers run by their 8-bit weight codes by default (integer GEMM); integer: false
// keeps them in float32. Both, and the scalar build, must match tfjs's float32 outputs.
for (const [simd, integer] of [
  [true, true],
  [true, false],
  [false, true],
]) {
  for (const spec of MODELS) {
    const build = `${simd ? 'SIMD' : 'scalar'} build${integer ? '' : ', float32 layers'}`;
    test(`${spec.id} (${build}) matches tfjs on ${PHOTOS.length} real photos`, async () => {
      const engine = await createEngine({ simd });
      const model = await engine.loadModel(modelDir(spec.id), { integer });
      try {
        const photos = PHOTOS.map(readPhoto);
        const decoded = photos.map((b) => engine.decodeImage(b));
        const ref = await reference(spec, decoded);
        let worstErr = 0,
          worstCos = 1;
        photos.forEach((bytes, i) => {
          const f = model.embed(bytes);
          assert.equal(f.length, spec.feature);
          const err = maxAbsDiff(f, ref[i].feature),
            cos = cosine(f, ref[i].feature);
          worstErr = Math.max(worstErr, err);
          worstCos = Math.min(worstCos, cos);
          assert.ok(err <= 1e-3, `${PHOTOS[i]}: max abs error ${err}`);
          assert.ok(cos >= 0.9999, `${PHOTOS[i]}: cosine ${cos}`);
          const top = model.classify(bytes);
          assert.equal(top[0].index, argmax(ref[i].probs), `${PHOTOS[i]}: top-1 differs from tfjs`);
          assert.equal(top[0].label, model.labels[argmax(ref[i].probs)]);
          assert.ok(Math.abs(top[0].probability - ref[i].probs[top[0].index]) < 1e-3);
        });
        console.log(`# ${spec.id} ${build}: worst max-abs ${worstErr.toExponential(2)}, worst cosine ${worstCos.toFixed(7)}`);
      } finally {
        model.dispose();
      }
    });
  }
}

test('frozen layers multiply by their weight codes unless integer: false', async () => {
  const engine = await createEngine();
  const [q, f] = [
    await engine.loadModel(modelDir('mobilenet_v2_mid')),
    await engine.loadModel(modelDir('mobilenet_v2_mid'), { integer: false }),
  ];
  try {
    assert.equal(q.integer, true);
    assert.equal(f.integer, false);
    const a = q.embed(readPhoto('coffee.png')),
      b = f.embed(readPhoto('coffee.png'));
    // Not the float path under another name (the activations' rounding shows), yet close.
    assert.ok(maxAbsDiff(a, b) > 0, 'integer and float32 features are identical');
    assert.ok(maxAbsDiff(a, b) < 1e-3 && cosine(a, b) > 0.99999, `max abs ${maxAbsDiff(a, b)}`);
  } finally {
    q.dispose();
    f.dispose();
  }
});

test('layers are listed with shapes, and the cut can move to a named layer', async () => {
  const engine = await createEngine();
  const model = await engine.loadModel(modelDir('mobilenet_v2'));
  try {
    const cut = model.layers[model.cut];
    assert.deepEqual(cut.shape, [1, 1, 1280]);
    assert.ok(cut.aliases.includes('flatten_1') || cut.name === 'average_pooling2d_1');
    const i = model.layerIndex('block_16_project_BN');
    assert.deepEqual(model.layers[i].shape, [7, 7, 320]);
    const f = model.embed(readPhoto('chelsea.png'), { cut: 'block_16_project_BN' });
    assert.equal(f.length, 7 * 7 * 320);
    assert.throws(() => model.embed(readPhoto('chelsea.png'), { cut: 'no_such_layer' }), /no layer named 'no_such_layer'/);
  } finally {
    model.dispose();
  }
});

test('batched runs equal single runs', async () => {
  const engine = await createEngine();
  const model = await engine.loadModel(modelDir('mobilenet_v2_mid'));
  try {
    const [h, w, c] = model.inputShape;
    const per = h * w * c;
    const x = new Float32Array(per * 3);
    for (let i = 0; i < x.length; i++) x[i] = ((i * 2654435761) % 1000) / 1000;
    // a batch runs image by image up to a split op near 14x14, then whole: cuts before,
    // at and after it (the 14x14 block's output is op 25), and the pooled features
    for (const upto of [5, 25, 26, 40, model.cut]) {
      const batch = model.runInput(x, 3, upto);
      const size = model.layers[upto].shape.reduce((a, b) => a * b, 1);
      assert.equal(batch.length, 3 * size);
      for (let k = 0; k < 3; k++) {
        const one = model.runInput(x.subarray(k * per, (k + 1) * per), 1, upto);
        assert.ok(maxAbsDiff(one, batch.subarray(k * size, (k + 1) * size)) < 1e-4, `image ${k} at layer ${upto}`);
      }
    }
  } finally {
    model.dispose();
  }
});
