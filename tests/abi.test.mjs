// The C/JS interface (src/abi.h, read by wasm/abi.mjs): records written by member name in
// JS arrive in C's members, and C's come back by name. Each check goes through C doing
// something with the values (building an op, training), not just through memory, so a
// member that one side renames, drops, retypes or moves makes this fail.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadModule } from '../wasm/module.mjs';
import { EngineError } from '../wasm/errors.mjs';

const m = await loadModule({ threads: 1 });
const f32 = (x) => Math.fround(x);

test('an op descriptor written by name reads back member for member, and C used every member', () => {
  const net = m.ptr(m.x.tt_net_create(17, 13, 3));
  try {
    // conv2d, VALID, explicit padding: every member a distinct value where the op allows it.
    const d = {
      type: m.abi.value('op', 'conv2d'),
      in0: 0,
      in1: 0,
      kh: 5,
      kw: 3,
      sh: 4,
      sw: 2,
      same: 0,
      pt: 6,
      pb: 7,
      pl: 8,
      pr: 9,
      channels: 11,
      act: m.abi.value('act', 'relu6'),
      scale: 0.5,
      offset: 0.25,
    };
    const wn = 5 * 3 * 3 * 11,
      bn = 11;
    const idx = m.scoped((t) =>
      m.check(
        m.x.tt_net_add(
          net,
          t(m.putString('probe/conv')),
          t(m.struct('op_desc', d)),
          t(m.put(new Float32Array(wn).fill(0.01))),
          wn,
          t(m.put(new Float32Array(bn))),
          bn,
        ),
      ),
    );
    assert.equal(idx, 1);
    const op = m.op(net, 1);
    assert.deepEqual({ ...op.d }, d);
    assert.equal(op.name, 'probe/conv');
    // C's reading of the members: TensorFlow VALID output size from the padded input.
    const out = (n, k, s, a, b) => Math.floor((n + a + b - k) / s) + 1;
    assert.deepEqual([op.h, op.w, op.c], [out(17, 5, 4, 6, 7), out(13, 3, 2, 8, 9), 11]);
    assert.deepEqual([op.wn, op.bn], [wn, bn]);
    assert.deepEqual([...m.floats(op.wt, 3)], [f32(0.01), f32(0.01), f32(0.01)]);
    // A dropout op (the head's): only type, in0 and scale (its rate) set.
    const i2 = m.scoped((t) =>
      m.check(
        m.x.tt_net_add(
          net,
          t(m.putString('probe/dropout')),
          t(m.struct('op_desc', { type: m.abi.value('op', 'dropout'), in0: 1, scale: 0.3 })),
          0,
          0,
          0,
          0,
        ),
      ),
    );
    const drop = m.op(net, i2);
    assert.equal(m.abi.name('op', drop.d.type), 'dropout');
    assert.deepEqual([drop.d.in0, drop.d.scale, drop.h, drop.w, drop.c], [1, f32(0.3), op.h, op.w, op.c]);
  } finally {
    m.x.tt_net_free(net);
  }
});

test('a trainer config written by name is the one C trains with; C defaults read back by name', async () => {
  // C -> JS: tt_train_defaults fills the struct, JS reads it by member (src/train.c's values).
  const cfg = m.struct('train_cfg');
  m.x.tt_train_defaults(cfg);
  assert.deepEqual(
    { ...m.read('train_cfg', cfg) },
    {
      epochs: 30,
      batch: 16,
      optimizer: m.abi.value('optimizer', 'adamw'),
      lr: f32(1e-3),
      weight_decay: f32(1e-4),
      momentum: f32(0.9),
      warmup: f32(0.05),
      cosine: 1,
      label_smoothing: f32(0.1),
      balanced: 1,
      val_fraction: f32(0.2),
      patience: 8,
      seed: 1,
    },
  );
  // JS -> C: a config whose effects the progress record shows.
  const mine = {
    epochs: 3,
    batch: 5,
    optimizer: m.abi.value('optimizer', 'sgd'),
    lr: 0.0375,
    weight_decay: 0,
    momentum: 0.5,
    warmup: 0,
    cosine: 0,
    label_smoothing: 0,
    balanced: 0,
    val_fraction: 0.3,
    patience: 0,
    seed: 2 ** 40 + 7,
  };
  m.abi.write(m.x.memory, 'train_cfg', cfg, mine);
  assert.deepEqual(
    { ...m.read('train_cfg', cfg) },
    Object.fromEntries(Object.entries(mine).map(([k, v]) => [k, f32(v) === v || Number.isInteger(v) ? v : f32(v)])),
  );
  // 4 classes x 10 images of 8 features: 3 of each class (30%, stratified) held out for validation.
  const F = 8,
    N = 40,
    classes = 4;
  const net = m.ptr(m.x.tt_net_create(1, 1, F));
  const x = m.put(Float32Array.from({ length: N * F }, (_, i) => Math.sin(i * 1.7)));
  const y = m.putInts(Array.from({ length: N }, (_, i) => i % classes));
  const out = m.struct('progress');
  let tr = 0;
  try {
    m.scoped((t) => m.check(m.x.tt_net_add_dense(net, t(m.putString('probe/logits')), 0, classes, 0, 1)));
    tr = m.ptr(m.x.tt_trainer_new(net, cfg, classes, x, N, 1, y));
    let rc,
      epochsSeen = 0;
    do {
      rc = m.check(m.x.tt_trainer_run(tr, 100, out));
      epochsSeen += rc >= 1 ? 1 : 0;
    } while (rc !== 2);
    const p = m.read('progress', out);
    assert.equal(p.n_val, 12, 'val_fraction');
    assert.equal(p.n_train, 28);
    assert.equal(p.batches_per_epoch, Math.ceil(28 / 5), 'batch');
    assert.equal(epochsSeen, 3, 'epochs');
    assert.equal(p.lr, f32(0.0375), 'lr without warm-up or cosine decay');
    assert.equal(p.done, 1);
    assert.ok(p.val_acc >= 0 && p.val_acc <= 1 && Number.isFinite(p.train_loss));
  } finally {
    if (tr) m.x.tt_trainer_free(tr);
    m.x.tt_net_free(net);
    for (const p of [cfg, x, y, out]) m.free(p);
  }
});

test('a member or enum name the engine does not declare is an error naming what it has', () => {
  assert.throws(
    () => m.scoped((t) => t(m.struct('op_desc', { filters: 3 }))),
    (e) => e instanceof EngineError && /op_desc has no member 'filters' \(it has type, in0, .*channels/.test(e.message),
  );
  const p = m.struct('progress');
  try {
    assert.throws(() => m.read('progress', p).trainLoss, /progress has no member 'trainLoss'/);
  } finally {
    m.free(p);
  }
  assert.throws(() => m.abi.value('op', 'conv3d'), /the engine has no op 'conv3d' \(it has input, conv2d/);
  assert.equal(m.abi.name('act', 999), undefined);
});

test('every struct member lies inside its struct, without overlaps', () => {
  for (const [name, s] of Object.entries(m.abi.structs)) {
    let end = 0;
    for (const [member, [off, , bytes]] of Object.entries(s.members).sort((a, b) => a[1][0] - b[1][0])) {
      assert.ok(off >= end && off + bytes <= s.size, `${name}.${member} at ${off} (+${bytes}) of ${s.size}`);
      end = off + bytes;
    }
  }
  // the errors C returns, by name
  assert.deepEqual(Object.keys(m.abi.enums.error), ['ok', 'invalid', 'nomem', 'format', 'unsupported', 'state']);
});
