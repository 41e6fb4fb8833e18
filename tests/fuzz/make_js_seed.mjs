// Writes tests/fuzz/corpus/savefile/classifier_head.ttm: a real Classifier.save() file
// (a linear head trained for two epochs on four scikit-image photos, on the
// mobilenet_v2 backbone), as the seed fuzz_savefile starts from besides tt_save's.
// Run from the repository root after `make all`:  node tests/fuzz/make_js_seed.mjs
import fs from 'node:fs';
import { createEngine } from '../../wasm/engine.mjs';
import { Classifier } from '../../wasm/transfer.mjs';
import { modelDir, readPhoto } from '../helpers.mjs';

const engine = await createEngine();
const model = await engine.loadModel(modelDir('mobilenet_v2'));
const c = new Classifier(model, { labels: ['cat', 'thing'], blocks: 0, hidden: 0, augment: false, seed: 3 });
for (const [name, label] of [
  ['chelsea.png', 'cat'],
  ['coffee.png', 'thing'],
  ['astronaut.png', 'cat'],
  ['rocket.jpg', 'thing'],
]) {
  c.addImage(readPhoto(name), label);
}
await c.fit({ epochs: 2, batchSize: 2, validationFraction: 0 });
const bytes = c.save();
fs.writeFileSync('tests/fuzz/corpus/savefile/classifier_head.ttm', bytes);
console.log(`classifier_head.ttm: ${bytes.length} bytes`);
