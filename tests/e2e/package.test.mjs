// The browser examples as a demo builder runs them, from the installed npm tarball
// (tests/pack.mjs): the esbuild bundle and the import-map page, each served and driven in
// Chromium (train two classes of real texture crops, predict held-out crops, all through
// the public worker client), and a wrong models base URL shown as an error naming it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { ROOT, launch, serve, newContext, shot } from './browser.mjs';
import { packAndInstall, CLASSES } from '../pack.mjs';

let p, browser, site;
before(async () => {
  p = await packAndInstall();
  execFileSync(process.execPath, ['build.mjs'], { cwd: p.app, stdio: 'pipe', timeout: 120000 });
  browser = await launch();
  site = await serve({ mounts: { '/app/models/': path.join(ROOT, 'models'), '/app/': p.app } });
});
after(async () => {
  await browser?.close();
  await site?.close();
  if (p) fs.rmSync(p.dir, { recursive: true, force: true });
});

const logText = (page) => page.locator('#log').textContent();
async function waitLog(page, re, timeout) {
  await page.waitForFunction((src) => new RegExp(src, 'm').test(document.getElementById('log')?.textContent ?? ''), re.source, { timeout });
  return (await logText(page)).match(new RegExp(re.source, 'm'));
}

for (const [name, file] of [
  ['the esbuild bundle', 'bundled.html'],
  ['the import-map page (no build step)', 'index.html'],
]) {
  test(`${name} trains and predicts through the worker client in Chromium`, async () => {
    const { context, requests, errors } = await newContext(browser);
    try {
      const page = await context.newPage();
      await page.goto(`${site.origin}/app/${file}?model=mobilenet_v2`);
      const env = await waitLog(page, /^engine: (relaxed SIMD|SIMD|scalar), (\d+) thread\(s\)$/, 60000);
      assert.equal(env[1], 'relaxed SIMD', 'Chromium runs the relaxed-SIMD build');
      await waitLog(page, /^model mobilenet_v2 loaded$/, 120000);
      for (const [k, label] of CLASSES.entries()) {
        await page.locator(`#name${k}`).fill(label);
        await page.locator(`#files${k}`).setInputFiles(p.data.train[label]);
      }
      await page.locator('#train').click();
      const done = await waitLog(page, /^(trained: validation accuracy .*|error: .*)$/, 240000);
      assert.match(done[1], /^trained: validation accuracy [\d.]+, [\d.]+ s$/);
      for (const h of p.data.held) {
        await page.locator('#predict').setInputFiles(h.file);
        const m = await waitLog(page, new RegExp(`^predict ${path.basename(h.file)}: (\\w+) ([\\d.]+)$`), 60000);
        assert.equal(m[1], h.label, `${path.basename(h.file)} is ${h.label}`);
      }
      await shot(page, `package-${path.parse(file).name}`);
      const wasm = requests.filter((r) => r.url.endsWith('.wasm')).map((r) => new URL(r.url).pathname);
      assert.ok(
        wasm.length && wasm.every((u) => u.startsWith(file === 'bundled.html' ? '/app/dist/wasm/' : '/app/node_modules/tinytune/build/')),
        wasm.join(', '),
      );
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
    }
  });
}

test('a wrong models base URL is shown as an error naming the URL that failed', async () => {
  const { context } = await newContext(browser);
  try {
    const page = await context.newPage();
    await page.goto(`${site.origin}/app/bundled.html?model=mobilenet_v2&models=./nowhere/`);
    const m = await waitLog(page, /^error: .*$/, 60000);
    assert.equal(
      m[0],
      `error: cannot load model 'mobilenet_v2' from the base URL ./nowhere/: cannot load model.json from ` +
        `${site.origin}/app/nowhere/mobilenet_v2/model.json: 404 Not Found (the base URL must be the folder that holds mobilenet_v2/model.json)`,
    );
  } finally {
    await context.close();
  }
});
