// Upgrades, in Chromium: the IndexedDB database the previous page (schema version 1) left
// behind (tests/fixtures/idb/v1.json, made by tests/fixtures/idb/make_v1.mjs with that
// page) is put back into a fresh profile exactly as it was, then this page opens it. The
// upgrade must keep every class, image byte and the trained model, add what the new
// schema has (web/project.mjs, UPGRADES), and leave a project the page can work on. An
// older page still open in another tab holds the upgrade back: the new page says so.
// (A .ttproject from the first release importing: tests/project_file.test.mjs and
// tests/e2e/faults.test.mjs.)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT, launch, serve, newContext, ready, classes, addImages, predict, waitMessage } from './browser.mjs';
import { dumpDb, replayDb } from './idb.mjs';
import { DB_VERSION } from '../../web/project.mjs';

const V1 = JSON.parse(fs.readFileSync(path.join(ROOT, 'tests/fixtures/idb/v1.json'), 'utf8'));
const store = (dump, name) => dump.stores.find((s) => s.name === name);
let browser, srv;

before(async () => {
  browser = await launch();
  srv = await serve();
});
after(async () => {
  await browser?.close();
  await srv?.close();
});

test('a project kept by the version 1 page opens after the IndexedDB upgrade, nothing lost', async () => {
  assert.equal(V1.version, 1);
  assert.ok(DB_VERSION > 1, "the page has moved on from the fixture's schema");
  const { context, errors } = await newContext(browser);
  try {
    const page = await context.newPage();
    await page.goto(`${srv.origin}/models/index.json`); // the origin, without the page
    await replayDb(page, V1);
    assert.deepEqual(await page.evaluate(async () => (await indexedDB.databases()).map(({ name, version }) => ({ name, version }))), [
      { name: 'tinytune', version: 1 },
    ]);

    await page.goto(`${srv.origin}/`);
    await ready(page, 120000);
    assert.deepEqual(await classes(page), [
      { name: 'brick', count: 3 },
      { name: 'grass', count: 3 },
    ]);
    await page.waitForFunction(() => document.body.dataset.trained === 'true', null, { timeout: 60000 });
    assert.equal(await page.evaluate(() => window.tinytune.model.id), 'centernet_mnv3', 'the kept settings chose the backbone');
    assert.match(await page.textContent('#trained-status'), /Model from your last session: brick, grass/);

    // the kept model predicts the kept images (as it did when it was trained)
    const images = store(V1, 'images').records.map((r) => r.value);
    for (const im of [images[0], images.at(-1)]) {
      const top = (await predict(page, { name: im.name, mimeType: 'image/png', buffer: Buffer.from(im.blob.$blob, 'base64') }))[0];
      assert.equal(top.label, im.name.split('_')[0], `${im.name}: ${JSON.stringify(top)}`);
    }

    // the database now: the new version, every byte kept, the new index and sizes added
    const now = await dumpDb(page, 'tinytune');
    assert.equal(now.version, DB_VERSION);
    assert.deepEqual(
      store(now, 'images')
        .indexes.map((i) => i.name)
        .sort(),
      ['added', 'classId'],
    );
    assert.deepEqual(store(now, 'meta').records, store(V1, 'meta').records);
    assert.deepEqual(store(now, 'model').records, store(V1, 'model').records);
    const after = new Map(store(now, 'images').records.map((r) => [r.value.id, r.value]));
    assert.equal(after.size, images.length);
    for (const im of images) {
      const a = after.get(im.id);
      assert.deepEqual({ ...a, size: undefined }, { ...im, size: undefined }, im.name);
      assert.equal(a.size, Buffer.from(im.blob.$blob, 'base64').length, `${im.name}: its size in bytes`);
    }

    // and the project goes on: a new image is kept across a reload, in the order added
    await addImages(page, 0, [{ name: 'brick_new.png', mimeType: 'image/png', buffer: Buffer.from(images[1].blob.$blob, 'base64') }]);
    await page.reload();
    await ready(page, 120000);
    assert.deepEqual(await classes(page), [
      { name: 'brick', count: 4 },
      { name: 'grass', count: 3 },
    ]);
    assert.deepEqual(await page.$$eval('.class-card:first-child .thumb', (ts) => ts.map((t) => t.title)), [
      'brick_0.png',
      'brick_1.png',
      'brick_2.png',
      'brick_new.png',
    ]);
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

test('an older page still open in another tab holds the upgrade back: the new page says so, works for the session, and upgrades once it is closed', async () => {
  const { context } = await newContext(browser);
  try {
    const old = await context.newPage();
    await old.goto(`${srv.origin}/models/index.json`);
    await replayDb(old, V1);
    // the older page: a connection at version 1 that does not close when asked
    await old.evaluate(
      () =>
        new Promise((resolve, reject) => {
          const r = indexedDB.open('tinytune', 1);
          r.onsuccess = () => {
            window.oldDb = r.result;
            resolve();
          };
          r.onerror = () => reject(r.error);
        }),
    );
    const page = await context.newPage();
    await page.goto(`${srv.origin}/`);
    await ready(page, 120000);
    const m = await waitMessage(page, /older version/);
    assert.equal(
      m.text.split('\n')[0],
      'This browser does not let the page store data (another tab has the project open with an older version of this page; close it and reload). ' +
        'Everything works for this session, but nothing will be kept: closing or reloading the page loses the project. Export it (.ttproject) to keep it.',
    );
    assert.equal(await page.textContent('#chip-storage'), 'Not saved');

    await old.evaluate(() => window.oldDb.close());
    await page.reload();
    await ready(page, 120000);
    assert.deepEqual(await classes(page), [
      { name: 'brick', count: 3 },
      { name: 'grass', count: 3 },
    ]);
    assert.equal((await dumpDb(page, 'tinytune')).version, DB_VERSION);
  } finally {
    await context.close();
  }
});
