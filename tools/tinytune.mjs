#!/usr/bin/env node
// The command line: the same engine and API as the page.
//   tinytune finetune <data/> [options]   data/<label>/*.jpg|png|gif|bmp -> model file + metrics JSON
//   tinytune predict <model.ttm> <image...> [--top k]
//   tinytune evaluate <model.ttm> <data/>       accuracy on a labelled folder it did not train on
//   tinytune embed <image...> [--model id] [--cut layer]   one JSON line of features per image
//   tinytune export <model.ttm> [--tfjs dir] [--onnx file.onnx] [--trained-only]
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { createEngine } from '../wasm/engine.mjs';
import { Classifier, readClassifierInfo } from '../wasm/transfer.mjs';
import { tfjsFiles } from '../wasm/export-tfjs.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const IMAGE = /\.(jpe?g|png|gif|bmp)$/i;
const USAGE = `usage:
  tinytune finetune <data-dir> [--model mobilenet_v2_mid] [--input-size px] [--blocks auto|K] [--budget seconds] [--no-refit] [--warm-start] [--epochs N (default 50 for a head; with blocks 30, 10 with --warm-start)] [--lr X]
                    [--batch N] [--views N] [--no-augment] [--hidden N] [--seed N] [--val F]
                    [--threads N (default: all cores)]
                    [--out model.ttm] [--metrics metrics.json] [--export-tfjs dir] [--export-onnx file.onnx]
  tinytune predict <model.ttm> <image...> [--top K]
  tinytune evaluate <model.ttm> <data-dir> [--json]   accuracy, per class, confusion, calibration
  tinytune models                                      the backbones, with what each is good for
  tinytune embed <image...> [--model mobilenet_v2_mid] [--cut layer]
  tinytune export <model.ttm> [--tfjs dir] [--onnx file.onnx] [--trained-only]
data-dir holds one folder per class: data/<label>/*.jpg|png|gif|bmp
Exports hold the whole model, from a 224x224 RGB image in [0,1] to class probabilities
(--trained-only: the trained part alone, from the backbone's features), as a TensorFlow.js
layers model (dir/model.json, weights.bin, metadata.json with the labels) or ONNX (opset 13).
--float32 (any command): run every layer in float32, not the frozen pointwise layers by
their 8-bit weight codes (slower; features closer to TensorFlow.js's)`;

const die = (msg) => {
  process.stderr.write(`tinytune: ${msg}\n`);
  process.exit(1);
};
const modelPath = (id) => (fs.existsSync(id) ? id : path.join(ROOT, 'models', id));

function bar(frac, width = 24) {
  const n = Math.round(Math.max(0, Math.min(1, frac)) * width);
  return '[' + '#'.repeat(n) + '.'.repeat(width - n) + ']';
}

async function finetune(args) {
  const { values: o, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      model: { type: 'string', default: 'mobilenet_v2_mid' },
      blocks: { type: 'string', default: 'auto' },
      budget: { type: 'string' },
      'no-refit': { type: 'boolean', default: false },
      'warm-start': { type: 'boolean', default: false },
      'input-size': { type: 'string' },
      epochs: { type: 'string' },
      lr: { type: 'string' },
      batch: { type: 'string', default: '16' },
      views: { type: 'string', default: '4' },
      'no-augment': { type: 'boolean', default: false },
      hidden: { type: 'string', default: '256' },
      seed: { type: 'string', default: '1' },
      val: { type: 'string', default: '0.2' },
      out: { type: 'string', default: 'model.ttm' },
      metrics: { type: 'string', default: 'metrics.json' },
      'export-tfjs': { type: 'string' },
      'export-onnx': { type: 'string' },
      threads: { type: 'string' },
      float32: { type: 'boolean', default: false },
    },
  });
  const dir = positionals[0];
  const { labels, files } = readFolder(dir, 'finetune');
  if (labels.length < 2) die(`'${dir}' has ${labels.length} class folder(s); training needs at least 2`);
  const num = (k) => {
    const v = Number(o[k]);
    if (!Number.isFinite(v)) die(`--${k} must be a number, got '${o[k]}'`);
    return v;
  };

  const engine = await createEngine(o.threads === undefined ? {} : { threads: num('threads') });
  process.stderr.write(
    `engine: ${engine.build} build, ${engine.threads} thread${engine.threads > 1 ? 's' : ''}` + `${o.float32 ? ', float32 layers' : ''}\n`,
  );
  const model = await engine.loadModel(modelPath(o.model), {
    integer: !o.float32,
    inputSize: o['input-size'] === undefined ? undefined : num('input-size'),
    onProgress: (a, b) => process.stderr.write(`\rloading ${o.model} ${bar(a / b)} ${(a / 1e6).toFixed(1)}/${(b / 1e6).toFixed(1)} MB`),
  });
  process.stderr.write('\n');
  const c = new Classifier(model, {
    labels,
    blocks: o.blocks === 'auto' ? 'auto' : num('blocks'),
    hidden: num('hidden'),
    views: o['no-augment'] ? 1 : num('views'),
    augment: !o['no-augment'],
    seed: num('seed'),
  });
  files.forEach(([label, file], i) => {
    c.addImage(new Uint8Array(fs.readFileSync(file)), label, file);
    process.stderr.write(`\rreading images ${bar((i + 1) / files.length)} ${i + 1}/${files.length}`);
  });
  process.stderr.write('\n');
  for (const s of c.skipped) process.stderr.write(`skipped ${s.name}: ${s.reason}\n`);
  const counts = c.counts();
  labels.forEach((l, k) => process.stderr.write(`  ${l}: ${counts[k]} images\n`));

  const ac = new AbortController();
  process.once('SIGINT', () => {
    process.stderr.write('\nstopping: keeping the best epoch so far\n');
    ac.abort();
  });
  let report;
  try {
    report = await c.fit({
      epochs: o.epochs === undefined ? undefined : num('epochs'),
      learningRate: o.lr === undefined ? undefined : num('lr'),
      batchSize: num('batch'),
      validationFraction: num('val'),
      seed: num('seed'),
      signal: ac.signal,
      refit: !o['no-refit'],
      warmStart: o['warm-start'],
      timeBudget: o.budget === undefined ? undefined : num('budget'),
      onBatch: (p) => {
        const done = (p.epoch + p.batch / p.batchesPerEpoch) / p.epochs;
        process.stderr.write(`\r${p.phase} epoch ${p.epoch + 1}/${p.epochs} ${bar(done)} batch ${p.batch}/${p.batchesPerEpoch}   `);
      },
      onEpoch: (e) =>
        process.stderr.write(
          `\r${e.phase} epoch ${e.epoch}/${e.epochs} ${bar(e.epoch / e.epochs)} loss ${e.trainLoss.toFixed(3)} acc ${e.trainAccuracy.toFixed(3)}` +
            (e.phase === 'refit' ? '' : ` | val loss ${e.valLoss.toFixed(3)} acc ${e.valAccuracy.toFixed(3)}`) +
            ` (${e.seconds.toFixed(2)}s)\n`,
        ),
    });
  } catch (e) {
    if (!e.report) throw e;
    process.stderr.write(`\n${e.message}\n`);
    report = e.report;
  }
  fs.writeFileSync(o.out, c.save());
  fs.writeFileSync(o.metrics, JSON.stringify({ ...report, settings: { ...report.settings, signal: undefined } }, null, 2));
  writeExports(c, { tfjs: o['export-tfjs'], onnx: o['export-onnx'] });
  if (report.auto)
    process.stderr.write(
      `auto: trained ${report.blocks ? `the last ${report.blocks} blocks and a head` : 'a head on frozen features'} (${report.auto.why})\n`,
    );
  process.stderr.write(
    `best epoch ${report.bestEpoch}, validation accuracy ${report.validationAccuracy === null ? 'n/a' : report.validationAccuracy.toFixed(3)}` +
      (report.refit ? ` (an estimate: the model then trained ${report.refit.epochs} epochs on all ${report.refit.images} images)` : '') +
      '\n',
  );
  if (report.confusion && report.nVal) {
    process.stderr.write(
      `confusion (rows: true class):\n${report.confusion.map((r, k) => `  ${labels[k].padEnd(12)} ${r.join(' ')}`).join('\n')}\n`,
    );
  }
  process.stdout.write(`${o.out}\n`);
}

// data/<label>/<image>: [label, path] pairs, labels sorted; a clear message for what is not such a folder.
function readFolder(dir, what) {
  if (!dir) die(`${what} needs a data folder\n${USAGE}`);
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) die(`'${dir}' is not a folder`);
  const labels = fs
    .readdirSync(dir)
    .filter((d) => fs.statSync(path.join(dir, d)).isDirectory())
    .sort();
  const files = labels.flatMap((l) =>
    fs
      .readdirSync(path.join(dir, l))
      .filter((f) => IMAGE.test(f))
      .sort()
      .map((f) => [l, path.join(dir, l, f)]),
  );
  return { labels, files };
}

async function openClassifier(file, o) {
  const bytes = new Uint8Array(fs.readFileSync(file));
  const engine = await createEngine();
  const info = readClassifierInfo(engine, bytes);
  const model = await engine.loadModel(modelPath(o.model ?? info.backbone.id), {
    integer: !o.float32,
    inputSize: info.backbone?.inputShape?.[0],
  });
  return Classifier.load(model, bytes);
}

async function evaluate(args) {
  const { values: o, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { json: { type: 'boolean', default: false }, model: { type: 'string' }, float32: { type: 'boolean', default: false } },
  });
  const [file, dir] = positionals;
  if (!file) die(`evaluate needs a model file and a data folder\n${USAGE}`);
  const { labels, files } = readFolder(dir, 'evaluate');
  if (!files.length) die(`'${dir}' holds no images in class folders (data/<label>/*.jpg|png|gif|bmp)`);
  const c = await openClassifier(file, o);
  const r = c.evaluate(files.map(([label, f]) => ({ label, name: f, image: new Uint8Array(fs.readFileSync(f)) })));
  for (const s of r.skipped) process.stderr.write(`skipped ${s.name}: ${s.reason}\n`);
  if (o.json) {
    process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
    return;
  }
  const w = Math.max(5, ...r.labels.map((l) => l.length));
  process.stdout.write(
    `accuracy ${r.accuracy.toFixed(4)} on ${r.n} images (${labels.length} class folders)` +
      `, calibration error ${r.calibration.ece.toFixed(4)}, "none of these" ${r.unknown}\n` +
      `per class:\n${r.labels.map((l, k) => `  ${l.padEnd(w)} ${r.perClassAccuracy[k] === null ? 'no images' : r.perClassAccuracy[k].toFixed(4)}`).join('\n')}\n` +
      `confusion (rows: true class, columns: predicted):\n${r.confusion.map((row, k) => `  ${r.labels[k].padEnd(w)} ${row.join(' ')}`).join('\n')}\n`,
  );
}

// The zoo (models/index.json, written by `make models`): id, plain description, input size.
function models() {
  const file = path.join(ROOT, 'models', 'index.json');
  if (!fs.existsSync(file)) die('the model zoo is not built: run `make models` first');
  for (const m of JSON.parse(fs.readFileSync(file, 'utf8')).models) {
    const c = m.card ?? {},
      sizes = c.input?.sizes ?? [c.input?.height];
    process.stdout.write(
      `${m.id.padEnd(18)} ${(c.description ?? '').padEnd(26)} input ${sizes.join(', ')} px${m.default ? '  (default)' : ''}\n`,
    );
  }
}

async function predict(args) {
  const { values: o, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { top: { type: 'string', default: '3' }, model: { type: 'string' }, float32: { type: 'boolean', default: false } },
  });
  const [file, ...images] = positionals;
  if (!file || !images.length) die(`predict needs a model file and images\n${USAGE}`);
  const c = await openClassifier(file, o);
  let failed = 0;
  for (const img of images) {
    try {
      const top = c.predict(new Uint8Array(fs.readFileSync(img)), Number(o.top));
      process.stdout.write(
        `${img}\t${top[0].unknown ? 'none of these\t' : ''}${top.map((t) => `${t.label} ${t.probability.toFixed(4)}`).join('\t')}\n`,
      );
    } catch (e) {
      failed++;
      process.stderr.write(`${img}: ${e.message}\n`);
    }
  }
  if (failed) process.exitCode = 2;
}

async function embed(args) {
  const { values: o, positionals: images } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      model: { type: 'string', default: 'mobilenet_v2_mid' },
      cut: { type: 'string' },
      float32: { type: 'boolean', default: false },
    },
  });
  if (!images.length) die(`embed needs images\n${USAGE}`);
  const model = await (await createEngine()).loadModel(modelPath(o.model), { integer: !o.float32 });
  const cut = o.cut === undefined ? model.cut : model.layerIndex(o.cut);
  let failed = 0;
  for (const img of images) {
    try {
      const f = model.embed(new Uint8Array(fs.readFileSync(img)), { cut });
      process.stdout.write(
        `${JSON.stringify({ image: img, layer: model.layers[cut].name, shape: model.layers[cut].shape, features: [...f] })}\n`,
      );
    } catch (e) {
      failed++;
      process.stderr.write(`${img}: ${e.message}\n`);
    }
  }
  if (failed) process.exitCode = 2;
}

// The whole model (or with trainedOnly the trained part) as a tfjs layers model in a folder and/or an ONNX file.
function writeExports(c, { tfjs, onnx, trainedOnly = false }) {
  const whole = !trainedOnly;
  if (tfjs) {
    fs.mkdirSync(tfjs, { recursive: true });
    for (const [name, bytes] of Object.entries(tfjsFiles(c.exportTfjs({ whole })))) fs.writeFileSync(path.join(tfjs, name), bytes);
    process.stderr.write(`wrote ${whole ? 'the whole model' : 'the trained part'} as a TensorFlow.js layers model to ${tfjs}\n`);
  }
  if (onnx) {
    fs.writeFileSync(onnx, c.exportOnnx({ whole }).bytes);
    process.stderr.write(`wrote ${whole ? 'the whole model' : 'the trained part'} as ONNX to ${onnx}\n`);
  }
}

async function exportCmd(args) {
  const { values: o, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      tfjs: { type: 'string' },
      onnx: { type: 'string' },
      'trained-only': { type: 'boolean', default: false },
      model: { type: 'string' },
    },
  });
  const [file] = positionals;
  if (!file || !(o.tfjs || o.onnx)) die(`export needs a model file and --tfjs dir and/or --onnx file\n${USAGE}`);
  writeExports(await openClassifier(file, o), { tfjs: o.tfjs, onnx: o.onnx, trainedOnly: o['trained-only'] });
}

const [cmd, ...rest] = process.argv.slice(2);
try {
  if (cmd === 'finetune') await finetune(rest);
  else if (cmd === 'predict') await predict(rest);
  else if (cmd === 'embed') await embed(rest);
  else if (cmd === 'evaluate') await evaluate(rest);
  else if (cmd === 'models') models();
  else if (cmd === 'export') await exportCmd(rest);
  else die(USAGE);
} catch (e) {
  die(e.message);
}
