// Soak: many train/predict cycles in one Node process, to show that the engine's wasm
// memory and the JS heap stop growing after the first few (a leak would make a long page
// session or a server die). Each cycle does what the page does per training run: a new
// Classifier, images added (PNG bytes of real texture crops, decoded and embedded), a
// fit (K = 0 or 2, alternating), predictions on held-out crops, save and load back, dispose.
//   node --expose-gc bench/soak.mjs [cycles=50] [model=mobilenet_v2]
// Prints one line per cycle and a summary: the growth from cycle 5 to the last.
import { createEngine } from '../wasm/engine.mjs';
import { Classifier } from '../wasm/transfer.mjs';
import { encodePng } from '../tests/png.mjs';
import { modelDir, textureSet } from '../tests/helpers.mjs';

const cycles = Number(process.argv[2] ?? 50);
const modelId = process.argv[3] ?? 'mobilenet_v2';
const gc = globalThis.gc ?? (() => {});
if (!globalThis.gc) console.warn('run with --expose-gc for exact heap figures');

const engine = await createEngine({ threads: 1 });
const model = await engine.loadModel(modelDir(modelId));
const set = textureSet(engine, { perClass: 8, heldOut: 2, seed: 3 });
const files = set.train.map(({ label, pixels }) => ({ label, bytes: encodePng(pixels) }));
const held = set.test.map(({ label, pixels }) => ({ label, bytes: encodePng(pixels) }));
const MiB = (n) => (n / 1048576).toFixed(1);
const rows = [];
const t0 = performance.now();
for (let i = 1; i <= cycles; i++) {
  const blocks = i % 2 ? 0 : 2;
  const c = new Classifier(model, { labels: set.labels, blocks, views: 2, seed: i });
  for (const f of files) c.addImage(f.bytes, f.label);
  const report = await c.fit({ epochs: 4 });
  let right = 0;
  for (const h of held) right += c.predict(h.bytes, 1)[0].label === h.label ? 1 : 0;
  const saved = c.save();
  const back = Classifier.load(model, saved);
  back.predict(held[0].bytes, 1);
  back.dispose();
  c.dispose();
  gc();
  const row = {
    cycle: i,
    blocks,
    wasm: engine.memoryBytes(),
    heap: process.memoryUsage().heapUsed,
    rss: process.memoryUsage().rss,
    acc: right / held.length,
    epochs: report.history.length,
  };
  rows.push(row);
  console.log(
    `cycle ${String(i).padStart(2)} K=${blocks}: wasm ${MiB(row.wasm)} MiB, JS heap ${MiB(row.heap)} MiB, rss ${MiB(row.rss)} MiB, held-out ${right}/${held.length}`,
  );
}
const at = (k) => rows[Math.min(k, rows.length) - 1];
const first = at(5),
  last = rows.at(-1);
console.log(
  `\n${cycles} cycles in ${((performance.now() - t0) / 1000).toFixed(0)} s (${modelId}, 24 images x 2 views, 4 epochs each, K = 0 and 2 alternating)`,
);
console.log(
  `wasm memory: cycle 1 ${MiB(rows[0].wasm)} MiB, cycle 5 ${MiB(first.wasm)} MiB, cycle ${last.cycle} ${MiB(last.wasm)} MiB (growth after cycle 5: ${MiB(last.wasm - first.wasm)} MiB)`,
);
console.log(
  `JS heap (after gc): cycle 1 ${MiB(rows[0].heap)} MiB, cycle 5 ${MiB(first.heap)} MiB, cycle ${last.cycle} ${MiB(last.heap)} MiB (growth after cycle 5: ${MiB(last.heap - first.heap)} MiB); max after cycle 5 ${MiB(Math.max(...rows.slice(4).map((r) => r.heap)))} MiB`,
);
console.log(`rss: cycle 5 ${MiB(first.rss)} MiB, cycle ${last.cycle} ${MiB(last.rss)} MiB`);
