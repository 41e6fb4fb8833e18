// Helpers for driving the page in Debian's Chromium with playwright-core.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { createServer } from '../../tools/serve.mjs';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const ARTIFACTS = path.join(ROOT, 'test-artifacts', 'e2e');
export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

export function launch(extraArgs = []) {
  // launch() gives every run a fresh temporary profile of its own.
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--no-sandbox',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--disable-gpu',
      '--disable-default-apps',
      '--disable-domain-reliability',
      '--metrics-recording-only',
      ...extraArgs,
    ],
  });
}

/** tools/serve.mjs on 127.0.0.1, a free port; `received` lists every request it got. */
export async function serve(options = {}) {
  const server = createServer(options);
  const received = [];
  server.on('request', (req) =>
    received.push({
      method: req.method,
      url: req.url,
      bodyBytes: Number(req.headers['content-length'] ?? 0),
      chunked: !!req.headers['transfer-encoding'],
    }),
  );
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    server,
    port,
    received,
    origin: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections?.();
        server.close(() => resolve());
      }),
  };
}

/**
 * A fresh browser context with every request recorded (context level: pages, workers and
 * the service worker) and page errors collected.
 */
export async function newContext(browser, options = {}) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, acceptDownloads: true, ...options });
  const requests = [];
  const record = (where) => (r) =>
    requests.push({ where, url: r.url(), method: r.method(), postData: r.postDataBuffer(), type: r.resourceType() });
  context.on('request', record('context'));
  context.on('page', (p) => p.on('request', record('page')));
  const errors = [];
  context.on('page', (p) => {
    p.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
    p.on('console', (m) => {
      if (m.type() === 'error' && !/Failed to load resource|net::ERR_INTERNET_DISCONNECTED/.test(m.text()))
        errors.push(`console: ${m.text()}`);
    });
  });
  return { context, requests, errors };
}

export async function shot(page, name) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/** Waits until the page has its model loaded and is idle. */
export async function ready(page, timeout = 60000) {
  await page.waitForSelector('body[data-ready="true"][data-model-ready="true"]', { timeout });
}

export async function selectModel(page, id) {
  await page.selectOption('#model', id);
  await page.waitForFunction((m) => document.body.dataset.modelReady === 'true' && window.tinytune.model?.id === m, id, { timeout: 60000 });
}

/** The class cards as [{name, count}] in page order. */
export function classes(page) {
  return page.$$eval('.class-card', (cards) =>
    cards.map((c) => ({ name: c.querySelector('.class-name').value, count: Number(c.dataset.count ?? 0) })),
  );
}

export async function renameClass(page, index, name) {
  const input = page.locator('.class-card .class-name').nth(index);
  await input.fill(name);
  await input.press('Enter');
  await page.waitForFunction(([i, n]) => document.querySelectorAll('.class-card .class-name')[i]?.value === n, [index, name]);
}

/** Adds files to the class at `index` with its file input and waits until the engine has checked them all. */
export async function addImages(page, index, files) {
  const c = page.locator('.class-card').nth(index);
  await c.locator('input[type=file]').setInputFiles(files);
  await waitChecked(page);
}

export async function waitChecked(page) {
  await page.waitForFunction(() => (document.body.dataset.adding ?? '0') === '0' && !document.querySelector('.thumb.checking'), null, {
    timeout: 60000,
  });
}

/** Drops files onto an element with a synthetic drop event carrying a DataTransfer. */
export async function dropFiles(page, selector, files) {
  const dt = await page.evaluateHandle(
    (fs) => {
      const d = new DataTransfer();
      for (const f of fs) d.items.add(new File([Uint8Array.from(atob(f.b64), (c) => c.charCodeAt(0))], f.name, { type: f.mimeType }));
      return d;
    },
    files.map((f) => ({ name: f.name, mimeType: f.mimeType, b64: Buffer.from(f.buffer).toString('base64') })),
  );
  await page.locator(selector).dispatchEvent('drop', { dataTransfer: dt });
}

export async function messages(page) {
  return page.$$eval('#messages .msg', (ms) => ms.map((m) => ({ kind: m.className.replace('msg', '').trim(), text: m.innerText })));
}

export async function waitMessage(page, re, timeout = 30000) {
  await page.waitForFunction(
    (src) => [...document.querySelectorAll('#messages .msg')].some((m) => new RegExp(src).test(m.innerText)),
    re.source,
    { timeout },
  );
  return (await messages(page)).find((m) => re.test(m.text));
}

/** Predicts one file with the Try-it input; resolves to [{label, pct}] as shown. */
export async function predict(page, file) {
  await page.evaluate(() => {
    document.getElementById('predictions').dataset.top = '…';
  });
  await page.locator('#predict-file').setInputFiles(file);
  await page.waitForFunction(() => document.getElementById('predictions').dataset.top !== '…', null, { timeout: 60000 });
  return page.$$eval('#predictions .bar-row', (rows) =>
    rows.map((r) => ({
      label: r.querySelector('.bar-label').textContent,
      pct: parseFloat(r.querySelector('.bar-value').textContent),
    })),
  );
}

/**
 * Starts a main-thread responsiveness probe: a 10 ms setTimeout chain and a
 * requestAnimationFrame chain, recording the gaps between callbacks.
 */
export function startProbe(page) {
  return page.evaluate(() => {
    const p = (window.__probe = { timer: [], raf: [], on: true });
    let lt = performance.now(),
      lr = performance.now();
    const t = () => {
      const n = performance.now();
      p.timer.push(n - lt);
      lt = n;
      if (p.on) setTimeout(t, 10);
    };
    const r = () => {
      const n = performance.now();
      p.raf.push(n - lr);
      lr = n;
      if (p.on) requestAnimationFrame(r);
    };
    setTimeout(t, 10);
    requestAnimationFrame(r);
  });
}

export function stopProbe(page) {
  return page.evaluate(() => {
    const p = window.__probe;
    p.on = false;
    const stats = (a) => {
      const s = [...a].sort((x, y) => x - y);
      return { n: s.length, max: s.at(-1) ?? 0, p99: s[Math.floor(s.length * 0.99)] ?? 0, median: s[Math.floor(s.length / 2)] ?? 0 };
    };
    return { timer: stats(p.timer), raf: stats(p.raf) };
  });
}
