// The project file (.ttproject, web/project.mjs) as an untrusted input and as a format
// that must keep opening: the first release's files (tests/fixtures/project/v1.ttproject,
// a real project with a trained classifier) open unchanged after the format moved to
// version 2; hostile files get the exact messages README lists; and a seeded mutation run
// over real project files finds no input that makes the reader throw anything but a
// ProjectFileError, or accept a changed version-2 file.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { pack, unpack, crc32, ProjectFileError, PROJECT_LIMITS } from '../web/project.mjs';
import { createEngine } from '../wasm/engine.mjs';
import { Classifier } from '../wasm/transfer.mjs';
import { ROOT, modelDir, seeded } from './helpers.mjs';

const V1 = new Uint8Array(fs.readFileSync(path.join(ROOT, 'tests/fixtures/project/v1.ttproject')));
const named = (data, name = 'p.ttproject') => Object.assign(new Blob([data]), { name });
const blobBytes = async (b) => new Uint8Array(await b.arrayBuffer());
let v2; // the v1 fixture, opened and saved again by this reader

before(async () => {
  v2 = await blobBytes(await pack(await unpack(named(V1))));
});

test('a project saved by the first release (file version 1) opens: classes, images, model', async () => {
  const p = await unpack(named(V1, 'v1.ttproject'));
  assert.deepEqual(p.classes, [
    { id: 'c-brick', name: 'brick' },
    { id: 'c-grass', name: 'grass' },
  ]);
  assert.deepEqual(p.settings, { modelId: 'mobilenet_v2', cut: '', blocks: 0, epochs: 8, learningRate: null, augment: false, views: 1 });
  assert.deepEqual(
    p.images.map((im) => [im.name, im.classId, im.type, !!im.thumb]),
    [
      ['brick_0.png', 'c-brick', 'image/png', true],
      ['brick_1.png', 'c-brick', 'image/png', false],
      ['brick_2.png', 'c-brick', 'image/png', false],
      ['grass_0.png', 'c-grass', 'image/png', true],
      ['grass_1.png', 'c-grass', 'image/png', false],
      ['grass_2.png', 'c-grass', 'image/png', false],
    ],
  );
  const engine = await createEngine({ threads: 1 });
  const model = await engine.loadModel(modelDir('mobilenet_v2'));
  for (const im of p.images) assert.deepEqual(engine.decodeImage(await blobBytes(im.blob)).width, 48, im.name);
  // its classifier loads and tells its own training images apart
  const c = Classifier.load(model, await blobBytes(p.model.bytes));
  assert.deepEqual(c.labels, ['brick', 'grass']);
  for (const im of p.images) {
    const [top] = c.predict(await blobBytes(im.blob), 1);
    assert.equal(top.label, im.classId.slice(2), `${im.name} predicted as ${top.label}`);
  }
  c.dispose?.();
  model.dispose();
  // saved again (version 2) it holds the same bytes
  const again = await unpack(named(v2));
  assert.equal(new TextDecoder().decode(v2.subarray(0, 8)), 'TTPROJ02');
  assert.deepEqual(again.classes, p.classes);
  assert.deepEqual(again.settings, p.settings);
  for (const [i, im] of again.images.entries()) assert.deepEqual(await blobBytes(im.blob), await blobBytes(p.images[i].blob));
  assert.deepEqual(await blobBytes(again.model.bytes), await blobBytes(p.model.bytes));
});

/** A version-2 file with its header edited (checksums recomputed, so only the edit is wrong). */
function withHeader(edit, { data = null, rawText = null } = {}) {
  const hlen = new DataView(v2.buffer).getUint32(8, true);
  const header = JSON.parse(new TextDecoder().decode(v2.subarray(16, 16 + hlen)));
  let body = data ?? v2.subarray(16 + hlen);
  edit(header);
  if (data) {
    header.dataBytes = data.length;
    header.dataCrc32 = crc32(data);
  }
  const json = new TextEncoder().encode(rawText ?? JSON.stringify(header));
  const prefix = new Uint8Array(16);
  prefix.set(v2.subarray(0, 8));
  new DataView(prefix.buffer).setUint32(8, json.length, true);
  new DataView(prefix.buffer).setUint32(12, crc32(json), true);
  const out = new Uint8Array(16 + json.length + body.length);
  out.set(prefix);
  out.set(json, 16);
  out.set(body, 16 + json.length);
  return out;
}

async function refused(bytes, message, name = 'p.ttproject') {
  await assert.rejects(unpack(named(bytes, name)), (e) => {
    assert.ok(e instanceof ProjectFileError, `${e.name}: ${e.message}`);
    assert.equal(e.message, message);
    return true;
  });
}

test('hostile project files: each refused with its exact message', async () => {
  const hlen = new DataView(v2.buffer).getUint32(8, true);
  await refused(
    v2.slice(0, v2.length - 1000),
    `'p.ttproject' is truncated: ${v2.length - 1000 - 16 - hlen} of ${v2.length - 16 - hlen} data bytes present`,
  );
  await refused(v2.slice(0, 100), "'p.ttproject' is truncated: its header runs past the end of the file");
  const flipData = v2.slice();
  flipData[v2.length - 5000] ^= 0x10;
  await refused(flipData, "'p.ttproject' is damaged: its data does not match its checksum (a changed byte, or an incomplete copy?)");
  const flipHeader = v2.slice();
  flipHeader[40] ^= 0x01;
  await refused(flipHeader, "'p.ttproject' is damaged: its header does not match its checksum (a changed byte?)");
  const bigHeader = v2.slice();
  new DataView(bigHeader.buffer).setUint32(8, 1e9, true);
  await refused(bigHeader, "'p.ttproject' is damaged: its header claims 1 000 000 000 bytes, more than the limit of 67 108 864");
  const many = withHeader((h) => {
    h.images = Array.from({ length: PROJECT_LIMITS.images + 1 }, (_, i) => ({ ...h.images[0], id: `x${i}` }));
  });
  await refused(many, "'p.ttproject' declares 20 001 images; the limit is 20 000");
  await refused(
    withHeader((h) => {
      h.images[1].data.length = 2 ** 30;
    }),
    "'p.ttproject' is refused: image 2 ('brick_1.png') is 1 073 741 824 bytes; the limit is 67 108 864 (64 MiB)",
  );
  await refused(
    withHeader((h) => {
      h.images[1].data.offset = h.dataBytes;
    }),
    "'p.ttproject' is damaged: image 2 ('brick_1.png') lies outside the file's data",
  );
  await refused(
    withHeader(() => {}, { rawText: `{"format":"tinytune-project","version":2,"settings":${'['.repeat(100000)}${']'.repeat(100000)}}` }),
    "'p.ttproject' has a damaged header: JSON nested more than 32 levels deep",
  );
  const newer = v2.slice();
  newer.set(new TextEncoder().encode('TTPROJ03'), 0);
  await refused(newer, "'p.ttproject' is a version 3 project file; this page reads versions 1 and 2 (it was made by a newer tinytune)");
  // a .ttm from a newer engine inside the project (version 2 in its header)
  const hdr = JSON.parse(new TextDecoder().decode(v2.subarray(16, 16 + hlen)));
  const data = v2.slice(16 + hlen);
  new DataView(data.buffer).setUint32(hdr.model.data.offset + 8, 2, true);
  await refused(
    withHeader(() => {}, { data }),
    "'p.ttproject' holds a model saved by a newer tinytune (model file version 2; this page reads version 1)",
  );
  await refused(new Uint8Array([...v2, 0, 0]), "'p.ttproject' is damaged: 2 bytes follow its data");
});

// Mutations of real project files (the v1 fixture and its version-2 save): flipped,
// overwritten, inserted and deleted bytes, cuts, and header numbers swapped for hostile
// values. Every mutant must be refused with a ProjectFileError or (version 1, which has
// no checksums) read into a project whose every blob lies inside the file; a changed
// version-2 file must always be refused.
test('seeded mutations of real project files never escape as anything but a ProjectFileError', async () => {
  const rng = seeded(17);
  const int = (n) => Math.floor(rng() * n);
  const hostileNumbers = ['-1', '1e300', '1.5', '4294967296', '9007199254740993', 'null', '"7"', '[]', '{}'];
  const counts = { refused: 0, read: 0 };
  const kinds = new Map();
  for (const [label, original] of [
    ['v1', V1],
    ['v2', v2],
  ]) {
    for (let i = 0; i < 600; i++) {
      let m = original.slice();
      const kind = ['flip', 'byte', 'insert', 'delete', 'cut', 'number'][int(6)];
      const at = int(original.length);
      if (kind === 'flip') m[at] ^= 1 << int(8);
      else if (kind === 'byte') m[at] = int(256);
      else if (kind === 'insert') m = new Uint8Array([...m.subarray(0, at), int(256), ...m.subarray(at)]);
      else if (kind === 'delete') m = new Uint8Array([...m.subarray(0, at), ...m.subarray(at + 1)]);
      else if (kind === 'cut') m = m.slice(0, at);
      else {
        // a number in the header (a count, offset, length, version) becomes a hostile value
        const pre = label === 'v1' ? 12 : 16;
        const text = new TextDecoder().decode(m.subarray(pre, pre + new DataView(m.buffer).getUint32(8, true)));
        const nums = [...text.matchAll(/:(\d+)/g)];
        const pick = nums[int(nums.length)];
        const edited = new TextEncoder().encode(
          text.slice(0, pick.index + 1) + hostileNumbers[int(hostileNumbers.length)] + text.slice(pick.index + 1 + pick[1].length),
        );
        const out = new Uint8Array(pre + edited.length + m.length - pre - text.length);
        out.set(m.subarray(0, pre));
        out.set(edited, pre);
        out.set(m.subarray(pre + new TextEncoder().encode(text).length), pre + edited.length);
        new DataView(out.buffer).setUint32(8, edited.length, true);
        m = out;
      }
      const same = m.length === original.length && m.every((v, k) => v === original[k]);
      let p;
      try {
        p = await unpack(named(m));
      } catch (e) {
        assert.ok(e instanceof ProjectFileError, `${label} ${kind} at ${at}: ${e.name}: ${e.message}`);
        assert.match(e.message, /^'p\.ttproject' (is|has|declares|holds)/);
        counts.refused++;
        kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
        continue;
      }
      counts.read++;
      if (label === 'v2') assert.ok(same, `v2 ${kind} at ${at}: a changed file was accepted`);
      for (const im of p.images) assert.ok(im.blob instanceof Blob && im.blob.size <= m.length, `${label} ${kind}: image outside the file`);
      assert.ok(p.images.length <= PROJECT_LIMITS.images && p.classes.length <= PROJECT_LIMITS.classes);
    }
  }
  console.log(
    `mutants: ${counts.refused} refused, ${counts.read} read (unchanged files, or version-1 changes inside image bytes); refused by kind: ${JSON.stringify(Object.fromEntries(kinds))}`,
  );
  assert.ok(counts.refused > 800, `only ${counts.refused} of 1200 mutants were refused`);
});
