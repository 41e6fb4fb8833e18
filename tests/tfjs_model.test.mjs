// The tfjs parser (wasm/tfjs.mjs) against the two real zoo models, and against
// corrupted copies of them: every refusal must say what is wrong and where.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdtemp, readFile, rm, stat, truncate, unlink, writeFile, appendFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findOp, loadModelFiles, loadWeights, makeFetcher, parseModel } from '../wasm/tfjs.mjs';
import { createEngine } from '../wasm/engine.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const MID = join(root, 'models', 'mobilenet_v2_mid');
const V2 = join(root, 'models', 'mobilenet_v2');
const LABELS = ['Drawing', 'Hentai', 'Neutral', 'Porn', 'Sexy'];
const HUB =
  'StatefulPartitionedCall/sequential/keras_layer/StatefulPartitionedCall/StatefulPartitionedCall/StatefulPartitionedCall/predict/';
const STEM_W = `${HUB}MobilenetV2/Conv/Conv2D_weights`;

const readJson = async (path) => JSON.parse(await readFile(path, 'utf8'));
const countTypes = (ops) => ops.reduce((m, o) => ({ ...m, [o.type]: (m[o.type] ?? 0) + 1 }), {});
const clone = (x) => JSON.parse(JSON.stringify(x));
const manifestEntry = (json, name) => json.weightsManifest.flatMap((g) => g.weights).find((w) => w.name === name);

let midJson, v2Json, mid, v2;
const temps = [];

// A scratch copy of a built model directory, to corrupt
async function copyModel(dir) {
  const tmp = await mkdtemp(join(tmpdir(), 'tinytune-tfjs-'));
  temps.push(tmp);
  const json = await readJson(join(dir, 'model.json'));
  for (const f of ['model.json', ...json.weightsManifest.flatMap((g) => g.paths)]) await copyFile(join(dir, f), join(tmp, f));
  return tmp;
}

before(async () => {
  if (!existsSync(join(MID, 'model.json')) || !existsSync(join(V2, 'model.json'))) {
    const r = spawnSync(process.execPath, [join(root, 'models', 'build.mjs')], { encoding: 'utf8' });
    assert.equal(r.status, 0, `models/build.mjs failed:\n${r.stderr}`);
  }
  midJson = await readJson(join(MID, 'model.json'));
  v2Json = await readJson(join(V2, 'model.json'));
  mid = parseModel(clone(midJson));
  v2 = parseModel(clone(v2Json));
});

after(async () => {
  for (const t of temps) await rm(t, { recursive: true, force: true });
});

function weightRefs(parsed) {
  const refs = [];
  for (const op of parsed.ops) {
    const { kernel, bias, bn } = op.weights;
    refs.push(kernel, bias, ...(bn ? [bn.gamma, bn.beta, bn.mean, bn.variance] : []));
    for (const t of op.terms ?? []) refs.push(t.spec);
  }
  return refs.filter(Boolean);
}

function checkCommon(parsed, { featureSize, blocks }) {
  assert.deepEqual(parsed.inputShape, [224, 224, 3]);
  assert.equal(parsed.ops[0].type, 'input');
  assert.equal(parsed.labels, null);
  for (const [i, op] of parsed.ops.entries()) {
    assert.ok(
      op.inputs.every((j) => j < i),
      `op ${i} '${op.name}' reads a later op`,
    );
    assert.equal(op.channels, op.shape[2]);
  }
  const cut = parsed.ops[parsed.defaultCut];
  assert.equal(cut.type, 'avgpool');
  assert.deepEqual(cut.shape, [1, 1, featureSize]);
  // every weight used exactly once
  const refs = weightRefs(parsed).sort();
  assert.deepEqual(refs, [...parsed.specs.keys()].sort());
  // blocks: 17 in order, each contiguous
  const seq = parsed.ops
    .map((o) => o.block)
    .filter(Boolean)
    .filter((b, i, a) => b !== a[i - 1]);
  assert.deepEqual(seq, blocks);
}

describe('graph model mobilenet_v2_mid (MobileNetV2 1.4)', () => {
  test('op list', () => {
    assert.equal(mid.format, 'graph');
    assert.deepEqual(countTypes(mid.ops), { input: 1, affine: 1, conv2d: 35, depthwise: 17, add: 10, avgpool: 1, dense: 1, softmax: 1 });
    const convs = mid.ops.filter((o) => o.type === 'conv2d');
    assert.deepEqual(convs[0].kernel, [3, 3]);
    assert.deepEqual(convs[0].strides, [2, 2]);
    assert.equal(convs.filter((o) => o.kernel[0] === 1 && o.kernel[1] === 1).length, 34);
    assert.ok(mid.ops.filter((o) => o.type === 'depthwise').every((o) => o.act === 'relu6'));
    assert.equal(mid.ops[1].name, `${HUB}hub_input/Mul`);
    assert.deepEqual(mid.ops[1].aliases, [`${HUB}hub_input/Sub`]);
    assert.equal(mid.ops.at(-1).name, 'StatefulPartitionedCall/sequential/prediction/Softmax');
    assert.deepEqual(mid.ops.at(-1).aliases, ['Identity']);
    assert.deepEqual(mid.ops.at(-1).shape, [1, 1, 5]);
    assert.equal(findOp(mid, `${HUB}feature_vector/SpatialSqueeze`), mid.defaultCut);
    assert.equal(mid.ops.at(-2).weights.kernel, 'Func/StatefulPartitionedCall/input/_262');
  });
  test('shapes, weights and blocks', () => {
    checkCommon(mid, {
      featureSize: 1792,
      blocks: ['expanded_conv', ...Array.from({ length: 16 }, (_, i) => `expanded_conv_${i + 1}`)],
    });
    assert.equal(mid.ops[2].block, null); // stem
    assert.equal(mid.ops[mid.defaultCut - 1].block, null); // Conv_1
  });
});

describe('layers model mobilenet_v2 (MobileNetV2 1.0)', () => {
  test('op list', () => {
    assert.equal(v2.format, 'layers');
    assert.deepEqual(countTypes(v2.ops), { input: 1, conv2d: 35, depthwise: 17, add: 10, avgpool: 1, dense: 3, softmax: 1 });
    // all 52 batch norms folded, all 35 ReLU6 fused, no standalone act
    const weighted = v2.ops.filter((o) => o.type === 'conv2d' || o.type === 'depthwise');
    assert.ok(weighted.every((o) => o.weights.bn && o.weights.bn.epsilon === 1e-3 && o.weights.bias === null));
    assert.equal(v2.ops.filter((o) => o.act === 'relu6').length, 35);
    // the five ZeroPadding2D layers became pads of the following valid convs
    const padded = v2.ops.filter((o) => o.pads.some(Boolean));
    assert.deepEqual(
      padded.map((o) => o.name),
      ['Conv1', 'block_1_depthwise', 'block_3_depthwise', 'block_6_depthwise', 'block_13_depthwise'],
    );
    assert.ok(padded.every((o) => o.padding === 'valid' && o.pads.join() === '0,1,0,1'));
    assert.ok(v2.ops[0].aliases.includes('Conv1_pad'));
    assert.deepEqual(v2.ops[1].shape, [112, 112, 32]);
    assert.equal(v2.ops[0].name, 'input_1');
    // dense_3 names the probabilities, like Keras; the logits have their own name
    assert.equal(v2.ops.at(-1).name, 'dense_3/softmax');
    assert.equal(findOp(v2, 'dense_3'), v2.ops.length - 1);
    assert.equal(v2.ops[findOp(v2, 'dense_3/logits')].type, 'dense');
    assert.equal(v2.ops[findOp(v2, 'dense_1')].act, 'relu');
    assert.equal(findOp(v2, 'dropout_2'), findOp(v2, 'dense_1'));
    assert.equal(findOp(v2, 'flatten_1'), v2.defaultCut);
    assert.equal(findOp(v2, 'out_relu'), v2.defaultCut - 1);
  });
  test('shapes, weights and blocks', () => {
    checkCommon(v2, {
      featureSize: 1280,
      blocks: ['expanded_conv', ...Array.from({ length: 16 }, (_, i) => `block_${i + 1}`)],
    });
    assert.equal(v2.ops[findOp(v2, 'Conv_1')].block, null);
  });
});

describe('cards and index', () => {
  test('zoo.json and built cards', async () => {
    const zoo = await readJson(join(root, 'models', 'zoo.json'));
    const ids = ['mobilenet_v2_mid', 'mobilenet_v2', 'centernet_mnv3', 'mobilefacenet'];
    assert.deepEqual(
      zoo.models.map((m) => m.id),
      ids,
    );
    assert.deepEqual(
      zoo.models.filter((m) => m.default).map((m) => m.id),
      ['mobilenet_v2_mid'],
    );
    for (const m of zoo.models) assert.deepEqual(m.labels, m.cut ? null : LABELS); // a cut backbone has no head
    const index = await readJson(join(root, 'models', 'index.json'));
    assert.deepEqual(
      index.models.map((m) => m.id),
      ids,
    );
    // a cut graph ships only what the cut reads: its own weights file, no detection head
    const mnv3 = await readJson(join(root, 'models', 'centernet_mnv3', 'card.json'));
    assert.deepEqual(
      mnv3.files.map((f) => f.path),
      ['model.json', 'centernet_mnv3.bin'],
    );
    assert.equal(mnv3.feature.size, 480);
    const cut = await readJson(join(root, 'models', 'centernet_mnv3', 'model.json'));
    assert.ok(!cut.modelTopology.node.some((n) => /ResizeBilinear|TopKV2|ConcatV2/.test(n.op)));
    const card = await readJson(join(MID, 'card.json'));
    assert.equal(card.feature.size, 1792);
    assert.equal(card.files.find((f) => f.path === 'group1-shard1of2').bytes, (await stat(join(MID, 'group1-shard1of2'))).size);
  });
});

describe('loading weights', () => {
  test('totals match the shard files, progress ends at the total', async () => {
    for (const [dir, parsed] of [
      [MID, mid],
      [V2, v2],
    ]) {
      const sizes = await Promise.all(parsed.groups.flatMap((g) => g.paths).map((p) => stat(join(dir, p)).then((s) => s.size)));
      const total = sizes.reduce((a, b) => a + b, 0);
      assert.equal(
        parsed.groups.reduce((a, g) => a + g.byteLength, 0),
        total,
      );
      let last = -1;
      const bytes = await loadWeights(parsed.groups, makeFetcher(dir), (n, t) => {
        assert.equal(t, total);
        assert.ok(n >= last);
        last = n;
      });
      assert.equal(bytes.length, total);
      assert.equal(last, total);
    }
  });

  // (The decoding itself, C's tt_weights_decode against tfjs: tests/weights.test.mjs.)
  test('loadModelFiles reads the files; the engine resolves the [0,1] -> [-1,1] affine from them', async () => {
    const { parsed, weightBytes, json, card } = await loadModelFiles(MID);
    assert.equal(json.format, 'graph-model');
    assert.equal(card.id, 'mobilenet_v2_mid');
    assert.deepEqual(card.labels, LABELS);
    assert.equal(parsed.ops[1].type, 'affine');
    assert.equal(parsed.ops[1].scale, null); // a graph constant, until decoded
    const spec = parsed.specs.get(STEM_W);
    assert.ok(spec.offset + spec.byteLength <= weightBytes.length);
    const engine = await createEngine({ threads: 1 });
    const model = await engine.loadModel(MID);
    assert.deepEqual([model.parsed.ops[1].scale, model.parsed.ops[1].offset], [2, -1]);
    assert.deepEqual(model.layers[1].shape, [224, 224, 3]);
    model.dispose();
  });

  test('over http, with a 404 for a missing shard', async () => {
    const server = createServer(async (req, res) => {
      try {
        const data = await readFile(join(MID, decodeURIComponent(new URL(req.url, 'http://x').pathname).replace(/^\/m\//, '')));
        res.end(data);
      } catch {
        res.statusCode = 404;
        res.end();
      }
    });
    await new Promise((r) => server.listen(0, '127.0.0.1', r));
    const base = `http://127.0.0.1:${server.address().port}/m/`;
    try {
      const { parsed, card } = await loadModelFiles(`${base}model.json`);
      assert.equal(parsed.ops.length, 67);
      assert.equal(card.feature.size, 1792);
      await assert.rejects(makeFetcher(base)('group1-shard9of9'), {
        message: `cannot load model shard 'group1-shard9of9' from ${base}group1-shard9of9: 404 Not Found`,
      });
    } finally {
      server.close();
    }
  });
});

describe('refusals', () => {
  const bad = (mutate, source = midJson) => {
    const json = clone(source);
    mutate(json);
    return () => parseModel(json);
  };

  test('model.json that is not JSON', async () => {
    const dir = await copyModel(MID);
    await writeFile(join(dir, 'model.json'), '{"modelTopology": ');
    await assert.rejects(loadModelFiles(dir), /^EngineError: model\.json at .*model\.json is not valid JSON: /);
  });

  test('JSON without modelTopology', async () => {
    const dir = await copyModel(MID);
    await writeFile(join(dir, 'model.json'), JSON.stringify({ weightsManifest: [] }));
    await assert.rejects(loadModelFiles(dir), { message: "not a tfjs model: model.json has no 'modelTopology'" });
    assert.throws(() => parseModel([1, 2]), /not a tfjs model/);
  });

  test('unknown op and unknown layer class', () => {
    assert.throws(
      bad((j) => {
        j.modelTopology.node.find((n) => n.op === 'AvgPool').op = 'ResizeNearestNeighbor';
      }),
      { message: `unsupported op 'ResizeNearestNeighbor' at node '${HUB}MobilenetV2/Logits/AvgPool'` },
    );
    assert.throws(
      bad((j) => {
        j.modelTopology.model_config.config.layers[1].class_name = 'Cropping2D';
      }, v2Json),
      { message: "unsupported layer class 'Cropping2D' at layer 'Conv1_pad'" },
    );
  });

  test('conv kernel shape inconsistent with its input', () => {
    assert.throws(
      bad((j) => {
        manifestEntry(j, STEM_W).shape = [3, 3, 4, 48];
      }),
      { message: `conv2d '${HUB}MobilenetV2/Conv/Relu6': kernel '${STEM_W}' has shape [3,3,4,48] but the input has 3 channels` },
    );
    assert.throws(
      bad((j) => {
        manifestEntry(j, 'Conv1/kernel').shape = [3, 3, 3, 16];
      }, v2Json),
      { message: "conv2d 'Conv1': kernel 'Conv1/kernel' has shape [3,3,3,16] but filters is 32" },
    );
    assert.throws(
      bad((j) => {
        manifestEntry(j, 'bn_Conv1/gamma').shape = [16];
      }, v2Json),
      { message: "bn 'bn_Conv1': weight 'bn_Conv1/gamma' has shape [16], expected [32]" },
    );
  });

  test('add with different input shapes', () => {
    // make block 2 project to 40 channels: its residual add no longer matches
    assert.throws(
      bad((j) => {
        manifestEntry(j, 'block_2_project/kernel').shape = [1, 1, 144, 40];
        for (const p of ['gamma', 'beta', 'moving_mean', 'moving_variance']) manifestEntry(j, `block_2_project_BN/${p}`).shape = [40];
        j.modelTopology.model_config.config.layers.find((l) => l.name === 'block_2_project').config.filters = 40;
      }, v2Json),
      { message: "add 'block_2_add': input shapes differ: 'block_1_project_BN' [56,56,24] vs 'block_2_project_BN' [56,56,40]" },
    );
  });

  test('bad dims, dtypes and sizes in the manifest', () => {
    assert.throws(
      bad((j) => {
        manifestEntry(j, STEM_W).shape = [-3, 3, 3, 48];
      }),
      { message: `weight '${STEM_W}' has invalid shape [-3,3,3,48]: dims must be positive integers` },
    );
    assert.throws(
      bad((j) => {
        manifestEntry(j, STEM_W).shape = [3, 3, 3, 0];
      }),
      /has invalid shape \[3,3,3,0\]/,
    );
    assert.throws(
      bad((j) => {
        manifestEntry(j, STEM_W).shape = [3, 3, 1.5, 48];
      }),
      /has invalid shape/,
    );
    assert.throws(
      bad((j) => {
        manifestEntry(j, STEM_W).shape = [65536, 65536];
      }),
      /more than the limit of 2\^28/,
    );
    assert.throws(
      bad((j) => {
        const w = manifestEntry(j, STEM_W);
        w.dtype = 'string';
        delete w.quantization;
      }),
      { message: `weight '${STEM_W}' has unsupported dtype 'string'` },
    );
    assert.throws(
      bad((j) => {
        manifestEntry(j, STEM_W).dtype = 'complex64';
      }),
      /unsupported dtype 'complex64'/,
    );
  });

  test('weights missing from or unused by the model', () => {
    const drop = (name) => (j) => {
      for (const g of j.weightsManifest) g.weights = g.weights.filter((w) => w.name !== name);
    };
    assert.throws(bad(drop(STEM_W)), {
      message: `weight '${STEM_W}' referenced by node '${HUB}MobilenetV2/Conv/Relu6' is missing from the weights manifest`,
    });
    assert.throws(bad(drop('Conv1/kernel'), v2Json), {
      message: "layer 'Conv1' needs weight 'Conv1/kernel', which is missing from the weights manifest",
    });
    const extra = (j) => j.weightsManifest[0].weights.push({ name: 'stray', shape: [4], dtype: 'float32' });
    assert.throws(bad(extra), { message: "weight 'stray' in the manifest is not used by the graph" });
    assert.throws(bad(extra, v2Json), { message: "weight 'stray' in the manifest is not used by the model" });
  });

  test('graph node input that does not exist', () => {
    assert.throws(
      bad((j) => {
        j.modelTopology.node.find((n) => n.op === 'Softmax').input = ['nowhere'];
      }),
      { message: "node 'StatefulPartitionedCall/sequential/prediction/Softmax' has input 'nowhere', which does not exist" },
    );
    assert.throws(
      bad((j) => {
        j.modelTopology.model_config.config.layers[1].inbound_nodes = [[['nowhere', 0, 0, {}]]];
      }, v2Json),
      { message: "node 'Conv1_pad' has input 'nowhere', which does not exist" },
    );
  });

  test('unsupported attributes', () => {
    const node = (j, op) => j.modelTopology.node.find((n) => n.op === op);
    const layer = (j, name) => j.modelTopology.model_config.config.layers.find((l) => l.name === name).config;
    assert.throws(
      bad((j) => {
        node(j, '_FusedConv2D').attr.data_format.s = btoa('NCHW');
      }),
      /unsupported data_format 'NCHW' at node/,
    );
    assert.throws(
      bad((j) => {
        node(j, 'FusedDepthwiseConv2dNative').attr.dilations.list.i = ['1', '2', '2', '1'];
      }),
      /unsupported dilations \[1,2,2,1\] at node/,
    );
    assert.throws(
      bad((j) => {
        node(j, '_FusedConv2D').attr.fused_ops.list.s.push(btoa('Elu'));
      }),
      /unsupported fused op 'Elu'/,
    );
    assert.throws(
      bad((j) => {
        layer(j, 'block_1_depthwise').depth_multiplier = 2;
      }, v2Json),
      { message: "unsupported depth_multiplier 2 in layer 'block_1_depthwise' (only 1)" },
    );
    assert.throws(
      bad((j) => {
        layer(j, 'Conv1').groups = 2;
      }, v2Json),
      /unsupported groups 2 in layer 'Conv1'/,
    );
    assert.throws(
      bad((j) => {
        layer(j, 'Conv1').data_format = 'channels_first';
      }, v2Json),
      /unsupported data_format 'channels_first' in layer 'Conv1'/,
    );
    assert.throws(
      bad((j) => {
        layer(j, 'Conv1').dilation_rate = [2, 2];
      }, v2Json),
      /unsupported dilation_rate \[2,2\] in layer 'Conv1'/,
    );
    assert.throws(
      bad((j) => {
        layer(j, 'Conv1_relu').max_value = 5;
      }, v2Json),
      { message: "unsupported ReLU max_value 5 in layer 'Conv1_relu' (only 6 or none)" },
    );
  });

  test('a ReLU without max_value becomes relu; one that cannot fuse stays an act op', () => {
    const j = clone(v2Json);
    j.modelTopology.model_config.config.layers.find((l) => l.name === 'Conv1_relu').config.max_value = null;
    assert.equal(parseModel(j).ops[1].act, 'relu');
    // a ReLU after an add has nothing to fuse into
    const k = clone(v2Json);
    const layers = k.modelTopology.model_config.config.layers;
    const i = layers.findIndex((l) => l.name === 'block_2_add');
    layers.splice(i + 1, 0, {
      name: 'extra_relu',
      class_name: 'ReLU',
      config: { name: 'extra_relu', max_value: 6 },
      inbound_nodes: [[['block_2_add', 0, 0, {}]]],
    });
    layers.find((l) => l.name === 'block_3_expand').inbound_nodes = [[['extra_relu', 0, 0, {}]]];
    const p = parseModel(k);
    const act = p.ops[findOp(p, 'extra_relu')];
    assert.equal(act.type, 'act');
    assert.equal(act.act, 'relu6');
  });

  test('a model without card.json loads with card null', async () => {
    const { card, parsed } = await loadModelFiles(await copyModel(V2));
    assert.equal(card, null);
    assert.equal(parsed.ops.length, 68);
  });

  test('a missing shard file', async () => {
    const dir = await copyModel(MID);
    await unlink(join(dir, 'group1-shard2of2'));
    await assert.rejects(loadModelFiles(dir), {
      message: `cannot load model shard 'group1-shard2of2' from ${join(dir, 'group1-shard2of2')}: file not found (ENOENT)`,
    });
  });

  test('a shard truncated by 1 byte, or too long', async () => {
    const dir = await copyModel(MID);
    const last = join(dir, 'group1-shard2of2');
    const size = (await stat(last)).size;
    const fmt = (n) => n.toLocaleString('en-US').replace(/,/g, ' ');
    await truncate(last, size - 1);
    await assert.rejects(loadModelFiles(dir), {
      message: `weights shard group1-shard2of2 is truncated: expected ${fmt(size)} bytes, got ${fmt(size - 1)}`,
    });
    await truncate(join(dir, 'group1-shard1of2'), 4194303);
    await assert.rejects(loadModelFiles(dir), {
      message: 'weights shard group1-shard1of2 is truncated: expected 4 194 304 bytes, got 4 194 303',
    });

    const dir2 = await copyModel(V2);
    await appendFile(join(dir2, 'group1-shard1of1'), Buffer.from([0]));
    await assert.rejects(loadModelFiles(dir2), {
      message: 'weights shard group1-shard1of1 is too long: expected 2 619 461 bytes, got 2 619 462',
    });
  });

  test('a custom shard layout is accepted; a short one is blamed on its group', async () => {
    const groups = [{ paths: ['a', 'b'], byteLength: 10 }];
    const from = (sizes) => async (p) => new Uint8Array(sizes[p]);
    assert.equal((await loadWeights(groups, from({ a: 6, b: 4 }))).length, 10);
    await assert.rejects(loadWeights(groups, from({ a: 6, b: 2 })), {
      message: 'weights group 1 (a, b) is truncated: expected 10 bytes in total, got 8',
    });
    await assert.rejects(loadWeights(groups, from({ a: 12, b: 0 })), {
      message: 'weights group 1 (a, b) is too long: expected 10 bytes in total, got at least 12',
    });
  });

  test('batch norm or padding that cannot be fused', () => {
    const layers = (j) => j.modelTopology.model_config.config.layers;
    assert.throws(
      bad((j) => {
        layers(j).find((l) => l.name === 'block_1_expand_BN').inbound_nodes = [[['expanded_conv_project_BN', 0, 0, {}]]];
      }, v2Json),
      /^EngineError: bn 'block_1_expand_BN' cannot be folded into the op before it/,
    );
    assert.throws(
      bad((j) => {
        layers(j).find((l) => l.name === 'block_1_depthwise').config.padding = 'same';
      }, v2Json),
      { message: "pad 'block_1_pad' is not followed only by 'valid' convolutions; standalone padding is not supported" },
    );
  });

  test('a fetcher returning something else', async () => {
    await assert.rejects(
      loadWeights(mid.groups, async () => 'nope'),
      { message: "fetchShard('group1-shard1of2') returned string; expected an ArrayBuffer or Uint8Array" },
    );
  });
});
