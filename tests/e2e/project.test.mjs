// The project file container (web/project.mjs pack/unpack), in Node: a round trip keeps
// every byte, and damaged or foreign files are refused with a clear message.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pack, unpack, ProjectFileError } from '../../web/project.mjs';

const bytes = (n, seed) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 255);
// a stand-in classifier: the .ttm header the reader checks (magic, file version 1), then filler
const ttm = (n, seed) => {
  const b = bytes(n, seed);
  b.set(new TextEncoder().encode('TTMODEL\0'), 0);
  b.set([1, 0, 0, 0], 8);
  return b;
};
const same = async (blob, arr) => assert.deepEqual(new Uint8Array(await blob.arrayBuffer()), arr);

function sample() {
  return {
    settings: { modelId: 'mobilenet_v2', epochs: 12, augment: true, views: 4, blocks: 0, cut: '', learningRate: 0.001 },
    classes: [
      { id: 'a', name: 'cats' },
      { id: 'b', name: 'dogs ünïcode' },
    ],
    images: [
      {
        id: '1',
        classId: 'a',
        name: 'one.png',
        type: 'image/png',
        added: 1,
        blob: new Blob([bytes(1000, 1)], { type: 'image/png' }),
        thumb: new Blob([bytes(50, 2)], { type: 'image/jpeg' }),
      },
      { id: '2', classId: 'b', name: 'two.jpg', type: 'image/jpeg', added: 2, blob: new Blob([bytes(3000, 3)]), thumb: null },
      { id: '3', classId: 'gone', name: 'orphan.png', type: 'image/png', added: 3, blob: new Blob([bytes(10, 4)]) },
    ],
    model: { backbone: 'mobilenet_v2', labels: ['cats', 'dogs ünïcode'], saved: 5, report: { validationAccuracy: 1 }, bytes: ttm(777, 5) },
  };
}

test('a project round-trips through one file, byte for byte', async () => {
  const p = sample();
  const file = await pack(p);
  assert.equal(file.type, 'application/x-tinytune-project');
  const prefix = new Uint8Array(await file.slice(0, 8).arrayBuffer());
  assert.equal(new TextDecoder().decode(prefix), 'TTPROJ02');
  const back = await unpack(new Blob([await file.arrayBuffer()]));
  assert.deepEqual(back.settings, p.settings);
  assert.deepEqual(back.classes, p.classes);
  assert.equal(back.images.length, 2, 'an image of a class that no longer exists is not exported');
  assert.deepEqual(
    back.images.map((i) => [i.id, i.classId, i.name, i.type, i.added]),
    [
      ['1', 'a', 'one.png', 'image/png', 1],
      ['2', 'b', 'two.jpg', 'image/jpeg', 2],
    ],
  );
  await same(back.images[0].blob, bytes(1000, 1));
  await same(back.images[0].thumb, bytes(50, 2));
  assert.equal(back.images[0].thumb.type, 'image/jpeg');
  await same(back.images[1].blob, bytes(3000, 3));
  assert.equal(back.images[1].thumb, null);
  assert.deepEqual(
    [back.model.backbone, back.model.labels, back.model.saved, back.model.report],
    ['mobilenet_v2', ['cats', 'dogs ünïcode'], 5, { validationAccuracy: 1 }],
  );
  await same(back.model.bytes, ttm(777, 5));
});

test('a project without a model or images packs too', async () => {
  const back = await unpack(await pack({ settings: {}, classes: [{ id: 'x', name: 'only' }], images: [], model: null }));
  assert.deepEqual(back.classes, [{ id: 'x', name: 'only' }]);
  assert.deepEqual(back.images, []);
  assert.equal(back.model, null);
});

test('foreign, truncated and damaged files are refused with a clear message', async () => {
  const good = new Uint8Array(await (await pack(sample())).arrayBuffer());
  const named = (data, name) => Object.assign(new Blob([data]), { name });
  await assert.rejects(
    unpack(named(new TextEncoder().encode('just some text, long enough'), 'notes.txt')),
    (e) => e instanceof ProjectFileError && /'notes.txt' is not a tinytune project file/.test(e.message),
  );
  await assert.rejects(unpack(named(new Uint8Array(5), 'tiny.ttproject')), /'tiny.ttproject' is not a tinytune project \(too short\)/);
  await assert.rejects(
    unpack(named(good.slice(0, good.length - 100), 'cut.ttproject')),
    /'cut.ttproject' is truncated: \d+ of \d+ data bytes present/,
  );
  await assert.rejects(unpack(named(good.slice(0, 40), 'head.ttproject')), /truncated: its header runs past the end/);
  const bad = good.slice();
  bad[16] = 0x20;
  bad[17] = 0x7b; // breaks the JSON (and its checksum)
  bad.set(new TextEncoder().encode('!!'), 18);
  await assert.rejects(unpack(named(bad, 'bad.ttproject')), /'bad.ttproject' is damaged: its header does not match its checksum/);
});
