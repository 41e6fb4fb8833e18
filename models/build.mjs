#!/usr/bin/env node
// Builds the model zoo: decodes the tfjs models bundled (as JS files) in the nsfwjs
// npm package into plain tfjs files under models/<id>/ (model.json, the binary shards
// named exactly as the manifest lists them, card.json) and writes models/index.json.
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
import { parseModel } from '../wasm/tfjs.mjs';

const NSFWJS_VERSION = '4.4.0';
const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);

function nsfwjsDir() {
  let pkgPath;
  try {
    pkgPath = require.resolve('nsfwjs/package.json');
  } catch {
    // older exports maps hide package.json; fall back to the conventional location
    pkgPath = join(here, '..', 'node_modules', 'nsfwjs', 'package.json');
  }
  let pkg;
  try {
    pkg = require(pkgPath);
  } catch {
    throw new Error(`nsfwjs is not installed (looked for ${pkgPath}); run \`npm install\` first`);
  }
  if (pkg.version !== NSFWJS_VERSION) {
    throw new Error(`nsfwjs ${pkg.version} is installed but the zoo is pinned to nsfwjs@${NSFWJS_VERSION}; run \`npm install\` (package.json pins it)`);
  }
  return dirname(pkgPath);
}

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

async function buildModel(card, srcRoot) {
  const src = join(srcRoot, 'dist', 'models', card.id);
  const out = join(here, card.id);
  await mkdir(out, { recursive: true });

  const json = loadBundle(join(src, 'model.min.js'), 'model.json');
  if (!json || typeof json !== 'object' || !json.modelTopology) throw new Error(`${src}/model.min.js did not yield a tfjs model.json`);
  const parsed = parseModel(json); // refuse to publish a model the engine cannot read

  const files = [];
  let changed = 0;
  for (const [gi, group] of parsed.groups.entries()) {
    let groupBytes = 0;
    for (const path of group.paths) {
      const b64 = loadBundle(join(src, `${path}.min.js`), 'weight shard');
      if (typeof b64 !== 'string') throw new Error(`${src}/${path}.min.js did not yield base64 shard data`);
      const bytes = Buffer.from(b64, 'base64');
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
  if (defaultOp.channels !== card.feature.size || !(defaultOp.name === card.feature.layer || defaultOp.aliases.includes(card.feature.layer))) {
    throw new Error(`${card.id}: zoo.json says the feature layer is '${card.feature.layer}' (${card.feature.size}-d), the parser cuts at '${defaultOp.name}' (${defaultOp.channels}-d)`);
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
  const srcRoot = nsfwjsDir();
  const zoo = JSON.parse(await readFile(join(here, 'zoo.json'), 'utf8'));
  // the class order is what nsfwjs itself uses to name its outputs
  const classes = Object.values(loadBundle(join(srcRoot, 'dist', 'cjs', 'nsfw_classes.js'), 'class list').NSFW_CLASSES);
  for (const card of zoo.models) {
    if (JSON.stringify(card.labels) !== JSON.stringify(classes)) throw new Error(`zoo.json labels of ${card.id} differ from nsfwjs' ${JSON.stringify(classes)}`);
  }
  const index = { source: `npm nsfwjs@${NSFWJS_VERSION}`, models: [] };
  for (const card of zoo.models) {
    const { card: full, changed } = await buildModel(card, srcRoot);
    const mb = (full.weights.bytes / 1e6).toFixed(1);
    console.log(`models/${card.id}: ${full.ops} ops, ${full.weights.parameters} parameters, ${mb} MB weights${changed ? '' : ' (unchanged)'}`);
    index.models.push({ id: card.id, name: card.name, default: card.default === true, model: `${card.id}/model.json`, card: full });
  }
  await writeIfChanged(join(here, 'index.json'), `${JSON.stringify(index, null, 2)}\n`);
}

main().catch((e) => {
  console.error(`models/build.mjs: ${e.message}`);
  process.exit(1);
});
