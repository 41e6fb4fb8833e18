// The command line on real image files: finetune a folder of class folders, then predict.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { createEngine } from '../wasm/engine.mjs';
import { ROOT, textureSet } from './helpers.mjs';
import { encodePng } from './png.mjs';

const run = promisify(execFile);
const cli = (...args) => run(process.execPath, [path.join(ROOT, 'tools/tinytune.mjs'), ...args], { cwd: ROOT, maxBuffer: 1 << 24 });

test('finetune writes a model and metrics; predict labels held-out files; bad files are reported', async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tinytune-cli-'));
  const engine = await createEngine();
  const set = textureSet(engine, { perClass: 8, heldOut: 3, seed: 3 });
  for (const l of set.labels) fs.mkdirSync(path.join(tmp, 'data', l), { recursive: true });
  set.train.forEach((s, i) => fs.writeFileSync(path.join(tmp, 'data', s.label, `${i}.png`), encodePng(s.pixels)));
  fs.writeFileSync(path.join(tmp, 'data', 'brick', 'notes.jpg'), 'this is not a picture');
  const out = path.join(tmp, 'm.ttm'),
    metrics = path.join(tmp, 'metrics.json'),
    exp = path.join(tmp, 'tfjs');
  const r = await cli(
    'finetune',
    path.join(tmp, 'data'),
    '--model',
    'mobilenet_v2',
    '--epochs',
    '6',
    '--views',
    '2',
    '--val',
    '0.25',
    '--out',
    out,
    '--metrics',
    metrics,
    '--export-tfjs',
    exp,
    '--threads',
    '2',
  );
  assert.match(r.stderr, /^engine: (relaxed SIMD|SIMD) build, 2 threads$/m, 'says which build and how many threads run');
  assert.match(r.stderr, /skipped .*notes\.jpg: not an image/);
  assert.match(r.stderr, /validate epoch 6\/6 .*val loss/);
  assert.match(
    r.stderr,
    /^auto: trained (the last 2 blocks and a head|a head on frozen features) \(.+\)$/m,
    'says what auto mode chose and why',
  );
  const m = JSON.parse(fs.readFileSync(metrics, 'utf8'));
  assert.equal(m.history.filter((e) => e.phase === 'validate').length, 6);
  assert.equal(m.refit.images, set.train.length, 'the final model learned from every image');
  assert.match(
    r.stderr,
    new RegExp(
      `validation accuracy [0-9.]+ \\(an estimate: the model then trained ${m.refit.epochs} epochs on all ${set.train.length} images\\)`,
    ),
  );
  assert.equal(m.skipped.length, 1);
  assert.deepEqual(m.labels, ['brick', 'grass', 'gravel']);
  assert.ok(fs.statSync(out).size > 1000);
  assert.ok(fs.existsSync(path.join(exp, 'model.json')) && fs.existsSync(path.join(exp, 'weights.bin')));

  const held = set.test.map((s, i) => {
    const f = path.join(tmp, `held-${s.label}-${i}.png`);
    fs.writeFileSync(f, encodePng(s.pixels));
    return { f, label: s.label };
  });
  const p = await cli('predict', out, ...held.map((h) => h.f), '--top', '1');
  const lines = p.stdout.trim().split('\n');
  assert.equal(lines.length, held.length);
  const correct = lines.filter((line, i) => line.split('\t')[1].startsWith(held[i].label + ' ')).length;
  assert.ok(correct >= held.length - 1, `only ${correct}/${held.length} held-out textures right:\n${p.stdout}`);

  await assert.rejects(
    cli('predict', out, path.join(tmp, 'data', 'brick', 'notes.jpg')),
    (e) => /not an image/.test(e.stderr) && e.code === 2,
  );
  await assert.rejects(cli('finetune', path.join(tmp, 'nope')), (e) => /is not a folder/.test(e.stderr));

  const e = await cli('embed', held[0].f, '--model', 'mobilenet_v2');
  const row = JSON.parse(e.stdout);
  assert.equal(row.layer, 'average_pooling2d_1');
  assert.equal(row.features.length, 1280);
  const direct = (await (await createEngine()).loadModel(path.join(ROOT, 'models/mobilenet_v2'))).embed(
    new Uint8Array(fs.readFileSync(held[0].f)),
  );
  assert.ok(
    row.features.every((v, i) => Math.abs(v - direct[i]) < 1e-6),
    'embed output differs from the API',
  );
  // --float32: every layer in float32, as loadModel's integer: false.
  const f32 = JSON.parse((await cli('embed', held[0].f, '--model', 'mobilenet_v2', '--float32')).stdout).features;
  const directF32 = (await (await createEngine()).loadModel(path.join(ROOT, 'models/mobilenet_v2'), { integer: false })).embed(
    new Uint8Array(fs.readFileSync(held[0].f)),
  );
  assert.ok(
    f32.every((v, i) => Math.abs(v - directF32[i]) < 1e-6),
    'embed --float32 differs from the API with integer: false',
  );
  assert.ok(
    f32.some((v, i) => v !== row.features[i]),
    "embed --float32 gives the integer path's features",
  );
  fs.rmSync(tmp, { recursive: true, force: true });
});

test('models lists the backbones with what each is good for', async () => {
  const { stdout } = await cli('models');
  assert.match(stdout, /^mobilenet_v2_mid +general \(content filter\) +input 224 px +\(default\)$/m);
  assert.match(stdout, /^centernet_mnv3 +everyday objects +input 512, 320, 224 px$/m);
  assert.match(stdout, /^mobilefacenet +faces +input 112 px$/m);
});
