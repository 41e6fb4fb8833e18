// tinytune in Node: train a classifier on folders of images (one folder per class, named
// after it), then classify other images. The models folder is one you host or copy
// (it holds <id>/model.json); the package ships none.
//   node train.mjs <models-folder> <class-folder>... [--model mobilenet_v2] [--predict <image>...]
import { readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { parseArgs } from 'node:util';
import { createEngine, loadBackbone, Classifier } from 'tinytune';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { model: { type: 'string' }, predict: { type: 'string', multiple: true } },
});
const [models, ...folders] = positionals;
if (!models || folders.length < 2) {
  console.error('usage: node train.mjs <models-folder> <class-folder> <class-folder>... [--model id] [--predict image]...');
  process.exit(2);
}

const engine = await createEngine();
const model = await loadBackbone(engine, models, { id: values.model });
console.log(`engine: ${engine.build}, ${engine.threads} thread(s); model ${model.id}`);

const classifier = new Classifier(model, { labels: folders.map((f) => basename(f)) });
for (const folder of folders) {
  for (const file of readdirSync(folder).sort()) {
    classifier.addImage(readFileSync(join(folder, file)), basename(folder), file);
  }
}
for (const s of classifier.skipped) console.log(`skipped ${s.name}: ${s.reason}`);
console.log(`images per class: ${classifier.counts().join(', ')}`);

const report = await classifier.fit({
  timeBudget: 30,
  onEpoch: (e) => process.stdout.write(`\r${e.phase} epoch ${e.epoch}/${e.epochs}, loss ${e.trainLoss.toFixed(3)}   `),
});
console.log(
  `\ntrained: ${report.auto?.summary ?? `K=${report.blocks}`}, validation accuracy ${report.validationAccuracy}, ${report.seconds.toFixed(1)} s`,
);

for (const file of values.predict ?? []) {
  const [best] = classifier.predict(readFileSync(file));
  console.log(`predict ${basename(file)}: ${best.label} ${best.probability.toFixed(3)}${best.unknown ? ' (none of these?)' : ''}`);
}
classifier.dispose();
model.dispose();
await engine.close();
