// Hostile inputs through the real wasm engine and the real models in models/: broken,
// lying and oversized images, model files and saved classifiers. Each must be refused
// with an error naming the problem (asserted on the message text), never crash, hang or
// corrupt memory; and after each one the SAME engine instance must still embed a good
// image exactly as a fresh engine does. README "Hostile inputs" tabulates the answers;
// tests/c/test_hostile.c runs the same list natively. Long because it is a list: one case
// after another, each a few lines.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import http from 'node:http';
import { createEngine, EngineError } from '../wasm/engine.mjs';
import { Classifier } from '../wasm/transfer.mjs';
import { ROOT, modelDir, readPhoto } from './helpers.mjs';

const HOSTILE = path.join(ROOT, 'tests/fixtures/hostile');
const IMAGES = path.join(ROOT, 'tests/fixtures/images');
const fixture = (dir, name) => new Uint8Array(fs.readFileSync(path.join(dir, name)));

let engine, model, good, ref, tmp, saved;

const sameBits = (a, b) => a.length === b.length && a.every((v, i) => Object.is(v, b[i]));

/** The same engine still embeds the good image bit for bit as a fresh engine did. */
function stillWorks(after) {
  const e = model.embed(good);
  assert.ok(sameBits(e, ref), `after ${after}, the good image no longer embeds as on a fresh engine`);
}

/** fn must throw an EngineError whose message matches re; then the engine still works. */
function refuses(what, fn, re) {
  assert.throws(
    fn,
    (e) => {
      assert.ok(e instanceof EngineError, `${what}: threw ${e}`);
      assert.ok(!(e instanceof WebAssembly.RuntimeError), `${what}: the engine trapped: ${e.message}`);
      assert.match(e.message, re, `${what}: message`);
      return true;
    },
    `${what}: was accepted`,
  );
  stillWorks(what);
}

async function refusesAsync(what, promise, re) {
  await assert.rejects(
    promise,
    (e) => {
      assert.ok(e instanceof EngineError, `${what}: threw ${e}`);
      assert.ok(!(e instanceof WebAssembly.RuntimeError), `${what}: the engine trapped: ${e.message}`);
      assert.match(e.message, re, `${what}: message`);
      return true;
    },
    `${what}: was accepted`,
  );
  stillWorks(what);
}

before(async () => {
  good = fixture(IMAGES, 'chelsea_64.png');
  const fresh = await createEngine();
  const m = await fresh.loadModel(modelDir('mobilenet_v2'));
  ref = m.embed(good);
  m.dispose();
  engine = await createEngine();
  model = await engine.loadModel(modelDir('mobilenet_v2'));
  assert.ok(sameBits(model.embed(good), ref), 'two engines disagree before anything hostile');
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tinytune-hostile-'));
});

after(() => {
  model?.dispose();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

/* ---- images ------------------------------------------------------------------------ */

test('broken and non-image files are refused by name', async () => {
  const cases = [
    ['0-byte file', fixture(HOSTILE, 'empty.jpg'), /^empty file$/],
    ['truncated JPEG', fixture(HOSTILE, 'truncated.jpg'), /corrupt or truncated JPEG: the file ends before the end-of-image marker/],
    [
      'truncated PNG',
      fixture(HOSTILE, 'truncated.png'),
      /corrupt or truncated PNG: the file ends inside chunk IDAT \(incomplete download\?\)/,
    ],
    ['SVG renamed .jpg', fixture(HOSTILE, 'drawing_svg.jpg'), /not an image: looks like text\/SVG/],
    ['text renamed .jpg', fixture(HOSTILE, 'notes_txt.jpg'), /not an image: looks like text$/],
    ['PDF renamed .jpg', fixture(HOSTILE, 'document_pdf.jpg'), /not an image: looks like a PDF/],
    ['random bytes', Uint8Array.from({ length: 300 }, (_, i) => (i * 197 + 13) & 255), /not an image: unrecognised header/],
  ];
  for (const [what, bytes, re] of cases) {
    refuses(what, () => model.embed(bytes), re);
    refuses(`${what} (classify)`, () => model.classify(bytes), re);
  }
  // a classifier skips them, recording why, and keeps the good ones
  const c = new Classifier(model, { labels: ['a', 'b'], blocks: 0, hidden: 0, augment: false });
  try {
    for (const [what, bytes] of cases) assert.equal(c.addImage(bytes, 'a', what), false);
    assert.equal(c.addImage(good, 'b', 'good'), true);
    assert.deepEqual(
      c.skipped.map((s) => s.name),
      cases.map(([what]) => what),
    );
    cases.forEach(([, , re], i) => assert.match(c.skipped[i].reason, re));
    assert.deepEqual(c.counts(), [0, 1]);
    // cached features set by hand must fit the cut (they are copied into the engine)
    assert.equal(c.addImage(good, 'a', 'good too'), true);
    c.images[0].data = c.images[0].data.subarray(1);
    await refusesAsync(
      'features one float short',
      c.fit({ epochs: 1 }),
      /image 'good' holds 1279 floats, not the 1280 of 1 view\(s\) at the cut/,
    );
  } finally {
    c.dispose();
  }
  stillWorks('a classifier skipping broken files');
});

test('a PNG declaring 100000x100000 is refused before anything is allocated', () => {
  const bytes = fixture(HOSTILE, 'huge_100000x100000.png');
  assert.ok(bytes.length < 100);
  const grown = engine.memoryBytes();
  refuses(
    'PNG declaring 100000x100000',
    () => model.embed(bytes),
    /image is 100000x100000 pixels; the limit is 16384 per side and 40 megapixels/,
  );
  assert.equal(engine.memoryBytes(), grown, 'wasm memory grew while refusing the header');
});

test('a PNG bomb (1x1, its IDAT inflating to 16 MB) stops early and does not grow memory', () => {
  const bytes = fixture(HOSTILE, 'bomb_1x1_16mb.png');
  const grown = engine.memoryBytes();
  refuses(
    'PNG bomb',
    () => model.embed(bytes),
    /out of memory decoding a 1x1 PNG \(or its data inflates to far more than that size needs\)/,
  );
  assert.equal(engine.memoryBytes(), grown, 'wasm memory grew while inflating the bomb');
});

test('1x1 images in every format embed as a flat colour', () => {
  const flat = model.embed({ width: 1, height: 1, data: new Uint8Array([200, 100, 50]), channels: 3 });
  for (const name of ['1x1.png', '1x1.gif', '1x1.bmp']) {
    assert.ok(sameBits(model.embed(fixture(HOSTILE, name)), flat), name);
  }
  const jpg = engine.decodeImage(fixture(HOSTILE, '1x1.jpg'));
  assert.deepEqual([jpg.width, jpg.height], [1, 1]);
  assert.ok(
    [200, 100, 50].every((v, i) => Math.abs(jpg.rgb[i] - v) <= 8),
    `1x1 JPEG pixel ${[...jpg.rgb]}`,
  );
  stillWorks('1x1 images');
});

test('CMYK and progressive JPEG, 16-bit and paletted PNG with alpha, animated GIF', () => {
  const orig = engine.decodeImage(good);
  for (const name of ['chelsea_64_cmyk.jpg', 'chelsea_64_progressive.jpg', 'chelsea_64_ycck.jpg']) {
    const img = engine.decodeImage(fixture(IMAGES, name));
    assert.deepEqual([img.width, img.height], [orig.width, orig.height], name);
    let d = 0;
    for (let i = 0; i < img.rgb.length; i++) d += Math.abs(img.rgb[i] - orig.rgb[i]);
    assert.ok(d / img.rgb.length / 255 < 0.03, `${name}: mean difference ${d / img.rgb.length / 255}`);
    assert.equal(model.embed(fixture(IMAGES, name)).length, 1280);
  }
  // 16-bit RGBA: exactly its 8-bit rendering, alpha dropped
  const a16 = engine.decodeImage(fixture(HOSTILE, 'rgba16.png')),
    a8 = engine.decodeImage(fixture(HOSTILE, 'rgba16_as8.png'));
  assert.deepEqual([a16.width, a16.height], [12, 8]);
  assert.deepEqual(a16.rgb, a8.rgb);
  // 4-bit palette with tRNS alpha: pixel (x, y) has palette entry (x + y) % 16
  const p = engine.decodeImage(fixture(HOSTILE, 'palette4_alpha.png'));
  for (let y = 0; y < 8; y++) {
    for (let x = 0; x < 12; x++) {
      const k = (x + y) % 16,
        o = (y * 12 + x) * 3;
      assert.deepEqual([...p.rgb.subarray(o, o + 3)], [k * 17, 255 - k * 17, (k * 53) % 256], `palette pixel ${x},${y}`);
    }
  }
  // animated GIF: the first frame (red), not the blue or green ones after it
  const g = engine.decodeImage(fixture(HOSTILE, 'animated.gif'));
  assert.deepEqual([g.width, g.height], [8, 6]);
  for (let i = 0; i < 48; i++) assert.deepEqual([...g.rgb.subarray(3 * i, 3 * i + 3)], [255, 0, 0]);
  stillWorks('image variants');
});

/* ---- memory ---------------------------------------------------------------------------- */

test('out of memory is reported, and the engine stays usable', () => {
  // 8000 views of 224x224x3 floats = 4.8 GB: more than wasm32 can address
  const rng = model.newRng(1);
  try {
    refuses(
      '8000 augmented views',
      () => model.embedViews(good, { views: 8000, augment: true, rng }),
      /out of memory allocating 4816896000 bytes/,
    );
    // 1700 views fit (1 GB of input) but their first activation (2.7 GB) cannot: malloc
    // returns NULL inside the engine once memory cannot grow past 2 GiB. (Cut there: a
    // batch through the whole network runs its first layers one image at a time.)
    refuses(
      'a batch of 1700 views',
      () => model.embedViews(good, { views: 1700, augment: false, rng, upto: 1 }),
      /out of memory for the activation of 'Conv1' \(batch 1700\)/,
    );
  } finally {
    model.freeRng(rng);
  }
  refuses(
    'a batch over the engine limit',
    () => model.runInput(new Float32Array(16), 4000),
    /out of memory allocating 2408448000 bytes|batch of 4000 is out of range/,
  );
  // more floats than the batch holds (regression: they were written past the input buffer,
  // and a later call trapped out of bounds), fewer, and none
  const per = 224 * 224 * 3;
  refuses(
    '16 images of input for a batch of 1',
    () => model.runInput(new Float32Array(16 * per), 1),
    /runInput: 2408448 floats for a batch of 1 inputs of 224x224x3 \(150528 expected\)/,
  );
  refuses('half an image of input', () => model.runInput(new Float32Array(per / 2), 1), /75264 floats for a batch of 1 /);
  refuses('no input', () => model.runInput(undefined, 1), /undefined floats for a batch of 1 /);
  // the memory freed by the failed batches is reused, not lost
  const before = engine.memoryBytes();
  for (let i = 0; i < 3; i++) stillWorks(`embedding again (${i})`);
  assert.equal(engine.memoryBytes(), before);
});

/* ---- model files ---------------------------------------------------------------------- */

const baseJson = () => JSON.parse(fs.readFileSync(path.join(modelDir('mobilenet_v2'), 'model.json'), 'utf8'));
const baseShard = () => fs.readFileSync(path.join(modelDir('mobilenet_v2'), 'group1-shard1of1'));
const spec = (json, name) => json.weightsManifest[0].weights.find((w) => w.name === name);
let nVariant = 0;

/** A copy of models/mobilenet_v2 with model.json (object or text) and the shard edited. */
function variant({ json = (j) => j, text = (t) => t, shard = (b) => b } = {}) {
  const dir = path.join(tmp, `model${nVariant++}`);
  fs.mkdirSync(dir);
  const j = baseJson();
  json(j);
  fs.writeFileSync(path.join(dir, 'model.json'), text(JSON.stringify(j)));
  fs.writeFileSync(path.join(dir, 'group1-shard1of1'), shard(baseShard(), j));
  return dir;
}

/** A small layers model written from scratch. */
function layersModel(inputShape, layers, weights, shardBytes) {
  const dir = path.join(tmp, `model${nVariant++}`);
  fs.mkdirSync(dir);
  const json = {
    format: 'layers-model',
    modelTopology: {
      class_name: 'Sequential',
      config: {
        name: 'hostile',
        layers: [
          { class_name: 'InputLayer', config: { name: 'input', batch_input_shape: [null, ...inputShape], dtype: 'float32' } },
          ...layers,
        ],
      },
    },
    weightsManifest: [{ paths: ['weights.bin'], weights }],
  };
  fs.writeFileSync(path.join(dir, 'model.json'), JSON.stringify(json));
  fs.writeFileSync(path.join(dir, 'weights.bin'), shardBytes);
  return dir;
}

// Byte offset of a weight in the concatenated shards, and its byte size.
function locate(json, name) {
  const bytes = { float32: 4, int32: 4, float16: 2, uint16: 2, uint8: 1 };
  let off = 0;
  for (const w of json.weightsManifest[0].weights) {
    const size = w.shape.reduce((a, b) => a * b, 1) * bytes[w.quantization ? w.quantization.dtype : w.dtype];
    if (w.name === name) return { off, size };
    off += size;
  }
  throw new Error(`no weight ${name}`);
}

test('model.json with bad shapes, short shards, non-finite weights, unknown weights', async () => {
  const cases = [
    [
      'negative shape',
      variant({
        json: (j) => {
          spec(j, 'Conv1/kernel').shape = [3, 3, -3, 32];
        },
      }),
      /weight 'Conv1\/kernel' has invalid shape \[3,3,-3,32\]: dims must be positive integers/,
    ],
    [
      'fractional shape',
      variant({
        json: (j) => {
          spec(j, 'Conv1/kernel').shape = [3, 3, 1.5, 32];
        },
      }),
      /weight 'Conv1\/kernel' has invalid shape \[3,3,1.5,32\]/,
    ],
    [
      'huge shape',
      variant({
        json: (j) => {
          spec(j, 'Conv1/kernel').shape = [65536, 65536, 3, 32];
        },
      }),
      /weight 'Conv1\/kernel' has shape \[65536,65536,3,32\] with 412316860416 elements, more than the limit of 2\^28/,
    ],
    [
      'shape mismatched with the layer',
      variant({
        json: (j) => {
          spec(j, 'Conv1/kernel').shape = [3, 3, 3, 16];
        },
      }),
      /conv2d 'Conv1': kernel 'Conv1\/kernel' has shape \[3,3,3,16\] but filters is 32/,
    ],
    [
      'shape mismatched with the input',
      variant({
        json: (j) => {
          spec(j, 'Conv_1/kernel').shape = [1, 1, 160, 2560];
        },
      }),
      /conv2d 'Conv_1': kernel 'Conv_1\/kernel' has shape \[1,1,160,2560\] but the input has 320 channels/,
    ],
    [
      'shard shorter than declared',
      variant({ shard: (b) => b.subarray(0, b.length - 1000) }),
      /weights shard group1-shard1of1 is truncated: expected 2 619 461 bytes, got 2 618 461/,
    ],
    [
      'shard longer than declared',
      variant({ shard: (b) => Buffer.concat([b, Buffer.alloc(7)]) }),
      /weights shard group1-shard1of1 is too long: expected 2 619 461 bytes, got 2 619 468/,
    ],
    [
      'shard missing',
      (() => {
        const d = variant();
        fs.rmSync(path.join(d, 'group1-shard1of1'));
        return d;
      })(),
      /cannot load model shard 'group1-shard1of1' from .*: file not found/,
    ],
    [
      'quantization scale Infinity (1e999)',
      variant({ text: (t) => t.replace(/("name":"Conv1\/kernel".*?"scale":)[0-9.e-]+/, '$11e999') }),
      /weight 'Conv1\/kernel' has uint8 quantization without a finite scale and min/,
    ],
    [
      'quantization scale NaN (not JSON)',
      variant({ text: (t) => t.replace(/("name":"Conv1\/kernel".*?"scale":)[0-9.e-]+/, '$1NaN') }),
      /model.json at .* is not valid JSON/,
    ],
    [
      'quantization min null',
      variant({
        json: (j) => {
          spec(j, 'Conv1/kernel').quantization.min = null;
        },
      }),
      /weight 'Conv1\/kernel' has uint8 quantization without a finite scale and min/,
    ],
    [
      'float32 weight holding NaN',
      variant({
        // dense_3/bias, uint8-quantised in the file, rewritten as float32 with a NaN at index 2
        json: (j) => {
          const s = spec(j, 'dense_3/bias');
          delete s.quantization;
          s.dtype = 'float32';
        },
        shard: (b) => {
          const { off, size } = locate(baseJson(), 'dense_3/bias');
          const f = new Float32Array([0.1, -0.2, NaN, 0.3, 0.4]);
          return Buffer.concat([b.subarray(0, off), Buffer.from(f.buffer), b.subarray(off + size)]);
        },
      }),
      /weight 'dense_3\/bias' has a non-finite value \(nan\) at index 2/,
    ],
    [
      'float32 weight holding Infinity',
      variant({
        json: (j) => {
          const s = spec(j, 'dense_3/bias');
          delete s.quantization;
          s.dtype = 'float32';
        },
        shard: (b) => {
          const { off, size } = locate(baseJson(), 'dense_3/bias');
          const f = new Float32Array([0.1, -Infinity, 0, 0.3, 0.4]);
          return Buffer.concat([b.subarray(0, off), Buffer.from(f.buffer), b.subarray(off + size)]);
        },
      }),
      /weight 'dense_3\/bias' has a non-finite value \(-inf\) at index 1/,
    ],
    [
      'a weight name not in the graph',
      variant({
        json: (j) => j.weightsManifest[0].weights.push({ name: 'extra/kernel', shape: [4], dtype: 'float32' }),
        shard: (b) => Buffer.concat([b, Buffer.alloc(16)]),
      }),
      /weight 'extra\/kernel' in the manifest is not used by the model/,
    ],
    [
      'a graph weight missing from the manifest',
      variant({
        json: (j) => {
          spec(j, 'Conv1/kernel').name = 'Conv1/kernel_renamed';
        },
      }),
      /layer 'Conv1' needs weight 'Conv1\/kernel', which is missing from the weights manifest/,
    ],
    [
      'an unknown dtype',
      variant({
        json: (j) => {
          spec(j, 'Conv1/kernel').quantization.dtype = 'int4';
        },
      }),
      /weight 'Conv1\/kernel' has unsupported quantization dtype 'int4'/,
    ],
    [
      '3 GiB of consistently declared weights',
      layersModel(
        [1, 1, 16384],
        ['d1', 'd2', 'd3'].map((name) => ({ class_name: 'Dense', config: { name, units: 16384, activation: 'linear', use_bias: false } })),
        ['d1', 'd2', 'd3'].map((n) => ({ name: `${n}/kernel`, shape: [16384, 16384], dtype: 'float32' })),
        Buffer.alloc(64),
      ),
      /the weights manifest declares 3 221 225 472 bytes of weights, more than the limit of 536 870 912/,
    ],
    [
      'a dtype named after an Object property',
      layersModel(
        [1, 1, 4],
        [{ class_name: 'Dense', config: { name: 'd', units: 2, use_bias: false } }],
        [{ name: 'd/kernel', shape: [4, 2], dtype: 'toString' }],
        Buffer.alloc(32),
      ),
      /weight 'd\/kernel' has unsupported dtype 'toString'/,
    ],
    [
      'a chain of 20000 layers listed output first',
      (() => {
        const n = 20000,
          layers = [];
        for (let i = n - 1; i >= 0; i--) {
          layers.push({
            class_name: 'Activation',
            name: `a${i}`,
            config: { name: `a${i}`, activation: 'relu' },
            inbound_nodes: [[[i ? `a${i - 1}` : 'input', 0, 0, {}]]],
          });
        }
        layers.push({
          class_name: 'InputLayer',
          name: 'input',
          config: { name: 'input', batch_input_shape: [null, 1, 1, 4], dtype: 'float32' },
          inbound_nodes: [],
        });
        const dir = path.join(tmp, `model${nVariant++}`);
        fs.mkdirSync(dir);
        fs.writeFileSync(
          path.join(dir, 'model.json'),
          JSON.stringify({
            format: 'layers-model',
            modelTopology: {
              class_name: 'Model',
              config: {
                name: 'deep',
                layers,
                input_layers: [['input', 0, 0]],
                output_layers: [[`a${n - 1}`, 0, 0]],
              },
            },
            weightsManifest: [{ paths: ['w.bin'], weights: [] }],
          }),
        );
        fs.writeFileSync(path.join(dir, 'w.bin'), '');
        return dir;
      })(),
      /model graph is too deep to parse/,
    ],
    [
      'model.json that is not JSON',
      (() => {
        const d = variant();
        fs.writeFileSync(path.join(d, 'model.json'), '{"modelTopology": ');
        return d;
      })(),
      /model.json at .* is not valid JSON/,
    ],
  ];
  for (const [what, dir, re] of cases) await refusesAsync(what, engine.loadModel(dir), re);
});

test('a model whose shapes are valid but whose batches overflow 32-bit sizes', async () => {
  // input 1x1x1, a 1x1 conv to 65536 channels: a batch of 65537 needs 2^32 + 2^16 floats,
  // which a 32-bit size would wrap to 65536 (regression: under-allocated, then overrun)
  const conv = {
    class_name: 'Conv2D',
    config: { name: 'wide', filters: 65536, kernel_size: [1, 1], strides: [1, 1], padding: 'valid', activation: 'linear', use_bias: false },
  };
  const dir = layersModel(
    [1, 1, 1],
    [conv],
    [{ name: 'wide/kernel', shape: [1, 1, 1, 65536], dtype: 'float32' }],
    Buffer.from(new Float32Array(65536).fill(0.5).buffer),
  );
  const wide = await engine.loadModel(dir);
  try {
    refuses(
      'a batch of 65537 through a 65536-channel conv',
      () => wide.runInput(new Float32Array(65537), 65537, 1),
      /batch of 65537 is too large for 'wide'/,
    );
    const y = wide.runInput(new Float32Array([2, 4]), 2, 1);
    assert.equal(y.length, 131072);
    assert.ok(y.subarray(0, 65536).every((v) => v === 1) && y.subarray(65536).every((v) => v === 2));
  } finally {
    wide.dispose();
  }
  stillWorks('the wide model');
});

test('model files over the size limits are refused while downloading', async () => {
  // a server that declares a 1 GiB shard, and one that streams model.json forever
  const server = http.createServer((req, res) => {
    if (req.url.endsWith('/big/model.json')) {
      res.setHeader('content-type', 'application/json');
      return res.end(fs.readFileSync(path.join(modelDir('mobilenet_v2'), 'model.json')));
    }
    if (req.url.endsWith('/big/group1-shard1of1')) {
      res.writeHead(200, { 'content-length': String(2 ** 30) });
      return res.end(); // the client must give up on the header alone
    }
    if (req.url.endsWith('/endless/model.json')) {
      res.writeHead(200, { 'content-type': 'application/json' });
      const chunk = Buffer.alloc(1 << 20, 0x20);
      const pump = () => {
        while (res.write(chunk));
      };
      res.on('drain', pump);
      req.on('close', () => res.destroy());
      return pump();
    }
    res.writeHead(404).end();
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${server.address().port}`;
  try {
    await refusesAsync(
      'a shard declaring 1 GiB',
      engine.loadModel(`${base}/big/model.json`),
      /cannot load model shard 'group1-shard1of1' from .*: it is 1 073 741 824 bytes, more than the limit of 536 870 912 bytes/,
    );
    await refusesAsync(
      'a model.json that never ends',
      engine.loadModel(`${base}/endless/model.json`),
      /cannot load model.json from .*: it is larger than the limit of 67 108 864 bytes/,
    );
  } finally {
    server.closeAllConnections?.();
    await new Promise((r) => server.close(r));
  }
});

test('shard paths that leave the model folder are refused, before anything is read', async () => {
  // models/<a>/model.json naming '../<b>/group1-shard1of1': <b> holds a real shard, so
  // a loader that followed the path would load the model from outside its folder.
  const other = variant();
  const outside = `../${path.basename(other)}/group1-shard1of1`;
  const withPath = (p) =>
    variant({
      json: (j) => {
        j.weightsManifest[0].paths = [p];
      },
    });
  const msg = (p, why) =>
    new RegExp(
      `^weights manifest path '${p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}' is refused: ${why}; a shard must be a relative path inside model.json's folder \\(like 'group1-shard1of2' or 'weights/group1-shard1of2'\\)$`,
    );
  const cases = [
    [outside, "it has a '\\.\\.' segment, which leaves the model's folder"],
    [`weights/../${outside}`, "it has a '\\.\\.' segment, which leaves the model's folder"],
    [`%2e%2e/${path.basename(other)}/group1-shard1of1`, "it has a '\\.\\.' segment, which leaves the model's folder"],
    [path.join(other, 'group1-shard1of1'), 'it is an absolute path'],
    [`file://${path.join(other, 'group1-shard1of1')}`, 'it is a URL or names a drive'],
    ['C:/models/group1-shard1of1', 'it is a URL or names a drive'],
    ['..\\other\\group1-shard1of1', 'it contains a backslash'],
    ['./group1-shard1of1', "it has an empty or '\\.' segment"],
    ['group1-shard1of1?x=1', 'it has a query or fragment'],
  ];
  for (const [p, why] of cases) await refusesAsync(`shard path ${p}`, engine.loadModel(withPath(p)), msg(p, why));
  // a subfolder below model.json is fine
  const sub = withPath('weights/group1-shard1of1');
  fs.mkdirSync(path.join(sub, 'weights'));
  fs.renameSync(path.join(sub, 'group1-shard1of1'), path.join(sub, 'weights/group1-shard1of1'));
  const m = await engine.loadModel(sub);
  assert.ok(sameBits(m.embed(good), ref), 'a model with its shard in a subfolder embeds as the original');
  m.dispose();

  // Over http the same rule: nothing outside the model's folder is requested, not even on
  // the same origin, and no other origin.
  const asked = [];
  const server = http.createServer((req, res) => {
    asked.push(req.url);
    const file = path.join(tmp, decodeURIComponent(req.url.split('?')[0]));
    if (!file.startsWith(tmp) || !fs.existsSync(file)) return res.writeHead(404).end();
    res.end(fs.readFileSync(file));
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${server.address().port}`;
  try {
    for (const p of [outside, `${base}/${path.basename(other)}/group1-shard1of1`, `//127.0.0.1:${server.address().port}/x`]) {
      const dir = withPath(p);
      const why = p === outside ? "it has a '\\.\\.' segment, which leaves the model's folder" : 'it is a URL or names a drive';
      await refusesAsync(`shard path ${p} over http`, engine.loadModel(`${base}/${path.basename(dir)}/model.json`), msg(p, why));
    }
    assert.ok(
      asked.every((u) => /\/model\d+\/(model|card)\.json$/.test(u)),
      `requested more than model.json and card.json: ${asked.join(', ')}`,
    );
  } finally {
    server.closeAllConnections?.();
    await new Promise((r) => server.close(r));
  }
});

/* ---- saved classifiers ------------------------------------------------------------------ */

const SKIMAGE_SET = [
  ['chelsea.png', 'cat'],
  ['coffee.png', 'thing'],
  ['astronaut.png', 'cat'],
  ['rocket.jpg', 'thing'],
];

async function trainedBytes() {
  if (saved) return saved;
  const c = new Classifier(model, { labels: ['cat', 'thing'], blocks: 0, hidden: 0, augment: false, seed: 3 });
  try {
    for (const [name, label] of SKIMAGE_SET) assert.ok(c.addImage(readPhoto(name), label));
    await c.fit({ epochs: 2, batchSize: 2, validationFraction: 0 });
    saved = c.save();
  } finally {
    c.dispose();
  }
  model.setCut(model.layers.findIndex((l) => l.name === 'average_pooling2d_1' || l.aliases.includes('flatten_1')));
  return saved;
}

// The file's FNV-1a checksum, recomputed after an edit (what an attacker would do).
function rehash(b) {
  let h = 0xcbf29ce484222325n;
  for (let i = 0; i < b.length - 8; i++) h = ((h ^ BigInt(b[i])) * 0x100000001b3n) & 0xffffffffffffffffn;
  new DataView(b.buffer, b.byteOffset).setBigUint64(b.length - 8, h, true);
  return b;
}

function withMeta(bytes, edit) {
  const dv = new DataView(bytes.buffer, bytes.byteOffset);
  const ml = dv.getUint32(12, true);
  const meta = JSON.parse(new TextDecoder().decode(bytes.subarray(16, 16 + ml)));
  edit(meta);
  const mb = new TextEncoder().encode(JSON.stringify(meta));
  const out = new Uint8Array(bytes.length - ml + mb.length);
  out.set(bytes.subarray(0, 12));
  new DataView(out.buffer).setUint32(12, mb.length, true);
  out.set(mb, 16);
  out.set(bytes.subarray(16 + ml), 16 + mb.length);
  return rehash(out);
}

test('saved classifiers: corrupted, truncated, from the future, from another backbone', async () => {
  const bytes = await trainedBytes();
  const ok = Classifier.load(model, bytes);
  const probs = ok.predict(good);
  ok.dispose();
  const edit = (f) => {
    const b = bytes.slice();
    f(b);
    return b;
  };
  const cases = [
    [
      'corrupted header',
      edit((b) => {
        b[0] = 0x42;
      }),
      /not a tinytune model file \(bad header\)/,
    ],
    [
      'a flipped byte (checksum)',
      edit((b) => {
        b[b.length >> 1] ^= 0x04;
      }),
      /saved model is corrupted \(checksum mismatch\)/,
    ],
    [
      'a flipped checksum byte',
      edit((b) => {
        b[b.length - 3] ^= 0x80;
      }),
      /saved model is corrupted \(checksum mismatch\)/,
    ],
    ['truncated', bytes.slice(0, bytes.length - 300), /saved model is truncated \(\d+ bytes; it ends before its last op and checksum/],
    ['truncated to 20 bytes', bytes.slice(0, 20), /saved model is truncated \(20 bytes\)/],
    ['an empty file', new Uint8Array(0), /not a tinytune model file \(bad header\)/],
    [
      'an unknown file version',
      edit((b) => {
        b[8] = 2;
      }),
      /saved model has file version 2; this engine reads version 1/,
    ],
    [
      'an unknown classifier version',
      withMeta(bytes, (m) => {
        m.version = 9;
      }),
      /saved classifier has version 9; this engine reads version 1/,
    ],
    [
      'metadata that is not ours',
      withMeta(bytes, (m) => {
        m.format = 'keras';
      }),
      /not a tinytune classifier \(format 'keras'\)/,
    ],
    [
      'a NaN weight (checksum recomputed)',
      (() => {
        const b = bytes.slice();
        new DataView(b.buffer).setFloat32(b.length - 8 - 4, NaN, true); // the last bias
        return rehash(b);
      })(),
      /saved model: op 'head\/logits' has a non-finite weight/,
    ],
  ];
  for (const [what, b, re] of cases) refuses(`saved model, ${what}`, () => Classifier.load(model, b), re);

  // trained on mobilenet_v2, loaded onto mobilenet_v2_mid
  const mid = await engine.loadModel(modelDir('mobilenet_v2_mid'));
  try {
    refuses(
      'saved model, wrong backbone',
      () => Classifier.load(mid, bytes),
      /this classifier was trained on backbone 'mobilenet_v2' \(weights [0-9a-f]{16}\); the loaded backbone is 'mobilenet_v2_mid' \(weights [0-9a-f]{16}\)/,
    );
  } finally {
    mid.dispose();
  }
  // and the good file still loads and predicts as before
  const again = Classifier.load(model, bytes);
  assert.deepEqual(again.predict(good), probs);
  again.dispose();
  stillWorks('saved classifiers');
});

test('saved model nets whose sizes overflow 32 bits are refused by the engine', () => {
  // input 1x1x65536, dense to 65536 units stored with 0 weights: 2^32 weights wrap to 0
  // in a 32-bit size (regression: accepted, then forward read a NULL weight pointer)
  const meta = new TextEncoder().encode('{"format":"tinytune-classifier","version":1}');
  const name = new TextEncoder().encode('head/logits');
  const parts = [];
  const u32 = (v) => {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, v >>> 0, true);
    parts.push(b);
  };
  parts.push(new TextEncoder().encode('TTMODEL\0'));
  (u32(1), u32(meta.length), parts.push(meta));
  (u32(2), u32(1), u32(1), u32(65536)); // 2 ops; input 1x1x65536
  parts.push(Uint8Array.of(name.length), name);
  for (const v of [3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 65536, 0]) u32(v); // dense, 65536 units
  (u32(0), u32(0)); // scale, offset
  (u32(0), u32(0)); // 0 weights, 0 biases
  (u32(0), u32(0)); // checksum, filled in below
  const file = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) (file.set(p, at), (at += p.length));
  refuses(
    'saved dense 65536 -> 65536 without weights',
    () => Classifier.load(model, rehash(file)),
    /dense 'head\/logits': 4294967296 weights are too many/,
  );
});

// Metadata that disagrees with the net it describes. The checksum does not protect
// against a crafted file (anyone can recompute it), so Classifier.load must check.
test('saved classifiers whose metadata lies about the net', async () => {
  const bytes = await trainedBytes();
  const cut = model.cut;
  const cases = [
    [
      'one label for two logits',
      withMeta(bytes, (m) => {
        m.labels = ['a'];
      }),
      /label|class|output/i,
    ],
    [
      'five labels for two logits',
      withMeta(bytes, (m) => {
        m.labels = ['a', 'b', 'c', 'd', 'e'];
      }),
      /label|class|output/i,
    ],
    [
      'labels that are a string',
      withMeta(bytes, (m) => {
        m.labels = 'ab';
      }),
      /label/i,
    ],
    [
      'a cut at another layer',
      withMeta(bytes, (m) => {
        m.cut = 'block_16_project_BN';
      }),
      /block_16_project_BN|average_pooling2d_1|starts at|input/,
    ],
    [
      '"none of these" centroids one float short',
      withMeta(bytes, (m) => {
        m.unknown.centroids = btoa(atob(m.unknown.centroids).slice(4));
      }),
      /saved classifier: its "none of these" data holds 10236 bytes, not the 10240 of 2 classes x 1280 features/,
    ],
    [
      '"none of these" centroids holding NaN',
      withMeta(bytes, (m) => {
        m.unknown.centroids = btoa('\0\0\xc0\x7f' + atob(m.unknown.centroids).slice(4));
      }),
      /saved classifier: its "none of these" data holds a non-finite value/,
    ],
    [
      '"none of these" centroids that are not base64',
      withMeta(bytes, (m) => {
        m.unknown.centroids = '%%%';
      }),
      /saved classifier: its "none of these" data is not base64/,
    ],
    [
      '"none of these" threshold Infinity',
      withMeta(bytes, (m) => {
        m.unknown.threshold = '1e999';
      }),
      /saved classifier: its "none of these" data has no finite threshold/,
    ],
  ];
  for (const [what, b, re] of cases) {
    let c = null;
    assert.throws(
      () => {
        c = Classifier.load(model, b);
        c.predict(good); // must not run with mismatched buffers
      },
      re,
      `saved model, ${what}: accepted`,
    );
    c?.dispose();
    assert.equal(model.cut, cut, `saved model, ${what}: a refused load moved the model's cut`);
    stillWorks(`saved model, ${what}`);
  }
});
