// The command line's exports on real image files: finetune --export-tfjs / --export-onnx
// write the whole model (image to probabilities) with its labels, which TensorFlow.js and
// ONNX Runtime run to the probabilities `predict` prints; `export` writes a saved model's;
// an untrained model is refused by name.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { createRequire } from 'node:module';
import { createEngine } from '../wasm/engine.mjs';
import { Classifier } from '../wasm/transfer.mjs';
import { ROOT, modelDir, textureSet, referenceTf, dirHandler, maxAbsDiff } from './helpers.mjs';
import { encodePng } from './png.mjs';

const run = promisify(execFile);
const cli = (...args) => run(process.execPath, [path.join(ROOT, 'tools/tinytune.mjs'), ...args], { cwd: ROOT, maxBuffer: 1 << 24 });
const ort = createRequire(import.meta.url)('onnxruntime-node');

test('finetune --export-tfjs/--export-onnx write the whole model; export writes a saved one; untrained is refused', async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tinytune-cli-export-'));
  const engine = await createEngine();
  const set = textureSet(engine, { perClass: 6, heldOut: 2, seed: 6 });
  for (const l of set.labels) fs.mkdirSync(path.join(tmp, 'data', l), { recursive: true });
  set.train.forEach((s, i) => fs.writeFileSync(path.join(tmp, 'data', s.label, `${i}.png`), encodePng(s.pixels)));
  const out = path.join(tmp, 'm.ttm'),
    tfjsDir = path.join(tmp, 'tfjs'),
    onnxFile = path.join(tmp, 'm.onnx');
  const r = await cli(
    'finetune',
    path.join(tmp, 'data'),
    '--blocks',
    '2',
    '--epochs',
    '3',
    '--views',
    '1',
    '--val',
    '0',
    '--out',
    out,
    '--metrics',
    path.join(tmp, 'metrics.json'),
    '--export-tfjs',
    tfjsDir,
    '--export-onnx',
    onnxFile,
  );
  assert.match(r.stderr, /wrote the whole model as a TensorFlow\.js layers model to .*tfjs/);
  assert.match(r.stderr, /wrote the whole model as ONNX to .*m\.onnx/);
  const meta = JSON.parse(fs.readFileSync(path.join(tfjsDir, 'metadata.json'), 'utf8'));
  assert.deepEqual(meta.labels, set.labels);
  assert.deepEqual(meta.input.shape, [224, 224, 3]);

  // What predict prints for a held-out image, against both exports fed the engine's input.
  const held = path.join(tmp, 'held.png');
  fs.writeFileSync(held, encodePng(set.test[0].pixels));
  const line = (await cli('predict', out, held, '--top', '3')).stdout.trim().split('\t').slice(1);
  const printed = new Float32Array(set.labels.length);
  for (const cell of line) {
    const [label, p] = cell.split(' ');
    printed[set.labels.indexOf(label)] = Number(p);
  }
  const model = await engine.loadModel(modelDir('mobilenet_v2_mid'));
  const input = model.embed(new Uint8Array(fs.readFileSync(held)), { cut: 0 });
  const tf = await referenceTf();
  const lm = await tf.loadLayersModel(dirHandler(tfjsDir));
  const viaTfjs = tf.tidy(() => lm.predict(tf.tensor(input, [1, 224, 224, 3])).dataSync());
  const session = await ort.InferenceSession.create(fs.readFileSync(onnxFile));
  const viaOnnx = (await session.run({ input: new ort.Tensor('float32', input, [1, 224, 224, 3]) })).probabilities.data;
  // predict prints 4 decimals; the exports agree with the engine within 1e-3 (integer layers).
  assert.ok(maxAbsDiff(printed, viaTfjs) < 1.1e-3, `tfjs ${[...viaTfjs]} vs predict ${line}`);
  assert.ok(maxAbsDiff(printed, viaOnnx) < 1.1e-3, `ONNX ${[...viaOnnx]} vs predict ${line}`);

  // export --trained-only: a saved model's trained part, from the backbone's activation at its boundary.
  const part = path.join(tmp, 'part.onnx');
  await cli('export', out, '--onnx', part, '--trained-only');
  const ps = await ort.InferenceSession.create(fs.readFileSync(part));
  const c = Classifier.load(model, new Uint8Array(fs.readFileSync(out)));
  const act = model.embedViews(new Uint8Array(fs.readFileSync(held)), { upto: c.boundary });
  const viaPart = (await ps.run({ input: new ort.Tensor('float32', act, [1, ...c.inputShape]) })).probabilities.data;
  assert.ok(maxAbsDiff(c.predictActivation(act), viaPart) < 1e-5);

  // Bad input: a model saved before training, and export with nothing to write.
  const untrained = new Classifier(model, { labels: set.labels, views: 1 });
  fs.writeFileSync(path.join(tmp, 'untrained.ttm'), untrained.save());
  await assert.rejects(
    cli('export', path.join(tmp, 'untrained.ttm'), '--onnx', path.join(tmp, 'u.onnx')),
    (e) => /tinytune: nothing to export: this classifier has not been trained/.test(e.stderr) && e.code === 1,
  );
  assert.ok(!fs.existsSync(path.join(tmp, 'u.onnx')));
  await assert.rejects(cli('export', out), (e) => /export needs a model file and --tfjs dir and\/or --onnx file/.test(e.stderr));
  fs.rmSync(tmp, { recursive: true, force: true });
});
