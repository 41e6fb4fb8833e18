// The Try it panel: one image's predictions, a batch of images in a sortable table, a
// labelled test folder's accuracy, and the labelling loop (web/batch.mjs Inbox), whose
// accepted images join a class as if dropped on it (web/panel-classes.mjs). Predictions come
// from the worker through state.client ('predict', 'evaluate').
import { state, $, uid, plural, pct, notify } from './state.mjs';
import { makeThumbnail } from './files.mjs';
import { renderPerClass, renderConfusion, renderPredictions } from './charts.mjs';
import { BatchTable, Inbox, topOf } from './batch.mjs';
import { addFiles } from './panel-classes.mjs';
import { el } from './dom.mjs';

/** The labelling loop's side of the app: its images join a class as if dropped on it. */
export function makeInbox() {
  return new Inbox($('inbox'), {
    predict: (blob) => state.client.call('predict', { bytes: blob, topk: 1000 }),
    classes: () => state.classes,
    accept: async (name, file) => {
      const cls = state.classes.find((c) => c.name === name);
      if (!cls) {
        notify(`There is no class '${name}' any more.`, 'warn');
        return;
      }
      await addFiles(cls, [file]);
    },
    notify,
    thumbnail: makeThumbnail,
    uid,
  });
}

// ---------------------------------------------------------------------------------------
// Predict: one image, a batch of them, a labelled test set

let predictUrl = null;
async function predict(file) {
  if (!file) return;
  if (!state.trained) {
    notify('Train a model first (or load a .ttm file), then try an image.', 'warn', { timeout: 8000 });
    return;
  }
  $('batch').hidden = true;
  if (predictUrl) URL.revokeObjectURL(predictUrl);
  predictUrl = null;
  const thumb = await makeThumbnail(file);
  if (thumb) {
    predictUrl = URL.createObjectURL(thumb);
    $('predict-img').src = predictUrl;
  }
  $('predict-img').hidden = !thumb;
  $('predict-name').textContent = file.name;
  $('predictions').replaceChildren(el('p', { class: 'note' }, state.training ? 'Waiting for training to finish…' : 'Classifying…'));
  try {
    const bytes = new Uint8Array(await file.arrayBuffer());
    const preds = await state.client.call('predict', { bytes, topk: 5 }, [bytes.buffer]);
    renderPredictions($('predictions'), preds);
    $('predictions').dataset.top = preds[0]?.label ?? '';
  } catch (e) {
    $('predictions').replaceChildren();
    $('predictions').dataset.top = '';
    notify(`Could not classify '${file.name}': ${e.message}`, 'error');
  }
}

/** Many images dropped on Try it: one row each in a table sortable by confidence. */
let batchTable = null;
async function predictBatch(files) {
  if (!state.trained) {
    notify('Train a model first (or load a .ttm file), then try images.', 'warn', { timeout: 8000 });
    return;
  }
  batchTable ??= new BatchTable($('batch-table'));
  batchTable.clear();
  $('batch').hidden = false;
  $('predictions').replaceChildren();
  $('predict-img').hidden = true;
  $('predict-name').textContent = `${plural(files.length, 'image')}`;
  $('batch-title').textContent = `Predictions for ${plural(files.length, 'image')}: click a column to sort`;
  $('batch').dataset.done = 'false';
  for (const file of files) {
    const thumb = await makeThumbnail(file);
    const row = { name: file.webkitRelativePath || file.name, url: thumb ? URL.createObjectURL(thumb) : null };
    try {
      const bytes = new Uint8Array(await file.arrayBuffer());
      Object.assign(row, topOf(await state.client.call('predict', { bytes, topk: 1000 }, [bytes.buffer])));
    } catch (e) {
      row.error = e.message;
    }
    batchTable.add(row);
  }
  $('batch').dataset.done = 'true';
}

export async function predictFiles(files) {
  if (files.length > 1) await predictBatch(files);
  else await predict(files[0]);
}

/**
 * A drop on Try it that is a labelled test set: one folder holding only subfolders (one per
 * class), or several folders (one per class). Returns [{ label, files }] or null.
 */
export function labelledSet(groups) {
  if (!groups.length || groups.some((g) => !g.folder)) return null;
  const sets = groups.length === 1 ? (groups[0].loose || !groups[0].subfolders?.length ? null : groups[0].subfolders) : groups;
  return sets?.filter((g) => g.files.length).map((g) => ({ label: g.folder, files: g.files })) ?? null;
}

/** A labelled test set: Classifier.evaluate's accuracy, per class, confusion and calibration error. */
export async function evaluateSet(sets) {
  if (!state.trained) {
    notify('Train a model first (or load a .ttm file), then test it on a labelled folder.', 'warn', { timeout: 8000 });
    return;
  }
  const items = sets.flatMap((s) => s.files.map((f) => ({ label: s.label, name: `${s.label}/${f.name}`, bytes: f })));
  const box = $('test-set');
  box.hidden = false;
  box.dataset.done = 'false';
  $('batch').hidden = true;
  $('test-details').hidden = true;
  $('test-title').textContent = `Test set: ${plural(items.length, 'image')} in ${plural(sets.length, 'class folder')}`;
  $('test-summary').textContent = 'Testing…';
  try {
    const r = await state.client.call('evaluate', { items });
    state.evaluation = r;
    const parts = [`Accuracy ${pct(r.accuracy)} on ${plural(r.n, 'image')}`, `calibration error ${pct(r.calibration.ece)}`];
    if (r.unknown) parts.push(`${r.unknown} looked like none of the classes`);
    if (r.skipped.length)
      parts.push(`${plural(r.skipped.length, 'file')} skipped: ${r.skipped.map((x) => `${x.name} (${x.reason})`).join('; ')}`);
    $('test-summary').textContent = parts.join(' · ');
    renderPerClass($('test-per-class'), r.labels, r.perClassAccuracy);
    renderConfusion($('test-confusion'), r.labels, r.confusion);
    $('test-details').hidden = false;
  } catch (e) {
    $('test-summary').textContent = '';
    box.hidden = true;
    notify(`Could not test the model on this folder: ${e.message}`, 'error');
  } finally {
    box.dataset.done = 'true';
  }
}
