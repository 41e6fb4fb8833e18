// The largest project the page takes, in Chromium: beyond its image limit an add or an
// import is refused with a message naming what was left out, and beyond the worker's
// feature-memory budget training is refused with what to change; in each case the
// project stays as it was and usable. The limits are lowered (window.tinytune.limits) so
// a few small photos reach them; bench/bigproject.mjs runs the real sizes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { photoCrops } from './images.mjs';
import { ROOT, launch, serve, newContext, ready, selectModel, classes, renameClass, addImages, predict, waitMessage } from './browser.mjs';

let browser, srv, photos;
before(async () => {
  browser = await launch();
  srv = await serve();
  photos = await Promise.all(['brick.png', 'grass.png'].map((n, k) => photoCrops(n, { count: 3, held: 1, seed: 21 + k })));
});
after(async () => {
  await browser?.close();
  await srv?.close();
});

async function train(page, blocks) {
  await page.$eval(
    '#blocks',
    (e, v) => {
      e.value = v;
      e.dispatchEvent(new Event('change'));
    },
    String(blocks),
  );
  await page.fill('#epochs', '3');
  await page.dispatchEvent('#epochs', 'change');
  await page.evaluate(() => document.getElementById('messages').replaceChildren());
  await page.click('#train');
  await page.waitForSelector('body[data-training="true"]', { timeout: 10000 }).catch(() => {});
  await page.waitForSelector('body[data-training="false"]', { timeout: 180000 });
}

test('beyond the image limit an add and an import are refused, by name; beyond the feature budget training is; the project stays usable', async () => {
  const { context, errors } = await newContext(browser);
  try {
    const page = await context.newPage();
    await page.goto(`${srv.origin}/`);
    await ready(page, 120000);
    await selectModel(page, 'mobilenet_v2');
    await page.evaluate(() => {
      window.tinytune.limits.images = 5;
    });
    await renameClass(page, 0, 'brick');
    await renameClass(page, 1, 'grass');
    await addImages(page, 0, photos[0].train);
    await addImages(page, 1, photos[1].train);
    const m = await waitMessage(page, /limit/);
    assert.equal(m.kind, 'warn');
    assert.match(
      m.text,
      /^This project is at the page's limit of 5 images: 1 file \('grass-03\.png'\) was not added to 'grass' \(2 others were\)\. Everything already in the project is kept and works\. To add more, remove images, or export this project \(\.ttproject\) and start another\./,
    );
    assert.deepEqual(await classes(page), [
      { name: 'brick', count: 3 },
      { name: 'grass', count: 2 },
    ]);

    // at the limit, a whole drop is refused
    await page.evaluate(() => document.getElementById('messages').replaceChildren());
    await page.locator('.class-card').nth(0).locator('input[type=file]').setInputFiles(photos[0].held);
    assert.match(
      (await waitMessage(page, /limit/)).text,
      /limit of 5 images: 1 file \('brick-heldout-1\.png'\) was not added to 'brick'\. Everything/,
    );

    // a project file with more images than the limit is refused whole
    await page.locator('#import-project').setInputFiles({
      name: 'six.ttproject',
      mimeType: 'application/octet-stream',
      buffer: fs.readFileSync(path.join(ROOT, 'tests/fixtures/project/v1.ttproject')),
    });
    const imp = await waitMessage(page, /Could not import/);
    assert.equal(
      imp.text.split('\n')[0],
      "Could not import 'six.ttproject': it has 6 images, more than the 5 this page works with. The current project is unchanged.",
    );
    assert.deepEqual(await classes(page), [
      { name: 'brick', count: 3 },
      { name: 'grass', count: 2 },
    ]);

    // features beyond the budget: training the last 2 blocks is refused, a head alone is not
    await page.evaluate(() => {
      window.tinytune.limits.featureBytes = 256 * 1024;
    });
    await train(page, 2);
    const refused = await waitMessage(page, /Training failed/);
    assert.match(
      refused.text,
      /^Training failed: 5 images at these settings need 613 KB of memory for their features, more than the 256 KB this page allows: train fewer final blocks \(or Auto\), use fewer augmented views, or fewer images/,
    );
    assert.equal(await page.evaluate(() => document.body.dataset.trained), 'false');
    await train(page, 0);
    await page.waitForFunction(() => document.body.dataset.trained === 'true');
    const top = (await predict(page, photos[1].held[0]))[0];
    assert.equal(top.label, 'grass', JSON.stringify(top));

    // and all of it is kept
    await page.reload();
    await ready(page, 120000);
    assert.deepEqual(await classes(page), [
      { name: 'brick', count: 3 },
      { name: 'grass', count: 2 },
    ]);
    await page.waitForFunction(() => document.body.dataset.trained === 'true', null, { timeout: 60000 });
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});
