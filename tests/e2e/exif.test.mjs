// EXIF orientation, the engine against the browser: Chromium shows a phone photo the way
// its EXIF Orientation says (and createImageBitmap decodes it so), so the engine, which
// decodes the same bytes in the page's worker, must give the same upright pixels or it
// trains on sideways photos while the thumbnails look right. The eight fixtures
// (tests/fixtures/images/chelsea_64_exif<1..8>.jpg) store one photo turned each way with
// the tag that turns it back; each must decode, in the engine and in Chromium, to the
// same upright 64x43 picture.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT, launch, serve } from './browser.mjs';

let browser, srv;
before(async () => {
  browser = await launch();
  srv = await serve();
});
after(async () => {
  await browser?.close();
  await srv?.close();
});

test('the engine turns all 8 EXIF orientations upright exactly as Chromium does', async () => {
  const files = [1, 2, 3, 4, 5, 6, 7, 8].map((o) => [...fs.readFileSync(path.join(ROOT, `tests/fixtures/images/chelsea_64_exif${o}.jpg`))]);
  const page = await browser.newPage();
  await page.goto(`${srv.origin}/web/index.html`, { waitUntil: 'domcontentloaded' });
  const results = await page.evaluate(async (files) => {
    const { createEngine } = await import('/wasm/engine.mjs');
    const engine = await createEngine({ threads: 1 });
    const out = [];
    for (const bytes of files) {
      const u8 = new Uint8Array(bytes);
      const bmp = await createImageBitmap(new Blob([u8], { type: 'image/jpeg' })); // imageOrientation 'from-image'
      const canvas = new OffscreenCanvas(bmp.width, bmp.height);
      const ctx = canvas.getContext('2d');
      ctx.drawImage(bmp, 0, 0);
      const rgba = ctx.getImageData(0, 0, bmp.width, bmp.height).data;
      const ours = engine.decodeImage(u8);
      let diff = 0,
        mirror = 0;
      const { width: w, height: h } = ours;
      if (w === bmp.width && h === bmp.height) {
        for (let y = 0; y < h; y++)
          for (let x = 0; x < w; x++)
            for (let c = 0; c < 3; c++) {
              const v = ours.rgb[(y * w + x) * 3 + c];
              diff += Math.abs(v - rgba[(y * w + x) * 4 + c]);
              mirror += Math.abs(v - rgba[(y * w + (w - 1 - x)) * 4 + c]);
            }
        diff /= w * h * 3;
        mirror /= w * h * 3;
      }
      out.push({ browser: [bmp.width, bmp.height], engine: [w, h], diff, mirror });
    }
    return out;
  }, files);
  await page.close();
  results.forEach((r, i) => {
    const o = i + 1;
    console.log(
      `orientation ${o}: Chromium ${r.browser.join('x')}, engine ${r.engine.join('x')}, mean |diff| ${r.diff.toFixed(2)} levels (against the mirror image ${r.mirror.toFixed(1)})`,
    );
    assert.deepEqual(r.browser, [64, 43], `orientation ${o}: Chromium did not turn it upright`);
    assert.deepEqual(r.engine, r.browser, `orientation ${o}: the engine's size differs from Chromium's`);
    // two JPEG decoders (libjpeg-turbo, stb_image) differ by rounding and chroma upsampling
    assert.ok(r.diff < 0.5, `orientation ${o}: mean |diff| ${r.diff.toFixed(2)} levels from Chromium's pixels`);
    assert.ok(r.mirror > 5 * r.diff + 5, `orientation ${o}: about as close to the mirror image (${r.mirror.toFixed(1)})`);
  });
});
