// Fine-tuning on real images: accuracy against the Teachable Machine recipe, fine-tuning
// backbone blocks against head-only, save/reload/export round trips, determinism, bad input.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { createEngine } from '../wasm/engine.mjs';
import { Classifier, concatFloats } from '../wasm/transfer.mjs';
import { modelDir, referenceTf, digitSet, textureSet, maxAbsDiff, teachableMachine } from './helpers.mjs';

let engine, small;
before(async () => {
  engine = await createEngine();
  small = await engine.loadModel(modelDir('mobilenet_v2'));
});

const accuracy = (c, set) => set.filter((s) => c.predict(s.pixels, 1)[0].label === s.label).length / set.length;

test('head-only training is at least as accurate as the Teachable Machine recipe on held-out digits', async () => {
  const tf = await referenceTf();
  const train = digitSet({ count: 15 }),
    held = digitSet({ first: 200, count: 20 });
  const labels = [...new Set(train.map((s) => s.label))];
  // Digits are not mirror images of each other: flips off, as a user would set it.
  const c = new Classifier(small, { labels, blocks: 0, augment: { flip: false } });
  for (const s of train) assert.ok(c.addImage(s.pixels, s.label));
  const t0 = performance.now();
  const report = await c.fit({ epochs: 50, validationFraction: 0, patience: 0 });
  const ourSeconds = (performance.now() - t0) / 1000;
  const ours = accuracy(c, held);

  // The Teachable Machine recipe (helpers.mjs) on the same backbone's features (view 0 of
  // each image is the plain one).
  const F = small.layers[small.cut].shape[2];
  const t = await teachableMachine(
    tf,
    concatFloats(c.images.map((im) => im.data.subarray(0, F))),
    c.images.map((im) => im.label),
    labels.length,
    F,
    7,
  );
  const pred = t.predict(concatFloats(held.map((s) => small.embed(s.pixels))));
  t.dispose();
  const tm = held.filter((s, i) => labels[pred[i]] === s.label).length / held.length,
    tmSeconds = t.seconds;
  console.log(
    `# head-only on ${held.length} held-out digits: tinytune ${ours.toFixed(3)} (${ourSeconds.toFixed(2)} s for 50 epochs, ` +
      `${report.views} views/image), Teachable Machine recipe in tfjs ${tm.toFixed(3)} (${tmSeconds.toFixed(2)} s)`,
  );
  assert.ok(ours >= tm, `tinytune ${ours} < Teachable Machine recipe ${tm}`);
  assert.ok(ours > 0.6, `accuracy ${ours} is too low to mean anything`);
  c.dispose();
});

test('fine-tuning the last 2 blocks with augmentation beats head-only on small, shifted digits', async () => {
  const digits = [0, 1, 2, 3, 4];
  const train = digitSet({ digits, count: 16, shift: true }),
    held = digitSet({ digits, first: 300, count: 20, shift: true });
  const labels = digits.map(String);
  const result = {};
  for (const blocks of [0, 2]) {
    const c = new Classifier(small, { labels, blocks, views: 4, augment: { flip: false } });
    for (const s of train) c.addImage(s.pixels, s.label);
    const r = await c.fit({ epochs: blocks ? 20 : 40, validationFraction: 0, patience: 0 });
    result[blocks] = { acc: accuracy(c, held), perEpoch: r.history.reduce((a, e) => a + e.seconds, 0) / r.history.length };
    c.dispose();
  }
  console.log(
    `# shifted digits, ${held.length} held out: K=0 ${result[0].acc.toFixed(3)} (${(result[0].perEpoch * 1000).toFixed(1)} ms/epoch), ` +
      `K=2 ${result[2].acc.toFixed(3)} (${(result[2].perEpoch * 1000).toFixed(0)} ms/epoch, ${train.length} images x 4 views)`,
  );
  assert.ok(result[2].acc >= result[0].acc + 0.05, `K=2 ${result[2].acc} does not beat K=0 ${result[0].acc}`);
});

test('blocks start from a trained head (warm start): their first epoch already fits the data', async () => {
  const digits = [0, 1, 2, 3, 4];
  const train = digitSet({ digits, count: 12, shift: true });
  const first = {};
  for (const warmStart of [true, false]) {
    const c = new Classifier(small, { labels: digits.map(String), blocks: 2, views: 2 });
    for (const s of train) c.addImage(s.pixels, s.label);
    const r = await c.fit({ epochs: 6, validationFraction: 0, patience: 0, warmStart });
    // Warm: 6 epochs of a head alone, then the blocks' 6; cold: the blocks' 6 only.
    assert.equal(r.history.length, warmStart ? 12 : 6);
    assert.equal(r.blocks, 2, 'the model trained is the 2 blocks asked for, not the head that seeded them');
    first[warmStart] = r.history.at(-6);
    c.dispose();
  }
  assert.ok(
    first.true.trainLoss < first.false.trainLoss - 0.2,
    `the blocks' first epoch: loss ${first.true.trainLoss} from a trained head, ${first.false.trainLoss} from a fresh one`,
  );
});

async function trainTextures(seed, blocks = 1) {
  const set = textureSet(engine, { perClass: 6, heldOut: 3 });
  const c = new Classifier(small, { labels: set.labels, blocks, views: 2, seed });
  for (const s of set.train) c.addImage(s.pixels, s.label);
  await c.fit({ epochs: 4, validationFraction: 0.34, seed });
  return { c, set };
}

test('a repeated seeded run gives identical weights; save and reload give identical predictions', async () => {
  const a = await trainTextures(5),
    b = await trainTextures(5),
    other = await trainTextures(6);
  const wa = a.c.ops(),
    wb = b.c.ops(),
    wo = other.c.ops();
  assert.ok(wa.length > 3);
  wa.forEach((op, i) => {
    assert.deepEqual(op.weights, wb[i].weights, `op ${op.name} weights differ between identical seeded runs`);
    assert.deepEqual(op.bias, wb[i].bias);
  });
  assert.ok(
    wa.some((op, i) => maxAbsDiff(op.weights, wo[i].weights) > 0),
    'another seed trained the same weights',
  );

  const file = a.c.save();
  const back = Classifier.load(small, file);
  assert.deepEqual(back.labels, a.c.labels);
  for (const s of a.set.test) assert.deepEqual(back.predict(s.pixels), a.c.predict(s.pixels));
  const mid = await engine.loadModel(modelDir('mobilenet_v2_mid'));
  assert.throws(() => Classifier.load(mid, file), /trained on backbone 'mobilenet_v2'.*loaded backbone is 'mobilenet_v2_mid'/);
  mid.dispose();
  for (const x of [a, b, other]) x.c.dispose();
  back.dispose();
});

test('the tfjs export opens with tf.loadLayersModel and gives the same probabilities', async () => {
  const tf = await referenceTf();
  for (const blocks of [0, 2]) {
    const { c, set } = await trainTextures(3, blocks);
    const { modelJson, weightData } = c.exportTfjs();
    const json = JSON.parse(JSON.stringify(modelJson)); // it must survive being written as JSON
    const lm = await tf.loadLayersModel(
      tf.io.fromMemory({ modelTopology: json.modelTopology, weightSpecs: json.weightsManifest[0].weights, weightData: weightData.buffer }),
    );
    for (const s of set.test) {
      const act = small.embedViews(s.pixels, { upto: c.boundary });
      const ours = c.predictActivation(act);
      const shape = lm.inputs[0].shape.slice(1);
      const ref = lm.predict(tf.tensor(act, [1, ...shape])).dataSync();
      assert.ok(maxAbsDiff(ours, ref) < 1e-5, `K=${blocks}: export differs by ${maxAbsDiff(ours, ref)}`);
    }
    c.dispose();
  }
});

test('bad input: empty class, one class, unreadable images, NaN loss, unknown file version', async () => {
  const set = textureSet(engine, { perClass: 4, heldOut: 1 });
  const one = new Classifier(small, { labels: ['brick'], views: 1 });
  one.addImage(set.train[0].pixels, 'brick');
  await assert.rejects(one.fit(), /at least 2 classes; there is 1/);

  const c = new Classifier(small, { labels: ['brick', 'grass', 'empty'], views: 1 });
  for (const s of set.train.filter((s) => s.label !== 'gravel')) c.addImage(s.pixels, s.label);
  await assert.rejects(c.fit(), /class 'empty' has no images/);

  const d = new Classifier(small, { labels: set.labels, views: 1 });
  set.train.forEach((s, i) => {
    d.addImage(s.pixels, s.label);
    if (i === 3) {
      assert.equal(d.addImage(new TextEncoder().encode('<svg xmlns="http://www.w3.org/2000/svg"></svg>'), s.label, 'drawing.jpg'), false);
      assert.equal(d.addImage(new Uint8Array(0), s.label, 'empty.png'), false);
    }
  });
  assert.deepEqual(
    d.skipped.map((x) => x.name),
    ['drawing.jpg', 'empty.png'],
  );
  assert.match(d.skipped[0].reason, /not an image/);
  assert.match(d.skipped[1].reason, /empty/);
  const r = await d.fit({ epochs: 2, validationFraction: 0 });
  assert.equal(r.skipped.length, 2);
  assert.equal(r.nTrain, set.train.length);

  // An absurd learning rate drives the loss to infinity: training stops with a clear
  // message and the weights are those of the best epoch (still finite).
  const before = d.predict(set.test[0].pixels);
  await assert.rejects(d.fit({ epochs: 3, learningRate: 1e30, warmup: 0, validationFraction: 0 }), (e) => {
    assert.match(e.message, /loss became (NaN|infinite).*best weights so far are kept/);
    assert.ok(e.report);
    return true;
  });
  const after = d.predict(set.test[0].pixels);
  assert.ok(
    after.every((p) => Number.isFinite(p.probability)),
    'weights are not finite after the NaN stop',
  );
  // still a distribution over every class, as before the failed fit
  assert.deepEqual(after.map((p) => p.label).sort(), before.map((p) => p.label).sort());
  assert.ok(Math.abs(after.reduce((a, p) => a + p.probability, 0) - 1) < 1e-5, 'probabilities do not sum to 1');

  const file = d.save();
  const v2 = file.slice();
  v2[8] = 2; // the u32 version after the 8-byte magic
  assert.throws(() => Classifier.load(small, v2), /file version 2; this engine reads version 1/);
  const flipped = file.slice();
  flipped[flipped.length >> 1] ^= 0x40;
  assert.throws(() => Classifier.load(small, flipped), /corrupted \(checksum mismatch\)/);
  assert.throws(() => Classifier.load(small, new TextEncoder().encode('{"not":"a model"}')), /not a tinytune model file/);
  for (const x of [one, c, d]) x.dispose();
});
