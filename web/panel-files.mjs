// The Files panel and the project's glue: model files (.ttm, the TensorFlow.js zip, ONNX),
// project files (.ttproject, web/project.mjs pack/unpack), clearing the project, and
// restoreProject, which rebuilds the page (and the worker's image set) from IndexedDB or an
// imported project. Model bytes come from and go to the worker through state.client.
import { state, $, DEFAULTS, plural, fmtCount, notify, storeModel, slimReport } from './state.mjs';
import { pack, unpack } from './project.mjs';
import { download, safeName, formatBytes } from './files.mjs';
import { drawCurves } from './charts.mjs';
import { zip } from './zip.mjs';
import { addClass, renderClassCard, updateCount, renderThumb } from './panel-classes.mjs';
import { setTrained, renderResults, writeSettings, updateTrainState, configure, restoreStoredModel, selectModel } from './panel-train.mjs';

/** How to run an exported model: the preprocessing the backbone was trained with (RGB / 255, bilinear resize with aligned corners). */
function exportSnippet(format, size) {
  const [h, w] = size;
  if (format === 'onnx') {
    return `import * as ort from 'onnxruntime-web';

const session = await ort.InferenceSession.create('model.onnx');
// x: Float32Array of ${h}×${w}×3 RGB values in [0, 1] (pixels / 255, resized bilinearly, corners aligned), NHWC
const input = new ort.Tensor('float32', x, [1, ${h}, ${w}, 3]);
const out = await session.run({ [session.inputNames[0]]: input });
const probs = out[session.outputNames[0]].data; // one probability per class`;
  }
  return `import * as tf from '@tensorflow/tfjs';

// the unzipped folder, served next to your page
const model = await tf.loadLayersModel('model/model.json');
const { labels } = await (await fetch('model/metadata.json')).json();

// img: an <img>, <video> or <canvas>
const probs = tf.tidy(() => {
  const rgb = tf.browser.fromPixels(img).toFloat().div(255); // RGB in [0, 1]
  const x = tf.image.resizeBilinear(rgb, [${h}, ${w}], true); // align corners
  return model.predict(x.expandDims(0)).dataSync();
});
labels.forEach((label, i) => console.log(label, probs[i].toFixed(3)));`;
}

/** The whole model, image to probabilities: a zip of the TensorFlow.js layers model, or an ONNX file. */
export async function exportModel(format = 'tfjs') {
  try {
    const res = await state.client.call('export', { format });
    const name = safeName(res.labels.join('-'));
    let size = [224, 224];
    if (format === 'onnx') {
      download(res.files['model.onnx'], `${name}.onnx`);
    } else {
      const meta = JSON.parse(new TextDecoder().decode(res.files['metadata.json']));
      if (Array.isArray(meta.input?.shape)) size = meta.input.shape.slice(-3, -1);
      const bytes = zip(res.files);
      download(bytes, `${name}-tfjs.zip`);
    }
    $('export-snippet').textContent = exportSnippet(format, size);
    $('export-help').hidden = false;
    $('export-help').open = true;
    $('export-help').dataset.format = format;
    notify(
      format === 'onnx'
        ? 'Exported the whole model as ONNX (image to probabilities).'
        : 'Exported the model for TensorFlow.js: a zip of model.json, weights.bin and metadata.json. How to use it is under Files.',
      'ok',
    );
  } catch (e) {
    notify(`Could not export the model: ${e.message}`, 'error');
  }
}

export async function saveModel() {
  try {
    const { bytes, labels } = await state.client.call('save');
    download(bytes, `${safeName(labels.join('-'))}.ttm`);
    notify(`Saved the model (${formatBytes(bytes.length)}) as a .ttm file.`, 'ok');
  } catch (e) {
    notify(`Could not save the model: ${e.message}`, 'error');
  }
}

export async function loadModelFile(file) {
  if (!file) return;
  try {
    if (state.loadingModel) await state.loadingModel;
    const bytes = new Uint8Array(await file.arrayBuffer());
    const res = await state.client.call('load', { bytes: bytes.slice() });
    setTrained({ labels: res.labels, report: res.report, backbone: res.backbone, source: 'file' });
    renderResults(res.labels, res.report);
    await storeModel(bytes, res.labels, res.report);
    notify(`Loaded '${file.name}': classes ${res.labels.join(', ')}.`, 'ok');
  } catch (e) {
    notify(`Could not load '${file.name}': ${e.message}`, 'error');
  }
}

/** The project as the page holds it (what a reload would restore, plus what storage refused). */
async function projectSnapshot() {
  const images = [];
  for (const c of state.classes) {
    for (const [i, im] of c.images.entries()) {
      if (!im.blob || im.status === 'checking') continue;
      const thumb = im.url
        ? await fetch(im.url)
            .then((r) => r.blob())
            .catch(() => null)
        : null;
      images.push({ id: im.id, classId: c.id, name: im.name, type: im.blob.type ?? '', added: i, blob: im.blob, thumb });
    }
  }
  const stored = await state.store?.getModel().catch(() => null);
  const model =
    stored ??
    (state.trained && state.sessionModel
      ? {
          backbone: state.trained.backbone,
          labels: state.trained.labels,
          saved: Date.now(),
          report: slimReport(state.trained.report),
          bytes: state.sessionModel,
        }
      : null);
  return { images, model };
}

export async function exportProject() {
  try {
    const { images, model } = await projectSnapshot();
    const blob = await pack({ settings: state.settings, classes: state.classes.map(({ id, name }) => ({ id, name })), images, model });
    download(blob, `${safeName(state.classes.map((c) => c.name).join('-') || 'tinytune')}.ttproject`);
    notify(`Exported the project (${plural(images.length, 'image')}, ${formatBytes(blob.size)}).`, 'ok');
  } catch (e) {
    notify(`Could not export the project: ${e.message}`, 'error');
  }
}

export async function importProject(file) {
  if (!file) return;
  try {
    // unpack checks the whole file first: a damaged or hostile one leaves the project as it was
    const p = await unpack(file);
    if (p.images.length > state.limits.images) {
      notify(
        `Could not import '${file.name}': it has ${fmtCount(p.images.length)} images, more than the ${fmtCount(state.limits.images)} this page works with. The current project is unchanged.`,
        'error',
        { topic: 'import' },
      );
      return;
    }
    const images = p.images.map((im) => ({ ...im, size: im.blob?.size ?? 0 }));
    const model = p.model ? { ...p.model, bytes: p.model.bytes } : null;
    const settings = { ...DEFAULTS, ...p.settings };
    if (state.store && !state.store.readOnly) {
      await state.store.replace({ settings, classes: p.classes, images, model }); // one transaction: all or nothing
      await restoreProject();
    } else {
      // no storage (or another tab's project): the imported project lives in this session
      state.sessionModel = model ? new Uint8Array(await model.bytes.arrayBuffer()) : null;
      await restoreProject({ meta: { settings, classes: p.classes }, images, model: null });
      if (state.sessionModel && state.client) {
        const res = await state.client.call('load', { bytes: state.sessionModel.slice() });
        setTrained({ labels: res.labels, report: res.report ?? model.report, backbone: res.backbone, source: 'file' });
        renderResults(res.labels, res.report ?? model.report);
      }
    }
    notify(
      `Imported '${file.name}': ${plural(p.classes.length, 'class')}, ${plural(p.images.length, 'image')}${p.model ? ', and its model' : ''}.`,
      'ok',
    );
  } catch (e) {
    notify(
      e.name === 'ProjectFileError'
        ? `Could not import: ${e.message}. The current project is unchanged.`
        : `Could not import '${file.name}': ${e.message}`,
      'error',
      { topic: 'import' },
    );
  }
}

let clearArmed = null;
export async function clearProject() {
  const btn = $('clear-project');
  if (!clearArmed) {
    btn.textContent = 'Really clear everything?';
    btn.classList.add('armed');
    clearArmed = setTimeout(() => {
      clearArmed = null;
      btn.textContent = 'Clear project';
      btn.classList.remove('armed');
    }, 4000);
    return;
  }
  clearTimeout(clearArmed);
  clearArmed = null;
  btn.textContent = 'Clear project';
  btn.classList.remove('armed');
  await state.store?.replace({ settings: state.settings, classes: [] });
  await state.inbox?.clear();
  await restoreProject();
  notify('Cleared the project.', 'info');
}

// ---------------------------------------------------------------------------------------
// The project from storage (a reload, an import, a clear)

/** Rebuilds the page (and the worker's image set) from what IndexedDB holds (or from `given`: { meta, images, model }). */
export async function restoreProject(given = null) {
  for (const c of state.classes) {
    for (const im of c.images) if (im.url) URL.revokeObjectURL(im.url);
    c.el.remove();
  }
  state.classes = [];
  await state.client?.call('reset');
  setTrained(null);
  $('results').hidden = true;
  $('train-progress').hidden = true;
  drawCurves($('curves'), [], state.settings.epochs);
  const saved = given ?? (state.store ? await state.store.load() : { meta: null, images: [], model: null });
  const prevModel = state.settings.modelId;
  state.settings = { ...DEFAULTS, ...(saved.meta?.settings ?? {}) };
  writeSettings();
  const byClass = new Map();
  for (const rec of saved.images) {
    if (!byClass.has(rec.classId)) byClass.set(rec.classId, []);
    byClass.get(rec.classId).push(rec);
  }
  const classes = saved.meta?.classes ?? [];
  let shown = 0;
  for (const { id, name } of classes) {
    const cls = { id, name, images: [], el: null };
    state.classes.push(cls);
    cls.el = renderClassCard(cls);
    $('classes').insertBefore(cls.el, $('add-class'));
    for (const rec of byClass.get(id) ?? []) {
      // a big project's thumbnails go in by the hundred, the page free between
      if (++shown % 200 === 0) {
        updateCount(cls);
        await new Promise((r) => setTimeout(r, 0));
      }
      // im.blob is IndexedDB's handle on the stored file, not its bytes
      const im = { id: rec.id, name: rec.name, url: rec.thumb ? URL.createObjectURL(rec.thumb) : null, status: 'ok', blob: rec.blob };
      cls.images.push(im);
      renderThumb(cls, im);
      state.client?.call('addImage', { classId: id, bytes: rec.blob, id: rec.id, name: rec.name, trusted: true }).catch(() => {});
    }
    updateCount(cls);
  }
  // images of classes that no longer exist (a crash between two writes) are dropped
  for (const [cid, recs] of byClass)
    if (!classes.some((c) => c.id === cid)) for (const r of recs) state.store?.deleteImage(r.id).catch(() => {});
  if (!state.classes.length) {
    addClass('Class 1');
    addClass('Class 2');
  }
  updateTrainState();
  if (state.client && state.zoo.length) {
    if (state.model && (state.settings.modelId ?? prevModel) === state.model.id) {
      await configure();
      await restoreStoredModel();
    } else await selectModel(state.settings.modelId);
  }
}
