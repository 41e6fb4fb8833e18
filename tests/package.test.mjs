// The npm package from a user's side: `npm pack`, install the tarball into an empty
// folder, run the Node example on real images, type-check the examples against the
// shipped declarations, and the errors of a wrong model URL and a broken install.
// (The bundled browser example runs in tests/e2e/package.test.mjs.)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { pathToFileURL } from 'node:url';
import { ROOT } from './helpers.mjs';
import { packAndInstall } from './pack.mjs';
import { createServer } from '../tools/serve.mjs';

const run = promisify(execFile);
const TSC = path.join(ROOT, 'node_modules', '.bin', 'tsc');
// The size the package must stay under (docs/API.md, "Package size"): the five engine
// builds are ~1.3 MB unpacked, ~0.55 MB packed; models are not shipped.
const MAX_PACKED = 1024 * 1024,
  MAX_UNPACKED = 2 * 1024 * 1024;

let p;
before(async () => {
  p = await packAndInstall();
});
after(() => {
  if (p) fs.rmSync(p.dir, { recursive: true, force: true });
});

test(`npm pack ships the engine builds, modules, types and docs, nothing else, under ${MAX_PACKED / 1024} KiB`, () => {
  const files = p.pack.files.map((f) => f.path).sort();
  for (const f of [
    'build/tinytune.wasm',
    'build/tinytune-relaxed.wasm',
    'build/tinytune-scalar.wasm',
    'build/tinytune-mt.wasm',
    'build/tinytune-mt-relaxed.wasm',
    'wasm/index.mjs',
    'wasm/engine.mjs',
    'wasm/transfer.mjs',
    'wasm/client.mjs',
    'wasm/worker.mjs',
    'types/index.d.ts',
    'types/client.d.ts',
    'docs/API.md',
    'README.md',
    'LICENSE',
    'package.json',
  ])
    assert.ok(files.includes(f), `${f} is shipped`);
  const stray = files.filter(
    (f) =>
      !/^(build\/tinytune[a-z-]*\.wasm|wasm\/[a-z-]+\.mjs|types\/[a-z-]+\.d\.ts|docs\/API\.md|README\.md|LICENSE|package\.json)$/.test(f),
  );
  assert.deepEqual(stray, [], 'no models, sources, tests or intermediate builds');
  assert.ok(p.pack.size <= MAX_PACKED, `packed ${p.pack.size} bytes`);
  assert.ok(p.pack.unpackedSize <= MAX_UNPACKED, `unpacked ${p.pack.unpackedSize} bytes`);
  const pkg = JSON.parse(fs.readFileSync(path.join(p.pkg, 'package.json'), 'utf8'));
  assert.equal(pkg.private, undefined);
  assert.equal(pkg.dependencies, undefined, 'no runtime dependencies');
  for (const [name, target] of Object.entries(pkg.exports)) {
    for (const file of typeof target === 'string' ? [target] : Object.values(target)) {
      if (!file.includes('*')) assert.ok(fs.existsSync(path.join(p.pkg, file)), `export ${name}: ${file} exists`);
    }
  }
});

test('the Node example, installed from the tarball, trains on real images and predicts held-out ones', async () => {
  const { stdout } = await run(
    process.execPath,
    [
      'node/train.mjs',
      path.join(ROOT, 'models'),
      'data/brick',
      'data/grass',
      '--model',
      'mobilenet_v2',
      ...p.data.held.flatMap((h) => ['--predict', h.file]),
    ],
    { cwd: p.app, timeout: 240000 },
  );
  assert.match(stdout, /^engine: (relaxed SIMD|SIMD|scalar), \d+ thread\(s\); model mobilenet_v2$/m);
  assert.match(stdout, /^images per class: 8, 8$/m);
  assert.match(stdout, /^trained: K=\d, validation accuracy [\d.]+, [\d.]+ s$/m);
  for (const h of p.data.held) {
    const m = stdout.match(new RegExp(`^predict ${path.basename(h.file)}: (\\w+) ([\\d.]+)`, 'm'));
    assert.ok(m, `a prediction for ${path.basename(h.file)}`);
    assert.equal(m[1], h.label, `${path.basename(h.file)} is ${h.label}`);
  }
});

test('tsc --noEmit --strict passes on the examples against the installed declarations, and catches a misuse', async () => {
  await run(TSC, ['-p', 'tsconfig.json'], { cwd: p.app, timeout: 120000 });
  // The same check fails on a wrong call, so it is really checking.
  fs.writeFileSync(
    path.join(p.app, 'node', 'bad.mjs'),
    "import { Classifier } from 'tinytune';\n" +
      '/** @param {Classifier} c */\nexport const f = (c) => c.predict(new Uint8Array(1))[0].labl;\n',
  );
  try {
    await assert.rejects(run(TSC, ['-p', 'tsconfig.json'], { cwd: p.app, timeout: 120000 }), (e) =>
      /Property 'labl' does not exist on type 'Prediction'/.test(e.stdout),
    );
  } finally {
    fs.rmSync(path.join(p.app, 'node', 'bad.mjs'));
  }
});

const installed = (pkg) => import(pathToFileURL(path.join(pkg, 'wasm', 'index.mjs')).href);

test('a wrong models base URL is an EngineError naming the URL that failed (a path, and over http)', async () => {
  const t = await installed(p.pkg);
  const engine = await t.createEngine({ threads: 1 });
  const nowhere = path.join(p.app, 'no-models');
  await assert.rejects(
    t.loadBackbone(engine, nowhere, { id: 'mobilenet_v2' }),
    (e) =>
      e instanceof t.EngineError &&
      e.message.includes(`cannot load model 'mobilenet_v2' from the base URL ${nowhere}`) &&
      e.message.includes(`${nowhere}/mobilenet_v2/model.json: file not found`),
  );
  const server = createServer();
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  try {
    const base = `http://127.0.0.1:${server.address().port}/web/`;
    await assert.rejects(
      t.loadBackbone(engine, base),
      (e) =>
        e instanceof t.EngineError &&
        e.message.includes(`from ${base}mobilenet_v2_mid/model.json: 404 Not Found`) &&
        e.url === `${base}mobilenet_v2_mid/`,
    );
  } finally {
    server.close();
  }
  assert.throws(() => t.modelUrl(undefined), /a base URL for the models is required \(tinytune has no CDN default\)/);
  await assert.rejects(t.loadBackbone(engine, p.app, { id: '../etc' }), /invalid model id "..\/etc"/);
  const model = await t.loadBackbone(engine, path.join(ROOT, 'models'), { id: 'mobilenet_v2' });
  assert.equal(model.id, 'mobilenet_v2');
  model.dispose();
});

test('a .wasm build missing from a broken install is an EngineError naming the file', async () => {
  const broken = path.join(p.dir, 'broken');
  fs.cpSync(p.pkg, broken, { recursive: true });
  fs.rmSync(path.join(broken, 'build', 'tinytune.wasm'));
  fs.rmSync(path.join(broken, 'build', 'tinytune-mt.wasm'));
  const t = await installed(broken);
  const file = path.join(broken, 'build', 'tinytune.wasm');
  await assert.rejects(
    t.createEngine({ threads: 1, relaxed: false }),
    (e) =>
      e instanceof t.EngineError &&
      e.missing === true &&
      e.message === `the engine file ${file} is missing: the install is broken (reinstall tinytune, or run \`make wasm\` in a clone)`,
  );
  if (t.canThread()) {
    await assert.rejects(
      t.createEngine({ threads: 2, relaxed: false }),
      new RegExp(`the engine file ${path.join(broken, 'build', 'tinytune-mt.wasm')} is missing`),
    );
  }
  // the builds still there load
  const engine = await t.createEngine({ threads: 1, simd: false });
  assert.equal(engine.build, 'scalar');
});
